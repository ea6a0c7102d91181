//! Object URIs (`s3://bucket/key`, `file:///absolute/path`): the one parser, printer and joiner.
//!
//! Std only, so it is available with `default-features = false`. Paths are taken
//! literally (no percent-decoding), as every producer of these URIs writes them.

use std::fmt;
use std::path::{Path, PathBuf};
use std::str::FromStr;

/// Why a string is not the object URI it should be.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum UriError {
    /// Neither `s3://` nor `file://`.
    #[error("unsupported URI {0:?}: expected s3://bucket/key or file:///absolute/path")]
    Scheme(String),
    /// `s3://` without a bucket name (`s3:///key`, `s3://`).
    #[error("invalid S3 URI {0:?}: the bucket name is empty (expected s3://bucket/key)")]
    EmptyBucket(String),
    /// `file://` with a host or a relative path (`file://host/x`, `file://x`).
    #[error("invalid file URI {0:?}: expected file:///absolute/path (no host, an absolute path)")]
    NotAbsolute(String),
    /// Only `s3://` is accepted here.
    #[error("{0:?} is not an S3 URI: expected s3://bucket/key")]
    NotS3(String),
    /// A local path that cannot become a `file://` URI.
    #[error("{} is not an absolute path, so it has no file:// URI", .0.display())]
    RelativePath(PathBuf),
}

/// An S3 object or key prefix: a non-empty bucket and a key (empty for the whole bucket).
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Uri {
    bucket: String,
    key: String,
}

impl S3Uri {
    /// The object `key` in `bucket` (the bucket is expected to be a non-empty name).
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Parses `s3://bucket/key`; `file://` and other schemes are [`UriError::NotS3`].
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        match ObjectUri::parse(uri) {
            Ok(ObjectUri::S3(s3)) => Ok(s3),
            Ok(ObjectUri::File(_)) | Err(UriError::Scheme(_)) => {
                Err(UriError::NotS3(uri.to_owned()))
            }
            Err(e) => Err(e),
        }
    }

    /// The bucket name.
    pub fn bucket(&self) -> &str {
        &self.bucket
    }

    /// The key (empty for the whole bucket).
    pub fn key(&self) -> &str {
        &self.key
    }

    /// This URI with `suffix` appended to the key, with a `/` between them unless the
    /// key is empty or already ends with one.
    pub fn join(&self, suffix: &str) -> Self {
        let key = if self.key.is_empty() || self.key.ends_with('/') {
            format!("{}{suffix}", self.key)
        } else {
            format!("{}/{suffix}", self.key)
        };
        Self::new(self.bucket.clone(), key)
    }
}

impl fmt::Display for S3Uri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "s3://{}/{}", self.bucket, self.key)
    }
}

impl FromStr for S3Uri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        Self::parse(s)
    }
}

/// Where a task input or output lives.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub enum ObjectUri {
    /// An S3 object or key prefix.
    S3(S3Uri),
    /// A local file, or a directory / path prefix (absolute; a trailing `/` is kept).
    File(PathBuf),
}

impl ObjectUri {
    /// Parses `s3://bucket/key` or `file:///absolute/path`.
    pub fn parse(uri: &str) -> Result<Self, UriError> {
        if let Some(rest) = uri.strip_prefix("s3://") {
            let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
            if bucket.is_empty() {
                return Err(UriError::EmptyBucket(uri.to_owned()));
            }
            return Ok(Self::S3(S3Uri::new(bucket, key)));
        }
        if let Some(path) = uri.strip_prefix("file://") {
            // The host part must be empty: `file://host/x` names another machine's file.
            if !path.starts_with('/') {
                return Err(UriError::NotAbsolute(uri.to_owned()));
            }
            return Ok(Self::File(PathBuf::from(path)));
        }
        Err(UriError::Scheme(uri.to_owned()))
    }

