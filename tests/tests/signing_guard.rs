//! Never an unsigned request to Lattice. Without AWS credentials, or when
//! fetching them fails or is slow, Envoy's aws_request_signing forwards the
//! request unsigned and logs at debug level only; the generated frontend and
//! sidecars end every Lattice cluster's upstream filters with the
//! `sign_guard`, which refuses such a request with 503, logs an error and
//! counts it. Credentials only ever come from Envoy's environment or from a
//! container credentials endpoint on 127.0.0.1 (never the instance metadata
//! address: the chain is restricted to one provider).

use bytes::Bytes;
use e2e::envoy::{Envoy, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN};
use e2e::http::{Request, Response};
use e2e::lattice_stub::{Stack, Variant, DOMAIN, REGION};
use e2e::stack::local_overrides;
use envoy_gen::args::{ListenArgs, Overrides};
use http_body_util::Full;
use serde_json::json;
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
    assert_eq!(sidecar.stat(REFUSED), 1);
    assert!(sidecar.log().contains(&refusal_log_line("app1.lattice.test")));
    assert_eq!(stack.reached_lattice(), 0, "the sidecar sent an unsigned request");
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
