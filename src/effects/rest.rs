//! Performs rendered actions as REST calls on the platform's agent API (and
//! outbound HTTP for `http`), resolving defaults from the event's [`Scope`].

use crate::error_chain::Chain;
use serde::Serialize;
use serde_json::{json, Value};

use band_client::rest::{AgentApi, ApiError, ContactAction};
use band_wire::mentions;
use band_wire::model::{ChatMessage, ChatParticipant, ChatRoom, Mention};
use chrono::{DateTime, FixedOffset, Utc};
use switchboard_engine::action::{Effect, EffectError, Effects, PlatformAction, Scope};
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
    http_allow: Vec<AllowedHost>,
    me: Option<String>,
    llm: Option<super::llm::LlmClient>,
}

impl RestExecutor {
    /// An executor on `api`; `http` actions may only reach `http_allow` hosts.
    pub fn new(api: AgentApi, http_allow: Vec<AllowedHost>) -> Result<Self, reqwest::Error> {
        // Redirects are followed by `outbound`, which checks each hop against
        // the allowlist and keeps the workflow's headers on their origin.
        let http = reqwest::Client::builder()
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(RestExecutor {
            api,
            http,
            http_allow,
            me: None,
            llm: None,
        })
    }

    /// Our agent id: how messages we sent are told apart in `/context`.
    pub fn with_identity(mut self, agent_id: &str) -> Self {
        self.me = Some(agent_id.to_owned());
        self
    }

    /// Performs `llm` actions with `client` (without one they fail, saying
    /// which flags are missing). Its host is not added to the `http` allowlist.
    pub fn with_llm(mut self, client: super::llm::LlmClient) -> Self {
        self.llm = Some(client);
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
        // answer belongs to an earlier question); an event with no source
        // message (a webhook delivery) says when it began instead. Otherwise
        // anything counts: a missed duplicate beats a double post.
        let after_source = scope
            .message_id
            .as_deref()
            .and_then(|id| items.iter().position(|m| m.id == id))
            .map(|i| i + 1);
        let since = |at: DateTime<Utc>| {
            // An unreadable time counts: a missed duplicate beats a double post.
            items
                .iter()
                .position(|m| {
                    DateTime::parse_from_rfc3339(&m.inserted_at).map_or(true, |t| t >= at)
                })
                .unwrap_or(items.len())
        };
        let start = after_source
            .or_else(|| scope.not_before.map(since))
            .unwrap_or(0);
        let found = items[start..].iter().find(|m| {
            m.sender_id == me
                && m.message_type == kind
                && (m.content == content || m.content.ends_with(&format!(" {content}")))
        });
        Ok(found.map(|m| json!({ "id": m.id, "success": true, "found_after_restart": true })))
    }

