//! `sort`: the HiBench/MapReduce sort stage on one shard (text floats or TeraSort records).
//!
//! Params (all optional): `format` = `"text"` (default: one decimal float per
//! line, as in the paper's version) or `"terasort"` (100-byte records whose
//! first 10 bytes are the key, as written by `gensort`). `seed` and `bytes`
//! are read only by the generator ([`generate`]); the run ignores them, so a
//! job can share one params object between staging and running.
//!
//! Text lines are ordered by their numeric value (ties by their bytes) and
//! written back verbatim, one per line, so the output is an exact permutation
//! of the input lines. Records are ordered by key (ties by the rest of the record).

use std::cmp::Ordering;
use std::path::Path;

use rand::{Rng, RngCore, SeedableRng};
use rand_chacha::ChaCha8Rng;
use serde::{Deserialize, Serialize};
use serde_json::{Value, json};

use crate::{WorkloadError, params, read_file, write_file};

const W: &str = "sort";

/// Size of one TeraSort record.
pub const RECORD_BYTES: usize = 100;
/// Size of a TeraSort key.
pub const KEY_BYTES: usize = 10;
/// Default shard size of the generator (≈ 10 MB, as in the paper).
pub const DEFAULT_BYTES: usize = 10_000_000;

/// Layout of a sort shard.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum SortFormat {
    /// One decimal float per line.
    #[default]
    Text,
    /// 100-byte records with 10-byte binary keys.
    Terasort,
}

impl SortFormat {
    /// The params spelling of this format.
    pub fn as_str(self) -> &'static str {
        match self {
            SortFormat::Text => "text",
            SortFormat::Terasort => "terasort",
        }
    }
}

impl std::str::FromStr for SortFormat {
    type Err = WorkloadError;

    fn from_str(s: &str) -> Result<Self, Self::Err> {
        match s {
            "text" => Ok(SortFormat::Text),
            "terasort" => Ok(SortFormat::Terasort),
            other => Err(WorkloadError::params(
                W,
                format!("unknown format {other:?} (expected \"text\" or \"terasort\")"),
            )),
        }
    }
}

/// The params of `sort` (run and generator).
#[derive(Debug, Clone, Default, PartialEq, Eq, Deserialize)]
#[serde(default, deny_unknown_fields)]
pub struct SortParams {
    /// Shard layout.
    pub format: SortFormat,
    /// Generator seed.
    pub seed: u64,
    /// Generator shard size in bytes (default [`DEFAULT_BYTES`]).
    pub bytes: Option<usize>,
}

impl SortParams {
    /// Parses and validates JSON params.
    pub fn from_value(params: &Value) -> Result<Self, WorkloadError> {
        params::parse(W, params)
    }
}

/// Sorts the shard at `input` into `output`; returns the task summary.
pub fn run(params: &Value, input: &Path, output: &Path) -> Result<Value, WorkloadError> {
    let p = SortParams::from_value(params)?;
    let data = read_file(input)?;
    let (sorted, records) = sort_bytes(p.format, &data)?;
    write_file(output, &sorted)?;
    Ok(json!({"format": p.format.as_str(), "records": records, "bytes": data.len()}))
}

/// Sorts a shard held in memory; returns the sorted bytes and the record count.
pub fn sort_bytes(format: SortFormat, data: &[u8]) -> Result<(Vec<u8>, usize), WorkloadError> {
    if data.is_empty() {
        return Err(WorkloadError::input(W, "the input object is empty"));
    }
    match format {
        SortFormat::Text => {
            let mut keyed = parse_text(data, "input")?;
            keyed.sort_unstable_by(cmp_text);
            let mut out = Vec::with_capacity(data.len() + 1);
            for (_, line) in &keyed {
                out.extend_from_slice(line);
                out.push(b'\n');
            }
            Ok((out, keyed.len()))
        }
        SortFormat::Terasort => {
            let mut recs = records(data, "input")?;
            // Whole-record order is key order with a deterministic tie-break.
            recs.sort_unstable();
            Ok((recs.concat(), recs.len()))
        }
    }
}

