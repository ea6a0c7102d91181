//! Building the Lambda zips: cargo-lambda with a glibc-pinned target, then a symbol-version
//! check of every binary so that a zip which could not start on its runtime is never written.
//!
//! Two layouts: a function zip (`bootstrap` at the root, user files beside it under
//! `/var/task`), or a layer zip (the runtime under `/opt`) plus, when there are user
//! files, a separate small function zip holding only them.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::elf::{self, EM_AARCH64, EM_X86_64, GlibcVersion};
use super::zip::{self, ZipEntry};

pub mod cloud;
mod include;

pub use crate::function::{EXEC_WRAPPER_PATH, LambdaRuntime};
pub use include::{
    Include, IncludeError, LAYER_EXTRAS, LayerExtra, ZipSource, collect_includes, find_layer_extras,
};

impl LambdaRuntime {
    /// The newest glibc the runtime ships: no binary may need a newer symbol version.
    pub fn max_glibc(self) -> GlibcVersion {
        match self {
            Self::ProvidedAl2023 | Self::Python313 | Self::Nodejs22 => GlibcVersion(2, 34, 0),
            Self::ProvidedAl2 => GlibcVersion(2, 26, 0),
        }
    }
}

/// The instruction-set architecture of the function.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LambdaArch {
    /// x86_64.
    #[default]
    #[value(name = "x86_64")]
    X86_64,
    /// Graviton (aarch64).
    #[value(name = "arm64")]
    Arm64,
}

impl LambdaArch {
    /// Lambda's name for it.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64",
            Self::Arm64 => "arm64",
        }
    }

    /// The Rust target triple.
    pub fn triple(self) -> &'static str {
        match self {
            Self::X86_64 => "x86_64-unknown-linux-gnu",
            Self::Arm64 => "aarch64-unknown-linux-gnu",
        }
    }

    /// The ELF `e_machine` of its binaries.
    pub fn elf_machine(self) -> u16 {
        match self {
            Self::X86_64 => EM_X86_64,
            Self::Arm64 => EM_AARCH64,
        }
    }
}

/// Why packaging failed.
#[derive(Debug, thiserror::Error)]
pub enum PackageError {
    /// The Rust standard library for the target is not installed.
    #[error(
        "the {triple} standard library is not installed; install it with:\n    rustup target add {triple}"
    )]
    MissingTarget {
        /// The target triple.
        triple: String,
    },
    /// cargo-lambda is not installed.
    #[error(
        "cargo-lambda not found ({0}); install it with `pip install cargo-lambda ziglang` \
         (or set CARGO_LAMBDA to its path)"
    )]
    NoCargoLambda(String),
    /// The build failed.
    #[error("`{command}` failed with {status}")]
    BuildFailed {
        /// The command line.
        command: String,
        /// Its exit status.
        status: String,
    },
    /// A built binary would not start on the chosen runtime.
    #[error(
        "{binary} would not start on {runtime}: it needs {needs}, but {runtime} has glibc {max}; \
         build with --target {triple}.{max_major}.{max_minor} (orchestrator package does) or choose a newer runtime"
    )]
    GlibcTooNew {
        /// The binary's path inside the zip.
        binary: String,
        /// The runtime.
        runtime: &'static str,
        /// The offending versions and example symbols.
        needs: String,
        /// glibc of the runtime.
        max: GlibcVersion,
        /// For the hint.
        triple: &'static str,
        /// For the hint.
        max_major: u32,
        /// For the hint.
        max_minor: u32,
    },
    /// A binary is for another CPU, or not a dynamic executable.
    #[error("{binary}: {message}")]
    BadBinary {
        /// The binary.
        binary: String,
        /// What is wrong.
        message: String,
    },
    /// I/O.
    #[error("{}: {source}", path.display())]
    Io {
        /// The path.
        path: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// Zip writing or re-reading.
    #[error(transparent)]
    Zip(#[from] zip::ZipError),
    /// An `--include` that cannot be packaged.
    #[error(transparent)]
    Include(#[from] IncludeError),
    /// `--prebuilt` does not name a bootstrap.
    #[error("--prebuilt {}: {message}", path.display())]
    Prebuilt {
        /// The path given.
        path: PathBuf,
        /// What is wrong.
        message: String,
    },
    /// Function and layers would exceed Lambda's unzipped limit.
    #[error(
        "the package is {} bytes unzipped ({parts}), above Lambda's limit of {} bytes ({} MiB) \
         for a function and its layers together",
        thousands(*total), thousands(*limit), limit / MIB
    )]
    TooLarge {
        /// Each part and its unzipped size.
        parts: String,
        /// Their sum.
        total: u64,
        /// The limit.
        limit: u64,
    },
}

const MIB: u64 = 1024 * 1024;

/// Lambda's limit on a function's code and all its layers, unzipped (262,144,000 bytes).
pub const UNZIPPED_LIMIT: u64 = 250 * MIB;

