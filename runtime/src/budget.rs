//! Fitting a [`BatchResult`] into a byte budget without dropping any task record or its status.
//!
//! Step Functions refuses a state over 256 KB (`States.DataLimitExceeded`) and Lambda a
//! response over 6 MB ([`crate::limits::LAMBDA_RESPONSE_LIMIT`], the Lambda front-end's
//! budget when a batch names none), and either way every result of the batch is lost.
//! [`fit`] shortens the record fields that can be re-read elsewhere, in this order, until
//! the compact JSON serialisation is within the budget:
//!
//! 1. stdout/stderr tails, evenly: every tail is cut to the same cap (its last `cap`
//!    bytes), the largest cap that fits, so no task loses more than another;
//! 2. handler `output` values, largest first, replaced by [`omitted`] markers;
//! 3. built-in `summary` values, the same way;
//! 4. handler `stack_trace`s, largest first, removed;
//! 5. `error` messages, longest first, cut to their first [`ERROR_KEEP_BYTES`] bytes.
//!
//! Ids, statuses, exit codes, signals, timings, `error_type`, output and log URIs and the
//! instance facts are never touched; a shortened record says `"truncated": true`, and so
//! does the batch. What remains after all five steps is [`floor_bytes`]: a budget at least
//! that large is always met (about 240 bytes per task plus its id, error prefix and URIs).
//! Serde only, like [`crate::contract`].

use serde_json::{Value, json};

use crate::contract::{BatchResult, TaskResult};

/// How much of an `error` message the last step keeps.
pub const ERROR_KEEP_BYTES: usize = 256;

/// Key of the object that replaces an omitted `output` or `summary`.
pub const OMITTED_KEY: &str = "propack_omitted_bytes";

/// The marker that replaces a value of `bytes` serialised bytes: `{"propack_omitted_bytes": N}`.
pub fn omitted(bytes: u64) -> Value {
    json!({ OMITTED_KEY: bytes })
}

/// What [`fit`] did.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FitReport {
    /// Compact JSON size before.
    pub before: u64,
    /// Compact JSON size after.
    pub after: u64,
    /// The budget.
    pub budget: u64,
    /// Records shortened.
    pub truncated_tasks: usize,
}

impl FitReport {
    /// True when the result is within the budget.
    pub fn fits(&self) -> bool {
        self.after <= self.budget
    }
}

/// Compact JSON size of `r`, as Lambda and `bootstrap serve` send it.
pub fn serialized_len(r: &BatchResult) -> u64 {
    serde_json::to_vec(r).map_or(u64::MAX, |v| v.len() as u64)
}

fn task_len(t: &TaskResult) -> u64 {
    serde_json::to_vec(t).map_or(u64::MAX, |v| v.len() as u64)
}

fn value_len(v: &Value) -> u64 {
    serde_json::to_vec(v).map_or(u64::MAX, |v| v.len() as u64)
}

/// The last at most `cap` bytes of `s`, starting on a character boundary.
fn suffix(s: &str, cap: usize) -> &str {
    if s.len() <= cap {
        return s;
    }
    let mut start = s.len() - cap;
    while !s.is_char_boundary(start) {
        start += 1;
    }
    &s[start..]
}

/// The first at most `cap` bytes of `s`, ending on a character boundary.
fn prefix(s: &str, cap: usize) -> &str {
    if s.len() <= cap {
        return s;
    }
    let mut end = cap;
    while !s.is_char_boundary(end) {
        end -= 1;
    }
    &s[..end]
}

fn cap_tails(t: &mut TaskResult, cap: usize) {
    for tail in [&mut t.stdout_tail, &mut t.stderr_tail] {
        if tail.len() > cap {
            *tail = suffix(tail, cap).to_owned();
            t.truncated = true;
        }
    }
}

/// Bytes that byte `b` of a UTF-8 string takes inside a JSON string as serde_json writes it
/// (multi-byte characters pass through unescaped, so their bytes count one each).
fn escaped_len(b: u8) -> u64 {
    match b {
        b'"' | b'\\' | b'\n' | b'\r' | b'\t' | 0x08 | 0x0c => 2,
        0..0x20 => 6,
        _ => 1,
    }
}

