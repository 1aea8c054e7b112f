//! End-to-end tests of the controllers and the scheduler against a running miniapi,
//! with fake nodes and a fake kubelet (see `common`).

#![allow(clippy::unwrap_used, clippy::expect_used, missing_docs)]

mod common;

use std::collections::{BTreeSet, HashSet};
use std::time::{Duration, Instant};

use common::{Cluster, Timings};
use k8s_openapi::api::apps::v1::{Deployment, ReplicaSet};
use k8s_openapi::api::core::v1::{ConfigMap, Endpoints, Namespace, Node, Pod};
use k8s_openapi::api::discovery::v1::EndpointSlice;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::{Api, ResourceExt};
use serde_json::json;

const T: Duration = Duration::from_secs(30);

fn rs_manifest(name: &str, replicas: i32) -> String {
    format!(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata:
  name: {name}
spec:
  replicas: {replicas}
  selector:
    matchLabels: {{app: {name}}}
  template:
    metadata:
      labels: {{app: {name}, tier: web}}
    spec:
      containers:
      - name: main
        image: demo-api:a
        ports: [{{name: http, containerPort: 8080}}]
        resources:
          requests: {{cpu: 100m, memory: 64Mi}}
"#
    )
}

fn ready(p: &Pod) -> bool {
    p.status
        .as_ref()
        .and_then(|s| s.conditions.as_ref())
        .is_some_and(|c| c.iter().any(|c| c.type_ == "Ready" && c.status == "True"))
}

fn node_of(p: &Pod) -> Option<String> {
    p.spec.as_ref().and_then(|s| s.node_name.clone())
}

fn ip_of(p: &Pod) -> Option<String> {
    p.status.as_ref().and_then(|s| s.pod_ip.clone())
}

/// (ready ips, not ready ips, ports) of an Endpoints object.
fn endpoints_view(ep: &Endpoints) -> (BTreeSet<String>, BTreeSet<String>, BTreeSet<i32>) {
    let mut r = BTreeSet::new();
    let mut nr = BTreeSet::new();
    let mut ports = BTreeSet::new();
    for s in ep.subsets.iter().flatten() {
        r.extend(s.addresses.iter().flatten().map(|a| a.ip.clone()));
        nr.extend(s.not_ready_addresses.iter().flatten().map(|a| a.ip.clone()));
        ports.extend(s.ports.iter().flatten().map(|p| p.port));
    }
    (r, nr, ports)
}

async fn endpoints(c: &Cluster, name: &str) -> Option<Endpoints> {
    Api::<Endpoints>::namespaced(c.client.clone(), "default")
        .get_opt(name)
        .await
        .ok()
        .flatten()
}

async fn slices(c: &Cluster, svc: &str) -> Vec<EndpointSlice> {
    Api::<EndpointSlice>::namespaced(c.client.clone(), "default")
        .list(&ListParams::default().labels(&format!("kubernetes.io/service-name={svc}")))
        .await
        .unwrap()
        .items
}

