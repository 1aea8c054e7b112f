//! Where allocations are kept: the [`Store`] trait the allocator works against, and
//! [`DiskStore`], which keeps them on disk exactly as the reference `host-local` plugin
//! does, so either plugin can take over a node's state.
//!
//! Layout of `<dataDir>/<network>/`:
//! - one file per allocated IP, named by the IP's text form (`10.244.1.5`, `fd00::5`),
//!   holding `<containerID>\r\n<ifname>`; files holding only `<containerID>` (written by
//!   older host-local versions) belong to that container whatever the interface;
//! - `last_reserved_ip.<rangeSetIndex>`: the last IP handed out from that range set;
//! - `lock`: every operation holds an exclusive `flock` on it (host-local does the same),
//!   waiting at most [`DEFAULT_LOCK_TIMEOUT`] before failing with `CniError::try_again`.
//!
//! Crash safety: an IP file is written to a temp file in the same directory, fsynced, and
//! then `link()`ed to the IP's name (`EEXIST` means taken), so an IP file is either absent
//! or complete, even under `kill -9`. Temp files are only written under the lock, so any
//! temp file a lock holder finds is stray; [`DiskStore::list`] removes them. Callers
//! [`Store::flush`] (fsync the directory) once at the end of an operation that changed it.
//!
//! An empty or unparsable IP file (left by a crashed non-atomic writer, or by hand) is
//! [`Holder::Unknown`]: its IP is never handed out, and GC frees it because no valid
//! attachment owns it.

use std::fs::{self, DirBuilder, File, OpenOptions};
use std::io::{self, Write};
use std::net::IpAddr;
use std::os::unix::fs::{DirBuilderExt, OpenOptionsExt};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use minik_shared::cni::{Attachment, CniError};
use nix::errno::Errno;
use nix::fcntl::{Flock, FlockArg};

/// How long an operation waits for the lock before giving up with `try_again`.
pub const DEFAULT_LOCK_TIMEOUT: Duration = Duration::from_secs(10);
/// What separates the container ID from the interface name in an IP file (host-local's).
pub const LINE_BREAK: &str = "\r\n";
/// The lock file's name.
const LOCK_FILE: &str = "lock";
/// The prefix of the last-reserved files, followed by the range set index.
const LAST_RESERVED_PREFIX: &str = "last_reserved_ip.";
/// The prefix of temp files; it never parses as an IP.
const TMP_PREFIX: &str = ".minik-ipam.tmp.";

/// Who holds an allocated IP, as read from its file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Holder {
    /// `<containerID>\r\n<ifname>`.
    Attachment(Attachment),
    /// `<containerID>` alone, as older host-local versions wrote: any interface of it.
    Legacy(String),
    /// An empty or unparsable file: a leaked reservation, never handed out, freed by GC.
    Unknown,
}

impl Holder {
    /// Parses the content of an IP file.
    pub fn parse(content: &[u8]) -> Holder {
        let Ok(text) = std::str::from_utf8(content) else {
            return Holder::Unknown;
        };
        let text = text.trim();
        match text.split_once(LINE_BREAK) {
            Some((id, ifname)) if valid_word(id.trim()) && valid_word(ifname.trim()) => Holder::Attachment(Attachment {
                container_id: id.trim().to_string(),
                ifname: ifname.trim().to_string(),
            }),
            None if valid_word(text) => Holder::Legacy(text.to_string()),
            _ => Holder::Unknown,
        }
    }

    /// Whether this is exactly `owner`.
    pub fn is(&self, owner: &Attachment) -> bool {
        matches!(self, Holder::Attachment(a) if a == owner)
    }

    /// Whether this is a legacy file of `owner`'s container.
    pub fn is_legacy_of(&self, owner: &Attachment) -> bool {
        matches!(self, Holder::Legacy(id) if *id == owner.container_id)
    }
}

impl std::fmt::Display for Holder {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Holder::Attachment(a) => write!(f, "container {} (ifname {})", a.container_id, a.ifname),
            Holder::Legacy(id) => write!(f, "container {id}"),
            Holder::Unknown => f.write_str("an unreadable reservation (a leaked IP file that GC frees)"),
        }
    }
}

/// A non-empty single word, as container IDs and interface names are.
fn valid_word(s: &str) -> bool {
    !s.is_empty() && !s.contains(char::is_whitespace)
}

