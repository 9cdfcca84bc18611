//! `envoy-gen sidecar`: the egress Envoy of one service. The app reaches
//! the services it may call through it (as an HTTP forward proxy, or with
//! `Host: <service host>` on its loopback listener); it signs with the
//! service's own role and refuses every other target locally.

use crate::args::ListenArgs;
use crate::model::{self, Problem, Service, System};
use crate::refusals::refusals;
use crate::render;
use crate::spec::Origin;
use minijinja::context;
use minijinja::value::Serde;

/// Renders the sidecar of `name`, with `listen` overriding the spec's addresses.
pub fn render(system: &System, name: &str, listen: &ListenArgs) -> Result<String, Vec<Problem>> {
    let Some(service) = system.service(name) else {
        let names: Vec<&str> = system.services.iter().map(|s| s.name.as_str()).collect();
        return Err(vec![Problem {
            origin: Origin::Flag("--service"),
            field: "--service".into(),
            message: format!("`{name}` is not a service of the spec ({})", names.join(", ")),
        }]);
    };
    let mut service = service.clone();
    service.sidecar = model::sidecar_addresses(&service, listen)?;
    let targets: Vec<&Service> = service.calls.iter().filter_map(|t| system.service(t)).collect();
    // The sidecar routes by the host of each service it calls.
    let missing: Vec<Problem> = targets
        .iter()
        .filter(|t| t.upstream.is_none())
        .map(|t| model::no_host(t))
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let refusal = if targets.is_empty() {
        format!("refused by the sidecar of {name}: {name} may call no service\n")
    } else {
        let hosts: Vec<&str> = targets
            .iter()
            .filter_map(|t| t.upstream.as_ref())
            .map(|u| u.host.as_str())
            .collect();
        format!(
            "refused by the sidecar of {name}: this host is not a service {name} may call ({})\n",
            hosts.join(", ")
        )
    };
    let role_arn = model::signer_role(system, service.role.as_ref(), &format!("services[{name}].role"))?;
    render::envoy(
        "sidecar.yaml.j2",
        context! {
            role_arn => role_arn,
            session => format!("lattice-jwt-{name}"),
            s => Serde(&service),
            targets => Serde(&targets),
            signing => Serde(&system.signing),
            modules => Serde(&system.modules),
            refusal => refusal,
            refusals => Serde(refusals(&system.methods)),
        },
    )
    .map_err(|message| {
        vec![Problem {
            origin: Origin::Default,
            field: String::new(),
            message,
        }]
    })
}
