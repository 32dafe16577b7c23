//! Connector certificates: what `Authority::issue_client` puts in them, and
//! what `client_cluster` reads back.

use std::time::{Duration, SystemTime};

use haven_pki::{certificate_expiry, client_cluster, Authority, PkiError};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, UnixTime};
use rustls::server::WebPkiClientVerifier;
use rustls::RootCertStore;

fn new_authority() -> (tempfile::TempDir, Authority) {
    let dir = tempfile::tempdir().unwrap();
    let authority = Authority::load_or_create(dir.path(), &[]).unwrap();
    (dir, authority)
}

fn der(pem: &str) -> CertificateDer<'static> {
    CertificateDer::from_pem_slice(pem.as_bytes()).unwrap()
}

/// Verifies `cert` as a TLS client certificate against `ca_pem` alone, as the server does.
fn verify_as_client(ca_pem: &str, cert: &CertificateDer<'_>) -> Result<(), rustls::Error> {
    let mut roots = RootCertStore::empty();
    roots.add(der(ca_pem)).unwrap();
    let provider = std::sync::Arc::new(rustls::crypto::ring::default_provider());
    let verifier = WebPkiClientVerifier::builder_with_provider(roots.into(), provider)
        .build()
        .unwrap();
    verifier
        .verify_client_cert(cert, &[], UnixTime::now())
        .map(|_| ())
}

#[test]
fn an_issued_certificate_names_its_cluster_and_verifies_against_the_ca_only() {
    let (_dir, authority) = new_authority();
    let (_other_dir, other) = new_authority();

    let issued = authority.issue_client("omega").unwrap();
    let cert = der(&issued.cert_pem);

    assert_eq!(client_cluster(&cert).as_deref(), Some("omega"));
    verify_as_client(&authority.ca_pem(), &cert).unwrap();
    // Every fleet CA has the same subject, so another one is found, and its signature fails.
    let err = verify_as_client(&other.ca_pem(), &cert).unwrap_err();
    assert!(err.to_string().contains("BadSignature"), "{err}");
    assert!(issued.cert_pem.starts_with("-----BEGIN CERTIFICATE-----"));
    assert!(issued.key_pem.starts_with("-----BEGIN PRIVATE KEY-----"));
}

#[test]
fn an_issued_certificate_is_for_client_authentication_only_and_says_its_cluster_twice() {
    let (_dir, authority) = new_authority();
    let issued = authority.issue_client("omega").unwrap();
    let cert = der(&issued.cert_pem);
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();

    let eku = parsed.extended_key_usage().unwrap().unwrap().value;
    assert!(eku.client_auth && !eku.server_auth, "{eku:?}");
    assert!(!parsed.is_ca());
    let cn: Vec<&str> = parsed
        .subject()
        .iter_common_name()
        .map(|cn| cn.as_str().unwrap())
        .collect();
    assert_eq!(cn, ["omega"]);
    let sans = &parsed.subject_alternative_name().unwrap().unwrap().value;
    assert_eq!(sans.general_names.len(), 1);
    assert_eq!(
        sans.general_names[0].to_string(),
        "URI(haven-connector:omega)"
    );
}

#[test]
fn an_issued_certificate_is_backdated_a_day_and_lasts_about_two_years() {
    let (_dir, authority) = new_authority();
    let issued = authority.issue_client("omega").unwrap();
    let cert = der(&issued.cert_pem);
    let (_, parsed) = x509_parser::parse_x509_certificate(&cert).unwrap();
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .unwrap()
        .as_secs() as i64;
    let day = 24 * 60 * 60;

    let not_before = parsed.validity().not_before.timestamp();
    assert!((now - day - 60..=now - day + 60).contains(&not_before));
    let expiry = certificate_expiry(&issued.cert_pem).unwrap();
    let lifetime = expiry.duration_since(SystemTime::now()).unwrap();
    let two_years = Duration::from_secs(2 * 365 * day as u64);
    assert!(
        lifetime > two_years - Duration::from_secs(60) && lifetime <= two_years,
        "{lifetime:?}"
    );
}

#[test]
fn every_issue_has_a_fresh_key() {
    let (_dir, authority) = new_authority();
    let first = authority.issue_client("omega").unwrap();
    let second = authority.issue_client("omega").unwrap();
    assert_ne!(first.key_pem, second.key_pem);
    assert_ne!(first.cert_pem, second.cert_pem);
    // The key never shows in logs.
    assert!(!format!("{first:?}").contains("PRIVATE KEY"));
}

#[test]
fn any_cluster_name_survives_the_certificate() {
    let (_dir, authority) = new_authority();
    for name in ["web-prod_2.eu", "with space", "ünïcode/€", "100%"] {
        let issued = authority.issue_client(name).unwrap();
        assert_eq!(
            client_cluster(&der(&issued.cert_pem)).as_deref(),
            Some(name)
        );
    }
    let err = authority.issue_client("").unwrap_err();
    assert!(matches!(err, PkiError::InvalidCluster { .. }), "{err:?}");
}

#[test]
fn the_server_certificate_names_no_cluster() {
    let (dir, _authority) = new_authority();
    let server_pem = std::fs::read_to_string(dir.path().join("server.pem")).unwrap();
    assert_eq!(client_cluster(&der(&server_pem)), None);
}
