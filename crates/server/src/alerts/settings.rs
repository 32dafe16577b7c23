//! `[alerts]` in `haven.toml`: the rules' timings, the channels
//! (`[[alerts.channel]]`) and the policies that route alerts to them
//! (`[[alerts.policy]]`). `config.rs` documents every key in
//! `DEFAULT_CONFIG`; [`AlertsSection::check`] says what is wrong with a
//! section before the server starts.

use std::path::PathBuf;

use haven_store::{AlertRecord, AlertSeverity};
use serde::{Deserialize, Serialize};

use super::rules::AlertKind;

/// `[alerts]`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct AlertsSection {
    /// Raise alerts at all.
    pub enabled: bool,
    /// A link down (or silent) this long raises `disconnected_cluster`.
    pub disconnect_grace_secs: u64,
    /// A group or system frozen this long raises `frozen_group` /
    /// `frozen_system` (0: never).
    pub frozen_after_secs: u64,
    /// More raises and clears than this within `flap_window_secs` mark an
    /// alert flapping (0: never).
    pub flap_changes: usize,
    pub flap_window_secs: u64,
    /// Notifications waiting per channel before new ones are dropped.
    pub queue_capacity: usize,
    #[serde(rename = "channel")]
    pub channels: Vec<ChannelEntry>,
    #[serde(rename = "policy")]
    pub policies: Vec<PolicyEntry>,
}

impl Default for AlertsSection {
    fn default() -> Self {
        AlertsSection {
            enabled: true,
            disconnect_grace_secs: 30,
            frozen_after_secs: 86_400,
            flap_changes: 6,
            flap_window_secs: 600,
            queue_capacity: 1000,
            channels: Vec::new(),
            policies: Vec::new(),
        }
    }
}

/// How an SMTP channel uses STARTTLS.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum StartTls {
    /// Refuse to send unless the server offers STARTTLS (the default).
    #[default]
    Required,
    /// Use it when offered, else send in clear (no login then).
    Optional,
    /// Never (a relay on this host or a trusted network; no login).
    Off,
}

fn default_smtp_port() -> u16 {
    587
}
fn default_retries() -> u32 {
    3
}
fn default_webhook_retries() -> u32 {
    5
}
fn default_backoff_ms() -> u64 {
    1000
}
fn default_smtp_timeout() -> u64 {
    30
}
fn default_timeout() -> u64 {
    10
}
fn default_facility() -> String {
    "daemon".into()
}

/// An e-mail channel.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SmtpChannel {
    pub name: String,
    pub host: String,
    #[serde(default = "default_smtp_port")]
    pub port: u16,
    #[serde(default)]
    pub starttls: StartTls,
    /// Log in (AUTH PLAIN) as this user, over TLS only.
    #[serde(default)]
    pub username: Option<String>,
    #[serde(default)]
    pub password: Option<String>,
    pub from: String,
    pub to: Vec<String>,
    /// The PEM of the CA that signed the mail server's certificate
    /// (default: the system's trust store).
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_smtp_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
}

/// An HTTP(S) webhook channel: a signed JSON POST.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct WebhookChannel {
    pub name: String,
    /// `http://HOST[:PORT]/PATH` or `https://...`.
    pub url: String,
    /// The HMAC-SHA256 key of `X-Haven-Signature`.
    pub secret: String,
    #[serde(default)]
    pub ca_file: Option<PathBuf>,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_webhook_retries")]
    pub retries: u32,
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
}

/// A syslog channel: RFC 5424 over UDP, or the local `/dev/log`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct SyslogChannel {
    pub name: String,
    /// `HOST:PORT` (UDP) or the path of a Unix datagram socket.
    pub address: String,
    /// `user`, `daemon`, `auth` or `local0` ... `local7`.
    #[serde(default = "default_facility")]
    pub facility: String,
    #[serde(default = "default_timeout")]
    pub timeout_secs: u64,
    #[serde(default = "default_retries")]
    pub retries: u32,
    #[serde(default = "default_backoff_ms")]
    pub retry_backoff_ms: u64,
}

/// One `[[alerts.channel]]`, by its `type`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(tag = "type", rename_all = "snake_case")]
pub enum ChannelEntry {
    Smtp(SmtpChannel),
    Webhook(WebhookChannel),
    Syslog(SyslogChannel),
}

impl ChannelEntry {
    pub fn name(&self) -> &str {
        match self {
            ChannelEntry::Smtp(c) => &c.name,
            ChannelEntry::Webhook(c) => &c.name,
            ChannelEntry::Syslog(c) => &c.name,
        }
    }

