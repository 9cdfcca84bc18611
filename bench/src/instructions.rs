//! Instructions per request, counted by valgrind's callgrind.
//!
//! CPU time on a shared 2-CPU VM moves by tens of µs from round to round,
//! so a paired difference of 1 µs cannot be seen in it. Instructions
//! retired do not depend on what else the machine does: the same Envoy, the
//! same configuration and the same requests give the same count to about
//! 0.1 % (three repeats measured 110,845, 110,712 and 110,832). This machine
//! has no hardware counters (`perf stat -e instructions` says "not
//! supported"), so callgrind counts them, by running Envoy on its
//! synthetic CPU (about 50 times slower, which does not matter for a
//! count).
//!
//! Each (arm, token) pair runs in its own Envoy under
//! `valgrind --tool=callgrind`, with the configuration and environment of
//! the timed run. After a warm-up (so that V8 has compiled and tiered up
//! the module and jwt_authn has its keys), `callgrind_control --zero`
//! resets the counts, `requests` requests go over one keep-alive
//! connection, and `callgrind_control -e` reads the total of every thread.
//! Counts are independent of the machine's load, so two Envoys run at once.
//!
//! What a count is not: it weighs every instruction alike (a cache miss and
//! an add both count 1), and V8's JIT code runs on callgrind's CPU, so it is
//! a measure of work, converted to µs in the report at A1's measured rate.
//! It counts user space only: the kernel's work for a request (system calls,
//! TCP) is not in it.
//!
//! Each Envoy runs with exactly the job's environment, PATH and
//! AWS_EC2_METADATA_DISABLED=true (as the harness starts Envoy), so that no
//! credential chain can look for the instance metadata address.

use crate::{connect, send, Load};
use serde_json::Value;
use std::cell::{Cell, RefCell};
use std::net::{SocketAddr, TcpListener};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

/// How long Envoy may take to start under callgrind (about 60 s here).
const START_TIMEOUT: Duration = Duration::from_secs(300);
/// Requests before the counts are zeroed (at least; a job whose load
/// rotates over more tokens sends one pass over them).
pub const WARMUP_REQUESTS: usize = 300;
/// How often a request that failed for the machine's load is tried.
const TRIES: usize = 3;

/// Whether a request failed for the machine's load, not the configuration:
/// Envoy, on callgrind's slow CPU, timed out connecting to the upstream (the
/// handshake runs under callgrind too) or fetching the keys.
fn transient(error: &str) -> bool {
    error.contains("reset reason: connection timeout") || error.contains("Jwks remote fetch is failed")
}

/// The listener whose port is set when a job names none.
const FIRST_LISTENER_PORT: &str = "/static_resources/listeners/0/address/socket_address/port_value";

/// The Envoy binary itself: valgrind must run it, not the virtualenv's
/// Python launcher (`.venv/bin/envoy` execs `site-packages/envoy/_bin/envoy`).
pub fn real_envoy(found: &Path) -> Result<PathBuf, String> {
    let head = std::fs::read(found).map_err(|e| format!("{}: {e}", found.display()))?;
    if !head.starts_with(b"#!") {
        return Ok(found.to_path_buf());
    }
    let venv = found
        .parent()
        .and_then(Path::parent)
        .ok_or_else(|| format!("{} is a script outside a virtualenv", found.display()))?;
    let lib = venv.join("lib");
    let entries = std::fs::read_dir(&lib).map_err(|e| format!("{}: {e}", lib.display()))?;
    for entry in entries.flatten() {
        let candidate = entry.path().join("site-packages/envoy/_bin/envoy");
        if candidate.is_file() {
            return Ok(candidate);
        }
    }
    Err(format!(
        "{} is a launcher script and no site-packages/envoy/_bin/envoy is under {}",
        found.display(),
        lib.display()
    ))
}

/// Why instructions cannot be counted here, if they cannot.
pub fn unavailable() -> Option<String> {
    if std::env::var("BENCH_CALLGRIND").is_ok_and(|v| v == "0") {
        return Some("BENCH_CALLGRIND=0".into());
    }
    for tool in ["valgrind", "callgrind_control"] {
        let ran = Command::new(tool)
            .arg(if tool == "valgrind" { "--version" } else { "-h" })
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        if ran.is_err() {
            return Some(format!("`{tool}` is not installed (Debian package valgrind)"));
        }
    }
    None
}

