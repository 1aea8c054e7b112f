//! The sync loop, read top to bottom: watch events mark Services dirty → after a short
//! debounce the dirty set is taken whole (so a burst becomes one batch) → each dirty
//! Service's rules are computed from the cache and diffed against what is programmed →
//! one nft batch → UDP conntrack flush for endpoints that went → `RulesProgrammed`
//! Events. The first sync, and any sync after nft refused a batch or the table drifted,
//! is a full in-place resync.

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use futures::StreamExt;
use k8s_openapi::api::core::v1::{Node, ObjectReference, Service as ApiService};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::{watcher, WatchStreamExt};
use kube::{Api, Client, Resource};
use minik_shared::nft::NftError;
use tokio::sync::mpsc;

use crate::batch;
use crate::cache::Cache;
use crate::conntrack;
use crate::events::Programmed;
use crate::lbaddr;
use crate::metrics::{Metrics, SyncKind};
use crate::model::{Protocol, ServiceKey};
use crate::nftables;
use crate::rules::{RuleConfig, ServiceRules};
use crate::table::{NO_ENDPOINT_SERVICES, SERVICE_IPS};

/// How the proxier runs.
#[derive(Debug, Clone)]
pub struct ProxierConfig {
    /// The nftables table (family ip).
    pub table: String,
    /// What the rules depend on.
    pub rules: RuleConfig,
    /// Where LB IPs are announced (none: not at all).
    pub lb_interface: Option<String>,
    /// How long to wait for more changes after the first one.
    pub debounce: Duration,
    /// How often the table is checked for drift.
    pub drift_interval: Duration,
}

/// What a watch event changed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Dirty {
    /// These Services.
    Services(BTreeSet<ServiceKey>),
    /// The set of Ready nodes (who announces LB IPs).
    Nodes,
    /// A watch finished its first list.
    Listed,
}

/// What is programmed, and how to change it.
pub struct Proxier {
    cfg: ProxierConfig,
    programmed: BTreeMap<ServiceKey, ServiceRules>,
    announced: Option<BTreeSet<Ipv4Addr>>,
    metrics: Arc<Metrics>,
}

impl Proxier {
    /// A proxier that has programmed nothing yet.
    pub fn new(cfg: ProxierConfig, metrics: Arc<Metrics>) -> Self {
        Proxier { cfg, programmed: BTreeMap::new(), announced: None, metrics }
    }

    /// The rules programmed for a Service.
    pub fn programmed(&self, key: &ServiceKey) -> Option<&ServiceRules> {
        self.programmed.get(key)
    }

    fn record_size(&self) {
        let chains = self.programmed.values().map(|r| r.chains.len()).sum();
        let rules = self.programmed.values().map(ServiceRules::rule_count).sum();
        let elements = self.programmed.values().map(|r| r.elements.len()).sum();
        self.metrics.set_size(self.programmed.len(), chains, rules, elements);
    }

    /// Rewrites the whole table in place to hold `desired`.
    pub fn full_sync(&mut self, desired: BTreeMap<ServiceKey, ServiceRules>) -> Result<(), NftError> {
        let start = Instant::now();
        // Chain names are cheap to read; sets only matter when Services went away while
        // minikproxy was not looking, or when affinity is in use.
        let mut existing = nftables::existing_chains(&self.cfg.table)?;
        if existing.table && (existing.has_strangers(&desired) || desired.values().any(|r| !r.sets.is_empty())) {
            existing = nftables::existing(&self.cfg.table)?;
        }
        let cmds = batch::full_sync(&self.cfg.table, &existing, &desired);
        let n = cmds.len();
        if let Err(e) = nftables::apply(cmds) {
            self.metrics.sync_failed();
            return Err(e);
        }
        let old = std::mem::replace(&mut self.programmed, desired);
        for (key, rules) in &old {
            flush_udp(key, Some(rules), self.programmed.get(key));
        }
        self.metrics.sync_done(SyncKind::Full, start.elapsed());
        self.record_size();
        tracing::info!(
            services = self.programmed.len(),
            commands = n,
            took_ms = start.elapsed().as_millis() as u64,
            "full sync"
        );
        Ok(())
    }

