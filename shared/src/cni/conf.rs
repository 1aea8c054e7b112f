//! Network configuration lists (`*.conflist`) and the keys every plugin config shares.

use serde::{Deserialize, Serialize};
use serde_json::Value;

use super::error::CniError;
use super::version::CniVersion;

/// The key of GC's list of attachments that are still in use.
pub const VALID_ATTACHMENTS_KEY: &str = "cni.dev/valid-attachments";

/// One attachment (container and interface) that a GC must keep.
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Attachment {
    /// The container ID the runtime used on ADD.
    #[serde(rename = "containerID")]
    pub container_id: String,
    /// The interface name the runtime used on ADD.
    pub ifname: String,
}

/// A network configuration list, as read from `/etc/cni/net.d/*.conflist`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub struct NetConfList {
    /// The version of the list (and of the results between its plugins).
    #[serde(rename = "cniVersion")]
    pub cni_version: String,
    /// Versions the list supports (1.1.0); the runtime picks the highest it understands.
    #[serde(rename = "cniVersions", default, skip_serializing_if = "Vec::is_empty")]
    pub cni_versions: Vec<String>,
    /// The network name, unique on the host.
    pub name: String,
    /// Skip CHECK for this network.
    #[serde(rename = "disableCheck", default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_check: bool,
    /// Skip GC for this network.
    #[serde(rename = "disableGC", default, skip_serializing_if = "std::ops::Not::not")]
    pub disable_gc: bool,
    /// The plugins of the chain, each a JSON object with at least `type`.
    pub plugins: Vec<Value>,
}

impl NetConfList {
    /// Parses a `.conflist`, or a single-plugin `.conf` (wrapped into a list of one, as libcni does).
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, CniError> {
        let v: Value = serde_json::from_slice(bytes)
            .map_err(|e| CniError::decode("network configuration is not valid JSON").with_details(e))?;
        let obj = v
            .as_object()
            .ok_or_else(|| CniError::invalid_config("network configuration must be a JSON object"))?;
        let list = if obj.contains_key("plugins") {
            serde_json::from_value::<NetConfList>(v.clone())
                .map_err(|e| CniError::invalid_config("invalid network configuration list").with_details(e))?
        } else {
            let name = obj.get("name").and_then(Value::as_str).unwrap_or_default().to_string();
            let cni_version = obj.get("cniVersion").and_then(Value::as_str).unwrap_or_default().to_string();
            NetConfList {
                cni_version,
                cni_versions: Vec::new(),
                name,
                disable_check: false,
                disable_gc: false,
                plugins: vec![v.clone()],
            }
        };
        list.validate()?;
        Ok(list)
    }

    fn validate(&self) -> Result<(), CniError> {
        if self.name.is_empty() {
            return Err(CniError::invalid_config("network configuration: field \"name\" is missing or empty"));
        }
        if self.plugins.is_empty() {
            return Err(CniError::invalid_config(format!("network {:?}: field \"plugins\" is empty", self.name)));
        }
        for (i, p) in self.plugins.iter().enumerate() {
            if p.get("type").and_then(Value::as_str).map_or(true, str::is_empty) {
                return Err(CniError::invalid_config(format!(
                    "network {:?}: plugins[{i}].type is missing or empty",
                    self.name
                )));
            }
        }
        self.version()?;
        Ok(())
    }

    /// The version to run the list at: the highest of `cniVersions` minik supports, else `cniVersion`.
    pub fn version(&self) -> Result<CniVersion, CniError> {
        let best = self.cni_versions.iter().filter_map(|v| v.parse::<CniVersion>().ok()).max();
        match best {
            Some(v) => Ok(v),
            None => self.cni_version.parse(),
        }
    }

    /// The config a plugin of the chain gets on stdin: its own object plus the list's
    /// `name` and `cniVersion`, and `prevResult` / `runtimeConfig` when given.
    pub fn plugin_config(
        &self,
        index: usize,
        version: CniVersion,
        prev_result: Option<&Value>,
        runtime_config: Option<&Value>,
    ) -> Value {
        let mut conf = self.plugins.get(index).cloned().unwrap_or(Value::Null);
        if let Value::Object(map) = &mut conf {
            map.insert("name".into(), Value::String(self.name.clone()));
            map.insert("cniVersion".into(), Value::String(version.as_str().into()));
            if let Some(prev) = prev_result {
                map.insert("prevResult".into(), prev.clone());
            }
            // Only the capabilities a plugin declares reach it, as libcni does.
            if let (Some(Value::Object(caps)), Some(Value::Object(rc))) = (map.get("capabilities").cloned(), runtime_config) {
                let picked: serde_json::Map<String, Value> = rc
                    .iter()
                    .filter(|(k, _)| caps.get(k.as_str()).and_then(Value::as_bool).unwrap_or(false))
                    .map(|(k, v)| (k.clone(), v.clone()))
                    .collect();
                if !picked.is_empty() {
                    map.insert("runtimeConfig".into(), Value::Object(picked));
                }
            }
        }
        conf
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn single_conf_becomes_a_list_of_one() {
        let l = NetConfList::from_bytes(br#"{"cniVersion":"1.0.0","name":"n","type":"cni-bridge"}"#).ok();
        assert_eq!(l.map(|l| l.plugins.len()), Some(1));
    }

    #[test]
    fn highest_supported_cni_versions_wins() {
        let l = NetConfList::from_bytes(
            br#"{"cniVersion":"1.0.0","cniVersions":["1.0.0","1.1.0","9.9.9"],"name":"n","plugins":[{"type":"x"}]}"#,
        )
        .ok();
        assert_eq!(l.and_then(|l| l.version().ok()), Some(CniVersion::V1_1_0));
    }

    #[test]
    fn missing_type_is_an_invalid_config() {
        let e = NetConfList::from_bytes(br#"{"cniVersion":"1.0.0","name":"n","plugins":[{}]}"#).err();
        assert_eq!(e.map(|e| e.code), Some(super::super::codes::INVALID_CONFIG));
    }

    #[test]
    fn runtime_config_is_filtered_by_capabilities() {
        let l = NetConfList::from_bytes(
            br#"{"cniVersion":"1.0.0","name":"n","plugins":[{"type":"a"},{"type":"portmap","capabilities":{"portMappings":true}}]}"#,
        )
        .ok();
        let rc = json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}],"bandwidth":{}});
        let l = l.expect("parsed");
        let a = l.plugin_config(0, CniVersion::V1_0_0, None, Some(&rc));
        assert!(a.get("runtimeConfig").is_none());
        let p = l.plugin_config(1, CniVersion::V1_0_0, None, Some(&rc));
        assert_eq!(p["runtimeConfig"], json!({"portMappings":[{"hostPort":8080,"containerPort":80,"protocol":"tcp"}]}));
        assert_eq!(p["name"], json!("n"));
    }
}
