//! Semantic checks of a spec (after flags are applied), reporting every
//! problem at once, and the validated model of the whole system that the
//! frontend, sidecar and policy renderings share. Renderings only ever see
//! a `System`.

use crate::args::{FrontendArgs, ListenArgs, Overrides};
pub use crate::problem::Problem;
use crate::spec::{
    CallerSpec, CorsSpec, Credentials, FilterBuild, IssuerSpec, Located, NetworkSpec, OneOrMany, Origin, ServiceSpec,
    Spec,
};
use jwt_scopes_core::config::{payload_headers, RawConfig};
use jwt_scopes_core::names::scope_header_name;
use jwt_scopes_core::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

mod addresses;
mod frontend;
mod issuers;
mod network;
mod services;

pub use addresses::*;
pub use frontend::*;
use issuers::*;
use network::*;
pub use services::*;

/// The system CA bundle on Debian/Ubuntu (and Amazon Linux's compat path).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const DEFAULT_WASM: &str = "/etc/envoy/jwt_scopes.wasm";
/// Where the image keeps the native build of the filter (`--filter native`).
pub const DEFAULT_NATIVE_MODULE: &str = "/usr/local/lib/envoy/libjwt_scopes_native.so";
pub const DEFAULT_SERVICES: [&str; 3] = ["app1", "app2", "app3"];
/// More trusted proxies than this is a typo.
pub const MAX_XFF_TRUSTED_HOPS: u32 = 10;
/// Verified tokens each Envoy worker keeps per issuer unless the spec says
/// otherwise: chosen from `make bench`'s cache sweep (bench/REPORT.md).
pub const DEFAULT_TOKEN_CACHE_SIZE: u32 = 1000;
/// More than this is a typo: 100,000 tokens of up to 4 KiB is 400 MiB per
/// worker.
pub const MAX_TOKEN_CACHE_SIZE: u32 = 100_000;
/// The port an application listens on unless its spec says otherwise.
pub const DEFAULT_APP_PORT: u16 = 8080;
/// What Lattice's health checks request unless a service's spec says
/// otherwise: Lattice's own default.
pub const DEFAULT_HEALTH_CHECK_PATH: &str = "/";
/// The methods forwarded unless the spec says otherwise: RFC 9110's, and
/// PATCH (RFC 5789), without TRACE and CONNECT.
pub const DEFAULT_METHODS: [&str; 7] = ["GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS"];

#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct SocketAddress {
    pub address: String,
    pub port: u16,
}

#[derive(Debug, Clone, Serialize)]
pub struct Tls {
    pub cert: String,
    pub key: String,
}

/// A TLS upstream: what to connect to, and the name to verify.
#[derive(Debug, Clone, Serialize)]
pub struct TlsUpstream {
    pub cluster: String,
    /// Where to connect.
    pub connect: SocketAddress,
    /// SNI and the certificate's expected DNS name.
    pub host: String,
    pub ca: String,
}

#[derive(Debug, Clone, Serialize)]
pub struct Provider {
    pub name: String,
    pub issuer: String,
    /// Accepted `aud` values, checked by jwt_authn; empty when the issuer's
    /// tokens are accepted by `client_ids` instead (never both empty).
    pub audiences: Vec<String>,
    /// Accepted `client_id` values (Amazon Cognito access tokens), checked by
    /// the filter; empty with `audiences`.
    pub client_ids: Vec<String>,
    pub jwks_uri: String,
    /// The JWKS URL's path and query: what the readiness health check asks.
    pub jwks_path: String,
    pub jwks: TlsUpstream,
    pub cache_seconds: u32,
    /// Verified tokens each worker keeps (jwt_authn's `jwt_cache_config`);
    /// 0: no cache.
    pub token_cache_size: u32,
    /// The native build only: jwt_authn's `forward_payload_header`, where the
    /// filter reads this issuer's verified payload (empty for wasm).
    pub payload_header: String,
}

