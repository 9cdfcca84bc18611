//! Token attacks against the real Envoy (jwt_authn + the filter): none of
//! them may reach the upstream, and nothing may be fetched from a URL the
//! token names.

use e2e::fixture::{identity, pairs, Setup};
use e2e::http::Request;
use e2e::jwt::{b64, Alg, Issuer, AUDIENCE, ISSUER};
use jwt_simple::prelude::*;
use serde_json::json;
use std::net::TcpListener;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{SystemTime, UNIX_EPOCH};

fn now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_secs())
        .unwrap_or(0)
}

/// A listener that counts connections: stands where a token's `jku`/`x5u`
/// points, to prove Envoy never goes there.
struct Tripwire {
    port: u16,
    hits: Arc<AtomicUsize>,
}

impl Tripwire {
    fn start() -> Tripwire {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind tripwire");
        listener.set_nonblocking(true).expect("nonblocking");
        let port = listener.local_addr().expect("addr").port();
        let hits = Arc::new(AtomicUsize::new(0));
        let counter = hits.clone();
        // Polls until the test process ends; it only ever accepts.
        std::thread::spawn(move || loop {
            if listener.accept().is_ok() {
                counter.fetch_add(1, Ordering::SeqCst);
            }
            std::thread::sleep(std::time::Duration::from_millis(20));
        });
        Tripwire { port, hits }
    }
}

