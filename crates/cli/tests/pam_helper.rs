//! `haven-pam-helper` end to end: the real binary, the real PAM stack
//! (pam_unix) and real OS users made for each test and removed afterwards
//! (also when a test fails). Most tests need root (useradd, and pam_unix
//! checks other users' passwords only as root): with CI=true a missing
//! privilege is a failure, elsewhere the test says why it did not run.
//!
//! The point of the helper is a server that is not root, so one test runs
//! the helper — and `authenticate_with_helper`, in a copy of this test
//! binary — as a throw-away non-root service user.

use std::io::Write;
use std::os::unix::fs::{OpenOptionsExt, PermissionsExt};
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use haven_auth::pam::{authenticate_with_helper, helper_status, LoginError};
use haven_auth::pam_helper::Answer;
use serde_json::{json, Value};

const HELPER: &str = env!("CARGO_BIN_EXE_haven-pam-helper");
const PASSWORD: &str = "C0rrect-horse";

fn sh(cmd: &str, args: &[&str], stdin: Option<&str>) -> String {
    let mut child = Command::new(cmd)
        .args(args)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
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
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "{cmd} {args:?} failed: {}",
        out.status
    );
    String::from_utf8(out.stdout).unwrap()
}

fn id(flag: &str, user: &str) -> u32 {
    sh("id", &[flag, user], None).trim().parse().unwrap()
}

/// Throw-away OS users, groups and files; removed on drop.
#[derive(Default)]
struct Cleanup {
    users: Vec<String>,
    groups: Vec<String>,
    files: Vec<PathBuf>,
}

impl Drop for Cleanup {
    fn drop(&mut self) {
        for user in &self.users {
            let _ = Command::new("userdel").arg(user).status();
        }
        for group in &self.groups {
            let _ = Command::new("groupdel").arg(group).status();
        }
        for file in &self.files {
            let _ = std::fs::remove_file(file);
        }
    }
}

/// A user with password [`PASSWORD`] and a PAM service of its own (the
/// pid and `tag` keep parallel tests apart, also from the other PAM tests).
struct Fixture {
    user: String,
    service: String,
    cleanup: Cleanup,
}

impl Fixture {
    /// `None` when not root (outside CI, where that is a failure).
    fn new(tag: &str) -> Option<Fixture> {
        // SAFETY: geteuid has no preconditions.
        if unsafe { libc::geteuid() } != 0 {
            assert_ne!(
                std::env::var("CI").as_deref(),
                Ok("true"),
                "the PAM helper tests need root on CI (they create OS users)"
            );
            eprintln!("not root: skipped (the test creates OS users)");
            return None;
        }
        let pid = std::process::id();
        let mut cleanup = Cleanup::default();
        let (user, service) = (
            format!("hvh{tag}{pid}"),
            format!("haven-helper-{tag}-{pid}"),
        );
        let file = PathBuf::from(format!("/etc/pam.d/{service}"));
        cleanup.files.push(file.clone());
        std::fs::write(
            &file,
            "auth     required pam_unix.so nodelay\naccount  required pam_unix.so\n",
        )
        .unwrap();
        cleanup.users.push(user.clone());
        sh("useradd", &["--no-create-home", &user], None);
        sh("chpasswd", &[], Some(&format!("{user}:{PASSWORD}\n")));
        Some(Fixture {
            user,
            service,
            cleanup,
        })
    }

    fn request(&self, user: &str, password: &str) -> Vec<u8> {
        format!("{}\0{user}\0{password}\0", self.service).into_bytes()
    }
}

/// What one run of a helper did.
#[derive(Debug)]
struct Run {
    code: Option<i32>,
    answer: Option<Value>,
    stderr: String,
    took: Duration,
}

