//! `envoy-gen policies`: the IAM documents that decide every flow, from
//! the same model as the Envoy configurations, so a policy always names the
//! headers the frontend's filter emits and the roles Envoy signs with.
//!
//! - `service-network.json`: the service network's auth policy (who may enter).
//! - `services/<name>.json`: each service's auth policy (who may call it).
//! - `roles/<role>.json`: each calling role's IAM identity policy. Lattice
//!   needs an Allow in the auth policies AND in the caller's identity policy.

use crate::model::{Caller, Problem, Service, System};
use crate::output;
use crate::spec::Origin;
use serde::Serialize;
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

const INVOKE: &str = "vpc-lattice-svcs:Invoke";

/// Where each document goes, relative to the output directory.
pub const NETWORK_FILE: &str = "service-network.json";
const SERVICES_DIR: &str = "services";
const ROLES_DIR: &str = "roles";

/// The auth policy of service `name`.
pub fn service_file(name: &str) -> PathBuf {
    Path::new(SERVICES_DIR).join(format!("{name}.json"))
}

/// The identity policy of the role called `name`.
pub fn role_file(name: &str) -> PathBuf {
    Path::new(ROLES_DIR).join(format!("{name}.json"))
}

/// An IAM policy document, with its elements in the order AWS writes them.
#[derive(Debug, Serialize)]
pub struct Document {
    #[serde(rename = "Version")]
    version: &'static str,
    #[serde(rename = "Statement")]
    statements: Vec<Statement>,
}

#[derive(Debug, Serialize)]
struct Statement {
    #[serde(rename = "Sid")]
    sid: String,
    #[serde(rename = "Effect")]
    effect: &'static str,
    #[serde(rename = "Principal", skip_serializing_if = "Option::is_none")]
    principal: Option<serde_json::Value>,
    #[serde(rename = "Action")]
    action: &'static str,
    #[serde(rename = "Resource")]
    resource: serde_json::Value,
    #[serde(rename = "Condition", skip_serializing_if = "Option::is_none")]
    condition: Option<serde_json::Value>,
}

impl Statement {
    fn allow(sid: String, principal: Option<serde_json::Value>, resource: serde_json::Value) -> Statement {
        Statement {
            sid,
            effect: "Allow",
            principal,
            action: INVOKE,
            resource,
            condition: None,
        }
    }

    /// Admits nobody: an explicit Deny, so no other policy can open it.
    fn nobody() -> Statement {
        Statement {
            sid: "AdmitsNobody".into(),
            effect: "Deny",
            principal: Some("*".into()),
            action: INVOKE,
            resource: "*".into(),
            condition: None,
        }
    }
}

fn document(statements: Vec<Statement>) -> Document {
    Document {
        version: "2012-10-17",
        statements,
    }
}

/// The rendered documents: relative path to JSON text, and notes for the user.
pub struct Rendered {
    pub files: output::Files,
    pub notes: Vec<String>,
}

fn aws_principal(arns: &[String]) -> serde_json::Value {
    match arns {
        [one] => serde_json::json!({"AWS": one}),
        many => serde_json::json!({"AWS": many}),
    }
}

/// `App2` for `app2`, `OrdersApi` for `orders-api`, `TeamApp` for
/// `team.app`: a name of the spec as an alphanumeric word, for policy Sids
/// and CloudFormation logical ids.
pub fn word(name: &str) -> String {
    name.split(|c: char| !c.is_ascii_alphanumeric())
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

/// How the documents name roles and services. `envoy-gen policies` names
/// them by their ARNs ([`ByArn`]); the CloudFormation stack names its own
/// roles and services as substitutions of its resources, so the documents
/// are built once, here, for both.
pub trait Naming {
    /// A principal of the spec (a role, user or account ARN).
    fn principal(&self, arn: &str) -> String;
    /// What an identity policy grants `vpc-lattice-svcs:Invoke` on for
    /// `service` (the service and every path of it), or `None` when the
    /// service is not known by name: then every service of the account.
    fn service(&self, service: &Service) -> Option<String>;
}

/// The documents as `envoy-gen policies` writes them: principals by ARN,
/// services by the ARN their spec `id` gives.
pub struct ByArn<'a> {
    pub region: &'a str,
    pub account: &'a str,
}

