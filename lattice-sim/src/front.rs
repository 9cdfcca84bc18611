//! Lattice's front: one loopback HTTPS port for every service. Each request
//! goes through three steps ([`handle`]): choose the service (SNI, checked
//! against Host), admit the caller (SigV4, then the network, service and
//! identity policies on the normalised path), forward to the service's
//! target with the headers Lattice adds. Each access-log line names the
//! policy (`network`, `service` or `identity`) and statement that decided.
//! The generic HTTPS serving underneath is [`crate::http_server`].

use crate::config::{Config, Service};
use crate::http_server::{Background, Peer};
use crate::lattice::{self, BadPath, RequestInfo, Verdict, LATTICE_HEADERS};
use crate::policy::Caller;
use bytes::Bytes;
use http_body_util::{BodyExt, Full, LengthLimitError, Limited};
use hyper::body::Incoming;
use hyper::header::{HeaderName, HeaderValue, CONTENT_TYPE, HOST};
use hyper::{Request, Response, StatusCode};
use hyper_util::client::legacy::Client;
use hyper_util::rt::TokioExecutor;
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::net::SocketAddr;
use std::sync::Arc;

/// Largest request body forwarded (Lattice's own limit is larger; this is
/// a local tool).
const MAX_BODY: usize = 10 * 1024 * 1024;

/// The simulator's TLS identity: a CA (generated, or the user's) and one
/// certificate naming every service host.
pub struct Certificates {
    pub ca_pem: String,
    cert_pem: String,
    key_pem: String,
}

impl Certificates {
    pub fn for_config(config: &Config) -> Result<Certificates, String> {
        let issuer = match &config.ca {
            Some((cert, key)) => {
                let cert_pem = std::fs::read_to_string(cert).map_err(|e| format!("{}: {e}", cert.display()))?;
                let key_pem = std::fs::read_to_string(key).map_err(|e| format!("{}: {e}", key.display()))?;
                let key = KeyPair::from_pem(&key_pem).map_err(|e| format!("{}: {e}", key.display()))?;
                let issuer =
                    Issuer::from_ca_cert_pem(&cert_pem, key).map_err(|e| format!("{}: {e}", cert.display()))?;
                (issuer, cert_pem)
            }
            None => {
                let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| e.to_string())?;
                params
                    .distinguished_name
                    .push(DnType::CommonName, "lattice-sim local CA");
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![KeyUsagePurpose::KeyCertSign, KeyUsagePurpose::DigitalSignature];
                let key = KeyPair::generate().map_err(|e| e.to_string())?;
                let cert = params.self_signed(&key).map_err(|e| e.to_string())?;
                (Issuer::new(params, key), cert.pem())
            }
        };
        let (issuer, ca_pem) = issuer;
        let hosts: Vec<String> = config.services.iter().map(|s| s.host.clone()).collect();
        let params = CertificateParams::new(hosts).map_err(|e| e.to_string())?;
        let key = KeyPair::generate().map_err(|e| e.to_string())?;
        let cert = params.signed_by(&key, &issuer).map_err(|e| e.to_string())?;
        Ok(Certificates {
            ca_pem,
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    fn server_config(&self) -> Result<rustls::ServerConfig, String> {
        crate::http_server::tls_config(&self.cert_pem, &self.key_pem)
    }
}

/// A running simulator; dropping it stops the server.
pub struct Running {
    pub addr: SocketAddr,
    pub ca_pem: String,
    server: Background,
}

impl Running {
    /// Blocks until the server stops (for the binary).
    pub fn wait(self) {
        self.server.wait();
    }
}

type HttpClient = Client<hyper_util::client::legacy::connect::HttpConnector, Full<Bytes>>;

/// Where access-log lines go (one JSON object per line).
pub type LogSink = Arc<dyn Fn(&str) + Send + Sync>;

struct Shared {
    config: Config,
    log: LogSink,
    client: HttpClient,
    /// The bound port, for `x-forwarded-port` and the `Port` condition key.
    port: Arc<std::sync::OnceLock<u16>>,
}

impl Shared {
    fn port(&self) -> u16 {
        self.port.get().copied().unwrap_or(0)
    }
}

/// Starts the simulator on `listen` (port 0 picks one) in its own thread.
pub fn start(config: Config, listen: &str) -> Result<Running, String> {
    start_with_log(config, listen, Arc::new(|line: &str| println!("{line}")))
}

/// Like `start`, with the access log sent to `log`.
pub fn start_with_log(config: Config, listen: &str, log: LogSink) -> Result<Running, String> {
    let certs = Certificates::for_config(&config)?;
    // The port is known only once bound; the handler reads it from here.
    let port = Arc::new(std::sync::OnceLock::new());
    let shared = Arc::new(Shared {
        config,
        log,
        client: Client::builder(TokioExecutor::new()).build_http(),
        port: port.clone(),
    });
    let server = crate::http_server::spawn(listen, Some(certs.server_config()?), 2, move |peer: Peer, request| {
        let shared = shared.clone();
        async move { handle(&shared, peer.sni.as_deref(), peer.addr, request).await }
    })?;
    let _ = port.set(server.addr.port());
    Ok(Running {
        addr: server.addr,
        ca_pem: certs.ca_pem,
        server,
    })
}

/// A response built without any fallible step, so that no error while
/// building a refusal can ever turn into a default (200) response.
fn reply(status: StatusCode, error_type: Option<&'static str>, body: String) -> Response<Full<Bytes>> {
    let mut response = Response::new(Full::new(Bytes::from(body)));
    *response.status_mut() = status;
    let headers = response.headers_mut();
    headers.insert(CONTENT_TYPE, HeaderValue::from_static("text/plain"));
    if let Some(kind) = error_type {
        headers.insert(
            HeaderName::from_static("x-amzn-errortype"),
            HeaderValue::from_static(kind),
        );
    }
    response
}

/// The request an access-log line is about.
struct Access<'a> {
    sink: &'a LogSink,
    method: &'a str,
    path: &'a str,
}

impl Access<'_> {
    /// Logs a request that failed after it was allowed, and answers `status`
    /// with `why` as the body.
    fn fail(&self, service: &Service, admitted: &Admitted, status: StatusCode, why: &str) -> Response<Full<Bytes>> {
        self.log(
            Some(service),
            admitted.caller.as_ref(),
            status.as_u16(),
            "error",
            Some(&admitted.verdict),
            why,
        );
        reply(status, None, format!("{why}\n"))
    }

