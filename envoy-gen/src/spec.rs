//! The spec file, as written: typed parsing only. Unknown fields, missing
//! fields and wrong types are errors naming the field, with line and
//! column, all of them at once (`yaml.rs` reads the file); every value that
//! a later semantic check may reject keeps its location (`Located`). A list
//! may be written as its single item (`audiences: api://default`).

pub use crate::problem::{Origin, Problem};
use crate::yaml;
use jwt_scopes_core::config::RawConfig;
use schemars::{JsonSchema, Schema, SchemaGenerator};
use serde::de::{self, Deserializer, SeqAccess, Visitor};
use serde::Deserialize;
use std::borrow::Cow;
use std::fmt;
use std::marker::PhantomData;

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

/// Read from a spec file, a value knows its line and column (see
/// `yaml.rs`); from any other deserializer it is the value alone, with a
/// default origin.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for Located<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(yaml::LOCATED, LocatedVisitor(PhantomData))
    }
}

struct LocatedVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for LocatedVisitor<T> {
    type Value = Located<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a value")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<Located<T>, D::Error> {
        T::deserialize(deserializer).map(Located::default)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<Located<T>, A::Error> {
        let bug = || de::Error::custom("bug in envoy-gen: a value without its position");
        let line = seq.next_element::<u32>()?.ok_or_else(bug)?;
        let column = seq.next_element::<u32>()?.ok_or_else(bug)?;
        let value = seq.next_element::<T>()?.ok_or_else(bug)?;
        Ok(Located {
            value,
            origin: Origin::File { line, column },
        })
    }
}

/// The schema of the value itself: the position is not written.
impl<T: JsonSchema> JsonSchema for Located<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        T::schema_name()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        generator.subschema_for::<T>()
    }
}

/// A list in the spec: a YAML sequence, or a single item for a list of one
/// (`audiences: api://default` is `audiences: [api://default]`).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OneOrMany<T>(pub Vec<T>);

impl<T> Default for OneOrMany<T> {
    fn default() -> Self {
        OneOrMany(Vec::new())
    }
}

impl<T> std::ops::Deref for OneOrMany<T> {
    type Target = Vec<T>;

    fn deref(&self) -> &Vec<T> {
        &self.0
    }
}

impl<T> IntoIterator for OneOrMany<T> {
    type Item = T;
    type IntoIter = std::vec::IntoIter<T>;

    fn into_iter(self) -> Self::IntoIter {
        self.0.into_iter()
    }
}

/// Read from a spec file, a value that is not a sequence is the only item
/// (see `yaml.rs`); any other deserializer reads a sequence.
impl<'de, T: Deserialize<'de>> Deserialize<'de> for OneOrMany<T> {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        deserializer.deserialize_newtype_struct(yaml::ONE_OR_MANY, OneOrManyVisitor(PhantomData))
    }
}

struct OneOrManyVisitor<T>(PhantomData<T>);

impl<'de, T: Deserialize<'de>> Visitor<'de> for OneOrManyVisitor<T> {
    type Value = OneOrMany<T>;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        f.write_str("a list or a single item")
    }

    fn visit_newtype_struct<D: Deserializer<'de>>(self, deserializer: D) -> Result<OneOrMany<T>, D::Error> {
        Vec::deserialize(deserializer).map(OneOrMany)
    }

    fn visit_seq<A: SeqAccess<'de>>(self, mut seq: A) -> Result<OneOrMany<T>, A::Error> {
        let mut items = Vec::new();
        while let Some(item) = seq.next_element()? {
            items.push(item);
        }
        Ok(OneOrMany(items))
    }
}

/// Either the item's schema or a list of them.
impl<T: JsonSchema> JsonSchema for OneOrMany<T> {
    fn inline_schema() -> bool {
        true
    }

