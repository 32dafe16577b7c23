//! A real OpenLDAP server (slapd) for login tests: configured in a
//! temporary directory and started on loopback ports, with users (alice,
//! bob, and `eve)(uid=*` whose name is filter syntax) and RFC 2307 groups
//! (ha-admins: alice; ha-operators: alice, bob), in plain LDAP or with TLS.
//! Shared by the auth crate's LDAP tests and the server's end-to-end tests
//! (`#[path]`). With CI=true a missing slapd is a failure.

#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use haven_pki::Authority;

pub const SUFFIX: &str = "dc=haven,dc=test";

/// A running slapd; stopped by pid, and its directory removed, on drop.
pub struct Slapd {
    pub child: Child,
    /// Plain LDAP on 127.0.0.1 (where StartTLS works too, with TLS).
    pub url: String,
    pub tls: Option<SlapdTls>,
    pub dir: tempfile::TempDir,
}

/// What a slapd started with TLS offers.
pub struct SlapdTls {
    /// The CA that signed slapd's certificate (which names localhost,
    /// 127.0.0.1 and ::1).
    pub ca_file: PathBuf,
    /// LDAPS on 127.0.0.1.
    pub ldaps_url: String,
    /// LDAPS on 127.0.0.2, an address the certificate does not name.
    pub ldaps_unnamed_url: String,
}

impl Drop for Slapd {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub fn free_port(ip: &str) -> u16 {
    std::net::TcpListener::bind((ip, 0))
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

pub fn slapadd(config_dir: &Path, db: &str, ldif: &str) {
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

/// A slapd with plain LDAP only.
pub fn start_slapd() -> Option<Slapd> {
    launch_slapd(false)
}

/// A slapd with a certificate from a CA made for the test (haven-pki's
/// `Authority`): StartTLS on its LDAP port, LDAPS on two more, and TLS
/// required for every operation (`olcSecurity: tls=1`), so a login that
/// succeeds went over TLS.
pub fn start_slapd_with_tls() -> Option<Slapd> {
    launch_slapd(true)
}

pub fn launch_slapd(with_tls: bool) -> Option<Slapd> {
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
    let pki = dir.path().join("pki");
    let tls_settings = if with_tls {
        Authority::load_or_create(&pki, &[]).expect("make the test CA and slapd's certificate");
        format!(
            "olcTLSCertificateFile: {}\nolcTLSCertificateKeyFile: {}\nolcSecurity: tls=1\n",
            pki.join("server.pem").display(),
            pki.join("server.key").display(),
        )
    } else {
        String::new()
    };
    let schema =
        |name: &str| std::fs::read_to_string(format!("/etc/ldap/schema/{name}.ldif")).unwrap();
    let config_ldif = format!(
        "dn: cn=config\nobjectClass: olcGlobal\ncn: config\nolcPidFile: {pid}\n{tls_settings}\n\
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

    let mut listeners = vec![("127.0.0.1", "ldap", free_port("127.0.0.1"))];
    if with_tls {
        listeners.push(("127.0.0.1", "ldaps", free_port("127.0.0.1")));
        listeners.push(("127.0.0.2", "ldaps", free_port("127.0.0.2")));
    }
    let url = |(ip, scheme, port): (&str, &str, u16)| format!("{scheme}://{ip}:{port}");
    let urls: Vec<String> = listeners.iter().map(|&l| url(l) + "/").collect();
    let log = dir.path().join("slapd.log");
    let child = Command::new("slapd")
        .args(["-d", "0", "-h", &urls.join(" "), "-F"])
        .arg(&config)
        .stdout(Stdio::null())
        .stderr(std::fs::File::create(&log).unwrap())
        .spawn()
        .expect("start slapd");
    let mut slapd = Slapd {
        child,
        url: url(listeners[0]),
        tls: with_tls.then(|| SlapdTls {
            ca_file: pki.join("ca.pem"),
            ldaps_url: url(listeners[1]),
            ldaps_unnamed_url: url(listeners[2]),
        }),
        dir,
    };
    let deadline = Instant::now() + Duration::from_secs(20);
    for &(ip, _, port) in &listeners {
        while std::net::TcpStream::connect((ip, port)).is_err() {
            let exited = slapd.child.try_wait().unwrap();
            assert!(
                exited.is_none() && Instant::now() < deadline,
                "slapd did not start ({exited:?}): {}",
                std::fs::read_to_string(&log).unwrap_or_default()
            );
            std::thread::sleep(Duration::from_millis(50));
        }
    }
    Some(slapd)
}
