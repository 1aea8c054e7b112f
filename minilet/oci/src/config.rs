//! Reading and checking a bundle's `config.json` (and exec's `process.json`).
//!
//! Parsing goes through `serde_path_to_error`, so a field of the wrong type is named
//! (`config.json: process.args[0]: invalid type: …`); [`validate`] then checks what the
//! types alone cannot (`config.json: process.args is empty`).

use std::collections::HashSet;
use std::path::{Path, PathBuf};

use oci_spec::runtime::{LinuxNamespaceType, Process, Spec};

use crate::error::{Error, Result};

/// Loads and validates `<bundle>/config.json`.
pub fn load(bundle: &Path) -> Result<Spec> {
    let path = bundle.join("config.json");
    let text = std::fs::read_to_string(&path).map_err(|e| Error::Config {
        file: "config.json".into(),
        detail: format!("cannot read {}: {e}", path.display()),
    })?;
    let spec: Spec = parse(&text, "config.json")?;
    validate(&spec, bundle)?;
    Ok(spec)
}

/// Loads an exec `process.json`.
pub fn load_process(path: &Path) -> Result<Process> {
    let text = std::fs::read_to_string(path).map_err(|e| Error::Config {
        file: "process.json".into(),
        detail: format!("cannot read {}: {e}", path.display()),
    })?;
    let process: Process = parse(&text, "process.json")?;
    validate_process(&process, "process.json", "")?;
    Ok(process)
}

/// Parses JSON text into `T`, naming the field that failed.
pub fn parse<T: serde::de::DeserializeOwned>(text: &str, file: &str) -> Result<T> {
    let de = &mut serde_json::Deserializer::from_str(text);
    serde_path_to_error::deserialize(de).map_err(|e| {
        let path = e.path().to_string();
        let inner = e.into_inner();
        let detail = if path.is_empty() || path == "." {
            inner.to_string()
        } else {
            format!("{path}: {inner}")
        };
        Error::Config {
            file: file.into(),
            detail,
        }
    })
}

/// The rootfs directory: `root.path`, relative to the bundle unless absolute.
pub fn rootfs(spec: &Spec, bundle: &Path) -> PathBuf {
    let path = spec
        .root()
        .as_ref()
        .map(|r| r.path().clone())
        .unwrap_or_default();
    if path.is_absolute() {
        path
    } else {
        bundle.join(path)
    }
}

fn bad(detail: String) -> Error {
    Error::config(detail)
}

/// Checks the fields `create` relies on.
pub fn validate(spec: &Spec, bundle: &Path) -> Result<()> {
    let version = spec.version();
    if !version.is_empty() && !version.starts_with("1.") {
        return Err(bad(format!(
            "ociVersion {version:?} is not supported (1.x is)"
        )));
    }
    let root = spec
        .root()
        .as_ref()
        .ok_or_else(|| bad("root is missing".into()))?;
    if root.path().as_os_str().is_empty() {
        return Err(bad("root.path is empty".into()));
    }
    let rootfs = rootfs(spec, bundle);
    if !rootfs.is_dir() {
        return Err(bad(format!(
            "root.path {} is not a directory",
            rootfs.display()
        )));
    }
    let process = spec
        .process()
        .as_ref()
        .ok_or_else(|| bad("process is missing".into()))?;
    validate_process(process, "config.json", "process.")?;
    for (i, m) in spec.mounts().iter().flatten().enumerate() {
        if !m.destination().is_absolute() {
            return Err(bad(format!(
                "mounts[{i}].destination {:?} must be an absolute path",
                m.destination()
            )));
        }
    }
    if let Some(linux) = spec.linux() {
        let mut seen = HashSet::new();
        for (i, ns) in linux.namespaces().iter().flatten().enumerate() {
            if !seen.insert(ns.typ()) {
                return Err(bad(format!(
                    "linux.namespaces[{i}]: namespace {} is listed twice",
                    ns.typ()
                )));
            }
            if let Some(p) = ns.path() {
                if !p.is_absolute() {
                    return Err(bad(format!(
                        "linux.namespaces[{i}].path {p:?} must be an absolute path"
                    )));
                }
            }
            match ns.typ() {
                LinuxNamespaceType::User => {
                    return Err(Error::Unsupported(format!(
                        "config.json: linux.namespaces[{i}]: user namespaces"
                    )))
                }
                LinuxNamespaceType::Time => {
                    return Err(Error::Unsupported(format!(
                        "config.json: linux.namespaces[{i}]: time namespaces"
                    )))
                }
                _ => {}
            }
        }
        if !linux
            .namespaces()
            .iter()
            .flatten()
            .any(|n| n.typ() == LinuxNamespaceType::Mount && n.path().is_none())
        {
            return Err(bad(
                "linux.namespaces has no new mount namespace (type \"mount\" without a path)"
                    .into(),
            ));
        }
        if spec.hostname().as_deref().is_some_and(|h| !h.is_empty())
            && !linux
                .namespaces()
                .iter()
                .flatten()
                .any(|n| n.typ() == LinuxNamespaceType::Uts && n.path().is_none())
        {
            return Err(bad(
                "hostname is set but there is no new uts namespace".into()
            ));
        }
        if let Some(p) = linux.cgroups_path() {
            if p.as_os_str().is_empty() {
                return Err(bad("linux.cgroupsPath is empty".into()));
            }
        }
        for (i, d) in linux.devices().iter().flatten().enumerate() {
            if !d.path().is_absolute() {
                return Err(bad(format!(
                    "linux.devices[{i}].path {:?} must be absolute",
                    d.path()
                )));
            }
        }
    } else {
        return Err(bad(
            "linux is missing (it must list at least a new mount namespace)".into(),
        ));
    }
    Ok(())
}

