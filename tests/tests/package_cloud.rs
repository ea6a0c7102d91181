//! `orchestrator package --target azure|cloud-run`: the Azure Functions app checked for what the
//! host requires and then started the way the host starts it (host.json's executable, arguments
//! and working directory, `FUNCTIONS_CUSTOMHANDLER_PORT`, one request per function folder), and
//! the Cloud Run build context.
//!
//! Nothing here runs on Azure or Google Cloud (no Functions host, no Docker daemon): the
//! requests are the documented ones, sent by this harness.

mod launch_support;

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{TcpListener, TcpStream};
use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};

use propack_orchestrator::backend::aws::package::cloud::validate_azure_app;
use propack_orchestrator::backend::aws::zip::list_zip;
use serde_json::{Value, json};

/// This host's architecture as the packager names it.
fn arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

/// A `bootstrap` that is a shell script exec'ing this build's bootstrap: not an ELF file, so
/// the glibc check (Azure assumes Debian 11's 2.31; this machine's build needs newer) passes,
/// while every request is still answered by the real runtime.
fn script_bootstrap(dir: &Path) -> PathBuf {
    use std::os::unix::fs::PermissionsExt;
    let (_, real) = launch_support::binaries();
    let path = dir.join("bootstrap");
    std::fs::write(
        &path,
        format!("#!/bin/sh\nexec '{}' \"$@\"\n", real.display()),
    )
    .unwrap();
    std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o755)).unwrap();
    path
}

fn package(args: &[&str]) -> Output {
    let (orchestrator, _) = launch_support::binaries();
    Command::new(orchestrator)
        .arg("package")
        .args(args)
        .args(["--arch", arch()])
        .output()
        .unwrap()
}

fn ok_json(out: &Output) -> Value {
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{:?}\n{stdout}\n{}",
        out.status,
        String::from_utf8_lossy(&out.stderr)
    );
    serde_json::from_str(&stdout).unwrap()
}

fn read_json(p: &Path) -> Value {
    serde_json::from_str(&std::fs::read_to_string(p).unwrap()).unwrap()
}

fn post(port: u16, path: &str, body: &[u8]) -> (u16, Value) {
    let mut s = TcpStream::connect(("127.0.0.1", port)).unwrap();
    write!(
        s,
        "POST {path} HTTP/1.1\r\nhost: 127.0.0.1:{port}\r\ncontent-type: application/json\r\n\
         content-length: {}\r\nconnection: close\r\n\r\n",
        body.len()
    )
    .unwrap();
    s.write_all(body).unwrap();
    let mut resp = String::new();
    s.read_to_string(&mut resp).unwrap();
    let (head, body) = resp.split_once("\r\n\r\n").unwrap();
    let code = head.split_whitespace().nth(1).unwrap().parse().unwrap();
    (code, serde_json::from_str(body).unwrap())
}

