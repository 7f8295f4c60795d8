//! The sandbox's web console at `/`: a page to act as the seeded people
//! (rooms, messages, mentions, contacts) and watch an agent work (each
//! message's lifecycle per agent, and the rule that handled it when an agent
//! feed is known). Plain HTML/CSS/JS compiled into the binary: no build step,
//! no network beyond the sandbox (and the agent feed) on loopback.

use std::sync::Arc;

use axum::extract::State;
use axum::http::header;
use axum::response::{IntoResponse, Response};
use axum::routing::get;
use axum::{Json, Router};
use serde_json::{json, Value};

use super::Sandbox;

/// The page.
const INDEX_HTML: &str = include_str!("console/index.html");
/// Its script (an ES module, vanilla JS).
const CONSOLE_JS: &str = include_str!("console/console.js");
/// Its styles.
const CONSOLE_CSS: &str = include_str!("console/console.css");

/// The console's routes: the page, its two assets, and its configuration.
pub fn routes() -> Router<Arc<Sandbox>> {
    Router::new()
        .route("/", get(index))
        .route("/console.js", get(script))
        .route("/console.css", get(styles))
        .route("/_sandbox/console/config", get(config))
}

/// An embedded asset; `no-cache` so a rebuilt binary's page is never stale.
fn asset(content_type: &'static str, body: &'static str) -> Response {
    (
        [
            (header::CONTENT_TYPE, content_type),
            (header::CACHE_CONTROL, "no-cache"),
        ],
        body,
    )
        .into_response()
}

async fn index() -> Response {
    asset("text/html; charset=utf-8", INDEX_HTML)
}

async fn script() -> Response {
    asset("text/javascript; charset=utf-8", CONSOLE_JS)
}

async fn styles() -> Response {
    asset("text/css; charset=utf-8", CONSOLE_CSS)
}

/// `{"agent_feed": URL | null}`: the default agent feed (`sandbox
/// --agent-feed`, or the demo's own agent); the page lets the user change it.
async fn config(State(sb): State<Arc<Sandbox>>) -> Json<Value> {
    Json(json!({ "agent_feed": sb.agent_feed() }))
}
