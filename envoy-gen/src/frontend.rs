//! Semantic checks of a frontend spec (after flags are applied), reporting
//! every problem at once, and the validated model the template renders.
//! Templates only ever see a `Frontend`.

use crate::spec::{Credentials, IssuerSpec, Located, Origin, ServiceSpec, Spec};
use jwt_scopes_core::config::RawConfig;
use jwt_scopes_core::Config;
use serde::Serialize;
use std::collections::BTreeMap;
use std::net::IpAddr;

/// The system CA bundle on Debian/Ubuntu (and Amazon Linux's compat path).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";
pub const DEFAULT_WASM: &str = "/etc/envoy/jwt_scopes.wasm";
pub const DEFAULT_SERVICES: [&str; 3] = ["app1", "app2", "app3"];

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// The spec field (`services[1].host`) or flag concerned.
    pub field: String,
    pub message: String,
}

/// Values given on the command line; each overrides the spec.
#[derive(Debug, Default, Clone)]
pub struct Overrides {
    pub issuer: Option<String>,
    pub audiences: Vec<String>,
    pub jwks_uri: Option<String>,
    pub domain: Option<String>,
    pub region: Option<String>,
    /// `NAME` or `NAME=HOST`.
    pub services: Vec<String>,
    pub default_service: Option<String>,
    pub listen: Option<String>,
    pub admin: Option<String>,
    pub wasm: Option<String>,
    pub no_oauth: bool,
    pub lattice_endpoint: Option<String>,
    pub lattice_ca: Option<String>,
    pub jwks_ca: Option<String>,
    pub credentials: Option<Credentials>,
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
    pub audiences: Vec<String>,
    pub jwks_uri: String,
    pub jwks: TlsUpstream,
    pub cache_seconds: u32,
}

#[derive(Debug, Clone, Serialize)]
pub struct Service {
    pub name: String,
    pub path: String,
    pub upstream: TlsUpstream,
}

/// Everything the frontend template needs, validated.
#[derive(Debug, Clone, Serialize)]
pub struct Frontend {
    pub listen: SocketAddress,
    pub admin: SocketAddress,
    pub tls: Option<Tls>,
    pub oauth: bool,
    pub providers: Vec<Provider>,
    pub region: String,
    pub credentials: String,
    pub wasm: String,
    /// The filter's JSON configuration.
    pub filter_config: String,
    pub services: Vec<Service>,
    pub default_service: Service,
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

fn located<T: Clone>(
    spec: Option<&serde_saphyr::Spanned<T>>,
    flag: Option<T>,
    flag_name: &'static str,
) -> Option<Located<T>> {
    match (flag, spec) {
        (Some(value), _) => Some(Located::flag(value, flag_name)),
        (None, Some(spanned)) => Some(spanned.clone().into()),
        (None, None) => None,
    }
}

/// Applies the overrides to the spec and checks everything.
pub fn resolve(spec: Spec, flags: &Overrides) -> Result<Frontend, Vec<Problem>> {
    let mut c = Checker { problems: Vec::new() };

    let listen = located(spec.listen.as_ref(), flags.listen.clone(), "--listen")
        .unwrap_or_else(|| Located::default("0.0.0.0:8080".into()));
    let listen = socket_address(&mut c, "listen", &listen);
    let admin = located(spec.admin.as_ref(), flags.admin.clone(), "--admin")
        .unwrap_or_else(|| Located::default("127.0.0.1:9901".into()));
    let admin_addr = socket_address(&mut c, "admin", &admin);
    if let Some(addr) = &admin_addr {
        if !addr.address.parse::<IpAddr>().is_ok_and(|ip| ip.is_loopback()) {
            c.problem(&admin.origin, "admin", "must be a loopback address (127.0.0.1 or ::1): the admin interface can stop Envoy and dump its configuration");
        }
    }

    let region = located(spec.region.as_ref(), flags.region.clone(), "--region");
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
    let domain = located(spec.domain.as_ref(), flags.domain.clone(), "--domain");
    if let Some(d) = &domain {
        if !is_dns_name(&d.value) {
            c.problem(&d.origin, "domain", format!("`{}` is not a DNS name", d.value));
        }
    }

    let credentials = flags
        .credentials
        .or_else(|| spec.credentials.as_ref().map(|s| s.value))
        .unwrap_or(Credentials::Default);
    let wasm = located(spec.wasm.as_ref(), flags.wasm.clone(), "--wasm")
        .unwrap_or_else(|| Located::default(DEFAULT_WASM.into()));
    if wasm.value.is_empty() {
        c.problem(&wasm.origin, "wasm", "must not be empty");
    }

    let lattice = spec.lattice.unwrap_or_default();
    let lattice_ca = located(lattice.ca.as_ref(), flags.lattice_ca.clone(), "--lattice-ca")
        .unwrap_or_else(|| Located::default(SYSTEM_CA_BUNDLE.into()));
    check_path(&mut c, "lattice.ca", &lattice_ca);
    let jwks_ca = located(spec.jwks_ca.as_ref(), flags.jwks_ca.clone(), "--jwks-ca")
        .unwrap_or_else(|| Located::default(SYSTEM_CA_BUNDLE.into()));
    check_path(&mut c, "jwks_ca", &jwks_ca);
    let lattice_endpoint = located(
        lattice.endpoint.as_ref(),
        flags.lattice_endpoint.clone(),
        "--lattice-endpoint",
    )
    .and_then(|e| host_port(&mut c, "lattice.endpoint", &e));

    let tls = spec.tls.map(|t| {
        let origin: Located<_> = t.into();
        for (field, path) in [("tls.cert", &origin.value.cert), ("tls.key", &origin.value.key)] {
            if path.is_empty() {
                c.problem(&origin.origin, field, "must not be empty");
            }
        }
        Tls {
            cert: origin.value.cert,
            key: origin.value.key,
        }
    });

    let services = services(
        &mut c,
        spec.services,
        flags,
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
            let found = services.iter().find(|s| s.name == name.value).cloned();
            if found.is_none() {
                c.problem(
                    &name.origin,
                    "default_service",
                    format!("`{}` is not one of the services", name.value),
                );
            }
            found
        }
        None => services.first().cloned(),
    };

