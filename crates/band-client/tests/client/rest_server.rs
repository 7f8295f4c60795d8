//! A scripted HTTP server for the REST client tests: records every request
//! and answers from per-route queues of canned responses.

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};

use axum::body::{to_bytes, Body};
use axum::extract::{Request, State};
use axum::http::{HeaderName, HeaderValue, StatusCode};
use axum::response::Response;
use axum::Router;
use serde_json::Value;

/// One request the server saw.
#[derive(Debug, Clone)]
pub struct Recorded {
    pub method: String,
    pub path: String,
    pub query: Option<String>,
    pub api_key: Option<String>,
    pub content_type: Option<String>,
    pub body: Option<Value>,
}

/// One canned answer.
#[derive(Debug, Clone)]
pub struct Scripted {
    pub status: u16,
    pub headers: Vec<(String, String)>,
    pub body: String,
}

impl Scripted {
    pub fn json(status: u16, body: Value) -> Self {
        Scripted {
            status,
            headers: vec![("content-type".into(), "application/json".into())],
            body: body.to_string(),
        }
    }
    pub fn empty(status: u16) -> Self {
        Scripted {
            status,
            headers: vec![],
            body: String::new(),
        }
    }
    pub fn header(mut self, name: &str, value: &str) -> Self {
        self.headers.push((name.into(), value.into()));
        self
    }
}

#[derive(Default)]
struct Inner {
    routes: HashMap<String, VecDeque<Scripted>>,
    seen: Vec<Recorded>,
}

/// Handle on a running scripted server.
#[derive(Clone)]
pub struct ScriptServer {
    pub addr: SocketAddr,
    inner: Arc<Mutex<Inner>>,
}

impl ScriptServer {
    /// Start on 127.0.0.1:0.
    pub async fn start() -> Self {
        let inner = Arc::new(Mutex::new(Inner::default()));
        let app = Router::new().fallback(handle).with_state(inner.clone());
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0").await.unwrap();
        let addr = listener.local_addr().unwrap();
        tokio::spawn(async move {
            let _ = axum::serve(listener, app).await;
        });
        ScriptServer { addr, inner }
    }

    /// Base URL to hand to the client.
    pub fn base(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// Queue a response for `METHOD /path` (the last one repeats once queued ones run out).
    pub fn script(&self, method: &str, path: &str, resp: Scripted) {
        let key = format!("{method} {path}");
        self.inner
            .lock()
            .unwrap()
            .routes
            .entry(key)
            .or_default()
            .push_back(resp);
    }

    /// Every request so far.
    pub fn seen(&self) -> Vec<Recorded> {
        self.inner.lock().unwrap().seen.clone()
    }

    /// Requests to one path.
    pub fn seen_at(&self, path: &str) -> Vec<Recorded> {
        self.seen().into_iter().filter(|r| r.path == path).collect()
    }
}

async fn handle(State(inner): State<Arc<Mutex<Inner>>>, req: Request) -> Response {
    let method = req.method().to_string();
    let path = req.uri().path().to_string();
    let query = req.uri().query().map(str::to_string);
    let headers = req.headers().clone();
    let header = |n: &str| {
        headers
            .get(n)
            .and_then(|v| v.to_str().ok())
            .map(str::to_string)
    };
    let api_key = header("x-api-key");
    let content_type = header("content-type");
    let bytes = to_bytes(req.into_body(), 1 << 20).await.unwrap_or_default();
    let body = if bytes.is_empty() {
        None
    } else {
        serde_json::from_slice(&bytes).ok()
    };
    let scripted = {
        let mut g = inner.lock().unwrap();
        g.seen.push(Recorded {
            method: method.clone(),
            path: path.clone(),
            query,
            api_key,
            content_type,
            body,
        });
        let key = format!("{method} {path}");
        match g.routes.get_mut(&key) {
            Some(q) if q.len() > 1 => q.pop_front(),
            Some(q) => q.front().cloned(),
            None => None,
        }
    };
    let s = scripted.unwrap_or_else(|| {
        Scripted::json(
            404,
            serde_json::json!({"error":{"code":"not_found","message":"no script","request_id":"t"}}),
        )
    });
    let mut resp = Response::new(Body::from(s.body));
    *resp.status_mut() = StatusCode::from_u16(s.status).unwrap();
    for (k, v) in s.headers {
        resp.headers_mut().insert(
            HeaderName::from_bytes(k.as_bytes()).unwrap(),
            HeaderValue::from_str(&v).unwrap(),
        );
    }
    resp
}
