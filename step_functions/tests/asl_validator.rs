//! Every committed and generated definition passes the `asl-validator` npm package,
//! and a broken one fails it, so the check is known to bite.
//!
//! `bash scripts/test` installs asl-validator into `.tools/` and puts it on PATH.
//! Without it this test FAILS (set PROPACK_SKIP_ASL_VALIDATOR=1 to skip deliberately).

mod common;

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

use serde_json::{Value, json};

fn validator() -> Option<PathBuf> {
    if std::env::var("PROPACK_SKIP_ASL_VALIDATOR").is_ok_and(|v| v == "1") {
        eprintln!("skipping: PROPACK_SKIP_ASL_VALIDATOR=1");
        return None;
    }
    let found = std::env::var_os("PATH").map(|p| {
        std::env::split_paths(&p)
            .map(|d| d.join("asl-validator"))
            .find(|f| f.is_file())
    });
    match found.flatten() {
        Some(path) => Some(path),
        None => panic!(
            "asl-validator is not on PATH. Install it as the test command does: \
             `npm install --prefix .tools asl-validator@4 && export PATH=$PWD/.tools/node_modules/.bin:$PATH` \
             (or run `bash scripts/test`); set PROPACK_SKIP_ASL_VALIDATOR=1 to skip this check deliberately"
        ),
    }
}

fn run(validator: &Path, files: &[PathBuf]) -> Output {
    let mut cmd = Command::new(validator);
    for f in files {
        cmd.arg("--json-path").arg(f);
    }
    cmd.output().expect("asl-validator runs")
}

fn describe(out: &Output) -> String {
    format!(
        "exit {:?}\nstdout: {}\nstderr: {}",
        out.status.code(),
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

#[test]
fn committed_and_generated_definitions_pass_asl_validator() {
    let Some(validator) = validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let mut files = common::committed_files();
    assert!(!files.is_empty());
    for (name, def) in common::built_variants() {
        let path = dir.path().join(format!("{name}.asl.json"));
        std::fs::write(&path, def.to_json_pretty()).unwrap();
        files.push(path);
    }
    let out = run(&validator, &files);
    assert_eq!(
        out.status.code(),
        Some(0),
        "asl-validator rejected a definition:\n{}",
        describe(&out)
    );
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert_eq!(stdout.matches("is valid").count(), files.len(), "{stdout}");
}

#[test]
fn asl_validator_rejects_broken_definitions() {
    let Some(validator) = validator() else { return };
    let dir = tempfile::tempdir().unwrap();
    let good: Value = serde_json::from_str(
        &std::fs::read_to_string(common::definitions_dir().join("sort.asl.json")).unwrap(),
    )
    .unwrap();
    let map = "/States/RunPackedBatches";
    let breakages: [(&str, &str, Value); 3] = [
        (
            "batch-too-big",
            "/ItemBatcher/MaxInputBytesPerBatch",
            json!(300_000),
        ),
        (
            "fractional-tolerance",
            "/ToleratedFailurePercentage",
            json!(5.5),
        ),
        ("start-at-not-a-string", "/ItemProcessor/StartAt", json!(7)),
    ];
    let mut files = Vec::new();
    for (name, pointer, bad) in breakages {
        let mut broken = good.clone();
        *broken.pointer_mut(&format!("{map}{pointer}")).unwrap() = bad;
        let path = dir.path().join(format!("{name}.asl.json"));
        std::fs::write(&path, serde_json::to_vec_pretty(&broken).unwrap()).unwrap();
        files.push(path);
    }
    // One node start-up for all three; each must be reported invalid on its own.
    let out = run(&validator, &files);
    assert_eq!(
        out.status.code(),
        Some(1),
        "broken definitions should be rejected:\n{}",
        describe(&out)
    );
    let text = describe(&out);
    for f in &files {
        let reported = text
            .lines()
            .any(|l| l.contains(&*f.to_string_lossy()) && l.contains("is invalid"));
        assert!(reported, "{} not reported invalid:\n{text}", f.display());
    }
}
