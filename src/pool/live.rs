//! The live whatsapp-rust client of each company, for work that needs the
//! company's connection but not its actor's queue (media downloads: minutes
//! of HTTP that must not hold up sends and lifecycle commands).
//!
//! The actor registers a client when it builds one and removes it when it
//! stops it, so a download never reaches a client of a stopped session.
//! The lock guards the map only and is never held across an `.await`.

use std::collections::HashMap;
use std::sync::Arc;

use parking_lot::RwLock;
use whatsapp_rust::Client;

use crate::domain::CompanyId;

/// Company → its current client. Cheap to clone (shared map); its contents
/// are reachable only inside the crate.
#[derive(Clone, Default)]
pub struct LiveClients(Arc<RwLock<HashMap<CompanyId, Arc<Client>>>>);

impl LiveClients {
    /// `client` is now `company`'s client.
    pub(crate) fn set(&self, company: &CompanyId, client: Arc<Client>) {
        self.0.write().insert(company.clone(), client);
    }

    /// `company` has no client any more.
    pub(crate) fn remove(&self, company: &CompanyId) {
        self.0.write().remove(company);
    }

    /// `company`'s client, if it has one.
    pub(crate) fn get(&self, company: &CompanyId) -> Option<Arc<Client>> {
        self.0.read().get(company).cloned()
    }
}
