//! A minimal, deterministic ZIP writer and reader for Lambda deployment packages.
//!
//! Lambda needs `bootstrap` at the root with its executable bit set; the bit
//! travels in the Unix mode of the central directory ("version made by" Unix).
//! Timestamps are fixed so that the same binaries give the same zip (and the
//! same `CodeSha256`, which lets `deploy` see that nothing changed).

use std::io::{Read, Write};

/// Why a zip could not be read.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum ZipError {
    /// Structure error.
    #[error("corrupt zip: {0}")]
    Corrupt(String),
    /// A feature this reader does not handle (zip64, encryption, other methods).
    #[error("unsupported zip: {0}")]
    Unsupported(String),
}

/// One file in a zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipEntry {
    /// Path inside the archive (`/`-separated).
    pub name: String,
    /// Unix permission bits (e.g. `0o755`).
    pub mode: u32,
    /// Uncompressed content.
    pub data: Vec<u8>,
}

const LOCAL_SIG: u32 = 0x0403_4b50;
const CENTRAL_SIG: u32 = 0x0201_4b50;
const END_SIG: u32 = 0x0605_4b50;
/// 1980-01-01, the earliest DOS date: a fixed stamp keeps builds reproducible.
const DOS_DATE: u16 = (1 << 5) | 1;
const S_IFREG: u32 = 0o100_000;

/// Writes the entries as a deflate-compressed zip.
pub fn write_zip(entries: &[ZipEntry]) -> Result<Vec<u8>, ZipError> {
    let mut out = Vec::new();
    let mut central = Vec::new();
    for e in entries {
        let too_big = || ZipError::Unsupported(format!("{} is larger than 4 GiB", e.name));
        let offset = u32::try_from(out.len()).map_err(|_| too_big())?;
        let mut enc = flate2::write::DeflateEncoder::new(Vec::new(), flate2::Compression::best());
        enc.write_all(&e.data).expect("writing to memory");
        let compressed = enc.finish().expect("writing to memory");
        let crc = crc32fast::hash(&e.data);
        let usize_ = u32::try_from(e.data.len()).map_err(|_| too_big())?;
        let csize = u32::try_from(compressed.len()).map_err(|_| too_big())?;
        let name = e.name.as_bytes();
        let name_len =
            u16::try_from(name.len()).map_err(|_| ZipError::Unsupported("name too long".into()))?;

        let common = |v: &mut Vec<u8>| {
            v.extend_from_slice(&20u16.to_le_bytes()); // version needed: 2.0 (deflate)
            v.extend_from_slice(&0x0800u16.to_le_bytes()); // UTF-8 names
            v.extend_from_slice(&8u16.to_le_bytes()); // deflate
            v.extend_from_slice(&0u16.to_le_bytes());
            v.extend_from_slice(&DOS_DATE.to_le_bytes());
            v.extend_from_slice(&crc.to_le_bytes());
            v.extend_from_slice(&csize.to_le_bytes());
            v.extend_from_slice(&usize_.to_le_bytes());
            v.extend_from_slice(&name_len.to_le_bytes());
            v.extend_from_slice(&0u16.to_le_bytes()); // extra
        };
        out.extend_from_slice(&LOCAL_SIG.to_le_bytes());
        common(&mut out);
        out.extend_from_slice(name);
        out.extend_from_slice(&compressed);

        central.extend_from_slice(&CENTRAL_SIG.to_le_bytes());
        central.extend_from_slice(&((3u16 << 8) | 20).to_le_bytes()); // made by Unix
        common(&mut central);
        central.extend_from_slice(&0u16.to_le_bytes()); // comment
        central.extend_from_slice(&0u16.to_le_bytes()); // disk
        central.extend_from_slice(&0u16.to_le_bytes()); // internal attributes
        central.extend_from_slice(&((S_IFREG | (e.mode & 0o7777)) << 16).to_le_bytes());
        central.extend_from_slice(&offset.to_le_bytes());
        central.extend_from_slice(name);
    }
    let count = u16::try_from(entries.len())
        .map_err(|_| ZipError::Unsupported("too many entries".into()))?;
    let cd_offset =
        u32::try_from(out.len()).map_err(|_| ZipError::Unsupported("archive over 4 GiB".into()))?;
    let cd_size = central.len() as u32;
    out.extend_from_slice(&central);
    out.extend_from_slice(&END_SIG.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&count.to_le_bytes());
    out.extend_from_slice(&cd_size.to_le_bytes());
    out.extend_from_slice(&cd_offset.to_le_bytes());
    out.extend_from_slice(&0u16.to_le_bytes());
    Ok(out)
}

fn u16_at(b: &[u8], off: usize) -> Result<u16, ZipError> {
    b.get(off..off + 2)
        .map(|s| u16::from_le_bytes([s[0], s[1]]))
        .ok_or_else(|| ZipError::Corrupt(format!("truncated at byte {off}")))
}

fn u32_at(b: &[u8], off: usize) -> Result<u32, ZipError> {
    b.get(off..off + 4)
        .map(|s| u32::from_le_bytes(s.try_into().expect("4 bytes")))
        .ok_or_else(|| ZipError::Corrupt(format!("truncated at byte {off}")))
}

