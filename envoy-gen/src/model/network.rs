//! The service network: whom its auth policy admits.

use super::*;

pub(super) fn network(
    c: &mut Checker,
    spec: Option<NetworkSpec>,
    services: &[Service],
    frontend_role: Option<&Role>,
) -> Network {
    let spec = spec.unwrap_or_default();
    let name = spec.name.map(|n| n.value);
    let mut network = Network {
        name,
        principals: Vec::new(),
        anonymous: false,
    };
    match spec.principals {
        None => {
            network.principals.extend(frontend_role.map(|r| r.arn.clone()));
            network.principals.extend(
                services
                    .iter()
                    .filter(|s| !s.calls.is_empty())
                    .filter_map(|s| s.role.as_ref().map(|r| r.arn.clone())),
            );
            network.anonymous = services.iter().any(|s| s.callers.contains(&Caller::Anonymous));
        }
        Some(list) => {
            for (i, p) in list.into_iter().enumerate() {
                let field = format!("network.principals[{i}]");
                listed_principal(c, &field, &p, services, frontend_role, &mut network);
            }
            if !network.anonymous {
                callers_kept_out(c, &network, services, frontend_role);
            }
        }
    }
    network.principals.sort();
    network.principals.dedup();
    network
}

/// One entry of `network.principals`: `anonymous`, `frontend`, a service,
/// an account id or a principal ARN.
fn listed_principal(
    c: &mut Checker,
    field: &str,
    p: &Located<String>,
    services: &[Service],
    frontend_role: Option<&Role>,
    network: &mut Network,
) {
    match p.value.as_str() {
        "anonymous" => network.anonymous = true,
        "frontend" => match frontend_role {
            Some(r) => network.principals.push(r.arn.clone()),
            None => c.problem(&p.origin, field, "`frontend` needs `frontend.role`"),
        },
        text if is_account_id(text) => network.principals.push(format!("arn:aws:iam::{text}:root")),
        text if text.starts_with("arn:") => {
            if is_principal_arn(text) {
                network.principals.push(text.to_string());
            } else {
                c.problem(
                    &p.origin,
                    field,
                    format!("`{text}` is not an IAM role, user or account-root ARN"),
                );
            }
        }
        name => match services.iter().find(|s| s.name == name) {
            Some(s) => match &s.role {
                Some(r) => network.principals.push(r.arn.clone()),
                None => c.problem(&p.origin, field, format!("service `{name}` has no `role`")),
            },
            None => c.problem(
                &p.origin,
                field,
                format!("`{name}` is not `frontend`, `anonymous`, a service of this spec, an account id or an ARN"),
            ),
        },
    }
}

/// A caller the network keeps out could never reach the service.
fn callers_kept_out(c: &mut Checker, network: &Network, services: &[Service], frontend_role: Option<&Role>) {
    let admitted = |arn: &str| {
        network.principals.iter().any(|p| {
            p == arn
                || p.strip_suffix(":root")
                    .is_some_and(|root| arn.starts_with(&format!("{}:", root)))
        })
    };
    for s in services {
        for caller in &s.callers {
            let (who, arn) = match caller {
                Caller::Anonymous => ("anonymous callers".to_string(), None),
                Caller::Frontend { .. } => ("the frontend".to_string(), frontend_role.map(|r| r.arn.as_str())),
                Caller::Service { name, .. } => (
                    format!("service `{name}`"),
                    services
                        .iter()
                        .find(|o| &o.name == name)
                        .and_then(|o| o.role.as_ref())
                        .map(|r| r.arn.as_str()),
                ),
            };
            if arn.is_none_or(|arn| !admitted(arn)) {
                c.problem(
                    &Origin::Default,
                    "network.principals",
                    format!(
                        "{who} may call `{}` but cannot enter the service network: add it to network.principals",
                        s.name
                    ),
                );
            }
        }
    }
}

pub(super) fn is_principal_arn(arn: &str) -> bool {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    matches!(parts.as_slice(), ["arn", partition, "iam", "", acct, resource]
        if partition.starts_with("aws") && is_account_id(acct)
            && (resource.starts_with("role/") || resource.starts_with("user/") || *resource == "root"))
}