/// Runs `helper` with `request` on stdin, as `as_ids` (uid, gid) if given.
fn ask(helper: &Path, request: &[u8], as_ids: Option<(u32, u32)>) -> Run {
    let mut command = Command::new(helper);
    command
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    if let Some((uid, gid)) = as_ids {
        command.uid(uid).gid(gid);
    }
    let started = Instant::now();
    let mut child = command
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run {}: {e}", helper.display()));
    let _ = child.stdin.take().unwrap().write_all(request);
    let out = child.wait_with_output().unwrap();
    let stdout = String::from_utf8(out.stdout).unwrap();
    Run {
        code: out.status.code(),
        answer: (!stdout.is_empty()).then(|| {
            assert!(
                stdout.ends_with('\n') && stdout.lines().count() == 1,
                "{stdout:?}"
            );
            serde_json::from_str(&stdout).unwrap()
        }),
        stderr: String::from_utf8(out.stderr).unwrap(),
        took: started.elapsed(),
    }
}

#[test]
fn as_root_the_pam_helper_accepts_the_right_password_and_rejects_wrong_ones_and_unknown_users() {
    let Some(f) = Fixture::new("a") else {
        return;
    };
    let helper = Path::new(HELPER);
    assert_eq!(helper_status(helper), Ok(()));

    let right = ask(helper, &f.request(&f.user, PASSWORD), None);
    assert_eq!(
        (right.code, right.answer),
        (Some(0), Some(json!({"ok": true})))
    );

    let wrong = ask(helper, &f.request(&f.user, "wrong"), None);
    assert_eq!(wrong.code, Some(0), "{wrong:?}");
    let answer = wrong.answer.unwrap();
    assert_eq!(answer["kind"], "rejected", "{answer}");
    assert!(answer["detail"].as_str().unwrap().contains(&f.user));
    assert!(
        wrong.took >= Duration::from_millis(900),
        "a rejection waits ~1 s: {:?}",
        wrong.took
    );
    let unknown = ask(helper, &f.request("no-such-user-hvh", PASSWORD), None);
    assert_eq!(unknown.answer.unwrap()["kind"], "rejected");

    // The client side turns answers back into the same outcomes as PAM.
    let check =
        |user: &str, password: &str| authenticate_with_helper(helper, &f.service, user, password);
    assert_eq!(check(&f.user, PASSWORD), Ok(()));
    let wrong = check(&f.user, "wrong").unwrap_err();
    let unknown = check("no-such-user-hvh", PASSWORD).unwrap_err();
    assert!(matches!(wrong, LoginError::Rejected { .. }), "{wrong:?}");
    assert!(
        matches!(unknown, LoginError::Rejected { .. }),
        "{unknown:?}"
    );
    assert_eq!(wrong.to_string(), unknown.to_string(), "no hint which one");
    assert!(matches!(
        check(&f.user, ""),
        Err(LoginError::Rejected { .. })
    ));
    assert!(matches!(
        check("", PASSWORD),
        Err(LoginError::Rejected { .. })
    ));
    drop(f);
}

#[test]
fn the_pam_helper_reports_a_locked_or_expired_account_clearly() {
    let Some(f) = Fixture::new("b") else {
        return;
    };
    let helper = Path::new(HELPER);
    let check = || authenticate_with_helper(helper, &f.service, &f.user, PASSWORD);

    for (lock, unlock) in [
        (["usermod", "-L"], ["usermod", "-U"]),
        (["passwd", "-l"], ["passwd", "-u"]),
    ] {
        sh(lock[0], &[lock[1], &f.user], None);
        let run = ask(helper, &f.request(&f.user, PASSWORD), None);
        let answer = run.answer.unwrap();
        assert_eq!(answer["kind"], "rejected", "{lock:?}: {answer}");
        assert!(
            answer["detail"].as_str().unwrap().contains("locked"),
            "the log says why: {answer}"
        );
        let e = check().unwrap_err();
        assert!(
            matches!(&e, LoginError::Rejected { detail } if detail.contains("locked")),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "wrong user name or password",
            "the client learns nothing"
        );
        sh(unlock[0], &[unlock[1], &f.user], None);
        assert_eq!(check(), Ok(()), "{unlock:?}");
    }

    sh("chage", &["-E", "0", &f.user], None);
    let answer = ask(helper, &f.request(&f.user, PASSWORD), None)
        .answer
        .unwrap();
    assert_eq!(answer["kind"], "expired", "{answer}");
    let e = check().unwrap_err();
    assert!(matches!(e, LoginError::Expired { .. }), "{e:?}");
    assert!(e.to_string().contains("expired"));
    drop(f);
}

