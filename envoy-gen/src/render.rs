//! Renders the templates in `envoy/templates/` (embedded at build time).
//! Strict undefined: a typo in a template is an error, never an empty
//! string. A template failure is a bug in envoy-gen, and says so.

use minijinja::{Environment, UndefinedBehavior, Value};

/// Every template, by the name templates import it with.
const TEMPLATES: [(&str, &str); 5] = [
    (
        "frontend.yaml.j2",
        include_str!("../../envoy/templates/frontend.yaml.j2"),
    ),
    ("sidecar.yaml.j2", include_str!("../../envoy/templates/sidecar.yaml.j2")),
    (
        "lattice_cluster.yaml.j2",
        include_str!("../../envoy/templates/lattice_cluster.yaml.j2"),
    ),
    (
        "refusals.yaml.j2",
        include_str!("../../envoy/templates/refusals.yaml.j2"),
    ),
    (
        "access_log.yaml.j2",
        include_str!("../../envoy/templates/access_log.yaml.j2"),
    ),
];

fn environment() -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    for (name, source) in TEMPLATES {
        env.add_template(name, source).map_err(bug)?;
    }
    Ok(env)
}

fn bug(e: minijinja::Error) -> String {
    format!("bug in envoy-gen: template failed: {e:#}")
}

/// An Envoy bootstrap YAML from `template`. The result is parsed back as
/// YAML before it is returned, so a template bug cannot produce a file
/// Envoy would misread.
pub fn envoy(template: &str, context: Value) -> Result<String, String> {
    let env = environment()?;
    let mut text = env.get_template(template).map_err(bug)?.render(context).map_err(bug)?;
    if !text.ends_with('\n') {
        text.push('\n');
    }
    serde_saphyr::from_str::<serde_json::Value>(&text).map_err(|e| {
        format!(
            "bug in envoy-gen: the rendered configuration is not valid YAML: {}",
            e.without_snippet()
        )
    })?;
    Ok(text)
}
