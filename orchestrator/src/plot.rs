//! Dependency-free SVG plots of a run: the instance start/end timeline and predicted vs measured bars.

use std::fmt::Write as _;

use crate::records::{InstanceRecord, Metrics};

const W: f64 = 800.0;
const H: f64 = 420.0;
const LEFT: f64 = 70.0;
const RIGHT: f64 = 20.0;
const TOP: f64 = 40.0;
const BOTTOM: f64 = 50.0;

fn escape(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
}

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

fn header(out: &mut String, title: &str) {
    let _ = write!(
        out,
        r#"<svg xmlns="http://www.w3.org/2000/svg" width="{W}" height="{H}" viewBox="0 0 {W} {H}" font-family="sans-serif" font-size="12">
<rect width="100%" height="100%" fill="white"/>
<text x="{}" y="22" text-anchor="middle" font-size="15">{}</text>
"#,
        W / 2.0,
        escape(title)
    );
}

/// One horizontal bar per invocation from its start to its end (launch-relative seconds),
/// in start order; cold starts dark, warm light, failed attempts red.
pub fn timeline_svg(title: &str, instances: &[InstanceRecord]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    let mut rows: Vec<&InstanceRecord> = instances.iter().collect();
    rows.sort_by(|a, b| a.start_s.total_cmp(&b.start_s));
    let t_max = rows
        .iter()
        .map(|r| r.end_s)
        .fold(0.0_f64, f64::max)
        .max(1e-3);
    let n = rows.len().max(1) as f64;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM;
    let x = |t: f64| LEFT + t / t_max * pw;
    let row_h = (ph / n).max(0.2);
    // Axes and ticks.
    let step = nice_step(t_max, 8.0);
    let mut t = 0.0;
    while t <= t_max + 1e-9 {
        let _ = writeln!(
            out,
            r##"<line x1="{0:.1}" y1="{TOP}" x2="{0:.1}" y2="{1}" stroke="#eee"/><text x="{0:.1}" y="{2}" text-anchor="middle">{3}</text>"##,
            x(t),
            H - BOTTOM,
            H - BOTTOM + 16.0,
            trim(t)
        );
        t += step;
    }
    for (i, r) in rows.iter().enumerate() {
        let i = i as f64;
        let color = if !r.ok {
            "#d62728"
        } else if r.cold_start {
            "#1f4e8c"
        } else {
            "#8fb3e0"
        };
        let _ = writeln!(
            out,
            r#"<rect x="{:.2}" y="{:.2}" width="{:.2}" height="{:.2}" fill="{color}"><title>batch {} attempt {} {} [{:.3}, {:.3}] s</title></rect>"#,
            x(r.start_s),
            TOP + i * row_h,
            (x(r.end_s) - x(r.start_s)).max(0.5),
            (row_h * 0.8).max(0.2),
            r.batch,
            r.attempt,
            escape(&r.instance_id),
            r.start_s,
            r.end_s
        );
    }
    let _ = write!(
        out,
        r##"<line x1="{LEFT}" y1="{0}" x2="{1}" y2="{0}" stroke="black"/><line x1="{LEFT}" y1="{TOP}" x2="{LEFT}" y2="{0}" stroke="black"/>
<text x="{2}" y="{3}" text-anchor="middle">seconds since launch</text>
<text x="18" y="{4}" text-anchor="middle" transform="rotate(-90 18 {4})">invocations ({5}) in start order</text>
<rect x="{6}" y="28" width="10" height="10" fill="#1f4e8c"/><text x="{7}" y="37">cold</text>
<rect x="{8}" y="28" width="10" height="10" fill="#8fb3e0"/><text x="{9}" y="37">warm</text>
<rect x="{10}" y="28" width="10" height="10" fill="#d62728"/><text x="{11}" y="37">failed</text>
</svg>
"##,
        H - BOTTOM,
        W - RIGHT,
        LEFT + pw / 2.0,
        H - 12.0,
        TOP + ph / 2.0,
        rows.len(),
        W - 200.0,
        W - 186.0,
        W - 140.0,
        W - 126.0,
        W - 80.0,
        W - 66.0,
    );
    out
}

