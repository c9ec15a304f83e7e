//! [`DeviceStore`]: the company's whatsapp-rust `Device` row, durable before
//! `save` returns when its own JID changes (pairing), and its decoding.

use async_trait::async_trait;
use wacore::store::Device;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::DeviceStore;

use crate::domain::CompanyId;
use crate::store::keys::company_row;
use crate::store::{Store, StoreError, WaRows, tree};

use super::{Result, RowBackend};

#[async_trait]
impl<R: WaRows> DeviceStore for RowBackend<R> {
    /// Saves the device. When its own JID differs from the last one this view
    /// made durable (i.e. the device was just paired), the write is durable
    /// before returning: pairing credentials must survive a crash. Other
    /// saves (push name, counters) ride the store's own durability (sled's
    /// background flush).
    async fn save(&self, device: &Device) -> WaResult<()> {
        let value = self.device_value(device)?;
        let pn = device.pn.as_ref().map(ToString::to_string);
        let durable = *self.flushed_pn.lock() != pn;
        self.rows.put_device(value, durable).await?;
        if durable {
            *self.flushed_pn.lock() = pn;
        }
        Ok(())
    }

    async fn load(&self) -> WaResult<Option<Device>> {
        let Some(bytes) = self.rows.device().await? else {
            return Ok(None);
        };
        let clear = self
            .sealer
            .open(tree::DEVICE, &company_row(&self.company), &bytes)
            .map_err(|error| self.corrupt("device credentials", error))?;
        Ok(Some(decode_device(&self.company, &clear)?))
    }

    async fn exists(&self) -> WaResult<bool> {
        Ok(self.rows.device_exists().await?)
    }

    /// Materializes a fresh (unpaired) device unless one exists. There is one
    /// device per company, so its id is always 1.
    async fn create(&self) -> WaResult<i32> {
        let value = self.device_value(&Device::new())?;
        self.rows.create_device(value).await?;
        Ok(1)
    }
}

impl<R: WaRows> RowBackend<R> {
    /// `device` as its row stores it: JSON, sealed with the store key if any.
    fn device_value(&self, device: &Device) -> Result<Vec<u8>> {
        let json = self.to_json("device", device)?;
        Ok(self
            .sealer
            .seal_vec(tree::DEVICE, &company_row(&self.company), json)?)
    }
}

/// Decodes a stored (clear) whatsapp-rust `Device` of `company`.
pub(crate) fn decode_device(company: &CompanyId, bytes: &[u8]) -> Result<Device> {
    serde_json::from_slice(bytes)
        .map_err(|error| StoreError::corrupt(company.as_str(), "device credentials", error))
}

/// Whether `company` has a stored device with its own JID, i.e. it is linked
/// to a WhatsApp account (DESIGN.md invariant 2). A device that was created
/// but never paired is not linked.
pub fn is_linked(store: &Store, company: &CompanyId) -> Result<bool> {
    match store.device_row(company)? {
        None => Ok(false),
        Some(bytes) => Ok(decode_device(company, &bytes)?.pn.is_some()),
    }
}
