//! One filter deployment for a test: an echo upstream, a JWT issuer, and
//! the real Envoy with jwt_authn and the filter. Dropping it stops Envoy
//! first, then the upstream.

use crate::echo::{echoed_headers, EchoServer};
use crate::envoy::Envoy;
use crate::frontend::{Build, Frontend};
use crate::http::{Request, Response};
use crate::jwt::{Alg, Issuer};
use serde_json::Value;

pub struct Setup {
    pub issuer: Issuer,
    // Field order is drop order: Envoy stops before its upstream.
    pub envoy: Envoy,
    pub echo: EchoServer,
}

impl Setup {
    /// Starts everything; `plugin_config` None gives the filter no configuration.
    pub fn new(plugin_config: Option<Value>) -> Setup {
        let issuer = Issuer::new();
        let echo = EchoServer::start().expect("echo upstream");
        let build = Build::under_test();
        let config = Frontend {
            jwks: &issuer.jwks(),
            build: &build,
            plugin_config,
            upstream_port: echo.addr.port(),
        }
        .render();
        let envoy = Envoy::start(&config).unwrap_or_else(|e| panic!("{e}"));
        Setup { issuer, envoy, echo }
    }

    pub fn send(&self, request: Request) -> Response {
        request
            .send(("127.0.0.1", self.envoy.port("ingress")))
            .unwrap_or_else(|e| panic!("request failed: {e}"))
    }

    /// Sends a request that must reach the upstream; returns the headers it saw.
    pub fn upstream_headers(&self, request: Request) -> Vec<(String, String)> {
        let response = self.send(request);
        assert_eq!(response.status, 200, "not forwarded: {}", response.text());
        echoed_headers(&response.json())
    }

    /// An RS256 token from the trusted issuer.
    pub fn token(&self, claims: Value) -> String {
        self.issuer.token(Alg::RS256, claims)
    }
}

/// The identity-related headers among `headers` (any spelling), sorted.
pub fn identity(headers: &[(String, String)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = headers
        .iter()
        .filter(|(n, _)| {
            let n = n.to_ascii_lowercase();
            n.starts_with("x-jwt") || n.starts_with("x_jwt") || n.starts_with("x-amz") || n == "authorization"
        })
        .cloned()
        .collect();
    out.sort();
    out
}

/// Owned, sorted (name, value) pairs.
pub fn pairs(list: &[(&str, &str)]) -> Vec<(String, String)> {
    let mut out: Vec<_> = list.iter().map(|(n, v)| (n.to_string(), v.to_string())).collect();
    out.sort();
    out
}
