//! Reads and writes Veritas Cluster Server `main.cf` / `types.cf`
//! configurations as [`haven_model::ClusterConfig`].
//!
//! Reading is three steps, one module each: `lexer` (text into tokens with
//! positions), `parser` (tokens into the syntax tree of `ast`) and `check`
//! (syntax trees into the model, enforcing everything the model assumes:
//! one cluster, unique names, known systems, types, resources and groups,
//! values of the declared type and shape, acyclic dependencies that stay
//! inside their group). `writer` goes the other way.
//!
//! Invariants:
//! - every problem in a file is a [`ConfigError`] at `file:line:column`
//!   naming the object, the problem and the fix; no input makes the reader
//!   panic;
//! - for every configuration the reader accepts, `parse(write(x)) == x`.
//!   Two things a hand-built configuration could hold do not survive,
//!   because the text cannot say them: names that are not valid words
//!   (letters, digits, `_`, `-`, `.`), and an empty association in an
//!   attribute no type declares (`{}` reads back as an empty list).
//!
//! The crate touches the file system only in [`load_dir`] and
//! [`save_dir`]; everything else works on strings.

mod ast;
mod check;
mod error;
mod lexer;
mod parser;
mod writer;

use std::fs;
use std::io::{self, Write as _};
use std::path::Path;

use haven_model::ClusterConfig;

pub use error::ConfigError;

use check::Included;

/// The types shipped with Haven: the agents Haven runs for real (Process,
/// Application, FileOnOff, ...) and simulated ones for demonstrations.
/// [`load_dir`] uses it when main.cf includes a `types.cf` that is missing.
pub const BUILTIN_TYPES_CF: &str = include_str!("../types.cf");

/// The name of the configuration file in a configuration directory.
const MAIN_CF: &str = "main.cf";
/// The included file [`load_dir`] falls back to [`BUILTIN_TYPES_CF`] for.
const TYPES_CF: &str = "types.cf";

/// Parses main.cf text.
///
/// `file` is the name used in error messages. `load` is called for every
/// `include "x.cf"` line with the included path as written, and returns the
/// file's text, or `None` if there is no such file (an error at the
/// `include` line). Included files may only define types; their types get
/// the path as written as [`haven_model::TypeDef::source`], types defined
/// in main.cf itself get `"main.cf"`.
pub fn parse_str(
    file: &str,
    text: &str,
    load: &mut dyn FnMut(&str) -> Option<String>,
) -> Result<ClusterConfig, ConfigError> {
    let mut load = |path: &str| {
        load(path)
            .map(|text| (path.to_string(), text))
            .ok_or_else(|| "was not found".to_string())
    };
    read(file, text, &mut load)
}

/// How [`read`] gets an included file: the name to report errors in it
/// under and its text, or why it could not be read.
type Loader<'a> = dyn FnMut(&str) -> Result<(String, String), String> + 'a;

fn read(file: &str, text: &str, load: &mut Loader<'_>) -> Result<ClusterConfig, ConfigError> {
    let main = parser::parse(file, text)?;
    let mut included = Vec::new();
    for (i, include) in main.includes.iter().enumerate() {
        if let Some(first) = main.includes[..i].iter().find(|x| x.path == include.path) {
            return Err(ConfigError::at(
                file,
                include.pos,
                format!(
                    "`{}` is already included at line {}; remove this `include` line",
                    include.path, first.pos.line
                ),
            ));
        }
        let (inc_file, inc_text) = load(&include.path).map_err(|why| {
            ConfigError::at(
                file,
                include.pos,
                format!(
                    "included file `{}` {why}; put it next to main.cf or remove the `include` line",
                    include.path
                ),
            )
        })?;
        let raw = parser::parse(&inc_file, &inc_text)?;
        included.push(Included {
            file: inc_file,
            source: include.path.clone(),
            raw,
        });
    }
    check::build(file, main, included)
}