    /// One access-log line: who, what, and the policy statement that decided.
    fn log(
        &self,
        service: Option<&Service>,
        caller: Option<&Caller>,
        status: u16,
        decision: &str,
        verdict: Option<&Verdict>,
        reason: &str,
    ) {
        let line = serde_json::json!({
            "time": time::OffsetDateTime::now_utc().format(&time::format_description::well_known::Rfc3339).unwrap_or_default(),
            "caller": caller.map_or("anonymous", |c| c.arn.as_str()),
            "service": service.map(|s| s.name.as_str()),
            "method": self.method,
            "path": self.path,
            "status": status,
            "decision": decision,
            "policy": verdict.map(|v| v.policy),
            "statement": verdict.and_then(|v| v.statement.clone()),
            "reason": reason,
        });
        (self.sink)(&line.to_string());
    }
}

/// The answer to a request a step refused (boxed: a response is large).
type Refusal = Box<Response<Full<Bytes>>>;

/// A request Lattice let in: who, why, and the path it goes on with.
struct Admitted {
    caller: Option<Caller>,
    verdict: Verdict,
    /// The normalised path the policies saw and the target receives.
    path: String,
}

/// Lattice's front, in three steps: which service, may this caller invoke
/// it, forward.
async fn handle(
    shared: &Shared,
    sni: Option<&str>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let raw_path = parts.uri.path().to_string();
    let access = Access {
        sink: &shared.log,
        method: &method,
        path: &raw_path,
    };
    let service = match choose_service(&shared.config, sni, &parts, &access) {
        Ok(service) => service,
        Err(refusal) => return *refusal,
    };
    let admitted = match admit(shared, service, &parts, &access) {
        Ok(admitted) => admitted,
        Err(refusal) => return *refusal,
    };
    forward(shared, service, &admitted, parts, body, peer, &access).await
}

