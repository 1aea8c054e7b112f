//! The pod's status as the Kubernetes API shows it: phase, conditions, IPs and
//! containerStatuses (state, lastState, ready, started, restartCount), computed from the
//! worker's state the way the kubelet computes it.

use std::time::SystemTime;

use k8s_openapi::api::core::v1::{
    ContainerState, ContainerStateRunning, ContainerStateTerminated, ContainerStateWaiting, ContainerStatus, PodCondition,
    PodIP, PodStatus,
};
use k8s_openapi::apimachinery::pkg::apis::meta::v1::Time;
use k8s_openapi::jiff::Timestamp;

use crate::podworker::{Phase, PodWorker};
use crate::state::Termination;
use crate::timefmt::unix;

fn time(epoch: f64) -> Option<Time> {
    if epoch <= 0.0 {
        return None;
    }
    Timestamp::from_second(epoch as i64).ok().map(Time)
}

fn terminated(t: &Termination) -> ContainerState {
    ContainerState {
        terminated: Some(ContainerStateTerminated {
            exit_code: t.exit_code,
            signal: t.signal,
            reason: Some(t.reason.clone()),
            message: t.message.clone(),
            started_at: time(t.started_at),
            finished_at: time(t.finished_at),
            container_id: Some(format!("minik://{}", t.id)),
        }),
        ..Default::default()
    }
}

fn condition(kind: &str, ok: bool, reason: Option<&str>) -> PodCondition {
    PodCondition {
        type_: kind.into(),
        status: if ok { "True" } else { "False" }.into(),
        reason: if ok { None } else { reason.map(String::from) },
        last_transition_time: time(unix(SystemTime::now())),
        ..Default::default()
    }
}

/// Computes the status.
pub fn pod_status(w: &PodWorker, sandbox_error: Option<&str>) -> PodStatus {
    let statuses: Vec<ContainerStatus> = w
        .ctrs
        .iter()
        .map(|c| {
            let state = match &c.phase {
                Phase::Running(since) => ContainerState {
                    running: Some(ContainerStateRunning { started_at: time(*since) }),
                    ..Default::default()
                },
                Phase::Terminated => c.rec.termination.as_ref().map(terminated).unwrap_or_default(),
                Phase::Waiting { reason, message } => ContainerState {
                    waiting: Some(ContainerStateWaiting { reason: Some(reason.clone()), message: message.clone() }),
                    ..Default::default()
                },
            };
            let last = c.rec.last_termination.as_ref().or(c.rec.termination.as_ref().filter(|_| !matches!(c.phase, Phase::Terminated)));
            ContainerStatus {
                name: c.spec.name.clone(),
                image: c.spec.image.clone().unwrap_or_default(),
                image_id: c.rec.image_id.clone().unwrap_or_default(),
                container_id: c.rec.id.as_ref().map(|id| format!("minik://{id}")),
                ready: c.ready,
                started: Some(c.started),
                restart_count: c.rec.restart_count,
                state: Some(state),
                last_state: last.map(terminated),
                ..Default::default()
            }
        })
        .collect();
    let policy = w.rec.pod.spec.as_ref().and_then(|s| s.restart_policy.clone()).unwrap_or_else(|| "Always".into());
    let all_final = !w.ctrs.is_empty() && w.ctrs.iter().all(|c| matches!(c.phase, Phase::Terminated));
    let any_ran = w
        .ctrs
        .iter()
        .any(|c| matches!(c.phase, Phase::Running(_)) || c.rec.restart_count > 0 || c.rec.termination.is_some());
    let phase = if all_final {
        if w.ctrs.iter().all(|c| c.rec.termination.as_ref().is_some_and(|t| t.exit_code == 0)) { "Succeeded" } else { "Failed" }
    } else if any_ran && policy != "Never" || w.ctrs.iter().any(|c| matches!(c.phase, Phase::Running(_))) {
        "Running"
    } else {
        "Pending"
    };
    let all_ready = !w.ctrs.is_empty() && w.ctrs.iter().all(|c| c.ready);
    let sandbox_ok = w.rec.sandbox.is_some();
    let ips = w.rec.sandbox.as_ref().map(|s| s.ips.clone()).unwrap_or_default();
    let _ = sandbox_error;
    PodStatus {
        phase: Some(phase.into()),
        conditions: Some(vec![
            condition("PodReadyToStartContainers", sandbox_ok, None),
            condition("Initialized", true, None),
            condition("Ready", all_ready, Some("ContainersNotReady")),
            condition("ContainersReady", all_ready, Some("ContainersNotReady")),
            condition("PodScheduled", true, None),
        ]),
        pod_ip: ips.first().map(|i| i.to_string()),
        pod_ips: Some(ips.iter().map(|i| PodIP { ip: i.to_string() }).collect()),
        start_time: time(w.rec.created_at),
        container_statuses: Some(statuses),
        qos_class: Some("BestEffort".into()),
        ..Default::default()
    }
}

/// The STATUS column of `kubectl get pods`: a waiting or terminated reason, else the phase.
pub fn display_status(pod: &k8s_openapi::api::core::v1::Pod) -> String {
    let Some(st) = &pod.status else { return "Unknown".into() };
    let mut reason = st.phase.clone().unwrap_or_else(|| "Unknown".into());
    for c in st.container_statuses.iter().flatten() {
        if let Some(s) = &c.state {
            if let Some(wt) = &s.waiting {
                if let Some(r) = &wt.reason {
                    reason = r.clone();
                }
            } else if let Some(t) = &s.terminated {
                if let Some(r) = &t.reason {
                    reason = r.clone();
                }
            }
        }
    }
    reason
}
