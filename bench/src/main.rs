//! `make bench`: what the jwt_scopes filter costs, measured against the
//! alternatives in one run on one machine (design.md §6).
//!
//! Variants, all stock Envoy 1.40 with `--concurrency 1` answering with a
//! `direct_response` (no upstream, so only filter cost is measured):
//!   A0 router only; A1 jwt_authn only (the floor); A2 A1 + Lua doing what
//!   the reference sample's Lua does (Okta `scp` array to headers); A3 A1 +
//!   jwt_scopes; A4 A1 + jwt_authn's native `claim_to_headers` (a lower
//!   bound: it cannot emit one header per scope); A5 A1 + an empty
//!   proxy-wasm filter (what any V8 filter costs before doing anything).
//!
//! Envoy is pinned to CPU 0, this load generator to CPU 1 (`make bench` runs
//! it under `taskset -c 1`). Reported: Envoy CPU time per request
//! (utime+stime from /proc over a closed-loop run), closed-loop throughput,
//! p50/p99 latency at a fixed offered rate (open loop, measured from the
//! scheduled send time so queueing counts), and Envoy's resident memory.

use bytes::Bytes;
use e2e::envoy::{envoy_binary, filter_wasm, Envoy};
use e2e::jwt::{Alg, Issuer, AUDIENCE, ISSUER};
use hdrhistogram::Histogram;
use http_body_util::{BodyExt, Empty};
use hyper::client::conn::http1::SendRequest;
use hyper_util::rt::TokioIo;
use serde_json::{json, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::process::{Command, ExitCode};
use std::sync::Arc;
use std::time::{Duration, Instant};
use tokio::sync::{mpsc, Mutex};

const WARMUP: Duration = Duration::from_secs(2);
const CLOSED_LOOP: Duration = Duration::from_secs(4);
const CLOSED_LOOP_RUNS: usize = 7;
const CLOSED_CONNECTIONS: usize = 16;
const OPEN_LOOP: Duration = Duration::from_secs(6);
const OPEN_RATE: u64 = 1000;
const OPEN_CONNECTIONS: usize = 32;
const SCOPES: [&str; 6] = ["openid", "profile", "email", "test.all", "orders.read", "Orders.Write"];

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

struct Variant {
    id: String,
    what: String,
    filters: Vec<Value>,
}

fn jwt_authn(jwks: &str, claim_to_headers: bool) -> Value {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "require_expiration": true,
        "local_jwks": {"inline_string": jwks},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        "payload_in_metadata": "jwt_payload",
    });
    if claim_to_headers {
        provider["claim_to_headers"] = json!([
            {"header_name": "x-jwt-subject", "claim_name": "sub"},
            {"header_name": "x-jwt-scope", "claim_name": "scp"},
        ]);
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
    json!({
        "name": "envoy.filters.http.wasm",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
            "config": {
                "name": "jwt_scopes",
                "root_id": root_id,
                "failure_policy": "FAIL_RELOAD",
                "vm_config": {"runtime": "envoy.wasm.runtime.v8", "code": {"local": {"filename": wasm}}},
            },
        },
    })
}

