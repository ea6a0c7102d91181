//! The async S3 core shared by the runtime's blocking [`Storage`](crate::storage) and the orchestrator's AWS backend.
//!
//! One place for the client settings S3-compatible servers need (endpoint override ⇒
//! path-style addressing, checksums only when required), object get/put/list/head,
//! multipart uploads above a threshold (aborted on failure), the moto workaround, and
//! errors that name the object, the call and — when access is denied — the missing
//! IAM permission.

mod error;
#[cfg(test)]
mod tests;

use std::path::Path;

use aws_config::SdkConfig;
use aws_sdk_s3::Client;
use aws_sdk_s3::config::{RequestChecksumCalculation, ResponseChecksumValidation};
use aws_sdk_s3::primitives::{ByteStream, Length};
use aws_sdk_s3::types::{CompletedMultipartUpload, CompletedPart};
use tokio::io::AsyncWriteExt;

pub use self::error::{BoxError, ErrorClass, S3Error, S3Op, classify, describe};
use crate::uri::S3Uri;

/// S3 refuses multipart parts smaller than this (except the last).
pub const MIN_PART_SIZE: u64 = 5 << 20;
/// Default multipart threshold: 16 MiB.
pub const DEFAULT_MULTIPART_THRESHOLD: u64 = 16 << 20;
/// Default part size: 8 MiB.
pub const DEFAULT_PART_SIZE: u64 = 8 << 20;

/// Where S3 requests go and how large objects are uploaded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct S3Options {
    /// Endpoint override for S3-compatible servers (moto, MinIO); implies path-style addressing.
    pub endpoint_url: Option<String>,
    /// Force path-style addressing even without an endpoint override.
    pub force_path_style: bool,
    /// Objects larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// Part size for multipart uploads (at least [`MIN_PART_SIZE`] is used).
    pub part_size: u64,
}

impl Default for S3Options {
    fn default() -> Self {
        Self::with_endpoint(None)
    }
}

impl S3Options {
    /// Reads `AWS_ENDPOINT_URL_S3`, then `AWS_ENDPOINT_URL`, and `PROPACK_S3_PATH_STYLE=1`.
    pub fn from_env() -> Self {
        let endpoint_url = std::env::var("AWS_ENDPOINT_URL_S3")
            .ok()
            .or_else(|| std::env::var("AWS_ENDPOINT_URL").ok())
            .filter(|s| !s.is_empty());
        let force_path_style = matches!(
            std::env::var("PROPACK_S3_PATH_STYLE").as_deref(),
            Ok("1" | "true")
        );
        Self {
            force_path_style,
            ..Self::with_endpoint(endpoint_url)
        }
    }

    /// Options for a given endpoint (None: AWS itself) with the default part sizes.
    pub fn with_endpoint(endpoint_url: Option<String>) -> Self {
        Self {
            endpoint_url,
            force_path_style: false,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }
}

/// An S3 client for `conf` with the settings S3-compatible servers need: path-style
/// addressing under any endpoint override (they rarely resolve `bucket.host` names) or
/// when forced, and checksums only where the API requires them (since early 2025 the SDK
/// adds CRC checksums to every request by default; moto and MinIO reject or mangle them).
pub fn client(conf: &SdkConfig, opts: &S3Options) -> Client {
    let path_style =
        opts.force_path_style || opts.endpoint_url.is_some() || conf.endpoint_url().is_some();
    let mut b = aws_sdk_s3::config::Builder::from(conf)
        .request_checksum_calculation(RequestChecksumCalculation::WhenRequired)
        .response_checksum_validation(ResponseChecksumValidation::WhenRequired)
        .force_path_style(path_style);
    if let Some(ep) = &opts.endpoint_url {
        b = b.endpoint_url(ep);
    }
    Client::from_conf(b.build())
}

/// What [`S3Store::put_file`] sent.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Upload {
    /// Bytes uploaded.
    pub bytes: u64,
    /// Requests carrying data: 1 for a single `PutObject`, else the part count.
    pub parts: usize,
}

/// Async object operations on S3; cheap to clone (the client is shared).
#[derive(Debug, Clone)]
pub struct S3Store {
    client: Client,
    /// Files larger than this are uploaded in parts.
    pub multipart_threshold: u64,
    /// Size of each part (at least [`MIN_PART_SIZE`] is used).
    pub part_size: u64,
}

