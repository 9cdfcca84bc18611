//! Test harness shared by the integration tests and the demo: the real
//! Envoy binary, an echo upstream, a JWT issuer with real keys, and a raw
//! HTTP client. Everything listens on 127.0.0.1 only.

pub mod app;
pub mod deployment;
pub mod echo;
pub mod envoy;
pub mod fixture;
pub mod frontend;
pub mod http;
pub mod idp;
pub mod jwt;
pub mod lattice_stub;
pub mod stack;
pub mod tls;
