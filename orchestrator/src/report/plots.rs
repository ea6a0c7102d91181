//! The SVG figures: a run's timeline and predicted vs measured bars, an evaluation's k heatmaps and improvement bars.

use crate::evaluate::EvalRow;
use crate::model::planner::Plan;
use crate::records::{InstanceRecord, Metrics};

use super::SERVICE_TIMES;
use super::svg::{Fixed, Svg};

// Layout of a run's figures.
const W: f64 = 800.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

/// A "nice" axis step (1, 2 or 5 × 10^n) giving about `ticks` ticks up to `max`.
fn nice_step(max: f64, ticks: f64) -> f64 {
    if max.is_nan() || max <= 0.0 {
        return 1.0;
    }
    let raw = max / ticks;
    let mag = 10f64.powf(raw.log10().floor());
    let n = raw / mag;
    let m = if n <= 1.0 {
        1.0
    } else if n <= 2.0 {
        2.0
    } else if n <= 5.0 {
        5.0
    } else {
        10.0
    };
    m * mag
}

/// An axis label: at most three decimals, no trailing zeros.
fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// `0, step, 2·step, …` up to `max` (with a little slack for rounding).
fn ticks(max: f64, step: f64) -> impl Iterator<Item = f64> {
    std::iter::successors(Some(0.0), move |t| Some(t + step)).take_while(move |t| *t <= max + 1e-9)
}

/// The canvas of a run's figure, with its title centred on top.
fn run_canvas(title: &str) -> Svg {
    let mut svg = Svg::new(|r| {
        r.attr("width", W)
            .attr("height", H)
            .attr("viewBox", format_args!("0 0 {W} {H}"))
            .attr("font-family", "sans-serif")
            .attr("font-size", 12)
    });
    svg.el("text")
        .attr("x", W / 2.0)
        .attr("y", 22)
        .attr("text-anchor", "middle")
        .attr("font-size", 15)
        .text(title);
    svg
}

/// A label written bottom-to-top, centred at (`x`, `y`).
fn vertical_label(svg: &mut Svg, x: f64, y: impl std::fmt::Display + Copy, label: &str) {
    svg.el("text")
        .attr("x", x)
        .attr("y", y)
        .attr("text-anchor", "middle")
        .attr("transform", format_args!("rotate(-90 {x} {y})"))
        .text(label);
}

/// One horizontal bar per invocation from its start to its end (launch-relative seconds),
/// in start order; cold starts dark, warm light, failed attempts red.
pub fn timeline_svg(title: &str, instances: &[InstanceRecord]) -> String {
    let mut svg = run_canvas(title);
    let mut rows: Vec<&InstanceRecord> = instances.iter().collect();
    rows.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let t_max = rows
        .iter()
        .map(|r| r.end_s)
        .fold(0.0_f64, f64::max)
        .max(1e-3);
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + t / t_max * pw;
    let row_h = (ph / rows.len().max(1) as f64).max(0.2);
    for t in ticks(t_max, nice_step(t_max, 8.0)) {
        let xt = Fixed(x(t), 1);
        svg.el("line")
            .attr("x1", xt)
            .attr("y1", TOP)
            .attr("x2", xt)
            .attr("y2", H - BOTTOM)
            .attr("stroke", "#eee")
            .end();
        svg.el("text")
            .attr("x", xt)
            .attr("y", H - BOTTOM + 16.0)
            .attr("text-anchor", "middle")
            .text(trim(t));
    }
    for (i, r) in rows.iter().enumerate() {
        let colour = match (r.ok, r.cold_start) {
            (false, _) => "#d62728",
            (true, true) => "#1f4e8c",
            (true, false) => "#8fb3e0",
        };
        svg.el("rect")
            .attr("x", Fixed(x(r.start_s), 2))
            .attr("y", Fixed(TOP + i as f64 * row_h, 2))
            .attr("width", Fixed((x(r.end_s) - x(r.start_s)).max(0.5), 2))
            .attr("height", Fixed((row_h * 0.8).max(0.2), 2))
            .attr("fill", colour)
            .title(format_args!(
                "batch {} attempt {} {} [{:.3}, {:.3}] s",
                r.batch, r.attempt, r.instance_id, r.start_s, r.end_s
            ));
    }
    timeline_frame(&mut svg, rows.len());
    svg.finish()
}

