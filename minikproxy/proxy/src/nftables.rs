//! The kernel side of the table: batches go through [`minik_shared::nft`] (one `nft -j -f -`
//! per batch, one transaction), the table is read back for a full resync, and a cheap
//! drift check (the `services` chain still there with its rules) tells when someone
//! deleted or flushed it.

use minik_shared::nft::{self, NftError};
use serde_json::Value;

use crate::batch::Existing;
use crate::table::SERVICES_CHAIN;

/// Applies one batch (one transaction).
pub fn apply(batch: Vec<Value>) -> Result<(), NftError> {
    nft::apply(batch)
}

/// What the table holds now (empty when it does not exist).
pub fn existing(table: &str) -> Result<Existing, NftError> {
    match nft::list(&["list", "table", "ip", table]) {
        Ok(objects) => Ok(Existing::from_listing(&objects)),
        Err(e) if e.is_not_found() => Ok(Existing::default()),
        Err(e) => Err(e),
    }
}

/// Whether the table still looks as minikproxy left it: its `services` chain exists and
/// holds its two rules. Lists one small chain, whatever the number of Services.
pub fn intact(table: &str) -> Result<bool, NftError> {
    match nft::list(&["list", "chain", "ip", table, SERVICES_CHAIN]) {
        Ok(objects) => Ok(objects.iter().filter(|o| o.get("rule").is_some()).count() == 2),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}
