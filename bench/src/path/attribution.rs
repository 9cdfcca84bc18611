//! The callgrind phase of `bench path`: where the CPU a configuration adds
//! over F0 goes, in instructions per request (bench/src/instructions.rs:
//! repeatable whatever the machine's load, unlike CPU time).
//!
//! After the timed rounds, every configuration F0, F1, F2 and R runs again in
//! both token modes under callgrind (warm-up, counts zeroed, then
//! `BENCH_CALLGRIND_REQUESTS` requests, instructions of every thread ÷
//! requests), and so do attribution variants, one token repeated: the
//! configuration with parts taken out one after the other (a chain, so that
//! the steps add up to the whole difference: F2 without its access log, then
//! also without the guard, then also without jwt_scopes, ...). Each step's
//! saving is what that part costs on top of the parts still there; what is
//! left at the chain's end over F0 is the rest (the connection manager's
//! settings, the route table, the 4 clusters...). The variants exist only
//! for this phase (and the timed variant rows): nothing about them is a
//! target.
//!
//! The Envoy of the PyPI wheel is stripped (its only symbols are the
//! dynamic-module ABI and the allocator's entry points), so a profile cannot
//! name Envoy's own functions (jwt_authn's, the access logger's, BoringSSL's):
//! the chain is the attribution, and the profiles (`callgrind_annotate
//! --inclusive=yes` of F2's and R's counted requests) add what has names:
//! the native module's hooks (jwt_scopes and the guard, including the
//! Envoy callbacks they make), the allocator, libc.

use super::{Mode, F0, F1, F2, R};
use crate::instructions;
use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt::Write as _;
use std::path::Path;
use std::process::Command;

/// A part of a configuration an attribution variant goes without.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub(super) enum Part {
    /// The connection manager's JSON access log to stdout.
    AccessLog,
    /// The signing guard, an upstream filter of every Lattice cluster.
    Guard,
    /// The jwt_scopes filter (wasm or dynamic module).
    Scopes,
    /// jwt_authn.
    JwtAuthn,
    /// The early header mutation (`x-jwt-*`, `forwarded` removed before any filter).
    EarlyMutation,
    /// The refusal routes (envoy-gen/src/refusals.rs), before every other route.
    Refusals,
    /// The reference's first Lua filter (strips client `x-` headers).
    LuaStrip,
    /// The reference's second Lua filter (`scp` → `x-jwt-scope-*`).
    LuaScopes,
    /// The native build's proof of verification, the token's header in
    /// jwt_authn's metadata (`header_in_metadata`): the variant has the
    /// whole payload there instead (`payload_in_metadata`), as envoy-gen
    /// rendered it before.
    HeaderProof,
}

const ALL_PARTS: [Part; 9] = [
    Part::AccessLog,
    Part::Guard,
    Part::Scopes,
    Part::JwtAuthn,
    Part::EarlyMutation,
    Part::Refusals,
    Part::LuaStrip,
    Part::LuaScopes,
    Part::HeaderProof,
];

/// The chains: each configuration's parts, in the order they are taken
/// out, and what is left at the end over F0. F2's are everything envoy-gen
/// adds over F0 that can go without breaking the path; F1's stop before
/// jwt_authn (the same as F2's); the reference's keep its dynamic forward
/// proxy and its signer (a downstream filter), without which its requests
/// reach no upstream.
pub(super) const CHAINS: [(&str, &[Part], &str); 3] = [
    (
        F2,
        &[
            Part::AccessLog,
            Part::Guard,
            Part::Scopes,
            Part::JwtAuthn,
            Part::EarlyMutation,
            Part::Refusals,
        ],
        "the connection manager's settings (`use_remote_address`, path normalisation, request id, limits), \
         `x-forwarded-for` set by the route, the route table's other routes, 4 clusters, the readiness listener",
    ),
    (
        F1,
        &[Part::AccessLog, Part::Guard, Part::Scopes],
        "jwt_authn (with the payload in its metadata, which the wasm build reads), and all that F2's chain \
         leaves at its end",
    ),
    (
        R,
        &[Part::LuaStrip, Part::LuaScopes, Part::JwtAuthn],
        "its health check filter, dynamic forward proxy (DNS cache lookup, host rewrite), signing as a downstream \
         filter, its route table",
    ),
];

