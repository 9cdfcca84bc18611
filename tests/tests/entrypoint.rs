//! The container image without a container engine: `deploy/entrypoint.sh`
//! (the image's entrypoint) run as the image runs it, with only its
//! environment, this workspace's envoy-gen and the real Envoy 1.40 in place
//! of the image's; and `docker-compose.yml` checked against the Dockerfile,
//! the entrypoint, the spec and lattice-sim's configuration, since it
//! cannot be started here.
//!
//! Everything listens on 127.0.0.1; Envoy signs with credentials from its
//! environment only (`CREDENTIALS_SOURCE=env`), never the default chain.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::app::App;
use e2e::deployment::{lattice_sim_config, RoleKey, AUDIENCE};
use e2e::echo::echoed_headers;
use e2e::envoy::{envoy_binary, filter_wasm, native_module, workspace_root, AwsCredentials};
use e2e::http::{self, Request, Response};
use e2e::idp::TlsIdp;
use e2e::tls::TestCa;
use envoy_gen::model::{Role, System};
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::OnceLock;
use std::time::{Duration, Instant};

const ENTRYPOINT: &str = "deploy/entrypoint.sh";
const HEALTHCHECK: &str = "deploy/healthcheck.sh";
const SPEC: &str = "envoy/examples/reference.yaml";
/// The policies `envoy-gen policies` rendered from `SPEC`, checked against
/// the generator by envoy-gen's golden tests.
const POLICIES: &str = "envoy/generated/reference/policies";
const COMPOSE: &str = "docker-compose.yml";
const COMPOSE_LATTICE_SIM: &str = "deploy/compose/lattice-sim.yaml";

/// Variables Envoy itself reads from the environment the entrypoint hands it.
const ENVOY_CREDENTIAL_VARIABLES: [&str; 3] = ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"];

fn root() -> PathBuf {
    workspace_root()
}

fn read(relative: &str) -> String {
    let path = root().join(relative);
    std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn cargo() -> Command {
    let mut command = Command::new(std::env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    command.current_dir(root());
    command
}

/// envoy-gen as a program (what the image runs): `$ENVOY_GEN_BIN`, or this
/// workspace's, built once per test run.
fn envoy_gen() -> &'static Path {
    static BINARY: OnceLock<PathBuf> = OnceLock::new();
    BINARY.get_or_init(|| {
        if let Some(path) = std::env::var_os("ENVOY_GEN_BIN") {
            return path.into();
        }
        let out = cargo()
            .args(["build", "--quiet", "-p", "envoy-gen", "--bin", "envoy-gen"])
            .args(["--message-format", "json-render-diagnostics"])
            .stderr(Stdio::inherit())
            .output()
            .expect("cargo build -p envoy-gen");
        assert!(out.status.success(), "cargo build -p envoy-gen failed");
        String::from_utf8_lossy(&out.stdout)
            .lines()
            .filter_map(|line| serde_json::from_str::<Value>(line).ok())
            .find(|m| m["reason"] == "compiler-artifact" && m["target"]["name"] == "envoy-gen")
            .and_then(|m| m["executable"].as_str().map(PathBuf::from))
            .expect("cargo named no envoy-gen executable")
    })
}

fn real_envoy() -> PathBuf {
    envoy_binary().unwrap_or_else(|e| panic!("{e}"))
}

fn wasm() -> String {
    filter_wasm().unwrap_or_else(|e| panic!("{e}")).display().to_string()
}

/// `deploy/entrypoint.sh` as the image starts it: exactly `env`, plus PATH,
/// where this workspace keeps Envoy and envoy-gen, and a run directory.
/// `AWS_EC2_METADATA_DISABLED` keeps Envoy off the metadata address even if
/// a configuration asked for the default chain.
fn entrypoint(env: &[(String, String)], run_dir: &Path, envoy: &Path) -> Command {
    entrypoint_command(Command::new(root().join(ENTRYPOINT)), env, run_dir, envoy)
}

/// The entrypoint in a network namespace of its own (`unshare --net`), for
/// `ENVOY_MODE=validate`: Envoy 1.40's validation sends a DNS query for
/// every cluster host, and tests never send anything off the machine.
fn offline_entrypoint(env: &[(String, String)], run_dir: &Path, envoy: &Path) -> Command {
    let mut unshare = Command::new("unshare");
    unshare.args(["--map-root-user", "--net"]).arg(root().join(ENTRYPOINT));
    entrypoint_command(unshare, env, run_dir, envoy)
}

fn entrypoint_command(mut command: Command, env: &[(String, String)], run_dir: &Path, envoy: &Path) -> Command {
    command
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("ENVOY_BIN", envoy)
        .env("ENVOY_GEN_BIN", envoy_gen())
        .env("ENVOY_RUN_DIR", run_dir)
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .stdin(Stdio::null());
    command
}

fn vars(pairs: &[(&str, &str)]) -> Vec<(String, String)> {
    pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect()
}

/// The entrypoint running Envoy as its child. Dropping it kills both.
struct Container {
    child: Child,
    run_dir: tempfile::TempDir,
    log: PathBuf,
    _log_dir: tempfile::TempDir,
}

impl Container {
    fn start(env: &[(String, String)]) -> Container {
        let run_dir = tempfile::tempdir().unwrap();
        let log_dir = tempfile::tempdir().unwrap();
        let log = log_dir.path().join("container.log");
        let file = std::fs::File::create(&log).unwrap();
        let child = entrypoint(env, run_dir.path(), &real_envoy())
            .stdout(file.try_clone().unwrap())
            .stderr(file)
            .spawn()
            .unwrap();
        let mut container = Container {
            child,
            run_dir,
            log,
            _log_dir: log_dir,
        };
        container.wait_ready();
        container
    }

    fn log(&self) -> String {
        std::fs::read_to_string(&self.log).unwrap_or_default()
    }

    /// The admin port Envoy wrote where the entrypoint told it to.
    fn admin_port(&self) -> Option<u16> {
        std::fs::read_to_string(self.run_dir.path().join("admin-address"))
            .ok()
            .and_then(|a| a.trim().rsplit(':').next().and_then(|p| p.parse().ok()))
    }

    fn wait_ready(&mut self) {
        let deadline = Instant::now() + Duration::from_secs(60);
        loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                panic!("the entrypoint exited with {status}:\n{}", self.log());
            }
            let ready = self
                .admin_port()
                .is_some_and(|port| http::get(("127.0.0.1", port), "/ready").is_ok_and(|r| r.status == 200));
            if ready {
                return;
            }
            assert!(
                Instant::now() < deadline,
                "Envoy was not ready in time:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(100));
        }
    }

    /// The bound port of Envoy's listener `name`.
    fn port(&self, name: &str) -> u16 {
        let admin = self.admin_port().unwrap();
        let listeners = http::get(("127.0.0.1", admin), "/listeners?format=json")
            .unwrap()
            .json();
        listeners["listener_statuses"]
            .as_array()
            .unwrap()
            .iter()
            .find(|l| l["name"] == name)
            .and_then(|l| l["local_address"]["socket_address"]["port_value"].as_u64())
            .and_then(|p| u16::try_from(p).ok())
            .unwrap_or_else(|| panic!("no listener {name}: {listeners}"))
    }

    /// The image's HEALTHCHECK, run against this container.
    fn healthy(&self) -> bool {
        Command::new(root().join(HEALTHCHECK))
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .env("ENVOY_RUN_DIR", self.run_dir.path())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .unwrap()
            .success()
    }

    /// The Envoy the entrypoint started (its one Envoy child; while it
    /// drains, the script's timer is another child).
    fn envoy_pid(&self) -> u32 {
        let envoy = real_envoy().canonicalize().unwrap();
        let children = children(self.child.id());
        let envoys: Vec<u32> = children
            .iter()
            .copied()
            .filter(|pid| {
                std::fs::read_link(format!("/proc/{pid}/exe"))
                    .is_ok_and(|exe| exe.canonicalize().ok().as_ref() == Some(&envoy))
            })
            .collect();
        assert_eq!(
            envoys.len(),
            1,
            "the entrypoint's children {children:?} are not one Envoy"
        );
        envoys[0]
    }

    /// Sends the container's stop signal `signals` times, as `docker stop`
    /// would, and waits for the entrypoint to exit: it must exit 0 (Envoy's
    /// status) within `within`, and leave nothing running.
    fn stop(mut self, signals: usize, within: Duration) -> (String, Duration) {
        let envoy = self.envoy_pid();
        let started = Instant::now();
        for _ in 0..signals {
            signal(self.child.id(), "TERM");
            std::thread::sleep(Duration::from_millis(200));
        }
        let status: ExitStatus = loop {
            if let Some(status) = self.child.try_wait().unwrap() {
                break status;
            }
            assert!(
                started.elapsed() < within,
                "the entrypoint did not stop within {within:?} of SIGTERM:\n{}",
                self.log()
            );
            std::thread::sleep(Duration::from_millis(50));
        };
        let took = started.elapsed();
        assert!(
            status.success(),
            "the entrypoint exited with {status} on SIGTERM:\n{}",
            self.log()
        );
        assert!(
            !Path::new(&format!("/proc/{envoy}")).exists() || is_zombie(envoy),
            "Envoy outlived the entrypoint"
        );
        let marker = self.run_dir.path().display().to_string();
        let leftovers: Vec<String> = std::fs::read_dir("/proc")
            .unwrap()
            .filter_map(Result::ok)
            .filter(|e| e.file_name().to_string_lossy().bytes().all(|b| b.is_ascii_digit()))
            .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
            .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
            .filter(|c| c.contains(&marker))
            .collect();
        assert!(leftovers.is_empty(), "processes left running: {leftovers:?}");
        assert!(!self.healthy(), "the healthcheck passes with Envoy stopped");
        (self.log(), took)
    }
}

