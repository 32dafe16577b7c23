//! Throw-away OS accounts, a group and a PAM service file for login tests
//! (needs root), removed when dropped — also when the test fails.

#![allow(dead_code)]

use std::process::Command;

/// Users `PREFIX{i}{pid}` with password `Pw-NAME`, in one group, and a PAM
/// service checking them with pam_unix.
pub struct OsUsers {
    pub names: Vec<String>,
    pub group: String,
    pub service: String,
}

impl OsUsers {
    /// Creates them; `None` when not root (allowed only off CI).
    pub fn create(prefixes: &[&str]) -> Option<OsUsers> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "this test creates OS users: it needs root on CI"
            );
            eprintln!("not root: skipped (it creates OS users)");
            return None;
        }
        let id = std::process::id();
        let users = OsUsers {
            names: prefixes.iter().map(|p| format!("{p}{id}")).collect(),
            group: format!("hvgrp{id}"),
            service: format!("haven-t-{id}"),
        };
        std::fs::write(
            format!("/etc/pam.d/{}", users.service),
            "auth     required pam_unix.so nodelay\naccount  required pam_unix.so\n",
        )
        .unwrap();
        run("groupadd", &[&users.group], None);
        for u in &users.names {
            run("useradd", &["--no-create-home", u], None);
            run(
                "chpasswd",
                &[],
                Some(&format!("{u}:{}\n", Self::password(u))),
            );
        }
        Some(users)
    }

    pub fn password(user: &str) -> String {
        format!("Pw-{user}")
    }

    /// Puts `user` in the shared group.
    pub fn join_group(&self, user: &str) {
        run("usermod", &["-aG", &self.group, user], None);
    }
}

impl Drop for OsUsers {
    fn drop(&mut self) {
        for u in &self.names {
            let _ = Command::new("userdel").arg(u).status();
        }
        let _ = Command::new("groupdel").arg(&self.group).status();
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.service));
    }
}

/// Runs a command (with `stdin`), asserting it succeeds.
pub fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("{cmd}: {e}"));
    if let Some(t) = stdin {
        child.stdin.take().unwrap().write_all(t.as_bytes()).unwrap();
    }
    assert!(child.wait().unwrap().success(), "{cmd} {args:?}");
}
