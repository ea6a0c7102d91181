//! `orchestrator package --prebuilt --include/--layer` end to end with a small real bootstrap,
//! and the bad input of `package` and `deploy` refused with exit status 2 before anything runs.
//!
//! cargo-lambda cannot run in tests, so the bootstrap is a tiny Rust program compiled here:
//! a real dynamically linked ELF (the glibc check reads it) that answers the panic-isolation
//! batch the way an unwinding build does.

mod launch_support;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use std::sync::OnceLock;

use propack_orchestrator::backend::aws::elf::{EM_X86_64, synthetic_elf};
use propack_orchestrator::backend::aws::zip::{ZipEntry, list_zip, write_zip};
use serde_json::Value;

const FAKE_BOOTSTRAP: &str = r##"
use std::io::Read;
fn main() {
    let mut batch = String::new();
    std::io::stdin().read_to_string(&mut batch).unwrap();
    println!("{}", r#"{"tasks":[{"id":"boom","status":"failed"},{"id":"ok","status":"succeeded"}]}"#);
}
"##;

/// The fake bootstrap, compiled once per test binary.
fn fake_bootstrap() -> &'static Path {
    static BIN: OnceLock<(tempfile::TempDir, PathBuf)> = OnceLock::new();
    &BIN.get_or_init(|| {
        let dir = tempfile::tempdir().unwrap();
        let src = dir.path().join("fake.rs");
        std::fs::write(&src, FAKE_BOOTSTRAP).unwrap();
        let bin = dir.path().join("bootstrap");
        let out = Command::new(std::env::var_os("RUSTC").unwrap_or_else(|| "rustc".into()))
            .args(["-O", "-C", "strip=symbols", "-o"])
            .arg(&bin)
            .arg(&src)
            .output()
            .expect("running rustc");
        assert!(
            out.status.success(),
            "{}",
            String::from_utf8_lossy(&out.stderr)
        );
        (dir, bin)
    })
    .1
}

/// This host's architecture as Lambda names it (the fake bootstrap is built for it).
fn arch() -> &'static str {
    if cfg!(target_arch = "aarch64") {
        "arm64"
    } else {
        "x86_64"
    }
}

fn orchestrator(args: &[&str]) -> Output {
    let (orchestrator, _) = launch_support::binaries();
    Command::new(orchestrator)
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

fn listing(zip: &Path) -> Vec<(String, u32, u64)> {
    list_zip(&std::fs::read(zip).unwrap())
        .unwrap()
        .into_iter()
        .map(|e| (e.name, e.mode, e.size))
        .collect()
}

fn write(path: &Path, content: &str, mode: u32) {
    use std::os::unix::fs::PermissionsExt;
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, content).unwrap();
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
}

/// A user's program tree: a script, a data file in a subdirectory, a README.
fn user_tree(root: &Path) -> PathBuf {
    let app = root.join("app");
    write(&app.join("run.sh"), "#!/bin/sh\nexec cat \"$1\"\n", 0o700);
    write(&app.join("data/words.txt"), "alpha\nbeta\n", 0o664);
    write(&root.join("README"), "read me\n", 0o600);
    app
}

fn s(p: &Path) -> &str {
    p.to_str().unwrap()
}

#[test]
fn include_puts_files_beside_bootstrap_with_their_modes() {
    let dir = tempfile::tempdir().unwrap();
    let app = user_tree(dir.path());
    let readme = format!("{}=docs/", s(&dir.path().join("README")));
    let out_dir = dir.path().join("dist");
    let args = |out: &Path| {
        let v = [
            "package",
            "--prebuilt",
            s(fake_bootstrap()),
            "--include",
            s(&app),
            "--include",
            &readme,
            "--out-dir",
            s(out),
            "--json",
        ];
        v.map(str::to_owned)
    };
    let run = |out: &Path| {
        let a = args(out);
        ok_json(&orchestrator(
            &a.iter().map(String::as_str).collect::<Vec<_>>(),
        ))
    };
    let p = run(&out_dir);
    let zip = PathBuf::from(p["zip"].as_str().unwrap());
    assert_eq!(
        zip,
        out_dir.join(format!("propack-provided.al2023-{}.zip", arch()))
    );
    assert_eq!(p["kind"], "function");
    let bootstrap = std::fs::metadata(fake_bootstrap()).unwrap().len();
    assert_eq!(
        listing(&zip),
        [
            ("app/data/words.txt".to_owned(), 0o644, 11),
            ("app/run.sh".to_owned(), 0o755, 24),
            ("bootstrap".to_owned(), 0o755, bootstrap),
            ("docs/README".to_owned(), 0o644, 8),
        ]
    );
    assert_eq!(p["unzipped_bytes"], bootstrap + 43);
    assert_eq!(p["bytes"], std::fs::metadata(&zip).unwrap().len());
    assert_eq!(p["code"], Value::Null);
    eprintln!(
        "measured: function zip {} bytes ({} unzipped, bootstrap {bootstrap} bytes)",
        p["bytes"], p["unzipped_bytes"]
    );

    // Reproducible: the same inputs give the same bytes.
    let again = dir.path().join("again");
    let q = run(&again);
    assert!(
        std::fs::read(&zip).unwrap() == std::fs::read(q["zip"].as_str().unwrap()).unwrap(),
        "two packages of the same files differ"
    );
}

