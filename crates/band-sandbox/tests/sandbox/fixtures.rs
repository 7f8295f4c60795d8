//! Fixtures of the example seed the sandbox tests need.

use band_client::rest::HumanApi;

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
