//! Platform profiles shipped as JSON files (`orchestrator/platforms/`): FuncX 2021, Azure Flex Consumption, Cloud Run — each number with its source.
//!
//! The files have [`PlatformProfile`](crate::platform::PlatformProfile)'s shape plus two keys
//! the profile itself ignores: `sources` (field → where the number comes from: a document,
//! a fit to the artifact, or a stated assumption) and `builtin_concurrency` (the platform's own
//! per-instance concurrency, for the comparison in `evaluate`). [`fit_funcx`] recomputes
//! the `funcx-2021` numbers from the artifact, so a test can hold the file to its data.

use std::collections::BTreeMap;
use std::path::Path;

use serde::{Deserialize, Serialize};

/// The shipped profile files, by name.
pub const FILES: &[(&str, &str)] = &[
    ("funcx-2021", include_str!("../platforms/funcx-2021.json")),
    ("azure-flex", include_str!("../platforms/azure-flex.json")),
    ("cloud-run", include_str!("../platforms/cloud-run.json")),
];

/// The JSON of a shipped profile.
pub fn embedded(name: &str) -> Option<&'static str> {
    FILES.iter().find(|(n, _)| *n == name).map(|(_, t)| *t)
}

/// A platform's own per-instance concurrency (Cloud Run's concurrent requests, Azure's HTTP
/// concurrency): the platform packs that many requests into one instance by itself.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct BuiltinConcurrency {
    /// Requests per instance unless configured.
    pub default_per_instance: u32,
    /// The largest setting.
    pub max_per_instance: u32,
    /// Whether each request (= task) pays the request price, rather than each batch.
    pub requests_billed_per_task: bool,
    /// Where the numbers come from.
    pub source: String,
}

/// What a profile file says besides the profile.
#[derive(Debug, Clone, Default, PartialEq, Serialize, Deserialize)]
pub struct PlatformNotes {
    /// Field → source of its number.
    #[serde(default)]
    pub sources: BTreeMap<String, String>,
    /// The platform's own per-instance concurrency, if it has one.
    #[serde(default)]
    pub builtin_concurrency: Option<BuiltinConcurrency>,
}

/// The notes of a shipped profile, or of a profile file (empty for the profiles built in as code).
pub fn notes(name_or_path: &str) -> PlatformNotes {
    let text = match embedded(name_or_path) {
        Some(t) => t.to_owned(),
        None => match std::fs::read_to_string(name_or_path) {
            Ok(t) => t,
            Err(_) => return PlatformNotes::default(),
        },
    };
    serde_json::from_str(&text).unwrap_or_default()
}

/// The `funcx-2021` numbers recomputed from the artifact's `funcX/data/results.txt`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuncxFit {
    /// Least-squares slope of time to run C tasks over C ≥ 100, 96-worker sessions, ms per task.
    pub interval_ms: f64,
    /// Its intercept, s.
    pub intercept_s: f64,
    /// Points in the fit.
    pub points: usize,
    /// Median of the C = 1 round trips (all sessions), ms.
    pub c1_median_ms: f64,
    /// Their 90th percentile (index ⌊0.9·n⌋ of the sorted values), ms.
    pub c1_p90_ms: f64,
    /// Worker counts of the sessions.
    pub workers: Vec<u32>,
}

/// Errors reading the funcX data.
#[derive(Debug, thiserror::Error)]
#[error("{path}: {message}")]
pub struct FuncxError {
    /// The file.
    pub path: String,
    /// What is wrong.
    pub message: String,
}

