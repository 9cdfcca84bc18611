//! An upstream that answers every request with what it received, as JSON:
//! `{"method", "path", "headers": [[name, value], ...]}` (header values that
//! are not UTF-8 are shown lossily). Serves HTTP/1.1 and HTTP/2 (prior
//! knowledge) on a loopback port until dropped.

use bytes::Bytes;
use http_body_util::Full;
use hyper::body::Incoming;
use hyper::{Request, Response};
use lattice_sim::http_server::{Background, Peer};
use std::net::SocketAddr;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::Arc;

pub struct EchoServer {
    pub addr: SocketAddr,
    served: Arc<AtomicUsize>,
    _server: Background,
}

impl EchoServer {
    pub fn start() -> Result<EchoServer, String> {
        let served = Arc::new(AtomicUsize::new(0));
        let counter = served.clone();
        let server =
            lattice_sim::http_server::spawn("127.0.0.1:0", None, 1, move |_: Peer, request: Request<Incoming>| {
                counter.fetch_add(1, Ordering::SeqCst);
                echo(request)
            })?;
        Ok(EchoServer {
            addr: server.addr,
            served,
            _server: server,
        })
    }

    /// How many requests reached this upstream.
    pub fn requests_served(&self) -> usize {
        self.served.load(Ordering::SeqCst)
    }
}

async fn echo(request: Request<Incoming>) -> Response<Full<Bytes>> {
    let headers: Vec<(String, String)> = request
        .headers()
        .iter()
        .map(|(name, value)| (name.to_string(), String::from_utf8_lossy(value.as_bytes()).into_owned()))
        .collect();
    let body = serde_json::json!({
        "method": request.method().as_str(),
        "path": request.uri().path_and_query().map(|p| p.as_str()).unwrap_or("/"),
        "headers": headers,
    });
    Response::builder()
        .header("content-type", "application/json")
        .body(Full::new(Bytes::from(body.to_string())))
        .unwrap_or_default()
}

/// The headers an echo response reports, as (name, value) pairs.
pub fn echoed_headers(json: &serde_json::Value) -> Vec<(String, String)> {
    json["headers"]
        .as_array()
        .map(|headers| {
            headers
                .iter()
                .map(|h| {
                    (
                        h[0].as_str().unwrap_or_default().to_string(),
                        h[1].as_str().unwrap_or_default().to_string(),
                    )
                })
                .collect()
        })
        .unwrap_or_default()
}