impl Naming for ByArn<'_> {
    fn principal(&self, arn: &str) -> String {
        arn.to_string()
    }

    fn service(&self, service: &Service) -> Option<String> {
        let (region, account) = (self.region, self.account);
        service
            .id
            .as_ref()
            .map(|id| format!("arn:aws:vpc-lattice:{region}:{account}:service/{id}/*"))
    }
}

fn service_policy(system: &System, service: &Service, naming: &dyn Naming) -> Result<Document, String> {
    let mut statements: Vec<Statement> = Vec::new();
    for caller in &service.callers {
        let (word, principal, scopes) = match caller {
            Caller::Frontend { scope_headers } => (
                "Frontend".to_string(),
                system.frontend.role.as_ref().map(|r| r.arn.clone()),
                scope_headers,
            ),
            Caller::Service { name, scope_headers } => (
                word(name),
                system
                    .service(name)
                    .and_then(|s| s.role.as_ref())
                    .map(|r| r.arn.clone()),
                scope_headers,
            ),
            Caller::Anonymous => {
                statements.push(Statement::allow("Anonymous".into(), Some("*".into()), "*".into()));
                continue;
            }
        };
        let principal =
            principal.ok_or_else(|| format!("bug in envoy-gen: a caller of `{}` has no role", service.name))?;
        let mut sid = format!("From{word}");
        let base = sid.clone();
        let mut n = 1;
        while statements.iter().any(|s| s.sid == sid) {
            n += 1;
            sid = format!("{base}{n}");
        }
        let mut statement = Statement::allow(sid, Some(aws_principal(&[naming.principal(&principal)])), "*".into());
        if !scopes.is_empty() {
            let headers: serde_json::Map<String, serde_json::Value> = scopes
                .iter()
                .map(|h| (format!("vpc-lattice-svcs:RequestHeader/{}", h.header), "true".into()))
                .collect();
            statement.condition = Some(serde_json::json!({ "StringEquals": headers }));
        }
        statements.push(statement);
    }
    if statements.is_empty() {
        statements.push(Statement::nobody());
    }
    Ok(document(statements))
}

fn network_policy(system: &System, naming: &dyn Naming) -> Document {
    let network = &system.network;
    if network.anonymous {
        document(vec![Statement::allow("Anyone".into(), Some("*".into()), "*".into())])
    } else if network.principals.is_empty() {
        document(vec![Statement::nobody()])
    } else {
        let principals: Vec<String> = network.principals.iter().map(|p| naming.principal(p)).collect();
        document(vec![Statement::allow(
            "SpecPrincipals".into(),
            Some(aws_principal(&principals)),
            "*".into(),
        )])
    }
}

/// Every document of the system, as JSON values.
pub struct Documents {
    /// The service network's auth policy.
    pub network: Document,
    /// Each service's auth policy, by service name (spec order).
    pub services: Vec<(String, Document)>,
    /// Each calling role's identity policy: the role and its document.
    pub roles: Vec<(crate::model::Role, Document)>,
    /// What the user should know (services named by no id).
    pub notes: Vec<String>,
}

fn account_problem() -> Vec<Problem> {
    vec![Problem {
        origin: Origin::Default,
        field: "account".into(),
        message: "is required to render policies (the 12-digit AWS account of the services and roles)".into(),
    }]
}

fn bug(message: String) -> Vec<Problem> {
    vec![Problem {
        origin: Origin::Default,
        field: String::new(),
        message,
    }]
}

impl Document {
    /// The document as a JSON value (members sorted by name).
    pub fn to_value(&self) -> Result<serde_json::Value, Vec<Problem>> {
        serde_json::to_value(self).map_err(|e| bug(format!("bug in envoy-gen: {e}")))
    }
}

/// The roles that invoke services, with the services each invokes: the
/// frontend's role (the services that admit it), then each service's role
/// (the services it calls).
pub fn invokers(system: &System) -> Vec<(&crate::model::Role, Vec<&Service>)> {
    let mut invokers: Vec<(&crate::model::Role, Vec<&Service>)> = Vec::new();
    if let Some(role) = &system.frontend.role {
        let targets: Vec<&Service> = system
            .services
            .iter()
            .filter(|s| {
                s.callers
                    .iter()
                    .any(|c| matches!(c, Caller::Frontend { .. } | Caller::Anonymous))
            })
            .collect();
        if !targets.is_empty() {
            invokers.push((role, targets));
        }
    }
    for service in &system.services {
        if let Some(role) = &service.role {
            let targets: Vec<&Service> = service.calls.iter().filter_map(|t| system.service(t)).collect();
            if !targets.is_empty() {
                invokers.push((role, targets));
            }
        }
    }
    invokers
}

