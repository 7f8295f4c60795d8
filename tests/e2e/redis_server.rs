//! The test harness's own `redis-server` (`support::redis::RedisServer`), on
//! which the Redis store tests rely: it starts and answers PING on its own
//! loopback port, keeps what was written across a graceful stop and across a
//! SIGKILL (append-only, fsync per write) when started again in the same
//! directory, and leaves no process behind.

use std::path::Path;
use std::time::Duration;

use crate::support::redis::RedisServer;

/// Whether a process with this id exists (a zombie counts: not yet reaped).
fn process_exists(pid: u32) -> bool {
    Path::new(&format!("/proc/{pid}")).exists()
}

/// A fresh connection to `url` answers PING with PONG within a second.
async fn answers_ping(url: &str) -> bool {
    let Ok(client) = redis::Client::open(url) else {
        return false;
    };
    let attempt = async {
        let mut con = client.get_multiplexed_async_connection().await.ok()?;
        redis::cmd("PING")
            .query_async::<String>(&mut con)
            .await
            .ok()
    };
    matches!(
        tokio::time::timeout(Duration::from_secs(1), attempt).await,
        Ok(Some(pong)) if pong == "PONG"
    )
}

#[tokio::test]
async fn starts_on_a_loopback_port_and_answers_ping() {
    let server = RedisServer::start().await;
    assert_eq!(
        server.url(),
        format!("redis://127.0.0.1:{}/0", server.port())
    );
    assert!(
        answers_ping(&server.url()).await,
        "no PONG from {}",
        server.url()
    );
    let pid = server.pid().expect("it runs");
    assert!(process_exists(pid), "no process {pid}");
    // Its data goes to its own directory: the append-only files and the log.
    assert!(server.dir().join("redis.log").is_file());
    assert!(server.dir().join("appendonlydir").is_dir());
}

#[tokio::test]
async fn a_key_survives_stop_and_start_again() {
    let mut server = RedisServer::start().await;
    let port = server.port();
    server.set("survivor", "still here").await;

    server.stop().await;
    assert!(server.pid().is_none());
    assert!(
        !answers_ping(&server.url()).await,
        "still answering after stop()"
    );

    server.start_again().await;
    assert_eq!(server.port(), port, "start_again keeps the port");
    assert_eq!(server.get("survivor").await.as_deref(), Some("still here"));
    assert_eq!(server.keys("*").await, vec!["survivor".to_owned()]);
}

/// A crash loses nothing either: every write is fsynced before it is answered.
#[tokio::test]
async fn a_key_survives_kill_and_start_again() {
    let mut server = RedisServer::start().await;
    server.set("written", "before the crash").await;
    let pid = server.pid().expect("it runs");

    server.kill().await;
    assert!(
        !process_exists(pid),
        "process {pid} is still there after kill()"
    );
    assert!(
        !answers_ping(&server.url()).await,
        "still answering after kill()"
    );

    server.start_again().await;
    assert_eq!(
        server.get("written").await.as_deref(),
        Some("before the crash")
    );
    assert_eq!(server.get("never written").await, None);
}

#[tokio::test]
async fn two_servers_get_different_ports_and_data() {
    let (one, two) = tokio::join!(RedisServer::start(), RedisServer::start());
    assert_ne!(one.port(), two.port());
    assert_ne!(one.dir(), two.dir());
    one.set("only-in-one", "1").await;
    assert_eq!(two.get("only-in-one").await, None);
    assert_eq!(two.keys("*").await, Vec::<String>::new());
    assert_eq!(one.keys("only-*").await, vec!["only-in-one".to_owned()]);
}

#[tokio::test]
async fn drop_leaves_no_process_and_no_directory() {
    let server = RedisServer::start().await;
    let pid = server.pid().expect("it runs");
    let dir = server.dir().to_owned();
    let url = server.url();
    assert!(process_exists(pid));
    drop(server);
    assert!(!process_exists(pid), "process {pid} outlived the drop");
    assert!(!dir.exists(), "{} outlived the drop", dir.display());
    assert!(!answers_ping(&url).await, "{url} still answers");
}

/// Someone else holds the port for a moment after the stop: `start_again`
/// waits it out instead of failing or moving to another port.
#[tokio::test]
async fn start_again_waits_out_a_busy_port() {
    let mut server = RedisServer::start().await;
    server.set("kept", "yes").await;
    server.stop().await;
    let squatter = std::net::TcpListener::bind(("127.0.0.1", server.port()))
        .expect("the stopped server's port is free");
    let release = tokio::spawn(async move {
        tokio::time::sleep(Duration::from_millis(500)).await;
        drop(squatter);
    });
    server.start_again().await;
    release.await.expect("the squatter task ends");
    assert_eq!(server.get("kept").await.as_deref(), Some("yes"));
    let log = std::fs::read_to_string(server.dir().join("redis.log")).unwrap_or_default();
    assert!(
        log.contains("Address already in use"),
        "the port was not busy after all:\n{log}"
    );
}