#[test]
fn layer_puts_the_runtime_under_opt_and_the_includes_in_a_small_function_zip() {
    let dir = tempfile::tempdir().unwrap();
    let app = user_tree(dir.path());
    let prebuilt = dir.path().join("prebuilt");
    std::fs::create_dir(&prebuilt).unwrap();
    std::fs::copy(fake_bootstrap(), prebuilt.join("bootstrap")).unwrap();
    let wrapper = "#!/bin/sh\nexec /opt/bootstrap\n";
    write(&prebuilt.join("propack-exec-wrapper"), wrapper, 0o755);
    let out_dir = dir.path().join("dist");
    let include = format!("{}=.", s(&app));
    let args = [
        "package",
        "--layer",
        "--runtime",
        "python3.13",
        "--prebuilt",
        s(&prebuilt),
        "--include",
        &include,
        "--out-dir",
        s(&out_dir),
    ];
    let out = orchestrator(&args);
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "{stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let layer = out_dir.join(format!("propack-layer-python3.13-{}.zip", arch()));
    let code = out_dir.join(format!("propack-code-python3.13-{}.zip", arch()));
    // Both paths are said.
    assert!(
        stdout.contains(&format!("layer zip: {}", layer.display())),
        "{stdout}"
    );
    assert!(
        stdout.contains(&format!("function zip: {}", code.display())),
        "{stdout}"
    );
    let bootstrap = std::fs::metadata(fake_bootstrap()).unwrap().len();
    assert_eq!(
        listing(&layer),
        [
            ("bootstrap".to_owned(), 0o755, bootstrap),
            (
                "propack-exec-wrapper".to_owned(),
                0o755,
                wrapper.len() as u64
            ),
        ]
    );
    assert_eq!(
        listing(&code),
        [
            ("data/words.txt".to_owned(), 0o644, 11),
            ("run.sh".to_owned(), 0o755, 24),
        ]
    );
    eprintln!(
        "measured: layer zip {} bytes, function zip {} bytes",
        std::fs::metadata(&layer).unwrap().len(),
        std::fs::metadata(&code).unwrap().len()
    );
}

/// Exit status 2, the message, and nothing written.
fn refused<S: AsRef<str> + std::fmt::Debug>(args: &[S], out_dir: &Path, message: &str) {
    let out = orchestrator(&args.iter().map(AsRef::as_ref).collect::<Vec<_>>());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
    assert!(stderr.contains(message), "{args:?}: {stderr}");
    assert!(!out_dir.exists(), "{args:?} wrote {}", out_dir.display());
}

