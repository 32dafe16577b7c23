//! End-to-end: real `haven engine` processes with real agents (processes
//! and files on this host), driven over the socket protocol.

mod support;

use std::path::Path;
use std::time::Duration;

use haven_model::{
    name, CommandResult, EventKind, Freeze, GroupState, Operation, RefusalCode, ResourceState,
};
use haven_protocol::{ClientError, ClientOptions, EngineClient, ErrorCode, SnapshotReason};
use support::*;

/// A two-system cluster: group `web` = FileOnOff flag <- Process server,
/// each with per-system files in `dir`.
fn web_cluster(dir: &Path, group_attrs: &str) -> String {
    let d = dir.display();
    format!(
        r#"include "types.cf"

cluster lab (
        )

system sysA (
        )

system sysB (
        )

group web (
        SystemList = {{ sysA = 0, sysB = 1 }}
        AutoStartList = {{ sysA }}
        {group_attrs}
        )

        FileOnOff web_flag (
                PathName@sysA = "{d}/flag-sysA"
                PathName@sysB = "{d}/flag-sysB"
                MonitorInterval = 1
                OfflineMonitorInterval = 1
                )

        Process web_server (
                PathName = "/bin/sleep"
                Arguments = "3600"
                PidFile@sysA = "{d}/server-sysA.pid"
                PidFile@sysB = "{d}/server-sysB.pid"
                MonitorInterval = 1
                OfflineMonitorInterval = 1
                )

        web_server requires web_flag
"#
    )
}

struct Lab {
    engine: Engine,
    _dir: tempfile::TempDir,
}

impl Drop for Lab {
    /// Stops the engine, then kills whatever it left running (a frozen
    /// group is left alone by a stopping engine, as in VCS).
    fn drop(&mut self) {
        self.engine.proc.stop(PATIENCE);
        for side in ["sysA", "sysB"] {
            if let Some(pid) = std::fs::read_to_string(self.path(&format!("server-{side}.pid")))
                .ok()
                .and_then(|s| s.trim().parse().ok())
            {
                signal(pid, libc::SIGKILL);
            }
        }
    }
}

impl Lab {
    fn start(group_attrs: &str, extra: &[&str]) -> Lab {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(
            dir.path().join("main.cf"),
            web_cluster(dir.path(), group_attrs),
        )
        .unwrap();
        let engine = Engine::start(dir.path(), extra);
        Lab { engine, _dir: dir }
    }

    fn path(&self, file: &str) -> std::path::PathBuf {
        self.engine.dir.join(file)
    }

    /// Subscribes and waits until `web` is ONLINE on sysA.
    async fn online_client(&self) -> EngineClient {
        let mut client = self.engine.client().await;
        let start = client.subscribe(None).await.unwrap();
        let online = match start {
            haven_protocol::client::Subscription::Snapshot(_, snap) => {
                snap.group_state("web", "sysA") == Some(GroupState::Online)
            }
            other => panic!("expected a snapshot, got {other:?}"),
        };
        if !online {
            client
                .wait_for(PATIENCE, |e| is_group(e, "web", "sysA", GroupState::Online))
                .await
                .expect("web online on sysA");
        }
        client
    }
}

#[tokio::test]
async fn autostart_brings_the_group_online_with_a_real_process_and_file() {
    let lab = Lab::start("", &[]);
    let mut client = lab.online_client().await;
    let pid = wait_pid_file(&lab.path("server-sysA.pid"));
    assert!(alive(pid), "the Process agent started /bin/sleep");
    assert!(lab.path("flag-sysA").exists(), "FileOnOff created its file");
    assert!(!lab.path("flag-sysB").exists());
    let snap = client.snapshot().await.unwrap();
    assert_eq!(
        snap.resource_state("web_server", "sysA"),
        Some(ResourceState::Online)
    );
    assert_eq!(snap.group_state("web", "sysB"), Some(GroupState::Offline));
}

