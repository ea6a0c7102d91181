//! A loopback HTTP/1.1 proxy that injects S3 faults (`500`, `503 SlowDown`, a reset connection) on a deterministic schedule.
//!
//! It sits in front of moto (`AWS_ENDPOINT_URL_S3=<proxy>`) and forwards requests byte for
//! byte, parsing only what it must to find message boundaries (`Content-Length`, chunked
//! bodies, bodiless answers to `HEAD`, `204` and `304`). The schedule is a function of the
//! order in which *new* requests arrive: the j-th distinct request (method and target) gets
//! `schedule[j % schedule.len()]`, and a request seen before always passes. So every faulted
//! request succeeds when the client retries it (each SDK retries at least twice), and the
//! number of faults of each kind follows from the number of distinct requests alone.

use std::collections::HashSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::net::{Shutdown, TcpListener, TcpStream};
use std::sync::atomic::{AtomicBool, AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// What the proxy does with one request.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Fault {
    /// Forward it to the upstream.
    Pass,
    /// Answer `500 InternalError` (S3's XML error body).
    InternalError,
    /// Answer `503 SlowDown` (S3's throttling answer).
    SlowDown,
    /// Read the request, then close the connection with a TCP reset (no answer).
    Reset,
}

/// How many requests met each fault.
#[derive(Debug, Default)]
pub struct FaultCounts {
    passed: AtomicUsize,
    internal_error: AtomicUsize,
    slow_down: AtomicUsize,
    reset: AtomicUsize,
}

impl FaultCounts {
    /// `(passed, 500s, 503s, resets)`.
    pub fn snapshot(&self) -> (usize, usize, usize, usize) {
        (
            self.passed.load(Ordering::SeqCst),
            self.internal_error.load(Ordering::SeqCst),
            self.slow_down.load(Ordering::SeqCst),
            self.reset.load(Ordering::SeqCst),
        )
    }

    fn count(&self, f: Fault) {
        let c = match f {
            Fault::Pass => &self.passed,
            Fault::InternalError => &self.internal_error,
            Fault::SlowDown => &self.slow_down,
            Fault::Reset => &self.reset,
        };
        c.fetch_add(1, Ordering::SeqCst);
    }
}

struct Shared {
    upstream: String,
    schedule: Vec<Fault>,
    seen: Mutex<HashSet<String>>,
    counts: FaultCounts,
    stop: AtomicBool,
}

impl Shared {
    /// The fault for a request: the schedule's next entry for a new request, `Pass` for a repeat.
    fn decide(&self, key: &str) -> Fault {
        let mut seen = self.seen.lock().expect("no panics hold the lock");
        let j = seen.len();
        if seen.insert(key.to_owned()) {
            self.schedule[j % self.schedule.len()]
        } else {
            Fault::Pass
        }
    }
}

/// A running proxy; stops accepting when dropped.
pub struct FaultProxy {
    addr: std::net::SocketAddr,
    shared: Arc<Shared>,
}

impl FaultProxy {
    /// Listens on an ephemeral loopback port and forwards to `upstream` (`http://host:port`).
    pub fn start(upstream: &str, schedule: Vec<Fault>) -> Self {
        assert!(!schedule.is_empty(), "a schedule needs at least one entry");
        let upstream = upstream
            .strip_prefix("http://")
            .expect("a plain http:// upstream")
            .trim_end_matches('/')
            .to_owned();
        let listener = TcpListener::bind("127.0.0.1:0").expect("bind the fault proxy");
        let addr = listener.local_addr().expect("local address");
        let shared = Arc::new(Shared {
            upstream,
            schedule,
            seen: Mutex::new(HashSet::new()),
            counts: FaultCounts::default(),
            stop: AtomicBool::new(false),
        });
        let s = shared.clone();
        std::thread::spawn(move || {
            for conn in listener.incoming() {
                if s.stop.load(Ordering::SeqCst) {
                    return;
                }
                let Ok(conn) = conn else { continue };
                let s = s.clone();
                std::thread::spawn(move || {
                    let _ = serve(conn, &s);
                });
            }
        });
        Self { addr, shared }
    }

    /// The proxy's URL, for `AWS_ENDPOINT_URL_S3`.
    pub fn url(&self) -> String {
        format!("http://{}", self.addr)
    }

    /// How many requests met each fault so far.
    pub fn counts(&self) -> &FaultCounts {
        &self.shared.counts
    }
}

impl Drop for FaultProxy {
    fn drop(&mut self) {
        self.shared.stop.store(true, Ordering::SeqCst);
        // Wake the accept loop so it sees `stop`.
        let _ = TcpStream::connect(self.addr);
    }
}

/// One HTTP message head: the start line and the headers, as received.
struct Head {
    raw: Vec<u8>,
    start: String,
    headers: Vec<(String, String)>,
}

