//! Never an unsigned request to Lattice. Without AWS credentials, or when
//! fetching them fails or is slow, Envoy's aws_request_signing forwards the
//! request unsigned and logs at debug level only; the generated frontend and
//! sidecars end every Lattice cluster's upstream filters with the
//! `sign_guard`, which refuses such a request with 503, logs an error and
//! counts it. Credentials only ever come from Envoy's environment or from a
//! container credentials endpoint on 127.0.0.1 (never the instance metadata
//! address: the chain is restricted to one provider).
//!
//! The guard has two builds: the wasm module's root `sign_guard` (the
//! default) and the native module's filter `sign_guard` (`--filter native`,
//! with jwt_scopes native too: no V8 anywhere). The `native_` tests run the
//! native build whatever `JWT_SCOPES_FILTER` says, and need
//! `target/native/libjwt_scopes_native.so` (`make native-module`).

use bytes::Bytes;
use e2e::envoy::{native_module, Envoy, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN};
use e2e::http::{Request, Response};
use e2e::lattice_stub::{parse_config, Stack, Variant, DOMAIN, REGION};
use e2e::stack::{local_overrides, native};
use envoy_gen::args::{ListenArgs, Overrides};
use http_body_util::Full;
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const REFUSED: &str = "wasmcustom.sign_guard.unsigned_requests_refused";
const REFUSAL_BODY: &str = "the request could not be signed for Lattice (no AWS credentials) and was not sent\n";

fn refusal_log_line(service: &str) -> String {
    format!("refused with 503 a request to {service} that aws_request_signing did not sign")
}

/// An ECS-style container credentials endpoint on 127.0.0.1 that answers
/// with the tests' credentials after `delay`, counting the fetches.
struct CredentialsEndpoint {
    url: String,
    fetches: Arc<AtomicUsize>,
    _server: lattice_sim::http_server::Background,
}

impl CredentialsEndpoint {
    fn start(delay: Duration) -> CredentialsEndpoint {
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let server = lattice_sim::http_server::spawn(
            "127.0.0.1:0",
            None,
            1,
            move |_, _request: hyper::Request<hyper::body::Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    let body = json!({
                        "AccessKeyId": TEST_ACCESS_KEY_ID,
                        "SecretAccessKey": TEST_SECRET_ACCESS_KEY,
                        "Token": TEST_SESSION_TOKEN,
                        "Expiration": "2099-01-01T00:00:00Z",
                    });
                    hyper::Response::builder()
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .unwrap()
                }
            },
        )
        .unwrap();
        CredentialsEndpoint {
            url: format!("http://127.0.0.1:{}/v2/credentials/task", server.addr.port()),
            fetches,
            _server: server,
        }
    }
}

