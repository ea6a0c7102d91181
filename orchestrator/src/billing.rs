//! What a run costs: one pricing function for predicted, simulated and measured runs.
//!
//! A packed run pays for three things, priced from the platform profile:
//!
//! - **compute**: every invocation's billed duration (rounded up to 1 ms, plus the init
//!   phase of a cold start where [`PlatformProfile::bills_init`] says the platform bills it)
//!   × the function's memory in GB × the GB-second price of its architecture;
//! - **requests**: one Lambda request per invocation, retries included;
//! - **orchestration**: what Step Functions bills for the run, counted in an
//!   [`OrchestrationUsage`] — STANDARD state transitions (the parent workflow, inline Map
//!   iterations, STANDARD child workflows; retries count, and a Distributed Map bills one
//!   transition per child execution it starts) and EXPRESS child executions (one request
//!   each plus their duration, rounded up to 100 ms, at [`EXPRESS_BILLED_MEMORY_MB`]).
//!   Direct invokes cost nothing here.
//!
//! The model prices the invocations it predicts with [`price`]; every backend's records are
//! priced with [`bill`], which calls the same function, so predicted and measured expense
//! differ only where the predicted run differs from the measured one.

use propack_step_functions::{Built, ExecutionType, ProcessorMode};
use serde::{Deserialize, Serialize};

use crate::platform::PlatformProfile;
use crate::records::RunRecords;

/// Lambda bills duration in 1 ms steps.
pub const LAMBDA_BILLING_QUANTUM_S: f64 = 0.001;
/// Step Functions bills EXPRESS duration in 100 ms steps.
pub const EXPRESS_BILLING_QUANTUM_S: f64 = 0.1;
/// Memory an EXPRESS child workflow of ProPack is billed at: Step Functions estimates
/// 50 MB + definition + state data and bills it in 64 MB chunks; a packed batch (≤ 256 KB
/// of state) always lands in the first chunk.
pub const EXPRESS_BILLED_MEMORY_MB: f64 = 64.0;

/// `x` rounded up to a whole number of `quantum`s (tolerating float noise just above a step).
fn ceil_to(x: f64, quantum: f64) -> f64 {
    let steps = (x.max(0.0) / quantum - 1e-9).ceil().max(0.0);
    steps * quantum
}

/// How batches reached the function, which decides what the orchestration bills.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind", content = "children")]
pub enum Orchestration {
    /// ⌈C/k⌉ `Invoke` calls from the client: no Step Functions.
    Direct,
    /// An inline Map in a STANDARD execution.
    Inline,
    /// A Distributed Map in a STANDARD execution, with child workflows of this type.
    Distributed(ExecutionType),
}

impl Orchestration {
    /// The orchestration a built definition runs.
    pub fn of(built: &Built) -> Self {
        match built.mode {
            ProcessorMode::Inline => Orchestration::Inline,
            ProcessorMode::Distributed => {
                Orchestration::Distributed(built.execution_type.unwrap_or(ExecutionType::Standard))
            }
        }
    }
}

/// How a planned run would reach the function, which decides what its orchestration costs.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case", tag = "kind")]
pub enum Dispatch {
    /// ⌈C/k⌉ direct `Invoke` calls.
    Direct,
    /// The generated Step Functions definition (mode and child type chosen per (C, k)).
    StepFunctions {
        /// Serialised bytes of the largest task spec (decides inline vs distributed).
        task_bytes: u64,
    },
}

/// The orchestration a run of `c` tasks packed `k` per instance would use when each batch
/// takes `batch_s`: the definition builder's own choices of Map mode and child type.
pub fn orchestration_for(
    dispatch: Dispatch,
    c: u64,
    k: u64,
    vcpus: u32,
    batch_s: f64,
) -> Orchestration {
    use propack_step_functions as sf;
    let Dispatch::StepFunctions { task_bytes } = dispatch else {
        return Orchestration::Direct;
    };
    let shape = sf::JobShape {
        tasks: c,
        packing: k,
        task_bytes,
        task_seconds: None,
        vcpus,
    };
    match sf::choose_mode(&shape, sf::ModeRequest::Auto).mode {
        sf::ProcessorMode::Inline => Orchestration::Inline,
        sf::ProcessorMode::Distributed => {
            Orchestration::Distributed(sf::default_execution_type(Some(batch_s)))
        }
    }
}