/// What makes a request ambiguous to the hops after this one, if anything:
/// more than one `Host` (RFC 9112 3.2: "A server MUST respond with a 400 (Bad
/// Request) status code to any HTTP/1.1 request message that lacks a Host
/// header field and to any that contains more than one Host header field
/// line or a Host header field with an invalid field value"), and a `Host`
/// that is not text (it could not be checked against the TLS server name).
/// `Content-Length` with `Transfer-Encoding` never gets here: the HTTP/1.1
/// parser applies RFC 9112 6.3 (Transfer-Encoding wins, Content-Length is
/// dropped, the connection is closed after the response), so nothing can be
/// smuggled behind the body.
fn malformed(parts: &hyper::http::request::Parts) -> Option<&'static str> {
    let hosts: Vec<_> = parts.headers.get_all(HOST).iter().collect();
    if hosts.len() > 1 {
        return Some("more than one Host header");
    }
    if hosts.iter().any(|h| h.to_str().is_err()) {
        return Some("the Host header is not text");
    }
    None
}

/// Step 1: a well-formed request (see [`malformed`]); the service is the one the TLS server name (SNI) names, and the
/// Host header must name the same one (421 otherwise); without SNI, Host
/// alone. No such service: 404.
fn choose_service<'c>(
    config: &'c Config,
    sni: Option<&str>,
    parts: &hyper::http::request::Parts,
    access: &Access<'_>,
) -> Result<&'c Service, Refusal> {
    if let Some(why) = malformed(parts) {
        access.log(None, None, 400, "error", None, why);
        return Err(Box::new(reply(
            StatusCode::BAD_REQUEST,
            Some("ValidationException"),
            format!("ValidationException: {why}\n"),
        )));
    }
    let host_header = parts
        .headers
        .get(HOST)
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));
    let service = match (sni, host_header.as_deref()) {
        (Some(sni), host) => {
            let service = config.service_by_host(sni);
            if let (Some(s), Some(host)) = (service, host) {
                if config.service_by_host(host).map(|h| h.name.as_str()) != Some(s.name.as_str()) {
                    access.log(Some(s), None, 421, "error", None, "Host does not match SNI");
                    return Err(Box::new(reply(
                        StatusCode::MISDIRECTED_REQUEST,
                        None,
                        format!("Host `{host}` does not match the TLS server name `{sni}`\n"),
                    )));
                }
            }
            service
        }
        (None, Some(host)) => config.service_by_host(host),
        (None, None) => None,
    };
    service.ok_or_else(|| {
        access.log(None, None, 404, "error", None, "no such service");
        Box::new(reply(
            StatusCode::NOT_FOUND,
            Some("NotFoundException"),
            "NotFoundException: no service answers to this host name\n".into(),
        ))
    })
}

/// Step 2: authenticate (SigV4, see [`lattice::authenticate`]) and
/// authorise (network, service and identity policies) against the
/// normalised path (see [`lattice::request_path`]). Every refusal is a
/// 4xx; nothing here can fall through to an allow.
fn admit(
    shared: &Shared,
    service: &Service,
    parts: &hyper::http::request::Parts,
    access: &Access<'_>,
) -> Result<Admitted, Refusal> {
    let config = &shared.config;
    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let raw_path = parts.uri.path();
    let query = parts.uri.query().unwrap_or("");
    // The signature covers the path as the client sent it.
    let signed = RequestInfo {
        method: access.method,
        path: raw_path,
        query,
        headers: &headers,
        port: shared.port(),
    };
    let caller = match lattice::authenticate(config, service, &signed, time::OffsetDateTime::now_utc()) {
        Ok(caller) => caller,
        Err(rejection) => {
            access.log(Some(service), None, 403, "deny", None, rejection.code());
            return Err(Box::new(reply(
                StatusCode::FORBIDDEN,
                Some(rejection.code()),
                format!("{}: {rejection}\n", rejection.code()),
            )));
        }
    };
    let path = match lattice::request_path(raw_path) {
        Ok(path) => path,
        Err(BadPath(why)) => {
            access.log(Some(service), caller.as_ref(), 400, "error", None, &why);
            return Err(Box::new(reply(
                StatusCode::BAD_REQUEST,
                Some("ValidationException"),
                format!("ValidationException: {why}\n"),
            )));
        }
    };
    let verdict = lattice::authorize(config, service, caller.as_ref(), &RequestInfo { path: &path, ..signed });
    if !verdict.allowed {
        access.log(Some(service), caller.as_ref(), 403, "deny", Some(&verdict), "policy");
        return Err(Box::new(reply(
            StatusCode::FORBIDDEN,
            Some("AccessDeniedException"),
            format!("{}\n", verdict.message),
        )));
    }
    Ok(Admitted { caller, verdict, path })
}