/// The timeline's axes, axis labels and legend.
fn timeline_frame(svg: &mut Svg, invocations: usize) {
    let (pw, ph) = (W - LEFT - RIGHT, H - TOP - BOTTOM);
    for (x1, y1, x2) in [(LEFT, H - BOTTOM, W - RIGHT), (LEFT, TOP, LEFT)] {
        svg.el("line")
            .attr("x1", x1)
            .attr("y1", y1)
            .attr("x2", x2)
            .attr("y2", H - BOTTOM)
            .attr("stroke", "black")
            .end();
    }
    svg.el("text")
        .attr("x", LEFT + pw / 2.0)
        .attr("y", H - 12.0)
        .attr("text-anchor", "middle")
        .text("seconds since launch");
    let label = format!("invocations ({invocations}) in start order");
    vertical_label(svg, 18.0, TOP + ph / 2.0, &label);
    for (dx, fill, label) in [
        (200.0, "#1f4e8c", "cold"),
        (140.0, "#8fb3e0", "warm"),
        (80.0, "#d62728", "failed"),
    ] {
        svg.swatch((W - dx, 28), 10, fill, (W - dx + 14.0, 37), label);
    }
}

const BAR_COLOURS: [&str; 5] = ["#8fb3e0", "#1f4e8c", "#f2a35e", "#c0504d", "#6aa84f"];

/// Grouped bars of scale/median/tail/total seconds: one group per metric, one bar per series
/// (e.g. "predicted k=8", "measured k=8", "measured k=1").
pub fn metrics_bars_svg(title: &str, series: &[(&str, Metrics)]) -> String {
    let mut svg = run_canvas(title);
    let v_max = series
        .iter()
        .flat_map(|(_, m)| SERVICE_TIMES.iter().map(move |(_, f)| f(m)))
        .fold(0.0_f64, f64::max)
        .max(1e-3);
    let step = nice_step(v_max, 6.0);
    let top = (v_max / step).ceil() * step;
    let ph = H - TOP - BOTTOM - 20.0;
    let y = |v: f64| TOP + 20.0 + ph - v / top * ph;
    for t in ticks(top, step) {
        svg.el("line")
            .attr("x1", LEFT)
            .attr("y1", Fixed(y(t), 1))
            .attr("x2", W - RIGHT)
            .attr("y2", Fixed(y(t), 1))
            .attr("stroke", "#eee")
            .end();
        svg.el("text")
            .attr("x", LEFT - 6.0)
            .attr("y", Fixed(y(t) + 4.0, 1))
            .attr("text-anchor", "end")
            .text(trim(t));
    }
    bar_groups(&mut svg, series, y);
    for (s, (label, _)) in series.iter().enumerate() {
        let lx = LEFT + 10.0 + s as f64 * 180.0;
        let fill = BAR_COLOURS[s % BAR_COLOURS.len()];
        svg.swatch(
            (Fixed(lx, 1), 30),
            10,
            fill,
            (Fixed(lx + 14.0, 1), 39),
            label,
        );
    }
    svg.el("line")
        .attr("x1", LEFT)
        .attr("y1", Fixed(y(0.0), 1))
        .attr("x2", W - RIGHT)
        .attr("y2", Fixed(y(0.0), 1))
        .attr("stroke", "black")
        .end();
    vertical_label(
        &mut svg,
        18.0,
        Fixed(TOP + 20.0 + ph / 2.0, 1),
        "seconds since launch",
    );
    svg.finish()
}

