//! The invocation handler shared by every front-end: parse, resolve the deadline, run, stamp instance facts.

use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::contract::{Batch, BatchResult, ErrorPayload};
use crate::deadline::{DeadlineResolver, epoch_ms};
use crate::executor::{ConfigError, ExecutorConfig, run_batch};
use crate::storage::{Storage, StorageError};

/// The instance could not initialise; reported through the Runtime API's init-error endpoint.
#[derive(Debug, thiserror::Error)]
pub enum InitError {
    /// A malformed executor setting.
    #[error(transparent)]
    Config(#[from] ConfigError),
    /// The storage layer could not be set up.
    #[error(transparent)]
    Storage(#[from] StorageError),
}

/// One function instance: its configuration and the facts reported with every result.
#[derive(Debug)]
pub struct Instance {
    cfg: ExecutorConfig,
    storage: Storage,
    resolver: DeadlineResolver,
    invocations: AtomicU64,
    init_ms: AtomicU64,
}

impl Instance {
    /// An instance configured from the environment.
    pub fn from_env() -> Result<Self, InitError> {
        Ok(Self::new(
            ExecutorConfig::from_env()?,
            Storage::from_env()?,
            DeadlineResolver::from_env(),
        ))
    }

    /// Replaces the deadline resolver (e.g. one that expects no header).
    pub fn with_resolver(mut self, resolver: DeadlineResolver) -> Self {
        self.resolver = resolver;
        self
    }

    /// An instance with explicit parts.
    pub fn new(cfg: ExecutorConfig, storage: Storage, resolver: DeadlineResolver) -> Self {
        Self {
            cfg,
            storage,
            resolver,
            invocations: AtomicU64::new(0),
            init_ms: AtomicU64::new(0),
        }
    }

    /// Records that the instance is ready for its first event; `process_start` is when `main` began.
    pub fn mark_ready(&self, process_start: Instant) {
        self.init_ms.store(
            process_start.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// The executor configuration (without a deadline).
    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Handles one invocation payload (bytes of JSON). Blocking.
    pub fn handle_bytes(
        &self,
        payload: &[u8],
        deadline_header: Option<&str>,
        request_id: Option<String>,
    ) -> Result<BatchResult, ErrorPayload> {
        let received_at = epoch_ms();
        let cold = self.invocations.fetch_add(1, Ordering::Relaxed) == 0;
        let batch = Batch::from_slice(payload, &self.cfg.parse_options())
            .map_err(|e| ErrorPayload::from(&e))?;
        Ok(self.run(&batch, received_at, cold, deadline_header, request_id))
    }

    /// Handles one invocation payload (parsed JSON). Blocking.
    pub fn handle_value(
        &self,
        payload: &Value,
        deadline_header: Option<&str>,
        request_id: Option<String>,
    ) -> Result<BatchResult, ErrorPayload> {
        let received_at = epoch_ms();
        let cold = self.invocations.fetch_add(1, Ordering::Relaxed) == 0;
        let batch = Batch::from_value(payload, &self.cfg.parse_options())
            .map_err(|e| ErrorPayload::from(&e))?;
        Ok(self.run(&batch, received_at, cold, deadline_header, request_id))
    }

    fn run(
        &self,
        batch: &Batch,
        received_at: u64,
        cold_start: bool,
        deadline_header: Option<&str>,
        request_id: Option<String>,
    ) -> BatchResult {
        let (deadline, warning) = self.resolver.resolve(deadline_header);
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let mut cfg = self.cfg.clone();
        cfg.deadline = deadline.at;
        let mut r = run_batch(batch, &cfg, &self.storage);
        r.received_at = received_at;
        r.cold_start = cold_start;
        r.init_ms = self.init_ms.load(Ordering::Relaxed);
        r.request_id = request_id;
        r
    }
}
