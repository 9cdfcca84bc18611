//! lattice-sim: a local stand-in for Amazon VPC Lattice.
//!
//! - [`sigv4`]: SigV4 verification for `vpc-lattice-svcs`.
//! - [`policy`]: IAM policy documents (auth policies and identity-based
//!   policies) and their evaluation.
//! - [`config`]: the simulator's configuration (network, services, callers
//!   and their identity policies).
//! - [`lattice`]: authentication and the network-AND-service-AND-identity
//!   decision.
//! - [`front`]: Lattice's HTTPS front: choose the service, admit the
//!   caller, forward to the service's target.
//! - [`http_server`]: the generic HTTPS server the front (and the tests'
//!   upstreams) run on.

pub mod config;
pub mod front;
pub mod fuzzing;
pub mod http_server;
pub mod lattice;
pub mod policy;
pub mod sigv4;