/// One group of bars per service time, one bar per series; `y` maps seconds to the page.
fn bar_groups(svg: &mut Svg, series: &[(&str, Metrics)], y: impl Fn(f64) -> f64) {
    let group_w = (W - LEFT - RIGHT) / SERVICE_TIMES.len() as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (g, (name, f)) in SERVICE_TIMES.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + group_w * 0.1;
        for (s, (label, m)) in series.iter().enumerate() {
            let v = f(m);
            svg.el("rect")
                .attr("x", Fixed(gx + s as f64 * bar_w, 1))
                .attr("y", Fixed(y(v), 1))
                .attr("width", Fixed((bar_w - 2.0).max(1.0), 1))
                .attr("height", Fixed((y(0.0) - y(v)).max(0.0), 1))
                .attr("fill", BAR_COLOURS[s % BAR_COLOURS.len()])
                .title(format_args!("{label} {name}: {v:.3} s"));
        }
        svg.el("text")
            .attr("x", Fixed(gx + group_w * 0.4, 1))
            .attr("y", H - BOTTOM + 16.0)
            .attr("text-anchor", "middle")
            .text(name);
    }
}

/// The canvas of an evaluation figure, with its title at the top left.
fn eval_canvas(width: f64, height: f64, left: f64, title: std::fmt::Arguments<'_>) -> Svg {
    let mut svg = Svg::new(|r| {
        r.attr("width", width)
            .attr("height", height)
            .attr("font-family", "sans-serif")
            .attr("font-size", 11)
    });
    svg.el("text")
        .attr("x", left)
        .attr("y", 20)
        .attr("font-size", 14)
        .text(title);
    svg
}

/// A grey column label under a panel.
fn column_label(svg: &mut Svg, x: f64, y: f64, label: u64) {
    svg.el("text")
        .attr("x", x)
        .attr("y", y)
        .attr("text-anchor", "middle")
        .attr("fill", "#555")
        .text(label);
}

/// The distinct C of `rows`, ascending.
fn concurrencies<'a>(rows: impl Iterator<Item = &'a EvalRow>) -> Vec<u64> {
    let mut cs: Vec<u64> = rows.map(|r| r.tasks).collect();
    cs.sort_unstable();
    cs.dedup();
    cs
}

/// Colour of k on a log scale from 1 (light) to `kmax` (dark blue).
fn k_colour(k: u64, kmax: u64) -> String {
    let t = if kmax > 1 {
        (k.max(1) as f64).ln() / (kmax as f64).ln()
    } else {
        0.0
    };
    let lerp = |a: f64, b: f64| (a + (b - a) * t.clamp(0.0, 1.0)).round() as u8;
    format!(
        "#{:02x}{:02x}{:02x}",
        lerp(240.0, 8.0),
        lerp(244.0, 48.0),
        lerp(250.0, 107.0)
    )
}

/// Cells of the heatmap, in page units.
const CELL_W: f64 = 52.0;
const CELL_H: f64 = 30.0;
const HEAT_LEFT: f64 = 70.0;
const HEAT_METRICS: [&str; 3] = ["total", "tail", "median"];

/// SVG heatmaps of ProPack's k per (C, metric), one panel per objective, for one
/// workload on one platform; each cell also shows the Oracle's k when it differs.
pub fn heatmap_svg(rows: &[EvalRow], workload: &str, platform: &str) -> String {
    let rows: Vec<&EvalRow> = rows
        .iter()
        .filter(|r| r.workload == workload && r.platform == platform)
        .collect();
    let cs = concurrencies(rows.iter().copied());
    let objectives = ["time", "cost", "both"];
    let kmax = rows
        .iter()
        .map(|r| r.k_propack.max(r.k_oracle))
        .max()
        .unwrap_or(1);
    let (top, gap) = (50.0, 40.0);
    let panel_h = CELL_H * HEAT_METRICS.len() as f64;
    let width = HEAT_LEFT + CELL_W * cs.len() as f64 + 20.0;
    let height = top + (panel_h + gap) * objectives.len() as f64 + 30.0;
    let mut svg = eval_canvas(
        width,
        height,
        HEAT_LEFT,
        format_args!(
            "{workload} on {platform}: ProPack's k (Oracle's k in brackets when different)"
        ),
    );
    for (oi, obj) in objectives.iter().enumerate() {
        let y0 = top + oi as f64 * (panel_h + gap);
        heatmap_panel(&mut svg, &rows, &cs, obj, y0, kmax);
        for (ci, c) in cs.iter().enumerate() {
            let x = HEAT_LEFT + ci as f64 * CELL_W + CELL_W / 2.0;
            column_label(&mut svg, x, y0 + panel_h + 13.0, *c);
        }
    }
    svg.el("text")
        .attr("x", HEAT_LEFT + CELL_W * cs.len() as f64 / 2.0)
        .attr("y", height - 6.0)
        .attr("text-anchor", "middle")
        .text("tasks C");
    svg.finish()
}

