//! A stand-in for the model: a Responses-API server on 127.0.0.1 that lets
//! the real Codex CLI run turns offline, and records what Codex sent.
//!
//! Only `std` and `serde_json`. Listens on 127.0.0.1:0, one
//! thread per connection, HTTP/1.1 with keep-alive, request bodies with
//! `Content-Length` or `Transfer-Encoding: chunked`.
//!
//! * `GET  /v1/models`    -> `{"data": []}`
//! * `POST /v1/responses` -> an SSE stream built from the next queued
//!   [`Reply`] (an assistant message "ok" when the queue is empty); the JSON
//!   request body is appended to `requests`.
//! * anything else        -> 404.
//!
//! Codex's `$CODEX_HOME/config.toml` for it: see [`MockModel::config_toml`].
//! The server stops (listener closed, open connections shut down, accept
//! thread joined) when the `MockModel` is dropped.
//!
//! ```ignore
//! let model = MockModel::start();
//! model.push(Reply::shell("echo $CODEX_THREAD_ID"));
//! model.push(Reply::text("done"));
//! std::fs::write(codex_home.join("config.toml"), model.config_toml())?;
//! // run `codex exec --skip-git-repo-check "prompt"` with HOME, CODEX_HOME
//! // set and stdin = /dev/null; then inspect model.requests()[1]["input"].
//! ```

// Tests include this file as a module and use different subsets of it.
#![allow(dead_code)]

use serde_json::{json, Value};
use std::collections::VecDeque;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;

/// One model turn, i.e. the answer to one `POST /v1/responses`.
#[derive(Clone, Debug)]
pub enum Reply {
    /// An assistant message with this text; ends the Codex turn.
    Text(String),
    /// Make Codex run `cmd` with `bash -lc` through its `exec_command` tool
    /// (the shell tool Codex 0.169.0 offers the model). Codex then sends a
    /// follow-up request carrying a `function_call_output` with the command's
    /// output, which is answered by the next queued reply.
    Shell(String),
    /// A `function_call` output item: tool `name`, `arguments` sent as the
    /// JSON-encoded string the Responses API uses.
    FunctionCall { name: String, arguments: Value },
    /// Raw output items (each becomes one `response.output_item.done`).
    Items(Vec<Value>),
}

impl Reply {
    pub fn text(s: impl Into<String>) -> Self {
        Reply::Text(s.into())
    }
    pub fn shell(cmd: impl Into<String>) -> Self {
        Reply::Shell(cmd.into())
    }
}

pub struct MockModel {
    pub port: u16,
    /// JSON bodies of every `POST /v1/responses`, in arrival order.
    pub requests: Arc<Mutex<Vec<Value>>>,
    /// `"METHOD /path"` of every HTTP request received (including `/models`).
    pub hits: Arc<Mutex<Vec<String>>>,
    replies: Arc<Mutex<VecDeque<Reply>>>,
    stop: Arc<AtomicBool>,
    conns: Arc<Mutex<Vec<TcpStream>>>,
    accept_thread: Option<JoinHandle<()>>,
}

impl MockModel {
    /// Starts the server with an empty reply queue.
    pub fn start() -> MockModel {
        Self::with_replies(Vec::new())
    }

    /// Starts the server; replies are served in order, one per request.
    pub fn with_replies(replies: Vec<Reply>) -> MockModel {
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind 127.0.0.1:0");
        let port = listener.local_addr().unwrap().port();
        let requests = Arc::new(Mutex::new(Vec::new()));
        let hits = Arc::new(Mutex::new(Vec::new()));
        let replies = Arc::new(Mutex::new(VecDeque::from(replies)));
        let stop = Arc::new(AtomicBool::new(false));
        let conns: Arc<Mutex<Vec<TcpStream>>> = Arc::new(Mutex::new(Vec::new()));
        let counter = Arc::new(AtomicUsize::new(0));
        let accept_thread = {
            let (requests, hits, replies, stop, conns) =
                (requests.clone(), hits.clone(), replies.clone(), stop.clone(), conns.clone());
            std::thread::spawn(move || {
                for stream in listener.incoming() {
                    if stop.load(Ordering::SeqCst) {
                        break;
                    }
                    let Ok(stream) = stream else { continue };
                    if let Ok(clone) = stream.try_clone() {
                        conns.lock().unwrap().push(clone);
                    }
                    let (requests, hits, replies, counter) =
                        (requests.clone(), hits.clone(), replies.clone(), counter.clone());
                    std::thread::spawn(move || {
                        let _ = serve_connection(stream, &requests, &hits, &replies, &counter);
                    });
                }
            })
        };
        MockModel { port, requests, hits, replies, stop, conns, accept_thread: Some(accept_thread) }
    }

