//! Where notifications go, one file per kind of channel, each behind the
//! one [`Channel`] trait: adding a kind is a new file beside these.

pub mod smtp;
pub mod syslog;
pub mod webhook;

use std::path::Path;
use std::sync::Arc;

use tokio_rustls::rustls::ClientConfig;

use super::notify::Notification;
use super::settings::ChannelEntry;

/// Delivers one notification, once; the caller retries.
#[async_trait::async_trait]
pub trait Channel: Send + Sync {
    /// `Err` says why, for the delivery log.
    async fn send(&self, n: &Notification) -> Result<(), String>;
}

/// The channel of a `[[alerts.channel]]` entry.
pub fn build(entry: &ChannelEntry) -> Arc<dyn Channel> {
    match entry {
        ChannelEntry::Smtp(c) => Arc::new(smtp::Smtp::new(c.clone())),
        ChannelEntry::Webhook(c) => Arc::new(webhook::Webhook::new(c.clone())),
        ChannelEntry::Syslog(c) => Arc::new(syslog::Syslog::new(c.clone())),
    }
}

/// Whom a channel's TLS trusts: the CAs of `ca_file`, or the system's.
/// Read at each use, so a replaced file needs no restart.
fn tls_config(ca_file: Option<&Path>) -> Result<Arc<ClientConfig>, String> {
    let roots = match ca_file {
        Some(path) => Arc::new(
            haven_pki::roots_from_file(path)
                .map_err(|e| format!("ca_file {}: {e}", path.display()))?,
        ),
        None => haven_pki::system_roots().map_err(|e| {
            format!("{e}; set ca_file to the CA that signed the peer's certificate")
        })?,
    };
    Ok(haven_pki::client_config_with_roots(roots))
}

/// RFC 3339 in UTC with milliseconds: `2026-12-03T05:30:56.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let c = haven_model::clock::civil(ms);
    format!(
        "{:04}-{:02}-{:02}T{:02}:{:02}:{:02}.{:03}Z",
        c.year, c.month, c.day, c.hour, c.minute, c.second, c.millisecond
    )
}

/// RFC 5322 (mail `Date:`): `Thu, 03 Dec 2026 05:30:56 +0000`.
pub fn rfc5322(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let c = haven_model::clock::civil(ms);
    format!(
        "{}, {:02} {} {:04} {:02}:{:02}:{:02} +0000",
        DAYS[c.weekday as usize],
        c.day,
        MONTHS[c.month as usize - 1],
        c.year,
        c.hour,
        c.minute,
        c.second
    )
}

/// Upgrades a connection to TLS for `host`, trusting `ca_file` (or the
/// system's CAs).
async fn upgrade<S>(
    stream: S,
    host: &str,
    ca_file: Option<&Path>,
) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    haven_pki::connect_tls(stream, host, tls_config(ca_file)?)
        .await
        .map_err(|e| format!("TLS to {host} failed: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn times_are_written_in_utc() {
        // 2026-12-03T05:30:56.123Z was a Thursday.
        let ms = 1_796_275_856_123;
        assert_eq!(rfc3339(ms), "2026-12-03T05:30:56.123Z");
        assert_eq!(rfc5322(ms), "Thu, 03 Dec 2026 05:30:56 +0000");
        assert_eq!(rfc3339(0), "1970-01-01T00:00:00.000Z");
        assert_eq!(rfc5322(951_782_400_000), "Tue, 29 Feb 2000 00:00:00 +0000");
    }
}
