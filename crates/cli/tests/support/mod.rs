//! Test support: real `haven` processes, started and stopped by pid, in
//! their own temporary directories.

#![allow(dead_code)]

use std::io::{BufRead, BufReader};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use haven_model::{Event, EventKind, GroupState, ResourceState};
use haven_protocol::{ClientOptions, EngineClient};

pub const HAVEN: &str = env!("CARGO_BIN_EXE_haven");

/// Upper bound for anything a test waits for.
pub const PATIENCE: Duration = Duration::from_secs(30);

/// A `haven` child process, killed (TERM, then KILL) when dropped.
pub struct Proc {
    pub child: Child,
    pub stderr: Arc<Mutex<String>>,
}

impl Proc {
    /// Starts `haven ARGS` and waits until its stderr has a line containing
    /// `ready`; returns the process and that line.
    pub fn start(args: &[&str], ready: &str) -> (Proc, String) {
        let mut child = Command::new(HAVEN)
            .args(args)
            .env("HAVEN_LOG", "info")
            .env("NO_COLOR", "1")
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .expect("start haven");
        let stderr = Arc::new(Mutex::new(String::new()));
        let (tx, rx) = std::sync::mpsc::channel();
        let reader = BufReader::new(child.stderr.take().unwrap());
        let log = stderr.clone();
        let ready = ready.to_string();
        std::thread::spawn(move || {
            for line in reader.lines().map_while(Result::ok) {
                if line.contains(&ready) {
                    let _ = tx.send(line.clone());
                }
                log.lock().unwrap().push_str(&(line + "\n"));
            }
        });
        let mut proc = Proc { child, stderr };
        match rx.recv_timeout(PATIENCE) {
            Ok(line) => (proc, line),
            Err(_) => {
                let status = proc.child.try_wait().ok().flatten();
                panic!(
                    "haven {args:?} not ready (exit: {status:?}); stderr:\n{}",
                    proc.log()
                )
            }
        }
    }

    pub fn log(&self) -> String {
        self.stderr.lock().unwrap().clone()
    }

    pub fn pid(&self) -> i32 {
        self.child.id() as i32
    }

    /// Sends SIGTERM and waits for the exit (KILL after `limit`).
    pub fn stop(&mut self, limit: Duration) -> Option<std::process::ExitStatus> {
        signal(self.pid(), libc::SIGTERM);
        let deadline = Instant::now() + limit;
        while Instant::now() < deadline {
            if let Ok(Some(status)) = self.child.try_wait() {
                return Some(status);
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        None
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            self.stop(Duration::from_secs(15));
        }
    }
}

pub fn signal(pid: i32, sig: i32) {
    // SAFETY: kill(2) on a pid this test owns.
    unsafe {
        libc::kill(pid, sig);
    }
}

pub fn alive(pid: i32) -> bool {
    match std::fs::read_to_string(format!("/proc/{pid}/stat")) {
        Ok(stat) => stat
            .rsplit_once(')')
            .and_then(|(_, rest)| rest.split_whitespace().next())
            .is_some_and(|s| s != "Z" && s != "X"),
        Err(_) => false,
    }
}

/// Reads a pid file, waiting for it to appear.
pub fn wait_pid_file(path: &Path) -> i32 {
    let deadline = Instant::now() + PATIENCE;
    loop {
        if let Some(pid) = std::fs::read_to_string(path)
            .ok()
            .and_then(|s| s.trim().parse().ok())
        {
            return pid;
        }
        assert!(Instant::now() < deadline, "no pid file {}", path.display());
        std::thread::sleep(Duration::from_millis(50));
    }
}

/// A running engine on a free loopback port, with its config directory.
pub struct Engine {
    pub proc: Proc,
    pub addr: String,
    pub dir: PathBuf,
}

impl Engine {
    pub fn start(dir: &Path, extra: &[&str]) -> Engine {
        let mut args = vec![
            "engine",
            "--config",
            dir.to_str().unwrap(),
            "--listen",
            "127.0.0.1:0",
        ];
        args.extend_from_slice(extra);
        let (proc, line) = Proc::start(&args, "listening on");
        // "... listening on 127.0.0.1:PORT: 2 systems, ..."
        let addr = line
            .split("listening on ")
            .nth(1)
            .and_then(|rest| rest.split(": ").next())
            .expect("address in the ready line")
            .to_string();
        Engine {
            proc,
            addr,
            dir: dir.to_path_buf(),
        }
    }

    pub async fn client(&self) -> EngineClient {
        EngineClient::connect(
            &self.addr,
            &ClientOptions {
                client: "haven-tests".into(),
                ..ClientOptions::default()
            },
        )
        .await
        .expect("connect to engine")
    }
}

/// Writes `main.cf` into a new temporary directory.
pub fn config_dir(main_cf: &str) -> tempfile::TempDir {
    let dir = tempfile::tempdir().expect("temp dir");
    std::fs::write(dir.path().join("main.cf"), main_cf).expect("write main.cf");
    dir
}

pub fn is_group(e: &Event, group: &str, system: &str, state: GroupState) -> bool {
    matches!(&e.kind, EventKind::GroupState { group: g, system: s, to, .. }
        if &**g == group && &**s == system && *to == state)
}

pub fn is_resource(e: &Event, resource: &str, system: &str, state: ResourceState) -> bool {
    matches!(&e.kind, EventKind::ResourceState { resource: r, system: s, to, .. }
        if &**r == resource && &**s == system && *to == state)
}
