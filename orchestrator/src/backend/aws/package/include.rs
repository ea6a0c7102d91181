//! User files for the function zip (`--include PATH[=DEST]`) and the extra files of the layer, walked into zip entries.

use std::os::unix::fs::PermissionsExt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// One `--include PATH[=DEST]`: a file or directory and where it goes under the task root.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Include {
    /// The file or directory on this machine.
    pub source: PathBuf,
    /// Its path inside the zip (`/var/task/<dest>` on Lambda), `/`-separated; empty for the
    /// root (a directory's contents land at the top). A trailing `/` puts a file inside it.
    pub dest: String,
}

impl FromStr for Include {
    type Err = String;

    /// `PATH` (dest: its file name), `PATH=DEST`, `PATH=.` (a directory's contents at the root),
    /// `PATH=DIR/` (a file inside DIR).
    fn from_str(s: &str) -> Result<Self, String> {
        let (source, dest) = match s.split_once('=') {
            Some((p, d)) => (PathBuf::from(p), d.to_owned()),
            None => {
                let p = PathBuf::from(s);
                let name = p
                    .file_name()
                    .ok_or_else(|| {
                        format!("{s} has no file name to use inside the zip; write {s}=DEST")
                    })?
                    .to_string_lossy()
                    .into_owned();
                (p, name)
            }
        };
        if source.as_os_str().is_empty() {
            return Err(format!("{s}: the path before `=` is empty"));
        }
        let dir_only = dest.ends_with('/');
        let mut parts = Vec::new();
        for part in dest.split('/') {
            match part {
                "" | "." => {}
                ".." => return Err(format!("{s}: DEST may not contain `..`")),
                p => parts.push(p),
            }
        }
        if dest.starts_with('/') {
            return Err(format!(
                "{s}: DEST is a path relative to the task root (/var/task), not absolute"
            ));
        }
        let mut dest = parts.join("/");
        if dir_only && !dest.is_empty() {
            dest.push('/');
        }
        Ok(Self { source, dest })
    }
}

/// A file that will be in a zip.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ZipSource {
    /// Its path inside the zip.
    pub zip_path: String,
    /// The file on this machine.
    pub source: PathBuf,
    /// `0o755` when any execute bit is set, else `0o644`: exec bits are kept, the rest of
    /// the mode is normalised so that the zip does not depend on the packager's umask.
    pub mode: u32,
    /// Size, bytes.
    pub size: u64,
}

/// Why an include cannot be packaged: all of them are mistakes in the command line or the tree.
#[derive(Debug, thiserror::Error)]
pub enum IncludeError {
    /// The path does not exist (or cannot be read).
    #[error("--include {}: cannot read it", path.display())]
    Missing {
        /// The path.
        path: PathBuf,
        /// Why.
        #[source]
        source: std::io::Error,
    },
    /// A symbolic link: refused rather than followed or stored as a link.
    #[error(
        "--include: {} is a symbolic link; Lambda zips here hold regular files only \
         (include the file it points to instead)",
        path.display()
    )]
    Symlink {
        /// The link.
        path: PathBuf,
    },
    /// A socket, FIFO or device.
    #[error("--include: {} is not a regular file or directory", path.display())]
    NotRegular {
        /// The path.
        path: PathBuf,
    },
    /// Two files would have the same path in the zip.
    #[error(
        "--include: two files would be {0} in the zip (an included file, or the runtime's own)"
    )]
    Collision(String),
    /// A file given with an empty DEST and no file name of its own.
    #[error("--include {}: DEST is empty; a file needs a name inside the zip", path.display())]
    NoName {
        /// The file.
        path: PathBuf,
    },
}

fn join(dir: &str, name: &str) -> String {
    match dir.trim_end_matches('/') {
        "" => name.to_owned(),
        d => format!("{d}/{name}"),
    }
}

fn metadata(path: &Path) -> Result<std::fs::Metadata, IncludeError> {
    std::fs::symlink_metadata(path).map_err(|source| IncludeError::Missing {
        path: path.to_owned(),
        source,
    })
}

