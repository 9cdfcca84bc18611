//! `make bench`: what the jwt_scopes filter costs, measured against the
//! alternatives in one run on one machine (design.md §6).
//!
//! Arms, all stock Envoy 1.40 with `--concurrency 1` answering with a
//! `direct_response` (no upstream, so only filter cost is measured):
//!   A0 router only; A1 jwt_authn only (the floor); A2 A1 + Lua doing what
//!   the reference sample's Lua does (the `scp` array to headers, the
//!   "sample-equivalent" Lua); A3 A1 + jwt_scopes (proxy-wasm on V8); A4 A1 +
//!   jwt_authn's native `claim_to_headers` (a lower bound: it cannot emit one
//!   header per scope); A5 A1 + an empty proxy-wasm filter (what any V8
//!   filter costs before doing anything); A6 the reference as it deploys it:
//!   its client-header strip Lua before jwt_authn, jwt_authn with
//!   `claim_to_headers` for `sub`, its `scp` Lua after (the scripts verbatim
//!   from bench/reference/); A7 A1 + jwt_scopes as a native Envoy dynamic
//!   module (`target/native/libjwt_scopes_native.so`; skipped, and said so in
//!   the report, when it is not built).
//!
//! Two tokens: RS256 with 6 scopes (every arm), and with 32 scopes (every arm
//! but A0, which has no jwt_authn), each (arm, token) pair in its own Envoy.
//!
//! Envoy is pinned to CPU 0, this load generator to CPU 1 (`make bench` runs
//! it under `taskset -c 1`). Reported: Envoy CPU time per request
//! (utime+stime from /proc over closed-loop runs, all Envoys measured in
//! interleaved rounds, differences paired per round), closed-loop
//! throughput, p50/p99 latency at a fixed offered rate (open loop, measured
//! from the scheduled send time so queueing counts), Envoy's resident
//! memory, jwt_scopes.wasm's size and the wasm filter's host calls per
//! request; the targets, MET or NOT MET; what bounds each number. Written to
//! bench/REPORT.md with the chart bench/chart.png (plotters, drawn with the
//! font in bench/fonts/).
//!
//! Environment (for short runs; the defaults are the full run):
//! BENCH_ROUNDS (7), BENCH_SECONDS (closed-loop seconds per round, 4),
//! BENCH_WARMUP_SECONDS (2), BENCH_OPEN_SECONDS (open-loop seconds, 6),
//! BENCH_OUT (the directory REPORT.md and chart.png go to, default bench/),
//! BENCH_EXTRA_WASM (comma-separated modules measured in A3's place as X1,
//! X2, ...), BENCH_CALLGRIND=0 (no instruction counts),
//! BENCH_CALLGRIND_REQUESTS (requests counted per Envoy under callgrind,
//! 1000).
//!
//! After the timed rounds (never during them: it would disturb the timing),
//! every (arm, token) pair that was timed runs again, two at a time, in an
//! Envoy under valgrind's callgrind (`valgrind` and `callgrind_control`, the
//! Debian package valgrind, which `make bench` installs), which counts
//! instructions per request (bench/src/instructions.rs; every answer must
//! be 200): a count does not move with the machine's load, so it decides
//! differences of 1 µs that CPU time on this VM cannot. The report converts
//! counts to µs at A1's measured rate and judges the CPU targets by them;
//! without valgrind, or with BENCH_CALLGRIND=0, that phase is skipped (the
//! report says so) and the CPU targets are judged by CPU time alone.
//!
//! `bench cache` (`make bench-cache`) runs the jwt_authn token-cache sweep
//! instead (bench/src/cache.rs, written to bench/CACHE.md); `bench path`
//! (`make bench-path`, and `make bench` after the arms) what a request costs
//! over the whole path (token, mapping, signing, TLS to the upstream),
//! against the reference as deployed (bench/src/path.rs, written to
//! bench/PATH.md).

use bytes::Bytes;
use e2e::envoy::{envoy_binary, filter_wasm, workspace_root, AwsCredentials, Envoy};
use e2e::jwt::{Alg, Issuer, AUDIENCE, ISSUER};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use jwt_scopes_core::config::JWT_AUTHN_NAMESPACE;
use jwt_scopes_core::mapping::Refusal;
use jwt_scopes_core::pb::encode;
use jwt_scopes_core::{handle_request, Config, Counter, Host, HostError, Output, Verdict};
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

mod cache;
mod chart;
mod instructions;
mod path;

const CLOSED_CONNECTIONS: usize = 16;
const OPEN_RATE: u64 = 1000;
const OPEN_CONNECTIONS: usize = 32;

/// The base token's scopes (every arm runs with it).
const SCOPES: [&str; 6] = ["openid", "profile", "email", "test.all", "orders.read", "Orders.Write"];
/// The scope count of the second token (`SCOPES` then `service01.read`, ...).
const MANY_SCOPES: usize = 32;
const SUBJECT: &str = "bench-user@example.com";

/// The plugin configuration A3 and A7 get (the defaults).
const PLUGIN_CONFIG: &str = "{}";

/// The sample's approach, as Lua: the verified payload's `scp` array (Okta)
/// and `sub` to headers.
const SAMPLE_LUA: &str = r#"
function envoy_on_request(handle)
  local meta = handle:streamInfo():dynamicMetadata():get("envoy.filters.http.jwt_authn")
  if meta == nil then return end
  local payload = meta["jwt_payload"]
  if payload == nil then return end
  if payload["sub"] ~= nil then
    handle:headers():replace("x-jwt-subject", payload["sub"])
  end
  local scp = payload["scp"]
  if scp ~= nil then
    for _, scope in ipairs(scp) do
      handle:headers():replace("x-jwt-scope-" .. scope, "true")
    end
  end
end
"#;

/// The reference's Lua, verbatim (see bench/reference/README.md): the client
/// `x-` header strip loop (before jwt_authn) and the `scp` mapping (after).
const REFERENCE_STRIP_LUA: &str = include_str!("../reference/strip.lua");
const REFERENCE_SCOPES_LUA: &str = include_str!("../reference/scopes.lua");

/// Where the native module is built (`cargo build --profile native -p
/// jwt-scopes-native`), relative to the workspace root.
const NATIVE_DIR: &str = "target/native";
const NATIVE_LIB: &str = "libjwt_scopes_native.so";
/// The header jwt_authn forwards the verified payload in for A7
/// (`jwt_scopes_core::config::payload_header_name("jwt_payload")`).
const NATIVE_PAYLOAD_HEADER: &str = "x-jwt-payload-jwt_payload";

/// Run lengths, from the environment (see the module documentation).
struct Settings {
    rounds: usize,
    closed: Duration,
    warmup: Duration,
    open: Duration,
    out: PathBuf,
    /// Requests counted per (arm, token) under callgrind.
    callgrind_requests: usize,
}

/// A duration in seconds from the environment variable `name`, `default`
/// when unset; more than 0, or at least 0 when `zero_ok`.
fn env_seconds(name: &str, default: f64, zero_ok: bool) -> Result<Duration, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<f64>()
            .ok()
            .filter(|s| s.is_finite() && (*s > 0.0 || (zero_ok && *s == 0.0)))
            .map(Duration::from_secs_f64)
            .ok_or_else(|| {
                format!(
                    "{name}={v}: expected a number of seconds {}",
                    if zero_ok { ">= 0" } else { "> 0" }
                )
            }),
        Err(_) => Ok(Duration::from_secs_f64(default)),
    }
}

/// A whole number > 0 from the environment variable `name`, `default` when
/// unset.
fn env_count(name: &str, default: usize) -> Result<usize, String> {
    match std::env::var(name) {
        Ok(v) => v
            .trim()
            .parse::<usize>()
            .ok()
            .filter(|n| *n > 0)
            .ok_or_else(|| format!("{name}={v}: expected a whole number > 0")),
        Err(_) => Ok(default),
    }
}

/// Where reports go: BENCH_OUT, default bench/.
fn out_dir() -> PathBuf {
    std::env::var_os("BENCH_OUT").map_or_else(|| workspace_root().join("bench"), PathBuf::from)
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        Ok(Settings {
            rounds: env_count("BENCH_ROUNDS", 7)?,
            closed: env_seconds("BENCH_SECONDS", 4.0, false)?,
            warmup: env_seconds("BENCH_WARMUP_SECONDS", 2.0, false)?,
            open: env_seconds("BENCH_OPEN_SECONDS", 6.0, false)?,
            out: out_dir(),
            callgrind_requests: env_count("BENCH_CALLGRIND_REQUESTS", 1000)?,
        })
    }
}

/// One Envoy configuration.
#[derive(Clone)]
struct Arm {
    id: String,
    /// A short name, for the chart.
    name: String,
    what: String,
    filters: Vec<Value>,
    /// Added to Envoy's environment.
    env: Vec<(String, String)>,
    /// Also measured with the 32-scope token.
    many_scopes: bool,
}

/// The headers jwt_authn itself adds from claims.
#[derive(Clone, Copy, PartialEq, Eq)]
enum ClaimHeaders {
    None,
    /// A4: `sub` and `scp` (a list becomes base64 of its JSON).
    SubjectAndScopes,
    /// A6, as the reference: `sub` only.
    Subject,
}

fn jwt_authn(jwks: &str, claim_headers: ClaimHeaders) -> Value {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "require_expiration": true,
        "local_jwks": {"inline_string": jwks},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "payload_in_metadata": "jwt_payload",
    });
    match claim_headers {
        ClaimHeaders::None => {}
        ClaimHeaders::SubjectAndScopes => {
            provider["claim_to_headers"] = json!([
                {"header_name": "x-jwt-subject", "claim_name": "sub"},
                {"header_name": "x-jwt-scope", "claim_name": "scp"},
            ]);
        }
        ClaimHeaders::Subject => {
            provider["claim_to_headers"] = json!([{"header_name": "x-jwt-subject", "claim_name": "sub"}]);
        }
    }
    json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"bench": provider},
            "rules": [{"match": {"prefix": "/"}, "requires": {"provider_name": "bench"}}],
        },
    })
}

fn wasm_filter(wasm: &str, root_id: &str) -> Value {
    let mut config = json!({
        "name": "jwt_scopes",
        "root_id": root_id,
        "failure_policy": "FAIL_RELOAD",
        "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": wasm}}},
    });
    if root_id == "jwt_scopes" {
        config["configuration"] =
            json!({"@type": "type.googleapis.com/google.protobuf.StringValue", "value": PLUGIN_CONFIG});
    }
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm", "config": config},
    })
}

