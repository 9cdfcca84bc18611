//! `envoy-gen kubernetes`: the system on Amazon EKS, for the AWS Gateway API
//! Controller, as plain manifests and a `kustomization.yaml`, so that
//! `kubectl apply -k DIR` deploys the spec:
//!
//! - `network.yaml`: the service network (`ServiceNetwork`), the `Gateway`
//!   that stands for it (GatewayClass `amazon-vpc-lattice`, one HTTPS
//!   listener), its VPC association and its auth policy (`IAMAuthPolicy`);
//! - `services/<name>.yaml`: the application's `Deployment` (with the
//!   egress sidecar when it calls other services), its `Service`, the
//!   `HTTPRoute` that is its Lattice service (its host as the route's
//!   hostname), its `TargetGroupPolicy` (health check) and auth policy, and
//!   its `ServiceAccount`;
//! - `frontend.yaml`: the edge Envoy's `Deployment` (probes on `/health` and
//!   `/ready`), `PodDisruptionBudget`, `ServiceAccount` and an internal
//!   `Service` of type `LoadBalancer` for the AWS Load Balancer Controller;
//! - `iam/trust/<role>.json`: each role's trust policy, for this cluster's
//!   pods of that role's ServiceAccount only (its identity policy is the one
//!   `envoy-gen policies` writes);
//! - `pod-identity/`: with `--identity pod-identity` (the default), each role's
//!   EKS Pod Identity association as an ACK `PodIdentityAssociation`
//!   (`kubectl apply -k DIR/pod-identity` where ACK's EKS controller runs; or
//!   the same with `aws eks create-pod-identity-association`). With
//!   `--identity irsa` the ServiceAccounts carry `eks.amazonaws.com/role-arn`.
//!
//! One source of truth: every `IAMAuthPolicy` holds the document
//! `envoy-gen policies` writes (`policies::documents`, by ARN), and the Envoy
//! containers run the lattice-jwt image with the spec built in, configured
//! by the variables its entrypoint reads, as on ECS: the entrypoint renders
//! the frontend or the sidecar from the spec at start. No value of the spec
//! is repeated in an Envoy's environment but the service it runs for.
//!
//! The controller names a route's Lattice service `<route>-<namespace>`,
//! each part cut to 20 and 18 characters: a name that would be cut is
//! refused, so the Lattice service is always `<service>-<namespace>`.
//! Manifests are built as JSON values with the API's member names and
//! written as YAML; `tests/kubernetes.rs` validates them against the
//! Kubernetes API schemas and the controllers' CRDs.

use crate::ecs;
use crate::model::{Problem, Role, Service, System};
use crate::output;
use crate::policies::{self, ByArn};
use crate::spec::Origin;
use serde_json::{json, Value};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// How each pod gets its IAM role.
#[derive(Debug, Default, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum Identity {
    /// EKS Pod Identity: the Envoys sign with the container credentials
    /// endpoint EKS sets (`CREDENTIALS_SOURCE=container`).
    #[default]
    PodIdentity,
    /// IAM roles for service accounts: the ServiceAccount names the role and
    /// the Envoys exchange the projected token at STS
    /// (`CREDENTIALS_SOURCE=web_identity`).
    Irsa,
}

/// How the system runs on EKS (`envoy-gen kubernetes`).
#[derive(Debug, Default, Clone, clap::Args)]
pub struct KubernetesArgs {
    /// The lattice-jwt image holding the spec at /etc/lattice-jwt/spec.yaml
    /// (deploy/ecs/Dockerfile): the frontend and every sidecar run it.
    #[arg(long, value_name = "IMAGE")]
    pub image: String,
    /// A service's application image; one for every service of the spec.
    #[arg(long = "app-image", value_name = "SERVICE=IMAGE")]
    pub app_images: Vec<String>,
    /// The namespace of every object (a DNS label of at most 18 characters:
    /// the controller names each Lattice service `<service>-<namespace>`).
    #[arg(long, value_name = "NAME", default_value = "lattice-jwt")]
    pub namespace: String,
    /// The ACM certificate of the gateway's HTTPS listener: it must cover
    /// every service's host (the services' custom domain names).
    #[arg(long, value_name = "ARN")]
    pub certificate_arn: String,
    /// How pods get their IAM role: EKS Pod Identity or IRSA.
    #[arg(long, value_enum, default_value_t = Identity::PodIdentity)]
    pub identity: Identity,
    /// The EKS cluster, for the Pod Identity associations and the roles' trust policies.
    #[arg(long, value_name = "NAME")]
    pub cluster: Option<String>,
    /// With --identity irsa: the cluster's OIDC issuer, as IAM names its provider
    /// (`oidc.eks.REGION.amazonaws.com/id/ID`, from `aws eks describe-cluster`), for the
    /// roles' trust policies.
    #[arg(long, value_name = "ISSUER")]
    pub oidc_issuer: Option<String>,
    /// Replicas of the frontend (at least 2: one may be disrupted at a time).
    #[arg(long, value_name = "N", default_value_t = 2)]
    pub replicas: u32,
    /// Render no frontend: only the services, calling each other through
    /// their sidecars.
    #[arg(long)]
    pub no_frontend: bool,
    /// CA bundle in the image that verifies the Lattice services (LATTICE_CA
    /// of every Envoy), e.g. the ACM Private CA behind their custom domain names.
    #[arg(long, value_name = "PEM")]
    pub lattice_ca: Option<String>,
}

