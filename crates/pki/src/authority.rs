//! The fleet CA and the server certificate, kept in one directory.
//!
//! Files: `ca.pem`, `ca.key` (the CA; never replaced automatically, since
//! every connector trusts it) and `server.pem`, `server.key` (re-issued
//! whenever they stop fitting: a requested name is missing, expiry is near,
//! the key does not match, or the CA no longer verifies them).
//!
//! Connector certificates ([`Authority::issue_client`]) are issued on
//! demand, at a connector's join, and kept by the connector only: the
//! server stores neither them nor their keys. They carry ExtendedKeyUsage
//! clientAuth only, so a connector certificate can never serve as a server
//! certificate, nor the server's as a connector's.
//!
//! The CA is always one this crate created, so its issuer parameters are
//! rebuilt from constants rather than parsed back from `ca.pem`; a freshly
//! issued server certificate is verified against `ca.pem` before it is
//! written, which catches a CA that is not ours or has expired.

use std::fmt;
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::time::{Duration, SystemTime};

use rcgen::string::Ia5String;
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, PublicKeyData, SanType,
};
use rustls::client::{verify_server_cert_signed_by_trust_anchor, verify_server_name};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::server::danger::ClientCertVerifier;
use rustls::server::{ParsedCertificate, WebPkiClientVerifier};
use rustls::RootCertStore;
use time::OffsetDateTime;

use crate::files::{self, DirLock, CERT_MODE, KEY_MODE};
use crate::identity::cluster_uri;
use crate::{cert_pem, fingerprint, provider, PkiError};

const CA_CERT: &str = "ca.pem";
const CA_KEY: &str = "ca.key";
const SERVER_CERT: &str = "server.pem";
const SERVER_KEY: &str = "server.key";

/// Subject of the CA. Changing it would stop existing CAs from issuing (see module doc).
const CA_COMMON_NAME: &str = "Haven fleet CA";
const CA_ORGANIZATION: &str = "Haven";
const SERVER_COMMON_NAME: &str = "Haven server";

/// Names every server certificate carries, so local tools can always connect.
const DEFAULT_NAMES: [&str; 3] = ["localhost", "127.0.0.1", "::1"];

const DAY: Duration = Duration::from_secs(24 * 60 * 60);
const CA_LIFETIME: Duration = Duration::from_secs(10 * 365 * 24 * 60 * 60);
const SERVER_LIFETIME: Duration = Duration::from_secs(2 * 365 * 24 * 60 * 60);
const CLIENT_LIFETIME: Duration = Duration::from_secs(2 * 365 * 24 * 60 * 60);
/// A server certificate this close to expiry is re-issued on load.
const RENEW_BEFORE: Duration = Duration::from_secs(30 * 24 * 60 * 60);
/// Certificates start this long before their issue, to tolerate clock skew between machines.
const BACKDATE: Duration = DAY;

/// The fleet CA and the server's certificate, kept in a directory.
///
/// Built once at start-up by [`Authority::load_or_create`]; cheap to keep
/// and to share. Its `Debug` output shows only the CA fingerprint.
pub struct Authority {
    ca_der: CertificateDer<'static>,
    /// Kept in memory (it is read at load anyway) to issue connector certificates.
    ca_key: KeyPair,
    /// `DIR/ca.pem`, for error messages.
    ca_path: PathBuf,
    ca_fingerprint: String,
    /// Verifies connector certificates against the CA alone; accepts a peer without one.
    client_verifier: Arc<dyn ClientCertVerifier>,
    /// The server certificate followed by the CA certificate.
    pub(crate) server_chain: Vec<CertificateDer<'static>>,
    pub(crate) server_key: PrivatePkcs8KeyDer<'static>,
}