impl Head {
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }

    fn chunked(&self) -> bool {
        self.header("transfer-encoding")
            .is_some_and(|v| v.to_ascii_lowercase().contains("chunked"))
    }

    fn content_length(&self) -> Option<usize> {
        self.header("content-length")
            .and_then(|v| v.trim().parse().ok())
    }
}

/// Reads a message head; `None` at a clean end of stream.
fn read_head(r: &mut impl BufRead) -> std::io::Result<Option<Head>> {
    let mut raw = Vec::new();
    let mut start = String::new();
    let mut headers = Vec::new();
    loop {
        let mut line = Vec::new();
        let n = r.read_until(b'\n', &mut line)?;
        if n == 0 {
            return if raw.is_empty() {
                Ok(None)
            } else {
                Err(std::io::ErrorKind::UnexpectedEof.into())
            };
        }
        raw.extend_from_slice(&line);
        let text = String::from_utf8_lossy(&line).trim_end().to_owned();
        if text.is_empty() {
            if start.is_empty() {
                // Stray CRLF between messages.
                raw.clear();
                continue;
            }
            return Ok(Some(Head {
                raw,
                start,
                headers,
            }));
        }
        if start.is_empty() {
            start = text;
        } else if let Some((k, v)) = text.split_once(':') {
            headers.push((k.trim().to_owned(), v.trim().to_owned()));
        }
    }
}

/// Copies a body of `head`'s framing from `r` to `w` (`w` may be a sink).
fn copy_body(
    head: &Head,
    bodyless: bool,
    r: &mut impl BufRead,
    w: &mut impl Write,
) -> std::io::Result<()> {
    if bodyless {
        return Ok(());
    }
    if head.chunked() {
        loop {
            let mut size_line = Vec::new();
            r.read_until(b'\n', &mut size_line)?;
            w.write_all(&size_line)?;
            let text = String::from_utf8_lossy(&size_line);
            let size_hex = text.trim().split(';').next().unwrap_or("0");
            let size = usize::from_str_radix(size_hex, 16)
                .map_err(|_| std::io::Error::other(format!("bad chunk size {text:?}")))?;
            if size == 0 {
                // Trailers up to the empty line.
                loop {
                    let mut line = Vec::new();
                    r.read_until(b'\n', &mut line)?;
                    w.write_all(&line)?;
                    if line == b"\r\n" || line == b"\n" || line.is_empty() {
                        return Ok(());
                    }
                }
            }
            let mut chunk = vec![0u8; size + 2];
            r.read_exact(&mut chunk)?;
            w.write_all(&chunk)?;
        }
    }
    match head.content_length() {
        Some(n) => {
            let copied = std::io::copy(&mut r.take(n as u64), w)?;
            if copied as usize != n {
                return Err(std::io::ErrorKind::UnexpectedEof.into());
            }
            Ok(())
        }
        None => Ok(()),
    }
}

fn error_response(status: u16, reason: &str, code: &str, head_only: bool) -> Vec<u8> {
    let body = format!(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\n<Error><Code>{code}</Code><Message>injected by the fault proxy</Message><RequestId>fault-proxy</RequestId></Error>"
    );
    let mut out = format!(
        "HTTP/1.1 {status} {reason}\r\nContent-Type: application/xml\r\nx-amz-request-id: fault-proxy\r\nContent-Length: {}\r\n\r\n",
        if head_only { 0 } else { body.len() }
    )
    .into_bytes();
    if !head_only {
        out.extend_from_slice(body.as_bytes());
    }
    out
}

/// Closes `conn` with a TCP reset: SO_LINGER with a zero timeout makes close() send RST.
fn reset(conn: TcpStream) {
    use std::os::fd::AsRawFd;
    let linger = libc::linger {
        l_onoff: 1,
        l_linger: 0,
    };
    // SAFETY: a valid socket fd and a correctly sized linger struct.
    unsafe {
        libc::setsockopt(
            conn.as_raw_fd(),
            libc::SOL_SOCKET,
            libc::SO_LINGER,
            (&linger as *const libc::linger).cast(),
            std::mem::size_of::<libc::linger>() as libc::socklen_t,
        );
    }
    drop(conn);
}