fn lua(source: &str) -> Value {
    json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": source},
        },
    })
}

/// A script as the reference's YAML hands it to Envoy: a plain multi-line
/// scalar, folded into one line (each line trimmed, joined by one space).
fn as_deployed(script: &str) -> String {
    script
        .lines()
        .map(str::trim)
        .filter(|l| !l.is_empty())
        .collect::<Vec<_>>()
        .join(" ")
}

/// jwt_authn forwarding the verified payload in a header (where the native
/// module reads it: Envoy 1.40's dynamic-module ABI cannot read jwt_authn's
/// nested metadata, only which payload keys it holds) + the dynamic module,
/// as envoy-gen renders them.
fn native_filters(jwks: &str) -> Vec<Value> {
    let mut jwt = jwt_authn(jwks, ClaimHeaders::None);
    jwt["typed_config"]["providers"]["bench"]["forward_payload_header"] = json!(NATIVE_PAYLOAD_HEADER);
    vec![
        jwt,
        json!({
            "name": "envoy.filters.http.dynamic_modules",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                // As envoy-gen renders it: the wasm build's counter names.
                "dynamic_module_config": {"name": "jwt_scopes_native", "metrics_namespace": "wasmcustom"},
                "filter_name": "jwt_scopes",
                "filter_config": {"@type": "type.googleapis.com/google.protobuf.StringValue", "value": PLUGIN_CONFIG},
            },
        }),
    ]
}

/// The arms to run, and notes on arms that cannot run (the native module
/// not built).
fn arms(jwks: &str, wasm: &str) -> (Vec<Arm>, Vec<String>) {
    let arm = |id: &str, name: &str, what: &str, filters: Vec<Value>| Arm {
        id: id.into(),
        name: name.into(),
        what: what.into(),
        filters,
        env: Vec::new(),
        many_scopes: true,
    };
    let mut list = vec![
        Arm {
            many_scopes: false,
            ..arm("A0", "router only", "router only", vec![])
        },
        arm(
            "A1",
            "jwt_authn",
            "jwt_authn only (the floor)",
            vec![jwt_authn(jwks, ClaimHeaders::None)],
        ),
        arm(
            "A2",
            "sample-equivalent Lua",
            "A1 + Lua equivalent to the sample's (scp and sub to headers)",
            vec![jwt_authn(jwks, ClaimHeaders::None), lua(SAMPLE_LUA)],
        ),
        arm(
            "A3",
            "jwt_scopes wasm",
            "A1 + jwt_scopes (this filter, proxy-wasm)",
            vec![jwt_authn(jwks, ClaimHeaders::None), wasm_filter(wasm, "jwt_scopes")],
        ),
        arm(
            "A4",
            "claim_to_headers",
            "A1 + native claim_to_headers",
            vec![jwt_authn(jwks, ClaimHeaders::SubjectAndScopes)],
        ),
    ];
    let empty = workspace_root().join("target/wasm32-wasip1/release/empty_filter.wasm");
    // For investigations: any other module in A3's place, measured alongside.
    // (comma-separated paths give X1, X2, ...).
    for (i, extra) in std::env::var("BENCH_EXTRA_WASM")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        list.push(Arm {
            many_scopes: false,
            ..arm(
                &format!("X{}", i + 1),
                &format!("X{}", i + 1),
                &format!("A1 + {extra}"),
                vec![jwt_authn(jwks, ClaimHeaders::None), wasm_filter(extra, "jwt_scopes")],
            )
        });
    }
    list.push(arm(
        "A5",
        "empty wasm filter",
        "A1 + an empty proxy-wasm filter (the V8 floor)",
        vec![
            jwt_authn(jwks, ClaimHeaders::None),
            wasm_filter(&empty.display().to_string(), ""),
        ],
    ));
    list.push(arm(
        "A6",
        "reference (Lua+c2h+Lua)",
        "reference (Lua strip + jwt_authn claim_to_headers + Lua scp)",
        vec![
            lua(&as_deployed(REFERENCE_STRIP_LUA)),
            jwt_authn(jwks, ClaimHeaders::Subject),
            lua(&as_deployed(REFERENCE_SCOPES_LUA)),
        ],
    ));
    let mut notes = Vec::new();
    let native_dir = workspace_root().join(NATIVE_DIR);
    if native_dir.join(NATIVE_LIB).is_file() {
        list.push(Arm {
            env: vec![(
                "ENVOY_DYNAMIC_MODULES_SEARCH_PATH".into(),
                native_dir.display().to_string(),
            )],
            ..arm(
                "A7",
                "jwt_scopes native",
                "A1 + jwt_scopes native (dynamic module)",
                native_filters(jwks),
            )
        });
    } else {
        notes.push(format!(
            "A7 (A1 + jwt_scopes native, dynamic module) not built: {}/{NATIVE_LIB} is missing \
             (`make bench` builds it with `cargo build --profile native -p jwt-scopes-native`).",
            NATIVE_DIR
        ));
    }
    (list, notes)
}

fn envoy_config(filters: &[Value]) -> String {
    let mut http_filters = filters.to_vec();
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {"listeners": [{
            "name": "bench",
            "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
            "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
                    "stat_prefix": "bench",
                    "route_config": {"virtual_hosts": [{
                        "name": "all",
                        "domains": ["*"],
                        "routes": [{"match": {"prefix": "/"}, "direct_response": {"status": 200, "body": {"inline_string": "ok"}}}],
                    }]},
                    "http_filters": http_filters,
                },
            }]}],
        }]},
    })
    .to_string()
}

/// utime + stime of a process, in seconds (all threads).
fn cpu_seconds(pid: u32) -> f64 {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).unwrap_or_default();
    // Fields after the parenthesised command name; utime and stime are 14 and 15.
    let after = stat.rsplit_once(") ").map(|(_, rest)| rest).unwrap_or("");
    let fields: Vec<&str> = after.split_whitespace().collect();
    let ticks = |i: usize| fields.get(i).and_then(|v| v.parse::<f64>().ok()).unwrap_or(0.0);
    // Field 14 is index 11 after the state field (index 0 is field 3).
    (ticks(11) + ticks(12)) / clock_ticks_per_second()
}

fn clock_ticks_per_second() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| String::from_utf8(o.stdout).ok())
        .and_then(|s| s.trim().parse().ok())
        .unwrap_or(100.0)
}

fn rss_mb(pid: u32) -> f64 {
    std::fs::read_to_string(format!("/proc/{pid}/status"))
        .unwrap_or_default()
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.split_whitespace().next())
        .and_then(|kb| kb.parse::<f64>().ok())
        .map_or(0.0, |kb| kb / 1024.0)
}

async fn connect(addr: SocketAddr) -> Result<SendRequest<Empty<Bytes>>, String> {
    let stream = tokio::net::TcpStream::connect(addr).await.map_err(|e| e.to_string())?;
    stream.set_nodelay(true).map_err(|e| e.to_string())?;
    let (sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(stream))
        .await
        .map_err(|e| e.to_string())?;
    tokio::spawn(connection);
    Ok(sender)
}

async fn one_request(sender: &mut SendRequest<Empty<Bytes>>, bearer: &str) -> Result<(), String> {
    send(sender, Load::request_to("/", "bench", Some(bearer))?).await
}

/// Sends `request` and reads the whole answer; an error unless it is 200
/// (with the start of the body, which says why).
async fn send(sender: &mut SendRequest<Empty<Bytes>>, request: hyper::Request<Empty<Bytes>>) -> Result<(), String> {
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    let body = response
        .into_body()
        .collect()
        .await
        .map_err(|e| e.to_string())?
        .to_bytes();
    if status != 200 {
        let text = String::from_utf8_lossy(&body);
        return Err(format!(
            "status {status}: {}",
            text.chars().take(300).collect::<String>().trim_end()
        ));
    }
    Ok(())
}

/// What the load generator sends: GET `path` with `Host: host` and, when
/// there are bearers, `authorization` with the next one in round-robin
/// order (one order across all connections of a run).
struct Load {
    path: String,
    host: String,
    bearers: Arc<[String]>,
}

impl Load {
    /// The main bench's request (`GET /`, `Host: bench`) with `bearers`.
    fn bench(bearers: Arc<[String]>) -> Load {
        Load {
            path: "/".into(),
            host: "bench".into(),
            bearers,
        }
    }

    /// The request numbered `i` of a run.
    fn request(&self, i: usize) -> Result<hyper::Request<Empty<Bytes>>, String> {
        let bearer = match self.bearers.len() {
            0 => None,
            n => self.bearers.get(i % n).map(String::as_str),
        };
        Load::request_to(&self.path, &self.host, bearer)
    }

    fn request_to(path: &str, host: &str, bearer: Option<&str>) -> Result<hyper::Request<Empty<Bytes>>, String> {
        let mut request = hyper::Request::get(path).header("host", host);
        if let Some(bearer) = bearer {
            request = request.header("authorization", bearer);
        }
        request.body(Empty::new()).map_err(|e| e.to_string())
    }
}

/// Closed loop: each connection sends as fast as answers come back.
async fn closed_loop(addr: SocketAddr, bearer: Arc<String>, duration: Duration) -> Result<u64, String> {
    closed_loop_rotating(addr, Arc::from([bearer.as_str().to_owned()]), duration).await
}

/// Closed loop over `bearers`: each connection sends as fast as answers
/// come back, each request with the next bearer in round-robin order (one
/// order across all connections).
async fn closed_loop_rotating(addr: SocketAddr, bearers: Arc<[String]>, duration: Duration) -> Result<u64, String> {
    if bearers.is_empty() {
        return Err("closed loop without a token".into());
    }
    closed_loop_load(addr, Arc::new(Load::bench(bearers)), duration).await
}

/// Closed loop sending `load` over `CLOSED_CONNECTIONS` keep-alive
/// connections for `duration`; returns the requests answered (all 200).
async fn closed_loop_load(addr: SocketAddr, load: Arc<Load>, duration: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + duration;
    let next = Arc::new(AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLOSED_CONNECTIONS {
        let load = load.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut done = 0u64;
            while Instant::now() < deadline {
                let request = load.request(next.fetch_add(1, Ordering::Relaxed))?;
                send(&mut sender, request).await?;
                done += 1;
            }
            Ok::<u64, String>(done)
        }));
    }
    let mut total = 0;
    for task in tasks {
        total += task.await.map_err(|e| e.to_string())??;
    }
    Ok(total)
}