impl Authority {
    /// Loads DIR/ca.pem, DIR/ca.key, DIR/server.pem, DIR/server.key, creating them if missing
    /// (keys written with mode 0600, written atomically). The server certificate is signed by the CA
    /// and has SANs: "localhost", 127.0.0.1, ::1, plus `names` (DNS names or IP addresses). If the
    /// existing server cert lacks one of `names`, it is re-issued (the CA is kept).
    ///
    /// The server certificate is also re-issued, with a new key, when it expires within 30
    /// days, does not match `server.key`, or is not signed by the CA. A re-issued certificate
    /// carries exactly the default names plus `names`. The directory is created (mode 0700)
    /// if missing, and is locked (via `DIR/.lock`) while this runs, so concurrent callers
    /// cannot create two CAs.
    ///
    /// Errors: a name that is not a DNS name or IP address; `ca.pem` without `ca.key`; a CA
    /// file that cannot be parsed or whose key does not match; a CA that has expired; I/O.
    pub fn load_or_create(dir: &Path, names: &[String]) -> Result<Authority, PkiError> {
        let names = server_names(names)?;
        files::ensure_dir(dir)?;
        let _lock = DirLock::acquire(dir)?;

        let ca = load_or_create_ca(dir)?;
        let roots = trust_only(&ca.der).map_err(|e| PkiError::BadCaFile {
            path: dir.join(CA_CERT),
            problem: format!("it is not a CA certificate ({e})"),
        })?;
        let (server_der, server_key) = match load_server(dir, &roots, &names)? {
            Some(server) => server,
            None => issue_server(dir, &ca.key, &roots, &names)?,
        };
        let client_verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| PkiError::BadCaFile {
                    path: dir.join(CA_CERT),
                    problem: format!("it cannot verify connector certificates ({e})"),
                })?;

