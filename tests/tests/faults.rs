//! The fault matrix of docs/reliability.md: each test injects one fault into a real run (loopback
//! only, bounded) and checks what the user sees and that every task ends with exactly one
//! verified result and output — none lost, none duplicated.
//!
//! Tasks are a shell script (`--exec … --map-args`) that appends its id to a count file on
//! every run and writes its output. A local launch profiles the job's own tasks before the run,
//! so the script counts (and injects faults) only once `launch.json` exists, i.e. in the run
//! itself. Faults fire once: their trigger is an atomic `mkdir` of a marker directory.

mod launch_support;

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use propack_orchestrator::platform::PlatformProfile;
use propack_tests::{assert_each_succeeded_once, journal, line_counts, write_script};
use serde_json::Value;

/// A run directory under a temporary root, with its task script and count file.
struct Job {
    _tmp: tempfile::TempDir,
    root: PathBuf,
    tasks: usize,
}

impl Job {
    /// `tasks` lines of `--map-args`; `fault` is shell run by every task in the run proper
    /// (`$id` is the task id, `$root` the job's root, `fire NAME` true once per NAME).
    fn new(tasks: usize, fault: &str) -> Self {
        let tmp = tempfile::tempdir().unwrap();
        let root = tmp.path().to_owned();
        let args: String = (0..tasks).map(|i| format!("[\"arg{i}\"]\n")).collect();
        std::fs::write(root.join("args.jsonl"), args).unwrap();
        write_script(
            &root.join("task.sh"),
            &format!(
                r#"#!/bin/sh
# $1: task id, $2: output file, $3: the map-args argument.
id=$1
root='{root}'
fire() {{ mkdir "$root/fired-$1" 2>/dev/null; }}
if [ -e "$root/run/launch.json" ]; then
    echo "$id" >> "$root/count"
    {fault}
fi
echo "output of $id ($3)" > "$2"
"#,
                root = root.display()
            ),
        );
        Self {
            _tmp: tmp,
            root,
            tasks,
        }
    }

    fn run_dir(&self) -> PathBuf {
        self.root.join("run")
    }

    fn id(i: usize) -> String {
        format!("task-{i:04}")
    }

    fn ids(&self) -> Vec<String> {
        (0..self.tasks).map(Self::id).collect()
    }

    fn orchestrator(&self) -> Command {
        launch_support::orchestrator_in(&self.root)
    }

    fn exec(&self) -> String {
        format!("{} {{id}} {{output}}", self.root.join("task.sh").display())
    }

    /// `orchestrator launch` of the job at k on `platform`, plus `extra` arguments.
    fn launch(&self, k: usize, platform: &str, extra: &[&str]) -> Output {
        self.orchestrator()
            .args(["launch", "--exec", &self.exec(), "--map-args", "args.jsonl"])
            .args(["--output-prefix", "out", "--packing", &k.to_string()])
            .args([
                "--kmax",
                "1",
                "--platform",
                platform,
                "--json",
                "--out",
                "run",
            ])
            .args(extra)
            .output()
            .expect("running orchestrator launch")
    }

    fn resume(&self) -> Output {
        self.orchestrator()
            .args(["resume", "run", "--json"])
            .output()
            .expect("running orchestrator resume")
    }

    /// Per-task runs in the run proper (launch and resumes).
    fn counts(&self) -> BTreeMap<String, usize> {
        line_counts(&self.root.join("count"))
    }

    /// The acceptance check: every task succeeded exactly once in the journal, its output is
    /// there and right, and `status` calls the run complete.
    fn assert_complete(&self) {
        assert_each_succeeded_once(&self.run_dir(), &self.ids());
        for (i, id) in self.ids().iter().enumerate() {
            let out = std::fs::read_to_string(self.root.join("out").join(id))
                .unwrap_or_else(|e| panic!("output of {id}: {e}"));
            assert_eq!(out, format!("output of {id} (arg{i})\n"));
        }
        let status = json(
            &self
                .orchestrator()
                .args(["status", "run", "--json"])
                .output()
                .unwrap(),
        );
        assert_eq!(status["complete"], true, "{status}");
        assert_eq!(status["done"], self.tasks, "{status}");
    }

    /// A platform profile file: no pacing, no cold starts, the given function timeout.
    fn platform_file(&self, timeout_s: f64) -> String {
        let mut p = PlatformProfile::unlimited();
        p.name = "faults".into();
        p.timeout_s = timeout_s;
        let path = self.root.join("platform.json");
        std::fs::write(&path, serde_json::to_vec_pretty(&p).unwrap()).unwrap();
        path.display().to_string()
    }
}

