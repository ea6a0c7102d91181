//! The Lambda emulator pinned by hand (issue 19: cargo-mutants survivors), with a stand-in
//! function that reports what its instance saw: the environment Lambda gives an instance,
//! the Runtime API's headers, warm reuse, and how errors, timeouts, exits and the account
//! limit end an invocation.

use std::os::unix::fs::PermissionsExt;

use serde_json::{Value, json};

use super::*;

const ECHO_FUNCTION: &str = include_str!("testdata/echo_function.py");

/// The echo function installed as `dir/bootstrap`.
fn echo(dir: &Path, profile: &PlatformProfile) -> FunctionConfig {
    let script = dir.join("bootstrap");
    std::fs::write(&script, ECHO_FUNCTION).unwrap();
    std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).unwrap();
    FunctionConfig::new("echo", &script, profile)
}

async fn call(platform: &LambdaPlatform, event: Value) -> Invocation {
    platform
        .invoke("echo", event.to_string(), AtLimit::Wait)
        .await
        .unwrap()
}

fn body(inv: &Invocation) -> Value {
    match &inv.status {
        InvokeStatus::Ok(b) => serde_json::from_slice(b).unwrap(),
        other => panic!("not a response: {other:?}"),
    }
}

fn error_of(inv: &Invocation) -> (String, Value) {
    match &inv.status {
        InvokeStatus::FunctionError { error_type, body } => {
            (error_type.clone(), serde_json::from_slice(body).unwrap())
        }
        other => panic!("not an error: {other:?}"),
    }
}

/// Starts `event` on the echo function in the background.
fn spawn_call(platform: &LambdaPlatform, event: Value) -> tokio::task::JoinHandle<Invocation> {
    let p = platform.clone();
    tokio::spawn(async move { call(&p, event).await })
}

/// Polls the platform's instances every 10 ms until `ready` holds of them.
async fn wait_for(platform: &LambdaPlatform, ready: impl Fn(&[InstanceInfo]) -> bool) {
    while !ready(&platform.instances()) {
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
}

/// An Invoke API call is throttled at the account limit of 1.
async fn assert_throttled(platform: &LambdaPlatform) {
    let e = platform
        .invoke("echo", "{}", AtLimit::Throttle)
        .await
        .unwrap_err();
    assert!(matches!(e, InvokeError::Throttled(1)), "{e}");
}

#[test]
fn request_ids_are_uuid_shaped() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(1);
    let id = random_request_id(&mut rng);
    let groups: Vec<usize> = id.split('-').map(str::len).collect();
    assert_eq!(groups, [8, 4, 4, 4, 12], "{id}");
    assert!(
        id.chars().all(|c| c == '-' || c.is_ascii_hexdigit()),
        "{id}"
    );
    assert_ne!(random_request_id(&mut rng), id);
}

