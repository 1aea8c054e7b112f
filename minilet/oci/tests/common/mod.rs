//! Helpers for the root integration tests: a busybox bundle in a temp dir, the CLI
//! binary run with a private `--root`, and cleanup of every container created.
//!
//! The containers always get a new network namespace, so nothing touches the host's
//! network; running under `scripts/sandbox.sh` is fine but not needed.

#![allow(clippy::unwrap_used)]
#![allow(dead_code)]

use std::path::{Path, PathBuf};
use std::process::{Command, Output, Stdio};
use std::time::{Duration, Instant};

use serde_json::{json, Value};

/// Whether the tests can run (root); prints why not otherwise.
pub fn can_run() -> bool {
    // SAFETY: geteuid has no preconditions.
    if unsafe { libc::geteuid() } != 0 {
        eprintln!("skipped: the minik-oci integration tests need root (namespaces, mounts)");
        return false;
    }
    true
}

/// runc's default capability set, as podman and containerd write it.
pub const RUNC_CAPS: &[&str] = &[
    "CAP_CHOWN",
    "CAP_DAC_OVERRIDE",
    "CAP_FSETID",
    "CAP_FOWNER",
    "CAP_MKNOD",
    "CAP_NET_RAW",
    "CAP_SETGID",
    "CAP_SETUID",
    "CAP_SETFCAP",
    "CAP_SETPCAP",
    "CAP_NET_BIND_SERVICE",
    "CAP_SYS_CHROOT",
    "CAP_KILL",
    "CAP_AUDIT_WRITE",
];

/// Copies busybox (and, if it is dynamic, its libraries) into `rootfs`.
pub fn install_busybox(rootfs: &Path) {
    let bb = Path::new("/bin/busybox");
    assert!(
        bb.exists(),
        "/bin/busybox is missing: install it with `apt-get install -y busybox-static` \
         (scripts/deps.sh does)"
    );
    let copy = |src: &Path| {
        let dest = rootfs.join(src.strip_prefix("/").unwrap());
        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
        std::fs::copy(src, &dest).unwrap_or_else(|e| panic!("copy {}: {e}", src.display()));
    };
    copy(bb);
    // A dynamic busybox (Debian's `busybox`, not `busybox-static`) needs its libraries.
    if let Ok(out) = Command::new("ldd").arg(bb).output() {
        let text = String::from_utf8_lossy(&out.stdout);
        for word in text.split_whitespace() {
            if word.starts_with('/') && Path::new(word).exists() {
                copy(Path::new(&std::fs::canonicalize(word).unwrap()));
                let canon = std::fs::canonicalize(word).unwrap();
                if canon != Path::new(word) {
                    let dest = rootfs.join(word.trim_start_matches('/'));
                    if !dest.exists() {
                        std::fs::create_dir_all(dest.parent().unwrap()).unwrap();
                        std::os::unix::fs::symlink(&canon, &dest).unwrap();
                    }
                }
            }
        }
    }
    for app in [
        "sh", "cat", "ls", "id", "grep", "sleep", "hostname", "echo", "true", "wc", "test",
        "mkdir", "touch", "tr",
    ] {
        std::os::unix::fs::symlink("busybox", rootfs.join("bin").join(app)).unwrap();
    }
    for dir in ["proc", "sys", "dev", "tmp", "etc"] {
        std::fs::create_dir_all(rootfs.join(dir)).unwrap();
    }
}

/// A config.json like podman's: runc's default caps, the usual mounts and masks,
/// new mount/pid/uts/ipc/network namespaces.
pub fn config(args: &[&str]) -> Value {
    json!({
        "ociVersion": "1.0.2",
        "root": { "path": "rootfs", "readonly": false },
        "hostname": "minik-test",
        "process": {
            "terminal": false,
            "user": { "uid": 0, "gid": 0 },
            "args": args,
            "env": ["PATH=/bin:/usr/bin", "TERM=xterm"],
            "cwd": "/",
            "noNewPrivileges": true,
            "capabilities": {
                "bounding": RUNC_CAPS, "effective": RUNC_CAPS, "permitted": RUNC_CAPS
            },
            "rlimits": [{ "type": "RLIMIT_NOFILE", "hard": 1024, "soft": 1024 }]
        },
        "mounts": [
            { "destination": "/proc", "type": "proc", "source": "proc" },
            { "destination": "/dev", "type": "tmpfs", "source": "tmpfs",
              "options": ["nosuid", "strictatime", "mode=755", "size=65536k"] },
            { "destination": "/dev/pts", "type": "devpts", "source": "devpts",
              "options": ["nosuid", "noexec", "newinstance", "ptmxmode=0666", "mode=0620", "gid=5"] },
            { "destination": "/dev/shm", "type": "tmpfs", "source": "shm",
              "options": ["nosuid", "noexec", "nodev", "mode=1777", "size=65536k"] },
            { "destination": "/dev/mqueue", "type": "mqueue", "source": "mqueue",
              "options": ["nosuid", "noexec", "nodev"] },
            { "destination": "/sys", "type": "sysfs", "source": "sysfs",
              "options": ["nosuid", "noexec", "nodev", "ro"] },
            { "destination": "/tmp", "type": "tmpfs", "source": "tmpfs", "options": ["nosuid", "nodev"] }
        ],
        "linux": {
            "namespaces": [
                { "type": "pid" }, { "type": "network" }, { "type": "ipc" },
                { "type": "uts" }, { "type": "mount" }
            ],
            "maskedPaths": [
                "/proc/acpi", "/proc/asound", "/proc/kcore", "/proc/keys", "/proc/latency_stats",
                "/proc/timer_list", "/proc/timer_stats", "/proc/sched_debug", "/sys/firmware", "/proc/scsi"
            ],
            "readonlyPaths": ["/proc/bus", "/proc/fs", "/proc/irq", "/proc/sys", "/proc/sysrq-trigger"]
        }
    })
}

