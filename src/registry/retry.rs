//! [`retry_transient`]: registry-image's back-off (`backoff.go`) for `in`
//! and `out`; check never retries. Exponential from 5 s (5 ms with
//! `TEST=true`, which the upstream test-suite relies on), ×1.5 per attempt,
//! ±50 % jitter, at most 5 min between attempts, giving up after 1 h.

use std::future::Future;
use std::time::{Duration, Instant};

use rand::Rng;
use tracing::warn;

/// Errors that can say whether retrying might help.
pub trait Transient: std::error::Error + 'static {
    /// Whether this failure is transient (429, 5xx, connection reset...).
    fn is_transient(&self) -> bool;

    /// The delay the server asked for (`Retry-After` on 429/503), if any.
    fn retry_after(&self) -> Option<Duration> {
        None
    }
}

impl Transient for super::Error {
    fn is_transient(&self) -> bool {
        super::Error::is_transient(self)
    }

    fn retry_after(&self) -> Option<Duration> {
        super::Error::retry_after(self)
    }
}

/// The longest `Retry-After` honoured; a longer one waits this long.
const MAX_RETRY_AFTER: Duration = Duration::from_secs(60);

/// A `Retry-After` value: delay-seconds or an HTTP date (RFC 9110 10.2.3).
/// A date in the past means "now".
pub fn parse_retry_after(value: &str) -> Option<Duration> {
    let value = value.trim();
    if let Ok(secs) = value.parse::<u64>() {
        return Some(Duration::from_secs(secs));
    }
    let when = httpdate::parse_http_date(value).ok()?;
    Some(
        when.duration_since(std::time::SystemTime::now())
            .unwrap_or(Duration::ZERO),
    )
}

/// Lets in-crate tests use the short interval without mutating the process
/// environment (`set_var` races other test threads).
#[cfg(test)]
pub(crate) static FAST_FOR_TESTS: std::sync::atomic::AtomicBool =
    std::sync::atomic::AtomicBool::new(false);

fn initial_interval() -> Duration {
    #[cfg(test)]
    if FAST_FOR_TESTS.load(std::sync::atomic::Ordering::Relaxed) {
        return Duration::from_millis(5);
    }
    if std::env::var("TEST").is_ok_and(|v| v == "true") {
        Duration::from_millis(5)
    } else {
        Duration::from_secs(5)
    }
}

const MULTIPLIER: f64 = 1.5;
const MAX_INTERVAL: Duration = Duration::from_secs(300);
const MAX_ELAPSED: Duration = Duration::from_secs(3600);

/// Runs `f` until it succeeds, fails permanently, or an hour has passed.
/// Each retry logs `transient error: <err>; retrying in <dur>` (the error
/// texts never contain credentials).
pub async fn retry_transient<T, E, F, Fut>(what: &str, f: F) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    retry_transient_at_most(what, u32::MAX, f).await
}

/// [`retry_transient`], giving up after `attempts` tries in all: for a
/// request whose transient failure is more likely a registry refusing it
/// for good with the wrong status (a manifest PUT) than a passing outage.
pub async fn retry_transient_at_most<T, E, F, Fut>(
    what: &str,
    attempts: u32,
    mut f: F,
) -> Result<T, E>
where
    E: Transient,
    F: FnMut() -> Fut,
    Fut: Future<Output = Result<T, E>>,
{
    let start = Instant::now();
    let mut interval = initial_interval();
    let mut tried = 0u32;
    loop {
        tried += 1;
        match f().await {
            Ok(v) => return Ok(v),
            Err(e) if e.is_transient() && start.elapsed() < MAX_ELAPSED && tried < attempts => {
                let jitter = rand::thread_rng().gen_range(0.5..1.5);
                // A registry's `Retry-After` (429/503) is honoured up to a
                // cap, as registry-image's rate-limit retry does.
                let delay = interval
                    .mul_f64(jitter)
                    .max(e.retry_after().unwrap_or_default().min(MAX_RETRY_AFTER));
                warn!(
                    "{what}: transient error: {}; retrying in {delay:?}",
                    crate::oci::error_chain(&e)
                );
                tokio::time::sleep(delay).await;
                interval = interval.mul_f64(MULTIPLIER).min(MAX_INTERVAL);
            }
            Err(e) => {
                if e.is_transient() && tried > 1 {
                    warn!("{what}: giving up after {tried} attempts");
                }
                return Err(e);
            }
        }
    }
}

#[cfg(test)]
mod tests;
