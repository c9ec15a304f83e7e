//! [`DeviceStore`] on sled: the company's whatsapp-rust `Device` row, flushed
//! to disk when its own JID changes (pairing), and its decoding.

use async_trait::async_trait;
use wacore::store::Device;
use wacore::store::error::Result as WaResult;
use wacore::store::traits::DeviceStore;

use crate::domain::CompanyId;
use crate::store::keys::company_row;
use crate::store::{Store, StoreError, tree};

use super::{Result, SledBackend};

#[async_trait]
impl DeviceStore for SledBackend {
    /// Saves the device. When its own JID differs from the last one this view
    /// flushed (i.e. the device was just paired), the write is flushed to disk
    /// before returning: pairing credentials must survive a crash. Other saves
    /// (push name, counters) ride sled's background flush.
    async fn save(&self, device: &Device) -> WaResult<()> {
        let value = self.device_value(device)?;
        self.device
            .insert(company_row(&self.company), value)
            .map_err(StoreError::from)?;
        let pn = device.pn.as_ref().map(ToString::to_string);
        if *self.flushed_pn.lock() != pn {
            self.durable.flush().await?;
            *self.flushed_pn.lock() = pn;
        }
        Ok(())
    }

    async fn load(&self) -> WaResult<Option<Device>> {
        let key = company_row(&self.company);
        let Some(bytes) = self.device.get(&key).map_err(StoreError::from)? else {
            return Ok(None);
        };
        let clear = self
            .sealer
            .open(tree::DEVICE, &key, &bytes)
            .map_err(|error| self.corrupt("device credentials", error))?;
        Ok(Some(decode_device(&self.company, &clear)?))
    }

    async fn exists(&self) -> WaResult<bool> {
        Ok(self
            .device
            .contains_key(company_row(&self.company))
            .map_err(StoreError::from)?)
    }

    /// Materializes a fresh (unpaired) device unless one exists. There is one
    /// device per company, so its id is always 1.
    async fn create(&self) -> WaResult<i32> {
        let value = self.device_value(&Device::new())?;
        // compare-and-swap: a concurrent create never replaces a stored device.
        let _ = self
            .device
            .compare_and_swap(company_row(&self.company), None::<&[u8]>, Some(value))
            .map_err(StoreError::from)?;
        Ok(1)
    }
}

impl SledBackend {
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