impl S3Store {
    /// A store over `client` with the default multipart threshold and part size.
    pub fn new(client: Client) -> Self {
        Self {
            client,
            multipart_threshold: DEFAULT_MULTIPART_THRESHOLD,
            part_size: DEFAULT_PART_SIZE,
        }
    }

    /// A store for an already-loaded configuration.
    pub fn from_conf(conf: &SdkConfig, opts: &S3Options) -> Self {
        Self {
            client: client(conf, opts),
            multipart_threshold: opts.multipart_threshold,
            part_size: opts.part_size,
        }
    }

    /// A store on the standard credential chain and region (`us-east-1` when none is configured).
    pub async fn load(opts: &S3Options) -> Self {
        let region = aws_config::meta::region::RegionProviderChain::default_provider()
            .or_else(aws_config::Region::new("us-east-1"));
        let conf = aws_config::defaults(aws_config::BehaviorVersion::latest())
            .region(region)
            .load()
            .await;
        Self::from_conf(&conf, opts)
    }

    /// The underlying client.
    pub fn client(&self) -> &Client {
        &self.client
    }

    /// Creates `bucket` unless it exists already.
    pub async fn ensure_bucket(&self, bucket: &str) -> Result<(), S3Error> {
        let c = &self.client;
        if c.head_bucket().bucket(bucket).send().await.is_ok() {
            return Ok(());
        }
        match c.create_bucket().bucket(bucket).send().await {
            Ok(_) => Ok(()),
            Err(e)
                if e.as_service_error()
                    .is_some_and(|s| s.is_bucket_already_owned_by_you()) =>
            {
                Ok(())
            }
            Err(e) => Err(S3Error::from_sdk(
                S3Op::CreateBucket,
                &S3Uri::new(bucket, ""),
            )(e)),
        }
    }

    async fn get_object(
        &self,
        uri: &S3Uri,
    ) -> Result<aws_sdk_s3::operation::get_object::GetObjectOutput, S3Error> {
        self.client
            .get_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
            .map_err(S3Error::from_sdk(S3Op::GetObject, uri))
    }

    /// Reads a whole object into memory.
    pub async fn get_bytes(&self, uri: &S3Uri) -> Result<Vec<u8>, S3Error> {
        let out = self.get_object(uri).await?;
        let data = out
            .body
            .collect()
            .await
            .map_err(S3Error::stream(S3Op::GetObject, uri))?;
        Ok(data.into_bytes().to_vec())
    }

