//! Amazon Cognito access tokens, in the real Envoy: they carry the app
//! client in `client_id` and no `aud`, so the issuer is rendered with
//! `client_ids` instead of `audiences`. jwt_authn verifies the signature,
//! issuer and expiry; jwt_scopes accepts the token only with an allowed
//! `client_id`, `token_use: access` and no `aud`, and refuses anything else
//! with 403 before any header is added or anything reaches Lattice.

use e2e::http::{Request, Response};
use e2e::jwt::Alg;
use e2e::lattice_stub::{view_header, Stack, Variant};
use envoy_gen::args::Overrides;
use serde_json::{json, Value};
use std::time::{SystemTime, UNIX_EPOCH};

const POOL: &str = "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_aaaaaaaaa";
const CLIENT: &str = "1example23456789abcdefghij";
const OTHER_CLIENT: &str = "2example23456789abcdefghij";
const SUB: &str = "aaaaaaaa-bbbb-cccc-dddd-eeeeeeeeeeee";

/// The frontend with the test IdP's keys under Cognito's issuer name,
/// accepting access tokens of `CLIENT` and `OTHER_CLIENT` (`--client-id`,
/// no `--audience`).
fn cognito_stack() -> Stack {
    Stack::start_with(Variant {
        overrides: Some(Box::new(|o: &mut Overrides| {
            o.frontend.issuer = Some(POOL.into());
            o.frontend.audiences.clear();
            o.frontend.client_ids = vec![CLIENT.into(), OTHER_CLIENT.into()];
        })),
        ..Variant::default()
    })
}

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or_else(|e| panic!("{e}"))
}

/// An access token shaped like Cognito's (claims, order and types as
/// Amazon Cognito documents them), for `client_id`.
fn access_token(client_id: &str) -> Value {
    let now = now();
    json!({
        "sub": SUB,
        "iss": POOL,
        "client_id": client_id,
        "origin_jti": "bbbbbbbb-cccc-dddd-eeee-ffffffffffff",
        "event_id": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa",
        "token_use": "access",
        "scope": "orders/read openid",
        "auth_time": now - 10,
        "exp": now + 300,
        "iat": now - 10,
        "jti": "dddddddd-eeee-ffff-aaaa-bbbbbbbbbbbb",
        "username": "alice",
    })
}

/// An ID token shaped like Cognito's: the client in `aud`, `token_use: id`.
fn id_token(client_id: &str) -> Value {
    let now = now();
    json!({
        "sub": SUB,
        "email_verified": true,
        "iss": POOL,
        "cognito:username": "alice",
        "origin_jti": "bbbbbbbb-cccc-dddd-eeee-ffffffffffff",
        "aud": client_id,
        "event_id": "cccccccc-dddd-eeee-ffff-aaaaaaaaaaaa",
        "token_use": "id",
        "auth_time": now - 10,
        "exp": now + 300,
        "iat": now - 10,
        "jti": "eeeeeeee-ffff-aaaa-bbbb-cccccccccccc",
        "email": "alice@example.com",
    })
}

/// `payload` signed as Cognito signs (RS256) or with the IdP's ES256 key,
/// exactly as given, with the key's `kid`.
fn sign(stack: &Stack, alg: Alg, payload: &Value) -> String {
    let header = match alg {
        Alg::RS256 => r#"{"kid":"rs-1","alg":"RS256"}"#,
        Alg::ES256 => r#"{"kid":"es-1","alg":"ES256"}"#,
    };
    stack.idp.issuer.raw_token(alg, header, &payload.to_string())
}

fn get(stack: &Stack, token: &str) -> Response {
    stack.send(
        Request::get("/app2/orders")
            .bearer(token)
            .header("x-jwt-scope-admin", "true")
            .header("x-jwt-subject", "root"),
    )
}

#[test]
fn an_access_token_of_an_allowed_client_reaches_lattice_with_its_identity() {
    let stack = cognito_stack();
    for (alg, client) in [(Alg::RS256, CLIENT), (Alg::ES256, OTHER_CLIENT)] {
        let token = sign(&stack, alg, &access_token(client));
        for response in [
            get(&stack, &token),
            stack.send_h2(Request::get("/app2/orders").bearer(&token)),
        ] {
            assert_eq!(response.status, 200, "{alg:?} {client}: {}", response.text());
            let view = response.json();
            assert_eq!(view["sigv4"], "ok", "{view:#}");
            assert_eq!(view_header(&view, "x-jwt-subject"), Some(SUB));
            assert_eq!(view_header(&view, "x-jwt-scope-orders%2fread"), Some("true"));
            assert_eq!(view_header(&view, "x-jwt-scope-openid"), Some("true"));
            assert_eq!(view_header(&view, "x-jwt-scope-admin"), None, "{view:#}");
        }
    }
    assert_eq!(stack.reached_lattice(), 4);
}