impl Part {
    pub(super) fn key(self) -> &'static str {
        match self {
            Part::AccessLog => "log",
            Part::Guard => "guard",
            Part::Scopes => "scopes",
            Part::JwtAuthn => "jwt",
            Part::EarlyMutation => "early",
            Part::Refusals => "refusals",
            Part::LuaStrip => "luastrip",
            Part::LuaScopes => "luascopes",
            Part::HeaderProof => "pim",
        }
    }

    pub(super) fn from_key(key: &str) -> Option<Part> {
        ALL_PARTS.into_iter().find(|p| p.key() == key)
    }

    pub(super) fn what(self) -> &'static str {
        match self {
            Part::AccessLog => "the access log (JSON line to stdout: formatting and writing)",
            Part::Guard => "the signing guard (upstream filter of each cluster)",
            Part::Scopes => {
                "jwt_scopes (with, for the native build, jwt_authn's `forward_payload_header` that only it reads; \
                 and signing the identity headers it adds)"
            }
            Part::JwtAuthn => "jwt_authn (the token looked up in its cache or verified, its metadata written)",
            Part::EarlyMutation => "the early header mutation (`x-jwt-*`, `forwarded`)",
            Part::Refusals => "the refusal routes (method regex, duplicate Host, `X-Amz-*` query regex)",
            Part::LuaStrip => "the Lua strip of client `x-` headers",
            Part::LuaScopes => "the Lua `scp` → `x-jwt-scope-*` (and signing those headers)",
            Part::HeaderProof => {
                "the token's header as jwt_authn's proof of verification (`header_in_metadata`): the whole payload in \
                 its metadata instead (`payload_in_metadata`, as rendered before)"
            }
        }
    }

    /// What a variant without the part is, short: "without the access log".
    fn short(self) -> String {
        match self {
            Part::HeaderProof => "with the payload in metadata (as before)".into(),
            _ => format!("without {}", self.what().split(" (").next().unwrap_or_default()),
        }
    }

    /// Whether the requests keep `x-jwt-subject` and `x-jwt-scope-*` without it.
    pub(super) fn keeps_identity(self) -> bool {
        !matches!(self, Part::Scopes | Part::JwtAuthn | Part::LuaScopes)
    }

    /// Takes the part out of a bootstrap; an error when it is not there.
    fn remove(self, doc: &mut Value) -> Result<(), String> {
        match self {
            Part::AccessLog => remove_key(hcm(doc)?, "access_log"),
            Part::HeaderProof => {
                let mut changed = 0;
                for provider in jwt_providers(hcm(doc)?) {
                    if let Some(key) = provider.remove("header_in_metadata") {
                        provider.insert("payload_in_metadata".into(), key);
                        changed += 1;
                    }
                }
                if changed == 0 {
                    return Err("no provider with header_in_metadata".into());
                }
                Ok(())
            }
            Part::EarlyMutation => remove_key(hcm(doc)?, "early_header_mutation_extensions"),
            Part::Guard => {
                let mut removed = 0;
                if let Some(clusters) = doc
                    .pointer_mut("/static_resources/clusters")
                    .and_then(Value::as_array_mut)
                {
                    for c in clusters {
                        if let Some(filters) = c
                            .pointer_mut("/typed_extension_protocol_options/envoy.extensions.upstreams.http.v3.HttpProtocolOptions/http_filters")
                            .and_then(Value::as_array_mut)
                        {
                            let before = filters.len();
                            filters.retain(|f| {
                                [
                                    "envoy.filters.http.aws_request_signing",
                                    "envoy.filters.http.upstream_codec",
                                ]
                                .contains(&f["name"].as_str().unwrap_or_default())
                            });
                            removed += before - filters.len();
                        }
                    }
                }
                if removed == 0 {
                    return Err("no signing guard to take out".into());
                }
                Ok(())
            }
            Part::Scopes => {
                let hcm = hcm(doc)?;
                remove_filter(hcm, |f| {
                    f["typed_config"]["config"]["root_id"] == "jwt_scopes"
                        || f["typed_config"]["filter_name"] == "jwt_scopes"
                })?;
                // The native build's payload header exists for it alone.
                for provider in jwt_providers(hcm) {
                    provider.remove("forward_payload_header");
                }
                Ok(())
            }
            Part::JwtAuthn => remove_filter(hcm(doc)?, |f| f["name"] == "envoy.filters.http.jwt_authn"),
            Part::Refusals => {
                let hcm = hcm(doc)?;
                let mut removed = 0;
                if let Some(hosts) = hcm
                    .pointer_mut("/route_config/virtual_hosts")
                    .and_then(Value::as_array_mut)
                {
                    for h in hosts {
                        if let Some(routes) = h.get_mut("routes").and_then(Value::as_array_mut) {
                            let before = routes.len();
                            routes.retain(|r| !r["name"].as_str().is_some_and(|n| n.starts_with("refuse_")));
                            removed += before - routes.len();
                        }
                    }
                }
                if removed == 0 {
                    return Err("no refusal route to take out".into());
                }
                Ok(())
            }
            Part::LuaStrip | Part::LuaScopes => {
                // The reference's Lua filters: one before jwt_authn (strip),
                // one after it (scopes); jwt_authn may be gone already.
                let filters = hcm(doc)?
                    .get_mut("http_filters")
                    .and_then(Value::as_array_mut)
                    .ok_or("no http_filters")?;
                let lua: Vec<usize> = filters
                    .iter()
                    .enumerate()
                    .filter(|(_, f)| f["name"] == "envoy.filters.http.lua")
                    .map(|(i, _)| i)
                    .collect();
                let jwt = filters.iter().position(|f| f["name"] == "envoy.filters.http.jwt_authn");
                let at = match (self, jwt) {
                    (Part::LuaStrip, Some(j)) => lua.iter().copied().find(|i| *i < j),
                    (_, Some(j)) => lua.iter().copied().find(|i| *i > j),
                    _ => None,
                }
                .ok_or_else(|| format!("no Lua filter for {}", self.key()))?;
                filters.remove(at);
                Ok(())
            }
        }
    }
}

