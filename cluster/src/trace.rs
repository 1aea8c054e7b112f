//! `minik trace svc/NAME [-n NS]`: the course's "sequential breakdown" of a Service,
//! read back from the API with timestamps: the Service stored (1), the endpoint
//! controller writing Endpoints and EndpointSlices (2–3), minikproxy programming each
//! node's rules (4–5, Events `reason: RulesProgrammed`, one per node), and minik-dns
//! serving the name (6–7, Event `reason: DNSRecordAdded`); sorted, with each step's delay
//! after the Service's creation, and a note for every node or part that has not reported.

use std::path::Path;

use anyhow::{bail, Context};
use k8s_openapi::api::core::v1::{Endpoints, Event, Service};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use k8s_openapi::apimachinery::pkg::apis::meta::v1::ObjectMeta;
use kube::api::{Api, ListParams};

use crate::config::ClusterConfig;

/// One line of the trace.
#[derive(Debug, Clone, PartialEq)]
pub struct Entry {
    /// Milliseconds since the Unix epoch.
    pub at_ms: i64,
    /// RFC 3339, as the API gave it.
    pub at: String,
    /// What happened.
    pub what: String,
}

/// Splits `svc/NAME` (also `service/NAME`, `services/NAME` or a bare `NAME`).
pub fn parse_target(target: &str) -> anyhow::Result<String> {
    let name = match target.split_once('/') {
        Some(("svc" | "service" | "services", n)) => n,
        Some((kind, _)) => bail!("minik trace follows Services: give svc/NAME, not {kind}/…"),
        None => target,
    };
    if name.is_empty() {
        bail!("give the Service as svc/NAME");
    }
    Ok(name.to_string())
}

fn meta_entries(meta: &ObjectMeta, what: &str, out: &mut Vec<Entry>) {
    if let Some(t) = &meta.creation_timestamp {
        out.push(Entry { at_ms: t.0.as_millisecond(), at: t.0.to_string(), what: format!("{what} created") });
    }
    let created = meta.creation_timestamp.as_ref().map(|t| t.0.as_millisecond());
    for mf in meta.managed_fields.iter().flatten() {
        if let (Some(t), Some(op)) = (&mf.time, &mf.operation) {
            let by = mf.manager.clone().filter(|m| !m.is_empty() && m != "unknown");
            // A write at creation time by an unnamed manager says nothing new.
            if (op == "Update" || op == "Apply") && (by.is_some() || Some(t.0.as_millisecond()) != created) {
                let by = by.map(|b| format!(" by {b}")).unwrap_or_default();
                out.push(Entry { at_ms: t.0.as_millisecond(), at: t.0.to_string(), what: format!("{what} updated{by}") });
            }
        }
    }
}

fn event_time(e: &Event) -> Option<(i64, String)> {
    if let Some(t) = &e.event_time {
        return Some((t.0.as_millisecond(), t.0.to_string()));
    }
    e.first_timestamp
        .as_ref()
        .or(e.last_timestamp.as_ref())
        .or(e.metadata.creation_timestamp.as_ref())
        .map(|t| (t.0.as_millisecond(), t.0.to_string()))
}

fn event_node(e: &Event) -> String {
    e.source
        .as_ref()
        .and_then(|s| s.host.clone())
        .or_else(|| e.reporting_instance.clone())
        .unwrap_or_else(|| "?".into())
}

