//! The properties the fuzz target in `envoy-gen/fuzz/` checks.
//! `tests/fuzz_corpus.rs` replays the committed corpus through the same
//! function on stable Rust, so `make test` checks what the fuzzer found
//! interesting without a nightly toolchain.
//!
//! Why in the crate and not behind a cargo feature: the nightly fuzz
//! project and the stable test must call one definition, and `make test`
//! runs the plain workspace. The module is hidden from the documentation and
//! never panics: a broken property is an `Err` naming it, which the fuzz
//! target turns into a crash and the corpus test into a failure.
#![doc(hidden)]

use crate::args::{ListenArgs, Overrides};
use crate::model::{self, Caller, Problem, System};
use crate::spec::{self, Origin};
use crate::{cloudformation, frontend, policies, report, sidecar};
use jwt_scopes_core::names::{is_lowercase_header_name, scope_header_name};
use jwt_scopes_core::Config;
use std::path::Path;

/// A property check: `Err` says which property the input breaks.
pub type Check = fn(&[u8]) -> Result<(), String>;

/// Every fuzz target of this crate, by its name in `fuzz/fuzz_targets/`.
pub const TARGETS: [(&str, Check); 1] = [("spec", check_spec)];

macro_rules! ensure {
    ($cond:expr, $($message:tt)+) => {
        if !$cond {
            return Err(format!($($message)+));
        }
    };
}

/// How the message of a template or internal failure starts: never the
/// user's fault.
const BUG: &str = "bug in envoy-gen";

/// The spec parser and the model. Input: a spec file (bytes that are not
/// UTF-8 are replaced, as a lossy read would).
///
/// Properties: no panic; every parse error has a line and column and none
/// is a bug; every problem of the semantic checks names a position in the
/// file or a field, and none is a bug; the report of them formats; a spec
/// that loads gives a filter configuration the filter accepts, policies
/// whose scope headers are the ones the filter emits, and renders its
/// frontend, every sidecar and its policies without a bug (the frontend
/// may only ask for the host of a service without one; sidecars, policies
/// and the CloudFormation stacks may still ask for what they need, naming
/// the field), and every stack it renders reads back as YAML with its
/// resources.
pub fn check_spec(data: &[u8]) -> Result<(), String> {
    let text = String::from_utf8_lossy(data);
    let path = Path::new("spec.yaml");
    let parsed = match spec::parse(&text) {
        Ok(parsed) => parsed,
        Err(problems) => {
            ensure!(!problems.is_empty(), "the parser refused without a problem");
            for problem in &problems {
                ensure!(!problem.message.is_empty(), "a parse error without a message");
                ensure!(
                    matches!(problem.origin, Origin::File { .. }),
                    "parse error {:?} has no line and column",
                    problem.message
                );
                ensure!(!problem.message.starts_with(BUG), "parsing: {}", problem.message);
            }
            return Ok(());
        }
    };
    let system = match model::resolve(parsed, &Overrides::default()) {
        Ok(system) => system,
        Err(problems) => {
            ensure!(!problems.is_empty(), "refused without a problem");
            check_problems("the spec", &problems)?;
            let printed = report(&problems, Some((path, &text)));
            ensure!(
                printed.ends_with("nothing was written\n"),
                "the report does not end with its summary"
            );
            return Ok(());
        }
    };
    check_system(&system)
}

/// Every problem names where (a position or a field) and what, and none is
/// envoy-gen's own failure.
fn check_problems(what: &str, problems: &[Problem]) -> Result<(), String> {
    for problem in problems {
        ensure!(
            matches!(problem.origin, Origin::File { .. }) || !problem.field.is_empty(),
            "{what}: problem {:?} names neither a position nor a field",
            problem.message
        );
        ensure!(!problem.message.is_empty(), "{what}: a problem without a message");
        // Only the start counts: a message may quote the user's text.
        ensure!(!problem.message.starts_with(BUG), "{what}: {}", problem.message);
    }
    Ok(())
}

