//! Logins of local OS accounts through the system's real PAM stack.
//!
//! libpam is loaded at run time (`dlopen("libpam.so.0")`), so building
//! Haven needs no PAM headers and a host without PAM gets a clear error
//! instead of a missing-library crash. The PAM service (default `haven`,
//! file `/etc/pam.d/haven`) decides what a login means on this host:
//! `pam_unix`, `pam_sss`, `pam_ldap`, lockout modules...
//!
//! pam_unix can check another user's password only as root (or group
//! `shadow`), so the server never calls [`authenticate`] itself: it runs
//! the small privileged helper `haven-pam-helper`, which does
//! ([`authenticate_with_helper`]; protocol and checks in
//! [`crate::pam_helper`]). Calls block: run them on a blocking thread.
//!
//! Invariant: the password is copied only into memory PAM asks for and
//! frees; it is never logged, and the outcome seen by a client does not
//! tell an unknown user from a wrong password.

use std::ffi::{c_char, c_int, c_void, CStr, CString};
use std::sync::OnceLock;

pub use crate::pam_helper::{authenticate_with_helper, helper_status};

/// The PAM service file Haven installs (`/etc/pam.d/haven`).
pub const DEFAULT_SERVICE: &str = "haven";

/// A PAM service file for local accounts, as installed for the default
/// service.
pub const SERVICE_FILE: &str = "# Haven: logins of local OS accounts (installed by haven)\nauth     required pam_unix.so\naccount  required pam_unix.so\n";

/// What [`install_service`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Installed {
    /// The file was written.
    Written,
    /// The file was already there with exactly this content.
    AlreadyThere,
}

/// Installs [`SERVICE_FILE`] as the PAM service `service` in `dir`
/// (`/etc/pam.d` on a real host): written to a temporary file, then
/// renamed, mode 0644. An existing file with other content is the
/// administrator's own (sssd, lockout modules...): it is left alone unless
/// `force`.
pub fn install_service(
    dir: &std::path::Path,
    service: &str,
    force: bool,
) -> Result<Installed, String> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    crate::pam_helper::validate_service(service).map_err(|e| e.to_string())?;
    let path = dir.join(service);
    match std::fs::read_to_string(&path) {
        Ok(text) if text == SERVICE_FILE => return Ok(Installed::AlreadyThere),
        Ok(_) if !force => {
            return Err(format!(
                "{} exists with other content, so it is this host's own PAM policy: Haven uses                  it as it is (pass --force to replace it with Haven's pam_unix file)",
                path.display()
            ))
        }
        Ok(_) => {}
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => {}
        Err(e) => return Err(format!("cannot read {}: {e}", path.display())),
    }
    let tmp = dir.join(format!(".{service}.haven-tmp"));
    let write = || -> std::io::Result<()> {
        let mut f = std::fs::OpenOptions::new()
            .write(true)
            .create(true)
            .truncate(true)
            .mode(0o644)
            .open(&tmp)?;
        f.write_all(SERVICE_FILE.as_bytes())?;
        f.sync_all()?;
        std::fs::rename(&tmp, &path)
    };
    write().map_err(|e| {
        let _ = std::fs::remove_file(&tmp);
        let hint = if e.kind() == std::io::ErrorKind::PermissionDenied {
            " (run it as root)"
        } else {
            ""
        };
        format!("cannot write {}: {e}{hint}", path.display())
    })?;
    Ok(Installed::Written)
}

/// Why a login failed.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum LoginError {
    /// Wrong password, unknown user or locked account: deliberately one
    /// answer, so a client cannot probe which.
    #[error("wrong user name or password")]
    Rejected { detail: String },
    #[error("the account of {user} has expired; ask an administrator to renew it")]
    Expired { user: String },
    #[error("the password of {user} has expired; change it on the host, then log in again")]
    PasswordExpired { user: String },
    #[error("logins cannot be checked now: {0}")]
    Unavailable(String),
    #[error("PAM error: {0}")]
    Pam(String),
}

const PAM_SUCCESS: c_int = 0;
const PAM_PROMPT_ECHO_OFF: c_int = 1;
const PAM_PROMPT_ECHO_ON: c_int = 2;
const PAM_CONV_ERR: c_int = 19;
const PAM_BUF_ERR: c_int = 5;
const PAM_ACCT_EXPIRED: c_int = 13;
const PAM_NEW_AUTHTOK_REQD: c_int = 12;
const PAM_AUTHINFO_UNAVAIL: c_int = 9;
const PAM_SYSTEM_ERR: c_int = 4;
const PAM_SERVICE_ERR: c_int = 3;
const PAM_ABORT: c_int = 26;
const PAM_SILENT: c_int = 0x8000;
const PAM_DISALLOW_NULL_AUTHTOK: c_int = 0x0001;

