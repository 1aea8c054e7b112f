//! Glue for kube-runtime controllers: the shared error policy and the handling of a
//! controller's result stream (a reconcile error is logged once, in the error policy).

use std::fmt::Debug;
use std::time::Duration;

use futures::{Stream, StreamExt};
use kube::runtime::controller::{Action, Error as CtrlError};
use kube::runtime::reflector::ObjectRef;
use kube::runtime::watcher;
use kube::Resource;

use crate::util::Error;

/// Requeue a failed reconcile after a short back-off; the error is logged here, once.
pub fn error_policy<K: Resource>(obj: &K, err: &Error, controller: &'static str) -> Action {
    let name = obj.meta().name.as_deref().unwrap_or("");
    let ns = obj.meta().namespace.as_deref().unwrap_or("");
    match err {
        Error::Kube(kube::Error::Api(s)) if s.code == 409 => {
            tracing::debug!(controller, namespace = ns, name, "conflict, retrying");
            Action::requeue(Duration::from_millis(200))
        }
        _ => {
            tracing::warn!(controller, namespace = ns, name, error = %err, "reconcile failed");
            Action::requeue(Duration::from_secs(2))
        }
    }
}

/// Drive a controller's result stream to its end. Reconciler failures were logged by
/// [`error_policy`]; queue (watch) errors are logged here.
pub async fn drain<K, S>(controller: &'static str, stream: S)
where
    K: Resource + Debug,
    K::DynamicType: Debug,
    S: Stream<Item = Result<(ObjectRef<K>, Action), CtrlError<Error, watcher::Error>>>,
{
    stream
        .for_each(|r| async move {
            match r {
                Ok((obj, _)) => tracing::trace!(controller, object = %obj, "reconciled"),
                Err(CtrlError::ReconcilerFailed(..)) => {}
                Err(CtrlError::ObjectNotFound(obj)) => {
                    tracing::trace!(controller, object = %obj, "object gone")
                }
                Err(e) => tracing::warn!(controller, error = %e, "controller queue error"),
            }
        })
        .await;
}

/// A watcher configuration tolerant of servers that lack bookmarks.
pub fn watch_config() -> watcher::Config {
    watcher::Config::default()
}

/// Start a reflector for `api` on its own task; `on_event` sees every watch event
/// after the store has applied it.
pub fn spawn_reflector<K, F>(
    api: kube::Api<K>,
    cfg: watcher::Config,
    mut on_event: F,
) -> (
    kube::runtime::reflector::Store<K>,
    tokio::task::JoinHandle<()>,
)
where
    K: Resource<DynamicType = ()>
        + Clone
        + serde::de::DeserializeOwned
        + Debug
        + Send
        + Sync
        + 'static,
    F: FnMut(&watcher::Event<K>) + Send + 'static,
{
    use kube::runtime::WatchStreamExt;
    let (reader, writer) = kube::runtime::reflector::store();
    let stream = watcher(api, cfg).default_backoff().reflect(writer);
    let handle = tokio::spawn(async move {
        let mut stream = std::pin::pin!(stream);
        while let Some(ev) = stream.next().await {
            match ev {
                Ok(ev) => on_event(&ev),
                Err(e) => tracing::debug!(kind = %K::kind(&()), error = %e, "watch error"),
            }
        }
    });
    (reader, handle)
}