        Ok(Authority {
            ca_fingerprint: fingerprint(&ca.der),
            server_chain: vec![server_der, ca.der.clone()],
            ca_der: ca.der,
            ca_key: ca.key,
            ca_path: dir.join(CA_CERT),
            client_verifier,
            server_key: PrivatePkcs8KeyDer::from(server_key.serialize_der()),
        })
    }

    /// The CA kept in `dir`, as PEM text (certificate, key), if it has
    /// one: what the servers of a group share.
    pub fn ca_files(dir: &Path) -> Result<Option<(String, String)>, PkiError> {
        let text = |name: &str| -> Result<Option<String>, PkiError> {
            Ok(files::read_optional(&dir.join(name))?
                .map(|bytes| String::from_utf8_lossy(&bytes).into_owned()))
        };
        Ok(text(CA_CERT)?.zip(text(CA_KEY)?))
    }

    /// Makes the CA given as PEM text (another server's, shared) the CA of
    /// `dir`, replacing any: checked first (a certificate and its key),
    /// the key written mode 0600. The server certificate, no longer issued
    /// by it, is issued again at the next [`Authority::load_or_create`].
    pub fn install_ca(dir: &Path, cert_pem: &str, key_pem: &str) -> Result<(), PkiError> {
        let bad = |file: &str, problem: String| PkiError::BadCaFile {
            path: dir.join(file),
            problem,
        };
        let cert = parse_single_cert(cert_pem.as_bytes()).map_err(|p| bad(CA_CERT, p))?;
        let key = parse_key(key_pem.as_bytes()).map_err(|p| bad(CA_KEY, p))?;
        if keys_match(&cert, &key) != Ok(true) {
            return Err(bad(
                CA_KEY,
                "it is not the key of the CA certificate given".into(),
            ));
        }
        files::ensure_dir(dir)?;
        let _lock = DirLock::acquire(dir)?;
        files::write_atomic(&dir.join(CA_KEY), key_pem.as_bytes(), KEY_MODE)?;
        files::write_atomic(&dir.join(CA_CERT), cert_pem.as_bytes(), CERT_MODE)
    }

    /// The CA certificate as PEM text, to hand to connectors (see [`crate::client_config_for_ca`]).
    pub fn ca_pem(&self) -> String {
        cert_pem(&self.ca_der)
    }

    /// SHA-256 of the CA certificate's DER, lowercase hex (64 chars).
    pub fn ca_fingerprint(&self) -> String {
        self.ca_fingerprint.clone()
    }

    /// TLS server config: presents server cert + CA cert as its chain, no client auth.
    ///
    /// Uses the ring provider with rustls' safe default protocol versions (TLS 1.2 and 1.3)
    /// and no ALPN; clone the config to change such settings.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_no_client_auth()
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )?;
        Ok(Arc::new(config))
    }

    /// TLS server config for the connector port: like [`Authority::server_config`], but it
    /// asks the client for a certificate. A client may send none (connectors that are joining,
    /// or joined before connector certificates existed); one that sends a certificate must
    /// send one the fleet CA issued for client authentication, still valid, or the handshake
    /// fails. After the handshake, read the cluster with [`crate::client_cluster`].
    pub fn server_config_with_client_auth(&self) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(self.client_verifier.clone())
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )?;
        Ok(Arc::new(config))
    }

    /// A fresh key pair and a certificate for the connector of `cluster`, signed by the CA.
    ///
    /// The certificate's subject is `CN=CLUSTER`, its one subject alternative name the URI
    /// `haven-connector:CLUSTER` (see [`crate::client_cluster`] for the encoding), its
    /// ExtendedKeyUsage clientAuth only; it is valid from a day ago (clock skew) for two
    /// years. Nothing is written to disk: the caller hands both PEM texts to the connector.
    ///
    /// Errors: an empty cluster name; the CA cannot issue a certificate that verifies (e.g. it
    /// expires before the certificate would); key generation.
    pub fn issue_client(&self, cluster: &str) -> Result<IssuedClient, PkiError> {
        if cluster.is_empty() {
            return Err(PkiError::InvalidCluster {
                cluster: cluster.to_owned(),
            });
        }
        let (der, key) = issue_leaf(
            &self.ca_key,
            cluster,
            vec![SanType::URI(Ia5String::try_from(cluster_uri(cluster))?)],
            ExtendedKeyUsagePurpose::ClientAuth,
            CLIENT_LIFETIME,
        )?;
        // The check the server makes at every handshake, made once here, so a CA that can
        // no longer issue usable certificates fails the join rather than every session after.
        self.client_verifier
            .verify_client_cert(&der, &[], UnixTime::now())
            .map_err(|e| PkiError::CaUnusable {
                path: self.ca_path.clone(),
                reason: e.to_string(),
            })?;
        Ok(IssuedClient {
            cert_pem: cert_pem(&der),
            key_pem: key.serialize_pem(),
        })
    }
}

impl Authority {
    /// Issues a certificate for a cluster engine's socket (`haven engine
    /// --tls-cert --tls-key`), signed by the fleet CA, so the server's
    /// `tls://` links trust it: SANs localhost, 127.0.0.1, ::1 and `names`
    /// (the host names or addresses the server dials), ServerAuth, two
    /// years. Writes `DIR/engine.pem` (the certificate, then the CA),
    /// `DIR/engine.key` (mode 0600) and `DIR/ca.pem`; returns their paths.
    ///
    /// Errors: a name that is not a DNS name or IP address; I/O.
    pub fn issue_engine(&self, names: &[String], dir: &Path) -> Result<EngineFiles, PkiError> {
        let names = server_names(names)?;
        files::ensure_dir(dir)?;
        let (der, key) = issue_leaf(
            &self.ca_key,
            "Haven engine",
            names.iter().map(san).collect::<Result<_, _>>()?,
            ExtendedKeyUsagePurpose::ServerAuth,
            SERVER_LIFETIME,
        )?;
        let issued = EngineFiles {
            cert: dir.join("engine.pem"),
            key: dir.join("engine.key"),
            ca: dir.join(CA_CERT),
        };
        files::write_atomic(&issued.key, key.serialize_pem().as_bytes(), KEY_MODE)?;
        let chain = format!("{}{}", cert_pem(&der), self.ca_pem());
        files::write_atomic(&issued.cert, chain.as_bytes(), CERT_MODE)?;
        files::write_atomic(&issued.ca, self.ca_pem().as_bytes(), CERT_MODE)?;
        Ok(issued)
    }
}

