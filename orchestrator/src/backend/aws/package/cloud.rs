//! Packages for platforms other than Lambda: an Azure Functions custom-handler app and a Cloud Run container build context.
//!
//! Both hold the same `bootstrap` (and `bin/propack-bench`) as the Lambda zip, checked the
//! same way (ELF machine, newest glibc symbol), plus the platform's own files:
//!
//! - **Azure** (`propack-azure/` and `propack-azure.zip`): `host.json` with a `customHandler`
//!   whose `defaultExecutablePath` is `bootstrap` and `enableForwardingHttpRequest: true`;
//!   `propack/function.json` (HTTP trigger `req`, HTTP output `res`: forwarded requests,
//!   batch in, result out) and `propack-queue/function.json` (queue trigger `batch` on
//!   `propack-batches`, queue output `result` on `propack-results`); `local.settings.json`
//!   for `func start` (not in the zip). [`validate_azure_app`] checks what the host requires.
//! - **Cloud Run** (`propack-cloud-run/`): a `Dockerfile` on `debian:bookworm-slim` copying
//!   the binaries to `/var/task` and running `bootstrap serve` (which listens on `$PORT`).
//!
//! Nothing here talks to Azure or Google Cloud; deploying is `func azure functionapp publish`
//! / `az functionapp deployment source config-zip` and `gcloud run deploy --source`.

use std::path::{Path, PathBuf};

use serde_json::{Value, json};

use super::super::elf::{self, GlibcVersion};
use super::super::zip::{self, ZipEntry};
use super::{BOOTSTRAP, LambdaArch, PackageError, ZipSource};

/// The function name of the generated Azure app (the runtime's default too).
pub const AZURE_FUNCTION: &str = propack_runtime::contract::azure::DEFAULT_FUNCTION;
/// The queue the queue-triggered function reads batches from.
pub const AZURE_BATCH_QUEUE: &str = "propack-batches";
/// The queue it writes results to.
pub const AZURE_RESULT_QUEUE: &str = "propack-results";
/// The Functions extension bundle range (v4 bundles carry the queue extension).
pub const AZURE_EXTENSION_BUNDLE: &str = "[4.*, 5.0.0)";

/// Newest glibc the Azure package's binaries may need. The Functions v4 Linux images are
/// Debian-based; 2.31 (Debian 11) is assumed as the oldest still in use — an assumption,
/// not a documented number, which is why `package --target azure` builds with the
/// provided.al2 pin (2.26) that every newer glibc runs.
pub const AZURE_MAX_GLIBC: GlibcVersion = GlibcVersion(2, 31, 0);
/// The Cloud Run image's base.
pub const CLOUD_RUN_BASE_IMAGE: &str = "debian:bookworm-slim";
/// Its glibc (Debian 12).
pub const CLOUD_RUN_MAX_GLIBC: GlibcVersion = GlibcVersion(2, 36, 0);

/// What a non-Lambda package was written as.
#[derive(Debug, Clone, serde::Serialize)]
pub struct CloudPackage {
    /// `azure` or `cloud-run`.
    pub target: &'static str,
    /// The folder.
    pub dir: PathBuf,
    /// The zip of the folder (Azure only).
    pub zip: Option<PathBuf>,
    /// Files in the folder, sorted.
    pub files: Vec<String>,
    /// Newest glibc any binary needs (None: static).
    pub max_glibc: Option<String>,
    /// What to run next.
    pub next: Vec<String>,
}

/// The function name and queues of the Azure app.
#[derive(Debug, Clone)]
pub struct AzureNames {
    /// HTTP function (the queue function is `<name>-queue`).
    pub function: String,
    /// Queue of batches.
    pub batch_queue: String,
    /// Queue of results.
    pub result_queue: String,
}

impl Default for AzureNames {
    fn default() -> Self {
        Self {
            function: AZURE_FUNCTION.into(),
            batch_queue: AZURE_BATCH_QUEUE.into(),
            result_queue: AZURE_RESULT_QUEUE.into(),
        }
    }
}

/// `host.json` of the custom-handler app.
pub fn azure_host_json() -> Value {
    json!({
        "version": "2.0",
        "customHandler": {
            "description": {
                "defaultExecutablePath": BOOTSTRAP,
                "workingDirectory": "",
                "arguments": []
            },
            "enableForwardingHttpRequest": true
        },
        "extensionBundle": {
            "id": "Microsoft.Azure.Functions.ExtensionBundle",
            "version": AZURE_EXTENSION_BUNDLE
        }
    })
}

