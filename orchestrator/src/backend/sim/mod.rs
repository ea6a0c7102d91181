//! Seeded discrete-event simulator of a serverless platform.
//!
//! A job of C tasks packed k per instance becomes n = ⌈C/k⌉ invocations,
//! issued in batch order. Each one waits for the platform's scaling rule and
//! the account concurrency limit, pays a cold start when it lands on a new
//! instance, and runs for a duration drawn from the workload's packing curve
//! plus its spread. The output is the same [`RunRecords`] a real launch
//! produces, so every metric, report and plot reads simulated and measured
//! runs through one code path.
//!
//! How the platform profile's [`PlatformProfile::arrival_s`] is read depends on
//! the scaling kind, because the two AWS eras were limited by different things:
//! - `Interval` (aws-2021): the measured ~47 ms is per *invocation* — the
//!   artifact's k = 1 runs take 47 ms × C even though their 1–3 s instances
//!   finish long before the last one is issued, so a warm instance never
//!   shortcut the schedule. Invocation j is issued at `arrival_s(j)` and runs
//!   on a new (cold) instance.
//! - `TokenBucket` (aws-today): the bucket limits *new execution environments*;
//!   invocations are issued at once and a finished (warm) environment takes the
//!   next waiting invocation without a cold start.
//! - `Unlimited`: everything at once, warm reuse when the account limit binds.
//!
//! In every case an invocation beyond the account limit waits for a slot. Uneven tasks
//! ([`SimSpec::weights`]) multiply a batch's duration by [`crate::batching::batch_factor`];
//! on a shared host ([`PlatformProfile::host_cpus`]) instances then stretch by the model's
//! processor sharing ([`crate::model::share`]), their starts left where the rule put them.
//! A [`Dispatch::ClientPool`] replaces the issuing schedule with a client that
//! issues invocations at a fixed rate (the PyWren baseline).

pub mod durations;

use std::cmp::Reverse;
use std::collections::BinaryHeap;

use rand::SeedableRng;
use rand_chacha::ChaCha8Rng;

use propack_runtime::{BatchResult, TaskResult, TaskStatus};

use crate::backend::{Backend, BackendError, Job, Progress, RunOutcome};
use crate::billing::OrchestrationUsage;
use crate::platform::{PlatformProfile, Scaling};
use crate::records::{InstanceRecord, RunRecords, TaskRecord};

pub use durations::{DurationSampler, PackingDurations, Scaled};

/// Who issues the invocations.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub enum Dispatch {
    /// The orchestration (Step Functions Map / the artifact's client) on the platform's schedule.
    #[default]
    Platform,
    /// A client thread pool issuing `rate_per_s` invocations per second (PyWren).
    ClientPool {
        /// Invocations issued per second.
        rate_per_s: f64,
    },
}

/// One simulated run.
#[derive(Debug, Clone, PartialEq)]
pub struct SimSpec {
    /// C, the number of tasks.
    pub tasks: usize,
    /// Packing degree (≥ 1).
    pub k: usize,
    /// Seed of every random draw; the same seed gives the same records.
    pub seed: u64,
    /// Who issues the invocations.
    pub dispatch: Dispatch,
    /// Multiplies every handler duration (PyWren's per-invocation overhead).
    pub duration_factor: f64,
    /// Whether to draw cold starts (false: instances start the moment they may).
    pub cold_starts: bool,
    /// Overrides whether a finished instance may take a waiting invocation
    /// (`None`: by the platform's scaling kind, see the module docs; `Some(false)`:
    /// every invocation is a new instance, subject to the scaling rule).
    pub warm_reuse: Option<bool>,
    /// Each task's relative work, in manifest order (empty: equal tasks): a batch's drawn
    /// duration is multiplied by [`crate::batching::batch_factor`] of its tasks.
    pub weights: Vec<f64>,
}

impl SimSpec {
    /// C tasks packed k per instance, platform dispatch, cold starts on.
    pub fn new(tasks: usize, k: usize, seed: u64) -> Self {
        Self {
            tasks,
            k,
            seed,
            dispatch: Dispatch::Platform,
            duration_factor: 1.0,
            cold_starts: true,
            warm_reuse: None,
            weights: Vec::new(),
        }
    }
}

/// Whether a finished instance may take a waiting invocation on this platform (see the module docs).
fn warm_reuse(platform: &PlatformProfile, dispatch: Dispatch) -> bool {
    !matches!(
        (&platform.scaling, dispatch),
        (Scaling::Interval { .. }, Dispatch::Platform)
    )
}

/// Runs one job on the simulated platform and returns its records (launch at t = 0).
///
/// Task ids are `t<i>`; use [`simulate_tasks`] to keep a job's own ids.
pub fn simulate(
    platform: &PlatformProfile,
    durations: &dyn DurationSampler,
    spec: &SimSpec,
) -> RunRecords {
    simulate_inner(platform, durations, spec, None)
}

