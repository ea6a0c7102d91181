//! Live-AWS tests: ignored by default, never run in CI. They need a real account:
//!
//! ```sh
//! export AWS_PROFILE=...               # or any other standard credential source
//! export AWS_REGION=eu-west-1
//! export PROPACK_LIVE_BUCKET=my-propack-bucket
//! export PROPACK_LIVE_ROLE_ARN=arn:aws:iam::123456789012:role/propack   # trusts lambda + states
//! orchestrator package --runtime provided.al2023            # the zip the tests deploy
//! cargo test -p propack-tests --test aws_live -- --ignored --test-threads 1
//! ```

use std::time::Duration;

use propack_orchestrator::backend::aws::deploy::{Code, FunctionSpec, deploy_function};
use propack_orchestrator::backend::aws::package::{
    LambdaArch, LambdaRuntime, verify_zip, zip_name,
};
use propack_orchestrator::backend::aws::{AwsBackend, AwsClients, AwsMode, AwsOptions, sfn};
use propack_orchestrator::backend::{Job, NoProgress};
use propack_orchestrator::platform::PlatformProfile;
use propack_runtime::s3::S3Store;
use propack_runtime::uri::S3Uri;
use propack_runtime::{BuiltinSpec, Task, TaskAction, TaskStatus};
use serde_json::json;

const FUNCTION: &str = "propack-live-test";
const STATE_MACHINE: &str = "propack-live-test";

fn env(name: &str) -> String {
    std::env::var(name).unwrap_or_else(|_| {
        panic!("live AWS tests need {name} (see the top of tests/tests/aws_live.rs)")
    })
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Runtime::new().unwrap()
}

fn spin_tasks(n: usize) -> Vec<Task> {
    (0..n)
        .map(|i| Task {
            id: format!("t{i}"),
            action: TaskAction::Builtin(BuiltinSpec {
                name: "spin".into(),
                params: json!({"ms": 200}),
            }),
            timeout_ms: None,
            inputs: Default::default(),
            outputs: Default::default(),
        })
        .collect()
}

async fn deployed(clients: &AwsClients) -> String {
    let zip_path = std::env::var("PROPACK_LIVE_ZIP")
        .map(std::path::PathBuf::from)
        .unwrap_or_else(|_| {
            propack_tests::workspace_root()
                .join("deployment_pack/dist")
                .join(zip_name(LambdaRuntime::ProvidedAl2023, LambdaArch::X86_64))
        });
    let zip = std::fs::read(&zip_path)
        .unwrap_or_else(|e| panic!("{}: {e} (run `orchestrator package`)", zip_path.display()));
    verify_zip(&zip, LambdaRuntime::ProvidedAl2023, LambdaArch::X86_64).unwrap();
    let spec = FunctionSpec {
        name: FUNCTION.into(),
        role_arn: env("PROPACK_LIVE_ROLE_ARN"),
        code: Code::Zip(zip),
        memory_mb: 2048,
        timeout_s: 120,
        tmp_mb: 512,
        arch: LambdaArch::X86_64,
        runtime: LambdaRuntime::ProvidedAl2023,
        handler: "bootstrap".into(),
        layers: Vec::new(),
        env: Default::default(),
    };
    deploy_function(&clients.lambda, &spec, Duration::from_secs(300))
        .await
        .unwrap()
        .arn
}

fn job(run_id: &str, tasks: Vec<Task>, k: usize, definition: propack_step_functions::Built) -> Job {
    Job {
        run_id: run_id.into(),
        tasks,
        k,
        definition,
        run_dir: std::env::temp_dir().join("propack-live").join(run_id),
        platform: PlatformProfile::aws_today(),
        stop: Default::default(),
    }
}

#[test]
#[ignore = "needs a live AWS account (PROPACK_LIVE_BUCKET, PROPACK_LIVE_ROLE_ARN, AWS_REGION)"]
fn live_multipart_staging_round_trips() {
    let bucket = env("PROPACK_LIVE_BUCKET");
    rt().block_on(async {
        let clients = AwsClients::from_env(None).await;
        let mut store = S3Store::new(clients.s3.clone());
        store.multipart_threshold = 5 * 1024 * 1024;
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("big");
        let data: Vec<u8> = (0..12 * 1024 * 1024u32).map(|i| (i % 251) as u8).collect();
        std::fs::write(&path, &data).unwrap();
        let uri = S3Uri::new(bucket, "propack/runs/live-test/in/big");
        assert!(store.put_file(&uri, &path).await.unwrap().parts > 1);
        assert!(store.get_bytes(&uri).await.unwrap() == data);
    });
}

#[test]
#[ignore = "needs a live AWS account (PROPACK_LIVE_BUCKET, PROPACK_LIVE_ROLE_ARN, AWS_REGION)"]
fn live_deploy_and_direct_launch() {
    let bucket = env("PROPACK_LIVE_BUCKET");
    rt().block_on(async {
        let clients = AwsClients::from_env(None).await;
        let arn = deployed(&clients).await;
        let mut opts = AwsOptions::new(bucket);
        opts.function = arn;
        opts.mode = AwsMode::Direct;
        let mut backend = AwsBackend::with_clients(clients, opts);
        let run_id = format!("live-direct-{}", std::process::id());
        let out = backend
            .run_job(
                &job(
                    &run_id,
                    spin_tasks(12),
                    3,
                    propack_step_functions::build_definition(
                        &propack_step_functions::DefinitionOptions::new(12, 3),
                    )
                    .unwrap(),
                ),
                &NoProgress,
            )
            .await
            .unwrap();
        assert_eq!(out.records.instances.len(), 4);
        assert!(
            out.records
                .tasks
                .iter()
                .all(|t| t.status == TaskStatus::Succeeded),
            "{:?}",
            out.records.tasks
        );
    });
}

