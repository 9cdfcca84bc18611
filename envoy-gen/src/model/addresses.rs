//! Addresses, paths and names: listeners, loopback-only admin and sidecar
//! addresses, host:port endpoints, https URLs, DNS names, regions, account ids.

use super::*;

pub(super) const ADMIN_REASON: &str = "the admin interface can stop Envoy and dump its configuration";
pub(super) const SIDECAR_REASON: &str =
    "anyone who reaches the sidecar gets requests signed with the service's IAM role";

/// An `IP:PORT` that must be on a loopback address, with why in the message.
pub(super) fn loopback_address(
    c: &mut Checker,
    field: &str,
    value: &Located<String>,
    why: &str,
) -> Option<SocketAddress> {
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

/// A 12-digit AWS account id.
pub fn is_account_id(s: &str) -> bool {
    s.len() == 12 && s.bytes().all(|b| b.is_ascii_digit())
}

pub(super) fn check_path(c: &mut Checker, field: &str, path: &Located<String>) {
    if path.value.is_empty() {
        c.problem(&path.origin, field, "must not be empty");
    }
}

pub(super) fn is_region(s: &str) -> bool {
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
pub(super) fn socket_address(c: &mut Checker, field: &str, value: &Located<String>) -> Option<SocketAddress> {
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
pub(super) fn host_port(c: &mut Checker, field: &str, value: &Located<String>) -> Option<SocketAddress> {
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

pub(super) fn https_url(c: &mut Checker, field: &str, value: &Located<String>) -> Option<url::Url> {
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