/// The total of `callgrind_control -e` output: the sum over its per-thread
/// lines (`   Th 7   110,501,691`; from thread 10 on the id follows `Th`
/// without a space, `   Th12   18,941`). None when there is no thread line
/// or a thread's count cannot be read (a partial sum would be wrong).
pub fn parse_totals(text: &str) -> Option<u64> {
    let mut total = None;
    for line in text.lines() {
        let Some(rest) = line.trim_start().strip_prefix("Th") else {
            continue;
        };
        let rest = rest.trim_start();
        let id_len = rest.find(|c: char| !c.is_ascii_digit()).unwrap_or(rest.len());
        if id_len == 0 {
            continue;
        }
        let count: u64 = rest[id_len..]
            .split_whitespace()
            .next()?
            .replace(',', "")
            .parse()
            .ok()?;
        total = Some(total.unwrap_or(0) + count);
    }
    total
}

/// Whether `callgrind_control` reached `pid`: it exits with 0 even when the
/// pid is not a callgrind run, and says so only in its output.
pub fn check_reply(text: &str, pid: u32) -> Result<(), String> {
    let first = |t: &str| {
        t.lines()
            .find(|l| !l.trim().is_empty())
            .unwrap_or("")
            .trim()
            .to_string()
    };
    if text.contains("Error:") || text.contains("No active callgrind runs") {
        return Err(format!("callgrind_control, pid {pid}: {}", first(text)));
    }
    if !text.lines().any(|l| l.starts_with(&format!("PID {pid}:"))) {
        return Err(format!(
            "callgrind_control did not answer for pid {pid}: {}",
            first(text)
        ));
    }
    Ok(())
}

fn free_port() -> Result<u16, String> {
    let listener = TcpListener::bind("127.0.0.1:0").map_err(|e| e.to_string())?;
    listener.local_addr().map(|a| a.port()).map_err(|e| e.to_string())
}

/// One Envoy under callgrind; stopped (and reaped) on drop.
struct Counted {
    child: Child,
    addr: SocketAddr,
    _dir: tempfile::TempDir,
}

impl Drop for Counted {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

impl Counted {
    fn start(envoy: &Path, job: &Job) -> Result<Counted, String> {
        let mut config: Value = serde_json::from_str(&job.config).map_err(|e| format!("bench config: {e}"))?;
        let port = free_port()?;
        if config.get("admin").is_some() {
            config["admin"]["address"]["socket_address"]["port_value"] = free_port()?.into();
        }
        let pointer = job.listener_port.as_deref().unwrap_or(FIRST_LISTENER_PORT);
        *config
            .pointer_mut(pointer)
            .ok_or_else(|| format!("bench config: nothing at {pointer}"))? = port.into();
        let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
        let path = dir.path().join("envoy.json");
        std::fs::write(&path, config.to_string()).map_err(|e| e.to_string())?;
        let child = Command::new("valgrind")
            .arg("--tool=callgrind")
            // V8 writes and runs its own code.
            .arg("--smc-check=all")
            .arg(format!("--callgrind-out-file={}/callgrind.out", dir.path().display()))
            .arg(format!("--log-file={}/valgrind.log", dir.path().display()))
            .arg(envoy)
            .args(["--concurrency", "1", "-l", "error", "--disable-hot-restart", "-c"])
            .arg(&path)
            .env_clear()
            .env("PATH", "/usr/bin:/bin")
            .envs(job.env.iter().map(|(k, v)| (k, v)))
            .env("AWS_EC2_METADATA_DISABLED", "true")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .map_err(|e| format!("valgrind: {e}"))?;
        // `make bench` runs the load generator pinned to CPU 1, and children
        // inherit that; the timed runs are over, so both CPUs may count.
        let _ = Command::new("taskset")
            .args(["-a", "-c", "-p", "0,1", &child.id().to_string()])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        Ok(Counted {
            child,
            addr: SocketAddr::from(([127, 0, 0, 1], port)),
            _dir: dir,
        })
    }

    /// Runs `callgrind_control <args> <pid>` and checks that it reached this
    /// Envoy (see [`check_reply`]).
    fn control(&self, args: &[&str]) -> Result<String, String> {
        let pid = self.child.id();
        let out = Command::new("callgrind_control")
            .args(args)
            .arg(pid.to_string())
            .output()
            .map_err(|e| format!("callgrind_control: {e}"))?;
        let text = String::from_utf8_lossy(&out.stdout).into_owned();
        check_reply(&text, pid)?;
        Ok(text)
    }