/// Where [`Authority::issue_engine`] wrote an engine's TLS files.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EngineFiles {
    /// The certificate and the CA after it (`--tls-cert`).
    pub cert: PathBuf,
    /// Its private key (`--tls-key`), mode 0600.
    pub key: PathBuf,
    /// The fleet CA alone.
    pub ca: PathBuf,
}

/// A connector's certificate and private key, as [`Authority::issue_client`] makes them.
///
/// Its `Debug` output leaves out the key.
#[derive(Clone, PartialEq, Eq)]
pub struct IssuedClient {
    /// The certificate, PEM (`-----BEGIN CERTIFICATE-----`).
    pub cert_pem: String,
    /// Its private key, PEM PKCS#8 (`-----BEGIN PRIVATE KEY-----`). Keep it private (mode 0600).
    pub key_pem: String,
}

impl fmt::Debug for IssuedClient {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("IssuedClient")
            .field("cert_pem", &self.cert_pem)
            .finish_non_exhaustive()
    }
}

/// A TLS server config from a certificate and key of the operator's own
/// (PEM files: the chain, leaf first, and its private key in PKCS#8, PKCS#1
/// or SEC1 form), for HTTPS with a certificate browsers already trust.
pub fn server_config_from_files(
    cert: &Path,
    key: &Path,
) -> Result<Arc<rustls::ServerConfig>, PkiError> {
    let read = |path: &Path| std::fs::read(path).map_err(|e| PkiError::io("read", path, e));
    let bad = |path: &Path, problem: String| PkiError::BadOwnFile {
        path: path.to_path_buf(),
        problem,
    };
    let chain = CertificateDer::pem_slice_iter(&read(cert)?)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| bad(cert, format!("it is not valid PEM ({e})")))?;
    if chain.is_empty() {
        return Err(bad(
            cert,
            "it holds no certificate (-----BEGIN CERTIFICATE-----)".into(),
        ));
    }
    let private = PrivateKeyDer::from_pem_slice(&read(key)?)
        .map_err(|e| bad(key, format!("it holds no usable private key ({e})")))?;
    let config = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| {
            bad(
                cert,
                format!("it does not go with the key in {} ({e})", key.display()),
            )
        })?;
    Ok(Arc::new(config))
}

impl fmt::Debug for Authority {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Authority")
            .field("ca_fingerprint", &self.ca_fingerprint)
            .finish_non_exhaustive()
    }
}

/// A root store holding only `ca`.
pub(crate) fn trust_only(ca: &CertificateDer<'_>) -> Result<RootCertStore, rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(ca.clone().into_owned())?;
    Ok(roots)
}

struct Ca {
    der: CertificateDer<'static>,
    key: KeyPair,
}

fn load_or_create_ca(dir: &Path) -> Result<Ca, PkiError> {
    let cert_path = dir.join(CA_CERT);
    let key_path = dir.join(CA_KEY);
    let bad_key = |problem: String| PkiError::BadCaFile {
        path: key_path.clone(),
        problem,
    };
    let cert = files::read_optional(&cert_path)?;
    let key = files::read_optional(&key_path)?;
    let key = match key {
        Some(pem) => parse_key(&pem).map_err(bad_key)?,
        None if cert.is_some() => {
            return Err(PkiError::MissingCaKey {
                cert: cert_path,
                key: key_path,
            })
        }
        None => {
            let key = KeyPair::generate()?;
            files::write_atomic(&key_path, key.serialize_pem().as_bytes(), KEY_MODE)?;
            key
        }
    };
    let der = match cert {
        Some(pem) => {
            let der = parse_single_cert(&pem).map_err(|problem| PkiError::BadCaFile {
                path: cert_path.clone(),
                problem,
            })?;
            if !keys_match(&der, &key).map_err(|problem| PkiError::BadCaFile {
                path: cert_path.clone(),
                problem,
            })? {
                return Err(bad_key(format!(
                    "it is not the key of the certificate in {}",
                    cert_path.display()
                )));
            }
            der
        }
        // Either a new CA, or a crash left the key without its certificate: nobody can
        // have seen that certificate yet, so making it now is safe.
        None => {
            let der = ca_params(now()).self_signed(&key)?.der().clone();
            files::write_atomic(&cert_path, cert_pem(&der).as_bytes(), CERT_MODE)?;
            der
        }
    };
    Ok(Ca { der, key })
}

