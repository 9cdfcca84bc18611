//! A bounded soak through the full stack: the reference system (frontend
//! Envoy with the filter, lattice-sim enforcing the generated policies, the
//! echo apps), many subjects and scope sets interleaved on shared
//! connections (an HTTP/1.1 keep-alive pool and one multiplexed HTTP/2
//! connection), for `SOAK_SECONDS` (default 20; `make soak` runs 180).
//!
//! It asserts: every response is the one expected for its own token (status,
//! path, `x-jwt-subject` and exactly its `x-jwt-scope-*` headers, so no
//! identity ever crosses from one request to another), no transport error,
//! and the frontend Envoy's resident memory stays within [`RSS_GROWTH_LIMIT_KB`]
//! of what it was after warm-up. Timings are printed, never asserted.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic, clippy::indexing_slicing)]

use bytes::Bytes;
use e2e::deployment::Deployment;
use http_body_util::{BodyExt, Empty};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use std::collections::BTreeSet;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

const DEFAULT_SECONDS: u64 = 20;
/// How much the frontend's resident memory may grow after warm-up.
const RSS_GROWTH_LIMIT_KB: u64 = 64 * 1024;
/// Requests in flight at once, half on each protocol.
const WORKERS: usize = 8;

const SCOPES: [&str; 8] = [
    "test.all",
    "orders.read",
    "orders.write",
    "profile",
    "email",
    "billing.admin",
    "reports-2026",
    "a_b",
];

/// One token and what the app must see when it is used.
struct Identity {
    token: Option<String>,
    subject: String,
    scopes: BTreeSet<String>,
}

impl Identity {
    /// The status the frontend answers: 401 without a token; Lattice lets
    /// the frontend reach app1 only with `test.all` (reference.yaml).
    fn expected_status(&self) -> u16 {
        match (&self.token, self.scopes.contains("test.all")) {
            (None, _) => 401,
            (Some(_), true) => 200,
            (Some(_), false) => 403,
        }
    }
}

/// A small deterministic generator (xorshift64*): no dependency, and a
/// failure replays with the same seed.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

