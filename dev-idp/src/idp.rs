//! A test identity provider over HTTPS: real keys, a JWKS endpoint behind
//! a certificate from a test CA (as a real IdP's would be), and tokens whose
//! `iss` is the endpoint's URL. `IdpServer` publishes keys that live
//! elsewhere (the dev-idp binary's directory).

use crate::jwt::{Alg, Issuer};
use crate::tls::{Leaf, Received, TestCa, TlsServer};
use serde_json::{json, Value};
use std::net::{Ipv6Addr, SocketAddr};
use std::path::Path;
use std::process::Child;
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, OnceLock};
use std::time::{Duration, Instant};

pub const JWKS_PATH: &str = "/.well-known/jwks.json";
pub const DISCOVERY_PATH: &str = "/.well-known/openid-configuration";

pub struct TlsIdp {
    pub issuer: Issuer,
    /// `https://localhost:<port>`, the `iss` of its tokens.
    pub url: String,
    pub audience: String,
    fetches: Arc<AtomicUsize>,
    down: Arc<AtomicBool>,
    _server: TlsServer,
}

impl TlsIdp {
    /// Serves the JWKS at `JWKS_PATH` (or 503 there while `down`, see `set_down`).
    pub fn start(ca: &TestCa, audience: &str, down: bool) -> TlsIdp {
        let issuer = Issuer::new();
        let jwks = issuer.jwks();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let down = Arc::new(AtomicBool::new(down));
        let is_down = down.clone();
        let server = TlsServer::start(
            &ca.leaf(&["localhost"]),
            Arc::new(move |r: &Received| {
                counter.fetch_add(1, Ordering::SeqCst);
                match (r.path == JWKS_PATH, is_down.load(Ordering::SeqCst)) {
                    (true, false) => (200, jwks.clone()),
                    (true, true) => (503, "{}".into()),
                    (false, _) => (404, "{}".into()),
                }
            }),
        )
        .expect("JWKS server");
        TlsIdp {
            url: format!("https://localhost:{}", server.addr.port()),
            issuer,
            audience: audience.into(),
            fetches,
            down,
            _server: server,
        }
    }

    /// From now on, the JWKS endpoint answers 503 (`true`) or the keys.
    pub fn set_down(&self, down: bool) {
        self.down.store(down, Ordering::SeqCst);
    }

    pub fn jwks_uri(&self) -> String {
        format!("{}{JWKS_PATH}", self.url)
    }

    /// How many times the JWKS endpoint was asked.
    pub fn fetches(&self) -> usize {
        self.fetches.load(Ordering::SeqCst)
    }

    /// An ES256 token from this IdP for its audience, with `claims` added.
    pub fn token(&self, claims: Value) -> String {
        let mut claims = claims;
        claims["iss"] = json!(self.url);
        claims["aud"] = json!(self.audience);
        self.issuer.token(Alg::ES256, claims)
    }
}

/// An IdP's HTTPS front for keys kept elsewhere: the JWKS at `JWKS_PATH`
/// and, at `DISCOVERY_PATH`, an OpenID discovery document with the issuer
/// and the JWKS URL (`https://<host>:<bound port>/.well-known/jwks.json`).
/// Stopped when dropped.
pub struct IdpServer {
    pub addr: SocketAddr,
    pub jwks_uri: String,
    server: TlsServer,
}

impl IdpServer {
    /// Serves `jwks` on `listen` (`ADDR:PORT`, port 0 picks one) with the
    /// certificate `leaf`, which must name `host`.
    pub fn start(listen: &str, leaf: &Leaf, host: &str, issuer: &str, jwks: String) -> Result<IdpServer, String> {
        // The discovery document names the bound port, known only once listening.
        let discovery = Arc::new(OnceLock::<String>::new());
        let published = discovery.clone();
        let server = TlsServer::start_on(
            listen,
            leaf,
            Arc::new(move |r: &Received| match r.path.as_str() {
                JWKS_PATH => (200, jwks.clone()),
                DISCOVERY_PATH => published.get().map_or((503, "{}".into()), |d| (200, d.clone())),
                _ => (404, "{}".into()),
            }),
        )?;
        let url_host = match host.parse::<Ipv6Addr>() {
            Ok(_) => format!("[{host}]"),
            Err(_) => host.to_string(),
        };
        let jwks_uri = format!("https://{url_host}:{}{JWKS_PATH}", server.addr.port());
        discovery
            .set(json!({"issuer": issuer, "jwks_uri": jwks_uri}).to_string())
            .map_err(|_| "bug: the discovery document was set twice".to_string())?;
        Ok(IdpServer {
            addr: server.addr,
            jwks_uri,
            server,
        })
    }

    /// Blocks until the server stops.
    pub fn wait(self) {
        self.server.wait()
    }
}

/// Waits (up to 20 s) for a server started with `--port-file` to write the
/// port it bound; fails early if the process exits.
pub fn wait_for_port_file(path: &Path, child: &mut Child) -> Result<u16, String> {
    let deadline = Instant::now() + Duration::from_secs(20);
    loop {
        if let Some(port) = std::fs::read_to_string(path).ok().and_then(|p| p.trim().parse().ok()) {
            return Ok(port);
        }
        if let Ok(Some(status)) = child.try_wait() {
            return Err(format!("exited with {status} before listening"));
        }
        if Instant::now() > deadline {
            return Err(format!("wrote no port to {} in time", path.display()));
        }
        std::thread::sleep(Duration::from_millis(50));
    }
}