/// The existing server certificate and key, if both exist and still fit.
fn load_server(
    dir: &Path,
    roots: &RootCertStore,
    names: &[ServerName<'static>],
) -> Result<Option<(CertificateDer<'static>, KeyPair)>, PkiError> {
    let cert = files::read_optional(&dir.join(SERVER_CERT))?;
    let key = files::read_optional(&dir.join(SERVER_KEY))?;
    // Anything unreadable here is simply re-issued: the server files are derived data.
    let (Some(cert), Some(key)) = (cert, key) else {
        return Ok(None);
    };
    let (Ok(cert), Ok(key)) = (parse_single_cert(&cert), parse_key(&key)) else {
        return Ok(None);
    };
    if keys_match(&cert, &key) != Ok(true) {
        return Ok(None);
    }
    let now = SystemTime::now();
    let fits = |at: SystemTime| check_server_cert(&cert, roots, names, at).is_ok();
    if !fits(now) || !fits(now + RENEW_BEFORE) {
        return Ok(None);
    }
    Ok(Some((cert, key)))
}

/// Issues and writes a new server key and certificate.
fn issue_server(
    dir: &Path,
    ca_key: &KeyPair,
    roots: &RootCertStore,
    names: &[ServerName<'static>],
) -> Result<(CertificateDer<'static>, KeyPair), PkiError> {
    let (der, key) = issue_leaf(
        ca_key,
        SERVER_COMMON_NAME,
        names.iter().map(san).collect::<Result<_, _>>()?,
        ExtendedKeyUsagePurpose::ServerAuth,
        SERVER_LIFETIME,
    )?;
    check_server_cert(&der, roots, names, SystemTime::now()).map_err(|e| PkiError::CaUnusable {
        path: dir.join(CA_CERT),
        reason: e.to_string(),
    })?;
    // Key first: a crash in between leaves a mismatched pair, which the next load re-issues.
    files::write_atomic(
        &dir.join(SERVER_KEY),
        key.serialize_pem().as_bytes(),
        KEY_MODE,
    )?;
    files::write_atomic(&dir.join(SERVER_CERT), cert_pem(&der).as_bytes(), CERT_MODE)?;
    Ok((der, key))
}

/// A new key and an end-entity certificate for it, signed by the CA, for one `usage`,
/// valid from [`BACKDATE`] ago for `lifetime`.
fn issue_leaf(
    ca_key: &KeyPair,
    common_name: &str,
    names: Vec<SanType>,
    usage: ExtendedKeyUsagePurpose,
    lifetime: Duration,
) -> Result<(CertificateDer<'static>, KeyPair), PkiError> {
    let now = now();
    let issuer = Issuer::new(ca_params(now), ca_key);

    let mut params = CertificateParams::default();
    params.distinguished_name = distinguished_name(common_name);
    params.subject_alt_names = names;
    params.is_ca = IsCa::ExplicitNoCa;
    params.key_usages = vec![KeyUsagePurpose::DigitalSignature];
    params.extended_key_usages = vec![usage];
    params.use_authority_key_identifier_extension = true;
    params.not_before = now - BACKDATE;
    params.not_after = now + lifetime;

    let key = KeyPair::generate()?;
    let der = params.signed_by(&key, &issuer)?.der().clone();
    Ok((der, key))
}

/// Parameters of the CA certificate; also what [`Issuer`] needs to sign under it.
fn ca_params(now: OffsetDateTime) -> CertificateParams {
    let mut params = CertificateParams::default();
    let mut dn = distinguished_name(CA_COMMON_NAME);
    dn.push(DnType::OrganizationName, CA_ORGANIZATION);
    params.distinguished_name = dn;
    // Path length 0: this CA signs server and connector certificates, never another CA.
    params.is_ca = IsCa::Ca(BasicConstraints::Constrained(0));
    params.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    params.not_before = now - BACKDATE;
    params.not_after = now + CA_LIFETIME;
    params
}

fn distinguished_name(common_name: &str) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, common_name);
    dn
}

