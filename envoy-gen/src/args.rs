//! Command-line values that override the spec. Each flag is defined once,
//! in the group it belongs to, and the subcommands flatten the groups they
//! take; the library and the tests build the same structs.

use crate::spec::Credentials;
use clap::Args;

/// Where the services are and how Envoy reaches and signs for them
/// (frontend and sidecars).
#[derive(Debug, Default, Clone, Args)]
pub struct LatticeArgs {
    /// AWS region of the Lattice services.
    #[arg(long, value_name = "REGION")]
    pub region: Option<String>,
    /// DNS domain of the services: hosts default to `<name>.<domain>`.
    #[arg(long, value_name = "DOMAIN")]
    pub domain: Option<String>,
    /// Where Envoy's AWS credentials come from: `default` (full chain), `container` (the ECS
    /// task role only) or `env` (environment only).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub credentials: Option<Credentials>,
    /// Path of jwt_scopes.wasm where Envoy runs: the frontend's filter and the guard that refuses
    /// unsigned requests (default /etc/envoy/jwt_scopes.wasm).
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<String>,
    /// Connect to Lattice here (local testing); SNI, Host and signature keep the service name.
    #[arg(long, value_name = "HOST:PORT")]
    pub lattice_endpoint: Option<String>,
    /// CA bundle that verifies Lattice services (default: the system bundle).
    #[arg(long, value_name = "PEM")]
    pub lattice_ca: Option<String>,
}

/// The listener and admin addresses of the Envoy being rendered.
#[derive(Debug, Default, Clone, Args)]
pub struct ListenArgs {
    /// Listener address (frontend default 0.0.0.0:8080, sidecar 127.0.0.1:15001).
    #[arg(long, value_name = "ADDR:PORT")]
    pub listen: Option<String>,
    /// Admin interface address; must be loopback (frontend default 127.0.0.1:9901, sidecar 127.0.0.1:15000).
    #[arg(long, value_name = "ADDR:PORT")]
    pub admin: Option<String>,
}

/// The frontend's own settings.
#[derive(Debug, Default, Clone, Args)]
pub struct FrontendArgs {
    /// Token issuer (`iss`), an https URL.
    #[arg(long, value_name = "URL")]
    pub issuer: Option<String>,
    /// Accepted audience (`aud`); repeat for several.
    #[arg(long = "audience", value_name = "AUD")]
    pub audiences: Vec<String>,
    /// JWKS endpoint of the issuer, an https URL.
    #[arg(long, value_name = "URL")]
    pub jwks_uri: Option<String>,
    /// A Lattice service; repeat for several (default app1, app2, app3).
    #[arg(long = "service", value_name = "NAME[=HOST]")]
    pub services: Vec<String>,
    /// Service for paths that match no other (default: the first).
    #[arg(long, value_name = "NAME")]
    pub default_service: Option<String>,
    /// Proxies in front of the frontend trusted to append to X-Forwarded-For (default 0).
    #[arg(long, value_name = "N")]
    pub xff_trusted_hops: Option<u32>,
    /// No token validation: only sign and route (the reference sample without OAuth).
    #[arg(long)]
    pub no_oauth: bool,
    /// CA bundle that verifies JWKS servers (default: the system bundle).
    #[arg(long, value_name = "PEM")]
    pub jwks_ca: Option<String>,
    #[command(flatten)]
    pub listen: ListenArgs,
}

/// Every override of the spec, as `envoy-gen frontend` takes them.
#[derive(Debug, Default, Clone, Args)]
pub struct Overrides {
    #[command(flatten)]
    pub lattice: LatticeArgs,
    #[command(flatten)]
    pub frontend: FrontendArgs,
}