/// One HTTP/1.1 response with a content-length, read off `stream` (a
/// response is complete before its connection closes).
fn read_response(stream: &mut std::net::TcpStream) -> std::io::Result<String> {
    use std::io::Read;
    let mut data = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        let text = String::from_utf8_lossy(&data).into_owned();
        if let Some(end) = text.find("\r\n\r\n") {
            let length = text[..end]
                .lines()
                .find_map(|l| {
                    l.to_ascii_lowercase()
                        .strip_prefix("content-length:")
                        .map(|v| v.trim().to_string())
                })
                .and_then(|v| v.parse::<usize>().ok())
                .unwrap_or(0);
            if data.len() >= end + 4 + length {
                return Ok(text);
            }
        }
        let n = stream.read(&mut chunk)?;
        if n == 0 {
            return Ok(String::from_utf8_lossy(&data).into_owned());
        }
        data.extend_from_slice(&chunk[..n]);
    }
}

/// The children of process `pid` (Linux: /proc/PID/task/PID/children).
fn children(pid: u32) -> Vec<u32> {
    std::fs::read_to_string(format!("/proc/{pid}/task/{pid}/children"))
        .unwrap_or_default()
        .split_whitespace()
        .filter_map(|p| p.parse().ok())
        .collect()
}

fn is_zombie(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .is_ok_and(|s| s.rsplit(')').next().is_some_and(|r| r.trim_start().starts_with('Z')))
}

fn signal(pid: u32, name: &str) {
    let sent = Command::new("kill")
        .args([&format!("-{name}"), &pid.to_string()])
        .status()
        .unwrap();
    assert!(sent.success(), "kill -{name} {pid} failed");
}

impl Drop for Container {
    fn drop(&mut self) {
        // Envoy first: killing the script alone would orphan it.
        for pid in children(self.child.id()) {
            let _ = Command::new("kill").args(["-KILL", &pid.to_string()]).status();
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn reference_system() -> System {
    let spec = root().join(SPEC);
    envoy_gen::load(Some((&spec, &read(SPEC))), &Default::default()).unwrap_or_else(|e| panic!("{e}"))
}

/// The roles that sign in `system`, in the order the demo lists them:
/// the frontend's, then each service's.
fn signing_roles(system: &System) -> Vec<Role> {
    let mut roles: Vec<Role> = Vec::new();
    for role in system
        .frontend
        .role
        .iter()
        .chain(system.services.iter().filter_map(|s| s.role.as_ref()))
    {
        if !roles.contains(role) {
            roles.push(role.clone());
        }
    }
    roles
}

/// lattice-sim running the reference's committed policies in front of the
/// echo apps, with a fresh key for every role, as `make demo` runs it.
struct Lattice {
    sim: lattice_sim::front::Running,
    keys: Vec<RoleKey>,
    ca: PathBuf,
    _apps: Vec<App>,
    _dir: tempfile::TempDir,
}

impl Lattice {
    fn start() -> Lattice {
        let system = reference_system();
        let account = system.account.clone().unwrap();
        let domain = system.domain.clone().unwrap();
        let keys: Vec<RoleKey> = signing_roles(&system)
            .iter()
            .map(|role| RoleKey::new(role, &account))
            .collect();
        let mut apps = Vec::new();
        let mut targets = BTreeMap::new();
        for service in &system.services {
            let app = App::start(&service.name, None, &domain).unwrap();
            targets.insert(service.name.clone(), format!("http://{}", app.addr));
            apps.push(app);
        }
        let dir = tempfile::tempdir().unwrap();
        let config = lattice_sim_config(&system, &root().join(POLICIES), &targets, &keys).unwrap();
        let config_path = dir.path().join("lattice-sim.yaml");
        std::fs::write(&config_path, format!("{config:#}\n")).unwrap();
        let config = lattice_sim::config::Config::load(&config_path).unwrap();
        let sim = lattice_sim::front::start(config, "127.0.0.1:0").unwrap();
        let ca = dir.path().join("lattice-ca.pem");
        std::fs::write(&ca, &sim.ca_pem).unwrap();
        Lattice {
            sim,
            keys,
            ca,
            _apps: apps,
            _dir: dir,
        }
    }

    fn key(&self, role: &str) -> &RoleKey {
        self.keys.iter().find(|k| k.role.name == role).unwrap()
    }

    /// What every Envoy of the stack is given to reach this lattice-sim.
    fn env(&self, role: &str) -> Vec<(String, String)> {
        let mut env = vars(&[
            ("LATTICE_ENDPOINT", &format!("127.0.0.1:{}", self.sim.addr.port())),
            ("LATTICE_CA", &self.ca.display().to_string()),
            ("CREDENTIALS_SOURCE", "env"),
            ("LISTEN_ADDRESS", "127.0.0.1:0"),
            ("ADMIN_ADDRESS", "127.0.0.1:0"),
            ("ENVOY_CONCURRENCY", "1"),
            ("ENVOY_DRAIN_SECONDS", "1"),
        ]);
        env.extend(self.key(role).credentials.env());
        env
    }
}

fn header<'a>(headers: &'a [(String, String)], name: &str) -> Option<&'a str> {
    headers.iter().find(|(n, _)| n == name).map(|(_, v)| v.as_str())
}

fn caller_of(response: &Response) -> String {
    let body = response.json();
    header(&echoed_headers(&body), "x-amzn-lattice-identity")
        .unwrap_or_else(|| panic!("no identity header: {body}"))
        .to_string()
}

fn assert_secrets_absent(log: &str, credentials: &AwsCredentials, token: &str) {
    for (what, secret) in [
        ("secret access key", credentials.secret_access_key.as_str()),
        ("session token", credentials.session_token.as_str()),
        ("bearer token", token),
    ] {
        assert!(!log.contains(secret), "the container's output shows the {what}:\n{log}");
    }
}

/// A TLS IdP for `api://entrypoint` and the CA file that verifies it.
struct FrontendIdp {
    idp: TlsIdp,
    ca_pem: PathBuf,
    _ca_dir: tempfile::TempDir,
}

impl FrontendIdp {
    fn start() -> FrontendIdp {
        let ca = TestCa::new("entrypoint test IdP CA");
        let idp = TlsIdp::start(&ca, "api://entrypoint", false);
        let ca_dir = tempfile::tempdir().unwrap();
        let ca_pem = ca.write_pem(ca_dir.path(), "idp-ca.pem");
        FrontendIdp {
            idp,
            ca_pem,
            _ca_dir: ca_dir,
        }
    }

