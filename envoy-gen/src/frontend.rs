//! `envoy-gen frontend`: the edge Envoy. Validates the user's token
//! (jwt_authn), turns its scopes and subject into headers (jwt_scopes),
//! routes each path prefix to its Lattice service and signs for it.

use crate::model::System;
use crate::render;
use minijinja::context;
use minijinja::value::Serde;

pub fn render(system: &System) -> Result<String, String> {
    let default_service = system
        .service(&system.frontend.default_service)
        .ok_or("bug in envoy-gen: the default service is not a service")?;
    render::envoy(
        "frontend.yaml.j2",
        context! {
            f => Serde(&system.frontend),
            signing => Serde(&system.signing),
            services => Serde(&system.services),
            default_service => Serde(default_service),
        },
    )
}
