//! `make bench-path` (`bench path`; `make bench` runs it after the arms):
//! what a user pays per request for the whole path, against the reference
//! as deployed. Where `make bench` isolates the filters (`direct_response`),
//! here every request goes the whole way: token verification, mapping,
//! SigV4 signing, the signing guard, and TLS to the upstream.
//!
//! Configurations, each in its own stock Envoy 1.40 (`--concurrency 1`,
//! pinned to CPU 0 as the main bench pins), all signing with the
//! environment's credentials (AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY,
//! AWS_SESSION_TOKEN, never the instance metadata address), all sending
//! over TLS to ONE local HTTPS upstream (127.0.0.1:443, in this process;
//! its certificate names app1/2/3.example.internal and comes from the run's
//! CA, which every Envoy trusts):
//!   F0 the floor: listener → router → the generated cluster (its upstream
//!      filters minus the guard: aws_request_signing then upstream_codec);
//!      no token checked.
//!   F1 `envoy-gen frontend`, wasm build, rendered by the envoy_gen library
//!      (as tests/src/stack.rs does): the Lattice endpoint is the upstream,
//!      the JWKS comes from a local HTTPS IdP (tests/src/idp.rs),
//!      `credentials: env`.
//!   F2 the same, `--filter native` (target/native/libjwt_scopes_native.so;
//!      skipped with a note when not built). Whatever envoy-gen renders at
//!      the time of the run; the report says whether it loads V8.
//!   R  the reference as deployed: bench/reference/envoy.yaml.in (a byte
//!      copy of aws-samples/modern-web-authzn-lattice at 75ddc61) with its
//!      `${...}` variables substituted and only its addresses changed, by
//!      this code (`reference_config`, listed in the report): its listener,
//!      its c-ares resolver (pointed at a tiny DNS server over TCP in this
//!      process that answers app1/2/3.example.internal with 127.0.0.1, so
//!      its dynamic forward proxy and every filter stay as they are), its
//!      jwks cluster and its CA file. Its default credential chain finds the
//!      environment's credentials; AWS_EC2_METADATA_DISABLED=true keeps
//!      Envoy from creating the instance-metadata provider, which a check
//!      Envoy (the same configuration plus a loopback admin) verifies by its
//!      clusters before anything is measured.
//!   S  app2's sidecar as `envoy-gen sidecar --service app2` renders it from
//!      envoy/examples/reference.yaml with local overrides (the app sends
//!      plain HTTP to it with `Host: app1.example.internal`).
//!
//! Tokens: RS256, ~1 KB, the main bench's 6 scopes (incl. `test.all`);
//! two modes, one token repeated and 1,000 distinct tokens in round-robin
//! rotation (minted once, valid for hours, reused across Envoys). Every
//! configuration gets the same requests: `GET /app1/<id>`,
//! `Host: app1.example.internal`, the token (F0 does not check it and the
//! signer replaces it; the sidecar removes it). The upstream answers 200
//! only to a request signed with the environment's credentials
//! (`authorization: AWS4-HMAC-SHA256 Credential=<key>/...`, `x-amz-date`,
//! the session token, `UNSIGNED-PAYLOAD`) over TLS with SNI and Host the
//! service's name, and, for F1, F2 and R, carrying `x-jwt-subject` and
//! `x-jwt-scope-test.all: true`; any other answer fails the run, so no
//! configuration is measured doing less than the others.
//!
//! Measured per (configuration, token mode), as `make bench` does: Envoy
//! CPU µs/request (utime+stime from /proc over closed-loop rounds, every
//! Envoy in interleaved rounds, medians with min/max, differences over F0
//! paired per round), requests/s per core, p50/p99 latency at a fixed
//! offered rate (the main bench's open-loop generator, rotating tokens),
//! RSS after the run, and jwt_authn's cache hit rate where an admin
//! interface shows it. Written to bench/PATH.md with the chart
//! bench/path.png; the targets are computed from the rows.
//!
//! Variants, timed with one token repeated in rows of their own and part of
//! no target (TIMED_VARIANTS): F2 and F1 without their access log, and F2
//! with the whole payload in jwt_authn's metadata (as envoy-gen rendered
//! the native build before it took the token's header as its proof).
//!
//! After the timed rounds, the callgrind phase (bench/src/path/
//! attribution.rs): F0, F1, F2 and R in both token modes, the variants, and
//! each configuration with its parts taken out one after the other, counted
//! in instructions per request under valgrind's callgrind as `make bench`
//! counts them (bench/src/instructions.rs); the report's "Where the added
//! µs go" says what each part costs.
//!
//! Environment: as the main bench, BENCH_ROUNDS (7), BENCH_SECONDS (4),
//! BENCH_WARMUP_SECONDS (2), BENCH_OPEN_SECONDS (6), BENCH_OUT (bench/),
//! BENCH_CALLGRIND=0 (no callgrind phase), BENCH_CALLGRIND_REQUESTS (1000);
//! for working on the attribution: BENCH_PATH_ONLY_CALLGRIND=1 (the
//! callgrind phase alone, printed, nothing written), BENCH_CALLGRIND_ONLY
//! (comma-separated ids, e.g. `F2,F2-log`: count only those),
//! BENCH_CALLGRIND_PROFILES (a directory to keep the profiles in).

mod attribution;

use crate::chart::{self, Bar};
use crate::{
    cache, closed_loop_load, connect, cpu_seconds, machine, median, open_loop_load, pin_to_cpu0, rss_mb, send, Load,
    Settings, Spread, CLOSED_CONNECTIONS, NATIVE_DIR, NATIVE_LIB, OPEN_CONNECTIONS, OPEN_RATE, SCOPES,
};
use e2e::envoy::{
    envoy_binary, filter_wasm, workspace_root, AwsCredentials, Envoy, TEST_ACCESS_KEY_ID, TEST_SESSION_TOKEN,
};
use e2e::idp::IdpServer;
use e2e::jwt::{Issuer, AUDIENCE, ISSUER};
use e2e::tls::{Received, TestCa, TlsServer};
use envoy_gen::args::{FrontendArgs, LatticeArgs, ListenArgs, Overrides};
use envoy_gen::spec::{Credentials, FilterBuild};
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// The services' domain and region, as envoy/examples/reference.yaml has them.
const DOMAIN: &str = "example.internal";
const REGION: &str = "us-west-2";
/// The one upstream every configuration sends to. Port 443 because the
/// reference's dynamic forward proxy connects to port 443 of the address
/// DNS gives for a host without a port (its TLS cluster's default).
const UPSTREAM: &str = "127.0.0.1:443";
/// Distinct tokens in rotation.
const TOKENS: usize = 1000;
/// How long an Envoy may take to answer its first request.
const START_TIMEOUT: Duration = Duration::from_secs(60);

/// The reference's configuration, a byte copy (bench/reference/README.md).
const REFERENCE: &str = include_str!("../reference/envoy.yaml.in");
const REFERENCE_COMMIT: &str = "75ddc61";
/// The spec app2's sidecar is rendered from.
const SIDECAR_SPEC: &str = "envoy/examples/reference.yaml";

const F0: &str = "F0";
const F1: &str = "F1";
const F2: &str = "F2";
const R: &str = "R";
const S: &str = "S";
/// The configurations whose requests reach the upstream with the user's identity.
const WITH_IDENTITY: [&str; 3] = [F1, F2, R];

/// Whether the upstream requires the user's identity of requests from `id`:
/// a configuration of WITH_IDENTITY, or a variant of one (`F2-log`) that
/// keeps every part that adds it.
fn needs_identity(id: &str) -> bool {
    attribution::parse_id(id)
        .is_some_and(|(base, parts)| WITH_IDENTITY.contains(&base) && parts.iter().all(|p| p.keeps_identity()))
}

/// What the requests of `id` name after `/app1/`, which tells the upstream
/// what to require: a configuration's own id; for a variant, its base's id
/// (lower-cased when the variant adds no identity, so the upstream does not
/// require it). Every path has its configuration's length: the path is
/// parsed, normalised, matched, signed and logged, and a longer one costs
/// more (measured: 6 more characters, about 1,500 more instructions).
fn path_id(id: &str) -> String {
    match attribution::parse_id(id) {
        Some((base, parts)) if !parts.is_empty() => {
            if needs_identity(id) {
                base.to_string()
            } else {
                base.to_lowercase()
            }
        }
        _ => id.to_string(),
    }
}

/// Envoy's instance-metadata and container-credentials clusters (Envoy
/// 1.40, credential_provider_chains.cc): created only when the chain
/// includes those providers.
const METADATA_CLUSTERS: [&str; 2] = [
    "ec2_instance_metadata_server_internal",
    "ecs_task_metadata_server_internal",
];
const METADATA_ADDRESS: &str = "169.254.169.254";

/// The targets: with 1,000 tokens F1 adds at most this × what R adds ...
const TARGET_F1_ROTATING: f64 = 0.5;
/// ... with one token F2 at most this × what R adds (and F1 at most 1×).
const TARGET_F2_REPEATED: f64 = 0.7;

fn host(service: &str) -> String {
    format!("{service}.{DOMAIN}")
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Mode {
    Repeated,
    Rotating,
}

impl Mode {
    const ALL: [Mode; 2] = [Mode::Repeated, Mode::Rotating];

    fn name(self) -> String {
        match self {
            Mode::Repeated => "one token repeated".into(),
            Mode::Rotating => format!("{} tokens in rotation", thousands(TOKENS)),
        }
    }

    /// For file names.
    fn key(self) -> &'static str {
        match self {
            Mode::Repeated => "repeated",
            Mode::Rotating => "rotating",
        }
    }

    fn short(self) -> String {
        match self {
            Mode::Repeated => "1 token".into(),
            Mode::Rotating => format!("{} tokens", thousands(TOKENS)),
        }
    }
}

fn thousands(n: usize) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

// ----------------------------------------------------------------------------
// The upstream, the DNS server, the bare Envoy
// ----------------------------------------------------------------------------

/// What the upstream requires of a request from configuration `path`'s id
/// (`/app1/<id>`); the reason it refuses, if it does.
fn check_upstream(r: &Received) -> Result<(), String> {
    let config = r.path.strip_prefix("/app1/").unwrap_or_default();
    let service = host("app1");
    if r.sni.as_deref() != Some(service.as_str()) {
        return Err(format!("TLS server name {:?}, not {service}", r.sni));
    }
    if r.header("host").as_deref() != Some(service.as_str()) {
        return Err(format!("Host {:?}, not {service}", r.header("host")));
    }
    let authorization = r.header("authorization").unwrap_or_default();
    let signed = format!("AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/");
    let scope = format!("/{REGION}/vpc-lattice-svcs/aws4_request");
    if !authorization.starts_with(&signed) || !authorization.contains(&scope) {
        return Err(format!(
            "not signed for vpc-lattice-svcs with the environment's credentials (authorization: {:?})",
            authorization.chars().take(60).collect::<String>()
        ));
    }
    if r.header("x-amz-date").is_none_or(|d| d.is_empty()) {
        return Err("no x-amz-date".into());
    }
    if r.header("x-amz-security-token").as_deref() != Some(TEST_SESSION_TOKEN) {
        return Err("not the environment's session token".into());
    }
    if r.header("x-amz-content-sha256").as_deref() != Some("UNSIGNED-PAYLOAD") {
        return Err("x-amz-content-sha256 is not UNSIGNED-PAYLOAD".into());
    }
    if needs_identity(config) {
        if r.header("x-jwt-scope-test.all").as_deref() != Some("true") {
            return Err(format!("{config}: no x-jwt-scope-test.all: true"));
        }
        if r.header("x-jwt-subject").is_none_or(|s| s.is_empty()) {
            return Err(format!("{config}: no x-jwt-subject"));
        }
    }
    Ok(())
}

