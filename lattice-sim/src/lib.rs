//! lattice-sim: a local stand-in for Amazon VPC Lattice.
//!
//! - [`sigv4`]: SigV4 verification for `vpc-lattice-svcs`.
//! - [`policy`]: IAM policy documents (auth policies and identity-based
//!   policies) and their evaluation.
//! - [`config`]: the simulator's configuration (network, services, callers
//!   and their identity policies).
//! - [`lattice`]: authentication and the network-AND-service-AND-identity
//!   decision.
//! - [`server`]: the HTTPS front that forwards to each service's target.

pub mod config;
pub mod lattice;
pub mod policy;
pub mod serve;
pub mod server;
pub mod sigv4;
