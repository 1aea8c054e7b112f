//! The course's demo (`../shared/seeds/001`, "Splitting the Pod"): namespace `service-lab`,
//! the db ReplicaSet and its ClusterIP Service `replicaset-svc`, the API ReplicaSet (three
//! replicas, `DB=replicaset-svc`) and its NodePort Service `api-service` on 30002. The
//! manifests are the files in `cluster/demo/` (the tests apply the same files), built into
//! the binary so `minik` needs no checkout to deploy them.

use std::path::Path;

use anyhow::Context;

/// The demo's files, in the order they are applied (kubectl sorts a directory by name).
pub const FILES: &[(&str, &str)] = &[
    ("00-namespace.yaml", include_str!("../demo/00-namespace.yaml")),
    ("db_pod_rs.yaml", include_str!("../demo/db_pod_rs.yaml")),
    ("mongodb_svc.yml", include_str!("../demo/mongodb_svc.yml")),
    ("api_rs.yaml", include_str!("../demo/api_rs.yaml")),
    ("api-service.yaml", include_str!("../demo/api-service.yaml")),
];

/// `FILES[..API_FILES_FROM]` is the namespace and the db; the rest is the API.
pub const API_FILES_FROM: usize = 3;

/// The demo's namespace.
pub const NAMESPACE: &str = "service-lab";

/// The demo's ReplicaSets and how many replicas each has.
pub const REPLICASETS: &[(&str, i64)] = &[("db-pod-rs", 1), ("api-rs", 3)];

/// Writes the files into `dir`.
pub fn write(dir: &Path) -> anyhow::Result<()> {
    std::fs::create_dir_all(dir).with_context(|| format!("cannot create {}", dir.display()))?;
    for (name, text) in FILES {
        let p = dir.join(name);
        std::fs::write(&p, text).with_context(|| format!("cannot write {}", p.display()))?;
    }
    Ok(())
}