/// An IAM role: what Lattice policies name, and what the files are called.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Role {
    /// `arn:aws:iam::<account>:role/<path/><name>`.
    pub arn: String,
    /// The role's name (the last path segment).
    pub name: String,
    /// Where the role is named, for problems found by a later rendering.
    #[serde(skip)]
    pub origin: Origin,
}

/// One kind of caller a service admits, validated.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub enum Caller {
    /// Requests signed by the frontend's role, whose verified token carried
    /// every scope: the header names the filter emits for them.
    Frontend { scope_headers: Vec<ScopeHeader> },
    /// Requests signed by another service's role; scope headers only when
    /// that service propagates the user's identity.
    Service {
        name: String,
        scope_headers: Vec<ScopeHeader>,
    },
    /// Anyone, signed or not (Lattice's principal `*`).
    Anonymous,
}

/// A scope and the header the filter emits for it.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct ScopeHeader {
    pub scope: String,
    pub header: String,
}

/// The loopback addresses of a service's sidecar.
#[derive(Debug, Clone, Serialize)]
pub struct SidecarAddresses {
    pub listen: SocketAddress,
    pub admin: SocketAddress,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    /// Where the service is named (its `name`, or the flag), for problems
    /// found by a later rendering.
    #[serde(skip)]
    pub origin: Origin,
    /// The spec's field path of the service (`services[1]`).
    #[serde(skip)]
    pub field: String,
    pub path: String,
    /// The port the application listens on in its task.
    pub port: u16,
    /// What Lattice's health checks request from the application.
    pub health_check_path: String,
    /// Where the frontend and the sidecars reach the service; `None` when
    /// the service has no custom domain name (neither `host` nor `domain`):
    /// its Lattice-generated DNS name is known only once it exists, and
    /// arrives through `--service-host`. The frontend and the sidecars that
    /// call it refuse to render without one ([`no_host`]).
    pub upstream: Option<TlsUpstream>,
    /// The Lattice service id, when known.
    pub id: Option<String>,
    pub role: Option<Role>,
    /// Services this one may call (names, in spec order).
    pub calls: Vec<String>,
    /// Who may call it; empty: nobody.
    pub callers: Vec<Caller>,
    pub propagate_identity: bool,
    pub sidecar: SidecarAddresses,
}

/// How Envoy signs for Lattice (frontend and sidecars alike).
#[derive(Debug, Clone, Serialize)]
pub struct Signing {
    pub region: String,
    /// `env`, `container`, `web_identity` or `default`.
    pub credentials: String,
}

/// The frontend's own settings, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Frontend {
    pub listen: SocketAddress,
    pub admin: SocketAddress,
    pub tls: Option<Tls>,
    /// Proxies in front trusted to append to `X-Forwarded-For`.
    pub xff_trusted_hops: u32,
    pub oauth: bool,
    pub providers: Vec<Provider>,
    /// The filter's JSON configuration.
    pub filter_config: String,
    /// The header the filter sets to the verified subject (the access log
    /// shows it), if any.
    pub subject_header: Option<String>,
    pub default_service: String,
    pub role: Option<Role>,
    /// Cross-origin requests from browsers, when allowed.
    pub cors: Option<Cors>,
}

/// The frontend's CORS policy, validated: values as Envoy's CORS policy
/// takes them.
#[derive(Debug, Clone, Serialize)]
pub struct Cors {
    /// Exact origins (`https://app.example.com`).
    pub allow_origins: Vec<String>,
    /// `Access-Control-Allow-Methods`, e.g. `GET, POST`.
    pub allow_methods: String,
    /// `Access-Control-Allow-Headers`.
    pub allow_headers: String,
    /// `Access-Control-Expose-Headers`; empty: none.
    pub expose_headers: String,
    /// `Access-Control-Max-Age`, in seconds.
    pub max_age: Option<u32>,
    pub allow_credentials: bool,
}

