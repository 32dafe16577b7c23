//! The privileged PAM helper, `haven-pam-helper`: its protocol, its
//! `main`, and the server's side of it.
//!
//! Why a helper: pam_unix checks another user's password only as root,
//! and PAM modules are foreign C code (network clients, lockout counters,
//! logging) that should not run inside the long-lived, multi-threaded
//! server. So every PAM login runs in a fresh, small process, which is
//! setuid root when the server is not root (Cockpit's `cockpit-session`
//! is the model). The server always goes through it, root or not: one
//! code path.
//!
//! Protocol: the caller writes `SERVICE\0USER\0PASSWORD\0` (at most
//! [`MAX_REQUEST`] bytes in all) on the helper's stdin and closes it; the
//! helper answers with one line of JSON on stdout ([`Answer`]) and exits
//! 0, or exits 1 with a message on stderr when the request is malformed.
//!
//! Invariants:
//! - the service name cannot leave `/etc/pam.d` (letters, digits and
//!   `-_.`, not starting with `.`);
//! - the password travels only through the pipe, never in arguments or
//!   the environment, and the helper wipes its copies;
//! - a rejected password is answered after [`REJECT_DELAY`], so whoever
//!   may run the helper (root and group `haven`) guesses slowly;
//! - a non-root server never uses a helper that is not setuid root: the
//!   login fails as `Unavailable`, naming the file and the fix, instead of
//!   every password looking wrong.

use std::io::{BufRead, BufReader, Read, Write};
use std::os::unix::ffi::OsStrExt;
use std::os::unix::fs::MetadataExt;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use serde::{Deserialize, Serialize};

use crate::pam::{wipe, LoginError};

/// The helper's file name; by default it sits next to the `haven` binary.
pub const HELPER_NAME: &str = "haven-pam-helper";

/// The largest request the helper reads, in bytes.
pub const MAX_REQUEST: usize = 4096;

/// How long the server waits for an answer before it kills the helper.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// How long the helper waits before it answers "rejected".
pub const REJECT_DELAY: Duration = Duration::from_secs(1);

/// The helper ends itself (SIGALRM) after this long, whoever started it.
const LIFETIME_SECS: u32 = 60;

/// The largest answer (or stderr message) the server reads.
const MAX_ANSWER: u64 = 16 * 1024;

/// One login to check: what the server writes to the helper.
#[derive(Clone, PartialEq, Eq)]
pub struct Request {
    pub service: String,
    pub user: String,
    pub password: String,
}

impl std::fmt::Debug for Request {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Request")
            .field("service", &self.service)
            .field("user", &self.user)
            .finish_non_exhaustive()
    }
}

impl Drop for Request {
    fn drop(&mut self) {
        wipe(&mut std::mem::take(&mut self.password).into_bytes());
    }
}

/// Why a request is not acceptable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    #[error("the request is longer than {MAX_REQUEST} bytes")]
    TooLong,
    #[error("the request must be SERVICE\\0USER\\0PASSWORD\\0 (three NUL-terminated fields)")]
    Shape,
    #[error("the {0} is not UTF-8")]
    NotUtf8(&'static str),
    #[error("the {0} contains a NUL byte")]
    Nul(&'static str),
    #[error("the user name is empty")]
    EmptyUser,
    #[error(
        "invalid PAM service name {0:?}: use letters, digits and -_. only, not starting with '.' \
         (it names a file in /etc/pam.d)"
    )]
    Service(String),
}

/// Checks that `service` names a file directly in `/etc/pam.d`.
pub fn validate_service(service: &str) -> Result<(), RequestError> {
    let allowed = |c: char| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.');
    if service.is_empty()
        || service.len() > 255
        || service.starts_with('.')
        || !service.chars().all(allowed)
    {
        return Err(RequestError::Service(service.into()));
    }
    Ok(())
}

impl Request {
    /// Reads a request as the helper receives it.
    pub fn parse(bytes: &[u8]) -> Result<Request, RequestError> {
        if bytes.len() > MAX_REQUEST {
            return Err(RequestError::TooLong);
        }
        let body = bytes.strip_suffix(&[0]).ok_or(RequestError::Shape)?;
        let fields: Vec<&[u8]> = body.split(|b| *b == 0).collect();
        let [service, user, password] = fields[..] else {
            return Err(RequestError::Shape);
        };
        let text = |bytes: &[u8], what| {
            std::str::from_utf8(bytes)
                .map(str::to_owned)
                .map_err(|_| RequestError::NotUtf8(what))
        };
        let request = Request {
            service: text(service, "service name")?,
            user: text(user, "user name")?,
            password: text(password, "password")?,
        };
        request.validate()?;
        Ok(request)
    }

