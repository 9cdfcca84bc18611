//! `envoy-gen validate FILE`: the real Envoy's opinion of a configuration,
//! on any machine.
//!
//! A configuration rendered for another host names files where they are
//! there: `/etc/envoy/jwt_scopes.wasm` in the image, CA bundles,
//! certificates. `--map FROM=TO` says where such files are here; the filter
//! the image installs is read from the local build (`make build`) unless
//! this machine has it at its path. Every file a `filename` field names
//! (Envoy's data sources: Wasm code, CA bundles, certificates and keys)
//! must exist, after mapping, before Envoy runs: each missing one is
//! reported with the field that names it. Envoy checks a copy with the
//! mapped paths in a temporary directory; the user's file is never written.
//!
//! Envoy runs with no AWS credentials in its environment and in a network
//! namespace of its own: its validation sends a DNS query for every
//! LOGICAL_DNS cluster's host (measured on 1.40 with strace), and nothing
//! may leave the machine. Where no namespace can be made, it runs only with
//! `--allow-dns`.

use crate::envoy::{find_command, find_envoy, in_workspace, LOCAL_WASM};
use crate::model::{Problem, DEFAULT_WASM};
use crate::spec::Origin;
use crate::{describe, yaml};
use std::collections::BTreeMap;
use std::ffi::OsString;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::str::FromStr;

/// `envoy-gen validate`'s command line.
#[derive(Debug, clap::Args)]
pub struct ValidateArgs {
    /// The Envoy configuration to check (YAML or JSON); it is never modified.
    pub file: PathBuf,
    /// The Envoy binary (default: $ENVOY_BIN, the nearest ./.venv/bin/envoy, then `envoy` on PATH).
    #[arg(long, value_name = "PATH")]
    pub envoy: Option<PathBuf>,
    /// Read the files the configuration names at FROM (a file, or a directory and everything
    /// under it) from TO on this machine; repeat for several (the longest FROM wins).
    #[arg(long = "map", value_name = "FROM=TO")]
    pub maps: Vec<PathMap>,
    /// Run Envoy even where it cannot have a network namespace of its own (macOS, a container
    /// without the privilege): its validation then sends DNS queries for the clusters' hosts.
    #[arg(long)]
    pub allow_dns: bool,
}

/// `--map FROM=TO`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PathMap {
    pub from: PathBuf,
    pub to: PathBuf,
}

impl FromStr for PathMap {
    type Err = String;

    fn from_str(s: &str) -> Result<PathMap, String> {
        match s.split_once('=') {
            Some((from, to)) if !from.is_empty() && !to.is_empty() => Ok(PathMap {
                from: PathBuf::from(from),
                to: PathBuf::from(to),
            }),
            _ => Err("expected FROM=TO, two paths (e.g. /etc/envoy=./build)".into()),
        }
    }
}

impl PathMap {
    /// Where `path` is under this map, if FROM covers it (whole components).
    fn apply(&self, path: &Path) -> Option<PathBuf> {
        let rest = path.strip_prefix(&self.from).ok()?;
        Some(if rest.as_os_str().is_empty() {
            self.to.clone()
        } else {
            self.to.join(rest)
        })
    }
}

/// A file the configuration names.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Reference {
    /// The field naming it (`static_resources.clusters[app1].….filename`).
    field: String,
    line: u32,
    column: u32,
    /// The path as written.
    path: String,
    /// Where the value is written in the configuration.
    source: Option<std::ops::Range<usize>>,
}