fn json(out: &Output) -> Value {
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
        panic!(
            "{e}: stdout {}\nstderr {}",
            String::from_utf8_lossy(&out.stdout),
            String::from_utf8_lossy(&out.stderr)
        )
    })
}

fn stderr(out: &Output) -> String {
    String::from_utf8_lossy(&out.stderr).into_owned()
}

/// `run.json`'s per-invocation records.
fn instances(run_dir: &Path) -> Vec<Value> {
    let report: Value =
        serde_json::from_slice(&std::fs::read(run_dir.join("run.json")).unwrap()).unwrap();
    report["run"]["records"]["instances"]
        .as_array()
        .cloned()
        .unwrap_or_else(|| panic!("no instance records in run.json: {report}"))
}

/// Asserts the per-task run counts: tasks of `batch` (k tasks from `batch * k`) ran once or
/// twice (their batch's lost attempt may have started them), `twice` exactly twice, every
/// other task exactly once.
fn assert_counts(job: &Job, k: usize, batch: usize, twice: &str) {
    let counts = job.counts();
    for (i, id) in job.ids().iter().enumerate() {
        let n = counts.get(id).copied().unwrap_or(0);
        if id == twice {
            assert_eq!(n, 2, "{id} ran in the lost attempt and again: {counts:?}");
        } else if i / k == batch {
            assert!((1..=2).contains(&n), "{id} ran {n} times: {counts:?}");
        } else {
            assert_eq!(n, 1, "{id} is outside the faulted batch: {counts:?}");
        }
    }
}

#[test]
fn an_instance_sigkilled_mid_batch_is_retried_by_the_map() {
    // task-0005 (batch 1 of 3) SIGKILLs its instance's runtime the first time it runs, then
    // waits for as long as the test lives: as on Lambda, it must die with its instance.
    let job = Job::new(
        12,
        r#"[ "$id" = task-0005 ] && fire kill && echo $$ > "$root/victim.pid" && kill -9 $PPID && while [ -d "$root" ]; do sleep 0.1; done"#,
    );
    let out = job.launch(4, "unlimited", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["verified"], true, "{summary}");
    // What the user sees: one failed invocation of batch 1, retried on a new instance.
    let inst = instances(&job.run_dir());
    let failed: Vec<&Value> = inst.iter().filter(|i| i["ok"] == false).collect();
    assert_eq!(failed.len(), 1, "{inst:#?}");
    assert_eq!(failed[0]["batch"], 1);
    assert_eq!(inst.len(), 4, "3 batches + 1 retry: {inst:#?}");
    assert!(
        journal(&job.run_dir())
            .iter()
            .all(|e| e["kind"] != "failed"),
        "the retry recovered the batch: nothing failed in the journal"
    );
    job.assert_complete();
    assert_counts(&job, 4, 1, "task-0005");
    // The killed instance's task died with it (before the retry, so before the launch ended).
    let pid = std::fs::read_to_string(job.root.join("victim.pid")).unwrap();
    let stat = std::fs::read_to_string(format!("/proc/{}/stat", pid.trim())).unwrap_or_default();
    let state = stat.rsplit(") ").next().and_then(|r| r.chars().next());
    assert!(
        matches!(state, None | Some('Z' | 'X')),
        "the task of a killed instance is still running: {stat}"
    );
}

#[test]
fn an_instance_hung_past_the_function_timeout_fails_its_batch_and_resume_reruns_it() {
    // task-0009 (batch 2 of 3) stops its instance's runtime (SIGSTOP): the instance hangs until
    // the platform's 4 s function timeout kills it. Timeouts are not retried by the Map.
    let job = Job::new(
        12,
        r#"[ "$id" = task-0009 ] && fire hang && kill -STOP $PPID"#,
    );
    let platform = job.platform_file(4.0);
    let out = job.launch(4, &platform, &[]);
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let summary = json(&out);
    assert_eq!(summary["failed_tasks"], 4, "the hung batch: {summary}");
    let failed: Vec<Value> = journal(&job.run_dir())
        .into_iter()
        .filter(|e| e["kind"] == "failed")
        .collect();
    assert_eq!(failed.len(), 1, "{failed:?}");
    let why = failed[0]["error"].as_str().unwrap();
    assert!(
        why.contains("Sandbox.Timedout") && why.contains("timed out after 4.00 seconds"),
        "{why}"
    );
    let status = json(
        &job.orchestrator()
            .args(["status", "run", "--json"])
            .output()
            .unwrap(),
    );
    assert_eq!(status["done"], 8, "{status}");
    assert_eq!(status["unsuccessful"]["batch_failed"], 4, "{status}");

    let resumed = job.resume();
    assert!(resumed.status.success(), "{}", stderr(&resumed));
    let r = json(&resumed);
    assert_eq!(r["ran"], 4, "only the hung batch runs again: {r}");
    job.assert_complete();
    assert_counts(&job, 4, 2, "task-0009");
}

