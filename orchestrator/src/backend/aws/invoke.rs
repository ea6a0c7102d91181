//! Direct mode: ⌈C/k⌉ `Invoke` calls from the client with bounded concurrency, jittered
//! exponential backoff on throttling and 5xx, and the send time of every attempt.

use std::sync::Arc;
use std::time::{Duration, Instant};

use aws_sdk_lambda::primitives::Blob;
use propack_runtime::limits::LAMBDA_REQUEST_LIMIT;
use propack_runtime::{Batch, BatchResult, ErrorPayload, TaskStatus};
use rand::Rng;
use tokio::task::JoinSet;

use super::error::{AwsError, ErrorClass, classify, describe, sdk_error};
use crate::backend::{Progress, RunOutcome};
use crate::records::{InstanceRecord, RunRecords, TaskRecord};

/// How the fan-out behaves.
#[derive(Debug, Clone)]
pub struct FanoutOptions {
    /// Invocations in flight at once.
    pub max_in_flight: usize,
    /// Attempts per batch before it is recorded as failed (throttling and 5xx only).
    pub max_attempts: u32,
    /// Backoff before the first retry; doubles per attempt.
    pub base_backoff: Duration,
    /// Ceiling of the backoff.
    pub max_backoff: Duration,
    /// Once requested, no further batch is sent (those in flight finish).
    pub stop: crate::backend::Stop,
}

impl Default for FanoutOptions {
    fn default() -> Self {
        Self {
            max_in_flight: 256,
            max_attempts: 12,
            base_backoff: Duration::from_millis(50),
            max_backoff: Duration::from_secs(20),
            stop: crate::backend::Stop::NEVER,
        }
    }
}

impl FanoutOptions {
    /// The wait before retry number `retry` (0-based): exponential, capped, with jitter in
    /// [½, 1] of the cap so that a storm of throttled callers spreads out.
    pub fn backoff(&self, retry: u32) -> Duration {
        let exp = self.base_backoff.saturating_mul(1u32 << retry.min(20));
        let cap = exp.min(self.max_backoff);
        cap.mul_f64(rand::rng().random_range(0.5..=1.0))
    }
}

/// How one batch's invocation ended.
#[derive(Debug, Clone, PartialEq)]
pub enum InvocationOutcome {
    /// The function returned a batch result.
    Result(BatchResult),
    /// The function failed (unhandled error, crash, timeout) or returned something unreadable.
    FunctionError(String),
    /// Throttling or 5xx outlasted every retry.
    GaveUp(String),
}

/// One batch's invocation, as seen from the client.
#[derive(Debug, Clone, PartialEq)]
pub struct InvocationRecord {
    /// Index of the batch.
    pub batch: usize,
    /// Seconds from launch at which each attempt was sent.
    pub sent_s: Vec<f64>,
    /// Seconds from launch at which the last attempt returned.
    pub returned_s: f64,
    /// What came back.
    pub outcome: InvocationOutcome,
}

impl InvocationRecord {
    /// Retries needed (0 when the first attempt got through).
    pub fn retries(&self) -> usize {
        self.sent_s.len().saturating_sub(1)
    }
}