/// Who may enter the service network.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct Network {
    pub name: Option<String>,
    /// Principal ARNs (roles, account roots, users), sorted, no duplicates.
    pub principals: Vec<String>,
    /// Anyone, signed or not.
    pub anonymous: bool,
}

/// The build of this project's filters that Envoy loads: the frontend's
/// jwt_scopes filter and the signing guard of every Lattice cluster
/// (frontend and sidecars) come from the same module, wasm or native.
#[derive(Debug, Clone, Serialize)]
pub struct Modules {
    /// `wasm` (jwt_scopes.wasm in V8) or `native` (the Envoy 1.40 dynamic
    /// module: no V8 anywhere).
    pub build: &'static str,
    /// `jwt_scopes.wasm` where Envoy runs (the wasm build).
    pub wasm: String,
    /// `libjwt_scopes_native.so` where Envoy runs (the native build).
    pub native_module: String,
}

/// The whole validated system: what every rendering reads.
#[derive(Debug, Clone, Serialize)]
pub struct System {
    pub account: Option<String>,
    /// The methods the frontend and the sidecars forward (upper case); any
    /// other is refused.
    pub methods: Vec<String>,
    /// The filters' build and where Envoy finds it.
    pub modules: Modules,
    /// The services' DNS domain, when the spec or flags give one.
    pub domain: Option<String>,
    pub signing: Signing,
    /// Where Envoy connects instead of each service's host
    /// (`lattice.endpoint`, local testing), when given.
    pub lattice_endpoint: Option<SocketAddress>,
    pub frontend: Frontend,
    pub services: Vec<Service>,
    pub network: Network,
}

impl System {
    pub fn service(&self, name: &str) -> Option<&Service> {
        self.services.iter().find(|s| s.name == name)
    }
}

/// The ARN of the role an Envoy signs as, which `credentials: web_identity`
/// must name in its configuration (Envoy exchanges the web identity token
/// for exactly that role); `None` when it signs otherwise.
pub fn signer_role(system: &System, role: Option<&Role>, field: &str) -> Result<Option<String>, Vec<Problem>> {
    if system.signing.credentials != "web_identity" {
        return Ok(None);
    }
    match role {
        Some(role) => Ok(Some(role.arn.clone())),
        None => Err(vec![Problem {
            origin: Origin::Default,
            field: field.into(),
            message: "is required with `credentials: web_identity`: Envoy exchanges its web identity token for \
                      this role"
                .into(),
        }]),
    }
}

/// The problem of a rendering that needs `service`'s host when it has none
/// (see [`Service::upstream`]), where the service is named.
pub fn no_host(service: &Service) -> Problem {
    Problem {
        origin: service.origin.clone(),
        field: format!("{}.host", service.field),
        message: format!(
            "service `{name}` has no host: give `host`, a `domain`, or --service-host {name}=HOST \
             (the Lattice service's DNS name; in the image: LATTICE_SERVICE_HOSTS)",
            name = service.name
        ),
    }
}

struct Checker {
    problems: Vec<Problem>,
}

impl Checker {
    fn problem(&mut self, origin: &Origin, field: impl Into<String>, message: impl Into<String>) {
        self.problems.push(Problem {
            origin: origin.clone(),
            field: field.into(),
            message: message.into(),
        });
    }
}

fn located<T: Clone>(spec: Option<&Located<T>>, flag: Option<T>, flag_name: &'static str) -> Option<Located<T>> {
    match (flag, spec) {
        (Some(value), _) => Some(Located::flag(value, flag_name)),
        (None, Some(located)) => Some(located.clone()),
        (None, None) => None,
    }
}

/// Where the frontend listens: its listener, admin interface, TLS and
/// trusted proxies.
struct Edge {
    listen: Option<SocketAddress>,
    admin: Option<SocketAddress>,
    tls: Option<Tls>,
    xff_trusted_hops: u32,
}