/// Every `filename` field with a text value, in document order. List items
/// with a `name` are shown by it (`clusters[lattice_app1]`).
fn references(root: &yaml::Node) -> Vec<Reference> {
    fn walk(node: &yaml::Node, field: &str, out: &mut Vec<Reference>) {
        for (key, value) in node.entries() {
            let Some(key) = key.scalar() else { continue };
            let path = if field.is_empty() {
                key.to_string()
            } else {
                format!("{field}.{key}")
            };
            match value.scalar() {
                Some(text) if key == "filename" => out.push(Reference {
                    field: path,
                    line: value.line(),
                    column: value.column(),
                    path: text.to_string(),
                    source: value.source(),
                }),
                _ => walk(value, &path, out),
            }
        }
        for (i, item) in node.items().iter().enumerate() {
            let name = item
                .entries()
                .iter()
                .find(|(k, _)| k.scalar() == Some("name"))
                .and_then(|(_, v)| v.scalar());
            let path = match name {
                Some(name) => format!("{field}[{name}]"),
                None => format!("{field}[{i}]"),
            };
            walk(item, &path, out);
        }
    }
    let mut out = Vec::new();
    walk(root, "", &mut out);
    out
}

/// Where each named file is read from on this machine: the user's maps
/// (the longest FROM wins), else the path itself if it exists, else the
/// project's defaults. `None`: the path as written.
fn resolve(path: &Path, maps: &[PathMap], defaults: &[PathMap], exists: impl Fn(&Path) -> bool) -> Option<PathBuf> {
    let longest = |maps: &[PathMap]| {
        maps.iter()
            .filter_map(|m| m.apply(path).map(|to| (m.from.components().count(), to)))
            .max_by_key(|(len, _)| *len)
            .map(|(_, to)| to)
    };
    if let Some(to) = longest(maps) {
        return Some(to);
    }
    if exists(path) {
        return None;
    }
    longest(defaults)
}

/// The project's own install prefix: the image puts the filter at
/// `DEFAULT_WASM`; here it is the local build, when there is one.
fn default_maps(cwd: &Path) -> Vec<PathMap> {
    in_workspace(cwd, LOCAL_WASM)
        .map(|to| PathMap {
            from: PathBuf::from(DEFAULT_WASM),
            to,
        })
        .into_iter()
        .collect()
}

pub fn run(args: &ValidateArgs) -> Result<(), String> {
    let file = &args.file;
    let shown = file.display();
    let text = match std::fs::read_to_string(file) {
        Ok(text) => text,
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => return Err(format!("error: {shown}: no such file\n")),
        Err(e) => return Err(format!("error: {shown}: {e}\n")),
    };
    let root = yaml::parse(&text).map_err(|e| match e.line {
        Some((line, column)) => format!(
            "error: {shown}:{line}:{column}: {} (envoy-gen validate reads YAML and JSON configurations)\n",
            e.message
        ),
        None => format!("error: {shown}: {}\n", e.message),
    })?;
    let cwd = std::env::current_dir().map_err(|e| format!("error: the current directory: {e}\n"))?;
    let defaults = default_maps(&cwd);

    // Each named file, where it is read from here; the missing ones.
    let references = references(&root);
    let mut rewrites: BTreeMap<usize, PathBuf> = BTreeMap::new();
    let mut missing: BTreeMap<&str, Vec<Missing>> = BTreeMap::new();
    for (i, reference) in references.iter().enumerate() {
        let mapped = resolve(Path::new(&reference.path), &args.maps, &defaults, |p| {
            cwd.join(p).exists()
        });
        let local = cwd.join(mapped.as_deref().unwrap_or(Path::new(&reference.path)));
        let why = match std::fs::metadata(&local) {
            Ok(meta) if meta.is_file() => None,
            Ok(_) => Some("not a file"),
            Err(_) => Some("no such file"),
        };
        match why {
            Some(why) => missing
                .entry(&reference.path)
                .or_default()
                .push(Missing { reference, mapped, why }),
            None if mapped.is_some() => {
                rewrites.insert(i, local);
            }
            None => {}
        }
    }
    if !missing.is_empty() {
        return Err(missing_report(file, &text, &missing));
    }

    let copy = rewritten(&text, &references, &rewrites).map_err(|problems| {
        let mut out = describe(&problems, Some((file, &text)));
        out.push_str("error: write each of these paths as a plain or quoted string, or give its file at that path\n");
        out
    })?;
    let envoy = find_envoy(args.envoy.as_deref()).map_err(|e| format!("error: {e}\n"))?;
    let isolation = network_namespace(args.allow_dns)?;
    let dir = tempfile::tempdir().map_err(|e| format!("error: a temporary directory: {e}\n"))?;
    let name = file.file_name().unwrap_or(std::ffi::OsStr::new("envoy.yaml"));
    let copy_path = dir.path().join(name);
    std::fs::write(&copy_path, copy).map_err(|e| format!("error: {}: {e}\n", copy_path.display()))?;

    let mut command = match isolation.split_first() {
        Some((program, prefix)) => {
            let mut command = Command::new(program);
            command.args(prefix).arg(&envoy);
            command
        }
        None => Command::new(&envoy),
    };
    let output = command
        .args(["--mode", "validate", "--log-level", "error", "--config-path"])
        .arg(&copy_path)
        // Validation must not find AWS credentials, nor look for them
        // anywhere real.
        .env_clear()
        .env("PATH", "/usr/bin:/bin")
        .env("AWS_EC2_METADATA_DISABLED", "true")
        .stdin(Stdio::null())
        .output()
        .map_err(|e| format!("error: cannot run {}: {e}\n", envoy.display()))?;
    let log = format!(
        "{}{}",
        String::from_utf8_lossy(&output.stdout),
        String::from_utf8_lossy(&output.stderr)
    );
    // Envoy's verdict is its "configuration '<file>' OK" line (it may exit 0
    // after logging a critical error).
    let ok_line = format!("configuration '{}' OK", copy_path.display());
    let accepted = output.status.success() && log.lines().any(|l| l.trim() == ok_line);
    // Envoy names the copy; the user knows their file.
    let log = log.replace(&copy_path.display().to_string(), &shown.to_string());
    if !accepted {
        return Err(format!("error: {shown}: Envoy refused the configuration:\n{log}"));
    }
    let read_from: BTreeMap<&str, &Path> = rewrites
        .iter()
        .filter_map(|(&i, to)| Some((references.get(i)?.path.as_str(), to.as_path())))
        .collect();
    for (from, to) in read_from {
        println!("{shown}: {from} read from {}", to.display());
    }
    println!("{shown}: OK (Envoy --mode validate)");
    Ok(())
}