/// Open loop: requests are due at a fixed rate whatever the answers do;
/// latency counts from when a request was due.
async fn open_loop(addr: SocketAddr, bearer: Arc<String>, duration: Duration) -> Result<Histogram<u64>, String> {
    open_loop_load(
        addr,
        Arc::new(Load::bench(Arc::from([bearer.as_str().to_owned()]))),
        duration,
    )
    .await
}

/// Open loop sending `load` at `OPEN_RATE` over `OPEN_CONNECTIONS`
/// connections: latency of each request from when it was due (so queueing
/// counts), in µs.
async fn open_loop_load(addr: SocketAddr, load: Arc<Load>, duration: Duration) -> Result<Histogram<u64>, String> {
    let (jobs, receiver) = mpsc::unbounded_channel::<Instant>();
    let receiver = Arc::new(Mutex::new(receiver));
    let histogram = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let next = Arc::new(AtomicUsize::new(0));
    let mut workers = Vec::new();
    for _ in 0..OPEN_CONNECTIONS {
        let receiver = receiver.clone();
        let histogram = histogram.clone();
        let load = load.clone();
        let next = next.clone();
        let mut sender = connect(addr).await?;
        workers.push(tokio::spawn(async move {
            loop {
                let due = { receiver.lock().await.recv().await };
                let Some(due) = due else { return Ok::<(), String>(()) };
                let request = load.request(next.fetch_add(1, Ordering::Relaxed))?;
                send(&mut sender, request).await?;
                let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                if let Ok(mut h) = histogram.lock() {
                    let _ = h.record(micros);
                }
            }
        }));
    }
    let start = tokio::time::Instant::now();
    let total = (OPEN_RATE as f64 * duration.as_secs_f64()).round().max(1.0) as u64;
    for i in 0..total {
        let due = start + Duration::from_micros(i * 1_000_000 / OPEN_RATE);
        tokio::time::sleep_until(due).await;
        let _ = jobs.send(due.into_std());
    }
    drop(jobs);
    for worker in workers {
        worker.await.map_err(|e| e.to_string())??;
    }
    let h = histogram.lock().map_err(|e| e.to_string())?.clone();
    Ok(h)
}

/// The tokens every (arm, token) pair is measured with.
struct Token {
    scopes: usize,
    bearer: Arc<String>,
}

fn scope_list(n: usize) -> Vec<String> {
    SCOPES
        .iter()
        .map(|s| s.to_string())
        .chain((1..).map(|i| format!("service{i:02}.read")))
        .take(n)
        .collect()
}

/// What was measured of one (arm, token) pair.
struct Row {
    id: String,
    name: String,
    what: String,
    scopes: usize,
    /// CPU µs/request of each round, in round order.
    cpu_rounds: Vec<f64>,
    cpu_us: f64,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
    /// The bytes Envoy's allocator has handed out and not had back (admin
    /// `/memory` `allocated`), MB: live memory, without what the allocator
    /// keeps after a free. None when it could not be read.
    heap_mb: Option<f64>,
    /// Instructions per request counted by callgrind (see `instructions`),
    /// when counted.
    ir: Option<f64>,
    /// The wasm filter's counters per request (A3 only).
    per_request: Option<FilterCounts>,
}

impl Row {
    /// `A3`, or `A3 (32 scopes)` for the second token.
    fn label(&self) -> String {
        label(&self.id, self.scopes)
    }
}

fn label(id: &str, scopes: usize) -> String {
    if scopes == SCOPES.len() {
        id.to_string()
    } else {
        format!("{id} ({scopes} scopes)")
    }
}

/// The jwt_scopes counters of a run, divided by its requests.
#[derive(Clone, Copy)]
struct FilterCounts {
    stripped: f64,
    scope_headers: f64,
    with_identity: f64,
}

/// Median, min and max of a set of values (per-round numbers).
#[derive(Clone, Copy)]
struct Spread {
    median: f64,
    min: f64,
    max: f64,
}

impl Spread {
    fn of(values: &[f64]) -> Option<Spread> {
        if values.is_empty() {
            return None;
        }
        Some(Spread {
            median: median(values.to_vec()),
            min: values.iter().copied().fold(f64::INFINITY, f64::min),
            max: values.iter().copied().fold(f64::NEG_INFINITY, f64::max),
        })
    }

    fn show(&self) -> String {
        format!("{:+.1} [{:+.1}, {:+.1}]", self.median, self.min, self.max)
    }
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One (arm, token) pair's Envoy, pinned to CPU 0, and what was measured of it.
struct Running {
    arm: Arm,
    scopes: usize,
    bearer: Arc<String>,
    envoy: Envoy,
    addr: SocketAddr,
    cpu_us: Vec<f64>,
    throughput: Vec<f64>,
}

/// Starts an Envoy with `filters` before the router (`envoy_config`), the
/// test AWS credentials and `env` in its environment, pinned to CPU 0 (all
/// its threads); returns it and the address of its listener.
fn start_pinned(filters: &[Value], env: &[(String, String)]) -> Result<(Envoy, SocketAddr), String> {
    let mut full_env = AwsCredentials::test().env();
    full_env.extend(env.iter().cloned());
    let envoy = Envoy::start_with_env(&envoy_config(filters), &full_env)?;
    pin_to_cpu0(envoy.pid())?;
    let addr = SocketAddr::from(([127, 0, 0, 1], envoy.port("bench")));
    Ok((envoy, addr))
}

/// Pins every thread of process `pid` to CPU 0 (where Envoy runs; the load
/// generator has CPU 1).
fn pin_to_cpu0(pid: u32) -> Result<(), String> {
    let pinned = Command::new("taskset")
        .args(["-a", "-c", "-p", "0", &pid.to_string()])
        .output();
    if pinned.is_ok_and(|o| o.status.success()) {
        Ok(())
    } else {
        Err("taskset could not pin Envoy to CPU 0".into())
    }
}

impl Running {
    fn start(arm: Arm, token: &Token) -> Result<Running, String> {
        let (envoy, addr) = start_pinned(&arm.filters, &arm.env)?;
        Ok(Running {
            arm,
            scopes: token.scopes,
            bearer: token.bearer.clone(),
            envoy,
            addr,
            cpu_us: Vec::new(),
            throughput: Vec::new(),
        })
    }

    fn label(&self) -> String {
        label(&self.arm.id, self.scopes)
    }

    async fn closed_run(&mut self, duration: Duration) -> Result<(), String> {
        let pid = self.envoy.pid();
        let before = cpu_seconds(pid);
        let start = Instant::now();
        let n = closed_loop(self.addr, self.bearer.clone(), duration).await?;
        let elapsed = start.elapsed().as_secs_f64();
        let used = cpu_seconds(pid) - before;
        let per_request = used * 1e6 / n.max(1) as f64;
        self.cpu_us.push(per_request);
        eprintln!(
            "  {}: {per_request:.1} µs/request, {:.0} req/s",
            self.label(),
            n as f64 / elapsed
        );
        self.throughput.push(n as f64 / elapsed);
        Ok(())
    }

    /// The counter `name` of a filter that must have emitted scope headers.
    fn counter(&self, prefix: &str, counter: Counter) -> u64 {
        self.envoy.stat(&format!("{prefix}{}", counter.name()))
    }
}

/// Starts an arm for a token; an arm that may be absent (the native one)
/// is skipped with a note instead of failing the benchmark.
fn start_or_note(arm: &Arm, token: &Token, notes: &mut Vec<String>) -> Result<Option<Running>, String> {
    match Running::start(arm.clone(), token) {
        Ok(r) => Ok(Some(r)),
        Err(e) if arm.id == "A7" => {
            let lines: Vec<&str> = e
                .lines()
                .filter(|l| l.contains("critical") || l.contains("error") || l.contains("exited"))
                .take(3)
                .collect();
            notes.push(format!(
                "{} skipped: Envoy did not start with the native module: {}",
                label(&arm.id, token.scopes),
                if lines.is_empty() {
                    e.chars().take(300).collect::<String>()
                } else {
                    lines.join(" / ")
                }
            ));
            Ok(None)
        }
        Err(e) => Err(format!("{}: {e}", label(&arm.id, token.scopes))),
    }
}

/// All (arm, token) pairs run side by side (idle ones cost nothing) and are
/// measured in interleaved rounds, so that drift of the machine hits them
/// alike.
async fn measure_all(
    arms: &[Arm],
    tokens: &[Token],
    settings: &Settings,
    notes: &mut Vec<String>,
) -> Result<Vec<Row>, String> {
    let mut running = Vec::new();
    for arm in arms {
        for token in tokens {
            if token.scopes != SCOPES.len() && !arm.many_scopes {
                continue;
            }
            if let Some(r) = start_or_note(arm, token, notes)? {
                running.push(r);
            }
        }
    }
    for r in &running {
        closed_loop(r.addr, r.bearer.clone(), settings.warmup).await?;
    }
    for round in 0..settings.rounds {
        eprintln!("closed-loop round {}/{}", round + 1, settings.rounds);
        for r in running.iter_mut() {
            r.closed_run(settings.closed).await?;
        }
    }
    let mut rows = Vec::new();
    for r in &running {
        eprintln!("open loop: {}", r.label());
        let h = open_loop(r.addr, r.bearer.clone(), settings.open).await?;
        let mut per_request = None;
        if r.arm.id == "A3" {
            // The wasm filter adds its counts to Envoy's every 200 ms.
            tokio::time::sleep(Duration::from_millis(500)).await;
            let prefix = "wasmcustom.";
            let requests = r.counter(prefix, Counter::Requests);
            let emitted = r.counter(prefix, Counter::ScopeHeaders);
            if emitted == 0 || requests == 0 {
                return Err(format!(
                    "{}: the filter emitted no scope headers; the benchmark would not measure it",
                    r.label()
                ));
            }
            let n = requests as f64;
            per_request = Some(FilterCounts {
                stripped: r.counter(prefix, Counter::HeadersStripped) as f64 / n,
                scope_headers: emitted as f64 / n,
                with_identity: r.counter(prefix, Counter::WithIdentity) as f64 / n,
            });
        }
        if r.arm.id == "A7" && r.counter("wasmcustom.", Counter::ScopeHeaders) == 0 {
            return Err(format!(
                "{}: the native filter emitted no scope headers (wasmcustom.{} is 0); \
                 the benchmark would not measure it",
                r.label(),
                Counter::ScopeHeaders.name()
            ));
        }
        rows.push(Row {
            id: r.arm.id.clone(),
            name: r.arm.name.clone(),
            what: r.arm.what.clone(),
            scopes: r.scopes,
            cpu_rounds: r.cpu_us.clone(),
            cpu_us: median(r.cpu_us.clone()),
            throughput: median(r.throughput.clone()),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            rss_mb: rss_mb(r.envoy.pid()),
            heap_mb: heap_allocated_mb(&r.envoy),
            ir: None,
            per_request,
        });
    }
    Ok(rows)
}

/// Counts instructions per request (see `instructions`) after the timed
/// runs, for every row (every (arm, token) pair that was timed), with the
/// same configuration, environment and token. Returns why it did not, when
/// it did not (no valgrind, or BENCH_CALLGRIND=0); a pair that fails (an
/// answer other than 200, Envoy not starting) fails the benchmark.
async fn count_instructions(
    arms: &[Arm],
    tokens: &[Token],
    settings: &Settings,
    rows: &mut [Row],
    notes: &mut Vec<String>,
) -> Result<Option<String>, String> {
    if let Some(why) = instructions::unavailable() {
        notes.push(format!("instructions were not counted: {why}"));
        return Ok(Some(why));
    }
    let envoy = instructions::real_envoy(&envoy_binary()?)?;
    let mut jobs = Vec::new();
    let mut which = Vec::new();
    for (i, row) in rows.iter().enumerate() {
        let (Some(arm), Some(token)) = (
            arms.iter().find(|a| a.id == row.id),
            tokens.iter().find(|t| t.scopes == row.scopes),
        ) else {
            return Err(format!("{}: no arm or token to count instructions with", row.label()));
        };
        // As `Running::start` sets it for the timed run.
        let mut env = AwsCredentials::test().env();
        env.extend(arm.env.iter().cloned());
        jobs.push(instructions::Job {
            label: row.label(),
            config: envoy_config(&arm.filters),
            env,
            load: Arc::new(Load::bench(Arc::from([token.bearer.to_string()]))),
            listener_port: None,
            profile: None,
        });
        which.push(i);
    }
    eprintln!(
        "counting instructions under callgrind: {} Envoys, {} requests each",
        jobs.len(),
        settings.callgrind_requests
    );
    let counts = instructions::count_all(&envoy, &jobs, settings.callgrind_requests).await?;
    for (i, count) in which.into_iter().zip(counts) {
        if let Some(row) = rows.get_mut(i) {
            row.ir = Some(count);
        }
    }
    Ok(None)
}

/// One reading of arm `a` minus the same reading of arm `b`, same token;
/// None when either row or reading is missing.
fn delta(rows: &[Row], a: &str, b: &str, scopes: usize, reading: fn(&Row) -> Option<f64>) -> Option<f64> {
    Some(reading(find(rows, a, scopes)?)? - reading(find(rows, b, scopes)?)?)
}

fn ir_delta(rows: &[Row], a: &str, b: &str, scopes: usize) -> Option<f64> {
    delta(rows, a, b, scopes, |r| r.ir)
}

/// ns per instruction at A1's measured rate (6 scopes): CPU µs/request ÷
/// instructions/request.
fn ns_per_instruction(rows: &[Row]) -> Option<f64> {
    let a1 = find(rows, "A1", SCOPES.len())?;
    Some(a1.cpu_us * 1000.0 / a1.ir?)
}

fn find<'a>(rows: &'a [Row], id: &str, scopes: usize) -> Option<&'a Row> {
    rows.iter().find(|r| r.id == id && r.scopes == scopes)
}

