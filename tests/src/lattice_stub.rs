//! The frontend `envoy-gen frontend` renders, in the real Envoy, in front
//! of a stand-in for Lattice: a TLS server holding a certificate for every
//! service name that verifies each request's SigV4 signature the way
//! Lattice does and records what arrived. The IdP serves its JWKS over
//! verified TLS. Tests vary the spec, the rendered configuration (a
//! configuration derived from the generated one) and Envoy's environment.

use crate::envoy::{AwsCredentials, Envoy, TEST_ACCESS_KEY_ID, TEST_SECRET_ACCESS_KEY, TEST_SESSION_TOKEN};
use crate::http::{Request, Response};
use crate::idp::TlsIdp;
use crate::stack::{local_overrides, with_issuer};
use crate::tls::{Received, TestCa, TlsServer};
use bytes::Bytes;
use envoy_gen::args::Overrides;
use http_body_util::Full;
use lattice_sim::sigv4::{self, Expectation, Secret};
use serde_json::{json, Value};
use std::path::Path;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

pub const REGION: &str = "us-west-2";
pub const DOMAIN: &str = "lattice.test";
pub const AUDIENCE: &str = "frontend-api";
pub const SERVICES: [&str; 3] = ["app1", "app2", "app3"];

/// Verifies a request the way Lattice does, and describes what arrived:
/// `{sni, host, method, path, query, sigv4: "ok" | "<code>: <reason>",
/// signed_headers, headers: [[name, value]...]}`.
pub fn lattice_view(r: &Received) -> Value {
    let verdict = sigv4::verify(
        &sigv4::Request {
            method: &r.method,
            path: r.path.as_bytes(),
            query: r.query.as_bytes(),
            headers: &r.headers,
            body_sha256: None,
        },
        &Expectation {
            region: REGION,
            service: "vpc-lattice-svcs",
            now: time::OffsetDateTime::now_utc(),
            max_skew: time::Duration::minutes(5),
            normalize_path: true,
            require_unsigned_payload: true,
        },
        |key| {
            (key == TEST_ACCESS_KEY_ID).then(|| Secret {
                secret_access_key: TEST_SECRET_ACCESS_KEY.into(),
                session_token: Some(TEST_SESSION_TOKEN.into()),
            })
        },
    );
    let signed_headers = r
        .header("authorization")
        .and_then(|a| sigv4::parse_authorization(&a).ok())
        .map(|a| a.signed_headers)
        .unwrap_or_default();
    json!({
        "sni": r.sni,
        "host": r.header("host"),
        "method": r.method,
        "path": r.path,
        "query": r.query,
        "sigv4": match verdict { Ok(_) => "ok".to_string(), Err(e) => format!("{}: {e}", e.code()) },
        "signed_headers": signed_headers,
        "headers": r.headers.iter().map(|(n, v)| (n.clone(), String::from_utf8_lossy(v).into_owned())).collect::<Vec<_>>(),
    })
}

/// The value of header `name` in a `lattice_view`.
pub fn view_header<'a>(view: &'a Value, name: &str) -> Option<&'a str> {
    view["headers"]
        .as_array()?
        .iter()
        .find(|h| h[0] == name)
        .and_then(|h| h[1].as_str())
}

/// Changes a rendered configuration (parsed as JSON) before Envoy runs it.
pub type Edit = Box<dyn FnOnce(&mut Value)>;

/// Changes envoy-gen's overrides before rendering.
pub type OverridesEdit = Box<dyn FnOnce(&mut Overrides)>;

/// How a stack differs from the default one.
#[derive(Default)]
pub struct Variant {
    /// The JWKS endpoint answers 503 (an IdP outage) from the start.
    pub jwks_down: bool,
    /// `--no-oauth`.
    pub no_oauth: bool,
    /// A spec (YAML) under the local overrides.
    pub spec: Option<String>,
    /// Changes to the overrides (after the local ones).
    pub overrides: Option<OverridesEdit>,
    /// Derives the configuration Envoy runs from the generated one.
    pub edit: Option<Edit>,
    /// Envoy's whole environment (default: the tests' AWS credentials).
    pub env: Option<Vec<(String, String)>>,
    /// Added to Envoy's command line.
    pub envoy_args: Vec<String>,
}

/// IdP, Lattice stand-in and the generated frontend. Field order is drop
/// order: Envoy stops first.
pub struct Stack {
    pub envoy: Envoy,
    pub idp: TlsIdp,
    /// Every request that reached the Lattice stand-in, as `lattice_view`s.
    pub seen: Arc<Mutex<Vec<Value>>>,
    /// The configuration Envoy runs.
    pub config: String,
    pub ca: TestCa,
    pub lattice: TlsServer,
    pub dir: tempfile::TempDir,
}

impl Stack {
    pub fn start() -> Stack {
        Stack::start_with(Variant::default())
    }

    pub fn start_with(mut variant: Variant) -> Stack {
        let env = variant.env.take().unwrap_or_else(|| AwsCredentials::test().env());
        let args = std::mem::take(&mut variant.envoy_args);
        let parts = StackParts::render(variant);
        let envoy = Envoy::start_with_args(&parts.config, &env, &args).unwrap_or_else(|e| panic!("{e}"));
        let StackParts {
            idp,
            seen,
            config,
            ca,
            lattice,
            dir,
        } = parts;
        Stack {
            envoy,
            idp,
            seen,
            config,
            ca,
            lattice,
            dir,
        }
    }

    pub fn token(&self, claims: Value) -> String {
        self.idp.token(claims)
    }

