//! TLS between the server and an engine (`haven engine --tls-cert`, a
//! `tls://HOST:PORT` address): real processes, a certificate from the
//! fleet CA made by `haven setup engine-cert`, and one from another CA
//! that the server must refuse.

mod support;

use std::process::Command;

use support::*;

fn setup_engine_cert(data_dir: &std::path::Path, out: &std::path::Path) -> String {
    let run = Command::new(HAVEN)
        .args(["setup", "engine-cert", "--data-dir"])
        .arg(data_dir)
        .arg("--out")
        .arg(out)
        .args(["--name", "engine.example.com"])
        .output()
        .unwrap();
    let said = String::from_utf8_lossy(&run.stdout).into_owned();
    assert!(
        run.status.success(),
        "{said}{}",
        String::from_utf8_lossy(&run.stderr)
    );
    said
}

fn tls_engine(dir: &std::path::Path, cluster: &str, pki: &std::path::Path) -> Engine {
    let (cert, key) = (pki.join("engine.pem"), pki.join("engine.key"));
    simulated_engine(
        dir,
        cluster,
        &[
            "--sim-delay",
            "0",
            "--tls-cert",
            cert.to_str().unwrap(),
            "--tls-key",
            key.to_str().unwrap(),
        ],
    )
}

#[test]
fn the_server_follows_an_engine_over_tls_and_refuses_one_it_cannot_trust() {
    let dir = tempfile::tempdir().unwrap();
    let server = ServerProc::start(dir.path(), "");
    let data = dir.path().join("data");

    // No CA yet in an empty data directory: a clear refusal.
    let run = Command::new(HAVEN)
        .args(["setup", "engine-cert", "--data-dir"])
        .arg(dir.path().join("nowhere"))
        .args(["--out"])
        .arg(dir.path().join("x"))
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&run.stderr);
    assert!(
        !run.status.success() && err.contains("no fleet CA"),
        "{err}"
    );

    let good = dir.path().join("engine-pki");
    let said = setup_engine_cert(&data, &good);
    assert!(said.contains("--tls-cert"), "{said}");
    use std::os::unix::fs::PermissionsExt;
    let mode = std::fs::metadata(good.join("engine.key"))
        .unwrap()
        .permissions()
        .mode();
    assert_eq!(mode & 0o777, 0o600);
    let engine = tls_engine(dir.path(), "secure", &good);
    assert!(engine.addr.starts_with("tls://"), "{}", engine.addr);

    let add = |name: &str, address: &str| {
        server.post(
            "/api/v1/clusters",
            &format!(r#"{{"name":"{name}","address":"{address}"}}"#),
            &[],
        )
    };
    let (status, body) = add("secure", &engine.addr);
    assert_eq!(status, 201, "{body}");
    server.wait_for("/api/v1/clusters/secure", "connected over TLS", |v| {
        v["link"]["state"] == "connected"
    });
    let (status, done) = server.post(
        "/api/v1/clusters/secure/operations",
        r#"{"op":"group_switch","group":"web","to":"n2","wait":true,"timeout_secs":20}"#,
        &[],
    );
    assert_eq!(
        (status, done["outcome"].as_str()),
        (200, Some("completed")),
        "{done}"
    );

    // An engine whose certificate another CA signed: never connected, and
    // the link says why.
    let other = dir.path().join("other-data");
    haven_pki::Authority::load_or_create(&other.join("pki"), &[]).unwrap();
    let rogue_pki = dir.path().join("rogue-pki");
    setup_engine_cert(&other, &rogue_pki);
    let rogue = tls_engine(dir.path(), "rogue", &rogue_pki);
    let (status, body) = add("rogue", &rogue.addr);
    assert_eq!(status, 201, "{body}");
    let link = server.wait_for("/api/v1/clusters/rogue", "a refused link", |v| {
        v["link"]["last_error"].is_string()
    });
    let why = link["link"]["last_error"].as_str().unwrap();
    assert!(why.contains("TLS") && why.contains("certificate"), "{why}");
    assert_ne!(link["link"]["state"], "connected");

    // The same engine dialled in plain TCP: no hello gets through.
    let plain = rogue.addr.trim_start_matches("tls://").to_string();
    let (status, body) = add("plain", &plain);
    assert_eq!(status, 201, "{body}");
    let link = server.wait_for("/api/v1/clusters/plain", "a failed plain link", |v| {
        v["link"]["last_error"].is_string()
    });
    assert_ne!(link["link"]["state"], "connected", "{link}");
    let why = link["link"]["last_error"].as_str().unwrap();
    assert!(why.contains("tls://"), "says to use tls://: {why}");

    // A malformed address is refused before anything is stored.
    let (status, body) = add("bad", "tls://nohost");
    assert_eq!(status, 400, "{body}");
    assert!(body.to_string().contains("tls://HOST:PORT"), "{body}");
}
