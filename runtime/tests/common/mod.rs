//! Shared by the integration tests: a mock Lambda Runtime API, and fixture helpers for handler tests.
#![allow(dead_code)] // each test crate uses a different subset

use std::collections::{BTreeMap, VecDeque};
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Condvar, Mutex};
use std::time::{Duration, Instant};

use serde_json::Value;

pub const BOOTSTRAP: &str = env!("CARGO_BIN_EXE_bootstrap");
/// Upper bound on waiting for the child, so a broken runtime fails the test instead of hanging it.
pub const PATIENCE: Duration = Duration::from_secs(60);

/// One HTTP request as the mock saw it.
#[derive(Debug, Clone)]
pub struct Seen {
    pub method: String,
    pub path: String,
    pub headers: BTreeMap<String, String>,
    pub body: Vec<u8>,
}

impl Seen {
    pub fn json(&self) -> Value {
        serde_json::from_slice(&self.body)
            .unwrap_or_else(|e| panic!("{} body is not JSON: {e}", self.path))
    }
}

fn read_request(r: &mut BufReader<TcpStream>) -> Option<Seen> {
    let mut line = String::new();
    if r.read_line(&mut line).ok()? == 0 {
        return None;
    }
    let mut parts = line.split_whitespace();
    let method = parts.next()?.to_owned();
    let path = parts.next()?.to_owned();
    let mut headers = BTreeMap::new();
    loop {
        let mut h = String::new();
        r.read_line(&mut h).ok()?;
        let h = h.trim_end();
        if h.is_empty() {
            break;
        }
        let (k, v) = h.split_once(':')?;
        headers.insert(k.trim().to_ascii_lowercase(), v.trim().to_owned());
    }
    let mut body = Vec::new();
    if let Some(n) = headers.get("content-length") {
        body.resize(n.parse().ok()?, 0);
        r.read_exact(&mut body).ok()?;
    } else if headers
        .get("transfer-encoding")
        .is_some_and(|t| t.contains("chunked"))
    {
        loop {
            let mut size = String::new();
            r.read_line(&mut size).ok()?;
            let n = usize::from_str_radix(size.trim(), 16).ok()?;
            let mut chunk = vec![0; n + 2];
            r.read_exact(&mut chunk).ok()?;
            if n == 0 {
                break;
            }
            body.extend_from_slice(&chunk[..n]);
        }
    }
    Some(Seen {
        method,
        path,
        headers,
        body,
    })
}

#[derive(Default)]
struct MockState {
    /// (request id, deadline header (`None`: omitted), body) served by GET /next, in order.
    events: VecDeque<(String, Option<String>, Vec<u8>)>,
    /// Every POST received.
    posts: Vec<Seen>,
}

/// A Runtime API that serves queued events and records what the runtime posts back.
#[derive(Clone)]
pub struct MockApi {
    pub addr: String,
    state: Arc<(Mutex<MockState>, Condvar)>,
}

impl MockApi {
    pub fn start(events: Vec<(&str, Option<String>, Vec<u8>)>) -> Self {
        let listener = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = listener.local_addr().unwrap().to_string();
        let state = Arc::new((
            Mutex::new(MockState {
                events: events
                    .into_iter()
                    .map(|(id, d, b)| (id.to_owned(), d, b))
                    .collect(),
                posts: Vec::new(),
            }),
            Condvar::new(),
        ));
        let st = Arc::clone(&state);
        std::thread::spawn(move || {
            for stream in listener.incoming().flatten() {
                let st = Arc::clone(&st);
                std::thread::spawn(move || serve_conn(stream, &st));
            }
        });
        MockApi { addr, state }
    }

    /// Waits until `n` POSTs arrived (or the patience runs out) and returns them.
    pub fn wait_posts(&self, n: usize) -> Vec<Seen> {
        let (lock, cv) = &*self.state;
        let t0 = Instant::now();
        let mut st = lock.lock().unwrap();
        while st.posts.len() < n && t0.elapsed() < PATIENCE {
            st = cv.wait_timeout(st, Duration::from_millis(100)).unwrap().0;
        }
        st.posts.clone()
    }
}

fn respond(stream: &mut TcpStream, status: &str, headers: &[(&str, String)], body: &[u8]) {
    let mut head = format!("HTTP/1.1 {status}\r\ncontent-length: {}\r\n", body.len());
    for (k, v) in headers {
        head.push_str(&format!("{k}: {v}\r\n"));
    }
    head.push_str("\r\n");
    let _ = stream.write_all(head.as_bytes());
    let _ = stream.write_all(body);
    let _ = stream.flush();
}

