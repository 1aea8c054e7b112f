//! Decoding `application/vnd.kubernetes.protobuf` request bodies into JSON.
//!
//! client-go's generated clientsets (and so kubectl's typed commands such as
//! `kubectl create namespace`) send protobuf. A body is the magic `k8s\0` followed by
//! a `runtime.Unknown` envelope (TypeMeta + raw message). The raw message is decoded
//! with the generated field tables in [`schema`] (tag → JSON name and type) and the
//! few wire-level special types (Time, IntOrString, Quantity, FieldsV1, ...).
//! Go's zero values (`""`, `0`, `false`, empty lists) are dropped, as `omitempty`
//! would, except for the pointer fields where an explicit zero means something.

#[rustfmt::skip]
pub mod schema;

use base64::Engine;
use serde_json::{json, Map, Value};

/// One protobuf field of a message.
#[derive(Debug)]
pub struct Field {
    /// Field number.
    pub tag: u32,
    /// JSON name.
    pub name: &'static str,
    /// Type.
    pub ty: Ty,
    /// Repeated.
    pub repeated: bool,
}

/// A field type.
#[derive(Debug)]
pub enum Ty {
    /// string.
    Str,
    /// bytes (JSON: base64).
    Bytes,
    /// bool.
    Bool,
    /// int32.
    I32,
    /// int64.
    I64,
    /// double.
    F64,
    /// A message, by fully qualified name.
    Msg(&'static str),
    /// map<string, V>.
    Map(&'static MapVal),
}

/// A map value type.
#[derive(Debug)]
pub enum MapVal {
    /// string.
    Str,
    /// bytes.
    Bytes,
    /// A message.
    Msg(&'static str),
}

/// Undecodable protobuf.
#[derive(Debug, Clone, thiserror::Error)]
#[error("protobuf: {0}")]
pub struct ProtoError(pub String);

fn err<T>(m: impl Into<String>) -> Result<T, ProtoError> {
    Err(ProtoError(m.into()))
}

/// Pointer fields whose explicit zero/false must survive.
const KEEP_ZERO: &[&str] = &[
    "replicas",
    "terminationGracePeriodSeconds",
    "automountServiceAccountToken",
    "revisionHistoryLimit",
    "activeDeadlineSeconds",
    "runAsUser",
    "runAsGroup",
    "fsGroup",
    "runAsNonRoot",
    "privileged",
    "allowPrivilegeEscalation",
    "readOnlyRootFilesystem",
    "gracePeriodSeconds",
    "optional",
    "defaultMode",
    "priority",
    "enableServiceLinks",
    "allocateLoadBalancerNodePorts",
    "ready",
    "serving",
    "terminating",
    "immutable",
    "shareProcessNamespace",
    "hostUsers",
    "setHostnameAsFQDN",
    "expirationSeconds",
    "leaseDurationSeconds",
    "leaseTransitions",
    "exitCode",
    "restartCount",
    "started",
    "mode",
    "orphanDependents",
];

struct Reader<'a> {
    b: &'a [u8],
    pos: usize,
}

impl<'a> Reader<'a> {
    fn varint(&mut self) -> Result<u64, ProtoError> {
        let mut v = 0u64;
        for shift in (0..64).step_by(7) {
            let Some(&byte) = self.b.get(self.pos) else {
                return err("truncated varint");
            };
            self.pos += 1;
            v |= u64::from(byte & 0x7f) << shift;
            if byte & 0x80 == 0 {
                return Ok(v);
            }
        }
        err("varint too long")
    }

    fn take(&mut self, n: usize) -> Result<&'a [u8], ProtoError> {
        let end = self
            .pos
            .checked_add(n)
            .filter(|e| *e <= self.b.len())
            .ok_or_else(|| ProtoError("truncated field".into()))?;
        let s = &self.b[self.pos..end];
        self.pos = end;
        Ok(s)
    }

    fn done(&self) -> bool {
        self.pos >= self.b.len()
    }
}

/// A raw field value.
enum Raw<'a> {
    Varint(u64),
    Fixed64(u64),
    Fixed32(u32),
    Bytes(&'a [u8]),
}

fn fields(b: &[u8]) -> Result<Vec<(u32, Raw<'_>)>, ProtoError> {
    let mut r = Reader { b, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        let key = r.varint()?;
        let tag = (key >> 3) as u32;
        let raw = match key & 7 {
            0 => Raw::Varint(r.varint()?),
            1 => {
                let s = r.take(8)?;
                Raw::Fixed64(u64::from_le_bytes(
                    s.try_into().map_err(|_| ProtoError("fixed64".into()))?,
                ))
            }
            2 => {
                let n = r.varint()? as usize;
                Raw::Bytes(r.take(n)?)
            }
            5 => {
                let s = r.take(4)?;
                Raw::Fixed32(u32::from_le_bytes(
                    s.try_into().map_err(|_| ProtoError("fixed32".into()))?,
                ))
            }
            w => return err(format!("unsupported wire type {w}")),
        };
        out.push((tag, raw));
    }
    Ok(out)
}

fn message(name: &str) -> Option<&'static [Field]> {
    schema::MESSAGES
        .binary_search_by(|(n, _)| (*n).cmp(name))
        .ok()
        .map(|i| schema::MESSAGES[i].1)
}