/// What Lambda gives an instance: its configuration as `AWS_LAMBDA_*` (the timeout rounded
/// up to whole seconds), the log group and stream, the region, the task root (the
/// bootstrap's directory) and the handler; the event with its request id, deadline
/// (now + the timeout), ARN and trace id. The second call is warm on the same instance.
#[tokio::test]
async fn instances_see_lambdas_environment_and_headers() {
    let dir = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let mut f = echo(dir.path(), &profile);
    f.memory_mb = 512;
    f.timeout_s = 2.5;
    f.env.insert("MY_SETTING".into(), "on".into());
    let arn = f.arn();
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let before = epoch_ms();
    let first = call(&platform, json!({"n": 1})).await;
    let after = epoch_ms();
    let out = body(&first);
    assert_eq!(out["event"], json!({"n": 1}));
    let env = &out["env"];
    let root = std::path::absolute(dir.path()).unwrap();
    for (k, v) in [
        ("AWS_LAMBDA_FUNCTION_NAME", "echo"),
        ("AWS_LAMBDA_FUNCTION_VERSION", "$LATEST"),
        ("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "512"),
        ("AWS_LAMBDA_FUNCTION_TIMEOUT", "3"),
        ("AWS_LAMBDA_LOG_GROUP_NAME", "/aws/lambda/echo"),
        ("AWS_LAMBDA_INITIALIZATION_TYPE", "on-demand"),
        ("AWS_REGION", "us-east-1"),
        ("AWS_DEFAULT_REGION", "us-east-1"),
        ("AWS_EXECUTION_ENV", "AWS_Lambda_provided.al2023"),
        ("LAMBDA_TASK_ROOT", root.to_str().unwrap()),
        ("LAMBDA_RUNTIME_DIR", root.to_str().unwrap()),
        ("_HANDLER", "bootstrap"),
        ("TZ", ":UTC"),
        ("MY_SETTING", "on"),
    ] {
        assert_eq!(env[k], v, "{k}");
    }
    let stream = env["AWS_LAMBDA_LOG_STREAM_NAME"].as_str().unwrap();
    assert!(stream.ends_with("/[$LATEST]i-00001"), "{stream}");
    assert_eq!(
        stream.len(),
        "YYYY/MM/DD/[$LATEST]i-00001".len(),
        "{stream}"
    );
    assert!(
        env["AWS_LAMBDA_RUNTIME_API"]
            .as_str()
            .unwrap()
            .starts_with("127.0.0.1:")
    );
    let h = &out["headers"];
    assert_eq!(
        h["lambda-runtime-aws-request-id"],
        first.request_id.as_str()
    );
    assert_eq!(h["lambda-runtime-invoked-function-arn"], arn.as_str());
    let deadline: u64 = h["lambda-runtime-deadline-ms"]
        .as_str()
        .unwrap()
        .parse()
        .unwrap();
    assert!(
        (before + 2_500..=after + 2_500).contains(&deadline),
        "{deadline}"
    );
    let trace = h["lambda-runtime-trace-id"].as_str().unwrap();
    let want = format!("-{};Sampled=0", &first.request_id.replace('-', "")[..24]);
    assert!(
        trace.starts_with("Root=1-") && trace.ends_with(&want),
        "{trace}"
    );
    assert_eq!(
        (first.instance_id.as_str(), first.cold_start),
        ("i-00001", true)
    );
    assert!(first.requested_s <= first.start_s && first.start_s <= first.end_s);

    let second = call(&platform, json!({"n": 2})).await;
    assert_eq!(
        (second.instance_id.as_str(), second.cold_start),
        ("i-00001", false)
    );
    assert_eq!(second.init_ms, 0.0);
    assert_ne!(second.request_id, first.request_id);
    assert!(platform.now_s() >= second.end_s && second.end_s > 0.0);
    assert_eq!(platform.function_names(), ["echo"]);
    let live = platform.instances();
    assert_eq!(live.len(), 1);
    assert_eq!(
        (live[0].id.as_str(), live[0].function.as_str()),
        ("i-00001", "echo")
    );
    assert!(!live[0].busy && live[0].pid > 0);
    platform.shutdown();
    let e = platform
        .invoke("echo", "{}", AtLimit::Wait)
        .await
        .unwrap_err();
    assert!(matches!(e, InvokeError::Shutdown), "{e}");
}

/// With a task root the instance starts in it and gets it as `LAMBDA_TASK_ROOT`; the
/// runtime directory stays the bootstrap's.
#[tokio::test]
async fn a_task_root_is_the_working_directory() {
    let dir = tempfile::tempdir().unwrap();
    let code = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let f = echo(dir.path(), &profile).with_task_root(code.path());
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let out = body(&call(&platform, json!({})).await);
    let code = std::fs::canonicalize(code.path()).unwrap();
    assert_eq!(
        std::fs::canonicalize(out["cwd"].as_str().unwrap()).unwrap(),
        code
    );
    assert_eq!(
        std::fs::canonicalize(out["env"]["LAMBDA_TASK_ROOT"].as_str().unwrap()).unwrap(),
        code
    );
    assert_eq!(
        out["env"]["LAMBDA_RUNTIME_DIR"],
        dir.path().to_str().unwrap()
    );
    platform.shutdown();
}

/// A posted error keeps the instance (the next call is warm); an exit loses it (the next
/// call is cold on a new one); a timeout kills it, as Lambda does.
#[tokio::test]
async fn errors_exits_and_timeouts_end_an_invocation_as_lambda_does() {
    let dir = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let mut f = echo(dir.path(), &profile);
    f.timeout_s = 1.0;
    let platform = LambdaPlatform::new(profile, vec![f], 1);

    let inv = call(&platform, json!({"error": "My.Error"})).await;
    let (ty, b) = error_of(&inv);
    assert_eq!(ty, "My.Error");
    assert_eq!(
        b,
        json!({"errorType": "My.Error", "errorMessage": "asked to"})
    );
    let warm = call(&platform, json!({})).await;
    assert_eq!(
        (warm.instance_id.as_str(), warm.cold_start),
        ("i-00001", false)
    );

    let inv = call(&platform, json!({"exit": true})).await;
    let (ty, b) = error_of(&inv);
    assert_eq!(ty, "Runtime.ExitError");
    let msg = b["errorMessage"].as_str().unwrap();
    assert!(
        msg.starts_with(&format!(
            "RequestId: {} Error: Runtime exited",
            inv.request_id
        )),
        "{msg}"
    );
    let next = call(&platform, json!({})).await;
    assert_eq!(
        (next.instance_id.as_str(), next.cold_start),
        ("i-00002", true)
    );

    let inv = call(&platform, json!({"sleep_s": 5})).await;
    let (ty, b) = error_of(&inv);
    assert_eq!(ty, "Sandbox.Timedout");
    assert_eq!(
        b["errorMessage"],
        format!("{} Task timed out after 1.00 seconds", inv.request_id)
    );
    let next = call(&platform, json!({})).await;
    assert_eq!(
        (next.instance_id.as_str(), next.cold_start),
        ("i-00003", true)
    );
    platform.shutdown();
}

/// At the account limit the Invoke API throttles at once; Step Functions' view waits for
/// the busy instance and then runs warm on it.
#[tokio::test]
async fn the_account_limit_throttles_or_waits_for_a_warm_instance() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile = PlatformProfile::unlimited();
    profile.account_concurrency_limit = Some(1);
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let busy = spawn_call(&platform, json!({"sleep_s": 1}));
    // The slot is taken once the instance exists.
    wait_for(&platform, |i| !i.is_empty()).await;
    assert_throttled(&platform).await;
    let waited = call(&platform, json!({})).await;
    let first = busy.await.unwrap();
    assert_eq!(first.instance_id, "i-00001");
    assert_eq!(
        (waited.instance_id.as_str(), waited.cold_start),
        ("i-00001", false)
    );
    assert!(waited.start_s >= first.end_s);
    assert_eq!(platform.instances().len(), 1);
    // A warm instance in use counts against the limit like a new one.
    let busy = spawn_call(&platform, json!({"sleep_s": 1}));
    wait_for(&platform, |i| i.iter().any(|i| i.busy)).await;
    assert_throttled(&platform).await;
    assert!(!busy.await.unwrap().cold_start);
    platform.shutdown();
}