/// One objective's panel: a row of cells per metric, a column per C.
fn heatmap_panel(svg: &mut Svg, rows: &[&EvalRow], cs: &[u64], obj: &str, y0: f64, kmax: u64) {
    svg.el("text")
        .attr("x", HEAT_LEFT)
        .attr("y", y0 - 6.0)
        .attr("font-weight", "bold")
        .text(format_args!("objective: {obj}"));
    for (mi, m) in HEAT_METRICS.iter().enumerate() {
        let y = y0 + mi as f64 * CELL_H;
        svg.el("text")
            .attr("x", HEAT_LEFT - 6.0)
            .attr("y", y + CELL_H / 2.0 + 4.0)
            .attr("text-anchor", "end")
            .text(m);
        for (ci, c) in cs.iter().enumerate() {
            let found = rows
                .iter()
                .find(|r| r.objective == obj && r.metric == *m && r.tasks == *c);
            if let Some(r) = found {
                heatmap_cell(svg, r, HEAT_LEFT + ci as f64 * CELL_W, y, kmax);
            }
        }
    }
}

/// A cell coloured by ProPack's k, labelled `k` or `k (Oracle's k)`.
fn heatmap_cell(svg: &mut Svg, r: &EvalRow, x: f64, y: f64, kmax: u64) {
    let dark = (r.k_propack as f64).ln() > 0.55 * (kmax.max(2) as f64).ln();
    let label = if r.k_propack == r.k_oracle {
        r.k_propack.to_string()
    } else {
        format!("{} ({})", r.k_propack, r.k_oracle)
    };
    svg.el("rect")
        .attr("x", x)
        .attr("y", y)
        .attr("width", CELL_W)
        .attr("height", CELL_H)
        .attr("fill", k_colour(r.k_propack, kmax))
        .attr("stroke", "white")
        .end();
    svg.el("text")
        .attr("x", x + CELL_W / 2.0)
        .attr("y", y + CELL_H / 2.0 + 4.0)
        .attr("text-anchor", "middle")
        .attr("fill", if dark { "white" } else { "black" })
        .text(label);
}

// Layout of the improvement figure: one panel per workload.
const PANEL_W: f64 = 560.0;
const PANEL_H: f64 = 160.0;
const IMPR_LEFT: f64 = 60.0;
const IMPR_TOP: f64 = 40.0;
const IMPR_SERIES: [(&str, &str); 2] = [
    ("#1f77b4", "service time (time objective)"),
    ("#ff7f0e", "expense (cost objective)"),
];

