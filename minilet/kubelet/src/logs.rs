//! Container logs in the CRI log format (what `kubectl logs` reads from a kubelet):
//! one line per write, `TIMESTAMP STREAM TAG MESSAGE`, e.g.
//! `2026-12-04T19:52:16.123456789Z stdout F hello`, where the tag is `F` for a full line
//! and `P` for a partial one (a line longer than the buffer, or cut by the stream ending).
//!
//! The writer rotates: when the file passes `max_size` it is renamed `N.log.1` (older
//! ones shift up to `max_files`) and a new file is started.

use std::fs::{File, OpenOptions};
use std::io::{BufRead, BufReader, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use crate::timefmt::rfc3339_nano;

/// Appends CRI log lines to one container's log file, rotating it.
pub struct CriLogWriter {
    path: PathBuf,
    file: File,
    size: u64,
    max_size: u64,
    max_files: usize,
}

impl CriLogWriter {
    /// Opens (appending) the log at `path`.
    pub fn open(path: &Path, max_size: u64, max_files: usize) -> std::io::Result<Self> {
        if let Some(dir) = path.parent() {
            std::fs::create_dir_all(dir)?;
        }
        let file = OpenOptions::new().create(true).append(true).open(path)?;
        let size = file.metadata().map(|m| m.len()).unwrap_or(0);
        Ok(CriLogWriter { path: path.to_path_buf(), file, size, max_size, max_files: max_files.max(1) })
    }

    /// Writes one line of `stream` ("stdout" or "stderr"); `partial` marks a cut line.
    pub fn write_line(&mut self, stream: &str, line: &[u8], partial: bool) -> std::io::Result<()> {
        let mut rec = Vec::with_capacity(line.len() + 48);
        rec.extend_from_slice(rfc3339_nano(SystemTime::now()).as_bytes());
        rec.push(b' ');
        rec.extend_from_slice(stream.as_bytes());
        rec.extend_from_slice(if partial { b" P " } else { b" F " });
        rec.extend_from_slice(line);
        rec.push(b'\n');
        if self.size > 0 && self.size + rec.len() as u64 > self.max_size {
            self.rotate()?;
        }
        self.file.write_all(&rec)?;
        self.size += rec.len() as u64;
        Ok(())
    }

    fn rotate(&mut self) -> std::io::Result<()> {
        let name = |i: usize| PathBuf::from(format!("{}.{i}", self.path.display()));
        let _ = std::fs::remove_file(name(self.max_files));
        for i in (1..self.max_files).rev() {
            let _ = std::fs::rename(name(i), name(i + 1));
        }
        std::fs::rename(&self.path, name(1))?;
        self.file = OpenOptions::new().create(true).append(true).open(&self.path)?;
        self.size = 0;
        Ok(())
    }
}

/// One parsed log line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LogLine {
    /// The RFC 3339 timestamp.
    pub time: String,
    /// "stdout" or "stderr".
    pub stream: String,
    /// Whether the line was cut.
    pub partial: bool,
    /// The message.
    pub message: String,
}

/// Parses one CRI log line.
pub fn parse_line(line: &str) -> Option<LogLine> {
    let mut it = line.splitn(4, ' ');
    let time = it.next()?.to_string();
    let stream = it.next()?.to_string();
    let tag = it.next()?;
    let message = it.next().unwrap_or("").to_string();
    Some(LogLine { time, stream, partial: tag.starts_with('P'), message })
}

/// Reads a container's log (rotated files first, oldest first), joining partial lines.
pub fn read_all(path: &Path, max_files: usize) -> std::io::Result<Vec<LogLine>> {
    let mut files: Vec<PathBuf> = (1..=max_files).rev().map(|i| PathBuf::from(format!("{}.{i}", path.display()))).collect();
    files.push(path.to_path_buf());
    let mut out: Vec<LogLine> = Vec::new();
    let mut pending: Option<LogLine> = None;
    for f in files.into_iter().filter(|f| f.exists()) {
        for l in BufReader::new(File::open(&f)?).lines() {
            let Some(parsed) = parse_line(&l?) else { continue };
            match pending.take() {
                Some(mut p) => {
                    p.message.push_str(&parsed.message);
                    p.partial = parsed.partial;
                    if p.partial { pending = Some(p) } else { out.push(p) }
                }
                None if parsed.partial => pending = Some(parsed),
                None => out.push(parsed),
            }
        }
    }
    out.extend(pending);
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_parses_and_rotates() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("c/0.log");
        let mut w = CriLogWriter::open(&p, 200, 2).expect("open");
        w.write_line("stdout", b"hello", false).expect("write");
        w.write_line("stderr", b"part-", true).expect("write");
        w.write_line("stderr", b"two", false).expect("write");
        for i in 0..10 {
            w.write_line("stdout", format!("line {i}").as_bytes(), false).expect("write");
        }
        assert!(dir.path().join("c/0.log.1").exists(), "rotated");
        let all = read_all(&p, 2).expect("read");
        assert_eq!(all.last().map(|l| l.message.as_str()), Some("line 9"));
        let raw = std::fs::read_to_string(dir.path().join("c/0.log")).expect("read");
        let first = parse_line(raw.lines().next().expect("a line")).expect("parses");
        assert!(first.time.ends_with('Z') && first.stream == "stdout" && !first.partial);
    }

    #[test]
    fn joins_partial_lines() {
        let dir = tempfile::tempdir().expect("tempdir");
        let p = dir.path().join("0.log");
        let mut w = CriLogWriter::open(&p, 1 << 20, 1).expect("open");
        w.write_line("stderr", b"part-", true).expect("write");
        w.write_line("stderr", b"two", false).expect("write");
        let all = read_all(&p, 1).expect("read");
        assert_eq!(all.len(), 1);
        assert_eq!(all[0].message, "part-two");
    }
}
