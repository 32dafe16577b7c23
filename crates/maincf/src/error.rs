//! The one error type of the crate: a message tied to a place in a file.
//!
//! Invariant: `line` and `column` are 1-based and point at the token that is
//! wrong (or at the end of the file when something is missing); they are 0
//! only when no file could be read at all, and the location is then printed
//! as the bare file name.

use std::fmt;

/// A line and a column in a file, both 1-based. Columns count characters
/// (a tab is one column), as editors that jump to `file:line:column` expect.
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
pub(crate) struct Pos {
    pub line: usize,
    pub column: usize,
}

impl Pos {
    /// The first character of a file.
    pub const START: Pos = Pos { line: 1, column: 1 };
}

impl Default for Pos {
    fn default() -> Self {
        Pos::START
    }
}

impl fmt::Display for Pos {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:{}", self.line, self.column)
    }
}

/// A configuration that cannot be read: where, and what to do about it.
///
/// Displayed as `file:line:column: message`, the form compilers use, so
/// editors and terminals can jump to the place.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{}{message}", location(.file, *.line, *.column))]
pub struct ConfigError {
    /// The file, as it was named to the reader (`main.cf`, an included file,
    /// or a full path when read with [`crate::load_dir`]).
    pub file: String,
    /// 1-based line; 0 when the file itself could not be read.
    pub line: usize,
    /// 1-based column, in characters.
    pub column: usize,
    /// What is wrong, naming the object and, where there is one, the fix.
    pub message: String,
}

impl ConfigError {
    /// An error at `pos` in `file`.
    pub(crate) fn at(file: &str, pos: Pos, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: pos.line,
            column: pos.column,
            message: message.into(),
        }
    }

    /// An error about a whole file (one that could not be read).
    pub(crate) fn whole_file(file: &str, message: impl Into<String>) -> Self {
        ConfigError {
            file: file.to_string(),
            line: 0,
            column: 0,
            message: message.into(),
        }
    }
}

fn location(file: &str, line: usize, column: usize) -> String {
    if line == 0 {
        format!("{file}: ")
    } else {
        format!("{file}:{line}:{column}: ")
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn error_displays_as_file_line_column_message() {
        let e = ConfigError::at(
            "main.cf",
            Pos {
                line: 12,
                column: 5,
            },
            "boom",
        );
        assert_eq!(e.to_string(), "main.cf:12:5: boom");
    }

    #[test]
    fn unreadable_file_error_has_no_line() {
        let e = ConfigError::whole_file("/x/main.cf", "cannot read");
        assert_eq!(e.to_string(), "/x/main.cf: cannot read");
    }
}
