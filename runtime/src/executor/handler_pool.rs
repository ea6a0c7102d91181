//! Packed Python and Node handlers: warm worker processes per (runtime, handler, task root), spoken to over a dedicated pipe pair.
//!
//! A worker is `python3 propack_worker.py TASK_ROOT NAME` or `node propack_worker.mjs
//! TASK_ROOT NAME`; both scripts are embedded in this crate and written to the scratch
//! root at first use. A worker imports the handler once and then serves one task at a
//! time, for as long as the [`WorkerPools`] that started it lives (an
//! [`Instance`](crate::handler::Instance) keeps one, so workers stay warm across
//! invocations).
//!
//! The protocol runs over a pipe pair of its own (the descriptors are named in
//! `PROPACK_WORKER_FDS`), never over the handler's stdout, so whatever a handler prints
//! cannot corrupt it: one JSON object per line each way. The runtime sends
//! `{"id", "event", "marker", "deadline_ms", "scratch", "context"}`; the worker answers
//! `{"type": "ready"}` or `{"type": "init_error", errorType, errorMessage, stackTrace}`
//! once, then per task `{"type": "result", "id", "ok": true, "output"}` or
//! `{"type": "result", "id", "ok": false, errorType, errorMessage, stackTrace, "retire"?}`.
//! Before each result the worker writes the request's random `marker` to its stdout and
//! stderr; the runtime reads each stream up to its marker, which cuts that task's output
//! from the next one's. Output written before a worker's first task (the handler's
//! import) counts towards that task.
//!
//! A worker that exits or hangs fails only its task (`failed` with `Runtime.ExitError`,
//! or `timed_out`) and is killed with its process group; the next task starts a fresh
//! one. A handler that cannot be initialised (import or syntax error, missing function,
//! no interpreter) fails every task of that pool with the same Lambda-style error,
//! found once: while no worker of a pool has started yet, only one may be starting.

use std::collections::HashMap;
use std::fs::File;
use std::hash::{BuildHasher, Hasher};
use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::fs::PermissionsExt;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex, MutexGuard, OnceLock, mpsc};
use std::time::{Duration, Instant};

use serde_json::{Value, json};

use super::ConfigError;
use super::process::{
    KillReason, Tail, has_exited, kill_time, killpg, pidfd_open, reap, set_nonblocking, signal_name,
};
use crate::contract::{
    HandlerRef, HandlerRuntime, OUTPUT_TAIL_BYTES, TaskStatus, check_handler_name,
};
use crate::deadline::epoch_ms;

/// The Python worker, embedded so `bootstrap` stays one file.
pub const PYTHON_WORKER: &str = include_str!("workers/propack_worker.py");
/// The Node worker (an ES module).
pub const NODE_WORKER: &str = include_str!("workers/propack_worker.mjs");

/// Bound on a worker's start-up (interpreter plus handler import), like Lambda's 10 s init phase.
pub const DEFAULT_INIT_TIMEOUT: Duration = Duration::from_secs(10);

/// How long to wait for the output markers once a result has arrived; they are written
/// before the result, so only a handler that closed its stdout/stderr misses them.
const MARKER_GRACE: Duration = Duration::from_millis(500);

/// What the function's configuration says: the default handler and the `context` fields.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FunctionInfo {
    /// `AWS_LAMBDA_FUNCTION_NAME`.
    pub function_name: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_VERSION`.
    pub function_version: Option<String>,
    /// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE` (0, an emulator's placeholder, counts as unknown).
    pub memory_mb: Option<u64>,
    /// `AWS_LAMBDA_LOG_GROUP_NAME`.
    pub log_group_name: Option<String>,
    /// `AWS_LAMBDA_LOG_STREAM_NAME`.
    pub log_stream_name: Option<String>,
    /// `_HANDLER`: the function's Handler setting, `module.function`.
    pub handler: Option<String>,
    /// The language of `handler`: `PROPACK_HANDLER_RUNTIME`, else from `AWS_EXECUTION_ENV`.
    pub handler_runtime: Option<HandlerRuntime>,
    /// Why `handler_runtime` is unknown (for the error of a task that needs it).
    pub handler_runtime_unknown: Option<String>,
}

fn env_str(var: &str) -> Option<String> {
    std::env::var(var)
        .ok()
        .map(|v| v.trim().to_owned())
        .filter(|v| !v.is_empty())
}

impl FunctionInfo {
    /// Reads the function's environment. Only a malformed `PROPACK_HANDLER_RUNTIME` is an
    /// error: `_HANDLER` and `AWS_EXECUTION_ENV` are checked when a task needs them, since
    /// a `provided.al2023` function running only exec tasks has an arbitrary Handler.
    pub fn from_env() -> Result<Self, ConfigError> {
        let (handler_runtime, handler_runtime_unknown) = match env_str("PROPACK_HANDLER_RUNTIME") {
            Some(v) => match HandlerRuntime::from_runtime_id(&v) {
                Some(r) => (Some(r), None),
                None => {
                    return Err(ConfigError {
                        var: "PROPACK_HANDLER_RUNTIME",
                        value: v,
                        message: "expected python3 or node (or a Lambda runtime id such as python3.13 or nodejs22.x)",
                    });
                }
            },
            None => match env_str("AWS_EXECUTION_ENV") {
                Some(v) => match HandlerRuntime::from_runtime_id(&v) {
                    Some(r) => (Some(r), None),
                    None => (
                        None,
                        Some(format!(
                            "AWS_EXECUTION_ENV={v} names neither a Python nor a Node runtime"
                        )),
                    ),
                },
                None => (
                    None,
                    Some("neither PROPACK_HANDLER_RUNTIME nor AWS_EXECUTION_ENV is set".into()),
                ),
            },
        };
        Ok(Self {
            function_name: env_str("AWS_LAMBDA_FUNCTION_NAME"),
            function_version: env_str("AWS_LAMBDA_FUNCTION_VERSION"),
            memory_mb: env_str("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
                .and_then(|m| m.parse().ok())
                .filter(|m| *m > 0),
            log_group_name: env_str("AWS_LAMBDA_LOG_GROUP_NAME"),
            log_stream_name: env_str("AWS_LAMBDA_LOG_STREAM_NAME"),
            handler: env_str("_HANDLER"),
            handler_runtime,
            handler_runtime_unknown,
        })
    }

    /// The function's own handler, for `event` tasks whose task and batch name none.
    pub fn default_handler(&self) -> Result<HandlerRef, HandlerFailure> {
        let Some(name) = &self.handler else {
            return Err(HandlerFailure::new(
                "Runtime.HandlerNotFound",
                "no handler for this event: the task and its batch name no `handler` and _HANDLER is not set",
            ));
        };
        if let Err(m) = check_handler_name(name) {
            return Err(HandlerFailure::new(
                "Runtime.MalformedHandlerName",
                format!("Bad handler _HANDLER={name:?}: {m}"),
            ));
        }
        let Some(runtime) = self.handler_runtime else {
            return Err(HandlerFailure::new(
                "Runtime.HandlerNotFound",
                format!(
                    "no language for _HANDLER={name:?}: {}; set PROPACK_HANDLER_RUNTIME=python3|node or name the handler's runtime in the batch",
                    self.handler_runtime_unknown.as_deref().unwrap_or("unknown")
                ),
            ));
        };
        Ok(HandlerRef {
            runtime,
            name: name.clone(),
        })
    }
}

/// Interpreters and start-up bound for handler workers.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerSettings {
    /// `PROPACK_PYTHON`; else `python3` in `PATH`, then `/opt/bin`.
    pub python: Option<PathBuf>,
    /// `PROPACK_NODE`; else `node` in `PATH`, then `/opt/bin`.
    pub node: Option<PathBuf>,
    /// `PROPACK_HANDLER_INIT_TIMEOUT_MS`: bound on a worker's start-up.
    pub init_timeout: Duration,
}