/// The connection manager of the listener the requests go to (the first).
fn hcm(doc: &mut Value) -> Result<&mut Value, String> {
    doc.pointer_mut("/static_resources/listeners/0/filter_chains/0/filters")
        .and_then(Value::as_array_mut)
        .and_then(|filters| {
            filters
                .iter_mut()
                .find(|f| f["name"] == "envoy.filters.network.http_connection_manager")
        })
        .map(|f| &mut f["typed_config"])
        .ok_or_else(|| "the first listener has no HTTP connection manager".to_string())
}

/// jwt_authn's providers in a connection manager (none without jwt_authn).
fn jwt_providers(hcm: &mut Value) -> Vec<&mut serde_json::Map<String, Value>> {
    hcm.get_mut("http_filters")
        .and_then(Value::as_array_mut)
        .and_then(|filters| filters.iter_mut().find(|f| f["name"] == "envoy.filters.http.jwt_authn"))
        .and_then(|f| f.pointer_mut("/typed_config/providers"))
        .and_then(Value::as_object_mut)
        .map(|providers| providers.values_mut().filter_map(Value::as_object_mut).collect())
        .unwrap_or_default()
}

fn remove_key(object: &mut Value, key: &str) -> Result<(), String> {
    object
        .as_object_mut()
        .and_then(|o| o.remove(key))
        .map(|_| ())
        .ok_or_else(|| format!("no {key} to take out"))
}

fn remove_filter(hcm: &mut Value, which: impl Fn(&Value) -> bool) -> Result<(), String> {
    let filters = hcm
        .get_mut("http_filters")
        .and_then(Value::as_array_mut)
        .ok_or("no http_filters")?;
    let before = filters.len();
    filters.retain(|f| !which(f));
    if filters.len() + 1 != before {
        return Err(format!("{} filters matched, not 1", before - filters.len()));
    }
    Ok(())
}

/// A variant's id: its base's, then the parts it goes without (`F2-log-guard`).
pub(super) fn variant_id(base: &str, without: &[Part]) -> String {
    std::iter::once(base)
        .chain(without.iter().map(|p| p.key()))
        .collect::<Vec<_>>()
        .join("-")
}

/// The base and the parts of a variant's id (None for a part unknown).
pub(super) fn parse_id(id: &str) -> Option<(&str, Vec<Part>)> {
    let mut keys = id.split('-');
    let base = keys.next()?;
    let parts = keys.map(Part::from_key).collect::<Option<Vec<_>>>()?;
    Some((base, parts))
}

/// `doc` without `parts`, in that order.
pub(super) fn variant(doc: &Value, without: &[Part]) -> Result<Value, String> {
    let mut doc = doc.clone();
    for part in without {
        part.remove(&mut doc)
            .map_err(|e| format!("without {}: {e}", part.key()))?;
    }
    Ok(doc)
}

/// What a variant is, for the report: "F2 without the access log, the guard".
pub(super) fn variant_text(id: &str) -> String {
    match parse_id(id) {
        Some((base, parts)) if !parts.is_empty() => format!(
            "{base} {}",
            parts.iter().map(|p| p.short()).collect::<Vec<_>>().join(", ")
        ),
        _ => id.to_string(),
    }
}

/// One count to make: a configuration or variant in a mode.
pub(super) struct Count {
    pub id: String,
    pub mode: Mode,
    /// The bootstrap, as JSON.
    pub config: Value,
    /// The JSON pointer of its listener's port (None: the first listener).
    pub listener_port: Option<String>,
    /// Whether to keep a profile of the counted requests.
    pub profile: bool,
}

/// The counts (instructions per request) by (id, mode), and the profiles'
/// named functions by id.
#[derive(Default)]
pub(super) struct Counted {
    pub ir: BTreeMap<(String, Mode), f64>,
    pub profiles: BTreeMap<String, Vec<Function>>,
    pub requests: usize,
}

impl Counted {
    pub(super) fn get(&self, id: &str, mode: Mode) -> Option<f64> {
        self.ir.get(&(id.to_string(), mode)).copied()
    }
}

/// A function of a profile, with its inclusive and self instructions per
/// request.
#[derive(Clone, Debug, PartialEq)]
pub(super) struct Function {
    pub name: String,
    pub object: String,
    pub inclusive: f64,
}

