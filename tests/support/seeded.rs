//! Fixtures of the example seed that several test files need.

use switchboard::platform::rest::{HumanApi, RestConfig};
use switchboard::sandbox::{default_seed, RunningSandbox};

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