fn time_json(b: &[u8], micro: bool) -> Result<Value, ProtoError> {
    let (mut secs, mut nanos) = (0i64, 0i64);
    for (tag, raw) in fields(b)? {
        if let Raw::Varint(v) = raw {
            match tag {
                1 => secs = v as i64,
                2 => nanos = i64::from(v as i32),
                _ => {}
            }
        }
    }
    if (secs == 0 && nanos == 0) || secs == -62_135_596_800 {
        return Ok(Value::Null);
    }
    let ts = k8s_openapi::jiff::Timestamp::new(
        secs,
        if micro {
            (nanos / 1000 * 1000) as i32
        } else {
            0
        },
    )
    .map_err(|e| ProtoError(e.to_string()))?;
    Ok(json!(if micro {
        format!("{ts:.6}")
    } else {
        ts.to_string()
    }))
}

fn special(name: &str, b: &[u8]) -> Result<Option<Value>, ProtoError> {
    let v = match name {
        "apimachinery.pkg.apis.meta.v1.Time" => time_json(b, false)?,
        "apimachinery.pkg.apis.meta.v1.MicroTime" => time_json(b, true)?,
        "apimachinery.pkg.util.intstr.IntOrString" => {
            let (mut ty, mut i, mut s) = (0u64, 0i64, String::new());
            for (tag, raw) in fields(b)? {
                match (tag, raw) {
                    (1, Raw::Varint(v)) => ty = v,
                    (2, Raw::Varint(v)) => i = i64::from(v as i32),
                    (3, Raw::Bytes(x)) => s = String::from_utf8_lossy(x).into_owned(),
                    _ => {}
                }
            }
            if ty == 1 {
                json!(s)
            } else {
                json!(i)
            }
        }
        "apimachinery.pkg.api.resource.Quantity" | "apimachinery.pkg.apis.meta.v1.Duration" => {
            let mut out = Value::Null;
            for (tag, raw) in fields(b)? {
                match (tag, raw) {
                    (1, Raw::Bytes(x)) => out = json!(String::from_utf8_lossy(x)),
                    (1, Raw::Varint(ns)) => out = json!(format!("{}s", ns as i64 as f64 / 1e9)),
                    _ => {}
                }
            }
            out
        }
        "apimachinery.pkg.apis.meta.v1.FieldsV1" | "apimachinery.pkg.runtime.RawExtension" => {
            let mut out = Value::Null;
            for (tag, raw) in fields(b)? {
                if let (1, Raw::Bytes(x)) = (tag, raw) {
                    out = serde_json::from_slice(x).unwrap_or(Value::Null);
                }
            }
            out
        }
        _ => return Ok(None),
    };
    Ok(Some(v))
}

fn is_zero(v: &Value) -> bool {
    match v {
        Value::Null => true,
        Value::String(s) => s.is_empty(),
        Value::Bool(b) => !b,
        Value::Number(n) => n.as_f64() == Some(0.0),
        Value::Array(a) => a.is_empty(),
        Value::Object(_) => false,
    }
}

fn scalar(ty: &Ty, raw: &Raw<'_>) -> Result<Value, ProtoError> {
    Ok(match (ty, raw) {
        (Ty::Str, Raw::Bytes(b)) => json!(String::from_utf8_lossy(b)),
        (Ty::Bytes, Raw::Bytes(b)) => json!(base64::engine::general_purpose::STANDARD.encode(b)),
        (Ty::Bool, Raw::Varint(v)) => json!(*v != 0),
        (Ty::I32, Raw::Varint(v)) => json!(*v as i32),
        (Ty::I64, Raw::Varint(v)) => json!(*v as i64),
        (Ty::F64, Raw::Fixed64(v)) => json!(f64::from_bits(*v)),
        (Ty::Msg(name), Raw::Bytes(b)) => decode_message(name, b)?,
        (_, Raw::Fixed32(v)) => json!(*v),
        _ => return err("wire type does not match the schema"),
    })
}

fn packed(ty: &Ty, b: &[u8]) -> Result<Vec<Value>, ProtoError> {
    let mut r = Reader { b, pos: 0 };
    let mut out = Vec::new();
    while !r.done() {
        out.push(scalar(ty, &Raw::Varint(r.varint()?))?);
    }
    Ok(out)
}

fn map_entry(val: &MapVal, b: &[u8]) -> Result<(String, Value), ProtoError> {
    let (mut k, mut v) = (String::new(), Value::Null);
    for (tag, raw) in fields(b)? {
        match (tag, &raw) {
            (1, Raw::Bytes(x)) => k = String::from_utf8_lossy(x).into_owned(),
            (2, _) => {
                v = match val {
                    MapVal::Str => scalar(&Ty::Str, &raw)?,
                    MapVal::Bytes => scalar(&Ty::Bytes, &raw)?,
                    MapVal::Msg(m) => scalar(&Ty::Msg(m), &raw)?,
                }
            }
            _ => {}
        }
    }
    if v.is_null() {
        v = match val {
            MapVal::Str | MapVal::Bytes => json!(""),
            MapVal::Msg(_) => json!({}),
        };
    }
    Ok((k, v))
}