/// `(workers, C, seconds)` of every line of `funcX/data/results.txt`: sessions start with
/// `[date]`, then `Max Workers at Endpoint: W`, then `C: seconds` lines.
pub fn read_funcx_results(funcx_dir: &Path) -> Result<Vec<(u32, u64, f64)>, FuncxError> {
    let path = funcx_dir.join("data/results.txt");
    let err = |message: String| FuncxError {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let mut workers = None;
    let mut out = Vec::new();
    for (i, line) in text.lines().enumerate() {
        let line = line.trim();
        if let Some(w) = line.strip_prefix("Max Workers at Endpoint:") {
            workers = Some(
                w.trim()
                    .parse::<u32>()
                    .map_err(|e| err(format!("line {}: {e}", i + 1)))?,
            );
        } else if let Some((c, t)) = line.split_once(':')
            && let (Ok(c), Ok(t)) = (c.trim().parse::<u64>(), t.trim().parse::<f64>())
        {
            let w = workers.ok_or_else(|| err(format!("line {}: no worker count yet", i + 1)))?;
            out.push((w, c, t));
        }
    }
    if out.is_empty() {
        return Err(err("no `C: seconds` lines".into()));
    }
    Ok(out)
}

/// Fits the `funcx-2021` profile's dispatch interval and cold start (see [`FuncxFit`]).
pub fn fit_funcx(funcx_dir: &Path) -> Result<FuncxFit, FuncxError> {
    let rows = read_funcx_results(funcx_dir)?;
    let pts: Vec<(f64, f64)> = rows
        .iter()
        .filter(|(w, c, _)| *w == 96 && *c >= 100)
        .map(|(_, c, t)| (*c as f64, *t))
        .collect();
    let n = pts.len() as f64;
    let (mx, my) = (
        pts.iter().map(|p| p.0).sum::<f64>() / n,
        pts.iter().map(|p| p.1).sum::<f64>() / n,
    );
    let sxx: f64 = pts.iter().map(|p| (p.0 - mx).powi(2)).sum();
    let sxy: f64 = pts.iter().map(|p| (p.0 - mx) * (p.1 - my)).sum();
    let slope = sxy / sxx;
    let mut c1: Vec<f64> = rows
        .iter()
        .filter(|(_, c, _)| *c == 1)
        .map(|(_, _, t)| t * 1000.0)
        .collect();
    c1.sort_by(f64::total_cmp);
    let mut workers: Vec<u32> = rows.iter().map(|r| r.0).collect();
    workers.sort_unstable();
    workers.dedup();
    let median = if c1.is_empty() {
        0.0
    } else if c1.len() % 2 == 1 {
        c1[c1.len() / 2]
    } else {
        (c1[c1.len() / 2 - 1] + c1[c1.len() / 2]) / 2.0
    };
    Ok(FuncxFit {
        interval_ms: slope * 1000.0,
        intercept_s: my - slope * mx,
        points: pts.len(),
        c1_median_ms: median,
        c1_p90_ms: c1
            .get((c1.len() as f64 * 0.9) as usize)
            .copied()
            .unwrap_or(0.0),
        workers,
    })
}

/// One line per C of `funcX/exp1/statelesscost/scale_time.txt` (C = 100, 500, …, 5000):
/// seconds until the endpoint had run all C statelesscost tasks at k = 1.
pub fn read_funcx_scale_times(funcx_dir: &Path) -> Result<Vec<(u64, f64)>, FuncxError> {
    let path = funcx_dir.join("exp1/statelesscost/scale_time.txt");
    let err = |message: String| FuncxError {
        path: path.display().to_string(),
        message,
    };
    let text = std::fs::read_to_string(&path).map_err(|e| err(e.to_string()))?;
    let values: Vec<f64> = text
        .split_whitespace()
        .map(|v| v.parse::<f64>().map_err(|e| err(format!("{v:?}: {e}"))))
        .collect::<Result<_, _>>()?;
    let cs = crate::evaluate::paper_concurrencies();
    if values.len() != cs.len() {
        return Err(err(format!(
            "{} values, expected one per C of {cs:?}",
            values.len()
        )));
    }
    Ok(cs.into_iter().zip(values).collect())
}

/// What `model validate --platform funcx-2021` can check, said in its report.
pub const FUNCX_VALIDATION_SCOPE: &str = "The artifact's funcX data allow one held-out check: \
    the time to run C = 100..5000 statelesscost tasks unpacked (k = 1) on the 96-worker endpoint \
    (exp1/statelesscost/scale_time.txt), predicted from the funcx-2021 profile (dispatch interval \
    and cold start fitted on data/results.txt, a no-op workload) and the endpoint's own packing \
    curve (packing_delay/statelesscost, one warm worker, k = 1..30). There are no packed runs at \
    scale on funcX (no propack_performance), so ProPack's choice of k, tail and median metrics \
    and cost cannot be validated there; the packing curve is the model's input, not a check.";

/// One C of the funcX validation.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuncxPoint {
    /// C.
    pub tasks: u64,
    /// Measured seconds (exp1/statelesscost/scale_time.txt).
    pub measured_s: f64,
    /// The model's total service time at k = 1, s.
    pub predicted_s: f64,
    /// (predicted − measured) / measured, percent.
    pub error_pct: f64,
}

/// `model validate --platform funcx-2021`.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct FuncxValidation {
    /// [`FUNCX_VALIDATION_SCOPE`].
    pub scope: &'static str,
    /// Per C.
    pub points: Vec<FuncxPoint>,
    /// Median of |error|, percent.
    pub median_abs_error_pct: f64,
}