/// CPU µs/request of `a` minus `b`, paired round by round (both measured in
/// the same round, so the machine's drift between rounds cancels).
fn paired(rows: &[Row], a: &str, b: &str, scopes: usize) -> Option<Spread> {
    let a = find(rows, a, scopes)?;
    let b = find(rows, b, scopes)?;
    let deltas: Vec<f64> = a.cpu_rounds.iter().zip(&b.cpu_rounds).map(|(x, y)| x - y).collect();
    Spread::of(&deltas)
}

/// What `id` adds per extra scope between the two tokens, over A1, paired
/// per round: ((X(32) − A1(32)) − (X(6) − A1(6))) / 26.
fn per_scope(rows: &[Row], id: &str) -> Option<Spread> {
    let (few, many) = (SCOPES.len(), MANY_SCOPES);
    let x6 = find(rows, id, few)?;
    let a6 = find(rows, "A1", few)?;
    let x32 = find(rows, id, many)?;
    let a32 = find(rows, "A1", many)?;
    let extra = (many - few) as f64;
    let slopes: Vec<f64> = x6
        .cpu_rounds
        .iter()
        .zip(&a6.cpu_rounds)
        .zip(x32.cpu_rounds.iter().zip(&a32.cpu_rounds))
        .map(|((x6, a6), (x32, a32))| ((x32 - a32) - (x6 - a6)) / extra)
        .collect();
    Spread::of(&slopes)
}

fn rss_delta(rows: &[Row], a: &str, b: &str, scopes: usize) -> Option<f64> {
    delta(rows, a, b, scopes, |r| Some(r.rss_mb))
}

fn heap_delta(rows: &[Row], a: &str, b: &str, scopes: usize) -> Option<f64> {
    delta(rows, a, b, scopes, |r| r.heap_mb)
}

/// Envoy's live heap (tcmalloc's `allocated`, admin `/memory`), MB.
fn heap_allocated_mb(envoy: &Envoy) -> Option<f64> {
    let response = envoy.admin_get("/memory").ok()?;
    let memory: Value = serde_json::from_slice(&response.body).ok()?;
    let bytes: f64 = memory["allocated"].as_str()?.parse().ok()?;
    Some(bytes / 1e6)
}

/// `Machine: <CPU> (<n> CPUs); Envoy <version>`, the reports' first line.
fn machine() -> String {
    let envoy_version = envoy_binary()
        .ok()
        .and_then(|b| Command::new(b).arg("--version").output().ok())
        .map(|o| String::from_utf8_lossy(&o.stdout).trim().to_string())
        .unwrap_or_default();
    let cpus = std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .filter(|l| l.starts_with("processor"))
        .count();
    let version = envoy_version.split("version: ").nth(1).unwrap_or(&envoy_version);
    format!("Machine: {} ({cpus} CPUs); Envoy {version}", cpu_model())
}

fn cpu_model() -> String {
    std::fs::read_to_string("/proc/cpuinfo")
        .unwrap_or_default()
        .lines()
        .find_map(|l| {
            l.strip_prefix("model name")
                .and_then(|r| r.split_once(':'))
                .map(|(_, m)| m.trim().to_string())
        })
        .unwrap_or_else(|| "unknown CPU".into())
}

// ----------------------------------------------------------------------------
// jwt_scopes.wasm: size and host calls
// ----------------------------------------------------------------------------

/// Bytes per section kind of a wasm module (custom sections by name), in
/// order of first appearance; None if the module cannot be parsed.
fn wasm_sections(bytes: &[u8]) -> Option<Vec<(String, usize)>> {
    fn leb128(bytes: &[u8]) -> Option<(usize, usize)> {
        let mut value = 0usize;
        for (i, b) in bytes.iter().take(5).enumerate() {
            value |= usize::from(b & 0x7f) << (7 * i);
            if b & 0x80 == 0 {
                return Some((value, i + 1));
            }
        }
        None
    }
    if bytes.get(..4) != Some(b"\0asm".as_slice()) {
        return None;
    }
    let mut rest = bytes.get(8..)?;
    let mut sections: Vec<(String, usize)> = Vec::new();
    while let Some(&id) = rest.first() {
        let (len, used) = leb128(rest.get(1..)?)?;
        let body = rest.get(1 + used..1 + used + len)?;
        let name = match id {
            0 => {
                let (name_len, n) = leb128(body)?;
                let name = body.get(n..n + name_len)?;
                format!("custom `{}`", String::from_utf8_lossy(name))
            }
            1 => "type".into(),
            2 => "import".into(),
            3 => "function".into(),
            4 => "table".into(),
            5 => "memory".into(),
            6 => "global".into(),
            7 => "export".into(),
            8 => "start".into(),
            9 => "element".into(),
            10 => "code".into(),
            11 => "data".into(),
            12 => "data count".into(),
            other => format!("unknown ({other})"),
        };
        let size = 1 + used + len;
        match sections.iter_mut().find(|(n, _)| *n == name) {
            Some((_, total)) => *total += size,
            None => sections.push((name, size)),
        }
        rest = rest.get(1 + used + len..)?;
    }
    Some(sections)
}

/// The request handler both builds run, over a host that counts the calls
/// the wasm glue (filter/src/lib.rs, `WasmHost`, default features) turns
/// into host calls: header names (one `get_header_map_pairs`), each remove
/// (one `remove_header_map_value`), each add (one `add_header_map_value`,
/// through `Host::update_request_headers`' default), the claims (one
/// `get_property("metadata")`). `count` is no host call (the wasm build
/// batches counts and flushes them every 200 ms).
struct CountingHost {
    header_names: Vec<&'static str>,
    claims: Vec<u8>,
    get_headers: usize,
    removes: usize,
    adds: usize,
    get_property: usize,
    refused: bool,
}

impl Host for CountingHost {
    type Claims = Vec<u8>;

    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError> {
        self.get_headers += 1;
        for name in &self.header_names {
            visit(name.as_bytes());
        }
        Ok(())
    }

    fn remove_request_header(&mut self, _name: &[u8]) -> Result<(), HostError> {
        self.removes += 1;
        Ok(())
    }

    fn add_request_header(&mut self, _name: &str, _value: &str) -> Result<(), HostError> {
        self.adds += 1;
        Ok(())
    }

    fn verified_claims(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        self.get_property += 1;
        Ok(Some(self.claims.clone()))
    }

    fn count(&mut self, _counter: Counter, _n: u64) {}

    fn refuse(&mut self, _refusal: &Refusal) {
        self.refused = true;
    }
}

/// The request headers the filter sees in the benchmark: what the load
/// generator sends (`host` becomes `:authority`), less `authorization`
/// (jwt_authn removes the token after verifying it: `forward` is false),
/// plus what Envoy's connection manager adds.
const FILTER_SEES: [&str; 6] = [
    ":authority",
    ":path",
    ":method",
    ":scheme",
    "x-forwarded-proto",
    "x-request-id",
];

/// Host calls of one benchmark request through the filter, by kind.
struct HostCalls {
    get_headers: usize,
    removes: usize,
    get_property: usize,
    adds: usize,
}

impl HostCalls {
    fn total(&self) -> usize {
        self.get_headers + self.removes + self.get_property + self.adds
    }
}

