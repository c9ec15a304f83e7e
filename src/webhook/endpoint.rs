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
//!   company's record and updated by whoever writes the record
//!   ([`Endpoints::set`]), so the hot path never reads sled for it.

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
    /// written only when a webhook is set; never held across an `.await`.
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

    /// Records `company`'s new endpoint (`None` = removed) after the
    /// registry was written.
    pub fn set(&self, company: &CompanyId, endpoint: Option<Endpoint>) {
        self.companies
            .write()
            .insert(company.clone(), endpoint.map(Arc::new));
    }

    /// Forgets `company` (deleted).
    pub fn forget(&self, company: &CompanyId) {
        self.companies.write().remove(company);
    }

    fn company(&self, company: &CompanyId) -> Option<Arc<Endpoint>> {
        if let Some(cached) = self.companies.read().get(company) {
            return cached.clone();
        }
        let loaded = match self.store.get_company(company) {
            Ok(Some(record)) => from_record(&record),
            Ok(None) => None,
            Err(error) => {
                // Not cached: the next call tries again.
                tracing::error!(company.id = %company, %error, "cannot read the company's webhook");
                return None;
            }
        };
        let loaded = loaded.map(Arc::new);
        self.companies
            .write()
            .insert(company.clone(), loaded.clone());
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
        let endpoints = Endpoints::new(store, Some(global));
        assert_eq!(
            endpoints.targets(&acme, "message.received"),
            vec![Target::Company]
        );
        assert_eq!(
            endpoints.targets(&acme, "session.status"),
            vec![Target::Company, Target::Global]
        );
        endpoints.set(&acme, None);
        assert_eq!(
            endpoints.targets(&acme, "message.received"),
            Vec::<Target>::new()
        );
    }
}
