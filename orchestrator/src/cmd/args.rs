//! Argument types shared by several subcommands, so every command reads the same values.

use clap::builder::{PossibleValuesParser, TypedValueParser};
use propack_orchestrator::model::{Metric, Objective};
use propack_workloads::Workload;

/// `--benchmark sort|statelesscost|video`: the workload table's names.
pub fn workload_parser() -> impl TypedValueParser<Value = Workload> {
    PossibleValuesParser::new(Workload::ALL.map(Workload::name))
        .map(|name| Workload::from_name(&name).expect("only the table's names are possible"))
}

/// What to minimise.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ObjectiveArg {
    /// Service time of the metric.
    Time,
    /// Expense.
    Cost,
    /// Weighted normalised excess of both (0.55 cost / 0.45 time; `plan --w-cost/--w-time`).
    Both,
}

impl ObjectiveArg {
    /// The planner's objective (`both` with the given weights).
    pub fn objective(self, w_cost: f64, w_time: f64) -> Objective {
        match self {
            ObjectiveArg::Time => Objective::Time,
            ObjectiveArg::Cost => Objective::Cost,
            ObjectiveArg::Both => Objective::Both { w_cost, w_time },
        }
    }
}

/// Which service time.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum MetricArg {
    /// Last task done.
    Total,
    /// Tail quantile of tasks done (p95 unless `plan --tail-quantile` says otherwise).
    Tail,
    /// Half of the tasks done.
    Median,
}

impl From<MetricArg> for Metric {
    fn from(m: MetricArg) -> Self {
        match m {
            MetricArg::Total => Metric::Total,
            MetricArg::Tail => Metric::Tail,
            MetricArg::Median => Metric::Median,
        }
    }
}