fn walk(path: &Path, zip_path: &str, out: &mut Vec<ZipSource>) -> Result<(), IncludeError> {
    let meta = metadata(path)?;
    let kind = meta.file_type();
    if kind.is_symlink() {
        return Err(IncludeError::Symlink {
            path: path.to_owned(),
        });
    }
    if kind.is_file() {
        let name = if zip_path.is_empty() || zip_path.ends_with('/') {
            let file = path.file_name().ok_or_else(|| IncludeError::NoName {
                path: path.to_owned(),
            })?;
            join(zip_path, &file.to_string_lossy())
        } else {
            zip_path.to_owned()
        };
        let mode = if meta.permissions().mode() & 0o111 != 0 {
            0o755
        } else {
            0o644
        };
        out.push(ZipSource {
            zip_path: name,
            source: path.to_owned(),
            mode,
            size: meta.len(),
        });
        return Ok(());
    }
    if !kind.is_dir() {
        return Err(IncludeError::NotRegular {
            path: path.to_owned(),
        });
    }
    let read = |e| IncludeError::Missing {
        path: path.to_owned(),
        source: e,
    };
    let mut children: Vec<_> = std::fs::read_dir(path)
        .map_err(read)?
        .map(|e| e.map(|e| e.file_name()))
        .collect::<Result<_, _>>()
        .map_err(read)?;
    children.sort();
    for name in children {
        walk(
            &path.join(&name),
            &join(zip_path, &name.to_string_lossy()),
            out,
        )?;
    }
    Ok(())
}

/// Every file the includes name, directories walked recursively in name order. Nothing
/// is read yet: the sizes come from metadata, so a package over the limit is refused
/// before any content is loaded.
pub fn collect_includes(includes: &[Include]) -> Result<Vec<ZipSource>, IncludeError> {
    let mut out = Vec::new();
    for inc in includes {
        walk(&inc.source, &inc.dest, &mut out)?;
    }
    Ok(out)
}

/// A file the layer carries besides the runtime binaries, if the tree has it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct LayerExtra {
    /// Its path relative to the workspace root (or its name in a `--prebuilt` directory).
    pub source: &'static str,
    /// Its path inside the layer zip (`/opt/<zip_path>` on Lambda).
    pub zip_path: &'static str,
    /// Its mode in the zip.
    pub mode: u32,
}

/// The hook for files the layer carries besides `bootstrap` and `bin/propack-bench`. The
/// exec wrapper lets a managed runtime (python3.13, nodejs22.x) start ProPack's runtime
/// instead of its own (`AWS_LAMBDA_EXEC_WRAPPER=/opt/propack-exec-wrapper`).
pub const LAYER_EXTRAS: &[LayerExtra] = &[LayerExtra {
    source: "runtime/wrapper/propack-exec-wrapper",
    zip_path: "propack-exec-wrapper",
    mode: 0o755,
}];

