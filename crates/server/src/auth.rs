//! Logins and the caller of each API request, when `[auth] enabled`.
//!
//! A login is checked by PAM (local accounts) or LDAP (`user@domain` when
//! `[auth.ldap]` is set), throttled per user and per source, and opens a
//! session whose token is returned (bearer, for the CLI and scripts) and
//! set as an HttpOnly, SameSite=Strict cookie (for the browser). Roles
//! come from `[[auth.grant]]` and the user's OS or directory groups.

use std::path::PathBuf;
use std::time::{Duration, Instant};

use haven_auth::pam::LoginError;
use haven_auth::roles::{Identity, Policy};
use haven_auth::session::{SessionLimits, Sessions, Throttle};

use crate::config::AuthSection;

/// Who is calling the API.
#[derive(Debug, Clone)]
pub enum Caller {
    /// Logins are off: the `X-Haven-User` header names the requester.
    Unchecked { name: String },
    /// A logged-in user.
    User(Identity),
}

impl Caller {
    pub fn name(&self) -> &str {
        match self {
            Caller::Unchecked { name } => name,
            Caller::User(identity) => &identity.user,
        }
    }
}

/// The account named `user` at this site, with its groups, as a login
/// would give it but without a password: for an operation a paired site
/// forwards for one of its users. A `user@domain` of `[auth.ldap]` is
/// looked up in the directory; any other name in the system's accounts.
/// The error says that there is no such account here.
pub async fn resolve_account(config: &AuthSection, user: &str) -> Result<Identity, String> {
    let unknown = || {
        format!("there is no account {user} at this site: an operation from a paired site runs as the account of the same name here")
    };
    if let Some((ldap, name)) = config
        .ldap
        .as_ref()
        .and_then(|ldap| Some((ldap, ldap.account(user)?)))
    {
        return match haven_auth::ldap::lookup(ldap, name).await {
            Ok(found) => Ok(Identity {
                user: user.to_string(),
                groups: found.groups,
            }),
            Err(LoginError::Rejected { .. }) => Err(unknown()),
            Err(e) => Err(format!("cannot look {user} up in the directory: {e}")),
        };
    }
    let name = user.to_string();
    let groups = tokio::task::spawn_blocking(move || haven_auth::pam::os_account(&name))
        .await
        .map_err(|e| e.to_string())?;
    match groups {
        Some(groups) => Ok(Identity {
            user: user.to_string(),
            groups,
        }),
        None => Err(unknown()),
    }
}

/// Why a login failed.
#[derive(Debug, thiserror::Error)]
pub enum LoginFailure {
    #[error("too many failed logins; try again in {} s", .0.as_secs().max(1))]
    Throttled(Duration),
    #[error("{0}")]
    Login(#[from] LoginError),
}

/// The login machinery of a server.
pub struct Auth {
    /// Grants from `[auth]` and from the database; replaced whole when an
    /// administrator changes a grant.
    policy: std::sync::RwLock<std::sync::Arc<Policy>>,
    pub sessions: Sessions,
    /// One-time login links (`/login?code=`).
    pub links: haven_auth::session::OneTimeCodes,
    throttle: Throttle,
    config: AuthSection,
    /// `haven-pam-helper`, which runs PAM for each login.
    pam_helper: PathBuf,
}

impl Auth {
    /// Builds it from `[auth]`; the error names a bad grant. A PAM helper
    /// that cannot work is logged (LDAP logins may still), not an error.
    pub fn new(config: &AuthSection) -> Result<Auth, String> {
        let pam_helper = haven_auth::pam_helper::resolve_path(&config.pam_helper);
        if let Err(e) = haven_auth::pam::helper_status(&pam_helper) {
            tracing::warn!("logins of OS accounts (PAM) will fail: {e}");
        }
        let service_file = std::path::Path::new("/etc/pam.d").join(&config.pam_service);
        if !service_file.exists() {
            tracing::warn!(
                "logins of OS accounts (PAM) will fail: {} is missing; install it with \
                 `haven setup pam --service {}` (as root)",
                service_file.display(),
                config.pam_service
            );
        }
        Ok(Auth {
            policy: std::sync::RwLock::new(std::sync::Arc::new(config.policy()?)),
            sessions: Sessions::new(SessionLimits {
                idle: Duration::from_secs(config.idle_minutes.max(1) * 60),
                absolute: Duration::from_secs(config.max_hours.max(1) * 3600),
            }),
            links: haven_auth::session::OneTimeCodes::new(Duration::from_secs(600)),
            throttle: Throttle::new(config.max_failures.max(1), Duration::from_secs(600)),
            config: config.clone(),
            pam_helper,
        })
    }

    /// Checks a password and opens a session; returns the token and who.
    pub async fn login(
        &self,
        user: &str,
        password: &str,
        source: &str,
    ) -> Result<(String, Identity), LoginFailure> {
        let user_key = format!("user:{user}");
        let source_key = format!("source:{source}");
        let keys = [user_key.as_str(), source_key.as_str()];
        self.throttle
            .check(&keys, Instant::now())
            .map_err(LoginFailure::Throttled)?;
        let directory = self
            .config
            .ldap
            .as_ref()
            .and_then(|ldap| Some((ldap, ldap.account(user)?)));
        let outcome = match directory {
            Some((ldap, name)) => haven_auth::ldap::authenticate(ldap, name, password)
                .await
                .map(|u| Identity {
                    user: user.to_string(),
                    groups: u.groups,
                }),
            None => {
                // Always through the helper, root or not: PAM modules never
                // run inside this long-lived, multi-threaded process.
                let (helper, service, name, pw) = (
                    self.pam_helper.clone(),
                    self.config.pam_service.clone(),
                    user.to_string(),
                    password.to_string(),
                );
                tokio::task::spawn_blocking(move || {
                    haven_auth::pam::authenticate_with_helper(&helper, &service, &name, &pw).map(
                        |()| Identity {
                            groups: haven_auth::pam::os_groups(&name),
                            user: name,
                        },
                    )
                })
                .await
                .map_err(|e| LoginError::Pam(e.to_string()))?
                .inspect_err(|e| {
                    if let LoginError::Unavailable(why) | LoginError::Pam(why) = e {
                        tracing::error!(source, "PAM login impossible: {why}");
                    }
                })
            }
        };
        match outcome {
            Ok(identity) => {
                self.throttle.succeeded(&user_key);
                let token = self
                    .sessions
                    .open(identity.clone(), Instant::now())
                    .map_err(|e| LoginError::Pam(format!("cannot make a session token: {e}")))?;
                tracing::info!(user, source, "login");
                Ok((token, identity))
            }
            Err(e) => {
                if matches!(e, LoginError::Rejected { .. } | LoginError::Expired { .. }) {
                    self.throttle.failed(&keys, Instant::now());
                }
                if let LoginError::Rejected { detail } = &e {
                    // The detail (unknown user or wrong password) is for
                    // the log only.
                    tracing::warn!(source, "failed login: {detail}");
                }
                Err(e.into())
            }
        }
    }

    /// The roles in force now.
    pub fn policy(&self) -> std::sync::Arc<Policy> {
        self.policy
            .read()
            .unwrap_or_else(|p| p.into_inner())
            .clone()
    }

    /// Puts new roles in force (for every later check).
    pub fn set_policy(&self, policy: Policy) {
        *self.policy.write().unwrap_or_else(|p| p.into_inner()) = std::sync::Arc::new(policy);
    }

    pub fn idle(&self) -> Duration {
        Duration::from_secs(self.config.idle_minutes.max(1) * 60)
    }
}
