//! Logins of domain accounts through LDAP / Active Directory: bind as the
//! user, read the user's groups (RFC 2307 `posixGroup`/`memberUid`,
//! `groupOfNames`/`member`, and AD `memberOf`).
//!
//! Invariants: an empty password never reaches the server (an LDAP
//! "unauthenticated bind" would succeed without checking anything); every
//! user-supplied string is escaped before it goes into a filter or a DN;
//! a failed bind, an unknown user and an ambiguous user all give the same
//! answer to the client.
//!
//! TLS (`ldaps://`, or StartTLS on `ldap://`) always verifies the
//! directory's certificate chain and host name, against exactly the CAs of
//! `ca_file` or else the system's trust store; there is no way to skip
//! verification. A TLS failure is [`LoginError::Unavailable`] saying that
//! it is TLS and what to check.

use std::io::ErrorKind;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use ldap3::{
    dn_escape, ldap_escape, LdapConnAsync, LdapConnSettings, LdapError, Scope, SearchEntry,
};
use rustls::{CertificateError, ClientConfig};
use serde::{Deserialize, Serialize};

use crate::pam::LoginError;

/// How to reach and read a directory (`[auth.ldap]` in haven.toml).
///
/// Passwords cross the network, so use TLS: an `ldaps://` URL, or
/// `starttls = true` with `ldap://`. The directory's certificate must then
/// be signed by a CA in `ca_file` (a PEM file; only those CAs are trusted)
/// or, without `ca_file`, by one in the system's trust store, and must name
/// the host of `url` (a DNS name or an IP address, as in the certificate).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
    /// PEM file of the CA certificate(s) that signed the directory's
    /// certificate, e.g. `/etc/haven/ldap-ca.pem`: with TLS, exactly these
    /// are trusted. Unset: the system's trust store. Read at each login, so
    /// a replaced file needs no restart.
    pub ca_file: Option<PathBuf>,
    /// Where users live, e.g. `ou=people,dc=example,dc=org`.
    pub user_base: String,
    /// Finds a user; `{user}` is replaced by the escaped user name
    /// (Active Directory: `(sAMAccountName={user})`).
    pub user_filter: String,
    /// Where groups live.
    pub group_base: String,
    /// Finds a user's groups; `{user}` (escaped name) and `{dn}` (escaped
    /// DN) are replaced.
    pub group_filter: String,
    /// Attribute holding a group's name.
    pub group_name_attr: String,
    /// Optional account used to search for users (anonymous otherwise).
    pub bind_dn: Option<String>,
    pub bind_password: Option<String>,
    pub timeout_secs: u64,
    /// The realms of this directory: `user@DOMAIN` logs in here when
    /// DOMAIN is one of these (compared without case). Empty: every
    /// `user@domain`. Any other name is a local account (PAM).
    pub domains: Vec<String>,
}

impl LdapConfig {
    /// The directory name of `login` if it is this directory's to check
    /// (`user@domain` of one of its [`domains`](Self::domains)), `None` if
    /// it is a local account.
    pub fn account<'a>(&self, login: &'a str) -> Option<&'a str> {
        let (name, domain) = login.rsplit_once('@')?;
        let ours =
            self.domains.is_empty() || self.domains.iter().any(|d| d.eq_ignore_ascii_case(domain));
        (ours && !name.is_empty()).then_some(name)
    }
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: "ldap://127.0.0.1:389".into(),
            starttls: false,
            ca_file: None,
            user_base: String::new(),
            user_filter: "(uid={user})".into(),
            group_base: String::new(),
            group_filter: "(|(memberUid={user})(member={dn}))".into(),
            group_name_attr: "cn".into(),
            bind_dn: None,
            bind_password: None,
            timeout_secs: 10,
            domains: Vec::new(),
        }
    }
}

/// A user the directory vouched for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DirectoryUser {
    pub user: String,
    pub dn: String,
    pub groups: Vec<String>,
}

fn rejected(detail: impl Into<String>) -> LoginError {
    LoginError::Rejected {
        detail: detail.into(),
    }
}

fn unavailable(e: impl std::fmt::Display) -> LoginError {
    LoginError::Unavailable(format!("LDAP: {e}"))
}

/// Checks `user`'s password against the directory and reads their groups.
pub async fn authenticate(
    config: &LdapConfig,
    user: &str,
    password: &str,
) -> Result<DirectoryUser, LoginError> {
    if password.is_empty() {
        return Err(rejected("empty password (an unauthenticated LDAP bind)"));
    }
    directory_user(config, user, Some(password)).await
}