/// A named file that is not here.
struct Missing<'a> {
    reference: &'a Reference,
    /// Where it was looked for, when mapped.
    mapped: Option<PathBuf>,
    why: &'static str,
}

/// Every missing file once, at the first field naming it, then a summary.
fn missing_report(file: &Path, text: &str, missing: &BTreeMap<&str, Vec<Missing>>) -> String {
    let problems: Vec<Problem> = missing
        .values()
        .filter_map(|named| {
            let (
                Missing {
                    reference: first,
                    mapped,
                    why,
                },
                others,
            ) = named.split_first()?;
            let mut message = match mapped {
                Some(to) => format!("{} (read from {}): {why}", first.path, to.display()),
                None => format!("{}: {why}", first.path),
            };
            if !others.is_empty() {
                let at: Vec<String> = others
                    .iter()
                    .map(|m| format!("{}:{}", m.reference.line, m.reference.column))
                    .collect();
                message.push_str(&format!(" (also named at {})", at.join(", ")));
            }
            if first.path == DEFAULT_WASM && mapped.is_none() {
                message.push_str(&format!(
                    "; envoy-gen reads it from {LOCAL_WASM} (`make build`) when run in the workspace"
                ));
            }
            Some(Problem {
                origin: Origin::File {
                    line: first.line,
                    column: first.column,
                },
                field: first.field.clone(),
                message,
            })
        })
        .collect();
    let mut out = describe(&problems, Some((file, text)));
    let n = problems.len();
    out.push_str(&format!(
        "error: {n} file{} missing; Envoy was not run: give {} with --map FROM=TO (e.g. --map /etc/envoy=./etc-envoy)\n",
        if n == 1 { "" } else { "s" },
        if n == 1 { "it" } else { "each" },
    ));
    out
}