/// Serves one client connection: requests one after another (keep-alive), each faulted or
/// forwarded over this connection's own upstream connection.
fn serve(client: TcpStream, s: &Shared) -> std::io::Result<()> {
    client.set_read_timeout(Some(Duration::from_secs(120)))?;
    let mut reader = BufReader::new(client.try_clone()?);
    let mut writer = client.try_clone()?;
    let mut upstream: Option<(BufReader<TcpStream>, TcpStream)> = None;
    loop {
        let Some(req) = read_head(&mut reader)? else {
            return Ok(());
        };
        let mut parts = req.start.split_whitespace();
        let method = parts.next().unwrap_or("").to_owned();
        let target = parts.next().unwrap_or("").to_owned();
        let fault = s.decide(&format!("{method} {target}"));
        s.counts.count(fault);
        match fault {
            Fault::InternalError | Fault::SlowDown => {
                copy_body(&req, false, &mut reader, &mut std::io::sink())?;
                let (status, reason, code) = if fault == Fault::SlowDown {
                    (503, "Slow Down", "SlowDown")
                } else {
                    (500, "Internal Server Error", "InternalError")
                };
                writer.write_all(&error_response(status, reason, code, method == "HEAD"))?;
                writer.flush()?;
            }
            Fault::Reset => {
                copy_body(&req, false, &mut reader, &mut std::io::sink())?;
                drop(reader);
                drop(writer);
                reset(client);
                return Ok(());
            }
            Fault::Pass => {
                if upstream.is_none() {
                    let up = TcpStream::connect(&s.upstream)?;
                    up.set_read_timeout(Some(Duration::from_secs(120)))?;
                    upstream = Some((BufReader::new(up.try_clone()?), up));
                }
                let (up_r, up_w) = upstream.as_mut().expect("connected above");
                up_w.write_all(&req.raw)?;
                copy_body(&req, false, &mut reader, up_w)?;
                up_w.flush()?;
                // Interim 1xx answers are passed on until the final one.
                let resp = loop {
                    let Some(resp) = read_head(up_r)? else {
                        return Err(std::io::ErrorKind::UnexpectedEof.into());
                    };
                    writer.write_all(&resp.raw)?;
                    if !resp
                        .start
                        .split_whitespace()
                        .nth(1)
                        .unwrap_or("")
                        .starts_with('1')
                    {
                        break resp;
                    }
                };
                let status = resp.start.split_whitespace().nth(1).unwrap_or("");
                let bodyless = method == "HEAD" || status == "204" || status == "304";
                if !bodyless && !resp.chunked() && resp.content_length().is_none() {
                    // Delimited by the upstream closing: pass it all on, then close.
                    std::io::copy(up_r, &mut writer)?;
                    writer.flush()?;
                    let _ = writer.shutdown(Shutdown::Both);
                    return Ok(());
                }
                copy_body(&resp, bodyless, up_r, &mut writer)?;
                writer.flush()?;
                if resp
                    .header("connection")
                    .is_some_and(|v| v.eq_ignore_ascii_case("close"))
                {
                    upstream = None;
                }
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A one-shot upstream that answers every request `200 ok` with keep-alive.
    fn upstream() -> String {
        let l = TcpListener::bind("127.0.0.1:0").unwrap();
        let addr = l.local_addr().unwrap();
        std::thread::spawn(move || {
            for c in l.incoming().flatten() {
                std::thread::spawn(move || {
                    let mut r = BufReader::new(c.try_clone().unwrap());
                    let mut w = c;
                    while let Ok(Some(h)) = read_head(&mut r) {
                        copy_body(&h, false, &mut r, &mut std::io::sink()).unwrap();
                        w.write_all(b"HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok")
                            .unwrap();
                    }
                });
            }
        });
        format!("http://{addr}")
    }

    fn send(url: &str, path: &str) -> std::io::Result<String> {
        let mut c = TcpStream::connect(url.strip_prefix("http://").unwrap())?;
        c.write_all(
            format!("PUT {path} HTTP/1.1\r\nHost: x\r\nContent-Length: 3\r\n\r\nabc").as_bytes(),
        )?;
        let mut r = BufReader::new(c);
        let head = read_head(&mut r)?.ok_or(std::io::ErrorKind::UnexpectedEof)?;
        let mut body = Vec::new();
        copy_body(&head, false, &mut r, &mut body)?;
        Ok(format!("{} {}", head.start, String::from_utf8_lossy(&body)))
    }

    #[test]
    fn new_requests_follow_the_schedule_and_repeats_pass() {
        let p = FaultProxy::start(
            &upstream(),
            vec![
                Fault::SlowDown,
                Fault::InternalError,
                Fault::Reset,
                Fault::Pass,
            ],
        );
        let a = send(&p.url(), "/b/a").unwrap();
        assert!(
            a.starts_with("HTTP/1.1 503") && a.contains("<Code>SlowDown</Code>"),
            "{a}"
        );
        assert!(
            send(&p.url(), "/b/a").unwrap().ends_with(" ok"),
            "a repeat passes"
        );
        assert!(send(&p.url(), "/b/b").unwrap().starts_with("HTTP/1.1 500"));
        let e = send(&p.url(), "/b/c").unwrap_err();
        assert!(
            matches!(
                e.kind(),
                std::io::ErrorKind::ConnectionReset | std::io::ErrorKind::UnexpectedEof
            ),
            "{e}"
        );
        assert!(send(&p.url(), "/b/d").unwrap().ends_with(" ok"));
        assert_eq!(p.counts().snapshot(), (2, 1, 1, 1));
    }
}