#[tokio::test]
async fn a_killed_process_faults_its_group_which_comes_online_on_the_next_system() {
    let lab = Lab::start("", &[]);
    let mut client = lab.online_client().await;
    let pid = wait_pid_file(&lab.path("server-sysA.pid"));
    signal(pid, libc::SIGKILL);

    let events = client
        .wait_for(PATIENCE, |e| is_group(e, "web", "sysB", GroupState::Online))
        .await
        .expect("web fails over to sysB");
    let at = |pred: &dyn Fn(&haven_model::Event) -> bool| {
        events
            .iter()
            .position(pred)
            .unwrap_or_else(|| panic!("missing event in {events:#?}"))
    };
    let faulted = at(&|e| is_resource(e, "web_server", "sysA", ResourceState::Faulted));
    let group_faulted = at(&|e| is_group(e, "web", "sysA", GroupState::Faulted));
    let failover = at(&|e| {
        matches!(&e.kind, EventKind::Failover { group, from, to: Some(to), .. }
            if &**group == "web" && &**from == "sysA" && &**to == "sysB")
    });
    let flag_off = at(&|e| is_resource(e, "web_flag", "sysA", ResourceState::Offline));
    assert!(faulted <= group_faulted && group_faulted < flag_off && flag_off < failover);

    let new_pid = wait_pid_file(&lab.path("server-sysB.pid"));
    assert_ne!(new_pid, pid);
    assert!(alive(new_pid));
    assert!(lab.path("flag-sysB").exists());
    assert!(
        !lab.path("flag-sysA").exists(),
        "the rest of the group was taken offline"
    );
}

#[tokio::test]
async fn switch_moves_the_group_and_its_process_to_the_target_system() {
    let lab = Lab::start("", &[]);
    let mut client = lab.online_client().await;
    let old_pid = wait_pid_file(&lab.path("server-sysA.pid"));
    let result = client
        .command(Operation::GroupSwitch {
            group: name("web"),
            to: Some(name("sysB")),
        })
        .await
        .unwrap();
    assert_eq!(result, CommandResult::Accepted);
    client
        .wait_for(PATIENCE, |e| is_group(e, "web", "sysB", GroupState::Online))
        .await
        .unwrap();
    assert!(!alive(old_pid), "stopped with TERM on sysA");
    assert!(alive(wait_pid_file(&lab.path("server-sysB.pid"))));

    // A switch to a system that does not exist is refused, and says why.
    let refused = client
        .command(Operation::GroupSwitch {
            group: name("web"),
            to: Some(name("sysZ")),
        })
        .await
        .unwrap();
    match refused {
        CommandResult::Refused { code, reason } => {
            assert_eq!(code, RefusalCode::UnknownObject);
            assert!(reason.contains("sysZ"), "{reason}");
        }
        other => panic!("expected a refusal, got {other:?}"),
    }
}

#[tokio::test]
async fn a_frozen_group_is_not_failed_over_and_clear_brings_it_back() {
    let lab = Lab::start("", &[]);
    let mut client = lab.online_client().await;
    let freeze = client
        .command(Operation::GroupFreeze {
            group: name("web"),
            persistent: false,
        })
        .await
        .unwrap();
    assert!(freeze.is_accepted());
    let pid = wait_pid_file(&lab.path("server-sysA.pid"));
    signal(pid, libc::SIGKILL);
    client
        .wait_for(PATIENCE, |e| {
            is_group(e, "web", "sysA", GroupState::Faulted)
        })
        .await
        .unwrap();
    // Nothing moves for a few monitor intervals.
    match client
        .wait_for(Duration::from_secs(4), |e| {
            matches!(e.kind, EventKind::Failover { .. })
                || is_group(e, "web", "sysB", GroupState::Starting)
        })
        .await
    {
        Err(ClientError::Timeout(_)) => {}
        other => panic!("a frozen group moved: {other:?}"),
    }
    assert!(!lab.path("flag-sysB").exists());

    for op in [
        Operation::GroupUnfreeze { group: name("web") },
        Operation::GroupClear {
            group: name("web"),
            system: Some(name("sysA")),
        },
    ] {
        assert!(client.command(op).await.unwrap().is_accepted());
    }
    client
        .wait_for(PATIENCE, |e| {
            is_resource(e, "web_server", "sysA", ResourceState::Offline)
        })
        .await
        .unwrap();
    // The flag resource is still online on sysA: the group is partial
    // there; online brings the rest back.
    assert!(client
        .command(Operation::GroupOnline {
            group: name("web"),
            system: Some(name("sysA")),
        })
        .await
        .unwrap()
        .is_accepted());
    client
        .wait_for(PATIENCE, |e| is_group(e, "web", "sysA", GroupState::Online))
        .await
        .unwrap();
    assert!(alive(wait_pid_file(&lab.path("server-sysA.pid"))));
}