/// The endpoint's packing curve: `funcX/packing_delay/statelesscost/{parallel,service_time}.txt`.
pub fn read_funcx_packing(
    funcx_dir: &Path,
    memory_mb: u32,
    vcpus: u32,
) -> Result<crate::model::PackingProfile, FuncxError> {
    let d = funcx_dir.join("packing_delay/statelesscost");
    let read = |name: &str| -> Result<Vec<f64>, FuncxError> {
        let path = d.join(name);
        let err = |message: String| FuncxError {
            path: path.display().to_string(),
            message,
        };
        std::fs::read_to_string(&path)
            .map_err(|e| err(e.to_string()))?
            .split_whitespace()
            .map(|v| v.parse::<f64>().map_err(|e| err(format!("{v:?}: {e}"))))
            .collect()
    };
    let (ks, ts) = (read("parallel.txt")?, read("service_time.txt")?);
    if ks.len() != ts.len() || ks.is_empty() {
        return Err(FuncxError {
            path: d.display().to_string(),
            message: format!("{} k values but {} times", ks.len(), ts.len()),
        });
    }
    let mut samples: Vec<crate::model::PackingSample> = ks
        .iter()
        .zip(&ts)
        .map(|(&k, &t)| crate::model::PackingSample {
            k: k as u64,
            seconds: vec![t],
            cpu_seconds: Vec::new(),
        })
        .collect();
    samples.sort_by_key(|s| s.k);
    Ok(crate::model::PackingProfile {
        schema_version: 1,
        app: "statelesscost".into(),
        memory_mb,
        vcpus,
        samples,
    })
}

