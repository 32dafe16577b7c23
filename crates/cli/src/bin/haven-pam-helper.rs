//! `haven-pam-helper`: checks one OS password through PAM for the haven
//! server, so the server need not run as root. Installed setuid root,
//! group `haven`, mode 4750 when the server is not root; see
//! docs/authentication.md. Everything it does is in
//! `haven_auth::pam_helper` (protocol, checks, answer).

fn main() -> std::process::ExitCode {
    haven_auth::pam_helper::helper_main()
}