async fn invoke_one(
    client: aws_sdk_lambda::Client,
    function: Arc<str>,
    batch: usize,
    payload: Vec<u8>,
    opts: Arc<FanoutOptions>,
    launch: Instant,
) -> Result<InvocationRecord, AwsError> {
    let mut sent_s = Vec::new();
    let mut last = String::new();
    for attempt in 0..opts.max_attempts.max(1) {
        sent_s.push(launch.elapsed().as_secs_f64());
        let reply = client
            .invoke()
            .function_name(&*function)
            .payload(Blob::new(payload.clone()))
            .send()
            .await;
        match reply {
            Ok(out) => {
                let body = out.payload().map(|b| b.as_ref()).unwrap_or_default();
                let outcome = if let Some(kind) = out.function_error() {
                    let msg = serde_json::from_slice::<ErrorPayload>(body)
                        .map(|p| format!("{}: {}", p.error_type, p.error_message))
                        .unwrap_or_else(|_| String::from_utf8_lossy(body).into_owned());
                    InvocationOutcome::FunctionError(format!("{kind} function error: {msg}"))
                } else {
                    match serde_json::from_slice::<BatchResult>(body) {
                        Ok(r) => InvocationOutcome::Result(r),
                        Err(e) => InvocationOutcome::FunctionError(format!(
                            "the function returned something that is not a batch result ({e}): {}",
                            String::from_utf8_lossy(&body[..body.len().min(200)])
                        )),
                    }
                };
                return Ok(InvocationRecord {
                    batch,
                    sent_s,
                    returned_s: launch.elapsed().as_secs_f64(),
                    outcome,
                });
            }
            Err(e) => match classify(&e) {
                ErrorClass::Throttled | ErrorClass::Transient => {
                    last = describe(&e);
                    if attempt + 1 < opts.max_attempts {
                        tokio::time::sleep(opts.backoff(attempt)).await;
                    }
                }
                // Every batch is packed alike, so the others are about as large: stop the
                // run (what returned is journaled) and say how to make batches fit.
                ErrorClass::Permanent
                    if e.raw_response().map(|r| r.status().as_u16()) == Some(413) =>
                {
                    return Err(AwsError::Invalid(format!(
                        "lambda:Invoke on {function}: batch {batch}'s request is {} bytes, over \
                         Lambda's {LAMBDA_REQUEST_LIMIT}-byte synchronous payload limit ({}); \
                         pack fewer tasks per batch (--packing) or pass large inputs by URI",
                        payload.len(),
                        describe(&e)
                    )));
                }
                ErrorClass::Denied | ErrorClass::Permanent => {
                    return Err(sdk_error(
                        &e,
                        "lambda:Invoke",
                        &function,
                        "lambda:InvokeFunction",
                    ));
                }
            },
        }
    }
    Ok(InvocationRecord {
        batch,
        sent_s,
        returned_s: launch.elapsed().as_secs_f64(),
        outcome: InvocationOutcome::GaveUp(format!(
            "gave up after {} attempts: {last}",
            opts.max_attempts.max(1)
        )),
    })
}

/// Invokes `function` once per payload, at most `max_in_flight` at a time.
///
/// Throttling and 5xx are retried per batch; a denied or otherwise permanent error
/// (missing permission, unknown function) cancels everything in flight and is returned.
/// Records come back in batch order; after a stop, batches not yet sent have none (not run).
pub async fn fan_out(
    client: &aws_sdk_lambda::Client,
    function: &str,
    payloads: Vec<Vec<u8>>,
    tasks_per_batch: &[usize],
    opts: &FanoutOptions,
    launch: Instant,
    progress: &dyn Progress,
) -> Result<Vec<InvocationRecord>, AwsError> {
    let function: Arc<str> = Arc::from(function);
    let opts = Arc::new(opts.clone());
    let total = payloads.len();
    let mut pending = payloads.into_iter().enumerate();
    let mut set = JoinSet::new();
    let mut records = Vec::with_capacity(total);
    loop {
        while set.len() < opts.max_in_flight.max(1) && !opts.stop.requested() {
            let Some((i, payload)) = pending.next() else {
                break;
            };
            set.spawn(invoke_one(
                client.clone(),
                function.clone(),
                i,
                payload,
                opts.clone(),
                launch,
            ));
        }
        let Some(joined) = set.join_next().await else {
            break;
        };
        let record = match joined {
            Ok(Ok(r)) => r,
            Ok(Err(e)) => {
                set.abort_all();
                return Err(e);
            }
            Err(e) => {
                set.abort_all();
                return Err(AwsError::Invalid(format!("an invocation task failed: {e}")));
            }
        };
        let tasks = tasks_per_batch.get(record.batch).copied().unwrap_or(0);
        let failed = match &record.outcome {
            InvocationOutcome::Result(r) => {
                progress.batch_result(r);
                r.tasks.len() - r.count(TaskStatus::Succeeded)
            }
            _ => tasks,
        };
        progress.batch_done(tasks, failed);
        records.push(record);
    }
    records.sort_by_key(|r| r.batch);
    Ok(records)
}

