//! `lattice-sim serve` as a user runs it: the binary, a config file, port 0,
//! the CA written with --ca-out, one HTTPS request, one access-log line.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

struct Killed(Child);

impl Drop for Killed {
    fn drop(&mut self) {
        let _ = self.0.kill();
        let _ = self.0.wait();
    }
}

#[test]
fn serve_writes_its_ca_and_port_and_logs_each_request() {
    let dir = tempfile::tempdir().unwrap();
    let closed = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let config = dir.path().join("sim.yaml");
    std::fs::write(
        &config,
        format!(
            "region: us-west-2\naccount: \"111122223333\"\nservice_network: {{name: n, auth_type: NONE}}\n\
             services: [{{name: app, host: app.lattice.test, auth_type: NONE, target: \"http://127.0.0.1:{closed}\"}}]\n"
        ),
    )
    .unwrap();
    let (ca, port_file) = (dir.path().join("ca.pem"), dir.path().join("port"));
    let mut child = Killed(
        Command::new(env!("CARGO_BIN_EXE_lattice-sim"))
            .args(["serve", "--listen", "127.0.0.1:0", "--config"])
            .arg(&config)
            .arg("--ca-out")
            .arg(&ca)
            .arg("--port-file")
            .arg(&port_file)
            .stdout(Stdio::piped())
            .stderr(Stdio::null())
            .spawn()
            .unwrap(),
    );
    let deadline = Instant::now() + Duration::from_secs(20);
    let port: u16 = loop {
        if let Some(port) = std::fs::read_to_string(&port_file)
            .ok()
            .and_then(|p| p.trim().parse().ok())
        {
            break port;
        }
        assert!(Instant::now() < deadline, "lattice-sim did not start");
        std::thread::sleep(Duration::from_millis(50));
    };

    use rustls::pki_types::pem::PemObject;
    let mut roots = rustls::RootCertStore::empty();
    for cert in rustls::pki_types::CertificateDer::pem_file_iter(&ca).unwrap() {
        roots.add(cert.unwrap()).unwrap();
    }
    let tls = rustls::ClientConfig::builder_with_provider(Arc::new(rustls::crypto::ring::default_provider()))
        .with_safe_default_protocol_versions()
        .unwrap()
        .with_root_certificates(roots)
        .with_no_client_auth();
    let name = rustls::pki_types::ServerName::try_from("app.lattice.test").unwrap();
    let connection = rustls::ClientConnection::new(Arc::new(tls), name).unwrap();
    let tcp = std::net::TcpStream::connect(("127.0.0.1", port)).unwrap();
    let mut stream = rustls::StreamOwned::new(connection, tcp);
    stream
        .write_all(b"GET /x HTTP/1.1\r\nhost: app.lattice.test\r\nconnection: close\r\n\r\n")
        .unwrap();
    let mut response = Vec::new();
    let _ = stream.read_to_end(&mut response);
    let response = String::from_utf8_lossy(&response);
    assert!(response.starts_with("HTTP/1.1 502"), "{response}");

    let stdout = child.0.stdout.take().unwrap();
    let line = BufReader::new(stdout).lines().next().unwrap().unwrap();
    let log: serde_json::Value = serde_json::from_str(&line).unwrap();
    assert_eq!(
        (log["service"].as_str(), log["status"].as_u64(), log["caller"].as_str()),
        (Some("app"), Some(502), Some("anonymous"))
    );
}
