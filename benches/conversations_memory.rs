//! Memory per pending conversation: the process's resident set size (Linux
//! `VmRSS`) with the runtime's conversation set empty, then holding 10,000
//! conversations across 1,000 rooms paused by the engine (the world of
//! `benches/conversations.rs`); prints (RSS_10000 − RSS_0) / 10,000. Not a
//! criterion bench: one bounded run (`cargo bench --bench conversations_memory`).

use std::sync::Arc;

use chrono::Utc;
use switchboard::bench::conversations::{engine, pending, rss_kib, ruleset};
use switchboard::rules::conversations::{Conversations, DEFAULT_MAX_PER_PERSON};

const ROOMS: usize = 1_000;
const PER_ROOM: usize = 10;
const SENDERS: usize = 5;

fn main() {
    // `cargo bench` passes `--bench`; nothing here takes arguments.
    let runtime = match tokio::runtime::Builder::new_current_thread().build() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("cannot start a tokio runtime: {e}");
            std::process::exit(1);
        }
    };
    let rules = match ruleset() {
        Ok(r) => r,
        Err(e) => {
            eprintln!("the benchmark workflow does not compile: {e}");
            std::process::exit(1);
        }
    };
    let engine = engine(rules);
    let n = ROOMS * PER_ROOM;
    let conversations = Arc::new(Conversations::in_memory(DEFAULT_MAX_PER_PERSON));
    let Some(empty) = rss_kib() else {
        eprintln!("VmRSS is not readable here (/proc/self/status): Linux only");
        return;
    };
    // Made by the engine as messages pause, then moved into the set (what
    // the handler does); what making them leaves behind is freed and reused.
    let all = runtime.block_on(pending(&engine, ROOMS, PER_ROOM, SENDERS, Utc::now()));
    if let Err(e) = runtime.block_on(conversations.keep(all)) {
        eprintln!("cannot keep the conversations: {e}");
        std::process::exit(1);
    }
    let Some(full) = rss_kib() else { return };
    let kept = conversations.len();
    println!(
        "conversations_memory: VmRSS {empty} KiB with none pending, {full} KiB with {kept} pending across {ROOMS} rooms: {:.0} bytes per pending conversation",
        (full.saturating_sub(empty) as f64 * 1024.0) / n as f64
    );
}
