//! A Lambda emulator: function instances are real `bootstrap` processes served the Runtime API, created at the pace a platform profile allows.
//!
//! Each instance gets its own Runtime API listener on an ephemeral 127.0.0.1
//! port: that is how real Lambda isolates environments, and it lets the
//! platform attribute every `/next` poll to one instance without trusting the
//! runtime to identify itself.
//!
//! Scheduling follows Lambda, not a work queue: an invocation that finds no
//! idle instance of its function is bound to a *new* instance, which appears
//! when the profile's scaling rule allows (`arrival_s`) plus a sampled cold
//! start. It does not wait for a busy instance to free up, because that is
//! precisely the behaviour that makes C concurrent invocations take
//! `arrival_s(C)` to start on AWS. Only the account concurrency limit makes
//! invocations wait for (or, on the Invoke API, be throttled by) busy ones.

use std::collections::{BTreeMap, HashMap, VecDeque};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicBool, AtomicU32, AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use http::{Method, Request, Response, StatusCode};
use http_body_util::{BodyExt, Full};
use hyper::body::Incoming;
use hyper_util::rt::TokioIo;
use rand::{Rng, SeedableRng};
use tokio::sync::{Notify, mpsc, oneshot};

use propack_runtime::contract::headers;
use propack_runtime::limits::{LAMBDA_REQUEST_LIMIT, LAMBDA_RESPONSE_LIMIT};

use crate::function::{EXEC_WRAPPER_PATH, EXEC_WRAPPER_SCRIPT, EXEC_WRAPPER_VAR, LambdaRuntime};
use crate::platform::PlatformProfile;

/// Region reported to functions and used in ARNs.
pub const LOCAL_REGION: &str = "us-east-1";
/// Account id used in ARNs (the one every AWS emulator uses).
pub const LOCAL_ACCOUNT: &str = "000000000000";
/// How long an idle instance stays warm before the platform reclaims it (Lambda: minutes).
pub const DEFAULT_IDLE_TTL: Duration = Duration::from_secs(60);
/// How long a new instance may take from process start to its first `/next` poll (Lambda's init limit).
const INIT_TIMEOUT: Duration = Duration::from_secs(10);
/// The error code Lambda answers a synchronous request over [`LAMBDA_REQUEST_LIMIT`] with
/// (HTTP 413). The API model names `RequestTooLargeException`, but this is what Lambda
/// sends (aws/aws-sdk#45), so SDKs see an unmodelled error with this code.
pub const REQUEST_TOO_LARGE: &str = "RequestEntityTooLargeException";
/// The function error of an invocation whose response is over [`LAMBDA_RESPONSE_LIMIT`].
pub const RESPONSE_TOO_LARGE: &str = "Function.ResponseSizeTooLarge";

/// Lambda's `errorMessage` for [`RESPONSE_TOO_LARGE`].
fn response_too_large_message() -> String {
    format!(
        "Response payload size exceeded maximum allowed payload size ({LAMBDA_RESPONSE_LIMIT} bytes)."
    )
}

/// A function deployed on the emulator.
#[derive(Debug, Clone)]
pub struct FunctionConfig {
    /// Function name.
    pub name: String,
    /// The custom runtime executable (`bootstrap`).
    pub bootstrap: PathBuf,
    /// Memory size reported to the function, MB.
    pub memory_mb: u32,
    /// Invocation timeout, seconds; the instance is killed when it passes.
    pub timeout_s: f64,
    /// Extra environment variables (the function's configuration).
    pub env: BTreeMap<String, String>,
    /// Where each instance's stdout/stderr goes (`<instance>.log`); discarded when `None`.
    pub log_dir: Option<PathBuf>,
    /// The function's code directory, as `/var/task` on Lambda: instances get it (absolute) as
    /// `LAMBDA_TASK_ROOT` and working directory, so relative exec programs and handler
    /// modules resolve in it. `None`: the bootstrap's own directory.
    pub task_root: Option<PathBuf>,
    /// The function's runtime: on `provided.*` the instance is `bootstrap`; on a managed
    /// runtime it is the exec wrapper that the environment's `AWS_LAMBDA_EXEC_WRAPPER` names,
    /// given the runtime's start command, as Lambda runs it (the emulator has no
    /// language runtime client of its own).
    pub runtime: LambdaRuntime,
    /// The function's Handler, as `_HANDLER`.
    pub handler: String,
    /// The emulated `/opt` (the function's layer): `/opt/...` paths in
    /// `AWS_LAMBDA_EXEC_WRAPPER` resolve in it, and its `bootstrap` is the one the wrapper
    /// starts (see [`write_layer`]).
    pub layer: Option<PathBuf>,
}

impl FunctionConfig {
    /// A function using the profile's memory and timeout.
    pub fn new(
        name: impl Into<String>,
        bootstrap: impl Into<PathBuf>,
        profile: &PlatformProfile,
    ) -> Self {
        Self {
            name: name.into(),
            bootstrap: bootstrap.into(),
            memory_mb: profile.memory_mb,
            timeout_s: profile.timeout_s,
            env: BTreeMap::new(),
            log_dir: None,
            task_root: None,
            runtime: LambdaRuntime::ProvidedAl2023,
            handler: "bootstrap".into(),
            layer: None,
        }
    }

    /// The same function on a managed runtime with ProPack's layer at `layer` (see
    /// [`write_layer`]) and `AWS_LAMBDA_EXEC_WRAPPER` set as `deploy` sets it.
    pub fn with_managed_runtime(
        mut self,
        runtime: LambdaRuntime,
        handler: impl Into<String>,
        layer: impl Into<PathBuf>,
    ) -> Self {
        self.runtime = runtime;
        self.handler = handler.into();
        self.layer = Some(layer.into());
        self.env
            .entry(EXEC_WRAPPER_VAR.to_owned())
            .or_insert_with(|| EXEC_WRAPPER_PATH.to_owned());
        self
    }

    /// The same function with `dir` as its task root (see [`FunctionConfig::task_root`]).
    pub fn with_task_root(mut self, dir: impl Into<PathBuf>) -> Self {
        self.task_root = Some(dir.into());
        self
    }

    /// The function's ARN on the emulator.
    pub fn arn(&self) -> String {
        format!(
            "arn:aws:lambda:{LOCAL_REGION}:{LOCAL_ACCOUNT}:function:{}",
            self.name
        )
    }
}

/// How an instance process starts: its program, arguments and the environment it adds.
#[derive(Debug, Clone, PartialEq, Eq)]
struct StartCommand {
    program: PathBuf,
    args: Vec<String>,
    env: Vec<(String, String)>,
}

