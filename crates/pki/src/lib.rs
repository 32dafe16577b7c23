//! The fleet's certificate authority and the TLS configurations built on it.
//!
//! `haven connector` runs beside a cluster and dials out to `haven server`;
//! this crate is what makes that link TLS. The server keeps a private CA and a
//! server certificate signed by it in one directory ([`Authority`]); a
//! connector trusts exactly that CA, either from its PEM
//! ([`client_config_for_ca`]) or, on first contact, from the CA's SHA-256
//! fingerprint carried in a join token ([`PinnedCa`]), after which it keeps the
//! PEM it learned.
//!
//! At join the server also issues the connector a certificate of its own
//! ([`Authority::issue_client`]), naming its cluster; the connector presents
//! it on every later connection ([`client_config_for_ca_with_cert`]) and the
//! connector port, which asks for one
//! ([`Authority::server_config_with_client_auth`]), reads the cluster from
//! it ([`client_cluster`]).
//!
//! Invariants:
//! - Only the ring crypto provider is used, and every config is built with it
//!   explicitly, so nothing depends on (or panics for want of) a process-wide
//!   default provider.
//! - The CA is never replaced behind the operator's back: a missing or broken
//!   CA file is an error, while the server certificate is re-issued whenever
//!   it no longer fits (names, expiry, key, CA).
//! - A fingerprint is always the lowercase hex SHA-256 of the CA's DER.

#![warn(missing_docs)]

mod authority;
mod client;
mod error;
mod files;
mod identity;
mod peers;

use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::CertificateDer;
use sha2::{Digest, Sha256};

pub use authority::{server_config_from_files, Authority, EngineFiles, IssuedClient};
pub use client::{
    client_config_for_ca, client_config_for_ca_with_cert, client_config_pinned,
    client_config_with_roots, connect_tls, roots_from_file, system_roots, PinnedCa,
};
pub use error::PkiError;
pub use identity::{certificate_expiry, client_cluster};
pub use peers::{check_ca, issued_by};
/// The name a client connects to; re-exported so callers need not depend on rustls.
pub use rustls::pki_types::ServerName;
/// Async TLS wrappers for tokio streams; re-exported so callers need not depend on tokio-rustls.
pub use tokio_rustls::{TlsAcceptor, TlsConnector};

/// The one crypto provider every config of this crate is built with.
fn provider() -> Arc<CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// Lowercase hex SHA-256 of a certificate's DER: the fleet's name for a CA.
fn fingerprint(cert: &CertificateDer<'_>) -> String {
    to_hex(&Sha256::digest(cert.as_ref()))
}

fn to_hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The canonical PEM text of a certificate (LF line endings), so that the
/// PEM a connector learns equals the one the server hands out.
fn cert_pem(cert: &CertificateDer<'_>) -> String {
    let config = pem::EncodeConfig::new().set_line_ending(pem::LineEnding::LF);
    pem::encode_config(&pem::Pem::new("CERTIFICATE", cert.as_ref()), config)
}

/// `n` bytes from the operating system's cryptographic random source, as
/// lowercase hex: for secrets (join tokens, connector secrets, sessions).
pub fn random_hex(n: usize) -> std::io::Result<String> {
    use std::io::Read;
    let mut bytes = vec![0u8; n];
    std::fs::File::open("/dev/urandom")?.read_exact(&mut bytes)?;
    Ok(bytes.iter().map(|b| format!("{b:02x}")).collect())
}
