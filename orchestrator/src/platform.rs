//! Platform profiles: how a serverless platform scales, what it limits and what it charges.
//!
//! One file format serves the model (prices, limits), the embedded local
//! platform (how fast new instances appear) and the simulator. Four profiles
//! are built in as code (`aws-2021`, `aws-today`, `unlimited`, and `local`: aws-2021 with
//! every instance sharing this host's CPUs), three more as shipped files with their sources
//! (`funcx-2021`, `azure-flex`, `cloud-run`: [`crate::platforms`]); any other name is read
//! as a path to a JSON file of the same shape.

use std::path::Path;

use serde::{Deserialize, Serialize};

/// Version of the platform profile format.
pub const PLATFORM_SCHEMA_VERSION: u32 = 1;

/// The built-in profile names.
pub const BUILTIN_PLATFORMS: &[&str] = &[
    "aws-2021",
    "aws-today",
    "unlimited",
    "local",
    "funcx-2021",
    "azure-flex",
    "cloud-run",
];

/// Errors loading a platform profile.
#[derive(Debug, thiserror::Error)]
pub enum PlatformError {
    /// Neither a built-in name nor a readable file.
    #[error("platform {name:?} is neither built in ({builtins}) nor a readable file: {source}")]
    NotFound {
        /// What the user asked for.
        name: String,
        /// The built-in names.
        builtins: String,
        /// Why the file could not be read.
        source: std::io::Error,
    },
    /// The file is not a valid profile.
    #[error("platform file {path}: {source}")]
    Parse {
        /// The file.
        path: String,
        /// The JSON error.
        source: serde_json::Error,
    },
    /// The profile parses but makes no sense.
    #[error("platform {name:?}: {message}")]
    Invalid {
        /// Profile name.
        name: String,
        /// What is wrong.
        message: String,
    },
}

/// CPU architecture of the function, which decides its price.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize, Default)]
#[serde(rename_all = "snake_case")]
pub enum Arch {
    /// x86_64 (the 2021 measurements).
    #[default]
    X86_64,
    /// Graviton.
    Arm64,
}

/// Lambda-style prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct Prices {
    /// USD per GB-second on x86_64.
    pub gb_second_x86_64: f64,
    /// USD per GB-second on arm64.
    pub gb_second_arm64: f64,
    /// USD per invocation request.
    pub request: f64,
    /// USD per Step Functions STANDARD state transition.
    pub state_transition: f64,
    /// USD per Step Functions EXPRESS execution (request).
    #[serde(default = "default_express_request")]
    pub express_request: f64,
    /// USD per GB-second of Step Functions EXPRESS duration (first pricing tier).
    #[serde(default = "default_express_gb_second")]
    pub express_gb_second: f64,
}

fn default_express_request() -> f64 {
    1.00 / 1_000_000.0
}

fn default_express_gb_second() -> f64 {
    0.000_016_67
}

impl Default for Prices {
    fn default() -> Self {
        Self {
            gb_second_x86_64: 0.000_016_666_7,
            gb_second_arm64: 0.000_013_333_4,
            request: 0.20 / 1_000_000.0,
            state_transition: 0.025 / 1_000.0,
            express_request: default_express_request(),
            express_gb_second: default_express_gb_second(),
        }
    }
}

/// How fast the platform brings up new instances of one function.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(tag = "kind", rename_all = "snake_case")]
pub enum Scaling {
    /// One new instance every `interval_ms` (the 2021 behaviour: ≈47 ms).
    Interval {
        /// Milliseconds between consecutive new instances.
        interval_ms: f64,
    },
    /// A token bucket: `burst` instances at once, then `per_interval` more every `interval_s`
    /// (today's Lambda: 1,000 per 10 s per function).
    TokenBucket {
        /// Instances available immediately.
        burst: u32,
        /// Instances added per interval.
        per_interval: u32,
        /// Interval length in seconds.
        interval_s: f64,
    },
    /// As many instances as asked for, at once.
    Unlimited,
}

/// A distribution of durations in milliseconds, described by a few quantiles
/// (lognormal fit between median and p90).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct DurationDist {
    /// Median, ms.
    pub median_ms: f64,
    /// 90th percentile, ms (≥ median).
    pub p90_ms: f64,
}