#[test]
fn the_pam_helper_refuses_malformed_requests_and_services_outside_etc_pam_d() {
    let helper = Path::new(HELPER);
    // `login` exists on every host: unchecked, `../pam.d/login` would be it.
    for service in [
        "../pam.d/login",
        "pam.d/login",
        "..",
        ".",
        ".login",
        "/etc/pam.d/login",
    ] {
        let run = ask(helper, format!("{service}\0root\0pw\0").as_bytes(), None);
        assert_eq!(
            (run.code, &run.answer),
            (Some(1), &None),
            "{service}: {run:?}"
        );
        assert!(
            run.stderr.contains("/etc/pam.d"),
            "{service}: {}",
            run.stderr
        );
        let e = authenticate_with_helper(helper, service, "root", "pw").unwrap_err();
        assert!(
            matches!(&e, LoginError::Pam(m) if m.contains("pam_service")),
            "{service}: {e:?}"
        );
    }
    let mut long = b"login\0root\0".to_vec();
    long.resize(4096, b'x');
    long.push(0);
    for (request, says) in [
        (&long[..], "longer than 4096"),
        (b"login\0root\0pw", "three NUL-terminated"),
        (b"login\0root\0pw\0more\0", "three NUL-terminated"),
        (b"", "three NUL-terminated"),
    ] {
        let run = ask(helper, request, None);
        assert_eq!((run.code, &run.answer), (Some(1), &None), "{run:?}");
        assert!(
            run.stderr.contains(says) && run.stderr.contains("usage"),
            "{}",
            run.stderr
        );
    }
    let out = Command::new(helper)
        .arg("--help")
        .stdin(Stdio::null())
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8_lossy(&out.stderr).contains("no arguments"));
}

#[test]
fn the_pam_helper_refuses_a_terminal_on_stdin() {
    // SAFETY: posix_openpt/grantpt/unlockpt/ptsname on a descriptor we own;
    // the name is copied out at once.
    let (master, slave) = unsafe {
        let master = libc::posix_openpt(libc::O_RDWR | libc::O_NOCTTY);
        assert!(master >= 0, "no pseudo-terminal available");
        assert_eq!(libc::grantpt(master), 0);
        assert_eq!(libc::unlockpt(master), 0);
        let name = std::ffi::CStr::from_ptr(libc::ptsname(master))
            .to_string_lossy()
            .into_owned();
        (master, name)
    };
    let tty = std::fs::OpenOptions::new()
        .read(true)
        .write(true)
        .custom_flags(libc::O_NOCTTY)
        .open(&slave)
        .unwrap();
    let out = Command::new(HELPER).stdin(tty).output().unwrap();
    // SAFETY: closing the descriptor opened above.
    unsafe { libc::close(master) };
    assert_eq!(out.status.code(), Some(1));
    assert!(out.stdout.is_empty());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(stderr.contains("not by people"), "{stderr}");
}

/// The environment variable that turns [`pam_probe_in_a_child_process`]
/// on: the helper, service, user and password, one a line.
const PROBE: &str = "HAVEN_PAM_HELPER_PROBE";