/// The file of the network's objects, of the frontend's, and of service `name`'s.
pub const NETWORK_FILE: &str = "network.yaml";
pub const FRONTEND_FILE: &str = "frontend.yaml";
pub const KUSTOMIZATION_FILE: &str = "kustomization.yaml";
pub const POD_IDENTITY_DIR: &str = "pod-identity";
/// Each role's trust policy (`aws iam create-role --assume-role-policy-document`);
/// its identity policy is the one `envoy-gen policies` writes.
pub const TRUST_DIR: &str = "iam/trust";
const SERVICES_DIR: &str = "services";

pub fn service_file(name: &str) -> PathBuf {
    Path::new(SERVICES_DIR).join(format!("{name}.yaml"))
}

/// The controller's naming of a route's Lattice service
/// (aws-application-networking-k8s `utils.LatticeServiceName`): route and
/// namespace cut to these lengths.
const ROUTE_NAME_MAX: usize = 20;
const NAMESPACE_MAX: usize = 18;
const GATEWAY_CLASS: &str = "amazon-vpc-lattice";
const LISTENER: &str = "https";
const CERTIFICATE_OPTION: &str = "application-networking.k8s.aws/certificate-arn";
const IRSA_ANNOTATION: &str = "eks.amazonaws.com/role-arn";
/// What the application reaches directly although `HTTP_PROXY` names its
/// sidecar: loopback, and EKS Pod Identity's agent (IPv4 and IPv6) and the
/// instance metadata address, plain HTTP the sidecar would refuse.
const NO_PROXY: &str = "localhost,127.0.0.1,::1,169.254.170.23,fd00:ec2::23,169.254.169.254";
/// The image's health check (`deploy/healthcheck.sh`).
const HEALTHCHECK: &str = "/usr/local/bin/lattice-jwt-healthcheck";
/// The image's user and group, `envoy`.
const ENVOY_UID: u32 = 101;
/// How long an Envoy drains after SIGTERM (`ENVOY_DRAIN_SECONDS`), and how
/// long Kubernetes waits before SIGKILL: the drain plus margin.
const DRAIN_SECONDS: u32 = 20;
const GRACE_SECONDS: u32 = DRAIN_SECONDS + 10;
/// Envoy's and the application's requests and limits. Envoy's memory limit
/// holds its token cache (about 12 MB per worker full) and buffers.
const ENVOY_RESOURCES: (&str, &str, &str, &str) = ("100m", "128Mi", "1", "256Mi");
const APP_RESOURCES: (&str, &str, &str, &str) = ("100m", "128Mi", "1", "512Mi");

fn problem(origin: &Origin, field: &str, message: impl Into<String>) -> Problem {
    Problem {
        origin: origin.clone(),
        field: field.into(),
        message: message.into(),
    }
}

fn flag_problem(flag: &'static str, message: impl Into<String>) -> Problem {
    problem(&Origin::Flag(flag), flag, message)
}

/// A DNS-1123 label (a namespace, a ServiceAccount), or an RFC 1035 label
/// when `letter_first` (a Service's name).
fn is_dns_label(name: &str, letter_first: bool) -> bool {
    (1..=63).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && (!letter_first || name.starts_with(|c: char| c.is_ascii_lowercase()))
}

/// What the flags and the spec give, checked.
struct Settings<'a> {
    args: &'a KubernetesArgs,
    account: String,
    gateway: String,
    app_images: BTreeMap<String, String>,
}