/// (ready ips, not-ready ips) over a Service's slices.
async fn slice_view(c: &Cluster, svc: &str) -> (BTreeSet<String>, BTreeSet<String>) {
    let mut r = BTreeSet::new();
    let mut nr = BTreeSet::new();
    for s in slices(c, svc).await {
        for e in s.endpoints {
            let ok = e.conditions.as_ref().and_then(|c| c.ready).unwrap_or(false);
            let set = if ok { &mut r } else { &mut nr };
            set.extend(e.addresses);
        }
    }
    (r, nr)
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn replicaset_scheduler_endpoints_and_gc() {
    let mut c = Cluster::start(Timings {
        grace: "40s",
        eviction: "5m",
    })
    .await;
    for n in ["node-1", "node-2", "node-3"] {
        c.add_node(n, "4", "8Gi", &[]).await;
    }
    c.apply(&rs_manifest("web", 3));
    let rs_api: Api<ReplicaSet> = Api::namespaced(c.client.clone(), "default");

    // Three pods, owned, named <rs>-<5 chars>, spread over three nodes, Running+Ready.
    let cl = c.client.clone();
    let pods = c
        .wait("3 ready pods on 3 nodes", T, || {
            let c2 = cl.clone();
            async move {
                let pods: Vec<Pod> = Api::<Pod>::namespaced(c2, "default")
                    .list(&ListParams::default().labels("app=web"))
                    .await
                    .ok()?
                    .items;
                let nodes: HashSet<String> = pods.iter().filter_map(node_of).collect();
                (pods.len() == 3 && nodes.len() == 3 && pods.iter().all(ready)).then_some(pods)
            }
        })
        .await;
    let rs = rs_api.get("web").await.unwrap();
    for p in &pods {
        let r = &p.owner_references()[0];
        assert_eq!((r.kind.as_str(), r.name.as_str()), ("ReplicaSet", "web"));
        assert_eq!(r.uid, rs.metadata.uid.clone().unwrap());
        assert_eq!(
            (r.controller, r.block_owner_deletion),
            (Some(true), Some(true))
        );
        let name = p.name_any();
        let suffix = name.strip_prefix("web-").expect("generateName prefix");
        assert_eq!(suffix.len(), 5, "{name}");
        assert!(suffix
            .chars()
            .all(|ch| ch.is_ascii_lowercase() || ch.is_ascii_digit()));
        assert_eq!(p.labels().get("tier").map(String::as_str), Some("web"));
        let evs = c.events_for("default", &name).await;
        let want = format!(
            "Successfully assigned default/{name} to {}",
            node_of(p).unwrap()
        );
        assert!(
            evs.iter().any(|e| e.reason.as_deref() == Some("Scheduled")
                && e.message.as_deref() == Some(want.as_str())
                && e.source.as_ref().and_then(|s| s.component.as_deref())
                    == Some("default-scheduler")),
            "no Scheduled event for {name}: {evs:?}"
        );
    }
    let c2 = rs_api.clone();
    c.wait("rs status", T, || {
        let api = c2.clone();
        async move {
            let s = api.get("web").await.ok()?.status?;
            (s.replicas == 3
                && s.ready_replicas == Some(3)
                && s.available_replicas == Some(3)
                && s.fully_labeled_replicas == Some(3)
                && s.observed_generation == Some(1))
            .then_some(())
        }
    })
    .await;
    let out = c.kubectl_ok(&["describe", "rs", "web"]);
    assert!(out.contains("SuccessfulCreate"), "{out}");

    // A Service selecting the pods: Endpoints and an EndpointSlice with the IPs and
    // the named target port resolved.
    c.apply(
        r#"apiVersion: v1
kind: Service
metadata: {name: web, labels: {team: a}}
spec:
  selector: {app: web}
  ports: [{name: http, port: 80, targetPort: http}]
"#,
    );
    let ips: BTreeSet<String> = pods.iter().filter_map(ip_of).collect();
    let cc = &c;
    let want = ips.clone();
    let ep = loop_until(cc, "endpoints with 3 ready", || {
        let want = want.clone();
        async move {
            let ep = endpoints(cc, "web").await?;
            let (r, nr, ports) = endpoints_view(&ep);
            (r == want && nr.is_empty() && ports == BTreeSet::from([8080])).then_some(ep)
        }
    })
    .await;
    let addr = &ep.subsets.as_ref().unwrap()[0].addresses.as_ref().unwrap()[0];
    assert_eq!(
        addr.target_ref.as_ref().and_then(|t| t.kind.as_deref()),
        Some("Pod")
    );
    assert!(addr
        .node_name
        .as_deref()
        .is_some_and(|n| n.starts_with("node-")));
    assert!(ep
        .annotations()
        .contains_key("endpoints.kubernetes.io/last-change-trigger-time"));
    let want = ips.clone();
    loop_until(cc, "slice with 3 ready", || {
        let want = want.clone();
        async move { (slice_view(cc, "web").await == (want, BTreeSet::new())).then_some(()) }
    })
    .await;
    let s = &slices(cc, "web").await[0];
    assert!(s.name_any().starts_with("web-"));
    assert_eq!(s.address_type, "IPv4");
    assert_eq!(
        s.labels()
            .get("endpointslice.kubernetes.io/managed-by")
            .map(String::as_str),
        Some("endpointslice-controller.k8s.io")
    );
    assert_eq!(s.labels().get("team").map(String::as_str), Some("a"));
    let port = &s.ports.as_ref().unwrap()[0];
    assert_eq!(
        (port.name.as_deref(), port.port, port.protocol.as_deref()),
        (Some("http"), Some(8080), Some("TCP"))
    );
    let e = &s.endpoints[0];
    assert!(e.node_name.is_some() && e.target_ref.is_some());
    assert_eq!(s.owner_references()[0].kind, "Service");

    // One pod turns not ready: it moves to notReadyAddresses within a second or so.
    let sick = pods[0].name_any();
    let sick_ip = ip_of(&pods[0]).unwrap();
    c.kubelet.set_ready(&sick, false);
    let start = Instant::now();
    let sick_ip2 = sick_ip.clone();
    loop_until(cc, "not-ready pod in notReadyAddresses", || {
        let ip = sick_ip2.clone();
        async move {
            let (r, nr, _) = endpoints_view(&endpoints(cc, "web").await?);
            (nr == BTreeSet::from([ip.clone()]) && r.len() == 2 && !r.contains(&ip)).then_some(())
        }
    })
    .await;
    let sick_ip3 = sick_ip.clone();
    loop_until(cc, "not-ready pod in slice", || {
        let ip = sick_ip3.clone();
        async move {
            let (r, nr) = slice_view(cc, "web").await;
            (nr == BTreeSet::from([ip]) && r.len() == 2).then_some(())
        }
    })
    .await;
    eprintln!(
        "not-ready propagated to endpoints and slices in {:?}",
        start.elapsed()
    );

    // Scale up with kubectl (the scale subresource), then down.
    c.kubectl_ok(&["scale", "rs", "web", "--replicas=5"]);
    loop_until(cc, "5 ready pods, endpoints 4+1", || async move {
        let pods = cc.active_pods("default", "app=web").await;
        let (r, nr, _) = endpoints_view(&endpoints(cc, "web").await?);
        (pods.len() == 5 && r.len() == 4 && nr.len() == 1).then_some(())
    })
    .await;
    c.kubectl_ok(&["scale", "rs", "web", "--replicas=1"]);
    let survivor = loop_until(cc, "1 pod, endpoints 1", || async move {
        let pods = cc.active_pods("default", "app=web").await;
        let all: Vec<Pod> = Api::<Pod>::namespaced(cc.client.clone(), "default")
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items;
        let (r, nr, _) = endpoints_view(&endpoints(cc, "web").await?);
        (pods.len() == 1 && all.len() == 1 && r.len() == 1 && nr.is_empty())
            .then(|| pods[0].clone())
    })
    .await;
    assert_ne!(
        survivor.name_any(),
        sick,
        "the not-ready pod goes first on scale-down"
    );
    let rs2 = rs_api.clone();
    loop_until(cc, "rs status replicas 1", || {
        let api = rs2.clone();
        async move { (api.get("web").await.ok()?.status?.replicas == 1).then_some(()) }
    })
    .await;

    // A deleted pod is replaced.
    c.delete_pod("default", &survivor.name_any()).await;
    let old = survivor.name_any();
    loop_until(cc, "replacement pod", || {
        let old = old.clone();
        async move {
            let pods = cc.active_pods("default", "app=web").await;
            (pods.len() == 1 && pods[0].name_any() != old && ready(&pods[0])).then_some(())
        }
    })
    .await;

    // Deleting the ReplicaSet removes its pods.
    // miniapi answers a DELETE racing a status write with 409 (a server should
    // retry internally): retry like a client would.
    for attempt in 0.. {
        match rs_api.delete("web", &DeleteParams::background()).await {
            Ok(_) => break,
            Err(kube::Error::Api(e)) if e.code == 409 && attempt < 10 => {
                eprintln!("delete rs: {} (retrying)", e.message);
                tokio::time::sleep(Duration::from_millis(100)).await;
            }
            Err(e) => panic!("delete rs: {e}"),
        }
    }
    loop_until(cc, "pods of the deleted rs gone", || async move {
        let all = Api::<Pod>::namespaced(cc.client.clone(), "default")
            .list(&ListParams::default().labels("app=web"))
            .await
            .ok()?
            .items;
        all.is_empty().then_some(())
    })
    .await;
    loop_until(cc, "endpoints emptied", || async move {
        let (r, nr, _) = endpoints_view(&endpoints(cc, "web").await?);
        (r.is_empty() && nr.is_empty()).then_some(())
    })
    .await;

    // The garbage collector: an object whose owner (by uid) is gone is deleted, one
    // with another live owner only loses the dangling reference.
    let cms: Api<ConfigMap> = Api::namespaced(c.client.clone(), "default");
    let parent: ConfigMap =
        serde_json::from_value(json!({"metadata": {"name": "parent"}})).unwrap();
    let parent = cms.create(&PostParams::default(), &parent).await.unwrap();
    let other: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "other"}})).unwrap();
    let other = cms.create(&PostParams::default(), &other).await.unwrap();
    let oref = |cm: &ConfigMap| json!({"apiVersion": "v1", "kind": "ConfigMap", "name": cm.name_any(), "uid": cm.metadata.uid});
    let child: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "child", "ownerReferences": [oref(&parent)]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &child).await.unwrap();
    let shared: ConfigMap = serde_json::from_value(
        json!({"metadata": {"name": "shared", "ownerReferences": [oref(&parent), oref(&other)]}}),
    )
    .unwrap();
    cms.create(&PostParams::default(), &shared).await.unwrap();
    cms.delete("parent", &DeleteParams::background())
        .await
        .unwrap();
    let cms2 = cms.clone();
    let other_uid = other.metadata.uid.clone();
    loop_until(cc, "child configmap collected", || {
        let cms = cms2.clone();
        let other_uid = other_uid.clone();
        async move {
            let child_gone = cms.get_opt("child").await.ok()?.is_none();
            let shared = cms.get_opt("shared").await.ok()??;
            let refs: Vec<_> = shared
                .owner_references()
                .iter()
                .map(|r| r.uid.clone())
                .collect();
            (child_gone && refs == vec![other_uid.unwrap_or_default()]).then_some(())
        }
    })
    .await;

    // Deleting the Service deletes its Endpoints and slices.
    c.kubectl_ok(&["delete", "service", "web"]);
    loop_until(
        cc,
        "endpoints and slices of deleted service gone",
        || async move {
            (endpoints(cc, "web").await.is_none() && slices(cc, "web").await.is_empty())
                .then_some(())
        },
    )
    .await;

    // Namespace deletion (miniapi empties and removes the namespace itself; the
    // namespace controller covers servers that leave it to a controller).
    let nss: Api<Namespace> = Api::all(c.client.clone());
    let ns: Namespace = serde_json::from_value(json!({"metadata": {"name": "scratch"}})).unwrap();
    nss.create(&PostParams::default(), &ns).await.unwrap();
    let cm: ConfigMap = serde_json::from_value(json!({"metadata": {"name": "x"}})).unwrap();
    Api::<ConfigMap>::namespaced(c.client.clone(), "scratch")
        .create(&PostParams::default(), &cm)
        .await
        .unwrap();
    nss.delete("scratch", &DeleteParams::default())
        .await
        .unwrap();
    let nss2 = nss.clone();
    loop_until(cc, "namespace deleted", || {
        let nss = nss2.clone();
        async move { nss.get_opt("scratch").await.ok()?.is_none().then_some(()) }
    })
    .await;
    c.assert_running();
}

