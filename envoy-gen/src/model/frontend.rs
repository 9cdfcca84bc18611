//! The frontend's own settings: the methods it forwards, and CORS for
//! browser apps on other origins.

use super::*;

/// The spec's methods, checked: standard methods only, exact case, each
/// once; TRACE and CONNECT never.
pub(super) fn methods(c: &mut Checker, spec: Option<Located<OneOrMany<Located<String>>>>) -> Vec<String> {
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
pub(super) fn cors_policy(c: &mut Checker, spec: Located<CorsSpec>, methods: &[String]) -> Option<Cors> {
    let Located { value: spec, origin } = spec;
    let problems = c.problems.len();
    if !methods.iter().any(|m| m == "OPTIONS") {
        c.problem(
            &origin,
            "cors",
            "needs OPTIONS among `methods`: browsers send their preflight requests as OPTIONS",
        );
    }
    let origins = cors_origins(c, &spec.allow_origins);
    let allow_methods = match spec.allow_methods {
        None => methods.to_vec(),
        Some(list) => cors_methods(c, &list, methods),
    };
    let allow_headers = cors_headers(c, spec.allow_headers, "allow_headers", &DEFAULT_CORS_HEADERS);
    let expose_headers = cors_headers(c, spec.expose_headers, "expose_headers", &[]);
    if let Some(max_age) = spec.max_age.as_ref().filter(|m| m.value > MAX_CORS_MAX_AGE) {
        c.problem(
            &max_age.origin,
            "cors.max_age",
            format!(
                "{} seconds is longer than browsers keep a preflight (at most {MAX_CORS_MAX_AGE})",
                max_age.value
            ),
        );
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

/// The allowed origins: at least one, each a web origin, each once.
fn cors_origins(c: &mut Checker, list: &Located<OneOrMany<Located<String>>>) -> Vec<String> {
    if list.value.is_empty() {
        c.problem(&list.origin, "cors.allow_origins", "must list at least one origin");
    }
    let mut origins: Vec<String> = Vec::new();
    for (i, item) in list.value.iter().enumerate() {
        let field = format!("cors.allow_origins[{i}]");
        match web_origin(&item.value) {
            Err(message) => c.problem(&item.origin, field, message),
            Ok(()) if origins.contains(&item.value) => {
                c.problem(&item.origin, field, format!("`{}` is listed twice", item.value))
            }
            Ok(()) => origins.push(item.value.clone()),
        }
    }
    origins
}

/// The methods CORS allows: at least one, each among `methods`, each once.
fn cors_methods(c: &mut Checker, list: &Located<OneOrMany<Located<String>>>, methods: &[String]) -> Vec<String> {
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

/// A CORS header list (`cors.<name>`), lower-cased and joined, or `default`.
fn cors_headers(
    c: &mut Checker,
    list: Option<Located<OneOrMany<Located<String>>>>,
    name: &str,
    default: &[&str],
) -> String {
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
}

/// An origin as a browser sends it in `Origin`: `http` or `https`, a host,
/// the port only when it is not the scheme's default, nothing else.
pub(super) fn web_origin(text: &str) -> Result<(), String> {
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
pub(super) fn is_token(name: &str) -> bool {
    !name.is_empty()
        && name
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b"!#$%&'*+-.^_`|~".contains(&b))
        && name != "*"
}
