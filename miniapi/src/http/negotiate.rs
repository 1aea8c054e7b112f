//! Content negotiation: request bodies (JSON or YAML) and response forms (JSON,
//! YAML, server-side `Table`, `PartialObjectMetadata`, aggregated discovery).

use serde_json::Value;

use crate::status::ApiError;
use crate::table::IncludeObject;

/// The response form the client asked for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Output {
    /// `application/json`.
    Json,
    /// `application/yaml`.
    Yaml,
    /// `as=Table;g=meta.k8s.io`.
    Table(IncludeObject),
    /// `as=PartialObjectMetadata(List)`.
    PartialMetadata,
    /// `as=APIGroupDiscoveryList;g=apidiscovery.k8s.io;v=v2`.
    AggregatedDiscovery,
}

/// Pick the response form from `Accept` (first acceptable entry wins).
pub fn output(accept: Option<&str>, include_object: Option<&str>) -> Output {
    let Some(accept) = accept else {
        return Output::Json;
    };
    for entry in accept.split(',') {
        let mut parts = entry.split(';').map(str::trim);
        let media = parts.next().unwrap_or("").to_ascii_lowercase();
        let mut as_ = "";
        let mut g = "";
        let mut v = "";
        for p in parts {
            if let Some((k, val)) = p.split_once('=') {
                match k.trim() {
                    "as" => as_ = val.trim(),
                    "g" => g = val.trim(),
                    "v" => v = val.trim(),
                    _ => {}
                }
            }
        }
        match (as_, g) {
            ("Table", "meta.k8s.io") => return Output::Table(IncludeObject::parse(include_object)),
            ("APIGroupDiscoveryList", "apidiscovery.k8s.io") if v == "v2" => {
                return Output::AggregatedDiscovery
            }
            ("PartialObjectMetadata" | "PartialObjectMetadataList", "meta.k8s.io") => {
                return Output::PartialMetadata
            }
            ("", _) => {}
            _ => continue,
        }
        match media.as_str() {
            "application/yaml" => return Output::Yaml,
            "application/json" | "*/*" | "application/*" | "application/json;stream=watch" => {
                return Output::Json
            }
            _ => continue,
        }
    }
    Output::Json
}

/// Decode a request body by Content-Type (empty → `None`).
pub fn decode_body(content_type: Option<&str>, bytes: &[u8]) -> Result<Option<Value>, ApiError> {
    if bytes.iter().all(u8::is_ascii_whitespace) {
        return Ok(None);
    }
    let ct = content_type
        .unwrap_or("application/json")
        .split(';')
        .next()
        .unwrap_or("")
        .trim()
        .to_ascii_lowercase();
    if ct.contains("protobuf") {
        return crate::proto::decode_body(bytes)
            .map(Some)
            .map_err(|e| ApiError::bad_request(e.to_string()));
    }
    if ct.contains("yaml") {
        let v: Value = serde_yaml::from_slice(bytes)
            .map_err(|e| ApiError::bad_request(format!("error converting YAML to JSON: {e}")))?;
        return Ok(Some(v));
    }
    serde_json::from_slice(bytes).map(Some).map_err(|e| {
        ApiError::bad_request(format!("couldn't get version/kind; json parse error: {e}"))
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn accept_headers() {
        let kubectl_get = "application/json;as=Table;v=v1;g=meta.k8s.io,application/json;as=Table;v=v1beta1;g=meta.k8s.io,application/json";
        assert_eq!(
            output(Some(kubectl_get), None),
            Output::Table(IncludeObject::Metadata)
        );
        let disc = "application/json;g=apidiscovery.k8s.io;v=v2;as=APIGroupDiscoveryList,application/json;g=apidiscovery.k8s.io;v=v2beta1;as=APIGroupDiscoveryList,application/json";
        assert_eq!(output(Some(disc), None), Output::AggregatedDiscovery);
        assert_eq!(
            output(
                Some("application/vnd.kubernetes.protobuf, application/json"),
                None
            ),
            Output::Json
        );
        assert_eq!(output(Some("application/yaml"), None), Output::Yaml);
        assert_eq!(output(None, None), Output::Json);
    }

    #[test]
    fn bodies() {
        assert_eq!(
            decode_body(Some("application/yaml"), b"a: 1")
                .ok()
                .flatten(),
            Some(serde_json::json!({"a": 1}))
        );
        assert!(decode_body(Some("application/json"), b"{").is_err());
        assert!(decode_body(None, b"").ok().flatten().is_none());
    }
}