/// `function.json` of each function, by folder name.
pub fn azure_functions(names: &AzureNames) -> Vec<(String, Value)> {
    use propack_runtime::contract::azure::{
        HTTP_OUT_BINDING, QUEUE_SUFFIX, RESULT_BINDING, TRIGGER_BINDING,
    };
    vec![
        (
            names.function.clone(),
            json!({"bindings": [
                {"type": "httpTrigger", "direction": "in", "name": "req", "authLevel": "function",
                 "methods": ["post"]},
                {"type": "http", "direction": "out", "name": HTTP_OUT_BINDING}
            ]}),
        ),
        (
            format!("{}{QUEUE_SUFFIX}", names.function),
            json!({"bindings": [
                {"type": "queueTrigger", "direction": "in", "name": TRIGGER_BINDING,
                 "queueName": names.batch_queue, "connection": "AzureWebJobsStorage"},
                {"type": "queue", "direction": "out", "name": RESULT_BINDING,
                 "queueName": names.result_queue, "connection": "AzureWebJobsStorage"}
            ]}),
        ),
    ]
}

/// The Dockerfile of the Cloud Run build context.
pub fn cloud_run_dockerfile(has_bench: bool) -> String {
    let bench = if has_bench {
        "COPY bin/ /var/task/bin/\n"
    } else {
        ""
    };
    format!(
        "# Written by `orchestrator package --target cloud-run`: ProPack's packed runtime as a\n\
         # Cloud Run container. `bootstrap serve` listens on 0.0.0.0:$PORT, answers POST / and\n\
         # POST /invoke with a batch, and on SIGTERM finishes in-flight batches within\n\
         # PROPACK_SHUTDOWN_GRACE_MS (8 s of Cloud Run's 10 s) or answers them 503.\n\
         FROM {CLOUD_RUN_BASE_IMAGE}\n\
         COPY bootstrap /var/task/bootstrap\n\
         {bench}\
         COPY task/ /var/task/\n\
         ENV LAMBDA_TASK_ROOT=/var/task PROPACK_SCRATCH_ROOT=/tmp\n\
         WORKDIR /var/task\n\
         ENTRYPOINT [\"/var/task/bootstrap\", \"serve\"]\n"
    )
}

/// Checks every ELF file among `files` for `arch` and `max` glibc; returns the newest needed.
fn check_binaries(
    files: &[ZipSource],
    arch: LambdaArch,
    max: GlibcVersion,
    platform: &'static str,
) -> Result<Option<GlibcVersion>, PackageError> {
    let mut newest = None;
    for f in files {
        let data = std::fs::read(&f.source).map_err(|source| PackageError::Io {
            path: f.source.clone(),
            source,
        })?;
        if !data.starts_with(b"\x7fELF") {
            continue;
        }
        let bad = |message: String| PackageError::BadBinary {
            binary: f.zip_path.clone(),
            message,
        };
        let needs = elf::version_needs(&data).map_err(|e| bad(e.to_string()))?;
        if needs.machine != arch.elf_machine() {
            return Err(bad(format!(
                "built for ELF machine {} but the package is for {} (machine {})",
                needs.machine,
                arch.as_str(),
                arch.elf_machine()
            )));
        }
        let above = needs.above(max);
        if !above.is_empty() {
            return Err(PackageError::GlibcTooNew {
                binary: f.zip_path.clone(),
                runtime: platform,
                needs: above.join(", "),
                max,
                triple: arch.triple(),
                max_major: max.0,
                max_minor: max.1,
            });
        }
        newest = newest.max(needs.max_glibc());
    }
    Ok(newest)
}

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> PackageError + '_ {
    move |source| PackageError::Io {
        path: path.to_owned(),
        source,
    }
}

/// Writes `files` (each at its `zip_path` under `dir`, mode kept) and the generated
/// `texts`; `dir` is emptied first so the folder is exactly the package.
fn write_dir(
    dir: &Path,
    files: &[ZipSource],
    texts: &[(String, String)],
) -> Result<Vec<String>, PackageError> {
    use std::os::unix::fs::PermissionsExt;
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(io(dir))?;
    }
    let mut names = Vec::new();
    let mut put = |rel: &str, data: &[u8], mode: u32| -> Result<(), PackageError> {
        let path = dir.join(rel);
        if let Some(parent) = path.parent() {
            std::fs::create_dir_all(parent).map_err(io(parent))?;
        }
        std::fs::write(&path, data).map_err(io(&path))?;
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
            .map_err(io(&path))?;
        names.push(rel.to_owned());
        Ok(())
    };
    for f in files {
        let data = std::fs::read(&f.source).map_err(io(&f.source))?;
        put(&f.zip_path, &data, f.mode)?;
    }
    for (rel, text) in texts {
        put(rel, text.as_bytes(), 0o644)?;
    }
    names.sort();
    Ok(names)
}

