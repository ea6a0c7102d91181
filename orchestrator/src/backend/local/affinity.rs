//! The CPUs a memory buys on the local platform: an instance process pinned (sched_setaffinity) to ⌈vCPUs⌉ of the host's CPUs.
//!
//! Lambda gives a function of M MB `cpus_at(M)` vCPUs (1 per 1,769 MB); the emulator's
//! instances are processes on this host, so an instance configured with M MB is restricted
//! to ⌈cpus_at(M)⌉ of the CPUs this process may use (all of them when it buys as many or
//! more), and its tasks inherit the mask. What this cannot emulate: a fraction of a CPU
//! (below 1,769 MB an instance still gets one whole CPU — only a cgroup CPU quota could
//! throttle it, and cgroups are not available to the emulator), and CPUs of its own (the
//! instances running at once share the host's CPUs; the model accounts for that with
//! [`crate::platform::PlatformProfile::host_cpus`]).

/// The CPUs this process may run on (its affinity mask), ascending; empty if unknown.
pub fn allowed_cpus() -> Vec<usize> {
    // SAFETY: cpu_set_t is plain old data; sched_getaffinity fills in exactly its size.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        if libc::sched_getaffinity(0, std::mem::size_of::<libc::cpu_set_t>(), &mut set) != 0 {
            return Vec::new();
        }
        (0..libc::CPU_SETSIZE as usize)
            .filter(|&c| libc::CPU_ISSET(c, &set))
            .collect()
    }
}

/// The `want` CPUs of `allowed` for the `turn`-th instance, or `None` when it may use all
/// of them: consecutive turns take the next CPUs round the list, so instances running at
/// once spread over the host rather than queue on its first CPU.
pub fn pick(allowed: &[usize], want: usize, turn: usize) -> Option<Vec<usize>> {
    let want = want.max(1);
    if allowed.is_empty() || want >= allowed.len() {
        return None;
    }
    let start = turn.wrapping_mul(want) % allowed.len();
    Some(
        (0..want)
            .map(|i| allowed[(start + i) % allowed.len()])
            .collect(),
    )
}

/// The mask of `cpus`, for `sched_setaffinity` in the child before it runs the instance.
pub fn cpu_set(cpus: &[usize]) -> libc::cpu_set_t {
    // SAFETY: an all-zero cpu_set_t is the empty set; CPU_SET only writes within it for
    // CPUs below CPU_SETSIZE, which sched_getaffinity's answers are.
    unsafe {
        let mut set: libc::cpu_set_t = std::mem::zeroed();
        for &c in cpus.iter().filter(|&&c| c < libc::CPU_SETSIZE as usize) {
            libc::CPU_SET(c, &mut set);
        }
        set
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn instances_take_their_cpus_in_turn() {
        let host = [0, 1, 2, 3];
        assert_eq!(pick(&host, 1, 0), Some(vec![0]));
        assert_eq!(pick(&host, 1, 1), Some(vec![1]));
        assert_eq!(pick(&host, 1, 5), Some(vec![1]));
        assert_eq!(pick(&host, 3, 1), Some(vec![3, 0, 1]));
        // As many or more than the host has: no restriction.
        assert_eq!(pick(&host, 4, 0), None);
        assert_eq!(pick(&host, 6, 2), None);
        // Below one vCPU still one whole CPU.
        assert_eq!(pick(&[2, 5], 0, 1), Some(vec![5]));
        assert_eq!(pick(&[], 1, 0), None);
    }

    #[test]
    fn the_mask_holds_exactly_the_picked_cpus() {
        let set = cpu_set(&[0, 3]);
        // SAFETY: reading a mask built above.
        unsafe {
            assert_eq!(libc::CPU_COUNT(&set), 2);
            assert!(libc::CPU_ISSET(3, &set) && !libc::CPU_ISSET(1, &set));
        }
        assert!(!allowed_cpus().is_empty());
    }
}
