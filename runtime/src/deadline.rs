//! Turning the `Lambda-Runtime-Deadline-Ms` header into an executor deadline, tolerating emulators.

use std::sync::atomic::{AtomicBool, Ordering};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

/// Deadlines further ahead than this are not believed: Lambda's maximum timeout
/// is 15 minutes, and a day leaves room for other platforms' longer limits.
pub const MAX_PLAUSIBLE_AHEAD: Duration = Duration::from_secs(24 * 3600);

/// The header value `bootstrap`'s Runtime API shim substitutes when the platform sent
/// no deadline header or one that is not an integer (`lambda_runtime` panics or stops
/// on those); [`resolve`] treats it as "no usable header".
pub const MISSING_DEADLINE_SENTINEL: u64 = u64::MAX;

/// Where a resolved deadline came from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum DeadlineSource {
    /// The invocation's deadline header.
    Header,
    /// The function timeout from the environment, counted from receipt of the invocation.
    FunctionTimeout,
    /// No usable deadline: tasks run until their own timeouts.
    None,
}

/// A resolved deadline.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Resolved {
    /// When the platform will kill the invocation, if known.
    pub at: Option<Instant>,
    /// Where `at` came from.
    pub source: DeadlineSource,
    /// Why the header was not used (set only when it was absent or implausible).
    pub rejected: Option<String>,
}

/// Unix epoch milliseconds now.
pub fn epoch_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// Resolves a deadline. Pure: the clock readings and the function timeout are arguments.
///
/// The header is used when it is a future epoch in milliseconds no further than
/// [`MAX_PLAUSIBLE_AHEAD`]; emulators send constants such as `5000` or `600000`,
/// which are neither. Otherwise `function_timeout` (counted from `now`) is used,
/// else no deadline.
pub fn resolve(
    header: Option<&str>,
    now_epoch_ms: u64,
    now: Instant,
    function_timeout: Option<Duration>,
) -> Resolved {
    let rejected = match header.map(str::trim) {
        None | Some("") => "no Lambda-Runtime-Deadline-Ms header".to_owned(),
        Some(h) => match h.parse::<u64>() {
            Err(_) => format!("Lambda-Runtime-Deadline-Ms {h:?} is not an integer"),
            Ok(MISSING_DEADLINE_SENTINEL) => {
                "no usable Lambda-Runtime-Deadline-Ms header (absent or not an integer)".to_owned()
            }
            Ok(ms) if ms <= now_epoch_ms => {
                format!(
                    "Lambda-Runtime-Deadline-Ms {ms} is not a future epoch in milliseconds (now {now_epoch_ms})"
                )
            }
            Ok(ms) if ms - now_epoch_ms > MAX_PLAUSIBLE_AHEAD.as_millis() as u64 => {
                format!(
                    "Lambda-Runtime-Deadline-Ms {ms} is implausibly far in the future (now {now_epoch_ms})"
                )
            }
            Ok(ms) => {
                return Resolved {
                    at: Some(now + Duration::from_millis(ms - now_epoch_ms)),
                    source: DeadlineSource::Header,
                    rejected: None,
                };
            }
        },
    };
    match function_timeout {
        Some(t) => Resolved {
            at: Some(now + t),
            source: DeadlineSource::FunctionTimeout,
            rejected: Some(rejected),
        },
        None => Resolved {
            at: None,
            source: DeadlineSource::None,
            rejected: Some(rejected),
        },
    }
}

/// `AWS_LAMBDA_FUNCTION_TIMEOUT` (seconds), if set to a positive number.
pub fn function_timeout_from_env() -> Option<Duration> {
    parse_function_timeout(std::env::var("AWS_LAMBDA_FUNCTION_TIMEOUT").ok().as_deref())
}

/// A function timeout in seconds (`AWS_LAMBDA_FUNCTION_TIMEOUT`'s value), if a positive finite number.
fn parse_function_timeout(value: Option<&str>) -> Option<Duration> {
    value
        .and_then(|s| s.trim().parse::<f64>().ok())
        .filter(|s| s.is_finite() && *s > 0.0)
        .map(Duration::from_secs_f64)
}

/// Resolves deadlines for a process, warning once (not per invocation) about a bad header.
#[derive(Debug)]
pub struct DeadlineResolver {
    function_timeout: Option<Duration>,
    warned: AtomicBool,
    warn_on_missing: bool,
}

impl DeadlineResolver {
    /// A resolver falling back to `function_timeout`.
    pub fn new(function_timeout: Option<Duration>) -> Self {
        Self {
            function_timeout,
            warned: AtomicBool::new(false),
            warn_on_missing: true,
        }
    }

    /// For front-ends where no deadline header is the norm (`serve`, `run`):
    /// an absent header falls back silently; an implausible one still warns.
    pub fn missing_header_expected(mut self) -> Self {
        self.warn_on_missing = false;
        self
    }

    /// A resolver falling back to `AWS_LAMBDA_FUNCTION_TIMEOUT`.
    pub fn from_env() -> Self {
        Self::new(function_timeout_from_env())
    }

