//! Command-line values that override the spec. Each flag is defined once,
//! in the group it belongs to, and the subcommands flatten the groups they
//! take; the library and the tests build the same structs.

use crate::spec::{Credentials, FilterBuild};
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
    /// task role or EKS Pod Identity only), `web_identity` (IRSA only: the role the spec gives
    /// this Envoy) or `env` (environment only).
    #[arg(long, value_enum, value_name = "SOURCE")]
    pub credentials: Option<Credentials>,
    /// Path of jwt_scopes.wasm where Envoy runs: the frontend's filter and the guard that refuses
    /// unsigned requests (default /etc/envoy/jwt_scopes.wasm).
    #[arg(long, value_name = "PATH")]
    pub wasm: Option<String>,
    /// The build of the frontend's jwt_scopes filter and of every Lattice cluster's signing
    /// guard (frontend and sidecars): `wasm` (default, portable) or `native` (Envoy 1.40's
    /// dynamic-module ABI only; no V8).
    #[arg(long, value_enum, value_name = "BUILD")]
    pub filter: Option<FilterBuild>,
    /// Path of libjwt_scopes_native.so where Envoy runs, for `--filter native`
    /// (default /usr/local/lib/envoy/libjwt_scopes_native.so).
    #[arg(long, value_name = "PATH")]
    pub native_module: Option<String>,
    /// Connect to Lattice here (local testing); SNI, Host and signature keep the service name.
    #[arg(long, value_name = "HOST:PORT")]
    pub lattice_endpoint: Option<String>,
    /// CA bundle that verifies Lattice services (default: the system bundle).
    #[arg(long, value_name = "PEM")]
    pub lattice_ca: Option<String>,
    /// The host of a spec service, overriding its `host` and `<name>.<domain>`: for a service
    /// without a custom domain name, the DNS name Lattice generated for it
    /// (`<name>-<id>.<id>.vpc-lattice-svcs.<region>.on.aws`); repeat for several.
    #[arg(long = "service-host", value_name = "NAME=HOST")]
    pub service_hosts: Vec<String>,
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
    /// Instead of --audience, for access tokens without `aud` (Amazon Cognito):
    /// an accepted app client id (`client_id`); repeat for several.
    #[arg(long = "client-id", value_name = "ID")]
    pub client_ids: Vec<String>,
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

/// The CPU architecture of the images an ECS task runs.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Arch {
    #[default]
    #[value(name = "x86_64")]
    X86_64,
    #[value(name = "arm64")]
    Arm64,
}

/// How the system runs on ECS (`envoy-gen ecs`): images, sizes, logs. The
/// spec says everything else; the task definitions carry no value of it
/// that the image's entrypoint would not read from the spec itself.
#[derive(Debug, Default, Clone, Args)]
pub struct EcsArgs {
    /// The lattice-jwt image holding the spec at /etc/lattice-jwt/spec.yaml
    /// (deploy/ecs/Dockerfile): the frontend and every sidecar run it.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// A service's application image; one for every service of the spec.
    #[arg(long = "app-image", value_name = "SERVICE=IMAGE")]
    pub app_images: Vec<String>,
    /// The task execution role, which pulls the images and writes the logs
    /// (default arn:aws:iam::<account>:role/ecsTaskExecutionRole).
    #[arg(long, value_name = "ARN")]
    pub execution_role: Option<String>,
    /// The CloudWatch Logs group of every container (default /ecs/lattice-jwt).
    #[arg(long, value_name = "NAME")]
    pub log_group: Option<String>,
    #[command(flatten)]
    pub task: TaskArgs,
}

/// How each task runs, for `envoy-gen ecs` and `envoy-gen cloudformation`
/// alike (the stack provides the images, roles and log group itself).
#[derive(Debug, Default, Clone, Args)]
pub struct TaskArgs {
    /// The port a service's application listens on (default: its `port` in the spec, 8080).
    #[arg(long = "app-port", value_name = "SERVICE=PORT")]
    pub app_ports: Vec<String>,
    /// Prefix of every task definition family (default: the service network's
    /// name and `-`, or none).
    #[arg(long, value_name = "PREFIX")]
    pub family_prefix: Option<String>,
    /// CPU units of each task, a Fargate size: 256, 512, 1024, ... (default 512).
    #[arg(long, value_name = "UNITS")]
    pub cpu: Option<u32>,
    /// Memory of each task in MiB, one that Fargate allows with --cpu (default 1024).
    #[arg(long, value_name = "MIB")]
    pub memory: Option<u32>,
    /// The CPU architecture the images are built for.
    #[arg(long, value_enum, default_value_t = Arch::X86_64)]
    pub arch: Arch,
    /// Render no frontend task: only the services, calling each other through
    /// their sidecars (the reference sample deployed with enable_oauth=False
    /// runs no Envoy at the edge).
    #[arg(long)]
    pub no_frontend: bool,
    /// CA bundle in the image that verifies the Lattice services (LATTICE_CA
    /// of every Envoy), e.g. the ACM Private CA behind their custom domain names.
    #[arg(long, value_name = "PEM")]
    pub lattice_ca: Option<String>,
}