/// The largest zip Lambda accepts inside the request (`ZipFile`); larger ones go through S3.
pub const DIRECT_UPLOAD_LIMIT: u64 = 50 * MIB;

/// `1234567` → `1,234,567`.
pub fn thousands(n: u64) -> String {
    let digits = n.to_string();
    let mut out = String::new();
    for (i, c) in digits.chars().enumerate() {
        if i > 0 && (digits.len() - i).is_multiple_of(3) {
            out.push(',');
        }
        out.push(c);
    }
    out
}

/// Refuses parts (name, unzipped bytes) whose sum exceeds `limit`; returns the sum.
pub fn check_unzipped_limit(parts: &[(String, u64)], limit: u64) -> Result<u64, PackageError> {
    let total: u64 = parts.iter().map(|(_, b)| b).sum();
    if total <= limit {
        return Ok(total);
    }
    let parts = parts
        .iter()
        .map(|(what, b)| format!("{what} {}", thousands(*b)))
        .collect::<Vec<_>>()
        .join(" + ");
    Err(PackageError::TooLarge {
        parts,
        total,
        limit,
    })
}

/// The binaries a ProPack Lambda zip carries: (path in the zip, cargo package, binary name).
pub const BINARIES: &[(&str, &str, &str)] = &[
    ("bootstrap", "propack-runtime", "bootstrap"),
    ("bin/propack-bench", "propack-bench", "propack-bench"),
];

/// Zip path of the runtime binary; Lambda starts `/var/task/bootstrap` or `/opt/bootstrap`.
pub const BOOTSTRAP: &str = "bootstrap";

/// File name of the function zip for a runtime and architecture.
pub fn zip_name(runtime: LambdaRuntime, arch: LambdaArch) -> String {
    format!("propack-{}-{}.zip", runtime.as_str(), arch.as_str())
}

/// File name of the layer zip (`package --layer`).
pub fn layer_zip_name(runtime: LambdaRuntime, arch: LambdaArch) -> String {
    format!("propack-layer-{}-{}.zip", runtime.as_str(), arch.as_str())
}

/// File name of the function zip holding only the included files (`package --layer --include`).
pub fn code_zip_name(runtime: LambdaRuntime, arch: LambdaArch) -> String {
    format!("propack-code-{}-{}.zip", runtime.as_str(), arch.as_str())
}

/// Fails with the `rustup target add` instruction when `arch`'s standard library is missing.
pub fn check_target_installed(arch: LambdaArch) -> Result<(), PackageError> {
    let sysroot = Command::new(std::env::var("RUSTC").unwrap_or_else(|_| "rustc".into()))
        .args(["--print", "sysroot"])
        .output()
        .map_err(|e| PackageError::Io {
            path: "rustc".into(),
            source: e,
        })?;
    let sysroot = PathBuf::from(String::from_utf8_lossy(&sysroot.stdout).trim());
    check_target_in_sysroot(&sysroot, arch)
}

/// As [`check_target_installed`], for a given sysroot.
pub fn check_target_in_sysroot(sysroot: &Path, arch: LambdaArch) -> Result<(), PackageError> {
    let lib = sysroot.join("lib/rustlib").join(arch.triple()).join("lib");
    let has_std = std::fs::read_dir(&lib)
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with("libstd-"))
        })
        .unwrap_or(false);
    if has_std {
        Ok(())
    } else {
        Err(PackageError::MissingTarget {
            triple: arch.triple().to_owned(),
        })
    }
}

/// The cargo-lambda build: release, glibc pinned by the target suffix; the shipped binaries,
/// or with `bin` that workspace binary alone (it becomes the function's `bootstrap`).
///
/// `CARGO_PROFILE_RELEASE_PANIC=unwind` is set explicitly: built-in tasks are isolated
/// with `catch_unwind`, which a `panic = "abort"` build would silently turn into
/// "one panicking task kills the whole batch".
pub fn build_command(
    cargo_lambda: &Path,
    workspace: &Path,
    runtime: LambdaRuntime,
    arch: LambdaArch,
    bin: Option<&str>,
) -> Command {
    let max = runtime.max_glibc();
    let mut cmd = Command::new(cargo_lambda);
    cmd.current_dir(workspace)
        .args(["lambda", "build", "--release", "--target"])
        .arg(format!("{}.{}.{}", arch.triple(), max.0, max.1))
        .env("CARGO_PROFILE_RELEASE_PANIC", "unwind");
    match bin {
        // Any member may hold it (examples need not be default members).
        Some(bin) => {
            cmd.args(["--workspace", "--bin", bin]);
        }
        None => {
            for (_, package, bin) in BINARIES {
                cmd.args(["--package", package, "--bin", bin]);
            }
        }
    }
    cmd
}

