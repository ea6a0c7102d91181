//! Executable tasks: direct exec in an own process group, bounded output capture, group kill on timeout.

use std::io::{self, Read, Write};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd, RawFd};
use std::os::unix::process::CommandExt;
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use super::program::{self, SearchPath};
use crate::contract::{ExecSpec, OUTPUT_TAIL_BYTES, TaskStatus};

/// Keeps only the last [`OUTPUT_TAIL_BYTES`] bytes written to it, so a task
/// printing gigabytes costs a constant amount of memory; with a sink, everything
/// also goes to that file (the full log, uploaded with `logs_prefix`).
#[derive(Debug, Default)]
pub struct Tail {
    buf: Vec<u8>,
    sink: Option<std::fs::File>,
    sink_error: Option<String>,
}

impl Tail {
    /// A tail that also writes everything to `sink` (None: a plain tail).
    pub fn with_sink(sink: Option<std::fs::File>) -> Self {
        Self {
            sink,
            ..Self::default()
        }
    }

    /// Why the sink stopped receiving output, if it did (the task goes on regardless).
    pub fn sink_error(&self) -> Option<&str> {
        self.sink_error.as_deref()
    }

    /// Appends `data`, discarding what falls out of the window.
    pub fn push(&mut self, data: &[u8]) {
        if let Some(sink) = &mut self.sink
            && let Err(e) = sink.write_all(data)
        {
            self.sink = None;
            self.sink_error = Some(format!("writing the full log: {e}"));
        }
        if data.len() >= OUTPUT_TAIL_BYTES {
            self.buf.clear();
            self.buf
                .extend_from_slice(&data[data.len() - OUTPUT_TAIL_BYTES..]);
            return;
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() > OUTPUT_TAIL_BYTES {
            let excess = self.buf.len() - OUTPUT_TAIL_BYTES;
            self.buf.drain(..excess);
        }
    }

    /// The tail as lossy UTF-8, at most [`OUTPUT_TAIL_BYTES`] bytes long.
    pub fn into_string(self) -> String {
        let s = String::from_utf8_lossy(&self.buf).into_owned();
        if s.len() <= OUTPUT_TAIL_BYTES {
            return s;
        }
        // Replacement characters can lengthen a window cut mid-character.
        let mut start = s.len() - OUTPUT_TAIL_BYTES;
        while !s.is_char_boundary(start) {
            start += 1;
        }
        s[start..].to_owned()
    }
}

/// Why a process would be killed early.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum KillReason {
    /// The task's own `timeout_ms`.
    TaskTimeout(u64),
    /// The invocation deadline minus the safety margin.
    Deadline,
}

/// When to kill a task started at `now`: its own timeout, unless the invocation's cutoff comes first.
pub(crate) fn kill_time(
    timeout_ms: Option<u64>,
    cutoff: Option<Instant>,
    now: Instant,
) -> Option<(Instant, KillReason)> {
    match (timeout_ms, cutoff) {
        (Some(ms), cutoff) => {
            let t = now + Duration::from_millis(ms);
            match cutoff {
                Some(c) if c < t => Some((c, KillReason::Deadline)),
                _ => Some((t, KillReason::TaskTimeout(ms))),
            }
        }
        (None, Some(c)) => Some((c, KillReason::Deadline)),
        (None, None) => None,
    }
}

/// How an executable task ended.
#[derive(Debug)]
pub struct ProcOutcome {
    /// Outcome.
    pub status: TaskStatus,
    /// Exit code, if it exited.
    pub exit_code: Option<i32>,
    /// Terminating signal, if any.
    pub signal: Option<i32>,
    /// User + system CPU of the process tree that was waited for.
    pub cpu_ms: Option<u64>,
    /// Peak RSS.
    pub max_rss_kb: Option<u64>,
    /// Last bytes of stdout.
    pub stdout_tail: String,
    /// Last bytes of stderr.
    pub stderr_tail: String,
    /// Why it did not succeed.
    pub error: Option<String>,
    /// Why a full log (stdout, stderr) could not be written.
    pub logs_error: Option<String>,
}

pub(crate) fn set_nonblocking(fd: RawFd) -> io::Result<()> {
    // SAFETY: fcntl on a descriptor we own; no memory is passed.
    unsafe {
        let flags = libc::fcntl(fd, libc::F_GETFL);
        if flags < 0 || libc::fcntl(fd, libc::F_SETFL, flags | libc::O_NONBLOCK) < 0 {
            return Err(io::Error::last_os_error());
        }
    }
    Ok(())
}

