//! The benchmark's world: N people, each in their own room with the echo
//! agent, as a sandbox seed (fixed ids, so a reset gives the same world);
//! and the workflows the switchboard agent runs: one echo rule plus filler
//! rules of realistic shape that never match a benchmark message.

use std::fmt::Write as _;
use std::path::Path;

/// A person or agent of the world.
#[derive(Debug, Clone)]
pub struct Member {
    /// Id.
    pub id: String,
    /// Handle (no `@`).
    pub handle: String,
    /// API key.
    pub api_key: String,
}

/// A room.
#[derive(Debug, Clone)]
pub struct Room {
    /// Id.
    pub id: String,
}

/// Everyone and every room.
#[derive(Debug, Clone)]
pub struct World {
    /// One person per room, in room order.
    pub users: Vec<Member>,
    /// The agent under test.
    pub agent: Member,
    /// The rooms.
    pub rooms: Vec<Room>,
}

/// The agent's handle.
pub const AGENT_HANDLE: &str = "bench/echo";

impl World {
    /// `rooms` rooms, each with its own person and the agent.
    pub fn new(rooms: usize) -> Self {
        // Ids are stable across runs: a seed printed once fits every later run.
        let id = |kind: u32, n: usize| format!("00000000-0000-4000-8000-{kind:04x}{n:08x}");
        World {
            users: (0..rooms)
                .map(|i| Member {
                    id: id(1, i),
                    handle: format!("bench-user-{i}"),
                    api_key: format!("bench-user-{i}-key"),
                })
                .collect(),
            agent: Member {
                id: id(2, 0),
                handle: AGENT_HANDLE.to_owned(),
                api_key: "bench-echo-key".to_owned(),
            },
            rooms: (0..rooms).map(|i| Room { id: id(3, i) }).collect(),
        }
    }

    /// The sandbox seed (YAML) of this world.
    pub fn seed(&self) -> String {
        let mut s =
            String::from("# switchboard bench world (switchboard bench --print-seed)\nusers:\n");
        for u in &self.users {
            let _ = writeln!(
                s,
                "  - {{ handle: {}, api_key: {}, id: {} }}",
                u.handle, u.api_key, u.id
            );
        }
        let owner = self
            .users
            .first()
            .map_or("bench-user-0", |u| u.handle.as_str());
        let a = &self.agent;
        let _ = writeln!(
            s,
            "agents:\n  - {{ handle: {}, name: Echo, description: Answers every message with its text, api_key: {}, owner: {owner}, id: {} }}",
            a.handle, a.api_key, a.id
        );
        s.push_str("rooms:\n");
        for (i, (r, u)) in self.rooms.iter().zip(&self.users).enumerate() {
            let _ = writeln!(
                s,
                "  - {{ title: Bench room {i}, owner: {}, participants: [{}], id: {} }}",
                u.handle, a.handle, r.id
            );
        }
        s
    }
}

/// The echo rule.
const ECHO: &str = r#"version: 1
rules:
  - name: echo
    on: message_created
    if:
      - event.sender_type: User
      - event.content: { contains: "ping #" }
    do:
      - reply: "echo: {{ event.content }}"
"#;

/// Writes the workflows into `dir`: the echo rule and `rules - 1` filler
/// rules ([`filler`]) in files of at most 1,000 rules.
pub fn write_workflows(dir: &Path, rules: usize) -> std::io::Result<()> {
    std::fs::write(dir.join("echo.yaml"), ECHO)?;
    let count = rules.saturating_sub(1);
    for (f, start) in (0..count).step_by(1_000).enumerate() {
        let text = filler(start..(start + 1_000).min(count));
        std::fs::write(dir.join(format!("filler{f:02}.yaml")), text)?;
    }
    Ok(())
}

/// One workflow file of filler rules `range` (also the engine benchmark's
/// rules): 70% on messages, the rest on contact and room events; a word
/// regex or a substring condition behind a sender check; a templated reply.
pub fn filler(range: std::ops::Range<usize>) -> String {
    let others = [
        "contact_request_received",
        "participant_added",
        "room_added",
    ];
    let mut text = String::from("version: 1\nvars: { team: [ann, bob, carol] }\nrules:\n");
    for i in range {
        let on = match i % 10 {
            0..=6 => "message_created",
            k => others[k - 7],
        };
        let cond = match i % 2 {
            0 => format!("event.content: {{ matches: '(?i)\\bword{i}\\b' }}"),
            _ => format!("event.content: {{ contains: 'phrase {i} here', case: insensitive }}"),
        };
        let _ = write!(
            text,
            "  - name: rule-{i}\n    on: {on}\n    if:\n      - event.sender_type: User\n      - {cond}\n    do:\n      - reply: \"Hi {{{{ event.sender_name }}}}, rule {i} ({{{{ vars.team | length }}}} people) here.\"\n"
        );
    }
    text
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn seed_and_workflows_load() {
        let world = World::new(3);
        let seed =
            band_sandbox::parse_seed(&world.seed(), "bench").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(seed.users.len(), 3);
        let dir = tempfile::tempdir().unwrap();
        write_workflows(dir.path(), 2_500).unwrap();
        let rules = switchboard_workflow::load_dir(dir.path()).unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(rules.len(), 2_500);
    }
}
