//! An image's description: its name and tags and the runtime config that goes into the
//! OCI image config (`Entrypoint`, `Cmd`, `Env`, `WorkingDir`, `User`, `ExposedPorts`, …).
//!
//! It is read from a small JSON file (see `images/specs/*.json`) and/or built from the
//! command line; command-line values override the file's.

use std::collections::BTreeMap;
use std::path::Path;

use anyhow::{bail, Context, Result};
use serde::{Deserialize, Serialize};

/// The `PATH` put in an image's `Env` when the spec sets none (Docker's default).
pub const DEFAULT_PATH: &str = "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin";

/// An image to build. Every field is optional in the JSON file.
#[derive(Debug, Clone, Default, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "camelCase", deny_unknown_fields)]
pub struct ImageSpec {
    /// The image's name (e.g. `busybox`), recorded as the `io.containerd.image.name`
    /// annotation (`NAME:TAG`) next to each tag.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub name: Option<String>,
    /// The tags, each recorded in `index.json` as `org.opencontainers.image.ref.name`.
    /// Empty means `["latest"]`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub tags: Vec<String>,
    /// The entrypoint; `None` (or an empty list) leaves it unset.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub entrypoint: Option<Vec<String>>,
    /// The default command (or the entrypoint's default arguments).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub cmd: Option<Vec<String>>,
    /// `KEY=VALUE` entries. [`DEFAULT_PATH`] is added when none sets `PATH`.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub env: Vec<String>,
    /// The working directory.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub working_dir: Option<String>,
    /// The user (`name`, `uid`, `uid:gid`, …).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub user: Option<String>,
    /// Exposed ports, `PORT/PROTO` (`PORT` alone means tcp).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub exposed_ports: Vec<String>,
    /// Volumes (paths).
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub volumes: Vec<String>,
    /// Labels of the image config.
    #[serde(default, skip_serializing_if = "BTreeMap::is_empty")]
    pub labels: BTreeMap<String, String>,
    /// The stop signal (e.g. `SIGTERM`).
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stop_signal: Option<String>,
    /// The config's `author`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub author: Option<String>,
}

impl ImageSpec {
    /// Reads a spec from a JSON file.
    pub fn from_file(path: &Path) -> Result<Self> {
        let text = std::fs::read_to_string(path)
            .with_context(|| format!("reading image spec {}", path.display()))?;
        serde_json::from_str(&text).with_context(|| format!("parsing image spec {}", path.display()))
    }

    /// The tags to record, `["latest"]` if none.
    pub fn tags_or_default(&self) -> Vec<String> {
        if self.tags.is_empty() {
            vec!["latest".to_string()]
        } else {
            self.tags.clone()
        }
    }

    /// `env`, with [`DEFAULT_PATH`] first when no entry sets `PATH`.
    pub fn env_with_path(&self) -> Vec<String> {
        let mut env = self.env.clone();
        if !env.iter().any(|e| e.starts_with("PATH=")) {
            env.insert(0, DEFAULT_PATH.to_string());
        }
        env
    }

    /// Exposed ports normalized to `PORT/PROTO`, sorted and deduplicated.
    pub fn normalized_ports(&self) -> Result<Vec<String>> {
        let mut out = Vec::new();
        for p in &self.exposed_ports {
            let (port, proto) = match p.split_once('/') {
                Some((port, proto)) => (port, proto.to_ascii_lowercase()),
                None => (p.as_str(), "tcp".to_string()),
            };
            let n: u16 = port.parse().with_context(|| format!("exposed port {p:?}: not a port number"))?;
            if n == 0 {
                bail!("exposed port {p:?}: port 0");
            }
            if !matches!(proto.as_str(), "tcp" | "udp" | "sctp") {
                bail!("exposed port {p:?}: protocol must be tcp, udp or sctp");
            }
            out.push(format!("{n}/{proto}"));
        }
        out.sort();
        out.dedup();
        Ok(out)
    }

    /// Checks what the OCI spec and tools require of the values.
    pub fn validate(&self) -> Result<()> {
        for tag in self.tags_or_default() {
            validate_tag(&tag)?;
        }
        for e in &self.env {
            match e.split_once('=') {
                Some((k, _)) if !k.is_empty() => {}
                _ => bail!("env entry {e:?} is not KEY=VALUE"),
            }
        }
        if let Some(wd) = &self.working_dir {
            if !wd.starts_with('/') {
                bail!("working directory {wd:?} must be absolute");
            }
        }
        self.normalized_ports()?;
        Ok(())
    }
}

/// A tag as Docker and OCI tools accept it: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub fn validate_tag(tag: &str) -> Result<()> {
    let mut chars = tag.chars();
    let ok_first = chars.next().is_some_and(|c| c.is_ascii_alphanumeric() || c == '_');
    let ok_rest = chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'));
    if !ok_first || !ok_rest || tag.len() > 128 {
        bail!("tag {tag:?} is not valid ([A-Za-z0-9_][A-Za-z0-9_.-]{{0,127}})");
    }
    Ok(())
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    #[test]
    fn parses_a_spec_file() {
        let s: ImageSpec = serde_json::from_str(
            r#"{"name":"demo-db","tags":["latest","1.0"],"cmd":["mongod"],
                "exposedPorts":["27017/tcp","28017"],"workingDir":"/","env":["A=1"]}"#,
        )
        .unwrap();
        assert_eq!(s.cmd.as_deref(), Some(&["mongod".to_string()][..]));
        assert_eq!(s.normalized_ports().unwrap(), ["27017/tcp", "28017/tcp"]);
        assert_eq!(s.env_with_path()[0], DEFAULT_PATH);
        s.validate().unwrap();
    }

    #[test]
    fn rejects_unknown_keys_and_bad_values() {
        assert!(serde_json::from_str::<ImageSpec>(r#"{"entryPoint":["x"]}"#).is_err());
        let mut s = ImageSpec { tags: vec!["bad tag".into()], ..Default::default() };
        assert!(s.validate().is_err());
        s.tags = vec!["1.0".into()];
        s.exposed_ports = vec!["http".into()];
        assert!(s.validate().is_err());
        s.exposed_ports = vec![];
        s.env = vec!["NOEQUALS".into()];
        assert!(s.validate().is_err());
    }
}
