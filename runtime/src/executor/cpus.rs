//! How many vCPUs this process may actually use (affinity mask and cgroup CPU quota).

use std::fs;
use std::path::{Path, PathBuf};

/// vCPUs this process may use: the smaller of its CPU affinity mask and its
/// cgroup CPU quota (rounded up), at least 1.
pub fn available_vcpus() -> usize {
    let affinity = affinity_cpus();
    let quota = cgroup_quota_cpus();
    let n = match (affinity, quota) {
        (Some(a), Some(q)) => a.min(q),
        (Some(a), None) => a,
        (None, Some(q)) => q,
        (None, None) => std::thread::available_parallelism().map_or(1, |n| n.get()),
    };
    n.max(1)
}

/// CPUs in this process's affinity mask (sched_getaffinity).
pub fn affinity_cpus() -> Option<usize> {
    // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills it in and we
    // pass its exact size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return None;
        }
        let n = libc::CPU_COUNT(&set);
        (n > 0).then_some(n as usize)
    }
}

/// Parses cgroup v2 `cpu.max` ("max 100000" or "QUOTA PERIOD") into whole CPUs, rounded up.
pub fn parse_cpu_max(text: &str) -> Option<usize> {
    let mut it = text.split_whitespace();
    let quota = it.next()?;
    let period: u64 = it.next().map_or(Some(100_000), |p| p.parse().ok())?;
    if quota == "max" || period == 0 {
        return None;
    }
    let quota: u64 = quota.parse().ok()?;
    Some(quota.div_ceil(period).max(1) as usize)
}

/// Parses cgroup v1 `cpu.cfs_quota_us` and `cpu.cfs_period_us` into whole CPUs, rounded up.
pub fn parse_cfs(quota: &str, period: &str) -> Option<usize> {
    let quota: i64 = quota.trim().parse().ok()?;
    let period: i64 = period.trim().parse().ok()?;
    if quota <= 0 || period <= 0 {
        return None;
    }
    Some((quota as u64).div_ceil(period as u64).max(1) as usize)
}

/// The tightest CPU quota on this process's cgroup path (v2), or the v1 CFS quota.
fn cgroup_quota_cpus() -> Option<usize> {
    let root = Path::new("/sys/fs/cgroup");
    let own = fs::read_to_string("/proc/self/cgroup").ok()?;
    let mut best: Option<usize> = None;
    let mut take = |n: Option<usize>| {
        if let Some(n) = n {
            best = Some(best.map_or(n, |b| b.min(n)));
        }
    };
    for line in own.lines() {
        // "0::/path" is cgroup v2; "N:cpu,cpuacct:/path" is v1.
        let mut parts = line.splitn(3, ':');
        let (_, controllers, path) = (
            parts.next(),
            parts.next().unwrap_or(""),
            parts.next().unwrap_or(""),
        );
        let rel = path.trim_start_matches('/');
        if controllers.is_empty() {
            // A quota on any ancestor limits us too, so walk up to the root.
            let mut dir: PathBuf = root.join(rel);
            loop {
                take(
                    fs::read_to_string(dir.join("cpu.max"))
                        .ok()
                        .as_deref()
                        .and_then(parse_cpu_max),
                );
                if dir == root || !dir.pop() || !dir.starts_with(root) {
                    break;
                }
            }
        } else if controllers.split(',').any(|c| c == "cpu") {
            for base in [
                root.join("cpu").join(rel),
                root.join("cpu,cpuacct").join(rel),
                root.join("cpu"),
            ] {
                let q = fs::read_to_string(base.join("cpu.cfs_quota_us"));
                let p = fs::read_to_string(base.join("cpu.cfs_period_us"));
                if let (Ok(q), Ok(p)) = (q, p) {
                    take(parse_cfs(&q, &p));
                    break;
                }
            }
        }
    }
    best
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cpu_max_parsing() {
        assert_eq!(parse_cpu_max("max 100000\n"), None);
        assert_eq!(parse_cpu_max("200000 100000\n"), Some(2));
        assert_eq!(parse_cpu_max("150000 100000"), Some(2));
        assert_eq!(parse_cpu_max("50000 100000"), Some(1));
        assert_eq!(parse_cpu_max("garbage"), None);
        assert_eq!(parse_cfs("-1", "100000"), None);
        assert_eq!(parse_cfs("300000\n", "100000\n"), Some(3));
    }

    #[test]
    fn vcpus_bounded_by_affinity() {
        let n = available_vcpus();
        assert!(n >= 1);
        if let Some(a) = affinity_cpus() {
            assert!(n <= a, "{n} vCPUs reported but affinity allows only {a}");
        }
    }
}
