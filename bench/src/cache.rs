//! `make bench-cache` (`bench cache`): what jwt_authn's token cache
//! (`jwt_cache_config: {jwt_cache_size: N}`, envoy-gen's
//! `issuers[].token_cache_size`) saves and holds, to choose its default.
//!
//! For each cache size N (0: no `jwt_cache_config` at all) and each number
//! K of distinct valid tokens in rotation, one stock Envoy 1.40
//! (`--concurrency 1`, jwt_authn with one RS256 provider + a
//! `direct_response` route: the main bench's A1 arm, built by the same
//! helpers) is driven closed-loop with its K tokens in round-robin order
//! over keep-alive connections. Every Envoy runs side by side and is
//! measured in interleaved rounds, like `make bench`. Reported per (N, K):
//! Envoy CPU µs/request (utime+stime from /proc) and requests/s per core
//! (1 / CPU per request), the hit rate from jwt_authn's own counters
//! (`http.bench.jwt_authn.jwt_cache_hit` and `..._miss`: one of them counts
//! every authenticated request, with or without a cache), and Envoy's
//! resident memory after the run and its growth over the same Envoy idle
//! (before its first request), with the live heap's growth beside it. Two
//! more Envoys get a token over the 4 KiB Envoy caches at most, at N = 1000
//! and (to compare) without a cache, K = 1. The report (CACHE.md) ends with the default these rows select:
//! the smallest N whose hit rate at K = 1000 is at least 99 % and whose
//! cache, full, holds at most `MEMORY_BUDGET_MB` per worker.
//!
//! Envoy's cache (source/extensions/filters/http/jwt_authn/jwt_cache.cc) is
//! an LRU keyed by the whole token, one per provider and worker thread; it
//! keeps the parsed token (not only a verdict), checks `exp` on lookup,
//! and never inserts a token over 4096 bytes. `jwt_cache_size: 0` is not
//! "off": Envoy then uses its default, 100 entries; only leaving
//! `jwt_cache_config` out turns the cache off.
//!
//! Environment: BENCH_ROUNDS (3), BENCH_SECONDS (closed-loop seconds per
//! round, 4), BENCH_WARMUP_SECONDS (after one pass over the K tokens, 2; 0
//! allowed), BENCH_OUT (the directory CACHE.md goes to, default bench/),
//! BENCH_CACHE_GRID: `full` (default: sizes 0, 100, 1000, 10000 × K 1,
//! 100, 1000, 10000), `quick` (sizes 0, 100, 1000 × K 1, 1000) or
//! `SIZES/TOKENS` (e.g. `0,100/1,10000`); the large-token points are always
//! measured.

use crate::{
    closed_loop_rotating, cpu_seconds, env_count, env_seconds, heap_allocated_mb, jwt_authn, machine, median, out_dir,
    rss_mb, start_pinned, ClaimHeaders, Spread, CLOSED_CONNECTIONS, SCOPES,
};
use e2e::envoy::Envoy;
use e2e::jwt::{Alg, Issuer, AUDIENCE, ISSUER};
use serde_json::{json, Map, Value};
use std::fmt::Write as _;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

const FULL_SIZES: [u32; 4] = [0, 100, 1000, 10_000];
const FULL_TOKENS: [usize; 4] = [1, 100, 1000, 10_000];
const QUICK_SIZES: [u32; 3] = [0, 100, 1000];
const QUICK_TOKENS: [usize; 2] = [1, 1000];

/// The length of every token in rotation, bytes (the JWT, without
/// `Bearer `): a realistic access token with 6 scopes and a few groups.
pub(crate) const TOKEN_BYTES: usize = 1000;
/// The length of the token over Envoy's cacheable limit.
const LARGE_TOKEN_BYTES: usize = 5000;
/// Envoy's limit: longer tokens are never inserted (jwt_cache.cc).
const CACHEABLE_BYTES: usize = 4096;
/// The large-token points: K, and the cache sizes (the one it is asked
/// about, and none, to compare with).
const LARGE_TOKENS: usize = 1;
const LARGE_SIZES: [u32; 2] = [0, 1000];

/// The default's criteria: hit rate at this K ...
const DEFAULT_AT_TOKENS: usize = 1000;
/// ... at least this ...
const DEFAULT_MIN_HIT_RATE: f64 = 0.99;
/// ... and a full cache holding at most this much per worker (one
/// provider), MB: a few percent of what a frontend task has (Fargate's
/// smallest with 1 GiB), and paid only while that many tokens are in use
/// (entries are made as tokens arrive). A cached ~1 KB token holds about
/// 12 KB (the token and its parsed header, payload and signature).
const MEMORY_BUDGET_MB: f64 = 16.0;

/// jwt_authn's counters (Envoy 1.40; `http.<stat_prefix>.jwt_authn.`): a
/// request whose token was found in the cache counts a hit, any other
/// authenticated request a miss (also when there is no cache).
const HIT_COUNTER: &str = "http.bench.jwt_authn.jwt_cache_hit";
const MISS_COUNTER: &str = "http.bench.jwt_authn.jwt_cache_miss";

struct Settings {
    rounds: usize,
    closed: Duration,
    warmup: Duration,
    sizes: Vec<u32>,
    tokens: Vec<usize>,
    /// How the grid was chosen, for the report.
    grid: String,
}

