//! The plugin side of the CNI protocol: the verb and parameters a runtime passes in
//! `CNI_*` environment variables.

use std::collections::HashMap;

use super::error::CniError;

/// The verb a runtime asks for (`CNI_COMMAND`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub enum Command {
    /// Attach a container to the network.
    Add,
    /// Detach it.
    Del,
    /// Verify an attachment.
    Check,
    /// Report supported versions.
    Version,
    /// Report whether ADD can succeed (1.1.0).
    Status,
    /// Release everything not in the list of valid attachments (1.1.0).
    Gc,
}

impl Command {
    /// The verb as it appears in `CNI_COMMAND`.
    pub fn as_str(self) -> &'static str {
        match self {
            Command::Add => "ADD",
            Command::Del => "DEL",
            Command::Check => "CHECK",
            Command::Version => "VERSION",
            Command::Status => "STATUS",
            Command::Gc => "GC",
        }
    }

    /// Parses `CNI_COMMAND`.
    pub fn parse(s: &str) -> Result<Self, CniError> {
        Ok(match s {
            "ADD" => Command::Add,
            "DEL" => Command::Del,
            "CHECK" => Command::Check,
            "VERSION" => Command::Version,
            "STATUS" => Command::Status,
            "GC" => Command::Gc,
            other => {
                return Err(CniError::invalid_env(format!(
                    "CNI_COMMAND {other:?} is unknown; expected ADD, DEL, CHECK, VERSION, STATUS or GC"
                )))
            }
        })
    }

    /// Whether the verb acts on one attachment and so needs `CNI_CONTAINERID` and `CNI_IFNAME`.
    pub fn needs_attachment(self) -> bool {
        matches!(self, Command::Add | Command::Del | Command::Check)
    }
}

/// The parameters of one plugin invocation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PluginEnv {
    /// The verb.
    pub command: Command,
    /// `CNI_CONTAINERID`.
    pub container_id: String,
    /// `CNI_NETNS`: a path to the container's network namespace (may be empty on DEL).
    pub netns: String,
    /// `CNI_IFNAME`.
    pub ifname: String,
    /// `CNI_ARGS`, split into `KEY=VALUE` pairs.
    pub args: HashMap<String, String>,
    /// `CNI_PATH`, split on `:`.
    pub path: Vec<String>,
}

impl PluginEnv {
    /// Reads the environment through `get` (the process environment in a plugin, a map in tests).
    pub fn from_lookup(get: impl Fn(&str) -> Option<String>) -> Result<Self, CniError> {
        let command = Command::parse(&get("CNI_COMMAND").ok_or_else(|| {
            CniError::invalid_env("CNI_COMMAND is not set; a CNI runtime must set it to ADD, DEL, CHECK, VERSION, STATUS or GC")
        })?)?;
        let container_id = get("CNI_CONTAINERID").unwrap_or_default();
        let netns = get("CNI_NETNS").unwrap_or_default();
        let ifname = get("CNI_IFNAME").unwrap_or_default();
        if command.needs_attachment() {
            if container_id.is_empty() {
                return Err(CniError::invalid_env(format!("CNI_CONTAINERID is required for {}", command.as_str())));
            }
            if !valid_container_id(&container_id) {
                return Err(CniError::invalid_env(format!(
                    "CNI_CONTAINERID {container_id:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit"
                )));
            }
            if ifname.is_empty() {
                return Err(CniError::invalid_env(format!("CNI_IFNAME is required for {}", command.as_str())));
            }
            if let Err(why) = valid_ifname(&ifname) {
                return Err(CniError::invalid_env(format!("CNI_IFNAME {ifname:?} is invalid: {why}")));
            }
        }
        if matches!(command, Command::Add | Command::Check) && netns.is_empty() {
            return Err(CniError::invalid_env(format!("CNI_NETNS is required for {}", command.as_str())));
        }
        let args = get("CNI_ARGS")
            .unwrap_or_default()
            .split(';')
            .filter(|kv| !kv.is_empty())
            .map(|kv| {
                kv.split_once('=').map(|(k, v)| (k.to_string(), v.to_string())).ok_or_else(|| {
                    CniError::invalid_env(format!("CNI_ARGS entry {kv:?} is not KEY=VALUE"))
                })
            })
            .collect::<Result<HashMap<_, _>, _>>()?;
        let path = get("CNI_PATH").unwrap_or_default().split(':').filter(|p| !p.is_empty()).map(String::from).collect();
        Ok(PluginEnv { command, container_id, netns, ifname, args, path })
    }

    /// Reads the process environment.
    pub fn from_process() -> Result<Self, CniError> {
        Self::from_lookup(|k| std::env::var(k).ok())
    }
}

/// Container IDs as the spec allows them: alphanumerics plus `_`, `.` and `-`.
fn valid_container_id(id: &str) -> bool {
    let mut chars = id.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Interface names as Linux allows them (and the spec repeats).
pub fn valid_ifname(name: &str) -> Result<(), &'static str> {
    if name.len() > 15 {
        return Err("longer than 15 characters");
    }
    if name == "." || name == ".." {
        return Err("'.' and '..' are not interface names");
    }
    if name.chars().any(|c| c == '/' || c == ':' || c.is_whitespace()) {
        return Err("contains '/', ':' or whitespace");
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cni::codes;

    fn env(pairs: &[(&str, &str)]) -> Result<PluginEnv, CniError> {
        let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
        PluginEnv::from_lookup(|k| m.get(k).cloned())
    }

    #[test]
    fn add_needs_ifname_and_netns() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_NETNS", "/run/netns/x")]).err();
        assert_eq!(e.map(|e| (e.code, e.msg.contains("CNI_IFNAME"))), Some((codes::INVALID_ENV, true)));
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c1"), ("CNI_IFNAME", "eth0")]).err();
        assert_eq!(e.map(|e| e.msg.contains("CNI_NETNS")), Some(true));
    }

    #[test]
    fn del_without_netns_is_fine_and_args_split() {
        let e = env(&[
            ("CNI_COMMAND", "DEL"),
            ("CNI_CONTAINERID", "c1"),
            ("CNI_IFNAME", "eth0"),
            ("CNI_ARGS", "IgnoreUnknown=1;K8S_POD_NAME=p"),
        ])
        .ok();
        assert_eq!(e.map(|e| e.args.get("K8S_POD_NAME").cloned()), Some(Some("p".into())));
    }

    #[test]
    fn bad_ifname_and_command_are_rejected() {
        let e = env(&[("CNI_COMMAND", "ADD"), ("CNI_CONTAINERID", "c"), ("CNI_NETNS", "/x"), ("CNI_IFNAME", "a/b")]).err();
        assert_eq!(e.map(|e| e.code), Some(codes::INVALID_ENV));
        let e = env(&[("CNI_COMMAND", "FROB")]).err();
        assert_eq!(e.map(|e| e.code), Some(codes::INVALID_ENV));
    }
}
