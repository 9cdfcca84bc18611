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