impl Settings {
    fn from_env() -> Result<Settings, String> {
        let grid = std::env::var("BENCH_CACHE_GRID").unwrap_or_else(|_| "full".into());
        let (sizes, tokens) = parse_grid(&grid)?;
        Ok(Settings {
            rounds: env_count("BENCH_ROUNDS", 3)?,
            closed: env_seconds("BENCH_SECONDS", 4.0, false)?,
            warmup: env_seconds("BENCH_WARMUP_SECONDS", 2.0, true)?,
            sizes,
            tokens,
            grid,
        })
    }
}

/// `full`, `quick` or `SIZES/TOKENS` (comma-separated): the cache sizes and
/// the token counts, each sorted and without duplicates.
fn parse_grid(grid: &str) -> Result<(Vec<u32>, Vec<usize>), String> {
    let (mut sizes, mut tokens): (Vec<u32>, Vec<usize>) = match grid.trim() {
        "full" | "" => (FULL_SIZES.to_vec(), FULL_TOKENS.to_vec()),
        "quick" => (QUICK_SIZES.to_vec(), QUICK_TOKENS.to_vec()),
        custom => {
            let bad = || format!("BENCH_CACHE_GRID={grid}: expected full, quick or SIZES/TOKENS (e.g. 0,100/1,10000)");
            let (s, k) = custom.split_once('/').ok_or_else(bad)?;
            let sizes = s
                .split(',')
                .map(|v| v.trim().parse::<u32>().map_err(|_| bad()))
                .collect::<Result<Vec<_>, _>>()?;
            let tokens = k
                .split(',')
                .map(|v| v.trim().parse::<usize>().ok().filter(|n| *n > 0).ok_or_else(bad))
                .collect::<Result<Vec<_>, _>>()?;
            (sizes, tokens)
        }
    };
    sizes.sort_unstable();
    sizes.dedup();
    tokens.sort_unstable();
    tokens.dedup();
    Ok((sizes, tokens))
}

/// The claims of token `i` (`groups` groups): what an IdP's access token
/// carries, distinct per token (`sub`, `uid`, `jti`), of the same length
/// for every `i`.
fn claims(i: usize, groups: usize) -> Map<String, Value> {
    let claims = json!({
        "ver": 1,
        "jti": format!("AT.bench-{i:08}-cache-sweep-token"),
        "iss": ISSUER,
        "aud": AUDIENCE,
        "cid": "0oa1bench2cache3sweep",
        "uid": format!("00u{i:017}"),
        "sub": format!("user{i:08}@example.com"),
        "scp": SCOPES,
        "groups": (0..groups).map(|g| format!("app-group-{g:03}")).collect::<Vec<_>>(),
    });
    claims.as_object().cloned().unwrap_or_default()
}

/// Valid for the whole run (hours; a full run takes minutes).
const VALIDITY: Duration = Duration::from_secs(6 * 3600);

fn sign(issuer: &Issuer, i: usize, groups: usize) -> Result<String, String> {
    issuer.sign(Alg::RS256, claims(i, groups), VALIDITY)
}

/// The number of groups that makes a token at least `bytes` long (every
/// token of the set has the same length: fixed-width numbers).
fn groups_for(issuer: &Issuer, bytes: usize) -> Result<usize, String> {
    let bare = sign(issuer, 0, 0)?.len();
    let one = sign(issuer, 0, 1)?.len();
    // Each further group adds `,"app-group-NNN"` (16 bytes of JSON, 4/3 of
    // that in base64url); start from the estimate and step up.
    let mut groups = if bytes > one {
        1 + (bytes - one) * 3 / (16 * 4)
    } else if bytes > bare {
        1
    } else {
        0
    };
    while sign(issuer, 0, groups)?.len() < bytes {
        groups += 1;
    }
    Ok(groups)
}

/// `count` distinct tokens of about `bytes` bytes each, as bearer values.
pub(crate) fn mint(issuer: &Issuer, count: usize, bytes: usize) -> Result<Vec<String>, String> {
    let groups = groups_for(issuer, bytes)?;
    let started = Instant::now();
    let tokens = (0..count)
        .map(|i| sign(issuer, i, groups).map(|t| format!("Bearer {t}")))
        .collect::<Result<Vec<_>, _>>()?;
    eprintln!(
        "minted {count} RS256 tokens of {} bytes ({groups} groups) in {:.1}s",
        tokens.first().map_or(0, |t| t.len() - "Bearer ".len()),
        started.elapsed().as_secs_f64()
    );
    Ok(tokens)
}

/// Envoy's resident memory and live heap.
#[derive(Clone, Copy)]
struct Memory {
    rss_mb: f64,
    heap_mb: Option<f64>,
}

impl Memory {
    fn of(envoy: &Envoy) -> Memory {
        Memory {
            rss_mb: rss_mb(envoy.pid()),
            heap_mb: heap_allocated_mb(envoy),
        }
    }
}

/// The two cache counters (hits, misses); an error when Envoy has neither
/// (their names changed: the report would otherwise show 0 % hits).
fn cache_counters(envoy: &Envoy) -> Result<(u64, u64), String> {
    let response = envoy.admin_get("/stats?filter=jwt_authn\\.jwt_cache_")?;
    let text = String::from_utf8_lossy(&response.body);
    let value = |name: &str| {
        text.lines().find_map(|line| {
            line.strip_prefix(name)
                .and_then(|rest| rest.strip_prefix(": "))
                .and_then(|v| v.trim().parse::<u64>().ok())
        })
    };
    match (value(HIT_COUNTER), value(MISS_COUNTER)) {
        (Some(hits), Some(misses)) => Ok((hits, misses)),
        _ => Err(format!(
            "Envoy's admin /stats has no {HIT_COUNTER} and {MISS_COUNTER}; it shows:\n{text}"
        )),
    }
}