    fn schema_name() -> Cow<'static, str> {
        format!("OneOrMany_{}", T::schema_name()).into()
    }

    fn json_schema(generator: &mut SchemaGenerator) -> Schema {
        let item = generator.subschema_for::<T>();
        schemars::json_schema!({
            "anyOf": [item, {"type": "array", "items": item}]
        })
    }
}

/// The build of this project's filters Envoy loads: the frontend's jwt_scopes
/// filter and the signing guard of every Lattice cluster (frontend and sidecars).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize, JsonSchema, clap::ValueEnum)]
#[serde(rename_all = "snake_case")]
pub enum FilterBuild {
    /// The proxy-wasm module, run by Envoy's V8: portable across Envoy versions.
    Wasm,
    /// The Envoy dynamic module (a shared library): no V8, built against Envoy
    /// 1.40's dynamic-module ABI and only for it.
    Native,
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
    /// Web identity only (IRSA on EKS): Envoy exchanges the token file named by
    /// `AWS_WEB_IDENTITY_TOKEN_FILE` at STS for the credentials of the role
    /// the spec gives this Envoy (the frontend's, or the service's); never
    /// the instance role.
    #[value(name = "web_identity")]
    WebIdentity,
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
    pub account: Option<Located<String>>,
    /// The frontend's own identity.
    pub frontend: Option<FrontendSpec>,
    /// The service network's auth policy.
    pub network: Option<NetworkSpec>,
    /// Listener address, `ADDR:PORT` (default `0.0.0.0:8080`).
    pub listen: Option<Located<String>>,
    /// TLS on the listener (default: plain HTTP, e.g. behind a load balancer).
    pub tls: Option<Located<ListenerTls>>,
    /// Which build of the jwt_scopes filter (frontend) and of the signing guard
    /// (every Lattice cluster of the frontend and of the sidecars) Envoy loads:
    /// `wasm` (default; proxy-wasm in V8, portable across Envoy versions) or
    /// `native` (the Envoy dynamic module: no V8 at all, tied to Envoy 1.40's ABI).
    pub filter_build: Option<Located<FilterBuild>>,
    /// Path of `libjwt_scopes_native.so` where Envoy runs, for `filter_build: native`
    /// (default `/usr/local/lib/envoy/libjwt_scopes_native.so`).
    pub native_module: Option<Located<String>>,
    /// How many proxies in front of the frontend append to `X-Forwarded-For`
    /// and are trusted to (default 0: clients connect directly; 1 behind a
    /// load balancer such as an ALB). Lattice receives one address: the
    /// client's as those proxies saw it.
    pub xff_trusted_hops: Option<Located<u32>>,
    /// Admin interface, `ADDR:PORT` on a loopback address (default `127.0.0.1:9901`).
    pub admin: Option<Located<String>>,
    /// AWS region of the Lattice services, e.g. `us-west-2`.
    pub region: Option<Located<String>>,
    /// DNS domain of the services: a service's host defaults to `<name>.<domain>`.
    /// Without it, a service without `host` has no custom domain name: its host
    /// is the DNS name Lattice generates, given at deploy time with
    /// `--service-host` (`LATTICE_SERVICE_HOSTS` in the image).
    pub domain: Option<Located<String>>,
    /// Validate OAuth2 bearer tokens (default true). `false` is the reference
    /// sample's deploy without OAuth: requests are only signed.
    pub oauth: Option<Located<bool>>,
    /// Token issuers; a token from any of them is accepted.
    pub issuers: Option<OneOrMany<Located<IssuerSpec>>>,
    /// Lattice services (default app1, app2, app3). `/<path>` routes to each.
    pub services: Option<OneOrMany<Located<ServiceSpec>>>,
    /// The service for paths that match no other (default: the first).
    pub default_service: Option<Located<String>>,
    /// Path of `jwt_scopes.wasm` where Envoy runs (default `/etc/envoy/jwt_scopes.wasm`):
    /// the frontend's filter, and the guard that refuses unsigned requests on the
    /// frontend and the sidecars.
    pub wasm: Option<Located<String>>,
    /// AWS credentials for signing (default `default`).
    pub credentials: Option<Located<Credentials>>,
    /// HTTP methods the frontend and the sidecars forward, upper case (default
    /// GET, HEAD, POST, PUT, PATCH, DELETE, OPTIONS). Any other method, in
    /// any case, is refused with 405; TRACE and CONNECT cannot be allowed.
    pub methods: Option<Located<OneOrMany<Located<String>>>>,
    /// Where and how to reach Lattice.
    pub lattice: Option<LatticeSpec>,
    /// CA bundle that verifies the JWKS servers (default: the system bundle).
    pub jwks_ca: Option<Located<String>>,
    /// The jwt_scopes filter's configuration (see the book, docs/src/filter.md); `payload_metadata_keys`
    /// and `client_ids` are set from `issuers`.
    pub filter: Option<Located<RawConfig>>,
    /// Cross-origin requests from browser apps (default: none are allowed).
    /// Preflight requests are answered by the frontend itself, without a
    /// token; every other request still needs one.
    pub cors: Option<Located<CorsSpec>>,
}