fn start_upstream(ca: &TestCa) -> Result<TlsServer, String> {
    let names: Vec<String> = ["app1", "app2", "app3"].into_iter().map(host).collect();
    let leaf = ca.try_leaf(&names.iter().map(String::as_str).collect::<Vec<_>>())?;
    TlsServer::start_on(
        UPSTREAM,
        &leaf,
        Arc::new(|r: &Received| match check_upstream(r) {
            Ok(()) => (200, "ok".into()),
            Err(why) => (403, format!("refused by the bench upstream: {why}")),
        }),
    )
    .map_err(|e| {
        format!(
            "{e}: the upstream must listen on {UPSTREAM}, where the reference's dynamic forward proxy connects \
             (port 443 of the address DNS gives): run as root (binding a port below 1024) and free that port"
        )
    })
}

/// A DNS server over TCP on 127.0.0.1 (an ephemeral port): A records
/// 127.0.0.1 for `names`, NXDOMAIN for every other name. Stopped when
/// dropped.
struct DnsServer {
    port: u16,
    queries: Arc<AtomicUsize>,
    stop: Arc<AtomicBool>,
    thread: Option<std::thread::JoinHandle<()>>,
}

impl DnsServer {
    fn start(names: Vec<String>) -> Result<DnsServer, String> {
        let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| format!("DNS server: {e}"))?;
        let port = listener.local_addr().map_err(|e| e.to_string())?.port();
        let queries = Arc::new(AtomicUsize::new(0));
        let stop = Arc::new(AtomicBool::new(false));
        let (counted, stopped) = (queries.clone(), stop.clone());
        let names = Arc::new(names);
        let thread = std::thread::spawn(move || {
            for stream in listener.incoming() {
                if stopped.load(Ordering::SeqCst) {
                    break;
                }
                let Ok(stream) = stream else { continue };
                let (names, counted) = (names.clone(), counted.clone());
                std::thread::spawn(move || serve_dns(stream, &names, &counted));
            }
        });
        Ok(DnsServer {
            port,
            queries,
            stop,
            thread: Some(thread),
        })
    }

    fn queries(&self) -> usize {
        self.queries.load(Ordering::SeqCst)
    }
}

impl Drop for DnsServer {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

/// DNS over TCP (RFC 1035 4.2.2): each message after its 2-byte length.
fn serve_dns(mut stream: TcpStream, names: &[String], queries: &AtomicUsize) {
    loop {
        let mut length = [0u8; 2];
        if stream.read_exact(&mut length).is_err() {
            return;
        }
        let mut query = vec![0u8; usize::from(u16::from_be_bytes(length))];
        if stream.read_exact(&mut query).is_err() {
            return;
        }
        let Some(answer) = dns_answer(&query, names) else {
            return;
        };
        let Ok(answer_length) = u16::try_from(answer.len()) else {
            return;
        };
        queries.fetch_add(1, Ordering::SeqCst);
        if stream
            .write_all(&answer_length.to_be_bytes())
            .and_then(|()| stream.write_all(&answer))
            .is_err()
        {
            return;
        }
    }
}

/// The answer to one DNS query: for a name of `names` (any case), class IN,
/// type A, the address 127.0.0.1 (TTL 60 s); another type of such a name,
/// no record; any other name, NXDOMAIN. None for a message that is not one
/// query with one question.
fn dns_answer(query: &[u8], names: &[String]) -> Option<Vec<u8>> {
    let word = |at: usize| {
        query
            .get(at..at + 2)
            .and_then(|b| <[u8; 2]>::try_from(b).ok())
            .map(u16::from_be_bytes)
    };
    let id = query.get(0..2)?;
    let flags = word(2)?;
    if flags & 0x8000 != 0 || word(4)? != 1 {
        return None;
    }
    let mut at = 12;
    let mut labels = Vec::new();
    loop {
        let length = usize::from(*query.get(at)?);
        if length == 0 {
            at += 1;
            break;
        }
        if length & 0xc0 != 0 {
            return None;
        }
        labels.push(String::from_utf8_lossy(query.get(at + 1..at + 1 + length)?).to_ascii_lowercase());
        at += 1 + length;
    }
    let (qtype, qclass) = (word(at)?, word(at + 2)?);
    let question = query.get(12..at + 4)?;
    let name = labels.join(".");
    let known = names.iter().any(|n| n.eq_ignore_ascii_case(&name));
    let answers = u16::from(known && qtype == 1 && qclass == 1);
    // QR, the query's opcode, AA, the query's RD, RA; NOERROR or NXDOMAIN.
    let flags = 0x8000 | (flags & 0x7800) | 0x0400 | (flags & 0x0100) | 0x0080 | if known { 0 } else { 3 };
    let mut out = Vec::with_capacity(question.len() + 32);
    out.extend_from_slice(id);
    for field in [flags, 1, answers, 0, 0] {
        out.extend_from_slice(&field.to_be_bytes());
    }
    out.extend_from_slice(question);
    if answers == 1 {
        // The question's name (a pointer to offset 12), A, IN, TTL 60, 4 bytes.
        out.extend_from_slice(&[0xc0, 0x0c, 0, 1, 0, 1, 0, 0, 0, 60, 0, 4, 127, 0, 0, 1]);
    }
    Some(out)
}

/// An Envoy started without the harness (`e2e::envoy::Envoy` needs an
/// admin interface, which the reference has none of): the same command line
/// and environment rules (only `env`, PATH and AWS_EC2_METADATA_DISABLED),
/// its log in a temporary directory. Killed when dropped.
struct Bare {
    child: Child,
    dir: tempfile::TempDir,
}

impl Bare {
    fn spawn(config: &str, env: &[(String, String)]) -> Result<Bare, String> {
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let config_path = dir.path().join("envoy.yaml");
        std::fs::write(&config_path, config).map_err(|e| e.to_string())?;
        let log = std::fs::File::create(dir.path().join("envoy.log")).map_err(|e| e.to_string())?;
        let binary = envoy_binary()?;
        let child = Command::new(&binary)
            .arg("--config-path")
            .arg(&config_path)
            .args(["--disable-hot-restart", "--concurrency", "1", "--log-level", "warn"])
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(env.iter().map(|(k, v)| (k, v)))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        Ok(Bare { child, dir })
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("envoy.log")).unwrap_or_default()
    }
}

impl Drop for Bare {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

enum Process {
    Harness(Envoy),
    Bare(Bare),
}

impl Process {
    fn pid(&self) -> u32 {
        match self {
            Process::Harness(e) => e.pid(),
            Process::Bare(b) => b.child.id(),
        }
    }

    fn log(&self) -> String {
        match self {
            Process::Harness(e) => e.log(),
            Process::Bare(b) => b.log(),
        }
    }

    fn exited(&mut self) -> bool {
        match self {
            Process::Harness(e) => !e.is_running(),
            Process::Bare(b) => !matches!(b.child.try_wait(), Ok(None)),
        }
    }

    fn envoy(&self) -> Option<&Envoy> {
        match self {
            Process::Harness(e) => Some(e),
            Process::Bare(_) => None,
        }
    }
}

/// The last lines of a log, for an error message.
fn tail(log: &str) -> String {
    let lines: Vec<&str> = log.lines().collect();
    lines
        .get(lines.len().saturating_sub(15)..)
        .unwrap_or_default()
        .join("\n")
}

/// A free port on 127.0.0.1 (bound, then released for Envoy to bind).
fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    Ok(listener.local_addr().map_err(|e| e.to_string())?.port())
}

/// Waits until Envoy answers `load`'s first request with 200; an answer
/// other than 200 fails at once (the configuration is wrong, not starting).
async fn ready(process: &mut Process, addr: SocketAddr, load: &Load) -> Result<(), String> {
    let deadline = Instant::now() + START_TIMEOUT;
    loop {
        if process.exited() {
            return Err(format!("Envoy exited during start:\n{}", tail(&process.log())));
        }
        if let Ok(mut sender) = connect(addr).await {
            match send(&mut sender, load.request(0)?).await {
                Ok(()) => return Ok(()),
                Err(e) if e.starts_with("status ") => {
                    return Err(format!("the first request got {e}\n{}", tail(&process.log())));
                }
                Err(_) => {}
            }
        }
        if Instant::now() > deadline {
            return Err(format!(
                "no answer 200 within {} s:\n{}",
                START_TIMEOUT.as_secs(),
                tail(&process.log())
            ));
        }
        tokio::time::sleep(Duration::from_millis(200)).await;
    }
}

