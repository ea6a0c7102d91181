//! The batch executor: runs a batch's k tasks on a bounded set of workers without losing any result.
//!
//! Workers are the threads of a per-batch rayon pool (so built-ins that use
//! rayon internally stay within the batch's worker bound). Each worker takes
//! the next task in batch order, fetches its inputs (or picks up what the
//! prefetcher already fetched), runs it, uploads its outputs on success and
//! removes its scratch directory. The calling thread collects results and, at
//! the deadline minus the safety margin, stops waiting: tasks never started
//! are `not_run`, tasks still running are `timed_out` (subprocess groups are
//! killed; a built-in thread cannot be killed and is abandoned).
//!
//! Handler tasks (`event`) run on warm Python/Node worker processes from a
//! [`WorkerPools`] ([`handler_pool`]): a batch's worker thread checks a worker out,
//! sends it the event and waits for its result, its output markers, its exit or
//! the task's kill time, whichever comes first.
//!
//! Before a task is fetched or started, the function's [`TaskPolicy`] may refuse it
//! (a `failed` record saying why). With the batch's `logs_prefix`, an exec task's whole
//! stdout/stderr also go to files beside its scratch directory, uploaded when it ends.

pub mod builtin;
pub mod cpus;
pub mod custom;
pub mod handler_pool;
pub mod policy;
pub mod process;
pub mod program;

use std::collections::BTreeMap;
use std::panic::{AssertUnwindSafe, catch_unwind};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU64, AtomicUsize, Ordering};
use std::sync::mpsc;
use std::sync::{Arc, Condvar, Mutex, OnceLock};
use std::time::{Duration, Instant};

use crate::contract::{
    Batch, BatchResult, DEFAULT_MAX_TASKS, HandlerRef, ParseOptions, SCHEMA_VERSION, Task,
    TaskAction, TaskResult, TaskStatus,
};
use crate::deadline::epoch_ms;
use crate::storage::Storage;
use crate::uri::ObjectUri;

pub use cpus::available_vcpus;
pub use custom::{BoxError, BuiltinTask, Builtins};
pub use handler_pool::{FunctionInfo, HandlerSettings, WorkerPools};
pub use policy::TaskPolicy;

/// Where Lambda puts the function's code, when `LAMBDA_TASK_ROOT` does not say.
pub const DEFAULT_TASK_ROOT: &str = "/var/task";

/// An executor setting from the environment is malformed.
#[derive(Debug, thiserror::Error)]
#[error("environment variable {var}={value:?}: {message}")]
pub struct ConfigError {
    /// The variable.
    pub var: &'static str,
    /// Its value.
    pub value: String,
    /// What is wrong with it.
    pub message: &'static str,
}

/// Default safety margin before the invocation deadline.
pub const DEFAULT_SAFETY_MARGIN: Duration = Duration::from_secs(2);

/// How to run batches.
#[derive(Debug, Clone)]
pub struct ExecutorConfig {
    /// Worker count; None = the vCPUs this process may use. A batch's own `parallelism` wins.
    pub parallelism: Option<usize>,
    /// When the platform kills the invocation, if known.
    pub deadline: Option<Instant>,
    /// Stop starting and kill running tasks this long before `deadline`.
    pub safety_margin: Duration,
    /// Parent of the per-task scratch directories.
    pub scratch_root: PathBuf,
    /// Largest accepted packing degree k.
    pub max_tasks: usize,
    /// How many queued tasks ahead of the workers get their inputs prefetched.
    pub prefetch_depth: usize,
    /// Keep scratch directories after tasks end (debugging).
    pub keep_scratch: bool,
    /// The function's code (`LAMBDA_TASK_ROOT`, default `/var/task`): where handler modules
    /// and relative exec programs are found.
    pub task_root: PathBuf,
    /// Handler interpreters and start-up bound.
    pub handlers: HandlerSettings,
    /// The function's configuration: default handler and `context` fields.
    pub function: FunctionInfo,
    /// The invocation's function ARN (per invocation, set by the front-end), for `context`.
    pub invoked_function_arn: Option<String>,
    /// Which tasks may run (`PROPACK_ALLOWED_PROGRAMS`, `PROPACK_BUILTINS_ONLY`).
    pub policy: TaskPolicy,
    /// The function's own cap on a result's size (`PROPACK_MAX_RESULT_BYTES`; the Lambda
    /// front-end's default is Lambda's response limit); a batch's `max_result_bytes` can only lower it.
    pub max_result_bytes: Option<u64>,
    /// Custom built-ins (a user's own `bootstrap`), looked up before the shipped ones.
    pub builtins: Builtins,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        Self {
            parallelism: None,
            deadline: None,
            safety_margin: DEFAULT_SAFETY_MARGIN,
            scratch_root: std::env::temp_dir(),
            max_tasks: DEFAULT_MAX_TASKS,
            prefetch_depth: 4,
            keep_scratch: false,
            task_root: PathBuf::from(DEFAULT_TASK_ROOT),
            handlers: HandlerSettings::default(),
            function: FunctionInfo::default(),
            invoked_function_arn: None,
            policy: TaskPolicy::default(),
            max_result_bytes: None,
            builtins: Builtins::default(),
        }
    }
}