/// Runs the counts (two Envoys at a time), with the run's upstream, IdP and
/// DNS server still up. `load(id, mode)` gives each its requests.
pub(super) async fn run(
    counts: Vec<Count>,
    requests: usize,
    load: impl Fn(&str, Mode) -> std::sync::Arc<crate::Load>,
    keep: Option<&Path>,
) -> Result<Counted, String> {
    let envoy = instructions::real_envoy(&e2e::envoy::envoy_binary()?)?;
    let dir = tempfile::tempdir().map_err(|e| e.to_string())?;
    let profiles_dir = keep.unwrap_or(dir.path());
    let env = e2e::envoy::AwsCredentials::test().env();
    let jobs: Vec<instructions::Job> = counts
        .iter()
        .map(|c| instructions::Job {
            label: format!("{}, {}", c.id, c.mode.short()),
            config: c.config.to_string(),
            env: env.clone(),
            load: load(&c.id, c.mode),
            listener_port: c.listener_port.clone(),
            profile: c
                .profile
                .then(|| profiles_dir.join(format!("callgrind.{}.{}.out", c.id, c.mode.key()))),
        })
        .collect();
    eprintln!(
        "counting instructions under callgrind: {} Envoys, {requests} requests each",
        jobs.len()
    );
    let irs = instructions::count_all(&envoy, &jobs, requests).await?;
    let mut out = Counted {
        requests,
        ..Counted::default()
    };
    for ((c, ir), job) in counts.iter().zip(irs).zip(&jobs) {
        out.ir.insert((c.id.clone(), c.mode), ir);
        if let Some(profile) = &job.profile {
            out.profiles.insert(c.id.clone(), annotate(profile, requests)?);
        }
    }
    Ok(out)
}

/// `callgrind_annotate --inclusive=yes` of a profile: every function it
/// lists, instructions per request.
fn annotate(profile: &Path, requests: usize) -> Result<Vec<Function>, String> {
    let out = Command::new("callgrind_annotate")
        .args(["--inclusive=yes", "--threshold=100", "--context=0"])
        .arg(profile)
        .output()
        .map_err(|e| format!("callgrind_annotate: {e}"))?;
    if !out.status.success() {
        return Err(format!(
            "callgrind_annotate {}: {}",
            profile.display(),
            String::from_utf8_lossy(&out.stderr).trim()
        ));
    }
    Ok(parse_annotate(&String::from_utf8_lossy(&out.stdout), requests))
}

/// The function lines of callgrind_annotate's output
/// (`1,234,567 (12.34%)  file:function [object]`), per request.
pub(super) fn parse_annotate(text: &str, requests: usize) -> Vec<Function> {
    let mut out = Vec::new();
    for line in text.lines() {
        let line = line.trim();
        let Some((count, rest)) = line.split_once(' ') else {
            continue;
        };
        let Ok(count) = count.replace(',', "").parse::<u64>() else {
            continue;
        };
        let rest = rest.trim_start();
        // The percentage, when callgrind_annotate prints one.
        let rest = match rest.strip_prefix('(') {
            Some(r) => r.split_once(')').map_or(r, |(_, after)| after).trim_start(),
            None => rest,
        };
        if rest.is_empty() || rest.starts_with("PROGRAM TOTALS") {
            continue;
        }
        let (location, object) = match rest.rsplit_once(" [") {
            Some((l, o)) => (l, o.trim_end_matches(']').to_string()),
            None => (rest, String::new()),
        };
        let name = location.split_once(':').map_or(location, |(_, f)| f).to_string();
        out.push(Function {
            name,
            object,
            inclusive: count as f64 / requests.max(1) as f64,
        });
    }
    out
}

/// The counts to make: F0, F1, F2 and R in both modes, the timed variants
/// and the chains' steps with one token repeated. `docs` are the parsed
/// bootstraps by id, `reference_port` R's listener port.
pub(super) fn counts(
    docs: &BTreeMap<String, Value>,
    timed_variants: &[String],
    reference_port: &str,
) -> Result<Vec<Count>, String> {
    let mut out = Vec::new();
    let listener = |id: &str| (id == R).then(|| reference_port.to_string());
    for id in [F0, F1, F2, R] {
        let Some(doc) = docs.get(id) else { continue };
        for mode in Mode::ALL {
            out.push(Count {
                id: id.to_string(),
                mode,
                config: doc.clone(),
                listener_port: listener(id),
                // The native module's functions have names (the section's last table).
                profile: mode == Mode::Repeated && id == F2,
            });
        }
    }
    let mut variants: Vec<String> = timed_variants.to_vec();
    for (base, chain, _) in CHAINS {
        if docs.contains_key(base) {
            for n in 1..=chain.len() {
                let id = variant_id(base, &chain[..n]);
                if !variants.contains(&id) {
                    variants.push(id);
                }
            }
        }
    }
    for id in variants {
        let (base, parts) = parse_id(&id).ok_or_else(|| format!("bug: variant {id}"))?;
        let doc = docs.get(base).ok_or_else(|| format!("bug: no {base} for {id}"))?;
        out.push(Count {
            id: id.clone(),
            mode: Mode::Repeated,
            config: variant(doc, &parts)?,
            listener_port: listener(base),
            profile: false,
        });
    }
    Ok(out)
}

/// ns per instruction in `mode`: F0's CPU µs ÷ F0's instructions.
pub(super) fn ns_per_instruction(counted: &Counted, f0_cpu_us: Option<f64>, mode: Mode) -> Option<f64> {
    Some(f0_cpu_us? * 1000.0 / counted.get(F0, mode)?)
}