fn count_host_calls(scopes: usize) -> Result<HostCalls, String> {
    let config = Config::from_json(PLUGIN_CONFIG.as_bytes()).map_err(|e| e.to_string())?;
    let payload = json!({
        "iss": ISSUER,
        "aud": AUDIENCE,
        "exp": 4102444800u64,
        "sub": SUBJECT,
        "scp": scope_list(scopes),
    });
    let mut host = CountingHost {
        header_names: FILTER_SEES.to_vec(),
        claims: encode::metadata(JWT_AUTHN_NAMESPACE, &json!({"jwt_payload": payload})),
        get_headers: 0,
        removes: 0,
        adds: 0,
        get_property: 0,
        refused: false,
    };
    let verdict = handle_request(Some(&config), &mut host, &mut Output::default());
    if verdict != Verdict::Continue || host.refused {
        return Err("the filter refused the benchmark's request in the host-call count".into());
    }
    Ok(HostCalls {
        get_headers: host.get_headers,
        removes: host.removes,
        get_property: host.get_property,
        adds: host.adds,
    })
}

// ----------------------------------------------------------------------------
// The report
// ----------------------------------------------------------------------------

struct Target {
    text: String,
    met: bool,
    /// Set when the rounds' spread straddles the limit: this run cannot say.
    undecided: bool,
    /// What the verdict of a CPU target comes from ("by instructions", "by
    /// CPU time"); None for the others.
    basis: Option<&'static str>,
}

impl Target {
    fn verdict(&self) -> &'static str {
        if self.undecided {
            "UNDECIDED (the rounds' spread straddles the target)"
        } else if self.met {
            "MET"
        } else {
            "NOT MET"
        }
    }
}

/// A CPU target judged by instructions when they were counted
/// (`by_instructions`: whether the instruction-based estimate is within
/// the limit, and what it is): the verdict comes from the count, and the
/// CPU-time verdict stays in the text beside it. Without a count, the
/// CPU-time verdict stands, and says so.
fn judged_by_instructions(timing: Target, by_instructions: Option<(bool, String)>) -> Target {
    match by_instructions {
        None => Target {
            basis: Some("by CPU time"),
            ..timing
        },
        Some((met, estimate)) => Target {
            met,
            undecided: false,
            basis: Some("by instructions"),
            text: format!(
                "{}. By instructions (callgrind), which decide this verdict: {estimate}. By CPU time alone: {}.",
                timing.text,
                timing.verdict()
            ),
        },
    }
}

fn target(met: Option<bool>, text: String) -> Target {
    Target {
        met: met.unwrap_or(false),
        undecided: false,
        basis: None,
        text: if met.is_none() {
            format!("{text} (not measured)")
        } else {
            text
        },
    }
}

/// A CPU target judged on the rounds, not only their median: MET when even
/// the worst round is within `limit`, NOT MET when even the best round is
/// over it, UNDECIDED when the spread straddles it (the machine's noise is
/// larger than the difference asked about).
fn cpu_target(spread: Option<Spread>, limit: f64, text: String) -> Target {
    match spread {
        Some(s) if s.min <= limit && s.max > limit => Target {
            met: false,
            undecided: true,
            basis: None,
            text,
        },
        Some(s) => target(Some(s.max <= limit), text),
        None => target(None, text),
    }
}

fn num(v: Option<f64>, decimals: usize) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:+.decimals$}"))
}

struct Inputs<'a> {
    rows: &'a [Row],
    notes: &'a [String],
    settings: &'a Settings,
    wasm_path: &'a Path,
    chart_file: Option<&'a str>,
    /// Why instructions were not counted, when they were not.
    callgrind_skipped: Option<&'a str>,
}

