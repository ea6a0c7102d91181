//! `video`: Thousand Island Scanner's frame stage on a YUV4MPEG2 4:2:0 chunk.
//!
//! Per frame: convert to RGB (BT.601, limited range), downscale to
//! `downscale_width` pixels wide (aspect kept, triangle filter; never
//! upscaled), then compute on the downscaled luma a `bins`-bin histogram, the
//! Sobel edge density (share of interior pixels with |Gx|+|Gy| above
//! `edge_threshold`) and a motion score (mean absolute luma difference to the
//! previous frame, in [0, 1]; `null` for the first frame). Each frame becomes
//! one JSON line: `{"frame", "width", "height", "mean_luma", "histogram",
//! "edge_density", "motion"}`.
//!
//! Params (all optional): `downscale_width` (default 320), `bins` (1–256,
//! default 16), `edge_threshold` (default 128). `seed`, `width`, `height` and
//! `frames` are read only by the generator ([`generate`]).

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use image::RgbImage;
use image::imageops::{self, FilterType};
use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::y4m::{self, Frame, Header, Reader};
use crate::{WorkloadError, params};

const W: &str = "video";

/// Default generator resolution and length: 640×360, 60 frames (≈ 20 MB raw).
pub const DEFAULT_SIZE: (u32, u32, u32) = (640, 360, 60);

/// The params of `video` (run and generator).
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct VideoParams {
    /// Width frames are downscaled to before analysis.
    pub downscale_width: u32,
    /// Histogram bins.
    pub bins: u32,
    /// Sobel magnitude (|Gx|+|Gy|) above which a pixel is an edge.
    pub edge_threshold: u32,
    /// Generator seed.
    pub seed: u64,
    /// Generator frame width.
    pub width: u32,
    /// Generator frame height.
    pub height: u32,
    /// Generator frame count.
    pub frames: u32,
}

impl Default for VideoParams {
    fn default() -> Self {
        Self {
            downscale_width: 320,
            bins: 16,
            edge_threshold: 128,
            seed: 0,
            width: DEFAULT_SIZE.0,
            height: DEFAULT_SIZE.1,
            frames: DEFAULT_SIZE.2,
        }
    }
}

impl VideoParams {
    /// Parses and validates JSON params.
    pub fn from_value(params: &Value) -> Result<Self, WorkloadError> {
        let p: Self = params::parse(W, params)?;
        if p.downscale_width == 0 {
            return Err(WorkloadError::params(W, "downscale_width must be positive"));
        }
        if !(1..=256).contains(&p.bins) {
            return Err(WorkloadError::params(
                W,
                format!("bins {} is not in 1..=256", p.bins),
            ));
        }
        Ok(p)
    }
}

/// Analyses the y4m chunk at `input`, writing one JSON line per frame to `output`.
pub fn run(params: &Value, input: &Path, output: &Path) -> Result<Value, WorkloadError> {
    let p = VideoParams::from_value(params)?;
    let file = File::open(input)
        .map_err(|e| WorkloadError::io(format!("opening {}", input.display()), e))?;
    let mut reader = Reader::new(BufReader::with_capacity(1 << 20, file))?;
    let header = reader.header().clone();
    let out = File::create(output)
        .map_err(|e| WorkloadError::io(format!("creating {}", output.display()), e))?;
    let mut out = BufWriter::new(out);
    let write_err = |e| WorkloadError::io(format!("writing {}", output.display()), e);

    let mut frame = Frame::default();
    let mut prev: Option<Vec<u8>> = None;
    let mut size = (0, 0);
    while reader.next_frame(&mut frame)? {
        let index = reader.frames_read() - 1;
        let rgb = to_rgb(&header, &frame);
        let small = downscale(rgb, p.downscale_width);
        size = small.dimensions();
        let luma = luma(&small);
        let line = json!({
            "frame": index,
            "width": size.0,
            "height": size.1,
            "mean_luma": round6(luma.iter().map(|&l| f64::from(l)).sum::<f64>() / luma.len() as f64),
            "histogram": histogram(&luma, p.bins),
            "edge_density": round6(edge_density(&luma, size.0 as usize, size.1 as usize, p.edge_threshold)),
            "motion": prev.as_deref().map(|q| round6(motion(q, &luma))),
        });
        serde_json::to_writer(&mut out, &line).map_err(|e| write_err(e.into()))?;
        out.write_all(b"\n").map_err(write_err)?;
        prev = Some(luma);
    }
    out.flush().map_err(write_err)?;
    Ok(json!({
        "frames": reader.frames_read(),
        "source": [header.width, header.height],
        "analysed": [size.0, size.1],
    }))
}

