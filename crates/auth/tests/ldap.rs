//! Logins against a real OpenLDAP server (slapd) that the test configures
//! and starts on loopback ports, with users and RFC 2307 groups, in plain
//! LDAP or with TLS (StartTLS and LDAPS, a certificate from a CA the test
//! makes). The test command installs slapd; with CI=true a missing slapd is
//! a failure.

use std::path::{Path, PathBuf};

use haven_auth::ldap::{authenticate, LdapConfig};
use haven_auth::pam::LoginError;
use haven_pki::Authority;

#[path = "common/slapd.rs"]
mod slapd;
use slapd::*;

impl Slapd {
    fn tls(&self) -> &SlapdTls {
        self.tls.as_ref().expect("slapd was started with TLS")
    }

    /// The CA file of a CA, by another name, that did not sign slapd's
    /// certificate.
    fn other_ca(&self) -> PathBuf {
        let key = rcgen::KeyPair::generate().unwrap();
        let mut params = rcgen::CertificateParams::default();
        params
            .distinguished_name
            .push(rcgen::DnType::CommonName, "Some other CA");
        params.is_ca = rcgen::IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
        let path = self.dir.path().join("other-ca.pem");
        std::fs::write(&path, params.self_signed(&key).unwrap().pem()).unwrap();
        path
    }

    /// The CA file of another Haven CA: the same name as slapd's CA, but
    /// another key.
    fn other_haven_ca(&self) -> PathBuf {
        let dir = self.dir.path().join("other-haven-ca");
        Authority::load_or_create(&dir, &[]).expect("make another CA");
        dir.join("ca.pem")
    }
}

fn config(url: &str) -> LdapConfig {
    LdapConfig {
        url: url.into(),
        user_base: format!("ou=people,{SUFFIX}"),
        group_base: format!("ou=groups,{SUFFIX}"),
        ..LdapConfig::default()
    }
}

#[tokio::test]
async fn directory_users_log_in_with_their_groups_and_bad_logins_are_refused_alike() {
    let Some(slapd) = start_slapd() else { return };
    let cfg = config(&slapd.url);

    let alice = authenticate(&cfg, "alice", "Alice-pw1").await.unwrap();
    assert_eq!(alice.dn, format!("uid=alice,ou=people,{SUFFIX}"));
    assert_eq!(alice.groups, vec!["ha-admins", "ha-operators"]);
    let bob = authenticate(&cfg, "bob", "Bob-pw2").await.unwrap();
    assert_eq!(bob.groups, vec!["ha-operators"]);

    let wrong = authenticate(&cfg, "alice", "nope").await.unwrap_err();
    let unknown = authenticate(&cfg, "mallory", "Alice-pw1")
        .await
        .unwrap_err();
    let empty = authenticate(&cfg, "alice", "").await.unwrap_err();
    for e in [&wrong, &unknown, &empty] {
        assert!(matches!(e, LoginError::Rejected { .. }), "{e:?}");
        assert_eq!(e.to_string(), "wrong user name or password");
    }

    // A user name is data, not filter syntax: `*` matches nobody, and a
    // name with parentheses finds exactly its own entry.
    assert!(authenticate(&cfg, "*", "Alice-pw1").await.is_err());
    let odd = authenticate(&cfg, "eve)(uid=*", "Eve-pw3").await.unwrap();
    assert!(odd.dn.starts_with("uid=eve"), "{}", odd.dn);
    assert!(authenticate(&cfg, "eve)(uid=*", "Alice-pw1").await.is_err());
}

