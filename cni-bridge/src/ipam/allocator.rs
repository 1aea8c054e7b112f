//! The allocation strategy, host-local's, over any [`Store`]: for each range set, start
//! right after the set's last reserved IP, walk its ranges in order (round robin), wrap
//! around, and take the first address that is neither the gateway, the network or
//! broadcast address, nor taken. The store is listed once per operation; the walk checks
//! candidates against that list in memory.
//!
//! Every operation holds the store's lock from its first read to its last write.

use std::collections::HashSet;
use std::net::IpAddr;

use ipnet::IpNet;
use minik_shared::cni::{Attachment, CniError};

use super::addr;
use super::config::{IpamConfig, Range, RangeSet};
use super::store::{owned_by, Entry, Holder, Store};
use super::Allocation;

/// Allocates from one network's range sets into a [`Store`].
#[derive(Debug)]
pub struct Allocator<'a, S: Store> {
    network: &'a str,
    config: &'a IpamConfig,
    store: &'a S,
}

/// State of one allocate call: what is taken and what this call reserved so far.
struct Pass<'e> {
    entries: &'e [Entry],
    mine: Vec<IpAddr>,
    taken: HashSet<IpAddr>,
    fresh: Vec<IpAddr>,
}

impl<'a, S: Store> Allocator<'a, S> {
    /// An allocator for network `network` with `config`'s range sets over `store`.
    pub fn new(network: &'a str, config: &'a IpamConfig, store: &'a S) -> Self {
        Allocator { network, config, store }
    }

    /// One address per range set for `owner`, in range-set order. `requested` names
    /// specific addresses (at most one per range set); sets without one get the next
    /// free address. Idempotent: addresses `owner` already holds are returned again. On
    /// failure nothing this call reserved stays reserved.
    pub fn allocate(&self, owner: &Attachment, requested: &[IpAddr]) -> Result<Vec<Allocation>, CniError> {
        let wanted = self.requested_per_set(requested)?;
        let _lock = self.store.lock()?;
        let entries = self.store.list()?;
        let mut pass = Pass {
            entries: &entries,
            mine: owned_by(&entries, owner),
            taken: entries.iter().map(|e| e.ip).collect(),
            fresh: Vec::new(),
        };
        let result = self.allocate_sets(owner, &wanted, &mut pass).and_then(|out| {
            self.store.flush()?;
            Ok(out)
        });
        if result.is_err() {
            self.roll_back(&pass.fresh);
        }
        result
    }

    /// Frees every address `owner` holds and returns them; nothing held is not an error.
    pub fn release(&self, owner: &Attachment) -> Result<Vec<IpAddr>, CniError> {
        let _lock = self.store.lock()?;
        let freed = self.store.release(owner)?;
        if !freed.is_empty() {
            self.store.flush()?;
        }
        Ok(freed)
    }

    /// The addresses `owner` holds, sorted.
    pub fn lookup(&self, owner: &Attachment) -> Result<Vec<IpAddr>, CniError> {
        let _lock = self.store.lock()?;
        self.store.lookup(owner)
    }

    /// Frees every address whose holder is not in `valid` (legacy files are kept if their
    /// container has any valid attachment; unreadable files are freed) and returns them.
    pub fn gc(&self, valid: &[Attachment]) -> Result<Vec<IpAddr>, CniError> {
        let _lock = self.store.lock()?;
        let valid: HashSet<&Attachment> = valid.iter().collect();
        let mut freed = Vec::new();
        for entry in self.store.list()? {
            let keep = match &entry.holder {
                Holder::Attachment(a) => valid.contains(a),
                Holder::Legacy(id) => valid.iter().any(|v| v.container_id == *id),
                Holder::Unknown => false,
            };
            if !keep && self.store.release_ip(entry.ip)? {
                tracing::info!(network = self.network, ip = %entry.ip, holder = %entry.holder, "GC released an address");
                freed.push(entry.ip);
            }
        }
        if !freed.is_empty() {
            self.store.flush()?;
        }
        Ok(freed)
    }

    /// How many addresses each range set still has free, in range-set order.
    pub fn free_per_set(&self) -> Result<Vec<u128>, CniError> {
        let _lock = self.store.lock()?;
        let taken: HashSet<IpAddr> = self.store.list()?.into_iter().map(|e| e.ip).collect();
        Ok(self.config.range_sets.iter().map(|set| set.capacity().saturating_sub(in_use(set, &taken))).collect())
    }

