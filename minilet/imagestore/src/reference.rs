//! Image references: parsing, validation and normalisation of names as users write
//! them in pod specs (`demo-api`, `localhost/demo-api:1.0`, `docker.io/library/busybox`,
//! `app@sha256:…`), following the grammar of the distribution project's `reference`
//! package, with minik's rule that an unqualified name means the local store
//! (`localhost/`). The crate docs list the rules and lookup fallbacks.

use crate::digest::Digest;
use crate::error::ImageError;
use std::fmt;

/// The domain an unqualified name gets: the node's own store.
pub(crate) const LOCAL_DOMAIN: &str = "localhost";
/// Docker Hub's canonical domain.
const DOCKER_HUB: &str = "docker.io";
/// The longest repository name (domain and path) allowed.
const NAME_MAX: usize = 255;
/// The longest tag allowed.
const TAG_MAX: usize = 128;

/// A parsed image reference.
#[derive(Clone, Debug, PartialEq, Eq)]
pub(crate) struct Reference {
    /// Registry domain, e.g. `localhost`, `docker.io`, `registry.example:5000`.
    pub(crate) domain: String,
    /// Repository path below the domain, e.g. `demo-api`, `library/busybox`.
    pub(crate) path: String,
    /// The tag, if any.
    pub(crate) tag: Option<String>,
    /// The digest (`sha256:…`), if any.
    pub(crate) digest: Option<String>,
    /// Whether the domain was written (false: it was filled in as `localhost`).
    pub(crate) explicit_domain: bool,
}

/// Normalizes an image reference as written in a pod spec or on a command line:
/// `demo-api` → `localhost/demo-api:latest`, `localhost/demo-api:1.0` stays,
/// `busybox` → `localhost/busybox:latest`, `docker.io/busybox` →
/// `docker.io/library/busybox:latest`, `name@sha256:…` keeps its digest (and gets no
/// tag). Invalid references (empty, uppercase repository, bad characters, bad tag or
/// digest) give [`ImageError::InvalidReference`] saying what is wrong.
pub fn normalize(user_ref: &str) -> Result<String, ImageError> {
    Ok(Reference::parse(user_ref)?.with_default_tag().to_string())
}

fn invalid(reference: &str, reason: impl Into<String>) -> ImageError {
    ImageError::InvalidReference {
        reference: reference.to_string(),
        reason: reason.into(),
    }
}

impl Reference {
    /// Parses `[domain/]path[:tag][@digest]`, filling in the domain (`localhost`) and
    /// Docker Hub's `library/`, but no default tag.
    pub(crate) fn parse(s: &str) -> Result<Reference, ImageError> {
        if s.is_empty() {
            return Err(invalid(
                s,
                "the reference is empty; write a name such as demo-api or localhost/demo-api:1.0",
            ));
        }
        if let Some(c) = s.chars().find(|c| c.is_whitespace() || c.is_control()) {
            return Err(invalid(s, format!("it contains the character {c:?}; image references have no spaces or control characters")));
        }
        let (name_tag, digest) = match s.split_once('@') {
            Some((n, d)) => {
                Digest::parse(d).map_err(|e| invalid(s, e))?;
                (n, Some(d.to_string()))
            }
            None => (s, None),
        };
        let (name, tag) = match name_tag.rfind(':') {
            Some(i) if !name_tag[i + 1..].contains('/') => {
                (&name_tag[..i], Some(name_tag[i + 1..].to_string()))
            }
            _ => (name_tag, None),
        };
        if let Some(tag) = &tag {
            check_tag(tag).map_err(|e| invalid(s, e))?;
        }
        if name.is_empty() {
            return Err(invalid(s, "the repository name is empty"));
        }
        if name.len() > NAME_MAX {
            return Err(invalid(
                s,
                format!("the repository name is longer than {NAME_MAX} characters"),
            ));
        }
        let (mut domain, mut path, explicit_domain) = match name.split_once('/') {
            Some((first, rest))
                if first.contains(['.', ':'])
                    || first == LOCAL_DOMAIN
                    || first.chars().any(|c| c.is_ascii_uppercase()) =>
            {
                check_domain(first).map_err(|e| invalid(s, e))?;
                (first.to_string(), rest.to_string(), true)
            }
            _ => (LOCAL_DOMAIN.to_string(), name.to_string(), false),
        };
        for component in path.split('/') {
            check_path_component(component).map_err(|e| invalid(s, e))?;
        }
        if domain == "index.docker.io" {
            domain = DOCKER_HUB.to_string();
        }
        if domain == DOCKER_HUB && !path.contains('/') {
            path = format!("library/{path}");
        }
        Ok(Reference {
            domain,
            path,
            tag,
            digest,
            explicit_domain,
        })
    }

