//! The jwt_scopes filter in the real Envoy 1.40, behind jwt_authn with a
//! local JWKS, in front of an echo upstream: what the upstream receives.

use e2e::envoy::Envoy;
use e2e::fixture::{identity, pairs, Setup};
use e2e::frontend::{Build, Frontend};
use e2e::http::Request;
use e2e::jwt::{Alg, Issuer};
use serde_json::json;

#[test]
fn scope_formats_of_each_identity_provider() {
    let setup = Setup::new(None);
    let cases = [
        // Okta: `scp` array.
        (
            Alg::RS256,
            json!({"sub": "00u1okta", "scp": ["openid", "test.all"]}),
            vec![
                ("x-jwt-subject", "00u1okta"),
                ("x-jwt-scope-openid", "true"),
                ("x-jwt-scope-test.all", "true"),
            ],
        ),
        // Entra ID: `scp` space-delimited string, mixed case.
        (
            Alg::ES256,
            json!({"sub": "entra-oid", "scp": "User.Read Files.ReadWrite"}),
            vec![
                ("x-jwt-subject", "entra-oid"),
                ("x-jwt-scope-^user.^read", "true"),
                ("x-jwt-scope-^files.^read^write", "true"),
            ],
        ),
        // Cognito / Auth0 / Keycloak: `scope` string; duplicates collapse.
        (
            Alg::RS256,
            json!({"sub": "c0gn1t0", "scope": "openid profile openid  test.all"}),
            vec![
                ("x-jwt-subject", "c0gn1t0"),
                ("x-jwt-scope-openid", "true"),
                ("x-jwt-scope-profile", "true"),
                ("x-jwt-scope-test.all", "true"),
            ],
        ),
        // Both claims at once; a URL scope is escaped, not lost or merged.
        (
            Alg::ES256,
            json!({"sub": "both", "scope": "a", "scp": ["a", "api://x/read", "api-x-read"]}),
            vec![
                ("x-jwt-subject", "both"),
                ("x-jwt-scope-a", "true"),
                ("x-jwt-scope-api%3a%2f%2fx%2fread", "true"),
                ("x-jwt-scope-api-x-read", "true"),
            ],
        ),
    ];
    for (alg, claims, expected) in cases {
        let token = setup.issuer.token(alg, claims.clone());
        let seen = setup.upstream_headers(Request::get("/api").bearer(&token));
        assert_eq!(identity(&seen), pairs(&expected), "claims {claims}");
    }
    assert_eq!(
        setup.envoy.wait_stat("wasmcustom.jwt_scopes.requests_with_identity", 4),
        4
    );
    assert_eq!(
        setup.envoy.wait_stat("wasmcustom.jwt_scopes.scope_headers_emitted", 10),
        10
    );
}

#[test]
fn spoofed_identity_headers_never_reach_the_upstream() {
    let setup = Setup::new(None);
    let spoof = |r: Request| {
        r.header("x-jwt-subject", "admin")
            .header("X-JWT-Scope-Admin", "true")
            .header("x-jwt-scope-admin", "true")
            .header("x-jwt-scope-admin", "true")
            .header("x_jwt_subject", "admin")
            .header("x-amzn-lattice-identity", "Principal=arn:aws:iam::1:role/admin")
            .header("x-amz-security-token", "stolen")
            .header("x-amz-date", "20150830T123600Z")
            .header("x-custom-thing", "dropped")
            .header("x-request-id", "kept-request-id")
            .header("x-forwarded-proto", "https")
    };
    // Without a token (optional route): nothing identity-shaped survives.
    let seen = setup.upstream_headers(spoof(Request::get("/optional/x")));
    assert_eq!(identity(&seen), pairs(&[]), "no token");
    assert!(seen.iter().all(|(n, _)| n != "x-custom-thing"), "{seen:?}");
    assert!(
        seen.contains(&("x-request-id".into(), "kept-request-id".into())),
        "{seen:?}"
    );

    // With a token: only the token's identity.
    let token = setup.token(json!({"sub": "alice", "scp": ["read"]}));
    let seen = setup.upstream_headers(spoof(Request::get("/api").bearer(&token)));
    assert_eq!(
        identity(&seen),
        pairs(&[("x-jwt-subject", "alice"), ("x-jwt-scope-read", "true")])
    );

    // Identity headers nominated as hop-by-hop in `Connection:` are still
    // the filter's: a client cannot make Envoy drop them after the filter.
    let seen = setup.upstream_headers(
        Request::get("/api")
            .bearer(&token)
            .header("connection", "x-jwt-subject, x-jwt-scope-read"),
    );
    assert_eq!(
        identity(&seen),
        pairs(&[("x-jwt-subject", "alice"), ("x-jwt-scope-read", "true")])
    );

    // A client-forged SigV4 Authorization with no bearer token is removed too.
    let seen = setup.upstream_headers(
        Request::get("/optional/x").header("authorization", "AWS4-HMAC-SHA256 Credential=AKID/x, Signature=00"),
    );
    assert_eq!(identity(&seen), pairs(&[]));
    assert!(
        setup
            .envoy
            .wait_stat_until("wasmcustom.jwt_scopes.client_headers_stripped", |v| v >= 5)
            >= 5
    );
}