    /// Sends over HTTP/1.1 to the frontend listener.
    pub fn send(&self, request: Request) -> Response {
        request
            .send(("127.0.0.1", self.envoy.port("frontend")))
            .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Sends over HTTP/2 (prior knowledge) to the frontend listener.
    pub fn send_h2(&self, request: Request) -> Response {
        crate::http::send_h2(("127.0.0.1", self.envoy.port("frontend")), &request).unwrap_or_else(|e| panic!("{e}"))
    }

    /// How many requests reached the Lattice stand-in.
    pub fn reached_lattice(&self) -> usize {
        self.seen.lock().map(|s| s.len()).unwrap_or(usize::MAX)
    }
}

/// A stack before (or without) its Envoy.
pub struct StackParts {
    pub idp: TlsIdp,
    pub seen: Arc<Mutex<Vec<Value>>>,
    pub config: String,
    pub ca: TestCa,
    pub lattice: TlsServer,
    pub dir: tempfile::TempDir,
}

impl StackParts {
    /// Starts the IdP and the Lattice stand-in and renders the frontend
    /// for them (`variant.env` is not used).
    pub fn render(variant: Variant) -> StackParts {
        let mut parts = StackParts::new(variant.jwks_down);
        parts.config = parts.configuration(
            variant.no_oauth,
            variant.spec.as_deref(),
            variant.overrides,
            variant.edit,
        );
        parts
    }

    fn new(jwks_down: bool) -> StackParts {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = TestCa::new("frontend test CA");
        let idp = TlsIdp::start(&ca, AUDIENCE, jwks_down);
        let seen = Arc::new(Mutex::new(Vec::new()));
        let record = seen.clone();
        let hosts: Vec<String> = SERVICES.iter().map(|s| format!("{s}.{DOMAIN}")).collect();
        let lattice = TlsServer::start(
            &ca.leaf(&hosts.iter().map(String::as_str).collect::<Vec<_>>()),
            Arc::new(move |r: &Received| {
                let view = lattice_view(r);
                if let Ok(mut seen) = record.lock() {
                    seen.push(view.clone());
                }
                (200, view.to_string())
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        StackParts {
            idp,
            seen,
            config: String::new(),
            ca,
            lattice,
            dir,
        }
    }

    /// The overrides a stack renders with: loopback, the stand-in, the IdP.
    fn overrides(&self, no_oauth: bool) -> Overrides {
        let ca_path = self.ca.write_pem(self.dir.path(), "ca.pem");
        let mut overrides = local_overrides(DOMAIN, REGION, self.lattice.addr.port(), &ca_path);
        if no_oauth {
            overrides.frontend.no_oauth = true;
            overrides
        } else {
            with_issuer(overrides, &self.idp.url, &self.idp.jwks_uri(), AUDIENCE)
        }
    }

    fn configuration(
        &self,
        no_oauth: bool,
        spec: Option<&str>,
        change: Option<OverridesEdit>,
        edit: Option<Edit>,
    ) -> String {
        let mut overrides = self.overrides(no_oauth);
        if let Some(change) = change {
            change(&mut overrides);
        }
        let config = envoy_gen::render_frontend(spec.map(|s| (Path::new("spec.yaml"), s)), &overrides)
            .unwrap_or_else(|e| panic!("{e}"));
        match edit {
            None => config,
            Some(edit) => {
                let mut value = parse_config(&config);
                edit(&mut value);
                value.to_string()
            }
        }
    }
}

/// A rendered Envoy configuration as JSON (which Envoy's YAML loader reads as is).
pub fn parse_config(yaml: &str) -> Value {
    serde_saphyr::from_str(yaml).unwrap_or_else(|e| panic!("the rendered configuration is not YAML: {e}"))
}

/// The frontend listener's HTTP filters in a parsed configuration.
pub fn http_filters(config: &mut Value) -> &mut Vec<Value> {
    config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"]
        .as_array_mut()
        .unwrap_or_else(|| panic!("no http_filters in the frontend configuration"))
}

/// A stand-in for Lattice that is up but answers only after `delay`, with
/// its own CA (at `ca`), counting the requests that reach it.
pub struct SlowLattice {
    pub port: u16,
    /// Requests that reached it (counted on arrival).
    pub received: Arc<AtomicUsize>,
    /// Its CA, in a PEM file.
    pub ca: std::path::PathBuf,
    _dir: tempfile::TempDir,
    _server: lattice_sim::http_server::Background,
}

impl SlowLattice {
    pub fn start(delay: Duration) -> SlowLattice {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        let ca = TestCa::new("slow Lattice CA");
        let hosts: Vec<String> = SERVICES.iter().map(|s| format!("{s}.{DOMAIN}")).collect();
        let leaf = ca.leaf(&hosts.iter().map(String::as_str).collect::<Vec<_>>());
        let tls = lattice_sim::http_server::tls_config(&leaf.cert_pem, &leaf.key_pem).unwrap_or_else(|e| panic!("{e}"));
        let received = Arc::new(AtomicUsize::new(0));
        let counter = received.clone();
        let server = lattice_sim::http_server::spawn(
            "127.0.0.1:0",
            Some(tls),
            2,
            move |_, _request: hyper::Request<hyper::body::Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                async move {
                    tokio::time::sleep(delay).await;
                    hyper::Response::new(Full::new(Bytes::from_static(b"late\n")))
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        SlowLattice {
            port: server.addr.port(),
            received,
            ca: ca.write_pem(dir.path(), "slow-ca.pem"),
            _dir: dir,
            _server: server,
        }
    }
}