fn edge(c: &mut Checker, spec: &Spec, flags: &FrontendArgs) -> Edge {
    let (spec_listen, spec_admin, spec_hops) = (
        spec.listen.as_ref(),
        spec.admin.as_ref(),
        spec.xff_trusted_hops.as_ref(),
    );
    let listen = located(spec_listen, flags.listen.listen.clone(), "--listen")
        .unwrap_or_else(|| Located::default("0.0.0.0:8080".into()));
    let listen = socket_address(c, "listen", &listen);
    let admin = located(spec_admin, flags.listen.admin.clone(), "--admin")
        .unwrap_or_else(|| Located::default("127.0.0.1:9901".into()));
    let admin = loopback_address(c, "admin", &admin, ADMIN_REASON);
    let xff_trusted_hops = located(spec_hops, flags.xff_trusted_hops, "--xff-trusted-hops").map_or(0, |hops| {
        if hops.value > MAX_XFF_TRUSTED_HOPS {
            c.problem(
                &hops.origin,
                "xff_trusted_hops",
                format!(
                    "{} is more proxies than a request crosses (at most {MAX_XFF_TRUSTED_HOPS})",
                    hops.value
                ),
            );
        }
        hops.value
    });
    let tls = spec.tls.clone().map(|t| {
        for (field, path) in [("tls.cert", &t.value.cert), ("tls.key", &t.value.key)] {
            if path.is_empty() {
                c.problem(&t.origin, field, "must not be empty");
            }
        }
        Tls {
            cert: t.value.cert,
            key: t.value.key,
        }
    });
    Edge {
        listen,
        admin,
        tls,
        xff_trusted_hops,
    }
}

/// Where the services are: the region, the DNS domain, the account, and
/// how Envoy reaches and verifies them and the JWKS servers.
struct Place {
    region: String,
    domain: Option<Located<String>>,
    account: Option<Located<String>>,
    lattice_ca: Located<String>,
    jwks_ca: Located<String>,
    lattice_endpoint: Option<SocketAddress>,
}

fn place(c: &mut Checker, spec: &Spec, overrides: &Overrides) -> Place {
    let (lattice_flags, flags) = (&overrides.lattice, &overrides.frontend);
    let region = match located(spec.region.as_ref(), lattice_flags.region.clone(), "--region") {
        None => {
            c.problem(
                &Origin::Default,
                "region",
                "is required (the AWS region of the Lattice services, e.g. us-west-2)",
            );
            String::new()
        }
        Some(r) => {
            if !is_region(&r.value) {
                c.problem(
                    &r.origin,
                    "region",
                    format!("`{}` is not an AWS region name like us-west-2", r.value),
                );
            }
            r.value
        }
    };
    let domain = located(spec.domain.as_ref(), lattice_flags.domain.clone(), "--domain");
    if let Some(d) = domain.as_ref().filter(|d| !is_dns_name(&d.value)) {
        c.problem(&d.origin, "domain", format!("`{}` is not a DNS name", d.value));
    }
    let account = spec.account.clone();
    if let Some(a) = account.as_ref().filter(|a| !is_account_id(&a.value)) {
        c.problem(
            &a.origin,
            "account",
            format!("`{}` is not a 12-digit AWS account id", a.value),
        );
    }
    let lattice = spec.lattice.as_ref();
    let lattice_ca = located(
        lattice.and_then(|l| l.ca.as_ref()),
        lattice_flags.lattice_ca.clone(),
        "--lattice-ca",
    )
    .unwrap_or_else(|| Located::default(SYSTEM_CA_BUNDLE.into()));
    check_path(c, "lattice.ca", &lattice_ca);
    let jwks_ca = located(spec.jwks_ca.as_ref(), flags.jwks_ca.clone(), "--jwks-ca")
        .unwrap_or_else(|| Located::default(SYSTEM_CA_BUNDLE.into()));
    check_path(c, "jwks_ca", &jwks_ca);
    let lattice_endpoint = located(
        lattice.and_then(|l| l.endpoint.as_ref()),
        lattice_flags.lattice_endpoint.clone(),
        "--lattice-endpoint",
    )
    .and_then(|e| host_port(c, "lattice.endpoint", &e));
    Place {
        region,
        domain,
        account,
        lattice_ca,
        jwks_ca,
        lattice_endpoint,
    }
}