    /// The bytes the server writes to the helper.
    pub fn encode(&self) -> Result<Vec<u8>, RequestError> {
        self.validate()?;
        for (field, what) in [(&self.user, "user name"), (&self.password, "password")] {
            if field.contains('\0') {
                return Err(RequestError::Nul(what));
            }
        }
        let mut out =
            Vec::with_capacity(self.service.len() + self.user.len() + self.password.len() + 3);
        for field in [&self.service, &self.user, &self.password] {
            out.extend_from_slice(field.as_bytes());
            out.push(0);
        }
        if out.len() > MAX_REQUEST {
            wipe(&mut out);
            return Err(RequestError::TooLong);
        }
        Ok(out)
    }

    fn validate(&self) -> Result<(), RequestError> {
        validate_service(&self.service)?;
        if self.user.is_empty() {
            return Err(RequestError::EmptyUser);
        }
        Ok(())
    }
}

/// What went wrong, in an [`Answer`].
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Kind {
    Rejected,
    Expired,
    PasswordExpired,
    Unavailable,
    Pam,
}

/// The helper's one line of JSON: `{"ok":true}` or
/// `{"ok":false,"kind":"rejected","detail":"..."}`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Answer {
    pub ok: bool,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub kind: Option<Kind>,
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub detail: Option<String>,
}

impl Answer {
    /// The answer for the outcome of [`crate::pam::authenticate`].
    pub fn from_outcome(outcome: &Result<(), LoginError>) -> Answer {
        let Err(e) = outcome else {
            return Answer {
                ok: true,
                kind: None,
                detail: None,
            };
        };
        let (kind, detail) = match e {
            LoginError::Rejected { detail } => (Kind::Rejected, detail.clone()),
            LoginError::Expired { .. } => (Kind::Expired, e.to_string()),
            LoginError::PasswordExpired { .. } => (Kind::PasswordExpired, e.to_string()),
            LoginError::Unavailable(detail) => (Kind::Unavailable, detail.clone()),
            LoginError::Pam(detail) => (Kind::Pam, detail.clone()),
        };
        Answer {
            ok: false,
            kind: Some(kind),
            detail: Some(detail),
        }
    }

    /// The outcome this answer stands for, for a login of `user`.
    pub fn into_outcome(self, user: &str) -> Result<(), LoginError> {
        let detail = self.detail.unwrap_or_default();
        match (self.ok, self.kind) {
            (true, _) => Ok(()),
            (false, Some(Kind::Rejected)) => Err(LoginError::Rejected { detail }),
            (false, Some(Kind::Expired)) => Err(LoginError::Expired { user: user.into() }),
            (false, Some(Kind::PasswordExpired)) => {
                Err(LoginError::PasswordExpired { user: user.into() })
            }
            (false, Some(Kind::Unavailable)) => Err(LoginError::Unavailable(detail)),
            (false, Some(Kind::Pam) | None) => Err(LoginError::Pam(detail)),
        }
    }
}