    /// The not-available error for a full range set.
    pub fn exhausted(&self, index: usize, set: &RangeSet, used: u128) -> CniError {
        CniError::not_available(format!(
            "no free address in range set {index} ({set}) of network {:?}: {used} of {} in use; free some (DEL or GC) or widen the range",
            self.network,
            set.capacity()
        ))
    }

    fn allocate_sets(&self, owner: &Attachment, wanted: &[Option<IpAddr>], pass: &mut Pass<'_>) -> Result<Vec<Allocation>, CniError> {
        let mut out = Vec::with_capacity(wanted.len());
        for (index, (set, want)) in self.config.range_sets.iter().zip(wanted).enumerate() {
            out.push(self.allocate_in_set(index, set, owner, *want, pass)?);
        }
        Ok(out)
    }

    fn allocate_in_set(
        &self,
        index: usize,
        set: &RangeSet,
        owner: &Attachment,
        want: Option<IpAddr>,
        pass: &mut Pass<'_>,
    ) -> Result<Allocation, CniError> {
        let held = pass.mine.iter().copied().find(|ip| set.contains(*ip));
        let ip = match (want, held) {
            (None, Some(ip)) => ip,
            (Some(w), Some(ip)) if w == ip => ip,
            (Some(w), Some(ip)) => {
                return Err(CniError::not_available(format!(
                    "container {} (ifname {}) already holds {ip} in range set {index} of network {:?}, so it cannot take the requested {w}; DEL it first",
                    owner.container_id, owner.ifname, self.network
                )))
            }
            (Some(w), None) => self.reserve_requested(w, owner, pass)?,
            (None, None) => self.reserve_next(index, set, owner, pass)?,
        };
        if held.is_none() {
            pass.fresh.push(ip);
            pass.taken.insert(ip);
            self.store.set_last_reserved(index, ip)?;
        }
        allocation(index, set, ip)
    }

    fn reserve_requested(&self, ip: IpAddr, owner: &Attachment, pass: &Pass<'_>) -> Result<IpAddr, CniError> {
        if !pass.taken.contains(&ip) && self.store.reserve(ip, owner)? {
            return Ok(ip);
        }
        let holder = pass.entries.iter().find(|e| e.ip == ip).map_or("another process".to_string(), |e| e.holder.to_string());
        Err(CniError::not_available(format!(
            "requested IP {ip} of network {:?} is already allocated to {holder}; request a free address or release it first",
            self.network
        )))
    }

    fn reserve_next(&self, index: usize, set: &RangeSet, owner: &Attachment, pass: &mut Pass<'_>) -> Result<IpAddr, CniError> {
        let used = in_use(set, &pass.taken);
        if used >= set.capacity() {
            return Err(self.exhausted(index, set, used));
        }
        let last = self.store.last_reserved(index).unwrap_or_else(|e| {
            tracing::warn!(network = self.network, range_set = index, error = %e, "ignoring the last reserved IP");
            None
        });
        for (range, ip) in walk(set, last) {
            if !range.is_allocatable(ip) || pass.taken.contains(&ip) {
                continue;
            }
            if self.store.reserve(ip, owner)? {
                return Ok(ip);
            }
            // Taken behind our back (a writer that ignores the lock): skip it.
            pass.taken.insert(ip);
        }
        Err(self.exhausted(index, set, in_use(set, &pass.taken)))
    }

    /// The requested address of each range set, checked before anything is reserved.
    fn requested_per_set(&self, requested: &[IpAddr]) -> Result<Vec<Option<IpAddr>>, CniError> {
        let sets = &self.config.range_sets;
        let mut per_set: Vec<Option<IpAddr>> = vec![None; sets.len()];
        for ip in requested.iter().map(|ip| ip.to_canonical()) {
            let Some((index, range)) = sets.iter().enumerate().find_map(|(i, s)| s.range_for(ip).map(|r| (i, r))) else {
                let all: Vec<String> = sets.iter().map(ToString::to_string).collect();
                return Err(CniError::invalid_config(format!(
                    "requested IP {ip} is outside every range of network {:?} ({}); request an address inside a range",
                    self.network,
                    all.join("; ")
                )));
            };
            if !range.is_allocatable(ip) {
                return Err(CniError::invalid_config(format!(
                    "requested IP {ip} is the gateway, network or broadcast address of range {range} (subnet {}) of network {:?} and is never handed out",
                    range.subnet, self.network
                )));
            }
            match per_set[index] {
                Some(prev) if prev != ip => {
                    return Err(CniError::invalid_config(format!(
                        "requested IPs {prev} and {ip} are both in range set {index} of network {:?}; request at most one address per range set",
                        self.network
                    )))
                }
                _ => per_set[index] = Some(ip),
            }
        }
        Ok(per_set)
    }