fn env_num(var: &'static str) -> Result<Option<u64>, ConfigError> {
    match std::env::var(var) {
        Ok(v) if !v.trim().is_empty() => {
            v.trim().parse::<u64>().map(Some).map_err(|_| ConfigError {
                var,
                value: v,
                message: "expected a non-negative integer",
            })
        }
        _ => Ok(None),
    }
}

impl ExecutorConfig {
    /// Defaults overridden by `PROPACK_PARALLELISM`, `PROPACK_SAFETY_MARGIN_MS`,
    /// `PROPACK_SCRATCH_ROOT`, `PROPACK_MAX_TASKS`, `PROPACK_PREFETCH_DEPTH`,
    /// `PROPACK_KEEP_SCRATCH=1`, `PROPACK_MAX_RESULT_BYTES`, the [`TaskPolicy`]
    /// (`PROPACK_ALLOWED_PROGRAMS`, `PROPACK_BUILTINS_ONLY`), and for handler tasks `LAMBDA_TASK_ROOT`,
    /// `PROPACK_PYTHON`, `PROPACK_NODE`, `PROPACK_HANDLER_INIT_TIMEOUT_MS` and the
    /// function's configuration ([`FunctionInfo::from_env`]).
    pub fn from_env() -> Result<Self, ConfigError> {
        let mut cfg = Self::default();
        if let Some(p) = env_num("PROPACK_PARALLELISM")? {
            if p == 0 {
                return Err(ConfigError {
                    var: "PROPACK_PARALLELISM",
                    value: "0".into(),
                    message: "must be at least 1",
                });
            }
            cfg.parallelism = Some(p as usize);
        }
        if let Some(ms) = env_num("PROPACK_SAFETY_MARGIN_MS")? {
            cfg.safety_margin = Duration::from_millis(ms);
        }
        if let Some(m) = env_num("PROPACK_MAX_TASKS")? {
            cfg.max_tasks = (m as usize).max(1);
        }
        if let Some(d) = env_num("PROPACK_PREFETCH_DEPTH")? {
            cfg.prefetch_depth = d as usize;
        }
        if let Ok(root) = std::env::var("PROPACK_SCRATCH_ROOT")
            && !root.is_empty()
        {
            cfg.scratch_root = PathBuf::from(root);
        }
        cfg.keep_scratch = matches!(
            std::env::var("PROPACK_KEEP_SCRATCH").as_deref(),
            Ok("1" | "true")
        );
        let path_var = |var: &str| {
            std::env::var_os(var)
                .filter(|v| !v.is_empty())
                .map(PathBuf::from)
        };
        if let Some(root) = path_var("LAMBDA_TASK_ROOT") {
            cfg.task_root = root;
        }
        cfg.handlers.python = path_var("PROPACK_PYTHON");
        cfg.handlers.node = path_var("PROPACK_NODE");
        if let Some(ms) = env_num("PROPACK_HANDLER_INIT_TIMEOUT_MS")? {
            cfg.handlers.init_timeout = Duration::from_millis(ms.max(1));
        }
        cfg.function = FunctionInfo::from_env()?;
        cfg.policy = TaskPolicy::from_env()?;
        if let Some(b) = env_num("PROPACK_MAX_RESULT_BYTES")? {
            if b == 0 {
                return Err(ConfigError {
                    var: "PROPACK_MAX_RESULT_BYTES",
                    value: "0".into(),
                    message: "must be positive",
                });
            }
            cfg.max_result_bytes = Some(b);
        }
        Ok(cfg)
    }

