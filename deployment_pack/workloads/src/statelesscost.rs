//! `statelesscost`: ServerlessBench's "stateless cost" image pipeline on a random image.
//!
//! Params (all optional): `seed` (u64, default 0), `width`/`height` (default
//! 5000×5000 as in the paper; width ≥ 155 and height ≥ 5 so the crop box
//! fits, each ≤ 16384), `quality` (JPEG quality 1–100, default 75) and
//! `output_format` (`"jpeg"` default, or `"png"`).
//!
//! The task generates a W×H RGB noise image from the seed, JPEG-encodes it into
//! the scratch directory, decodes it back, crops the box (4, H/5, 154, 3H/5)
//! (PIL's left, upper, right, lower), resizes the crop to 300×300 (triangle
//! filter) and writes it. Noise defeats JPEG's compression, which keeps the
//! codec busy the way photographs do. At 5000×5000 the raw image is 75 MB; it
//! is freed before the decode, so the peak is about two images' worth.

use std::fs::File;
use std::io::{BufReader, BufWriter, Write};
use std::path::Path;

use image::codecs::jpeg::JpegEncoder;
use image::imageops::{self, FilterType};
use image::{ExtendedColorType, ImageFormat, ImageReader, RgbImage};
use rand::{RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::Deserialize;
use serde_json::{Value, json};

use crate::{WorkloadError, params, read_file};

const W: &str = "statelesscost";

/// Side of the square output image.
pub const OUTPUT_SIDE: u32 = 300;
/// Default source width and height (the paper's 5000×5000).
pub const DEFAULT_SIDE: u32 = 5000;
const MAX_SIDE: u32 = 16384;

/// Encoding of the output image.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum OutputFormat {
    /// Baseline JPEG.
    #[default]
    Jpeg,
    /// PNG.
    Png,
}

/// The params of `statelesscost`.
#[derive(Debug, Clone, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct StatelessCostParams {
    /// Seed of the random source image.
    pub seed: u64,
    /// Source width.
    pub width: u32,
    /// Source height.
    pub height: u32,
    /// JPEG quality of both encodes.
    pub quality: u8,
    /// Encoding of the output.
    pub output_format: OutputFormat,
}

impl Default for StatelessCostParams {
    fn default() -> Self {
        Self {
            seed: 0,
            width: DEFAULT_SIDE,
            height: DEFAULT_SIDE,
            quality: 75,
            output_format: OutputFormat::Jpeg,
        }
    }
}

impl StatelessCostParams {
    /// Parses and validates JSON params.
    pub fn from_value(params: &Value) -> Result<Self, WorkloadError> {
        let p: Self = params::parse(W, params)?;
        if !(155..=MAX_SIDE).contains(&p.width) || !(5..=MAX_SIDE).contains(&p.height) {
            return Err(WorkloadError::params(
                W,
                format!(
                    "image {}×{} out of range: width must be 155..={MAX_SIDE} and height \
                     5..={MAX_SIDE} so the crop box (4, H/5, 154, 3H/5) fits",
                    p.width, p.height
                ),
            ));
        }
        if !(1..=100).contains(&p.quality) {
            return Err(WorkloadError::params(
                W,
                format!("quality {} is not in 1..=100", p.quality),
            ));
        }
        Ok(p)
    }

    /// The crop box (left, upper, right, lower).
    pub fn crop_box(&self) -> (u32, u32, u32, u32) {
        (4, self.height / 5, 154, 3 * self.height / 5)
    }
}

/// The params file the generator stages: `{"seed", "width", "height"}`.
pub fn generate_params(seed: u64, width: u32, height: u32) -> Vec<u8> {
    let v = json!({"seed": seed, "width": width, "height": height});
    let mut bytes = v.to_string().into_bytes();
    bytes.push(b'\n');
    bytes
}

/// Params from the optional input file, overridden field by field by `params`.
fn merged_params(params: &Value, input: Option<&Path>) -> Result<Value, WorkloadError> {
    let Some(path) = input else {
        return Ok(params.clone());
    };
    let bytes = read_file(path)?;
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Err(WorkloadError::input(W, "the params input object is empty"));
    }
    let mut base: Value = serde_json::from_slice(&bytes).map_err(|e| {
        WorkloadError::input(W, format!("the input is not a JSON params object: {e}"))
    })?;
    let Value::Object(obj) = &mut base else {
        return Err(WorkloadError::input(
            W,
            format!("the input must be a JSON object, got {base}"),
        ));
    };
    match params {
        Value::Null => {}
        Value::Object(over) => obj.extend(over.iter().map(|(k, v)| (k.clone(), v.clone()))),
        other => {
            return Err(WorkloadError::params(
                W,
                format!("params must be a JSON object, got {other}"),
            ));
        }
    }
    Ok(base)
}

