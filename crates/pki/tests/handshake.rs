//! Real TLS handshakes over loopback TCP between the configs this crate builds.

use std::io;
use std::net::SocketAddr;
use std::time::Duration;

use haven_pki::{
    client_config_for_ca, client_config_pinned, Authority, PinnedCa, PkiError, ServerName,
    TlsAcceptor, TlsConnector,
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