    /// A frontend's variables as the CDK context names them, reaching
    /// `lattice` and trusting this IdP for `audiences` (comma-separated).
    fn frontend_env(&self, lattice: &Lattice, audiences: &str) -> Vec<(String, String)> {
        let mut env = lattice.env("frontend");
        env.extend(vars(&[
            ("JWT_ISSUER", &self.idp.url),
            ("JWT_JWKS", &self.idp.jwks_uri()),
            ("JWT_AUDIENCE", audiences),
            ("JWKS_CA", &self.ca_pem.display().to_string()),
            ("APP_DOMAIN", "example.internal"),
            ("AWS_REGION", "us-west-2"),
            ("JWT_SCOPES_WASM", &wasm()),
        ]));
        env
    }
}

/// The frontend from the variables the reference's CDK context names (no
/// spec file): it checks tokens against a JWKS served over verified TLS,
/// signs as its role, and stops when its process is signalled.
#[test]
fn frontend_from_cdk_variables_checks_tokens_signs_and_stops() {
    let lattice = Lattice::start();
    let idp = FrontendIdp::start();
    let mut env = idp.frontend_env(&lattice, "api://other,api://entrypoint");
    env.extend(vars(&[("ENABLE_OAUTH", "True")]));
    let container = Container::start(&env);
    assert!(container.healthy(), "the image's healthcheck fails on a ready Envoy");
    let port = container.port("frontend");

    let response = Request::get("/app1").send(("127.0.0.1", port)).unwrap();
    assert_eq!(response.status, 401, "{}", response.text());

    let token = idp
        .idp
        .token(json!({"sub": "alice@example.com", "scope": "openid test.all"}));
    let response = Request::get("/app1/hello")
        .bearer(&token)
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(response.json()["webserver"], "app1");
    let frontend = lattice.key("frontend");
    assert!(
        caller_of(&response).starts_with(&format!("Principal={};", frontend.session_arn)),
        "{}",
        caller_of(&response)
    );
    let headers = echoed_headers(&response.json());
    assert_eq!(header(&headers, "x-jwt-subject"), Some("alice@example.com"));
    assert_eq!(header(&headers, "x-jwt-scope-test.all"), Some("true"));

    let (log, _) = container.stop(1, Duration::from_secs(15));
    assert!(log.contains("entrypoint: rendered the frontend configuration"), "{log}");
    assert!(log.contains("entrypoint: stop signal: draining for 1s"), "{log}");
    assert_secrets_absent(&log, &frontend.credentials, &token);
}

/// The container's stop signal drains before Envoy stops: readiness fails
/// at once, a request in flight completes (with `connection: close`), and
/// Envoy is stopped only after ENVOY_DRAIN_SECONDS.
#[test]
fn a_stop_signal_lets_requests_in_flight_complete() {
    use std::io::Write;
    let lattice = Lattice::start();
    let idp = FrontendIdp::start();
    let mut env = idp.frontend_env(&lattice, "api://entrypoint");
    env.retain(|(name, _)| name != "ENVOY_DRAIN_SECONDS");
    env.extend(vars(&[("ENVOY_DRAIN_SECONDS", "4")]));
    let container = Container::start(&env);
    let port = container.port("frontend");
    // Envoy 1.40 keeps a drained HTTP/1.1 connection open after its
    // `connection: close` answer until the listener closes, so answers are
    // read by their content-length, never to the end of the connection.
    let ready = || {
        let mut probe = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
        probe.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        probe
            .write_all(b"GET /ready HTTP/1.1\r\nhost: frontend.example.internal\r\n\r\n")
            .unwrap();
        read_response(&mut probe).unwrap()
    };
    assert!(ready().starts_with("HTTP/1.1 200 "));

    // A request whose body is half sent when the stop signal comes.
    let token = idp.idp.token(json!({"sub": "alice@example.com", "scope": "test.all"}));
    let mut stream = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    stream.set_read_timeout(Some(Duration::from_secs(20))).unwrap();
    write!(
        stream,
        "POST /app1/in-flight HTTP/1.1\r\nhost: frontend.example.internal\r\nauthorization: Bearer {token}\r\n\
         content-type: text/plain\r\ncontent-length: 10\r\n\r\nhello"
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(300));
    let entrypoint = container.child.id();
    signal(entrypoint, "TERM");
    let signalled = Instant::now();

    let deadline = Instant::now() + Duration::from_secs(3);
    while !container.log().contains("entrypoint: stop signal: draining for 4s") {
        assert!(Instant::now() < deadline, "no drain started:\n{}", container.log());
        std::thread::sleep(Duration::from_millis(20));
    }
    let draining = ready();
    assert!(
        draining.starts_with("HTTP/1.1 503 "),
        "/ready while draining: {draining}"
    );
    stream.write_all(b"world").unwrap();
    let answer = read_response(&mut stream).unwrap_or_else(|e| panic!("reading the answer: {e}\n{}", container.log()));
    assert!(
        answer.starts_with("HTTP/1.1 200 "),
        "the request in flight was cut: {answer}\n{}",
        container.log()
    );
    assert!(
        answer.to_ascii_lowercase().contains("\r\nconnection: close\r\n"),
        "a draining Envoy does not ask the client to close: {answer}"
    );
    assert!(answer.contains("\"webserver\":\"app1\""), "{answer}");
    assert!(
        signalled.elapsed() < Duration::from_secs(3),
        "the in-flight request took until the end of the drain"
    );
    // New connections are still served until the drain ends.
    assert!(ready().starts_with("HTTP/1.1 503 "));

    let (log, _) = container.stop(0, Duration::from_secs(20));
    let took = signalled.elapsed();
    assert!(
        took >= Duration::from_secs(4),
        "Envoy stopped {took:?} after the signal, before ENVOY_DRAIN_SECONDS=4:\n{log}"
    );
    assert!(log.contains("entrypoint: stop signal: draining for 4s"), "{log}");
}

/// `ENABLE_OAUTH=false` needs no issuer and renders a frontend without
/// token checks; `ENVOY_MODE=validate` has Envoy check it and exit.
#[test]
fn frontend_without_oauth_validates_in_the_real_envoy() {
    let run_dir = tempfile::tempdir().unwrap();
    let env = vars(&[
        ("ENABLE_OAUTH", "false"),
        ("AWS_REGION", "eu-west-1"),
        ("APP_DOMAIN", "svc.example.com"),
        ("SERVICES", "orders,billing=billing.example.net"),
        ("DEFAULT_SERVICE", "billing"),
        ("JWT_SCOPES_WASM", &wasm()),
        ("ENVOY_MODE", "validate"),
    ]);
    let out = offline_entrypoint(&env, run_dir.path(), &real_envoy())
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{output}");
    assert!(output.contains("OK"), "{output}");
    let config = std::fs::read_to_string(run_dir.path().join("envoy.yaml")).unwrap();
    assert!(!config.contains("envoy.filters.http.jwt_authn"), "{config}");
    assert!(config.contains("billing.example.net") && config.contains("orders.svc.example.com"));
    assert!(config.contains("eu-west-1"));
}

/// Cognito access tokens carry `client_id`, not `aud`: JWT_CLIENT_ID
/// (comma-separated) takes JWT_AUDIENCE's place, and the rendered filter
/// accepts exactly those client ids.
#[test]
fn cognito_client_ids_come_from_jwt_client_id() {
    let run_dir = tempfile::tempdir().unwrap();
    let env = vars(&[
        (
            "JWT_ISSUER",
            "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_EXAMPLE",
        ),
        (
            "JWT_JWKS",
            "https://cognito-idp.us-west-2.amazonaws.com/us-west-2_EXAMPLE/.well-known/jwks.json",
        ),
        ("JWT_CLIENT_ID", "1example23456789,2example34567890"),
        ("AWS_REGION", "us-west-2"),
        ("APP_DOMAIN", "example.internal"),
        ("JWT_SCOPES_WASM", &wasm()),
        ("ENVOY_MODE", "validate"),
    ]);
    let out = offline_entrypoint(&env, run_dir.path(), &real_envoy())
        .output()
        .unwrap();
    let output = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert!(out.status.success(), "{output}");
    let config = std::fs::read_to_string(run_dir.path().join("envoy.yaml")).unwrap();
    assert!(
        config.contains(r#"\"client_ids\":{\"jwt\":[\"1example23456789\",\"2example34567890\"]}"#),
        "{config}"
    );
    assert!(!config.contains("audiences: ["), "{config}");
}

/// A spec whose services have no custom domain name (no `domain`, no
/// `host`): Lattice generates their DNS names when the stack creates them,
/// and the stack hands them to every Envoy container in
/// LATTICE_SERVICE_HOSTS. app2 calls app1.
const GENERATED_NAMES_SPEC: &str = "\
region: us-west-2
account: \"111122223333\"
oauth: false
frontend: {role: frontend}
services:
  - name: app1
    role: app1
    callers: [{from: frontend}, {from: app2}]
  - name: app2
    role: app2
    calls: [app1]
    callers: [{from: frontend}]
";
const APP1_HOST: &str = "app1-0a1b2c3d4e5f60001.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
const APP2_HOST: &str = "app2-0a1b2c3d4e5f60002.7d67968.vpc-lattice-svcs.us-west-2.on.aws";

/// The frontend and app2's sidecar render from such a spec with the hosts
/// from LATTICE_SERVICE_HOSTS, and the real Envoy accepts both
/// configurations; without the variable neither container starts, and the
/// message says what to set.
#[test]
fn services_without_a_custom_domain_name_take_their_hosts_from_lattice_service_hosts() {
    let spec_dir = tempfile::tempdir().unwrap();
    let spec = spec_dir.path().join("spec.yaml");
    std::fs::write(&spec, GENERATED_NAMES_SPEC).unwrap();
    let hosts = format!("app1={APP1_HOST},app2={APP2_HOST}");
    let roles = [
        vec![("ENVOY_ROLE", "frontend")],
        vec![("ENVOY_ROLE", "sidecar"), ("SERVICE_NAME", "app2")],
    ];
    for role in &roles {
        let spec = spec.display().to_string();
        let wasm = wasm();
        let base: Vec<(&str, &str)> = role
            .iter()
            .copied()
            .chain([("SPEC_FILE", spec.as_str()), ("JWT_SCOPES_WASM", wasm.as_str())])
            .collect();

        let run_dir = tempfile::tempdir().unwrap();
        let mut env = vars(&base);
        env.extend(vars(&[("LATTICE_SERVICE_HOSTS", &hosts), ("ENVOY_MODE", "validate")]));
        let out = offline_entrypoint(&env, run_dir.path(), &real_envoy())
            .output()
            .unwrap();
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{role:?}: {output}");
        assert!(output.contains("OK"), "{role:?}: {output}");
        let config = std::fs::read_to_string(run_dir.path().join("envoy.yaml")).unwrap();
        // app1: connected to, verified and signed for under its generated name.
        for expected in [
            format!("sni: \"{APP1_HOST}\""),
            format!("matcher: {{exact: \"{APP1_HOST}\"}}"),
            format!("host_rewrite_literal: \"{APP1_HOST}\""),
        ] {
            assert!(config.contains(&expected), "{role:?}: no {expected} in\n{config}");
        }
        // The frontend routes to app2 as well; app2's sidecar never to app2.
        let frontend = role.contains(&("ENVOY_ROLE", "frontend"));
        assert_eq!(
            config.contains(&format!("host_rewrite_literal: \"{APP2_HOST}\"")),
            frontend,
            "{role:?}\n{config}"
        );
        assert_eq!(config.contains(APP2_HOST), frontend, "{role:?}\n{config}");

        // Without the variable: refused, naming the service and the variable.
        let run_dir = tempfile::tempdir().unwrap();
        let mut env = vars(&base);
        env.push(("ENVOY_MODE".into(), "validate".into()));
        let out = offline_entrypoint(&env, run_dir.path(), &real_envoy())
            .output()
            .unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{role:?}: {stderr}");
        for expected in [
            "services[0].host: service `app1` has no host: give `host`, a `domain`, or --service-host app1=HOST \
             (the Lattice service's DNS name; in the image: LATTICE_SERVICE_HOSTS)",
            "--service-host LATTICE_SERVICE_HOSTS",
        ] {
            assert!(stderr.contains(expected), "{role:?}: no `{expected}` in\n{stderr}");
        }
        // The sidecar needs only app1's host; the frontend needs app2's too.
        assert_eq!(
            stderr.contains("service `app2` has no host"),
            frontend,
            "{role:?}: {stderr}"
        );
        assert!(!run_dir.path().join("envoy.yaml").exists(), "{role:?}");
    }
}

/// The same image as app2's sidecar: the spec mounted as a file, the
/// service named; it signs app2's calls as app2's role and refuses the
/// hosts app2 may not call.
#[test]
fn sidecar_from_a_mounted_spec_signs_as_its_service() {
    let lattice = Lattice::start();
    let mut env = lattice.env("app2");
    env.extend(vars(&[
        ("ENVOY_ROLE", "sidecar"),
        ("SERVICE_NAME", "app2"),
        ("SPEC_FILE", &root().join(SPEC).display().to_string()),
        ("JWT_SCOPES_WASM", &wasm()),
        ("ENVOY_DRAIN_SECONDS", "60"),
    ]));
    let container = Container::start(&env);
    assert!(container.healthy());
    let port = container.port("sidecar");

    let response = Request::get("/app1/called-by-app2")
        .header("host", "app1.example.internal")
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let app2 = lattice.key("app2");
    assert!(caller_of(&response).starts_with(&format!("Principal={};", app2.session_arn)));

    let response = Request::get("/app3")
        .header("host", "app3.example.internal")
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 403);
    assert!(response.text().contains("explicit deny"), "{}", response.text());

    let response = Request::get("/")
        .header("host", "app9.example.internal")
        .send(("127.0.0.1", port))
        .unwrap();
    assert_eq!(response.status, 403);
    assert!(
        response.text().contains("refused by the sidecar of app2"),
        "{}",
        response.text()
    );

    // A second stop signal cuts the 60 s drain short.
    let (log, took) = container.stop(2, Duration::from_secs(30));
    assert!(took < Duration::from_secs(30));
    assert!(log.contains("entrypoint: rendered the sidecar configuration"), "{log}");
    assert!(
        log.contains("entrypoint: second stop signal: stopping Envoy now"),
        "{log}"
    );
    assert_secrets_absent(&log, &app2.credentials, "no token in this test");
}

/// `JWT_SCOPES_FILTER=native` applies to the sidecar too: its signing guards
/// are the native module's, and nothing in its configuration loads V8.
#[test]
fn a_native_sidecar_signs_as_its_service_without_wasm() {
    let lattice = Lattice::start();
    let module = native_module().unwrap_or_else(|e| panic!("{e}"));
    let mut env = lattice.env("app2");
    env.extend(vars(&[
        ("ENVOY_ROLE", "sidecar"),
        ("SERVICE_NAME", "app2"),
        ("SPEC_FILE", &root().join(SPEC).display().to_string()),
        ("JWT_SCOPES_FILTER", "native"),
        ("JWT_SCOPES_NATIVE_MODULE", &module.display().to_string()),
        ("ENVOY_DRAIN_SECONDS", "0"),
    ]));
    let container = Container::start(&env);
    let config = std::fs::read_to_string(container.run_dir.path().join("envoy.yaml")).unwrap();
    assert!(config.contains("filter_name: sign_guard"), "{config}");
    for wasm in ["envoy.filters.http.wasm", "envoy.wasm.runtime.v8"] {
        assert!(!config.contains(wasm), "`{wasm}` in\n{config}");
    }
    let response = Request::get("/app1/called-by-app2")
        .header("host", "app1.example.internal")
        .send(("127.0.0.1", container.port("sidecar")))
        .unwrap();
    assert_eq!(response.status, 200, "{}", response.text());
    let app2 = lattice.key("app2");
    assert!(caller_of(&response).starts_with(&format!("Principal={};", app2.session_arn)));
    let (log, _) = container.stop(1, Duration::from_secs(30));
    assert_secrets_absent(&log, &app2.credentials, "no token in this test");
}

/// A variable that is missing, malformed or meant for the other role stops
/// the container with a message naming it, before Envoy is started and
/// before any configuration is written; no run prints the secret key.
#[test]
fn a_missing_or_invalid_variable_stops_the_container_naming_it() {
    const SECRET: &str = "entrypoint-test-secret-that-must-never-be-printed";
    let fake_dir = tempfile::tempdir().unwrap();
    let fake_envoy = fake_dir.path().join("envoy");
    std::fs::write(&fake_envoy, "#!/bin/sh\ntouch \"$0.started\"\n").unwrap();
    std::fs::set_permissions(&fake_envoy, std::fs::Permissions::from_mode(0o755)).unwrap();
    let started = fake_dir.path().join("envoy.started");
    let spec_path = root().join(SPEC).display().to_string();
    let spec = spec_path.as_str();
    let wasm = wasm();
    let oauth = [
        ("JWT_ISSUER", "https://idp.example.com"),
        ("JWT_JWKS", "https://idp.example.com/keys"),
        ("JWT_AUDIENCE", "api"),
        ("AWS_REGION", "us-west-2"),
        ("APP_DOMAIN", "example.internal"),
    ];
    let without = |name: &str| -> Vec<(&str, &str)> { oauth.iter().copied().filter(|(n, _)| *n != name).collect() };
    let with = |extra: &[(&'static str, &'static str)]| -> Vec<(&str, &str)> {
        oauth.iter().copied().chain(extra.iter().copied()).collect()
    };
    let cases: Vec<(Vec<(&str, &str)>, &str)> = vec![
        (
            without("JWT_ISSUER"),
            "JWT_ISSUER is required when ENABLE_OAUTH is true",
        ),
        (without("JWT_JWKS"), "JWT_JWKS is required when ENABLE_OAUTH is true"),
        (
            without("JWT_AUDIENCE"),
            "JWT_AUDIENCE is required when ENABLE_OAUTH is true and no SPEC_FILE names an issuer (accepted \
             audiences, comma-separated; or JWT_CLIENT_ID",
        ),
        (
            without("AWS_REGION"),
            "AWS_REGION is required when no SPEC_FILE gives the region",
        ),
        (with(&[("JWT_AUDIENCE", "")]), "JWT_AUDIENCE is required"),
        (with(&[("ENABLE_OAUTH", "yes")]), "ENABLE_OAUTH=yes: use true or false"),
        (
            vec![
                ("ENABLE_OAUTH", "false"),
                ("AWS_REGION", "us-west-2"),
                ("JWT_ISSUER", "https://x"),
            ],
            "JWT_ISSUER is set but ENABLE_OAUTH is false",
        ),
        (
            with(&[("ENVOY_ROLE", "edge")]),
            "ENVOY_ROLE=edge: use frontend or sidecar",
        ),
        (
            with(&[("SERVICE_NAME", "app2")]),
            "SERVICE_NAME applies to ENVOY_ROLE=sidecar only",
        ),
        (
            with(&[("JWT_AUDIENCE", "a,,b")]),
            "JWT_AUDIENCE=a,,b: an entry is empty",
        ),
        (with(&[("JWT_CLIENT_ID", ",c")]), "JWT_CLIENT_ID=,c: an entry is empty"),
        (
            with(&[("JWT_CLIENT_ID", "c1")]),
            "give `audiences` or `client_ids`, not both",
        ),
        (
            vec![
                ("ENABLE_OAUTH", "false"),
                ("AWS_REGION", "us-west-2"),
                ("JWT_CLIENT_ID", "c1"),
            ],
            "JWT_CLIENT_ID is set but ENABLE_OAUTH is false",
        ),
        (
            with(&[("SERVICES", "app1, app2")]),
            "SERVICES: entry ` app2` contains white space",
        ),
        (
            with(&[("SPEC_FILE", "/nonexistent/spec.yaml")]),
            "SPEC_FILE=/nonexistent/spec.yaml: no readable file",
        ),
        (
            with(&[("LATTICE_CA", "/nonexistent/ca.pem")]),
            "LATTICE_CA=/nonexistent/ca.pem: no readable file",
        ),
        (
            with(&[("JWKS_CA", "/nonexistent/ca.pem")]),
            "JWKS_CA=/nonexistent/ca.pem: no readable file",
        ),
        (
            with(&[("LATTICE_SERVICE_HOSTS", "app1=a.example.com,app2")]),
            "LATTICE_SERVICE_HOSTS: entry `app2` is not NAME=HOST",
        ),
        (
            with(&[("LATTICE_SERVICE_HOSTS", "app1=a.example.com,,app2=b.example.com")]),
            "LATTICE_SERVICE_HOSTS=app1=a.example.com,,app2=b.example.com: an entry is empty",
        ),
        (
            vec![
                ("ENVOY_ROLE", "sidecar"),
                ("SERVICE_NAME", "app2"),
                ("SPEC_FILE", spec),
                ("LATTICE_SERVICE_HOSTS", "=b.example.com"),
            ],
            "LATTICE_SERVICE_HOSTS: entry `=b.example.com` is not NAME=HOST",
        ),
        (
            with(&[("CREDENTIALS_SOURCE", "instance")]),
            "--credentials CREDENTIALS_SOURCE",
        ),
        (
            with(&[("CREDENTIALS_SOURCE", "env"), ("AWS_ACCESS_KEY_ID", "")]),
            "AWS_ACCESS_KEY_ID is required when CREDENTIALS_SOURCE=env",
        ),
        (
            with(&[("CREDENTIALS_SOURCE", "container")]),
            "CREDENTIALS_SOURCE=container, but neither AWS_CONTAINER_CREDENTIALS_RELATIVE_URI",
        ),
        (with(&[("ENVOY_LOG_LEVEL", "debug")]), "ENVOY_LOG_LEVEL=debug: refused"),
        (with(&[("ENVOY_LOG_LEVEL", "trace")]), "ENVOY_LOG_LEVEL=trace: refused"),
        (with(&[("ENVOY_MODE", "init_only")]), "ENVOY_MODE=init_only: use serve"),
        (
            with(&[("ENVOY_CONCURRENCY", "0")]),
            "ENVOY_CONCURRENCY=0: use a positive whole number",
        ),
        (
            with(&[("ENVOY_DRAIN_SECONDS", "5s")]),
            "ENVOY_DRAIN_SECONDS=5s: use a whole number",
        ),
        (
            with(&[("JWT_SCOPES_WASM", "/nonexistent.wasm")]),
            "JWT_SCOPES_WASM=/nonexistent.wasm: no readable file",
        ),
        (
            with(&[("ENVOY_GEN_BIN", "/nonexistent/envoy-gen")]),
            "ENVOY_GEN_BIN=/nonexistent/envoy-gen: no such",
        ),
        (
            vec![("ENVOY_ROLE", "sidecar"), ("SPEC_FILE", spec)],
            "SERVICE_NAME is required for ENVOY_ROLE=sidecar",
        ),
        (
            vec![("ENVOY_ROLE", "sidecar"), ("SERVICE_NAME", "app2")],
            "SPEC_FILE is required for ENVOY_ROLE=sidecar",
        ),
        (
            vec![
                ("ENVOY_ROLE", "sidecar"),
                ("SERVICE_NAME", "app2"),
                ("SPEC_FILE", spec),
                ("JWT_ISSUER", "https://x"),
            ],
            "JWT_ISSUER applies to ENVOY_ROLE=frontend only",
        ),
        // The filter build is both roles' (the sidecar's signing guards).
        (
            vec![
                ("ENVOY_ROLE", "sidecar"),
                ("SERVICE_NAME", "app2"),
                ("SPEC_FILE", spec),
                ("JWT_SCOPES_FILTER", "v8"),
            ],
            "JWT_SCOPES_FILTER=v8: use wasm (portable) or native",
        ),
        (
            vec![
                ("ENVOY_ROLE", "sidecar"),
                ("SERVICE_NAME", "app2"),
                ("SPEC_FILE", spec),
                ("JWT_SCOPES_NATIVE_MODULE", "/nonexistent.so"),
            ],
            "JWT_SCOPES_NATIVE_MODULE=/nonexistent.so: no readable file",
        ),
        // envoy-gen's own checks, after the entrypoint's: still nothing starts.
        (
            with(&[("JWT_ISSUER", "not a url")]),
            "envoy-gen could not render the frontend configuration",
        ),
        (
            vec![("ENVOY_ROLE", "sidecar"), ("SERVICE_NAME", "app9"), ("SPEC_FILE", spec)],
            "envoy-gen could not render the sidecar configuration",
        ),
        (
            with(&[("LATTICE_SERVICE_HOSTS", "app9=x.example.com")]),
            "error: --service-host: `app9` is not a service of the spec (app1, app2, app3)",
        ),
        (
            vec![
                ("ENVOY_ROLE", "sidecar"),
                ("SERVICE_NAME", "app2"),
                ("SPEC_FILE", spec),
                ("LATTICE_SERVICE_HOSTS", "app1=bad_host"),
            ],
            "error: --service-host: `bad_host` (service `app1`) is not a DNS name",
        ),
    ];
    for (given, expected) in cases {
        let run_dir = tempfile::tempdir().unwrap();
        let mut env = vars(&given);
        if !given.iter().any(|(n, _)| *n == "JWT_SCOPES_WASM") {
            env.push(("JWT_SCOPES_WASM".into(), wasm.clone()));
        }
        env.push(("AWS_SECRET_ACCESS_KEY".into(), SECRET.into()));
        let out = entrypoint(&env, run_dir.path(), &fake_envoy).output().unwrap();
        let stdout = String::from_utf8_lossy(&out.stdout);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert!(!out.status.success(), "{given:?}: exited 0\n{stderr}");
        assert_eq!(out.status.code(), Some(2), "{given:?}: {stderr}");
        assert!(
            stderr.contains(expected),
            "{given:?}: expected `{expected}` in:\n{stderr}"
        );
        assert!(!started.exists(), "{given:?}: Envoy was started");
        assert!(
            !run_dir.path().join("envoy.yaml").exists(),
            "{given:?}: a configuration was written"
        );
        assert!(
            !stdout.contains(SECRET) && !stderr.contains(SECRET),
            "{given:?}: the secret was printed"
        );
    }
}

// ---- docker-compose.yml, checked against what it names ----

/// A service of the compose file.
struct Service<'a> {
    name: &'a str,
    body: &'a Value,
}