fn pretty(v: &Value) -> String {
    let mut s = serde_json::to_string_pretty(v).unwrap_or_default();
    s.push('\n');
    s
}

/// Writes the Azure Functions custom-handler app to `out_dir/propack-azure/` and its zip
/// (everything but `local.settings.json`) to `out_dir/propack-azure.zip`, after checking the
/// binaries, and re-validates what was written.
pub fn package_azure(
    runtime: &[ZipSource],
    includes: &[ZipSource],
    out_dir: &Path,
    arch: LambdaArch,
    names: &AzureNames,
) -> Result<CloudPackage, PackageError> {
    let mut files: Vec<ZipSource> = runtime.to_vec();
    files.extend(includes.iter().cloned());
    let max_glibc = check_binaries(&files, arch, AZURE_MAX_GLIBC, "Azure Functions (Linux)")?;
    let mut texts = vec![("host.json".to_owned(), pretty(&azure_host_json()))];
    for (folder, fj) in azure_functions(names) {
        texts.push((format!("{folder}/function.json"), pretty(&fj)));
    }
    let settings = json!({"IsEncrypted": false, "Values": {
        "FUNCTIONS_WORKER_RUNTIME": "custom",
        "AzureWebJobsStorage": "UseDevelopmentStorage=true"
    }});
    let local_settings = ("local.settings.json".to_owned(), pretty(&settings));
    let dir = out_dir.join("propack-azure");
    let mut all_texts = texts.clone();
    all_texts.push(local_settings);
    let written = write_dir(&dir, &files, &all_texts)?;
    validate_azure_app(&dir).map_err(|problems| PackageError::BadBinary {
        binary: dir.display().to_string(),
        message: format!("the written app is not valid: {}", problems.join("; ")),
    })?;
    // The zip is the folder minus the local-only settings (secrets live in app settings).
    let mut entries = Vec::new();
    for f in &files {
        entries.push(ZipEntry {
            name: f.zip_path.clone(),
            mode: f.mode,
            data: std::fs::read(&f.source).map_err(io(&f.source))?,
        });
    }
    for (rel, text) in &texts {
        entries.push(ZipEntry {
            name: rel.clone(),
            mode: 0o644,
            data: text.clone().into_bytes(),
        });
    }
    let zip_path = out_dir.join("propack-azure.zip");
    std::fs::write(&zip_path, zip::write_zip(&entries)?).map_err(io(&zip_path))?;
    Ok(CloudPackage {
        target: "azure",
        dir: dir.clone(),
        zip: Some(zip_path.clone()),
        files: written,
        max_glibc: max_glibc.map(|v| v.to_string()),
        next: vec![
            format!(
                "cd {} && func start   # locally, with Azurite for the queue",
                dir.display()
            ),
            format!(
                "az functionapp deployment source config-zip -g GROUP -n APP --src {}",
                zip_path.display()
            ),
        ],
    })
}

/// Writes the Cloud Run build context to `out_dir/propack-cloud-run/`: the Dockerfile, the
/// binaries and the user's files under `task/` (copied to `/var/task`).
pub fn package_cloud_run(
    runtime: &[ZipSource],
    includes: &[ZipSource],
    out_dir: &Path,
    arch: LambdaArch,
) -> Result<CloudPackage, PackageError> {
    let mut files: Vec<ZipSource> = runtime.to_vec();
    files.extend(includes.iter().map(|f| ZipSource {
        zip_path: format!("task/{}", f.zip_path),
        ..f.clone()
    }));
    let max_glibc = check_binaries(
        &files,
        arch,
        CLOUD_RUN_MAX_GLIBC,
        "Cloud Run (debian:bookworm-slim)",
    )?;
    let has_bench = files.iter().any(|f| f.zip_path.starts_with("bin/"));
    let texts = vec![
        ("Dockerfile".to_owned(), cloud_run_dockerfile(has_bench)),
        // `COPY task/` needs the folder even when nothing is included.
        ("task/.keep".to_owned(), String::new()),
    ];
    let dir = out_dir.join("propack-cloud-run");
    let written = write_dir(&dir, &files, &texts)?;
    Ok(CloudPackage {
        target: "cloud-run",
        dir: dir.clone(),
        zip: None,
        files: written,
        max_glibc: max_glibc.map(|v| v.to_string()),
        next: vec![format!(
            "gcloud run deploy propack --source {} --region REGION --concurrency 1 --cpu 4 \
             --memory 8Gi --timeout 3600 --no-allow-unauthenticated",
            dir.display()
        )],
    })
}

