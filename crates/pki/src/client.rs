//! Client (connector) side: configs that trust exactly the fleet CA.
//!
//! Both verifiers below end in the same check, rustls' WebPKI verifier with a
//! root store holding only the fleet CA (signatures, validity, hostname); they
//! differ in where the CA comes from. Their refusals are rewritten into a
//! [`PkiError::UntrustedServer`] so the handshake error tells the operator
//! what to do, not just "UnknownIssuer".
//!
//! A connector that holds a certificate from its join presents it
//! ([`client_config_for_ca_with_cert`]); the server then knows at the
//! handshake which cluster the connector was admitted for.

use std::path::Path;
use std::sync::{Arc, Mutex, OnceLock};

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{
    CertificateError, ClientConfig, DigitallySignedStruct, OtherError, RootCertStore,
    SignatureScheme,
};

use crate::authority::trust_only;
use crate::{cert_pem, fingerprint, provider, PkiError};

/// A client config that trusts exactly this CA (PEM), verifying hostnames normally.
///
/// `ca_pem` must hold exactly one certificate, the fleet CA (as from
/// [`crate::Authority::ca_pem`] or [`PinnedCa::learned_ca_pem`]). A server
/// that presents anything else fails the handshake with an
/// [`PkiError::UntrustedServer`] message.
pub fn client_config_for_ca(ca_pem: &str) -> Result<Arc<ClientConfig>, PkiError> {
    Ok(client_config(Arc::new(CaVerifier::from_pem(ca_pem)?)))
}

/// Like [`client_config_for_ca`], and presents a client certificate: `cert_pem` (the
/// certificate, optionally followed by its chain) with its private key `key_pem` (PKCS#8,
/// PKCS#1 or SEC1 PEM), as [`crate::Authority::issue_client`] issued them.
///
/// Errors: the CA as for [`client_config_for_ca`]; a certificate or key that is not PEM, or a
/// key that does not go with the certificate ([`PkiError::InvalidClientCert`]).
pub fn client_config_for_ca_with_cert(
    ca_pem: &str,
    cert_pem: &str,
    key_pem: &str,
) -> Result<Arc<ClientConfig>, PkiError> {
    let bad = |problem: String| PkiError::InvalidClientCert { problem };
    let verifier = CaVerifier::from_pem(ca_pem)?;
    let chain = CertificateDer::pem_slice_iter(cert_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(format!("the certificate is not valid PEM ({e})")))?;
    if chain.is_empty() {
        return Err(bad(
            "the certificate text holds no -----BEGIN CERTIFICATE-----".into(),
        ));
    }
    let key = PrivateKeyDer::from_pem_slice(key_pem.as_bytes())
        .map_err(|e| bad(format!("the key text holds no usable private key ({e})")))?;
    let config = builder(Arc::new(verifier))
        .with_client_auth_cert(chain, key)
        .map_err(|e| bad(format!("the key does not go with the certificate ({e})")))?;
    Ok(Arc::new(config))
}

/// The CA certificate of a PEM text that must hold exactly one.
pub(crate) fn one_ca(ca_pem: &str) -> Result<CertificateDer<'static>, PkiError> {
    let certs = CertificateDer::pem_slice_iter(ca_pem.as_bytes())
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| PkiError::InvalidCa {
            problem: format!("it is not valid PEM ({e})"),
        })?;
    <[_; 1]>::try_from(certs)
        .map(|[ca]| ca)
        .map_err(|certs| PkiError::InvalidCa {
            problem: format!(
                "it holds {} certificates where exactly one was expected",
                certs.len()
            ),
        })
}

/// A client config for a first contact where only the CA's fingerprint is known (from a join
/// token), verifying the server with `verifier`. See [`PinnedCa`].
pub fn client_config_pinned(verifier: Arc<PinnedCa>) -> Arc<ClientConfig> {
    client_config(verifier)
}

fn client_config(verifier: Arc<dyn ServerCertVerifier>) -> Arc<ClientConfig> {
    Arc::new(builder(verifier).with_no_client_auth())
}

fn builder(
    verifier: Arc<dyn ServerCertVerifier>,
) -> rustls::ConfigBuilder<ClientConfig, rustls::client::WantsClientCert> {
    ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        // Cannot fail: the ring provider has cipher suites for every default version.
        .expect("the ring provider supports rustls' default protocol versions")
        .dangerous()
        .with_custom_certificate_verifier(verifier)
}

