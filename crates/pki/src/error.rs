//! The one error type of this crate. Each message names the object, the
//! problem and what to do about it, since most end up in front of an operator.

use std::io;
use std::path::PathBuf;

/// Everything that can go wrong in the fleet's PKI.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum PkiError {
    /// A file or directory of the authority could not be read or written.
    #[error(
        "could not {action} {}: {source}; check that this user may read and write that directory",
        path.display()
    )]
    Io {
        /// What was being done, e.g. "read" or "create directory".
        action: &'static str,
        /// The file or directory concerned.
        path: PathBuf,
        /// The underlying error.
        #[source]
        source: io::Error,
    },

    /// A name requested for the server certificate is neither a DNS name nor an IP address.
    #[error(
        "{name:?} cannot be put in the server certificate: it is neither a DNS name nor an IP \
         address; give a host name such as haven.example.com or an address such as 192.0.2.10"
    )]
    InvalidName {
        /// The name as given.
        name: String,
    },

    /// A connector certificate was asked for a cluster name that cannot be one.
    #[error(
        "cannot issue a connector certificate for the cluster {cluster:?}: a cluster name must \
         not be empty"
    )]
    InvalidCluster {
        /// The name as given.
        cluster: String,
    },

    /// The CA certificate exists but its private key does not, so nothing can be signed.
    #[error(
        "{} exists but its private key {} is missing: restore the key from a backup, or remove \
         {} as well to create a new CA (every connector must then join again)",
        cert.display(), key.display(), cert.display()
    )]
    MissingCaKey {
        /// Path of the CA certificate (`ca.pem`).
        cert: PathBuf,
        /// Path of the missing key (`ca.key`).
        key: PathBuf,
    },

    /// A CA file exists but cannot be used as it is.
    #[error(
        "{} is not usable: {problem}; restore it from a backup, or remove ca.pem and ca.key to \
         create a new CA (every connector must then join again)",
        path.display()
    )]
    BadCaFile {
        /// The file concerned (`ca.pem` or `ca.key`).
        path: PathBuf,
        /// What is wrong with it.
        problem: String,
    },

    /// The CA on disk cannot issue a server certificate that verifies, e.g. it has expired.
    #[error(
        "the CA in {} cannot issue a valid server certificate ({reason}); if it has expired, \
         remove ca.pem and ca.key to create a new CA (every connector must then join again)",
        path.display()
    )]
    CaUnusable {
        /// Path of the CA certificate.
        path: PathBuf,
        /// Why the freshly issued certificate did not verify.
        reason: String,
    },

    /// Generating a key or certificate failed.
    #[error("could not generate a key or certificate: {0}")]
    Generate(#[from] rcgen::Error),

    /// rustls refused to build a configuration from our certificates and key.
    #[error("could not build the TLS configuration: {0}")]
    Tls(#[from] rustls::Error),

    /// The CA certificate given to a client is not a usable PEM certificate.
    #[error(
        "the CA certificate given is not usable: {problem}; pass the PEM text of the fleet CA \
         (ca.pem on the server), which begins with -----BEGIN CERTIFICATE-----"
    )]
    InvalidCa {
        /// What is wrong with it.
        problem: String,
    },

    /// A client (connector) certificate or its key, given to build a client config, is not usable.
    #[error(
        "the connector certificate or its key is not usable: {problem}; give the PEM \
         certificate and private key the server issued at join"
    )]
    InvalidClientCert {
        /// What is wrong with them.
        problem: String,
    },

    /// A CA fingerprint is malformed. The text is not echoed, in case a whole
    /// join token (which may hold secrets) was passed by mistake.
    #[error(
        "the CA fingerprint is malformed ({problem}): expected the 64 hexadecimal digits of a \
         SHA-256 digest, as carried in the join token"
    )]
    InvalidFingerprint {
        /// What is wrong with it.
        problem: String,
    },

    /// A certificate or key file of the operator's own cannot be used.
    #[error("{} is not usable: {problem}", path.display())]
    BadOwnFile {
        /// The file concerned.
        path: PathBuf,
        /// What is wrong with it, and what to do.
        problem: String,
    },

    /// During a handshake, the server's certificate was refused.
    ///
    /// This reaches the caller inside the handshake's `io::Error`, as
    /// `rustls::Error::Other`; its message is the one to show.
    #[error("the server's certificate was refused: {reason}; {fix}")]
    UntrustedServer {
        /// What was wrong with the certificate.
        reason: String,
        /// What the operator should check or do.
        fix: String,
    },
}

impl PkiError {
    pub(crate) fn io(action: &'static str, path: impl Into<PathBuf>, source: io::Error) -> Self {
        PkiError::Io {
            action,
            path: path.into(),
            source,
        }
    }
}