/// The configuration with each mapped path written out as a JSON string (a
/// YAML double-quoted scalar), everything else byte for byte; read back to
/// make sure each field names what it should and nothing else changed.
fn rewritten(
    text: &str,
    references: &[Reference],
    rewrites: &BTreeMap<usize, PathBuf>,
) -> Result<String, Vec<Problem>> {
    let cannot = |r: &Reference| Problem {
        origin: Origin::File {
            line: r.line,
            column: r.column,
        },
        field: r.field.clone(),
        message: format!(
            "{}: cannot be mapped in a copy (an alias, a merge key or a block scalar)",
            r.path
        ),
    };
    // By start: one edit per position (aliases of one anchor share none).
    let mut edits: BTreeMap<usize, (std::ops::Range<usize>, String)> = BTreeMap::new();
    let mut problems = Vec::new();
    for (&i, to) in rewrites {
        let Some(reference) = references.get(i) else { continue };
        match (reference.source.clone(), to.to_str()) {
            (Some(range), Some(to)) if text.get(range.clone()).is_some() && !edits.contains_key(&range.start) => {
                let quoted = serde_json::Value::String(to.to_string()).to_string();
                edits.insert(range.start, (range, quoted));
            }
            _ => problems.push(cannot(reference)),
        }
    }
    let mut copy = text.to_string();
    for (range, quoted) in edits.values().rev() {
        copy.replace_range(range.clone(), quoted);
    }
    let reread = yaml::parse(&copy).map(|root| self::references(&root));
    match reread {
        Ok(found) if found.len() == references.len() => {
            for (i, (before, after)) in references.iter().zip(&found).enumerate() {
                let expected = rewrites
                    .get(&i)
                    .map_or(before.path.clone(), |to| to.display().to_string());
                if after.path != expected || after.field != before.field {
                    problems.push(cannot(before));
                }
            }
        }
        _ => problems.extend(rewrites.keys().filter_map(|&i| references.get(i)).map(cannot)),
    }
    if problems.is_empty() {
        Ok(copy)
    } else {
        problems.dedup();
        Err(problems)
    }
}

