//! `make demo` / `make up`: the AWS reference architecture on 127.0.0.1,
//! everything rendered from `envoy/examples/reference.yaml`:
//!
//!   client --JWT--> frontend Envoy --SigV4 (frontend role)--> lattice-sim --> app1|app2|app3
//!   app2 --> app2's sidecar Envoy --SigV4 (app2 role)--> lattice-sim --> app1 (allowed) | app3 (refused)
//!
//! The dev IdP (`dev-idp`) serves its JWKS over HTTPS; lattice-sim runs the
//! policy files `envoy-gen policies` wrote. Each scenario prints the
//! request, the outcome, what the app received and lattice-sim's log line.
//! `--keep-running` leaves the stack up with ready-to-paste commands until
//! Ctrl-C.

use dev_idp::http::{Request, Response};
use echo_app::echo::echoed_headers;
use local_stack::deployment::{Deployment, AUDIENCE};
use local_stack::envoy::{envoy_binary, workspace_root};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

fn main() -> ExitCode {
    let keep_running = std::env::args().any(|a| a == "--keep-running");
    match run(keep_running) {
        Ok(true) => ExitCode::SUCCESS,
        Ok(false) => {
            eprintln!("\ndemo FAILED: a scenario did not end as expected (see UNEXPECTED above)");
            ExitCode::FAILURE
        }
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

/// Who sends the request.
enum Via {
    /// The client, through the frontend, with a token of these scopes (None: no token).
    Frontend(Option<&'static [&'static str]>),
    /// Straight to lattice-sim over TLS, unsigned (as a caller in the VPC without credentials).
    UnsignedToLattice(&'static str),
}

struct Scenario {
    title: &'static str,
    via: Via,
    path: &'static str,
    forged: &'static [(&'static str, &'static str)],
    expect: u16,
}

const SUBJECT: &str = "alice@example.com";

fn run(keep_running: bool) -> Result<bool, String> {
    let root = workspace_root();
    let spec = root.join("envoy/examples/reference.yaml");
    let dir = root.join("target/demo");
    let dev_idp = sibling_binary("dev-idp")?;
    println!("Rendering and starting everything from {} ...", spec.display());
    let d = Deployment::start(&spec, Some(&dir), &dev_idp)?;

    println!("Envoy         {}", envoy_binary()?.display());
    println!(
        "dev IdP       {} (issuer {}, JWKS over TLS)",
        d.idp.jwks_uri, d.idp.issuer
    );
    println!(
        "lattice-sim   https://{}   policies: {}/policies",
        d.sim.addr,
        dir.display()
    );
    println!(
        "frontend      http://127.0.0.1:{}   signs as {}",
        d.frontend_port(),
        session(&d, "frontend")
    );
    for (name, _) in &d.sidecars {
        println!(
            "{name} sidecar  http://127.0.0.1:{}   signs as {}",
            d.sidecar_port(name).unwrap_or(0),
            session(&d, name)
        );
    }
    println!(
        "rendered      {}/{{frontend,sidecar-app1,sidecar-app2,sidecar-app3}}.yaml, lattice-sim.yaml",
        dir.display()
    );

    let scenarios = [
        Scenario {
            title: "token with test.all -> app1 (app1 admits the frontend role AND x-jwt-scope-test.all)",
            via: Via::Frontend(Some(&["openid", "test.all"])),
            path: "/app1/hello",
            forged: &[],
            expect: 200,
        },
        Scenario {
            title: "token without test.all -> app1",
            via: Via::Frontend(Some(&["openid"])),
            path: "/app1/hello",
            forged: &[],
            expect: 403,
        },
        Scenario {
            title: "same token, plus forged scope and subject headers",
            via: Via::Frontend(Some(&["openid"])),
            path: "/app1/hello",
            forged: &[("x-jwt-scope-test.all", "true"), ("X-JWT-Subject", "admin")],
            expect: 403,
        },
        Scenario {
            title: "reference example 1: app2 calls app1 with its own role (app1 admits app2)",
            via: Via::Frontend(Some(&["test.all"])),
            path: "/app2/call-to-app1",
            forged: &[],
            expect: 200,
        },
        Scenario {
            title: "reference example 2: app2 calls app3 (app3 admits nobody)",
            via: Via::Frontend(Some(&["test.all"])),
            path: "/app2/call-to-app3",
            forged: &[],
            expect: 403,
        },
        Scenario {
            title: "reference example 3a: no token at all",
            via: Via::Frontend(None),
            path: "/app1",
            forged: &[],
            expect: 401,
        },
        Scenario {
            title: "reference example 3b: an unsigned request straight to app1's Lattice service",
            via: Via::UnsignedToLattice("app1.example.internal"),
            path: "/app1",
            forged: &[],
            expect: 403,
        },
        Scenario {
            title: "reference example 4a: a valid token on /app2",
            via: Via::Frontend(Some(&["openid", "test.all"])),
            path: "/app2",
            forged: &[],
            expect: 200,
        },
        Scenario {
            title: "reference example 4b: the same token on /app3",
            via: Via::Frontend(Some(&["openid", "test.all"])),
            path: "/app3",
            forged: &[],
            expect: 403,
        },
    ];
    let mut all_ok = true;
    for s in &scenarios {
        println!("\n== {}", s.title);
        let before = d.sim_log_len();
        let response = match send(&d, s) {
            Ok(r) => r,
            Err(e) => {
                println!("-> request failed: {e}   UNEXPECTED");
                all_ok = false;
                continue;
            }
        };
        let ok = response.status == s.expect;
        all_ok &= ok;
        println!(
            "-> {} (expected {}) {}",
            response.status,
            s.expect,
            if ok { "ok" } else { "UNEXPECTED" }
        );
        show(&response);
        for line in d.sim_log_since(before) {
            println!("   lattice-sim: {line}");
        }
    }

    if all_ok {
        println!("\ndemo OK: every scenario ended as the reference's policies say");
    }
    if keep_running && all_ok {
        wait_for_ctrl_c(&d)?;
    }
    Ok(all_ok)
}

fn session(d: &Deployment, role: &str) -> String {
    d.key(role)
        .map_or_else(|| "(no role)".into(), |k| k.session_arn.clone())
}

fn send(d: &Deployment, s: &Scenario) -> Result<Response, String> {
    match s.via {
        Via::Frontend(scopes) => {
            let mut request = Request::get(s.path);
            match scopes {
                Some(scopes) => {
                    request = request.bearer(&d.token(SUBJECT, scopes)?);
                    println!("   GET {}  token: sub={SUBJECT} scope=\"{}\"", s.path, scopes.join(" "));
                }
                None => println!("   GET {}  (no token)", s.path),
            }
            for (name, value) in s.forged {
                request = request.header(name, value);
                println!("   {name}: {value}   <- forged by the client");
            }
            request.send(("127.0.0.1", d.frontend_port()))
        }
        Via::UnsignedToLattice(host) => {
            println!("   GET https://{host}{}  (unsigned, straight to Lattice)", s.path);
            dev_idp::tls::send(d.sim.addr, host, &d.sim.ca_pem, &Request::get(s.path))
        }
    }
}

/// What the app answered: who it is, whom it was called for, and the
/// identity headers it received; or the refusal's text.
fn show(response: &Response) {
    if response.status != 200 {
        println!("   {}", response.text().trim());
        return;
    }
    let body = response.json();
    println!(
        "   {} answered: jwt_subject={}, path={}",
        body["webserver"].as_str().unwrap_or("?"),
        body["jwt_subject"],
        body["path"]
    );
    let mut seen: Vec<(String, String)> = echoed_headers(&body)
        .into_iter()
        .filter(|(n, _)| n.starts_with("x-jwt-") || n == "x-amzn-lattice-identity")
        .collect();
    seen.sort();
    for (name, value) in seen {
        println!("     {name}: {value}");
    }
}

/// A binary built beside this one (`cargo build --release -p local-stack -p dev-idp -p echo-app`).
fn sibling_binary(name: &str) -> Result<PathBuf, String> {
    let exe = std::env::current_exe().map_err(|e| e.to_string())?;
    let path = exe.with_file_name(name);
    if path.is_file() {
        Ok(path)
    } else {
        Err(format!(
            "{} is missing: build it with `cargo build --release -p local-stack -p dev-idp -p echo-app` (make demo does)",
            path.display()
        ))
    }
}

fn wait_for_ctrl_c(d: &Deployment) -> Result<(), String> {
    let stop = Arc::new(AtomicBool::new(false));
    let flag = stop.clone();
    ctrlc::set_handler(move || flag.store(true, Ordering::SeqCst)).map_err(|e| format!("Ctrl-C handler: {e}"))?;
    let front = d.frontend_port();
    let mint = d.idp.token_command(SUBJECT, AUDIENCE, &["openid", "test.all"]);
    println!("\nThe stack keeps running. Try (in another terminal):\n");
    println!("  TOKEN=$({mint})");
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{front}/app2/call-to-app1");
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{front}/app2/call-to-app3");
    println!("  curl -s -H \"Authorization: Bearer $TOKEN\" http://127.0.0.1:{front}/app2");
    println!("  curl -s http://127.0.0.1:{front}/app1                       # 401 Jwt is missing");
    if let Some(port) = d.sidecar_port("app2") {
        println!(
            "  curl -s -H 'Host: app1.example.internal' http://127.0.0.1:{port}/app1   # as app2, through its sidecar"
        );
        println!("  HTTP_PROXY=http://127.0.0.1:{port} curl -s http://app3.example.internal/app3   # refused by app3's policy");
    }
    println!(
        "  curl -s --cacert {}/ca-bundle.pem --resolve app1.example.internal:{}:127.0.0.1 https://app1.example.internal:{}/app1   # unsigned: 403",
        d.dir.display(),
        d.sim.addr.port(),
        d.sim.addr.port()
    );
    println!("\nPress Ctrl-C to stop everything.");
    while !stop.load(Ordering::SeqCst) {
        std::thread::sleep(std::time::Duration::from_millis(200));
    }
    println!("\nstopping ...");
    Ok(())
}