/// The memory sizes a function may have and the CPU they buy (Lambda's rule by default).
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct MemoryRange {
    /// Smallest memory, MB (Lambda: 128).
    pub min_mb: u32,
    /// Largest memory, MB (Lambda: 10,240).
    pub max_mb: u32,
    /// Memory is configured in steps of this many MB (Lambda: 1).
    pub step_mb: u32,
    /// MB that buy one vCPU's worth of CPU time (Lambda: 1,769).
    pub mb_per_vcpu: f64,
    /// vCPUs at `max_mb` (Lambda: 6); the last vCPU comes over the memory above
    /// `(max_vcpus − 1) · mb_per_vcpu`.
    pub max_vcpus: u32,
}

impl Default for MemoryRange {
    fn default() -> Self {
        Self {
            min_mb: 128,
            max_mb: 10_240,
            step_mb: 1,
            mb_per_vcpu: 1_769.0,
            max_vcpus: 6,
        }
    }
}

/// Candidate memories per vCPU the planner tries (every quarter vCPU, so 1,769 MB is one).
pub const MEMORY_CANDIDATES_PER_VCPU: u32 = 4;

/// A serverless platform: limits, scaling behaviour and prices.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct PlatformProfile {
    /// [`PLATFORM_SCHEMA_VERSION`].
    pub schema_version: u32,
    /// Short name, e.g. `aws-2021`.
    pub name: String,
    /// One line on where the numbers come from.
    #[serde(default)]
    pub description: String,
    /// Function memory in MB.
    pub memory_mb: u32,
    /// vCPUs at that memory (Lambda: 1 per 1,769 MB, 6 at 10,240 MB).
    pub vcpus: u32,
    /// Function timeout, seconds (Lambda: ≤ 900).
    pub timeout_s: f64,
    /// Ephemeral storage (/tmp) per instance, MB.
    pub tmp_mb: u32,
    /// Architecture the prices apply to.
    #[serde(default)]
    pub arch: Arch,
    /// Prices.
    #[serde(default)]
    pub prices: Prices,
    /// Concurrent instances allowed for the account; instances beyond it wait.
    #[serde(default)]
    pub account_concurrency_limit: Option<u32>,
    /// How fast new instances appear.
    pub scaling: Scaling,
    /// Time from instance creation until the runtime polls for its first event.
    pub cold_start: DurationDist,
    /// Whether the init phase of a cold start is billed like handler time (Lambda
    /// bills it for every runtime since August 2025; it did not for managed runtimes before).
    #[serde(default)]
    pub bills_init: bool,
    /// Largest payload of one invocation / Step Functions batch, bytes.
    pub max_payload_bytes: u64,
    /// The memory sizes the planner may choose and the vCPUs they buy.
    #[serde(default)]
    pub memory: MemoryRange,
    /// `Some(H)`: every instance runs on one host of H CPUs shared by all instances
    /// running at once (the local platform: its instances are processes on this
    /// machine); `None`: each instance has its own vCPUs (AWS).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub host_cpus: Option<f64>,
}

impl PlatformProfile {
    /// AWS Lambda as measured in 2021 by the ProPack authors: one new instance every ≈47 ms.
    pub fn aws_2021() -> Self {
        Self {
            schema_version: PLATFORM_SCHEMA_VERSION,
            name: "aws-2021".into(),
            description: "AWS Lambda, March-April 2021 (ProPack artifact): one new instance every ~47 ms, 10 GB / 6 vCPU".into(),
            memory_mb: 10_240,
            vcpus: 6,
            timeout_s: 900.0,
            tmp_mb: 512,
            arch: Arch::X86_64,
            prices: Prices::default(),
            account_concurrency_limit: Some(10_000),
            scaling: Scaling::Interval { interval_ms: 47.0 },
            cold_start: DurationDist {
                median_ms: 250.0,
                p90_ms: 600.0,
            },
            bills_init: false,
            max_payload_bytes: 262_144,
            memory: MemoryRange::default(),
            host_cpus: None,
        }
    }