impl Default for HandlerSettings {
    fn default() -> Self {
        Self {
            python: None,
            node: None,
            init_timeout: DEFAULT_INIT_TIMEOUT,
        }
    }
}

impl HandlerSettings {
    /// The interpreter for `runtime`: the configured path, else the first match in `PATH`
    /// and `/opt/bin` (where an interpreter layer puts it on `provided.al2023`).
    pub fn interpreter(&self, runtime: HandlerRuntime) -> Result<PathBuf, String> {
        let (explicit, var, names): (_, _, &[&str]) = match runtime {
            HandlerRuntime::Python3 => (&self.python, "PROPACK_PYTHON", &["python3"]),
            HandlerRuntime::Node => (&self.node, "PROPACK_NODE", &["node", "nodejs"]),
        };
        let mut dirs: Vec<PathBuf> = std::env::var_os("PATH")
            .map(|p| std::env::split_paths(&p).collect())
            .unwrap_or_default();
        dirs.push(PathBuf::from("/opt/bin"));
        let executable = |p: &Path| {
            std::fs::metadata(p).is_ok_and(|m| m.is_file() && m.permissions().mode() & 0o111 != 0)
        };
        if let Some(p) = explicit {
            if p.components().count() > 1 {
                return if executable(p) {
                    Ok(p.clone())
                } else {
                    Err(format!("{var}={} is not an executable file", p.display()))
                };
            }
            return dirs
                .iter()
                .map(|d| d.join(p))
                .find(|c| executable(c))
                .ok_or_else(|| format!("{var}={}: not found in PATH or /opt/bin", p.display()));
        }
        dirs.iter()
            .flat_map(|d| names.iter().map(move |n| d.join(n)))
            .find(|c| executable(c))
            .ok_or_else(|| {
                format!(
                    "no {} interpreter in PATH or /opt/bin; set {var} (on Lambda: a managed {} runtime with ProPack's exec wrapper, or an interpreter layer)",
                    names[0],
                    match runtime {
                        HandlerRuntime::Python3 => "python3.x",
                        HandlerRuntime::Node => "nodejs",
                    }
                )
            })
    }
}

/// A handler failure as Lambda reports it: `errorType`, `errorMessage`, `stackTrace`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HandlerFailure {
    /// E.g. `ValueError`, `Runtime.ImportModuleError`.
    pub error_type: String,
    /// The message.
    pub message: String,
    /// Frames, if any.
    pub stack_trace: Option<Vec<String>>,
}

impl HandlerFailure {
    /// A failure without a stack trace.
    pub fn new(error_type: impl Into<String>, message: impl Into<String>) -> Self {
        Self {
            error_type: error_type.into(),
            message: message.into(),
            stack_trace: None,
        }
    }

    fn from_message(msg: &Value, fallback_type: &str) -> Self {
        let trace: Option<Vec<String>> = msg
            .get("stackTrace")
            .and_then(Value::as_array)
            .filter(|a| !a.is_empty())
            .map(|a| {
                a.iter()
                    .map(|f| f.as_str().map_or_else(|| f.to_string(), str::to_owned))
                    .collect()
            });
        Self {
            error_type: msg
                .get("errorType")
                .and_then(Value::as_str)
                .unwrap_or(fallback_type)
                .to_owned(),
            message: msg
                .get("errorMessage")
                .and_then(Value::as_str)
                .unwrap_or("")
                .to_owned(),
            stack_trace: trace,
        }
    }
}

/// Everything a handler call needs from the invocation.
#[derive(Debug, Clone)]
pub struct HandlerEnv {
    /// Where the handler's code lives (`LAMBDA_TASK_ROOT`).
    pub task_root: PathBuf,
    /// Where the worker scripts are written.
    pub scratch_root: PathBuf,
    /// Interpreters and start-up bound.
    pub settings: HandlerSettings,
    /// Function facts for `context`.
    pub function: FunctionInfo,
    /// The invocation's function ARN, if the platform said.
    pub invoked_function_arn: Option<String>,
}

/// One handler task.
#[derive(Debug, Clone, Copy)]
pub struct HandlerCall<'a> {
    /// The task id (the handler's `aws_request_id`).
    pub task_id: &'a str,
    /// The event.
    pub event: &'a Value,
    /// The resolved handler.
    pub handler: &'a HandlerRef,
    /// The task's scratch directory (`PROPACK_SCRATCH`).
    pub scratch: &'a Path,
    /// The task's own timeout.
    pub timeout_ms: Option<u64>,
    /// The invocation deadline minus the safety margin.
    pub cutoff: Option<Instant>,
    /// Most workers this pool may start (the batch's parallelism).
    pub workers: usize,
}

