//! Semantic checks of a spec (after flags are applied), reporting every
//! problem at once, and the validated model of the whole system that the
//! frontend, sidecar and policy renderings share. Renderings only ever see
//! a `System`.

use crate::args::{FrontendArgs, ListenArgs, Overrides};
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

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// The spec field (`services[1].host`) or flag concerned.
    pub field: String,
    pub message: String,
}

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

/// Applies the overrides to the spec and checks everything.
pub fn resolve(spec: Spec, overrides: &Overrides) -> Result<System, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };
    let (lattice_flags, flags) = (&overrides.lattice, &overrides.frontend);

    let listen = located(spec.listen.as_ref(), flags.listen.listen.clone(), "--listen")
        .unwrap_or_else(|| Located::default("0.0.0.0:8080".into()));
    let listen = socket_address(&mut c, "listen", &listen);
    let admin = located(spec.admin.as_ref(), flags.listen.admin.clone(), "--admin")
        .unwrap_or_else(|| Located::default("127.0.0.1:9901".into()));
    let admin = loopback_address(&mut c, "admin", &admin, ADMIN_REASON);

    let region = located(spec.region.as_ref(), lattice_flags.region.clone(), "--region");
    let region = match region {
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
    if let Some(d) = &domain {
        if !is_dns_name(&d.value) {
            c.problem(&d.origin, "domain", format!("`{}` is not a DNS name", d.value));
        }
    }
    let account = spec.account;
    if let Some(a) = &account {
        if !is_account_id(&a.value) {
            c.problem(
                &a.origin,
                "account",
                format!("`{}` is not a 12-digit AWS account id", a.value),
            );
        }
    }

    let credentials = lattice_flags
        .credentials
        .or_else(|| spec.credentials.as_ref().map(|s| s.value))
        .unwrap_or(Credentials::Default);
    let wasm = located(spec.wasm.as_ref(), lattice_flags.wasm.clone(), "--wasm")
        .unwrap_or_else(|| Located::default(DEFAULT_WASM.into()));
    if wasm.value.is_empty() {
        c.problem(&wasm.origin, "wasm", "must not be empty");
    }

    let methods = methods(&mut c, spec.methods);
    let lattice = spec.lattice.unwrap_or_default();
    let lattice_ca = located(lattice.ca.as_ref(), lattice_flags.lattice_ca.clone(), "--lattice-ca")
        .unwrap_or_else(|| Located::default(SYSTEM_CA_BUNDLE.into()));
    check_path(&mut c, "lattice.ca", &lattice_ca);
    let jwks_ca = located(spec.jwks_ca.as_ref(), flags.jwks_ca.clone(), "--jwks-ca")
        .unwrap_or_else(|| Located::default(SYSTEM_CA_BUNDLE.into()));
    check_path(&mut c, "jwks_ca", &jwks_ca);
    let lattice_endpoint = located(
        lattice.endpoint.as_ref(),
        lattice_flags.lattice_endpoint.clone(),
        "--lattice-endpoint",
    )
    .and_then(|e| host_port(&mut c, "lattice.endpoint", &e));

    let filter_build_at = located(spec.filter_build.as_ref(), lattice_flags.filter, "--filter");
    let filter_build = filter_build_at.as_ref().map_or(FilterBuild::Wasm, |f| f.value);
    let native_module = located(
        spec.native_module.as_ref(),
        lattice_flags.native_module.clone(),
        "--native-module",
    )
    .unwrap_or_else(|| Located::default(DEFAULT_NATIVE_MODULE.into()));
    if native_module.value.is_empty() {
        c.problem(&native_module.origin, "native_module", "must not be empty");
    }

    let xff_trusted_hops = located(
        spec.xff_trusted_hops.as_ref(),
        flags.xff_trusted_hops,
        "--xff-trusted-hops",
    )
    .map_or(0, |hops| {
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
    let tls = spec.tls.map(|t| {
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

    let frontend_role = spec
        .frontend
        .and_then(|f| f.role)
        .and_then(|r| role(&mut c, "frontend.role", &r, account.as_ref()));

    let (mut services, service_specs) = services(
        &mut c,
        spec.services,
        flags,
        &lattice_flags.service_hosts,
        domain.as_ref(),
        lattice_endpoint.as_ref(),
        &lattice_ca.value,
    );
    let default_name = located(
        spec.default_service.as_ref(),
        flags.default_service.clone(),
        "--default-service",
    );
    let default_service = match &default_name {
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
    };

    let oauth_spec = spec.oauth;
    let oauth = if flags.no_oauth {
        false
    } else {
        oauth_spec.as_ref().is_none_or(|o| o.value)
    };
    let providers = if oauth {
        issuers(&mut c, spec.issuers, flags, &jwks_ca.value)
    } else {
        if let (Some(o), Some(issuers)) = (&oauth_spec, &spec.issuers) {
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
        Vec::new()
    };

    let (filter_config, filter) = filter_config(&mut c, spec.filter, &providers);
    let mut providers = providers;
    if let (FilterBuild::Native, Some(config)) = (filter_build, filter.as_ref()) {
        // The native build reads each verified payload from the header
        // jwt_authn forwards it in (see filter/native/src/claims.rs).
        match payload_headers(config) {
            Ok(headers) => {
                for (provider, header) in providers.iter_mut().zip(headers) {
                    provider.payload_header = header;
                }
            }
            Err(message) => {
                let origin = filter_build_at.as_ref().map_or(Origin::Default, |f| f.origin.clone());
                c.problem(&origin, "filter_build", format!("native: {message}"));
            }
        }
    }
    let subject_header = filter
        .as_ref()
        .and_then(|f| f.subject.as_ref().map(|(_, header)| header.clone()));
    let cors = spec.cors.and_then(|cors| cors_policy(&mut c, cors, &methods));

    relations(
        &mut c,
        &mut services,
        service_specs,
        account.as_ref(),
        frontend_role.as_ref(),
        filter.as_ref(),
    );
    let network = network(&mut c, spec.network, &services, frontend_role.as_ref());

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let (Some(listen), Some(admin), Some(default_service)) = (listen, admin, default_service) else {
        return Err(vec![Problem {
            origin: Origin::Default,
            field: String::new(),
            message: "bug in envoy-gen: a spec with no problems left a value unset".into(),
        }]);
    };
    Ok(System {
        account: account.map(|a| a.value),
        methods,
        modules: Modules {
            build: match filter_build {
                FilterBuild::Wasm => "wasm",
                FilterBuild::Native => "native",
            },
            wasm: wasm.value,
            native_module: native_module.value,
        },
        domain: domain.map(|d| d.value.to_ascii_lowercase()),
        signing: Signing {
            region,
            credentials: match credentials {
                Credentials::Env => "env".into(),
                Credentials::Container => "container".into(),
                Credentials::WebIdentity => "web_identity".into(),
                Credentials::Default => "default".into(),
            },
        },
        lattice_endpoint,
        frontend: Frontend {
            listen,
            admin,
            tls,
            xff_trusted_hops,
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

/// The spec's methods, checked: standard methods only, exact case, each
/// once; TRACE and CONNECT never.
fn methods(c: &mut Checker, spec: Option<Located<OneOrMany<Located<String>>>>) -> Vec<String> {
    let Some(list) = spec else {
        return DEFAULT_METHODS.iter().map(|m| m.to_string()).collect();
    };
    if list.value.is_empty() {
        c.problem(&list.origin, "methods", "must allow at least one method");
    }
    let mut out: Vec<String> = Vec::new();
    for (i, method) in list.value.into_iter().enumerate() {
        let field = format!("methods[{i}]");
        let upper = method.value.to_ascii_uppercase();
        let problem = match upper.as_str() {
            "TRACE" => Some(
                "TRACE is refused at the edge: it would echo the request, token included, back to the client"
                    .to_string(),
            ),
            "CONNECT" => {
                Some("CONNECT is refused: the frontend and the sidecars forward requests, not tunnels".to_string())
            }
            _ if !DEFAULT_METHODS.contains(&upper.as_str()) => Some(format!(
                "`{}` is not a standard method ({})",
                method.value.escape_debug(),
                DEFAULT_METHODS.join(", ")
            )),
            _ if upper != method.value => Some(format!(
                "`{}` is not `{upper}`: methods are case-sensitive, and Lattice policies compare them exactly",
                method.value
            )),
            _ if out.contains(&upper) => Some(format!("`{upper}` is listed twice")),
            _ => None,
        };
        match problem {
            Some(message) => c.problem(&method.origin, field, message),
            None => out.push(upper),
        }
    }
    out
}

/// Paths the frontend answers itself, before any service's.
pub const FRONTEND_PATHS: [&str; 2] = ["/health", "/ready"];

/// The most a browser caches a preflight's answer (Firefox's cap).
pub const MAX_CORS_MAX_AGE: u32 = 86_400;
/// The request headers a preflight allows unless the spec says otherwise:
/// the bearer token, and a body's type.
pub const DEFAULT_CORS_HEADERS: [&str; 2] = ["authorization", "content-type"];

/// The CORS policy, checked against the methods the frontend forwards.
fn cors_policy(c: &mut Checker, spec: Located<CorsSpec>, methods: &[String]) -> Option<Cors> {
    let Located { value: spec, origin } = spec;
    let problems = c.problems.len();
    if !methods.iter().any(|m| m == "OPTIONS") {
        c.problem(
            &origin,
            "cors",
            "needs OPTIONS among `methods`: browsers send their preflight requests as OPTIONS",
        );
    }
    if spec.allow_origins.value.is_empty() {
        c.problem(
            &spec.allow_origins.origin,
            "cors.allow_origins",
            "must list at least one origin",
        );
    }
    let mut origins: Vec<String> = Vec::new();
    for (i, item) in spec.allow_origins.value.iter().enumerate() {
        let field = format!("cors.allow_origins[{i}]");
        match web_origin(&item.value) {
            Err(message) => c.problem(&item.origin, field, message),
            Ok(()) if origins.contains(&item.value) => {
                c.problem(&item.origin, field, format!("`{}` is listed twice", item.value))
            }
            Ok(()) => origins.push(item.value.clone()),
        }
    }
    let allow_methods = match spec.allow_methods {
        None => methods.to_vec(),
        Some(list) => {
            if list.value.is_empty() {
                c.problem(&list.origin, "cors.allow_methods", "must list at least one method");
            }
            let mut out: Vec<String> = Vec::new();
            for (i, method) in list.value.iter().enumerate() {
                let field = format!("cors.allow_methods[{i}]");
                if !methods.contains(&method.value) {
                    c.problem(
                        &method.origin,
                        field,
                        format!(
                            "`{}` is not among `methods` ({}): the frontend refuses it",
                            method.value.escape_debug(),
                            methods.join(", ")
                        ),
                    );
                } else if out.contains(&method.value) {
                    c.problem(&method.origin, field, format!("`{}` is listed twice", method.value));
                } else {
                    out.push(method.value.clone());
                }
            }
            out
        }
    };
    let mut header_list = |list: Option<Located<OneOrMany<Located<String>>>>, name: &str, default: &[&str]| {
        let Some(list) = list else {
            return default.join(", ");
        };
        let mut out: Vec<String> = Vec::new();
        for (i, header) in list.value.iter().enumerate() {
            let field = format!("cors.{name}[{i}]");
            if !is_token(&header.value) {
                c.problem(
                    &header.origin,
                    field,
                    format!(
                        "`{}` is not a header name (no wildcards: name each header)",
                        header.value.escape_debug()
                    ),
                );
            } else if out.iter().any(|h| h.eq_ignore_ascii_case(&header.value)) {
                c.problem(&header.origin, field, format!("`{}` is listed twice", header.value));
            } else {
                out.push(header.value.to_ascii_lowercase());
            }
        }
        out.join(", ")
    };
    let allow_headers = header_list(spec.allow_headers, "allow_headers", &DEFAULT_CORS_HEADERS);
    let expose_headers = header_list(spec.expose_headers, "expose_headers", &[]);
    if let Some(max_age) = &spec.max_age {
        if max_age.value > MAX_CORS_MAX_AGE {
            c.problem(
                &max_age.origin,
                "cors.max_age",
                format!(
                    "{} seconds is longer than browsers keep a preflight (at most {MAX_CORS_MAX_AGE})",
                    max_age.value
                ),
            );
        }
    }
    (c.problems.len() == problems).then(|| Cors {
        allow_origins: origins,
        allow_methods: allow_methods.join(", "),
        allow_headers,
        expose_headers,
        max_age: spec.max_age.map(|m| m.value),
        allow_credentials: spec.allow_credentials.is_some_and(|a| a.value),
    })
}

/// An origin as a browser sends it in `Origin`: `http` or `https`, a host,
/// the port only when it is not the scheme's default, nothing else.
fn web_origin(text: &str) -> Result<(), String> {
    if text == "*" || text == "null" {
        return Err(format!(
            "`{text}` would let any web page read what the API answers a signed-in user; list the origins"
        ));
    }
    let url = url::Url::parse(text).map_err(|e| format!("`{}` is not an origin: {e}", text.escape_debug()))?;
    let canonical = url.origin().ascii_serialization();
    if !matches!(url.scheme(), "http" | "https") {
        return Err(format!("`{}` is not an http or https origin", text.escape_debug()));
    }
    if canonical != text {
        return Err(format!(
            "`{}` is not an origin as browsers send it: `{canonical}` (scheme, host and port only, lower case, no path)",
            text.escape_debug()
        ));
    }
    Ok(())
}

/// An RFC 9110 token (a header name).
fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && name != "*"
}

const ADMIN_REASON: &str = "the admin interface can stop Envoy and dump its configuration";
const SIDECAR_REASON: &str = "anyone who reaches the sidecar gets requests signed with the service's IAM role";

/// An `IP:PORT` that must be on a loopback address, with why in the message.
fn loopback_address(c: &mut Checker, field: &str, value: &Located<String>, why: &str) -> Option<SocketAddress> {
    let addr = socket_address(c, field, value)?;
    if !addr.address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
        c.problem(
            &value.origin,
            field,
            format!("must be a loopback address (127.0.0.1 or ::1): {why}"),
        );
        return None;
    }
    Some(addr)
}

/// The sidecar addresses of `service`: the flags' where given, else the spec's.
pub fn sidecar_addresses(service: &Service, flags: &ListenArgs) -> Result<SidecarAddresses, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };
    let mut addresses = service.sidecar.clone();
    let listen = flags.listen.clone().map(|l| Located::flag(l, "--listen"));
    let admin = flags.admin.clone().map(|a| Located::flag(a, "--admin"));
    override_sidecar(
        &mut c,
        &mut addresses,
        "--listen",
        listen.as_ref(),
        "--admin",
        admin.as_ref(),
    );
    if c.problems.is_empty() {
        Ok(addresses)
    } else {
        Err(c.problems)
    }
}

/// A sidecar's addresses unless the spec or flags say otherwise.
fn default_sidecar() -> SidecarAddresses {
    let loopback = |port| SocketAddress {
        address: "127.0.0.1".into(),
        port,
    };
    SidecarAddresses {
        listen: loopback(15001),
        admin: loopback(15000),
    }
}

/// The spec's sidecar addresses of a service, each checked to be on
/// loopback; a default where the spec gives none (or a bad one, reported).
fn sidecar_of(c: &mut Checker, r: &Relations) -> SidecarAddresses {
    let mut addresses = default_sidecar();
    override_sidecar(
        c,
        &mut addresses,
        &format!("{}.sidecar.listen", r.field),
        r.sidecar_listen.as_ref(),
        &format!("{}.sidecar.admin", r.field),
        r.sidecar_admin.as_ref(),
    );
    addresses
}

/// Replaces the addresses given (each checked to be on loopback).
fn override_sidecar(
    c: &mut Checker,
    addresses: &mut SidecarAddresses,
    listen_field: &str,
    listen: Option<&Located<String>>,
    admin_field: &str,
    admin: Option<&Located<String>>,
) {
    if let Some(addr) = listen.and_then(|l| loopback_address(c, listen_field, l, SIDECAR_REASON)) {
        addresses.listen = addr;
    }
    if let Some(addr) = admin.and_then(|a| loopback_address(c, admin_field, a, ADMIN_REASON)) {
        addresses.admin = addr;
    }
}

fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

/// A role name (in `account`) or a role ARN.
fn role(c: &mut Checker, field: &str, value: &Located<String>, account: Option<&Located<String>>) -> Option<Role> {
    let text = value.value.as_str();
    // IAM role names: 1-64 of `[A-Za-z0-9+=,.@_-]`; paths: `/` separated, same alphabet.
    let name_ok = |n: &str| {
        !n.is_empty() && n.len() <= 64 && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
    };
    if let Some(rest) = text.strip_prefix("arn:") {
        let parts: Vec<&str> = rest.splitn(5, ':').collect();
        let parsed = match parts.as_slice() {
            [partition, "iam", "", acct, resource] if partition.starts_with("aws") && is_account_id(acct) => resource
                .strip_prefix("role/")
                .filter(|path| path.split('/').all(name_ok))
                .and_then(|path| path.rsplit('/').next()),
            _ => None,
        };
        return match parsed {
            Some(name) => Some(Role {
                arn: text.to_string(),
                name: name.to_string(),
                origin: value.origin.clone(),
            }),
            None => {
                c.problem(
                    &value.origin,
                    field,
                    format!("`{text}` is not an IAM role ARN like arn:aws:iam::111122223333:role/NAME"),
                );
                None
            }
        };
    }
    if !name_ok(text) {
        c.problem(
            &value.origin,
            field,
            format!("`{text}` is not an IAM role name (1-64 letters, digits and `+=,.@_-`) or role ARN"),
        );
        return None;
    }
    match account {
        // A malformed account is reported once, where it is written.
        Some(a) => Some(Role {
            arn: format!("arn:aws:iam::{}:role/{text}", a.value),
            name: text.to_string(),
            origin: value.origin.clone(),
        }),
        None => {
            c.problem(
                &value.origin,
                field,
                format!("role `{text}` is a name: give `account` (or the role's full ARN)"),
            );
            None
        }
    }
}

/// The parts of a service's spec that relate it to others, checked once
/// every service is known.
struct Relations {
    field: String,
    name_origin: Origin,
    id: Option<Located<String>>,
    role: Option<Located<String>>,
    calls: Vec<Located<String>>,
    callers: Vec<(Origin, CallerSpec)>,
    propagate_identity: bool,
    sidecar_listen: Option<Located<String>>,
    sidecar_admin: Option<Located<String>>,
}

fn relations(
    c: &mut Checker,
    services: &mut [Service],
    specs: Vec<Relations>,
    account: Option<&Located<String>>,
    frontend_role: Option<&Role>,
    filter: Option<&Config>,
) {
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    for (service, r) in services.iter_mut().zip(&specs) {
        if RESERVED_CALLERS.contains(&service.name.as_str()) {
            c.problem(
                &r.name_origin,
                format!("{}.name", r.field),
                format!("`{}` is reserved for callers; name the service otherwise", service.name),
            );
        }
        service.id = r.id.as_ref().and_then(|id| {
            let ok = id.value.len() == 21
                && id.value.starts_with("svc-")
                && id
                    .value
                    .bytes()
                    .skip(4)
                    .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b));
            if !ok {
                c.problem(
                    &id.origin,
                    format!("{}.id", r.field),
                    format!("`{}` is not a Lattice service id (`svc-` and 17 hex digits)", id.value),
                );
            }
            ok.then(|| id.value.clone())
        });
        service.role = r
            .role
            .as_ref()
            .and_then(|role_spec| role(c, &format!("{}.role", r.field), role_spec, account));
        service.propagate_identity = r.propagate_identity;
        for (j, call) in r.calls.iter().enumerate() {
            let field = format!("{}.calls[{j}]", r.field);
            if !names.contains(&call.value) {
                c.problem(
                    &call.origin,
                    field,
                    format!("`{}` is not a service of this spec", call.value),
                );
            } else if call.value == service.name {
                c.problem(&call.origin, field, "a service does not call itself through Lattice");
            } else if service.calls.contains(&call.value) {
                c.problem(&call.origin, field, format!("`{}` is listed twice", call.value));
            } else {
                service.calls.push(call.value.clone());
            }
        }
        if !service.calls.is_empty() && service.role.is_none() && r.role.is_none() {
            c.problem(
                &r.name_origin,
                format!("{}.role", r.field),
                format!(
                    "service `{}` calls other services: give the IAM `role` it signs with",
                    service.name
                ),
            );
        }
    }
    // Callers, once every role is known.
    let roles: Vec<(String, Option<Role>, bool, Vec<String>)> = services
        .iter()
        .map(|s| (s.name.clone(), s.role.clone(), s.propagate_identity, s.calls.clone()))
        .collect();
    for (service, r) in services.iter_mut().zip(&specs) {
        for (j, (origin, caller)) in r.callers.iter().enumerate() {
            let field = format!("{}.callers[{j}]", r.field);
            let from = &caller.from;
            let scopes = caller.scopes.as_ref();
            let scope_headers = scope_headers(c, &field, scopes, filter);
            let parsed = match from.value.as_str() {
                "frontend" => {
                    if frontend_role.is_none() {
                        c.problem(
                            &from.origin,
                            format!("{field}.from"),
                            "the frontend is a caller: give `frontend.role`, the IAM role it signs with",
                        );
                    }
                    Some(Caller::Frontend { scope_headers })
                }
                "anonymous" => {
                    if let Some(s) = &scopes {
                        c.problem(
                            &s.origin,
                            format!("{field}.scopes"),
                            "anonymous callers carry no verified token, so no scope can be required",
                        );
                    }
                    Some(Caller::Anonymous)
                }
                name => match roles.iter().find(|(n, _, _, _)| n == name) {
                    None => {
                        c.problem(
                            &from.origin,
                            format!("{field}.from"),
                            format!("`{name}` is not `frontend`, `anonymous` or a service of this spec"),
                        );
                        None
                    }
                    Some((_, role, propagates, calls)) => {
                        // An admission the caller never uses is either a typo or
                        // an identity policy that would be wider than the spec.
                        if name != service.name && !calls.contains(&service.name) {
                            c.problem(
                                &from.origin,
                                format!("{field}.from"),
                                format!("service `{name}` does not list `{}` in its `calls`", service.name),
                            );
                        }
                        if role.is_none() {
                            c.problem(
                                &from.origin,
                                format!("{field}.from"),
                                format!("service `{name}` is a caller: give it the IAM `role` it signs with"),
                            );
                        }
                        if let (Some(s), false) = (&scopes, propagates) {
                            c.problem(
                                &s.origin,
                                format!("{field}.scopes"),
                                format!("service `{name}` does not propagate the user's identity (`propagate_identity: true`), so its calls carry no scope"),
                            );
                        }
                        if name == service.name {
                            c.problem(
                                &from.origin,
                                format!("{field}.from"),
                                "a service does not call itself through Lattice",
                            );
                        }
                        Some(Caller::Service {
                            name: name.to_string(),
                            scope_headers,
                        })
                    }
                },
            };
            if let Some(parsed) = parsed {
                if service.callers.contains(&parsed) {
                    c.problem(origin, field, "the same caller is listed twice");
                } else {
                    service.callers.push(parsed);
                }
            }
        }
    }
    // Lattice tells callers apart by role only.
    let mut by_role: BTreeMap<String, String> = BTreeMap::new();
    if let Some(f) = frontend_role {
        by_role.insert(f.arn.clone(), "the frontend".into());
    }
    for (service, r) in services.iter().zip(&specs) {
        if let (Some(role), Some(spec_role)) = (&service.role, &r.role) {
            if let Some(other) = by_role.insert(role.arn.clone(), format!("service `{}`", service.name)) {
                c.problem(
                    &spec_role.origin,
                    format!("{}.role", r.field),
                    format!(
                        "`{}` is also the role of {other}: Lattice could not tell them apart; give each its own role",
                        role.name
                    ),
                );
            }
        }
    }
}

const RESERVED_CALLERS: [&str; 2] = ["frontend", "anonymous"];

/// The headers the frontend's filter emits for `scopes`, under its
/// configuration: the filter core's own mapping, so a policy always names
/// the header the filter sends.
fn scope_headers(
    c: &mut Checker,
    field: &str,
    scopes: Option<&Located<OneOrMany<Located<String>>>>,
    filter: Option<&Config>,
) -> Vec<ScopeHeader> {
    let Some(scopes) = scopes else {
        return Vec::new();
    };
    if scopes.value.is_empty() {
        c.problem(
            &scopes.origin,
            format!("{field}.scopes"),
            "must name at least one scope (leave `scopes` out to require none)",
        );
    }
    let mut out: Vec<ScopeHeader> = Vec::new();
    for (k, scope) in scopes.value.iter().enumerate() {
        let scope: Located<String> = scope.clone();
        let field = format!("{field}.scopes[{k}]");
        // RFC 6749 section 3.3: scope-token = 1*( %x21 / %x23-5B / %x5D-7E )
        let is_token = !scope.value.is_empty()
            && scope
                .value
                .bytes()
                .all(|b| b == 0x21 || (0x23..=0x5b).contains(&b) || (0x5d..=0x7e).contains(&b));
        if !is_token {
            c.problem(
                &scope.origin,
                field,
                format!(
                    "`{}` is not an OAuth scope (RFC 6749: printable ASCII, no space, `\"` or `\\`)",
                    scope.value.escape_debug()
                ),
            );
            continue;
        }
        let Some(filter) = filter else { continue };
        if scope.value.len() > filter.max_scope_length {
            c.problem(
                &scope.origin,
                field,
                format!(
                    "`{}` is longer than the filter's max_scope_length ({}), so it is never sent",
                    scope.value, filter.max_scope_length
                ),
            );
            continue;
        }
        match scope_header_name(&filter.scope_header_prefix, &scope.value, filter.scope_encoding) {
            Some(header) => {
                if out.iter().any(|h| h.header == header) {
                    c.problem(&scope.origin, field, format!("`{}` is listed twice", scope.value));
                } else {
                    out.push(ScopeHeader {
                        scope: scope.value,
                        header,
                    });
                }
            }
            None => c.problem(
                &scope.origin,
                field,
                format!(
                    "`{}` is never sent as a header (the filter's scope_encoding is `drop`)",
                    scope.value
                ),
            ),
        }
    }
    out
}

fn network(c: &mut Checker, spec: Option<NetworkSpec>, services: &[Service], frontend_role: Option<&Role>) -> Network {
    let spec = spec.unwrap_or_default();
    let name = spec.name.map(|n| n.value);
    let mut network = Network {
        name,
        principals: Vec::new(),
        anonymous: false,
    };
    let admits_anonymous = services.iter().any(|s| s.callers.contains(&Caller::Anonymous));
    match spec.principals {
        None => {
            network.principals.extend(frontend_role.map(|r| r.arn.clone()));
            network.principals.extend(
                services
                    .iter()
                    .filter(|s| !s.calls.is_empty())
                    .filter_map(|s| s.role.as_ref().map(|r| r.arn.clone())),
            );
            network.anonymous = admits_anonymous;
        }
        Some(list) => {
            for (i, p) in list.into_iter().enumerate() {
                let field = format!("network.principals[{i}]");
                match p.value.as_str() {
                    "anonymous" => network.anonymous = true,
                    "frontend" => match frontend_role {
                        Some(r) => network.principals.push(r.arn.clone()),
                        None => c.problem(&p.origin, field, "`frontend` needs `frontend.role`"),
                    },
                    text if is_account_id(text) => network.principals.push(format!("arn:aws:iam::{text}:root")),
                    text if text.starts_with("arn:") => {
                        if is_principal_arn(text) {
                            network.principals.push(text.to_string());
                        } else {
                            c.problem(
                                &p.origin,
                                field,
                                format!("`{text}` is not an IAM role, user or account-root ARN"),
                            );
                        }
                    }
                    name => match services.iter().find(|s| s.name == name) {
                        Some(s) => match &s.role {
                            Some(r) => network.principals.push(r.arn.clone()),
                            None => c.problem(&p.origin, field, format!("service `{name}` has no `role`")),
                        },
                        None => c.problem(
                            &p.origin,
                            field,
                            format!("`{name}` is not `frontend`, `anonymous`, a service of this spec, an account id or an ARN"),
                        ),
                    },
                }
            }
            // A caller the network keeps out could never reach the service.
            if !network.anonymous {
                let admitted = |arn: &str| {
                    network.principals.iter().any(|p| {
                        p == arn
                            || p.strip_suffix(":root")
                                .is_some_and(|root| arn.starts_with(&format!("{}:", root)))
                    })
                };
                for s in services {
                    for caller in &s.callers {
                        let (who, arn) = match caller {
                            Caller::Anonymous => ("anonymous callers".to_string(), None),
                            Caller::Frontend { .. } => {
                                ("the frontend".to_string(), frontend_role.map(|r| r.arn.as_str()))
                            }
                            Caller::Service { name, .. } => (
                                format!("service `{name}`"),
                                services
                                    .iter()
                                    .find(|o| &o.name == name)
                                    .and_then(|o| o.role.as_ref())
                                    .map(|r| r.arn.as_str()),
                            ),
                        };
                        if arn.is_none_or(|arn| !admitted(arn)) {
                            c.problem(
                                &Origin::Default,
                                "network.principals",
                                format!("{who} may call `{}` but cannot enter the service network: add it to network.principals", s.name),
                            );
                        }
                    }
                }
            }
        }
    }
    network.principals.sort();
    network.principals.dedup();
    network
}

fn is_principal_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", acct, resource]
        if partition.starts_with("aws") && is_account_id(acct)
            && (resource.starts_with("role/") || resource.starts_with("user/") || *resource == "root"))
}

fn check_path(c: &mut Checker, field: &str, path: &Located<String>) {
    if path.value.is_empty() {
        c.problem(&path.origin, field, "must not be empty");
    }
}

fn is_region(s: &str) -> bool {
    let parts: Vec<&str> = s.split('-').collect();
    parts.len() >= 3
        && parts
            .first()
            .is_some_and(|p| p.len() == 2 && p.bytes().all(|b| b.is_ascii_lowercase()))
        && parts
            .last()
            .is_some_and(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_digit()))
        && parts
            .iter()
            .all(|p| !p.is_empty() && p.bytes().all(|b| b.is_ascii_lowercase() || b.is_ascii_digit()))
}