fn thousands(x: f64) -> String {
    super::thousands(x.round().max(0.0) as usize)
}

fn signed_thousands(x: f64) -> String {
    let s = thousands(x.abs());
    if x < 0.0 {
        format!("−{s}")
    } else {
        format!("+{s}")
    }
}

fn us(ir: f64, ns: Option<f64>) -> String {
    ns.map_or_else(
        || "n/a".into(),
        |ns| format!("{:+.1}", ir * ns / 1000.0).replace('-', "−"),
    )
}

/// The native module's functions worth a line in F2's profile, with what
/// they are (the profile has their names: the module is not stripped).
const NAMED: [(&str, &str); 5] = [
    (
        "envoy_dynamic_module_on_http_filter_request_headers",
        "the module's request-headers hook: jwt_scopes and the guard, with every Envoy callback they make",
    ),
    (
        "jwt_scopes_core::request::handle_request",
        "jwt_scopes' request: strip client headers, read the claims, emit the identity headers",
    ),
    (
        "<jwt_scopes_native::NativeHost as jwt_scopes_core::request::Host>::verified_claims",
        "the verified payload: jwt_authn's metadata keys, its payload header, base64url decoding",
    ),
    (
        "jwt_scopes_core::mapping::map_payload_json",
        "the payload's JSON parsed and mapped to headers",
    ),
    (
        "<jwt_scopes_native::NativeHost as jwt_scopes_core::request::Host>::request_header_names",
        "the request's header names (to strip clients' `x-` headers)",
    ),
];

fn cell(x: Option<String>) -> String {
    x.unwrap_or_else(|| "n/a".into())
}

