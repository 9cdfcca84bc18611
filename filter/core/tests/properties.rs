//! Properties of the claims-to-headers logic over arbitrary tokens.
#![allow(clippy::unwrap_used)]

use jwt_scopes_core::config::{ClaimTarget, JWT_AUTHN_NAMESPACE};
use jwt_scopes_core::names::{is_lowercase_header_name, push_scope_suffix, ScopeEncoding};
use jwt_scopes_core::pb::encode;
use jwt_scopes_core::{map_claims, pairs, pb, Config, Output};
use proptest::prelude::*;
use serde_json::{json, Value};

fn suffix(scope: &[u8], encoding: ScopeEncoding) -> Option<String> {
    let mut out = String::new();
    push_scope_suffix(&mut out, scope, encoding).then_some(out)
}

/// Strings that exercise every class: verbatim bytes, upper case, escapes,
/// control characters, non-ASCII.
fn nasty_string() -> impl Strategy<Value = String> {
    prop_oneof![
        "[a-z0-9._-]{0,12}",
        "[A-Za-z0-9:/%^~ ._-]{0,12}",
        any::<String>().prop_map(|s| s.chars().take(12).collect()),
        prop::sample::select(vec!["", " ", "a b", "\r\n", "x\0y", "\u{85}", "Zoë", "%41", "^a", "A"])
            .prop_map(String::from),
    ]
}

fn json_value() -> impl Strategy<Value = Value> {
    let leaf = prop_oneof![
        Just(Value::Null),
        any::<bool>().prop_map(Value::Bool),
        any::<i64>().prop_map(|n| json!(n)),
        any::<f64>()
            .prop_filter("finite", |f| f.is_finite())
            .prop_map(|f| json!(f)),
        nasty_string().prop_map(Value::String),
    ];
    leaf.prop_recursive(3, 40, 8, |inner| {
        prop_oneof![
            prop::collection::vec(inner.clone(), 0..8).prop_map(Value::Array),
            prop::collection::vec(
                (
                    prop::sample::select(vec!["sub", "scope", "scp", "roles", "a", "b"]),
                    inner
                ),
                0..6
            )
            .prop_map(|fields| Value::Object(fields.into_iter().map(|(k, v)| (k.to_string(), v)).collect())),
        ]
    })
}

fn payload() -> impl Strategy<Value = Value> {
    (
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
        prop::option::of(json_value()),
    )
        .prop_map(|(sub, scope, scp, roles, groups)| {
            let mut map = serde_json::Map::new();
            for (key, value) in [
                ("sub", sub),
                ("scope", scope),
                ("scp", scp),
                ("roles", roles),
                ("groups", groups),
            ] {
                if let Some(value) = value {
                    map.insert(key.into(), value);
                }
            }
            Value::Object(map)
        })
}

fn test_config(max_scopes: usize, encoding: &str) -> Config {
    Config::from_json(
        json!({
            "max_scopes": max_scopes,
            "scope_encoding": encoding,
            "claims": [
                {"claim": "roles", "header_prefix": "x-jwt-role-"},
                {"claim": "groups", "header": "x-jwt-groups"},
            ],
        })
        .to_string()
        .as_bytes(),
    )
    .unwrap()
}