    /// Retries after a failed attempt, the first wait between them
    /// (doubling up to a minute), and the limit of one attempt.
    pub fn timings(&self) -> (u32, std::time::Duration, std::time::Duration) {
        let (retries, backoff, timeout) = match self {
            ChannelEntry::Smtp(c) => (c.retries, c.retry_backoff_ms, c.timeout_secs),
            ChannelEntry::Webhook(c) => (c.retries, c.retry_backoff_ms, c.timeout_secs),
            ChannelEntry::Syslog(c) => (c.retries, c.retry_backoff_ms, c.timeout_secs),
        };
        (
            retries,
            std::time::Duration::from_millis(backoff.max(10)),
            std::time::Duration::from_secs(timeout.max(1)),
        )
    }
}

fn star() -> String {
    "*".into()
}

/// One `[[alerts.policy]]`: which alerts go to which channels.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct PolicyEntry {
    /// For people and logs only.
    #[serde(default)]
    pub name: Option<String>,
    #[serde(default = "lowest")]
    pub min_severity: AlertSeverity,
    /// A glob (`*`, `?`) on the cluster's name.
    #[serde(default = "star")]
    pub cluster: String,
    /// Alert kinds (empty: every kind).
    #[serde(default)]
    pub kinds: Vec<String>,
    /// A glob on the alert's object, group or system.
    #[serde(default = "star")]
    pub object: String,
    /// Tags (`key=value`, the value may be a glob; or a key alone) that
    /// the alert's cluster, group or system must carry, every one (empty:
    /// any alert).
    #[serde(default)]
    pub tags: Vec<String>,
    pub channels: Vec<String>,
}

fn lowest() -> AlertSeverity {
    AlertSeverity::Info
}

impl PolicyEntry {
    /// Whether this policy routes `alert`, whose cluster, group and
    /// system carry the tag sets `carried`.
    pub fn matches_tagged(&self, alert: &AlertRecord, carried: &[&crate::tags::TagSet]) -> bool {
        self.matches(alert)
            && self.tags.iter().all(|t| {
                crate::tags::TagFilter::parse(t).is_ok_and(|f| f.carried(carried.iter().copied()))
            })
    }

    /// Whether this policy routes `alert`, tags aside.
    pub fn matches(&self, alert: &AlertRecord) -> bool {
        let object_matches = || {
            [&alert.object, &alert.service_group, &alert.system]
                .into_iter()
                .flatten()
                .any(|o| glob(&self.object, o))
        };
        alert.severity >= self.min_severity
            && glob(&self.cluster, &alert.cluster)
            && (self.kinds.is_empty() || self.kinds.contains(&alert.kind))
            && (self.object == "*" || object_matches())
    }
}

/// `*` (any run of characters) and `?` (one character) globbing.
pub fn glob(pattern: &str, text: &str) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = (pattern.chars().collect(), text.chars().collect());
    // Classic backtracking on the last `*`: linear for patterns with one.
    let (mut pi, mut ti) = (0, 0);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some((pi, ti));
            pi += 1;
        } else if let Some((sp, st)) = star {
            pi = sp + 1;
            ti = st + 1;
            star = Some((sp, st + 1));
        } else {
            return false;
        }
    }
    p[pi..].iter().all(|c| *c == '*')
}

/// Syslog facility codes by name.
pub fn facility_code(name: &str) -> Option<u8> {
    Some(match name {
        "kern" => 0,
        "user" => 1,
        "mail" => 2,
        "daemon" => 3,
        "auth" => 4,
        "syslog" => 5,
        "local0" => 16,
        "local1" => 17,
        "local2" => 18,
        "local3" => 19,
        "local4" => 20,
        "local5" => 21,
        "local6" => 22,
        "local7" => 23,
        _ => return None,
    })
}

