//! envoy-gen: renders the Envoy configurations (frontend and sidecars) and
//! the Lattice policies for OAuth2 in front of Amazon VPC Lattice from one
//! spec (see the README).

use clap::{Args, Parser, Subcommand};
use envoy_gen::args::{EcsArgs, LatticeArgs, ListenArgs, Overrides, TaskArgs};
use envoy_gen::{cloudformation, ecs, frontend, kubernetes, output, policies, report, sidecar, spec, validate};
use std::path::{Path, PathBuf};
use std::process::ExitCode;

#[derive(Parser)]
#[command(
    name = "envoy-gen",
    version,
    about = "Renders the Envoy configurations and Lattice policies for OAuth2 in front of Amazon VPC Lattice."
)]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Render the frontend Envoy bootstrap: jwt_authn, the jwt_scopes filter,
    /// SigV4 signing and one route per Lattice service.
    Frontend(Box<FrontendCommand>),
    /// Render the egress sidecar of one service: it signs the app's calls to
    /// the services it may call with the service's own role, and refuses any
    /// other target.
    Sidecar(SidecarCommand),
    /// Render the Lattice auth policies (service network, each service) and
    /// each role's IAM identity policy as JSON files, or check committed ones.
    Policies(PoliciesCommand),
    /// Render the ECS task definitions (Fargate) of the frontend and of each
    /// service with its sidecar, as JSON for `aws ecs register-task-definition
    /// --cli-input-json`, or check committed ones.
    Ecs(EcsCommand),
    /// Render the whole system as a CloudFormation template: the service
    /// network and services, target groups, listeners, auth policies, IAM
    /// roles, the ECS cluster, tasks and services, the frontend's load
    /// balancer, security groups and DNS records; or check a committed one.
    Cloudformation(CloudformationCommand),
    /// Render the system for Amazon EKS and the AWS Gateway API Controller:
    /// the Gateway (service network), an HTTPRoute, TargetGroupPolicy and
    /// IAMAuthPolicy per service, the Deployments with their sidecars, the
    /// frontend behind an internal load balancer, and a kustomization.yaml
    /// (`kubectl apply -k DIR`); or check committed ones.
    Kubernetes(KubernetesCommand),
    /// Check a rendered configuration with the real Envoy (`envoy --mode validate`).
    ///
    /// On this machine: the files a configuration rendered for another host names are read
    /// from where --map says (the filter at /etc/envoy/jwt_scopes.wasm from the local build),
    /// and each missing one is reported before Envoy runs, without credentials or network.
    Validate(validate::ValidateArgs),
    /// Print the JSON Schema of the spec file (for editor completion).
    Schema {
        /// Write here instead of stdout.
        #[arg(short, long, value_name = "FILE")]
        output: Option<PathBuf>,
    },
}

#[derive(Args)]
struct SpecArg {
    /// YAML spec file; flags override it.
    #[arg(long, value_name = "FILE")]
    spec: Option<PathBuf>,
}

#[derive(Args)]
struct FrontendCommand {
    #[command(flatten)]
    spec: SpecArg,
    #[command(flatten)]
    overrides: Overrides,
    /// Write here instead of stdout (only when rendering succeeds).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct SidecarCommand {
    #[command(flatten)]
    spec: SpecArg,
    /// The service whose sidecar to render.
    #[arg(long, value_name = "NAME")]
    service: String,
    #[command(flatten)]
    lattice: LatticeArgs,
    #[command(flatten)]
    listen: ListenArgs,
    /// Write here instead of stdout (only when rendering succeeds).
    #[arg(short, long, value_name = "FILE")]
    output: Option<PathBuf>,
}