    /// AWS Lambda today: 1,000 new environments per 10 s per function, account limit 1,000.
    pub fn aws_today() -> Self {
        Self {
            schema_version: PLATFORM_SCHEMA_VERSION,
            name: "aws-today".into(),
            description: "AWS Lambda since 2023: 1,000 new execution environments per 10 s per function, default account concurrency 1,000".into(),
            memory_mb: 10_240,
            vcpus: 6,
            timeout_s: 900.0,
            tmp_mb: 10_240,
            arch: Arch::X86_64,
            prices: Prices::default(),
            account_concurrency_limit: Some(1_000),
            scaling: Scaling::TokenBucket {
                burst: 1_000,
                per_interval: 1_000,
                interval_s: 10.0,
            },
            cold_start: DurationDist {
                median_ms: 150.0,
                p90_ms: 400.0,
            },
            bills_init: true,
            max_payload_bytes: 262_144,
            memory: MemoryRange::default(),
            host_cpus: None,
        }
    }

    /// An ideal platform with no scaling bottleneck, for comparison.
    pub fn unlimited() -> Self {
        Self {
            schema_version: PLATFORM_SCHEMA_VERSION,
            name: "unlimited".into(),
            description: "No scaling limit: every instance starts at once".into(),
            memory_mb: 10_240,
            vcpus: 6,
            timeout_s: 900.0,
            tmp_mb: 10_240,
            arch: Arch::X86_64,
            prices: Prices::default(),
            account_concurrency_limit: None,
            scaling: Scaling::Unlimited,
            cold_start: DurationDist {
                median_ms: 0.0,
                p90_ms: 0.0,
            },
            bills_init: false,
            max_payload_bytes: 262_144,
            memory: MemoryRange::default(),
            host_cpus: None,
        }
    }

    /// A built-in profile by name, or a profile file by path.
    pub fn load(name_or_path: &str) -> Result<Self, PlatformError> {
        let profile = match name_or_path {
            "aws-2021" => Self::aws_2021(),
            "aws-today" => Self::aws_today(),
            "unlimited" => Self::unlimited(),
            // What a local launch on aws-2021 predicts for: its scaling and prices, every
            // instance a process sharing this host's CPUs.
            "local" => {
                let mut p = Self::aws_2021().on_host(crate::backend::local::host_cpus(), 0.0);
                p.name = "local".into();
                p.description = "aws-2021's scaling and prices, every instance sharing this host's CPUs (the local platform)".into();
                p
            }
            name if let Some(text) = crate::platforms::embedded(name) => serde_json::from_str(text)
                .map_err(|source| PlatformError::Parse {
                    path: format!("(shipped) {name}.json"),
                    source,
                })?,
            path => {
                let text = std::fs::read_to_string(Path::new(path)).map_err(|source| {
                    PlatformError::NotFound {
                        name: path.to_owned(),
                        builtins: BUILTIN_PLATFORMS.join(", "),
                        source,
                    }
                })?;
                serde_json::from_str(&text).map_err(|source| PlatformError::Parse {
                    path: path.to_owned(),
                    source,
                })?
            }
        };
        profile.validate()?;
        Ok(profile)
    }

    /// Checks values that would make every prediction meaningless.
    pub fn validate(&self) -> Result<(), PlatformError> {
        let bad = |m: &str| {
            Err(PlatformError::Invalid {
                name: self.name.clone(),
                message: m.to_owned(),
            })
        };
        if self.schema_version != PLATFORM_SCHEMA_VERSION {
            return bad(&format!(
                "schema_version {} is not supported (expected {PLATFORM_SCHEMA_VERSION})",
                self.schema_version
            ));
        }
        if self.vcpus == 0 || self.memory_mb == 0 {
            return bad("vcpus and memory_mb must be positive");
        }
        if !positive(self.timeout_s) {
            return bad("timeout_s must be positive");
        }
        if self.account_concurrency_limit == Some(0) {
            return bad("account_concurrency_limit must be positive (omit it for no limit)");
        }
        match self.scaling {
            Scaling::Interval { interval_ms } if interval_ms.is_nan() || interval_ms < 0.0 => {
                return bad("scaling.interval_ms must be non-negative");
            }
            Scaling::TokenBucket {
                burst,
                per_interval,
                interval_s,
            } if burst == 0 || per_interval == 0 || !positive(interval_s) => {
                return bad(
                    "scaling token bucket needs positive burst, per_interval and interval_s",
                );
            }
            _ => {}
        }
        if self.cold_start.median_ms < 0.0 || self.cold_start.p90_ms < self.cold_start.median_ms {
            return bad("cold_start needs 0 <= median_ms <= p90_ms");
        }
        let m = &self.memory;
        if m.min_mb == 0 || m.min_mb > m.max_mb || m.step_mb == 0 || m.max_vcpus == 0 {
            return bad("memory needs 0 < min_mb <= max_mb, step_mb > 0 and max_vcpus > 0");
        }
        if !positive(m.mb_per_vcpu)
            || f64::from(m.max_vcpus - 1) * m.mb_per_vcpu >= f64::from(m.max_mb)
        {
            return bad(
                "memory.mb_per_vcpu must be positive and (max_vcpus - 1) · mb_per_vcpu < max_mb",
            );
        }
        if self.host_cpus.is_some_and(|h| !positive(h)) {
            return bad("host_cpus must be positive (omit it for instances with their own vCPUs)");
        }
        Ok(())
    }

