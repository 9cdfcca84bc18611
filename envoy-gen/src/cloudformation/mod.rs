//! `envoy-gen cloudformation`: the whole system as a CloudFormation
//! template, deployed with one `aws cloudformation deploy`: the service
//! network and its VPC association, each Lattice service with its listener,
//! target group and auth policy, the IAM roles with their identity
//! policies, the ECS cluster, task definitions and services (the apps
//! registered in their target groups by ECS's VPC Lattice integration), the
//! frontend behind an internal Application Load Balancer, the security
//! groups, the log group and, given a hosted zone, the DNS records.
//!
//! One source of truth: the auth and identity policies are the documents
//! `envoy-gen policies` writes (`policies::documents`, naming the stack's
//! own roles and services by its resources), and the task definitions are
//! those `envoy-gen ecs` writes (`ecs::task_definitions`, with the stack's
//! images, roles and log group). What the spec cannot know (the VPC, the
//! subnets, images, certificates, hosted zone, Lattice's prefix list, the
//! clients' CIDR) are parameters. A service without a host in the spec gets
//! no custom domain name: the Envoys that call it receive its Lattice DNS
//! name in `LATTICE_SERVICE_HOSTS`.
//!
//! `--split` renders the reference's suggested extension: a network stack
//! (what the platform team owns: the service network, the cluster, every
//! IAM role, the log group), one stack per service that its team deploys
//! on its own, and the frontend's stack (see `stacks.rs`).

mod aws;
pub(crate) use aws::lattice_name_problem;
pub mod stacks;

use crate::args::TaskArgs;
use crate::ecs;
use crate::model::{Problem, Role, Service, System};
use crate::output;
use crate::policies;
use crate::spec::Origin;
use aws::Names;
use serde_json::{json, Value};
use stacks::{Graph, Part};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

/// The single stack's file name in `-o`'s directory listing and messages.
const HEADER: &str = "# Rendered by `envoy-gen cloudformation` from the spec: edit the spec and render again.\n\
# Deploy: aws cloudformation deploy --template-file <this file> --stack-name <name> \\\n\
#   --capabilities CAPABILITY_NAMED_IAM --parameter-overrides <the Parameters below>\n";

/// The rendered templates: one file, or (`--split`) one per stack in the
/// order they deploy in.
pub struct Rendered {
    pub files: Vec<(PathBuf, String)>,
    /// What the user should know (the order to deploy split stacks in).
    pub notes: Vec<String>,
}

/// Renders the stack (or the split stacks), or says what the spec and
/// flags lack.
pub fn render(system: &System, task: &TaskArgs, split: bool) -> Result<Rendered, Vec<Problem>> {
    let names = aws::check(system, task, split)?;
    let graph = graph(system, task, &names)?;
    let bug = |messages: Vec<String>| -> Vec<Problem> {
        messages
            .into_iter()
            .map(|message| Problem {
                origin: Origin::Default,
                field: if split { "--split".into() } else { String::new() },
                message,
            })
            .collect()
    };
    let mut files = Vec::new();
    let mut notes = Vec::new();
    if split {
        for stack in stacks::split(&graph, &names.export_prefix).map_err(bug)? {
            let text = stacks::to_yaml(&stack, HEADER).map_err(|e| bug(vec![e]))?;
            files.push((PathBuf::from(stack.part.file()), text));
        }
        let order: Vec<String> = files.iter().map(|(f, _)| f.display().to_string()).collect();
        notes.push(format!("note: deploy the stacks in this order: {}", order.join(", ")));
    } else {
        let stack = stacks::single(&graph).map_err(bug)?;
        let text = stacks::to_yaml(&stack, HEADER).map_err(|e| bug(vec![e]))?;
        files.push((PathBuf::from("stack.yaml"), text));
    }
    Ok(Rendered { files, notes })
}

pub use crate::policies::word;

