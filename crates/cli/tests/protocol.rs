//! End-to-end: the engine socket against bad clients. A malformed or
//! oversized frame gets an error frame and a closed connection; the engine
//! keeps serving everyone else.

mod support;

use std::io::{Read, Write};
use std::net::TcpStream;
use std::time::Duration;

use haven_protocol::{EngineMsg, ErrorCode};
use support::*;

const SIM_CLUSTER: &str = r#"include "types.cf"
cluster bad ( )
system a ( )
system b ( )
group g (
        SystemList = { a = 0, b = 1 }
        AutoStartList = { a }
        )
        IP g_ip ( Address = "192.0.2.1" )
"#;

/// Writes raw bytes and reads frames back until the engine closes.
fn exchange(addr: &str, bytes: &[u8]) -> Vec<EngineMsg> {
    exchange_then(addr, bytes, false)
}

/// Like [`exchange`]; with `hang_up`, closes our sending side after the
/// bytes, as a client that gives up would.
fn exchange_then(addr: &str, bytes: &[u8], hang_up: bool) -> Vec<EngineMsg> {
    let mut stream = TcpStream::connect(addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_secs(15)))
        .unwrap();
    stream.write_all(bytes).unwrap();
    if hang_up {
        stream.shutdown(std::net::Shutdown::Write).unwrap();
    }
    let mut out = Vec::new();
    let mut buf = Vec::new();
    let mut chunk = [0u8; 4096];
    loop {
        match stream.read(&mut chunk) {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
        while buf.len() >= 4 {
            let size = u32::from_be_bytes([buf[0], buf[1], buf[2], buf[3]]) as usize;
            if buf.len() < 4 + size {
                break;
            }
            out.push(serde_json::from_slice(&buf[4..4 + size]).expect("engine frames are valid"));
            buf.drain(..4 + size);
        }
    }
    out
}

fn frame(body: &[u8]) -> Vec<u8> {
    let mut v = (body.len() as u32).to_be_bytes().to_vec();
    v.extend_from_slice(body);
    v
}

fn last_error(msgs: &[EngineMsg]) -> ErrorCode {
    match msgs.last() {
        Some(EngineMsg::Error { code, .. }) => *code,
        other => panic!("expected an error frame last, got {other:?}"),
    }
}

#[tokio::test]
async fn bad_frames_get_an_error_and_a_closed_connection_and_the_engine_lives_on() {
    let dir = config_dir(SIM_CLUSTER);
    let engine = Engine::start(dir.path(), &["--simulate", "--sim-delay", "0"]);

    let oversized = exchange(&engine.addr, &u32::MAX.to_be_bytes());
    assert_eq!(last_error(&oversized), ErrorCode::FrameTooLarge);

    let garbage = exchange(&engine.addr, &frame(b"\x00\xffnot json"));
    assert_eq!(last_error(&garbage), ErrorCode::BadFrame);

    let unknown = exchange(&engine.addr, &frame(br#"{"msg":"format_disk"}"#));
    assert_eq!(last_error(&unknown), ErrorCode::BadFrame);

    let before_hello = exchange(&engine.addr, &frame(br#"{"msg":"get_snapshot"}"#));
    assert_eq!(last_error(&before_hello), ErrorCode::BadFrame);

    let no_version = exchange(
        &engine.addr,
        &frame(br#"{"msg":"hello","versions":[99],"client":"future"}"#),
    );
    assert_eq!(last_error(&no_version), ErrorCode::UnsupportedVersion);

    let mut hello_twice = frame(br#"{"msg":"hello","versions":[1],"client":"t"}"#);
    hello_twice.extend(frame(br#"{"msg":"hello","versions":[1],"client":"t"}"#));
    let twice = exchange(&engine.addr, &hello_twice);
    assert!(matches!(twice.first(), Some(EngineMsg::Welcome { .. })));
    assert_eq!(last_error(&twice), ErrorCode::BadFrame);

    // Random bytes, many connections: never a crash.
    for i in 0..50u32 {
        let noise: Vec<u8> = (0..(i * 37 % 300))
            .map(|j| (j.wrapping_mul(2654435761u32.wrapping_add(i)) >> 13) as u8)
            .collect();
        let _ = exchange_then(&engine.addr, &noise, true);
    }

    // The engine still serves a good client.
    let mut client = engine.client().await;
    let snap = client.snapshot().await.unwrap();
    assert_eq!(&*snap.config.name, "bad");
    assert!(alive(engine.proc.pid()));
}

#[tokio::test]
async fn a_silent_client_is_disconnected_after_three_heartbeats() {
    let dir = config_dir(SIM_CLUSTER);
    let engine = Engine::start(dir.path(), &["--simulate", "--heartbeat", "1"]);
    let msgs = exchange(
        &engine.addr,
        &frame(br#"{"msg":"hello","versions":[1],"client":"mute"}"#),
    );
    assert!(matches!(msgs.first(), Some(EngineMsg::Welcome { .. })));
    assert!(msgs.iter().any(|m| matches!(m, EngineMsg::Heartbeat)));
    assert_eq!(last_error(&msgs), ErrorCode::Timeout);
}

#[tokio::test]
async fn the_engine_sends_heartbeats_even_to_a_client_that_sends_its_own() {
    let dir = config_dir(SIM_CLUSTER);
    let engine = Engine::start(dir.path(), &["--simulate", "--heartbeat", "1"]);
    let mut stream = TcpStream::connect(&engine.addr).unwrap();
    stream
        .set_read_timeout(Some(Duration::from_millis(200)))
        .unwrap();
    stream
        .write_all(&frame(
            br#"{"msg":"hello","versions":[1],"client":"chatty"}"#,
        ))
        .unwrap();
    let mut heard = Vec::new();
    let mut chunk = [0u8; 4096];
    let started = std::time::Instant::now();
    while started.elapsed() < Duration::from_secs(4) {
        stream.write_all(&frame(br#"{"msg":"heartbeat"}"#)).unwrap();
        if let Ok(n) = stream.read(&mut chunk) {
            heard.extend_from_slice(&chunk[..n]);
        }
    }
    let text = String::from_utf8_lossy(&heard);
    assert!(text.contains(r#""msg":"welcome""#), "{text}");
    assert!(
        text.matches(r#""msg":"heartbeat""#).count() >= 2,
        "the engine kept sending heartbeats: {text}"
    );
}
