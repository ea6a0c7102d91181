//! Versioned JSON profiles: how an app scales (k = 1 at several C), how it packs (k tasks on one instance), and the workload.
//!
//! A profile file (`<app>.json`, written by `orchestrator profile import`) is an
//! [`AppProfile`]: one [`ScalingProfile`], one [`PackingProfile`] (plus any curves measured at
//! other memories, `profile packing --memory`) and a default [`WorkloadProfile`]. Every struct carries `schema_version`
//! ([`PROFILE_SCHEMA_VERSION`]); readers reject versions they do not know.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;

/// Version of every profile format in this module.
pub const PROFILE_SCHEMA_VERSION: u32 = 1;

fn one() -> u32 {
    PROFILE_SCHEMA_VERSION
}

/// One instance of a scaling run: when its handler started (seconds after the
/// first instance of the run started) and how long it ran.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
pub struct InstanceSample {
    /// Handler start, seconds after the run's first instance (launch order) started.
    pub start_s: f64,
    /// Handler duration, seconds.
    pub duration_s: f64,
}

/// One run without packing (k = 1) at concurrency `concurrency`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingRun {
    /// Number of concurrent invocations C.
    pub concurrency: u64,
    /// Seconds from the client's start until it had issued all C invocations, if measured.
    #[serde(default)]
    pub scale_time_s: Option<f64>,
    /// Seconds from the client's start until the last invocation returned, if measured.
    #[serde(default)]
    pub service_time_s: Option<f64>,
    /// Per-instance start offsets and durations, in launch order.
    pub instances: Vec<InstanceSample>,
}

/// How the platform scales one function: runs with k = 1 at several C.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct ScalingProfile {
    /// [`PROFILE_SCHEMA_VERSION`].
    #[serde(default = "one")]
    pub schema_version: u32,
    /// App (function) name.
    pub app: String,
    /// Name of the platform the runs were measured on (e.g. `aws-2021`); the
    /// model uses the measured arrivals only when planning for that platform.
    #[serde(default)]
    pub platform: String,
    /// The runs, any order.
    pub runs: Vec<ScalingRun>,
}

/// Repeated measurements of one instance running `k` tasks.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackingSample {
    /// Packing degree.
    pub k: u64,
    /// Seconds for the whole invocation (client round trip), one per repeat.
    pub seconds: Vec<f64>,
    /// CPU seconds the k tasks used together, one per repeat (empty: not measured; the
    /// model then assumes CPU-bound tasks, see [`super::share`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub cpu_seconds: Vec<f64>,
}

/// Execution time of one warm instance running k tasks, for the k that were measured.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackingProfile {
    /// [`PROFILE_SCHEMA_VERSION`].
    #[serde(default = "one")]
    pub schema_version: u32,
    /// App (function) name.
    pub app: String,
    /// Function memory during the measurement, MB.
    pub memory_mb: u32,
    /// vCPUs during the measurement.
    pub vcpus: u32,
    /// Samples, any order; a k may appear once with several repeats.
    pub samples: Vec<PackingSample>,
}

impl PackingProfile {
    /// The CPUs one instance kept busy (CPU seconds over wall seconds) when it had enough
    /// tasks to use the host: on a shared host what it can give the job — its cores when
    /// idle, less when other work runs on it. The median over the samples with
    /// `k ≥ cores` (robust to the load changing while profiling), else the most any
    /// sample used. `None` without CPU measurements.
    pub fn cpu_capacity(&self, cores: f64) -> Option<f64> {
        let ratios = |min_k: f64| -> Vec<f64> {
            self.samples
                .iter()
                .filter(|s| s.k as f64 >= min_k)
                .flat_map(|s| s.seconds.iter().zip(&s.cpu_seconds))
                .filter(|(wall, _)| **wall > 0.0)
                .map(|(wall, cpu)| cpu / wall)
                .collect()
        };
        let saturating = ratios(cores);
        if saturating.is_empty() {
            ratios(0.0).into_iter().reduce(f64::max)
        } else {
            super::curve::median(&saturating)
        }
    }
}