/// `count` requests of `load` (numbered from 0, so each token of a rotation
/// once when `count` is their number) over up to `CLOSED_CONNECTIONS`
/// connections.
async fn requests(addr: SocketAddr, load: Arc<Load>, count: usize) -> Result<(), String> {
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLOSED_CONNECTIONS.min(count) {
        let (load, next) = (load.clone(), next.clone());
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            loop {
                let i = next.fetch_add(1, Ordering::Relaxed);
                if i >= count {
                    return Ok::<(), String>(());
                }
                send(&mut sender, load.request(i)?).await?;
            }
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// The names of Envoy's clusters (admin `/clusters?format=json`); an error
/// when one of them is a credentials-metadata cluster or any names the
/// instance metadata address.
fn checked_clusters(envoy: &Envoy) -> Result<Vec<String>, String> {
    let response = envoy.admin_get("/clusters?format=json")?;
    let text = String::from_utf8_lossy(&response.body).into_owned();
    let json: Value = serde_json::from_str(&text).map_err(|e| format!("/clusters: {e}"))?;
    let names: Vec<String> = json["cluster_statuses"]
        .as_array()
        .map(|a| a.iter().filter_map(|c| c["name"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    if names.is_empty() {
        return Err(format!("admin /clusters lists no cluster: {text}"));
    }
    if let Some(bad) = names.iter().find(|n| METADATA_CLUSTERS.contains(&n.as_str())) {
        return Err(format!(
            "Envoy created the credentials-metadata cluster {bad}: its credential chain would contact a metadata \
             endpoint; refusing to measure"
        ));
    }
    if text.contains(METADATA_ADDRESS) {
        return Err(format!("Envoy's clusters name {METADATA_ADDRESS}; refusing to measure"));
    }
    Ok(names)
}

/// jwt_authn's cache counters (hits, misses) under `stat_prefix`
/// (`http.<prefix>.jwt_authn.`); None when Envoy shows neither.
fn cache_counters(envoy: &Envoy, stat_prefix: &str) -> Option<(u64, u64)> {
    let response = envoy.admin_get("/stats?filter=jwt_authn\\.jwt_cache_").ok()?;
    let text = String::from_utf8_lossy(&response.body);
    let value = |name: &str| {
        let full = format!("http.{stat_prefix}.jwt_authn.{name}: ");
        text.lines()
            .find_map(|line| line.strip_prefix(&full).and_then(|v| v.trim().parse::<u64>().ok()))
    };
    Some((value("jwt_cache_hit")?, value("jwt_cache_miss")?))
}

fn hit_rate(before: Option<(u64, u64)>, after: Option<(u64, u64)>) -> Option<f64> {
    let ((h0, m0), (h1, m1)) = (before?, after?);
    let (hits, lookups) = (h1.checked_sub(h0)?, (h1 + m1).checked_sub(h0 + m0)?);
    (lookups > 0).then(|| hits as f64 / lookups as f64)
}

// ----------------------------------------------------------------------------
// The configurations
// ----------------------------------------------------------------------------

fn parse_yaml(text: &str) -> Result<Value, String> {
    serde_saphyr::from_str(text).map_err(|e| format!("not YAML: {e}"))
}

/// How many strings in `v` equal `s` (names and runtimes of filters).
fn count_strings(v: &Value, s: &str) -> usize {
    match v {
        Value::String(x) => usize::from(x == s),
        Value::Array(a) => a.iter().map(|x| count_strings(x, s)).sum(),
        Value::Object(o) => o.values().map(|x| count_strings(x, s)).sum(),
        _ => 0,
    }
}

/// Every value of the key `key` anywhere in `v`.
fn values_of<'a>(v: &'a Value, key: &str, out: &mut Vec<&'a Value>) {
    match v {
        Value::Array(a) => a.iter().for_each(|x| values_of(x, key, out)),
        Value::Object(o) => {
            for (k, x) in o {
                if k == key {
                    out.push(x);
                }
                values_of(x, key, out);
            }
        }
        _ => {}
    }
}

/// What a bootstrap loads, from its parsed form.
struct Facts {
    /// Filters run by V8 (`runtime: envoy.wasm.runtime.v8`).
    v8: usize,
    /// The upstream HTTP filters of its clusters other than the signer and
    /// the codec (the signing guards), one name per cluster and filter.
    guards: Vec<String>,
    access_log: bool,
    /// jwt_authn's `jwt_cache_size`, where set.
    cache_size: Option<u64>,
    /// What jwt_authn's providers write for the filter: `payload_in_metadata`,
    /// `header_in_metadata`, `forward_payload_header` (those set).
    jwt_outputs: Vec<&'static str>,
}

impl Facts {
    fn of(config: &Value) -> Facts {
        let mut sizes = Vec::new();
        values_of(config, "jwt_cache_size", &mut sizes);
        let mut logs = Vec::new();
        values_of(config, "access_log", &mut logs);
        Facts {
            v8: count_strings(config, "envoy.wasm.runtime.v8"),
            guards: guards(config),
            access_log: !logs.is_empty(),
            cache_size: sizes.first().and_then(|v| v.as_u64()),
            jwt_outputs: ["payload_in_metadata", "header_in_metadata", "forward_payload_header"]
                .into_iter()
                .filter(|key| {
                    let mut found = Vec::new();
                    values_of(config, key, &mut found);
                    !found.is_empty()
                })
                .collect(),
        }
    }

    fn v8_text(&self) -> String {
        if self.v8 > 0 {
            format!("**loads V8** ({} filter(s) with `envoy.wasm.runtime.v8`)", self.v8)
        } else {
            "no V8 (no `envoy.wasm.runtime.v8` in its bootstrap)".into()
        }
    }
}

/// The upstream HTTP filters of every cluster other than
/// aws_request_signing and upstream_codec, by kind.
fn guards(config: &Value) -> Vec<String> {
    let clusters = config["static_resources"]["clusters"]
        .as_array()
        .map_or(&[][..], Vec::as_slice);
    clusters
        .iter()
        .filter_map(|c| {
            c.pointer(
                "/typed_extension_protocol_options/envoy.extensions.upstreams.http.v3.HttpProtocolOptions/http_filters",
            )
            .and_then(Value::as_array)
        })
        .flatten()
        .filter_map(|f| f["name"].as_str())
        .filter(|n| {
            ![
                "envoy.filters.http.aws_request_signing",
                "envoy.filters.http.upstream_codec",
            ]
            .contains(n)
        })
        .map(|n| match n {
            "envoy.filters.http.wasm" => "wasm in V8".to_string(),
            "envoy.filters.http.match_delegate" => "wasm in V8, skipped for a signed request".to_string(),
            "envoy.filters.http.dynamic_modules" => "native, a dynamic module".to_string(),
            other => other.to_string(),
        })
        .collect()
}

/// How a configuration's Envoy is started.
enum Launch {
    /// `e2e::envoy::Envoy` (admin on loopback); the listener's name.
    Harness(&'static str),
    /// `Bare` (the reference: no admin), with its listener's port (the
    /// JSON pointer) set to a free port for each Envoy: two Envoys on one
    /// port would share its connections (Envoy's listeners use
    /// SO_REUSEPORT), each measuring part of the other's load.
    Bare { config: Value, port: String },
}

struct Config {
    id: String,
    /// Short, for the chart.
    name: String,
    what: String,
    /// The bootstrap Envoy runs.
    text: String,
    facts: Facts,
    launch: Launch,
    /// jwt_authn's stat prefix, where an admin interface shows its counters.
    stat_prefix: Option<&'static str>,
}

impl Config {
    fn label(&self) -> String {
        format!("{} {}", self.id, self.name)
    }

    /// The token modes it is timed in: a variant (`F2-log`) only with one
    /// token repeated.
    fn modes(&self) -> &'static [Mode] {
        if self.id.contains('-') {
            &[Mode::Repeated]
        } else {
            &Mode::ALL
        }
    }
}

/// Where the run's pieces listen and what the Envoys trust.
struct Local {
    bundle: PathBuf,
    jwks_uri: String,
    jwks_port: u16,
    dns_port: u16,
    wasm: PathBuf,
    native: Option<PathBuf>,
}

fn lattice_args(local: &Local, build: FilterBuild) -> LatticeArgs {
    LatticeArgs {
        domain: Some(DOMAIN.into()),
        region: Some(REGION.into()),
        lattice_endpoint: Some(UPSTREAM.into()),
        lattice_ca: Some(local.bundle.display().to_string()),
        credentials: Some(Credentials::Env),
        wasm: Some(local.wasm.display().to_string()),
        filter: Some(build),
        native_module: match build {
            FilterBuild::Native => local.native.as_ref().map(|p| p.display().to_string()),
            FilterBuild::Wasm => None,
        },
        service_hosts: Vec::new(),
    }
}

fn loopback() -> ListenArgs {
    ListenArgs {
        listen: Some("127.0.0.1:0".into()),
        admin: Some("127.0.0.1:0".into()),
    }
}

/// `envoy-gen frontend` for this run (as tests/src/stack.rs renders it).
fn frontend(local: &Local, build: FilterBuild) -> Result<String, String> {
    let overrides = Overrides {
        lattice: lattice_args(local, build),
        frontend: FrontendArgs {
            issuer: Some(ISSUER.into()),
            audiences: vec![AUDIENCE.into()],
            jwks_uri: Some(local.jwks_uri.clone()),
            jwks_ca: Some(local.bundle.display().to_string()),
            listen: loopback(),
            ..FrontendArgs::default()
        },
    };
    envoy_gen::render_frontend(None, &overrides).map_err(|e| format!("envoy-gen frontend: {e}"))
}

/// `envoy-gen sidecar --service app2` from the reference spec, for this run.
fn sidecar(local: &Local) -> Result<String, String> {
    let spec_path = workspace_root().join(SIDECAR_SPEC);
    let spec = std::fs::read_to_string(&spec_path).map_err(|e| format!("{}: {e}", spec_path.display()))?;
    let overrides = Overrides {
        lattice: lattice_args(local, FilterBuild::Wasm),
        frontend: FrontendArgs::default(),
    };
    let system = envoy_gen::load(Some((&spec_path, &spec)), &overrides)?;
    envoy_gen::sidecar::render(&system, "app2", &loopback())
        .map_err(|problems| format!("envoy-gen sidecar: {}", envoy_gen::report(&problems, None)))
}

/// The floor: the frontend's cluster for app1 with its upstream filters
/// minus the guard (aws_request_signing then upstream_codec), behind a
/// listener whose only filter is the router. Returns the bootstrap and the
/// filters taken out.
fn floor(frontend: &Value) -> Result<(Value, Vec<String>), String> {
    let cluster_name = "lattice_app1";
    let mut cluster = frontend["static_resources"]["clusters"]
        .as_array()
        .and_then(|c| c.iter().find(|c| c["name"] == cluster_name))
        .cloned()
        .ok_or_else(|| format!("the rendered frontend has no cluster {cluster_name}"))?;
    let filters = cluster
        .pointer_mut(
            "/typed_extension_protocol_options/envoy.extensions.upstreams.http.v3.HttpProtocolOptions/http_filters",
        )
        .and_then(Value::as_array_mut)
        .ok_or_else(|| format!("the rendered cluster {cluster_name} has no upstream HTTP filters"))?;
    let kept = [
        "envoy.filters.http.aws_request_signing",
        "envoy.filters.http.upstream_codec",
    ];
    let mut removed = Vec::new();
    filters.retain(|f| {
        let name = f["name"].as_str().unwrap_or_default();
        let keep = kept.contains(&name);
        if !keep {
            let inner = f["typed_config"]["config"]["root_id"]
                .as_str()
                .or_else(|| f["typed_config"]["filter_name"].as_str())
                .unwrap_or("?");
            removed.push(format!("`{name}` ({inner})"));
        }
        keep
    });
    let names: Vec<&str> = filters.iter().filter_map(|f| f["name"].as_str()).collect();
    if names != kept {
        return Err(format!(
            "the rendered cluster {cluster_name}'s upstream filters without the guard are {names:?}, not {kept:?}"
        ));
    }
    let config = json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "floor",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                        "stat_prefix": "floor",
                        "route_config": {"virtual_hosts": [{
                            "name": "all",
                            "domains": ["*"],
                            "routes": [{"match": {"prefix": "/"}, "route": {"cluster": cluster_name, "host_rewrite_literal": host("app1")}}],
                        }]},
                        "http_filters": [{
                            "name": "envoy.filters.http.router",
                            "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                        }],
                    },
                }]}],
            }],
            "clusters": [cluster],
        },
    });
    Ok((config, removed))
}

/// One change made to the reference's configuration (after its variables
/// were substituted).
struct Change {
    /// A JSON pointer into the configuration.
    pointer: String,
    from: Value,
    to: Value,
    /// What the report shows instead of `to`, when it is set per Envoy.
    shown: Option<&'static str>,
    why: &'static str,
}

