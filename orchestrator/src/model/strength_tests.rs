//! Tests that pin the model's and planner's computed values by hand (issue 19: each catches a mutation the older tests let through).

use super::planner::{
    DEFAULT_W_COST, DEFAULT_W_TIME, Infeasibility, Metric, Objective, PlanRequest, plan,
};
use super::tests::synthetic_profile;
use super::{Model, ModelKind, z_of_max};
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
        // The hand-computed values are at the profile's memory (the planner's search of
        // memory has its own tests).
        memory_mb: Some(PlatformProfile::aws_2021().memory_mb),
    }
}

fn close(got: f64, want: f64) {
    assert!((got - want).abs() < 1e-6, "{got} vs {want}");
}

/// `z_of_max(n) = l − (ln ln n + ln 4π) / 2l` with `l = √(2 ln n)`, 0 below two.
#[test]
fn expected_maximum_rank_by_hand() {
    close(z_of_max(0.0), 0.0);
    close(z_of_max(1.0), 0.0);
    // Two is the first n with a maximum: l = √(2 ln 2) = 1.177410, so
    // 1.177410 − (ln ln 2 + ln 4π) / 2.354820 = 0.258227.
    close(z_of_max(2.0), 0.258_226_694_3);
    // n = 51: ln 51 = 3.931826, l = 2.804220, (ln 3.931826 + ln 12.566371) / 5.608440 = 0.695404.
    close(z_of_max(51.0), 2.108_816_949_6);
    close(z_of_max(100.0), 2.366_254_792_9);
    close(z_of_max(1000.0), 3.116_469_885_3);
}

/// The straggler allowance on a profile whose k = 1 durations spread (p90 = 2 × median):
/// σ = ln 2 / z₀.₉ = 0.540866, shrunk by √4 for k = 4 to 0.270433. On aws-2021 (measured
/// arrivals, 50 ms per instance) an instance of D = 2.5 s competes with the 2.5 / 0.05 + 1
/// = 51 instances that start within one duration of the end, so the allowance is
/// 2.5 · (exp(0.270433 · 2.108817) − 1) = 1.921964 s on top of the spread-free 9.45 s.
#[test]
fn straggler_allowance_by_hand() {
    let mut m = model();
    m.scaling.duration_p90_s = 2.0 * m.scaling.duration_median_s;
    close(m.scaling.duration_median_s, 1.0);
    close(m.scaling.slope_s_per_instance, 0.05);
    let p = m.predict(400, 4);
    close(p.instance_s, 2.5);
    close(p.scale_s, 2.0 + 4.95);
    close(p.total_s, 2.0 + 4.95 + 2.5 + 1.921_964_366_2);
    // The allowance is only in the total; median and instance ends do not move.
    close(p.median_s, 2.0 + 2.5 + 2.5);
    close(m.instance_end_s(100, 99, 4), 2.0 + 4.95 + 2.5);
    // The paper's model has no allowance.
    let mut paper = Model::new(
        &synthetic_profile(),
        PlatformProfile::aws_2021(),
        ModelKind::Paper,
    )
    .unwrap();
    paper.scaling.duration_p90_s = 2.0;
    close(paper.predict(400, 1).total_s, 21.5);
}

/// Waves are ⌈n / A⌉: 95 instances under a limit of 10 need 10 waves, 100 need 10,
/// 101 need 11, and fewer instances than the limit run in one.
#[test]
fn account_limit_waves_round_up() {
    let mut plat = PlatformProfile::aws_2021();
    plat.account_concurrency_limit = Some(10);
    let m = Model::new(&synthetic_profile(), plat.clone(), ModelKind::Propack).unwrap();
    for (c, want) in [(95, 10), (100, 10), (101, 11), (5, 1), (10, 1), (1, 1)] {
        assert_eq!(m.predict(c, 1).waves, want, "C = {c}");
    }
    // The paper's model ignores the limit; without a limit there is one wave.
    let paper = Model::new(&synthetic_profile(), plat, ModelKind::Paper).unwrap();
    assert_eq!(paper.predict(95, 1).waves, 1);
    assert_eq!(model().predict(95, 1).waves, 1);
}

