//! The namespace controller: a namespace being deleted (deletionTimestamp set, phase
//! Terminating) that still carries the `kubernetes` finalizer in `spec.finalizers`
//! gets every namespaced object deleted, and once nothing is left, the finalizer is
//! removed with `PUT /api/v1/namespaces/NAME/finalize` (the server then deletes the
//! namespace).
//!
//! miniapi deletes the contents of a terminating namespace itself (and then the
//! namespace) about 200 ms after the DELETE: the controller first gives the server
//! a moment, so against miniapi it finds the namespace already gone and does
//! nothing; against a server that leaves this to a controller it does the work.

use std::sync::Arc;
use std::time::Duration;

use k8s_openapi::api::core::v1::Namespace;
use kube::api::{DeleteParams, ListParams, PostParams};
use kube::core::discovery::verbs;
use kube::runtime::controller::{Action, Controller};
use kube::{Api, Client, ResourceExt};

use crate::gc::discover;
use crate::runtime::{drain, error_policy, watch_config};
use crate::util::{ignore_not_found, seconds_since, Result};

const NAME: &str = "namespace-controller";
const FINALIZER: &str = "kubernetes";
/// How long a server that finalizes namespaces itself is given first.
const SERVER_GRACE: f64 = 2.0;

struct Ctx {
    client: Client,
}

/// Run the namespace controller until the watch stream ends.
pub async fn run(client: Client) {
    let stream = Controller::new(Api::<Namespace>::all(client.clone()), watch_config()).run(
        reconcile,
        |ns, e, _| error_policy(ns.as_ref(), e, NAME),
        Arc::new(Ctx { client }),
    );
    drain(NAME, stream).await;
}

async fn reconcile(ns: Arc<Namespace>, ctx: Arc<Ctx>) -> Result<Action> {
    let Some(ts) = ns.metadata.deletion_timestamp.as_ref() else {
        return Ok(Action::await_change());
    };
    let has_finalizer = ns
        .spec
        .as_ref()
        .and_then(|s| s.finalizers.as_ref())
        .is_some_and(|f| f.iter().any(|x| x == FINALIZER));
    if !has_finalizer {
        return Ok(Action::await_change());
    }
    let age = seconds_since(ts);
    if age < SERVER_GRACE {
        return Ok(Action::requeue(Duration::from_secs_f64(
            SERVER_GRACE - age + 0.1,
        )));
    }
    let name = ns.name_any();
    let remaining = delete_contents(&ctx.client, &name).await?;
    if remaining > 0 {
        tracing::info!(namespace = %name, remaining, "namespace content still being deleted");
        return Ok(Action::requeue(Duration::from_secs(2)));
    }
    let api: Api<Namespace> = Api::all(ctx.client.clone());
    let Some(mut cur) = api.get_opt(&name).await? else {
        return Ok(Action::await_change());
    };
    if let Some(spec) = cur.spec.as_mut() {
        if let Some(f) = spec.finalizers.as_mut() {
            f.retain(|x| x != FINALIZER);
        }
    }
    ignore_not_found(
        api.replace_subresource("finalize", &name, &PostParams::default(), &cur)
            .await,
    )?;
    tracing::info!(namespace = %name, "namespace finalized");
    Ok(Action::await_change())
}

/// Delete every namespaced object in `ns`; returns how many were still present.
async fn delete_contents(client: &Client, ns: &str) -> Result<usize> {
    let resources = discover(client).await?;
    let mut remaining = 0;
    for r in resources
        .iter()
        .filter(|r| r.namespaced && r.supports(verbs::LIST) && r.supports(verbs::DELETE))
        // events.k8s.io events are a second view of core events.
        .filter(|r| !(r.ar.plural == "events" && r.ar.group == "events.k8s.io"))
    {
        let api = r.api(client, Some(ns));
        let list = match api.list(&ListParams::default()).await {
            Ok(l) => l,
            Err(e) if crate::util::is_status(&e, 404) || crate::util::is_status(&e, 405) => {
                continue
            }
            Err(e) => return Err(e.into()),
        };
        if list.items.is_empty() {
            continue;
        }
        remaining += list.items.len();
        for obj in list.items {
            if obj.metadata.deletion_timestamp.is_some() {
                continue;
            }
            ignore_not_found(
                api.delete(&obj.name_any(), &DeleteParams::background())
                    .await,
            )?;
        }
    }
    Ok(remaining)
}
