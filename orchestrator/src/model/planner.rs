//! The optimiser: the k in 1..=kmax that minimises time, cost or a weighted mix, subject to the platform's and workload's limits.

use serde::{Deserialize, Serialize};

use super::{Model, ModelError, Prediction};

/// Default weight of expense in [`Objective::Both`] (the paper's).
pub const DEFAULT_W_COST: f64 = 0.55;
/// Default weight of time in [`Objective::Both`] (the paper's).
pub const DEFAULT_W_TIME: f64 = 0.45;

/// What to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Objective {
    /// Service time of the metric.
    Time,
    /// Expense.
    Cost,
    /// `w_cost · (E/E_min − 1) + w_time · (T/T_min − 1)` over the feasible k (normalised excess).
    Both {
        /// Weight of expense.
        w_cost: f64,
        /// Weight of time.
        w_time: f64,
    },
}

impl Objective {
    /// Short name for keys and tables: `time`, `cost` or `both`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Time => "time",
            Self::Cost => "cost",
            Self::Both { .. } => "both",
        }
    }
}

/// Which service time counts.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub enum Metric {
    /// Last task done.
    Total,
    /// Tail quantile of tasks done.
    Tail,
    /// Half of the tasks done.
    Median,
}

impl Metric {
    /// Short name: `total`, `tail`, `median`.
    pub fn name(&self) -> &'static str {
        match self {
            Self::Total => "total",
            Self::Tail => "tail",
            Self::Median => "median",
        }
    }
}

impl Prediction {
    /// The service time of `metric`.
    pub fn metric(&self, metric: Metric) -> f64 {
        match metric {
            Metric::Total => self.total_s,
            Metric::Tail => self.tail_s,
            Metric::Median => self.median_s,
        }
    }
}

/// What to plan.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlanRequest {
    /// Tasks C.
    pub tasks: u64,
    /// What to minimise.
    pub objective: Objective,
    /// Which service time.
    pub metric: Metric,
    /// Largest k considered (capped at C).
    pub kmax: u64,
    /// Memory one task needs, MB.
    #[serde(default)]
    pub memory_mb_per_task: f64,
    /// /tmp one task needs, MB.
    #[serde(default)]
    pub tmp_mb_per_task: f64,
    /// Bytes of one task in the batch payload.
    #[serde(default)]
    pub payload_bytes_per_task: u64,
}

/// Why a k cannot be used.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "constraint", rename_all = "snake_case")]
pub enum Infeasibility {
    /// k tasks need more memory than an instance has.
    Memory {
        /// MB needed.
        need_mb: f64,
        /// MB per instance.
        limit_mb: u32,
    },
    /// k tasks need more /tmp than an instance has.
    Tmp {
        /// MB needed.
        need_mb: f64,
        /// MB per instance.
        limit_mb: u32,
    },
    /// The instance would run past the function timeout.
    Timeout {
        /// Predicted instance duration, s.
        need_s: f64,
        /// Timeout, s.
        limit_s: f64,
    },
    /// The batch payload exceeds the per-batch limit (256 KB on Step Functions).
    Payload {
        /// Bytes of one batch.
        need_bytes: u64,
        /// Limit.
        limit_bytes: u64,
    },
}

impl std::fmt::Display for Infeasibility {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Self::Memory { need_mb, limit_mb } => {
                write!(
                    f,
                    "memory: needs {need_mb:.0} MB > {limit_mb} MB per instance"
                )
            }
            Self::Tmp { need_mb, limit_mb } => write!(
                f,
                "/tmp: needs {need_mb:.0} MB > {limit_mb} MB per instance"
            ),
            Self::Timeout { need_s, limit_s } => {
                write!(f, "timeout: runs {need_s:.1} s > {limit_s:.0} s")
            }
            Self::Payload {
                need_bytes,
                limit_bytes,
            } => write!(f, "payload: {need_bytes} bytes per batch > {limit_bytes}"),
        }
    }
}

/// One k of the curve.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct CurvePoint {
    /// Packing degree.
    pub k: u64,
    /// Predictions.
    pub prediction: Prediction,
    /// Whether every constraint holds.
    pub feasible: bool,
    /// The constraints that do not hold.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub infeasible: Vec<Infeasibility>,
    /// Objective score (lower is better; `None` when infeasible).
    pub score: Option<f64>,
}

/// The planner's answer.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Plan {
    /// The request.
    pub request: PlanRequest,
    /// Model that predicted.
    pub model: super::ModelKind,
    /// Platform name.
    pub platform: String,
    /// Chosen k.
    pub k: u64,
    /// Predictions at the chosen k.
    pub prediction: Prediction,
    /// Predictions at k = 1 (no packing).
    pub baseline: Prediction,
    /// Reduction of the metric's service time vs k = 1, percent.
    pub time_improvement_pct: f64,
    /// Reduction of the expense vs k = 1, percent.
    pub cost_improvement_pct: f64,
    /// Every k in 1..=kmax.
    pub curve: Vec<CurvePoint>,
    /// The k on the Pareto front of (service time, expense) among feasible k, ascending.
    pub pareto: Vec<u64>,
}

