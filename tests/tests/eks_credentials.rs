//! EKS credentials, end to end: app2's sidecar from the reference spec
//! (envoy/examples/reference.yaml), rendered by envoy-gen with
//! `credentials: container` (EKS Pod Identity) or `credentials:
//! web_identity` (IRSA), in the real Envoy, signing with real SigV4 for
//! lattice-sim, which verifies the signature, applies app1's auth policy
//! (only app2's role may call it) and tells the target who called in
//! `x-amzn-lattice-identity`. Each credential source is faked on loopback,
//! checks what Envoy presents, and hands out credentials lattice-sim maps to
//! app2's role. When the credentials cannot be had, Envoy 1.40 sends the
//! request unsigned (both providers fall back to anonymous credentials, and
//! a failed refresh drops still-valid ones at once) and the signing guard
//! refuses it with 503: nothing unsigned ever reaches Lattice.
//!
//! Pod Identity needs no privilege: Envoy's container provider takes any IP
//! literal in AWS_CONTAINER_CREDENTIALS_FULL_URI, so the fake agent listens
//! on 127.0.0.1. IRSA does: Envoy always asks
//! `https://sts.<region>.amazonaws.com:443`, so the `irsa_` tests run Envoy
//! in its own mount namespace (`unshare --mount`, same network namespace as
//! the test) with /etc/hosts bind-mounted to send that name to a loopback
//! address where the fake STS listens on port 443. They need root (CI and
//! the dev container run as root); `--skip irsa` leaves them out.

use bytes::Bytes;
use e2e::echo::{echoed_headers, EchoServer};
use e2e::envoy::{workspace_root, Envoy};
use e2e::frontend::Build;
use e2e::http::{Request, Response};
use e2e::lattice_stub::parse_config;
use e2e::stack::local_overrides;
use e2e::tls::{Handler, Received, TestCa, TlsServer};
use envoy_gen::args::ListenArgs;
use envoy_gen::spec::Credentials;
use http_body_util::Full;
use lattice_sim::config::Config;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::net::Ipv4Addr;
use std::path::Path;
use std::sync::atomic::{AtomicU8, Ordering};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::{Duration, Instant};

const ACCOUNT: &str = "111122223333";
const DOMAIN: &str = "lattice.test";
const REGION: &str = "us-west-2";
/// app2's role in the reference spec: what its sidecar must sign as.
const APP2_ROLE: &str = "arn:aws:iam::111122223333:role/app2";
/// The session name envoy-gen gives app2's sidecar for web identity.
const APP2_SESSION: &str = "lattice-jwt-app2";
/// Where Envoy 1.40 exchanges a web identity token (not configurable).
const STS_HOST: &str = "sts.us-west-2.amazonaws.com";

/// The signing guard's counter and answer (tests/tests/signing_guard.rs).
const REFUSED: &str = "wasmcustom.sign_guard.unsigned_requests_refused";
const REFUSAL_BODY: &str = "the request could not be signed for Lattice (no AWS credentials) and was not sent\n";

/// The longest a test waits for Envoy to fetch, refresh or drop credentials.
const PATIENCE: Duration = Duration::from_secs(10);

/// The Pod Identity tokens (what kubelet projects for app2's service account).
const POD_TOKEN_1: &str = "eks-pod-identity-token.app2.one";
const POD_TOKEN_2: &str = "eks-pod-identity-token.app2.two";
/// The IRSA token (a projected service account token, audience sts.amazonaws.com).
const IRSA_TOKEN: &str = "eyJhbGciOiJSUzI1NiJ9.irsa-app2-service-account.c2lnbmF0dXJl";

/// Temporary credentials for app2's role, as AWS hands them out.
#[derive(Debug, Clone, Copy)]
struct Issued {
    key: &'static str,
    secret: &'static str,
    token: &'static str,
    session: &'static str,
}

/// What the Pod Identity agent gives for the first token, then the second.
const POD_1: Issued = Issued {
    key: "ASIAPODIDENTITY00001",
    secret: "pod/identity/secret/one/not/a/real/key/0001",
    token: "PodIdentitySessionTokenOne==",
    session: "eks-demo-app2-pod-1",
};
const POD_2: Issued = Issued {
    key: "ASIAPODIDENTITY00002",
    secret: "pod/identity/secret/two/not/a/real/key/0002",
    token: "PodIdentitySessionTokenTwo==",
    session: "eks-demo-app2-pod-2",
};
/// What STS gives for the IRSA token (the session is the one Envoy asked).
const IRSA: Issued = Issued {
    key: "ASIAIRSAAPP2TEST0001",
    secret: "irsa/secret/not/a/real/key/000000000001",
    token: "IrsaSessionTokenApp2==",
    session: APP2_SESSION,
};

