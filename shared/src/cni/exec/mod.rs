//! The CNI executor: what libcni (`libcni/api.go`, `pkg/invoke`) does for a runtime.
//!
//! [`CniExecutor`] loads network configuration lists from a config directory, finds plugin
//! binaries in the plugin directories and runs a list's plugins for ADD, DEL, CHECK, GC and
//! STATUS, keeping libcni's result cache so that DEL, CHECK and GC get what ADD returned.
//!
//! Behaviour, as libcni:
//! - **ADD** runs the plugins in order; each gets the previous plugin's result as
//!   `prevResult` (the raw JSON, converted to the list's version only when a plugin answered
//!   in another one). The final result and the runtime parameters are cached. A failure
//!   midway is returned as is, **without rolling back** the plugins that already succeeded:
//!   the runtime must call [`CniExecutor::del`] for the attachment (plugins' DEL is idempotent).
//! - **DEL** runs the plugins in reverse order, with the cached result as `prevResult` from
//!   0.4.0 on, then removes the cache entry. An attachment with no (or an unreadable) cache
//!   entry is still deleted, without `prevResult`. When a plugin fails the entry is kept.
//! - **CHECK** needs 0.4.0 or later and a cached result; `disableCheck` makes it a no-op.
//! - **GC** (unless `disableGC`) first DELs every cached attachment of the network that is
//!   not in the valid list (which removes its cache entry), then, from 1.1.0 on, runs each
//!   plugin's GC with `cni.dev/valid-attachments`. It keeps going after a failure and
//!   returns all of them.
//! - **STATUS** runs each plugin's STATUS from 1.1.0 on and stops at the first failure;
//!   below 1.1.0 it is a no-op.
//!
//! Every method is synchronous and may block for as long as a plugin runs (there is no
//! timeout, as with libcni without a context deadline); call it from `spawn_blocking` in
//! async code.
//!
//! **Network namespaces.** Plugins are spawned from the calling thread, so they start in
//! that thread's network namespace (see [`crate::netns`]). A caller can run plugins "on a
//! node" by calling the executor from a thread that has entered the node's namespace, e.g.
//! inside [`crate::netns::NetNs::run`]. Paths in [`ExecutorConfig`] are resolved in the
//! caller's mount namespace as usual.

mod cache;
mod error;
mod invoke;
#[cfg(test)]
mod tests;

use std::collections::HashSet;
use std::ffi::OsStr;
use std::fs;
use std::io::ErrorKind;
use std::path::{Path, PathBuf};

use serde_json::{Map, Value};
use tracing::{debug, warn};

pub use self::error::ExecError;
use self::invoke::Invocation;
use super::conf::{Attachment, NetConfList, VALID_ATTACHMENTS_KEY};
use super::env::{valid_ifname, Command};
use super::error::CniError;
use super::result::CniResult;
use super::version::{CniVersion, VersionInfo};

/// Where the executor finds configs and plugins, and keeps its cache.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ExecutorConfig {
    /// Directory of network configuration lists (default `/etc/cni/net.d`).
    pub conf_dir: PathBuf,
    /// Directories searched for plugin binaries, in order (default `/opt/cni/bin`, `/usr/lib/cni`).
    /// Also passed to plugins as `CNI_PATH`.
    pub plugin_dirs: Vec<PathBuf>,
    /// Directory of the result cache (default `/var/lib/cni`); entries live in `results/`.
    pub cache_dir: PathBuf,
}

impl Default for ExecutorConfig {
    fn default() -> Self {
        ExecutorConfig {
            conf_dir: PathBuf::from("/etc/cni/net.d"),
            plugin_dirs: vec![PathBuf::from("/opt/cni/bin"), PathBuf::from("/usr/lib/cni")],
            cache_dir: PathBuf::from("/var/lib/cni"),
        }
    }
}

