//! Reader of the ProPack artifact's AWS 2021 measurements (`../shared/propack-aws-2021`): discovery, scaling and packing profiles, and the packed validation runs.
//!
//! Layout (see that directory's README): `scaling_performance/<app>/` (k = 1
//! runs: `scale_time.txt`, `service_time.txt`, `response-concurrency<C>.txt`),
//! `packed_performance/<app>/` (`parallel.txt` + `service_time.txt`, and an
//! earlier repeat `service_time_old.txt`), and
//! `propack_performance/<objective>/<app>/<metric>/` (`final_output_<C>_{1,optima}.txt`
//! and `response_<metric>_<C>_{1,optima}.txt`). The k of an `_optima` run is
//! derived from its response file: n = ⌊C/k⌋ lines, so k = ⌊C/n⌋ (the largest
//! k consistent with n), never from the authors' scripts.

use std::collections::BTreeSet;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

use super::ModelError;
use super::profile::{
    AppProfile, InstanceSample, PROFILE_SCHEMA_VERSION, PackingProfile, PackingSample,
    ScalingProfile, ScalingRun,
};

/// Platform the artifact measured on (matches [`crate::platform::PlatformProfile::aws_2021`]).
pub const ARTIFACT_PLATFORM: &str = "aws-2021";
/// Function memory of the artifact's measurements, MB.
pub const ARTIFACT_MEMORY_MB: u32 = 10_240;
/// vCPUs at that memory.
pub const ARTIFACT_VCPUS: u32 = 6;

const SCALING: &str = "scaling_performance";
const PACKED: &str = "packed_performance";
const PROPACK: &str = "propack_performance";

fn io(path: &Path) -> impl FnOnce(std::io::Error) -> ModelError + '_ {
    move |source| ModelError::Io {
        path: path.display().to_string(),
        source,
    }
}

fn subdirs(dir: &Path) -> Vec<String> {
    let Ok(rd) = std::fs::read_dir(dir) else {
        return Vec::new();
    };
    let mut v: Vec<String> = rd
        .filter_map(Result::ok)
        .filter(|e| e.file_type().is_ok_and(|t| t.is_dir()))
        .filter_map(|e| e.file_name().into_string().ok())
        .collect();
    v.sort();
    v
}

/// Every app named under `scaling_performance`, `packed_performance` or `propack_performance/<objective>`.
pub fn discover_apps(dir: &Path) -> Result<Vec<String>, ModelError> {
    if !dir.is_dir() {
        return Err(ModelError::Invalid(format!(
            "{} is not a directory",
            dir.display()
        )));
    }
    let mut apps = BTreeSet::new();
    apps.extend(subdirs(&dir.join(SCALING)));
    apps.extend(subdirs(&dir.join(PACKED)));
    for objective in subdirs(&dir.join(PROPACK)) {
        apps.extend(subdirs(&dir.join(PROPACK).join(objective)));
    }
    if apps.is_empty() {
        return Err(ModelError::Invalid(format!(
            "{} has no apps under {SCALING}, {PACKED} or {PROPACK}",
            dir.display()
        )));
    }
    Ok(apps.into_iter().collect())
}

/// Numbers, one per non-empty line.
fn read_numbers(path: &Path) -> Result<Vec<f64>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            l.trim().parse::<f64>().map_err(|e| ModelError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                message: format!("not a number ({e}): {l:?}"),
            })
        })
        .collect()
}

/// `[start_epoch, end_epoch]` pairs, one per non-empty line, in file (launch) order.
pub fn read_response(path: &Path) -> Result<Vec<(f64, f64)>, ModelError> {
    let text = std::fs::read_to_string(path).map_err(io(path))?;
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.trim().is_empty())
        .map(|(i, l)| {
            let bad = |m: &str| ModelError::Parse {
                path: path.display().to_string(),
                line: i + 1,
                message: format!("{m}: {l:?}"),
            };
            let inner = l.trim().trim_start_matches('[').trim_end_matches(']');
            let mut it = inner.split(',').map(|s| s.trim().parse::<f64>());
            match (it.next(), it.next(), it.next()) {
                (Some(Ok(s)), Some(Ok(e)), None) => Ok((s, e)),
                _ => Err(bad("expected [start_epoch, end_epoch]")),
            }
        })
        .collect()
}

