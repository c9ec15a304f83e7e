//! The webhook dispatcher: one task that delivers every queued delivery of
//! the outbox (the Conduit "sending service" shape: one owner of the queue,
//! per-destination limits and backoff, the queue persisted in sled).
//!
//! # Invariants
//!
//! - **Order per chat.** Deliveries are grouped in lanes `(company, target,
//!   chat)`; a lane has at most one request in flight and always sends its
//!   oldest delivery first. A delivery waiting for its retry holds its lane;
//!   a dead letter releases it.
//! - **At least once.** A delivery leaves the queue (to the delivered log or
//!   the dead letters, one transaction) only after a 2xx answer or its final
//!   failure; a crash in between sends it again, with the same event id.
//! - **Bounded load per endpoint.** At most `concurrency` requests in flight
//!   per endpoint URL.
//! - Retries (network errors, timeouts, 5xx, 429) back off exponentially with
//!   full jitter, honouring a 429's `Retry-After`; any other answer, or the
//!   `max_attempts`-th failure, makes the delivery a dead letter.
//! - **Only allowed addresses.** Every attempt checks its endpoint's URL
//!   with the outbound guard first (a URL stored before
//!   `--allow-private-urls` was turned off is refused then: a dead letter
//!   `url_refused`, nothing sent), and the client's resolver refuses
//!   non-public addresses on every connection; redirects are not followed.
//! - **Bounded answers.** A receiver's answer is judged by its status; at
//!   most [`MAX_RESPONSE_BODY`] bytes of its body are read (so a small one
//!   leaves the connection reusable), for at most [`DRAIN_TIME`], and the
//!   rest is dropped unread: an endless body costs nothing.
//! - Logs name the company, event id and outcome code; never URLs' paths,
//!   secrets or bodies.

use std::cmp::Reverse;
use std::collections::{BTreeSet, BinaryHeap, HashMap, VecDeque};
use std::sync::Arc;
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinSet;
use tokio::time::Instant;

use super::endpoint::{Endpoint, Endpoints};
use super::{event, sign};
use crate::domain::{CompanyId, now_ms};
use crate::outbound::Guard;
use crate::pb;
use crate::store::outbox::{DeliveryKey, DeliveryState, Outbox, Settled, Target};

/// Delivery knobs.
#[derive(Clone, Debug)]
pub struct DispatcherConfig {
    /// Per-request timeout (connect + answer).
    pub timeout: Duration,
    /// Attempts before a delivery becomes a dead letter (at least 1).
    pub max_attempts: u32,
    /// First retry delay; doubled per attempt, with full jitter.
    pub backoff_base: Duration,
    /// The longest wait between two attempts.
    pub backoff_max: Duration,
    /// Requests in flight per endpoint URL (at least 1).
    pub concurrency: usize,
    /// Bodies carry `"sandbox": true` (`wagate --sandbox`).
    pub mark_sandbox: bool,
}

/// The most of a receiver's answer body that is read; the rest is dropped.
pub const MAX_RESPONSE_BODY: usize = 4 * 1024;
/// The longest time spent reading that much.
pub const DRAIN_TIME: Duration = Duration::from_millis(500);
/// The `last_error` of an attempt the outbound guard refused.
pub const URL_REFUSED: &str = "url_refused";

impl Default for DispatcherConfig {
    fn default() -> Self {
        Self {
            timeout: Duration::from_secs(10),
            max_attempts: 12,
            backoff_base: Duration::from_secs(1),
            backoff_max: Duration::from_secs(300),
            concurrency: 16,
            mark_sandbox: false,
        }
    }
}

/// What the dispatcher is told.
#[derive(Debug)]
pub(crate) enum Command {
    /// These deliveries were queued (committed) and may be sent.
    Queued(Vec<DeliveryKey>),
}

type LaneKey = (CompanyId, Target, String);

#[derive(Default)]
struct Lane {
    pending: BTreeSet<DeliveryKey>,
    busy: bool,
    waiting: bool,
}

/// How one attempt ended.
enum Attempt {
    Delivered {
        status: u16,
    },
    Retry {
        status: u16,
        code: String,
        retry_after: Option<Duration>,
    },
    Fatal {
        status: u16,
        code: String,
    },
}