/// One allocated IP and its holder.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// The IP.
    pub ip: IpAddr,
    /// Who holds it.
    pub holder: Holder,
}

/// The IPs `owner` holds: those of exactly `owner`, or if there are none, legacy files of
/// its container (host-local's fallback). Sorted.
pub fn owned_by(entries: &[Entry], owner: &Attachment) -> Vec<IpAddr> {
    let pick = |f: &dyn Fn(&Holder) -> bool| -> Vec<IpAddr> {
        let mut ips: Vec<IpAddr> = entries.iter().filter(|e| f(&e.holder)).map(|e| e.ip).collect();
        ips.sort();
        ips
    };
    let exact = pick(&|h| h.is(owner));
    if exact.is_empty() {
        pick(&|h| h.is_legacy_of(owner))
    } else {
        exact
    }
}

/// The allocations of one network. Every method but [`Store::lock`] expects the caller to
/// hold the guard `lock` returned, so a read-check-reserve sequence is atomic.
pub trait Store {
    /// Holds the store's exclusive lock until dropped.
    type Guard<'a>
    where
        Self: 'a;

    /// Takes the exclusive lock, waiting a bounded time (`CniError::try_again` after it).
    fn lock(&self) -> Result<Self::Guard<'_>, CniError>;

    /// Every allocated IP with its holder, sorted by IP.
    fn list(&self) -> Result<Vec<Entry>, CniError>;

    /// Records `ip` as held by `owner`; `Ok(false)` if it is already taken.
    fn reserve(&self, ip: IpAddr, owner: &Attachment) -> Result<bool, CniError>;

    /// Frees `ip`; `Ok(false)` if it was not allocated.
    fn release_ip(&self, ip: IpAddr) -> Result<bool, CniError>;

    /// The last IP handed out from range set `range_set`, if recorded and readable.
    fn last_reserved(&self, range_set: usize) -> Result<Option<IpAddr>, CniError>;

    /// Records the last IP handed out from range set `range_set`.
    fn set_last_reserved(&self, range_set: usize, ip: IpAddr) -> Result<(), CniError>;

    /// Makes the changes so far durable (one directory fsync for the disk store).
    fn flush(&self) -> Result<(), CniError>;

    /// Fails if the store cannot take new allocations (e.g. the directory is not writable).
    fn check_writable(&self) -> Result<(), CniError>;

    /// The IPs `owner` holds (see [`owned_by`]), sorted.
    fn lookup(&self, owner: &Attachment) -> Result<Vec<IpAddr>, CniError> {
        Ok(owned_by(&self.list()?, owner))
    }

    /// Frees every IP `owner` holds and returns them; nothing held is not an error.
    fn release(&self, owner: &Attachment) -> Result<Vec<IpAddr>, CniError> {
        let mut freed = Vec::new();
        for ip in self.lookup(owner)? {
            if self.release_ip(ip)? {
                freed.push(ip);
            }
        }
        Ok(freed)
    }
}

/// The on-disk store of one network: `<dataDir>/<network>/`, host-local's format.
#[derive(Debug)]
pub struct DiskStore {
    dir: PathBuf,
    lock_timeout: Duration,
}

/// The exclusive `flock` on a [`DiskStore`]'s lock file; released on drop.
#[derive(Debug)]
pub struct DiskLock {
    _flock: Flock<File>,
}

impl DiskStore {
    /// Opens the store in `dir`, creating the directory and its lock file if needed.
    pub fn open(dir: impl Into<PathBuf>) -> Result<DiskStore, CniError> {
        let dir = dir.into();
        DirBuilder::new().recursive(true).mode(0o755).create(&dir).map_err(|e| {
            CniError::io(format!(
                "cannot create the IPAM state directory {}: {e}; check that ipam.dataDir names a writable directory",
                dir.display()
            ))
        })?;
        let store = DiskStore { dir, lock_timeout: DEFAULT_LOCK_TIMEOUT };
        store.open_lock_file()?;
        Ok(store)
    }

    /// The same store with another bound on the wait for the lock.
    pub fn with_lock_timeout(mut self, timeout: Duration) -> DiskStore {
        self.lock_timeout = timeout;
        self
    }

