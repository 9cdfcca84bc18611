//! envoy-gen: renders the Envoy configuration for OAuth2 in front of Amazon
//! VPC Lattice from one spec (see the README).

mod frontend;
mod output;
mod render;
mod spec;
mod validate;

use clap::{Args, Parser, Subcommand};
use frontend::{Overrides, Problem};
use spec::{Credentials, Origin};
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
    /// Listener address.
    #[arg(long, value_name = "ADDR:PORT")]
    listen: Option<String>,
    /// Path of jwt_scopes.wasm where Envoy runs.
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
    let (spec, source) = match &args.spec {
        Some(path) => {
            let text = std::fs::read_to_string(path).map_err(|e| format!("error: {}: {e}\n", path.display()))?;
            let parsed = spec::parse(&text).map_err(|e| {
                let problem = Problem {
                    origin: e
                        .line
                        .map_or(Origin::Default, |(line, column)| Origin::File { line, column }),
                    field: String::new(),
                    message: e.message,
                };
                report(&[problem], Some((path, &text)))
            })?;
            (parsed, Some((path.clone(), text)))
        }
        None => (spec::Spec::default(), None),
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
        wasm: args.wasm,
        no_oauth: args.no_oauth,
        lattice_endpoint: args.lattice_endpoint,
        lattice_ca: args.lattice_ca,
        jwks_ca: args.jwks_ca,
        credentials: args.credentials,
    };
    let model = frontend::resolve(spec, &overrides)
        .map_err(|problems| report(&problems, source.as_ref().map(|(p, t)| (p.as_path(), t.as_str()))))?;
    let text = render::frontend(&model).map_err(|e| format!("error: {e}\n"))?;
    emit(args.output.as_deref(), &text)
}

/// Formats problems like a compiler: `error: FILE:LINE:COL: field: message`,
/// the source line and a caret, then a summary. Problems are sorted by
/// position so the output is stable.
fn report(problems: &[Problem], source: Option<(&Path, &str)>) -> String {
    let mut sorted: Vec<&Problem> = problems.iter().collect();
    sorted.sort_by_key(|p| match p.origin {
        Origin::File { line, column } => (0, line, column),
        Origin::Flag(_) => (1, 0, 0),
        Origin::Default => (2, 0, 0),
    });
    let mut out = String::new();
    for p in sorted {
        // A flag's problem is named by the flag, not by the spec field.
        let field = match (&p.origin, p.field.is_empty()) {
            (Origin::Flag(flag), _) => format!("{flag}: "),
            (_, true) => String::new(),
            (_, false) => format!("{}: ", p.field),
        };
        match (&p.origin, source) {
            (Origin::File { line, column }, Some((path, text))) => {
                out.push_str(&format!(
                    "error: {}:{line}:{column}: {field}{}\n",
                    path.display(),
                    p.message
                ));
                if let Some(src) = text.lines().nth((*line as usize).saturating_sub(1)) {
                    let gutter = line.to_string().len();
                    out.push_str(&format!(
                        "{:gutter$} |\n{line} | {src}\n{:gutter$} | {:>col$}\n",
                        "",
                        "",
                        "^",
                        col = *column as usize
                    ));
                }
            }
            (Origin::Default, Some((path, _))) => {
                out.push_str(&format!("error: {}: {field}{}\n", path.display(), p.message))
            }
            _ => out.push_str(&format!("error: {field}{}\n", p.message)),
        }
    }
    let n = problems.len();
    out.push_str(&format!(
        "error: {n} problem{}; nothing was written\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}
