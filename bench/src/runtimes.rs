//! The OCI runtime benchmark: `true` in a fresh container, create → start → wait → delete,
//! with minik-oci, Debian's crun and Debian's runc on the same bundle.
//!
//! The bundle is built once, in a temp dir: the rootfs of the busybox OCI image
//! (`target/images/rootfs/busybox` copied when present, else the layout
//! `target/images/oci/busybox` unpacked with `umoci raw unpack`) and the config of
//! `runc spec` (Debian's runc: the stock starter config every runtime understands), with
//! `args: ["/bin/true"]`, no terminal, and a new network namespace (so nothing touches a
//! real network). Only `linux.cgroupsPath` changes per container: `minik-bench/<id>`
//! (relative, as minilet gives them), so each container gets a fresh cgroup; the config
//! is rewritten before the clock starts.
//!
//! Two ways to run the same lifecycle, both timed on the wall clock per container:
//! - [`Mode::Run`]: one `RT --root R run --bundle B ID` (create, start, wait for the exit
//!   and delete in one process: what `crun run`/`runc run` do);
//! - [`Mode::Lifecycle`]: the four verbs as a shim drives them: `create --pid-file`,
//!   `start`, waiting for the container's init process (this process is a child
//!   subreaper, so the init becomes its child when `create` exits), `delete`; each verb is
//!   also timed on its own.
//!
//! Fairness: the same bundle, the same root-dir layout (one `--root` per runtime in the
//! same temp dir), the same stdio (a regular file for stdout and stderr, read only when
//! something fails), and the runtimes interleaved container by container (round robin) so
//! that drift in the machine's load (it is shared) hits them alike. A few untimed
//! containers per runtime and mode come first (page cache, binaries, cgroup parents).

use std::fs::File;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitStatus, Stdio};
use std::time::{Duration, Instant};

use anyhow::{anyhow, bail, ensure, Context, Result};
use nix::sys::wait::{waitpid, WaitPidFlag, WaitStatus};
use nix::unistd::Pid;
use serde_json::{json, Value};

use crate::cgroups::{self, Layout};
use crate::stats::Samples;

/// The parent cgroup (relative) of the benchmark's containers.
pub const CGROUP_PARENT: &str = "minik-bench";

/// Debian's runc, whose `spec` writes the starter config.
pub const DEBIAN_RUNC: &str = "/usr/bin/runc";

/// One OCI runtime binary.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Runtime {
    /// Its name in the tables (`minik-oci`, `crun`, `runc`, or what `NAME=PATH` gave).
    pub name: String,
    /// The binary.
    pub path: PathBuf,
}

impl Runtime {
    /// `NAME=PATH`, or one of the known names: `minik-oci` (the one in `MINIK_BIN_DIR`, else
    /// next to this binary), `crun` (/usr/bin/crun), `runc` (/usr/bin/runc).
    pub fn parse(spec: &str) -> Result<Self> {
        if let Some((name, path)) = spec.split_once('=') {
            ensure!(!name.is_empty() && !path.is_empty(), "a runtime is NAME=PATH or a known name, got {spec:?}");
            return Ok(Runtime { name: name.into(), path: path.into() });
        }
        let path = match spec {
            "minik-oci" => minik_tests::bin_dir().join("minik-oci"),
            "crun" => PathBuf::from("/usr/bin/crun"),
            "runc" => PathBuf::from(DEBIAN_RUNC),
            _ => bail!("unknown runtime {spec:?}: use minik-oci, crun, runc or NAME=PATH"),
        };
        Ok(Runtime { name: spec.into(), path })
    }

    /// Whether this is crun (which refuses the hybrid layout).
    pub fn is_crun(&self) -> bool {
        self.path.file_name().is_some_and(|f| f == "crun") || self.name == "crun"
    }

    /// The first line of `--version`.
    pub fn version(&self) -> String {
        Command::new(&self.path)
            .arg("--version")
            .stdin(Stdio::null())
            .output()
            .ok()
            .and_then(|o| String::from_utf8_lossy(&o.stdout).lines().next().map(str::to_string))
            .unwrap_or_else(|| "(no --version)".into())
    }
}

/// How a container's lifecycle is driven.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// One `run` (create + start + wait + delete in the runtime).
    Run,
    /// `create`, `start`, wait, `delete` as four steps.
    Lifecycle,
}