/// One (cache size, K) Envoy and what was measured of it.
struct Point {
    size: u32,
    tokens: usize,
    token_bytes: usize,
    bearers: Arc<[String]>,
    envoy: Envoy,
    addr: SocketAddr,
    idle: Memory,
    cpu_us: Vec<f64>,
    throughput: Vec<f64>,
    hit_rate: Vec<f64>,
    lookups: Vec<f64>,
}

impl Point {
    fn start(jwks: &str, size: u32, bearers: &[String]) -> Result<Point, String> {
        let mut filter = jwt_authn(jwks, ClaimHeaders::None);
        if size > 0 {
            filter["typed_config"]["providers"]["bench"]["jwt_cache_config"] = json!({"jwt_cache_size": size});
        }
        let (envoy, addr) = start_pinned(&[filter], &[])?;
        let idle = Memory::of(&envoy);
        Ok(Point {
            size,
            tokens: bearers.len(),
            token_bytes: bearers.first().map_or(0, |b| b.len() - "Bearer ".len()),
            bearers: Arc::from(bearers),
            envoy,
            addr,
            idle,
            cpu_us: Vec::new(),
            throughput: Vec::new(),
            hit_rate: Vec::new(),
            lookups: Vec::new(),
        })
    }

    fn label(&self) -> String {
        format!(
            "size {}, K={}{}",
            self.size,
            self.tokens,
            if self.token_bytes > CACHEABLE_BYTES {
                format!(" ({} B tokens)", self.token_bytes)
            } else {
                String::new()
            }
        )
    }

    /// One pass over the tokens (so that a cache that can hold them all
    /// does), then `warmup` of closed loop.
    async fn warm_up(&self, warmup: Duration) -> Result<(), String> {
        one_pass(self.addr, self.bearers.clone()).await?;
        if !warmup.is_zero() {
            closed_loop_rotating(self.addr, self.bearers.clone(), warmup).await?;
        }
        Ok(())
    }

    async fn closed_run(&mut self, duration: Duration) -> Result<(), String> {
        let pid = self.envoy.pid();
        // Admin requests run on Envoy's main thread: read the counters
        // outside the CPU-time window.
        let (hits_before, misses_before) = cache_counters(&self.envoy)?;
        let cpu_before = cpu_seconds(pid);
        let start = Instant::now();
        let n = closed_loop_rotating(self.addr, self.bearers.clone(), duration).await?;
        let elapsed = start.elapsed().as_secs_f64();
        let used = cpu_seconds(pid) - cpu_before;
        let (hits, misses) = cache_counters(&self.envoy)?;
        let (hits, misses) = (hits - hits_before, misses - misses_before);
        let per_request = used * 1e6 / n.max(1) as f64;
        let lookups = hits + misses;
        let hit_rate = if lookups > 0 { hits as f64 / lookups as f64 } else { 0.0 };
        eprintln!(
            "  {}: {per_request:.1} µs/request, {:.0} req/s, {:.1} % hits",
            self.label(),
            n as f64 / elapsed,
            100.0 * hit_rate
        );
        self.cpu_us.push(per_request);
        self.throughput.push(n as f64 / elapsed);
        self.hit_rate.push(hit_rate);
        self.lookups.push(lookups as f64 / n.max(1) as f64);
        Ok(())
    }

    fn row(&self) -> Result<Row, String> {
        let after = Memory::of(&self.envoy);
        let spread = |v: &[f64]| Spread::of(v).ok_or_else(|| format!("{}: no round measured", self.label()));
        Ok(Row {
            size: self.size,
            tokens: self.tokens,
            token_bytes: self.token_bytes,
            cpu: spread(&self.cpu_us)?,
            cpu_rounds: self.cpu_us.clone(),
            throughput: median(self.throughput.clone()),
            hit_rate: spread(&self.hit_rate)?,
            lookups: median(self.lookups.clone()),
            rss_mb: after.rss_mb,
            rss_growth_mb: after.rss_mb - self.idle.rss_mb,
            heap_growth_mb: after.heap_mb.zip(self.idle.heap_mb).map(|(a, b)| a - b),
        })
    }
}

/// Every token once, over the closed loop's connections.
async fn one_pass(addr: SocketAddr, bearers: Arc<[String]>) -> Result<(), String> {
    let next = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let mut tasks = Vec::new();
    for _ in 0..CLOSED_CONNECTIONS.min(bearers.len()) {
        let bearers = bearers.clone();
        let next = next.clone();
        tasks.push(tokio::spawn(async move {
            let mut sender = crate::connect(addr).await?;
            while let Some(bearer) = bearers.get(next.fetch_add(1, std::sync::atomic::Ordering::Relaxed)) {
                crate::one_request(&mut sender, bearer).await?;
            }
            Ok::<(), String>(())
        }));
    }
    for task in tasks {
        task.await.map_err(|e| e.to_string())??;
    }
    Ok(())
}

/// What was measured of one (cache size, K) Envoy.
#[derive(Clone)]
struct Row {
    size: u32,
    tokens: usize,
    token_bytes: usize,
    /// CPU µs/request over the rounds.
    cpu: Spread,
    /// CPU µs/request of each round, in round order.
    cpu_rounds: Vec<f64>,
    /// Closed-loop requests/s (wall clock), median of the rounds.
    throughput: f64,
    /// Hits / (hits + misses) over the rounds, 0..1.
    hit_rate: Spread,
    /// (hits + misses) / requests, median: 1 when each request looks up
    /// its token once.
    lookups: f64,
    rss_mb: f64,
    rss_growth_mb: f64,
    heap_growth_mb: Option<f64>,
}

