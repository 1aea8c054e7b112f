//! Label and field selectors, as in `?labelSelector=` and `?fieldSelector=`.
//!
//! Label selectors support `=`, `==`, `!=`, `in (...)`, `notin (...)`, `key`
//! (exists), `!key` (does not exist), `>` and `<`. Field selectors support `=`, `==`
//! and `!=` on dotted paths (`metadata.name`, `spec.nodeName`, `status.phase`,
//! `involvedObject.kind`, ...); a missing field compares as the empty string.

use std::collections::BTreeMap;

use serde_json::Value;

/// One label requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Requirement {
    /// `key=value` / `key==value`.
    Equals(String, String),
    /// `key!=value`.
    NotEquals(String, String),
    /// `key in (a,b)`.
    In(String, Vec<String>),
    /// `key notin (a,b)`.
    NotIn(String, Vec<String>),
    /// `key`.
    Exists(String),
    /// `!key`.
    DoesNotExist(String),
    /// `key>n`.
    Gt(String, i64),
    /// `key<n`.
    Lt(String, i64),
}

/// A parsed label selector (all requirements must hold; empty matches everything).
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct LabelSelector {
    /// The requirements, ANDed.
    pub requirements: Vec<Requirement>,
}

/// A selector parse error (rendered into a 400 by the caller).
#[derive(Debug, Clone, thiserror::Error)]
#[error("unable to parse requirement: {0}")]
pub struct SelectorError(pub String);

fn split_top_level(s: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut depth = 0i32;
    let mut cur = String::new();
    for c in s.chars() {
        match c {
            '(' => {
                depth += 1;
                cur.push(c);
            }
            ')' => {
                depth -= 1;
                cur.push(c);
            }
            ',' if depth == 0 => out.push(std::mem::take(&mut cur)),
            _ => cur.push(c),
        }
    }
    out.push(cur);
    out.into_iter()
        .map(|p| p.trim().to_string())
        .filter(|p| !p.is_empty())
        .collect()
}

fn parse_set(rest: &str, whole: &str) -> Result<Vec<String>, SelectorError> {
    let rest = rest.trim();
    let inner = rest
        .strip_prefix('(')
        .and_then(|r| r.strip_suffix(')'))
        .ok_or_else(|| SelectorError(format!("found '{whole}', expected: '('")))?;
    Ok(inner
        .split(',')
        .map(|v| v.trim().to_string())
        .filter(|v| !v.is_empty())
        .collect())
}

fn valid_key(k: &str) -> bool {
    !k.is_empty()
        && k.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.' | '/'))
}