struct Finished {
    lane: LaneKey,
    key: DeliveryKey,
    delivery: pb::OutboxDelivery,
    endpoint_url: String,
    attempt: Attempt,
}

/// The dispatcher task's state.
pub(crate) struct Dispatcher {
    outbox: Outbox,
    endpoints: Arc<Endpoints>,
    http: reqwest::Client,
    guard: Guard,
    config: DispatcherConfig,
    lanes: HashMap<LaneKey, Lane>,
    ready: VecDeque<LaneKey>,
    /// Lanes held back by their endpoint's concurrency limit.
    parked: Vec<LaneKey>,
    timers: BinaryHeap<Reverse<(Instant, LaneKey)>>,
    in_flight: JoinSet<Finished>,
    per_endpoint: HashMap<String, usize>,
    /// Outcomes not yet written to the outbox: everything settled in one turn
    /// of the loop is recorded in one transaction (see `record_settled`).
    settled: Vec<Settled>,
}

impl Dispatcher {
    pub(crate) fn new(
        outbox: Outbox,
        endpoints: Arc<Endpoints>,
        config: DispatcherConfig,
        guard: Guard,
    ) -> Result<Self, reqwest::Error> {
        let http = guard
            .client_builder()
            .timeout(config.timeout)
            .connect_timeout(config.timeout)
            .pool_max_idle_per_host(config.concurrency.max(1))
            .redirect(reqwest::redirect::Policy::none())
            .build()?;
        Ok(Self {
            outbox,
            endpoints,
            http,
            guard,
            config,
            lanes: HashMap::new(),
            ready: VecDeque::new(),
            parked: Vec::new(),
            timers: BinaryHeap::new(),
            in_flight: JoinSet::new(),
            per_endpoint: HashMap::new(),
            settled: Vec::new(),
        })
    }

    /// Runs until `commands` closes, then returns without waiting for
    /// requests in flight (they stay queued and are sent after a restart).
    pub(crate) async fn run(mut self, mut commands: mpsc::UnboundedReceiver<Command>) {
        match self.outbox.repair_interrupted_settles() {
            Ok(0) => {}
            Ok(repaired) => tracing::info!(
                repaired,
                "a crash interrupted settling webhook deliveries; they are sent again"
            ),
            Err(error) => {
                tracing::error!(%error, "cannot check the webhook logs against the queue");
            }
        }
        match self.outbox.queued() {
            Ok(rows) => {
                if !rows.is_empty() {
                    tracing::info!(
                        deliveries = rows.len(),
                        "resuming queued webhook deliveries"
                    );
                }
                for (key, delivery) in rows {
                    let wait_ms = delivery.next_attempt_ms - now_ms();
                    let lane = self.add(key, &delivery.chat);
                    if wait_ms > 0 {
                        self.wait(lane, Duration::from_millis(wait_ms as u64));
                    }
                }
            }
            Err(error) => {
                tracing::error!(%error, "cannot read the webhook queue; only new deliveries are sent");
            }
        }
        loop {
            self.start_ready();
            self.record_settled();
            let next_timer = self.timers.peek().map(|Reverse((at, _))| *at);
            tokio::select! {
                command = commands.recv() => match command {
                    Some(Command::Queued(keys)) => self.queued(keys),
                    None => break,
                },
                Some(joined) = self.in_flight.join_next(), if !self.in_flight.is_empty() => {
                    // Settle every attempt that has ended by now together.
                    let mut joined = Some(joined);
                    while let Some(result) = joined.take().or_else(|| self.in_flight.try_join_next()) {
                        match result {
                            Ok(finished) => self.finish(finished),
                            Err(error) => tracing::error!(%error, "a webhook delivery task failed"),
                        }
                    }
                }
                () = sleep_until(next_timer) => self.fire_timers(),
            }
        }
    }

    fn queued(&mut self, keys: Vec<DeliveryKey>) {
        for key in keys {
            // The lane comes from the row; read it once here.
            match self.outbox.get_queued(&key) {
                Ok(Some(delivery)) => {
                    self.add(key, &delivery.chat);
                }
                Ok(None) => {}
                Err(error) => {
                    tracing::error!(company.id = %key.company, %error, "cannot read a queued webhook delivery");
                }
            }
        }
    }

