//! `orchestrator template`: every variant passes `cfn-lint` with no errors or warnings, the
//! definition inside passes `asl-validator`, and it is byte-identical to `orchestrator
//! definition` once its substitution is applied.
//!
//! `bash scripts/test` installs cfn-lint into `.tools/venv` and asl-validator into `.tools/`;
//! without them these tests FAIL (PROPACK_SKIP_CFN_LINT=1 / PROPACK_SKIP_ASL_VALIDATOR=1 skip
//! the respective check deliberately).

mod launch_support;

use std::path::{Path, PathBuf};
use std::process::Command;

use serde_json::Value;

const ARN: &str = "arn:aws:lambda:us-east-1:123456789012:function:propack";
const LAYER: &str = "arn:aws:lambda:us-east-1:123456789012:layer:propack:3";

fn tool(name: &str, skip_var: &str) -> Option<PathBuf> {
    if std::env::var(skip_var).is_ok_and(|v| v == "1") {
        eprintln!("skipping the {name} check: {skip_var}=1");
        return None;
    }
    let root = propack_tests::workspace_root();
    let mut dirs = vec![
        root.join(".tools/venv/bin"),
        root.join(".tools/node_modules/.bin"),
    ];
    if let Some(p) = std::env::var_os("PATH") {
        dirs.extend(std::env::split_paths(&p));
    }
    match dirs.into_iter().map(|d| d.join(name)).find(|f| f.is_file()) {
        Some(p) => Some(p),
        None => panic!(
            "{name} is not installed: run `bash scripts/test` (it installs it under .tools/), or set {skip_var}=1 to skip"
        ),
    }
}

fn orchestrator(args: &[&str]) -> std::process::Output {
    let (orchestrator, _) = launch_support::binaries();
    let out = Command::new(orchestrator).args(args).output().unwrap();
    assert!(
        out.status.success(),
        "orchestrator {args:?}: {}",
        String::from_utf8_lossy(&out.stderr)
    );
    out
}

fn write_template(dir: &Path, name: &str, args: &[&str]) -> PathBuf {
    let path = dir.join(name);
    let mut all = vec!["template", "--out", path.to_str().unwrap()];
    all.extend_from_slice(args);
    orchestrator(&all);
    path
}

#[test]
fn every_variant_passes_cfn_lint_with_no_errors_or_warnings() {
    let Some(cfn_lint) = tool("cfn-lint", "PROPACK_SKIP_CFN_LINT") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let job = ["--tasks", "1000", "--packing", "8", "--benchmark", "sort"];
    let mut files = Vec::new();
    for format in ["sam", "cloudformation"] {
        for runtime in [
            "provided.al2023",
            "provided.al2",
            "python3.13",
            "nodejs22.x",
        ] {
            let mut args = vec!["--format", format, "--runtime", runtime];
            if !runtime.starts_with("provided") {
                args.extend(["--handler", "app.handler", "--layers", LAYER]);
            }
            args.extend(job);
            files.push(write_template(
                dir.path(),
                &format!("{format}-{runtime}.yaml"),
                &args,
            ));
        }
    }
    // JSON output is a template too.
    let mut json_args = vec!["--json"];
    json_args.extend(job);
    files.push(write_template(dir.path(), "sam.json", &json_args));
    let out = Command::new(&cfn_lint).args(&files).output().unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "cfn-lint: {}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
    assert_eq!(
        String::from_utf8_lossy(&out.stdout).trim(),
        "",
        "no findings at all"
    );

    // The check bites: a template with a wildcard-free but broken property fails it.
    let bad = dir.path().join("bad.yaml");
    let text = std::fs::read_to_string(&files[0])
        .unwrap()
        .replace("\"Timeout\": 900", "\"Timeout\": 9000");
    std::fs::write(&bad, text).unwrap();
    let out = Command::new(&cfn_lint).arg(&bad).output().unwrap();
    assert_ne!(
        out.status.code(),
        Some(0),
        "cfn-lint must reject a 9000 s timeout"
    );
}

#[test]
fn the_definition_inside_is_the_definition_command_after_substitution() {
    let out = orchestrator(&[
        "template",
        "--json",
        "--tasks",
        "1000",
        "--packing",
        "8",
        "--benchmark",
        "sort",
    ]);
    let t: Value = serde_json::from_slice(&out.stdout).unwrap();
    let sm = &t["Resources"]["StateMachine"]["Properties"];
    assert_eq!(
        sm["DefinitionSubstitutions"]["PackedFunctionArn"],
        serde_json::json!({"Fn::GetAtt": ["PackedFunction", "Arn"]})
    );
    let substituted = sm["DefinitionString"]
        .as_str()
        .unwrap()
        .replace("${PackedFunctionArn}", ARN);
    let direct = orchestrator(&[
        "definition",
        "--tasks",
        "1000",
        "--packing",
        "8",
        "--benchmark",
        "sort",
        "--function-arn",
        ARN,
    ]);
    assert_eq!(
        substituted,
        String::from_utf8(direct.stdout).unwrap(),
        "byte-identical"
    );

    let Some(validator) = tool("asl-validator", "PROPACK_SKIP_ASL_VALIDATOR") else {
        return;
    };
    let dir = tempfile::tempdir().unwrap();
    let path = dir.path().join("sm.asl.json");
    std::fs::write(&path, &substituted).unwrap();
    let out = Command::new(validator)
        .arg("--json-path")
        .arg(&path)
        .output()
        .unwrap();
    assert_eq!(
        out.status.code(),
        Some(0),
        "{}",
        String::from_utf8_lossy(&out.stdout)
    );
}