fn variants(jwks: &str, wasm: &str) -> Vec<Variant> {
    let lua = json!({
        "name": "envoy.filters.http.lua",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.lua.v3.Lua",
            "default_source_code": {"inline_string": SAMPLE_LUA},
        },
    });
    let mut list = vec![
        Variant {
            id: "A0".into(),
            what: "router only".into(),
            filters: vec![],
        },
        Variant {
            id: "A1".into(),
            what: "jwt_authn only (the floor)".into(),
            filters: vec![jwt_authn(jwks, false)],
        },
        Variant {
            id: "A2".into(),
            what: "A1 + the sample's Lua".into(),
            filters: vec![jwt_authn(jwks, false), lua],
        },
        Variant {
            id: "A3".into(),
            what: "A1 + jwt_scopes (this filter)".into(),
            filters: vec![jwt_authn(jwks, false), wasm_filter(wasm, "jwt_scopes")],
        },
        Variant {
            id: "A4".into(),
            what: "A1 + native claim_to_headers".into(),
            filters: vec![jwt_authn(jwks, true)],
        },
    ];
    let empty = e2e::envoy::workspace_root().join("target/wasm32-wasip1/release/empty_filter.wasm");
    // For investigations: any other module in A3's place, measured alongside.
    // (comma-separated paths give X1, X2, ...).
    for (i, extra) in std::env::var("BENCH_EXTRA_WASM")
        .unwrap_or_default()
        .split(',')
        .filter(|p| !p.is_empty())
        .enumerate()
    {
        let id = format!("X{}", i + 1);
        let what = format!("A1 + {extra}");
        list.push(Variant {
            id,
            what,
            filters: vec![jwt_authn(jwks, false), wasm_filter(extra, "jwt_scopes")],
        });
    }
    list.push(Variant {
        id: "A5".into(),
        what: "A1 + an empty proxy-wasm filter (the V8 floor)".into(),
        filters: vec![jwt_authn(jwks, false), wasm_filter(&empty.display().to_string(), "")],
    });
    list
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
    let request = hyper::Request::get("/")
        .header("host", "bench")
        .header("authorization", bearer)
        .body(Empty::new())
        .map_err(|e| e.to_string())?;
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let status = response.status();
    response.into_body().collect().await.map_err(|e| e.to_string())?;
    if status != 200 {
        return Err(format!("status {status}"));
    }
    Ok(())
}