    /// Puts `key` in its lane; returns the lane.
    fn add(&mut self, key: DeliveryKey, chat: &str) -> LaneKey {
        let lane_key: LaneKey = (key.company.clone(), key.target, chat.to_owned());
        let lane = self.lanes.entry(lane_key.clone()).or_default();
        let was_idle = lane.pending.is_empty() && !lane.busy && !lane.waiting;
        if lane.pending.insert(key) {
            crate::metrics::outbox_depth_change(1.0);
        }
        if was_idle {
            self.ready.push_back(lane_key.clone());
        }
        lane_key
    }

    fn wait(&mut self, lane_key: LaneKey, delay: Duration) {
        if let Some(lane) = self.lanes.get_mut(&lane_key) {
            lane.waiting = true;
            self.ready.retain(|l| l != &lane_key);
            self.timers
                .push(Reverse((Instant::now() + delay, lane_key)));
        }
    }

    fn fire_timers(&mut self) {
        let now = Instant::now();
        while let Some(Reverse((at, _))) = self.timers.peek() {
            if *at > now {
                break;
            }
            let Some(Reverse((_, lane_key))) = self.timers.pop() else {
                break;
            };
            if let Some(lane) = self.lanes.get_mut(&lane_key) {
                lane.waiting = false;
                if !lane.busy && !lane.pending.is_empty() {
                    self.ready.push_back(lane_key);
                }
            }
        }
    }

    /// Starts the head delivery of every ready lane whose endpoint has room.
    fn start_ready(&mut self) {
        while let Some(lane_key) = self.ready.pop_front() {
            let Some(lane) = self.lanes.get(&lane_key) else {
                continue;
            };
            if lane.busy || lane.waiting {
                continue;
            }
            let Some(key) = lane.pending.first().cloned() else {
                self.lanes.remove(&lane_key);
                continue;
            };
            let delivery = match self.outbox.get_queued(&key) {
                Ok(Some(delivery)) => delivery,
                // Gone (company deleted, or finished by an earlier run).
                Ok(None) => {
                    self.drop_head(&lane_key, &key);
                    continue;
                }
                Err(error) => {
                    tracing::error!(company.id = %key.company, %error, "cannot read a webhook delivery; retrying later");
                    self.wait(lane_key, self.config.backoff_max);
                    continue;
                }
            };
            let Some(endpoint) = self.endpoints.get(&key.company, key.target) else {
                self.settle(
                    &lane_key,
                    &key,
                    delivery,
                    0,
                    "no_endpoint",
                    DeliveryState::Dead,
                );
                continue;
            };
            if let Err(refused) = self.guard.check_parsed(&endpoint.url) {
                // Stored before the policy changed: refused, not sent.
                tracing::warn!(company.id = %key.company, event.id = %delivery.event_id, target = key.target.as_str(), reason = refused.0, "webhook URL refused by the outbound address guard; dead letter");
                crate::metrics::webhook_delivery("dead");
                let mut delivery = delivery;
                delivery.attempts += 1;
                self.settle(
                    &lane_key,
                    &key,
                    delivery,
                    0,
                    URL_REFUSED,
                    DeliveryState::Dead,
                );
                continue;
            }
            let endpoint_url = endpoint.url.as_str().to_owned();
            let in_flight = self.per_endpoint.get(&endpoint_url).copied().unwrap_or(0);
            if in_flight >= self.config.concurrency.max(1) {
                self.parked.push(lane_key);
                continue;
            }
            let event = match self.outbox.event(&key.company, delivery.event_seq) {
                Ok(Some(event)) => event,
                Ok(None) => {
                    self.settle(
                        &lane_key,
                        &key,
                        delivery,
                        0,
                        "event_missing",
                        DeliveryState::Dead,
                    );
                    continue;
                }
                Err(error) => {
                    tracing::error!(company.id = %key.company, %error, "cannot read a webhook event");
                    self.settle(
                        &lane_key,
                        &key,
                        delivery,
                        0,
                        "event_unreadable",
                        DeliveryState::Dead,
                    );
                    continue;
                }
            };
            *self.per_endpoint.entry(endpoint_url.clone()).or_default() += 1;
            if let Some(lane) = self.lanes.get_mut(&lane_key) {
                lane.busy = true;
            }
            let http = self.http.clone();
            let mark_sandbox = self.config.mark_sandbox;
            self.in_flight.spawn(async move {
                let attempt = send(&http, &endpoint, &event, mark_sandbox).await;
                Finished {
                    lane: lane_key,
                    key,
                    delivery,
                    endpoint_url,
                    attempt,
                }
            });
        }
    }