    /// Resolves `header` at the current time. Returns the deadline and, the first
    /// time only, the warning to log about a rejected header.
    pub fn resolve(&self, header: Option<&str>) -> (Resolved, Option<String>) {
        let r = resolve(header, epoch_ms(), Instant::now(), self.function_timeout);
        let quiet = header.is_none() && !self.warn_on_missing;
        let warning = match &r.rejected {
            Some(why) if !quiet && !self.warned.swap(true, Ordering::Relaxed) => {
                Some(match r.source {
                    DeadlineSource::FunctionTimeout => format!(
                        "{why}; using the function timeout ({:?}) from AWS_LAMBDA_FUNCTION_TIMEOUT instead (warned once)",
                        self.function_timeout.unwrap_or_default()
                    ),
                    _ => format!("{why}; running without an invocation deadline (warned once)"),
                })
            }
            _ => None,
        };
        (r, warning)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const NOW: u64 = 1_764_000_000_000;

    #[test]
    fn future_header_is_used() {
        let now = Instant::now();
        let r = resolve(
            Some("1764000003000"),
            NOW,
            now,
            Some(Duration::from_secs(60)),
        );
        assert_eq!(r.source, DeadlineSource::Header);
        assert_eq!(r.at, Some(now + Duration::from_secs(3)));
        assert_eq!(r.rejected, None);
    }

    #[test]
    fn emulator_constants_fall_back_to_function_timeout() {
        let now = Instant::now();
        for h in [
            "5000",
            "600000",
            "0",
            "1763999999999",
            "abc",
            "",
            "99999999999999999",
        ] {
            let r = resolve(Some(h), NOW, now, Some(Duration::from_secs(30)));
            assert_eq!(r.source, DeadlineSource::FunctionTimeout, "header {h:?}");
            assert_eq!(r.at, Some(now + Duration::from_secs(30)));
            assert!(r.rejected.is_some());
        }
    }

    /// A day ahead is the plausibility bound: exactly 24 h is used, 1 ms more is not, and
    /// 2 h (a platform with hour-long functions) is used; `now` itself is not the future.
    #[test]
    fn plausible_headers_reach_exactly_one_day_ahead() {
        let now = Instant::now();
        let day = 24 * 3_600 * 1_000;
        for ahead in [1, 2 * 3_600 * 1_000, day] {
            let r = resolve(Some(&(NOW + ahead).to_string()), NOW, now, None);
            assert_eq!(r.source, DeadlineSource::Header, "{ahead} ms ahead");
            assert_eq!(r.at, Some(now + Duration::from_millis(ahead)));
        }
        let r = resolve(Some(&(NOW + day + 1).to_string()), NOW, now, None);
        assert_eq!(r.source, DeadlineSource::None);
        assert!(r.rejected.unwrap().contains("implausibly far"));
        let r = resolve(Some(&NOW.to_string()), NOW, now, None);
        assert!(r.rejected.unwrap().contains("not a future epoch"));
    }

    #[test]
    fn function_timeout_is_a_positive_number_of_seconds() {
        assert_eq!(
            parse_function_timeout(Some(" 900 ")),
            Some(Duration::from_secs(900))
        );
        assert_eq!(
            parse_function_timeout(Some("0.5")),
            Some(Duration::from_millis(500))
        );
        for bad in ["0", "-3", "inf", "NaN", "abc", ""] {
            assert_eq!(parse_function_timeout(Some(bad)), None, "{bad:?}");
        }
        assert_eq!(parse_function_timeout(None), None);
    }

    #[test]
    fn epoch_ms_is_the_system_clock() {
        let ms = || {
            SystemTime::now()
                .duration_since(UNIX_EPOCH)
                .unwrap()
                .as_millis() as u64
        };
        let before = ms();
        let e = epoch_ms();
        assert!((before..=ms()).contains(&e), "{before} {e}");
    }

    #[test]
    fn missing_header_without_timeout_means_no_deadline() {
        let r = resolve(None, NOW, Instant::now(), None);
        assert_eq!(r.source, DeadlineSource::None);
        assert_eq!(r.at, None);
        assert!(
            r.rejected
                .unwrap()
                .contains("no Lambda-Runtime-Deadline-Ms")
        );
    }

    #[test]
    fn shim_sentinel_means_no_usable_header() {
        let now = Instant::now();
        let h = MISSING_DEADLINE_SENTINEL.to_string();
        let r = resolve(Some(&h), NOW, now, Some(Duration::from_secs(7)));
        assert_eq!(r.source, DeadlineSource::FunctionTimeout);
        assert_eq!(r.at, Some(now + Duration::from_secs(7)));
        assert!(r.rejected.unwrap().contains("absent or not an integer"));
        let r = resolve(Some(&h), NOW, now, None);
        assert_eq!(r.source, DeadlineSource::None);
        assert_eq!(r.at, None);
    }

    #[test]
    fn resolver_warns_once() {
        let res = DeadlineResolver::new(Some(Duration::from_secs(10)));
        let (r1, w1) = res.resolve(Some("5000"));
        let (r2, w2) = res.resolve(Some("600000"));
        let (_, w3) = res.resolve(None);
        assert_eq!(r1.source, DeadlineSource::FunctionTimeout);
        assert_eq!(r2.source, DeadlineSource::FunctionTimeout);
        assert!(w1.unwrap().contains("AWS_LAMBDA_FUNCTION_TIMEOUT"));
        assert_eq!(w2, None);
        assert_eq!(w3, None);
        let good = (epoch_ms() + 60_000).to_string();
        let (r4, w4) = res.resolve(Some(&good));
        assert_eq!(r4.source, DeadlineSource::Header);
        assert_eq!(w4, None);

        let quiet = DeadlineResolver::new(None).missing_header_expected();
        assert_eq!(quiet.resolve(None).1, None);
        assert!(quiet.resolve(Some("5000")).1.is_some());
    }
}