fn report(inputs: &Inputs<'_>) -> Result<(String, bool), String> {
    let rows = inputs.rows;
    let settings = inputs.settings;
    let few = SCOPES.len();
    let many = MANY_SCOPES;
    let mut out = String::new();
    let _ = writeln!(out, "{}", machine());
    let _ = writeln!(
        out,
        "Envoy --concurrency 1 pinned to CPU 0, load generator on CPU 1; token: RS256, {few} scopes (`scp` array), and {many} scopes for the rows marked \"({many} scopes)\"."
    );
    let _ = writeln!(
        out,
        "CPU/request: median of {} interleaved closed-loop runs of {}s with {CLOSED_CONNECTIONS} connections (after {}s of warm-up); latency: open loop at {OPEN_RATE} req/s for {}s over {OPEN_CONNECTIONS} connections. Every (arm, token) pair has its own Envoy; \"over A1\" is over A1 with the same token, paired per round.\n",
        settings.rounds,
        settings.closed.as_secs_f64(),
        settings.warmup.as_secs_f64(),
        settings.open.as_secs_f64()
    );
    if let Some(chart) = inputs.chart_file {
        let _ = writeln!(
            out,
            "![Envoy CPU per request over jwt_authn alone (median of rounds, whiskers min to max), and resident memory, per arm]({chart})\n"
        );
    }
    let _ = writeln!(out, "| variant | what | Envoy CPU µs/request | over A1 (median [min, max] of rounds) | max req/s | p50 ms | p99 ms | RSS MB |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let over = match paired(rows, &r.id, "A1", r.scopes) {
            Some(s) if r.id != "A0" && r.id != "A1" => format!("{:+.1} [{:+.0}, {:+.0}]", s.median, s.min, s.max),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.1} |",
            r.label(),
            r.what,
            r.cpu_us,
            over,
            r.throughput,
            r.p50_ms,
            r.p99_ms,
            r.rss_mb
        );
    }
    for note in inputs.notes {
        let _ = writeln!(out, "\nNote: {note}");
    }

    // Paired differences.
    let _ = writeln!(out, "\n## Paired differences\n");
    let _ = writeln!(
        out,
        "CPU µs/request of one arm minus another, paired round by round: median [min, max] over the rounds.\n"
    );
    let _ = writeln!(out, "| difference | {few} scopes | {many} scopes |");
    let _ = writeln!(out, "|---|---:|---:|");
    for (what, a, b) in PAIRS {
        let cell = |scopes| paired(rows, a, b, scopes).map_or_else(|| "n/a".into(), |s| s.show());
        let _ = writeln!(out, "| {what} | {} | {} |", cell(few), cell(many));
    }
    let _ = writeln!(
        out,
        "\nCost per extra scope, from the {few}-scope to the {many}-scope token, over A1, paired per round: ((X({many}) − A1({many})) − (X({few}) − A1({few}))) / {}, µs per scope (A5 adds nothing per scope: its row shows the noise):\n",
        many - few
    );
    let _ = writeln!(out, "| arm | µs per extra scope, median [min, max] |");
    let _ = writeln!(out, "|---|---:|");
    for id in ["A2", "A3", "A4", "A5", "A6", "A7"] {
        let name = rows.iter().find(|r| r.id == id).map_or("", |r| r.name.as_str());
        let cell = per_scope(rows, id).map_or_else(
            || "n/a".into(),
            |s| format!("{:+.2} [{:+.2}, {:+.2}]", s.median, s.min, s.max),
        );
        let _ = writeln!(out, "| {id} {name} | {cell} |");
    }

    let _ = writeln!(
        out,
        "\nResident memory differences, MB (one reading per Envoy, after its open-loop run). RSS counts what \
         the allocator keeps after a free; the live heap (tcmalloc's `allocated`, admin `/memory`) does not:\n"
    );
    let _ = writeln!(
        out,
        "| difference | RSS, {few} scopes | RSS, {many} scopes | live heap, {few} scopes | live heap, {many} scopes |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    for (what, a, b) in [
        ("A5 − A1 (V8 and an empty module)", "A5", "A1"),
        ("A3 − A5 (jwt_scopes over the empty module)", "A3", "A5"),
        ("A3 − A1 (jwt_scopes wasm over jwt_authn)", "A3", "A1"),
        ("A7 − A1 (jwt_scopes native over jwt_authn)", "A7", "A1"),
        ("A2 − A1 (sample-equivalent Lua)", "A2", "A1"),
        ("A6 − A1 (the reference)", "A6", "A1"),
    ] {
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} |",
            num(rss_delta(rows, a, b, few), 1),
            num(rss_delta(rows, a, b, many), 1),
            num(heap_delta(rows, a, b, few), 1),
            num(heap_delta(rows, a, b, many), 1)
        );
    }

    instruction_section(&mut out, rows, settings.callgrind_requests, inputs.callgrind_skipped);

    // jwt_scopes.wasm and its host calls.
    let wasm = std::fs::read(inputs.wasm_path).map_err(|e| format!("{}: {e}", inputs.wasm_path.display()))?;
    let wasm_kb = wasm.len() as f64 / 1000.0;
    let _ = writeln!(out, "\n## jwt_scopes.wasm\n");
    let _ = write!(out, "{} bytes ({wasm_kb:.1} KB)", wasm.len());
    if let Some(sections) = wasm_sections(&wasm) {
        let parts: Vec<String> = sections
            .iter()
            .filter(|(_, size)| *size * 100 >= wasm.len())
            .map(|(name, size)| format!("{name} {:.1} KB", *size as f64 / 1000.0))
            .collect();
        let _ = write!(out, "; sections of at least 1%: {}", parts.join(", "));
    }
    let _ = writeln!(out, ".");
    let native = workspace_root().join(NATIVE_DIR).join(NATIVE_LIB);
    if let Ok(meta) = std::fs::metadata(&native) {
        let _ = writeln!(
            out,
            "\nFor comparison, the native module {NATIVE_DIR}/{NATIVE_LIB} (A7) is {} bytes ({:.1} KB) on disk.",
            meta.len(),
            meta.len() as f64 / 1000.0
        );
    }

    let calls6 = count_host_calls(few)?;
    let calls32 = count_host_calls(many)?;
    let _ = writeln!(out, "\n## Host calls per request (the wasm filter)\n");
    let _ = writeln!(
        out,
        "Per request, the filter (filter/src/lib.rs `WasmHost` over jwt_scopes_core::request::handle_request) makes \
         H = 1 + R + 1 + E host calls: one `get_header_map_pairs` (every request header name, for the strip step), \
         one `remove_header_map_value` per distinct stripped name (R: client `x-` names outside the allowlist, and \
         `authorization`/`proxy-authorization` unless `forward_authorization`), one `get_property(\"metadata\")` \
         (jwt_authn's verified payload), and one `add_header_map_value` per header emitted (E: `x-jwt-subject` when \
         `sub` is present, one per scope up to `max_scopes`, one per extra claim mapping). Counts are no host call: \
         they are batched and added to Envoy's 6 counters every 200 ms (6 calls per 200 ms, not per request). This \
         is the default build, which A3 measures; with the experimental feature `batch-headers`, the removes and adds \
         become one `set_header_map_pairs` call when there is any change (H = 3). A5's \
         empty filter makes no host call in its request callback, and Envoy's own callbacks into the VM (stream \
         context creation, request and response headers, end of stream) are the same for both, so the pair A3 − A5 \
         differs by exactly these H calls plus the filter's work inside the VM."
    );
    let _ = writeln!(
        out,
        "\nThe count below comes from running that same handler against a host that counts calls, with the headers the \
         filter sees in this benchmark ({}: jwt_authn has already removed `authorization`) and the bench token's \
         payload. The measured column divides A3's own counters by its requests (`client_headers_stripped` = R, \
         `scope_headers_emitted` + `requests_with_identity` = E, since every bench token has a `sub`).\n",
        FILTER_SEES.map(|n| format!("`{n}`")).join(", ")
    );
    let _ = writeln!(
        out,
        "| token | get_header_map_pairs | remove (R) | get_property | add (E) | H per request | measured in A3: R, E |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|---:|---:|");
    for (scopes, calls) in [(few, &calls6), (many, &calls32)] {
        let measured = find(rows, "A3", scopes).and_then(|r| r.per_request).map_or_else(
            || "n/a".into(),
            |c| format!("{:.2}, {:.2}", c.stripped, c.scope_headers + c.with_identity),
        );
        let _ = writeln!(
            out,
            "| {scopes} scopes | {} | {} | {} | {} | {} | {measured} |",
            calls.get_headers,
            calls.removes,
            calls.get_property,
            calls.adds,
            calls.total()
        );
    }

    // Targets.
    let own = paired(rows, "A3", "A5", few);
    let native_vs_c2h = paired(rows, "A7", "A4", few);
    let a3_over = paired(rows, "A3", "A1", few);
    let a2_over = paired(rows, "A2", "A1", few);
    let rss_own = rss_delta(rows, "A3", "A5", few);
    let rss_native = rss_delta(rows, "A7", "A1", few);
    let rss_a3 = rss_delta(rows, "A3", "A1", few);
    let m = |s: Option<Spread>| s.map_or(f64::NAN, |s| s.median);
    // The CPU targets by instructions (when counted): the paired difference
    // in instructions, as µs at A1's rate, against the same limit.
    let ns = ns_per_instruction(rows);
    let by_ir = |a: &str, b: &str, limit: f64| -> Option<(bool, String)> {
        let d = ir_delta(rows, a, b, few)?;
        let us = d * ns? / 1000.0;
        Some((
            us <= limit,
            format!(
                "{a} − {b} = {d:+.0} instructions/request ≈ {us:+.2} µs at A1's rate (an estimate, see the \
                 instruction section; target ≤ {limit} µs)"
            ),
        ))
    };
    let lua_by_ir = ir_delta(rows, "A3", "A1", few)
        .zip(ir_delta(rows, "A2", "A1", few))
        .map(|(wasm, lua)| {
            let ratio = if lua > 0.0 { wasm / lua } else { f64::NAN };
            (
                ratio <= 0.5,
                format!(
                    "A3 − A1 = {wasm:+.0} and A2 − A1 = {lua:+.0} instructions/request, {:.0}% (a ratio of counts, \
                     so no µs rate enters it; target ≤ 50%)",
                    100.0 * ratio
                ),
            )
        });
    let targets = [
        judged_by_instructions(
            cpu_target(
                own,
                1.0,
                format!(
                    "the wasm filter's own cost (A3 − A5, paired per round, {few} scopes) is {} µs CPU/request (target ≤ 1 µs)",
                    own.map_or_else(|| "n/a".into(), |s| s.show())
                ),
            ),
            by_ir("A3", "A5", 1.0),
        ),
        target(
            rss_own.map(|d| d <= 2.0),
            format!(
                "jwt_scopes' RSS over the empty filter's (A3 − A5, {few} scopes): {} MB (target ≤ +2 MB); its live heap \
                 over the empty filter's: {} MB",
                num(rss_own, 1),
                num(heap_delta(rows, "A3", "A5", few), 1)
            ),
        ),
        target(
            Some(wasm.len() <= 150_000),
            format!(
                "jwt_scopes.wasm is {wasm_kb:.1} KB ({} bytes) (target ≤ 150 KB)",
                wasm.len()
            ),
        ),
        judged_by_instructions(
            cpu_target(
                native_vs_c2h,
                0.5,
                format!(
                    "the native module over claim_to_headers (A7 − A4, paired per round, {few} scopes): {} µs CPU/request (target ≤ +0.5 µs)",
                    native_vs_c2h.map_or_else(|| "n/a".into(), |s| s.show())
                ),
            ),
            by_ir("A7", "A4", 0.5),
        ),
        target(
            rss_native.map(|d| d <= 1.0),
            format!(
                "the native module's RSS over jwt_authn alone's (A7 − A1, {few} scopes): {} MB (target ≤ +1 MB); its \
                 live heap over jwt_authn alone's: {} MB",
                num(rss_native, 1),
                num(heap_delta(rows, "A7", "A1", few), 1)
            ),
        ),
        judged_by_instructions(
            cpu_target(
                a3_over,
                3.0,
                format!(
                    "jwt_scopes (wasm) adds {} µs CPU/request over jwt_authn alone (A3 − A1, paired per round, {few} \
                     scopes; target ≤ 3 µs)",
                    a3_over.map_or_else(|| "n/a".into(), |s| s.show())
                ),
            ),
            by_ir("A3", "A1", 3.0),
        ),
        judged_by_instructions(
            target(
                a3_over.zip(a2_over).map(|(f, l)| f.median <= l.median / 2.0),
                format!(
                    "by CPU time that is {:.0}% of what the sample-equivalent Lua adds (A2 − A1, {:.1} µs; medians \
                     of the rounds; target ≤ 50%)",
                    if m(a2_over) > 0.0 { 100.0 * m(a3_over) / m(a2_over) } else { f64::NAN },
                    m(a2_over)
                ),
            ),
            lua_by_ir,
        ),
        target(
            rss_a3.map(|d| d <= 15.0),
            format!(
                "jwt_scopes (wasm) costs {} MB of extra resident memory over jwt_authn alone (target ≤ 15 MB)",
                num(rss_a3, 1)
            ),
        ),
    ];
    let _ = writeln!(out, "\n## Targets\n");
    let _ = writeln!(
        out,
        "The CPU targets are judged by instructions when callgrind counted them (their µs at A1's rate, an \
         estimate; see the instruction section), since on this machine the rounds' CPU time spreads by more than \
         the limits; each such line also gives the CPU-time numbers and the verdict CPU time alone would give. \
         Without counts they are judged by CPU time. The memory and size targets are measured directly.\n"
    );
    let mut ok = true;
    for t in &targets {
        ok &= t.met;
        let basis = t.basis.map_or_else(String::new, |b| format!(" ({b})"));
        let _ = writeln!(out, "- {}{basis}: {}", t.verdict(), t.text);
    }

    bounds(&mut out, rows, &calls6, &wasm);
    Ok((out, ok))
}

/// The paired differences the CPU targets and the instruction table use
/// (label, a, b): a − b, same token.
const IR_PAIRS: [(&str, &str, &str); 7] = [
    (
        "jwt_scopes' own cost: A3 − A5 (wasm filter minus empty wasm filter)",
        "A3",
        "A5",
    ),
    ("native vs claim_to_headers: A7 − A4", "A7", "A4"),
    (
        "proxy-wasm floor: A5 − A1 (empty wasm filter over jwt_authn)",
        "A5",
        "A1",
    ),
    ("jwt_scopes native over jwt_authn: A7 − A1", "A7", "A1"),
    ("jwt_scopes wasm over jwt_authn: A3 − A1", "A3", "A1"),
    ("sample-equivalent Lua over jwt_authn: A2 − A1", "A2", "A1"),
    ("the reference over jwt_authn: A6 − A1", "A6", "A1"),
];

/// Instructions `id` adds per extra scope between the two tokens, over A1:
/// ((X(32) − A1(32)) − (X(6) − A1(6))) / 26.
fn ir_per_scope(rows: &[Row], id: &str) -> Option<f64> {
    let (few, many) = (SCOPES.len(), MANY_SCOPES);
    Some((ir_delta(rows, id, "A1", many)? - ir_delta(rows, id, "A1", few)?) / (many - few) as f64)
}