/// The reference's variables (launch_envoy.sh runs envsubst on exactly
/// these) and where the reference runs here.
struct ReferenceInputs {
    vars: Vec<(&'static str, String)>,
    listen_port: u16,
    dns_port: u16,
    jwks_port: u16,
    ca_file: String,
}

/// `${NAME}` replaced by each variable's value; an error if any `${` is left.
fn substitute(template: &str, vars: &[(&str, String)]) -> Result<String, String> {
    let mut text = template.to_string();
    for (name, value) in vars {
        let placeholder = format!("${{{name}}}");
        if !text.contains(&placeholder) {
            return Err(format!("the reference has no {placeholder}"));
        }
        text = text.replace(&placeholder, value);
    }
    match text.find("${") {
        Some(at) => Err(format!(
            "a variable is left unsubstituted: {}",
            text.get(at..).unwrap_or_default().chars().take(40).collect::<String>()
        )),
        None => Ok(text),
    }
}

/// The index of the element of the array at `pointer` whose `name` is `name`.
fn index_of(doc: &Value, pointer: &str, name: &str) -> Result<usize, String> {
    doc.pointer(pointer)
        .and_then(Value::as_array)
        .and_then(|a| a.iter().position(|x| x["name"] == name))
        .ok_or_else(|| format!("the reference has no `{name}` in {pointer}"))
}

/// Sets the value at `pointer`, which must be `from` (so that a different
/// copy of the reference fails here instead of being changed elsewhere).
fn change(doc: &mut Value, pointer: String, from: Value, to: Value, why: &'static str) -> Result<Change, String> {
    let slot = doc
        .pointer_mut(&pointer)
        .ok_or_else(|| format!("the reference has nothing at {pointer}"))?;
    if *slot != from {
        return Err(format!("the reference has {slot} at {pointer}, not {from}"));
    }
    *slot = to.clone();
    Ok(Change {
        pointer,
        from,
        to,
        shown: None,
        why,
    })
}

/// Every leaf where `a` and `b` differ, as JSON pointers.
fn differences(a: &Value, b: &Value, at: &str, out: &mut Vec<String>) {
    match (a, b) {
        (Value::Object(x), Value::Object(y)) => {
            for key in x.keys().chain(y.keys().filter(|k| !x.contains_key(*k))) {
                let escaped = key.replace('~', "~0").replace('/', "~1");
                differences(
                    x.get(key).unwrap_or(&Value::Null),
                    y.get(key).unwrap_or(&Value::Null),
                    &format!("{at}/{escaped}"),
                    out,
                );
            }
        }
        (Value::Array(x), Value::Array(y)) if x.len() == y.len() => {
            for (i, (p, q)) in x.iter().zip(y).enumerate() {
                differences(p, q, &format!("{at}/{i}"), out);
            }
        }
        _ if a != b => out.push(at.to_string()),
        _ => {}
    }
}

fn listen_pointer(listener: &str) -> String {
    format!("{listener}/address/socket_address/port_value")
}

/// The reference as this benchmark runs it: the copy with its variables
/// substituted, parsed, and only these addresses changed. Returns the
/// configuration and the changes; an error when the copy is not what these
/// changes expect, or when anything else would differ.
fn reference_config(inputs: &ReferenceInputs) -> Result<(Value, Vec<Change>), String> {
    let text = substitute(REFERENCE, &inputs.vars)?;
    let original = parse_yaml(&text).map_err(|e| format!("the reference: {e}"))?;
    let mut doc = original.clone();
    let mut changes = Vec::new();
    let listener = format!(
        "/static_resources/listeners/{}",
        index_of(&doc, "/static_resources/listeners", "http_connect")?
    );
    changes.push(change(
        &mut doc,
        format!("{listener}/address/socket_address/address"),
        json!("0.0.0.0"),
        json!("127.0.0.1"),
        "its listener: loopback only",
    )?);
    changes.push(Change {
        shown: Some("a free port, chosen for each Envoy"),
        ..change(
            &mut doc,
            listen_pointer(&listener),
            json!(80),
            json!(inputs.listen_port),
            "its listener: 80 is privileged and one port for all; each Envoy gets its own (two Envoys on one port \
             would share its connections: Envoy's listeners use SO_REUSEPORT)",
        )?
    });
    let filters = format!("{listener}/filter_chains/0/filters/0/typed_config/http_filters");
    let dfp_filter = format!(
        "{filters}/{}/typed_config/dns_cache_config/typed_dns_resolver_config/typed_config",
        index_of(&doc, &filters, "envoy.filters.http.dynamic_forward_proxy")?
    );
    let proxy_cluster = format!(
        "/static_resources/clusters/{}",
        index_of(&doc, "/static_resources/clusters", "outbound_proxy")?
    );
    let dfp_cluster =
        format!("{proxy_cluster}/cluster_type/typed_config/dns_cache_config/typed_dns_resolver_config/typed_config");
    // The filter's and the cluster's DNS cache configurations must stay
    // identical (same cache name): both are changed alike.
    for resolver in [&dfp_filter, &dfp_cluster] {
        changes.push(change(
            &mut doc,
            format!("{resolver}/resolvers/0/socket_address/port_value"),
            json!(53),
            json!(inputs.dns_port),
            "its c-ares resolver (127.0.0.1, TCP): the port of this run's DNS server, which answers \
             app1/2/3.<domain> with 127.0.0.1",
        )?);
        changes.push(change(
            &mut doc,
            format!("{resolver}/use_resolvers_as_fallback"),
            json!(true),
            json!(false),
            "use that resolver: as a fallback c-ares uses it only when the system has no nameserver, and this \
             machine's /etc/resolv.conf names one (in the deployment the VPC's resolver answers)",
        )?);
    }
    changes.push(change(
        &mut doc,
        format!(
            "{proxy_cluster}/transport_socket/typed_config/common_tls_context/validation_context/trusted_ca/filename"
        ),
        json!("/etc/ssl/certs/ca-bundle.crt"),
        json!(inputs.ca_file),
        "its CA file: this run's CA (the deployment adds its private CA to the system bundle)",
    )?);
    let jwks_cluster = format!(
        "/static_resources/clusters/{}",
        index_of(&doc, "/static_resources/clusters", "jwks")?
    );
    changes.push(change(
        &mut doc,
        format!("{jwks_cluster}/load_assignment/endpoints/0/lb_endpoints/0/endpoint/address/socket_address/port_value"),
        json!(443),
        json!(inputs.jwks_port),
        "its jwks cluster: the port of this run's IdP (its host is ${JWKS_HOST}, a variable)",
    )?);
    let mut changed = Vec::new();
    differences(&original, &doc, "", &mut changed);
    let mut expected: Vec<String> = changes.iter().map(|c| c.pointer.clone()).collect();
    changed.sort();
    expected.sort();
    if changed != expected {
        return Err(format!(
            "bug: the reference differs at {changed:?}, not only where it was changed ({expected:?})"
        ));
    }
    Ok((doc, changes))
}

/// What the check Envoy (the reference plus an admin interface) showed.
struct ReferenceCheck {
    clusters: Vec<String>,
    /// jwt_authn's hit rate per mode (after one pass over the tokens).
    hit_rate: Vec<(Mode, Option<f64>)>,
}

/// Runs the reference with a loopback admin interface added (and its
/// listener on port 0), not measured: its clusters show which credential
/// providers its default chain created (none may reach a metadata
/// endpoint), and its counters jwt_authn's cache hit rate in each mode.
async fn check_reference(reference: &Value, port: &str, loads: &[(Mode, Arc<Load>)]) -> Result<ReferenceCheck, String> {
    let mut doc = reference.clone();
    if let Some(root) = doc.as_object_mut() {
        root.insert(
            "admin".into(),
            json!({"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}}),
        );
    }
    if let Some(port) = doc.pointer_mut(port) {
        *port = json!(0);
    }
    let envoy = Envoy::start_with_env(&doc.to_string(), &AwsCredentials::test().env())
        .map_err(|e| format!("R's check Envoy: {e}"))?;
    let clusters = checked_clusters(&envoy).map_err(|e| format!("R: {e}"))?;
    let port = envoy
        .listeners
        .iter()
        .find(|(n, _)| n == "http_connect")
        .map(|(_, p)| *p)
        .ok_or("R's check Envoy has no listener http_connect")?;
    let addr = SocketAddr::from(([127, 0, 0, 1], port));
    let mut process = Process::Harness(envoy);
    let mut hit_rate = Vec::new();
    for (mode, load) in loads {
        ready(&mut process, addr, load)
            .await
            .map_err(|e| format!("R's check Envoy: {e}"))?;
        let envoy = process.envoy().ok_or("bug: the check Envoy has no admin")?;
        let n = load.bearers.len().max(200);
        requests(addr, load.clone(), load.bearers.len()).await?;
        let before = cache_counters(envoy, "ingress_http");
        requests(addr, load.clone(), n).await?;
        hit_rate.push((*mode, self::hit_rate(before, cache_counters(envoy, "ingress_http"))));
    }
    Ok(ReferenceCheck { clusters, hit_rate })
}

// ----------------------------------------------------------------------------
// Measuring
// ----------------------------------------------------------------------------

/// One (configuration, token mode) Envoy and what was measured of it.
struct Running<'a> {
    config: &'a Config,
    mode: Mode,
    process: Process,
    addr: SocketAddr,
    load: Arc<Load>,
    cpu_us: Vec<f64>,
    throughput: Vec<f64>,
    hit_rate: Vec<f64>,
}

impl<'a> Running<'a> {
    async fn start(config: &'a Config, mode: Mode, load: Arc<Load>) -> Result<Running<'a>, String> {
        let env = AwsCredentials::test().env();
        let (mut process, addr) = match config.launch {
            Launch::Harness(listener) => {
                let envoy = Envoy::start_with_env(&config.text, &env)?;
                checked_clusters(&envoy)?;
                let port = envoy
                    .listeners
                    .iter()
                    .find(|(n, _)| n == listener)
                    .map(|(_, p)| *p)
                    .ok_or_else(|| format!("no listener {listener} in {:?}", envoy.listeners))?;
                (Process::Harness(envoy), SocketAddr::from(([127, 0, 0, 1], port)))
            }
            Launch::Bare {
                config: ref reference,
                port: ref pointer,
            } => {
                let port = free_port()?;
                let mut reference = reference.clone();
                *reference
                    .pointer_mut(pointer)
                    .ok_or_else(|| format!("bug: no listener port at {pointer}"))? = json!(port);
                (
                    Process::Bare(Bare::spawn(&reference.to_string(), &env)?),
                    SocketAddr::from(([127, 0, 0, 1], port)),
                )
            }
        };
        ready(&mut process, addr, &load).await?;
        pin_to_cpu0(process.pid())?;
        Ok(Running {
            config,
            mode,
            process,
            addr,
            load,
            cpu_us: Vec::new(),
            throughput: Vec::new(),
            hit_rate: Vec::new(),
        })
    }

    fn label(&self) -> String {
        format!("{}, {}", self.config.id, self.mode.short())
    }

    fn counters(&self) -> Option<(u64, u64)> {
        cache_counters(self.process.envoy()?, self.config.stat_prefix?)
    }

    /// One pass over the tokens (so that a cache that can hold them all
    /// does), then `warmup` of closed loop.
    async fn warm_up(&self, warmup: Duration) -> Result<(), String> {
        requests(self.addr, self.load.clone(), self.load.bearers.len()).await?;
        closed_loop_load(self.addr, self.load.clone(), warmup).await?;
        Ok(())
    }

    async fn closed_run(&mut self, duration: Duration) -> Result<(), String> {
        let pid = self.process.pid();
        // Admin requests run on Envoy's main thread: read the counters
        // outside the CPU-time window.
        let counted = self.counters();
        let before = cpu_seconds(pid);
        let start = Instant::now();
        let n = closed_loop_load(self.addr, self.load.clone(), duration).await?;
        let elapsed = start.elapsed().as_secs_f64();
        let used = cpu_seconds(pid) - before;
        if let Some(rate) = hit_rate(counted, self.counters()) {
            self.hit_rate.push(rate);
        }
        let per_request = used * 1e6 / n.max(1) as f64;
        eprintln!(
            "  {}: {per_request:.1} µs/request, {:.0} req/s",
            self.label(),
            n as f64 / elapsed
        );
        self.cpu_us.push(per_request);
        self.throughput.push(n as f64 / elapsed);
        Ok(())
    }
}

/// What was measured of one (configuration, token mode) Envoy.
struct Row {
    id: String,
    label: String,
    mode: Mode,
    cpu: Spread,
    /// CPU µs/request of each round, in round order.
    cpu_rounds: Vec<f64>,
    /// Closed-loop requests/s (wall clock), median of the rounds.
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
    /// jwt_authn's cache hit rate over the rounds, where shown.
    hit_rate: Option<Spread>,
}

impl Row {
    fn per_core(&self) -> f64 {
        1e6 / self.cpu.median
    }
}

fn find<'a>(rows: &'a [Row], id: &str, mode: Mode) -> Option<&'a Row> {
    rows.iter().find(|r| r.id == id && r.mode == mode)
}

/// Per round: `id`'s CPU µs/request minus F0's, same mode.
fn added(rows: &[Row], id: &str, mode: Mode) -> Option<Vec<f64>> {
    let a = find(rows, id, mode)?;
    let f0 = find(rows, F0, mode)?;
    Some(a.cpu_rounds.iter().zip(&f0.cpu_rounds).map(|(x, y)| x - y).collect())
}

fn added_spread(rows: &[Row], id: &str, mode: Mode) -> Option<Spread> {
    Spread::of(&added(rows, id, mode)?)
}

/// Per round: what `a` adds over F0 minus `factor` × what `b` adds (≤ 0
/// when `a` adds at most `factor` × what `b` adds).
fn excess(rows: &[Row], a: &str, b: &str, factor: f64, mode: Mode) -> Option<Spread> {
    let (x, y) = (added(rows, a, mode)?, added(rows, b, mode)?);
    let per_round: Vec<f64> = x.iter().zip(&y).map(|(x, y)| x - factor * y).collect();
    Spread::of(&per_round)
}

#[derive(Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Debug)]
enum Verdict {
    Met,
    Undecided,
    NotMeasured,
    NotMet,
}

impl Verdict {
    /// As the main bench's `cpu_target`, on a per-round excess over the
    /// limit (≤ 0 meets it): MET when even the worst round does, NOT MET
    /// when even the best round does not, UNDECIDED when the spread
    /// straddles it.
    fn of(excess: Option<Spread>) -> Verdict {
        match excess {
            None => Verdict::NotMeasured,
            Some(s) if s.max <= 0.0 => Verdict::Met,
            Some(s) if s.min > 0.0 => Verdict::NotMet,
            Some(_) => Verdict::Undecided,
        }
    }