/// The filters' build (with where it was chosen) and where Envoy finds it.
fn modules(c: &mut Checker, spec: &Spec, overrides: &Overrides) -> (Modules, Option<Located<FilterBuild>>) {
    let lattice_flags = &overrides.lattice;
    let wasm = located(spec.wasm.as_ref(), lattice_flags.wasm.clone(), "--wasm")
        .unwrap_or_else(|| Located::default(DEFAULT_WASM.into()));
    if wasm.value.is_empty() {
        c.problem(&wasm.origin, "wasm", "must not be empty");
    }
    let filter_build_at = located(spec.filter_build.as_ref(), lattice_flags.filter, "--filter");
    let native_module = located(
        spec.native_module.as_ref(),
        lattice_flags.native_module.clone(),
        "--native-module",
    )
    .unwrap_or_else(|| Located::default(DEFAULT_NATIVE_MODULE.into()));
    if native_module.value.is_empty() {
        c.problem(&native_module.origin, "native_module", "must not be empty");
    }
    let modules = Modules {
        build: match filter_build_at.as_ref().map_or(FilterBuild::Wasm, |f| f.value) {
            FilterBuild::Wasm => "wasm",
            FilterBuild::Native => "native",
        },
        wasm: wasm.value,
        native_module: native_module.value,
    };
    (modules, filter_build_at)
}

/// The signing settings: the region and the credentials source.
fn signing(spec: &Spec, overrides: &Overrides, region: String) -> Signing {
    let credentials = overrides
        .lattice
        .credentials
        .or_else(|| spec.credentials.as_ref().map(|s| s.value))
        .unwrap_or(Credentials::Default);
    Signing {
        region,
        credentials: match credentials {
            Credentials::Env => "env".into(),
            Credentials::Container => "container".into(),
            Credentials::WebIdentity => "web_identity".into(),
            Credentials::Default => "default".into(),
        },
    }
}

/// The default service: the one named, or the first.
fn default_service(
    c: &mut Checker,
    spec: Option<&Located<String>>,
    flags: &FrontendArgs,
    services: &[Service],
) -> Option<String> {
    match located(spec, flags.default_service.clone(), "--default-service") {
        Some(name) => {
            let found = services.iter().find(|s| s.name == name.value).map(|s| s.name.clone());
            if found.is_none() {
                c.problem(
                    &name.origin,
                    "default_service",
                    format!("`{}` is not one of the services", name.value),
                );
            }
            found
        }
        None => services.first().map(|s| s.name.clone()),
    }
}

/// Whether the frontend checks tokens, and the issuers it accepts; without
/// OAuth, any issuer given is a problem.
fn oauth_providers(
    c: &mut Checker,
    oauth_spec: Option<&Located<bool>>,
    issuers_spec: Option<OneOrMany<Located<IssuerSpec>>>,
    flags: &FrontendArgs,
    jwks_ca: &str,
) -> (bool, Vec<Provider>) {
    let oauth = !flags.no_oauth && oauth_spec.is_none_or(|o| o.value);
    if oauth {
        return (true, issuers(c, issuers_spec, flags, jwks_ca));
    }
    if let (Some(o), Some(issuers)) = (oauth_spec, &issuers_spec) {
        if !o.value && !issuers.is_empty() {
            c.problem(
                &o.origin,
                "oauth",
                "is false but `issuers` are given; remove one of them",
            );
        }
    }
    for (flag, given) in [
        ("--issuer", flags.issuer.is_some()),
        ("--jwks-uri", flags.jwks_uri.is_some()),
        ("--audience", !flags.audiences.is_empty()),
        ("--client-id", !flags.client_ids.is_empty()),
    ] {
        if given {
            c.problem(
                &Origin::Flag(flag),
                flag,
                "makes no sense without OAuth (--no-oauth or `oauth: false`)",
            );
        }
    }
    (false, Vec::new())
}

