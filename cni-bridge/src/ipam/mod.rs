//! The built-in IPAM of cni-bridge, config- and disk-compatible with the reference
//! `host-local` plugin: the same `ipam` keys ([`config`]), the same files under
//! `<dataDir>/<network>/` ([`store`]) and the same round-robin strategy ([`allocator`]).
//!
//! [`Ipam`] is what the plugin's verbs use: ADD calls [`Ipam::allocate`] (or
//! [`Ipam::allocate_requested`] for `IP=` / runtimeConfig `ips`), DEL [`Ipam::release`],
//! CHECK [`Ipam::lookup`], GC [`Ipam::gc`] and STATUS [`Ipam::status`]. Every call takes the
//! network's lock for its whole duration, so concurrent plugin processes never hand out one
//! address twice.
//!
//! Error codes: bad config and bad requests are `invalid_config` (7); an exhausted range,
//! a requested address held by someone else and an unusable data directory on STATUS are
//! `not_available` (50); lock timeouts are `try_again` (11); file system failures are
//! `io` (5).

pub mod allocator;
pub mod config;
pub mod store;

mod addr;

use std::net::IpAddr;

use ipnet::IpNet;
use minik_shared::cni::{codes, Attachment, CniError, Route};

pub use allocator::Allocator;
pub use config::{near_miss, IpamConfig, Range, RangeSet};
pub use store::{DiskStore, Store};

/// One address handed out: the IP with its subnet's prefix, and the range's gateway.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Allocation {
    /// The IP with the subnet's prefix length, e.g. `10.244.1.5/24`.
    pub address: IpNet,
    /// The gateway of the range the IP came from.
    pub gateway: Option<IpAddr>,
    /// The index of the range set the IP came from.
    pub range_set: usize,
}

/// The IPAM of one network: its validated config and its on-disk store.
#[derive(Debug)]
pub struct Ipam {
    network: String,
    config: IpamConfig,
    store: DiskStore,
}

impl Ipam {
    /// Opens network `network`'s store under `cfg.data_dir`, creating the directories.
    pub fn open(network: &str, cfg: &IpamConfig) -> Result<Ipam, CniError> {
        check_network_name(network)?;
        let store = DiskStore::open(cfg.data_dir.join(network))?;
        Ok(Ipam { network: network.to_string(), config: cfg.clone(), store })
    }

    /// One address per range set for the attachment, in range-set order. Idempotent: if
    /// the attachment already holds addresses they are returned again. On failure nothing
    /// this call reserved stays reserved.
    pub fn allocate(&self, container_id: &str, ifname: &str) -> Result<Vec<Allocation>, CniError> {
        self.allocate_requested(container_id, ifname, &[])
    }

    /// Like [`Ipam::allocate`], but each of `requested` (at most one per range set) is
    /// taken in the range set that contains it, as host-local's `ips`. Fails if one is
    /// outside every range, is a gateway, or is held by another attachment.
    pub fn allocate_requested(&self, container_id: &str, ifname: &str, requested: &[IpAddr]) -> Result<Vec<Allocation>, CniError> {
        self.allocator().allocate(&attachment(container_id, ifname), requested)
    }

    /// Frees every address the attachment holds and returns them; idempotent.
    pub fn release(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        self.allocator().release(&attachment(container_id, ifname))
    }

    /// The addresses the attachment holds, sorted.
    pub fn lookup(&self, container_id: &str, ifname: &str) -> Result<Vec<IpAddr>, CniError> {
        self.allocator().lookup(&attachment(container_id, ifname))
    }

    /// Frees every address whose attachment is not in `valid` and returns them, sorted.
    /// Empty or unreadable IP files (leaked reservations) are freed too.
    pub fn gc(&self, valid: &[Attachment]) -> Result<Vec<IpAddr>, CniError> {
        self.allocator().gc(valid)
    }

    /// Whether an ADD can succeed: `not_available` if the data directory cannot be written
    /// or if a range set has no free address (ADD needs one from every set).
    pub fn status(&self) -> Result<(), CniError> {
        self.check_writable().map_err(|e| self.unavailable(e))?;
        let allocator = self.allocator();
        for (index, free) in allocator.free_per_set()?.into_iter().enumerate() {
            if free == 0 {
                let set = &self.config.range_sets[index];
                return Err(allocator.exhausted(index, set, set.capacity()));
            }
        }
        Ok(())
    }