/// What one job asks for: its size and per-task resources.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct WorkloadProfile {
    /// [`PROFILE_SCHEMA_VERSION`].
    #[serde(default = "one")]
    pub schema_version: u32,
    /// Function / workload name (the plan store key).
    pub name: String,
    /// Number of tasks C.
    pub tasks: u64,
    /// Memory one task needs, MB (k tasks need k times this).
    #[serde(default)]
    pub memory_mb_per_task: f64,
    /// /tmp one task needs, MB.
    #[serde(default)]
    pub tmp_mb_per_task: f64,
    /// Bytes of one task's entry in the batch payload.
    #[serde(default)]
    pub payload_bytes_per_task: u64,
}

/// Everything the model needs about one app: the `--profile` file of `orchestrator plan`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct AppProfile {
    /// [`PROFILE_SCHEMA_VERSION`].
    #[serde(default = "one")]
    pub schema_version: u32,
    /// App (function) name.
    pub app: String,
    /// Scaling runs.
    pub scaling: ScalingProfile,
    /// Packing samples.
    pub packing: PackingProfile,
    /// Packing curves measured at other memories (`profile packing --memory`), each with its
    /// `memory_mb` and `vcpus`; empty in profiles of one memory (see [`super::Model::at_memory`]).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_curves: Vec<PackingProfile>,
    /// Default workload (C and per-task resources); `plan --tasks` overrides C.
    pub workload: WorkloadProfile,
}

/// What `profile packing` writes as `<app>.packing.json`: the curve at one memory, plus
/// the curves at the other memories of `--memory` (absent without it, so the file is then a
/// plain [`PackingProfile`], and a plain one reads as this).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PackingFile {
    /// The curve the model's memory ratio is relative to.
    #[serde(flatten)]
    pub packing: PackingProfile,
    /// Curves at other memories, ascending by memory.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub memory_curves: Vec<PackingProfile>,
}

impl PackingFile {
    /// Splits curves measured at several memories: the one at `preferred_mb` if measured,
    /// else the one at the largest memory, is the main curve; the rest ascend by memory.
    /// `None` without curves.
    pub fn from_curves(mut curves: Vec<PackingProfile>, preferred_mb: u32) -> Option<Self> {
        curves.sort_by_key(|c| c.memory_mb);
        let main = curves
            .iter()
            .position(|c| c.memory_mb == preferred_mb)
            .or_else(|| curves.len().checked_sub(1))?;
        let packing = curves.remove(main);
        Some(Self {
            packing,
            memory_curves: curves,
        })
    }
}