/// An RFC 1123 host name (letters, digits, hyphens; dots between labels).
pub fn is_dns_name(s: &str) -> bool {
    !s.is_empty()
        && s.len() <= 253
        && s.split('.').all(|label| {
            !label.is_empty()
                && label.len() <= 63
                && !label.starts_with('-')
                && !label.ends_with('-')
                && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
        })
}

/// `IP:PORT` (a listener address: no host names).
fn socket_address(c: &mut Checker, field: &str, value: &Located<String>) -> Option<SocketAddress> {
    let parsed = host_port(c, field, value)?;
    if parsed.address.parse::<IpAddr>().is_err() {
        c.problem(
            &value.origin,
            field,
            format!("`{}` must be an IP address and port, like 0.0.0.0:8080", value.value),
        );
        return None;
    }
    Some(parsed)
}

/// `HOST:PORT` or `[V6]:PORT`.
fn host_port(c: &mut Checker, field: &str, value: &Located<String>) -> Option<SocketAddress> {
    let text = value.value.as_str();
    let split = if let Some(rest) = text.strip_prefix('[') {
        rest.split_once("]:").map(|(h, p)| (h.to_string(), p))
    } else {
        text.rsplit_once(':')
            .filter(|(h, _)| !h.contains(':'))
            .map(|(h, p)| (h.to_string(), p))
    };
    let Some((host, port)) = split else {
        c.problem(&value.origin, field, format!("`{text}` is not ADDR:PORT"));
        return None;
    };
    let Ok(port) = port.parse::<u16>() else {
        c.problem(&value.origin, field, format!("`{port}` is not a port number (0-65535)"));
        return None;
    };
    if host.parse::<IpAddr>().is_err() && !is_dns_name(&host) {
        c.problem(
            &value.origin,
            field,
            format!("`{host}` is not an IP address or host name"),
        );
        return None;
    }
    Some(SocketAddress { address: host, port })
}