impl Row {
    fn large(&self) -> bool {
        self.token_bytes > CACHEABLE_BYTES
    }

    /// Requests per second one core serves: 1 / CPU per request.
    fn per_core(&self) -> f64 {
        1e6 / self.cpu.median
    }

    /// Tokens the cache holds at the end of the run: the K tokens, as many
    /// as fit, none over the cacheable limit.
    fn entries(&self) -> usize {
        if self.large() {
            0
        } else {
            self.tokens.min(self.size as usize)
        }
    }
}

/// The row of (size, K) with the ~1 KB tokens.
fn find(rows: &[Row], size: u32, tokens: usize) -> Option<&Row> {
    rows.iter().find(|r| r.size == size && r.tokens == tokens && !r.large())
}

/// CPU µs/request of `row` minus the Envoy without a cache with the same
/// tokens, paired round by round.
fn over_no_cache(rows: &[Row], row: &Row) -> Option<Spread> {
    let none = rows
        .iter()
        .find(|r| r.size == 0 && r.tokens == row.tokens && r.large() == row.large())?;
    let deltas: Vec<f64> = row
        .cpu_rounds
        .iter()
        .zip(&none.cpu_rounds)
        .map(|(a, b)| a - b)
        .collect();
    Spread::of(&deltas)
}

/// What a cache of `size` holds, MB: the growth of its Envoy over idle
/// minus the growth of the Envoy without a cache at the same K (the
/// connections' buffers and everything else but the cache), for RSS and
/// for the live heap; from the row holding the most tokens.
struct CacheMemory {
    size: u32,
    /// The row the estimate comes from: its K and the tokens it holds.
    tokens: usize,
    entries: usize,
    rss_mb: f64,
    heap_mb: Option<f64>,
}

impl CacheMemory {
    /// The larger of the two readings, MB (what the decision uses).
    fn held_mb(&self) -> f64 {
        self.heap_mb.map_or(self.rss_mb, |h| h.max(self.rss_mb))
    }

    /// Per cached token, KB.
    fn per_entry_kb(&self) -> Option<f64> {
        (self.entries > 0).then(|| self.held_mb() * 1000.0 / self.entries as f64)
    }

    /// A full cache, MB: measured when some K filled it, else extrapolated
    /// from the tokens it held.
    fn full_mb(&self) -> Option<f64> {
        if self.entries >= self.size as usize {
            Some(self.held_mb())
        } else {
            self.per_entry_kb().map(|kb| kb * f64::from(self.size) / 1000.0)
        }
    }
}

fn cache_memory(rows: &[Row], size: u32) -> Option<CacheMemory> {
    let row = rows
        .iter()
        .filter(|r| r.size == size && !r.large())
        .max_by_key(|r| (r.entries(), r.tokens))?;
    let base = find(rows, 0, row.tokens)?;
    Some(CacheMemory {
        size,
        tokens: row.tokens,
        entries: row.entries(),
        rss_mb: row.rss_growth_mb - base.rss_growth_mb,
        heap_mb: row.heap_growth_mb.zip(base.heap_growth_mb).map(|(a, b)| a - b),
    })
}

fn mb(v: Option<f64>) -> String {
    v.map_or_else(|| "n/a".into(), |v| format!("{v:+.1}"))
}

fn percent(s: &Spread) -> String {
    format!("{:.1} [{:.1}, {:.1}]", 100.0 * s.median, 100.0 * s.min, 100.0 * s.max)
}

