//! A test identity provider over HTTPS: real keys, a JWKS endpoint behind
//! a certificate from a test CA (as a real IdP's would be), and tokens whose
//! `iss` is the endpoint's URL.

use crate::jwt::{Alg, Issuer};
use crate::tls::{Received, TestCa, TlsServer};
use serde_json::{json, Value};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub const JWKS_PATH: &str = "/.well-known/jwks.json";

pub struct TlsIdp {
    pub issuer: Issuer,
    /// `https://localhost:<port>`, the `iss` of its tokens.
    pub url: String,
    pub audience: String,
    fetches: Arc<AtomicUsize>,
    _server: TlsServer,
}

impl TlsIdp {
    /// Serves the JWKS at `JWKS_PATH` (or 503 there when `down`).
    pub fn start(ca: &TestCa, audience: &str, down: bool) -> TlsIdp {
        let issuer = Issuer::new();
        let jwks = issuer.jwks();
        let fetches = Arc::new(AtomicUsize::new(0));
        let counter = fetches.clone();
        let server = TlsServer::start(
            &ca.leaf(&["localhost"]),
            Arc::new(move |r: &Received| {
                counter.fetch_add(1, Ordering::SeqCst);
                match (r.path == JWKS_PATH, down) {
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
            _server: server,
        }
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
