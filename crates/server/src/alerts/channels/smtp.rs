//! The mail channel: SMTP (RFC 5321) with STARTTLS (RFC 3207) and AUTH
//! PLAIN over TLS only, a plain-text message (RFC 5322) to every address
//! of `to`. A few lines of protocol rather than a mail library: Haven only
//! ever sends one short text message at a time.

use base64::Engine as _;
use tokio::io::{AsyncBufReadExt, AsyncRead, AsyncWrite, AsyncWriteExt, BufReader};

use super::super::notify::Notification;
use super::super::settings::{SmtpChannel, StartTls};
use super::Channel;

/// Mails one list of addresses.
pub struct Smtp {
    config: SmtpChannel,
}

impl Smtp {
    pub fn new(config: SmtpChannel) -> Smtp {
        Smtp { config }
    }
}

/// One SMTP conversation over a stream.
struct Session<S> {
    io: BufReader<S>,
    server: String,
}

impl<S: AsyncRead + AsyncWrite + Unpin> Session<S> {
    /// Reads a (possibly multi-line) reply; its code must be `expect`.
    /// Returns its lines' text.
    async fn reply(&mut self, expect: u16, after: &str) -> Result<Vec<String>, String> {
        let mut lines = Vec::new();
        loop {
            let mut line = String::new();
            let n = self
                .io
                .read_line(&mut line)
                .await
                .map_err(|e| format!("{}: {e}", self.server))?;
            if n == 0 {
                return Err(format!(
                    "{} closed the connection after {after}",
                    self.server
                ));
            }
            let line = line.trim_end().to_string();
            let code: u16 = line.get(..3).and_then(|c| c.parse().ok()).ok_or_else(|| {
                format!("{} answered {after} with `{line}`, not SMTP", self.server)
            })?;
            let last = line.as_bytes().get(3) != Some(&b'-');
            lines.push(line);
            if last {
                if code != expect {
                    return Err(format!(
                        "{} refused {after}: {}",
                        self.server,
                        lines.join(" / ")
                    ));
                }
                return Ok(lines);
            }
        }
    }

    async fn say(&mut self, line: &str, expect: u16, what: &str) -> Result<Vec<String>, String> {
        let io = self.io.get_mut();
        io.write_all(format!("{line}\r\n").as_bytes())
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        io.flush()
            .await
            .map_err(|e| format!("{}: {e}", self.server))?;
        self.reply(expect, what).await
    }

    /// EHLO; whether the server offers STARTTLS.
    async fn ehlo(&mut self, me: &str) -> Result<bool, String> {
        let lines = self.say(&format!("EHLO {me}"), 250, "EHLO").await?;
        Ok(lines.iter().any(|l| {
            l.get(4..)
                .is_some_and(|k| k.eq_ignore_ascii_case("STARTTLS"))
        }))
    }

    /// From AUTH (if any) to QUIT.
    async fn send(
        &mut self,
        config: &SmtpChannel,
        login: bool,
        message: &str,
    ) -> Result<(), String> {
        if login {
            if let (Some(user), Some(password)) = (&config.username, &config.password) {
                let token = base64::engine::general_purpose::STANDARD
                    .encode(format!("\0{user}\0{password}"));
                self.say(
                    &format!("AUTH PLAIN {token}"),
                    235,
                    "the login (AUTH PLAIN)",
                )
                .await?;
            }
        }
        self.say(&format!("MAIL FROM:<{}>", config.from), 250, "MAIL FROM")
            .await?;
        for to in &config.to {
            self.say(&format!("RCPT TO:<{to}>"), 250, &format!("RCPT TO {to}"))
                .await?;
        }
        self.say("DATA", 354, "DATA").await?;
        self.say(message, 250, "the message").await?;
        // The message is accepted; a QUIT that fails changes nothing.
        let _ = self.say("QUIT", 221, "QUIT").await;
        Ok(())
    }
}

/// The message: headers, a blank line, the body with dot-stuffing, and
/// the final `.` line (CRLF line ends throughout).
pub fn message(config: &SmtpChannel, n: &Notification) -> String {
    let a = &n.alert;
    let mut body = vec![
        a.message.clone(),
        String::new(),
        format!("event:    {}", n.event),
        format!("severity: {}", a.severity),
        format!("cluster:  {}", a.cluster),
        format!("kind:     {}", a.kind),
    ];
    for (label, value) in [
        ("object:   ", &a.object),
        ("group:    ", &a.service_group),
        ("system:   ", &a.system),
        ("acked by: ", &a.acknowledged_by),
    ] {
        if let Some(v) = value {
            body.push(format!("{label}{v}"));
        }
    }
    body.push(format!("raised:   {}", super::rfc3339(a.raised_ms)));
    if let Some(at) = a.cleared_ms {
        body.push(format!("cleared:  {}", super::rfc3339(at)));
    }
    body.push(format!("alert id: {} (server {})", a.id, n.server));
    // Header values are one line: no CR or LF from a message can add a
    // header of its own.
    let clean = |s: &str| s.replace(['\r', '\n'], " ");
    let text = format!(
        "From: Haven <{}>\r\nTo: {}\r\nSubject: [haven] {}\r\nDate: {}\r\n\
         Message-ID: <haven-{}-{}-{}@{}>\r\nMIME-Version: 1.0\r\n\
         Content-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: 8bit\r\n\r\n",
        config.from,
        config.to.join(", "),
        clean(&n.subject()),
        super::rfc5322(n.sent_ms),
        a.id,
        n.event,
        n.sent_ms,
        clean(&n.server),
    );
    frame(text, &body.join("\n"))
}

