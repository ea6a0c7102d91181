//! Ctrl-C: the first stops starting invocations so the run can finish, journal and report; the second exits at once.

use std::sync::atomic::{AtomicBool, Ordering};

use propack_orchestrator::backend::Stop;

/// Set by the first Ctrl-C (a signal is process-wide, so the flag is too).
static STOP: AtomicBool = AtomicBool::new(false);

/// Takes over Ctrl-C for a run whose journal lives in `run_dir` and returns the stop the
/// pipeline passes to its jobs (`sfn`: its batches run in a Step Functions execution,
/// which the backend leaves running or stops). Every journal line is whole and flushed
/// when written, so exiting on the second Ctrl-C leaves a journal that `orchestrator resume` reads.
pub fn install(run_dir: &std::path::Path, sfn: bool) -> Stop {
    let hint = format!("orchestrator resume {}", run_dir.display());
    let first = if sfn {
        "\ninterrupted: no longer waiting for the Step Functions execution (Ctrl-C again to exit at once)"
    } else {
        "\ninterrupted: starting no new invocations and waiting for those in flight \
         (Ctrl-C again to exit at once)"
    };
    std::thread::spawn(move || {
        let Ok(rt) = tokio::runtime::Builder::new_current_thread()
            .enable_all()
            .build()
        else {
            return;
        };
        rt.block_on(async {
            if tokio::signal::ctrl_c().await.is_err() {
                return;
            }
            STOP.store(true, Ordering::SeqCst);
            eprintln!("{first}");
            if tokio::signal::ctrl_c().await.is_ok() {
                eprintln!("exiting now; every returned batch is in the journal: {hint}");
                std::process::exit(130);
            }
        });
    });
    Stop::new(&STOP)
}

/// The error a run ends with when an interrupt left tasks undone (`done`: every task
/// verified): what is left and how to finish it.
pub fn check(stop: Stop, done: bool, run_dir: &std::path::Path) -> anyhow::Result<()> {
    if stop.requested() && !done {
        anyhow::bail!(
            "interrupted before every task ran; run the rest with: orchestrator resume {}",
            run_dir.display()
        );
    }
    Ok(())
}
