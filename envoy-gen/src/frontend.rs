//! `envoy-gen frontend`: the edge Envoy. Validates the user's token
//! (jwt_authn), turns its scopes and subject into headers (jwt_scopes),
//! routes each path prefix to its Lattice service and signs for it.

use crate::model::System;
use crate::refusals::refusals;
use crate::render;
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

pub fn render(system: &System) -> Result<String, String> {
    let default_service = system
        .service(&system.frontend.default_service)
        .ok_or("bug in envoy-gen: the default service is not a service")?;
    // jwt_authn checks no audience at all when it is given none: a provider
    // without audiences is only safe with the filter's client id check.
    if let Some(p) = system
        .frontend
        .providers
        .iter()
        .find(|p| p.audiences.is_empty() && p.client_ids.is_empty())
    {
        return Err(format!(
            "bug in envoy-gen: issuer `{}` has neither audiences nor client ids",
            p.name
        ));
    }
    render::envoy(
        "frontend.yaml.j2",
        context! {
            f => Serde(&system.frontend),
            signing => Serde(&system.signing),
            wasm => &system.wasm,
            services => Serde(&system.services),
            default_service => Serde(default_service),
            challenges => Serde(CHALLENGES),
            refusals => Serde(refusals(&system.methods)),
        },
    )
}