impl LabelSelector {
    /// Parse the string form.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in split_top_level(s) {
            requirements.push(Self::parse_requirement(&part)?);
        }
        Ok(LabelSelector { requirements })
    }

    fn parse_requirement(p: &str) -> Result<Requirement, SelectorError> {
        let bad = || SelectorError(p.to_string());
        if let Some(k) = p.strip_prefix('!') {
            let k = k.trim();
            return if valid_key(k) {
                Ok(Requirement::DoesNotExist(k.into()))
            } else {
                Err(bad())
            };
        }
        for (op, ctor) in [("!=", 0), ("==", 1), ("=", 1), (">", 2), ("<", 3)] {
            if let Some((k, v)) = p.split_once(op) {
                let (k, v) = (k.trim().to_string(), v.trim().to_string());
                if !valid_key(&k) {
                    return Err(bad());
                }
                return Ok(match ctor {
                    0 => Requirement::NotEquals(k, v),
                    1 => Requirement::Equals(k, v),
                    2 => Requirement::Gt(k, v.parse().map_err(|_| bad())?),
                    _ => Requirement::Lt(k, v.parse().map_err(|_| bad())?),
                });
            }
        }
        let mut words = p.splitn(2, char::is_whitespace);
        let key = words.next().unwrap_or("").trim().to_string();
        let rest = words.next().unwrap_or("").trim();
        if !valid_key(&key) {
            return Err(bad());
        }
        if rest.is_empty() {
            return Ok(Requirement::Exists(key));
        }
        if let Some(r) = rest.strip_prefix("notin") {
            return Ok(Requirement::NotIn(key, parse_set(r, p)?));
        }
        if let Some(r) = rest.strip_prefix("in") {
            return Ok(Requirement::In(key, parse_set(r, p)?));
        }
        Err(bad())
    }

    /// Build from a `metav1.LabelSelector` JSON value (`matchLabels`, `matchExpressions`).
    pub fn from_label_selector(v: &Value) -> Self {
        let mut requirements = Vec::new();
        if let Some(m) = v.get("matchLabels").and_then(Value::as_object) {
            for (k, val) in m {
                requirements.push(Requirement::Equals(
                    k.clone(),
                    val.as_str().unwrap_or("").into(),
                ));
            }
        }
        if let Some(exprs) = v.get("matchExpressions").and_then(Value::as_array) {
            for e in exprs {
                let key = e
                    .get("key")
                    .and_then(Value::as_str)
                    .unwrap_or("")
                    .to_string();
                let values: Vec<String> = e
                    .get("values")
                    .and_then(Value::as_array)
                    .map(|a| {
                        a.iter()
                            .filter_map(|x| x.as_str().map(String::from))
                            .collect()
                    })
                    .unwrap_or_default();
                let r = match e.get("operator").and_then(Value::as_str).unwrap_or("") {
                    "In" => Requirement::In(key, values),
                    "NotIn" => Requirement::NotIn(key, values),
                    "Exists" => Requirement::Exists(key),
                    _ => Requirement::DoesNotExist(key),
                };
                requirements.push(r);
            }
        }
        LabelSelector { requirements }
    }

    /// Whether the selector has no requirements.
    pub fn is_empty(&self) -> bool {
        self.requirements.is_empty()
    }

    /// Match a label map.
    pub fn matches(&self, labels: &BTreeMap<String, String>) -> bool {
        self.requirements.iter().all(|r| match r {
            Requirement::Equals(k, v) => labels.get(k) == Some(v),
            Requirement::NotEquals(k, v) => labels.get(k) != Some(v),
            Requirement::In(k, vs) => labels.get(k).is_some_and(|x| vs.contains(x)),
            Requirement::NotIn(k, vs) => !labels.get(k).is_some_and(|x| vs.contains(x)),
            Requirement::Exists(k) => labels.contains_key(k),
            Requirement::DoesNotExist(k) => !labels.contains_key(k),
            Requirement::Gt(k, n) => labels
                .get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x > *n),
            Requirement::Lt(k, n) => labels
                .get(k)
                .and_then(|x| x.parse::<i64>().ok())
                .is_some_and(|x| x < *n),
        })
    }

    /// Match an object's `metadata.labels`.
    pub fn matches_object(&self, obj: &Value) -> bool {
        if self.is_empty() {
            return true;
        }
        self.matches(&labels_of(obj))
    }

    /// The canonical string form (`a=b,c in (d,e)`), requirements sorted by key.
    pub fn to_string_form(&self) -> String {
        let mut parts: Vec<(String, String)> = self
            .requirements
            .iter()
            .map(|r| match r {
                Requirement::Equals(k, v) => (k.clone(), format!("{k}={v}")),
                Requirement::NotEquals(k, v) => (k.clone(), format!("{k}!={v}")),
                Requirement::In(k, vs) => (k.clone(), format!("{k} in ({})", sorted(vs).join(","))),
                Requirement::NotIn(k, vs) => {
                    (k.clone(), format!("{k} notin ({})", sorted(vs).join(",")))
                }
                Requirement::Exists(k) => (k.clone(), k.clone()),
                Requirement::DoesNotExist(k) => (k.clone(), format!("!{k}")),
                Requirement::Gt(k, n) => (k.clone(), format!("{k}>{n}")),
                Requirement::Lt(k, n) => (k.clone(), format!("{k}<{n}")),
            })
            .collect();
        parts.sort();
        parts
            .into_iter()
            .map(|(_, s)| s)
            .collect::<Vec<_>>()
            .join(",")
    }
}

fn sorted(v: &[String]) -> Vec<String> {
    let mut v = v.to_vec();
    v.sort();
    v
}

/// `metadata.labels` of an object as a map.
pub fn labels_of(obj: &Value) -> BTreeMap<String, String> {
    obj.pointer("/metadata/labels")
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| (k.clone(), v.as_str().unwrap_or("").to_string()))
                .collect()
        })
        .unwrap_or_default()
}

