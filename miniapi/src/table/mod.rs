//! Server-side printing: `meta.k8s.io/v1` `Table` objects, with the column
//! definitions and cell formatting of `k8s.io/kubernetes/pkg/printers/internalversion`
//! (the server always prints the wide columns; kubectl hides priority-1 columns
//! unless `-o wide`).

pub mod printers;
pub mod printers_pod;

use serde_json::{json, Value};

use crate::resources::{Kind, ResourceInfo};

/// One column definition.
#[derive(Debug, Clone, Copy)]
pub struct Column {
    /// Column name (kubectl upper-cases it).
    pub name: &'static str,
    /// `string`, `integer`, ...
    pub ty: &'static str,
    /// `name` for the name column.
    pub format: &'static str,
    /// Description.
    pub description: &'static str,
    /// 0 = always shown, 1 = `-o wide`.
    pub priority: u8,
}

/// `includeObject`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
pub enum IncludeObject {
    /// No object in rows.
    None,
    /// `PartialObjectMetadata` (the default).
    #[default]
    Metadata,
    /// The full object.
    Object,
}

impl IncludeObject {
    /// Parse the query value.
    pub fn parse(s: Option<&str>) -> Self {
        match s {
            Some("None") => IncludeObject::None,
            Some("Object") => IncludeObject::Object,
            _ => IncludeObject::Metadata,
        }
    }
}

/// The `PartialObjectMetadata` of an object.
pub fn partial_metadata(obj: &Value) -> Value {
    json!({
        "kind": "PartialObjectMetadata",
        "apiVersion": "meta.k8s.io/v1",
        "metadata": obj.get("metadata").cloned().unwrap_or(json!({})),
    })
}

fn column_json(c: &Column) -> Value {
    let mut v = json!({"name": c.name, "type": c.ty, "format": c.format, "description": c.description, "priority": c.priority});
    if c.format.is_empty() {
        v["format"] = json!("");
    }
    v
}

/// A row for one object.
pub fn row(kind: Kind, obj: &Value, include: IncludeObject) -> Value {
    let cells = printers::cells(kind, obj);
    let mut r = json!({"cells": cells});
    if kind == Kind::Pod {
        match obj.pointer("/status/phase").and_then(Value::as_str) {
            Some("Succeeded") => {
                r["conditions"] = json!([{"type": "Completed", "status": "True", "reason": "Succeeded", "message": "The pod has completed successfully."}])
            }
            Some("Failed") => {
                r["conditions"] = json!([{"type": "Completed", "status": "True", "reason": "Failed", "message": "The pod failed."}])
            }
            _ => {}
        }
    }
    match include {
        IncludeObject::None => {}
        IncludeObject::Metadata => r["object"] = partial_metadata(obj),
        IncludeObject::Object => r["object"] = obj.clone(),
    }
    r
}

/// A Table for a list (`items`) or a single object; `headers` adds the column
/// definitions (omitted after the first watch event).
pub fn to_table(res: &ResourceInfo, body: &Value, include: IncludeObject, headers: bool) -> Value {
    let view_kind = res.id;
    let rows: Vec<Value> = match body.get("items").and_then(Value::as_array) {
        Some(items) => items.iter().map(|o| row(view_kind, o, include)).collect(),
        None => vec![row(view_kind, body, include)],
    };
    let mut meta = json!({});
    if let Some(rv) = body.pointer("/metadata/resourceVersion") {
        meta["resourceVersion"] = rv.clone();
    }
    if let Some(c) = body.pointer("/metadata/continue") {
        meta["continue"] = c.clone();
    }
    if let Some(c) = body.pointer("/metadata/remainingItemCount") {
        meta["remainingItemCount"] = c.clone();
    }
    let columns: Vec<Value> = if headers {
        printers::columns(view_kind)
            .iter()
            .map(column_json)
            .collect()
    } else {
        Vec::new()
    };
    let mut t =
        json!({"kind": "Table", "apiVersion": "meta.k8s.io/v1", "metadata": meta, "rows": rows});
    if headers {
        t["columnDefinitions"] = json!(columns);
    }
    t
}