/// One record's tails, for computing its size under any cap without serialising it.
/// Each probe scans at most `cap` bytes per tail and allocates nothing, so a batch of
/// 1,024 full tails costs no extra memory.
struct TailSizes<'a> {
    /// The record with empty tails and the flag set.
    base: u64,
    tails: [&'a str; 2],
}

impl<'a> TailSizes<'a> {
    fn of(t: &'a TaskResult) -> Self {
        let mut empty = t.clone();
        empty.stdout_tail.clear();
        empty.stderr_tail.clear();
        empty.truncated = true;
        Self {
            base: task_len(&empty),
            tails: [&t.stdout_tail, &t.stderr_tail],
        }
    }

    fn max_len(&self) -> usize {
        self.tails[0].len().max(self.tails[1].len())
    }

    /// The record's size with tails cut to `cap` bytes (`full` when nothing is cut).
    fn len_at(&self, cap: usize, full: u64) -> u64 {
        if self.max_len() <= cap {
            return full;
        }
        self.base
            + self
                .tails
                .iter()
                .map(|t| suffix(t, cap).bytes().map(escaped_len).sum::<u64>())
                .sum::<u64>()
    }
}

/// Sizes of a result: everything but the task records, and each record.
struct Sizes {
    /// `{…,"tasks":[]}` with the batch flag set, plus the commas between records.
    frame: u64,
    tasks: Vec<u64>,
}

impl Sizes {
    fn of(r: &BatchResult) -> Self {
        let mut frame = r.clone();
        frame.tasks.clear();
        frame.truncated = true;
        Self {
            frame: serialized_len(&frame) + r.tasks.len().saturating_sub(1) as u64,
            tasks: r.tasks.iter().map(task_len).collect(),
        }
    }

    fn total(&self) -> u64 {
        self.frame + self.tasks.iter().sum::<u64>()
    }
}

/// How much a shortening step would save on a record (0: nothing to do).
type Weight = fn(&TaskResult) -> u64;
/// Applies a shortening step to a record; false if it changed nothing.
type Shrink = fn(&mut TaskResult) -> bool;