/// Finds `user` in the directory and reads their groups, without their
/// password (as the search account, or anonymously): for a user another
/// site vouches for (a peer's forwarded operation).
pub async fn lookup(config: &LdapConfig, user: &str) -> Result<DirectoryUser, LoginError> {
    directory_user(config, user, None).await
}

/// The user's entry and groups; with a password, only if it binds.
async fn directory_user(
    config: &LdapConfig,
    user: &str,
    password: Option<&str>,
) -> Result<DirectoryUser, LoginError> {
    if user.is_empty() {
        return Err(rejected("empty user name"));
    }
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let mut settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_starttls(config.starttls);
    if uses_tls(config) {
        settings = settings.set_config(tls_config(config)?);
    }
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
        .await
        .map_err(|e| connect_error(config, e))?;
    ldap3::drive!(conn);
    ldap.with_timeout(timeout);

    // Find the user's entry (as the service account, or anonymously).
    if let (Some(dn), Some(pw)) = (&config.bind_dn, &config.bind_password) {
        ldap.simple_bind(dn, pw)
            .await
            .and_then(|r| r.success())
            .map_err(|e| unavailable(format!("the search account cannot bind: {e}")))?;
    }
    let filter = config.user_filter.replace("{user}", &ldap_escape(user));
    let (entries, _) = ldap
        .search(&config.user_base, Scope::Subtree, &filter, vec!["memberOf"])
        .await
        .and_then(|r| r.success())
        .map_err(unavailable)?;
    let entry = match entries.len() {
        1 => SearchEntry::construct(entries.into_iter().next().expect("one entry")),
        0 => return Err(rejected(format!("{user}: not in the directory"))),
        n => return Err(rejected(format!("{user}: {n} directory entries match"))),
    };

    // The password check: bind as the user.
    if let Some(password) = password {
        ldap.simple_bind(&entry.dn, password)
            .await
            .map_err(unavailable)?
            .success()
            .map_err(|e| rejected(format!("{user}: {e}")))?;
    }

    // Their groups: memberOf (Active Directory), and group entries that
    // name them.
    let mut groups: Vec<String> = entry
        .attrs
        .get("memberOf")
        .into_iter()
        .flatten()
        .filter_map(|dn| {
            dn.split(',')
                .next()
                .and_then(|rdn| rdn.split_once('='))
                .map(|(_, v)| v.to_string())
        })
        .collect();
    if !config.group_base.is_empty() {
        let filter = config
            .group_filter
            .replace("{user}", &ldap_escape(user))
            .replace("{dn}", &ldap_escape(&entry.dn));
        let (found, _) = ldap
            .search(
                &config.group_base,
                Scope::Subtree,
                &filter,
                vec![config.group_name_attr.as_str()],
            )
            .await
            .and_then(|r| r.success())
            .map_err(unavailable)?;
        for g in found {
            let g = SearchEntry::construct(g);
            if let Some(names) = g.attrs.get(&config.group_name_attr) {
                groups.extend(names.iter().cloned());
            }
        }
    }
    let _ = ldap.unbind().await;
    groups.sort();
    groups.dedup();
    Ok(DirectoryUser {
        user: user.to_string(),
        dn: entry.dn,
        groups,
    })
}

/// Whether the connection is TLS: an `ldaps://` URL, or StartTLS on `ldap://`
/// (ldap3 ignores `starttls` for other schemes).
fn uses_tls(config: &LdapConfig) -> bool {
    match config.url.split_once("://") {
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("ldaps") => true,
        Some((scheme, _)) if scheme.eq_ignore_ascii_case("ldap") => config.starttls,
        _ => false,
    }
}

/// The TLS client settings: trust exactly the CAs of `ca_file`, or the
/// system's store. rustls' default verifier checks the chain and that the
/// certificate names the host of the URL (ldap3 passes it as the server
/// name).
fn tls_config(config: &LdapConfig) -> Result<Arc<ClientConfig>, LoginError> {
    let roots = match &config.ca_file {
        Some(path) => Arc::new(
            haven_pki::roots_from_file(path)
                .map_err(|e| unavailable(format!("[auth.ldap] ca_file {}: {e}", path.display())))?,
        ),
        None => haven_pki::system_roots().map_err(|e| {
            unavailable(format!(
                "TLS to {} has no CA to verify the directory with: {e}; set [auth.ldap] \
                 ca_file to the PEM file of the CA that signed the directory's certificate",
                config.url
            ))
        })?,
    };
    Ok(haven_pki::client_config_with_roots(roots))
}

