//! The local stack behind `make demo` and `make up`, shared with the tests:
//! the real Envoy binary and how it is started (environment credentials
//! only, loopback only), the frontend and sidecars envoy-gen renders,
//! lattice-sim, the development IdP and the echo apps, wired together.

pub mod deployment;
pub mod envoy;
pub mod frontend;
pub mod stack;
