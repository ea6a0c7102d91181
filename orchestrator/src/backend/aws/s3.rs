//! S3 objects: `s3://` URIs, uploads (multipart above a threshold), downloads and listings.

use std::fmt;
use std::path::Path;

use aws_sdk_s3::primitives::ByteStream;
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncReadExt;

use super::error::{AwsError, sdk_error};

/// S3 refuses multipart parts smaller than this (except the last).
pub const MIN_PART_BYTES: u64 = 5 * 1024 * 1024;

/// A bucket and key.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord, Hash)]
pub struct S3Uri {
    /// Bucket name.
    pub bucket: String,
    /// Object key (may be empty for a bucket-level prefix).
    pub key: String,
}

impl S3Uri {
    /// Builds a URI from parts.
    pub fn new(bucket: impl Into<String>, key: impl Into<String>) -> Self {
        Self {
            bucket: bucket.into(),
            key: key.into(),
        }
    }

    /// Parses `s3://bucket/key`.
    pub fn parse(uri: &str) -> Result<Self, AwsError> {
        let rest = uri
            .strip_prefix("s3://")
            .ok_or_else(|| AwsError::BadUri(uri.to_owned()))?;
        let (bucket, key) = rest.split_once('/').unwrap_or((rest, ""));
        if bucket.is_empty() {
            return Err(AwsError::BadUri(uri.to_owned()));
        }
        Ok(Self::new(bucket, key))
    }

    /// This URI with `suffix` appended to the key (a `/` is inserted when needed).
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

/// Uploads, downloads and lists objects.
#[derive(Debug, Clone)]
pub struct ObjectStore {
    client: aws_sdk_s3::Client,
    /// Files larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part (≥ [`MIN_PART_BYTES`]).
    pub part_bytes: u64,
}

impl ObjectStore {
    /// A store with 16 MiB multipart threshold and 8 MiB parts.
    pub fn new(client: aws_sdk_s3::Client) -> Self {
        Self {
            client,
            multipart_threshold: 16 * 1024 * 1024,
            part_bytes: 8 * 1024 * 1024,
        }
    }

    /// The underlying client.
    pub fn client(&self) -> &aws_sdk_s3::Client {
        &self.client
    }