/// As [`simulate`], naming the task records after `ids` (one per task).
pub fn simulate_tasks(
    platform: &PlatformProfile,
    durations: &dyn DurationSampler,
    spec: &SimSpec,
    ids: &[String],
) -> RunRecords {
    simulate_inner(platform, durations, spec, Some(ids))
}

fn simulate_inner(
    platform: &PlatformProfile,
    durations: &dyn DurationSampler,
    spec: &SimSpec,
    ids: Option<&[String]>,
) -> RunRecords {
    let k = spec.k.max(1);
    let c = spec.tasks;
    let n = c.div_ceil(k);
    let limit = platform
        .account_concurrency_limit
        .map_or(usize::MAX, |l| l as usize);
    let reuse = spec
        .warm_reuse
        .unwrap_or_else(|| warm_reuse(platform, spec.dispatch));
    let mut rng = ChaCha8Rng::seed_from_u64(spec.seed);
    let weight_mean = spec.weights.iter().sum::<f64>() / spec.weights.len().max(1) as f64;

    // When invocation j is issued.
    let issue_s = |j: usize| -> f64 {
        match spec.dispatch {
            Dispatch::ClientPool { rate_per_s } if rate_per_s > 0.0 => j as f64 / rate_per_s,
            Dispatch::ClientPool { .. } => 0.0,
            Dispatch::Platform => match platform.scaling {
                Scaling::Interval { .. } => platform.arrival_s(j as u64),
                _ => 0.0,
            },
        }
    };
    // When the m-th new environment may be created.
    let new_env_s = |m: usize| -> f64 {
        match platform.scaling {
            Scaling::TokenBucket { .. } => platform.arrival_s(m as u64),
            _ => 0.0,
        }
    };

    // Busy instances by end time (the account limit counts them).
    let mut busy: BinaryHeap<Reverse<(OrdF64, usize)>> = BinaryHeap::new();
    // Idle warm instances by the time they became free.
    let mut idle: BinaryHeap<Reverse<(OrdF64, usize)>> = BinaryHeap::new();
    let mut created = 0usize;
    let mut instances = Vec::with_capacity(n);
    let mut tasks = Vec::with_capacity(c);
    // Each instance's duration alone, for a shared host (see `share_host`).
    let mut alone = Vec::with_capacity(n);

    for j in 0..n {
        let size = if j + 1 == n { c - k * (n - 1) } else { k };
        let ready = issue_s(j);
        let cold_s = if spec.cold_starts {
            durations::lognormal_from_median_p90(
                platform.cold_start.median_ms / 1000.0,
                platform.cold_start.p90_ms / 1000.0,
                &mut rng,
            )
        } else {
            0.0
        };
        let mut duration = durations.sample(size, &mut rng) * spec.duration_factor;
        if spec.weights.len() == c {
            let batch = &spec.weights[j * k..j * k + size];
            duration *= crate::batching::batch_factor(
                batch,
                weight_mean,
                durations.median_s(1),
                durations.median_s(size),
            );
        }

        // Instances that finished by `ready` are free now.
        while let Some(Reverse((end, id))) = busy.peek().copied() {
            if end.0 > ready {
                break;
            }
            busy.pop();
            if reuse {
                idle.push(Reverse((end, id)));
            }
        }
        // Earliest a slot under the account limit is free.
        let slot_s = if busy.len() < limit {
            ready
        } else {
            let Reverse((end, id)) = busy.pop().expect("busy is at the limit, so non-empty");
            if reuse {
                idle.push(Reverse((end, id)));
            }
            end.0.max(ready)
        };
        // Option 1: a warm instance — idle already, or the busy one that frees up first.
        let warm = if reuse {
            let from_idle = idle
                .peek()
                .map(|Reverse((free, id))| (free.0.max(slot_s), *id, true));
            let from_busy = busy
                .peek()
                .map(|Reverse((end, id))| (end.0.max(slot_s), *id, false));
            match (from_idle, from_busy) {
                (Some(a), Some(b)) => Some(if a.0 <= b.0 { a } else { b }),
                (a, b) => a.or(b),
            }
        } else {
            None
        };
        // Option 2: a new instance, if the scaling rule allows one; it pays the cold start.
        let may_create = !reuse || created < limit;
        let cold = may_create.then(|| new_env_s(created).max(slot_s) + cold_s);
        let take_warm = match (warm, cold) {
            (Some((w, _, _)), Some(cs)) => w <= cs,
            (Some(_), None) => true,
            (None, Some(_)) => false,
            (None, None) => unreachable!("with reuse, created == limit implies an instance exists"),
        };
        let (start, instance, is_cold) = if take_warm {
            let (w, id, was_idle) = warm.expect("take_warm implies a warm candidate");
            if was_idle {
                idle.pop();
            } else {
                busy.pop();
            }
            (w, id, false)
        } else {
            created += 1;
            (
                cold.expect("not warm implies a new instance"),
                created - 1,
                true,
            )
        };
        let end = start + duration;
        alone.push(duration);
        busy.push(Reverse((OrdF64(end), instance)));
        let ok = duration <= platform.timeout_s;
        let end = if ok { end } else { start + platform.timeout_s };
        instances.push(InstanceRecord {
            batch: j,
            attempt: 0,
            instance_id: format!("sim-{instance}"),
            cold_start: is_cold,
            requested_s: ready,
            start_s: start,
            end_s: end,
            init_ms: if is_cold { cold_s * 1000.0 } else { 0.0 },
            tasks: size,
            ok,
        });
        for t in 0..size {
            let i = j * k + t;
            // A packed instance returns its tasks' results together, so a task is
            // done (for the caller) when its batch returns.
            tasks.push(TaskRecord {
                id: ids
                    .and_then(|v| v.get(i).cloned())
                    .unwrap_or_else(|| format!("t{i}")),
                batch: j,
                status: if ok {
                    TaskStatus::Succeeded
                } else {
                    TaskStatus::TimedOut
                },
                start_s: Some(start),
                end_s: ok.then_some(end),
            });
        }
    }
    if let Some(cpus) = platform.host_cpus {
        share_host(platform, cpus, &alone, &mut instances, &mut tasks);
    }
    RunRecords {
        launch_epoch_ms: 0,
        instances,
        tasks,
        ..RunRecords::default()
    }
}

