//! Profile: the one profiler, shared by `launch` (a local profile of the job's own tasks) and `profile scaling|packing`.
//!
//! Every measurement is a job of the first C tasks of a pool packed k per instance,
//! run on any backend like a real job; the records give the packing curve (the handler
//! time of one instance running k tasks) and the scaling runs (k = 1 at C, the
//! instance starts and durations).

use std::path::PathBuf;

use propack_runtime::Task;
use propack_step_functions::{DefinitionOptions, build_definition, manifest};

use super::Ui;
use super::error::PipelineError;
use crate::backend::{AnyBackend, Backend, Job, NoProgress, RunOutcome};
use crate::model::profile::{
    AppProfile, InstanceSample, PROFILE_SCHEMA_VERSION, PackingProfile, PackingSample,
    ScalingProfile, ScalingRun, WorkloadProfile,
};
use crate::platform::PlatformProfile;

/// The packing degrees `launch` measures: dense where the curve bends, sparse beyond.
const LAUNCH_DEGREES: [usize; 13] = [1, 2, 3, 4, 6, 8, 12, 16, 20, 24, 32, 48, 64];

/// Name of the measured platform in a launch profile: not a platform profile's name,
/// so the model takes arrivals from the target platform's scaling rule.
pub const LOCAL_PROFILE_PLATFORM: &str = "local-profile";

/// A scaling run and the epoch (start, end) of each instance, for the artifact's files.
#[derive(Debug, Clone, PartialEq)]
pub struct MeasuredScaling {
    /// The run in the model's format.
    pub run: ScalingRun,
    /// Unix-epoch seconds (start, end) of each instance, in start order.
    pub epochs: Vec<(f64, f64)>,
}

/// Runs profiling jobs on a backend.
#[derive(Debug)]
pub struct Profiler {
    backend: AnyBackend,
    platform: PlatformProfile,
    pool: Vec<Task>,
    work_dir: PathBuf,
    function: String,
    runs: usize,
    init_s: Option<f64>,
}

impl Profiler {
    /// A profiler running on `backend` (whose platform is `platform`), drawing its tasks
    /// from `pool` and keeping its runs' files under `work_dir`.
    pub fn new(
        backend: AnyBackend,
        platform: PlatformProfile,
        pool: Vec<Task>,
        work_dir: impl Into<PathBuf>,
    ) -> Self {
        Self {
            backend,
            platform,
            pool,
            work_dir: work_dir.into(),
            function: propack_step_functions::build::DEFAULT_FUNCTION.to_owned(),
            runs: 0,
            init_s: None,
        }
    }

    /// Median init of the new instances of the last [`Profiler::launch_profile`] burst,
    /// seconds: from creating an instance to its first poll, with no injected cold start.
    pub fn init_s(&self) -> Option<f64> {
        self.init_s
    }

    /// Invokes `function` (name or ARN) instead of `propack`.
    pub fn with_function(mut self, function: impl Into<String>) -> Self {
        self.function = function.into();
        self
    }

    /// The first `c` tasks of the pool, their outputs sent to a directory of this run so a
    /// profiling run never overwrites (or verifies) the job's own outputs.
    fn tasks(&self, c: usize, run: usize) -> Result<Vec<Task>, PipelineError> {
        if c > self.pool.len() {
            return Err(PipelineError::Profile(format!(
                "{c} tasks needed but the pool has {}",
                self.pool.len()
            )));
        }
        let out = self.work_dir.join(format!("run-{run}"));
        Ok(self.pool[..c]
            .iter()
            .enumerate()
            .map(|(i, t)| {
                let mut t = t.clone();
                for (name, uri) in t.outputs.iter_mut() {
                    *uri = format!("file://{}", out.join(format!("{i}-{name}")).display());
                }
                t
            })
            .collect())
    }

    /// One job of the first `c` tasks packed `k` per instance.
    pub async fn run(&mut self, c: usize, k: usize) -> Result<RunOutcome, PipelineError> {
        self.runs += 1;
        let tasks = self.tasks(c, self.runs)?;
        let mut opts = DefinitionOptions::new(c as u64, k as u64);
        opts.shape.vcpus = self.platform.vcpus;
        opts.shape.task_bytes = manifest::max_task_bytes(&tasks);
        opts.function = self.function.clone();
        let run_dir = self.work_dir.join(format!("run-{}", self.runs));
        let job = Job {
            run_id: format!("profile-c{c}-k{k}-{}", self.runs),
            tasks,
            k,
            definition: build_definition(&opts)?,
            run_dir: run_dir.clone(),
            platform: self.platform.clone(),
            stop: crate::backend::Stop::NEVER,
        };
        let outcome = self.backend.run(&job, &NoProgress).await?;
        // Best effort: a profiling run's files are of no use once measured.
        let _ = std::fs::remove_dir_all(&run_dir);
        Ok(outcome)
    }

