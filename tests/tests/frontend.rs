//! The frontend that `envoy-gen frontend` renders, in the real Envoy:
//! remote JWKS over verified TLS, the filter, SigV4 signing, and a TLS
//! upstream standing in for Lattice that checks SNI, Host and the signature.

use e2e::envoy::{Envoy, TEST_SESSION_TOKEN};
use e2e::http::Request;
use e2e::idp::TlsIdp;
use e2e::lattice_stub::{lattice_view, view_header as header, Stack, Variant, AUDIENCE, DOMAIN, REGION};
use e2e::stack::{local_overrides, with_issuer};
use e2e::tls::{Received, TestCa, TlsServer};
use serde_json::{json, Value};
use std::sync::Arc;
use std::time::Duration;

#[test]
fn generated_frontend_signs_for_the_right_service_with_identity_headers() {
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "alice@example.com", "scp": ["orders.read", "Admin"]}));

    let response = stack.send(
        Request::get("/app2/orders?id=7")
            .bearer(&token)
            .header("x-jwt-scope-root", "true"),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let view = response.json();
    assert_eq!(view["sigv4"], "ok", "{view:#}");
    assert_eq!(view["sni"], "app2.lattice.test");
    assert_eq!(view["host"], "app2.lattice.test");
    assert_eq!(view["path"], "/app2/orders");
    assert_eq!(header(&view, "x-jwt-subject"), Some("alice@example.com"));
    assert_eq!(header(&view, "x-jwt-scope-orders.read"), Some("true"));
    assert_eq!(header(&view, "x-jwt-scope-^admin"), Some("true"));
    assert_eq!(header(&view, "x-jwt-scope-root"), None, "spoofed scope reached Lattice");
    assert_eq!(header(&view, "x-amz-content-sha256"), Some("UNSIGNED-PAYLOAD"));
    assert_eq!(header(&view, "x-amz-security-token"), Some(TEST_SESSION_TOKEN));
    // Every identity header is covered by the signature.
    let signed: Vec<&str> = view["signed_headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(Value::as_str)
        .collect();
    let identity: Vec<&str> = view["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h[0].as_str())
        .filter(|n| n.starts_with("x-jwt-"))
        .collect();
    assert_eq!(identity.len(), 3, "{view:#}");
    for name in identity
        .iter()
        .chain(&["host", "x-amz-date", "x-amz-content-sha256", "x-amz-security-token"])
    {
        assert!(signed.contains(name), "{name} is not signed: {signed:?}");
    }
    assert!(stack.idp.fetches() >= 1, "JWKS was never fetched over TLS");
}

#[test]
fn routes_match_whole_path_segments_and_health_needs_no_token() {
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "bob", "scope": "read"}));
    for (path, service) in [
        ("/app2", "app2"),
        ("/app2/", "app2"),
        ("/app3/x/y", "app3"),
        ("/app20", "app1"),
        ("/app2x/y", "app1"),
        // Percent-encoded and reserved characters: the signature still verifies.
        ("/app2/a%20b/c:d~e", "app2"),
        ("/app2/q?x=1&y=a%2Fb&empty=", "app2"),
        ("/", "app1"),
        ("/other", "app1"),
    ] {
        let response = stack.send(Request::get(path).bearer(&token));
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let view = response.json();
        assert_eq!(view["sni"], format!("{service}.{DOMAIN}"), "{path}");
        assert_eq!(view["host"], format!("{service}.{DOMAIN}"), "{path}");
        assert_eq!(view["sigv4"], "ok", "{path}: {view:#}");
    }
    let before = stack.seen.lock().unwrap().len();
    let health = stack.send(Request::get("/health"));
    assert_eq!((health.status, health.text().as_str()), (200, "ok\n"));
    let missing = stack.send(Request::get("/app2/orders"));
    assert_eq!(missing.status, 401);
    let query_token = stack.send(Request::get(&format!("/app2?access_token={token}")));
    assert_eq!(query_token.status, 401);
    let underscore = stack.send(Request::get("/app2").bearer(&token).header("x_jwt_subject", "admin"));
    assert_eq!(underscore.status, 400, "headers with underscores are rejected");
    assert_eq!(
        stack.seen.lock().unwrap().len(),
        before,
        "a refused request reached Lattice"
    );
}

