//! Retrying what fails for a moment: a refused or reset connection, a
//! timeout, `429 Too Many Requests`, a 5xx. Bounded (a registry that stays
//! down fails the push in seconds, not hours), with exponential backoff,
//! and every retry recorded, so that a flaky registry shows in the output
//! instead of hiding behind a slow push.

use serde::Serialize;
use std::time::Duration;

/// How often and how patiently to retry.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct RetryPolicy {
    /// Tries in all, the first included.
    pub attempts: u32,
    /// The wait before the first retry; doubled for each next one.
    pub first_wait: Duration,
    /// The longest wait between two tries.
    pub max_wait: Duration,
}

impl Default for RetryPolicy {
    /// 5 tries, waiting 0.25 s, 0.5 s, 1 s, 2 s: a registry restarting
    /// (a few seconds) is ridden out, one that is down fails within 4 s.
    fn default() -> RetryPolicy {
        RetryPolicy {
            attempts: 5,
            first_wait: Duration::from_millis(250),
            max_wait: Duration::from_secs(8),
        }
    }
}

impl RetryPolicy {
    /// The wait after failed try number `attempt` (1 for the first).
    pub fn wait_after(&self, attempt: u32) -> Duration {
        let factor = 1u32 << attempt.saturating_sub(1).min(16);
        self.first_wait.saturating_mul(factor).min(self.max_wait)
    }
}

/// One retry, as output shows it (`"retries"` in `-o json`).
#[derive(Clone, Debug, PartialEq, Eq, Serialize)]
pub struct Retry {
    /// What was being done: `PATCH /v2/ci/app/blobs/uploads/ (sha256:…)`.
    pub request: String,
    /// The try that failed (1 for the first).
    pub attempt: u32,
    /// Out of how many.
    pub attempts: u32,
    pub error: String,
    pub wait_ms: u64,
}

impl std::fmt::Display for Retry {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(
            f,
            "{} failed (try {} of {}): {}; retrying in {:.2}s",
            self.request,
            self.attempt,
            self.attempts,
            self.error,
            self.wait_ms as f64 / 1000.0
        )
    }
}

/// Whether an HTTP status is worth another try.
pub fn is_transient_status(status: u16) -> bool {
    matches!(status, 408 | 429 | 500 | 502 | 503 | 504)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_doubles_up_to_the_cap() {
        let policy = RetryPolicy::default();
        let waits: Vec<u128> = (1..=7).map(|n| policy.wait_after(n).as_millis()).collect();
        assert_eq!(waits, [250, 500, 1000, 2000, 4000, 8000, 8000]);
        assert_eq!(policy.wait_after(u32::MAX), policy.max_wait);
    }

    #[test]
    fn only_passing_failures_are_retried() {
        for status in [429, 500, 502, 503, 504] {
            assert!(is_transient_status(status), "{status}");
        }
        for status in [400, 401, 403, 404, 405, 413, 416] {
            assert!(!is_transient_status(status), "{status}");
        }
    }
}