    /// The packing curve: for each degree in `ks`, `repeats` runs of one instance with k tasks.
    pub async fn packing(
        &mut self,
        app: &str,
        ks: &[usize],
        repeats: usize,
        ui: Ui,
    ) -> Result<PackingProfile, PipelineError> {
        let bar = ui.bar(
            (ks.len() * repeats.max(1)) as u64,
            "profiling packing {bar:30} {pos}/{len} {msg}",
        );
        let (mut memory_mb, mut vcpus) = (self.platform.memory_mb, self.platform.vcpus);
        let mut samples = Vec::with_capacity(ks.len());
        for &k in ks {
            let mut seconds = Vec::new();
            let mut cpu_seconds = Vec::new();
            let mut cpu_known = true;
            for _ in 0..repeats.max(1) {
                bar.set_message(format!("k = {k}"));
                let outcome = self.run(k, k).await?;
                check_succeeded(&outcome, k)?;
                // Handler time of the one instance: k packed tasks, without the cold start.
                if let Some(i) = outcome.records.instances.iter().find(|i| i.ok) {
                    seconds.push((i.end_s - i.start_s).max(1e-4));
                }
                if let Some(r) = outcome.results.first() {
                    vcpus = r.vcpus as u32;
                    memory_mb = r.memory_mb.map_or(memory_mb, |m| m as u32);
                    // CPU time is what instances sharing a host compete for (see model::share).
                    let cpu: Option<u64> = r.tasks.iter().map(|t| t.cpu_ms).sum();
                    match cpu {
                        Some(ms) => cpu_seconds.push(ms as f64 / 1000.0),
                        None => cpu_known = false,
                    }
                }
                bar.inc(1);
            }
            if seconds.is_empty() {
                return Err(PipelineError::Profile(format!(
                    "k = {k}: no invocation succeeded"
                )));
            }
            if !cpu_known {
                cpu_seconds.clear();
            }
            samples.push(PackingSample {
                k: k as u64,
                seconds,
                cpu_seconds,
            });
        }
        bar.finish_and_clear();
        Ok(PackingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: app.to_owned(),
            memory_mb,
            vcpus,
            samples,
        })
    }

    /// The packing curve ([`Profiler::packing`]) at each of `memories`, MB (rounded to the
    /// platform's step), ascending. The memory reaches the function with each job's
    /// platform (the local platform pins each instance to the CPUs it buys); on AWS the
    /// function is configured at each memory first and at its own memory again after.
    pub async fn packing_at_memories(
        &mut self,
        app: &str,
        memories: &[u32],
        ks: &[usize],
        repeats: usize,
        ui: Ui,
    ) -> Result<Vec<PackingProfile>, PipelineError> {
        let base = self.platform.clone();
        let mut memories: Vec<u32> = memories.iter().map(|&m| base.round_memory(m)).collect();
        memories.sort_unstable();
        memories.dedup();
        #[cfg(feature = "aws")]
        if let AnyBackend::Aws(aws) = &self.backend {
            let config = aws.function_memory();
            let function = self.function.clone();
            let out = crate::backend::aws::memory::at_each_memory(
                &config,
                &function,
                &memories,
                async |m| {
                    self.platform = base.at_memory(m);
                    self.packing(app, ks, repeats, ui).await
                },
            )
            .await;
            self.platform = base;
            return out;
        }
        let mut out = Vec::with_capacity(memories.len());
        for &m in &memories {
            self.platform = base.at_memory(m);
            let curve = self.packing(app, ks, repeats, ui).await;
            self.platform = base.clone();
            out.push(curve?);
        }
        Ok(out)
    }

    /// One scaling run: `c` tasks at k = 1.
    pub async fn scaling(&mut self, c: usize) -> Result<MeasuredScaling, PipelineError> {
        let outcome = self.run(c, 1).await?;
        Ok(scaling_run(c, &outcome))
    }

    /// What `launch` plans from: the packing curve of the job's own tasks up to `kmax`
    /// and a small k = 1 burst for the spread of durations at scale (arrivals come from
    /// the target platform's profile, not from this burst).
    pub async fn launch_profile(
        &mut self,
        app: &str,
        kmax: usize,
        ui: Ui,
    ) -> Result<AppProfile, PipelineError> {
        let top = kmax.min(self.pool.len()).max(1);
        let mut ks: Vec<usize> = LAUNCH_DEGREES.into_iter().filter(|&k| k <= top).collect();
        if ks.last() != Some(&top) {
            ks.push(top);
        }
        let packing = self.packing(app, &ks, 1, ui).await?;
        let burst = self.pool.len().min(self.platform.vcpus as usize).max(1);
        let outcome = self.run(burst, 1).await?;
        check_succeeded(&outcome, 1)?;
        let inits: Vec<f64> = outcome
            .records
            .instances
            .iter()
            .filter(|i| i.cold_start)
            .map(|i| i.init_ms / 1000.0)
            .collect();
        self.init_s = crate::model::curve::median(&inits);
        let mut run = scaling_run(burst, &outcome).run;
        run.scale_time_s = None;
        run.service_time_s = None;
        Ok(AppProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: app.to_owned(),
            scaling: ScalingProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                app: app.to_owned(),
                platform: LOCAL_PROFILE_PLATFORM.into(),
                runs: vec![run],
            },
            packing,
            memory_curves: Vec::new(),
            workload: WorkloadProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                name: app.to_owned(),
                tasks: self.pool.len() as u64,
                memory_mb_per_task: 0.0,
                tmp_mb_per_task: 0.0,
                payload_bytes_per_task: manifest::max_task_bytes(&self.pool),
            },
        })
    }
}

