//! `ExecutorConfig::from_env` (every variable it reads, its default, trimming and the
//! refusals) and the executor's small public helpers: instance ids and log-name segments.
//!
//! Its own binary: `from_env_reads_every_variable` sets process environment variables,
//! which no other test here reads.

use std::path::PathBuf;
use std::time::Duration;

use propack_runtime::ExecutorConfig;
use propack_runtime::executor::{
    DEFAULT_SAFETY_MARGIN, instance_id, memory_mb_from_env, uri_segment,
};

const VARS: [&str; 12] = [
    "AWS_LAMBDA_FUNCTION_MEMORY_SIZE",
    "PROPACK_PARALLELISM",
    "PROPACK_SAFETY_MARGIN_MS",
    "PROPACK_MAX_TASKS",
    "PROPACK_PREFETCH_DEPTH",
    "PROPACK_SCRATCH_ROOT",
    "PROPACK_KEEP_SCRATCH",
    "LAMBDA_TASK_ROOT",
    "PROPACK_PYTHON",
    "PROPACK_NODE",
    "PROPACK_HANDLER_INIT_TIMEOUT_MS",
    "PROPACK_MAX_RESULT_BYTES",
];

fn set(pairs: &[(&str, &str)]) {
    for v in VARS {
        // SAFETY: this binary holds a single test, so no other thread reads the environment.
        unsafe { std::env::remove_var(v) };
    }
    for (k, v) in pairs {
        // SAFETY: as above.
        unsafe { std::env::set_var(k, v) };
    }
}

#[test]
fn from_env_reads_every_variable() {
    set(&[]);
    let d = ExecutorConfig::from_env().unwrap();
    let def = ExecutorConfig::default();
    assert_eq!(d.parallelism, None);
    assert_eq!(d.safety_margin, DEFAULT_SAFETY_MARGIN);
    assert_eq!(d.max_tasks, def.max_tasks);
    assert_eq!(d.prefetch_depth, 4);
    assert!(!d.keep_scratch);
    assert_eq!(d.task_root, PathBuf::from("/var/task"));
    assert_eq!(d.max_result_bytes, None);

    set(&[
        ("PROPACK_PARALLELISM", " 7 "),
        ("PROPACK_SAFETY_MARGIN_MS", "1500"),
        ("PROPACK_MAX_TASKS", "12"),
        ("PROPACK_PREFETCH_DEPTH", "0"),
        ("PROPACK_SCRATCH_ROOT", "/scratch"),
        ("PROPACK_KEEP_SCRATCH", "1"),
        ("LAMBDA_TASK_ROOT", "/code"),
        ("PROPACK_PYTHON", "/opt/py"),
        ("PROPACK_NODE", "/opt/node"),
        ("PROPACK_HANDLER_INIT_TIMEOUT_MS", "2500"),
        ("PROPACK_MAX_RESULT_BYTES", "65536"),
    ]);
    let c = ExecutorConfig::from_env().unwrap();
    assert_eq!(c.parallelism, Some(7));
    assert_eq!(c.safety_margin, Duration::from_millis(1_500));
    assert_eq!(c.max_tasks, 12);
    assert_eq!(c.parse_options().max_tasks, 12);
    assert_eq!(c.prefetch_depth, 0);
    assert_eq!(c.scratch_root, PathBuf::from("/scratch"));
    assert!(c.keep_scratch);
    assert_eq!(c.task_root, PathBuf::from("/code"));
    assert_eq!(c.handlers.python, Some(PathBuf::from("/opt/py")));
    assert_eq!(c.handlers.node, Some(PathBuf::from("/opt/node")));
    assert_eq!(c.handlers.init_timeout, Duration::from_millis(2_500));
    assert_eq!(c.max_result_bytes, Some(65_536));

    // Blank means unset; 0 tasks and 0 ms are raised to 1; "true" keeps scratch, "yes" not.
    set(&[
        ("PROPACK_PARALLELISM", "  "),
        ("PROPACK_MAX_TASKS", "0"),
        ("PROPACK_HANDLER_INIT_TIMEOUT_MS", "0"),
        ("PROPACK_KEEP_SCRATCH", "true"),
        ("PROPACK_SCRATCH_ROOT", ""),
    ]);
    let c = ExecutorConfig::from_env().unwrap();
    assert_eq!(c.parallelism, None);
    assert_eq!(c.max_tasks, 1);
    assert_eq!(c.handlers.init_timeout, Duration::from_millis(1));
    assert!(c.keep_scratch);
    assert_eq!(c.scratch_root, def.scratch_root);
    set(&[("PROPACK_KEEP_SCRATCH", "yes")]);
    assert!(!ExecutorConfig::from_env().unwrap().keep_scratch);

    // Refusals name the variable and the value.
    for (var, value, message) in [
        ("PROPACK_PARALLELISM", "0", "must be at least 1"),
        (
            "PROPACK_PARALLELISM",
            "two",
            "expected a non-negative integer",
        ),
        (
            "PROPACK_SAFETY_MARGIN_MS",
            "-5",
            "expected a non-negative integer",
        ),
        ("PROPACK_MAX_RESULT_BYTES", "0", "must be positive"),
    ] {
        set(&[(var, value)]);
        let e = ExecutorConfig::from_env().unwrap_err();
        assert_eq!((e.var, e.value.as_str(), e.message), (var, value, message));
    }

    // The function's memory, as Lambda sets it.
    set(&[]);
    assert_eq!(memory_mb_from_env(), None);
    set(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", " 2048 ")]);
    assert_eq!(memory_mb_from_env(), Some(2048));
    set(&[("AWS_LAMBDA_FUNCTION_MEMORY_SIZE", "lots")]);
    assert_eq!(memory_mb_from_env(), None);
    set(&[]);
}

/// `i-<epoch ms, hex>-<pid>-<8 hex digits>`, the same for the whole process.
#[test]
fn instance_id_names_this_process() {
    let id = instance_id();
    assert_eq!(instance_id(), id);
    let parts: Vec<&str> = id.split('-').collect();
    assert_eq!(parts.len(), 4, "{id}");
    assert_eq!(parts[0], "i");
    let ms = u64::from_str_radix(parts[1], 16).unwrap();
    assert!(
        ms > 1_700_000_000_000 && ms <= propack_runtime::deadline::epoch_ms(),
        "{id}"
    );
    assert_eq!(parts[2], std::process::id().to_string());
    assert_eq!(parts[3].len(), 8);
    assert!(u32::from_str_radix(parts[3], 16).is_ok(), "{id}");
}

/// Letters, digits, `_`, `-` and a non-leading `.` stay; everything else is percent-encoded.
#[test]
fn uri_segments_keep_only_safe_bytes() {
    assert_eq!(uri_segment("Az09_-.x"), "Az09_-.x");
    assert_eq!(uri_segment(".."), "%2E.");
    assert_eq!(uri_segment(".hidden"), "%2Ehidden");
    assert_eq!(uri_segment("a/b c"), "a%2Fb%20c");
    assert_eq!(uri_segment("é"), "%C3%A9");
    assert_eq!(uri_segment(""), "");
}