    /// Waits until Envoy answers `load`'s first request with 200.
    async fn ready(&mut self, load: &Load) -> Result<(), String> {
        let deadline = Instant::now() + START_TIMEOUT;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Err(format!("Envoy under callgrind exited with {status}"));
            }
            if let Ok(mut sender) = connect(self.addr).await {
                match send(&mut sender, load.request(0)?).await {
                    Ok(()) => return Ok(()),
                    // jwt_authn's first key fetch may not be done yet on a
                    // loaded machine (it is retried every second).
                    Err(e) if transient(&e) => {}
                    // Envoy listens only once started: any other answer but
                    // 200 is the arm failing, not Envoy starting.
                    Err(e) if e.starts_with("status ") => {
                        return Err(format!("Envoy under callgrind answered {e}, not 200"));
                    }
                    Err(_) => {}
                }
            }
            if Instant::now() > deadline {
                return Err("Envoy under callgrind did not answer 200 within 300 s".into());
            }
            tokio::time::sleep(Duration::from_millis(500)).await;
        }
    }

    /// Instructions per request over `requests` requests of `job`'s load
    /// (every one 200), numbered on from the warm-up's (so a rotation goes
    /// on where the warm-up left it); with `job.profile`, the counted
    /// requests' profile (`callgrind_control --dump`) is copied there.
    async fn count(&mut self, job: &Job, requests: usize) -> Result<f64, String> {
        let load = &job.load;
        self.ready(load).await?;
        let mut sender = connect(self.addr).await?;
        let warmup = WARMUP_REQUESTS.max(load.bearers.len());
        for i in 0..warmup {
            let mut tries = 0;
            while let Err(e) = send(&mut sender, load.request(i)?).await {
                tries += 1;
                if !transient(&e) || tries == TRIES {
                    return Err(e);
                }
                sender = connect(self.addr).await?;
            }
        }
        // The counted requests, again from a zero count when one of them
        // failed for the machine's load (see `transient`).
        let mut tries = 0;
        let total = loop {
            let zeroed = self.control(&["--zero"])?;
            if !zeroed.contains("OK.") {
                return Err(format!("callgrind_control --zero did not confirm: {}", zeroed.trim()));
            }
            let mut failed = None;
            for i in warmup..warmup + requests {
                if let Err(e) = send(&mut sender, load.request(i)?).await {
                    failed = Some(e);
                    break;
                }
            }
            match failed {
                None => {
                    let text = self.control(&["-e"])?;
                    break parse_totals(&text)
                        .filter(|t| *t > 0)
                        .ok_or_else(|| format!("callgrind_control -e gave no totals: {}", text.trim()))?;
                }
                Some(e) => {
                    tries += 1;
                    if !transient(&e) || tries == TRIES {
                        return Err(e);
                    }
                    eprintln!("  {}: {e}; counting again", job.label);
                    sender = connect(self.addr).await?;
                }
            }
        };
        if let Some(profile) = &job.profile {
            self.dump(profile)?;
        }
        Ok(total as f64 / requests as f64)
    }

    /// Writes the counts since the last zero to a profile (callgrind
    /// names it `callgrind.out.<n>` next to the final one) and copies it
    /// to `to`.
    fn dump(&self, to: &Path) -> Result<(), String> {
        let before = self.dumps();
        let dumped = self.control(&["--dump"])?;
        if !dumped.contains("OK.") {
            return Err(format!("callgrind_control --dump did not confirm: {}", dumped.trim()));
        }
        let new = self
            .dumps()
            .into_iter()
            .find(|p| !before.contains(p))
            .ok_or("callgrind_control --dump wrote no profile")?;
        std::fs::copy(&new, to).map_err(|e| format!("{} -> {}: {e}", new.display(), to.display()))?;
        Ok(())
    }

    /// The profiles dumped so far (`callgrind.out.*` in the run's directory).
    fn dumps(&self) -> Vec<PathBuf> {
        std::fs::read_dir(self._dir.path())
            .map(|entries| {
                entries
                    .flatten()
                    .map(|e| e.path())
                    .filter(|p| {
                        p.file_name()
                            .and_then(|n| n.to_str())
                            .is_some_and(|n| n.starts_with("callgrind.out."))
                    })
                    .collect()
            })
            .unwrap_or_default()
    }
}

/// One (arm, token) pair to count.
pub struct Job {
    /// For progress lines (`A3 (32 scopes)`).
    pub label: String,
    /// The bootstrap, as JSON.
    pub config: String,
    /// Envoy's environment (besides PATH and AWS_EC2_METADATA_DISABLED).
    pub env: Vec<(String, String)>,
    /// The requests, numbered from 0: the warm-up's, then the counted ones.
    pub load: Arc<Load>,
    /// The JSON pointer of the port of the listener the requests go to
    /// (set to a free port); None: the first listener's.
    pub listener_port: Option<String>,
    /// Where to copy the counted requests' callgrind profile, if anywhere.
    pub profile: Option<PathBuf>,
}

