//! `make demo`: the whole system on 127.0.0.1.
//!
//!   client --Bearer JWT--> Envoy frontend (rendered by envoy-gen: jwt_authn,
//!   jwt_scopes, SigV4) --TLS+SigV4--> lattice-sim (network and service auth
//!   policies of lattice-sim/examples/demo.yaml) --> app1/app2/app3 (echo)
//!
//! A test identity provider serves its JWKS over HTTPS; tokens are signed
//! with its freshly generated key. Each scenario prints what the client
//! sent, what came back, what the service received, and the access-log line
//! of lattice-sim with the policy statement that decided.

use e2e::echo::{echoed_headers, EchoServer};
use e2e::envoy::{envoy_binary, AwsCredentials};
use e2e::http::Request;
use e2e::stack::System;
use lattice_sim::config::Config;
use serde_json::json;
use std::process::ExitCode;
use std::sync::{Arc, Mutex};

fn main() -> ExitCode {
    match run() {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\ndemo FAILED: a scenario did not end as expected");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

struct Scenario<'a> {
    title: &'a str,
    path: &'a str,
    /// Scopes of the token; None sends no token.
    scopes: Option<&'a [&'a str]>,
    spoofed: &'a [(&'a str, &'a str)],
    expect: u16,
}

fn run() -> Result<bool, String> {
    let root = e2e::envoy::workspace_root();
    let mut sim_config = Config::load(&root.join("lattice-sim/examples/demo.yaml"))?;
    let apps: Vec<EchoServer> = (0..sim_config.services.len())
        .map(|_| EchoServer::start())
        .collect::<Result<_, _>>()?;
    for (service, app) in sim_config.services.iter_mut().zip(&apps) {
        service.target = format!("http://127.0.0.1:{}", app.addr.port());
    }
    let frontend_key = sim_config
        .credentials
        .iter()
        .find(|(_, c)| c.caller.arn.contains(":assumed-role/frontend/"))
        .map(|(key, c)| AwsCredentials {
            access_key_id: key.clone(),
            secret_access_key: c.secret.secret_access_key.clone(),
            session_token: c.secret.session_token.clone().unwrap_or_default(),
        })
        .ok_or("demo.yaml has no frontend credentials")?;
    let log_lines = Arc::new(Mutex::new(Vec::<String>::new()));
    let sink_lines = log_lines.clone();
    let sim = lattice_sim::server::start_with_log(
        sim_config,
        "127.0.0.1:0",
        Arc::new(move |line: &str| {
            if let Ok(mut lines) = sink_lines.lock() {
                lines.push(line.to_string());
            }
        }),
    )?;

    let system = System::start(sim, "lattice.local", "us-west-2", "lattice-demo", &frontend_key)?;
    let (envoy, idp, sim) = (&system.envoy, &system.idp, &system.sim);
    let port = envoy.port("frontend");

    println!(
        "Envoy        {} (frontend rendered by envoy-gen, credentials from its environment only)",
        envoy_binary()?.display()
    );
    println!("frontend     http://127.0.0.1:{port}   (jwt_authn -> jwt_scopes -> router -> SigV4 per upstream)");
    println!("identity     {} (JWKS over TLS)", idp.url);
    println!(
        "lattice-sim  https://{}   policies: lattice-sim/examples/demo.yaml",
        sim.addr
    );
    println!(
        "Envoy signs as {} (arn:aws:sts::111122223333:assumed-role/frontend/envoy)",
        frontend_key.access_key_id
    );

    let scenarios = [
        Scenario {
            title: "token with test.all -> app1 (policy: frontend role AND x-jwt-scope-test.all)",
            path: "/app1/hello",
            scopes: Some(&["openid", "test.all"]),
            spoofed: &[],
            expect: 200,
        },
        Scenario {
            title: "token without test.all -> app1",
            path: "/app1/hello",
            scopes: Some(&["openid"]),
            spoofed: &[],
            expect: 403,
        },
        Scenario {
            title: "same token, plus a forged x-jwt-scope-test.all header",
            path: "/app1/hello",
            scopes: Some(&["openid"]),
            spoofed: &[("x-jwt-scope-test.all", "true"), ("X-JWT-Subject", "admin")],
            expect: 403,
        },
        Scenario {
            title: "token with orders.read -> app2 GET",
            path: "/app2/orders/7",
            scopes: Some(&["orders.read"]),
            spoofed: &[],
            expect: 200,
        },
        Scenario {
            title: "orders.read -> app2 admin path (explicit Deny)",
            path: "/app2/admin/users",
            scopes: Some(&["orders.read"]),
            spoofed: &[],
            expect: 403,
        },
        Scenario {
            title: "any token -> app3 (auth type NONE)",
            path: "/app3/status",
            scopes: Some(&[]),
            spoofed: &[],
            expect: 200,
        },
        Scenario {
            title: "no token at all",
            path: "/app1/hello",
            scopes: None,
            spoofed: &[("x-jwt-scope-test.all", "true")],
            expect: 401,
        },
    ];
    let mut all_ok = true;
    for s in &scenarios {
        println!("\n== {}", s.title);
        let mut request = Request::get(s.path);
        if let Some(scopes) = s.scopes {
            let token = idp.token(json!({"sub": "alice@example.com", "scp": scopes}));
            request = request.bearer(&token);
            println!("   GET {}  token: sub=alice@example.com scp={scopes:?}", s.path);
        } else {
            println!("   GET {}  (no token)", s.path);
        }
        for (name, value) in s.spoofed {
            request = request.header(name, value);
            println!("   {name}: {value}   <- forged by the client");
        }
        let before = log_lines.lock().map(|l| l.len()).unwrap_or(0);
        let response = request.send(("127.0.0.1", port))?;
        let ok = response.status == s.expect;
        all_ok &= ok;
        println!(
            "-> {} (expected {}) {}",
            response.status,
            s.expect,
            if ok { "ok" } else { "UNEXPECTED" }
        );
        if response.status == 200 {
            let mut seen: Vec<(String, String)> = echoed_headers(&response.json())
                .into_iter()
                .filter(|(n, _)| n.starts_with("x-jwt-") || n == "x-amzn-lattice-identity")
                .collect();
            seen.sort();
            println!("   the service received:");
            for (name, value) in seen {
                println!("     {name}: {value}");
            }
        } else {
            println!("   {}", response.text().trim());
        }
        if let Ok(lines) = log_lines.lock() {
            for line in lines.iter().skip(before) {
                println!("   lattice-sim: {line}");
            }
        }
    }
    // Six requests reached the filter; it adds its counts to Envoy's every 200 ms.
    envoy.wait_stat("wasmcustom.jwt_scopes.requests", 6);
    println!(
        "\njwt_scopes counters: requests {}, with identity {}, scope headers {}, client headers stripped {}",
        envoy.stat("wasmcustom.jwt_scopes.requests"),
        envoy.stat("wasmcustom.jwt_scopes.requests_with_identity"),
        envoy.stat("wasmcustom.jwt_scopes.scope_headers_emitted"),
        envoy.stat("wasmcustom.jwt_scopes.client_headers_stripped")
    );
    if all_ok {
        println!("\ndemo OK: every scenario ended as the policies say");
    }
    Ok(all_ok)
}
