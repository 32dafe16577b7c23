//! Saved contexts: which servers the user logged in to, the CA each one
//! is trusted by, and the session token — in
//! `$XDG_CONFIG_HOME/haven/config.toml` (else `~/.config/haven/`).
//!
//! The file holds bearer tokens, so it is written 0600 in a 0700
//! directory, through a temporary file and a rename (a crash leaves the
//! old file or the new one, never half of one).

use std::io::Write;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt, PermissionsExt};
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::{Exit, Failure, Result};

/// The contexts file.
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Config {
    /// The context commands use without --context.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub current: Option<String>,
    #[serde(default, rename = "context")]
    pub contexts: Vec<Context>,
}

/// One server the user talks to: over HTTPS (`server`, `ca_pem`, `token`)
/// or over the server host's local socket (`socket`).
#[derive(Debug, Default, Clone, Serialize, Deserialize)]
pub struct Context {
    pub name: String,
    /// `https://HOST:PORT`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub server: Option<String>,
    /// `DATA_DIR/haven.sock` on the server host.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub socket: Option<PathBuf>,
    /// The fleet CA this server is trusted by (exactly this CA).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub ca_pem: Option<String>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// The session's bearer token (absent after logout, or when the
    /// server has logins off).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub token: Option<String>,
}

/// Where the contexts file is.
pub fn path() -> Result<PathBuf> {
    let base = match std::env::var_os("XDG_CONFIG_HOME").map(PathBuf::from) {
        Some(dir) if dir.is_absolute() => dir,
        _ => match std::env::var_os("HOME").map(PathBuf::from) {
            Some(home) if home.is_absolute() => home.join(".config"),
            _ => {
                return Err(Failure::error(
                    "neither XDG_CONFIG_HOME nor HOME is set: set one, so Haven knows where to keep your logins",
                ))
            }
        },
    };
    Ok(base.join("haven").join("config.toml"))
}

impl Config {
    /// Reads the file (an empty configuration if there is none).
    pub fn load() -> Result<Config> {
        let path = path()?;
        match std::fs::read_to_string(&path) {
            Ok(text) => toml::from_str(&text).map_err(|e| {
                Failure::error(format!(
                    "{} is not a valid contexts file ({e}); fix it, or remove it and log in again",
                    path.display()
                ))
            }),
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Config::default()),
            Err(e) => Err(Failure::error(format!(
                "cannot read {}: {e}",
                path.display()
            ))),
        }
    }

    /// Writes the file: mode 0600, in a directory of mode 0700.
    pub fn save(&self) -> Result<()> {
        let path = path()?;
        let fail = |what: &str, p: &Path, e: std::io::Error| {
            Failure::error(format!("cannot {what} {}: {e}", p.display()))
        };
        let dir = path.parent().expect("the path has a directory");
        if !dir.exists() {
            std::fs::DirBuilder::new()
                .recursive(true)
                .mode(0o700)
                .create(dir)
                .map_err(|e| fail("create", dir, e))?;
        }
        // Ours alone, even if it was made earlier with looser rights.
        std::fs::set_permissions(dir, std::fs::Permissions::from_mode(0o700))
            .map_err(|e| fail("restrict", dir, e))?;
        let text = toml::to_string(self)
            .map_err(|e| Failure::error(format!("cannot write the contexts: {e}")))?;
        let tmp = path.with_extension("toml.tmp");
        let _ = std::fs::remove_file(&tmp);
        let mut file = std::fs::OpenOptions::new()
            .write(true)
            .create_new(true)
            .mode(0o600)
            .open(&tmp)
            .map_err(|e| fail("create", &tmp, e))?;
        file.write_all(
            b"# Haven's saved logins (haven login / logout / context). Holds session tokens: keep it private.\n",
        )
        .and_then(|()| file.write_all(text.as_bytes()))
        .and_then(|()| file.sync_all())
        .map_err(|e| fail("write", &tmp, e))?;
        std::fs::rename(&tmp, &path).map_err(|e| fail("replace", &path, e))?;
        Ok(())
    }

    pub fn get(&self, name: &str) -> Option<&Context> {
        self.contexts.iter().find(|c| c.name == name)
    }

    /// The context named `name`, or a "not found" failure that lists them.
    pub fn named(&self, name: &str) -> Result<&Context> {
        self.get(name).ok_or_else(|| {
            Failure::new(
                Exit::NotFound,
                format!(
                    "no context named {name}; `haven context list` shows them, `haven login SERVER --context {name}` makes it"
                ),
            )
        })
    }

    /// The context used without --context.
    pub fn current(&self) -> Option<&Context> {
        self.current.as_deref().and_then(|n| self.get(n))
    }

    /// Adds or replaces a context (by name).
    pub fn put(&mut self, context: Context) {
        match self.contexts.iter_mut().find(|c| c.name == context.name) {
            Some(existing) => *existing = context,
            None => self.contexts.push(context),
        }
    }

    /// The context saved for this server URL.
    pub fn for_server(&self, url: &str) -> Option<&Context> {
        self.contexts
            .iter()
            .find(|c| c.server.as_deref() == Some(url))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn contexts_survive_a_round_trip_through_toml() {
        let mut config = Config {
            current: Some("prod".into()),
            ..Config::default()
        };
        config.put(Context {
            name: "prod".into(),
            server: Some("https://mgmt:8440".into()),
            ca_pem: Some("-----BEGIN CERTIFICATE-----\nAAAA\n-----END CERTIFICATE-----\n".into()),
            user: Some("alice".into()),
            token: Some("t0k".into()),
            socket: None,
        });
        config.put(Context {
            name: "local".into(),
            socket: Some("/var/lib/haven/haven.sock".into()),
            ..Context::default()
        });
        let text = toml::to_string(&config).unwrap();
        let back: Config = toml::from_str(&text).unwrap();
        assert_eq!(back.current.as_deref(), Some("prod"));
        assert_eq!(back.contexts.len(), 2);
        assert_eq!(back.current().unwrap().token.as_deref(), Some("t0k"));
        assert_eq!(
            back.get("local").unwrap().socket.as_deref(),
            Some(Path::new("/var/lib/haven/haven.sock"))
        );
        assert!(back.for_server("https://mgmt:8440").is_some());
    }
}