    /// The `file://` URI of an absolute local path.
    pub fn from_path(path: impl Into<PathBuf>) -> Result<Self, UriError> {
        let path = path.into();
        if path.is_absolute() {
            Ok(Self::File(path))
        } else {
            Err(UriError::RelativePath(path))
        }
    }

    /// The S3 location, if this is one.
    pub fn as_s3(&self) -> Option<&S3Uri> {
        match self {
            Self::S3(s3) => Some(s3),
            Self::File(_) => None,
        }
    }

    /// The bucket of an S3 URI.
    pub fn bucket(&self) -> Option<&str> {
        self.as_s3().map(S3Uri::bucket)
    }

    /// The key of an S3 URI.
    pub fn key(&self) -> Option<&str> {
        self.as_s3().map(S3Uri::key)
    }

    /// The local path of a `file://` URI.
    pub fn file_path(&self) -> Option<&Path> {
        match self {
            Self::File(p) => Some(p),
            Self::S3(_) => None,
        }
    }

    /// The local path of a `file://` URI, by value.
    pub fn into_file_path(self) -> Option<PathBuf> {
        match self {
            Self::File(p) => Some(p),
            Self::S3(_) => None,
        }
    }

    /// This URI with `suffix` appended (S3: to the key; file: to the path), with a `/`
    /// between them unless there already is one.
    pub fn join(&self, suffix: &str) -> Self {
        match self {
            Self::S3(s3) => Self::S3(s3.join(suffix)),
            Self::File(p) => {
                let mut s = p.clone().into_os_string();
                if !s.as_encoded_bytes().ends_with(b"/") {
                    s.push("/");
                }
                s.push(suffix);
                Self::File(PathBuf::from(s))
            }
        }
    }
}

impl fmt::Display for ObjectUri {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            Self::S3(s3) => s3.fmt(f),
            Self::File(p) => write!(f, "file://{}", p.display()),
        }
    }
}

impl FromStr for ObjectUri {
    type Err = UriError;
    fn from_str(s: &str) -> Result<Self, UriError> {
        Self::parse(s)
    }
}

