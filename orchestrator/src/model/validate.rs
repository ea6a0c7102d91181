//! `orchestrator model validate`: predicted vs measured service time of every `propack_performance` run, per app and model.
//!
//! Each app's model is fitted from `scaling_performance` and
//! `packed_performance` only; `propack_performance` is only compared against.
//! The prediction of a run is [`Model::instance_end_s`] at the artifact's launch
//! position (`net`: the last instance, `tail`: ⌊q·n⌋, `median`: ⌊n/2⌋) with the
//! run's own n and k — exactly what its `final_output` file measured.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

use super::artifact::{self, ARTIFACT_PLATFORM, PropackRun};
use super::curve::{median, quantile};
use super::{Model, ModelError, ModelKind};
use crate::platform::PlatformProfile;

/// Error statistics of one group of runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct ErrorStats {
    /// Runs.
    pub n: usize,
    /// Median absolute error, percent of the measured value.
    pub median_abs_pct: f64,
    /// 90th percentile absolute error, percent.
    pub p90_abs_pct: f64,
}

impl ErrorStats {
    fn of(errors: &[f64]) -> Self {
        Self {
            n: errors.len(),
            median_abs_pct: median(errors).unwrap_or(f64::NAN),
            p90_abs_pct: quantile(errors, 0.9).unwrap_or(f64::NAN),
        }
    }
}

/// Errors of one app (or overall): packed (`_optima`) and unpacked (`_1`) runs.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct AppErrors {
    /// Runs with the authors' chosen k.
    pub packed: ErrorStats,
    /// Runs with k = 1.
    pub unpacked: ErrorStats,
}

/// One model's results.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelReport {
    /// Per app.
    pub apps: BTreeMap<String, AppErrors>,
    /// All apps pooled.
    pub overall: AppErrors,
}

/// The whole validation: `{"models": {"propack": …, "paper": …}}`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ValidationReport {
    /// Per model.
    pub models: BTreeMap<String, ModelReport>,
}

/// One compared run (for callers that want the detail).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Comparison {
    /// The measured run.
    pub run: PropackRun,
    /// Predicted service time, s.
    pub predicted_s: f64,
    /// |predicted − measured| / measured, percent.
    pub abs_pct: f64,
}

/// Launch position the artifact measured `metric` at, for `n` instances.
pub fn artifact_position(metric: &str, n: u64, tail_quantile: f64) -> u64 {
    let last = n.saturating_sub(1);
    match metric {
        "tail" => ((tail_quantile * n as f64).floor() as u64).min(last),
        "median" => (n / 2).min(last),
        _ => last,
    }
}

/// Compares `kind`'s predictions with every run of `app`.
pub fn compare_app(
    dir: &Path,
    app: &str,
    kind: ModelKind,
    tail_quantile: f64,
) -> Result<Vec<Comparison>, ModelError> {
    let profile = artifact::import(dir, app)?;
    let platform =
        PlatformProfile::load(ARTIFACT_PLATFORM).map_err(|e| ModelError::Invalid(e.to_string()))?;
    let model = Model::new(&profile, platform, kind)?.with_tail_quantile(tail_quantile);
    let runs = artifact::read_propack_runs(dir, app)?;
    Ok(runs
        .into_iter()
        .map(|run| {
            let idx = artifact_position(&run.metric, run.instances, tail_quantile);
            let predicted_s = model.instance_end_s(run.instances, idx, run.k);
            let abs_pct = (predicted_s - run.service_s).abs() / run.service_s * 100.0;
            Comparison {
                run,
                predicted_s,
                abs_pct,
            }
        })
        .collect())
}

fn errors(cs: &[Comparison]) -> AppErrors {
    let pick = |packed: bool| -> Vec<f64> {
        cs.iter()
            .filter(|c| c.run.packed == packed)
            .map(|c| c.abs_pct)
            .collect()
    };
    AppErrors {
        packed: ErrorStats::of(&pick(true)),
        unpacked: ErrorStats::of(&pick(false)),
    }
}

/// Validates `kinds` on every app found in `dir`. Apps lacking scaling or
/// packing data (so no model can be fitted) or validation runs are reported in
/// the returned `skipped` list with the reason.
pub fn validate(
    dir: &Path,
    kinds: &[ModelKind],
    tail_quantile: f64,
    mut progress: impl FnMut(&str),
) -> Result<(ValidationReport, Vec<(String, String)>), ModelError> {
    let apps = artifact::discover_apps(dir)?;
    let mut report = ValidationReport::default();
    let mut skipped = Vec::new();
    for &kind in kinds {
        let mut pooled = Vec::new();
        let mut mr = ModelReport::default();
        for app in &apps {
            progress(&format!("{kind}: {app}"));
            match compare_app(dir, app, kind, tail_quantile) {
                Ok(cs) if cs.is_empty() => {
                    if kind == kinds[0] {
                        skipped.push((
                            app.clone(),
                            "no complete runs in propack_performance".to_owned(),
                        ));
                    }
                }
                Ok(cs) => {
                    mr.apps.insert(app.clone(), errors(&cs));
                    pooled.extend(cs);
                }
                Err(e) => {
                    if kind == kinds[0] {
                        skipped.push((app.clone(), e.to_string()));
                    }
                }
            }
        }
        mr.overall = errors(&pooled);
        report.models.insert(kind.to_string(), mr);
    }
    Ok((report, skipped))
}

#[cfg(test)]
mod tests {
    use super::super::artifact::tests::write_mini;
    use super::*;

    #[test]
    fn validates_a_mini_artifact_with_hand_checked_errors() {
        let d = tempfile::tempdir().unwrap();
        write_mini(d.path());
        let (rep, skipped) = validate(
            d.path(),
            &[ModelKind::Propack, ModelKind::Paper],
            0.9,
            |_| {},
        )
        .unwrap();
        assert_eq!(skipped.len(), 1, "{skipped:?}");
        assert_eq!(skipped[0].0, "other");
        let p = &rep.models["propack"];
        let mini = p.apps["mini"];
        assert_eq!((mini.packed.n, mini.unpacked.n), (1, 1));
        // Mini model: T0 = 2 s (service 7.95 − last end 5.95), 50 ms per instance,
        // durations 1 s without spread, overhead 1.5 − 1 = 0.5 s.
        // k = 1, 100 instances, last: 2 + 4.95 + 1 = 7.95 vs 8.0 → 0.625 %.
        assert!(
            (mini.unpacked.median_abs_pct - 0.625).abs() < 1e-6,
            "{mini:?}"
        );
        // k = 3, 33 instances: D(3) = P(3) − 0.5 with P PCHIP through (2, 2), (4, 3).
        let cs = compare_app(d.path(), "mini", ModelKind::Propack, 0.9).unwrap();
        let opt = cs.iter().find(|c| c.run.packed).unwrap();
        assert!(opt.predicted_s > 2.0 + 1.6 + 2.0 - 0.5 && opt.predicted_s < 2.0 + 1.6 + 3.0 - 0.5);
        assert_eq!(p.overall.packed.n + p.overall.unpacked.n, 2);
        assert!(rep.models.contains_key("paper"));
        let json = serde_json::to_value(&rep).unwrap();
        assert!(json["models"]["propack"]["apps"]["mini"]["packed"]["median_abs_pct"].is_number());
    }

    #[test]
    fn positions_follow_the_artifact() {
        assert_eq!(artifact_position("net", 333, 0.9), 332);
        assert_eq!(artifact_position("tail", 333, 0.9), 299);
        assert_eq!(artifact_position("median", 333, 0.9), 166);
        assert_eq!(artifact_position("tail", 1, 0.9), 0);
    }
}
