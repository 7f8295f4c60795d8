//! Fixtures of the example seed that several test files need.

use std::time::Duration;

use band_client::rest::{HumanApi, HumanMessageQuery, RestConfig};
use band_sandbox::{default_seed, RunningSandbox};
use band_wire::model::{ChatMessage, Mention};
use serde_json::Value;

/// The id of the seeded "Support" room, as `person` sees it.
pub async fn support_room(person: &HumanApi) -> String {
    person
        .list_chats(None, None)
        .await
        .expect("list the person's rooms")
        .items
        .into_iter()
        .find(|r| r.title.as_deref() == Some("Support"))
        .expect("the seed has a Support room")
        .id
}

/// On a running example-seed sandbox: bob, the Support room and the triage bot's id.
pub async fn world(sb: &RunningSandbox) -> (HumanApi, String, String) {
    let bob = HumanApi::new(RestConfig::new(sb.rest_url(), "bob-key")).unwrap();
    let room = support_room(&bob).await;
    let bot = bob
        .list_participants(&room)
        .await
        .unwrap()
        .into_iter()
        .find(|p| p.handle.as_deref() == Some("alice/triage-bot"))
        .expect("the triage bot is in the Support room")
        .id;
    (bob, room, bot)
}

/// A sandbox on the example seed, bob, the Support room and the triage bot's id.
// Not every test file that includes this module starts its own sandbox.
#[allow(dead_code)]
pub async fn seeded_sandbox() -> (RunningSandbox, HumanApi, String, String) {
    let sb = RunningSandbox::start("127.0.0.1:0".parse().unwrap(), default_seed())
        .await
        .unwrap();
    let (bob, room, bot) = world(&sb).await;
    (sb, bob, room, bot)
}

/// `person` says `text` in `room`, mentioning `bot`; the message's id.
#[allow(dead_code)]
pub async fn ask(person: &HumanApi, room: &str, bot: &str, text: &str) -> String {
    let mention = [Mention {
        id: Some(bot.to_owned()),
        ..Mention::default()
    }];
    person
        .send_message(room, text, &mention)
        .await
        .expect("send the question")
        .id
}

/// The bot's first text message in `room` after message `after`, waited for
/// up to `limit`; `None` when none came.
#[allow(dead_code)]
pub async fn reply_after(
    person: &HumanApi,
    room: &str,
    bot: &str,
    after: &str,
    limit: Duration,
) -> Option<ChatMessage> {
    let query = HumanMessageQuery {
        after: Some(after.to_owned()),
        limit: Some(100),
        ..HumanMessageQuery::default()
    };
    tokio::time::timeout(limit, async {
        loop {
            let page = person.list_messages(room, &query).await.unwrap();
            if let Some(m) = page
                .items
                .into_iter()
                .find(|m| m.sender_id == bot && m.message_type == "text")
            {
                return m;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await
    .ok()
}

/// The sandbox's whole state (`GET /_sandbox/state`).
#[allow(dead_code)]
pub async fn sandbox_state(sb: &RunningSandbox) -> Value {
    reqwest::get(format!("{}/_sandbox/state", sb.rest_url()))
        .await
        .expect("GET /_sandbox/state")
        .json()
        .await
        .expect("the state is JSON")
}