/// `bootstrap` on `provided.*`; on a managed runtime the exec wrapper with the interpreter
/// and the runtime's start arguments, as Lambda runs `AWS_LAMBDA_EXEC_WRAPPER`.
fn start_command(cfg: &FunctionConfig) -> Result<StartCommand, String> {
    // Absolute programs, since instances start in their task root.
    let absolute = |p: &Path| std::path::absolute(p).unwrap_or_else(|_| p.to_owned());
    if !cfg.runtime.is_managed() {
        return Ok(StartCommand {
            program: absolute(&cfg.bootstrap),
            args: Vec::new(),
            env: Vec::new(),
        });
    }
    let rt = cfg.runtime.as_str();
    let wrapper = cfg.env.get(EXEC_WRAPPER_VAR).ok_or_else(|| {
        format!(
            "runtime {rt} without {EXEC_WRAPPER_VAR}: the local platform has no {rt} runtime \
             client of its own and runs managed runtimes only through ProPack's exec wrapper"
        )
    })?;
    let mut env = Vec::new();
    let program = match (wrapper.strip_prefix("/opt/"), &cfg.layer) {
        (Some(rest), Some(layer)) => {
            // The wrapper's default /opt/bootstrap is the emulated layer's.
            env.push((
                "PROPACK_BOOTSTRAP".to_owned(),
                absolute(&layer.join("bootstrap")).display().to_string(),
            ));
            absolute(&layer.join(rest))
        }
        _ => PathBuf::from(wrapper),
    };
    let path = std::env::var_os("PATH").unwrap_or_default();
    let interpreter = cfg
        .runtime
        .interpreters()
        .iter()
        .find_map(|name| {
            std::env::split_paths(&path)
                .map(|dir| dir.join(name))
                .find(|p| p.is_file())
        })
        .ok_or_else(|| {
            format!(
                "runtime {rt}: none of {:?} is on PATH (the emulator starts the wrapper with it)",
                cfg.runtime.interpreters()
            )
        })?;
    let mut args = vec![interpreter.display().to_string()];
    args.extend(cfg.runtime.start_args().iter().map(|a| (*a).to_owned()));
    Ok(StartCommand { program, args, env })
}

/// Writes ProPack's layer as the emulated `/opt` into `dir`: `bootstrap` (a link to
/// `bootstrap`) and the exec wrapper, as `orchestrator package --layer` lays them out.
pub fn write_layer(dir: &Path, bootstrap: &Path) -> std::io::Result<()> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(dir)?;
    let link = dir.join("bootstrap");
    let _ = std::fs::remove_file(&link);
    std::os::unix::fs::symlink(std::path::absolute(bootstrap)?, &link)?;
    let wrapper = dir.join("propack-exec-wrapper");
    std::fs::write(&wrapper, EXEC_WRAPPER_SCRIPT)?;
    std::fs::set_permissions(&wrapper, std::fs::Permissions::from_mode(0o755))
}

/// What to do with an invocation when the account concurrency limit is reached.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum AtLimit {
    /// Wait for a busy instance to finish (Step Functions' view once its retries absorb throttling).
    Wait,
    /// Fail at once with [`InvokeError::Throttled`] (the Invoke API's 429).
    Throttle,
}

/// Why the platform could not run an invocation at all (no function code ran).
#[derive(Debug, thiserror::Error)]
pub enum InvokeError {
    /// No such function.
    #[error("function not found: {0}")]
    NotFound(String),
    /// The account concurrency limit is reached.
    #[error("rate exceeded: the account concurrency limit of {0} is reached")]
    Throttled(u32),
    /// The bootstrap could not be started.
    #[error("could not start an instance of {function} from {path}: {message}")]
    Spawn {
        /// Function name.
        function: String,
        /// Bootstrap path.
        path: String,
        /// OS error.
        message: String,
    },
    /// The platform was shut down.
    #[error("the local platform is shut down")]
    Shutdown,
    /// The run was stopped before this invocation got an instance (see [`LambdaPlatform::set_stop`]).
    #[error("not started: the run was interrupted")]
    NotStarted,
    /// The request payload is over [`LAMBDA_REQUEST_LIMIT`]; Lambda refuses it before
    /// anything runs ([`REQUEST_TOO_LARGE`], HTTP 413). The message is Lambda's.
    #[error(
        "Request must be smaller than {LAMBDA_REQUEST_LIMIT} bytes for the InvokeFunction operation"
    )]
    RequestTooLarge {
        /// Size of the refused payload.
        bytes: u64,
    },
}

/// How an invocation that reached the function ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvokeStatus {
    /// The function posted a response.
    Ok(Bytes),
    /// The function failed (error posted, crashed, killed, timed out, or failed to initialise);
    /// `body` is Lambda's `{"errorType", "errorMessage"}` JSON.
    FunctionError {
        /// Lambda's error type, e.g. `Runtime.ExitError`, `Sandbox.Timedout`.
        error_type: String,
        /// The error payload.
        body: Bytes,
    },
}

impl InvokeStatus {
    fn error(error_type: &str, message: &str) -> Self {
        let body = serde_json::json!({"errorType": error_type, "errorMessage": message});
        InvokeStatus::FunctionError {
            error_type: error_type.to_owned(),
            body: Bytes::from(body.to_string()),
        }
    }
}

/// One invocation as the platform saw it. Times are seconds since the platform's zero.
#[derive(Debug, Clone)]
pub struct Invocation {
    /// Lambda request id.
    pub request_id: String,
    /// Platform-assigned instance id (`i-0001`, …).
    pub instance_id: String,
    /// Whether a new instance was created for this invocation.
    pub cold_start: bool,
    /// Cold start: from the moment the scaling rule allowed the instance until its first poll, ms.
    pub init_ms: f64,
    /// When the invocation was requested.
    pub requested_s: f64,
    /// When the runtime received the event (handler start).
    pub start_s: f64,
    /// When the response (or failure) arrived.
    pub end_s: f64,
    /// The outcome.
    pub status: InvokeStatus,
}

/// A live instance, for inspection and fault injection.
#[derive(Debug, Clone)]
pub struct InstanceInfo {
    /// Platform-assigned id.
    pub id: String,
    /// Function it belongs to.
    pub function: String,
    /// OS process id of its bootstrap.
    pub pid: u32,
    /// Whether it is running an invocation.
    pub busy: bool,
}

struct Event {
    request_id: String,
    payload: Bytes,
    deadline_ms: u64,
}

/// Init outcome: `Err((errorType, errorMessage))` when the runtime failed to start.
type InitResult = Result<(), (String, String)>;

enum Completion {
    Response(Bytes),
    Error { error_type: String, body: Bytes },
    Exited(String),
}

struct Current {
    request_id: String,
    done: oneshot::Sender<Completion>,
}

/// State shared between an instance's Runtime API server, its process watcher and the dispatcher.
struct Instance {
    id: String,
    function: String,
    arn: String,
    events_tx: mpsc::Sender<Event>,
    events_rx: tokio::sync::Mutex<mpsc::Receiver<Event>>,
    current: Mutex<Option<Current>>,
    ready: Mutex<Option<oneshot::Sender<InitResult>>>,
    started: Mutex<Option<Instant>>,
    idle_since: Mutex<Option<Instant>>,
    pid: AtomicU32,
    busy: AtomicBool,
    dead: AtomicBool,
    kill: Notify,
}

