//! The shared store against a real `redis-server`: what one process writes
//! for an agent, the next holder of its lease reads (state with Redis's own
//! expiry, the journal, pending conversations); a process whose lease was
//! taken writes nothing more; every key sits under the agent's hash tag;
//! leases are taken once, renewed only by their holder, and lost when the
//! store stays away past their deadline (an unreachable store at start:
//! `fleet::an_unreachable_store_stops_the_fleet_at_its_line_before_anything_connects`).

use std::time::Duration;

use chrono::Utc;
use serde_json::json;
use switchboard::effects::redis::conversations::RedisConversations;
use switchboard::effects::redis::journal::RedisJournal;
use switchboard::effects::redis::state::RedisState;
use switchboard::effects::redis::{AgentKeys, AgentSpace, Lease, RedisStore, StoreError};
use switchboard_engine::conversation::ConversationStore;
use switchboard_engine::journal::{JournalStore, Record};
use switchboard_engine::state::{Change, StatePersistence, Stored};
use switchboard_workflow::secrets::Redaction;

use crate::support::redis::RedisServer;

const AGENT: &str = "9c1e0000-0000-4000-8000-00000000a001";
const LEASE: Duration = Duration::from_secs(5);

async fn connect(server: &RedisServer) -> RedisStore {
    RedisStore::connect(&server.url(), &server.url())
        .await
        .expect("the test's redis-server answers")
}

async fn take(store: &RedisStore) -> Lease {
    Lease::try_acquire(store, &AgentKeys::new(AGENT), LEASE)
        .await
        .unwrap()
        .expect("the lease is free")
}

#[tokio::test]
async fn the_next_holder_reads_what_the_last_wrote_and_the_last_writes_no_more() {
    let server = RedisServer::start().await;
    let (first_store, second_store) = (connect(&server).await, connect(&server).await);
    let first = take(&first_store).await;
    let space = AgentSpace::new(&first_store, first.fence().clone());
    let state = RedisState::open(&space, Redaction::new()).await.unwrap();
    assert!(state.load().unwrap().is_empty());
    let later = Utc::now() + chrono::Duration::hours(1);
    state.apply(Change::Set {
        key: "count".into(),
        stored: Stored {
            value: json!(2),
            expires: Some(later),
        },
    });
    state.apply(Change::Set {
        key: "brief".into(),
        stored: Stored {
            value: json!("gone soon"),
            expires: Some(Utc::now() + chrono::Duration::milliseconds(300)),
        },
    });
    state.apply(Change::Set {
        key: "dropped".into(),
        stored: Stored {
            value: json!(1),
            expires: None,
        },
    });
    state.apply(Change::Unset {
        key: "dropped".into(),
    });
    let journal = RedisJournal::open(&space, Redaction::new()).await.unwrap();
    for record in [
        Record::Sent {
            message: "m1".into(),
            step: "hello#do0".into(),
            at: Some(Utc::now()),
        },
        Record::Done {
            message: "m1".into(),
            step: "hello#do0".into(),
            result: json!({"id": "reply-1"}),
            at: Some(Utc::now()),
        },
        Record::Sent {
            message: "m1".into(),
            step: "hello#do1".into(),
            at: Some(Utc::now()),
        },
        Record::Done {
            message: "m2".into(),
            step: "hello#do0".into(),
            result: json!(null),
            at: Some(Utc::now()),
        },
        Record::Settled {
            message: "m2".into(),
        },
    ] {
        journal.record(record).await.expect("written");
    }
    space.flush().await.unwrap();
    // Every key of the agent sits under its hash tag.
    let keys = server.keys("*").await;
    assert!(!keys.is_empty());
    for key in &keys {
        assert!(
            key.starts_with(&format!("switchboard:{{{AGENT}}}:")),
            "{key} is outside the agent's hash tag"
        );
    }
    // Redis expires the short-lived value by itself.
    tokio::time::sleep(Duration::from_millis(600)).await;
    assert_eq!(
        server
            .get(&format!("switchboard:{{{AGENT}}}:state:v:brief"))
            .await,
        None
    );

    // The first process loses its lease (it expired and another took it).
    let lease_key = AgentKeys::new(AGENT).lease();
    server.set(&lease_key, "someone-else").await;
    state.apply(Change::Set {
        key: "count".into(),
        stored: Stored {
            value: json!(99),
            expires: None,
        },
    });
    let refused = journal
        .record(Record::Sent {
            message: "m3".into(),
            step: "x#do0".into(),
            at: None,
        })
        .await;
    assert!(refused.is_err(), "a write under a lost lease went through");
    assert!(matches!(
        space.flush().await,
        Err(StoreError::LeaseLost { .. })
    ));
    assert!(first.fence().is_lost());

    // The next holder reads what the first wrote before it lost the lease.
    let mut conn = server.connection().await;
    let _: () = redis::cmd("DEL")
        .arg(&lease_key)
        .query_async(&mut conn)
        .await
        .unwrap();
    let second = take(&second_store).await;
    let space = AgentSpace::new(&second_store, second.fence().clone());
    let state = RedisState::open(&space, Redaction::new()).await.unwrap();
    let entries = state.load().unwrap();
    assert_eq!(entries.get("count").map(|s| &s.value), Some(&json!(2)));
    assert!(entries.get("count").unwrap().expires.is_some());
    assert!(!entries.contains_key("brief"), "{entries:?}");
    assert!(!entries.contains_key("dropped"), "{entries:?}");
    let journal = RedisJournal::open(&space, Redaction::new()).await.unwrap();
    let mut records = journal.recorded().unwrap();
    records.sort_by_key(|r| format!("{r:?}"));
    let steps: Vec<(String, String, bool)> = records
        .iter()
        .map(|r| match r {
            Record::Sent { message, step, .. } => (message.clone(), step.clone(), false),
            Record::Done { message, step, .. } => (message.clone(), step.clone(), true),
            Record::Settled { message } => (message.clone(), String::new(), false),
        })
        .collect();
    assert_eq!(
        steps,
        vec![
            ("m1".to_owned(), "hello#do0".to_owned(), true),
            ("m1".to_owned(), "hello#do1".to_owned(), false),
        ],
        "m2 settled, m3 refused: {records:?}"
    );
    assert!(records
        .iter()
        .any(|r| matches!(r, Record::Done { result, .. } if result == &json!({"id": "reply-1"}))));
}

