//! TLS for peer management servers (other sites): each site's server
//! trusts the fleet CA of every site it is paired with, and nothing else,
//! for the certificates the peers present.
//!
//! A server's peer port asks every client for a certificate but does not
//! require one (a site that is pairing has none yet the other trusts); a
//! certificate that is presented must chain to one of the paired sites'
//! CAs, or the handshake fails. Which site it is, is then decided by
//! [`issued_by`] against each paired site's CA alone.

use std::sync::Arc;

use rustls::pki_types::{CertificateDer, PrivateKeyDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

use crate::client::one_ca;
use crate::{provider, Authority, PkiError};

fn roots_of(cas: &[&str]) -> Result<RootCertStore, PkiError> {
    let mut roots = RootCertStore::empty();
    for pem in cas {
        roots.add(one_ca(pem)?).map_err(|e| PkiError::InvalidCa {
            problem: format!("it is not a CA certificate ({e})"),
        })?;
    }
    Ok(roots)
}

/// Whether `cert_der` (a client certificate) was issued by the CA of
/// `ca_pem`, for client authentication, and is valid now.
pub fn issued_by(ca_pem: &str, cert_der: &[u8]) -> bool {
    let Ok(roots) = roots_of(&[ca_pem]) else {
        return false;
    };
    let Ok(verifier) =
        WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider()).build()
    else {
        return false;
    };
    verifier
        .verify_client_cert(&CertificateDer::from(cert_der), &[], UnixTime::now())
        .is_ok()
}

/// Checks that `ca_pem` is one usable CA certificate (before it is stored).
pub fn check_ca(ca_pem: &str) -> Result<(), PkiError> {
    roots_of(&[ca_pem]).map(|_| ())
}

impl Authority {
    /// TLS server config of the peer port: this server's certificate; a
    /// client certificate is asked for, not required, and one that is
    /// presented must chain to one of `peer_cas` (PEM, one CA each). With
    /// no peers, no certificate is asked for.
    pub fn peer_server_config(
        &self,
        peer_cas: &[&str],
    ) -> Result<Arc<rustls::ServerConfig>, PkiError> {
        if peer_cas.is_empty() {
            return self.server_config();
        }
        let verifier =
            WebPkiClientVerifier::builder_with_provider(Arc::new(roots_of(peer_cas)?), provider())
                .allow_unauthenticated()
                .build()
                .map_err(|e| PkiError::InvalidCa {
                    problem: format!("it cannot verify client certificates ({e})"),
                })?;
        let config = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()?
            .with_client_cert_verifier(verifier)
            .with_single_cert(
                self.server_chain.clone(),
                PrivateKeyDer::Pkcs8(self.server_key.clone_key()),
            )?;
        Ok(Arc::new(config))
    }
}
