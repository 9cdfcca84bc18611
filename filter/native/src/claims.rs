//! Where the native build finds the verified claims.
//!
//! The dynamic-modules ABI of Envoy 1.40 reads dynamic metadata one level
//! deep only (`namespace -> key -> scalar or list of scalars`): jwt_authn's
//! payload, a Struct under `envoy.filters.http.jwt_authn` / `<payload key>`,
//! is out of reach. What the ABI can read is the list of keys in that
//! namespace, and request headers. So every jwt_authn provider also gets
//! `forward_payload_header: x-jwt-payload-<payload key>`
//! ([`payload_header_name`]): once it has verified a token, jwt_authn
//! writes its metadata under the provider's key and appends that header
//! (the payload's base64url, the token's own middle segment), both in the
//! same step (`handleGoodJwt`). Only the key's presence is read, so what it
//! holds does not matter: `payload_in_metadata` (the payload) and
//! `header_in_metadata` (the token's header, which envoy-gen renders for
//! this build: a few fields to copy per request instead of every claim) are
//! written in that same step, only for a verified token, and prove the same.
//!
//! Why the header cannot be spoofed (each point alone suffices for the
//! claims; they were checked in Envoy 1.40, tests/tests/native_module.rs):
//! - it is read only when jwt_authn's metadata holds that provider's key,
//!   which no client can write; a request without a verified token gets no claims,
//!   whatever headers it carries (on a route where jwt_authn checks nothing,
//!   a client's copy reaches this filter untouched, and proves nothing);
//! - on the routes where it checks tokens, jwt_authn removes a client's copy
//!   of every `forward_payload_header` before it verifies (`sanitizeHeaders`)
//!   and then appends its own;
//! - the frontend removes every client `x-jwt-*` header before any filter
//!   runs (the connection manager's early header mutation);
//! - should a client copy still sit beside jwt_authn's (`addCopy`), the
//!   header has two values, and the request is refused with 500.
//!
//! The header never leaves the filter: it is not shown to the stripping
//! step (so it is not counted as a client header) and is removed after the
//! request is handled. The payload is mapped from its JSON by the same
//! claim mapping the wasm build runs on the metadata
//! ([`jwt_scopes_core::map_payload_json`], held to the same output by tests
//! and the fuzzer).

use base64::engine::general_purpose::{GeneralPurpose, GeneralPurposeConfig};
use base64::engine::DecodePaddingMode;
use base64::{alphabet, Engine};
use jwt_scopes_core::config::{payload_headers, PAYLOAD_HEADER_PREFIX};
use jwt_scopes_core::{map_payload_json, Config, HostError, Outcome, Output, Refusal, VerifiedClaims};

/// base64url as jwt_authn forwards it: unpadded by default, padded with
/// `pad_forward_payload_header`; both are accepted.
const BASE64URL: GeneralPurpose = GeneralPurpose::new(
    &alphabet::URL_SAFE,
    GeneralPurposeConfig::new().with_decode_padding_mode(DecodePaddingMode::Indifferent),
);

/// A payload metadata key and the header its payload arrives in (computed
/// once per configuration, not per request).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PayloadKey {
    pub payload_key: String,
    pub header: String,
}

/// The keys to read, in the configuration's order, with their headers
/// ([`payload_headers`] says which configurations are refused).
pub fn payload_keys(config: &Config) -> Result<Vec<PayloadKey>, String> {
    let headers = payload_headers(config)?;
    Ok(config
        .payload_metadata_keys
        .iter()
        .zip(headers)
        .map(|(key, header)| PayloadKey {
            payload_key: key.clone(),
            header,
        })
        .collect())
}

/// True when `name` is one of the payload headers.
pub fn is_payload_header(keys: &[PayloadKey], name: &[u8]) -> bool {
    name.len() > PAYLOAD_HEADER_PREFIX.len() && keys.iter().any(|k| k.header.as_bytes().eq_ignore_ascii_case(name))
}

/// A verified payload's JSON, and which payload key it was verified under.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Payload {
    pub key: usize,
    pub json: Vec<u8>,
}

impl VerifiedClaims for Payload {
    fn map(&self, config: &Config, out: &mut Output) -> Result<Outcome, Refusal> {
        map_payload_json(config, self.key, &self.json, out)
    }
}