/// Where cargo-lambda leaves each built binary: `target/lambda/<bin>/bootstrap`
/// (it renames every binary to `bootstrap`, one directory per binary).
pub fn lambda_outputs(target_dir: &Path, bin: Option<&str>) -> Vec<(String, PathBuf)> {
    let lambda = target_dir.join("lambda");
    match bin {
        Some(bin) => vec![(BOOTSTRAP.to_owned(), lambda.join(bin).join("bootstrap"))],
        None => BINARIES
            .iter()
            .map(|(zip_path, _, bin)| ((*zip_path).to_owned(), lambda.join(bin).join("bootstrap")))
            .collect(),
    }
}

/// The binaries of `--prebuilt`: a file is the bootstrap alone; a directory must hold
/// `bootstrap` and may hold `propack-bench`.
pub fn prebuilt_outputs(path: &Path) -> Result<Vec<(String, PathBuf)>, PackageError> {
    let bad = |message: String| PackageError::Prebuilt {
        path: path.to_owned(),
        message,
    };
    let meta = std::fs::metadata(path).map_err(|e| bad(e.to_string()))?;
    if meta.is_file() {
        return Ok(vec![(BOOTSTRAP.to_owned(), path.to_owned())]);
    }
    let mut out = Vec::new();
    for (zip_path, _, bin) in BINARIES {
        let file = path.join(bin);
        if file.is_file() {
            out.push(((*zip_path).to_owned(), file));
        } else if *zip_path == BOOTSTRAP {
            return Err(bad(format!(
                "no {bin} in this directory (give the directory holding it, or the file itself)"
            )));
        }
    }
    Ok(out)
}

/// Checks one binary against the runtime and architecture.
pub fn check_binary(
    name: &str,
    data: &[u8],
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Result<Option<GlibcVersion>, PackageError> {
    let bad = |message: String| PackageError::BadBinary {
        binary: name.to_owned(),
        message,
    };
    let needs = elf::version_needs(data).map_err(|e| bad(e.to_string()))?;
    if needs.machine != arch.elf_machine() {
        return Err(bad(format!(
            "built for ELF machine {} but the function is {} (machine {})",
            needs.machine,
            arch.as_str(),
            arch.elf_machine()
        )));
    }
    let above = needs.above(runtime.max_glibc());
    if !above.is_empty() {
        let max = runtime.max_glibc();
        return Err(PackageError::GlibcTooNew {
            binary: name.to_owned(),
            runtime: runtime.as_str(),
            needs: above.join(", "),
            max,
            triple: arch.triple(),
            max_major: max.0,
            max_minor: max.1,
        });
    }
    Ok(needs.max_glibc())
}

/// The batch of [`check_unwinding`]: one task panics, one must still succeed.
const PANIC_BATCH: &str = r#"{"run_id":"package-check","tasks":[{"id":"boom","builtin":{"name":"panic"}},{"id":"ok","builtin":{"name":"noop"}}]}"#;

/// Runs `bootstrap run --batch -` with a panicking task next to a healthy one and requires
/// the panic to fail only its own task. A `panic = "abort"` build kills the whole batch
/// instead, so this refuses exactly the builds whose failure isolation is gone.
/// Only possible when the binary runs on this machine (same architecture).
pub fn check_unwinding(bootstrap: &Path) -> Result<(), PackageError> {
    use std::io::Write;
    let bad = |message: String| PackageError::BadBinary {
        binary: bootstrap.display().to_string(),
        message,
    };
    let mut child = Command::new(bootstrap)
        .args(["run", "--batch", "-"])
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .map_err(|source| PackageError::Io {
            path: bootstrap.to_owned(),
            source,
        })?;
    child
        .stdin
        .take()
        .expect("stdin is piped")
        .write_all(PANIC_BATCH.as_bytes())
        .map_err(|source| PackageError::Io {
            path: bootstrap.to_owned(),
            source,
        })?;
    let out = child
        .wait_with_output()
        .map_err(|source| PackageError::Io {
            path: bootstrap.to_owned(),
            source,
        })?;
    let result: serde_json::Value = serde_json::from_slice(&out.stdout).map_err(|_| {
        bad(format!(
            "a panicking built-in task ended the whole batch ({}): the build lost panic = \"unwind\", \
             so one failing task would kill its k neighbours",
            out.status
        ))
    })?;
    let status = |id: &str| {
        result["tasks"]
            .as_array()
            .and_then(|ts| ts.iter().find(|t| t["id"] == id))
            .and_then(|t| t["status"].as_str())
            .unwrap_or("missing")
            .to_owned()
    };
    match (status("boom").as_str(), status("ok").as_str()) {
        ("failed", "succeeded") => Ok(()),
        (boom, ok) => Err(bad(format!(
            "panic isolation check: the panicking task is {boom:?} and its neighbour {ok:?} \
             (expected \"failed\" and \"succeeded\")"
        ))),
    }
}

/// One zip that was written.
#[derive(Debug, Clone, serde::Serialize)]
pub struct WrittenZip {
    /// The zip.
    pub zip: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// What it occupies once extracted.
    pub unzipped_bytes: u64,
    /// Paths inside the zip, sorted.
    pub entries: Vec<String>,
}

/// What was packaged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Packaged {
    /// `function` (bootstrap at the root) or `layer` (runtime under `/opt`).
    pub kind: &'static str,
    /// The function zip, or the layer zip.
    #[serde(flatten)]
    pub main: WrittenZip,
    /// The runtime.
    pub runtime: &'static str,
    /// The architecture.
    pub arch: &'static str,
    /// Newest glibc version needed by any binary (None: static).
    pub max_glibc: Option<String>,
    /// With a layer and included files: the function zip that holds them.
    pub code: Option<WrittenZip>,
}