    fn text(self) -> &'static str {
        match self {
            Verdict::Met => "MET",
            Verdict::Undecided => "UNDECIDED (the rounds' spread straddles the target)",
            Verdict::NotMeasured => "NOT MEASURED",
            Verdict::NotMet => "NOT MET",
        }
    }
}

fn show(s: Option<Spread>) -> String {
    s.map_or_else(|| "n/a".into(), |s| s.show())
}

/// "adds X / Y = r×" for the medians.
fn ratio(a: Option<Spread>, b: Option<Spread>) -> String {
    match (a, b) {
        (Some(a), Some(b)) if b.median > 0.0 => format!("{:.2}×", a.median / b.median),
        _ => "n/a".into(),
    }
}

/// The targets, each with its verdict, from the rows alone.
fn targets(rows: &[Row]) -> Vec<(Verdict, String)> {
    let rot = Mode::Rotating;
    let rep = Mode::Repeated;
    let mut out = Vec::new();

    let (f1, r) = (added_spread(rows, F1, rot), added_spread(rows, R, rot));
    let e = excess(rows, F1, R, TARGET_F1_ROTATING, rot);
    out.push((
        Verdict::of(e),
        format!(
            "1. With {}, F1 adds at most {TARGET_F1_ROTATING}× what R adds (over F0, CPU µs/request). F1 adds {} µs, \
             R adds {} µs (median [min, max] of rounds, paired with F0 per round): {} of R's by the medians. Per \
             round, F1's addition − {TARGET_F1_ROTATING} × R's is {} µs (≤ 0 meets the target).",
            rot.name(),
            show(f1),
            show(r),
            ratio(f1, r),
            show(e)
        ),
    ));

    let (f1, f2, r) = (
        added_spread(rows, F1, rep),
        added_spread(rows, F2, rep),
        added_spread(rows, R, rep),
    );
    let (e2, e1) = (
        excess(rows, F2, R, TARGET_F2_REPEATED, rep),
        excess(rows, F1, R, 1.0, rep),
    );
    let (v2, v1) = (Verdict::of(e2), Verdict::of(e1));
    out.push((
        v1.max(v2),
        format!(
            "2. With {}, F2 adds at most {TARGET_F2_REPEATED}× what R adds, and F1 no more than R. F2 adds {} µs, \
             F1 {} µs, R {} µs over F0. (a) F2: {} of R's by the medians; per round F2's addition − \
             {TARGET_F2_REPEATED} × R's is {} µs: {}. (b) F1: {} of R's; per round F1 − R is {} µs: {}.",
            rep.name(),
            show(f2),
            show(f1),
            show(r),
            ratio(f2, r),
            show(e2),
            v2.text(),
            ratio(f1, r),
            show(e1),
            v1.text()
        ),
    ));
    out
}

/// The report's lines on the sidecar path (no target).
fn sidecar_lines(rows: &[Row]) -> Vec<String> {
    Mode::ALL
        .iter()
        .map(|&mode| {
            let s = added_spread(rows, S, mode);
            let rss = find(rows, S, mode)
                .zip(find(rows, F0, mode))
                .map(|(s, f)| s.rss_mb - f.rss_mb);
            format!(
                "with {}: S adds {} µs CPU/request over F0 (S {} µs, F0 {} µs), and {} MB of RSS",
                mode.name(),
                show(s),
                find(rows, S, mode).map_or_else(|| "n/a".into(), |r| format!("{:.1}", r.cpu.median)),
                find(rows, F0, mode).map_or_else(|| "n/a".into(), |r| format!("{:.1}", r.cpu.median)),
                rss.map_or_else(|| "n/a".into(), |d| format!("{d:+.1}"))
            )
        })
        .collect()
}

// ----------------------------------------------------------------------------
// The report
// ----------------------------------------------------------------------------

struct Inputs<'a> {
    rows: &'a [Row],
    configs: &'a [Config],
    notes: &'a [String],
    settings: &'a Settings,
    token_bytes: usize,
    reference_vars: &'a [(&'static str, String)],
    changes: &'a [Change],
    check: &'a ReferenceCheck,
    dns_queries: usize,
    chart_file: Option<&'a str>,
    /// The callgrind phase's counts, when it ran.
    counted: Option<&'a attribution::Counted>,
}

fn percent(s: &Spread) -> String {
    format!("{:.1} [{:.1}, {:.1}]", 100.0 * s.median, 100.0 * s.min, 100.0 * s.max)
}

fn report(inputs: &Inputs<'_>) -> String {
    let rows = inputs.rows;
    let settings = inputs.settings;
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# The whole path, against the reference as deployed\n\nProduced by `make bench-path` (bench/src/path.rs; \
         `make bench` runs it after the arms); numbers from one run on the machine named below.\n"
    );
    let _ = writeln!(out, "{}", machine());
    let _ = writeln!(
        out,
        "Every configuration runs in its own Envoy (`--concurrency 1`, pinned to CPU 0); the load generator, the \
         upstream, the IdP and the DNS server share CPU 1. Requests: `GET /app1/<configuration>` (a variant's: its \
         configuration's path, lower-cased when it adds no identity) with `Host: {}` \
         and `authorization: Bearer <token>`, HTTP/1.1 keep-alive; closed loop over {CLOSED_CONNECTIONS} \
         connections, {} interleaved rounds of {}s after one pass over the tokens and {}s of warm-up; latency: open \
         loop at {OPEN_RATE} req/s for {}s over {OPEN_CONNECTIONS} connections, measured from each request's \
         scheduled send time (queueing counts). Tokens: RS256, {} bytes, {} scopes in `scp` ({}), distinct `sub` and \
         `jti`; \"{}\" sends the first of them every time, \"{}\" all of them in round-robin order (one order across \
         the connections). The same tokens (minted once, valid for 6 h) go to every Envoy.\n",
        host("app1"),
        settings.rounds,
        settings.closed.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        settings.open.as_secs_f64(),
        inputs.token_bytes,
        SCOPES.len(),
        SCOPES.map(|s| format!("`{s}`")).join(", "),
        Mode::Repeated.name(),
        Mode::Rotating.name()
    );
    let _ = writeln!(
        out,
        "The upstream is one HTTPS server in the benchmark's process on {UPSTREAM} (rustls, one thread; its \
         certificate names app1/2/3.{DOMAIN}, issued by the run's CA, which every Envoy trusts). It answers 200 \
         with a 2-byte body only to a request that arrived over TLS with SNI and Host `{}`, signed for \
         `vpc-lattice-svcs` in {REGION} with the environment's credentials (`authorization: AWS4-HMAC-SHA256 \
         Credential={TEST_ACCESS_KEY_ID}/...`, `x-amz-date`, the session token, `x-amz-content-sha256: \
         UNSIGNED-PAYLOAD`) and, from F1, F2 and R, carrying `x-jwt-subject` and `x-jwt-scope-test.all: true`; \
         otherwise 403, and any answer but 200 fails the run. So every row below is a request that was verified, \
         mapped (where the configuration does) and signed.\n",
        host("app1")
    );

    let _ = writeln!(out, "## Configurations\n");
    for c in inputs.configs {
        let _ = writeln!(out, "- **{}** {}: {}; {}.", c.id, c.name, c.what, c.facts.v8_text());
    }
    let _ = writeln!(
        out,
        "\nAll sign with the environment's credentials only: F0, F1, F2 and S are rendered with `credentials: env` \
         (`credential_provider: {{custom_credential_provider_chain: true, environment_credential_provider: {{}}}}`); \
         R keeps its default chain, which finds them in the environment (see \"The reference as run\"). Every Envoy's \
         environment holds AWS_ACCESS_KEY_ID, AWS_SECRET_ACCESS_KEY, AWS_SESSION_TOKEN, PATH and \
         AWS_EC2_METADATA_DISABLED=true, nothing else, and every Envoy with an admin interface was checked to have no \
         credentials-metadata cluster ({}) and no cluster naming {METADATA_ADDRESS}.\n",
        METADATA_CLUSTERS.map(|c| format!("`{c}`")).join(", ")
    );

    let _ = writeln!(out, "## Results\n");
    if let Some(chart) = inputs.chart_file {
        let _ = writeln!(
            out,
            "![Envoy CPU µs per request by configuration, both token modes (median of rounds, whiskers min to max)]({chart})\n"
        );
    }
    let _ = writeln!(
        out,
        "| configuration | tokens | Envoy CPU µs/request, median [min, max] | over F0, µs (paired per round) | req/s per core | closed-loop req/s | p50 ms | p99 ms | RSS after, MB | jwt_authn cache hits % |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let over = if r.id == F0 {
            String::new()
        } else {
            show(added_spread(rows, &r.id, r.mode))
        };
        let hits = match (&r.hit_rate, r.id.as_str()) {
            (Some(h), _) => percent(h),
            (None, R) => inputs
                .check
                .hit_rate
                .iter()
                .find(|(m, _)| *m == r.mode)
                .and_then(|(_, h)| *h)
                .map_or_else(|| "n/a".into(), |h| format!("{:.1} (check Envoy)", 100.0 * h)),
            (None, F0 | S) => "no token checked".into(),
            (None, _) => "n/a".into(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} [{:.1}, {:.1}] | {over} | {:.0} | {:.0} | {:.2} | {:.2} | {:.1} | {hits} |",
            r.label,
            r.mode.short(),
            r.cpu.median,
            r.cpu.min,
            r.cpu.max,
            r.per_core(),
            r.throughput,
            r.p50_ms,
            r.p99_ms,
            r.rss_mb
        );
    }
    let _ = writeln!(
        out,
        "\nreq/s per core is 1 ÷ CPU time per request (what one Envoy worker sustains); closed-loop req/s is what \
         this machine's load generator, upstream and Envoy reached together, bounded by CPU 1 as much as by Envoy. \
         RSS after: after the open-loop run. Cache hits: jwt_authn's `jwt_cache_hit` ÷ (`jwt_cache_hit` + \
         `jwt_cache_miss`) over each round, read from the admin interface; R has none, so its rate comes from the \
         check Envoy (see below), over one pass of the tokens after a first pass (the repeated token: 200 requests \
         after one)."
    );
    for note in inputs.notes {
        let _ = writeln!(out, "\nNote: {note}");
    }

    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(
        out,
        "Each is judged on the rounds, as `make bench`'s CPU targets: a configuration's addition over F0 is paired \
         with F0 per round, and the target holds in a round when the addition minus the allowed multiple of R's is ≤ 0. \
         MET when every round meets it, NOT MET when none does, UNDECIDED when the rounds' spread straddles it.\n"
    );
    for (verdict, text) in targets(rows) {
        let _ = writeln!(out, "- {}: {text}", verdict.text());
    }
    let _ = writeln!(out, "- Reported, no target: 3. The sidecar path S over F0:");
    for line in sidecar_lines(rows) {
        let _ = writeln!(out, "  - {line}.");
    }

    if let Some(counted) = inputs.counted {
        attribution::section(
            &mut out,
            counted,
            &|mode| find(rows, F0, mode).map(|r| r.cpu.median),
            &|id, mode| added_spread(rows, id, mode).map(|s| s.median),
        );
    }

    reference_section(&mut out, inputs);

    let _ = writeln!(out, "\n## Notes\n");
    let _ = writeln!(
        out,
        "- The load generator is the main bench's own (bench/src/main.rs `closed_loop_load`, `open_loop_load`), \
         which sends the next token of the rotation with each request. `oha` cannot do that: its `-H` sets one \
         header value for the whole run, so it could only measure the repeated token."
    );
    let _ = writeln!(
        out,
        "- F1, F2 and S write one JSON access-log line per request to stdout (a file here; CloudWatch Logs on ECS), \
         as envoy-gen renders them; F0 and R log nothing per request at the level run here. That is part of what \
         a user pays on the generated path."
    );
    let _ = writeln!(
        out,
        "- The reference's launch_envoy.sh starts Envoy with `-l trace`. Every Envoy here runs at `--log-level warn`: \
         trace logging would add far more than everything measured (and log tokens and signatures)."
    );
    out
}