/// The DATA of a message: `head` (its headers and the blank line, CRLF
/// ends), then `body` with CRLF line ends and dot-stuffing, then the
/// final `.` line. Every message Haven mails goes through this.
pub fn frame(head: String, body: &str) -> String {
    let mut text = head;
    for line in body.split('\n') {
        let line = line.trim_end_matches('\r');
        if line.starts_with('.') {
            text.push('.');
        }
        text.push_str(line);
        text.push_str("\r\n");
    }
    text.push('.');
    text
}

#[async_trait::async_trait]
impl Channel for Smtp {
    async fn send(&self, n: &Notification) -> Result<(), String> {
        deliver(&self.config, &n.server, &message(&self.config, n)).await
    }
}

/// Sends `message` (from [`frame`]) through the mail server of `c` to
/// every address of `c.to`: STARTTLS as `c.starttls` says, then the login
/// if any. `me` is the name Haven gives itself (EHLO). The alert channel
/// and the scheduled reports both mail this way.
pub async fn deliver(c: &SmtpChannel, me: &str, message: &str) -> Result<(), String> {
    let server = format!("{}:{}", c.host, c.port);
    let tcp = tokio::net::TcpStream::connect((c.host.as_str(), c.port))
        .await
        .map_err(|e| format!("cannot connect to the mail server {server}: {e}"))?;
    let me = me.to_string();
    let mut plain = Session {
        io: BufReader::new(tcp),
        server: server.clone(),
    };
    plain.reply(220, "the greeting").await?;
    let offers_tls = plain.ehlo(&me).await?;
    let use_tls = match c.starttls {
        StartTls::Off => false,
        StartTls::Optional => offers_tls,
        StartTls::Required if !offers_tls => {
            return Err(format!(
                "the mail server {server} does not offer STARTTLS and the channel requires it \
                 (starttls = \"required\")"
            ))
        }
        StartTls::Required => true,
    };
    if !use_tls {
        return plain.send(c, false, message).await;
    }
    plain.say("STARTTLS", 220, "STARTTLS").await?;
    let tls = super::upgrade(plain.io.into_inner(), &c.host, c.ca_file.as_deref()).await?;
    let mut secure = Session {
        io: BufReader::new(tls),
        server,
    };
    secure.ehlo(&me).await?;
    secure.send(c, true, message).await
}

#[cfg(test)]
mod tests {
    use super::*;
    use haven_store::{AlertRecord, AlertSeverity};

    #[test]
    fn a_message_has_one_line_headers_and_dot_stuffed_lines() {
        let config: SmtpChannel = toml::from_str(
            "name = \"m\"\nhost = \"h\"\nfrom = \"haven@example.com\"\nto = [\"a@example.com\", \"b@example.com\"]\n",
        )
        .unwrap();
        let n = Notification {
            event: "raised",
            alert: AlertRecord {
                id: 7,
                cluster: "prod".into(),
                kind: "faulted_group".into(),
                object: Some("web".into()),
                system: Some("n1".into()),
                service_group: Some("web".into()),
                severity: AlertSeverity::Critical,
                message: "group web faulted\r\nBcc: evil@example.com\n.hidden".into(),
                raised_ms: 0,
                cleared_ms: None,
                acknowledged_by: None,
                acknowledged_ms: None,
                flapping: false,
            },
            server: "mgmt".into(),
            sent_ms: 0,
        };
        let text = message(&config, &n);
        let (head, body) = text.split_once("\r\n\r\n").unwrap();
        assert!(head.contains("To: a@example.com, b@example.com"), "{head}");
        assert!(
            head.contains("Subject: [haven] CRITICAL raised: group web faulted  Bcc: evil@example.com .hidden (cluster prod)"),
            "{head}"
        );
        assert!(!head.lines().any(|l| l.starts_with("Bcc:")), "{head}");
        assert!(body.contains("\r\n..hidden\r\n"), "dot-stuffed: {body}");
        assert!(text.ends_with("\r\n."), "{text}");
        assert!(!body.replace("\r\n", "").contains('\r'));
    }
}
