//! `dev-idp`: an identity provider for local development, run by hand. It
//! keeps an ES256 signing key, a CA and a TLS certificate in one directory,
//! serves the public key as a JWKS over HTTPS (as Envoy's `remote_jwks`
//! wants it), and prints signed access tokens in the styles real IdPs use.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::{Parser, Subcommand, ValueEnum};
use dev_idp::idp::IdpServer;
use dev_idp::jwt::{Alg, Issuer};
use dev_idp::tls::{Leaf, TestCa};
use serde::{Deserialize, Serialize};
use serde_json::{json, Map, Value};
use std::io::Write;
use std::net::{IpAddr, SocketAddr};
use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
use std::path::{Path, PathBuf};
use std::process::ExitCode;
use std::time::Duration;

const DEFAULT_ISSUER: &str = "https://localhost:8444";
/// The port `serve` listens on when the issuer names none.
const DEFAULT_PORT: u16 = 8444;
/// Ten years: `exp` stays far from the limits of the JWT library's clock.
const MAX_TTL_SECONDS: u64 = 10 * 365 * 24 * 3600;

/// The files of a dev-idp directory. Private keys are written 0600.
const SIGNING_KEY: &str = "signing-key.pem";
const CA_CERT: &str = "ca.pem";
const TLS_CERT: &str = "tls-cert.pem";
const TLS_KEY: &str = "tls-key.pem";
const SETTINGS: &str = "idp.json";
const FILES: [&str; 5] = [SIGNING_KEY, CA_CERT, TLS_CERT, TLS_KEY, SETTINGS];

#[derive(Parser)]
#[command(
    name = "dev-idp",
    version,
    about = "An identity provider for local development: an ES256 key, its JWKS over HTTPS, signed access tokens.",
    long_about = "An identity provider for local development: an ES256 key, its JWKS over HTTPS, signed access tokens.\n\n\
        dev-idp init --dir idp                      # keys, CA and TLS certificate; issuer https://localhost:8444\n\
        dev-idp serve --dir idp &                   # JWKS at https://localhost:8444/.well-known/jwks.json\n\
        dev-idp token --dir idp --sub alice --aud api --scope test.all\n\n\
        Point Envoy's jwt_authn at the JWKS URL that serve prints, with the issuer stored in DIR \
        and DIR/ca.pem as the CA that verifies the JWKS server. Not for production: the keys sit \
        unencrypted in DIR."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Create DIR: a new ES256 signing key, a CA (ca.pem: what Envoy's
    /// jwks_ca must trust), a TLS certificate for --host signed by that CA,
    /// and the issuer (idp.json) that serve and token use.
    ///
    /// The CA's private key is not kept: to change the host names, run init
    /// again with --force (which also replaces the signing key).
    Init {
        /// The directory to create (0700) or, with --force, to refill.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// A DNS name or IP address for the TLS certificate; repeat for
        /// several. The first one is the host of the JWKS URL.
        #[arg(long = "host", value_name = "NAME", default_value = "localhost", value_parser = parse_host)]
        hosts: Vec<String>,
        /// The `iss` of the tokens, stored in DIR.
        #[arg(long, value_name = "URL", default_value = DEFAULT_ISSUER, value_parser = parse_issuer)]
        issuer: String,
        /// Replace the keys and certificates of an existing DIR.
        #[arg(long)]
        force: bool,
    },
    /// Serve the JWKS at /.well-known/jwks.json and an OpenID discovery
    /// document at /.well-known/openid-configuration over HTTPS, until
    /// killed. Prints one line with the JWKS URL and the issuer.
    ///
    /// By default it listens on 127.0.0.1 at the port the issuer names
    /// (8444 for the default issuer https://localhost:8444; 8444 when it
    /// names none). Served elsewhere, it warns that the issuer names
    /// another port and keeps the stored issuer: tokens from `token` still
    /// match it.
    Serve {
        /// A directory made by `dev-idp init`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// Address to listen on (port 0 picks one). Loopback unless you
        /// name another address.
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<SocketAddr>,
        /// The issuer to publish instead of the one stored in DIR (give
        /// `token` the same --issuer).
        #[arg(long, value_name = "URL", value_parser = parse_issuer)]
        issuer: Option<String>,
        /// Write the bound port here once listening (for scripts using port 0).
        #[arg(long, value_name = "FILE")]
        port_file: Option<PathBuf>,
    },
    /// Print a signed access token (ES256, `kid` as in the JWKS) with iss,
    /// aud, sub, iat, nbf, exp and the scopes.
    Token {
        /// A directory made by `dev-idp init`.
        #[arg(long, value_name = "DIR")]
        dir: PathBuf,
        /// The `sub` claim.
        #[arg(long, value_name = "SUBJECT")]
        sub: String,
        /// The `aud` claim.
        #[arg(long, value_name = "AUDIENCE")]
        aud: String,
        /// A scope; repeat for several. Without any, the token has no scope claim.
        #[arg(long = "scope", value_name = "SCOPE", value_parser = parse_scope)]
        scopes: Vec<String>,
        /// How the scopes are carried.
        #[arg(long, value_enum, default_value_t = Style::Scope)]
        style: Style,
        /// The `iss` claim instead of the issuer stored in DIR.
        #[arg(long, value_name = "URL", value_parser = parse_issuer)]
        issuer: Option<String>,
        /// Seconds until `exp`.
        #[arg(long, value_name = "SECONDS", default_value_t = 3600,
              value_parser = clap::value_parser!(u64).range(0..=MAX_TTL_SECONDS))]
        ttl: u64,
        /// One more claim, its value as JSON (strings in quotes:
        /// --claim 'tenant="acme"' --claim 'groups=["admins"]'); repeat for several.
        #[arg(long = "claim", value_name = "NAME=JSON", value_parser = parse_claim)]
        claims: Vec<(String, Value)>,
    },
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Style {
    /// `scope`: one space-delimited string (RFC 9068; Cognito, Auth0, Keycloak).
    Scope,
    /// `scp`: a JSON array of strings (Okta).
    Scp,
}

