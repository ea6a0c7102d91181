//! Rewrites `step_functions/definitions/*.asl.json` from the builder.
//!
//! Usage: `cargo run -p propack-step-functions --example regenerate [-- --check]`
//! (`--check` only reports drift, exit 1 if any file differs).

use std::path::Path;
use std::process::ExitCode;

fn main() -> ExitCode {
    let check = std::env::args().any(|a| a == "--check");
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("definitions");
    let mut drift = 0;
    for (file, opts) in propack_step_functions::presets::committed() {
        let built = match propack_step_functions::build_definition(&opts) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("error: {file}: {e}");
                return ExitCode::from(1);
            }
        };
        let text = built.definition.to_json_pretty();
        let path = dir.join(&file);
        let same = std::fs::read_to_string(&path).is_ok_and(|old| old == text);
        if check {
            if !same {
                eprintln!("drift: {} differs from the builder", path.display());
                drift += 1;
            }
            continue;
        }
        if let Err(e) = std::fs::create_dir_all(&dir).and_then(|()| std::fs::write(&path, &text)) {
            eprintln!("error: writing {}: {e}", path.display());
            return ExitCode::from(1);
        }
        println!(
            "{} {} ({:?}, {} batches: {})",
            if same { "unchanged" } else { "wrote" },
            path.display(),
            built.mode,
            built.batches,
            built.reason
        );
    }
    if drift > 0 {
        ExitCode::from(1)
    } else {
        ExitCode::SUCCESS
    }
}
