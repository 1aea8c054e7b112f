//! Where a pod's streaming request goes, as kube-apiserver's `pod/strategy.go` works it
//! out: the pod (and its container, defaulted when it has one), its node from
//! `spec.nodeName`, the node's address (`status.addresses`: InternalIP first, then
//! ExternalIP, then Hostname) and kubelet port (`status.daemonEndpoints.kubeletEndpoint`,
//! default 10250), and the kubelet path and query.

use std::net::{IpAddr, SocketAddr};

use serde_json::Value;

use crate::registry::Registry;
use crate::resources::find;
use crate::status::ApiError;

/// A resolved kubelet request.
#[derive(Debug, Clone)]
pub struct Location {
    /// The kubelet's address.
    pub addr: SocketAddr,
    /// Path and query on the kubelet.
    pub path_and_query: String,
}

fn get(registry: &Registry, plural: &str, ns: Option<&str>, name: &str) -> Result<Value, ApiError> {
    let res = find("", "v1", plural).ok_or_else(|| ApiError::internal(format!("no resource {plural}")))?;
    match registry.store().get(&res.key(ns, name)) {
        Ok(Some(kv)) => Ok(kv.value),
        Ok(None) => Err(ApiError::not_found("", plural, name)),
        Err(e) => Err(ApiError::internal(e.to_string())),
    }
}

/// The node's kubelet address.
fn kubelet_addr(node: &Value) -> Result<SocketAddr, ApiError> {
    let name = node.pointer("/metadata/name").and_then(Value::as_str).unwrap_or("");
    let addrs = node.pointer("/status/addresses").and_then(Value::as_array).cloned().unwrap_or_default();
    let ip = ["InternalIP", "ExternalIP", "Hostname"].iter().find_map(|kind| {
        addrs
            .iter()
            .filter(|a| a["type"] == *kind)
            .find_map(|a| a["address"].as_str().and_then(|s| s.parse::<IpAddr>().ok()))
    });
    let ip = ip.ok_or_else(|| ApiError::bad_request(format!("node {name} has no usable address in status.addresses")))?;
    let port = node
        .pointer("/status/daemonEndpoints/kubeletEndpoint/Port")
        .and_then(Value::as_u64)
        .filter(|p| *p > 0 && *p < 65536)
        .unwrap_or(10250) as u16;
    Ok(SocketAddr::new(ip, port))
}

fn param<'a>(q: &'a [(String, String)], k: &str) -> Option<&'a str> {
    q.iter().find(|(key, _)| key == k).map(|(_, v)| v.as_str())
}

/// The container named in the query, or the pod's only one.
fn container(pod: &Value, q: &[(String, String)], name: &str) -> Result<String, ApiError> {
    let names: Vec<String> = pod
        .pointer("/spec/containers")
        .and_then(Value::as_array)
        .map(|cs| cs.iter().filter_map(|c| c["name"].as_str().map(String::from)).collect())
        .unwrap_or_default();
    match param(q, "container").filter(|c| !c.is_empty()) {
        Some(c) if names.iter().any(|n| n == c) => Ok(c.to_string()),
        Some(c) => Err(ApiError::bad_request(format!("container {c} is not valid for pod {name}"))),
        None if names.len() == 1 => Ok(names[0].clone()),
        None => Err(ApiError::bad_request(format!(
            "a container name must be specified for pod {name}, choose one of: [{}]",
            names.join(" ")
        ))),
    }
}

/// Percent-encodes everything but RFC 3986's unreserved characters.
const COMPONENT: &percent_encoding::AsciiSet =
    &percent_encoding::NON_ALPHANUMERIC.remove(b'-').remove(b'_').remove(b'.').remove(b'~');

/// A path segment or query component, percent-encoded (`percent-encoding`: the `url`
/// crate's encoder).
fn enc(s: &str) -> String {
    percent_encoding::utf8_percent_encode(s, COMPONENT).to_string()
}

/// Resolves `pods/{sub}` of `ns/name` with the (decoded) query `q`.
pub fn resolve(registry: &Registry, ns: &str, name: &str, sub: &str, q: &[(String, String)]) -> Result<Location, ApiError> {
    let pod = get(registry, "pods", Some(ns), name)?;
    let node_name = pod.pointer("/spec/nodeName").and_then(Value::as_str).filter(|n| !n.is_empty());
    let node_name = node_name.ok_or_else(|| ApiError::bad_request(format!("pod {name} does not have a host assigned")))?;
    let node = get(registry, "nodes", None, node_name)?;
    let addr = kubelet_addr(&node)?;
    let mut params: Vec<(String, String)> = Vec::new();
    let yes = |k: &str| matches!(param(q, k), Some("true" | "1" | "True"));
    let path = match sub {
        "log" => {
            let c = container(&pod, q, name)?;
            for k in ["follow", "previous", "timestamps"] {
                if yes(k) {
                    params.push((k.into(), "true".into()));
                }
            }
            for k in ["tailLines", "limitBytes", "sinceSeconds", "sinceTime"] {
                if let Some(v) = param(q, k) {
                    params.push((k.into(), v.into()));
                }
            }
            format!("/containerLogs/{}/{}/{}", enc(ns), enc(name), enc(&c))
        }
        "exec" | "attach" => {
            let c = container(&pod, q, name)?;
            for (k, kubelet) in [("stdin", "input"), ("stdout", "output"), ("stderr", "error"), ("tty", "tty")] {
                if yes(k) || yes(kubelet) {
                    params.push((kubelet.into(), "1".into()));
                }
            }
            if sub == "exec" {
                params.extend(q.iter().filter(|(k, _)| k == "command").cloned());
            }
            format!("/{sub}/{}/{}/{}", enc(ns), enc(name), enc(&c))
        }
        _ => format!("/portForward/{}/{}", enc(ns), enc(name)),
    };
    let query: Vec<String> = params.iter().map(|(k, v)| format!("{}={}", enc(k), enc(v))).collect();
    let path_and_query = if query.is_empty() { path } else { format!("{path}?{}", query.join("&")) };
    Ok(Location { addr, path_and_query })
}

/// Decodes a query string into ordered pairs (repeated keys kept).
pub fn parse_query(q: Option<&str>) -> Vec<(String, String)> {
    form_urlencoded::parse(q.unwrap_or("").as_bytes()).into_owned().collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn query_and_addresses() {
        let q = parse_query(Some("command=sh&command=-c&command=echo%20hi%3B%20exit%203&stdin=true"));
        assert_eq!(q[2].1, "echo hi; exit 3");
        assert_eq!(enc("echo hi; exit 3"), "echo%20hi%3B%20exit%203");
        let node = serde_json::json!({"metadata": {"name": "n"}, "status": {
            "addresses": [{"type": "Hostname", "address": "n"}, {"type": "InternalIP", "address": "192.168.77.11"}],
            "daemonEndpoints": {"kubeletEndpoint": {"Port": 10251}}}});
        assert_eq!(kubelet_addr(&node).expect("addr").to_string(), "192.168.77.11:10251");
        let bare = serde_json::json!({"status": {"addresses": [{"type": "InternalIP", "address": "10.0.0.1"}]}});
        assert_eq!(kubelet_addr(&bare).expect("addr").port(), 10250);
        let pod = serde_json::json!({"spec": {"containers": [{"name": "a"}, {"name": "b"}]}});
        assert!(container(&pod, &[], "p").is_err());
        assert_eq!(container(&pod, &[("container".into(), "b".into())], "p").expect("b"), "b");
    }
}
