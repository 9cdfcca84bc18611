//! `envoy-gen frontend`: the edge Envoy. Validates the user's token
//! (jwt_authn), turns its scopes and subject into headers (jwt_scopes),
//! routes each path prefix to its Lattice service and signs for it.

use crate::model::{self, Problem, System};
use crate::refusals::refusals;
use crate::render;
use crate::spec::Origin;
use minijinja::context;
use minijinja::value::Serde;

/// The `WWW-Authenticate` challenge of the frontend's local 401 and 403
/// replies, by status and whether the refused request still carried an
/// `authorization` header, first match first. Fixed strings: jwt_authn's own
/// challenge copies the request URL into `realm`, so a crafted link could
/// add `error=` or `resource_metadata=` parameters that OAuth clients act
/// on. A local 403 without the header (jwt_scopes' refusals) has none.
pub const CHALLENGES: [(u16, bool, &str); 3] = [
    (401, true, "Bearer error=\"invalid_token\""),
    (401, false, "Bearer"),
    (403, true, "Bearer error=\"invalid_token\""),
];

/// Renders the frontend. It routes to every service, so each needs its
/// host: a service without one (no custom domain name, and no
/// `--service-host`) is a problem, named where the spec names the service.
pub fn render(system: &System) -> Result<String, Vec<Problem>> {
    let missing: Vec<Problem> = system
        .services
        .iter()
        .filter(|s| s.upstream.is_none())
        .map(model::no_host)
        .collect();
    if !missing.is_empty() {
        return Err(missing);
    }
    let default_service = system
        .service(&system.frontend.default_service)
        .ok_or_else(|| bug("the default service is not a service".into()))?;
    // jwt_authn checks no audience at all when it is given none: a provider
    // without audiences is only safe with the filter's client id check.
    if let Some(p) = system
        .frontend
        .providers
        .iter()
        .find(|p| p.audiences.is_empty() && p.client_ids.is_empty())
    {
        return Err(bug(format!("issuer `{}` has neither audiences nor client ids", p.name)));
    }
    let role_arn = model::signer_role(system, system.frontend.role.as_ref(), "frontend.role")?;
    render::envoy(
        "frontend.yaml.j2",
        context! {
            role_arn => role_arn,
            session => "lattice-jwt-frontend",
            f => Serde(&system.frontend),
            signing => Serde(&system.signing),
            modules => Serde(&system.modules),
            services => Serde(&system.services),
            default_service => Serde(default_service),
            challenges => Serde(CHALLENGES),
            refusals => Serde(refusals(&system.methods)),
        },
    )
    .map_err(|message| vec![problem(message)])
}

fn problem(message: String) -> Problem {
    Problem {
        origin: Origin::Default,
        field: String::new(),
        message,
    }
}

fn bug(message: String) -> Vec<Problem> {
    vec![problem(format!("bug in envoy-gen: {message}"))]
}
