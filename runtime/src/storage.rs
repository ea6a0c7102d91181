//! One blocking storage layer for task inputs and outputs: `file://` always, `s3://` with feature `s3`.
//!
//! The API is blocking because the executor's workers are plain threads; S3
//! calls go to the async [`crate::s3::S3Store`] on a small private tokio runtime
//! created on first use, so a process that only touches `file://` URIs never
//! loads AWS configuration.

use std::fs;
use std::io;
use std::path::Path;
#[cfg(feature = "s3")]
use std::sync::Arc;

use crate::uri::{ObjectUri, S3Uri, UriError};

#[cfg(feature = "s3")]
use crate::s3::{S3Error, S3Options, S3Store};

/// A storage operation failed.
#[derive(Debug, thiserror::Error)]
pub enum StorageError {
    /// The URI is neither `s3://bucket/key` nor `file:///absolute/path`.
    #[error(transparent)]
    Uri(#[from] UriError),
    /// A local file operation failed.
    #[error("{what}: {source}")]
    Io {
        /// The URI or path involved and the operation.
        what: String,
        /// The underlying error.
        #[source]
        source: io::Error,
    },
    /// `s3://` was used but the crate was built without feature `s3`.
    #[error("{0}: s3:// support is not compiled in (enable feature `s3`)")]
    S3Disabled(String),
    /// An S3 request failed.
    #[cfg(feature = "s3")]
    #[error(transparent)]
    S3(#[from] S3Error),
}

fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> StorageError {
    let what = what.into();
    move |source| StorageError::Io { what, source }
}

/// The storage layer; cheap to clone (shared state behind an `Arc`).
#[derive(Clone)]
pub struct Storage {
    #[cfg(feature = "s3")]
    s3: Arc<LazyS3>,
}

impl std::fmt::Debug for Storage {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        let mut d = f.debug_struct("Storage");
        #[cfg(feature = "s3")]
        d.field("s3", &self.s3.options);
        d.finish()
    }
}

/// The S3 client, created when an `s3://` URI is first used.
#[cfg(feature = "s3")]
struct LazyS3 {
    options: S3Options,
    client: std::sync::Mutex<Option<s3::Blocking>>,
}

impl Storage {
    /// Storage configured from the environment. Lazy: AWS configuration is
    /// only loaded when an `s3://` URI is first used.
    pub fn from_env() -> Result<Storage, StorageError> {
        #[cfg(feature = "s3")]
        let storage = Self::with_s3_options(S3Options::from_env());
        #[cfg(not(feature = "s3"))]
        let storage = Storage {};
        Ok(storage)
    }

    /// Storage with explicit S3 options (tests, tools).
    #[cfg(feature = "s3")]
    pub fn with_s3_options(options: S3Options) -> Storage {
        Storage {
            s3: Arc::new(LazyS3 {
                options,
                client: std::sync::Mutex::new(None),
            }),
        }
    }

    /// Downloads `uri` to `dest` (parent directories created); returns bytes written.
    pub fn fetch(&self, uri: &str, dest: &Path) -> Result<u64, StorageError> {
        match ObjectUri::parse(uri)? {
            ObjectUri::File(src) => {
                ensure_parent(dest)?;
                fs::copy(&src, dest).map_err(io_err(format!("fetch {uri}")))
            }
            ObjectUri::S3(s3) => self.with_s3(uri, |c| c.fetch(&s3, dest)),
        }
    }

    /// Uploads `src` to `uri`; returns bytes uploaded.
    pub fn upload(&self, src: &Path, uri: &str) -> Result<u64, StorageError> {
        match ObjectUri::parse(uri)? {
            ObjectUri::File(dest) => {
                ensure_parent(&dest)?;
                fs::copy(src, &dest).map_err(io_err(format!("upload {} to {uri}", src.display())))
            }
            ObjectUri::S3(s3) => self.with_s3(uri, |c| c.upload(src, &s3)),
        }
    }

    /// Reads a whole object.
    pub fn get_bytes(&self, uri: &str) -> Result<Vec<u8>, StorageError> {
        match ObjectUri::parse(uri)? {
            ObjectUri::File(path) => fs::read(&path).map_err(io_err(format!("read {uri}"))),
            ObjectUri::S3(s3) => self.with_s3(uri, |c| c.get_bytes(&s3)),
        }
    }