impl Service<'_> {
    fn target(&self) -> &str {
        self.body["build"]["target"].as_str().unwrap_or_default()
    }

    fn env(&self) -> BTreeMap<String, String> {
        match &self.body["environment"] {
            Value::Null => BTreeMap::new(),
            Value::Object(map) => map
                .iter()
                .map(|(k, v)| {
                    (
                        k.clone(),
                        v.as_str()
                            .unwrap_or_else(|| panic!("{}: {k}: not a string", self.name))
                            .into(),
                    )
                })
                .collect(),
            other => panic!("{}: environment must be a mapping: {other}", self.name),
        }
    }

    /// (source, target, read-only) of each volume entry `SOURCE:TARGET[:ro]`.
    fn mounts(&self) -> Vec<(String, String, bool)> {
        self.body["volumes"]
            .as_array()
            .map(|volumes| {
                volumes
                    .iter()
                    .map(|v| {
                        let text = v
                            .as_str()
                            .unwrap_or_else(|| panic!("{}: volume {v}: use SOURCE:TARGET", self.name));
                        let parts: Vec<&str> = text.split(':').collect();
                        match parts.as_slice() {
                            [source, target] => (source.to_string(), target.to_string(), false),
                            [source, target, "ro"] => (source.to_string(), target.to_string(), true),
                            _ => panic!("{}: volume `{text}`: use SOURCE:TARGET[:ro]", self.name),
                        }
                    })
                    .collect()
            })
            .unwrap_or_default()
    }

    /// The command as words (a `sh -c` script split on white space).
    fn words(&self) -> Vec<String> {
        let command: Vec<&str> = self.body["command"]
            .as_array()
            .map(|c| c.iter().map(|w| w.as_str().unwrap()).collect())
            .unwrap_or_default();
        match command.as_slice() {
            ["sh", "-c", script] => script.split_whitespace().map(String::from).collect(),
            words => words.iter().map(|w| w.to_string()).collect(),
        }
    }

    /// The programs the command runs: its first word, or the first word of
    /// each `&&` step of a `sh -c` script (after `exec`).
    fn programs(&self) -> Vec<String> {
        let command: Vec<&str> = self.body["command"]
            .as_array()
            .map(|c| c.iter().map(|w| w.as_str().unwrap()).collect())
            .unwrap_or_default();
        match command.as_slice() {
            ["sh", "-c", script] => script
                .split("&&")
                .filter_map(|step| {
                    let mut words = step.split_whitespace().skip_while(|w| *w == "exec");
                    words.next().map(String::from)
                })
                .collect(),
            [program, ..] => vec![program.to_string()],
            [] => Vec::new(),
        }
    }

    /// The value after `flag` in the command.
    fn flag(&self, flag: &str) -> Option<String> {
        let words = self.words();
        words
            .iter()
            .position(|w| w == flag)
            .and_then(|i| words.get(i + 1).cloned())
    }

    /// The local file or directory behind `container_path`, through this
    /// service's bind mounts.
    fn local(&self, container_path: &str) -> Option<PathBuf> {
        self.mounts()
            .into_iter()
            .filter(|(source, _, _)| source.starts_with("./"))
            .find_map(|(source, target, _)| {
                let rest = container_path.strip_prefix(&target)?;
                let local = root().join(&source[2..]);
                match rest.strip_prefix('/') {
                    Some(inside) => Some(local.join(inside)),
                    None => rest.is_empty().then_some(local),
                }
            })
    }

    /// The named volume and its mount point holding `container_path`.
    fn volume_holding(&self, container_path: &str) -> Option<(String, String, bool)> {
        self.mounts()
            .into_iter()
            .filter(|(source, _, _)| !source.starts_with("./"))
            .find(|(_, target, _)| container_path.starts_with(&format!("{target}/")))
    }
}