/// What Step Functions did during a run, in the units it bills.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct OrchestrationUsage {
    /// STANDARD state transitions, retries included.
    pub standard_transitions: u64,
    /// EXPRESS child executions started.
    pub express_executions: u64,
    /// Their billed duration: each child's duration rounded up to 100 ms, summed, seconds.
    pub express_billed_s: f64,
}

impl OrchestrationUsage {
    /// One EXPRESS child execution that ran `duration_s`.
    pub fn add_express_child(&mut self, duration_s: f64) {
        self.express_executions += 1;
        self.express_billed_s += ceil_to(duration_s, EXPRESS_BILLING_QUANTUM_S);
    }

    /// The usage Step Functions bills for the invocations in `records` under `orchestration`,
    /// one child execution (or inline iteration) per invocation lasting as long as its
    /// handler: for backends that cannot count it live (the simulator; AWS, whose EXPRESS
    /// children report no bill to the caller).
    pub fn of_records(records: &RunRecords, orchestration: Orchestration) -> Self {
        Self::for_batches(orchestration, &handler_durations(records))
    }

    /// [`Self::of_records`] for a run that was not given a definition (the evaluation's
    /// simulations): the orchestration is the one the builder would choose under `dispatch`.
    pub fn derive(records: &RunRecords, dispatch: Dispatch, vcpus: u32) -> Self {
        let durations = handler_durations(records);
        let k = records.instances.iter().map(|i| i.tasks).max().unwrap_or(1) as u64;
        let longest = durations.iter().copied().fold(0.0, f64::max);
        let orchestration = orchestration_for(
            dispatch,
            records.tasks.len() as u64,
            k.max(1),
            vcpus,
            longest,
        );
        Self::for_batches(orchestration, &durations)
    }

    /// The usage of a run without retries or failures whose i-th batch (child execution)
    /// took `batch_s[i]`: one transition for the Map state, then per batch either the
    /// inline iteration's Task state, or one transition for starting the child plus the
    /// child's own Task state (STANDARD) or its EXPRESS request and duration.
    pub fn for_batches(orchestration: Orchestration, batch_s: &[f64]) -> Self {
        let n = batch_s.len() as u64;
        let mut u = OrchestrationUsage::default();
        match orchestration {
            Orchestration::Direct => {}
            Orchestration::Inline => u.standard_transitions = 1 + n,
            Orchestration::Distributed(ExecutionType::Standard) => {
                u.standard_transitions = 1 + n + n;
            }
            Orchestration::Distributed(ExecutionType::Express) => {
                u.standard_transitions = 1 + n;
                for &d in batch_s {
                    u.add_express_child(d);
                }
            }
        }
        u
    }
}

fn handler_durations(records: &RunRecords) -> Vec<f64> {
    records
        .instances
        .iter()
        .map(|i| (i.end_s - i.start_s).max(0.0))
        .collect()
}

/// A run's expense, broken down.
#[derive(Debug, Clone, Copy, PartialEq, Serialize, Deserialize, Default)]
pub struct Expense {
    /// Function duration × memory (GB-seconds), USD.
    pub compute_usd: f64,
    /// Function invocation requests, USD.
    pub requests_usd: f64,
    /// Step Functions (STANDARD transitions, EXPRESS requests and duration), USD.
    pub orchestration_usd: f64,
}

impl Expense {
    /// The total, USD.
    pub fn total_usd(&self) -> f64 {
        self.compute_usd + self.requests_usd + self.orchestration_usd
    }
}

/// Prices invocations of the platform's function: `billed_s` yields each invocation's
/// duration to bill (handler time, plus init where billed; rounded here to 1 ms).
pub fn price(
    platform: &PlatformProfile,
    billed_s: impl IntoIterator<Item = f64>,
    orchestration: &OrchestrationUsage,
) -> Expense {
    let p = &platform.prices;
    let mut seconds = 0.0;
    let mut requests = 0u64;
    for s in billed_s {
        seconds += ceil_to(s, LAMBDA_BILLING_QUANTUM_S);
        requests += 1;
    }
    let express_gb_s = orchestration.express_billed_s * EXPRESS_BILLED_MEMORY_MB / 1024.0;
    Expense {
        compute_usd: seconds * platform.price_per_instance_second(),
        requests_usd: requests as f64 * p.request,
        orchestration_usd: orchestration.standard_transitions as f64 * p.state_transition
            + orchestration.express_executions as f64 * p.express_request
            + express_gb_s * p.express_gb_second,
    }
}

