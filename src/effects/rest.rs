//! Performs rendered actions as REST calls on the platform's agent API (and
//! outbound HTTP for `http`), resolving defaults from the event's [`Scope`].

use std::time::Duration;

use serde::Serialize;
use serde_json::{json, Value};

use band_client::rest::{AgentApi, ApiError, ContactAction};
use band_wire::model::{ChatMessage, ChatParticipant, ChatRoom, Mention};
use chrono::{DateTime, FixedOffset};
use switchboard_engine::action::{Effect, Effects, PlatformAction, Scope};
use switchboard_workflow::actions as a;

/// Peers are listed this many per page when resolving a handle.
const PEER_PAGE_SIZE: u64 = 100;
/// Upper bound on peer pages read for one lookup.
const MAX_PEER_PAGES: u64 = 20;
/// Most `/context` pages read when looking for a message sent before a crash.
const MAX_CONTEXT_PAGES: usize = 100;

/// The production [`Executor`]: the agent API over REST.
#[derive(Clone)]
pub struct RestExecutor {
    api: AgentApi,
    http: reqwest::Client,
    http_allow: Vec<String>,
    me: Option<String>,
}

impl RestExecutor {
    /// An executor on `api`; `http` actions may only reach `http_allow` hosts.
    pub fn new(api: AgentApi, http_allow: Vec<String>) -> Self {
        RestExecutor {
            api,
            http: reqwest::Client::new(),
            http_allow,
            me: None,
        }
    }

    /// Our agent id: how messages we sent are told apart in `/context`.
    pub fn with_identity(mut self, agent_id: &str) -> Self {
        self.me = Some(agent_id.to_owned());
        self
    }

    /// Every item of the room's `/context` (what we sent, and what mentions
    /// us), oldest first, up to [`MAX_CONTEXT_PAGES`] pages.
    async fn context_items(&self, chat: &str) -> Result<Vec<ChatMessage>, String> {
        let mut items = Vec::new();
        let mut cursor: Option<String> = None;
        for _ in 0..MAX_CONTEXT_PAGES {
            let page = self
                .api
                .context(chat, cursor.as_deref(), Some(100))
                .await
                .map_err(api)?;
            items.extend(page.items);
            match (page.meta.has_more, page.meta.next_cursor) {
                (Some(true), Some(next)) => cursor = Some(next),
                _ => break,
            }
        }
        Ok(items)
    }

    /// Looks in the room's `/context` for a message or event we sent after
    /// the source message with exactly this content.
    async fn find_sent(
        &self,
        chat: &str,
        kind: &str,
        content: &str,
        scope: &Scope,
    ) -> Result<Option<Value>, String> {
        let Some(me) = self.me.as_deref() else {
            return Ok(None);
        };
        let items = self.context_items(chat).await?;
        // Only what came after the source message counts (an earlier, identical
        // answer belongs to an earlier question); if the source is not in
        // the context, anything counts: a missed duplicate beats a double post.
        let start = scope
            .message_id
            .as_deref()
            .and_then(|id| items.iter().position(|m| m.id == id))
            .map_or(0, |i| i + 1);
        let found = items[start..].iter().find(|m| {
            m.sender_id == me
                && m.message_type == kind
                && (m.content == content || m.content.ends_with(&format!(" {content}")))
        });
        Ok(found.map(|m| json!({ "id": m.id, "success": true, "found_after_restart": true })))
    }

    /// When the source message was posted, from its room's `/context`.
    async fn source_time(&self, scope: &Scope) -> Result<Option<DateTime<FixedOffset>>, String> {
        let (Some(chat), Some(id)) = (scope.chat_id.as_deref(), scope.message_id.as_deref()) else {
            return Ok(None);
        };
        let items = self.context_items(chat).await?;
        Ok(items
            .iter()
            .find(|m| m.id == id)
            .and_then(|m| DateTime::parse_from_rfc3339(&m.inserted_at).ok()))
    }