/// Closed loop: each connection sends as fast as answers come back.
async fn closed_loop(addr: SocketAddr, bearer: Arc<String>, duration: Duration) -> Result<u64, String> {
    let deadline = Instant::now() + duration;
    let mut tasks = Vec::new();
    for _ in 0..CLOSED_CONNECTIONS {
        let bearer = bearer.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = connect(addr).await?;
            let mut done = 0u64;
            while Instant::now() < deadline {
                one_request(&mut sender, &bearer).await?;
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
async fn open_loop(addr: SocketAddr, bearer: Arc<String>) -> Result<Histogram<u64>, String> {
    let (jobs, receiver) = mpsc::unbounded_channel::<Instant>();
    let receiver = Arc::new(Mutex::new(receiver));
    let histogram = Arc::new(std::sync::Mutex::new(
        Histogram::<u64>::new_with_bounds(1, 60_000_000, 3).map_err(|e| e.to_string())?,
    ));
    let mut workers = Vec::new();
    for _ in 0..OPEN_CONNECTIONS {
        let receiver = receiver.clone();
        let histogram = histogram.clone();
        let bearer = bearer.clone();
        let mut sender = connect(addr).await?;
        workers.push(tokio::spawn(async move {
            loop {
                let due = { receiver.lock().await.recv().await };
                let Some(due) = due else { return Ok::<(), String>(()) };
                one_request(&mut sender, &bearer).await?;
                let micros = u64::try_from(due.elapsed().as_micros()).unwrap_or(u64::MAX).max(1);
                if let Ok(mut h) = histogram.lock() {
                    let _ = h.record(micros);
                }
            }
        }));
    }
    let start = tokio::time::Instant::now();
    let total = OPEN_RATE * OPEN_LOOP.as_secs();
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

struct Result_ {
    id: String,
    what: String,
    /// CPU µs/request of each round, in round order.
    cpu_rounds: Vec<f64>,
    cpu_us: f64,
    throughput: f64,
    p50_ms: f64,
    p99_ms: f64,
    rss_mb: f64,
}

fn median(mut v: Vec<f64>) -> f64 {
    v.sort_by(|a, b| a.total_cmp(b));
    v.get(v.len() / 2).copied().unwrap_or(0.0)
}

/// One variant's Envoy, pinned to CPU 0, and what was measured of it.
struct Running {
    variant: Variant,
    envoy: Envoy,
    addr: SocketAddr,
    cpu_us: Vec<f64>,
    throughput: Vec<f64>,
}

impl Running {
    fn start(variant: Variant) -> Result<Running, String> {
        let envoy = Envoy::start(&envoy_config(&variant.filters))?;
        let pinned = Command::new("taskset")
            .args(["-a", "-c", "-p", "0", &envoy.pid().to_string()])
            .output();
        if !pinned.is_ok_and(|o| o.status.success()) {
            return Err("taskset could not pin Envoy to CPU 0".into());
        }
        let addr = SocketAddr::from(([127, 0, 0, 1], envoy.port("bench")));
        Ok(Running {
            variant,
            envoy,
            addr,
            cpu_us: Vec::new(),
            throughput: Vec::new(),
        })
    }

    async fn closed_run(&mut self, bearer: Arc<String>) -> Result<(), String> {
        let pid = self.envoy.pid();
        let before = cpu_seconds(pid);
        let start = Instant::now();
        let n = closed_loop(self.addr, bearer, CLOSED_LOOP).await?;
        let elapsed = start.elapsed().as_secs_f64();
        let used = cpu_seconds(pid) - before;
        self.cpu_us.push(used * 1e6 / n as f64);
        eprintln!(
            "  {}: {:.1} µs/request, {:.0} req/s",
            self.variant.id,
            used * 1e6 / n as f64,
            n as f64 / elapsed
        );
        self.throughput.push(n as f64 / elapsed);
        Ok(())
    }
}

/// All variants run side by side (idle ones cost nothing) and are measured
/// in interleaved rounds, so that drift of the machine hits them alike.
async fn measure_all(variants: Vec<Variant>, bearer: Arc<String>) -> Result<Vec<Result_>, String> {
    let mut running = variants
        .into_iter()
        .map(Running::start)
        .collect::<Result<Vec<_>, _>>()?;
    for r in &running {
        closed_loop(r.addr, bearer.clone(), WARMUP).await?;
    }
    for round in 0..CLOSED_LOOP_RUNS {
        eprintln!("closed-loop round {}/{CLOSED_LOOP_RUNS}", round + 1);
        for r in running.iter_mut() {
            r.closed_run(bearer.clone()).await?;
        }
    }
    let mut results = Vec::new();
    for r in &running {
        eprintln!("open loop: {}", r.variant.id);
        let h = open_loop(r.addr, bearer.clone()).await?;
        if r.variant.id == "A3" && r.envoy.stat("wasmcustom.jwt_scopes.scope_headers_emitted") == 0 {
            return Err("A3: the filter emitted no scope headers; the benchmark would not measure it".into());
        }
        results.push(Result_ {
            id: r.variant.id.clone(),
            what: r.variant.what.clone(),
            cpu_rounds: r.cpu_us.clone(),
            cpu_us: median(r.cpu_us.clone()),
            throughput: median(r.throughput.clone()),
            p50_ms: h.value_at_quantile(0.50) as f64 / 1000.0,
            p99_ms: h.value_at_quantile(0.99) as f64 / 1000.0,
            rss_mb: rss_mb(r.envoy.pid()),
        });
    }
    Ok(results)
}

/// CPU µs/request over A1, paired round by round (both measured in the same
/// round, so the machine's drift between rounds cancels): median, min, max.
fn over_a1(results: &[Result_], r: &Result_) -> Option<(f64, f64, f64)> {
    let a1 = results.iter().find(|x| x.id == "A1")?;
    let deltas: Vec<f64> = r.cpu_rounds.iter().zip(&a1.cpu_rounds).map(|(x, a)| x - a).collect();
    let lo = deltas.iter().copied().fold(f64::INFINITY, f64::min);
    let hi = deltas.iter().copied().fold(f64::NEG_INFINITY, f64::max);
    Some((median(deltas), lo, hi))
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

fn report(results: &[Result_]) -> (String, bool) {
    let get = |id: &str| results.iter().find(|r| r.id == id);
    let mut out = String::new();
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
    let _ = writeln!(out, "Machine: {} ({cpus} CPUs); Envoy {version}", cpu_model());
    let _ = writeln!(
        out,
        "Envoy --concurrency 1 pinned to CPU 0, load generator on CPU 1; token: RS256, {} scopes (`scp` array).",
        SCOPES.len()
    );
    let _ = writeln!(out, "CPU/request: median of {CLOSED_LOOP_RUNS} interleaved closed-loop runs of {}s with {CLOSED_CONNECTIONS} connections; latency: open loop at {OPEN_RATE} req/s for {}s over {OPEN_CONNECTIONS} connections.\n", CLOSED_LOOP.as_secs(), OPEN_LOOP.as_secs());
    let _ = writeln!(out, "| variant | what | Envoy CPU µs/request | over A1 (median [min, max] of rounds) | max req/s | p50 ms | p99 ms | RSS MB |");
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|---:|---:|");
    for r in results {
        let over = match over_a1(results, r) {
            Some((m, lo, hi)) if r.id != "A0" && r.id != "A1" => format!("{m:+.1} [{lo:+.0}, {hi:+.0}]"),
            _ => String::new(),
        };
        let _ = writeln!(
            out,
            "| {} | {} | {:.1} | {} | {:.0} | {:.2} | {:.2} | {:.1} |",
            r.id, r.what, r.cpu_us, over, r.throughput, r.p50_ms, r.p99_ms, r.rss_mb
        );
    }
    let mut ok = true;
    if let (Some(a1), Some(a2), Some(a3)) = (get("A1"), get("A2"), get("A3")) {
        let filter = over_a1(results, a3).map_or(f64::NAN, |d| d.0);
        let lua = over_a1(results, a2).map_or(f64::NAN, |d| d.0);
        let memory = a3.rss_mb - a1.rss_mb;
        let checks = [
            (
                format!("jwt_scopes adds {filter:.1} µs CPU/request over jwt_authn alone (target ≤ 3 µs)"),
                filter <= 3.0,
            ),
            (
                format!(
                    "that is {:.0}% of what the Lua adds ({lua:.1} µs) (target ≤ 50%)",
                    if lua > 0.0 { 100.0 * filter / lua } else { f64::NAN }
                ),
                filter <= lua / 2.0,
            ),
            (
                format!("jwt_scopes costs {memory:.1} MB of extra resident memory (target ≤ 15 MB)"),
                memory <= 15.0,
            ),
        ];
        let _ = writeln!(out);
        for (text, pass) in checks {
            ok &= pass;
            let _ = writeln!(out, "- {} {text}", if pass { "met:" } else { "NOT MET:" });
        }
    }
    (out, ok)
}

fn main() -> ExitCode {
    let runtime = match tokio::runtime::Builder::new_current_thread().enable_all().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("bench: {e}");
            return ExitCode::FAILURE;
        }
    };
    match runtime.block_on(run()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("bench failed: {e}");
            ExitCode::FAILURE
        }
    }
}

async fn run() -> Result<(), String> {
    let issuer = Issuer::new();
    let wasm = filter_wasm()?.display().to_string();
    let token = issuer.token(Alg::RS256, json!({"sub": "bench-user@example.com", "scp": SCOPES}));
    let bearer = Arc::new(format!("Bearer {token}"));
    let results = measure_all(variants(&issuer.jwks(), &wasm), bearer).await?;
    let (text, targets_met) = report(&results);
    println!("{text}");
    let path = e2e::envoy::workspace_root().join("bench/REPORT.md");
    let doc = format!("# Benchmark report\n\nProduced by `make bench` (bench/src/main.rs); numbers from one run on the machine named below.\n\n{text}");
    std::fs::write(&path, doc).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!(
        "written to {}{}",
        path.display(),
        if targets_met { "" } else { " (some targets not met)" }
    );
    Ok(())
}