struct Compose {
    file: Value,
}

impl Compose {
    fn load() -> Compose {
        Compose {
            file: serde_saphyr::from_str(&read(COMPOSE)).unwrap_or_else(|e| panic!("{COMPOSE}: {e}")),
        }
    }

    fn services(&self) -> Vec<Service<'_>> {
        self.file["services"]
            .as_object()
            .unwrap()
            .iter()
            .map(|(name, body)| Service { name, body })
            .collect()
    }

    fn service(&self, name: &str) -> Service<'_> {
        self.services()
            .into_iter()
            .find(|s| s.name == name)
            .unwrap_or_else(|| panic!("{COMPOSE} has no service {name}"))
    }

    /// The Envoy containers: the services built from the image's runtime target.
    fn envoys(&self) -> Vec<Service<'_>> {
        self.services()
            .into_iter()
            .filter(|s| s.target() == "runtime")
            .collect()
    }

    /// The service running the echo app `name`.
    fn app(&self, name: &str) -> Service<'_> {
        self.services()
            .into_iter()
            .find(|s| {
                s.programs().first().is_some_and(|p| p == "echo-app") && s.flag("--name").as_deref() == Some(name)
            })
            .unwrap_or_else(|| panic!("{COMPOSE}: no echo-app service runs app {name}"))
    }
}

