//! The AWS backend against moto's server: S3 staging and manifest (multipart), Lambda
//! create/update/get with a real zip, state machine create/update/start/describe.
//!
//! moto cannot run function code and rejects `ItemBatcher`, so batches running on
//! Lambda are tested against the local platform instead (aws_e2e.rs).
//! `orchestrator deploy` itself runs against moto here too: layers, environment, managed
//! runtimes and code uploaded through S3.

mod launch_support;

use std::collections::BTreeMap;
use std::time::Duration;

use propack_orchestrator::backend::aws::clients::static_conf;
use propack_orchestrator::backend::aws::deploy::{
    Code, FunctionEnv, FunctionSpec, deploy_function,
};
use propack_orchestrator::backend::aws::elf::{EM_X86_64, synthetic_elf};
use propack_orchestrator::backend::aws::package::{LambdaArch, LambdaRuntime, verify_zip};
use propack_orchestrator::backend::aws::zip::{ZipEntry, read_zip, write_zip};
use propack_orchestrator::backend::aws::{AwsBackend, AwsClients, AwsOptions, sfn};
use propack_orchestrator::backend::{NoProgress, Stop};
use propack_runtime::s3::S3Store;
use propack_runtime::uri::S3Uri;
use propack_runtime::{ExecSpec, Task, TaskAction};
use propack_tests::{http_request, moto_url};
use serde_json::{Value, json};

const REGION: &str = "us-east-1";

fn clients(url: &str) -> AwsClients {
    AwsClients::from_conf(&static_conf(url, REGION), true)
}

/// A name unique to this test process and call, so tests sharing one moto server never collide.
fn unique(prefix: &str) -> String {
    use std::sync::atomic::{AtomicUsize, Ordering};
    static N: AtomicUsize = AtomicUsize::new(0);
    format!(
        "{prefix}-{}-{}",
        std::process::id(),
        N.fetch_add(1, Ordering::Relaxed)
    )
}

/// moto checks that a function's role exists in its IAM; create it through IAM's query API.
fn moto_role(url: &str, name: &str) -> String {
    let (status, body) = http_request(
        url,
        "POST",
        "/",
        &[
            (
                "Authorization",
                "AWS4-HMAC-SHA256 Credential=test/20260101/us-east-1/iam/aws4_request, SignedHeaders=host, Signature=0",
            ),
            ("Content-Type", "application/x-www-form-urlencoded"),
        ],
        &format!(
            "Action=CreateRole&Version=2010-05-08&RoleName={name}&AssumeRolePolicyDocument=%7B%7D"
        ),
    );
    assert!(
        status == 200 || body.contains("EntityAlreadyExists"),
        "CreateRole: {status} {body}"
    );
    format!("arn:aws:iam::123456789012:role/{name}")
}

fn rt() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread()
        .worker_threads(2)
        .enable_all()
        .build()
        .unwrap()
}

#[test]
fn multipart_upload_round_trips_a_large_file() {
    let Some(url) = moto_url() else { return };
    rt().block_on(async {
        let c = clients(&url);
        let mut store = S3Store::new(c.s3.clone());
        store.multipart_threshold = 5 * 1024 * 1024;
        store.part_size = 5 * 1024 * 1024;
        let bucket = unique("mp");
        store.ensure_bucket(&bucket).await.unwrap();
        let dir = tempfile::tempdir().unwrap();
        let big = dir.path().join("big.bin");
        let data: Vec<u8> = (0..11 * 1024 * 1024 + 123)
            .map(|i: u32| (i.wrapping_mul(2_654_435_761) >> 24) as u8)
            .collect();
        std::fs::write(&big, &data).unwrap();
        let uri = S3Uri::new(bucket.clone(), "in/big.bin");
        let parts = store.put_file(&uri, &big).await.unwrap().parts;
        assert_eq!(parts, 3, "11 MiB in 5 MiB parts");
        assert!(
            store.get_bytes(&uri).await.unwrap() == data,
            "multipart object differs from the file"
        );
        // A small file goes in one PutObject.
        let small = dir.path().join("small.txt");
        std::fs::write(&small, b"hello").unwrap();
        let s = S3Uri::new(bucket.clone(), "in/small.txt");
        assert_eq!(store.put_file(&s, &small).await.unwrap().parts, 1);
        let keys = store.list(&S3Uri::new(bucket, "in/")).await.unwrap();
        assert_eq!(keys, vec!["in/big.bin", "in/small.txt"]);
    });
}