/// Reads every entry of a zip (stored or deflated), checking each CRC.
pub fn read_zip(bytes: &[u8]) -> Result<Vec<ZipEntry>, ZipError> {
    let end = (0..=bytes.len().saturating_sub(22))
        .rev()
        .find(|&i| u32_at(bytes, i).ok() == Some(END_SIG))
        .ok_or_else(|| ZipError::Corrupt("no end-of-central-directory record".into()))?;
    let count = usize::from(u16_at(bytes, end + 10)?);
    let mut off = u32_at(bytes, end + 16)? as usize;
    let mut entries = Vec::with_capacity(count);
    for _ in 0..count {
        if u32_at(bytes, off)? != CENTRAL_SIG {
            return Err(ZipError::Corrupt(format!(
                "bad central directory entry at {off}"
            )));
        }
        let made_by = u16_at(bytes, off + 4)?;
        let flags = u16_at(bytes, off + 8)?;
        let method = u16_at(bytes, off + 10)?;
        let crc = u32_at(bytes, off + 16)?;
        let csize = u32_at(bytes, off + 20)? as usize;
        let usize_ = u32_at(bytes, off + 24)? as usize;
        let name_len = usize::from(u16_at(bytes, off + 28)?);
        let extra_len = usize::from(u16_at(bytes, off + 30)?);
        let comment_len = usize::from(u16_at(bytes, off + 32)?);
        let external = u32_at(bytes, off + 38)?;
        let local = u32_at(bytes, off + 42)? as usize;
        let name = bytes
            .get(off + 46..off + 46 + name_len)
            .ok_or_else(|| ZipError::Corrupt("truncated name".into()))?;
        let name = String::from_utf8_lossy(name).into_owned();
        if flags & 1 != 0 {
            return Err(ZipError::Unsupported(format!("{name} is encrypted")));
        }
        if csize == u32::MAX as usize || usize_ == u32::MAX as usize {
            return Err(ZipError::Unsupported(format!("{name} uses zip64")));
        }
        let mode = if made_by >> 8 == 3 {
            (external >> 16) & 0o7777
        } else {
            0o644
        };
        if u32_at(bytes, local)? != LOCAL_SIG {
            return Err(ZipError::Corrupt(format!("bad local header for {name}")));
        }
        let data_start = local
            + 30
            + usize::from(u16_at(bytes, local + 26)?)
            + usize::from(u16_at(bytes, local + 28)?);
        let raw = bytes
            .get(data_start..data_start + csize)
            .ok_or_else(|| ZipError::Corrupt(format!("truncated data of {name}")))?;
        let data = match method {
            0 => raw.to_vec(),
            8 => {
                let mut d = Vec::with_capacity(usize_);
                flate2::read::DeflateDecoder::new(raw)
                    .read_to_end(&mut d)
                    .map_err(|e| ZipError::Corrupt(format!("{name}: {e}")))?;
                d
            }
            m => {
                return Err(ZipError::Unsupported(format!(
                    "{name} uses compression method {m}"
                )));
            }
        };
        if data.len() != usize_ || crc32fast::hash(&data) != crc {
            return Err(ZipError::Corrupt(format!("{name}: size or CRC mismatch")));
        }
        entries.push(ZipEntry { name, mode, data });
        off += 46 + name_len + extra_len + comment_len;
    }
    Ok(entries)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Vec<ZipEntry> {
        vec![
            ZipEntry {
                name: "bootstrap".into(),
                mode: 0o755,
                data: b"\x7fELF pretend".repeat(100),
            },
            ZipEntry {
                name: "bin/propack-bench".into(),
                mode: 0o755,
                data: (0..5000u32).flat_map(|i| i.to_le_bytes()).collect(),
            },
            ZipEntry {
                name: "README".into(),
                mode: 0o644,
                data: Vec::new(),
            },
        ]
    }

    #[test]
    fn round_trips_names_modes_and_content() {
        let z = write_zip(&sample()).unwrap();
        assert_eq!(read_zip(&z).unwrap(), sample());
        // Deterministic: the same input gives the same bytes.
        assert_eq!(z, write_zip(&sample()).unwrap());
    }

    #[test]
    fn unzip_agrees_when_available() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, write_zip(&sample()).unwrap()).unwrap();
        let Ok(out) = std::process::Command::new("python3")
            .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip()); [print(i.filename, oct(i.external_attr>>16)) for i in z.infolist()]"])
            .arg(&path)
            .output()
        else {
            eprintln!("skipping: python3 not available to cross-check the zip");
            return;
        };
        let text = String::from_utf8_lossy(&out.stdout);
        assert!(
            out.status.success(),
            "{text} {}",
            String::from_utf8_lossy(&out.stderr)
        );
        assert!(text.starts_with("None\n"), "{text}");
        assert!(text.contains("bootstrap 0o100755"), "{text}");
        assert!(text.contains("bin/propack-bench 0o100755"), "{text}");
    }

    #[test]
    fn corruption_is_detected() {
        let mut z = write_zip(&sample()).unwrap();
        z[40] ^= 0xff;
        assert!(read_zip(&z).is_err());
        assert!(read_zip(b"not a zip").is_err());
    }
}