fn trim(v: f64) -> String {
    let s = format!("{v:.3}");
    s.trim_end_matches('0').trim_end_matches('.').to_owned()
}

/// Grouped bars of scale/median/tail/total seconds: one group per metric, one bar per series
/// (e.g. "predicted k=8", "measured k=8", "measured k=1").
pub fn metrics_bars_svg(title: &str, series: &[(&str, Metrics)]) -> String {
    let mut out = String::new();
    header(&mut out, title);
    type Pick = fn(&Metrics) -> f64;
    let metrics: [(&str, Pick); 4] = [
        ("scale", |m| m.scale_s),
        ("median", |m| m.median_s),
        ("tail", |m| m.tail_s),
        ("total", |m| m.total_s),
    ];
    let colors = ["#8fb3e0", "#1f4e8c", "#f2a35e", "#c0504d", "#6aa84f"];
    let v_max = series
        .iter()
        .flat_map(|(_, m)| metrics.iter().map(move |(_, f)| f(m)))
        .fold(0.0_f64, f64::max)
        .max(1e-3);
    let step = nice_step(v_max, 6.0);
    let top = (v_max / step).ceil() * step;
    let pw = W - LEFT - RIGHT;
    let ph = H - TOP - BOTTOM - 20.0;
    let y = |v: f64| TOP + 20.0 + ph - v / top * ph;
    let mut t = 0.0;
    while t <= top + 1e-9 {
        let _ = writeln!(
            out,
            r##"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="#eee"/><text x="{2}" y="{3:.1}" text-anchor="end">{4}</text>"##,
            y(t),
            W - RIGHT,
            LEFT - 6.0,
            y(t) + 4.0,
            trim(t)
        );
        t += step;
    }
    let group_w = pw / metrics.len() as f64;
    let bar_w = (group_w * 0.8) / series.len().max(1) as f64;
    for (g, (name, f)) in metrics.iter().enumerate() {
        let gx = LEFT + g as f64 * group_w + group_w * 0.1;
        for (s, (label, m)) in series.iter().enumerate() {
            let v = f(m);
            let _ = writeln!(
                out,
                r#"<rect x="{:.1}" y="{:.1}" width="{:.1}" height="{:.1}" fill="{}"><title>{} {name}: {v:.3} s</title></rect>"#,
                gx + s as f64 * bar_w,
                y(v),
                (bar_w - 2.0).max(1.0),
                (y(0.0) - y(v)).max(0.0),
                colors[s % colors.len()],
                escape(label)
            );
        }
        let _ = writeln!(
            out,
            r#"<text x="{:.1}" y="{}" text-anchor="middle">{name}</text>"#,
            gx + group_w * 0.4,
            H - BOTTOM + 16.0
        );
    }
    for (s, (label, _)) in series.iter().enumerate() {
        let lx = LEFT + 10.0 + s as f64 * 180.0;
        let _ = writeln!(
            out,
            r#"<rect x="{lx:.1}" y="30" width="10" height="10" fill="{}"/><text x="{:.1}" y="39">{}</text>"#,
            colors[s % colors.len()],
            lx + 14.0,
            escape(label)
        );
    }
    let _ = write!(
        out,
        r#"<line x1="{LEFT}" y1="{0:.1}" x2="{1}" y2="{0:.1}" stroke="black"/>
<text x="18" y="{2:.1}" text-anchor="middle" transform="rotate(-90 18 {2:.1})">seconds since launch</text>
</svg>
"#,
        y(0.0),
        W - RIGHT,
        TOP + 20.0 + ph / 2.0
    );
    out
}

#[cfg(test)]
mod tests {
    use super::*;

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
    }

    #[test]
    fn axis_steps_are_nice() {
        assert_eq!(nice_step(10.0, 5.0), 2.0);
        assert_eq!(nice_step(47.0, 8.0), 10.0);
        assert_eq!(nice_step(0.0, 5.0), 1.0);
    }
}
