//! The small file-system layer every backend goes through.
//!
//! All side effects on cgroup directories (read, write, mkdir, rmdir, listing) go through
//! the [`Fs`] trait, so the controller logic can be unit-tested against a fake tree in a
//! temporary directory (see `fake` in the tests). The free functions wrap those calls
//! into [`CgroupError`]s that name the file and what was being done, and log every write
//! at `debug` level.

use std::io;
use std::path::{Path, PathBuf};
use std::thread;
use std::time::{Duration, Instant};

use crate::CgroupError;

/// How long [`remove_tree`] keeps retrying an `rmdir` that fails with `EBUSY`.
const BUSY_RETRY_FOR: Duration = Duration::from_secs(2);

/// File-system operations on cgroup directories.
pub(crate) trait Fs: Send + Sync + std::fmt::Debug {
    /// Reads a whole file.
    fn read(&self, path: &Path) -> io::Result<String>;
    /// Writes `data` to an existing file in one `write(2)` (cgroup files need that).
    fn write(&self, path: &Path, data: &str) -> io::Result<()>;
    /// Whether the path exists.
    fn exists(&self, path: &Path) -> bool;
    /// Creates one directory (its parent must exist).
    fn mkdir(&self, path: &Path) -> io::Result<()>;
    /// Removes one (cgroup) directory.
    fn rmdir(&self, path: &Path) -> io::Result<()>;
    /// The sub-directories of a directory.
    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>>;
}

/// The real file system.
#[derive(Debug, Default, Clone, Copy)]
pub(crate) struct RealFs;

impl Fs for RealFs {
    fn read(&self, path: &Path) -> io::Result<String> {
        std::fs::read_to_string(path)
    }

    fn write(&self, path: &Path, data: &str) -> io::Result<()> {
        use std::io::Write;
        let mut file = std::fs::OpenOptions::new().write(true).open(path)?;
        let written = file.write(data.as_bytes())?;
        if written != data.len() {
            return Err(io::Error::new(
                io::ErrorKind::WriteZero,
                format!("short write ({written} of {} bytes)", data.len()),
            ));
        }
        Ok(())
    }

    fn exists(&self, path: &Path) -> bool {
        path.exists()
    }

    fn mkdir(&self, path: &Path) -> io::Result<()> {
        std::fs::create_dir(path)
    }

    fn rmdir(&self, path: &Path) -> io::Result<()> {
        std::fs::remove_dir(path)
    }

    fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
        let mut dirs = Vec::new();
        for entry in std::fs::read_dir(path)? {
            let entry = entry?;
            if entry.file_type()?.is_dir() {
                dirs.push(entry.path());
            }
        }
        dirs.sort();
        Ok(dirs)
    }
}

/// A [`CgroupError::Io`] for `what` on `path`.
pub(crate) fn io_err(what: &'static str, path: &Path, source: io::Error) -> CgroupError {
    CgroupError::Io {
        what,
        path: path.to_path_buf(),
        source,
    }
}

/// Reads a file, naming it in the error.
pub(crate) fn read(fs: &dyn Fs, path: &Path) -> Result<String, CgroupError> {
    fs.read(path).map_err(|e| io_err("read", path, e))
}

/// Reads a file that may legitimately be absent (`None` then).
pub(crate) fn read_opt(fs: &dyn Fs, path: &Path) -> Result<Option<String>, CgroupError> {
    match fs.read(path) {
        Ok(text) => Ok(Some(text)),
        Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(io_err("read", path, e)),
    }
}

/// Writes `value` to a cgroup file, logging it and naming the file in the error.
pub(crate) fn write(fs: &dyn Fs, path: &Path, value: &str) -> Result<(), CgroupError> {
    tracing::debug!(path = %path.display(), value, "cgroup write");
    fs.write(path, value).map_err(|e| {
        tracing::debug!(path = %path.display(), value, error = %e, "cgroup write failed");
        io_err("write", path, e)
    })
}

/// Parses a whole file holding one unsigned number.
pub(crate) fn parse_u64(path: &Path, text: &str) -> Result<u64, CgroupError> {
    let text = text.trim();
    text.parse().map_err(|_| CgroupError::Parse {
        path: path.to_path_buf(),
        detail: format!("expected a number, found {text:?}"),
    })
}

