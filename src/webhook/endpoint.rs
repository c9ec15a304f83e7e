//! Webhook endpoints: where events go, with which key and which filter; URL
//! validation; and the in-memory view of every company's endpoint.
//!
//! # Invariants
//!
//! - A URL is accepted only with an `http`/`https` scheme, a host, and no
//!   credentials in it; with [`UrlPolicy::refuse_private`] (multi-tenant
//!   deployments) also never a loopback, private, link-local or otherwise
//!   non-public address — checked on the literal address when the webhook is
//!   set and on every resolved address at connect time (see
//!   `dispatcher::PublicOnlyResolver`), so DNS cannot smuggle one in later.
//! - [`Endpoints`] mirrors the registry: it is loaded lazily from the
//!   company's record and updated by whoever writes the record
//!   ([`Endpoints::set`]), so the hot path never reads sled for it.

use std::collections::HashMap;
use std::net::IpAddr;
use std::sync::Arc;

use parking_lot::RwLock;

use crate::domain::CompanyId;
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

/// Which webhook URLs are acceptable.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct UrlPolicy {
    /// Refuse loopback, private, link-local and other non-public addresses
    /// (multi-tenant deployments: a tenant must not reach the gateway's own
    /// network).
    pub refuse_private: bool,
}

impl UrlPolicy {
    /// Parses and checks a webhook URL.
    pub fn validate(&self, raw: &str) -> Result<url::Url, WebhookError> {
        let invalid = |why: &str| WebhookError::InvalidUrl(why.to_owned());
        let url = url::Url::parse(raw).map_err(|_| invalid("not a valid absolute URL"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(invalid("the scheme must be http or https"));
        }
        if !url.username().is_empty() || url.password().is_some() {
            return Err(invalid(
                "credentials in the URL are not allowed; use the signing secret",
            ));
        }
        let host = url.host().ok_or_else(|| invalid("the URL has no host"))?;
        if self.refuse_private {
            let refused = match host {
                url::Host::Ipv4(ip) => !is_public(IpAddr::V4(ip)),
                url::Host::Ipv6(ip) => !is_public(IpAddr::V6(ip)),
                url::Host::Domain(name) => {
                    let name = name.trim_end_matches('.').to_ascii_lowercase();
                    name == "localhost" || name.ends_with(".localhost") || name.ends_with(".local")
                }
            };
            if refused {
                return Err(invalid("private and loopback addresses are not allowed"));
            }
        }
        Ok(url)
    }
}

/// Whether `ip` is a globally routable unicast address.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_multicast()
                || v4.is_documentation()
                || a == 0
                || (a == 100 && (64..128).contains(&b)) // carrier-grade NAT
                || (a == 198 && (b == 18 || b == 19)) // benchmarking
                || a >= 240)
        }
        IpAddr::V6(v6) => {
            if let Some(v4) = v6.to_ipv4_mapped() {
                return is_public(IpAddr::V4(v4));
            }
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || v6.is_multicast()
                || (first & 0xfe00) == 0xfc00 // unique local
                || (first & 0xffc0) == 0xfe80 // link local
                || first == 0x2001 && v6.segments()[1] == 0x0db8) // documentation
        }
    }
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
    fn urls_are_checked() {
        let open = UrlPolicy::default();
        assert!(open.validate("http://127.0.0.1:9000/hook").is_ok());
        assert!(open.validate("ftp://example.com/").is_err());
        assert!(open.validate("https://user:pw@example.com/").is_err());
        assert!(open.validate("/relative").is_err());
        let strict = UrlPolicy {
            refuse_private: true,
        };
        for refused in [
            "http://127.0.0.1/",
            "http://10.1.2.3/",
            "http://192.168.0.1/",
            "http://169.254.169.254/latest",
            "http://[::1]/",
            "http://[fd00::1]/",
            "http://localhost:8080/",
            "http://100.64.0.1/",
            "http://[::ffff:10.0.0.1]/",
        ] {
            assert!(strict.validate(refused).is_err(), "{refused}");
        }
        assert!(strict.validate("https://hooks.example.com/wa").is_ok());
        assert!(strict.validate("https://8.8.8.8/").is_ok());
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