/// The whole of `haven-pam-helper`: reads one request on stdin, checks it
/// through PAM (password, then account), answers on stdout.
pub fn helper_main() -> ExitCode {
    clear_environment();
    if std::env::args_os().len() > 1 {
        return usage("it takes no arguments");
    }
    // SAFETY: isatty and alarm have no preconditions.
    if unsafe { libc::isatty(0) } == 1 {
        return usage("it is run by the haven server, not by people (stdin is a terminal)");
    }
    // SAFETY: as above; the default action of SIGALRM ends the process.
    unsafe { libc::alarm(LIFETIME_SECS) };
    // Deliberately no setuid(0): the real uid stays the caller's, so the
    // server may kill a helper that hangs.

    // fd 0 unbuffered (std's stdin would keep a copy of the password in
    // its buffer). SAFETY: Rust's runtime opens /dev/null on a closed
    // standard descriptor, so fd 0 is open; ManuallyDrop never closes it.
    let stdin = std::mem::ManuallyDrop::new(unsafe {
        <std::fs::File as std::os::fd::FromRawFd>::from_raw_fd(0)
    });
    let mut raw = Vec::with_capacity(MAX_REQUEST + 1);
    let read = (&*stdin).take(MAX_REQUEST as u64 + 1).read_to_end(&mut raw);
    let request = read
        .map_err(|e| format!("cannot read the request: {e}"))
        .and_then(|_| Request::parse(&raw).map_err(|e| e.to_string()));
    wipe(&mut raw);
    let request = match request {
        Ok(request) => request,
        Err(why) => return usage(&why),
    };

    let outcome = crate::pam::authenticate(&request.service, &request.user, &request.password);
    drop(request);
    if matches!(outcome, Err(LoginError::Rejected { .. })) {
        std::thread::sleep(REJECT_DELAY);
    }
    let mut line = serde_json::to_string(&Answer::from_outcome(&outcome))
        .expect("an answer always serialises");
    line.push('\n');
    let mut stdout = std::io::stdout().lock();
    if let Err(e) = stdout
        .write_all(line.as_bytes())
        .and_then(|()| stdout.flush())
    {
        eprintln!("{HELPER_NAME}: cannot write the answer: {e}");
        return ExitCode::from(1);
    }
    ExitCode::SUCCESS
}

/// Drops whatever the caller put in the environment (PAM modules and the
/// programs they run read it), keeping only a safe PATH.
fn clear_environment() {
    for (name, _) in std::env::vars_os() {
        std::env::remove_var(name);
    }
    std::env::set_var("PATH", "/usr/sbin:/usr/bin:/sbin:/bin");
}

fn usage(why: &str) -> ExitCode {
    eprintln!(
        "{HELPER_NAME}: {why}\n\
         usage: the haven server writes SERVICE\\0USER\\0PASSWORD\\0 (at most {MAX_REQUEST} bytes) \
         on stdin and reads one JSON line on stdout"
    );
    ExitCode::from(1)
}

/// Where the helper is: `configured` (`[auth] pam_helper`), or, when that
/// is empty, [`HELPER_NAME`] next to the running executable. Always an
/// absolute path, so it is never looked up in `PATH`.
pub fn resolve_path(configured: &Path) -> PathBuf {
    let path = if configured.as_os_str().is_empty() {
        std::env::current_exe()
            .ok()
            .and_then(|exe| exe.parent().map(|dir| dir.join(HELPER_NAME)))
            .unwrap_or_else(|| PathBuf::from(HELPER_NAME))
    } else {
        configured.to_path_buf()
    };
    std::path::absolute(&path).unwrap_or(path)
}

/// Whether the helper at `path` can check passwords for this process:
/// it exists, this process may run it, nobody but root (or this process's
/// user) can change it, and — unless this process is root — it is setuid
/// root where setuid works. The error says what to do.
pub fn helper_status(path: &Path) -> Result<(), String> {
    // SAFETY: geteuid has no preconditions.
    check_helper(path, unsafe { libc::geteuid() })
}

fn fix(path: &Path) -> String {
    let p = path.display();
    format!("fix (as root): chown root:haven {p} && chmod 4750 {p}, and add the server's user to group haven")
}