    /// Frees what a failed allocate reserved; failures are logged, the caller reports the first error.
    fn roll_back(&self, fresh: &[IpAddr]) {
        for ip in fresh {
            if let Err(e) = self.store.release_ip(*ip) {
                tracing::warn!(network = self.network, %ip, error = %e, "cannot release an address after a failed allocation; GC will free it");
            }
        }
        if let Err(e) = self.store.flush() {
            tracing::warn!(network = self.network, error = %e, "cannot sync the IPAM store after a failed allocation");
        }
    }
}

/// How many allocatable addresses of `set` are taken.
fn in_use(set: &RangeSet, taken: &HashSet<IpAddr>) -> u128 {
    taken.iter().filter(|ip| set.is_allocatable(**ip)).count() as u128
}

fn allocation(range_set: usize, set: &RangeSet, ip: IpAddr) -> Result<Allocation, CniError> {
    let range = set.range_for(ip).ok_or_else(|| {
        CniError::internal(format!("allocated {ip} lies outside range set {range_set} ({set}); this is a bug"))
    })?;
    let address = IpNet::new(ip, range.subnet.prefix_len())
        .map_err(|e| CniError::internal(format!("cannot form {ip}/{}", range.subnet.prefix_len())).with_details(e))?;
    Ok(Allocation { address, gateway: Some(range.gateway), range_set })
}

