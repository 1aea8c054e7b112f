//! `--log FILE --log-format text|json`: runc's log lines (logrus style), which podman
//! and containerd read back for error messages:
//! `{"level":"error","msg":"…","time":"2024-01-01T00:00:00.000000000Z"}` or
//! `time="…" level=error msg="…"`.

use std::fs::OpenOptions;
use std::io::Write;
use std::sync::Mutex;

use minik_oci::procfs::now_rfc3339;
use tracing::field::{Field, Visit};
use tracing::{Event, Level, Subscriber};
use tracing_subscriber::layer::{Context, Layer};
use tracing_subscriber::prelude::*;

use super::Global;

/// Writes events as runc's log lines to a file (or stderr).
struct RuncLayer {
    out: Mutex<Box<dyn Write + Send>>,
    json: bool,
    max: Level,
}

#[derive(Default)]
struct Message {
    msg: String,
    fields: Vec<(String, String)>,
}

impl Visit for Message {
    fn record_str(&mut self, field: &Field, value: &str) {
        if field.name() == "message" {
            self.msg = value.to_string();
        } else {
            self.fields.push((field.name().into(), value.into()));
        }
    }

    fn record_debug(&mut self, field: &Field, value: &dyn std::fmt::Debug) {
        if field.name() == "message" {
            self.msg = format!("{value:?}");
        } else {
            self.fields
                .push((field.name().into(), format!("{value:?}")));
        }
    }
}

impl<S: Subscriber> Layer<S> for RuncLayer {
    fn on_event(&self, event: &Event<'_>, _ctx: Context<'_, S>) {
        if *event.metadata().level() > self.max {
            return;
        }
        let mut m = Message::default();
        event.record(&mut m);
        let level = match *event.metadata().level() {
            Level::ERROR => "error",
            Level::WARN => "warning",
            Level::INFO => "info",
            Level::DEBUG => "debug",
            Level::TRACE => "trace",
        };
        let time = now_rfc3339();
        let line = if self.json {
            let mut obj = serde_json::Map::new();
            obj.insert("level".into(), level.into());
            obj.insert("msg".into(), m.msg.into());
            obj.insert("time".into(), time.into());
            for (k, v) in m.fields {
                obj.insert(k, v.into());
            }
            serde_json::Value::Object(obj).to_string()
        } else {
            let mut s = format!("time={time:?} level={level} msg={:?}", m.msg);
            for (k, v) in m.fields {
                s.push_str(&format!(" {k}={v:?}"));
            }
            s
        };
        if let Ok(mut out) = self.out.lock() {
            let _ = writeln!(out, "{line}");
            let _ = out.flush();
        }
    }
}

/// Installs the logger; returns whether errors go to a log file (beyond stderr).
pub fn init(g: &Global) -> bool {
    let json = g.log_format == "json";
    let max = match g.log_level.as_deref() {
        _ if g.debug => Level::DEBUG,
        Some("trace") => Level::TRACE,
        Some("debug") => Level::DEBUG,
        Some("info") => Level::INFO,
        Some("warn") | Some("warning") => Level::WARN,
        Some("error") | Some("fatal") | Some("panic") => Level::ERROR,
        _ if g.log.is_some() => Level::INFO,
        _ => Level::WARN,
    };
    let (out, to_file): (Box<dyn Write + Send>, bool) = match &g.log {
        Some(path) => match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => (Box::new(f), true),
            Err(e) => {
                eprintln!("minik-oci: cannot open the log {}: {e}", path.display());
                (Box::new(std::io::stderr()), false)
            }
        },
        None => (Box::new(std::io::stderr()), false),
    };
    let layer = RuncLayer {
        out: Mutex::new(out),
        json,
        max,
    };
    let _ = tracing_subscriber::registry().with(layer).try_init();
    to_file
}