impl Instance {
    fn complete(&self, request_id: Option<&str>, c: Completion) -> bool {
        let mut cur = self.current.lock().expect("instance lock");
        match cur.as_ref() {
            Some(x) if request_id.is_none_or(|id| id == x.request_id) => {
                let x = cur.take().expect("checked");
                let _ = x.done.send(c);
                true
            }
            _ => false,
        }
    }
}

enum Grant {
    Warm(Arc<Instance>),
    Slot,
}

#[derive(Default)]
struct Pool {
    idle: HashMap<String, Vec<Arc<Instance>>>,
    /// Instances running or being created (Lambda's concurrent executions).
    busy: u32,
    waiters: VecDeque<(String, oneshot::Sender<Grant>)>,
    all: Vec<Arc<Instance>>,
    shutdown: bool,
}

/// Paces instance creation by the profile's `arrival_s` rule.
struct Pacer {
    zero: Instant,
    count: u64,
}

struct Inner {
    profile: PlatformProfile,
    functions: HashMap<String, FunctionConfig>,
    zero: Instant,
    zero_epoch_ms: u64,
    pool: Mutex<Pool>,
    pacer: Mutex<Pacer>,
    next_instance: AtomicU64,
    /// Instances pinned so far, so the next takes the next CPUs (see `affinity::pick`).
    cpu_turn: AtomicU64,
    seed: u64,
    idle_ttl_ms: AtomicU64,
    reaper_started: AtomicBool,
    stop: Mutex<crate::backend::Stop>,
}

/// The emulated Lambda service. Cheap to clone; all clones share one pool of instances.
#[derive(Clone)]
pub struct LambdaPlatform {
    inner: Arc<Inner>,
}

impl std::fmt::Debug for LambdaPlatform {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("LambdaPlatform")
            .field("profile", &self.inner.profile.name)
            .field(
                "functions",
                &self.inner.functions.keys().collect::<Vec<_>>(),
            )
            .finish()
    }
}

/// Unix epoch milliseconds now.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

fn random_request_id(rng: &mut impl Rng) -> String {
    let b: [u8; 16] = rng.random();
    let h: String = b.iter().map(|x| format!("{x:02x}")).collect();
    format!(
        "{}-{}-{}-{}-{}",
        &h[0..8],
        &h[8..12],
        &h[12..16],
        &h[16..20],
        &h[20..32]
    )
}

/// A cold-start duration drawn from the profile's lognormal (median, p90), ms.
fn sample_cold_start_ms(profile: &PlatformProfile, rng: &mut impl Rng) -> f64 {
    let median = profile.cold_start.median_ms;
    if median <= 0.0 {
        return 0.0;
    }
    // 1.2816 is the standard normal's 90th percentile.
    let sigma = (profile.cold_start.p90_ms / median).ln() / 1.2816;
    let (u1, u2): (f64, f64) = (rng.random::<f64>().max(1e-12), rng.random());
    let z = (-2.0 * u1.ln()).sqrt() * (2.0 * std::f64::consts::PI * u2).cos();
    // Cap far tails: one 10-sigma draw would otherwise dominate a small local run.
    (median * (sigma * z.clamp(-3.0, 3.0)).exp()).min(profile.timeout_s * 1000.0)
}

impl LambdaPlatform {
    /// A platform with the given functions; time zero is now. `seed` makes cold-start samples reproducible.
    pub fn new(profile: PlatformProfile, functions: Vec<FunctionConfig>, seed: u64) -> Self {
        let now = Instant::now();
        Self {
            inner: Arc::new(Inner {
                profile,
                functions: functions.into_iter().map(|f| (f.name.clone(), f)).collect(),
                zero: now,
                zero_epoch_ms: epoch_ms(),
                pool: Mutex::new(Pool::default()),
                pacer: Mutex::new(Pacer {
                    zero: now,
                    count: 0,
                }),
                next_instance: AtomicU64::new(0),
                cpu_turn: AtomicU64::new(0),
                seed,
                idle_ttl_ms: AtomicU64::new(DEFAULT_IDLE_TTL.as_millis() as u64),
                reaper_started: AtomicBool::new(false),
                stop: Mutex::new(crate::backend::Stop::NEVER),
            }),
        }
    }

    /// Once `stop` is requested, invocations not yet given an instance end at once with
    /// [`InvokeError::NotStarted`]; those already running finish (the first Ctrl-C).
    pub fn set_stop(&self, stop: crate::backend::Stop) {
        *self.inner.stop.lock().expect("stop lock") = stop;
    }

    fn stopping(&self) -> bool {
        self.inner.stop.lock().expect("stop lock").requested()
    }

    /// Sets how long idle instances stay warm. A launch of C tasks at k = 1 creates C
    /// processes; reclaiming idle ones bounds what a laptop has to hold at once.
    pub fn set_idle_ttl(&self, ttl: Duration) {
        self.inner
            .idle_ttl_ms
            .store(ttl.as_millis() as u64, Ordering::SeqCst);
    }

    /// Kills instances idle for longer than the TTL, once a second, for as long as the platform lives.
    fn start_reaper(&self) {
        if self.inner.reaper_started.swap(true, Ordering::SeqCst) {
            return;
        }
        let weak = Arc::downgrade(&self.inner);
        tokio::spawn(async move {
            loop {
                tokio::time::sleep(Duration::from_secs(1)).await;
                let Some(inner) = weak.upgrade() else { return };
                let ttl = Duration::from_millis(inner.idle_ttl_ms.load(Ordering::SeqCst));
                let mut pool = inner.pool.lock().expect("pool lock");
                if pool.shutdown {
                    return;
                }
                for list in pool.idle.values_mut() {
                    list.retain(|i| {
                        let stale = i
                            .idle_since
                            .lock()
                            .expect("instance lock")
                            .is_some_and(|t| t.elapsed() > ttl);
                        if stale {
                            i.kill.notify_one();
                        }
                        !stale && !i.dead.load(Ordering::SeqCst)
                    });
                }
            }
        });
    }

    /// The profile the platform follows.
    pub fn profile(&self) -> &PlatformProfile {
        &self.inner.profile
    }

    /// Unix epoch ms of the platform's time zero.
    pub fn zero_epoch_ms(&self) -> u64 {
        self.inner.zero_epoch_ms
    }

    /// Seconds since the platform's time zero.
    pub fn now_s(&self) -> f64 {
        self.inner.zero.elapsed().as_secs_f64()
    }

    fn secs(&self, t: Instant) -> f64 {
        t.saturating_duration_since(self.inner.zero).as_secs_f64()
    }

    /// A deployed function by name, ARN or partial ARN (`NAME`, `NAME:QUALIFIER`, `arn:…:function:NAME[:Q]`).
    pub fn function(&self, name_or_arn: &str) -> Option<&FunctionConfig> {
        let name = name_or_arn
            .rsplit_once(":function:")
            .map_or(name_or_arn, |(_, rest)| rest);
        let name = name.split(':').next().unwrap_or(name);
        self.inner.functions.get(name)
    }

