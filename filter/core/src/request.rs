//! The one request-handling function of both builds of the filter: the
//! proxy-wasm module (`filter/`) and the native Envoy dynamic module
//! (`filter/native/`). Each build is a thin implementation of [`Host`] over
//! its own ABI; everything the filter decides is decided here, so the two
//! cannot drift (same stripping, same headers, same counters, same refusals),
//! and the glue logic runs natively in tests and in the fuzzer.

use crate::mapping::{map_claims, strips_client_header, Outcome, Output, Refusal};
use crate::Config;

/// The filter's counters. Each build shows them under its own prefix
/// (`wasmcustom.` or `dynamicmodulescustom.`) followed by [`Counter::name`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Counter {
    WithIdentity,
    ScopeHeaders,
    ScopesDropped,
    HeadersStripped,
    Refused,
    /// Last: a build that batches counts flushes it after the others, so a
    /// reader that sees `requests` reach N also sees every other count of
    /// those N requests.
    Requests,
}

impl Counter {
    pub const ALL: [Counter; 6] = [
        Counter::WithIdentity,
        Counter::ScopeHeaders,
        Counter::ScopesDropped,
        Counter::HeadersStripped,
        Counter::Refused,
        Counter::Requests,
    ];

    pub const fn name(self) -> &'static str {
        match self {
            Counter::WithIdentity => "jwt_scopes.requests_with_identity",
            Counter::ScopeHeaders => "jwt_scopes.scope_headers_emitted",
            Counter::ScopesDropped => "jwt_scopes.scopes_dropped",
            Counter::HeadersStripped => "jwt_scopes.client_headers_stripped",
            Counter::Refused => "jwt_scopes.requests_refused",
            Counter::Requests => "jwt_scopes.requests",
        }
    }
}

/// A host call that failed. The request is refused (fail closed); `what`
/// says which step, for the refusal's reason (never a header value).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HostError {
    pub what: &'static str,
}

impl HostError {
    pub const fn new(what: &'static str) -> Self {
        HostError { what }
    }
}

/// What a build gives the request handler: the request headers, the
/// verified claims, counters and the local reply.
pub trait Host {
    /// The verified claims, in the form the build gets them (see
    /// [`VerifiedClaims`]).
    type Claims: VerifiedClaims;

    /// Calls `visit` with the name of every request header, in order (a
    /// name may come more than once). No header is changed meanwhile.
    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError>;

    /// Removes every value of a request header.
    fn remove_request_header(&mut self, name: &[u8]) -> Result<(), HostError>;

    /// Adds a request header value.
    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError>;

    /// Applies the filter's changes: removes every value of each header
    /// named in `remove`, then adds `add` in order. The default makes one
    /// host call per change; a host with a cheaper way to change several
    /// headers at once overrides it.
    fn update_request_headers(
        &mut self,
        remove: &[Vec<u8>],
        add: &mut dyn Iterator<Item = (&str, &str)>,
    ) -> Result<(), HostError> {
        for name in remove {
            self.remove_request_header(name)?;
        }
        for (name, value) in add {
            self.add_request_header(name, value)?;
        }
        Ok(())
    }

    /// The verified claims; read once per request.
    fn verified_claims(&mut self) -> Result<Option<Self::Claims>, HostError>;

    /// Adds `n` to a counter. Never fails a request.
    fn count(&mut self, counter: Counter, n: u64);

    /// Ends the request with a local reply built from `refusal` (status,
    /// `www-authenticate` when it has a challenge, the reason as body).
    fn refuse(&mut self, refusal: &Refusal);
}

/// What [`Host::verified_claims`] returns: the verified payload in the
/// form the build gets it, and how that form is mapped. Encoded metadata
/// bytes (`Vec<u8>`, the proxy-wasm build's `metadata` property: jwt_authn's
/// namespace holding the payload under its payload key) map with
/// [`map_claims`]; the native build's JSON payload maps with
/// [`crate::map_payload_json`] (so the wasm module does not link the JSON
/// path it never takes).
pub trait VerifiedClaims {
    fn map(&self, config: &Config, out: &mut Output) -> Result<Outcome, Refusal>;
}