/// Constraints that do not hold for `k`.
fn check(model: &Model, req: &PlanRequest, k: u64, p: &Prediction) -> Vec<Infeasibility> {
    let plat = &model.platform;
    let mut out = Vec::new();
    let mem = req.memory_mb_per_task * k as f64;
    if mem > f64::from(plat.memory_mb) {
        out.push(Infeasibility::Memory {
            need_mb: mem,
            limit_mb: plat.memory_mb,
        });
    }
    let tmp = req.tmp_mb_per_task * k as f64;
    if tmp > f64::from(plat.tmp_mb) {
        out.push(Infeasibility::Tmp {
            need_mb: tmp,
            limit_mb: plat.tmp_mb,
        });
    }
    if p.instance_s > plat.timeout_s {
        out.push(Infeasibility::Timeout {
            need_s: p.instance_s,
            limit_s: plat.timeout_s,
        });
    }
    let bytes = req.payload_bytes_per_task.saturating_mul(k);
    if bytes > plat.max_payload_bytes {
        out.push(Infeasibility::Payload {
            need_bytes: bytes,
            limit_bytes: plat.max_payload_bytes,
        });
    }
    out
}

/// Chooses k for `req` with `model`: the feasible k with the lowest score
/// (ties: the smaller k, which launches more instances but risks less per instance).
pub fn plan(model: &Model, req: &PlanRequest) -> Result<Plan, ModelError> {
    if req.tasks == 0 {
        return Err(ModelError::Invalid("--tasks must be at least 1".into()));
    }
    if let Objective::Both { w_cost, w_time } = req.objective
        && !(w_cost >= 0.0 && w_time >= 0.0 && w_cost + w_time > 0.0)
    {
        return Err(ModelError::Invalid(
            "objective weights must be non-negative and not both 0".into(),
        ));
    }
    let kmax = req.kmax.clamp(1, req.tasks);
    let mut curve: Vec<CurvePoint> = (1..=kmax)
        .map(|k| {
            let prediction = model.predict(req.tasks, k);
            let infeasible = check(model, req, k, &prediction);
            CurvePoint {
                k,
                prediction,
                feasible: infeasible.is_empty(),
                infeasible,
                score: None,
            }
        })
        .collect();
    let t_min = curve
        .iter()
        .filter(|p| p.feasible)
        .map(|p| p.prediction.metric(req.metric))
        .fold(f64::INFINITY, f64::min);
    let e_min = curve
        .iter()
        .filter(|p| p.feasible)
        .map(|p| p.prediction.expense_usd)
        .fold(f64::INFINITY, f64::min);
    if !t_min.is_finite() {
        let reasons = curve[0]
            .infeasible
            .iter()
            .map(ToString::to_string)
            .collect::<Vec<_>>()
            .join("; ");
        return Err(ModelError::Infeasible { kmax, reasons });
    }
    let excess = |v: f64, min: f64| if min > 0.0 { v / min - 1.0 } else { v - min };
    for p in curve.iter_mut().filter(|p| p.feasible) {
        let t = p.prediction.metric(req.metric);
        let e = p.prediction.expense_usd;
        p.score = Some(match req.objective {
            Objective::Time => t,
            Objective::Cost => e,
            Objective::Both { w_cost, w_time } => {
                w_cost * excess(e, e_min) + w_time * excess(t, t_min)
            }
        });
    }
    let best = curve
        .iter()
        .filter_map(|p| p.score.map(|s| (s, p)))
        .min_by(|a, b| a.0.total_cmp(&b.0).then(a.1.k.cmp(&b.1.k)))
        .map(|(_, p)| p.clone())
        .expect("at least one feasible k");

    // Pareto front: sweep by time ascending, keep strictly cheaper points.
    let mut pts: Vec<(f64, f64, u64)> = curve
        .iter()
        .filter(|p| p.feasible)
        .map(|p| {
            (
                p.prediction.metric(req.metric),
                p.prediction.expense_usd,
                p.k,
            )
        })
        .collect();
    pts.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.total_cmp(&b.1)));
    let mut pareto = Vec::new();
    let mut cheapest = f64::INFINITY;
    for (_, e, k) in pts {
        if e < cheapest {
            cheapest = e;
            pareto.push(k);
        }
    }
    pareto.sort_unstable();

    let baseline = curve[0].prediction;
    let pct = |base: f64, new: f64| {
        if base > 0.0 {
            (base - new) / base * 100.0
        } else {
            0.0
        }
    };
    Ok(Plan {
        request: req.clone(),
        model: model.kind,
        platform: model.platform.name.clone(),
        k: best.k,
        prediction: best.prediction,
        baseline,
        time_improvement_pct: pct(
            baseline.metric(req.metric),
            best.prediction.metric(req.metric),
        ),
        cost_improvement_pct: pct(baseline.expense_usd, best.prediction.expense_usd),
        curve,
        pareto,
    })
}

