//! Root tests on the real host: limits, stats, OOM kills, a bounded fork bomb, kill and
//! destroy, through [`minik_cgroups::open`] (v1 on v1/hybrid hosts, v2 on v2 hosts), and
//! the v2 backend on a hybrid host's controller-less unified mount.
//!
//! Every cgroup is created under a unique *relative* path (below the test process's own
//! cgroups, never at a hierarchy root) and removed by a drop guard, together with every
//! child process, even when an assertion fails. Without root the tests print a note and
//! pass. The full v2 path (controllers enabled, limits on cgroup2) runs on the VM nodes;
//! there the test process must not itself sit in the cgroup it creates children of
//! (v2's "no internal processes" rule).

use std::io::Write;
use std::os::unix::process::ExitStatusExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use minik_cgroups::{CgroupManager, Layout, Resources};

const MIB: i64 = 1 << 20;
const SIGKILL: i32 = 9;
/// Set in the re-executed test binary that plays the memory hog.
const HOG_ENV: &str = "MINIK_CGROUPS_TEST_HOG";

/// Cleans up, even on panic: kills the children by PID, then SIGKILLs whatever is left
/// in the cgroups it owns and removes them, last opened first.
#[derive(Default)]
struct Guard {
    children: Vec<Child>,
    cgroups: Vec<Arc<dyn CgroupManager>>,
}

type Opener = fn(&str) -> Result<Box<dyn CgroupManager>, minik_cgroups::CgroupError>;

impl Guard {
    /// Opens and creates `path` with `opener`; it and its top-most component (created
    /// along with it) are destroyed on drop.
    fn cgroup(&mut self, opener: Opener, path: &str) -> Arc<dyn CgroupManager> {
        if let Some((top, _)) = path.split_once('/') {
            self.cgroups
                .push(Arc::from(opener(top).expect("open top cgroup")));
        }
        let cg: Arc<dyn CgroupManager> = Arc::from(opener(path).expect("open cgroup"));
        self.cgroups.push(cg.clone());
        cg.create().expect("create cgroup");
        cg
    }

    /// Spawns a child, kept for killing on drop; returns its PID.
    fn spawn(&mut self, cmd: &mut Command) -> i32 {
        let child = cmd.spawn().expect("spawn child");
        let pid = child.id() as i32;
        self.children.push(child);
        pid
    }

    fn child(&mut self, pid: i32) -> &mut Child {
        self.children
            .iter_mut()
            .find(|c| c.id() as i32 == pid)
            .expect("our child")
    }
}

impl Drop for Guard {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        for cg in self.cgroups.iter().rev() {
            if let Err(e) = cg.kill_all(SIGKILL) {
                eprintln!("cleanup: kill_all {:?}: {e}", cg.paths());
            }
            if let Err(e) = cg.destroy() {
                eprintln!("cleanup: destroy {:?}: {e}", cg.paths());
            }
        }
    }
}

fn is_root() -> bool {
    if nix::unistd::geteuid().is_root() {
        return true;
    }
    eprintln!("skipped: the cgroup host tests need root");
    false
}

/// A unique relative cgroup path for this test run.
fn unique(tag: &str) -> String {
    format!("minik-cgtest-{}-{tag}", std::process::id())
}

fn sleeper(secs: u32) -> Command {
    let mut cmd = Command::new("sleep");
    cmd.arg(secs.to_string());
    cmd
}

/// `sh -c script` that waits for a line on stdin before running `script` (so it can be
/// moved into the cgroup first).
fn gated_sh(script: &str) -> Command {
    let mut cmd = Command::new("sh");
    cmd.arg("-c")
        .arg(format!("read go; {script}"))
        .stdin(Stdio::piped());
    cmd
}

fn release(guard: &mut Guard, pid: i32) {
    let stdin = guard.child(pid).stdin.as_mut().expect("piped stdin");
    stdin.write_all(b"go\n").expect("release child");
    stdin.flush().expect("flush");
}