/// Builds every document with `naming`, or says what the spec lacks.
pub fn documents(system: &System, naming: &dyn Naming) -> Result<Documents, Vec<Problem>> {
    let Some(account) = &system.account else {
        return Err(account_problem());
    };
    let region = &system.signing.region;
    let network = network_policy(system, naming);
    let mut services = Vec::new();
    for service in &system.services {
        let doc = service_policy(system, service, naming).map_err(bug)?;
        services.push((service.name.clone(), doc));
    }

    // Identity policies: what each role invokes.
    let mut roles: Vec<(crate::model::Role, Document)> = Vec::new();
    let mut unnamed: Vec<&str> = Vec::new();
    for (role, targets) in invokers(system) {
        let mut resources: Vec<String> = Vec::new();
        for target in &targets {
            match naming.service(target) {
                Some(resource) => resources.push(resource),
                None => {
                    unnamed.push(target.name.as_str());
                    resources.push(format!("arn:aws:vpc-lattice:{region}:{account}:service/*"));
                }
            }
        }
        resources.sort();
        resources.dedup();
        if roles.iter().any(|(r, _)| r.name == role.name) {
            return Err(vec![Problem {
                origin: Origin::Default,
                field: "role".into(),
                message: format!(
                    "two roles are named `{}` (in different accounts); give them different names",
                    role.name
                ),
            }]);
        }
        let resource = match resources.as_slice() {
            [one] => serde_json::Value::from(one.as_str()),
            many => serde_json::json!(many),
        };
        let doc = document(vec![Statement::allow("InvokeLatticeServices".into(), None, resource)]);
        roles.push((role.clone(), doc));
    }
    unnamed.sort_unstable();
    unnamed.dedup();
    let mut notes = Vec::new();
    if !unnamed.is_empty() {
        notes.push(format!(
            "note: services without `id` ({}): identity policies name every Lattice service of account {account} for them; add each service's id (aws vpc-lattice list-services) to narrow them",
            unnamed.join(", ")
        ));
    }
    Ok(Documents {
        network,
        services,
        roles,
        notes,
    })
}

/// Renders every document as `envoy-gen policies` writes it, or says what
/// the spec lacks.
pub fn render(system: &System) -> Result<Rendered, Vec<Problem>> {
    let Some(account) = &system.account else {
        return Err(account_problem());
    };
    let naming = ByArn {
        region: &system.signing.region,
        account,
    };
    let documents = documents(system, &naming)?;
    let mut files = BTreeMap::new();
    let mut add = |path: PathBuf, doc: &Document| -> Result<(), Vec<Problem>> {
        let text = serde_json::to_string_pretty(doc).map_err(|e| bug(format!("bug in envoy-gen: {e}")))?;
        files.insert(path, text + "\n");
        Ok(())
    };
    add(PathBuf::from(NETWORK_FILE), &documents.network)?;
    for (name, doc) in &documents.services {
        add(service_file(name), doc)?;
    }
    for (role, doc) in &documents.roles {
        add(role_file(&role.name), doc)?;
    }
    Ok(Rendered {
        files,
        notes: documents.notes,
    })
}

/// The `.json` files under `dir` that envoy-gen manages (relative paths).
fn managed_files(dir: &Path) -> Vec<PathBuf> {
    let mut out = Vec::new();
    if dir.join(NETWORK_FILE).is_file() {
        out.push(PathBuf::from(NETWORK_FILE));
    }
    for sub in [SERVICES_DIR, ROLES_DIR] {
        out.extend(output::json_files(dir, sub));
    }
    out.sort();
    out
}

/// Writes every document under `dir` (each file atomically) and removes
/// managed files the spec no longer produces.
pub fn write(dir: &Path, rendered: &Rendered) -> Result<(), String> {
    output::write_files(dir, &rendered.files, &managed_files(dir))
}

/// What differs between `dir` and the rendered documents, one line each.
pub fn drift(dir: &Path, rendered: &Rendered) -> Vec<String> {
    output::drift(dir, &rendered.files, &managed_files(dir))
}