/// Shortens `r` until its compact JSON is at most `budget` bytes (see the module docs);
/// a result already within the budget is left as it is. When even [`floor_bytes`] is
/// over the budget, every step is applied and the report says it does not fit.
pub fn fit(r: &mut BatchResult, budget: u64) -> FitReport {
    let before = serialized_len(r);
    let mut report = FitReport {
        before,
        after: before,
        budget,
        truncated_tasks: 0,
    };
    if before <= budget {
        return report;
    }
    r.truncated = true;
    let mut sizes = Sizes::of(r);

    // 1. Tails, evenly: the largest common cap that fits. Sizes are not monotonic in
    // the cap only by the flag each newly cut record gains, so a binary search keeping
    // "lo fits" finds a fitting cap whenever cap 0 fits. Each probe is arithmetic on
    // precomputed escaped lengths, not a serialisation.
    let tails: Vec<TailSizes<'_>> = r.tasks.iter().map(TailSizes::of).collect();
    let max_tail = tails.iter().map(TailSizes::max_len).max().unwrap_or(0);
    let size_at = |cap: usize| -> u64 {
        sizes.frame
            + tails
                .iter()
                .zip(&sizes.tasks)
                .map(|(t, &full)| t.len_at(cap, full))
                .sum::<u64>()
    };
    let cap = if max_tail == 0 || size_at(0) > budget {
        0
    } else {
        let (mut lo, mut hi) = (0usize, max_tail);
        while hi - lo > 1 {
            let mid = lo + (hi - lo) / 2;
            if size_at(mid) <= budget {
                lo = mid;
            } else {
                hi = mid;
            }
        }
        lo
    };
    for (t, len) in r.tasks.iter_mut().zip(sizes.tasks.iter_mut()) {
        cap_tails(t, cap);
        *len = task_len(t);
    }
    debug_assert!(
        cap == 0 || sizes.total() <= budget,
        "tail arithmetic is off"
    );

    // 2–5. Larger fields, largest first, one record at a time.
    let steps: [(Weight, Shrink); 4] = [
        (
            |t| {
                if t.output.is_null() {
                    0
                } else {
                    value_len(&t.output)
                }
            },
            |t| {
                let n = value_len(&t.output);
                let marker = omitted(n);
                if t.output.is_null() || value_len(&marker) >= n {
                    return false;
                }
                t.output = marker;
                true
            },
        ),
        (
            |t| {
                if t.summary.is_null() {
                    0
                } else {
                    value_len(&t.summary)
                }
            },
            |t| {
                let n = value_len(&t.summary);
                let marker = omitted(n);
                if t.summary.is_null() || value_len(&marker) >= n {
                    return false;
                }
                t.summary = marker;
                true
            },
        ),
        (
            |t| {
                t.stack_trace
                    .as_ref()
                    .map_or(0, |s| s.iter().map(String::len).sum::<usize>() as u64 + 1)
            },
            |t| t.stack_trace.take().is_some(),
        ),
        (
            |t| t.error.as_ref().map_or(0, |e| e.len() as u64),
            |t| match &mut t.error {
                Some(e) if e.len() > ERROR_KEEP_BYTES => {
                    *e = prefix(e, ERROR_KEEP_BYTES).to_owned();
                    true
                }
                _ => false,
            },
        ),
    ];
    for (weight, apply) in steps {
        if sizes.total() <= budget {
            break;
        }
        let mut order: Vec<(u64, usize)> = r
            .tasks
            .iter()
            .enumerate()
            .map(|(i, t)| (weight(t), i))
            .filter(|&(w, _)| w > 0)
            .collect();
        order.sort_unstable_by(|a, b| b.cmp(a));
        for (_, i) in order {
            if sizes.total() <= budget {
                break;
            }
            if apply(&mut r.tasks[i]) {
                r.tasks[i].truncated = true;
                sizes.tasks[i] = task_len(&r.tasks[i]);
            }
        }
    }

    report.after = serialized_len(r);
    report.truncated_tasks = r.tasks.iter().filter(|t| t.truncated).count();
    report
}