pub(crate) fn pidfd_open(pid: libc::pid_t) -> Option<OwnedFd> {
    // SAFETY: pidfd_open takes a pid and flags and returns a new descriptor or -1.
    let fd = unsafe { libc::syscall(libc::SYS_pidfd_open, pid, 0) };
    // SAFETY: a non-negative return is a fresh descriptor that nobody else owns.
    (fd >= 0).then(|| unsafe { OwnedFd::from_raw_fd(fd as RawFd) })
}

/// True once `pid` has exited; leaves it a zombie so its pid (and process
/// group id) cannot be reused before we kill the group and reap it.
pub(crate) fn has_exited(pid: libc::pid_t) -> bool {
    // SAFETY: waitid fills a siginfo_t we own; WNOWAIT leaves the child unreaped.
    unsafe {
        let mut info: libc::siginfo_t = std::mem::zeroed();
        let r = libc::waitid(
            libc::P_PID,
            pid as libc::id_t,
            &mut info,
            libc::WEXITED | libc::WNOHANG | libc::WNOWAIT,
        );
        r == 0 && info.si_pid() != 0
    }
}

pub(crate) fn killpg(pgid: libc::pid_t) {
    // SAFETY: plain syscall; ESRCH (group already gone) is fine.
    unsafe {
        libc::killpg(pgid, libc::SIGKILL);
    }
}

/// Reaps `pid`, returning its wait status and resource usage.
pub(crate) fn reap(pid: libc::pid_t) -> (i32, libc::rusage) {
    // SAFETY: wait4 writes into a status int and a rusage struct that we own.
    unsafe {
        let mut status = 0;
        let mut ru: libc::rusage = std::mem::zeroed();
        loop {
            let r = libc::wait4(pid, &mut status, 0, &mut ru);
            if r == pid || io::Error::last_os_error().raw_os_error() != Some(libc::EINTR) {
                return (status, ru);
            }
        }
    }
}

/// Reads whatever is available; returns false at end of file.
fn drain(pipe: &mut std::fs::File, tail: &mut Tail, buf: &mut [u8]) -> bool {
    loop {
        match pipe.read(buf) {
            Ok(0) => return false,
            Ok(n) => tail.push(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => return true,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
            Err(_) => return false,
        }
    }
}

pub(crate) fn signal_name(sig: i32) -> &'static str {
    match sig {
        libc::SIGKILL => "SIGKILL",
        libc::SIGTERM => "SIGTERM",
        libc::SIGSEGV => "SIGSEGV",
        libc::SIGABRT => "SIGABRT",
        libc::SIGINT => "SIGINT",
        libc::SIGBUS => "SIGBUS",
        libc::SIGPIPE => "SIGPIPE",
        _ => "signal",
    }
}

/// Runs `spec` in `scratch` until it exits or `kill_at` passes.
///
/// A relative program is looked up in `task_root`, `/opt/bin` and `PATH`
/// ([`program::resolve`]); the process gets `LAMBDA_TASK_ROOT` (absolute),
/// `PROPACK_TASK_ID` and `PROPACK_SCRATCH` on top of the task's own `env`, and
/// `scratch` as its working directory.
pub fn run_process(
    spec: &ExecSpec,
    task_id: &str,
    scratch: &Path,
    task_root: &Path,
    kill_at: Option<(Instant, KillReason)>,
) -> ProcOutcome {
    run_process_logged(spec, task_id, scratch, task_root, kill_at, [None, None])
}