#[derive(Args)]
struct PoliciesCommand {
    #[command(flatten)]
    spec: SpecArg,
    /// Write the documents into this directory (created if needed).
    #[arg(
        short,
        long,
        value_name = "DIR",
        required_unless_present = "check",
        conflicts_with = "check"
    )]
    output: Option<PathBuf>,
    /// Compare the documents in this directory with the spec; exit 1 on any difference.
    #[arg(long, value_name = "DIR")]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct EcsCommand {
    /// YAML spec file: the one the image holds at /etc/lattice-jwt/spec.yaml.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    #[command(flatten)]
    ecs: EcsArgs,
    /// Write the task definitions into this directory (created if needed).
    #[arg(
        short,
        long,
        value_name = "DIR",
        required_unless_present = "check",
        conflicts_with = "check"
    )]
    output: Option<PathBuf>,
    /// Compare the task definitions in this directory with the spec; exit 1 on any difference.
    #[arg(long, value_name = "DIR")]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct KubernetesCommand {
    /// YAML spec file: the one the image holds at /etc/lattice-jwt/spec.yaml.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    #[command(flatten)]
    kubernetes: kubernetes::KubernetesArgs,
    /// Write the manifests into this directory (created if needed; only when rendering succeeds).
    #[arg(
        short,
        long,
        value_name = "DIR",
        required_unless_present = "check",
        conflicts_with = "check"
    )]
    output: Option<PathBuf>,
    /// Compare the manifests in this directory with the spec; exit 1 on any difference.
    #[arg(long, value_name = "DIR")]
    check: Option<PathBuf>,
}

