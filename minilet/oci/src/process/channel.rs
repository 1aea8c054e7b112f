//! The socketpair between the runtime and the container's init: typed messages, one
//! JSON object per line.

use std::io::{BufRead, BufReader, Write};
use std::os::unix::net::UnixStream;

use serde::{Deserialize, Serialize};

use crate::error::{Error, Result};

/// From the init (or its first stage) to the runtime.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToRuntime {
    /// The host pid of the container's init (sent by the first stage).
    Pid(i32),
    /// The namespaces and mounts exist: run prestart/createRuntime hooks now.
    RunHooks,
    /// Set up; waiting for `start` (or, for exec, about to exec).
    Ready,
    /// Setup failed.
    Error(String),
}

/// From the runtime to the init.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub enum ToInit {
    /// The cgroup is joined; go on. `pid` is the init's host pid (for hook state).
    Go {
        /// Host pid of the init.
        pid: i32,
    },
    /// The runtime's hooks ran.
    HooksDone,
}

/// One end of the channel.
#[derive(Debug)]
pub struct Channel {
    reader: BufReader<UnixStream>,
    writer: UnixStream,
}

impl Channel {
    /// A connected pair (both ends close on exec).
    pub fn pair() -> Result<(Channel, Channel)> {
        let (a, b) = UnixStream::pair().map_err(|e| Error::Other(format!("socketpair: {e}")))?;
        Ok((Channel::new(a)?, Channel::new(b)?))
    }

    fn new(s: UnixStream) -> Result<Channel> {
        let writer = s
            .try_clone()
            .map_err(|e| Error::Other(format!("dup socket: {e}")))?;
        Ok(Channel {
            reader: BufReader::new(s),
            writer,
        })
    }

    /// Sends one message.
    pub fn send<T: Serialize>(&mut self, msg: &T) -> Result<()> {
        let mut line = serde_json::to_vec(msg).map_err(|e| Error::Other(format!("encode: {e}")))?;
        line.push(b'\n');
        self.writer
            .write_all(&line)
            .map_err(|e| Error::Other(format!("send to the other side: {e}")))
    }

    /// Receives one message; `None` when the other side closed its end.
    pub fn recv<T: for<'de> Deserialize<'de>>(&mut self) -> Result<Option<T>> {
        let mut line = String::new();
        let n = self
            .reader
            .read_line(&mut line)
            .map_err(|e| Error::Other(format!("receive: {e}")))?;
        if n == 0 {
            return Ok(None);
        }
        serde_json::from_str(&line)
            .map(Some)
            .map_err(|e| Error::Other(format!("decode {line:?}: {e}")))
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn round_trip_and_eof() {
        let (mut a, mut b) = Channel::pair().unwrap();
        a.send(&ToRuntime::Pid(42)).unwrap();
        a.send(&ToRuntime::Error("bad \"thing\"\nhere".into()))
            .unwrap();
        assert_eq!(b.recv::<ToRuntime>().unwrap(), Some(ToRuntime::Pid(42)));
        assert_eq!(
            b.recv::<ToRuntime>().unwrap(),
            Some(ToRuntime::Error("bad \"thing\"\nhere".into()))
        );
        b.send(&ToInit::Go { pid: 7 }).unwrap();
        assert_eq!(a.recv::<ToInit>().unwrap(), Some(ToInit::Go { pid: 7 }));
        drop(a);
        assert_eq!(b.recv::<ToRuntime>().unwrap(), None);
    }
}