/// Decode one message (by fully qualified name) to JSON.
pub fn decode_message(name: &str, b: &[u8]) -> Result<Value, ProtoError> {
    if let Some(v) = special(name, b)? {
        return Ok(v);
    }
    let Some(schema) = message(name) else {
        return err(format!("no schema for {name}"));
    };
    let mut out = Map::new();
    for (tag, raw) in fields(b)? {
        let Some(f) = schema.iter().find(|f| f.tag == tag) else {
            continue;
        };
        match (&f.ty, f.repeated) {
            (Ty::Map(val), _) => {
                if let Raw::Bytes(x) = raw {
                    let (k, v) = map_entry(val, x)?;
                    if let Some(m) = out
                        .entry(f.name)
                        .or_insert_with(|| json!({}))
                        .as_object_mut()
                    {
                        m.insert(k, v);
                    }
                }
            }
            (ty, true) => {
                let items = match (ty, &raw) {
                    (Ty::I32 | Ty::I64 | Ty::Bool, Raw::Bytes(x)) => packed(ty, x)?,
                    _ => vec![scalar(ty, &raw)?],
                };
                if let Some(a) = out
                    .entry(f.name)
                    .or_insert_with(|| json!([]))
                    .as_array_mut()
                {
                    a.extend(items);
                }
            }
            (ty, false) => {
                out.insert(f.name.to_string(), scalar(ty, &raw)?);
            }
        }
    }
    out.retain(|k, v| !is_zero(v) || (KEEP_ZERO.contains(&k.as_str()) && !v.is_null()));
    Ok(Value::Object(out))
}

fn message_for(api_version: &str, kind: &str) -> Option<String> {
    let (group, version) = api_version.rsplit_once('/').unwrap_or(("", api_version));
    let pkg = match group {
        "" => "api.core",
        "apps" => "api.apps",
        "coordination.k8s.io" => "api.coordination",
        "discovery.k8s.io" => "api.discovery",
        "events.k8s.io" => "api.events",
        "autoscaling" => "api.autoscaling",
        "meta.k8s.io" => "apimachinery.pkg.apis.meta",
        _ => return None,
    };
    let name = format!("{pkg}.{version}.{kind}");
    if message(&name).is_some() {
        return Some(name);
    }
    let meta = format!("apimachinery.pkg.apis.meta.v1.{kind}");
    message(&meta).is_some().then_some(meta)
}

/// Decode a `k8s\0`-prefixed protobuf body into a JSON object with apiVersion/kind.
pub fn decode_body(b: &[u8]) -> Result<Value, ProtoError> {
    let Some(rest) = b.strip_prefix(b"k8s\0") else {
        return err("missing the k8s protobuf magic prefix");
    };
    let (mut api_version, mut kind, mut raw) = (String::new(), String::new(), &[][..]);
    for (tag, r) in fields(rest)? {
        match (tag, r) {
            (1, Raw::Bytes(tm)) => {
                for (t, x) in fields(tm)? {
                    if let Raw::Bytes(s) = x {
                        match t {
                            1 => api_version = String::from_utf8_lossy(s).into_owned(),
                            2 => kind = String::from_utf8_lossy(s).into_owned(),
                            _ => {}
                        }
                    }
                }
            }
            (2, Raw::Bytes(x)) => raw = x,
            _ => {}
        }
    }
    let name = message_for(&api_version, &kind)
        .ok_or_else(|| ProtoError(format!("unsupported protobuf kind {api_version}/{kind}")))?;
    let mut v = decode_message(&name, raw)?;
    if let Some(m) = v.as_object_mut() {
        m.insert("apiVersion".into(), json!(api_version));
        m.insert("kind".into(), json!(kind));
    }
    Ok(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn len_field(tag: u32, b: &[u8]) -> Vec<u8> {
        let mut out = vec![((tag << 3) | 2) as u8, b.len() as u8];
        out.extend_from_slice(b);
        out
    }

    #[test]
    fn decodes_a_namespace_envelope() {
        // Namespace{metadata{name:"service-lab", generateName:""}, spec{}, status{}}
        let mut meta = len_field(1, b"service-lab");
        meta.extend(len_field(2, b""));
        let mut ns = len_field(1, &meta);
        ns.extend(len_field(2, b""));
        ns.extend(len_field(3, b""));
        let mut tm = len_field(1, b"v1");
        tm.extend(len_field(2, b"Namespace"));
        let mut body = b"k8s\0".to_vec();
        body.extend(len_field(1, &tm));
        body.extend(len_field(2, &ns));
        let v = decode_body(&body).expect("decode");
        assert_eq!(
            v,
            json!({"apiVersion": "v1", "kind": "Namespace", "metadata": {"name": "service-lab"}, "spec": {}, "status": {}})
        );
    }

    #[test]
    fn schema_is_sorted() {
        assert!(schema::MESSAGES.windows(2).all(|w| w[0].0 < w[1].0));
        assert!(message("api.core.v1.PodSpec").is_some());
    }
}