/// The Dockerfile's instructions, continuation lines joined, comments dropped.
fn dockerfile() -> Vec<String> {
    let mut lines = Vec::new();
    let mut current = String::new();
    for line in read("Dockerfile").lines() {
        let line = line.trim();
        if line.starts_with('#') || (line.is_empty() && current.is_empty()) {
            continue;
        }
        match line.strip_suffix('\\') {
            Some(part) => current.push_str(part),
            None => {
                current.push_str(line);
                lines.push(std::mem::take(&mut current));
            }
        }
    }
    lines
}

/// The variables the image's runtime stage sets (`ENV NAME=VALUE`): every
/// container starts with them, under what compose or a task definition sets.
fn image_env() -> Vec<(String, String)> {
    stage(&dockerfile(), "runtime")
        .iter()
        .filter_map(|l| l.strip_prefix("ENV "))
        .map(|assignment| {
            let (name, value) = assignment
                .split_once('=')
                .unwrap_or_else(|| panic!("ENV {assignment}: write ENV NAME=VALUE"));
            (name.to_string(), value.to_string())
        })
        .collect()
}

/// The instructions of stage `name` (from its FROM to the next).
fn stage(lines: &[String], name: &str) -> Vec<String> {
    let start = lines
        .iter()
        .position(|l| l.starts_with("FROM ") && l.ends_with(&format!(" AS {name}")))
        .unwrap_or_else(|| panic!("the Dockerfile has no stage {name}"));
    lines[start..]
        .iter()
        .enumerate()
        .take_while(|(i, l)| *i == 0 || !l.starts_with("FROM "))
        .map(|(_, l)| l.clone())
        .collect()
}

fn arg_default(lines: &[String], name: &str) -> String {
    lines
        .iter()
        .find_map(|l| l.strip_prefix(&format!("ARG {name}=")))
        .unwrap_or_else(|| panic!("the Dockerfile has no ARG {name}"))
        .to_string()
}

/// `COPY ... SOURCE DESTINATION`: the destination of the copy of `source`.
fn copy_destination(lines: &[String], source: &str) -> String {
    lines
        .iter()
        .filter(|l| l.starts_with("COPY "))
        .find_map(|l| {
            let words: Vec<&str> = l.split_whitespace().collect();
            words.contains(&source).then(|| words.last().unwrap().to_string())
        })
        .unwrap_or_else(|| panic!("the Dockerfile copies no {source}"))
}

/// The variables the entrypoint reads (`$NAME` or `${NAME...}`).
fn entrypoint_variables() -> BTreeSet<String> {
    let script = read(ENTRYPOINT);
    let mut names = BTreeSet::new();
    for (i, _) in script.match_indices('$') {
        let rest = script[i + 1..].trim_start_matches('{');
        let name: String = rest
            .chars()
            .take_while(|c| c.is_ascii_uppercase() || c.is_ascii_digit() || *c == '_')
            .collect();
        if name.len() > 1 {
            names.insert(name);
        }
    }
    // Variables checked by name (`given NAME`, `require NAME ...`).
    let words: Vec<&str> = script.split_whitespace().collect();
    for pair in words.windows(2) {
        let name = pair[1].trim_end_matches(';');
        if ["given", "require"].contains(&pair[0])
            && name
                .bytes()
                .all(|b| b.is_ascii_uppercase() || b.is_ascii_digit() || b == b'_')
        {
            names.insert(name.to_string());
        }
    }
    names
}

/// The workspace's binaries (`cargo metadata`).
fn workspace_binaries() -> BTreeSet<String> {
    let out = cargo()
        .args(["metadata", "--no-deps", "--format-version", "1", "--offline"])
        .output()
        .unwrap();
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let metadata: Value = serde_json::from_slice(&out.stdout).unwrap();
    metadata["packages"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|p| p["targets"].as_array().unwrap().iter())
        .filter(|t| t["kind"].as_array().unwrap().iter().any(|k| k == "bin"))
        .map(|t| t["name"].as_str().unwrap().to_string())
        .collect()
}

