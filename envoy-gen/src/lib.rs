//! envoy-gen as a library: the spec, its validation and rendering. The CLI
//! (`main.rs`) and the integration tests call the same functions.

pub mod args;
pub mod cloudformation;
pub mod ecs;
pub mod envoy;
pub mod frontend;
pub mod fuzzing;
pub mod kubernetes;
pub mod model;
pub mod output;
pub mod policies;
pub mod problem;
pub mod refusals;
pub mod render;
pub mod sidecar;
pub mod spec;
pub mod validate;
pub mod yaml;

use args::Overrides;
use model::{Problem, System};
use spec::Origin;
use std::path::Path;

/// Parses and checks a spec file (path and text; none: an empty spec) with
/// the command-line overrides applied. On failure, the error is the full
/// report to print (every problem, with locations).
pub fn load(spec_file: Option<(&Path, &str)>, overrides: &Overrides) -> Result<System, String> {
    let spec = match spec_file {
        Some((_, text)) => spec::parse(text).map_err(|problems| report(&problems, spec_file))?,
        None => spec::Spec::default(),
    };
    model::resolve(spec, overrides).map_err(|problems| report(&problems, spec_file))
}

/// The frontend bootstrap from an optional spec file and the overrides.
pub fn render_frontend(spec_file: Option<(&Path, &str)>, overrides: &Overrides) -> Result<String, String> {
    let system = load(spec_file, overrides)?;
    frontend::render(&system).map_err(|problems| report(&problems, spec_file))
}

/// Formats problems like a compiler (see [`describe`]), then a summary.
pub fn report(problems: &[Problem], source: Option<(&Path, &str)>) -> String {
    let mut out = describe(problems, source);
    let n = problems.len();
    out.push_str(&format!(
        "error: {n} problem{}; nothing was written\n",
        if n == 1 { "" } else { "s" }
    ));
    out
}

/// Formats problems like a compiler: `error: FILE:LINE:COL: field: message`,
/// the source line and a caret. Problems are sorted by position so the
/// output is stable.
pub fn describe(problems: &[Problem], source: Option<(&Path, &str)>) -> String {
    let mut sorted: Vec<&Problem> = problems.iter().collect();
    sorted.sort_by_key(|p| match p.origin {
        Origin::File { line, column } => (0, line, column),
        Origin::Flag(_) => (1, 0, 0),
        Origin::Default => (2, 0, 0),
    });
    let mut out = String::new();
    for p in sorted {
        // A flag's problem is named by the flag, not by the spec field.
        let field = match (&p.origin, p.field.is_empty()) {
            (Origin::Flag(flag), _) => format!("{flag}: "),
            (_, true) => String::new(),
            (_, false) => format!("{}: ", p.field),
        };
        match (&p.origin, source) {
            (Origin::File { line, column }, Some((path, text))) => {
                out.push_str(&format!(
                    "error: {}:{line}:{column}: {field}{}\n",
                    path.display(),
                    p.message
                ));
                if let Some(src) = text.lines().nth((*line as usize).saturating_sub(1)) {
                    let gutter = line.to_string().len();
                    out.push_str(&format!(
                        "{:gutter$} |\n{line} | {src}\n{:gutter$} | {:>col$}\n",
                        "",
                        "",
                        "^",
                        col = *column as usize
                    ));
                }
            }
            (Origin::Default, Some((path, _))) => {
                out.push_str(&format!("error: {}: {field}{}\n", path.display(), p.message))
            }
            _ => out.push_str(&format!("error: {field}{}\n", p.message)),
        }
    }
    out
}
