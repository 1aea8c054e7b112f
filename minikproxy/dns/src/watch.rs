//! Following the API: kube-rs watchers on Services and EndpointSlices (all namespaces)
//! feed the zone, one event at a time, so a new Service resolves as soon as its watch
//! event arrives. The watcher lists, then watches, relists after `410 Gone` and backs off
//! on errors; after each (re)list, objects the list no longer has are removed from the
//! zone. The server is ready once both initial lists are in.
//!
//! After each change the zone's summary of the Services it touched goes to the
//! [`Tracer`], which posts `DNSRecordAdded` when a Service's records are new.

use std::collections::{HashMap, HashSet};
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;

use futures::{stream, StreamExt};
use k8s_openapi::api::core::v1::Service;
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::runtime::watcher::{self, Event};
use kube::runtime::WatchStreamExt;
use kube::{Api, Client};

use crate::events::{ServiceRef, Tracer};
use crate::objects;
use crate::server::SharedZone;
use crate::zone::{Key, Zone};

/// One watch event of either kind.
enum Change {
    Service(Box<Event<Service>>),
    Slice(Box<Event<EndpointSlice>>),
}

/// Applies watch events to the zone.
pub struct Follower {
    zone: SharedZone,
    tracer: Tracer,
    refs: HashMap<Key, ServiceRef>,
    listing_services: Option<HashSet<Key>>,
    listing_slices: Option<HashSet<Key>>,
    services_synced: bool,
    slices_synced: bool,
    ready: Arc<AtomicBool>,
}

impl Follower {
    /// A follower writing into `zone`, announcing through `tracer`, and setting `ready`
    /// once both initial lists are applied.
    pub fn new(zone: SharedZone, tracer: Tracer, ready: Arc<AtomicBool>) -> Self {
        Follower {
            zone,
            tracer,
            refs: HashMap::new(),
            listing_services: None,
            listing_slices: None,
            services_synced: false,
            slices_synced: false,
            ready,
        }
    }

    /// Watches until the streams end (they do not: the watchers retry with back-off).
    pub async fn run(mut self, client: Client) {
        let services = watcher::watcher(Api::<Service>::all(client.clone()), watcher::Config::default())
            .default_backoff()
            .map(|e| e.map(|e| Change::Service(Box::new(e))))
            .boxed();
        let slices = watcher::watcher(Api::<EndpointSlice>::all(client), watcher::Config::default())
            .default_backoff()
            .map(|e| e.map(|e| Change::Slice(Box::new(e))))
            .boxed();
        let mut changes = stream::select(services, slices);
        while let Some(change) = changes.next().await {
            match change {
                Ok(Change::Service(e)) => self.on_service(*e),
                Ok(Change::Slice(e)) => self.on_slice(*e),
                Err(e) => tracing::warn!(error = %e, "watch error; retrying with back-off"),
            }
        }
    }

    fn on_service(&mut self, event: Event<Service>) {
        match event {
            Event::Init => self.listing_services = Some(HashSet::new()),
            Event::InitApply(svc) => {
                if let (Some(key), Some(seen)) = (objects::service_key(&svc), self.listing_services.as_mut()) {
                    seen.insert(key);
                }
                self.apply_service(&svc);
            }
            Event::InitDone => {
                let seen = self.listing_services.take().unwrap_or_default();
                let stale: Vec<Key> = self.write(|z| z.service_keys()).into_iter().filter(|k| !seen.contains(k)).collect();
                for key in stale {
                    self.remove_service(&key);
                }
                self.services_synced = true;
                self.check_ready();
            }
            Event::Apply(svc) => self.apply_service(&svc),
            Event::Delete(svc) => {
                if let Some(key) = objects::service_key(&svc) {
                    self.remove_service(&key);
                }
            }
        }
    }

    fn on_slice(&mut self, event: Event<EndpointSlice>) {
        match event {
            Event::Init => self.listing_slices = Some(HashSet::new()),
            Event::InitApply(slice) => {
                if let (Some(key), Some(seen)) = (objects::slice_key(&slice), self.listing_slices.as_mut()) {
                    seen.insert(key);
                }
                self.apply_slice(&slice);
            }
            Event::InitDone => {
                let seen = self.listing_slices.take().unwrap_or_default();
                let stale: Vec<Key> = self.write(|z| z.slice_keys()).into_iter().filter(|k| !seen.contains(k)).collect();
                for key in stale {
                    let touched = self.write(|z| z.remove_slice(&key));
                    self.announce(&touched);
                }
                self.slices_synced = true;
                self.check_ready();
            }
            Event::Apply(slice) => self.apply_slice(&slice),
            Event::Delete(slice) => {
                if let Some(key) = objects::slice_key(&slice) {
                    let touched = self.write(|z| z.remove_slice(&key));
                    self.announce(&touched);
                }
            }
        }
    }

    fn apply_service(&mut self, svc: &Service) {
        let Some(entry) = objects::service(svc) else {
            return;
        };
        let key = entry.key.clone();
        self.refs.insert(
            key.clone(),
            ServiceRef {
                key: key.clone(),
                uid: svc.metadata.uid.clone(),
                resource_version: svc.metadata.resource_version.clone(),
            },
        );
        if self.write(|z| z.upsert_service(entry)) {
            tracing::debug!(service = %key, "service records updated");
            self.announce(std::slice::from_ref(&key));
        }
    }

    fn remove_service(&mut self, key: &Key) {
        if self.write(|z| z.remove_service(key)) {
            tracing::debug!(service = %key, "service records removed");
        }
        if let Some(r) = self.refs.remove(key) {
            self.tracer.observe(r, None);
        }
    }

    fn apply_slice(&mut self, slice: &EndpointSlice) {
        match objects::slice(slice) {
            Some(entry) => {
                let touched = self.write(|z| z.upsert_slice(entry));
                self.announce(&touched);
            }
            // No longer usable (label removed, FQDN): drop what it had.
            None => {
                if let Some(key) = objects::slice_key(slice) {
                    let touched = self.write(|z| z.remove_slice(&key));
                    self.announce(&touched);
                }
            }
        }
    }

    /// Hands the current summary of each Service to the tracer.
    fn announce(&mut self, keys: &[Key]) {
        for key in keys {
            let Some(r) = self.refs.get(key).cloned() else {
                continue;
            };
            let summary = {
                let zone = self.zone.read().unwrap_or_else(|p| p.into_inner());
                zone.summary(key)
            };
            self.tracer.observe(r, summary);
        }
    }

    fn check_ready(&self) {
        if self.services_synced && self.slices_synced && !self.ready.swap(true, Ordering::SeqCst) {
            let n = self.zone.read().unwrap_or_else(|p| p.into_inner()).service_count();
            tracing::info!(services = n, "initial list synced; ready");
        }
    }

    fn write<R>(&self, f: impl FnOnce(&mut Zone) -> R) -> R {
        let mut zone = self.zone.write().unwrap_or_else(|p| p.into_inner());
        f(&mut zone)
    }
}
