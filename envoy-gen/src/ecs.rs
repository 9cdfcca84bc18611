//! `envoy-gen ecs`: the ECS task definitions that run the system on Fargate,
//! as `aws ecs register-task-definition --cli-input-json file://...` reads
//! them: `frontend.json` (the edge Envoy) and `<service>.json` for each
//! service (its application and, when it calls other services, the egress
//! sidecar that signs those calls).
//!
//! Each task runs as the spec's IAM role for its component, the role whose
//! identity policy `envoy-gen policies` writes under `roles/`, and each Envoy
//! signs with the task role only (`CREDENTIALS_SOURCE=container`: never an
//! EC2 instance role, which would sign as another identity). The Envoy
//! containers run the lattice-jwt image with the spec built in
//! (`deploy/ecs/Dockerfile`) and are configured by the variables its
//! entrypoint reads. No value of the spec is repeated in a task definition,
//! so the two cannot disagree, and no value is a secret.
//!
//! Written with serde structs rather than a template: each struct below is
//! one shape of the ECS API (RegisterTaskDefinition's request,
//! ContainerDefinition, HealthCheck, ...) with the API's member names, so a
//! misspelt member cannot be written, an absent option is left out rather
//! than rendered empty, and serde_json escapes every value. `tests/ecs.rs`
//! checks the output against the API's model.

use crate::args::{Arch, EcsArgs, TaskArgs};
use crate::model::{Caller, Problem, Role, Service, SocketAddress, System};
use crate::output;
use crate::spec::Origin;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// Where `deploy/ecs/Dockerfile` puts the spec in the image.
pub const SPEC_PATH: &str = "/etc/lattice-jwt/spec.yaml";
/// The image's run directory (`ENVOY_RUN_DIR`): the rendered configuration
/// and the admin address its health check reads. It is the only path the
/// Envoy containers write, a task volume, so their root file system is
/// read-only.
pub const RUN_DIR: &str = "/tmp/envoy";
const RUN_VOLUME: &str = "envoy-run";
/// The image's health check (`deploy/healthcheck.sh`: Envoy's `/ready`) with
/// the image's HEALTHCHECK timings; ECS runs only the checks a task
/// definition names, never the image's own.
const HEALTHCHECK: HealthCheck = HealthCheck {
    command: ["CMD", "/usr/local/bin/lattice-jwt-healthcheck"],
    interval: 10,
    timeout: 3,
    retries: 3,
    start_period: 60,
};
/// The image's user, `envoy`.
const ENVOY_USER: &str = "101";

/// How long an Envoy drains after ECS's SIGTERM (`ENVOY_DRAIN_SECONDS`: the
/// entrypoint fails readiness, lets requests in flight complete, then stops
/// Envoy), and how long ECS waits before SIGKILL: the drain plus margin.
const DRAIN_SECONDS: u32 = 20;
const STOP_TIMEOUT_SECONDS: u32 = DRAIN_SECONDS + 10;
/// The frontend's task definition; each service's is `<name>.json`.
pub const FRONTEND_FILE: &str = "frontend.json";
const DEFAULT_CPU: u32 = 512;
const DEFAULT_MEMORY: u32 = 1024;
const DEFAULT_LOG_GROUP: &str = "/ecs/lattice-jwt";
/// The role AWS's guides create for pulling images and writing logs.
const DEFAULT_EXECUTION_ROLE: &str = "ecsTaskExecutionRole";
/// What an application must reach directly although `HTTP_PROXY` names its
/// sidecar: loopback, and the task's credentials and metadata endpoints
/// (ECS's 169.254.170.2, EC2's 169.254.169.254), plain HTTP that the
/// sidecar would refuse (it routes only the services the app may call).
const NO_PROXY: &str = "localhost,127.0.0.1,::1,169.254.170.2,169.254.169.254";