#[repr(C)]
struct PamMessage {
    msg_style: c_int,
    msg: *const c_char,
}

#[repr(C)]
struct PamResponse {
    resp: *mut c_char,
    resp_retcode: c_int,
}

#[repr(C)]
struct PamConv {
    conv: extern "C" fn(c_int, *mut *const PamMessage, *mut *mut PamResponse, *mut c_void) -> c_int,
    appdata_ptr: *mut c_void,
}

type PamStart =
    unsafe extern "C" fn(*const c_char, *const c_char, *const PamConv, *mut *mut c_void) -> c_int;
type PamCall = unsafe extern "C" fn(*mut c_void, c_int) -> c_int;
type PamStrerror = unsafe extern "C" fn(*mut c_void, c_int) -> *const c_char;

struct Lib {
    start: PamStart,
    authenticate: PamCall,
    acct_mgmt: PamCall,
    end: PamCall,
    strerror: PamStrerror,
}

fn lib() -> Result<&'static Lib, LoginError> {
    static LIB: OnceLock<Result<Lib, String>> = OnceLock::new();
    LIB.get_or_init(|| {
        // SAFETY: dlopen/dlsym with NUL-terminated names; the handle is
        // never closed, so the function pointers stay valid.
        unsafe {
            let handle = libc::dlopen(c"libpam.so.0".as_ptr(), libc::RTLD_NOW | libc::RTLD_LOCAL);
            if handle.is_null() {
                return Err("libpam.so.0 not found (install the libpam0g package)".into());
            }
            let sym = |name: &CStr| {
                let p = libc::dlsym(handle, name.as_ptr());
                if p.is_null() {
                    Err(format!("libpam lacks {}", name.to_string_lossy()))
                } else {
                    Ok(p)
                }
            };
            Ok(Lib {
                start: std::mem::transmute::<*mut c_void, PamStart>(sym(c"pam_start")?),
                authenticate: std::mem::transmute::<*mut c_void, PamCall>(sym(
                    c"pam_authenticate",
                )?),
                acct_mgmt: std::mem::transmute::<*mut c_void, PamCall>(sym(c"pam_acct_mgmt")?),
                end: std::mem::transmute::<*mut c_void, PamCall>(sym(c"pam_end")?),
                strerror: std::mem::transmute::<*mut c_void, PamStrerror>(sym(c"pam_strerror")?),
            })
        }
    })
    .as_ref()
    .map_err(|e| LoginError::Unavailable(e.clone()))
}

/// Answers PAM's prompts: the password for hidden prompts, the user name
/// for visible ones, nothing for messages.
extern "C" fn converse(
    count: c_int,
    messages: *mut *const PamMessage,
    responses: *mut *mut PamResponse,
    data: *mut c_void,
) -> c_int {
    if count <= 0 || messages.is_null() || responses.is_null() || data.is_null() {
        return PAM_CONV_ERR;
    }
    // SAFETY: PAM passes `count` messages and expects a calloc'd array of
    // `count` responses that it frees; `data` is the `Secrets` we gave it,
    // alive for the whole pam_start..pam_end span.
    unsafe {
        let secrets = &*(data as *const Secrets);
        let out =
            libc::calloc(count as usize, std::mem::size_of::<PamResponse>()) as *mut PamResponse;
        if out.is_null() {
            return PAM_BUF_ERR;
        }
        for i in 0..count as usize {
            // Linux-PAM passes an array of pointers.
            let message = *messages.add(i);
            if message.is_null() {
                continue;
            }
            let answer = match (*message).msg_style {
                PAM_PROMPT_ECHO_OFF => Some(&secrets.password),
                PAM_PROMPT_ECHO_ON => Some(&secrets.user),
                _ => None,
            };
            if let Some(text) = answer {
                (*out.add(i)).resp = libc::strdup(text.as_ptr());
            }
        }
        *responses = out;
    }
    PAM_SUCCESS
}

struct Secrets {
    user: CString,
    password: CString,
}