fn reference_section(out: &mut String, inputs: &Inputs<'_>) {
    let _ = writeln!(out, "\n## The reference as run\n");
    let _ = writeln!(
        out,
        "bench/reference/envoy.yaml.in is `lattice_soln/containers/envoy/envoy.yaml.in` of \
         aws-samples/modern-web-authzn-lattice at commit {REFERENCE_COMMIT}, byte for byte. The benchmark \
         substitutes its variables as launch_envoy.sh does (envsubst of exactly these):\n"
    );
    for (name, value) in inputs.reference_vars {
        let _ = writeln!(out, "- `${{{name}}}` = `{value}`");
    }
    let _ = writeln!(
        out,
        "\nthen parses it and changes only these values (bench/src/path.rs `reference_config`, which checks each \
         old value and that nothing else differs):\n"
    );
    for c in inputs.changes {
        let to = c.shown.map_or_else(|| format!("`{}`", c.to), String::from);
        let _ = writeln!(out, "- `{}`: `{}` → {to}: {}.", c.pointer, c.from, c.why);
    }
    let _ = writeln!(
        out,
        "\nEverything else, every filter included, is as the copy has it. Its dynamic forward proxy keeps resolving \
         `app1.{DOMAIN}` (its `host_rewrite_literal`) itself, through c-ares over TCP, from this run's DNS server \
         (a few lines in bench/src/path.rs: A 127.0.0.1 for app1/2/3.{DOMAIN}, NXDOMAIN otherwise), which answered \
         {} queries in the whole run; the proxy then connects to port 443 of that address, which is why the upstream \
         listens on {UPSTREAM}. Replacing the dynamic forward proxy's cluster with a static one was the alternative; \
         it would change a filter's work (no host rewrite, no DNS cache lookup), so it was not done.",
        inputs.dns_queries
    );
    let _ = writeln!(
        out,
        "\nCredentials: the reference names no `credential_provider`, so Envoy builds its default chain \
         (environment, credentials file, container, instance profile, web identity). Its environment holds the \
         three AWS_* credentials and AWS_EC2_METADATA_DISABLED=true, with which Envoy 1.40 does not create the \
         instance-profile provider (credential_provider_chains.cc); no AWS_CONTAINER_CREDENTIALS_* or web-identity \
         variable is set, so neither of those is created either, and HOME is unset (no credentials file). Checked: \
         a check Envoy (the same configuration with a loopback admin interface added and its listener on port 0, \
         run before the measured one and not measured) has exactly these clusters: {}; none is a metadata cluster, \
         none names {METADATA_ADDRESS}. The measured R runs the configuration above without an admin interface, as \
         deployed.",
        inputs
            .check
            .clusters
            .iter()
            .map(|c| format!("`{c}`"))
            .collect::<Vec<_>>()
            .join(", ")
    );
    let hits: Vec<String> = inputs
        .check
        .hit_rate
        .iter()
        .map(|(mode, h)| {
            format!(
                "{}: {}",
                mode.name(),
                h.map_or_else(|| "n/a".into(), |h| format!("{:.1} %", 100.0 * h))
            )
        })
        .collect();
    let _ = writeln!(
        out,
        "\nIts token cache (`jwt_cache_size: 100`) in the check Envoy: {}. An LRU of 100 entries with more than 100 \
         tokens in strict rotation evicts each token before it comes back.",
        hits.join("; ")
    );
    let _ = writeln!(
        out,
        "\nNot reproduced, being no part of the configuration: launch_envoy.sh's `-l trace`, its fetch of the \
         private CA's certificate, and the container's own environment."
    );
}

// ----------------------------------------------------------------------------
// The run
// ----------------------------------------------------------------------------

/// The configurations of this run, the reference's variables and changes,
/// and notes on what was skipped.
struct Built {
    configs: Vec<Config>,
    reference: Value,
    /// The JSON pointer of the reference's listener port.
    reference_port: String,
    vars: Vec<(&'static str, String)>,
    changes: Vec<Change>,
    notes: Vec<String>,
    /// The parsed bootstraps of F0, F1, F2 and R, by id (for the variants
    /// and the callgrind phase).
    docs: BTreeMap<String, Value>,
}

/// The variants measured with the configurations in the timed rounds, one
/// token repeated (rows of their own, no target): what the access log costs
/// each build, and what the native build's proof of verification saves
/// (F2 as rendered before, with the payload in jwt_authn's metadata).
const TIMED_VARIANTS: [(&str, &[attribution::Part]); 3] = [
    (F2, &[attribution::Part::AccessLog]),
    (F1, &[attribution::Part::AccessLog]),
    (F2, &[attribution::Part::HeaderProof]),
];

/// The signing guards of a bootstrap's clusters: "the signing guard (wasm
/// in V8) in each of its 3 clusters".
fn guard_text(facts: &Facts) -> String {
    let mut kinds = facts.guards.clone();
    kinds.sort();
    kinds.dedup();
    match kinds.as_slice() {
        [] => "no signing guard".into(),
        [kind] => format!(
            "the signing guard ({kind}) in each of its {} clusters",
            facts.guards.len()
        ),
        _ => format!("signing guards ({})", kinds.join(", ")),
    }
}

fn build(local: &Local) -> Result<Built, String> {
    let mut configs = Vec::new();
    let mut notes = Vec::new();
    let mut docs = BTreeMap::new();

    let f1_text = frontend(local, FilterBuild::Wasm)?;
    let f1_doc = parse_yaml(&f1_text).map_err(|e| format!("F1: {e}"))?;
    let (f0_doc, removed) = floor(&f1_doc)?;
    let f0_facts = Facts::of(&f0_doc);
    docs.insert(F0.to_string(), f0_doc.clone());
    docs.insert(F1.to_string(), f1_doc.clone());
    configs.push(Config {
        id: F0.into(),
        name: "floor: sign + TLS".into(),
        what: format!(
            "a listener whose only filter is the router, in front of F1's cluster `lattice_app1` (the same \
             endpoint, TLS context and upstream filters, minus {}: `aws_request_signing` then `upstream_codec`); no \
             token checked, no access log",
            removed.join(", ")
        ),
        text: f0_doc.to_string(),
        facts: f0_facts,
        launch: Launch::Harness("floor"),
        stat_prefix: None,
    });

    let frontend_what = |facts: &Facts, build: &str| {
        format!(
            "`envoy-gen frontend` ({build} build) as the library renders it for this run: jwt_authn (remote JWKS \
             over TLS from the local IdP, `jwt_cache_size: {}`, {}), jwt_scopes ({}), routes to app1/2/3, \
             aws_request_signing and {} as upstream filters, {}",
            facts.cache_size.map_or_else(|| "none".into(), |n| n.to_string()),
            facts
                .jwt_outputs
                .iter()
                .map(|k| format!("`{k}`"))
                .collect::<Vec<_>>()
                .join(" and "),
            if build == "wasm" {
                "proxy-wasm"
            } else {
                "dynamic module"
            },
            guard_text(facts),
            if facts.access_log {
                "an access log to stdout"
            } else {
                "no access log"
            }
        )
    };
    let f1_facts = Facts::of(&f1_doc);
    configs.push(Config {
        id: F1.into(),
        name: "generated, wasm".into(),
        what: frontend_what(&f1_facts, "wasm"),
        text: f1_text,
        facts: f1_facts,
        launch: Launch::Harness("frontend"),
        stat_prefix: Some("frontend"),
    });

    if local.native.is_some() {
        let text = frontend(local, FilterBuild::Native)?;
        let doc = parse_yaml(&text).map_err(|e| format!("F2: {e}"))?;
        let facts = Facts::of(&doc);
        docs.insert(F2.to_string(), doc);
        configs.push(Config {
            id: F2.into(),
            name: "generated, native".into(),
            what: frontend_what(&facts, "native"),
            text,
            facts,
            launch: Launch::Harness("frontend"),
            stat_prefix: Some("frontend"),
        });
    } else {
        notes.push(format!(
            "F2 (the native build) not measured: {NATIVE_DIR}/{NATIVE_LIB} is missing (`make bench-path` builds it \
             with `cargo build --profile native -p jwt-scopes-native`)."
        ));
    }

    let vars = vec![
        ("DEPLOY_REGION", REGION.to_string()),
        ("JWT_AUDIENCE", AUDIENCE.to_string()),
        ("JWT_JWKS", local.jwks_uri.clone()),
        ("JWT_ISSUER", ISSUER.to_string()),
        ("JWKS_HOST", "127.0.0.1".to_string()),
        ("APP_DOMAIN", DOMAIN.to_string()),
    ];
    // The listener's port is set for each Envoy (`Launch::Bare`).
    let (reference, changes) = reference_config(&ReferenceInputs {
        vars: vars.clone(),
        listen_port: 0,
        dns_port: local.dns_port,
        jwks_port: local.jwks_port,
        ca_file: local.bundle.display().to_string(),
    })?;
    let reference_port = changes
        .iter()
        .find(|c| c.shown.is_some())
        .map(|c| c.pointer.clone())
        .ok_or("bug: the reference's listener port was not changed")?;
    let r_facts = Facts::of(&reference);
    docs.insert(R.to_string(), reference.clone());
    configs.push(Config {
        id: R.into(),
        name: "reference as deployed".into(),
        what: format!(
            "the reference's envoy.yaml.in ({REFERENCE_COMMIT}) with its variables substituted and only its \
             addresses changed (below): health check, Lua strip of client `x-` headers, jwt_authn (remote JWKS, \
             `jwt_cache_size: {}`, `claim_to_headers` for `sub`), Lua `scp` → `x-jwt-scope-*`, dynamic forward proxy, \
             aws_request_signing (default credential chain) as HTTP filters; no access log, no admin interface",
            r_facts.cache_size.map_or_else(|| "none".into(), |n| n.to_string())
        ),
        text: reference.to_string(),
        facts: r_facts,
        launch: Launch::Bare {
            config: reference.clone(),
            port: reference_port.clone(),
        },
        stat_prefix: None,
    });

    let s_text = sidecar(local)?;
    let s_facts = Facts::of(&parse_yaml(&s_text).map_err(|e| format!("S: {e}"))?);
    configs.push(Config {
        id: S.into(),
        name: "sidecar of app2".into(),
        what: format!(
            "`envoy-gen sidecar --service app2` from {SIDECAR_SPEC} (wasm build, the default) with this run's \
             overrides: routes by Host to app1 and app3, aws_request_signing and {} as upstream filters, {}; the \
             app's `authorization` is removed before signing",
            guard_text(&s_facts),
            if s_facts.access_log {
                "an access log to stdout"
            } else {
                "no access log"
            }
        ),
        text: s_text,
        facts: s_facts,
        launch: Launch::Harness("sidecar"),
        stat_prefix: None,
    });

    for (base, without) in TIMED_VARIANTS {
        let Some(doc) = docs.get(base) else { continue };
        let id = attribution::variant_id(base, without);
        let doc = attribution::variant(doc, without).map_err(|e| format!("{id}: {e}"))?;
        let facts = Facts::of(&doc);
        configs.push(Config {
            // Short, for the chart: "F2-log variant: without the access log".
            name: format!(
                "variant: {}",
                attribution::variant_text(&id).trim_start_matches(base).trim_start()
            ),
            what: format!(
                "a variant, not part of any target: {base} exactly as above without {}",
                without.iter().map(|p| p.what()).collect::<Vec<_>>().join(", ")
            ),
            id,
            text: doc.to_string(),
            facts,
            launch: Launch::Harness("frontend"),
            stat_prefix: Some("frontend"),
        });
    }
    Ok(Built {
        configs,
        reference,
        reference_port,
        vars,
        changes,
        notes,
        docs,
    })
}

pub(crate) async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;