/// The k = 1 scaling runs of `app`.
pub fn read_scaling(dir: &Path, app: &str) -> Result<ScalingProfile, ModelError> {
    let d = dir.join(SCALING).join(app);
    let mut cs: Vec<u64> = std::fs::read_dir(&d)
        .map_err(io(&d))?
        .filter_map(Result::ok)
        .filter_map(|e| {
            let name = e.file_name().into_string().ok()?;
            name.strip_prefix("response-concurrency")?
                .strip_suffix(".txt")?
                .parse()
                .ok()
        })
        .collect();
    cs.sort_unstable();
    if cs.is_empty() {
        return Err(ModelError::Invalid(format!(
            "{} has no response-concurrency<C>.txt",
            d.display()
        )));
    }
    // One line per C in ascending order; only trusted when the counts agree.
    let per_c = |file: &str| -> Option<Vec<f64>> {
        read_numbers(&d.join(file))
            .ok()
            .filter(|v| v.len() == cs.len())
    };
    let scale = per_c("scale_time.txt");
    let service = per_c("service_time.txt");
    let mut runs = Vec::new();
    for (j, &c) in cs.iter().enumerate() {
        let pairs = read_response(&d.join(format!("response-concurrency{c}.txt")))?;
        let Some(&(first, _)) = pairs.first() else {
            continue;
        };
        runs.push(ScalingRun {
            concurrency: c,
            scale_time_s: scale.as_ref().map(|v| v[j]),
            service_time_s: service.as_ref().map(|v| v[j]),
            instances: pairs
                .iter()
                .map(|&(s, e)| InstanceSample {
                    start_s: s - first,
                    duration_s: (e - s).max(0.0),
                })
                .collect(),
        });
    }
    Ok(ScalingProfile {
        schema_version: PROFILE_SCHEMA_VERSION,
        app: app.to_owned(),
        platform: ARTIFACT_PLATFORM.to_owned(),
        runs,
    })
}

/// The single-instance packing measurements of `app` (`service_time_old.txt` adds repeats).
pub fn read_packing(dir: &Path, app: &str) -> Result<PackingProfile, ModelError> {
    let d = dir.join(PACKED).join(app);
    let ks = read_numbers(&d.join("parallel.txt"))?;
    let mut samples: Vec<PackingSample> = Vec::new();
    for file in ["service_time.txt", "service_time_old.txt"] {
        let path = d.join(file);
        if file != "service_time.txt" && !path.exists() {
            continue;
        }
        let times = read_numbers(&path)?;
        if times.len() != ks.len() {
            return Err(ModelError::Invalid(format!(
                "{} has {} lines but parallel.txt has {}",
                path.display(),
                times.len(),
                ks.len()
            )));
        }
        for (&k, &t) in ks.iter().zip(&times) {
            let k = k as u64;
            match samples.iter_mut().find(|s| s.k == k) {
                Some(s) => s.seconds.push(t),
                None => samples.push(PackingSample {
                    k,
                    seconds: vec![t],
                    cpu_seconds: Vec::new(),
                }),
            }
        }
    }
    samples.sort_by_key(|s| s.k);
    Ok(PackingProfile {
        schema_version: PROFILE_SCHEMA_VERSION,
        app: app.to_owned(),
        memory_mb: ARTIFACT_MEMORY_MB,
        vcpus: ARTIFACT_VCPUS,
        samples,
    })
}

/// The profile `orchestrator profile import` writes: scaling + packing + a default workload.
pub fn import(dir: &Path, app: &str) -> Result<AppProfile, ModelError> {
    let scaling = read_scaling(dir, app)?;
    let packing = read_packing(dir, app)?;
    let tasks = scaling
        .runs
        .iter()
        .map(|r| r.concurrency)
        .max()
        .unwrap_or(1);
    let profile = AppProfile::from_measurements(app, scaling, packing, tasks);
    profile.validate()?;
    Ok(profile)
}

/// One measured run of `propack_performance`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PropackRun {
    /// `time`, `cost` or `both`.
    pub objective: String,
    /// App.
    pub app: String,
    /// `net`, `tail` or `median` as in the layout.
    pub metric: String,
    /// Tasks C.
    pub concurrency: u64,
    /// `_optima` (true) or `_1` (false).
    pub packed: bool,
    /// Instances (lines of the response file).
    pub instances: u64,
    /// Packing degree: 1 for `_1`, ⌊C/n⌋ for `_optima`.
    pub k: u64,
    /// Measured scale time, s.
    pub scale_s: f64,
    /// Measured service time of the metric, s.
    pub service_s: f64,
    /// Measured cost, USD.
    pub cost_usd: f64,
    /// The final_output file.
    pub path: PathBuf,
}