/// A client config for a first contact where only the CA's fingerprint is known (from a join token):
/// the server must present a chain that includes a CA certificate whose SHA-256 matches `fingerprint`;
/// the chain is then verified against that CA exactly as client_config_for_ca would (signatures, validity,
/// hostname). Anything else fails the handshake with a clear error. After the handshake the caller can get
/// the CA PEM from `PinnedCa::learned_ca_pem()` to store it for later connections.
///
/// Use one `PinnedCa` per first contact, with [`client_config_pinned`].
#[derive(Debug)]
pub struct PinnedCa {
    /// Lowercase hex, 64 digits.
    fingerprint: String,
    algorithms: WebPkiSupportedAlgorithms,
    learned: Mutex<Option<CertificateDer<'static>>>,
}

impl PinnedCa {
    /// A verifier that accepts only a server whose chain includes the CA with this SHA-256
    /// `fingerprint`: 64 hexadecimal digits, in either case, optionally separated by colons
    /// (as `openssl x509 -fingerprint -sha256` prints them).
    pub fn new(fingerprint: &str) -> Result<Arc<PinnedCa>, PkiError> {
        let digits: String = fingerprint.chars().filter(|c| *c != ':').collect();
        if !digits.chars().all(|c| c.is_ascii_hexdigit()) {
            return Err(PkiError::InvalidFingerprint {
                problem: "it contains characters other than hexadecimal digits and colons".into(),
            });
        }
        if digits.len() != 64 {
            return Err(PkiError::InvalidFingerprint {
                problem: format!("it has {} hexadecimal digits", digits.len()),
            });
        }
        Ok(Arc::new(PinnedCa {
            fingerprint: digits.to_ascii_lowercase(),
            algorithms: provider().signature_verification_algorithms,
            learned: Mutex::new(None),
        }))
    }

    /// The CA certificate as PEM, once a handshake through this verifier has succeeded; the
    /// same text as [`crate::Authority::ca_pem`] on the server. Store it and use
    /// [`client_config_for_ca`] from then on.
    pub fn learned_ca_pem(&self) -> Option<String> {
        let learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        learned.as_ref().map(cert_pem)
    }
}

impl ServerCertVerifier for PinnedCa {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let Some(ca) = intermediates
            .iter()
            .find(|cert| fingerprint(cert) == self.fingerprint)
        else {
            return Err(untrusted(
                format!(
                    "its chain holds no CA certificate with fingerprint {}",
                    self.fingerprint
                ),
                "this address may belong to another Haven server, or the join token is out of \
                 date; check the address, or get a new join token",
            ));
        };
        let verifier = CaVerifier::new(ca).map_err(|problem| {
            untrusted(
                format!("the certificate with the pinned fingerprint is no CA: {problem}"),
                "check that this address is the Haven server that issued the join token",
            )
        })?;
        verifier.verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)?;
        let mut learned = self.learned.lock().unwrap_or_else(|e| e.into_inner());
        *learned = Some(ca.clone().into_owned());
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// rustls' WebPKI verifier trusting only one CA, with refusals explained.
#[derive(Debug)]
struct CaVerifier {
    inner: Arc<WebPkiServerVerifier>,
    ca_fingerprint: String,
}

impl CaVerifier {
    /// A verifier trusting only the one CA certificate in `ca_pem`.
    fn from_pem(ca_pem: &str) -> Result<CaVerifier, PkiError> {
        let ca = one_ca(ca_pem)?;
        CaVerifier::new(&ca).map_err(|problem| PkiError::InvalidCa { problem })
    }

    /// A verifier trusting only `ca`, or why `ca` cannot be a trust anchor.
    fn new(ca: &CertificateDer<'_>) -> Result<CaVerifier, String> {
        let roots = trust_only(ca).map_err(|e| format!("it is not a CA certificate ({e})"))?;
        let inner = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider())
            .build()
            .map_err(|e| format!("it cannot be trusted ({e})"))?;
        Ok(CaVerifier {
            inner,
            ca_fingerprint: fingerprint(ca),
        })
    }
}

impl ServerCertVerifier for CaVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        self.inner
            .verify_server_cert(end_entity, intermediates, server_name, ocsp_response, now)
            .map_err(|err| explain(err, &self.ca_fingerprint))
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls12_signature(message, cert, dss)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        self.inner.verify_tls13_signature(message, cert, dss)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.inner.supported_verify_schemes()
    }
}