/// Waiting at the limit: the slot of an instance killed at its timeout goes to the waiter,
/// which runs on a new instance; a stop requested while a call waits ends it unstarted
/// when a warm instance frees up (the one running finishes).
#[tokio::test]
async fn waiting_at_the_limit_ends_on_a_freed_slot_or_a_stop() {
    static STOP: AtomicBool = AtomicBool::new(false);
    let dir = tempfile::tempdir().unwrap();
    let mut profile = PlatformProfile::unlimited();
    profile.account_concurrency_limit = Some(1);
    profile.timeout_s = 1.0;
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    platform.set_stop(crate::backend::Stop::new(&STOP));
    let within = |f| tokio::time::timeout(Duration::from_secs(20), f);
    // The calls' own results, to see the ones that never started.
    let spawn_invoke = |event: Value| {
        let p = platform.clone();
        tokio::spawn(async move { p.invoke("echo", event.to_string(), AtLimit::Wait).await })
    };
    let killed = spawn_invoke(json!({"sleep_s": 3}));
    wait_for(&platform, |i| !i.is_empty()).await;
    let waiter = spawn_invoke(json!({}));
    let ran = within(waiter).await.unwrap().unwrap().unwrap();
    assert_eq!(
        (ran.instance_id.as_str(), ran.cold_start),
        ("i-00002", true)
    );
    let timed_out = within(killed).await.unwrap().unwrap().unwrap();
    assert_eq!(error_of(&timed_out).0, "Sandbox.Timedout");

    let running = spawn_invoke(json!({"sleep_s": 0.5}));
    wait_for(&platform, |i| i.iter().any(|i| i.busy)).await;
    let waiter = spawn_invoke(json!({}));
    tokio::time::sleep(Duration::from_millis(100)).await;
    STOP.store(true, Ordering::SeqCst);
    let e = within(waiter).await.unwrap().unwrap().unwrap_err();
    assert!(matches!(e, InvokeError::NotStarted), "{e}");
    assert_eq!(
        within(running).await.unwrap().unwrap().unwrap().instance_id,
        "i-00002"
    );
    platform.shutdown();
}