/// A profile measured from failing tasks would plan for the wrong work: refuse it.
fn check_succeeded(outcome: &RunOutcome, k: usize) -> Result<(), PipelineError> {
    let failed = outcome
        .results
        .iter()
        .flat_map(|r| &r.tasks)
        .find(|t| t.status != propack_runtime::TaskStatus::Succeeded);
    if let Some(t) = failed {
        return Err(PipelineError::Profile(format!(
            "k = {k}: task {} {:?}: {}",
            t.id,
            t.status,
            t.error.clone().unwrap_or_default()
        )));
    }
    if outcome.results.is_empty() {
        return Err(PipelineError::Profile(format!(
            "k = {k}: the function returned no result"
        )));
    }
    Ok(())
}

/// One scaling run from a run's records: instances in start order, offsets from the first start.
pub fn scaling_run(c: usize, outcome: &RunOutcome) -> MeasuredScaling {
    let records = &outcome.records;
    let mut inst: Vec<_> = records.instances.iter().filter(|i| i.ok).collect();
    inst.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let first = inst.first().map_or(0.0, |i| i.start_s);
    let epoch0 = records.launch_epoch_ms as f64 / 1000.0;
    let run = ScalingRun {
        concurrency: c as u64,
        scale_time_s: records
            .instances
            .iter()
            .map(|i| i.requested_s)
            .reduce(f64::max),
        service_time_s: records.instances.iter().map(|i| i.end_s).reduce(f64::max),
        instances: inst
            .iter()
            .map(|i| InstanceSample {
                start_s: i.start_s - first,
                duration_s: (i.end_s - i.start_s).max(0.0),
            })
            .collect(),
    };
    let epochs = inst
        .iter()
        .map(|i| (epoch0 + i.start_s, epoch0 + i.end_s))
        .collect();
    MeasuredScaling { run, epochs }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::{InstanceRecord, RunRecords};

    #[test]
    fn scaling_run_sorts_and_offsets_instances() {
        let inst = |start: f64, end: f64, req: f64, ok: bool| InstanceRecord {
            batch: 0,
            attempt: 0,
            instance_id: "i".into(),
            cold_start: true,
            requested_s: req,
            start_s: start,
            end_s: end,
            init_ms: 0.0,
            tasks: 1,
            ok,
        };
        let outcome = RunOutcome {
            records: RunRecords {
                launch_epoch_ms: 1_000_000,
                instances: vec![
                    inst(2.0, 5.0, 0.2, true),
                    inst(1.0, 3.0, 0.1, true),
                    inst(0.5, 9.0, 0.3, false),
                ],
                ..RunRecords::default()
            },
            results: vec![],
        };
        let m = scaling_run(2, &outcome);
        assert_eq!(
            m.run.instances,
            vec![
                InstanceSample {
                    start_s: 0.0,
                    duration_s: 2.0
                },
                InstanceSample {
                    start_s: 1.0,
                    duration_s: 3.0
                },
            ]
        );
        // The failed invocation still counts for the scale and service times.
        assert_eq!(m.run.scale_time_s, Some(0.3));
        assert_eq!(m.run.service_time_s, Some(9.0));
        assert_eq!(m.epochs, vec![(1001.0, 1003.0), (1002.0, 1005.0)]);
    }
}