/// A service while flags are applied: name, host, path, and the field
/// (`services[1]` or `--service[0]`) that problems name.
struct ServiceEntry {
    name: Located<String>,
    host: Option<Located<String>>,
    path: Option<Located<String>>,
    port: Option<Located<u16>>,
    health_check: Option<Located<String>>,
    relations: Relations,
}

impl ServiceEntry {
    fn flag(name: String, host: Option<Located<String>>, field: String) -> ServiceEntry {
        ServiceEntry {
            name: Located::flag(name, "--service"),
            host,
            path: None,
            port: None,
            health_check: None,
            relations: Relations::none(field, Origin::Flag("--service")),
        }
    }
}

impl Relations {
    fn none(field: String, name_origin: Origin) -> Relations {
        Relations {
            field,
            name_origin,
            id: None,
            role: None,
            calls: Vec::new(),
            callers: Vec::new(),
            propagate_identity: false,
            sidecar_listen: None,
            sidecar_admin: None,
        }
    }
}

/// The hosts `--service-host NAME=HOST` gives, by service name, each
/// checked: NAME one of `names` and given once, HOST a DNS name (lower-cased).
fn service_hosts(c: &mut Checker, flags: &[String], names: &[&str]) -> BTreeMap<String, String> {
    const FLAG: &str = "--service-host";
    let origin = Origin::Flag(FLAG);
    let mut seen: Vec<&str> = Vec::new();
    let mut out = BTreeMap::new();
    for value in flags {
        let Some((name, host)) = value.split_once('=').filter(|(n, h)| !n.is_empty() && !h.is_empty()) else {
            c.problem(
                &origin,
                FLAG,
                format!(
                    "`{}` is not NAME=HOST (a service of the spec and its Lattice DNS name)",
                    value.escape_debug()
                ),
            );
            continue;
        };
        if !names.contains(&name) {
            c.problem(
                &origin,
                FLAG,
                format!(
                    "`{}` is not a service of the spec ({})",
                    name.escape_debug(),
                    names.join(", ")
                ),
            );
            continue;
        }
        if seen.contains(&name) {
            c.problem(&origin, FLAG, format!("service `{name}` is given more than once"));
            continue;
        }
        seen.push(name);
        if !is_dns_name(host) {
            c.problem(
                &origin,
                FLAG,
                format!("`{}` (service `{name}`) is not a DNS name", host.escape_debug()),
            );
            continue;
        }
        out.insert(name.to_string(), host.to_ascii_lowercase());
    }
    out
}

