//! The authority directory: what `Authority::load_or_create` writes, keeps and re-issues.

use std::fs;
use std::os::unix::fs::PermissionsExt;
use std::path::Path;

use haven_pki::{Authority, PkiError};

fn names(list: &[&str]) -> Vec<String> {
    list.iter().map(|s| s.to_string()).collect()
}

fn read(dir: &Path, file: &str) -> String {
    fs::read_to_string(dir.join(file)).unwrap()
}

fn mode(dir: &Path, file: &str) -> u32 {
    fs::metadata(dir.join(file)).unwrap().permissions().mode() & 0o777
}

#[test]
fn loading_again_keeps_the_ca_and_the_server_certificate() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("pki");
    let created = Authority::load_or_create(&dir, &[]).unwrap();
    let server_pem = read(&dir, "server.pem");

    let loaded = Authority::load_or_create(&dir, &[]).unwrap();

    assert_eq!(created.ca_fingerprint(), loaded.ca_fingerprint());
    assert_eq!(created.ca_pem(), loaded.ca_pem());
    assert_eq!(server_pem, read(&dir, "server.pem"));
}

#[test]
fn files_are_created_with_private_keys_and_a_private_directory() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path().join("a").join("pki");
    Authority::load_or_create(&dir, &[]).unwrap();

    for file in ["ca.pem", "ca.key", "server.pem", "server.key"] {
        assert!(dir.join(file).is_file(), "{file} missing");
    }
    assert_eq!(mode(&dir, "ca.key"), 0o600);
    assert_eq!(mode(&dir, "server.key"), 0o600);
    assert_eq!(mode(&dir, "ca.pem"), 0o644);
    assert_eq!(
        fs::metadata(&dir).unwrap().permissions().mode() & 0o777,
        0o700
    );
    assert!(read(&dir, "ca.pem").starts_with("-----BEGIN CERTIFICATE-----"));
    // No temporary files are left behind.
    let leftovers: Vec<_> = fs::read_dir(&dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.ends_with(".tmp"))
        .collect();
    assert!(leftovers.is_empty(), "{leftovers:?}");
}

#[test]
fn fingerprint_is_lowercase_hex_sha256_of_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let authority = Authority::load_or_create(tmp.path(), &[]).unwrap();
    let fp = authority.ca_fingerprint();
    assert_eq!(fp.len(), 64);
    assert!(
        fp.chars()
            .all(|c| c.is_ascii_digit() || ('a'..='f').contains(&c)),
        "{fp}"
    );
    assert_eq!(authority.ca_pem(), read(tmp.path(), "ca.pem"));
}

#[test]
fn a_new_name_reissues_the_server_certificate_but_keeps_the_ca() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = Authority::load_or_create(dir, &names(&["haven.example.com"])).unwrap();
    let (ca_pem, ca_key) = (read(dir, "ca.pem"), read(dir, "ca.key"));
    let (server_pem, server_key) = (read(dir, "server.pem"), read(dir, "server.key"));

    let second =
        Authority::load_or_create(dir, &names(&["haven.example.com", "192.0.2.10"])).unwrap();

    assert_eq!(first.ca_fingerprint(), second.ca_fingerprint());
    assert_eq!(ca_pem, read(dir, "ca.pem"));
    assert_eq!(ca_key, read(dir, "ca.key"));
    assert_ne!(server_pem, read(dir, "server.pem"));
    assert_ne!(server_key, read(dir, "server.key"));

    // A name already covered (in any case) does not re-issue.
    let reissued = read(dir, "server.pem");
    Authority::load_or_create(dir, &names(&["HAVEN.example.com"])).unwrap();
    assert_eq!(reissued, read(dir, "server.pem"));
}

#[test]
fn broken_server_files_are_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    let first = Authority::load_or_create(dir, &[]).unwrap();
    fs::write(dir.join("server.pem"), "garbage").unwrap();
    fs::remove_file(dir.join("server.key")).unwrap();

    let second = Authority::load_or_create(dir, &[]).unwrap();

    assert_eq!(first.ca_fingerprint(), second.ca_fingerprint());
    assert!(read(dir, "server.pem").starts_with("-----BEGIN CERTIFICATE-----"));
    second.server_config().unwrap();
}

#[test]
fn a_server_key_that_does_not_match_its_certificate_is_reissued() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Authority::load_or_create(dir, &[]).unwrap();
    // The state a crash between writing server.key and server.pem leaves behind.
    fs::copy(dir.join("ca.key"), dir.join("server.key")).unwrap();
    let old_pem = read(dir, "server.pem");

    let authority = Authority::load_or_create(dir, &[]).unwrap();

    assert_ne!(old_pem, read(dir, "server.pem"));
    authority.server_config().unwrap();
}

#[test]
fn a_server_certificate_from_another_ca_is_reissued() {
    let ours = tempfile::tempdir().unwrap();
    let theirs = tempfile::tempdir().unwrap();
    Authority::load_or_create(ours.path(), &[]).unwrap();
    Authority::load_or_create(theirs.path(), &[]).unwrap();
    for file in ["server.pem", "server.key"] {
        fs::copy(theirs.path().join(file), ours.path().join(file)).unwrap();
    }

    Authority::load_or_create(ours.path(), &[]).unwrap();

    assert_ne!(
        read(ours.path(), "server.pem"),
        read(theirs.path(), "server.pem")
    );
}

#[test]
fn a_ca_certificate_without_its_key_is_an_error_that_names_the_fix() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Authority::load_or_create(dir, &[]).unwrap();
    fs::remove_file(dir.join("ca.key")).unwrap();

    let err = Authority::load_or_create(dir, &[]).unwrap_err();

    assert!(matches!(err, PkiError::MissingCaKey { .. }), "{err:?}");
    let message = err.to_string();
    assert!(message.contains("ca.key"), "{message}");
    assert!(message.contains("restore"), "{message}");
}

#[test]
fn a_ca_key_that_does_not_match_the_ca_certificate_is_an_error() {
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Authority::load_or_create(dir, &[]).unwrap();
    fs::copy(dir.join("server.key"), dir.join("ca.key")).unwrap();

    let err = Authority::load_or_create(dir, &[]).unwrap_err();

    assert!(matches!(err, PkiError::BadCaFile { .. }), "{err:?}");
    assert!(err.to_string().contains("not the key"), "{err}");
}

#[test]
fn a_ca_key_without_its_certificate_gets_a_certificate() {
    // What a crash between writing ca.key and ca.pem leaves behind.
    let tmp = tempfile::tempdir().unwrap();
    let dir = tmp.path();
    Authority::load_or_create(dir, &[]).unwrap();
    fs::remove_file(dir.join("ca.pem")).unwrap();
    let ca_key = read(dir, "ca.key");

    let authority = Authority::load_or_create(dir, &[]).unwrap();

    assert_eq!(ca_key, read(dir, "ca.key"));
    assert_eq!(authority.ca_pem(), read(dir, "ca.pem"));
    authority.server_config().unwrap();
}

#[test]
fn a_name_that_is_neither_dns_nor_ip_is_refused() {
    let tmp = tempfile::tempdir().unwrap();
    let err = Authority::load_or_create(tmp.path(), &names(&["not a host!"])).unwrap_err();
    assert!(
        matches!(err, PkiError::InvalidName { ref name } if name == "not a host!"),
        "{err:?}"
    );
    // Nothing was created for a request that was refused.
    assert!(!tmp.path().join("ca.key").exists());
}