/// A bundle (temp dir with rootfs/ and config.json) plus a private state root, and
/// the ids created through it (deleted with --force on drop).
pub struct Bundle {
    pub dir: tempfile::TempDir,
    pub root: tempfile::TempDir,
    ids: std::cell::RefCell<Vec<String>>,
}

impl Bundle {
    /// A bundle running `args`.
    pub fn new(args: &[&str]) -> Bundle {
        Self::with_config(config(args))
    }

    /// A bundle with this config.json.
    pub fn with_config(config: Value) -> Bundle {
        let dir = tempfile::tempdir().unwrap();
        install_busybox(&dir.path().join("rootfs"));
        let b = Bundle {
            dir,
            root: tempfile::tempdir().unwrap(),
            ids: Default::default(),
        };
        b.write_config(&config);
        b
    }

    /// Replaces config.json.
    pub fn write_config(&self, config: &Value) {
        std::fs::write(
            self.path().join("config.json"),
            serde_json::to_vec_pretty(config).unwrap(),
        )
        .unwrap();
    }

    /// The bundle directory.
    pub fn path(&self) -> &Path {
        self.dir.path()
    }

    /// A unique container id for this test process.
    pub fn id(&self, name: &str) -> String {
        let id = format!("{name}-{}", std::process::id());
        self.ids.borrow_mut().push(id.clone());
        id
    }

    /// Runs the CLI with `--root` set (30 s limit).
    pub fn cli(&self, args: &[&str]) -> Output {
        let mut full: Vec<String> = vec!["--root".into(), self.root.path().display().to_string()];
        full.extend(args.iter().map(|s| s.to_string()));
        run_with_timeout(
            Command::new(env!("CARGO_BIN_EXE_minik-oci")).args(&full),
            Duration::from_secs(30),
        )
    }

    /// Runs the CLI and asserts success.
    pub fn ok(&self, args: &[&str]) -> String {
        let out = self.cli(args);
        assert!(
            out.status.success(),
            "minik-oci {args:?} failed: {}\nstdout: {}",
            String::from_utf8_lossy(&out.stderr),
            String::from_utf8_lossy(&out.stdout)
        );
        String::from_utf8_lossy(&out.stdout).into_owned()
    }

    /// The container's status from `state`.
    pub fn status(&self, id: &str) -> String {
        let v: Value = serde_json::from_str(&self.ok(&["state", id])).unwrap();
        v["status"].as_str().unwrap().to_string()
    }

    /// Waits until the status is `want` (10 s).
    pub fn wait_status(&self, id: &str, want: &str) {
        let start = Instant::now();
        loop {
            let s = self.status(id);
            if s == want {
                return;
            }
            assert!(
                start.elapsed() < Duration::from_secs(10),
                "{id} stayed {s}, wanted {want}"
            );
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// `run` of this bundle: (exit code, stdout, stderr).
    pub fn run(&self, name: &str) -> (i32, String, String) {
        let id = self.id(name);
        let out = self.cli(&["run", "--bundle", &self.path().display().to_string(), &id]);
        (
            out.status.code().unwrap_or(-1),
            String::from_utf8_lossy(&out.stdout).into_owned(),
            String::from_utf8_lossy(&out.stderr).into_owned(),
        )
    }
}

impl Drop for Bundle {
    fn drop(&mut self) {
        for id in self.ids.borrow().iter() {
            let _ = self.cli(&["delete", "--force", id]);
        }
    }
}

/// Runs a command with stdout/stderr captured in files (a container's init may keep
/// them open after the command exits), killing it (by pid) after `limit`.
pub fn run_with_timeout(cmd: &mut Command, limit: Duration) -> Output {
    let out_file = tempfile::tempfile().unwrap();
    let err_file = tempfile::tempfile().unwrap();
    let mut child = cmd
        .stdin(Stdio::null())
        .stdout(out_file.try_clone().unwrap())
        .stderr(err_file.try_clone().unwrap())
        .spawn()
        .unwrap();
    let start = Instant::now();
    let status = loop {
        if let Some(s) = child.try_wait().unwrap() {
            break s;
        }
        if start.elapsed() > limit {
            let _ = child.kill();
            break child.wait().unwrap();
        }
        std::thread::sleep(Duration::from_millis(2));
    };
    let read = |mut f: std::fs::File| {
        use std::io::{Read, Seek};
        let mut v = Vec::new();
        f.rewind().unwrap();
        f.read_to_end(&mut v).unwrap();
        v
    };
    Output {
        status,
        stdout: read(out_file),
        stderr: read(err_file),
    }
}

/// A path on the host outside any rootfs, removed on drop.
pub struct HostFile(pub PathBuf);

impl HostFile {
    pub fn new(name: &str) -> HostFile {
        let p = std::env::temp_dir().join(format!("{name}-{}", std::process::id()));
        std::fs::write(&p, "host secret").unwrap();
        HostFile(p)
    }
}

impl Drop for HostFile {
    fn drop(&mut self) {
        let _ = std::fs::remove_file(&self.0);
    }
}