fn services(
    c: &mut Checker,
    spec: Option<OneOrMany<Located<ServiceSpec>>>,
    flags: &FrontendArgs,
    host_flags: &[String],
    domain: Option<&Located<String>>,
    endpoint: Option<&SocketAddress>,
    ca: &str,
) -> (Vec<Service>, Vec<Relations>) {
    let mut entries: Vec<ServiceEntry> = Vec::new();
    if !flags.services.is_empty() {
        for (i, s) in flags.services.iter().enumerate() {
            let (name, host) = match s.split_once('=') {
                Some((n, h)) => (n.to_string(), Some(Located::flag(h.to_string(), "--service"))),
                None => (s.clone(), None),
            };
            entries.push(ServiceEntry::flag(name, host, format!("--service[{i}]")));
        }
    } else if let Some(list) = spec {
        if list.is_empty() {
            c.problem(&Origin::Default, "services", "must name at least one service");
        }
        for (i, item) in list.into_iter().enumerate() {
            let s = item.value;
            let name: Located<String> = s.name;
            let sidecar = s.sidecar.unwrap_or_default();
            entries.push(ServiceEntry {
                relations: Relations {
                    field: format!("services[{i}]"),
                    name_origin: name.origin.clone(),
                    id: s.id,
                    role: s.role,
                    calls: s.calls.map(|calls| calls.0).unwrap_or_default(),
                    callers: s
                        .callers
                        .unwrap_or_default()
                        .into_iter()
                        .map(|c| (c.origin, c.value))
                        .collect(),
                    propagate_identity: s.propagate_identity.is_some_and(|p| p.value),
                    sidecar_listen: sidecar.listen,
                    sidecar_admin: sidecar.admin,
                },
                name,
                host: s.host,
                path: s.path,
                port: s.port,
                health_check: s.health_check,
            });
        }
    } else {
        for name in DEFAULT_SERVICES {
            entries.push(ServiceEntry {
                name: Located::default(name.to_string()),
                host: None,
                path: None,
                port: None,
                health_check: None,
                relations: Relations::none("services".into(), Origin::Default),
            });
        }
    }

    let names: Vec<&str> = entries.iter().map(|e| e.name.value.as_str()).collect();
    let flag_hosts = service_hosts(c, host_flags, &names);
    let mut out: Vec<Service> = Vec::new();
    let mut relations: Vec<Relations> = Vec::new();
    let mut seen_paths: BTreeMap<String, String> = BTreeMap::new();
    // Each host, the service it is of, and whether --service-host gave it.
    let mut seen_hosts: BTreeMap<String, (String, bool)> = BTreeMap::new();
    for entry in entries {
        let ServiceEntry {
            name,
            host,
            path,
            port,
            health_check,
            relations: related,
        } = entry;
        let field = related.field.clone();
        let valid_name = !name.value.is_empty()
            && name
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
            && !name.value.starts_with('-');
        if !valid_name {
            c.problem(
                &name.origin,
                format!("{field}.name"),
                format!(
                    "`{}` is not a service name (lower-case letters, digits and hyphens)",
                    name.value
                ),
            );
            continue;
        }
        if out.iter().any(|s| s.name == name.value) {
            c.problem(
                &name.origin,
                format!("{field}.name"),
                format!("duplicate service `{}`", name.value),
            );
            continue;
        }
        // --service-host wins over the spec's host and domain; with none of
        // them the service has no custom domain name (no upstream yet).
        let flag_host = flag_hosts.get(&name.value).cloned();
        let host = match (flag_host, host, domain) {
            (Some(h), _, _) => Some((h, true)),
            (None, Some(h), _) => {
                if !is_dns_name(&h.value) {
                    c.problem(
                        &h.origin,
                        format!("{field}.host"),
                        format!("`{}` is not a DNS name", h.value),
                    );
                    continue;
                }
                Some((h.value.to_ascii_lowercase(), false))
            }
            (None, None, Some(d)) => Some((format!("{}.{}", name.value, d.value.to_ascii_lowercase()), false)),
            (None, None, None) => None,
        };
        if let Some((host, flagged)) = &host {
            if let Some((other, other_flagged)) = seen_hosts.insert(host.clone(), (name.value.clone(), *flagged)) {
                if *flagged || other_flagged {
                    let (given, also) = if *flagged {
                        (name.value.as_str(), other.as_str())
                    } else {
                        (other.as_str(), name.value.as_str())
                    };
                    c.problem(
                        &Origin::Flag("--service-host"),
                        "--service-host",
                        format!("`{host}` (service `{given}`) is also the host of service `{also}`"),
                    );
                } else {
                    c.problem(
                        &name.origin,
                        format!("{field}.host"),
                        format!("`{host}` is also the host of service `{other}`"),
                    );
                }
            }
        }
        let path = path.unwrap_or_else(|| Located {
            value: format!("/{}", name.value),
            origin: name.origin.clone(),
        });
        if !is_route_prefix(&path.value) {
            c.problem(
                &path.origin,
                format!("{field}.path"),
                format!(
                    "`{}` is not a path prefix like /orders (segments of letters, digits, `-._~`; no trailing slash)",
                    path.value
                ),
            );
            continue;
        }
        let path_value = path.value;
        if FRONTEND_PATHS.contains(&path_value.as_str()) {
            c.problem(
                &path.origin,
                format!("{field}.path"),
                format!(
                    "`{path_value}` is the frontend's own (`/health`: liveness, `/ready`: readiness); give the service another `path`"
                ),
            );
        }
        if let Some(other) = seen_paths.insert(path_value.clone(), name.value.clone()) {
            c.problem(
                &path.origin,
                format!("{field}.path"),
                format!("`{path_value}` is also the path of service `{other}`"),
            );
        }
        let port = match port {
            Some(p) if p.value == 0 => {
                c.problem(&p.origin, format!("{field}.port"), "0 is not a port (1-65535)");
                DEFAULT_APP_PORT
            }
            Some(p) => p.value,
            None => DEFAULT_APP_PORT,
        };
        let health_check_path = match health_check {
            Some(h) if !is_health_check_path(&h.value) => {
                c.problem(
                    &h.origin,
                    format!("{field}.health_check"),
                    format!(
                        "`{}` is not a health-check path Lattice takes (`/`, then letters, digits and `@:%_+.~#?&/=-`, up to 2048 characters)",
                        h.value.escape_debug()
                    ),
                );
                String::new()
            }
            Some(h) => h.value,
            None => DEFAULT_HEALTH_CHECK_PATH.to_string(),
        };
        let upstream = host.map(|(host, _)| TlsUpstream {
            cluster: format!("lattice_{}", name.value.replace('-', "_")),
            connect: endpoint.cloned().unwrap_or(SocketAddress {
                address: host.clone(),
                port: 443,
            }),
            host,
            ca: ca.to_string(),
        });
        out.push(Service {
            upstream,
            origin: name.origin.clone(),
            field: field.clone(),
            name: name.value,
            path: path_value,
            port,
            health_check_path,
            id: None,
            role: None,
            calls: Vec::new(),
            callers: Vec::new(),
            propagate_identity: false,
            sidecar: sidecar_of(c, &related),
        });
        relations.push(related);
    }
    (out, relations)
}