    /// Moves the given Services to their new rules in one batch; returns the Services
    /// whose rules changed.
    pub fn sync(&mut self, changes: BTreeMap<ServiceKey, Option<ServiceRules>>) -> Result<Vec<ServiceKey>, NftError> {
        let start = Instant::now();
        let mut cmds = Vec::new();
        let mut changed = Vec::new();
        for (key, new) in &changes {
            let part = batch::service_update(&self.cfg.table, self.programmed.get(key), new.as_ref());
            if !part.is_empty() {
                changed.push(key.clone());
                cmds.extend(part);
            }
        }
        if cmds.is_empty() {
            return Ok(changed);
        }
        let n = cmds.len();
        if let Err(e) = nftables::apply(cmds) {
            self.metrics.sync_failed();
            return Err(e);
        }
        for (key, new) in changes {
            let old = match new {
                Some(r) => self.programmed.insert(key.clone(), r),
                None => self.programmed.remove(&key),
            };
            flush_udp(&key, old.as_ref(), self.programmed.get(&key));
        }
        self.metrics.sync_done(SyncKind::Partial, start.elapsed());
        self.record_size();
        tracing::debug!(
            services = changed.len(),
            commands = n,
            took_us = start.elapsed().as_micros() as u64,
            "partial sync"
        );
        Ok(changed)
    }

    /// Holds exactly `wanted` on the LB interface (when there is one and it changed).
    pub fn announce(&mut self, wanted: BTreeSet<Ipv4Addr>) {
        let Some(iface) = self.cfg.lb_interface.clone() else { return };
        if self.announced.as_ref() == Some(&wanted) {
            return;
        }
        match lbaddr::reconcile(&iface, &wanted) {
            Ok((added, removed)) => {
                if added + removed > 0 {
                    tracing::info!(interface = %iface, added, removed, total = wanted.len(), "load-balancer IPs announced");
                }
                self.announced = Some(wanted);
            }
            Err(e) => tracing::warn!(error = %e, "cannot announce load-balancer IPs"),
        }
    }
}

/// Flushes UDP conntrack entries of endpoints that went, and of Service IPs that had no
/// endpoint and now have one. Failures are logged (the entries time out anyway).
fn flush_udp(key: &ServiceKey, old: Option<&ServiceRules>, new: Option<&ServiceRules>) {
    let empty = ServiceRules::default();
    let (old, new) = (old.unwrap_or(&empty), new.unwrap_or(&empty));
    let mut result = Ok(());
    for ep in old.udp_endpoints.difference(&new.udp_endpoints) {
        result = result.and(conntrack::flush_udp_to_endpoint(*ep));
    }
    for e in new.elements.iter().filter(|e| e.map == SERVICE_IPS && e.proto == Protocol::Udp) {
        let was_rejected = old
            .elements
            .iter()
            .any(|o| o.map == NO_ENDPOINT_SERVICES && o.addr == e.addr && o.port == e.port && o.proto == e.proto);
        if let (true, Some(ip)) = (was_rejected, e.addr) {
            result = result.and(conntrack::flush_udp_to_service(ip, e.port));
        }
    }
    if let Err(e) = result {
        tracing::warn!(service = %key, error = %e, "cannot flush UDP conntrack entries");
    }
}

/// Everything the running proxy shares between its tasks.
pub struct Runner {
    /// The settings.
    pub cfg: ProxierConfig,
    /// The API client.
    pub client: Client,
    /// The figures.
    pub metrics: Arc<Metrics>,
    /// Where Events go (none: no Events).
    pub events: Option<mpsc::UnboundedSender<Programmed>>,
}

fn spawn_watch<K, F>(api: Api<K>, cache: Arc<Mutex<Cache>>, tx: mpsc::UnboundedSender<Dirty>, on: F)
where
    K: Resource + Clone + serde::de::DeserializeOwned + std::fmt::Debug + Send + 'static,
    K::DynamicType: Default,
    F: Fn(&mut Cache, watcher::Event<K>) -> Option<Dirty> + Send + 'static,
{
    tokio::spawn(async move {
        let stream = watcher(api, watcher::Config::default()).default_backoff();
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => {
                    let done = matches!(ev, watcher::Event::InitDone);
                    let dirty = match cache.lock() {
                        Ok(mut c) => on(&mut c, ev),
                        Err(_) => return,
                    };
                    if let Some(d) = dirty {
                        let _ = tx.send(d);
                    }
                    if done {
                        let _ = tx.send(Dirty::Listed);
                    }
                }
                Err(e) => tracing::warn!(kind = %K::kind(&K::DynamicType::default()), error = %e, "watch error"),
            }
        }
    });
}