/// A frontend signing with `credentials: container`, the endpoint at `url`.
fn container_stack(url: &str) -> Stack {
    Stack::start_with(Variant {
        spec: Some("credentials: container\n".into()),
        // The local overrides say `env`; the spec's value is the one under test.
        overrides: Some(Box::new(|o: &mut Overrides| o.lattice.credentials = None)),
        env: Some(vec![("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), url.into())]),
        ..Variant::default()
    })
}

fn assert_refused(response: &Response, what: &str) {
    assert_eq!(response.status, 503, "{what}: {}", response.text());
    assert_eq!(response.text(), REFUSAL_BODY, "{what}");
    assert_eq!(response.header("content-type"), Some("text/plain"), "{what}");
}

/// The native guard's counter on `cluster`. Envoy 1.40 gives a dynamic
/// module that runs as an upstream filter its cluster's stats scope, so the
/// wasm build's name comes after `cluster.<cluster>.`: one counter per
/// Lattice service.
fn native_refused(envoy: &Envoy, cluster: &str) -> u64 {
    envoy.stat(&format!("cluster.{cluster}.{REFUSED}"))
}

/// V8 VMs Envoy created (the wasm build creates one per worker and plugin).
const V8_CREATED: &str = "wasm.envoy.wasm.runtime.v8.created";

/// app2's sidecar from the reference spec, with `build` applied to the
/// overrides, reaching the stack's Lattice stand-in.
fn app2_sidecar(stack: &Stack, build: impl FnOnce(Overrides) -> Overrides) -> String {
    let spec_path = e2e::envoy::workspace_root().join("envoy/examples/reference.yaml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let overrides = build(local_overrides(
        DOMAIN,
        REGION,
        stack.lattice.addr.port(),
        &stack.dir.path().join("ca.pem"),
    ));
    let system = envoy_gen::load(Some((&spec_path, &spec)), &overrides).unwrap();
    let loopback = ListenArgs {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
    };
    envoy_gen::sidecar::render(&system, "app2", &loopback).unwrap()
}

fn send_to_app1(sidecar: &Envoy, path: &str) -> Response {
    Request::get(path)
        .header("host", "app1.lattice.test")
        .send(("127.0.0.1", sidecar.port("sidecar")))
        .unwrap()
}

/// The native build's overrides, with the module built in this workspace.
fn native_build() -> impl FnOnce(Overrides) -> Overrides {
    let module = native_module().unwrap_or_else(|e| panic!("{e}"));
    move |overrides| native(overrides, &module)
}

/// A stack whose frontend runs the native build, with Envoy's environment `env`.
fn native_stack(env: Option<Vec<(String, String)>>) -> Stack {
    let build = native_build();
    let stack = Stack::start_with(Variant {
        env,
        overrides: Some(Box::new(move |o: &mut Overrides| *o = build(o.clone()))),
        ..Variant::default()
    });
    assert_loads_no_wasm(&stack.config, "frontend");
    stack
}

/// A native configuration: the guard (and jwt_scopes) come from the
/// dynamic module, and nothing would start V8.
fn assert_loads_no_wasm(config: &str, what: &str) {
    for wasm in ["envoy.filters.http.wasm", "envoy.wasm.runtime.v8"] {
        assert!(!config.contains(wasm), "{what}: `{wasm}` in\n{config}");
    }
    let config = parse_config(config);
    let options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let mut guards = 0;
    for cluster in config["static_resources"]["clusters"].as_array().unwrap() {
        let Some(filters) = cluster["typed_extension_protocol_options"][options]["http_filters"].as_array() else {
            continue;
        };
        let names: Vec<&str> = filters.iter().map(|f| f["name"].as_str().unwrap()).collect();
        assert_eq!(
            names,
            [
                "envoy.filters.http.aws_request_signing",
                "envoy.filters.http.dynamic_modules",
                "envoy.filters.http.upstream_codec"
            ],
            "{what}: {}",
            cluster["name"]
        );
        assert_eq!(filters[1]["typed_config"]["filter_name"], "sign_guard");
        guards += 1;
    }
    assert!(guards > 0, "{what}: no signed cluster");
}

#[test]
fn without_credentials_the_frontend_and_a_sidecar_refuse_with_503() {
    let stack = Stack::start_with(Variant {
        env: Some(Vec::new()),
        ..Variant::default()
    });
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for (i, path) in ["/app2/x", "/app3/y", "/"].iter().enumerate() {
        assert_refused(&stack.send(Request::get(path).bearer(&token)), path);
        assert_eq!(stack.envoy.stat(REFUSED), i as u64 + 1);
    }
    assert_refused(&stack.send_h2(Request::get("/app2/h2").bearer(&token)), "HTTP/2");
    assert_eq!(stack.reached_lattice(), 0, "an unsigned request reached Lattice");
    assert_eq!(stack.envoy.stat(REFUSED), 4);
    let log = stack.envoy.log();
    for service in ["app2.lattice.test", "app3.lattice.test", "app1.lattice.test"] {
        assert!(log.contains(&refusal_log_line(service)), "{log}");
    }
    assert!(log.contains("[error][wasm]"), "{log}");
    // What Envoy answers itself is unaffected.
    assert_eq!(stack.send(Request::get("/health")).status, 200);
    // The wasm build runs in V8 (the native tests check this stays 0).
    assert!(stack.envoy.stat(V8_CREATED) > 0);

    // app2's sidecar from the reference spec, reaching the same stand-in.
    let spec_path = e2e::envoy::workspace_root().join("envoy/examples/reference.yaml");
    let spec = std::fs::read_to_string(&spec_path).unwrap();
    let overrides = local_overrides(
        DOMAIN,
        REGION,
        stack.lattice.addr.port(),
        &stack.dir.path().join("ca.pem"),
    );
    let system = envoy_gen::load(Some((&spec_path, &spec)), &overrides).unwrap();
    let loopback = ListenArgs {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
    };
    let yaml = envoy_gen::sidecar::render(&system, "app2", &loopback).unwrap();
    let sidecar = Envoy::start_with_env(&yaml, &[]).unwrap();
    let response = Request::get("/app1/from-app2")
        .header("host", "app1.lattice.test")
        .send(("127.0.0.1", sidecar.port("sidecar")))
        .unwrap();
    assert_refused(&response, "sidecar");
    // An app's own SigV4-looking headers never pass for Envoy's signature:
    // they are removed before signing, so neither the guard nor the test
    // that lets a signed request skip it (wasm build) ever sees them.
    let response = forged_signature(Request::get("/app1/forged").header("host", "app1.lattice.test"))
        .send(("127.0.0.1", sidecar.port("sidecar")))
        .unwrap();
    assert_refused(&response, "sidecar, forged");
    assert_eq!(sidecar.stat(REFUSED), 2);
    assert!(sidecar.log().contains(&refusal_log_line("app1.lattice.test")));
    assert_eq!(stack.reached_lattice(), 0, "the sidecar sent an unsigned request");
}

/// `request` with a client's imitation of a SigV4 signature.
fn forged_signature(request: Request) -> Request {
    request
        .header(
            "authorization",
            "AWS4-HMAC-SHA256 Credential=ASIAFORGED/20261207/us-west-2/vpc-lattice-svcs/aws4_request, SignedHeaders=host, Signature=00",
        )
        .header("x-amz-date", "20261207T000000Z")
}

#[test]
fn container_credentials_sign_and_nothing_else_is_asked() {
    let endpoint = CredentialsEndpoint::start(Duration::ZERO);
    let stack = container_stack(&endpoint.url);
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let response = stack.send(Request::get("/app2/x").bearer(&token));
    assert_eq!(response.status, 200, "{}", response.text());
    let view = response.json();
    assert_eq!(view["sigv4"], "ok", "{view:#}");
    assert!(endpoint.fetches.load(Ordering::SeqCst) >= 1);
    assert_eq!(stack.envoy.stat(REFUSED), 0);
    // Only the container provider is in the chain.
    assert!(stack.config.contains("container_credential_provider"));
    assert!(!stack.config.contains("instance_profile_credential_provider"));
}

#[test]
fn a_credentials_endpoint_that_is_down_gives_503() {
    // A port nobody listens on.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let stack = container_stack(&format!("http://127.0.0.1:{port}/v2/credentials/task"));
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for i in 1..=3 {
        assert_refused(&stack.send(Request::get("/app2/x").bearer(&token)), "endpoint down");
        assert_eq!(stack.envoy.stat(REFUSED), i);
    }
    assert_eq!(stack.reached_lattice(), 0, "an unsigned request reached Lattice");
    assert!(stack.envoy.log().contains(&refusal_log_line("app2.lattice.test")));
}

#[test]
fn a_slow_credentials_endpoint_gives_503_not_an_unsigned_request() {
    // Slower than Envoy waits for it (its fetch times out after 5 s).
    let endpoint = CredentialsEndpoint::start(Duration::from_secs(120));
    let stack = container_stack(&endpoint.url);
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    let started = Instant::now();
    assert_refused(&stack.send(Request::get("/app2/x").bearer(&token)), "endpoint slow");
    assert!(started.elapsed() < Duration::from_secs(20), "{:?}", started.elapsed());
    assert_refused(&stack.send_h2(Request::get("/app2/y").bearer(&token)), "endpoint slow");
    assert!(
        endpoint.fetches.load(Ordering::SeqCst) >= 1,
        "the endpoint was never asked"
    );
    assert_eq!(stack.envoy.stat(REFUSED), 2);
    assert_eq!(stack.reached_lattice(), 0, "an unsigned request reached Lattice");
}

#[test]
fn native_guard_without_credentials_the_frontend_and_a_sidecar_refuse_with_503() {
    let stack = native_stack(Some(Vec::new()));
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for (path, cluster) in [
        ("/app2/x", "lattice_app2"),
        ("/app3/y", "lattice_app3"),
        ("/", "lattice_app1"),
    ] {
        assert_refused(&stack.send(Request::get(path).bearer(&token)), path);
        assert_eq!(native_refused(&stack.envoy, cluster), 1, "{path}");
    }
    assert_refused(&stack.send_h2(Request::get("/app2/h2").bearer(&token)), "HTTP/2");
    assert_eq!(native_refused(&stack.envoy, "lattice_app2"), 2);
    assert_eq!(stack.reached_lattice(), 0, "an unsigned request reached Lattice");
    let log = stack.envoy.log();
    for service in ["app2.lattice.test", "app3.lattice.test", "app1.lattice.test"] {
        assert!(
            log.contains(&format!("sign_guard: {}", refusal_log_line(service))),
            "{log}"
        );
    }
    assert!(log.contains("[error][dynamic_modules]"), "{log}");
    // Only the service name: no token, no header value of the request.
    assert!(!log.contains(&token), "{log}");
    // The readiness check goes through the guard too: not ready.
    let ready = stack.send(Request::get("/ready"));
    assert_eq!(ready.status, 503, "{}", ready.text());
    assert!(native_refused(&stack.envoy, "readiness") >= 1);
    // What Envoy answers itself is unaffected, and no V8 ever started.
    assert_eq!(stack.send(Request::get("/health")).status, 200);
    assert_eq!(stack.envoy.stat(V8_CREATED), 0);

    // app2's sidecar, native from the same spec, reaching the same stand-in.
    let yaml = app2_sidecar(&stack, native_build());
    assert_loads_no_wasm(&yaml, "sidecar");
    let sidecar = Envoy::start_with_env(&yaml, &[]).unwrap();
    assert_refused(&send_to_app1(&sidecar, "/app1/from-app2"), "sidecar");
    assert_eq!(native_refused(&sidecar, "lattice_app1"), 1);
    assert_eq!(native_refused(&sidecar, "lattice_app3"), 0);
    let log = sidecar.log();
    assert!(
        log.contains(&format!("sign_guard: {}", refusal_log_line("app1.lattice.test"))),
        "{log}"
    );
    assert!(log.contains("[error][dynamic_modules]"), "{log}");
    assert_eq!(sidecar.stat(V8_CREATED), 0);
    assert_eq!(stack.reached_lattice(), 0, "the sidecar sent an unsigned request");
}

#[test]
fn native_guard_with_credentials_signs_and_forwards() {
    let stack = native_stack(None);
    let token = stack.token(json!({"sub": "alice", "scp": ["read"]}));
    for path in ["/app2/x", "/"] {
        let response = stack.send(Request::get(path).bearer(&token));
        assert_eq!(response.status, 200, "{path}: {}", response.text());
        let view = response.json();
        assert_eq!(view["sigv4"], "ok", "{view:#}");
    }
    let response = stack.send_h2(Request::get("/app3/h2").bearer(&token));
    assert_eq!(response.status, 200, "HTTP/2: {}", response.text());
    assert_eq!(response.json()["sigv4"], "ok");
    // Signed, so ready (once the JWKS has been served).
    let deadline = Instant::now() + Duration::from_secs(10);
    while stack.send(Request::get("/ready")).status != 200 {
        assert!(Instant::now() < deadline, "never ready:\n{}", stack.envoy.log());
        std::thread::sleep(Duration::from_millis(100));
    }
    for cluster in ["lattice_app1", "lattice_app2", "lattice_app3", "readiness"] {
        assert_eq!(native_refused(&stack.envoy, cluster), 0, "{cluster}");
    }
    assert_eq!(stack.reached_lattice(), 3);
    assert_eq!(stack.envoy.stat(V8_CREATED), 0);

    let sidecar = Envoy::start(&app2_sidecar(&stack, native_build())).unwrap();
    let response = send_to_app1(&sidecar, "/from-app2");
    assert_eq!(response.status, 200, "{}", response.text());
    let view: Value = response.json();
    assert_eq!(view["sigv4"], "ok", "{view:#}");
    assert_eq!(view["host"], "app1.lattice.test");
    assert_eq!(native_refused(&sidecar, "lattice_app1"), 0);
    assert_eq!(stack.reached_lattice(), 4);
}

#[test]
fn a_native_guard_with_a_configuration_stops_envoy_at_start() {
    let stack = native_stack(Some(Vec::new()));
    // The sidecar as rendered, then a configuration on its guards.
    let mut config = parse_config(&app2_sidecar(&stack, native_build()));
    let options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    for (value, expected) in [
        (json!(""), None),
        (json!("{}"), Some("sign_guard takes no configuration")),
        (
            json!("{\"require_identity\": true}"),
            Some("sign_guard takes no configuration"),
        ),
    ] {
        for cluster in config["static_resources"]["clusters"].as_array_mut().unwrap() {
            let guard = &mut cluster["typed_extension_protocol_options"][options]["http_filters"][1]["typed_config"];
            assert_eq!(guard["filter_name"], "sign_guard");
            guard["filter_config"] =
                json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": value});
        }
        match expected {
            // An empty configuration is no configuration.
            None => drop(Envoy::start(&config.to_string()).unwrap_or_else(|e| panic!("{e}"))),
            Some(expected) => {
                let (status, log) = Envoy::expect_refusal(&config.to_string()).unwrap();
                assert!(!status.success());
                assert!(log.contains(expected), "{value}: no `{expected}` in:\n{log}");
                assert!(log.contains("Failed to initialize dynamic module"), "{log}");
            }
        }
    }
}