/// The frontend's CORS policy, as Envoy's CORS filter applies it.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CorsSpec {
    /// The origins allowed, compared exactly, as browsers send them:
    /// `https://app.example.com`, with the port when it is not the default.
    /// No wildcards.
    pub allow_origins: Located<OneOrMany<Located<String>>>,
    /// The methods a preflight allows (default: the spec's `methods`); each
    /// must be one of `methods`.
    pub allow_methods: Option<Located<OneOrMany<Located<String>>>>,
    /// The request headers a preflight allows (default `authorization`,
    /// `content-type`).
    pub allow_headers: Option<Located<OneOrMany<Located<String>>>>,
    /// Response headers scripts may read besides the CORS-safelisted ones.
    pub expose_headers: Option<Located<OneOrMany<Located<String>>>>,
    /// How long, in seconds, a browser may cache a preflight's answer
    /// (at most 86400).
    pub max_age: Option<Located<u32>>,
    /// Let browsers send credentials (cookies, TLS client certificates) and
    /// show the answer (default false; a bearer token needs none).
    pub allow_credentials: Option<Located<bool>>,
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
    pub name: Located<String>,
    /// The `iss` claim, an https URL.
    pub issuer: Located<String>,
    /// The JWKS endpoint, an https URL.
    pub jwks_uri: Located<String>,
    /// Accepted `aud` values (at least one). An issuer has `audiences` or
    /// `client_ids`, never both.
    pub audiences: Option<Located<OneOrMany<Located<String>>>>,
    /// For an issuer whose access tokens name the app client in `client_id`
    /// and carry no `aud` (Amazon Cognito): the app client ids whose access
    /// tokens are accepted (at least one). A token of this issuer is refused
    /// unless its `client_id` is one of them, its `token_use` is `access` and
    /// it has no `aud`.
    pub client_ids: Option<Located<OneOrMany<Located<String>>>>,
    /// How long fetched keys are cached (default 600).
    pub jwks_cache_seconds: Option<u32>,
    /// How many verified tokens of this issuer each Envoy worker keeps, so
    /// that a token seen again skips its signature check (default 1000; 0
    /// turns the cache off). A cached token is still refused once it
    /// expires; a token signed by a key later removed from the JWKS stays
    /// accepted while cached, until its `exp` (see SECURITY.md).
    pub token_cache_size: Option<Located<u32>>,
}

