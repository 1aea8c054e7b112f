//! mongod's command line, as far as the stand-in needs it.
//!
//! Understood: `--rest`, `--httpinterface`, `--nohttpinterface`, `--port N`,
//! `--dbpath DIR`, `--bind_ip A[,B…]`, `--bind_ip_all`, `--help`, `--version`, each also
//! as `--flag=value`. Any other option is ignored with a warning instead of failing, as
//! people pass real mongo options (`--smallfiles`, `--replSet rs0`, `--fork`, …): one
//! that takes a value consumes the next word unless that word starts with `-`.

use std::net::IpAddr;
use std::path::PathBuf;

use thiserror::Error;

/// mongod's default port for the native protocol.
pub const DEFAULT_PORT: u16 = 27017;
/// The HTTP interface listens on the native port plus this (so 28017 by default).
pub const HTTP_PORT_OFFSET: u16 = 1000;
/// mongod's default data directory.
pub const DEFAULT_DBPATH: &str = "/data/db";

/// What the command line asked for.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Options {
    /// `--rest` was given (the REST API is served either way; recorded for the status page).
    pub rest: bool,
    /// `--httpinterface` was given.
    pub httpinterface: bool,
    /// `--nohttpinterface`: do not serve HTTP at all.
    pub no_http: bool,
    /// The native port; 0 picks free ports for both listeners (for tests).
    pub port: u16,
    /// Where collections are kept.
    pub dbpath: PathBuf,
    /// Addresses to listen on.
    pub bind_ip: Vec<IpAddr>,
    /// Options that were ignored, for the warnings.
    pub ignored: Vec<String>,
}

impl Default for Options {
    fn default() -> Self {
        Self {
            rest: false,
            httpinterface: false,
            no_http: false,
            port: DEFAULT_PORT,
            dbpath: PathBuf::from(DEFAULT_DBPATH),
            bind_ip: vec![IpAddr::from([0, 0, 0, 0])],
            ignored: Vec::new(),
        }
    }
}

impl Options {
    /// The HTTP interface's port: the native port + 1000, or 0 when the native port is 0.
    pub fn http_port(&self) -> Result<u16, ArgError> {
        if self.port == 0 {
            return Ok(0);
        }
        self.port
            .checked_add(HTTP_PORT_OFFSET)
            .ok_or(ArgError::Invalid("--port", format!("{} (port + 1000 is over 65535)", self.port)))
    }
}

/// What parsing may end in besides options.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Parsed {
    /// Run with these options.
    Run(Options),
    /// Print the usage and exit 0.
    Help,
    /// Print the version and exit 0.
    Version,
}

