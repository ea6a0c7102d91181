//! The plan store: chosen k per (function, platform, C, objective, metric), reused by later plans and launches unless refreshed.
//!
//! One JSON file. Location: `--store FILE`, else `$PROPACK_PLANS`, else
//! `$PROPACK_HOME/plans.json`, else `~/.propack/plans.json`.

use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::planner::{Metric, Objective, Plan};

/// Version of the store file.
pub const STORE_SCHEMA_VERSION: u32 = 1;

/// What a stored plan is for.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord, Serialize, Deserialize)]
pub struct PlanKey {
    /// Function / workload name.
    pub function: String,
    /// Platform name.
    pub platform: String,
    /// Tasks C.
    pub tasks: u64,
    /// `time`, `cost` or `both`.
    pub objective: String,
    /// `total`, `tail` or `median`.
    pub metric: String,
}

impl PlanKey {
    /// The key of a plan for `function` on `platform`.
    pub fn new(
        function: &str,
        platform: &str,
        tasks: u64,
        objective: Objective,
        metric: Metric,
    ) -> Self {
        Self {
            function: function.to_owned(),
            platform: platform.to_owned(),
            tasks,
            objective: objective.name().to_owned(),
            metric: metric.name().to_owned(),
        }
    }
}

/// One stored plan: the key, the choice, and the full plan it came from.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct StoredPlan {
    /// Key.
    pub key: PlanKey,
    /// Chosen k.
    pub k: u64,
    /// Unix seconds when planned.
    pub planned_at_unix_s: u64,
    /// The plan (request, predictions, curve).
    pub plan: Plan,
}

/// The store file's content.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanStore {
    /// [`STORE_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Plans, at most one per key.
    pub plans: Vec<StoredPlan>,
    /// Where it lives (not serialised).
    #[serde(skip)]
    pub path: PathBuf,
}

/// The default store path from the environment (see the module docs).
pub fn default_path() -> PathBuf {
    if let Some(p) = std::env::var_os("PROPACK_PLANS") {
        return PathBuf::from(p);
    }
    if let Some(h) = std::env::var_os("PROPACK_HOME") {
        return PathBuf::from(h).join("plans.json");
    }
    let home = std::env::var_os("HOME").map_or_else(|| PathBuf::from("."), PathBuf::from);
    home.join(".propack").join("plans.json")
}

impl PlanStore {
    /// Opens the store at `path` (an absent file is an empty store).
    pub fn open(path: &Path) -> Result<Self, ModelError> {
        match std::fs::read_to_string(path) {
            Ok(text) => {
                let mut store: Self =
                    serde_json::from_str(&text).map_err(|source| ModelError::Json {
                        path: path.display().to_string(),
                        source,
                    })?;
                if store.schema_version != STORE_SCHEMA_VERSION {
                    return Err(ModelError::Invalid(format!(
                        "{}: plan store schema_version {} is not supported",
                        path.display(),
                        store.schema_version
                    )));
                }
                store.path = path.to_path_buf();
                Ok(store)
            }
            Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(Self {
                schema_version: STORE_SCHEMA_VERSION,
                plans: Vec::new(),
                path: path.to_path_buf(),
            }),
            Err(source) => Err(ModelError::Io {
                path: path.display().to_string(),
                source,
            }),
        }
    }

    /// The stored plan for `key`, if any.
    pub fn get(&self, key: &PlanKey) -> Option<&StoredPlan> {
        self.plans.iter().find(|p| &p.key == key)
    }

    /// Stores `plan` under `key`, replacing an older one.
    pub fn put(&mut self, key: PlanKey, plan: Plan) {
        let planned_at_unix_s = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs());
        self.plans.retain(|p| p.key != key);
        self.plans.push(StoredPlan {
            k: plan.k,
            key,
            planned_at_unix_s,
            plan,
        });
        self.plans.sort_by(|a, b| a.key.cmp(&b.key));
    }

    /// The stored plan for `key` unless `refresh`; otherwise plans with `make`,
    /// stores and saves. Returns the plan and whether it was reused.
    pub fn plan_or_reuse(
        &mut self,
        key: PlanKey,
        refresh: bool,
        make: impl FnOnce() -> Result<Plan, ModelError>,
    ) -> Result<(StoredPlan, bool), ModelError> {
        if !refresh && let Some(p) = self.get(&key) {
            return Ok((p.clone(), true));
        }
        let plan = make()?;
        self.put(key.clone(), plan);
        self.save()?;
        Ok((self.get(&key).cloned().expect("just stored"), false))
    }

    /// Writes the store atomically (temp file + rename), creating its directory.
    pub fn save(&self) -> Result<(), ModelError> {
        let io = |source| ModelError::Io {
            path: self.path.display().to_string(),
            source,
        };
        if let Some(dir) = self.path.parent().filter(|d| !d.as_os_str().is_empty()) {
            std::fs::create_dir_all(dir).map_err(io)?;
        }
        let tmp = self.path.with_extension("json.tmp");
        std::fs::write(
            &tmp,
            serde_json::to_string_pretty(self).expect("plans serialise"),
        )
        .map_err(io)?;
        std::fs::rename(&tmp, &self.path).map_err(io)
    }
}

#[cfg(test)]
mod tests {
    use super::super::planner::{Metric, Objective, PlanRequest, plan};
    use super::super::{Model, ModelKind, tests::synthetic_profile};
    use super::*;
    use crate::platform::PlatformProfile;

    #[test]
    fn put_save_reopen_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("deep/plans.json");
        let m = Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Propack,
        )
        .unwrap();
        let req = PlanRequest {
            tasks: 400,
            objective: Objective::Time,
            metric: Metric::Total,
            kmax: 16,
            memory_mb_per_task: 0.0,
            tmp_mb_per_task: 0.0,
            payload_bytes_per_task: 0,
            memory_mb: None,
        };
        let p = plan(&m, &req).unwrap();
        let key = PlanKey::new("syn", "aws-2021", 400, Objective::Time, Metric::Total);
        assert_eq!(key.objective, "time");
        let mut s = PlanStore::open(&path).unwrap();
        assert!(s.get(&key).is_none());
        s.put(key.clone(), p.clone());
        s.save().unwrap();
        let mut s = PlanStore::open(&path).unwrap();
        assert_eq!(s.get(&key).unwrap().k, p.k);
        s.put(key.clone(), p);
        assert_eq!(s.plans.len(), 1);
        let other = PlanKey {
            tasks: 800,
            ..key.clone()
        };
        assert!(s.get(&other).is_none());
        // Reused unless refreshed; a refresh re-plans and saves.
        let (got, reused) = s
            .plan_or_reuse(key.clone(), false, || panic!("must not re-plan"))
            .unwrap();
        assert!(reused && got.k == 6);
        let mut calls = 0;
        let (_, reused) = s
            .plan_or_reuse(other.clone(), false, || {
                calls += 1;
                plan(
                    &m,
                    &PlanRequest {
                        tasks: 800,
                        ..req.clone()
                    },
                )
            })
            .unwrap();
        assert!(!reused && calls == 1);
        let (_, reused) = s.plan_or_reuse(key, true, || plan(&m, &req)).unwrap();
        assert!(!reused);
        assert_eq!(PlanStore::open(&path).unwrap().plans.len(), 2);
    }
}
