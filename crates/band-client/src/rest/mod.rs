//! REST clients of the platform: the retrying HTTP core, the agent API
//! (`api/v1/agent/...`) and the human API (`api/v1/me/...`, for tests,
//! the demo and the load tool to act as people).

pub mod agent;
pub mod http;
pub mod human;
mod scope;

pub use agent::{AgentApi, ContactAction, MessageQuery};
pub use http::{ApiError, BuildError, Page, Response, RestClient, RestConfig, RetryPolicy};
pub use human::{HumanApi, HumanMessageQuery};