impl From<S3Uri> for ObjectUri {
    fn from(s3: S3Uri) -> Self {
        Self::S3(s3)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn s3(bucket: &str, key: &str) -> ObjectUri {
        ObjectUri::S3(S3Uri::new(bucket, key))
    }

    #[test]
    fn s3_uris_split_at_the_first_slash() {
        assert_eq!(ObjectUri::parse("s3://b/k/x.txt"), Ok(s3("b", "k/x.txt")));
        assert_eq!(ObjectUri::parse("s3://b/p/out/"), Ok(s3("b", "p/out/")));
        assert_eq!(ObjectUri::parse("s3://b/"), Ok(s3("b", "")));
        assert_eq!(ObjectUri::parse("s3://b"), Ok(s3("b", "")));
        // Keys are opaque: doubled slashes and a leading slash belong to the key.
        assert_eq!(ObjectUri::parse("s3://b//k"), Ok(s3("b", "/k")));
        let u = ObjectUri::parse("s3://my-bucket/a/b").unwrap();
        assert_eq!(u.bucket(), Some("my-bucket"));
        assert_eq!(u.key(), Some("a/b"));
        assert_eq!(u.file_path(), None);
    }

    #[test]
    fn file_uris_need_an_absolute_path_and_no_host() {
        let u = ObjectUri::parse("file:///tmp/a b/c").unwrap();
        assert_eq!(u, ObjectUri::File("/tmp/a b/c".into()));
        assert_eq!(u.file_path(), Some(Path::new("/tmp/a b/c")));
        assert_eq!(u.bucket(), None);
        assert_eq!(u.key(), None);
        assert_eq!(
            ObjectUri::parse("file:///out/").unwrap().to_string(),
            "file:///out/",
            "a directory prefix keeps its slash"
        );
        assert_eq!(
            ObjectUri::parse("file://host/a"),
            Err(UriError::NotAbsolute("file://host/a".into()))
        );
        assert_eq!(
            ObjectUri::parse("file://"),
            Err(UriError::NotAbsolute("file://".into()))
        );
    }

    #[test]
    fn malformed_uris_say_what_is_wrong() {
        assert_eq!(
            ObjectUri::parse("s3:///k"),
            Err(UriError::EmptyBucket("s3:///k".into()))
        );
        assert_eq!(
            ObjectUri::parse("s3://"),
            Err(UriError::EmptyBucket("s3://".into()))
        );
        for bad in ["http://x/y", "/tmp/x", "", "S3://b/k", "s3:/b/k"] {
            assert_eq!(
                ObjectUri::parse(bad),
                Err(UriError::Scheme(bad.into())),
                "{bad}"
            );
        }
        assert_eq!(
            ObjectUri::parse("ftp://x").unwrap_err().to_string(),
            "unsupported URI \"ftp://x\": expected s3://bucket/key or file:///absolute/path"
        );
        assert_eq!(
            ObjectUri::parse("s3:///k").unwrap_err().to_string(),
            "invalid S3 URI \"s3:///k\": the bucket name is empty (expected s3://bucket/key)"
        );
    }

    #[test]
    fn s3_only_parsing_refuses_files_and_keeps_bucket_errors() {
        assert_eq!(
            S3Uri::parse("s3://b/runs/r1"),
            Ok(S3Uri::new("b", "runs/r1"))
        );
        assert_eq!(
            S3Uri::parse("file:///x"),
            Err(UriError::NotS3("file:///x".into()))
        );
        assert_eq!(
            S3Uri::parse("http://x"),
            Err(UriError::NotS3("http://x".into()))
        );
        assert_eq!(
            S3Uri::parse("s3:///k"),
            Err(UriError::EmptyBucket("s3:///k".into()))
        );
        assert_eq!("s3://b/k".parse::<S3Uri>().unwrap().key(), "k");
        assert_eq!(
            "file:///k".parse::<ObjectUri>().unwrap(),
            ObjectUri::File("/k".into())
        );
    }

    #[test]
    fn display_round_trips() {
        for text in [
            "s3://b/k/x.txt",
            "s3://b/",
            "s3://b/p/out/",
            "file:///tmp/x",
            "file:///",
        ] {
            assert_eq!(ObjectUri::parse(text).unwrap().to_string(), text);
        }
        // The bucket-only form prints with its slash, which parses to the same URI.
        assert_eq!(ObjectUri::parse("s3://b").unwrap().to_string(), "s3://b/");
    }

    #[test]
    fn join_inserts_exactly_one_slash() {
        let run = S3Uri::new("b", "runs/r1");
        assert_eq!(
            run.join("manifest.json").to_string(),
            "s3://b/runs/r1/manifest.json"
        );
        assert_eq!(
            S3Uri::new("b", "out/").join("x").to_string(),
            "s3://b/out/x"
        );
        assert_eq!(S3Uri::new("b", "").join("x").key(), "x");
        assert_eq!(
            ObjectUri::parse("file:///o")
                .unwrap()
                .join("a/b")
                .to_string(),
            "file:///o/a/b"
        );
        assert_eq!(
            ObjectUri::parse("file:///o/")
                .unwrap()
                .join("a")
                .to_string(),
            "file:///o/a"
        );
        assert_eq!(
            ObjectUri::from(run).join("in/0"),
            ObjectUri::S3(S3Uri::new("b", "runs/r1/in/0"))
        );
    }

    #[test]
    fn local_paths_become_file_uris_only_when_absolute() {
        assert_eq!(
            ObjectUri::from_path("/tmp/out/1.txt").unwrap().to_string(),
            "file:///tmp/out/1.txt"
        );
        assert_eq!(
            ObjectUri::from_path("rel/x"),
            Err(UriError::RelativePath("rel/x".into()))
        );
        assert_eq!(
            ObjectUri::from_path("/a").unwrap().into_file_path(),
            Some(PathBuf::from("/a"))
        );
    }
}