impl VerifiedClaims for Vec<u8> {
    fn map(&self, config: &Config, out: &mut Output) -> Result<Outcome, Refusal> {
        map_claims(config, Some(self), out)
    }
}

/// The local reply's response-code details (in Envoy's access log).
pub const REFUSAL_DETAILS: &str = "jwt_scopes_refused";

impl Refusal {
    /// The local reply's headers: a text body, and the challenge if any.
    pub fn reply_headers(&self) -> impl Iterator<Item = (&'static str, &'static str)> {
        [("content-type", "text/plain")]
            .into_iter()
            .chain(self.challenge.map(|c| ("www-authenticate", c)))
    }

    /// The local reply's body: the reason (never a claim value or token).
    pub fn reply_body(&self) -> String {
        format!("{}\n", self.reason)
    }
}

/// What the build returns to Envoy.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Verdict {
    /// Go on to the next filter.
    Continue,
    /// The request was refused with a local reply; stop.
    Stop,
}

/// Handles a request's headers: strips what only the filter may set, adds
/// the identity headers, or refuses. `config` is None when the filter has
/// no valid configuration (every request is refused). `out` is a buffer the
/// build keeps across requests.
pub fn handle_request<H: Host + ?Sized>(config: Option<&Config>, host: &mut H, out: &mut Output) -> Verdict {
    host.count(Counter::Requests, 1);
    let result = match config {
        Some(config) => process(config, host, out),
        None => Err(Refusal::internal("the filter has no configuration".into())),
    };
    match result {
        Ok(()) => Verdict::Continue,
        Err(refusal) => {
            host.count(Counter::Refused, 1);
            host.refuse(&refusal);
            Verdict::Stop
        }
    }
}

fn internal(error: HostError) -> Refusal {
    Refusal::internal(error.what.into())
}

fn process<H: Host + ?Sized>(config: &Config, host: &mut H, out: &mut Output) -> Result<(), Refusal> {
    let doomed = client_headers_to_strip(config, host)?;
    let claims = host.verified_claims().map_err(internal)?;
    let outcome = match &claims {
        None => map_claims(config, None, out)?,
        Some(claims) => claims.map(config, out)?,
    };
    host.update_request_headers(&doomed, &mut out.headers())
        .map_err(internal)?;
    host.count(Counter::HeadersStripped, doomed.len() as u64);
    host.count(Counter::WithIdentity, u64::from(outcome.identity));
    host.count(Counter::ScopeHeaders, outcome.scope_headers as u64);
    host.count(Counter::ScopesDropped, outcome.dropped as u64);
    Ok(())
}