    /// Writes a whole object.
    pub fn put_bytes(&self, uri: &str, data: &[u8]) -> Result<(), StorageError> {
        match ObjectUri::parse(uri)? {
            ObjectUri::File(path) => {
                ensure_parent(&path)?;
                fs::write(&path, data).map_err(io_err(format!("write {uri}")))
            }
            ObjectUri::S3(s3) => self.with_s3(uri, |c| c.put_bytes(&s3, data.to_vec())),
        }
    }

    /// Lists the object URIs under a prefix, sorted. For `file://`, a prefix
    /// naming a directory lists every file below it; otherwise files whose path
    /// starts with the prefix.
    pub fn list(&self, prefix_uri: &str) -> Result<Vec<String>, StorageError> {
        match ObjectUri::parse(prefix_uri)? {
            ObjectUri::File(prefix) => list_files(&prefix, prefix_uri),
            ObjectUri::S3(s3) => self.with_s3(prefix_uri, |c| c.list(&s3)),
        }
    }

    #[cfg(feature = "s3")]
    fn with_s3<T>(
        &self,
        uri: &str,
        f: impl FnOnce(&s3::Blocking) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        let client = {
            let mut guard = self.s3.client.lock().unwrap_or_else(|p| p.into_inner());
            if guard.is_none() {
                *guard = Some(s3::Blocking::connect(&self.s3.options, uri)?);
            }
            guard.as_ref().expect("just set").clone()
        };
        f(&client)
    }

    #[cfg(not(feature = "s3"))]
    fn with_s3<T>(
        &self,
        uri: &str,
        _f: impl FnOnce(&Never) -> Result<T, StorageError>,
    ) -> Result<T, StorageError> {
        Err(StorageError::S3Disabled(uri.to_owned()))
    }
}

/// Stand-in for the S3 client when the `s3` feature is off.
#[cfg(not(feature = "s3"))]
enum Never {}

#[cfg(not(feature = "s3"))]
#[allow(clippy::unused_self)]
impl Never {
    fn fetch(&self, _: &S3Uri, _: &Path) -> Result<u64, StorageError> {
        match *self {}
    }
    fn upload(&self, _: &Path, _: &S3Uri) -> Result<u64, StorageError> {
        match *self {}
    }
    fn get_bytes(&self, _: &S3Uri) -> Result<Vec<u8>, StorageError> {
        match *self {}
    }
    fn put_bytes(&self, _: &S3Uri, _: Vec<u8>) -> Result<(), StorageError> {
        match *self {}
    }
    fn list(&self, _: &S3Uri) -> Result<Vec<String>, StorageError> {
        match *self {}
    }
}

fn ensure_parent(path: &Path) -> Result<(), StorageError> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)
            .map_err(io_err(format!("create directory {}", parent.display())))?;
    }
    Ok(())
}

fn list_files(prefix: &Path, prefix_uri: &str) -> Result<Vec<String>, StorageError> {
    let (dir, name_prefix) = if prefix_uri.ends_with('/') || prefix.is_dir() {
        (prefix.to_path_buf(), None)
    } else {
        let dir = prefix.parent().unwrap_or(Path::new("/")).to_path_buf();
        (dir, Some(prefix.to_string_lossy().into_owned()))
    };
    let mut out = Vec::new();
    let mut stack = vec![dir];
    while let Some(d) = stack.pop() {
        let entries = match fs::read_dir(&d) {
            Ok(e) => e,
            // A prefix that matches nothing lists nothing, as in S3.
            Err(e) if e.kind() == io::ErrorKind::NotFound => continue,
            Err(e) => return Err(io_err(format!("list {}", d.display()))(e)),
        };
        for entry in entries {
            let entry = entry.map_err(io_err(format!("list {}", d.display())))?;
            let path = entry.path();
            let ty = entry
                .file_type()
                .map_err(io_err(format!("stat {}", path.display())))?;
            let s = path.to_string_lossy().into_owned();
            if let Some(p) = &name_prefix {
                // Only descend into / keep entries that can still match the prefix.
                if !(s.starts_with(p.as_str()) || p.starts_with(s.as_str())) {
                    continue;
                }
            }
            if ty.is_dir() {
                stack.push(path);
            } else if name_prefix
                .as_ref()
                .is_none_or(|p| s.starts_with(p.as_str()))
            {
                out.push(format!("file://{s}"));
            }
        }
    }
    out.sort();
    Ok(out)
}

#[cfg(feature = "s3")]
mod s3 {
    //! The blocking face of [`S3Store`]: its futures run on a private runtime.

    use std::future::Future;
    use std::path::Path;
    use std::sync::Arc;