/// The native build reads each verified payload from the header jwt_authn
/// forwards it in (see filter/native/src/claims.rs): each provider's header.
fn payload_headers_for_native(
    c: &mut Checker,
    modules: &Modules,
    filter_build_at: Option<&Located<FilterBuild>>,
    filter: Option<&Config>,
    providers: &mut [Provider],
) {
    let (true, Some(config)) = (modules.build == "native", filter) else {
        return;
    };
    match payload_headers(config) {
        Ok(headers) => {
            for (provider, header) in providers.iter_mut().zip(headers) {
                provider.payload_header = header;
            }
        }
        Err(message) => {
            let origin = filter_build_at.map_or(Origin::Default, |f| f.origin.clone());
            c.problem(&origin, "filter_build", format!("native: {message}"));
        }
    }
}

/// Applies the overrides to the spec and checks everything.
pub fn resolve(spec: Spec, overrides: &Overrides) -> Result<System, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };
    let flags = &overrides.frontend;
    let edge = edge(&mut c, &spec, flags);
    let place = place(&mut c, &spec, overrides);
    let (modules, filter_build_at) = modules(&mut c, &spec, overrides);
    let signing = signing(&spec, overrides, place.region.clone());
    let methods = methods(&mut c, spec.methods);
    let frontend_role = spec
        .frontend
        .and_then(|f| f.role)
        .and_then(|r| role(&mut c, "frontend.role", &r, place.account.as_ref()));
    let (mut services, service_specs) = services(
        &mut c,
        spec.services,
        flags,
        &overrides.lattice.service_hosts,
        place.domain.as_ref(),
        place.lattice_endpoint.as_ref(),
        &place.lattice_ca.value,
    );
    let default_service = default_service(&mut c, spec.default_service.as_ref(), flags, &services);
    let (oauth, mut providers) =
        oauth_providers(&mut c, spec.oauth.as_ref(), spec.issuers, flags, &place.jwks_ca.value);
    let (filter_config, filter) = filter_config(&mut c, spec.filter, &providers);
    payload_headers_for_native(
        &mut c,
        &modules,
        filter_build_at.as_ref(),
        filter.as_ref(),
        &mut providers,
    );
    let subject_header = filter
        .as_ref()
        .and_then(|f| f.subject.as_ref().map(|(_, header)| header.clone()));
    let cors = spec.cors.and_then(|cors| cors_policy(&mut c, cors, &methods));
    relations(
        &mut c,
        &mut services,
        service_specs,
        place.account.as_ref(),
        frontend_role.as_ref(),
        filter.as_ref(),
    );
    let network = network(&mut c, spec.network, &services, frontend_role.as_ref());
    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let (Some(listen), Some(admin), Some(default_service)) = (edge.listen, edge.admin, default_service) else {
        return Err(vec![Problem {
            origin: Origin::Default,
            field: String::new(),
            message: "bug in envoy-gen: a spec with no problems left a value unset".into(),
        }]);
    };
    Ok(System {
        account: place.account.map(|a| a.value),
        methods,
        modules,
        domain: place.domain.map(|d| d.value.to_ascii_lowercase()),
        signing,
        lattice_endpoint: place.lattice_endpoint,
        frontend: Frontend {
            listen,
            admin,
            tls: edge.tls,
            xff_trusted_hops: edge.xff_trusted_hops,
            oauth,
            providers,
            filter_config,
            subject_header,
            default_service,
            role: frontend_role,
            cors,
        },
        services,
        network,
    })
}
