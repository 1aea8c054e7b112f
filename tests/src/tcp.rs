//! TCP probes across namespaces: a server that answers every connection with the
//! client's address as it sees it (so a test can tell NAT from no NAT), and its client.
//! A socket belongs to the namespace it was created in, so the listener is bound from
//! inside the server's namespace and the accept loop can run on any thread.

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::thread::JoinHandle;
use std::time::Duration;

use crate::Netns;

/// A running "who am I" server.
pub struct WhoAmI {
    /// Where it listens.
    pub addr: SocketAddr,
    _thread: JoinHandle<()>,
}

/// Starts a server in `ns` on `addr` that answers each connection with the peer address.
pub fn who_am_i(ns: &Netns, addr: &str) -> WhoAmI {
    let listener = ns
        .run(|| TcpListener::bind(addr))
        .unwrap_or_else(|e| panic!("cannot listen on {addr} in {}: {e}", ns.name));
    let local = listener.local_addr().unwrap_or_else(|e| panic!("no local addr: {e}"));
    let thread = std::thread::spawn(move || {
        for mut conn in listener.incoming().flatten() {
            let peer = conn.peer_addr().map(|p| p.ip().to_string()).unwrap_or_default();
            let _ = conn.write_all(peer.as_bytes());
        }
    });
    WhoAmI { addr: local, _thread: thread }
}

/// Connects from `ns` to `addr` and returns what the server said (its view of our IP).
pub fn ask(ns: &Netns, addr: &str) -> std::io::Result<String> {
    let target: SocketAddr = addr.parse().map_err(|e| std::io::Error::other(format!("{addr}: {e}")))?;
    let mut s = ns.run(|| TcpStream::connect_timeout(&target, Duration::from_secs(3)))?;
    s.set_read_timeout(Some(Duration::from_secs(3)))?;
    let mut out = String::new();
    s.read_to_string(&mut out)?;
    Ok(out)
}
