//! `make demo`: the jwt_scopes filter in the real Envoy, behind jwt_authn,
//! in front of an echo upstream, all on 127.0.0.1. Mints a token with a
//! freshly generated key, sends one request with it and one without, and
//! shows what the upstream received.

use e2e::echo::{echoed_headers, EchoServer};
use e2e::envoy::{envoy_binary, filter_wasm, Envoy};
use e2e::frontend::Frontend;
use e2e::http::Request;
use e2e::jwt::{payload_of, Alg, Issuer};
use serde_json::json;
use std::process::ExitCode;

fn main() -> ExitCode {
    match run() {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("demo failed: {e}");
            ExitCode::FAILURE
        }
    }
}

fn show(title: &str, request: &Request, port: u16) -> Result<u16, String> {
    println!("\n== {title}");
    println!("   {} {}", request.method, request.path);
    for (name, value) in &request.headers {
        let value = String::from_utf8_lossy(value);
        let shown = if name == "authorization" {
            format!("{}…", &value[..value.len().min(20)])
        } else {
            value.into_owned()
        };
        println!("   {name}: {shown}");
    }
    let response = request.send(("127.0.0.1", port))?;
    println!("-> {} from Envoy", response.status);
    if response.status == 200 {
        println!("   the upstream received these identity headers:");
        let mut identity: Vec<_> = echoed_headers(&response.json())
            .into_iter()
            .filter(|(n, _)| n.starts_with("x-jwt-") || n == "authorization")
            .collect();
        identity.sort();
        if identity.is_empty() {
            println!("     (none)");
        }
        for (name, value) in identity {
            println!("     {name}: {value}");
        }
    } else {
        println!("   {}", response.text().trim());
    }
    Ok(response.status)
}

fn run() -> Result<(), String> {
    let issuer = Issuer::new();
    let echo = EchoServer::start()?;
    let wasm = filter_wasm()?;
    println!("Envoy:    {}", envoy_binary()?.display());
    println!("filter:   {}", wasm.display());
    println!("upstream: echo server on {}", echo.addr);
    let config = Frontend {
        jwks: &issuer.jwks(),
        wasm: &wasm,
        plugin_config: None,
        upstream_port: echo.addr.port(),
    }
    .render();
    let envoy = Envoy::start(&config)?;
    let port = envoy.port("ingress");
    println!("Envoy listening on 127.0.0.1:{port} (jwt_authn -> jwt_scopes -> router)");

    let token = issuer.token(
        Alg::RS256,
        json!({"sub": "alice@example.com", "scp": ["openid", "test.all", "Orders.Read"]}),
    );
    println!(
        "\nA token signed with a fresh RS256 key, payload:\n   {}",
        payload_of(&token)
    );
    let with_token = Request::get("/api/orders")
        .bearer(&token)
        .header("x-jwt-scope-admin", "true")
        .header("x-jwt-subject", "admin");
    let status_with = show("with the token (and two spoofed identity headers)", &with_token, port)?;

    let without = Request::get("/api/orders").header("x-jwt-subject", "admin");
    let status_without = show("without a token (a spoofed subject only)", &without, port)?;

    let without_optional = Request::get("/optional/status").header("x-jwt-subject", "admin");
    let status_optional = show(
        "without a token on a route where the token is optional",
        &without_optional,
        port,
    )?;

    println!("\nfilter counters on Envoy's /stats:");
    for name in [
        "requests",
        "requests_with_identity",
        "scope_headers_emitted",
        "client_headers_stripped",
        "requests_refused",
    ] {
        println!(
            "   wasmcustom.jwt_scopes.{name}: {}",
            envoy.stat(&format!("wasmcustom.jwt_scopes.{name}"))
        );
    }
    if (status_with, status_without, status_optional) != (200, 401, 200) {
        return Err(format!(
            "unexpected statuses {status_with}, {status_without}, {status_optional}"
        ));
    }
    println!("\ndemo OK");
    Ok(())
}
