//! The kernel side of the table: batches go through [`minik_shared::nft`] (one `nft -j -f -`
//! per batch, one transaction), the table is read back for a full resync, and a cheap
//! drift check tells when someone deleted the table (or flushed the ruleset).
//!
//! Cost matters with thousands of Services: nft 1.0's `list table`, `list sets` and even
//! `list chain` fetch every rule of the table first (seconds at 10 000 Services), while
//! `list chains` (names only) and `list map` of one map do not. So the chain names come
//! from `list chains`, the (affinity) set names from the full listing only when they may
//! be needed, and the drift check lists one small map.

use minik_shared::nft::{self, NftError};
use serde_json::Value;

use crate::batch::Existing;
use crate::table::NO_ENDPOINT_NODEPORTS;

/// Applies one batch (one transaction).
pub fn apply(batch: Vec<Value>) -> Result<(), NftError> {
    nft::apply(batch)
}

/// The chains of the table (cheap); sets are not read (`sets_read` is false).
pub fn existing_chains(table: &str) -> Result<Existing, NftError> {
    let objects = nft::list(&["list", "chains", "ip"])?;
    let mine: Vec<Value> = objects
        .into_iter()
        .filter(|o| o.get("chain").and_then(|c| c.get("table")).and_then(Value::as_str) == Some(table))
        .collect();
    let mut e = Existing::from_listing(&mine);
    e.table = !e.chains.is_empty() || table_exists(table)?;
    Ok(e)
}

/// Everything in the table: chains and sets (expensive with many rules).
pub fn existing(table: &str) -> Result<Existing, NftError> {
    match nft::list(&["list", "table", "ip", table]) {
        Ok(objects) => Ok(Existing::from_listing(&objects)),
        Err(e) if e.is_not_found() => Ok(Existing::default()),
        Err(e) => Err(e),
    }
}

fn table_exists(table: &str) -> Result<bool, NftError> {
    match nft::list(&["list", "map", "ip", table, NO_ENDPOINT_NODEPORTS]) {
        Ok(_) => Ok(true),
        Err(e) if e.is_not_found() => Ok(false),
        Err(e) => Err(e),
    }
}

/// Whether the table is still there (with its maps): lists one small map, whatever the
/// number of Services.
pub fn intact(table: &str) -> Result<bool, NftError> {
    table_exists(table)
}
