//! Edge hardening of the generated frontend, in the real Envoy, over
//! HTTP/1.1 and HTTP/2: what a client can steer through the request line
//! and headers, and what the frontend refuses before anything is signed.

use e2e::http::{Request, Response};
use e2e::lattice_stub::{view_header, Stack, Variant};
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

#[test]
fn headers_and_parameters_a_client_must_not_steer_upstream() {
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let both = |request: Request| [stack.send(request.clone()), stack.send_h2(request)];

    // Presigned-style authentication in the query, in any spelling: Lattice
    // could try to verify the client's signature instead of Envoy's.
    for target in [
        "/app2/x?X-Amz-Signature=0f00",
        "/app2/x?a=1&x-amz-credential=AKIA%2F20250101",
        "/app2/x?a=1;X-AMZ-Date=20250101T000000Z",
        "/app2/x?%58-Amz-Algorithm=AWS4-HMAC-SHA256",
        "/app2/x?a&%78%2D%61%6d%7A%2dSecurity-Token=t",
    ] {
        for response in both(Request::get(target).bearer(&token)) {
            assert_eq!(response.status, 400, "{target}: {}", response.text());
            assert_eq!(
                response.text(),
                "query parameters named X-Amz-* are refused: they carry AWS request authentication\n"
            );
        }
        // Refused before authentication too.
        assert_eq!(stack.send(Request::get(target)).status, 400, "{target}");
    }
    assert_eq!(stack.reached_lattice(), 0, "an X-Amz-* query parameter reached Lattice");
    // Look-alikes that are not such a parameter name pass, and are signed.
    for target in [
        "/app2/X-Amz-Signature",
        "/app2/x?next=X-Amz-Signature",
        "/app2/x?xamz=1&a=x-amz-",
        "/app2/x?%2558-Amz-Signature=1",
    ] {
        for response in both(Request::get(target).bearer(&token)) {
            assert_eq!(response.status, 200, "{target}: {}", response.text());
            assert_eq!(response.json()["sigv4"], "ok", "{target}");
        }
    }

    // RFC 9112 section 3.2: more than one Host is a 400, token or not.
    for host in ["app1.lattice.test", "evil.example"] {
        for request in [
            Request::get("/app2/x").header("host", "localhost").header("host", host),
            Request::get("/app2/x")
                .bearer(&token)
                .header("host", "localhost")
                .header("Host", host),
        ] {
            let response = stack.send(request);
            assert_eq!(response.status, 400, "{host}: {}", response.text());
            assert_eq!(response.text(), "more than one Host header\n");
        }
    }

    // RFC 7239 `Forwarded` never reaches Lattice, on either protocol.
    let before = stack.reached_lattice();
    for response in both(
        Request::get("/app2/fwd")
            .bearer(&token)
            .header("forwarded", "for=203.0.113.9;host=app1.lattice.test;proto=https")
            .header("Forwarded", "for=198.51.100.1"),
    ) {
        assert_eq!(response.status, 200, "{}", response.text());
        let view = response.json();
        assert_eq!(view_header(&view, "forwarded"), None, "{view:#}");
        assert_eq!(view["sigv4"], "ok");
    }
    assert_eq!(stack.reached_lattice(), before + 2);
}

/// Envoy 1.40 cannot refuse obs-fold (its HTTP/1.1 parser has the check
/// switched off in code, with no option): it unfolds, removing the CR LF
/// and keeping the whitespace, as RFC 9112 section 5.2 allows. What this
/// pins down is that a continuation line never becomes a header of its
/// own, so a folded line cannot smuggle an identity header or a Host.
#[test]
fn folded_header_lines_are_unfolded_into_their_header_never_split() {
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let response = stack.send(Request::get("/app2/fold").bearer(&token).header(
        "x-amzn-trace-id",
        "Root=1-5759e988\r\n x-jwt-subject: admin\r\n\thost: evil.example",
    ));
    assert_eq!(response.status, 200, "{}", response.text());
    let view = response.json();
    assert_eq!(
        view_header(&view, "x-amzn-trace-id"),
        Some("Root=1-5759e988 x-jwt-subject: admin\thost: evil.example")
    );
    assert_eq!(view_header(&view, "x-jwt-subject"), Some("alice"));
    assert_eq!(view["host"], "app2.lattice.test");
    assert_eq!(view["sigv4"], "ok", "{view:#}");
    let subjects = view["headers"]
        .as_array()
        .unwrap()
        .iter()
        .filter(|h| h[0] == "x-jwt-subject")
        .count();
    assert_eq!(subjects, 1);
}

/// What Lattice receives in `X-Forwarded-For`: one address, the client's
/// as the trusted proxies in front saw it, never what the client wrote.
#[test]
fn x_forwarded_for_carries_only_the_client_address() {
    // Directly exposed (no trusted hop): the peer's address.
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let spoofed = Request::get("/app2/xff")
        .bearer(&token)
        .header("x-forwarded-for", "203.0.113.66, 198.51.100.7");
    for response in [stack.send(spoofed.clone()), stack.send_h2(spoofed.clone())] {
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(view_header(&response.json(), "x-forwarded-for"), Some("127.0.0.1"));
    }
    drop(stack);

    // Behind one load balancer: the address it appended (the last), and
    // the peer's when the header is missing.
    let stack = Stack::start_with(Variant {
        spec: Some("xff_trusted_hops: 1\n".into()),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for (sent, expected) in [
        (Some("203.0.113.66, 198.51.100.7"), "198.51.100.7"),
        (Some("198.51.100.8"), "198.51.100.8"),
        (None, "127.0.0.1"),
    ] {
        let mut request = Request::get("/app2/xff").bearer(&token);
        if let Some(sent) = sent {
            request = request.header("x-forwarded-for", sent);
        }
        for response in [stack.send(request.clone()), stack.send_h2(request.clone())] {
            assert_eq!(response.status, 200, "{}", response.text());
            let view = response.json();
            assert_eq!(view_header(&view, "x-forwarded-for"), Some(expected), "sent {sent:?}");
            assert_eq!(view["sigv4"], "ok");
        }
    }
}