/// Step 3: forward to the service's target with the normalised path and
/// the headers Lattice adds (client copies of them, `x-forwarded-*` and
/// hop-by-hop headers removed); 413, 502 or 504 when that fails.
async fn forward(
    shared: &Shared,
    service: &Service,
    admitted: &Admitted,
    parts: hyper::http::request::Parts,
    body: Incoming,
    peer: SocketAddr,
    access: &Access<'_>,
) -> Response<Full<Bytes>> {
    let config = &shared.config;
    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(error) if error.is::<LengthLimitError>() => {
            return access.fail(
                service,
                admitted,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            )
        }
        // The client went away or broke its framing mid-body: nothing is
        // forwarded, and the log says so instead of blaming the size.
        Err(_) => {
            return access.fail(
                service,
                admitted,
                StatusCode::BAD_REQUEST,
                "request body not received in full",
            )
        }
    };
    let query = parts.uri.query().unwrap_or("");
    let target = format!(
        "{}{}{}{}",
        service.target,
        admitted.path,
        if query.is_empty() { "" } else { "?" },
        query
    );
    let mut upstream = Request::builder().method(parts.method.clone()).uri(&target);
    for (name, value) in parts.headers.iter() {
        let n = name.as_str();
        let hop_by_hop = matches!(
            n,
            "connection" | "keep-alive" | "transfer-encoding" | "te" | "upgrade" | "proxy-connection"
        );
        if hop_by_hop || LATTICE_HEADERS.contains(&n) || n.starts_with("x-forwarded-") {
            continue;
        }
        upstream = upstream.header(name, value);
    }
    for (name, value) in lattice::lattice_headers(config, service, admitted.caller.as_ref()) {
        upstream = upstream.header(name, value);
    }
    upstream = upstream
        .header("x-forwarded-for", peer.ip().to_string())
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", shared.port().to_string());
    let Ok(upstream) = upstream.body(Full::new(body)) else {
        return access.fail(
            service,
            admitted,
            StatusCode::BAD_GATEWAY,
            "request could not be forwarded",
        );
    };
    match tokio::time::timeout(config.upstream_timeout, shared.client.request(upstream)).await {
        Err(_) => access.fail(
            service,
            admitted,
            StatusCode::GATEWAY_TIMEOUT,
            "the target did not answer in time",
        ),
        Ok(Err(_)) => access.fail(
            service,
            admitted,
            StatusCode::BAD_GATEWAY,
            "the target could not be reached",
        ),
        Ok(Ok(response)) => {
            let (parts, body) = response.into_parts();
            let body = match tokio::time::timeout(config.upstream_timeout, body.collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                _ => {
                    return access.fail(
                        service,
                        admitted,
                        StatusCode::BAD_GATEWAY,
                        "the target's response broke off",
                    )
                }
            };
            access.log(
                Some(service),
                admitted.caller.as_ref(),
                parts.status.as_u16(),
                "allow",
                Some(&admitted.verdict),
                "",
            );
            let mut response = Response::from_parts(parts, Full::new(body));
            for hop in ["connection", "keep-alive", "transfer-encoding"] {
                response.headers_mut().remove(hop);
            }
            response
        }
    }
}
