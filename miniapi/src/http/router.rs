//! URL routing: turn a request path into a [`Route`] (discovery documents, OpenAPI,
//! health, or a resource path with namespace, name and subresource).

use crate::resources::{find, ResourceInfo};

/// A parsed resource path.
#[derive(Debug, Clone)]
pub struct ResourcePath {
    /// The resource.
    pub resource: &'static ResourceInfo,
    /// Namespace segment, if any.
    pub namespace: Option<String>,
    /// Object name, if any.
    pub name: Option<String>,
    /// Subresource, if any.
    pub subresource: Option<String>,
    /// Legacy `/watch/` prefix.
    pub watch_prefix: bool,
}

/// What a path addresses.
#[derive(Debug, Clone)]
pub enum Route {
    /// `/healthz`, `/livez`, `/readyz` (and their sub-checks).
    Health(String),
    /// `/version`.
    Version,
    /// `/api`.
    ApiVersions,
    /// `/apis`.
    Groups,
    /// `/apis/<group>`.
    Group(String),
    /// `/api/v1` or `/apis/<group>/<version>`.
    Resources(String, String),
    /// `/openapi/v2`.
    OpenApiV2,
    /// `/openapi/v3`.
    OpenApiV3Root,
    /// `/openapi/v3/<gv path>`.
    OpenApiV3(String),
    /// A resource path.
    Resource(ResourcePath),
    /// Nothing here.
    NotFound,
}

fn resource_route(group: &str, version: &str, rest: &[&str]) -> Route {
    let (watch_prefix, rest) = match rest.first() {
        Some(&"watch") => (true, &rest[1..]),
        _ => (false, rest),
    };
    let lookup = |plural: &str| find(group, version, plural);
    let (res, namespace, tail) = match rest {
        ["namespaces", ns, plural, tail @ ..]
            if group.is_empty()
                && (*plural == "status" || *plural == "finalize")
                && tail.is_empty() =>
        {
            return match lookup("namespaces") {
                Some(r) => Route::Resource(ResourcePath {
                    resource: r,
                    namespace: None,
                    name: Some(ns.to_string()),
                    subresource: Some(plural.to_string()),
                    watch_prefix,
                }),
                None => Route::NotFound,
            };
        }
        ["namespaces", ns, plural, tail @ ..] => match lookup(plural) {
            Some(r) if r.namespaced => (r, Some(ns.to_string()), tail),
            _ => return Route::NotFound,
        },
        [plural, tail @ ..] => match lookup(plural) {
            Some(r) => (r, None, tail),
            None => return Route::NotFound,
        },
        [] => return Route::NotFound,
    };
    let (name, subresource) = match tail {
        [] => (None, None),
        [n] => (Some(n.to_string()), None),
        [n, s] => (Some(n.to_string()), Some(s.to_string())),
        _ => return Route::NotFound,
    };
    Route::Resource(ResourcePath {
        resource: res,
        namespace,
        name,
        subresource,
        watch_prefix,
    })
}

/// Parse a request path.
pub fn parse(path: &str) -> Route {
    let segs: Vec<&str> = path.split('/').filter(|s| !s.is_empty()).collect();
    match segs.as_slice() {
        [h, ..] if *h == "healthz" || *h == "livez" || *h == "readyz" => {
            Route::Health(h.to_string())
        }
        ["version"] => Route::Version,
        ["api"] => Route::ApiVersions,
        ["api", "v1"] => Route::Resources(String::new(), "v1".into()),
        ["api", "v1", rest @ ..] => resource_route("", "v1", rest),
        ["apis"] => Route::Groups,
        ["apis", g] => Route::Group(g.to_string()),
        ["apis", g, v] => Route::Resources(g.to_string(), v.to_string()),
        ["apis", g, v, rest @ ..] => resource_route(g, v, rest),
        ["openapi", "v2"] => Route::OpenApiV2,
        ["openapi", "v3"] => Route::OpenApiV3Root,
        ["openapi", "v3", rest @ ..] => Route::OpenApiV3(rest.join("/")),
        _ => Route::NotFound,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    type Parsed = (String, Option<String>, Option<String>, Option<String>);

    fn res(path: &str) -> Option<Parsed> {
        match parse(path) {
            Route::Resource(r) => Some((
                r.resource.plural.to_string(),
                r.namespace,
                r.name,
                r.subresource,
            )),
            _ => None,
        }
    }

    #[test]
    fn paths() {
        assert_eq!(res("/api/v1/pods"), Some(("pods".into(), None, None, None)));
        assert_eq!(
            res("/api/v1/namespaces/a/pods/p/status"),
            Some((
                "pods".into(),
                Some("a".into()),
                Some("p".into()),
                Some("status".into())
            ))
        );
        assert_eq!(
            res("/api/v1/namespaces/a"),
            Some(("namespaces".into(), None, Some("a".into()), None))
        );
        assert_eq!(
            res("/api/v1/namespaces/a/finalize"),
            Some((
                "namespaces".into(),
                None,
                Some("a".into()),
                Some("finalize".into())
            ))
        );
        assert_eq!(
            res("/apis/apps/v1/namespaces/x/deployments/d/scale").map(|r| r.3),
            Some(Some("scale".into()))
        );
        assert!(res("/api/v1/namespaces/a/nodes").is_none());
        assert!(res("/api/v1/bogus").is_none());
        assert!(matches!(
            parse("/api/v1/watch/namespaces/a/pods"),
            Route::Resource(ResourcePath {
                watch_prefix: true,
                ..
            })
        ));
        assert!(matches!(parse("/readyz"), Route::Health(_)));
        assert!(
            matches!(parse("/openapi/v3/apis/apps/v1"), Route::OpenApiV3(p) if p == "apis/apps/v1")
        );
    }
}
