//! Reads: get (incl. status and scale subresources) and list with label/field
//! selectors and `limit`/`continue` paging.

use base64::Engine;
use serde_json::{json, Value};

use super::{apps, required_name, store_err, strategy, ApiRequest, ApiResponse, Registry};
use crate::resources::ResourceInfo;
use crate::selectors::{FieldSelector, LabelSelector};
use crate::status::{ApiError, ApiResult};

/// Parsed list filters.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    /// Label selector.
    pub labels: LabelSelector,
    /// Field selector.
    pub fields: FieldSelector,
}

impl Filter {
    /// Parse the request's selectors (400 on syntax errors).
    pub fn from_request(req: &ApiRequest) -> ApiResult<Self> {
        let labels = match &req.options.label_selector {
            Some(s) => LabelSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => LabelSelector::default(),
        };
        let fields = match &req.options.field_selector {
            Some(s) => FieldSelector::parse(s).map_err(|e| ApiError::bad_request(e.to_string()))?,
            None => FieldSelector::default(),
        };
        Ok(Filter { labels, fields })
    }

    /// Whether an object (in served form) passes.
    pub fn matches(&self, obj: &Value) -> bool {
        self.labels.matches_object(obj) && self.fields.matches_object(obj)
    }
}

fn encode_continue(rv: u64, key: &str) -> String {
    let raw = json!({"rv": rv, "start": key}).to_string();
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(raw)
}

fn decode_continue(token: &str) -> ApiResult<String> {
    let bad = || ApiError::bad_request("continue key is not valid: illegal base64 data");
    let raw = base64::engine::general_purpose::URL_SAFE_NO_PAD
        .decode(token)
        .map_err(|_| bad())?;
    let v: Value = serde_json::from_slice(&raw).map_err(|_| bad())?;
    v.get("start")
        .and_then(Value::as_str)
        .map(String::from)
        .ok_or_else(bad)
}

/// A `<Kind>List` object.
pub fn list_object(
    res: &ResourceInfo,
    items: Vec<Value>,
    rv: u64,
    cont: Option<String>,
    remaining: Option<usize>,
) -> Value {
    let mut meta = json!({"resourceVersion": rv.to_string()});
    if let Some(c) = cont {
        meta["continue"] = json!(c);
    }
    if let Some(r) = remaining {
        meta["remainingItemCount"] = json!(r);
    }
    json!({"kind": format!("{}List", res.kind), "apiVersion": res.api_version(), "metadata": meta, "items": items})
}

impl Registry {
    /// GET one object.
    pub(super) fn get(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let name = required_name(req)?;
        let kv = self.load(res, req.namespace.as_deref(), name)?;
        let obj = strategy::from_storage(res, kv.value);
        let body = match req.subresource.as_deref() {
            Some("scale") => apps::to_scale(&obj),
            None | Some("status") => obj,
            Some(_) => return Err(ApiError::method_not_allowed()),
        };
        Ok(ApiResponse::ok(body))
    }

    /// Matching objects (served form) with their keys, and the list revision.
    pub(super) fn matching(
        &self,
        req: &ApiRequest,
        filter: &Filter,
    ) -> ApiResult<(Vec<(String, Value)>, u64)> {
        let res = req.resource;
        let ns = req.namespace.as_deref();
        if let Some(name) = filter.fields.exact("metadata.name") {
            let key = res.key(ns, name);
            let rev = self.store.current_revision();
            let found = self.store.get(&key).map_err(|e| store_err(res, name, e))?;
            let items = found
                .map(|kv| (kv.key, strategy::from_storage(res, kv.value)))
                .filter(|(_, v)| filter.matches(v))
                .into_iter()
                .collect();
            return Ok((items, rev));
        }
        let list = self
            .store
            .list(&res.prefix(ns))
            .map_err(|e| ApiError::internal(e.to_string()))?;
        let items = list
            .items
            .into_iter()
            .map(|kv| (kv.key, strategy::from_storage(res, kv.value)))
            .filter(|(_, v)| filter.matches(v))
            .collect();
        Ok((items, list.revision))
    }

    /// GET a collection.
    pub(super) fn list(&self, req: &ApiRequest) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let filter = Filter::from_request(req)?;
        let (mut items, rev) = self.matching(req, &filter)?;
        if let Some(tok) = req
            .options
            .continue_token
            .as_deref()
            .filter(|t| !t.is_empty())
        {
            let start = decode_continue(tok)?;
            items.retain(|(k, _)| k.as_str() > start.as_str());
        }
        let mut cont = None;
        let mut remaining = None;
        if let Some(limit) = req.options.limit.filter(|l| *l > 0) {
            if items.len() > limit {
                let rest = items.len() - limit;
                items.truncate(limit);
                if let Some((k, _)) = items.last() {
                    cont = Some(encode_continue(rev, k));
                }
                remaining = Some(rest);
            }
        }
        let values = items.into_iter().map(|(_, v)| v).collect();
        Ok(ApiResponse::ok(list_object(
            res, values, rev, cont, remaining,
        )))
    }
}
