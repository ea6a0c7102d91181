//! Uneven tasks: balanced batches (longest processing time first) and a batch's duration from its tasks' weights.
//!
//! A task's `weight` is its relative work (default: its input bytes where known, else 1).
//! A Distributed Map's ItemBatcher puts *consecutive* manifest items into a batch (k per
//! batch, the remainder last), so the manifest order decides the batches. [`balanced_order`]
//! forms ⌈C/k⌉ batches of those sizes by LPT — heaviest task first, into the lightest
//! batch that still has room — and returns the tasks in batch order: written to the
//! manifest in that order, ItemBatcher's batches are exactly the balanced ones.
//!
//! [`batch_factor`] is how much longer a batch runs than a batch of k mean tasks — the one
//! rule the model and the simulator both use.

use std::cmp::Reverse;
use std::collections::BinaryHeap;

/// Task indices in batch order: batch 0's (k of them), then batch 1's, …, the last batch
/// holding the `C − (⌈C/k⌉ − 1)·k` remaining, each batch's load as even as LPT makes it.
/// Deterministic: ties go to the earlier task and the lower batch.
pub fn balanced_order(weights: &[f64], k: usize) -> Vec<usize> {
    let c = weights.len();
    let k = k.max(1);
    if c == 0 {
        return Vec::new();
    }
    let n = c.div_ceil(k);
    let cap = |b: usize| if b + 1 == n { c - (n - 1) * k } else { k };
    let mut by_weight: Vec<usize> = (0..c).collect();
    by_weight.sort_by(|&a, &b| weights[b].total_cmp(&weights[a]).then(a.cmp(&b)));
    // Open batches by (load, index): the lightest first, the lower index on ties.
    let mut open: BinaryHeap<Reverse<(Load, usize)>> =
        (0..n).map(|b| Reverse((Load(0.0), b))).collect();
    let mut batches: Vec<Vec<usize>> = (0..n).map(|b| Vec::with_capacity(cap(b))).collect();
    for i in by_weight {
        let Reverse((Load(load), b)) = open.pop().expect("C tasks fit the capacities");
        batches[b].push(i);
        if batches[b].len() < cap(b) {
            open.push(Reverse((Load(load + weights[i].max(0.0)), b)));
        }
    }
    for b in &mut batches {
        b.sort_unstable();
    }
    batches.concat()
}

/// Consecutive batches of `k` of `weights` (in manifest order), as ItemBatcher forms them.
pub fn consecutive(weights: &[f64], k: usize) -> Vec<&[f64]> {
    weights.chunks(k.max(1)).collect()
}

/// How much longer a batch of `batch` weights runs than `batch.len()` tasks of weight
/// `mean`: at least its total work (`Σw / (len · mean)`, the tasks share the instance's
/// vCPUs) and at least its longest task alone (`max w / mean` of a lone task's
/// `d1_s`, over the batch's `dk_s`). 1 for equal weights.
pub fn batch_factor(batch: &[f64], mean: f64, d1_s: f64, dk_s: f64) -> f64 {
    if batch.is_empty() || mean <= 0.0 {
        return 1.0;
    }
    let sum: f64 = batch.iter().sum();
    let max = batch.iter().copied().fold(0.0, f64::max);
    let work = sum / (batch.len() as f64 * mean);
    let longest = if dk_s > 0.0 {
        max / mean * d1_s / dk_s
    } else {
        0.0
    };
    work.max(longest)
}

/// Total order on f64 for the heap.
#[derive(Debug, Clone, Copy, PartialEq)]
struct Load(f64);

impl Eq for Load {}

impl PartialOrd for Load {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for Load {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lpt_balances_by_hand() {
        // 6 tasks, k = 2 → 3 batches: 9 → b0, 8 → b1, 7 → b2, 3 → b2 (7), 2 → b1 (8),
        // 1 → b0 (9): loads 10, 10, 10.
        let w = [1.0, 9.0, 2.0, 8.0, 3.0, 7.0];
        let order = balanced_order(&w, 2);
        assert_eq!(order, vec![0, 1, 2, 3, 4, 5]);
        let w = [9.0, 8.0, 7.0, 3.0, 2.0, 1.0];
        let order = balanced_order(&w, 2);
        assert_eq!(order, vec![0, 5, 1, 4, 2, 3]);
        let loads: Vec<f64> = consecutive(&order.iter().map(|&i| w[i]).collect::<Vec<_>>(), 2)
            .iter()
            .map(|b| b.iter().sum())
            .collect();
        assert_eq!(loads, vec![10.0, 10.0, 10.0]);
    }

    #[test]
    fn the_last_batch_holds_the_remainder_and_every_task_once() {
        let w: Vec<f64> = (0..11).map(|i| f64::from(i * 7 % 5 + 1)).collect();
        let order = balanced_order(&w, 4);
        let mut seen = order.clone();
        seen.sort_unstable();
        assert_eq!(seen, (0..11).collect::<Vec<_>>());
        let sizes: Vec<usize> = order.chunks(4).map(<[usize]>::len).collect();
        assert_eq!(sizes, vec![4, 4, 3]);
        // Equal weights: round robin over the batches with room (the staged order is as good,
        // so StagedJob::batch_order keeps it).
        assert_eq!(balanced_order(&[1.0; 7], 3), vec![0, 3, 5, 1, 4, 6, 2]);
    }

    #[test]
    fn batch_factor_is_work_or_the_longest_task() {
        assert_eq!(batch_factor(&[1.0, 1.0], 1.0, 1.0, 1.0), 1.0);
        // Twice the mean work: twice as long.
        assert_eq!(batch_factor(&[2.0, 2.0], 1.0, 1.0, 1.0), 2.0);
        // One task 4× the mean in a batch of 4 on 4 vCPUs (D(4) = D(1)): the long task decides.
        assert_eq!(batch_factor(&[4.0, 0.0, 0.0, 0.0], 1.0, 1.0, 1.0), 4.0);
        // The same batch on 1 vCPU (D(4) = 4 D(1)): its work, 1.
        assert_eq!(batch_factor(&[4.0, 0.0, 0.0, 0.0], 1.0, 1.0, 4.0), 1.0);
    }
}