    /// `mentions` plus whoever the text names: every `@[[id]]` marker, and
    /// every `@handle` of a participant of `chat`. The platform notifies only
    /// the message's `mentions`, so a name in the text that is not among
    /// them would reach no one. Ourselves and repeats are left out (the
    /// platform refuses a self-mention); `@word`s that name no participant
    /// stay plain text.
    async fn with_text_mentions(
        &self,
        chat: &str,
        text: &str,
        mut mentions: Vec<Mention>,
    ) -> Result<Vec<Mention>, String> {
        let ids = mentions::markers(text);
        let handles = mentions::handles(text);
        if ids.is_empty() && handles.is_empty() {
            return Ok(mentions);
        }
        let people = self.api.list_participants(chat).await.map_err(|e| {
            format!(
                "listing the participants of room {chat} to resolve the mentions in the text: {}",
                Chain(&e)
            )
        })?;
        // What the given mentions name, as ids where the room knows them,
        // so that a handle given and the same person's marker count once.
        let mut named: Vec<String> = mentions
            .iter()
            .filter_map(|m| match (&m.id, &m.handle) {
                (Some(id), _) => Some(id.clone()),
                (None, Some(h)) => participant_by_handle(&people, h),
                (None, None) => None,
            })
            .collect();
        named.extend(self.me.clone());
        let by_handle = handles
            .iter()
            .filter_map(|h| participant_by_handle(&people, h));
        let found: Vec<String> = ids
            .iter()
            .map(|id| (*id).to_owned())
            .chain(by_handle)
            .collect();
        for id in found {
            if !named.contains(&id) {
                named.push(id.clone());
                mentions.push(Mention {
                    id: Some(id),
                    ..Mention::default()
                });
            }
        }
        Ok(mentions)
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
        let since = match self.source_time(scope).await? {
            Some(at) => Some(at),
            None => scope.not_before.map(|at| at.fixed_offset()),
        };
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
                Err(e) => return Err(format!("adding {w} to the new room: {}", Chain(&e))),
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

    /// Sends one `http` action: every hop (the URL, then each redirect) must
    /// be an allowed host; the workflow's headers and the `Idempotency-Key`
    /// go only to the URL's own origin; the body is read up to `max_bytes`.
    async fn outbound(&self, a: &a::Http, scope: &Scope) -> Result<Value, String> {
        let first = url::Url::parse(&a.url).map_err(|e| format!("bad url {}: {e}", a.url))?;
        let origin = first.origin();
        let mut method = reqwest::Method::from_bytes(a.method.as_bytes())
            .map_err(|_| format!("bad method {}", a.method))?;
        let mut body = a.json.as_ref();
        let key = idempotency_key(self.me.as_deref(), scope);
        let deadline = tokio::time::Instant::now() + a.timeout;
        let mut url = first;
        let mut hops = 0;
        loop {
            self.check_allowed(&url, hops > 0)?;
            let mut req = self.http.request(method.clone(), url.clone());
            if url.origin() == origin {
                if let Some(key) = &key {
                    req = req.header("Idempotency-Key", key);
                }
                // After the key, so a workflow's own Idempotency-Key wins.
                for (k, v) in &a.headers {
                    req = req.header(k, v);
                }
            }
            if let Some(body) = body {
                req = req.json(body);
            }
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            let resp = tokio::time::timeout(left, req.send())
                .await
                .map_err(|_| format!("{url}: no answer within {:?}", a.timeout))?
                .map_err(|e| format!("{url}: {}", Chain(&e)))?;
            let status = resp.status();
            if status.is_redirection() {
                if let Some(next) = redirect_target(&url, &resp)? {
                    if !a.follow_redirects {
                        return Err(format!(
                            "{url}: HTTP {} redirect to {next} not followed (follow_redirects: false)",
                            status.as_u16()
                        ));
                    }
                    hops += 1;
                    if hops > MAX_REDIRECTS {
                        return Err(format!("{}: more than {MAX_REDIRECTS} redirects", a.url));
                    }
                    // 303, and 301/302 after a POST, continue as a GET without
                    // a body (what browsers and HTTP clients do); 307/308 keep both.
                    let code = status.as_u16();
                    if code == 303 && method != reqwest::Method::HEAD
                        || (code == 301 || code == 302) && method == reqwest::Method::POST
                    {
                        method = reqwest::Method::GET;
                        body = None;
                    }
                    url = next;
                    continue;
                }
            }
            let bytes = tokio::time::timeout(left, read_capped(resp, a.max_bytes))
                .await
                .map_err(|_| format!("{url}: no whole answer within {:?}", a.timeout))?
                .map_err(|e| format!("{url}: {e}"))?;
            let text = String::from_utf8_lossy(&bytes).into_owned();
            if !status.is_success() {
                return Err(format!("{url}: HTTP {}", status.as_u16()));
            }
            let body = serde_json::from_str(&text).unwrap_or(Value::String(text));
            return Ok(json!({ "status": status.as_u16(), "body": body }));
        }
    }

    /// Refuses a URL whose host (and port) no `--allow-http-host` entry allows.
    fn check_allowed(&self, url: &url::Url, redirected: bool) -> Result<(), String> {
        let host = url.host_str().unwrap_or_default();
        let port = url.port_or_known_default();
        if self.http_allow.iter().any(|h| h.allows(host, port)) {
            return Ok(());
        }
        let via = if redirected { "redirect to " } else { "" };
        let bare = host.trim_start_matches('[').trim_end_matches(']');
        let other_ports = self
            .http_allow
            .iter()
            .any(|h| h.host.eq_ignore_ascii_case(bare));
        match port {
            Some(port) if other_ports => Err(format!(
                "{via}{url}: port {port} of host {host} is not allowed (allow it with --allow-http-host {host}:{port})"
            )),
            _ => Err(format!(
                "{via}{url}: host {host} is not allowed (allow it with --allow-http-host {host})"
            )),
        }
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
        let mentions = self.with_text_mentions(&chat, &a.text, mentions).await?;
        let sent = self.api.send_message(&chat, &a.text, &mentions).await;
        Ok(to_value(sent.map_err(|e| posting(e, &chat, scope))?)?)
    }

    async fn send_message(&self, a: &a::SendMessage, scope: &Scope) -> Effect {
        let mentions: Vec<Mention> = a.mentions.iter().map(|m| mention(m)).collect();
        let mentions = self.with_text_mentions(&a.chat, &a.text, mentions).await?;
        let sent = self.api.send_message(&a.chat, &a.text, &mentions).await;
        Ok(to_value(sent.map_err(|e| posting(e, &a.chat, scope))?)?)
    }

    async fn post_event(&self, a: &a::PostEvent, scope: &Scope) -> Effect {
        let chat = event_chat(scope, a.chat.as_deref())?;
        let created = self
            .api
            .post_event(&chat, &a.kind, &a.content, a.metadata.as_ref())
            .await;
        Ok(to_value(created.map_err(|e| posting(e, &chat, scope))?)?)
    }

    async fn create_chat(&self, a: &a::CreateChat, _scope: &Scope) -> Effect {
        let room = self
            .api
            .create_chat(a.title.as_deref())
            .await
            .map_err(api)?;
        self.add_participants(&room.id, &a.participants).await?;
        Ok(to_value(room)?)
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
            Ok(added) => Ok(to_value(added)?),
            // Adding is idempotent in effect: a resumed message (or a
            // race) finding them there already has what it wanted.
            Err(e) if already_participant(&e) => {
                Ok(json!({ "id": id, "already_participant": true }))
            }
            Err(e) => Err(api(e).into()),
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
        Ok(to_value(removed.map_err(api)?)?)
    }

    async fn approve_contact(&self, a: &a::ApproveContact, scope: &Scope) -> Effect {
        Ok(self
            .respond(ContactAction::Approve, a.request.as_deref(), scope)
            .await?)
    }

    async fn reject_contact(&self, a: &a::RejectContact, scope: &Scope) -> Effect {
        let done = self
            .respond(ContactAction::Reject, a.request.as_deref(), scope)
            .await?;
        // The platform's respond call carries no reason: the log is where it
        // is kept, with who asked (the event's requester when the request is
        // the event's own).
        let request = a.request.as_deref().or(scope.contact_request_id.as_deref());
        let own = a.request.is_none() || a.request == scope.contact_request_id;
        let from = scope.contact_from.as_deref().filter(|_| own);
        tracing::info!(
            from = from.unwrap_or("-"),
            request = request.unwrap_or("-"),
            reason = a.reason.as_deref().unwrap_or("(none given)"),
            "contact request rejected"
        );
        Ok(done)
    }

    async fn add_contact(&self, a: &a::AddContact, _scope: &Scope) -> Effect {
        let sent = self
            .api
            .add_contact(bare(&a.handle), a.message.as_deref())
            .await;
        Ok(to_value(sent.map_err(api)?)?)
    }

    async fn remove_contact(&self, a: &a::RemoveContact, _scope: &Scope) -> Effect {
        let (id, handle) = match looks_like_id(&a.handle) {
            true => (Some(a.handle.as_str()), None),
            false => (None, Some(bare(&a.handle))),
        };
        self.api.remove_contact(id, handle).await.map_err(api)?;
        Ok(json!({ "removed": true }))
    }

    async fn http(&self, a: &a::Http, scope: &Scope) -> Effect {
        // Another server's 403 is never the platform's STOP.
        Ok(self.outbound(a, scope).await?)
    }

    async fn llm(&self, a: &a::Llm, _scope: &Scope) -> Effect {
        let client = self.llm.as_ref().ok_or(
            "no language model is configured: start the agent with --llm-url and --llm-model",
        )?;
        Ok(client.ask(a).await?)
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
            // matter (its own Idempotency-Key). An `llm` call cut short
            // by a crash left no answer to find: it is asked again (a
            // finished one is in the journal and never is). Listed, not
            // `_`: a new platform action must say whether it can be found.
            P::AddParticipant(_)
            | P::RemoveParticipant(_)
            | P::ApproveContact(_)
            | P::RejectContact(_)
            | P::RemoveContact(_)
            | P::Http(_)
            | P::Llm(_) => Ok(None),
        }
    }
}

