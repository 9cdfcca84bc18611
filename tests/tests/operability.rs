//! Operating the generated frontend in the real Envoy: readiness (`/ready`,
//! 503 until the IdP's keys have been served and while requests cannot be
//! signed) apart from liveness (`/health`, 200 while Envoy runs), a
//! graceful drain in which requests in flight complete, the access log
//! (what it shows, and never a token or a signature) and the counters the
//! README lists, as Prometheus scrapes them.

use e2e::envoy::{AwsCredentials, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN};
use e2e::http::{Request, Response};
use e2e::lattice_stub::{SlowLattice, Stack, Variant};
use envoy_gen::args::Overrides;
use serde_json::{json, Value};
use std::sync::atomic::Ordering;
use std::time::{Duration, Instant};

fn get(stack: &Stack, path: &str) -> Response {
    stack.send(Request::get(path))
}

/// Asks `path` until it answers `status` (at most `within`); returns the
/// statuses seen, the last one last.
fn until_status(stack: &Stack, path: &str, status: u16, within: Duration) -> Vec<u16> {
    let deadline = Instant::now() + within;
    let mut seen = Vec::new();
    loop {
        let got = get(stack, path).status;
        seen.push(got);
        if got == status || Instant::now() > deadline {
            return seen;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

/// Asks `/ready` and `/health` one after the other for `during`; returns
/// every pair of statuses.
fn probes(stack: &Stack, during: Duration) -> Vec<(u16, u16)> {
    let deadline = Instant::now() + during;
    let mut seen = Vec::new();
    while Instant::now() < deadline {
        seen.push((get(stack, "/ready").status, get(stack, "/health").status));
    }
    seen
}

fn admin_post(stack: &Stack, path: &str) -> Response {
    Request {
        method: "POST".into(),
        path: path.into(),
        headers: Vec::new(),
    }
    .send(("127.0.0.1", stack.envoy.admin_port))
    .unwrap_or_else(|e| panic!("POST {path}: {e}"))
}

#[test]
fn ready_once_the_jwks_has_been_served_and_through_a_later_idp_outage_alive_throughout() {
    let stack = Stack::start_with(Variant {
        jwks_down: true,
        ..Variant::default()
    });
    // The IdP answers 503: not ready, however long; alive all along.
    let down = probes(&stack, Duration::from_secs(3));
    assert!(down.iter().all(|&p| p == (503, 200)), "{down:?}");
    assert_eq!(stack.envoy.stat("cluster.jwks_jwt.membership_healthy"), 0);

    stack.idp.set_down(false);
    let seen = until_status(&stack, "/ready", 200, Duration::from_secs(10));
    assert_eq!(seen.last(), Some(&200), "never ready once the JWKS was up: {seen:?}");
    let token = stack.token(json!({"sub": "alice", "scope": "read"}));
    let request = Request::get("/app1/x").bearer(&token);
    // jwt_authn refetches every second after a failure: within a second
    // or two of readiness, a token verifies.
    let deadline = Instant::now() + Duration::from_secs(5);
    let mut response = stack.send(request.clone());
    while response.status != 200 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
        response = stack.send(request.clone());
    }
    assert_eq!(response.status, 200, "{}", response.text());

    // An IdP outage later: the keys stay in use, so the frontend stays ready.
    stack.idp.set_down(true);
    let later = probes(&stack, Duration::from_secs(3));
    assert!(later.iter().all(|&p| p == (200, 200)), "{later:?}");
    assert_eq!(stack.send(request).status, 200);
}

#[test]
fn not_ready_while_requests_cannot_be_signed() {
    // No AWS credentials in Envoy's environment; the IdP is up.
    let stack = Stack::start_with(Variant {
        env: Some(Vec::new()),
        ..Variant::default()
    });
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.envoy.stat("cluster.jwks_jwt.membership_healthy") != 1 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    assert_eq!(
        stack.envoy.stat("cluster.jwks_jwt.membership_healthy"),
        1,
        "the JWKS was never served"
    );
    let seen = probes(&stack, Duration::from_secs(2));
    assert!(seen.iter().all(|&p| p == (503, 200)), "{seen:?}");
    let response = get(&stack, "/ready");
    assert!(response.text().contains("could not be signed"), "{}", response.text());
    assert_eq!(stack.reached_lattice(), 0);
    // Each check was refused by the signing guard.
    let checks = seen.len() as u64 + 1;
    assert_eq!(
        stack
            .envoy
            .wait_stat("wasmcustom.sign_guard.unsigned_requests_refused", checks),
        checks
    );
}

#[test]
fn a_graceful_drain_lets_requests_in_flight_complete_then_closes_the_listener() {
    let slow = SlowLattice::start(Duration::from_secs(2));
    let (port, ca) = (slow.port, slow.ca.clone());
    let stack = Stack::start_with(Variant {
        overrides: Some(Box::new(move |o: &mut Overrides| {
            o.lattice.lattice_endpoint = Some(format!("127.0.0.1:{port}"));
            o.lattice.lattice_ca = Some(ca.display().to_string());
        })),
        envoy_args: ["--drain-time-s", "3", "--drain-strategy", "immediate"]
            .map(String::from)
            .to_vec(),
        ..Variant::default()
    });
    let seen = until_status(&stack, "/ready", 200, Duration::from_secs(10));
    assert_eq!(seen.last(), Some(&200), "{seen:?}");
    let token = stack.token(json!({"sub": "alice", "scope": "read"}));
    let frontend = stack.envoy.port("frontend");
    let in_flight = std::thread::spawn(move || Request::get("/app1/long").bearer(&token).send(("127.0.0.1", frontend)));
    let deadline = Instant::now() + Duration::from_secs(5);
    while slow.received.load(Ordering::SeqCst) == 0 && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(
        slow.received.load(Ordering::SeqCst),
        1,
        "the request never reached Lattice"
    );

    // The drain, as the README gives it: fail readiness, then drain.
    assert_eq!(admin_post(&stack, "/healthcheck/fail").status, 200);
    assert_eq!(get(&stack, "/ready").status, 503, "ready while failing health checks");
    assert_eq!(get(&stack, "/health").status, 200, "liveness follows readiness");
    let drained_at = Instant::now();
    assert_eq!(admin_post(&stack, "/drain_listeners?graceful").status, 200);
    // Still accepting during the drain time.
    assert_eq!(get(&stack, "/health").status, 200);

    let response = in_flight
        .join()
        .unwrap_or_else(|_| panic!("the client thread panicked"))
        .unwrap_or_else(|e| panic!("the request in flight failed: {e}"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.text(), "late\n");

    // After the drain time the listener is gone; Envoy still runs (the
    // orchestrator stops it).
    let deadline = Instant::now() + Duration::from_secs(10);
    let mut refused = false;
    while !refused && Instant::now() < deadline {
        refused = std::net::TcpStream::connect(("127.0.0.1", frontend)).is_err();
        std::thread::sleep(Duration::from_millis(100));
    }
    assert!(refused, "the listener still accepts after the drain");
    assert!(
        drained_at.elapsed() >= Duration::from_secs(2),
        "closed before the drain time"
    );
    assert!(e2e::http::get(("127.0.0.1", stack.envoy.admin_port), "/server_info").is_ok_and(|r| r.status == 200));
}

/// The JSON lines of Envoy's log (its access log; other lines are text).
fn access_log(log: &str) -> Vec<Value> {
    log.lines()
        .filter_map(|line| serde_json::from_str::<Value>(line).ok())
        .filter(|line| line.is_object())
        .collect()
}

fn line_for<'a>(lines: &'a [Value], path: &str, status: u16) -> &'a Value {
    lines
        .iter()
        .find(|l| l["path"] == path && l["status"] == status)
        .unwrap_or_else(|| panic!("no access log line for {path} with {status}: {lines:#?}"))
}

mod access_log {
    use super::*;
    use e2e::echo::EchoServer;
    use lattice_sim::config::Config;

    const ACCOUNT: &str = "111122223333";
    const DOMAIN: &str = "lattice.test";
    const REGION: &str = "us-west-2";

    /// app1 admits the frontend; app2 admits nobody.
    fn sim_config(target_port: u16) -> Config {
        let doc = json!({
            "region": REGION,
            "account": ACCOUNT,
            "service_network": {"name": "net", "auth_type": "NONE"},
            "services": [
                {"name": "app1", "host": format!("app1.{DOMAIN}"), "auth_type": "AWS_IAM", "target": format!("http://127.0.0.1:{target_port}"),
                 "policy": {"Statement": [{"Sid": "Frontend", "Effect": "Allow", "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:role/frontend")},
                                           "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}},
                {"name": "app2", "host": format!("app2.{DOMAIN}"), "auth_type": "AWS_IAM", "target": format!("http://127.0.0.1:{target_port}")},
                {"name": "app3", "host": format!("app3.{DOMAIN}"), "auth_type": "NONE", "target": format!("http://127.0.0.1:{target_port}")},
            ],
            "credentials": [
                {"access_key_id": TEST_ACCESS_KEY_ID, "secret_access_key": TEST_SECRET_ACCESS_KEY, "session_token": TEST_SESSION_TOKEN,
                 "principal": format!("arn:aws:sts::{ACCOUNT}:assumed-role/frontend/envoy")},
            ],
        });
        Config::parse(&doc.to_string(), std::path::Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn shows_subject_flags_lattice_error_trace_and_upstream_never_a_token_or_signature() {
        let target = EchoServer::start().unwrap_or_else(|e| panic!("{e}"));
        let sim =
            lattice_sim::front::start(sim_config(target.addr.port()), "127.0.0.1:0").unwrap_or_else(|e| panic!("{e}"));
        let system = e2e::stack::System::start(sim, DOMAIN, REGION, "lattice-demo", &AwsCredentials::test())
            .unwrap_or_else(|e| panic!("{e}"));
        let frontend = ("127.0.0.1", system.envoy.port("frontend"));
        let token = system
            .idp
            .token(json!({"sub": "alice@example.com", "scope": "orders.read"}));
        let send = |request: Request| request.send(frontend).unwrap_or_else(|e| panic!("{e}"));
        let trace = "Root=1-67891233-abcdef012345678912345678";

        // Allowed; the token also in the query, where a client may put it.
        let allowed = send(
            Request::get(&format!("/app1/orders?access_token={token}&page=2"))
                .bearer(&token)
                .header("x-amzn-trace-id", trace),
        );
        assert_eq!(allowed.status, 200, "{}", allowed.text());
        // Refused by Lattice's policy.
        let denied = send(Request::get("/app2/orders").bearer(&token));
        assert_eq!(denied.status, 403, "{}", denied.text());
        // Refused by jwt_authn: a token for another API, and none.
        let foreign = system.idp.issuer.token(
            e2e::jwt::Alg::ES256,
            json!({"iss": system.idp.url, "aud": "another-api", "sub": "mallory"}),
        );
        assert_eq!(send(Request::get("/app1/foreign").bearer(&foreign)).status, 403);
        assert_eq!(send(Request::get("/app1/none")).status, 401);

        // Envoy writes its log file out every 10 s (--file-flush-interval-msec).
        let expected = [
            ("/app1/orders", 200),
            ("/app2/orders", 403),
            ("/app1/foreign", 403),
            ("/app1/none", 401),
        ];
        let deadline = Instant::now() + Duration::from_secs(15);
        let mut lines = access_log(&system.envoy.log());
        while !expected
            .iter()
            .all(|(path, status)| lines.iter().any(|l| l["path"] == *path && l["status"] == *status))
            && Instant::now() < deadline
        {
            std::thread::sleep(Duration::from_millis(100));
            lines = access_log(&system.envoy.log());
        }

        let ok = line_for(&lines, "/app1/orders", 200);
        assert_eq!(ok["method"], "GET");
        assert_eq!(ok["subject"], "alice@example.com");
        assert_eq!(ok["response_flags"], "-");
        assert_eq!(ok["trace_id"], trace);
        assert_eq!(ok["upstream_cluster"], "lattice_app1");
        assert_eq!(ok["upstream_host"], format!("app1.{DOMAIN}"));
        assert!(
            ok["upstream_address"]
                .as_str()
                .is_some_and(|a| a.starts_with("127.0.0.1:")),
            "{ok}"
        );
        assert_eq!(ok["lattice_error"], Value::Null);
        assert!(ok["request_id"].as_str().is_some_and(|id| !id.is_empty()), "{ok}");

        let refused = line_for(&lines, "/app2/orders", 403);
        assert_eq!(refused["lattice_error"], "AccessDeniedException");
        assert_eq!(refused["subject"], "alice@example.com");
        assert_eq!(refused["upstream_cluster"], "lattice_app2");

        let foreign_line = line_for(&lines, "/app1/foreign", 403);
        assert_eq!(foreign_line["subject"], Value::Null, "an unverified subject was logged");
        assert_eq!(foreign_line["upstream_host"], Value::Null);
        let none = line_for(&lines, "/app1/none", 401);
        assert_eq!(none["subject"], Value::Null);

        let log = system.envoy.log();
        for secret in [
            token.as_str(),
            foreign.as_str(),
            "access_token",
            "Bearer",
            "AWS4-HMAC-SHA256",
            "Signature=",
            TEST_SECRET_ACCESS_KEY,
            TEST_SESSION_TOKEN,
            TEST_ACCESS_KEY_ID,
        ] {
            assert!(!log.contains(secret), "the log contains {secret:?}:\n{log}");
        }
        // Every part of a token: its header and payload alone identify it.
        for part in token.split('.') {
            assert!(!log.contains(part), "the log contains part of a token");
        }
    }
}

#[test]
fn the_counters_the_readme_lists_are_scraped_in_prometheus_format() {
    let stack = Stack::start();
    let token = stack.token(json!({"sub": "alice", "scope": "read"}));
    assert_eq!(stack.send(Request::get("/app1/x").bearer(&token)).status, 200);
    assert_eq!(stack.send(Request::get("/app1/x")).status, 401);
    assert_eq!(stack.envoy.wait_stat("wasmcustom.jwt_scopes.requests", 1), 1);
    assert_eq!(
        stack.envoy.wait_stat("cluster.jwks_jwt.membership_healthy", 1),
        1,
        "the JWKS was never served"
    );
    let scrape = e2e::http::get(("127.0.0.1", stack.envoy.admin_port), "/stats/prometheus")
        .unwrap_or_else(|e| panic!("{e}"))
        .text();
    // The filter's counters lose Envoy's `wasmcustom.` namespace and get no
    // `envoy_` prefix; Envoy's own are labelled by connection manager and
    // cluster.
    for line in [
        "jwt_scopes_requests{} 1",
        "jwt_scopes_requests_with_identity{} 1",
        "jwt_scopes_scope_headers_emitted{} 1",
        "jwt_scopes_scopes_dropped{} 0",
        "jwt_scopes_client_headers_stripped{} 1",
        "jwt_scopes_requests_refused{} 0",
        "sign_guard_unsigned_requests_refused{} 0",
        r#"envoy_http_jwt_authn_allowed{envoy_http_conn_manager_prefix="frontend"} 1"#,
        r#"envoy_http_jwt_authn_denied{envoy_http_conn_manager_prefix="frontend"} 1"#,
        r#"envoy_http_jwt_authn_jwks_fetch_success{envoy_http_conn_manager_prefix="frontend"} 1"#,
        r#"envoy_http_jwt_authn_jwks_fetch_failed{envoy_http_conn_manager_prefix="frontend"} 0"#,
        r#"envoy_http_downstream_rq_xx{envoy_response_code_class="2",envoy_http_conn_manager_prefix="frontend"} 1"#,
        r#"envoy_http_downstream_rq_xx{envoy_response_code_class="4",envoy_http_conn_manager_prefix="frontend"} 1"#,
        r#"envoy_cluster_upstream_rq_xx{envoy_response_code_class="2",envoy_cluster_name="lattice_app1"} 1"#,
        r#"envoy_cluster_membership_healthy{envoy_cluster_name="jwks_jwt"} 1"#,
        "envoy_server_live{} 1",
    ] {
        assert!(
            scrape.lines().any(|l| l == line),
            "no `{line}` in the scrape:\n{scrape}"
        );
    }
}
