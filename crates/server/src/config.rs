//! `haven.toml`: the server's one configuration file.
//!
//! Every key has a default, so an empty file (or none) is a working
//! configuration; [`DEFAULT_CONFIG`] is the commented file that
//! `haven server --print-default-config` writes, and a test checks it
//! parses to exactly [`ServerConfig::default`].

use std::path::{Path, PathBuf};
use std::time::Duration;

use serde::{Deserialize, Serialize};

/// The commented default configuration.
pub const DEFAULT_CONFIG: &str = r#"# haven.toml: configuration of `haven server`. Every key is optional;
# the values below are the defaults.

[server]
# Address of the web console and the REST API (HTTPS). Every interface by
# default: every call but /api/v1/login, /api/v1/health and the OpenAPI
# document needs a login, and everything goes over TLS.
listen = "0.0.0.0:8440"
# Serve plain HTTP instead of HTTPS. For development only, and only on a
# loopback address (the server refuses to start otherwise). The command
# line flag --insecure-plain-http sets it too.
insecure_plain_http = false
# Directory for the database (haven.db) and other state. Relative paths
# are relative to the directory `haven server` runs in.
data_dir = "haven-data"

[database]
# Where the database is. Empty: the SQLite file DATA_DIR/haven.db. Or a
# PostgreSQL database, by its URL (see docs/database.md), e.g.
#   url = "postgres://haven:PASSWORD@db.example.com:5432/haven"
# The environment variable HAVEN_DATABASE_URL, when set and not empty,
# wins over this key, so the password need not be in this file.
url = ""
# Backups: a consistent copy of the database, taken while the server keeps
# running (also: `haven db backup FILE`, POST /api/v1/db/backups). Every
# this many hours (0: no scheduled backups), into backup_dir (relative to
# data_dir), keeping the newest backup_keep copies. SQLite only: back a
# PostgreSQL database up with pg_dump or your PostgreSQL backup.
backup_every_hours = 24
backup_dir = "backups"
backup_keep = 7
# History older than this many days is pruned once a day, keeping each
# object's last state change before the cut-off (0: keep everything). The
# audit (operations, access log) has its own, longer retention.
retention_days = 0
audit_retention_days = 0

[links]
# First reconnect delay after a link to an engine breaks; doubles on each
# failure (with +-25% jitter) up to max_backoff_ms.
initial_backoff_ms = 500
max_backoff_ms = 30000
# How long to wait for an engine to accept a connection and answer hello.
connect_timeout_ms = 5000
# A connected link that has heard nothing (not even a heartbeat) for this
# long is shown as "stale", and dropped and redialled after twice as long.
stale_after_ms = 15000

[history]
# Events are written to the database in batches of at most this many,
# or after flush_interval_ms, whichever comes first.
batch_max = 2000
flush_interval_ms = 100
# Events waiting to be written before links are slowed down.
queue_capacity = 50000

[tls]
# On first start the server creates the fleet's certificate authority
# (DATA_DIR/pki/ca.pem; connectors trust it) and a server certificate
# signed by it, for HTTPS and the connector port. Extra DNS names or IP
# addresses for that certificate (localhost, 127.0.0.1, ::1 and this
# host's name are always in it):
names = []
# Or serve HTTPS with a certificate of your own (PEM files: the chain,
# leaf first, and its private key), e.g. one your browsers already trust.
# Connectors still use the fleet CA.
certificate = ""
private_key = ""

[connectors]
# Where cluster connectors dial in (TLS, with the server's own CA; joining
# needs a one-time token from POST /api/v1/tokens).
listen = "0.0.0.0:8441"
# How long a join token stays valid.
token_ttl_secs = 3600

[peers]
# Peer management servers: pair this server with one at another site
# (`haven peer token` there, `haven peer add` here) and each shows and
# operates the clusters of both. See docs/peers.md.
# This site's name: its clusters are SITE:CLUSTER at the other site.
# Default: this host's name.
site = ""
# Where paired sites' servers connect (mutual TLS with the fleet CAs).
listen = "0.0.0.0:8443"
# The HOST:PORT paired sites dial to reach this server (given to them when
# pairing); it must be a name or address in this server's certificate
# ([tls] names). Default: this host's name and the listen port.
advertise = ""
# How long a pairing token stays valid.
token_ttl_secs = 3600