/// Runs the pipeline; `scratch` holds the intermediate JPEG.
pub fn run(
    params: &Value,
    input: Option<&Path>,
    scratch: &Path,
    output: &Path,
) -> Result<Value, WorkloadError> {
    let p = StatelessCostParams::from_value(&merged_params(params, input)?)?;
    let (w, h) = (p.width, p.height);

    // Stage 1: random source image, JPEG-encoded to a file (as the original
    // writes the image it processes to local disk).
    let source = scratch.join("statelesscost-source.jpg");
    let jpeg_bytes = {
        let mut pixels = vec![0u8; w as usize * h as usize * 3];
        ChaCha8Rng::seed_from_u64(p.seed).fill_bytes(&mut pixels);
        let file = create(&source)?;
        let mut writer = BufWriter::new(file);
        JpegEncoder::new_with_quality(&mut writer, p.quality)
            .encode(&pixels, w, h, ExtendedColorType::Rgb8)
            .map_err(|e| img_err("encoding the source JPEG", e))?;
        writer
            .flush()
            .map_err(|e| WorkloadError::io(format!("writing {}", source.display()), e))?;
        std::fs::metadata(&source).map(|m| m.len()).unwrap_or(0)
    };

    // Stage 2: decode, crop, resize.
    let decoded = {
        let file = File::open(&source)
            .map_err(|e| WorkloadError::io(format!("opening {}", source.display()), e))?;
        ImageReader::with_format(BufReader::new(file), ImageFormat::Jpeg)
            .decode()
            .map_err(|e| img_err("decoding the source JPEG", e))?
            .into_rgb8()
    };
    // Lambda's /tmp is small and shared by the k packed tasks.
    let _ = std::fs::remove_file(&source);
    let (left, upper, right, lower) = p.crop_box();
    let cropped: RgbImage =
        imageops::crop_imm(&decoded, left, upper, right - left, lower - upper).to_image();
    drop(decoded);
    let resized = imageops::resize(&cropped, OUTPUT_SIDE, OUTPUT_SIDE, FilterType::Triangle);

    // Stage 3: write the result.
    let file = create(output)?;
    let mut writer = BufWriter::new(file);
    match p.output_format {
        OutputFormat::Jpeg => JpegEncoder::new_with_quality(&mut writer, p.quality)
            .encode_image(&resized)
            .map_err(|e| img_err("encoding the output JPEG", e))?,
        OutputFormat::Png => resized
            .write_to(&mut writer, ImageFormat::Png)
            .map_err(|e| img_err("encoding the output PNG", e))?,
    }
    writer
        .flush()
        .map_err(|e| WorkloadError::io(format!("writing {}", output.display()), e))?;
    Ok(json!({
        "source": [w, h],
        "source_jpeg_bytes": jpeg_bytes,
        "crop": [left, upper, right, lower],
        "output": [OUTPUT_SIDE, OUTPUT_SIDE],
    }))
}

/// Checks that `output` decodes to a 300×300 image.
pub fn verify(output: &[u8]) -> Result<(), WorkloadError> {
    if output.is_empty() {
        return Err(WorkloadError::verify(W, "the output object is empty"));
    }
    let img = image::load_from_memory(output).map_err(|e| {
        WorkloadError::verify(W, format!("the output is not a decodable image: {e}"))
    })?;
    if (img.width(), img.height()) != (OUTPUT_SIDE, OUTPUT_SIDE) {
        return Err(WorkloadError::verify(
            W,
            format!(
                "output is {}×{}, expected {OUTPUT_SIDE}×{OUTPUT_SIDE}",
                img.width(),
                img.height()
            ),
        ));
    }
    Ok(())
}

fn create(path: &Path) -> Result<File, WorkloadError> {
    File::create(path).map_err(|e| WorkloadError::io(format!("creating {}", path.display()), e))
}

fn img_err(context: &str, source: image::ImageError) -> WorkloadError {
    WorkloadError::Image {
        context: format!("{W}: {context}"),
        source,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn run_in(dir: &Path, name: &str, params: Value) -> Vec<u8> {
        let out = dir.join(name);
        let summary = run(&params, None, dir, &out).unwrap();
        assert_eq!(summary["output"], json!([300, 300]));
        std::fs::read(out).unwrap()
    }

    #[test]
    fn output_is_300_square_and_deterministic() {
        let dir = tempfile::tempdir().unwrap();
        let p = json!({"seed": 5, "width": 256, "height": 256});
        let a = run_in(dir.path(), "a", p.clone());
        let b = run_in(dir.path(), "b", p);
        let c = run_in(
            dir.path(),
            "c",
            json!({"seed": 6, "width": 256, "height": 256}),
        );
        verify(&a).unwrap();
        assert_eq!(a, b);
        assert_ne!(a, c);
        assert!(!dir.path().join("statelesscost-source.jpg").exists());
        let png = run_in(
            dir.path(),
            "d",
            json!({"width": 256, "height": 256, "output_format": "png"}),
        );
        assert!(png.starts_with(b"\x89PNG"));
        verify(&png).unwrap();
    }

    #[test]
    fn params_file_is_overridden_by_params() {
        let dir = tempfile::tempdir().unwrap();
        let pf = dir.path().join("params.json");
        std::fs::write(&pf, generate_params(5, 256, 256)).unwrap();
        let out = dir.path().join("o");
        let s = run(&json!({"height": 200}), Some(&pf), dir.path(), &out).unwrap();
        assert_eq!(s["source"], json!([256, 200]));
        std::fs::write(&pf, b"").unwrap();
        let err = run(&Value::Null, Some(&pf), dir.path(), &out).unwrap_err();
        assert!(
            err.to_string().contains("params input object is empty"),
            "{err}"
        );
    }

    #[test]
    fn bad_params_and_outputs_fail_clearly() {
        let err = StatelessCostParams::from_value(&json!({"seed": "abc"})).unwrap_err();
        assert!(
            err.to_string().contains("invalid type: string \"abc\""),
            "{err}"
        );
        let err = StatelessCostParams::from_value(&json!({"width": 100})).unwrap_err();
        assert!(err.to_string().contains("crop box"), "{err}");
        let err = StatelessCostParams::from_value(&json!({"seed": -1})).unwrap_err();
        assert!(err.to_string().contains("invalid value"), "{err}");
        assert!(verify(b"").is_err());
        assert!(verify(b"not an image").is_err());
        let mut small = Vec::new();
        RgbImage::new(10, 10)
            .write_to(&mut std::io::Cursor::new(&mut small), ImageFormat::Png)
            .unwrap();
        let err = verify(&small).unwrap_err();
        assert!(err.to_string().contains("10×10"), "{err}");
    }
}