/// Stretches the instances of a run on one shared host of `cpus` CPUs (the local platform)
/// by [`crate::model::share::processor_sharing`], as the model does: starts stay where the
/// scaling rule put them, each instance keeps `min(tasks, vCPUs)` CPUs busy (CPU-bound).
fn share_host(
    platform: &PlatformProfile,
    cpus: f64,
    alone: &[f64],
    instances: &mut [InstanceRecord],
    tasks: &mut [TaskRecord],
) {
    use crate::model::share::{Shared, processor_sharing};
    let v = platform.cpus_at(platform.memory_mb);
    let jobs: Vec<Shared> = instances
        .iter()
        .zip(alone)
        .map(|(i, &d)| Shared {
            start_s: i.start_s,
            alone_s: if i.ok { d } else { i.end_s - i.start_s },
            demand: (i.tasks as f64).min(v).max(1e-3),
        })
        .collect();
    let ends = processor_sharing(&jobs, cpus);
    for (inst, end) in instances.iter_mut().zip(ends) {
        inst.end_s = end;
    }
    for t in tasks.iter_mut().filter(|t| t.end_s.is_some()) {
        t.end_s = Some(instances[t.batch].end_s);
    }
}

/// Total order on finite f64 for the event heaps.
#[derive(Debug, Clone, Copy, PartialEq)]
struct OrdF64(f64);

impl Eq for OrdF64 {}

impl PartialOrd for OrdF64 {
    fn partial_cmp(&self, other: &Self) -> Option<std::cmp::Ordering> {
        Some(self.cmp(other))
    }
}

impl Ord for OrdF64 {
    fn cmp(&self, other: &Self) -> std::cmp::Ordering {
        self.0.total_cmp(&other.0)
    }
}

/// Which instance the artifact measured a service time at.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ArtifactMetric {
    /// The last instance in launch order (`net`).
    Net,
    /// Index ⌊0.9·n⌋ in launch order (`tail`).
    Tail,
    /// Index ⌊n/2⌋ in launch order (`median`).
    Median,
}

/// The artifact's service time: for the instance at the metric's launch-order
/// index, the time its invocation was issued plus its handler duration
/// (`final_output` line 2 = line 1 + that instance's `end − start`).
pub fn artifact_service_s(records: &RunRecords, metric: ArtifactMetric) -> Option<f64> {
    let mut order: Vec<&InstanceRecord> = records.instances.iter().collect();
    if order.is_empty() {
        return None;
    }
    order.sort_by(|a, b| {
        a.requested_s
            .total_cmp(&b.requested_s)
            .then(a.batch.cmp(&b.batch))
    });
    let n = order.len();
    let idx = match metric {
        ArtifactMetric::Net => n - 1,
        // ⌊0.9 n⌋ < n for every n ≥ 1, so the index is always in range.
        ArtifactMetric::Tail => 9 * n / 10,
        ArtifactMetric::Median => n / 2,
    };
    let i = order[idx];
    Some(i.requested_s + (i.end_s - i.start_s))
}