    /// Parse options matching this configuration.
    pub fn parse_options(&self) -> ParseOptions {
        ParseOptions {
            max_tasks: self.max_tasks,
        }
    }

    /// When to stop: the deadline minus the safety margin.
    pub fn cutoff(&self) -> Option<Instant> {
        self.deadline.map(|d| {
            d.checked_sub(self.safety_margin)
                .unwrap_or_else(Instant::now)
        })
    }

    /// Workers for `batch`: its own `parallelism`, else this config's, else the vCPUs; never more than k.
    pub fn workers_for(&self, batch: &Batch) -> usize {
        batch
            .parallelism
            .or(self.parallelism)
            .unwrap_or_else(available_vcpus)
            .clamp(1, batch.tasks.len().max(1))
    }
}

/// Stable identifier of this process, so warm reuse of an instance is visible.
pub fn instance_id() -> &'static str {
    static ID: OnceLock<String> = OnceLock::new();
    ID.get_or_init(|| {
        use std::hash::{BuildHasher, Hasher};
        // RandomState is seeded from the OS: enough to tell instances apart.
        let mut h = std::collections::hash_map::RandomState::new().build_hasher();
        h.write_u64(epoch_ms());
        format!(
            "i-{:x}-{}-{:08x}",
            epoch_ms(),
            std::process::id(),
            h.finish() as u32
        )
    })
}

/// `AWS_LAMBDA_FUNCTION_MEMORY_SIZE`, if set.
pub fn memory_mb_from_env() -> Option<u64> {
    std::env::var("AWS_LAMBDA_FUNCTION_MEMORY_SIZE")
        .ok()
        .and_then(|s| s.trim().parse().ok())
}

/// A task's scratch directory and fetched inputs.
struct Prepared {
    scratch: PathBuf,
    inputs: BTreeMap<String, PathBuf>,
}

enum SlotState {
    Pending,
    Fetching,
    Ready(Result<Prepared, String>),
    Taken,
}

struct Slot {
    state: Mutex<SlotState>,
    ready: Condvar,
}

struct Shared {
    tasks: Vec<Task>,
    storage: Storage,
    scratch_root: PathBuf,
    scratch_tag: String,
    keep_scratch: bool,
    cutoff: Option<Instant>,
    next: AtomicUsize,
    stop: AtomicBool,
    slots: Vec<Slot>,
    /// Epoch ms each task started (0 = not started).
    started: Vec<AtomicU64>,
    /// The batch's default handler.
    batch_handler: Option<HandlerRef>,
    pools: Arc<WorkerPools>,
    handler_env: handler_pool::HandlerEnv,
    /// The batch's worker count (the bound of each handler pool).
    workers: usize,
    policy: TaskPolicy,
    /// Where full task logs go: `<logs_prefix>/<run_id>/` (with the batch's `logs_prefix`).
    logs_dir: Option<ObjectUri>,
    builtins: Builtins,
}

impl Shared {
    fn past_cutoff(&self) -> bool {
        self.stop.load(Ordering::Relaxed) || self.cutoff.is_some_and(|c| Instant::now() >= c)
    }

    fn prepare(&self, i: usize) -> Result<Prepared, String> {
        let task = &self.tasks[i];
        let scratch = self.scratch_root.join(format!("{}-{i}", self.scratch_tag));
        std::fs::create_dir_all(&scratch)
            .map_err(|e| format!("cannot create scratch directory {}: {e}", scratch.display()))?;
        let mut inputs = BTreeMap::new();
        for (name, uri) in &task.inputs {
            let dest = scratch.join(name);
            if let Err(e) = self.storage.fetch(uri, &dest) {
                self.cleanup(&scratch);
                return Err(format!("fetching input {name:?}: {e}"));
            }
            inputs.insert(name.clone(), dest);
        }
        Ok(Prepared { scratch, inputs })
    }

