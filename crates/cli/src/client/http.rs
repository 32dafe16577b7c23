//! A small HTTP/1.1 client: one request per connection (`Connection:
//! close`), over TLS that trusts exactly one CA, or over the server's
//! Unix socket; chunked and sized bodies; Server-Sent Events.
//!
//! Every connection has a connect timeout and read/write timeouts, so no
//! command hangs on a silent server. [`Api`] sits on top: it picks the
//! server from the command's options and the saved contexts, adds the
//! session token, and turns error answers into [`Failure`]s whose message
//! says what to do next.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpStream, ToSocketAddrs};
use std::os::unix::net::UnixStream;
use std::path::PathBuf;
use std::sync::Arc;
use std::time::Duration;

use serde_json::Value;

use super::config::{Config, Context};
use super::{Exit, Failure, Global, Result};

/// The API's port when a URL names none.
pub const DEFAULT_PORT: u16 = 8440;

/// The server a bare `haven login` goes to.
pub const DEFAULT_SERVER: &str = "https://127.0.0.1:8440";

/// Connecting takes at most this long.
const CONNECT_TIMEOUT: Duration = Duration::from_secs(10);

/// An ordinary request's answer takes at most this long.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// Answers larger than this are refused (a misdirected download, not an API
/// answer).
const MAX_BODY: u64 = 256 << 20;

/// `https://HOST:PORT` (or `http://`, for a development server).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ServerUrl {
    pub https: bool,
    pub host: String,
    pub port: u16,
}

impl ServerUrl {
    /// Reads `https://host[:port][/]`, `http://...`, or `host[:port]`
    /// (HTTPS); IPv6 addresses in brackets.
    pub fn parse(text: &str) -> std::result::Result<ServerUrl, String> {
        let bad = |why: &str| {
            format!("`{text}` is not a server address ({why}); e.g. https://mgmt.example.com:8440")
        };
        let t = text.trim();
        let (https, rest) = if let Some(r) = t.strip_prefix("https://") {
            (true, r)
        } else if let Some(r) = t.strip_prefix("http://") {
            (false, r)
        } else if t.contains("://") {
            return Err(bad("use https://"));
        } else {
            (true, t)
        };
        let authority = rest.trim_end_matches('/');
        if authority.is_empty() || authority.contains('/') {
            return Err(bad("give only the scheme, host and port"));
        }
        let (host, port) = if let Some(v6) = authority.strip_prefix('[') {
            let (host, after) = v6.split_once(']').ok_or_else(|| bad("unclosed ["))?;
            let port = match after.strip_prefix(':') {
                Some(p) => Some(p),
                None if after.is_empty() => None,
                None => return Err(bad("junk after ]")),
            };
            (host.to_string(), port)
        } else if authority.matches(':').count() > 1 {
            (authority.to_string(), None) // a bare IPv6 address
        } else {
            match authority.rsplit_once(':') {
                Some((h, p)) => (h.to_string(), Some(p)),
                None => (authority.to_string(), None),
            }
        };
        let port = match port {
            None => DEFAULT_PORT,
            Some(p) => p.parse().map_err(|_| bad("the port is not a number"))?,
        };
        if host.is_empty() {
            return Err(bad("no host"));
        }
        Ok(ServerUrl { https, host, port })
    }

    /// `HOST:PORT` (brackets around an IPv6 address).
    pub fn authority(&self) -> String {
        if self.host.contains(':') {
            format!("[{}]:{}", self.host, self.port)
        } else {
            format!("{}:{}", self.host, self.port)
        }
    }
}

impl std::fmt::Display for ServerUrl {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let scheme = if self.https { "https" } else { "http" };
        write!(f, "{scheme}://{}", self.authority())
    }
}

/// Where requests go.
#[derive(Clone)]
pub enum Endpoint {
    /// TCP; TLS when `tls` is set (always, for `https://`).
    Tcp {
        url: ServerUrl,
        tls: Option<Arc<rustls::ClientConfig>>,
    },
    /// The server host's local socket.
    Unix(PathBuf),
}