impl Mode {
    /// How the tables name it.
    pub fn label(self) -> &'static str {
        match self {
            Mode::Run => "run",
            Mode::Lifecycle => "create+start+wait+delete",
        }
    }

    fn slug(self) -> &'static str {
        match self {
            Mode::Run => "r",
            Mode::Lifecycle => "l",
        }
    }
}

/// The timings of one runtime in one mode.
#[derive(Debug, Clone)]
pub struct Measured {
    /// The runtime.
    pub runtime: Runtime,
    /// The mode.
    pub mode: Mode,
    /// One sample per container: the whole lifecycle.
    pub total: Samples,
    /// Lifecycle mode only: per verb (create, start, wait, delete).
    pub steps: Option<[Samples; 4]>,
}

/// The names of the lifecycle steps, in order.
pub const STEPS: [&str; 4] = ["create", "start", "wait", "delete"];

/// What one layout's runtime run produced.
#[derive(Debug, Clone)]
pub struct LayoutRun {
    /// The layout.
    pub layout: Layout,
    /// Per runtime and mode that ran.
    pub measured: Vec<Measured>,
    /// Runtimes that refused this layout, with what they said.
    pub refused: Vec<(Runtime, String)>,
    /// Notes (leftovers found and removed, …).
    pub notes: Vec<String>,
    /// /proc/loadavg before and after.
    pub load: (String, String),
}

/// The bundle: rootfs and a config template.
pub struct Bundle {
    /// The bundle directory (holds `rootfs/` and `config.json`).
    pub dir: PathBuf,
    config: Value,
}

impl Bundle {
    /// Builds it under `work`.
    pub fn build(work: &Path) -> Result<Self> {
        let dir = work.join("bundle");
        std::fs::create_dir_all(&dir).context("cannot create the bundle dir")?;
        let rootfs = dir.join("rootfs");
        let root = Path::new(env!("CARGO_MANIFEST_DIR")).parent().map(Path::to_path_buf).unwrap_or_default();
        let prebuilt = root.join("target/images/rootfs/busybox");
        if prebuilt.join("bin/busybox").exists() {
            run_ok(Command::new("cp").arg("-a").arg(&prebuilt).arg(&rootfs), "cp -a the busybox rootfs")?;
        } else {
            let layout = minik_tests::minilet::image_layout("busybox");
            run_ok(
                Command::new("umoci").arg("raw").arg("unpack").arg("--image").arg(format!("{}:latest", layout.display())).arg(&rootfs),
                "umoci raw unpack of the busybox image",
            )?;
        }
        ensure!(rootfs.join("bin/true").exists(), "the busybox rootfs has no /bin/true");
        run_ok(Command::new(DEBIAN_RUNC).arg("spec").arg("--bundle").arg(&dir), "runc spec")?;
        let path = dir.join("config.json");
        let mut config: Value =
            serde_json::from_slice(&std::fs::read(&path).context("cannot read runc spec's config.json")?).context("runc spec's config.json")?;
        config["process"]["args"] = json!(["/bin/true"]);
        config["process"]["terminal"] = json!(false);
        let ns = config["linux"]["namespaces"].as_array_mut().ok_or_else(|| anyhow!("runc spec wrote no linux.namespaces"))?;
        // A new network namespace (no path): the container never sees a real network.
        ns.retain(|n| n["type"] != "network");
        ns.push(json!({"type": "network"}));
        Ok(Bundle { dir, config })
    }

    /// Writes the config for container `id` (its own cgroup).
    fn write_config(&self, id: &str) -> Result<()> {
        let mut c = self.config.clone();
        c["linux"]["cgroupsPath"] = json!(format!("{CGROUP_PARENT}/{id}"));
        std::fs::write(self.dir.join("config.json"), serde_json::to_vec_pretty(&c)?).context("cannot write config.json")
    }
}

fn run_ok(cmd: &mut Command, what: &str) -> Result<()> {
    let out = cmd.stdin(Stdio::null()).output().with_context(|| format!("cannot run {what}"))?;
    ensure!(out.status.success(), "{what} failed: {}{}", String::from_utf8_lossy(&out.stdout), String::from_utf8_lossy(&out.stderr));
    Ok(())
}