/// Reads a file holding one unsigned number.
pub(crate) fn read_u64(fs: &dyn Fs, path: &Path) -> Result<u64, CgroupError> {
    parse_u64(path, &read(fs, path)?)
}

/// Reads a file holding one unsigned number, if the file exists.
pub(crate) fn read_u64_opt(fs: &dyn Fs, path: &Path) -> Result<Option<u64>, CgroupError> {
    read_opt(fs, path)?
        .map(|text| parse_u64(path, &text))
        .transpose()
}

/// The value of `key` in a flat-keyed file (`key value` per line, as in `cpu.stat`,
/// `memory.events` or v1's `memory.oom_control`); `None` if the key is absent.
pub(crate) fn keyed_u64(path: &Path, text: &str, key: &str) -> Result<Option<u64>, CgroupError> {
    for line in text.lines() {
        let mut words = line.split_whitespace();
        if words.next() != Some(key) {
            continue;
        }
        let value = words.next().unwrap_or_default();
        return value.parse().map(Some).map_err(|_| CgroupError::Parse {
            path: path.to_path_buf(),
            detail: format!("bad value {value:?} for {key}"),
        });
    }
    Ok(None)
}

/// Reads `key` from a flat-keyed file; `None` if the file or the key is absent.
pub(crate) fn read_keyed_opt(
    fs: &dyn Fs,
    path: &Path,
    key: &str,
) -> Result<Option<u64>, CgroupError> {
    match read_opt(fs, path)? {
        Some(text) => keyed_u64(path, &text, key),
        None => Ok(None),
    }
}

/// Creates `dir` and whatever parents are missing, top-down. Returns the directories
/// that were created (top-most first), so callers can set them up.
pub(crate) fn mkdir_all(fs: &dyn Fs, dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let missing: Vec<&Path> = dir.ancestors().take_while(|p| !fs.exists(p)).collect();
    let mut created = Vec::new();
    for path in missing.into_iter().rev() {
        tracing::debug!(path = %path.display(), "cgroup mkdir");
        match fs.mkdir(path) {
            Ok(()) => created.push(path.to_path_buf()),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {}
            Err(e) => return Err(io_err("create", path, e)),
        }
    }
    Ok(created)
}

/// `dir` and all directories below it, deepest first (a missing `dir` gives nothing).
pub(crate) fn tree_leaf_first(fs: &dyn Fs, dir: &Path) -> Result<Vec<PathBuf>, CgroupError> {
    let mut out = Vec::new();
    collect_leaf_first(fs, dir, &mut out)?;
    Ok(out)
}

fn collect_leaf_first(fs: &dyn Fs, dir: &Path, out: &mut Vec<PathBuf>) -> Result<(), CgroupError> {
    let children = match fs.subdirs(dir) {
        Ok(children) => children,
        Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
        Err(e) => return Err(io_err("list", dir, e)),
    };
    for child in children {
        collect_leaf_first(fs, &child, out)?;
    }
    out.push(dir.to_path_buf());
    Ok(())
}

/// Removes `dir` and every cgroup below it, leaf-first. A missing directory is fine;
/// `EBUSY` (processes still exiting) is retried for a short while.
pub(crate) fn remove_tree(fs: &dyn Fs, dir: &Path) -> Result<(), CgroupError> {
    for path in tree_leaf_first(fs, dir)? {
        rmdir_retrying(fs, &path)?;
    }
    Ok(())
}

fn rmdir_retrying(fs: &dyn Fs, path: &Path) -> Result<(), CgroupError> {
    let deadline = Instant::now() + BUSY_RETRY_FOR;
    let mut pause = Duration::from_millis(5);
    loop {
        tracing::debug!(path = %path.display(), "cgroup rmdir");
        match fs.rmdir(path) {
            Ok(()) => return Ok(()),
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(()),
            Err(e) if e.raw_os_error() == Some(ebusy()) => {
                if Instant::now() >= deadline {
                    return Err(io_err("remove (processes still inside after 2s)", path, e));
                }
                thread::sleep(pause);
                pause = (pause * 2).min(Duration::from_millis(200));
            }
            Err(e) => return Err(io_err("remove", path, e)),
        }
    }
}