#[test]
fn a_runtime_crash_during_init_is_retried_without_running_any_task_twice() {
    let job = Job::new(8, "");
    // The function's bootstrap is a wrapper that exits before the runtime starts, once.
    let (_, bootstrap) = launch_support::binaries();
    let wrapper = job.root.join("bootstrap-wrapper");
    write_script(
        &wrapper,
        &format!(
            "#!/bin/sh\nif [ -e '{root}/run/launch.json' ] && mkdir '{root}/fired-init' 2>/dev/null; then\n    echo 'injected: crash during init' >&2\n    exit 70\nfi\nexec '{bootstrap}' \"$@\"\n",
            root = job.root.display(),
            bootstrap = bootstrap.display()
        ),
    );
    let out = job.launch(
        4,
        "unlimited",
        &["--bootstrap", &wrapper.display().to_string()],
    );
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["verified"], true);
    let inst = instances(&job.run_dir());
    let failed: Vec<&Value> = inst.iter().filter(|i| i["ok"] == false).collect();
    assert_eq!(
        failed.len(),
        1,
        "the crashed init is one failed attempt: {inst:#?}"
    );
    assert_eq!(failed[0]["cold_start"], true, "{inst:#?}");
    assert!(
        journal(&job.run_dir())
            .iter()
            .all(|e| e["kind"] != "failed")
    );
    job.assert_complete();
    // No task ran in the crashed instance: every task ran exactly once.
    let counts = job.counts();
    assert_eq!(counts.len(), 8, "{counts:?}");
    assert!(counts.values().all(|&n| n == 1), "{counts:?}");
}

#[test]
fn a_batch_result_over_its_budget_is_shortened_not_lost() {
    // 80 tasks at k = 40, each writing 8 KB to stdout and to stderr: 40 records with 4 KiB
    // tails each are ~330 KB, above both Step Functions' 256 KiB and the batch's budget.
    let job = Job::new(
        80,
        r#"head -c 8000 /dev/zero | tr '\0' o; head -c 8000 /dev/zero | tr '\0' e >&2"#,
    );
    let out = job.launch(40, "unlimited", &[]);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["verified"], true);
    let definition: Value =
        serde_json::from_slice(&std::fs::read(job.run_dir().join("definition.asl.json")).unwrap())
            .unwrap();
    let budget = find_u64(&definition, "max_result_bytes").expect("the definition sets a budget");
    let results: Vec<Value> = journal(&job.run_dir())
        .into_iter()
        .filter(|e| e["kind"] == "result")
        .collect();
    assert_eq!(results.len(), 2, "one result per batch");
    for r in &results {
        let r = &r["result"];
        assert_eq!(r["truncated"], true, "the budget shortened it");
        assert_eq!(
            r["tasks"].as_array().unwrap().len(),
            40,
            "no record dropped"
        );
        // The journal re-serialises the result; its size is the result's, give or take the
        // few bytes of fields the runtime omits when empty.
        let bytes = serde_json::to_vec(r).unwrap().len() as u64;
        assert!(
            bytes <= budget + 2048,
            "{bytes} bytes against a budget of {budget}"
        );
        for t in r["tasks"].as_array().unwrap() {
            assert_eq!(t["status"], "succeeded", "{t}");
            assert_eq!(t["truncated"], true, "{t}");
            // The whole logs are at the run's logs prefix, which the definition set.
            for (field, c) in [("stdout_uri", "o"), ("stderr_uri", "e")] {
                let uri = t[field]
                    .as_str()
                    .unwrap_or_else(|| panic!("no {field}: {t}"));
                assert!(uri.contains("/out/logs/"), "{uri}");
                let log = std::fs::read_to_string(uri.strip_prefix("file://").unwrap()).unwrap();
                assert_eq!(log, c.repeat(8000), "{uri}");
            }
        }
    }
    job.assert_complete();
    assert!(job.counts().values().all(|&n| n == 1));
}

/// The first number under `key` anywhere in `v`.
fn find_u64(v: &Value, key: &str) -> Option<u64> {
    match v {
        Value::Object(m) => m
            .get(key)
            .and_then(Value::as_u64)
            .or_else(|| m.values().find_map(|x| find_u64(x, key))),
        Value::Array(a) => a.iter().find_map(|x| find_u64(x, key)),
        _ => None,
    }
}