/// The candidates of `set` in host-local's order: from just after `last` (if it lies in a
/// range of the set; else from the first range's start) through the remaining ranges,
/// wrapping around, ending with `last` itself.
fn walk(set: &RangeSet, last: Option<IpAddr>) -> impl Iterator<Item = (&Range, IpAddr)> + '_ {
    let n = set.ranges.len();
    let bounds = |k: usize| (addr::to_u128(set.ranges[k].range_start), addr::to_u128(set.ranges[k].range_end));
    let at = last.and_then(|ip| set.ranges.iter().position(|r| r.contains(ip)).map(|k| (k, addr::to_u128(ip))));
    let mut segments: Vec<(usize, u128, u128)> = Vec::with_capacity(n + 1);
    match at {
        None => segments.extend((0..n).map(|k| (k, bounds(k).0, bounds(k).1))),
        Some((k, at)) => {
            let (start, end) = bounds(k);
            if at < end {
                segments.push((k, at + 1, end));
            }
            segments.extend((1..n).map(|d| (k + d) % n).map(|r| (r, bounds(r).0, bounds(r).1)));
            segments.push((k, start, at));
        }
    }
    segments.into_iter().flat_map(move |(k, lo, hi)| {
        let range = &set.ranges[k];
        (lo..=hi).map(move |v| (range, addr::from_u128(v, range.range_start)))
    })
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::collections::{BTreeMap, HashMap};
    use std::sync::{Mutex, MutexGuard};

    use minik_shared::cni::codes;
    use serde_json::json;

    /// An in-memory store for testing the strategy alone.
    #[derive(Default)]
    struct MemStore {
        lock: Mutex<()>,
        ips: Mutex<BTreeMap<IpAddr, Holder>>,
        last: Mutex<HashMap<usize, IpAddr>>,
        fail_reserve_of: Option<IpAddr>,
    }

    impl Store for MemStore {
        type Guard<'a> = MutexGuard<'a, ()>;
        fn lock(&self) -> Result<MutexGuard<'_, ()>, CniError> {
            Ok(self.lock.lock().unwrap())
        }
        fn list(&self) -> Result<Vec<Entry>, CniError> {
            Ok(self.ips.lock().unwrap().iter().map(|(ip, h)| Entry { ip: *ip, holder: h.clone() }).collect())
        }
        fn reserve(&self, ip: IpAddr, owner: &Attachment) -> Result<bool, CniError> {
            if self.fail_reserve_of == Some(ip) {
                return Err(CniError::io("disk full"));
            }
            let mut ips = self.ips.lock().unwrap();
            if ips.contains_key(&ip) {
                return Ok(false);
            }
            ips.insert(ip, Holder::Attachment(owner.clone()));
            Ok(true)
        }
        fn release_ip(&self, ip: IpAddr) -> Result<bool, CniError> {
            Ok(self.ips.lock().unwrap().remove(&ip).is_some())
        }
        fn last_reserved(&self, range_set: usize) -> Result<Option<IpAddr>, CniError> {
            Ok(self.last.lock().unwrap().get(&range_set).copied())
        }
        fn set_last_reserved(&self, range_set: usize, ip: IpAddr) -> Result<(), CniError> {
            self.last.lock().unwrap().insert(range_set, ip);
            Ok(())
        }
        fn flush(&self) -> Result<(), CniError> {
            Ok(())
        }
        fn check_writable(&self) -> Result<(), CniError> {
            Ok(())
        }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn who(id: &str) -> Attachment {
        Attachment { container_id: id.into(), ifname: "eth0".into() }
    }

    fn config(ranges: serde_json::Value) -> IpamConfig {
        IpamConfig::from_value(&json!({ "ranges": ranges })).unwrap()
    }

    fn addrs(a: &[Allocation]) -> Vec<String> {
        a.iter().map(|a| a.address.to_string()).collect()
    }

    #[test]
    fn sequential_after_last_reserved_and_wraps() {
        let cfg = config(json!([[{"subnet":"10.0.0.0/29"}]])); // .1 gateway, .2-.6 usable
        let store = MemStore::default();
        let a = Allocator::new("n", &cfg, &store);
        let got: Vec<String> = ["a", "b", "c"].iter().map(|c| addrs(&a.allocate(&who(c), &[]).unwrap())[0].clone()).collect();
        assert_eq!(got, ["10.0.0.2/29", "10.0.0.3/29", "10.0.0.4/29"]);
        a.release(&who("a")).unwrap();
        // Round robin: .2 is free again, but the walk goes on after the last reserved .4.
        assert_eq!(addrs(&a.allocate(&who("d"), &[]).unwrap()), ["10.0.0.5/29"]);
        assert_eq!(addrs(&a.allocate(&who("e"), &[]).unwrap()), ["10.0.0.6/29"]);
        // The end of the range wraps to its start.
        assert_eq!(addrs(&a.allocate(&who("f"), &[]).unwrap()), ["10.0.0.2/29"]);
        let e = a.allocate(&who("g"), &[]).err().unwrap();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert_eq!(
            e.msg,
            "no free address in range set 0 (10.0.0.1-10.0.0.6) of network \"n\": 5 of 5 in use; free some (DEL or GC) or widen the range"
        );
    }

    #[test]
    fn walks_ranges_round_robin_and_skips_the_gateway() {
        let cfg = config(json!([[
            {"subnet":"10.0.0.0/24","rangeStart":"10.0.0.10","rangeEnd":"10.0.0.11","gateway":"10.0.0.11"},
            {"subnet":"10.0.1.0/24","rangeStart":"10.0.1.1","rangeEnd":"10.0.1.3"}
        ]]));
        let store = MemStore::default();
        let a = Allocator::new("n", &cfg, &store);
        let got: Vec<String> = (0..3).map(|i| addrs(&a.allocate(&who(&format!("c{i}")), &[]).unwrap())[0].clone()).collect();
        assert_eq!(got, ["10.0.0.10/24", "10.0.1.2/24", "10.0.1.3/24"]);
        assert_eq!(a.free_per_set().unwrap(), [0]);
    }

    #[test]
    fn last_reserved_outside_the_set_restarts_at_the_start() {
        let cfg = config(json!([[{"subnet":"10.0.0.0/24"}]]));
        let store = MemStore::default();
        store.set_last_reserved(0, ip("192.168.0.9")).unwrap();
        let a = Allocator::new("n", &cfg, &store);
        assert_eq!(addrs(&a.allocate(&who("a"), &[]).unwrap()), ["10.0.0.2/24"]);
        store.set_last_reserved(0, ip("10.0.0.200")).unwrap();
        assert_eq!(addrs(&a.allocate(&who("b"), &[]).unwrap()), ["10.0.0.201/24"]);
    }

    #[test]
    fn failure_in_a_later_set_releases_this_calls_reservations() {
        let cfg = config(json!([[{"subnet":"10.0.0.0/24"}],[{"subnet":"fd00::/120"}]]));
        let store = MemStore { fail_reserve_of: Some(ip("fd00::2")), ..MemStore::default() };
        let a = Allocator::new("n", &cfg, &store);
        let e = a.allocate(&who("a"), &[]).err().unwrap();
        assert_eq!(e.msg, "disk full");
        assert!(store.list().unwrap().is_empty());
    }

    #[test]
    fn requested_addresses() {
        let cfg = config(json!([[{"subnet":"10.0.0.0/24","rangeEnd":"10.0.0.100"}],[{"subnet":"fd00::/120"}]]));
        let store = MemStore::default();
        let a = Allocator::new("n", &cfg, &store);
        let got = a.allocate(&who("a"), &[ip("10.0.0.50")]).unwrap();
        assert_eq!(addrs(&got), ["10.0.0.50/24", "fd00::2/120"]);
        // Asking again for what it holds is fine; asking for another one in the same set is not.
        assert_eq!(addrs(&a.allocate(&who("a"), &[ip("10.0.0.50")]).unwrap()), ["10.0.0.50/24", "fd00::2/120"]);
        assert_eq!(a.allocate(&who("a"), &[ip("10.0.0.51")]).err().map(|e| e.code), Some(codes::NOT_AVAILABLE));
        let e = a.allocate(&who("b"), &[ip("10.0.0.50")]).err().unwrap();
        assert_eq!((e.code, e.msg.contains("container a (ifname eth0)")), (codes::NOT_AVAILABLE, true), "{}", e.msg);
        let e = a.allocate(&who("b"), &[ip("10.0.0.150")]).err().unwrap();
        assert!(e.msg.starts_with("requested IP 10.0.0.150 is outside every range"), "{}", e.msg);
        let e = a.allocate(&who("b"), &[ip("10.0.0.1")]).err().unwrap();
        assert!(e.msg.contains("gateway"), "{}", e.msg);
        let e = a.allocate(&who("b"), &[ip("10.0.0.7"), ip("10.0.0.8")]).err().unwrap();
        assert!(e.msg.contains("both in range set 0"), "{}", e.msg);
        // Nothing of b's failed attempts stayed reserved.
        assert_eq!(a.lookup(&who("b")).unwrap(), Vec::<IpAddr>::new());
        let both = a.allocate(&who("b"), &[ip("fd00::80"), ip("10.0.0.7")]).unwrap();
        assert_eq!(addrs(&both), ["10.0.0.7/24", "fd00::80/120"]);
    }

    #[test]
    fn walk_order() {
        let cfg = config(json!([[
            {"subnet":"10.0.0.0/24","rangeStart":"10.0.0.1","rangeEnd":"10.0.0.3"},
            {"subnet":"10.0.1.0/24","rangeStart":"10.0.1.5","rangeEnd":"10.0.1.6"}
        ]]));
        let set = &cfg.range_sets[0];
        let order = |last: Option<IpAddr>| walk(set, last).map(|(_, ip)| ip.to_string()).collect::<Vec<_>>();
        assert_eq!(order(None), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.5", "10.0.1.6"]);
        assert_eq!(order(Some(ip("10.0.0.2"))), ["10.0.0.3", "10.0.1.5", "10.0.1.6", "10.0.0.1", "10.0.0.2"]);
        assert_eq!(order(Some(ip("10.0.1.6"))), ["10.0.0.1", "10.0.0.2", "10.0.0.3", "10.0.1.5", "10.0.1.6"]);
    }

    #[test]
    fn huge_v6_ranges_do_not_overflow() {
        let cfg = config(json!([[{"subnet":"::/0"}]]));
        let store = MemStore::default();
        let a = Allocator::new("n", &cfg, &store);
        assert_eq!(addrs(&a.allocate(&who("a"), &[]).unwrap()), ["::2/0"]);
        assert_eq!(a.free_per_set().unwrap(), [u128::MAX - 2]);
        store.set_last_reserved(0, ip("ffff:ffff:ffff:ffff:ffff:ffff:ffff:ffff")).unwrap();
        assert_eq!(addrs(&a.allocate(&who("b"), &[]).unwrap()), ["::3/0"]);
    }
}