/// The distinct names of the client headers to remove. Names are
/// collected before anything changes: a host's view of the headers may not
/// survive a change. Nothing is allocated when nothing is stripped.
fn client_headers_to_strip<H: Host + ?Sized>(config: &Config, host: &mut H) -> Result<Vec<Vec<u8>>, Refusal> {
    let mut doomed: Vec<Vec<u8>> = Vec::new();
    host.request_header_names(&mut |name| {
        if strips_client_header(config, name) && !doomed.iter().any(|d| d.eq_ignore_ascii_case(name)) {
            doomed.push(name.to_vec());
        }
    })
    .map_err(internal)?;
    Ok(doomed)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::config::JWT_AUTHN_NAMESPACE;
    use crate::fuzzing::RecordingHost;
    use crate::pb::encode;
    use serde_json::json;

    type FakeHost = RecordingHost;

    fn header<'h>(host: &'h FakeHost, name: &str) -> Vec<&'h str> {
        host.headers
            .iter()
            .filter(|(n, _)| n == name.as_bytes())
            .filter_map(|(_, v)| std::str::from_utf8(v).ok())
            .collect()
    }

    fn config() -> Config {
        Config::from_json(br#"{"payload_metadata_keys": ["jwt_payload"]}"#).unwrap()
    }

    fn host(headers: &[(&str, &str)], payload: Option<serde_json::Value>) -> FakeHost {
        FakeHost {
            headers: headers
                .iter()
                .map(|(n, v)| (n.as_bytes().to_vec(), v.as_bytes().to_vec()))
                .collect(),
            claims: payload.map(|p| encode::metadata(JWT_AUTHN_NAMESPACE, &json!({ "jwt_payload": p }))),
            ..FakeHost::default()
        }
    }

    #[test]
    fn strips_spoofed_headers_then_adds_the_verified_ones() {
        let mut host = host(
            &[
                ("x-jwt-subject", "mallory"),
                ("X-JWT-Scope-admin", "true"),
                ("x-jwt-subject", "again"),
                ("authorization", "Bearer t"),
                ("x-request-id", "r1"),
                ("accept", "*/*"),
            ],
            Some(json!({"sub": "alice", "scope": "read write"})),
        );
        let verdict = handle_request(Some(&config()), &mut host, &mut Output::default());
        assert_eq!(verdict, Verdict::Continue);
        assert_eq!(header(&host, "x-jwt-subject"), ["alice"]);
        assert!(header(&host, "X-JWT-Scope-admin").is_empty());
        assert!(header(&host, "authorization").is_empty());
        assert_eq!(header(&host, "x-request-id"), ["r1"]);
        assert_eq!(header(&host, "x-jwt-scope-read"), ["true"]);
        assert_eq!(header(&host, "x-jwt-scope-write"), ["true"]);
        assert_eq!(host.count_of(Counter::HeadersStripped), 3);
        assert_eq!(host.count_of(Counter::ScopeHeaders), 2);
        assert_eq!(host.count_of(Counter::WithIdentity), 1);
        assert_eq!(host.count_of(Counter::Requests), 1);
        assert_eq!(host.count_of(Counter::Refused), 0);
    }

    #[test]
    fn no_token_passes_without_identity_headers() {
        let mut host = host(&[("x-jwt-subject", "mallory")], None);
        assert_eq!(
            handle_request(Some(&config()), &mut host, &mut Output::default()),
            Verdict::Continue
        );
        assert!(header(&host, "x-jwt-subject").is_empty());
        assert_eq!(host.count_of(Counter::WithIdentity), 0);
    }

    #[test]
    fn every_host_failure_refuses_with_500() {
        for step in ["names", "remove", "add", "claims"] {
            let mut host = host(
                &[("x-jwt-subject", "mallory")],
                Some(json!({"sub": "alice", "scope": "read"})),
            );
            host.fail = Some(step);
            let verdict = handle_request(Some(&config()), &mut host, &mut Output::default());
            assert_eq!(verdict, Verdict::Stop, "{step}");
            let refusal = host.refused.clone().unwrap();
            assert_eq!(refusal.status, 500, "{step}");
            assert_eq!(refusal.reason, step);
            assert_eq!(host.count_of(Counter::Refused), 1);
        }
    }

    #[test]
    fn without_a_configuration_every_request_is_refused() {
        let mut host = host(&[], Some(json!({"sub": "alice"})));
        assert_eq!(handle_request(None, &mut host, &mut Output::default()), Verdict::Stop);
        assert!(header(&host, "x-jwt-subject").is_empty());
        assert_eq!(host.refused.unwrap().status, 500);
    }

    #[test]
    fn a_refusal_from_the_claims_reaches_the_host() {
        let config =
            Config::from_json(br#"{"payload_metadata_keys": ["jwt_payload"], "require_identity": true}"#).unwrap();
        let mut host = host(&[], None);
        assert_eq!(
            handle_request(Some(&config), &mut host, &mut Output::default()),
            Verdict::Stop
        );
        let refusal = host.refused.unwrap();
        assert_eq!(refusal.status, 401);
        assert_eq!(refusal.challenge, Some("Bearer"));
    }
}
