//! Boot progress, from the keeper to `minik up`: the keeper appends one JSON line per
//! event to `<state-dir>/progress.jsonl`; `up` follows the file and prints
//! `[1/8] sandbox ... ok (0.1s)`. A file (not a pipe) because the keeper outlives `up`.

use std::io::{BufRead, BufReader, Seek, SeekFrom, Write};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use anyhow::Context;
use serde::{Deserialize, Serialize};

/// One line of progress.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(tag = "event", rename_all = "lowercase")]
pub enum Event {
    /// A step starts.
    Step {
        /// 1-based.
        index: usize,
        /// How many steps.
        of: usize,
        /// What it does.
        title: String,
    },
    /// The step finished.
    Ok {
        /// How long it took.
        secs: f64,
        /// Something worth saying, e.g. which addresses.
        note: String,
    },
    /// The step finished, but something in it is not working.
    Warn {
        /// How long it took.
        secs: f64,
        /// What is not working.
        note: String,
    },
    /// The boot failed; the keeper is stopping.
    Fail {
        /// Why.
        message: String,
    },
    /// The cluster is up.
    Ready,
}

/// The keeper's side: appends events.
pub struct Reporter {
    file: std::fs::File,
    steps: usize,
    current: usize,
    started: Instant,
}

impl Reporter {
    /// Creates (truncates) the progress file.
    pub fn create(path: &Path, steps: usize) -> anyhow::Result<Self> {
        let file = std::fs::File::create(path).with_context(|| format!("cannot create {}", path.display()))?;
        Ok(Reporter { file, steps, current: 0, started: Instant::now() })
    }

    fn emit(&mut self, ev: &Event) {
        match serde_json::to_string(ev) {
            Ok(line) => {
                if let Err(e) = writeln!(self.file, "{line}").and_then(|_| self.file.flush()) {
                    tracing::warn!(error = %e, "cannot write progress");
                }
            }
            Err(e) => tracing::warn!(error = %e, "cannot encode progress"),
        }
    }

    /// Starts the next step.
    pub fn step(&mut self, title: &str) {
        self.current += 1;
        self.started = Instant::now();
        tracing::info!(step = self.current, of = self.steps, "{title}");
        let ev = Event::Step { index: self.current, of: self.steps, title: title.to_string() };
        self.emit(&ev);
    }

    /// The current step worked.
    pub fn ok(&mut self, note: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        tracing::info!(secs, "ok {note}");
        self.emit(&Event::Ok { secs, note: note.to_string() });
    }

    /// The current step finished with something not working.
    pub fn warn(&mut self, note: &str) {
        let secs = self.started.elapsed().as_secs_f64();
        tracing::warn!(secs, "{note}");
        self.emit(&Event::Warn { secs, note: note.to_string() });
    }

    /// The boot failed.
    pub fn fail(&mut self, message: &str) {
        tracing::error!("boot failed: {message}");
        self.emit(&Event::Fail { message: message.to_string() });
    }

    /// The cluster is up.
    pub fn ready(&mut self) {
        self.emit(&Event::Ready);
    }
}

/// `up`'s side: reads new events as they are appended.
pub struct Follower {
    path: PathBuf,
    offset: u64,
    partial: String,
}

impl Follower {
    /// Follows `path` from its start.
    pub fn new(path: &Path) -> Self {
        Follower { path: path.to_path_buf(), offset: 0, partial: String::new() }
    }

    /// The events appended since the last call (none when the file does not exist yet).
    pub fn poll(&mut self) -> Vec<Event> {
        let Ok(mut f) = std::fs::File::open(&self.path) else { return Vec::new() };
        if f.seek(SeekFrom::Start(self.offset)).is_err() {
            return Vec::new();
        }
        let mut reader = BufReader::new(f);
        let mut out = Vec::new();
        loop {
            let mut line = String::new();
            match reader.read_line(&mut line) {
                Ok(0) | Err(_) => break,
                Ok(n) => {
                    self.offset += n as u64;
                    self.partial.push_str(&line);
                    if !self.partial.ends_with('\n') {
                        break;
                    }
                    let whole = std::mem::take(&mut self.partial);
                    if let Ok(ev) = serde_json::from_str(whole.trim()) {
                        out.push(ev);
                    }
                }
            }
        }
        out
    }
}

/// How `up` prints an event; `None` for events it prints otherwise.
pub fn render(ev: &Event) -> Option<String> {
    match ev {
        Event::Step { index, of, title } => Some(format!("[{index}/{of}] {title} ... ")),
        Event::Ok { secs, note } if note.is_empty() => Some(format!("ok ({})\n", secs_str(*secs))),
        Event::Ok { secs, note } => Some(format!("ok ({}) {note}\n", secs_str(*secs))),
        Event::Warn { secs, note } => Some(format!("NOT READY ({}): {note}\n", secs_str(*secs))),
        Event::Fail { message } => Some(format!("FAILED\nerror: {message}\n")),
        Event::Ready => None,
    }
}

fn secs_str(s: f64) -> String {
    format!("{:.1}s", Duration::from_secs_f64(s.max(0.0)).as_secs_f64())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_follower_sees_what_the_reporter_wrote_in_order() {
        let dir = tempfile_dir();
        let path = dir.join("p.jsonl");
        let mut r = Reporter::create(&path, 2).expect("create");
        let mut f = Follower::new(&path);
        r.step("sandbox");
        let evs = f.poll();
        assert_eq!(evs.len(), 1);
        assert_eq!(render(&evs[0]).as_deref(), Some("[1/2] sandbox ... "));
        r.ok("");
        r.step("network");
        r.warn("minikproxy is not built yet");
        r.ready();
        let evs = f.poll();
        assert_eq!(evs.len(), 4);
        assert!(matches!(evs[0], Event::Ok { .. }));
        assert!(render(&evs[2]).unwrap_or_default().starts_with("NOT READY"));
        assert_eq!(evs[3], Event::Ready);
        assert!(f.poll().is_empty());
        let _ = std::fs::remove_dir_all(&dir);
    }

    fn tempfile_dir() -> PathBuf {
        let d = std::env::temp_dir().join(format!("minik-progress-{}", std::process::id()));
        std::fs::create_dir_all(&d).expect("mkdir");
        d
    }
}