    // The run's CA, the upstream, the IdP and the DNS server.
    let ca = TestCa::try_new("bench path CA")?;
    let bundle = dir.path().join("ca.pem");
    std::fs::write(&bundle, &ca.pem).map_err(|e| format!("{}: {e}", bundle.display()))?;
    let _upstream = start_upstream(&ca)?;
    let issuer = Issuer::new();
    let idp = IdpServer::start(
        "127.0.0.1:0",
        &ca.try_leaf(&["localhost"])?,
        "localhost",
        ISSUER,
        issuer.jwks(),
    )?;
    let dns = DnsServer::start(["app1", "app2", "app3"].into_iter().map(host).collect())?;
    let native = workspace_root().join(NATIVE_DIR).join(NATIVE_LIB);
    let local = Local {
        bundle: bundle.clone(),
        jwks_uri: idp.jwks_uri.clone(),
        jwks_port: idp.addr.port(),
        dns_port: dns.port,
        wasm: filter_wasm()?,
        native: native.is_file().then_some(native),
    };

    let tokens = cache::mint(&issuer, TOKENS, cache::TOKEN_BYTES)?;
    let token_bytes = tokens.first().map_or(0, |t| t.len() - "Bearer ".len());
    let bearers = |mode: Mode| -> Arc<[String]> {
        match mode {
            Mode::Repeated => Arc::from(tokens.get(..1).unwrap_or_default()),
            Mode::Rotating => Arc::from(tokens.as_slice()),
        }
    };

    let Built {
        configs,
        reference,
        reference_port,
        vars,
        changes,
        mut notes,
        docs,
    } = build(&local)?;
    let load = |id: &str, mode: Mode| {
        Arc::new(Load {
            path: format!("/app1/{}", path_id(id)),
            host: host("app1"),
            bearers: bearers(mode),
        })
    };

    if std::env::var("BENCH_PATH_ONLY_CALLGRIND").is_ok_and(|v| v == "1") {
        // For working on the attribution: the callgrind phase alone,
        // printed, nothing written.
        let counted = count_instructions(&docs, &reference_port, &settings, &load)
            .await?
            .map_err(|why| format!("instructions cannot be counted: {why}"))?;
        let mut text = String::new();
        attribution::section(&mut text, &counted, &|_| None, &|_, _| None);
        println!("{text}");
        return Ok(());
    }

    let envoys: usize = configs.iter().map(|c| c.modes().len()).sum();
    let estimate = envoys as f64
        * (3.0
            + settings.warmup.as_secs_f64()
            + settings.rounds as f64 * settings.closed.as_secs_f64()
            + settings.open.as_secs_f64());
    eprintln!(
        "{} configurations (variants with one token only) = {envoys} Envoys; the timed measurement takes about {:.1} \
         min",
        configs.len(),
        estimate / 60.0
    );

    eprintln!("checking the reference's credential chain and token cache (check Envoy, not measured)");
    let check = check_reference(&reference, &reference_port, &Mode::ALL.map(|m| (m, load(R, m)))).await?;

    let mut running = Vec::new();
    for config in &configs {
        for &mode in config.modes() {
            eprintln!("starting {} with {}", config.label(), mode.name());
            running.push(
                Running::start(config, mode, load(&config.id, mode))
                    .await
                    .map_err(|e| format!("{}, {}: {e}", config.label(), mode.name()))?,
            );
        }
    }
    eprintln!("{} Envoys started; warming up", running.len());
    for r in &running {
        r.warm_up(settings.warmup)
            .await
            .map_err(|e| format!("{}: {e}", r.label()))?;
    }
    for round in 0..settings.rounds {
        eprintln!("closed-loop round {}/{}", round + 1, settings.rounds);
        for r in running.iter_mut() {
            r.closed_run(settings.closed)
                .await
                .map_err(|e| format!("{}: {e}", r.label()))?;
        }
    }
    let mut rows = Vec::new();
    for r in &running {
        eprintln!("open loop: {}", r.label());
        let h = open_loop_load(r.addr, r.load.clone(), settings.open)
            .await
            .map_err(|e| format!("{} (open loop): {e}", r.label()))?;
        rows.push(Row {
            id: r.config.id.to_string(),
            label: r.config.label(),
            mode: r.mode,
            cpu: Spread::of(&r.cpu_us).ok_or_else(|| format!("{}: no round measured", r.label()))?,
            cpu_rounds: r.cpu_us.clone(),
            throughput: median(r.throughput.clone()),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            rss_mb: rss_mb(r.process.pid()),
            hit_rate: Spread::of(&r.hit_rate),
        });
    }
    for c in configs.iter().filter(|c| c.stat_prefix.is_some()) {
        if rows.iter().any(|r| r.id == c.id && r.hit_rate.is_none()) {
            notes.push(format!(
                "{}: jwt_authn's cache counters (`http.{}.jwt_authn.jwt_cache_hit`/`_miss`) were not found on its \
                 admin interface, so its hit rate is not shown.",
                c.id,
                c.stat_prefix.unwrap_or_default()
            ));
        }
    }
    let dns_queries = dns.queries();
    drop(running);

    // After the timed rounds, never during them.
    let counted = match count_instructions(&docs, &reference_port, &settings, &load).await? {
        Ok(counted) => Some(counted),
        Err(why) => {
            notes.push(format!(
                "instructions were not counted ({why}): no \"Where the added µs go\" section."
            ));
            None
        }
    };

    std::fs::create_dir_all(&settings.out).map_err(|e| format!("{}: {e}", settings.out.display()))?;
    let chart_path = settings.out.join("path.png");
    let chart_file = match draw(&chart_path, &rows, &configs) {
        Ok(()) => Some("path.png"),
        Err(e) => {
            notes.push(format!("the chart could not be drawn: {e}"));
            None
        }
    };
    let text = report(&Inputs {
        rows: &rows,
        configs: &configs,
        notes: &notes,
        settings: &settings,
        token_bytes,
        reference_vars: &vars,
        changes: &changes,
        check: &check,
        dns_queries,
        chart_file,
        counted: counted.as_ref(),
    });
    println!("{text}");
    let path = settings.out.join("PATH.md");
    std::fs::write(&path, &text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "written to {}{}",
        path.display(),
        chart_file.map_or(String::new(), |_| format!(" and {}", chart_path.display()))
    );
    Ok(())
}