    /// Appends a reply to the queue.
    pub fn push(&self, reply: Reply) {
        self.replies.lock().unwrap().push_back(reply);
    }

    /// Snapshot of the request bodies received so far.
    pub fn requests(&self) -> Vec<Value> {
        self.requests.lock().unwrap().clone()
    }

    pub fn base_url(&self) -> String {
        format!("http://127.0.0.1:{}/v1", self.port)
    }

    /// A complete `$CODEX_HOME/config.toml` pointing Codex at this server.
    pub fn config_toml(&self) -> String {
        format!(
            r#"model = "mock-model"
model_provider = "mock"
approval_policy = "never"
sandbox_mode = "danger-full-access"

# Default is the Statsig exporter: at exit Codex waits ~5 s trying to flush
# metrics to ab.chatgpt.com. "none" makes a turn take well under 1 s.
[otel]
metrics_exporter = "none"

# Stops the curated-plugin sync (git ls-remote github.com, api.github.com,
# chatgpt.com) that otherwise runs at startup.
[features]
plugins = false

[model_providers.mock]
name = "mock"
base_url = "{}"
wire_api = "responses"
request_max_retries = 0
stream_max_retries = 0
"#,
            self.base_url()
        )
    }
}

impl Drop for MockModel {
    fn drop(&mut self) {
        self.stop.store(true, Ordering::SeqCst);
        // Wake the blocking accept() so the thread sees `stop`.
        let _ = TcpStream::connect(("127.0.0.1", self.port));
        if let Some(t) = self.accept_thread.take() {
            let _ = t.join();
        }
        for c in self.conns.lock().unwrap().drain(..) {
            let _ = c.shutdown(Shutdown::Both);
        }
    }
}

fn serve_connection(
    stream: TcpStream,
    requests: &Mutex<Vec<Value>>,
    hits: &Mutex<Vec<String>>,
    replies: &Mutex<VecDeque<Reply>>,
    counter: &AtomicUsize,
) -> std::io::Result<()> {
    let mut reader = BufReader::new(stream.try_clone()?);
    let mut out = stream;
    loop {
        // Request line; EOF means the client closed a kept-alive connection.
        let mut line = String::new();
        if reader.read_line(&mut line)? == 0 {
            return Ok(());
        }
        let line = line.trim_end();
        if line.is_empty() {
            continue;
        }
        let mut parts = line.split_whitespace();
        let method = parts.next().unwrap_or("").to_string();
        let target = parts.next().unwrap_or("").to_string();
        let version = parts.next().unwrap_or("HTTP/1.1").to_string();

        let mut content_length: Option<usize> = None;
        let mut chunked = false;
        let mut close = version == "HTTP/1.0";
        loop {
            let mut h = String::new();
            if reader.read_line(&mut h)? == 0 {
                return Ok(());
            }
            let h = h.trim_end();
            if h.is_empty() {
                break;
            }
            let Some((name, value)) = h.split_once(':') else {
                continue;
            };
            let (name, value) = (name.trim().to_ascii_lowercase(), value.trim());
            match name.as_str() {
                "content-length" => content_length = value.parse().ok(),
                "transfer-encoding" => chunked = value.to_ascii_lowercase().contains("chunked"),
                "connection" => {
                    let v = value.to_ascii_lowercase();
                    if v.contains("close") {
                        close = true;
                    } else if v.contains("keep-alive") {
                        close = false;
                    }
                }
                _ => {}
            }
        }

        let body = if chunked {
            read_chunked(&mut reader)?
        } else if let Some(n) = content_length {
            let mut buf = vec![0; n];
            reader.read_exact(&mut buf)?;
            buf
        } else {
            Vec::new()
        };

        let path = target.split('?').next().unwrap_or("");
        hits.lock().unwrap().push(format!("{method} {path}"));
        let (status, content_type, payload) = if method == "GET" && path.ends_with("/models") {
            ("200 OK", "application/json", json!({ "data": [] }).to_string())
        } else if method == "POST" && path.ends_with("/responses") {
            let value = serde_json::from_slice::<Value>(&body)
                .unwrap_or_else(|_| json!({ "unparsed_body": String::from_utf8_lossy(&body) }));
            requests.lock().unwrap().push(value);
            let reply = replies.lock().unwrap().pop_front().unwrap_or_else(|| Reply::Text("ok".into()));
            let n = counter.fetch_add(1, Ordering::SeqCst) + 1;
            ("200 OK", "text/event-stream", sse_body(&reply, n))
        } else {
            ("404 Not Found", "application/json", json!({ "error": "not found" }).to_string())
        };

        let head = format!(
            "HTTP/1.1 {status}\r\ncontent-type: {content_type}\r\ncontent-length: {}\r\n\
             cache-control: no-cache\r\nconnection: {}\r\n\r\n",
            payload.len(),
            if close { "close" } else { "keep-alive" }
        );
        out.write_all(head.as_bytes())?;
        out.write_all(payload.as_bytes())?;
        out.flush()?;
        if close {
            let _ = out.shutdown(Shutdown::Both);
            return Ok(());
        }
    }
}