#[test]
fn package_refuses_symlinks_missing_paths_and_collisions_before_writing() {
    let dir = tempfile::tempdir().unwrap();
    let app = user_tree(dir.path());
    std::os::unix::fs::symlink(app.join("run.sh"), app.join("data/run-link")).unwrap();
    let out_dir = dir.path().join("dist");
    let out_s = s(&out_dir).to_owned();
    let with = |more: &[&str]| -> Vec<String> {
        ["package", "--prebuilt", s(fake_bootstrap())]
            .iter()
            .chain(more)
            .chain(&["--out-dir", out_s.as_str()])
            .map(|a| (*a).to_owned())
            .collect()
    };
    let link = app.join("data/run-link");
    refused(
        &with(&["--include", s(&app)]),
        &out_dir,
        &format!("{} is a symbolic link", link.display()),
    );
    let missing = dir.path().join("no-such-dir");
    refused(
        &with(&["--include", s(&missing)]),
        &out_dir,
        &format!("--include {}: cannot read it", missing.display()),
    );
    let readme = format!("{}=bootstrap", s(&dir.path().join("README")));
    refused(
        &with(&["--include", &readme]),
        &out_dir,
        "two files would be bootstrap in the zip",
    );
    refused(
        &with(&["--include", "x=../escape"]),
        &out_dir,
        "DEST may not contain `..`",
    );
    let no_prebuilt = dir.path().join("nothing-here");
    refused(
        &[
            "package",
            "--prebuilt",
            s(&no_prebuilt),
            "--out-dir",
            s(&out_dir),
        ],
        &out_dir,
        &format!("--prebuilt {}", no_prebuilt.display()),
    );
}

#[test]
fn deploy_refuses_bad_input_before_any_aws_call() {
    let dir = tempfile::tempdir().unwrap();
    let code = dir.path().join("code");
    write(
        &code.join("app.py"),
        "def handler(e, c):\n    return e\n",
        0o644,
    );
    // A layer that would pass every check, so that only the flags are at fault.
    let layer = dir.path().join("layer.zip");
    let entry = |name: &str, data: Vec<u8>| ZipEntry {
        name: name.into(),
        mode: 0o755,
        data,
    };
    let layer_zip = write_zip(&[
        entry("bootstrap", synthetic_elf(EM_X86_64, &["GLIBC_2.17"])),
        entry("propack-exec-wrapper", b"#!/bin/sh\n".to_vec()),
    ])
    .unwrap();
    std::fs::write(&layer, layer_zip).unwrap();
    let (orchestrator, _) = launch_support::binaries();
    let deploy = |args: &[&str]| {
        // Any AWS call would fail differently: nothing listens on port 9.
        Command::new(orchestrator)
            .args(["deploy", "--role-arn", "arn:aws:iam::123456789012:role/r"])
            .args(args)
            .env("AWS_ENDPOINT_URL", "http://127.0.0.1:9")
            .env("AWS_ACCESS_KEY_ID", "test")
            .env("AWS_SECRET_ACCESS_KEY", "test")
            .env("AWS_REGION", "us-east-1")
            .output()
            .unwrap()
    };
    let code = s(&code);
    let missing = dir.path().join("missing.zip");
    let arns: Vec<String> = (1..=6)
        .map(|v| format!("arn:aws:lambda:us-east-1:123456789012:layer:l:{v}"))
        .collect();
    let mut too_many = vec!["--code", code, "--layers"];
    too_many.extend(arns.iter().map(String::as_str));
    let cases: &[(&[&str], &str)] = &[
        (
            &["--runtime", "python3.13", "--code", code],
            "--handler <HANDLER>",
        ),
        (
            &[
                "--runtime",
                "python3.13",
                "--handler",
                "app",
                "--code",
                code,
            ],
            "is not module.function",
        ),
        (
            &[
                "--runtime",
                "python3.13",
                "--handler",
                "app.handler",
                "--code",
                code,
            ],
            "runs the handler packed through ProPack's layer",
        ),
        (
            &[
                "--runtime",
                "nodejs22.x",
                "--handler",
                "app.handler",
                "--code",
                code,
                "--layer",
                s(&layer),
            ],
            "none of app.js, app.mjs, app.cjs",
        ),
        (
            &["--code", code, "--env", "AWS_REGION=hunter2"],
            "AWS_REGION is reserved",
        ),
        (&["--code", code, "--env", "hunter2"], "expected KEY=VALUE"),
        (&["--code", code], "no bootstrap at its root"),
        (
            &[
                "--code",
                code,
                "--layers",
                "arn:aws:lambda:us-east-1:1:layer:l",
            ],
            "is not a layer version ARN",
        ),
        (&["--code", s(&missing)], "missing.zip"),
        (&too_many, "at most 5 layers"),
    ];
    for (args, message) in cases {
        let out = deploy(args);
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{args:?}: {stderr}");
        assert!(stderr.contains(message), "{args:?}: {stderr}");
        assert!(
            !stderr.contains("hunter2") && out.stdout.is_empty(),
            "{args:?}: {stderr}"
        );
    }
}
