//! Configuration errors: each names the file, the line and the field.

use std::fmt;

/// One thing wrong with a configuration.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Problem {
    /// 1-based line in the source, when known.
    pub line: Option<usize>,
    /// Field path, e.g. `listeners[0].routes[1].cluster`.
    pub field: String,
    /// What is wrong.
    pub message: String,
}

/// Why a configuration was refused.
#[derive(Debug, thiserror::Error)]
pub enum Error {
    /// The file could not be read.
    #[error("{file}: cannot read: {source}")]
    Read {
        /// The file.
        file: String,
        /// The cause.
        source: std::io::Error,
    },
    /// The file is not valid YAML for the schema, or failed validation.
    #[error("{}", render(.file, .problems))]
    Invalid {
        /// The file (or `<inline>`).
        file: String,
        /// Every problem found.
        problems: Vec<Problem>,
    },
}

/// Result with this crate's error.
pub type Result<T, E = Error> = std::result::Result<T, E>;

fn render(file: &str, problems: &[Problem]) -> String {
    let mut out = String::new();
    for (i, p) in problems.iter().enumerate() {
        if i > 0 {
            out.push('\n');
        }
        out.push_str(&p.to_string_in(file));
    }
    out
}

impl Problem {
    /// `file:line: field: message`.
    pub fn to_string_in(&self, file: &str) -> String {
        let mut s = String::from(file);
        if let Some(l) = self.line {
            s.push(':');
            s.push_str(&l.to_string());
        }
        s.push_str(": ");
        if !self.field.is_empty() {
            s.push_str(&format!("field `{}`: ", self.field));
        }
        s.push_str(&self.message);
        s
    }
}

impl fmt::Display for Problem {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.to_string_in("config"))
    }
}
