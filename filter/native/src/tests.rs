//! Native tests of everything that does not need Envoy: configuration,
//! verdicts, and the request handler fed as this module feeds it (claims
//! from jwt_authn's forwarded payload header). The FFI itself runs in the e2e test
//! `tests/tests/native_module.rs`, inside Envoy.

use super::*;
use serde_json::json;
use std::collections::HashMap;

#[test]
fn the_payload_headers_are_documented_ones() {
    let config = filter_config(json!({"payload_metadata_keys": ["jwt_payload", "Okta"]}));
    let headers: Vec<&str> = config.payload_keys().iter().map(|k| k.header.as_str()).collect();
    assert_eq!(headers, ["x-jwt-payload-jwt_payload", "x-jwt-payload-okta"]);
}

/// The configuration of a `jwt_scopes` filter.
fn scopes_config(bytes: &[u8]) -> Result<Config, String> {
    match parse_config(b"jwt_scopes", bytes)? {
        Parsed::Scopes(config) => Ok(config),
        Parsed::Guard => Err("not jwt_scopes".into()),
    }
}

#[test]
fn configuration_is_the_wasm_modules() {
    // The same JSON (StringValue) or a Struct rendered as JSON by Envoy.
    let config = scopes_config(br#"{"payload_metadata_keys":["okta","entra"],"require_identity":true}"#).unwrap();
    assert_eq!(config.payload_metadata_keys, ["okta", "entra"]);
    assert!(config.require_identity);
    // No filter_config at all: the defaults, as in the wasm build.
    let defaults = scopes_config(b"").unwrap();
    assert_eq!(defaults.payload_metadata_keys, ["jwt_payload"]);
}

#[test]
fn the_guard_takes_no_configuration() {
    // None, or an empty StringValue: the guard.
    for empty in [&b""[..], b" \n"] {
        assert!(matches!(parse_config(b"sign_guard", empty), Ok(Parsed::Guard)));
    }
    // Anything else, even an empty JSON object, is refused (Envoy then
    // refuses to start), as the wasm build refuses a `configuration`.
    for given in [&b"{}"[..], b"null", br#"{"require_identity":true}"#] {
        let error = parse_config(b"sign_guard", given).unwrap_err();
        assert!(error.starts_with("sign_guard takes no configuration"), "{error}");
    }
}

#[test]
fn invalid_configurations_and_names_are_refused() {
    let error = scopes_config(br#"{"max_scopes": 100000, "bogus": 1}"#).unwrap_err();
    assert!(error.starts_with("invalid jwt_scopes configuration: "), "{error}");
    let error = scopes_config(br#"{"scope_header_prefix": "x-amz-"}"#).unwrap_err();
    assert!(error.contains("scope_header_prefix"), "{error}");
    let error = parse_config(b"Sign_guard", b"").unwrap_err();
    assert!(
        error.contains("unknown filter_name `Sign_guard`: this module has `jwt_scopes` and `sign_guard`"),
        "{error}"
    );
}

#[test]
fn verdicts_map_to_envoys_header_statuses() {
    assert_eq!(headers_status(Verdict::Continue), 0);
    assert_eq!(headers_status(Verdict::Stop), 1);
}

#[test]
fn counter_ids_follow_counter_order() {
    let config = FilterConfig::new(Config::from_json(b"").unwrap(), [10, 11, 12, 13, 14, 15]).unwrap();
    for (i, counter) in Counter::ALL.into_iter().enumerate() {
        assert_eq!(config.counter_id(counter), Some(10 + i));
    }
    assert_eq!(config.counter_id(Counter::Requests), Some(15));
}

/// A host like `NativeHost`, with Envoy's header map and jwt_authn's
/// metadata keys replaced by vectors: claims come through the same
/// `claims` code, and payload headers are kept from the stripping step and
/// removed afterwards, as `NativeHost` does.
struct StateHost<'c> {
    config: &'c FilterConfig,
    headers: Vec<(String, String)>,
    verified: Vec<&'static str>,
    counts: HashMap<&'static str, u64>,
    refused: Option<Refusal>,
}

impl<'c> StateHost<'c> {
    fn new(config: &'c FilterConfig, headers: &[(&str, &str)], verified: &[&'static str]) -> Self {
        StateHost {
            config,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            verified: verified.to_vec(),
            counts: HashMap::new(),
            refused: None,
        }
    }

    /// `handle_request`, then the payload headers' removal, as
    /// `on_request_headers` does.
    fn handle(&mut self) -> Verdict {
        let config = self.config;
        let verdict = handle_request(Some(config.config()), self, &mut Output::default());
        if verdict == Verdict::Continue {
            for key in config.payload_keys() {
                self.remove_request_header(key.header.as_bytes()).unwrap();
            }
        }
        verdict
    }

    fn identity(&self) -> Vec<(String, String)> {
        let mut out: Vec<_> = self
            .headers
            .iter()
            .filter(|(n, _)| n.starts_with("x-jwt"))
            .cloned()
            .collect();
        out.sort();
        out
    }
}

impl Host for StateHost<'_> {
    type Claims = claims::Payload;

    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError> {
        for (name, _) in &self.headers {
            if !claims::is_payload_header(self.config.payload_keys(), name.as_bytes()) {
                visit(name.as_bytes());
            }
        }
        Ok(())
    }

    fn remove_request_header(&mut self, name: &[u8]) -> Result<(), HostError> {
        self.headers.retain(|(n, _)| !n.as_bytes().eq_ignore_ascii_case(name));
        Ok(())
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        self.headers.push((name.into(), value.into()));
        Ok(())
    }

    fn verified_claims(&mut self) -> Result<Option<claims::Payload>, HostError> {
        let verified: Vec<&[u8]> = self.verified.iter().map(|k| k.as_bytes()).collect();
        let headers = &self.headers;
        claims::verified_claims(self.config.payload_keys(), &verified, |name| {
            let mut values = headers.iter().filter(|(n, _)| n == name).map(|(_, v)| v.as_bytes());
            match (values.next(), values.next()) {
                (None, _) => Ok(None),
                (Some(value), None) => Ok(Some(value)),
                _ => Err(HostError::new("several values")),
            }
        })
    }

    fn count(&mut self, counter: Counter, n: u64) {
        *self.counts.entry(counter.name()).or_default() += n;
    }

    fn refuse(&mut self, refusal: &Refusal) {
        self.refused = Some(refusal.clone());
    }
}