fn service_id(service: &Service, what: &str) -> String {
    format!("{}{what}", word(&service.name))
}

fn role_id(role: &Role) -> String {
    format!("{}TaskRole", word(&role.name))
}

/// The policies' naming inside the stack: the stack's own roles and
/// services by its resources.
struct StackNaming<'a> {
    roles: &'a BTreeMap<String, Role>,
}

impl policies::Naming for StackNaming<'_> {
    fn principal(&self, arn: &str) -> String {
        match self.roles.get(arn) {
            Some(role) => format!("${{{}.Arn}}", role_id(role)),
            None => arn.to_string(),
        }
    }

    fn service(&self, service: &Service) -> Option<String> {
        Some(format!("${{{}.Arn}}/*", service_id(service, "Service")))
    }
}

/// `camelCase` member names of the ECS API as CloudFormation's
/// `PascalCase`, except inside a log configuration's `options` (the log
/// driver's own keys).
fn pascal(value: Value) -> Value {
    match value {
        Value::Array(items) => Value::Array(items.into_iter().map(pascal).collect()),
        Value::Object(map) => Value::Object(
            map.into_iter()
                .map(|(key, v)| {
                    let v = if key == "options" { v } else { pascal(v) };
                    let mut chars = key.chars();
                    let key = chars
                        .next()
                        .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                        .unwrap_or_default();
                    (key, v)
                })
                .collect(),
        ),
        other => other,
    }
}

fn problem(origin: &Origin, field: &str, message: String) -> Problem {
    Problem {
        origin: origin.clone(),
        field: field.to_string(),
        message,
    }
}