fn ebusy() -> i32 {
    nix::errno::Errno::EBUSY as i32
}

/// The PIDs listed in `dir/cgroup.procs` and in every cgroup below it.
pub(crate) fn procs_recursive(fs: &dyn Fs, dir: &Path) -> Result<Vec<i32>, CgroupError> {
    let mut pids = Vec::new();
    for cgroup in tree_leaf_first(fs, dir)? {
        let file = cgroup.join("cgroup.procs");
        let Some(text) = read_opt(fs, &file)? else {
            continue;
        };
        for word in text.split_whitespace() {
            let pid = word.parse().map_err(|_| CgroupError::Parse {
                path: file.clone(),
                detail: format!("bad pid {word:?}"),
            })?;
            pids.push(pid);
        }
    }
    pids.sort_unstable();
    pids.dedup();
    Ok(pids)
}

/// Sends `signal` (0 only checks) to each PID; processes already gone are skipped.
pub(crate) fn signal_pids(pids: &[i32], signal: i32) -> Result<(), CgroupError> {
    use nix::sys::signal::{kill, Signal};
    use nix::unistd::Pid;
    let sig = if signal == 0 {
        None
    } else {
        Some(
            Signal::try_from(signal)
                .map_err(|_| CgroupError::Invalid(format!("bad signal number {signal}")))?,
        )
    };
    for &pid in pids {
        if pid <= 0 {
            continue;
        }
        tracing::debug!(pid, signal, "signal cgroup member");
        match kill(Pid::from_raw(pid), sig) {
            Ok(()) | Err(nix::errno::Errno::ESRCH) => {}
            Err(e) => {
                return Err(CgroupError::Invalid(format!("kill({pid}, {signal}): {e}")));
            }
        }
    }
    Ok(())
}

/// Signals every process in the cgroups returned by `list`, re-listing a few times for
/// `SIGKILL` so children forked while we were signalling are caught too.
pub(crate) fn kill_listed(
    signal: i32,
    mut list: impl FnMut() -> Result<Vec<i32>, CgroupError>,
) -> Result<(), CgroupError> {
    let mut signalled: Vec<i32> = Vec::new();
    let rounds = if signal == nix::sys::signal::Signal::SIGKILL as i32 {
        5
    } else {
        1
    };
    for _ in 0..rounds {
        let fresh: Vec<i32> = list()?
            .into_iter()
            .filter(|p| !signalled.contains(p))
            .collect();
        if fresh.is_empty() {
            break;
        }
        signal_pids(&fresh, signal)?;
        signalled.extend(fresh);
    }
    Ok(())
}

#[cfg(test)]
pub(crate) mod fake {
    //! A fake cgroup tree in a temporary directory: like cgroupfs, a new directory comes
    //! with the interface files of its parent (empty), `rmdir` removes a directory that
    //! only holds files, and writes never create files.

    use super::*;

    /// The fake file system (plain files under a tempdir).
    #[derive(Debug, Default)]
    pub(crate) struct FakeFs;

    impl Fs for FakeFs {
        fn read(&self, path: &Path) -> io::Result<String> {
            std::fs::read_to_string(path)
        }

        fn write(&self, path: &Path, data: &str) -> io::Result<()> {
            if !path.is_file() {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            std::fs::write(path, data)
        }

        fn exists(&self, path: &Path) -> bool {
            path.exists()
        }

        fn mkdir(&self, path: &Path) -> io::Result<()> {
            std::fs::create_dir(path)?;
            let Some(parent) = path.parent() else {
                return Ok(());
            };
            for entry in std::fs::read_dir(parent)? {
                let entry = entry?;
                if entry.file_type()?.is_file() {
                    std::fs::write(path.join(entry.file_name()), "")?;
                }
            }
            Ok(())
        }

        fn rmdir(&self, path: &Path) -> io::Result<()> {
            if !path.exists() {
                return Err(io::Error::from(io::ErrorKind::NotFound));
            }
            for entry in std::fs::read_dir(path)? {
                let entry = entry?;
                if entry.file_type()?.is_dir() {
                    return Err(io::Error::from_raw_os_error(
                        nix::errno::Errno::ENOTEMPTY as i32,
                    ));
                }
            }
            std::fs::remove_dir_all(path)
        }

        fn subdirs(&self, path: &Path) -> io::Result<Vec<PathBuf>> {
            RealFs.subdirs(path)
        }
    }