/// Poll `f` (bounded by 30 s) with a shared reference to the cluster.
async fn loop_until<T, F, Fut>(c: &Cluster, what: &str, mut f: F) -> T
where
    F: FnMut() -> Fut,
    Fut: std::future::Future<Output = Option<T>>,
{
    let deadline = Instant::now() + T;
    loop {
        if let Some(v) = f().await {
            return v;
        }
        if Instant::now() > deadline {
            c.dump_logs();
            panic!("timed out waiting for {what}");
        }
        tokio::time::sleep(Duration::from_millis(100)).await;
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn deployment_rolling_update_keeps_replicas_ready() {
    let c = Cluster::start(Timings {
        grace: "40s",
        eviction: "5m",
    })
    .await;
    for n in ["node-1", "node-2", "node-3"] {
        c.add_node(n, "4", "8Gi", &[]).await;
    }
    let manifest = |image: &str| {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: api}}
spec:
  replicas: 3
  selector: {{matchLabels: {{app: api}}}}
  strategy:
    type: RollingUpdate
    rollingUpdate: {{maxSurge: 1, maxUnavailable: 0}}
  template:
    metadata: {{labels: {{app: api}}}}
    spec:
      containers: [{{name: api, image: "{image}"}}]
"#
        )
    };
    c.apply(&manifest("demo-api:a"));
    c.kubectl_ok(&["rollout", "status", "deployment/api", "--timeout=60s"]);
    let cc = &c;
    let rss = Api::<ReplicaSet>::namespaced(c.client.clone(), "default");
    let first = rss
        .list(&ListParams::default().labels("app=api"))
        .await
        .unwrap()
        .items;
    assert_eq!(first.len(), 1);
    let hash = first[0]
        .labels()
        .get("pod-template-hash")
        .cloned()
        .expect("pod-template-hash");
    assert_eq!(first[0].name_any(), format!("api-{hash}"));
    assert_eq!(
        first[0]
            .annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("1")
    );
    for p in cc.active_pods("default", "app=api").await {
        assert_eq!(p.labels().get("pod-template-hash"), Some(&hash));
    }

    // Roll to image B while sampling readiness: never fewer than 3 ready pods.
    let client = c.client.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let mut min_ready = usize::MAX;
        let mut samples = 0;
        let api: Api<Pod> = Api::namespaced(client, "default");
        loop {
            if let Ok(l) = api.list(&ListParams::default().labels("app=api")).await {
                let n = l
                    .items
                    .iter()
                    .filter(|p| ready(p) && p.metadata.deletion_timestamp.is_none())
                    .count();
                min_ready = min_ready.min(n);
                samples += 1;
            }
            if stop_rx.try_recv().is_ok() || samples > 3000 {
                return (min_ready, samples);
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    });
    c.apply(&manifest("demo-api:b"));
    c.kubectl_ok(&["rollout", "status", "deployment/api", "--timeout=60s"]);
    let _ = stop_tx.send(());
    let (min_ready, samples) = sampler.await.unwrap();
    assert!(samples > 5, "too few samples");
    assert!(
        min_ready >= 3,
        "ready pods dropped to {min_ready} during the rollout"
    );

    let pods = loop_until(cc, "3 pods of image b", || async move {
        let pods = cc.active_pods("default", "app=api").await;
        let all = Api::<Pod>::namespaced(cc.client.clone(), "default")
            .list(&ListParams::default().labels("app=api"))
            .await
            .ok()?
            .items;
        (all.len() == 3
            && pods.iter().all(|p| {
                p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("demo-api:b")
            }))
        .then_some(pods)
    })
    .await;
    assert_eq!(pods.len(), 3);
    let d = Api::<Deployment>::namespaced(c.client.clone(), "default")
        .get("api")
        .await
        .unwrap();
    let st = d.status.clone().unwrap();
    assert_eq!(
        (
            st.replicas,
            st.updated_replicas,
            st.ready_replicas,
            st.available_replicas
        ),
        (Some(3), Some(3), Some(3), Some(3))
    );
    let conds = st.conditions.unwrap();
    let cond = |t: &str| conds.iter().find(|c| c.type_ == t).cloned().unwrap();
    assert_eq!(cond("Available").status, "True");
    assert_eq!(
        cond("Progressing").reason.as_deref(),
        Some("NewReplicaSetAvailable")
    );
    assert_eq!(
        d.annotations()
            .get("deployment.kubernetes.io/revision")
            .map(String::as_str),
        Some("2")
    );
    let all = rss
        .list(&ListParams::default().labels("app=api"))
        .await
        .unwrap()
        .items;
    assert_eq!(all.len(), 2);
    for rs in &all {
        let want = if rs.labels().get("pod-template-hash") == Some(&hash) {
            0
        } else {
            3
        };
        assert_eq!(
            rs.spec.as_ref().unwrap().replicas,
            Some(want),
            "{}",
            rs.name_any()
        );
    }
    let history = c.kubectl_ok(&["rollout", "history", "deployment/api"]);
    assert!(history.contains('1') && history.contains('2'), "{history}");
    let out = c.kubectl_ok(&["describe", "deployment", "api"]);
    assert!(out.contains("ScalingReplicaSet"), "{out}");

    // Scaling the deployment scales its new set.
    c.kubectl_ok(&["scale", "deployment", "api", "--replicas=5"]);
    loop_until(cc, "5 pods after scaling", || async move {
        (cc.active_pods("default", "app=api")
            .await
            .iter()
            .filter(|p| ready(p))
            .count()
            == 5)
            .then_some(())
    })
    .await;
    c.kubectl_ok(&["rollout", "status", "deployment/api", "--timeout=30s"]);
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn dead_node_goes_not_ready_and_its_pods_move() {
    let c = Cluster::start(Timings::default()).await;
    for n in ["node-1", "node-2", "node-3"] {
        c.add_node(n, "4", "8Gi", &[]).await;
    }
    c.apply(&rs_manifest("app", 3));
    let cc = &c;
    let pods = loop_until(cc, "3 ready pods on 3 nodes", || async move {
        let pods = cc.active_pods("default", "app=app").await;
        let nodes: HashSet<String> = pods.iter().filter_map(node_of).collect();
        (pods.len() == 3 && nodes.len() == 3 && pods.iter().all(ready)).then_some(pods)
    })
    .await;
    let victim = pods
        .iter()
        .find(|p| node_of(p).as_deref() == Some("node-2"))
        .unwrap()
        .name_any();

    c.kubelet.set_alive("node-2", false);
    let t0 = Instant::now();
    let nodes: Api<Node> = Api::all(c.client.clone());
    let nodes2 = nodes.clone();
    loop_until(cc, "node-2 NotReady and tainted", || {
        let nodes = nodes2.clone();
        async move {
            let n = nodes.get("node-2").await.ok()?;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .find(|c| c.type_ == "Ready")?
                .clone();
            let tainted = n
                .spec
                .as_ref()?
                .taints
                .as_ref()?
                .iter()
                .any(|t| t.key == "node.kubernetes.io/unreachable" && t.effect == "NoExecute");
            (ready.status == "Unknown"
                && ready.reason.as_deref() == Some("NodeStatusUnknown")
                && tainted)
                .then_some(())
        }
    })
    .await;
    eprintln!("node-2 NotReady after {:?}", t0.elapsed());
    assert!(
        t0.elapsed() >= Duration::from_secs(2),
        "marked NotReady before the grace period"
    );
    let out = c.kubectl_ok(&["get", "nodes"]);
    assert!(
        out.lines()
            .any(|l| l.starts_with("node-2") && l.contains("NotReady")),
        "{out}"
    );
    assert!(
        out.lines()
            .any(|l| l.starts_with("node-1") && l.contains(" Ready")),
        "{out}"
    );

    // After the eviction timeout the pod is deleted and recreated elsewhere.
    let victim2 = victim.clone();
    loop_until(cc, "replacement pods on the live nodes", || {
        let victim = victim2.clone();
        async move {
            let pods = cc.active_pods("default", "app=app").await;
            let ok = pods.len() == 3
                && pods
                    .iter()
                    .all(|p| ready(p) && node_of(p).as_deref() != Some("node-2"))
                && pods.iter().all(|p| p.name_any() != victim);
            ok.then_some(())
        }
    })
    .await;
    eprintln!("pods moved off node-2 after {:?}", t0.elapsed());
    let evs = c.events_for("default", &victim).await;
    assert!(
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("TaintManagerEviction")),
        "{evs:?}"
    );

    // The node comes back: Ready, taints removed.
    c.kubelet.set_alive("node-2", true);
    let nodes3 = nodes.clone();
    loop_until(cc, "node-2 Ready again", || {
        let nodes = nodes3.clone();
        async move {
            let n = nodes.get("node-2").await.ok()?;
            let ready = n
                .status
                .as_ref()?
                .conditions
                .as_ref()?
                .iter()
                .any(|c| c.type_ == "Ready" && c.status == "True");
            let clean = n
                .spec
                .as_ref()?
                .taints
                .as_ref()
                .is_none_or(|t| t.is_empty());
            (ready && clean).then_some(())
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn unschedulable_pod_waits_for_a_node() {
    let c = Cluster::start(Timings {
        grace: "40s",
        eviction: "5m",
    })
    .await;
    c.add_node("small", "1", "2Gi", &[]).await;
    c.add_node("cordoned", "8", "16Gi", &[]).await;
    c.kubectl_ok(&["cordon", "cordoned"]);
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata: {name: big}
spec:
  containers:
  - name: main
    image: demo-api:a
    resources: {requests: {cpu: "2", memory: 1Gi}}
---
apiVersion: v1
kind: Pod
metadata: {name: picky}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: main, image: demo-api:a}]
"#,
    );
    let cc = &c;
    loop_until(cc, "FailedScheduling for big: 0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable.", || async move {
        let evs = cc.events_for("default", "big").await;
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("FailedScheduling") && e.message.as_deref() == Some("0/2 nodes are available: 1 Insufficient cpu, 1 node(s) were unschedulable."))
            .then_some(())
    })
    .await;
    loop_until(cc, "FailedScheduling for picky: 0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable.", || async move {
        let evs = cc.events_for("default", "picky").await;
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("FailedScheduling") && e.message.as_deref() == Some("0/2 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 1 node(s) were unschedulable."))
            .then_some(())
    })
    .await;
    let pods: Api<Pod> = Api::namespaced(c.client.clone(), "default");
    let big = pods.get("big").await.unwrap();
    let cond = big
        .status
        .unwrap()
        .conditions
        .unwrap()
        .into_iter()
        .find(|c| c.type_ == "PodScheduled")
        .unwrap();
    assert_eq!(
        (cond.status.as_str(), cond.reason.as_deref()),
        ("False", Some("Unschedulable"))
    );
    let describe = c.kubectl_ok(&["describe", "pod", "big"]);
    assert!(describe.contains("FailedScheduling"), "{describe}");

    // A node that fits arrives: both get scheduled there.
    c.add_node("large", "4", "8Gi", &[("disk", "ssd")]).await;
    let pods2 = pods.clone();
    loop_until(cc, "big and picky scheduled on large", || {
        let pods = pods2.clone();
        async move {
            let big = pods.get("big").await.ok()?;
            let picky = pods.get("picky").await.ok()?;
            (node_of(&big).as_deref() == Some("large")
                && node_of(&picky).as_deref() == Some("large"))
            .then_some(())
        }
    })
    .await;
    let evs = c.events_for("default", "big").await;
    assert!(
        evs.iter().any(|e| e.reason.as_deref() == Some("Scheduled")
            && e.message.as_deref() == Some("Successfully assigned default/big to large")),
        "{evs:?}"
    );

    // Taints: a NoSchedule taint keeps pods away unless tolerated.
    c.kubectl_ok(&["taint", "nodes", "large", "dedicated=gpu:NoSchedule"]);
    c.kubectl_ok(&["uncordon", "cordoned"]);
    c.kubectl_ok(&["taint", "nodes", "cordoned", "dedicated=gpu:NoSchedule"]);
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata: {name: tolerant}
spec:
  tolerations: [{key: dedicated, operator: Equal, value: gpu, effect: NoSchedule}]
  nodeSelector: {disk: ssd}
  containers: [{name: main, image: demo-api:a}]