fn check_helper(path: &Path, euid: u32) -> Result<(), String> {
    let p = path.display();
    let meta = std::fs::metadata(path).map_err(|e| {
        format!(
            "the PAM helper {p}: {e}; install {HELPER_NAME} (it comes with haven) there, \
             or set [auth] pam_helper to where it is"
        )
    })?;
    if !meta.is_file() {
        return Err(format!("the PAM helper {p} is not a file"));
    }
    let mode = meta.mode();
    if mode & 0o022 != 0 {
        return Err(format!(
            "the PAM helper {p} is writable by others than its owner (mode {:o}), so they \
             could run code with its privileges; {}",
            mode & 0o7777,
            fix(path)
        ));
    }
    if meta.uid() != 0 && meta.uid() != euid {
        return Err(format!(
            "the PAM helper {p} belongs to uid {}, neither root nor the server's user, so its \
             owner could run code as the server; {}",
            meta.uid(),
            fix(path)
        ));
    }
    let c_path = std::ffi::CString::new(path.as_os_str().as_bytes())
        .map_err(|_| format!("the PAM helper path {p} contains a NUL byte"))?;
    // SAFETY: access with a valid C string.
    if unsafe { libc::access(c_path.as_ptr(), libc::X_OK) } != 0 {
        return Err(format!(
            "the server's user ({}) may not run the PAM helper {p}; {}",
            user_label(euid),
            fix(path)
        ));
    }
    if euid == 0 {
        return Ok(());
    }
    if meta.uid() != 0 || mode & 0o4000 == 0 {
        return Err(format!(
            "the PAM helper {p} is not setuid root, so a server running as {} (not root) \
             cannot check other users' passwords through it; {}",
            user_label(euid),
            fix(path)
        ));
    }
    // SAFETY: statvfs with a valid C string and a struct we own.
    let nosuid = unsafe {
        let mut fs: libc::statvfs = std::mem::zeroed();
        libc::statvfs(c_path.as_ptr(), &mut fs) == 0 && fs.f_flag & libc::ST_NOSUID != 0
    };
    if nosuid {
        return Err(format!(
            "the PAM helper {p} is on a file system mounted nosuid, where its setuid bit is \
             ignored; install it elsewhere (e.g. /usr/libexec/haven/) and set [auth] pam_helper"
        ));
    }
    // SAFETY: prctl(PR_GET_NO_NEW_PRIVS) reads a flag of this process.
    if unsafe { libc::prctl(libc::PR_GET_NO_NEW_PRIVS, 0, 0, 0, 0) } == 1 {
        return Err(format!(
            "the server runs with no_new_privs (systemd NoNewPrivileges=yes, or a container \
             setting), which ignores the setuid bit of the PAM helper {p}; turn it off for the \
             haven service, or run the server as root"
        ));
    }
    Ok(())
}

fn user_label(uid: u32) -> String {
    match crate::pam::user_name(uid) {
        Some(name) => format!("{name}, uid {uid}"),
        None => format!("uid {uid}"),
    }
}

/// Checks `user`'s password (then the account) through the PAM `service`
/// by running the helper at `helper`. Blocks for up to [`TIMEOUT`]: run it
/// on a blocking thread.
pub fn authenticate_with_helper(
    helper: &Path,
    service: &str,
    user: &str,
    password: &str,
) -> Result<(), LoginError> {
    let request = Request {
        service: service.into(),
        user: user.into(),
        password: password.into(),
    };
    let mut bytes = request.encode().map_err(|e| match e {
        RequestError::Service(_) => LoginError::Pam(format!("[auth] pam_service: {e}")),
        _ => LoginError::Rejected {
            detail: format!("{user}: {e}"),
        },
    })?;
    drop(request);
    let outcome = helper_status(helper)
        .map_err(LoginError::Unavailable)
        .and_then(|()| exchange(helper, &bytes, TIMEOUT));
    wipe(&mut bytes);
    outcome?.into_outcome(user)
}

/// Runs the helper once: writes `request`, reads its answer, waits for it
/// to end; kills it after `timeout`.
fn exchange(helper: &Path, request: &[u8], timeout: Duration) -> Result<Answer, LoginError> {
    let p = helper.display();
    let deadline = Instant::now() + timeout;
    let mut child = Command::new(helper)
        .env_clear()
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .map_err(|e| {
            LoginError::Unavailable(format!(
                "cannot run the PAM helper {p}: {e}; {}",
                fix(helper)
            ))
        })?;
    let out = read_in_thread(child.stdout.take(), true);
    let err = read_in_thread(child.stderr.take(), false);
    // The request fits in a pipe's buffer: this does not block on a
    // helper that reads nothing. Dropping stdin closes it.
    let written = child.stdin.take().map(|mut stdin| stdin.write_all(request));

    let kill = |child: &mut std::process::Child, why: String| {
        let killed = match child.kill() {
            Ok(()) => {
                let _ = child.wait();
                String::new()
            }
            Err(e) => format!(" (and it could not be killed: {e})"),
        };
        LoginError::Unavailable(format!("the PAM helper {p} {why}{killed}"))
    };
    let line = match out.recv_timeout(deadline.saturating_duration_since(Instant::now())) {
        Ok(line) => line,
        Err(_) => {
            let secs = timeout.as_secs_f32();
            return Err(kill(
                &mut child,
                format!("did not answer within {secs} s; killed it"),
            ));
        }
    };
    let status = loop {
        match child.try_wait() {
            Ok(Some(status)) => break status,
            Ok(None) if Instant::now() < deadline => std::thread::sleep(Duration::from_millis(2)),
            Ok(None) => return Err(kill(&mut child, "answered but did not exit".into())),
            Err(e) => {
                return Err(LoginError::Pam(format!(
                    "cannot wait for the PAM helper {p}: {e}"
                )))
            }
        }
    };
    if line.ends_with(b"\n") {
        return serde_json::from_slice::<Answer>(&line).map_err(|e| {
            LoginError::Pam(format!(
                "the PAM helper {p} gave an unreadable answer ({e}): {}",
                String::from_utf8_lossy(&line).trim_end()
            ))
        });
    }
    let stderr = err.recv_timeout(Duration::from_secs(1)).unwrap_or_default();
    let stderr = String::from_utf8_lossy(&stderr);
    let mut why = format!("the PAM helper {p} gave no answer ({status})");
    if let Some(Err(e)) = written {
        why.push_str(&format!("; writing the request failed: {e}"));
    }
    if !stderr.trim().is_empty() {
        why.push_str(&format!(": {}", stderr.trim()));
    }
    Err(LoginError::Pam(why))
}

