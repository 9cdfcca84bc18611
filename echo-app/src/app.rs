//! Echo apps like app1/app2/app3 of the AWS reference sample
//! (aws-samples/modern-web-authzn-lattice). Each answers with what it
//! received and whom it was called for (`x-jwt-subject`), and
//! `GET /.../call-to-<target>` calls another app through the app's egress
//! sidecar, as app2 calls app1 in the sample. The sidecar, not the app,
//! signs the call and decides which `x-jwt-*` headers survive; the app hands
//! back exactly what came back, so a refusal by Lattice or by the sidecar
//! reaches the client as it was given.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use bytes::Bytes;
use http_body_util::{BodyExt, Empty, Full};
use hyper::body::Incoming;
use hyper::header::{HeaderValue, CONTENT_TYPE, HOST};
use hyper::{HeaderMap, Method, Request, Response, StatusCode};
use hyper_util::rt::TokioIo;
use lattice_sim::http_server::{Background, Peer};
use std::net::SocketAddr;
use std::sync::{Arc, OnceLock};
use std::time::Duration;

/// `jwt_subject` of a request that carried no `x-jwt-subject`.
pub const NO_IDENTITY: &str = "no user identity";

/// How long a call through the sidecar may take, answer included.
pub const CALL_TIMEOUT: Duration = Duration::from_secs(10);

const CALL_PREFIX: &str = "call-to-";

/// A running app on 127.0.0.1; stopped when dropped.
pub struct App {
    pub addr: SocketAddr,
    sidecar: Arc<OnceLock<SocketAddr>>,
    server: Background,
}

/// What an app is: its name, where its sidecar listens, and the domain its
/// peers' service names end in.
struct Identity {
    name: String,
    /// Set once: at start, or later with `App::set_sidecar` (a sidecar's
    /// address is known only once it runs, and it needs Lattice, which
    /// needs the app).
    sidecar: Arc<OnceLock<SocketAddr>>,
    domain: String,
}

impl App {
    /// Serves app `name` (lower-case letters, digits, hyphens) on an
    /// ephemeral loopback port. Calls to `<target>` go to `sidecar` with
    /// `Host: <target>.<domain>`.
    pub fn start(name: &str, sidecar: Option<SocketAddr>, domain: &str) -> Result<App, String> {
        App::start_on("127.0.0.1:0", name, sidecar, domain)
    }

    /// Like `start`, listening on `listen`: the `echo-app` program, which
    /// a container runs on the address Lattice forwards to.
    pub fn start_on(listen: &str, name: &str, sidecar: Option<SocketAddr>, domain: &str) -> Result<App, String> {
        if !is_app_name(name) {
            return Err(format!(
                "app name `{name}`: use lower-case letters, digits and hyphens (at most 63)"
            ));
        }
        if !is_domain(domain) {
            return Err(format!(
                "domain `{domain}`: use dot-separated labels of letters, digits and hyphens"
            ));
        }
        let sidecar_cell = Arc::new(OnceLock::new());
        if let Some(addr) = sidecar {
            let _ = sidecar_cell.set(addr);
        }
        let app = Arc::new(Identity {
            name: name.to_string(),
            sidecar: sidecar_cell.clone(),
            domain: domain.to_string(),
        });
        let server = lattice_sim::http_server::spawn(listen, None, 1, move |_: Peer, request: Request<Incoming>| {
            let app = app.clone();
            async move { app.answer(request).await }
        })?;
        Ok(App {
            addr: server.addr,
            sidecar: sidecar_cell,
            server,
        })
    }

    /// Blocks until the server stops (for the program).
    pub fn wait(self) {
        self.server.wait();
    }
}

impl App {
    /// Points an app started without a sidecar at one. Returns false (and
    /// changes nothing) when it already has one.
    pub fn set_sidecar(&self, addr: SocketAddr) -> bool {
        self.sidecar.set(addr).is_ok()
    }
}

impl Identity {
    async fn answer(&self, request: Request<Incoming>) -> Response<Full<Bytes>> {
        let last_segment = request.uri().path().rsplit('/').next().unwrap_or_default();
        match last_segment.strip_prefix(CALL_PREFIX) {
            Some(target) if request.method() == Method::GET => self.call(target, request.headers()).await,
            _ => self.echo(&request),
        }
    }