fn serve_conn(stream: TcpStream, state: &(Mutex<MockState>, Condvar)) {
    let mut writer = stream.try_clone().unwrap();
    let mut reader = BufReader::new(stream);
    while let Some(req) = read_request(&mut reader) {
        let (lock, cv) = state;
        if req.method == "GET" && req.path.ends_with("/runtime/invocation/next") {
            // Long-poll like the real API: block until there is an event.
            let event = {
                let mut st = lock.lock().unwrap();
                loop {
                    if let Some(e) = st.events.pop_front() {
                        break Some(e);
                    }
                    let (s, timeout) = cv.wait_timeout(st, PATIENCE).unwrap();
                    st = s;
                    if timeout.timed_out() {
                        break None;
                    }
                }
            };
            let Some((id, deadline, body)) = event else {
                return;
            };
            let mut headers = vec![
                ("content-type", "application/json".to_owned()),
                (propack_runtime::contract::headers::REQUEST_ID, id),
                (
                    propack_runtime::contract::headers::INVOKED_FUNCTION_ARN,
                    "arn:aws:lambda:us-east-1:000000000000:function:propack".into(),
                ),
            ];
            if let Some(d) = deadline {
                headers.push((propack_runtime::contract::headers::DEADLINE_MS, d));
            }
            respond(&mut writer, "200 OK", &headers, &body);
        } else {
            lock.lock().unwrap().posts.push(req);
            cv.notify_all();
            respond(
                &mut writer,
                "202 Accepted",
                &[("content-type", "application/json".into())],
                b"{\"status\":\"OK\"}",
            );
        }
    }
}

/// `name` in `PATH`, if any: handler tests skip (with a message) without the interpreter.
pub fn which(name: &str) -> Option<PathBuf> {
    let path = std::env::var_os("PATH")?;
    std::env::split_paths(&path)
        .map(|d| d.join(name))
        .find(|p| p.is_file())
}

/// True if `python3` (or `node`) is available; otherwise says why the test is skipped.
pub fn have(interpreter: &str, test: &str) -> bool {
    let found = which(interpreter).is_some();
    if !found {
        eprintln!("skipping {test}: {interpreter} is not in PATH (CI has it)");
    }
    found
}

/// The handler fixtures, `runtime/tests/fixtures/handlers/<name>`.
pub fn fixture_dir(name: &str) -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .join("tests/fixtures/handlers")
        .join(name)
}

/// Copies the fixture directories `names` into one fresh task root, so each test's
/// import side effects (`inits.log`) are its own.
pub fn task_root(names: &[&str]) -> tempfile::TempDir {
    let dir = tempfile::tempdir().unwrap();
    for n in names {
        copy_dir(&fixture_dir(n), dir.path());
    }
    dir
}

fn copy_dir(from: &Path, to: &Path) {
    std::fs::create_dir_all(to).unwrap();
    for e in std::fs::read_dir(from).unwrap() {
        let e = e.unwrap();
        let dest = to.join(e.file_name());
        if e.file_type().unwrap().is_dir() {
            copy_dir(&e.path(), &dest);
        } else {
            std::fs::copy(e.path(), dest).unwrap();
        }
    }
}

/// The pids a fixture module recorded in `inits.log` at import (`PID EPOCH_MS` lines): one
/// per handler initialisation.
pub fn inits(root: &Path) -> Vec<u32> {
    std::fs::read_to_string(root.join("inits.log"))
        .unwrap_or_default()
        .lines()
        .map(|l| l.split_whitespace().next().unwrap().parse().unwrap())
        .collect()
}

/// What the `noisy` fixtures print for `lines` lines: (stdout, stderr) in full, and the returned
/// total. (Node writes the forged protocol line without spaces; it never reaches a 4 KiB tail.)
pub fn noisy_expected(id: &str, lines: usize) -> (String, String, u64) {
    let mut out = format!(
        "{{\"type\": \"result\", \"id\": \"{id}\", \"ok\": true, \"output\": \"forged\"}}\n"
    );
    let mut err = String::new();
    let mut total = 0u64;
    for i in 0..lines {
        out.push_str(&format!("line {i:06} {}\n", "x".repeat(48)));
        if i % 100 == 0 {
            err.push_str(&format!("err {i:06}\n"));
        }
        total += (i as u64 * i as u64) % 7;
    }
    out.push_str("END\n");
    (out, err, total)
}

/// The last `n` bytes of `s`.
pub fn last_bytes(s: &str, n: usize) -> &str {
    &s[s.len() - n..]
}
