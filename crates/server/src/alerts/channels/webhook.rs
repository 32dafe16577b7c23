//! The webhook channel: a signed JSON POST to an HTTP(S) URL.
//!
//! The body is the [`Notification`] as JSON. `X-Haven-Signature:
//! sha256=HEX` is the HMAC-SHA256 of the body with the channel's secret
//! (as GitHub signs its webhooks), so a receiver knows it came from this
//! server and was not changed; the body's `sent_ms` lets it refuse
//! replays. Any 2xx answer is a delivery; anything else is retried.

use tokio::io::{AsyncBufReadExt, AsyncWriteExt, BufReader};

use super::super::notify::Notification;
use super::super::settings::WebhookChannel;
use super::Channel;

/// Delivers to one URL.
pub struct Webhook {
    config: WebhookChannel,
}

impl Webhook {
    pub fn new(config: WebhookChannel) -> Webhook {
        Webhook { config }
    }
}

/// `sha256=` and the hex HMAC-SHA256 of `body` under `secret`.
pub fn signature(secret: &str, body: &[u8]) -> String {
    let key = ring::hmac::Key::new(ring::hmac::HMAC_SHA256, secret.as_bytes());
    let tag = ring::hmac::sign(&key, body);
    let hex: String = tag.as_ref().iter().map(|b| format!("{b:02x}")).collect();
    format!("sha256={hex}")
}

#[async_trait::async_trait]
impl Channel for Webhook {
    async fn send(&self, n: &Notification) -> Result<(), String> {
        let target = Target::parse(&self.config.url)?;
        let body = serde_json::to_vec(n).map_err(|e| e.to_string())?;
        let host_header = if target.host.contains(':') {
            format!("[{}]:{}", target.host, target.port)
        } else {
            format!("{}:{}", target.host, target.port)
        };
        let head = format!(
            "POST {} HTTP/1.1\r\nHost: {host_header}\r\nUser-Agent: haven/{}\r\n\
             Content-Type: application/json\r\nContent-Length: {}\r\n\
             X-Haven-Event: {}\r\nX-Haven-Delivery: {}-{}-{}\r\nX-Haven-Signature: {}\r\n\
             Connection: close\r\n\r\n",
            target.path,
            env!("CARGO_PKG_VERSION"),
            body.len(),
            n.event,
            n.alert.id,
            n.event,
            n.sent_ms,
            signature(&self.config.secret, &body),
        );
        let tcp = tokio::net::TcpStream::connect((target.host.as_str(), target.port))
            .await
            .map_err(|e| format!("cannot connect to {}: {e}", host_header))?;
        let status = if target.tls {
            let tls = super::upgrade(tcp, &target.host, self.config.ca_file.as_deref()).await?;
            post(tls, head.as_bytes(), &body).await?
        } else {
            post(tcp, head.as_bytes(), &body).await?
        };
        if status
            .split_whitespace()
            .nth(1)
            .is_some_and(|c| c.starts_with('2'))
        {
            Ok(())
        } else {
            Err(format!("{} answered {}", self.config.url, status.trim()))
        }
    }
}

/// Writes the request and reads the status line of the answer.
async fn post<S>(mut stream: S, head: &[u8], body: &[u8]) -> Result<String, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let io = |e: std::io::Error| format!("while posting: {e}");
    stream.write_all(head).await.map_err(io)?;
    stream.write_all(body).await.map_err(io)?;
    stream.flush().await.map_err(io)?;
    let mut status = String::new();
    BufReader::new(stream)
        .read_line(&mut status)
        .await
        .map_err(io)?;
    if status.is_empty() {
        return Err("the receiver closed the connection without an answer".into());
    }
    Ok(status)
}

/// Where a webhook is delivered: `http://HOST[:PORT]/PATH` or `https://...`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Target {
    pub tls: bool,
    pub host: String,
    pub port: u16,
    /// The path and query, from the first `/` (at least `/`).
    pub path: String,
}

impl Target {
    /// Reads a URL; the error says what is wrong with it.
    pub fn parse(url: &str) -> Result<Target, String> {
        let (tls, rest) = if let Some(rest) = url.strip_prefix("https://") {
            (true, rest)
        } else if let Some(rest) = url.strip_prefix("http://") {
            (false, rest)
        } else {
            return Err(format!(
                "`{url}`: expected http://HOST[:PORT]/PATH or https://..."
            ));
        };
        let (authority, path) = match rest.find(['/', '?']) {
            Some(at) if rest[at..].starts_with('/') => (&rest[..at], rest[at..].to_string()),
            Some(at) => (&rest[..at], format!("/{}", &rest[at..])),
            None => (rest, "/".to_string()),
        };
        if authority.contains('@') {
            return Err(format!(
                "`{url}`: no user:password@ in the URL; the signature (secret) authenticates Haven"
            ));
        }
        let default_port = if tls { 443 } else { 80 };
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6
                .split_once(']')
                .ok_or_else(|| format!("`{url}`: an IPv6 address needs its closing ]"))?;
            let port = match after.strip_prefix(':') {
                Some(p) => p.parse().map_err(|_| format!("`{url}`: bad port `{p}`"))?,
                None if after.is_empty() => default_port,
                None => return Err(format!("`{url}`: unexpected `{after}` after the address")),
            };
            (host.to_string(), port)
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (
                    h.to_string(),
                    p.parse().map_err(|_| format!("`{url}`: bad port `{p}`"))?,
                ),
                None => (authority.to_string(), default_port),
            }
        };
        if host.is_empty() {
            return Err(format!("`{url}`: no host"));
        }
        Ok(Target {
            tls,
            host,
            port,
            path,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::Target;

    #[test]
    fn urls_are_read_with_their_defaults_and_bad_ones_are_refused() {
        let t = Target::parse("https://hooks.example.com/haven?team=ops").unwrap();
        assert_eq!(
            (t.tls, t.host.as_str(), t.port, t.path.as_str()),
            (true, "hooks.example.com", 443, "/haven?team=ops")
        );
        let t = Target::parse("http://127.0.0.1:8080").unwrap();
        assert_eq!((t.tls, t.port, t.path.as_str()), (false, 8080, "/"));
        let t = Target::parse("http://[::1]:9/x").unwrap();
        assert_eq!((t.host.as_str(), t.port), ("::1", 9));
        for bad in [
            "ftp://x/",
            "http://",
            "http://host:port/",
            "https://u:p@host/",
            "http://[::1/",
        ] {
            assert!(Target::parse(bad).is_err(), "{bad}");
        }
    }
}
