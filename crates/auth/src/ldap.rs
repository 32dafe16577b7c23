//! Logins of domain accounts through LDAP / Active Directory: bind as the
//! user, read the user's groups (RFC 2307 `posixGroup`/`memberUid`,
//! `groupOfNames`/`member`, and AD `memberOf`).
//!
//! Invariants: an empty password never reaches the server (an LDAP
//! "unauthenticated bind" would succeed without checking anything); every
//! user-supplied string is escaped before it goes into a filter or a DN;
//! a failed bind, an unknown user and an ambiguous user all give the same
//! answer to the client.

use std::time::Duration;

use ldap3::{dn_escape, ldap_escape, LdapConnAsync, LdapConnSettings, Scope, SearchEntry};
use serde::{Deserialize, Serialize};

use crate::pam::LoginError;

/// How to reach and read a directory.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LdapConfig {
    /// `ldap://host:389` or `ldaps://host:636`.
    pub url: String,
    /// Upgrade `ldap://` with StartTLS.
    pub starttls: bool,
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
}

impl Default for LdapConfig {
    fn default() -> Self {
        LdapConfig {
            url: "ldap://127.0.0.1:389".into(),
            starttls: false,
            user_base: String::new(),
            user_filter: "(uid={user})".into(),
            group_base: String::new(),
            group_filter: "(|(memberUid={user})(member={dn}))".into(),
            group_name_attr: "cn".into(),
            bind_dn: None,
            bind_password: None,
            timeout_secs: 10,
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
    if user.is_empty() {
        return Err(rejected("empty user name"));
    }
    let timeout = Duration::from_secs(config.timeout_secs.max(1));
    let settings = LdapConnSettings::new()
        .set_conn_timeout(timeout)
        .set_starttls(config.starttls);
    let (conn, mut ldap) = LdapConnAsync::with_settings(settings, &config.url)
        .await
        .map_err(unavailable)?;
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
    ldap.simple_bind(&entry.dn, password)
        .await
        .map_err(unavailable)?
        .success()
        .map_err(|e| rejected(format!("{user}: {e}")))?;

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

/// A DN from a template such as `uid={user},ou=people,dc=example,dc=org`,
/// with the user name escaped.
pub fn user_dn(template: &str, user: &str) -> String {
    template.replace("{user}", &dn_escape(user))
}
