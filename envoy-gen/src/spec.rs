//! The spec file, as written: typed parsing only. Unknown fields and wrong
//! types are errors with line and column (serde-saphyr); every value that a
//! later semantic check may reject keeps its location (`Spanned`).

use jwt_scopes_core::config::RawConfig;
use schemars::JsonSchema;
use serde::Deserialize;
use serde_saphyr::Spanned;

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Line and column in the spec file.
    File { line: u32, column: u32 },
    /// A command-line flag.
    Flag(&'static str),
    /// A built-in default.
    Default,
}

/// A value and where it came from.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Located<T> {
    pub value: T,
    pub origin: Origin,
}

impl<T> Located<T> {
    pub fn flag(value: T, flag: &'static str) -> Self {
        Located {
            value,
            origin: Origin::Flag(flag),
        }
    }

    pub fn default(value: T) -> Self {
        Located {
            value,
            origin: Origin::Default,
        }
    }
}

impl<T> From<Spanned<T>> for Located<T> {
    fn from(spanned: Spanned<T>) -> Self {
        Located {
            origin: Origin::File {
                line: spanned.referenced.line() as u32,
                column: spanned.referenced.column() as u32,
            },
            value: spanned.value,
        }
    }
}

/// How Envoy gets the AWS credentials it signs with.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum Credentials {
    /// Environment variables only (`AWS_ACCESS_KEY_ID`, ...): for tests, demos and
    /// benchmarks; never contacts the instance metadata address.
    Env,
    /// The container credentials endpoint only (`AWS_CONTAINER_CREDENTIALS_FULL_URI`
    /// or `_RELATIVE_URI`, as ECS sets for a task role): never falls back to the
    /// EC2 instance role, which the default chain does on ECS on EC2.
    Container,
    /// Envoy's full default chain (environment, profile, ECS task role, EC2
    /// instance role): for deployments on ECS or EC2.
    Default,
}