/// How a handler task ended.
#[derive(Debug, Clone, PartialEq)]
pub struct HandlerOutcome {
    /// Outcome.
    pub status: TaskStatus,
    /// The handler's return value.
    pub output: Value,
    /// `errorMessage` or the runtime's reason.
    pub error: Option<String>,
    /// `errorType`.
    pub error_type: Option<String>,
    /// `stackTrace`.
    pub stack_trace: Option<Vec<String>>,
    /// Exit code of a worker that exited during the task.
    pub exit_code: Option<i32>,
    /// Signal that ended the worker during the task.
    pub signal: Option<i32>,
    /// CPU time of the worker during the task.
    pub cpu_ms: Option<u64>,
    /// Peak RSS of the worker so far.
    pub max_rss_kb: Option<u64>,
    /// The task's stdout tail.
    pub stdout_tail: String,
    /// The task's stderr tail.
    pub stderr_tail: String,
}

impl HandlerOutcome {
    fn new(status: TaskStatus) -> Self {
        Self {
            status,
            output: Value::Null,
            error: None,
            error_type: None,
            stack_trace: None,
            exit_code: None,
            signal: None,
            cpu_ms: None,
            max_rss_kb: None,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
        }
    }

    /// A failed task carrying `f`.
    pub fn failed(f: HandlerFailure) -> Self {
        let mut o = Self::new(TaskStatus::Failed);
        o.error = Some(f.message);
        o.error_type = Some(f.error_type);
        o.stack_trace = f.stack_trace;
        o
    }

    fn timed_out(why: String) -> Self {
        let mut o = Self::new(TaskStatus::TimedOut);
        o.error = Some(why);
        o
    }
}

#[derive(Debug, Clone, PartialEq, Eq, Hash)]
struct PoolKey {
    runtime: HandlerRuntime,
    name: String,
    task_root: PathBuf,
}

#[derive(Debug, Default)]
struct PoolState {
    idle: Vec<Worker>,
    /// Idle, busy and starting workers.
    live: usize,
    starting: usize,
    /// Some worker reached `ready`: starting several at once is safe.
    proven: bool,
    failure: Option<HandlerFailure>,
    started: u64,
    inits: u64,
}

#[derive(Debug)]
struct Pool {
    key: PoolKey,
    state: Mutex<PoolState>,
    cv: Condvar,
}

enum Checkout {
    Warm(Worker),
    Start,
    Failed(HandlerFailure),
    Cutoff,
}

impl Pool {
    fn lock(&self) -> MutexGuard<'_, PoolState> {
        self.state.lock().unwrap_or_else(|p| p.into_inner())
    }

    fn checkout(&self, cap: usize, cutoff: Option<Instant>) -> Checkout {
        let mut dead = Vec::new();
        let mut st = self.lock();
        let got = loop {
            if let Some(f) = &st.failure {
                break Checkout::Failed(f.clone());
            }
            while let Some(w) = st.idle.pop() {
                if w.alive() {
                    drop(st);
                    drop(dead);
                    return Checkout::Warm(w);
                }
                st.live -= 1;
                dead.push(w);
            }
            if st.live < cap && (st.proven || st.starting == 0) {
                st.live += 1;
                st.starting += 1;
                st.started += 1;
                break Checkout::Start;
            }
            let wait = match cutoff {
                Some(c) => {
                    let left = c.saturating_duration_since(Instant::now());
                    if left.is_zero() {
                        break Checkout::Cutoff;
                    }
                    left.min(Duration::from_millis(100))
                }
                None => Duration::from_millis(100),
            };
            st = self
                .cv
                .wait_timeout(st, wait)
                .unwrap_or_else(|p| p.into_inner())
                .0;
        };
        drop(st);
        // Reaping happens outside the lock.
        drop(dead);
        got
    }

    fn started(&self, ok: Result<(), Option<HandlerFailure>>) {
        let mut st = self.lock();
        st.starting -= 1;
        match ok {
            Ok(()) => {
                st.proven = true;
                st.inits += 1;
            }
            Err(cached) => {
                st.live -= 1;
                if cached.is_some() {
                    st.failure = cached;
                }
            }
        }
        drop(st);
        self.cv.notify_all();
    }

    fn checkin(&self, w: Worker, healthy: bool) {
        let mut st = self.lock();
        let dead = if healthy && w.alive() {
            st.idle.push(w);
            None
        } else {
            st.live -= 1;
            Some(w)
        };
        drop(st);
        self.cv.notify_all();
        drop(dead);
    }
}

/// A snapshot of one handler's worker pool.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PoolStats {
    /// The handler's language.
    pub runtime: HandlerRuntime,
    /// `module.function`.
    pub name: String,
    /// Its task root.
    pub task_root: PathBuf,
    /// Workers started (including those that failed to initialise).
    pub workers_started: u64,
    /// Workers that imported the handler and became ready: the handler's initialisations.
    pub inits: u64,
    /// Workers alive now (idle, busy or starting).
    pub live: usize,
    /// Idle workers now.
    pub idle: usize,
    /// The cached initialisation failure, if any.
    pub failure: Option<HandlerFailure>,
}

/// The worker pools of one instance, one per (runtime, handler, task root). Dropping it
/// kills the idle workers; busy ones are killed when their task returns them.
#[derive(Debug, Default)]
pub struct WorkerPools {
    pools: Mutex<HashMap<PoolKey, Arc<Pool>>>,
}

impl WorkerPools {
    /// No pools yet.
    pub fn new() -> Self {
        Self::default()
    }