fn filter_config(json: serde_json::Value) -> FilterConfig {
    FilterConfig::new(scopes_config(json.to_string().as_bytes()).unwrap(), [0; 6]).unwrap()
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    out.sort();
    out
}

/// jwt_authn's forwarded payload: base64url, unpadded.
fn forwarded(payload: serde_json::Value) -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string())
}

#[test]
fn a_verified_forwarded_payload_becomes_identity_headers() {
    let config = filter_config(json!({}));
    let payload = forwarded(json!({"sub": "alice", "scp": ["read", "admin"], "scope": "write read"}));
    let mut host = StateHost::new(
        &config,
        &[
            (":path", "/api"),
            ("x-jwt-subject", "mallory"),
            ("x-jwt-scope-root", "true"),
            ("authorization", "Bearer t"),
            ("x-request-id", "r1"),
            ("x-jwt-payload-jwt_payload", &payload),
        ],
        &["jwt_payload"],
    );
    assert_eq!(host.handle(), Verdict::Continue);
    assert_eq!(
        host.identity(),
        pairs(&[
            ("x-jwt-subject", "alice"),
            ("x-jwt-scope-read", "true"),
            ("x-jwt-scope-admin", "true"),
            ("x-jwt-scope-write", "true"),
        ])
    );
    assert!(host.headers.iter().all(|(n, _)| n != "authorization"));
    assert!(host.headers.contains(&("x-request-id".into(), "r1".into())));
    assert_eq!(host.counts["jwt_scopes.requests"], 1);
    assert_eq!(host.counts["jwt_scopes.requests_with_identity"], 1);
    assert_eq!(host.counts["jwt_scopes.scope_headers_emitted"], 3);
    // The payload header is not a client header: not counted, but gone.
    assert_eq!(host.counts["jwt_scopes.client_headers_stripped"], 3);
}

