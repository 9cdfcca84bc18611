//! The HTTPS front of the simulator: one loopback port for every service,
//! chosen by SNI (and checked against Host); SigV4, both auth policies and
//! the caller's identity policy, then forwarding to the service's target
//! with the headers Lattice adds. Each access-log line names the policy
//! (`network`, `service` or `identity`) and statement that decided.

use crate::config::{AuthType, Config, Service};
use crate::lattice::{self, RequestInfo, Verdict, LATTICE_HEADERS};
use crate::policy::Caller;
use crate::serve::{Background, Peer};
use bytes::Bytes;
use http_body_util::{BodyExt, Full, Limited};
use hyper::body::Incoming;
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
        crate::serve::tls_config(&self.cert_pem, &self.key_pem)
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
    let server = crate::serve::spawn(listen, Some(certs.server_config()?), 2, move |peer: Peer, request| {
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

fn reply(status: StatusCode, error_type: Option<&str>, body: String) -> Response<Full<Bytes>> {
    let mut builder = Response::builder().status(status).header("content-type", "text/plain");
    if let Some(kind) = error_type {
        builder = builder.header("x-amzn-errortype", kind);
    }
    builder.body(Full::new(Bytes::from(body))).unwrap_or_default()
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
    fn fail(
        &self,
        service: &Service,
        caller: Option<&Caller>,
        verdict: &Verdict,
        status: StatusCode,
        why: &str,
    ) -> Response<Full<Bytes>> {
        self.log(Some(service), caller, status.as_u16(), "error", Some(verdict), why);
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

async fn handle(
    shared: &Shared,
    sni: Option<&str>,
    peer: SocketAddr,
    request: Request<Incoming>,
) -> Response<Full<Bytes>> {
    let config = &shared.config;
    let (parts, body) = request.into_parts();
    let method = parts.method.to_string();
    let path = parts.uri.path().to_string();
    let query = parts.uri.query().unwrap_or("").to_string();
    let access = Access {
        sink: &shared.log,
        method: &method,
        path: &path,
    };
    let host_header = parts
        .headers
        .get("host")
        .and_then(|h| h.to_str().ok())
        .map(str::to_string)
        .or_else(|| parts.uri.authority().map(|a| a.to_string()));

    let service = match (sni, host_header.as_deref()) {
        (Some(sni), host) => {
            let service = config.service_by_host(sni);
            if let (Some(s), Some(host)) = (service, host) {
                if config.service_by_host(host).map(|h| h.name.as_str()) != Some(s.name.as_str()) {
                    access.log(Some(s), None, 421, "error", None, "Host does not match SNI");
                    return reply(
                        StatusCode::MISDIRECTED_REQUEST,
                        None,
                        format!("Host `{host}` does not match the TLS server name `{sni}`\n"),
                    );
                }
            }
            service
        }
        (None, Some(host)) => config.service_by_host(host),
        (None, None) => None,
    };
    let Some(service) = service else {
        access.log(None, None, 404, "error", None, "no such service");
        return reply(
            StatusCode::NOT_FOUND,
            Some("NotFoundException"),
            "NotFoundException: no service answers to this host name\n".into(),
        );
    };

    let headers: Vec<(String, Vec<u8>)> = parts
        .headers
        .iter()
        .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
        .collect();
    let info = RequestInfo {
        method: &method,
        path: &path,
        query: &query,
        headers: &headers,
        port: shared.port(),
    };
    let needs_auth = config.network.auth_type == AuthType::AwsIam || service.auth_type == AuthType::AwsIam;
    let caller = if needs_auth {
        match lattice::authenticate(config, &info, time::OffsetDateTime::now_utc()) {
            Ok(caller) => caller,
            Err(rejection) => {
                access.log(Some(service), None, 403, "deny", None, rejection.code());
                return reply(
                    StatusCode::FORBIDDEN,
                    Some(rejection.code()),
                    format!("{}: {rejection}\n", rejection.code()),
                );
            }
        }
    } else {
        None
    };
    let verdict = lattice::authorize(config, service, caller.as_ref(), &info);
    if !verdict.allowed {
        access.log(Some(service), caller.as_ref(), 403, "deny", Some(&verdict), "policy");
        return reply(
            StatusCode::FORBIDDEN,
            Some("AccessDeniedException"),
            format!("{}\n", verdict.message),
        );
    }

    let body = match Limited::new(body, MAX_BODY).collect().await {
        Ok(collected) => collected.to_bytes(),
        Err(_) => {
            return access.fail(
                service,
                caller.as_ref(),
                &verdict,
                StatusCode::PAYLOAD_TOO_LARGE,
                "request body too large",
            );
        }
    };
    let target = format!(
        "{}{}{}{}",
        service.target,
        path,
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
    for (name, value) in lattice::lattice_headers(config, service, caller.as_ref()) {
        upstream = upstream.header(name, value);
    }
    upstream = upstream
        .header("x-forwarded-for", peer.ip().to_string())
        .header("x-forwarded-proto", "https")
        .header("x-forwarded-port", shared.port().to_string());
    let Ok(upstream) = upstream.body(Full::new(body)) else {
        return access.fail(
            service,
            caller.as_ref(),
            &verdict,
            StatusCode::BAD_GATEWAY,
            "request could not be forwarded",
        );
    };
    match tokio::time::timeout(shared.config.upstream_timeout, shared.client.request(upstream)).await {
        Err(_) => access.fail(
            service,
            caller.as_ref(),
            &verdict,
            StatusCode::GATEWAY_TIMEOUT,
            "the target did not answer in time",
        ),
        Ok(Err(_)) => access.fail(
            service,
            caller.as_ref(),
            &verdict,
            StatusCode::BAD_GATEWAY,
            "the target could not be reached",
        ),
        Ok(Ok(response)) => {
            let (parts, body) = response.into_parts();
            let body = match tokio::time::timeout(shared.config.upstream_timeout, body.collect()).await {
                Ok(Ok(b)) => b.to_bytes(),
                _ => {
                    return access.fail(
                        service,
                        caller.as_ref(),
                        &verdict,
                        StatusCode::BAD_GATEWAY,
                        "the target's response broke off",
                    )
                }
            };
            access.log(
                Some(service),
                caller.as_ref(),
                parts.status.as_u16(),
                "allow",
                Some(&verdict),
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