/// The per-attachment parameters of an ADD, DEL or CHECK (libcni's `RuntimeConf`).
#[derive(Debug, Clone, Default, PartialEq)]
pub struct RuntimeConf {
    /// `CNI_CONTAINERID`: letters, digits, `_`, `.` and `-`, starting with a letter or digit.
    pub container_id: String,
    /// `CNI_NETNS`: the path of the container's network namespace (required for ADD and CHECK).
    pub netns: PathBuf,
    /// `CNI_IFNAME`: the interface to create in the container, e.g. `eth0`.
    pub ifname: String,
    /// `CNI_ARGS`, passed as `K=V;K=V` (keys without `=`/`;`, values without `;`).
    pub args: Vec<(String, String)>,
    /// Capability arguments (`portMappings`, `bandwidth`, ...). Each plugin receives, as
    /// `runtimeConfig`, only the keys its `capabilities` enable.
    pub capability_args: Map<String, Value>,
}

/// Runs CNI plugin chains for a runtime. Holds only its [`ExecutorConfig`]: cheap to clone, `Send + Sync`.
#[derive(Debug, Clone)]
pub struct CniExecutor {
    cfg: ExecutorConfig,
}

impl CniExecutor {
    /// An executor over these directories. Nothing is read until a method needs it.
    pub fn new(cfg: ExecutorConfig) -> Self {
        CniExecutor { cfg }
    }

    /// The directories this executor uses.
    pub fn config(&self) -> &ExecutorConfig {
        &self.cfg
    }

    /// Every network in the config directory: `*.conflist`, `*.conf` and `*.json`, sorted by
    /// file name (libcni's order, so the first is the default network). A missing directory
    /// holds no networks; a file that does not parse is an error naming it.
    pub fn load_networks(&self) -> Result<Vec<NetConfList>, ExecError> {
        self.conf_files(&["conflist", "conf", "json"])?.iter().map(|p| load_file(p)).collect()
    }

    /// The network called `name`: the first `*.conflist` with that name, else the first
    /// `*.conf` / `*.json` (as libcni's `LoadConfList`). A file that does not parse, met
    /// before the match, is an error.
    pub fn find_network(&self, name: &str) -> Result<NetConfList, ExecError> {
        for exts in [&["conflist"][..], &["conf", "json"][..]] {
            for path in self.conf_files(exts)? {
                let list = load_file(&path)?;
                if list.name == name {
                    return Ok(list);
                }
            }
        }
        Err(ExecError::NetworkNotFound { name: name.to_string(), conf_dir: self.cfg.conf_dir.clone() })
    }

    /// ADD: attaches the container to `net`, running each plugin in order with the previous
    /// result as `prevResult`, and caches the final result for DEL, CHECK and GC.
    ///
    /// Every plugin binary is looked up before the first one runs. When a plugin fails, the
    /// ones before it are **not** rolled back: call [`CniExecutor::del`] for the attachment.
    pub fn add(&self, net: &NetConfList, rt: &RuntimeConf) -> Result<CniResult, ExecError> {
        validate_attachment(&net.name, rt)?;
        require_netns(Command::Add, rt)?;
        let version = list_version(net)?;
        let plugins = self.resolve_plugins(net)?;
        let runtime_config = Value::Object(rt.capability_args.clone());
        let mut last: Option<(Value, CniResult)> = None;
        for (i, (plugin, binary)) in plugins.iter().enumerate() {
            let conf = net.plugin_config(i, version, last.as_ref().map(|(raw, _)| raw), Some(&runtime_config));
            let out = self.invoke(plugin, binary, Command::Add, Some(rt), &conf)?;
            last = Some(parse_add_output(plugin, &out, version)?);
        }
        let (raw, result) = last.ok_or_else(|| no_plugins(net))?;
        let entry = cache::CacheEntry {
            kind: cache::CACHE_KIND.to_string(),
            container_id: rt.container_id.clone(),
            config: Some(cache::base64(&serde_json::to_vec(net).unwrap_or_default())),
            ifname: rt.ifname.clone(),
            network_name: net.name.clone(),
            netns: rt.netns.to_string_lossy().into_owned(),
            cni_args: rt.args.clone(),
            capability_args: rt.capability_args.clone(),
            result: Some(raw),
        };
        cache::write(&self.cache_path(&net.name, rt), &entry)?;
        Ok(result)
    }