/// Every resource of the system, placed in its part.
fn graph(system: &System, task: &TaskArgs, names: &Names) -> Result<Graph, Vec<Problem>> {
    let mut g = Graph {
        description: format!(
            "lattice-jwt{}: OAuth2 in front of Amazon VPC Lattice (rendered by envoy-gen cloudformation)",
            system
                .network
                .name
                .as_deref()
                .map(|n| format!(" {n}"))
                .unwrap_or_default()
        ),
        ..Graph::default()
    };
    let mut problems = Vec::new();
    let mut claim = |result: Result<(), String>, origin: &Origin, field: &str| {
        if let Err(message) = result {
            problems.push(problem(origin, field, message));
        }
    };
    aws::parameters(&mut g, system, task).map_err(|e| vec![problem(&Origin::Default, "", e)])?;
    network(&mut g, system).map_err(|e| vec![problem(&Origin::Default, "", e)])?;

    // Roles: every task role, in the network's part (a service's auth
    // policy names its callers' roles and their identity policies name the
    // services: with the roles first, no two stacks need each other).
    for role in names.roles.values() {
        let result = g
            .resource(
                &role_id(role),
                &format!("role `{}`", role.name),
                &Part::Network,
                aws::task_role(role, system),
            )
            .and_then(|()| aws::role_output(&mut g, role));
        claim(result, &role.origin, "role");
    }
    let naming = StackNaming { roles: &names.roles };
    let documents = policies::documents(system, &naming)?;
    g.resource(
        "ServiceNetworkAuthPolicy",
        "the service network's auth policy",
        &Part::Network,
        json!({
            "Type": "AWS::VpcLattice::AuthPolicy",
            "Properties": {
                "ResourceIdentifier": {"Fn::GetAtt": ["ServiceNetwork", "Arn"]},
                "Policy": stacks::substitute(documents.network.to_value()?),
            },
        }),
    )
    .map_err(|e| vec![problem(&Origin::Default, "", e)])?;
    for (role, document) in &documents.roles {
        let part = invoker_part(system, role);
        let result = g.resource(
            &format!("{}InvokePolicy", word(&role.name)),
            &format!("the identity policy of role `{}`", role.name),
            &part,
            json!({
                "Type": "AWS::IAM::RolePolicy",
                "Properties": {
                    "RoleName": {"Ref": role_id(role)},
                    "PolicyName": "lattice-invoke",
                    "PolicyDocument": stacks::substitute(document.to_value()?),
                },
            }),
        );
        claim(result, &role.origin, "role");
    }

    let mut provided = ecs::Provided {
        image: "${Image}".into(),
        app_images: system
            .services
            .iter()
            .map(|s| (s.name.clone(), format!("${{{}}}", service_id(s, "Image"))))
            .collect(),
        execution_role_arn: "${TaskExecutionRole.Arn}".into(),
        log_group: "${LogGroup}".into(),
        role_arns: names
            .roles
            .iter()
            .map(|(arn, role)| (arn.clone(), format!("${{{}.Arn}}", role_id(role))))
            .collect(),
        lattice_hosts: BTreeMap::new(),
    };
    for service in system.services.iter().filter(|s| s.upstream.is_none()) {
        provided.lattice_hosts.insert(
            service.name.clone(),
            format!("${{{}.DnsEntry.DomainName}}", service_id(service, "Service")),
        );
    }
    let tasks = ecs::task_definitions(system, task, provided)?;
    for (name, definition) in tasks {
        let definition = stacks::substitute(pascal(definition));
        match name.as_deref().and_then(|n| system.service(n)) {
            Some(service) => {
                let (auth, _) = documents
                    .services
                    .iter()
                    .find(|(n, _)| n == &service.name)
                    .map(|(n, d)| (d, n))
                    .ok_or_else(|| {
                        vec![problem(
                            &Origin::Default,
                            "",
                            "bug in envoy-gen: a service without its auth policy".into(),
                        )]
                    })?;
                let auth = stacks::substitute(auth.to_value()?);
                let result = aws::service(&mut g, service, definition, auth);
                claim(result, &service.origin, &format!("{}.name", service.field));
            }
            None => {
                let result = aws::frontend(&mut g, system, definition);
                claim(result, &Origin::Default, "frontend");
            }
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(g)
}

/// The part whose stack holds a role's identity policy: that of the
/// component that signs with it.
fn invoker_part(system: &System, role: &Role) -> Part {
    system
        .services
        .iter()
        .find(|s| !s.calls.is_empty() && s.role.as_ref().is_some_and(|r| r.arn == role.arn))
        .map_or(Part::Frontend, |s| Part::Service(s.name.clone()))
}

/// The service network, its VPC association and security group, and what
/// every task shares: the cluster, the execution and infrastructure roles,
/// the log group.
fn network(g: &mut Graph, system: &System) -> Result<(), String> {
    let part = Part::Network;
    let mut properties = json!({"AuthType": "AWS_IAM"});
    if let (Some(name), Some(object)) = (&system.network.name, properties.as_object_mut()) {
        object.insert("Name".into(), name.clone().into());
    }
    g.resource(
        "ServiceNetwork",
        "the service network",
        &part,
        json!({"Type": "AWS::VpcLattice::ServiceNetwork", "Properties": properties}),
    )?;
    g.resource(
        "ServiceNetworkSecurityGroup",
        "the service network's security group",
        &part,
        json!({
            "Type": "AWS::EC2::SecurityGroup",
            "Properties": {
                "GroupDescription": "Who in the VPC may send requests to the service network (its VPC association): the frontend and the sidecars",
                "VpcId": {"Ref": "VpcId"},
            },
        }),
    )?;
    g.resource(
        "ServiceNetworkVpcAssociation",
        "the service network's VPC association",
        &part,
        json!({
            "Type": "AWS::VpcLattice::ServiceNetworkVpcAssociation",
            "Properties": {
                "ServiceNetworkIdentifier": {"Fn::GetAtt": ["ServiceNetwork", "Id"]},
                "VpcIdentifier": {"Ref": "VpcId"},
                "SecurityGroupIds": [{"Ref": "ServiceNetworkSecurityGroup"}],
            },
        }),
    )?;
    g.resource(
        "Cluster",
        "the ECS cluster",
        &part,
        json!({
            "Type": "AWS::ECS::Cluster",
            "Properties": {
                "ClusterSettings": [{"Name": "containerInsights", "Value": "enabled"}],
            },
        }),
    )?;
    g.resource(
        "LogGroup",
        "the log group",
        &part,
        json!({
            "Type": "AWS::Logs::LogGroup",
            "Metadata": aws::checkov_skip(&[(
                "CKV_AWS_158",
                "CloudWatch Logs encrypts at rest; the logs hold no token, secret or signature",
            )]),
            "Properties": {"RetentionInDays": aws::LOG_RETENTION_DAYS},
        }),
    )?;
    g.comments.insert(
        "LogGroup".into(),
        vec![
            "checkov CKV_AWS_158 (a KMS key of your own) is skipped: CloudWatch Logs encrypts every log group at rest"
                .into(),
            "with a key of its own, and the access log holds no token, secret or signature.".into(),
        ],
    );
    g.resource(
        "TaskExecutionRole",
        "the task execution role",
        &part,
        aws::service_role(
            "ecs-tasks.amazonaws.com",
            "Pulls the images and writes the logs of the lattice-jwt tasks",
            "service-role/AmazonECSTaskExecutionRolePolicy",
        ),
    )?;
    g.resource(
        "EcsInfrastructureRole",
        "the ECS infrastructure role",
        &part,
        aws::service_role(
            "ecs.amazonaws.com",
            "Lets ECS register the app tasks in their VPC Lattice target groups",
            "AmazonECSInfrastructureRolePolicyForVpcLattice",
        ),
    )?;
    Ok(())
}

/// The `.yaml` files in `dir` that `--split` manages.
fn managed_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if let Ok(entries) = std::fs::read_dir(dir) {
        for entry in entries.flatten() {
            let name = entry.file_name().to_string_lossy().into_owned();
            let managed = name == "network.yaml"
                || name == "frontend.yaml"
                || (name.starts_with("service-") && name.ends_with(".yaml"));
            if managed && entry.path().is_file() {
                out.push(PathBuf::from(name));
            }
        }
    }
    out.sort();
    out
}

fn files(rendered: &Rendered) -> output::Files {
    rendered.files.iter().cloned().collect()
}

/// Writes the template to `path`, or (`--split`) the stacks into the
/// directory `path`, removing stacks the spec no longer has.
pub fn write(path: &Path, rendered: &Rendered, split: bool) -> Result<(), String> {
    if split {
        output::write_files(path, &files(rendered), &managed_files(path))
    } else {
        let text = rendered.files.first().map(|(_, t)| t.as_str()).unwrap_or_default();
        output::write_atomic(path, text)
    }
}

/// What differs between `path` and the rendering, one line each.
pub fn drift(path: &Path, rendered: &Rendered, split: bool) -> Vec<String> {
    if split {
        output::drift(path, &files(rendered), &managed_files(path))
    } else {
        let text = rendered.files.first().map(|(_, t)| t.as_str()).unwrap_or_default();
        match std::fs::read_to_string(path) {
            Ok(existing) if existing == text => Vec::new(),
            Ok(_) => vec![format!("{}: differs from the spec", path.display())],
            Err(_) => vec![format!("{}: missing", path.display())],
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn words_are_alphanumeric() {
        assert_eq!(word("app1"), "App1");
        assert_eq!(word("orders-api"), "OrdersApi");
        assert_eq!(word("team.app_x"), "TeamAppX");
    }

    #[test]
    fn pascal_keeps_log_options() {
        assert_eq!(
            pascal(json!({"logConfiguration": {"logDriver": "awslogs", "options": {"awslogs-group": "g"}}})),
            json!({"LogConfiguration": {"LogDriver": "awslogs", "Options": {"awslogs-group": "g"}}})
        );
    }
}