/// The files, mounts, ports, images and variables docker-compose.yml
/// names are the ones the Dockerfile builds, the entrypoint reads, the
/// repository holds or a service of the stack writes.
#[test]
fn docker_compose_names_only_what_exists() {
    let compose = Compose::load();
    let services = compose.services();
    let names: BTreeSet<&str> = services.iter().map(|s| s.name).collect();
    let volumes: BTreeSet<&str> = compose.file["volumes"]
        .as_object()
        .unwrap()
        .keys()
        .map(String::as_str)
        .collect();
    let docker = dockerfile();
    let runtime = stage(&docker, "runtime");
    let stages: BTreeSet<String> = docker
        .iter()
        .filter(|l| l.starts_with("FROM "))
        .filter_map(|l| l.rsplit_once(" AS ").map(|(_, s)| s.to_string()))
        .collect();
    for s in &services {
        assert_eq!(
            s.body["build"]["context"], ".",
            "{}: the build context is the repository",
            s.name
        );
        assert!(
            stages.contains(s.target()),
            "{}: no Dockerfile stage {}",
            s.name,
            s.target()
        );
        for dependency in s.body["depends_on"].as_object().into_iter().flat_map(|d| d.keys()) {
            assert!(
                names.contains(dependency.as_str()),
                "{}: depends on unknown {dependency}",
                s.name
            );
        }
        if let Some(mode) = s.body["network_mode"].as_str() {
            let shared = mode.strip_prefix("service:").unwrap();
            assert!(
                names.contains(shared),
                "{}: network_mode names unknown {shared}",
                s.name
            );
        }
        for (source, target, _) in s.mounts() {
            assert!(target.starts_with('/'), "{}: mount target {target}", s.name);
            match source.strip_prefix("./") {
                Some(path) => assert!(root().join(path).exists(), "{}: mounts missing {source}", s.name),
                None => {
                    assert!(
                        volumes.contains(source.as_str()),
                        "{}: undeclared volume {source}",
                        s.name
                    );
                    // A new volume takes the owner of its first mount point:
                    // the image makes each one, owned by the user it runs as.
                    assert!(
                        target.starts_with("/var/lib/lattice-jwt/")
                            && runtime.iter().any(|l| l.contains("chown -R 101 /var/lib/lattice-jwt"))
                            && runtime
                                .iter()
                                .any(|l| l.contains("mkdir -p") && l.contains(&format!(" {target} "))),
                        "{}: the image does not make the mount point {target} for uid 101",
                        s.name
                    );
                }
            }
        }
        for port in s.body["ports"].as_array().into_iter().flatten() {
            let port = port.as_str().unwrap();
            assert!(
                port.starts_with("127.0.0.1:"),
                "{}: publishes {port} beyond loopback",
                s.name
            );
        }
    }

    // The programs of the tools image are workspace binaries, built and copied.
    let tools_builder = stage(&docker, "tools-builder").join("\n");
    let built: Vec<&str> = tools_builder
        .split_whitespace()
        .collect::<Vec<_>>()
        .windows(2)
        .filter(|w| w[0] == "--bin")
        .map(|w| w[1])
        .collect();
    let tools = stage(&docker, "tools").join("\n");
    for program in &built {
        assert!(
            tools.contains(&format!("/src/target/release/{program} ")),
            "the tools image does not copy {program}"
        );
    }
    let workspace = workspace_binaries();
    for program in &built {
        assert!(
            workspace.contains(*program),
            "the Dockerfile builds {program}, no workspace binary"
        );
    }
    for s in services.iter().filter(|s| s.target() == "tools") {
        for program in s.programs() {
            assert!(
                built.contains(&program.as_str()) || ["rm", "cp"].contains(&program.as_str()),
                "{}: runs {program}, which the tools image does not have",
                s.name
            );
        }
    }

    // The Envoy containers give the entrypoint only what it (or Envoy) reads.
    let read_by_entrypoint = entrypoint_variables();
    for s in compose.envoys() {
        for name in s.env().keys() {
            assert!(
                read_by_entrypoint.contains(name) || ENVOY_CREDENTIAL_VARIABLES.contains(&name.as_str()),
                "{}: the entrypoint does not read {name}",
                s.name
            );
        }
    }
    assert!(read_by_entrypoint.contains("JWT_ISSUER") && read_by_entrypoint.contains("SERVICE_NAME"));
}

/// The image's pieces fit: the wasm is where the entrypoint and envoy-gen
/// look for it, the entrypoint and healthcheck are the committed scripts,
/// the versions are the project's.
#[test]
fn dockerfile_matches_the_project() {
    let docker = dockerfile();
    assert_eq!(
        copy_destination(&docker, "/src/target/wasm32-wasip1/release/jwt_scopes.wasm"),
        envoy_gen::model::DEFAULT_WASM
    );
    assert_eq!(
        copy_destination(&docker, "/src/target/native/libjwt_scopes_native.so"),
        envoy_gen::model::DEFAULT_NATIVE_MODULE
    );
    let builder = stage(&docker, "builder").join("\n");
    assert!(
        builder.contains("cargo build --profile native --locked -p jwt-scopes-native"),
        "{builder}"
    );
    let entrypoint = copy_destination(&docker, ENTRYPOINT);
    let runtime = stage(&docker, "runtime");
    assert!(
        runtime.contains(&format!("ENTRYPOINT [\"{entrypoint}\"]")),
        "{runtime:?}"
    );
    let healthcheck = copy_destination(&docker, HEALTHCHECK);
    assert!(
        runtime
            .iter()
            .any(|l| l.starts_with("HEALTHCHECK ") && l.ends_with(&format!("CMD [\"{healthcheck}\"]"))),
        "{runtime:?}"
    );
    assert!(
        runtime.contains(&"USER 101".to_string()),
        "the image must run as uid 101"
    );
    for script in [ENTRYPOINT, HEALTHCHECK] {
        let mode = std::fs::metadata(root().join(script)).unwrap().permissions().mode();
        assert_eq!(mode & 0o111, 0o111, "{script} is not executable");
    }

    let makefile = read("Makefile");
    let envoy_version = makefile
        .lines()
        .find_map(|l| l.strip_prefix("ENVOY_VERSION := "))
        .unwrap()
        .trim();
    assert_eq!(
        arg_default(&docker, "ENVOY_IMAGE"),
        format!("envoyproxy/envoy:v{envoy_version}")
    );
    let cargo_toml = read("Cargo.toml");
    let rust_version = cargo_toml
        .lines()
        .find_map(|l| l.strip_prefix("rust-version = \""))
        .and_then(|v| v.strip_suffix('"'))
        .unwrap();
    // A pinned toolchain (major.minor.patch), no older than the workspace's
    // rust-version, on the Debian release whose glibc the runtime check covers.
    let rust_image = arg_default(&docker, "RUST_IMAGE");
    let version = |text: &str| -> Vec<u32> { text.split('.').map(|n| n.parse().unwrap()).collect() };
    let pinned = rust_image
        .strip_prefix("rust:")
        .and_then(|t| t.strip_suffix("-bookworm"))
        .map(version)
        .unwrap_or_else(|| panic!("{rust_image}: expected rust:X.Y.Z-bookworm"));
    assert_eq!(pinned.len(), 3, "{rust_image}: pin a full version");
    assert!(
        pinned[..2] >= version(rust_version)[..2],
        "{rust_image} is older than the workspace's rust-version {rust_version}"
    );
    let frontend_port = reference_system().frontend.listen.port;
    assert!(runtime.contains(&format!("EXPOSE {frontend_port}")), "{runtime:?}");
    // The image runs the native build (its Envoy is the 1.40 the module is
    // built for), which it ships at envoy-gen's default path (above).
    assert_eq!(image_env(), [("JWT_SCOPES_FILTER".to_string(), "native".to_string())]);
}

