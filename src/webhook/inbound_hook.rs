//! whatsapp-rust's inbound durability hook, per company: a batch of inbound
//! messages is committed to the outbox (and durable) before the client
//! acknowledges it to WhatsApp (DESIGN.md invariant 5).

use std::sync::Arc;

use whatsapp_rust::{Client, InboundDurabilityHook};

use crate::domain::CompanyId;
use crate::pool::InboundHookFactory;
use crate::store::outbox::NewEvent;

use super::{Webhooks, event};

impl InboundHookFactory for Webhooks {
    fn hook_for(&self, company: &CompanyId) -> Arc<dyn InboundDurabilityHook> {
        Arc::new(OutboxHook {
            webhooks: self.clone(),
            company: company.clone(),
        })
    }
}

/// One company's inbound durability hook: commits the batch to the outbox
/// and returns only once it is durable.
struct OutboxHook {
    webhooks: Webhooks,
    company: CompanyId,
}

#[async_trait::async_trait]
impl InboundDurabilityHook for OutboxHook {
    async fn on_messages(
        &self,
        _client: Arc<Client>,
        batch: &[whatsapp_rust::types::durability_hook::InboundMessage],
    ) -> anyhow::Result<()> {
        let events: Vec<NewEvent> = batch
            .iter()
            .filter_map(|m| event::message_event(&self.company, m))
            .collect();
        // What the media endpoint needs, written before the commit whose
        // flush makes it durable with the event.
        if let Err(error) = self.webhooks.remember_media(&self.company, &events) {
            tracing::error!(company.id = %self.company, %error, "cannot store inbound media references; the messages stay unacknowledged");
            return Err(error.into());
        }
        match self.webhooks.commit(&self.company, events).await {
            Ok(_) => Ok(()),
            Err(error) => {
                // Not acked: WhatsApp redelivers and the hook runs again.
                tracing::error!(company.id = %self.company, %error, messages = batch.len(), "cannot commit inbound messages; they stay unacknowledged");
                Err(error.into())
            }
        }
    }
}