    /// The store's directory.
    pub fn dir(&self) -> &Path {
        &self.dir
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.join(name)
    }

    fn open_lock_file(&self) -> Result<File, CniError> {
        let path = self.path(LOCK_FILE);
        OpenOptions::new()
            .read(true)
            .write(true)
            .create(true)
            .truncate(false)
            .mode(0o600)
            .open(&path)
            .map_err(|e| io_error("open the lock file", &path, e))
    }

    /// Writes `content` to a fresh temp file (fsynced if `sync`) and returns its path; on
    /// failure nothing is left behind.
    fn write_temp(&self, content: &[u8], sync: bool) -> Result<PathBuf, CniError> {
        static COUNTER: AtomicU64 = AtomicU64::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let path = self.path(&format!("{TMP_PREFIX}{}.{n}", std::process::id()));
        let written = (|| -> io::Result<()> {
            let mut f = OpenOptions::new().write(true).create(true).truncate(true).mode(0o644).open(&path)?;
            f.write_all(content)?;
            if sync {
                f.sync_all()?;
            }
            Ok(())
        })();
        match written {
            Ok(()) => Ok(path),
            Err(e) => {
                remove_quietly(&path);
                Err(io_error("write the temp file", &path, e))
            }
        }
    }

    /// Removes a stray temp file found by [`DiskStore::list`].
    fn remove_stray(&self, name: &str) {
        tracing::debug!(dir = %self.dir.display(), file = name, "removing a stray IPAM temp file left by a crash");
        remove_quietly(&self.path(name));
    }

    /// Reads one IP file; `None` if it vanished.
    fn read_entry(&self, ip: IpAddr, name: &str) -> Option<Entry> {
        match fs::read(self.path(name)) {
            Ok(content) => Some(Entry { ip, holder: Holder::parse(&content) }),
            Err(e) if e.kind() == io::ErrorKind::NotFound => None,
            Err(e) => {
                tracing::warn!(dir = %self.dir.display(), file = name, error = %e, "cannot read an IP file; treating the IP as taken");
                Some(Entry { ip, holder: Holder::Unknown })
            }
        }
    }
}

impl Store for DiskStore {
    type Guard<'a> = DiskLock;

    fn lock(&self) -> Result<DiskLock, CniError> {
        let path = self.path(LOCK_FILE);
        let mut file = self.open_lock_file()?;
        let deadline = Instant::now() + self.lock_timeout;
        let mut pause = Duration::from_millis(1);
        loop {
            match Flock::lock(file, FlockArg::LockExclusiveNonblock) {
                Ok(flock) => return Ok(DiskLock { _flock: flock }),
                Err((f, Errno::EAGAIN | Errno::EINTR)) => {
                    let now = Instant::now();
                    if now >= deadline {
                        return Err(CniError::try_again(format!(
                            "IPAM lock {} is still held by another process after {:?}; retry, or look for a hung CNI plugin",
                            path.display(),
                            self.lock_timeout
                        )));
                    }
                    std::thread::sleep(pause.min(deadline - now));
                    pause = (pause * 2).min(Duration::from_millis(20));
                    file = f;
                }
                Err((_, e)) => return Err(io_error("flock", &path, io::Error::from(e))),
            }
        }
    }

    /// Lists the IP files; also removes stray temp files (see the module docs).
    fn list(&self) -> Result<Vec<Entry>, CniError> {
        let read_dir = fs::read_dir(&self.dir).map_err(|e| io_error("list", &self.dir, e))?;
        let mut entries = Vec::new();
        for item in read_dir {
            let item = item.map_err(|e| io_error("list", &self.dir, e))?;
            let file_name = item.file_name();
            let Some(name) = file_name.to_str() else { continue };
            if name.starts_with(TMP_PREFIX) {
                self.remove_stray(name);
                continue;
            }
            let Some(ip) = ip_of_name(name) else { continue };
            if !item.file_type().is_ok_and(|t| t.is_file()) {
                continue;
            }
            entries.extend(self.read_entry(ip, name));
        }
        entries.sort_by_key(|e| e.ip);
        Ok(entries)
    }

