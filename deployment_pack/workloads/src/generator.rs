//! Deterministic input generators: the same (workload, seed, size) always gives the same bytes.
//!
//! The orchestrator stages a job of C tasks by calling these with seeds
//! 0..C (or any other scheme) and uploading the bytes; `propack-bench gen`
//! does the same from the command line.

use serde_json::{Map, Value, json};

use crate::WorkloadError;
use crate::sort::{self, SortFormat, SortParams};
use crate::statelesscost::{self, StatelessCostParams};
use crate::video::{self, VideoParams};

/// A sort shard of about `bytes` bytes (never less); see [`sort::generate`].
pub fn sort_shard(seed: u64, bytes: usize, format: SortFormat) -> Vec<u8> {
    sort::generate(seed, bytes, format)
}

/// A synthetic y4m chunk; see [`video::generate`].
pub fn video_chunk(
    seed: u64,
    width: u32,
    height: u32,
    frames: u32,
) -> Result<Vec<u8>, WorkloadError> {
    video::generate(seed, width, height, frames)
}

/// The JSON params file of one statelesscost task (the task needs only its seed).
pub fn statelesscost_params(seed: u64, width: u32, height: u32) -> Vec<u8> {
    statelesscost::generate_params(seed, width, height)
}

/// The input of one task of `workload` for `seed`, sized by `params`.
///
/// `params` are the workload's own params (null for defaults): `bytes` and
/// `format` for sort, `width`/`height` for statelesscost, `width`/`height`/
/// `frames` for video. `seed` overrides any `seed` in `params`.
pub fn generate(workload: &str, seed: u64, params: &Value) -> Result<Vec<u8>, WorkloadError> {
    match workload {
        "sort" => {
            let p = SortParams::from_value(params)?;
            let bytes = p.bytes.unwrap_or(sort::DEFAULT_BYTES);
            check_size("sort", bytes as u64)?;
            Ok(sort_shard(seed, bytes, p.format))
        }
        "statelesscost" => {
            let p = StatelessCostParams::from_value(params)?;
            Ok(statelesscost_params(seed, p.width, p.height))
        }
        "video" => {
            let p = VideoParams::from_value(params)?;
            let frame = 6 + u64::from(p.width) * u64::from(p.height) * 3 / 2;
            check_size("video", frame * u64::from(p.frames))?;
            video_chunk(seed, p.width, p.height, p.frames)
        }
        other => Err(WorkloadError::Unknown(other.to_owned())),
    }
}

/// Largest input [`generate`] builds in memory; larger requests fail instead of aborting on allocation.
pub const MAX_GENERATED_BYTES: u64 = 4 << 30;

fn check_size(workload: &'static str, bytes: u64) -> Result<(), WorkloadError> {
    if bytes > MAX_GENERATED_BYTES {
        return Err(WorkloadError::params(
            workload,
            format!(
                "a {bytes}-byte input is above the generator's limit of {MAX_GENERATED_BYTES} bytes"
            ),
        ));
    }
    Ok(())
}

/// Parses a command-line size into params fields for [`generate`].
///
/// - sort: a byte count with an optional unit, `10MB`, `512KiB`, `1000000`
///   (k/M/G are powers of 1000, KiB/MiB/GiB of 1024) → `{"bytes": n}`;
/// - statelesscost: `WxH` → `{"width", "height"}`;
/// - video: `WxH` or `WxHxFRAMES` → `{"width", "height"[, "frames"]}`.
pub fn parse_size(workload: &str, size: &str) -> Result<Map<String, Value>, WorkloadError> {
    let wl: &'static str = match workload {
        "sort" => "sort",
        "statelesscost" => "statelesscost",
        "video" => "video",
        other => return Err(WorkloadError::Unknown(other.to_owned())),
    };
    let bad = |why: &str| WorkloadError::params(wl, format!("bad size {size:?}: {why}"));
    let v = match wl {
        "sort" => {
            let s = size.trim();
            let split = s.find(|c: char| !c.is_ascii_digit()).unwrap_or(s.len());
            let (num, unit) = s.split_at(split);
            let n: u64 = num
                .parse()
                .map_err(|_| bad("expected a number of bytes such as 10MB"))?;
            let mult: u64 = match unit.trim().to_ascii_lowercase().as_str() {
                "" | "b" => 1,
                "k" | "kb" => 1_000,
                "m" | "mb" => 1_000_000,
                "g" | "gb" => 1_000_000_000,
                "kib" => 1 << 10,
                "mib" => 1 << 20,
                "gib" => 1 << 30,
                _ => return Err(bad("unknown unit (use B, kB, MB, GB, KiB, MiB or GiB)")),
            };
            let bytes = n.checked_mul(mult).ok_or_else(|| bad("too large"))?;
            json!({"bytes": bytes})
        }
        _ => {
            let dims: Vec<u32> = size
                .split(['x', 'X'])
                .map(|d| d.trim().parse::<u32>())
                .collect::<Result<_, _>>()
                .map_err(|_| bad("expected WxH or WxHxFRAMES"))?;
            match (wl, dims.as_slice()) {
                (_, [w, h]) => json!({"width": w, "height": h}),
                ("video", [w, h, f]) => json!({"width": w, "height": h, "frames": f}),
                _ => return Err(bad("expected WxH (statelesscost) or WxH[xFRAMES] (video)")),
            }
        }
    };
    match v {
        Value::Object(m) => Ok(m),
        _ => Err(bad("internal: size is not an object")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn generate_dispatches_and_is_deterministic() {
        let p = json!({"bytes": 2000, "format": "terasort"});
        let a = generate("sort", 1, &p).unwrap();
        assert_eq!(a.len(), 2000);
        assert_eq!(a, generate("sort", 1, &p).unwrap());
        let s = generate("statelesscost", 4, &json!({"width": 256, "height": 256})).unwrap();
        let v: Value = serde_json::from_slice(&s).unwrap();
        assert_eq!(v, json!({"seed": 4, "width": 256, "height": 256}));
        let v1 = generate("video", 2, &json!({"width": 16, "height": 16, "frames": 2})).unwrap();
        assert!(v1.starts_with(b"YUV4MPEG2 W16 H16"));
        assert_eq!(v1, gen_video());
        assert!(matches!(
            generate("x", 0, &Value::Null),
            Err(WorkloadError::Unknown(_))
        ));
        let err = generate("sort", 0, &json!({"bytes": 1u64 << 40})).unwrap_err();
        assert!(
            err.to_string().contains("above the generator's limit"),
            "{err}"
        );
        let huge = json!({"width": 16384, "height": 16384, "frames": 100});
        assert!(generate("video", 0, &huge).is_err());
    }

    fn gen_video() -> Vec<u8> {
        video_chunk(2, 16, 16, 2).unwrap()
    }

    #[test]
    fn sizes_parse() {
        assert_eq!(parse_size("sort", "10MB").unwrap()["bytes"], 10_000_000);
        assert_eq!(parse_size("sort", "2KiB").unwrap()["bytes"], 2048);
        assert_eq!(parse_size("sort", "77").unwrap()["bytes"], 77);
        assert!(parse_size("sort", "10 parsecs").is_err());
        let s = parse_size("statelesscost", "256x128").unwrap();
        assert_eq!(
            (s["width"].clone(), s["height"].clone()),
            (json!(256), json!(128))
        );
        assert_eq!(parse_size("video", "64x48x5").unwrap()["frames"], 5);
        let err = parse_size("statelesscost", "1x2x3").unwrap_err();
        assert!(err.to_string().contains("bad size \"1x2x3\""), "{err}");
    }
}
