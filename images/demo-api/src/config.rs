//! demo-api's settings, from the environment (as go-demo-2 takes them).
//!
//! | variable | meaning | default |
//! | --- | --- | --- |
//! | `DB` | the database: `host`, `host:port`, `[v6]:port` | `localhost`, port 28017 |
//! | `PORT` | the port to listen on (all addresses) | 8080 |
//! | `ADDR` | the full listen address, overriding `PORT` (e.g. `127.0.0.1:0`) | unset |
//! | `DB_WAIT` | seconds to keep trying the database at start before giving up | 5 |

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use anyhow::{bail, Context, Result};

/// The database's default port: the REST/HTTP interface of the course's mongo.
pub const DEFAULT_DB_PORT: u16 = 28017;
/// The API's default port.
pub const DEFAULT_PORT: u16 = 8080;

/// Where the database is.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DbAddr {
    /// A host name or an IP address (without brackets).
    pub host: String,
    /// The port of its REST interface.
    pub port: u16,
}

impl std::fmt::Display for DbAddr {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        if self.host.contains(':') {
            write!(f, "[{}]:{}", self.host, self.port)
        } else {
            write!(f, "{}:{}", self.host, self.port)
        }
    }
}

impl DbAddr {
    /// Parses `host`, `host:port`, `[v6]`, `[v6]:port` or a bare IPv6 address; an
    /// `http://` prefix and a trailing `/` are tolerated.
    pub fn parse(s: &str) -> Result<Self> {
        let s = s.trim();
        let s = s.strip_prefix("http://").unwrap_or(s);
        let s = s.trim_end_matches('/');
        if s.is_empty() {
            bail!("DB is empty");
        }
        let port = |p: &str| -> Result<u16> {
            let n: u16 = p.parse().with_context(|| format!("DB={s:?}: {p:?} is not a port"))?;
            if n == 0 {
                bail!("DB={s:?}: port 0");
            }
            Ok(n)
        };
        let (host, port) = if let Some(rest) = s.strip_prefix('[') {
            let Some((host, after)) = rest.split_once(']') else { bail!("DB={s:?}: missing ']'") };
            match after.strip_prefix(':') {
                Some(p) => (host.to_string(), port(p)?),
                None if after.is_empty() => (host.to_string(), DEFAULT_DB_PORT),
                None => bail!("DB={s:?}: unexpected {after:?} after ']'"),
            }
        } else if s.matches(':').count() > 1 {
            // A bare IPv6 address.
            (s.to_string(), DEFAULT_DB_PORT)
        } else if let Some((host, p)) = s.split_once(':') {
            (host.to_string(), port(p)?)
        } else {
            (s.to_string(), DEFAULT_DB_PORT)
        };
        if host.is_empty() || host.contains('/') || host.contains(char::is_whitespace) {
            bail!("DB={s:?}: {host:?} is not a host");
        }
        Ok(Self { host, port })
    }
}

/// All settings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Config {
    /// The database.
    pub db: DbAddr,
    /// Where to listen.
    pub listen: SocketAddr,
    /// How long to keep trying the database at start.
    pub db_wait: Duration,
}

impl Config {
    /// Reads the settings through `get` (normally `std::env::var`).
    pub fn from_env(get: impl Fn(&str) -> Option<String>) -> Result<Self> {
        let db = DbAddr::parse(&get("DB").filter(|s| !s.trim().is_empty()).unwrap_or_else(|| "localhost".into()))?;
        let listen = match get("ADDR").filter(|s| !s.is_empty()) {
            Some(a) => a.parse().with_context(|| format!("ADDR={a:?} is not IP:PORT"))?,
            None => {
                let port = match get("PORT").filter(|s| !s.is_empty()) {
                    Some(p) => p.parse().with_context(|| format!("PORT={p:?} is not a port"))?,
                    None => DEFAULT_PORT,
                };
                SocketAddr::new(IpAddr::V4(Ipv4Addr::UNSPECIFIED), port)
            }
        };
        let db_wait = match get("DB_WAIT").filter(|s| !s.is_empty()) {
            Some(w) => Duration::from_secs_f64(
                w.parse::<f64>()
                    .ok()
                    .filter(|v| v.is_finite() && *v >= 0.0 && *v <= 3600.0)
                    .with_context(|| format!("DB_WAIT={w:?} is not a number of seconds"))?,
            ),
            None => Duration::from_secs(5),
        };
        Ok(Self { db, listen, db_wait })
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)] // a failed unwrap is a failed test
mod tests {
    use std::collections::HashMap;

    use super::*;

    #[test]
    fn db_forms() {
        let p = |s: &str| DbAddr::parse(s).unwrap();
        assert_eq!(p("go-demo-2-db"), DbAddr { host: "go-demo-2-db".into(), port: 28017 });
        assert_eq!(p("db:3000"), DbAddr { host: "db".into(), port: 3000 });
        assert_eq!(p("10.96.0.5"), DbAddr { host: "10.96.0.5".into(), port: 28017 });
        assert_eq!(p("[::1]:5"), DbAddr { host: "::1".into(), port: 5 });
        assert_eq!(p("[::1]"), DbAddr { host: "::1".into(), port: 28017 });
        assert_eq!(p("fd00::1"), DbAddr { host: "fd00::1".into(), port: 28017 });
        assert_eq!(p("http://db:1/"), DbAddr { host: "db".into(), port: 1 });
        assert_eq!(p("[::1]:5").to_string(), "[::1]:5");
        for bad in ["", "db:x", "db:0", "db:70000", "[::1", "a b"] {
            assert!(DbAddr::parse(bad).is_err(), "{bad:?}");
        }
    }

    #[test]
    fn env_defaults_and_overrides() {
        let env = |pairs: &[(&str, &str)]| {
            let m: HashMap<String, String> = pairs.iter().map(|(k, v)| (k.to_string(), v.to_string())).collect();
            Config::from_env(move |k| m.get(k).cloned())
        };
        let c = env(&[]).unwrap();
        assert_eq!(c.db.to_string(), "localhost:28017");
        assert_eq!(c.listen.to_string(), "0.0.0.0:8080");
        assert_eq!(c.db_wait, Duration::from_secs(5));
        let c = env(&[("DB", "db"), ("PORT", "9000"), ("DB_WAIT", "0.5")]).unwrap();
        assert_eq!(c.listen.port(), 9000);
        assert_eq!(c.db_wait, Duration::from_millis(500));
        let c = env(&[("ADDR", "127.0.0.1:0"), ("PORT", "9000")]).unwrap();
        assert_eq!(c.listen.to_string(), "127.0.0.1:0");
        assert!(env(&[("PORT", "x")]).is_err());
        assert!(env(&[("DB_WAIT", "-1")]).is_err());
    }
}