impl Style {
    fn claim(self) -> &'static str {
        match self {
            Style::Scope => "scope",
            Style::Scp => "scp",
        }
    }
}

/// What `init` chose and `serve` and `token` read back: DIR/idp.json.
#[derive(Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
struct Settings {
    issuer: String,
    hosts: Vec<String>,
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<(), String> {
    match cli.command {
        Command::Init {
            dir,
            hosts,
            issuer,
            force,
        } => init(&dir, hosts, issuer, force),
        Command::Serve {
            dir,
            listen,
            issuer,
            port_file,
        } => serve(&dir, listen, issuer, port_file.as_deref()),
        Command::Token {
            dir,
            sub,
            aud,
            scopes,
            style,
            issuer,
            ttl,
            claims,
        } => {
            let (settings, signer) = (load_settings(&dir)?, load_signer(&dir)?);
            let mut payload = Map::new();
            payload.insert("iss".into(), json!(issuer.unwrap_or(settings.issuer)));
            payload.insert("aud".into(), json!(aud));
            payload.insert("sub".into(), json!(sub));
            let scope_claim = (!scopes.is_empty()).then(|| style.claim());
            if let Some(claim) = scope_claim {
                let scopes = match style {
                    Style::Scope => json!(scopes.join(" ")),
                    Style::Scp => json!(scopes),
                };
                payload.insert(claim.into(), scopes);
            }
            for (name, value) in claims {
                if let Some(flag) = flag_setting(&name, scope_claim) {
                    return Err(format!("--claim {name}: `{name}` is set by {flag}"));
                }
                if payload.insert(name.clone(), value).is_some() {
                    return Err(format!("--claim {name}: given more than once"));
                }
            }
            let token = signer.sign(Alg::ES256, payload, Duration::from_secs(ttl))?;
            println!("{token}");
            Ok(())
        }
    }
}

fn init(dir: &Path, hosts: Vec<String>, issuer: String, force: bool) -> Result<(), String> {
    if !force {
        if let Some(existing) = FILES.iter().map(|f| dir.join(f)).find(|path| path.exists()) {
            return Err(format!(
                "{} exists: refusing to replace the keys of an existing dev-idp directory (pass --force)",
                existing.display()
            ));
        }
    }
    std::fs::DirBuilder::new()
        .recursive(true)
        .mode(0o700)
        .create(dir)
        .map_err(|e| format!("{}: {e}", dir.display()))?;
    let signer = Issuer::generate_es256();
    let ca = TestCa::try_new("dev-idp local CA")?;
    let names: Vec<&str> = hosts.iter().map(String::as_str).collect();
    let leaf = ca.try_leaf(&names)?;
    let settings = Settings { issuer, hosts };
    let settings_json = serde_json::to_string_pretty(&settings).map_err(|e| format!("bug: settings to JSON: {e}"))?;
    write_file(&dir.join(SIGNING_KEY), &signer.es256_private_pem()?, 0o600)?;
    write_file(&dir.join(TLS_KEY), &leaf.key_pem, 0o600)?;
    write_file(&dir.join(TLS_CERT), &leaf.cert_pem, 0o644)?;
    write_file(&dir.join(CA_CERT), &ca.pem, 0o644)?;
    write_file(&dir.join(SETTINGS), &format!("{settings_json}\n"), 0o644)?;
    let show = |file: &str| dir.join(file).display().to_string();
    println!(
        "dev-idp: created {}\n  signing key  {} (ES256, kid {})\n  CA           {} (trust it for the JWKS server: jwks_ca)\n  \
         TLS          {} and {}, for {}\n  issuer       {}\nnext: dev-idp serve --dir {}",
        dir.display(),
        show(SIGNING_KEY),
        signer.es256_key_id().unwrap_or_default(),
        show(CA_CERT),
        show(TLS_CERT),
        show(TLS_KEY),
        settings.hosts.join(", "),
        settings.issuer,
        dir.display()
    );
    Ok(())
}

fn serve(
    dir: &Path,
    listen: Option<SocketAddr>,
    issuer: Option<String>,
    port_file: Option<&Path>,
) -> Result<(), String> {
    let settings = load_settings(dir)?;
    let signer = load_signer(dir)?;
    let leaf = Leaf {
        cert_pem: read(&dir.join(TLS_CERT))?,
        key_pem: read(&dir.join(TLS_KEY))?,
    };
    let host = settings
        .hosts
        .first()
        .ok_or_else(|| format!("{}: `hosts` is empty", dir.join(SETTINGS).display()))?;
    let issuer = issuer.unwrap_or(settings.issuer);
    let issuer_port = url_port(&issuer);
    let listen = listen.unwrap_or_else(|| SocketAddr::from(([127, 0, 0, 1], issuer_port.unwrap_or(DEFAULT_PORT))));
    lattice_sim::http_server::tls_config(&leaf.cert_pem, &leaf.key_pem).map_err(|e| {
        let (cert, key) = (dir.join(TLS_CERT), dir.join(TLS_KEY));
        format!("{} with {}: {e}", cert.display(), key.display())
    })?;
    let server = IdpServer::start(&listen.to_string(), &leaf, host, &issuer, signer.jwks())?;
    let port = server.addr.port();
    if let Some(path) = port_file {
        write_file(path, &port.to_string(), 0o644).map_err(|e| format!("--port-file: {e}"))?;
    }
    if let Some(named) = issuer_port.filter(|&named| named != port) {
        eprintln!(
            "dev-idp: warning: serving on port {port}, but the issuer {issuer} names port {named}; \
             tokens keep that issuer (Envoy only compares it with its configured issuer)"
        );
    }
    println!(
        "dev-idp: JWKS at {}  issuer {issuer}  CA {}",
        server.jwks_uri,
        dir.join(CA_CERT).display()
    );
    server.wait();
    Ok(())
}

/// Which flag sets a claim that --claim must not replace.
fn flag_setting(claim: &str, scope_claim: Option<&str>) -> Option<&'static str> {
    match claim {
        "iss" => Some("--issuer (or the issuer stored by init)"),
        "aud" => Some("--aud"),
        "sub" => Some("--sub"),
        "iat" | "nbf" | "exp" => Some("--ttl"),
        _ if scope_claim == Some(claim) => Some("--scope"),
        _ => None,
    }
}

