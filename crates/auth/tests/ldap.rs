//! Logins against a real OpenLDAP server (slapd) that the test configures
//! and starts on a loopback port, with users and RFC 2307 groups. The test
//! command installs slapd; with CI=true a missing slapd is a failure.

use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use haven_auth::ldap::{authenticate, LdapConfig};
use haven_auth::pam::LoginError;

const SUFFIX: &str = "dc=haven,dc=test";

struct Slapd {
    child: Child,
    url: String,
    _dir: tempfile::TempDir,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

fn slapadd(config_dir: &Path, db: &str, ldif: &str) {
    let mut child = Command::new("slapadd")
        .args(["-n", db, "-F"])
        .arg(config_dir)
        .stdin(Stdio::piped())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .expect("run slapadd");
    use std::io::Write;
    child
        .stdin
        .take()
        .unwrap()
        .write_all(ldif.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(
        out.status.success(),
        "slapadd -n {db} failed: {}",
        String::from_utf8_lossy(&out.stderr)
    );
}

fn start_slapd() -> Option<Slapd> {
    if Command::new("slapd").arg("-VV").output().is_err() {
        assert_ne!(
            std::env::var("CI").as_deref(),
            Ok("true"),
            "slapd is missing on CI: scripts/test installs it (apt-get install slapd ldap-utils)"
        );
        eprintln!("slapd not installed: the LDAP tests did not run (scripts/test installs it)");
        return None;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("slapd.d");
    let db = dir.path().join("db");
    std::fs::create_dir_all(&config).unwrap();
    std::fs::create_dir_all(&db).unwrap();
    let schema =
        |name: &str| std::fs::read_to_string(format!("/etc/ldap/schema/{name}.ldif")).unwrap();
    let config_ldif = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {pid}\n\n\
         dn: cn=module{{0}},cn=config\nobjectClass: olcModuleList\ncn: module{{0}}\nolcModulePath: /usr/lib/ldap\nolcModuleLoad: back_mdb\n\n\
         dn: cn=schema,cn=config\nobjectClass: olcSchemaConfig\ncn: schema\n\n\
         {core}\n{cosine}\n{nis}\n{inet}\n\
         dn: olcDatabase={{1}}mdb,cn=config\nobjectClass: olcDatabaseConfig\nobjectClass: olcMdbConfig\nolcDatabase: {{1}}mdb\n\
         olcDbDirectory: {db}\nolcSuffix: {SUFFIX}\nolcRootDN: cn=admin,{SUFFIX}\nolcRootPW: admin-secret\n\
         olcAccess: {{0}}to attrs=userPassword by anonymous auth by self read by * none\n\
         olcAccess: {{1}}to * by * read\n",
        pid = dir.path().join("slapd.pid").display(),
        db = db.display(),
        core = schema("core"),
        cosine = schema("cosine"),
        nis = schema("nis"),
        inet = schema("inetorgperson"),
    );
    slapadd(&config, "0", &config_ldif);
    let person = |uid: &str, n: u32, pw: &str| {
        format!(
            "dn: uid={uid},ou=people,{SUFFIX}\nobjectClass: inetOrgPerson\nobjectClass: posixAccount\n\
             uid: {uid}\ncn: {uid}\nsn: {uid}\nuidNumber: {n}\ngidNumber: {n}\nhomeDirectory: /home/{uid}\nuserPassword: {pw}\n\n"
        )
    };
    let data = format!(
        "dn: {SUFFIX}\nobjectClass: dcObject\nobjectClass: organization\ndc: haven\no: Haven test\n\n\
         dn: ou=people,{SUFFIX}\nobjectClass: organizationalUnit\nou: people\n\n\
         dn: ou=groups,{SUFFIX}\nobjectClass: organizationalUnit\nou: groups\n\n\
         {alice}{bob}{paren}\
         dn: cn=ha-admins,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: ha-admins\ngidNumber: 5001\nmemberUid: alice\n\n\
         dn: cn=ha-operators,ou=groups,{SUFFIX}\nobjectClass: posixGroup\ncn: ha-operators\ngidNumber: 5002\nmemberUid: alice\nmemberUid: bob\n\n",
        alice = person("alice", 2001, "Alice-pw1"),
        bob = person("bob", 2002, "Bob-pw2"),
        paren = person("eve)(uid=*", 2003, "Eve-pw3"),
    );
    slapadd(&config, "1", &data);
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let url = format!("ldap://127.0.0.1:{port}/");
    let child = Command::new("slapd")
        .args(["-d", "0", "-h", &url, "-F"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .expect("start slapd");
    let slapd = Slapd {
        child,
        url: format!("ldap://127.0.0.1:{port}"),
        _dir: dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    while std::net::TcpStream::connect(("127.0.0.1", port)).is_err() {
        assert!(Instant::now() < deadline, "slapd did not start");
        std::thread::sleep(Duration::from_millis(50));
    }
    Some(slapd)
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
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let mut cfg = config(&format!("ldap://127.0.0.1:{port}"));
    cfg.timeout_secs = 2;
    let err = authenticate(&cfg, "alice", "Alice-pw1").await.unwrap_err();
    assert!(matches!(err, LoginError::Unavailable(_)), "{err:?}");
    assert!(err.to_string().contains("LDAP"), "{err}");
}
