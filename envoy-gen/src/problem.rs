//! What a rendering reports instead of writing anything: each problem with
//! where it came from (a line and column of the spec, a flag, or a
//! default). Every other module reports through these; this one depends on
//! none of them.

/// Where a value came from, for error messages.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Origin {
    /// Line and column in the spec file.
    File { line: u32, column: u32 },
    /// A command-line flag.
    Flag(&'static str),
    /// A built-in default.
    Default,
}

/// One problem, with where it is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    pub origin: Origin,
    /// The spec field (`services[1].host`) or flag concerned.
    pub field: String,
    pub message: String,
}