[group]
# A clustered server: several `haven server` on one PostgreSQL database
# ([database] url), one of them active (it holds the links and writes
# history), the others standing by to take over within seconds when it
# dies. Every server of a group has the same [database] url and its own
# server_id. See docs/clustered.md.
enabled = false
# This server's name in the group. Default: this host's name.
server_id = ""
# How long the active server's lease lasts unless renewed (it renews it
# five times as often): a server that stops answering is replaced after
# this long; one that dies outright, at once.
lease_ms = 5000
# Where people and tools reach this server (https://HOST:PORT); standbys
# forward requests there while this one is active. Default: this host's
# name (or the listen address, when it names one) and the API's port.
api_url = ""
# Where connectors reach this server (HOST:PORT); each connector is told
# every server's, and dials the next when one does not answer. Default:
# as api_url, with the connector port.
connector_address = ""

[sql]
# Read-only SQL access for psql, JDBC and ODBC drivers and BI tools: the
# PostgreSQL wire protocol, with the same logins and roles as the API, on
# documented views of the history and configuration (docs/sql.md).
# Clients use TLS with the API's certificate (required beyond this host);
# with logins off or plain HTTP it listens on a loopback address only.
enabled = true
listen = "127.0.0.1:8442"

[auth]
# Require a login (an OS account: PAM, or LDAP for user@domain) on every
# API call except /api/v1/login, /api/v1/health and the OpenAPI document.
# Turning it off (development only) is allowed only on a loopback address;
# then the X-Haven-User header names whoever asks.
enabled = true
# The PAM service (/etc/pam.d/NAME) that checks local accounts.
pam_service = "haven"
# The small program that runs PAM for each login (PAM modules never run
# inside the server). Empty: haven-pam-helper next to the haven binary.
# A server that is not root needs it setuid root, and only the server's
# group may run it (anyone who can run it can try passwords):
#   chown root:haven PATH && chmod 4750 PATH
# See docs/authentication.md.
pam_helper = ""
# Sessions end after this many minutes unused, or hours after login.
idle_minutes = 30
max_hours = 12
# Failed logins allowed per user and per source in 10 minutes.
max_failures = 5
# Who manages the server itself (clusters, tokens, grants, the access
# log): user names, or @group for an OS group.
server_admins = ["root"]
# Roles on clusters, as HA administrators know them: guest,
# group_operator, group_administrator, cluster_operator,
# cluster_administrator; for a `user` or an OS `group`; on every cluster,
# one `cluster`, or one `service_group` of a cluster.
#
# [[auth.grant]]
# group = "ha-ops"
# role = "cluster_operator"
# cluster = "prod-db"
#
# More grants can be made at run time (POST /api/v1/grants); those are
# kept in the database.

# Directory accounts (user@domain) through LDAP or Active Directory: a
# login binds as the user, then reads their groups.
#
# [auth.ldap]
# url = "ldaps://ldap.example.com:636"   # or ldap://HOST:389 with starttls
# starttls = false
# ca_file = "/etc/haven/ldap-ca.pem"      # the directory's CA (system store if unset)
# user_base = "ou=people,dc=example,dc=com"
# user_filter = "(uid={user})"            # AD: "(sAMAccountName={user})"
# group_base = "ou=groups,dc=example,dc=com"
# group_filter = "(|(memberUid={user})(member={dn}))"
# group_name_attr = "cn"
# bind_dn = "cn=haven,dc=example,dc=com" # optional search account
# bind_password = "..."
# timeout_secs = 10
# domains = ["example.com"]             # user@example.com logs in here; any other
#                                        # name is a local (PAM) account. Empty or
#                                        # unset: every user@domain.

