//! The token issuers (jwt_authn providers) and the filter's configuration
//! that reads their verified tokens.

use super::*;

/// One issuer while flags are applied.
pub(super) struct IssuerEntry {
    name: Located<String>,
    issuer: Option<Located<String>>,
    jwks_uri: Option<Located<String>>,
    audiences: Option<Located<Vec<Located<String>>>>,
    client_ids: Option<Located<Vec<Located<String>>>>,
    cache_seconds: u32,
    token_cache_size: Option<Located<u32>>,
}

pub(super) fn list(spec: Option<Located<OneOrMany<Located<String>>>>) -> Option<Located<Vec<Located<String>>>> {
    spec.map(|l| Located {
        value: l.value.0,
        origin: l.origin,
    })
}

pub(super) fn flag_list(values: &[String], flag: &'static str) -> Located<Vec<Located<String>>> {
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

pub(super) fn issuers(
    c: &mut Checker,
    spec: Option<OneOrMany<Located<IssuerSpec>>>,
    flags: &FrontendArgs,
    ca: &str,
) -> Vec<Provider> {
    let entries: Vec<IssuerEntry> = spec.unwrap_or_default().into_iter().map(|s| s.value.into()).collect();
    let Some(entries) = with_flags(c, entries, flags) else {
        return Vec::new();
    };
    if entries.is_empty() {
        c.problem(&Origin::Default, "issuers", "OAuth is on but no issuer is given: add `issuers` (or --issuer, --jwks-uri, --audience), or turn OAuth off with --no-oauth");
        return Vec::new();
    }
    let mut out: Vec<Provider> = Vec::new();
    for (i, entry) in entries.into_iter().enumerate() {
        if let Some(provider) = provider(c, &format!("issuers[{i}]"), entry, &out, ca) {
            out.push(provider);
        }
    }
    out
}

/// The issuer flags applied: they make or override the only issuer, and
/// cannot override several (`None`, a problem).
fn with_flags(c: &mut Checker, mut entries: Vec<IssuerEntry>, flags: &FrontendArgs) -> Option<Vec<IssuerEntry>> {
    let flagged = flags.issuer.is_some()
        || flags.jwks_uri.is_some()
        || !flags.audiences.is_empty()
        || !flags.client_ids.is_empty();
    if !flagged {
        return Some(entries);
    }
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
            return None;
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
    Some(entries)
}

/// One issuer as a jwt_authn provider, or `None` with its problems.
fn provider(c: &mut Checker, field: &str, entry: IssuerEntry, others: &[Provider], ca: &str) -> Option<Provider> {
    let IssuerEntry {
        name,
        issuer,
        jwks_uri,
        audiences,
        client_ids,
        cache_seconds,
        token_cache_size,
    } = entry;
    if !issuer_name_ok(c, field, &name, others) {
        return None;
    }
    let Some(issuer) = issuer else {
        c.problem(
            &Origin::Flag("--issuer"),
            "--issuer",
            "is required with --jwks-uri and --audience",
        );
        return None;
    };
    let Some(jwks_uri) = jwks_uri else {
        c.problem(&Origin::Flag("--jwks-uri"), "--jwks-uri", "is required with --issuer");
        return None;
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
            return None;
        }
        Some(size) => size.value,
        None => DEFAULT_TOKEN_CACHE_SIZE,
    };
    let issuer_ok = https_url(c, &format!("{field}.issuer"), &issuer).is_some();
    let jwks_url = https_url(c, &format!("{field}.jwks_uri"), &jwks_uri);
    let (audiences, client_ids) = acceptance(c, field, &name.origin, audiences, client_ids);
    let (true, Some(url)) = (issuer_ok, jwks_url) else {
        return None;
    };
    let host = url.host_str().unwrap_or_default().to_string();
    let jwks_path = match url.query() {
        Some(query) => format!("{}?{query}", url.path()),
        None => url.path().to_string(),
    };
    Some(Provider {
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
    })
}

/// An issuer name: lower-case letters, digits and `_`, and not one already given.
fn issuer_name_ok(c: &mut Checker, field: &str, name: &Located<String>, others: &[Provider]) -> bool {
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
        return false;
    }
    if others.iter().any(|p| p.name == name.value) {
        c.problem(
            &name.origin,
            format!("{field}.name"),
            format!("duplicate issuer `{}`", name.value),
        );
        return false;
    }
    true
}

/// How an issuer's tokens are told to be for this API: the audiences
/// jwt_authn checks against `aud`, or the client ids the filter checks
/// against `client_id` (Amazon Cognito's access tokens carry no `aud`).
/// Exactly one of them, never empty: jwt_authn checks no audience at all
/// when it is given none.
pub(super) fn acceptance(
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
pub(super) fn filter_config(
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