/// Reads a pipe on its own thread (a line, or everything), at most
/// [`MAX_ANSWER`] bytes, so a silent helper cannot block the caller past
/// its deadline.
fn read_in_thread<R: Read + Send + 'static>(
    pipe: Option<R>,
    line: bool,
) -> mpsc::Receiver<Vec<u8>> {
    let (tx, rx) = mpsc::channel();
    if let Some(pipe) = pipe {
        std::thread::spawn(move || {
            let mut reader = BufReader::new(pipe.take(MAX_ANSWER));
            let mut buf = Vec::new();
            let _ = if line {
                reader.read_until(b'\n', &mut buf)
            } else {
                reader.read_to_end(&mut buf)
            };
            let _ = tx.send(buf);
        });
    }
    rx
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::os::unix::fs::PermissionsExt;

    fn request(service: &str, user: &str, password: &str) -> Request {
        Request {
            service: service.into(),
            user: user.into(),
            password: password.into(),
        }
    }

    #[test]
    fn a_request_reads_back_as_it_was_written() {
        let r = request("haven", "alice", "pä ss\u{1}word");
        let bytes = r.encode().unwrap();
        assert_eq!(bytes, b"haven\0alice\0p\xc3\xa4 ss\x01word\0");
        assert_eq!(Request::parse(&bytes).unwrap(), r);
        // An empty password is a request (PAM refuses it).
        assert_eq!(Request::parse(b"haven\0alice\0\0").unwrap().password, "");
    }

    #[test]
    fn malformed_requests_are_refused() {
        for bad in [
            &b""[..],
            b"haven\0alice\0pw",
            b"haven\0alice\0",
            b"haven\0alice\0pw\0extra\0",
            b"haven\0alice\0pw\0\0",
        ] {
            assert_eq!(Request::parse(bad), Err(RequestError::Shape), "{bad:?}");
        }
        assert_eq!(
            Request::parse(b"haven\0\0pw\0"),
            Err(RequestError::EmptyUser)
        );
        assert_eq!(
            Request::parse(b"haven\0\xff\0pw\0"),
            Err(RequestError::NotUtf8("user name"))
        );
        let mut long = b"haven\0alice\0".to_vec();
        long.resize(MAX_REQUEST, b'x');
        long.push(0);
        assert_eq!(Request::parse(&long), Err(RequestError::TooLong));
        long.truncate(MAX_REQUEST - 1);
        long.push(0);
        assert!(
            Request::parse(&long).is_ok(),
            "exactly {MAX_REQUEST} bytes is fine"
        );
        assert_eq!(
            request("haven", "alice", &"x".repeat(MAX_REQUEST)).encode(),
            Err(RequestError::TooLong)
        );
        assert_eq!(
            request("haven", "al\0ice", "pw").encode(),
            Err(RequestError::Nul("user name"))
        );
    }

    #[test]
    fn a_service_name_cannot_leave_etc_pam_d() {
        for good in ["haven", "haven-test_1.2", "HAVEN"] {
            assert_eq!(validate_service(good), Ok(()), "{good}");
        }
        for bad in [
            "",
            ".",
            "..",
            "../passwd",
            "a/b",
            "/etc/shadow",
            ".hidden",
            "a b",
            "é",
            "a\0b",
        ] {
            assert!(
                matches!(validate_service(bad), Err(RequestError::Service(_))),
                "{bad:?}"
            );
        }
        let e = Request::parse(b"../../etc/x\0alice\0pw\0").unwrap_err();
        assert!(e.to_string().contains("/etc/pam.d"), "{e}");
    }

    #[test]
    fn every_outcome_survives_the_answer_line() {
        let outcomes = [
            Ok(()),
            Err(LoginError::Rejected {
                detail: "alice: Authentication failure".into(),
            }),
            Err(LoginError::Expired {
                user: "alice".into(),
            }),
            Err(LoginError::PasswordExpired {
                user: "alice".into(),
            }),
            Err(LoginError::Unavailable("no ldap".into())),
            Err(LoginError::Pam("service x: broken".into())),
        ];
        for outcome in outcomes {
            let line = serde_json::to_string(&Answer::from_outcome(&outcome)).unwrap();
            let answer: Answer = serde_json::from_str(&line).unwrap();
            assert_eq!(answer.into_outcome("alice"), outcome, "{line}");
        }
        assert_eq!(
            serde_json::to_string(&Answer::from_outcome(&Ok(()))).unwrap(),
            r#"{"ok":true}"#
        );
        assert_eq!(
            serde_json::to_string(&Answer::from_outcome(&Err(LoginError::Rejected {
                detail: "d".into()
            })))
            .unwrap(),
            r#"{"ok":false,"kind":"rejected","detail":"d"}"#
        );
    }

    fn script(dir: &Path, body: &str) -> PathBuf {
        let path = dir.join("helper.sh");
        std::fs::write(&path, format!("#!/bin/sh\n{body}\n")).unwrap();
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
        path
    }

    #[test]
    fn a_helper_that_hangs_is_killed_after_the_timeout() {
        let dir = tempfile::tempdir().unwrap();
        let helper = script(dir.path(), "exec sleep 30");
        let started = Instant::now();
        let e = exchange(&helper, b"x\0", Duration::from_millis(300)).unwrap_err();
        assert!(started.elapsed() < Duration::from_secs(5));
        assert!(
            matches!(&e, LoginError::Unavailable(m) if m.contains("did not answer") && m.contains("killed")),
            "{e:?}"
        );
    }

    #[test]
    fn a_helper_that_fails_or_babbles_is_a_pam_error_with_its_message() {
        let dir = tempfile::tempdir().unwrap();
        let helper = script(dir.path(), "cat >/dev/null; echo 'bad request' >&2; exit 1");
        let e = exchange(&helper, b"x\0", TIMEOUT).unwrap_err();
        assert!(
            matches!(&e, LoginError::Pam(m) if m.contains("bad request") && m.contains("exit status: 1")),
            "{e:?}"
        );
        let helper = script(dir.path(), "echo hello");
        let e = exchange(&helper, b"x\0", TIMEOUT).unwrap_err();
        assert!(
            matches!(&e, LoginError::Pam(m) if m.contains("unreadable answer")),
            "{e:?}"
        );
        let helper = script(dir.path(), r#"echo '{"ok":true}'"#);
        assert_eq!(
            exchange(&helper, b"x\0", TIMEOUT)
                .unwrap()
                .into_outcome("a"),
            Ok(())
        );
    }

    #[test]
    fn a_missing_or_loose_helper_is_reported_with_the_fix() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("nope");
        let e = check_helper(&missing, 0).unwrap_err();
        assert!(
            e.contains(&missing.display().to_string()) && e.contains("pam_helper"),
            "{e}"
        );
        let e = authenticate_with_helper(&missing, "haven", "alice", "pw").unwrap_err();
        assert!(
            matches!(&e, LoginError::Unavailable(m) if m.contains("nope")),
            "{e:?}"
        );

        let helper = script(dir.path(), "true");
        std::fs::set_permissions(&helper, std::fs::Permissions::from_mode(0o777)).unwrap();
        let e = check_helper(&helper, 0).unwrap_err();
        assert!(e.contains("writable"), "{e}");
    }

    #[test]
    fn an_absolute_helper_path_is_resolved() {
        let next_to_exe = resolve_path(Path::new(""));
        assert!(next_to_exe.is_absolute());
        assert!(next_to_exe.ends_with(HELPER_NAME));
        assert_eq!(
            resolve_path(Path::new("/usr/libexec/haven/h")),
            Path::new("/usr/libexec/haven/h")
        );
        assert!(resolve_path(Path::new("h")).is_absolute());
    }
}