/// The closing paragraph: the smallest size that meets both criteria,
/// with the numbers that decide it, from the rows alone.
fn default_paragraph(rows: &[Row]) -> String {
    let k = DEFAULT_AT_TOKENS;
    let mut sizes: Vec<u32> = rows
        .iter()
        .filter(|r| r.size > 0 && !r.large())
        .map(|r| r.size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    let mut text = format!(
        "The criteria: the smallest cache size whose hit rate with K = {k} tokens in rotation is at least {:.0} % \
         (median of the rounds) and whose cache, full, holds at most {MEMORY_BUDGET_MB:.0} MB per worker (each \
         worker, and each issuer, has its own cache).",
        100.0 * DEFAULT_MIN_HIT_RATE
    );
    let Some(no_cache) = find(rows, 0, k) else {
        return format!(
            "{text} This run has no Envoy without a cache at K = {k} (BENCH_CACHE_GRID), so it selects no default."
        );
    };
    let mut refused = Vec::new();
    let mut chosen = None;
    for &size in &sizes {
        let Some(row) = find(rows, size, k) else {
            refused.push(format!("{size} was not measured at K = {k}"));
            continue;
        };
        let memory = cache_memory(rows, size);
        let full = memory.as_ref().and_then(CacheMemory::full_mb);
        if row.hit_rate.median < DEFAULT_MIN_HIT_RATE {
            refused.push(format!("{size} hits {:.1} % at K = {k}", 100.0 * row.hit_rate.median));
        } else if full.is_none_or(|m| m > MEMORY_BUDGET_MB) {
            refused.push(format!(
                "{size} hits {:.1} % but its cache, full, holds {} MB",
                100.0 * row.hit_rate.median,
                full.map_or_else(|| "an unknown number of".into(), |m| format!("{m:.1}"))
            ));
        } else {
            chosen = Some((size, row, memory));
            break;
        }
    }
    if !refused.is_empty() {
        let _ = write!(text, " Refused: {}.", refused.join("; "));
    }
    let Some((size, row, Some(memory))) = chosen else {
        let _ = write!(text, " No measured size meets both, so this run selects no default.");
        trade_off(rows, &sizes, &mut text);
        return text;
    };
    let _ = write!(
        text,
        " **Default: {size}.** At K = {k} it hits {:.1} % (rounds {:.1}–{:.1} %) and costs {:.1} µs CPU/request \
         against {:.1} µs without a cache ({:.0} against {:.0} requests/s per core).",
        100.0 * row.hit_rate.median,
        100.0 * row.hit_rate.min,
        100.0 * row.hit_rate.max,
        row.cpu.median,
        no_cache.cpu.median,
        row.per_core(),
        no_cache.per_core()
    );
    let held = if memory.entries >= size as usize {
        format!(
            "measured with K = {} filling it: {:+.1} MB of RSS and {} MB of live heap over the Envoy without a \
             cache at the same K",
            memory.tokens,
            memory.rss_mb,
            mb(memory.heap_mb)
        )
    } else {
        format!(
            "extrapolated from {} tokens held at K = {} ({:+.1} MB of RSS, {} MB of live heap over the Envoy \
             without a cache)",
            memory.entries,
            memory.tokens,
            memory.rss_mb,
            mb(memory.heap_mb)
        )
    };
    let _ = write!(
        text,
        " Full, it holds {:.1} MB per worker ({held}), about {:.1} KB per token of {} bytes.",
        memory.full_mb().unwrap_or(f64::NAN),
        memory.per_entry_kb().unwrap_or(f64::NAN),
        row.token_bytes
    );
    if let Some(next) = sizes.iter().copied().find(|s| *s > size) {
        if let Some(m) = cache_memory(rows, next).and_then(|m| m.full_mb()) {
            let _ = write!(
                text,
                " The next size measured, {next}, would hold {m:.1} MB per worker for the hit rate beyond {k} \
                 tokens in rotation{}.",
                find(rows, next, k).map_or(String::new(), |r| format!(
                    " (at K = {k}: {:.1} %)",
                    100.0 * r.hit_rate.median
                ))
            );
        }
    }
    text
}

/// When no size meets both criteria: what each one alone asks for.
fn trade_off(rows: &[Row], sizes: &[u32], text: &mut String) {
    let k = DEFAULT_AT_TOKENS;
    let full = |size: u32| cache_memory(rows, size).and_then(|m| m.full_mb());
    let within = sizes
        .iter()
        .copied()
        .filter(|s| full(*s).is_some_and(|m| m <= MEMORY_BUDGET_MB))
        .max();
    let hitting = sizes
        .iter()
        .copied()
        .find(|s| find(rows, *s, k).is_some_and(|r| r.hit_rate.median >= DEFAULT_MIN_HIT_RATE));
    if let Some(size) = within {
        let _ = write!(
            text,
            " Within {MEMORY_BUDGET_MB:.0} MB, the largest size measured is {size} ({:.1} MB full{}).",
            full(size).unwrap_or(f64::NAN),
            find(rows, size, k).map_or(String::new(), |r| format!(
                ", {:.1} % hits at K = {k}",
                100.0 * r.hit_rate.median
            ))
        );
    }
    if let Some(size) = hitting {
        let _ = write!(
            text,
            " The smallest size with {:.0} % hits at K = {k} is {size}, holding {} MB per worker when full.",
            100.0 * DEFAULT_MIN_HIT_RATE,
            full(size).map_or_else(|| "an unknown number of".into(), |m| format!("{m:.1}"))
        );
    }
    let per_token = sizes
        .iter()
        .filter_map(|s| cache_memory(rows, *s))
        .max_by_key(|m| m.entries)
        .and_then(|m| m.per_entry_kb());
    if let Some(kb) = per_token {
        let _ = write!(
            text,
            " At {kb:.1} KB per cached token, {MEMORY_BUDGET_MB:.0} MB holds about {:.0} tokens: choosing means \
             raising the memory budget or accepting misses once more than that many tokens are active per worker.",
            MEMORY_BUDGET_MB * 1000.0 / kb
        );
    }
}

fn report(rows: &[Row], settings: &Settings, notes: &[String]) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# jwt_authn token cache\n\nProduced by `make bench-cache` (bench/src/cache.rs); numbers from one run on the \
         machine named below.\n"
    );
    let _ = writeln!(out, "{}", machine());
    let bytes = rows.iter().find(|r| !r.large()).map_or(0, |r| r.token_bytes);
    let large_bytes = rows.iter().find(|r| r.large()).map_or(0, |r| r.token_bytes);
    let _ = writeln!(
        out,
        "Envoy --concurrency 1 pinned to CPU 0, load generator on CPU 1. Each (cache size, K) pair has its own \
         Envoy: jwt_authn with one provider (RS256, local JWKS) and a `direct_response` route (`make bench`'s A1), \
         with `jwt_cache_config: {{jwt_cache_size: N}}`, or without `jwt_cache_config` for size 0 (Envoy reads \
         `jwt_cache_size: 0` as its default, 100: only leaving the field out turns the cache off). It is driven \
         closed-loop over {CLOSED_CONNECTIONS} keep-alive HTTP/1.1 connections with K distinct valid tokens (same \
         issuer and key, {} scopes, distinct `sub` and `jti`, {bytes} bytes each) in round-robin order. Each Envoy \
         first gets one pass over its K tokens and {}s of warm-up; then {} interleaved rounds of {}s (grid: \
         `{}`).\n",
        SCOPES.len(),
        settings.warmup.as_secs_f64(),
        settings.rounds,
        settings.closed.as_secs_f64(),
        settings.grid
    );
    let _ = writeln!(
        out,
        "Hit rate: jwt_authn's own counters `{HIT_COUNTER}` and `{MISS_COUNTER}` (admin `/stats`), their increase \
         over each timed round, hits ÷ (hits + misses). Each authenticated request counts one of them, also \
         without a cache (then every request is a miss); the lookups/request column checks that. Requests/s per \
         core is 1 ÷ CPU time per request. RSS after: after the last round; growth: over the same Envoy idle, \
         before its first request. Live heap: tcmalloc's `allocated` (admin `/memory`), which, unlike RSS, does \
         not count memory the allocator keeps after a free.\n"
    );
    let _ = writeln!(
        out,
        "| cache size | K tokens | CPU µs/request, median [min, max] | over no cache, same tokens, µs (paired) | req/s per core | closed-loop req/s | hit rate %, median [min, max] | lookups/request | RSS after, MB | RSS growth, MB | live heap growth, MB |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|");
    for r in rows {
        let over = over_no_cache(rows, r)
            .filter(|_| r.size > 0)
            .map_or_else(String::new, |d| {
                format!("{:+.1} [{:+.1}, {:+.1}]", d.median, d.min, d.max)
            });
        let _ = writeln!(
            out,
            "| {}{} | {} | {:.1} [{:.1}, {:.1}] | {over} | {:.0} | {:.0} | {} | {:.2} | {:.1} | {:+.1} | {} |",
            r.size,
            if r.size == 0 { " (none)" } else { "" },
            if r.large() {
                format!("{} ({} B tokens)", r.tokens, r.token_bytes)
            } else {
                r.tokens.to_string()
            },
            r.cpu.median,
            r.cpu.min,
            r.cpu.max,
            r.per_core(),
            r.throughput,
            percent(&r.hit_rate),
            r.lookups,
            r.rss_mb,
            r.rss_growth_mb,
            mb(r.heap_growth_mb)
        );
    }
    for note in notes {
        let _ = writeln!(out, "\nNote: {note}");
    }

    // What caching saves where it hits.
    let _ = writeln!(out, "\n## What a hit saves\n");
    let one = rows.iter().map(|r| r.tokens).min().unwrap_or(1);
    match (
        find(rows, 0, one),
        rows.iter()
            .filter(|r| r.size > 0 && r.tokens == one && !r.large())
            .min_by_key(|r| r.size),
    ) {
        (Some(none), Some(cached)) => {
            let _ = writeln!(
                out,
                "At K = {one}, size {} against no cache: {:.1} against {:.1} µs CPU/request, {:.2}× the requests \
                 per core. The difference, {:.1} µs, is the work a hit skips: decoding and parsing the token and \
                 checking its RS256 signature (the token is still extracted and looked up, and its claims still go \
                 to the request's metadata).",
                cached.size,
                cached.cpu.median,
                none.cpu.median,
                none.cpu.median / cached.cpu.median,
                none.cpu.median - cached.cpu.median
            );
        }
        _ => {
            let _ = writeln!(out, "The grid has no pair of sizes at the smallest K to compare.");
        }
    }
    let _ = write!(
        out,
        "\nThe cache is an LRU: with K tokens in strict rotation and K above the size, each token is evicted \
         before it comes back, so the hit rate falls to about 0, not to size ÷ K. Real traffic repeats tokens \
         less regularly (a client sends its token until it expires), so this rotation is the worst case for a \
         given number of active tokens."
    );
    let thrashing: Vec<String> = rows
        .iter()
        .filter(|r| r.size > 0 && !r.large() && r.hit_rate.median < 0.01)
        .filter_map(|r| {
            over_no_cache(rows, r).map(|d| {
                format!(
                    "size {} at K = {}: {:+.1} [{:+.1}, {:+.1}] µs",
                    r.size, r.tokens, d.median, d.min, d.max
                )
            })
        })
        .collect();
    if thrashing.is_empty() {
        let _ = writeln!(out);
    } else {
        let _ = writeln!(
            out,
            " A cache that always misses still parses, inserts and evicts every token; over no cache with the same \
             tokens (paired per round) it costs {}.",
            thrashing.join("; ")
        );
    }

    // Memory.
    let _ = writeln!(out, "\n## What the cache holds\n");
    let _ = writeln!(
        out,
        "Per size: the growth over idle of the Envoy holding the most tokens, minus the growth of the Envoy \
         without a cache at the same K. RSS is one reading per Envoy and moves by about 1 MB with the allocator; \
         the live heap is exact to the byte but misses the allocator's own overhead. A full cache is measured \
         when some K filled it, otherwise extrapolated per token. An entry is the token itself (the key) and \
         its parsed form (header and payload decoded and as protobuf Structs, the base64url parts, the \
         signature), so it weighs many times the token's length.\n"
    );
    let _ = writeln!(
        out,
        "| cache size | from K | tokens held | RSS, MB | live heap, MB | KB per token | full cache, MB per worker |"
    );
    let _ = writeln!(out, "|---:|---:|---:|---:|---:|---:|---:|");
    let mut sizes: Vec<u32> = rows
        .iter()
        .filter(|r| r.size > 0 && !r.large())
        .map(|r| r.size)
        .collect();
    sizes.sort_unstable();
    sizes.dedup();
    for size in sizes {
        match cache_memory(rows, size) {
            Some(m) => {
                let _ = writeln!(
                    out,
                    "| {size} | {} | {} | {:+.1} | {} | {} | {}{} |",
                    m.tokens,
                    m.entries,
                    m.rss_mb,
                    mb(m.heap_mb),
                    m.per_entry_kb().map_or_else(|| "n/a".into(), |kb| format!("{kb:.1}")),
                    m.full_mb().map_or_else(|| "n/a".into(), |v| format!("{v:.1}")),
                    if m.entries < size as usize && m.entries > 0 {
                        " (extrapolated)"
                    } else {
                        ""
                    }
                );
            }
            None => {
                let _ = writeln!(
                    out,
                    "| {size} | n/a | n/a | n/a | n/a | n/a | n/a (no Envoy without a cache at the same K) |"
                );
            }
        }
    }

    // The large token.
    let _ = writeln!(out, "\n## Tokens over {CACHEABLE_BYTES} bytes\n");
    let large_rows: Vec<&Row> = rows.iter().filter(|r| r.large()).collect();
    match large_rows.iter().find(|r| r.size > 0) {
        Some(large) => {
            let verdict = if large.hit_rate.max == 0.0 {
                "never cached: every lookup missed in every round".to_string()
            } else {
                format!(
                    "cached after all: up to {:.1} % of lookups hit (Envoy's limit is not what jwt_cache.cc says)",
                    100.0 * large.hit_rate.max
                )
            };
            let against = over_no_cache(rows, large).map_or_else(String::new, |d| {
                format!(
                    ", {:+.1} [{:+.1}, {:+.1}] µs over the same token without a cache (paired per round)",
                    d.median, d.min, d.max
                )
            });
            let small = find(rows, 0, large.tokens).map_or_else(String::new, |none| {
                format!(
                    " Without a cache it costs {:.1} µs more than the {bytes}-byte token ({:.1} µs): jwt_authn \
                     parses the larger payload (into a protobuf Struct) and copies it into the request's metadata on \
                     every request.",
                    rows.iter()
                        .find(|r| r.large() && r.size == 0)
                        .map_or(f64::NAN, |l| l.cpu.median - none.cpu.median),
                    none.cpu.median
                )
            });
            let _ = writeln!(
                out,
                "One token of {large_bytes} bytes (the same claims with more groups), K = {}, cache size {}: hit \
                 rate {} %, {verdict}; {:.1} µs CPU/request{against}.{small} Envoy inserts no token longer than \
                 {CACHEABLE_BYTES} bytes, so where tokens carry many groups every request pays the signature check \
                 whatever the cache size.",
                large.tokens,
                large.size,
                percent(&large.hit_rate),
                large.cpu.median
            );
        }
        None => {
            let _ = writeln!(out, "Not measured.");
        }
    }

    let _ = writeln!(out, "\n## Default\n");
    let _ = writeln!(out, "{}", default_paragraph(rows));
    out
}