#[test]
fn the_azure_app_is_what_the_host_requires_and_answers_each_function() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = script_bootstrap(dir.path());
    let app_files = dir.path().join("app");
    std::fs::create_dir(&app_files).unwrap();
    std::fs::write(app_files.join("words.txt"), "a b c\n").unwrap();
    let out = dir.path().join("dist");
    let p = ok_json(&package(&[
        "--target",
        "azure",
        "--prebuilt",
        bootstrap.to_str().unwrap(),
        "--include",
        &format!("{}=.", app_files.display()),
        "--out-dir",
        out.to_str().unwrap(),
        "--json",
    ]));
    let app = out.join("propack-azure");
    assert_eq!(p["target"], "azure");
    assert_eq!(p["dir"], app.to_str().unwrap());
    assert_eq!(
        p["files"],
        json!([
            "bootstrap",
            "host.json",
            "local.settings.json",
            "propack-queue/function.json",
            "propack/function.json",
            "words.txt"
        ])
    );

    // What the host requires (host.json, one folder per function, bindings, one trigger).
    assert_eq!(validate_azure_app(&app), Ok(()));
    let host = read_json(&app.join("host.json"));
    assert_eq!(host["version"], "2.0");
    assert_eq!(
        host["customHandler"]["description"]["defaultExecutablePath"],
        "bootstrap"
    );
    assert_eq!(host["customHandler"]["enableForwardingHttpRequest"], true);
    assert_eq!(
        host["extensionBundle"]["id"],
        "Microsoft.Azure.Functions.ExtensionBundle"
    );
    let http = read_json(&app.join("propack/function.json"));
    assert_eq!(
        http["bindings"],
        json!([{"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function", "methods": ["post"]},
               {"type": "http", "direction": "out", "name": "res"}])
    );
    let queue = read_json(&app.join("propack-queue/function.json"));
    assert_eq!(queue["bindings"][0]["type"], "queueTrigger");
    assert_eq!(queue["bindings"][0]["name"], "batch");
    assert_eq!(queue["bindings"][0]["queueName"], "propack-batches");
    assert_eq!(queue["bindings"][1]["name"], "result");
    let settings = read_json(&app.join("local.settings.json"));
    assert_eq!(settings["Values"]["FUNCTIONS_WORKER_RUNTIME"], "custom");

    // The zip is the folder without the local-only settings, bootstrap executable.
    let zip = list_zip(&std::fs::read(out.join("propack-azure.zip")).unwrap()).unwrap();
    let names: Vec<(&str, u32)> = zip.iter().map(|e| (e.name.as_str(), e.mode)).collect();
    assert_eq!(
        names,
        [
            ("bootstrap", 0o755),
            ("host.json", 0o644),
            ("propack-queue/function.json", 0o644),
            ("propack/function.json", 0o644),
            ("words.txt", 0o644)
        ]
    );

    // Started the way the host starts it, then one documented request per function.
    let port = TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let desc = &host["customHandler"]["description"];
    let workdir = app.join(desc["workingDirectory"].as_str().unwrap());
    let args: Vec<String> = desc["arguments"]
        .as_array()
        .unwrap()
        .iter()
        .map(|a| a.as_str().unwrap().to_owned())
        .collect();
    let mut child = Command::new(workdir.join(desc["defaultExecutablePath"].as_str().unwrap()))
        .args(&args)
        .current_dir(&workdir)
        .env("FUNCTIONS_CUSTOMHANDLER_PORT", port.to_string())
        .env("FUNCTIONS_WORKER_RUNTIME", "custom")
        .env("LAMBDA_TASK_ROOT", &workdir)
        .env_remove("AWS_LAMBDA_RUNTIME_API")
        .env_remove("PROPACK_AZURE_FUNCTION")
        .stdout(Stdio::piped())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let mut line = String::new();
    BufReader::new(child.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), format!("listening on http://127.0.0.1:{port}"));
    let batch =
        r#"{"tasks": [{"id": "w", "exec": {"program": "/bin/cat", "args": ["words.txt"]}}]}"#;
    let batch = batch.replace("words.txt", workdir.join("words.txt").to_str().unwrap());
    let mut answers = Vec::new();
    for function in ["propack", "propack-queue"] {
        let fj = read_json(&app.join(function).join("function.json"));
        let trigger = &fj["bindings"][0];
        let answer = match trigger["type"].as_str().unwrap() {
            // enableForwardingHttpRequest: the caller's request at its route.
            "httpTrigger" => post(port, &format!("/api/{function}"), batch.as_bytes()),
            "queueTrigger" => {
                let req = json!({"Data": {trigger["name"].as_str().unwrap(): batch},
                                 "Metadata": {"DequeueCount": 1, "Id": "m-1",
                                              "sys": {"MethodName": function}}});
                post(port, &format!("/{function}"), req.to_string().as_bytes())
            }
            other => panic!("unexpected trigger {other}"),
        };
        answers.push(answer);
    }
    let _ = child.kill();
    let _ = child.wait();
    let (code, forwarded) = &answers[0];
    assert_eq!(*code, 200, "{forwarded}");
    assert_eq!(forwarded["tasks"][0]["stdout_tail"], "a b c\n");
    let (code, queued) = &answers[1];
    assert_eq!(*code, 200, "{queued}");
    // The result goes to the output binding function.json names.
    let out_binding = queue["bindings"][1]["name"].as_str().unwrap();
    assert_eq!(
        queued["Outputs"][out_binding]["tasks"][0]["stdout_tail"],
        "a b c\n"
    );
    assert_eq!(queued["Outputs"][out_binding]["request_id"], "m-1");
}

#[test]
fn the_azure_glibc_limit_refuses_binaries_built_against_newer_glibc() {
    // This machine's debug bootstrap needs GLIBC_2.34 (Debian 12 build host); Azure's
    // Debian 11 images have 2.31.
    let (_, real) = launch_support::binaries();
    let dir = tempfile::tempdir().unwrap();
    let out = package(&[
        "--target",
        "azure",
        "--prebuilt",
        real.to_str().unwrap(),
        "--out-dir",
        dir.path().to_str().unwrap(),
    ]);
    let err = String::from_utf8_lossy(&out.stderr);
    let needs_new = Command::new("objdump")
        .args(["-T", real.to_str().unwrap()])
        .output()
        .map(|o| String::from_utf8_lossy(&o.stdout).contains("GLIBC_2.34"))
        .unwrap_or(true);
    if !needs_new {
        eprintln!("SKIPPED: this build of bootstrap needs no glibc above 2.31");
        return;
    }
    assert_eq!(out.status.code(), Some(1), "{err}");
    assert!(
        err.contains("would not start on Azure Functions (Linux)") && err.contains("2.31"),
        "{err}"
    );
    assert!(!dir.path().join("propack-azure").exists());
}

#[test]
fn the_cloud_run_context_is_a_dockerfile_and_the_binaries() {
    let dir = tempfile::tempdir().unwrap();
    let bootstrap = script_bootstrap(dir.path());
    let out = dir.path().join("dist");
    let p = ok_json(&package(&[
        "--target",
        "cloud-run",
        "--prebuilt",
        bootstrap.to_str().unwrap(),
        "--out-dir",
        out.to_str().unwrap(),
        "--json",
    ]));
    let ctx = out.join("propack-cloud-run");
    assert_eq!(p["files"], json!(["Dockerfile", "bootstrap", "task/.keep"]));
    assert!(p["next"][0].as_str().unwrap().starts_with(&format!(
        "gcloud run deploy propack --source {}",
        ctx.display()
    )));
    let dockerfile = std::fs::read_to_string(ctx.join("Dockerfile")).unwrap();
    let instructions: Vec<&str> = dockerfile.lines().filter(|l| !l.starts_with('#')).collect();
    assert_eq!(
        instructions,
        [
            "FROM debian:bookworm-slim",
            "COPY bootstrap /var/task/bootstrap",
            "COPY task/ /var/task/",
            "ENV LAMBDA_TASK_ROOT=/var/task PROPACK_SCRATCH_ROOT=/tmp",
            "WORKDIR /var/task",
            "ENTRYPOINT [\"/var/task/bootstrap\", \"serve\"]"
        ]
    );
    let refused = package(&["--target", "cloud-run", "--layer"]);
    assert_eq!(refused.status.code(), Some(2));
}