/// Most redirects followed for one `http` action.
const MAX_REDIRECTS: usize = 5;

/// The absolute URL a 3xx answer points at; `None` when it names none (then
/// the answer is taken as it is, and fails as a non-2xx).
fn redirect_target(url: &url::Url, resp: &reqwest::Response) -> Result<Option<url::Url>, String> {
    let Some(location) = resp.headers().get(reqwest::header::LOCATION) else {
        return Ok(None);
    };
    let location = location
        .to_str()
        .map_err(|_| format!("{url}: redirect with a Location that is not text"))?;
    url.join(location)
        .map(Some)
        .map_err(|e| format!("{url}: bad redirect Location {location:?}: {e}"))
}

/// Reads a response body chunk by chunk, failing once it passes `max` bytes
/// (or announces more in `Content-Length`), so a huge answer never sits in memory.
async fn read_capped(mut resp: reqwest::Response, max: u64) -> Result<Vec<u8>, String> {
    let too_big = |n: String| {
        format!("response body larger than {max} bytes ({n}); raise the action's `max_bytes` if it is expected")
    };
    if let Some(len) = resp.content_length().filter(|len| *len > max) {
        return Err(too_big(format!("Content-Length {len}")));
    }
    let mut bytes = Vec::new();
    while let Some(chunk) = resp.chunk().await.map_err(|e| Chain(&e).to_string())? {
        if (bytes.len() + chunk.len()) as u64 > max {
            return Err(too_big("stopped reading".into()));
        }
        bytes.extend_from_slice(&chunk);
    }
    Ok(bytes)
}