/// Rewrites a WebPKI refusal into an [`PkiError::UntrustedServer`] that says what to do.
fn explain(err: rustls::Error, ca_fingerprint: &str) -> rustls::Error {
    use CertificateError as E;
    let rustls::Error::InvalidCertificate(cert_err) = &err else {
        return untrusted(
            err.to_string(),
            "check that this address is a Haven server of this fleet",
        );
    };
    match cert_err {
        E::UnknownIssuer | E::BadSignature => untrusted(
            format!("it is not issued by the fleet CA with fingerprint {ca_fingerprint}"),
            "this address may belong to another Haven server, or the server's CA was \
             re-created; check the address, or join again with a new join token",
        ),
        E::NotValidForName | E::NotValidForNameContext { .. } => untrusted(
            cert_err.to_string(),
            "connect using a name the certificate lists, or add this name to the server's \
             names (the server re-issues its certificate when it starts)",
        ),
        E::Expired | E::ExpiredContext { .. } | E::NotValidYet | E::NotValidYetContext { .. } => {
            untrusted(
                cert_err.to_string(),
                "check that the clocks of both machines are right (the server renews its \
             certificate when it starts)",
            )
        }
        _ => untrusted(
            cert_err.to_string(),
            "check that this address is a Haven server of this fleet",
        ),
    }
}

/// A handshake error carrying a [`PkiError::UntrustedServer`].
fn untrusted(reason: String, fix: &str) -> rustls::Error {
    rustls::Error::Other(OtherError(Arc::new(PkiError::UntrustedServer {
        reason,
        fix: fix.to_owned(),
    })))
}

/// A client config (ring, TLS 1.2 and 1.3, no client certificate) that
/// trusts `roots` and checks the peer's name as usual.
pub fn client_config_with_roots(roots: Arc<RootCertStore>) -> Arc<ClientConfig> {
    let tls = ClientConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .expect("the ring provider supports rustls' default protocol versions")
        .with_root_certificates(roots)
        .with_no_client_auth();
    Arc::new(tls)
}

/// The CA certificates of a PEM file, as the only trust anchors.
pub fn roots_from_file(path: &Path) -> Result<RootCertStore, String> {
    let pem = std::fs::read(path).map_err(|e| format!("cannot read it: {e}"))?;
    let certs = CertificateDer::pem_slice_iter(&pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("it is not PEM ({e})"))?;
    if certs.is_empty() {
        return Err("it holds no certificate; it must be the PEM (-----BEGIN \
                    CERTIFICATE-----) of the CA that signed the peer's certificate"
            .into());
    }
    let mut roots = RootCertStore::empty();
    for cert in certs {
        roots
            .add(cert)
            .map_err(|e| format!("a certificate in it cannot be a trusted CA ({e})"))?;
    }
    Ok(roots)
}

/// The system's trust store (rustls-native-certs: `SSL_CERT_FILE`,
/// `SSL_CERT_DIR` or the distribution's bundle), loaded once it is found
/// non-empty.
pub fn system_roots() -> Result<Arc<RootCertStore>, String> {
    static ROOTS: OnceLock<Arc<RootCertStore>> = OnceLock::new();
    if let Some(roots) = ROOTS.get() {
        return Ok(roots.clone());
    }
    let found = rustls_native_certs::load_native_certs();
    let mut roots = RootCertStore::empty();
    let (added, _unusable) = roots.add_parsable_certificates(found.certs);
    if added == 0 {
        let why = found
            .errors
            .first()
            .map(|e| format!(" ({e})"))
            .unwrap_or_default();
        return Err(format!(
            "the system trust store holds no CA certificate{why}"
        ));
    }
    Ok(ROOTS.get_or_init(|| Arc::new(roots)).clone())
}

/// The TLS handshake as a client over `stream`, checking that the peer's
/// certificate names `host` (a DNS name or an IP address) under `config`'s
/// trust. The error says which: a host that is no name, or the handshake's
/// own reason (an untrusted or misnamed certificate, a peer that is not
/// TLS). Callers bound it in time.
pub async fn connect_tls<S>(
    stream: S,
    host: &str,
    config: Arc<ClientConfig>,
) -> Result<tokio_rustls::client::TlsStream<S>, String>
where
    S: tokio::io::AsyncRead + tokio::io::AsyncWrite + Unpin,
{
    let name = ServerName::try_from(host.to_string())
        .map_err(|_| format!("`{host}` is not a host name or address"))?;
    tokio_rustls::TlsConnector::from(config)
        .connect(name, stream)
        .await
        .map_err(|e| e.to_string())
}