    /// Names of the deployed functions.
    pub fn function_names(&self) -> Vec<String> {
        let mut v: Vec<String> = self.inner.functions.keys().cloned().collect();
        v.sort();
        v
    }

    /// The live instances.
    pub fn instances(&self) -> Vec<InstanceInfo> {
        let pool = self.inner.pool.lock().expect("pool lock");
        pool.all
            .iter()
            .filter(|i| !i.dead.load(Ordering::SeqCst))
            .map(|i| InstanceInfo {
                id: i.id.clone(),
                function: i.function.clone(),
                pid: i.pid.load(Ordering::SeqCst),
                busy: i.busy.load(Ordering::SeqCst),
            })
            .collect()
    }

    /// Kills every instance and refuses new invocations.
    pub fn shutdown(&self) {
        let mut pool = self.inner.pool.lock().expect("pool lock");
        pool.shutdown = true;
        for i in &pool.all {
            i.kill.notify_one();
        }
        pool.idle.clear();
        pool.waiters.clear();
    }

    /// Invokes a function synchronously (RequestResponse), within Lambda's payload limits:
    /// a request over [`LAMBDA_REQUEST_LIMIT`] is [`InvokeError::RequestTooLarge`], a
    /// response over [`LAMBDA_RESPONSE_LIMIT`] the function error [`RESPONSE_TOO_LARGE`].
    pub async fn invoke(
        &self,
        function: &str,
        payload: impl Into<Bytes>,
        at_limit: AtLimit,
    ) -> Result<Invocation, InvokeError> {
        let payload = payload.into();
        let bytes = payload.len() as u64;
        if bytes > LAMBDA_REQUEST_LIMIT {
            return Err(InvokeError::RequestTooLarge { bytes });
        }
        let cfg = self
            .function(function)
            .ok_or_else(|| InvokeError::NotFound(function.to_owned()))?
            .clone();
        let requested = Instant::now();
        let (instance, cold_init_ms) = match self.acquire(&cfg, at_limit).await? {
            Ok(x) => x,
            Err((error_type, message)) => {
                let now = Instant::now();
                return Ok(Invocation {
                    request_id: String::new(),
                    instance_id: String::new(),
                    cold_start: true,
                    init_ms: 0.0,
                    requested_s: self.secs(requested),
                    start_s: self.secs(now),
                    end_s: self.secs(now),
                    status: InvokeStatus::error(&error_type, &message),
                });
            }
        };
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(
            self.inner.seed ^ requested.elapsed().as_nanos() as u64 ^ epoch_ms(),
        );
        let request_id = random_request_id(&mut rng);
        let (done_tx, done_rx) = oneshot::channel();
        *instance.current.lock().expect("instance lock") = Some(Current {
            request_id: request_id.clone(),
            done: done_tx,
        });
        *instance.started.lock().expect("instance lock") = None;
        let timeout = Duration::from_secs_f64(cfg.timeout_s);
        let deadline_ms = epoch_ms() + timeout.as_millis() as u64;
        let completion = if instance.dead.load(Ordering::SeqCst) {
            instance.complete(None, Completion::Exited("the instance exited".into()));
            Completion::Exited("the instance exited before the event was delivered".into())
        } else {
            let _ = instance
                .events_tx
                .send(Event {
                    request_id: request_id.clone(),
                    payload,
                    deadline_ms,
                })
                .await;
            tokio::select! {
                c = done_rx => c.unwrap_or_else(|_| Completion::Exited("the instance went away".into())),
                _ = tokio::time::sleep(timeout) => {
                    instance.current.lock().expect("instance lock").take();
                    instance.kill.notify_one();
                    Completion::Error {
                        error_type: "Sandbox.Timedout".into(),
                        body: Bytes::from(serde_json::json!({
                            "errorType": "Sandbox.Timedout",
                            "errorMessage": format!("{request_id} Task timed out after {:.2} seconds", cfg.timeout_s),
                        }).to_string()),
                    }
                }
            }
        };
        let end = Instant::now();
        let start = instance
            .started
            .lock()
            .expect("instance lock")
            .unwrap_or(end);
        let (status, alive) = match completion {
            Completion::Response(b) => (InvokeStatus::Ok(b), true),
            Completion::Error { error_type, body } => {
                let alive = error_type != "Sandbox.Timedout";
                (InvokeStatus::FunctionError { error_type, body }, alive)
            }
            Completion::Exited(why) => (
                InvokeStatus::error(
                    "Runtime.ExitError",
                    &format!("RequestId: {request_id} Error: {why}"),
                ),
                false,
            ),
        };
        let instance_id = instance.id.clone();
        self.release(instance, alive);
        Ok(Invocation {
            request_id,
            instance_id,
            cold_start: cold_init_ms.is_some(),
            init_ms: cold_init_ms.unwrap_or(0.0),
            requested_s: self.secs(requested),
            start_s: self.secs(start),
            end_s: self.secs(end),
            status,
        })
    }

    /// An instance ready for an event: warm if one is idle, else a new one.
    /// The inner error is an initialisation failure (reported to the caller as a function error).
    #[allow(clippy::type_complexity)]
    async fn acquire(
        &self,
        cfg: &FunctionConfig,
        at_limit: AtLimit,
    ) -> Result<Result<(Arc<Instance>, Option<f64>), (String, String)>, InvokeError> {
        let rx = {
            let mut pool = self.inner.pool.lock().expect("pool lock");
            if pool.shutdown {
                return Err(InvokeError::Shutdown);
            }
            if self.stopping() {
                return Err(InvokeError::NotStarted);
            }
            while let Some(i) = pool.idle.get_mut(&cfg.name).and_then(Vec::pop) {
                if !i.dead.load(Ordering::SeqCst) {
                    pool.busy += 1;
                    i.busy.store(true, Ordering::SeqCst);
                    return Ok(Ok((i, None)));
                }
            }
            match self.inner.profile.account_concurrency_limit {
                Some(limit) if pool.busy >= limit => match at_limit {
                    AtLimit::Throttle => return Err(InvokeError::Throttled(limit)),
                    AtLimit::Wait => {
                        let (tx, rx) = oneshot::channel();
                        pool.waiters.push_back((cfg.name.clone(), tx));
                        Some(rx)
                    }
                },
                _ => {
                    pool.busy += 1;
                    None
                }
            }
        };
        if let Some(rx) = rx {
            match rx.await {
                Ok(Grant::Warm(i)) if self.stopping() => {
                    self.release(i, true);
                    return Err(InvokeError::NotStarted);
                }
                Ok(Grant::Warm(i)) => {
                    i.busy.store(true, Ordering::SeqCst);
                    return Ok(Ok((i, None)));
                }
                Ok(Grant::Slot) if self.stopping() => {
                    self.release_slot();
                    return Err(InvokeError::NotStarted);
                }
                Ok(Grant::Slot) => {}
                Err(_) => return Err(InvokeError::Shutdown),
            }
        }
        match self.create(cfg).await {
            Ok(Ok((i, init_ms))) => {
                i.busy.store(true, Ordering::SeqCst);
                Ok(Ok((i, Some(init_ms))))
            }
            other => {
                self.release_slot();
                other.map(|r| r.map(|(i, ms)| (i, Some(ms))))
            }
        }
    }