/// The `Idempotency-Key` of one `http` action of one message: a UUID (v5)
/// of the agent, the message and the step (`rule#do0`), so a retry or a
/// resumed run after a crash sends the same key and a partner API can
/// dedupe. `None` outside a message (nothing to tie a retry to).
fn idempotency_key(agent: Option<&str>, scope: &Scope) -> Option<String> {
    let message = scope.message_id.as_deref()?;
    let step = scope.step.as_deref().unwrap_or_default();
    let name = format!("{}\n{message}\n{step}", agent.unwrap_or_default());
    Some(uuid::Uuid::new_v5(&IDEMPOTENCY_NAMESPACE, name.as_bytes()).to_string())
}

/// The namespace of [`idempotency_key`]'s UUIDs (fixed: keys must not change
/// between versions, or a retry after an upgrade would look new).
const IDEMPOTENCY_NAMESPACE: uuid::Uuid = uuid::uuid!("6f0d3c1e-7a52-4c8e-9b1f-2d4a8e5c7b90");

/// One `--allow-http-host` entry: a host, or a host and one port.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct AllowedHost {
    host: String,
    port: Option<u16>,
}

/// Why an `--allow-http-host` entry cannot be used.
#[derive(Debug, thiserror::Error)]
#[error("bad --allow-http-host {entry:?}: {why} (give HOST or HOST:PORT, e.g. api.example.com or 127.0.0.1:8080)")]
pub struct AllowedHostError {
    entry: String,
    why: String,
}

impl AllowedHost {
    /// True when a URL on `host` and `port` (its scheme's default when
    /// absent) may be reached.
    pub fn allows(&self, host: &str, port: Option<u16>) -> bool {
        let host = host.trim_start_matches('[').trim_end_matches(']');
        self.host.eq_ignore_ascii_case(host) && self.port.is_none_or(|p| Some(p) == port)
    }
}

impl std::str::FromStr for AllowedHost {
    type Err = AllowedHostError;

    /// `host`, `host:port`, `[v6]`, `[v6]:port` (a bare IPv6 address too).
    fn from_str(entry: &str) -> Result<Self, Self::Err> {
        let err = |why: &str| AllowedHostError {
            entry: entry.to_owned(),
            why: why.to_owned(),
        };
        let s = entry.trim();
        if s.is_empty() {
            return Err(err("empty"));
        }
        if s.contains("://") || s.contains('/') {
            return Err(err("a host, not a URL"));
        }
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let (host, after) = rest.split_once(']').ok_or_else(|| err("unclosed '['"))?;
            match after {
                "" => (host, None),
                _ => match after.strip_prefix(':') {
                    Some(port) => (host, Some(port)),
                    None => return Err(err("text after ']' that is not :PORT")),
                },
            }
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 address: no port can be told apart.
            (s, None)
        } else {
            match s.split_once(':') {
                Some((host, port)) => (host, Some(port)),
                None => (s, None),
            }
        };
        if host.is_empty() {
            return Err(err("no host"));
        }
        let port = port
            .map(|p| {
                p.parse::<u16>()
                    .ok()
                    .filter(|p| *p != 0)
                    .ok_or_else(|| err(&format!("{p:?} is not a port number (1-65535)")))
            })
            .transpose()?;
        Ok(AllowedHost {
            host: host.to_ascii_lowercase(),
            port,
        })
    }
}