    /// Streams an object into a file (parent directories created); returns bytes written.
    pub async fn get_file(&self, uri: &S3Uri, path: &Path) -> Result<u64, S3Error> {
        let out = self.get_object(uri).await?;
        let op = S3Op::GetObject;
        if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
            tokio::fs::create_dir_all(parent)
                .await
                .map_err(S3Error::io(op, uri, "creating directory", parent))?;
        }
        let mut file = tokio::fs::File::create(path)
            .await
            .map_err(S3Error::io(op, uri, "creating", path))?;
        let mut body = out.body.into_async_read();
        let n = tokio::io::copy(&mut body, &mut file)
            .await
            .map_err(S3Error::io(op, uri, "downloading into", path))?;
        file.flush()
            .await
            .map_err(S3Error::io(op, uri, "writing", path))?;
        Ok(n)
    }

    async fn put_object(&self, uri: &S3Uri, body: ByteStream) -> Result<(), S3Error> {
        self.client
            .put_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .body(body)
            .send()
            .await
            .map_err(S3Error::from_sdk(S3Op::PutObject, uri))?;
        Ok(())
    }

    /// Writes a whole object in one `PutObject`.
    pub async fn put_bytes(&self, uri: &S3Uri, bytes: Vec<u8>) -> Result<(), S3Error> {
        self.put_object(uri, ByteStream::from(bytes)).await
    }

    /// Uploads a file, streamed from disk: one `PutObject` up to the multipart threshold,
    /// a multipart upload above it (aborted if any step fails).
    pub async fn put_file(&self, uri: &S3Uri, path: &Path) -> Result<Upload, S3Error> {
        let bytes = tokio::fs::metadata(path)
            .await
            .map_err(S3Error::io(S3Op::PutObject, uri, "reading", path))?
            .len();
        if bytes <= self.multipart_threshold {
            let body = ByteStream::from_path(path)
                .await
                .map_err(S3Error::stream(S3Op::PutObject, uri))?;
            self.put_object(uri, body).await?;
            return Ok(Upload { bytes, parts: 1 });
        }
        let created = self
            .client
            .create_multipart_upload()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
            .map_err(S3Error::from_sdk(S3Op::CreateMultipartUpload, uri))?;
        let upload_id = created
            .upload_id()
            .ok_or_else(|| S3Error::NoUploadId { uri: uri.clone() })?
            .to_owned();
        let result = self.upload_parts(uri, path, bytes, &upload_id).await;
        if result.is_err() {
            // Parts of an abandoned upload are billed until aborted; the original error
            // matters more than a failure to abort.
            let _ = self
                .client
                .abort_multipart_upload()
                .bucket(uri.bucket())
                .key(uri.key())
                .upload_id(&upload_id)
                .send()
                .await;
        }
        let parts = result?;
        Ok(Upload { bytes, parts })
    }

    /// Uploads `path` (`len` bytes) as the parts of `upload_id` and completes the upload.
    async fn upload_parts(
        &self,
        uri: &S3Uri,
        path: &Path,
        len: u64,
        upload_id: &str,
    ) -> Result<usize, S3Error> {
        let part_size = self.part_size.max(MIN_PART_SIZE);
        let mut parts = Vec::new();
        let mut offset = 0u64;
        while offset < len {
            let n = part_size.min(len - offset);
            let number = i32::try_from(parts.len() + 1).expect("S3 allows 10,000 parts");
            let body = ByteStream::read_from()
                .path(path)
                .offset(offset)
                .length(Length::Exact(n))
                .build()
                .await
                .map_err(S3Error::stream(S3Op::UploadPart, uri))?;
            let out = self
                .client
                .upload_part()
                .bucket(uri.bucket())
                .key(uri.key())
                .upload_id(upload_id)
                .part_number(number)
                .body(body)
                .send()
                .await
                .map_err(S3Error::from_sdk(S3Op::UploadPart, uri))?;
            parts.push(
                CompletedPart::builder()
                    .part_number(number)
                    .set_e_tag(out.e_tag().map(str::to_owned))
                    .build(),
            );
            offset += n;
        }
        let count = parts.len();
        let done = self
            .client
            .complete_multipart_upload()
            .bucket(uri.bucket())
            .key(uri.key())
            .upload_id(upload_id)
            .multipart_upload(
                CompletedMultipartUpload::builder()
                    .set_parts(Some(parts))
                    .build(),
            )
            .send()
            .await;
        match done {
            Ok(_) => Ok(count),
            Err(e) => {
                // moto 5.1+ completes the upload but answers 200 with a
                // `CompleteMultipartUploadResponse` root element the SDK refuses; trust
                // such a reply only if the object is really there, whole.
                let ok_status = e.raw_response().is_some_and(|r| r.status().as_u16() == 200);
                if ok_status && matches!(self.object_len(uri).await, Ok(Some(n)) if n == len) {
                    Ok(count)
                } else {
                    Err(S3Error::from_sdk(S3Op::CompleteMultipartUpload, uri)(e))
                }
            }
        }
    }

    /// Every key under a prefix (all pages), in the service's (lexicographic) order.
    pub async fn list(&self, prefix: &S3Uri) -> Result<Vec<String>, S3Error> {
        let mut keys = Vec::new();
        let mut pages = self
            .client
            .list_objects_v2()
            .bucket(prefix.bucket())
            .prefix(prefix.key())
            .into_paginator()
            .send();
        while let Some(page) = pages.next().await {
            let page = page.map_err(S3Error::from_sdk(S3Op::ListObjectsV2, prefix))?;
            keys.extend(
                page.contents()
                    .iter()
                    .filter_map(|o| o.key().map(str::to_owned)),
            );
        }
        Ok(keys)
    }

    /// The size of an object, or `None` when there is no such object.
    pub async fn object_len(&self, uri: &S3Uri) -> Result<Option<u64>, S3Error> {
        match self
            .client
            .head_object()
            .bucket(uri.bucket())
            .key(uri.key())
            .send()
            .await
        {
            Ok(head) => Ok(head.content_length().and_then(|n| u64::try_from(n).ok())),
            Err(e) if e.as_service_error().is_some_and(|s| s.is_not_found()) => Ok(None),
            Err(e) => Err(S3Error::from_sdk(S3Op::HeadObject, uri)(e)),
        }
    }
}
