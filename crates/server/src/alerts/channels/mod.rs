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

/// Civil UTC time of `ms` since the epoch: (year, month 1-12, day, hour,
/// minute, second, weekday 0 = Sunday).
fn civil(ms: i64) -> (i64, u32, u32, u32, u32, u32, u32) {
    let secs = ms.div_euclid(1000);
    let (days, rem) = (secs.div_euclid(86_400), secs.rem_euclid(86_400));
    // Howard Hinnant's days-to-civil.
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z.rem_euclid(146_097);
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let day = (doy - (153 * mp + 2) / 5 + 1) as u32;
    let month = if mp < 10 { mp + 3 } else { mp - 9 } as u32;
    let year = yoe + era * 400 + i64::from(month <= 2);
    let weekday = (days + 4).rem_euclid(7) as u32;
    (
        year,
        month,
        day,
        (rem / 3600) as u32,
        (rem % 3600 / 60) as u32,
        (rem % 60) as u32,
        weekday,
    )
}

/// RFC 3339 in UTC with milliseconds: `2026-12-03T05:30:56.123Z`.
pub fn rfc3339(ms: i64) -> String {
    let (y, mo, d, h, mi, s, _) = civil(ms);
    format!(
        "{y:04}-{mo:02}-{d:02}T{h:02}:{mi:02}:{s:02}.{:03}Z",
        ms.rem_euclid(1000)
    )
}

/// RFC 5322 (mail `Date:`): `Thu, 03 Dec 2026 05:30:56 +0000`.
pub fn rfc5322(ms: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let (y, mo, d, h, mi, s, wd) = civil(ms);
    format!(
        "{}, {d:02} {} {y:04} {h:02}:{mi:02}:{s:02} +0000",
        DAYS[wd as usize],
        MONTHS[mo as usize - 1]
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
    let config = tls_config(ca_file)?;
    let name = tokio_rustls::rustls::pki_types::ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a host name or address"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
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