/// Checks that `cert` is signed by the CA in `roots`, valid at `at`, and valid for every name.
fn check_server_cert(
    cert: &CertificateDer<'_>,
    roots: &RootCertStore,
    names: &[ServerName<'_>],
    at: SystemTime,
) -> Result<(), rustls::Error> {
    let parsed = ParsedCertificate::try_from(cert)?;
    let at = UnixTime::since_unix_epoch(
        at.duration_since(SystemTime::UNIX_EPOCH)
            .unwrap_or_default(),
    );
    let algorithms = provider().signature_verification_algorithms.all;
    verify_server_cert_signed_by_trust_anchor(&parsed, roots, &[], at, algorithms)?;
    names
        .iter()
        .try_for_each(|name| verify_server_name(&parsed, name))
}

/// The default names plus `names`, validated, lowercased and without duplicates.
fn server_names(names: &[String]) -> Result<Vec<ServerName<'static>>, PkiError> {
    let mut out: Vec<ServerName<'static>> = Vec::new();
    for name in DEFAULT_NAMES
        .into_iter()
        .chain(names.iter().map(String::as_str))
    {
        let parsed =
            ServerName::try_from(name.to_ascii_lowercase()).map_err(|_| PkiError::InvalidName {
                name: name.to_owned(),
            })?;
        if !out.contains(&parsed) {
            out.push(parsed);
        }
    }
    Ok(out)
}

fn san(name: &ServerName<'_>) -> Result<SanType, PkiError> {
    match name {
        ServerName::DnsName(dns) => Ok(SanType::DnsName(Ia5String::try_from(dns.as_ref())?)),
        ServerName::IpAddress(ip) => Ok(SanType::IpAddress(IpAddr::from(*ip))),
        other => Err(PkiError::InvalidName {
            name: format!("{other:?}"),
        }),
    }
}

/// The one certificate in a PEM file, or why there is not exactly one.
fn parse_single_cert(pem: &[u8]) -> Result<CertificateDer<'static>, String> {
    let certs = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|e| format!("it is not valid PEM ({e})"))?;
    match <[_; 1]>::try_from(certs) {
        Ok([cert]) => Ok(cert),
        Err(certs) => Err(format!(
            "it holds {} certificates where exactly one was expected",
            certs.len()
        )),
    }
}

/// A PKCS#8 private key from PEM, or why not.
fn parse_key(pem: &[u8]) -> Result<KeyPair, String> {
    let text = std::str::from_utf8(pem).map_err(|_| "it is not PEM text".to_owned())?;
    KeyPair::from_pem(text).map_err(|e| format!("it does not hold a usable private key ({e})"))
}

/// Whether `cert` certifies the public half of `key`.
fn keys_match(cert: &CertificateDer<'_>, key: &KeyPair) -> Result<bool, String> {
    let parsed = ParsedCertificate::try_from(cert)
        .map_err(|e| format!("it is not a valid certificate ({e})"))?;
    Ok(parsed.subject_public_key_info().as_ref() == key.subject_public_key_info().as_slice())
}

fn now() -> OffsetDateTime {
    let since_epoch = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap_or_default();
    OffsetDateTime::UNIX_EPOCH + since_epoch
}
