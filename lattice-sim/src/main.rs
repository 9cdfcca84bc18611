//! `lattice-sim serve`: a local VPC Lattice. `lattice-sim check`: one
//! authorization decision, without any network, for CI pipelines.

use clap::{Parser, Subcommand, ValueEnum};
use lattice_sim::config::{read_policy_file, Config};
use lattice_sim::lattice::{self, BadPath, RequestInfo};
use lattice_sim::policy::{Caller, PolicyKind};
use std::path::PathBuf;
use std::process::ExitCode;
use std::sync::Arc;

#[derive(Parser)]
#[command(
    name = "lattice-sim",
    version,
    about = "A local stand-in for Amazon VPC Lattice: SigV4, auth policies, forwarding."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Clone, Copy, PartialEq, Eq, ValueEnum)]
enum Expect {
    Allow,
    Deny,
}

#[derive(Subcommand)]
enum Command {
    /// Serve HTTPS for every service of the configuration on one port.
    Serve {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// Address to listen on (default: the config's `listen`, else 127.0.0.1:8443).
        #[arg(long, value_name = "ADDR:PORT")]
        listen: Option<String>,
        /// Write the CA certificate (PEM) that clients must trust here.
        #[arg(long, value_name = "FILE")]
        ca_out: Option<PathBuf>,
        /// Write the bound port here once listening (for scripts using port 0).
        #[arg(long, value_name = "FILE")]
        port_file: Option<PathBuf>,
    },
    /// Decide one request without any network: prints ALLOW or DENY and the
    /// deciding policy statement; exit status 0 for allow, 1 for deny
    /// (or, with --expect, 0 when the decision is the expected one).
    Check {
        #[arg(long, value_name = "FILE")]
        config: PathBuf,
        /// The service's name.
        #[arg(long)]
        service: String,
        /// The caller's ARN (an assumed-role session or an IAM user); absent: anonymous.
        #[arg(long, value_name = "ARN")]
        principal: Option<String>,
        /// The ARN of the --principal session's role, when the role has a path
        /// (default arn:aws:iam::<account>:role/<role>).
        #[arg(long, value_name = "ARN", requires = "principal")]
        role_arn: Option<String>,
        /// Take the caller (ARN, org, tags, identity policy) from this access key in the config.
        #[arg(long, value_name = "ID", conflicts_with = "principal")]
        access_key: Option<String>,
        /// The IAM identity-based policy (JSON, no Principal) of the --principal's
        /// role or user; the caller then needs an Allow there too.
        #[arg(long, value_name = "FILE", requires = "principal")]
        identity_policy: Option<PathBuf>,
        #[arg(long, default_value = "GET")]
        method: String,
        #[arg(long, default_value = "/")]
        path: String,
        #[arg(long, default_value = "")]
        query: String,
        /// A request header; repeat for several.
        #[arg(long = "header", value_name = "NAME:VALUE")]
        headers: Vec<String>,
        #[arg(long, default_value_t = 443)]
        port: u16,
        #[arg(long, value_enum)]
        expect: Option<Expect>,
    },
}

fn main() -> ExitCode {
    match run(Cli::parse()) {
        Ok(code) => code,
        Err(message) => {
            eprintln!("error: {message}");
            ExitCode::from(2)
        }
    }
}

fn run(cli: Cli) -> Result<ExitCode, String> {
    match cli.command {
        Command::Serve {
            config,
            listen,
            ca_out,
            port_file,
        } => {
            let config = Config::load(&config)?;
            let listen = listen
                .or_else(|| config.listen.clone())
                .unwrap_or_else(|| "127.0.0.1:8443".into());
            let services: Vec<String> = config
                .services
                .iter()
                .map(|s| format!("{} ({})", s.name, s.host))
                .collect();
            let running = lattice_sim::front::start(config, &listen)?;
            if let Some(path) = ca_out {
                std::fs::write(&path, &running.ca_pem).map_err(|e| format!("{}: {e}", path.display()))?;
            }
            if let Some(path) = port_file {
                std::fs::write(&path, running.addr.port().to_string())
                    .map_err(|e| format!("{}: {e}", path.display()))?;
            }
            eprintln!("lattice-sim: https://{} serves {}", running.addr, services.join(", "));
            running.wait();
            Ok(ExitCode::SUCCESS)
        }
        Command::Check {
            config,
            service,
            principal,
            role_arn,
            access_key,
            identity_policy,
            method,
            path,
            query,
            headers,
            port,
            expect,
        } => {
            let config = Config::load(&config)?;
            let svc = config
                .services
                .iter()
                .find(|s| s.name == service)
                .ok_or_else(|| format!("no service `{service}` in the configuration"))?;
            let caller = match (principal, access_key) {
                (Some(arn), _) => Some(Caller {
                    identity_policy: identity_policy
                        .map(|path| read_policy_file(&path, PolicyKind::Identity).map(Arc::new))
                        .transpose()
                        .map_err(|e| format!("--identity-policy {e}"))?,
                    ..Caller::new(&arn, role_arn.as_deref()).map_err(|e| format!("--principal {e}"))?
                }),
                (None, Some(key)) => Some(
                    config
                        .credentials
                        .get(&key)
                        .map(|c| c.caller.clone())
                        .ok_or_else(|| format!("no access key `{key}` in the configuration"))?,
                ),
                (None, None) => None,
            };
            let headers = headers
                .iter()
                .map(|h| {
                    h.split_once(':')
                        .map(|(n, v)| (n.trim().to_ascii_lowercase(), v.trim().as_bytes().to_vec()))
                        .ok_or_else(|| format!("--header `{h}` is not NAME:VALUE"))
                })
                .collect::<Result<Vec<_>, _>>()?;
            if method.is_empty() || !method.bytes().all(|b| b.is_ascii_uppercase()) {
                return Err(format!("--method `{method}` is not an HTTP method (GET, POST, ...)"));
            }
            // The server decides on the normalised path; so does check.
            let path = lattice::request_path(&path).map_err(|BadPath(why)| format!("--path: {why}"))?;
            let info = RequestInfo {
                method: &method,
                path: &path,
                query: &query,
                headers: &headers,
                port,
            };
            let verdict = lattice::authorize(&config, svc, caller.as_ref(), &info);
            let who = caller.as_ref().map_or("anonymous", |c| c.arn.as_str());
            if verdict.allowed {
                println!(
                    "ALLOW {who} {method} {path} on {service}: {}",
                    verdict.statement.unwrap_or_default()
                );
            } else {
                println!(
                    "DENY {who} {method} {path} on {service}: {} policy, {}\n{}",
                    verdict.policy,
                    verdict
                        .statement
                        .map_or("no statement allows".into(), |s| format!("statement {s} denies")),
                    verdict.message
                );
            }
            let ok = match expect {
                Some(Expect::Allow) => verdict.allowed,
                Some(Expect::Deny) => !verdict.allowed,
                None => verdict.allowed,
            };
            Ok(if ok { ExitCode::SUCCESS } else { ExitCode::FAILURE })
        }
    }
}
