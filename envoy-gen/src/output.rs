//! Writing results: all or nothing. A file is replaced atomically (written
//! beside it, then renamed), so a failure never leaves half a config.

use std::io::Write;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

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
