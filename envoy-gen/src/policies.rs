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
struct Document {
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

/// `App2` for `app2`, `OrdersApi` for `orders-api`: Sids are alphanumeric.
fn sid_word(name: &str) -> String {
    name.split('-')
        .map(|part| {
            let mut chars = part.chars();
            chars
                .next()
                .map(|first| first.to_ascii_uppercase().to_string() + chars.as_str())
                .unwrap_or_default()
        })
        .collect()
}

fn service_policy(system: &System, service: &Service) -> Result<Document, String> {
    let mut statements: Vec<Statement> = Vec::new();
    for caller in &service.callers {
        let (word, principal, scopes) = match caller {
            Caller::Frontend { scope_headers } => (
                "Frontend".to_string(),
                system.frontend.role.as_ref().map(|r| r.arn.clone()),
                scope_headers,
            ),
            Caller::Service { name, scope_headers } => (
                sid_word(name),
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
        let mut statement = Statement::allow(sid, Some(aws_principal(&[principal])), "*".into());
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

fn network_policy(system: &System) -> Document {
    let network = &system.network;
    if network.anonymous {
        document(vec![Statement::allow("Anyone".into(), Some("*".into()), "*".into())])
    } else if network.principals.is_empty() {
        document(vec![Statement::nobody()])
    } else {
        document(vec![Statement::allow(
            "SpecPrincipals".into(),
            Some(aws_principal(&network.principals)),
            "*".into(),
        )])
    }
}

/// Renders every document, or says what the spec lacks.
pub fn render(system: &System) -> Result<Rendered, Vec<Problem>> {
    let Some(account) = &system.account else {
        return Err(vec![Problem {
            origin: Origin::Default,
            field: "account".into(),
            message: "is required to render policies (the 12-digit AWS account of the services and roles)".into(),
        }]);
    };
    let bug = |message: String| {
        vec![Problem {
            origin: Origin::Default,
            field: String::new(),
            message,
        }]
    };
    let region = &system.signing.region;
    let mut documents: Vec<(PathBuf, Document)> = Vec::new();
    let mut notes = Vec::new();
    documents.push((PathBuf::from(NETWORK_FILE), network_policy(system)));
    for service in &system.services {
        let doc = service_policy(system, service).map_err(bug)?;
        documents.push((service_file(&service.name), doc));
    }

    // Identity policies: what each role invokes.
    let service_arn = |s: &Service| match &s.id {
        Some(id) => format!("arn:aws:vpc-lattice:{region}:{account}:service/{id}/*"),
        None => format!("arn:aws:vpc-lattice:{region}:{account}:service/*"),
    };
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
        invokers.push((role, targets));
    }
    for service in &system.services {
        if let Some(role) = &service.role {
            let targets: Vec<&Service> = service.calls.iter().filter_map(|t| system.service(t)).collect();
            if !targets.is_empty() {
                invokers.push((role, targets));
            }
        }
    }
    let mut unnamed: Vec<&str> = Vec::new();
    for (role, targets) in invokers {
        if targets.is_empty() {
            continue;
        }
        let mut resources: Vec<String> = targets.iter().map(|s| service_arn(s)).collect();
        resources.sort();
        resources.dedup();
        unnamed.extend(targets.iter().filter(|s| s.id.is_none()).map(|s| s.name.as_str()));
        let path = role_file(&role.name);
        if documents.iter().any(|(p, _)| p == &path) {
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
        documents.push((
            path,
            document(vec![Statement::allow("InvokeLatticeServices".into(), None, resource)]),
        ));
    }
    unnamed.sort_unstable();
    unnamed.dedup();
    if !unnamed.is_empty() {
        notes.push(format!(
            "note: services without `id` ({}): identity policies name every Lattice service of account {account} for them; add each service's id (aws vpc-lattice list-services) to narrow them",
            unnamed.join(", ")
        ));
    }
    let mut files = BTreeMap::new();
    for (path, doc) in documents {
        let text = serde_json::to_string_pretty(&doc).map_err(|e| bug(format!("bug in envoy-gen: {e}")))?;
        files.insert(path, text + "\n");
    }
    Ok(Rendered { files, notes })
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