/// Every complete run (final_output and response both present) of `app` in `propack_performance`.
pub fn read_propack_runs(dir: &Path, app: &str) -> Result<Vec<PropackRun>, ModelError> {
    let mut out = Vec::new();
    let root = dir.join(PROPACK);
    for objective in subdirs(&root) {
        let app_dir = root.join(&objective).join(app);
        for metric in subdirs(&app_dir) {
            let md = app_dir.join(&metric);
            let mut names: Vec<String> = std::fs::read_dir(&md)
                .map_err(io(&md))?
                .filter_map(Result::ok)
                .filter_map(|e| e.file_name().into_string().ok())
                .filter(|n| n.starts_with("final_output_"))
                .collect();
            names.sort();
            for name in names {
                let Some(rest) = name
                    .strip_prefix("final_output_")
                    .and_then(|r| r.strip_suffix(".txt"))
                else {
                    continue;
                };
                let Some((c, suffix)) = rest.split_once('_') else {
                    continue;
                };
                let (Ok(c), packed) = (c.parse::<u64>(), suffix == "optima") else {
                    continue;
                };
                if !(packed || suffix == "1") {
                    continue;
                }
                let response = md.join(format!("response_{metric}_{c}_{suffix}.txt"));
                if !response.exists() {
                    continue;
                }
                let n = read_response(&response)?.len() as u64;
                let path = md.join(&name);
                let v = read_numbers(&path)?;
                if v.len() < 3 || n == 0 {
                    return Err(ModelError::Invalid(format!(
                        "{}: expected scale, service and cost lines and a non-empty response file",
                        path.display()
                    )));
                }
                out.push(PropackRun {
                    objective: objective.clone(),
                    app: app.to_owned(),
                    metric: metric.clone(),
                    concurrency: c,
                    packed,
                    instances: n,
                    k: if packed { (c / n).max(1) } else { 1 },
                    scale_s: v[0],
                    service_s: v[1],
                    cost_usd: v[2],
                    path,
                });
            }
        }
    }
    Ok(out)
}

/// Writes `lines` (one per line) to `path`, creating its directory.
fn write_lines(path: &Path, lines: impl IntoIterator<Item = String>) -> Result<(), ModelError> {
    if let Some(dir) = path.parent() {
        std::fs::create_dir_all(dir).map_err(io(dir))?;
    }
    let text: String = lines.into_iter().map(|l| l + "\n").collect();
    std::fs::write(path, text).map_err(io(path))
}

/// Writes measured scaling runs in the artifact's layout under `out`:
/// `scaling_performance/<app>/{scale_time.txt, service_time.txt, response-concurrency<C>.txt}`,
/// where each run comes with the epoch (start, end) seconds of its instances. Returns the directory.
pub fn write_scaling(
    out: &Path,
    app: &str,
    runs: &[(ScalingRun, Vec<(f64, f64)>)],
) -> Result<PathBuf, ModelError> {
    let dir = out.join(SCALING).join(app);
    for (run, epochs) in runs {
        write_lines(
            &dir.join(format!("response-concurrency{}.txt", run.concurrency)),
            epochs.iter().map(|(s, e)| format!("[{s}, {e}]")),
        )?;
    }
    let column = |f: fn(&ScalingRun) -> Option<f64>| {
        runs.iter()
            .map(move |(r, _)| f(r).unwrap_or(0.0).to_string())
    };
    write_lines(&dir.join("scale_time.txt"), column(|r| r.scale_time_s))?;
    write_lines(&dir.join("service_time.txt"), column(|r| r.service_time_s))?;
    Ok(dir)
}

/// Writes packing samples in the artifact's layout under `out`:
/// `packed_performance/<app>/{parallel.txt, service_time.txt}` (mean seconds per k). Returns the directory.
pub fn write_packing(
    out: &Path,
    app: &str,
    samples: &[PackingSample],
) -> Result<PathBuf, ModelError> {
    let dir = out.join(PACKED).join(app);
    write_lines(
        &dir.join("parallel.txt"),
        samples.iter().map(|s| s.k.to_string()),
    )?;
    write_lines(
        &dir.join("service_time.txt"),
        samples
            .iter()
            .map(|s| (s.seconds.iter().sum::<f64>() / s.seconds.len().max(1) as f64).to_string()),
    )?;
    Ok(dir)
}