/// The expense of a run from its records (every backend's, and the simulator's).
pub fn bill(records: &RunRecords, platform: &PlatformProfile) -> Expense {
    let billed = records.instances.iter().map(|i| {
        let handler = (i.end_s - i.start_s).max(0.0);
        if platform.bills_init && i.cold_start {
            handler + i.init_ms.max(0.0) / 1000.0
        } else {
            handler
        }
    });
    price(platform, billed, &records.orchestration)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::records::InstanceRecord;

    fn record(batch: usize, start: f64, end: f64, cold: bool, init_ms: f64) -> InstanceRecord {
        InstanceRecord {
            batch,
            attempt: 0,
            instance_id: format!("i{batch}"),
            cold_start: cold,
            requested_s: 0.0,
            start_s: start,
            end_s: end,
            init_ms,
            tasks: 4,
            ok: true,
        }
    }

    /// Round prices make the hand computation readable: 1 USD per GB-second at 2 GB,
    /// 0.5 per request, 0.25 per transition, 0.125 per EXPRESS request, 2 per EXPRESS GB-s.
    fn platform() -> PlatformProfile {
        let mut p = PlatformProfile::aws_2021();
        p.memory_mb = 2048;
        p.prices.gb_second_x86_64 = 1.0;
        p.prices.request = 0.5;
        p.prices.state_transition = 0.25;
        p.prices.express_request = 0.125;
        p.prices.express_gb_second = 2.0;
        p
    }

    #[test]
    fn rounding_follows_each_services_quantum() {
        assert_eq!(ceil_to(0.0, 0.1), 0.0);
        assert!((ceil_to(0.1, 0.1) - 0.1).abs() < 1e-12);
        assert!((ceil_to(0.1001, 0.1) - 0.2).abs() < 1e-12);
        assert!((ceil_to(2.0004, 0.001) - 2.001).abs() < 1e-12);
        assert!((ceil_to(1.0, 0.001) - 1.0).abs() < 1e-12);
    }

    #[test]
    fn distributed_map_with_express_children_by_hand() {
        // Two batches of 1.05 s and 2.0 s: compute (1.05 + 2.0) s × 2 GB × 1 = 6.1;
        // requests 2 × 0.5 = 1; the parent's Map state + 2 child starts = 3 transitions
        // × 0.25 = 0.75; 2 EXPRESS requests × 0.125 = 0.25; EXPRESS duration rounds to
        // 1.1 + 2.0 = 3.1 s × 64/1024 GB × 2 = 0.3875.
        let o = Orchestration::Distributed(ExecutionType::Express);
        let r = RunRecords {
            instances: vec![
                record(0, 0.0, 1.05, true, 0.0),
                record(1, 0.5, 2.5, true, 0.0),
            ],
            orchestration: OrchestrationUsage::for_batches(o, &[1.05, 2.0]),
            ..RunRecords::default()
        };
        assert_eq!(r.orchestration.standard_transitions, 3);
        assert_eq!(r.orchestration.express_executions, 2);
        assert!((r.orchestration.express_billed_s - 3.1).abs() < 1e-9);
        let e = bill(&r, &platform());
        assert!((e.compute_usd - 6.1).abs() < 1e-9, "{e:?}");
        assert!((e.requests_usd - 1.0).abs() < 1e-12);
        assert!(
            (e.orchestration_usd - (0.75 + 0.25 + 0.3875)).abs() < 1e-9,
            "{e:?}"
        );
        assert!((e.total_usd() - 8.4875).abs() < 1e-9);
    }

    #[test]
    fn distributed_map_with_standard_children_and_inline_by_hand() {
        // STANDARD children: Map state + 3 child starts + 3 child Task states = 7 transitions.
        let u = OrchestrationUsage::for_batches(
            Orchestration::Distributed(ExecutionType::Standard),
            &[1.0, 1.0, 1.0],
        );
        assert_eq!(
            u,
            OrchestrationUsage {
                standard_transitions: 7,
                express_executions: 0,
                express_billed_s: 0.0
            }
        );
        assert!((price(&platform(), [], &u).orchestration_usd - 1.75).abs() < 1e-12);
        // Inline: Map state + one Task state per iteration (no charge per iteration itself).
        let u = OrchestrationUsage::for_batches(Orchestration::Inline, &[1.0, 1.0, 1.0]);
        assert_eq!(u.standard_transitions, 4);
        assert_eq!(
            OrchestrationUsage::for_batches(Orchestration::Direct, &[1.0]),
            OrchestrationUsage::default()
        );
    }

    #[test]
    fn init_is_billed_only_where_the_platform_bills_it() {
        let r = RunRecords {
            instances: vec![
                record(0, 0.0, 1.0, true, 250.0),
                record(1, 0.0, 1.0, false, 0.0),
            ],
            ..RunRecords::default()
        };
        let mut p = platform();
        p.bills_init = false;
        assert!((bill(&r, &p).compute_usd - 4.0).abs() < 1e-9);
        p.bills_init = true;
        assert!((bill(&r, &p).compute_usd - 4.5).abs() < 1e-9);
    }

    fn run_of(instances: Vec<InstanceRecord>, tasks: usize) -> RunRecords {
        let tasks = (0..tasks)
            .map(|i| crate::records::TaskRecord {
                id: format!("t{i}"),
                batch: 0,
                status: propack_runtime::TaskStatus::Succeeded,
                start_s: None,
                end_s: None,
            })
            .collect();
        RunRecords {
            instances,
            tasks,
            ..RunRecords::default()
        }
    }

    /// One child per instance, lasting its handler time (end − start, not end): handlers
    /// of 1.05 s (0.5 → 1.55) and 2.0 s (1.0 → 3.0) bill 1.1 + 2.0 = 3.1 EXPRESS seconds.
    #[test]
    fn usage_of_records_is_one_child_per_instance() {
        let r = run_of(
            vec![
                record(0, 0.5, 1.55, true, 0.0),
                record(1, 1.0, 3.0, false, 0.0),
            ],
            8,
        );
        let u =
            OrchestrationUsage::of_records(&r, Orchestration::Distributed(ExecutionType::Express));
        assert_eq!(u.standard_transitions, 3);
        assert_eq!(u.express_executions, 2);
        assert!((u.express_billed_s - 3.1).abs() < 1e-9, "{u:?}");
    }

    /// Without a definition the usage follows the builder's choices for C tasks packed k (the
    /// largest instance's tasks): 8 tasks in 2 batches of 4 fit an inline Map (Map state +
    /// 2 Task states); 164 tasks in 41 batches exceed its 40 iterations, so a Distributed Map
    /// with EXPRESS children for 1 s batches (worst case 3 · (1 + 10) + 3 + 61 = 97 s ≤ 300 s)
    /// and STANDARD children for 100 s ones (394 s); direct invokes bill nothing.
    #[test]
    fn derived_usage_follows_the_builders_choices() {
        let sf = Dispatch::StepFunctions { task_bytes: 100 };
        let r = run_of(
            vec![
                record(0, 0.0, 1.0, true, 0.0),
                record(1, 0.0, 1.0, true, 0.0),
            ],
            8,
        );
        assert_eq!(
            OrchestrationUsage::derive(&r, sf, 2),
            OrchestrationUsage {
                standard_transitions: 3,
                express_executions: 0,
                express_billed_s: 0.0
            }
        );
        assert_eq!(
            OrchestrationUsage::derive(&r, Dispatch::Direct, 2),
            OrchestrationUsage::default()
        );
        let r = run_of(
            (0..41).map(|b| record(b, 0.0, 1.0, true, 0.0)).collect(),
            164,
        );
        let u = OrchestrationUsage::derive(&r, sf, 2);
        assert_eq!((u.standard_transitions, u.express_executions), (42, 41));
        assert!((u.express_billed_s - 41.0).abs() < 1e-9, "{u:?}");
        let r = run_of(
            (0..41).map(|b| record(b, 0.0, 100.0, true, 0.0)).collect(),
            164,
        );
        let u = OrchestrationUsage::derive(&r, sf, 2);
        assert_eq!((u.standard_transitions, u.express_executions), (83, 0));
    }

    #[test]
    fn arm64_uses_its_own_price() {
        let mut p = platform();
        p.arch = crate::platform::Arch::Arm64;
        p.prices.gb_second_arm64 = 0.25;
        let e = price(&p, [2.0], &OrchestrationUsage::default());
        assert!((e.compute_usd - 1.0).abs() < 1e-12);
    }
}