#[test]
fn forged_and_invalid_tokens_are_rejected() {
    let setup = Setup::new(None);
    let attacker = Issuer::new();
    let tripwire = Tripwire::start();
    let url = format!("http://127.0.0.1:{}/jwks.json", tripwire.port);
    let good_claims =
        json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory", "scp": ["admin"], "exp": now() + 300}).to_string();
    let claims_b64 = b64(good_claims.as_bytes());

    // RS256 -> HS256 key confusion: HMAC keyed with the public key PEM.
    let confused = HS256Key::from_bytes(setup.issuer.rs256_public_pem().as_bytes())
        .with_key_id("rs-1")
        .authenticate(Claims::with_custom_claims(
            json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "mallory"}),
            Duration::from_mins(5),
        ))
        .expect("HS256");

    let cases: Vec<(&str, String, u16)> = vec![
        (
            "alg none",
            format!("{}.{claims_b64}.", b64(br#"{"alg":"none","typ":"JWT"}"#)),
            401,
        ),
        (
            "alg None",
            format!("{}.{claims_b64}.", b64(br#"{"alg":"None","typ":"JWT"}"#)),
            401,
        ),
        ("RS256 to HS256 key confusion", confused, 401),
        (
            "unknown kid",
            setup
                .issuer
                .raw_token(Alg::RS256, r#"{"alg":"RS256","kid":"nope"}"#, &good_claims),
            401,
        ),
        (
            "signed by another key",
            attacker.raw_token(Alg::RS256, r#"{"alg":"RS256","kid":"rs-1"}"#, &good_claims),
            401,
        ),
        (
            "jku injection",
            attacker.raw_token(
                Alg::RS256,
                &format!(r#"{{"alg":"RS256","kid":"rs-1","jku":"{url}"}}"#),
                &good_claims,
            ),
            401,
        ),
        (
            "x5u injection",
            attacker.raw_token(
                Alg::RS256,
                &format!(r#"{{"alg":"RS256","kid":"rs-1","x5u":"{url}"}}"#),
                &good_claims,
            ),
            401,
        ),
        (
            "embedded jwk",
            attacker.raw_token(
                Alg::RS256,
                &format!(r#"{{"alg":"RS256","jwk":{}}}"#, attacker.rs256_public_jwk()),
                &good_claims,
            ),
            401,
        ),
        (
            "ES256 all-zero signature",
            format!(
                "{}.{claims_b64}.{}",
                b64(br#"{"alg":"ES256","kid":"es-1"}"#),
                b64(&[0u8; 64])
            ),
            401,
        ),
        (
            "expired",
            setup.issuer.raw_token(
                Alg::RS256,
                r#"{"alg":"RS256","kid":"rs-1"}"#,
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "m", "exp": now() - 3600}).to_string(),
            ),
            401,
        ),
        (
            "not yet valid",
            setup.issuer.raw_token(
                Alg::RS256,
                r#"{"alg":"RS256","kid":"rs-1"}"#,
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "m", "exp": now() + 7200, "nbf": now() + 3600})
                    .to_string(),
            ),
            401,
        ),
        (
            "no exp",
            setup.issuer.raw_token(
                Alg::RS256,
                r#"{"alg":"RS256","kid":"rs-1"}"#,
                &json!({"iss": ISSUER, "aud": AUDIENCE, "sub": "m"}).to_string(),
            ),
            401,
        ),
        (
            "wrong issuer",
            setup.issuer.raw_token(
                Alg::RS256,
                r#"{"alg":"RS256","kid":"rs-1"}"#,
                &json!({"iss": "https://evil.test", "aud": AUDIENCE, "sub": "m", "exp": now() + 300}).to_string(),
            ),
            401,
        ),
        (
            "wrong audience",
            setup.issuer.raw_token(
                Alg::RS256,
                r#"{"alg":"RS256","kid":"rs-1"}"#,
                &json!({"iss": ISSUER, "aud": "other-api", "sub": "m", "exp": now() + 300}).to_string(),
            ),
            403,
        ),
        ("bad base64", "eyJhbGciOiJSUzI1NiJ9.!!!.???".to_string(), 401),
        (
            "two segments",
            format!("{}.{claims_b64}", b64(br#"{"alg":"RS256"}"#)),
            401,
        ),
        (
            "four segments",
            format!("{}.{claims_b64}.AAAA.AAAA", b64(br#"{"alg":"RS256"}"#)),
            401,
        ),
        (
            "payload not JSON",
            setup
                .issuer
                .raw_token(Alg::RS256, r#"{"alg":"RS256","kid":"rs-1"}"#, "not json"),
            401,
        ),
    ];
    for (name, token, expected) in &cases {
        let response = setup.send(Request::get("/optional/x").bearer(token));
        assert_eq!(response.status, *expected, "{name}: {}", response.text());
    }
    assert_eq!(setup.echo.requests_served(), 0, "a forged token reached the upstream");
    assert_eq!(
        tripwire.hits.load(Ordering::SeqCst),
        0,
        "Envoy fetched a URL named by a token"
    );
}

#[test]
fn token_in_query_string_is_not_accepted() {
    let setup = Setup::new(None);
    let token = setup.token(json!({"sub": "alice", "scp": ["read"]}));
    let response = setup.send(Request::get(&format!("/api?access_token={token}")));
    assert_eq!(response.status, 401, "{}", response.text());
    // On an optional route the query token is ignored: no identity.
    let seen = setup.upstream_headers(Request::get(&format!("/optional/x?access_token={token}")));
    assert_eq!(identity(&seen), pairs(&[]));
}

#[test]
fn duplicate_claims_are_rejected() {
    let setup = Setup::new(None);
    let payload = format!(
        r#"{{"iss":"{ISSUER}","aud":"{AUDIENCE}","exp":{},"sub":"alice","sub":"admin","scp":["read"],"scp":["admin"]}}"#,
        now() + 300
    );
    let token = setup
        .issuer
        .raw_token(Alg::RS256, r#"{"alg":"RS256","kid":"rs-1"}"#, &payload);
    // jwt_authn's JSON parser refuses duplicate keys, so no second reading
    // of the payload (by the filter or anyone) can disagree with the first.
    let response = setup.send(Request::get("/api").bearer(&token));
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(setup.echo.requests_served(), 0);
}

#[test]
fn huge_token_is_refused_by_envoy() {
    let setup = Setup::new(None);
    let padding = "p".repeat(400_000);
    let token = setup.token(json!({"sub": "big", "pad": padding}));
    let response = setup.send(Request::get("/api").bearer(&token));
    assert_eq!(response.status, 431, "{}", response.text());
    assert_eq!(setup.echo.requests_served(), 0);
}
