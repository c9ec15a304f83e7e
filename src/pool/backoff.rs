//! Jittered exponential backoff with a cap, for the `reconnecting` state.
//!
//! The n-th retry (n = 0, 1, …) waits `min(max, base · 2ⁿ)` scaled by a random
//! factor in `[1 − jitter, 1 + jitter]` (and never more than `max`), so that
//! many sessions dropped by the same server restart do not reconnect in
//! lockstep. The attempt counter resets once a connection has been stable for
//! [`BackoffConfig::stable_after`]; a connection that flaps right after coming
//! up keeps growing the delay instead of retrying at `base` forever.
//!
//! Modelled on linkerd2-proxy's `exp-backoff`: validated once at construction
//! (so the rest of the code never handles an invalid configuration).

use std::time::Duration;

/// Backoff settings. Validate with [`BackoffConfig::validate`] (done by
/// [`Backoff::new`]).
#[derive(Debug, Clone, Copy, PartialEq)]
pub struct BackoffConfig {
    /// Delay before the first retry.
    pub base: Duration,
    /// Upper bound of any delay.
    pub max: Duration,
    /// Relative jitter in `[0, 1)`: 0.2 means ±20 %.
    pub jitter: f64,
    /// A connection that stayed `connected` this long resets the attempt count.
    pub stable_after: Duration,
}

impl Default for BackoffConfig {
    /// 1 s, 2 s, 4 s … capped at 5 minutes, ±20 %.
    fn default() -> Self {
        Self {
            base: Duration::from_secs(1),
            max: Duration::from_secs(300),
            jitter: 0.2,
            stable_after: Duration::from_secs(30),
        }
    }
}

/// An invalid [`BackoffConfig`].
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum InvalidBackoff {
    #[error("backoff base must be greater than zero")]
    /// The base delay is zero.
    ZeroBase,
    #[error("backoff max must be at least its base")]
    /// The cap is below the base delay.
    MaxBelowBase,
    #[error("backoff jitter must be in [0, 1)")]
    /// The jitter is not a fraction between 0 and 1.
    Jitter,
}

impl BackoffConfig {
    /// Checks that the settings make a usable backoff.
    pub fn validate(&self) -> Result<(), InvalidBackoff> {
        if self.base.is_zero() {
            return Err(InvalidBackoff::ZeroBase);
        }
        if self.max < self.base {
            return Err(InvalidBackoff::MaxBelowBase);
        }
        if !(0.0..1.0).contains(&self.jitter) {
            return Err(InvalidBackoff::Jitter);
        }
        Ok(())
    }
}

/// Backoff state of one session.
#[derive(Debug, Clone)]
pub struct Backoff {
    config: BackoffConfig,
    attempt: u32,
}

impl Backoff {
    /// A backoff at its first step, if `config` is valid.
    pub fn new(config: BackoffConfig) -> Result<Self, InvalidBackoff> {
        config.validate()?;
        Ok(Self { config, attempt: 0 })
    }

    /// The delay before the next retry; advances the attempt counter.
    pub fn next_delay(&mut self) -> Duration {
        let unjittered = self.unjittered(self.attempt);
        self.attempt = self.attempt.saturating_add(1);
        let factor = 1.0 + self.config.jitter * (2.0 * fastrand::f64() - 1.0);
        unjittered.mul_f64(factor).min(self.config.max)
    }

    /// `min(max, base · 2ⁿ)` without overflow.
    fn unjittered(&self, attempt: u32) -> Duration {
        let multiplier = 2u32.checked_pow(attempt).unwrap_or(u32::MAX);
        self.config
            .base
            .checked_mul(multiplier)
            .unwrap_or(self.config.max)
            .min(self.config.max)
    }

    /// Start over at `base` (after a stable connection, or an explicit
    /// reconnect).
    pub fn reset(&mut self) {
        self.attempt = 0;
    }

    /// Retries made since the last reset.
    pub fn attempt(&self) -> u32 {
        self.attempt
    }

    /// The settings this backoff runs with.
    pub fn config(&self) -> &BackoffConfig {
        &self.config
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn cfg(base_ms: u64, max_ms: u64, jitter: f64) -> BackoffConfig {
        BackoffConfig {
            base: Duration::from_millis(base_ms),
            max: Duration::from_millis(max_ms),
            jitter,
            stable_after: Duration::from_secs(30),
        }
    }

    #[test]
    fn doubles_up_to_the_cap_without_jitter() {
        let mut b = Backoff::new(cfg(100, 1_000, 0.0)).unwrap();
        let delays: Vec<u128> = (0..7).map(|_| b.next_delay().as_millis()).collect();
        assert_eq!(delays, [100, 200, 400, 800, 1_000, 1_000, 1_000]);
        b.reset();
        assert_eq!(b.next_delay(), Duration::from_millis(100));
    }

    #[test]
    fn jitter_stays_within_bounds_and_under_the_cap() {
        let mut b = Backoff::new(cfg(1_000, 3_000, 0.5)).unwrap();
        for attempt in 0..200u32 {
            let d = b.next_delay();
            let nominal = 1_000f64 * 2f64.powi(attempt.min(20) as i32);
            let nominal = nominal.min(3_000.0);
            assert!(d <= Duration::from_millis(3_000), "{d:?} over cap");
            assert!(
                d.as_secs_f64() * 1_000.0 >= nominal * 0.5 - 1.0,
                "{d:?} under jitter floor"
            );
        }
    }

    #[test]
    fn never_overflows() {
        let mut b = Backoff::new(cfg(1, u64::MAX / 4, 0.0)).unwrap();
        for _ in 0..1_000 {
            b.next_delay();
        }
        assert_eq!(b.attempt(), 1_000);
    }

    #[test]
    fn rejects_invalid_configs() {
        assert_eq!(
            Backoff::new(cfg(0, 10, 0.1)).unwrap_err(),
            InvalidBackoff::ZeroBase
        );
        assert_eq!(
            Backoff::new(cfg(10, 5, 0.1)).unwrap_err(),
            InvalidBackoff::MaxBelowBase
        );
        assert_eq!(
            Backoff::new(cfg(10, 50, 1.0)).unwrap_err(),
            InvalidBackoff::Jitter
        );
        assert_eq!(
            Backoff::new(cfg(10, 50, -0.1)).unwrap_err(),
            InvalidBackoff::Jitter
        );
    }
}
