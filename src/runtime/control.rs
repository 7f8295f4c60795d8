//! The platform's STOP / PLAY / INTERRUPT of the agent's execution in a room
//! (`agent.control` on `agent_control:<id>`): what the pushes said so far,
//! per room, and which pushes were seen already.
//!
//! The supervisor writes a room's [`RoomControl`]; the room's task reads it
//! between jobs (stop: probe until resumed; play: resync at once), and the
//! message in hand watches it to be cancelled (stop: left in `processing`
//! for after PLAY; interrupt: marked processed).

use std::collections::{HashSet, VecDeque};

use band_wire::events::ControlMode;

/// How many `correlation_id`s are remembered (the platform does not dedupe
/// its pushes; the official SDK keeps the same number).
const SEEN_CAPACITY: usize = 256;

/// What the control pushes have said about one room.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub(crate) struct RoomControl {
    /// Bumped by every STOP and INTERRUPT: work in hand that started before is cancelled.
    pub(crate) cancels: u64,
    /// Whether the latest cancel was a STOP (else an INTERRUPT).
    pub(crate) cancel_stops: bool,
    /// Bumped by every STOP and PLAY.
    pub(crate) switches: u64,
    /// What the latest STOP or PLAY said.
    pub(crate) stopped: bool,
}

impl RoomControl {
    /// Records one push.
    pub(crate) fn apply(&mut self, mode: ControlMode) {
        match mode {
            ControlMode::Stop => {
                self.cancels += 1;
                self.cancel_stops = true;
                self.switches += 1;
                self.stopped = true;
            }
            ControlMode::Interrupt => {
                self.cancels += 1;
                self.cancel_stops = false;
            }
            ControlMode::Play => {
                self.switches += 1;
                self.stopped = false;
            }
        }
    }
}

/// How the work in hand was cancelled.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) enum Cancelled {
    /// STOP: leave the message for after PLAY.
    Stop,
    /// INTERRUPT: the message counts as handled.
    Interrupt,
}

impl Cancelled {
    /// The cancel `state` holds, if any came after `since` (a `cancels` count).
    pub(crate) fn since(state: &RoomControl, since: u64) -> Option<Cancelled> {
        if state.cancels == since {
            None
        } else if state.cancel_stops {
            Some(Cancelled::Stop)
        } else {
            Some(Cancelled::Interrupt)
        }
    }
}

/// The `correlation_id`s of the latest control pushes, oldest forgotten first.
#[derive(Debug, Default)]
pub(crate) struct SeenControls {
    ids: HashSet<String>,
    order: VecDeque<String>,
}

impl SeenControls {
    /// True the first time `id` is seen (within the last [`SEEN_CAPACITY`]).
    pub(crate) fn first_time(&mut self, id: &str) -> bool {
        if !self.ids.insert(id.to_string()) {
            return false;
        }
        self.order.push_back(id.to_string());
        while self.order.len() > SEEN_CAPACITY {
            if let Some(old) = self.order.pop_front() {
                self.ids.remove(&old);
            }
        }
        true
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn stop_then_play_cancels_as_a_stop_and_ends_running() {
        let mut c = RoomControl::default();
        c.apply(ControlMode::Stop);
        c.apply(ControlMode::Play);
        assert_eq!(Cancelled::since(&c, 0), Some(Cancelled::Stop));
        assert!(!c.stopped);
        assert_eq!(c.switches, 2);
        c.apply(ControlMode::Interrupt);
        assert_eq!(Cancelled::since(&c, 1), Some(Cancelled::Interrupt));
        assert_eq!(Cancelled::since(&c, 2), None);
    }

    #[test]
    fn correlation_ids_are_seen_once_and_old_ones_forgotten() {
        let mut s = SeenControls::default();
        assert!(s.first_time("a"));
        assert!(!s.first_time("a"));
        for i in 0..SEEN_CAPACITY {
            s.first_time(&i.to_string());
        }
        assert!(
            s.first_time("a"),
            "forgotten after {SEEN_CAPACITY} newer ones"
        );
    }
}