    /// The routes to return with the addresses.
    pub fn routes(&self) -> &[Route] {
        &self.config.routes
    }

    /// The validated config.
    pub fn config(&self) -> &IpamConfig {
        &self.config
    }

    fn allocator(&self) -> Allocator<'_, DiskStore> {
        Allocator::new(&self.network, &self.config, &self.store)
    }

    fn check_writable(&self) -> Result<(), CniError> {
        let _lock = self.store.lock()?;
        self.store.check_writable()
    }

    /// An I/O failure of STATUS's probe, as not-available; other errors pass.
    fn unavailable(&self, e: CniError) -> CniError {
        if e.code != codes::IO_FAILURE {
            return e;
        }
        CniError::not_available(format!(
            "network {:?}: the IPAM data directory {} is not writable, so no address can be allocated; fix its permissions or ipam.dataDir",
            self.network,
            self.store.dir().display()
        ))
        .with_details(e.msg)
    }
}

fn attachment(container_id: &str, ifname: &str) -> Attachment {
    Attachment { container_id: container_id.to_string(), ifname: ifname.to_string() }
}

/// The network name becomes a directory name under dataDir.
fn check_network_name(network: &str) -> Result<(), CniError> {
    if network.is_empty() || network == "." || network == ".." || network.contains(['/', '\0']) {
        return Err(CniError::invalid_config(format!(
            "network name {network:?} cannot name the IPAM directory under dataDir; use a name without '/' that is not '.' or '..'"
        )));
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use std::collections::HashSet;
    use std::fs;
    use std::sync::Arc;

    use serde_json::json;

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    /// An IPAM with `ranges` in a fresh temp data dir.
    fn ipam(ranges: serde_json::Value) -> (tempfile::TempDir, Ipam) {
        let tmp = tempfile::tempdir().unwrap();
        let cfg = IpamConfig::from_value(&json!({
            "type": "host-local",
            "ranges": ranges,
            "routes": [{"dst": "0.0.0.0/0"}],
            "dataDir": tmp.path().join("data"),
        }))
        .unwrap();
        let ipam = Ipam::open("testnet", &cfg).unwrap();
        (tmp, ipam)
    }

    fn addrs(a: &[Allocation]) -> Vec<String> {
        a.iter().map(|a| a.address.to_string()).collect()
    }

    fn att(id: &str, ifname: &str) -> Attachment {
        attachment(id, ifname)
    }

    #[test]
    fn open_creates_the_network_dir_and_rejects_bad_names() {
        let (tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        assert!(tmp.path().join("data/testnet/lock").is_file());
        assert_eq!(ipam.routes(), [Route::new("0.0.0.0/0".parse().unwrap(), None)]);
        assert_eq!(ipam.config().range_sets.len(), 1);
        for bad in ["", "..", "a/b"] {
            assert_eq!(Ipam::open(bad, ipam.config()).err().map(|e| e.code), Some(codes::INVALID_CONFIG));
        }
    }

    #[test]
    fn allocate_is_idempotent_and_writes_host_local_files() {
        let (tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        let a = ipam.allocate("c1", "eth0").unwrap();
        assert_eq!(a, [Allocation { address: "10.1.0.2/24".parse().unwrap(), gateway: Some(ip("10.1.0.1")), range_set: 0 }]);
        assert_eq!(ipam.allocate("c1", "eth0").unwrap(), a);
        let dir = tmp.path().join("data/testnet");
        assert_eq!(fs::read(dir.join("10.1.0.2")).unwrap(), b"c1\r\neth0");
        assert_eq!(fs::read_to_string(dir.join("last_reserved_ip.0")).unwrap(), "10.1.0.2");
        // Another interface of the same container is another attachment.
        assert_eq!(addrs(&ipam.allocate("c1", "eth1").unwrap()), ["10.1.0.3/24"]);
    }

    #[test]
    fn release_twice_and_lookup() {
        let (_tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        ipam.allocate("c1", "eth0").unwrap();
        ipam.allocate("c2", "eth0").unwrap();
        assert_eq!(ipam.lookup("c1", "eth0").unwrap(), [ip("10.1.0.2")]);
        assert_eq!(ipam.lookup("c1", "eth9").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(ipam.release("c1", "eth0").unwrap(), [ip("10.1.0.2")]);
        assert_eq!(ipam.release("c1", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(ipam.release("never", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(ipam.lookup("c1", "eth0").unwrap(), Vec::<IpAddr>::new());
        assert_eq!(ipam.lookup("c2", "eth0").unwrap(), [ip("10.1.0.3")]);
    }

    #[test]
    fn gc_frees_exactly_the_invalid_ones() {
        let (tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        for id in ["keep1", "drop1", "keep2", "drop2"] {
            ipam.allocate(id, "eth0").unwrap();
        }
        ipam.allocate("keep1", "net1").unwrap(); // 10.1.0.6: keep1 is valid on eth0 only
        let dir = tmp.path().join("data/testnet");
        fs::write(dir.join("10.1.0.100"), "legacy-kept").unwrap();
        fs::write(dir.join("10.1.0.101"), "legacy-dropped").unwrap();
        let valid = [att("keep1", "eth0"), att("keep2", "eth0"), att("legacy-kept", "eth0")];
        let freed = ipam.gc(&valid).unwrap();
        assert_eq!(freed, [ip("10.1.0.3"), ip("10.1.0.5"), ip("10.1.0.6"), ip("10.1.0.101")]);
        assert_eq!(ipam.lookup("keep1", "eth0").unwrap(), [ip("10.1.0.2")]);
        assert_eq!(ipam.lookup("keep2", "eth0").unwrap(), [ip("10.1.0.4")]);
        assert!(dir.join("10.1.0.100").exists());
        assert_eq!(ipam.gc(&valid).unwrap(), Vec::<IpAddr>::new());
    }

    #[test]
    fn status_on_a_full_range() {
        let (_tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24","rangeStart":"10.1.0.10","rangeEnd":"10.1.0.11"}]]));
        assert!(ipam.status().is_ok());
        ipam.allocate("a", "eth0").unwrap();
        ipam.allocate("b", "eth0").unwrap();
        let e = ipam.status().err().unwrap();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert!(e.msg.starts_with("no free address in range set 0 (10.1.0.10-10.1.0.11) of network \"testnet\""), "{}", e.msg);
        let e = ipam.allocate("c", "eth0").err().unwrap();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        ipam.release("a", "eth0").unwrap();
        assert!(ipam.status().is_ok());
    }

    /// Tests run as root, for whom a chmod'ed directory stays writable, so unwritability is
    /// made another way: the data dir's path leads through a regular file.
    #[test]
    fn status_and_open_when_the_data_dir_is_unwritable() {
        let (tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        // Opening under a regular file fails with an I/O error naming the path.
        let mut cfg = ipam.config().clone();
        fs::write(tmp.path().join("plain"), "x").unwrap();
        cfg.data_dir = tmp.path().join("plain");
        let e = Ipam::open("testnet", &cfg).err().unwrap();
        assert_eq!(e.code, codes::IO_FAILURE);
        assert!(e.msg.contains("plain/testnet"), "{}", e.msg);
        // An opened network whose directory was replaced by a file reports not-available.
        let dir = tmp.path().join("data/testnet");
        fs::remove_dir_all(&dir).unwrap();
        fs::write(&dir, "x").unwrap();
        let e = ipam.status().err().unwrap();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert!(e.msg.contains("data/testnet is not writable"), "{}", e.msg);
        assert_eq!(ipam.allocate("a", "eth0").err().map(|e| e.code), Some(codes::IO_FAILURE));
    }

    #[test]
    fn dual_stack_gets_one_address_per_range_set() {
        let (_tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}],[{"subnet":"fd00:10::/64","rangeStart":"fd00:10::100"}]]));
        let a = ipam.allocate("c1", "eth0").unwrap();
        assert_eq!(addrs(&a), ["10.1.0.2/24", "fd00:10::100/64"]);
        assert_eq!(a[1].gateway, Some(ip("fd00:10::1")));
        assert_eq!(a[1].range_set, 1);
        assert_eq!(addrs(&ipam.allocate("c2", "eth0").unwrap()), ["10.1.0.3/24", "fd00:10::101/64"]);
        assert_eq!(ipam.lookup("c1", "eth0").unwrap(), [ip("10.1.0.2"), ip("fd00:10::100")]);
        assert_eq!(ipam.release("c1", "eth0").unwrap(), [ip("10.1.0.2"), ip("fd00:10::100")]);
        assert!(ipam.status().is_ok());
    }

    #[test]
    fn requested_ips_through_ipam() {
        let (_tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        assert_eq!(addrs(&ipam.allocate_requested("a", "eth0", &[ip("10.1.0.77")]).unwrap()), ["10.1.0.77/24"]);
        let e = ipam.allocate_requested("b", "eth0", &[ip("10.1.0.77")]).err().unwrap();
        assert_eq!(e.code, codes::NOT_AVAILABLE);
        assert_eq!(ipam.allocate_requested("b", "eth0", &[ip("10.9.0.1")]).err().map(|e| e.code), Some(codes::INVALID_CONFIG));
        // Round robin continues after the requested address.
        assert_eq!(addrs(&ipam.allocate("b", "eth0").unwrap()), ["10.1.0.78/24"]);
    }

    #[test]
    fn concurrent_allocation_hands_out_distinct_addresses() {
        let (tmp, first) = ipam(json!([[{"subnet":"10.1.0.0/23"}]]));
        let cfg = Arc::new(first.config().clone());
        let threads: Vec<_> = (0..8)
            .map(|t| {
                let cfg = Arc::clone(&cfg);
                std::thread::spawn(move || {
                    let ipam = Ipam::open("testnet", &cfg).unwrap();
                    (0..25)
                        .map(|i| {
                            let a = ipam.allocate(&format!("t{t}-c{i}"), "eth0").unwrap();
                            a[0].address.addr()
                        })
                        .collect::<Vec<_>>()
                })
            })
            .collect();
        let all: Vec<IpAddr> = threads.into_iter().flat_map(|h| h.join().unwrap()).collect();
        let distinct: HashSet<IpAddr> = all.iter().copied().collect();
        assert_eq!((all.len(), distinct.len()), (200, 200));
        let files = fs::read_dir(tmp.path().join("data/testnet"))
            .unwrap()
            .filter(|e| e.as_ref().unwrap().file_name().to_str().unwrap().parse::<IpAddr>().is_ok())
            .count();
        assert_eq!(files, 200);
        // Sequential: exactly the first 200 addresses after the gateway.
        let max = all.iter().map(|ip| addr::to_u128(*ip)).max().unwrap();
        assert_eq!(addr::from_u128(max, ip("0.0.0.0")), ip("10.1.0.201"));
    }

    #[test]
    fn crash_leftovers_do_not_break_allocation() {
        let (tmp, ipam) = ipam(json!([[{"subnet":"10.1.0.0/24"}]]));
        let dir = tmp.path().join("data/testnet");
        // A crash mid-reserve leaves a temp file; a non-atomic writer may leave an empty IP file;
        // a crash mid-write of the hint may leave garbage in last_reserved_ip.
        fs::write(dir.join(".minik-ipam.tmp.4242.7"), "c9\r\n").unwrap();
        fs::write(dir.join("10.1.0.2"), "").unwrap();
        fs::write(dir.join("last_reserved_ip.0"), "garbage").unwrap();
        assert_eq!(addrs(&ipam.allocate("c1", "eth0").unwrap()), ["10.1.0.3/24"]);
        assert!(!dir.join(".minik-ipam.tmp.4242.7").exists());
        assert!(dir.join("10.1.0.2").exists(), "an empty IP file is a leaked reservation, kept until GC");
        // GC clears the leaked reservation; the address is usable again.
        assert_eq!(ipam.gc(&[att("c1", "eth0")]).unwrap(), [ip("10.1.0.2")]);
        assert_eq!(addrs(&ipam.allocate_requested("c2", "eth0", &[ip("10.1.0.2")]).unwrap()), ["10.1.0.2/24"]);
    }
}