fn rel_s(epoch_ms: u64, launch_epoch_ms: u64) -> f64 {
    (epoch_ms as f64 - launch_epoch_ms as f64) / 1000.0
}

/// Instance and task records from what each batch returned (`None`: the batch failed with `why`).
pub fn records_from_results(
    batches: &[Batch],
    results: &[(usize, Option<&BatchResult>, f64, f64, u32)],
    launch_epoch_ms: u64,
) -> RunRecords {
    let mut instances = Vec::new();
    let mut tasks = Vec::new();
    for &(batch, result, requested_s, returned_s, attempt) in results {
        let Some(b) = batches.get(batch) else {
            continue;
        };
        match result {
            Some(r) => {
                instances.push(InstanceRecord {
                    batch,
                    attempt,
                    instance_id: r.instance_id.clone(),
                    cold_start: r.cold_start,
                    requested_s,
                    start_s: rel_s(r.received_at, launch_epoch_ms),
                    end_s: rel_s(r.ended_at.max(r.received_at), launch_epoch_ms),
                    init_ms: if r.cold_start { r.init_ms as f64 } else { 0.0 },
                    tasks: b.tasks.len(),
                    ok: true,
                });
                for t in &b.tasks {
                    let tr = r.tasks.iter().find(|x| x.id == t.id);
                    tasks.push(TaskRecord {
                        id: t.id.clone(),
                        batch,
                        status: tr.map_or(TaskStatus::NotRun, |x| x.status),
                        start_s: tr
                            .and_then(|x| x.started_at)
                            .map(|v| rel_s(v, launch_epoch_ms)),
                        end_s: tr
                            .and_then(|x| x.ended_at)
                            .map(|v| rel_s(v, launch_epoch_ms)),
                    });
                }
            }
            None => {
                instances.push(InstanceRecord {
                    batch,
                    attempt,
                    instance_id: String::new(),
                    cold_start: false,
                    requested_s,
                    start_s: requested_s,
                    end_s: returned_s,
                    init_ms: 0.0,
                    tasks: b.tasks.len(),
                    ok: false,
                });
                tasks.extend(b.tasks.iter().map(|t| TaskRecord {
                    id: t.id.clone(),
                    batch,
                    status: TaskStatus::Failed,
                    start_s: None,
                    end_s: None,
                }));
            }
        }
    }
    RunRecords {
        launch_epoch_ms,
        instances,
        tasks,
        ..RunRecords::default()
    }
}

/// The run outcome of a direct-mode fan-out.
pub fn outcome_from_invocations(
    batches: &[Batch],
    invocations: &[InvocationRecord],
    launch_epoch_ms: u64,
) -> RunOutcome {
    let rows: Vec<_> = invocations
        .iter()
        .map(|inv| {
            let result = match &inv.outcome {
                InvocationOutcome::Result(r) => Some(r),
                _ => None,
            };
            (
                inv.batch,
                result,
                inv.sent_s.last().copied().unwrap_or(0.0),
                inv.returned_s,
                inv.retries() as u32,
            )
        })
        .collect();
    RunOutcome {
        records: records_from_results(batches, &rows, launch_epoch_ms),
        results: invocations
            .iter()
            .filter_map(|i| match &i.outcome {
                InvocationOutcome::Result(r) => Some(r.clone()),
                _ => None,
            })
            .collect(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_capped_and_jittered() {
        let o = FanoutOptions {
            base_backoff: Duration::from_millis(100),
            max_backoff: Duration::from_secs(1),
            ..Default::default()
        };
        for retry in 0..30 {
            let cap =
                Duration::from_millis(100 * (1u64 << retry.min(20))).min(Duration::from_secs(1));
            let d = o.backoff(retry);
            assert!(
                d <= cap && d >= cap / 2,
                "retry {retry}: {d:?} vs cap {cap:?}"
            );
        }
        let samples: std::collections::BTreeSet<_> = (0..20).map(|_| o.backoff(5)).collect();
        assert!(samples.len() > 1, "backoff is not jittered");
    }
}