impl Issued {
    /// The assumed-role session lattice-sim knows these credentials as.
    fn principal(&self) -> String {
        format!("arn:aws:sts::{ACCOUNT}:assumed-role/app2/{}", self.session)
    }

    /// What Lattice tells the target about a caller signing with them.
    fn identity(&self) -> String {
        format!(
            "Principal={}; SessionName={}; Type=AWS_IAM",
            self.principal(),
            self.session
        )
    }
}

/// lattice-sim: app1 lets in app2's role only; app3 anyone. It knows the
/// credentials the fakes hand out, all sessions of app2's role.
fn sim_config(target_port: u16) -> Config {
    let target = format!("http://127.0.0.1:{target_port}");
    let credentials: Vec<Value> = [POD_1, POD_2, IRSA]
        .iter()
        .map(|c| {
            json!({"access_key_id": c.key, "secret_access_key": c.secret, "session_token": c.token,
                   "principal": c.principal()})
        })
        .collect();
    let doc = json!({
        "region": REGION,
        "account": ACCOUNT,
        "service_network": {
            "name": "eks-network",
            "auth_type": "AWS_IAM",
            "policy": {"Statement": [{"Sid": "AccountCallers", "Effect": "Allow",
                                       "Principal": {"AWS": format!("arn:aws:iam::{ACCOUNT}:root")},
                                       "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]},
        },
        "services": [
            {"name": "app1", "host": format!("app1.{DOMAIN}"), "auth_type": "AWS_IAM", "target": target,
             "policy": {"Statement": [{"Sid": "App2Only", "Effect": "Allow", "Principal": {"AWS": APP2_ROLE},
                                       "Action": "vpc-lattice-svcs:Invoke", "Resource": "*"}]}},
            {"name": "app3", "host": format!("app3.{DOMAIN}"), "auth_type": "NONE", "target": target},
        ],
        "credentials": credentials,
    });
    Config::parse(&doc.to_string(), Path::new(".")).unwrap_or_else(|e| panic!("{e}"))
}

/// lattice-sim in front of an echo target, and what reached it.
struct World {
    target: EchoServer,
    /// lattice-sim's access log, one JSON object per request that reached it.
    access_log: Arc<Mutex<Vec<Value>>>,
    sim: lattice_sim::front::Running,
    dir: tempfile::TempDir,
}

impl World {
    fn start() -> World {
        let target = EchoServer::start().unwrap_or_else(|e| panic!("{e}"));
        let access_log = Arc::new(Mutex::new(Vec::<Value>::new()));
        let sink = access_log.clone();
        let sim = lattice_sim::front::start_with_log(
            sim_config(target.addr.port()),
            "127.0.0.1:0",
            Arc::new(move |line: &str| {
                let entry: Value = serde_json::from_str(line).unwrap_or_else(|_| json!({"unparsed": line}));
                locked(&sink).push(entry);
            }),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        std::fs::write(dir.path().join("lattice-ca.pem"), &sim.ca_pem).unwrap_or_else(|e| panic!("{e}"));
        World {
            target,
            access_log,
            sim,
            dir,
        }
    }

    /// app2's sidecar from the reference spec with `credentials`, reaching
    /// lattice-sim on loopback.
    fn app2_sidecar(&self, credentials: Credentials) -> String {
        let spec_path = workspace_root().join("envoy/examples/reference.yaml");
        let spec = std::fs::read_to_string(&spec_path).unwrap_or_else(|e| panic!("{}: {e}", spec_path.display()));
        let mut overrides = local_overrides(
            DOMAIN,
            REGION,
            self.sim.addr.port(),
            &self.dir.path().join("lattice-ca.pem"),
        );
        overrides.lattice.credentials = Some(credentials);
        let system =
            envoy_gen::load(Some((spec_path.as_path(), spec.as_str())), &overrides).unwrap_or_else(|e| panic!("{e}"));
        let loopback = ListenArgs {
            listen: Some("127.0.0.1:0".into()),
            admin: Some("127.0.0.1:0".into()),
        };
        envoy_gen::sidecar::render(&system, "app2", &loopback).unwrap_or_else(|e| panic!("{e:?}"))
    }

    /// How many requests reached lattice-sim.
    fn reached_lattice(&self) -> usize {
        locked(&self.access_log).len()
    }

    /// The requests that reached lattice-sim unsigned (its anonymous caller).
    fn unsigned_at_lattice(&self) -> Vec<Value> {
        locked(&self.access_log)
            .iter()
            .filter(|entry| !entry["caller"].as_str().is_some_and(|c| c.starts_with("arn:")))
            .cloned()
            .collect()
    }
}

/// A mutex's data, even if a thread panicked holding it (the panic is
/// reported on its own).
fn locked<T>(mutex: &Mutex<T>) -> MutexGuard<'_, T> {
    mutex.lock().unwrap_or_else(|poisoned| poisoned.into_inner())
}

/// The credential provider of every signed cluster of a rendered
/// configuration is `expected`.
fn assert_credential_provider(config: &str, expected: &Value) {
    let config = parse_config(config);
    let options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    let mut signed = Vec::new();
    for cluster in config["static_resources"]["clusters"].as_array().into_iter().flatten() {
        let Some(filters) = cluster["typed_extension_protocol_options"][options]["http_filters"].as_array() else {
            continue;
        };
        for signer in filters
            .iter()
            .filter(|f| f["name"] == "envoy.filters.http.aws_request_signing")
        {
            assert_eq!(
                &signer["typed_config"]["credential_provider"], expected,
                "{}",
                cluster["name"]
            );
            signed.push(cluster["name"].as_str().unwrap_or_default().to_string());
        }
    }
    // app2 calls app1 and app3.
    assert_eq!(signed, ["lattice_app1", "lattice_app3"]);
}

/// GET `path` from app1 through the sidecar.
fn send_to_app1(sidecar: &Envoy, path: &str) -> Response {
    Request::get(path)
        .header("host", format!("app1.{DOMAIN}"))
        .send(("127.0.0.1", sidecar.port("sidecar")))
        .unwrap_or_else(|e| panic!("{e}"))
}

/// The caller Lattice named to the target, from the echo of a 200.
fn identity_seen(response: &Response) -> Option<String> {
    echoed_headers(&response.json())
        .into_iter()
        .find(|(name, _)| name == "x-amzn-lattice-identity")
        .map(|(_, value)| value)
}

/// The guard's answer to a request the signer left unsigned.
fn assert_refused(response: &Response, what: &str) {
    assert_eq!(response.status, 503, "{what}: {}", response.text());
    assert_eq!(response.text(), REFUSAL_BODY, "{what}");
    assert_eq!(response.header("content-type"), Some("text/plain"), "{what}");
}

/// The guard's refusal counter for app1 in the build under test (the
/// native guard counts per cluster, see signing_guard.rs).
fn refused_stat() -> String {
    match Build::under_test() {
        Build::Native(_) => format!("cluster.lattice_app1.{REFUSED}"),
        Build::Wasm(_) => REFUSED.to_string(),
    }
}

fn refusal_log_line() -> String {
    format!("refused with 503 a request to app1.{DOMAIN} that aws_request_signing did not sign")
}

/// Polls `probe` until it gives a value, for at most `timeout`.
fn wait_for<T>(timeout: Duration, mut probe: impl FnMut() -> Option<T>) -> Option<T> {
    let deadline = Instant::now() + timeout;
    loop {
        if let Some(value) = probe() {
            return Some(value);
        }
        if Instant::now() > deadline {
            return None;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// Writes a token file as kubelet does: whole (write, then rename), and
/// without a trailing newline (Envoy sends the file as is; a newline makes
/// the Pod Identity request invalid).
fn write_token(path: &Path, token: &str) {
    let next = path.with_extension("next");
    std::fs::write(&next, token).unwrap_or_else(|e| panic!("{}: {e}", next.display()));
    std::fs::rename(&next, path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
}

// ---------------------------------------------------------------------------
// EKS Pod Identity: the container credentials provider.

/// One request Envoy made to the Pod Identity agent.
#[derive(Debug, Clone)]
struct Fetch {
    path: String,
    /// The `authorization` header (None: absent).
    authorization: Option<String>,
    /// What the agent answered.
    status: u16,
}

struct AgentState {
    /// The one token the agent accepts (the pod's, as EKS checks it).
    accepts: String,
    /// What it hands out for it.
    issues: Issued,
    /// How long those credentials last (Envoy refreshes ~60 s before).
    lifetime: time::Duration,
    fetches: Vec<Fetch>,
}

/// A fake EKS Pod Identity agent on 127.0.0.1: `GET /v1/credentials` with
/// `authorization: <the token>` gives credentials, a missing token 401,
/// another token 403.
struct PodIdentityAgent {
    /// What EKS puts in AWS_CONTAINER_CREDENTIALS_FULL_URI (the agent's
    /// address is 169.254.170.23; Envoy takes any IP literal).
    url: String,
    state: Arc<Mutex<AgentState>>,
    _server: lattice_sim::http_server::Background,
}

impl PodIdentityAgent {
    fn start(accepts: &str, issues: Issued, lifetime: time::Duration) -> PodIdentityAgent {
        let state = Arc::new(Mutex::new(AgentState {
            accepts: accepts.into(),
            issues,
            lifetime,
            fetches: Vec::new(),
        }));
        let shared = state.clone();
        let server = lattice_sim::http_server::spawn(
            "127.0.0.1:0",
            None,
            1,
            move |_, request: hyper::Request<hyper::body::Incoming>| {
                let authorization = request
                    .headers()
                    .get("authorization")
                    .map(|v| String::from_utf8_lossy(v.as_bytes()).into_owned());
                let (status, body) = {
                    let mut state = locked(&shared);
                    let (status, body) = match authorization.as_deref() {
                        None | Some("") => (401, json!({"message": "Service account token cannot be empty"})),
                        Some(token) if token != state.accepts => (403, json!({"message": "Invalid token"})),
                        Some(_) => {
                            let c = state.issues;
                            (
                                200,
                                json!({"AccessKeyId": c.key, "SecretAccessKey": c.secret, "Token": c.token,
                                       "AccountId": ACCOUNT, "Expiration": rfc3339_in(state.lifetime)}),
                            )
                        }
                    };
                    state.fetches.push(Fetch {
                        path: request.uri().path().to_string(),
                        authorization,
                        status,
                    });
                    (status, body)
                };
                async move {
                    hyper::Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(body.to_string())))
                        .unwrap_or_default()
                }
            },
        )
        .unwrap_or_else(|e| panic!("{e}"));
        PodIdentityAgent {
            url: format!("http://127.0.0.1:{}/v1/credentials", server.addr.port()),
            state,
            _server: server,
        }
    }

    /// From now on, accept only `token`, and hand out `issues` for it.
    fn accept(&self, token: &str, issues: Issued) {
        let mut state = locked(&self.state);
        state.accepts = token.into();
        state.issues = issues;
    }

    fn fetches(&self) -> Vec<Fetch> {
        locked(&self.state).fetches.clone()
    }

    /// The first fetch from the `from`th on that satisfies `matches`,
    /// waiting for it.
    fn wait_fetch(&self, from: usize, matches: impl Fn(&Fetch) -> bool) -> Option<Fetch> {
        wait_for(PATIENCE, || self.fetches().into_iter().skip(from).find(|f| matches(f)))
    }
}

/// `now + lifetime` as the agent writes it (RFC 3339, whole seconds, UTC),
/// which Envoy parses with `%E4Y-%m-%dT%H:%M:%S%z`.
fn rfc3339_in(lifetime: time::Duration) -> String {
    let t = time::OffsetDateTime::now_utc() + lifetime;
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}Z",
        t.year(),
        u8::from(t.month()),
        t.day(),
        t.hour(),
        t.minute(),
        t.second()
    )
}

/// What EKS sets in a pod with Pod Identity (Envoy's environment besides
/// PATH and AWS_EC2_METADATA_DISABLED=true, see `Envoy::start_with_env`).
fn pod_identity_env(url: &str, token_file: &Path) -> Vec<(String, String)> {
    vec![
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI".into(), url.into()),
        (
            "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
            token_file.display().to_string(),
        ),
    ]
}

/// The rendered chain: the container provider only.
fn container_chain() -> Value {
    json!({"custom_credential_provider_chain": true, "container_credential_provider": {}})
}

#[test]
fn pod_identity_signs_as_the_pods_role_and_rereads_the_token_file() {
    let world = World::start();
    // Credentials that last 63 s: Envoy refreshes them about every 3 s
    // (60 s before they expire), so rotation shows within the test.
    let agent = PodIdentityAgent::start(POD_TOKEN_1, POD_1, time::Duration::seconds(63));
    let tokens = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token_file = tokens.path().join("eks-pod-identity-token");
    write_token(&token_file, POD_TOKEN_1);
    let config = world.app2_sidecar(Credentials::Container);
    assert_credential_provider(&config, &container_chain());
    let sidecar =
        Envoy::start_with_env(&config, &pod_identity_env(&agent.url, &token_file)).unwrap_or_else(|e| panic!("{e}"));

    // Signed as app2's role with what the agent gave for the pod's token.
    let response = send_to_app1(&sidecar, "/from-app2");
    assert_eq!(response.status, 200, "{}\n{}", response.text(), sidecar.log());
    assert_eq!(identity_seen(&response), Some(POD_1.identity()));
    let first = agent.fetches().first().cloned().unwrap_or_else(|| panic!("no fetch"));
    assert_eq!(first.path, "/v1/credentials");
    // The file's contents, as they are: no `Bearer `, nothing trimmed.
    assert_eq!(first.authorization.as_deref(), Some(POD_TOKEN_1));
    assert_eq!(first.status, 200);

    // Kubelet rotates the token; the agent accepts only the new one and
    // hands out new credentials. Envoy reads the file again at its next
    // refresh and signs with those.
    let rotated_at = agent.fetches().len();
    write_token(&token_file, POD_TOKEN_2);
    agent.accept(POD_TOKEN_2, POD_2);
    agent
        .wait_fetch(rotated_at, |f| {
            f.authorization.as_deref() == Some(POD_TOKEN_2) && f.status == 200
        })
        .unwrap_or_else(|| panic!("Envoy never presented the new token: {:?}", agent.fetches()));
    let rotated = wait_for(PATIENCE, || {
        let response = send_to_app1(&sidecar, "/after-rotation");
        assert_eq!(response.status, 200, "{}", response.text());
        let identity = identity_seen(&response);
        assert!(
            identity == Some(POD_1.identity()) || identity == Some(POD_2.identity()),
            "{identity:?}"
        );
        (identity == Some(POD_2.identity())).then_some(response)
    });
    assert!(rotated.is_some(), "never signed with the rotated credentials");
    assert_eq!(sidecar.stat(&refused_stat()), 0);

    // The agent stops accepting the pod's token (say, the association is
    // removed): at its next refresh Envoy drops the credentials, although
    // they have not expired, and the guard refuses what it would send
    // unsigned.
    let revoked_at = agent.fetches().len();
    agent.accept("a-token-nobody-has", POD_2);
    agent
        .wait_fetch(revoked_at, |f| f.status == 403)
        .unwrap_or_else(|| panic!("Envoy never asked the agent again: {:?}", agent.fetches()));
    let refused = wait_for(PATIENCE, || {
        let response = send_to_app1(&sidecar, "/after-revocation");
        (response.status != 200).then_some(response)
    })
    .unwrap_or_else(|| panic!("still signing after the agent refused the token"));
    assert_refused(&refused, "after the agent refused the token");
    assert!(sidecar.wait_stat_until(&refused_stat(), |v| v >= 1) >= 1);
    assert!(sidecar.log().contains(&refusal_log_line()), "{}", sidecar.log());

    // Every request that reached Lattice was signed, and reached the target.
    assert_eq!(world.unsigned_at_lattice(), Vec::<Value>::new());
    assert_eq!(world.target.requests_served(), world.reached_lattice());
}

/// A sidecar whose Pod Identity credentials cannot be had.
struct FailureCase<'a> {
    name: &'a str,
    /// AWS_CONTAINER_CREDENTIALS_FULL_URI.
    url: &'a str,
    /// AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE.
    token_file: &'a Path,
    /// The `authorization` the agent sees (absent counts as empty) and
    /// its answer; None: the agent is not asked.
    agent_sees: Option<(&'a str, u16)>,
}

#[test]
fn pod_identity_fails_closed_with_503() {
    let world = World::start();
    let agent = PodIdentityAgent::start(POD_TOKEN_1, POD_1, time::Duration::hours(1));
    let config = world.app2_sidecar(Credentials::Container);
    assert_credential_provider(&config, &container_chain());
    let tokens = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let wrong_token = tokens.path().join("wrong-token");
    write_token(&wrong_token, "a-token-the-agent-refuses");
    let no_token = tokens.path().join("no-such-token");
    // A port nobody listens on: the agent is down.
    let down = std::net::TcpListener::bind("127.0.0.1:0")
        .and_then(|l| l.local_addr())
        .map(|a| format!("http://127.0.0.1:{}/v1/credentials", a.port()))
        .unwrap_or_else(|e| panic!("{e}"));

    let cases = [
        FailureCase {
            name: "a token the agent refuses",
            url: &agent.url,
            token_file: &wrong_token,
            agent_sees: Some(("a-token-the-agent-refuses", 403)),
        },
        // Envoy sends an empty `authorization`.
        FailureCase {
            name: "no token file",
            url: &agent.url,
            token_file: &no_token,
            agent_sees: Some(("", 401)),
        },
        FailureCase {
            name: "the agent is down",
            url: &down,
            token_file: &wrong_token,
            agent_sees: None,
        },
    ];
    for FailureCase {
        name: case,
        url,
        token_file,
        agent_sees,
    } in cases
    {
        let asked_before = agent.fetches().len();
        let sidecar = Envoy::start_with_env(&config, &pod_identity_env(url, token_file))
            .unwrap_or_else(|e| panic!("{case}: {e}"));
        if let Some((authorization, status)) = agent_sees {
            let fetch = agent
                .wait_fetch(asked_before, |_| true)
                .unwrap_or_else(|| panic!("{case}: the agent was never asked:\n{}", sidecar.log()));
            assert_eq!(fetch.authorization.as_deref().unwrap_or(""), authorization, "{case}");
            assert_eq!(fetch.status, status, "{case}");
        }
        assert_refused(&send_to_app1(&sidecar, "/from-app2"), case);
        assert_eq!(sidecar.wait_stat(&refused_stat(), 1), 1, "{case}");
        assert!(sidecar.log().contains(&refusal_log_line()), "{case}: {}", sidecar.log());
        if agent_sees.is_none() {
            assert_eq!(agent.fetches().len(), asked_before, "{case}: the agent was asked");
        }
    }
    assert_eq!(world.reached_lattice(), 0, "{:?}", world.unsigned_at_lattice());
    assert_eq!(world.target.requests_served(), 0);
}

// ---------------------------------------------------------------------------
// IRSA: the web identity provider, STS on loopback behind /etc/hosts.

struct StsState {
    /// The one token it accepts (for app2's role only).
    accepts: String,
    /// Every request, and the status it got.
    calls: Vec<(Received, u16)>,
}

/// A fake STS over HTTPS on `<ip>:443`, a loopback address of its own (so
/// that whatever else listens on 127.0.0.1:443 is no obstacle), answering
/// `AssumeRoleWithWebIdentity` for app2's role and its token only, 403
/// otherwise. Envoy does not verify STS's certificate (its STS cluster has
/// an empty TLS context), so this one comes from a CA nobody trusts.
struct FakeSts {
    ip: Ipv4Addr,
    state: Arc<Mutex<StsState>>,
    /// The hosts file and resolv.conf Envoy sees (`FakeSts::start_envoy`).
    files: tempfile::TempDir,
    _server: TlsServer,
}

/// The last byte of the next fake STS's address.
static NEXT_STS: AtomicU8 = AtomicU8::new(1);

impl FakeSts {
    fn start(accepts: &str) -> FakeSts {
        let ca = TestCa::new("a CA Envoy does not trust");
        let leaf = ca.leaf(&[STS_HOST]);
        let state = Arc::new(Mutex::new(StsState {
            accepts: accepts.into(),
            calls: Vec::new(),
        }));
        let shared = state.clone();
        let handler: Handler = Arc::new(move |r: &Received| {
            let query = parse_query(&r.query);
            let mut state = locked(&shared);
            let allowed = r.method == "GET"
                && query.get("Action").map(String::as_str) == Some("AssumeRoleWithWebIdentity")
                && query.get("RoleArn").map(String::as_str) == Some(APP2_ROLE)
                && query.get("WebIdentityToken") == Some(&state.accepts);
            let (status, body) = if allowed {
                let session = query.get("RoleSessionName").cloned().unwrap_or_default();
                let expiration = (time::OffsetDateTime::now_utc() + time::Duration::hours(1)).unix_timestamp();
                (
                    200,
                    json!({"AssumeRoleWithWebIdentityResponse": {
                        "AssumeRoleWithWebIdentityResult": {
                            "Credentials": {"AccessKeyId": IRSA.key, "SecretAccessKey": IRSA.secret,
                                            "SessionToken": IRSA.token, "Expiration": expiration},
                            "AssumedRoleUser": {"Arn": format!("arn:aws:sts::{ACCOUNT}:assumed-role/app2/{session}"),
                                                "AssumedRoleId": format!("AROAAPP2ROLEID:{session}")},
                            "SubjectFromWebIdentityToken": "system:serviceaccount:demo:app2"},
                        "ResponseMetadata": {"RequestId": "eks-credentials-test"}}}),
                )
            } else {
                (
                    403,
                    json!({"Error": {"Code": "AccessDenied",
                                     "Message": "Not authorized to perform sts:AssumeRoleWithWebIdentity"}}),
                )
            };
            state.calls.push((r.clone(), status));
            (status, body.to_string())
        });
        // 127.73.<pid>.<n>: one address per test, and per test process.
        let third = u8::try_from(std::process::id() % 250).unwrap_or(0) + 1;
        let mut tried = Vec::new();
        let (ip, server) = loop {
            let last = NEXT_STS.fetch_add(1, Ordering::SeqCst);
            let ip = Ipv4Addr::new(127, 73, third, last);
            match TlsServer::start_on(&format!("{ip}:443"), &leaf, handler.clone()) {
                Ok(server) => break (ip, server),
                Err(e) => tried.push(e),
            }
            assert!(
                tried.len() < 5,
                "cannot serve the fake STS on port 443 (Envoy asks STS on 443 only, whatever the \
                 configuration): {tried:?}. Is something listening on 0.0.0.0:443, or is this not root?"
            );
        };
        let files = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
        // Only the STS name changes; localhost stays.
        let hosts = format!("127.0.0.1 localhost\n::1 localhost ip6-localhost\n{ip} {STS_HOST}\n");
        std::fs::write(files.path().join("hosts"), hosts).unwrap_or_else(|e| panic!("{e}"));
        // No DNS query leaves the machine: Envoy's resolver asks for IPv6
        // first, which /etc/hosts cannot answer; a name server that is not
        // there (nothing on UDP port 53 of this address) refuses at once,
        // and Envoy falls back to the IPv4 address in /etc/hosts.
        std::fs::write(
            files.path().join("resolv.conf"),
            format!("nameserver {ip}\noptions timeout:1 attempts:1\n"),
        )
        .unwrap_or_else(|e| panic!("{e}"));
        FakeSts {
            ip,
            state,
            files,
            _server: server,
        }
    }

    fn calls(&self) -> Vec<(Received, u16)> {
        locked(&self.state).calls.clone()
    }

    /// Starts Envoy in a mount namespace of its own in which /etc/hosts
    /// sends STS's name to this fake (and /etc/resolv.conf names no real
    /// server); the network namespace is the test's, so lattice-sim is
    /// reachable. The bind mounts are private to that namespace and vanish
    /// with Envoy.
    fn start_envoy(&self, config: &str, env: &[(String, String)]) -> Envoy {
        require_root();
        let wrapper: Vec<String> = [
            "unshare",
            "--mount",
            "--propagation",
            "private",
            "--",
            "sh",
            "-c",
            r#"mount --bind "$1" /etc/hosts && mount --bind "$2" /etc/resolv.conf && shift 2 && exec "$@""#,
            "sh",
        ]
        .iter()
        .map(|s| s.to_string())
        .chain(
            ["hosts", "resolv.conf"]
                .iter()
                .map(|f| self.files.path().join(f).display().to_string()),
        )
        .collect();
        Envoy::start_wrapped(config, env, &[], &wrapper)
            .unwrap_or_else(|e| panic!("Envoy behind the fake STS at {}:443: {e}", self.ip))
    }

    /// The first call from the `from`th on, waiting for it.
    fn wait_call(&self, from: usize) -> Option<(Received, u16)> {
        wait_for(PATIENCE, || self.calls().into_iter().nth(from))
    }
}

/// The IRSA tests bind port 443 and mount over /etc/hosts in a mount
/// namespace: root only.
fn require_root() {
    let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
    let euid = status
        .lines()
        .find_map(|l| l.strip_prefix("Uid:"))
        .and_then(|ids| ids.split_whitespace().nth(1))
        .and_then(|id| id.parse::<u32>().ok());
    assert_eq!(
        euid,
        Some(0),
        "the IRSA tests need root: Envoy asks STS at https://{STS_HOST}:443 and nothing in its \
         configuration or environment changes that, so the test serves a fake STS on port 443 of a \
         loopback address and runs Envoy under `unshare --mount` with a hosts file bind-mounted over \
         /etc/hosts. Run them as root (CI does), or leave them out with `--skip irsa`"
    );
}

/// A query string's parameters, percent-decoded.
fn parse_query(query: &str) -> BTreeMap<String, String> {
    query
        .split('&')
        .filter(|p| !p.is_empty())
        .map(|p| {
            let (name, value) = p.split_once('=').unwrap_or((p, ""));
            (percent_decode(name), percent_decode(value))
        })
        .collect()
}

fn percent_decode(text: &str) -> String {
    let mut out = Vec::with_capacity(text.len());
    let mut bytes = text.bytes();
    while let Some(b) = bytes.next() {
        if b != b'%' {
            out.push(b);
            continue;
        }
        let hex: String = bytes.by_ref().take(2).map(char::from).collect();
        match u8::from_str_radix(&hex, 16) {
            Ok(decoded) if hex.len() == 2 => out.push(decoded),
            _ => {
                out.push(b'%');
                out.extend(hex.bytes());
            }
        }
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// What EKS sets in a pod with IRSA, but AWS_ROLE_ARN: the role comes from
/// the configuration envoy-gen rendered (the spec's role for app2).
fn irsa_env(token_file: &Path) -> Vec<(String, String)> {
    vec![("AWS_WEB_IDENTITY_TOKEN_FILE".into(), token_file.display().to_string())]
}

#[test]
fn irsa_signs_as_the_role_the_spec_gives_the_sidecar_and_fails_closed() {
    require_root();
    let world = World::start();
    let sts = FakeSts::start(IRSA_TOKEN);
    let config = world.app2_sidecar(Credentials::WebIdentity);
    // app2's role and session; the token file from AWS_WEB_IDENTITY_TOKEN_FILE.
    assert_credential_provider(
        &config,
        &json!({"custom_credential_provider_chain": true,
                "assume_role_with_web_identity_provider": {"role_arn": APP2_ROLE, "role_session_name": APP2_SESSION}}),
    );
    let tokens = tempfile::tempdir().unwrap_or_else(|e| panic!("{e}"));
    let token_file = tokens.path().join("token");
    write_token(&token_file, IRSA_TOKEN);
    let sidecar = sts.start_envoy(&config, &irsa_env(&token_file));

    let response = send_to_app1(&sidecar, "/from-app2");
    assert_eq!(response.status, 200, "{}\n{}", response.text(), sidecar.log());
    assert_eq!(identity_seen(&response), Some(IRSA.identity()));
    let calls = sts.calls();
    assert!(!calls.is_empty());
    for (call, status) in &calls {
        assert_eq!(*status, 200);
        assert_eq!(call.method, "GET");
        assert_eq!(call.path, "/");
        assert_eq!(call.header("host").as_deref(), Some(STS_HOST));
        assert_eq!(call.header("accept").as_deref(), Some("application/json"));
        let query = parse_query(&call.query);
        let expected: BTreeMap<String, String> = [
            ("Action", "AssumeRoleWithWebIdentity"),
            ("Version", "2011-06-15"),
            ("RoleArn", APP2_ROLE),
            ("RoleSessionName", APP2_SESSION),
            ("WebIdentityToken", IRSA_TOKEN),
        ]
        .iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect();
        assert_eq!(query, expected, "{}", call.query);
    }
    assert_eq!(sidecar.stat(&refused_stat()), 0);
    drop(sidecar);

    // STS refuses the token: Envoy has no credentials, the guard refuses.
    let asked_before = sts.calls().len();
    let refused_file = tokens.path().join("refused-token");
    write_token(&refused_file, "a-token-sts-refuses");
    let sidecar = sts.start_envoy(&config, &irsa_env(&refused_file));
    let (call, status) = sts
        .wait_call(asked_before)
        .unwrap_or_else(|| panic!("STS was never asked:\n{}", sidecar.log()));
    let query = parse_query(&call.query);
    assert_eq!(query.get("RoleArn").map(String::as_str), Some(APP2_ROLE));
    assert_eq!(
        query.get("WebIdentityToken").map(String::as_str),
        Some("a-token-sts-refuses")
    );
    assert_eq!(status, 403);
    assert_refused(&send_to_app1(&sidecar, "/from-app2"), "STS refused the token");
    assert_eq!(sidecar.wait_stat(&refused_stat(), 1), 1);
    assert!(sidecar.log().contains(&refusal_log_line()), "{}", sidecar.log());

    // Only the signed request reached Lattice.
    assert_eq!(world.reached_lattice(), 1);
    assert_eq!(world.unsigned_at_lattice(), Vec::<Value>::new());
    assert_eq!(world.target.requests_served(), 1);
}
