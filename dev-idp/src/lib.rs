//! The development identity provider (`dev-idp`) and what it is built
//! from, shared with the local stack and the tests: JWTs signed with real
//! keys, a test CA with TLS certificates, an HTTPS server for the JWKS, and
//! a raw HTTP client. Everything listens on 127.0.0.1 unless told otherwise.

pub mod http;
pub mod idp;
pub mod jwt;
pub mod tls;