/// The command line that runs Envoy in a network namespace of its own,
/// where only a loopback interface exists (and is down): `unshare --net`
/// where envoy-gen may (as root), else inside a user namespace too. Where
/// neither works, Envoy runs as it is only with `allow_dns`.
fn network_namespace(allow_dns: bool) -> Result<Vec<OsString>, String> {
    let why = match find_command("unshare") {
        None => "unshare is not on PATH".to_string(),
        Some(unshare) => {
            let mut why = String::new();
            for flags in [&["--net"][..], &["--map-root-user", "--net"]] {
                let probe = Command::new(&unshare)
                    .args(flags)
                    .arg("--")
                    .arg(&unshare)
                    .arg("--version")
                    .env_clear()
                    .stdin(Stdio::null())
                    .output();
                match probe {
                    Ok(out) if out.status.success() => {
                        let mut prefix = vec![unshare.into_os_string()];
                        prefix.extend(flags.iter().map(OsString::from));
                        prefix.push("--".into());
                        return Ok(prefix);
                    }
                    Ok(out) => why = String::from_utf8_lossy(&out.stderr).trim().to_string(),
                    Err(e) => why = format!("unshare: {e}"),
                }
            }
            why
        }
    };
    if allow_dns {
        return Ok(Vec::new());
    }
    Err(format!(
        "error: Envoy cannot have a network namespace of its own here ({why}), and its validation sends DNS queries for the clusters' hosts: run envoy-gen validate as root or where user namespaces are allowed, or pass --allow-dns to let those queries reach the system resolver\n"
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn map(s: &str) -> PathMap {
        s.parse().unwrap()
    }

    #[test]
    fn a_map_covers_a_file_or_a_directory_by_whole_components() {
        let m = map("/etc/envoy=build/etc");
        assert_eq!(m.apply(Path::new("/etc/envoy")), Some(PathBuf::from("build/etc")));
        assert_eq!(
            m.apply(Path::new("/etc/envoy/tls/a.pem")),
            Some(PathBuf::from("build/etc/tls/a.pem"))
        );
        assert_eq!(m.apply(Path::new("/etc/envoy-other/a.pem")), None);
        assert_eq!(m.apply(Path::new("/etc")), None);
        assert_eq!(
            "no-equals".parse::<PathMap>(),
            Err("expected FROM=TO, two paths (e.g. /etc/envoy=./build)".to_string())
        );
        assert!("=x".parse::<PathMap>().is_err() && "x=".parse::<PathMap>().is_err());
    }

    #[test]
    fn the_users_maps_then_the_path_itself_then_the_defaults() {
        let maps = [map("/etc=/a"), map("/etc/envoy=/b")];
        let defaults = [map("/etc/envoy/jwt_scopes.wasm=/local/jwt_scopes.wasm")];
        let nothing_exists = |_: &Path| false;
        let everything_exists = |_: &Path| true;
        let wasm = Path::new("/etc/envoy/jwt_scopes.wasm");
        // The longest FROM of the user's maps, even over a default.
        assert_eq!(
            resolve(wasm, &maps, &defaults, nothing_exists),
            Some(PathBuf::from("/b/jwt_scopes.wasm"))
        );
        assert_eq!(
            resolve(Path::new("/etc/x"), &maps, &defaults, nothing_exists),
            Some(PathBuf::from("/a/x"))
        );
        // A default only for a file this machine does not have.
        assert_eq!(
            resolve(wasm, &[], &defaults, nothing_exists),
            Some(PathBuf::from("/local/jwt_scopes.wasm"))
        );
        assert_eq!(resolve(wasm, &[], &defaults, everything_exists), None);
        assert_eq!(resolve(Path::new("/srv/ca.pem"), &[], &defaults, nothing_exists), None);
    }

    #[test]
    fn references_name_their_field_by_list_item_names() {
        let text = "static_resources:\n  clusters:\n  - name: app1\n    transport_socket:\n      typed_config:\n        trusted_ca: {filename: /etc/ssl/ca.pem}\n  - transport_socket: {filename: x.pem}\nfilename: [not, a, path]\n";
        let root = yaml::parse(text).unwrap();
        let found: Vec<(String, String, u32, u32)> = references(&root)
            .into_iter()
            .map(|r| (r.field, r.path, r.line, r.column))
            .collect();
        assert_eq!(
            found,
            [
                (
                    "static_resources.clusters[app1].transport_socket.typed_config.trusted_ca.filename".into(),
                    "/etc/ssl/ca.pem".into(),
                    6,
                    32
                ),
                (
                    "static_resources.clusters[1].transport_socket.filename".into(),
                    "x.pem".into(),
                    7,
                    34
                ),
            ]
        );
    }

    #[test]
    fn a_copy_changes_the_mapped_paths_only_and_refuses_what_it_cannot_map() {
        let text = "a:\n  filename: /etc/envoy/x.wasm   # the filter\nb: {filename: \"/etc/ca.pem\"}\nc:\n  filename: |\n    /etc/block.pem\n";
        let root = yaml::parse(text).unwrap();
        let refs = references(&root);
        let rewrites: BTreeMap<usize, PathBuf> =
            [(0, PathBuf::from("/here/x.wasm")), (1, PathBuf::from("/here/c\"a.pem"))].into();
        assert_eq!(
            rewritten(text, &refs, &rewrites).unwrap(),
            "a:\n  filename: \"/here/x.wasm\"   # the filter\nb: {filename: \"/here/c\\\"a.pem\"}\nc:\n  filename: |\n    /etc/block.pem\n"
        );
        let block: BTreeMap<usize, PathBuf> = [(2, PathBuf::from("/here/block.pem"))].into();
        let problems = rewritten(text, &refs, &block).unwrap_err();
        assert_eq!(problems.len(), 1);
        assert_eq!(problems[0].field, "c.filename");
        assert_eq!(
            problems[0].message,
            "/etc/block.pem\n: cannot be mapped in a copy (an alias, a merge key or a block scalar)"
        );
    }
}