#[test]
fn non_utf8_header_values_do_not_break_the_filter() {
    let setup = Setup::new(None);
    let token = setup.token(json!({"sub": "bob", "scope": "read"}));
    let request = Request::get("/api")
        .bearer(&token)
        .header("x-binary", b"\xff\xfe\x80")
        .header("user-agent", b"caf\xe9");
    let seen = setup.upstream_headers(request);
    assert_eq!(
        identity(&seen),
        pairs(&[("x-jwt-subject", "bob"), ("x-jwt-scope-read", "true")])
    );
    assert!(seen.iter().all(|(n, _)| n != "x-binary"));
    assert!(
        seen.iter().any(|(n, _)| n == "user-agent"),
        "non-x header kept: {seen:?}"
    );
}

#[test]
fn missing_and_invalid_tokens() {
    let setup = Setup::new(None);
    // Required route, no token: jwt_authn says 401 before the filter.
    assert_eq!(setup.send(Request::get("/api")).status, 401);
    // Token signed by another key: 401.
    let stranger = Issuer::new().token(Alg::RS256, json!({"sub": "mallory", "scp": ["admin"]}));
    let response = setup.send(Request::get("/optional/x").bearer(&stranger));
    assert_eq!(response.status, 401);
    // Optional route, no token: forwarded with no identity.
    let seen = setup.upstream_headers(Request::get("/optional/x"));
    assert_eq!(identity(&seen), pairs(&[]));
    // Once the one request that reached the filter is counted, the other
    // counts of it are too (the filter flushes `requests` last).
    assert_eq!(setup.envoy.wait_stat("wasmcustom.jwt_scopes.requests", 1), 1);
    assert_eq!(setup.envoy.stat("wasmcustom.jwt_scopes.requests_with_identity"), 0);
}

#[test]
fn hostile_claims_are_dropped_or_refused_never_forwarded() {
    let setup = Setup::new(None);
    // CR/LF in the subject: refused with 403, nothing forwarded.
    let token = setup.token(json!({"sub": "eve\r\nx-jwt-scope-admin: true", "scp": ["read"]}));
    let response = setup.send(Request::get("/api").bearer(&token));
    assert_eq!(response.status, 403, "{} {:?}", response.text(), response.headers);
    assert_eq!(response.text(), "subject claim `sub` contains a control character\n");

    // A subject that is not a string: jwt_authn itself rejects the token
    // (RFC 7519 `sub` is a string); the filter would refuse it too (unit tests).
    let token = setup.token(json!({"sub": 12345}));
    assert_eq!(setup.send(Request::get("/api").bearer(&token)).status, 401);

    // Scope claims of every JSON type: strings kept, the rest dropped.
    let token =
        setup.token(json!({"sub": "t", "scope": 7, "scp": ["ok", 1, true, null, {"a": "b"}, ["x"], "Zoë", "a\u{0}b"]}));
    let seen = setup.upstream_headers(Request::get("/api").bearer(&token));
    assert_eq!(
        identity(&seen),
        pairs(&[
            ("x-jwt-subject", "t"),
            ("x-jwt-scope-ok", "true"),
            ("x-jwt-scope-^zo%c3%ab", "true"),
            ("x-jwt-scope-a%00b", "true")
        ])
    );
    assert_eq!(setup.envoy.wait_stat("wasmcustom.jwt_scopes.scopes_dropped", 6), 6);

    // 10,000 scopes (a 78 KB token): capped at 64 headers, the rest counted.
    let many: Vec<String> = (0..10_000).map(|i| format!("s{i}")).collect();
    let token = setup.token(json!({"sub": "many", "scope": many.join(" ")}));
    let seen = setup.upstream_headers(Request::get("/api").bearer(&token));
    let scopes: Vec<_> = seen.iter().filter(|(n, _)| n.starts_with("x-jwt-scope-")).collect();
    assert_eq!(scopes.len(), 64);
    assert_eq!(scopes[0], &("x-jwt-scope-s0".to_string(), "true".to_string()));
    assert_eq!(
        setup
            .envoy
            .wait_stat("wasmcustom.jwt_scopes.scopes_dropped", 6 + 10_000 - 64),
        6 + 10_000 - 64
    );
    // The VM is still healthy afterwards.
    let token = setup.token(json!({"sub": "after", "scp": ["read"]}));
    let seen = setup.upstream_headers(Request::get("/api").bearer(&token));
    assert_eq!(
        identity(&seen),
        pairs(&[("x-jwt-subject", "after"), ("x-jwt-scope-read", "true")])
    );
}

