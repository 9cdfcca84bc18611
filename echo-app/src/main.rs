//! `echo-app`: one echo app of the reference (app1, app2, app3) as a
//! program, for the container stack (`docker-compose.yml`). It is the app
//! `make demo` runs in-process (`echo_app::app`): it answers with what it
//! received, and `GET /.../call-to-<target>` calls `<target>` through its
//! egress sidecar.

#![deny(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use clap::Parser;
use echo_app::app::App;
use std::net::SocketAddr;
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "echo-app",
    version,
    about = "An echo app of the reference architecture: answers with what it received, calls other apps through its sidecar."
)]
struct Cli {
    /// The app's name (app1, ...): what it answers as, and `called-by-<name>` in its calls.
    #[arg(long)]
    name: String,
    /// Address to listen on.
    #[arg(long, value_name = "ADDR:PORT", default_value = "127.0.0.1:8080")]
    listen: String,
    /// The services' DNS domain: a call to `<target>` is sent with `Host: <target>.<domain>`.
    #[arg(long, value_name = "DOMAIN")]
    domain: String,
    /// The app's egress sidecar; without it, calls are answered with 500.
    #[arg(long, value_name = "ADDR:PORT")]
    sidecar: Option<SocketAddr>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    match App::start_on(&cli.listen, &cli.name, cli.sidecar, &cli.domain) {
        Ok(app) => {
            eprintln!("echo-app: {} on http://{}", cli.name, app.addr);
            app.wait();
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("error: {e}");
            ExitCode::from(2)
        }
    }
}