    fn cleanup(&self, scratch: &Path) {
        if !self.keep_scratch {
            let _ = std::fs::remove_dir_all(scratch);
        }
    }

    /// Prefetcher side: fetch task i unless a worker already claimed it.
    fn prefetch(&self, i: usize) {
        let slot = &self.slots[i];
        {
            let mut st = slot.state.lock().unwrap_or_else(|p| p.into_inner());
            if !matches!(*st, SlotState::Pending) {
                return;
            }
            *st = SlotState::Fetching;
        }
        let r = self.prepare(i);
        *slot.state.lock().unwrap_or_else(|p| p.into_inner()) = SlotState::Ready(r);
        slot.ready.notify_all();
    }

    /// Worker side: the prepared task, fetching it here if nobody has started to.
    fn take_prepared(&self, i: usize) -> Result<Prepared, String> {
        let slot = &self.slots[i];
        let mut st = slot.state.lock().unwrap_or_else(|p| p.into_inner());
        loop {
            match std::mem::replace(&mut *st, SlotState::Taken) {
                SlotState::Pending => {
                    drop(st);
                    return self.prepare(i);
                }
                SlotState::Fetching => {
                    *st = SlotState::Fetching;
                    st = slot.ready.wait(st).unwrap_or_else(|p| p.into_inner());
                }
                SlotState::Ready(r) => return r,
                // Only the collector's clean-up after the cutoff takes a slot
                // nobody dispatched; a panic here would abort the rayon pool.
                SlotState::Taken => return Err(NOT_RUN_MSG.to_owned()),
            }
        }
    }