/// SVG bars of ProPack's improvement over k = 1 per C on one platform: service time
/// (objective time, metric total) and expense (objective cost, metric total), per workload.
pub fn improvement_svg(rows: &[EvalRow], platform: &str) -> String {
    let rows: Vec<&EvalRow> = rows.iter().filter(|r| r.platform == platform).collect();
    let mut apps: Vec<&str> = rows.iter().map(|r| r.workload.as_str()).collect();
    apps.sort_unstable();
    apps.dedup();
    let cs = concurrencies(rows.iter().copied());
    let gap = 50.0;
    let height = IMPR_TOP + (PANEL_H + gap) * apps.len() as f64;
    let mut svg = eval_canvas(
        IMPR_LEFT + PANEL_W + 150.0,
        height,
        IMPR_LEFT,
        format_args!("{platform}: ProPack vs k = 1, improvement % (metric total)"),
    );
    for (ai, app) in apps.iter().enumerate() {
        let y0 = IMPR_TOP + ai as f64 * (PANEL_H + gap);
        let vals: Vec<(u64, [f64; 2])> = cs
            .iter()
            .map(|&c| (c, improvements(&rows, app, c)))
            .collect();
        improvement_panel(&mut svg, app, &vals, y0);
    }
    for (j, (colour, label)) in IMPR_SERIES.iter().enumerate() {
        let (x, y) = (
            IMPR_LEFT + PANEL_W + 10.0,
            IMPR_TOP + 10.0 + j as f64 * 18.0,
        );
        svg.swatch((x, y - 10.0), 12, colour, (x + 16.0, y), label);
    }
    svg.finish()
}

/// `[time, cost]` improvement % of `app` at C (metric total; 0 where the row is missing).
fn improvements(rows: &[&EvalRow], app: &str, c: u64) -> [f64; 2] {
    let get = |obj: &str, f: fn(&EvalRow) -> f64| {
        rows.iter()
            .find(|r| {
                r.workload == app && r.tasks == c && r.objective == obj && r.metric == "total"
            })
            .map_or(0.0, |r| f(r))
    };
    [
        get("time", |r| r.improvement_time_pct),
        get("cost", |r| r.improvement_cost_pct),
    ]
}

/// One workload's panel: a grid from the lowest value (at most −10 %) to 100 %, two bars per C.
fn improvement_panel(svg: &mut Svg, app: &str, vals: &[(u64, [f64; 2])], y0: f64) {
    let lo = vals
        .iter()
        .flat_map(|v| v.1)
        .fold(0.0_f64, f64::min)
        .min(-10.0);
    let hi = 100.0_f64;
    let ymap = |v: f64| y0 + PANEL_H * (hi - v) / (hi - lo);
    svg.el("text")
        .attr("x", IMPR_LEFT)
        .attr("y", y0 - 6.0)
        .attr("font-weight", "bold")
        .text(app);
    for tick in [lo.round(), 0.0, 50.0, 100.0] {
        svg.el("line")
            .attr("x1", IMPR_LEFT)
            .attr("x2", IMPR_LEFT + PANEL_W)
            .attr("y1", ymap(tick))
            .attr("y2", ymap(tick))
            .attr("stroke", "#ddd")
            .end();
        svg.el("text")
            .attr("x", IMPR_LEFT - 4.0)
            .attr("y", ymap(tick) + 4.0)
            .attr("text-anchor", "end")
            .text(Fixed(tick, 0));
    }
    let slot = PANEL_W / vals.len().max(1) as f64;
    let bw = slot * 0.38;
    for (i, (c, pair)) in vals.iter().enumerate() {
        let x = IMPR_LEFT + i as f64 * slot + slot * 0.1;
        for (j, v) in pair.iter().enumerate() {
            let (y, h) = if *v >= 0.0 {
                (ymap(*v), ymap(0.0) - ymap(*v))
            } else {
                (ymap(0.0), ymap(*v) - ymap(0.0))
            };
            svg.el("rect")
                .attr("x", x + j as f64 * bw)
                .attr("y", y)
                .attr("width", bw)
                .attr("height", h)
                .attr("fill", IMPR_SERIES[j].0)
                .title(format_args!("C={c}: {v:.1}%"));
        }
        column_label(svg, x + bw, y0 + PANEL_H + 13.0, *c);
    }
}