    /// CPU time an instance of `memory_mb` gets, in vCPUs: `memory / mb_per_vcpu` up to
    /// `max_vcpus − 1`, then linearly to `max_vcpus` at `max_mb` (Lambda: 1 at 1,769 MB,
    /// 6 at 10,240 MB); on a shared host never more than the host's CPUs.
    pub fn cpus_at(&self, memory_mb: u32) -> f64 {
        let m = &self.memory;
        let mb = f64::from(memory_mb.clamp(m.min_mb, m.max_mb));
        let knee_vcpus = f64::from(m.max_vcpus - 1);
        let knee_mb = knee_vcpus * m.mb_per_vcpu;
        let cpus = if mb <= knee_mb {
            mb / m.mb_per_vcpu
        } else {
            knee_vcpus + (mb - knee_mb) / (f64::from(m.max_mb) - knee_mb)
        };
        self.host_cpus.map_or(cpus, |h| cpus.min(h))
    }

    /// This profile with the function configured at `memory_mb` (rounded to the step and
    /// clamped to the range): the memory billed and the vCPUs the instance sees.
    pub fn at_memory(&self, memory_mb: u32) -> Self {
        let mut p = self.clone();
        p.memory_mb = self.round_memory(memory_mb);
        p.vcpus = (self.cpus_at(p.memory_mb).ceil() as u32).max(1);
        p
    }

    /// `memory_mb` rounded to the nearest allowed step within the range.
    pub fn round_memory(&self, memory_mb: u32) -> u32 {
        let m = &self.memory;
        let step = m.step_mb.max(1);
        let r = (memory_mb + step / 2) / step * step;
        r.clamp(m.min_mb, m.max_mb)
    }

    /// The memories the planner tries: the range's ends and every quarter vCPU between
    /// ([`MEMORY_CANDIDATES_PER_VCPU`]), rounded to the step, ascending and distinct.
    pub fn memory_candidates(&self) -> Vec<u32> {
        let m = &self.memory;
        let per = m.mb_per_vcpu / f64::from(MEMORY_CANDIDATES_PER_VCPU);
        let mut v = vec![m.min_mb, m.max_mb];
        let mut j = 1.0;
        while j * per < f64::from(m.max_mb) {
            v.push(self.round_memory((j * per).round() as u32));
            j += 1.0;
        }
        v.sort_unstable();
        v.dedup();
        v
    }

    /// Whether the planner chooses the memory: not on a shared host, where the host's CPUs,
    /// shared by every instance, bound what they get together whatever their memory (an
    /// instance is pinned to at most the CPUs its memory buys, see
    /// [`crate::backend::local::affinity`]); there memory stays `memory_mb` unless pinned.
    pub fn plans_memory(&self) -> bool {
        self.host_cpus.is_none()
    }

    /// This profile as the local platform runs it: the same scaling, limits and prices,
    /// but every instance is a process on this host of `cpus` CPUs, shared by all, that
    /// takes `init_s` seconds to start on top of the profile's cold start.
    pub fn on_host(&self, cpus: f64, init_s: f64) -> Self {
        let mut p = self.clone();
        p.host_cpus = Some(cpus.max(0.05));
        let init_ms = init_s.max(0.0) * 1000.0;
        p.cold_start.median_ms += init_ms;
        p.cold_start.p90_ms += init_ms;
        p.vcpus = (p.cpus_at(p.memory_mb).ceil() as u32).max(1);
        p
    }

    /// USD per GB-second for this profile's architecture.
    pub fn price_per_gb_second(&self) -> f64 {
        match self.arch {
            Arch::X86_64 => self.prices.gb_second_x86_64,
            Arch::Arm64 => self.prices.gb_second_arm64,
        }
    }

