//! Step Functions mode against moto's server: the execution ARN is journalled as soon as it
//! starts, a Ctrl-C leaves the execution running (or stops it with `--stop-on-interrupt`),
//! and `orchestrator resume` re-attaches to it — waits while it runs, collects its
//! ResultWriter files from S3, and runs only the tasks still not done.
//!
//! moto's (non-executing) Step Functions keeps a started execution RUNNING until
//! StopExecution makes it ABORTED, and never runs a Map; so the test plays the Map: it reads
//! the run's manifest from moto's S3, writes each chosen batch's outputs and the ResultWriter
//! files (`results/<map run>/manifest.json`, `SUCCEEDED_0.json`, `FAILED_0.json`) in the
//! layout Step Functions uses, and then stops the execution to end it. moto's executing
//! backend (which `aws_moto.rs` switches on for a Pass-state test) is switched off here:
//! it rejects the Distributed Map's fields.

mod launch_support;

use std::collections::{BTreeMap, BTreeSet};
use std::io::{BufRead, BufReader};
use std::path::Path;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use propack_orchestrator::backend::aws::clients::static_conf;
use propack_orchestrator::backend::aws::sfn::{self, Executions, Reattached, SdkExecutions};
use propack_orchestrator::backend::aws::{AwsBackend, AwsClients, AwsOptions};
use propack_orchestrator::backend::{Progress, Stop};
use propack_orchestrator::journal::{Download, ExecutionRecord};
use propack_runtime::s3::S3Store;
use propack_runtime::uri::S3Uri;
use propack_runtime::{BatchResult, ExecSpec, Task, TaskAction};
use propack_step_functions::manifest::RunLayout;
use propack_tests::{assert_each_succeeded_once, http_request, journal, moto_url};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";
const ROLE: &str = "arn:aws:iam::123456789012:role/propack-sfn-resume";