/// Why a request did not get an answer.
#[derive(Debug)]
pub enum TransportError {
    /// The connection could not be made (refused, no route, no socket...).
    Connect(std::io::Error),
    /// The server's certificate is not trusted, or TLS failed.
    Tls(String),
    /// The server did not answer in time.
    Timeout(Duration),
    /// The connection broke, or the answer is not HTTP.
    Io(String),
}

trait Stream: Read + Write + Send {}
impl<T: Read + Write + Send> Stream for T {}

/// An answer: its status, and its body (de-chunked) to read.
pub struct Response {
    pub status: u16,
    pub body: BufReader<Body>,
    timeout: Duration,
}

impl Response {
    /// The whole body as JSON (`null` when empty, a string when not JSON).
    pub fn json(mut self) -> std::result::Result<(u16, Value), TransportError> {
        let mut raw = Vec::new();
        let timeout = self.timeout;
        (&mut self.body)
            .take(MAX_BODY)
            .read_to_end(&mut raw)
            .map_err(|e| io_error(e, timeout))?;
        let value = if raw.iter().all(u8::is_ascii_whitespace) {
            Value::Null
        } else {
            serde_json::from_slice(&raw)
                .unwrap_or_else(|_| Value::String(String::from_utf8_lossy(&raw).into_owned()))
        };
        Ok((self.status, value))
    }

    /// Server-Sent Events from the body.
    pub fn events(self) -> Events {
        Events {
            body: self.body,
            timeout: self.timeout,
        }
    }
}

fn io_error(e: std::io::Error, timeout: Duration) -> TransportError {
    match e.kind() {
        std::io::ErrorKind::WouldBlock | std::io::ErrorKind::TimedOut => {
            TransportError::Timeout(timeout)
        }
        _ => match tls_problem(&e) {
            Some(why) => TransportError::Tls(why),
            None => TransportError::Io(e.to_string()),
        },
    }
}

/// The TLS error inside an I/O error, said for people.
fn tls_problem(e: &std::io::Error) -> Option<String> {
    let inner = e.get_ref()?;
    let tls = inner.downcast_ref::<rustls::Error>()?;
    Some(match tls {
        // Haven's verifiers explain themselves (haven_pki::PkiError).
        rustls::Error::Other(other) => other.0.to_string(),
        other => other.to_string(),
    })
}

impl Endpoint {
    fn host_header(&self) -> String {
        match self {
            Endpoint::Tcp { url, .. } => url.authority(),
            Endpoint::Unix(_) => "haven".into(),
        }
    }

    fn open(&self, timeout: Duration) -> std::result::Result<Box<dyn Stream>, TransportError> {
        match self {
            Endpoint::Unix(path) => {
                let s = UnixStream::connect(path).map_err(TransportError::Connect)?;
                s.set_read_timeout(Some(timeout))
                    .and_then(|()| s.set_write_timeout(Some(TIMEOUT)))
                    .map_err(TransportError::Connect)?;
                Ok(Box::new(s))
            }
            Endpoint::Tcp { url, tls } => {
                let mut tcp = dial(url)?;
                tcp.set_read_timeout(Some(timeout))
                    .and_then(|()| tcp.set_write_timeout(Some(TIMEOUT)))
                    .map_err(TransportError::Connect)?;
                let _ = tcp.set_nodelay(true);
                let Some(config) = tls else {
                    return Ok(Box::new(tcp));
                };
                let name = rustls::pki_types::ServerName::try_from(url.host.clone())
                    .map_err(|e| TransportError::Tls(format!("`{}`: {e}", url.host)))?;
                let mut conn = rustls::ClientConnection::new(config.clone(), name)
                    .map_err(|e| TransportError::Tls(e.to_string()))?;
                // The handshake now, so that an untrusted server is told
                // apart from a broken connection (and nothing is sent to it).
                while conn.is_handshaking() {
                    conn.complete_io(&mut tcp)
                        .map_err(|e| io_error(e, CONNECT_TIMEOUT))?;
                }
                Ok(Box::new(rustls::StreamOwned::new(conn, tcp)))
            }
        }
    }