[alerts]
# Conditions that need someone raise alerts (GET /api/v1/alerts): a faulted
# resource, group or system, a failover, a concurrency violation, a cluster
# the server has lost, an object left frozen. They clear themselves when
# the condition ends, and can be acknowledged.
enabled = true
# A cluster unreachable (or silent) this long raises `disconnected_cluster`.
disconnect_grace_secs = 30
# A group or system frozen this long raises `frozen_group` / `frozen_system`
# (0: never).
frozen_after_secs = 86400
# An alert raised and cleared more than flap_changes times within
# flap_window_secs is flapping: one notification says so, the rest are held
# back until it has been quiet for a whole window (0: never).
flap_changes = 6
flap_window_secs = 600
# Notifications waiting per channel; beyond that new ones are dropped (and
# the drop is recorded in GET /api/v1/alerts/deliveries).
queue_capacity = 1000
#
# Where notifications go: channels, each with a name, and policies that
# send alerts to them. Every attempt is recorded; failures are retried
# with backoff and never hold up the server.
#
# [[alerts.channel]]
# name = "oncall-mail"
# type = "smtp"
# host = "mail.example.com"
# port = 587
# starttls = "required"                  # required, optional or off
# username = "haven"                     # optional; sent over TLS only
# password = "..."
# from = "haven@example.com"
# to = ["oncall@example.com"]
# ca_file = "/etc/haven/mail-ca.pem"     # optional; else the system's CAs
#
# [[alerts.channel]]
# name = "chatops"
# type = "webhook"
# url = "https://hooks.example.com/haven"
# secret = "at-least-16-random-characters"   # X-Haven-Signature: sha256=HMAC
# retries = 5
#
# [[alerts.channel]]
# name = "syslog"
# type = "syslog"
# address = "/dev/log"                   # or HOST:PORT (UDP, RFC 5424)
# facility = "daemon"
#
# [[alerts.policy]]
# name = "critical to on-call"
# min_severity = "critical"              # info, warning or critical
# cluster = "prod-*"                     # a glob on the cluster
# kinds = []                             # empty: every kind
# object = "*"                           # a glob on the group, resource or system
# tags = ["env=prod"]                    # every tag carried by the alert's cluster,
#                                        # group or system (values may be globs;
#                                        # a key alone: any value); empty: any
# channels = ["oncall-mail", "chatops"]

# Availability reports mailed on a schedule (GET /api/v1/reports/availability
# gives the same at any time): the report of the last `period`, `daily` or
# `weekly` (Mondays) at `at` (UTC), with the CSV attached, through an smtp
# [[alerts.channel]] to its own list of addresses. Each sending shows in the
# delivery log (GET /api/v1/alerts/deliveries, event report:NAME).
#
# [[reports.schedule]]
# name = "weekly availability"
# every = "weekly"                       # daily or weekly
# at = "06:00"                           # UTC
# period = "7d"                          # how far back: 24h, 7d, 30d...
# cluster = "prod-db"                    # optional: only this cluster
# tag = "env=prod"                       # optional: only groups carrying these tags
# to = ["ops@example.com"]
# channel = "oncall-mail"                # an [[alerts.channel]] of type smtp

# Clusters to manage through a direct connection to their engine. More can
# be added (and removed) at run time through the API; those are kept in the
# database. A cluster listed here is (re)added at every start.
#
# [[cluster]]
# name = "prod-db"               # must match the engine's cluster name
# address = "10.0.0.5:14141"     # the engine's socket; tls://HOST:PORT for an engine
#                                # started with --tls-cert (haven setup engine-cert)
# user = "admin"                 # if the engine's main.cf sets UserNames
# password = "secret"
"#;

/// The environment variable that names the database (a PostgreSQL URL),
/// winning over `[database] url`.
pub const DATABASE_URL_ENV: &str = "HAVEN_DATABASE_URL";

/// Where the server's database is.
#[derive(Clone, PartialEq, Eq)]
pub enum Database {
    /// The SQLite file in the data directory.
    Sqlite(PathBuf),
    /// A PostgreSQL database, by URL (which may hold a password: show it
    /// with `Display`, which leaves the password out).
    Postgres(String),
}