    /// Gives a finished instance to a waiter, or parks it idle (alive) / forgets it (dead).
    fn release(&self, instance: Arc<Instance>, alive: bool) {
        instance.busy.store(false, Ordering::SeqCst);
        if !alive {
            instance.kill.notify_one();
            self.release_slot();
            return;
        }
        let mut pool = self.inner.pool.lock().expect("pool lock");
        if pool.shutdown {
            instance.kill.notify_one();
            return;
        }
        let mut instance = instance;
        while let Some(pos) = pool
            .waiters
            .iter()
            .position(|(f, _)| *f == instance.function)
        {
            let (_, tx) = pool.waiters.remove(pos).expect("position is valid");
            match tx.send(Grant::Warm(instance)) {
                Ok(()) => return,
                Err(Grant::Warm(back)) => instance = back,
                Err(Grant::Slot) => unreachable!("sent a warm grant"),
            }
        }
        *instance.idle_since.lock().expect("instance lock") = Some(Instant::now());
        pool.idle
            .entry(instance.function.clone())
            .or_default()
            .push(instance);
        pool.busy = pool.busy.saturating_sub(1);
        Self::grant_slots(&mut pool, self.inner.profile.account_concurrency_limit);
    }

    fn release_slot(&self) {
        let mut pool = self.inner.pool.lock().expect("pool lock");
        pool.busy = pool.busy.saturating_sub(1);
        Self::grant_slots(&mut pool, self.inner.profile.account_concurrency_limit);
    }

    fn grant_slots(pool: &mut Pool, limit: Option<u32>) {
        while limit.is_none_or(|l| pool.busy < l) {
            let Some((_, tx)) = pool.waiters.pop_front() else {
                break;
            };
            if tx.send(Grant::Slot).is_ok() {
                pool.busy += 1;
            }
        }
    }

    /// When the next new instance may appear under the scaling rule.
    fn reserve_arrival(&self) -> (u64, Instant) {
        let p = &self.inner.profile;
        let mut pacer = self.inner.pacer.lock().expect("pacer lock");
        let now = Instant::now();
        let due = pacer.zero + Duration::from_secs_f64(p.arrival_s(pacer.count));
        // A schedule that has fallen behind the clock means demand paused: the
        // rule limits a rate, so restart it rather than allow a catch-up burst.
        let slack = match p.scaling {
            crate::platform::Scaling::TokenBucket { interval_s, .. } => {
                Duration::from_secs_f64(interval_s)
            }
            _ => Duration::ZERO,
        };
        if pacer.count > 0 && now > due + slack {
            pacer.zero = now;
            pacer.count = 0;
        }
        let i = pacer.count;
        pacer.count += 1;
        let at = pacer.zero + Duration::from_secs_f64(p.arrival_s(i));
        let n = self.inner.next_instance.fetch_add(1, Ordering::SeqCst);
        (n, at)
    }

    #[allow(clippy::type_complexity)]
    async fn create(
        &self,
        cfg: &FunctionConfig,
    ) -> Result<Result<(Arc<Instance>, f64), (String, String)>, InvokeError> {
        self.start_reaper();
        let (n, at) = self.reserve_arrival();
        tokio::time::sleep_until(at.into()).await;
        if self.stopping() {
            return Err(InvokeError::NotStarted);
        }
        let allowed = Instant::now();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(self.inner.seed.wrapping_add(n));
        let cold_ms = sample_cold_start_ms(&self.inner.profile, &mut rng);
        if cold_ms > 0.0 {
            tokio::time::sleep(Duration::from_secs_f64(cold_ms / 1000.0)).await;
        }
        let id = format!("i-{:05}", n + 1);
        let instance = self.spawn(cfg, &id).await?;
        let (ready_tx, ready_rx) = oneshot::channel();
        *instance.ready.lock().expect("instance lock") = Some(ready_tx);
        // The process may already have polled or died before `ready` was armed.
        if instance.started.lock().expect("instance lock").is_some() {
            instance.ready.lock().expect("instance lock").take();
        } else if instance.dead.load(Ordering::SeqCst) {
            return Ok(Err((
                "Runtime.ExitError".into(),
                "the runtime exited during init".into(),
            )));
        } else {
            match tokio::time::timeout(INIT_TIMEOUT, ready_rx).await {
                Ok(Ok(Ok(()))) => {}
                Ok(Ok(Err(e))) => return Ok(Err(e)),
                Ok(Err(_)) => {
                    return Ok(Err((
                        "Runtime.ExitError".into(),
                        "the runtime exited during init".into(),
                    )));
                }
                Err(_) => {
                    instance.kill.notify_one();
                    return Ok(Err((
                        "Runtime.InitError".into(),
                        format!("init did not finish within {} s", INIT_TIMEOUT.as_secs()),
                    )));
                }
            }
        }
        let init_ms = allowed.elapsed().as_secs_f64() * 1000.0;
        Ok(Ok((instance, init_ms)))
    }

