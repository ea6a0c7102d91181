//! Lambda's synchronous invoke payload limits, the one place these platform facts live: the runtime budgets results to them and the local platform enforces them.
//!
//! The quotas page says "6 MB" for both directions; what Lambda compares is
//! different for each, and both numbers appear in its own error messages.

/// The largest request body a synchronous `Invoke` accepts (6 MiB). One byte more and
/// Lambda answers HTTP 413 `RequestEntityTooLargeException`, "Request must be smaller
/// than 6291456 bytes for the InvokeFunction operation", without running anything.
pub const LAMBDA_REQUEST_LIMIT: u64 = 6 * 1024 * 1024;

/// The largest response a function may return to a synchronous `Invoke`: 6 MiB plus
/// 100 bytes, as Lambda's message says. One byte more and the invocation fails with
/// `Function.ResponseSizeTooLarge`, and the whole response (every task record of a
/// batch) is lost.
pub const LAMBDA_RESPONSE_LIMIT: u64 = 6 * 1024 * 1024 + 100;

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_limits_are_the_numbers_in_lambdas_messages() {
        assert_eq!(LAMBDA_REQUEST_LIMIT, 6_291_456);
        assert_eq!(LAMBDA_RESPONSE_LIMIT, 6_291_556);
    }
}
