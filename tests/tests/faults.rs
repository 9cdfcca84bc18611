//! Faults on the real stack, with the generated frontend (or a
//! configuration derived from it): a filter that panics, a plugin
//! configuration Envoy must refuse, the IdP's JWKS endpoint down at start
//! and later, and Lattice down or slow. Every one fails closed, and none
//! makes Envoy retry in a loop.

use bytes::Bytes;
use e2e::envoy::{panic_filter_wasm, Envoy};
use e2e::http::{Request, Response};
use e2e::jwt::{Alg, Issuer};
use e2e::lattice_stub::{http_filters, view_header, SlowLattice, Stack, StackParts, Variant, AUDIENCE};
use e2e::tls::TestCa;
use envoy_gen::args::Overrides;
use http_body_util::Full;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// Sends `request` until `done` says the response is the one awaited (at
/// most `within`); returns every response, in order.
fn until(stack: &Stack, request: &Request, within: Duration, done: impl Fn(&Response) -> bool) -> Vec<Response> {
    let deadline = Instant::now() + within;
    let mut responses = Vec::new();
    loop {
        let response = stack.send(request.clone());
        let finished = done(&response);
        responses.push(response);
        if finished || Instant::now() > deadline {
            return responses;
        }
        std::thread::sleep(Duration::from_millis(100));
    }
}

fn statuses(responses: &[Response]) -> Vec<u16> {
    responses.iter().map(|r| r.status).collect()
}

/// The generated frontend with the test-only panicking module inserted
/// right before jwt_scopes, configured exactly like it (V8, FAIL_RELOAD).
fn with_panicking_filter(config: &mut Value) {
    let wasm = panic_filter_wasm().unwrap_or_else(|e| panic!("{e}"));
    let filters = http_filters(config);
    let position = filters
        .iter()
        .position(|f| f["typed_config"]["config"]["root_id"] == "jwt_scopes")
        .expect("the generated frontend has jwt_scopes");
    let mut panicking = filters[position].clone();
    let plugin = &mut panicking["typed_config"]["config"];
    assert_eq!(plugin["failure_policy"], "FAIL_RELOAD", "the generated policy changed");
    plugin["name"] = json!("panic_filter");
    plugin["root_id"] = json!("panic_filter");
    plugin["vm_config"]["code"]["local"]["filename"] = json!(wasm.display().to_string());
    plugin.as_object_mut().unwrap().remove("configuration");
    filters.insert(position, panicking);
}

