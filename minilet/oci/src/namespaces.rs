//! Namespaces from `linux.namespaces`: a `path` means join (setns), none means new
//! (unshare). Joins go first and the mount namespace last, so every path is still
//! resolved in the runtime's view. The cgroup namespace is handled apart: it must be
//! created after the process joined its cgroup.

use std::path::{Path, PathBuf};

use nix::sched::CloneFlags;
use oci_spec::runtime::{LinuxNamespaceType, Spec};

use crate::error::{Error, Result};
use crate::syscall::Syscall;

/// The clone flag of a namespace type.
pub fn flag(typ: LinuxNamespaceType) -> CloneFlags {
    match typ {
        LinuxNamespaceType::Mount => CloneFlags::CLONE_NEWNS,
        LinuxNamespaceType::Cgroup => CloneFlags::CLONE_NEWCGROUP,
        LinuxNamespaceType::Uts => CloneFlags::CLONE_NEWUTS,
        LinuxNamespaceType::Ipc => CloneFlags::CLONE_NEWIPC,
        LinuxNamespaceType::User => CloneFlags::CLONE_NEWUSER,
        LinuxNamespaceType::Pid => CloneFlags::CLONE_NEWPID,
        LinuxNamespaceType::Network => CloneFlags::CLONE_NEWNET,
        LinuxNamespaceType::Time => CloneFlags::from_bits_retain(libc::CLONE_NEWTIME),
    }
}

/// The file name under `/proc/PID/ns/`.
pub fn proc_name(typ: LinuxNamespaceType) -> &'static str {
    match typ {
        LinuxNamespaceType::Mount => "mnt",
        LinuxNamespaceType::Cgroup => "cgroup",
        LinuxNamespaceType::Uts => "uts",
        LinuxNamespaceType::Ipc => "ipc",
        LinuxNamespaceType::User => "user",
        LinuxNamespaceType::Pid => "pid",
        LinuxNamespaceType::Network => "net",
        LinuxNamespaceType::Time => "time",
    }
}

/// What to do with namespaces, in order.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Plan {
    /// Namespaces to join, mount namespace last.
    pub join: Vec<(PathBuf, CloneFlags)>,
    /// New namespaces (without cgroup).
    pub unshare: CloneFlags,
    /// Whether to create a cgroup namespace (after joining the cgroup).
    pub new_cgroup: bool,
}

impl Default for Plan {
    fn default() -> Self {
        Plan {
            join: Vec::new(),
            unshare: CloneFlags::empty(),
            new_cgroup: false,
        }
    }
}

impl Plan {
    /// Whether the container gets (or joins) a PID namespace, which needs a fork after.
    pub fn has_pid(&self) -> bool {
        self.unshare.contains(CloneFlags::CLONE_NEWPID)
            || self
                .join
                .iter()
                .any(|(_, f)| *f == CloneFlags::CLONE_NEWPID)
    }
}

/// The plan for a new container.
pub fn plan(spec: &Spec) -> Plan {
    let mut out = Plan::default();
    let mut mnt_join = None;
    for ns in spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
    {
        let f = flag(ns.typ());
        match (ns.path(), ns.typ()) {
            (Some(p), LinuxNamespaceType::Mount) => mnt_join = Some((p.clone(), f)),
            (Some(p), _) => out.join.push((p.clone(), f)),
            (None, LinuxNamespaceType::Cgroup) => out.new_cgroup = true,
            (None, _) => out.unshare |= f,
        }
    }
    out.join.extend(mnt_join);
    out
}

/// The plan for `exec`: join every namespace of the container's init `pid` that the
/// config lists (including those it created).
pub fn exec_plan(spec: &Spec, pid: i32) -> Plan {
    let mut types: Vec<LinuxNamespaceType> = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .into_iter()
        .flatten()
        .map(|n| n.typ())
        .filter(|t| *t != LinuxNamespaceType::Mount)
        .collect();
    let has_mnt = spec
        .linux()
        .as_ref()
        .and_then(|l| l.namespaces().as_ref())
        .is_some_and(|n| n.iter().any(|n| n.typ() == LinuxNamespaceType::Mount));
    if has_mnt {
        types.push(LinuxNamespaceType::Mount);
    }
    let base = PathBuf::from(format!("/proc/{pid}/ns"));
    Plan {
        join: types
            .into_iter()
            .map(|t| (base.join(proc_name(t)), flag(t)))
            .collect(),
        unshare: CloneFlags::empty(),
        new_cgroup: false,
    }
}

/// Joins and creates the namespaces of `plan` (not the cgroup namespace).
pub fn enter(plan: &Plan, sys: &dyn Syscall) -> Result<()> {
    for (path, f) in &plan.join {
        sys.setns(path, *f)
            .map_err(|e| Error::sys(format!("join namespace {}", path.display()), e))?;
    }
    if !plan.unshare.is_empty() {
        sys.unshare(plan.unshare)
            .map_err(|e| Error::sys("create namespaces (unshare)", e))?;
    }
    Ok(())
}

/// Whether two processes share a namespace type (compares the ns links).
pub fn same(a: &Path, b: &Path) -> bool {
    matches!((std::fs::read_link(a), std::fs::read_link(b)), (Ok(x), Ok(y)) if x == y)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::syscall::{Call, RecordingSyscall};

    fn spec(ns: &str) -> Spec {
        serde_json::from_str(&format!(
            r#"{{"ociVersion":"1.0.0","linux":{{"namespaces":{ns}}}}}"#
        ))
        .unwrap()
    }

    #[test]
    fn joins_first_mount_last_then_unshare() {
        let s = spec(
            r#"[{"type":"mount","path":"/proc/9/ns/mnt"},{"type":"pid"},
            {"type":"network","path":"/run/netns/x"},{"type":"uts"},{"type":"cgroup"}]"#,
        );
        let p = plan(&s);
        assert!(p.new_cgroup);
        assert!(p.has_pid());
        let sys = RecordingSyscall::new();
        enter(&p, &sys).unwrap();
        assert_eq!(
            sys.calls(),
            vec![
                Call::Setns("/run/netns/x".into(), CloneFlags::CLONE_NEWNET),
                Call::Setns("/proc/9/ns/mnt".into(), CloneFlags::CLONE_NEWNS),
                Call::Unshare(CloneFlags::CLONE_NEWPID | CloneFlags::CLONE_NEWUTS),
            ]
        );
    }

    #[test]
    fn exec_joins_all_listed() {
        let s =
            spec(r#"[{"type":"mount"},{"type":"pid"},{"type":"network","path":"/run/netns/x"}]"#);
        let p = exec_plan(&s, 42);
        let paths: Vec<_> = p
            .join
            .iter()
            .map(|(p, _)| p.display().to_string())
            .collect();
        assert_eq!(
            paths,
            vec!["/proc/42/ns/pid", "/proc/42/ns/net", "/proc/42/ns/mnt"]
        );
        assert!(p.unshare.is_empty());
    }
}