    async fn spawn(&self, cfg: &FunctionConfig, id: &str) -> Result<Arc<Instance>, InvokeError> {
        let spawn_err = |message: String| InvokeError::Spawn {
            function: cfg.name.clone(),
            path: cfg.bootstrap.display().to_string(),
            message,
        };
        let listener = tokio::net::TcpListener::bind("127.0.0.1:0")
            .await
            .map_err(|e| spawn_err(format!("binding the Runtime API: {e}")))?;
        let port = listener
            .local_addr()
            .map_err(|e| spawn_err(e.to_string()))?
            .port();
        let (events_tx, events_rx) = mpsc::channel(1);
        let instance = Arc::new(Instance {
            id: id.to_owned(),
            function: cfg.name.clone(),
            arn: cfg.arn(),
            events_tx,
            events_rx: tokio::sync::Mutex::new(events_rx),
            current: Mutex::new(None),
            ready: Mutex::new(None),
            started: Mutex::new(None),
            idle_since: Mutex::new(None),
            pid: AtomicU32::new(0),
            busy: AtomicBool::new(true),
            dead: AtomicBool::new(false),
            kill: Notify::new(),
        });

        let runtime_dir = cfg.bootstrap.parent().unwrap_or(Path::new("/"));
        let task_root = match &cfg.task_root {
            // Absolute, because the instance and its tasks run in other directories.
            Some(dir) => std::path::absolute(dir)
                .map_err(|e| spawn_err(format!("task root {}: {e}", dir.display())))?,
            None => runtime_dir.to_owned(),
        };
        let start = start_command(cfg).map_err(spawn_err)?;
        let mut cmd = tokio::process::Command::new(&start.program);
        cmd.args(&start.args);
        cmd.env_clear();
        if cfg.task_root.is_some() {
            // Lambda starts the runtime in /var/task.
            cmd.current_dir(&task_root);
        }
        // Lambda injects the execution role's credentials into every instance; the emulator
        // forwards the caller's (and its S3 endpoint, e.g. moto) so s3:// tasks work offline.
        // PROPACK_PARALLELISM stands in for a function environment variable: the host's cores are
        // not the instance's vCPUs, so a caller may pin the workers per instance.
        for key in [
            "PATH",
            "HOME",
            "LANG",
            "TMPDIR",
            "RUST_LOG",
            "RUST_BACKTRACE",
            "AWS_ACCESS_KEY_ID",
            "AWS_SECRET_ACCESS_KEY",
            "AWS_SESSION_TOKEN",
            "AWS_ENDPOINT_URL",
            "AWS_ENDPOINT_URL_S3",
            "PROPACK_S3_PATH_STYLE",
            "PROPACK_PARALLELISM",
        ] {
            if let Some(v) = std::env::var_os(key) {
                cmd.env(key, v);
            }
        }
        let stream = format!("{}/[$LATEST]{}", chrono_date(), id);
        cmd.env("AWS_LAMBDA_RUNTIME_API", format!("127.0.0.1:{port}"))
            .env("AWS_LAMBDA_FUNCTION_NAME", &cfg.name)
            .env("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST")
            .env("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", cfg.memory_mb.to_string())
            .env(
                "AWS_LAMBDA_FUNCTION_TIMEOUT",
                format!("{}", cfg.timeout_s.ceil() as u64),
            )
            .env(
                "AWS_LAMBDA_LOG_GROUP_NAME",
                format!("/aws/lambda/{}", cfg.name),
            )
            .env("AWS_LAMBDA_LOG_STREAM_NAME", stream)
            .env("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand")
            .env("AWS_REGION", LOCAL_REGION)
            .env("AWS_DEFAULT_REGION", LOCAL_REGION)
            .env("AWS_EXECUTION_ENV", cfg.runtime.execution_env())
            .env("LAMBDA_TASK_ROOT", &task_root)
            .env("LAMBDA_RUNTIME_DIR", runtime_dir)
            .env("_HANDLER", &cfg.handler)
            .env("TZ", ":UTC")
            .envs(&cfg.env)
            .envs(start.env.iter().map(|(k, v)| (k, v)))
            .stdin(std::process::Stdio::null())
            .kill_on_drop(true);
        match &cfg.log_dir {
            Some(dir) => {
                let _ = std::fs::create_dir_all(dir);
                let log = std::fs::File::create(dir.join(format!("{id}.log")))
                    .map_err(|e| spawn_err(format!("creating its log file: {e}")))?;
                let log2 = log.try_clone().map_err(|e| spawn_err(e.to_string()))?;
                cmd.stdout(log).stderr(log2);
            }
            None => {
                cmd.stdout(std::process::Stdio::null())
                    .stderr(std::process::Stdio::null());
            }
        }
        // The CPUs the function's memory buys (see `affinity`); `None`: all of the host's.
        let want = self.inner.profile.cpus_at(cfg.memory_mb).ceil() as usize;
        let turn = self.inner.cpu_turn.fetch_add(1, Ordering::Relaxed) as usize;
        let cpus = super::affinity::pick(&super::affinity::allowed_cpus(), want, turn)
            .map(|c| super::affinity::cpu_set(&c));
        // SAFETY: prctl and sched_setaffinity are async-signal-safe system calls on memory
        // prepared before the fork; the first makes the kernel kill the instance if the
        // platform dies (no orphaned bootstraps linger), the second pins it to its CPUs.
        unsafe {
            cmd.pre_exec(move || {
                libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL);
                if let Some(set) = &cpus
                    && libc::sched_setaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), set) != 0
                {
                    return Err(std::io::Error::last_os_error());
                }
                Ok(())
            });
        }
        let mut child = cmd.spawn().map_err(|e| spawn_err(e.to_string()))?;
        instance
            .pid
            .store(child.id().unwrap_or(0), Ordering::SeqCst);
        {
            let mut pool = self.inner.pool.lock().expect("pool lock");
            pool.all.retain(|i| !i.dead.load(Ordering::SeqCst));
            pool.all.push(instance.clone());
            if pool.shutdown {
                instance.kill.notify_one();
            }
        }

        let server = tokio::spawn(serve_runtime_api(listener, instance.clone()));
        let watched = instance.clone();
        tokio::spawn(async move {
            let status = tokio::select! {
                s = child.wait() => s,
                _ = watched.kill.notified() => {
                    let _ = child.start_kill();
                    child.wait().await
                }
            };
            watched.dead.store(true, Ordering::SeqCst);
            server.abort();
            let why = match status {
                Ok(s) => format!("Runtime exited ({s})"),
                Err(e) => format!("Runtime exited: {e}"),
            };
            if let Some(r) = watched.ready.lock().expect("instance lock").take() {
                let _ = r.send(Err(("Runtime.ExitError".into(), why.clone())));
            }
            watched.complete(None, Completion::Exited(why));
        });
        Ok(instance)
    }
}

/// Today's date as `YYYY/MM/DD` for log stream names, without a date crate.
fn chrono_date() -> String {
    civil_date((epoch_ms() / 86_400_000) as i64)
}

/// The date `days` after 1970-01-01 as `YYYY/MM/DD`.
fn civil_date(days: i64) -> String {
    // Civil-from-days (Howard Hinnant's algorithm).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    format!("{y:04}/{m:02}/{d:02}")
}

type HttpResponse = Response<Full<Bytes>>;

fn respond(status: StatusCode, body: impl Into<Bytes>) -> HttpResponse {
    Response::builder()
        .status(status)
        .header("content-type", "application/json")
        .body(Full::new(body.into()))
        .expect("static response parts are valid")
}

async fn serve_runtime_api(listener: tokio::net::TcpListener, instance: Arc<Instance>) {
    loop {
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let instance = instance.clone();
        tokio::spawn(async move {
            let service = hyper::service::service_fn(move |req| {
                let instance = instance.clone();
                async move { Ok::<_, std::convert::Infallible>(runtime_api(req, &instance).await) }
            });
            let _ = hyper::server::conn::http1::Builder::new()
                .serve_connection(TokioIo::new(stream), service)
                .await;
        });
    }
}