impl AppProfile {
    /// A profile from measured scaling and packing, with a default workload of `tasks` tasks that
    /// asks for no per-task memory, /tmp or payload (callers or `plan` flags set those).
    pub fn from_measurements(
        app: &str,
        scaling: ScalingProfile,
        packing: PackingProfile,
        tasks: u64,
    ) -> Self {
        Self {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: app.to_owned(),
            scaling,
            packing,
            memory_curves: Vec::new(),
            workload: WorkloadProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                name: app.to_owned(),
                tasks,
                memory_mb_per_task: 0.0,
                tmp_mb_per_task: 0.0,
                payload_bytes_per_task: 0,
            },
        }
    }

    /// Combines `<dir>/<app>.scaling.json` and `<dir>/<app>.packing.json` into the planner's
    /// `<dir>/<app>.json` (a default workload of `tasks` tasks) when both exist; returns its path.
    pub fn combine_files(dir: &Path, app: &str, tasks: u64) -> Result<Option<PathBuf>, ModelError> {
        let (s, p) = (
            dir.join(format!("{app}.scaling.json")),
            dir.join(format!("{app}.packing.json")),
        );
        if !(s.is_file() && p.is_file()) {
            return Ok(None);
        }
        let read = |path: &Path| -> Result<Vec<u8>, ModelError> {
            std::fs::read(path).map_err(|source| ModelError::Io {
                path: path.display().to_string(),
                source,
            })
        };
        let json = |path: &Path, e| ModelError::Json {
            path: path.display().to_string(),
            source: e,
        };
        let scaling: ScalingProfile =
            serde_json::from_slice(&read(&s)?).map_err(|e| json(&s, e))?;
        let packing: PackingFile = serde_json::from_slice(&read(&p)?).map_err(|e| json(&p, e))?;
        let path = dir.join(format!("{app}.json"));
        let mut profile = Self::from_measurements(app, scaling, packing.packing, tasks);
        profile.memory_curves = packing.memory_curves;
        profile.save(&path)?;
        Ok(Some(path))
    }

    /// Reads and checks a profile file.
    pub fn load(path: &Path) -> Result<Self, ModelError> {
        let text = std::fs::read_to_string(path).map_err(|source| ModelError::Io {
            path: path.display().to_string(),
            source,
        })?;
        let profile: Self = serde_json::from_str(&text).map_err(|source| ModelError::Json {
            path: path.display().to_string(),
            source,
        })?;
        profile.validate()?;
        Ok(profile)
    }

    /// Writes the profile as pretty JSON.
    pub fn save(&self, path: &Path) -> Result<(), ModelError> {
        let io = |source| ModelError::Io {
            path: path.display().to_string(),
            source,
        };
        if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let text = serde_json::to_string_pretty(self).expect("profiles serialise");
        std::fs::write(path, text).map_err(io)
    }

    /// Checks versions and that there is something to fit.
    pub fn validate(&self) -> Result<(), ModelError> {
        for (what, v) in [
            ("profile", self.schema_version),
            ("scaling", self.scaling.schema_version),
            ("packing", self.packing.schema_version),
            ("workload", self.workload.schema_version),
        ] {
            if v != PROFILE_SCHEMA_VERSION {
                return Err(ModelError::Invalid(format!(
                    "{what} schema_version {v} is not supported (expected {PROFILE_SCHEMA_VERSION})"
                )));
            }
        }
        self.packing.validate()?;
        let mut memories = vec![self.packing.memory_mb];
        for c in &self.memory_curves {
            if c.schema_version != PROFILE_SCHEMA_VERSION {
                return Err(ModelError::Invalid(format!(
                    "packing curve at {} MB: schema_version {} is not supported (expected {PROFILE_SCHEMA_VERSION})",
                    c.memory_mb, c.schema_version
                )));
            }
            c.validate()?;
            if memories.contains(&c.memory_mb) {
                return Err(ModelError::Invalid(format!(
                    "two packing curves at {} MB",
                    c.memory_mb
                )));
            }
            memories.push(c.memory_mb);
        }
        self.scaling.validate()
    }
}

impl PackingProfile {
    /// Checks there is at least one positive sample and no k = 0.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.samples.iter().all(|s| s.seconds.is_empty()) {
            return Err(ModelError::Invalid(format!(
                "packing profile of {:?} has no samples",
                self.app
            )));
        }
        for s in &self.samples {
            if s.k == 0 {
                return Err(ModelError::Invalid("packing sample with k = 0".into()));
            }
            if s.seconds.iter().any(|t| !(t.is_finite() && *t > 0.0)) {
                return Err(ModelError::Invalid(format!(
                    "packing sample k = {} has a non-positive or non-finite time",
                    s.k
                )));
            }
        }
        Ok(())
    }
}

impl ScalingProfile {
    /// Checks runs have instances with finite, non-negative durations.
    pub fn validate(&self) -> Result<(), ModelError> {
        if self.runs.iter().all(|r| r.instances.is_empty()) {
            return Err(ModelError::Invalid(format!(
                "scaling profile of {:?} has no instances",
                self.app
            )));
        }
        for r in &self.runs {
            if r.instances.iter().any(|i| {
                !(i.start_s.is_finite() && i.duration_s.is_finite() && i.duration_s >= 0.0)
            }) {
                return Err(ModelError::Invalid(format!(
                    "scaling run C = {} has a non-finite start or negative duration",
                    r.concurrency
                )));
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tiny() -> AppProfile {
        AppProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: "t".into(),
            scaling: ScalingProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                app: "t".into(),
                platform: "aws-2021".into(),
                runs: vec![ScalingRun {
                    concurrency: 2,
                    scale_time_s: Some(0.1),
                    service_time_s: Some(2.0),
                    instances: vec![
                        InstanceSample {
                            start_s: 0.0,
                            duration_s: 1.0,
                        },
                        InstanceSample {
                            start_s: 0.05,
                            duration_s: 1.1,
                        },
                    ],
                }],
            },
            packing: PackingProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                app: "t".into(),
                memory_mb: 10_240,
                vcpus: 6,
                samples: vec![PackingSample {
                    k: 1,
                    seconds: vec![1.5],
                    cpu_seconds: Vec::new(),
                }],
            },
            memory_curves: Vec::new(),
            workload: WorkloadProfile {
                schema_version: PROFILE_SCHEMA_VERSION,
                name: "t".into(),
                tasks: 2,
                memory_mb_per_task: 0.0,
                tmp_mb_per_task: 0.0,
                payload_bytes_per_task: 0,
            },
        }
    }