    /// USD for one instance-second at this profile's memory size.
    pub fn price_per_instance_second(&self) -> f64 {
        self.price_per_gb_second() * f64::from(self.memory_mb) / 1024.0
    }

    /// Whether a finished instance takes the next waiting invocation without a cold start
    /// when the orchestration issues the invocations: `Interval` (2021 Lambda) paces
    /// every invocation onto a new instance; `TokenBucket` and `Unlimited` gate only
    /// new environments (the simulator's rule, see `backend::sim`).
    pub fn reuses_warm_instances(&self) -> bool {
        !matches!(self.scaling, Scaling::Interval { .. })
    }

    /// Seconds after launch at which the `i`-th new instance (0-based) may be created,
    /// ignoring the account limit.
    pub fn arrival_s(&self, i: u64) -> f64 {
        match self.scaling {
            Scaling::Interval { interval_ms } => i as f64 * interval_ms / 1000.0,
            Scaling::TokenBucket {
                burst,
                per_interval,
                interval_s,
            } => {
                if i < u64::from(burst) {
                    0.0
                } else {
                    let beyond = i - u64::from(burst);
                    ((beyond / u64::from(per_interval)) + 1) as f64 * interval_s
                }
            }
            Scaling::Unlimited => 0.0,
        }
    }
}

/// `x > 0`, false for NaN (so a NaN in a profile file is rejected, not accepted).
fn positive(x: f64) -> bool {
    x > 0.0
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builtins_are_valid_and_round_trip() {
        for name in BUILTIN_PLATFORMS {
            let p = PlatformProfile::load(name).unwrap();
            let json = serde_json::to_string_pretty(&p).unwrap();
            let back: PlatformProfile = serde_json::from_str(&json).unwrap();
            assert_eq!(p, back);
        }
    }

    #[test]
    fn arrivals_follow_the_scaling_rule() {
        let p = PlatformProfile::aws_2021();
        assert!((p.arrival_s(100) - 4.7).abs() < 1e-9);
        let t = PlatformProfile::aws_today();
        assert_eq!(t.arrival_s(999), 0.0);
        assert_eq!(t.arrival_s(1000), 10.0);
        assert_eq!(t.arrival_s(2500), 20.0);
        assert_eq!(PlatformProfile::unlimited().arrival_s(1_000_000), 0.0);
    }

    #[test]
    fn price_of_a_10gb_second() {
        let p = PlatformProfile::aws_2021();
        assert!((p.price_per_instance_second() - 0.000_166_667).abs() < 1e-9);
    }

    #[test]
    fn cpus_follow_memory_as_on_lambda() {
        let p = PlatformProfile::aws_2021();
        assert!((p.cpus_at(1_769) - 1.0).abs() < 1e-12);
        assert!((p.cpus_at(3_538) - 2.0).abs() < 1e-12);
        assert!((p.cpus_at(8_845) - 5.0).abs() < 1e-12);
        assert!((p.cpus_at(10_240) - 6.0).abs() < 1e-12);
        assert!((p.cpus_at(442) - 442.0 / 1_769.0).abs() < 1e-12);
        let at = p.at_memory(1_769);
        assert_eq!((at.memory_mb, at.vcpus), (1_769, 1));
        // Billing reads the memory: a 1,769 MB second costs 1,769/10,240 of a 10 GB one.
        let ratio = at.price_per_instance_second() / p.price_per_instance_second();
        assert!((ratio - 1_769.0 / 10_240.0).abs() < 1e-12);
        let c = p.memory_candidates();
        assert_eq!(c.first(), Some(&128));
        assert_eq!(c.last(), Some(&10_240));
        assert!(c.contains(&1_769) && c.contains(&3_538) && c.contains(&442));
        assert_eq!(c.len(), 25);
        // A shared host caps every instance at its CPUs.
        let local = p.on_host(2.0, 0.1);
        assert_eq!(local.cold_start.median_ms, 350.0);
        assert_eq!(local.cpus_at(10_240), 2.0);
        assert_eq!(local.vcpus, 2);
        assert!((local.cpus_at(884) - 884.0 / 1_769.0).abs() < 1e-12);
    }

    #[test]
    fn unknown_name_is_a_clear_error() {
        let e = PlatformProfile::load("no-such-platform")
            .unwrap_err()
            .to_string();
        assert!(
            e.contains("aws-2021, aws-today, unlimited, local, funcx-2021, azure-flex, cloud-run"),
            "{e}"
        );
    }
}
