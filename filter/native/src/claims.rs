//! Where the native build finds the verified claims, and how it hands them
//! to the shared request handler.
//!
//! The dynamic-modules ABI of Envoy 1.40 reads dynamic metadata one level
//! deep only (`namespace -> key -> scalar or list of scalars`): jwt_authn's
//! payload, a Struct under `envoy.filters.http.jwt_authn` / `<payload key>`,
//! is out of reach. So the Envoy configuration puts, between jwt_authn and
//! this filter, an `envoy.filters.http.set_filter_state` filter that copies
//! each payload as JSON text into the stream's filter state:
//!
//! - object key [`filter_state_key`]`(K)` = `jwt_scopes.payload.K` for every
//!   `K` in the configuration's `payload_metadata_keys`;
//! - `factory_key: envoy.string` (a plain string object, the only kind the
//!   ABI's `get_filter_state_bytes` reads);
//! - format `%DYNAMIC_METADATA(envoy.filters.http.jwt_authn:K)%`, with
//!   `skip_if_empty: true` and `omit_empty_values: true`, so that without a
//!   verified token there is no object at all (without `omit_empty_values`
//!   the value would be `-`, which this filter refuses as not JSON).
//!
//! No client can write filter state, so what is there was written by that
//! filter from jwt_authn's metadata. The module reads the keys in
//! `payload_metadata_keys` order; the first present one is the payload. It
//! is turned back into the bytes the core reads from the wasm build's
//! `metadata` property (`envoy.config.core.v3.Metadata`), so both builds
//! map claims with the same code.

use jwt_scopes_core::config::JWT_AUTHN_NAMESPACE;
use jwt_scopes_core::pb::encode;
use jwt_scopes_core::{Config, HostError};
use serde_json::{Map, Value};

/// The prefix of the filter-state object keys the module reads: the
/// payload stored by jwt_authn under payload metadata key `K` is read from
/// `jwt_scopes.payload.K` (see the module documentation).
pub const FILTER_STATE_KEY_PREFIX: &str = "jwt_scopes.payload.";

/// The filter-state object key holding the payload jwt_authn stored under
/// `payload_key` (a provider's `payload_in_metadata`).
pub fn filter_state_key(payload_key: &str) -> String {
    format!("{FILTER_STATE_KEY_PREFIX}{payload_key}")
}

/// A payload metadata key and the filter-state key it is read from
/// (computed once per configuration, not per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadKey {
    pub payload_key: String,
    pub state_key: String,
}

/// The keys to read, in the configuration's order.
pub fn payload_keys(config: &Config) -> Vec<PayloadKey> {
    config
        .payload_metadata_keys
        .iter()
        .map(|key| PayloadKey {
            payload_key: key.clone(),
            state_key: filter_state_key(key),
        })
        .collect()
}

/// The verified claims as the core expects them, from the filter state
/// `lookup` returns (the bytes under a filter-state key, None when there is
/// no such object): the first of `keys` present wins; None when none is.
pub fn verified_claims<'a>(
    keys: &[PayloadKey],
    mut lookup: impl FnMut(&str) -> Option<&'a [u8]>,
) -> Result<Option<Vec<u8>>, HostError> {
    for key in keys {
        if let Some(json) = lookup(&key.state_key) {
            return claims_from_payload(&key.payload_key, json).map(Some);
        }
    }
    Ok(None)
}

/// Encodes a payload (JSON text) as jwt_authn leaves it in the stream's
/// metadata: namespace `envoy.filters.http.jwt_authn`, the payload under
/// `payload_key`. Anything but a JSON object is an error (the request is
/// refused with 500): jwt_authn always writes an object, so something else
/// means the Envoy configuration does not feed this filter what it expects.
pub fn claims_from_payload(payload_key: &str, json: &[u8]) -> Result<Vec<u8>, HostError> {
    let payload: Value = serde_json::from_slice(json)
        .map_err(|_| HostError::new("the verified payload in the filter state is not JSON"))?;
    if !payload.is_object() {
        return Err(HostError::new(
            "the verified payload in the filter state is not a JSON object",
        ));
    }
    let mut fields = Map::new();
    fields.insert(payload_key.to_owned(), payload);
    Ok(encode::metadata(JWT_AUTHN_NAMESPACE, &Value::Object(fields)))
}

#[cfg(test)]
mod tests {
    use super::*;
    use jwt_scopes_core::{map_claims, Output};
    use serde_json::json;
    use std::collections::HashMap;

    fn config(keys: &[&str]) -> Config {
        Config::from_json(json!({ "payload_metadata_keys": keys }).to_string().as_bytes()).unwrap()
    }