    fn finish(&mut self, finished: Finished) {
        let Finished {
            lane,
            key,
            mut delivery,
            endpoint_url,
            attempt,
        } = finished;
        if let Some(count) = self.per_endpoint.get_mut(&endpoint_url) {
            *count = count.saturating_sub(1);
        }
        // A slot freed: parked lanes may go.
        self.ready.extend(self.parked.drain(..));
        if let Some(l) = self.lanes.get_mut(&lane) {
            l.busy = false;
        }
        delivery.attempts += 1;
        crate::metrics::webhook_delivery(match &attempt {
            Attempt::Delivered { .. } => "delivered",
            Attempt::Fatal { .. } => "dead",
            Attempt::Retry { .. } if delivery.attempts >= self.config.max_attempts.max(1) => "dead",
            Attempt::Retry { .. } => "retry",
        });
        match attempt {
            Attempt::Delivered { status } => {
                self.settle(&lane, &key, delivery, status, "", DeliveryState::Delivered);
            }
            Attempt::Fatal { status, code } => {
                tracing::warn!(company.id = %key.company, event.id = %delivery.event_id, code, "webhook refused the event; dead letter");
                self.settle(&lane, &key, delivery, status, &code, DeliveryState::Dead);
            }
            Attempt::Retry {
                status,
                code,
                retry_after,
            } => {
                if delivery.attempts >= self.config.max_attempts.max(1) {
                    tracing::warn!(company.id = %key.company, event.id = %delivery.event_id, code, attempts = delivery.attempts, "webhook delivery failed for the last time; dead letter");
                    self.settle(&lane, &key, delivery, status, &code, DeliveryState::Dead);
                    return;
                }
                let delay = retry_after.map_or_else(
                    || backoff(&self.config, delivery.attempts),
                    |d| d.min(self.config.backoff_max),
                );
                delivery.next_attempt_ms =
                    now_ms() + i64::try_from(delay.as_millis()).unwrap_or(i64::MAX);
                delivery.last_status = u32::from(status);
                delivery.last_error = code;
                delivery.updated_at_ms = now_ms();
                tracing::debug!(company.id = %key.company, event.id = %delivery.event_id, delay_ms = delay.as_millis() as u64, "webhook delivery will be retried");
                self.settled.push(Settled {
                    key,
                    delivery,
                    to: DeliveryState::Queued,
                });
                self.wait(lane, delay);
            }
        }
    }

    /// Moves the lane head `key` out of the queue to `to` and frees the lane.
    fn settle(
        &mut self,
        lane: &LaneKey,
        key: &DeliveryKey,
        mut delivery: pb::OutboxDelivery,
        status: u16,
        code: &str,
        to: DeliveryState,
    ) {
        delivery.last_status = u32::from(status);
        delivery.last_error = code.to_owned();
        delivery.next_attempt_ms = 0;
        delivery.updated_at_ms = now_ms();
        self.settled.push(Settled {
            key: key.clone(),
            delivery,
            to,
        });
        self.drop_head(lane, key);
    }

    /// Writes every outcome settled since the last call.
    fn record_settled(&mut self) {
        if self.settled.is_empty() {
            return;
        }
        if let Err(error) = self.outbox.finish_all(&self.settled) {
            // Left queued: they are sent again after a restart (at least
            // once, same event ids).
            tracing::error!(%error, deliveries = self.settled.len(), "cannot record finished webhook deliveries");
        }
        self.settled.clear();
    }