#[test]
fn a_payload_header_without_jwt_authns_metadata_is_ignored_and_removed() {
    let config = filter_config(json!({}));
    let forged = forwarded(json!({"sub": "admin", "scp": ["root"]}));
    let mut host = StateHost::new(
        &config,
        &[("x-jwt-subject", "mallory"), ("x-jwt-payload-jwt_payload", &forged)],
        &[],
    );
    assert_eq!(host.handle(), Verdict::Continue);
    assert_eq!(host.identity(), pairs(&[]));
    assert_eq!(
        host.counts
            .get("jwt_scopes.requests_with_identity")
            .copied()
            .unwrap_or(0),
        0
    );

    let strict = filter_config(json!({"require_identity": true}));
    let mut host = StateHost::new(&strict, &[("x-jwt-payload-jwt_payload", &forged)], &[]);
    assert_eq!(host.handle(), Verdict::Stop);
    let refusal = host.refused.unwrap();
    assert_eq!((refusal.status, refusal.challenge), (401, Some("Bearer")));
}

#[test]
fn a_client_copy_beside_jwt_authns_payload_fails_closed() {
    let config = filter_config(json!({}));
    let forged = forwarded(json!({"sub": "admin", "scp": ["root"]}));
    let real = forwarded(json!({"sub": "alice"}));
    // Without the frontend's early removal, jwt_authn appends its value
    // after the client's: two values, refused.
    let mut host = StateHost::new(
        &config,
        &[
            ("x-jwt-payload-jwt_payload", &forged),
            ("x-jwt-payload-jwt_payload", &real),
        ],
        &["jwt_payload"],
    );
    assert_eq!(host.handle(), Verdict::Stop);
    assert_eq!(host.refused.as_ref().map(|r| r.status), Some(500));
    assert_eq!(
        host.identity(),
        pairs(&[
            ("x-jwt-payload-jwt_payload", &forged),
            ("x-jwt-payload-jwt_payload", &real)
        ])
    );
    assert_eq!(host.counts["jwt_scopes.requests_refused"], 1);
}

#[test]
fn a_payload_that_is_not_an_object_fails_closed() {
    let config = filter_config(json!({}));
    let not_objects = [
        forwarded(json!("alice")),
        forwarded(json!(["admin"])),
        forwarded(json!(42)),
    ];
    let garbage = ["-", "not base64!", "eyJzdWIi"]; // the last: `{"sub"`, cut short
    for value in not_objects.iter().map(String::as_str).chain(garbage) {
        let mut host = StateHost::new(
            &config,
            &[("x-jwt-subject", "mallory"), ("x-jwt-payload-jwt_payload", value)],
            &["jwt_payload"],
        );
        assert_eq!(host.handle(), Verdict::Stop, "{value}");
        assert_eq!(host.refused.as_ref().map(|r| r.status), Some(500), "{value}");
        assert_eq!(host.counts["jwt_scopes.requests_refused"], 1);
        assert!(!host.counts.contains_key("jwt_scopes.requests_with_identity"));
    }
}

#[test]
fn the_first_configured_provider_with_a_payload_wins() {
    let config = filter_config(json!({"payload_metadata_keys": ["okta", "entra"]}));
    let entra = forwarded(json!({"sub": "e"}));
    let okta = forwarded(json!({"sub": "o", "scp": ["x"]}));
    let mut host = StateHost::new(
        &config,
        &[("x-jwt-payload-entra", &entra), ("x-jwt-payload-okta", &okta)],
        &["entra", "okta"],
    );
    host.handle();
    assert_eq!(
        host.identity(),
        pairs(&[("x-jwt-subject", "o"), ("x-jwt-scope-x", "true")])
    );
}