/// Beyond the measured concurrency (400) the arrival curve extrapolates linearly:
/// the last of n instances starts at T0 + 0.05 (n − 1).
#[test]
fn extrapolated_scale_time_by_hand() {
    let m = model();
    close(m.predict(50_000, 1).scale_s, 2.0 + 0.05 * 49_999.0);
    close(m.predict(100_000, 1).scale_s, 2.0 + 0.05 * 99_999.0);
}

/// /tmp is checked against the instance's /tmp (512 MB on aws-2021), not its memory
/// (10,240 MB): at 100 MB per task k ≤ 5, and k = 6 is refused for /tmp alone.
#[test]
fn tmp_limits_k_against_the_tmp_size() {
    let m = model();
    let mut r = req(Objective::Cost);
    r.tmp_mb_per_task = 100.0;
    let p = plan(&m, &r).unwrap();
    assert_eq!(p.k, 5);
    assert!(p.curve[4].feasible);
    assert_eq!(
        p.curve[5].infeasible,
        [Infeasibility::Tmp {
            need_mb: 600.0,
            limit_mb: 512
        }]
    );
    assert_eq!(
        p.curve[5].infeasible[0].to_string(),
        "/tmp: needs 600 MB > 512 MB per instance"
    );
    assert_eq!(p.pareto.last(), Some(&5));
}

/// `both` with weights 1/0 is `cost` and 0/1 is `time` (so swapped weights show), and the
/// default 0.55/0.45 score is the normalised excess over the feasible minima.
#[test]
fn both_objective_weights_by_hand() {
    let m = model();
    let time = plan(&m, &req(Objective::Time)).unwrap();
    let cost = plan(&m, &req(Objective::Cost)).unwrap();
    assert_eq!((time.k, cost.k), (6, 16));
    let only = |w_cost: f64, w_time: f64| {
        plan(&m, &req(Objective::Both { w_cost, w_time }))
            .unwrap()
            .k
    };
    assert_eq!(only(1.0, 0.0), 16);
    assert_eq!(only(0.0, 1.0), 6);

    let b = plan(
        &m,
        &req(Objective::Both {
            w_cost: DEFAULT_W_COST,
            w_time: DEFAULT_W_TIME,
        }),
    )
    .unwrap();
    // Minima: time 8.75 s at k = 6 (see the planner's tests), expense at k = 16.
    let e_min = cost.prediction.expense_usd;
    let score = |k: usize| {
        let p = &b.curve[k - 1].prediction;
        0.55 * (p.expense_usd / e_min - 1.0) + 0.45 * (p.total_s / 8.75 - 1.0)
    };
    for k in 1..=16 {
        close(b.curve[k - 1].score.unwrap(), score(k));
    }
    assert_eq!(b.k, BOTH_K);
    assert!((1..=16).all(|k| score(BOTH_K as usize) <= score(k)));
}

/// The k the default `both` weights choose for the synthetic app: the minimum of the
/// scores above (between the fastest k = 6 and the cheapest k = 16).
const BOTH_K: u64 = 8;

/// The short names are plan-store keys and table labels.
#[test]
fn objective_and_metric_names() {
    let both = Objective::Both {
        w_cost: 0.5,
        w_time: 0.5,
    };
    assert_eq!(
        [Objective::Time.name(), Objective::Cost.name(), both.name()],
        ["time", "cost", "both"]
    );
    assert_eq!(
        [
            Metric::Total.name(),
            Metric::Tail.name(),
            Metric::Median.name()
        ],
        ["total", "tail", "median"]
    );
}