impl AlertsSection {
    /// What is wrong with the section, naming the channel or policy and
    /// the fix.
    pub fn check(&self) -> Result<(), String> {
        let mut names = std::collections::BTreeSet::new();
        for (i, c) in self.channels.iter().enumerate() {
            let at = format!("[[alerts.channel]] #{} ({})", i + 1, c.name());
            if c.name().trim().is_empty() {
                return Err(format!("[[alerts.channel]] #{}: give it a `name`", i + 1));
            }
            if !names.insert(c.name()) {
                return Err(format!("{at}: another channel has that name"));
            }
            match c {
                ChannelEntry::Smtp(m) => {
                    if m.to.is_empty() || m.to.iter().any(|t| !t.contains('@')) {
                        return Err(format!(
                            "{at}: `to` needs at least one address, each user@domain"
                        ));
                    }
                    if !m.from.contains('@') {
                        return Err(format!("{at}: `from` must be an address, user@domain"));
                    }
                    if m.username.is_some() != m.password.is_some() {
                        return Err(format!(
                            "{at}: give both `username` and `password`, or neither"
                        ));
                    }
                    if m.username.is_some() && m.starttls != StartTls::Required {
                        return Err(format!(
                            "{at}: a login is sent over TLS only: set starttls = \"required\" (or drop the login)"
                        ));
                    }
                }
                ChannelEntry::Webhook(w) => {
                    super::channels::webhook::Target::parse(&w.url)
                        .map_err(|e| format!("{at}: url: {e}"))?;
                    if w.secret.len() < 16 {
                        return Err(format!(
                            "{at}: `secret` is the key receivers check signatures with: use at least 16 random characters"
                        ));
                    }
                }
                ChannelEntry::Syslog(s) => {
                    if !s.address.starts_with('/')
                        && s.address
                            .rsplit_once(':')
                            .is_none_or(|(h, p)| h.is_empty() || p.parse::<u16>().is_err())
                    {
                        return Err(format!(
                            "{at}: address `{}`: expected HOST:PORT (UDP) or the path of a socket such as /dev/log",
                            s.address
                        ));
                    }
                    if facility_code(&s.facility).is_none() {
                        return Err(format!(
                            "{at}: facility `{}`: use user, daemon, auth, mail, syslog, kern or local0 ... local7",
                            s.facility
                        ));
                    }
                }
            }
        }
        for (i, p) in self.policies.iter().enumerate() {
            let at = format!(
                "[[alerts.policy]] #{}{}",
                i + 1,
                p.name
                    .as_ref()
                    .map(|n| format!(" ({n})"))
                    .unwrap_or_default()
            );
            if p.channels.is_empty() {
                return Err(format!(
                    "{at}: `channels` names none; list where its alerts go"
                ));
            }
            for c in &p.channels {
                if !names.contains(c.as_str()) {
                    return Err(format!("{at}: no [[alerts.channel]] is named `{c}`"));
                }
            }
            for t in &p.tags {
                crate::tags::TagFilter::parse(t).map_err(|e| format!("{at}: tags: {e}"))?;
            }
            for k in &p.kinds {
                if AlertKind::parse(k).is_none() {
                    let known: Vec<&str> = AlertKind::ALL.iter().map(|k| k.as_str()).collect();
                    return Err(format!("{at}: kind `{k}`: use one of {}", known.join(", ")));
                }
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn globs_match_stars_and_question_marks() {
        assert!(glob("*", ""));
        assert!(glob("prod-*", "prod-db"));
        assert!(!glob("prod-*", "test-db"));
        assert!(glob("*-db", "prod-db"));
        assert!(glob("p?od*db", "prod-main-db"));
        assert!(!glob("prod", "prod-db"));
        assert!(glob("a*b*c", "a-x-b-y-c"));
        assert!(!glob("a*b*c", "a-x-c-y-b"));
    }

    fn alert(cluster: &str, severity: AlertSeverity) -> AlertRecord {
        AlertRecord {
            id: 1,
            cluster: cluster.into(),
            kind: "faulted_resource".into(),
            object: Some("web_ip".into()),
            system: Some("n1".into()),
            service_group: Some("web".into()),
            severity,
            message: String::new(),
            raised_ms: 0,
            cleared_ms: None,
            acknowledged_by: None,
            acknowledged_ms: None,
            flapping: false,
        }
    }

    #[test]
    fn a_policy_selects_by_severity_cluster_kind_and_object() {
        let policy = PolicyEntry {
            name: None,
            min_severity: AlertSeverity::Warning,
            cluster: "prod-*".into(),
            kinds: vec!["faulted_resource".into()],
            object: "web*".into(),
            tags: vec![],
            channels: vec!["mail".into()],
        };
        assert!(policy.matches(&alert("prod-1", AlertSeverity::Warning)));
        assert!(policy.matches(&alert("prod-1", AlertSeverity::Critical)));
        assert!(!policy.matches(&alert("prod-1", AlertSeverity::Info)));
        assert!(!policy.matches(&alert("test-1", AlertSeverity::Critical)));
        let mut other_kind = alert("prod-1", AlertSeverity::Critical);
        other_kind.kind = "failover".into();
        assert!(!policy.matches(&other_kind));
        // The object glob also matches the group or the system.
        let by_system = PolicyEntry {
            object: "n1".into(),
            ..policy.clone()
        };
        assert!(by_system.matches(&alert("prod-1", AlertSeverity::Warning)));
        let mut cluster_wide = alert("prod-1", AlertSeverity::Warning);
        (
            cluster_wide.object,
            cluster_wide.system,
            cluster_wide.service_group,
        ) = (None, None, None);
        assert!(!policy.matches(&cluster_wide));
        let any_object = PolicyEntry {
            object: "*".into(),
            ..policy
        };
        assert!(any_object.matches(&cluster_wide));
    }

    #[test]
    fn a_policy_with_tags_routes_only_alerts_whose_cluster_group_or_system_carry_them() {
        let policy = PolicyEntry {
            name: Some("prod".into()),
            min_severity: AlertSeverity::Info,
            cluster: "*".into(),
            kinds: vec![],
            object: "*".into(),
            tags: vec!["env=prod".into(), "tier".into()],
            channels: vec!["mail".into()],
        };
        let set = |pairs: &[(&str, &str)]| -> crate::tags::TagSet {
            pairs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect()
        };
        let cluster = set(&[("env", "prod")]);
        let group = set(&[("tier", "web")]);
        let system = set(&[("tier", "db"), ("env", "test")]);
        let other = set(&[("env", "test")]);
        let a = alert("c1", AlertSeverity::Warning);
        // Every tag, each carried by the cluster, the group or the system.
        assert!(policy.matches_tagged(&a, &[&cluster, &group]));
        assert!(policy.matches_tagged(&a, &[&other, &system, &cluster]));
        assert!(!policy.matches_tagged(&a, &[&cluster]));
        assert!(!policy.matches_tagged(&a, &[&other, &group]));
        assert!(!policy.matches_tagged(&a, &[]));
        // Without tags, a policy routes whatever carries what.
        let untagged = PolicyEntry {
            tags: vec![],
            ..policy.clone()
        };
        assert!(untagged.matches_tagged(&a, &[]));
        // A value may be a glob; a bad tag is refused when checked.
        let glob = PolicyEntry {
            tags: vec!["env=pr*".into()],
            ..policy
        };
        assert!(glob.matches_tagged(&a, &[&cluster]));
        let text = "[[channel]]\nname = \"log\"\ntype = \"syslog\"\naddress = \"127.0.0.1:514\"\n[[policy]]\nchannels = [\"log\"]\ntags = [\"env=\"]\n";
        let section: AlertsSection = toml::from_str(text).unwrap();
        let err = section.check().unwrap_err();
        assert!(err.contains("[[alerts.policy]] #1: tags:"), "{err}");
    }

    #[test]
    fn a_policy_naming_an_unknown_channel_or_kind_is_refused() {
        let mut section = AlertsSection {
            channels: vec![ChannelEntry::Syslog(SyslogChannel {
                name: "log".into(),
                address: "127.0.0.1:514".into(),
                facility: "daemon".into(),
                timeout_secs: 1,
                retries: 0,
                retry_backoff_ms: 10,
            })],
            policies: vec![PolicyEntry {
                name: None,
                min_severity: AlertSeverity::Info,
                cluster: "*".into(),
                kinds: vec![],
                object: "*".into(),
                tags: vec![],
                channels: vec!["log".into()],
            }],
            ..AlertsSection::default()
        };
        section.check().expect("valid");
        section.policies[0].channels = vec!["mail".into()];
        let err = section.check().unwrap_err();
        assert!(
            err.contains("no [[alerts.channel]] is named `mail`"),
            "{err}"
        );
        section.policies[0].channels = vec!["log".into()];
        section.policies[0].kinds = vec!["fault".into()];
        let err = section.check().unwrap_err();
        assert!(
            err.contains("kind `fault`") && err.contains("faulted_group"),
            "{err}"
        );
    }

    #[test]
    fn an_smtp_login_without_required_starttls_is_refused() {
        let text = r#"
            [[channel]]
            name = "mail"
            type = "smtp"
            host = "mail.example.com"
            starttls = "optional"
            username = "u"
            password = "p"
            from = "haven@example.com"
            to = ["ops@example.com"]
        "#;
        let section: AlertsSection = toml::from_str(text).unwrap();
        let err = section.check().unwrap_err();
        assert!(err.contains("starttls = \"required\""), "{err}");
    }

    #[test]
    fn an_unknown_key_of_a_channel_is_an_error_that_names_it() {
        let text = "[[channel]]\nname = \"h\"\ntype = \"webhook\"\nurl = \"http://x/\"\nsecret = \"0123456789abcdef\"\nretrys = 2\n";
        let err = toml::from_str::<AlertsSection>(text).unwrap_err();
        assert!(err.to_string().contains("retrys"), "{err}");
    }
}