    /// The pools of [`run_batch`](super::run_batch) callers that bring none.
    pub fn global() -> &'static Arc<WorkerPools> {
        static GLOBAL: OnceLock<Arc<WorkerPools>> = OnceLock::new();
        GLOBAL.get_or_init(|| Arc::new(WorkerPools::new()))
    }

    fn pool(&self, handler: &HandlerRef, task_root: &Path) -> Arc<Pool> {
        let key = PoolKey {
            runtime: handler.runtime,
            name: handler.name.clone(),
            task_root: task_root.to_path_buf(),
        };
        let mut pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        Arc::clone(pools.entry(key.clone()).or_insert_with(|| {
            Arc::new(Pool {
                key,
                state: Mutex::new(PoolState::default()),
                cv: Condvar::new(),
            })
        }))
    }

    /// One entry per pool, sorted by handler name.
    pub fn stats(&self) -> Vec<PoolStats> {
        let pools = self.pools.lock().unwrap_or_else(|p| p.into_inner());
        let mut out: Vec<PoolStats> = pools
            .values()
            .map(|p| {
                let st = p.lock();
                PoolStats {
                    runtime: p.key.runtime,
                    name: p.key.name.clone(),
                    task_root: p.key.task_root.clone(),
                    workers_started: st.started,
                    inits: st.inits,
                    live: st.live,
                    idle: st.idle.len(),
                    failure: st.failure.clone(),
                }
            })
            .collect();
        out.sort_by(|a, b| (&a.name, a.runtime).cmp(&(&b.name, b.runtime)));
        out
    }

    /// Runs one handler task on a warm worker of its pool, starting one if none is idle
    /// and the pool has fewer than `call.workers`. Blocking; never panics on task failures.
    pub fn run(&self, env: &HandlerEnv, call: &HandlerCall<'_>) -> HandlerOutcome {
        let pool = self.pool(call.handler, &env.task_root);
        let mut worker = match pool.checkout(call.workers.max(1), call.cutoff) {
            Checkout::Warm(w) => w,
            Checkout::Failed(f) => return HandlerOutcome::failed(f),
            Checkout::Cutoff => {
                return HandlerOutcome::timed_out(
                    "still waiting for a free handler worker at the invocation deadline (minus the safety margin)"
                        .into(),
                );
            }
            Checkout::Start => match Worker::start(&pool.key, env, call.cutoff) {
                Ok(w) => {
                    pool.started(Ok(()));
                    w
                }
                Err(e) => {
                    let e = *e;
                    pool.started(Err(e.cache.then(|| e.failure.clone()).flatten()));
                    let mut o = match e.failure {
                        Some(f) => HandlerOutcome::failed(f),
                        None => HandlerOutcome::timed_out(
                            "the handler was still initialising at the invocation deadline (minus the safety margin); worker killed"
                                .into(),
                        ),
                    };
                    o.stdout_tail = e.stdout_tail;
                    o.stderr_tail = e.stderr_tail;
                    o.exit_code = e.exit_code;
                    o.signal = e.signal;
                    return o;
                }
            },
        };
        let (outcome, healthy) = worker.call(env, call);
        pool.checkin(worker, healthy);
        outcome
    }
}

/// Why a worker did not become ready.
struct StartError {
    /// None: the invocation cutoff came first (not the handler's fault, not cached).
    failure: Option<HandlerFailure>,
    /// Cache the failure for the pool.
    cache: bool,
    stdout_tail: String,
    stderr_tail: String,
    exit_code: Option<i32>,
    signal: Option<i32>,
}

impl StartError {
    fn fail(error_type: &str, message: String, cache: bool) -> Box<Self> {
        Box::new(Self {
            failure: Some(HandlerFailure::new(error_type, message)),
            cache,
            stdout_tail: String::new(),
            stderr_tail: String::new(),
            exit_code: None,
            signal: None,
        })
    }
}

/// One of a worker's output pipes and the bytes read from it that no task has claimed yet.
#[derive(Debug)]
struct Stream {
    file: Option<File>,
    held: Vec<u8>,
}

impl Stream {
    /// Reads what is available (at most a few chunks, so other pipes get their turn).
    fn fill(&mut self, buf: &mut [u8]) {
        let Some(f) = &mut self.file else { return };
        for _ in 0..16 {
            match f.read(buf) {
                Ok(0) => {
                    self.file = None;
                    return;
                }
                Ok(n) => self.held.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.file = None;
                    return;
                }
            }
        }
    }

    /// Between tasks nobody scans: keep only what could still show in a tail.
    fn trim(&mut self) {
        let keep = 2 * OUTPUT_TAIL_BYTES;
        if self.held.len() > keep {
            self.held.drain(..self.held.len() - keep);
        }
    }
}

/// A task's view of one output stream: its bounded tail, cut at the task's marker.
struct MarkerTail<'m> {
    marker: &'m [u8],
    tail: Tail,
    found: bool,
}

impl<'m> MarkerTail<'m> {
    fn new(marker: &'m [u8]) -> Self {
        Self {
            marker,
            tail: Tail::default(),
            found: false,
        }
    }

    /// Moves `held` into the tail up to the marker; bytes after it stay for the next task.
    /// A suffix that may be the start of a marker split across reads stays held.
    fn feed(&mut self, held: &mut Vec<u8>) {
        if self.found {
            return;
        }
        let m = self.marker;
        if let Some(pos) = held.windows(m.len()).position(|w| w == m) {
            self.tail.push(&held[..pos]);
            held.drain(..pos + m.len());
            self.found = true;
        } else {
            let cut = held.len().saturating_sub(m.len() - 1);
            self.tail.push(&held[..cut]);
            held.drain(..cut);
        }
    }

    /// The tail; a task that ended without its marker also owns whatever is held.
    fn finish(mut self, held: &mut Vec<u8>) -> String {
        if !self.found {
            self.tail.push(held);
            held.clear();
        }
        self.tail.into_string()
    }
}

/// A worker process and the runtime's ends of its pipes.
#[derive(Debug)]
struct Worker {
    pid: libc::pid_t,
    pidfd: Option<OwnedFd>,
    req: File,
    resp: Option<File>,
    out: Stream,
    err: Stream,
    /// Unsent bytes of the current request.
    pending: Vec<u8>,
    /// Response bytes not yet split into lines.
    resp_buf: Vec<u8>,
    /// Set once reaped: (wait status, CPU ms, peak RSS KiB) from wait4.
    reaped: Option<(i32, u64, u64)>,
}

/// How a task's I/O loop ended.
enum CallEnd {
    Result(Value),
    Exited,
    Killed(KillReason),
}

fn pipe_cloexec() -> io::Result<(OwnedFd, OwnedFd)> {
    let mut fds = [0 as RawFd; 2];
    // SAFETY: pipe2 fills two descriptors on success; we own both afterwards.
    unsafe {
        if libc::pipe2(fds.as_mut_ptr(), libc::O_CLOEXEC) != 0 {
            return Err(io::Error::last_os_error());
        }
        Ok((OwnedFd::from_raw_fd(fds[0]), OwnedFd::from_raw_fd(fds[1])))
    }
}

