//! Runs the real Envoy binary: start with a config, wait until its
//! listeners are bound, read /stats, stop it on drop.

use dev_idp::http;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The AWS credentials every Envoy started by the tests signs with (from
/// its environment; generated configs restrict the chain to it).
pub const TEST_ACCESS_KEY_ID: &str = "ASIAFRONTENDTEST0001";
pub const TEST_SECRET_ACCESS_KEY: &str = "frontend/test/secret/key/not/a/real/one/000";
pub const TEST_SESSION_TOKEN: &str = "FwoGZXIvYXdzEFrontendTestSessionToken==";

/// AWS credentials to put in Envoy's environment.
#[derive(Debug, Clone)]
pub struct AwsCredentials {
    pub access_key_id: String,
    pub secret_access_key: String,
    pub session_token: String,
}

impl AwsCredentials {
    /// The tests' default identity.
    pub fn test() -> AwsCredentials {
        AwsCredentials {
            access_key_id: TEST_ACCESS_KEY_ID.into(),
            secret_access_key: TEST_SECRET_ACCESS_KEY.into(),
            session_token: TEST_SESSION_TOKEN.into(),
        }
    }

    /// The environment variables that carry these credentials.
    pub fn env(&self) -> Vec<(String, String)> {
        vec![
            ("AWS_ACCESS_KEY_ID".into(), self.access_key_id.clone()),
            ("AWS_SECRET_ACCESS_KEY".into(), self.secret_access_key.clone()),
            ("AWS_SESSION_TOKEN".into(), self.session_token.clone()),
        ]
    }
}

/// The workspace root (this crate lives in `<root>/tests`).
pub fn workspace_root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| PathBuf::from("."))
}

/// The Envoy binary, found as everywhere in the project
/// ([`envoy_gen::envoy::find_envoy`]): `$ENVOY_BIN`, the nearest
/// `.venv/bin/envoy` (`make envoy`), then `envoy` on PATH.
pub fn envoy_binary() -> Result<PathBuf, String> {
    envoy_gen::envoy::find_envoy(None)
}

/// The filter module built by `make build`.
pub fn filter_wasm() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("JWT_SCOPES_WASM") {
        return Ok(PathBuf::from(path));
    }
    let path = workspace_root().join(envoy_gen::envoy::LOCAL_WASM);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `make build` (cargo build --release --target wasm32-wasip1 -p jwt-scopes)",
            path.display()
        ))
    }
}