#[derive(Args)]
struct CloudformationCommand {
    /// YAML spec file: the one the image holds at /etc/lattice-jwt/spec.yaml.
    #[arg(long, value_name = "FILE")]
    spec: PathBuf,
    #[command(flatten)]
    task: TaskArgs,
    /// A network stack, one stack per service and the frontend's, tied by
    /// exports and imports: -o and --check then name a directory.
    #[arg(long)]
    split: bool,
    /// Write the template here (a directory with --split; only when rendering succeeds).
    #[arg(
        short,
        long,
        value_name = "PATH",
        required_unless_present = "check",
        conflicts_with = "check"
    )]
    output: Option<PathBuf>,
    /// Compare the committed template (a directory with --split) with the spec; exit 1 on any difference.
    #[arg(long, value_name = "PATH")]
    check: Option<PathBuf>,
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let result = match cli.command {
        Command::Frontend(command) => run_frontend(*command),
        Command::Sidecar(command) => run_sidecar(command),
        Command::Policies(command) => run_policies(command),
        Command::Ecs(command) => run_ecs(command),
        Command::Cloudformation(command) => run_cloudformation(command),
        Command::Kubernetes(command) => run_kubernetes(command),
        Command::Validate(args) => validate::run(&args),
        Command::Schema { output } => spec::schema()
            .map_err(|e| format!("error: {e}\n"))
            .and_then(|schema| emit(output.as_deref(), &format!("{schema:#}\n"))),
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

/// The spec file's path and text, when one is given.
fn read_spec(arg: &SpecArg) -> Result<Option<(PathBuf, String)>, String> {
    match &arg.spec {
        Some(path) => Ok(Some((path.clone(), read_spec_file(path)?))),
        None => Ok(None),
    }
}

/// The text of the spec file at `path`, or an error naming it.
fn read_spec_file(path: &Path) -> Result<String, String> {
    std::fs::read_to_string(path).map_err(|e| format!("error: {}: {e}\n", path.display()))
}

fn run_frontend(command: FrontendCommand) -> Result<(), String> {
    let source = read_spec(&command.spec)?;
    let source = source.as_ref().map(|(p, t)| (p.as_path(), t.as_str()));
    let system = envoy_gen::load(source, &command.overrides)?;
    let text = frontend::render(&system).map_err(|p| report(&p, source))?;
    emit(command.output.as_deref(), &text)
}

fn run_sidecar(command: SidecarCommand) -> Result<(), String> {
    let source = read_spec(&command.spec)?;
    let source = source.as_ref().map(|(p, t)| (p.as_path(), t.as_str()));
    let overrides = Overrides {
        lattice: command.lattice,
        ..Overrides::default()
    };
    let system = envoy_gen::load(source, &overrides)?;
    let text = sidecar::render(&system, &command.service, &command.listen).map_err(|p| report(&p, source))?;
    emit(command.output.as_deref(), &text)
}

fn run_policies(command: PoliciesCommand) -> Result<(), String> {
    let source = read_spec(&command.spec)?;
    let source = source.as_ref().map(|(p, t)| (p.as_path(), t.as_str()));
    let system = envoy_gen::load(source, &Overrides::default())?;
    let rendered = policies::render(&system).map_err(|p| report(&p, source))?;
    for note in &rendered.notes {
        eprintln!("{note}");
    }
    write_or_check(
        command.output.as_deref(),
        command.check.as_deref(),
        "the policies",
        "`envoy-gen policies --spec ... -o DIR`",
        |dir| policies::drift(dir, &rendered),
        |dir| policies::write(dir, &rendered),
    )
}

/// `-o DIR` writes the rendered files; `--check DIR` compares them with
/// DIR and names every difference (exit 1 on drift).
fn write_or_check<E: std::fmt::Display, D: std::fmt::Display>(
    output: Option<&std::path::Path>,
    check: Option<&std::path::Path>,
    what: &str,
    rerun: &str,
    drift: impl Fn(&std::path::Path) -> Vec<D>,
    write: impl Fn(&std::path::Path) -> Result<(), E>,
) -> Result<(), String> {
    match (output, check) {
        (_, Some(dir)) => {
            let drift = drift(dir);
            if drift.is_empty() {
                println!("{}: {what} match the spec", dir.display());
                Ok(())
            } else {
                let mut message: String = drift.iter().map(|d| format!("error: {d}\n")).collect();
                message.push_str(&format!(
                    "error: {what} differ from the spec: run {rerun} and review the diff\n"
                ));
                Err(message)
            }
        }
        (Some(dir), None) => write(dir).map_err(|e| format!("error: {e}\n")),
        (None, None) => Err("error: give -o DIR or --check DIR\n".into()),
    }
}

fn run_ecs(command: EcsCommand) -> Result<(), String> {
    let text = read_spec_file(&command.spec)?;
    let source = Some((command.spec.as_path(), text.as_str()));
    let system = envoy_gen::load(source, &Overrides::default())?;
    let files = ecs::render(&system, &command.ecs).map_err(|p| report(&p, source))?;
    write_or_check(
        command.output.as_deref(),
        command.check.as_deref(),
        "the task definitions",
        "`envoy-gen ecs --spec ... -o DIR` with the same flags",
        |dir| ecs::drift(dir, &files),
        |dir| ecs::write(dir, &files),
    )
}

fn run_kubernetes(command: KubernetesCommand) -> Result<(), String> {
    let text = read_spec_file(&command.spec)?;
    let source = Some((command.spec.as_path(), text.as_str()));
    let system = envoy_gen::load(source, &Overrides::default())?;
    let files = kubernetes::render(&system, &command.kubernetes).map_err(|p| report(&p, source))?;
    write_or_check(
        command.output.as_deref(),
        command.check.as_deref(),
        "the manifests",
        "`envoy-gen kubernetes --spec ... -o DIR` with the same flags",
        |dir| kubernetes::drift(dir, &files),
        |dir| kubernetes::write(dir, &files),
    )
}

fn run_cloudformation(command: CloudformationCommand) -> Result<(), String> {
    let text = read_spec_file(&command.spec)?;
    let source = Some((command.spec.as_path(), text.as_str()));
    let system = envoy_gen::load(source, &Overrides::default())?;
    let rendered = cloudformation::render(&system, &command.task, command.split).map_err(|p| report(&p, source))?;
    for note in &rendered.notes {
        eprintln!("{note}");
    }
    write_or_check(
        command.output.as_deref(),
        command.check.as_deref(),
        if command.split {
            "the stacks"
        } else {
            "the stack's resources"
        },
        "`envoy-gen cloudformation --spec ... -o PATH` with the same flags",
        |path| cloudformation::drift(path, &rendered, command.split),
        |path| cloudformation::write(path, &rendered, command.split),
    )
}