/// A command line that cannot be run.
#[derive(Debug, Clone, PartialEq, Eq, Error)]
pub enum ArgError {
    /// An option that needs a value had none.
    #[error("option {0} needs a value")]
    MissingValue(&'static str),
    /// An option's value is not valid.
    #[error("bad value for {0}: {1}")]
    Invalid(&'static str, String),
}

/// Mongo options that take a value, so that ignoring them also skips their value.
const VALUED: &[&str] = &[
    "config", "f", "logpath", "replSet", "storageEngine", "wiredTigerCacheSizeGB", "oplogSize",
    "keyFile", "pidfilepath", "setParameter", "sslMode", "sslPEMKeyFile", "sslCAFile",
    "clusterAuthMode", "maxConns", "profile", "slowms", "syncdelay", "unixSocketPrefix",
    "timeStampFormat", "shardsvr", "configsvr", "auditDestination", "journalCommitInterval",
    "nssize", "master", "slave", "source", "only", "directoryperdb",
];

/// The usage text for `--help`.
pub const USAGE: &str = "\
Usage: mongod [options]   (minik's stand-in for mongod 3.3)

Options:
  --port N              native port (default 27017); the HTTP interface is on N+1000
  --dbpath DIR          data directory (default /data/db; created if missing)
  --bind_ip A[,B...]    addresses to listen on (default 0.0.0.0)
  --bind_ip_all         listen on all addresses (0.0.0.0)
  --rest                accepted: the REST API is always on
  --httpinterface       accepted: the HTTP interface is on unless --nohttpinterface
  --nohttpinterface     no HTTP interface
  --version             print the version
  -h, --help            this text
Any other mongod option is ignored with a warning.
";

/// Parses the arguments after the program name.
pub fn parse<I, S>(args: I) -> Result<Parsed, ArgError>
where
    I: IntoIterator<Item = S>,
    S: Into<String>,
{
    let mut opts = Options::default();
    let mut args = args.into_iter().map(Into::into).peekable();
    while let Some(arg) = args.next() {
        let Some(stripped) = arg.strip_prefix("--").or_else(|| arg.strip_prefix('-')) else {
            opts.ignored.push(arg);
            continue;
        };
        let (name, inline) = match stripped.split_once('=') {
            Some((n, v)) => (n.to_string(), Some(v.to_string())),
            None => (stripped.to_string(), None),
        };
        let mut value = |flag: &'static str| -> Result<String, ArgError> {
            match inline.clone() {
                Some(v) => Ok(v),
                None => args.next().ok_or(ArgError::MissingValue(flag)),
            }
        };
        match name.as_str() {
            "h" | "help" => return Ok(Parsed::Help),
            "version" => return Ok(Parsed::Version),
            "rest" => opts.rest = true,
            "httpinterface" => opts.httpinterface = true,
            "nohttpinterface" => opts.no_http = true,
            "bind_ip_all" => opts.bind_ip = vec![IpAddr::from([0, 0, 0, 0])],
            "port" => {
                let v = value("--port")?;
                opts.port = v.parse().map_err(|_| ArgError::Invalid("--port", v))?;
            }
            "dbpath" => {
                let v = value("--dbpath")?;
                if v.is_empty() {
                    return Err(ArgError::Invalid("--dbpath", v));
                }
                opts.dbpath = PathBuf::from(v);
            }
            "bind_ip" => {
                let v = value("--bind_ip")?;
                let mut ips = Vec::new();
                for part in v.split(',').map(str::trim).filter(|p| !p.is_empty()) {
                    let ip = match part {
                        "localhost" => IpAddr::from([127, 0, 0, 1]),
                        p => p.parse().map_err(|_| ArgError::Invalid("--bind_ip", v.clone()))?,
                    };
                    if !ips.contains(&ip) {
                        ips.push(ip);
                    }
                }
                if ips.is_empty() {
                    return Err(ArgError::Invalid("--bind_ip", v));
                }
                opts.bind_ip = ips;
            }
            other => {
                let mut ignored = arg.clone();
                let takes_value = VALUED.contains(&other)
                    || (inline.is_none() && args.peek().is_some_and(|next| !next.starts_with('-')));
                if inline.is_none() && takes_value {
                    if let Some(v) = args.next_if(|next| !next.starts_with('-')) {
                        ignored = format!("{arg} {v}");
                    }
                }
                opts.ignored.push(ignored);
            }
        }
    }
    Ok(Parsed::Run(opts))
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use super::*;

    fn run(args: &[&str]) -> Options {
        match parse(args.iter().copied()).unwrap() {
            Parsed::Run(o) => o,
            other => panic!("{other:?}"),
        }
    }

    #[test]
    fn the_course_flags() {
        let o = run(&["--rest", "--httpinterface"]);
        assert!(o.rest && o.httpinterface);
        assert_eq!(o.port, 27017);
        assert_eq!(o.http_port().unwrap(), 28017);
        assert_eq!(o.dbpath, PathBuf::from("/data/db"));
        assert!(o.ignored.is_empty());
    }

    #[test]
    fn values_inline_or_separate() {
        let o = run(&["--port=3000", "--dbpath", "/tmp/x", "--bind_ip", "127.0.0.1,::1,localhost"]);
        assert_eq!(o.port, 3000);
        assert_eq!(o.http_port().unwrap(), 4000);
        assert_eq!(o.dbpath, PathBuf::from("/tmp/x"));
        assert_eq!(o.bind_ip, vec![IpAddr::from([127, 0, 0, 1]), "::1".parse().unwrap()]);
        assert_eq!(run(&["--port", "0"]).http_port().unwrap(), 0);
    }

    #[test]
    fn unknown_options_are_ignored_with_their_values() {
        let o = run(&["--smallfiles", "--replSet", "rs0", "--fork", "--logpath=/x", "-vvv", "--oplogSize", "--rest"]);
        assert_eq!(o.ignored, ["--smallfiles", "--replSet rs0", "--fork", "--logpath=/x", "-vvv", "--oplogSize"]);
        assert!(o.rest);
        let o = run(&["--quiet", "stray"]);
        assert_eq!(o.ignored, ["--quiet stray"]);
    }

    #[test]
    fn errors_and_exits() {
        assert_eq!(parse(["--port"]), Err(ArgError::MissingValue("--port")));
        assert!(matches!(parse(["--port", "x"]), Err(ArgError::Invalid(..))));
        assert!(matches!(parse(["--bind_ip", "nope"]), Err(ArgError::Invalid(..))));
        assert!(run(&["--port", "65000"]).http_port().is_err());
        assert_eq!(parse(["--help"]), Ok(Parsed::Help));
        assert_eq!(parse(["--version"]), Ok(Parsed::Version));
    }
}
