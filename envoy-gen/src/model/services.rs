//! The services: their hosts, ports and health checks, the sidecar
//! addresses, their roles, and their relations (whom each calls, who may
//! call it, with which scope headers).

use super::*;

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
pub(super) fn default_sidecar() -> SidecarAddresses {
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
pub(super) fn sidecar_of(c: &mut Checker, r: &Relations) -> SidecarAddresses {
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
pub(super) fn override_sidecar(
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

/// A role name (in `account`) or a role ARN.
pub(super) fn role(
    c: &mut Checker,
    field: &str,
    value: &Located<String>,
    account: Option<&Located<String>>,
) -> Option<Role> {
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
pub(super) struct Relations {
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

pub(super) fn relations(
    c: &mut Checker,
    services: &mut [Service],
    specs: Vec<Relations>,
    account: Option<&Located<String>>,
    frontend_role: Option<&Role>,
    filter: Option<&Config>,
) {
    let names: Vec<String> = services.iter().map(|s| s.name.clone()).collect();
    for (service, r) in services.iter_mut().zip(&specs) {
        identity_and_calls(c, service, r, &names, account);
    }
    // Callers, once every role is known.
    let peers: Vec<Peer> = services
        .iter()
        .map(|s| Peer {
            name: s.name.clone(),
            has_role: s.role.is_some(),
            propagates: s.propagate_identity,
            calls: s.calls.clone(),
        })
        .collect();
    for (service, r) in services.iter_mut().zip(&specs) {
        for (j, (origin, caller)) in r.callers.iter().enumerate() {
            let field = format!("{}.callers[{j}]", r.field);
            let scope_headers = scope_headers(c, &field, caller.scopes.as_ref(), filter);
            let parsed = match caller.from.value.as_str() {
                "frontend" => {
                    if frontend_role.is_none() {
                        c.problem(
                            &caller.from.origin,
                            format!("{field}.from"),
                            "the frontend is a caller: give `frontend.role`, the IAM role it signs with",
                        );
                    }
                    Some(Caller::Frontend { scope_headers })
                }
                "anonymous" => {
                    if let Some(s) = &caller.scopes {
                        c.problem(
                            &s.origin,
                            format!("{field}.scopes"),
                            "anonymous callers carry no verified token, so no scope can be required",
                        );
                    }
                    Some(Caller::Anonymous)
                }
                _ => service_caller(c, &field, caller, &service.name, &peers, scope_headers),
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
    distinct_roles(c, services, &specs, frontend_role);
}

/// A service as others see it when it calls them.
struct Peer {
    name: String,
    has_role: bool,
    propagates: bool,
    calls: Vec<String>,
}

/// The service's id, role and the services it calls, checked.
fn identity_and_calls(
    c: &mut Checker,
    service: &mut Service,
    r: &Relations,
    names: &[String],
    account: Option<&Located<String>>,
) {
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

/// A caller that names another service of the spec (`from: <name>`), checked
/// against what that service does: it calls this one, signs with a role,
/// and propagates the user's identity when scopes are required.
fn service_caller(
    c: &mut Checker,
    field: &str,
    caller: &CallerSpec,
    service: &str,
    peers: &[Peer],
    scope_headers: Vec<ScopeHeader>,
) -> Option<Caller> {
    let (from, scopes) = (&caller.from, caller.scopes.as_ref());
    let name = from.value.as_str();
    let Some(peer) = peers.iter().find(|p| p.name == name) else {
        c.problem(
            &from.origin,
            format!("{field}.from"),
            format!("`{name}` is not `frontend`, `anonymous` or a service of this spec"),
        );
        return None;
    };
    // An admission the caller never uses is either a typo or an identity
    // policy that would be wider than the spec.
    if name != service && !peer.calls.iter().any(|call| call == service) {
        c.problem(
            &from.origin,
            format!("{field}.from"),
            format!("service `{name}` does not list `{service}` in its `calls`"),
        );
    }
    if !peer.has_role {
        c.problem(
            &from.origin,
            format!("{field}.from"),
            format!("service `{name}` is a caller: give it the IAM `role` it signs with"),
        );
    }
    if let (Some(s), false) = (scopes, peer.propagates) {
        c.problem(
            &s.origin,
            format!("{field}.scopes"),
            format!("service `{name}` does not propagate the user's identity (`propagate_identity: true`), so its calls carry no scope"),
        );
    }
    if name == service {
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

/// Lattice tells callers apart by role only: no two share one.
fn distinct_roles(c: &mut Checker, services: &[Service], specs: &[Relations], frontend_role: Option<&Role>) {
    let mut by_role: BTreeMap<String, String> = BTreeMap::new();
    if let Some(f) = frontend_role {
        by_role.insert(f.arn.clone(), "the frontend".into());
    }
    for (service, r) in services.iter().zip(specs) {
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

pub(super) const RESERVED_CALLERS: [&str; 2] = ["frontend", "anonymous"];

/// The headers the frontend's filter emits for `scopes`, under its
/// configuration: the filter core's own mapping, so a policy always names
/// the header the filter sends.
pub(super) fn scope_headers(
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

/// A service while flags are applied: name, host, path, and the field
/// (`services[1]` or `--service[0]`) that problems name.
pub(super) struct ServiceEntry {
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
pub(super) fn service_hosts(c: &mut Checker, flags: &[String], names: &[&str]) -> BTreeMap<String, String> {
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

pub(super) fn services(
    c: &mut Checker,
    spec: Option<OneOrMany<Located<ServiceSpec>>>,
    flags: &FrontendArgs,
    host_flags: &[String],
    domain: Option<&Located<String>>,
    endpoint: Option<&SocketAddress>,
    ca: &str,
) -> (Vec<Service>, Vec<Relations>) {
    let entries = service_entries(c, spec, flags);
    let names: Vec<&str> = entries.iter().map(|e| e.name.value.as_str()).collect();
    let flag_hosts = service_hosts(c, host_flags, &names);
    let mut out: Vec<Service> = Vec::new();
    let mut relations: Vec<Relations> = Vec::new();
    let mut seen = Seen::default();
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
        if !service_name_ok(c, &name, &field, &out) {
            continue;
        }
        let Some(host) = service_host(c, &name, &field, host, domain, flag_hosts.get(&name.value).cloned()) else {
            continue;
        };
        if let Some((host, flagged)) = &host {
            seen.host(c, host, *flagged, &name, &field);
        }
        let Some(path) = service_path(c, &name, &field, path, &mut seen) else {
            continue;
        };
        let (port, health_check_path) = port_and_health_check(c, &field, port, health_check);
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
            path,
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

/// The services as the flags, the spec or the defaults name them, in order.
fn service_entries(
    c: &mut Checker,
    spec: Option<OneOrMany<Located<ServiceSpec>>>,
    flags: &FrontendArgs,
) -> Vec<ServiceEntry> {
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
    entries
}

/// A service name: lower-case letters, digits and hyphens, and not one
/// already given.
fn service_name_ok(c: &mut Checker, name: &Located<String>, field: &str, services: &[Service]) -> bool {
    let valid = !name.value.is_empty()
        && name
            .value
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.value.starts_with('-');
    if !valid {
        c.problem(
            &name.origin,
            format!("{field}.name"),
            format!(
                "`{}` is not a service name (lower-case letters, digits and hyphens)",
                name.value
            ),
        );
        return false;
    }
    if services.iter().any(|s| s.name == name.value) {
        c.problem(
            &name.origin,
            format!("{field}.name"),
            format!("duplicate service `{}`", name.value),
        );
        return false;
    }
    true
}

/// The service's host and whether --service-host gave it: the flag wins
/// over the spec's host and domain; with none of them the service has no
/// custom domain name (`Some(None)`: no upstream yet). `None`: a host that
/// is no DNS name (a problem).
fn service_host(
    c: &mut Checker,
    name: &Located<String>,
    field: &str,
    host: Option<Located<String>>,
    domain: Option<&Located<String>>,
    flag_host: Option<String>,
) -> Option<Option<(String, bool)>> {
    Some(match (flag_host, host, domain) {
        (Some(h), _, _) => Some((h, true)),
        (None, Some(h), _) => {
            if !is_dns_name(&h.value) {
                c.problem(
                    &h.origin,
                    format!("{field}.host"),
                    format!("`{}` is not a DNS name", h.value),
                );
                return None;
            }
            Some((h.value.to_ascii_lowercase(), false))
        }
        (None, None, Some(d)) => Some((format!("{}.{}", name.value, d.value.to_ascii_lowercase()), false)),
        (None, None, None) => None,
    })
}

/// The hosts and paths given so far, each with its service.
#[derive(Default)]
struct Seen {
    /// Each host, the service it is of, and whether --service-host gave it.
    hosts: BTreeMap<String, (String, bool)>,
    paths: BTreeMap<String, String>,
}

impl Seen {
    /// Two services with one host is a problem, named at the flag when one
    /// of them came from --service-host.
    fn host(&mut self, c: &mut Checker, host: &str, flagged: bool, name: &Located<String>, field: &str) {
        let Some((other, other_flagged)) = self.hosts.insert(host.to_string(), (name.value.clone(), flagged)) else {
            return;
        };
        if flagged || other_flagged {
            let (given, also) = if flagged {
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

/// The service's route prefix (default `/<name>`), checked; `None` when it
/// is no path prefix (a problem).
fn service_path(
    c: &mut Checker,
    name: &Located<String>,
    field: &str,
    path: Option<Located<String>>,
    seen: &mut Seen,
) -> Option<String> {
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
        return None;
    }
    if FRONTEND_PATHS.contains(&path.value.as_str()) {
        c.problem(
            &path.origin,
            format!("{field}.path"),
            format!(
                "`{}` is the frontend's own (`/health`: liveness, `/ready`: readiness); give the service another `path`",
                path.value
            ),
        );
    }
    if let Some(other) = seen.paths.insert(path.value.clone(), name.value.clone()) {
        c.problem(
            &path.origin,
            format!("{field}.path"),
            format!("`{}` is also the path of service `{other}`", path.value),
        );
    }
    Some(path.value)
}

/// The application's port and what Lattice's health checks request.
fn port_and_health_check(
    c: &mut Checker,
    field: &str,
    port: Option<Located<u16>>,
    health_check: Option<Located<String>>,
) -> (u16, String) {
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
    (port, health_check_path)
}

/// A path Lattice's target-group health check takes (its API's pattern:
/// `^/[a-zA-Z0-9@:%_+.~#?&/=-]*$`, at most 2048 characters).
pub(super) fn is_health_check_path(p: &str) -> bool {
    p.starts_with('/')
        && p.len() <= 2048
        && p.bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"@:%_+.~#?&/=-".contains(&b))
}

pub(super) fn is_route_prefix(p: &str) -> bool {
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