fn cmp_text(a: &(f64, &[u8]), b: &(f64, &[u8])) -> Ordering {
    a.0.total_cmp(&b.0).then_with(|| a.1.cmp(b.1))
}

/// Lines of a text shard (a final newline does not start a line) with their values.
fn parse_text<'a>(data: &'a [u8], what: &str) -> Result<Vec<(f64, &'a [u8])>, WorkloadError> {
    let body = data.strip_suffix(b"\n").unwrap_or(data);
    body.split(|&b| b == b'\n')
        .enumerate()
        .map(|(i, line)| {
            let text = std::str::from_utf8(line).map_err(|_| {
                WorkloadError::input(W, format!("{what} line {} is not UTF-8 text", i + 1))
            })?;
            let value: f64 = text.trim().parse().map_err(|_| {
                let shown: String = text.chars().take(40).collect();
                WorkloadError::input(
                    W,
                    format!("{what} line {} is not a number: {shown:?}", i + 1),
                )
            })?;
            Ok((value, line))
        })
        .collect()
}

fn records<'a>(data: &'a [u8], what: &str) -> Result<Vec<&'a [u8]>, WorkloadError> {
    if !data.len().is_multiple_of(RECORD_BYTES) {
        return Err(WorkloadError::input(
            W,
            format!(
                "{what} is {} bytes, not a whole number of {RECORD_BYTES}-byte TeraSort records",
                data.len()
            ),
        ));
    }
    Ok(data.chunks_exact(RECORD_BYTES).collect())
}

/// Checks that `output` is sorted and a permutation of `input`.
pub fn verify(params: &Value, input: &[u8], output: &[u8]) -> Result<(), WorkloadError> {
    let p = SortParams::from_value(params)?;
    let vfail = |m: String| WorkloadError::verify(W, m);
    match p.format {
        SortFormat::Text => {
            let out = parse_text(output, "output").map_err(|e| vfail(e.to_string()))?;
            let inp = parse_text(input, "input")?;
            if let Some(i) = out
                .windows(2)
                .position(|w| w[0].0.total_cmp(&w[1].0).is_gt())
            {
                return Err(vfail(format!(
                    "output lines {} and {} are out of order",
                    i + 1,
                    i + 2
                )));
            }
            same_multiset(
                inp.into_iter().map(|(_, l)| l).collect(),
                out.into_iter().map(|(_, l)| l).collect(),
                "lines",
            )
        }
        SortFormat::Terasort => {
            let out = records(output, "output").map_err(|e| vfail(e.to_string()))?;
            let inp = records(input, "input")?;
            if let Some(i) = out
                .windows(2)
                .position(|w| w[0][..KEY_BYTES] > w[1][..KEY_BYTES])
            {
                return Err(vfail(format!(
                    "output records {i} and {} are out of order",
                    i + 1
                )));
            }
            same_multiset(inp, out, "records")
        }
    }
}

fn same_multiset(mut a: Vec<&[u8]>, mut b: Vec<&[u8]>, what: &str) -> Result<(), WorkloadError> {
    if a.len() != b.len() {
        return Err(WorkloadError::verify(
            W,
            format!("input has {} {what} but output has {}", a.len(), b.len()),
        ));
    }
    a.sort_unstable();
    b.sort_unstable();
    if a != b {
        return Err(WorkloadError::verify(
            W,
            format!("output {what} are not a permutation of the input {what}"),
        ));
    }
    Ok(())
}