/// The port of an `http(s)://` URL, explicit or the scheme's; None for an
/// issuer that is not such a URL.
fn url_port(url: &str) -> Option<u16> {
    let (rest, default) = if let Some(rest) = url.strip_prefix("https://") {
        (rest, 443)
    } else {
        (url.strip_prefix("http://")?, 80)
    };
    let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
    // An IPv6 literal is bracketed: only a colon after `]` starts the port.
    let after_host = authority.rsplit_once(']').map_or(authority, |(_, after)| after);
    match after_host.rsplit_once(':') {
        Some((_, port)) => port.parse().ok(),
        None => Some(default),
    }
}

fn load_settings(dir: &Path) -> Result<Settings, String> {
    let path = dir.join(SETTINGS);
    serde_json::from_str(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn load_signer(dir: &Path) -> Result<Issuer, String> {
    let path = dir.join(SIGNING_KEY);
    Issuer::from_es256_pem(&read(&path)?).map_err(|e| format!("{}: {e}", path.display()))
}

fn read(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| match e.kind() {
        std::io::ErrorKind::NotFound => format!(
            "{}: not found (run `dev-idp init --dir {}` first)",
            path.display(),
            path.parent().unwrap_or(path).display()
        ),
        _ => format!("{}: {e}", path.display()),
    })
}

/// Writes `contents` to `path` with `mode`, whole or not at all: a key file
/// is never seen half-written or with wider permissions.
fn write_file(path: &Path, contents: &str, mode: u32) -> Result<(), String> {
    let dir = match path.parent() {
        Some(parent) if !parent.as_os_str().is_empty() => parent,
        _ => Path::new("."),
    };
    let fail = |e: &dyn std::fmt::Display| format!("{}: {e}", path.display());
    let mut file = tempfile::NamedTempFile::new_in(dir).map_err(|e| fail(&e))?;
    file.as_file()
        .set_permissions(std::fs::Permissions::from_mode(mode))
        .map_err(|e| fail(&e))?;
    file.write_all(contents.as_bytes()).map_err(|e| fail(&e))?;
    file.persist(path).map_err(|e| fail(&e.error))?;
    Ok(())
}

fn parse_host(host: &str) -> Result<String, String> {
    let dns_name = host.split('.').all(|label| {
        !label.is_empty() && label.len() <= 63 && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
    });
    if host.parse::<IpAddr>().is_ok() || (dns_name && host.len() <= 253) {
        Ok(host.to_string())
    } else {
        Err("not a DNS name or IP address".into())
    }
}

fn parse_issuer(issuer: &str) -> Result<String, String> {
    if issuer.is_empty() || issuer.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("an issuer is a non-empty string without spaces or control characters".into())
    } else {
        Ok(issuer.to_string())
    }
}