    fn reserve(&self, ip: IpAddr, owner: &Attachment) -> Result<bool, CniError> {
        let content = format!("{}{LINE_BREAK}{}", owner.container_id.trim(), owner.ifname);
        let temp = self.write_temp(content.as_bytes(), true)?;
        let target = self.path(&ip.to_string());
        let linked = fs::hard_link(&temp, &target);
        remove_quietly(&temp);
        match linked {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => Ok(false),
            Err(e) => Err(io_error("create the IP file", &target, e)),
        }
    }

    fn release_ip(&self, ip: IpAddr) -> Result<bool, CniError> {
        let path = self.path(&ip.to_string());
        match fs::remove_file(&path) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::NotFound => Ok(false),
            Err(e) => Err(io_error("remove the IP file", &path, e)),
        }
    }

    fn last_reserved(&self, range_set: usize) -> Result<Option<IpAddr>, CniError> {
        let path = self.path(&format!("{LAST_RESERVED_PREFIX}{range_set}"));
        let text = match fs::read_to_string(&path) {
            Ok(text) => text,
            Err(e) if e.kind() == io::ErrorKind::NotFound => return Ok(None),
            Err(e) => return Err(io_error("read", &path, e)),
        };
        match text.trim().parse::<IpAddr>() {
            Ok(ip) => Ok(Some(ip.to_canonical())),
            Err(_) => {
                tracing::warn!(file = %path.display(), "ignoring an unparsable last-reserved IP; round-robin restarts at the range start");
                Ok(None)
            }
        }
    }

    /// Atomic (temp file and rename) but not fsynced: losing it only costs round-robin order.
    fn set_last_reserved(&self, range_set: usize, ip: IpAddr) -> Result<(), CniError> {
        let path = self.path(&format!("{LAST_RESERVED_PREFIX}{range_set}"));
        let temp = self.write_temp(ip.to_string().as_bytes(), false)?;
        fs::rename(&temp, &path).map_err(|e| {
            remove_quietly(&temp);
            io_error("write", &path, e)
        })
    }

    fn flush(&self) -> Result<(), CniError> {
        File::open(&self.dir).and_then(|d| d.sync_all()).map_err(|e| io_error("fsync", &self.dir, e))
    }

    fn check_writable(&self) -> Result<(), CniError> {
        let temp = self.write_temp(b"probe", false)?;
        fs::remove_file(&temp).map_err(|e| io_error("remove the probe file", &temp, e))
    }
}

/// The IP a file name stands for, if it is one in canonical text form.
fn ip_of_name(name: &str) -> Option<IpAddr> {
    let ip = name.parse::<IpAddr>().ok()?;
    (ip.to_string() == name).then_some(ip)
}

fn remove_quietly(path: &Path) {
    if let Err(e) = fs::remove_file(path) {
        if e.kind() != io::ErrorKind::NotFound {
            tracing::warn!(file = %path.display(), error = %e, "cannot remove an IPAM temp file; the next operation retries");
        }
    }
}