/// The callgrind counts: per arm, the pairs the targets use, and the cost
/// per extra scope, in instructions and in µs at A1's rate; or why there
/// are none.
fn instruction_section(out: &mut String, rows: &[Row], requests: usize, skipped: Option<&str>) {
    let few = SCOPES.len();
    let many = MANY_SCOPES;
    let _ = writeln!(out, "\n## Instructions per request (callgrind)\n");
    if let Some(why) = skipped {
        let _ = writeln!(
            out,
            "Not counted in this run ({why}); the CPU targets below are judged by CPU time alone."
        );
        return;
    }
    let ns = ns_per_instruction(rows);
    let _ = writeln!(
        out,
        "Counted by valgrind's callgrind (bench/src/instructions.rs), after the timed rounds: every (arm, token) \
         pair again in its own Envoy, with the same configuration, environment and token, on callgrind's synthetic \
         CPU; after {} warm-up requests the counts are zeroed (`callgrind_control --zero`), then {requests} \
         requests go over one keep-alive HTTP/1.1 connection (every answer 200) and the counts of all Envoy's \
         threads are summed (`callgrind_control -e`) and divided by {requests}. Unlike CPU time, a count does \
         not move with the machine's load (repeats agree to about 0.1 %), so differences of a few hundred \
         instructions are real. A count weighs every instruction alike.",
        instructions::WARMUP_REQUESTS
    );
    let a1 = find(rows, "A1", few);
    match (ns, a1) {
        (Some(ns), Some(a1)) => {
            let _ = writeln!(
                out,
                "\nThe µs columns are an estimate, not a measurement: instructions × {ns:.4} ns, A1's rate on this \
                 machine (A1's median CPU time, {:.1} µs/request, ÷ its {:.0} instructions/request, {few} scopes). \
                 That assumes other code retires instructions as fast as A1's does; code with more cache misses \
                 or mispredicted branches per instruction (a VM's, an interpreter's) runs slower than that, so the \
                 µs can be off by a factor, though not their order.\n",
                a1.cpu_us,
                a1.ir.unwrap_or(f64::NAN)
            );
        }
        _ => {
            let _ = writeln!(
                out,
                "\nA1 ({few} scopes) was not counted, so there is no µs estimate.\n"
            );
        }
    }
    let us = |d: Option<f64>, decimals: usize| match (d, ns) {
        (Some(d), Some(ns)) => format!("{:+.decimals$}", d * ns / 1000.0),
        _ => "n/a".into(),
    };
    let _ = writeln!(
        out,
        "| variant | instructions/request | over A1 (same token) | ≈ µs over A1 (estimate) |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|");
    for r in rows.iter().filter(|r| r.ir.is_some()) {
        let over = ir_delta(rows, &r.id, "A1", r.scopes).filter(|_| r.id != "A1" && r.id != "A0");
        let _ = writeln!(
            out,
            "| {} | {:.0} | {} | {} |",
            label(&r.id, r.scopes),
            r.ir.unwrap_or(f64::NAN),
            over.map_or_else(String::new, |d| format!("{d:+.0}")),
            over.map_or_else(String::new, |d| us(Some(d), 1)),
        );
    }
    let _ = writeln!(
        out,
        "\nPaired differences by instructions (each arm minus the other with the same token):\n"
    );
    let _ = writeln!(
        out,
        "| difference | instructions, {few} scopes | ≈ µs | instructions, {many} scopes | ≈ µs |"
    );
    let _ = writeln!(out, "|---|---:|---:|---:|---:|");
    let more = PAIRS
        .into_iter()
        .filter(|(_, a, b)| !IR_PAIRS.iter().any(|(_, x, y)| x == a && y == b));
    for (what, a, b) in IR_PAIRS.into_iter().chain(more) {
        let d6 = ir_delta(rows, a, b, few);
        let d32 = ir_delta(rows, a, b, many);
        let show = |d: Option<f64>| d.map_or_else(|| "n/a".into(), |d| format!("{d:+.0}"));
        let _ = writeln!(
            out,
            "| {what} | {} | {} | {} | {} |",
            show(d6),
            us(d6, 2),
            show(d32),
            us(d32, 2)
        );
    }
    let _ = writeln!(
        out,
        "\nPer extra scope, over A1: ((X({many}) − A1({many})) − (X({few}) − A1({few}))) / {} (A5 adds nothing per \
         scope, so its row shows how exact the counts are):\n",
        many - few
    );
    let _ = writeln!(out, "| arm | instructions per extra scope | ≈ µs (estimate) |");
    let _ = writeln!(out, "|---|---:|---:|");
    for id in ["A2", "A3", "A4", "A5", "A6", "A7"] {
        let name = rows.iter().find(|r| r.id == id).map_or("", |r| r.name.as_str());
        let per = ir_per_scope(rows, id);
        let _ = writeln!(
            out,
            "| {id} {name} | {} | {} |",
            per.map_or_else(|| "n/a".into(), |p| format!("{p:+.0}")),
            us(per, 3)
        );
    }
}

/// The instruction counts behind the wasm filter's own cost, when counted.
fn wasm_instruction_bounds(rows: &[Row], calls: &HostCalls) -> String {
    let few = SCOPES.len();
    let (Some(own), Some(ns)) = (ir_delta(rows, "A3", "A5", few), ns_per_instruction(rows)) else {
        return String::new();
    };
    let us = |ir: f64| ir * ns / 1000.0;
    let mut text = format!(
        " By instructions, A3 − A5 = {own:+.0} ({:+.1} µs at A1's rate).",
        us(own)
    );
    if let Some(per) = ir_per_scope(rows, "A3") {
        let adds = calls.adds as f64 * per;
        let _ = write!(
            text,
            " Each extra scope costs {per:.0} instructions ({:.2} µs): one `add_header_map_value` with the name \
             built in the VM. The {} adds of the {few}-scope token are thus about {adds:.0} of the {own:.0} \
             ({:.0} %); the header walk, the metadata read and decoding, and the VM's own callbacks are the rest. \
             One header per scope through proxy-wasm is what bounds this number: the target of 1 µs is about {:.0} \
             instructions, less than one add.",
            us(per),
            calls.adds,
            100.0 * adds / own,
            1000.0 / ns
        );
    }
    for r in rows.iter().filter(|r| r.id.starts_with('X') && r.scopes == few) {
        if let Some(d) = ir_delta(rows, &r.id, "A3", few) {
            let _ = write!(text, " {} ({}) against A3: {d:+.0} instructions.", r.id, r.what);
        }
    }
    text
}

/// The instruction counts behind the native module's cost, when counted.
fn native_instruction_bounds(rows: &[Row]) -> String {
    let few = SCOPES.len();
    match (
        ir_delta(rows, "A7", "A1", few),
        ir_delta(rows, "A4", "A1", few),
        ns_per_instruction(rows),
    ) {
        (Some(native), Some(c2h), Some(ns)) => format!(
            " By instructions, A7 − A1 = {native:+.0} and A4 − A1 = {c2h:+.0}: the native module costs {:.1} µs \
             over jwt_authn at A1's rate, claim_to_headers {:.1} µs. Its {} extra header adds (one per scope, where \
             claim_to_headers makes one header of all scopes), the dynamic-module filter's own per-stream cost, and \
             the payload's read and parse are the difference; per extra scope the native module costs fewer \
             instructions than claim_to_headers (see the instruction table).",
            native * ns / 1000.0,
            c2h * ns / 1000.0,
            SCOPES.len() + 1 - 2
        ),
        _ => String::new(),
    }
}

/// The paired differences the report shows (label, a, b): a − b.
const PAIRS: [(&str, &str, &str); 6] = [
    (
        "jwt_scopes' own cost: A3 − A5 (wasm filter minus empty wasm filter)",
        "A3",
        "A5",
    ),
    (
        "proxy-wasm floor: A5 − A1 (empty wasm filter over jwt_authn)",
        "A5",
        "A1",
    ),
    ("native vs claim_to_headers: A7 − A4", "A7", "A4"),
    ("native vs wasm: A7 − A3", "A7", "A3"),
    ("reference vs sample-equivalent Lua: A6 − A2", "A6", "A2"),
    ("jwt_scopes wasm vs the reference: A3 − A6", "A3", "A6"),
];