/// Every constraint admits a k that needs exactly the limit and refuses the next one.
#[test]
fn constraints_are_inclusive_at_their_limits() {
    let base = model();
    let mut plat = base.platform.clone();
    // Timeout: exactly D(7) (predicted with the same arithmetic the planner uses).
    plat.timeout_s = base.instance_duration_s(7);
    let m = Model::new(&synthetic_profile(), plat.clone(), ModelKind::Propack).unwrap();
    let mut r = req(Objective::Cost);
    // Memory: 2,048 MB × 5 is exactly the instance's 10,240 MB.
    r.memory_mb_per_task = f64::from(plat.memory_mb) / 5.0;
    let p = plan(&m, &r).unwrap();
    assert!(p.curve[4].feasible, "{:?}", p.curve[4].infeasible);
    assert!(matches!(
        p.curve[5].infeasible[..],
        [Infeasibility::Memory { .. }]
    ));

    let mut r = req(Objective::Cost);
    r.tmp_mb_per_task = f64::from(plat.tmp_mb) / 4.0;
    let p = plan(&m, &r).unwrap();
    assert!(p.curve[3].feasible, "{:?}", p.curve[3].infeasible);
    assert!(matches!(
        p.curve[4].infeasible[..],
        [Infeasibility::Tmp { .. }]
    ));

    let mut r = req(Objective::Cost);
    r.payload_bytes_per_task = plat.max_payload_bytes / 4;
    assert_eq!(r.payload_bytes_per_task * 4, plat.max_payload_bytes);
    let p = plan(&m, &r).unwrap();
    assert!(p.curve[3].feasible, "{:?}", p.curve[3].infeasible);
    assert!(matches!(
        p.curve[4].infeasible[..],
        [Infeasibility::Payload { .. }]
    ));

    let p = plan(&m, &req(Objective::Cost)).unwrap();
    assert!(p.curve[6].feasible, "{:?}", p.curve[6].infeasible);
    assert!(matches!(
        p.curve[7].infeasible[..],
        [Infeasibility::Timeout { .. }]
    ));
    assert_eq!(p.k, 7);
}

/// Weights must be non-negative and not both zero; C must be at least 1.
#[test]
fn invalid_requests_are_refused() {
    let m = model();
    for (w_cost, w_time) in [(-0.1, 1.0), (1.0, -0.1), (0.0, 0.0)] {
        let e = plan(&m, &req(Objective::Both { w_cost, w_time })).unwrap_err();
        assert!(
            e.to_string().contains("non-negative"),
            "{w_cost}/{w_time}: {e}"
        );
    }
    let mut r = req(Objective::Time);
    r.tasks = 0;
    assert!(plan(&m, &r).unwrap_err().to_string().contains("at least 1"));
}

/// The model names the CLI accepts, and nothing else.
#[test]
fn model_kind_parses_its_names() {
    assert_eq!("propack".parse::<ModelKind>().unwrap(), ModelKind::Propack);
    assert_eq!("paper".parse::<ModelKind>().unwrap(), ModelKind::Paper);
    let e = "Paper".parse::<ModelKind>().unwrap_err().to_string();
    assert!(e.contains("unknown model \"Paper\""), "{e}");
}

/// The paper's model needs the scaling runs' scale times; the ProPack model does not.
/// Arrivals are the measured ones only on the platform the scaling runs were measured on.
#[test]
fn fitting_needs_scale_times_for_paper_and_measures_arrivals_on_their_platform() {
    let mut profile = synthetic_profile();
    for r in &mut profile.scaling.runs {
        r.scale_time_s = None;
    }
    let e = Model::new(&profile, PlatformProfile::aws_2021(), ModelKind::Paper).unwrap_err();
    assert!(e.to_string().contains("scale times"), "{e}");
    assert!(Model::new(&profile, PlatformProfile::aws_2021(), ModelKind::Propack).is_ok());
    assert!(model().measured_arrivals);
    let mut profile = synthetic_profile();
    profile.scaling.platform = String::new();
    let m = Model::new(&profile, PlatformProfile::aws_2021(), ModelKind::Propack).unwrap();
    assert!(!m.measured_arrivals);
    // Not measured: aws-2021's rule of 47 ms per instance from 0 plus its 250 ms cold
    // start, not the measured T0 = 2 s and 50 ms.
    close(m.predict(400, 4).scale_s, 0.047 * 99.0 + 0.25);
}