/// Spawns from one long-lived thread: the workers' parent-death signal fires when the
/// spawning *thread* ends, and the executor's own threads end with every batch.
fn spawn_detached(cmd: Command) -> io::Result<std::process::Child> {
    type Job = (Command, mpsc::Sender<io::Result<std::process::Child>>);
    static TX: OnceLock<Mutex<mpsc::Sender<Job>>> = OnceLock::new();
    let tx = TX.get_or_init(|| {
        let (tx, rx) = mpsc::channel::<Job>();
        let _ = std::thread::Builder::new()
            .name("propack-spawner".into())
            .spawn(move || {
                for (mut cmd, reply) in rx {
                    let _ = reply.send(cmd.spawn());
                }
            });
        Mutex::new(tx)
    });
    let (reply, answer) = mpsc::channel();
    let sent = tx
        .lock()
        .unwrap_or_else(|p| p.into_inner())
        .send((cmd, reply));
    match sent {
        Ok(()) => answer
            .recv()
            .unwrap_or_else(|_| Err(io::Error::other("the spawner thread ended"))),
        // No spawner thread: spawn here; the worker then dies with this thread.
        Err(mpsc::SendError((mut cmd, _))) => cmd.spawn(),
    }
}

/// Writes the embedded worker script for `runtime` under `scratch_root` once per process.
fn ensure_script(scratch_root: &Path, runtime: HandlerRuntime) -> io::Result<PathBuf> {
    static WRITTEN: Mutex<Vec<PathBuf>> = Mutex::new(Vec::new());
    let (name, text) = match runtime {
        HandlerRuntime::Python3 => ("propack_worker.py", PYTHON_WORKER),
        HandlerRuntime::Node => ("propack_worker.mjs", NODE_WORKER),
    };
    // Versioned by content, so runtimes of different builds sharing /tmp do not clash.
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in PYTHON_WORKER.bytes().chain(NODE_WORKER.bytes()) {
        h = (h ^ u64::from(b)).wrapping_mul(0x0100_0000_01b3);
    }
    let dir = scratch_root.join(format!("propack-workers-{h:016x}"));
    let path = dir.join(name);
    let mut written = WRITTEN.lock().unwrap_or_else(|p| p.into_inner());
    if written.contains(&path) {
        return Ok(path);
    }
    if std::fs::read(&path).ok().as_deref() != Some(text.as_bytes()) {
        std::fs::create_dir_all(&dir)?;
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, text)?;
        std::fs::rename(&tmp, &path)?;
    }
    written.push(path.clone());
    Ok(path)
}

/// A fresh marker per task: random, so no handler output can fake one.
fn new_marker() -> String {
    static N: AtomicU64 = AtomicU64::new(0);
    let mut a = std::collections::hash_map::RandomState::new().build_hasher();
    a.write_u64(N.fetch_add(1, Ordering::Relaxed));
    a.write_u64(epoch_ms());
    let mut b = std::collections::hash_map::RandomState::new().build_hasher();
    b.write_u64(a.finish());
    format!(
        "\u{1e}propack-end-of-task-{:016x}{:016x}\u{1e}",
        a.finish(),
        b.finish()
    )
}

/// User + system CPU of `pid` and its reaped children, from `/proc/PID/stat`.
fn proc_cpu_ms(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = s.get(s.rfind(')')? + 2..)?;
    let fields: Vec<&str> = rest.split_whitespace().collect();
    // `rest` starts at field 3 (state); utime, stime, cutime, cstime are fields 14-17.
    let ticks: u64 = fields
        .get(11..15)?
        .iter()
        .map(|f| f.parse::<u64>().unwrap_or(0))
        .sum();
    // SAFETY: sysconf has no memory effects.
    let hz = unsafe { libc::sysconf(libc::_SC_CLK_TCK) }.max(1) as u64;
    Some(ticks * 1000 / hz)
}

/// Peak RSS of `pid` (`VmHWM`), in KiB.
fn proc_hwm_kb(pid: libc::pid_t) -> Option<u64> {
    let s = std::fs::read_to_string(format!("/proc/{pid}/status")).ok()?;
    s.lines()
        .find_map(|l| l.strip_prefix("VmHWM:"))
        .and_then(|v| v.trim().trim_end_matches("kB").trim().parse().ok())
}

fn until_ms(t: Instant) -> i32 {
    t.saturating_duration_since(Instant::now())
        .as_millis()
        .min(i32::MAX as u128 - 1) as i32
        + 1
}