    /// DEL: detaches the container, running the plugins in reverse order with the cached
    /// result as `prevResult` (0.4.0 and later), then removes the cache entry.
    ///
    /// An attachment without a cache entry is still deleted (plugins' DEL is idempotent);
    /// `rt.netns` may be empty when the namespace is already gone.
    pub fn del(&self, net: &NetConfList, rt: &RuntimeConf) -> Result<(), ExecError> {
        validate_attachment(&net.name, rt)?;
        let version = list_version(net)?;
        let plugins = self.resolve_plugins(net)?;
        let path = self.cache_path(&net.name, rt);
        let prev = if version >= CniVersion::V0_4_0 {
            match cached_in_version(&path, version) {
                Ok(prev) => prev,
                Err(e) => {
                    warn!(error = %e, "ignoring an unusable cached CNI result on DEL, and removing it");
                    let _ = cache::remove(&path);
                    None
                }
            }
        } else {
            None
        };
        let runtime_config = Value::Object(rt.capability_args.clone());
        for (i, (plugin, binary)) in plugins.iter().enumerate().rev() {
            let conf = net.plugin_config(i, version, prev.as_ref(), Some(&runtime_config));
            self.invoke(plugin, binary, Command::Del, Some(rt), &conf)?;
        }
        if let Err(e) = cache::remove(&path) {
            // DEL itself succeeded; a leftover entry only makes a later GC DEL again.
            warn!(path = %path.display(), error = %e, "could not remove the CNI result cache entry after DEL");
        }
        Ok(())
    }

    /// CHECK: asks each plugin, in order, whether the attachment is still as ADD left it.
    ///
    /// Needs cniVersion 0.4.0 or later and a cached result; a no-op with `disableCheck`.
    pub fn check(&self, net: &NetConfList, rt: &RuntimeConf) -> Result<(), ExecError> {
        validate_attachment(&net.name, rt)?;
        let version = list_version(net)?;
        if !version.has_check() {
            return Err(ExecError::NotSupported {
                network: net.name.clone(),
                command: Command::Check.as_str(),
                version,
                needs: CniVersion::V0_4_0,
            });
        }
        if net.disable_check {
            debug!(network = %net.name, "CHECK skipped: the network sets disableCheck");
            return Ok(());
        }
        require_netns(Command::Check, rt)?;
        let path = self.cache_path(&net.name, rt);
        let prev = cached_in_version(&path, version)?.ok_or_else(|| ExecError::NoCachedResult {
            network: net.name.clone(),
            container_id: rt.container_id.clone(),
            ifname: rt.ifname.clone(),
            path: path.clone(),
        })?;
        let plugins = self.resolve_plugins(net)?;
        let runtime_config = Value::Object(rt.capability_args.clone());
        for (i, (plugin, binary)) in plugins.iter().enumerate() {
            let conf = net.plugin_config(i, version, Some(&prev), Some(&runtime_config));
            self.invoke(plugin, binary, Command::Check, Some(rt), &conf)?;
        }
        Ok(())
    }