    /// A room of ours titled `title` created at or after the source message
    /// (the newest one): what a `create_chat` cut short by a crash left. A
    /// room without a title cannot be told apart: `None`.
    async fn find_room(&self, a: &a::CreateChat, scope: &Scope) -> Result<Option<Value>, String> {
        let Some(title) = a.title.as_deref() else {
            return Ok(None);
        };
        let since = self.source_time(scope).await?;
        let rooms = self.api.list_all_chats().await.map_err(api)?;
        let created = |r: &ChatRoom| DateTime::parse_from_rfc3339(&r.inserted_at).ok();
        let found = rooms
            .into_iter()
            .filter(|r| r.title.as_deref() == Some(title))
            // Unknown times count: a missed duplicate beats a double room.
            .filter(|r| match (since, created(r)) {
                (Some(since), Some(at)) => at >= since,
                _ => true,
            })
            .max_by_key(created);
        let Some(room) = found else {
            return Ok(None);
        };
        // The crash may have come before every participant was added.
        self.add_participants(&room.id, &a.participants).await?;
        let mut value = to_value(room)?;
        if let Some(obj) = value.as_object_mut() {
            obj.insert("found_after_restart".into(), Value::Bool(true));
        }
        Ok(Some(value))
    }

    /// Our contact request to `handle` (pending or approved), or the contact
    /// itself (an inverse request our request approved): what an
    /// `add_contact` cut short by a crash left.
    async fn find_contact(&self, a: &a::AddContact) -> Result<Option<Value>, String> {
        let wanted = bare(&a.handle);
        let requests = self.api.contact_requests(Some("all")).await.map_err(api)?;
        if let Some(r) = requests.sent.iter().find(|r| {
            matches!(r.status.as_str(), "pending" | "approved")
                && r.to_handle
                    .as_deref()
                    .is_some_and(|h| bare(h).eq_ignore_ascii_case(wanted))
        }) {
            return Ok(Some(
                json!({ "id": r.id, "status": r.status, "found_after_restart": true }),
            ));
        }
        for page_no in 1..=MAX_PEER_PAGES {
            let page = self
                .api
                .contacts(Some(page_no), Some(PEER_PAGE_SIZE))
                .await
                .map_err(api)?;
            let got = page.items.len() as u64;
            if let Some(c) = page.items.iter().find(|c| {
                c.handle
                    .as_deref()
                    .is_some_and(|h| bare(h).eq_ignore_ascii_case(wanted))
            }) {
                return Ok(Some(
                    json!({ "id": c.id, "status": "approved", "found_after_restart": true }),
                ));
            }
            let more = match page.meta.total_pages {
                Some(total) => page_no < total,
                None => got >= PEER_PAGE_SIZE,
            };
            if !more {
                break;
            }
        }
        Ok(None)
    }

    /// Adds each of `who` to `room`; someone already there is no failure.
    async fn add_participants(&self, room: &str, who: &[String]) -> Result<(), String> {
        for w in who {
            let id = self.resolve(w).await?;
            match self.api.add_participant(room, &id, None).await {
                Ok(_) => {}
                Err(e) if already_participant(&e) => {}
                Err(e) => return Err(format!("adding {w} to the new room: {e}")),
            }
        }
        Ok(())
    }

    async fn respond(
        &self,
        action: ContactAction,
        request: Option<&str>,
        scope: &Scope,
    ) -> Result<Value, String> {
        let request = request
            .map(str::to_owned)
            .or_else(|| scope.contact_request_id.clone())
            .ok_or("no contact request in this event; give `request`")?;
        let status = self
            .api
            .respond_contact_request(action, None, Some(&request))
            .await
            .map_err(api)?;
        match status {
            Some(status) => to_value(status),
            None => Ok(json!({ "id": request, "status": action.as_str() })),
        }
    }

    /// Finds the id of a handle among the agent's peers (or passes an id through).
    async fn resolve(&self, who: &str) -> Result<String, String> {
        if looks_like_id(who) {
            return Ok(who.to_owned());
        }
        let wanted = bare(who);
        for page_no in 1..=MAX_PEER_PAGES {
            let page = self
                .api
                .peers(None, Some(page_no), Some(PEER_PAGE_SIZE))
                .await
                .map_err(api)?;
            let got = page.items.len() as u64;
            if let Some(peer) = page
                .items
                .into_iter()
                .find(|p| p.handle.eq_ignore_ascii_case(wanted))
            {
                return Ok(peer.id);
            }
            let more = match page.meta.total_pages {
                Some(total) => page_no < total,
                None => got >= PEER_PAGE_SIZE,
            };
            if !more {
                break;
            }
        }
        Err(format!("no peer with handle @{wanted}"))
    }

