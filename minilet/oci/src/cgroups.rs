//! The glue to `minik-cgroups`: which cgroup a container gets and which limits, from
//! `linux.cgroupsPath` and `linux.resources`. A config with neither gets no cgroup.

use oci_spec::runtime::Spec;

use minik_cgroups::{CgroupManager, Resources};

use crate::error::{Error, Result};

/// The cgroup path for a container, if it gets one: `linux.cgroupsPath`, or
/// `minik-oci/<id>` when `linux.resources` limits cpu, memory or pids (device rules
/// alone, as `runc spec` writes, need no cgroup here). A systemd-style
/// `slice:prefix:name` becomes `/slice/prefix-name.scope`.
pub fn path_for(spec: &Spec, id: &str) -> Option<String> {
    let linux = spec.linux().as_ref()?;
    match linux.cgroups_path() {
        Some(p) => {
            let p = p.display().to_string();
            let parts: Vec<&str> = p.split(':').collect();
            Some(match parts.as_slice() {
                [slice, prefix, name] if !p.starts_with('/') => {
                    let slice = if slice.is_empty() {
                        "system.slice"
                    } else {
                        slice
                    };
                    format!("/{slice}/{prefix}-{name}.scope")
                }
                _ => p,
            })
        }
        None => linux
            .resources()
            .as_ref()
            .filter(|r| r.cpu().is_some() || r.memory().is_some() || r.pids().is_some())
            .map(|_| format!("minik-oci/{id}")),
    }
}

/// The limits to apply.
pub fn resources(spec: &Spec) -> Resources {
    let mut out = Resources::default();
    let Some(r) = spec.linux().as_ref().and_then(|l| l.resources().as_ref()) else {
        return out;
    };
    if let Some(cpu) = r.cpu() {
        out.cpu_shares = cpu.shares();
        out.cpu_quota = cpu.quota();
        out.cpu_period = cpu.period();
    }
    if let Some(m) = r.memory() {
        out.memory_limit = m.limit();
        out.memory_swap = m.swap();
    }
    if let Some(p) = r.pids() {
        out.pids_limit = Some(p.limit());
    }
    out
}

/// Opens the cgroup at `path`.
pub fn open(path: &str) -> Result<Box<dyn CgroupManager>> {
    minik_cgroups::open(path).map_err(|source| Error::Cgroup {
        path: path.into(),
        source,
    })
}

/// Opens and creates the cgroup, adds `pid` and applies the limits.
pub fn setup(path: &str, spec: &Spec, pid: i32) -> Result<Box<dyn CgroupManager>> {
    let cg = open(path)?;
    let wrap = |source| Error::Cgroup {
        path: path.into(),
        source,
    };
    cg.create().map_err(wrap)?;
    cg.add_task(pid).map_err(wrap)?;
    cg.apply(&resources(spec)).map_err(wrap)?;
    Ok(cg)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn spec(linux: &str) -> Spec {
        serde_json::from_str(&format!(r#"{{"ociVersion":"1.0.0","linux":{linux}}}"#)).unwrap()
    }

    #[test]
    fn no_cgroup_without_path_or_resources() {
        assert_eq!(path_for(&spec("{}"), "c"), None);
        assert_eq!(
            path_for(&spec(r#"{"resources":{"devices":[]}}"#), "c"),
            None
        );
        assert_eq!(
            path_for(&spec(r#"{"resources":{"pids":{"limit":5}}}"#), "c").as_deref(),
            Some("minik-oci/c")
        );
        assert_eq!(
            path_for(&spec(r#"{"cgroupsPath":"/a/b"}"#), "c").as_deref(),
            Some("/a/b")
        );
        assert_eq!(
            path_for(&spec(r#"{"cgroupsPath":"machine.slice:libpod:abc"}"#), "c").as_deref(),
            Some("/machine.slice/libpod-abc.scope")
        );
    }

    #[test]
    fn resources_map() {
        let s = spec(
            r#"{"resources":{"cpu":{"shares":512,"quota":50000,"period":100000},
            "memory":{"limit":1048576,"swap":2097152},"pids":{"limit":64}}}"#,
        );
        let r = resources(&s);
        assert_eq!(r.cpu_shares, Some(512));
        assert_eq!(r.cpu_quota, Some(50000));
        assert_eq!(r.cpu_period, Some(100000));
        assert_eq!(r.memory_limit, Some(1048576));
        assert_eq!(r.memory_swap, Some(2097152));
        assert_eq!(r.pids_limit, Some(64));
    }
}
