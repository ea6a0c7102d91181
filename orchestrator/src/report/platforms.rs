//! The per-platform sections of an evaluation's `report.md`: where the profile's numbers come from, ProPack's improvement and regret, and ProPack against the platform's built-in concurrency.

use std::fmt::Write as _;

use crate::evaluate::{BuiltinRow, EvalRow};
use crate::platform::PlatformProfile;
use crate::platforms::PlatformNotes;

// Writing to a `String` cannot fail, hence the `let _ =` on every `writeln!`.

fn mean(v: impl Iterator<Item = f64>) -> f64 {
    let v: Vec<f64> = v.collect();
    if v.is_empty() {
        0.0
    } else {
        v.iter().sum::<f64>() / v.len() as f64
    }
}

/// One `### <platform>` section per platform, under `## Per platform`.
pub fn platform_sections(
    platforms: &[(PlatformProfile, PlatformNotes)],
    rows: &[EvalRow],
    builtin: &[BuiltinRow],
) -> String {
    let mut md = String::from("## Per platform\n\n");
    for (p, notes) in platforms {
        let _ = writeln!(md, "### {}\n\n{}\n", p.name, p.description);
        let mine: Vec<&EvalRow> = rows.iter().filter(|r| r.platform == p.name).collect();
        let of = |obj: &str, f: fn(&EvalRow) -> f64| {
            mean(mine.iter().filter(|r| r.objective == obj).map(|r| f(r)))
        };
        let _ = writeln!(
            md,
            "ProPack vs k = 1 over {} rows: mean service-time improvement {:.1} % (objective \
             `time`), mean cost improvement {:.1} % (objective `cost`); mean regret vs the Oracle \
             {:.2} % of service time (`time`) and {:.2} % of expense (`cost`).\n",
            mine.len(),
            of("time", |r| r.improvement_time_pct),
            of("cost", |r| r.improvement_cost_pct),
            of("time", |r| r.regret_pct),
            of("cost", |r| r.regret_pct),
        );
        match &notes.builtin_concurrency {
            None => {
                let _ = writeln!(
                    md,
                    "No built-in per-instance concurrency: one task per instance unless packed.\n"
                );
            }
            Some(bc) => {
                let _ = writeln!(
                    md,
                    "Built-in per-instance concurrency: {} requests per instance by default (up to \
                     {}); {}.\n",
                    bc.default_per_instance, bc.max_per_instance, bc.source
                );
                builtin_table(&mut md, builtin.iter().filter(|b| b.platform == p.name));
            }
        }
        if !notes.sources.is_empty() {
            let _ = writeln!(md, "Sources of the profile's numbers:\n");
            for (field, source) in &notes.sources {
                let _ = writeln!(md, "- `{field}`: {source}");
            }
            md.push('\n');
        }
    }
    md
}

fn builtin_table<'a>(md: &mut String, rows: impl Iterator<Item = &'a BuiltinRow>) {
    let _ = writeln!(
        md,
        "| app | C | ProPack k | ProPack total s | ProPack $ | default N | built-in at N: total s | $ | built-in set to ProPack's k: extra request $ |\n\
         |---|---:|---:|---:|---:|---:|---:|---:|---:|"
    );
    for b in rows {
        let (t, e) = match (
            &b.builtin_default_infeasible,
            b.builtin_default_total_s,
            b.builtin_default_expense_usd,
        ) {
            (Some(why), _, _) => (format!("not feasible: {why}"), "–".to_owned()),
            (None, Some(t), Some(e)) => (format!("{t:.1}"), format!("{e:.4}")),
            _ => ("–".to_owned(), "–".to_owned()),
        };
        let _ = writeln!(
            md,
            "| {} | {} | {} | {:.1} | {:.4} | {} | {t} | {e} | {:.6} |",
            b.workload,
            b.tasks,
            b.k_propack,
            b.propack_total_s,
            b.propack_expense_usd,
            b.builtin_default,
            b.builtin_at_k_extra_requests_usd
        );
    }
    md.push('\n');
}
