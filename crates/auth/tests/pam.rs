//! Logins through the real PAM stack (pam_unix) with a real OS user made
//! for the test and removed afterwards. Needs root (pam_unix checks other
//! users' passwords only as root, and useradd needs it): with CI=true a
//! missing privilege is a failure, elsewhere the test says why it did not
//! run.

use std::process::Command;

use haven_auth::pam::{authenticate, os_groups, LoginError};

fn run(cmd: &str, args: &[&str], stdin: Option<&str>) {
    use std::io::Write;
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {cmd}: {e}"));
    if let Some(text) = stdin {
        child
            .stdin
            .take()
            .unwrap()
            .write_all(text.as_bytes())
            .unwrap();
    }
    let status = child.wait().unwrap();
    assert!(status.success(), "{cmd} {args:?} failed: {status}");
}

/// A throw-away user, group and PAM service; removed on drop.
struct Fixture {
    user: String,
    group: String,
    service: String,
}

impl Fixture {
    /// `tag` keeps fixtures of tests in one process apart.
    fn new(tag: &str) -> Option<Fixture> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "the PAM tests need root on CI (they create an OS user)"
            );
            eprintln!("not root: the PAM tests need root to create an OS user; skipped outside CI");
            return None;
        }
        let id = std::process::id();
        let fixture = Fixture {
            user: format!("hvn{tag}{id}"),
            group: format!("hvg{tag}{id}"),
            service: format!("haven-test-{tag}-{id}"),
        };
        std::fs::write(
            format!("/etc/pam.d/{}", fixture.service),
            "auth     required pam_unix.so nodelay\naccount  required pam_unix.so\n",
        )
        .unwrap();
        run("groupadd", &[&fixture.group], None);
        run(
            "useradd",
            &["--no-create-home", "-G", &fixture.group, &fixture.user],
            None,
        );
        run(
            "chpasswd",
            &[],
            Some(&format!("{}:C0rrect-horse\n", fixture.user)),
        );
        Some(fixture)
    }
}

impl Drop for Fixture {
    fn drop(&mut self) {
        let _ = Command::new("userdel").arg(&self.user).status();
        let _ = Command::new("groupdel").arg(&self.group).status();
        let _ = std::fs::remove_file(format!("/etc/pam.d/{}", self.service));
    }
}

#[test]
fn a_real_os_user_logs_in_through_pam_and_bad_logins_are_refused_alike() {
    let Some(f) = Fixture::new("a") else { return };
    assert_eq!(authenticate(&f.service, &f.user, "C0rrect-horse"), Ok(()));

    let wrong = authenticate(&f.service, &f.user, "wrong").unwrap_err();
    let unknown = authenticate(&f.service, "no-such-user-hvn", "C0rrect-horse").unwrap_err();
    assert!(matches!(wrong, LoginError::Rejected { .. }), "{wrong:?}");
    assert!(
        matches!(unknown, LoginError::Rejected { .. }),
        "{unknown:?}"
    );
    assert_eq!(
        wrong.to_string(),
        unknown.to_string(),
        "no hint which one it was"
    );
    assert_eq!(wrong.to_string(), "wrong user name or password");
    assert!(
        authenticate(&f.service, &f.user, "").is_err(),
        "empty password"
    );

    // A locked account is refused even with the right password.
    // The detail (for the log only) says it is locked.
    run("usermod", &["-L", &f.user], None);
    let locked = authenticate(&f.service, &f.user, "C0rrect-horse").unwrap_err();
    assert!(
        matches!(&locked, LoginError::Rejected { detail } if detail.contains("locked")),
        "{locked:?}"
    );
    run("usermod", &["-U", &f.user], None);
    assert_eq!(authenticate(&f.service, &f.user, "C0rrect-horse"), Ok(()));

    // An expired account says so, once the password was right.
    run("chage", &["-E", "0", &f.user], None);
    let expired = authenticate(&f.service, &f.user, "C0rrect-horse").unwrap_err();
    assert!(matches!(expired, LoginError::Expired { .. }), "{expired:?}");
    assert!(expired.to_string().contains("expired"));
}

#[test]
fn a_users_os_groups_are_read_from_the_system() {
    let Some(f) = Fixture::new("b") else { return };
    let groups = os_groups(&f.user);
    assert!(groups.contains(&f.group), "{groups:?}");
    assert!(os_groups("no-such-user-hvn").is_empty());
    assert!(os_groups("root").contains(&"root".to_string()));
}
