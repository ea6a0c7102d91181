//! The invocation handler shared by every front-end: parse, resolve the deadline, run, stamp instance facts, fit the result into its budget.

use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::Instant;

use serde_json::Value;

use crate::contract::{Batch, BatchResult, ErrorPayload};
use crate::deadline::{DeadlineResolver, epoch_ms};
use crate::executor::{ConfigError, ExecutorConfig, WorkerPools, run_batch_in};
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

/// One function instance: its configuration, its warm handler workers and the facts
/// reported with every result. One per process; it lives across invocations.
#[derive(Debug)]
pub struct Instance {
    cfg: ExecutorConfig,
    storage: Storage,
    resolver: DeadlineResolver,
    invocations: AtomicU64,
    init_ms: AtomicU64,
    pools: Arc<WorkerPools>,
}

/// What the platform says about one invocation besides its payload.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct InvocationMeta {
    /// The `Lambda-Runtime-Deadline-Ms` header, if any.
    pub deadline_header: Option<String>,
    /// The platform's request id.
    pub request_id: Option<String>,
    /// The invoked function's ARN (handlers see it as `context.invoked_function_arn`).
    pub invoked_function_arn: Option<String>,
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
            pools: Arc::new(WorkerPools::new()),
        }
    }

    /// The instance's handler worker pools (warm across invocations).
    pub fn worker_pools(&self) -> &Arc<WorkerPools> {
        &self.pools
    }

    /// Records that the instance is ready for its first event; `process_start` is when `main` began.
    pub fn mark_ready(&self, process_start: Instant) {
        self.init_ms.store(
            process_start.elapsed().as_millis() as u64,
            Ordering::Relaxed,
        );
    }

    /// Caps every result at `limit` bytes (the platform's response limit), below any
    /// `PROPACK_MAX_RESULT_BYTES`; a batch's `max_result_bytes` can lower it further.
    pub fn with_result_limit(mut self, limit: u64) -> Self {
        self.cfg.max_result_bytes = Some(self.cfg.max_result_bytes.map_or(limit, |b| b.min(limit)));
        self
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
        let meta = InvocationMeta {
            deadline_header: deadline_header.map(str::to_owned),
            request_id,
            invoked_function_arn: None,
        };
        Ok(self.run(&batch, received_at, cold, meta))
    }

    /// Handles one invocation payload (parsed JSON). Blocking.
    pub fn handle_value(
        &self,
        payload: &Value,
        deadline_header: Option<&str>,
        request_id: Option<String>,
    ) -> Result<BatchResult, ErrorPayload> {
        let meta = InvocationMeta {
            deadline_header: deadline_header.map(str::to_owned),
            request_id,
            invoked_function_arn: None,
        };
        self.handle_invocation(payload, meta)
    }

    /// Handles one invocation payload (parsed JSON) with everything the platform said about it. Blocking.
    pub fn handle_invocation(
        &self,
        payload: &Value,
        meta: InvocationMeta,
    ) -> Result<BatchResult, ErrorPayload> {
        let received_at = epoch_ms();
        let cold = self.invocations.fetch_add(1, Ordering::Relaxed) == 0;
        let batch = Batch::from_value(payload, &self.cfg.parse_options())
            .map_err(|e| ErrorPayload::from(&e))?;
        Ok(self.run(&batch, received_at, cold, meta))
    }

    fn run(
        &self,
        batch: &Batch,
        received_at: u64,
        cold_start: bool,
        meta: InvocationMeta,
    ) -> BatchResult {
        let (deadline, warning) = self.resolver.resolve(meta.deadline_header.as_deref());
        if let Some(w) = warning {
            tracing::warn!("{w}");
        }
        let mut cfg = self.cfg.clone();
        cfg.deadline = deadline.at;
        cfg.invoked_function_arn = meta.invoked_function_arn;
        let mut r = run_batch_in(batch, &cfg, &self.storage, &self.pools);
        r.received_at = received_at;
        r.cold_start = cold_start;
        r.init_ms = self.init_ms.load(Ordering::Relaxed);
        r.request_id = meta.request_id;
        // Fitted last: the instance facts above count towards the size too.
        let budget = match (batch.max_result_bytes, self.cfg.max_result_bytes) {
            (Some(a), Some(b)) => Some(a.min(b)),
            (a, b) => a.or(b),
        };
        if let Some(budget) = budget {
            let report = crate::budget::fit(&mut r, budget);
            if !report.fits() {
                tracing::warn!(
                    "batch result is {} bytes after shortening every record, over its budget of \
                     {budget} bytes: the budget is below what ids, statuses and timings of {} tasks need",
                    report.after,
                    r.tasks.len()
                );
            } else if report.truncated_tasks > 0 {
                tracing::info!(
                    "batch result shortened from {} to {} bytes (budget {budget}) in {} task records",
                    report.before,
                    report.after,
                    report.truncated_tasks
                );
            }
        }
        r
    }
}
