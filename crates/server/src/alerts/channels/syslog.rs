//! The syslog channel: one RFC 5424 message per notification, over UDP
//! (`HOST:PORT`) or to a local Unix datagram socket (`/dev/log`).

use super::super::notify::Notification;
use super::super::settings::{facility_code, SyslogChannel};
use super::Channel;
use haven_store::AlertSeverity;

/// Sends to one syslog daemon.
pub struct Syslog {
    config: SyslogChannel,
}

impl Syslog {
    pub fn new(config: SyslogChannel) -> Syslog {
        Syslog { config }
    }
}

/// An RFC 5424 structured-data value: `"`, `\` and `]` escaped.
fn sd(value: &str) -> String {
    value
        .replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace(']', "\\]")
}

/// The message: `<PRI>1 TIME HOST haven - ALERT [haven@32473 ...] TEXT`.
/// Severity: critical 2, warning 4, info 6; a clear or a settle 5
/// (notice).
pub fn line(facility: u8, n: &Notification) -> String {
    let severity = match (n.event, n.alert.severity) {
        ("cleared" | "settled", _) => 5,
        (_, AlertSeverity::Critical) => 2,
        (_, AlertSeverity::Warning) => 4,
        (_, AlertSeverity::Info) => 6,
    };
    let a = &n.alert;
    let mut fields = format!(
        "id=\"{}\" event=\"{}\" severity=\"{}\" cluster=\"{}\" kind=\"{}\"",
        a.id,
        n.event,
        a.severity,
        sd(&a.cluster),
        sd(&a.kind)
    );
    for (key, value) in [("object", &a.object), ("system", &a.system)] {
        if let Some(v) = value {
            fields.push_str(&format!(" {key}=\"{}\"", sd(v)));
        }
    }
    let host: String = n
        .server
        .chars()
        .filter(|c| c.is_ascii_graphic())
        .take(255)
        .collect();
    format!(
        "<{}>1 {} {} haven - ALERT [haven@32473 {fields}] {}",
        u16::from(facility) * 8 + severity,
        super::rfc3339(n.sent_ms),
        if host.is_empty() { "-" } else { &host },
        n.subject().replace(['\r', '\n'], " ")
    )
}

#[async_trait::async_trait]
impl Channel for Syslog {
    async fn send(&self, n: &Notification) -> Result<(), String> {
        let facility = facility_code(&self.config.facility)
            .ok_or_else(|| format!("unknown facility {}", self.config.facility))?;
        let text = line(facility, n);
        let address = &self.config.address;
        if address.starts_with('/') {
            let socket = tokio::net::UnixDatagram::unbound().map_err(|e| e.to_string())?;
            socket
                .send_to(text.as_bytes(), address)
                .await
                .map_err(|e| format!("cannot send to {address}: {e}"))?;
        } else {
            let bind = if address.starts_with('[') {
                "[::]:0"
            } else {
                "0.0.0.0:0"
            };
            let socket = tokio::net::UdpSocket::bind(bind)
                .await
                .map_err(|e| e.to_string())?;
            socket
                .send_to(text.as_bytes(), address.as_str())
                .await
                .map_err(|e| format!("cannot send to {address}: {e}"))?;
        }
        Ok(())
    }
}
