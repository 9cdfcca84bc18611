//! Edge hardening of the generated frontend, in the real Envoy, over
//! HTTP/1.1 and HTTP/2: what a client can steer through the request line
//! and headers, and what the frontend refuses before anything is signed.

use e2e::http::{Request, Response};
use e2e::lattice_stub::{Stack, Variant};
use serde_json::json;

/// The `www-authenticate` values of a response.
fn challenges(response: &Response) -> Vec<&str> {
    response
        .headers
        .iter()
        .filter(|(n, _)| n == "www-authenticate")
        .map(|(_, v)| v.as_str())
        .collect()
}

#[test]
fn the_challenge_is_fixed_whatever_the_request_target() {
    let stack = Stack::start();
    let good = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let wrong_audience = stack.idp.issuer.token(
        e2e::jwt::Alg::ES256,
        json!({"iss": stack.idp.url, "aud": "another-api", "sub": "alice"}),
    );
    // jwt_authn copies the request URL into `realm="..."`: a `"` in the
    // query closes it and adds parameters OAuth clients act on. HTTP/2
    // clients (hyper) refuse `"` in a query, but a `\\` escapes the closing
    // quote just as well.
    let h1_target = r#"/app2/x?next=",error="insufficient_scope",resource_metadata="https://evil.example/meta"#;
    let h2_target = r"/app2/x?next=\&error=insufficient_scope&resource_metadata=https://evil.example/meta\";
    for (protocol, target) in [("HTTP/1.1", h1_target), ("HTTP/2", h2_target)] {
        let send = |request: Request| {
            if protocol == "HTTP/2" {
                stack.send_h2(request)
            } else {
                stack.send(request)
            }
        };
        for (what, request, status, expected) in [
            ("no token", Request::get(target), 401, "Bearer"),
            (
                "a forged token",
                Request::get(target).bearer("eyJhbGciOiJub25lIn0.e30."),
                401,
                r#"Bearer error="invalid_token""#,
            ),
            (
                "a token for another audience",
                Request::get(target).bearer(&wrong_audience),
                403,
                r#"Bearer error="invalid_token""#,
            ),
        ] {
            let response = send(request);
            assert_eq!(response.status, status, "{protocol}, {what}: {}", response.text());
            assert_eq!(challenges(&response), vec![expected], "{protocol}, {what}");
        }
        // A refusal by the filter itself, token removed, carries no challenge.
        let response =
            send(Request::get(target).bearer(&stack.token(json!({"sub": "bad\u{1}subject", "scp": ["read"]}))));
        assert_eq!(response.status, 403, "{protocol}: {}", response.text());
        assert!(challenges(&response).is_empty(), "{protocol}: {:?}", response.headers);
        // A valid token still gets through.
        let response = send(Request::get("/app2/x?next=ok").bearer(&good));
        assert_eq!(response.status, 200, "{protocol}: {}", response.text());
        assert!(challenges(&response).is_empty());
    }
    assert_eq!(stack.reached_lattice(), 2, "only the two valid requests reach Lattice");
}

/// A request with `method` to `path`.
fn with_method(method: &str, path: &str) -> Request {
    Request {
        method: method.into(),
        path: path.into(),
        headers: Vec::new(),
    }
}

#[test]
fn only_the_spec_s_upper_case_methods_reach_lattice_on_both_protocols() {
    let stack = Stack::start_with(Variant {
        spec: Some("methods: [GET, DELETE]\n".into()),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    // A policy that denies `DELETE` compares the method exactly: `delete`
    // must never reach it. HTTP/1.1's parser already refuses lower case.
    for (method, h1, h2) in [
        ("get", 400, 405),
        ("delete", 400, 405),
        ("Delete", 400, 405),
        ("POST", 405, 405),
        ("TRACE", 405, 405),
        ("PROPFIND", 405, 405),
        ("PURGE", 405, 405),
    ] {
        for (protocol, expected) in [("HTTP/1.1", h1), ("HTTP/2", h2)] {
            let request = with_method(method, "/app2/x").bearer(&token);
            let response = if protocol == "HTTP/2" {
                stack.send_h2(request)
            } else {
                stack.send(request)
            };
            assert_eq!(response.status, expected, "{protocol} {method}: {}", response.text());
            if expected == 405 {
                assert_eq!(response.header("allow"), Some("GET, DELETE"), "{protocol} {method}");
                assert_eq!(response.text(), "method not allowed: only GET, DELETE\n");
            }
        }
    }
    // Refused before authentication: no challenge, and the health check too.
    for request in [with_method("TRACE", "/app2/x"), with_method("PROPFIND", "/health")] {
        for response in [stack.send(request.clone()), stack.send_h2(request.clone())] {
            assert_eq!(response.status, 405, "{} {}", request.method, request.path);
            assert!(challenges(&response).is_empty(), "{:?}", response.headers);
        }
    }
    assert_eq!(stack.reached_lattice(), 0, "a refused method reached Lattice");

    // The allowed methods pass, exactly as sent, and signed.
    for method in ["GET", "DELETE"] {
        for response in [
            stack.send(with_method(method, "/app2/x").bearer(&token)),
            stack.send_h2(with_method(method, "/app2/x").bearer(&token)),
        ] {
            assert_eq!(response.status, 200, "{method}: {}", response.text());
            let view = response.json();
            assert_eq!(view["method"], method);
            assert_eq!(view["sigv4"], "ok", "{view:#}");
        }
    }
    assert_eq!(stack.reached_lattice(), 4);
}
