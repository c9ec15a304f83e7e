//! Webhook endpoints: where events go, with which key and which filter; URL
//! validation; and the in-memory view of every company's endpoint.
//!
//! # Invariants
//!
//! - A URL is accepted only with an `http`/`https` scheme, a host, and no
//!   credentials in it; unless `--allow-private-urls`, also never a
//!   loopback, private, link-local or otherwise non-public address
//!   ([`crate::outbound::Guard`]) — checked on the literal address when the
//!   webhook is set and again before every delivery (a URL stored before the
//!   setting changed is refused then), and on every resolved address at
//!   connect time, so DNS cannot smuggle one in later.
//! - [`Endpoints`] mirrors the registry: it is loaded lazily from the
//!   company's record and re-read by whoever writes or removes the record
//!   ([`Endpoints::refresh`], [`Endpoints::forget`]), so the hot path never
//!   reads sled for it.
//!
//! # Race window
//!
//! A webhook `PUT` and a delete of the same company may interleave: the
//! `PUT`'s registry write is conditional on the record existing (it never
//! brings a deleted company back), but its cache update could still land
//! after the delete's. So the cache is never written from a value the writer
//! holds: every fill (a lazy load, a refresh) reads the registry *under the
//! cache's write lock*, fills are therefore serialized, and the last one —
//! which runs after the last registry write, since every writer refreshes
//! (or forgets) after writing — holds what the registry holds. The same
//! holds for two `PUT`s of one company.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::domain::CompanyId;
use crate::outbound::Guard;
use crate::store::Store;
use crate::store::outbox::Target;

use super::WebhookError;

/// One webhook endpoint.
#[derive(Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// Where events are POSTed.
    pub url: url::Url,
    /// HMAC key bytes (never logged).
    pub secret: Vec<u8>,
    /// Event types delivered; empty = all.
    pub events: Vec<String>,
}

impl std::fmt::Debug for Endpoint {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Endpoint")
            .field("host", &self.url.host_str())
            .field("secret", &"<redacted>")
            .field("events", &self.events)
            .finish()
    }
}

impl Endpoint {
    /// Whether events of `event_type` go to this endpoint.
    pub fn wants(&self, event_type: &str) -> bool {
        self.events.is_empty() || self.events.iter().any(|e| e == event_type)
    }
}

/// Parses and checks a webhook URL with the shared outbound guard
/// ([`crate::outbound::Guard::check_url`]).
pub fn validate_url(guard: Guard, raw: &str) -> Result<url::Url, WebhookError> {
    guard.check_url(raw).map_err(|refused| {
        let message = match refused.0 {
            "credentials in the URL are not allowed" => {
                "credentials in the URL are not allowed; use the signing secret"
            }
            other => other,
        };
        WebhookError::InvalidUrl(message.to_owned())
    })
}

/// Every company's endpoint plus the global one, cached in memory.
pub struct Endpoints {
    store: Store,
    global: Option<Arc<Endpoint>>,
    /// Lock choice: `parking_lot::RwLock`, read on every commit and delivery,
    /// written only when a company's entry is filled (a first lookup, a
    /// webhook set, a delete) — holding it for that one sled read, never
    /// across an `.await`.
    companies: RwLock<HashMap<CompanyId, Option<Arc<Endpoint>>>>,
}

impl Endpoints {
    /// Endpoints read from `store`, plus the gateway-wide `global` one.
    pub fn new(store: Store, global: Option<Endpoint>) -> Self {
        Self {
            store,
            global: global.map(Arc::new),
            companies: RwLock::new(HashMap::new()),
        }
    }

    /// The endpoint for `target` of `company`, if configured.
    pub fn get(&self, company: &CompanyId, target: Target) -> Option<Arc<Endpoint>> {
        match target {
            Target::Global => self.global.clone(),
            Target::Company => self.company(company),
        }
    }

    /// The targets an event of `event_type` of `company` is queued for now.
    pub fn targets(&self, company: &CompanyId, event_type: &str) -> Vec<Target> {
        let mut targets = Vec::with_capacity(2);
        if self.company(company).is_some_and(|e| e.wants(event_type)) {
            targets.push(Target::Company);
        }
        if self.global.as_ref().is_some_and(|e| e.wants(event_type)) {
            targets.push(Target::Global);
        }
        targets
    }

    /// Re-reads `company`'s endpoint from the registry after a write;
    /// returns whether the company still exists. On a store error the
    /// company is forgotten (the next lookup reads again).
    pub fn refresh(&self, company: &CompanyId) -> Result<bool, crate::store::StoreError> {
        let mut companies = self.companies.write();
        match self.store.get_company(company) {
            Ok(record) => {
                let endpoint = record.as_ref().and_then(from_record).map(Arc::new);
                companies.insert(company.clone(), endpoint);
                Ok(record.is_some())
            }
            Err(error) => {
                companies.remove(company);
                Err(error)
            }
        }
    }