fn check_system(system: &System) -> Result<(), String> {
    let config = Config::from_json(system.frontend.filter_config.as_bytes())
        .map_err(|e| format!("the filter refuses the configuration envoy-gen wrote: {e}"))?;
    for service in &system.services {
        for caller in &service.callers {
            let headers = match caller {
                Caller::Frontend { scope_headers } | Caller::Service { scope_headers, .. } => scope_headers,
                Caller::Anonymous => continue,
            };
            for header in headers {
                let emitted = scope_header_name(&config.scope_header_prefix, &header.scope, config.scope_encoding);
                ensure!(
                    emitted.as_deref() == Some(header.header.as_str()) && is_lowercase_header_name(&header.header),
                    "{}: scope {:?} is granted on {:?}, but the filter emits {emitted:?}",
                    service.name,
                    header.scope,
                    header.header
                );
            }
        }
    }

    match frontend::render(system) {
        Ok(frontend) => ensure!(!frontend.is_empty(), "the frontend renders empty"),
        Err(problems) => {
            ensure!(
                system.services.iter().any(|s| s.upstream.is_none()),
                "the frontend does not render: {}",
                report(&problems, None)
            );
            check_problems("the frontend", &problems)?;
        }
    }
    for service in &system.services {
        if let Err(problems) = sidecar::render(system, &service.name, &ListenArgs::default()) {
            check_problems(&format!("sidecar {}", service.name), &problems)?;
        }
    }
    match policies::render(system) {
        Ok(rendered) => {
            for (file, text) in &rendered.files {
                serde_json::from_str::<serde_json::Value>(text)
                    .map_err(|e| format!("policy {} is not JSON: {e}", file.display()))?;
            }
        }
        Err(problems) => check_problems("the policies", &problems)?,
    }
    for split in [false, true] {
        match cloudformation::render(system, &Default::default(), split) {
            Ok(rendered) => {
                for (file, text) in &rendered.files {
                    let template: serde_json::Value = serde_saphyr::from_str(text)
                        .map_err(|e| format!("stack {} does not read back as YAML: {e}", file.display()))?;
                    ensure!(
                        template.get("Resources").is_some_and(serde_json::Value::is_object),
                        "stack {} has no resources",
                        file.display()
                    );
                }
            }
            Err(problems) => check_problems("the CloudFormation stack", &problems)?,
        }
    }
    let args = crate::kubernetes::KubernetesArgs {
        image: "111122223333.dkr.ecr.us-west-2.amazonaws.com/lattice-jwt:1".into(),
        app_images: system
            .services
            .iter()
            .map(|s| format!("{}=registry.example/app:1", s.name))
            .collect(),
        namespace: "fuzz".into(),
        certificate_arn: "arn:aws:acm:us-west-2:111122223333:certificate/0a1b2c3d".into(),
        cluster: Some("fuzz".into()),
        replicas: 2,
        ..Default::default()
    };
    match crate::kubernetes::render(system, &args) {
        Ok(files) => {
            for (file, text) in &files {
                if file.extension().is_some_and(|e| e == "json") {
                    let trust: serde_json::Value = serde_json::from_str(text)
                        .map_err(|e| format!("trust policy {} is not JSON: {e}", file.display()))?;
                    ensure!(
                        trust.get("Statement").is_some_and(serde_json::Value::is_array),
                        "trust policy {} has no statements",
                        file.display()
                    );
                    continue;
                }
                for document in text.split("\n---\n") {
                    let object: serde_json::Value = serde_saphyr::from_str(document)
                        .map_err(|e| format!("manifest {} does not read back as YAML: {e}", file.display()))?;
                    ensure!(
                        object.get("kind").is_some_and(serde_json::Value::is_string),
                        "manifest {} has an object without a kind",
                        file.display()
                    );
                }
            }
        }
        Err(problems) => check_problems("the Kubernetes manifests", &problems)?,
    }
    Ok(())
}