    /// GC: releases what is not in `valid`. First DELs every cached attachment of this
    /// network missing from `valid` (with the netns, args and capability args cached on ADD;
    /// a successful DEL drops its cache entry), then, from 1.1.0 on, runs each plugin's GC
    /// with the config plus `cni.dev/valid-attachments`.
    ///
    /// A no-op with `disableGC`. Below 1.1.0 only the cached-attachment DELs happen (libcni
    /// does the same; the GC verb does not exist there). Failures do not stop the GC; they
    /// come back together in [`ExecError::Gc`].
    pub fn gc(&self, net: &NetConfList, valid: &[Attachment]) -> Result<(), ExecError> {
        if net.disable_gc {
            debug!(network = %net.name, "GC skipped: the network sets disableGC");
            return Ok(());
        }
        let version = list_version(net)?;
        let keep: HashSet<&Attachment> = valid.iter().collect();
        let mut errors = Vec::new();
        match cache::list(&self.cfg.cache_dir) {
            Ok(entries) => {
                for (_, e) in entries.into_iter().filter(|(_, e)| e.network_name == net.name) {
                    let key = Attachment { container_id: e.container_id.clone(), ifname: e.ifname.clone() };
                    if keep.contains(&key) {
                        continue;
                    }
                    debug!(network = %net.name, container = %e.container_id, ifname = %e.ifname, "GC: deleting a stale attachment");
                    let rt = RuntimeConf {
                        container_id: e.container_id,
                        netns: PathBuf::from(e.netns),
                        ifname: e.ifname,
                        args: e.cni_args,
                        capability_args: e.capability_args,
                    };
                    if let Err(err) = self.del(net, &rt) {
                        errors.push(ExecError::StaleAttachment {
                            container_id: rt.container_id,
                            ifname: rt.ifname,
                            source: Box::new(err),
                        });
                    }
                }
            }
            Err(e) => errors.push(e),
        }
        if version.has_gc_and_status() {
            let valid_json = Value::Array(
                valid
                    .iter()
                    .map(|a| {
                        let mut m = Map::new();
                        m.insert("containerID".into(), Value::String(a.container_id.clone()));
                        m.insert("ifname".into(), Value::String(a.ifname.clone()));
                        Value::Object(m)
                    })
                    .collect(),
            );
            for i in 0..net.plugins.len() {
                let step = plugin_type(net, i).and_then(|plugin| {
                    let binary = invoke::find_plugin(plugin, &self.cfg.plugin_dirs)?;
                    let mut conf = net.plugin_config(i, version, None, None);
                    if let Value::Object(m) = &mut conf {
                        m.insert(VALID_ATTACHMENTS_KEY.into(), valid_json.clone());
                    }
                    self.invoke(plugin, &binary, Command::Gc, None, &conf).map(drop)
                });
                if let Err(e) = step {
                    errors.push(e);
                }
            }
        }
        if errors.is_empty() {
            Ok(())
        } else {
            Err(ExecError::Gc { network: net.name.clone(), errors })
        }
    }

    /// STATUS: asks each plugin, in order, whether it can serve ADDs now; the first failure
    /// (typically code 50 or 51) is returned. A no-op below cniVersion 1.1.0.
    pub fn status(&self, net: &NetConfList) -> Result<(), ExecError> {
        let version = list_version(net)?;
        if !version.has_gc_and_status() {
            debug!(network = %net.name, %version, "STATUS skipped: the network's CNI version has no STATUS");
            return Ok(());
        }
        for (i, (plugin, binary)) in self.resolve_plugins(net)?.iter().enumerate() {
            let conf = net.plugin_config(i, version, None, None);
            self.invoke(plugin, binary, Command::Status, None, &conf)?;
        }
        Ok(())
    }

    /// The result cached by the last successful ADD of this attachment to network `net`,
    /// or `None` when there is none.
    pub fn cached_result(&self, net: &str, rt: &RuntimeConf) -> Result<Option<CniResult>, ExecError> {
        validate_attachment(net, rt)?;
        let path = self.cache_path(net, rt);
        match cache::read_result(&path)? {
            None => Ok(None),
            Some(raw) => {
                CniResult::from_json(&raw).map(Some).map_err(|e| ExecError::BadCache { path, reason: e.to_string() })
            }
        }
    }

    /// The attachments of network `net` that have a cache entry (what a GC at runtime start
    /// compares with the runtime's own state). Unreadable entries are skipped.
    pub fn cached_attachments(&self, net: &str) -> Result<Vec<Attachment>, ExecError> {
        Ok(cache::list(&self.cfg.cache_dir)?
            .into_iter()
            .filter(|(_, e)| e.network_name == net)
            .map(|(_, e)| Attachment { container_id: e.container_id, ifname: e.ifname })
            .collect())
    }