/// What goes into the zips.
#[derive(Debug, Clone, Default)]
pub struct PackageInput {
    /// The runtime binaries as (path in the zip, file), `bootstrap` among them; mode 755.
    pub binaries: Vec<(String, PathBuf)>,
    /// The user's files (`--include`).
    pub includes: Vec<ZipSource>,
    /// Files only a layer carries (the [`LAYER_EXTRAS`] found).
    pub layer_extras: Vec<ZipSource>,
    /// Write a layer zip (and a separate function zip for `includes`, if any).
    pub layer: bool,
}

/// Where and for what to package.
#[derive(Debug, Clone)]
pub struct PackageOptions {
    /// Directory of the zips.
    pub out_dir: PathBuf,
    /// The runtime.
    pub runtime: LambdaRuntime,
    /// The architecture.
    pub arch: LambdaArch,
    /// The unzipped limit of function plus layers ([`UNZIPPED_LIMIT`]).
    pub unzipped_limit: u64,
}

impl PackageOptions {
    /// Lambda's limits, zips in `out_dir`.
    pub fn new(out_dir: impl Into<PathBuf>, runtime: LambdaRuntime, arch: LambdaArch) -> Self {
        Self {
            out_dir: out_dir.into(),
            runtime,
            arch,
            unzipped_limit: UNZIPPED_LIMIT,
        }
    }
}

impl PackageInput {
    /// The runtime binaries (and, for a layer, its extras) as zip sources.
    fn runtime_files(&self) -> Result<Vec<ZipSource>, PackageError> {
        let mut files = Vec::new();
        for (zip_path, path) in &self.binaries {
            let size = std::fs::metadata(path)
                .map_err(|source| PackageError::Io {
                    path: path.clone(),
                    source,
                })?
                .len();
            files.push(ZipSource {
                zip_path: zip_path.clone(),
                source: path.clone(),
                mode: 0o755,
                size,
            });
        }
        if self.layer {
            files.extend(self.layer_extras.iter().cloned());
        }
        Ok(files)
    }

    /// Every zip path of the package, to refuse collisions before anything is built.
    pub fn check_paths(&self) -> Result<(), PackageError> {
        let runtime = self
            .binaries
            .iter()
            .map(|(p, _)| p.as_str())
            .chain(self.layer_extras.iter().map(|f| f.zip_path.as_str()));
        let user = self.includes.iter().map(|f| f.zip_path.as_str());
        let mut seen = std::collections::BTreeSet::new();
        let mut user_seen = std::collections::BTreeSet::new();
        for p in runtime {
            seen.insert(p);
        }
        for p in user {
            // In a layer package the user's files are in their own zip.
            let clash = !user_seen.insert(p) || (!self.layer && seen.contains(p));
            if clash {
                return Err(IncludeError::Collision(p.to_owned()).into());
            }
        }
        Ok(())
    }
}

fn read_sources(files: &[ZipSource]) -> Result<Vec<ZipEntry>, PackageError> {
    files
        .iter()
        .map(|f| {
            let data = std::fs::read(&f.source).map_err(|source| PackageError::Io {
                path: f.source.clone(),
                source,
            })?;
            Ok(ZipEntry {
                name: f.zip_path.clone(),
                mode: f.mode,
                data,
            })
        })
        .collect()
}

/// Reads the files and writes them as one reproducible zip (e.g. `deploy --code DIR`).
pub fn zip_files(files: &[ZipSource]) -> Result<Vec<u8>, PackageError> {
    Ok(zip::write_zip(&read_sources(files)?)?)
}

fn unzipped(files: &[ZipSource]) -> u64 {
    files.iter().map(|f| f.size).sum()
}

fn write_out(dir: &Path, name: String, bytes: &[u8]) -> Result<WrittenZip, PackageError> {
    let path = dir.join(name);
    std::fs::write(&path, bytes).map_err(|source| PackageError::Io {
        path: path.clone(),
        source,
    })?;
    let listing = zip::list_zip(bytes)?;
    Ok(WrittenZip {
        zip: path,
        bytes: bytes.len() as u64,
        unzipped_bytes: listing.iter().map(|e| e.size).sum(),
        entries: listing.into_iter().map(|e| e.name).collect(),
    })
}