    async fn outbound(
        &self,
        method: &str,
        url: &str,
        headers: &std::collections::BTreeMap<String, String>,
        body: Option<&Value>,
        timeout: Duration,
    ) -> Result<Value, String> {
        let parsed = url::Url::parse(url).map_err(|e| format!("bad url {url}: {e}"))?;
        let host = parsed.host_str().unwrap_or_default();
        if !self.http_allow.iter().any(|h| h.eq_ignore_ascii_case(host)) {
            return Err(format!(
                "host {host} is not allowed (allow it with --allow-http-host {host})"
            ));
        }
        let method = reqwest::Method::from_bytes(method.as_bytes())
            .map_err(|_| format!("bad method {method}"))?;
        let mut req = self.http.request(method, parsed).timeout(timeout);
        for (k, v) in headers {
            req = req.header(k, v);
        }
        if let Some(body) = body {
            req = req.json(body);
        }
        let resp = req.send().await.map_err(|e| format!("{url}: {e}"))?;
        let status = resp.status().as_u16();
        let text = resp.text().await.map_err(|e| format!("{url}: {e}"))?;
        let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
        if !(200..300).contains(&status) {
            return Err(format!("{url}: HTTP {status}"));
        }
        Ok(json!({ "status": status, "body": body }))
    }
}

/// One method per platform action; the engine's dispatch calls them.
impl Effects for RestExecutor {
    async fn reply(&self, a: &a::Reply, scope: &Scope) -> Effect {
        let chat = event_chat(scope, None)?;
        let mentions = match &a.mentions {
            Some(list) => list.iter().map(|m| mention(m)).collect(),
            None => match &scope.sender {
                Some(sender) => vec![Mention {
                    id: Some(sender.id.clone()),
                    ..Mention::default()
                }],
                None => return Err("no sender to mention; give `mentions`".into()),
            },
        };
        let sent = self.api.send_message(&chat, &a.text, &mentions).await;
        to_value(sent.map_err(api)?)
    }

    async fn send_message(&self, a: &a::SendMessage, _scope: &Scope) -> Effect {
        let mentions: Vec<Mention> = a.mentions.iter().map(|m| mention(m)).collect();
        let sent = self.api.send_message(&a.chat, &a.text, &mentions).await;
        to_value(sent.map_err(api)?)
    }

    async fn post_event(&self, a: &a::PostEvent, scope: &Scope) -> Effect {
        let chat = event_chat(scope, a.chat.as_deref())?;
        let created = self
            .api
            .post_event(&chat, &a.kind, &a.content, a.metadata.as_ref())
            .await;
        to_value(created.map_err(api)?)
    }

    async fn create_chat(&self, a: &a::CreateChat, _scope: &Scope) -> Effect {
        let room = self
            .api
            .create_chat(a.title.as_deref())
            .await
            .map_err(api)?;
        self.add_participants(&room.id, &a.participants).await?;
        to_value(room)
    }

    async fn add_participant(&self, a: &a::AddParticipant, scope: &Scope) -> Effect {
        let chat = event_chat(scope, a.chat.as_deref())?;
        let id = match (&a.id, &a.handle) {
            (Some(id), _) => id.clone(),
            (None, Some(handle)) => self.resolve(handle).await?,
            (None, None) => return Err("give `handle` or `id`".into()),
        };
        match self
            .api
            .add_participant(&chat, &id, a.role.as_deref())
            .await
        {
            Ok(added) => to_value(added),
            // Adding is idempotent in effect: a resumed message (or a
            // race) finding them there already has what it wanted.
            Err(e) if already_participant(&e) => {
                Ok(json!({ "id": id, "already_participant": true }))
            }
            Err(e) => Err(api(e)),
        }
    }

    async fn remove_participant(&self, a: &a::RemoveParticipant, scope: &Scope) -> Effect {
        let chat = event_chat(scope, a.chat.as_deref())?;
        let id = match (&a.id, &a.handle) {
            (Some(id), _) => id.clone(),
            (None, Some(handle)) => {
                let people = self.api.list_participants(&chat).await.map_err(api)?;
                participant_by_handle(&people, handle)
                    .ok_or_else(|| format!("{handle} is not in the room"))?
            }
            (None, None) => return Err("give `handle` or `id`".into()),
        };
        let removed = self.api.remove_participant(&chat, &id).await;
        to_value(removed.map_err(api)?)
    }

    async fn approve_contact(&self, a: &a::ApproveContact, scope: &Scope) -> Effect {
        self.respond(ContactAction::Approve, a.request.as_deref(), scope)
            .await
    }

    async fn reject_contact(&self, a: &a::RejectContact, scope: &Scope) -> Effect {
        self.respond(ContactAction::Reject, a.request.as_deref(), scope)
            .await
    }