fn read_chunked(reader: &mut BufReader<TcpStream>) -> std::io::Result<Vec<u8>> {
    let mut body = Vec::new();
    loop {
        let mut size_line = String::new();
        reader.read_line(&mut size_line)?;
        let size_hex = size_line.trim().split(';').next().unwrap_or("0");
        let size = usize::from_str_radix(size_hex, 16).unwrap_or(0);
        if size == 0 {
            // Trailers, then the final empty line.
            loop {
                let mut t = String::new();
                if reader.read_line(&mut t)? == 0 || t.trim_end().is_empty() {
                    return Ok(body);
                }
            }
        }
        let start = body.len();
        body.resize(start + size, 0);
        reader.read_exact(&mut body[start..])?;
        let mut crlf = [0u8; 2];
        reader.read_exact(&mut crlf)?;
    }
}

/// The output items of one reply.
fn output_items(reply: &Reply, n: usize) -> Vec<Value> {
    match reply {
        Reply::Text(text) => vec![json!({
            "type": "message",
            "role": "assistant",
            "id": format!("msg_{n}"),
            "content": [{ "type": "output_text", "text": text }],
        })],
        Reply::Shell(cmd) => output_items(
            &Reply::FunctionCall {
                name: "exec_command".into(),
                arguments: json!({ "cmd": cmd, "yield_time_ms": 10000 }),
            },
            n,
        ),
        Reply::FunctionCall { name, arguments } => vec![json!({
            "type": "function_call",
            "id": format!("fc_{n}"),
            "call_id": format!("call_{n}"),
            "name": name,
            "arguments": arguments.to_string(),
        })],
        Reply::Items(items) => items.clone(),
    }
}

/// The SSE stream for one reply: `response.created`, one
/// `response.output_item.done` per item, `response.completed` with usage.
fn sse_body(reply: &Reply, n: usize) -> String {
    let id = format!("resp_{n}");
    let mut events = vec![json!({
        "type": "response.created",
        "response": { "id": id },
    })];
    for item in output_items(reply, n) {
        events.push(json!({ "type": "response.output_item.done", "item": item }));
    }
    events.push(json!({
        "type": "response.completed",
        "response": {
            "id": id,
            "usage": {
                "input_tokens": 10,
                "input_tokens_details": null,
                "output_tokens": 5,
                "output_tokens_details": null,
                "total_tokens": 15
            }
        }
    }));
    let mut out = String::new();
    for ev in events {
        out.push_str(&format!("event: {}\ndata: {}\n\n", ev["type"].as_str().unwrap(), ev));
    }
    out
}