#[tokio::test]
async fn a_client_that_reconnects_resumes_without_missing_or_repeating_an_event() {
    let lab = Lab::start("", &[]);
    let _ = lab.online_client().await;
    // The watcher stays connected throughout and sees every event.
    let mut watcher = lab.engine.client().await;
    watcher.subscribe(None).await.unwrap();
    let mut first = lab.engine.client().await;
    first.subscribe(None).await.unwrap();
    let last_seen = first.snapshot().await.unwrap().seq;
    drop(first);

    // Events happen while the first client is away.
    let mut actor = lab.engine.client().await;
    let mut watched = Vec::new();
    for to in ["sysB", "sysA"] {
        assert!(actor
            .command(Operation::GroupSwitch {
                group: name("web"),
                to: Some(name(to)),
            })
            .await
            .unwrap()
            .is_accepted());
        watched.extend(
            watcher
                .wait_for(PATIENCE, |e| is_group(e, "web", to, GroupState::Online))
                .await
                .unwrap(),
        );
    }
    let head = actor.snapshot().await.unwrap().seq;
    assert!(head > last_seen + 10, "switches made events");
    while watched.last().map(|e| e.seq) < Some(head) {
        watched.push(watcher.next_event_within(PATIENCE).await.unwrap());
    }

    let mut again = lab.engine.client().await;
    match again.subscribe(Some(last_seen)).await.unwrap() {
        haven_protocol::client::Subscription::Resumed { after } => assert_eq!(after, last_seen),
        other => panic!("expected a resume, got {other:?}"),
    }
    let mut resumed = Vec::new();
    while resumed.len() < (head - last_seen) as usize {
        resumed.push(again.next_event_within(PATIENCE).await.unwrap());
    }
    let seqs: Vec<u64> = resumed.iter().map(|e| e.seq).collect();
    assert_eq!(seqs, ((last_seen + 1)..=head).collect::<Vec<_>>());
    watched.retain(|e| e.seq > last_seen && e.seq <= head);
    assert_eq!(watched, resumed, "the same events the connected client saw");
}

#[tokio::test]
async fn a_client_too_far_behind_or_ahead_gets_a_snapshot_and_is_told_why() {
    let lab = Lab::start("", &["--journal", "5"]);
    let mut client = lab.online_client().await;
    let head = client.snapshot().await.unwrap().seq;
    assert!(head > 6);
    let mut late = lab.engine.client().await;
    match late.subscribe(Some(1)).await.unwrap() {
        haven_protocol::client::Subscription::Snapshot(
            SnapshotReason::JournalTooShort { after: 1, oldest },
            snap,
        ) => {
            assert!(oldest > 2);
            assert!(snap.seq >= head);
        }
        other => panic!("expected a snapshot, got {other:?}"),
    }
    let mut future = lab.engine.client().await;
    match future.subscribe(Some(head + 1000)).await.unwrap() {
        haven_protocol::client::Subscription::Snapshot(
            SnapshotReason::UnknownSequence { .. },
            _,
        ) => {}
        other => panic!("expected a snapshot, got {other:?}"),
    }
}