/// A runtime that reports an init error or exits during init fails the invocation with
/// that error (no event reaches it); the platform keeps no instance of it.
#[tokio::test]
async fn init_failures_are_function_errors() {
    let dir = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let mut f = echo(dir.path(), &profile);
    f.env.insert("ECHO_INIT".into(), "error".into());
    let mut g = f.clone();
    g.name = "exits".into();
    g.env.insert("ECHO_INIT".into(), "exit".into());
    let platform = LambdaPlatform::new(profile, vec![f, g], 1);
    let inv = call(&platform, json!({})).await;
    let (ty, b) = error_of(&inv);
    assert_eq!(ty, "Runtime.ConfigError");
    assert_eq!(
        b,
        json!({"errorType": "Runtime.ConfigError", "errorMessage": "no config"})
    );
    assert!(inv.cold_start && inv.request_id.is_empty());
    let inv = platform.invoke("exits", "{}", AtLimit::Wait).await.unwrap();
    let (ty, b) = error_of(&inv);
    assert_eq!(ty, "Runtime.ExitError");
    let msg = b["errorMessage"].as_str().unwrap();
    assert!(msg.contains("exit"), "{msg}");
    // Both instances are gone once their processes end.
    for _ in 0..500 {
        if platform.instances().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(platform.instances().is_empty());
    platform.shutdown();
}

/// An instance idle for longer than the TTL is reclaimed by the reaper (once a second):
/// the next call is cold on a new instance.
#[tokio::test]
async fn idle_instances_are_reclaimed_after_the_ttl() {
    let dir = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    platform.set_idle_ttl(Duration::ZERO);
    let first = call(&platform, json!({})).await;
    assert_eq!(first.instance_id, "i-00001");
    for _ in 0..500 {
        if platform.instances().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(platform.instances().is_empty());
    let next = call(&platform, json!({})).await;
    assert_eq!(
        (next.instance_id.as_str(), next.cold_start),
        ("i-00002", true)
    );
    platform.shutdown();
}

/// A reaper pass leaves a live instance within its TTL idle (the next call is warm on it)
/// and drops one whose process died while idle from the idle list.
#[tokio::test]
async fn the_reaper_keeps_live_idle_instances_and_drops_dead_ones() {
    let dir = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let idle = |p: &LambdaPlatform| -> usize {
        p.inner
            .pool
            .lock()
            .unwrap()
            .idle
            .values()
            .map(Vec::len)
            .sum()
    };
    let first = call(&platform, json!({})).await;
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    let again = call(&platform, json!({})).await;
    assert_eq!(
        (again.instance_id.as_str(), again.cold_start),
        (first.instance_id.as_str(), false)
    );
    tokio::time::sleep(Duration::from_millis(1_300)).await;
    assert_eq!(idle(&platform), 1);
    let pid = platform.instances()[0].pid;
    let killed = std::process::Command::new("kill")
        .args(["-9", &pid.to_string()])
        .status()
        .unwrap();
    assert!(killed.success());
    for _ in 0..500 {
        if platform.instances().is_empty() {
            break;
        }
        tokio::time::sleep(Duration::from_millis(10)).await;
    }
    assert!(platform.instances().is_empty());
    // The next reaper pass (once a second) drops it.
    for _ in 0..50 {
        if idle(&platform) == 0 {
            break;
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
    assert_eq!(idle(&platform), 0);
    platform.shutdown();
}

/// The platform's time zero in Unix epoch ms is taken when it is made, and its clock counts
/// seconds from then.
#[test]
fn time_zero_is_the_epoch_ms_of_creation() {
    let before = epoch_ms();
    let p = LambdaPlatform::new(PlatformProfile::unlimited(), vec![], 1);
    let after = epoch_ms();
    assert!((before..=after).contains(&p.zero_epoch_ms()));
    let a = p.now_s();
    std::thread::sleep(Duration::from_millis(30));
    let b = p.now_s();
    assert!(a < 5.0 && b - a >= 0.03 && b - a < 5.0, "{a} {b}");
}

/// New instances appear at the scaling rule's pace: on a 200 ms interval the third of
/// three concurrent calls cannot start before 0.4 s (a sleep's lower bound, so no flake).
#[tokio::test]
async fn new_instances_follow_the_scaling_rule() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile = PlatformProfile::aws_2021();
    profile.scaling = crate::platform::Scaling::Interval { interval_ms: 200.0 };
    profile.cold_start.median_ms = 0.0;
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let calls: Vec<_> = (0..3)
        .map(|i| spawn_call(&platform, json!({ "i": i })))
        .collect();
    let mut starts = Vec::new();
    for c in calls {
        let inv = c.await.unwrap();
        assert!(inv.cold_start);
        starts.push(inv.start_s);
    }
    starts.sort_by(f64::total_cmp);
    assert!(starts[1] >= 0.2 && starts[2] >= 0.4, "{starts:?}");
    platform.shutdown();
}

/// The scaling rule's schedule, reserved without starting anything: Interval 200 ms puts
/// new instance i at zero + 0.2 i s, whatever the clock; once the schedule has fallen
/// behind the clock (demand paused), the rule restarts at the request, as a rate rather
/// than a debt to catch up in a burst.
#[test]
fn the_pacer_keeps_the_rules_schedule_and_restarts_after_a_pause() {
    let mut profile = PlatformProfile::aws_2021();
    profile.scaling = crate::platform::Scaling::Interval { interval_ms: 200.0 };
    let p = LambdaPlatform::new(profile, vec![], 1);
    let zero = p.inner.pacer.lock().unwrap().zero;
    for want in 0..3u64 {
        let (n, at) = p.reserve_arrival();
        assert_eq!(n, want);
        assert!(((at - zero).as_secs_f64() - 0.2 * want as f64).abs() < 1e-9);
    }
    // Paused: the next due arrival (zero + 0.6 s) is 10 s in the past.
    let past = Instant::now() - Duration::from_secs(10);
    p.inner.pacer.lock().unwrap().zero = past;
    let before = Instant::now();
    let (n, at) = p.reserve_arrival();
    assert_eq!(n, 3, "instance numbers never restart");
    assert!(at >= before && at - before < Duration::from_secs(1));
    let (_, next) = p.reserve_arrival();
    assert!(((next - at).as_secs_f64() - 0.2).abs() < 1e-9);
}

/// A token bucket's schedule may lag the clock by one interval before it restarts: the
/// refill after a burst is a step, not a debt.
#[test]
fn the_token_bucket_pacer_restarts_only_one_interval_behind() {
    let mut profile = PlatformProfile::aws_2021();
    profile.scaling = crate::platform::Scaling::TokenBucket {
        burst: 1,
        per_interval: 1,
        interval_s: 1.0,
    };
    let p = LambdaPlatform::new(profile, vec![], 1);
    p.reserve_arrival();
    // Due at zero + 1 s, now zero + 1.1 s: within the interval's slack (up to zero + 2 s),
    // kept.
    let zero = Instant::now() - Duration::from_millis(1_100);
    p.inner.pacer.lock().unwrap().zero = zero;
    let (_, at) = p.reserve_arrival();
    assert_eq!(at, zero + Duration::from_secs(1));
    // Due at zero + 2 s, now zero + 3.5 s: more than an interval behind, restarted.
    let zero = Instant::now() - Duration::from_millis(3_500);
    p.inner.pacer.lock().unwrap().zero = zero;
    let before = Instant::now();
    let (_, at) = p.reserve_arrival();
    assert!(at >= before && at - before < Duration::from_secs(1));
    assert_eq!(p.inner.pacer.lock().unwrap().count, 1);
}

/// Freed concurrency goes to the waiters in queue order up to the account limit; a waiter
/// that gave up takes no slot.
#[test]
fn slots_go_to_waiters_in_order_up_to_the_limit() {
    let mut pool = Pool {
        busy: 1,
        ..Pool::default()
    };
    let mut receivers = Vec::new();
    for i in 0..4 {
        let (tx, rx) = oneshot::channel();
        pool.waiters.push_back((format!("f{i}"), tx));
        receivers.push(Some(rx));
    }
    receivers[0] = None;
    LambdaPlatform::grant_slots(&mut pool, Some(3));
    assert_eq!(pool.busy, 3);
    let left: Vec<&str> = pool.waiters.iter().map(|w| w.0.as_str()).collect();
    assert_eq!(left, ["f3"]);
    for rx in receivers.iter_mut().take(3).skip(1) {
        assert!(matches!(rx.as_mut().unwrap().try_recv(), Ok(Grant::Slot)));
    }
    assert!(receivers[3].as_mut().unwrap().try_recv().is_err());
    LambdaPlatform::grant_slots(&mut pool, Some(3));
    assert_eq!(pool.busy, 3, "at the limit nobody else is granted");
    LambdaPlatform::grant_slots(&mut pool, None);
    assert_eq!(pool.busy, 4);
    assert!(pool.waiters.is_empty());
    assert!(matches!(
        receivers[3].as_mut().unwrap().try_recv(),
        Ok(Grant::Slot)
    ));
}

/// Cold starts are capped at the function timeout (in ms), and the normal draw behind them
/// is clamped to ±3σ, which a correct draw reaches rarely: of 2,000 seeded aws-2021 draws
/// (median 250 ms, p90 600 ms, σ = ln 2.4 / 1.2816 = 0.683106) few sit at the upper
/// clamp, 250 · e^(3σ) = 1,940.65 ms.
#[test]
fn cold_start_samples_are_clamped_and_capped() {
    let mut rng = rand_chacha::ChaCha8Rng::seed_from_u64(7);
    let p = PlatformProfile::aws_2021();
    let top = 1_940.651_699_6;
    let at_top = (0..2000)
        .map(|_| sample_cold_start_ms(&p, &mut rng))
        .filter(|ms| {
            assert!(*ms <= top + 1e-6, "{ms}");
            *ms > top - 1e-6
        })
        .count();
    assert!(at_top <= 20, "{at_top} draws at the clamp");
    let mut slow = PlatformProfile::aws_2021();
    slow.cold_start.median_ms = 5_000.0;
    slow.cold_start.p90_ms = 5_000.0;
    slow.timeout_s = 1.0;
    assert_eq!(sample_cold_start_ms(&slow, &mut rng), 1_000.0);
}

/// Log stream dates by hand: the epoch, a leap day, the day after one, and a century that
/// is a leap year (2000) against one that is not (2100).
#[test]
fn civil_dates_by_hand() {
    assert_eq!(civil_date(0), "1970/01/01");
    assert_eq!(civil_date(59), "1970/03/01");
    assert_eq!(civil_date(11_016), "2000/02/29");
    assert_eq!(civil_date(11_017), "2000/03/01");
    assert_eq!(civil_date(19_782), "2024/02/29");
    assert_eq!(civil_date(20_453), "2025/12/31");
    assert_eq!(civil_date(20_454), "2026/01/01");
    assert_eq!(civil_date(47_540), "2100/02/28");
    assert_eq!(civil_date(47_541), "2100/03/01");
}

/// The emulated layer is laid out as `package --layer` does: `bootstrap` linking to the
/// runtime binary (absolute, so instances starting in their task root find it), and the
/// exec wrapper, executable, at the path `AWS_LAMBDA_EXEC_WRAPPER` names under `/opt`.
/// Writing it again replaces the link.
#[test]
fn the_layer_holds_the_bootstrap_link_and_the_exec_wrapper() {
    let dir = tempfile::tempdir().unwrap();
    let layer = dir.path().join("opt");
    let bin = dir.path().join("bin");
    std::fs::write(&bin, "#!/bin/sh\n").unwrap();
    for _ in 0..2 {
        write_layer(&layer, &bin).unwrap();
    }
    assert_eq!(std::fs::read_link(layer.join("bootstrap")).unwrap(), bin);
    let wrapper = layer.join(EXEC_WRAPPER_PATH.strip_prefix("/opt/").unwrap());
    assert_eq!(
        std::fs::read_to_string(&wrapper).unwrap(),
        EXEC_WRAPPER_SCRIPT
    );
    let mode = std::fs::metadata(&wrapper).unwrap().permissions().mode();
    assert_eq!(mode & 0o777, 0o755);
}

/// A response posted under another request id is refused (400 `InvalidRequestID`, as
/// Lambda answers) and does not complete the invocation in flight, which still gets the
/// runtime's own response.
#[tokio::test]
async fn a_response_for_another_request_id_is_refused() {
    let dir = tempfile::tempdir().unwrap();
    let profile = PlatformProfile::unlimited();
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let inv = call(&platform, json!({"wrong_id": true})).await;
    let b = body(&inv);
    assert_eq!(b["wrong_id"]["status"], 400);
    assert_eq!(b["wrong_id"]["body"]["errorType"], "InvalidRequestID");
    assert_eq!(b["event"], json!({"wrong_id": true}));
    // Unknown routes are 404, also under `invocation/` with a kind other than
    // `response`/`error`, and the invocation still ends with the runtime's response.
    let paths = json!([
        "invocation/{rid}/bogus",
        "elsewhere/x/response",
        "invocation/next2"
    ]);
    let inv = call(&platform, json!({ "post_paths": paths })).await;
    let posted = body(&inv)["posted"].clone();
    let statuses: Vec<u64> = posted
        .as_array()
        .unwrap()
        .iter()
        .map(|p| p["status"].as_u64().unwrap())
        .collect();
    assert_eq!(statuses, [404, 404, 404], "{posted}");
    assert_eq!(posted[1]["body"]["errorType"], "NotFound");
    platform.shutdown();
}

/// A new instance waits out its cold start (here exactly 1.5 s: median = p90) before its
/// process starts, which `init_ms` reports in milliseconds with the process's own start;
/// instances created side by side are all listed.
#[tokio::test]
async fn a_cold_start_delays_the_new_instance_and_every_instance_is_listed() {
    let dir = tempfile::tempdir().unwrap();
    let mut profile = PlatformProfile::unlimited();
    profile.cold_start = crate::platform::DurationDist {
        median_ms: 1_500.0,
        p90_ms: 1_500.0,
    };
    let f = echo(dir.path(), &profile);
    let platform = LambdaPlatform::new(profile, vec![f], 1);
    let calls: Vec<_> = (0..2)
        .map(|_| spawn_call(&platform, json!({"sleep_s": 0.3})))
        .collect();
    for c in calls {
        let inv = tokio::time::timeout(Duration::from_secs(30), c)
            .await
            .unwrap()
            .unwrap();
        assert!(inv.cold_start);
        assert!(
            (1_500.0..15_000.0).contains(&inv.init_ms),
            "init {} ms",
            inv.init_ms
        );
        assert!(inv.start_s >= 1.5, "{}", inv.start_s);
    }
    let mut ids: Vec<String> = platform.instances().into_iter().map(|i| i.id).collect();
    ids.sort();
    assert_eq!(ids, ["i-00001", "i-00002"]);
    platform.shutdown();
}
