//! [`Registrations`]: what WhatsApp answered about phone numbers (on
//! WhatsApp or not, JID, LID, business), remembered for
//! [`Registrations::TTL`] so that sending to the same customer again does
//! not ask WhatsApp each time, and a number that is not on WhatsApp is
//! refused without a round trip.
//!
//! One per session actor; the lock is a `parking_lot` mutex held only to
//! read or write the map, never across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;
use std::time::{Duration, Instant};

use parking_lot::Mutex;
use wacore_binary::Jid;
use whatsapp_rust::Client;

use super::error::PoolError;
use super::handle::ContactCheck;
use crate::domain::PhoneNumber;

/// Cached answers of one session.
#[derive(Default)]
pub(crate) struct Registrations {
    answers: Mutex<HashMap<String, (ContactCheck, Instant)>>,
}

impl Registrations {
    /// How long an answer is trusted.
    pub const TTL: Duration = Duration::from_secs(600);
    /// Answers kept at most (the oldest half is dropped beyond it).
    const MAX_ENTRIES: usize = 10_000;

    /// The answers for `phones`, from the cache where fresh, else from
    /// WhatsApp (one query for all the missing ones).
    pub async fn check(
        &self,
        client: &Arc<Client>,
        phones: &[PhoneNumber],
    ) -> Result<Vec<ContactCheck>, PoolError> {
        let now = Instant::now();
        let mut missing: Vec<&PhoneNumber> = Vec::new();
        {
            let answers = self.answers.lock();
            for phone in phones {
                let fresh = answers
                    .get(phone.digits())
                    .is_some_and(|(_, at)| now.duration_since(*at) < Self::TTL);
                if !fresh {
                    missing.push(phone);
                }
            }
        }
        if !missing.is_empty() {
            let jids: Vec<Jid> = missing.iter().map(|p| Jid::pn(p.digits())).collect();
            let results = client
                .contacts()
                .is_on_whatsapp(&jids)
                .await
                .map_err(|e| PoolError::Send(format!("checking the number failed: {e}")))?;
            let mut answers = self.answers.lock();
            if answers.len() > Self::MAX_ENTRIES {
                let mut by_age: Vec<(String, Instant)> = answers
                    .iter()
                    .map(|(k, (_, at))| (k.clone(), *at))
                    .collect();
                by_age.sort_by_key(|(_, at)| *at);
                for (key, _) in by_age.into_iter().take(Self::MAX_ENTRIES / 2) {
                    answers.remove(&key);
                }
            }
            for phone in missing {
                let result = results.iter().find(|r| {
                    r.jid.user == phone.digits()
                        || r.pn_jid.as_ref().is_some_and(|j| j.user == phone.digits())
                });
                let check = match result {
                    Some(r) if r.is_registered => ContactCheck {
                        phone: phone.digits().to_owned(),
                        on_whatsapp: true,
                        jid: Some(phone.jid()),
                        lid: r.lid.as_ref().map(ToString::to_string),
                        business: r.is_business,
                    },
                    _ => ContactCheck {
                        phone: phone.digits().to_owned(),
                        on_whatsapp: false,
                        jid: None,
                        lid: None,
                        business: false,
                    },
                };
                answers.insert(phone.digits().to_owned(), (check, now));
            }
        }
        let answers = self.answers.lock();
        Ok(phones
            .iter()
            .filter_map(|p| answers.get(p.digits()).map(|(c, _)| c.clone()))
            .collect())
    }
}