/// The smallest size [`fit`] can reach for `r`: every step applied to every record.
/// Any budget of at least this many bytes is met.
pub fn floor_bytes(r: &BatchResult) -> u64 {
    let mut floor = r.clone();
    fit(&mut floor, 0).after
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::contract::{SCHEMA_VERSION, TaskStatus};
    use proptest::prelude::*;

    fn result(tasks: Vec<TaskResult>) -> BatchResult {
        BatchResult {
            schema_version: SCHEMA_VERSION,
            run_id: Some("run-1".into()),
            batch_id: Some("b-00007".into()),
            instance_id: "i-19a0c3e5f00-4242-0badf00d".into(),
            cold_start: true,
            init_ms: 12,
            received_at: 1_764_000_000_000,
            started_at: 1_764_000_000_001,
            ended_at: 1_764_000_001_234,
            vcpus: 6,
            parallelism: 6,
            memory_mb: Some(10240),
            request_id: Some("8f5b9c1e-0000-4000-8000-000000000000".into()),
            truncated: false,
            tasks,
        }
    }

    /// A task that filled both 4 KiB tails, like `yes | head -c 8192` on each stream.
    fn full_task(i: usize) -> TaskResult {
        let mut t = TaskResult::not_run(format!("task-{i:05}"), "");
        t.error = None;
        t.status = TaskStatus::Succeeded;
        t.exit_code = Some(0);
        t.started_at = Some(1_764_000_000_100);
        t.ended_at = Some(1_764_000_000_900);
        t.cpu_ms = Some(790);
        t.max_rss_kb = Some(3400);
        t.stdout_tail = "y\n".repeat(crate::contract::OUTPUT_TAIL_BYTES / 2);
        t.stderr_tail = "e\n".repeat(crate::contract::OUTPUT_TAIL_BYTES / 2);
        t.outputs
            .insert("out".into(), format!("s3://bucket/runs/run-1/out/{i}"));
        t
    }

    const SFN_STATE_LIMIT: u64 = 256 * 1024;

    #[test]
    fn k40_full_tails_exceed_256k_without_budget_and_fit_with_it() {
        let orig = result((0..40).map(full_task).collect());
        let mut r = orig.clone();
        let unbudgeted = serialized_len(&r);
        // 80 tails of 4096 bytes, each `\n` escaped to two bytes: 80 × 6144 + records.
        assert_eq!(unbudgeted, 500_709);
        assert!(unbudgeted > SFN_STATE_LIMIT);

        let budget = 240_000;
        let rep = fit(&mut r, budget);
        assert_eq!(rep.before, unbudgeted);
        assert!(rep.fits(), "{rep:?}");
        assert_eq!(rep.after, serialized_len(&r));
        // Even cut: every tail keeps the same number of bytes, and the cap is the largest
        // that fits (one byte more per tail would not).
        let cap = r.tasks[0].stdout_tail.len();
        assert_eq!(cap, 1917);
        assert!(r.tasks.iter().all(|t| t.stdout_tail.len() == cap
            && t.stderr_tail.len() == cap
            && t.truncated
            && t.status == TaskStatus::Succeeded));
        assert_eq!(rep.after, 239_966);
        let mut one_more = orig.clone();
        one_more.truncated = true;
        for t in &mut one_more.tasks {
            cap_tails(t, cap + 1);
        }
        assert!(serialized_len(&one_more) > budget);
        // The kept bytes are the end of the stream.
        assert!(r.tasks[3].stdout_tail.ends_with("y\ny\n"));
        assert!(r.truncated);
        assert_eq!(rep.truncated_tasks, 40);
        let back: BatchResult = serde_json::from_slice(&serde_json::to_vec(&r).unwrap()).unwrap();
        assert_eq!(back, r);
    }

    #[test]
    fn within_budget_is_untouched() {
        let mut r = result((0..3).map(full_task).collect());
        let orig = r.clone();
        let rep = fit(&mut r, SFN_STATE_LIMIT);
        assert_eq!(r, orig);
        assert!(!r.truncated);
        assert_eq!(rep.truncated_tasks, 0);
        assert!(!serde_json::to_string(&r).unwrap().contains("truncated"));
    }

    #[test]
    fn uneven_tails_cut_the_long_ones_only() {
        let mut tasks: Vec<TaskResult> = (0..10).map(full_task).collect();
        for t in &mut tasks[1..] {
            t.stdout_tail = "short".into();
            t.stderr_tail.clear();
        }
        let mut r = result(tasks);
        let rep = fit(&mut r, 6000);
        assert!(rep.fits(), "{rep:?}");
        assert!(r.tasks[0].truncated);
        assert!(
            r.tasks[1..]
                .iter()
                .all(|t| !t.truncated && t.stdout_tail == "short")
        );
    }

    #[test]
    fn outputs_then_errors_when_tails_are_not_enough() {
        let mut tasks: Vec<TaskResult> = (0..4).map(full_task).collect();
        tasks[0].output = json!({"big": "x".repeat(20_000)});
        tasks[1].output = json!([1, 2, 3]);
        tasks[2].status = TaskStatus::Failed;
        tasks[2].error = Some("é".repeat(5000));
        tasks[2].stack_trace = Some(vec!["frame".repeat(1000); 4]);
        let mut r = result(tasks);
        let floor = floor_bytes(&r);
        let rep = fit(&mut r, floor);
        assert!(rep.fits(), "{rep:?}");
        assert_eq!(r.tasks[0].output, omitted(20_010));
        // Small values are kept when the marker would not be smaller.
        assert_eq!(r.tasks[1].output, json!([1, 2, 3]));
        assert_eq!(r.tasks[2].stack_trace, None);
        let e = r.tasks[2].error.as_deref().unwrap();
        assert_eq!(e.len(), ERROR_KEEP_BYTES);
        assert_eq!(r.tasks[2].status, TaskStatus::Failed);
        // The floor per task: an id, a status, timings, one output URI, an empty tail pair.
        let empty: Vec<TaskResult> = (0..100)
            .map(|i| {
                let mut t = full_task(i);
                cap_tails(&mut t, 0);
                t
            })
            .collect();
        let per_task =
            (serialized_len(&result(empty.clone())) - serialized_len(&result(vec![]))) / 100;
        assert_eq!(per_task, 238);
    }

    #[test]
    fn below_the_floor_reports_not_fitting() {
        let mut r = result((0..5).map(full_task).collect());
        let rep = fit(&mut r, 100);
        assert!(!rep.fits());
        assert_eq!(
            rep.after,
            floor_bytes(&result((0..5).map(full_task).collect()))
        );
        assert!(
            r.tasks
                .iter()
                .all(|t| t.stdout_tail.is_empty() && t.truncated)
        );
        assert_eq!(r.tasks.len(), 5);
    }

    /// Text drawn from a seed (cheap to generate: a vector strategy keeps a value
    /// tree per character): any chars, or the ones JSON escapes to 2–6 bytes.
    fn arb_text() -> impl Strategy<Value = String> {
        (0usize..1500, any::<u64>(), any::<bool>()).prop_map(|(len, seed, escapes)| {
            let mut x = seed | 1;
            let mut next = move || {
                x ^= x << 13;
                x ^= x >> 7;
                x ^= x << 17;
                x
            };
            const NASTY: [char; 8] = ['"', '\u{1}', '\u{8}', '\n', '\\', 'é', '€', 'x'];
            (0..len)
                .map(|_| {
                    if escapes {
                        NASTY[(next() % NASTY.len() as u64) as usize]
                    } else {
                        char::from_u32((next() % 0x11_0000) as u32).unwrap_or('?')
                    }
                })
                .collect()
        })
    }

    fn arb_value() -> impl Strategy<Value = Value> {
        prop_oneof![
            Just(Value::Null),
            any::<i64>().prop_map(Value::from),
            arb_text().prop_map(Value::from),
            proptest::collection::vec(arb_text(), 0..4).prop_map(|v| json!({ "items": v })),
        ]
    }

    fn arb_task() -> impl Strategy<Value = TaskResult> {
        (
            "[a-zA-Z0-9_./-]{1,40}",
            arb_text(),
            arb_text(),
            arb_value(),
            arb_value(),
            proptest::option::of(arb_text()),
            proptest::option::of(proptest::collection::vec(arb_text(), 0..3)),
            any::<bool>(),
        )
            .prop_map(|(id, out, err, output, summary, error, stack, failed)| {
                let mut t = TaskResult::not_run(id, "");
                t.status = if failed {
                    TaskStatus::Failed
                } else {
                    TaskStatus::Succeeded
                };
                t.stdout_tail = out;
                t.stderr_tail = err;
                t.output = output;
                t.summary = summary;
                t.error = error;
                t.stack_trace = stack;
                t.started_at = Some(1);
                t.ended_at = Some(2);
                t
            })
    }

    proptest! {
        // 256 random batches of up to 40 records (a few seconds in a debug build).
        #![proptest_config(ProptestConfig { cases: 256, max_shrink_iters: 100, ..ProptestConfig::default() })]

        /// For any records and any budget at or above the documented floor, the result
        /// fits, parses back, and keeps every id and status in order.
        #[test]
        fn any_budget_above_the_floor_is_met(
            tasks in proptest::collection::vec(arb_task(), 1..30),
            extra in 0u64..60_000,
        ) {
            let orig = result(tasks);
            let budget = floor_bytes(&orig) + extra;
            let mut r = orig.clone();
            let rep = fit(&mut r, budget);
            let bytes = serde_json::to_vec(&r).unwrap();
            prop_assert!(bytes.len() as u64 <= budget, "{} > {budget}", bytes.len());
            prop_assert_eq!(rep.after, bytes.len() as u64);
            let back: BatchResult = serde_json::from_slice(&bytes).unwrap();
            prop_assert_eq!(back.tasks.len(), orig.tasks.len());
            for (a, b) in back.tasks.iter().zip(&orig.tasks) {
                prop_assert_eq!(&a.id, &b.id);
                prop_assert_eq!(a.status, b.status);
                prop_assert_eq!(a.started_at, b.started_at);
                prop_assert_eq!(a.truncated, a != b);
            }
            prop_assert_eq!(back.truncated, rep.before > budget);
        }
    }
}