/// Not a test of its own: the body the non-root test runs as its service
/// user, in a copy of this test binary, so that `helper_status` and
/// `authenticate_with_helper` really run in a process that is not root
/// (as a server would). Prints one `PROBE {json}` line.
#[test]
fn pam_probe_in_a_child_process() {
    let Ok(args) = std::env::var(PROBE) else {
        return;
    };
    let [helper, service, user, password] = args.split('\n').collect::<Vec<_>>()[..] else {
        panic!("bad {PROBE}");
    };
    let helper = Path::new(helper);
    let status = helper_status(helper);
    let answer = Answer::from_outcome(&authenticate_with_helper(helper, service, user, password));
    println!(
        "PROBE {}",
        json!({"status": status.err(), "answer": answer})
    );
}

/// Runs [`pam_probe_in_a_child_process`] from `probe` (a copy of this test
/// binary) as `ids`; returns `helper_status`'s error and the answer.
fn probe(bin: &Path, ids: (u32, u32), helper: &Path, f: &Fixture, password: &str) -> Value {
    let out = Command::new(bin)
        .args([
            "--exact",
            "pam_probe_in_a_child_process",
            "--nocapture",
            "--test-threads=1",
        ])
        .env_clear()
        .env(
            PROBE,
            format!(
                "{}\n{}\n{}\n{password}",
                helper.display(),
                f.service,
                f.user
            ),
        )
        .uid(ids.0)
        .gid(ids.1)
        .output()
        .unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let line = stdout
        .lines()
        // libtest prints the test's name on the same line first.
        .find_map(|l| l.split_once("PROBE ").map(|(_, json)| json))
        .unwrap_or_else(|| panic!("no PROBE line in {stdout}"));
    serde_json::from_str(line).unwrap()
}

#[test]
fn as_a_non_root_user_only_a_setuid_root_pam_helper_checks_another_users_password() {
    let Some(mut f) = Fixture::new("c") else {
        return;
    };
    // The service user a non-root server would run as, with its own group.
    let pid = std::process::id();
    let (svc, svc_group) = (format!("hvs{pid}"), format!("hvsg{pid}"));
    f.cleanup.groups.push(svc_group.clone());
    sh("groupadd", &[&svc_group], None);
    f.cleanup.users.push(svc.clone());
    sh(
        "useradd",
        &["--no-create-home", "-g", &svc_group, &svc],
        None,
    );
    let ids = (id("-u", &svc), id("-g", &svc));

    // Copies where the service user can reach them: a temp dir it may
    // traverse (the cargo target dir need not be), under ancestors it may
    // traverse too.
    let dir = tempfile::Builder::new()
        .prefix("haven-pam-helper-")
        .tempdir()
        .unwrap();
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o711)).unwrap();
    for ancestor in dir.path().ancestors().skip(1) {
        let mode = std::fs::metadata(ancestor).unwrap().permissions().mode();
        assert!(
            mode & 0o001 != 0,
            "{} is not traversable by others (mode {mode:o}): set TMPDIR to a directory that is",
            ancestor.display()
        );
    }
    let plain = dir.path().join("plain-helper");
    std::fs::copy(HELPER, &plain).unwrap();
    std::fs::set_permissions(&plain, std::fs::Permissions::from_mode(0o755)).unwrap();
    let setuid = dir.path().join("setuid-helper");
    std::fs::copy(HELPER, &setuid).unwrap();
    // chown first: it would clear a setuid bit set before it.
    std::os::unix::fs::chown(&setuid, Some(0), Some(ids.1)).unwrap();
    std::fs::set_permissions(&setuid, std::fs::Permissions::from_mode(0o4750)).unwrap();
    let probe_bin = dir.path().join("probe");
    std::fs::copy(std::env::current_exe().unwrap(), &probe_bin).unwrap();
    std::fs::set_permissions(&probe_bin, std::fs::Permissions::from_mode(0o755)).unwrap();

    // Not setuid: pam_unix (through unix_chkpwd) will not read another
    // user's password hash for a non-root caller, so it cannot tell a
    // right password from a wrong one: both are "unavailable".
    for password in [PASSWORD, "wrong"] {
        let run = ask(&plain, &f.request(&f.user, password), Some(ids));
        assert_eq!(run.code, Some(0), "{run:?}");
        let answer = run.answer.unwrap();
        assert_eq!(answer["ok"], false, "{answer}");
        assert_eq!(answer["kind"], "unavailable", "{answer}");
        assert!(
            answer["detail"]
                .as_str()
                .unwrap()
                .contains("cannot retrieve authentication info"),
            "{answer}"
        );
    }
    // ...which is why the client refuses to use such a helper at all when
    // it is not root, and says what to do.
    let seen = probe(&probe_bin, ids, &plain, &f, PASSWORD);
    let plain_path = plain.display().to_string();
    let status = seen["status"].as_str().unwrap_or_else(|| panic!("{seen}"));
    assert!(
        status.contains(&plain_path) && status.contains("not setuid root"),
        "{status}"
    );
    assert_eq!(seen["answer"]["kind"], "unavailable", "{seen}");
    let detail = seen["answer"]["detail"].as_str().unwrap();
    for part in [plain_path.as_str(), "chown root:haven", "chmod 4750"] {
        assert!(detail.contains(part), "{part} missing from: {detail}");
    }

    // Setuid root, group of the service user, mode 4750: it can.
    let run = ask(&setuid, &f.request(&f.user, PASSWORD), Some(ids));
    assert_eq!(run.answer, Some(json!({"ok": true})), "{run:?}");
    let run = ask(&setuid, &f.request(&f.user, "wrong"), Some(ids));
    assert_eq!(run.answer.unwrap()["kind"], "rejected");
    let seen = probe(&probe_bin, ids, &setuid, &f, PASSWORD);
    assert_eq!(seen, json!({"status": null, "answer": {"ok": true}}));
    let seen = probe(&probe_bin, ids, &setuid, &f, "wrong");
    assert_eq!(seen["answer"]["kind"], "rejected", "{seen}");

    // Anyone outside the group cannot even run it.
    let nobody = (id("-u", "nobody"), id("-g", "nobody"));
    let err = Command::new(&setuid)
        .uid(nobody.0)
        .gid(nobody.1)
        .stdin(Stdio::null())
        .output()
        .unwrap_err();
    assert_eq!(err.kind(), std::io::ErrorKind::PermissionDenied, "{err}");
    drop(f);
}