fn io_error(what: &str, path: &Path, e: io::Error) -> CniError {
    CniError::io(format!(
        "IPAM store: cannot {what} {}: {e}; check that the IPAM data directory is on a writable local filesystem",
        path.display()
    ))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;
    use minik_shared::cni::codes;

    fn owner(id: &str, ifname: &str) -> Attachment {
        Attachment { container_id: id.into(), ifname: ifname.into() }
    }

    fn ip(s: &str) -> IpAddr {
        s.parse().unwrap()
    }

    fn store() -> (tempfile::TempDir, DiskStore) {
        let tmp = tempfile::tempdir().unwrap();
        let s = DiskStore::open(tmp.path().join("net")).unwrap();
        (tmp, s)
    }

    #[test]
    fn ip_files_are_in_host_local_format() {
        let (_tmp, s) = store();
        let _g = s.lock().unwrap();
        assert!(s.reserve(ip("10.1.0.5"), &owner("abc", "eth0")).unwrap());
        assert!(s.reserve(ip("fd00::5"), &owner("abc", "eth0")).unwrap());
        assert!(!s.reserve(ip("10.1.0.5"), &owner("other", "eth0")).unwrap());
        assert_eq!(fs::read(s.dir().join("10.1.0.5")).unwrap(), b"abc\r\neth0");
        assert_eq!(fs::read(s.dir().join("fd00::5")).unwrap(), b"abc\r\neth0");
        s.set_last_reserved(0, ip("10.1.0.5")).unwrap();
        assert_eq!(fs::read_to_string(s.dir().join("last_reserved_ip.0")).unwrap(), "10.1.0.5");
        assert_eq!(s.last_reserved(0).unwrap(), Some(ip("10.1.0.5")));
        assert_eq!(s.last_reserved(1).unwrap(), None);
        let mut names: Vec<String> =
            fs::read_dir(s.dir()).unwrap().map(|e| e.unwrap().file_name().into_string().unwrap()).collect();
        names.sort();
        assert_eq!(names, ["10.1.0.5", "fd00::5", "last_reserved_ip.0", "lock"]);
    }

    #[test]
    fn list_lookup_release_and_legacy_files() {
        let (_tmp, s) = store();
        let _g = s.lock().unwrap();
        s.reserve(ip("10.1.0.7"), &owner("a", "eth0")).unwrap();
        s.reserve(ip("10.1.0.6"), &owner("a", "eth1")).unwrap();
        fs::write(s.dir().join("10.1.0.9"), "old\n").unwrap();
        fs::write(s.dir().join("10.1.0.10"), "").unwrap();
        fs::write(s.dir().join("not-an-ip"), "a\r\neth0").unwrap();
        let holders: Vec<(IpAddr, Holder)> = s.list().unwrap().into_iter().map(|e| (e.ip, e.holder)).collect();
        assert_eq!(
            holders,
            [
                (ip("10.1.0.6"), Holder::Attachment(owner("a", "eth1"))),
                (ip("10.1.0.7"), Holder::Attachment(owner("a", "eth0"))),
                (ip("10.1.0.9"), Holder::Legacy("old".into())),
                (ip("10.1.0.10"), Holder::Unknown),
            ]
        );
        assert_eq!(s.lookup(&owner("a", "eth0")).unwrap(), [ip("10.1.0.7")]);
        assert_eq!(s.lookup(&owner("old", "eth3")).unwrap(), [ip("10.1.0.9")]);
        assert_eq!(s.release(&owner("a", "eth1")).unwrap(), [ip("10.1.0.6")]);
        assert_eq!(s.release(&owner("a", "eth1")).unwrap(), Vec::<IpAddr>::new());
        assert!(!s.release_ip(ip("10.1.0.6")).unwrap());
        s.flush().unwrap();
    }

    #[test]
    fn stray_temp_files_are_ignored_and_cleaned() {
        let (_tmp, s) = store();
        let stray = s.dir().join(format!("{TMP_PREFIX}99999.0"));
        fs::write(&stray, "half").unwrap();
        let _g = s.lock().unwrap();
        assert_eq!(s.list().unwrap(), Vec::new());
        assert!(!stray.exists());
    }

    #[test]
    fn holder_parsing() {
        assert_eq!(Holder::parse(b"c1\r\neth0\r\n"), Holder::Attachment(owner("c1", "eth0")));
        assert_eq!(Holder::parse(b"c1"), Holder::Legacy("c1".into()));
        assert_eq!(Holder::parse(b"  "), Holder::Unknown);
        assert_eq!(Holder::parse(b"c1\r\n"), Holder::Legacy("c1".into()));
        assert_eq!(Holder::parse(b"a b"), Holder::Unknown);
        assert_eq!(Holder::parse(&[0xff, 0xfe]), Holder::Unknown);
    }

    #[test]
    fn lock_wait_is_bounded() {
        let (_tmp, s) = store();
        let other = DiskStore::open(s.dir()).unwrap().with_lock_timeout(Duration::from_millis(100));
        let held = s.lock().unwrap();
        let start = Instant::now();
        let e = other.lock().err().map(|e| e.code);
        assert_eq!(e, Some(codes::TRY_AGAIN));
        assert!(start.elapsed() >= Duration::from_millis(100));
        drop(held);
        assert!(other.lock().is_ok());
    }

    #[test]
    fn open_under_a_regular_file_fails_naming_the_path() {
        let tmp = tempfile::tempdir().unwrap();
        fs::write(tmp.path().join("file"), "x").unwrap();
        let e = DiskStore::open(tmp.path().join("file/net")).err().unwrap();
        assert_eq!(e.code, codes::IO_FAILURE);
        assert!(e.msg.contains("file/net"), "{}", e.msg);
    }
}