#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct ServiceSpec {
    /// Service name (`[a-z0-9][a-z0-9-]*`).
    pub name: Located<String>,
    /// Lattice service DNS name (default `<name>.<domain>`; with neither, the
    /// name Lattice generates, given at deploy time with `--service-host`).
    pub host: Option<Located<String>>,
    /// Path prefix routed to the service, matched on whole segments (default `/<name>`).
    pub path: Option<Located<String>>,
    /// The port the application listens on in its task (default 8080): the
    /// Lattice target group's port and the task's port mapping.
    pub port: Option<Located<u16>>,
    /// The path Lattice's health checks request from the application
    /// (default `/`, Lattice's own default).
    pub health_check: Option<Located<String>>,
    /// The Lattice service id (`svc-` and 17 hex digits) once it exists; narrows
    /// the callers' identity policies to this service (without it they name
    /// every service of the account).
    pub id: Option<Located<String>>,
    /// The IAM role the service (and its sidecar) runs as: a role name in
    /// `account`, or a role ARN. Needed when it calls another service or is named
    /// as a caller.
    pub role: Option<Located<String>>,
    /// Services this one may call through its sidecar (names of this spec).
    pub calls: Option<OneOrMany<Located<String>>>,
    /// Who may call this service; absent or empty: nobody.
    pub callers: Option<OneOrMany<Located<CallerSpec>>>,
    /// Let the app pass the user's `x-jwt-*` headers on through its sidecar
    /// (default false: the sidecar removes them). See the book (docs/src/system.md) on the
    /// confused-deputy risk: the app can then claim any scope.
    pub propagate_identity: Option<Located<bool>>,
    /// The service's egress sidecar.
    pub sidecar: Option<SidecarSpec>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct FrontendSpec {
    /// The IAM role the frontend Envoy signs as: a role name in `account`, or a role ARN.
    pub role: Option<Located<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct NetworkSpec {
    /// The service network's name (used in the book's commands only).
    pub name: Option<Located<String>>,
    /// Who may enter the service network: `frontend`, a service name, `anonymous`,
    /// an account id or an IAM role/user ARN. Default: the frontend, every service
    /// that calls another, and `anonymous` when a service admits it.
    pub principals: Option<OneOrMany<Located<String>>>,
}

/// One kind of caller a service admits.
#[derive(Debug, Clone, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct CallerSpec {
    /// `frontend` (users arriving through the frontend), the name of a
    /// service of this spec, or `anonymous` (anyone, signed or not).
    pub from: Located<String>,
    /// OAuth scopes the user's token must all carry (`frontend`, or a service
    /// with `propagate_identity`).
    pub scopes: Option<Located<OneOrMany<Located<String>>>>,
}

#[derive(Debug, Clone, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct SidecarSpec {
    /// The app's way out, `ADDR:PORT` on a loopback address (default `127.0.0.1:15001`).
    pub listen: Option<Located<String>>,
    /// Admin interface, on a loopback address (default `127.0.0.1:15000`).
    pub admin: Option<Located<String>>,
}

#[derive(Debug, Default, Deserialize, JsonSchema)]
#[serde(deny_unknown_fields)]
pub struct LatticeSpec {
    /// Connect here instead of each service's host, `HOST:PORT` (local testing);
    /// SNI, Host and the signature keep the service name.
    pub endpoint: Option<Located<String>>,
    /// CA bundle that verifies the services (default: the system bundle).
    pub ca: Option<Located<String>>,
}

/// Parses a spec: every problem of its YAML and of its types, each with
/// line, column and field (see `yaml.rs`). An empty file is an empty spec.
pub fn parse(text: &str) -> Result<Spec, Vec<Problem>> {
    let root = yaml::parse(text).map_err(|e| {
        vec![Problem {
            origin: e
                .line
                .map_or(Origin::Default, |(line, column)| Origin::File { line, column }),
            field: String::new(),
            message: e.message,
        }]
    })?;
    if root.is_null() {
        return Ok(Spec::default());
    }
    yaml::read(&root)
}

/// The JSON Schema of the spec, for editor completion.
pub fn schema() -> Result<serde_json::Value, String> {
    serde_json::to_value(schemars::schema_for!(Spec)).map_err(|e| format!("bug in envoy-gen: the spec's schema: {e}"))
}