fn round6(x: f64) -> f64 {
    (x * 1e6).round() / 1e6
}

/// BT.601 limited-range YUV → RGB, chroma upsampled by replication.
fn to_rgb(h: &Header, f: &Frame) -> RgbImage {
    let (w, ht) = (h.width as usize, h.height as usize);
    let cw = h.chroma_size().0 as usize;
    let mut rgb = vec![0u8; w * ht * 3];
    for (y, row) in rgb.chunks_exact_mut(w * 3).enumerate() {
        let yrow = &f.y[y * w..(y + 1) * w];
        let crow = (y / 2) * cw;
        for (x, px) in row.chunks_exact_mut(3).enumerate() {
            let c = 298 * (i32::from(yrow[x]) - 16);
            let d = i32::from(f.u[crow + x / 2]) - 128;
            let e = i32::from(f.v[crow + x / 2]) - 128;
            px[0] = clamp((c + 409 * e + 128) >> 8);
            px[1] = clamp((c - 100 * d - 208 * e + 128) >> 8);
            px[2] = clamp((c + 516 * d + 128) >> 8);
        }
    }
    // The buffer length is exactly w × h × 3 by construction.
    RgbImage::from_raw(h.width, h.height, rgb).unwrap_or_default()
}

fn clamp(v: i32) -> u8 {
    v.clamp(0, 255) as u8
}

fn downscale(img: RgbImage, width: u32) -> RgbImage {
    let (w, h) = img.dimensions();
    if w <= width {
        return img;
    }
    let nh = ((u64::from(h) * u64::from(width) + u64::from(w) / 2) / u64::from(w)).max(1) as u32;
    imageops::resize(&img, width, nh, FilterType::Triangle)
}

fn luma(img: &RgbImage) -> Vec<u8> {
    img.pixels()
        .map(|p| {
            let [r, g, b] = p.0;
            ((299 * u32::from(r) + 587 * u32::from(g) + 114 * u32::from(b) + 500) / 1000) as u8
        })
        .collect()
}

fn histogram(luma: &[u8], bins: u32) -> Vec<u64> {
    let mut hist = vec![0u64; bins as usize];
    for &l in luma {
        hist[(u32::from(l) * bins / 256) as usize] += 1;
    }
    hist
}

fn edge_density(l: &[u8], w: usize, h: usize, threshold: u32) -> f64 {
    if w < 3 || h < 3 {
        return 0.0;
    }
    let p = |x: usize, y: usize| i32::from(l[y * w + x]);
    let mut edges = 0u64;
    for y in 1..h - 1 {
        for x in 1..w - 1 {
            let gx = p(x + 1, y - 1) + 2 * p(x + 1, y) + p(x + 1, y + 1)
                - p(x - 1, y - 1)
                - 2 * p(x - 1, y)
                - p(x - 1, y + 1);
            let gy = p(x - 1, y + 1) + 2 * p(x, y + 1) + p(x + 1, y + 1)
                - p(x - 1, y - 1)
                - 2 * p(x, y - 1)
                - p(x + 1, y - 1);
            if gx.unsigned_abs() + gy.unsigned_abs() > threshold {
                edges += 1;
            }
        }
    }
    edges as f64 / ((w - 2) * (h - 2)) as f64
}

fn motion(prev: &[u8], cur: &[u8]) -> f64 {
    let sum: u64 = prev
        .iter()
        .zip(cur)
        .map(|(&a, &b)| u64::from(a.abs_diff(b)))
        .sum();
    sum as f64 / (cur.len().max(1) as f64 * 255.0)
}

/// Checks that `output` has one JSON line per frame of `input`, numbered from 0.
///
/// The expected count is the header's `XFRAMES`, or the frames actually in the
/// input when the header has none.
pub fn verify(input: &[u8], output: &[u8]) -> Result<(), WorkloadError> {
    let mut reader = Reader::new(input)?;
    let expected = match reader.header().frames {
        Some(n) => n,
        None => {
            let mut f = Frame::default();
            while reader.next_frame(&mut f)? {}
            reader.frames_read()
        }
    };
    let text = std::str::from_utf8(output)
        .map_err(|_| WorkloadError::verify(W, "the output is not UTF-8 text"))?;
    let lines: Vec<&str> = text.lines().filter(|l| !l.trim().is_empty()).collect();
    if lines.len() as u64 != expected {
        return Err(WorkloadError::verify(
            W,
            format!(
                "output has {} lines but the input has {expected} frames",
                lines.len()
            ),
        ));
    }
    for (i, line) in lines.iter().enumerate() {
        let v: Value = serde_json::from_str(line).map_err(|e| {
            WorkloadError::verify(W, format!("output line {} is not JSON: {e}", i + 1))
        })?;
        if v.get("frame").and_then(Value::as_u64) != Some(i as u64) || v.get("histogram").is_none()
        {
            return Err(WorkloadError::verify(
                W,
                format!("output line {} is not the result of frame {i}", i + 1),
            ));
        }
    }
    Ok(())
}

