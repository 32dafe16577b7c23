//! `haven db` and the database API against a real server ingesting a real
//! event storm: a backup taken meanwhile is a consistent prefix of the
//! history and restores into a working server; restore refuses bad files
//! and a running server; prune keeps current states.

mod support;

use std::path::Path;
use std::process::Command;

use haven_store::{HistoryQuery, SqliteStore, Store};
use support::*;

/// (cluster, epoch, seq) of every history row, sorted.
fn keys(db: &Path) -> Vec<(String, u64, u64)> {
    let store = SqliteStore::open(db).unwrap();
    let mut rows: Vec<_> = store
        .history(&HistoryQuery {
            limit: 100_000_000,
            ..Default::default()
        })
        .unwrap()
        .into_iter()
        .map(|r| (r.cluster, r.epoch, r.event.seq))
        .collect();
    rows.sort();
    rows
}

#[test]
fn a_backup_during_an_event_storm_restores_to_a_working_server() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, clusters) = sim_fleet(dir.path(), "storm", 3, &[]);
    let toml: String = clusters
        .iter()
        .map(|(n, a)| format!("[[cluster]]\nname = \"{n}\"\naddress = \"{a}\"\n"))
        .collect();
    let mut server = ServerProc::start(dir.path(), &toml);
    let data = dir.path().join("data");
    server.wait_for("/api/v1/summary", "3 connected clusters", |v| {
        v["links"]["connected"] == 3
    });

    // The storm: group switches straight on the engines, in threads, until
    // the backup is done (and a little after), bounded in count.
    let stop = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let storm: Vec<_> = clusters
        .iter()
        .map(|(_, addr)| {
            let (addr, stop) = (addr.clone(), stop.clone());
            std::thread::spawn(move || {
                let mut head = 0;
                for _ in 0..500 {
                    head = churn(&addr, 10);
                    if stop.load(std::sync::atomic::Ordering::SeqCst) > 0 {
                        // A few more rounds after the backup.
                        if stop.fetch_add(1, std::sync::atomic::Ordering::SeqCst) > 6 {
                            break;
                        }
                    }
                }
                head
            })
        })
        .collect();
    std::thread::sleep(std::time::Duration::from_millis(300));
    let backup = dir.path().join("storm-backup.db");
    let (code, out, err) = haven(&[
        "db",
        "backup",
        backup.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("written and verified"), "{out}");
    stop.store(1, std::sync::atomic::Ordering::SeqCst);
    let heads: Vec<u64> = storm.into_iter().map(|t| t.join().unwrap()).collect();

    // The API takes one too, into the backup directory.
    let (status, made) = server.post("/api/v1/db/backups", "", &[]);
    assert_eq!(status, 201, "{made}");
    let listed = server.get("/api/v1/db/backups").1;
    assert_eq!(listed[0]["path"], made["path"], "{listed}");

    // Restore refuses while the server runs, and changes nothing.
    let (code, _, err) = haven(&[
        "db",
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 1);
    assert!(
        err.contains("is running") && err.contains("stop it first"),
        "{err}"
    );

    // Wait until the storm is all stored, then stop.
    for ((name, _), head) in clusters.iter().zip(&heads) {
        server.wait_for(&format!("/api/v1/clusters/{name}"), "caught up", |v| {
            v["link"]["seq"].as_u64() == Some(*head)
        });
    }
    server.proc.stop(PATIENCE);
    let source = keys(&data.join("haven.db"));
    let copy = keys(&backup);
    assert!(!copy.is_empty());
    assert!(
        copy.len() < source.len(),
        "the storm went on after the backup"
    );
    // Per cluster, the backup holds exactly the source's rows up to its
    // cursor: a consistent point, nothing missing, nothing extra.
    let cursors = SqliteStore::open(&backup).unwrap().cursors().unwrap();
    for (name, _) in &clusters {
        let cut = cursors[name.as_str()];
        let want: Vec<_> = source
            .iter()
            .filter(|(c, e, s)| c == name && (*e, *s) <= (cut.epoch, cut.seq))
            .collect();
        let got: Vec<_> = copy.iter().filter(|(c, _, _)| c == name).collect();
        assert_eq!(got, want, "{name}");
    }

    // Bad files are refused; the database is unchanged.
    let garbage = dir.path().join("garbage.db");
    std::fs::write(&garbage, "not a database at all").unwrap();
    let (code, _, err) = haven(&[
        "db",
        "restore",
        garbage.to_str().unwrap(),
        "--data-dir",
        data.to_str().unwrap(),
    ]);
    assert_eq!(code, 1, "{err}");
    assert_eq!(keys(&data.join("haven.db")), source);

    // The backup restores into a new data directory, and a server runs on it.
    let restored = dir.path().join("restored");
    let (code, out, err) = haven(&[
        "db",
        "restore",
        backup.to_str().unwrap(),
        "--data-dir",
        restored.join("data").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert_eq!(keys(&restored.join("data/haven.db")), copy);
    let (code, out, _) = haven(&["db", "verify", backup.to_str().unwrap()]);
    assert_eq!(code, 0);
    assert!(out.contains("is sound"), "{out}");
    let again = ServerProc::start(&restored, "");
    let listed = again.get("/api/v1/clusters").1;
    assert_eq!(listed.as_array().unwrap().len(), 3, "{listed}");
    let history = again.get("/api/v1/history?limit=5").1;
    assert_eq!(history.as_array().unwrap().len(), 5, "{history}");
}

#[test]
fn prune_keeps_current_states_and_refuses_nonsense() {
    let dir = tempfile::tempdir().unwrap();
    let (_sim, clusters) = sim_fleet(dir.path(), "pr", 1, &[]);
    let (name, addr) = &clusters[0];
    let mut server = ServerProc::start(
        dir.path(),
        &format!("[[cluster]]\nname = \"{name}\"\naddress = \"{addr}\"\n"),
    );
    server.wait_for("/api/v1/summary", "connected", |v| {
        v["links"]["connected"] == 1
    });
    let head = churn(addr, 40);
    server.wait_for(&format!("/api/v1/clusters/{name}"), "caught up", |v| {
        v["link"]["seq"].as_u64() == Some(head)
    });
    let (status, body) = server.post("/api/v1/db/prune", r#"{"older_than_days":0}"#, &[]);
    assert_eq!(status, 400, "{body}");
    let (status, body) = server.post("/api/v1/db/prune", r#"{"older_than_days":30}"#, &[]);
    assert_eq!(
        (status, body["history_removed"].as_u64()),
        (200, Some(0)),
        "{body}"
    );
    server.proc.stop(PATIENCE);

    // Everything is older than "now": only each object's last state stays.
    let db = dir.path().join("data/haven.db");
    let before = keys(&db).len();
    let (code, out, err) = haven(&[
        "db",
        "prune",
        "--older-than",
        "0s",
        "--data-dir",
        dir.path().join("data").to_str().unwrap(),
    ]);
    assert_eq!(code, 0, "{out}{err}");
    assert!(out.contains("history rows removed"), "{out}");
    let after = keys(&db).len();
    assert!(after < before, "{after} < {before}");
    // The last state of every group on every system is still there.
    let store = SqliteStore::open(&db).unwrap();
    let rows = store
        .history(&HistoryQuery {
            limit: 1_000_000,
            ..Default::default()
        })
        .unwrap();
    let mut last = std::collections::BTreeMap::new();
    for r in rows.iter().rev() {
        if let haven_model::EventKind::GroupState {
            group, system, to, ..
        } = &r.event.kind
        {
            last.insert((group.to_string(), system.to_string()), *to);
        }
    }
    let server = ServerProc::start(dir.path(), "");
    let detail = server.wait_for(&format!("/api/v1/clusters/{name}"), "synced", |v| {
        v["snapshot"].is_object()
    });
    let mut compared = 0;
    for g in detail["snapshot"]["groups"].as_array().unwrap() {
        for pair in g["states"].as_array().unwrap() {
            let (system, state) = (pair[0].as_str().unwrap(), &pair[1]);
            let key = (g["name"].as_str().unwrap().to_string(), system.to_string());
            if let Some(kept) = last.get(&key) {
                assert_eq!(
                    serde_json::to_value(kept).unwrap(),
                    *state,
                    "{key:?}: the pruned history still says the current state"
                );
                compared += 1;
            }
        }
    }
    assert!(compared >= 20, "{compared} group states compared");
    let (code, _, err) = haven(&["db", "prune", "--older-than", "soon"]);
    assert_eq!(code, 2, "{err}");
    assert!(err.contains("not an age"), "{err}");
}

#[test]
fn the_schedule_backs_up_keeps_the_newest_copies_and_applies_the_retention_policy() {
    use haven_model::{name, Event, EventKind, ResourceState};
    let dir = tempfile::tempdir().unwrap();
    let data = dir.path().join("data");
    let backups = data.join("backups");
    std::fs::create_dir_all(&backups).unwrap();
    // Three old backups, from days when none was due since.
    for day in ["01", "02", "03"] {
        let file = backups.join(format!("haven-202001{day}-000000.db"));
        std::fs::write(&file, "old").unwrap();
        let touched = Command::new("touch")
            .args(["-d", &format!("2020-01-{day}")])
            .arg(&file)
            .status()
            .unwrap();
        assert!(touched.success());
    }
    // History of a cluster from ten and nine days ago: the older state of
    // web_ip goes at the retention cut-off (1 day), its last state stays.
    let day_ms = 86_400_000;
    let now = haven_server::now_ms();
    let row = |seq: u64, age_days: i64, to: ResourceState| haven_store::HistoryRow {
        cluster: "old".into(),
        epoch: 1,
        event: Event {
            seq,
            time_ms: now - age_days * day_ms,
            kind: EventKind::ResourceState {
                group: name("web"),
                resource: name("web_ip"),
                system: name("n1"),
                from: ResourceState::Offline,
                to,
            },
        },
    };
    let rows = [
        row(1, 10, ResourceState::Online),
        row(2, 9, ResourceState::Faulted),
    ];
    SqliteStore::open(&data.join("haven.db"))
        .unwrap()
        .append(&rows)
        .unwrap();

    let _server = ServerProc::start(
        dir.path(),
        "[database]\nbackup_every_hours = 24\nbackup_keep = 2\nretention_days = 1\n",
    );
    let names = || {
        let mut names: Vec<String> = std::fs::read_dir(&backups)
            .unwrap()
            .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
            .collect();
        names.sort();
        names
    };
    wait_until("a scheduled backup and rotation", || {
        let names = names();
        (names.len() == 2 && !names[1].starts_with("haven-2020")).then_some(())
    });
    let kept = names();
    assert_eq!(
        kept[0], "haven-20200103-000000.db",
        "the newest old one stays: {kept:?}"
    );
    let newest = backups.join(&kept[1]);
    let (code, out, err) = haven(&["db", "verify", newest.to_str().unwrap()]);
    assert_eq!(code, 0, "a verified backup: {out}{err}");

    let seqs = wait_until("the retention prune", || {
        let seqs: Vec<u64> = keys(&data.join("haven.db"))
            .into_iter()
            .filter(|(c, _, _)| c == "old")
            .map(|(_, _, seq)| seq)
            .collect();
        (seqs.len() == 1).then_some(seqs)
    });
    assert_eq!(seqs, [2], "web_ip's last state before the cut-off stays");
}