/// A path Lattice's target-group health check takes (its API's pattern:
/// `^/[a-zA-Z0-9@:%_+.~#?&/=-]*$`, at most 2048 characters).
fn is_health_check_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 2048
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@:%_+.~#?&/=-".contains(&b))
}

fn is_route_prefix(p: &str) -> bool {
    p.len() > 1
        && p.starts_with('/')
        && !p.ends_with('/')
        && p.get(1..).unwrap_or_default().split('/').all(|seg| {
            !seg.is_empty()
                && seg != "."
                && seg != ".."
                && seg.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~".contains(&b))
        })
}

fn https_url(c: &mut Checker, field: &str, value: &Located<String>) -> Option<url::Url> {
    match url::Url::parse(&value.value) {
        Ok(u)
            if u.scheme() == "https"
                && u.host_str().is_some_and(|h| !h.is_empty())
                && u.username().is_empty()
                && u.password().is_none() =>
        {
            Some(u)
        }
        Ok(_) => {
            c.problem(
                &value.origin,
                field,
                format!("`{}` must be an https URL with a host and no credentials", value.value),
            );
            None
        }
        Err(e) => {
            c.problem(&value.origin, field, format!("`{}` is not a URL: {e}", value.value));
            None
        }
    }
}

/// One issuer while flags are applied.
struct IssuerEntry {
    name: Located<String>,
    issuer: Option<Located<String>>,
    jwks_uri: Option<Located<String>>,
    audiences: Option<Located<Vec<Located<String>>>>,
    client_ids: Option<Located<Vec<Located<String>>>>,
    cache_seconds: u32,
    token_cache_size: Option<Located<u32>>,
}

