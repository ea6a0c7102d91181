//! `ExecutorConfig::from_env`: every variable it reads, its default, trimming and the refusals.
//!
//! One test in its own binary: it sets process environment variables, which no other
//! test may read concurrently.

use std::path::PathBuf;
use std::time::Duration;

use propack_runtime::ExecutorConfig;
use propack_runtime::executor::DEFAULT_SAFETY_MARGIN;

const VARS: [&str; 11] = [
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
        ("PROPACK_PARALLELISM", "two", "expected a non-negative integer"),
        ("PROPACK_SAFETY_MARGIN_MS", "-5", "expected a non-negative integer"),
        ("PROPACK_MAX_RESULT_BYTES", "0", "must be positive"),
    ] {
        set(&[(var, value)]);
        let e = ExecutorConfig::from_env().unwrap_err();
        assert_eq!((e.var, e.value.as_str(), e.message), (var, value, message));
    }
    set(&[]);
}