    fn echo(&self, request: &Request<Incoming>) -> Response<Full<Bytes>> {
        let text = |value: &HeaderValue| String::from_utf8_lossy(value.as_bytes()).into_owned();
        let headers: Vec<(String, String)> = request
            .headers()
            .iter()
            .map(|(name, value)| (name.to_string(), text(value)))
            .collect();
        // HTTP/2 carries the host as :authority, which hyper keeps in the URI.
        let hostname = request
            .headers()
            .get(HOST)
            .map(text)
            .or_else(|| request.uri().authority().map(|a| a.to_string()));
        let subjects: Vec<String> = request.headers().get_all("x-jwt-subject").iter().map(text).collect();
        let jwt_subject = if subjects.is_empty() {
            NO_IDENTITY.to_string()
        } else {
            // Joined as node.js does, so a duplicated header is visible.
            subjects.join(", ")
        };
        let body = serde_json::json!({
            "path": request.uri().path_and_query().map_or("/", |p| p.as_str()),
            "method": request.method().as_str(),
            "hostname": hostname,
            "webserver": self.name,
            "jwt_subject": jwt_subject,
            "headers": headers,
        });
        reply(StatusCode::OK, "application/json", body.to_string())
    }

    /// `GET /<target>/called-by-<name>` to the sidecar, answered with the
    /// status, content type and body that came back.
    async fn call(&self, target: &str, incoming: &HeaderMap) -> Response<Full<Bytes>> {
        if !is_app_name(target) {
            return plain(
                StatusCode::BAD_REQUEST,
                format!("cannot call `{target}`: an app name is lower-case letters, digits and hyphens\n"),
            );
        }
        let Some(&sidecar) = self.sidecar.get() else {
            return plain(StatusCode::INTERNAL_SERVER_ERROR, "no sidecar configured\n".into());
        };
        let request = match self.outbound(target, incoming) {
            Ok(request) => request,
            Err(e) => return plain(StatusCode::INTERNAL_SERVER_ERROR, format!("bug: {e}\n")),
        };
        match tokio::time::timeout(CALL_TIMEOUT, exchange(sidecar, request)).await {
            Ok(Ok(response)) => response,
            Ok(Err(e)) => plain(
                StatusCode::BAD_GATEWAY,
                format!("cannot call {target} through the sidecar at {sidecar}: {e}\n"),
            ),
            Err(_) => plain(
                StatusCode::GATEWAY_TIMEOUT,
                format!(
                    "the sidecar at {sidecar} did not answer the call to {target} within {} s\n",
                    CALL_TIMEOUT.as_secs()
                ),
            ),
        }
    }

    fn outbound(&self, target: &str, incoming: &HeaderMap) -> Result<Request<Empty<Bytes>>, String> {
        let mut request = Request::new(Empty::new());
        *request.uri_mut() = format!("/{target}/called-by-{}", self.name)
            .parse()
            .map_err(|e| format!("call path: {e}"))?;
        let host = HeaderValue::from_str(&format!("{target}.{}", self.domain)).map_err(|e| format!("host: {e}"))?;
        let headers = request.headers_mut();
        headers.insert(HOST, host);
        for (name, value) in incoming {
            if name.as_str().starts_with("x-jwt-") {
                headers.append(name, value.clone());
            }
        }
        Ok(request)
    }
}

/// One request over a new HTTP/1.1 connection, the whole answer read.
async fn exchange(sidecar: SocketAddr, request: Request<Empty<Bytes>>) -> Result<Response<Full<Bytes>>, String> {
    let tcp = tokio::net::TcpStream::connect(sidecar)
        .await
        .map_err(|e| format!("connect: {e}"))?;
    let (mut sender, connection) = hyper::client::conn::http1::handshake(TokioIo::new(tcp))
        .await
        .map_err(|e| format!("handshake: {e}"))?;
    // The connection is driven by its own task, which must not outlive the
    // call when the call times out.
    let _connection = AbortOnDrop(tokio::spawn(connection));
    let response = sender.send_request(request).await.map_err(|e| e.to_string())?;
    let (parts, body) = response.into_parts();
    let body = body
        .collect()
        .await
        .map_err(|e| format!("reading the answer: {e}"))?
        .to_bytes();
    let mut answer = Response::new(Full::new(body));
    *answer.status_mut() = parts.status;
    if let Some(content_type) = parts.headers.get(CONTENT_TYPE) {
        answer.headers_mut().insert(CONTENT_TYPE, content_type.clone());
    }
    Ok(answer)
}

struct AbortOnDrop<T>(tokio::task::JoinHandle<T>);

impl<T> Drop for AbortOnDrop<T> {
    fn drop(&mut self) {
        self.0.abort();
    }
}

fn reply(status: StatusCode, content_type: &'static str, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    response
        .headers_mut()
        .insert(CONTENT_TYPE, HeaderValue::from_static(content_type));
    response
}

fn plain(status: StatusCode, body: String) -> Response<Full<Bytes>> {
    reply(status, "text/plain", body)
}

/// An app's name is also a DNS label of its service name.
fn is_app_name(name: &str) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
}

fn is_domain(domain: &str) -> bool {
    !domain.is_empty()
        && domain
            .split('.')
            .all(|label| !label.is_empty() && label.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-'))
}
