//! Measuring at several memories on AWS: the function's MemorySize set (and the update waited for) before each measurement, the original restored after.

use std::future::Future;
use std::time::Duration;

use super::deploy::wait_ready;
use super::error::{AwsError, sdk_error};

/// Reads and sets a function's configured memory; [`SdkFunctionMemory`] on Lambda, a fake in tests.
pub trait FunctionMemory {
    /// The function's MemorySize, MB.
    fn memory_mb(&self, function: &str) -> impl Future<Output = Result<u32, AwsError>>;
    /// Sets its MemorySize and returns once the update is done (new invocations run at it).
    fn set_memory_mb(&self, function: &str, mb: u32) -> impl Future<Output = Result<(), AwsError>>;
}

/// [`FunctionMemory`] through Lambda's GetFunctionConfiguration and UpdateFunctionConfiguration.
#[derive(Debug, Clone)]
pub struct SdkFunctionMemory {
    /// The control-plane client.
    pub lambda: aws_sdk_lambda::Client,
    /// How long to wait for an update to finish.
    pub wait_limit: Duration,
}

impl FunctionMemory for SdkFunctionMemory {
    async fn memory_mb(&self, function: &str) -> Result<u32, AwsError> {
        let op = "lambda:GetFunctionConfiguration";
        let c = self
            .lambda
            .get_function_configuration()
            .function_name(function)
            .send()
            .await
            .map_err(|e| sdk_error(&e, op, function, op))?;
        c.memory_size()
            .and_then(|m| u32::try_from(m).ok())
            .ok_or_else(|| AwsError::Invalid(format!("{function} has no MemorySize")))
    }

    async fn set_memory_mb(&self, function: &str, mb: u32) -> Result<(), AwsError> {
        let op = "lambda:UpdateFunctionConfiguration";
        // An update is refused while another is in progress.
        wait_ready(&self.lambda, function, self.wait_limit).await?;
        self.lambda
            .update_function_configuration()
            .function_name(function)
            .memory_size(i32::try_from(mb).unwrap_or(i32::MAX))
            .send()
            .await
            .map_err(|e| sdk_error(&e, op, function, op))?;
        wait_ready(&self.lambda, function, self.wait_limit).await?;
        Ok(())
    }
}

/// Runs `measure(m)` with `function` configured at each of `memories` in turn, then
/// configures it back to the memory it had, also when a measurement or an update failed
/// (the first error is returned).
pub async fn at_each_memory<M, T, E>(
    config: &M,
    function: &str,
    memories: &[u32],
    mut measure: impl AsyncFnMut(u32) -> Result<T, E>,
) -> Result<Vec<T>, E>
where
    M: FunctionMemory,
    E: From<AwsError>,
{
    let original = config.memory_mb(function).await?;
    let mut out = Vec::with_capacity(memories.len());
    let mut failed = None;
    for &m in memories {
        let step = match config.set_memory_mb(function, m).await {
            Ok(()) => measure(m).await,
            Err(e) => Err(e.into()),
        };
        match step {
            Ok(t) => out.push(t),
            Err(e) => {
                failed = Some(e);
                break;
            }
        }
    }
    let restored = config.set_memory_mb(function, original).await;
    match (failed, restored) {
        (Some(e), _) => Err(e),
        (None, Err(e)) => Err(e.into()),
        (None, Ok(())) => Ok(out),
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Mutex;

    use super::*;

    /// A function whose configuration calls are recorded; `set` of `fail_at` MB fails.
    struct Fake {
        memory: Mutex<u32>,
        calls: Mutex<Vec<String>>,
        fail_at: Option<u32>,
    }

    impl Fake {
        fn new(memory: u32, fail_at: Option<u32>) -> Self {
            Self {
                memory: Mutex::new(memory),
                calls: Mutex::new(Vec::new()),
                fail_at,
            }
        }
        fn log(&self, s: String) {
            self.calls.lock().unwrap().push(s);
        }
        fn calls(&self) -> Vec<String> {
            self.calls.lock().unwrap().clone()
        }
    }

    impl FunctionMemory for Fake {
        async fn memory_mb(&self, f: &str) -> Result<u32, AwsError> {
            self.log(format!("get {f}"));
            Ok(*self.memory.lock().unwrap())
        }
        async fn set_memory_mb(&self, f: &str, mb: u32) -> Result<(), AwsError> {
            self.log(format!("set {f} {mb}"));
            if self.fail_at == Some(mb) {
                return Err(AwsError::Invalid(format!("refused {mb}")));
            }
            *self.memory.lock().unwrap() = mb;
            Ok(())
        }
    }

    fn run<T>(f: impl Future<Output = T>) -> T {
        tokio::runtime::Builder::new_current_thread()
            .build()
            .unwrap()
            .block_on(f)
    }

    #[test]
    fn each_memory_is_set_before_its_measurement_and_the_original_restored() {
        let fake = Fake::new(10_240, None);
        let got = run(at_each_memory(
            &fake,
            "fn",
            &[1_769, 3_538],
            async |m| -> Result<u32, AwsError> {
                fake.log(format!("measure at {}", *fake.memory.lock().unwrap()));
                Ok(m / 1_769)
            },
        ))
        .unwrap();
        assert_eq!(got, vec![1, 2]);
        assert_eq!(
            fake.calls(),
            [
                "get fn",
                "set fn 1769",
                "measure at 1769",
                "set fn 3538",
                "measure at 3538",
                "set fn 10240"
            ]
        );
    }

    #[test]
    fn a_failed_measurement_or_update_still_restores_the_memory() {
        let fake = Fake::new(2_048, None);
        let err = run(at_each_memory(
            &fake,
            "fn",
            &[1_769, 3_538],
            async |m| -> Result<(), AwsError> {
                if m == 1_769 {
                    return Err(AwsError::Invalid("measurement failed".into()));
                }
                Ok(())
            },
        ))
        .unwrap_err();
        assert!(err.to_string().contains("measurement failed"));
        assert_eq!(fake.calls(), ["get fn", "set fn 1769", "set fn 2048"]);
        let fake = Fake::new(2_048, Some(3_538));
        let err = run(at_each_memory(
            &fake,
            "fn",
            &[1_769, 3_538, 10_240],
            async |_| -> Result<(), AwsError> { Ok(()) },
        ))
        .unwrap_err();
        assert!(err.to_string().contains("refused 3538"));
        assert_eq!(
            fake.calls(),
            ["get fn", "set fn 1769", "set fn 3538", "set fn 2048"]
        );
        assert_eq!(*fake.memory.lock().unwrap(), 2_048);
    }
}