/// A deterministic shard of about `bytes` bytes (never less) for `seed`.
///
/// Text: uniformly random values in [-1e6, 1e6) with six decimals, one per line.
/// TeraSort: ⌈bytes/100⌉ `gensort`-shaped records: a random 10-byte binary key,
/// `00 11`, the record number as 32 hex digits, `88 99 AA BB`, 48 filler
/// letters, `CC DD EE FF`.
pub fn generate(seed: u64, bytes: usize, format: SortFormat) -> Vec<u8> {
    let mut rng = ChaCha8Rng::seed_from_u64(seed);
    match format {
        SortFormat::Text => {
            let mut out = Vec::with_capacity(bytes + 32);
            let mut line = String::new();
            while out.len() < bytes {
                use std::fmt::Write as _;
                line.clear();
                let v: f64 = rng.random_range(-1e6..1e6);
                // Writing to a String cannot fail.
                let _ = writeln!(line, "{v:.6}");
                out.extend_from_slice(line.as_bytes());
            }
            out
        }
        SortFormat::Terasort => {
            let n = bytes.div_ceil(RECORD_BYTES);
            let mut out = Vec::with_capacity(n * RECORD_BYTES);
            let mut key = [0u8; KEY_BYTES];
            for i in 0..n {
                rng.fill_bytes(&mut key);
                out.extend_from_slice(&key);
                out.extend_from_slice(&[0x00, 0x11]);
                out.extend_from_slice(format!("{i:032X}").as_bytes());
                out.extend_from_slice(&[0x88, 0x99, 0xAA, 0xBB]);
                let filler = b'A' + (i % 26) as u8;
                out.extend_from_slice(&[filler; 48]);
                out.extend_from_slice(&[0xCC, 0xDD, 0xEE, 0xFF]);
            }
            out
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn text_sorted_permutation() {
        let input = generate(3, 20_000, SortFormat::Text);
        assert!(input.len() >= 20_000);
        let (out, n) = sort_bytes(SortFormat::Text, &input).unwrap();
        assert_eq!(n, input.iter().filter(|&&b| b == b'\n').count());
        verify(&json!({"format": "text"}), &input, &out).unwrap();
        // The unsorted input is not a valid output (unless astronomically unlucky).
        assert!(verify(&json!({}), &input, &input).is_err());
    }

    #[test]
    fn terasort_sorted_permutation() {
        let input = generate(4, 50_000, SortFormat::Terasort);
        assert_eq!(input.len(), 50_000);
        let (out, n) = sort_bytes(SortFormat::Terasort, &input).unwrap();
        assert_eq!(n, 500);
        let p = json!({"format": "terasort"});
        verify(&p, &input, &out).unwrap();
        let err = verify(&p, &input, &input).unwrap_err();
        assert!(err.to_string().contains("out of order"), "{err}");
    }

    #[test]
    fn verify_catches_a_lost_record() {
        let input = b"3.5\n-1\n2\n".to_vec();
        let (out, _) = sort_bytes(SortFormat::Text, &input).unwrap();
        assert_eq!(out, b"-1\n2\n3.5\n");
        let err = verify(&Value::Null, &input, b"-1\n2\n").unwrap_err();
        assert!(
            err.to_string()
                .contains("input has 3 lines but output has 2"),
            "{err}"
        );
        let err = verify(&Value::Null, &input, b"-1\n2\n3.50\n").unwrap_err();
        assert!(err.to_string().contains("not a permutation"), "{err}");
    }

    #[test]
    fn generator_is_deterministic() {
        for f in [SortFormat::Text, SortFormat::Terasort] {
            assert_eq!(generate(9, 5_000, f), generate(9, 5_000, f));
            assert_ne!(generate(9, 5_000, f), generate(10, 5_000, f));
        }
    }

    #[test]
    fn bad_inputs_fail_clearly() {
        let err = sort_bytes(SortFormat::Text, b"").unwrap_err();
        assert!(err.to_string().contains("input object is empty"), "{err}");
        let err = sort_bytes(SortFormat::Text, b"1\nabc\n").unwrap_err();
        assert!(err.to_string().contains("line 2 is not a number"), "{err}");
        let err = sort_bytes(SortFormat::Terasort, &[0u8; 150]).unwrap_err();
        assert!(err.to_string().contains("150 bytes"), "{err}");
        let err = SortParams::from_value(&json!({"format": "csv"})).unwrap_err();
        assert!(err.to_string().contains("unknown variant `csv`"), "{err}");
    }
}