/// The stack compose runs is the one `make demo` runs: the spec's services
/// and roles, each Envoy with its own role's key that lattice-sim knows,
/// the apps where lattice-sim forwards, the CAs where the Envoys read them,
/// and lattice-sim's configuration what the demo writes for those.
#[test]
fn docker_compose_runs_the_demo_stack() {
    let compose = Compose::load();
    let system = reference_system();
    let domain = system.domain.clone().unwrap();

    // lattice-sim: its configuration file and the policies beside it.
    let sim = compose.service("lattice-sim");
    let config_path = sim.flag("--config").unwrap();
    assert_eq!(sim.local(&config_path).unwrap(), root().join(COMPOSE_LATTICE_SIM));
    let config_dir = Path::new(&config_path).parent().unwrap().display().to_string();
    assert_eq!(
        sim.local(&format!("{config_dir}/policies")).unwrap(),
        root().join(POLICIES)
    );
    let sim_port = sim.flag("--listen").unwrap().rsplit_once(':').unwrap().1.to_string();
    let lattice_ca = sim.flag("--ca-out").unwrap();

    // The dev IdP: where it serves, for which host, with which issuer, and
    // where it publishes its CA.
    let idp = compose.service("dev-idp");
    let idp_port = idp.flag("--listen").unwrap().rsplit_once(':').unwrap().1.to_string();
    let idp_host = idp.flag("--host").unwrap();
    assert_eq!(
        idp_host, idp.name,
        "the IdP's certificate must name the host the frontend connects to"
    );
    let idp_ca = idp
        .words()
        .windows(3)
        .find(|w| w[0] == "cp" && w[1].ends_with("/ca.pem"))
        .map(|w| w[2].clone())
        .expect("dev-idp publishes its CA with cp");

    // Every Envoy: its role's key, the spec, lattice-sim and its CA.
    let mut keys: Vec<(Role, RoleKey)> = Vec::new();
    for envoy in compose.envoys() {
        let env = envoy.env();
        let get = |name: &str| {
            env.get(name)
                .cloned()
                .unwrap_or_else(|| panic!("{}: no {name}", envoy.name))
        };
        assert_eq!(
            envoy.local(&get("SPEC_FILE")).unwrap(),
            root().join(SPEC),
            "{}",
            envoy.name
        );
        assert_eq!(
            get("LATTICE_ENDPOINT"),
            format!("{}:{sim_port}", sim.name),
            "{}",
            envoy.name
        );
        assert_eq!(get("LATTICE_CA"), lattice_ca, "{}", envoy.name);
        let (volume, target, read_only) = envoy.volume_holding(&lattice_ca).unwrap();
        assert!(read_only, "{}: mounts {volume} writable", envoy.name);
        assert_eq!(sim.volume_holding(&lattice_ca), Some((volume, target, false)));
        assert_eq!(get("CREDENTIALS_SOURCE"), "env");
        let role = match get("ENVOY_ROLE").as_str() {
            "frontend" => {
                assert_eq!(get("JWT_ISSUER"), idp.flag("--issuer").unwrap());
                assert_eq!(
                    get("JWT_JWKS"),
                    format!("https://{idp_host}:{idp_port}/.well-known/jwks.json")
                );
                assert_eq!(get("JWT_AUDIENCE"), AUDIENCE);
                assert_eq!(get("JWKS_CA"), idp_ca);
                let (volume, target, read_only) = envoy.volume_holding(&idp_ca).unwrap();
                assert!(read_only);
                assert_eq!(idp.volume_holding(&idp_ca), Some((volume, target, false)));
                let published: Vec<&str> = envoy.body["ports"]
                    .as_array()
                    .unwrap()
                    .iter()
                    .map(|p| p.as_str().unwrap())
                    .collect();
                assert_eq!(published, [format!("127.0.0.1:{0}:{0}", system.frontend.listen.port)]);
                system.frontend.role.clone().unwrap()
            }
            "sidecar" => {
                let service = system.service(&get("SERVICE_NAME")).unwrap();
                let app = compose.app(&service.name);
                assert_eq!(envoy.body["network_mode"], format!("service:{}", app.name));
                assert_eq!(app.flag("--domain").unwrap(), domain);
                let listen = &service.sidecar.listen;
                assert_eq!(
                    app.flag("--sidecar").unwrap(),
                    format!("{}:{}", listen.address, listen.port)
                );
                service.role.clone().unwrap()
            }
            other => panic!("{}: ENVOY_ROLE={other}", envoy.name),
        };
        let key = RoleKey {
            session_arn: format!(
                "arn:aws:sts::{}:assumed-role/{}/{}-envoy",
                system.account.as_deref().unwrap(),
                role.name,
                role.name
            ),
            role: role.clone(),
            credentials: AwsCredentials {
                access_key_id: get("AWS_ACCESS_KEY_ID"),
                secret_access_key: get("AWS_SECRET_ACCESS_KEY"),
                session_token: get("AWS_SESSION_TOKEN"),
            },
        };
        assert!(
            !keys.iter().any(|(r, _)| *r == role),
            "{}: a second Envoy signs as {}",
            envoy.name,
            role.name
        );
        keys.push((role, key));
    }
    let keys: Vec<RoleKey> = signing_roles(&system)
        .iter()
        .map(|role| {
            keys.iter()
                .find(|(r, _)| r == role)
                .map(|(_, k)| k.clone())
                .unwrap_or_else(|| {
                    panic!(
                        "role {} signs in the spec, but no Envoy of {COMPOSE} signs as it",
                        role.name
                    )
                })
        })
        .collect();
    for service in &system.services {
        assert!(
            compose
                .envoys()
                .iter()
                .any(|e| e.env().get("SERVICE_NAME") == Some(&service.name)),
            "{COMPOSE}: app {} has no sidecar",
            service.name
        );
    }

    // lattice-sim's configuration: what the demo writes for these keys and
    // apps, with the policies beside the file.
    let targets: BTreeMap<String, String> = system
        .services
        .iter()
        .map(|s| {
            let app = compose.app(&s.name);
            let port = app.flag("--listen").unwrap().rsplit_once(':').unwrap().1.to_string();
            (s.name.clone(), format!("http://{}:{port}", app.name))
        })
        .collect();
    let policies = root().join(POLICIES);
    let expected = relative_to(
        lattice_sim_config(&system, &policies, &targets, &keys).unwrap(),
        &policies.display().to_string(),
        "policies",
    );
    let committed_path = root().join(COMPOSE_LATTICE_SIM);
    if std::env::var_os("UPDATE_GOLDEN").is_some() {
        std::fs::write(&committed_path, format!("{LATTICE_SIM_HEADER}{expected:#}\n")).unwrap();
    }
    let committed_text = read(COMPOSE_LATTICE_SIM);
    let committed: Value = serde_saphyr::from_str(&committed_text).unwrap();
    assert_eq!(
        committed, expected,
        "{COMPOSE_LATTICE_SIM} differs from what the demo writes: rerun with UPDATE_GOLDEN=1 and review"
    );
    // lattice-sim loads it, policy files included, as the container sees them.
    let base = tempfile::tempdir().unwrap();
    std::os::unix::fs::symlink(&policies, base.path().join("policies")).unwrap();
    lattice_sim::config::Config::parse(&committed_text, base.path()).unwrap_or_else(|e| panic!("{e}"));
}

const LATTICE_SIM_HEADER: &str = "\
# lattice-sim's configuration for docker-compose.yml: what `make demo` writes
# (e2e::deployment::lattice_sim_config) for envoy/examples/reference.yaml,
# with the apps at their compose service names and the compose stack's fake
# credentials, which are for this local stack only. Policy paths are relative
# to this file: compose mounts envoy/generated/reference/policies beside it.
# Regenerate: UPDATE_GOLDEN=1 cargo test -p e2e --test entrypoint docker_compose
";

/// `value` with every string starting with `prefix` starting with
/// `replacement` instead.
fn relative_to(value: Value, prefix: &str, replacement: &str) -> Value {
    match value {
        Value::String(s) => Value::String(match s.strip_prefix(prefix) {
            Some(rest) => format!("{replacement}{rest}"),
            None => s,
        }),
        Value::Array(items) => Value::Array(items.into_iter().map(|v| relative_to(v, prefix, replacement)).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(k, v)| (k, relative_to(v, prefix, replacement)))
                .collect(),
        ),
        other => other,
    }
}

/// Each Envoy of the compose stack, rendered by the entrypoint from its
/// compose environment (container paths mapped to the repository's files
/// and to stand-ins for the files the stack writes) and checked by the real
/// Envoy in validate mode: what `docker compose up` would start is valid.
#[test]
fn docker_compose_envoys_render_and_validate() {
    let compose = Compose::load();
    let written = tempfile::tempdir().unwrap();
    let ca = TestCa::new("compose stand-in CA");
    let envoys = compose.envoys();
    assert!(envoys.len() >= 2, "{COMPOSE}: a frontend and sidecars");
    for envoy in envoys {
        // The image's own variables first, then compose's over them.
        let mut env: Vec<(String, String)> = image_env();
        for (name, value) in envoy.env() {
            let local = if let Some(local) = envoy.local(&value) {
                local.display().to_string()
            } else if let Some((volume, target, _)) = envoy.volume_holding(&value) {
                let path = written.path().join(&volume).join(&value[target.len() + 1..]);
                std::fs::create_dir_all(path.parent().unwrap()).unwrap();
                std::fs::write(&path, &ca.pem).unwrap();
                path.display().to_string()
            } else {
                value
            };
            env.push((name, local));
        }
        // The image keeps the filter's builds at envoy-gen's default paths
        // (see dockerfile_matches_the_project); here they are the built ones.
        env.push(("JWT_SCOPES_WASM".into(), wasm()));
        let native = e2e::envoy::native_module().unwrap_or_else(|e| panic!("{e}"));
        env.push(("JWT_SCOPES_NATIVE_MODULE".into(), native.display().to_string()));
        env.push(("ENVOY_MODE".into(), "validate".into()));
        let run_dir = tempfile::tempdir().unwrap();
        let out = offline_entrypoint(&env, run_dir.path(), &real_envoy())
            .output()
            .unwrap();
        let output = format!(
            "{}{}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(out.status.success(), "{}: {output}", envoy.name);
        let secret = envoy.env().get("AWS_SECRET_ACCESS_KEY").cloned().unwrap();
        assert!(!output.contains(&secret), "{}: printed its secret key", envoy.name);
        let rendered = std::fs::read_to_string(run_dir.path().join("envoy.yaml")).unwrap();
        assert!(
            !rendered.contains(&secret),
            "{}: the rendered configuration holds the secret key",
            envoy.name
        );
        // As the image runs it: the native build, so no V8 (a sidecar that
        // calls nothing has no filter at all).
        assert!(
            !rendered.contains("envoy.wasm.runtime.v8") && !rendered.contains("envoy.filters.http.wasm"),
            "{}: the image's default build is not the one rendered",
            envoy.name
        );
        if rendered.contains("envoy.filters.http.jwt_authn") {
            assert!(
                rendered.contains("filter_name: jwt_scopes"),
                "{}: the frontend does not run the native jwt_scopes",
                envoy.name
            );
        }
    }
}