fn settings<'a>(system: &System, args: &'a KubernetesArgs) -> Result<Settings<'a>, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(account) = system.account.clone() else {
        return Err(vec![problem(
            &Origin::Default,
            "account",
            "is required for Kubernetes manifests (the 12-digit AWS account of the roles)",
        )]);
    };
    if let Some(message) = ecs::image_problem(&args.image) {
        problems.push(flag_problem("--image", message));
    }
    let app_images = ecs::app_images(system, &args.app_images, &mut problems);
    let namespace = &args.namespace;
    if !is_dns_label(namespace, false) {
        problems.push(flag_problem(
            "--namespace",
            format!(
                "`{}` is not a namespace name (a DNS label: lower-case letters, digits and hyphens)",
                namespace.escape_debug()
            ),
        ));
    } else if namespace.len() > NAMESPACE_MAX {
        problems.push(flag_problem(
            "--namespace",
            format!(
                "`{namespace}` is longer than {NAMESPACE_MAX} characters: the AWS Gateway API Controller would cut it \
                 in each Lattice service's name (`<route>-<namespace>`), and the names would no longer be the spec's"
            ),
        ));
    }
    if !is_arn(&args.certificate_arn, "acm", "certificate/") {
        problems.push(flag_problem(
            "--certificate-arn",
            format!(
                "`{}` is not an ACM certificate ARN like arn:aws:acm:REGION:ACCOUNT:certificate/ID",
                args.certificate_arn.escape_debug()
            ),
        ));
    }
    match (&args.identity, &args.cluster) {
        (Identity::PodIdentity, None) => problems.push(flag_problem(
            "--cluster",
            "is required with --identity pod-identity (the EKS cluster of the Pod Identity associations)",
        )),
        (Identity::PodIdentity, Some(cluster))
            if cluster.is_empty()
                || cluster.len() > 100
                || !cluster.starts_with(|c: char| c.is_ascii_alphanumeric())
                || !cluster
                    .bytes()
                    .all(|b| b.is_ascii_alphanumeric() || b == b'-' || b == b'_') =>
        {
            problems.push(flag_problem(
                "--cluster",
                format!(
                    "`{}` is not an EKS cluster name (1-100 letters, digits, `-` and `_`)",
                    cluster.escape_debug()
                ),
            ));
        }
        _ => {}
    }
    match (&args.identity, &args.oidc_issuer) {
        (Identity::Irsa, None) => problems.push(flag_problem(
            "--oidc-issuer",
            "is required with --identity irsa (the cluster's OIDC issuer the roles' trust policies name)",
        )),
        (_, Some(issuer)) if !is_oidc_issuer(issuer) => problems.push(flag_problem(
            "--oidc-issuer",
            format!(
                "`{}` is not an OIDC issuer as IAM names its provider (host/path, no scheme, e.g. \
                 oidc.eks.us-west-2.amazonaws.com/id/EXAMPLED539D4633E53DE1B71EXAMPLE)",
                issuer.escape_debug()
            ),
        )),
        _ => {}
    }
    if args.replicas < 2 && !args.no_frontend {
        problems.push(flag_problem(
            "--replicas",
            "must be at least 2: the frontend's PodDisruptionBudget keeps one running while another is moved",
        ));
    }
    let gateway = system.network.name.clone().unwrap_or_else(|| "lattice-jwt".into());
    if let Some(rules) = crate::cloudformation::lattice_name_problem(&gateway, 63, "servicenetwork-") {
        problems.push(problem(
            &Origin::Default,
            "network.name",
            format!("`{gateway}` cannot name a VPC Lattice service network ({rules})"),
        ));
    }
    check_services(system, args, &mut problems);
    if problems.is_empty() {
        Ok(Settings {
            args,
            account,
            gateway,
            app_images,
        })
    } else {
        Err(problems)
    }
}

/// An OIDC issuer as IAM names its identity provider: a DNS host and a
/// path, without `https://`.
fn is_oidc_issuer(text: &str) -> bool {
    let (host, path) = text.split_once('/').unwrap_or((text, ""));
    crate::model::is_dns_name(host)
        && text.len() <= 255
        && path.bytes().all(|b| b.is_ascii_alphanumeric() || b"-._~/".contains(&b))
}

/// `arn:aws:<service>:...:<resource prefix>...`, the partitions' spellings included.
fn is_arn(text: &str, service: &str, resource: &str) -> bool {
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, s, _, account, rest]
        if partition.starts_with("aws") && *s == service
            && crate::model::is_account_id(account)
            && rest.strip_prefix(resource).is_some_and(|id| !id.is_empty()
                && id.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')))
}

