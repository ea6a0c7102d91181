//! Building the Lambda zip: cargo-lambda with a glibc-pinned target, then a symbol-version
//! check of every binary so that a zip which could not start on its runtime is never written.

use std::path::{Path, PathBuf};
use std::process::Command;

use super::elf::{self, EM_AARCH64, EM_X86_64, GlibcVersion};
use super::zip::{self, ZipEntry};

/// A Lambda OS-only runtime.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, clap::ValueEnum)]
pub enum LambdaRuntime {
    /// Amazon Linux 2023 (glibc 2.34).
    #[default]
    #[value(name = "provided.al2023")]
    ProvidedAl2023,
    /// Amazon Linux 2 (glibc 2.26).
    #[value(name = "provided.al2")]
    ProvidedAl2,
}

impl LambdaRuntime {
    /// The runtime identifier Lambda uses.
    pub fn as_str(self) -> &'static str {
        match self {
            Self::ProvidedAl2023 => "provided.al2023",
            Self::ProvidedAl2 => "provided.al2",
        }
    }

    /// The newest glibc the runtime ships: no binary may need a newer symbol version.
    pub fn max_glibc(self) -> GlibcVersion {
        match self {
            Self::ProvidedAl2023 => GlibcVersion(2, 34, 0),
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
}

/// The binaries a ProPack Lambda zip carries: (path in the zip, cargo package, binary name).
pub const BINARIES: &[(&str, &str, &str)] = &[
    ("bootstrap", "propack-runtime", "bootstrap"),
    ("bin/propack-bench", "propack-bench", "propack-bench"),
];

/// File name of the zip for a runtime and architecture.
pub fn zip_name(runtime: LambdaRuntime, arch: LambdaArch) -> String {
    format!("propack-{}-{}.zip", runtime.as_str(), arch.as_str())
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

/// The cargo-lambda build: release, glibc pinned by the target suffix, both binaries.
///
/// `CARGO_PROFILE_RELEASE_PANIC=unwind` is set explicitly: built-in tasks are isolated
/// with `catch_unwind`, which a `panic = "abort"` build would silently turn into
/// "one panicking task kills the whole batch".
pub fn build_command(
    cargo_lambda: &Path,
    workspace: &Path,
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Command {
    let max = runtime.max_glibc();
    let mut cmd = Command::new(cargo_lambda);
    cmd.current_dir(workspace)
        .args(["lambda", "build", "--release", "--target"])
        .arg(format!("{}.{}.{}", arch.triple(), max.0, max.1))
        .env("CARGO_PROFILE_RELEASE_PANIC", "unwind");
    for (_, package, bin) in BINARIES {
        cmd.args(["--package", package, "--bin", bin]);
    }
    cmd
}

/// Where cargo-lambda leaves each built binary: `target/lambda/<bin>/bootstrap`
/// (it renames every binary to `bootstrap`, one directory per binary).
pub fn lambda_outputs(target_dir: &Path) -> Vec<(&'static str, PathBuf)> {
    BINARIES
        .iter()
        .map(|(zip_path, _, bin)| {
            (
                *zip_path,
                target_dir.join("lambda").join(bin).join("bootstrap"),
            )
        })
        .collect()
}

/// The binaries of a prebuilt directory holding `bootstrap` and `propack-bench`.
pub fn dir_outputs(bin_dir: &Path) -> Vec<(&'static str, PathBuf)> {
    BINARIES
        .iter()
        .map(|(zip_path, _, bin)| (*zip_path, bin_dir.join(bin)))
        .collect()
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

/// What was packaged.
#[derive(Debug, Clone, serde::Serialize)]
pub struct Packaged {
    /// The zip.
    pub zip: PathBuf,
    /// Its size in bytes.
    pub bytes: u64,
    /// The runtime.
    pub runtime: &'static str,
    /// The architecture.
    pub arch: &'static str,
    /// Newest glibc version needed by any binary (None: static).
    pub max_glibc: Option<String>,
    /// Paths inside the zip.
    pub entries: Vec<String>,
}

/// Zips the binaries found in `bin_dir` (`bootstrap`, `propack-bench`) into `out_dir`.
pub fn package_from_dir(
    bin_dir: &Path,
    out_dir: &Path,
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Result<Packaged, PackageError> {
    package_files(&dir_outputs(bin_dir), out_dir, runtime, arch)
}

/// Zips the given (path in zip, file) binaries into `out_dir` after checking each, then
/// re-reads the zip and checks it again, so what is on disk is exactly what was checked.
pub fn package_files(
    files: &[(&str, PathBuf)],
    out_dir: &Path,
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Result<Packaged, PackageError> {
    let mut entries = Vec::new();
    for (zip_path, path) in files {
        let data = std::fs::read(path).map_err(|source| PackageError::Io {
            path: path.clone(),
            source,
        })?;
        check_binary(zip_path, &data, runtime, arch)?;
        entries.push(ZipEntry {
            name: (*zip_path).to_owned(),
            mode: 0o755,
            data,
        });
    }
    let bytes = zip::write_zip(&entries)?;
    let max_glibc = verify_zip(&bytes, runtime, arch)?;
    std::fs::create_dir_all(out_dir).map_err(|source| PackageError::Io {
        path: out_dir.to_owned(),
        source,
    })?;
    let zip_path = out_dir.join(zip_name(runtime, arch));
    std::fs::write(&zip_path, &bytes).map_err(|source| PackageError::Io {
        path: zip_path.clone(),
        source,
    })?;
    Ok(Packaged {
        zip: zip_path,
        bytes: bytes.len() as u64,
        runtime: runtime.as_str(),
        arch: arch.as_str(),
        max_glibc: max_glibc.map(|v| v.to_string()),
        entries: entries.into_iter().map(|e| e.name).collect(),
    })
}

/// Checks a zip the way Lambda will use it: an executable `bootstrap` at the root, and no
/// binary needing a newer glibc than the runtime's. Returns the newest glibc needed.
pub fn verify_zip(
    bytes: &[u8],
    runtime: LambdaRuntime,
    arch: LambdaArch,
) -> Result<Option<GlibcVersion>, PackageError> {
    let entries = zip::read_zip(bytes)?;
    let bootstrap = entries
        .iter()
        .find(|e| e.name == "bootstrap")
        .ok_or_else(|| PackageError::BadBinary {
            binary: "bootstrap".into(),
            message:
                "missing at the root of the zip: Lambda would fail with Runtime.InvalidEntrypoint"
                    .into(),
        })?;
    if bootstrap.mode & 0o111 == 0 {
        return Err(PackageError::BadBinary {
            binary: "bootstrap".into(),
            message: format!(
                "not executable (mode {:o}): Lambda would fail with Runtime.InvalidEntrypoint",
                bootstrap.mode
            ),
        });
    }
    let mut max = None;
    for e in entries.iter().filter(|e| e.data.starts_with(b"\x7fELF")) {
        max = max.max(check_binary(&e.name, &e.data, runtime, arch)?);
    }
    Ok(max)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::backend::aws::elf::synthetic_elf;

    fn fixture_dir(versions: &[&str], machine: u16) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        for (_, _, bin) in BINARIES {
            std::fs::write(dir.path().join(bin), synthetic_elf(machine, versions)).unwrap();
        }
        dir
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
        assert_eq!(p.entries, vec!["bootstrap", "bin/propack-bench"]);
        let z = zip::list_zip(&std::fs::read(&p.zip).unwrap()).unwrap();
        let names: Vec<(&str, u32)> = z.iter().map(|e| (e.name.as_str(), e.mode)).collect();
        assert_eq!(names, [("bin/propack-bench", 0o755), ("bootstrap", 0o755)]);
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
        let cmd = build_command(
            Path::new("c"),
            Path::new("/ws"),
            LambdaRuntime::ProvidedAl2023,
            LambdaArch::Arm64,
        );
        let args: Vec<_> = cmd
            .get_args()
            .map(|a| a.to_string_lossy().into_owned())
            .collect();
        assert!(
            args.contains(&"aarch64-unknown-linux-gnu.2.34".to_owned()),
            "{args:?}"
        );
    }
}