impl Worker {
    /// Starts a worker for `key` and waits until it has imported the handler.
    fn start(
        key: &PoolKey,
        env: &HandlerEnv,
        cutoff: Option<Instant>,
    ) -> Result<Self, Box<StartError>> {
        if !key.task_root.is_dir() {
            return Err(StartError::fail(
                "Runtime.ImportModuleError",
                format!(
                    "Unable to import module for handler {:?}: the task root {} is not a directory (set LAMBDA_TASK_ROOT)",
                    key.name,
                    key.task_root.display()
                ),
                true,
            ));
        }
        let interpreter = env
            .settings
            .interpreter(key.runtime)
            .map_err(|m| StartError::fail("Runtime.InvalidEntrypoint", m, true))?;
        let script = ensure_script(&env.scratch_root, key.runtime).map_err(|e| {
            StartError::fail(
                "Runtime.InvalidEntrypoint",
                format!(
                    "cannot write the {} worker script under {}: {e}",
                    key.runtime,
                    env.scratch_root.display()
                ),
                false,
            )
        })?;
        let io_fail = |what: &str, e: io::Error| {
            StartError::fail("Runtime.InvalidEntrypoint", format!("{what}: {e}"), false)
        };
        let (req_r, req_w) = pipe_cloexec().map_err(|e| io_fail("creating a pipe", e))?;
        let (resp_r, resp_w) = pipe_cloexec().map_err(|e| io_fail("creating a pipe", e))?;
        let (child_in, child_out) = (req_r.as_raw_fd(), resp_w.as_raw_fd());
        let parent = std::process::id() as libc::pid_t;
        let mut cmd = Command::new(&interpreter);
        cmd.arg(&script)
            .arg(&key.task_root)
            .arg(&key.name)
            .env("PROPACK_WORKER_FDS", format!("{child_in},{child_out}"))
            .env("LAMBDA_TASK_ROOT", &key.task_root)
            .env("_HANDLER", &key.name)
            .current_dir(&key.task_root)
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped())
            // Own process group, so a timeout kills what the handler started too.
            .process_group(0);
        // SAFETY: the closure runs between fork and exec and only makes async-signal-safe
        // calls (fcntl, prctl, getppid, _exit) on plain integers it captured.
        unsafe {
            cmd.pre_exec(move || {
                // The child's copies of the protocol pipes must survive exec.
                for fd in [child_in, child_out] {
                    if libc::fcntl(fd, libc::F_SETFD, 0) < 0 {
                        return Err(io::Error::last_os_error());
                    }
                }
                // A worker must not outlive the runtime (a hung handler would otherwise linger).
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
                if libc::getppid() != parent {
                    libc::_exit(0);
                }
                Ok(())
            });
        }
        let mut child = spawn_detached(cmd).map_err(|e| {
            StartError::fail(
                "Runtime.InvalidEntrypoint",
                format!("cannot execute {}: {e}", interpreter.display()),
                true,
            )
        })?;
        drop((req_r, resp_w));
        let pid = child.id() as libc::pid_t;
        let to_file = |p: Option<OwnedFd>| {
            p.map(File::from).inspect(|f| {
                let _ = set_nonblocking(f.as_raw_fd());
            })
        };
        let out = to_file(child.stdout.take().map(OwnedFd::from));
        let err = to_file(child.stderr.take().map(OwnedFd::from));
        let req = File::from(req_w);
        let resp = File::from(resp_r);
        for fd in [req.as_raw_fd(), resp.as_raw_fd()] {
            let _ = set_nonblocking(fd);
        }
        let w = Worker {
            pid,
            pidfd: pidfd_open(pid),
            req,
            resp: Some(resp),
            out: Stream {
                file: out,
                held: Vec::new(),
            },
            err: Stream {
                file: err,
                held: Vec::new(),
            },
            pending: Vec::new(),
            resp_buf: Vec::new(),
            reaped: None,
        };
        let init_until = Instant::now() + env.settings.init_timeout;
        let until = match cutoff {
            Some(c) if c < init_until => c,
            _ => init_until,
        };
        w.wait_ready(
            until,
            cutoff.is_some_and(|c| c <= init_until),
            &key.name,
            env.settings.init_timeout,
        )
    }

    /// Waits for `ready`; on anything else the worker is killed and the reason returned.
    fn wait_ready(
        mut self,
        until: Instant,
        until_is_cutoff: bool,
        name: &str,
        init_timeout: Duration,
    ) -> Result<Self, Box<StartError>> {
        let mut buf = vec![0u8; 64 * 1024];
        let failure = loop {
            self.out.fill(&mut buf);
            self.err.fill(&mut buf);
            self.out.trim();
            self.err.trim();
            self.read_resp(&mut buf);
            if let Some(msg) = self.next_message() {
                match msg.get("type").and_then(Value::as_str) {
                    Some("ready") => return Ok(self),
                    Some("init_error") => {
                        break Some((HandlerFailure::from_message(&msg, "Runtime.Unknown"), true));
                    }
                    _ => {
                        break Some((
                            HandlerFailure::new(
                                "Runtime.InvalidEntrypoint",
                                format!("handler worker sent {msg} before `ready`"),
                            ),
                            true,
                        ));
                    }
                }
            }
            if has_exited(self.pid) {
                // What it wrote just before exiting (an init_error) wins over the bare exit.
                self.out.fill(&mut buf);
                self.err.fill(&mut buf);
                self.read_resp(&mut buf);
                if let Some(msg) = self.next_message()
                    && msg.get("type").and_then(Value::as_str) == Some("init_error")
                {
                    break Some((HandlerFailure::from_message(&msg, "Runtime.Unknown"), true));
                }
                break None;
            }
            if Instant::now() >= until {
                if until_is_cutoff {
                    let (out, err) = self.take_tails();
                    return Err(Box::new(StartError {
                        failure: None,
                        cache: false,
                        stdout_tail: out,
                        stderr_tail: err,
                        exit_code: None,
                        signal: None,
                    }));
                }
                break Some((
                    HandlerFailure::new(
                        "Runtime.InitTimeout",
                        format!(
                            "handler {name:?} did not finish initialising within {} ms (PROPACK_HANDLER_INIT_TIMEOUT_MS)",
                            init_timeout.as_millis()
                        ),
                    ),
                    true,
                ));
            }
            self.wait(true, true, Some(until));
        };
        let status = self.kill_and_reap();
        let (stdout_tail, stderr_tail) = self.take_tails();
        let (failure, cache, exit_code, signal) = match failure {
            Some((f, cache)) => (f, cache, None, None),
            // The worker ended by itself before saying why: report how.
            None => {
                let (code, sig, what) = describe_exit(status);
                let f = HandlerFailure::new(
                    "Runtime.ExitError",
                    format!("Runtime exited with error: {what} (while initialising the handler)"),
                );
                (f, true, code, sig)
            }
        };
        Err(Box::new(StartError {
            failure: Some(failure),
            cache,
            stdout_tail,
            stderr_tail,
            exit_code,
            signal,
        }))
    }

    fn take_tails(&mut self) -> (String, String) {
        let t = |s: &mut Stream| {
            let mut tail = Tail::default();
            tail.push(&s.held);
            s.held.clear();
            tail.into_string()
        };
        (t(&mut self.out), t(&mut self.err))
    }

    fn alive(&self) -> bool {
        self.reaped.is_none() && !has_exited(self.pid)
    }

    fn read_resp(&mut self, buf: &mut [u8]) {
        let Some(f) = &mut self.resp else { return };
        loop {
            match f.read(buf) {
                Ok(0) => {
                    self.resp = None;
                    return;
                }
                Ok(n) => self.resp_buf.extend_from_slice(&buf[..n]),
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => return,
                Err(_) => {
                    self.resp = None;
                    return;
                }
            }
        }
    }

    /// The next complete message line; a line that is not JSON is reported as such.
    fn next_message(&mut self) -> Option<Value> {
        let nl = self.resp_buf.iter().position(|b| *b == b'\n')?;
        let line: Vec<u8> = self.resp_buf.drain(..=nl).collect();
        Some(serde_json::from_slice(&line).unwrap_or_else(|e| {
            json!({"type": "garbled", "error": e.to_string(),
                   "line": String::from_utf8_lossy(&line[..line.len().min(200)])})
        }))
    }

    fn write_pending(&mut self) {
        while !self.pending.is_empty() {
            match self.req.write(&self.pending) {
                Ok(n) => {
                    self.pending.drain(..n);
                }
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                // WouldBlock: the pipe is full; EPIPE: the worker is gone (seen by has_exited).
                Err(_) => return,
            }
        }
    }

    /// Sleeps until a pipe is ready, the worker exits or `until` passes.
    fn wait(&self, want_out: bool, want_err: bool, until: Option<Instant>) {
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(5);
        let mut add = |fd: RawFd, events| {
            fds.push(libc::pollfd {
                fd,
                events,
                revents: 0,
            })
        };
        if want_out && let Some(f) = &self.out.file {
            add(f.as_raw_fd(), libc::POLLIN);
        }
        if want_err && let Some(f) = &self.err.file {
            add(f.as_raw_fd(), libc::POLLIN);
        }
        if let Some(f) = &self.resp {
            add(f.as_raw_fd(), libc::POLLIN);
        }
        if !self.pending.is_empty() {
            add(self.req.as_raw_fd(), libc::POLLOUT);
        }
        if let Some(p) = &self.pidfd {
            add(p.as_raw_fd(), libc::POLLIN);
        }
        let mut timeout = until.map_or(-1, until_ms);
        if self.pidfd.is_none() {
            // Without a pidfd an exit is noticed by polling.
            timeout = if timeout < 0 { 10 } else { timeout.min(10) };
        }
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout);
        }
    }

    /// Kills the worker's process group and reaps it; returns the wait status.
    fn kill_and_reap(&mut self) -> i32 {
        if let Some((status, _, _)) = self.reaped {
            return status;
        }
        killpg(self.pid);
        let (status, ru) = reap(self.pid);
        let tv_ms = |t: libc::timeval| t.tv_sec as u64 * 1000 + t.tv_usec as u64 / 1000;
        self.reaped = Some((
            status,
            tv_ms(ru.ru_utime) + tv_ms(ru.ru_stime),
            ru.ru_maxrss.max(0) as u64,
        ));
        status
    }

    /// CPU ms so far and peak RSS, from /proc while alive, from wait4 once reaped.
    fn usage(&self) -> (Option<u64>, Option<u64>) {
        match self.reaped {
            Some((_, cpu, rss)) => (Some(cpu), Some(rss)),
            None => (proc_cpu_ms(self.pid), proc_hwm_kb(self.pid)),
        }
    }

    /// Runs one task. Returns its outcome and whether the worker may serve another.
    fn call(&mut self, env: &HandlerEnv, call: &HandlerCall<'_>) -> (HandlerOutcome, bool) {
        let marker = new_marker();
        let now = Instant::now();
        let kill_at = kill_time(call.timeout_ms, call.cutoff, now);
        let deadline_ms = kill_at.map(|(at, _)| {
            epoch_ms() + at.saturating_duration_since(Instant::now()).as_millis() as u64
        });
        let f = &env.function;
        let req = json!({
            "id": call.task_id,
            "event": call.event,
            "marker": marker,
            "deadline_ms": deadline_ms,
            "scratch": call.scratch,
            "context": {
                "function_name": f.function_name,
                "function_version": f.function_version,
                // Lambda's own runtimes give the memory size as a string.
                "memory_limit_in_mb": f.memory_mb.map(|m| m.to_string()),
                "invoked_function_arn": env.invoked_function_arn,
                "log_group_name": f.log_group_name,
                "log_stream_name": f.log_stream_name,
            },
        });
        self.pending = serde_json::to_vec(&req).expect("a request always serialises");
        self.pending.push(b'\n');
        let cpu0 = self.usage().0;
        let mut out = MarkerTail::new(marker.as_bytes());
        let mut err = MarkerTail::new(marker.as_bytes());
        // Output since the last task (the import, for a new worker) belongs to this one.
        out.feed(&mut self.out.held);
        err.feed(&mut self.err.held);
        let mut buf = vec![0u8; 64 * 1024];
        let mut result: Option<Value> = None;
        let mut grace: Option<Instant> = None;
        let end = loop {
            self.write_pending();
            if !out.found {
                self.out.fill(&mut buf);
                out.feed(&mut self.out.held);
            }
            if !err.found {
                self.err.fill(&mut buf);
                err.feed(&mut self.err.held);
            }
            self.read_resp(&mut buf);
            while result.is_none()
                && let Some(msg) = self.next_message()
            {
                match msg.get("type").and_then(Value::as_str) {
                    Some("result") | Some("garbled") => result = Some(msg),
                    _ => {}
                }
            }
            if let Some(r) = &result {
                if out.found && err.found {
                    break CallEnd::Result(r.clone());
                }
                let g = *grace.get_or_insert_with(|| Instant::now() + MARKER_GRACE);
                if Instant::now() >= g || (self.out.file.is_none() && self.err.file.is_none()) {
                    break CallEnd::Result(r.clone());
                }
            }
            if has_exited(self.pid) {
                self.out.fill(&mut buf);
                out.feed(&mut self.out.held);
                self.err.fill(&mut buf);
                err.feed(&mut self.err.held);
                self.read_resp(&mut buf);
                if result.is_none()
                    && let Some(msg) = self.next_message()
                    && msg.get("type").and_then(Value::as_str) == Some("result")
                {
                    result = Some(msg);
                }
                match result.take() {
                    Some(r) => break CallEnd::Result(r),
                    None => break CallEnd::Exited,
                }
            }
            let now = Instant::now();
            if let Some((at, reason)) = kill_at
                && now >= at
            {
                break CallEnd::Killed(reason);
            }
            let until = match (kill_at.map(|k| k.0), grace) {
                (Some(a), Some(b)) => Some(a.min(b)),
                (a, b) => a.or(b),
            };
            self.wait(!out.found, !err.found, until);
        };

        let markers_ok = out.found && err.found;
        let mut o = HandlerOutcome::new(TaskStatus::Failed);
        let mut healthy = false;
        match end {
            CallEnd::Result(msg) => {
                let id_ok = msg.get("id").and_then(Value::as_str) == Some(call.task_id);
                let retire = msg.get("retire").and_then(Value::as_bool) == Some(true);
                healthy = id_ok && !retire && markers_ok && self.alive();
                if !id_ok {
                    o.error_type = Some("Runtime.InvalidResponse".into());
                    o.error = Some(format!(
                        "the handler worker broke the protocol: {}",
                        msg.to_string().chars().take(300).collect::<String>()
                    ));
                } else if msg.get("ok").and_then(Value::as_bool) == Some(true) {
                    o.status = TaskStatus::Succeeded;
                    o.output = msg.get("output").cloned().unwrap_or(Value::Null);
                } else {
                    let f = HandlerFailure::from_message(&msg, "Error");
                    o.error = Some(f.message);
                    o.error_type = Some(f.error_type);
                    o.stack_trace = f.stack_trace;
                }
            }
            CallEnd::Exited => {
                let (code, sig, what) = describe_exit(self.kill_and_reap());
                o.exit_code = code;
                o.signal = sig;
                o.error_type = Some("Runtime.ExitError".into());
                o.error = Some(format!(
                    "Runtime exited with error: {what}; the handler worker was replaced"
                ));
            }
            CallEnd::Killed(reason) => {
                o.signal = describe_exit(self.kill_and_reap()).1;
                o.status = TaskStatus::TimedOut;
                o.error = Some(match reason {
                    KillReason::TaskTimeout(ms) => format!(
                        "exceeded its timeout of {ms} ms; handler worker killed and replaced"
                    ),
                    KillReason::Deadline => "still running at the invocation deadline (minus the safety margin); handler worker killed and replaced".into(),
                });
            }
        }
        let (cpu1, rss) = self.usage();
        o.cpu_ms = cpu0.zip(cpu1).map(|(a, b)| b.saturating_sub(a));
        o.max_rss_kb = rss;
        o.stdout_tail = out.finish(&mut self.out.held);
        o.stderr_tail = err.finish(&mut self.err.held);
        (o, healthy)
    }
}