/// Says why the connection could not be opened: a TLS failure says it is
/// TLS and what the administrator should check; anything else (refused,
/// no route, timeout) that the directory cannot be reached.
fn connect_error(config: &LdapConfig, e: LdapError) -> LoginError {
    let tls = if uses_tls(config) {
        tls_failure(config, &e)
    } else {
        None
    };
    match tls {
        Some((detail, hint)) => {
            unavailable(format!("TLS to {} failed: {detail}; {hint}", config.url))
        }
        None => unavailable(format!("cannot reach {}: {e}", config.url)),
    }
}

/// If a connection error of a TLS connection is TLS's own (the handshake,
/// the certificate, StartTLS refused): what failed and what to check.
fn tls_failure(config: &LdapConfig, e: &LdapError) -> Option<(String, String)> {
    match e {
        LdapError::Io { source } => {
            if let Some(tls) = source
                .get_ref()
                .and_then(|inner| inner.downcast_ref::<rustls::Error>())
            {
                return Some((tls.to_string(), tls_hint(config, tls)));
            }
            // A TCP connect fails as refused/unreachable/timed out; a peer
            // that hangs up on a ClientHello is not speaking TLS.
            let hung_up = matches!(
                source.kind(),
                ErrorKind::UnexpectedEof
                    | ErrorKind::ConnectionReset
                    | ErrorKind::BrokenPipe
                    | ErrorKind::InvalidData
            );
            hung_up.then(|| {
                (
                    format!("the directory hung up during the handshake ({source})"),
                    "does it speak TLS there? ldaps:// needs the directory's TLS port \
                     (usually 636); StartTLS needs its plain ldap:// port"
                        .to_string(),
                )
            })
        }
        // The only operation before TLS is the StartTLS request itself.
        LdapError::LdapResult { result } => Some((
            format!(
                "the directory refused StartTLS (rc={}: {})",
                result.rc, result.text
            ),
            "give the directory a TLS certificate (olcTLSCertificateFile and \
             olcTLSCertificateKeyFile), or use its ldaps:// URL"
                .to_string(),
        )),
        LdapError::DNSName { source } => Some((
            format!("the host is not a valid TLS server name ({source})"),
            "write [auth.ldap] url with a host name or an IP address that the directory's \
             certificate holds"
                .to_string(),
        )),
        LdapError::Rustls { source } => Some((source.to_string(), tls_hint(config, source))),
        _ => None,
    }
}

/// What to check for a rustls error.
fn tls_hint(config: &LdapConfig, error: &rustls::Error) -> String {
    let rustls::Error::InvalidCertificate(cert) = error else {
        return "check the directory's TLS settings".into();
    };
    match cert {
        CertificateError::UnknownIssuer | CertificateError::BadSignature => match &config.ca_file {
            Some(path) => format!(
                "is [auth.ldap] ca_file ({}) the CA that signed the directory's certificate?",
                path.display()
            ),
            None => "the system trust store does not hold the directory's CA; set \
                     [auth.ldap] ca_file to the PEM file of that CA"
                .into(),
        },
        CertificateError::NotValidForName | CertificateError::NotValidForNameContext { .. } => {
            "the directory's certificate does not name the host of [auth.ldap] url; use a \
             host name or address that the certificate holds"
                .into()
        }
        CertificateError::Expired
        | CertificateError::ExpiredContext { .. }
        | CertificateError::NotValidYet
        | CertificateError::NotValidYetContext { .. } => {
            "check the dates of the directory's certificate and this host's clock".into()
        }
        _ => "check the directory's certificate and [auth.ldap] ca_file".into(),
    }
}

/// A DN from a template such as `uid={user},ou=people,dc=example,dc=org`,
/// with the user name escaped.
pub fn user_dn(template: &str, user: &str) -> String {
    template.replace("{user}", &dn_escape(user))
}

#[cfg(test)]
mod realm_tests {
    use super::LdapConfig;

    #[test]
    fn user_at_one_of_the_domains_is_the_directorys_and_anything_else_is_local() {
        let any = LdapConfig::default();
        assert_eq!(any.account("alice@example.com"), Some("alice"));
        assert_eq!(any.account("alice@other.org"), Some("alice"));
        assert_eq!(any.account("alice"), None);
        assert_eq!(any.account("@example.com"), None);
        let listed = LdapConfig {
            domains: vec!["Example.COM".into(), "corp.example.net".into()],
            ..LdapConfig::default()
        };
        assert_eq!(listed.account("alice@example.com"), Some("alice"));
        assert_eq!(listed.account("bob@CORP.example.net"), Some("bob"));
        assert_eq!(
            listed.account("carol@other.org"),
            None,
            "a local (PAM) name"
        );
        assert_eq!(listed.account("carol"), None);
    }
}
