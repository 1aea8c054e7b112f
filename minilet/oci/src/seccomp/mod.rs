//! `linux.seccomp` compiled to BPF with seccompiler (pure Rust, no libseccomp).
//!
//! seccompiler's filters have one action on match and one on mismatch, while an OCI
//! profile gives each syscall group its own action. The profile becomes a stack of
//! filters, relying on the kernel running all of them and keeping the strictest
//! result (KILL > TRAP > ERRNO > TRACE > LOG > ALLOW; among equal kinds the filter
//! installed last wins):
//!
//! * a base filter: every syscall a rule names (with the rule's argument conditions)
//!   → ALLOW, anything else → `defaultAction` (left out when that is ALLOW);
//! * per other action A: the syscalls of A's rules → A, anything else → ALLOW.
//!
//! Supported: the actions ALLOW, ERRNO, KILL (= KILL_THREAD), KILL_THREAD,
//! KILL_PROCESS, TRAP, TRACE, LOG; argument comparisons (ANDed within a rule).
//! Refused with a clear error: NOTIFY, `listenerPath`, `flags`. Syscall names this
//! architecture does not have are skipped, as runc does.

mod syscalls;

use std::collections::BTreeMap;

use oci_spec::runtime::{LinuxSeccomp, LinuxSeccompAction, LinuxSeccompArg, LinuxSeccompOperator};
use seccompiler::{
    BpfProgram, SeccompAction, SeccompCmpArgLen, SeccompCmpOp, SeccompCondition, SeccompFilter,
    SeccompRule, TargetArch,
};

use crate::error::{Error, Result};

pub use syscalls::number as syscall_number;

/// The filters to install, in order.
#[derive(Debug, Clone, Default)]
pub struct Program {
    filters: Vec<BpfProgram>,
}

impl Program {
    /// How many BPF filters the profile became.
    pub fn len(&self) -> usize {
        self.filters.len()
    }

    /// Whether nothing is to be installed (an all-ALLOW profile).
    pub fn is_empty(&self) -> bool {
        self.filters.is_empty()
    }

    /// Installs the filters on the calling thread (needs `no_new_privs` or CAP_SYS_ADMIN).
    pub fn install(&self) -> Result<()> {
        for f in &self.filters {
            seccompiler::apply_filter(f).map_err(|e| Error::Seccomp(format!("install: {e}")))?;
        }
        Ok(())
    }
}

fn action(
    a: LinuxSeccompAction,
    errno: Option<u32>,
    default_errno: Option<u32>,
) -> Result<SeccompAction> {
    Ok(match a {
        LinuxSeccompAction::ScmpActAllow => SeccompAction::Allow,
        LinuxSeccompAction::ScmpActErrno => {
            SeccompAction::Errno(errno.or(default_errno).unwrap_or(libc::EPERM as u32))
        }
        LinuxSeccompAction::ScmpActKill | LinuxSeccompAction::ScmpActKillThread => {
            SeccompAction::KillThread
        }
        LinuxSeccompAction::ScmpActKillProcess => SeccompAction::KillProcess,
        LinuxSeccompAction::ScmpActTrap => SeccompAction::Trap,
        LinuxSeccompAction::ScmpActTrace => SeccompAction::Trace(errno.unwrap_or(0)),
        LinuxSeccompAction::ScmpActLog => SeccompAction::Log,
        LinuxSeccompAction::ScmpActNotify => {
            return Err(Error::Seccomp(
                "the action SCMP_ACT_NOTIFY is not supported".into(),
            ))
        }
    })
}

fn condition(arg: &LinuxSeccompArg) -> Result<SeccompCondition> {
    let (op, value) = match arg.op() {
        LinuxSeccompOperator::ScmpCmpNe => (SeccompCmpOp::Ne, arg.value()),
        LinuxSeccompOperator::ScmpCmpLt => (SeccompCmpOp::Lt, arg.value()),
        LinuxSeccompOperator::ScmpCmpLe => (SeccompCmpOp::Le, arg.value()),
        LinuxSeccompOperator::ScmpCmpEq => (SeccompCmpOp::Eq, arg.value()),
        LinuxSeccompOperator::ScmpCmpGe => (SeccompCmpOp::Ge, arg.value()),
        LinuxSeccompOperator::ScmpCmpGt => (SeccompCmpOp::Gt, arg.value()),
        LinuxSeccompOperator::ScmpCmpMaskedEq => (
            SeccompCmpOp::MaskedEq(arg.value()),
            arg.value_two().unwrap_or(0),
        ),
    };
    let index = u8::try_from(arg.index())
        .map_err(|_| Error::Seccomp(format!("argument index {}", arg.index())))?;
    SeccompCondition::new(index, SeccompCmpArgLen::Qword, op, value)
        .map_err(|e| Error::Seccomp(format!("argument {}: {e}", arg.index())))
}

/// The rules for one syscall: `None` = unconditional.
type Rules = BTreeMap<i64, Option<Vec<SeccompRule>>>;

fn add(rules: &mut Rules, nr: i64, rule: Option<SeccompRule>) {
    let entry = rules.entry(nr).or_insert_with(|| Some(Vec::new()));
    match (entry.as_mut(), rule) {
        (Some(list), Some(r)) => list.push(r),
        (_, None) => *entry = None,
        (None, Some(_)) => {}
    }
}