struct Shape {
    circle: bool,
    size: f64,
    pos: (f64, f64),
    vel: (f64, f64),
    yuv: [u8; 3],
}

/// A deterministic synthetic chunk: `frames` frames of `width`×`height`
/// 4:2:0 video at 25 fps, with a drifting gradient background, four shapes
/// (rectangles and discs) bouncing around, and ±8 luma noise.
pub fn generate(seed: u64, width: u32, height: u32, frames: u32) -> Result<Vec<u8>, WorkloadError> {
    let header = Header {
        width,
        height,
        fps: Some((25, 1)),
        colorspace: "420jpeg".to_owned(),
        frames: Some(u64::from(frames)),
    };
    // Reuse the reader's validation of the frame size.
    y4m::parse_header(header.to_line().trim_end())
        .map_err(|e| WorkloadError::params(W, e.to_string()))?;
    let (w, h) = (width as usize, height as usize);
    let (cw, ch) = (w.div_ceil(2), h.div_ceil(2));
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    let side = w.min(h) as f64;
    let mut shapes: Vec<Shape> = (0..4)
        .map(|_| Shape {
            circle: rng.random_bool(0.5),
            size: side * rng.random_range(0.08..0.25),
            pos: (
                rng.random_range(0.0..w as f64),
                rng.random_range(0.0..h as f64),
            ),
            vel: (
                w as f64 * rng.random_range(-0.03..0.03),
                h as f64 * rng.random_range(-0.03..0.03),
            ),
            yuv: [
                rng.random_range(30..235),
                rng.random_range(16..240),
                rng.random_range(16..240),
            ],
        })
        .collect();

    let mut out = header.to_line().into_bytes();
    out.reserve(frames as usize * (header.frame_bytes() + 6));
    let mut frame = Frame {
        y: vec![0; w * h],
        u: vec![0; cw * ch],
        v: vec![0; cw * ch],
    };
    let mut noise = vec![0u8; w * h];
    for t in 0..frames as usize {
        for y in 0..h {
            for x in 0..w {
                frame.y[y * w + x] = (40 + (x * 120) / w + ((y + 2 * t) % h) * 40 / h) as u8;
            }
        }
        for y in 0..ch {
            for x in 0..cw {
                frame.u[y * cw + x] = (112 + x * 32 / cw) as u8;
                frame.v[y * cw + x] = (112 + y * 32 / ch) as u8;
            }
        }
        for s in &shapes {
            paint(&mut frame, w, h, s);
        }
        rng.fill_bytes(&mut noise);
        for (px, n) in frame.y.iter_mut().zip(&noise) {
            *px = px.saturating_add_signed((n & 15) as i8 - 8);
        }
        y4m::write_frame(&mut out, &frame);
        for s in &mut shapes {
            step(s, w as f64, h as f64);
        }
    }
    Ok(out)
}

fn inside(s: &Shape, x: f64, y: f64) -> bool {
    let (dx, dy) = (x - s.pos.0, y - s.pos.1);
    let r = s.size / 2.0;
    if s.circle {
        dx * dx + dy * dy <= r * r
    } else {
        dx.abs() <= r && dy.abs() <= r
    }
}

fn paint(f: &mut Frame, w: usize, h: usize, s: &Shape) {
    let r = s.size / 2.0;
    let x0 = (s.pos.0 - r).floor().max(0.0) as usize;
    let y0 = (s.pos.1 - r).floor().max(0.0) as usize;
    let x1 = ((s.pos.0 + r).ceil().max(0.0) as usize).min(w);
    let y1 = ((s.pos.1 + r).ceil().max(0.0) as usize).min(h);
    let cw = w.div_ceil(2);
    for y in y0..y1 {
        for x in x0..x1 {
            if inside(s, x as f64 + 0.5, y as f64 + 0.5) {
                f.y[y * w + x] = s.yuv[0];
                if x % 2 == 0 && y % 2 == 0 {
                    f.u[(y / 2) * cw + x / 2] = s.yuv[1];
                    f.v[(y / 2) * cw + x / 2] = s.yuv[2];
                }
            }
        }
    }
}