/// Checks an Azure Functions app folder for what the host requires of a custom-handler app:
/// `host.json` with `version` "2.0" and `customHandler.description.defaultExecutablePath`
/// naming an executable file in the folder; at least one function folder whose
/// `function.json` has a `bindings` array of objects with `type`, `direction` (`in`/`out`/
/// `inout`) and a unique `name`, exactly one trigger (a `type` ending in `Trigger`, direction
/// `in`); and, with `enableForwardingHttpRequest`, HTTP functions whose only other binding is
/// the HTTP output (the host forwards only such functions). Every problem found is listed.
pub fn validate_azure_app(dir: &Path) -> Result<(), Vec<String>> {
    use std::os::unix::fs::PermissionsExt;
    let mut problems = Vec::new();
    let read = |p: &Path| -> Result<Value, String> {
        let text = std::fs::read_to_string(p).map_err(|e| format!("{}: {e}", p.display()))?;
        serde_json::from_str(&text).map_err(|e| format!("{}: not JSON: {e}", p.display()))
    };
    let host = match read(&dir.join("host.json")) {
        Ok(h) => h,
        Err(e) => return Err(vec![e]),
    };
    if host["version"] != "2.0" {
        problems.push(format!(
            "host.json: version must be \"2.0\", found {}",
            host["version"]
        ));
    }
    let handler = &host["customHandler"];
    match handler["description"]["defaultExecutablePath"].as_str() {
        None => problems
            .push("host.json: customHandler.description.defaultExecutablePath is missing".into()),
        Some(exe) => {
            let working = handler["description"]["workingDirectory"]
                .as_str()
                .unwrap_or("");
            let path = dir.join(working).join(exe);
            match std::fs::metadata(&path) {
                Ok(m) if m.is_file() && m.permissions().mode() & 0o111 != 0 => {}
                Ok(_) => problems.push(format!(
                    "host.json: defaultExecutablePath {exe:?} is not an executable file"
                )),
                Err(e) => problems.push(format!(
                    "host.json: defaultExecutablePath {exe:?}: {}: {e}",
                    path.display()
                )),
            }
        }
    }
    if let Some(args) = handler["description"].get("arguments")
        && !args
            .as_array()
            .is_some_and(|a| a.iter().all(Value::is_string))
    {
        problems.push("host.json: customHandler.description.arguments must be strings".into());
    }
    let forwarding = handler["enableForwardingHttpRequest"] == true;
    let mut functions = 0;
    let entries = std::fs::read_dir(dir).map_err(|e| vec![format!("{}: {e}", dir.display())])?;
    let mut dirs: Vec<PathBuf> = entries
        .filter_map(Result::ok)
        .map(|e| e.path())
        .filter(|p| p.join("function.json").is_file())
        .collect();
    dirs.sort();
    for fdir in dirs {
        functions += 1;
        let name = fdir.file_name().unwrap_or_default().to_string_lossy();
        let fj = match read(&fdir.join("function.json")) {
            Ok(v) => v,
            Err(e) => {
                problems.push(e);
                continue;
            }
        };
        let Some(bindings) = fj["bindings"].as_array() else {
            problems.push(format!("{name}/function.json: no \"bindings\" array"));
            continue;
        };
        let mut seen = std::collections::BTreeSet::new();
        let mut triggers = Vec::new();
        for (i, b) in bindings.iter().enumerate() {
            let (t, d, n) = (
                b["type"].as_str(),
                b["direction"].as_str(),
                b["name"].as_str(),
            );
            let (Some(t), Some(d), Some(n)) = (t, d, n) else {
                problems.push(format!(
                    "{name}/function.json: bindings[{i}] needs string type, direction and name"
                ));
                continue;
            };
            if !matches!(d, "in" | "out" | "inout") {
                problems.push(format!(
                    "{name}/function.json: bindings[{i}].direction {d:?} is not in/out/inout"
                ));
            }
            if !seen.insert(n.to_owned()) {
                problems.push(format!(
                    "{name}/function.json: binding name {n:?} is used twice"
                ));
            }
            if t.ends_with("Trigger") {
                triggers.push((t, d));
                if t == "queueTrigger"
                    && (b["queueName"].as_str().is_none() || b["connection"].as_str().is_none())
                {
                    problems.push(format!(
                        "{name}/function.json: queueTrigger needs queueName and connection"
                    ));
                }
            }
        }
        match triggers.as_slice() {
            [(_, "in")] => {}
            [(t, d)] => problems.push(format!(
                "{name}/function.json: trigger {t} must have direction \"in\", not {d:?}"
            )),
            _ => problems.push(format!(
                "{name}/function.json: needs exactly one trigger binding, found {}",
                triggers.len()
            )),
        }
        let http = triggers.iter().any(|(t, _)| *t == "httpTrigger");
        if forwarding && http {
            let others: Vec<&str> = bindings
                .iter()
                .filter_map(|b| b["type"].as_str())
                .filter(|t| !matches!(*t, "httpTrigger" | "http"))
                .collect();
            if !others.is_empty() {
                problems.push(format!(
                    "{name}/function.json: enableForwardingHttpRequest forwards only HTTP \
                     functions without other bindings, but it also has {}",
                    others.join(", ")
                ));
            }
        }
    }
    if functions == 0 {
        problems.push("no function folder (a folder with function.json)".into());
    }
    if problems.is_empty() {
        Ok(())
    } else {
        Err(problems)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn app(host: Value, functions: &[(&str, Value)]) -> tempfile::TempDir {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("host.json"), host.to_string()).unwrap();
        let exe = dir.path().join("bootstrap");
        std::fs::write(&exe, b"#!/bin/sh\n").unwrap();
        std::fs::set_permissions(&exe, std::fs::Permissions::from_mode(0o755)).unwrap();
        for (name, fj) in functions {
            std::fs::create_dir(dir.path().join(name)).unwrap();
            std::fs::write(dir.path().join(name).join("function.json"), fj.to_string()).unwrap();
        }
        dir
    }

    #[test]
    fn the_generated_app_is_valid() {
        let fs = azure_functions(&AzureNames::default());
        let named: Vec<(&str, Value)> = fs.iter().map(|(n, v)| (n.as_str(), v.clone())).collect();
        let dir = app(azure_host_json(), &named);
        assert_eq!(validate_azure_app(dir.path()), Ok(()));
        assert_eq!(
            fs.iter().map(|(n, _)| n.as_str()).collect::<Vec<_>>(),
            ["propack", "propack-queue"]
        );
    }

    #[test]
    fn what_the_host_would_refuse_is_named() {
        let host = json!({"version": "1.0", "customHandler": {"description": {"defaultExecutablePath": "handler"}},
                          "enableForwardingHttpRequest": true});
        let dir = app(
            host,
            &[
                (
                    "two",
                    json!({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "a"},
                                              {"type": "queueTrigger", "direction": "in", "name": "a"}]}),
                ),
                (
                    "none",
                    json!({"bindings": [{"type": "http", "direction": "sideways"}]}),
                ),
            ],
        );
        let problems = validate_azure_app(dir.path()).unwrap_err();
        let text = problems.join("\n");
        for needle in [
            "version must be \"2.0\"",
            "defaultExecutablePath \"handler\"",
            "none/function.json: bindings[0] needs string type, direction and name",
            "none/function.json: needs exactly one trigger binding, found 0",
            "two/function.json: binding name \"a\" is used twice",
            "two/function.json: queueTrigger needs queueName and connection",
            "two/function.json: needs exactly one trigger binding, found 2",
        ] {
            assert!(text.contains(needle), "{needle:?} not in\n{text}");
        }
        assert_eq!(problems.len(), 7, "{text}");
    }

    #[test]
    fn forwarding_refuses_http_functions_with_other_bindings() {
        let mut host = azure_host_json();
        host["customHandler"]["enableForwardingHttpRequest"] = json!(true);
        let dir = app(
            host,
            &[(
                "f",
                json!({"bindings": [{"type": "httpTrigger", "direction": "in", "name": "req"},
                                    {"type": "http", "direction": "out", "name": "res"},
                                    {"type": "queue", "direction": "out", "name": "q", "queueName": "x", "connection": "c"}]}),
            )],
        );
        let problems = validate_azure_app(dir.path()).unwrap_err();
        assert_eq!(problems.len(), 1, "{problems:?}");
        assert!(problems[0].contains("also has queue"), "{problems:?}");
    }

    #[test]
    fn the_dockerfile_runs_serve_from_the_task_root() {
        let d = cloud_run_dockerfile(true);
        assert!(d.contains("\nFROM debian:bookworm-slim\n"), "{d}");
        assert!(d.contains("COPY bin/ /var/task/bin/\n"));
        assert!(d.ends_with("ENTRYPOINT [\"/var/task/bootstrap\", \"serve\"]\n"));
        assert!(!cloud_run_dockerfile(false).contains("COPY bin/"));
    }
}