impl Drop for Secrets {
    fn drop(&mut self) {
        wipe(&mut std::mem::take(&mut self.password).into_bytes_with_nul());
    }
}

/// Best effort: do not leave a password in freed memory.
pub(crate) fn wipe(bytes: &mut [u8]) {
    for b in bytes.iter_mut() {
        // SAFETY: a volatile write into our own buffer.
        unsafe { std::ptr::write_volatile(b, 0) };
    }
}

fn message(lib: &Lib, handle: *mut c_void, code: c_int) -> String {
    // SAFETY: pam_strerror returns a static string (or NULL).
    unsafe {
        let p = (lib.strerror)(handle, code);
        if p.is_null() {
            format!("PAM code {code}")
        } else {
            CStr::from_ptr(p).to_string_lossy().into_owned()
        }
    }
}

/// Checks `user`'s password through the PAM `service`, then whether the
/// account may log in now (expiry, locks the stack enforces).
pub fn authenticate(service: &str, user: &str, password: &str) -> Result<(), LoginError> {
    let lib = lib()?;
    let bad = |what: &str| LoginError::Rejected {
        detail: format!("{what} contains a NUL byte"),
    };
    let service_c = CString::new(service).map_err(|_| bad("service"))?;
    let secrets = Box::new(Secrets {
        user: CString::new(user).map_err(|_| bad("user name"))?,
        password: CString::new(password).map_err(|_| bad("password"))?,
    });
    let conv = PamConv {
        conv: converse,
        appdata_ptr: &*secrets as *const Secrets as *mut c_void,
    };
    let mut handle: *mut c_void = std::ptr::null_mut();
    // SAFETY: valid C strings and conversation; `secrets` and `conv`
    // outlive the handle, which pam_end releases on every path below.
    unsafe {
        let rc = (lib.start)(
            service_c.as_ptr(),
            secrets.user.as_ptr(),
            &conv,
            &mut handle,
        );
        if rc != PAM_SUCCESS || handle.is_null() {
            return Err(LoginError::Pam(format!(
                "cannot start PAM service {service}: {}",
                message(lib, handle, rc)
            )));
        }
        let mut rc = (lib.authenticate)(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
        let outcome = if rc != PAM_SUCCESS {
            Err(classify(lib, handle, rc, user, service))
        } else {
            rc = (lib.acct_mgmt)(handle, PAM_SILENT | PAM_DISALLOW_NULL_AUTHTOK);
            match rc {
                PAM_SUCCESS => Ok(()),
                PAM_ACCT_EXPIRED => Err(LoginError::Expired { user: user.into() }),
                PAM_NEW_AUTHTOK_REQD => Err(LoginError::PasswordExpired { user: user.into() }),
                _ => Err(classify(lib, handle, rc, user, service)),
            }
        };
        (lib.end)(handle, rc);
        outcome
    }
}

fn classify(lib: &Lib, handle: *mut c_void, rc: c_int, user: &str, service: &str) -> LoginError {
    let text = message(lib, handle, rc);
    match rc {
        PAM_SYSTEM_ERR | PAM_SERVICE_ERR | PAM_ABORT | PAM_BUF_ERR | PAM_CONV_ERR => {
            LoginError::Pam(format!("service {service}: {text}"))
        }
        PAM_AUTHINFO_UNAVAIL => LoginError::Unavailable(format!("service {service}: {text}")),
        _ if locked(user) => LoginError::Rejected {
            detail: format!("{user}: {text}; the account is locked (usermod -U {user} unlocks it)"),
        },
        _ => LoginError::Rejected {
            detail: format!("{user}: {text}"),
        },
    }
}

/// Whether `user`'s shadow entry is locked (`usermod -L` and `passwd -l`
/// put a `!` before the hash), for the log. Only root can read it; `false`
/// otherwise.
fn locked(user: &str) -> bool {
    let Ok(name) = CString::new(user) else {
        return false;
    };
    // SAFETY: getspnam_r with a buffer we own; the hash is read before the
    // buffer goes away.
    unsafe {
        let mut entry: libc::spwd = std::mem::zeroed();
        let mut buf = vec![0 as c_char; 16384];
        let mut found: *mut libc::spwd = std::ptr::null_mut();
        libc::getspnam_r(
            name.as_ptr(),
            &mut entry,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        ) == 0
            && !found.is_null()
            && !entry.sp_pwdp.is_null()
            && *entry.sp_pwdp == b'!' as c_char
    }
}

/// The OS groups of an account that exists here (as the system's name
/// service knows it: local files, sssd, ...); `None` when there is none.
pub fn os_account(user: &str) -> Option<Vec<String>> {
    let name = CString::new(user).ok()?;
    // SAFETY: getpwnam_r with a buffer we own; nothing is kept from it.
    let exists = unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as c_char; 16384];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        ) == 0
            && !found.is_null()
    };
    exists.then(|| os_groups(user))
}