impl Runner {
    /// Watches the API and keeps the table in sync until the watches end.
    pub async fn run(self) {
        let cache = Arc::new(Mutex::new(Cache::default()));
        let (tx, mut rx) = mpsc::unbounded_channel();
        spawn_watch(Api::<ApiService>::all(self.client.clone()), cache.clone(), tx.clone(), |c, ev| {
            Some(Dirty::Services(c.on_service(ev))).filter(|d| !matches!(d, Dirty::Services(s) if s.is_empty()))
        });
        spawn_watch(Api::<EndpointSlice>::all(self.client.clone()), cache.clone(), tx.clone(), |c, ev| {
            Some(Dirty::Services(c.on_slice(ev))).filter(|d| !matches!(d, Dirty::Services(s) if s.is_empty()))
        });
        spawn_watch(Api::<Node>::all(self.client.clone()), cache.clone(), tx.clone(), |c, ev| {
            c.on_node(ev).then_some(Dirty::Nodes)
        });
        drop(tx);

        // Wait for the three first lists, then program everything.
        loop {
            if cache.lock().map(|c| c.synced()).unwrap_or(false) {
                break;
            }
            if rx.recv().await.is_none() {
                return;
            }
        }
        while rx.try_recv().is_ok() {}
        let mut proxier = Proxier::new(self.cfg.clone(), self.metrics.clone());
        self.resync(&mut proxier, &cache).await;

        let mut next_check = Instant::now() + self.cfg.drift_interval;
        loop {
            let wait = next_check.saturating_duration_since(Instant::now());
            let first = tokio::select! {
                m = rx.recv() => match m { Some(d) => d, None => return },
                _ = tokio::time::sleep(wait) => {
                    next_check = Instant::now() + self.cfg.drift_interval;
                    match tokio::task::block_in_place(|| nftables::intact(&self.cfg.table)) {
                        Ok(true) => {}
                        Ok(false) => {
                            tracing::warn!(table = %self.cfg.table, "the table drifted (deleted or changed by someone else); resyncing");
                            self.resync(&mut proxier, &cache).await;
                        }
                        Err(e) => tracing::warn!(error = %e, "cannot check the table"),
                    }
                    continue;
                }
            };
            // Debounce: let the burst finish, then take every change at once.
            tokio::time::sleep(self.cfg.debounce).await;
            let mut dirty = BTreeSet::new();
            let mut nodes = false;
            let mut absorb = |d: Dirty| match d {
                Dirty::Services(s) => dirty.extend(s),
                Dirty::Nodes => nodes = true,
                Dirty::Listed => {}
            };
            absorb(first);
            while let Ok(d) = rx.try_recv() {
                absorb(d);
            }
            let (changes, lb, refs) = {
                let Ok(c) = cache.lock() else { return };
                let changes: BTreeMap<_, _> =
                    dirty.iter().map(|k| (k.clone(), c.desired(&self.cfg.rules, k))).collect();
                let refs: BTreeMap<_, _> =
                    dirty.iter().filter_map(|k| Some((k.clone(), object_ref(c.service(k)?)))).collect();
                (changes, self.lb_wanted(&c), refs)
            };
            match tokio::task::block_in_place(|| proxier.sync(changes)) {
                Ok(changed) => {
                    for key in changed {
                        let (Some(tx), Some(involved)) = (&self.events, refs.get(&key)) else { continue };
                        let n = proxier.programmed(&key).map(|r| r.endpoints).unwrap_or(0);
                        let message = format!("{}: {n} endpoints programmed (nftables)", self.cfg.rules.node_name);
                        let _ = tx.send(Programmed { key, involved: involved.clone(), message });
                    }
                }
                Err(e) => {
                    tracing::warn!(error = %e, "nft refused an incremental batch; resyncing the whole table");
                    self.resync(&mut proxier, &cache).await;
                }
            }
            tokio::task::block_in_place(|| proxier.announce(lb));
        }
    }

    fn lb_wanted(&self, c: &Cache) -> BTreeSet<Ipv4Addr> {
        if lbaddr::is_announcer(&self.cfg.rules.node_name, &c.ready_nodes()) {
            c.lb_ips()
        } else {
            BTreeSet::new()
        }
    }

    /// A full resync, retried (bounded back-off) until nft takes it.
    async fn resync(&self, proxier: &mut Proxier, cache: &Arc<Mutex<Cache>>) {
        let mut delay = Duration::from_millis(200);
        loop {
            let (desired, lb) = match cache.lock() {
                Ok(c) => (c.desired_all(&self.cfg.rules), self.lb_wanted(&c)),
                Err(_) => return,
            };
            match tokio::task::block_in_place(|| proxier.full_sync(desired)) {
                Ok(()) => {
                    tokio::task::block_in_place(|| proxier.announce(lb));
                    return;
                }
                Err(e) => {
                    tracing::error!(error = %e, retry_in_ms = delay.as_millis() as u64, "full sync failed");
                    tokio::time::sleep(delay).await;
                    delay = (delay * 2).min(Duration::from_secs(10));
                }
            }
        }
    }
}

fn object_ref(svc: &ApiService) -> ObjectReference {
    ObjectReference {
        api_version: Some("v1".into()),
        kind: Some("Service".into()),
        name: svc.metadata.name.clone(),
        namespace: svc.metadata.namespace.clone(),
        uid: svc.metadata.uid.clone(),
        resource_version: svc.metadata.resource_version.clone(),
        field_path: None,
    }
}