#[cfg(test)]
pub(crate) mod tests {
    use super::*;

    /// Writes a tiny artifact-shaped directory: app `mini` with two scaling runs,
    /// three packing samples and one propack run pair.
    pub(crate) fn write_mini(dir: &Path) {
        let s = dir.join(SCALING).join("mini");
        std::fs::create_dir_all(&s).unwrap();
        std::fs::write(s.join("scale_time.txt"), "1.0\n5.0\n").unwrap();
        std::fs::write(s.join("service_time.txt"), "3.95\n7.95\n").unwrap();
        for (c, n) in [(20u64, 20usize), (100, 100)] {
            let lines: String = (0..n)
                .map(|i| {
                    format!(
                        "[{}, {}]\n",
                        1000.0 + 0.05 * i as f64,
                        1001.0 + 0.05 * i as f64
                    )
                })
                .collect();
            std::fs::write(s.join(format!("response-concurrency{c}.txt")), lines).unwrap();
        }
        let p = dir.join(PACKED).join("mini");
        std::fs::create_dir_all(&p).unwrap();
        std::fs::write(p.join("parallel.txt"), "4\n2\n1\n").unwrap();
        std::fs::write(p.join("service_time.txt"), "3.0\n2.0\n1.5\n").unwrap();
        let r = dir.join(PROPACK).join("time").join("mini").join("net");
        std::fs::create_dir_all(&r).unwrap();
        std::fs::write(r.join("final_output_100_1.txt"), "7.0\n8.0\n0.1\n").unwrap();
        std::fs::write(r.join("final_output_100_optima.txt"), "3.0\n5.5\n0.1\n").unwrap();
        let lines =
            |n: usize| -> String { (0..n).map(|i| format!("[{i}.0, {}.5]\n", i + 1)).collect() };
        std::fs::write(r.join("response_net_100_1.txt"), lines(100)).unwrap();
        // 33 lines: ⌊100/k⌋ = 33 → k = 3.
        std::fs::write(r.join("response_net_100_optima.txt"), lines(33)).unwrap();
        // A run without its response file is skipped.
        std::fs::write(r.join("final_output_500_1.txt"), "1\n2\n3\n").unwrap();
        // An app only present under propack_performance is still discovered.
        std::fs::create_dir_all(dir.join(PROPACK).join("cost").join("other")).unwrap();
    }

    #[test]
    fn discovers_and_reads_the_layout() {
        let d = tempfile::tempdir().unwrap();
        write_mini(d.path());
        assert_eq!(discover_apps(d.path()).unwrap(), vec!["mini", "other"]);
        let p = import(d.path(), "mini").unwrap();
        assert_eq!(p.scaling.runs.len(), 2);
        assert_eq!(p.scaling.runs[1].concurrency, 100);
        assert_eq!(p.scaling.runs[1].scale_time_s, Some(5.0));
        assert!((p.scaling.runs[1].instances[99].start_s - 4.95).abs() < 1e-9);
        assert!((p.scaling.runs[1].instances[3].duration_s - 1.0).abs() < 1e-9);
        assert_eq!(
            p.packing.samples.iter().map(|s| s.k).collect::<Vec<_>>(),
            vec![1, 2, 4]
        );
        let runs = read_propack_runs(d.path(), "mini").unwrap();
        assert_eq!(runs.len(), 2);
        let opt = runs.iter().find(|r| r.packed).unwrap();
        assert_eq!((opt.k, opt.instances, opt.concurrency), (3, 33, 100));
        assert_eq!(opt.service_s, 5.5);
        assert!(runs.iter().any(|r| !r.packed && r.k == 1));
    }

    #[test]
    fn malformed_lines_are_located() {
        let d = tempfile::tempdir().unwrap();
        let f = d.path().join("r.txt");
        std::fs::write(&f, "[1, 2]\n[3; 4]\n").unwrap();
        let e = read_response(&f).unwrap_err().to_string();
        assert!(e.contains("r.txt:2"), "{e}");
        assert!(discover_apps(&d.path().join("missing")).is_err());
    }
}
