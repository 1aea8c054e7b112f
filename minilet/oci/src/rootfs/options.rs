//! Mount options as config.json writes them (`ro`, `nosuid`, `rbind`, `rprivate`,
//! `mode=755`, …) parsed into `mount(2)` flags, propagation flags and data.

use nix::mount::MsFlags;

/// A parsed option list.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountOptions {
    /// Flags to set.
    pub flags: MsFlags,
    /// Propagation changes, applied with separate mount calls after the mount.
    pub propagation: Vec<MsFlags>,
    /// Filesystem-specific options, joined with commas as mount's data.
    pub data: Vec<String>,
}

impl Default for MountOptions {
    fn default() -> Self {
        MountOptions {
            flags: MsFlags::empty(),
            propagation: Vec::new(),
            data: Vec::new(),
        }
    }
}

impl MountOptions {
    /// Whether the mount is a bind mount (`bind` or `rbind`).
    pub fn is_bind(&self) -> bool {
        self.flags.contains(MsFlags::MS_BIND)
    }

    /// The data argument, if any options went there.
    pub fn data_string(&self) -> Option<String> {
        (!self.data.is_empty()).then(|| self.data.join(","))
    }
}

/// Options that set (true) or clear (false) a flag.
const FLAGS: &[(&str, bool, MsFlags)] = &[
    ("async", false, MsFlags::MS_SYNCHRONOUS),
    ("atime", false, MsFlags::MS_NOATIME),
    ("bind", true, MsFlags::MS_BIND),
    ("defaults", true, MsFlags::empty()),
    ("dev", false, MsFlags::MS_NODEV),
    ("diratime", false, MsFlags::MS_NODIRATIME),
    ("dirsync", true, MsFlags::MS_DIRSYNC),
    ("exec", false, MsFlags::MS_NOEXEC),
    ("mand", true, MsFlags::MS_MANDLOCK),
    ("noatime", true, MsFlags::MS_NOATIME),
    ("nodev", true, MsFlags::MS_NODEV),
    ("nodiratime", true, MsFlags::MS_NODIRATIME),
    ("noexec", true, MsFlags::MS_NOEXEC),
    ("nomand", false, MsFlags::MS_MANDLOCK),
    ("norelatime", false, MsFlags::MS_RELATIME),
    ("nostrictatime", false, MsFlags::MS_STRICTATIME),
    ("nosuid", true, MsFlags::MS_NOSUID),
    ("rbind", true, MsFlags::MS_BIND.union(MsFlags::MS_REC)),
    ("relatime", true, MsFlags::MS_RELATIME),
    ("remount", true, MsFlags::MS_REMOUNT),
    ("ro", true, MsFlags::MS_RDONLY),
    ("rw", false, MsFlags::MS_RDONLY),
    ("silent", true, MsFlags::MS_SILENT),
    ("strictatime", true, MsFlags::MS_STRICTATIME),
    ("suid", false, MsFlags::MS_NOSUID),
    ("sync", true, MsFlags::MS_SYNCHRONOUS),
];

/// Propagation options.
const PROPAGATION: &[(&str, MsFlags)] = &[
    ("private", MsFlags::MS_PRIVATE),
    ("rprivate", MsFlags::MS_PRIVATE.union(MsFlags::MS_REC)),
    ("shared", MsFlags::MS_SHARED),
    ("rshared", MsFlags::MS_SHARED.union(MsFlags::MS_REC)),
    ("slave", MsFlags::MS_SLAVE),
    ("rslave", MsFlags::MS_SLAVE.union(MsFlags::MS_REC)),
    ("unbindable", MsFlags::MS_UNBINDABLE),
    ("runbindable", MsFlags::MS_UNBINDABLE.union(MsFlags::MS_REC)),
];

/// Options accepted and ignored (runtime-specific hints of other runtimes).
const IGNORED: &[&str] = &["tmpcopyup", "notmpcopyup", "copy-symlink", "z", "Z"];

/// Every option name this parser knows, for `features`.
pub fn known() -> Vec<&'static str> {
    let mut all: Vec<&str> = FLAGS.iter().map(|f| f.0).collect();
    all.extend(PROPAGATION.iter().map(|p| p.0));
    all
}

/// Parses an option list.
pub fn parse<S: AsRef<str>>(options: &[S]) -> MountOptions {
    let mut out = MountOptions::default();
    for opt in options {
        let opt = opt.as_ref();
        if let Some((_, set, flag)) = FLAGS.iter().find(|f| f.0 == opt) {
            if *set {
                out.flags |= *flag;
            } else {
                out.flags &= !*flag;
            }
        } else if let Some((_, flag)) = PROPAGATION.iter().find(|p| p.0 == opt) {
            out.propagation.push(*flag);
        } else if IGNORED.contains(&opt) || opt.is_empty() {
        } else {
            out.data.push(opt.to_string());
        }
    }
    out
}

/// The root mount's propagation from `linux.rootfsPropagation` (runc's default: rslave).
pub fn root_propagation(value: Option<&str>) -> Result<MsFlags, String> {
    match value.unwrap_or("") {
        "" => Ok(MsFlags::MS_SLAVE | MsFlags::MS_REC),
        v => PROPAGATION
            .iter()
            .find(|p| p.0 == v)
            .map(|p| p.1)
            .ok_or_else(|| format!("linux.rootfsPropagation {v:?} is not a propagation mode")),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn flags_data_and_propagation() {
        let o = parse(&[
            "nosuid",
            "noexec",
            "nodev",
            "mode=755",
            "size=65536k",
            "rprivate",
        ]);
        assert_eq!(
            o.flags,
            MsFlags::MS_NOSUID | MsFlags::MS_NOEXEC | MsFlags::MS_NODEV
        );
        assert_eq!(o.data_string().as_deref(), Some("mode=755,size=65536k"));
        assert_eq!(o.propagation, vec![MsFlags::MS_PRIVATE | MsFlags::MS_REC]);
        assert!(!o.is_bind());
    }

    #[test]
    fn bind_ro_and_clearing() {
        let o = parse(&["rbind", "ro"]);
        assert!(o.is_bind());
        assert!(o.flags.contains(MsFlags::MS_REC | MsFlags::MS_RDONLY));
        let o = parse(&["ro", "rw", "nosuid", "suid"]);
        assert_eq!(o.flags, MsFlags::empty());
        assert_eq!(o.data_string(), None);
    }

    #[test]
    fn devpts_options_go_to_data() {
        let o = parse(&[
            "nosuid",
            "noexec",
            "newinstance",
            "ptmxmode=0666",
            "mode=0620",
            "gid=5",
        ]);
        assert_eq!(
            o.data_string().as_deref(),
            Some("newinstance,ptmxmode=0666,mode=0620,gid=5")
        );
    }

    #[test]
    fn root_propagation_default_and_errors() {
        assert_eq!(
            root_propagation(None).unwrap(),
            MsFlags::MS_SLAVE | MsFlags::MS_REC
        );
        assert_eq!(
            root_propagation(Some("private")).unwrap(),
            MsFlags::MS_PRIVATE
        );
        assert!(root_propagation(Some("bogus"))
            .unwrap_err()
            .contains("rootfsPropagation"));
    }
}
