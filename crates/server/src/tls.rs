//! TLS listeners: for the API (HTTPS, handing axum finished TLS sessions),
//! the connector port and the peer port.
//!
//! Handshakes run in their own tasks (bounded in number and time), so a
//! slow or silent client never holds up the next one's accept.

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use axum::extract::connect_info::Connected;
use axum::serve::{IncomingStream, Listener};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{mpsc, Semaphore};
use tokio_rustls::server::TlsStream;
use tokio_rustls::TlsAcceptor;

/// Most handshakes in progress at once; more wait for a slot.
const HANDSHAKES: usize = 256;
/// A client that has not finished its handshake by then is dropped.
const HANDSHAKE_TIMEOUT: Duration = Duration::from_secs(10);

/// Accepts TCP connections and yields them once their TLS handshake is done.
pub struct TlsListener {
    ready: mpsc::Receiver<(TlsStream<TcpStream>, SocketAddr)>,
    local: SocketAddr,
}

impl TlsListener {
    /// Starts accepting HTTPS on `listener` with `config` (ALPN is set to
    /// HTTP/1.1).
    pub fn new(
        listener: TcpListener,
        config: Arc<tokio_rustls::rustls::ServerConfig>,
    ) -> std::io::Result<Self> {
        let mut config = (*config).clone();
        config.alpn_protocols = vec![b"http/1.1".to_vec()];
        let acceptor = TlsAcceptor::from(Arc::new(config));
        Self::with_acceptor(
            listener,
            move || Some(acceptor.clone()),
            ("client", "HTTPS"),
        )
    }

    /// Starts accepting on `listener`, each connection with the acceptor
    /// `acceptor` gives at that moment (none: the connection is dropped).
    /// A client certificate refused at the handshake is logged as a
    /// warning, naming the client (`who`) and what is accepted (`hint`);
    /// other failed handshakes only at debug level.
    pub fn with_acceptor(
        listener: TcpListener,
        acceptor: impl Fn() -> Option<TlsAcceptor> + Send + 'static,
        (who, hint): (&'static str, &'static str),
    ) -> std::io::Result<Self> {
        let local = listener.local_addr()?;
        let (tx, ready) = mpsc::channel(64);
        let slots = Arc::new(Semaphore::new(HANDSHAKES));
        tokio::spawn(async move {
            loop {
                let Ok(permit) = slots.clone().acquire_owned().await else {
                    return;
                };
                let (stream, peer) = match listener.accept().await {
                    Ok(x) => x,
                    Err(e) => {
                        tracing::warn!("accept failed: {e}");
                        tokio::time::sleep(Duration::from_millis(100)).await;
                        continue;
                    }
                };
                if tx.is_closed() {
                    return;
                }
                let Some(acceptor) = acceptor() else {
                    continue;
                };
                let tx = tx.clone();
                tokio::spawn(async move {
                    let _permit = permit;
                    match tokio::time::timeout(HANDSHAKE_TIMEOUT, acceptor.accept(stream)).await {
                        Ok(Ok(tls)) => {
                            let _ = tx.send((tls, peer)).await;
                        }
                        Ok(Err(e)) if refused_certificate(&e) => tracing::warn!(
                            %peer,
                            "refused a {who}'s certificate at the TLS handshake: {e} ({hint})"
                        ),
                        Ok(Err(e)) => tracing::debug!(%peer, "TLS handshake failed: {e}"),
                        Err(_) => tracing::debug!(%peer, "TLS handshake timed out"),
                    }
                });
            }
        });
        Ok(TlsListener { ready, local })
    }

    /// The next connection whose handshake is done (None: the accept task
    /// ended, the runtime is shutting down).
    pub async fn next(&mut self) -> Option<(TlsStream<TcpStream>, SocketAddr)> {
        self.ready.recv().await
    }
}

/// Whether a failed handshake failed on the client's certificate (one no
/// trusted CA issued, an expired one, or one not for client use).
fn refused_certificate(err: &std::io::Error) -> bool {
    use tokio_rustls::rustls::Error;
    matches!(
        err.get_ref().and_then(|e| e.downcast_ref::<Error>()),
        Some(Error::InvalidCertificate(_) | Error::NoCertificatesPresented)
    )
}

impl Listener for TlsListener {
    type Io = TlsStream<TcpStream>;
    type Addr = SocketAddr;

    async fn accept(&mut self) -> (Self::Io, Self::Addr) {
        match self.next().await {
            Some(x) => x,
            // The accept task ended (the runtime is shutting down).
            None => std::future::pending().await,
        }
    }

    fn local_addr(&self) -> std::io::Result<SocketAddr> {
        Ok(self.local)
    }
}

/// The remote address of an API caller, over HTTPS or plain HTTP.
#[derive(Debug, Clone, Copy)]
pub struct Remote(pub SocketAddr);

impl Connected<IncomingStream<'_, TlsListener>> for Remote {
    fn connect_info(stream: IncomingStream<'_, TlsListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

impl Connected<IncomingStream<'_, TcpListener>> for Remote {
    fn connect_info(stream: IncomingStream<'_, TcpListener>) -> Self {
        Remote(*stream.remote_addr())
    }
}

/// Serves `app` on `listener` (HTTPS with `tls`, else plain HTTP) until
/// the listener fails; callers see who connected as [`Remote`].
pub async fn serve_api(
    listener: tokio::net::TcpListener,
    tls: Option<Arc<tokio_rustls::rustls::ServerConfig>>,
    app: axum::Router,
    what: &'static str,
) {
    let served = match tls {
        Some(config) => match TlsListener::new(listener, config) {
            Ok(tls_listener) => {
                axum::serve(
                    tls_listener,
                    app.into_make_service_with_connect_info::<Remote>(),
                )
                .await
            }
            Err(e) => Err(e),
        },
        None => {
            axum::serve(
                listener,
                app.into_make_service_with_connect_info::<Remote>(),
            )
            .await
        }
    };
    if let Err(e) = served {
        tracing::error!("{what} stopped: {e}");
    }
}

/// This host's name, for the server certificate.
pub fn host_name() -> Option<String> {
    let name = std::fs::read_to_string("/proc/sys/kernel/hostname").ok()?;
    let name = name.trim();
    (!name.is_empty() && name != "localhost").then(|| name.to_string())
}