fn step(s: &mut Shape, w: f64, h: f64) {
    s.pos.0 += s.vel.0;
    s.pos.1 += s.vel.1;
    if !(0.0..w).contains(&s.pos.0) {
        s.vel.0 = -s.vel.0;
        s.pos.0 = s.pos.0.clamp(0.0, w - 1.0);
    }
    if !(0.0..h).contains(&s.pos.1) {
        s.vel.1 = -s.vel.1;
        s.pos.1 = s.pos.1.clamp(0.0, h - 1.0);
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_on(chunk: &[u8], params: Value) -> Result<(Value, String), WorkloadError> {
        let dir = tempfile::tempdir().unwrap();
        let (i, o) = (dir.path().join("input"), dir.path().join("output"));
        std::fs::write(&i, chunk).unwrap();
        let summary = run(&params, &i, &o)?;
        Ok((summary, std::fs::read_to_string(o).unwrap()))
    }

    #[test]
    fn one_line_per_frame() {
        let chunk = generate(1, 96, 64, 7).unwrap();
        assert_eq!(Reader::new(&chunk[..]).unwrap().header().frames, Some(7));
        let (summary, out) = run_on(&chunk, json!({"downscale_width": 48})).unwrap();
        assert_eq!(summary["frames"], 7);
        assert_eq!(summary["analysed"], json!([48, 32]));
        assert_eq!(out.lines().count(), 7);
        verify(&chunk, out.as_bytes()).unwrap();
        let lines: Vec<Value> = out
            .lines()
            .map(|l| serde_json::from_str(l).unwrap())
            .collect();
        assert!(lines[0]["motion"].is_null());
        // Shapes move, so consecutive frames differ.
        assert!(lines[1]["motion"].as_f64().unwrap() > 0.0);
        let hist: u64 = lines[3]["histogram"]
            .as_array()
            .unwrap()
            .iter()
            .map(|v| v.as_u64().unwrap())
            .sum();
        assert_eq!(hist, 48 * 32);
        // Dropping a line is caught.
        let short: String = out.lines().skip(1).map(|l| format!("{l}\n")).collect();
        let err = verify(&chunk, short.as_bytes()).unwrap_err();
        assert!(
            err.to_string()
                .contains("6 lines but the input has 7 frames"),
            "{err}"
        );
    }

    #[test]
    fn generator_is_deterministic() {
        let a = generate(2, 33, 17, 3).unwrap();
        assert_eq!(a, generate(2, 33, 17, 3).unwrap());
        assert_ne!(a, generate(3, 33, 17, 3).unwrap());
        let frame = Header {
            width: 33,
            height: 17,
            fps: None,
            colorspace: "420".into(),
            frames: None,
        };
        let header_len = a.iter().position(|&b| b == b'\n').unwrap() + 1;
        assert_eq!(a.len(), header_len + 3 * (6 + frame.frame_bytes()));
        let err = generate(0, 0, 10, 1).unwrap_err();
        assert!(err.to_string().contains("out of range"), "{err}");
    }

    #[test]
    fn bad_inputs_fail_clearly() {
        let err = run_on(b"", Value::Null).unwrap_err();
        assert!(err.to_string().contains("input object is empty"), "{err}");
        let err = run_on(b"YUV4MPEG W4 H4\n", Value::Null).unwrap_err();
        assert!(err.to_string().contains("corrupt y4m header"), "{err}");
        let chunk = generate(1, 8, 8, 2).unwrap();
        let err = run_on(&chunk[..chunk.len() - 1], Value::Null).unwrap_err();
        assert!(err.to_string().contains("truncated"), "{err}");
        let err = run_on(&chunk, json!({"bins": 0})).unwrap_err();
        assert!(err.to_string().contains("bins 0"), "{err}");
    }

    #[test]
    fn sobel_sees_a_vertical_edge() {
        // 4×3 image, left half black, right half white.
        let l = [0, 0, 255, 255, 0, 0, 255, 255, 0, 0, 255, 255];
        assert_eq!(edge_density(&l, 4, 3, 128), 1.0);
        assert_eq!(edge_density(&[7; 12], 4, 3, 0), 0.0);
        assert_eq!(histogram(&[0, 255, 128], 2), vec![1, 2]);
        assert_eq!(motion(&[0, 0], &[255, 0]), 0.5);
    }
}