#[test]
fn tokens_not_issued_as_access_tokens_to_an_allowed_client_are_refused_and_go_nowhere() {
    let stack = cognito_stack();
    let with = |change: &dyn Fn(&mut Value)| {
        let mut payload = access_token(CLIENT);
        change(&mut payload);
        payload
    };
    let cases: Vec<(&str, Value, &str)> = vec![
        (
            "another client",
            access_token("3example23456789abcdefghij"),
            "the token was issued to a client this API does not accept (`client_id`)",
        ),
        (
            "an allowed client in another case",
            access_token(&CLIENT.to_ascii_uppercase()),
            "the token was issued to a client this API does not accept (`client_id`)",
        ),
        (
            "no client_id",
            with(&|p| {
                p.as_object_mut().map(|o| o.remove("client_id"));
            }),
            "the token has no `client_id` string",
        ),
        (
            "client_id as a list",
            with(&|p| p["client_id"] = json!([CLIENT])),
            "the token has no `client_id` string",
        ),
        (
            "aud instead of client_id",
            with(&|p| {
                p.as_object_mut().map(|o| o.remove("client_id"));
                p["aud"] = json!(CLIENT);
            }),
            "the token has an `aud` claim: this issuer's tokens are accepted by `client_id`, which its access tokens carry instead",
        ),
        (
            "an allowed client_id and an aud",
            with(&|p| p["aud"] = json!("another-api")),
            "the token has an `aud` claim: this issuer's tokens are accepted by `client_id`, which its access tokens carry instead",
        ),
        (
            "an ID token of an allowed client",
            id_token(CLIENT),
            "the token has an `aud` claim: this issuer's tokens are accepted by `client_id`, which its access tokens carry instead",
        ),
        (
            "token_use id with an allowed client_id",
            with(&|p| p["token_use"] = json!("id")),
            "the token is not an access token (`token_use` is not `access`)",
        ),
        (
            "no token_use",
            with(&|p| {
                p.as_object_mut().map(|o| o.remove("token_use"));
            }),
            "the token is not an access token (`token_use` is not `access`)",
        ),
    ];
    for (i, (what, payload, reason)) in cases.iter().enumerate() {
        for alg in [Alg::RS256, Alg::ES256] {
            let token = sign(&stack, alg, payload);
            let response = get(&stack, &token);
            assert_eq!(response.status, 403, "{what} ({alg:?}): {}", response.text());
            assert_eq!(response.text(), format!("{reason}\n"), "{what} ({alg:?})");
            // As jwt_authn answers a token for another audience.
            assert_eq!(
                response.header("www-authenticate"),
                Some(r#"Bearer error="invalid_token""#),
                "{what} ({alg:?})"
            );
        }
        let h2 = stack.send_h2(Request::get("/app2/orders").bearer(&sign(&stack, Alg::RS256, payload)));
        assert_eq!(h2.status, 403, "{what} over HTTP/2: {}", h2.text());
        assert_eq!(stack.reached_lattice(), 0, "{what}: a refused token reached Lattice");
        assert_eq!(
            stack
                .envoy
                .wait_stat("wasmcustom.jwt_scopes.requests_refused", 3 * (i as u64 + 1)),
            3 * (i as u64 + 1)
        );
    }
    // The same pool's signature, issuer and expiry are still jwt_authn's.
    let expired = with(&|p| p["exp"] = json!(now() - 600));
    assert_eq!(get(&stack, &sign(&stack, Alg::RS256, &expired)).status, 401);
    let other_pool = with(&|p| p["iss"] = json!("https://cognito-idp.us-west-2.amazonaws.com/us-west-2_bbbbbbbbb"));
    assert_eq!(get(&stack, &sign(&stack, Alg::RS256, &other_pool)).status, 401);
    assert_eq!(stack.reached_lattice(), 0);
}