#[test]
fn a_manifest_with_a_duplicate_task_id_is_refused_before_anything_runs() {
    let job = Job::new(1, "");
    let task = |id: &str| serde_json::json!({"id": id, "exec": {"program": job.root.join("task.sh"), "args": [id, "output", "x"]}});
    let tasks = serde_json::json!([task("a"), task("b"), task("a")]);
    std::fs::write(job.root.join("tasks.json"), tasks.to_string()).unwrap();
    let out = job
        .orchestrator()
        .args(["launch", "--tasks-file", "tasks.json", "--packing", "1"])
        .args(["--platform", "unlimited", "--out", "run", "--json"])
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(2),
        "a usage error: {}",
        stderr(&out)
    );
    assert!(
        stderr(&out).contains("task id \"a\" appears twice"),
        "{}",
        stderr(&out)
    );
    assert!(!job.run_dir().join("launch.json").exists());
    assert!(!job.run_dir().join("journal.jsonl").exists());
    assert!(job.counts().is_empty(), "nothing ran");

    // The same duplicate in one batch sent straight to a function: InvalidBatch naming the field.
    let (_, bootstrap) = launch_support::binaries();
    let batch = serde_json::json!({"tasks": [
        {"id": "a", "builtin": {"name": "noop"}},
        {"id": "a", "builtin": {"name": "noop"}}]});
    let out = bootstrap_run(bootstrap, &batch.to_string());
    assert_eq!(out.status.code(), Some(1), "{}", stderr(&out));
    let err = json(&out);
    assert_eq!(err["errorType"], "InvalidBatch", "{err}");
    assert_eq!(
        err["errorMessage"], "field `tasks[1].id`: duplicate task id \"a\"",
        "{err}"
    );
}

fn bootstrap_run(bootstrap: &Path, batch: &str) -> Output {
    use std::io::Write;
    let mut child = Command::new(bootstrap)
        .args(["run", "--batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap();
    child
        .stdin
        .take()
        .unwrap()
        .write_all(batch.as_bytes())
        .unwrap();
    child.wait_with_output().unwrap()
}

#[test]
fn a_malformed_manifest_line_is_refused_with_its_line_number() {
    let job = Job::new(4, "");
    // Line 3 of the arguments file is cut short.
    std::fs::write(
        job.root.join("args.jsonl"),
        "[\"a\"]\n[\"b\"]\n[\"c\"\n[\"d\"]\n",
    )
    .unwrap();
    let out = job.launch(2, "unlimited", &[]);
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(
        err.contains("args.jsonl:3: not a JSON array of strings"),
        "{err}"
    );
    assert!(!job.run_dir().join("launch.json").exists());
    assert!(job.counts().is_empty(), "nothing ran");

    // A tasks file whose second task has no action: the task and the field are named.
    std::fs::write(
        job.root.join("tasks.json"),
        r#"[{"id": "a", "builtin": {"name": "noop"}},
            {"id": "b", "timeout_ms": 5}]"#,
    )
    .unwrap();
    let out = job
        .orchestrator()
        .args(["launch", "--tasks-file", "tasks.json", "--packing", "1"])
        .args(["--platform", "unlimited", "--out", "run2", "--json"])
        .output()
        .unwrap();
    assert_eq!(out.status.code(), Some(2), "{}", stderr(&out));
    let err = stderr(&out);
    assert!(err.contains("tasks.json"), "{err}");
    assert!(err.contains("`exec`"), "{err}");
    assert!(err.contains("line 2"), "{err}");
}

/// `launch --backend aws --mode direct` of `job` against `lambda_url` and S3 at `s3_url`.
fn launch_aws(job: &Job, bucket: &str, k: usize, s3_url: &str, lambda_url: &str) -> Output {
    let mut cmd = job.orchestrator();
    cmd.args([
        "launch",
        "--backend",
        "aws",
        "--mode",
        "direct",
        "--bucket",
        bucket,
    ])
    .args([
        "--function",
        "propack",
        "--exec",
        &job.exec(),
        "--map-args",
        "args.jsonl",
    ])
    .args(["--output-prefix", &format!("s3://{bucket}/out/")])
    .args(["--packing", &k.to_string(), "--platform", "unlimited"])
    .args(["--max-in-flight", "8", "--json", "--out", "run"])
    .env("AWS_ENDPOINT_URL_LAMBDA", lambda_url);
    launch_support::aws_env(&mut cmd, s3_url);
    cmd.output().expect("running orchestrator launch")
}

/// The outputs in the bucket (read from moto directly, not through any proxy).
fn assert_s3_outputs(job: &Job, moto: &str, bucket: &str) {
    use propack_orchestrator::backend::aws::AwsClients;
    use propack_orchestrator::backend::aws::clients::static_conf;
    use propack_runtime::s3::S3Store;
    use propack_runtime::uri::S3Uri;
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = S3Store::new(AwsClients::from_conf(&static_conf(moto, "us-east-1"), true).s3);
    rt.block_on(async {
        for (i, id) in job.ids().iter().enumerate() {
            let key = format!("out/{id}");
            let data = store
                .get_bytes(&S3Uri::new(bucket.to_owned(), key.clone()))
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(
                String::from_utf8(data).unwrap(),
                format!("output of {id} (arg{i})\n")
            );
        }
    });
}

fn aws_info(run_dir: &Path) -> Value {
    serde_json::from_slice(&std::fs::read(run_dir.join("aws.json")).unwrap()).unwrap()
}

#[test]
fn s3_500s_503s_and_resets_from_a_fault_proxy_are_retried_by_every_client() {
    use propack_tests::fault_proxy::{Fault, FaultProxy};
    let Some(moto) = propack_tests::moto_url() else {
        return;
    };
    // The orchestrator (staging, listing) and every instance (outputs) reach S3 through the
    // proxy: each new request gets, in turn, 503 SlowDown, 500 InternalError, a reset, a pass.
    let proxy = FaultProxy::start(
        &moto,
        vec![
            Fault::SlowDown,
            Fault::InternalError,
            Fault::Reset,
            Fault::Pass,
        ],
    );
    let job = Job::new(16, "");
    let bucket = format!("faults-s3-{}", std::process::id());
    let (status, body) = propack_tests::http_request(&moto, "PUT", &format!("/{bucket}"), &[], "");
    assert!(status == 200, "creating the bucket: {status} {body}");
    let (_server, lambda_url) = launch_support::platform_serve("unlimited", &proxy.url(), &[]);
    let out = launch_aws(&job, &bucket, 4, &proxy.url(), &lambda_url);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["verified"], true);
    let (passed, e500, e503, resets) = proxy.counts().snapshot();
    eprintln!("fault proxy: {passed} passed, {e500} × 500, {e503} × 503 SlowDown, {resets} resets");
    // Every S3 request of the run is new (distinct keys), so a quarter of them met each fault.
    assert!(
        e503 >= 4 && e500 >= 4 && resets >= 4,
        "{passed} {e500} {e503} {resets}"
    );
    assert_each_succeeded_once(&job.run_dir(), &job.ids());
    assert_s3_outputs(&job, &moto, &bucket);
    let counts = job.counts();
    assert_eq!(counts.len(), 16, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "S3 faults never re-run a task: {counts:?}"
    );
}