/// Validates `funcx-2021` on the artifact in `artifact_dir` (see [`FUNCX_VALIDATION_SCOPE`]).
/// The task spread (the model's straggler term) comes from the AWS statelesscost runs, the
/// only scaling runs with per-instance samples.
pub fn validate_funcx(artifact_dir: &Path) -> Result<FuncxValidation, crate::evaluate::EvalError> {
    use crate::model::{Model, ModelKind};
    let funcx = artifact_dir.join("funcX");
    let data = |e: FuncxError| crate::evaluate::EvalError::Data {
        path: e.path,
        message: e.message,
    };
    let platform = crate::platform::PlatformProfile::load("funcx-2021")
        .map_err(|e| crate::evaluate::EvalError::Invalid(e.to_string()))?;
    let mut profile = crate::model::artifact::import(artifact_dir, "statelesscost")?;
    profile.packing =
        read_funcx_packing(&funcx, platform.memory_mb, platform.vcpus).map_err(data)?;
    let model = Model::new(&profile, platform, ModelKind::Propack)?;
    let points: Vec<FuncxPoint> = read_funcx_scale_times(&funcx)
        .map_err(data)?
        .into_iter()
        .map(|(c, measured_s)| {
            let predicted_s = model.predict(c, 1).total_s;
            FuncxPoint {
                tasks: c,
                measured_s,
                predicted_s,
                error_pct: (predicted_s - measured_s) / measured_s * 100.0,
            }
        })
        .collect();
    let mut abs: Vec<f64> = points.iter().map(|p| p.error_pct.abs()).collect();
    abs.sort_by(f64::total_cmp);
    let median_abs_error_pct = if abs.len() % 2 == 1 {
        abs[abs.len() / 2]
    } else {
        (abs[abs.len() / 2 - 1] + abs[abs.len() / 2]) / 2.0
    };
    Ok(FuncxValidation {
        scope: FUNCX_VALIDATION_SCOPE,
        points,
        median_abs_error_pct,
    })
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::platform::PlatformProfile;

    #[test]
    fn shipped_profiles_offer_the_planner_only_their_platforms_memory_sizes() {
        // Lambda's default range (128 MB … 10 GB, 1,769 MB per vCPU) would let the planner
        // pick sizes these platforms do not have.
        let sizes = |name: &str| {
            let p = PlatformProfile::load(name).unwrap();
            p.memory_candidates()
                .into_iter()
                .map(|m| (m, p.cpus_at(m)))
                .collect::<Vec<_>>()
        };
        assert_eq!(sizes("funcx-2021"), [(10_240, 6.0)]);
        assert_eq!(sizes("azure-flex"), [(2_048, 1.0), (4_096, 2.0)]);
        assert_eq!(
            sizes("cloud-run"),
            [(2_048, 1.0), (4_096, 2.0), (6_144, 3.0), (8_192, 4.0)]
        );
    }

    #[test]
    fn every_shipped_profile_loads_and_names_a_source_for_its_numbers() {
        for (name, _) in FILES {
            let p = PlatformProfile::load(name).unwrap();
            assert_eq!(&p.name, name);
            let n = notes(name);
            let keys = n.sources.keys().cloned().collect::<Vec<_>>().join(" ");
            for field in [
                "memory",
                "vcpus",
                "timeout",
                "prices",
                "scaling",
                "cold_start",
            ] {
                assert!(
                    keys.contains(field),
                    "{name}: no source for {field} in {keys}"
                );
            }
        }
        assert_eq!(
            notes("cloud-run")
                .builtin_concurrency
                .unwrap()
                .default_per_instance,
            80
        );
        assert_eq!(
            notes("azure-flex")
                .builtin_concurrency
                .unwrap()
                .default_per_instance,
            32
        );
        assert_eq!(notes("funcx-2021").builtin_concurrency, None);
        assert_eq!(notes("aws-2021"), PlatformNotes::default());
    }

    #[test]
    fn cloud_run_price_is_its_vcpu_and_memory_prices() {
        let p = PlatformProfile::load("cloud-run").unwrap();
        // 4 vCPU × $0.000024 + 8 GiB × $0.0000025 per second.
        assert!((p.price_per_instance_second() - 0.000_116).abs() < 1e-12);
        let a = PlatformProfile::load("azure-flex").unwrap();
        assert!((a.price_per_instance_second() - 4.0 * 0.000_026).abs() < 1e-12);
    }

    /// The artifact's funcX folder, when it is there.
    fn funcx_dir() -> Option<std::path::PathBuf> {
        let artifact = std::env::var_os("PROPACK_AWS_2021")
            .map(std::path::PathBuf::from)
            .unwrap_or_else(|| {
                Path::new(env!("CARGO_MANIFEST_DIR")).join("../../shared/propack-aws-2021")
            });
        let dir = artifact.join("funcX");
        if dir.is_dir() {
            Some(dir)
        } else {
            eprintln!(
                "SKIPPED: {} is absent (the ProPack artifact's funcX data; set PROPACK_AWS_2021)",
                dir.display()
            );
            None
        }
    }

    #[test]
    fn funcx_2021_is_the_fit_of_the_artifact() {
        let Some(dir) = funcx_dir() else { return };
        let fit = fit_funcx(&dir).unwrap();
        assert_eq!(fit.points, 33);
        assert_eq!(fit.workers, [1, 48, 96]);
        assert!((fit.interval_ms - 11.66).abs() < 0.01, "{fit:?}");
        assert!((fit.c1_median_ms - 202.8).abs() < 0.1, "{fit:?}");
        assert!((fit.c1_p90_ms - 2220.1).abs() < 0.1, "{fit:?}");
        let p = PlatformProfile::load("funcx-2021").unwrap();
        let crate::platform::Scaling::Interval { interval_ms } = p.scaling else {
            panic!("funcx-2021 scales by interval")
        };
        assert!((interval_ms - fit.interval_ms).abs() < 0.05);
        assert!((p.cold_start.median_ms - fit.c1_median_ms).abs() < 1.0);
        assert!((p.cold_start.p90_ms - fit.c1_p90_ms).abs() < 1.0);
        let scale = read_funcx_scale_times(&dir).unwrap();
        assert_eq!(scale.len(), 11);
        assert_eq!(scale[0].0, 100);
        assert!((scale[10].1 - 194.83).abs() < 0.01);
    }

    #[test]
    fn funcx_2021_predicts_the_held_out_unpacked_runs() {
        let Some(dir) = funcx_dir() else { return };
        let v = validate_funcx(dir.parent().unwrap()).unwrap();
        let got: Vec<(u64, i64)> = v
            .points
            .iter()
            .map(|p| (p.tasks, p.error_pct.round() as i64))
            .collect();
        // Within a third at every C; too fast by about a quarter from C = 2500 on (the
        // measured time per 96-task wave grows with C, the profile's does not).
        assert_eq!(
            got,
            [
                (100, 31),
                (500, -22),
                (1000, 34),
                (1500, 1),
                (2000, 5),
                (2500, -15),
                (3000, -19),
                (3500, -21),
                (4000, -23),
                (4500, -24),
                (5000, -25)
            ]
        );
        assert!((v.median_abs_error_pct - 21.7).abs() < 0.1, "{v:#?}");
    }
}