/// The native build of the filter, an Envoy dynamic module (filter/native),
/// built with the `native` profile (unwinding, so that a panic is caught in
/// the module instead of aborting Envoy). Envoy finds it by name
/// (`jwt_scopes_native`) in the directory `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`
/// names: this file's parent.
pub fn native_module() -> Result<PathBuf, String> {
    if let Some(path) = std::env::var_os("JWT_SCOPES_NATIVE") {
        return Ok(PathBuf::from(path));
    }
    let path = workspace_root().join("target/native/libjwt_scopes_native.so");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --profile native -p jwt-scopes-native`",
            path.display()
        ))
    }
}

/// The test-only module that panics on `x-test-panic: 1` (tests/panic-filter),
/// built by `make test`.
pub fn panic_filter_wasm() -> Result<PathBuf, String> {
    let path = workspace_root().join("target/wasm32-wasip1/release/panic_filter.wasm");
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `make test` (cargo build --release --target wasm32-wasip1 -p panic-filter)",
            path.display()
        ))
    }
}

/// A running Envoy. Dropping it kills the process.
pub struct Envoy {
    child: Child,
    dir: tempfile::TempDir,
    pub admin_port: u16,
    /// Bound ports of the listeners, by listener name.
    pub listeners: Vec<(String, u16)>,
}

/// How long Envoy may take to start (V8 compiles the module at start).
const START_TIMEOUT: Duration = Duration::from_secs(60);

impl Envoy {
    /// Starts Envoy with `config` (YAML) and waits until every listener is
    /// bound. Admin and listeners should use port 0.
    pub fn start(config: &str) -> Result<Envoy, String> {
        Envoy::start_as(config, &AwsCredentials::test())
    }

    /// Like `start`, with Envoy's environment holding `credentials`.
    pub fn start_as(config: &str, credentials: &AwsCredentials) -> Result<Envoy, String> {
        Envoy::start_with_env(config, &credentials.env())
    }

    /// Like `start`, with exactly `env` in Envoy's environment (besides
    /// `PATH` and `AWS_EC2_METADATA_DISABLED=true`): no AWS credentials
    /// unless `env` holds some.
    pub fn start_with_env(config: &str, env: &[(String, String)]) -> Result<Envoy, String> {
        Envoy::start_with_args(config, env, &[])
    }

    /// Like `start_with_env`, with `args` added to Envoy's command line
    /// (e.g. `--drain-time-s 3`).
    pub fn start_with_args(config: &str, env: &[(String, String)], args: &[String]) -> Result<Envoy, String> {
        Envoy::start_wrapped(config, env, args, &[])
    }

    /// Like `start_with_args`, with Envoy run through `wrapper`: a command
    /// and its arguments, to which Envoy's own command line (the binary
    /// first) is appended, e.g. `unshare --mount -- sh -c '... && exec "$@"' sh`.
    /// The wrapper must end by exec'ing Envoy in the same process, so that
    /// the process this handle stops is Envoy itself. Empty: Envoy directly.
    pub fn start_wrapped(
        config: &str,
        env: &[(String, String)],
        args: &[String],
        wrapper: &[String],
    ) -> Result<Envoy, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (mut child, admin_path) = spawn(config, &dir, env, args, wrapper)?;
        let deadline = Instant::now() + START_TIMEOUT;
        let admin_port = loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("Envoy exited with {status} during start:\n{}", log_of(&dir)));
            }
            if let Some(port) = std::fs::read_to_string(&admin_path)
                .ok()
                .and_then(|s| s.trim().rsplit(':').next().and_then(|p| p.parse().ok()))
            {
                break port;
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                return Err(format!("Envoy did not start in time:\n{}", log_of(&dir)));
            }
            std::thread::sleep(Duration::from_millis(50));
        };
        let mut envoy = Envoy {
            child,
            dir,
            admin_port,
            listeners: Vec::new(),
        };
        loop {
            if let Some(status) = envoy.child.try_wait().map_err(|e| e.to_string())? {
                return Err(format!("Envoy exited with {status} during start:\n{}", envoy.log()));
            }
            let ready = http::get(("127.0.0.1", admin_port), "/ready").is_ok_and(|r| r.status == 200);
            if ready {
                if let Ok(listeners) = envoy.bound_listeners() {
                    if !listeners.is_empty() && listeners.iter().all(|(_, p)| *p != 0) {
                        envoy.listeners = listeners;
                        return Ok(envoy);
                    }
                }
            }
            if Instant::now() > deadline {
                return Err(format!("Envoy was not ready in time:\n{}", envoy.log()));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// Runs Envoy with `config` expecting it to refuse the configuration;
    /// returns its exit status and log.
    pub fn expect_refusal(config: &str) -> Result<(std::process::ExitStatus, String), String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let (mut child, _) = spawn(config, &dir, &AwsCredentials::test().env(), &[], &[])?;
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Some(status) = child.try_wait().map_err(|e| e.to_string())? {
                return Ok((status, log_of(&dir)));
            }
            if Instant::now() > deadline {
                let _ = child.kill();
                let _ = child.wait();
                return Err(format!(
                    "Envoy accepted a configuration it should refuse:\n{}",
                    log_of(&dir)
                ));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// The listeners with a socket (internal listeners have none), and
    /// their bound ports (0 until bound).
    fn bound_listeners(&self) -> Result<Vec<(String, u16)>, String> {
        let response = http::get(("127.0.0.1", self.admin_port), "/listeners?format=json")?;
        let json: serde_json::Value = serde_json::from_slice(&response.body).map_err(|e| e.to_string())?;
        let statuses = json["listener_statuses"].as_array().cloned().unwrap_or_default();
        Ok(statuses
            .iter()
            .filter(|s| s["local_address"].get("envoy_internal_address").is_none())
            .map(|s| {
                let name = s["name"].as_str().unwrap_or_default().to_string();
                let port = s["local_address"]["socket_address"]["port_value"].as_u64().unwrap_or(0);
                (name, u16::try_from(port).unwrap_or(0))
            })
            .collect())
    }

    /// The bound port of the listener called `name`.
    pub fn port(&self, name: &str) -> u16 {
        self.listeners
            .iter()
            .find(|(n, _)| n == name)
            .map(|(_, p)| *p)
            .unwrap_or_else(|| panic!("no listener {name} in {:?}", self.listeners))
    }

    /// GET `path` on the admin interface.
    pub fn admin_get(&self, path: &str) -> Result<http::Response, String> {
        http::get(("127.0.0.1", self.admin_port), path)
    }

    /// The value of one counter or gauge on /stats (0 when absent).
    pub fn stat(&self, name: &str) -> u64 {
        let response = http::get(("127.0.0.1", self.admin_port), &format!("/stats?filter=^{name}$"))
            .unwrap_or_else(|e| panic!("GET /stats: {e}"));
        String::from_utf8_lossy(&response.body)
            .lines()
            .find_map(|line| {
                line.strip_prefix(&format!("{name}: "))
                    .and_then(|v| v.trim().parse().ok())
            })
            .unwrap_or(0)
    }

    /// Waits (up to 5 s) until the counter `name` satisfies `done`, and
    /// returns its last value. The filter adds its counts to Envoy's every
    /// 200 ms, so a test waits for the value it expects instead of reading
    /// once; a wrong value is still returned (and fails the assertion).
    pub fn wait_stat_until(&self, name: &str, done: impl Fn(u64) -> bool) -> u64 {
        let deadline = Instant::now() + Duration::from_secs(5);
        loop {
            let value = self.stat(name);
            if done(value) || Instant::now() > deadline {
                return value;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
    }

    /// `wait_stat_until` the counter equals `expected`.
    pub fn wait_stat(&self, name: &str, expected: u64) -> u64 {
        self.wait_stat_until(name, |v| v == expected)
    }

    /// Everything Envoy logged so far.
    pub fn log(&self) -> String {
        log_of(&self.dir)
    }

    /// The Envoy process id.
    pub fn pid(&self) -> u32 {
        self.child.id()
    }

    /// True while the process runs.
    pub fn is_running(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }
}

impl Drop for Envoy {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn spawn(
    config: &str,
    dir: &tempfile::TempDir,
    env: &[(String, String)],
    args: &[String],
    wrapper: &[String],
) -> Result<(Child, PathBuf), String> {
    let binary = envoy_binary()?;
    let config_path = dir.path().join("envoy.yaml");
    std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
    let admin_path = dir.path().join("admin-address");
    let log = std::fs::File::create(dir.path().join("envoy.log")).map_err(|e| e.to_string())?;
    let (program, mut command) = match wrapper.split_first() {
        Some((program, rest)) => {
            let mut command = Command::new(program);
            command.args(rest).arg(&binary);
            (PathBuf::from(program), command)
        }
        None => (binary.clone(), Command::new(&binary)),
    };
    let child = command
        .arg("--config-path")
        .arg(&config_path)
        .arg("--admin-address-path")
        .arg(&admin_path)
        .args(["--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"])
        .args(args)
        // Only the credentials the caller gives exist for Envoy (normally
        // the tests' own, see TEST_ACCESS_KEY_ID).
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .envs(env.iter().map(|(k, v)| (k, v)))
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .stdout(log.try_clone().map_err(|e| e.to_string())?)
        .stderr(log)
        .spawn()
        .map_err(|e| format!("cannot run {}: {e}", program.display()))?;
    Ok((child, admin_path))
}

fn log_of(dir: &tempfile::TempDir) -> String {
    let mut text = String::new();
    if let Ok(mut f) = std::fs::File::open(dir.path().join("envoy.log")) {
        let _ = f.read_to_string(&mut text);
    }
    text
}