#[cfg(test)]
mod tests {
    use super::super::{ModelKind, tests::synthetic_profile};
    use super::*;
    use crate::platform::PlatformProfile;

    fn model() -> Model {
        Model::new(
            &synthetic_profile(),
            PlatformProfile::aws_2021(),
            ModelKind::Propack,
        )
        .unwrap()
    }

    fn req(objective: Objective) -> PlanRequest {
        PlanRequest {
            tasks: 400,
            objective,
            metric: Metric::Total,
            kmax: 16,
            memory_mb_per_task: 100.0,
            tmp_mb_per_task: 0.0,
            payload_bytes_per_task: 100,
        }
    }

    /// Hand computation for the synthetic app (T0 = 2 s, 50 ms per instance,
    /// D(k) = 1 + 0.5 (k − 1) s, no spread), n = ⌈400/k⌉, the last batch holds the rest:
    /// total(k) = max(2 + 0.05 (n − 1) + D(rest), 2 + 0.05 (n − 2) + D(k)).
    /// k = 1: 2 + 19.95 + 1 = 22.95; k = 5: 2 + 3.95 + 3 = 8.95; k = 6 (n = 67, rest 4):
    /// max(2 + 3.3 + 2.5, 2 + 3.25 + 3.5) = 8.75; k = 7 (n = 58, rest 1): max(5.85, 2 + 2.8 + 4) = 8.8;
    /// k = 8: 2 + 2.45 + 4.5 = 8.95 → time picks k = 6.
    /// Billed time (n − 1) D(k) + D(rest) falls with k (D(k)/k = 0.5 + 0.5/k), and so do
    /// requests and transitions → cost picks the largest k, 16 (25 × 8.5 = 212.5 s).
    #[test]
    fn time_and_cost_prefer_different_k() {
        let m = model();
        let t = plan(&m, &req(Objective::Time)).unwrap();
        assert_eq!(t.k, 6, "{:?}", t.prediction);
        assert!((t.prediction.total_s - 8.75).abs() < 1e-6);
        assert!((t.baseline.total_s - 22.95).abs() < 1e-6);
        assert!((t.time_improvement_pct - (22.95 - 8.75) / 22.95 * 100.0).abs() < 1e-6);
        let c = plan(&m, &req(Objective::Cost)).unwrap();
        assert_eq!(c.k, 16);
        assert!((c.prediction.billed_instance_s - 212.5).abs() < 1e-6);
        assert_ne!(c.k, t.k);
        // Both lies on the Pareto front, between the two.
        let b = plan(
            &m,
            &req(Objective::Both {
                w_cost: DEFAULT_W_COST,
                w_time: DEFAULT_W_TIME,
            }),
        )
        .unwrap();
        // k = 8 minimises 0.55 (E/E_min − 1) + 0.45 (T/T_min − 1) (see strength_tests).
        assert_eq!(b.k, 8);
        assert!(b.pareto.contains(&b.k));
        // Pareto front: from the fastest (6) to the cheapest (16), nothing dominated.
        assert_eq!(b.pareto.first(), Some(&6));
        assert_eq!(b.pareto.last(), Some(&16));
        assert_eq!(t.curve.len(), 16);
    }

    #[test]
    fn memory_limits_k_and_infeasible_memory_is_reported() {
        let m = model();
        let mut r = req(Objective::Cost);
        r.memory_mb_per_task = 2048.0; // 10,240 MB per instance: k <= 5.
        let p = plan(&m, &r).unwrap();
        assert_eq!(p.k, 5);
        let six = &p.curve[5];
        assert!(!six.feasible);
        assert!(matches!(
            six.infeasible[0],
            Infeasibility::Memory {
                limit_mb: 10_240,
                ..
            }
        ));
        assert!(!p.pareto.contains(&6));
        r.memory_mb_per_task = 20_000.0;
        let e = plan(&m, &r).unwrap_err().to_string();
        assert!(
            e.contains("no feasible packing degree") && e.contains("memory"),
            "{e}"
        );
    }

    #[test]
    fn payload_and_timeout_constraints() {
        let mut plat = PlatformProfile::aws_2021();
        plat.timeout_s = 4.0; // D(k) = 0.5 + 0.5 k <= 4 → k <= 7.
        let m = Model::new(&synthetic_profile(), plat, ModelKind::Propack).unwrap();
        let mut r = req(Objective::Cost);
        r.payload_bytes_per_task = 50_000; // 262,144 bytes → k <= 5.
        let p = plan(&m, &r).unwrap();
        assert_eq!(p.k, 5);
        assert!(
            p.curve[7]
                .infeasible
                .iter()
                .any(|i| matches!(i, Infeasibility::Timeout { .. }))
        );
        assert!(
            p.curve[5]
                .infeasible
                .iter()
                .any(|i| matches!(i, Infeasibility::Payload { .. }))
        );
        assert!(p.curve[5].infeasible[0].to_string().contains("payload"));
    }
}