fn check_services(system: &System, args: &KubernetesArgs, problems: &mut Vec<Problem>) {
    let namespace = &args.namespace;
    for service in &system.services {
        let field = format!("{}.name", service.field);
        let name = &service.name;
        if !is_dns_label(name, true) {
            problems.push(problem(
                &service.origin,
                &field,
                format!(
                    "`{}` cannot name a Kubernetes Service (a DNS label: lower-case letters, digits and hyphens, \
                     beginning with a letter)",
                    name.escape_debug()
                ),
            ));
            continue;
        }
        if name.len() > ROUTE_NAME_MAX {
            problems.push(problem(
                &service.origin,
                &field,
                format!(
                    "`{name}` is longer than {ROUTE_NAME_MAX} characters: the AWS Gateway API Controller would cut it \
                     in its Lattice service's name (`<route>-<namespace>`), and the names would no longer be the spec's"
                ),
            ));
            continue;
        }
        let lattice = format!("{name}-{namespace}");
        if let Some(rules) = crate::cloudformation::lattice_name_problem(&lattice, 40, "svc-") {
            problems.push(problem(
                &service.origin,
                &field,
                format!("`{lattice}` (`<service>-<namespace>`) cannot name a VPC Lattice service ({rules})"),
            ));
        }
        match &service.upstream {
            None => problems.push(problem(
                &service.origin,
                &format!("{}.host", service.field),
                format!(
                    "service `{name}` has no host (no `host`, no `domain`): on EKS each service is an HTTPRoute whose \
                     hostname is its custom domain name; give `host` or a `domain`"
                ),
            )),
            Some(upstream) if upstream.host.ends_with(".on.aws") => problems.push(problem(
                &service.origin,
                &format!("{}.host", service.field),
                format!(
                    "`{}` is a name VPC Lattice generates, not a custom domain name an HTTPRoute can carry",
                    upstream.host
                ),
            )),
            Some(_) => {}
        }
    }
    if !args.no_frontend && system.frontend.role.is_none() {
        problems.push(problem(
            &Origin::Default,
            "frontend.role",
            "is required: the frontend signs its requests to Lattice with this role (or use --no-frontend)",
        ));
    }
}

fn metadata(name: &str, namespace: &str, labels: &Value) -> Value {
    json!({"name": name, "namespace": namespace, "labels": labels})
}

fn labels(component: &str) -> Value {
    json!({"app.kubernetes.io/name": component, "app.kubernetes.io/part-of": "lattice-jwt"})
}

fn resources(r: (&str, &str, &str, &str)) -> Value {
    json!({"requests": {"cpu": r.0, "memory": r.1}, "limits": {"cpu": r.2, "memory": r.3}})
}

/// The container security context every container gets: no privilege
/// escalation, no capability, a read-only root file system.
fn locked_down(user: Option<u32>) -> Value {
    let mut context = json!({
        "allowPrivilegeEscalation": false,
        "capabilities": {"drop": ["ALL"]},
        "readOnlyRootFilesystem": true,
        "runAsNonRoot": true,
    });
    if let Some(uid) = user {
        set(&mut context, "runAsUser", json!(uid));
        set(&mut context, "runAsGroup", json!(uid));
    }
    context
}

/// Sets `key` of the object `object` (every manifest here is built as one).
fn set(object: &mut Value, key: &str, value: Value) {
    if let Some(map) = object.as_object_mut() {
        map.insert(key.to_string(), value);
    }
}

fn variable(name: &str, value: impl Into<String>) -> Value {
    json!({"name": name, "value": value.into()})
}

impl Settings<'_> {
    fn namespace(&self) -> &str {
        &self.args.namespace
    }

    fn credentials_source(&self) -> &'static str {
        match self.args.identity {
            Identity::PodIdentity => "container",
            Identity::Irsa => "web_identity",
        }
    }

    /// An Envoy of the image: the entrypoint's variables for its role, the
    /// pod's role only, a read-only root with the run directory on a volume.
    fn envoy(&self, name: &str, mut environment: Vec<Value>) -> Value {
        environment.extend([
            variable("SPEC_FILE", ecs::SPEC_PATH),
            variable("CREDENTIALS_SOURCE", self.credentials_source()),
            variable("ENVOY_RUN_DIR", ecs::RUN_DIR),
            variable("ENVOY_DRAIN_SECONDS", DRAIN_SECONDS.to_string()),
            // Defence in depth: Envoy's chain never asks the instance metadata.
            variable("AWS_EC2_METADATA_DISABLED", "true"),
        ]);
        if let Some(ca) = &self.args.lattice_ca {
            environment.push(variable("LATTICE_CA", ca.as_str()));
        }
        json!({
            "name": name,
            "image": self.args.image,
            "env": environment,
            "resources": resources(ENVOY_RESOURCES),
            "securityContext": locked_down(Some(ENVOY_UID)),
            "volumeMounts": [{"name": "envoy-run", "mountPath": ecs::RUN_DIR}],
        })
    }

    fn service_account(&self, name: &str, role: Option<&Role>, component: &str) -> Value {
        let mut account = json!({
            "apiVersion": "v1",
            "kind": "ServiceAccount",
            "metadata": metadata(name, self.namespace(), &labels(component)),
            // Only the Envoys call AWS, with the role: no Kubernetes API token.
            "automountServiceAccountToken": false,
        });
        if let (Identity::Irsa, Some(role)) = (self.args.identity, role) {
            if let Some(metadata) = account.get_mut("metadata") {
                set(metadata, "annotations", json!({ IRSA_ANNOTATION: role.arn }));
            }
        }
        account
    }

    fn pod_spec(&self, account: &str, containers: Vec<Value>, init: Vec<Value>, volumes: Vec<Value>) -> Value {
        let mut spec = json!({
            "serviceAccountName": account,
            "automountServiceAccountToken": false,
            "securityContext": {"runAsNonRoot": true, "seccompProfile": {"type": "RuntimeDefault"}},
            "terminationGracePeriodSeconds": GRACE_SECONDS,
            "containers": containers,
            "volumes": volumes,
        });
        if !init.is_empty() {
            set(&mut spec, "initContainers", json!(init));
        }
        spec
    }

    fn deployment(&self, name: &str, component: &str, replicas: u32, pod: Value) -> Value {
        json!({
            "apiVersion": "apps/v1",
            "kind": "Deployment",
            "metadata": metadata(name, self.namespace(), &labels(component)),
            "spec": {
                "replicas": replicas,
                "selector": {"matchLabels": {"app.kubernetes.io/name": component}},
                "template": {"metadata": {"labels": labels(component)}, "spec": pod},
            },
        })
    }
}