/// Gathers the entries of a Service's story (unsorted), and what is missing.
async fn gather(client: kube::Client, ns: &str, name: &str, nodes: &[String]) -> anyhow::Result<(String, Vec<Entry>, Vec<String>)> {
    let svc = Api::<Service>::namespaced(client.clone(), ns)
        .get_opt(name)
        .await
        .context("cannot read the Service")?
        .with_context(|| format!("no Service {ns}/{name}; `kubectl -n {ns} get svc` lists them"))?;
    let spec = svc.spec.clone().unwrap_or_default();
    let ports: Vec<String> = spec
        .ports
        .unwrap_or_default()
        .iter()
        .map(|p| match p.node_port {
            Some(np) => format!("{}:{np}/{}", p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())),
            None => format!("{}/{}", p.port, p.protocol.clone().unwrap_or_else(|| "TCP".into())),
        })
        .collect();
    let header = format!(
        "Service {ns}/{name}: {} {} {}",
        spec.type_.unwrap_or_else(|| "ClusterIP".into()),
        spec.cluster_ip.unwrap_or_default(),
        ports.join(",")
    );
    let mut out = Vec::new();
    let mut missing = Vec::new();
    if let Some(t) = &svc.metadata.creation_timestamp {
        out.push(Entry { at_ms: t.0.as_millisecond(), at: t.0.to_string(), what: "1. Service stored by the API server".into() });
    }
    match Api::<Endpoints>::namespaced(client.clone(), ns).get_opt(name).await.context("cannot read Endpoints")? {
        Some(ep) => {
            let n: usize = ep.subsets.iter().flatten().map(|s| s.addresses.as_ref().map_or(0, Vec::len)).sum();
            meta_entries(&ep.metadata, &format!("2-3. Endpoints ({n} ready addresses)"), &mut out);
            if let Some(trig) = ep.metadata.annotations.as_ref().and_then(|a| a.get("endpoints.kubernetes.io/last-change-trigger-time")) {
                out.push(Entry { at_ms: parse_ms(trig), at: trig.clone(), what: "2-3. Endpoints: last change trigger time".into() });
            }
        }
        None => missing.push("no Endpoints (the endpoint controller has not written any)".into()),
    }
    let lp = ListParams::default().labels(&format!("kubernetes.io/service-name={name}"));
    let slices = Api::<EndpointSlice>::namespaced(client.clone(), ns).list(&lp).await.context("cannot list EndpointSlices")?;
    for s in &slices.items {
        let what = format!("2-3. EndpointSlice {}", s.metadata.name.clone().unwrap_or_default());
        meta_entries(&s.metadata, &what, &mut out);
    }
    let events = Api::<Event>::namespaced(client, ns).list(&ListParams::default()).await.context("cannot list Events")?;
    let mine: Vec<&Event> = events
        .items
        .iter()
        .filter(|e| e.involved_object.name.as_deref() == Some(name) && e.involved_object.kind.as_deref() == Some("Service"))
        .collect();
    let mut programmed: Vec<String> = Vec::new();
    let mut dns = false;
    let mut mine = mine;
    mine.sort_by_key(|e| event_time(e).map(|(ms, _)| ms).unwrap_or(0));
    for e in &mine {
        let Some((ms, at)) = event_time(e) else { continue };
        match e.reason.as_deref() {
            Some("RulesProgrammed") => {
                let node = event_node(e);
                let verb = if programmed.contains(&node) { "rules updated" } else { "rules programmed" };
                out.push(Entry { at_ms: ms, at, what: format!("4-5. {node}: {verb} by minikproxy") });
                programmed.push(node);
            }
            Some("DNSRecordAdded") => {
                out.push(Entry { at_ms: ms, at, what: format!("6-7. DNS record {name}.{ns}.svc.cluster.local served by minik-dns") });
                dns = true;
            }
            _ => {}
        }
    }
    for n in nodes {
        if !programmed.iter().any(|p| p == n) {
            missing.push(format!("{n}: no RulesProgrammed event (is minikproxy running there? `minik status`)"));
        }
    }
    if !dns {
        missing.push("no DNSRecordAdded event (is minik-dns running? `minik status`)".into());
    }
    Ok((header, out, missing))
}

fn parse_ms(rfc3339: &str) -> i64 {
    rfc3339.parse::<k8s_openapi::jiff::Timestamp>().map(|t| t.as_millisecond()).unwrap_or(0)
}

/// Sorts and renders the entries with each one's delay after the first.
pub fn render(entries: &mut [Entry]) -> Vec<String> {
    entries.sort_by(|a, b| a.at_ms.cmp(&b.at_ms).then(a.what.cmp(&b.what)));
    let t0 = entries.first().map(|e| e.at_ms).unwrap_or(0);
    entries
        .iter()
        .map(|e| format!("{:<32} {:>+9.3}s  {}", e.at, (e.at_ms - t0) as f64 / 1000.0, e.what))
        .collect()
}

/// `minik trace`.
pub fn trace(state_dir: &Path, target: &str, ns: &str) -> anyhow::Result<()> {
    let name = parse_target(target)?;
    let cfg = ClusterConfig::load(state_dir)?;
    let kc = cfg.layout().host_kubeconfig();
    let rt = tokio::runtime::Builder::new_current_thread().enable_all().build()?;
    let (header, mut entries, missing) = rt.block_on(async {
        let client = minik_shared::apiclient::connect(Some(&kc)).await?;
        gather(client, ns, &name, &cfg.node_names()).await
    })?;
    println!("{header}");
    println!("{:<32} {:>10}  STEP", "TIME", "+DELTA");
    for l in render(&mut entries) {
        println!("{l}");
    }
    for m in missing {
        println!("missing: {m}");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn targets() {
        assert_eq!(parse_target("svc/api-service").expect("svc"), "api-service");
        assert_eq!(parse_target("service/x").expect("service"), "x");
        assert_eq!(parse_target("x").expect("bare"), "x");
        assert!(parse_target("rs/x").expect_err("rs").to_string().contains("svc/NAME"));
    }

    #[test]
    fn entries_sort_with_deltas_from_the_first() {
        let mut es = vec![
            Entry { at_ms: 2500, at: "b".into(), what: "4-5. node1: rules".into() },
            Entry { at_ms: 1000, at: "a".into(), what: "1. Service stored".into() },
        ];
        let lines = render(&mut es);
        assert!(lines[0].contains("+0.000s") && lines[0].contains("1. Service"), "{lines:?}");
        assert!(lines[1].contains("+1.500s"), "{lines:?}");
    }
}