pub(crate) async fn run() -> Result<(), String> {
    let settings = Settings::from_env()?;
    let out_dir = out_dir();
    let issuer = Issuer::new();
    let jwks = issuer.jwks();
    let most = settings.tokens.iter().copied().max().unwrap_or(1);
    let tokens = mint(&issuer, most, TOKEN_BYTES)?;
    let large = mint(&issuer, LARGE_TOKENS, LARGE_TOKEN_BYTES)?;
    let mut notes = Vec::new();
    if large
        .first()
        .is_some_and(|t| t.len() - "Bearer ".len() <= CACHEABLE_BYTES)
    {
        notes.push(format!(
            "the large token is not over {CACHEABLE_BYTES} bytes; its row shows nothing"
        ));
    }

    let mut points = Vec::new();
    for &size in &settings.sizes {
        for &k in &settings.tokens {
            let bearers = tokens.get(..k).ok_or("fewer tokens minted than asked")?;
            points.push(Point::start(&jwks, size, bearers).map_err(|e| format!("size {size}, K={k}: {e}"))?);
        }
    }
    for size in LARGE_SIZES {
        points.push(Point::start(&jwks, size, &large).map_err(|e| format!("size {size}, large token: {e}"))?);
    }
    eprintln!("{} Envoys started; warming up", points.len());
    for p in &points {
        p.warm_up(settings.warmup)
            .await
            .map_err(|e| format!("{}: {e}", p.label()))?;
    }
    for round in 0..settings.rounds {
        eprintln!("closed-loop round {}/{}", round + 1, settings.rounds);
        for p in points.iter_mut() {
            p.closed_run(settings.closed)
                .await
                .map_err(|e| format!("{}: {e}", p.label()))?;
        }
    }
    let rows = points.iter().map(Point::row).collect::<Result<Vec<_>, _>>()?;
    for row in rows.iter().filter(|r| (r.lookups - 1.0).abs() > 0.01) {
        notes.push(format!(
            "size {}, K={}: {:.2} cache lookups per request, not 1: the counters do not count one per request here",
            row.size, row.tokens, row.lookups
        ));
    }
    drop(points);

    let text = report(&rows, &settings, &notes);
    println!("{text}");
    std::fs::create_dir_all(&out_dir).map_err(|e| format!("{}: {e}", out_dir.display()))?;
    let path = out_dir.join("CACHE.md");
    std::fs::write(&path, text).map_err(|e| format!("{}: {e}", path.display()))?;
    eprintln!("written to {}", path.display());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn row(size: u32, tokens: usize, cpu: f64, hit: f64, rss_growth: f64, heap_growth: f64) -> Row {
        let s = |v| Spread {
            median: v,
            min: v,
            max: v,
        };
        Row {
            size,
            tokens,
            token_bytes: TOKEN_BYTES,
            cpu: s(cpu),
            cpu_rounds: vec![cpu],
            throughput: 0.0,
            hit_rate: s(hit),
            lookups: 1.0,
            rss_mb: 60.0 + rss_growth,
            rss_growth_mb: rss_growth,
            heap_growth_mb: Some(heap_growth),
        }
    }

    #[test]
    fn grids() {
        assert_eq!(parse_grid("full").unwrap(), (FULL_SIZES.to_vec(), FULL_TOKENS.to_vec()));
        assert_eq!(
            parse_grid("quick").unwrap(),
            (QUICK_SIZES.to_vec(), QUICK_TOKENS.to_vec())
        );
        assert_eq!(
            parse_grid("100,0,100/10000, 1").unwrap(),
            (vec![0, 100], vec![1, 10_000])
        );
        assert!(parse_grid("0,100").is_err());
        assert!(parse_grid("0/0").is_err());
        assert!(parse_grid("x/1").is_err());
    }

    fn grid() -> Vec<Row> {
        vec![
            row(0, 1, 140.0, 0.0, 1.0, 0.5),
            row(0, 1000, 141.0, 0.0, 1.2, 0.6),
            row(0, 10_000, 142.0, 0.0, 1.4, 0.7),
            row(100, 1, 70.0, 1.0, 1.0, 0.5),
            row(100, 1000, 143.0, 0.0, 1.6, 1.0),
            row(100, 10_000, 143.0, 0.0, 1.6, 1.0),
            row(1000, 1, 70.0, 1.0, 1.0, 0.5),
            row(1000, 1000, 72.0, 0.998, 4.2, 3.6),
            row(1000, 10_000, 143.0, 0.0, 4.4, 3.7),
            row(10_000, 1, 70.0, 1.0, 1.0, 0.5),
            row(10_000, 1000, 72.0, 0.998, 4.2, 3.6),
            row(10_000, 10_000, 74.0, 0.998, 31.4, 30.7),
        ]
    }

    #[test]
    fn cache_memory_is_measured_over_no_cache_at_the_same_k() {
        let rows = grid();
        let m = cache_memory(&rows, 1000).unwrap();
        assert_eq!((m.tokens, m.entries), (10_000, 1000));
        assert!((m.rss_mb - 3.0).abs() < 1e-9);
        assert!((m.heap_mb.unwrap() - 3.0).abs() < 1e-9);
        assert!((m.full_mb().unwrap() - 3.0).abs() < 1e-9);
        assert!((m.per_entry_kb().unwrap() - 3.0).abs() < 1e-9);
        // Only 1000 of 10000 held: extrapolated.
        let mut partial = rows.clone();
        partial.retain(|r| r.tokens != 10_000);
        let m = cache_memory(&partial, 10_000).unwrap();
        assert_eq!(m.entries, 1000);
        assert!((m.full_mb().unwrap() - 30.0).abs() < 1e-6);
    }

    #[test]
    fn default_is_the_smallest_size_meeting_both_criteria() {
        let text = default_paragraph(&grid());
        assert!(text.contains("**Default: 1000.**"), "{text}");
        assert!(text.contains("Refused: 100 hits 0.0 % at K = 1000."), "{text}");
        assert!(text.contains("it hits 99.8 %"), "{text}");
        assert!(text.contains("72.0 µs CPU/request against 141.0 µs"), "{text}");
        assert!(text.contains("holds 3.0 MB per worker"), "{text}");
        assert!(
            text.contains("The next size measured, 10000, would hold 30.0 MB"),
            "{text}"
        );

        // 1000 over the budget: 10000 is not chosen either.
        let mut heavy = grid();
        for r in heavy.iter_mut().filter(|r| r.size >= 1000 && r.tokens == 10_000) {
            r.heap_growth_mb = Some(60.0);
        }
        let text = default_paragraph(&heavy);
        assert!(
            text.contains("1000 hits 99.8 % but its cache, full, holds 59.3 MB"),
            "{text}"
        );
        assert!(text.contains("No measured size meets both"), "{text}");
        assert!(
            text.contains("Within 16 MB, the largest size measured is 100 (0.3 MB full, 0.0 % hits at K = 1000)."),
            "{text}"
        );
        assert!(
            text.contains("The smallest size with 99 % hits at K = 1000 is 1000, holding 59.3 MB per worker"),
            "{text}"
        );
        assert!(
            text.contains("At 5.9 KB per cached token, 16 MB holds about 2698 tokens"),
            "{text}"
        );

        let text = default_paragraph(&grid()[3..]);
        assert!(text.contains("no Envoy without a cache at K = 1000"), "{text}");
    }

    #[test]
    fn claims_have_the_same_length_for_every_token() {
        let a = serde_json::to_string(&claims(0, 3)).unwrap();
        let b = serde_json::to_string(&claims(9999, 3)).unwrap();
        assert_eq!(a.len(), b.len());
        assert_ne!(a, b);
    }
}