    async fn add_contact(&self, a: &a::AddContact, _scope: &Scope) -> Effect {
        let sent = self
            .api
            .add_contact(bare(&a.handle), a.message.as_deref())
            .await;
        to_value(sent.map_err(api)?)
    }

    async fn remove_contact(&self, a: &a::RemoveContact, _scope: &Scope) -> Effect {
        let (id, handle) = match looks_like_id(&a.handle) {
            true => (Some(a.handle.as_str()), None),
            false => (None, Some(bare(&a.handle))),
        };
        self.api.remove_contact(id, handle).await.map_err(api)?;
        Ok(json!({ "removed": true }))
    }

    async fn http(&self, a: &a::Http, _scope: &Scope) -> Effect {
        self.outbound(&a.method, &a.url, &a.headers, a.json.as_ref(), a.timeout)
            .await
    }

    async fn landed(
        &self,
        action: PlatformAction<'_>,
        scope: &Scope,
    ) -> Result<Option<Value>, String> {
        use PlatformAction as P;
        match action {
            P::Reply(a) => {
                let chat = event_chat(scope, None)?;
                self.find_sent(&chat, "text", &a.text, scope).await
            }
            P::SendMessage(a) => self.find_sent(&a.chat, "text", &a.text, scope).await,
            P::PostEvent(a) => {
                let chat = event_chat(scope, a.chat.as_deref())?;
                self.find_sent(&chat, &a.kind, &a.content, scope).await
            }
            P::CreateChat(a) => self.find_room(a, scope).await,
            P::AddContact(a) => self.find_contact(a).await,
            // Sent again, harmlessly: adding someone already there, removing
            // someone gone or answering an answered request changes nothing
            // twice (a repeat may fail, never double). `http` is another
            // matter (its own Idempotency-Key). Listed, not `_`: a new
            // platform action must say whether it can be found.
            P::AddParticipant(_)
            | P::RemoveParticipant(_)
            | P::ApproveContact(_)
            | P::RejectContact(_)
            | P::RemoveContact(_)
            | P::Http(_) => Ok(None),
        }
    }
}

/// The room to act in: the one given, else the event's.
fn event_chat(scope: &Scope, given: Option<&str>) -> Result<String, String> {
    given
        .map(str::to_owned)
        .or_else(|| scope.chat_id.clone())
        .ok_or_else(|| "this event has no room; give `chat`".to_owned())
}

/// A handle without its leading `@`.
fn bare(handle: &str) -> &str {
    handle.trim().trim_start_matches('@')
}

/// Platform ids are UUIDs; anything else is taken for a handle.
fn looks_like_id(s: &str) -> bool {
    uuid::Uuid::parse_str(s.trim()).is_ok()
}

/// A mention from a handle or an id.
fn mention(who: &str) -> Mention {
    match looks_like_id(who) {
        true => Mention {
            id: Some(who.trim().to_owned()),
            ..Mention::default()
        },
        false => Mention {
            handle: Some(bare(who).to_owned()),
            ..Mention::default()
        },
    }
}

fn participant_by_handle(people: &[ChatParticipant], handle: &str) -> Option<String> {
    let wanted = bare(handle);
    people
        .iter()
        .find(|p| {
            p.handle
                .as_deref()
                .is_some_and(|h| bare(h).eq_ignore_ascii_case(wanted))
        })
        .map(|p| p.id.clone())
}

/// The platform's answer to adding someone who is in the room already.
fn already_participant(e: &ApiError) -> bool {
    matches!(e, ApiError::Status { status: 422, raw, .. } if raw.contains("already a participant"))
}

fn api(e: ApiError) -> String {
    e.to_string()
}

fn to_value(v: impl Serialize) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot encode the result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn ids_and_handles_become_the_right_mention() {
        let id = "3b4f0c8e-2c1a-4a57-9a55-0d6f4a1f2b3c";
        assert_eq!(mention(id).id.as_deref(), Some(id));
        assert_eq!(mention("@alice").handle.as_deref(), Some("alice"));
        assert_eq!(
            mention("alice/billing-agent").handle.as_deref(),
            Some("alice/billing-agent")
        );
    }

    #[test]
    fn a_missing_room_is_a_readable_error() {
        let err = event_chat(&Scope::default(), None).unwrap_err();
        assert!(err.contains("give `chat`"), "{err}");
        let scope = Scope {
            chat_id: Some("r1".into()),
            ..Scope::default()
        };
        assert_eq!(event_chat(&scope, None).unwrap(), "r1");
        assert_eq!(event_chat(&scope, Some("r2")).unwrap(), "r2");
    }
}