#[test]
fn haven_setup_pam_installs_the_service_file_that_logins_then_use() {
    let Some(mut f) = Fixture::new("s") else {
        return;
    };
    let service = format!("haven-setup-{}", std::process::id());
    let file = PathBuf::from(format!("/etc/pam.d/{service}"));
    f.cleanup.files.push(file.clone());
    let haven = env!("CARGO_BIN_EXE_haven");
    let setup = |extra: &[&str]| {
        Command::new(haven)
            .args(["setup", "pam", "--service", &service])
            .args(extra)
            .output()
            .unwrap()
    };

    let out = setup(&[]);
    let said = String::from_utf8_lossy(&out.stdout).into_owned();
    assert!(
        out.status.success() && said.contains("installed"),
        "{out:?}"
    );
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        haven_auth::pam::SERVICE_FILE
    );
    // Logins through that service work, through the real stack.
    let helper = Path::new(HELPER);
    assert_eq!(
        authenticate_with_helper(helper, &service, &f.user, PASSWORD),
        Ok(())
    );
    let out = setup(&[]);
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("already"),
        "{out:?}"
    );

    // The host's own file is kept unless --force.
    std::fs::write(
        &file,
        "auth required pam_deny.so\naccount required pam_deny.so\n",
    )
    .unwrap();
    let out = setup(&[]);
    let err = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(!out.status.success() && err.contains("--force"), "{err}");
    assert!(std::fs::read_to_string(&file).unwrap().contains("pam_deny"));
    assert!(setup(&["--force"]).status.success());
    assert_eq!(
        std::fs::read_to_string(&file).unwrap(),
        haven_auth::pam::SERVICE_FILE
    );
}