    fn state(entries: &[(&str, &str)]) -> HashMap<String, Vec<u8>> {
        entries
            .iter()
            .map(|(k, v)| (k.to_string(), v.as_bytes().to_vec()))
            .collect()
    }

    fn headers(config: &Config, claims: Option<&[u8]>) -> Vec<(String, String)> {
        let mut out = Output::default();
        map_claims(config, claims, &mut out).unwrap();
        out.headers().map(|(n, v)| (n.to_string(), v.to_string())).collect()
    }

    #[test]
    fn keys_are_prefixed_in_configuration_order() {
        let keys = payload_keys(&config(&["okta", "entra"]));
        assert_eq!(
            keys,
            [
                PayloadKey {
                    payload_key: "okta".into(),
                    state_key: "jwt_scopes.payload.okta".into()
                },
                PayloadKey {
                    payload_key: "entra".into(),
                    state_key: "jwt_scopes.payload.entra".into()
                },
            ]
        );
    }

    #[test]
    fn a_json_object_becomes_the_claims_the_core_reads() {
        let config = config(&["jwt_payload"]);
        let payload =
            r#"{"exp":4102444800,"iss":"https://issuer.test","scope":"read write","scp":["admin"],"sub":"alice"}"#;
        let claims = claims_from_payload("jwt_payload", payload.as_bytes()).unwrap();
        // The same bytes the wasm build gets for that payload.
        assert_eq!(
            claims,
            encode::metadata(
                JWT_AUTHN_NAMESPACE,
                &json!({"jwt_payload": serde_json::from_str::<Value>(payload).unwrap()})
            )
        );
        assert_eq!(
            headers(&config, Some(&claims)),
            [
                ("x-jwt-subject".to_string(), "alice".to_string()),
                ("x-jwt-scope-read".into(), "true".into()),
                ("x-jwt-scope-write".into(), "true".into()),
                ("x-jwt-scope-admin".into(), "true".into()),
            ]
        );
    }

    #[test]
    fn anything_but_a_json_object_is_refused() {
        for text in [
            "\"alice\"",
            "[1,2]",
            "42",
            "null",
            "true",
            "-",
            "",
            "{\"sub\":",
            "alice",
        ] {
            let error = claims_from_payload("jwt_payload", text.as_bytes()).unwrap_err();
            assert!(error.what.starts_with("the verified payload"), "{text:?}: {error:?}");
        }
        let keys = payload_keys(&config(&["jwt_payload"]));
        let state = state(&[("jwt_scopes.payload.jwt_payload", "[\"admin\"]")]);
        assert!(verified_claims(&keys, |k| state.get(k).map(Vec::as_slice)).is_err());
    }

    #[test]
    fn the_first_present_key_wins() {
        let config = config(&["okta", "entra"]);
        let keys = payload_keys(&config);
        let both = state(&[
            ("jwt_scopes.payload.entra", r#"{"sub":"from-entra"}"#),
            ("jwt_scopes.payload.okta", r#"{"sub":"from-okta"}"#),
        ]);
        let claims = verified_claims(&keys, |k| both.get(k).map(Vec::as_slice)).unwrap();
        assert_eq!(
            headers(&config, claims.as_deref()),
            [("x-jwt-subject".to_string(), "from-okta".to_string())]
        );

        // A later key is used when the earlier ones are absent; a bad value
        // under a key that is not reached does not matter.
        let second = state(&[("jwt_scopes.payload.entra", r#"{"sub":"from-entra"}"#)]);
        let claims = verified_claims(&keys, |k| second.get(k).map(Vec::as_slice)).unwrap();
        assert_eq!(
            headers(&config, claims.as_deref()),
            [("x-jwt-subject".to_string(), "from-entra".to_string())]
        );
        let bad_later = state(&[
            ("jwt_scopes.payload.okta", r#"{"sub":"from-okta"}"#),
            ("jwt_scopes.payload.entra", "not json"),
        ]);
        assert!(verified_claims(&keys, |k| bad_later.get(k).map(Vec::as_slice)).is_ok());
    }

    #[test]
    fn no_object_means_no_claims() {
        let keys = payload_keys(&config(&["jwt_payload"]));
        // Only keys under the prefix count: a payload elsewhere is ignored.
        let other = state(&[("jwt_payload", r#"{"sub":"x"}"#), ("jwt.payload", r#"{"sub":"x"}"#)]);
        assert_eq!(verified_claims(&keys, |k| other.get(k).map(Vec::as_slice)), Ok(None));
    }
}
