//! Pieces shared by the tests that run a generated frontend.

use crate::envoy::filter_wasm;
use envoy_gen::frontend::Overrides;
use envoy_gen::spec::Credentials;
use std::path::Path;

/// envoy-gen overrides for a frontend on loopback: ephemeral listener and
/// admin ports, the built filter, environment credentials only, every
/// Lattice service reached at `127.0.0.1:<lattice_port>` and verified with
/// `ca` (which also verifies the JWKS server). Set the issuer fields on top.
pub fn local_overrides(domain: &str, region: &str, lattice_port: u16, ca: &Path) -> Overrides {
    Overrides {
        domain: Some(domain.into()),
        region: Some(region.into()),
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
        wasm: Some(filter_wasm().unwrap_or_else(|e| panic!("{e}")).display().to_string()),
        lattice_endpoint: Some(format!("127.0.0.1:{lattice_port}")),
        lattice_ca: Some(ca.display().to_string()),
        jwks_ca: Some(ca.display().to_string()),
        credentials: Some(Credentials::Env),
        ..Overrides::default()
    }
}