    fn run_task(&self, i: usize) -> TaskResult {
        let task = &self.tasks[i];
        let mut res = TaskResult::not_run(&task.id, "");
        res.error = None;
        if let Err(why) = self.policy.check(&task.action) {
            // The prefetcher skips refused tasks, so nothing was fetched for this one.
            *self.slots[i]
                .state
                .lock()
                .unwrap_or_else(|p| p.into_inner()) = SlotState::Taken;
            res.status = TaskStatus::Failed;
            res.error = Some(why);
            let now = epoch_ms();
            res.started_at = Some(now);
            res.ended_at = Some(now);
            return res;
        }
        let prepared = match self.take_prepared(i) {
            Ok(p) => p,
            Err(e) => {
                res.status = TaskStatus::Failed;
                res.error = Some(e);
                let now = epoch_ms();
                res.started_at = Some(now);
                res.ended_at = Some(now);
                return res;
            }
        };
        if self.past_cutoff() {
            self.cleanup(&prepared.scratch);
            return TaskResult::not_run(&task.id, NOT_RUN_MSG);
        }
        let started = epoch_ms();
        self.started[i].store(started, Ordering::Relaxed);
        res.started_at = Some(started);
        let outputs: BTreeMap<String, PathBuf> = task
            .outputs
            .keys()
            .map(|n| (n.clone(), prepared.scratch.join(n)))
            .collect();
        match &task.action {
            TaskAction::Exec(spec) => {
                let kill_at = process::kill_time(task.timeout_ms, self.cutoff, Instant::now());
                let (logs, log_paths) = self.open_logs(i);
                let o = process::run_process_logged(
                    spec,
                    &task.id,
                    &prepared.scratch,
                    &self.handler_env.task_root,
                    kill_at,
                    logs,
                );
                res.status = o.status;
                res.exit_code = o.exit_code;
                res.signal = o.signal;
                res.cpu_ms = o.cpu_ms;
                res.max_rss_kb = o.max_rss_kb;
                res.stdout_tail = o.stdout_tail;
                res.stderr_tail = o.stderr_tail;
                res.error = o.error;
                res.logs_error = o.logs_error;
                self.upload_logs(&mut res, |n| LogSource::File(&log_paths[n]));
            }
            TaskAction::Builtin(spec) => {
                let t0 = Instant::now();
                let cpu0 = builtin::thread_cpu_time();
                let custom = BuiltinTask {
                    id: &task.id,
                    params: &spec.params,
                    scratch: &prepared.scratch,
                    inputs: &prepared.inputs,
                    outputs: &outputs,
                    deadline: process::kill_time(task.timeout_ms, self.cutoff, Instant::now())
                        .map(|(at, _)| at),
                };
                let r = catch_unwind(AssertUnwindSafe(|| {
                    match self.builtins.call(&spec.name, &custom) {
                        Some(r) => r.map_err(|e| {
                            format!("built-in {:?}: {}", spec.name, custom::error_chain(&*e))
                        }),
                        None => builtin::run(
                            &spec.name,
                            &spec.params,
                            &prepared.scratch,
                            &prepared.inputs,
                            &outputs,
                        )
                        .map_err(|e| e.to_string()),
                    }
                }));
                res.cpu_ms = Some((builtin::thread_cpu_time() - cpu0).as_millis() as u64);
                match r {
                    Ok(Ok(summary)) => {
                        res.status = TaskStatus::Succeeded;
                        res.summary = summary;
                    }
                    Ok(Err(e)) => {
                        res.status = TaskStatus::Failed;
                        res.error = Some(e);
                    }
                    Err(panic) => {
                        res.status = TaskStatus::Failed;
                        res.error = Some(format!(
                            "built-in {:?} panicked: {}",
                            spec.name,
                            panic_message(&*panic)
                        ));
                    }
                }
                // A thread cannot be killed safely, so a built-in's timeout is judged after the fact.
                if let Some(ms) = task.timeout_ms
                    && res.status == TaskStatus::Succeeded
                    && t0.elapsed() > Duration::from_millis(ms)
                {
                    res.status = TaskStatus::TimedOut;
                    res.error = Some(format!(
                        "built-in ran {} ms, over its timeout of {ms} ms",
                        t0.elapsed().as_millis()
                    ));
                }
            }
            TaskAction::Handler(h) => {
                let handler = match h.handler.as_ref().or(self.batch_handler.as_ref()) {
                    Some(r) => Ok(r.clone()),
                    None => self.handler_env.function.default_handler(),
                };
                let o = match handler {
                    Ok(handler) => self.pools.run(
                        &self.handler_env,
                        &handler_pool::HandlerCall {
                            task_id: &task.id,
                            event: &h.event,
                            handler: &handler,
                            scratch: &prepared.scratch,
                            timeout_ms: task.timeout_ms,
                            cutoff: self.cutoff,
                            workers: self.workers,
                        },
                    ),
                    Err(f) => handler_pool::HandlerOutcome::failed(f),
                };
                res.status = o.status;
                res.exit_code = o.exit_code;
                res.signal = o.signal;
                res.cpu_ms = o.cpu_ms;
                res.max_rss_kb = o.max_rss_kb;
                res.stdout_tail = o.stdout_tail;
                res.stderr_tail = o.stderr_tail;
                res.error = o.error;
                res.error_type = o.error_type;
                res.stack_trace = o.stack_trace;
                res.output = o.output;
                // Handler workers share their pipes across tasks, so what each task
                // printed is known only as its tail: that is its log.
                let tails = [res.stdout_tail.clone(), res.stderr_tail.clone()];
                self.upload_logs(&mut res, |n| LogSource::Bytes(tails[n].as_bytes()));
            }
        }
        if res.status == TaskStatus::Succeeded {
            for (name, uri) in &task.outputs {
                let path = &outputs[name];
                match self.storage.upload(path, uri) {
                    Ok(_) => {
                        res.outputs.insert(name.clone(), uri.clone());
                    }
                    Err(e) => {
                        res.status = TaskStatus::Failed;
                        res.error = Some(format!("uploading output {name:?}: {e}"));
                        break;
                    }
                }
            }
        }
        self.cleanup(&prepared.scratch);
        res.ended_at = Some(epoch_ms());
        res
    }
}

