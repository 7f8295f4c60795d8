//! `Event::decode(name, payload)` never panics. The first byte picks the
//! event name: one of the known events, or (past them) the text up to the
//! first newline; the rest of the input is the payload, parsed as JSON
//! (inputs that are not JSON are skipped).
#![no_main]

use libfuzzer_sys::fuzz_target;
use serde_json::Value;
use band_wire::events::{Event, KNOWN_EVENTS};

fuzz_target!(|data: &[u8]| {
    let Some((&pick, rest)) = data.split_first() else {
        return;
    };
    let (name, json) = match KNOWN_EVENTS.get(usize::from(pick) % (KNOWN_EVENTS.len() + 1)) {
        Some(known) => ((*known).to_string(), rest),
        None => {
            let cut = rest.iter().position(|&b| b == b'\n').unwrap_or(rest.len());
            let json = rest.get(cut + 1..).unwrap_or_default();
            (String::from_utf8_lossy(&rest[..cut]).into_owned(), json)
        }
    };
    let Ok(payload) = serde_json::from_slice::<Value>(json) else {
        return;
    };
    if let Ok(event) = Event::decode(&name, payload) {
        assert_eq!(event.name(), name);
        let _ = event.payload();
    }
});