/// One runtime's state and output files.
struct Rt<'a> {
    rt: &'a Runtime,
    root: PathBuf,
    log: PathBuf,
    pid_file: PathBuf,
}

impl Rt<'_> {
    fn cmd(&self, args: &[&str]) -> Result<Command> {
        let log = File::create(&self.log).context("cannot create the runtime's log file")?;
        let mut c = Command::new(&self.rt.path);
        c.arg("--root").arg(&self.root).args(args).stdin(Stdio::null()).stdout(log.try_clone()?).stderr(log);
        Ok(c)
    }

    /// Spawns and waits; the clock runs around this.
    fn status(cmd: &mut Command) -> Result<ExitStatus> {
        Ok(cmd.status()?)
    }

    fn failed(&self, what: &str, status: ExitStatus) -> anyhow::Error {
        let out = std::fs::read_to_string(&self.log).unwrap_or_default();
        anyhow!("{} {what} failed ({status}): {}", self.rt.name, out.trim())
    }

    /// Best effort: the container gone whatever state it is in.
    fn force_delete(&self, id: &str) {
        if let Ok(mut c) = self.cmd(&["delete", "--force", id]) {
            let _ = c.status();
        }
    }

    /// One container, timed: the whole, and per step in lifecycle mode.
    fn one(&self, bundle: &Bundle, mode: Mode, id: &str) -> Result<(Duration, Option<[Duration; 4]>)> {
        bundle.write_config(id)?;
        let b = bundle.dir.to_string_lossy().into_owned();
        let r = match mode {
            Mode::Run => {
                let mut c = self.cmd(&["run", "--bundle", &b, id])?;
                let t = Instant::now();
                let st = Self::status(&mut c)?;
                let d = t.elapsed();
                if !st.success() {
                    Err(self.failed(&format!("run {id}"), st))
                } else {
                    Ok((d, None))
                }
            }
            Mode::Lifecycle => self.lifecycle(&b, id),
        };
        if r.is_err() {
            self.force_delete(id);
        }
        reap_strays();
        r
    }

    fn lifecycle(&self, bundle: &str, id: &str) -> Result<(Duration, Option<[Duration; 4]>)> {
        let _ = std::fs::remove_file(&self.pid_file);
        let pid_file = self.pid_file.to_string_lossy().into_owned();
        let mut create = self.cmd(&["create", "--bundle", bundle, "--pid-file", &pid_file, id])?;
        let mut start = self.cmd(&["start", id])?;
        let mut delete = self.cmd(&["delete", id])?;

        let t0 = Instant::now();
        let st = Self::status(&mut create)?;
        let pid = std::fs::read_to_string(&self.pid_file).ok().and_then(|p| p.trim().parse::<i32>().ok());
        let t1 = Instant::now();
        if !st.success() {
            return Err(self.failed(&format!("create {id}"), st));
        }
        let pid = pid.ok_or_else(|| anyhow!("{} create {id} wrote no PID to --pid-file", self.rt.name))?;
        let st = Self::status(&mut start)?;
        let t2 = Instant::now();
        if !st.success() {
            return Err(self.failed(&format!("start {id}"), st));
        }
        let exit = waitpid(Pid::from_raw(pid), None);
        let t3 = Instant::now();
        match exit {
            Ok(WaitStatus::Exited(_, 0)) => {}
            Ok(other) => bail!("{} container {id}: /bin/true ended with {other:?}", self.rt.name),
            Err(e) => bail!("{} container {id}: cannot wait for its init {pid} (is this process its subreaper?): {e}", self.rt.name),
        }
        let st = Self::status(&mut delete)?;
        let t4 = Instant::now();
        if !st.success() {
            return Err(self.failed(&format!("delete {id}"), st));
        }
        Ok((t4 - t0, Some([t1 - t0, t2 - t1, t3 - t2, t4 - t3])))
    }
}

/// Reaps whatever exited and was reparented to this subreaper (runtime helpers); only
/// called when no child of ours is being waited for.
fn reap_strays() {
    while let Ok(st) = waitpid(Pid::from_raw(-1), Some(WaitPidFlag::WNOHANG)) {
        if st == WaitStatus::StillAlive {
            break;
        }
    }
}