    /// VERSION: the spec versions the plugin `plugin_type` supports.
    pub fn plugin_versions(&self, plugin_type: &str) -> Result<VersionInfo, ExecError> {
        let binary = invoke::find_plugin(plugin_type, &self.cfg.plugin_dirs)?;
        let mut stdin = Map::new();
        stdin.insert("cniVersion".into(), Value::String(CniVersion::LATEST.as_str().into()));
        let cni_path = invoke::cni_path(&self.cfg.plugin_dirs);
        // Dummy netns and ifname as libcni: plugins built on old skel versions insist on them.
        let inv = Invocation {
            plugin: plugin_type,
            binary: &binary,
            command: Command::Version,
            container_id: "",
            netns: OsStr::new("dummy"),
            ifname: "dummy",
            args: "",
            cni_path: &cni_path,
        };
        let out = invoke::exec_plugin(&inv, Value::Object(stdin).to_string().as_bytes())?;
        serde_json::from_slice(&out).map_err(|e| ExecError::BadOutput {
            plugin: plugin_type.to_string(),
            command: Command::Version.as_str(),
            reason: format!("not a VERSION answer ({{\"cniVersion\",\"supportedVersions\"}}): {e}"),
            output: invoke::snippet(&out),
        })
    }

    fn conf_files(&self, exts: &[&str]) -> Result<Vec<PathBuf>, ExecError> {
        let dir = &self.cfg.conf_dir;
        let read = match fs::read_dir(dir) {
            Ok(r) => r,
            Err(e) if e.kind() == ErrorKind::NotFound => return Ok(Vec::new()),
            Err(e) => return Err(ExecError::io("list the CNI config directory", dir, e)),
        };
        let mut files = Vec::new();
        for ent in read {
            let ent = ent.map_err(|e| ExecError::io("list the CNI config directory", dir, e))?;
            let path = ent.path();
            let wanted = path.extension().and_then(OsStr::to_str).is_some_and(|x| exts.contains(&x));
            if wanted && fs::metadata(&path).is_ok_and(|m| m.is_file()) {
                files.push(path);
            }
        }
        files.sort_by(|a, b| a.file_name().cmp(&b.file_name()));
        Ok(files)
    }

    fn resolve_plugins<'n>(&self, net: &'n NetConfList) -> Result<Vec<(&'n str, PathBuf)>, ExecError> {
        if net.plugins.is_empty() {
            return Err(no_plugins(net));
        }
        (0..net.plugins.len())
            .map(|i| {
                let plugin = plugin_type(net, i)?;
                Ok((plugin, invoke::find_plugin(plugin, &self.cfg.plugin_dirs)?))
            })
            .collect()
    }

    fn cache_path(&self, net: &str, rt: &RuntimeConf) -> PathBuf {
        cache::entry_path(&self.cfg.cache_dir, net, &rt.container_id, &rt.ifname)
    }

    fn invoke(
        &self,
        plugin: &str,
        binary: &Path,
        command: Command,
        rt: Option<&RuntimeConf>,
        conf: &Value,
    ) -> Result<Vec<u8>, ExecError> {
        let cni_path = invoke::cni_path(&self.cfg.plugin_dirs);
        let args = rt.map(|rt| invoke::cni_args(&rt.args)).unwrap_or_default();
        let inv = Invocation {
            plugin,
            binary,
            command,
            container_id: rt.map_or("", |rt| rt.container_id.as_str()),
            netns: rt.map_or(OsStr::new(""), |rt| rt.netns.as_os_str()),
            ifname: rt.map_or("", |rt| rt.ifname.as_str()),
            args: &args,
            cni_path: &cni_path,
        };
        invoke::exec_plugin(&inv, conf.to_string().as_bytes())
    }
}

fn load_file(path: &Path) -> Result<NetConfList, ExecError> {
    let bytes = fs::read(path).map_err(|e| ExecError::io("read CNI network configuration", path, e))?;
    NetConfList::from_bytes(&bytes).map_err(|error| ExecError::BadConfigFile { path: path.to_path_buf(), error })
}

fn list_version(net: &NetConfList) -> Result<CniVersion, ExecError> {
    net.version().map_err(|e| {
        ExecError::Config(CniError::new(e.code, format!("network {:?}: {}", net.name, e.msg)).with_details(e.details))
    })
}

fn plugin_type(net: &NetConfList, i: usize) -> Result<&str, ExecError> {
    net.plugins.get(i).and_then(|p| p.get("type")).and_then(Value::as_str).filter(|t| !t.is_empty()).ok_or_else(|| {
        ExecError::Config(CniError::invalid_config(format!(
            "network {:?}: plugins[{i}].type is missing or empty",
            net.name
        )))
    })
}