/// (exit code, signal, Lambda-style description) of a wait status.
fn describe_exit(status: i32) -> (Option<i32>, Option<i32>, String) {
    if libc::WIFEXITED(status) {
        let c = libc::WEXITSTATUS(status);
        (Some(c), None, format!("exit status {c}"))
    } else if libc::WIFSIGNALED(status) {
        let s = libc::WTERMSIG(status);
        (None, Some(s), format!("signal: {s} ({})", signal_name(s)))
    } else {
        (None, None, format!("wait status {status}"))
    }
}

impl Drop for Worker {
    fn drop(&mut self) {
        self.kill_and_reap();
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn marker_split_across_reads_cuts_the_tail_exactly() {
        let marker = "\u{1e}propack-end-of-task-0123\u{1e}";
        let all = format!("hello {marker}next task");
        // Every split point, including inside the marker.
        for cut in 0..=all.len() {
            let mut held = Vec::new();
            let mut t = MarkerTail::new(marker.as_bytes());
            held.extend_from_slice(&all.as_bytes()[..cut]);
            t.feed(&mut held);
            held.extend_from_slice(&all.as_bytes()[cut..]);
            t.feed(&mut held);
            assert!(t.found, "cut {cut}");
            assert_eq!(held, b"next task", "cut {cut}");
            assert_eq!(t.finish(&mut held), "hello ", "cut {cut}");
            // What followed the marker is still there for the next task.
            assert_eq!(held, b"next task");
        }
    }

    #[test]
    fn without_a_marker_everything_belongs_to_the_task() {
        let marker = b"\x1eMARKER\x1e";
        let mut t = MarkerTail::new(marker);
        let mut held = b"partial \x1eMAR".to_vec();
        t.feed(&mut held);
        // A possible marker prefix stays held until more bytes decide...
        assert_eq!(held.len(), marker.len() - 1);
        assert!(!t.found);
        // ...and a task that ended without its marker (a crash) gets it too.
        assert_eq!(t.finish(&mut held), "partial \u{1e}MAR");
        assert!(held.is_empty());
    }

    #[test]
    fn interpreter_lookup() {
        let dir = std::env::temp_dir().join(format!("propack-interp-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let exe = dir.join("python3.13");
        std::fs::write(&exe, "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        let plain = dir.join("not-executable");
        std::fs::write(&plain, "").unwrap();
        let s = HandlerSettings {
            python: Some(exe.clone()),
            node: Some(plain.clone()),
            ..HandlerSettings::default()
        };
        assert_eq!(s.interpreter(HandlerRuntime::Python3), Ok(exe));
        assert_eq!(
            s.interpreter(HandlerRuntime::Node),
            Err(format!(
                "PROPACK_NODE={} is not an executable file",
                plain.display()
            ))
        );
        let s = HandlerSettings {
            node: Some(PathBuf::from("no-such-node-binary")),
            ..HandlerSettings::default()
        };
        assert_eq!(
            s.interpreter(HandlerRuntime::Node),
            Err("PROPACK_NODE=no-such-node-binary: not found in PATH or /opt/bin".into())
        );
        let _ = std::fs::remove_dir_all(&dir);
    }

    #[test]
    fn default_handler_needs_name_and_language() {
        let mut f = FunctionInfo {
            handler: Some("app.handler".into()),
            handler_runtime_unknown: Some(
                "AWS_EXECUTION_ENV=AWS_Lambda_java21 names neither a Python nor a Node runtime"
                    .into(),
            ),
            ..FunctionInfo::default()
        };
        let e = f.default_handler().unwrap_err();
        assert_eq!(e.error_type, "Runtime.HandlerNotFound");
        assert_eq!(
            e.message,
            "no language for _HANDLER=\"app.handler\": AWS_EXECUTION_ENV=AWS_Lambda_java21 names neither a Python nor a Node runtime; set PROPACK_HANDLER_RUNTIME=python3|node or name the handler's runtime in the batch"
        );
        f.handler_runtime = Some(HandlerRuntime::Node);
        assert_eq!(
            f.default_handler(),
            Ok(HandlerRef {
                runtime: HandlerRuntime::Node,
                name: "app.handler".into()
            })
        );
    }

    #[test]
    fn wait_status_descriptions_match_lambda() {
        assert_eq!(
            describe_exit(3 << 8),
            (Some(3), None, "exit status 3".into())
        );
        assert_eq!(
            describe_exit(libc::SIGSEGV),
            (None, Some(11), "signal: 11 (SIGSEGV)".into())
        );
    }

    #[test]
    fn proc_readers_see_this_process() {
        let me = std::process::id() as libc::pid_t;
        assert!(proc_cpu_ms(me).is_some());
        assert!(proc_hwm_kb(me).is_some_and(|kb| kb > 0));
    }
}