/// The report's section: "Where the added µs go". `f0_cpu` is F0's median
/// CPU µs/request in a mode, `timed` a configuration's median addition over
/// F0 (both None when nothing was timed).
pub(super) fn section(
    out: &mut String,
    counted: &Counted,
    f0_cpu: &dyn Fn(Mode) -> Option<f64>,
    timed: &dyn Fn(&str, Mode) -> Option<f64>,
) {
    let _ = writeln!(out, "\n## Where the added µs go (instructions, callgrind)\n");
    let _ = writeln!(
        out,
        "Counted by valgrind's callgrind as `make bench` counts (bench/src/instructions.rs; this part: \
         bench/src/path/attribution.rs), after the timed rounds: each configuration again in its own Envoy under \
         callgrind, with the same bootstrap, environment and requests, its listener on a free port; after {} \
         warm-up requests (with 1,000 tokens, one pass over them) the counts are zeroed, {} requests go over one \
         keep-alive connection (the rotation goes on where the warm-up left it), and the instructions of all of \
         Envoy's threads are divided by their number. µs are instructions × F0's ns per instruction in the same \
         token mode (F0's median CPU µs ÷ F0's instructions), as `make bench` converts at A1's rate.\n",
        instructions::WARMUP_REQUESTS,
        super::thousands(counted.requests)
    );
    let _ = writeln!(
        out,
        "| configuration | tokens | instructions/request | over F0 | over F0, µs at F0's rate | over F0, µs timed (median) |"
    );
    let _ = writeln!(out, "|---|---|---:|---:|---:|---:|");
    for id in [F0, F1, F2, R] {
        for mode in Mode::ALL {
            let Some(ir) = counted.get(id, mode) else { continue };
            let ns = ns_per_instruction(counted, f0_cpu(mode), mode);
            let over = counted.get(F0, mode).map(|f0| ir - f0);
            let (over_ir, over_us, over_timed) = if id == F0 {
                (
                    String::new(),
                    cell(ns.map(|ns| format!("({ns:.3} ns per instruction)"))),
                    String::new(),
                )
            } else {
                (
                    cell(over.map(signed_thousands)),
                    cell(over.map(|o| us(o, ns))),
                    cell(timed(id, mode).map(|t| format!("{t:+.1}"))),
                )
            };
            let _ = writeln!(
                out,
                "| {id} | {} | {} | {over_ir} | {over_us} | {over_timed} |",
                mode.short(),
                thousands(ir)
            );
        }
    }
    let ratio = |a: &str, b: &str, mode: Mode| -> Option<f64> {
        let f0 = counted.get(F0, mode)?;
        Some((counted.get(a, mode)? - f0) / (counted.get(b, mode)? - f0))
    };
    let _ = writeln!(
        out,
        "\nThe targets' ratios by instructions (the verdicts above are by CPU time): with 1,000 tokens F1 adds {} of \
         R's (target ≤ 0.5×); with one token F2 adds {} of R's (target ≤ 0.7×) and F1 {} (target ≤ 1×). An \
         instruction of R's Lua (LuaJIT) and of its token verification costs more time than the average one, so R \
         weighs more in time than in instructions.",
        cell(ratio(F1, R, Mode::Rotating).map(|r| format!("{r:.2}×"))),
        cell(ratio(F2, R, Mode::Repeated).map(|r| format!("{r:.2}×"))),
        cell(ratio(F1, R, Mode::Repeated).map(|r| format!("{r:.2}×"))),
    );

    let rep = Mode::Repeated;
    let ns = ns_per_instruction(counted, f0_cpu(rep), rep);
    for (base, chain, rest) in CHAINS {
        let (Some(total), Some(f0)) = (counted.get(base, rep), counted.get(F0, rep)) else {
            continue;
        };
        let _ = writeln!(
            out,
            "\n{base}, {}: its parts taken out one after the other (each step's saving is what the part costs with \
             the steps above it already gone; the steps and the rest add up to {base} over F0):\n",
            rep.name()
        );
        let _ = writeln!(
            out,
            "| part | instructions/request | µs at F0's rate | share of {base} over F0 |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        let added = total - f0;
        let share = |x: f64| format!("{:.0} %", 100.0 * x / added);
        let mut previous = total;
        let mut complete = true;
        for n in 1..=chain.len() {
            let Some(now) = counted.get(&variant_id(base, &chain[..n]), rep) else {
                complete = false;
                break;
            };
            let saved = previous - now;
            let _ = writeln!(
                out,
                "| {} | {} | {} | {} |",
                chain[n - 1].what(),
                signed_thousands(saved),
                us(saved, ns),
                share(saved)
            );
            previous = now;
        }
        if complete {
            let left = previous - f0;
            let _ = writeln!(
                out,
                "| the rest ({} over F0): {rest} | {} | {} | {} |",
                variant_id(base, chain),
                signed_thousands(left),
                us(left, ns),
                share(left)
            );
        }
        let _ = writeln!(
            out,
            "| **{base} over F0** | **{}** | **{}** | 100 % |",
            signed_thousands(added),
            us(added, ns)
        );
    }

    let variants: Vec<(&String, f64)> = counted
        .ir
        .iter()
        .filter(|((id, mode), _)| *mode == rep && id.contains('-'))
        .map(|((id, _), ir)| (id, *ir))
        .filter(|(id, _)| is_timed(id))
        .collect();
    if !variants.is_empty() {
        let _ = writeln!(
            out,
            "\nThe variants of the timed rows, against their configuration ({}):\n",
            rep.name()
        );
        let _ = writeln!(
            out,
            "| variant | instructions/request | against its configuration | µs at F0's rate |"
        );
        let _ = writeln!(out, "|---|---:|---:|---:|");
        for (id, ir) in variants {
            let base = parse_id(id).map(|(b, _)| b).unwrap_or_default();
            let against = counted.get(base, rep).map(|b| ir - b);
            let _ = writeln!(
                out,
                "| {id}: {} | {} | {} | {} |",
                variant_text(id),
                thousands(ir),
                cell(against.map(signed_thousands)),
                cell(against.map(|a| us(a, ns)))
            );
        }
    }

    for (id, functions) in &counted.profiles {
        let lines: Vec<String> = NAMED
            .iter()
            .filter_map(|(name, what)| {
                let f = functions.iter().find(|f| f.name == *name)?;
                Some(format!(
                    "| `{}` | {what} | {} | {} |",
                    name.replace('|', "\\|"),
                    thousands(f.inclusive),
                    us(f.inclusive, ns)
                ))
            })
            .collect();
        if lines.is_empty() {
            continue;
        }
        let _ = writeln!(
            out,
            "\n{id}, {}: the native module's functions in its profile (`callgrind_annotate --inclusive=yes`, \
             instructions of the function and all it calls, per request):\n",
            rep.name()
        );
        let _ = writeln!(
            out,
            "| function | what | inclusive instructions/request | µs at F0's rate |"
        );
        let _ = writeln!(out, "|---|---|---:|---:|");
        for line in lines {
            let _ = writeln!(out, "{line}");
        }
    }

    let _ = writeln!(
        out,
        "\nReading these numbers (the figures in this list were measured once, while this section was built, not by \
         this run):\n\n\
         - A count repeats to within about 0.1 % (one configuration counted 5 times moved by 160 instructions), but any change to a \
         configuration moves it by up to about 2,000 instructions (a no-op change, `max_headers_count` 100 → 101, \
         moved F2 by +1,100; so did taking out `local_reply_config`, which only acts on Envoy's own replies): a step \
         under 2,000 is no cost that can be told apart. The path is part of the work (parsed, normalised, matched \
         against regexes, signed, logged: 6 more characters cost about 1,500 instructions), so a variant's requests \
         have the same path length as its configuration's (bench/src/path.rs `path_id`).\n\
         - Counts are of user space only: the kernel's part (TCP, the log's writes, every system call) is in CPU time, \
         not here. The access log is buffered (Envoy writes it out every 10 s), so its cost is the formatting: about \
         1,200 instructions for a line of one constant field, then 700 to 800 per field (`%START_TIME%` alone, \
         900), with no field much dearer than the others (measured once: the text format of the same fields saves \
         about 1,700; `%PATH(NQ:PATH)%` instead of the `req_without_query` formatter, nothing).\n\
         - The wheel's Envoy is stripped (its symbols are the dynamic-module ABI and the allocator's entry points), \
         so a profile names none of Envoy's own functions (jwt_authn, the access logger, BoringSSL, LuaJIT): the \
         chains above are the attribution, and only the native module's functions can be read off a profile. \
         Envoy's allocator (tcmalloc, unnamed in the profile) is about 15 % of F2's instructions, spread over \
         every part.\n\
         - Background work (timers, stats flushes, DNS refreshes of the clusters) runs under callgrind too: measured \
         idle, it adds 600 to 1,400 instructions per request to a count, about the same for every configuration."
    );
}

/// Whether `id` is one of the timed variants (bench/src/path.rs).
fn is_timed(id: &str) -> bool {
    super::TIMED_VARIANTS
        .iter()
        .any(|(base, without)| variant_id(base, without) == id)
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    /// The shape of a rendered native frontend, reduced to what the parts touch.
    fn frontend() -> Value {
        let upstream = json!({"envoy.extensions.upstreams.http.v3.HttpProtocolOptions": {"http_filters": [
            {"name": "envoy.filters.http.aws_request_signing"},
            {"name": "envoy.filters.http.dynamic_modules", "typed_config": {"filter_name": "sign_guard"}},
            {"name": "envoy.filters.http.upstream_codec"},
        ]}});
        json!({"static_resources": {
            "listeners": [{"name": "frontend", "filter_chains": [{"filters": [{
                "name": "envoy.filters.network.http_connection_manager",
                "typed_config": {
                    "access_log": [{"name": "envoy.access_loggers.stdout"}],
                    "early_header_mutation_extensions": [{"name": "x"}],
                    "route_config": {"virtual_hosts": [{"routes": [
                        {"name": "refuse_method"}, {"name": "refuse_x_amz_query"}, {"match": {"prefix": "/"}},
                    ]}]},
                    "http_filters": [
                        {"name": "envoy.filters.http.jwt_authn", "typed_config": {"providers": {"jwt": {
                            "header_in_metadata": "jwt", "forward_payload_header": "x-jwt-payload-jwt",
                        }}}},
                        {"name": "envoy.filters.http.dynamic_modules", "typed_config": {"filter_name": "jwt_scopes"}},
                        {"name": "envoy.filters.http.router"},
                    ],
                },
            }]}]}],
            "clusters": [
                {"name": "lattice_app1", "typed_extension_protocol_options": upstream.clone()},
                {"name": "readiness", "typed_extension_protocol_options": upstream},
                {"name": "jwks"},
            ],
        }})
    }

    fn hcm_of(doc: &Value) -> &Value {
        &doc["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"]
    }

    #[test]
    fn ids_name_their_base_and_parts() {
        let id = variant_id(F2, &[Part::AccessLog, Part::Guard]);
        assert_eq!(id, "F2-log-guard");
        assert_eq!(parse_id(&id), Some((F2, vec![Part::AccessLog, Part::Guard])));
        assert_eq!(parse_id(F0), Some((F0, vec![])));
        assert_eq!(parse_id("F2-nothing"), None);
        for part in ALL_PARTS {
            assert_eq!(Part::from_key(part.key()), Some(part));
        }
        assert_eq!(variant_text("F2-log"), "F2 without the access log");
        assert_eq!(variant_text("F2-pim"), "F2 with the payload in metadata (as before)");
    }

    #[test]
    fn each_part_goes_and_nothing_else() {
        let doc = frontend();
        let without = variant(&doc, &[Part::AccessLog, Part::EarlyMutation]).unwrap();
        let h = hcm_of(&without);
        assert!(h.get("access_log").is_none() && h.get("early_header_mutation_extensions").is_none());
        assert_eq!(h["http_filters"], hcm_of(&doc)["http_filters"]);

        let without = variant(&doc, &[Part::Guard]).unwrap();
        for cluster in without["static_resources"]["clusters"]
            .as_array()
            .unwrap()
            .iter()
            .take(2)
        {
            let filters = &cluster["typed_extension_protocol_options"]
                ["envoy.extensions.upstreams.http.v3.HttpProtocolOptions"]["http_filters"];
            assert_eq!(filters.as_array().unwrap().len(), 2, "{filters}");
        }

        // jwt_scopes takes the payload header that only it reads along.
        let without = variant(&doc, &[Part::Scopes]).unwrap();
        let filters = hcm_of(&without)["http_filters"].as_array().unwrap();
        assert_eq!(filters.len(), 2);
        assert_eq!(
            filters[0]["typed_config"]["providers"]["jwt"],
            json!({"header_in_metadata": "jwt"})
        );
        let without = variant(&without, &[Part::JwtAuthn, Part::Refusals]).unwrap();
        let h = hcm_of(&without);
        assert_eq!(h["http_filters"], json!([{"name": "envoy.filters.http.router"}]));
        assert_eq!(
            h["route_config"]["virtual_hosts"][0]["routes"],
            json!([{"match": {"prefix": "/"}}])
        );

        // As rendered before: the payload in metadata, under the same key.
        let before = variant(&doc, &[Part::HeaderProof]).unwrap();
        assert_eq!(
            hcm_of(&before)["http_filters"][0]["typed_config"]["providers"]["jwt"],
            json!({"payload_in_metadata": "jwt", "forward_payload_header": "x-jwt-payload-jwt"})
        );
    }

    #[test]
    fn a_part_that_is_not_there_is_an_error() {
        let doc = frontend();
        let without = variant(&doc, &[Part::AccessLog]).unwrap();
        assert!(variant(&without, &[Part::AccessLog]).is_err());
        assert!(variant(&doc, &[Part::LuaStrip]).is_err());
        let before = variant(&doc, &[Part::HeaderProof]).unwrap();
        assert!(variant(&before, &[Part::HeaderProof]).is_err());
        let bare = variant(&doc, &[Part::Guard]).unwrap();
        assert!(variant(&bare, &[Part::Guard]).is_err());
    }

    #[test]
    fn the_reference_loses_its_lua_filters_by_place() {
        let doc = json!({"static_resources": {"listeners": [{"filter_chains": [{"filters": [{
            "name": "envoy.filters.network.http_connection_manager",
            "typed_config": {"http_filters": [
                {"name": "envoy.filters.http.health_check"},
                {"name": "envoy.filters.http.lua", "n": "strip"},
                {"name": "envoy.filters.http.jwt_authn"},
                {"name": "envoy.filters.http.lua", "n": "scopes"},
                {"name": "envoy.filters.http.router"},
            ]},
        }]}]}]}});
        let names = |d: &Value| -> Vec<String> {
            hcm_of(d)["http_filters"]
                .as_array()
                .unwrap()
                .iter()
                .map(|f| f["n"].as_str().or(f["name"].as_str()).unwrap().to_string())
                .collect()
        };
        let strip = variant(&doc, &[Part::LuaStrip]).unwrap();
        assert_eq!(
            names(&strip),
            [
                "envoy.filters.http.health_check",
                "envoy.filters.http.jwt_authn",
                "scopes",
                "envoy.filters.http.router"
            ]
        );
        let all = variant(&doc, CHAINS[2].1).unwrap();
        assert_eq!(
            names(&all),
            ["envoy.filters.http.health_check", "envoy.filters.http.router"]
        );
    }

    #[test]
    fn annotate_lines_are_read_per_request() {
        let text = "--------\nIr                    file:function\n--------\n151,615,767 (100.0%)  PROGRAM TOTALS\n \
                    12,561,528 ( 8.29%)  ???:envoy_dynamic_module_on_http_filter_request_headers [/x/libjwt_scopes_native.so]\n \
                    12,388,810 ( 8.17%)  ???:0x000000000628d840 [???]\n    \
                    345,600 ( 0.23%)  ./stdlib/./stdlib/getenv.c:getenv [/usr/lib/x86_64-linux-gnu/libc.so.6]\n";
        let functions = parse_annotate(text, 300);
        assert_eq!(functions.len(), 3, "{functions:?}");
        assert_eq!(functions[0].name, "envoy_dynamic_module_on_http_filter_request_headers");
        assert_eq!(functions[0].object, "/x/libjwt_scopes_native.so");
        assert!((functions[0].inclusive - 41_871.76).abs() < 0.01);
        assert_eq!(functions[2].name, "getenv");
        assert_eq!(functions[2].inclusive, 1152.0);
    }

    fn counted(pairs: &[(&str, f64)]) -> Counted {
        Counted {
            ir: pairs
                .iter()
                .map(|(id, ir)| ((id.to_string(), Mode::Repeated), *ir))
                .collect(),
            profiles: BTreeMap::new(),
            requests: 1000,
        }
    }

    #[test]
    fn the_chain_and_the_rest_add_up_to_the_whole() {
        let mut pairs = vec![(F0, 300_000.0), (F2, 480_000.0)];
        let chain = CHAINS[0].1;
        let ids: Vec<String> = (1..=chain.len()).map(|n| variant_id(F2, &chain[..n])).collect();
        let values = [470_000.0, 466_000.0, 400_000.0, 350_000.0, 350_000.0, 348_000.0];
        for (id, v) in ids.iter().zip(values) {
            pairs.push((id, v));
        }
        pairs.push(("F2-pim", 513_000.0));
        let c = counted(&pairs);
        let mut out = String::new();
        section(&mut out, &c, &|_| Some(60.0), &|_, _| Some(30.0));
        // F0's rate: 60 µs ÷ 300,000 = 0.2 ns; the log 10,000 → 2.0 µs.
        assert!(out.contains("(0.200 ns per instruction)"), "{out}");
        assert!(out.contains("| +10,000 | +2.0 | 6 % |"), "{out}");
        assert!(out.contains("| +48,000 | +9.6 | 27 % |"), "{out}");
        assert!(out.contains("**+180,000** | **+36.0** | 100 %"), "{out}");
        assert!(
            out.contains("| F2-pim: F2 with the payload in metadata (as before) | 513,000 | +33,000 | +6.6 |"),
            "{out}"
        );
        // No R: no ratio, no chain of its own.
        assert!(out.contains("F2 adds n/a of R's"), "{out}");
        assert!(!out.contains("R, one token repeated: its parts"), "{out}");
    }
}