/// True when `name` is one the configuration can produce.
fn is_configured_output(config: &Config, name: &str) -> bool {
    let subject = config.subject.as_ref().is_some_and(|(_, header)| header == name);
    let scope = name.starts_with(&config.scope_header_prefix);
    let claim = config.claims.iter().any(|mapping| match &mapping.target {
        ClaimTarget::Header { name: header, .. } => header == name,
        ClaimTarget::Prefix(prefix) => name.starts_with(prefix.as_str()),
    });
    subject || scope || claim
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(2000))]

    #[test]
    fn scope_names_are_injective(a in prop::collection::vec(any::<u8>(), 0..16), b in prop::collection::vec(any::<u8>(), 0..16)) {
        prop_assume!(a != b);
        if let (Some(x), Some(y)) = (suffix(&a, ScopeEncoding::Escape), suffix(&b, ScopeEncoding::Escape)) {
            prop_assert_ne!(x, y);
        }
    }

    #[test]
    fn scope_names_are_valid_lowercase_header_names(scope in prop::collection::vec(any::<u8>(), 1..32)) {
        let name = suffix(&scope, ScopeEncoding::Escape).unwrap();
        prop_assert!(is_lowercase_header_name(&name), "{name:?}");
    }

    #[test]
    fn verbatim_scopes_map_to_themselves(scope in "[a-z0-9._-]{1,32}") {
        prop_assert_eq!(suffix(scope.as_bytes(), ScopeEncoding::Escape), Some(scope.clone()));
        prop_assert_eq!(suffix(scope.as_bytes(), ScopeEncoding::Drop), Some(scope));
    }

    #[test]
    fn outputs_are_clean_capped_and_configured(payload in payload(), cap in 0usize..6, drop in any::<bool>()) {
        let config = test_config(cap, if drop { "drop" } else { "escape" });
        let metadata = encode::metadata(JWT_AUTHN_NAMESPACE, &json!({"jwt_payload": payload}));
        let mut out = Output::default();
        if let Ok(outcome) = map_claims(&config, Some(&metadata), &mut out) {
            prop_assert!(outcome.identity);
            let mut names = Vec::new();
            for (name, value) in out.headers() {
                prop_assert!(is_lowercase_header_name(name), "bad name {name:?}");
                prop_assert!(is_configured_output(&config, name), "unexpected header {name:?}");
                prop_assert!(!value.is_empty() && !value.chars().any(char::is_control), "bad value {value:?}");
                prop_assert!(!value.starts_with(' ') && !value.ends_with(' '), "untrimmed value {value:?}");
                prop_assert!(!names.contains(&name), "duplicate header {name:?}");
                names.push(name);
            }
            let count = |prefix: &str| names.iter().filter(|n| n.starts_with(prefix)).count();
            prop_assert!(count("x-jwt-scope-") <= cap);
            prop_assert!(count("x-jwt-role-") <= cap);
        }
    }

    #[test]
    fn a_client_id_issuer_forwards_only_access_tokens_of_its_clients(
        payload in payload(),
        client_id in prop::option::of(prop_oneof![
            prop::sample::select(vec!["1example23456789", "2example23456789", "1EXAMPLE23456789", "1example2345678"])
                .prop_map(|s| json!(s)),
            json_value(),
        ]),
        token_use in prop::option::of(prop_oneof![
            prop::sample::select(vec!["access", "id", "Access", "access "]).prop_map(|s| json!(s)),
            json_value(),
        ]),
        aud in prop::option::of(json_value()),
    ) {
        let config = Config::from_json(
            br#"{"payload_metadata_keys": ["cognito"], "client_ids": {"cognito": ["1example23456789", "2example23456789"]}}"#,
        )
        .unwrap();
        let mut payload = payload;
        for (claim, value) in [("client_id", &client_id), ("token_use", &token_use), ("aud", &aud)] {
            if let Some(value) = value {
                payload[claim] = value.clone();
            }
        }
        let metadata = encode::metadata(JWT_AUTHN_NAMESPACE, &json!({"cognito": payload}));
        let mut out = Output::default();
        let result = map_claims(&config, Some(&metadata), &mut out);
        let admitted = aud.is_none()
            && token_use == Some(json!("access"))
            && matches!(client_id.as_ref().and_then(Value::as_str), Some("1example23456789" | "2example23456789"));
        if !admitted {
            let refusal = result.unwrap_err();
            prop_assert_eq!(refusal.status, 403);
            prop_assert_eq!(refusal.challenge, Some(jwt_scopes_core::mapping::CHALLENGE_INVALID_TOKEN));
        } else if let Err(refusal) = result {
            // Admitted by the client check; refused later for what it says.
            prop_assert!(refusal.challenge.is_none(), "{refusal:?}");
        }
    }

    #[test]
    fn decoders_never_panic(bytes in prop::collection::vec(any::<u8>(), 0..256)) {
        let _ = pairs::parse(&bytes);
        if let Ok(Some(ns)) = pb::filter_metadata(&bytes, JWT_AUTHN_NAMESPACE.as_bytes()) {
            let _ = ns.get_path(&["jwt_payload", "scp"]);
        }
        let mut out = Output::default();
        let _ = map_claims(&test_config(4, "escape"), Some(&bytes), &mut out);
    }
}