/// The callgrind phase (bench/src/path/attribution.rs), with the run's
/// upstream, IdP and DNS server up; `Err(why)` when instructions cannot be
/// counted here (no valgrind, or BENCH_CALLGRIND=0). BENCH_CALLGRIND_ONLY
/// (comma-separated ids: `F2,F2-log`) counts only those;
/// BENCH_CALLGRIND_PROFILES (a directory) keeps the profiles there.
async fn count_instructions(
    docs: &BTreeMap<String, Value>,
    reference_port: &str,
    settings: &Settings,
    load: &impl Fn(&str, Mode) -> Arc<Load>,
) -> Result<Result<attribution::Counted, String>, String> {
    if let Some(why) = crate::instructions::unavailable() {
        return Ok(Err(why));
    }
    let timed: Vec<String> = TIMED_VARIANTS
        .iter()
        .map(|(base, without)| attribution::variant_id(base, without))
        .collect();
    let mut counts = attribution::counts(docs, &timed, reference_port)?;
    if let Ok(only) = std::env::var("BENCH_CALLGRIND_ONLY") {
        let only: Vec<&str> = only.split(',').map(str::trim).collect();
        counts.retain(|c| only.contains(&c.id.as_str()));
    }
    let keep = std::env::var_os("BENCH_CALLGRIND_PROFILES").map(PathBuf::from);
    if let Some(dir) = &keep {
        std::fs::create_dir_all(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    }
    attribution::run(counts, settings.callgrind_requests, load, keep.as_deref())
        .await
        .map(Ok)
}

/// bench/path.png: CPU µs/request per configuration, one bar per token
/// mode (median of rounds, whiskers min–max).
fn draw(path: &Path, rows: &[Row], configs: &[Config]) -> Result<(), String> {
    let mut bars = Vec::new();
    for c in configs {
        for mode in Mode::ALL {
            if let Some(r) = find(rows, &c.id, mode) {
                bars.push(Bar {
                    label: match mode {
                        Mode::Repeated => c.label(),
                        Mode::Rotating => format!("{} · {}", c.label(), mode.short()),
                    },
                    value: r.cpu.median,
                    spread: Some((r.cpu.min, r.cpu.max)),
                    base_token: mode == Mode::Repeated,
                });
            }
        }
    }
    chart::draw_bars(
        path,
        "Envoy CPU µs per request, the whole path: median of rounds, whiskers min–max",
        &bars,
        &[Mode::Repeated.name(), Mode::Rotating.name()],
    )
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inputs() -> ReferenceInputs {
        ReferenceInputs {
            vars: vec![
                ("DEPLOY_REGION", REGION.to_string()),
                ("JWT_AUDIENCE", AUDIENCE.to_string()),
                ("JWT_JWKS", "https://localhost:4443/.well-known/jwks.json".to_string()),
                ("JWT_ISSUER", ISSUER.to_string()),
                ("JWKS_HOST", "127.0.0.1".to_string()),
                ("APP_DOMAIN", DOMAIN.to_string()),
            ],
            listen_port: 18080,
            dns_port: 5353,
            jwks_port: 4443,
            ca_file: "/tmp/ca.pem".into(),
        }
    }

    #[test]
    fn the_reference_changes_only_its_addresses() {
        let (doc, changes) = reference_config(&inputs()).unwrap();
        let pointers: Vec<&str> = changes.iter().map(|c| c.pointer.as_str()).collect();
        assert_eq!(changes.len(), 8, "{pointers:?}");
        let listener = &doc["static_resources"]["listeners"][0];
        assert_eq!(listener["address"]["socket_address"]["port_value"], 18080);
        assert_eq!(listener["address"]["socket_address"]["address"], "127.0.0.1");
        let filters = &listener["filter_chains"][0]["filters"][0]["typed_config"]["http_filters"];
        // Its filters are untouched: the two Lua scripts are what the YAML
        // hands Envoy, as the main bench reads them.
        let lua: Vec<&str> = filters
            .as_array()
            .unwrap()
            .iter()
            .filter(|f| f["name"] == "envoy.filters.http.lua")
            .map(|f| {
                f["typed_config"]["default_source_code"]["inline_string"]
                    .as_str()
                    .unwrap()
            })
            .collect();
        assert_eq!(
            lua,
            [
                crate::as_deployed(crate::REFERENCE_STRIP_LUA),
                crate::as_deployed(crate::REFERENCE_SCOPES_LUA)
            ]
        );
        // The filter's and the cluster's DNS cache configurations stay identical.
        let dfp = filters
            .as_array()
            .unwrap()
            .iter()
            .find(|f| f["name"] == "envoy.filters.http.dynamic_forward_proxy")
            .unwrap();
        let cluster = &doc["static_resources"]["clusters"][0];
        assert_eq!(
            dfp["typed_config"]["dns_cache_config"],
            cluster["cluster_type"]["typed_config"]["dns_cache_config"]
        );
        let resolver =
            &cluster["cluster_type"]["typed_config"]["dns_cache_config"]["typed_dns_resolver_config"]["typed_config"];
        assert_eq!(resolver["resolvers"][0]["socket_address"]["port_value"], 5353);
        assert_eq!(resolver["resolvers"][0]["socket_address"]["address"], "127.0.0.1");
        assert_eq!(resolver["use_resolvers_as_fallback"], false);
        assert_eq!(resolver["dns_resolver_options"]["use_tcp_for_dns_lookups"], true);
        assert_eq!(
            cluster["transport_socket"]["typed_config"]["common_tls_context"]["validation_context"]["trusted_ca"]
                ["filename"],
            "/tmp/ca.pem"
        );
        let jwks = &doc["static_resources"]["clusters"][1];
        let address =
            &jwks["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"]["address"]["socket_address"];
        assert_eq!(
            (address["address"].as_str(), address["port_value"].as_u64()),
            (Some("127.0.0.1"), Some(4443))
        );
        // Substituted variables.
        let text = doc.to_string();
        assert!(!text.contains("${"));
        assert!(text.contains("\"host_rewrite_literal\":\"app2.example.internal\""));
        assert!(text.contains("\"uri\":\"https://localhost:4443/.well-known/jwks.json\""));
        // No admin interface, no credential provider: as deployed.
        assert!(doc.get("admin").is_none());
        assert!(!text.contains("credential_provider"));
    }

    #[test]
    fn substitution_refuses_a_missing_or_leftover_variable() {
        assert!(substitute("a ${X} b", &[("X", "1".into())]).is_ok());
        assert!(substitute("a ${X} ${Y}", &[("X", "1".into())]).is_err());
        assert!(substitute("a", &[("X", "1".into())]).is_err());
    }

    fn query(name: &str, qtype: u16) -> Vec<u8> {
        let mut q = vec![0x12, 0x34, 0x01, 0x00, 0, 1, 0, 0, 0, 0, 0, 1];
        for label in name.split('.') {
            q.push(label.len() as u8);
            q.extend_from_slice(label.as_bytes());
        }
        q.push(0);
        q.extend_from_slice(&qtype.to_be_bytes());
        q.extend_from_slice(&[0, 1]);
        // An EDNS OPT record in the additional section, as c-ares sends.
        q.extend_from_slice(&[0, 0, 41, 4, 0xd0, 0, 0, 0, 0, 0, 0]);
        q
    }

    #[test]
    fn dns_answers_the_services_with_loopback() {
        let names = vec![host("app1")];
        let q = query("APP1.example.internal", 1);
        let a = dns_answer(&q, &names).unwrap();
        assert_eq!(&a[..2], &[0x12, 0x34]);
        assert_eq!(u16::from_be_bytes([a[2], a[3]]), 0x8580);
        assert_eq!(&a[4..12], &[0, 1, 0, 1, 0, 0, 0, 0]);
        let question_end = q.len() - 11;
        assert_eq!(&a[12..question_end], &q[12..question_end]);
        assert_eq!(&a[a.len() - 4..], &[127, 0, 0, 1]);
        // AAAA: no record, no error.
        let a = dns_answer(&query("app1.example.internal", 28), &names).unwrap();
        assert_eq!(&a[6..8], &[0, 0]);
        assert_eq!(a[3] & 0x0f, 0);
        // Another name: NXDOMAIN.
        let a = dns_answer(&query("app9.example.internal", 1), &names).unwrap();
        assert_eq!(a[3] & 0x0f, 3);
        assert_eq!(&a[6..8], &[0, 0]);
        // Not a query.
        assert!(dns_answer(&[0; 5], &names).is_none());
        assert!(dns_answer(&a, &names).is_none());
    }

    fn received(path: &str, headers: &[(&str, &str)]) -> Received {
        Received {
            sni: Some(host("app1")),
            method: "GET".into(),
            path: path.into(),
            query: String::new(),
            headers: headers
                .iter()
                .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                .collect(),
            body: Vec::new(),
        }
    }

    #[test]
    fn the_upstream_accepts_only_signed_requests_with_identity_where_due() {
        let authorization = format!(
            "AWS4-HMAC-SHA256 Credential={TEST_ACCESS_KEY_ID}/20260101/{REGION}/vpc-lattice-svcs/aws4_request, \
             SignedHeaders=host;x-amz-date, Signature=00"
        );
        let app1 = host("app1");
        let signed = vec![
            ("host", app1.as_str()),
            ("authorization", authorization.as_str()),
            ("x-amz-date", "20260101T000000Z"),
            ("x-amz-security-token", TEST_SESSION_TOKEN),
            ("x-amz-content-sha256", "UNSIGNED-PAYLOAD"),
        ];
        assert!(check_upstream(&received("/app1/F0", &signed)).is_ok());
        assert!(check_upstream(&received("/app1/S", &signed)).is_ok());
        let err = check_upstream(&received("/app1/R", &signed)).unwrap_err();
        assert!(err.contains("x-jwt-scope-test.all"), "{err}");
        let mut with_identity = signed.clone();
        with_identity.extend([("x-jwt-scope-test.all", "true"), ("x-jwt-subject", "u@example.com")]);
        assert!(check_upstream(&received("/app1/R", &with_identity)).is_ok());
        // Unsigned (the bearer token passed through), or without the date.
        let mut unsigned = signed.clone();
        unsigned[1] = ("authorization", "Bearer eyJ");
        assert!(check_upstream(&received("/app1/F0", &unsigned)).is_err());
        let undated: Vec<_> = signed.iter().filter(|(n, _)| *n != "x-amz-date").cloned().collect();
        assert!(check_upstream(&received("/app1/F0", &undated)).is_err());
        let mut other_sni = received("/app1/F0", &signed);
        other_sni.sni = None;
        assert!(check_upstream(&other_sni).is_err());
    }

    fn row(id: &str, mode: Mode, rounds: &[f64]) -> Row {
        Row {
            id: id.into(),
            label: id.into(),
            mode,
            cpu: Spread::of(rounds).unwrap(),
            cpu_rounds: rounds.to_vec(),
            throughput: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            rss_mb: 50.0,
            hit_rate: None,
        }
    }

    #[test]
    fn targets_are_judged_per_round_over_f0() {
        let rot = Mode::Rotating;
        let rep = Mode::Repeated;
        let rows = vec![
            row(F0, rot, &[100.0, 110.0, 105.0]),
            row(F1, rot, &[130.0, 140.0, 135.0]),
            row(R, rot, &[200.0, 210.0, 205.0]),
            row(F0, rep, &[100.0, 100.0, 100.0]),
            row(F1, rep, &[150.0, 145.0, 160.0]),
            row(F2, rep, &[130.0, 170.0, 120.0]),
            row(R, rep, &[150.0, 150.0, 150.0]),
            row(S, rep, &[120.0, 120.0, 120.0]),
        ];
        let t = targets(&rows);
        // F1 adds 30 where R adds 100 in every round: 30 − 50 ≤ 0.
        assert_eq!(t[0].0, Verdict::Met, "{}", t[0].1);
        assert!(t[0].1.contains("0.30×"), "{}", t[0].1);
        // F2 adds 30, 70, 20 where R adds 50: 30 − 35 ≤ 0, 70 − 35 > 0: undecided;
        // F1 adds 50, 45, 60 against 50: undecided too.
        assert_eq!(t[1].0, Verdict::Undecided, "{}", t[1].1);
        let worse = vec![row(F0, rep, &[100.0]), row(F1, rep, &[170.0]), row(R, rep, &[150.0])];
        let t = targets(&worse);
        // F1 over R in the only round; F2 not measured: NOT MET wins.
        assert_eq!(t[1].0, Verdict::NotMet, "{}", t[1].1);
        assert!(t[1].1.contains("NOT MEASURED"), "{}", t[1].1);
        assert_eq!(t[0].0, Verdict::NotMeasured);
        let lines = sidecar_lines(&rows);
        assert!(lines[0].contains("S adds +20.0 [+20.0, +20.0] µs"), "{}", lines[0]);
        assert!(lines[1].contains("n/a"), "{}", lines[1]);
    }

    #[test]
    fn thousands_are_grouped() {
        assert_eq!(thousands(1000), "1,000");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_234_567), "1,234,567");
    }
}