fn list(spec: Option<Located<OneOrMany<Located<String>>>>) -> Option<Located<Vec<Located<String>>>> {
    spec.map(|l| Located {
        value: l.value.0,
        origin: l.origin,
    })
}

fn flag_list(values: &[String], flag: &'static str) -> Located<Vec<Located<String>>> {
    Located::flag(values.iter().map(|v| Located::flag(v.clone(), flag)).collect(), flag)
}

impl From<IssuerSpec> for IssuerEntry {
    fn from(i: IssuerSpec) -> Self {
        IssuerEntry {
            name: i.name,
            issuer: Some(i.issuer),
            jwks_uri: Some(i.jwks_uri),
            audiences: list(i.audiences),
            client_ids: list(i.client_ids),
            cache_seconds: i.jwks_cache_seconds.unwrap_or(600),
            token_cache_size: i.token_cache_size,
        }
    }
}

fn issuers(
    c: &mut Checker,
    spec: Option<OneOrMany<Located<IssuerSpec>>>,
    flags: &FrontendArgs,
    ca: &str,
) -> Vec<Provider> {
    let mut entries: Vec<IssuerEntry> = spec.unwrap_or_default().into_iter().map(|s| s.value.into()).collect();
    let flagged = flags.issuer.is_some()
        || flags.jwks_uri.is_some()
        || !flags.audiences.is_empty()
        || !flags.client_ids.is_empty();
    if flagged {
        match entries.len() {
            0 => entries.push(IssuerEntry {
                name: Located::default("jwt".into()),
                issuer: None,
                jwks_uri: None,
                audiences: None,
                client_ids: None,
                cache_seconds: 600,
                token_cache_size: None,
            }),
            1 => {}
            _ => {
                c.problem(
                    &Origin::Flag("--issuer"),
                    "--issuer",
                    "--issuer, --jwks-uri, --audience and --client-id cannot override a spec with several issuers",
                );
                return Vec::new();
            }
        }
        if let Some(entry) = entries.first_mut() {
            if let Some(i) = &flags.issuer {
                entry.issuer = Some(Located::flag(i.clone(), "--issuer"));
            }
            if let Some(j) = &flags.jwks_uri {
                entry.jwks_uri = Some(Located::flag(j.clone(), "--jwks-uri"));
            }
            // Each flag replaces how the issuer's tokens are accepted:
            // by audience, or by client id.
            if !flags.audiences.is_empty() {
                entry.audiences = Some(flag_list(&flags.audiences, "--audience"));
                entry.client_ids = None;
            }
            if !flags.client_ids.is_empty() {
                entry.client_ids = Some(flag_list(&flags.client_ids, "--client-id"));
                if flags.audiences.is_empty() {
                    entry.audiences = None;
                }
            }
        }
    }
    if entries.is_empty() {
        c.problem(&Origin::Default, "issuers", "OAuth is on but no issuer is given: add `issuers` (or --issuer, --jwks-uri, --audience), or turn OAuth off with --no-oauth");
        return Vec::new();
    }
    let mut out: Vec<Provider> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        let field = format!("issuers[{i}]");
        let IssuerEntry {
            name,
            issuer,
            jwks_uri,
            audiences,
            client_ids,
            cache_seconds,
            token_cache_size,
        } = entry;
        if name.value.is_empty()
            || !name
                .value
                .bytes()
                .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'_')
        {
            c.problem(
                &name.origin,
                format!("{field}.name"),
                format!(
                    "`{}` is not an issuer name (lower-case letters, digits, `_`)",
                    name.value
                ),
            );
            continue;
        }
        if out.iter().any(|p| p.name == name.value) {
            c.problem(
                &name.origin,
                format!("{field}.name"),
                format!("duplicate issuer `{}`", name.value),
            );
            continue;
        }
        let Some(issuer) = issuer else {
            c.problem(
                &Origin::Flag("--issuer"),
                "--issuer",
                "is required with --jwks-uri and --audience",
            );
            continue;
        };
        let Some(jwks_uri) = jwks_uri else {
            c.problem(&Origin::Flag("--jwks-uri"), "--jwks-uri", "is required with --issuer");
            continue;
        };
        let token_cache_size = match token_cache_size {
            Some(size) if size.value > MAX_TOKEN_CACHE_SIZE => {
                c.problem(
                    &size.origin,
                    format!("{field}.token_cache_size"),
                    format!(
                        "{} tokens per worker is more than envoy-gen allows ({MAX_TOKEN_CACHE_SIZE}): each holds a token of up to 4 KiB",
                        size.value
                    ),
                );
                continue;
            }
            Some(size) => size.value,
            None => DEFAULT_TOKEN_CACHE_SIZE,
        };
        let issuer_ok = https_url(c, &format!("{field}.issuer"), &issuer).is_some();
        let jwks_url = https_url(c, &format!("{field}.jwks_uri"), &jwks_uri);
        let (audiences, client_ids) = acceptance(c, &field, &name.origin, audiences, client_ids);
        if let (true, Some(url)) = (issuer_ok, jwks_url) {
            let host = url.host_str().unwrap_or_default().to_string();
            let jwks_path = match url.query() {
                Some(query) => format!("{}?{query}", url.path()),
                None => url.path().to_string(),
            };
            out.push(Provider {
                jwks: TlsUpstream {
                    cluster: format!("jwks_{}", name.value),
                    connect: SocketAddress {
                        address: host.clone(),
                        port: url.port_or_known_default().unwrap_or(443),
                    },
                    host,
                    ca: ca.to_string(),
                },
                name: name.value,
                issuer: issuer.value,
                audiences,
                client_ids,
                jwks_uri: url.to_string(),
                jwks_path,
                cache_seconds,
                token_cache_size,
                payload_header: String::new(),
            });
        }
    }
    out
}