#[tokio::test]
async fn an_unreachable_directory_is_a_clear_error_not_a_rejection() {
    let port = free_port("127.0.0.1");
    let mut cfg = config(&format!("ldap://127.0.0.1:{port}"));
    cfg.timeout_secs = 2;
    let err = authenticate(&cfg, "alice", "Alice-pw1").await.unwrap_err();
    assert!(matches!(err, LoginError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("LDAP"), "{err}");

    // Not reaching a TLS directory is not blamed on TLS.
    let pki = tempfile::tempdir().unwrap();
    Authority::load_or_create(pki.path(), &[]).unwrap();
    let ca_file = pki.path().join("ca.pem");
    let cfg = with_tls(&format!("ldaps://127.0.0.1:{port}"), false, &ca_file);
    let message = unavailable(&cfg).await;
    assert!(
        message.starts_with("LDAP: cannot reach ldaps://"),
        "{message}"
    );
}

/// The message of a login the directory could not serve.
async fn unavailable(cfg: &LdapConfig) -> String {
    match authenticate(cfg, "alice", "Alice-pw1").await {
        Err(LoginError::Unavailable(message)) => message,
        other => panic!("expected Unavailable, got {other:?}"),
    }
}

fn with_tls(url: &str, starttls: bool, ca_file: &Path) -> LdapConfig {
    LdapConfig {
        starttls,
        ca_file: Some(ca_file.to_path_buf()),
        ..config(url)
    }
}

#[tokio::test]
async fn starttls_logins_trust_the_ca_file_and_read_the_users_groups() {
    let Some(slapd) = start_slapd_with_tls() else {
        return;
    };
    let cfg = with_tls(&slapd.url, true, &slapd.tls().ca_file);

    let alice = authenticate(&cfg, "alice", "Alice-pw1").await.unwrap();
    assert_eq!(alice.dn, format!("uid=alice,ou=people,{SUFFIX}"));
    assert_eq!(alice.groups, vec!["ha-admins", "ha-operators"]);
    let wrong = authenticate(&cfg, "alice", "nope").await.unwrap_err();
    assert!(matches!(wrong, LoginError::Rejected { .. }), "{wrong:?}");

    // This slapd answers nothing without TLS, so the login above was TLS.
    let plain = unavailable(&config(&slapd.url)).await;
    assert!(plain.contains("confidentiality"), "{plain}");
}

#[tokio::test]
async fn ldaps_logins_trust_the_ca_file_and_check_the_host_name() {
    let Some(slapd) = start_slapd_with_tls() else {
        return;
    };
    let tls = slapd.tls();
    let cfg = with_tls(&tls.ldaps_url, false, &tls.ca_file);
    let bob = authenticate(&cfg, "bob", "Bob-pw2").await.unwrap();
    assert_eq!(bob.groups, vec!["ha-operators"]);

    // By DNS name: the certificate names localhost too.
    let by_name = tls.ldaps_url.replace("127.0.0.1", "localhost");
    let bob = authenticate(&with_tls(&by_name, false, &tls.ca_file), "bob", "Bob-pw2")
        .await
        .unwrap();
    assert_eq!(bob.groups, vec!["ha-operators"]);

    // The same certificate on an address it does not name is refused.
    let unnamed = unavailable(&with_tls(&tls.ldaps_unnamed_url, false, &tls.ca_file)).await;
    assert!(
        unnamed.starts_with(&format!("LDAP: TLS to {} failed: ", tls.ldaps_unnamed_url)),
        "{unnamed}"
    );
    assert!(unnamed.contains("not valid for name"), "{unnamed}");
    assert!(unnamed.contains("does not name the host"), "{unnamed}");
}

#[tokio::test]
async fn a_certificate_from_another_ca_is_refused_as_a_tls_failure() {
    let Some(slapd) = start_slapd_with_tls() else {
        return;
    };
    let tls = slapd.tls();
    // A CA by another name is unknown; one by the same name (another Haven
    // CA) fails on the signature. Both are the wrong ca_file.
    let cases = [
        (&tls.ldaps_url, false, slapd.other_ca(), "UnknownIssuer"),
        (&slapd.url, true, slapd.other_ca(), "UnknownIssuer"),
        (
            &tls.ldaps_url,
            false,
            slapd.other_haven_ca(),
            "BadSignature",
        ),
    ];
    for (url, starttls, ca_file, problem) in cases {
        let message = unavailable(&with_tls(url, starttls, &ca_file)).await;
        assert!(
            message.starts_with(&format!(
                "LDAP: TLS to {url} failed: invalid peer certificate: {problem}; "
            )),
            "{message}"
        );
        assert!(
            message.contains(&format!("is [auth.ldap] ca_file ({})", ca_file.display())),
            "{message}"
        );
    }

    // Without ca_file the system's trust store is used, and it does not
    // hold the test CA (or the host has none): still refused, with the
    // setting to use.
    let cfg = LdapConfig {
        ca_file: None,
        ..with_tls(&tls.ldaps_url, false, &tls.ca_file)
    };
    let message = unavailable(&cfg).await;
    assert!(
        message.starts_with(&format!("LDAP: TLS to {} ", tls.ldaps_url)),
        "{message}"
    );
    assert!(message.contains("set [auth.ldap] ca_file"), "{message}");
}

#[tokio::test]
async fn tls_to_a_directory_without_tls_fails_clearly() {
    let Some(slapd) = start_slapd() else { return };
    let ca = slapd.other_ca();

    let starttls = unavailable(&with_tls(&slapd.url, true, &ca)).await;
    assert!(
        starttls.starts_with(&format!("LDAP: TLS to {} failed: ", slapd.url)),
        "{starttls}"
    );
    assert!(starttls.contains("refused StartTLS"), "{starttls}");

    // LDAPS to a plain LDAP port.
    let ldaps_url = slapd.url.replace("ldap://", "ldaps://");
    let ldaps = unavailable(&with_tls(&ldaps_url, false, &ca)).await;
    assert!(
        ldaps.starts_with(&format!("LDAP: TLS to {ldaps_url} failed: ")),
        "{ldaps}"
    );
}

#[tokio::test]
async fn an_unusable_ca_file_is_a_clear_error() {
    let dir = tempfile::tempdir().unwrap();
    let url = format!("ldaps://127.0.0.1:{}", free_port("127.0.0.1"));

    let missing = dir.path().join("missing.pem");
    let message = unavailable(&with_tls(&url, false, &missing)).await;
    assert!(
        message.starts_with(&format!(
            "LDAP: [auth.ldap] ca_file {}: cannot read it",
            missing.display()
        )),
        "{message}"
    );

    let empty = dir.path().join("empty.pem");
    std::fs::write(&empty, "").unwrap();
    let message = unavailable(&with_tls(&url, false, &empty)).await;
    assert!(message.contains("holds no certificate"), "{message}");
}