---
apiVersion: v1
kind: Pod
metadata: {name: intolerant}
spec:
  nodeSelector: {disk: ssd}
  containers: [{name: main, image: demo-api:a}]
"#,
    );
    let pods3 = pods.clone();
    loop_until(cc, "tolerant scheduled", || {
        let pods = pods3.clone();
        async move {
            (node_of(&pods.get("tolerant").await.ok()?).as_deref() == Some("large")).then_some(())
        }
    })
    .await;
    loop_until(cc, "FailedScheduling for intolerant (taint)", || async move {
        let evs = cc.events_for("default", "intolerant").await;
        evs.iter()
            .any(|e| e.reason.as_deref() == Some("FailedScheduling")
                && e.message.as_deref() == Some("0/3 nodes are available: 1 node(s) didn't match Pod's node affinity/selector, 2 node(s) had untolerated taint {dedicated: gpu}."))
            .then_some(())
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn adoption_and_recreate_strategy() {
    let c = Cluster::start(Timings {
        grace: "40s",
        eviction: "5m",
    })
    .await;
    for n in ["node-1", "node-2"] {
        c.add_node(n, "4", "8Gi", &[]).await;
    }
    let cc = &c;
    // An orphan pod matching a new ReplicaSet's selector is adopted, not duplicated.
    c.apply(
        r#"apiVersion: v1
kind: Pod
metadata: {name: stray, labels: {app: adopt}}
spec:
  containers: [{name: main, image: demo-api:a}]
"#,
    );
    c.apply(
        r#"apiVersion: apps/v1
kind: ReplicaSet
metadata: {name: adopt}
spec:
  replicas: 2
  selector: {matchLabels: {app: adopt}}
  template:
    metadata: {labels: {app: adopt}}
    spec:
      containers: [{name: main, image: demo-api:a}]
"#,
    );
    let rs_uid = Api::<ReplicaSet>::namespaced(c.client.clone(), "default")
        .get("adopt")
        .await
        .unwrap()
        .metadata
        .uid;
    loop_until(cc, "stray adopted, 2 pods in all", || {
        let rs_uid = rs_uid.clone();
        async move {
            let pods = cc.active_pods("default", "app=adopt").await;
            let stray = pods.iter().find(|p| p.name_any() == "stray")?;
            let owned = stray
                .owner_references()
                .iter()
                .any(|r| Some(&r.uid) == rs_uid.as_ref() && r.controller == Some(true));
            (owned && pods.len() == 2 && pods.iter().all(ready)).then_some(())
        }
    })
    .await;
    tokio::time::sleep(Duration::from_millis(500)).await;
    assert_eq!(cc.active_pods("default", "app=adopt").await.len(), 2);

    // Recreate: all old pods are gone before any new one is created.
    let manifest = |image: &str| {
        format!(
            r#"apiVersion: apps/v1
kind: Deployment
metadata: {{name: rc}}
spec:
  replicas: 2
  selector: {{matchLabels: {{app: rc}}}}
  strategy: {{type: Recreate}}
  template:
    metadata: {{labels: {{app: rc}}}}
    spec:
      containers: [{{name: main, image: "{image}"}}]
"#
        )
    };
    c.apply(&manifest("demo-api:a"));
    c.kubectl_ok(&["rollout", "status", "deployment/rc", "--timeout=60s"]);
    let client = c.client.clone();
    let (stop_tx, mut stop_rx) = tokio::sync::oneshot::channel::<()>();
    let sampler = tokio::spawn(async move {
        let api: Api<Pod> = Api::namespaced(client, "default");
        let mut mixed = 0;
        for _ in 0..3000 {
            if let Ok(l) = api.list(&ListParams::default().labels("app=rc")).await {
                let images: HashSet<String> = l
                    .items
                    .iter()
                    .filter_map(|p| p.spec.as_ref()?.containers[0].image.clone())
                    .collect();
                if images.len() > 1 {
                    mixed += 1;
                }
            }
            if stop_rx.try_recv().is_ok() {
                break;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
        mixed
    });
    c.apply(&manifest("demo-api:b"));
    c.kubectl_ok(&["rollout", "status", "deployment/rc", "--timeout=60s"]);
    let _ = stop_tx.send(());
    assert_eq!(
        sampler.await.unwrap(),
        0,
        "old and new pods coexisted under Recreate"
    );
    let pods = cc.active_pods("default", "app=rc").await;
    assert_eq!(pods.len(), 2);
    assert!(pods
        .iter()
        .all(|p| p.spec.as_ref().unwrap().containers[0].image.as_deref() == Some("demo-api:b")));
    let out = c.kubectl_ok(&["get", "deployment", "rc"]);
    assert!(out.contains("2/2"), "{out}");
}
