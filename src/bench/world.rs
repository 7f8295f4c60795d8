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
        let id = stable_id;
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
            user_line(&mut s, u);
        }
        let owner = self
            .users
            .first()
            .map_or("bench-user-0", |u| u.handle.as_str());
        s.push_str("agents:\n");
        agent_line(&mut s, &self.agent, owner);
        s.push_str("rooms:\n");
        for (i, (r, u)) in self.rooms.iter().zip(&self.users).enumerate() {
            room_line(&mut s, i, r, &u.handle, &self.agent.handle);
        }
        s
    }
}

/// A fleet's world: one person and `agents` agents, each agent in its own
/// rooms with that person (room `i` belongs to agent `i / rooms_per_agent`).
#[derive(Debug, Clone)]
pub struct FleetWorld {
    /// The person in every room.
    pub user: Member,
    /// The agents, `bench/a0` onwards.
    pub agents: Vec<Member>,
    /// The rooms, agent by agent.
    pub rooms: Vec<Room>,
    /// Rooms of each agent.
    pub rooms_per_agent: usize,
}

impl FleetWorld {
    /// `agents` agents with `rooms_per_agent` rooms each (at least one).
    pub fn new(agents: usize, rooms_per_agent: usize) -> Self {
        let rooms_per_agent = rooms_per_agent.max(1);
        FleetWorld {
            user: Member {
                id: stable_id(1, 0),
                handle: "bench-user-0".to_owned(),
                api_key: "bench-user-0-key".to_owned(),
            },
            agents: (0..agents)
                .map(|i| Member {
                    id: stable_id(2, i),
                    handle: format!("bench/a{i}"),
                    api_key: format!("bench-agent-{i}-key"),
                })
                .collect(),
            rooms: (0..agents * rooms_per_agent)
                .map(|i| Room {
                    id: stable_id(3, i),
                })
                .collect(),
            rooms_per_agent,
        }
    }

    /// The rooms of agent `i`.
    pub fn rooms_of(&self, i: usize) -> &[Room] {
        let start = (i * self.rooms_per_agent).min(self.rooms.len());
        let end = (start + self.rooms_per_agent).min(self.rooms.len());
        &self.rooms[start..end]
    }

    /// The sandbox seed (YAML) of this world.
    pub fn seed(&self) -> String {
        let mut s = String::from("# switchboard bench fleet world\nusers:\n");
        user_line(&mut s, &self.user);
        s.push_str("agents:\n");
        for a in &self.agents {
            agent_line(&mut s, a, &self.user.handle);
        }
        s.push_str("rooms:\n");
        for (i, a) in self.agents.iter().enumerate() {
            for (k, r) in self.rooms_of(i).iter().enumerate() {
                room_line(
                    &mut s,
                    i * self.rooms_per_agent + k,
                    r,
                    &self.user.handle,
                    &a.handle,
                );
            }
        }
        s
    }
}

/// Ids stable across runs (a seed printed once fits every later run):
/// `kind` 1 people, 2 agents, 3 rooms.
fn stable_id(kind: u32, n: usize) -> String {
    format!("00000000-0000-4000-8000-{kind:04x}{n:08x}")
}

fn user_line(s: &mut String, u: &Member) {
    let _ = writeln!(
        s,
        "  - {{ handle: {}, api_key: {}, id: {} }}",
        u.handle, u.api_key, u.id
    );
}

fn agent_line(s: &mut String, a: &Member, owner: &str) {
    let _ = writeln!(
        s,
        "  - {{ handle: {}, name: Echo, description: Answers every message with its text, api_key: {}, owner: {owner}, id: {} }}",
        a.handle, a.api_key, a.id
    );
}

fn room_line(s: &mut String, i: usize, r: &Room, owner: &str, agent: &str) {
    let _ = writeln!(
        s,
        "  - {{ title: Bench room {i}, owner: {owner}, participants: [{agent}], id: {} }}",
        r.id
    );
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

    #[test]
    fn fleet_seed_gives_each_agent_its_rooms() {
        let world = FleetWorld::new(3, 2);
        let seed =
            band_sandbox::parse_seed(&world.seed(), "fleet").unwrap_or_else(|e| panic!("{e}"));
        assert_eq!(
            (seed.users.len(), seed.agents.len(), seed.rooms.len()),
            (1, 3, 6)
        );
        assert_eq!(world.rooms_of(2).len(), 2);
        assert_eq!(world.rooms_of(2)[0].id, world.rooms[4].id);
        assert!(world.rooms_of(3).is_empty());
    }
}
