//! The frontend's CORS policy (spec `cors`), in the real Envoy over
//! HTTP/1.1 and HTTP/2: preflight requests are answered by the frontend
//! without a token and never reach Lattice, for allowed and other origins
//! alike; every other request, OPTIONS included, still needs a token; the
//! answers to allowed origins carry the CORS headers, 401s included.

use e2e::http::{Request, Response};
use e2e::lattice_stub::{Stack, Variant};
use serde_json::json;

const APP: &str = "https://app.example.com";

const SPEC: &str = "methods: [GET, POST, OPTIONS]
cors:
  allow_origins: [https://app.example.com, 'http://localhost:3000']
  allow_methods: [GET, POST]
  expose_headers: [x-request-id]
  max_age: 600
";

fn cors_stack() -> Stack {
    Stack::start_with(Variant {
        spec: Some(SPEC.into()),
        ..Variant::default()
    })
}

fn preflight(origin: &str, method: &str) -> Request {
    Request {
        method: "OPTIONS".into(),
        path: "/app2/orders".into(),
        headers: Vec::new(),
    }
    .header("origin", origin)
    .header("access-control-request-method", method)
    .header("access-control-request-headers", "authorization, content-type")
}

fn options() -> Request {
    Request {
        method: "OPTIONS".into(),
        path: "/app2/orders".into(),
        headers: Vec::new(),
    }
}

fn both(stack: &Stack, request: Request) -> [(&'static str, Response); 2] {
    [
        ("HTTP/1.1", stack.send(request.clone())),
        ("HTTP/2", stack.send_h2(request)),
    ]
}

#[test]
fn preflights_are_answered_without_a_token_and_never_forwarded() {
    let stack = cors_stack();
    for origin in [APP, "http://localhost:3000"] {
        for (protocol, response) in both(&stack, preflight(origin, "POST")) {
            assert_eq!(response.status, 200, "{protocol} {origin}: {}", response.text());
            assert_eq!(
                response.header("access-control-allow-origin"),
                Some(origin),
                "{protocol}"
            );
            assert_eq!(response.header("access-control-allow-methods"), Some("GET, POST"));
            assert_eq!(
                response.header("access-control-allow-headers"),
                Some("authorization, content-type")
            );
            assert_eq!(response.header("access-control-max-age"), Some("600"));
            assert_eq!(response.header("access-control-allow-credentials"), None);
            assert_eq!(response.header("www-authenticate"), None, "{protocol}");
        }
    }
    // A method the policy does not allow: the answer lists the allowed ones,
    // and the browser stops there.
    let response = stack.send(preflight(APP, "DELETE"));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-methods"), Some("GET, POST"));
    // Origins that are not listed, however close: answered, without
    // Access-Control-Allow-Origin, so the browser refuses.
    for origin in [
        "https://evil.example.com",
        "https://app.example.com.evil.example",
        "http://app.example.com",
        "https://app.example.com:8443",
        "HTTPS://APP.EXAMPLE.COM",
        "null",
    ] {
        for (protocol, response) in both(&stack, preflight(origin, "POST")) {
            assert_eq!(response.status, 200, "{protocol} {origin}: {}", response.text());
            assert_eq!(
                response.header("access-control-allow-origin"),
                None,
                "{protocol} {origin}"
            );
        }
    }
    assert_eq!(stack.reached_lattice(), 0, "a preflight reached Lattice");
    assert_eq!(stack.envoy.stat("http.frontend.cors.origin_valid"), 5);
    assert_eq!(stack.envoy.stat("http.frontend.cors.origin_invalid"), 12);
}

#[test]
fn every_other_request_still_needs_a_token() {
    let stack = cors_stack();
    let token = stack.token(json!({"sub": "alice", "scope": "read"}));
    for (what, request) in [
        (
            "OPTIONS without Access-Control-Request-Method",
            options().header("origin", APP),
        ),
        (
            "OPTIONS with an empty Access-Control-Request-Method",
            options()
                .header("origin", APP)
                .header("access-control-request-method", ""),
        ),
        (
            "OPTIONS without Origin",
            options().header("access-control-request-method", "POST"),
        ),
        (
            "GET from an allowed origin",
            Request::get("/app2/orders").header("origin", APP),
        ),
    ] {
        for (protocol, response) in both(&stack, request) {
            assert_eq!(response.status, 401, "{what}, {protocol}: {}", response.text());
            assert_eq!(
                response.header("www-authenticate"),
                Some("Bearer"),
                "{what}, {protocol}"
            );
        }
    }
    // The 401 to an allowed origin carries its CORS headers: the app can
    // read it and sign in again.
    let response = stack.send(Request::get("/app2/orders").header("origin", APP));
    assert_eq!(response.header("access-control-allow-origin"), Some(APP));
    assert_eq!(stack.reached_lattice(), 0);

    // With a token: forwarded and signed; allowed origins get their headers.
    let response = stack.send(Request::get("/app2/orders").bearer(&token).header("origin", APP));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["sigv4"], "ok");
    assert_eq!(response.header("access-control-allow-origin"), Some(APP));
    assert_eq!(response.header("access-control-expose-headers"), Some("x-request-id"));
    assert!(
        response
            .headers
            .iter()
            .any(|(n, v)| n == "vary" && v.to_ascii_lowercase().contains("origin")),
        "{:?}",
        response.headers
    );
    let response = stack.send(
        Request::get("/app2/orders")
            .bearer(&token)
            .header("origin", "https://evil.example.com"),
    );
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), None);
    // An OPTIONS that is not a preflight is a request like any other.
    let response = stack.send(options().bearer(&token).header("origin", APP));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["method"], "OPTIONS");
    // Methods outside the spec's are refused before anything else.
    let response = stack.send(
        Request {
            method: "DELETE".into(),
            path: "/app2/orders".into(),
            headers: Vec::new(),
        }
        .bearer(&token)
        .header("origin", APP),
    );
    assert_eq!(response.status, 405, "{}", response.text());
    assert_eq!(stack.reached_lattice(), 3);
}

#[test]
fn without_a_cors_block_no_request_gets_cors_headers_and_preflights_need_a_token() {
    let stack = Stack::start();
    let response = stack.send(preflight(APP, "POST"));
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.header("access-control-allow-origin"), None);
    let token = stack.token(json!({"sub": "alice"}));
    let response = stack.send(Request::get("/app2/orders").bearer(&token).header("origin", APP));
    assert_eq!(response.status, 200);
    assert_eq!(response.header("access-control-allow-origin"), None);
}
