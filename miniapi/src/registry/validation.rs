//! Field validation helpers, worded like `k8s.io/apimachinery/pkg/util/validation`:
//! field errors (`Invalid value`, `Required value`, ...) and the name formats
//! (DNS-1123 subdomain and label, DNS-1035 label, label keys and values).

use serde_json::Value;

use crate::status::Cause;

/// Go's `%v`-style rendering of a value inside `Invalid value: ...`.
pub fn repr(v: &Value) -> String {
    match v {
        Value::String(s) => format!("{s:?}"),
        Value::Object(m) => {
            let inner: Vec<String> = m
                .iter()
                .map(|(k, v)| format!("{k:?}:{:?}", v.as_str().unwrap_or("")))
                .collect();
            format!("map[string]string{{{}}}", inner.join(", "))
        }
        other => other.to_string(),
    }
}

/// `field: Invalid value: <value>: detail`.
pub fn invalid(field: &str, value: &Value, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueInvalid".into(),
        message: format!("Invalid value: {}: {}", repr(value), detail),
        field: field.into(),
    }
}

/// `field: Required value[: detail]`.
pub fn required(field: &str, detail: &str) -> Cause {
    let message = if detail.is_empty() {
        "Required value".to_string()
    } else {
        format!("Required value: {detail}")
    };
    Cause {
        reason: "FieldValueRequired".into(),
        message,
        field: field.into(),
    }
}

/// `field: Duplicate value: <value>`.
pub fn duplicate(field: &str, value: &Value) -> Cause {
    Cause {
        reason: "FieldValueDuplicate".into(),
        message: format!("Duplicate value: {}", repr(value)),
        field: field.into(),
    }
}

/// `field: Unsupported value: "x": supported values: "a", "b"`.
pub fn not_supported(field: &str, value: &Value, supported: &[&str]) -> Cause {
    let sup: Vec<String> = supported.iter().map(|s| format!("{s:?}")).collect();
    Cause {
        reason: "FieldValueNotSupported".into(),
        message: format!(
            "Unsupported value: {}: supported values: {}",
            repr(value),
            sup.join(", ")
        ),
        field: field.into(),
    }
}

/// `field: Forbidden: detail`.
pub fn forbidden(field: &str, detail: &str) -> Cause {
    Cause {
        reason: "FieldValueForbidden".into(),
        message: format!("Forbidden: {detail}"),
        field: field.into(),
    }
}

const DNS1123_LABEL_MSG: &str = "a lowercase RFC 1123 label must consist of lower case alphanumeric characters or '-', and must start and end with an alphanumeric character (e.g. 'my-name',  or '123-abc', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?')";
const DNS1123_SUBDOMAIN_MSG: &str = "a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character (e.g. 'example.com', regex used for validation is '[a-z0-9]([-a-z0-9]*[a-z0-9])?(\\.[a-z0-9]([-a-z0-9]*[a-z0-9])?)*')";
const DNS1035_LABEL_MSG: &str = "a DNS-1035 label must consist of lower case alphanumeric characters or '-', start with an alphabetic character, and end with an alphanumeric character (e.g. 'my-name',  or 'abc-123', regex used for validation is '[a-z]([-a-z0-9]*[a-z0-9])?')";

fn is_label_chars(s: &str) -> bool {
    let b = s.as_bytes();
    !b.is_empty()
        && b.iter()
            .all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || *c == b'-')
        && b[0] != b'-'
        && b[b.len() - 1] != b'-'
}

/// Problems with a DNS-1123 label (namespace names, container names, port names).
pub fn dns1123_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) {
        errs.push(DNS1123_LABEL_MSG.to_string());
    }
    errs
}

/// Problems with a DNS-1123 subdomain (most object names).
pub fn dns1123_subdomain(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 253 {
        errs.push("must be no more than 253 characters".to_string());
    }
    if s.is_empty() || !s.split('.').all(is_label_chars) {
        errs.push(DNS1123_SUBDOMAIN_MSG.to_string());
    }
    errs
}

/// Problems with a DNS-1035 label (Service names).
pub fn dns1035_label(s: &str) -> Vec<String> {
    let mut errs = Vec::new();
    if s.len() > 63 {
        errs.push("must be no more than 63 characters".to_string());
    }
    if !is_label_chars(s) || !s.as_bytes()[0].is_ascii_lowercase() {
        errs.push(DNS1035_LABEL_MSG.to_string());
    }
    errs
}

/// Which name format a kind requires.
#[derive(Debug, Clone, Copy)]
pub enum NameFormat {
    /// DNS-1123 subdomain.
    Subdomain,
    /// DNS-1123 label.
    Label,
    /// DNS-1035 label.
    Dns1035,
    /// Any non-empty path segment.
    PathSegment,
}

