//! Per-kind strategy dispatch: name format, generation tracking, create-on-update,
//! storage conversion, defaulting, status resets and validation.

use serde_json::Value;

use super::validation::{validate_annotations, validate_labels, validate_name, NameFormat};
use super::{apps, core, pods, services};
use crate::resources::{Kind, ResourceInfo};
use crate::status::Cause;

/// The name format required by a kind.
pub fn name_format(kind: Kind) -> NameFormat {
    match kind {
        Kind::Namespace => NameFormat::Label,
        Kind::Service => NameFormat::Dns1035,
        Kind::Event | Kind::EventV1 => NameFormat::PathSegment,
        _ => NameFormat::Subdomain,
    }
}

/// Whether `metadata.generation` is tracked (bumped on spec changes).
pub fn uses_generation(kind: Kind) -> bool {
    matches!(kind, Kind::Pod | Kind::ReplicaSet | Kind::Deployment)
}

/// Whether PUT of a missing object creates it.
pub fn allow_create_on_update(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Endpoints | Kind::Event | Kind::EventV1 | Kind::Lease
    )
}

/// Convert an incoming object to its storage form.
pub fn to_storage(res: &ResourceInfo, obj: Value) -> Value {
    match res.id {
        Kind::EventV1 => core::event_from_v1(&obj),
        _ => obj,
    }
}

/// Convert a stored object to the form served by `res`.
pub fn from_storage(res: &ResourceInfo, obj: Value) -> Value {
    match res.id {
        Kind::EventV1 => core::event_to_v1(&obj),
        _ => obj,
    }
}

/// The kind whose strategy applies to the storage form.
pub fn storage_kind(kind: Kind) -> Kind {
    match kind {
        Kind::EventV1 => Kind::Event,
        k => k,
    }
}

/// Defaults and status resets on create (allocation is separate).
pub fn prepare_create(kind: Kind, obj: &mut Value) {
    match kind {
        Kind::Namespace => core::prepare_namespace(obj),
        Kind::Pod => pods::prepare_create(obj),
        Kind::Service => {
            services::apply_defaults(obj);
            services::prepare_create(obj);
        }
        Kind::Secret => core::prepare_secret(obj),
        Kind::ReplicaSet | Kind::Deployment => {
            apps::apply_defaults(kind, obj);
            apps::prepare_create(kind, obj);
        }
        _ => {}
    }
}

/// Defaults and carry-overs on update.
pub fn prepare_update(kind: Kind, old: &Value, new: &mut Value) {
    match kind {
        Kind::Service => {
            services::carry_over(old, new);
            services::apply_defaults(new);
        }
        Kind::Secret => core::prepare_secret(new),
        Kind::ReplicaSet | Kind::Deployment => apps::apply_defaults(kind, new),
        Kind::Namespace => {
            if let Some(spec) = old.get("spec").cloned() {
                new["spec"] = spec;
            }
        }
        Kind::Pod => {
            if let Some(spec) = new.get_mut("spec") {
                pods::default_pod_spec(spec);
            }
        }
        _ => {}
    }
}

/// Validate an object (and an update against the old object).
pub fn validate(kind: Kind, obj: &Value, old: Option<&Value>) -> Vec<Cause> {
    let mut causes = Vec::new();
    let name = obj
        .pointer("/metadata/name")
        .and_then(Value::as_str)
        .unwrap_or("");
    validate_name(name_format(kind), name, &mut causes);
    validate_labels(
        obj.pointer("/metadata/labels"),
        "metadata.labels",
        &mut causes,
    );
    validate_annotations(
        obj.pointer("/metadata/annotations"),
        "metadata.annotations",
        &mut causes,
    );
    match kind {
        Kind::Pod => {
            pods::validate_pod_spec(obj.get("spec"), "spec", &mut causes);
            if let Some(old) = old {
                pods::validate_update(old, obj, &mut causes);
            }
        }
        Kind::Service => services::validate(obj, &mut causes),
        Kind::ReplicaSet | Kind::Deployment => apps::validate(obj, old, &mut causes),
        Kind::ConfigMap | Kind::Secret => core::validate_data_keys(obj, &mut causes),
        Kind::EndpointSlice => core::validate_endpoint_slice(obj, &mut causes),
        _ => {}
    }
    causes
}
