//! A raw HTTP/1.1 client, and the same requests over HTTP/2.
//!
//! Why HTTP/1.1 by hand: the tests must send what well-behaved client
//! libraries refuse to build (non-UTF-8 header values, duplicate and
//! odd-cased identity headers, underscores, hostile `Connection:` lists,
//! folded lines), byte for byte. One request per connection,
//! `Connection: close`, read to EOF. HTTP/2 goes through hyper's client
//! (h2c with prior knowledge): its framing and HPACK are not what the tests
//! probe, and hyper still sends lower-case and extension methods and `"`
//! in a path as given.

use std::io::{Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::time::Duration;

#[derive(Debug, Clone)]
pub struct Response {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: Vec<u8>,
}

impl Response {
    pub fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    pub fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }

    pub fn json(&self) -> serde_json::Value {
        serde_json::from_slice(&self.body).unwrap_or_else(|e| panic!("response is not JSON ({e}): {}", self.text()))
    }
}

/// A request: method, path and raw header lines (name, value bytes).
#[derive(Debug, Clone)]
pub struct Request {
    pub method: String,
    pub path: String,
    pub headers: Vec<(String, Vec<u8>)>,
}

impl Request {
    pub fn get(path: &str) -> Self {
        Request {
            method: "GET".into(),
            path: path.into(),
            headers: Vec::new(),
        }
    }

    pub fn header(mut self, name: &str, value: impl AsRef<[u8]>) -> Self {
        self.headers.push((name.into(), value.as_ref().to_vec()));
        self
    }

    pub fn bearer(self, token: &str) -> Self {
        self.header("authorization", format!("Bearer {token}"))
    }

    /// Sends the request and reads the whole response.
    pub fn send(&self, addr: impl ToSocketAddrs) -> Result<Response, String> {
        let mut stream = TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
        stream
            .set_read_timeout(Some(Duration::from_secs(30)))
            .map_err(|e| e.to_string())?;
        stream
            .write_all(&self.to_bytes("localhost"))
            .map_err(|e| format!("write: {e}"))?;
        let mut raw = Vec::new();
        stream.read_to_end(&mut raw).map_err(|e| format!("read: {e}"))?;
        parse_response(&raw)
    }

    /// The request as HTTP/1.1 bytes, with `host` (unless the request sets
    /// its own `host` header) and `connection: close`.
    pub fn to_bytes(&self, host: &str) -> Vec<u8> {
        let has_host = self.headers.iter().any(|(n, _)| n.eq_ignore_ascii_case("host"));
        let host_line = if has_host {
            String::new()
        } else {
            format!("host: {host}\r\n")
        };
        let mut bytes = format!(
            "{} {} HTTP/1.1\r\n{host_line}connection: close\r\n",
            self.method, self.path
        )
        .into_bytes();
        for (name, value) in &self.headers {
            bytes.extend_from_slice(name.as_bytes());
            bytes.extend_from_slice(b": ");
            bytes.extend_from_slice(value);
            bytes.extend_from_slice(b"\r\n");
        }
        bytes.extend_from_slice(b"\r\n");
        bytes
    }
}

/// Sends `request` over HTTP/2 with prior knowledge (h2c) on a new
/// connection and reads the whole response. A `host` header in the request
/// becomes the `:authority` (default `localhost`).
pub fn send_h2(addr: impl ToSocketAddrs, request: &Request) -> Result<Response, String> {
    use http_body_util::{BodyExt, Empty};
    use hyper_util::rt::{TokioExecutor, TokioIo};
    let addr = addr
        .to_socket_addrs()
        .map_err(|e| e.to_string())?
        .next()
        .ok_or("no address")?;
    let method = hyper::Method::from_bytes(request.method.as_bytes()).map_err(|e| format!("method: {e}"))?;
    let authority = request
        .headers
        .iter()
        .find(|(n, _)| n.eq_ignore_ascii_case("host"))
        .map_or("localhost".to_string(), |(_, v)| {
            String::from_utf8_lossy(v).into_owned()
        });
    let mut builder = hyper::Request::builder()
        .method(method)
        .uri(format!("http://{authority}{}", request.path));
    for (name, value) in request.headers.iter().filter(|(n, _)| !n.eq_ignore_ascii_case("host")) {
        builder = builder.header(name.as_str(), value.as_slice());
    }
    let outgoing = builder
        .body(Empty::<bytes::Bytes>::new())
        .map_err(|e| format!("request: {e}"))?;
    let runtime = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .map_err(|e| e.to_string())?;
    runtime.block_on(async move {
        let exchange = async {
            let tcp = tokio::net::TcpStream::connect(addr)
                .await
                .map_err(|e| format!("connect: {e}"))?;
            let (mut sender, connection) =
                hyper::client::conn::http2::handshake(TokioExecutor::new(), TokioIo::new(tcp))
                    .await
                    .map_err(|e| format!("h2 handshake: {e}"))?;
            let driver = tokio::spawn(connection);
            let response = sender.send_request(outgoing).await.map_err(|e| format!("h2: {e}"));
            let result = match response {
                Ok(response) => {
                    let (parts, body) = response.into_parts();
                    let body = body.collect().await.map_err(|e| format!("h2 body: {e}"))?.to_bytes();
                    Ok(Response {
                        status: parts.status.as_u16(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), String::from_utf8_lossy(v.as_bytes()).into_owned()))
                            .collect(),
                        body: body.to_vec(),
                    })
                }
                Err(e) => Err(e),
            };
            driver.abort();
            result
        };
        tokio::time::timeout(Duration::from_secs(30), exchange)
            .await
            .map_err(|_| "h2: no answer in 30 s".to_string())?
    })
}

/// GET `path` from `addr`.
pub fn get(addr: impl ToSocketAddrs, path: &str) -> Result<Response, String> {
    Request::get(path).send(addr)
}

pub(crate) fn parse_response(raw: &[u8]) -> Result<Response, String> {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .ok_or_else(|| format!("no end of headers in {:?}", String::from_utf8_lossy(raw)))?;
    let head = String::from_utf8_lossy(&raw[..split]);
    let mut lines = head.split("\r\n");
    let status_line = lines.next().unwrap_or_default();
    let status = status_line
        .split(' ')
        .nth(1)
        .and_then(|s| s.parse().ok())
        .ok_or_else(|| format!("bad status line {status_line:?}"))?;
    let headers: Vec<(String, String)> = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().to_string()))
        .collect();
    let rest = &raw[split + 4..];
    let chunked = headers
        .iter()
        .any(|(n, v)| n == "transfer-encoding" && v.eq_ignore_ascii_case("chunked"));
    let body = if chunked { dechunk(rest)? } else { rest.to_vec() };
    Ok(Response { status, headers, body })
}

fn dechunk(mut rest: &[u8]) -> Result<Vec<u8>, String> {
    let mut body = Vec::new();
    loop {
        let line_end = rest.windows(2).position(|w| w == b"\r\n").ok_or("bad chunk")?;
        let size_text = String::from_utf8_lossy(&rest[..line_end]);
        let size = usize::from_str_radix(size_text.split(';').next().unwrap_or("").trim(), 16)
            .map_err(|e| format!("bad chunk size {size_text:?}: {e}"))?;
        rest = &rest[line_end + 2..];
        if size == 0 {
            return Ok(body);
        }
        body.extend_from_slice(rest.get(..size).ok_or("short chunk")?);
        rest = rest.get(size + 2..).ok_or("short chunk")?;
    }
}