    /// Creates the bucket if it does not exist yet.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), AwsError> {
        if self
            .client
            .head_bucket()
            .bucket(bucket)
            .send()
            .await
            .is_ok()
        {
            return Ok(());
        }
        match self.client.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(sdk_error(&e, "s3:CreateBucket", bucket, "s3:CreateBucket")),
        }
    }

    /// Uploads bytes in one `PutObject`.
    pub async fn put_bytes(&self, uri: &S3Uri, bytes: Vec<u8>) -> Result<(), AwsError> {
        self.client
            .put_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .body(ByteStream::from(bytes))
            .send()
            .await
            .map_err(|e| sdk_error(&e, "s3:PutObject", &uri.to_string(), "s3:PutObject"))?;
        Ok(())
    }

    /// Uploads a file: one `PutObject` up to the threshold, a multipart upload above it.
    /// Returns the number of parts (1 for a single put).
    pub async fn put_file(&self, uri: &S3Uri, path: &Path) -> Result<usize, AwsError> {
        let len = tokio::fs::metadata(path)
            .await
            .map_err(|e| AwsError::io(path, e))?
            .len();
        if len <= self.multipart_threshold {
            let bytes = tokio::fs::read(path)
                .await
                .map_err(|e| AwsError::io(path, e))?;
            self.put_bytes(uri, bytes).await?;
            return Ok(1);
        }
        let file = tokio::fs::File::open(path)
            .await
            .map_err(|e| AwsError::io(path, e))?;
        self.put_multipart(uri, file, path, len).await
    }

    async fn put_multipart(
        &self,
        uri: &S3Uri,
        mut file: tokio::fs::File,
        path: &Path,
        len: u64,
    ) -> Result<usize, AwsError> {
        let resource = uri.to_string();
        let created = self
            .client
            .create_multipart_upload()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
            .map_err(|e| sdk_error(&e, "s3:CreateMultipartUpload", &resource, "s3:PutObject"))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| {
                AwsError::Invalid(format!(
                    "CreateMultipartUpload for {resource} returned no upload id"
                ))
            })?
            .to_owned();
        let part_bytes = self.part_bytes.max(MIN_PART_BYTES) as usize;
        let result = async {
            let mut parts = Vec::new();
            let mut number = 1;
            loop {
                let mut buf = Vec::with_capacity(part_bytes);
                (&mut file)
                    .take(part_bytes as u64)
                    .read_to_end(&mut buf)
                    .await
                    .map_err(|e| AwsError::io(path, e))?;
                if buf.is_empty() {
                    break;
                }
                let part = self
                    .client
                    .upload_part()
                    .bucket(&uri.bucket)
                    .key(&uri.key)
                    .upload_id(&upload_id)
                    .part_number(number)
                    .body(ByteStream::from(buf))
                    .send()
                    .await
                    .map_err(|e| sdk_error(&e, "s3:UploadPart", &resource, "s3:PutObject"))?;
                parts.push(
                    CompletedPart::builder()
                        .part_number(number)
                        .set_e_tag(part.e_tag().map(str::to_owned))
                        .build(),
                );
                number += 1;
            }
            let count = parts.len();
            let done = self
                .client
                .complete_multipart_upload()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .upload_id(&upload_id)
                .multipart_upload(
                    CompletedMultipartUpload::builder()
                        .set_parts(Some(parts))
                        .build(),
                )
                .send()
                .await;
            match done {
                Ok(_) => {}
                // Some S3-compatible servers (moto 5.1+) answer 200 with a body whose root
                // element the SDK refuses; trust the object only if it is really there, whole.
                Err(e) if e.raw_response().is_some_and(|r| r.status().as_u16() == 200) => {
                    let head = self
                        .client
                        .head_object()
                        .bucket(&uri.bucket)
                        .key(&uri.key)
                        .send()
                        .await;
                    let size = head.ok().and_then(|h| h.content_length());
                    if size != Some(len as i64) {
                        return Err(sdk_error(
                            &e,
                            "s3:CompleteMultipartUpload",
                            &resource,
                            "s3:PutObject",
                        ));
                    }
                }
                Err(e) => {
                    return Err(sdk_error(
                        &e,
                        "s3:CompleteMultipartUpload",
                        &resource,
                        "s3:PutObject",
                    ));
                }
            }
            Ok(count)
        }
        .await;
        if result.is_err() {
            // Abandoned parts are billed until aborted; the original error matters more than this one.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(&uri.bucket)
                .key(&uri.key)
                .upload_id(&upload_id)
                .send()
                .await;
        }
        result
    }

    /// Downloads an object into memory.
    pub async fn get_bytes(&self, uri: &S3Uri) -> Result<Vec<u8>, AwsError> {
        let resource = uri.to_string();
        let out = self
            .client
            .get_object()
            .bucket(&uri.bucket)
            .key(&uri.key)
            .send()
            .await
            .map_err(|e| sdk_error(&e, "s3:GetObject", &resource, "s3:GetObject"))?;
        let data = out
            .body
            .collect()
            .await
            .map_err(|e| AwsError::Invalid(format!("reading {resource}: {e}")))?;
        Ok(data.into_bytes().to_vec())
    }

    /// Downloads an object into a file, creating parent directories.
    pub async fn get_file(&self, uri: &S3Uri, path: &Path) -> Result<u64, AwsError> {
        let bytes = self.get_bytes(uri).await?;
        if let Some(parent) = path.parent() {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(|e| AwsError::io(parent, e))?;
        }
        tokio::fs::write(path, &bytes)
            .await
            .map_err(|e| AwsError::io(path, e))?;
        Ok(bytes.len() as u64)
    }

    /// Every key under a prefix (all pages).
    pub async fn list(&self, prefix: &S3Uri) -> Result<Vec<String>, AwsError> {
        let resource = prefix.to_string();
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(&prefix.bucket)
            .prefix(&prefix.key)
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page =
                page.map_err(|e| sdk_error(&e, "s3:ListObjectsV2", &resource, "s3:ListBucket"))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn uris_parse_and_join() {
        let u = S3Uri::parse("s3://b/runs/r1").unwrap();
        assert_eq!(u, S3Uri::new("b", "runs/r1"));
        assert_eq!(
            u.join("manifest.json").to_string(),
            "s3://b/runs/r1/manifest.json"
        );
        assert_eq!(S3Uri::parse("s3://b").unwrap().join("x").key, "x");
        assert!(matches!(
            S3Uri::parse("file:///x"),
            Err(AwsError::BadUri(_))
        ));
        assert!(matches!(S3Uri::parse("s3:///k"), Err(AwsError::BadUri(_))));
    }
}