fn run_volume() -> Value {
    json!({"name": "envoy-run", "emptyDir": {"sizeLimit": "16Mi"}})
}

/// The image's health check as a probe (Envoy's `/ready` on its admin
/// interface, read by the script the image holds).
fn envoy_probe() -> Value {
    json!({"exec": {"command": [HEALTHCHECK]}, "periodSeconds": 10, "timeoutSeconds": 3, "failureThreshold": 3})
}

fn gateway_objects(settings: &Settings, network_policy: &str) -> Vec<Value> {
    let namespace = settings.namespace();
    vec![
        // Cluster-scoped: the controller creates the service network of this name.
        json!({
            "apiVersion": "application-networking.k8s.aws/v1alpha1",
            "kind": "ServiceNetwork",
            "metadata": {"name": settings.gateway, "labels": labels("network")},
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "Gateway",
            "metadata": metadata(&settings.gateway, namespace, &labels("network")),
            "spec": {
                "gatewayClassName": GATEWAY_CLASS,
                "listeners": [{
                    "name": LISTENER,
                    "protocol": "HTTPS",
                    "port": 443,
                    "tls": {"mode": "Terminate", "options": {CERTIFICATE_OPTION: settings.args.certificate_arn}},
                    "allowedRoutes": {"namespaces": {"from": "Same"}},
                }],
            },
        }),
        // The cluster's VPC joins the service network: its pods reach the services.
        json!({
            "apiVersion": "application-networking.k8s.aws/v1alpha1",
            "kind": "VpcAssociationPolicy",
            "metadata": metadata(&settings.gateway, namespace, &labels("network")),
            "spec": {
                "targetRef": {"group": "gateway.networking.k8s.io", "kind": "Gateway", "name": settings.gateway},
                "associateWithVpc": true,
            },
        }),
        auth_policy(&settings.gateway, namespace, "Gateway", network_policy, "network"),
    ]
}

fn auth_policy(name: &str, namespace: &str, kind: &str, document: &str, component: &str) -> Value {
    json!({
        "apiVersion": "application-networking.k8s.aws/v1alpha1",
        "kind": "IAMAuthPolicy",
        "metadata": metadata(name, namespace, &labels(component)),
        "spec": {
            "targetRef": {"group": "gateway.networking.k8s.io", "kind": kind, "name": name},
            "policy": document,
        },
    })
}

