//! The CNI verbs, one module each. [`run`] dispatches on `CNI_COMMAND` and returns what
//! the plugin prints on success (nothing for DEL, GC and STATUS).

pub mod add;
pub mod check;
pub mod del;
pub mod gc;
pub mod status;

use minik_shared::cni::{CniError, Command, PluginEnv, VersionInfo};
use serde_json::Value;

use crate::config::BridgeConf;

/// Runs one verb.
pub fn run(env: &PluginEnv, stdin: &[u8]) -> Result<Option<Value>, CniError> {
    if env.command == Command::Version {
        return Ok(Some(serde_json::to_value(VersionInfo::minik()).unwrap_or(Value::Null)));
    }
    let conf = BridgeConf::parse(stdin)?;
    let verb_ok = match env.command {
        Command::Check => conf.cni_version.has_check(),
        Command::Gc | Command::Status => conf.cni_version.has_gc_and_status(),
        _ => true,
    };
    if !verb_ok {
        return Err(CniError::incompatible_version(format!(
            "{} is not part of CNI {}; use a newer cniVersion",
            env.command.as_str(),
            conf.cni_version
        )));
    }
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_io()
        .build()
        .map_err(|e| CniError::internal(format!("cannot start the async runtime: {e}")))?;
    rt.block_on(async {
        match env.command {
            Command::Add => add::add(env, &conf).await.map(Some),
            Command::Del => del::del(env, &conf).await.map(|()| None),
            Command::Check => check::check(env, &conf).await.map(|()| None),
            Command::Gc => gc::gc(&conf).await.map(|()| None),
            Command::Status => status::status(&conf).map(|()| None),
            Command::Version => Ok(None),
        }
    })
}