fn filter(
    rules: Rules,
    mismatch: SeccompAction,
    matched: SeccompAction,
    arch: TargetArch,
) -> Result<BpfProgram> {
    let rules = rules
        .into_iter()
        .map(|(nr, r)| (nr, r.unwrap_or_default()))
        .collect();
    let f = SeccompFilter::new(rules, mismatch, matched, arch)
        .map_err(|e| Error::Seccomp(e.to_string()))?;
    f.try_into()
        .map_err(|e: seccompiler::BackendError| Error::Seccomp(e.to_string()))
}

fn target_arch() -> Result<TargetArch> {
    TargetArch::try_from(std::env::consts::ARCH).map_err(|_| {
        Error::Seccomp(format!(
            "the architecture {} is not supported",
            std::env::consts::ARCH
        ))
    })
}

/// Compiles a profile.
pub fn compile(profile: &LinuxSeccomp) -> Result<Program> {
    if profile.listener_path().is_some() {
        return Err(Error::Seccomp(
            "listenerPath (seccomp notify) is not supported".into(),
        ));
    }
    if let Some(flag) = profile.flags().iter().flatten().next() {
        return Err(Error::Seccomp(format!(
            "the flag {flag:?} is not supported"
        )));
    }
    let arch = target_arch()?;
    let default_errno = profile.default_errno_ret();
    let default = action(profile.default_action(), default_errno, None)?;
    let mut base = Rules::new();
    let mut by_action: BTreeMap<u32, (SeccompAction, Rules)> = BTreeMap::new();
    for (i, sc) in profile.syscalls().iter().flatten().enumerate() {
        let act = action(sc.action(), sc.errno_ret(), default_errno)
            .map_err(|e| Error::Seccomp(format!("syscalls[{i}]: {e}")))?;
        let rule = match sc.args().as_deref() {
            None | Some([]) => None,
            Some(args) => {
                let conds = args.iter().map(condition).collect::<Result<Vec<_>>>()?;
                Some(
                    SeccompRule::new(conds)
                        .map_err(|e| Error::Seccomp(format!("syscalls[{i}]: {e}")))?,
                )
            }
        };
        for name in sc.names() {
            let Some(nr) = syscalls::number(name) else {
                tracing::debug!("seccomp: syscall {name} is unknown on this architecture; skipped");
                continue;
            };
            add(&mut base, nr, rule.clone());
            if act != SeccompAction::Allow {
                let slot = by_action
                    .entry(u32::from(act.clone()))
                    .or_insert_with(|| (act.clone(), Rules::new()));
                add(&mut slot.1, nr, rule.clone());
            }
        }
    }
    let mut filters = Vec::new();
    if default != SeccompAction::Allow {
        filters.push(filter(base, default, SeccompAction::Allow, arch)?);
    }
    for (_, (act, rules)) in by_action {
        filters.push(filter(rules, SeccompAction::Allow, act, arch)?);
    }
    Ok(Program { filters })
}

/// The actions and operators supported, for `features`.
pub fn known_actions() -> Vec<&'static str> {
    vec![
        "SCMP_ACT_ALLOW",
        "SCMP_ACT_ERRNO",
        "SCMP_ACT_KILL",
        "SCMP_ACT_KILL_THREAD",
        "SCMP_ACT_KILL_PROCESS",
        "SCMP_ACT_TRAP",
        "SCMP_ACT_TRACE",
        "SCMP_ACT_LOG",
    ]
}

/// The argument operators supported, for `features`.
pub fn known_operators() -> Vec<&'static str> {
    vec![
        "SCMP_CMP_NE",
        "SCMP_CMP_LT",
        "SCMP_CMP_LE",
        "SCMP_CMP_EQ",
        "SCMP_CMP_GE",
        "SCMP_CMP_GT",
        "SCMP_CMP_MASKED_EQ",
    ]
}

#[cfg(test)]
mod tests {
    use super::*;

    fn profile(json: &str) -> LinuxSeccomp {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn table_knows_common_syscalls() {
        assert!(syscall_number("read").is_some());
        assert!(syscall_number("execve").is_some());
        assert!(syscall_number("no_such_call").is_none());
    }

    #[test]
    fn allowlist_with_errno_group() {
        let p = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ERRNO","defaultErrnoRet":1,"syscalls":[
            {"names":["read","write","exit_group","bogus_call"],"action":"SCMP_ACT_ALLOW"},
            {"names":["mkdir"],"action":"SCMP_ACT_ERRNO","errnoRet":38},
            {"names":["personality"],"action":"SCMP_ACT_ALLOW",
             "args":[{"index":0,"value":0,"op":"SCMP_CMP_EQ"}]}]}"#,
        ))
        .unwrap();
        assert_eq!(p.len(), 2);
    }

    #[test]
    fn default_allow_with_kill() {
        let p = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[
            {"names":["mount"],"action":"SCMP_ACT_KILL"},
            {"names":["umount2"],"action":"SCMP_ACT_ERRNO"}]}"#,
        ))
        .unwrap();
        assert_eq!(p.len(), 2);
        let p = compile(&profile(r#"{"defaultAction":"SCMP_ACT_ALLOW"}"#)).unwrap();
        assert!(p.is_empty());
    }

    #[test]
    fn unsupported_is_refused_clearly() {
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","syscalls":[{"names":["mount"],"action":"SCMP_ACT_NOTIFY"}]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("SCMP_ACT_NOTIFY"), "{e}");
        let e = compile(&profile(
            r#"{"defaultAction":"SCMP_ACT_ALLOW","flags":["SECCOMP_FILTER_FLAG_LOG"]}"#,
        ))
        .unwrap_err();
        assert!(e.to_string().contains("flag"), "{e}");
    }
}