fn service_objects(settings: &Settings, service: &Service, policy: &str) -> Result<Vec<Value>, String> {
    let namespace = settings.namespace();
    let name = service.name.as_str();
    let image = settings
        .app_images
        .get(name)
        .ok_or_else(|| format!("bug in envoy-gen: no image for `{name}`"))?;
    let host = service
        .upstream
        .as_ref()
        .map(|u| u.host.clone())
        .ok_or_else(|| format!("bug in envoy-gen: `{name}` has no host"))?;
    let mut app = json!({
        "name": "app",
        "image": image,
        "ports": [{"name": "http", "containerPort": service.port, "protocol": "TCP"}],
        "readinessProbe": {"httpGet": {"path": service.health_check_path, "port": "http"}, "periodSeconds": 10},
        "resources": resources(APP_RESOURCES),
        "securityContext": locked_down(None),
        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
    });
    let mut init = Vec::new();
    let mut volumes = vec![json!({"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}})];
    if !service.calls.is_empty() {
        let proxy = ecs::http_url(&service.sidecar.listen);
        // curl reads only the lower-case names, most other clients either.
        set(
            &mut app,
            "env",
            json!([
                variable("HTTP_PROXY", proxy.as_str()),
                variable("http_proxy", proxy.as_str()),
                variable("NO_PROXY", NO_PROXY),
                variable("no_proxy", NO_PROXY),
            ]),
        );
        // A native sidecar (an init container that keeps running): it is
        // ready before the application starts, and stops after it.
        let mut sidecar = settings.envoy(
            "sidecar",
            vec![variable("ENVOY_ROLE", "sidecar"), variable("SERVICE_NAME", name)],
        );
        set(&mut sidecar, "restartPolicy", json!("Always"));
        set(&mut sidecar, "readinessProbe", envoy_probe());
        set(
            &mut sidecar,
            "startupProbe",
            json!({"exec": {"command": [HEALTHCHECK]}, "periodSeconds": 2, "failureThreshold": 30}),
        );
        init.push(sidecar);
        volumes.push(run_volume());
    }
    let pod = settings.pod_spec(name, vec![app], init, volumes);
    let health_check = json!({
        "enabled": true,
        "path": service.health_check_path,
        "port": service.port,
        "protocol": "HTTP",
        "protocolVersion": "HTTP1",
        "statusMatch": "200",
        "intervalSeconds": 10,
        "timeoutSeconds": 5,
        "healthyThresholdCount": 2,
        "unhealthyThresholdCount": 2,
    });
    Ok(vec![
        settings.service_account(name, service.role.as_ref(), name),
        settings.deployment(name, name, 2, pod),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": metadata(name, namespace, &labels(name)),
            "spec": {
                "selector": {"app.kubernetes.io/name": name},
                "ports": [{"name": "http", "port": service.port, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
        json!({
            "apiVersion": "gateway.networking.k8s.io/v1",
            "kind": "HTTPRoute",
            "metadata": metadata(name, namespace, &labels(name)),
            "spec": {
                "parentRefs": [{"name": settings.gateway, "sectionName": LISTENER}],
                "hostnames": [host],
                "rules": [{"backendRefs": [{"name": name, "kind": "Service", "port": service.port}]}],
            },
        }),
        json!({
            "apiVersion": "application-networking.k8s.aws/v1alpha1",
            "kind": "TargetGroupPolicy",
            "metadata": metadata(name, namespace, &labels(name)),
            "spec": {
                "targetRef": {"group": "", "kind": "Service", "name": name},
                "protocol": "HTTP",
                "protocolVersion": "HTTP1",
                "healthCheck": health_check,
            },
        }),
        auth_policy(name, namespace, "HTTPRoute", policy, name),
    ])
}

fn frontend_objects(system: &System, settings: &Settings) -> Vec<Value> {
    let namespace = settings.namespace();
    let listen = system.frontend.listen.port;
    let scheme = if system.frontend.tls.is_some() { "HTTPS" } else { "HTTP" };
    let mut envoy = settings.envoy("frontend", vec![variable("ENVOY_ROLE", "frontend")]);
    let probe = |path: &str, period: u32| json!({"httpGet": {"path": path, "port": "http", "scheme": scheme}, "periodSeconds": period});
    set(
        &mut envoy,
        "ports",
        json!([{"name": "http", "containerPort": listen, "protocol": "TCP"}]),
    );
    set(&mut envoy, "livenessProbe", probe("/health", 10));
    set(&mut envoy, "readinessProbe", probe("/ready", 5));
    let pod = settings.pod_spec("frontend", vec![envoy], Vec::new(), vec![run_volume()]);
    let port = if system.frontend.tls.is_some() { 443 } else { 80 };
    vec![
        settings.service_account("frontend", system.frontend.role.as_ref(), "frontend"),
        settings.deployment("frontend", "frontend", settings.args.replicas, pod),
        json!({
            "apiVersion": "policy/v1",
            "kind": "PodDisruptionBudget",
            "metadata": metadata("frontend", namespace, &labels("frontend")),
            "spec": {"maxUnavailable": 1, "selector": {"matchLabels": {"app.kubernetes.io/name": "frontend"}}},
        }),
        json!({
            "apiVersion": "v1",
            "kind": "Service",
            "metadata": {
                "name": "frontend",
                "namespace": namespace,
                "labels": labels("frontend"),
                // An internal Network Load Balancer to the pods' IPs, by the
                // AWS Load Balancer Controller.
                "annotations": {
                    "service.beta.kubernetes.io/aws-load-balancer-type": "external",
                    "service.beta.kubernetes.io/aws-load-balancer-nlb-target-type": "ip",
                    "service.beta.kubernetes.io/aws-load-balancer-scheme": "internal",
                    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-protocol": scheme.to_ascii_lowercase(),
                    "service.beta.kubernetes.io/aws-load-balancer-healthcheck-path": "/ready",
                },
            },
            "spec": {
                "type": "LoadBalancer",
                "selector": {"app.kubernetes.io/name": "frontend"},
                "ports": [{"name": "http", "port": port, "targetPort": "http", "protocol": "TCP"}],
            },
        }),
    ]
}

/// Each role's Pod Identity association (ACK's EKS controller), by the
/// ServiceAccount that uses it.
fn pod_identity_objects(system: &System, settings: &Settings, cluster: &str) -> Vec<Value> {
    accounts(system, settings)
        .into_iter()
        .map(|(account, role)| {
            json!({
                "apiVersion": "eks.services.k8s.aws/v1alpha1",
                "kind": "PodIdentityAssociation",
                "metadata": metadata(account, settings.namespace(), &labels(account)),
                "spec": {
                    "clusterName": cluster,
                    "namespace": settings.namespace(),
                    "serviceAccount": account,
                    "roleARN": role.arn,
                },
            })
        })
        .collect()
}

/// Each role's trust policy, by role name: only this cluster's pods of
/// that role's ServiceAccount may assume it. Pod Identity: EKS's service
/// with the session tags it sets (Amazon EKS User Guide, "Create IAM role
/// with trust policy required by EKS Pod Identity"); IRSA: the cluster's
/// OIDC provider for `system:serviceaccount:<namespace>:<account>`.
fn trust_policies(system: &System, settings: &Settings) -> Vec<(String, Value)> {
    let namespace = settings.namespace();
    accounts(system, settings)
        .into_iter()
        .map(|(account, role)| {
            let statement = match (settings.args.identity, &settings.args.oidc_issuer) {
                (Identity::Irsa, Some(issuer)) => json!({
                    "Sid": "ThisClustersServiceAccountByIrsa",
                    "Effect": "Allow",
                    "Principal": {"Federated": format!("arn:aws:iam::{}:oidc-provider/{issuer}", settings.account)},
                    "Action": "sts:AssumeRoleWithWebIdentity",
                    "Condition": {"StringEquals": {
                        format!("{issuer}:sub"): format!("system:serviceaccount:{namespace}:{account}"),
                        format!("{issuer}:aud"): "sts.amazonaws.com",
                    }},
                }),
                _ => json!({
                    "Sid": "ThisClustersServiceAccountByPodIdentity",
                    "Effect": "Allow",
                    "Principal": {"Service": "pods.eks.amazonaws.com"},
                    "Action": ["sts:AssumeRole", "sts:TagSession"],
                    "Condition": {"StringEquals": {
                        "aws:RequestTag/eks-cluster-name": settings.args.cluster.clone().unwrap_or_default(),
                        "aws:RequestTag/kubernetes-namespace": namespace,
                        "aws:RequestTag/kubernetes-service-account": account,
                    }},
                }),
            };
            (
                role.name.clone(),
                json!({"Version": "2012-10-17", "Statement": [statement]}),
            )
        })
        .collect()
}

/// The ServiceAccounts that carry a role, with it: the frontend's (unless
/// --no-frontend) and each service's.
fn accounts<'a>(system: &'a System, settings: &Settings) -> Vec<(&'a str, &'a Role)> {
    let mut accounts: Vec<(&str, &Role)> = Vec::new();
    if !settings.args.no_frontend {
        accounts.extend(system.frontend.role.as_ref().map(|r| ("frontend", r)));
    }
    for service in &system.services {
        accounts.extend(service.role.as_ref().map(|r| (service.name.as_str(), r)));
    }
    accounts
}

fn bug(message: String) -> Vec<Problem> {
    vec![problem(&Origin::Default, "", message)]
}

/// Several objects as one YAML file, `---` between them, after `header`.
fn yaml_file(header: &str, objects: &[Value]) -> Result<String, Vec<Problem>> {
    let mut out = String::from(header);
    for (i, object) in objects.iter().enumerate() {
        if i > 0 {
            out.push_str("---\n");
        }
        let text = serde_saphyr::to_string(object).map_err(|e| bug(format!("bug in envoy-gen: {e}")))?;
        out.push_str(&text);
        if !text.ends_with('\n') {
            out.push('\n');
        }
    }
    Ok(out)
}

const HEADER: &str =
    "# Rendered by envoy-gen kubernetes from the spec; do not edit: change the spec and render again.\n";

/// The auth policies as `envoy-gen policies` writes them, by service name
/// (`None`: the service network's).
fn auth_documents(system: &System, account: &str) -> Result<BTreeMap<Option<String>, String>, Vec<Problem>> {
    let naming = ByArn {
        region: &system.signing.region,
        account,
    };
    let documents = policies::documents(system, &naming)?;
    let text = |doc: &policies::Document| {
        serde_json::to_string_pretty(doc)
            .map(|t| t + "\n")
            .map_err(|e| bug(format!("bug in envoy-gen: {e}")))
    };
    let mut out = BTreeMap::new();
    out.insert(None, text(&documents.network)?);
    for (name, doc) in &documents.services {
        out.insert(Some(name.clone()), text(doc)?);
    }
    Ok(out)
}

/// Every manifest, by path, or what the spec and flags lack.
pub fn render(system: &System, args: &KubernetesArgs) -> Result<output::Files, Vec<Problem>> {
    let settings = settings(system, args)?;
    let policies = auth_documents(system, &settings.account)?;
    let policy = |name: Option<&str>| {
        policies
            .get(&name.map(str::to_string))
            .cloned()
            .ok_or_else(|| bug("bug in envoy-gen: a policy is missing".into()))
    };
    let mut files = output::Files::new();
    let mut resources = Vec::new();
    let mut objects = Vec::new();
    if args.namespace != "default" {
        objects.push(json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": args.namespace, "labels": labels("network")}}));
    }
    objects.extend(gateway_objects(&settings, &policy(None)?));
    files.insert(PathBuf::from(NETWORK_FILE), yaml_file(HEADER, &objects)?);
    resources.push(NETWORK_FILE.to_string());
    if !args.no_frontend {
        files.insert(
            PathBuf::from(FRONTEND_FILE),
            yaml_file(HEADER, &frontend_objects(system, &settings))?,
        );
        resources.push(FRONTEND_FILE.to_string());
    }
    for service in &system.services {
        let objects = service_objects(&settings, service, &policy(Some(&service.name))?).map_err(bug)?;
        let path = service_file(&service.name);
        resources.push(path.display().to_string());
        files.insert(path, yaml_file(HEADER, &objects)?);
    }
    let kustomization = json!({
        "apiVersion": "kustomize.config.k8s.io/v1beta1",
        "kind": "Kustomization",
        "resources": resources,
    });
    files.insert(PathBuf::from(KUSTOMIZATION_FILE), yaml_file(HEADER, &[kustomization])?);
    for (role, trust) in trust_policies(system, &settings) {
        let text = serde_json::to_string_pretty(&trust).map_err(|e| bug(format!("bug in envoy-gen: {e}")))?;
        files.insert(Path::new(TRUST_DIR).join(format!("{role}.json")), text + "\n");
    }
    if let (Identity::PodIdentity, Some(cluster)) = (args.identity, &args.cluster) {
        let associations = pod_identity_objects(system, &settings, cluster);
        if !associations.is_empty() {
            let dir = Path::new(POD_IDENTITY_DIR);
            files.insert(
                dir.join("associations.yaml"),
                yaml_file(
                    "# EKS Pod Identity associations, for ACK's EKS controller: kubectl apply -k pod-identity/\n\
                     # (or the same with aws eks create-pod-identity-association).\n",
                    &associations,
                )?,
            );
            let kustomization = json!({
                "apiVersion": "kustomize.config.k8s.io/v1beta1",
                "kind": "Kustomization",
                "resources": ["associations.yaml"],
            });
            files.insert(dir.join(KUSTOMIZATION_FILE), yaml_file(HEADER, &[kustomization])?);
        }
    }
    Ok(files)
}

/// The YAML files under `dir` that a rendering manages (to remove stale ones).
fn managed(dir: &Path) -> Vec<PathBuf> {
    let mut out: Vec<PathBuf> = ["", SERVICES_DIR, POD_IDENTITY_DIR]
        .iter()
        .flat_map(|sub| output::files_with(dir, sub, "yaml"))
        .chain(output::files_with(dir, TRUST_DIR, "json"))
        .collect();
    out.sort();
    out
}

/// Writes the manifests into `dir` and removes the `.yaml` files there that
/// the spec no longer produces.
pub fn write(dir: &Path, files: &output::Files) -> Result<(), String> {
    output::write_files(dir, files, &managed(dir))
}

/// What differs between `dir` and the manifests, one line each.
pub fn drift(dir: &Path, files: &output::Files) -> Vec<String> {
    output::drift(dir, files, &managed(dir))
}