/// Environments a warm-reusing launch can use, `(ready_s, count)`: an Interval platform
/// (aws-2021: 47 ms) adds one per arrival, Unlimited all at once, both capped by the
/// account limit and n.
#[test]
fn environment_groups_by_hand() {
    let mut m = model();
    m.platform.account_concurrency_limit = Some(3);
    m.platform.cold_start.median_ms = 250.0;
    let g = m.environment_groups(10);
    assert_eq!(g.len(), 3);
    for (i, (ready, count)) in g.iter().enumerate() {
        close(*ready, 0.047 * i as f64 + 0.25);
        assert_eq!(*count, 1);
    }
    assert_eq!(m.environment_groups(2).len(), 2);
    m.platform.scaling = crate::platform::Scaling::Unlimited;
    assert_eq!(m.environment_groups(10), [(0.25, 3)]);
    assert_eq!(m.environment_groups(2), [(0.25, 2)]);
    m.platform.account_concurrency_limit = None;
    assert_eq!(m.environment_groups(7), [(0.25, 7)]);
}

/// Where the platform bills init, each new environment's first invocation pays the cold
/// start: 56 tasks at k = 7 on the small bucket are 8 invocations of 4 s on 3 environments,
/// so 8 · 4 + 3 · 0.5 = 33.5 billed seconds (32 where init is free).
#[test]
fn billed_init_counts_each_new_environment_once() {
    let mut plat = PlatformProfile::aws_today();
    plat.name = "bucket".into();
    plat.account_concurrency_limit = Some(3);
    plat.scaling = crate::platform::Scaling::TokenBucket {
        burst: 2,
        per_interval: 1,
        interval_s: 2.5,
    };
    plat.cold_start = crate::platform::DurationDist {
        median_ms: 500.0,
        p90_ms: 500.0,
    };
    plat.bills_init = true;
    let price = plat.price_per_instance_second();
    let m = Model::new(&synthetic_profile(), plat.clone(), ModelKind::Propack).unwrap();
    close(m.predict(56, 7).expense.compute_usd / price, 33.5);
    plat.bills_init = false;
    let m = Model::new(&synthetic_profile(), plat, ModelKind::Propack).unwrap();
    close(m.predict(56, 7).expense.compute_usd / price, 32.0);
    // Without reuse (aws-2021 bills no init) every invocation is its own environment:
    // 100 instances of 2.5 s.
    let m = model();
    let p = m.predict(400, 4);
    close(
        p.expense.compute_usd / m.platform.price_per_instance_second(),
        250.0,
    );
}

/// CPUs an instance keeps busy without measured CPU time: min(k, vCPUs), at least 0.001.
#[test]
fn cpu_demand_without_measurements_is_min_k_vcpus() {
    let m = model();
    close(m.cpu_demand(4, 2.0, 2.0), 2.0);
    close(m.cpu_demand(1, 2.0, 6.0), 1.0);
    close(m.cpu_demand(3, 0.0, 6.0), 3.0);
    close(m.cpu_demand(3, 1.0, 0.0), 1e-3);
}

/// Token-bucket environments by hand: a burst, then `per_interval` more every interval
/// (plus the cold start), the last group only what the account limit leaves.
#[test]
fn token_bucket_environment_groups_by_hand() {
    let mut m = model();
    m.measured_arrivals = false;
    m.platform.cold_start.median_ms = 500.0;
    m.platform.account_concurrency_limit = Some(3);
    m.platform.scaling = crate::platform::Scaling::TokenBucket {
        burst: 1,
        per_interval: 1,
        interval_s: 2.5,
    };
    assert_eq!(m.environment_groups(10), [(0.5, 1), (3.0, 1), (5.5, 1)]);
    m.platform.scaling = crate::platform::Scaling::TokenBucket {
        burst: 2,
        per_interval: 5,
        interval_s: 2.5,
    };
    assert_eq!(m.environment_groups(10), [(0.5, 2), (3.0, 1)]);
    // Warm reuse is the rule's only off measured arrivals and only for the ProPack model.
    assert!(m.warm_reuse());
    m.measured_arrivals = true;
    assert!(!m.warm_reuse());
    m.measured_arrivals = false;
    m.kind = ModelKind::Paper;
    assert!(!m.warm_reuse());
}