/// Validate `metadata.name` (and the generateName prefix) into causes.
pub fn validate_name(format: NameFormat, name: &str, causes: &mut Vec<Cause>) {
    let errs = match format {
        NameFormat::Subdomain => dns1123_subdomain(name),
        NameFormat::Label => dns1123_label(name),
        NameFormat::Dns1035 => dns1035_label(name),
        NameFormat::PathSegment => {
            if name == "." || name == ".." || name.contains('/') || name.contains('%') {
                vec![format!("may not be '.' or '..' or contain '/' or '%'")]
            } else {
                vec![]
            }
        }
    };
    for e in errs {
        causes.push(invalid("metadata.name", &Value::String(name.into()), &e));
    }
}

fn qualified_name_errors(s: &str) -> Vec<String> {
    let (prefix, name) = match s.split_once('/') {
        Some((p, n)) => (Some(p), n),
        None => (None, s),
    };
    let mut errs = Vec::new();
    if let Some(p) = prefix {
        if dns1123_subdomain(p).is_empty() {
        } else {
            errs.push("prefix part a lowercase RFC 1123 subdomain must consist of lower case alphanumeric characters, '-' or '.', and must start and end with an alphanumeric character".to_string());
        }
    }
    let ok = !name.is_empty()
        && name.len() <= 63
        && name
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && name
            .chars()
            .next()
            .is_some_and(|c| c.is_ascii_alphanumeric())
        && name
            .chars()
            .last()
            .is_some_and(|c| c.is_ascii_alphanumeric());
    if !ok {
        errs.push("name part must consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyName',  or 'my.name',  or '123-abc', regex used for validation is '([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9]')".to_string());
    }
    errs
}

fn label_value_errors(v: &str) -> Vec<String> {
    if v.is_empty() {
        return vec![];
    }
    let ok = v.len() <= 63
        && v.chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '-' | '_' | '.'))
        && v.chars().next().is_some_and(|c| c.is_ascii_alphanumeric())
        && v.chars().last().is_some_and(|c| c.is_ascii_alphanumeric());
    if ok {
        vec![]
    } else {
        vec!["a valid label must be an empty string or consist of alphanumeric characters, '-', '_' or '.', and must start and end with an alphanumeric character (e.g. 'MyValue',  or 'my_value',  or '12345', regex used for validation is '(([A-Za-z0-9][-A-Za-z0-9_.]*)?[A-Za-z0-9])?')".to_string()]
    }
}

/// Validate a label map at `field` (`metadata.labels`).
pub fn validate_labels(labels: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(m) = labels.and_then(Value::as_object) else {
        return;
    };
    for (k, v) in m {
        for e in qualified_name_errors(k) {
            causes.push(invalid(field, &Value::String(k.clone()), &e));
        }
        let val = v.as_str().unwrap_or("");
        for e in label_value_errors(val) {
            causes.push(invalid(
                &format!("{field}[{k}]"),
                &Value::String(val.into()),
                &e,
            ));
        }
    }
}

/// Validate annotation keys.
pub fn validate_annotations(ann: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    let Some(m) = ann.and_then(Value::as_object) else {
        return;
    };
    for k in m.keys() {
        for e in qualified_name_errors(&k.to_lowercase()) {
            causes.push(invalid(field, &Value::String(k.clone()), &e));
        }
    }
}

/// A port number check: `must be between 1 and 65535, inclusive`.
pub fn validate_port(v: Option<&Value>, field: &str, causes: &mut Vec<Cause>) {
    match v.and_then(Value::as_i64) {
        Some(p) if (1..=65535).contains(&p) => {}
        Some(p) => causes.push(invalid(
            field,
            &Value::from(p),
            "must be between 1 and 65535, inclusive",
        )),
        None => causes.push(required(field, "")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn name_formats() {
        assert!(dns1123_subdomain("a.b-c").is_empty());
        assert!(!dns1123_subdomain("Bad_Name").is_empty());
        assert!(dns1123_label("my-ns").is_empty());
        assert!(!dns1123_label("a.b").is_empty());
        assert!(!dns1035_label("1abc").is_empty());
        let mut c = Vec::new();
        validate_name(NameFormat::Subdomain, "Bad_Name", &mut c);
        assert_eq!(c[0].field, "metadata.name");
        assert!(c[0]
            .message
            .starts_with("Invalid value: \"Bad_Name\": a lowercase RFC 1123 subdomain"));
    }

    #[test]
    fn labels() {
        let mut c = Vec::new();
        validate_labels(
            Some(&serde_json::json!({"app": "ok", "bad key!": "x", "k": "-bad"})),
            "metadata.labels",
            &mut c,
        );
        assert_eq!(c.len(), 2);
    }
}