/// What a task's full log is: a file the process wrote to, or bytes in memory.
enum LogSource<'a> {
    File(&'a Option<PathBuf>),
    Bytes(&'a [u8]),
}

impl Shared {
    /// Opens the full-log files of task `i` next to its scratch directory (with a `logs_prefix`).
    fn open_logs(&self, i: usize) -> ([Option<std::fs::File>; 2], [Option<PathBuf>; 2]) {
        if self.logs_dir.is_none() {
            return ([None, None], [None, None]);
        }
        let mut files = [None, None];
        let mut paths = [None, None];
        for (n, ext) in LOG_STREAMS.iter().enumerate() {
            let path = self
                .scratch_root
                .join(format!("{}-{i}.{ext}", self.scratch_tag));
            match std::fs::File::create(&path) {
                Ok(f) => {
                    files[n] = Some(f);
                    paths[n] = Some(path);
                }
                Err(e) => tracing::warn!("cannot create the full log {}: {e}", path.display()),
            }
        }
        (files, paths)
    }

    /// Writes a task's logs under `<logs_prefix>/<run_id>/<task_id>.stdout|.stderr` and names
    /// them in its record; a failure is noted in `logs_error` and never changes the status.
    fn upload_logs<'a>(&self, res: &mut TaskResult, source: impl Fn(usize) -> LogSource<'a>) {
        let Some(dir) = &self.logs_dir else {
            return;
        };
        for (n, ext) in LOG_STREAMS.iter().enumerate() {
            let uri = dir
                .join(&format!("{}.{ext}", uri_segment(&res.id)))
                .to_string();
            let written = match source(n) {
                LogSource::File(Some(path)) => {
                    let r = self.storage.upload(path, &uri).map(|_| ());
                    if !self.keep_scratch {
                        let _ = std::fs::remove_file(path);
                    }
                    r.map_err(|e| e.to_string())
                }
                LogSource::File(None) => Err("the log file could not be created".to_owned()),
                LogSource::Bytes(b) => self.storage.put_bytes(&uri, b).map_err(|e| e.to_string()),
            };
            match written {
                Ok(()) if n == 0 => res.stdout_uri = Some(uri),
                Ok(()) => res.stderr_uri = Some(uri),
                Err(e) => {
                    res.logs_error
                        .get_or_insert_with(|| format!("writing {ext} to {uri}: {e}"));
                }
            }
        }
    }
}

const LOG_STREAMS: [&str; 2] = ["stdout", "stderr"];

/// `s` as one path segment of a log URI: ASCII letters, digits, `_`, `-` and `.` kept,
/// everything else (and a leading `.`, so never `.` or `..`) percent-encoded.
pub fn uri_segment(s: &str) -> String {
    let mut out = String::with_capacity(s.len());
    for (i, b) in s.bytes().enumerate() {
        if b.is_ascii_alphanumeric() || b == b'_' || b == b'-' || (b == b'.' && i > 0) {
            out.push(b as char);
        } else {
            out.push_str(&format!("%{b:02X}"));
        }
    }
    out
}

const NOT_RUN_MSG: &str =
    "not started: the invocation deadline (minus the safety margin) was reached first";

fn panic_message(p: &(dyn std::any::Any + Send)) -> String {
    if let Some(s) = p.downcast_ref::<&str>() {
        (*s).to_owned()
    } else if let Some(s) = p.downcast_ref::<String>() {
        s.clone()
    } else {
        "non-string panic payload".to_owned()
    }
}

/// Runs every task of `batch` and returns one result per task, in batch order.
///
/// Blocking; never panics on task failures. Instance-level fields
/// (`cold_start`, `init_ms`, `received_at`, `request_id`) are left for the
/// front-end to fill in; `instance_id` is this process's [`instance_id`].
/// Handler tasks use the process-wide [`WorkerPools::global`].
pub fn run_batch(batch: &Batch, cfg: &ExecutorConfig, storage: &Storage) -> BatchResult {
    run_batch_in(batch, cfg, storage, WorkerPools::global())
}