    /// The same reference with tag `latest` if it has neither a tag nor a digest.
    pub(crate) fn with_default_tag(mut self) -> Reference {
        if self.tag.is_none() && self.digest.is_none() {
            self.tag = Some("latest".to_string());
        }
        self
    }

    /// `domain/path`.
    pub(crate) fn repository(&self) -> String {
        format!("{}/{}", self.domain, self.path)
    }

    /// The names to look this reference up as, best first: itself (normalized), then
    /// the one fallback described in the crate docs (Docker Hub ↔ `localhost`).
    pub(crate) fn lookup_candidates(&self) -> Vec<Reference> {
        let norm = self.clone().with_default_tag();
        let mut out = vec![norm.clone()];
        if norm.domain == DOCKER_HUB {
            let path = match norm.path.strip_prefix("library/") {
                Some(rest) if !rest.contains('/') => rest.to_string(),
                _ => norm.path.clone(),
            };
            out.push(Reference {
                domain: LOCAL_DOMAIN.to_string(),
                path,
                ..norm.clone()
            });
        } else if !norm.explicit_domain {
            let path = if norm.path.contains('/') {
                norm.path.clone()
            } else {
                format!("library/{}", norm.path)
            };
            out.push(Reference {
                domain: DOCKER_HUB.to_string(),
                path,
                explicit_domain: true,
                ..norm
            });
        }
        out
    }
}

impl fmt::Display for Reference {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/{}", self.domain, self.path)?;
        if let Some(tag) = &self.tag {
            write!(f, ":{tag}")?;
        }
        if let Some(digest) = &self.digest {
            write!(f, "@{digest}")?;
        }
        Ok(())
    }
}

/// A tag: `[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}`.
pub(crate) fn check_tag(tag: &str) -> Result<(), String> {
    let word = |c: char| c.is_ascii_alphanumeric() || c == '_';
    let mut chars = tag.chars();
    match chars.next() {
        None => return Err("the tag after ':' is empty".to_string()),
        Some(c) if !word(c) => {
            return Err(format!(
                "the tag {tag:?} must start with a letter, digit or '_'"
            ))
        }
        Some(_) => {}
    }
    if let Some(c) = chars.find(|&c| !(word(c) || c == '.' || c == '-')) {
        return Err(format!(
            "the tag {tag:?} contains {c:?}; tags use letters, digits, '_', '.' and '-'"
        ));
    }
    if tag.len() > TAG_MAX {
        return Err(format!(
            "the tag {tag:?} is longer than {TAG_MAX} characters"
        ));
    }
    Ok(())
}

/// A registry domain: dot-separated host labels, an optional `:port`.
fn check_domain(domain: &str) -> Result<(), String> {
    let (host, port) = match domain.rsplit_once(':') {
        Some((h, p)) => (h, Some(p)),
        None => (domain, None),
    };
    if let Some(port) = port {
        if port.is_empty() || !port.bytes().all(|b| b.is_ascii_digit()) {
            return Err(format!("the registry {domain:?} has a bad port {port:?}"));
        }
    }
    let label_ok = |l: &str| {
        !l.is_empty()
            && l.bytes().all(|b| b.is_ascii_alphanumeric() || b == b'-')
            && !l.starts_with('-')
            && !l.ends_with('-')
    };
    if host.split('.').all(label_ok) {
        Ok(())
    } else {
        Err(format!(
            "the registry part {domain:?} is not a host name (letters, digits, '-', '.', an optional :port)"
        ))
    }
}