/// Checks a process object; `prefix` is `process.` inside config.json.
pub fn validate_process(process: &Process, file: &str, prefix: &str) -> Result<()> {
    let err = |detail: String| Error::Config {
        file: file.into(),
        detail,
    };
    match process.args() {
        Some(args) if !args.is_empty() && !args[0].is_empty() => {}
        _ => return Err(err(format!("{prefix}args is empty"))),
    }
    if !process.cwd().is_absolute() {
        return Err(err(format!(
            "{prefix}cwd {:?} must be an absolute path",
            process.cwd()
        )));
    }
    for (i, e) in process.env().iter().flatten().enumerate() {
        if !e.contains('=') {
            return Err(err(format!(
                "{prefix}env[{i}] {e:?} is not of the form KEY=VALUE"
            )));
        }
    }
    let mut seen = HashSet::new();
    for (i, r) in process.rlimits().iter().flatten().enumerate() {
        if !seen.insert(crate::rlimits::resource(r.typ())) {
            return Err(err(format!(
                "{prefix}rlimits[{i}]: {:?} is listed twice",
                r.typ()
            )));
        }
        if r.soft() > r.hard() {
            return Err(err(format!(
                "{prefix}rlimits[{i}]: soft limit is above the hard limit"
            )));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn bundle_with(config: &str) -> tempfile::TempDir {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("rootfs")).unwrap();
        std::fs::write(dir.path().join("config.json"), config).unwrap();
        dir
    }

    const GOOD: &str = r#"{"ociVersion":"1.0.2","root":{"path":"rootfs"},
        "process":{"args":["sh"],"cwd":"/","user":{"uid":0,"gid":0}},
        "hostname":"h","linux":{"namespaces":[{"type":"uts"},{"type":"mount"}]}}"#;

    fn err_of(config: &str) -> String {
        let b = bundle_with(config);
        load(b.path()).unwrap_err().to_string()
    }

    #[test]
    fn good_config_loads() {
        let b = bundle_with(GOOD);
        let spec = load(b.path()).unwrap();
        assert_eq!(rootfs(&spec, b.path()), b.path().join("rootfs"));
    }

    #[test]
    fn empty_args_is_named() {
        let c = GOOD.replace(r#"["sh"]"#, "[]");
        assert_eq!(err_of(&c), "config.json: process.args is empty");
    }

    #[test]
    fn wrong_type_is_named() {
        let c = GOOD.replace(r#"["sh"]"#, "[1]");
        let e = err_of(&c);
        assert!(
            e.starts_with("config.json: process.args[0]: invalid type"),
            "{e}"
        );
    }

    #[test]
    fn relative_cwd_and_mount_are_refused() {
        let c = GOOD.replace(r#""cwd":"/""#, r#""cwd":"tmp""#);
        assert!(err_of(&c).contains("process.cwd"));
        let c = GOOD.replace(
            r#""hostname""#,
            r#""mounts":[{"destination":"proc"}],"hostname""#,
        );
        assert!(err_of(&c).contains("mounts[0].destination"));
    }

    #[test]
    fn missing_parts_are_named() {
        assert_eq!(
            err_of(r#"{"ociVersion":"1.0.0"}"#),
            "config.json: root is missing"
        );
        let c = GOOD.replace(r#""rootfs""#, r#""nope""#);
        assert!(err_of(&c).contains("root.path"));
        let c = GOOD.replace(r#"{"type":"uts"},"#, "");
        assert!(err_of(&c).contains("uts namespace"));
        let c = GOOD.replace(r#",{"type":"mount"}"#, "");
        assert!(err_of(&c).contains("no new mount namespace"));
        let c = GOOD.replace(r#"{"type":"uts"}"#, r#"{"type":"mount"}"#);
        assert!(err_of(&c).contains("listed twice"));
    }

    #[test]
    fn unknown_namespace_type_is_named() {
        let e = err_of(&GOOD.replace(r#""type":"uts""#, r#""type":"bogus""#));
        assert!(e.contains("linux.namespaces[0].type"), "{e}");
    }

    #[test]
    fn bad_env_and_rlimits() {
        let c = GOOD.replace(r#""cwd":"/""#, r#""cwd":"/","env":["NOEQ"]"#);
        assert!(err_of(&c).contains("process.env[0]"));
        let c = GOOD.replace(
            r#""cwd":"/""#,
            r#""cwd":"/","rlimits":[{"type":"RLIMIT_NOFILE","hard":1,"soft":2}]"#,
        );
        assert!(err_of(&c).contains("process.rlimits[0]"));
    }
}
