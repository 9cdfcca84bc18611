//! Pieces shared by the tests that run a generated frontend.

use crate::envoy::{filter_wasm, AwsCredentials, Envoy};
use dev_idp::idp::TlsIdp;
use dev_idp::tls::TestCa;
use envoy_gen::args::{FrontendArgs, LatticeArgs, ListenArgs, Overrides};
use envoy_gen::spec::{Credentials, FilterBuild};
use std::path::Path;

/// envoy-gen overrides for a frontend (or a sidecar) on loopback: ephemeral
/// listener and admin ports, the built filter, environment credentials
/// only, every Lattice service reached at `127.0.0.1:<lattice_port>` and
/// verified with `ca` (which also verifies the JWKS server). Set the issuer
/// fields on top.
pub fn local_overrides(domain: &str, region: &str, lattice_port: u16, ca: &Path) -> Overrides {
    let (filter, native_module) = build_under_test();
    Overrides {
        lattice: LatticeArgs {
            domain: Some(domain.into()),
            region: Some(region.into()),
            lattice_endpoint: Some(format!("127.0.0.1:{lattice_port}")),
            lattice_ca: Some(ca.display().to_string()),
            credentials: Some(Credentials::Env),
            wasm: Some(filter_wasm().unwrap_or_else(|e| panic!("{e}")).display().to_string()),
            filter,
            native_module,
            service_hosts: Vec::new(),
        },
        frontend: FrontendArgs {
            listen: ListenArgs {
                listen: Some("127.0.0.1:0".into()),
                admin: Some("127.0.0.1:0".into()),
            },
            jwks_ca: Some(ca.display().to_string()),
            ..FrontendArgs::default()
        },
    }
}

/// The filters' build under test (`--filter`, `--native-module`):
/// `JWT_SCOPES_FILTER=native` renders the native dynamic module, for
/// jwt_scopes and the signing guards (see `frontend::Build::under_test`).
fn build_under_test() -> (Option<FilterBuild>, Option<String>) {
    match crate::frontend::Build::under_test() {
        crate::frontend::Build::Native(module) => (Some(FilterBuild::Native), Some(module.display().to_string())),
        crate::frontend::Build::Wasm(_) => (None, None),
    }
}

/// `overrides` rendering the native build (the dynamic module at
/// `module`) whatever the build under test: jwt_scopes and every signing
/// guard, frontend and sidecars.
pub fn native(mut overrides: Overrides, module: &Path) -> Overrides {
    overrides.lattice.filter = Some(FilterBuild::Native);
    overrides.lattice.native_module = Some(module.display().to_string());
    overrides
}

/// `overrides` with one token issuer: the IdP at `url` for `audience`.
pub fn with_issuer(mut overrides: Overrides, url: &str, jwks_uri: &str, audience: &str) -> Overrides {
    overrides.frontend.issuer = Some(url.into());
    overrides.frontend.jwks_uri = Some(jwks_uri.into());
    overrides.frontend.audiences = vec![audience.into()];
    overrides
}

/// The whole system on loopback: a test IdP over HTTPS, a running
/// lattice-sim, and the frontend envoy-gen renders for them in the real
/// Envoy, signing with `credentials`. Dropping it stops Envoy first.
pub struct System {
    // Field order is drop order.
    pub envoy: Envoy,
    pub sim: lattice_sim::front::Running,
    pub idp: TlsIdp,
    _dir: tempfile::TempDir,
}

impl System {
    pub fn start(
        sim: lattice_sim::front::Running,
        domain: &str,
        region: &str,
        audience: &str,
        credentials: &AwsCredentials,
    ) -> Result<System, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let ca = TestCa::new("IdP CA");
        let idp = TlsIdp::start(&ca, audience, false);
        // One bundle trusted for both the IdP and lattice-sim.
        let bundle = dir.path().join("ca-bundle.pem");
        std::fs::write(&bundle, format!("{}{}", ca.pem, sim.ca_pem)).map_err(|e| e.to_string())?;
        let overrides = with_issuer(
            local_overrides(domain, region, sim.addr.port(), &bundle),
            &idp.url,
            &idp.jwks_uri(),
            &idp.audience,
        );
        let config = envoy_gen::render_frontend(None, &overrides).map_err(|e| format!("envoy-gen: {e}"))?;
        let envoy = Envoy::start_as(&config, credentials)?;
        Ok(System {
            envoy,
            sim,
            idp,
            _dir: dir,
        })
    }
}