impl Database {
    pub fn is_postgres(&self) -> bool {
        matches!(self, Database::Postgres(_))
    }
}

impl std::fmt::Display for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Database::Sqlite(path) => write!(f, "the SQLite file {}", path.display()),
            Database::Postgres(url) => match haven_store::describe_postgres_url(url) {
                Some(shown) => write!(f, "the PostgreSQL database {shown}"),
                None => f.write_str("a PostgreSQL database (its URL cannot be read)"),
            },
        }
    }
}

impl std::fmt::Debug for Database {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "{self}")
    }
}

/// The whole configuration.
#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerConfig {
    pub server: ServerSection,
    pub database: DatabaseSection,
    pub links: LinkSection,
    pub history: HistorySection,
    pub tls: TlsSection,
    pub connectors: ConnectorSection,
    pub peers: PeersSection,
    pub group: GroupSection,
    pub sql: SqlSection,
    pub auth: AuthSection,
    pub alerts: crate::alerts::AlertsSection,
    pub reports: crate::reports::schedule::ReportsSection,
    #[serde(rename = "cluster")]
    pub clusters: Vec<ClusterEntry>,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ServerSection {
    pub listen: String,
    pub data_dir: PathBuf,
    pub insecure_plain_http: bool,
}

impl Default for ServerSection {
    fn default() -> Self {
        ServerSection {
            listen: "0.0.0.0:8440".into(),
            data_dir: PathBuf::from("haven-data"),
            insecure_plain_http: false,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct TlsSection {
    pub names: Vec<String>,
    pub certificate: PathBuf,
    pub private_key: PathBuf,
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct DatabaseSection {
    /// Empty: SQLite in the data directory; else a PostgreSQL URL.
    /// [`DATABASE_URL_ENV`] wins over it (see [`ServerConfig::database`]).
    pub url: String,
    pub backup_every_hours: u64,
    pub backup_dir: PathBuf,
    pub backup_keep: usize,
    pub retention_days: u64,
    pub audit_retention_days: u64,
}

impl Default for DatabaseSection {
    fn default() -> Self {
        DatabaseSection {
            url: String::new(),
            backup_every_hours: 24,
            backup_dir: PathBuf::from("backups"),
            backup_keep: 7,
            retention_days: 0,
            audit_retention_days: 0,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct LinkSection {
    pub initial_backoff_ms: u64,
    pub max_backoff_ms: u64,
    pub connect_timeout_ms: u64,
    pub stale_after_ms: u64,
}

impl Default for LinkSection {
    fn default() -> Self {
        LinkSection {
            initial_backoff_ms: 500,
            max_backoff_ms: 30_000,
            connect_timeout_ms: 5_000,
            stale_after_ms: 15_000,
        }
    }
}

impl LinkSection {
    pub fn initial_backoff(&self) -> Duration {
        Duration::from_millis(self.initial_backoff_ms.max(10))
    }
    pub fn max_backoff(&self) -> Duration {
        Duration::from_millis(self.max_backoff_ms.max(self.initial_backoff_ms.max(10)))
    }
    pub fn connect_timeout(&self) -> Duration {
        Duration::from_millis(self.connect_timeout_ms.max(100))
    }
    pub fn stale_after(&self) -> Duration {
        Duration::from_millis(self.stale_after_ms.max(1000))
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct HistorySection {
    pub batch_max: usize,
    pub flush_interval_ms: u64,
    pub queue_capacity: usize,
}

impl Default for HistorySection {
    fn default() -> Self {
        HistorySection {
            batch_max: 2000,
            flush_interval_ms: 100,
            queue_capacity: 50_000,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct ConnectorSection {
    pub listen: String,
    pub token_ttl_secs: u64,
}

impl Default for ConnectorSection {
    fn default() -> Self {
        ConnectorSection {
            listen: "0.0.0.0:8441".into(),
            token_ttl_secs: 3600,
        }
    }
}

/// `[peers]`: pairing with servers at other sites.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct PeersSection {
    pub site: String,
    pub listen: String,
    pub advertise: String,
    pub token_ttl_secs: u64,
}

impl Default for PeersSection {
    fn default() -> Self {
        PeersSection {
            site: String::new(),
            listen: "0.0.0.0:8443".into(),
            advertise: String::new(),
            token_ttl_secs: 3600,
        }
    }
}

impl PeersSection {
    /// The site's name: as configured, else this host's name.
    pub fn site_name(&self) -> String {
        if !self.site.is_empty() {
            return self.site.clone();
        }
        crate::tls::host_name()
            .map(|h| {
                h.split('.')
                    .next()
                    .unwrap_or(&h)
                    .chars()
                    .filter(|c| c.is_ascii_alphanumeric() || "_-".contains(*c))
                    .collect::<String>()
            })
            .filter(|h| !h.is_empty())
            .unwrap_or_else(|| "local".into())
    }
}

/// `[group]`: a clustered server (see `group.rs`).
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct GroupSection {
    pub enabled: bool,
    pub server_id: String,
    pub lease_ms: u64,
    pub api_url: String,
    pub connector_address: String,
}

impl Default for GroupSection {
    fn default() -> Self {
        GroupSection {
            enabled: false,
            server_id: String::new(),
            lease_ms: 5000,
            api_url: String::new(),
            connector_address: String::new(),
        }
    }
}

impl GroupSection {
    /// This server's id: as configured, else this host's name.
    pub fn server_id(&self) -> String {
        if !self.server_id.is_empty() {
            return self.server_id.clone();
        }
        crate::tls::host_name().unwrap_or_else(|| "haven".into())
    }

    /// Refuses settings a group cannot run with.
    pub fn check(&self, database: &Database) -> Result<(), String> {
        if !self.enabled {
            return Ok(());
        }
        if matches!(database, Database::Sqlite(_)) {
            return Err("[group] enabled needs a PostgreSQL database shared by every server of the group: set [database] url (or HAVEN_DATABASE_URL)".into());
        }
        if !crate::valid_cluster_name(&self.server_id()) {
            return Err(format!(
                "[group] server_id `{}`: use letters, digits, `_`, `-` and `.`",
                self.server_id()
            ));
        }
        if !(500..=600_000).contains(&self.lease_ms) {
            return Err(format!(
                "[group] lease_ms = {}: give 500 to 600000 milliseconds",
                self.lease_ms
            ));
        }
        Ok(())
    }
}

/// `[sql]`: the read-only SQL port.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SqlSection {
    pub enabled: bool,
    pub listen: String,
}

impl Default for SqlSection {
    fn default() -> Self {
        SqlSection {
            enabled: true,
            listen: "127.0.0.1:8442".into(),
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AuthSection {
    pub enabled: bool,
    pub pam_service: String,
    /// The PAM helper; empty = `haven-pam-helper` next to the executable.
    pub pam_helper: PathBuf,
    pub idle_minutes: u64,
    pub max_hours: u64,
    pub max_failures: usize,
    pub server_admins: Vec<String>,
    #[serde(rename = "grant")]
    pub grants: Vec<GrantEntry>,
    /// Directory logins for `user@domain`.
    pub ldap: Option<haven_auth::ldap::LdapConfig>,
}

impl Default for AuthSection {
    fn default() -> Self {
        AuthSection {
            enabled: true,
            pam_service: haven_auth::pam::DEFAULT_SERVICE.into(),
            pam_helper: PathBuf::new(),
            idle_minutes: 30,
            max_hours: 12,
            max_failures: 5,
            server_admins: vec!["root".into()],
            grants: Vec::new(),
            ldap: None,
        }
    }
}

/// One `[[auth.grant]]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct GrantEntry {
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub group: Option<String>,
    pub role: haven_auth::roles::Role,
    #[serde(default)]
    pub cluster: Option<String>,
    #[serde(default)]
    pub service_group: Option<String>,
}

impl AuthSection {
    /// The grants and administrators as a policy; the error names the bad
    /// grant.
    pub fn policy(&self) -> Result<haven_auth::roles::Policy, String> {
        self.policy_with(&[])
    }

    /// The grants of `[auth]` plus `more` (those made through the API).
    pub fn policy_with(&self, more: &[GrantEntry]) -> Result<haven_auth::roles::Policy, String> {
        use haven_auth::roles::{Policy, Principal};
        let mut grants = Vec::new();
        for (i, g) in self.grants.iter().chain(more).enumerate() {
            grants.push(
                g.to_grant()
                    .map_err(|e| format!("[[auth.grant]] #{}: {e}", i + 1))?,
            );
        }
        let server_admins = self
            .server_admins
            .iter()
            .map(|a| match a.strip_prefix('@') {
                Some(g) => Principal::Group(g.into()),
                None => Principal::User(a.clone()),
            })
            .collect();
        Ok(Policy {
            grants,
            server_admins,
        })
    }
}

impl GrantEntry {
    /// The grant this entry means, or what is wrong with it.
    pub fn to_grant(&self) -> Result<haven_auth::roles::Grant, String> {
        use haven_auth::roles::{Grant, Principal, Scope};
        let g = self;
        let principal = match (&g.user, &g.group) {
            (Some(u), None) if !u.is_empty() => Principal::User(u.clone()),
            (None, Some(gr)) if !gr.is_empty() => Principal::Group(gr.clone()),
            _ => return Err("give exactly one of `user` or `group`".into()),
        };
        let scope = match (&g.cluster, &g.service_group) {
            (None, None) => Scope::Fleet,
            (Some(c), None) => Scope::Cluster { cluster: c.clone() },
            (Some(c), Some(sg)) => Scope::Group {
                cluster: c.clone(),
                group: sg.clone(),
            },
            (None, Some(_)) => return Err("`service_group` needs its `cluster`".into()),
        };
        let grant = Grant {
            principal,
            role: g.role,
            scope,
        };
        grant.validate()?;
        Ok(grant)
    }
}

/// A cluster reached by a direct connection.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct ClusterEntry {
    pub name: String,
    pub address: String,
    #[serde(default)]
    pub user: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
}

impl ServerConfig {
    /// Reads a configuration file; errors name the file and the key.
    pub fn load(path: &Path) -> anyhow::Result<Self> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| anyhow::anyhow!("cannot read {}: {e}", path.display()))?;
        Self::parse(&text).map_err(|e| anyhow::anyhow!("{}: {e}", path.display()))
    }

    pub fn parse(text: &str) -> Result<Self, toml::de::Error> {
        toml::from_str(text)
    }

    /// Where the database is: [`DATABASE_URL_ENV`] if it is set and not
    /// empty, else `[database] url` if not empty, else the SQLite file in
    /// the data directory.
    pub fn database(&self) -> Database {
        self.database_with_env(std::env::var(DATABASE_URL_ENV).ok())
    }

    /// [`Self::database`], with the environment's value given.
    pub fn database_with_env(&self, env_url: Option<String>) -> Database {
        let url = env_url
            .filter(|u| !u.trim().is_empty())
            .unwrap_or_else(|| self.database.url.clone());
        if url.trim().is_empty() {
            Database::Sqlite(self.database_path())
        } else {
            Database::Postgres(url.trim().to_string())
        }
    }

    /// The SQLite database file (used when no PostgreSQL URL is set).
    pub fn database_path(&self) -> PathBuf {
        self.server.data_dir.join("haven.db")
    }

    /// Where backups go.
    pub fn backup_dir(&self) -> PathBuf {
        self.server.data_dir.join(&self.database.backup_dir)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_commented_default_config_is_the_default() {
        assert_eq!(
            ServerConfig::parse(DEFAULT_CONFIG).unwrap(),
            ServerConfig::default()
        );
        assert_eq!(ServerConfig::parse("").unwrap(), ServerConfig::default());
    }

    #[test]
    fn the_commented_examples_are_valid_when_uncommented() {
        for (first, last) in [
            ("# [auth.ldap]", "# domains"),
            ("# [[auth.grant]]", "# cluster = "),
            ("# [[cluster]]", "# password"),
            ("# [[alerts.channel]]", "# channels = "),
            ("# [[reports.schedule]]", "# channel = "),
        ] {
            let start = DEFAULT_CONFIG.find(first).unwrap();
            let end = start + DEFAULT_CONFIG[start..].find(last).unwrap();
            let end = end + DEFAULT_CONFIG[end..].find('\n').unwrap();
            let text: String = DEFAULT_CONFIG[start..end]
                .lines()
                .map(|l| format!("{}\n", l.trim_start_matches("# ")))
                .collect();
            let config = ServerConfig::parse(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
            config
                .alerts
                .check()
                .unwrap_or_else(|e| panic!("{text}\n{e}"));
        }
    }

    #[test]
    fn the_database_url_example_is_valid_when_uncommented() {
        let line = DEFAULT_CONFIG
            .lines()
            .find(|l| l.contains("url = \"postgres://"))
            .unwrap();
        let text = format!("[database]\n{}\n", line.trim_start_matches(['#', ' ']));
        let config = ServerConfig::parse(&text).unwrap_or_else(|e| panic!("{text}\n{e}"));
        assert!(config.database_with_env(None).is_postgres());
    }

    #[test]
    fn the_environment_url_wins_over_the_file_and_empty_means_sqlite() {
        let mut config = ServerConfig::default();
        config.server.data_dir = PathBuf::from("d");
        let sqlite = Database::Sqlite(PathBuf::from("d/haven.db"));
        assert_eq!(config.database_with_env(None), sqlite);
        assert_eq!(config.database_with_env(Some(" ".into())), sqlite);
        let env = "postgres://env:pw@127.0.0.1:5432/haven";
        assert_eq!(
            config.database_with_env(Some(env.into())),
            Database::Postgres(env.into())
        );
        config.database.url = "postgres://file:secret@db:5432/haven".into();
        assert_eq!(
            config.database_with_env(Some(env.into())),
            Database::Postgres(env.into())
        );
        let from_file = config.database_with_env(Some(String::new()));
        assert_eq!(from_file, Database::Postgres(config.database.url.clone()));
        let shown = from_file.to_string();
        assert!(
            shown.contains("db:5432/haven as file") && !shown.contains("secret"),
            "{shown}"
        );
        let kv = Database::Postgres("host=db user=haven password=secret".into()).to_string();
        assert!(
            kv.contains("db:5432/haven as haven") && !kv.contains("secret"),
            "{kv}"
        );
        // Every form a URL can carry a password in.
        for url in [
            "postgres://u@h/db?password=secret",
            "postgres://h/db?user=u&password=secret",
            "host=h user=u password='sec ret'",
            "postgres://u:secret@h:5432/db",
        ] {
            let shown = Database::Postgres(url.into()).to_string();
            assert!(
                shown.contains("h:") && !shown.contains("secret") && !shown.contains("ret"),
                "{url}: {shown}"
            );
        }
        let unreadable = Database::Postgres("postgres://u:secret@h:notaport/db".into()).to_string();
        assert!(!unreadable.contains("secret"), "{unreadable}");
    }

    #[test]
    fn an_unknown_key_is_an_error_that_names_it() {
        let err = ServerConfig::parse("[links]\nbackof_ms = 3\n").unwrap_err();
        assert!(err.to_string().contains("backof_ms"), "{err}");
    }

    #[test]
    fn clusters_are_read_from_cluster_tables() {
        let c = ServerConfig::parse(
            "[[cluster]]\nname = \"a\"\naddress = \"127.0.0.1:1\"\n[[cluster]]\nname = \"b\"\naddress = \"127.0.0.1:2\"\nuser = \"admin\"\npassword = \"x\"\n",
        )
        .unwrap();
        assert_eq!(c.clusters.len(), 2);
        assert_eq!(c.clusters[1].user.as_deref(), Some("admin"));
    }
}
