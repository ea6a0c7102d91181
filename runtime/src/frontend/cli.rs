//! `run --batch FILE|-`: one batch from a file or standard input, its result on standard output.

use std::io::{Read, Write};
use std::process::ExitCode;

use super::{Runtime, RuntimeError, init_tracing, program_name};
use crate::contract::TaskStatus;
use crate::deadline::DeadlineResolver;

pub(super) fn main(
    runtime: Runtime,
    batch: &str,
    timeout_ms: Option<u64>,
    compact: bool,
) -> Result<ExitCode, RuntimeError> {
    init_tracing("warn");
    let payload = if batch == "-" {
        let mut buf = Vec::new();
        std::io::stdin()
            .read_to_end(&mut buf)
            .map_err(RuntimeError::io("reading the batch from standard input"))?;
        buf
    } else {
        std::fs::read(batch).map_err(RuntimeError::io(format!("reading batch file {batch}")))?
    };
    let instance = runtime
        .instance()?
        .with_resolver(DeadlineResolver::from_env().missing_header_expected());
    instance.mark_ready(runtime.started);
    let header = timeout_ms.map(|ms| (crate::deadline::epoch_ms() + ms).to_string());
    let name = program_name();
    let out = std::io::stdout();
    let mut out = out.lock();
    let write_err = RuntimeError::io("writing the result");
    match instance.handle_bytes(&payload, header.as_deref(), None) {
        Ok(result) => {
            if compact {
                serde_json::to_writer(&mut out, &result)?;
            } else {
                serde_json::to_writer_pretty(&mut out, &result)?;
            }
            writeln!(out).map_err(write_err)?;
            let ok = result.count(TaskStatus::Succeeded);
            if ok == result.tasks.len() {
                Ok(ExitCode::SUCCESS)
            } else {
                eprintln!(
                    "{name}: {} of {} tasks did not succeed",
                    result.tasks.len() - ok,
                    result.tasks.len()
                );
                Ok(ExitCode::FAILURE)
            }
        }
        Err(payload) => {
            serde_json::to_writer(&mut out, &payload)?;
            writeln!(out).map_err(write_err)?;
            eprintln!("{name}: {}: {}", payload.error_type, payload.error_message);
            Ok(ExitCode::FAILURE)
        }
    }
}