#[tokio::test]
async fn a_persistent_freeze_is_written_to_main_cf_and_survives_a_restart() {
    let mut lab = Lab::start("", &[]);
    let mut client = lab.online_client().await;
    assert!(client
        .command(Operation::GroupFreeze {
            group: name("web"),
            persistent: true,
        })
        .await
        .unwrap()
        .is_accepted());
    let main_cf = lab.path("main.cf");
    let deadline = std::time::Instant::now() + PATIENCE;
    while !std::fs::read_to_string(&main_cf)
        .unwrap()
        .contains("Frozen = 1")
    {
        assert!(
            std::time::Instant::now() < deadline,
            "main.cf not rewritten"
        );
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    assert!(lab.engine.dir.join("main.cf.previous").exists());
    drop(client);
    let status = lab.engine.proc.stop(PATIENCE).expect("engine stops");
    assert!(status.success(), "{status:?}");
    let engine = Engine::start(&lab.engine.dir.clone(), &[]);
    let mut client = engine.client().await;
    let snap = client.snapshot().await.unwrap();
    assert_eq!(snap.group("web").unwrap().freeze, Freeze::Persistent);
    lab.engine = engine;
}

#[tokio::test]
async fn stopping_the_engine_takes_its_groups_offline() {
    let mut lab = Lab::start("", &[]);
    let _client = lab.online_client().await;
    let pid = wait_pid_file(&lab.path("server-sysA.pid"));
    let status = lab
        .engine
        .proc
        .stop(PATIENCE)
        .expect("engine stops in time");
    assert!(status.success(), "{status:?}\n{}", lab.engine.proc.log());
    assert!(!alive(pid), "the process was stopped");
    assert!(!lab.path("flag-sysA").exists());
}

#[tokio::test]
async fn a_wrong_password_is_refused_and_the_right_one_accepted() {
    let dir = tempfile::tempdir().unwrap();
    let hash = haven_engine_hash("s3cret");
    let text = web_cluster(dir.path(), "").replace(
        "cluster lab (\n",
        &format!("cluster lab (\n        UserNames = {{ admin = \"{hash}\" }}\n"),
    );
    std::fs::write(dir.path().join("main.cf"), text).unwrap();
    let engine = Engine::start(dir.path(), &[]);
    for (user, pass) in [
        (None, None),
        (Some("admin"), Some("wrong")),
        (Some("eve"), Some("s3cret")),
    ] {
        let options = ClientOptions {
            client: "test".into(),
            user: user.map(Into::into),
            password: pass.map(Into::into),
            ..Default::default()
        };
        match EngineClient::connect(&engine.addr, &options).await {
            Err(ClientError::Refused {
                code: ErrorCode::AuthenticationFailed,
                ..
            }) => {}
            Err(other) => panic!("unexpected error {other}"),
            Ok(_) => panic!("{user:?}/{pass:?} was let in"),
        }
    }
    let options = ClientOptions {
        client: "test".into(),
        user: Some("admin".into()),
        password: Some("s3cret".into()),
        ..Default::default()
    };
    let mut client = EngineClient::connect(&engine.addr, &options)
        .await
        .expect("right password");
    assert_eq!(client.snapshot().await.unwrap().config.name.as_ref(), "lab");
}

/// `haven hash-password`, run for real.
fn haven_engine_hash(password: &str) -> String {
    use std::io::Write;
    let mut child = std::process::Command::new(HAVEN)
        .arg("hash-password")
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(password.as_bytes())
        .unwrap();
    let out = child.wait_with_output().unwrap();
    assert!(out.status.success());
    String::from_utf8(out.stdout).unwrap().trim().to_string()
}

#[tokio::test]
async fn application_agent_runs_start_stop_and_monitor_programs() {
    let dir = tempfile::tempdir().unwrap();
    let d = dir.path().display();
    let text = format!(
        r#"include "types.cf"
cluster apps ( )
system one ( )
group batch (
        SystemList = {{ one = 0 }}
        AutoStartList = {{ one }}
        )
        Application job (
                StartProgram = "touch {d}/job.on"
                StopProgram = "rm -f {d}/job.on"
                MonitorProgram = "test -f {d}/job.on && exit 110 || exit 100"
                MonitorInterval = 1
                )
"#
    );
    std::fs::write(dir.path().join("main.cf"), text).unwrap();
    let engine = Engine::start(dir.path(), &[]);
    let mut client = engine.client().await;
    client.subscribe(None).await.unwrap();
    let deadline = std::time::Instant::now() + PATIENCE;
    while !dir.path().join("job.on").exists() {
        assert!(std::time::Instant::now() < deadline, "StartProgram not run");
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
    client
        .wait_for(PATIENCE, |e| {
            is_group(e, "batch", "one", GroupState::Online)
        })
        .await
        .ok();
    // Removing the file by hand is a fault the monitor program reports.
    std::fs::remove_file(dir.path().join("job.on")).unwrap();
    client
        .wait_for(PATIENCE, |e| {
            is_resource(e, "job", "one", ResourceState::Faulted)
        })
        .await
        .expect("monitor program saw the fault");
}

#[tokio::test]
async fn simulation_operations_are_refused_by_a_real_engine() {
    let lab = Lab::start("", &[]);
    let mut client = lab.online_client().await;
    match client
        .command(Operation::SimFaultSystem {
            system: name("sysA"),
        })
        .await
        .unwrap()
    {
        CommandResult::Refused { code, .. } => assert_eq!(code, RefusalCode::NotSimulated),
        other => panic!("{other:?}"),
    }
}