fn resident_kb(pid: u32) -> u64 {
    let status = std::fs::read_to_string(format!("/proc/{pid}/status")).unwrap();
    status
        .lines()
        .find_map(|l| l.strip_prefix("VmRSS:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
        .unwrap()
}

/// Checks one response against the identity that made the request.
fn check(identity: &Identity, path: &str, status: u16, body: &[u8]) -> Result<(), String> {
    if status != identity.expected_status() {
        return Err(format!(
            "{path}: status {status}, expected {} for {} {:?}: {}",
            identity.expected_status(),
            identity.subject,
            identity.scopes,
            String::from_utf8_lossy(body)
        ));
    }
    if status != 200 {
        return Ok(());
    }
    let body: serde_json::Value = serde_json::from_slice(body).map_err(|e| format!("{path}: {e}"))?;
    if body["path"] != path {
        return Err(format!("{path}: the app saw {}", body["path"]));
    }
    let headers = e2e::echo::echoed_headers(&body);
    let subjects: Vec<&str> = headers
        .iter()
        .filter(|(n, _)| n == "x-jwt-subject")
        .map(|(_, v)| v.as_str())
        .collect();
    if subjects != [identity.subject.as_str()] {
        return Err(format!("{path}: subject {subjects:?}, expected {}", identity.subject));
    }
    let scopes: BTreeSet<String> = headers
        .iter()
        .filter_map(|(n, v)| n.strip_prefix("x-jwt-scope-").map(|s| (s.to_string(), v.clone())))
        .map(|(s, v)| if v == "true" { s } else { format!("{s}={v}") })
        .collect();
    if scopes != identity.scopes {
        return Err(format!(
            "{path}: scopes {scopes:?}, expected {:?} ({})",
            identity.scopes, identity.subject
        ));
    }
    Ok(())
}

#[test]
fn identities_never_mix_under_interleaved_load() {
    let seconds: u64 = std::env::var("SOAK_SECONDS")
        .ok()
        .and_then(|s| s.parse().ok())
        .unwrap_or(DEFAULT_SECONDS);
    let spec = e2e::envoy::workspace_root().join("envoy/examples/reference.yaml");
    let d = Deployment::start(&spec, None, &e2e::dev_idp_binary().unwrap_or_else(|e| panic!("{e}")))
        .unwrap_or_else(|e| panic!("{e}"));

    // 200 identities: distinct subjects, random scope sets (test.all in
    // about two thirds), and some requests without a token.
    let seed = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap()
        .as_nanos() as u64
        | 1;
    let mut rng = Rng(seed);
    let identities: Arc<Vec<Identity>> = Arc::new(
        (0..200)
            .map(|i| {
                let subject = format!("user-{i}@example.com");
                if i % 20 == 0 {
                    return Identity {
                        token: None,
                        subject,
                        scopes: BTreeSet::new(),
                    };
                }
                let mut scopes: BTreeSet<String> = SCOPES
                    .iter()
                    .filter(|_| rng.below(3) == 0)
                    .map(|s| s.to_string())
                    .collect();
                if rng.below(3) != 0 {
                    scopes.insert("test.all".into());
                }
                let list: Vec<&str> = scopes.iter().map(String::as_str).collect();
                Identity {
                    token: Some(d.token(&subject, &list).unwrap()),
                    subject,
                    scopes,
                }
            })
            .collect(),
    );

    let port = d.frontend_port();
    let pid = d.frontend.pid();
    let runtime = tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap();
    let sent = Arc::new(AtomicU64::new(0));
    let failures: Arc<std::sync::Mutex<Vec<String>>> = Arc::default();
    let rss = Arc::new(AtomicU64::new(0));
    let started = Instant::now();
    let deadline = started + Duration::from_secs(seconds);
    runtime.block_on(async {
        // Connections are shared: a keep-alive pool for HTTP/1.1 and a
        // single multiplexed HTTP/2 connection (prior knowledge).
        let h1: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new())
            .pool_max_idle_per_host(2)
            .build_http();
        let h2: Client<_, Empty<Bytes>> = Client::builder(TokioExecutor::new()).http2_only(true).build_http();
        let warmed_up = started + Duration::from_secs(seconds / 5);
        let mut tasks = Vec::new();
        for worker in 0..WORKERS {
            let client = if worker % 2 == 0 { h1.clone() } else { h2.clone() };
            let identities = identities.clone();
            let (sent, failures, rss) = (sent.clone(), failures.clone(), rss.clone());
            let mut rng = Rng(seed.wrapping_add(worker as u64 * 7919) | 1);
            tasks.push(tokio::spawn(async move {
                let mut n = 0u64;
                while Instant::now() < deadline {
                    if worker == 0 && rss.load(Ordering::SeqCst) == 0 && Instant::now() >= warmed_up {
                        rss.store(resident_kb(pid), Ordering::SeqCst);
                    }
                    let identity = &identities[rng.below(identities.len())];
                    let path = format!("/app1/soak/{worker}/{n}");
                    n += 1;
                    let mut request = hyper::Request::get(format!("http://127.0.0.1:{port}{path}"));
                    if let Some(token) = &identity.token {
                        request = request.header("authorization", format!("Bearer {token}"));
                    }
                    let result = async {
                        let response = client
                            .request(request.body(Empty::new()).map_err(|e| e.to_string())?)
                            .await
                            .map_err(|e| format!("{path}: {e}"))?;
                        let want = if worker % 2 == 0 {
                            hyper::Version::HTTP_11
                        } else {
                            hyper::Version::HTTP_2
                        };
                        if response.version() != want {
                            return Err(format!("{path}: answered over {:?}", response.version()));
                        }
                        let status = response.status().as_u16();
                        let body = response
                            .into_body()
                            .collect()
                            .await
                            .map_err(|e| format!("{path}: {e}"))?
                            .to_bytes();
                        check(identity, &path, status, &body)
                    }
                    .await;
                    sent.fetch_add(1, Ordering::SeqCst);
                    if let Err(e) = result {
                        failures.lock().unwrap().push(e);
                    }
                }
            }));
        }
        for task in tasks {
            task.await.unwrap();
        }
    });
    let elapsed = started.elapsed();
    let (before, after) = (rss.load(Ordering::SeqCst), resident_kb(pid));
    let sent = sent.load(Ordering::SeqCst);
    let failures = failures.lock().unwrap();
    eprintln!(
        "soak: {sent} requests in {:.1} s ({:.0}/s) over HTTP/1.1 and HTTP/2, {} failures; frontend RSS {before} kB after warm-up, {after} kB at the end",
        elapsed.as_secs_f64(),
        sent as f64 / elapsed.as_secs_f64(),
        failures.len()
    );
    assert!(
        failures.is_empty(),
        "{} of {sent} failed, first: {:?}",
        failures.len(),
        &failures[..failures.len().min(5)]
    );
    assert!(sent > 100, "only {sent} requests in {seconds} s");
    assert!(before > 0, "no warm-up measurement");
    assert!(
        after <= before + RSS_GROWTH_LIMIT_KB,
        "frontend RSS grew from {before} kB to {after} kB"
    );
}