    /// Creates `dir` with the given files (name, content).
    pub(crate) fn populate(dir: &Path, files: &[(&str, &str)]) {
        std::fs::create_dir_all(dir).expect("create fake cgroup dir");
        for (name, content) in files {
            std::fs::write(dir.join(name), content).expect("write fake cgroup file");
        }
    }

    /// Reads a fake file.
    pub(crate) fn content(path: &Path) -> String {
        std::fs::read_to_string(path).expect("read fake cgroup file")
    }
}

#[cfg(test)]
mod tests {
    use super::fake::{populate, FakeFs};
    use super::*;

    #[test]
    fn keyed_values() {
        let p = Path::new("/x/memory.oom_control");
        let text = "oom_kill_disable 0\nunder_oom 0\noom_kill 3\n";
        assert_eq!(keyed_u64(p, text, "oom_kill").unwrap(), Some(3));
        assert_eq!(keyed_u64(p, text, "under_oom").unwrap(), Some(0));
        assert_eq!(
            keyed_u64(p, "oom_kill_disable 0\nunder_oom 0\n", "oom_kill").unwrap(),
            None
        );
        let err = keyed_u64(p, "oom_kill x\n", "oom_kill").unwrap_err();
        assert!(err.to_string().contains("/x/memory.oom_control"), "{err}");
    }

    #[test]
    fn errors_name_the_file() {
        let dir = tempfile::tempdir().unwrap();
        let missing = dir.path().join("memory.limit_in_bytes");
        let err = write(&FakeFs, &missing, "1").unwrap_err();
        let text = err.to_string();
        assert!(text.starts_with("write "), "{text}");
        assert!(text.contains("memory.limit_in_bytes"), "{text}");
        assert_eq!(read_opt(&FakeFs, &missing).unwrap(), None);
        assert!(read_u64(&FakeFs, &missing)
            .unwrap_err()
            .to_string()
            .starts_with("read "));
    }

    #[test]
    fn mkdir_all_and_remove_tree() {
        let dir = tempfile::tempdir().unwrap();
        let root = dir.path().join("root");
        populate(&root, &[("cgroup.procs", "")]);
        let leaf = root.join("a/b/c");
        let created = mkdir_all(&FakeFs, &leaf).unwrap();
        assert_eq!(
            created,
            vec![root.join("a"), root.join("a/b"), leaf.clone()]
        );
        assert!(leaf.join("cgroup.procs").is_file());
        assert!(mkdir_all(&FakeFs, &leaf).unwrap().is_empty());
        std::fs::create_dir(root.join("a/b/d")).unwrap();
        let order = tree_leaf_first(&FakeFs, &root.join("a")).unwrap();
        assert_eq!(order.last(), Some(&root.join("a")));
        remove_tree(&FakeFs, &root.join("a")).unwrap();
        assert!(!root.join("a").exists());
        assert!(root.exists());
        remove_tree(&FakeFs, &root.join("a")).unwrap();
    }

    #[test]
    fn procs_are_collected_recursively() {
        let dir = tempfile::tempdir().unwrap();
        let cg = dir.path().join("cg");
        populate(&cg, &[("cgroup.procs", "12\n7\n")]);
        populate(&cg.join("child"), &[("cgroup.procs", "7\n30\n")]);
        assert_eq!(procs_recursive(&FakeFs, &cg).unwrap(), vec![7, 12, 30]);
        std::fs::write(cg.join("cgroup.procs"), "x\n").unwrap();
        assert!(procs_recursive(&FakeFs, &cg).is_err());
    }

    #[test]
    fn signalling_a_real_child() {
        let mut child = std::process::Command::new("sleep")
            .arg("30")
            .spawn()
            .unwrap();
        let pid = child.id() as i32;
        signal_pids(&[pid], 0).unwrap();
        kill_listed(9, || Ok(vec![pid])).unwrap();
        let status = child.wait().unwrap();
        use std::os::unix::process::ExitStatusExt;
        assert_eq!(status.signal(), Some(9));
        assert!(signal_pids(&[pid], 1000).is_err());
    }
}