/// How an issuer's tokens are told to be for this API: the audiences
/// jwt_authn checks against `aud`, or the client ids the filter checks
/// against `client_id` (Amazon Cognito's access tokens carry no `aud`).
/// Exactly one of them, never empty: jwt_authn checks no audience at all
/// when it is given none.
fn acceptance(
    c: &mut Checker,
    field: &str,
    issuer_origin: &Origin,
    audiences: Option<Located<Vec<Located<String>>>>,
    client_ids: Option<Located<Vec<Located<String>>>>,
) -> (Vec<String>, Vec<String>) {
    let mut values = |list: &Located<Vec<Located<String>>>, name: &str, empty: &str| {
        if list.value.is_empty() {
            c.problem(&list.origin, format!("{field}.{name}"), empty);
        }
        let mut out: Vec<String> = Vec::new();
        for (j, item) in list.value.iter().enumerate() {
            let item_field = format!("{field}.{name}[{j}]");
            if item.value.trim().is_empty() {
                c.problem(&item.origin, item_field, "must not be empty");
            } else if item.value.chars().any(|ch| ch.is_whitespace() || ch.is_control()) {
                c.problem(
                    &item.origin,
                    item_field,
                    format!("`{}` has spaces or control characters", item.value.escape_debug()),
                );
            } else if out.contains(&item.value) {
                c.problem(&item.origin, item_field, format!("`{}` is listed twice", item.value));
            } else {
                out.push(item.value.clone());
            }
        }
        out
    };
    match (audiences, client_ids) {
        (Some(audiences), None) => (
            values(
                &audiences,
                "audiences",
                "at least one audience is required (an empty list would accept tokens minted for any API)",
            ),
            Vec::new(),
        ),
        (None, Some(client_ids)) => (
            Vec::new(),
            values(
                &client_ids,
                "client_ids",
                "at least one client id is required (an empty list would refuse every token)",
            ),
        ),
        (Some(_), Some(client_ids)) => {
            c.problem(
                &client_ids.origin,
                format!("{field}.client_ids"),
                "give `audiences` or `client_ids`, not both: tokens with an `aud` are checked by audience, Cognito access tokens (no `aud`) by client id",
            );
            (Vec::new(), Vec::new())
        }
        (None, None) => {
            c.problem(
                issuer_origin,
                field,
                "needs `audiences` (the `aud` its tokens carry) or, for Amazon Cognito access tokens, which carry no `aud`, `client_ids`",
            );
            (Vec::new(), Vec::new())
        }
    }
}

