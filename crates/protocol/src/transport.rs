//! How a client reaches an engine's socket: plain TCP (`HOST:PORT`) or
//! TLS (`tls://HOST:PORT`, the engine started with `--tls-cert`). Both end
//! in one [`Stream`] type, so the protocol above does not care.

use std::sync::Arc;
use std::time::Duration;

use tokio::io::{AsyncRead, AsyncWrite};
use tokio::net::TcpStream;
use tokio_rustls::rustls::ClientConfig;

/// A byte stream to an engine, plain or TLS.
pub trait Io: AsyncRead + AsyncWrite + Unpin + Send {}
impl<T: AsyncRead + AsyncWrite + Unpin + Send> Io for T {}

/// A connected stream, whatever its transport.
pub type Stream = Box<dyn Io>;

/// The scheme that asks for TLS in an engine address.
pub const TLS_SCHEME: &str = "tls://";

/// An engine address, read.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Address<'a> {
    /// `HOST:PORT`, as dialled.
    pub host_port: &'a str,
    /// The host alone (without brackets around an IPv6 address): the
    /// name the engine's certificate must carry.
    pub host: &'a str,
    pub tls: bool,
}

impl<'a> Address<'a> {
    pub fn parse(address: &'a str) -> Address<'a> {
        let (tls, host_port) = match address.strip_prefix(TLS_SCHEME) {
            Some(rest) => (true, rest),
            None => (false, address),
        };
        let host = host_port
            .rsplit_once(':')
            .map_or(host_port, |(h, _)| h)
            .trim_start_matches('[')
            .trim_end_matches(']');
        Address {
            host_port,
            host,
            tls,
        }
    }
}

/// Connects to `address` within `limit`: TCP, then the TLS handshake for a
/// `tls://` address, trusting `tls` (a config that trusts the fleet CA).
/// Errors are sentences that say what to check.
pub async fn dial(
    address: &str,
    tls: Option<&Arc<ClientConfig>>,
    limit: Duration,
) -> Result<Stream, String> {
    let at = Address::parse(address);
    let tcp = tokio::time::timeout(limit, TcpStream::connect(at.host_port))
        .await
        .map_err(|_| format!("no answer from {} within {limit:?}", at.host_port))?
        .map_err(|e| format!("cannot connect to {}: {e}", at.host_port))?;
    tcp.set_nodelay(true).ok();
    if !at.tls {
        return Ok(Box::new(tcp));
    }
    let config = tls.ok_or_else(|| {
        format!("{address} asks for TLS, but this client was given no CA to trust")
    })?;
    let handshake = haven_pki::connect_tls(tcp, at.host, config.clone());
    let stream = tokio::time::timeout(limit, handshake)
        .await
        .map_err(|_| format!("TLS to {address}: no handshake within {limit:?}"))?
        .map_err(|e| {
            format!(
                "TLS to {address} failed: {e} (the engine needs a certificate from the fleet CA \
                 naming {}: haven setup engine-cert)",
                at.host
            )
        })?;
    Ok(Box::new(stream))
}

#[cfg(test)]
mod tests {
    use super::Address;

    #[test]
    fn addresses_say_whether_they_want_tls_and_which_host_to_check() {
        let a = Address::parse("tls://db1.example.com:14141");
        assert_eq!(
            (a.tls, a.host_port, a.host),
            (true, "db1.example.com:14141", "db1.example.com")
        );
        let a = Address::parse("127.0.0.1:14141");
        assert_eq!((a.tls, a.host), (false, "127.0.0.1"));
        let a = Address::parse("tls://[::1]:14141");
        assert_eq!((a.tls, a.host_port, a.host), (true, "[::1]:14141", "::1"));
    }
}