fn parse_scope(scope: &str) -> Result<String, String> {
    if scope.is_empty() || scope.chars().any(|c| c.is_whitespace() || c.is_control()) {
        Err("a scope is one non-empty token without spaces (RFC 6749 §3.3); repeat --scope for several".into())
    } else {
        Ok(scope.to_string())
    }
}

fn parse_claim(arg: &str) -> Result<(String, Value), String> {
    let (name, value) = arg
        .split_once('=')
        .ok_or("expected NAME=JSON, e.g. --claim 'groups=[\"admins\"]'")?;
    if name.is_empty() {
        return Err("the claim name is empty".into());
    }
    let value = serde_json::from_str(value)
        .map_err(|e| format!("the value is not JSON ({e}); a string needs quotes: --claim '{name}=\"...\"'"))?;
    Ok((name.to_string(), value))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn url_port_explicit_default_and_ipv6() {
        assert_eq!(url_port("https://localhost:8444"), Some(8444));
        assert_eq!(url_port("https://localhost:8444/tenant?x#y"), Some(8444));
        assert_eq!(url_port("https://idp.example.com/"), Some(443));
        assert_eq!(url_port("http://idp.example.com"), Some(80));
        assert_eq!(url_port("https://[::1]:9000/"), Some(9000));
        assert_eq!(url_port("https://[::1]"), Some(443));
        assert_eq!(url_port("dev-idp"), None);
    }
}