    fn drop_head(&mut self, lane_key: &LaneKey, key: &DeliveryKey) {
        let Some(lane) = self.lanes.get_mut(lane_key) else {
            return;
        };
        if lane.pending.remove(key) {
            crate::metrics::outbox_depth_change(-1.0);
        }
        if lane.pending.is_empty() && !lane.busy && !lane.waiting {
            self.lanes.remove(lane_key);
        } else if !lane.busy && !lane.waiting {
            self.ready.push_back(lane_key.clone());
        }
    }
}

/// One HTTP attempt.
async fn send(
    http: &reqwest::Client,
    endpoint: &Endpoint,
    event: &pb::WebhookEvent,
    mark_sandbox: bool,
) -> Attempt {
    let body = if mark_sandbox {
        event::to_sandbox_body(event)
    } else {
        event::to_body(event)
    };
    let timestamp = now_ms() / 1000;
    let signature = sign::signature(&endpoint.secret, &event.id, timestamp, &body);
    let request = http
        .post(endpoint.url.clone())
        .header(reqwest::header::CONTENT_TYPE, "application/json")
        .header(sign::HEADER_ID, &event.id)
        .header(sign::HEADER_TIMESTAMP, timestamp.to_string())
        .header(sign::HEADER_SIGNATURE, signature)
        .body(body);
    match request.send().await {
        Ok(response) => {
            let status = response.status();
            let retry_after = response
                .headers()
                .get(reqwest::header::RETRY_AFTER)
                .and_then(|v| v.to_str().ok())
                .and_then(|v| v.trim().parse::<u64>().ok())
                .map(Duration::from_secs);
            drain(response).await;
            let code = format!("http_{}", status.as_u16());
            if status.is_success() {
                Attempt::Delivered {
                    status: status.as_u16(),
                }
            } else if status.is_server_error() || status == reqwest::StatusCode::TOO_MANY_REQUESTS {
                Attempt::Retry {
                    status: status.as_u16(),
                    code,
                    retry_after,
                }
            } else {
                Attempt::Fatal {
                    status: status.as_u16(),
                    code,
                }
            }
        }
        Err(error) if crate::outbound::refusal_in(&error).is_some() => {
            // The name resolved to non-public addresses only.
            Attempt::Fatal {
                status: 0,
                code: URL_REFUSED.to_owned(),
            }
        }
        Err(error) => {
            let code = if error.is_timeout() {
                "timeout"
            } else if error.is_connect() {
                "connect"
            } else {
                "network"
            };
            Attempt::Retry {
                status: 0,
                code: code.to_owned(),
                retry_after: None,
            }
        }
    }
}

/// Reads at most [`MAX_RESPONSE_BODY`] bytes of an answer's body, for at
/// most [`DRAIN_TIME`], and drops the rest (the connection is then closed
/// instead of reused, which is the receiver's loss, not ours).
async fn drain(mut response: reqwest::Response) {
    let read = async {
        let mut total = 0;
        while total < MAX_RESPONSE_BODY {
            match response.chunk().await {
                Ok(Some(chunk)) => total += chunk.len(),
                Ok(None) | Err(_) => break,
            }
        }
    };
    let _ = tokio::time::timeout(DRAIN_TIME, read).await;
}

/// Full-jitter exponential backoff for the `attempts`-th failure.
fn backoff(config: &DispatcherConfig, attempts: u32) -> Duration {
    let exp = config
        .backoff_base
        .saturating_mul(1u32 << attempts.saturating_sub(1).min(20))
        .min(config.backoff_max);
    // Half fixed, half random: never a zero delay, still spread out.
    exp / 2 + exp.mul_f64(fastrand::f64() / 2.0)
}

async fn sleep_until(at: Option<Instant>) {
    match at {
        Some(at) => tokio::time::sleep_until(at).await,
        None => std::future::pending().await,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn backoff_grows_is_jittered_and_capped() {
        let config = DispatcherConfig {
            backoff_base: Duration::from_millis(100),
            backoff_max: Duration::from_secs(1),
            ..Default::default()
        };
        for _ in 0..100 {
            let first = backoff(&config, 1);
            assert!(first >= Duration::from_millis(50) && first <= Duration::from_millis(100));
            let third = backoff(&config, 3);
            assert!(third >= Duration::from_millis(200) && third <= Duration::from_millis(400));
            assert!(backoff(&config, 40) <= Duration::from_secs(1));
        }
    }
}