    #[test]
    fn round_trips_through_a_file() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("sub/t.json");
        let p = tiny();
        p.save(&path).unwrap();
        assert_eq!(AppProfile::load(&path).unwrap(), p);
    }

    #[test]
    fn rejects_unknown_versions_and_empty_samples() {
        let mut p = tiny();
        p.packing.schema_version = 99;
        assert!(
            p.validate()
                .unwrap_err()
                .to_string()
                .contains("packing schema_version 99")
        );
        let mut p = tiny();
        p.packing.samples[0].seconds.clear();
        assert!(p.validate().is_err());
        let mut p = tiny();
        p.packing.samples[0].k = 0;
        assert!(p.validate().is_err());
    }

    #[test]
    fn cpu_capacity_is_the_median_of_the_saturating_samples() {
        let sample = |k: u64, wall: f64, cpu: f64| PackingSample {
            k,
            seconds: vec![wall],
            cpu_seconds: vec![cpu],
        };
        let mut p = PackingProfile {
            schema_version: PROFILE_SCHEMA_VERSION,
            app: "a".into(),
            memory_mb: 10_240,
            vcpus: 2,
            samples: vec![
                sample(1, 1.0, 0.9),
                sample(2, 1.0, 1.8),
                sample(4, 2.0, 3.0),
                sample(8, 4.0, 7.6),
            ],
        };
        // k ≥ 2 on 2 cores: 1.8, 1.5, 1.9 → 1.8 (k = 1 cannot use both cores).
        assert_eq!(p.cpu_capacity(2.0), Some(1.8));
        // None saturates 16 cores: the most any used.
        assert_eq!(p.cpu_capacity(16.0), Some(1.9));
        p.samples.iter_mut().for_each(|s| s.cpu_seconds.clear());
        assert_eq!(p.cpu_capacity(2.0), None);
    }

    #[test]
    fn curves_at_other_memories_are_optional_and_distinct() {
        // A profile written before memory curves existed has no such field, and one of a
        // single memory writes none.
        let p = tiny();
        let text = serde_json::to_string(&p).unwrap();
        assert!(!text.contains("memory_curves"));
        let at = |mb: u32| PackingProfile {
            memory_mb: mb,
            ..p.packing.clone()
        };
        // A plain packing file reads as a PackingFile of one curve.
        let file: PackingFile =
            serde_json::from_str(&serde_json::to_string(&p.packing).unwrap()).unwrap();
        assert_eq!(file.packing, p.packing);
        assert!(file.memory_curves.is_empty());
        // The preferred memory is the main curve; else the largest.
        let f = PackingFile::from_curves(vec![at(3_538), at(1_769), at(10_240)], 1_769).unwrap();
        assert_eq!(f.packing.memory_mb, 1_769);
        let rest: Vec<u32> = f.memory_curves.iter().map(|c| c.memory_mb).collect();
        assert_eq!(rest, vec![3_538, 10_240]);
        let f = PackingFile::from_curves(vec![at(3_538), at(1_769)], 10_240).unwrap();
        assert_eq!(f.packing.memory_mb, 3_538);
        assert!(PackingFile::from_curves(Vec::new(), 1).is_none());
        let mut two = tiny();
        two.memory_curves = vec![at(1_769)];
        two.validate().unwrap();
        two.memory_curves.push(at(10_240));
        let e = two.validate().unwrap_err().to_string();
        assert!(e.contains("two packing curves at 10240 MB"), "{e}");
    }
}