    let oauth_spec = spec.oauth.as_ref().map(|o| Located::<bool>::from(o.clone()));
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

    let filter_config = filter_config(&mut c, spec.filter, &providers);

    if !c.problems.is_empty() {
        return Err(c.problems);
    }
    let (Some(listen), Some(admin), Some(default_service)) = (listen, admin_addr, default_service) else {
        return Err(vec![Problem {
            origin: Origin::Default,
            field: String::new(),
            message: "incomplete spec".into(),
        }]);
    };
    Ok(Frontend {
        listen,
        admin,
        tls,
        oauth,
        providers,
        region,
        credentials: match credentials {
            Credentials::Env => "env".into(),
            Credentials::Default => "default".into(),
        },
        wasm: wasm.value,
        filter_config,
        services,
        default_service,
    })
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
type ServiceEntry = (
    Located<String>,
    Option<Located<String>>,
    Option<Located<String>>,
    String,
);

fn services(
    c: &mut Checker,
    spec: Option<Vec<serde_saphyr::Spanned<ServiceSpec>>>,
    flags: &Overrides,
    domain: Option<&Located<String>>,
    endpoint: Option<&SocketAddress>,
    ca: &str,
) -> Vec<Service> {
    let mut entries: Vec<ServiceEntry> = Vec::new();
    if !flags.services.is_empty() {
        for (i, s) in flags.services.iter().enumerate() {
            let (name, host) = match s.split_once('=') {
                Some((n, h)) => (n.to_string(), Some(Located::flag(h.to_string(), "--service"))),
                None => (s.clone(), None),
            };
            entries.push((Located::flag(name, "--service"), host, None, format!("--service[{i}]")));
        }
    } else if let Some(list) = spec {
        if list.is_empty() {
            c.problem(&Origin::Default, "services", "must name at least one service");
        }
        for (i, item) in list.into_iter().enumerate() {
            let s = item.value;
            entries.push((
                s.name.into(),
                s.host.map(Into::into),
                s.path.map(Into::into),
                format!("services[{i}]"),
            ));
        }
    } else {
        for name in DEFAULT_SERVICES {
            entries.push((Located::default(name.to_string()), None, None, "services".into()));
        }
    }

    let mut out: Vec<Service> = Vec::new();
    let mut seen_paths: BTreeMap<String, String> = BTreeMap::new();
    let mut seen_hosts: BTreeMap<String, String> = BTreeMap::new();
    for (name, host, path, field) in entries {
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
        let host = match (host, domain) {
            (Some(h), _) => {
                if !is_dns_name(&h.value) {
                    c.problem(
                        &h.origin,
                        format!("{field}.host"),
                        format!("`{}` is not a DNS name", h.value),
                    );
                    continue;
                }
                h.value.to_ascii_lowercase()
            }
            (None, Some(d)) => format!("{}.{}", name.value, d.value.to_ascii_lowercase()),
            (None, None) => {
                c.problem(
                    &name.origin,
                    format!("{field}.host"),
                    format!("service `{}` has no host: give `host` or a `domain`", name.value),
                );
                continue;
            }
        };
        if let Some(other) = seen_hosts.insert(host.clone(), name.value.clone()) {
            c.problem(
                &name.origin,
                format!("{field}.host"),
                format!("`{host}` is also the host of service `{other}`"),
            );
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
        if let Some(other) = seen_paths.insert(path_value.clone(), name.value.clone()) {
            c.problem(
                &path.origin,
                format!("{field}.path"),
                format!("`{path_value}` is also the path of service `{other}`"),
            );
        }
        let connect = endpoint.cloned().unwrap_or(SocketAddress {
            address: host.clone(),
            port: 443,
        });
        out.push(Service {
            upstream: TlsUpstream {
                cluster: format!("lattice_{}", name.value.replace('-', "_")),
                connect,
                host,
                ca: ca.to_string(),
            },
            name: name.value,
            path: path_value,
        });
    }
    out
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
    audiences: Located<Vec<Located<String>>>,
    cache_seconds: u32,
}

impl From<IssuerSpec> for IssuerEntry {
    fn from(i: IssuerSpec) -> Self {
        let audiences: Located<Vec<serde_saphyr::Spanned<String>>> = i.audiences.into();
        IssuerEntry {
            name: i.name.into(),
            issuer: Some(i.issuer.into()),
            jwks_uri: Some(i.jwks_uri.into()),
            audiences: Located {
                value: audiences.value.into_iter().map(Into::into).collect(),
                origin: audiences.origin,
            },
            cache_seconds: i.jwks_cache_seconds.unwrap_or(600),
        }
    }
}

fn issuers(
    c: &mut Checker,
    spec: Option<Vec<serde_saphyr::Spanned<IssuerSpec>>>,
    flags: &Overrides,
    ca: &str,
) -> Vec<Provider> {
    let mut entries: Vec<IssuerEntry> = spec.unwrap_or_default().into_iter().map(|s| s.value.into()).collect();
    let flagged = flags.issuer.is_some() || flags.jwks_uri.is_some() || !flags.audiences.is_empty();
    if flagged {
        match entries.len() {
            0 => entries.push(IssuerEntry {
                name: Located::default("jwt".into()),
                issuer: None,
                jwks_uri: None,
                audiences: Located::flag(Vec::new(), "--audience"),
                cache_seconds: 600,
            }),
            1 => {}
            _ => {
                c.problem(
                    &Origin::Flag("--issuer"),
                    "--issuer",
                    "--issuer, --jwks-uri and --audience cannot override a spec with several issuers",
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
            if !flags.audiences.is_empty() {
                let list = flags
                    .audiences
                    .iter()
                    .map(|a| Located::flag(a.clone(), "--audience"))
                    .collect();
                entry.audiences = Located::flag(list, "--audience");
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
            cache_seconds,
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
        let issuer_ok = https_url(c, &format!("{field}.issuer"), &issuer).is_some();
        let jwks_url = https_url(c, &format!("{field}.jwks_uri"), &jwks_uri);
        if audiences.value.is_empty() {
            c.problem(
                &audiences.origin,
                format!("{field}.audiences"),
                "at least one audience is required (an empty list would accept tokens minted for any API)",
            );
        }
        for (j, a) in audiences.value.iter().enumerate() {
            if a.value.trim().is_empty() {
                c.problem(&a.origin, format!("{field}.audiences[{j}]"), "must not be empty");
            }
        }
        if let (true, Some(url)) = (issuer_ok, jwks_url) {
            let host = url.host_str().unwrap_or_default().to_string();
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
                audiences: audiences.value.into_iter().map(|a| a.value).collect(),
                jwks_uri: url.to_string(),
                cache_seconds,
            });
        }
    }
    out
}

fn filter_config(c: &mut Checker, spec: Option<serde_saphyr::Spanned<RawConfig>>, providers: &[Provider]) -> String {
    let (mut raw, origin) = match spec {
        Some(s) => {
            let l: Located<RawConfig> = s.into();
            (l.value, l.origin)
        }
        None => (RawConfig::default(), Origin::Default),
    };
    if raw.payload_metadata_keys != RawConfig::default().payload_metadata_keys {
        c.problem(
            &origin,
            "filter.payload_metadata_keys",
            "is set by envoy-gen from `issuers`; remove it",
        );
    }
    if !providers.is_empty() {
        raw.payload_metadata_keys = providers.iter().map(|p| p.name.clone()).collect();
    }
    let json = serde_json::to_string(&raw).unwrap_or_default();
    if let Err(e) = Config::from_json(json.as_bytes()) {
        for message in e.0 {
            c.problem(&origin, "filter", message);
        }
    }
    json
}
