//! TLS on loopback for tests: a throwaway CA, certificates it issues, and an
//! HTTPS server that records the SNI and everything it received.

use bytes::Bytes;
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper::Response;
use lattice_sim::http_server::{Background, Peer};
use rcgen::{BasicConstraints, CertificateParams, DnType, IsCa, Issuer, KeyPair, KeyUsagePurpose};
use std::net::SocketAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;

/// A certificate authority that exists for one test run.
pub struct TestCa {
    issuer: Issuer<'static, KeyPair>,
    pub pem: String,
    key_pem: String,
}

/// A certificate and its key, PEM.
pub struct Leaf {
    pub cert_pem: String,
    pub key_pem: String,
}

impl TestCa {
    pub fn new(name: &str) -> TestCa {
        TestCa::try_new(name).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `new` for callers that report errors instead of panicking.
    pub fn try_new(name: &str) -> Result<TestCa, String> {
        let mut params = CertificateParams::new(Vec::<String>::new()).map_err(|e| format!("CA params: {e}"))?;
        params.distinguished_name.push(DnType::CommonName, name);
        params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
        params.key_usages = vec![
            KeyUsagePurpose::KeyCertSign,
            KeyUsagePurpose::CrlSign,
            KeyUsagePurpose::DigitalSignature,
        ];
        let key = KeyPair::generate().map_err(|e| format!("CA key: {e}"))?;
        let cert = params.self_signed(&key).map_err(|e| format!("CA certificate: {e}"))?;
        Ok(TestCa {
            pem: cert.pem(),
            key_pem: key.serialize_pem(),
            issuer: Issuer::new(params, key),
        })
    }

    /// The CA's private key, PEM (to hand to a tool that issues with it).
    pub fn key_pem(&self) -> &str {
        &self.key_pem
    }

    /// A server certificate for `names` (DNS names or IP addresses).
    pub fn leaf(&self, names: &[&str]) -> Leaf {
        self.try_leaf(names).unwrap_or_else(|e| panic!("{e}"))
    }

    /// `leaf` for callers that report errors instead of panicking.
    pub fn try_leaf(&self, names: &[&str]) -> Result<Leaf, String> {
        let params = CertificateParams::new(names.iter().map(|n| n.to_string()).collect::<Vec<_>>())
            .map_err(|e| format!("certificate names {names:?}: {e}"))?;
        let key = KeyPair::generate().map_err(|e| format!("leaf key: {e}"))?;
        let cert = params
            .signed_by(&key, &self.issuer)
            .map_err(|e| format!("leaf certificate: {e}"))?;
        Ok(Leaf {
            cert_pem: cert.pem(),
            key_pem: key.serialize_pem(),
        })
    }

    /// Writes the CA certificate to `dir/<file>` and returns its path.
    pub fn write_pem(&self, dir: &Path, file: &str) -> PathBuf {
        let path = dir.join(file);
        std::fs::write(&path, &self.pem).expect("write CA");
        path
    }
}

/// What an HTTPS test server received.
#[derive(Debug, Clone)]
pub struct Received {
    pub sni: Option<String>,
    pub method: String,
    pub path: String,
    pub query: String,
    pub headers: Vec<(String, Vec<u8>)>,
    pub body: Vec<u8>,
}

impl Received {
    pub fn header(&self, name: &str) -> Option<String> {
        self.headers
            .iter()
            .find(|(n, _)| n.eq_ignore_ascii_case(name))
            .map(|(_, v)| String::from_utf8_lossy(v).into_owned())
    }
}

pub type Handler = Arc<dyn Fn(&Received) -> (u16, String) + Send + Sync>;

/// An HTTPS server on 127.0.0.1 (HTTP/1.1 and HTTP/2 by ALPN), answering
/// with `handler`'s status and JSON text; stopped when dropped.
pub struct TlsServer {
    pub addr: SocketAddr,
    server: Background,
}

impl TlsServer {
    pub fn start(leaf: &Leaf, handler: Handler) -> Result<TlsServer, String> {
        TlsServer::start_on("127.0.0.1:0", leaf, handler)
    }

    /// `start` on a given address (`ADDR:PORT`; port 0 picks one).
    pub fn start_on(listen: &str, leaf: &Leaf, handler: Handler) -> Result<TlsServer, String> {
        let tls = lattice_sim::http_server::tls_config(&leaf.cert_pem, &leaf.key_pem)?;
        let server = lattice_sim::http_server::spawn(
            listen,
            Some(tls),
            1,
            move |peer: Peer, request: hyper::Request<Incoming>| {
                let handler = handler.clone();
                async move {
                    let (parts, body) = request.into_parts();
                    let body = body.collect().await.map(|b| b.to_bytes().to_vec()).unwrap_or_default();
                    let received = Received {
                        sni: peer.sni,
                        method: parts.method.to_string(),
                        path: parts.uri.path().to_string(),
                        query: parts.uri.query().unwrap_or("").to_string(),
                        headers: parts
                            .headers
                            .iter()
                            .map(|(n, v)| (n.to_string(), v.as_bytes().to_vec()))
                            .collect(),
                        body,
                    };
                    let (status, text) = handler(&received);
                    Response::builder()
                        .status(status)
                        .header("content-type", "application/json")
                        .body(Full::new(Bytes::from(text)))
                        .unwrap_or_default()
                }
            },
        )?;
        Ok(TlsServer {
            addr: server.addr,
            server,
        })
    }

    /// Blocks until the server stops (for a process that only serves).
    pub fn wait(self) {
        self.server.wait()
    }
}

/// Sends `request` over TLS to `addr` with SNI `server_name`, trusting only
/// `ca_pem`; the Host header is `server_name` unless the request sets one.
pub fn send(
    addr: SocketAddr,
    server_name: &str,
    ca_pem: &str,
    request: &crate::http::Request,
) -> Result<crate::http::Response, String> {
    use rustls::pki_types::pem::PemObject;
    use rustls::pki_types::{CertificateDer, ServerName};
    use std::io::{Read, Write};
    let mut roots = rustls::RootCertStore::empty();
    for cert in CertificateDer::pem_slice_iter(ca_pem.as_bytes()) {
        roots.add(cert.map_err(|e| e.to_string())?).map_err(|e| e.to_string())?;
    }
    let config = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = ServerName::try_from(server_name.to_string()).map_err(|e| e.to_string())?;
    let connection = rustls::ClientConnection::new(Arc::new(config), name).map_err(|e| e.to_string())?;
    let tcp = std::net::TcpStream::connect(addr).map_err(|e| format!("connect: {e}"))?;
    tcp.set_read_timeout(Some(std::time::Duration::from_secs(60)))
        .map_err(|e| e.to_string())?;
    let mut tls = rustls::StreamOwned::new(connection, tcp);
    tls.write_all(&request.to_bytes(server_name))
        .map_err(|e| format!("write: {e}"))?;
    let mut raw = Vec::new();
    match tls.read_to_end(&mut raw) {
        Ok(_) => {}
        // Servers may close without close_notify after `connection: close`.
        Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof && !raw.is_empty() => {}
        Err(e) => return Err(format!("read: {e}")),
    }
    crate::http::parse_response(&raw)
}
