//! Pending conversations in the store: one hash of the conversations by id
//! (each a whole record as JSON) and one of the workflow texts they paused
//! in, by hash. Every change sets or deletes one field, so a change sent
//! twice changes nothing.

use switchboard_engine::conversation::{
    ConversationChange, ConversationStore, ConversationStoreError, DurableChange,
    StoredConversation, StoredConversations,
};
use switchboard_workflow::secrets::Redaction;

use super::writer::Op;
use super::{AgentSpace, Loaded, StoreError};
use crate::effects::conversation_file::redacted;

/// A hash's fields and values, as `HGETALL` gives them.
type Fields = Vec<(String, String)>;

/// The pending conversations of one agent, kept in the store.
pub struct RedisConversations {
    space: AgentSpace,
    loaded: Loaded<StoredConversations>,
    redaction: Redaction,
}

impl RedisConversations {
    /// Reads the agent's pending conversations; `redaction` hides secrets in
    /// what is written.
    pub async fn open(
        space: &AgentSpace,
        redaction: Redaction,
    ) -> Result<RedisConversations, StoreError> {
        let store = space.store();
        let mut conn = store.conn();
        let (key, sources_key) = (conversations_key(space), sources_key(space));
        let (records, texts): (Fields, Fields) = redis::pipe()
            .cmd("HGETALL")
            .arg(&key)
            .cmd("HGETALL")
            .arg(&sources_key)
            .query_async(&mut conn)
            .await
            .map_err(|e| store.failed("reading the pending conversations", e))?;
        let mut loaded = StoredConversations::default();
        for (id, text) in records {
            let record: StoredConversation =
                serde_json::from_str(&text).map_err(|e| store.corrupt(&key, e))?;
            loaded.conversations.insert(id, record);
        }
        for (hash, text) in texts {
            let hash: u64 = hash.parse().map_err(|e| store.corrupt(&sources_key, e))?;
            loaded.sources.insert(hash, text);
        }
        Ok(RedisConversations {
            space: space.clone(),
            loaded: Loaded::new(loaded),
            redaction,
        })
    }

    /// Where the conversations are, for errors: the store and their key.
    fn place(&self) -> String {
        format!(
            "{} {}",
            self.space.store().shown(),
            conversations_key(&self.space)
        )
    }
}

fn conversations_key(space: &AgentSpace) -> String {
    space.keys().key("conversations")
}

fn sources_key(space: &AgentSpace) -> String {
    space.keys().key("conversations:sources")
}

impl ConversationStore for RedisConversations {
    fn load(&self) -> Result<StoredConversations, ConversationStoreError> {
        Ok(self.loaded.take())
    }

    fn apply(&self, change: ConversationChange) -> DurableChange {
        let space = &self.space;
        let op = match redacted(change, &self.redaction.current()) {
            ConversationChange::Put { conversation } => {
                match serde_json::to_string(&*conversation) {
                    Ok(json) => Op::new("HSET", conversations_key(space))
                        .arg(conversation.conversation.id.clone())
                        .arg(json),
                    Err(e) => {
                        let e = ConversationStoreError {
                            place: conversations_key(space),
                            message: format!("cannot serialise a conversation: {e}"),
                        };
                        return Box::pin(std::future::ready(Err(e)));
                    }
                }
            }
            ConversationChange::Remove { id } => Op::new("HDEL", conversations_key(space)).arg(id),
            ConversationChange::Source { hash, text } => Op::new("HSET", sources_key(space))
                .arg(hash.to_string())
                .arg(text),
            ConversationChange::DropSource { hash } => {
                Op::new("HDEL", sources_key(space)).arg(hash.to_string())
            }
        };
        let written = space.writer().write(vec![op]);
        let place = self.place();
        Box::pin(async move {
            written.await.map_err(|e| ConversationStoreError {
                place,
                message: crate::error_chain::Chain(&e).to_string(),
            })
        })
    }
}