    /// Forgets `company` (deleted).
    pub fn forget(&self, company: &CompanyId) {
        self.companies.write().remove(company);
    }

    fn company(&self, company: &CompanyId) -> Option<Arc<Endpoint>> {
        if let Some(cached) = self.companies.read().get(company) {
            return cached.clone();
        }
        // Loaded under the write lock ("Race window"): a load that read the
        // registry before a concurrent write must not be cached after that
        // write's refresh.
        let mut companies = self.companies.write();
        if let Some(cached) = companies.get(company) {
            return cached.clone();
        }
        let loaded = match self.store.get_company(company) {
            Ok(Some(record)) => from_record(&record).map(Arc::new),
            Ok(None) => None,
            Err(error) => {
                // Not cached: the next call tries again.
                tracing::error!(company.id = %company, %error, "cannot read the company's webhook");
                return None;
            }
        };
        companies.insert(company.clone(), loaded.clone());
        loaded
    }
}

/// The endpoint stored in a registry record, if any. URLs were validated
/// when set; an unparsable one (older data) counts as none.
pub fn from_record(record: &crate::pb::CompanyRecord) -> Option<Endpoint> {
    if record.webhook_url.is_empty() {
        return None;
    }
    Some(Endpoint {
        url: url::Url::parse(&record.webhook_url).ok()?,
        secret: record.webhook_secret.clone(),
        events: record.webhook_events.clone(),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn urls_are_checked_with_the_outbound_guard() {
        let open = Guard::new(true);
        assert!(validate_url(open, "http://127.0.0.1:9000/hook").is_ok());
        assert!(validate_url(open, "ftp://example.com/").is_err());
        assert!(validate_url(open, "https://user:pw@example.com/").is_err());
        assert!(validate_url(open, "/relative").is_err());
        let strict = Guard::default();
        for refused in [
            "http://127.0.0.1/",
            "http://[::1]/",
            "http://[::ffff:127.0.0.1]/",
            "http://localhost:8080/",
            "http://169.254.169.254/latest",
        ] {
            assert!(validate_url(strict, refused).is_err(), "{refused}");
        }
        assert!(validate_url(strict, "https://hooks.example.com/wa").is_ok());
        assert!(validate_url(strict, "https://8.8.8.8/").is_ok());
    }

    #[test]
    fn filters_select_event_types() {
        let endpoint = Endpoint {
            url: url::Url::parse("http://x/").unwrap(),
            secret: vec![1],
            events: vec!["session.status".into()],
        };
        assert!(endpoint.wants("session.status"));
        assert!(!endpoint.wants("message.received"));
        assert!(
            Endpoint {
                events: vec![],
                ..endpoint
            }
            .wants("message.received")
        );
    }

    #[test]
    fn targets_follow_the_registry_and_the_global_endpoint() {
        let store = Store::open_temporary().unwrap();
        let acme = CompanyId::parse("acme").unwrap();
        store
            .put_company(&crate::pb::CompanyRecord {
                company_id: "acme".into(),
                webhook_url: "http://127.0.0.1:1/h".into(),
                webhook_secret: b"k".to_vec(),
                ..Default::default()
            })
            .unwrap();
        let global = Endpoint {
            url: url::Url::parse("http://127.0.0.1:2/").unwrap(),
            secret: b"g".to_vec(),
            events: vec!["session.status".into()],
        };
        let endpoints = Endpoints::new(store.clone(), Some(global));
        assert_eq!(
            endpoints.targets(&acme, "message.received"),
            vec![Target::Company]
        );
        assert_eq!(
            endpoints.targets(&acme, "session.status"),
            vec![Target::Company, Target::Global]
        );

        // A writer's refresh reads the registry, whatever was cached.
        store
            .update_company(&acme, |record| record.webhook_url.clear())
            .unwrap();
        assert!(endpoints.refresh(&acme).unwrap(), "still there");
        assert_eq!(
            endpoints.targets(&acme, "message.received"),
            Vec::<Target>::new()
        );
        store
            .update_company(&acme, |record| {
                record.webhook_url = "http://127.0.0.1:3/h".into();
            })
            .unwrap();
        endpoints.refresh(&acme).unwrap();
        assert_eq!(
            endpoints.get(&acme, Target::Company).unwrap().url.port(),
            Some(3)
        );

        // Removed: a refresh says so and caches nothing of it.
        store.remove_company(&acme).unwrap();
        assert!(!endpoints.refresh(&acme).unwrap(), "gone");
        assert!(endpoints.get(&acme, Target::Company).is_none());
    }
}