/// [`run_process`], also writing the whole stdout and stderr to `logs` (files the caller opened).
pub fn run_process_logged(
    spec: &ExecSpec,
    task_id: &str,
    scratch: &Path,
    task_root: &Path,
    kill_at: Option<(Instant, KillReason)>,
    logs: [Option<std::fs::File>; 2],
) -> ProcOutcome {
    let mut out = ProcOutcome {
        status: TaskStatus::Failed,
        exit_code: None,
        signal: None,
        cpu_ms: None,
        max_rss_kb: None,
        stdout_tail: String::new(),
        stderr_tail: String::new(),
        error: None,
        logs_error: None,
    };
    let search = SearchPath::new(task_root, spec.env.get("PATH").map(String::as_str));
    let program = match program::resolve(&spec.program, &search, scratch) {
        Ok(p) => p,
        Err(e) => {
            out.error = Some(e.to_string());
            return out;
        }
    };
    let mut cmd = Command::new(&program);
    cmd.args(&spec.args)
        .envs(&spec.env)
        .env(
            "LAMBDA_TASK_ROOT",
            std::path::absolute(task_root).unwrap_or_else(|_| task_root.to_owned()),
        )
        .env("PROPACK_TASK_ID", task_id)
        .env("PROPACK_SCRATCH", scratch)
        .current_dir(scratch)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        // Own process group, so a timeout kills the task's children too.
        .process_group(0);
    let parent = std::process::id() as libc::pid_t;
    // SAFETY: the closure runs between fork and exec and only makes async-signal-safe calls
    // (prctl, getppid, _exit) on plain integers it captured.
    unsafe {
        cmd.pre_exec(move || {
            // A task must not outlive its runtime. On Lambda an instance that dies (killed at
            // the function timeout, out of memory, crashed) takes its whole sandbox with it;
            // without this a local instance's task would run on, orphaned, beside the retry of
            // its batch. (The spawning thread waits for the task, so it outlives it.)
            libc::prctl(libc::PR_SET_PDEATHSIG, libc::SIGKILL as libc::c_ulong);
            if libc::getppid() != parent {
                libc::_exit(0);
            }
            Ok(())
        });
    }
    let mut child = match cmd.spawn() {
        Ok(c) => c,
        Err(e) => {
            out.error = Some(format!(
                "cannot execute {:?} ({}): {e}",
                spec.program,
                program.display()
            ));
            return out;
        }
    };
    let pid = child.id() as libc::pid_t;
    let mut pipes: [Option<std::fs::File>; 2] = [
        child
            .stdout
            .take()
            .map(|p| std::fs::File::from(OwnedFd::from(p))),
        child
            .stderr
            .take()
            .map(|p| std::fs::File::from(OwnedFd::from(p))),
    ];
    for p in pipes.iter().flatten() {
        let _ = set_nonblocking(p.as_raw_fd());
    }
    let pidfd = pidfd_open(pid);
    let mut tails = logs.map(Tail::with_sink);
    let mut buf = vec![0u8; 64 * 1024];
    let mut killed: Option<KillReason> = None;

    loop {
        let now = Instant::now();
        if let Some((at, reason)) = kill_at
            && now >= at
        {
            killpg(pid);
            killed = Some(reason);
            break;
        }
        let mut timeout_ms: i32 = match kill_at {
            Some((at, _)) => (at - now).as_millis().min(i32::MAX as u128 - 1) as i32 + 1,
            None => -1,
        };
        if pidfd.is_none() {
            // Without a pidfd, exit is noticed by polling.
            timeout_ms = if timeout_ms < 0 {
                10
            } else {
                timeout_ms.min(10)
            };
        }
        let mut fds: Vec<libc::pollfd> = Vec::with_capacity(3);
        for p in pipes.iter().flatten() {
            fds.push(libc::pollfd {
                fd: p.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        if let Some(fd) = &pidfd {
            fds.push(libc::pollfd {
                fd: fd.as_raw_fd(),
                events: libc::POLLIN,
                revents: 0,
            });
        }
        // SAFETY: fds is a valid array of pollfd of the given length.
        unsafe {
            libc::poll(fds.as_mut_ptr(), fds.len() as libc::nfds_t, timeout_ms);
        }
        for (i, pipe) in pipes.iter_mut().enumerate() {
            if let Some(p) = pipe
                && !drain(p, &mut tails[i], &mut buf)
            {
                *pipe = None;
            }
        }
        if has_exited(pid) {
            // Whatever the leader left behind (background children holding the
            // pipes) goes with it: the task is over.
            killpg(pid);
            break;
        }
    }

    let (status, ru) = reap(pid);
    // Read what was buffered in the pipes; writers are dead, so this terminates.
    for (i, pipe) in pipes.iter_mut().enumerate() {
        if let Some(p) = pipe {
            drain(p, &mut tails[i], &mut buf);
        }
    }
    out.logs_error = tails.iter().find_map(|t| t.sink_error().map(str::to_owned));
    let [so, se] = tails;
    out.stdout_tail = so.into_string();
    out.stderr_tail = se.into_string();
    let cpu = Duration::new(ru.ru_utime.tv_sec as u64, ru.ru_utime.tv_usec as u32 * 1000)
        + Duration::new(ru.ru_stime.tv_sec as u64, ru.ru_stime.tv_usec as u32 * 1000);
    out.cpu_ms = Some(cpu.as_millis() as u64);
    out.max_rss_kb = Some(ru.ru_maxrss.max(0) as u64);

    if libc::WIFEXITED(status) {
        let code = libc::WEXITSTATUS(status);
        out.exit_code = Some(code);
        if code == 0 && killed.is_none() {
            out.status = TaskStatus::Succeeded;
        } else if code != 0 {
            out.error = Some(format!("exited with status {code}"));
        }
    } else if libc::WIFSIGNALED(status) {
        let sig = libc::WTERMSIG(status);
        out.signal = Some(sig);
        out.error = Some(format!("killed by signal {sig} ({})", signal_name(sig)));
    }
    match killed {
        Some(KillReason::TaskTimeout(ms)) => {
            out.status = TaskStatus::TimedOut;
            out.error = Some(format!(
                "exceeded its timeout of {ms} ms; process group killed"
            ));
        }
        Some(KillReason::Deadline) => {
            out.status = TaskStatus::TimedOut;
            out.error = Some("still running at the invocation deadline (minus the safety margin); process group killed".into());
        }
        None => {}
    }
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tail_keeps_last_bytes() {
        let mut t = Tail::default();
        t.push(b"hello ");
        for _ in 0..2000 {
            t.push(b"0123456789");
        }
        t.push(b"END");
        let s = t.into_string();
        assert_eq!(s.len(), OUTPUT_TAIL_BYTES);
        assert!(s.ends_with("789END"));
        let mut t = Tail::default();
        t.push(&vec![b'x'; 10_000]);
        assert_eq!(t.into_string().len(), OUTPUT_TAIL_BYTES);
    }

    #[test]
    fn tail_cut_mid_character_stays_bounded() {
        let mut t = Tail::default();
        t.push("é".repeat(5000).as_bytes());
        t.push(b"\xff");
        let s = t.into_string();
        assert!(s.len() <= OUTPUT_TAIL_BYTES);
        assert!(s.ends_with('\u{FFFD}'));
    }

    fn sh(script: &str) -> ExecSpec {
        ExecSpec {
            program: "/bin/sh".into(),
            args: vec!["-c".into(), script.into()],
            env: Default::default(),
        }
    }

    #[test]
    fn background_child_does_not_hang_the_task() {
        let dir = tempfile::tempdir().unwrap();
        // The background sleep inherits stdout; the task must still end when sh exits.
        let out = run_process(
            &sh("sleep 30 & echo started"),
            "t",
            dir.path(),
            Path::new("/var/task"),
            None,
        );
        assert_eq!(out.status, TaskStatus::Succeeded, "{out:?}");
        assert_eq!(out.stdout_tail, "started\n");
    }

    #[test]
    fn missing_program_is_a_failed_result() {
        let dir = tempfile::tempdir().unwrap();
        let spec = ExecSpec {
            program: "/nonexistent/prog".into(),
            args: vec![],
            env: Default::default(),
        };
        let out = run_process(&spec, "t", dir.path(), Path::new("/var/task"), None);
        assert_eq!(out.status, TaskStatus::Failed);
        assert!(out.error.unwrap().contains("/nonexistent/prog"));
    }

    #[test]
    fn a_relative_program_runs_from_the_task_root_with_the_lambda_environment() {
        let root = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let bin = root.path().join("bin");
        std::fs::create_dir(&bin).unwrap();
        let tool = bin.join("tool");
        std::fs::write(
            &tool,
            "#!/bin/sh\necho \"$0|$LAMBDA_TASK_ROOT|$PROPACK_TASK_ID|$PROPACK_SCRATCH|$(pwd -P)|$1\"\n",
        )
        .unwrap();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&tool, std::fs::Permissions::from_mode(0o755)).unwrap();
        let spec = ExecSpec {
            program: "bin/tool".into(),
            args: vec!["arg".into()],
            env: Default::default(),
        };
        let out = run_process(&spec, "task-7", scratch.path(), root.path(), None);
        assert_eq!(out.status, TaskStatus::Succeeded, "{out:?}");
        let scratch_real = scratch.path().canonicalize().unwrap();
        assert_eq!(
            out.stdout_tail,
            format!(
                "{}|{}|task-7|{}|{}|arg\n",
                tool.display(),
                root.path().display(),
                scratch.path().display(),
                scratch_real.display()
            )
        );
    }

    #[test]
    fn a_program_found_nowhere_is_a_failed_result_naming_the_places() {
        let root = tempfile::tempdir().unwrap();
        let scratch = tempfile::tempdir().unwrap();
        let spec = ExecSpec {
            program: "no-such-tool-propack".into(),
            args: vec![],
            env: [("PATH".to_owned(), "/nonexistent-path-dir".to_owned())].into(),
        };
        let out = run_process(&spec, "t", scratch.path(), root.path(), None);
        assert_eq!(out.status, TaskStatus::Failed);
        assert_eq!(out.exit_code, None);
        assert_eq!(
            out.error.unwrap(),
            format!(
                "exec.program \"no-such-tool-propack\" not found: looked in {}, /opt/bin, /nonexistent-path-dir",
                root.path().display()
            )
        );
    }
}