    /// Sends one request; the answer's body is left to read.
    pub fn request(
        &self,
        method: &str,
        path: &str,
        token: Option<&str>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> std::result::Result<Response, TransportError> {
        let mut stream = self.open(timeout)?;
        let body = body.map(|b| b.to_string()).unwrap_or_default();
        let mut head = format!(
            "{method} {path} HTTP/1.1\r\nHost: {}\r\nConnection: close\r\nUser-Agent: haven/{}\r\nAccept: application/json, text/event-stream\r\n",
            self.host_header(),
            env!("CARGO_PKG_VERSION")
        );
        if let Some(t) = token {
            head.push_str(&format!("Authorization: Bearer {t}\r\n"));
        }
        if method != "GET" {
            head.push_str(&format!("Content-Length: {}\r\n", body.len()));
        }
        if !body.is_empty() {
            head.push_str("Content-Type: application/json\r\n");
        }
        head.push_str("\r\n");
        head.push_str(&body);
        stream
            .write_all(head.as_bytes())
            .and_then(|()| stream.flush())
            .map_err(|e| io_error(e, timeout))?;
        let mut reader = BufReader::new(stream);
        let (status, framing) = read_head(&mut reader).map_err(|e| io_error(e, timeout))?;
        Ok(Response {
            status,
            body: BufReader::new(Body::new(reader, framing)),
            timeout,
        })
    }
}

/// Connects to the first address of `url` that answers.
fn dial(url: &ServerUrl) -> std::result::Result<TcpStream, TransportError> {
    let addrs = (url.host.as_str(), url.port)
        .to_socket_addrs()
        .map_err(TransportError::Connect)?;
    let mut last = None;
    for addr in addrs {
        match TcpStream::connect_timeout(&addr, CONNECT_TIMEOUT) {
            Ok(s) => return Ok(s),
            Err(e) => last = Some(e),
        }
    }
    Err(TransportError::Connect(last.unwrap_or_else(|| {
        std::io::Error::new(std::io::ErrorKind::NotFound, "the name has no address")
    })))
}

/// How the body is delimited.
#[derive(Debug, Clone, Copy)]
enum Framing {
    Length(u64),
    Chunked,
    UntilClose,
}

fn bad_answer(why: &str) -> std::io::Error {
    std::io::Error::new(
        std::io::ErrorKind::InvalidData,
        format!("not an HTTP answer: {why}"),
    )
}

/// Reads the status line and headers.
fn read_head(r: &mut impl BufRead) -> std::io::Result<(u16, Framing)> {
    let mut line = String::new();
    let mut read_line = |line: &mut String| -> std::io::Result<()> {
        line.clear();
        let n = r.take(16 * 1024).read_line(line)?;
        if n == 0 {
            return Err(std::io::Error::new(
                std::io::ErrorKind::UnexpectedEof,
                "the server closed the connection without answering",
            ));
        }
        Ok(())
    };
    read_line(&mut line)?;
    let status = line
        .strip_prefix("HTTP/1.")
        .and_then(|rest| rest.split_whitespace().nth(1))
        .and_then(|s| s.parse::<u16>().ok())
        .ok_or_else(|| bad_answer(line.trim()))?;
    let mut framing = Framing::UntilClose;
    for _ in 0..200 {
        read_line(&mut line)?;
        let l = line.trim_end();
        if l.is_empty() {
            return Ok((status, framing));
        }
        let Some((name, value)) = l.split_once(':') else {
            continue;
        };
        let (name, value) = (name.trim(), value.trim());
        if name.eq_ignore_ascii_case("transfer-encoding")
            && value.to_ascii_lowercase().contains("chunked")
        {
            framing = Framing::Chunked;
        } else if name.eq_ignore_ascii_case("content-length")
            && !matches!(framing, Framing::Chunked)
        {
            framing = Framing::Length(value.parse().map_err(|_| bad_answer("bad length"))?);
        }
    }
    Err(bad_answer("too many headers"))
}

/// An answer's body, de-chunked.
pub struct Body {
    inner: BufReader<Box<dyn Stream>>,
    framing: Framing,
    /// Bytes left in the current chunk (or of the sized body).
    left: u64,
    done: bool,
}

impl Body {
    fn new(inner: BufReader<Box<dyn Stream>>, framing: Framing) -> Body {
        Body {
            inner,
            framing,
            left: match framing {
                Framing::Length(n) => n,
                _ => 0,
            },
            done: false,
        }
    }
}

impl Read for Body {
    fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
        if self.done || buf.is_empty() {
            return Ok(0);
        }
        match self.framing {
            Framing::UntilClose => match self.inner.read(buf) {
                // A TLS peer may close without close_notify after
                // `Connection: close`: that is the end of the body.
                Err(e) if e.kind() == std::io::ErrorKind::UnexpectedEof => {
                    self.done = true;
                    Ok(0)
                }
                other => other,
            },
            Framing::Length(_) => {
                if self.left == 0 {
                    self.done = true;
                    return Ok(0);
                }
                let want = buf.len().min(self.left as usize);
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.left -= n as u64;
                Ok(n)
            }
            Framing::Chunked => {
                if self.left == 0 {
                    let mut line = String::new();
                    (&mut self.inner).take(1024).read_line(&mut line)?;
                    if line.is_empty() {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    }
                    let size = line.trim().split(';').next().unwrap_or("");
                    let size = u64::from_str_radix(size.trim(), 16)
                        .map_err(|_| bad_answer("bad chunk size"))?;
                    if size == 0 {
                        // Trailers, up to the blank line.
                        loop {
                            line.clear();
                            let n = (&mut self.inner).take(16 * 1024).read_line(&mut line)?;
                            if n == 0 || line.trim().is_empty() {
                                break;
                            }
                        }
                        self.done = true;
                        return Ok(0);
                    }
                    self.left = size;
                }
                let want = buf.len().min(self.left as usize);
                let n = self.inner.read(&mut buf[..want])?;
                if n == 0 {
                    return Err(std::io::ErrorKind::UnexpectedEof.into());
                }
                self.left -= n as u64;
                if self.left == 0 {
                    let mut crlf = String::new();
                    (&mut self.inner).take(2).read_line(&mut crlf)?;
                }
                Ok(n)
            }
        }
    }
}