/// The whole system: the frontend (top-level fields), the Lattice services
/// with their roles, whom each may call and who may call it, and the service
/// network. `envoy-gen frontend`, `sidecar` and `policies` render it; flags
/// override it. A frontend-only spec needs no `account`, roles or callers.
#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct Spec {
    /// The 12-digit AWS account of the roles and services (needed by `policies`).
    #[schemars(with = "Option<String>")]
    pub account: Option<Spanned<String>>,
    /// The frontend's own identity.
    pub frontend: Option<FrontendSpec>,
    /// The service network's auth policy.
    pub network: Option<NetworkSpec>,
    /// Listener address, `ADDR:PORT` (default `0.0.0.0:8080`).
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    /// TLS on the listener (default: plain HTTP, e.g. behind a load balancer).
    #[schemars(with = "Option<ListenerTls>")]
    pub tls: Option<Spanned<ListenerTls>>,
    /// How many proxies in front of the frontend append to `X-Forwarded-For`
    /// and are trusted to (default 0: clients connect directly; 1 behind a
    /// load balancer such as an ALB). Lattice receives one address: the
    /// client's as those proxies saw it.
    #[schemars(with = "Option<u32>")]
    pub xff_trusted_hops: Option<Spanned<u32>>,
    /// Admin interface, `ADDR:PORT` on a loopback address (default `127.0.0.1:9901`).
    #[schemars(with = "Option<String>")]
    pub admin: Option<Spanned<String>>,
    /// AWS region of the Lattice services, e.g. `us-west-2`.
    #[schemars(with = "Option<String>")]
    pub region: Option<Spanned<String>>,
    /// DNS domain of the services: a service's host defaults to `<name>.<domain>`.
    #[schemars(with = "Option<String>")]
    pub domain: Option<Spanned<String>>,
    /// Validate OAuth2 bearer tokens (default true). `false` is the reference
    /// sample's deploy without OAuth: requests are only signed.
    #[schemars(with = "Option<bool>")]
    pub oauth: Option<Spanned<bool>>,
    /// Token issuers; a token from any of them is accepted.
    #[schemars(with = "Option<Vec<IssuerSpec>>")]
    pub issuers: Option<Vec<Spanned<IssuerSpec>>>,
    /// Lattice services (default app1, app2, app3). `/<path>` routes to each.
    #[schemars(with = "Option<Vec<ServiceSpec>>")]
    pub services: Option<Vec<Spanned<ServiceSpec>>>,
    /// The service for paths that match no other (default: the first).
    #[schemars(with = "Option<String>")]
    pub default_service: Option<Spanned<String>>,
    /// Path of `jwt_scopes.wasm` where Envoy runs (default `/etc/envoy/jwt_scopes.wasm`):
    /// the frontend's filter, and the guard that refuses unsigned requests on the
    /// frontend and the sidecars.
    #[schemars(with = "Option<String>")]
    pub wasm: Option<Spanned<String>>,
    /// AWS credentials for signing (default `default`).
    #[schemars(with = "Option<Credentials>")]
    pub credentials: Option<Spanned<Credentials>>,
    /// HTTP methods the frontend and the sidecars forward, upper case (default
    /// GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS). Any other method, in
    /// any case, is refused with 405; TRACE and CONNECT cannot be allowed.
    #[schemars(with = "Option<Vec<String>>")]
    pub methods: Option<Spanned<Vec<Spanned<String>>>>,
    /// Where and how to reach Lattice.
    pub lattice: Option<LatticeSpec>,
    /// CA bundle that verifies the JWKS servers (default: the system bundle).
    #[schemars(with = "Option<String>")]
    pub jwks_ca: Option<Spanned<String>>,
    /// The jwt_scopes filter's configuration (see the README); `payload_metadata_keys`
    /// is set from `issuers`.
    #[schemars(with = "Option<RawConfig>")]
    pub filter: Option<Spanned<RawConfig>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ListenerTls {
    /// PEM certificate chain.
    pub cert: String,
    /// PEM private key.
    pub key: String,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct IssuerSpec {
    /// Short name: Envoy provider, cluster and metadata key (`[a-z0-9_]+`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// The `iss` claim, an https URL.
    #[schemars(with = "String")]
    pub issuer: Spanned<String>,
    /// The JWKS endpoint, an https URL.
    #[schemars(with = "String")]
    pub jwks_uri: Spanned<String>,
    /// Accepted `aud` values (at least one).
    #[schemars(with = "Vec<String>")]
    pub audiences: Spanned<Vec<Spanned<String>>>,
    /// How long fetched keys are cached (default 600).
    pub jwks_cache_seconds: Option<u32>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name (`[a-z0-9][a-z0-9-]*`).
    #[schemars(with = "String")]
    pub name: Spanned<String>,
    /// Lattice service DNS name (default `<name>.<domain>`).
    #[schemars(with = "Option<String>")]
    pub host: Option<Spanned<String>>,
    /// Path prefix routed to the service, matched on whole segments (default `/<name>`).
    #[schemars(with = "Option<String>")]
    pub path: Option<Spanned<String>>,
    /// The Lattice service id (`svc-` and 17 hex digits) once it exists; narrows
    /// the callers' identity policies to this service (without it they name
    /// every service of the account).
    #[schemars(with = "Option<String>")]
    pub id: Option<Spanned<String>>,
    /// The IAM role the service (and its sidecar) runs as: a role name in
    /// `account`, or a role ARN. Needed when it calls another service or is named
    /// as a caller.
    #[schemars(with = "Option<String>")]
    pub role: Option<Spanned<String>>,
    /// Services this one may call through its sidecar (names of this spec).
    #[schemars(with = "Option<Vec<String>>")]
    pub calls: Option<Vec<Spanned<String>>>,
    /// Who may call this service; absent or empty: nobody.
    #[schemars(with = "Option<Vec<CallerSpec>>")]
    pub callers: Option<Vec<Spanned<CallerSpec>>>,
    /// Let the app pass the user's `x-jwt-*` headers on through its sidecar
    /// (default false: the sidecar removes them). See the README on the
    /// confused-deputy risk: the app can then claim any scope.
    #[schemars(with = "Option<bool>")]
    pub propagate_identity: Option<Spanned<bool>>,
    /// The service's egress sidecar.
    pub sidecar: Option<SidecarSpec>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrontendSpec {
    /// The IAM role the frontend Envoy signs as: a role name in `account`, or a role ARN.
    #[schemars(with = "Option<String>")]
    pub role: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The service network's name (used in the README's commands only).
    #[schemars(with = "Option<String>")]
    pub name: Option<Spanned<String>>,
    /// Who may enter the service network: `frontend`, a service name, `anonymous`,
    /// an account id or an IAM role/user ARN. Default: the frontend, every service
    /// that calls another, and `anonymous` when a service admits it.
    #[schemars(with = "Option<Vec<String>>")]
    pub principals: Option<Vec<Spanned<String>>>,
}

/// One kind of caller a service admits.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerSpec {
    /// `frontend` (users arriving through the frontend), the name of a
    /// service of this spec, or `anonymous` (anyone, signed or not).
    #[schemars(with = "String")]
    pub from: Spanned<String>,
    /// OAuth scopes the user's token must all carry (`frontend`, or a service
    /// with `propagate_identity`).
    #[schemars(with = "Option<Vec<String>>")]
    pub scopes: Option<Spanned<Vec<Spanned<String>>>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SidecarSpec {
    /// The app's way out, `ADDR:PORT` on a loopback address (default `127.0.0.1:15001`).
    #[schemars(with = "Option<String>")]
    pub listen: Option<Spanned<String>>,
    /// Admin interface, on a loopback address (default `127.0.0.1:15000`).
    #[schemars(with = "Option<String>")]
    pub admin: Option<Spanned<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatticeSpec {
    /// Connect here instead of each service's host, `HOST:PORT` (local testing);
    /// SNI, Host and the signature keep the service name.
    #[schemars(with = "Option<String>")]
    pub endpoint: Option<Spanned<String>>,
    /// CA bundle that verifies the services (default: the system bundle).
    #[schemars(with = "Option<String>")]
    pub ca: Option<Spanned<String>>,
}

/// A typed-parsing failure.
#[derive(Debug)]
pub struct ParseError {
    pub line: Option<(u32, u32)>,
    pub message: String,
}

/// Parses a spec. YAML aliases are bounded by serde-saphyr's default budget,
/// so a hostile file cannot expand without limit.
pub fn parse(text: &str) -> Result<Spec, ParseError> {
    if text.trim().is_empty() {
        return Ok(Spec::default());
    }
    serde_saphyr::from_str(text).map_err(|e| {
        let location = e.location().map(|l| (l.line() as u32, l.column() as u32));
        let plain = e.without_snippet().to_string();
        // serde-saphyr appends " at line L, column C"; the location is
        // reported separately.
        let message = match plain.rfind(" at line ") {
            Some(i) if location.is_some() => plain.get(..i).unwrap_or(&plain).to_string(),
            _ => plain,
        };
        ParseError {
            line: location,
            message,
        }
    })
}

/// The JSON Schema of the spec, for editor completion.
pub fn schema() -> Result<serde_json::Value, String> {
    serde_json::to_value(schemars::schema_for!(Spec)).map_err(|e| format!("bug in envoy-gen: the spec's schema: {e}"))
}