/// The verified payload: the first of `keys` that jwt_authn's metadata
/// holds (`verified` lists the keys in its namespace), read from its
/// header. `header` returns the header's only value, None when absent, an
/// error when it has several. None when no key is verified.
pub fn verified_claims<'a>(
    keys: &[PayloadKey],
    verified: &[&[u8]],
    mut header: impl FnMut(&str) -> Result<Option<&'a [u8]>, HostError>,
) -> Result<Option<Payload>, HostError> {
    for (index, key) in keys.iter().enumerate() {
        if !verified.contains(&key.payload_key.as_bytes()) {
            continue;
        }
        let Some(encoded) = header(&key.header)? else {
            return Err(HostError::new(
                "jwt_authn verified a token but forwarded no payload (its provider needs forward_payload_header)",
            ));
        };
        let json = BASE64URL
            .decode(encoded)
            .map_err(|_| HostError::new("the forwarded payload is not base64url"))?;
        return Ok(Some(Payload { key: index, json }));
    }
    Ok(None)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn config(value: serde_json::Value) -> Config {
        Config::from_json(value.to_string().as_bytes()).unwrap()
    }

    fn encoded(payload: &serde_json::Value) -> String {
        base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(payload.to_string())
    }

    #[test]
    fn keys_name_their_headers_in_configuration_order() {
        let keys = payload_keys(&config(json!({ "payload_metadata_keys": ["okta", "Entra_1"] }))).unwrap();
        assert_eq!(
            keys,
            [
                PayloadKey {
                    payload_key: "okta".into(),
                    header: "x-jwt-payload-okta".into()
                },
                PayloadKey {
                    payload_key: "Entra_1".into(),
                    header: "x-jwt-payload-entra_1".into()
                },
            ]
        );
        assert!(is_payload_header(&keys, b"X-JWT-Payload-Okta"));
        assert!(!is_payload_header(&keys, b"x-jwt-payload-"));
        assert!(!is_payload_header(&keys, b"x-jwt-payload-other"));
    }

    #[test]
    fn keys_that_cannot_be_headers_or_collide_are_refused() {
        for (keys, what) in [
            (json!(["a b"]), "cannot be part of a header name"),
            (json!(["ok", "é"]), "cannot be part of a header name"),
            (json!(["okta", "OKTA"]), "both name header `x-jwt-payload-okta`"),
        ] {
            let error = payload_keys(&config(json!({ "payload_metadata_keys": keys }))).unwrap_err();
            assert!(error.contains(what), "{error}");
        }
        let error = payload_keys(&config(json!({"scope_header_prefix": "x-jwt-payload-"}))).unwrap_err();
        assert!(error.contains("a scope header"), "{error}");
        let error = payload_keys(&config(json!({"subject_header": "x-jwt-payload-jwt_payload"}))).unwrap_err();
        assert!(error.contains("the subject header"), "{error}");
    }

    #[test]
    fn only_a_key_in_jwt_authns_metadata_is_read() {
        let keys = payload_keys(&config(json!({ "payload_metadata_keys": ["okta", "entra"] }))).unwrap();
        let okta = encoded(&json!({"sub": "o"}));
        let entra = encoded(&json!({"sub": "e"}));
        let headers = |name: &str| -> Result<Option<&[u8]>, HostError> {
            Ok(match name {
                "x-jwt-payload-okta" => Some(okta.as_bytes()),
                "x-jwt-payload-entra" => Some(entra.as_bytes()),
                _ => None,
            })
        };
        // Headers alone prove nothing: without the metadata key, no claims.
        assert_eq!(verified_claims(&keys, &[], headers), Ok(None));
        assert_eq!(verified_claims(&keys, &[b"other"], headers), Ok(None));
        // The first configured key jwt_authn verified wins.
        let payload = verified_claims(&keys, &[b"entra"], headers).unwrap().unwrap();
        assert_eq!((payload.key, payload.json), (1, br#"{"sub":"e"}"#.to_vec()));
        let payload = verified_claims(&keys, &[b"entra", b"okta"], headers).unwrap().unwrap();
        assert_eq!(payload.key, 0);
    }

    #[test]
    fn a_verified_key_without_its_one_header_fails_closed() {
        let keys = payload_keys(&config(json!({}))).unwrap();
        let absent = verified_claims(&keys, &[b"jwt_payload"], |_| Ok(None)).unwrap_err();
        assert!(absent.what.contains("forward_payload_header"), "{absent:?}");
        let several = verified_claims(&keys, &[b"jwt_payload"], |_| {
            Err(HostError::new("the forwarded payload header has several values"))
        });
        assert!(several.is_err());
        for bad in ["not base64!", "a", "e30=x"] {
            let error = verified_claims(&keys, &[b"jwt_payload"], |_| Ok(Some(bad.as_bytes()))).unwrap_err();
            assert_eq!(error.what, "the forwarded payload is not base64url", "{bad}");
        }
    }

    #[test]
    fn padded_and_unpadded_base64url_are_read() {
        let keys = payload_keys(&config(json!({}))).unwrap();
        // `{"a":"??>"}` has `-`/`_` in base64url and needs padding.
        let json = br#"{"a":"??>"}"#;
        let unpadded = base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json);
        let padded = base64::engine::general_purpose::URL_SAFE.encode(json);
        assert_ne!(unpadded, padded);
        assert!(unpadded.contains(['-', '_']), "{unpadded}");
        for form in [unpadded, padded] {
            let payload = verified_claims(&keys, &[b"jwt_payload"], |_| Ok(Some(form.as_bytes())))
                .unwrap()
                .unwrap();
            assert_eq!(payload.json, json);
        }
    }
}
