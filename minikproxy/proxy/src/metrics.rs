//! minikproxy's figures, shared between the sync loop (which records them) and the HTTP
//! server (which prints them as Prometheus text and answers `/healthz` from them).

use std::fmt::Write as _;
use std::sync::Mutex;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

/// Upper bounds of the sync duration histogram, in seconds.
const BUCKETS: [f64; 12] = [0.001, 0.002, 0.005, 0.01, 0.02, 0.05, 0.1, 0.2, 0.5, 1.0, 2.0, 5.0];

/// Which kind of sync a sample is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SyncKind {
    /// The whole table.
    Full,
    /// Some Services only.
    Partial,
}

#[derive(Debug, Default)]
struct Inner {
    counts: [u64; BUCKETS.len()],
    count: u64,
    sum: f64,
    full_syncs: u64,
    partial_syncs: u64,
    sync_errors: u64,
    last_sync: Option<SystemTime>,
    services: usize,
    chains: usize,
    rules: usize,
    elements: usize,
    synced: bool,
}

/// The figures.
#[derive(Debug, Default)]
pub struct Metrics {
    inner: Mutex<Inner>,
}

/// What `/healthz` reports.
#[derive(Debug, Clone, PartialEq)]
pub struct Health {
    /// Whether the first full sync is done.
    pub synced: bool,
    /// When the rules were last written.
    pub last_updated: Option<SystemTime>,
}

impl Metrics {
    fn with<R>(&self, f: impl FnOnce(&mut Inner) -> R) -> R {
        match self.inner.lock() {
            Ok(mut g) => f(&mut g),
            Err(poisoned) => f(&mut poisoned.into_inner()),
        }
    }

    /// Records a sync that succeeded.
    pub fn sync_done(&self, kind: SyncKind, took: Duration) {
        let secs = took.as_secs_f64();
        self.with(|m| {
            for (i, b) in BUCKETS.iter().enumerate() {
                if secs <= *b {
                    m.counts[i] += 1;
                }
            }
            m.count += 1;
            m.sum += secs;
            match kind {
                SyncKind::Full => m.full_syncs += 1,
                SyncKind::Partial => m.partial_syncs += 1,
            }
            m.last_sync = Some(SystemTime::now());
            if kind == SyncKind::Full {
                m.synced = true;
            }
        });
    }

    /// Records a sync that failed.
    pub fn sync_failed(&self) {
        self.with(|m| m.sync_errors += 1);
    }

    /// Records the size of what is programmed.
    pub fn set_size(&self, services: usize, chains: usize, rules: usize, elements: usize) {
        self.with(|m| {
            m.services = services;
            m.chains = chains;
            m.rules = rules;
            m.elements = elements;
        });
    }

    /// The health figures.
    pub fn health(&self) -> Health {
        self.with(|m| Health { synced: m.synced, last_updated: m.last_sync })
    }

    /// The Prometheus text exposition.
    pub fn render(&self) -> String {
        self.with(|m| {
            let mut s = String::new();
            let _ =
                writeln!(s, "# HELP minikproxy_sync_proxy_rules_duration_seconds Time to program one batch of rules.");
            let _ = writeln!(s, "# TYPE minikproxy_sync_proxy_rules_duration_seconds histogram");
            for (i, b) in BUCKETS.iter().enumerate() {
                let _ =
                    writeln!(s, "minikproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"{b}\"}} {}", m.counts[i]);
            }
            let _ = writeln!(s, "minikproxy_sync_proxy_rules_duration_seconds_bucket{{le=\"+Inf\"}} {}", m.count);
            let _ = writeln!(s, "minikproxy_sync_proxy_rules_duration_seconds_sum {}", m.sum);
            let _ = writeln!(s, "minikproxy_sync_proxy_rules_duration_seconds_count {}", m.count);
            let gauge = |s: &mut String, name: &str, help: &str, v: f64| {
                let _ = writeln!(s, "# HELP {name} {help}");
                let _ = writeln!(s, "# TYPE {name} gauge");
                let _ = writeln!(s, "{name} {v}");
            };
            let last =
                m.last_sync.and_then(|t| t.duration_since(UNIX_EPOCH).ok()).map(|d| d.as_secs_f64()).unwrap_or(0.0);
            gauge(
                &mut s,
                "minikproxy_sync_proxy_rules_last_timestamp_seconds",
                "When the rules were last written (Unix time).",
                last,
            );
            gauge(&mut s, "minikproxy_services", "Services with rules.", m.services as f64);
            gauge(&mut s, "minikproxy_nftables_chains", "Service chains in the table.", m.chains as f64);
            gauge(&mut s, "minikproxy_nftables_rules", "Rules in the Service chains.", m.rules as f64);
            gauge(&mut s, "minikproxy_nftables_map_elements", "Elements in the verdict maps.", m.elements as f64);
            let counter = |s: &mut String, name: &str, help: &str, v: u64| {
                let _ = writeln!(s, "# HELP {name} {help}");
                let _ = writeln!(s, "# TYPE {name} counter");
                let _ = writeln!(s, "{name} {v}");
            };
            counter(&mut s, "minikproxy_full_syncs_total", "Full resyncs of the table.", m.full_syncs);
            counter(&mut s, "minikproxy_partial_syncs_total", "Incremental batches applied.", m.partial_syncs);
            counter(&mut s, "minikproxy_sync_errors_total", "Batches nft refused.", m.sync_errors);
            s
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_histogram_is_cumulative() {
        let m = Metrics::default();
        assert!(!m.health().synced);
        m.sync_done(SyncKind::Full, Duration::from_millis(3));
        m.sync_done(SyncKind::Partial, Duration::from_millis(30));
        let text = m.render();
        assert!(text.contains("minikproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.005\"} 1"), "{text}");
        assert!(text.contains("minikproxy_sync_proxy_rules_duration_seconds_bucket{le=\"0.05\"} 2"));
        assert!(text.contains("minikproxy_sync_proxy_rules_duration_seconds_count 2"));
        assert!(m.health().synced);
    }
}