/// The simulator as a [`Backend`]: a job's tasks are not executed, only timed.
pub struct SimBackend {
    durations: Box<dyn DurationSampler>,
    seed: u64,
}

impl std::fmt::Debug for SimBackend {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("SimBackend")
            .field("seed", &self.seed)
            .finish_non_exhaustive()
    }
}

impl SimBackend {
    /// A simulator drawing durations from `durations`, seeded by `seed`.
    pub fn new(durations: Box<dyn DurationSampler>, seed: u64) -> Self {
        Self { durations, seed }
    }
}

impl Backend for SimBackend {
    fn name(&self) -> &str {
        "sim"
    }

    async fn run(
        &mut self,
        job: &Job,
        progress: &dyn Progress,
    ) -> Result<RunOutcome, BackendError> {
        if job.k == 0 {
            return Err(BackendError::InvalidJob(
                "packing degree k must be at least 1".into(),
            ));
        }
        let ids: Vec<String> = job.tasks.iter().map(|t| t.id.clone()).collect();
        let spec = SimSpec::new(job.tasks.len(), job.k, self.seed);
        let mut records = simulate_tasks(&job.platform, self.durations.as_ref(), &spec, &ids);
        records.orchestration = OrchestrationUsage::of_records(
            &records,
            crate::billing::Orchestration::of(&job.definition),
        );
        let ms = |s: f64| (s * 1000.0).round().max(0.0) as u64;
        let mut results = Vec::with_capacity(records.instances.len());
        for inst in &records.instances {
            let batch_tasks: Vec<TaskResult> = records
                .tasks
                .iter()
                .filter(|t| t.batch == inst.batch)
                .map(|t| TaskResult {
                    id: t.id.clone(),
                    status: t.status,
                    exit_code: None,
                    signal: None,
                    started_at: t.start_s.map(ms),
                    ended_at: t.end_s.map(ms),
                    cpu_ms: None,
                    max_rss_kb: None,
                    stdout_tail: String::new(),
                    stderr_tail: String::new(),
                    error: (t.status != TaskStatus::Succeeded)
                        .then(|| "simulated timeout".to_owned()),
                    error_type: None,
                    stack_trace: None,
                    output: serde_json::Value::Null,
                    outputs: Default::default(),
                    summary: serde_json::Value::Null,
                    truncated: false,
                    stdout_uri: None,
                    stderr_uri: None,
                    logs_error: None,
                })
                .collect();
            let failed = batch_tasks
                .iter()
                .filter(|t| t.status != TaskStatus::Succeeded)
                .count();
            progress.batch_done(batch_tasks.len(), failed);
            results.push(BatchResult {
                schema_version: propack_runtime::contract::SCHEMA_VERSION,
                run_id: Some(job.run_id.clone()),
                batch_id: Some(inst.batch.to_string()),
                instance_id: inst.instance_id.clone(),
                cold_start: inst.cold_start,
                init_ms: inst.init_ms.round() as u64,
                received_at: ms(inst.start_s),
                started_at: ms(inst.start_s),
                ended_at: ms(inst.end_s),
                vcpus: job.platform.vcpus as usize,
                parallelism: inst.tasks.min(job.platform.vcpus as usize).max(1),
                memory_mb: Some(u64::from(job.platform.memory_mb)),
                request_id: None,
                truncated: false,
                tasks: batch_tasks,
            });
        }
        Ok(RunOutcome { records, results })
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::DurationDist;

    fn fixed(seconds_per_k: &[(usize, f64)]) -> PackingDurations {
        PackingDurations::new(seconds_per_k.iter().copied()).unwrap()
    }

    fn interval_platform(ms: f64) -> PlatformProfile {
        let mut p = PlatformProfile::aws_2021();
        p.scaling = Scaling::Interval { interval_ms: ms };
        p.cold_start = DurationDist {
            median_ms: 0.0,
            p90_ms: 0.0,
        };
        p
    }

    #[test]
    fn hand_computable_interval_run() {
        // C = 10 tasks, k = 3 → 4 invocations of 3, 3, 3, 1 tasks issued every
        // 50 ms; an instance of 3 tasks takes 2 s, of 1 task 1 s (no spread,
        // no cold start). Ends: 0+2, 0.05+2, 0.10+2, 0.15+1.
        let p = interval_platform(50.0);
        let d = fixed(&[(1, 1.0), (3, 2.0)]);
        let r = simulate(&p, &d, &SimSpec::new(10, 3, 1));
        let ends: Vec<f64> = r.instances.iter().map(|i| i.end_s).collect();
        let expect = [2.0, 2.05, 2.10, 1.15];
        for (e, x) in ends.iter().zip(expect) {
            assert!((e - x).abs() < 1e-9, "{ends:?}");
        }
        assert_eq!(r.tasks.len(), 10);
        // 1 USD per instance-second (1 GB), no request or orchestration charge.
        let mut priced = p.clone();
        priced.memory_mb = 1024;
        priced.prices.gb_second_x86_64 = 1.0;
        priced.prices.request = 0.0;
        let m = r.metrics(0.95, &priced);
        assert!((m.total_s - 2.10).abs() < 1e-9);
        assert!((m.scale_s - 0.15).abs() < 1e-9);
        // Median task: 10 ends sorted = [1.15, 2.0×3, 2.05×3, 2.10×3]; rank 5 → 2.05.
        assert!((m.median_s - 2.05).abs() < 1e-9);
        // Billed: 2 + 2 + 2 + 1 s.
        assert!((m.expense_usd - 7.0).abs() < 1e-9);
        assert!(r.instances.iter().all(|i| i.cold_start));
        let net = artifact_service_s(&r, ArtifactMetric::Net).unwrap();
        assert!((net - 1.15).abs() < 1e-9);
    }

    /// On an `Interval` platform every invocation is a new instance even when an earlier
    /// one has long finished (0.1 s instances issued every 0.5 s); a client pool on the same
    /// platform hands the next invocation to the finished, warm one.
    #[test]
    fn interval_platforms_never_reuse_but_a_client_pool_does() {
        let p = interval_platform(500.0);
        let d = fixed(&[(1, 0.1)]);
        let r = simulate(&p, &d, &SimSpec::new(3, 1, 0));
        let ids: Vec<&str> = r.instances.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, ["sim-0", "sim-1", "sim-2"]);
        assert!(r.instances.iter().all(|i| i.cold_start));
        let mut spec = SimSpec::new(3, 1, 0);
        spec.dispatch = Dispatch::ClientPool { rate_per_s: 2.0 };
        let r = simulate(&p, &d, &spec);
        let ids: Vec<&str> = r.instances.iter().map(|i| i.instance_id.as_str()).collect();
        assert_eq!(ids, ["sim-0", "sim-0", "sim-0"]);
        let cold: Vec<bool> = r.instances.iter().map(|i| i.cold_start).collect();
        assert_eq!(cold, [true, false, false]);
        // A pool without a rate issues everything at once (not at j / 0 = ∞).
        spec.dispatch = Dispatch::ClientPool { rate_per_s: 0.0 };
        let r = simulate(&p, &d, &spec);
        let requested: Vec<f64> = r.instances.iter().map(|i| i.requested_s).collect();
        assert_eq!(requested, [0.0; 3]);
        let ends: Vec<f64> = r.instances.iter().map(|i| i.end_s).collect();
        assert_eq!(ends, [0.1; 3]);
    }