/// Reads `DIR/main.cf`, resolving includes relative to `dir`.
///
/// Errors name files by their full path. If main.cf includes `types.cf`
/// and `DIR/types.cf` does not exist, [`BUILTIN_TYPES_CF`] is used instead
/// (so a directory holding only main.cf works with Haven's own types);
/// errors in it are reported under `types.cf (built-in)`.
pub fn load_dir(dir: &Path) -> Result<ClusterConfig, ConfigError> {
    let main_path = dir.join(MAIN_CF);
    let main_name = main_path.display().to_string();
    let text = fs::read_to_string(&main_path).map_err(|e| {
        ConfigError::whole_file(
            &main_name,
            format!(
                "cannot read the cluster configuration: {e}; check that `{}` is the configuration directory",
                dir.display()
            ),
        )
    })?;
    let mut load = |path: &str| {
        let full = dir.join(path);
        match fs::read_to_string(&full) {
            Ok(text) => Ok((full.display().to_string(), text)),
            Err(e) if e.kind() == io::ErrorKind::NotFound && path == TYPES_CF => Ok((
                format!("{TYPES_CF} (built-in)"),
                BUILTIN_TYPES_CF.to_string(),
            )),
            Err(e) if e.kind() == io::ErrorKind::NotFound => {
                Err(format!("was not found at `{}`", full.display()))
            }
            Err(e) => Err(format!("cannot be read at `{}`: {e}", full.display())),
        }
    };
    read(&main_name, &text, &mut load)
}

/// The text of main.cf for `config`.
///
/// Types whose `source` is `"main.cf"` are written inside it, and so are
/// types whose source is not one of `config.includes` (so none is lost);
/// the others belong in the included files ([`write_types`]).
pub fn write_main_cf(config: &ClusterConfig) -> String {
    writer::main_cf(config)
}

/// The text of a types file: every type whose `source` is `file_name`, in
/// order.
pub fn write_types(config: &ClusterConfig, file_name: &str) -> String {
    writer::types_file(config, file_name)
}

/// Writes `config` to `DIR/main.cf` atomically: the text goes to a
/// temporary file in `dir`, is flushed to disk, and replaces main.cf by a
/// rename, so a reader sees the old file or the new one, never half of
/// one. The file being replaced is first copied to `main.cf.previous`.
/// Included types files are not written.
pub fn save_dir(dir: &Path, config: &ClusterConfig) -> io::Result<()> {
    let target = dir.join(MAIN_CF);
    let tmp = dir.join(format!(".{MAIN_CF}.{}.tmp", std::process::id()));
    let result = replace(&target, &tmp, write_main_cf(config).as_bytes());
    if result.is_err() {
        // Best effort: the temporary file is useless after a failure.
        let _ = fs::remove_file(&tmp);
    }
    result?;
    sync_dir(dir)
}

fn replace(target: &Path, tmp: &Path, text: &[u8]) -> io::Result<()> {
    let mut file = fs::File::create(tmp)?;
    file.write_all(text)?;
    match fs::metadata(target) {
        Ok(meta) => {
            file.set_permissions(meta.permissions())?;
            file.sync_all()?;
            let previous = target.with_file_name(format!("{MAIN_CF}.previous"));
            fs::copy(target, &previous)?;
            fs::File::open(&previous)?.sync_all()?;
        }
        Err(e) if e.kind() == io::ErrorKind::NotFound => file.sync_all()?,
        Err(e) => return Err(e),
    }
    fs::rename(tmp, target)
}

/// Makes the rename durable: on Unix a directory's entries are flushed by
/// syncing the directory itself.
#[cfg(unix)]
fn sync_dir(dir: &Path) -> io::Result<()> {
    fs::File::open(dir)?.sync_all()
}

#[cfg(not(unix))]
fn sync_dir(_dir: &Path) -> io::Result<()> {
    Ok(())
}