/// The [`LAYER_EXTRAS`] found: first in `prebuilt` (by file name), then under the workspace
/// `root`. Returns the found files and the zip paths of those not found.
pub fn find_layer_extras(
    prebuilt: Option<&Path>,
    root: Option<&Path>,
) -> (Vec<ZipSource>, Vec<&'static str>) {
    let mut found = Vec::new();
    let mut missing = Vec::new();
    for extra in LAYER_EXTRAS {
        let name = Path::new(extra.source)
            .file_name()
            .expect("LAYER_EXTRAS sources name a file");
        let candidates = [
            prebuilt.map(|d| d.join(name)),
            root.map(|r| r.join(extra.source)),
        ];
        let hit = candidates.into_iter().flatten().find_map(|p| {
            let meta = std::fs::metadata(&p).ok().filter(|m| m.is_file())?;
            Some(ZipSource {
                zip_path: extra.zip_path.to_owned(),
                source: p,
                mode: extra.mode,
                size: meta.len(),
            })
        });
        match hit {
            Some(f) => found.push(f),
            None => missing.push(extra.zip_path),
        }
    }
    (found, missing)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn inc(s: &str) -> Include {
        s.parse().unwrap()
    }

    #[test]
    fn include_syntax() {
        assert_eq!(
            inc("data/model.bin"),
            Include {
                source: "data/model.bin".into(),
                dest: "model.bin".into()
            }
        );
        assert_eq!(inc("tools/=bin").dest, "bin");
        assert_eq!(inc("src=.").dest, "");
        assert_eq!(inc("a.sh=./scripts//run.sh").dest, "scripts/run.sh");
        assert_eq!(inc("a.sh=scripts/").dest, "scripts/");
        let err = |s: &str| s.parse::<Include>().unwrap_err();
        assert!(err("x=../y").contains("`..`"), "{}", err("x=../y"));
        assert!(err("x=/opt/y").contains("not absolute"));
        assert!(err("=y").contains("empty"));
        assert!(err("/").contains("write /=DEST"), "{}", err("/"));
    }

    #[test]
    fn directories_are_walked_in_order_with_exec_bits_and_links_refused() {
        let dir = tempfile::tempdir().unwrap();
        let app = dir.path().join("app");
        std::fs::create_dir_all(app.join("lib/deep")).unwrap();
        std::fs::write(app.join("run.sh"), "#!/bin/sh\n").unwrap();
        std::fs::set_permissions(app.join("run.sh"), std::fs::Permissions::from_mode(0o700))
            .unwrap();
        std::fs::write(app.join("lib/deep/data.txt"), "0123456789").unwrap();
        std::fs::write(app.join("lib/a.txt"), "a").unwrap();
        std::fs::set_permissions(
            app.join("lib/a.txt"),
            std::fs::Permissions::from_mode(0o664),
        )
        .unwrap();
        std::fs::write(dir.path().join("one.txt"), "one").unwrap();

        let files = collect_includes(&[
            inc(&format!("{}", app.display())),
            inc(&format!("{}=etc/", dir.path().join("one.txt").display())),
            inc(&format!("{}=.", app.join("lib").display())),
        ])
        .unwrap();
        let got: Vec<(&str, u32, u64)> = files
            .iter()
            .map(|f| (f.zip_path.as_str(), f.mode, f.size))
            .collect();
        assert_eq!(
            got,
            [
                ("app/lib/a.txt", 0o644, 1),
                ("app/lib/deep/data.txt", 0o644, 10),
                ("app/run.sh", 0o755, 10),
                ("etc/one.txt", 0o644, 3),
                ("a.txt", 0o644, 1),
                ("deep/data.txt", 0o644, 10),
            ]
        );

        std::os::unix::fs::symlink(app.join("run.sh"), app.join("lib/link")).unwrap();
        let err = collect_includes(&[inc(&app.display().to_string())])
            .unwrap_err()
            .to_string();
        assert!(err.contains("lib/link is a symbolic link"), "{err}");
        let err = collect_includes(&[inc(&dir.path().join("nope").display().to_string())])
            .unwrap_err()
            .to_string();
        assert!(err.ends_with("nope: cannot read it"), "{err}");
        let err =
            collect_includes(&[inc(&dir.path().join("nope").display().to_string())]).unwrap_err();
        let cause = std::error::Error::source(&err).unwrap().to_string();
        assert!(cause.starts_with("No such file"), "{cause}");
    }

    #[test]
    fn layer_extras_come_from_prebuilt_then_the_tree() {
        let tree = tempfile::tempdir().unwrap();
        let (found, missing) = find_layer_extras(None, Some(tree.path()));
        assert!(found.is_empty());
        assert_eq!(missing, ["propack-exec-wrapper"]);
        let wrapper = tree.path().join("runtime/wrapper/propack-exec-wrapper");
        std::fs::create_dir_all(wrapper.parent().unwrap()).unwrap();
        std::fs::write(&wrapper, "#!/bin/sh\nexec \"$@\"\n").unwrap();
        let prebuilt = tempfile::tempdir().unwrap();
        let (found, missing) = find_layer_extras(Some(prebuilt.path()), Some(tree.path()));
        assert!(missing.is_empty());
        assert_eq!(found[0].source, wrapper);
        assert_eq!(
            (found[0].zip_path.as_str(), found[0].mode),
            ("propack-exec-wrapper", 0o755)
        );
        std::fs::write(prebuilt.path().join("propack-exec-wrapper"), "x").unwrap();
        let (found, _) = find_layer_extras(Some(prebuilt.path()), Some(tree.path()));
        assert_eq!(
            found[0].source,
            prebuilt.path().join("propack-exec-wrapper")
        );
        assert_eq!(found[0].size, 1);
    }
}
