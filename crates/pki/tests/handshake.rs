//! Real TLS handshakes over loopback TCP between the configs this crate builds.

use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use haven_pki::{
    client_cluster, client_config_for_ca, client_config_for_ca_with_cert, client_config_pinned,
    Authority, PinnedCa, PkiError, ServerName, TlsAcceptor, TlsConnector,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::time::timeout;

const LIMIT: Duration = Duration::from_secs(10);

fn new_authority(names: &[&str]) -> (tempfile::TempDir, Authority) {
    let dir = tempfile::tempdir().unwrap();
    let names: Vec<String> = names.iter().map(|s| s.to_string()).collect();
    let authority = Authority::load_or_create(dir.path(), &names).unwrap();
    (dir, authority)
}

/// Serves TLS on a loopback port: each connection gets its 4 bytes back, upper-cased.
/// The server lives until the test's runtime shuts down.
async fn serve(authority: &Authority) -> SocketAddr {
    let acceptor = TlsAcceptor::from(authority.server_config().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            tokio::spawn(async move {
                // A refused handshake is the client's business; the server just moves on.
                let Ok(mut tls) = acceptor.accept(tcp).await else {
                    return;
                };
                let mut buf = [0u8; 4];
                if tls.read_exact(&mut buf).await.is_ok() {
                    buf.make_ascii_uppercase();
                    let _ = tls.write_all(&buf).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    addr
}

/// Connects through `connector`, handshakes as `name`, and checks that bytes go both ways.
async fn exchange(
    connector: impl Into<TlsConnector>,
    addr: SocketAddr,
    name: &str,
) -> io::Result<()> {
    let connector = connector.into();
    let name = ServerName::try_from(name.to_owned()).unwrap();
    let run = async {
        let tcp = TcpStream::connect(addr).await?;
        let mut tls = connector.connect(name, tcp).await?;
        tls.write_all(b"ping").await?;
        let mut buf = [0u8; 4];
        tls.read_exact(&mut buf).await?;
        assert_eq!(&buf, b"PING");
        Ok(())
    };
    timeout(LIMIT, run).await.expect("TLS exchange timed out")
}

#[tokio::test]
async fn a_client_trusting_the_ca_connects_by_localhost_and_by_address_and_exchanges_bytes() {
    let (_dir, authority) = new_authority(&[]);
    let addr = serve(&authority).await;
    let config = client_config_for_ca(&authority.ca_pem()).unwrap();

    exchange(config.clone(), addr, "localhost").await.unwrap();
    exchange(config, addr, "127.0.0.1").await.unwrap();
}

#[tokio::test]
async fn a_client_can_use_any_name_given_to_the_authority() {
    let (_dir, authority) = new_authority(&["haven.example.com", "192.0.2.10"]);
    let addr = serve(&authority).await;
    let config = client_config_for_ca(&authority.ca_pem()).unwrap();

    exchange(config.clone(), addr, "haven.example.com")
        .await
        .unwrap();
    exchange(config, addr, "192.0.2.10").await.unwrap();
}

#[tokio::test]
async fn a_client_trusting_another_ca_is_refused_with_a_message_that_says_why() {
    let (_dir, authority) = new_authority(&[]);
    let (_other_dir, other) = new_authority(&[]);
    let addr = serve(&authority).await;
    let config = client_config_for_ca(&other.ca_pem()).unwrap();

    let err = exchange(config, addr, "localhost").await.unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("the server's certificate was refused"),
        "{message}"
    );
    assert!(message.contains("not issued by the fleet CA"), "{message}");
    assert!(message.contains(&other.ca_fingerprint()), "{message}");
    assert!(message.contains("join token"), "{message}");
}

#[tokio::test]
async fn a_hostname_not_in_the_certificate_is_refused() {
    let (_dir, authority) = new_authority(&["haven.example.com"]);
    let addr = serve(&authority).await;

    let config = client_config_for_ca(&authority.ca_pem()).unwrap();
    let err = exchange(config, addr, "elsewhere.example.com")
        .await
        .unwrap_err();
    let message = err.to_string();
    assert!(message.contains("not valid for name"), "{message}");
    assert!(message.contains("elsewhere.example.com"), "{message}");

    let pinned = PinnedCa::new(&authority.ca_fingerprint()).unwrap();
    let err = exchange(
        client_config_pinned(pinned.clone()),
        addr,
        "elsewhere.example.com",
    )
    .await
    .unwrap_err();
    assert!(err.to_string().contains("not valid for name"), "{err}");
    assert_eq!(pinned.learned_ca_pem(), None);
}

#[tokio::test]
async fn a_pinned_ca_with_the_right_fingerprint_connects_and_learns_the_ca() {
    let (_dir, authority) = new_authority(&[]);
    let addr = serve(&authority).await;
    let pinned = PinnedCa::new(&authority.ca_fingerprint()).unwrap();
    assert_eq!(pinned.learned_ca_pem(), None);

    exchange(client_config_pinned(pinned.clone()), addr, "localhost")
        .await
        .unwrap();

    let learned = pinned.learned_ca_pem().expect("the CA was learned");
    assert_eq!(learned, authority.ca_pem());
    // What was learned is enough for every later connection.
    exchange(client_config_for_ca(&learned).unwrap(), addr, "127.0.0.1")
        .await
        .unwrap();
}

#[tokio::test]
async fn a_pinned_fingerprint_is_accepted_in_upper_case_with_colons() {
    let (_dir, authority) = new_authority(&[]);
    let addr = serve(&authority).await;
    let fp = authority.ca_fingerprint().to_uppercase();
    let with_colons: Vec<&str> = (0..32).map(|i| &fp[2 * i..2 * i + 2]).collect();
    let pinned = PinnedCa::new(&with_colons.join(":")).unwrap();

    exchange(client_config_pinned(pinned.clone()), addr, "localhost")
        .await
        .unwrap();
    assert_eq!(pinned.learned_ca_pem(), Some(authority.ca_pem()));
}

#[tokio::test]
async fn a_pinned_ca_with_a_wrong_fingerprint_is_refused() {
    let (_dir, authority) = new_authority(&[]);
    let (_other_dir, other) = new_authority(&[]);
    let addr = serve(&authority).await;
    let pinned = PinnedCa::new(&other.ca_fingerprint()).unwrap();

    let err = exchange(client_config_pinned(pinned.clone()), addr, "localhost")
        .await
        .unwrap_err();

    let message = err.to_string();
    assert!(
        message.contains("no CA certificate with fingerprint"),
        "{message}"
    );
    assert!(message.contains(&other.ca_fingerprint()), "{message}");
    assert!(message.contains("join token"), "{message}");
    assert_eq!(pinned.learned_ca_pem(), None);
}

#[test]
fn a_malformed_fingerprint_is_refused_by_pinned_ca() {
    for bad in ["", "abc", &"g".repeat(64), &"a".repeat(63), &"a".repeat(66)] {
        let err = PinnedCa::new(bad).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidFingerprint { .. }),
            "{bad:?}: {err:?}"
        );
        assert!(err.to_string().contains("64 hexadecimal digits"), "{err}");
    }
}

#[test]
fn a_ca_pem_that_is_not_one_certificate_is_refused() {
    let (_dir, authority) = new_authority(&[]);
    let two = format!("{}{}", authority.ca_pem(), authority.ca_pem());
    for bad in ["", "not pem", two.as_str()] {
        let err = client_config_for_ca(bad).unwrap_err();
        assert!(
            matches!(err, PkiError::InvalidCa { .. }),
            "{bad:?}: {err:?}"
        );
    }
}

/// Serves the connector port's config: each connection gets back the
/// cluster its client certificate names, or "-" if it presented none. Each
/// failed handshake's error is sent on the returned channel.
async fn serve_mutual(
    authority: &Authority,
) -> (SocketAddr, tokio::sync::mpsc::UnboundedReceiver<io::Error>) {
    let acceptor = TlsAcceptor::from(authority.server_config_with_client_auth().unwrap());
    let listener = TcpListener::bind("127.0.0.1:0").await.unwrap();
    let addr = listener.local_addr().unwrap();
    let (refused, refusals) = tokio::sync::mpsc::unbounded_channel();
    tokio::spawn(async move {
        loop {
            let Ok((tcp, _)) = listener.accept().await else {
                return;
            };
            let acceptor = acceptor.clone();
            let refused = refused.clone();
            tokio::spawn(async move {
                let mut tls = match acceptor.accept(tcp).await {
                    Ok(tls) => tls,
                    Err(e) => {
                        let _ = refused.send(e);
                        return;
                    }
                };
                let cluster = tls
                    .get_ref()
                    .1
                    .peer_certificates()
                    .and_then(|certs| certs.first())
                    .map(|cert| client_cluster(cert).unwrap_or_else(|| "?".into()))
                    .unwrap_or_else(|| "-".into());
                let mut byte = [0u8; 1];
                if tls.read_exact(&mut byte).await.is_ok() {
                    let _ = tls.write_all(cluster.as_bytes()).await;
                    let _ = tls.shutdown().await;
                }
            });
        }
    });
    (addr, refusals)
}

/// Asks through `config`, which the server must refuse at the handshake;
/// returns the server's reason.
async fn refused_by_server(
    config: Arc<rustls::ClientConfig>,
    addr: SocketAddr,
    refusals: &mut tokio::sync::mpsc::UnboundedReceiver<io::Error>,
) -> String {
    // With TLS 1.3 the client learns of the refusal only after its handshake,
    // as an alert or a closed connection, whichever it meets first.
    ask_cluster(config, addr)
        .await
        .expect_err("the server answered");
    let reason = timeout(LIMIT, refusals.recv())
        .await
        .expect("the server's handshake to end")
        .expect("a refusal");
    reason.to_string()
}

/// Connects through `config`, sends a byte, and returns what the server answered.
async fn ask_cluster(config: Arc<rustls::ClientConfig>, addr: SocketAddr) -> io::Result<String> {
    let run = async {
        let tcp = TcpStream::connect(addr).await?;
        let name = ServerName::try_from("localhost").unwrap();
        let mut tls = TlsConnector::from(config).connect(name, tcp).await?;
        tls.write_all(b"?").await?;
        let mut answer = String::new();
        tls.read_to_string(&mut answer).await?;
        Ok(answer)
    };
    timeout(LIMIT, run).await.expect("TLS exchange timed out")
}

#[tokio::test]
async fn the_connector_port_reads_the_cluster_from_a_presented_certificate() {
    let (_dir, authority) = new_authority(&[]);
    let (addr, _) = serve_mutual(&authority).await;
    let issued = authority.issue_client("omega").unwrap();
    let config =
        client_config_for_ca_with_cert(&authority.ca_pem(), &issued.cert_pem, &issued.key_pem)
            .unwrap();

    assert_eq!(ask_cluster(config, addr).await.unwrap(), "omega");
}

#[tokio::test]
async fn the_connector_port_still_accepts_a_client_without_a_certificate() {
    let (_dir, authority) = new_authority(&[]);
    let (addr, _) = serve_mutual(&authority).await;
    let config = client_config_for_ca(&authority.ca_pem()).unwrap();

    assert_eq!(ask_cluster(config, addr).await.unwrap(), "-");
}

#[tokio::test]
async fn the_connector_port_refuses_a_certificate_from_another_ca_at_the_handshake() {
    let (_dir, authority) = new_authority(&[]);
    let (_other_dir, other) = new_authority(&[]);
    let (addr, mut refusals) = serve_mutual(&authority).await;
    let foreign = other.issue_client("omega").unwrap();
    let config =
        client_config_for_ca_with_cert(&authority.ca_pem(), &foreign.cert_pem, &foreign.key_pem)
            .unwrap();

    let reason = refused_by_server(config, addr, &mut refusals).await;
    // Every fleet CA has the same subject, so the server finds its own, and the signature fails.
    assert!(reason.contains("BadSignature"), "{reason}");
}

#[tokio::test]
async fn the_connector_port_refuses_the_server_certificate_as_a_client_certificate() {
    let (dir, authority) = new_authority(&[]);
    let (addr, mut refusals) = serve_mutual(&authority).await;
    let read = |file: &str| std::fs::read_to_string(dir.path().join(file)).unwrap();
    let config = client_config_for_ca_with_cert(
        &authority.ca_pem(),
        &read("server.pem"),
        &read("server.key"),
    )
    .unwrap();

    let reason = refused_by_server(config, addr, &mut refusals).await;
    assert!(
        reason.contains("does not allow extended key usage for client authentication"),
        "{reason}"
    );
}

#[test]
fn a_client_certificate_with_a_key_that_is_not_its_own_is_refused() {
    let (_dir, authority) = new_authority(&[]);
    let one = authority.issue_client("omega").unwrap();
    let two = authority.issue_client("omega").unwrap();
    for (cert, key) in [
        (one.cert_pem.as_str(), two.key_pem.as_str()),
        ("", one.key_pem.as_str()),
        (one.cert_pem.as_str(), "not a key"),
    ] {
        let err = client_config_for_ca_with_cert(&authority.ca_pem(), cert, key).unwrap_err();
        assert!(matches!(err, PkiError::InvalidClientCert { .. }), "{err:?}");
    }
}