async fn runtime_api(req: Request<Incoming>, instance: &Instance) -> HttpResponse {
    let path = req.uri().path().to_owned();
    let Some(rest) = path.strip_prefix("/2018-06-01/runtime/") else {
        return respond(
            StatusCode::NOT_FOUND,
            r#"{"errorType":"NotFound","errorMessage":"unknown path"}"#,
        );
    };
    let method = req.method().clone();
    let error_type_header = req
        .headers()
        .get(headers::FUNCTION_ERROR_TYPE)
        .and_then(|v| v.to_str().ok())
        .map(str::to_owned);
    match (method, rest) {
        (Method::GET, "invocation/next") => {
            let mut rx = instance.events_rx.lock().await;
            if let Some(r) = instance.ready.lock().expect("instance lock").take() {
                let _ = r.send(Ok(()));
            }
            // Mark the first poll even when `ready` is not armed yet (see `create`).
            instance
                .started
                .lock()
                .expect("instance lock")
                .get_or_insert_with(Instant::now);
            let Some(ev) = rx.recv().await else {
                return respond(StatusCode::INTERNAL_SERVER_ERROR, "{}");
            };
            *instance.started.lock().expect("instance lock") = Some(Instant::now());
            Response::builder()
                .status(StatusCode::OK)
                .header("content-type", "application/json")
                .header(headers::REQUEST_ID, &ev.request_id)
                .header(headers::DEADLINE_MS, ev.deadline_ms.to_string())
                .header(headers::INVOKED_FUNCTION_ARN, &instance.arn)
                .header(
                    headers::TRACE_ID,
                    format!(
                        "Root=1-{:08x}-{};Sampled=0",
                        epoch_ms() / 1000,
                        &ev.request_id.replace('-', "")[..24]
                    ),
                )
                .body(Full::new(ev.payload))
                .expect("valid headers")
        }
        (Method::POST, "init/error") => {
            let body = req
                .into_body()
                .collect()
                .await
                .map(|b| b.to_bytes())
                .unwrap_or_default();
            let (ty, msg) = parse_error_body(&body, error_type_header.as_deref());
            if let Some(r) = instance.ready.lock().expect("instance lock").take() {
                let _ = r.send(Err((ty, msg)));
            }
            // Lambda discards an environment whose init failed.
            instance.kill.notify_one();
            respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
        }
        (Method::POST, r) if r.starts_with("invocation/") => {
            let tail = &r["invocation/".len()..];
            let (id, kind) = match tail.rsplit_once('/') {
                Some(x) if x.1 == "response" || x.1 == "error" => x,
                _ => return respond(StatusCode::NOT_FOUND, "{}"),
            };
            let Ok(body) = collect_capped(req.into_body(), LAMBDA_RESPONSE_LIMIT).await else {
                // Lambda fails the invocation and answers the runtime 413 (its runtime
                // client then reports the error; the instance lives on).
                let body = serde_json::json!({
                    "errorType": RESPONSE_TOO_LARGE,
                    "errorMessage": response_too_large_message(),
                });
                let failed = Completion::Error {
                    error_type: RESPONSE_TOO_LARGE.to_owned(),
                    body: Bytes::from(body.to_string()),
                };
                if !instance.complete(Some(id), failed) {
                    return invalid_request_id();
                }
                let to_runtime = serde_json::json!({
                    "errorType": "RequestEntityTooLarge",
                    "errorMessage": format!(
                        "Exceeded maximum allowed payload size ({LAMBDA_RESPONSE_LIMIT} bytes)."
                    ),
                });
                return respond(StatusCode::PAYLOAD_TOO_LARGE, to_runtime.to_string());
            };
            let completion = match kind {
                "response" => Completion::Response(body),
                _ => {
                    let (ty, msg) = parse_error_body(&body, error_type_header.as_deref());
                    let body =
                        serde_json::json!({"errorType": ty, "errorMessage": msg}).to_string();
                    Completion::Error {
                        error_type: ty,
                        body: Bytes::from(body),
                    }
                }
            };
            if instance.complete(Some(id), completion) {
                respond(StatusCode::ACCEPTED, r#"{"status":"OK"}"#)
            } else {
                invalid_request_id()
            }
        }
        _ => respond(
            StatusCode::NOT_FOUND,
            r#"{"errorType":"NotFound","errorMessage":"unknown Runtime API route"}"#,
        ),
    }
}

fn invalid_request_id() -> HttpResponse {
    respond(
        StatusCode::BAD_REQUEST,
        r#"{"errorType":"InvalidRequestID","errorMessage":"Invalid request ID"}"#,
    )
}

/// The whole body, or `Err(bytes read)` once it passes `limit`: the rest is read and
/// dropped, so memory stays bounded and the sender still gets the answer.
async fn collect_capped(mut body: Incoming, limit: u64) -> Result<Bytes, u64> {
    let mut buf = bytes::BytesMut::new();
    let mut seen = 0u64;
    while let Some(frame) = body.frame().await {
        let Ok(frame) = frame else { break };
        if let Ok(data) = frame.into_data() {
            seen += data.len() as u64;
            if seen <= limit {
                buf.extend_from_slice(&data);
            }
        }
    }
    if seen > limit {
        Err(seen)
    } else {
        Ok(buf.freeze())
    }
}

fn parse_error_body(body: &[u8], header: Option<&str>) -> (String, String) {
    let v: serde_json::Value = serde_json::from_slice(body).unwrap_or(serde_json::Value::Null);
    let ty = v["errorType"]
        .as_str()
        .map(str::to_owned)
        .or_else(|| header.map(str::to_owned))
        .unwrap_or_else(|| "Unhandled".into());
    let msg = v["errorMessage"]
        .as_str()
        .map(str::to_owned)
        .unwrap_or_else(|| String::from_utf8_lossy(body).into_owned());
    (ty, msg)
}

#[cfg(test)]
#[path = "lambda_strength_tests.rs"]
mod strength_tests;

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    #[test]
    fn managed_runtimes_start_through_the_exec_wrapper_of_the_emulated_layer() {
        let p = PlatformProfile::unlimited();
        let f = FunctionConfig::new("f", "/b/bootstrap", &p);
        let provided = start_command(&f).unwrap();
        assert_eq!(
            (provided.program, provided.args.len(), provided.env.len()),
            (PathBuf::from("/b/bootstrap"), 0, 0)
        );

        let mut bare = f.clone();
        bare.runtime = LambdaRuntime::Python313;
        let e = start_command(&bare).unwrap_err();
        assert!(e.contains("without AWS_LAMBDA_EXEC_WRAPPER"), "{e}");

        let m = f.with_managed_runtime(LambdaRuntime::Nodejs22, "app.handler", "/run/opt");
        assert_eq!(m.env[EXEC_WRAPPER_VAR], EXEC_WRAPPER_PATH);
        let c = start_command(&m).unwrap();
        assert_eq!(c.program, PathBuf::from("/run/opt/propack-exec-wrapper"));
        assert!(c.args[0].ends_with("/node"), "{:?}", c.args);
        assert_eq!(&c.args[1..], LambdaRuntime::Nodejs22.start_args());
        assert_eq!(
            c.env,
            [(
                "PROPACK_BOOTSTRAP".to_owned(),
                "/run/opt/bootstrap".to_owned()
            )]
        );
    }

    #[test]
    fn cold_start_samples_follow_the_profile() {
        let p = PlatformProfile::aws_2021();
        let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
        let mut v: Vec<f64> = (0..2000)
            .map(|_| sample_cold_start_ms(&p, &mut rng))
            .collect();
        v.sort_by(f64::total_cmp);
        let median = v[1000];
        let p90 = v[1800];
        assert!((median - 250.0).abs() < 25.0, "median {median}");
        assert!((p90 - 600.0).abs() < 90.0, "p90 {p90}");
        assert_eq!(
            sample_cold_start_ms(&PlatformProfile::unlimited(), &mut rng),
            0.0
        );
    }

    #[test]
    fn function_lookup_accepts_names_and_arns() {
        let p = PlatformProfile::unlimited();
        let f = FunctionConfig::new("propack", "/nonexistent/bootstrap", &p);
        let arn = f.arn();
        let platform = LambdaPlatform::new(p, vec![f], 1);
        assert!(platform.function("propack").is_some());
        assert!(platform.function("propack:$LATEST").is_some());
        assert!(platform.function(&arn).is_some());
        assert!(platform.function(&format!("{arn}:1")).is_some());
        assert!(platform.function("other").is_none());
    }

    #[test]
    fn error_bodies_fall_back_to_the_header() {
        assert_eq!(
            parse_error_body(br#"{"errorType":"X","errorMessage":"m"}"#, None),
            ("X".to_owned(), "m".to_owned())
        );
        assert_eq!(
            parse_error_body(b"plain", Some("Runtime.Crash")),
            ("Runtime.Crash".to_owned(), "plain".to_owned())
        );
    }

    #[test]
    fn log_stream_dates_are_civil() {
        let d = chrono_date();
        assert_eq!(d.len(), 10);
        assert!(d.starts_with("20"), "{d}");
    }

    /// Answers `{"respond_bytes": N}` with exactly N bytes, whatever the limit (see the script).
    pub(crate) const SIZED_FUNCTION: &str = include_str!("testdata/sized_function.py");

    /// A platform running [`SIZED_FUNCTION`] as `f`, and the file its Runtime API answers go to.
    pub(crate) fn sized_platform(dir: &Path) -> (LambdaPlatform, PathBuf) {
        use std::os::unix::fs::PermissionsExt;
        let script = dir.join("bootstrap");
        std::fs::write(&script, SIZED_FUNCTION).unwrap();
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
        let answers = dir.join("answers.txt");
        let p = PlatformProfile::unlimited();
        let mut f = FunctionConfig::new("f", &script, &p);
        f.env
            .insert("RUNTIME_API_ANSWERS".into(), answers.display().to_string());
        (LambdaPlatform::new(p, vec![f], 1), answers)
    }

    /// A JSON string of exactly `n` bytes.
    pub(crate) fn json_string_of(n: u64) -> Bytes {
        let mut v = vec![b'a'; n as usize];
        v[0] = b'"';
        v[n as usize - 1] = b'"';
        Bytes::from(v)
    }

    #[tokio::test]
    async fn requests_over_6_mib_are_refused_before_any_instance_starts() {
        let dir = tempfile::tempdir().unwrap();
        let (platform, _) = sized_platform(dir.path());
        let e = platform
            .invoke("f", json_string_of(6_291_457), AtLimit::Wait)
            .await
            .unwrap_err();
        assert!(
            matches!(e, InvokeError::RequestTooLarge { bytes: 6_291_457 }),
            "{e:?}"
        );
        assert_eq!(
            e.to_string(),
            "Request must be smaller than 6291456 bytes for the InvokeFunction operation"
        );
        assert!(platform.instances().is_empty());

        let inv = platform
            .invoke("f", json_string_of(6_291_456), AtLimit::Wait)
            .await
            .unwrap();
        assert_eq!(
            inv.status,
            InvokeStatus::Ok(Bytes::from_static(br#"{"received_bytes": 6291456}"#))
        );
        platform.shutdown();
    }

    #[tokio::test]
    async fn responses_over_the_limit_fail_as_function_response_size_too_large() {
        let dir = tempfile::tempdir().unwrap();
        let (platform, answers) = sized_platform(dir.path());
        let ask = |n: u64| Bytes::from(format!(r#"{{"respond_bytes": {n}}}"#));
        let inv = platform
            .invoke("f", ask(6_291_556), AtLimit::Wait)
            .await
            .unwrap();
        assert_eq!(inv.status, InvokeStatus::Ok(json_string_of(6_291_556)));

        let inv = platform
            .invoke("f", ask(6_291_557), AtLimit::Wait)
            .await
            .unwrap();
        let InvokeStatus::FunctionError { error_type, body } = inv.status else {
            panic!("{:?}", inv.status)
        };
        assert_eq!(error_type, "Function.ResponseSizeTooLarge");
        assert_eq!(
            serde_json::from_slice::<serde_json::Value>(&body).unwrap(),
            serde_json::json!({
                "errorType": "Function.ResponseSizeTooLarge",
                "errorMessage": "Response payload size exceeded maximum allowed payload size (6291556 bytes).",
            })
        );
        // The instance lives on: the next invocation is warm.
        let inv = platform.invoke("f", ask(2), AtLimit::Wait).await.unwrap();
        assert!(!inv.cold_start);
        assert_eq!(inv.status, InvokeStatus::Ok(Bytes::from_static(b"\"\"")));
        // The script notes an answer before it polls again, so one more call makes all three land.
        platform.invoke("f", ask(2), AtLimit::Wait).await.unwrap();
        platform.shutdown();
        let answered = std::fs::read_to_string(answers).unwrap();
        let lines: Vec<(&str, serde_json::Value)> = answered
            .lines()
            .take(3)
            .map(|l| {
                let (status, body) = l.split_once(' ').unwrap();
                (status, serde_json::from_str(body).unwrap())
            })
            .collect();
        let ok = serde_json::json!({"status": "OK"});
        assert_eq!(
            lines,
            [
                ("202", ok.clone()),
                (
                    "413",
                    serde_json::json!({
                        "errorType": "RequestEntityTooLarge",
                        "errorMessage": "Exceeded maximum allowed payload size (6291556 bytes).",
                    })
                ),
                ("202", ok),
            ]
        );
    }

    #[tokio::test]
    async fn a_missing_bootstrap_is_a_clear_spawn_error() {
        let p = PlatformProfile::unlimited();
        let f = FunctionConfig::new("f", "/nonexistent/bootstrap", &p);
        let platform = LambdaPlatform::new(p, vec![f], 1);
        let e = platform
            .invoke("f", Bytes::from_static(b"{}"), AtLimit::Wait)
            .await
            .unwrap_err();
        assert!(e.to_string().contains("/nonexistent/bootstrap"), "{e}");
        let e = platform
            .invoke("g", Bytes::from_static(b"{}"), AtLimit::Wait)
            .await
            .unwrap_err();
        assert!(matches!(e, InvokeError::NotFound(_)), "{e}");
    }
}