/// The last token-bucket group is what the account limit leaves when that is less than
/// a whole interval's worth: burst 3, 5 per interval, limit 10 → 3 + 5 + 2.
#[test]
fn token_bucket_last_group_is_what_the_limit_leaves() {
    let mut m = model();
    m.measured_arrivals = false;
    m.platform.cold_start.median_ms = 500.0;
    m.platform.account_concurrency_limit = Some(10);
    m.platform.scaling = crate::platform::Scaling::TokenBucket {
        burst: 3,
        per_interval: 5,
        interval_s: 2.5,
    };
    assert_eq!(m.environment_groups(50), [(0.5, 3), (3.0, 5), (5.5, 2)]);
    // Fewer invocations than the limit cap the groups instead.
    assert_eq!(m.environment_groups(4), [(0.5, 3), (3.0, 1)]);
}

/// An instance's duration at the profile's memory, by hand. k = 1 is the mean duration at
/// scale where the scaling runs measured one; otherwise (and for k > 1) the packing curve
/// less the invoke overhead, at least 5 % of the curve, stretched by 1 + the duration CV.
/// The synthetic profile's durations are all 1 s (CV 0, mean = P(1) − overhead), which
/// hides both rules; here they differ.
#[test]
fn instance_duration_at_the_profile_memory_by_hand() {
    let mut m = model();
    m.scaling.duration_mean_s = 1.2;
    m.scaling.duration_cv = 0.25;
    // P(k) = 1 + 0.5 k, overhead 0.5 s.
    close(m.instance_duration_s(1), 1.2);
    close(m.instance_duration_s(4), (3.0 - 0.5) * 1.25);
    m.scaling.duration_mean_s = 0.0;
    close(m.instance_duration_s(1), (1.5 - 0.5) * 1.25);
    // An overhead of nearly the whole curve leaves 5 % of it: 0.05 · P(4).
    m.invoke_overhead_s = 2.9;
    close(m.instance_duration_s(4), 0.05 * 3.0 * 1.25);
    // The paper model takes the curve as it is.
    m.kind = ModelKind::Paper;
    close(m.instance_duration_s(4), 3.0);
}

/// The model's spread: task durations log-normal with σ = 0.5 (median 1 s, p90 e^(0.5·z90)).
fn spread(m: &mut Model) {
    m.scaling.duration_median_s = 1.0;
    m.scaling.duration_p90_s = (0.5 * super::fit::Z90).exp();
    close(m.scaling.task_sigma(), 0.5);
}

/// A host of `cpus` shared by every instance, all starting at the 0.5 s cold start
/// (Unlimited scaling, warm reuse), no spread unless asked for.
fn shared_host(cpus: f64) -> Model {
    let mut m = model();
    m.measured_arrivals = false;
    m.platform.scaling = crate::platform::Scaling::Unlimited;
    m.platform.cold_start.median_ms = 500.0;
    m.platform.account_concurrency_limit = None;
    m.platform.host_cpus = Some(cpus);
    m
}

/// On a shared host of 2 CPUs, 10 tasks at k = 3 are 4 instances started at 0.5 s: three of
/// D(3) = 2 s keeping 2 CPUs busy, the last of D(1) = 1 s keeping 1. Together they demand
/// 7 CPUs, so each runs at 2/7: the last ends after 3.5 s (at 4 s); the others then share at
/// 2/6 and need 3 s more for their remaining second (at 7 s). Durations 6.5, 6.5, 6.5 and
/// 3.5 s; the median is the end at position ⌊0.5·4⌋, the tail at q = 0.2 the first end,
/// at q = 1 the last.
#[test]
fn a_shared_host_stretches_instances_by_processor_sharing_by_hand() {
    let m = shared_host(2.0);
    let p = m.predict(10, 3);
    assert_eq!((p.instances, p.waves), (4, 1));
    close(p.scale_s, 0.5);
    close(p.total_s, 7.0);
    close(p.median_s, 7.0);
    close(p.billed_instance_s, 3.0 * 6.5 + 3.5);
    close(p.instance_s, (3.0 * 6.5 + 3.5) / 4.0);
    close(
        p.expense.compute_usd / m.platform.price_per_instance_second(),
        23.0,
    );
    close(m.clone().with_tail_quantile(0.2).predict(10, 3).tail_s, 4.0);
    close(m.with_tail_quantile(1.0).predict(10, 3).tail_s, 7.0);
    // 5 tasks at k = 3: D(3) = 2 s and a last batch of two, D(2) = 1.5 s, both 2 CPUs:
    // at 1/2 the second ends after 3 s (3.5 s), the first has 0.5 s left alone (4 s).
    let p = shared_host(2.0).predict(5, 3);
    close(p.total_s, 4.0);
    close(p.billed_instance_s, 3.5 + 3.0);
}