fn no_plugins(net: &NetConfList) -> ExecError {
    ExecError::Config(CniError::invalid_config(format!("network {:?} has no plugins", net.name)))
}

/// Network names and container IDs as libcni allows them: `[a-zA-Z0-9][a-zA-Z0-9_.-]*`.
fn valid_name(s: &str) -> bool {
    let mut chars = s.chars();
    chars.next().is_some_and(|c| c.is_ascii_alphanumeric())
        && chars.all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '.' | '-'))
}

/// Checks what ends up in the cache file name and the plugin's environment.
fn validate_attachment(net: &str, rt: &RuntimeConf) -> Result<(), ExecError> {
    let bad = |msg: String| Err(ExecError::Config(CniError::invalid_env(msg)));
    if !valid_name(net) {
        return Err(ExecError::Config(CniError::invalid_config(format!(
            "network name {net:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit"
        ))));
    }
    if !valid_name(&rt.container_id) {
        return bad(format!(
            "container ID {:?} is invalid: use letters, digits, '_', '.' and '-', starting with a letter or digit",
            rt.container_id
        ));
    }
    if rt.ifname.is_empty() {
        return bad("interface name is empty; set RuntimeConf.ifname (e.g. \"eth0\")".into());
    }
    if let Err(why) = valid_ifname(&rt.ifname) {
        return bad(format!("interface name {:?} is invalid: {why}", rt.ifname));
    }
    for (k, v) in &rt.args {
        if k.is_empty() || k.contains(['=', ';']) || v.contains(';') {
            return bad(format!(
                "CNI_ARGS entry {k:?}={v:?} cannot be passed: keys must be non-empty without '=' or ';', values without ';'"
            ));
        }
    }
    Ok(())
}

fn require_netns(command: Command, rt: &RuntimeConf) -> Result<(), ExecError> {
    if rt.netns.as_os_str().is_empty() {
        return Err(ExecError::Config(CniError::invalid_env(format!(
            "{} needs the container's network namespace; set RuntimeConf.netns",
            command.as_str()
        ))));
    }
    Ok(())
}

/// The cached result at `path`, converted to `version` if it was cached in another one
/// (the config changed while the container ran).
fn cached_in_version(path: &Path, version: CniVersion) -> Result<Option<Value>, ExecError> {
    let Some(raw) = cache::read_result(path)? else { return Ok(None) };
    in_version(raw, version)
        .map(|(v, _)| Some(v))
        .map_err(|e| ExecError::BadCache { path: path.to_path_buf(), reason: e.to_string() })
}

/// `raw` as a result of `version`: as is when it already says so (or says nothing: the
/// config's version is meant, as libcni assumes), else converted through [`CniResult`].
fn in_version(mut raw: Value, version: CniVersion) -> Result<(Value, CniResult), CniError> {
    let stated = raw.get("cniVersion").and_then(Value::as_str).map(str::to_owned);
    match stated {
        Some(v) if v == version.as_str() => {}
        None => {
            if let Value::Object(m) = &mut raw {
                m.insert("cniVersion".into(), Value::String(version.as_str().into()));
            }
        }
        Some(other) => {
            debug!(from = %other, to = %version, "converting a CNI result to the list's version");
            let result = CniResult::from_json(&raw)?;
            return Ok((result.to_json(version), result));
        }
    }
    let result = CniResult::from_json(&raw)?;
    Ok((raw, result))
}

fn parse_add_output(plugin: &str, out: &[u8], version: CniVersion) -> Result<(Value, CniResult), ExecError> {
    let bad = |reason: String| ExecError::BadOutput {
        plugin: plugin.to_string(),
        command: Command::Add.as_str(),
        reason,
        output: invoke::snippet(out),
    };
    if out.iter().all(u8::is_ascii_whitespace) {
        return Err(bad("ADD printed no result on stdout; a plugin must print its result".into()));
    }
    let raw: Value = serde_json::from_slice(out).map_err(|e| bad(format!("not JSON: {e}")))?;
    if !raw.is_object() {
        return Err(bad("the result is not a JSON object".into()));
    }
    in_version(raw, version).map_err(|e| bad(format!("not a CNI result: {e}")))
}