/// [`run_batch`] with handler workers from `pools` (an instance's own, kept warm across its invocations).
pub fn run_batch_in(
    batch: &Batch,
    cfg: &ExecutorConfig,
    storage: &Storage,
    pools: &Arc<WorkerPools>,
) -> BatchResult {
    let started_at = epoch_ms();
    let k = batch.tasks.len();
    let workers = cfg.workers_for(batch);
    let batch_seq = {
        static SEQ: AtomicU64 = AtomicU64::new(0);
        SEQ.fetch_add(1, Ordering::Relaxed)
    };
    let shared = Arc::new(Shared {
        tasks: batch.tasks.clone(),
        storage: storage.clone(),
        scratch_root: cfg.scratch_root.clone(),
        scratch_tag: format!("propack-{}-{batch_seq}", std::process::id()),
        keep_scratch: cfg.keep_scratch,
        cutoff: cfg.cutoff(),
        next: AtomicUsize::new(0),
        stop: AtomicBool::new(false),
        slots: (0..k)
            .map(|_| Slot {
                state: Mutex::new(SlotState::Pending),
                ready: Condvar::new(),
            })
            .collect(),
        started: (0..k).map(|_| AtomicU64::new(0)).collect(),
        batch_handler: batch.handler.clone(),
        pools: Arc::clone(pools),
        handler_env: handler_pool::HandlerEnv {
            task_root: cfg.task_root.clone(),
            scratch_root: cfg.scratch_root.clone(),
            settings: cfg.handlers.clone(),
            function: cfg.function.clone(),
            invoked_function_arn: cfg.invoked_function_arn.clone(),
        },
        workers,
        policy: cfg.policy.clone(),
        logs_dir: batch
            .logs_prefix
            .as_deref()
            .and_then(|p| ObjectUri::parse(p).ok())
            .map(|p| {
                let run = batch.run_id.as_deref().filter(|r| !r.is_empty());
                p.join(&uri_segment(run.unwrap_or("unnamed-run")))
            }),
        builtins: cfg.builtins.clone(),
    });

    let mut results: Vec<Option<TaskResult>> = vec![None; k];
    let (tx, rx) = mpsc::channel::<(usize, TaskResult)>();
    match rayon::ThreadPoolBuilder::new()
        .num_threads(workers)
        .thread_name(|i| format!("propack-worker-{i}"))
        // Without a handler rayon aborts the process on a panic in a spawned job;
        // task code is already behind catch_unwind, this covers the executor's own.
        .panic_handler(|p| tracing::error!("executor worker panicked: {}", panic_message(&*p)))
        .build()
    {
        Ok(pool) => {
            for _ in 0..workers {
                let shared = Arc::clone(&shared);
                let tx = tx.clone();
                pool.spawn(move || worker_loop(&shared, &tx));
            }
            // Dropping the pool does not wait for the workers; they end on their own,
            // which is what lets this function return at the deadline.
        }
        Err(e) => {
            for (i, t) in batch.tasks.iter().enumerate() {
                let mut r = TaskResult::not_run(&t.id, format!("cannot start worker threads: {e}"));
                r.status = TaskStatus::Failed;
                results[i] = Some(r);
            }
        }
    }
    drop(tx);
    if batch.tasks.iter().any(|t| !t.inputs.is_empty()) && cfg.prefetch_depth > 0 {
        let shared = Arc::clone(&shared);
        let depth = cfg.prefetch_depth;
        let _ = std::thread::Builder::new()
            .name("propack-prefetch".into())
            .spawn(move || prefetch_loop(&shared, depth));
    }

    let mut pending = results.iter().filter(|r| r.is_none()).count();
    let cutoff = shared.cutoff;
    while pending > 0 {
        let msg = match cutoff {
            None => rx.recv().ok(),
            Some(c) => {
                // Subprocesses are killed at the cutoff and report right after;
                // give them a moment before giving up on what is still out.
                let grace = (cfg.safety_margin / 4).min(Duration::from_millis(500));
                let wait = (c + grace).saturating_duration_since(Instant::now());
                if wait.is_zero() {
                    None
                } else {
                    match rx.recv_timeout(wait) {
                        Ok(m) => Some(m),
                        Err(mpsc::RecvTimeoutError::Timeout) => None,
                        Err(mpsc::RecvTimeoutError::Disconnected) => None,
                    }
                }
            }
        };
        match msg {
            Some((i, r)) => {
                if results[i].is_none() {
                    pending -= 1;
                }
                results[i] = Some(r);
            }
            None => break,
        }
    }
    shared.stop.store(true, Ordering::Relaxed);
    // Inputs prefetched for tasks that never started would otherwise stay on disk.
    for slot in &shared.slots {
        let mut st = slot.state.lock().unwrap_or_else(|p| p.into_inner());
        if matches!(*st, SlotState::Ready(_))
            && let SlotState::Ready(Ok(p)) = std::mem::replace(&mut *st, SlotState::Taken)
        {
            shared.cleanup(&p.scratch);
        }
    }

    let tasks: Vec<TaskResult> = results
        .into_iter()
        .enumerate()
        .map(|(i, r)| {
            r.unwrap_or_else(|| {
                let id = &batch.tasks[i].id;
                let started = shared.started[i].load(Ordering::Relaxed);
                if started == 0 {
                    TaskResult::not_run(id, NOT_RUN_MSG)
                } else {
                    let mut r = TaskResult::not_run(
                        id,
                        "still running at the invocation deadline (minus the safety margin); abandoned",
                    );
                    r.status = TaskStatus::TimedOut;
                    r.started_at = Some(started);
                    r.ended_at = Some(epoch_ms());
                    r
                }
            })
        })
        .collect();

    BatchResult {
        schema_version: SCHEMA_VERSION,
        run_id: batch.run_id.clone(),
        batch_id: batch.batch_id.clone(),
        instance_id: instance_id().to_owned(),
        cold_start: false,
        init_ms: 0,
        received_at: started_at,
        started_at,
        ended_at: epoch_ms(),
        vcpus: available_vcpus(),
        parallelism: workers,
        memory_mb: memory_mb_from_env(),
        request_id: None,
        truncated: false,
        tasks,
    }
}

