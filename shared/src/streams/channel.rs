//! The WebSocket channel protocol of exec and attach (`v5.channel.k8s.io` and
//! `v4.channel.k8s.io`): every binary message starts with a channel byte — 0 stdin,
//! 1 stdout, 2 stderr, 3 error (a JSON `Status`), 4 resize (JSON `TerminalSize`) — and the
//! rest is that channel's data. Version 5 adds the close signal: the message
//! `[255, CHANNEL]` says the sender will write no more on CHANNEL (stdin EOF).

/// Channel of standard input.
pub const STDIN: u8 = 0;
/// Channel of standard output.
pub const STDOUT: u8 = 1;
/// Channel of standard error.
pub const STDERR: u8 = 2;
/// Channel of the final status.
pub const ERROR: u8 = 3;
/// Channel of terminal resize events.
pub const RESIZE: u8 = 4;
/// The v5 close signal.
pub const CLOSE: u8 = 255;

/// The channel protocol versions a server can speak, best first.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Protocol {
    /// `v5.channel.k8s.io`: v4 plus the close signal.
    V5,
    /// `v4.channel.k8s.io`: JSON status on the error channel.
    V4,
}

impl Protocol {
    /// The subprotocol name.
    pub fn name(self) -> &'static str {
        match self {
            Protocol::V5 => "v5.channel.k8s.io",
            Protocol::V4 => "v4.channel.k8s.io",
        }
    }

    /// Picks the best protocol among the offered subprotocols (`Sec-WebSocket-Protocol`).
    pub fn negotiate<'a>(offered: impl IntoIterator<Item = &'a str>) -> Option<Self> {
        let offered: Vec<&str> = offered.into_iter().map(str::trim).collect();
        [Protocol::V5, Protocol::V4].into_iter().find(|p| offered.contains(&p.name()))
    }
}

/// One decoded message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Message<'a> {
    /// Data on a channel.
    Data {
        /// The channel.
        channel: u8,
        /// The payload (may be empty).
        data: &'a [u8],
    },
    /// The peer closed a channel (v5).
    Close {
        /// The channel closed.
        channel: u8,
    },
    /// An empty message (carries nothing).
    Empty,
}

/// Decodes one binary message.
pub fn decode(msg: &[u8], protocol: Protocol) -> Message<'_> {
    match msg {
        [] => Message::Empty,
        [CLOSE, channel, ..] if protocol == Protocol::V5 => Message::Close { channel: *channel },
        [channel, data @ ..] => Message::Data { channel: *channel, data },
    }
}

/// Encodes data on a channel.
pub fn encode(channel: u8, data: &[u8]) -> Vec<u8> {
    let mut v = Vec::with_capacity(data.len() + 1);
    v.push(channel);
    v.extend_from_slice(data);
    v
}

/// Encodes the v5 close signal for `channel`.
pub fn close(channel: u8) -> Vec<u8> {
    vec![CLOSE, channel]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn roundtrip_and_close() {
        let m = encode(STDOUT, b"hi");
        assert_eq!(m, b"\x01hi");
        assert_eq!(decode(&m, Protocol::V5), Message::Data { channel: STDOUT, data: b"hi" });
        assert_eq!(decode(&close(STDIN), Protocol::V5), Message::Close { channel: STDIN });
        assert_eq!(decode(&close(STDIN), Protocol::V4), Message::Data { channel: CLOSE, data: &[STDIN] });
        assert_eq!(decode(&[], Protocol::V5), Message::Empty);
    }

    #[test]
    fn negotiates_best() {
        assert_eq!(Protocol::negotiate(["v4.channel.k8s.io", "v5.channel.k8s.io"]), Some(Protocol::V5));
        assert_eq!(Protocol::negotiate(["v4.channel.k8s.io"]), Some(Protocol::V4));
        assert_eq!(Protocol::negotiate(["channel.k8s.io"]), None);
    }
}