#[tokio::test]
async fn pending_conversations_survive_a_change_of_holder() {
    use switchboard_engine::conversation::{ConversationChange, StoredConversations};
    let server = RedisServer::start().await;
    let store = connect(&server).await;
    let lease = take(&store).await;
    let space = AgentSpace::new(&store, lease.fence().clone());
    let kept = RedisConversations::open(&space, Redaction::new())
        .await
        .unwrap();
    assert_eq!(kept.load().unwrap(), StoredConversations::default());
    kept.apply(ConversationChange::Source {
        hash: 42,
        text: "version: 1\n".into(),
    })
    .await
    .unwrap();
    kept.apply(ConversationChange::Source {
        hash: 7,
        text: "old".into(),
    })
    .await
    .unwrap();
    kept.apply(ConversationChange::DropSource { hash: 7 })
        .await
        .unwrap();
    lease.release().await.unwrap();
    assert!(kept
        .apply(ConversationChange::Remove { id: "x".into() })
        .await
        .is_err());
    let lease = take(&store).await;
    let space = AgentSpace::new(&store, lease.fence().clone());
    let kept = RedisConversations::open(&space, Redaction::new())
        .await
        .unwrap();
    let loaded = kept.load().unwrap();
    assert_eq!(
        loaded.sources.get(&42).map(String::as_str),
        Some("version: 1\n")
    );
    assert!(!loaded.sources.contains_key(&7));
}

#[tokio::test]
async fn a_lease_is_taken_once_and_renewed_only_by_its_holder() {
    let server = RedisServer::start().await;
    let store = connect(&server).await;
    let keys = AgentKeys::new(AGENT);
    let lease = take(&store).await;
    assert!(Lease::try_acquire(&store, &keys, LEASE)
        .await
        .unwrap()
        .is_none());
    let before = lease.fence().deadline();
    tokio::time::sleep(Duration::from_millis(20)).await;
    assert_eq!(
        Lease::renew_all(&store, std::slice::from_ref(&lease))
            .await
            .unwrap(),
        vec![true]
    );
    assert!(
        lease.fence().deadline() > before,
        "renewal extends the local deadline"
    );
    assert!(lease.fence().holds());
    // Taken over: the renewal says so, and the fence is lost.
    server.set(&keys.lease(), "another-process").await;
    assert_eq!(
        Lease::renew_all(&store, std::slice::from_ref(&lease))
            .await
            .unwrap(),
        vec![false]
    );
    assert!(lease.fence().is_lost());
    // Giving back a lease one does not hold leaves the holder's in place.
    lease.release().await.unwrap();
    assert_eq!(
        server.get(&keys.lease()).await.as_deref(),
        Some("another-process")
    );
}

#[tokio::test]
async fn the_lease_is_lost_when_the_store_stays_away_past_its_deadline() {
    let mut server = RedisServer::start().await;
    let store = connect(&server).await;
    let lease = Lease::try_acquire(&store, &AgentKeys::new(AGENT), Duration::from_secs(1))
        .await
        .unwrap()
        .expect("free");
    server.kill().await;
    assert!(lease.fence().holds(), "held until its deadline");
    tokio::time::sleep(Duration::from_millis(1100)).await;
    let renewed = Lease::renew_all(&store, std::slice::from_ref(&lease)).await;
    assert!(renewed.is_err());
    assert!(!lease.fence().holds());
    assert!(lease.fence().is_lost());
}
