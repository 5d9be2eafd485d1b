//! Why `params` could not become [`PutParams`](super::PutParams): one
//! error type whose messages name the param (with `.key` inside maps) and,
//! where a path is involved, the path tried.

use std::path::PathBuf;

use serde_json::Value;

/// A failure to turn `params` into [`PutParams`](super::PutParams).
#[derive(Debug, thiserror::Error)]
pub enum ParamsError {
    /// `params` is not an object.
    #[error("params must be an object, not {0}")]
    NotAnObject(&'static str),
    /// A param name we do not know.
    #[error("unknown param {name:?}{}", hint.as_ref().map(|h| format!(" (did you mean {h:?}?)")).unwrap_or_default())]
    Unknown {
        /// The name as given.
        name: String,
        /// The closest known name, if any is close.
        hint: Option<String>,
    },
    /// Two spellings of the same setting.
    #[error("params {first:?} and {second:?} both set {what}: keep only one")]
    Conflict {
        /// The first spelling found.
        first: String,
        /// The second spelling found.
        second: String,
        /// What they both set.
        what: String,
    },
    /// A param of another tool that has no meaning for a put.
    #[error("param {param:?} has no meaning for a put: {advice}")]
    Rejected {
        /// The param.
        param: String,
        /// What to do instead.
        advice: &'static str,
    },
    /// A value of the wrong JSON type.
    #[error("param {param:?} must be {expected}, not {got}")]
    Type {
        /// The param (with a `.key` suffix inside maps).
        param: String,
        /// What was expected.
        expected: &'static str,
        /// The JSON type found.
        got: &'static str,
    },
    /// A path that does not exist.
    #[error("param {param:?}: {} does not exist{}", path.display(), missing_path_hint(param))]
    MissingPath {
        /// The param.
        param: String,
        /// The path tried (source dir joined with the value).
        path: PathBuf,
    },
    /// A file param that names something other than a small regular file
    /// (a FIFO, a device, a directory, a file over the bound).
    #[error("param {param:?}")]
    NotSmallFile {
        /// The param.
        param: String,
        /// What the path is.
        #[source]
        source: crate::small_file::Error,
    },
    /// An image param naming neither a tarball nor a layout directory.
    #[error("param {param:?}: {} is {kind}, not an image tarball or an OCI layout directory", path.display())]
    NotAnImage {
        /// The param.
        param: String,
        /// The path.
        path: PathBuf,
        /// What it is.
        kind: &'static str,
    },
    /// A file that could not be read.
    #[error("param {param:?}: reading {}", path.display())]
    Read {
        /// The param.
        param: String,
        /// The file.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A file whose content is not in the expected format.
    #[error("param {param:?}: {}{}: {problem}", path.display(), line.map(|l| format!(":{l}")).unwrap_or_default())]
    FileSyntax {
        /// The param.
        param: String,
        /// The file.
        path: PathBuf,
        /// The 1-based line, when known.
        line: Option<usize>,
        /// What is wrong.
        problem: String,
    },
    /// A value that is well-typed but not acceptable.
    #[error("param {param:?}: {problem}")]
    Invalid {
        /// The param.
        param: String,
        /// What is wrong.
        problem: String,
    },
}

pub(super) type Result<T, E = ParamsError> = std::result::Result<T, E>;

pub(super) use crate::config::decode::json_kind;

pub(super) fn type_error(param: &str, expected: &'static str, got: &Value) -> ParamsError {
    ParamsError::Type {
        param: param.into(),
        expected,
        got: json_kind(got),
    }
}

/// docker-image's `tag` reads like a literal tag but names a file; say so
/// where its file is missing, since that is how users find out.
fn missing_path_hint(param: &str) -> &'static str {
    if param == "tag" {
        " (docker-image's `tag` is the path of a file that holds the tag, like `tag_file`; \
         for a literal tag use `version` or source.tag)"
    } else {
        ""
    }
}