/// What bounds each number: which part of the work each one measures, with
/// the numbers of this run that split it.
fn bounds(out: &mut String, rows: &[Row], calls: &HostCalls, wasm: &[u8]) {
    let few = SCOPES.len();
    let cpu = |a: &str, b: &str| num(paired(rows, a, b, few).map(|s| s.median), 1);
    let slope = |id: &str| num(per_scope(rows, id).map(|s| s.median), 2);
    let rss = |a: &str, b: &str| num(rss_delta(rows, a, b, few), 1);
    let heap = |a: &str, b: &str| num(heap_delta(rows, a, b, few), 1);
    let code = wasm_sections(wasm)
        .and_then(|s| {
            s.iter()
                .find(|(n, _)| n == "code")
                .map(|(_, size)| *size as f64 / 1000.0)
        })
        .map_or_else(|| "n/a".into(), |kb| format!("{kb:.1}"));
    let a1_over_a0 = cpu("A1", "A0");
    let _ = writeln!(out, "\n## What bounds each number\n");
    let lines = [
        "**A0, router only**: Envoy's own per-request work (HTTP/1.1 codec, connection manager, a \
         `direct_response`) and the loopback socket calls; every other arm pays it too."
            .to_string(),
        format!(
            "**A1 − A0 = {a1_over_a0} µs, jwt_authn**: an RS256 signature check on every request (no arm sets \
             `jwt_cache_config`), plus base64 and JSON parsing of the token. This is the floor every design pays."
        ),
        format!(
            "**A5 − A1 = {} µs, the proxy-wasm floor**: what Envoy's V8 host costs any proxy-wasm filter per stream \
             (creating and destroying the stream's context, each callback into the VM) before the filter does \
             anything. It is bounded by Envoy's wasm runtime, not by the filter, and jwt_scopes pays it in full.",
            cpu("A5", "A1")
        ),
        format!(
            "**A3 − A5 = {} µs, jwt_scopes' own cost**: {} host calls for the {few}-scope token (each one crosses the \
             V8 boundary and copies its data in or out of the VM), plus the filter's work inside the VM (the header \
             walk, the protobuf decoding, building names). Each extra scope adds one header and one \
             `add_header_map_value`: {} µs per scope, which bounds the cost of one such call from above.{}",
            cpu("A3", "A5"),
            calls.total(),
            slope("A3"),
            wasm_instruction_bounds(rows, calls)
        ),
        format!(
            "**A7 − A4 = {} µs, native vs claim_to_headers**: the module gets the payload from jwt_authn's \
             `forward_payload_header` (jwt_authn appends the token's base64url payload and removes any client \
             copy first), reads which payload keys jwt_authn's metadata holds (two calls), reads the header, \
             decodes it and parses the JSON keeping only the claims it maps, walks the request headers, adds one \
             header per scope through direct C calls (no VM), removes the payload header and clears the route cache \
             (so the router matches again on the identity headers: claim_to_headers does not). claim_to_headers \
             instead adds two headers from the token jwt_authn has already parsed. The native module's cost per \
             extra scope is {} µs; claim_to_headers' (A4) is {} µs: its one `x-jwt-scope` header grows, but it does \
             not multiply.",
            cpu("A7", "A4"),
            slope("A7"),
            slope("A4")
        ) + &native_instruction_bounds(rows),
        format!(
            "**A2 − A1 = {} µs, A6 − A1 = {} µs, the Lua arms**: each Lua filter runs a coroutine per request, and \
             converts jwt_authn's metadata into Lua tables when it reads them. A6 has two Lua filters: its strip \
             loop walks every header (this benchmark sends no client `x-` header, so nothing is removed or \
             logged), and its scope script walks every metadata namespace. Per extra scope: A2 {} µs, A6 {} µs.",
            cpu("A2", "A1"),
            cpu("A6", "A1"),
            slope("A2"),
            slope("A6")
        ),
        format!(
            "**RSS, A5 − A1 = {} MB**: the V8 isolate and its wasm engine, which any V8 filter pays. **A3 − A5 = {} \
             MB of RSS, but {} MB of live heap**: what jwt_scopes keeps is its compiled code (the module's code \
             section is {code} KB before V8 compiles it), its configuration and the VM's linear memory; the rest of \
             the RSS is memory V8 used while compiling the larger module and freed, which Envoy's allocator \
             (tcmalloc) keeps mapped for reuse (its page heap and thread caches; admin `/memory` shows them). \
             Measured apart from this run: the difference is there before the first request, grows by under 1 MB \
             per extra worker, and Envoy's `memory_allocator_manager` (bootstrap) hands part of it back. \
             **A7 − A1 = {} MB ({} MB live heap)**: the pages of the native module Envoy maps and touches (its size \
             is above) and its per-worker buffers. RSS is one reading per Envoy, so differences under about 1 MB \
             are within allocator noise.",
            rss("A5", "A1"),
            rss("A3", "A5"),
            heap("A3", "A5"),
            rss("A7", "A1"),
            heap("A7", "A1")
        ),
        "**jwt_scopes.wasm's size**: the code section (the filter, jwt_scopes_core, serde_json for the \
         configuration, the proxy-wasm SDK and Rust's formatting and allocation code) is most of it; see the \
         section sizes above."
            .to_string(),
        format!(
            "**Latency** at {OPEN_RATE} req/s is the loopback, the load generator's scheduling and Envoy's event loop. \
             A few µs of filter CPU is far below their noise, so p50 and p99 bound no filter's cost."
        ),
    ];
    for line in lines {
        let _ = writeln!(out, "- {line}");
    }
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = match std::env::args().nth(1).as_deref() {
        None => runtime.block_on(run()),
        // `make bench-cache`: jwt_authn's token cache (bench/src/cache.rs).
        Some("cache") => runtime.block_on(cache::run()),
        // `make bench-path`: the whole request path against the reference (bench/src/path.rs).
        Some("path") => runtime.block_on(path::run()),
        Some(other) => Err(format!(
            "unknown mode `{other}` (no argument: the arms; `cache`: the token-cache sweep; `path`: the whole path)"
        )),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let issuer = Issuer::new();
    let wasm_path = filter_wasm()?;
    let wasm = wasm_path.display().to_string();
    let tokens: Vec<Token> = [SCOPES.len(), MANY_SCOPES]
        .into_iter()
        .map(|scopes| {
            // Valid for the whole run (the default test token expires in 5
            // minutes; a full run takes about 20).
            let claims = json!({"iss": ISSUER, "aud": AUDIENCE, "sub": SUBJECT, "scp": scope_list(scopes)});
            let claims = claims.as_object().cloned().unwrap_or_default();
            let token = issuer.sign(Alg::RS256, claims, Duration::from_secs(6 * 3600))?;
            Ok(Token {
                scopes,
                bearer: Arc::new(format!("Bearer {token}")),
            })
        })
        .collect::<Result<_, String>>()?;
    let (arms, mut notes) = arms(&issuer.jwks(), &wasm);
    let mut rows = measure_all(&arms, &tokens, &settings, &mut notes).await?;
    let callgrind_skipped = count_instructions(&arms, &tokens, &settings, &mut rows, &mut notes).await?;

    std::fs::create_dir_all(&settings.out).map_err(|e| format!("{}: {e}", settings.out.display()))?;
    let chart_path = settings.out.join("chart.png");
    let chart_file = match chart::draw(&chart_path, &rows, SCOPES.len()) {
        Ok(()) => Some("chart.png"),
        Err(e) => {
            notes.push(format!("the chart could not be drawn: {e}"));
            None
        }
    };
    let (text, targets_met) = report(&Inputs {
        rows: &rows,
        notes: &notes,
        settings: &settings,
        wasm_path: &wasm_path,
        chart_file,
        callgrind_skipped: callgrind_skipped.as_deref(),
    })?;
    println!("{text}");
    let path = settings.out.join("REPORT.md");
    let doc = format!("# Benchmark report\n\nProduced by `make bench` (bench/src/main.rs); numbers from one run on the machine named below.\n\n{text}");
    std::fs::write(&path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "written to {}{}{}",
        path.display(),
        chart_file.map_or(String::new(), |_| format!(" and {}", chart_path.display())),
        if targets_met { "" } else { " (some targets not met)" }
    );
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reference_scripts_fold_to_one_line_as_the_yaml_delivers_them() {
        let strip = as_deployed(REFERENCE_STRIP_LUA);
        assert!(strip.starts_with("function envoy_on_request(request_handle) local headers = request_handle:headers()"));
        assert!(strip.ends_with("headers:remove(value) end end"));
        let scopes = as_deployed(REFERENCE_SCOPES_LUA);
        assert!(scopes.starts_with("function envoy_on_request(request_handle) local meta ="));
        assert!(scopes.contains(r#"request_handle:headers():add("x-jwt-scope-" .. value1, "true")"#));
        assert!(!scopes.contains('\n') && !strip.contains('\n'));
    }

    #[test]
    fn host_calls_of_the_bench_tokens() {
        let six = count_host_calls(6).unwrap();
        assert_eq!((six.get_headers, six.removes, six.get_property, six.adds), (1, 0, 1, 7));
        assert_eq!(count_host_calls(32).unwrap().total(), 2 + 33);
    }

    #[test]
    fn scope_lists() {
        assert_eq!(scope_list(6), SCOPES.map(String::from).to_vec());
        let many = scope_list(32);
        assert_eq!(many.len(), 32);
        assert_eq!(many.last().map(String::as_str), Some("service26.read"));
    }

    #[test]
    fn the_chart_is_drawn() {
        let row = |id: &str, scopes: usize, cpu: [f64; 3], rss: f64| Row {
            id: id.into(),
            name: format!("arm {id}"),
            what: String::new(),
            scopes,
            cpu_rounds: cpu.to_vec(),
            cpu_us: median(cpu.to_vec()),
            throughput: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            rss_mb: rss,
            heap_mb: Some(rss / 10.0),
            ir: None,
            per_request: None,
        };
        let rows = vec![
            row("A0", 6, [40.0, 45.0, 50.0], 64.0),
            row("A1", 6, [120.0, 130.0, 125.0], 65.0),
            row("A1", 32, [125.0, 135.0, 130.0], 65.2),
            row("A3", 6, [150.0, 190.0, 170.0], 98.0),
            row("A3", 32, [160.0, 200.0, 180.0], 98.5),
            row("A4", 6, [110.0, 140.0, 131.0], 65.4),
        ];
        let path = std::env::temp_dir().join(format!("bench-chart-test-{}.png", std::process::id()));
        chart::draw(&path, &rows, 6).unwrap();
        let png = std::fs::read(&path).unwrap();
        assert!(png.starts_with(b"\x89PNG"));
        if std::env::var_os("BENCH_KEEP_TEST_CHART").is_none() {
            let _ = std::fs::remove_file(&path);
        }
    }

    fn counted(id: &str, scopes: usize, cpu_us: f64, ir: f64) -> Row {
        Row {
            id: id.into(),
            name: format!("arm {id}"),
            what: String::new(),
            scopes,
            cpu_rounds: vec![cpu_us],
            cpu_us,
            throughput: 0.0,
            p50_ms: 0.0,
            p99_ms: 0.0,
            rss_mb: 0.0,
            heap_mb: None,
            ir: Some(ir),
            per_request: None,
        }
    }

    #[test]
    fn instruction_table_pairs_and_per_scope_costs() {
        let rows = vec![
            counted("A1", 6, 100.0, 500_000.0),
            counted("A1", 32, 110.0, 700_000.0),
            counted("A3", 6, 120.0, 580_000.0),
            counted("A3", 32, 140.0, 988_000.0),
            counted("A5", 6, 105.0, 517_000.0),
            counted("A5", 32, 115.0, 717_000.0),
        ];
        // 100 µs / 500,000 instructions.
        assert_eq!(ns_per_instruction(&rows), Some(0.2));
        // ((988,000 − 700,000) − (580,000 − 500,000)) / 26 = 8,000.
        assert_eq!(ir_per_scope(&rows, "A3"), Some(8000.0));
        assert_eq!(ir_per_scope(&rows, "A5"), Some(0.0));
        assert_eq!(ir_per_scope(&rows, "A7"), None);
        let mut out = String::new();
        instruction_section(&mut out, &rows, 2000, None);
        assert!(out.contains("| A3 (32 scopes) | 988000 | +288000 | +57.6 |"), "{out}");
        assert!(out.contains("| jwt_scopes' own cost: A3 − A5 (wasm filter minus empty wasm filter) | +63000 | +12.60 | +271000 | +54.20 |"), "{out}");
        assert!(
            out.contains("| native vs claim_to_headers: A7 − A4 | n/a | n/a | n/a | n/a |"),
            "{out}"
        );
        assert!(out.contains("| A3 arm A3 | +8000 | +1.600 |"), "{out}");
        assert!(out.contains("an estimate"), "{out}");
        let mut skipped = String::new();
        instruction_section(&mut skipped, &rows, 2000, Some("BENCH_CALLGRIND=0"));
        assert!(
            skipped.contains("Not counted in this run (BENCH_CALLGRIND=0)"),
            "{skipped}"
        );
        assert!(!skipped.contains('|'));
    }

    #[test]
    fn cpu_targets_are_judged_by_instructions_when_counted() {
        let straddles = Spread {
            median: 0.9,
            min: -20.0,
            max: 25.0,
        };
        let timing = || cpu_target(Some(straddles), 1.0, "A3 − A5 is +0.9 µs".into());
        assert!(timing().undecided);
        let met = judged_by_instructions(timing(), Some((true, "+4000 instructions".into())));
        assert!(met.met && !met.undecided);
        assert_eq!(met.basis, Some("by instructions"));
        assert!(met.text.contains("+4000 instructions"));
        assert!(met
            .text
            .ends_with("By CPU time alone: UNDECIDED (the rounds' spread straddles the target)."));
        let not_met = judged_by_instructions(timing(), Some((false, "+66000 instructions".into())));
        assert_eq!(not_met.verdict(), "NOT MET");
        // Without counts the CPU-time verdict stands.
        let alone = judged_by_instructions(timing(), None);
        assert!(alone.undecided);
        assert_eq!(alone.basis, Some("by CPU time"));
    }

    #[test]
    fn wasm_sections_are_read() {
        // magic, version, a type section of 1 byte (no types), a custom section "x" with 1 byte.
        let module = [0, b'a', b's', b'm', 1, 0, 0, 0, 1, 1, 0, 0, 3, 1, b'x', 9];
        let sections = wasm_sections(&module).unwrap();
        assert_eq!(sections, vec![("type".to_string(), 3), ("custom `x`".to_string(), 5)]);
        assert!(wasm_sections(b"nope").is_none());
    }
}
