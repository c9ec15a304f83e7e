//! The per-company send rate limit: a token bucket (GCRA, the `governor`
//! crate) per company, in front of every API call that makes the session
//! send something to a chat — messages of every kind (`POST …/messages`),
//! reactions, edits and deletes. Beyond it: 429 `rate_limited` with
//! `Retry-After` (whole seconds, rounded up), and nothing is sent.
//!
//! Why: WhatsApp bans numbers that send like spammers, and one tenant's
//! runaway loop must not cost it its number. WhatsApp publishes no limit
//! for linked devices; the default — a burst of [`DEFAULT_BURST`], then
//! [`DEFAULT_PER_MINUTE`] a minute (one a second, 3,600 an hour) — is about
//! what a busy human agent sends, well below the bulk rates operators of
//! unofficial gateways report being banned at.
//!
//! Not counted: read receipts and presence (`…/chats/{chat}/read`,
//! `…/presence`) and `contacts/check` put nothing in a chat, and a typing
//! indicator usually precedes each message, so counting it would halve the
//! budget. A request refused for its input takes no token (it is checked
//! first), nor does an idempotent replay of a key whose send already
//! happened (it sends nothing); a send that reaches the session takes one,
//! whatever WhatsApp answers.
//!
//! Memory: one small entry per company that has sent since start.

use std::num::NonZeroU32;
use std::sync::Arc;
use std::time::Duration;

use governor::clock::Clock as _;
use governor::{DefaultKeyedRateLimiter, Quota};

use super::AppState;
use super::error::ApiError;
use crate::domain::{CompanyId, IdempotencyKey};

/// Sends a minute per company, sustained, by default.
pub const DEFAULT_PER_MINUTE: u32 = 60;
/// Sends a company may make at once (the bucket's size) by default.
pub const DEFAULT_BURST: u32 = 20;

/// The send rate limit's settings (flags and environment).
#[derive(Clone, Debug, clap::Args)]
pub struct SendRateOptions {
    /// Sends (messages, reactions, edits, deletes) per minute per company,
    /// sustained; beyond it 429 `rate_limited`. The default keeps a number
    /// at a human agent's pace, clear of WhatsApp's spam detection.
    #[arg(long, env = "WAGATE_SEND_RATE_PER_MINUTE", default_value_t = DEFAULT_PER_MINUTE, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub send_rate_per_minute: u32,
    /// Sends a company may make at once before the rate applies.
    #[arg(long, env = "WAGATE_SEND_BURST", default_value_t = DEFAULT_BURST, value_parser = clap::value_parser!(u32).range(1..=1_000_000))]
    pub send_burst: u32,
}

impl Default for SendRateOptions {
    fn default() -> Self {
        Self {
            send_rate_per_minute: DEFAULT_PER_MINUTE,
            send_burst: DEFAULT_BURST,
        }
    }
}

/// Every company's bucket. Shared by the handlers (`Arc` in [`AppState`]).
pub struct SendRate {
    limiter: DefaultKeyedRateLimiter<CompanyId>,
}

impl SendRate {
    /// Buckets with the configured rate and size.
    pub fn new(options: &SendRateOptions) -> Arc<Self> {
        let one = NonZeroU32::MIN;
        let per_minute = NonZeroU32::new(options.send_rate_per_minute).unwrap_or(one);
        let burst = NonZeroU32::new(options.send_burst).unwrap_or(one);
        // One token every 60 s / rate (`Quota::per_minute` would make the
        // burst equal to the rate).
        let period = Duration::from_secs(60) / per_minute.get();
        let quota = Quota::with_period(period)
            .unwrap_or_else(|| Quota::per_second(NonZeroU32::MAX))
            .allow_burst(burst);
        Arc::new(Self {
            limiter: DefaultKeyedRateLimiter::keyed(quota),
        })
    }

    /// Takes one send from `company`'s bucket, or says how long to wait.
    pub fn take(&self, company: &CompanyId) -> Result<(), ApiError> {
        self.limiter.check_key(company).map_err(|not_until| {
            let retry_after = not_until.wait_time_from(self.limiter.clock().now());
            ApiError::SendRateLimited { retry_after }
        })
    }
}

/// Takes one send of `company`'s budget for a request carrying `key`,
/// unless `key` already produced a send (the replay sends nothing).
pub(super) fn take_for_send(
    state: &AppState,
    company: &CompanyId,
    key: Option<&IdempotencyKey>,
) -> Result<(), ApiError> {
    if let Some(key) = key {
        let answered = state
            .pool
            .store()
            .idempotent_message_id(company, key.as_str())
            .map_err(ApiError::internal)?;
        if answered.is_some() {
            return Ok(());
        }
    }
    state.send_rate.take(company)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn company(id: &str) -> CompanyId {
        CompanyId::parse(id).unwrap()
    }

    #[test]
    fn a_burst_then_the_rate_per_company_with_the_wait_rounded_up() {
        let rate = SendRate::new(&SendRateOptions {
            send_rate_per_minute: 2,
            send_burst: 3,
        });
        let acme = company("acme");
        for _ in 0..3 {
            rate.take(&acme).unwrap();
        }
        let Err(ApiError::SendRateLimited { retry_after }) = rate.take(&acme) else {
            panic!("the fourth send within the burst is refused");
        };
        assert!(
            retry_after > Duration::from_secs(25) && retry_after <= Duration::from_secs(30),
            "one token every 30 s: {retry_after:?}"
        );
        // Another company has its own bucket.
        rate.take(&company("globex")).unwrap();
    }

    #[test]
    fn the_defaults_are_one_a_second_after_a_burst_of_twenty() {
        let options = SendRateOptions::default();
        assert_eq!((options.send_rate_per_minute, options.send_burst), (60, 20));
        let rate = SendRate::new(&options);
        let acme = company("acme");
        for _ in 0..20 {
            rate.take(&acme).unwrap();
        }
        assert!(rate.take(&acme).is_err());
    }
}