/// One Server-Sent Event: its name (`message` if unnamed) and data.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct SseEvent {
    pub event: String,
    pub data: String,
}

/// The events of a stream, as they come.
pub struct Events {
    body: BufReader<Body>,
    timeout: Duration,
}

impl Iterator for Events {
    type Item = std::result::Result<SseEvent, TransportError>;

    fn next(&mut self) -> Option<Self::Item> {
        let (mut event, mut data) = (String::new(), Vec::<String>::new());
        let mut line = String::new();
        loop {
            line.clear();
            match (&mut self.body).take(MAX_BODY).read_line(&mut line) {
                Err(e) => return Some(Err(io_error(e, self.timeout))),
                Ok(0) => return None,
                Ok(_) => {}
            }
            let l = line.trim_end_matches(['\r', '\n']);
            if l.is_empty() {
                if !data.is_empty() {
                    return Some(Ok(SseEvent {
                        event: if event.is_empty() {
                            "message".into()
                        } else {
                            event
                        },
                        data: data.join("\n"),
                    }));
                }
                event.clear();
                continue;
            }
            if l.starts_with(':') {
                continue; // a keep-alive comment
            }
            let (field, value) = l.split_once(':').unwrap_or((l, ""));
            let value = value.strip_prefix(' ').unwrap_or(value);
            match field {
                "event" => event = value.to_string(),
                "data" => data.push(value.to_string()),
                _ => {}
            }
        }
    }
}