fn worker_loop(shared: &Shared, tx: &mpsc::Sender<(usize, TaskResult)>) {
    loop {
        let i = shared.next.fetch_add(1, Ordering::Relaxed);
        if i >= shared.tasks.len() {
            return;
        }
        if shared.past_cutoff() {
            // Everything still queued is not_run; the collector reports it.
            shared.stop.store(true, Ordering::Relaxed);
            return;
        }
        let r = shared.run_task(i);
        if tx.send((i, r)).is_err() {
            return;
        }
    }
}

fn prefetch_loop(shared: &Shared, depth: usize) {
    for i in 0..shared.tasks.len() {
        // Stay at most `depth` tasks ahead of dispatch: fetching everything up
        // front would fill the disk of a small instance.
        while i >= shared.next.load(Ordering::Relaxed) + depth {
            if shared.past_cutoff() {
                return;
            }
            std::thread::sleep(Duration::from_millis(2));
        }
        if shared.past_cutoff() {
            return;
        }
        if !shared.tasks[i].inputs.is_empty()
            && shared.policy.check(&shared.tasks[i].action).is_ok()
        {
            shared.prefetch(i);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    /// The executor stops at the deadline minus the safety margin, not at the deadline.
    #[test]
    fn cutoff_is_the_deadline_minus_the_margin() {
        let deadline = Instant::now() + Duration::from_secs(60);
        let cfg = ExecutorConfig {
            deadline: Some(deadline),
            safety_margin: Duration::from_millis(2_500),
            ..ExecutorConfig::default()
        };
        assert_eq!(cfg.cutoff(), Some(deadline - Duration::from_millis(2_500)));
        assert_eq!(ExecutorConfig::default().cutoff(), None);
    }

    #[test]
    fn workers_are_the_batch_s_then_the_config_s_and_at_most_k() {
        let batch = |parallelism: Option<usize>, k: usize| {
            Batch {
            parallelism,
            ..Batch::from_value(
                &serde_json::json!({"tasks": (0..k)
                    .map(|i| serde_json::json!({"id": format!("t{i}"), "builtin": {"name": "noop"}}))
                    .collect::<Vec<_>>()}),
                &ParseOptions::default(),
            )
            .unwrap()
        }
        };
        let cfg = ExecutorConfig {
            parallelism: Some(3),
            ..ExecutorConfig::default()
        };
        assert_eq!(cfg.workers_for(&batch(None, 8)), 3);
        assert_eq!(cfg.workers_for(&batch(Some(5), 8)), 5);
        assert_eq!(cfg.workers_for(&batch(Some(5), 2)), 2);
        assert_eq!(cfg.workers_for(&batch(Some(0), 2)), 1);
    }
}