impl std::fmt::Display for AllowedHost {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let host = match self.host.contains(':') {
            true => format!("[{}]", self.host),
            false => self.host.clone(),
        };
        match self.port {
            Some(port) => write!(f, "{host}:{port}"),
            None => f.write_str(&host),
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

/// The error with its causes: it becomes the action's failure reason, which
/// people read on the platform and in logs.
fn api(e: ApiError) -> String {
    Chain(&e).to_string()
}

/// The error of a post (message or event) to `chat`. A 403 "execution is
/// stopped" for the event's own room is the platform's STOP of the work in
/// hand, which may arrive before its push: the engine then ends the event
/// without `on_error` and the runtime leaves the message for PLAY. Stopped
/// in another room, the post just failed (this room's work is not stopped).
fn posting(e: ApiError, chat: &str, scope: &Scope) -> EffectError {
    let message = Chain(&e).to_string();
    if e.is_execution_stopped() && scope.chat_id.as_deref() == Some(chat) {
        EffectError::execution_stopped(message)
    } else {
        EffectError::from(message)
    }
}

fn to_value(v: impl Serialize) -> Result<Value, String> {
    serde_json::to_value(v).map_err(|e| format!("cannot encode the result: {e}"))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_post_refused_as_stopped_stops_only_the_events_own_room() {
        let refused = || ApiError::Status {
            status: 403,
            method: "POST".into(),
            path: "agent/chats/r1/messages".into(),
            body: Some(Box::new(band_wire::model::ErrorBody {
                error: band_wire::model::ErrorDetail {
                    code: "forbidden".into(),
                    message: "execution is stopped for this agent in this room".into(),
                    request_id: String::new(),
                    details: None,
                    retry_after: None,
                },
            })),
            raw: String::new(),
        };
        let scope = Scope {
            chat_id: Some("r1".into()),
            ..Scope::default()
        };
        use switchboard_engine::action::ErrorKind;
        assert_eq!(
            posting(refused(), "r1", &scope).kind,
            ErrorKind::ExecutionStopped
        );
        // Stopped in another room: this message's work is not stopped.
        assert_eq!(posting(refused(), "r2", &scope).kind, ErrorKind::Failed);
        assert_eq!(
            posting(refused(), "r1", &Scope::default()).kind,
            ErrorKind::Failed
        );
    }

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
    fn allowlist_entries_are_hosts_or_host_ports() {
        let any: AllowedHost = "API.example.com".parse().unwrap();
        assert!(any.allows("api.example.com", Some(443)));
        assert!(any.allows("api.example.com", Some(8080)));
        assert!(!any.allows("example.com", Some(443)));
        let one: AllowedHost = "127.0.0.1:8080".parse().unwrap();
        assert!(one.allows("127.0.0.1", Some(8080)));
        assert!(!one.allows("127.0.0.1", Some(8081)));
        assert_eq!(one.to_string(), "127.0.0.1:8080");
        let v6: AllowedHost = "[::1]:9000".parse().unwrap();
        assert!(v6.allows("[::1]", Some(9000)));
        assert!(!v6.allows("[::1]", Some(80)));
        assert!("::1"
            .parse::<AllowedHost>()
            .unwrap()
            .allows("[::1]", Some(80)));
        for bad in [
            "",
            "host:",
            "host:http",
            "host:0",
            "host:70000",
            "http://host",
            "[::1",
        ] {
            let err = bad.parse::<AllowedHost>().unwrap_err().to_string();
            assert!(err.contains("HOST:PORT"), "{bad}: {err}");
        }
    }

    #[test]
    fn idempotency_keys_name_one_step_of_one_message() {
        let scope = |m: &str, s: &str| Scope {
            message_id: Some(m.into()),
            step: Some(s.into()),
            ..Scope::default()
        };
        let k = idempotency_key(Some("a"), &scope("m1", "r#do0"));
        assert_eq!(k, idempotency_key(Some("a"), &scope("m1", "r#do0")));
        assert_ne!(k, idempotency_key(Some("a"), &scope("m1", "r#do1")));
        assert_ne!(k, idempotency_key(Some("a"), &scope("m2", "r#do0")));
        assert_ne!(k, idempotency_key(Some("b"), &scope("m1", "r#do0")));
        assert_eq!(idempotency_key(Some("a"), &Scope::default()), None);
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