/// The OS groups of a user (primary and supplementary), by name.
pub fn os_groups(user: &str) -> Vec<String> {
    let Ok(name) = CString::new(user) else {
        return Vec::new();
    };
    // SAFETY: getpwnam_r/getgrouplist/getgrgid_r with buffers we own and
    // sizes we pass; results are copied out before the buffers go away.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as c_char; 16384];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwnam_r(
            name.as_ptr(),
            &mut pwd,
            buf.as_mut_ptr(),
            buf.len(),
            &mut found,
        ) != 0
            || found.is_null()
        {
            return Vec::new();
        }
        let mut count: c_int = 64;
        let mut gids = vec![0 as libc::gid_t; count as usize];
        if libc::getgrouplist(name.as_ptr(), pwd.pw_gid, gids.as_mut_ptr(), &mut count) < 0 {
            gids.resize(count.max(0) as usize, 0);
            libc::getgrouplist(name.as_ptr(), pwd.pw_gid, gids.as_mut_ptr(), &mut count);
        }
        gids.truncate(count.max(0) as usize);
        let mut names = Vec::new();
        for gid in gids {
            let mut grp: libc::group = std::mem::zeroed();
            let mut gbuf = vec![0 as c_char; 16384];
            let mut result: *mut libc::group = std::ptr::null_mut();
            if libc::getgrgid_r(gid, &mut grp, gbuf.as_mut_ptr(), gbuf.len(), &mut result) == 0
                && !result.is_null()
            {
                names.push(CStr::from_ptr(grp.gr_name).to_string_lossy().into_owned());
            }
        }
        names.sort();
        names.dedup();
        names
    }
}

/// The name of the OS user with this uid.
pub fn user_name(uid: u32) -> Option<String> {
    // SAFETY: getpwuid_r with a buffer we own; the name is copied out.
    unsafe {
        let mut pwd: libc::passwd = std::mem::zeroed();
        let mut buf = vec![0 as c_char; 16384];
        let mut found: *mut libc::passwd = std::ptr::null_mut();
        if libc::getpwuid_r(uid, &mut pwd, buf.as_mut_ptr(), buf.len(), &mut found) != 0
            || found.is_null()
        {
            return None;
        }
        Some(CStr::from_ptr(pwd.pw_name).to_string_lossy().into_owned())
    }
}

#[cfg(test)]
mod install_tests {
    use super::*;

    #[test]
    fn an_account_is_found_with_its_groups_and_an_unknown_one_is_none() {
        let root = os_account("root").expect("root exists");
        assert!(root.contains(&"root".to_string()), "{root:?}");
        assert_eq!(os_account("no-such-haven-user-x9"), None);
        assert_eq!(os_account("bad\0name"), None);
    }

    #[test]
    fn the_service_file_is_written_once_and_a_foreign_one_is_kept_unless_forced() {
        let dir = tempfile::tempdir().unwrap();
        assert_eq!(
            install_service(dir.path(), "haven", false),
            Ok(Installed::Written)
        );
        let path = dir.path().join("haven");
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SERVICE_FILE);
        use std::os::unix::fs::PermissionsExt;
        let mode = std::fs::metadata(&path).unwrap().permissions().mode() & 0o777;
        assert_eq!(mode, 0o644);
        assert_eq!(
            install_service(dir.path(), "haven", false),
            Ok(Installed::AlreadyThere)
        );

        let own = "auth required pam_sss.so\n";
        std::fs::write(&path, own).unwrap();
        let err = install_service(dir.path(), "haven", false).unwrap_err();
        assert!(
            err.contains("--force") && err.contains("other content"),
            "{err}"
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), own, "left alone");
        assert_eq!(
            install_service(dir.path(), "haven", true),
            Ok(Installed::Written)
        );
        assert_eq!(std::fs::read_to_string(&path).unwrap(), SERVICE_FILE);

        let err = install_service(dir.path(), "../login", false).unwrap_err();
        assert!(err.contains("/etc/pam.d"), "{err}");
    }
}