#[test]
fn a_panicking_filter_fails_one_request_and_the_vm_is_rebuilt() {
    let stack = Stack::start_with(Variant {
        edit: Some(Box::new(with_panicking_filter)),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let normal = Request::get("/app2/x").bearer(&token);
    assert_eq!(stack.send(normal.clone()).status, 200);
    for round in 1..=2 {
        let before = stack.reached_lattice();
        let response = stack.send(normal.clone().header("x-test-panic", "1"));
        assert_eq!(response.status, 503, "round {round}: {}", response.text());
        // The VM is rebuilt after a backoff (about a second); meanwhile every
        // request is refused, never forwarded without the filters.
        let responses = until(&stack, &normal, Duration::from_secs(20), |r| r.status == 200);
        let seen = statuses(&responses);
        assert_eq!(seen.last(), Some(&200), "round {round}: never recovered: {seen:?}");
        assert!(seen.iter().all(|s| *s == 503 || *s == 200), "round {round}: {seen:?}");
        let recovered = responses.last().unwrap().json();
        assert_eq!(view_header(&recovered, "x-jwt-subject"), Some("alice"), "round {round}");
        assert_eq!(recovered["sigv4"], "ok");
        assert_eq!(
            stack.reached_lattice(),
            before + 1,
            "round {round}: only the request after recovery reached Lattice: {seen:?}"
        );
    }
    // Requests without the header never notice the module.
    for _ in 0..3 {
        assert_eq!(stack.send(normal.clone()).status, 200);
    }
}

#[test]
fn an_invalid_plugin_configuration_stops_envoy_at_start() {
    type Break = fn(&mut Value);
    let cases: [(&str, Break, &str); 4] = [
        (
            "an unknown jwt_scopes field",
            |config| {
                let filters = http_filters(config);
                let plugin = filters
                    .iter_mut()
                    .find(|f| f["typed_config"]["config"]["root_id"] == "jwt_scopes")
                    .unwrap();
                plugin["typed_config"]["config"]["configuration"]["value"] = json!(r#"{"max_scope": 3}"#);
            },
            "unknown field `max_scope`",
        ),
        (
            "a jwt_scopes value out of range",
            |config| {
                let filters = http_filters(config);
                let plugin = filters
                    .iter_mut()
                    .find(|f| f["typed_config"]["config"]["root_id"] == "jwt_scopes")
                    .unwrap();
                plugin["typed_config"]["config"]["configuration"]["value"] = json!(r#"{"max_scopes": 100000}"#);
            },
            "max_scopes: 100000 is above the limit",
        ),
        (
            "a configuration given to the signing guard",
            |config| {
                guard(config)["configuration"] =
                    json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": "{}x"})
            },
            "sign_guard takes no configuration",
        ),
        (
            "a root_id the module does not have",
            |config| guard(config)["root_id"] = json!("sign_gaurd"),
            "unknown root_id `sign_gaurd`",
        ),
    ];
    for (what, break_it, expected) in cases {
        let parts = StackParts::render(Variant {
            edit: Some(Box::new(break_it)),
            ..Variant::default()
        });
        let (status, log) = Envoy::expect_refusal(&parts.config).unwrap_or_else(|e| panic!("{what}: {e}"));
        assert!(!status.success(), "{what}: Envoy exited successfully:\n{log}");
        assert!(
            log.contains(expected),
            "{what}: the log does not say `{expected}`:\n{log}"
        );
    }
}

/// The signing guard of the first Lattice cluster of a parsed configuration.
fn guard(config: &mut Value) -> &mut Value {
    let cluster = &mut config["static_resources"]["clusters"][0];
    let filters = cluster["typed_extension_protocol_options"]["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]
        ["http_filters"]
        .as_array_mut()
        .unwrap();
    // The wasm guard sits inside the match_delegate that skips it for a
    // signed request.
    let guard = filters
        .iter_mut()
        .map(|f| match f["name"].as_str() {
            Some("envoy.filters.http.match_delegate") => &mut f["typed_config"]["extension_config"],
            _ => f,
        })
        .find(|f| f["typed_config"]["config"]["root_id"] == "sign_guard")
        .expect("the cluster has the signing guard");
    &mut guard["typed_config"]["config"]
}

/// A spec whose one issuer caches its keys for a second (the flags
/// override its URLs and audience with the test IdP's).
const SHORT_CACHE_SPEC: &str = "issuers:
  - name: jwt
    issuer: https://issuer.invalid
    jwks_uri: https://issuer.invalid/keys
    audiences: [placeholder]
    jwks_cache_seconds: 1
";

#[test]
fn jwks_down_at_start_gives_401_until_it_is_back() {
    // Nothing listens where the keys should be.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = Stack::start_with(Variant {
        overrides: Some(Box::new(move |o: &mut Overrides| {
            o.frontend.jwks_uri = Some(format!("https://localhost:{closed}/.well-known/jwks.json"));
        })),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for _ in 0..5 {
        let response = stack.send(Request::get("/app2/x").bearer(&token));
        assert_eq!(response.status, 401, "{}", response.text());
    }
    assert_eq!(stack.reached_lattice(), 0, "a request passed without verified keys");

    // Answering 503 at start, then back: verification resumes on its own.
    let stack = Stack::start_with(Variant {
        jwks_down: true,
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let request = Request::get("/app2/x").bearer(&token);
    let (started, fetches) = (Instant::now(), stack.idp.fetches());
    for _ in 0..20 {
        assert_eq!(stack.send(request.clone()).status, 401);
    }
    // One fetch per request at most (jwt_authn fetches for each request
    // without keys), never one per retry, plus the background one a second.
    let fetched = stack.idp.fetches() - fetches;
    let seconds = started.elapsed().as_secs() as usize;
    assert!(
        fetched <= 20 + seconds + 2,
        "{fetched} JWKS fetches for 20 requests in {seconds} s"
    );
    assert_eq!(stack.reached_lattice(), 0, "a request passed without verified keys");
    stack.idp.set_down(false);
    let responses = until(&stack, &request, Duration::from_secs(10), |r| r.status == 200);
    let seen = statuses(&responses);
    assert_eq!(seen.last(), Some(&200), "never recovered: {seen:?}");
    assert!(seen.iter().all(|s| *s == 401 || *s == 200), "{seen:?}");
}

/// A JWKS endpoint that answers nothing useful, and only after 4 s,
/// counting jwt_authn's fetches in flight (and the most at once), and apart
/// from them the readiness health checks' (`user-agent: Envoy/HC`).
struct HangingJwks {
    port: u16,
    in_flight: Arc<AtomicUsize>,
    most: Arc<AtomicUsize>,
    most_checks: Arc<AtomicUsize>,
    ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _server: lattice_sim::http_server::Background,
}

impl HangingJwks {
    fn start() -> HangingJwks {
        let dir = tempfile::tempdir().unwrap();
        let ca = TestCa::new("hanging IdP CA");
        let leaf = ca.leaf(&["localhost"]);
        let tls = lattice_sim::http_server::tls_config(&leaf.cert_pem, &leaf.key_pem).unwrap();
        let (in_flight, most) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (checks_in_flight, most_checks) = (Arc::new(AtomicUsize::new(0)), Arc::new(AtomicUsize::new(0)));
        let (fetches, high_fetches) = (in_flight.clone(), most.clone());
        let (checks, high_checks) = (checks_in_flight, most_checks.clone());
        let server = lattice_sim::http_server::spawn(
            "127.0.0.1:0",
            Some(tls),
            2,
            move |_, request: hyper::Request<hyper::body::Incoming>| {
                let health_check = request.headers().get("user-agent").is_some_and(|u| u == "Envoy/HC");
                let (now, high) = if health_check {
                    (checks.clone(), high_checks.clone())
                } else {
                    (fetches.clone(), high_fetches.clone())
                };
                async move {
                    let current = now.fetch_add(1, Ordering::SeqCst) + 1;
                    high.fetch_max(current, Ordering::SeqCst);
                    // Just under Envoy's 5 s fetch timeout, so that a fetch
                    // counted here is one Envoy still waits for.
                    tokio::time::sleep(Duration::from_secs(4)).await;
                    now.fetch_sub(1, Ordering::SeqCst);
                    hyper::Response::new(Full::new(Bytes::from_static(b"{}")))
                }
            },
        )
        .unwrap();
        HangingJwks {
            port: server.addr.port(),
            in_flight,
            most,
            most_checks,
            ca: ca.write_pem(dir.path(), "idp-ca.pem"),
            _dir: dir,
            _server: server,
        }
    }
}

#[test]
fn a_hanging_jwks_endpoint_gets_at_most_four_fetches_at_once() {
    let idp = HangingJwks::start();
    let (port, ca) = (idp.port, idp.ca.clone());
    let stack = Stack::start_with(Variant {
        overrides: Some(Box::new(move |o: &mut Overrides| {
            o.frontend.jwks_uri = Some(format!("https://localhost:{port}/.well-known/jwks.json"));
            o.frontend.jwks_ca = Some(ca.display().to_string());
        })),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let port = stack.envoy.port("frontend");
    let clients: Vec<_> = (0..24)
        .map(|_| {
            let request = Request::get("/app2/x").bearer(&token);
            std::thread::spawn(move || request.send(("127.0.0.1", port)).map(|r| r.status))
        })
        .collect();
    let statuses: Vec<_> = clients.into_iter().map(|c| c.join().unwrap()).collect();
    assert!(statuses.iter().all(|s| *s == Ok(401)), "{statuses:?}");
    let most = idp.most.load(Ordering::SeqCst);
    assert!((1..=4).contains(&most), "{most} JWKS fetches at once for 24 requests");
    // The others were refused at once by the JWKS cluster's circuit breaker.
    assert!(stack.envoy.stat("cluster.jwks_jwt.upstream_rq_pending_overflow") > 0);
    assert_eq!(stack.reached_lattice(), 0);
    assert!(idp.in_flight.load(Ordering::SeqCst) <= 4);
    // Besides, the readiness health check asks one at a time.
    assert_eq!(idp.most_checks.load(Ordering::SeqCst), 1);
}

#[test]
fn jwks_down_later_keeps_the_last_keys_and_never_lets_an_unverifiable_token_pass() {
    let stack = Stack::start_with(Variant {
        spec: Some(SHORT_CACHE_SPEC.into()),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    assert_eq!(stack.send(Request::get("/app2/x").bearer(&token)).status, 200);
    stack.idp.set_down(true);
    let fetches = stack.idp.fetches();
    // Past the cache's second, with refetches failing.
    let deadline = Instant::now() + Duration::from_secs(4);
    while stack.idp.fetches() <= fetches && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(100));
    }
    std::thread::sleep(Duration::from_secs(2));
    assert!(stack.idp.fetches() > fetches, "the keys were never fetched again");

    // A key the IdP never published (same kid), and no signature at all.
    let stranger = Issuer::new().token(
        Alg::ES256,
        json!({"iss": stack.idp.url, "aud": AUDIENCE, "sub": "mallory", "scp": ["admin"]}),
    );
    let before = stack.reached_lattice();
    for token in [stranger.as_str(), "eyJhbGciOiJub25lIn0.eyJzdWIiOiJtYWxsb3J5In0."] {
        for _ in 0..3 {
            let response = stack.send(Request::get("/app2/x").bearer(token));
            assert_eq!(response.status, 401, "{}", response.text());
        }
    }
    assert_eq!(stack.reached_lattice(), before, "an unverifiable token passed");
    // The last keys fetched stay in use while refetching fails (measured on
    // Envoy 1.40 with async_fetch): tokens the IdP signed still verify, new
    // ones included, past the cache duration.
    for (subject, token) in [
        ("alice", token),
        ("bob", stack.token(json!({"sub": "bob", "scp": ["read"]}))),
    ] {
        let response = stack.send(Request::get("/app2/x").bearer(&token));
        assert_eq!(response.status, 200, "{}", response.text());
        assert_eq!(view_header(&response.json(), "x-jwt-subject"), Some(subject));
    }
}

/// A TCP listener that accepts connections and drops them at once (a
/// Lattice endpoint that is down), counting them.
struct Dropping {
    port: u16,
    accepted: Arc<AtomicUsize>,
    _stop: std::sync::mpsc::Sender<()>,
}

impl Dropping {
    fn start() -> Dropping {
        let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
        listener.set_nonblocking(true).unwrap();
        let port = listener.local_addr().unwrap().port();
        let accepted = Arc::new(AtomicUsize::new(0));
        let counter = accepted.clone();
        let (stop, stopped) = std::sync::mpsc::channel::<()>();
        std::thread::spawn(move || {
            while matches!(stopped.try_recv(), Err(std::sync::mpsc::TryRecvError::Empty)) {
                match listener.accept() {
                    Ok((connection, _)) => {
                        counter.fetch_add(1, Ordering::SeqCst);
                        drop(connection);
                    }
                    Err(_) => std::thread::sleep(Duration::from_millis(10)),
                }
            }
        });
        Dropping {
            port,
            accepted,
            _stop: stop,
        }
    }
}

/// Sets the route timeout of every route that forwards (generated: 30 s)
/// to `timeout`, so that a slow upstream shows in seconds.
fn route_timeouts(config: &mut Value, timeout: &str) {
    let hcm = &mut config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
    for host in hcm["route_config"]["virtual_hosts"].as_array_mut().unwrap() {
        for route in host["routes"].as_array_mut().unwrap() {
            if let Some(forward) = route.get_mut("route").filter(|r| r["cluster"] != "readiness") {
                assert_eq!(forward["timeout"], "30s", "the generated timeout changed");
                forward["timeout"] = json!(timeout);
            }
        }
    }
}

#[test]
fn lattice_down_gives_503_with_one_attempt_per_request() {
    let down = Dropping::start();
    let port = down.port;
    let stack = Stack::start_with(Variant {
        overrides: Some(Box::new(move |o: &mut Overrides| {
            o.lattice.lattice_endpoint = Some(format!("127.0.0.1:{port}"));
        })),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for i in 1..=5 {
        let started = Instant::now();
        let response = stack.send(Request::get("/app2/x").bearer(&token));
        assert_eq!(response.status, 503, "{}", response.text());
        assert!(started.elapsed() < Duration::from_secs(10));
        assert_eq!(
            down.accepted.load(Ordering::SeqCst),
            i,
            "one connection per request, no retry"
        );
    }
    assert_eq!(stack.envoy.stat("cluster.lattice_app2.upstream_rq_retry"), 0);

    // Nothing listening at all: the same, at once.
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = Stack::start_with(Variant {
        overrides: Some(Box::new(move |o: &mut Overrides| {
            o.lattice.lattice_endpoint = Some(format!("127.0.0.1:{closed}"));
        })),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for _ in 0..5 {
        assert_eq!(stack.send(Request::get("/app2/x").bearer(&token)).status, 503);
    }
    assert_eq!(stack.envoy.stat("cluster.lattice_app2.upstream_cx_connect_fail"), 5);
    assert_eq!(stack.envoy.stat("cluster.lattice_app2.upstream_rq_retry"), 0);
}

#[test]
fn slow_lattice_gives_504_at_the_route_timeout_with_one_attempt_per_request() {
    let slow = SlowLattice::start(Duration::from_secs(30));
    let (port, ca) = (slow.port, slow.ca.clone());
    let stack = Stack::start_with(Variant {
        overrides: Some(Box::new(move |o: &mut Overrides| {
            o.lattice.lattice_endpoint = Some(format!("127.0.0.1:{port}"));
            o.lattice.lattice_ca = Some(ca.display().to_string());
        })),
        edit: Some(Box::new(|config| route_timeouts(config, "2s"))),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for i in 1..=3 {
        let started = Instant::now();
        let response = stack.send(Request::get("/app2/x").bearer(&token));
        let took = started.elapsed();
        assert_eq!(response.status, 504, "{}", response.text());
        assert!(
            took >= Duration::from_millis(1500) && took < Duration::from_secs(8),
            "{took:?}"
        );
        assert_eq!(
            slow.received.load(Ordering::SeqCst),
            i,
            "one request upstream per request, no retry"
        );
    }
    assert_eq!(stack.envoy.stat("cluster.lattice_app2.upstream_rq_timeout"), 3);
    assert_eq!(stack.envoy.stat("cluster.lattice_app2.upstream_rq_retry"), 0);
}
