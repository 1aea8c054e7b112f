//! The load-balancer IP allocator (what a cloud's service controller, or MetalLB's,
//! does): every `type: LoadBalancer` Service gets a free address of the pool
//! (`--load-balancer-pool CIDR`) written to `status.loadBalancer.ingress[0].ip` (a
//! status patch), and loses it when its type changes; a deleted Service's address is
//! free again. Without a pool the controller does not run and Services stay
//! `<pending>`, as on a cluster without a cloud provider. minikproxy then DNATs the IP
//! and one node announces it on the underlay.
//!
//! As the node IPAM controller, it keeps no allocator state: what is taken is read from
//! the Services themselves on every allocation, under a mutex (the kube-rs controller
//! reconciles different Services concurrently). `spec.loadBalancerIP`, when set, in the
//! pool and free, is honoured; Services with a `loadBalancerClass` are someone else's.

use std::collections::BTreeSet;
use std::net::Ipv4Addr;
use std::sync::Arc;

use ipnet::Ipv4Net;
use k8s_openapi::api::core::v1::Service;
use kube::api::{ListParams, Patch, PatchParams};
use kube::runtime::controller::{Action, Controller};
use kube::{Api, Client, ResourceExt};
use tokio::sync::Mutex;

use crate::events::{EventType, Recorder};
use crate::runtime::{drain, error_policy, watch_config};
use crate::util::{Error, Result};

const NAME: &str = "service-lb-controller";

struct Ctx {
    client: Client,
    pool: Ipv4Net,
    lock: Mutex<()>,
    recorder: Recorder,
}

/// Run the allocator until the watch stream ends; without a pool, wait forever (Services
/// stay pending).
pub async fn run(client: Client, pool: Option<Ipv4Net>) {
    let Some(pool) = pool else {
        tracing::info!("no --load-balancer-pool: LoadBalancer Services stay <pending>");
        return std::future::pending().await;
    };
    let recorder = Recorder::new(client.clone(), NAME, None);
    let ctx = Arc::new(Ctx {
        client: client.clone(),
        pool,
        lock: Mutex::new(()),
        recorder,
    });
    let stream = Controller::new(Api::<Service>::all(client), watch_config()).run(
        reconcile,
        |s, e, _| error_policy(s.as_ref(), e, NAME),
        ctx,
    );
    drain(NAME, stream).await;
}

fn is_ours(svc: &Service) -> bool {
    svc.spec.as_ref().is_some_and(|s| {
        s.type_.as_deref() == Some("LoadBalancer")
            && s.load_balancer_class.as_deref().is_none_or(str::is_empty)
    }) && svc.metadata.deletion_timestamp.is_none()
}

/// The IPv4 ingress IPs in a Service's status.
fn ingress_ips(svc: &Service) -> Vec<Ipv4Addr> {
    svc.status
        .as_ref()
        .and_then(|s| s.load_balancer.as_ref())
        .and_then(|lb| lb.ingress.as_ref())
        .map(|i| {
            i.iter()
                .filter_map(|x| x.ip.as_deref()?.parse().ok())
                .collect()
        })
        .unwrap_or_default()
}