fn loadavg() -> String {
    std::fs::read_to_string("/proc/loadavg").map(|s| s.split_whitespace().take(3).collect::<Vec<_>>().join(" ")).unwrap_or_default()
}

/// Runs the benchmark in the current layout: `warmup` untimed then `n` timed containers
/// per runtime and mode, interleaved.
pub fn run(layout: Layout, runtimes: &[Runtime], modes: &[Mode], n: usize, warmup: usize) -> Result<LayoutRun> {
    ensure!((1..=1000).contains(&n), "N must be between 1 and 1000 (got {n})");
    ensure!(warmup <= 100, "at most 100 warm-up containers (got {warmup})");
    nix::sys::prctl::set_child_subreaper(true).context("cannot become a child subreaper")?;
    let r = run_inner(layout, runtimes, modes, n, warmup);
    let _ = nix::sys::prctl::set_child_subreaper(false);
    r
}

fn run_inner(layout: Layout, runtimes: &[Runtime], modes: &[Mode], n: usize, warmup: usize) -> Result<LayoutRun> {
    let work = tempfile::Builder::new().prefix("minik-bench-oci-").tempdir().context("cannot create a temp dir")?;
    let bundle = Bundle::build(work.path())?;
    let mut out = LayoutRun { layout, measured: Vec::new(), refused: Vec::new(), notes: Vec::new(), load: (loadavg(), String::new()) };

    let mut rts = Vec::new();
    for (i, rt) in runtimes.iter().enumerate() {
        let root = work.path().join(format!("root-{i}"));
        std::fs::create_dir_all(&root)?;
        let r = Rt { rt, root, log: work.path().join(format!("log-{i}")), pid_file: work.path().join(format!("pid-{i}")) };
        // Warm-up; the first container also tells whether the runtime accepts the layout.
        let mut ok = true;
        for mode in modes {
            for j in 0..warmup.max(1) {
                let id = format!("bench-{i}{}-w{j}", mode.slug());
                if let Err(e) = r.one(&bundle, *mode, &id) {
                    let msg = format!("{e:#}");
                    if j == 0 && layout == Layout::Hybrid && rt.is_crun() && msg.contains("hybrid") {
                        out.refused.push((rt.clone(), msg));
                        ok = false;
                        break;
                    }
                    return Err(e.context(format!("warm-up of {} ({})", rt.name, mode.label())));
                }
            }
            if !ok {
                break;
            }
        }
        if ok {
            rts.push(r);
        }
    }

    let mut results: Vec<Measured> = rts
        .iter()
        .flat_map(|r| {
            modes.iter().map(|m| Measured {
                runtime: r.rt.clone(),
                mode: *m,
                total: Samples::with_capacity(n),
                steps: (*m == Mode::Lifecycle).then(|| std::array::from_fn(|_| Samples::with_capacity(n))),
            })
        })
        .collect();
    for k in 0..n {
        for (i, r) in rts.iter().enumerate() {
            for (j, mode) in modes.iter().enumerate() {
                let id = format!("bench-{i}{}-{k:04}", mode.slug());
                let (total, steps) = r.one(&bundle, *mode, &id).with_context(|| format!("{} ({})", r.rt.name, mode.label()))?;
                let m = &mut results[i * modes.len() + j];
                m.total.push(total);
                if let (Some(s), Some(d)) = (m.steps.as_mut(), steps) {
                    for (s, d) in s.iter_mut().zip(d) {
                        s.push(d);
                    }
                }
            }
        }
    }
    out.load.1 = loadavg();
    out.measured = results;

    // Nothing left: no container state in the roots, no cgroup but the parents.
    for r in &rts {
        let left: Vec<String> = std::fs::read_dir(&r.root)
            .map(|d| d.flatten().map(|e| e.file_name().to_string_lossy().into_owned()).filter(|n| n.starts_with("bench-")).collect())
            .unwrap_or_default();
        ensure!(left.is_empty(), "{} left container state behind in its root: {left:?}", r.rt.name);
    }
    let removed = cgroups::remove_tree(CGROUP_PARENT)?;
    if !removed.leaked.is_empty() {
        out.notes.push(format!("container cgroups left after delete (removed now): {:?}", removed.leaked));
    }
    ensure!(removed.stuck.is_empty(), "cgroups that cannot be removed (a process still in them?): {:?}", removed.stuck);
    Ok(out)
}
