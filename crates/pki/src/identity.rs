//! How a connector certificate names its cluster, and reading it back.
//!
//! A connector certificate ([`crate::Authority::issue_client`]) names its
//! cluster twice: as the subject's common name, for people reading it with
//! `openssl x509 -text`, and as one URI subject alternative name
//! `haven-connector:CLUSTER`, which is what the server reads
//! ([`client_cluster`]). In the URI every byte of the name (UTF-8) outside
//! `A-Z a-z 0-9 - . _ ~` is percent-encoded, so any cluster name fits the
//! ASCII a URI must be; cluster names as main.cf writes them are unchanged.

use x509_parser::extensions::GeneralName;

/// The scheme of the URI that names a connector's cluster.
pub(crate) const CLUSTER_URI_SCHEME: &str = "haven-connector:";

/// The URI naming `cluster` in a connector certificate.
pub(crate) fn cluster_uri(cluster: &str) -> String {
    let mut uri = String::from(CLUSTER_URI_SCHEME);
    for byte in cluster.bytes() {
        if byte.is_ascii_alphanumeric() || b"-._~".contains(&byte) {
            uri.push(char::from(byte));
        } else {
            uri.push_str(&format!("%{byte:02X}"));
        }
    }
    uri
}

/// The cluster a `haven-connector:` URI names, or `None` if it is not one or is malformed.
fn cluster_of_uri(uri: &str) -> Option<String> {
    let encoded = uri.strip_prefix(CLUSTER_URI_SCHEME)?;
    let mut bytes = Vec::with_capacity(encoded.len());
    let mut rest = encoded.as_bytes();
    while let Some((&byte, tail)) = rest.split_first() {
        if byte == b'%' {
            let hex = std::str::from_utf8(tail.get(..2)?).ok()?;
            bytes.push(u8::from_str_radix(hex, 16).ok()?);
            rest = &tail[2..];
        } else {
            bytes.push(byte);
            rest = tail;
        }
    }
    let cluster = String::from_utf8(bytes).ok()?;
    (!cluster.is_empty()).then_some(cluster)
}

/// The cluster a connector certificate (DER) was issued for: the one
/// `haven-connector:` URI among its subject alternative names.
///
/// `None` if the bytes are not a certificate, or it has no such URI, or
/// more than one. This only reads the certificate: call it on one the TLS
/// handshake has verified against the fleet CA (as the server does with a
/// config from [`crate::Authority::server_config_with_client_auth`]),
/// since anyone can write any name into a certificate of their own.
pub fn client_cluster(cert_der: &[u8]) -> Option<String> {
    let (_, cert) = x509_parser::parse_x509_certificate(cert_der).ok()?;
    let sans = cert.subject_alternative_name().ok()??;
    let mut named = sans
        .value
        .general_names
        .iter()
        .filter_map(|name| match name {
            GeneralName::URI(uri) if uri.starts_with(CLUSTER_URI_SCHEME) => Some(*uri),
            _ => None,
        });
    let only = named.next()?;
    if named.next().is_some() {
        return None;
    }
    cluster_of_uri(only)
}

/// When a certificate (PEM) stops being valid, so a holder can warn before
/// it expires; `None` if the text holds no parsable certificate.
pub fn certificate_expiry(cert_pem: &str) -> Option<std::time::SystemTime> {
    use rustls::pki_types::pem::PemObject;
    let der = rustls::pki_types::CertificateDer::from_pem_slice(cert_pem.as_bytes()).ok()?;
    let (_, cert) = x509_parser::parse_x509_certificate(&der).ok()?;
    let seconds = u64::try_from(cert.validity().not_after.timestamp()).ok()?;
    Some(std::time::UNIX_EPOCH + std::time::Duration::from_secs(seconds))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cluster_names_round_trip_through_the_uri() {
        for name in ["omega", "web-prod_2.eu", "with space", "ünïcode/€", "%41"] {
            let uri = cluster_uri(name);
            assert!(uri.is_ascii(), "{uri}");
            assert_eq!(cluster_of_uri(&uri).as_deref(), Some(name), "{uri}");
        }
        assert_eq!(cluster_uri("omega"), "haven-connector:omega");
        assert_eq!(cluster_uri("a b"), "haven-connector:a%20b");
    }

    #[test]
    fn malformed_or_foreign_uris_name_no_cluster() {
        for uri in [
            "haven-connector:",
            "haven-connector:%4",
            "haven-connector:%zz",
            "haven-connector:%FF",
            "https://omega",
            "omega",
        ] {
            assert_eq!(cluster_of_uri(uri), None, "{uri}");
        }
    }

    #[test]
    fn bytes_that_are_no_certificate_name_no_cluster() {
        assert_eq!(client_cluster(b""), None);
        assert_eq!(client_cluster(b"not a certificate"), None);
        assert_eq!(certificate_expiry("not pem"), None);
    }
}
