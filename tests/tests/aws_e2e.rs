//! `orchestrator launch --backend aws --mode direct` fully offline: S3 on moto's server
//! (`AWS_ENDPOINT_URL_S3`), Lambda on `orchestrator platform serve` (`AWS_ENDPOINT_URL_LAMBDA`),
//! and the runtime reading its inputs from and writing its outputs to the moto bucket.

mod launch_support;

use std::path::Path;
use std::process::Command;

use propack_orchestrator::backend::aws::AwsClients;
use propack_orchestrator::backend::aws::clients::static_conf;
use propack_runtime::Task;
use propack_runtime::s3::S3Store;
use propack_runtime::uri::S3Uri;
use propack_tests::moto_url;
use serde_json::Value;

fn start_platform(moto: &str, extra: &[&str]) -> (launch_support::Server, String) {
    launch_support::platform_serve("unlimited", moto, extra)
}

/// `launch --backend aws --mode direct --bucket BUCKET --function propack ARGS` in `cwd`,
/// against the local Invoke API at `lambda_url` and S3 at `moto`; asserts that it succeeded
/// and returns its `--json` summary.
fn launch_direct(cwd: &Path, moto: &str, lambda_url: &str, bucket: &str, args: &[&str]) -> Value {
    let (orchestrator, _) = launch_support::binaries();
    let mut cmd = Command::new(orchestrator);
    cmd.args([
        "launch",
        "--backend",
        "aws",
        "--mode",
        "direct",
        "--bucket",
        bucket,
    ])
    .args(["--function", "propack"])
    .args(args)
    .current_dir(cwd)
    .env("AWS_ENDPOINT_URL_LAMBDA", lambda_url);
    launch_support::aws_env(&mut cmd, moto);
    let out = cmd.output().expect("running orchestrator launch");
    assert!(
        out.status.success(),
        "launch failed: {}\n{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    serde_json::from_slice(&out.stdout).expect("--json prints one JSON summary")
}

#[test]
fn launch_direct_runs_offline_against_moto_s3_and_the_local_invoke_api() {
    let Some(moto) = moto_url() else { return };
    let bucket = format!("e2e-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = S3Store::new(AwsClients::from_conf(&static_conf(&moto, "us-east-1"), true).s3);
    rt.block_on(store.ensure_bucket(&bucket)).unwrap();

    let (_server, lambda_url) = start_platform(&moto, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().display().to_string();
    let summary = launch_direct(
        dir.path(),
        &moto,
        &lambda_url,
        &bucket,
        &[
            "--benchmark",
            "sort",
            "--size",
            "64KB",
            "--tasks",
            "6",
            "--packing",
            "2",
            "--platform",
            "unlimited",
            "--max-in-flight",
            "4",
            "--json",
            "--out",
            &out_dir,
        ],
    );
    assert_eq!(summary["backend"], "aws", "{summary}");
    assert_eq!(summary["tasks"], 6);
    let text = summary.to_string();
    assert!(
        text.contains("\"verified\":true"),
        "the sorted outputs must verify: {summary}"
    );
    assert!(!text.contains("\"verified\":false"), "{summary}");

    // Every output object the runtime wrote is in the moto bucket, non-empty, and is the
    // file the backend brought back (the one `launch` verified).
    let runs = rt
        .block_on(store.list(&S3Uri::new(bucket.clone(), "propack/runs/")))
        .unwrap();
    let manifest_key = runs
        .iter()
        .find(|k| k.ends_with("/manifest.json"))
        .expect("the task manifest was staged");
    let manifest: Vec<Task> = serde_json::from_slice(
        &rt.block_on(store.get_bytes(&S3Uri::new(bucket.clone(), manifest_key.clone())))
            .unwrap(),
    )
    .unwrap();
    assert_eq!(manifest.len(), 6);
    let mut outputs = 0;
    for task in &manifest {
        for uri in task.inputs.values() {
            let obj = S3Uri::parse(uri).unwrap();
            assert_eq!(
                obj.bucket(),
                bucket,
                "inputs were staged into the run bucket: {uri}"
            );
            assert!(
                runs.iter().any(|k| k == obj.key()),
                "input {uri} is in the bucket"
            );
        }
        for uri in task.outputs.values() {
            let obj = S3Uri::parse(uri).unwrap();
            assert!(
                runs.iter().any(|k| k == obj.key()),
                "output {uri} was written by the runtime"
            );
            let data = rt.block_on(store.get_bytes(&obj)).unwrap();
            assert!(!data.is_empty(), "{uri} is empty");
            outputs += 1;
        }
    }
    assert!(outputs >= 6, "every task writes an output: {outputs}");
    let run_dirs: Vec<_> = walk(dir.path())
        .into_iter()
        .filter(|p| p.ends_with("aws.json"))
        .collect();
    assert!(!run_dirs.is_empty(), "the backend wrote aws.json");
    let info: Value = serde_json::from_slice(&std::fs::read(&run_dirs[0]).unwrap()).unwrap();
    assert_eq!(info["mode"], "direct");
    assert_eq!(info["downloaded"], outputs, "{info}");
    assert_eq!(
        info["send_s"].as_array().unwrap().len(),
        3,
        "⌈6/2⌉ invocations: {info}"
    );
}

fn walk(dir: &std::path::Path) -> Vec<std::path::PathBuf> {
    let mut out = Vec::new();
    for e in std::fs::read_dir(dir).into_iter().flatten().flatten() {
        let p = e.path();
        if p.is_dir() {
            out.extend(walk(&p));
        } else {
            out.push(p);
        }
    }
    out
}

#[test]
fn launch_maps_a_command_over_an_s3_prefix_offline() {
    let Some(moto) = moto_url() else { return };
    let bucket = format!("map-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = S3Store::new(AwsClients::from_conf(&static_conf(&moto, "us-east-1"), true).s3);
    rt.block_on(async {
        store.ensure_bucket(&bucket).await.unwrap();
        for i in 0..100 {
            let key = format!("in/d{}/obj{i:03}.txt", i % 4);
            let body = format!("object {i}\n").into_bytes();
            store
                .put_bytes(&S3Uri::new(bucket.clone(), key), body)
                .await
                .unwrap();
        }
    });

    let (_server, lambda_url) = start_platform(&moto, &[]);
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().display().to_string();
    let summary = launch_direct(
        dir.path(),
        &moto,
        &lambda_url,
        &bucket,
        &[
            "--exec",
            r#"sh -c 'tr a-z A-Z < "$0" > "$1"' {input} {output}"#,
            "--map",
            &format!("s3://{bucket}/in/"),
            "--output-prefix",
            &format!("s3://{bucket}/out/"),
            "--packing",
            "4",
            "--platform",
            "unlimited",
            "--max-in-flight",
            "8",
            "--json",
            "--out",
            &out_dir,
        ],
    );
    assert_eq!(summary["workload"], "map", "{summary}");
    assert_eq!(summary["tasks"], 100);
    assert_eq!(summary["k"], 4);
    assert_eq!(summary["verified"], true, "{summary}");
    rt.block_on(async {
        for i in 0..100 {
            let key = format!("out/d{}/obj{i:03}.txt", i % 4);
            let data = store
                .get_bytes(&S3Uri::new(bucket.clone(), key.clone()))
                .await
                .unwrap_or_else(|e| panic!("{key}: {e}"));
            assert_eq!(String::from_utf8(data).unwrap(), format!("OBJECT {i}\n"));
        }
    });
}

/// `launch --backend aws --handler --events` offline: Lambda is `platform serve` with the
/// function on python3.13 behind ProPack's exec wrapper (what `deploy --runtime python3.13
/// --handler app.handler --layer` makes), so the events carry no handler: the function's
/// `_HANDLER` and `AWS_EXECUTION_ENV` decide, and `outputs.jsonl` keeps event order.
#[test]
fn launch_runs_handler_events_on_a_managed_runtime_function_offline() {
    let Some(moto) = moto_url() else { return };
    let bucket = format!("events-{}", std::process::id());
    let rt = tokio::runtime::Runtime::new().unwrap();
    let store = S3Store::new(AwsClients::from_conf(&static_conf(&moto, "us-east-1"), true).s3);
    rt.block_on(store.ensure_bucket(&bucket)).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    std::fs::create_dir_all(&code).unwrap();
    std::fs::write(
        code.join("app.py"),
        "import os\ndef handler(event, context):\n    return {'sq': event['n'] ** 2, 'env': os.environ['AWS_EXECUTION_ENV']}\n",
    )
    .unwrap();
    let events: String = (0..7).map(|n| format!("{{\"n\": {n}}}\n")).collect();
    std::fs::write(dir.path().join("events.jsonl"), events).unwrap();
    let code_arg = code.display().to_string();
    let (_server, lambda_url) = start_platform(
        &moto,
        &[
            "--runtime",
            "python3.13",
            "--handler",
            "app.handler",
            "--function-dir",
            &code_arg,
        ],
    );
    let summary = launch_direct(
        dir.path(),
        &moto,
        &lambda_url,
        &bucket,
        &[
            "--handler",
            "app.handler",
            "--events",
            "events.jsonl",
            "--packing",
            "3",
            "--platform",
            "unlimited",
            "--json",
            "--out",
            "run",
        ],
    );
    assert_eq!(
        (
            &summary["backend"],
            &summary["tasks"],
            &summary["instances"]
        ),
        (&Value::from("aws"), &Value::from(7), &Value::from(3)),
        "{summary}"
    );
    let text = std::fs::read_to_string(dir.path().join("run/outputs.jsonl")).unwrap();
    let lines: Vec<Value> = text
        .lines()
        .map(|l| serde_json::from_str(l).unwrap())
        .collect();
    assert_eq!(lines.len(), 7);
    for (n, l) in lines.iter().enumerate() {
        assert_eq!(
            l,
            &serde_json::json!({"id": format!("event-{n:04}"), "status": "succeeded",
                "output": {"sq": n * n, "env": "AWS_Lambda_python3.13"}}),
        );
    }
}