/// The task definition of service `name`, relative to the output directory.
pub fn service_file(name: &str) -> PathBuf {
    PathBuf::from(format!("{name}.json"))
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct TaskDefinition {
    family: String,
    #[serde(skip_serializing_if = "Option::is_none")]
    task_role_arn: Option<String>,
    execution_role_arn: String,
    network_mode: &'static str,
    requires_compatibilities: [&'static str; 1],
    runtime_platform: RuntimePlatform,
    cpu: String,
    memory: String,
    container_definitions: Vec<ContainerDefinition>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    volumes: Vec<Volume>,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct RuntimePlatform {
    cpu_architecture: &'static str,
    operating_system_family: &'static str,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerDefinition {
    name: &'static str,
    image: String,
    essential: bool,
    #[serde(skip_serializing_if = "Option::is_none")]
    user: Option<&'static str>,
    #[serde(skip_serializing_if = "Option::is_none")]
    readonly_root_filesystem: Option<bool>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    port_mappings: Vec<PortMapping>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    environment: Vec<KeyValuePair>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    mount_points: Vec<MountPoint>,
    #[serde(skip_serializing_if = "Vec::is_empty")]
    depends_on: Vec<ContainerDependency>,
    #[serde(skip_serializing_if = "Option::is_none")]
    health_check: Option<HealthCheck>,
    #[serde(skip_serializing_if = "Option::is_none")]
    stop_timeout: Option<u32>,
    log_configuration: LogConfiguration,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct PortMapping {
    /// What `--load-balancers` and `--vpc-lattice-configurations` name.
    name: &'static str,
    container_port: u16,
    protocol: &'static str,
}

#[derive(Debug, Serialize)]
struct KeyValuePair {
    name: &'static str,
    value: String,
}

fn variable(name: &'static str, value: impl Into<String>) -> KeyValuePair {
    KeyValuePair {
        name,
        value: value.into(),
    }
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct MountPoint {
    source_volume: &'static str,
    container_path: &'static str,
    read_only: bool,
}

#[derive(Debug, Serialize)]
#[serde(rename_all = "camelCase")]
struct ContainerDependency {
    container_name: &'static str,
    condition: &'static str,
}

#[derive(Debug, Clone, Copy, Serialize)]
#[serde(rename_all = "camelCase")]
struct HealthCheck {
    command: [&'static str; 2],
    interval: u32,
    timeout: u32,
    retries: u32,
    start_period: u32,
}

#[derive(Debug, Clone, Serialize)]
#[serde(rename_all = "camelCase")]
struct LogConfiguration {
    log_driver: &'static str,
    options: BTreeMap<&'static str, String>,
}

/// A bind-mount volume without `host`: on Fargate, task storage that lives
/// as long as the task (Fargate has no tmpfs mounts).
#[derive(Debug, Serialize)]
struct Volume {
    name: &'static str,
}

/// What a deployment gives the task definitions: `envoy-gen ecs` takes
/// them from its flags, the CloudFormation stack names its own resources.
#[derive(Debug, Clone, Default)]
pub struct Provided {
    /// The lattice-jwt image (the frontend and every sidecar).
    pub image: String,
    /// Each service's application image, by service name.
    pub app_images: BTreeMap<String, String>,
    pub execution_role_arn: String,
    pub log_group: String,
    /// How a task role is named, by the role's ARN in the spec (absent: by
    /// that ARN).
    pub role_arns: BTreeMap<String, String>,
    /// The host of each service that has none in the spec (no custom domain
    /// name), by service name: `LATTICE_SERVICE_HOSTS` of the Envoys that
    /// call it.
    pub lattice_hosts: BTreeMap<String, String>,
}

/// The command line's settings, checked.
struct Settings {
    provided: Provided,
    app_ports: BTreeMap<String, u16>,
    family_prefix: String,
    cpu: u32,
    memory: u32,
    arch: &'static str,
    lattice_ca: Option<String>,
}

fn problem(origin: Origin, field: &str, message: impl Into<String>) -> Problem {
    Problem {
        origin,
        field: field.into(),
        message: message.into(),
    }
}

fn flag_problem(flag: &'static str, message: impl Into<String>) -> Problem {
    problem(Origin::Flag(flag), flag, message)
}

/// A container image reference as ECS takes it: `repository-url/image:tag`
/// or `...@sha256:<hex>`, up to 255 characters before any `@`.
pub(crate) fn image_problem(image: &str) -> Option<String> {
    let name = image.split('@').next().unwrap_or_default();
    if image.is_empty() {
        Some("is empty".into())
    } else if name.len() > 255 {
        Some(format!(
            "`{image}` is longer than ECS allows (255 characters before any `@`)"
        ))
    } else if !image
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"-_:./#@".contains(&b))
    {
        Some(format!(
            "`{}` is not an image reference (repository-url/image:tag or ...@sha256:digest)",
            image.escape_debug()
        ))
    } else {
        None
    }
}

/// `--app-image SERVICE=IMAGE`, checked: an image reference for every
/// service of the spec (ECS and Kubernetes alike).
pub(crate) fn app_images(system: &System, pairs: &[String], problems: &mut Vec<Problem>) -> BTreeMap<String, String> {
    let app_images = per_service(system, problems, "--app-image", pairs);
    for (name, image) in &app_images {
        if let Some(message) = image_problem(image) {
            problems.push(flag_problem("--app-image", format!("{name}: {message}")));
        }
    }
    let missing: Vec<&str> = system
        .services
        .iter()
        .filter(|s| !app_images.contains_key(&s.name))
        .map(|s| s.name.as_str())
        .collect();
    if !missing.is_empty() {
        problems.push(flag_problem(
            "--app-image",
            format!(
                "no image for {}: give --app-image SERVICE=IMAGE for every service",
                missing.join(", ")
            ),
        ));
    }
    app_images
}

/// `SERVICE=VALUE` pairs of `flag`, one per service of the spec.
pub(crate) fn per_service(
    system: &System,
    problems: &mut Vec<Problem>,
    flag: &'static str,
    pairs: &[String],
) -> BTreeMap<String, String> {
    let mut out = BTreeMap::new();
    for pair in pairs {
        let Some((name, value)) = pair.split_once('=') else {
            problems.push(flag_problem(flag, format!("`{pair}` is not SERVICE=VALUE")));
            continue;
        };
        if system.service(name).is_none() {
            let names: Vec<&str> = system.services.iter().map(|s| s.name.as_str()).collect();
            problems.push(flag_problem(
                flag,
                format!("`{name}` is not a service of the spec ({})", names.join(", ")),
            ));
        } else if out.insert(name.to_string(), value.to_string()).is_some() {
            problems.push(flag_problem(flag, format!("service `{name}` is given twice")));
        }
    }
    out
}

/// The task sizes Fargate offers: memory (MiB) from, to and in steps of,
/// for each CPU size (RegisterTaskDefinition, `memory`).
const FARGATE_SIZES: [(u32, u32, u32, u32); 7] = [
    (256, 512, 2048, 512),
    (512, 1024, 4096, 1024),
    (1024, 2048, 8192, 1024),
    (2048, 4096, 16384, 1024),
    (4096, 8192, 30720, 1024),
    (8192, 16384, 61440, 4096),
    (16384, 32768, 122880, 8192),
];

fn fargate_size_problem(cpu: u32, memory: u32) -> Option<Problem> {
    let Some(&(_, from, to, step)) = FARGATE_SIZES.iter().find(|(c, ..)| *c == cpu) else {
        let sizes: Vec<String> = FARGATE_SIZES.iter().map(|(c, ..)| c.to_string()).collect();
        return Some(flag_problem(
            "--cpu",
            format!("{cpu} is not a Fargate task size ({})", sizes.join(", ")),
        ));
    };
    // 256 CPU units take 512, 1024 or 2048: steps of 512 from 512.
    let fits = (from..=to).contains(&memory) && (memory - from).is_multiple_of(step);
    (!fits).then(|| {
        flag_problem(
            "--memory",
            format!("{memory} MiB is not a Fargate size for {cpu} CPU units ({from} to {to} MiB in steps of {step})"),
        )
    })
}

/// An IAM role ARN, `arn:<partition>:iam::<account>:role/<path/name>`.
fn is_role_arn(text: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, resource] => {
            partition.starts_with("aws")
                && crate::model::is_account_id(account)
                && resource.strip_prefix("role/").is_some_and(|path| {
                    path.split('/').all(|n| {
                        !n.is_empty() && n.bytes().all(|b| b.is_ascii_alphanumeric() || b"+=,.@_-".contains(&b))
                    })
                })
        }
        _ => false,
    }
}

/// `envoy-gen ecs`'s settings: the deployment's values from its flags,
/// then the tasks' own.
fn settings(system: &System, args: &EcsArgs) -> Result<Settings, Vec<Problem>> {
    let mut problems = Vec::new();
    let account = system.account.as_deref().unwrap_or_default();
    if let Some(message) = image_problem(&args.image) {
        problems.push(flag_problem("--image", message));
    }
    let app_images = app_images(system, &args.app_images, &mut problems);
    let execution_role_arn = match &args.execution_role {
        Some(arn) if is_role_arn(arn) => arn.clone(),
        Some(arn) => {
            problems.push(flag_problem(
                "--execution-role",
                format!("`{arn}` is not an IAM role ARN like arn:aws:iam::111122223333:role/NAME"),
            ));
            String::new()
        }
        None => format!("arn:aws:iam::{account}:role/{DEFAULT_EXECUTION_ROLE}"),
    };
    let log_group = args.log_group.clone().unwrap_or_else(|| DEFAULT_LOG_GROUP.into());
    // CloudWatch Logs: 1-512 of `[.\-_/#A-Za-z0-9]`.
    if log_group.is_empty()
        || log_group.len() > 512
        || !log_group
            .bytes()
            .all(|b| b.is_ascii_alphanumeric() || b".-_/#".contains(&b))
    {
        problems.push(flag_problem(
            "--log-group",
            format!("`{log_group}` is not a log group name (1-512 letters, digits and `.-_/#`)"),
        ));
    }
    let provided = Provided {
        image: args.image.clone(),
        app_images,
        execution_role_arn,
        log_group,
        role_arns: BTreeMap::new(),
        lattice_hosts: BTreeMap::new(),
    };
    let hostless: Vec<&str> = system
        .services
        .iter()
        .filter(|s| s.upstream.is_none())
        .map(|s| s.name.as_str())
        .collect();
    if !hostless.is_empty() {
        problems.push(problem(
            Origin::Default,
            "services",
            format!(
                "{} have no host (no `host`, no `domain`): give each its Lattice DNS name as `host`, or deploy with \
                 `envoy-gen cloudformation`, which passes the names to the containers",
                hostless.join(", ")
            ),
        ));
    }
    task_settings(system, &args.task, provided, problems)
}

fn task_settings(
    system: &System,
    args: &TaskArgs,
    provided: Provided,
    mut problems: Vec<Problem>,
) -> Result<Settings, Vec<Problem>> {
    if system.account.is_none() {
        problems.push(problem(
            Origin::Default,
            "account",
            "is required for ECS task definitions (the 12-digit AWS account of the task roles)",
        ));
    }
    if args.no_frontend {
        let admitting: Vec<&str> = system
            .services
            .iter()
            .filter(|s| s.callers.iter().any(|c| matches!(c, Caller::Frontend { .. })))
            .map(|s| s.name.as_str())
            .collect();
        if !admitting.is_empty() {
            problems.push(flag_problem(
                "--no-frontend",
                format!(
                    "{} admit the frontend (`from: frontend`): remove those callers, or deploy the frontend",
                    admitting.join(", ")
                ),
            ));
        }
    } else if system.frontend.role.is_none() {
        problems.push(problem(
            Origin::Default,
            "frontend.role",
            "is required for ECS task definitions: the frontend's task runs as this role and Envoy signs with it \
             (or give --no-frontend)",
        ));
    }
    // Every service a `lattice.endpoint` sends elsewhere than its own host
    // (a service without a host yet would be sent there too).
    let endpoints: Vec<&str> = system
        .services
        .iter()
        .filter(|s| match &s.upstream {
            Some(u) => {
                u.connect
                    != SocketAddress {
                        address: u.host.clone(),
                        port: 443,
                    }
            }
            None => system.lattice_endpoint.is_some(),
        })
        .map(|s| s.name.as_str())
        .collect();
    if !endpoints.is_empty() {
        problems.push(problem(
            Origin::Default,
            "lattice.endpoint",
            format!(
                "is for local testing: the tasks would connect there instead of to {}; remove it from the spec the image holds",
                endpoints.join(", ")
            ),
        ));
    }

    let mut app_ports = BTreeMap::new();
    for (name, port) in per_service(system, &mut problems, "--app-port", &args.app_ports) {
        match port.parse::<u16>() {
            Ok(port) if port > 0 => {
                app_ports.insert(name, port);
            }
            _ => problems.push(flag_problem(
                "--app-port",
                format!("{name}: `{port}` is not a port (1-65535)"),
            )),
        }
    }
    for service in system.services.iter().filter(|s| !s.calls.is_empty()) {
        let port = app_ports.get(&service.name).copied().unwrap_or(service.port);
        let sidecar = &service.sidecar;
        if port == sidecar.listen.port || port == sidecar.admin.port {
            problems.push(flag_problem(
                "--app-port",
                format!(
                    "{}: port {port} is its sidecar's (the containers of a task share one network namespace)",
                    service.name
                ),
            ));
        }
    }

    let family_prefix = match (&args.family_prefix, &system.network.name) {
        (Some(prefix), _) => prefix.clone(),
        (None, Some(network)) => format!("{network}-"),
        (None, None) => String::new(),
    };
    // Families: up to 255 letters, digits, underscores and hyphens.
    let longest = system
        .services
        .iter()
        .map(|s| s.name.len())
        .chain(["frontend".len()])
        .max();
    if !family_prefix
        .bytes()
        .all(|b| b.is_ascii_alphanumeric() || b"_-".contains(&b))
        || family_prefix.len() + longest.unwrap_or_default() > 255
    {
        problems.push(problem(
            if args.family_prefix.is_some() {
                Origin::Flag("--family-prefix")
            } else {
                Origin::Default
            },
            if args.family_prefix.is_some() {
                "--family-prefix"
            } else {
                "network.name"
            },
            format!("`{family_prefix}` cannot begin a task definition family (up to 255 letters, digits, `_` and `-`)"),
        ));
    }
    let cpu = args.cpu.unwrap_or(DEFAULT_CPU);
    let memory = args.memory.unwrap_or(DEFAULT_MEMORY);
    problems.extend(fargate_size_problem(cpu, memory));
    if let Some(ca) = &args.lattice_ca {
        if !ca.starts_with('/') || ca.chars().any(char::is_control) {
            problems.push(flag_problem(
                "--lattice-ca",
                format!("`{}` is not an absolute path in the image", ca.escape_debug()),
            ));
        }
    }
    if !problems.is_empty() {
        // Flags in the order the command takes them, each flag's problems
        // in the order found.
        const FLAGS: [&str; 9] = [
            "--image",
            "--app-image",
            "--app-port",
            "--execution-role",
            "--log-group",
            "--family-prefix",
            "--cpu",
            "--memory",
            "--lattice-ca",
        ];
        problems.sort_by_key(|p| match p.origin {
            Origin::Flag(flag) => FLAGS.iter().position(|f| *f == flag).unwrap_or(FLAGS.len()),
            _ => 0,
        });
        return Err(problems);
    }
    Ok(Settings {
        provided,
        app_ports,
        family_prefix,
        cpu,
        memory,
        arch: match args.arch {
            Arch::X86_64 => "X86_64",
            Arch::Arm64 => "ARM64",
        },
        lattice_ca: args.lattice_ca.clone(),
    })
}

impl Settings {
    /// `LATTICE_SERVICE_HOSTS` for an Envoy that calls `services`: the
    /// hosts the deployment gives for those without one in the spec.
    fn lattice_hosts<'a>(&self, services: impl Iterator<Item = &'a str>) -> Option<KeyValuePair> {
        let entries: Vec<String> = services
            .filter_map(|name| {
                self.provided
                    .lattice_hosts
                    .get(name)
                    .map(|host| format!("{name}={host}"))
            })
            .collect();
        (!entries.is_empty()).then(|| variable("LATTICE_SERVICE_HOSTS", entries.join(",")))
    }

    fn logs(&self, system: &System, family: &str) -> LogConfiguration {
        LogConfiguration {
            log_driver: "awslogs",
            options: BTreeMap::from([
                ("awslogs-group", self.provided.log_group.clone()),
                ("awslogs-region", system.signing.region.clone()),
                // Streams are <family>/<container>/<task id>.
                ("awslogs-stream-prefix", family.to_string()),
                // Envoy never waits for CloudWatch: when logs cannot be
                // delivered, lines are dropped instead of requests stalled.
                ("mode", "non-blocking".to_string()),
            ]),
        }
    }

    /// An Envoy of the image: the entrypoint's variables for `role`, the task
    /// role's credentials only, a read-only root with the run directory on
    /// the task volume, and the image's health check.
    fn envoy(
        &self,
        name: &'static str,
        mut environment: Vec<KeyValuePair>,
        port_mappings: Vec<PortMapping>,
        logs: LogConfiguration,
    ) -> ContainerDefinition {
        environment.extend([
            variable("SPEC_FILE", SPEC_PATH),
            variable("CREDENTIALS_SOURCE", "container"),
            variable("ENVOY_RUN_DIR", RUN_DIR),
            variable("ENVOY_DRAIN_SECONDS", DRAIN_SECONDS.to_string()),
        ]);
        environment.extend(self.lattice_ca.as_ref().map(|ca| variable("LATTICE_CA", ca.as_str())));
        ContainerDefinition {
            name,
            image: self.provided.image.clone(),
            essential: true,
            user: Some(ENVOY_USER),
            readonly_root_filesystem: Some(true),
            port_mappings,
            environment,
            mount_points: vec![MountPoint {
                source_volume: RUN_VOLUME,
                container_path: RUN_DIR,
                read_only: false,
            }],
            depends_on: Vec::new(),
            health_check: Some(HEALTHCHECK),
            stop_timeout: Some(STOP_TIMEOUT_SECONDS),
            log_configuration: logs,
        }
    }

    fn task(&self, family: String, role: Option<&Role>, containers: Vec<ContainerDefinition>) -> TaskDefinition {
        let volumes = if containers.iter().any(|c| !c.mount_points.is_empty()) {
            vec![Volume { name: RUN_VOLUME }]
        } else {
            Vec::new()
        };
        TaskDefinition {
            family,
            task_role_arn: role.map(|r| {
                self.provided
                    .role_arns
                    .get(&r.arn)
                    .cloned()
                    .unwrap_or_else(|| r.arn.clone())
            }),
            execution_role_arn: self.provided.execution_role_arn.clone(),
            network_mode: "awsvpc",
            requires_compatibilities: ["FARGATE"],
            runtime_platform: RuntimePlatform {
                cpu_architecture: self.arch,
                operating_system_family: "LINUX",
            },
            cpu: self.cpu.to_string(),
            memory: self.memory.to_string(),
            container_definitions: containers,
            volumes,
        }
    }
}

/// `http://ADDR:PORT`, with an IPv6 address in brackets.
pub(crate) fn http_url(address: &SocketAddress) -> String {
    if address.address.contains(':') {
        format!("http://[{}]:{}", address.address, address.port)
    } else {
        format!("http://{}:{}", address.address, address.port)
    }
}

fn frontend_task(system: &System, settings: &Settings) -> TaskDefinition {
    let family = format!("{}frontend", settings.family_prefix);
    let mut environment = vec![variable("ENVOY_ROLE", "frontend")];
    environment.extend(settings.lattice_hosts(system.services.iter().map(|s| s.name.as_str())));
    let envoy = settings.envoy(
        "frontend",
        environment,
        vec![PortMapping {
            name: "http",
            container_port: system.frontend.listen.port,
            protocol: "tcp",
        }],
        settings.logs(system, &family),
    );
    settings.task(family, system.frontend.role.as_ref(), vec![envoy])
}

/// The application, and its sidecar when it calls other services: the app
/// starts once the sidecar is ready, and finds it through `HTTP_PROXY`.
fn service_task(system: &System, settings: &Settings, service: &Service) -> Result<TaskDefinition, String> {
    let family = format!("{}{}", settings.family_prefix, service.name);
    let logs = settings.logs(system, &family);
    let image = settings
        .provided
        .app_images
        .get(&service.name)
        .ok_or_else(|| format!("bug in envoy-gen: no image for `{}`", service.name))?;
    let mut app = ContainerDefinition {
        name: "app",
        image: image.clone(),
        essential: true,
        user: None,
        readonly_root_filesystem: None,
        port_mappings: vec![PortMapping {
            name: "app",
            container_port: settings.app_ports.get(&service.name).copied().unwrap_or(service.port),
            protocol: "tcp",
        }],
        environment: Vec::new(),
        mount_points: Vec::new(),
        depends_on: Vec::new(),
        health_check: None,
        stop_timeout: None,
        log_configuration: logs.clone(),
    };
    let mut containers = Vec::new();
    if !service.calls.is_empty() {
        if service.role.is_none() {
            return Err(format!(
                "bug in envoy-gen: `{}` calls other services but has no role",
                service.name
            ));
        }
        let proxy = http_url(&service.sidecar.listen);
        // curl reads only the lower-case names, most other clients either.
        app.environment = vec![
            variable("HTTP_PROXY", proxy.as_str()),
            variable("http_proxy", proxy.as_str()),
            variable("NO_PROXY", NO_PROXY),
            variable("no_proxy", NO_PROXY),
        ];
        app.depends_on = vec![ContainerDependency {
            container_name: "sidecar",
            condition: "HEALTHY",
        }];
        containers.push(app);
        let mut environment = vec![
            variable("ENVOY_ROLE", "sidecar"),
            variable("SERVICE_NAME", service.name.as_str()),
        ];
        environment.extend(settings.lattice_hosts(service.calls.iter().map(String::as_str)));
        containers.push(settings.envoy("sidecar", environment, Vec::new(), logs));
    } else {
        containers.push(app);
    }
    Ok(settings.task(family, service.role.as_ref(), containers))
}

/// Every task definition, by file name, or what the spec and flags lack.
/// The task definitions of a deployment: the frontend's (`None`, unless
/// `--no-frontend`) and each service's, in the ECS API's JSON.
pub fn task_definitions(
    system: &System,
    args: &TaskArgs,
    provided: Provided,
) -> Result<Vec<(Option<String>, serde_json::Value)>, Vec<Problem>> {
    let settings = task_settings(system, args, provided, Vec::new())?;
    tasks(system, args, &settings)
        .into_iter()
        .map(|(name, task)| Ok((name, to_value(&task?)?)))
        .collect()
}

fn bug(message: String) -> Vec<Problem> {
    vec![problem(Origin::Default, "", message)]
}

fn to_value(task: &TaskDefinition) -> Result<serde_json::Value, Vec<Problem>> {
    serde_json::to_value(task).map_err(|e| bug(format!("bug in envoy-gen: {e}")))
}

/// A task definition, by the service it runs (`None`: the frontend).
type Task = (Option<String>, Result<TaskDefinition, Vec<Problem>>);

fn tasks(system: &System, args: &TaskArgs, settings: &Settings) -> Vec<Task> {
    let mut tasks = Vec::new();
    if !args.no_frontend {
        tasks.push((None, Ok(frontend_task(system, settings))));
    }
    for service in &system.services {
        tasks.push((
            Some(service.name.clone()),
            service_task(system, settings, service).map_err(bug),
        ));
    }
    tasks
}

/// Every task definition, by file name, or what the spec and flags lack.
pub fn render(system: &System, args: &EcsArgs) -> Result<output::Files, Vec<Problem>> {
    let settings = settings(system, args)?;
    let mut files = output::Files::new();
    for (name, task) in tasks(system, &args.task, &settings) {
        let path = name
            .as_deref()
            .map_or_else(|| PathBuf::from(FRONTEND_FILE), service_file);
        let text = serde_json::to_string_pretty(&task?).map_err(|e| bug(format!("bug in envoy-gen: {e}")))?;
        files.insert(path, text + "\n");
    }
    Ok(files)
}

/// Writes the task definitions into `dir` and removes the `.json` files
/// there that the spec no longer produces.
pub fn write(dir: &Path, files: &output::Files) -> Result<(), String> {
    output::write_files(dir, files, &output::json_files(dir, ""))
}

/// What differs between `dir` and the task definitions, one line each.
pub fn drift(dir: &Path, files: &output::Files) -> Vec<String> {
    output::drift(dir, files, &output::json_files(dir, ""))
}
