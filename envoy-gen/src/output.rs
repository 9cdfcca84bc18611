//! Writing results: all or nothing. A file is replaced atomically (written
//! beside it, then renamed), so a failure never leaves half a config.

use std::collections::BTreeMap;
use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};

pub fn write_atomic(path: &Path, contents: &str) -> Result<(), String> {
    let dir = match path.parent() {
        Some(d) if !d.as_os_str().is_empty() => d,
        _ => Path::new("."),
    };
    let mut file = tempfile::NamedTempFile::new_in(dir)
        .map_err(|e| format!("{}: cannot create a file in {}: {e}", path.display(), dir.display()))?;
    file.write_all(contents.as_bytes())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    // Temporary files are created 0600; a configuration holds no secret and
    // is often read by an Envoy running as another user.
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(0o644))
        .map_err(|e| format!("{}: {e}", path.display()))?;
    file.persist(path)
        .map_err(|e| format!("{}: {}", path.display(), e.error))?;
    Ok(())
}

/// Documents rendered together into one directory: relative path to text.
pub type Files = BTreeMap<PathBuf, String>;

/// The `.json` files directly in `dir/sub` (relative to `dir`), sorted.
pub fn json_files(dir: &Path, sub: &str) -> Vec<PathBuf> {
    files_with(dir, sub, "json")
}

/// The files with extension `extension` directly in `dir/sub` (relative to
/// `dir`), sorted.
pub fn files_with(dir: &Path, sub: &str, extension: &str) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
        for entry in entries.flatten() {
            let path = entry.path();
            if path.is_file() && path.extension().is_some_and(|e| e == extension) {
                out.push(Path::new(sub).join(entry.file_name()));
            }
        }
    }
    out.sort();
    out
}

/// Writes every file under `dir` (each atomically, creating directories)
/// and removes the `managed` files the rendering no longer produces. The
/// caller has rendered everything first: a rendering problem writes nothing.
pub fn write_files(dir: &Path, files: &Files, managed: &[PathBuf]) -> Result<(), String> {
    for path in files.keys() {
        let target = dir.join(path);
        if let Some(parent) = target.parent() {
            std::fs::create_dir_all(parent).map_err(|e| format!("{}: {e}", parent.display()))?;
        }
    }
    for (path, text) in files {
        write_atomic(&dir.join(path), text)?;
    }
    for stale in managed {
        if !files.contains_key(stale) {
            std::fs::remove_file(dir.join(stale)).map_err(|e| format!("{}: {e}", dir.join(stale).display()))?;
        }
    }
    Ok(())
}

/// What differs between `dir` and `files`, one line per file: changed,
/// missing, or a `managed` file the rendering does not produce (stale).
pub fn drift(dir: &Path, files: &Files, managed: &[PathBuf]) -> Vec<String> {
    let mut out = Vec::new();
    for (path, text) in files {
        match std::fs::read_to_string(dir.join(path)) {
            Ok(existing) if &existing == text => {}
            Ok(_) => out.push(format!("{}: differs from the spec", dir.join(path).display())),
            Err(_) => out.push(format!("{}: missing", dir.join(path).display())),
        }
    }
    for path in managed {
        if !files.contains_key(path) {
            out.push(format!(
                "{}: not rendered from the spec (stale)",
                dir.join(path).display()
            ));
        }
    }
    out
}
