//! The company registry: one record per company (its token hash, creation
//! time, webhook settings), flushed on every write so that an acknowledged
//! create or change survives a crash. Records are sealed with the store key,
//! if any (they hold the webhook signing secret).

use prost::Message as _;

use super::{Store, StoreError, decode, keys, record_company, tree};
use crate::domain::CompanyId;
use crate::pb;

impl Store {
    /// Inserts `record` unless a record for its company exists (atomic
    /// compare-and-swap). Returns whether it was inserted.
    pub fn insert_company_if_absent(&self, record: &pb::CompanyRecord) -> Result<bool, StoreError> {
        let company = record_company(record)?;
        let inserted = self
            .trees
            .registry
            .compare_and_swap(
                keys::company_row(&company),
                None::<&[u8]>,
                Some(self.seal_record(&company, record)?),
            )?
            .is_ok();
        if inserted {
            self.flush_now()?;
        }
        Ok(inserted)
    }

    /// Inserts or replaces `record`.
    pub fn put_company(&self, record: &pb::CompanyRecord) -> Result<(), StoreError> {
        let company = record_company(record)?;
        let value = self.seal_record(&company, record)?;
        self.trees
            .registry
            .insert(keys::company_row(&company), value)?;
        self.flush_now()
    }

    /// The registry record of `company`, if any.
    pub fn get_company(
        &self,
        company: &CompanyId,
    ) -> Result<Option<pb::CompanyRecord>, StoreError> {
        let key = keys::company_row(company);
        self.trees
            .registry
            .get(&key)?
            .map(|bytes| self.open_record(company.as_str(), &key, &bytes))
            .transpose()
    }

    /// Every readable registry record, ordered by company id.
    ///
    /// An unreadable record is logged (once per call) and skipped, so that one
    /// company's damaged record does not stop every other company from
    /// starting; [`Store::get_company`] reports it as [`StoreError::Corrupt`].
    pub fn list_companies(&self) -> Result<Vec<pb::CompanyRecord>, StoreError> {
        let mut records = Vec::new();
        for row in &self.trees.registry {
            let (key, value) = row?;
            let company = String::from_utf8_lossy(&key);
            match self.open_record(&company, &key, &value) {
                Ok(record) => records.push(record),
                Err(error) => {
                    tracing::error!(company.id = %company, %error, "skipping unreadable registry record");
                }
            }
        }
        Ok(records)
    }

    /// Changes `company`'s record with `change` and returns the new record,
    /// only while the record exists: a company deleted meanwhile is not
    /// brought back (`None`). A compare-and-swap loop, so a concurrent change
    /// of the same record is never lost; flushed before it returns.
    pub fn update_company(
        &self,
        company: &CompanyId,
        change: impl Fn(&mut pb::CompanyRecord),
    ) -> Result<Option<pb::CompanyRecord>, StoreError> {
        let key = keys::company_row(company);
        loop {
            let Some(current) = self.trees.registry.get(&key)? else {
                return Ok(None);
            };
            let mut record = self.open_record(company.as_str(), &key, &current)?;
            change(&mut record);
            if record_company(&record)? != *company {
                return Err(StoreError::InvalidRecord {
                    what: "registry record",
                    detail: "a change may not move a record to another company".to_owned(),
                });
            }
            let swapped = self.trees.registry.compare_and_swap(
                &key,
                Some(&current),
                Some(self.seal_record(company, &record)?),
            )?;
            if swapped.is_ok() {
                self.flush_now()?;
                return Ok(Some(record));
            }
        }
    }

    /// `record` encoded and sealed for its row.
    fn seal_record(
        &self,
        company: &CompanyId,
        record: &pb::CompanyRecord,
    ) -> Result<Vec<u8>, StoreError> {
        let key = keys::company_row(company);
        Ok(self
            .sealer
            .seal_vec(tree::REGISTRY, &key, record.encode_to_vec())?)
    }

    /// The record stored as `value` under `key`, opened and decoded.
    fn open_record(
        &self,
        company: &str,
        key: &[u8],
        value: &[u8],
    ) -> Result<pb::CompanyRecord, StoreError> {
        let clear = self
            .sealer
            .open(tree::REGISTRY, key, value)
            .map_err(|error| StoreError::corrupt(company, "registry record", error))?;
        decode(company, "registry record", &clear)
    }
}
