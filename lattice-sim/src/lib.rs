//! lattice-sim: a local stand-in for Amazon VPC Lattice.
//!
//! - [`sigv4`]: SigV4 verification for `vpc-lattice-svcs`.

pub mod sigv4;
