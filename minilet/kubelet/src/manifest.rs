//! Pod sources. Today: a static pod directory, polled — files that appear, change or
//! disappear make pods appear, be replaced or go away. The API server source (a later
//! issue) implements the same [`PodSource`] trait.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use k8s_openapi::api::core::v1::Pod;

/// A pod as a source wants it.
#[derive(Debug, Clone)]
pub struct DesiredPod {
    /// Stable identity: a hash of the source and the manifest (a change gives a new UID,
    /// so the old pod is stopped and a new one started, as the kubelet does for static pods).
    pub uid: String,
    /// The pod (name already suffixed with the node name for static pods).
    pub pod: Pod,
}

/// Where pods come from.
pub trait PodSource {
    /// The pods this source wants right now, by UID; manifests that fail to parse are
    /// reported through `errors` (file, message) and skipped.
    fn desired(&mut self) -> (BTreeMap<String, DesiredPod>, Vec<(PathBuf, String)>);
}

/// The static pod directory.
pub struct StaticDir {
    dir: PathBuf,
    node: String,
}

impl StaticDir {
    /// Watches `dir` for node `node`.
    pub fn new(dir: PathBuf, node: String) -> Self {
        StaticDir { dir, node }
    }
}

fn fnv(bytes: &[u8]) -> u64 {
    let mut h: u64 = 0xcbf2_9ce4_8422_2325;
    for b in bytes {
        h ^= u64::from(*b);
        h = h.wrapping_mul(0x0100_0000_01b3);
    }
    h
}

/// Parses one manifest (YAML or JSON) into a Pod, checking what the kubelet needs.
pub fn parse_pod(path: &Path, text: &str) -> Result<Pod, String> {
    let pod: Pod = serde_yaml::from_str(text).map_err(|e| format!("not a valid Pod manifest: {e}"))?;
    let kind = serde_yaml::from_str::<serde_yaml::Value>(text)
        .ok()
        .and_then(|v| v.get("kind").and_then(|k| k.as_str()).map(String::from))
        .unwrap_or_default();
    if kind != "Pod" {
        return Err(format!("kind: expected Pod, got {kind:?} ({})", path.display()));
    }
    if pod.metadata.name.as_deref().unwrap_or("").is_empty() {
        return Err("metadata.name: required".into());
    }
    let spec = pod.spec.as_ref().ok_or("spec: required")?;
    if spec.containers.is_empty() {
        return Err("spec.containers: at least one container is required".into());
    }
    let mut names = std::collections::HashSet::new();
    for (i, c) in spec.containers.iter().enumerate() {
        if c.image.as_deref().unwrap_or("").is_empty() {
            return Err(format!("spec.containers[{i}].image: required"));
        }
        if !names.insert(c.name.clone()) {
            return Err(format!("spec.containers[{i}].name: duplicate name {:?}", c.name));
        }
    }
    Ok(pod)
}

impl PodSource for StaticDir {
    fn desired(&mut self) -> (BTreeMap<String, DesiredPod>, Vec<(PathBuf, String)>) {
        let mut out = BTreeMap::new();
        let mut errors = Vec::new();
        let Ok(entries) = std::fs::read_dir(&self.dir) else { return (out, errors) };
        let mut files: Vec<PathBuf> = entries
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| matches!(p.extension().and_then(|e| e.to_str()), Some("yaml" | "yml" | "json")))
            .collect();
        files.sort();
        for f in files {
            let Ok(text) = std::fs::read_to_string(&f) else { continue };
            match parse_pod(&f, &text) {
                Ok(mut pod) => {
                    let uid = format!("{:016x}", fnv(format!("{}\0{}\0{text}", f.display(), self.node).as_bytes()));
                    let base = pod.metadata.name.clone().unwrap_or_default();
                    pod.metadata.name = Some(format!("{base}-{}", self.node));
                    pod.metadata.namespace.get_or_insert_with(|| "default".into());
                    pod.metadata.uid = Some(uid.clone());
                    out.insert(uid.clone(), DesiredPod { uid, pod });
                }
                Err(e) => errors.push((f, e)),
            }
        }
        (out, errors)
    }
}