/// Writes the function zip (or the layer zip, plus a function zip for the includes).
///
/// The size limit is checked on file sizes before anything is read; every zip is built
/// in memory, re-read and checked (executable `bootstrap` at the root, no binary needing
/// a newer glibc than the runtime's), and only then written, so a refused package leaves
/// nothing behind and what is on disk is exactly what was checked.
pub fn package(input: &PackageInput, opts: &PackageOptions) -> Result<Packaged, PackageError> {
    input.check_paths()?;
    let (rt, arch) = (opts.runtime, opts.arch);
    let mut main = input.runtime_files()?;
    let code = if input.layer {
        input.includes.clone()
    } else {
        main.extend(input.includes.iter().cloned());
        Vec::new()
    };
    let kind = if input.layer { "layer" } else { "function" };
    let mut parts = vec![(format!("{kind} zip"), unzipped(&main))];
    if !code.is_empty() {
        parts.push(("function zip".to_owned(), unzipped(&code)));
    }
    check_unzipped_limit(&parts, opts.unzipped_limit)?;

    let main_bytes = zip_files(&main)?;
    let max_glibc = verify_zip(&main_bytes, rt, arch)?;
    let code_bytes = if code.is_empty() {
        None
    } else {
        let bytes = zip_files(&code)?;
        check_zip_binaries(&bytes, rt, arch)?;
        Some(bytes)
    };

    std::fs::create_dir_all(&opts.out_dir).map_err(|source| PackageError::Io {
        path: opts.out_dir.clone(),
        source,
    })?;
    let main_name = if input.layer {
        layer_zip_name(rt, arch)
    } else {
        zip_name(rt, arch)
    };
    let main = write_out(&opts.out_dir, main_name, &main_bytes)?;
    let code = code_bytes
        .map(|b| write_out(&opts.out_dir, code_zip_name(rt, arch), &b))
        .transpose()?;
    Ok(Packaged {
        kind,
        main,
        runtime: rt.as_str(),
        arch: arch.as_str(),
        max_glibc: max_glibc.map(|v| v.to_string()),
        code,
    })
}

