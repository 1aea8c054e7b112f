//! PATCH: JSON, merge and strategic merge patches (also on the `status` and
//! `scale` subresources) and server-side apply, retried on write conflicts.

use serde_json::{json, Value};

use super::{
    apps, check_gvk, decode, required_name, store_err, strategy, ApiRequest, ApiResponse,
    FieldValidation, Registry,
};
use crate::patch::{self, apply::ApplyError, PatchType};
use crate::status::{ApiError, ApiResult};

impl Registry {
    /// PATCH (retried on write conflicts, as the real server does).
    pub(super) fn patch(&self, req: &ApiRequest, ty: PatchType) -> ApiResult<ApiResponse> {
        let mut last = None;
        for _ in 0..5 {
            match self.patch_once(req, ty) {
                Err(e)
                    if e.code == 409
                        && e.reason == "Conflict"
                        && e.message.contains("has been modified") =>
                {
                    last = Some(e)
                }
                other => return other,
            }
        }
        Err(last.unwrap_or_else(|| ApiError::internal("patch retries exhausted")))
    }

    fn patch_once(&self, req: &ApiRequest, ty: PatchType) -> ApiResult<ApiResponse> {
        let res = req.resource;
        let name = required_name(req)?.to_string();
        let body = req
            .body
            .clone()
            .ok_or_else(|| ApiError::bad_request("request body is required"))?;
        let kind = strategy::storage_kind(res.id);
        let sub = req.subresource.as_deref();
        let existing = self
            .store
            .get(&res.key(req.namespace.as_deref(), &name))
            .map_err(|e| store_err(res, &name, e))?;
        let manager = req.options.field_manager.clone();
        if ty == PatchType::Apply {
            let manager = manager.ok_or_else(|| {
                ApiError::bad_request("PATCH requests of type apply must provide a fieldManager")
            })?;
            let mut cfg = body;
            check_gvk(res, &mut cfg)?;
            let (cfg, warnings) = decode(res, &cfg, req.options.field_validation)?;
            let live = existing
                .as_ref()
                .map(|kv| strategy::from_storage(res, kv.value.clone()));
            let applied = patch::apply::server_side_apply(
                res.id,
                live.as_ref(),
                &cfg,
                &manager,
                req.options.force,
                &res.api_version(),
            )
            .map_err(|e| match e {
                ApplyError::Conflicts(_) => {
                    ApiError::conflict_msg(res.group, res.plural, &name, &e.to_string())
                }
                ApplyError::Malformed(m) => ApiError::bad_request(m),
            })?;
            return match existing {
                None if sub.is_none() => self.create_object(req, applied, warnings, false),
                None => Err(ApiError::not_found(res.group, res.plural, &name)),
                Some(old) => self.write_update(
                    req,
                    &old,
                    strategy::to_storage(res, applied),
                    None,
                    None,
                    warnings,
                ),
            };
        }
        let old = existing.ok_or_else(|| ApiError::not_found(res.group, res.plural, &name))?;
        let view = strategy::from_storage(res, old.value.clone());
        let target = if sub == Some("scale") {
            apps::to_scale(&view)
        } else {
            view.clone()
        };
        let patched = patch::apply_patch(res.id, ty, &target, &body).map_err(|e| match ty {
            PatchType::Json => ApiError::invalid(
                res.group,
                res.kind,
                &name,
                vec![super::validation::invalid("", &json!(""), &e.to_string())],
            ),
            _ => ApiError::bad_request(e.to_string()),
        })?;
        let rv = body
            .pointer("/metadata/resourceVersion")
            .and_then(Value::as_str)
            .and_then(|s| s.parse().ok());
        if sub == Some("scale") {
            let mut new = old.value.clone();
            apps::apply_scale(&mut new, &patched)
                .map_err(|c| ApiError::invalid("autoscaling", "Scale", &name, vec![c]))?;
            let out = self.write_update(req, &old, new, rv, manager.as_deref(), Vec::new())?;
            return Ok(ApiResponse {
                body: apps::to_scale(&out.body),
                ..out
            });
        }
        let mut patched = patched;
        check_gvk(res, &mut patched)?;
        let mode = if ty == PatchType::Json {
            FieldValidation::Warn
        } else {
            req.options.field_validation
        };
        let (normalized, warnings) = decode(res, &patched, mode)?;
        let _ = kind;
        self.write_update(
            req,
            &old,
            strategy::to_storage(res, normalized),
            rv,
            manager.as_deref().or(Some("unknown")),
            warnings,
        )
    }
}
