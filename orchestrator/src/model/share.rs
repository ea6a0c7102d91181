//! Instances sharing one host's CPUs (the local platform): processor sharing of their CPU demand.
//!
//! On the local platform every instance is a process on this machine, so C instances
//! do not each get their own vCPUs: they share the host's H CPUs. The model and the
//! simulator both stretch an instance's duration with [`processor_sharing`]: an
//! instance that alone would run `alone_s` seconds keeping `demand` CPUs busy (the
//! documented assumption: CPU-bound work, so `min(k, its vCPUs)`) progresses at rate
//! `min(1, H / Σ demand)` while the instances running with it demand `Σ demand` CPUs.
//! Every running instance progresses at the same rate, so a virtual clock advancing at
//! that rate orders the completions and the whole schedule takes O(n log n).

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// One instance for [`processor_sharing`].
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct Shared {
    /// When it starts, seconds.
    pub start_s: f64,
    /// How long it runs alone on the host, seconds.
    pub alone_s: f64,
    /// CPUs it keeps busy when alone (> 0).
    pub demand: f64,
}

/// When each instance ends if all of them share `cpus` CPUs (same order as `jobs`).
pub fn processor_sharing(jobs: &[Shared], cpus: f64) -> Vec<f64> {
    let n = jobs.len();
    let mut ends = vec![0.0; n];
    if n == 0 {
        return ends;
    }
    let mut order: Vec<usize> = (0..n).collect();
    order.sort_by(|&a, &b| jobs[a].start_s.total_cmp(&jobs[b].start_s));
    // (virtual finish, index) of the running instances.
    let mut running: BinaryHeap<Reverse<(Ord64, usize)>> = BinaryHeap::new();
    let mut demand = 0.0_f64;
    let (mut now, mut virt) = (jobs[order[0]].start_s, 0.0_f64);
    let mut next = 0usize;
    let rate = |d: f64| if d > cpus { cpus / d } else { 1.0 };
    while next < n || !running.is_empty() {
        let r = rate(demand);
        let finish_at = running
            .peek()
            .map(|Reverse((v, _))| now + (v.0 - virt).max(0.0) / r);
        let arrive_at = (next < n).then(|| jobs[order[next]].start_s);
        let finish_first = match (finish_at, arrive_at) {
            (Some(f), Some(a)) => f <= a,
            (Some(_), None) => true,
            (None, _) => false,
        };
        match (finish_at, arrive_at) {
            (Some(f), _) if finish_first => {
                virt += (f - now) * r;
                now = f;
                let Reverse((_, i)) = running.pop().expect("peeked");
                ends[i] = now;
                demand = (demand - jobs[i].demand.max(1e-9)).max(0.0);
                if running.is_empty() {
                    demand = 0.0;
                }
            }
            (_, Some(a)) => {
                if !running.is_empty() {
                    virt += (a - now).max(0.0) * r;
                }
                now = now.max(a);
                let i = order[next];
                next += 1;
                running.push(Reverse((Ord64(virt + jobs[i].alone_s.max(0.0)), i)));
                demand += jobs[i].demand.max(1e-9);
            }
            _ => unreachable!("the loop runs while something is running or to arrive"),
        }
    }
    ends
}

/// Total order on f64 for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Ord64(f64);

impl Eq for Ord64 {}

impl PartialOrd for Ord64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Ord64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(start_s: f64, alone_s: f64, demand: f64) -> Shared {
        Shared {
            start_s,
            alone_s,
            demand,
        }
    }

    #[test]
    fn within_capacity_nothing_stretches() {
        let ends = processor_sharing(&[job(0.0, 1.0, 1.0), job(0.5, 2.0, 1.0)], 2.0);
        assert_eq!(ends, vec![1.0, 2.5]);
    }

    #[test]
    fn over_capacity_instances_share_by_hand() {
        // Four single-CPU instances of 1 s on 2 CPUs, all at 0: rate 1/2, all end at 2.
        let four = vec![job(0.0, 1.0, 1.0); 4];
        assert_eq!(processor_sharing(&four, 2.0), vec![2.0; 4]);
        // Two 2-CPU instances of 1 s, the second 0.5 s later, on 2 CPUs: the first runs
        // 0.5 s alone (half done), then both at rate 1/2: the first needs 1 s more (ends
        // at 1.5), the second is then half done and alone again: ends at 2.0.
        let ends = processor_sharing(&[job(0.0, 1.0, 2.0), job(0.5, 1.0, 2.0)], 2.0);
        assert!((ends[0] - 1.5).abs() < 1e-12, "{ends:?}");
        assert!((ends[1] - 2.0).abs() < 1e-12, "{ends:?}");
        // The work is conserved: 2 CPU-seconds each, 4 in all on 2 CPUs from 0 → 2 s.
    }

    #[test]
    fn an_idle_gap_restarts_the_clock() {
        let ends = processor_sharing(&[job(5.0, 1.0, 1.0), job(0.0, 1.0, 1.0)], 1.0);
        assert_eq!(ends, vec![6.0, 1.0]);
    }
}