/// The straggler allowance on a shared host counts the instances the host runs at once:
/// 4 CPUs over min(vCPUs = 4, k = 2) = 2 instances. 6 tasks at k = 2 are 3 instances of
/// D(2) = 1.5 s demanding 6 CPUs: each at 4/6, all end at 0.5 + 2.25 s; then
/// 2.25 · (e^(σ/√2 · z(2)) − 1) for the slowest of two.
#[test]
fn a_shared_hosts_straggler_allowance_counts_instances_running_at_once() {
    let mut m = shared_host(4.0);
    spread(&mut m);
    let p = m.predict(6, 2);
    let allowance = 2.25 * ((0.5 / 2f64.sqrt() * z_of_max(2.0)).exp() - 1.0);
    assert!(allowance > 0.1, "{allowance}");
    close(p.total_s, 2.75 + allowance);
    close(p.median_s, 2.75);
}

/// Off a shared host the allowance counts the instances still running when the last starts:
/// aws-2021 adds one every 47 ms, so with D(4) = 2.5 s about 2.5/0.047 + 1 of them.
/// 400 tasks at k = 4: the last of 100 starts at 99 · 0.047 + 0.25 s.
#[test]
fn the_straggler_allowance_counts_the_instances_a_rule_keeps_running() {
    let mut m = model();
    m.measured_arrivals = false;
    spread(&mut m);
    let p = m.predict(400, 4);
    let competing = 2.5 / 0.047 + 1.0;
    let allowance = 2.5 * ((0.5 / 2.0 * z_of_max(competing)).exp() - 1.0);
    close(p.total_s, 99.0 * 0.047 + 0.25 + 2.5 + allowance);
}

/// The expense of a launch whose last batch is smaller bills that batch at its own
/// duration: 5 tasks at k = 2 on aws-2021 are two batches of D(2) = 1.5 s and one of
/// D(1) = 1 s, 4 billed seconds (aws-2021 bills no init).
#[test]
fn the_last_smaller_batch_is_billed_at_its_own_duration() {
    let m = model();
    let p = m.predict(5, 2);
    close(p.billed_instance_s, 4.0);
    close(
        p.expense.compute_usd / m.platform.price_per_instance_second(),
        4.0,
    );
}

/// With measured CPU seconds, an instance keeps busy its CPU seconds over its duration,
/// within [0.001, min(k, vCPUs)]; a zero duration (or zero CPU) falls back to the bound.
#[test]
fn cpu_demand_from_measured_cpu_seconds() {
    let mut p = super::tests::synthetic_profile();
    for s in &mut p.packing.samples {
        s.cpu_seconds = vec![0.4 * s.k as f64];
    }
    let m = Model::new(&p, PlatformProfile::aws_2021(), ModelKind::Propack).unwrap();
    close(m.cpu_demand(4, 2.0, 6.0), 0.8);
    close(m.cpu_demand(4, 0.5, 6.0), 3.2);
    close(m.cpu_demand(4, 0.5, 2.0), 2.0);
    close(m.cpu_demand(4, 0.0, 6.0), 4.0);
    for s in &mut p.packing.samples {
        s.cpu_seconds = vec![0.0];
    }
    let idle = Model::new(&p, PlatformProfile::aws_2021(), ModelKind::Propack).unwrap();
    close(idle.cpu_demand(4, 0.0, 6.0), 4.0);
    close(idle.cpu_demand(4, 2.0, 6.0), 1e-3);
}
