//! Renders the templates in `envoy/templates/` (embedded at build time).
//! Strict undefined: a typo in a template is an error, never an empty
//! string. A template failure is a bug in envoy-gen, and says so.

use crate::frontend::Frontend;
use minijinja::value::Serde;
use minijinja::{context, Environment, UndefinedBehavior};

const FRONTEND: &str = include_str!("../../envoy/templates/frontend.yaml.j2");

fn environment() -> Result<Environment<'static>, String> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Strict);
    env.add_template("frontend.yaml.j2", FRONTEND).map_err(bug)?;
    Ok(env)
}

fn bug(e: minijinja::Error) -> String {
    format!("bug in envoy-gen: template failed: {e:#}")
}

/// The frontend bootstrap YAML. The result is parsed back as YAML before it
/// is returned, so a template bug cannot produce a file Envoy would misread.
pub fn frontend(f: &Frontend) -> Result<String, String> {
    let env = environment()?;
    let mut text = env
        .get_template("frontend.yaml.j2")
        .map_err(bug)?
        .render(context! { f => Serde(f) })
        .map_err(bug)?;
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