    use super::{S3Options, S3Store, S3Uri, StorageError};

    #[derive(Clone)]
    pub(super) struct Blocking {
        store: S3Store,
        rt: Arc<tokio::runtime::Runtime>,
    }

    impl Blocking {
        pub(super) fn connect(options: &S3Options, uri: &str) -> Result<Self, StorageError> {
            let rt = tokio::runtime::Builder::new_multi_thread()
                .worker_threads(2)
                .thread_name("propack-s3")
                .enable_all()
                .build()
                .map_err(super::io_err(format!("start S3 runtime for {uri}")))?;
            let store = block(&rt, S3Store::load(options));
            Ok(Self {
                store,
                rt: Arc::new(rt),
            })
        }

        fn block<T: Send, E: Into<StorageError> + Send>(
            &self,
            f: impl Future<Output = Result<T, E>> + Send,
        ) -> Result<T, StorageError> {
            block(&self.rt, f).map_err(Into::into)
        }

        pub(super) fn fetch(&self, uri: &S3Uri, dest: &Path) -> Result<u64, StorageError> {
            self.block(self.store.get_file(uri, dest))
        }

        pub(super) fn upload(&self, src: &Path, uri: &S3Uri) -> Result<u64, StorageError> {
            Ok(self.block(self.store.put_file(uri, src))?.bytes)
        }

        pub(super) fn get_bytes(&self, uri: &S3Uri) -> Result<Vec<u8>, StorageError> {
            self.block(self.store.get_bytes(uri))
        }

        pub(super) fn put_bytes(&self, uri: &S3Uri, data: Vec<u8>) -> Result<(), StorageError> {
            self.block(self.store.put_bytes(uri, data))
        }

        pub(super) fn list(&self, prefix: &S3Uri) -> Result<Vec<String>, StorageError> {
            let keys = self.block(self.store.list(prefix))?;
            let mut uris: Vec<String> = keys
                .into_iter()
                .map(|k| S3Uri::new(prefix.bucket(), k).to_string())
                .collect();
            uris.sort();
            Ok(uris)
        }
    }

    /// Runs `f` to completion from blocking code, even when the caller is itself
    /// inside a tokio runtime (where `block_on` would panic).
    fn block<F>(rt: &tokio::runtime::Runtime, f: F) -> F::Output
    where
        F: Future + Send,
        F::Output: Send,
    {
        if tokio::runtime::Handle::try_current().is_ok() {
            std::thread::scope(|s| s.spawn(|| rt.block_on(f)).join().expect("S3 call panicked"))
        } else {
            rt.block_on(f)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn file_backend_round_trip_and_list() {
        let dir = tempfile::tempdir().unwrap();
        let root = format!("file://{}", dir.path().display());
        let st = Storage::from_env().unwrap();
        st.put_bytes(&format!("{root}/out/a/1.txt"), b"one")
            .unwrap();
        st.put_bytes(&format!("{root}/out/a/2.txt"), b"two")
            .unwrap();
        st.put_bytes(&format!("{root}/out/b.txt"), b"three")
            .unwrap();
        st.put_bytes(&format!("{root}/other.txt"), b"x").unwrap();
        assert_eq!(
            st.get_bytes(&format!("{root}/out/a/2.txt")).unwrap(),
            b"two"
        );

        let all = st.list(&format!("{root}/out/")).unwrap();
        assert_eq!(
            all,
            vec![
                format!("{root}/out/a/1.txt"),
                format!("{root}/out/a/2.txt"),
                format!("{root}/out/b.txt")
            ]
        );
        let partial = st.list(&format!("{root}/out/a/1")).unwrap();
        assert_eq!(partial, vec![format!("{root}/out/a/1.txt")]);
        assert!(st.list(&format!("{root}/missing/")).unwrap().is_empty());

        let dest = dir.path().join("fetched/x.txt");
        assert_eq!(st.fetch(&format!("{root}/out/b.txt"), &dest).unwrap(), 5);
        assert_eq!(st.upload(&dest, &format!("{root}/up/y.txt")).unwrap(), 5);
        assert_eq!(st.get_bytes(&format!("{root}/up/y.txt")).unwrap(), b"three");

        let err = st.get_bytes(&format!("{root}/nope")).unwrap_err();
        assert!(err.to_string().contains("nope"), "{err}");
        assert!(matches!(
            st.get_bytes("ftp://x"),
            Err(StorageError::Uri(UriError::Scheme(_)))
        ));
    }
}