async fn reconcile(svc: Arc<Service>, ctx: Arc<Ctx>) -> Result<Action> {
    let mine: Vec<Ipv4Addr> = ingress_ips(&svc)
        .into_iter()
        .filter(|ip| ctx.pool.contains(ip))
        .collect();
    let ns = svc.namespace().unwrap_or_default();
    let name = svc.name_any();
    let api: Api<Service> = Api::namespaced(ctx.client.clone(), &ns);
    if !is_ours(&svc) {
        if !mine.is_empty() && svc.metadata.deletion_timestamp.is_none() {
            let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": null}}});
            api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
                .await?;
            tracing::info!(service = %format!("{ns}/{name}"), "released the load-balancer IP (no longer a LoadBalancer)");
        }
        return Ok(Action::await_change());
    }
    let _guard = ctx.lock.lock().await;
    // Read the taken addresses fresh, under the lock: the cache may lag behind an
    // allocation just made.
    let all = Api::<Service>::all(ctx.client.clone())
        .list(&ListParams::default())
        .await?;
    let uid = svc.metadata.uid.clone();
    let taken: BTreeSet<Ipv4Addr> = all
        .items
        .iter()
        .filter(|s| s.metadata.uid != uid && is_ours(s))
        .flat_map(ingress_ips)
        .collect();
    let current = all
        .items
        .iter()
        .find(|s| s.metadata.uid == uid)
        .map(ingress_ips)
        .unwrap_or_default();
    if current
        .iter()
        .any(|ip| ctx.pool.contains(ip) && !taken.contains(ip))
    {
        return Ok(Action::await_change());
    }
    let requested = svc
        .spec
        .as_ref()
        .and_then(|s| s.load_balancer_ip.as_deref())
        .and_then(|ip| ip.parse().ok());
    let Some(ip) = pick(ctx.pool, requested, &taken) else {
        let msg = format!(
            "no free address left in the load-balancer pool {}",
            ctx.pool
        );
        ctx.recorder
            .publish(svc.as_ref(), EventType::Warning, "AllocationFailed", &msg)
            .await;
        return Err(Error::Other(msg));
    };
    let patch = serde_json::json!({"status": {"loadBalancer": {"ingress": [{"ip": ip.to_string(), "ipMode": "VIP"}]}}});
    api.patch_status(&name, &PatchParams::default(), &Patch::Merge(&patch))
        .await?;
    tracing::info!(service = %format!("{ns}/{name}"), %ip, "allocated a load-balancer IP");
    ctx.recorder
        .publish(
            svc.as_ref(),
            EventType::Normal,
            "IPAllocated",
            &format!("Assigned IP {ip}"),
        )
        .await;
    Ok(Action::await_change())
}

/// The requested address when it is in the pool and free, else the first free one.
fn pick(
    pool: Ipv4Net,
    requested: Option<Ipv4Addr>,
    taken: &BTreeSet<Ipv4Addr>,
) -> Option<Ipv4Addr> {
    if let Some(r) = requested.filter(|r| pool.contains(r) && !taken.contains(r)) {
        return Some(r);
    }
    pool.hosts().find(|ip| !taken.contains(ip))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pool() -> Ipv4Net {
        "192.168.50.200/30".parse().expect("cidr")
    }

    #[test]
    fn first_free_host_of_the_pool() {
        let mut taken = BTreeSet::new();
        assert_eq!(
            pick(pool(), None, &taken),
            Some(Ipv4Addr::new(192, 168, 50, 201))
        );
        taken.insert(Ipv4Addr::new(192, 168, 50, 201));
        assert_eq!(
            pick(pool(), None, &taken),
            Some(Ipv4Addr::new(192, 168, 50, 202))
        );
        taken.insert(Ipv4Addr::new(192, 168, 50, 202));
        assert_eq!(pick(pool(), None, &taken), None);
    }

    #[test]
    fn a_requested_address_wins_when_free_and_in_the_pool() {
        let taken = BTreeSet::new();
        assert_eq!(
            pick(pool(), Some(Ipv4Addr::new(192, 168, 50, 202)), &taken),
            Some(Ipv4Addr::new(192, 168, 50, 202))
        );
        assert_eq!(
            pick(pool(), Some(Ipv4Addr::new(10, 0, 0, 1)), &taken),
            Some(Ipv4Addr::new(192, 168, 50, 201))
        );
    }

    #[test]
    fn only_unclassed_load_balancers_are_ours() {
        let lb: Service =
            serde_json::from_value(serde_json::json!({"spec": {"type": "LoadBalancer"}}))
                .expect("svc");
        let classed: Service = serde_json::from_value(
            serde_json::json!({"spec": {"type": "LoadBalancer", "loadBalancerClass": "x/y"}}),
        )
        .expect("svc");
        let np: Service =
            serde_json::from_value(serde_json::json!({"spec": {"type": "NodePort"}})).expect("svc");
        assert!(is_ours(&lb) && !is_ours(&classed) && !is_ours(&np));
    }
}