#[test]
fn staging_uploads_inputs_and_the_manifest_and_rewrites_uris() {
    let Some(url) = moto_url() else { return };
    rt().block_on(async {
        let c = clients(&url);
        let bucket = unique("stage");
        S3Store::new(c.s3.clone())
            .ensure_bucket(&bucket)
            .await
            .unwrap();
        let dir = tempfile::tempdir().unwrap();
        let shared = dir.path().join("shared.txt");
        std::fs::write(&shared, b"shared input").unwrap();
        let tasks: Vec<Task> = (0..3)
            .map(|i| {
                let own = dir.path().join(format!("own{i}.txt"));
                std::fs::write(&own, format!("input {i}")).unwrap();
                Task {
                    id: format!("t/{i}"),
                    action: TaskAction::Exec(ExecSpec {
                        program: "/bin/cat".into(),
                        args: vec!["own".into()],
                        env: BTreeMap::new(),
                    }),
                    timeout_ms: None,
                    inputs: BTreeMap::from([
                        ("own".to_owned(), format!("file://{}", own.display())),
                        ("shared".to_owned(), format!("file://{}", shared.display())),
                        ("remote".to_owned(), "s3://elsewhere/x".to_owned()),
                    ]),
                    outputs: BTreeMap::from([(
                        "result".to_owned(),
                        format!("file://{}/out/{i}.txt", dir.path().display()),
                    )]),
                }
            })
            .collect();
        let backend = AwsBackend::with_clients(c.clone(), AwsOptions::new(bucket.clone()));
        let staged = backend.stage("run-1", &tasks).await.unwrap();
        assert_eq!(
            staged.uploaded, 4,
            "three own inputs plus one shared file, uploaded once"
        );
        assert_eq!(staged.layout.prefix, "propack/runs/run-1");
        assert_eq!(
            staged.output_prefix,
            format!("s3://{bucket}/propack/runs/run-1/out/")
        );
        assert_eq!(staged.downloads.len(), 3);

        // The manifest in S3 is exactly the rewritten tasks.
        let manifest: Vec<Task> =
            serde_json::from_slice(&backend.store().get_bytes(&staged.manifest).await.unwrap())
                .unwrap();
        assert_eq!(manifest, staged.tasks);
        for (i, t) in manifest.iter().enumerate() {
            assert_eq!(
                t.inputs["remote"], "s3://elsewhere/x",
                "s3:// inputs stay as they are"
            );
            let own = S3Uri::parse(&t.inputs["own"]).unwrap();
            assert!(own.key().starts_with("propack/runs/run-1/in/"), "{own}");
            assert_eq!(
                backend.store().get_bytes(&own).await.unwrap(),
                format!("input {i}").as_bytes()
            );
            let shared = S3Uri::parse(&t.inputs["shared"]).unwrap();
            assert_eq!(
                backend.store().get_bytes(&shared).await.unwrap(),
                b"shared input"
            );
            assert_eq!(t.inputs["shared"], manifest[0].inputs["shared"]);
            let out = S3Uri::parse(&t.outputs["result"]).unwrap();
            assert!(out.key().starts_with("propack/runs/run-1/out/"), "{out}");
            assert!(
                out.key().ends_with(&format!("/out/{i}-t_{i}/result")),
                "task ids are made key-safe: {out}"
            );
        }
    });
}