/// What went wrong, without the fix a TLS error may carry (the fleet CA's
/// errors speak to connectors; the CLI says its own fix).
pub fn first_clause(why: &str) -> &str {
    why.split(';').next().unwrap_or(why).trim()
}

/// `?k=v&...` from the pairs that have a value, percent-encoded.
pub fn query(pairs: &[(&str, Option<String>)]) -> String {
    let encoded: Vec<String> = pairs
        .iter()
        .filter_map(|(k, v)| v.as_ref().map(|v| format!("{k}={}", encode(v))))
        .collect();
    if encoded.is_empty() {
        String::new()
    } else {
        format!("?{}", encoded.join("&"))
    }
}

/// Percent-encodes everything but unreserved characters (RFC 3986), for a
/// path segment or a query value.
pub fn encode(text: &str) -> String {
    let mut out = String::new();
    for b in text.bytes() {
        if b.is_ascii_alphanumeric() || matches!(b, b'-' | b'_' | b'.' | b'~') {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

/// A server to talk to, as the command's options and the saved contexts
/// say: its endpoint, the session token, and how to name it in messages.
#[derive(Clone)]
pub struct Api {
    pub endpoint: Endpoint,
    pub token: Option<String>,
    /// The server URL or the socket path, for messages.
    pub label: String,
}

impl Api {
    /// The server for these options: --socket, else --server (with the
    /// login saved for it), else --context, else the current context.
    pub fn from_global(g: &Global) -> Result<Api> {
        if let Some(path) = &g.socket {
            return Ok(Api::socket(path.clone()));
        }
        let config = Config::load()?;
        if let Some(server) = &g.server {
            let url = ServerUrl::parse(server).map_err(|e| Failure::new(Exit::Usage, e))?;
            let key = url.to_string();
            let saved = match &g.context {
                Some(name) => {
                    Some(config.named(name)?).filter(|c| c.server.as_deref() == Some(&key))
                }
                None => config.for_server(&key),
            };
            return match saved {
                Some(c) => Api::for_context(c),
                None if !url.https => Ok(Api {
                    label: key,
                    endpoint: Endpoint::Tcp { url, tls: None },
                    token: None,
                }),
                None => Err(Failure::new(
                    Exit::Auth,
                    format!("not logged in to {key}; log in: haven login {key}"),
                )),
            };
        }
        let context = match &g.context {
            Some(name) => config.named(name)?,
            None => config.current().ok_or_else(|| {
                Failure::new(
                    Exit::Auth,
                    "not logged in; log in: haven login SERVER (or, on the server host, haven login --socket DATA_DIR/haven.sock)",
                )
            })?,
        };
        Api::for_context(context)
    }

    /// The local socket at `path`.
    pub fn socket(path: PathBuf) -> Api {
        Api {
            label: format!("the local socket {}", path.display()),
            endpoint: Endpoint::Unix(path),
            token: None,
        }
    }

    /// The server a saved context names, with its trust and token.
    pub fn for_context(c: &Context) -> Result<Api> {
        if let Some(path) = &c.socket {
            return Ok(Api::socket(path.clone()));
        }
        let server = c.server.as_deref().ok_or_else(|| {
            Failure::error(format!(
                "context {} names neither a server nor a socket; log in again: haven login SERVER --context {}",
                c.name, c.name
            ))
        })?;
        let url = ServerUrl::parse(server).map_err(Failure::error)?;
        let tls = if url.https {
            let pem = c.ca_pem.as_deref().ok_or_else(|| {
                Failure::error(format!(
                    "context {} has no CA to trust {server} by; log in again: haven login {server}",
                    c.name
                ))
            })?;
            Some(haven_pki::client_config_for_ca(pem).map_err(|e| {
                Failure::error(format!(
                    "the CA saved for {server} is not usable ({e}); log in again: haven login {server} --ca FILE"
                ))
            })?)
        } else {
            None
        };
        Ok(Api {
            label: url.to_string(),
            endpoint: Endpoint::Tcp { url, tls },
            token: c.token.clone(),
        })
    }

    /// Sends a request; any answer (even an error status) comes back, a
    /// transport failure becomes a [`Failure`].
    pub fn call(
        &self,
        method: &str,
        path: &str,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<(u16, Value)> {
        self.endpoint
            .request(method, path, self.token.as_deref(), body, timeout)
            .and_then(Response::json)
            .map_err(|e| self.unreachable(e))
    }

    /// A request whose answer must be a success; its JSON.
    pub fn send(&self, method: &str, path: &str, body: Option<&Value>) -> Result<Value> {
        let (status, value) = self.call(method, path, body, TIMEOUT)?;
        if (200..300).contains(&status) {
            Ok(value)
        } else {
            Err(self.refusal(status, &value))
        }
    }

    pub fn get(&self, path: &str) -> Result<Value> {
        self.send("GET", path, None)
    }

    /// Opens an event stream (`path` under `/api/v1/events`); a silent
    /// stream is an error after `idle` (the server sends keep-alives).
    pub fn events(&self, path: &str, idle: Duration) -> Result<Events> {
        let response = self
            .endpoint
            .request("GET", path, self.token.as_deref(), None, idle)
            .map_err(|e| self.unreachable(e))?;
        if response.status != 200 {
            let (status, value) = response.json().map_err(|e| self.unreachable(e))?;
            return Err(self.refusal(status, &value));
        }
        Ok(response.events())
    }

    /// A transport failure, said for people.
    pub fn unreachable(&self, e: TransportError) -> Failure {
        let relogin = match &self.endpoint {
            Endpoint::Tcp { url, .. } => format!(
                "if the server's CA was re-created, log in again: haven login {url} --ca FILE"
            ),
            Endpoint::Unix(_) => String::new(),
        };
        match e {
            TransportError::Connect(e) => Failure::new(
                Exit::Unreachable,
                format!("cannot reach {}: {e}; is it running?", self.label),
            ),
            TransportError::Timeout(t) => Failure::new(
                Exit::Unreachable,
                format!(
                    "{} did not answer within {} s; is it overloaded, or the network down?",
                    self.label,
                    t.as_secs()
                ),
            ),
            TransportError::Tls(why) => Failure::error(format!(
                "cannot trust {}: {}; {relogin}",
                self.label,
                first_clause(&why)
            )),
            TransportError::Io(why) => Failure::new(
                Exit::Unreachable,
                format!("lost the connection to {}: {why}", self.label),
            ),
        }
    }

    /// An error answer, as a failure with its exit status and what to do.
    pub fn refusal(&self, status: u16, body: &Value) -> Failure {
        let code = body["error"]["code"].as_str().unwrap_or("");
        let message = body["error"]["message"]
            .as_str()
            .map(String::from)
            .unwrap_or_else(|| match body {
                Value::String(s) if !s.is_empty() => s.clone(),
                Value::Null => format!("HTTP {status}"),
                other => other.to_string(),
            });
        let login = match &self.endpoint {
            Endpoint::Tcp { url, .. } => format!("haven login {url}"),
            Endpoint::Unix(_) => "haven login SERVER".into(),
        };
        match (status, code) {
            (401, _) => Failure::new(
                Exit::Auth,
                format!(
                    "not logged in to {} ({message}); log in: {login}",
                    self.label
                ),
            ),
            (403, _) => Failure::new(
                Exit::Auth,
                format!("permission denied: {message}; a Server Administrator can grant you a role (haven role grant)"),
            ),
            (429, _) => Failure::new(Exit::Auth, message),
            (404, "unknown_cluster") => {
                let first = message.split(';').next().unwrap_or(&message);
                Failure::new(
                    Exit::NotFound,
                    format!("{first}; `haven clusters` lists them"),
                )
            }
            (404, _) => Failure::new(Exit::NotFound, message),
            (501, _) => Failure::error(message),
            (s, _) if s >= 500 => Failure::error(format!("the server failed: {message}")),
            _ => Failure::error(message),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn server_urls_default_to_https_and_port_8440() {
        let u = ServerUrl::parse("mgmt.example.com").unwrap();
        assert_eq!(u.to_string(), "https://mgmt.example.com:8440");
        let u = ServerUrl::parse("https://127.0.0.1:9000/").unwrap();
        assert_eq!(
            (u.host.as_str(), u.port, u.https),
            ("127.0.0.1", 9000, true)
        );
        let u = ServerUrl::parse("http://[::1]:8080").unwrap();
        assert_eq!((u.host.as_str(), u.port, u.https), ("::1", 8080, false));
        assert_eq!(u.to_string(), "http://[::1]:8080");
        let u = ServerUrl::parse("::1").unwrap();
        assert_eq!((u.host.as_str(), u.port), ("::1", DEFAULT_PORT));
        assert!(ServerUrl::parse("ftp://x").is_err());
        assert!(ServerUrl::parse("https://x:port").is_err());
        assert!(ServerUrl::parse("https://x/api").is_err());
    }

    #[test]
    fn queries_encode_their_values_and_skip_absent_ones() {
        assert_eq!(
            query(&[
                ("q", Some("a b/c".into())),
                ("limit", None),
                ("n", Some("1".into()))
            ]),
            "?q=a%20b%2Fc&n=1"
        );
        assert_eq!(query(&[("q", None)]), "");
    }

    /// A stream that reads `raw` and swallows writes.
    fn fixed(raw: &str) -> BufReader<Box<dyn Stream>> {
        struct Fixed(std::io::Cursor<Vec<u8>>);
        impl Read for Fixed {
            fn read(&mut self, buf: &mut [u8]) -> std::io::Result<usize> {
                self.0.read(buf)
            }
        }
        impl Write for Fixed {
            fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
                Ok(buf.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }
        let stream: Box<dyn Stream> =
            Box::new(Fixed(std::io::Cursor::new(raw.as_bytes().to_vec())));
        BufReader::new(stream)
    }

    fn body(raw: &str, framing: Framing) -> String {
        let mut out = String::new();
        Body::new(fixed(raw), framing)
            .read_to_string(&mut out)
            .unwrap();
        out
    }

    #[test]
    fn chunked_and_sized_bodies_are_read_to_their_end() {
        assert_eq!(
            body(
                "5\r\nhello\r\n7;ext=1\r\n, world\r\n0\r\n\r\nJUNK",
                Framing::Chunked
            ),
            "hello, world"
        );
        assert_eq!(body("hello, world", Framing::Length(5)), "hello");
        assert_eq!(body("abc", Framing::UntilClose), "abc");
    }

    #[test]
    fn server_sent_events_are_split_by_blank_lines() {
        let raw = ": keep-alive\n\nevent: events\ndata: {\"a\":1}\n\ndata: x\ndata: y\n\n";
        let events = Events {
            body: BufReader::new(Body::new(fixed(raw), Framing::UntilClose)),
            timeout: TIMEOUT,
        };
        let got: Vec<SseEvent> = events.map(|e| e.unwrap()).collect();
        assert_eq!(
            got,
            vec![
                SseEvent {
                    event: "events".into(),
                    data: "{\"a\":1}".into()
                },
                SseEvent {
                    event: "message".into(),
                    data: "x\ny".into()
                },
            ]
        );
    }
}
