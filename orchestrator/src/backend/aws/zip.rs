//! Reproducible Lambda zips on the `zip` crate (the one cargo-lambda uses): sorted entries, fixed timestamps, Unix modes.
//!
//! Lambda needs `bootstrap` at the root with its executable bit set; the bit
//! travels in the Unix mode of the central directory ("version made by" Unix).
//! Entries are sorted and timestamps fixed so that the same files give the same
//! zip (and the same `CodeSha256`, which lets `deploy` see that nothing changed).

use std::io::{Cursor, Read, Write};

use zip::write::SimpleFileOptions;
use zip::{CompressionMethod, DateTime, ZipArchive, ZipWriter};

/// Why a zip could not be written or read.
#[derive(Debug, thiserror::Error)]
pub enum ZipError {
    /// Two entries would have the same path.
    #[error("two files would be {0} in the zip")]
    Duplicate(String),
    /// The archive is corrupt or uses a feature this build does not read.
    #[error("zip: {0}")]
    Zip(#[from] zip::result::ZipError),
    /// Reading an entry's content failed (corrupt deflate stream, CRC mismatch).
    #[error("zip entry {name}: {source}")]
    Entry {
        /// The entry.
        name: String,
        /// The error.
        #[source]
        source: std::io::Error,
    },
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

/// One file of a zip as its central directory lists it, without its content.
#[derive(Debug, Clone, PartialEq, Eq, serde::Serialize)]
pub struct Listed {
    /// Path inside the archive.
    pub name: String,
    /// Unix permission bits (`0o644` when the zip was not made on Unix).
    pub mode: u32,
    /// Uncompressed size, bytes.
    pub size: u64,
}

/// Writes the entries, sorted by name, as a deflate-compressed zip dated 1980-01-01.
pub fn write_zip(entries: &[ZipEntry]) -> Result<Vec<u8>, ZipError> {
    let mut sorted: Vec<&ZipEntry> = entries.iter().collect();
    sorted.sort_by(|a, b| a.name.cmp(&b.name));
    if let Some(w) = sorted.windows(2).find(|w| w[0].name == w[1].name) {
        return Err(ZipError::Duplicate(w[0].name.clone()));
    }
    let mut zip = ZipWriter::new(Cursor::new(Vec::new()));
    for e in sorted {
        let options = SimpleFileOptions::default()
            .compression_method(CompressionMethod::Deflated)
            .compression_level(Some(9))
            .last_modified_time(DateTime::DEFAULT)
            .unix_permissions(e.mode);
        zip.start_file(e.name.as_str(), options)?;
        zip.write_all(&e.data).map_err(|source| ZipError::Entry {
            name: e.name.clone(),
            source,
        })?;
    }
    Ok(zip.finish()?.into_inner())
}

fn mode_of(mode: Option<u32>) -> u32 {
    mode.map_or(0o644, |m| m & 0o7777)
}

/// Reads every file of a zip (directories are skipped), checking each CRC.
pub fn read_zip(bytes: &[u8]) -> Result<Vec<ZipEntry>, ZipError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))?;
    let mut entries = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let mut file = archive.by_index(i)?;
        if file.is_dir() {
            continue;
        }
        let name = file.name()?.into_owned();
        let mode = mode_of(file.unix_mode());
        let mut data = Vec::with_capacity(usize::try_from(file.size()).unwrap_or(0));
        file.read_to_end(&mut data)
            .map_err(|source| ZipError::Entry {
                name: name.clone(),
                source,
            })?;
        entries.push(ZipEntry { name, mode, data });
    }
    Ok(entries)
}

/// Lists a zip's files from its central directory (nothing is decompressed).
pub fn list_zip(bytes: &[u8]) -> Result<Vec<Listed>, ZipError> {
    let mut archive = ZipArchive::new(Cursor::new(bytes))?;
    let mut out = Vec::with_capacity(archive.len());
    for i in 0..archive.len() {
        let file = archive.by_index_raw(i)?;
        if file.is_dir() {
            continue;
        }
        out.push(Listed {
            name: file.name()?.into_owned(),
            mode: mode_of(file.unix_mode()),
            size: file.size(),
        });
    }
    Ok(out)
}

/// The sum of a zip's uncompressed sizes: what it occupies once Lambda extracts it.
pub fn unzipped_size(bytes: &[u8]) -> Result<u64, ZipError> {
    Ok(list_zip(bytes)?.iter().map(|f| f.size).sum())
}

#[cfg(test)]
mod tests {
    use super::*;

    /// In the sorted order the zip stores them.
    fn sample() -> Vec<ZipEntry> {
        vec![
            ZipEntry {
                name: "README".into(),
                mode: 0o644,
                data: Vec::new(),
            },
            ZipEntry {
                name: "bin/propack-bench".into(),
                mode: 0o755,
                data: (0..5000u32).flat_map(|i| i.to_le_bytes()).collect(),
            },
            ZipEntry {
                name: "bootstrap".into(),
                mode: 0o755,
                data: b"\x7fELF pretend".repeat(100),
            },
        ]
    }

    #[test]
    fn round_trips_names_modes_and_content() {
        let z = write_zip(&sample()).unwrap();
        assert_eq!(read_zip(&z).unwrap(), sample());
        // Deterministic: the same input gives the same bytes, whatever its order.
        let mut reversed = sample();
        reversed.reverse();
        assert_eq!(z, write_zip(&reversed).unwrap());
        assert_eq!(
            list_zip(&z).unwrap(),
            vec![
                Listed {
                    name: "README".into(),
                    mode: 0o644,
                    size: 0
                },
                Listed {
                    name: "bin/propack-bench".into(),
                    mode: 0o755,
                    size: 20_000
                },
                Listed {
                    name: "bootstrap".into(),
                    mode: 0o755,
                    size: 1_200
                },
            ]
        );
        assert_eq!(unzipped_size(&z).unwrap(), 21_200);
    }

    #[test]
    fn duplicate_paths_are_refused() {
        let mut entries = sample();
        entries.push(entries[2].clone());
        let err = write_zip(&entries).unwrap_err().to_string();
        assert_eq!(err, "two files would be bootstrap in the zip");
    }

    #[test]
    fn unzip_agrees_when_available() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("t.zip");
        std::fs::write(&path, write_zip(&sample()).unwrap()).unwrap();
        let Ok(out) = std::process::Command::new("python3")
            .args(["-c", "import sys,zipfile; z=zipfile.ZipFile(sys.argv[1]); print(z.testzip()); [print(i.filename, oct(i.external_attr>>16), i.date_time) for i in z.infolist()]"])
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
        assert!(
            text.contains("bootstrap 0o100755 (1980, 1, 1, 0, 0, 0)"),
            "{text}"
        );
        assert!(text.contains("bin/propack-bench 0o100755"), "{text}");
        assert!(text.contains("README 0o100644"), "{text}");
    }

    #[test]
    fn corruption_is_detected() {
        let mut z = write_zip(&sample()).unwrap();
        // Flip a byte inside bin/propack-bench's compressed data (after its local header).
        let header = ZipArchive::new(Cursor::new(&z[..]))
            .unwrap()
            .by_index_raw(1)
            .unwrap()
            .header_start() as usize;
        let data = header + 30 + "bin/propack-bench".len();
        z[data + 10] ^= 0xff;
        assert!(read_zip(&z).is_err());
        assert!(read_zip(b"not a zip").is_err());
    }
}