/// Checks every ELF file of a zip against the runtime and architecture; returns the newest
/// glibc needed.
pub fn check_zip_binaries(
    bytes: &[u8],
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Result<Option<GlibcVersion>, PackageError> {
    let mut elves: Vec<ZipEntry> = zip::read_zip(bytes)?
        .into_iter()
        .filter(|e| e.data.starts_with(b"\x7fELF"))
        .collect();
    // The entrypoint first: its error is the one that matters most.
    elves.sort_by_key(|e| e.name != BOOTSTRAP);
    let mut max = None;
    for e in &elves {
        max = max.max(check_binary(&e.name, &e.data, runtime, arch)?);
    }
    Ok(max)
}

/// Checks a zip the way Lambda will use it: an executable `bootstrap` at the root (of the
/// function, or of the layer: `/opt/bootstrap`), and no binary needing a newer glibc than
/// the runtime's. Returns the newest glibc needed.
pub fn verify_zip(
    bytes: &[u8],
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Result<Option<GlibcVersion>, PackageError> {
    let listing = zip::list_zip(bytes)?;
    let bootstrap = listing
        .iter()
        .find(|e| e.name == BOOTSTRAP)
        .ok_or_else(|| PackageError::BadBinary {
            binary: BOOTSTRAP.into(),
            message:
                "missing at the root of the zip: Lambda would fail with Runtime.InvalidEntrypoint"
                    .into(),
        })?;
    if bootstrap.mode & 0o111 == 0 {
        return Err(PackageError::BadBinary {
            binary: BOOTSTRAP.into(),
            message: format!(
                "not executable (mode {:o}): Lambda would fail with Runtime.InvalidEntrypoint",
                bootstrap.mode
            ),
        });
    }
    check_zip_binaries(bytes, runtime, arch)
}

#[cfg(test)]
mod tests {
    use std::str::FromStr;

    use super::*;
    use crate::backend::aws::elf::synthetic_elf;

    fn fixture_dir(versions: &[&str], machine: u16) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (_, _, bin) in BINARIES {
            std::fs::write(dir.path().join(bin), synthetic_elf(machine, versions)).unwrap();
        }
        dir
    }

    fn package_from_dir(
        bins: &Path,
        out: &Path,
        runtime: LambdaRuntime,
        arch: LambdaArch,
    ) -> Result<Packaged, PackageError> {
        let input = PackageInput {
            binaries: prebuilt_outputs(bins).unwrap(),
            ..Default::default()
        };
        package(&input, &PackageOptions::new(out, runtime, arch))
    }

    fn listing(zip_path: &Path) -> Vec<(String, u32, u64)> {
        zip::list_zip(&std::fs::read(zip_path).unwrap())
            .unwrap()
            .into_iter()
            .map(|e| (e.name, e.mode, e.size))
            .collect()
    }

    fn write_file(path: &Path, content: &str, mode: u32) {
        use std::os::unix::fs::PermissionsExt;
        std::fs::create_dir_all(path.parent().unwrap()).unwrap();
        std::fs::write(path, content).unwrap();
        std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode)).unwrap();
    }

    #[test]
    fn al2_refuses_glibc_2_34_and_al2023_accepts_it() {
        let bins = fixture_dir(&["GLIBC_2.2.5", "GLIBC_2.34"], EM_X86_64);
        let out = tempfile::tempdir().unwrap();
        let err = package_from_dir(
            bins.path(),
            out.path(),
            LambdaRuntime::ProvidedAl2,
            LambdaArch::X86_64,
        )
        .unwrap_err()
        .to_string();
        assert!(
            err.contains("bootstrap would not start on provided.al2"),
            "{err}"
        );
        assert!(err.contains("GLIBC_2.34 (sym_1)"), "{err}");
        assert!(err.contains("x86_64-unknown-linux-gnu.2.26"), "{err}");
        assert!(
            !out.path()
                .join(zip_name(LambdaRuntime::ProvidedAl2, LambdaArch::X86_64))
                .exists()
        );

        let p = package_from_dir(
            bins.path(),
            out.path(),
            LambdaRuntime::ProvidedAl2023,
            LambdaArch::X86_64,
        )
        .unwrap();
        assert_eq!(p.max_glibc.as_deref(), Some("2.34"));
        assert_eq!(p.main.entries, vec!["bin/propack-bench", "bootstrap"]);
        let size = synthetic_elf(EM_X86_64, &["GLIBC_2.2.5", "GLIBC_2.34"]).len() as u64;
        assert_eq!(
            listing(&p.main.zip),
            [
                ("bin/propack-bench".into(), 0o755, size),
                ("bootstrap".into(), 0o755, size)
            ]
        );
        assert_eq!(p.main.unzipped_bytes, 2 * size);
        assert!(p.code.is_none());
    }

    #[test]
    fn wrong_architecture_is_refused() {
        let bins = fixture_dir(&["GLIBC_2.17"], EM_X86_64);
        let out = tempfile::tempdir().unwrap();
        let err = package_from_dir(
            bins.path(),
            out.path(),
            LambdaRuntime::ProvidedAl2023,
            LambdaArch::Arm64,
        )
        .unwrap_err()
        .to_string();
        assert!(err.contains("ELF machine 62"), "{err}");
    }

    #[test]
    fn zip_without_executable_bootstrap_is_refused() {
        let data = synthetic_elf(EM_X86_64, &["GLIBC_2.17"]);
        let z = zip::write_zip(&[ZipEntry {
            name: "bootstrap".into(),
            mode: 0o644,
            data,
        }])
        .unwrap();
        let err = verify_zip(&z, LambdaRuntime::ProvidedAl2, LambdaArch::X86_64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("not executable"), "{err}");
        let z = zip::write_zip(&[]).unwrap();
        let err = verify_zip(&z, LambdaRuntime::ProvidedAl2, LambdaArch::X86_64)
            .unwrap_err()
            .to_string();
        assert!(err.contains("InvalidEntrypoint"), "{err}");
    }

    #[test]
    fn missing_std_gives_the_rustup_instruction() {
        let sysroot = tempfile::tempdir().unwrap();
        let err = check_target_in_sysroot(sysroot.path(), LambdaArch::Arm64)
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("rustup target add aarch64-unknown-linux-gnu"),
            "{err}"
        );
        let lib = sysroot
            .path()
            .join("lib/rustlib/aarch64-unknown-linux-gnu/lib");
        std::fs::create_dir_all(&lib).unwrap();
        std::fs::write(lib.join("libstd-0123.rlib"), b"").unwrap();
        check_target_in_sysroot(sysroot.path(), LambdaArch::Arm64).unwrap();
    }

    #[test]
    fn a_bootstrap_that_dies_on_a_panic_is_refused() {
        use std::os::unix::fs::PermissionsExt;
        let dir = tempfile::tempdir().unwrap();
        // What a panic = "abort" build does: the process dies and prints no result.
        let fake = dir.path().join("bootstrap");
        std::fs::write(&fake, "#!/bin/sh\ncat >/dev/null\nkill -ABRT $$\n").unwrap();
        std::fs::set_permissions(&fake, std::fs::Permissions::from_mode(0o755)).unwrap();
        let err = check_unwinding(&fake).unwrap_err().to_string();
        assert!(err.contains("panic = \"unwind\""), "{err}");
        // A runtime that reports the batch but lets the panic take the neighbour down.
        std::fs::write(
            &fake,
            "#!/bin/sh\ncat >/dev/null\necho '{\"tasks\":[{\"id\":\"boom\",\"status\":\"failed\"},{\"id\":\"ok\",\"status\":\"not_run\"}]}'\n",
        )
        .unwrap();
        let err = check_unwinding(&fake).unwrap_err().to_string();
        assert!(err.contains("\"not_run\""), "{err}");
    }

    #[test]
    fn build_command_pins_glibc_and_keeps_unwinding() {
        let cmd = build_command(
            Path::new("cargo-lambda"),
            Path::new("/ws"),
            LambdaRuntime::ProvidedAl2,
            LambdaArch::X86_64,
            None,
        );
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.windows(2)
                .any(|w| w == ["--target", "x86_64-unknown-linux-gnu.2.26"]),
            "{args:?}"
        );
        assert!(args.contains(&"--release".to_owned()));
        let panic = cmd
            .get_envs()
            .find(|(k, _)| *k == "CARGO_PROFILE_RELEASE_PANIC")
            .and_then(|(_, v)| v)
            .unwrap();
        assert_eq!(panic, "unwind");
        assert!(
            args.windows(4)
                .any(|w| w == ["--package", "propack-runtime", "--bin", "bootstrap"]),
            "{args:?}"
        );
        let cmd = build_command(
            Path::new("c"),
            Path::new("/ws"),
            LambdaRuntime::Python313,
            LambdaArch::Arm64,
            Some("thumbnail-runtime"),
        );
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            args[4..],
            [
                "aarch64-unknown-linux-gnu.2.34",
                "--workspace",
                "--bin",
                "thumbnail-runtime"
            ]
        );
        assert_eq!(
            lambda_outputs(Path::new("/t"), Some("thumbnail-runtime")),
            [(
                "bootstrap".to_owned(),
                PathBuf::from("/t/lambda/thumbnail-runtime/bootstrap")
            )]
        );
    }

    #[test]
    fn the_unzipped_limit_names_every_part() {
        let parts =
            |a: u64, b: u64| vec![("layer zip".to_owned(), a), ("function zip".to_owned(), b)];
        assert_eq!(
            check_unzipped_limit(&parts(200 * MIB, 50 * MIB), UNZIPPED_LIMIT).unwrap(),
            262_144_000
        );
        let err = check_unzipped_limit(&parts(200 * MIB, 50 * MIB + 1), UNZIPPED_LIMIT)
            .unwrap_err()
            .to_string();
        assert_eq!(
            err,
            "the package is 262,144,001 bytes unzipped (layer zip 209,715,200 + function zip \
             52,428,801), above Lambda's limit of 262,144,000 bytes (250 MiB) for a function \
             and its layers together"
        );
        assert_eq!(thousands(0), "0");
        assert_eq!(thousands(999), "999");
        assert_eq!(thousands(1_000), "1,000");
        assert_eq!(DIRECT_UPLOAD_LIMIT, 52_428_800);
    }

    #[test]
    fn includes_go_beside_bootstrap_and_may_not_replace_it() {
        let bins = fixture_dir(&["GLIBC_2.17"], EM_X86_64);
        let src = tempfile::tempdir().unwrap();
        write_file(
            &src.path().join("app/run.sh"),
            "#!/bin/sh\necho hi\n",
            0o750,
        );
        write_file(&src.path().join("app/data/in.txt"), "12345", 0o600);
        let out = tempfile::tempdir().unwrap();
        let mut input = PackageInput {
            binaries: prebuilt_outputs(bins.path()).unwrap(),
            includes: collect_includes(&[Include::from_str(
                &src.path().join("app").display().to_string(),
            )
            .unwrap()])
            .unwrap(),
            ..Default::default()
        };
        let opts = PackageOptions::new(
            out.path(),
            LambdaRuntime::ProvidedAl2023,
            LambdaArch::X86_64,
        );
        let p = package(&input, &opts).unwrap();
        let elf = synthetic_elf(EM_X86_64, &["GLIBC_2.17"]).len() as u64;
        assert_eq!(
            listing(&p.main.zip),
            [
                ("app/data/in.txt".into(), 0o644, 5),
                ("app/run.sh".into(), 0o755, 18),
                ("bin/propack-bench".into(), 0o755, elf),
                ("bootstrap".into(), 0o755, elf),
            ]
        );
        assert_eq!(p.main.unzipped_bytes, 23 + 2 * elf);
        assert_eq!(
            p.main.zip,
            out.path().join("propack-provided.al2023-x86_64.zip")
        );

        input.includes.push(ZipSource {
            zip_path: "bootstrap".into(),
            source: src.path().join("app/run.sh"),
            mode: 0o755,
            size: 18,
        });
        let err = package(&input, &opts).unwrap_err().to_string();
        assert_eq!(
            err,
            "--include: two files would be bootstrap in the zip (an included file, or the runtime's own)"
        );
    }

    #[test]
    fn a_layer_puts_the_runtime_under_opt_and_the_includes_in_their_own_zip() {
        let bins = fixture_dir(&["GLIBC_2.17"], EM_X86_64);
        let src = tempfile::tempdir().unwrap();
        write_file(
            &src.path().join("wrapper"),
            "#!/bin/sh\nexec \"$@\"\n",
            0o644,
        );
        write_file(
            &src.path().join("app.py"),
            "def handler(e, c):\n    return e\n",
            0o644,
        );
        let out = tempfile::tempdir().unwrap();
        let opts = PackageOptions::new(out.path(), LambdaRuntime::Python313, LambdaArch::X86_64);
        let mut input = PackageInput {
            binaries: prebuilt_outputs(&bins.path().join("bootstrap")).unwrap(),
            layer_extras: vec![ZipSource {
                zip_path: "propack-exec-wrapper".into(),
                source: src.path().join("wrapper"),
                mode: 0o755,
                size: 20,
            }],
            layer: true,
            ..Default::default()
        };
        // Without includes: the layer alone.
        let p = package(&input, &opts).unwrap();
        assert_eq!(p.kind, "layer");
        assert_eq!(
            p.main.zip,
            out.path().join("propack-layer-python3.13-x86_64.zip")
        );
        assert_eq!(p.main.entries, ["bootstrap", "propack-exec-wrapper"]);
        assert_eq!(
            listing(&p.main.zip)[1],
            ("propack-exec-wrapper".into(), 0o755, 20)
        );
        assert!(p.code.is_none());
        assert!(
            !out.path()
                .join(code_zip_name(opts.runtime, opts.arch))
                .exists()
        );

        // With includes: they go to a function zip of their own, even one named bootstrap.
        input.includes = collect_includes(&[Include::from_str(&format!(
            "{}=.",
            src.path().join("app.py").display()
        ))
        .unwrap()])
        .unwrap();
        let p = package(&input, &opts).unwrap();
        assert_eq!(p.main.entries, ["bootstrap", "propack-exec-wrapper"]);
        let code = p.code.unwrap();
        assert_eq!(
            code.zip,
            out.path().join("propack-code-python3.13-x86_64.zip")
        );
        assert_eq!(listing(&code.zip), [("app.py".into(), 0o644, 32)]);
        assert_eq!(
            (code.unzipped_bytes, code.entries),
            (32, vec!["app.py".to_owned()])
        );
    }

    #[test]
    fn an_over_limit_package_writes_nothing() {
        let bins = fixture_dir(&["GLIBC_2.17"], EM_X86_64);
        let src = tempfile::tempdir().unwrap();
        write_file(&src.path().join("big.bin"), &"x".repeat(10_000), 0o644);
        let out = tempfile::tempdir().unwrap();
        let elf = synthetic_elf(EM_X86_64, &["GLIBC_2.17"]).len() as u64;
        let input = PackageInput {
            binaries: prebuilt_outputs(bins.path()).unwrap(),
            includes: collect_includes(&[Include::from_str(
                &src.path().join("big.bin").display().to_string(),
            )
            .unwrap()])
            .unwrap(),
            layer: true,
            ..Default::default()
        };
        let mut opts = PackageOptions::new(
            out.path(),
            LambdaRuntime::ProvidedAl2023,
            LambdaArch::X86_64,
        );
        opts.unzipped_limit = 2 * elf + 10_000;
        let p = package(&input, &opts).unwrap();
        assert_eq!(
            p.main.unzipped_bytes + p.code.unwrap().unzipped_bytes,
            opts.unzipped_limit
        );
        let out2 = tempfile::tempdir().unwrap();
        opts.out_dir = out2.path().to_owned();
        opts.unzipped_limit -= 1;
        let err = package(&input, &opts).unwrap_err().to_string();
        assert!(
            err.contains(&format!(
                "(layer zip {} + function zip 10,000)",
                thousands(2 * elf)
            )),
            "{err}"
        );
        assert!(
            err.contains(&format!("limit of {} bytes", thousands(2 * elf + 9_999))),
            "{err}"
        );
        assert_eq!(
            std::fs::read_dir(out2.path()).unwrap().count(),
            0,
            "nothing written"
        );
    }

    #[test]
    fn prebuilt_is_a_file_or_a_directory_with_a_bootstrap() {
        let dir = tempfile::tempdir().unwrap();
        let err = prebuilt_outputs(dir.path()).unwrap_err().to_string();
        assert!(err.contains("no bootstrap in this directory"), "{err}");
        std::fs::write(dir.path().join("bootstrap"), b"x").unwrap();
        assert_eq!(
            prebuilt_outputs(dir.path()).unwrap(),
            [("bootstrap".to_owned(), dir.path().join("bootstrap"))]
        );
        std::fs::write(dir.path().join("propack-bench"), b"x").unwrap();
        assert_eq!(prebuilt_outputs(dir.path()).unwrap().len(), 2);
        assert_eq!(
            prebuilt_outputs(&dir.path().join("propack-bench")).unwrap(),
            [("bootstrap".to_owned(), dir.path().join("propack-bench"))]
        );
        let err = prebuilt_outputs(&dir.path().join("nope"))
            .unwrap_err()
            .to_string();
        assert!(err.contains("nope: No such file"), "{err}");
    }
}
