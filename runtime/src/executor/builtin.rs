//! Built-in tasks: the runtime's own test workloads (`spin`, `noop`, `sleep`, `panic`), else `propack_workloads`.

use std::collections::BTreeMap;
use std::hint::black_box;
use std::path::{Path, PathBuf};
use std::sync::OnceLock;
use std::time::Duration;

use serde_json::{Value, json};

/// A built-in failed (a panic is caught by the caller, not reported here).
#[derive(Debug, thiserror::Error)]
pub enum BuiltinError {
    /// Bad params for a runtime test built-in.
    #[error("built-in {name}: {message}")]
    Params {
        /// Built-in name.
        name: &'static str,
        /// What is wrong.
        message: String,
    },
    /// The workload itself failed.
    #[error(transparent)]
    Workload(#[from] propack_workloads::WorkloadError),
}

/// Names handled by the runtime itself, before delegating to `propack_workloads`.
pub const RUNTIME_BUILTINS: &[&str] = &["spin", "noop", "sleep", "panic"];

/// Runs a built-in. `spin` ({"ms": N}) burns ≈N ms of CPU, calibrated by
/// iterations; `sleep` ({"ms": N}) sleeps; `noop` does nothing; `panic` panics
/// (for failure-isolation tests). Anything else is a `propack_workloads` workload.
pub fn run(
    name: &str,
    params: &Value,
    scratch: &Path,
    inputs: &BTreeMap<String, PathBuf>,
    outputs: &BTreeMap<String, PathBuf>,
) -> Result<Value, BuiltinError> {
    match name {
        "noop" => Ok(Value::Null),
        "spin" => {
            let ms = ms_param("spin", params)?;
            let iters = spin_iterations_per_ms().saturating_mul(ms);
            spin(iters);
            Ok(json!({"iterations": iters}))
        }
        "sleep" => {
            std::thread::sleep(Duration::from_millis(ms_param("sleep", params)?));
            Ok(Value::Null)
        }
        "panic" => {
            let msg = params
                .get("message")
                .and_then(Value::as_str)
                .unwrap_or("built-in `panic` task panicked on purpose");
            panic!("{msg}");
        }
        _ => Ok(propack_workloads::run_builtin(
            name, params, scratch, inputs, outputs,
        )?),
    }
}

fn ms_param(name: &'static str, params: &Value) -> Result<u64, BuiltinError> {
    params
        .get("ms")
        .and_then(Value::as_u64)
        .ok_or_else(|| BuiltinError::Params {
            name,
            message: format!("params must be {{\"ms\": <non-negative integer>}}, got {params}"),
        })
}

/// A dependency chain the optimiser cannot shorten: xorshift steps.
#[inline(never)]
pub fn spin(iterations: u64) -> u64 {
    let mut x = black_box(0x9E37_79B9_7F4A_7C15u64);
    for _ in 0..iterations {
        x ^= x << 13;
        x ^= x >> 7;
        x ^= x << 17;
    }
    black_box(x)
}

/// CPU time consumed by the calling thread.
pub fn thread_cpu_time() -> Duration {
    // SAFETY: clock_gettime writes one timespec we own.
    unsafe {
        let mut ts: libc::timespec = std::mem::zeroed();
        if libc::clock_gettime(libc::CLOCK_THREAD_CPUTIME_ID, &mut ts) != 0 {
            return Duration::ZERO;
        }
        Duration::new(ts.tv_sec as u64, ts.tv_nsec as u32)
    }
}

/// Spin iterations per millisecond of CPU time, measured once per process.
///
/// Measured against the thread's CPU clock, not the wall clock, so a busy
/// shared machine does not shrink every later `spin` task; the median of a few
/// trials is the typical one.
pub fn spin_iterations_per_ms() -> u64 {
    static CAL: OnceLock<u64> = OnceLock::new();
    *CAL.get_or_init(|| {
        if let Some(v) = std::env::var("PROPACK_SPIN_ITERS_PER_MS")
            .ok()
            .and_then(|s| s.parse::<u64>().ok())
            .filter(|v| *v > 0)
        {
            return v;
        }
        let trial = 2_000_000u64;
        let mut trials: Vec<u64> = (0..5)
            .map(|_| {
                let t0 = thread_cpu_time();
                spin(trial);
                (thread_cpu_time() - t0).as_nanos().max(1) as u64
            })
            .collect();
        trials.sort_unstable();
        (trial.saturating_mul(1_000_000) / trials[trials.len() / 2]).max(1)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn call(name: &str, params: Value) -> Result<Value, BuiltinError> {
        run(
            name,
            &params,
            Path::new("/nonexistent"),
            &BTreeMap::new(),
            &BTreeMap::new(),
        )
    }

    #[test]
    fn spin_uses_calibrated_iterations() {
        let per_ms = spin_iterations_per_ms();
        let v = call("spin", json!({"ms": 3})).unwrap();
        assert_eq!(v["iterations"], per_ms * 3);
        assert!(
            call("spin", json!({}))
                .unwrap_err()
                .to_string()
                .contains("\"ms\"")
        );
    }

    #[test]
    fn noop_and_unknown() {
        assert_eq!(call("noop", Value::Null).unwrap(), Value::Null);
        let err = call("no-such-workload", Value::Null).unwrap_err();
        assert!(err.to_string().contains("no-such-workload"), "{err}");
    }
}
