//! A real SMTP server for tests: aiosmtpd (`smtpd.py`) on a loopback
//! port, STARTTLS and a login required, each message written to a file.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};

/// aiosmtpd, stopped (stdin closed, then killed) on drop.
pub struct Smtpd {
    child: Child,
    pub port: u16,
    pub out: PathBuf,
}

impl Drop for Smtpd {
    fn drop(&mut self) {
        drop(self.child.stdin.take());
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Starts the real SMTP server, or `None` where aiosmtpd is missing off CI.
pub fn smtpd(dir: &Path, cert: &Path, key: &Path) -> Option<Smtpd> {
    let python = "/usr/bin/python3";
    let ok = Command::new(python)
        .args(["-c", "import aiosmtpd"])
        .status()
        .is_ok_and(|s| s.success());
    if !ok {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "aiosmtpd is missing on CI: scripts/test installs python3-aiosmtpd"
        );
        eprintln!(
            "aiosmtpd not installed: the alert test did not run (apt-get install python3-aiosmtpd)"
        );
        return None;
    }
    let out = dir.join("mail");
    std::fs::create_dir_all(&out).unwrap();
    let script = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/support/smtpd.py");
    let mut child = Command::new(python)
        .arg(script)
        .arg(cert)
        .arg(key)
        .arg(&out)
        .args(["haven", "mail-pw"])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let port = line
        .strip_prefix("READY ")
        .and_then(|p| p.trim().parse().ok())
        .unwrap_or_else(|| panic!("aiosmtpd did not start: {line:?}"));
    Some(Smtpd { child, port, out })
}

impl Smtpd {
    /// The messages received so far (headers and body, as written).
    pub fn messages(&self) -> Vec<String> {
        let mut paths: Vec<PathBuf> = std::fs::read_dir(&self.out)
            .unwrap()
            .flatten()
            .map(|e| e.path())
            .filter(|p| p.extension().is_some_and(|x| x == "eml"))
            .collect();
        paths.sort();
        paths
            .iter()
            .map(|p| std::fs::read_to_string(p).unwrap())
            .collect()
    }
}