#[test]
#[ignore = "needs a live AWS account (PROPACK_LIVE_BUCKET, PROPACK_LIVE_ROLE_ARN, AWS_REGION)"]
fn live_step_functions_distributed_map_launch() {
    let bucket = env("PROPACK_LIVE_BUCKET");
    rt().block_on(async {
        let clients = AwsClients::from_env(None).await;
        let arn = deployed(&clients).await;
        let mut d = propack_step_functions::DefinitionOptions::new(20, 5);
        d.function = arn.clone();
        d.mode = propack_step_functions::ModeRequest::Distributed;
        let definition = propack_step_functions::build_definition(&d).unwrap();
        let mut opts = AwsOptions::new(bucket);
        opts.function = arn;
        opts.mode = AwsMode::Sfn;
        opts.state_machine = STATE_MACHINE.into();
        opts.role_arn = Some(env("PROPACK_LIVE_ROLE_ARN"));
        let sfn_client = clients.sfn.clone();
        let mut backend = AwsBackend::with_clients(clients, opts);
        let run_id = format!("live-sfn-{}", std::process::id());
        let out = backend
            .run_job(&job(&run_id, spin_tasks(20), 5, definition), &NoProgress)
            .await
            .unwrap();
        assert_eq!(out.results.len(), 4, "ResultWriter output read back");
        assert!(
            out.records
                .tasks
                .iter()
                .all(|t| t.status == TaskStatus::Succeeded)
        );
        // The execution is named after the run: a relaunch attaches instead of running twice.
        let sm = sfn::find_state_machine(&sfn_client, STATE_MACHINE)
            .await
            .unwrap()
            .unwrap();
        let exec = sfn::execution_arn(&sm, &sfn::execution_name(&run_id));
        let d = sfn_client
            .describe_execution()
            .execution_arn(&exec)
            .send()
            .await
            .unwrap();
        assert_eq!(d.status().as_str(), "SUCCEEDED");
    });
}

/// Interrupts its own run as soon as the execution has started, keeping the journal's record.
#[derive(Default)]
struct InterruptOnStart(std::sync::Mutex<Option<propack_orchestrator::journal::ExecutionRecord>>);

static INTERRUPTED: std::sync::atomic::AtomicBool = std::sync::atomic::AtomicBool::new(false);

impl propack_orchestrator::backend::Progress for InterruptOnStart {
    fn batch_done(&self, _tasks: usize, _failed: usize) {}
    fn execution_started(&self, e: &propack_orchestrator::journal::ExecutionRecord) {
        *self.0.lock().unwrap() = Some(e.clone());
        INTERRUPTED.store(true, std::sync::atomic::Ordering::SeqCst);
    }
}

#[test]
#[ignore = "needs a live AWS account (PROPACK_LIVE_BUCKET, PROPACK_LIVE_ROLE_ARN, AWS_REGION)"]
fn live_an_interrupted_sfn_launch_is_collected_by_reattaching() {
    let bucket = env("PROPACK_LIVE_BUCKET");
    rt().block_on(async {
        let clients = AwsClients::from_env(None).await;
        let arn = deployed(&clients).await;
        let mut d = propack_step_functions::DefinitionOptions::new(20, 5);
        d.function = arn.clone();
        d.mode = propack_step_functions::ModeRequest::Distributed;
        let definition = propack_step_functions::build_definition(&d).unwrap();
        let mut opts = AwsOptions::new(bucket);
        opts.function = arn;
        opts.mode = AwsMode::Sfn;
        opts.state_machine = STATE_MACHINE.into();
        opts.role_arn = Some(env("PROPACK_LIVE_ROLE_ARN"));
        let mut backend = AwsBackend::with_clients(clients, opts);
        let run_id = format!("live-reattach-{}", std::process::id());
        let mut j = job(&run_id, spin_tasks(20), 5, definition);
        j.stop = propack_orchestrator::backend::Stop::new(&INTERRUPTED);
        let seen = InterruptOnStart::default();
        let out = backend.run_job(&j, &seen).await.unwrap();
        assert!(
            out.results.is_empty(),
            "interrupted before the execution ended"
        );
        let record = seen
            .0
            .lock()
            .unwrap()
            .clone()
            .expect("the execution was journalled");
        let pending = (0..20).map(|i| format!("t{i}")).collect();
        let r = backend
            .reattach(&record, &pending, &NoProgress, Default::default())
            .await
            .unwrap();
        let sfn::Reattached::Collected { end, collected, .. } = r else {
            panic!("{r:?}")
        };
        assert_eq!(end.status, "SUCCEEDED");
        assert_eq!(collected.results.len(), 4, "ResultWriter output read back");
        assert!(collected.lost.is_empty(), "{:?}", collected.lost);
        let ok = collected
            .results
            .iter()
            .flat_map(|r| &r.tasks)
            .filter(|t| t.status == TaskStatus::Succeeded)
            .count();
        assert_eq!(ok, 20);
    });
}