/// A path component: `[a-z0-9]+((\.|_|__|-+)[a-z0-9]+)*`.
fn check_path_component(c: &str) -> Result<(), String> {
    if c.is_empty() {
        return Err(
            "the repository name has an empty path component ('//', or a '/' at an end)"
                .to_string(),
        );
    }
    if c.chars().any(|ch| ch.is_ascii_uppercase()) {
        return Err(format!(
            "repository names must be lowercase: write {:?}, not {c:?}",
            c.to_ascii_lowercase()
        ));
    }
    if let Some(ch) = c
        .chars()
        .find(|&ch| !(ch.is_ascii_lowercase() || ch.is_ascii_digit() || ".-_".contains(ch)))
    {
        return Err(format!(
            "the repository name component {c:?} contains {ch:?}; use lowercase letters, digits, '.', '_' and '-'"
        ));
    }
    let alnum = |b: u8| b.is_ascii_lowercase() || b.is_ascii_digit();
    let bytes = c.as_bytes();
    if !alnum(bytes[0]) || !alnum(bytes[bytes.len() - 1]) {
        return Err(format!(
            "the repository name component {c:?} must start and end with a letter or digit"
        ));
    }
    let mut i = 0;
    while i < bytes.len() {
        if alnum(bytes[i]) {
            i += 1;
            continue;
        }
        let start = i;
        while i < bytes.len() && !alnum(bytes[i]) {
            i += 1;
        }
        let sep = &c[start..i];
        if !(sep == "." || sep == "_" || sep == "__" || sep.bytes().all(|b| b == b'-')) {
            return Err(format!(
                "the repository name component {c:?} has the separator {sep:?}; separators are '.', '_', '__' or dashes"
            ));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    const D: &str = "sha256:e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn normalize_table() {
        let cases: &[(&str, &str)] = &[
            ("demo-api", "localhost/demo-api:latest"),
            ("demo-api:1.0", "localhost/demo-api:1.0"),
            ("localhost/demo-api:1.0", "localhost/demo-api:1.0"),
            ("localhost/demo-api", "localhost/demo-api:latest"),
            ("busybox", "localhost/busybox:latest"),
            ("team/app", "localhost/team/app:latest"),
            (
                "a/b/c_d__e.f---g:V1.2_x-y",
                "localhost/a/b/c_d__e.f---g:V1.2_x-y",
            ),
            (
                "docker.io/library/busybox:latest",
                "docker.io/library/busybox:latest",
            ),
            ("docker.io/busybox", "docker.io/library/busybox:latest"),
            ("index.docker.io/team/app:2", "docker.io/team/app:2"),
            ("localhost:5000/app", "localhost:5000/app:latest"),
            (
                "registry.example:5000/team/app:3",
                "registry.example:5000/team/app:3",
            ),
            ("Registry.Example/app", "Registry.Example/app:latest"),
            ("quay.io/team/app:v1", "quay.io/team/app:v1"),
        ];
        for (input, want) in cases {
            assert_eq!(normalize(input).unwrap(), *want, "normalize({input:?})");
        }
        assert_eq!(
            normalize(&format!("demo-api@{D}")).unwrap(),
            format!("localhost/demo-api@{D}")
        );
        assert_eq!(
            normalize(&format!("demo-api:1.0@{D}")).unwrap(),
            format!("localhost/demo-api:1.0@{D}")
        );
    }

    #[test]
    fn invalid_references() {
        let cases: &[(&str, &str)] = &[
            ("", "empty"),
            ("Demo-API", "lowercase"),
            ("localhost/Demo", "lowercase"),
            ("demo api", "character"),
            ("demo$api", "contains"),
            ("demo-", "start and end"),
            ("-demo", "start and end"),
            ("de..mo", "separator"),
            ("demo:", "tag"),
            ("demo:-x", "tag"),
            ("demo:a+b", "tag"),
            ("demo//x", "empty path component"),
            ("demo/", "empty path component"),
            (":tag", "empty"),
            ("demo@sha256:abc", "lowercase hex"),
            ("demo@md5:abc", "algorithm"),
            ("bad_host.x:port/app", "port"),
        ];
        for (input, want) in cases {
            match normalize(input) {
                Err(ImageError::InvalidReference { reason, .. }) => {
                    assert!(
                        reason.contains(want),
                        "normalize({input:?}): {reason:?} lacks {want:?}"
                    )
                }
                other => panic!("normalize({input:?}) = {other:?}, want InvalidReference"),
            }
        }
        let long = "a".repeat(300);
        assert!(normalize(&long).is_err());
        assert!(normalize(&format!("x:{}", "t".repeat(129))).is_err());
    }

    #[test]
    fn lookup_fallbacks() {
        let names = |s: &str| -> Vec<String> {
            Reference::parse(s)
                .unwrap()
                .lookup_candidates()
                .iter()
                .map(|r| r.to_string())
                .collect()
        };
        assert_eq!(
            names("docker.io/library/busybox:latest"),
            [
                "docker.io/library/busybox:latest",
                "localhost/busybox:latest"
            ]
        );
        assert_eq!(
            names("docker.io/team/app:1"),
            ["docker.io/team/app:1", "localhost/team/app:1"]
        );
        assert_eq!(
            names("busybox"),
            [
                "localhost/busybox:latest",
                "docker.io/library/busybox:latest"
            ]
        );
        assert_eq!(names("localhost/busybox"), ["localhost/busybox:latest"]);
        assert_eq!(names("quay.io/a/b:1"), ["quay.io/a/b:1"]);
    }
}