fn wait_timeout(child: &mut Child, timeout: Duration) -> Option<ExitStatus> {
    let deadline = Instant::now() + timeout;
    while Instant::now() < deadline {
        if let Some(status) = child.try_wait().expect("try_wait") {
            return Some(status);
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    None
}

/// The directory of the hierarchy whose name contains `controller` (v1), or the only one.
fn dir_of(cg: &dyn CgroupManager, controller: &str) -> PathBuf {
    let paths = cg.paths();
    if paths.len() == 1 {
        return paths[0].clone();
    }
    paths
        .iter()
        .find(|p| {
            p.iter()
                .any(|c| c.to_string_lossy().split(',').any(|n| n == controller))
        })
        .unwrap_or_else(|| panic!("no {controller} hierarchy in {paths:?}"))
        .clone()
}

fn read(path: &Path) -> String {
    std::fs::read_to_string(path)
        .unwrap_or_else(|e| panic!("read {}: {e}", path.display()))
        .trim()
        .to_string()
}

fn is_v2() -> bool {
    minik_cgroups::layout() == Layout::V2
}

/// The memory-limit and pids-limit files for the layout `open` uses.
fn limit_files(cg: &dyn CgroupManager) -> (PathBuf, PathBuf) {
    if is_v2() {
        (
            dir_of(cg, "memory").join("memory.max"),
            dir_of(cg, "pids").join("pids.max"),
        )
    } else {
        (
            dir_of(cg, "memory").join("memory.limit_in_bytes"),
            dir_of(cg, "pids").join("pids.max"),
        )
    }
}

/// The memory hog, run as a re-executed copy of this test binary: waits for a line on
/// stdin, then touches 1 MiB after another up to 512 MiB. Does nothing in a normal run.
#[test]
fn memory_hog_helper() {
    if std::env::var_os(HOG_ENV).is_none() {
        return;
    }
    let mut line = String::new();
    std::io::stdin().read_line(&mut line).expect("wait for go");
    let mut hoard: Vec<Vec<u8>> = Vec::new();
    for _ in 0..512 {
        hoard.push(vec![1u8; MIB as usize]);
    }
    println!("survived with {} MiB", hoard.len());
    std::process::exit(3);
}

fn memory_hog() -> Command {
    let mut cmd = Command::new(std::env::current_exe().expect("test binary"));
    cmd.args([
        "--exact",
        "memory_hog_helper",
        "--nocapture",
        "--test-threads=1",
    ])
    .env(HOG_ENV, "1")
    .stdin(Stdio::piped())
    .stdout(Stdio::null());
    cmd
}

#[test]
fn layout_is_detected() {
    let layout = minik_cgroups::layout();
    let unified = Path::new("/sys/fs/cgroup/unified/cgroup.controllers").exists();
    let v2_root = Path::new("/sys/fs/cgroup/cgroup.controllers").exists();
    eprintln!("layout: {layout:?}");
    match layout {
        Layout::V2 => assert!(v2_root),
        Layout::Hybrid => assert!(unified && !v2_root),
        Layout::V1 => assert!(!unified && !v2_root),
    }
}

#[test]
fn limits_stats_kill_and_destroy() {
    if !is_root() {
        return;
    }
    let mut guard = Guard::default();
    let cg = guard.cgroup(minik_cgroups::open, &format!("{}/c1", unique("limits")));
    let paths = cg.paths();
    eprintln!("cgroup dirs: {paths:?}");
    for dir in &paths {
        assert!(dir.is_dir(), "{}", dir.display());
    }
    let sleep_pid = guard.spawn(&mut sleeper(30));
    cg.add_task(sleep_pid).expect("add_task");
    assert!(cg.pids().expect("pids").contains(&sleep_pid));

    let memsw = dir_of(&*cg, "memory").join("memory.memsw.limit_in_bytes");
    eprintln!("memory.memsw.limit_in_bytes exists: {}", memsw.exists());
    let resources = Resources {
        cpu_shares: Some(512),
        cpu_quota: Some(50_000),
        cpu_period: Some(100_000),
        memory_limit: Some(32 * MIB),
        memory_swap: Some(32 * MIB),
        pids_limit: Some(10),
    };
    cg.apply(&resources).expect("apply");
    let (memory_file, pids_file) = limit_files(&*cg);
    assert_eq!(read(&memory_file), (32 * MIB).to_string());
    assert_eq!(read(&pids_file), "10");
    if !is_v2() {
        let cpu = dir_of(&*cg, "cpu");
        assert_eq!(read(&cpu.join("cpu.shares")), "512");
        assert_eq!(read(&cpu.join("cpu.cfs_quota_us")), "50000");
        assert_eq!(read(&cpu.join("cpu.cfs_period_us")), "100000");
        if memsw.exists() {
            assert_eq!(read(&memsw), (32 * MIB).to_string());
        }
        let oom_control = read(&dir_of(&*cg, "memory").join("memory.oom_control"));
        eprintln!("memory.oom_control: {oom_control:?}");
    }

    let stats = cg.stats().expect("stats");
    eprintln!("stats: {stats:?}");
    assert_eq!(stats.pids_current, 1);
    assert!(stats.memory_usage <= (32 * MIB) as u64);
    assert!(stats.memory_max_usage.is_some());
    assert_eq!(stats.oom_kills, 0);

    cg.kill_all(SIGKILL).expect("kill_all");
    let status = wait_timeout(guard.child(sleep_pid), Duration::from_secs(5)).expect("sleep died");
    assert_eq!(status.signal(), Some(SIGKILL));
    assert!(cg.pids().expect("pids").is_empty());
    cg.destroy().expect("destroy");
    for dir in &paths {
        assert!(!dir.exists(), "{} still there", dir.display());
        assert!(
            dir.parent().is_some_and(Path::is_dir),
            "parent of {} removed",
            dir.display()
        );
    }
}

#[test]
fn oom_kill_is_counted() {
    if !is_root() {
        return;
    }
    let mut guard = Guard::default();
    let cg = guard.cgroup(minik_cgroups::open, &unique("oom"));
    let hog = guard.spawn(&mut memory_hog());
    cg.apply(&Resources {
        memory_limit: Some(32 * MIB),
        memory_swap: Some(32 * MIB),
        ..Default::default()
    })
    .expect("apply");
    cg.add_task(hog).expect("add_task");
    release(&mut guard, hog);
    let status = wait_timeout(guard.child(hog), Duration::from_secs(30)).expect("hog ended");
    eprintln!("hog: {status:?}");
    assert_eq!(
        status.signal(),
        Some(SIGKILL),
        "the hog was not OOM-killed: {status:?}"
    );
    let stats = cg.stats().expect("stats");
    eprintln!("stats after OOM: {stats:?}");
    assert!(stats.oom_kills >= 1, "{stats:?}");
    assert!(
        stats.memory_max_usage.unwrap_or(0) >= (16 * MIB) as u64,
        "{stats:?}"
    );
}

#[test]
fn pids_max_bounds_a_fork_bomb() {
    if !is_root() {
        return;
    }
    let mut guard = Guard::default();
    let cg = guard.cgroup(minik_cgroups::open, &unique("pids"));
    let bomb = guard.spawn(&mut gated_sh(
        "i=0; while [ $i -lt 20 ]; do sleep 5 & i=$((i+1)); done; wait",
    ));
    cg.apply(&Resources {
        pids_limit: Some(10),
        ..Default::default()
    })
    .expect("apply");
    cg.add_task(bomb).expect("add_task");
    release(&mut guard, bomb);
    let mut most = 0;
    let until = Instant::now() + Duration::from_millis(1500);
    while Instant::now() < until {
        let current = cg.stats().expect("stats").pids_current;
        most = most.max(current);
        assert!(current <= 10, "pids.current {current} > pids.max 10");
        assert!(cg.pids().expect("pids").len() <= 10);
        std::thread::sleep(Duration::from_millis(50));
    }
    eprintln!("most tasks seen: {most}");
    assert!(most >= 2, "the bomb did not run (saw {most} tasks)");
    let events = dir_of(&*cg, "pids").join("pids.events");
    if events.exists() {
        eprintln!("pids.events: {:?}", read(&events));
    }
    cg.kill_all(SIGKILL).expect("kill_all");
    wait_timeout(guard.child(bomb), Duration::from_secs(5)).expect("bomb ended");
    cg.destroy().expect("destroy");
    assert!(cg.paths().iter().all(|p| !p.exists()));
}

#[test]
fn unified_hierarchy_without_controllers() {
    if !is_root() {
        return;
    }
    let mut guard = Guard::default();
    let cg = guard.cgroup(
        minik_cgroups::open_unified,
        &format!("{}/c1", unique("unified")),
    );
    let pid = guard.spawn(&mut sleeper(30));
    let dir = cg.paths()[0].clone();
    eprintln!("unified dir: {}", dir.display());
    cg.add_task(pid).expect("add_task");
    assert_eq!(read(&dir.join("cgroup.procs")), pid.to_string());
    assert_eq!(cg.pids().expect("pids"), vec![pid]);
    let stats = cg.stats().expect("stats");
    eprintln!("unified stats: {stats:?}");
    eprintln!("cgroup.kill exists: {}", dir.join("cgroup.kill").exists());
    cg.kill_all(SIGKILL).expect("kill_all");
    let status = wait_timeout(guard.child(pid), Duration::from_secs(5)).expect("sleep died");
    assert_eq!(status.signal(), Some(SIGKILL));
    cg.destroy().expect("destroy");
    assert!(!dir.exists());
    let parent = dir.parent().expect("parent").to_path_buf();
    drop(guard);
    assert!(!parent.exists(), "guard left {}", parent.display());
}