fn clients(url: &str) -> AwsClients {
    AwsClients::from_conf(&static_conf(url, REGION), true)
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

/// A name unique to this test process and call.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// moto's non-executing Step Functions: any definition, executions RUNNING until stopped.
fn moto_without_execution(url: &str) {
    let (status, body) = http_request(
        url,
        "POST",
        "/moto-api/config",
        &[("Content-Type", "application/json")],
        r#"{"stepfunctions":{"execute_state_machine":false}}"#,
    );
    assert!(status == 200 || status == 201, "{status} {body}");
}

/// A state machine of one Pass state, and a started (forever RUNNING) execution of it.
async fn running_execution(c: &AwsClients) -> String {
    let def = r#"{"StartAt":"P","States":{"P":{"Type":"Pass","End":true}}}"#;
    let sm = sfn::ensure_state_machine(&c.sfn, &unique("sm"), def, Some(ROLE))
        .await
        .unwrap();
    let (arn, started) = sfn::start_or_attach(&c.sfn, &sm, &unique("run"), "{}")
        .await
        .unwrap();
    assert!(started);
    arn
}

async fn status_of(c: &AwsClients, arn: &str) -> String {
    let d = c
        .sfn
        .describe_execution()
        .execution_arn(arn)
        .send()
        .await
        .unwrap();
    d.status().as_str().to_owned()
}

/// A batch result as the runtime returns it, every task `succeeded`.
fn batch_result(ids: &[&str]) -> Value {
    let tasks: Vec<Value> = ids
        .iter()
        .map(|id| {
            json!({"id": id, "status": "succeeded", "exit_code": 0, "started_at": 1001,
                   "ended_at": 1400, "stdout_tail": "", "stderr_tail": ""})
        })
        .collect();
    let v = json!({"schema_version": propack_runtime::contract::SCHEMA_VERSION,
        "instance_id": "i-1", "cold_start": true, "init_ms": 5, "received_at": 1000,
        "started_at": 1001, "ended_at": 1500, "vcpus": 2, "parallelism": 2, "tasks": tasks});
    serde_json::from_value::<BatchResult>(v.clone()).expect("a valid batch result");
    v
}

/// Writes ResultWriter's files for one Map Run under `results_prefix` (`.../results/`):
/// one SUCCEEDED file of `ok` batches (with their results) and one FAILED file of `failed`.
async fn write_result_writer(
    store: &S3Store,
    bucket: &str,
    results_prefix: &str,
    ok: &[Vec<Value>],
    failed: &[Vec<Value>],
) {
    let dir = format!(
        "{}/{}",
        results_prefix.trim_end_matches('/'),
        unique("maprun")
    );
    let entry = |items: &Vec<Value>, status: &str| {
        let ids: Vec<&str> = items.iter().map(|t| t["id"].as_str().unwrap()).collect();
        let mut e = json!({"Status": status, "Input": json!({"Items": items}).to_string(),
                           "ExecutionArn": "arn:aws:states:us-east-1:123456789012:execution:x:y"});
        if status == "SUCCEEDED" {
            // The lambda:invoke integration's output, result under Payload.
            e["Output"] = json!({"Payload": batch_result(&ids), "StatusCode": 200})
                .to_string()
                .into();
        } else {
            e["Error"] = "Lambda.Unknown".into();
            e["Cause"] = "the instance died".into();
        }
        e
    };
    let mut files = json!({"SUCCEEDED": [], "FAILED": [], "PENDING": []});
    for (status, batches) in [("SUCCEEDED", ok), ("FAILED", failed)] {
        if batches.is_empty() {
            continue;
        }
        let key = format!("{dir}/{status}_0.json");
        let body: Vec<Value> = batches.iter().map(|b| entry(b, status)).collect();
        let bytes = serde_json::to_vec(&body).unwrap();
        files[status] = json!([{"Key": key, "Size": bytes.len()}]);
        store
            .put_bytes(&S3Uri::new(bucket, key.as_str()), bytes)
            .await
            .unwrap();
    }
    let manifest = json!({"DestinationBucket": bucket, "MapRunArn": "arn:x", "ResultFiles": files});
    store
        .put_bytes(
            &S3Uri::new(bucket, format!("{dir}/manifest.json")),
            serde_json::to_vec(&manifest).unwrap(),
        )
        .await
        .unwrap();
}

/// Records what reattach told the journal and the user.
#[derive(Default)]
struct Seen {
    lines: std::sync::Mutex<Vec<String>>,
    waiting: tokio::sync::Notify,
}

impl Progress for Seen {
    fn batch_done(&self, _tasks: usize, _failed: usize) {}
    fn batch_result(&self, r: &BatchResult) {
        let ids: Vec<&str> = r.tasks.iter().map(|t| t.id.as_str()).collect();
        self.lines
            .lock()
            .unwrap()
            .push(format!("result {}", ids.join(",")));
    }
    fn batch_lost(&self, ids: &[String], why: &str) {
        self.lines
            .lock()
            .unwrap()
            .push(format!("lost {} ({why})", ids.join(",")));
    }
    fn note(&self, text: &str) {
        if text.contains("still running") {
            self.waiting.notify_one();
        }
    }
}

#[test]
fn reattach_waits_for_a_real_execution_then_collects_its_result_writer_files_and_outputs() {
    let Some(url) = moto_url() else { return };
    moto_without_execution(&url);
    rt().block_on(async {
        let c = clients(&url);
        let store = S3Store::new(c.s3.clone());
        let bucket = unique("reattach");
        store.ensure_bucket(&bucket).await.unwrap();
        let arn = running_execution(&c).await;
        let api = SdkExecutions {
            sfn: c.sfn.clone(),
            store: store.clone(),
        };
        assert!(
            matches!(
                api.describe(&arn).await.unwrap(),
                sfn::ExecutionState::Running(_)
            ),
            "moto keeps a started execution running"
        );

        // The Map finished batches [a, b] and [c] and lost [d, e]; task f never ran.
        let prefix = "propack/runs/r1/results/";
        let item = |id: &str| json!({"id": id, "builtin": {"name": "noop"}});
        write_result_writer(
            &store,
            &bucket,
            prefix,
            &[vec![item("a"), item("b")], vec![item("c")]],
            &[vec![item("d"), item("e")]],
        )
        .await;
        let out_a = S3Uri::new(bucket.as_str(), "propack/runs/r1/out/0-a/result");
        store
            .put_bytes(&out_a, b"a's output".to_vec())
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let local_a = dir.path().join("out/a.txt");
        let execution = ExecutionRecord {
            execution_arn: arn.clone(),
            results_prefix: format!("s3://{bucket}/{prefix}"),
            downloads: vec![Download {
                uri: out_a.to_string(),
                path: local_a.clone(),
                task: "a".into(),
            }],
        };
        let mut opts = AwsOptions::new(bucket.clone());
        opts.poll_every = Duration::from_millis(50);
        let backend = AwsBackend::with_clients(c.clone(), opts);
        let seen = Seen::default();
        // "c" was journalled before the orchestrator died: its batch is not journalled again.
        let pending: BTreeSet<String> = ["a", "b", "d", "e", "f"]
            .iter()
            .map(|s| s.to_string())
            .collect();
        // The execution ends (StopExecution: ABORTED on moto) once reattach is waiting for it.
        let ender = {
            let c = c.clone();
            let arn = arn.clone();
            let seen = &seen;
            async move {
                seen.waiting.notified().await;
                c.sfn
                    .stop_execution()
                    .execution_arn(&arn)
                    .send()
                    .await
                    .unwrap();
            }
        };
        let (r, ()) = tokio::join!(
            backend.reattach(&execution, &pending, &seen, Stop::NEVER),
            ender
        );
        let Reattached::Collected {
            end,
            waited,
            collected,
        } = r.unwrap()
        else {
            panic!("an uninterrupted re-attach collects")
        };
        assert_eq!(end.status, "ABORTED");
        assert!(waited, "it was running when re-attached");
        assert_eq!(collected.results.len(), 1);
        assert_eq!(
            *seen.lines.lock().unwrap(),
            vec![
                "result a,b".to_owned(),
                "lost d,e (FAILED: Lambda.Unknown the instance died)".to_owned(),
                "lost f (the execution ended ABORTED without a result for these tasks)".to_owned(),
            ]
        );
        assert_eq!(
            std::fs::read(&local_a).unwrap(),
            b"a's output",
            "the outputs of collected tasks are downloaded"
        );

        // Re-attaching again to the ended execution collects at once, without waiting.
        let seen = Seen::default();
        let only_f: BTreeSet<String> = ["f".to_owned()].into();
        let r = backend
            .reattach(&execution, &only_f, &seen, Stop::NEVER)
            .await
            .unwrap();
        assert!(
            matches!(&r, Reattached::Collected { waited: false, .. }),
            "{r:?}"
        );
    });
}

#[test]
fn an_interrupted_reattach_leaves_a_real_execution_running_or_stops_it() {
    let Some(url) = moto_url() else { return };
    moto_without_execution(&url);
    static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(true);
    rt().block_on(async {
        let c = clients(&url);
        for stop_it in [false, true] {
            let arn = running_execution(&c).await;
            let mut opts = AwsOptions::new("unused");
            opts.stop_on_interrupt = stop_it;
            let backend = AwsBackend::with_clients(c.clone(), opts);
            let execution = ExecutionRecord {
                execution_arn: arn.clone(),
                results_prefix: "s3://unused/propack/runs/r/results/".into(),
                downloads: Vec::new(),
            };
            let pending: BTreeSet<String> = ["a".to_owned()].into();
            let r = backend
                .reattach(
                    &execution,
                    &pending,
                    &Seen::default(),
                    Stop::new(&INTERRUPTED),
                )
                .await
                .unwrap();
            assert_eq!(r, Reattached::Interrupted { stopped: stop_it });
            let want = if stop_it { "ABORTED" } else { "RUNNING" };
            assert_eq!(status_of(&c, &arn).await, want);
        }
    });
}

/// `orchestrator` with S3 and Step Functions on moto.
fn orchestrator(cwd: &Path, moto: &str) -> Command {
    let mut cmd = launch_support::orchestrator_in(cwd);
    launch_support::aws_env(&mut cmd, moto);
    cmd.env("AWS_ENDPOINT_URL_SFN", moto);
    cmd
}

/// Writes `tasks.json`: `n` exec tasks, each naming a local output file.
fn tasks_file(dir: &Path, n: usize) -> Vec<String> {
    let tasks: Vec<Task> = (0..n)
        .map(|i| Task {
            id: format!("t{i:03}"),
            action: TaskAction::Exec(ExecSpec {
                program: "/bin/true".into(),
                args: Vec::new(),
                env: BTreeMap::new(),
            }),
            timeout_ms: None,
            inputs: BTreeMap::new(),
            outputs: BTreeMap::from([(
                "out".to_owned(),
                format!("file://{}/out/t{i:03}.txt", dir.display()),
            )]),
        })
        .collect();
    std::fs::write(
        dir.join("tasks.json"),
        serde_json::to_vec_pretty(&tasks).unwrap(),
    )
    .unwrap();
    tasks.into_iter().map(|t| t.id).collect()
}

/// `launch --backend aws --mode sfn` of `tasks.json` at k, started in the background.
fn spawn_launch(cwd: &Path, moto: &str, bucket: &str, sm: &str, k: usize, extra: &[&str]) -> Child {
    orchestrator(cwd, moto)
        .args([
            "launch",
            "--tasks-file",
            "tasks.json",
            "--backend",
            "aws",
            "--mode",
            "sfn",
        ])
        .args([
            "--bucket",
            bucket,
            "--state-machine",
            sm,
            "--role-arn",
            ROLE,
        ])
        .args(["--packing", &k.to_string(), "--out", "run", "--json"])
        .args(extra)
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// Waits until the run's journal has the execution's line and returns its ARN.
fn journalled_execution(run: &Path, child: &mut Child) -> String {
    let t0 = Instant::now();
    loop {
        if let Some(e) = journal(run).iter().find(|e| e["kind"] == "execution") {
            return e["execution"]["execution_arn"].as_str().unwrap().to_owned();
        }
        if let Some(status) = child.try_wait().unwrap() {
            let mut err = String::new();
            std::io::Read::read_to_string(&mut child.stderr.take().unwrap(), &mut err).unwrap();
            panic!("launch exited ({status}) before starting its execution: {err}");
        }
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "no execution journalled"
        );
        std::thread::sleep(Duration::from_millis(20));
    }
}

/// The test as Step Functions' Map for `run_id`: reads its manifest from S3, batches it by
/// `k` (manifest order is batch order), writes the outputs of batches `ok` (counting each
/// task it runs in `runs`) and their results, and records batches `failed` as failed.
async fn play_map(
    store: &S3Store,
    bucket: &str,
    run_id: &str,
    k: usize,
    ok: std::ops::Range<usize>,
    failed: std::ops::Range<usize>,
    runs: &mut BTreeMap<String, usize>,
) -> usize {
    let layout = RunLayout::new(run_id);
    let manifest: Vec<Value> = serde_json::from_slice(
        &store
            .get_bytes(&S3Uri::new(bucket, layout.manifest_key()))
            .await
            .unwrap(),
    )
    .unwrap();
    let batches: Vec<Vec<Value>> = manifest.chunks(k).map(<[Value]>::to_vec).collect();
    for b in &batches[ok.clone()] {
        for t in b {
            let id = t["id"].as_str().unwrap();
            *runs.entry(id.to_owned()).or_default() += 1;
            let uri = S3Uri::parse(t["outputs"]["out"].as_str().unwrap()).unwrap();
            store
                .put_bytes(&uri, format!("{id} ran in {run_id}\n").into_bytes())
                .await
                .unwrap();
        }
    }
    write_result_writer(
        store,
        bucket,
        &layout.results_prefix(),
        &batches[ok],
        &batches[failed],
    )
    .await;
    manifest.len()
}

/// Reads a child's stderr line by line until a line contains `marker`; the rest is
/// collected by a thread whose handle returns everything read.
fn stderr_until(child: &mut Child, marker: &str) -> std::thread::JoinHandle<String> {
    let mut lines = BufReader::new(child.stderr.take().unwrap()).lines();
    let mut seen = String::new();
    loop {
        let line = lines
            .next()
            .unwrap_or_else(|| panic!("stderr ended before {marker:?}: {seen}"))
            .unwrap();
        seen.push_str(&line);
        seen.push('\n');
        if line.contains(marker) {
            break;
        }
    }
    std::thread::spawn(move || {
        for l in lines.map_while(Result::ok) {
            seen.push_str(&l);
            seen.push('\n');
        }
        seen
    })
}

#[test]
fn a_killed_sfn_launch_is_resumed_by_reattaching_to_its_running_execution() {
    let Some(moto) = moto_url() else { return };
    moto_without_execution(&moto);
    let c = clients(&moto);
    let store = S3Store::new(c.s3.clone());
    let rt = rt();
    let bucket = unique("sfn-resume");
    rt.block_on(store.ensure_bucket(&bucket)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cwd = dir.path();
    // 84 tasks at k = 2: 42 batches, more than an inline Map runs, so a Distributed Map
    // whose results come from ResultWriter.
    let ids = tasks_file(cwd, 84);
    let sm = unique("sm");
    let mut launch = spawn_launch(cwd, &moto, &bucket, &sm, 2, &[]);
    let run = cwd.join("run");
    let arn = journalled_execution(&run, &mut launch);
    // The ARN is durable before any result: the orchestrator is SIGKILLed while waiting.
    launch.kill().unwrap();
    launch.wait().unwrap();
    let aws: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("aws.json")).unwrap()).unwrap();
    assert_eq!(aws["execution_arn"], arn.as_str());
    assert_eq!(rt.block_on(status_of(&c, &arn)), "RUNNING");
    let launch_json: Value =
        serde_json::from_str(&std::fs::read_to_string(run.join("launch.json")).unwrap()).unwrap();
    let run_id = launch_json["run_id"].as_str().unwrap().to_owned();
    assert_eq!(
        arn,
        sfn::execution_arn(
            &rt.block_on(sfn::find_state_machine(&c.sfn, &sm))
                .unwrap()
                .unwrap(),
            &sfn::execution_name(&run_id)
        )
    );

    // While nobody waits, the Map finishes batches 0–19 (40 tasks) and loses batch 20.
    let mut runs = BTreeMap::new();
    let staged = rt.block_on(play_map(
        &store,
        &bucket,
        &run_id,
        2,
        0..20,
        20..21,
        &mut runs,
    ));
    assert_eq!(staged, 84);

    // resume finds the execution still running and waits for it; the Map then ends
    // (StopExecution: ABORTED on moto) and resume collects it before running the rest.
    let mut resume = orchestrator(cwd, &moto)
        .args(["resume", "run", "--packing", "1", "--json"])
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    let rest = stderr_until(&mut resume, "is still running: waiting for it");
    rt.block_on(c.sfn.stop_execution().execution_arn(&arn).send())
        .unwrap();
    // The rest (44 tasks at k = 1: 44 batches, Distributed again) runs as attempt 2 in a
    // new execution, which the test's Map runs to the end.
    let second_run = format!("{run_id}-r2");
    let second = sfn::execution_arn(
        &rt.block_on(sfn::find_state_machine(&c.sfn, &sm))
            .unwrap()
            .unwrap(),
        &sfn::execution_name(&second_run),
    );
    let t0 = Instant::now();
    while rt
        .block_on(c.sfn.describe_execution().execution_arn(&second).send())
        .is_err()
    {
        assert!(
            t0.elapsed() < Duration::from_secs(120),
            "resume started no second execution"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    let staged2 = rt.block_on(play_map(
        &store,
        &bucket,
        &second_run,
        1,
        0..44,
        0..0,
        &mut runs,
    ));
    rt.block_on(c.sfn.stop_execution().execution_arn(&second).send())
        .unwrap();
    let out = resume.wait_with_output().unwrap();
    let stderr = rest.join().unwrap();
    assert!(out.status.success(), "resume failed: {stderr}");
    let summary: Value = serde_json::from_slice(&out.stdout).unwrap();

    // Attempt 1's results were journalled as attempt 1's; only the 44 others ran again.
    assert_eq!(
        summary["reattached"],
        json!([{"attempt": 1, "execution_arn": arn, "status": "ABORTED", "waited": true,
                "results": 20, "succeeded": 40, "lost": 44, "interrupted": false, "stopped": false}])
    );
    assert_eq!(
        (summary["attempt"].as_u64(), summary["ran"].as_u64()),
        (Some(2), Some(44))
    );
    assert_eq!(staged2, 44, "attempt 2 staged exactly the tasks not done");
    assert_eq!(summary["status"]["complete"], true);
    let attempts = &summary["status"]["attempts"];
    assert_eq!(
        (
            &attempts[0]["succeeded"],
            &attempts[0]["failed"],
            &attempts[0]["missing"]
        ),
        (&json!(40), &json!(44), &json!(0))
    );
    assert_eq!(
        (&attempts[1]["tasks"], &attempts[1]["succeeded"]),
        (&json!(44), &json!(44))
    );
    assert_each_succeeded_once(&run, &ids);
    assert!(runs.values().all(|&n| n == 1), "a task ran twice: {runs:?}");
    assert_eq!(runs.len(), 84);
    // Every output was downloaded: the first 40 by the re-attach, the rest by attempt 2.
    let from_first = ids
        .iter()
        .filter(|id| {
            let text = std::fs::read_to_string(cwd.join(format!("out/{id}.txt"))).unwrap();
            assert!(text.starts_with(&format!("{id} ran in {run_id}")), "{text}");
            !text.contains(&second_run)
        })
        .count();
    assert_eq!(from_first, 40);
}

#[test]
fn ctrl_c_in_sfn_mode_leaves_the_execution_running_or_stops_it_with_stop_on_interrupt() {
    let Some(moto) = moto_url() else { return };
    moto_without_execution(&moto);
    let c = clients(&moto);
    let rt = rt();
    let bucket = unique("sfn-int");
    rt.block_on(S3Store::new(c.s3.clone()).ensure_bucket(&bucket))
        .unwrap();
    for stop_it in [false, true] {
        let dir = tempfile::tempdir().unwrap();
        let cwd = dir.path();
        tasks_file(cwd, 4);
        let extra: &[&str] = if stop_it {
            &["--stop-on-interrupt"]
        } else {
            &[]
        };
        let mut launch = spawn_launch(cwd, &moto, &bucket, &unique("sm"), 2, extra);
        let run = cwd.join("run");
        let arn = journalled_execution(&run, &mut launch);
        let sent = Command::new("kill")
            .args(["-INT", &launch.id().to_string()])
            .status()
            .unwrap();
        assert!(sent.success());
        let out = launch.wait_with_output().unwrap();
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(1), "{stderr}");
        assert!(
            stderr.contains("interrupted: no longer waiting for the Step Functions execution"),
            "{stderr}"
        );
        let resume_cmd = format!(
            "orchestrator resume {}",
            run.canonicalize().unwrap().display()
        );
        if stop_it {
            assert!(
                stderr.contains(&format!(
                    "stopped the execution {arn} (--stop-on-interrupt)"
                )),
                "{stderr}"
            );
            assert_eq!(rt.block_on(status_of(&c, &arn)), "ABORTED");
        } else {
            assert!(
                stderr.contains(&format!(
                    "the execution keeps running; `{resume_cmd}` re-attaches to it"
                )),
                "{stderr}"
            );
            assert_eq!(rt.block_on(status_of(&c, &arn)), "RUNNING");
        }
        assert!(
            stderr.contains(&format!("run the rest with: {resume_cmd}")),
            "{stderr}"
        );
        // Nothing returned: no batch has an end in the journal, all 4 tasks are pending
        // for the re-attach, and the report was written.
        let kinds: Vec<String> = journal(&run)
            .iter()
            .map(|e| e["kind"].as_str().unwrap().to_owned())
            .collect();
        assert_eq!(kinds, ["attempt", "execution"]);
        let status = orchestrator(cwd, &moto)
            .args(["status", "run", "--json"])
            .output()
            .unwrap();
        let status: Value = serde_json::from_slice(&status.stdout).unwrap();
        assert_eq!(
            (&status["done"], &status["never_returned"]),
            (&json!(0), &json!(4))
        );
        assert!(run.join("run.json").is_file());
        let launch_json = std::fs::read_to_string(run.join("launch.json")).unwrap();
        assert_eq!(launch_json.contains("\"stop_on_interrupt\": true"), stop_it);
    }
}