fn real_zip(marker: &str) -> Vec<u8> {
    let mut bootstrap = synthetic_elf(EM_X86_64, &["GLIBC_2.2.5", "GLIBC_2.17"]);
    bootstrap.extend_from_slice(marker.as_bytes());
    let zip = write_zip(&[
        ZipEntry {
            name: "bootstrap".into(),
            mode: 0o755,
            data: bootstrap.clone(),
        },
        ZipEntry {
            name: "bin/propack-bench".into(),
            mode: 0o755,
            data: bootstrap,
        },
    ])
    .unwrap();
    verify_zip(&zip, LambdaRuntime::ProvidedAl2, LambdaArch::X86_64).unwrap();
    zip
}

#[test]
fn lambda_function_is_created_then_updated() {
    let Some(url) = moto_url() else { return };
    rt().block_on(async {
        let c = clients(&url);
        let role = moto_role(&url, "propack-test");
        let name = unique("fn");
        let mut env = FunctionEnv::default();
        env.set("RUST_LOG", "info");
        let mut spec = FunctionSpec {
            name: name.clone(),
            role_arn: role,
            code: Code::Zip(real_zip("v1")),
            memory_mb: 10_240,
            timeout_s: 900,
            tmp_mb: 2048,
            arch: LambdaArch::X86_64,
            runtime: LambdaRuntime::ProvidedAl2023,
            handler: "bootstrap".into(),
            layers: Vec::new(),
            env,
        };
        let first = deploy_function(&c.lambda, &spec, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(first.created);
        assert!(
            first.arn.ends_with(&format!(":function:{name}")),
            "{}",
            first.arn
        );

        let zip = real_zip("version two, longer");
        spec.code = Code::Zip(zip.clone());
        spec.memory_mb = 2048;
        spec.timeout_s = 60;
        let second = deploy_function(&c.lambda, &spec, Duration::from_secs(30))
            .await
            .unwrap();
        assert!(!second.created);
        assert_eq!(second.arn, first.arn);
        assert_ne!(
            second.code_sha256, first.code_sha256,
            "new code must change the hash"
        );

        let got = c
            .lambda
            .get_function()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        let conf = got.configuration().unwrap();
        assert_eq!(conf.memory_size(), Some(2048));
        assert_eq!(conf.timeout(), Some(60));
        assert_eq!(conf.handler(), Some("bootstrap"));
        assert_eq!(conf.runtime().map(|r| r.as_str()), Some("provided.al2023"));
        assert_eq!(conf.code_size(), zip.len() as i64);
        assert!(
            read_zip(&zip)
                .unwrap()
                .iter()
                .any(|e| e.name == "bootstrap")
        );
    });
}

/// `profile packing --memory` on AWS: each memory configured (UpdateFunctionConfiguration,
/// update waited for) before its measurement, the function's own memory restored after.
#[test]
fn function_memory_is_set_for_each_measurement_and_restored() {
    use propack_orchestrator::backend::aws::memory::{FunctionMemory, at_each_memory};
    let Some(url) = moto_url() else { return };
    rt().block_on(async {
        let c = clients(&url);
        let role = moto_role(&url, "propack-test");
        let name = unique("mem");
        let spec = FunctionSpec {
            name: name.clone(),
            role_arn: role,
            code: Code::Zip(real_zip("mem")),
            memory_mb: 2_048,
            timeout_s: 60,
            tmp_mb: 512,
            arch: LambdaArch::X86_64,
            runtime: LambdaRuntime::ProvidedAl2023,
            handler: "bootstrap".into(),
            layers: Vec::new(),
            env: FunctionEnv::default(),
        };
        deploy_function(&c.lambda, &spec, Duration::from_secs(30))
            .await
            .unwrap();
        let backend = AwsBackend::with_clients(c.clone(), AwsOptions::new("unused"));
        let config = backend.function_memory();
        assert_eq!(config.memory_mb(&name).await.unwrap(), 2_048);
        // What Lambda says the function's memory is while each measurement runs.
        let seen = at_each_memory(
            &config,
            &name,
            &[1_769, 3_538, 10_240],
            async |m| -> Result<(u32, u32), propack_orchestrator::backend::aws::AwsError> {
                Ok((m, config.memory_mb(&name).await?))
            },
        )
        .await
        .unwrap();
        assert_eq!(seen, vec![(1_769, 1_769), (3_538, 3_538), (10_240, 10_240)]);
        let conf = c
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        assert_eq!(conf.memory_size(), Some(2_048));
        // A memory beyond Lambda's range: refused or not (moto may accept it), the original is restored.
        let err = at_each_memory(
            &config,
            &name,
            &[1_769, 20_000],
            async |_| -> Result<(), propack_orchestrator::backend::aws::AwsError> { Ok(()) },
        )
        .await;
        if let Err(e) = err {
            assert!(
                e.to_string().contains("lambda:UpdateFunctionConfiguration"),
                "{e}"
            );
        }
        assert_eq!(config.memory_mb(&name).await.unwrap(), 2_048);
    });
}

#[test]
fn lambda_errors_name_the_operation() {
    let Some(url) = moto_url() else { return };
    rt().block_on(async {
        let c = clients(&url);
        let spec = FunctionSpec {
            name: unique("norole"),
            role_arn: "arn:aws:iam::123456789012:role/does-not-exist".into(),
            code: Code::Zip(real_zip("x")),
            memory_mb: 128,
            timeout_s: 3,
            tmp_mb: 512,
            arch: LambdaArch::X86_64,
            runtime: LambdaRuntime::ProvidedAl2,
            handler: "bootstrap".into(),
            layers: Vec::new(),
            env: Default::default(),
        };
        let err = deploy_function(&c.lambda, &spec, Duration::from_secs(5))
            .await
            .unwrap_err()
            .to_string();
        assert!(err.contains("lambda:CreateFunction"), "{err}");
        assert!(err.contains("role"), "{err}");
    });
}

fn pass_definition(value: i64) -> String {
    json!({"StartAt": "P", "States": {"P": {"Type": "Pass", "Result": {"v": value}, "ResultPath": "$.r", "End": true}}})
        .to_string()
}

/// moto's executing Step Functions backend runs only the first execution of each
/// (account, region) backend (later ones fail with HTTP 500 in a deepcopy), so this test
/// takes the first region in which a fresh execution starts.
const FRESH_REGIONS: &[&str] = &[
    "eu-west-3",
    "eu-north-1",
    "ap-northeast-3",
    "ca-central-1",
    "sa-east-1",
    "ap-southeast-2",
    "eu-south-1",
    "af-south-1",
    "me-south-1",
    "ap-east-1",
    "eu-central-2",
    "il-central-1",
];

#[test]
fn state_machine_is_created_updated_started_once_and_described() {
    let Some(url) = moto_url() else { return };
    // Make moto really execute (Pass states only; it cannot invoke function code).
    let (status, body) = http_request(
        &url,
        "POST",
        "/moto-api/config",
        &[("Content-Type", "application/json")],
        r#"{"stepfunctions":{"execute_state_machine":true}}"#,
    );
    assert!(status == 200 || status == 201, "{status} {body}");
    rt().block_on(async {
        let role = moto_role(&url, "propack-sfn-test");
        for region in FRESH_REGIONS {
            let c = AwsClients::from_conf(&static_conf(&url, region), true);
            let name = unique("sm");
            let missing = sfn::ensure_state_machine(&c.sfn, &name, &pass_definition(1), None)
                .await
                .unwrap_err()
                .to_string();
            assert!(missing.contains("--role-arn"), "{missing}");
            let arn = sfn::ensure_state_machine(&c.sfn, &name, &pass_definition(1), Some(&role)).await.unwrap();
            let again = sfn::ensure_state_machine(&c.sfn, &name, &pass_definition(2), None).await.unwrap();
            assert_eq!(arn, again, "the second call updates, not creates");
            let d = c.sfn.describe_state_machine().state_machine_arn(&arn).send().await.unwrap();
            assert_eq!(serde_json::from_str::<Value>(d.definition()).unwrap()["States"]["P"]["Result"]["v"], 2);

            let run = sfn::execution_name("run/7");
            let input = r#"{"run_id":"run/7"}"#;
            let exec = match sfn::start_or_attach(&c.sfn, &arn, &run, input).await {
                Ok((exec, started)) => {
                    assert!(started);
                    exec
                }
                Err(e) if e.to_string().contains("HTTP 500") || e.to_string().contains("unexpected token '<'") => {
                    eprintln!("moto cannot execute again in {region}; trying another region");
                    continue;
                }
                Err(e) => panic!("{e}"),
            };
            assert_eq!(exec, sfn::execution_arn(&arn, &run));
            // A relaunch with another input is refused by the service and attaches instead.
            let (exec2, started2) = sfn::start_or_attach(&c.sfn, &arn, &run, r#"{"run_id":"other"}"#).await.unwrap();
            assert!(!started2, "a relaunch of the same run attaches to its execution");
            assert_eq!(exec, exec2, "the idempotent name gives the same execution ARN");
            let api = sfn::SdkExecutions { sfn: c.sfn.clone(), store: S3Store::new(c.s3.clone()) };
            let sfn::Waited::Ended(end) = sfn::wait_execution(&api, &exec, Duration::from_millis(100), &NoProgress, Stop::NEVER).await.unwrap() else {
                panic!("an uninterrupted wait ends with the execution")
            };
            assert_eq!(end.status, "SUCCEEDED", "{end:?}");
            let out: Value = serde_json::from_str(end.output.as_deref().unwrap()).unwrap();
            assert_eq!(out, json!({"run_id": "run/7", "r": {"v": 2}}));
            return;
        }
        panic!("moto refused a first execution in every region of FRESH_REGIONS; restart it (bash scripts/moto start)");
    });
}

#[test]
fn packed_definitions_from_the_builder_are_accepted_by_create_and_update() {
    let Some(url) = moto_url() else { return };
    rt().block_on(async {
        let c = clients(&url);
        let role = moto_role(&url, "propack-sfn-def");
        let name = unique("packed");
        let build = |tasks, k| {
            let mut o = propack_step_functions::DefinitionOptions::new(tasks, k);
            o.mode = propack_step_functions::ModeRequest::Inline;
            o.function = "arn:aws:lambda:us-east-1:123456789012:function:propack".into();
            serde_json::to_string(
                &propack_step_functions::build_definition(&o)
                    .unwrap()
                    .definition,
            )
            .unwrap()
        };
        let arn = sfn::ensure_state_machine(&c.sfn, &name, &build(40, 4), Some(&role))
            .await
            .unwrap();
        sfn::ensure_state_machine(&c.sfn, &name, &build(40, 8), None)
            .await
            .unwrap();
        let d = c
            .sfn
            .describe_state_machine()
            .state_machine_arn(&arn)
            .send()
            .await
            .unwrap();
        assert_eq!(d.definition(), build(40, 8));
        assert!(
            sfn::find_state_machine(&c.sfn, &name)
                .await
                .unwrap()
                .is_some()
        );
        assert!(
            sfn::find_state_machine(&c.sfn, &unique("absent"))
                .await
                .unwrap()
                .is_none()
        );
    });
}

/// `orchestrator` with every AWS service on moto.
fn orchestrator_on_moto(url: &str) -> std::process::Command {
    let (orchestrator, _) = launch_support::binaries();
    let mut cmd = std::process::Command::new(orchestrator);
    cmd.env("AWS_ENDPOINT_URL", url)
        .env("AWS_ACCESS_KEY_ID", "test")
        .env("AWS_SECRET_ACCESS_KEY", "test")
        .env("AWS_REGION", REGION)
        .env("PROPACK_S3_PATH_STYLE", "1")
        .env_remove("AWS_PROFILE")
        .env_remove("AWS_SESSION_TOKEN")
        .env_remove("AWS_ENDPOINT_URL_S3")
        .env_remove("AWS_ENDPOINT_URL_LAMBDA")
        .env_remove("AWS_ENDPOINT_URL_SFN");
    cmd
}

fn run_ok(cmd: &mut std::process::Command) -> (Value, String, String) {
    let out = cmd.output().unwrap();
    let stdout = String::from_utf8_lossy(&out.stdout).into_owned();
    let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
    assert!(out.status.success(), "{:?}\n{stdout}\n{stderr}", out.status);
    (serde_json::from_str(&stdout).unwrap(), stdout, stderr)
}

fn statement(policies: &Value, sid: &str) -> Value {
    policies["operator_policy"]["Statement"]
        .as_array()
        .unwrap()
        .iter()
        .find(|s| s["Sid"] == sid)
        .unwrap_or_else(|| panic!("no {sid} in {policies}"))
        .clone()
}

/// The issue-13 path on moto: a Python handler's code directory on the managed runtime,
/// the ProPack layer published and attached, the exec wrapper and the user's environment set
/// (and the user's values never printed). The deploy tests pass `--no-state-machine`: moto's
/// parser rejects Distributed Map fields once another test switched on its executing backend.
#[test]
fn deploy_publishes_the_layer_and_sets_up_a_managed_handler() {
    let Some(url) = moto_url() else { return };
    let role = moto_role(&url, "propack-deploy-managed");
    let dir = tempfile::tempdir().unwrap();
    let wrapper = b"#!/bin/sh\nexec /opt/bootstrap\n".to_vec();
    let layer = write_zip(&[
        ZipEntry {
            name: "bootstrap".into(),
            mode: 0o755,
            data: synthetic_elf(EM_X86_64, &["GLIBC_2.2.5", "GLIBC_2.34"]),
        },
        ZipEntry {
            name: "propack-exec-wrapper".into(),
            mode: 0o755,
            data: wrapper,
        },
    ])
    .unwrap();
    std::fs::write(dir.path().join("layer.zip"), &layer).unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir(&code).unwrap();
    let app = b"def handler(event, context):\n    return event\n";
    std::fs::write(code.join("app.py"), app).unwrap();
    let name = unique("managed");

    let (out, stdout, stderr) = run_ok(orchestrator_on_moto(&url).args([
        "deploy",
        "--role-arn",
        &role,
        "--function",
        &name,
        "--no-state-machine",
        "--layer-name",
        &name,
        "--runtime",
        "python3.13",
        "--handler",
        "app.handler",
        "--code",
        code.to_str().unwrap(),
        "--layer",
        dir.path().join("layer.zip").to_str().unwrap(),
        "--env",
        "DB_PASSWORD=hunter2",
        "MODE=fast-and-secret",
        "--json",
    ]));
    for text in [&stdout, &stderr] {
        assert!(
            !text.contains("hunter2") && !text.contains("fast-and-secret"),
            "{text}"
        );
    }
    assert_eq!(
        out["environment"],
        json!([
            "AWS_LAMBDA_EXEC_WRAPPER=/opt/propack-exec-wrapper",
            "DB_PASSWORD=****",
            "MODE=****",
            "RUST_LOG=info"
        ])
    );
    let layer_arn = out["layer"]["arn"].as_str().unwrap().to_owned();
    assert_eq!(
        layer_arn,
        format!("arn:aws:lambda:{REGION}:123456789012:layer:{name}:1")
    );
    assert_eq!(out["layers"], json!([layer_arn]));
    assert_eq!(out["function"]["created"], true);
    assert_eq!(out["code_via_s3"], json!([]));
    assert_eq!(out["state_machine_arn"], Value::Null);
    assert_eq!(
        statement(&out["policies"], "PublishLayer")["Resource"],
        format!("arn:aws:lambda:{REGION}:123456789012:layer:{name}")
    );

    rt().block_on(async {
        let c = clients(&url);
        let conf = c
            .lambda
            .get_function_configuration()
            .function_name(&name)
            .send()
            .await
            .unwrap();
        assert_eq!(conf.runtime().map(|r| r.as_str()), Some("python3.13"));
        assert_eq!(conf.handler(), Some("app.handler"));
        let attached: Vec<&str> = conf.layers().iter().filter_map(|l| l.arn()).collect();
        assert_eq!(attached, [layer_arn.as_str()]);
        let vars = conf.environment().unwrap().variables().unwrap();
        assert_eq!(vars["AWS_LAMBDA_EXEC_WRAPPER"], "/opt/propack-exec-wrapper");
        assert_eq!(vars["DB_PASSWORD"], "hunter2", "Lambda gets the real value");
        assert_eq!(vars.len(), 4);
        // The directory was zipped reproducibly: exactly the zip of its one file.
        let expected = write_zip(&[ZipEntry {
            name: "app.py".into(),
            mode: 0o644,
            data: app.to_vec(),
        }])
        .unwrap();
        assert_eq!(conf.code_size(), expected.len() as i64);

        let l = c
            .lambda
            .get_layer_version()
            .layer_name(&name)
            .version_number(1)
            .send()
            .await
            .unwrap();
        assert_eq!(l.layer_version_arn(), Some(layer_arn.as_str()));
        assert_eq!(l.content().unwrap().code_size(), layer.len() as i64);
        let runtimes: Vec<&str> = l.compatible_runtimes().iter().map(|r| r.as_str()).collect();
        assert_eq!(runtimes, ["python3.13"]);
    });
}

/// Above the direct-upload threshold (50 MiB by default; 0 here so the test needs no big
/// file) the code goes up through S3 and Lambda reads it from there; below it, in the request.
#[test]
fn deploy_uploads_code_above_the_threshold_through_s3() {
    let Some(url) = moto_url() else { return };
    let role = moto_role(&url, "propack-deploy-s3");
    let bucket = unique("code");
    rt().block_on(S3Store::new(clients(&url).s3.clone()).ensure_bucket(&bucket))
        .unwrap();
    let dir = tempfile::tempdir().unwrap();
    let (v1, v2) = (real_zip("v1"), real_zip("version two"));
    std::fs::write(dir.path().join("v1.zip"), &v1).unwrap();
    std::fs::write(dir.path().join("v2.zip"), &v2).unwrap();
    let name = unique("big");
    let deploy = |zip: &str, extra: &[&str]| {
        let mut cmd = orchestrator_on_moto(&url);
        cmd.args(["deploy", "--role-arn", &role, "--function", &name])
            .args(["--no-state-machine", "--code-bucket", &bucket, "--json"])
            .arg("--zip")
            .arg(dir.path().join(zip))
            .args(extra);
        run_ok(&mut cmd)
    };
    let key = format!("propack/code/{name}/function.zip");

    let (out, _, stderr) = deploy("v1.zip", &["--s3-above-mib", "0"]);
    assert!(
        stderr.contains(&format!(
            "above 0 MiB: uploading it through s3://{bucket}/{key}"
        )),
        "{stderr}"
    );
    assert_eq!(
        statement(&out["policies"], "UploadCode")["Resource"],
        json!([format!("arn:aws:s3:::{bucket}/{key}")])
    );
    assert_eq!(out["code_via_s3"], json!([format!("s3://{bucket}/{key}")]));
    let c = clients(&url);
    let store = S3Store::new(c.s3.clone());
    let uri = S3Uri::new(bucket.clone(), key.clone());
    assert!(rt().block_on(store.get_bytes(&uri)).unwrap() == v1);
    let size = |c: &AwsClients| {
        rt().block_on(
            c.lambda
                .get_function_configuration()
                .function_name(&name)
                .send(),
        )
        .unwrap()
        .code_size()
    };
    assert_eq!(size(&c), v1.len() as i64);

    // At the default threshold the small zip goes in the request: S3 keeps v1.
    let (out, _, stderr) = deploy("v2.zip", &[]);
    assert!(!stderr.contains("uploading it through"), "{stderr}");
    assert_eq!(out["function"]["created"], false);
    assert!(
        out["policies"]["operator_policy"]["Statement"]
            .as_array()
            .unwrap()
            .iter()
            .all(|s| s["Sid"] != "UploadCode")
    );
    assert_eq!(size(&c), v2.len() as i64);
    assert!(rt().block_on(store.get_bytes(&uri)).unwrap() == v1);
}
