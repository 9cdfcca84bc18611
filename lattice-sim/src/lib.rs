//! lattice-sim: a local stand-in for Amazon VPC Lattice.
//!
//! - [`sigv4`]: SigV4 verification for `vpc-lattice-svcs`.
//! - [`policy`]: IAM auth-policy documents and their evaluation.
//! - [`config`]: the simulator's configuration (network, services, callers).
//! - [`lattice`]: authentication and the network-AND-service decision.
//! - [`server`]: the HTTPS front that forwards to each service's target.

pub mod config;
pub mod lattice;
pub mod policy;
pub mod serve;
pub mod server;
pub mod sigv4;