/// The filter's JSON configuration, and the filter's own reading of it.
fn filter_config(
    c: &mut Checker,
    spec: Option<Located<RawConfig>>,
    providers: &[Provider],
) -> (String, Option<Config>) {
    let (mut raw, origin) = match spec {
        Some(s) => (s.value, s.origin),
        None => (RawConfig::default(), Origin::Default),
    };
    if raw.payload_metadata_keys != RawConfig::default().payload_metadata_keys {
        c.problem(
            &origin,
            "filter.payload_metadata_keys",
            "is set by envoy-gen from `issuers`; remove it",
        );
    }
    if !raw.client_ids.is_empty() {
        c.problem(
            &origin,
            "filter.client_ids",
            "is set by envoy-gen from `issuers[].client_ids`; remove it",
        );
    }
    if !providers.is_empty() {
        raw.payload_metadata_keys = providers.iter().map(|p| p.name.clone()).collect();
        raw.client_ids = providers
            .iter()
            .filter(|p| !p.client_ids.is_empty())
            .map(|p| (p.name.clone(), p.client_ids.clone()))
            .collect();
    }
    let json = match serde_json::to_string(&raw) {
        Ok(json) => json,
        Err(e) => {
            c.problem(
                &origin,
                "filter",
                format!("bug in envoy-gen: cannot serialise the filter configuration: {e}"),
            );
            return (String::new(), None);
        }
    };
    match Config::from_json(json.as_bytes()) {
        Ok(config) => (json, Some(config)),
        Err(e) => {
            for message in e.0 {
                c.problem(&origin, "filter", message);
            }
            (json, None)
        }
    }
}