/// Instructions per request of every job, in job order, two Envoys at a
/// time (one per CPU of this VM; the next starts as soon as one is done).
/// The first failure stops the other worker after its current job (every
/// Envoy is killed on drop) and is returned.
pub async fn count_all(envoy: &Path, jobs: &[Job], requests: usize) -> Result<Vec<f64>, String> {
    let next = &Cell::new(0usize);
    let failed: &RefCell<Option<String>> = &RefCell::new(None);
    let counts: &RefCell<Vec<Option<f64>>> = &RefCell::new(vec![None; jobs.len()]);
    let worker = || async move {
        loop {
            if failed.borrow().is_some() {
                return;
            }
            let i = next.get();
            let Some(job) = jobs.get(i) else { return };
            next.set(i + 1);
            let started = Instant::now();
            let result = match Counted::start(envoy, job) {
                Ok(mut counted) => counted.count(job, requests).await,
                Err(e) => Err(e),
            };
            match result {
                Ok(ir) => {
                    eprintln!(
                        "  {}: {ir:.0} instructions/request ({:.0} s under callgrind)",
                        job.label,
                        started.elapsed().as_secs_f64()
                    );
                    counts.borrow_mut()[i] = Some(ir);
                }
                Err(e) => {
                    failed
                        .borrow_mut()
                        .get_or_insert(format!("{} under callgrind: {e}", job.label));
                    return;
                }
            }
        }
    };
    tokio::join!(worker(), worker());
    if let Some(e) = failed.take() {
        return Err(e);
    }
    counts
        .take()
        .into_iter()
        .map(|c| c.ok_or_else(|| "a callgrind count is missing".to_string()))
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn totals_sum_every_thread_without_commas() {
        let text = "PID 3494: envoy -c a.yaml\nsending command status internal to pid 3494\n\n  Totals:         Ir \n   Th 1      425,366 \n   Th 2       18,941 \n   Th 3            0 \n   Th 6   110,501,691 \n";
        assert_eq!(parse_totals(text), Some(425_366 + 18_941 + 110_501_691));
        assert_eq!(parse_totals("PID 1: x\n  Totals: Ir\n"), None);
        assert_eq!(parse_totals("   Th 1   12x \n"), None);
        assert_eq!(parse_totals(""), None);
    }

    #[test]
    fn totals_include_threads_from_ten_on() {
        // callgrind_control pads thread ids to two characters: `Th 9`, `Th10`.
        let text = "PID 77: envoy -c a.json\n\n  Totals:           Ir \n   Th 1    1,000,000 \n   Th 9          500 \n   Th10       20,000 \n   Th12            7 \n\n";
        assert_eq!(parse_totals(text), Some(1_000_000 + 500 + 20_000 + 7));
        check_reply(text, 77).unwrap();
        // One unreadable count makes the whole total unknown.
        assert_eq!(parse_totals("   Th 1   1,000 \n   Th11   n/a \n"), None);
    }

    #[test]
    fn a_missing_pid_is_an_error_not_a_zero() {
        // What callgrind_control prints (with exit status 0) for a pid that
        // is not a callgrind run.
        let text = "Error: Callgrind task with PID/name '999999' not detected.\nSee '/usr/bin/callgrind_control -h' for help.\n";
        assert_eq!(parse_totals(text), None);
        let e = check_reply(text, 999_999).unwrap_err();
        assert!(e.contains("not detected"), "{e}");
        assert!(check_reply("No active callgrind runs detected.\n", 5).is_err());
        // An answer for another run is no answer for this one.
        assert!(check_reply("PID 12: envoy\n  OK.\n", 1).is_err());
        check_reply("PID 12: envoy -c x.json\n  OK.\n", 12).unwrap();
    }

    #[test]
    fn a_binary_is_its_own_envoy() {
        let dir = tempfile::tempdir().unwrap();
        let binary = dir.path().join("envoy");
        std::fs::write(&binary, b"\x7fELF...").unwrap();
        assert_eq!(real_envoy(&binary).unwrap(), binary);
        // The virtualenv's launcher points to the binary in site-packages.
        std::fs::create_dir_all(dir.path().join("venv/bin")).unwrap();
        let real = dir.path().join("venv/lib/python3.11/site-packages/envoy/_bin");
        std::fs::create_dir_all(&real).unwrap();
        std::fs::write(real.join("envoy"), b"\x7fELF").unwrap();
        let launcher = dir.path().join("venv/bin/envoy");
        std::fs::write(&launcher, b"#!/usr/bin/python3\n").unwrap();
        assert_eq!(real_envoy(&launcher).unwrap(), real.join("envoy"));
        std::fs::remove_file(real.join("envoy")).unwrap();
        assert!(real_envoy(&launcher).is_err());
    }
}