/// `plan --svg`: a two-line SVG: the metric's service time (left axis) and expense (right axis) against k.
pub fn plan_curve_svg(p: &Plan) -> String {
    let (w, h, pad) = (720.0, 360.0, 60.0);
    let m = p.request.metric;
    let pts: Vec<(u64, f64, f64)> = p
        .curve
        .iter()
        .filter(|c| c.feasible)
        .map(|c| (c.k, c.prediction.metric(m), c.prediction.expense_usd))
        .collect();
    let kmax = pts.iter().map(|x| x.0).max().unwrap_or(1).max(2) as f64;
    let tmax = pts.iter().map(|x| x.1).fold(0.0, f64::max).max(1e-9);
    let emax = pts.iter().map(|x| x.2).fold(0.0, f64::max).max(1e-12);
    let x = |k: u64| pad + (k as f64 - 1.0) / (kmax - 1.0) * (w - 2.0 * pad);
    let y = |v: f64, max: f64| h - pad - v / max * (h - 2.0 * pad);
    let line = |f: &dyn Fn(&(u64, f64, f64)) -> f64, max: f64| -> String {
        pts.iter()
            .map(|p| format!("{:.1},{:.1}", x(p.0), y(f(p), max)))
            .collect::<Vec<_>>()
            .join(" ")
    };
    format!(
        r##"<svg xmlns="http://www.w3.org/2000/svg" width="{w}" height="{h}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{pad}" y="20">C = {c}: {metric} service time (blue, left, max {tmax:.1} s) and expense (orange, right, max ${emax:.4}) vs k; chosen k = {k}</text>
<line x1="{pad}" y1="{yb}" x2="{xr}" y2="{yb}" stroke="black"/>
<line x1="{pad}" y1="{pad}" x2="{pad}" y2="{yb}" stroke="black"/>
<line x1="{xr}" y1="{pad}" x2="{xr}" y2="{yb}" stroke="black"/>
<text x="{pad}" y="{yl}">1</text><text x="{xr}" y="{yl}" text-anchor="end">{kmax}</text>
<polyline fill="none" stroke="#1f77b4" stroke-width="2" points="{tl}"/>
<polyline fill="none" stroke="#ff7f0e" stroke-width="2" points="{el}"/>
<line x1="{xk:.1}" y1="{pad}" x2="{xk:.1}" y2="{yb}" stroke="gray" stroke-dasharray="4"/>
</svg>
"##,
        c = p.request.tasks,
        metric = m.name(),
        k = p.k,
        yb = h - pad,
        xr = w - pad,
        yl = h - pad + 16.0,
        tl = line(&|p| p.1, tmax),
        el = line(&|p| p.2, emax),
        xk = x(p.k),
    )
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::evaluate::PywrenRow;
    use crate::report::svg::tests::parse_texts;

    fn inst(batch: usize, s: f64, e: f64, ok: bool) -> InstanceRecord {
        InstanceRecord {
            batch,
            attempt: 0,
            instance_id: format!("i-<{batch}>"),
            cold_start: true,
            requested_s: 0.0,
            start_s: s,
            end_s: e,
            init_ms: 0.0,
            tasks: 1,
            ok,
        }
    }

    #[test]
    fn timeline_has_one_bar_per_invocation_and_escapes_text() {
        let svg = timeline_svg(
            "t & <x>",
            &[inst(0, 0.0, 1.0, true), inst(1, 0.5, 2.0, false)],
        );
        assert!(svg.starts_with("<svg"));
        assert_eq!(svg.matches("<title>batch").count(), 2);
        assert!(svg.contains("t &amp; &lt;x&gt;"));
        assert!(svg.contains("#d62728\"><title>batch 1"));
        assert!(!svg.contains("i-<"));
    }

    #[test]
    fn a_title_with_quotes_and_brackets_stays_well_formed() {
        let title = r#"sort "10MB" <k=8> & 'co'"#;
        let mut odd = inst(0, 0.0, 1.0, true);
        odd.instance_id = r#"i-"1"<a>"#.into();
        let timeline = timeline_svg(title, &[odd]);
        let texts = parse_texts(&timeline);
        assert_eq!(texts[0], title);
        assert!(
            texts.contains(&r#"batch 0 attempt 0 i-"1"<a> [0.000, 1.000] s"#.to_owned()),
            "{texts:?}"
        );
        let bars = metrics_bars_svg(title, &[(r#"k="8""#, Metrics::default())]);
        let texts = parse_texts(&bars);
        assert_eq!(texts[0], title);
        assert!(texts.contains(&r#"k="8" total: 0.000 s"#.to_owned()));
        let rows = [row(r#"a"b<c>"#, 100, "time", "total", 4, 8)];
        let heat = heatmap_svg(&rows, r#"a"b<c>"#, "p");
        assert_eq!(
            parse_texts(&heat)[0],
            r#"a"b<c> on p: ProPack's k (Oracle's k in brackets when different)"#
        );
        assert_eq!(parse_texts(&improvement_svg(&rows, "p"))[1], r#"a"b<c>"#);
    }

    #[test]
    fn bars_cover_every_metric_and_series() {
        let m = Metrics {
            scale_s: 1.0,
            total_s: 4.0,
            tail_s: 3.0,
            median_s: 2.0,
            expense_usd: 0.0,
            ..Metrics::default()
        };
        let svg = metrics_bars_svg("p", &[("predicted", m), ("measured", m)]);
        assert_eq!(svg.matches("<title>").count(), 8);
        assert!(svg.contains("measured total: 4.000 s"));
        // Axis 0..4 s over 310 px from y = 60; bars 71 px apart, 2 px between them.
        assert!(svg.contains(
            r##"y="60.0" width="69.0" height="310.0" fill="#1f4e8c"><title>measured total: 4.000 s"##
        ));
    }

    #[test]
    fn axis_steps_are_nice() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(47.0, 8.0), 10.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
        assert_eq!(ticks(1.0, 0.2).count(), 6);
    }

    fn row(app: &str, c: u64, obj: &str, metric: &str, k_p: u64, k_o: u64) -> EvalRow {
        EvalRow {
            workload: app.into(),
            platform: "p".into(),
            tasks: c,
            objective: obj.into(),
            metric: metric.into(),
            k_propack: k_p,
            k_oracle: k_o,
            regret_pct: 0.0,
            improvement_time_pct: 40.0,
            improvement_cost_pct: -20.0,
            memory_mb: 10_240,
            right_sized_k1: crate::evaluate::BaselineRow {
                memory_mb: 1_769,
                service_s: 0.0,
                expense_usd: 0.0,
                time_improvement_pct: 0.0,
                cost_improvement_pct: 0.0,
            },
            pywren: PywrenRow {
                service_s: 0.0,
                expense_usd: 0.0,
                propack_time_improvement_pct: 0.0,
                propack_cost_improvement_pct: 0.0,
            },
        }
    }

    #[test]
    fn heatmap_labels_cells_with_both_ks_when_they_differ() {
        let rows = [
            row("w", 100, "time", "total", 4, 4),
            row("w", 500, "time", "total", 8, 16),
            row("other", 500, "time", "total", 2, 2),
        ];
        let svg = heatmap_svg(&rows, "w", "p");
        // kmax = 16: k = 8 is ln 8 / ln 16 = 3/4 of the way to dark blue, so its label is white.
        assert!(
            svg.contains(r##"fill="#42618f" stroke="white"/>"##),
            "{svg}"
        );
        assert!(svg.contains(r#"fill="white">8 (16)</text>"#), "{svg}");
        assert!(svg.contains(r#"fill="black">4</text>"#), "{svg}");
        assert_eq!(svg.matches("<rect").count(), 3);
    }

    #[test]
    fn improvement_bars_go_below_zero_for_a_loss() {
        let svg = improvement_svg(&[row("w", 100, "cost", "total", 2, 2)], "p");
        // lo = −20: 0 % sits at 40 + 160·100/120; the cost bar hangs 160·20/120 below it,
        // right of the (empty) time bar: x = 60 + 56 + 0.38·560.
        assert!(
            svg.contains(r##"<rect x="328.8" y="173.33333333333334" width="212.8" height="26.666666666666657" fill="#ff7f0e"><title>C=100: -20.0%"##),
            "{svg}"
        );
    }
}
