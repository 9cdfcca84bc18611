//! envoy-gen: renders the Envoy configuration for OAuth2 in front of Amazon
//! VPC Lattice from one spec (see the README).

use clap::{Args, Parser, Subcommand};
use envoy_gen::frontend::Overrides;
use envoy_gen::spec::{self, Credentials};
use envoy_gen::{output, render_frontend, validate};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "envoy-gen",
    version,
    about = "Renders the Envoy configuration for OAuth2 in front of Amazon VPC Lattice."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render the frontend Envoy bootstrap: jwt_authn, the jwt_scopes filter,
    /// SigV4 signing and one route per Lattice service.
    Frontend(Box<FrontendArgs>),
    /// Check a rendered configuration with the real Envoy (`envoy --mode validate`).
    Validate(ValidateArgs),
    /// Print the JSON Schema of the spec file (for editor completion).
    Schema {
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct FrontendArgs {
    /// YAML spec file; the flags below override it.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
    /// Token issuer (`iss`), an https URL.
    #[arg(long, value_name = "URL")]
    issuer: Option<String>,
    /// Accepted audience (`aud`); repeat for several.
    #[arg(long = "audience", value_name = "AUD")]
    audiences: Vec<String>,
    /// JWKS endpoint of the issuer, an https URL.
    #[arg(long, value_name = "URL")]
    jwks_uri: Option<String>,
    /// DNS domain of the services: hosts default to `<name>.<domain>`.
    #[arg(long, value_name = "DOMAIN")]
    domain: Option<String>,
    /// AWS region of the Lattice services.
    #[arg(long, value_name = "REGION")]
    region: Option<String>,
    /// A Lattice service; repeat for several (default app1, app2, app3).
    #[arg(long = "service", value_name = "NAME[=HOST]")]
    services: Vec<String>,
    /// Service for paths that match no other (default: the first).
    #[arg(long, value_name = "NAME")]
    default_service: Option<String>,
    /// Listener address (default 0.0.0.0:8080).
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Admin interface address; must be loopback (default 127.0.0.1:9901).
    #[arg(long, value_name = "ADDR:PORT")]
    admin: Option<String>,
    /// Path of jwt_scopes.wasm where Envoy runs (default /etc/envoy/jwt_scopes.wasm).
    #[arg(long, value_name = "PATH")]
    wasm: Option<String>,
    /// No token validation: only sign and route (the reference sample without OAuth).
    #[arg(long)]
    no_oauth: bool,
    /// Connect to Lattice here (local testing); SNI, Host and signature keep the service name.
    #[arg(long, value_name = "HOST:PORT")]
    lattice_endpoint: Option<String>,
    /// CA bundle that verifies Lattice services (default: the system bundle).
    #[arg(long, value_name = "PEM")]
    lattice_ca: Option<String>,
    /// CA bundle that verifies JWKS servers (default: the system bundle).
    #[arg(long, value_name = "PEM")]
    jwks_ca: Option<String>,
    /// Where Envoy's AWS credentials come from: `env` (environment only) or `default` (full chain).
    #[arg(long, value_enum, value_name = "SOURCE")]
    credentials: Option<Credentials>,
    /// Write here instead of stdout (only when rendering succeeds).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct ValidateArgs {
    /// The Envoy configuration to check.
    file: PathBuf,
    /// The Envoy binary (default: $ENVOY_BIN, ./.venv/bin/envoy, then `envoy` on PATH).
    #[arg(long, value_name = "PATH")]
    envoy: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Frontend(args) => run_frontend(*args),
        Command::Validate(args) => validate::run(&args.file, args.envoy.as_deref()),
        Command::Schema { output } => {
            let text = format!("{:#}\n", spec::schema());
            emit(output.as_deref(), &text)
        }
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(message) => {
            eprint!("{message}");
            ExitCode::FAILURE
        }
    }
}

fn emit(output: Option<&Path>, text: &str) -> Result<(), String> {
    match output {
        Some(path) => output::write_atomic(path, text).map_err(|e| format!("error: {e}\n")),
        None => {
            print!("{text}");
            Ok(())
        }
    }
}

fn run_frontend(args: FrontendArgs) -> Result<(), String> {
    let source = match &args.spec {
        Some(path) => Some((
            path.clone(),
            std::fs::read_to_string(path).map_err(|e| format!("error: {}: {e}\n", path.display()))?,
        )),
        None => None,
    };
    let overrides = Overrides {
        issuer: args.issuer,
        audiences: args.audiences,
        jwks_uri: args.jwks_uri,
        domain: args.domain,
        region: args.region,
        services: args.services,
        default_service: args.default_service,
        listen: args.listen,
        admin: args.admin,
        wasm: args.wasm,
        no_oauth: args.no_oauth,
        lattice_endpoint: args.lattice_endpoint,
        lattice_ca: args.lattice_ca,
        jwks_ca: args.jwks_ca,
        credentials: args.credentials,
    };
    let text = render_frontend(source.as_ref().map(|(p, t)| (p.as_path(), t.as_str())), &overrides)?;
    emit(args.output.as_deref(), &text)
}
