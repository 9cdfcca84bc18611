//! The claims-to-headers logic of the `jwt_scopes` proxy-wasm filter, with no
//! proxy-wasm dependency: it runs natively in tests, in the fuzzer and in
//! `envoy-gen`, which must compute exactly the header names the filter emits.
//!
//! - [`config`]: the plugin configuration and its validation.
//! - [`names`]: header-name rules and the injective scope-to-name mapping.
//! - [`mapping`]: per request, which client headers go and which identity
//!   headers come.
//! - [`payload`]: the verified payload, from metadata protobuf or JSON.
//! - [`pb`]: the zero-copy reader of Envoy's metadata protobuf.
//! - [`request`]: the request handler both builds share, over a [`Host`].
//! - [`signature`]: the signing guard's test for a SigV4-signed request, and
//!   its refusal.

pub mod config;
pub mod fuzzing;
pub mod mapping;
pub mod names;
pub mod pairs;
pub mod payload;
pub mod pb;
pub mod request;
pub mod signature;

pub use config::{Config, ConfigError};
pub use mapping::{map_claims, map_payload_json, strips_client_header, Outcome, Output, Refusal};
pub use names::{scope_header_name, ScopeEncoding};
pub use request::{handle_request, Counter, Host, HostError, Verdict, VerifiedClaims};
