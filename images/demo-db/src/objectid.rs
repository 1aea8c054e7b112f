//! Mongo-style ObjectIds: 4 bytes of seconds since the epoch, 5 random bytes fixed per
//! process, a 3-byte counter; shown as 24 hex digits.

use std::collections::hash_map::RandomState;
use std::hash::{BuildHasher, Hasher};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::OnceLock;
use std::time::{SystemTime, UNIX_EPOCH};

static COUNTER: AtomicU32 = AtomicU32::new(0);
static PROCESS: OnceLock<([u8; 5], u32)> = OnceLock::new();

/// Per-process random bytes and counter start. `RandomState` is seeded from the OS's
/// randomness, which is all this needs.
fn process_bits() -> ([u8; 5], u32) {
    *PROCESS.get_or_init(|| {
        let mut h = RandomState::new().build_hasher();
        h.write_u32(std::process::id());
        let r = h.finish().to_le_bytes();
        let start = u32::from_le_bytes([r[5], r[6], r[7], 0]);
        COUNTER.store(start, Ordering::Relaxed);
        ([r[0], r[1], r[2], r[3], r[4]], start)
    })
}

/// A new ObjectId as 24 lowercase hex digits.
pub fn new_object_id() -> String {
    let (random, _) = process_bits();
    let secs = SystemTime::now().duration_since(UNIX_EPOCH).map(|d| d.as_secs()).unwrap_or(0) as u32;
    let count = COUNTER.fetch_add(1, Ordering::Relaxed) & 0x00ff_ffff;
    let mut bytes = [0u8; 12];
    bytes[..4].copy_from_slice(&secs.to_be_bytes());
    bytes[4..9].copy_from_slice(&random);
    bytes[9..].copy_from_slice(&count.to_be_bytes()[1..]);
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn ids_are_hex_and_distinct() {
        let a = new_object_id();
        let b = new_object_id();
        assert_eq!(a.len(), 24);
        assert!(a.chars().all(|c| c.is_ascii_hexdigit()));
        assert_ne!(a, b);
        assert_eq!(a[8..18], b[8..18], "same process bytes");
    }
}