/// `labels.FormatLabels`: `a=b,c=d` sorted, or `<none>`.
pub fn format_labels(labels: Option<&Value>) -> String {
    let mut parts: Vec<String> = labels
        .and_then(Value::as_object)
        .map(|m| {
            m.iter()
                .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or("")))
                .collect()
        })
        .unwrap_or_default();
    parts.sort();
    if parts.is_empty() {
        "<none>".into()
    } else {
        parts.join(",")
    }
}

/// `metav1.FormatLabelSelector`: the string form of a LabelSelector, or `<none>`.
pub fn format_label_selector(sel: Option<&Value>) -> String {
    let s = sel
        .map(LabelSelector::from_label_selector)
        .unwrap_or_default()
        .to_string_form();
    if s.is_empty() {
        "<none>".into()
    } else {
        s
    }
}

/// One field requirement.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct FieldRequirement {
    /// Dotted field path.
    pub field: String,
    /// Expected value.
    pub value: String,
    /// `!=` instead of `=`.
    pub negate: bool,
}

/// A parsed field selector.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct FieldSelector {
    /// The requirements, ANDed.
    pub requirements: Vec<FieldRequirement>,
}

impl FieldSelector {
    /// Parse `a=b,c!=d`.
    pub fn parse(s: &str) -> Result<Self, SelectorError> {
        let mut requirements = Vec::new();
        for part in s.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (field, value, negate) = if let Some((f, v)) = part.split_once("!=") {
                (f, v, true)
            } else if let Some((f, v)) = part.split_once("==") {
                (f, v, false)
            } else if let Some((f, v)) = part.split_once('=') {
                (f, v, false)
            } else {
                return Err(SelectorError(format!(
                    "invalid selector: '{part}'; can't understand '{part}'"
                )));
            };
            requirements.push(FieldRequirement {
                field: field.trim().to_string(),
                value: value.trim().to_string(),
                negate,
            });
        }
        Ok(FieldSelector { requirements })
    }

    /// The value of one requirement, for fast paths (`metadata.name=x`).
    pub fn exact(&self, field: &str) -> Option<&str> {
        self.requirements
            .iter()
            .find(|r| r.field == field && !r.negate)
            .map(|r| r.value.as_str())
    }

    /// Match an object.
    pub fn matches_object(&self, obj: &Value) -> bool {
        self.requirements.iter().all(|r| {
            let actual = field_value(obj, &r.field);
            (actual == r.value) != r.negate
        })
    }
}

/// The string value of a dotted field path (missing → empty string).
pub fn field_value(obj: &Value, path: &str) -> String {
    let mut cur = obj;
    for seg in path.split('.') {
        match cur.get(seg) {
            Some(v) => cur = v,
            None => return String::new(),
        }
    }
    match cur {
        Value::String(s) => s.clone(),
        Value::Null => String::new(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        other => other.to_string(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    fn labels(pairs: &[(&str, &str)]) -> BTreeMap<String, String> {
        pairs
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect()
    }

    #[test]
    fn label_selector_operators() {
        let l = labels(&[("type", "backend"), ("db", "mongoLabs")]);
        let ok = |s: &str| LabelSelector::parse(s).expect("parse").matches(&l);
        assert!(ok("type=backend"));
        assert!(ok("type==backend,db=mongoLabs"));
        assert!(!ok("type!=backend"));
        assert!(ok("type in (backend, frontend)"));
        assert!(!ok("db notin (mongoLabs)"));
        assert!(ok("db"));
        assert!(ok("!missing"));
        assert!(!ok("!db"));
        assert!(ok(""));
        assert!(LabelSelector::parse("a in b").is_err());
    }

    #[test]
    fn field_selector_paths() {
        let pod = json!({"metadata": {"name": "p", "namespace": "n"}, "spec": {"nodeName": "n1"}, "status": {"phase": "Running"}});
        let ok = |s: &str| FieldSelector::parse(s).expect("parse").matches_object(&pod);
        assert!(ok("metadata.name=p,spec.nodeName=n1"));
        assert!(ok("status.phase!=Pending"));
        assert!(ok("spec.missing="));
        assert!(!ok("metadata.namespace==x"));
    }

    #[test]
    fn selector_formatting() {
        let sel = json!({"matchLabels": {"b": "2", "a": "1"}});
        assert_eq!(format_label_selector(Some(&sel)), "a=1,b=2");
        assert_eq!(format_labels(None), "<none>");
    }
}