    #[test]
    fn account_limit_makes_waves_with_warm_reuse() {
        // Unlimited scaling, limit 2, 5 single-task instances of 1 s each and a
        // fixed 0.5 s cold start: waves start at 0.5 (cold), 1.5 and 2.5 (warm).
        let mut p = PlatformProfile::unlimited();
        p.account_concurrency_limit = Some(2);
        p.cold_start = DurationDist {
            median_ms: 500.0,
            p90_ms: 500.0,
        };
        let d = fixed(&[(1, 1.0)]);
        let r = simulate(&p, &d, &SimSpec::new(5, 1, 3));
        let starts: Vec<f64> = r.instances.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, vec![0.5, 0.5, 1.5, 1.5, 2.5]);
        let cold: Vec<bool> = r.instances.iter().map(|i| i.cold_start).collect();
        assert_eq!(cold, vec![true, true, false, false, false]);
        // Never more than 2 running at once.
        for i in &r.instances {
            let running = r
                .instances
                .iter()
                .filter(|o| o.start_s <= i.start_s && o.end_s > i.start_s)
                .count();
            assert!(running <= 2);
        }
        assert!((r.metrics(0.95, &p).total_s - 3.5).abs() < 1e-9);
    }

    /// Without warm reuse the account limit still holds: a new instance waits for a busy one
    /// to end (limit 2, 1 s instances, 0.5 s cold starts): 0.5, 0.5, then 1.5 + 0.5 twice,
    /// then 3 + 0.5.
    #[test]
    fn account_limit_holds_without_warm_reuse() {
        let mut p = PlatformProfile::unlimited();
        p.account_concurrency_limit = Some(2);
        p.cold_start = DurationDist {
            median_ms: 500.0,
            p90_ms: 500.0,
        };
        let mut spec = SimSpec::new(5, 1, 3);
        spec.warm_reuse = Some(false);
        let r = simulate(&p, &fixed(&[(1, 1.0)]), &spec);
        let starts: Vec<f64> = r.instances.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, vec![0.5, 0.5, 2.0, 2.0, 3.5]);
        assert!(r.instances.iter().all(|i| i.cold_start));
    }

    /// Uneven tasks stretch a batch by its weights: D(1) = 1 s, D(2) = 1.5 s, weights
    /// [3, 3 | 1, 1] (mean 2): the first batch does 1.5× the mean work (2.25 s), the second
    /// 0.5× (0.75 s; its longest task alone, 1/2 · 1 s / 1.5 s, is less).
    #[test]
    fn weights_stretch_each_batch_by_its_work() {
        let mut spec = SimSpec::new(4, 2, 0);
        spec.weights = vec![3.0, 3.0, 1.0, 1.0];
        spec.cold_starts = false;
        let r = simulate(
            &PlatformProfile::unlimited(),
            &fixed(&[(1, 1.0), (2, 1.5)]),
            &spec,
        );
        let ends: Vec<f64> = r.instances.iter().map(|i| i.end_s).collect();
        assert_eq!(ends, vec![2.25, 0.75]);
    }

    #[test]
    fn token_bucket_gates_new_instances_not_warm_ones() {
        // Burst 2, then 2 more every 10 s: the 3rd and 4th invocations take the
        // warm instances freed at 1 s instead of waiting for new ones at 10 s.
        let mut p = PlatformProfile::aws_today();
        p.scaling = Scaling::TokenBucket {
            burst: 2,
            per_interval: 2,
            interval_s: 10.0,
        };
        p.cold_start = DurationDist {
            median_ms: 0.0,
            p90_ms: 0.0,
        };
        let d = fixed(&[(1, 1.0)]);
        let r = simulate(&p, &d, &SimSpec::new(4, 1, 0));
        let starts: Vec<f64> = r.instances.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, vec![0.0, 0.0, 1.0, 1.0]);
        assert_eq!(r.instances[2].instance_id, r.instances[0].instance_id);
    }

    #[test]
    fn a_shared_host_stretches_instances_as_the_model_does() {
        // Four 1-task instances of 1 s at once on a 2-CPU host: each runs at half speed.
        let p = PlatformProfile::unlimited().on_host(2.0, 0.0);
        let d = fixed(&[(1, 1.0)]);
        let r = simulate(&p, &d, &SimSpec::new(4, 1, 0));
        let ends: Vec<f64> = r.instances.iter().map(|i| i.end_s).collect();
        assert_eq!(ends, vec![2.0; 4]);
        assert!(r.tasks.iter().all(|t| t.end_s == Some(2.0)));
        // The model predicts the same total (no spread, no straggler allowance).
        let m = crate::model::Model::new(
            &crate::model::tests::synthetic_profile(),
            p.clone(),
            crate::model::ModelKind::Propack,
        )
        .unwrap();
        let k1 = m.instance_duration_s(1);
        let r = simulate(&p, &fixed(&[(1, k1)]), &SimSpec::new(4, 1, 0));
        let pred = m.predict(4, 1);
        assert!(
            (r.instances[3].end_s - pred.total_s).abs() < 1e-9,
            "{} vs {}",
            r.instances[3].end_s,
            pred.total_s
        );
    }

    /// On a shared host a timed-out instance occupies the host only until the timeout: one
    /// 10 s instance after a 1 s cold start, cut at 5 s, ends at 1 + 5 = 6 s.
    #[test]
    fn a_timed_out_instance_on_a_shared_host_runs_until_its_timeout() {
        let mut p = PlatformProfile::unlimited().on_host(2.0, 0.0);
        p.timeout_s = 5.0;
        p.cold_start = DurationDist {
            median_ms: 1000.0,
            p90_ms: 1000.0,
        };
        let r = simulate(&p, &fixed(&[(1, 10.0)]), &SimSpec::new(1, 1, 0));
        assert!(!r.instances[0].ok);
        assert_eq!((r.instances[0].start_s, r.instances[0].end_s), (1.0, 6.0));
    }

    #[test]
    fn client_pool_issues_at_its_rate() {
        let p = interval_platform(47.0);
        let d = fixed(&[(1, 1.0)]);
        let mut spec = SimSpec::new(5, 1, 0);
        spec.dispatch = Dispatch::ClientPool { rate_per_s: 100.0 };
        spec.duration_factor = 1.5;
        let r = simulate(&p, &d, &spec);
        let last = r.instances.last().unwrap();
        assert!((last.requested_s - 0.04).abs() < 1e-12);
        assert!((last.end_s - 1.54).abs() < 1e-12);
    }

    #[test]
    fn same_seed_same_records_other_seed_differs() {
        let p = PlatformProfile::aws_2021();
        let d = fixed(&[(1, 1.0), (10, 6.0)]).with_spread_from(&[0.6, 0.7, 0.7, 0.8, 1.5, 3.0]);
        let a = simulate(&p, &d, &SimSpec::new(500, 7, 42));
        let b = simulate(&p, &d, &SimSpec::new(500, 7, 42));
        let c = simulate(&p, &d, &SimSpec::new(500, 7, 43));
        assert_eq!(a, b);
        assert_ne!(a, c);
    }

    #[test]
    fn timeouts_fail_the_batch() {
        let mut p = interval_platform(0.0);
        p.timeout_s = 5.0;
        let d = fixed(&[(1, 1.0), (10, 10.0)]);
        let r = simulate(&p, &d, &SimSpec::new(10, 10, 0));
        assert!(!r.instances[0].ok);
        assert_eq!(r.instances[0].end_s, 5.0);
        assert!(
            r.tasks
                .iter()
                .all(|t| t.status == TaskStatus::TimedOut && t.end_s.is_none())
        );
    }

    #[test]
    fn backend_returns_records_and_results_under_the_jobs_task_ids() {
        let p = interval_platform(10.0);
        let tasks: Vec<propack_runtime::Task> = (0..7)
            .map(|i| {
                serde_json::from_value(
                    serde_json::json!({"id": format!("job-{i}"), "builtin": {"name": "sort"}}),
                )
                .unwrap()
            })
            .collect();
        let mut opts = propack_step_functions::DefinitionOptions::new(7, 3);
        opts.shape.task_seconds = Some(1.0);
        let definition = propack_step_functions::build_definition(&opts).unwrap();
        assert_eq!(
            crate::billing::Orchestration::of(&definition),
            crate::billing::Orchestration::Inline
        );
        let job = Job {
            run_id: "r1".into(),
            tasks,
            k: 3,
            definition,
            run_dir: std::env::temp_dir(),
            platform: p,
            stop: crate::backend::Stop::NEVER,
        };
        let mut backend = SimBackend::new(Box::new(fixed(&[(1, 1.0), (3, 2.0)])), 5);
        assert_eq!(backend.name(), "sim");
        let out =
            futures::executor::block_on(backend.run(&job, &crate::backend::NoProgress)).unwrap();
        assert_eq!(out.records.instances.len(), 3);
        assert_eq!(out.results.len(), 3);
        assert_eq!(out.results[2].tasks.len(), 1);
        assert_eq!(out.results[2].tasks[0].id, "job-6");
        assert_eq!(out.records.tasks[4].id, "job-4");
        // Last batch: issued at 20 ms, one task of 1 s.
        assert_eq!(out.results[2].ended_at, 1020);
        // Inline Map: the Map state and one Task state per batch.
        assert_eq!(out.records.orchestration.standard_transitions, 4);
    }

    /// Counts what the backend reports per batch.
    #[derive(Default)]
    struct Counted(std::sync::Mutex<Vec<(usize, usize)>>);

    impl crate::backend::Progress for Counted {
        fn batch_done(&self, tasks: usize, failed: usize) {
            self.0.lock().unwrap().push((tasks, failed));
        }
    }

    /// The backend's batch results carry the simulated times in ms, the cold start and the
    /// worker count: 5 tasks at k = 2 on a 2-vCPU function with a fixed 250 ms cold start;
    /// batches of 2 take 1.5 s, the last (1 task) 7 s, past the 6 s timeout.
    #[test]
    fn backend_results_carry_times_cold_starts_and_timeouts() {
        let mut p = interval_platform(100.0);
        p.timeout_s = 6.0;
        p.vcpus = 2;
        p.cold_start = DurationDist {
            median_ms: 250.0,
            p90_ms: 250.0,
        };
        let tasks: Vec<propack_runtime::Task> = (0..5)
            .map(|i| {
                serde_json::from_value(
                    serde_json::json!({"id": format!("t{i}"), "builtin": {"name": "noop"}}),
                )
                .unwrap()
            })
            .collect();
        let mut opts = propack_step_functions::DefinitionOptions::new(5, 2);
        opts.shape.task_seconds = Some(1.0);
        let job = Job {
            run_id: "r2".into(),
            tasks,
            k: 2,
            definition: propack_step_functions::build_definition(&opts).unwrap(),
            run_dir: std::env::temp_dir(),
            platform: p,
            stop: crate::backend::Stop::NEVER,
        };
        let mut backend = SimBackend::new(Box::new(fixed(&[(1, 7.0), (2, 1.5)])), 5);
        let progress = Counted::default();
        let out = futures::executor::block_on(backend.run(&job, &progress)).unwrap();
        assert_eq!(*progress.0.lock().unwrap(), [(2, 0), (2, 0), (1, 1)]);
        // Batch 1: issued at 100 ms, started after its 250 ms cold start, 1.5 s long.
        let b = &out.results[1];
        assert_eq!(b.batch_id.as_deref(), Some("1"));
        assert_eq!((b.received_at, b.started_at, b.ended_at), (350, 350, 1850));
        assert_eq!((b.cold_start, b.init_ms, b.parallelism), (true, 250, 2));
        assert_eq!(b.memory_mb, Some(u64::from(job.platform.memory_mb)));
        assert_eq!(b.tasks[1].started_at, Some(350));
        assert_eq!(b.tasks[1].ended_at, Some(1850));
        assert_eq!(b.tasks[1].error, None);
        // Batch 2 (one task) is cut at the timeout: 450 + 6,000 ms, its task timed out.
        let b = &out.results[2];
        assert_eq!((b.ended_at, b.parallelism), (6450, 1));
        assert_eq!(b.tasks[0].status, TaskStatus::TimedOut);
        assert_eq!(b.tasks[0].error.as_deref(), Some("simulated timeout"));
        assert_eq!(b.tasks[0].ended_at, None);
    }

    #[test]
    fn backend_refuses_k_zero() {
        let mut opts = propack_step_functions::DefinitionOptions::new(1, 1);
        opts.shape.task_seconds = Some(1.0);
        let job = Job {
            run_id: "r3".into(),
            tasks: Vec::new(),
            k: 0,
            definition: propack_step_functions::build_definition(&opts).unwrap(),
            run_dir: std::env::temp_dir(),
            platform: interval_platform(10.0),
            stop: crate::backend::Stop::NEVER,
        };
        let mut backend = SimBackend::new(Box::new(fixed(&[(1, 1.0)])), 5);
        let r = futures::executor::block_on(backend.run(&job, &crate::backend::NoProgress));
        assert!(matches!(r, Err(BackendError::InvalidJob(_))));
    }

    fn requested(batch: usize, requested_s: f64, duration_s: f64) -> InstanceRecord {
        InstanceRecord {
            batch,
            attempt: 0,
            instance_id: format!("i{batch}"),
            cold_start: false,
            requested_s,
            start_s: requested_s + 0.5,
            end_s: requested_s + 0.5 + duration_s,
            init_ms: 0.0,
            tasks: 1,
            ok: true,
        }
    }

    /// The artifact's service time at launch positions n − 1, ⌊0.9 n⌋ and ⌊n/2⌋ of 20
    /// instances (issue time + handler time), ordered by issue time, ties by batch.
    #[test]
    fn artifact_service_times_by_launch_position() {
        // Issued in reverse batch order: position p is batch 19 − p, issued at 0.1 p s,
        // running 19 − p s.
        let r = RunRecords {
            instances: (0..20)
                .map(|b| requested(b, 0.1 * (19 - b) as f64, b as f64))
                .collect(),
            ..RunRecords::default()
        };
        let at = |m| artifact_service_s(&r, m).unwrap();
        assert!((at(ArtifactMetric::Net) - 1.9).abs() < 1e-9);
        assert!((at(ArtifactMetric::Tail) - (1.8 + 1.0)).abs() < 1e-9);
        assert!((at(ArtifactMetric::Median) - (1.0 + 9.0)).abs() < 1e-9);
        // All issued at once: the batch decides, so position p is batch p.
        let r = RunRecords {
            instances: (0..20).rev().map(|b| requested(b, 0.0, b as f64)).collect(),
            ..RunRecords::default()
        };
        let at = |m| artifact_service_s(&r, m).unwrap();
        assert!((at(ArtifactMetric::Net) - 19.0).abs() < 1e-9);
        assert!((at(ArtifactMetric::Tail) - 18.0).abs() < 1e-9);
        assert!((at(ArtifactMetric::Median) - 10.0).abs() < 1e-9);
        assert_eq!(
            artifact_service_s(&RunRecords::default(), ArtifactMetric::Net),
            None
        );
    }

    #[test]
    fn without_warm_reuse_every_invocation_waits_for_the_bucket() {
        let mut p = PlatformProfile::aws_today();
        p.scaling = Scaling::TokenBucket {
            burst: 2,
            per_interval: 2,
            interval_s: 10.0,
        };
        p.cold_start = DurationDist {
            median_ms: 0.0,
            p90_ms: 0.0,
        };
        let d = fixed(&[(1, 1.0)]);
        let mut spec = SimSpec::new(5, 1, 0);
        spec.warm_reuse = Some(false);
        let r = simulate(&p, &d, &spec);
        let starts: Vec<f64> = r.instances.iter().map(|i| i.start_s).collect();
        assert_eq!(starts, vec![0.0, 0.0, 10.0, 10.0, 20.0]);
        assert!(r.instances.iter().all(|i| i.cold_start));
    }
}