#[test]
fn jwks_outage_gives_401_never_a_pass() {
    let stack = Stack::start_with(Variant {
        jwks_down: true,
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "carol", "scp": ["read"]}));
    let response = stack.send(Request::get("/app2").bearer(&token));
    assert_eq!(response.status, 401, "{}", response.text());
    assert!(stack.idp.fetches() >= 1, "the JWKS endpoint was never asked");
    assert!(
        stack.seen.lock().unwrap().is_empty(),
        "a request reached Lattice without verified keys"
    );
}

#[test]
fn without_oauth_requests_are_signed_and_identity_headers_still_stripped() {
    let stack = Stack::start_with(Variant {
        no_oauth: true,
        ..Variant::default()
    });
    let response = stack.send(
        Request::get("/app3/x")
            .header("x-jwt-subject", "admin")
            .header("x-jwt-scope-admin", "true")
            .header("x-amzn-lattice-identity", "Principal=arn:aws:iam::1:role/admin"),
    );
    assert_eq!(response.status, 200, "{}", response.text());
    let view = response.json();
    assert_eq!(view["sigv4"], "ok", "{view:#}");
    assert_eq!(view["sni"], "app3.lattice.test");
    let leaked: Vec<&str> = view["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|h| h[0].as_str())
        .filter(|n| n.starts_with("x-jwt") || n.starts_with("x-amzn-lattice"))
        .collect();
    assert!(leaked.is_empty(), "{leaked:?}");
    assert_eq!(stack.idp.fetches(), 0);
}

#[test]
fn tls_listener_from_a_spec_serves_https() {
    let dir = tempfile::tempdir().unwrap();
    let ca = TestCa::new("listener CA");
    let ca_path = ca.write_pem(dir.path(), "ca.pem");
    let leaf = ca.leaf(&["frontend.example.test"]);
    std::fs::write(dir.path().join("frontend.crt"), &leaf.cert_pem).unwrap();
    std::fs::write(dir.path().join("frontend.key"), &leaf.key_pem).unwrap();
    let idp = TlsIdp::start(&ca, AUDIENCE, false);
    let lattice = TlsServer::start(
        &ca.leaf(&["app1.lattice.test"]),
        Arc::new(|r: &Received| (200, lattice_view(r).to_string())),
    )
    .unwrap();
    let spec = format!(
        "tls:\n  cert: {}\n  key: {}\nservices: [{{name: app1}}]\n",
        dir.path().join("frontend.crt").display(),
        dir.path().join("frontend.key").display()
    );
    let overrides = with_issuer(
        local_overrides(DOMAIN, REGION, lattice.addr.port(), &ca_path),
        &idp.url,
        &idp.jwks_uri(),
        AUDIENCE,
    );
    let config = envoy_gen::render_frontend(Some((std::path::Path::new("spec.yaml"), &spec)), &overrides)
        .unwrap_or_else(|e| panic!("{e}"));
    let envoy = Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"));
    let addr = std::net::SocketAddr::from(([127, 0, 0, 1], envoy.port("frontend")));
    let token = idp.token(json!({"sub": "tls-user", "scp": ["read"]}));
    let response = e2e::tls::send(
        addr,
        "frontend.example.test",
        &ca.pem,
        &Request::get("/app1/x").bearer(&token),
    )
    .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let view = response.json();
    assert_eq!(view["sigv4"], "ok");
    assert_eq!(header(&view, "x-jwt-subject"), Some("tls-user"));
    // Plain HTTP on the TLS port gets nothing.
    assert!(
        Request::get("/health").send(addr).is_err(),
        "plain HTTP was answered on the TLS listener"
    );
}

/// jwt_authn's counters of its token cache (the generated frontend's
/// connection manager is `frontend`).
fn cache_stats(stack: &Stack) -> (u64, u64) {
    (
        stack.envoy.stat("http.frontend.jwt_authn.jwt_cache_hit"),
        stack.envoy.stat("http.frontend.jwt_authn.jwt_cache_miss"),
    )
}

/// A token of the stack's IdP with `claims` and exactly the times given
/// (seconds from now), signed with its key.
fn token_at(stack: &Stack, claims: Value, issued: i64, expires: i64) -> String {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let mut payload = claims;
    payload["iss"] = json!(stack.idp.url);
    payload["aud"] = json!(stack.idp.audience);
    payload["iat"] = json!(now + issued);
    payload["nbf"] = json!(now + issued);
    payload["exp"] = json!(now + expires);
    let header = match stack.idp.issuer.es256_key_id() {
        Some(kid) => json!({"alg": "ES256", "typ": "JWT", "kid": kid}),
        None => json!({"alg": "ES256", "typ": "JWT"}),
    };
    stack
        .idp
        .issuer
        .raw_token(e2e::jwt::Alg::ES256, &header.to_string(), &payload.to_string())
}

/// The generated frontend caches verified tokens (issuers[].token_cache_size,
/// 1000 by default), and a cached token is refused once it has expired:
/// Envoy checks the expiry at every lookup (with its fixed 60 s of clock
/// skew, as for a token it verifies).
#[test]
fn cached_tokens_skip_verification_until_they_expire() {
    let stack = Stack::start();
    assert!(
        stack.config.contains("jwt_cache_config: {jwt_cache_size: 1000}"),
        "the generated frontend has no token cache"
    );
    let token = stack.token(json!({"sub": "dave", "scp": ["read"]}));
    for _ in 0..3 {
        assert_eq!(stack.send(Request::get("/app2").bearer(&token)).status, 200);
    }
    let (hits, misses) = cache_stats(&stack);
    assert_eq!((hits, misses), (2, 1), "one verification, then two cache hits");

    // Expired 50 s ago: inside jwt_authn's 60 s of clock skew, so it is
    // verified, accepted and cached; 11 s later it is past the skew.
    let expiring = token_at(&stack, json!({"sub": "erin", "scp": ["read"]}), -120, -50);
    let started = std::time::Instant::now();
    assert_eq!(stack.send(Request::get("/app2").bearer(&expiring)).status, 200);
    assert_eq!(stack.send(Request::get("/app2").bearer(&expiring)).status, 200);
    assert_eq!(cache_stats(&stack).0, 3, "the expiring token was not cached");
    let reached = stack.reached_lattice();
    std::thread::sleep(Duration::from_secs(12).saturating_sub(started.elapsed()));
    let response = stack.send(Request::get("/app2").bearer(&expiring));
    assert_eq!(
        response.status,
        401,
        "a cached token passed after it expired: {}",
        response.text()
    );
    assert_eq!(stack.reached_lattice(), reached, "the expired token reached Lattice");
    // The token that has not expired is still served from the cache.
    assert_eq!(stack.send(Request::get("/app2").bearer(&token)).status, 200);
}

/// The cache is keyed by the whole token: a token verified once and then
/// presented with another signature or another payload is verified anew,
/// and refused.
#[test]
fn a_cached_token_changed_in_any_part_is_verified_anew() {
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "frank", "scp": ["read"]}));
    let response = stack.send(Request::get("/app2").bearer(&token));
    assert_eq!(response.status, 200);
    assert_eq!(header(&response.json(), "x-jwt-subject"), Some("frank"));
    let parts: Vec<&str> = token.split('.').collect();

    // Another signature: one character in the middle of it changed.
    let mut signature: Vec<char> = parts[2].chars().collect();
    let middle = signature.len() / 2;
    signature[middle] = if signature[middle] == 'A' { 'B' } else { 'A' };
    let resigned = format!("{}.{}.{}", parts[0], parts[1], signature.iter().collect::<String>());
    // Another payload under the original signature: more scopes, another subject.
    let mut payload = e2e::jwt::payload_of(&token);
    payload["sub"] = json!("admin");
    payload["scp"] = json!(["read", "admin"]);
    let forged = format!(
        "{}.{}.{}",
        parts[0],
        e2e::jwt::b64(payload.to_string().as_bytes()),
        parts[2]
    );

    let reached = stack.reached_lattice();
    for (what, bad) in [("signature", &resigned), ("payload", &forged)] {
        let response = stack.send(Request::get("/app2").bearer(bad));
        assert_eq!(
            response.status,
            401,
            "a token with another {what} passed: {}",
            response.text()
        );
    }
    assert_eq!(stack.reached_lattice(), reached, "a changed token reached Lattice");
    let (hits, misses) = cache_stats(&stack);
    assert_eq!((hits, misses), (0, 3), "a changed token was answered from the cache");
    assert_eq!(stack.send(Request::get("/app2").bearer(&token)).status, 200);
    assert_eq!(cache_stats(&stack).0, 1);
}
