//! Native tests of everything that does not need Envoy: configuration,
//! verdicts, and the request handler fed as this module feeds it (claims
//! from the filter state). The FFI itself runs in the e2e test
//! `tests/tests/native_module.rs`, inside Envoy.

use super::*;
use serde_json::json;
use std::collections::HashMap;

#[test]
fn the_filter_state_keys_are_documented_ones() {
    assert_eq!(FILTER_STATE_KEY_PREFIX, "jwt_scopes.payload.");
    assert_eq!(filter_state_key("jwt_payload"), "jwt_scopes.payload.jwt_payload");
}

#[test]
fn configuration_is_the_wasm_modules() {
    // The same JSON (StringValue) or a Struct rendered as JSON by Envoy.
    let config = parse_config(
        b"jwt_scopes",
        br#"{"payload_metadata_keys":["okta","entra"],"require_identity":true}"#,
    )
    .unwrap();
    assert_eq!(config.payload_metadata_keys, ["okta", "entra"]);
    assert!(config.require_identity);
    // No filter_config at all: the defaults, as in the wasm build.
    let defaults = parse_config(b"jwt_scopes", b"").unwrap();
    assert_eq!(defaults.payload_metadata_keys, ["jwt_payload"]);
}

#[test]
fn invalid_configurations_and_names_are_refused() {
    let error = parse_config(b"jwt_scopes", br#"{"max_scopes": 100000, "bogus": 1}"#).unwrap_err();
    assert!(error.starts_with("invalid jwt_scopes configuration: "), "{error}");
    let error = parse_config(b"jwt_scopes", br#"{"scope_header_prefix": "x-amz-"}"#).unwrap_err();
    assert!(error.contains("scope_header_prefix"), "{error}");
    let error = parse_config(b"sign_guard", b"").unwrap_err();
    assert!(error.contains("unknown filter_name `sign_guard`"), "{error}");
}

#[test]
fn verdicts_map_to_envoys_header_statuses() {
    assert_eq!(headers_status(Verdict::Continue), 0);
    assert_eq!(headers_status(Verdict::Stop), 1);
}

#[test]
fn counter_ids_follow_counter_order() {
    let config = FilterConfig::new(Config::from_json(b"").unwrap(), [10, 11, 12, 13, 14, 15]);
    for (i, counter) in Counter::ALL.into_iter().enumerate() {
        assert_eq!(config.counter_id(counter), Some(10 + i));
    }
    assert_eq!(config.counter_id(Counter::Requests), Some(15));
}

/// A host like `NativeHost`, with Envoy's header map and filter state
/// replaced by vectors: claims come through the same `claims` code.
struct StateHost<'c> {
    config: &'c FilterConfig,
    headers: Vec<(String, String)>,
    state: HashMap<String, Vec<u8>>,
    counts: HashMap<&'static str, u64>,
    refused: Option<Refusal>,
}

impl<'c> StateHost<'c> {
    fn new(config: &'c FilterConfig, headers: &[(&str, &str)], state: &[(&str, String)]) -> Self {
        StateHost {
            config,
            headers: headers.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect(),
            state: state
                .iter()
                .map(|(k, v)| (k.to_string(), v.clone().into_bytes()))
                .collect(),
            counts: HashMap::new(),
            refused: None,
        }
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
    type Claims = Vec<u8>;

    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError> {
        for (name, _) in &self.headers {
            visit(name.as_bytes());
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

    fn verified_claims(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        let state = &self.state;
        claims::verified_claims(self.config.payload_keys(), |key| state.get(key).map(Vec::as_slice))
    }

    fn count(&mut self, counter: Counter, n: u64) {
        *self.counts.entry(counter.name()).or_default() += n;
    }

    fn refuse(&mut self, refusal: &Refusal) {
        self.refused = Some(refusal.clone());
    }
}

fn filter_config(json: serde_json::Value) -> FilterConfig {
    FilterConfig::new(
        parse_config(b"jwt_scopes", json.to_string().as_bytes()).unwrap(),
        [0; 6],
    )
}

fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    out.sort();
    out
}

#[test]
fn a_payload_in_filter_state_becomes_identity_headers() {
    let config = filter_config(json!({}));
    let payload = json!({"sub": "alice", "scp": ["read", "admin"], "scope": "write read"}).to_string();
    let mut host = StateHost::new(
        &config,
        &[
            (":path", "/api"),
            ("x-jwt-subject", "mallory"),
            ("x-jwt-scope-root", "true"),
            ("authorization", "Bearer t"),
            ("x-request-id", "r1"),
        ],
        &[("jwt_scopes.payload.jwt_payload", payload)],
    );
    let verdict = handle_request(Some(config.config()), &mut host, &mut Output::default());
    assert_eq!(verdict, Verdict::Continue);
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
    assert_eq!(host.counts["jwt_scopes.client_headers_stripped"], 3);
}

#[test]
fn no_filter_state_means_no_identity() {
    let config = filter_config(json!({}));
    let mut host = StateHost::new(&config, &[("x-jwt-subject", "mallory")], &[]);
    assert_eq!(
        handle_request(Some(config.config()), &mut host, &mut Output::default()),
        Verdict::Continue
    );
    assert_eq!(host.identity(), pairs(&[]));

    let strict = filter_config(json!({"require_identity": true}));
    let mut host = StateHost::new(&strict, &[], &[]);
    assert_eq!(
        handle_request(Some(strict.config()), &mut host, &mut Output::default()),
        Verdict::Stop
    );
    let refusal = host.refused.unwrap();
    assert_eq!((refusal.status, refusal.challenge), (401, Some("Bearer")));
}

#[test]
fn a_payload_that_is_not_an_object_fails_closed() {
    let config = filter_config(json!({}));
    for value in ["alice", "-", "[\"admin\"]", "\"x\""] {
        let mut host = StateHost::new(
            &config,
            &[("x-jwt-subject", "mallory")],
            &[("jwt_scopes.payload.jwt_payload", value.into())],
        );
        assert_eq!(
            handle_request(Some(config.config()), &mut host, &mut Output::default()),
            Verdict::Stop,
            "{value}"
        );
        assert_eq!(host.refused.as_ref().map(|r| r.status), Some(500), "{value}");
        assert_eq!(host.counts["jwt_scopes.requests_refused"], 1);
        assert!(!host.counts.contains_key("jwt_scopes.requests_with_identity"));
    }
}

#[test]
fn the_first_configured_provider_with_a_payload_wins() {
    let config = filter_config(json!({"payload_metadata_keys": ["okta", "entra"]}));
    let mut host = StateHost::new(
        &config,
        &[],
        &[
            ("jwt_scopes.payload.entra", json!({"sub": "e"}).to_string()),
            ("jwt_scopes.payload.okta", json!({"sub": "o", "scp": ["x"]}).to_string()),
        ],
    );
    handle_request(Some(config.config()), &mut host, &mut Output::default());
    assert_eq!(
        host.identity(),
        pairs(&[("x-jwt-subject", "o"), ("x-jwt-scope-x", "true")])
    );
}
