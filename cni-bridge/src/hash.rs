//! FNV-1a (32 bit): short, stable names derived from IDs (host veth names, nftables
//! object suffixes). Not for security; only for naming.

/// FNV-1a over `parts`, with a zero byte between them.
pub fn fnv1a32(parts: &[&[u8]]) -> u32 {
    let mut h: u32 = 0x811c_9dc5;
    for (i, part) in parts.iter().enumerate() {
        if i > 0 {
            h ^= 0; // the separator byte, 0
            h = h.wrapping_mul(0x0100_0193);
        }
        for b in part.iter() {
            h ^= u32::from(*b);
            h = h.wrapping_mul(0x0100_0193);
        }
    }
    h
}