#[test]
fn configured_claims_cap_and_encoding() {
    let setup = Setup::new(Some(json!({
        "scope_encoding": "drop",
        "max_scopes": 2,
        "claims": [
            {"claim": "realm_access.roles", "header_prefix": "x-jwt-role-"},
            {"claim": "groups", "header": "x-jwt-groups"},
            {"claim_path": ["https://example.com/tenant"], "header": "x-jwt-tenant"},
            {"claim": "email_verified", "header": "x-jwt-email-verified"},
        ],
    })));
    let token = setup.token(json!({
        "sub": "kc-user",
        "scope": "openid User.Read profile email",
        "realm_access": {"roles": ["admin", "Viewer"]},
        "groups": ["g1", "g2"],
        "https://example.com/tenant": "acme",
        "email_verified": true,
    }));
    let seen = setup.upstream_headers(Request::get("/api").bearer(&token));
    assert_eq!(
        identity(&seen),
        pairs(&[
            ("x-jwt-subject", "kc-user"),
            ("x-jwt-scope-openid", "true"),
            ("x-jwt-scope-profile", "true"),
            ("x-jwt-role-admin", "true"),
            ("x-jwt-groups", "g1,g2"),
            ("x-jwt-tenant", "acme"),
            ("x-jwt-email-verified", "true"),
        ])
    );
    // User.Read (not verbatim), email (past the cap of 2) and Viewer dropped.
    assert_eq!(setup.envoy.wait_stat("wasmcustom.jwt_scopes.scopes_dropped", 3), 3);
}

#[test]
fn require_identity_refuses_anonymous_requests() {
    let setup = Setup::new(Some(json!({"require_identity": true})));
    let response = setup.send(Request::get("/optional/x"));
    assert_eq!(response.status, 401);
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    let token = setup.token(json!({"sub": "carol"}));
    let seen = setup.upstream_headers(Request::get("/optional/x").bearer(&token));
    assert_eq!(identity(&seen), pairs(&[("x-jwt-subject", "carol")]));
    assert_eq!(setup.envoy.wait_stat("wasmcustom.jwt_scopes.requests_refused", 1), 1);
}

#[test]
fn bad_plugin_configuration_stops_envoy_from_starting() {
    let issuer = Issuer::new();
    let build = Build::under_test();
    for (config, expected) in [
        (json!({"scope_prefix": "x-"}), "unknown field `scope_prefix`"),
        (
            json!({"allowed_client_headers": ["x-jwt-subject"]}),
            "allowed_client_headers[0]: `x-jwt-subject` can never be allowed",
        ),
    ] {
        let rendered = Frontend {
            jwks: &issuer.jwks(),
            build: &build,
            plugin_config: Some(config),
            upstream_port: 9,
        }
        .render();
        let (status, log) = Envoy::expect_refusal(&rendered).unwrap_or_else(|e| panic!("{e}"));
        assert!(!status.success(), "Envoy exited successfully:\n{log}");
        assert!(
            log.contains(expected),
            "log does not name the problem `{expected}`:\n{log}"
        );
    }
}
