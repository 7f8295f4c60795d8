//! Reading what a `RecordingExecutor` recorded.

use switchboard_engine::action::RenderedAction;

/// The texts of the replies, in order.
pub fn replies(actions: &[RenderedAction]) -> Vec<String> {
    actions
        .iter()
        .filter_map(|a| match a {
            RenderedAction::Reply(reply) => Some(reply.text.clone()),
            _ => None,
        })
        .collect()
}