#[test]
fn a_429_storm_on_invoke_is_absorbed_by_the_direct_fan_outs_backoff() {
    let Some(moto) = propack_tests::moto_url() else {
        return;
    };
    // An account concurrency limit of 2 against 8 invocations in flight: the Invoke API
    // answers 429 TooManyRequestsException to everything above 2 busy instances.
    let job = Job::new(24, "sleep 0.3");
    let mut p = PlatformProfile::unlimited();
    p.name = "throttled".into();
    p.account_concurrency_limit = Some(2);
    let platform = job.root.join("throttled.json");
    std::fs::write(&platform, serde_json::to_vec(&p).unwrap()).unwrap();
    let bucket = format!("faults-429-{}", std::process::id());
    let (status, body) = propack_tests::http_request(&moto, "PUT", &format!("/{bucket}"), &[], "");
    assert!(status == 200, "creating the bucket: {status} {body}");
    let (_server, lambda_url) =
        launch_support::platform_serve(&platform.display().to_string(), &moto, &[]);
    let out = launch_aws(&job, &bucket, 2, &moto, &lambda_url);
    assert!(out.status.success(), "{}", stderr(&out));
    assert_eq!(json(&out)["verified"], true);
    let info = aws_info(&job.run_dir());
    let retries = info["retries"].as_u64().unwrap();
    eprintln!("429 storm: {retries} throttled invocations retried for 12 batches");
    assert!(retries > 0, "the storm was absorbed by retries: {info}");
    assert_each_succeeded_once(&job.run_dir(), &job.ids());
    assert_s3_outputs(&job, &moto, &bucket);
    let counts = job.counts();
    assert_eq!(counts.len(), 24, "{counts:?}");
    assert!(
        counts.values().all(|&n| n == 1),
        "a throttled invoke never ran: {counts:?}"
    );
}
