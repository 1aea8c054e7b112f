//! The Kubernetes streaming protocols that kubectl, the API server and the kubelet speak
//! for `exec`, `attach` and `port-forward`, as pure codecs (no I/O):
//!
//! - [`channel`]: the WebSocket channel protocol (`v5.channel.k8s.io`, `v4.channel.k8s.io`):
//!   each binary message is one channel byte and data; v5 adds the close signal.
//! - [`status`]: the `metav1.Status` documents written on the error channel (success,
//!   non-zero exit code, failure).
//! - [`spdy`]: SPDY/3.1 framing with its zlib-compressed header blocks, which port-forward
//!   (and the SPDY fallback of exec) uses, directly or tunneled in WebSocket messages.
//!
//! minilet's kubelet server uses all three; miniapi uses the names below to translate a
//! WebSocket-tunneled port-forward into a SPDY upgrade to the kubelet.

pub mod channel;
pub mod spdy;
pub mod status;

/// The header that names the streaming protocol of an upgrade (SPDY) and its answer.
pub const STREAM_PROTOCOL_HEADER: &str = "X-Stream-Protocol-Version";
/// The port-forward protocol.
pub const PORT_FORWARD_PROTOCOL_V1: &str = "portforward.k8s.io";
/// The prefix kubectl puts on a WebSocket subprotocol to tunnel SPDY through it.
pub const SPDY_TUNNELING_PREFIX: &str = "SPDY/3.1+";
/// The `Upgrade:` value of a SPDY upgrade.
pub const SPDY_UPGRADE: &str = "SPDY/3.1";

/// SPDY stream header: which stream this is (`error`, `data`, `stdin`, `stdout`, …).
pub const STREAM_TYPE_HEADER: &str = "streamtype";
/// SPDY stream header: the pod port of a port-forward stream.
pub const PORT_HEADER: &str = "port";
/// SPDY stream header: pairs a port-forward data stream with its error stream.
pub const REQUEST_ID_HEADER: &str = "requestid";

/// Stream types of exec/attach/port-forward streams.
pub mod stream_type {
    /// Standard input.
    pub const STDIN: &str = "stdin";
    /// Standard output.
    pub const STDOUT: &str = "stdout";
    /// Standard error.
    pub const STDERR: &str = "stderr";
    /// The error (status) stream.
    pub const ERROR: &str = "error";
    /// Terminal resize events.
    pub const RESIZE: &str = "resize";
    /// Port-forward data.
    pub const DATA: &str = "data";
}

/// A terminal size as kubectl sends it on the resize channel (`{"Width":80,"Height":24}`).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, serde::Deserialize, serde::Serialize)]
pub struct TerminalSize {
    /// Columns.
    #[serde(rename = "Width")]
    pub width: u16,
    /// Rows.
    #[serde(rename = "Height")]
    pub height: u16,
}

impl TerminalSize {
    /// Parses one resize message.
    pub fn parse(data: &[u8]) -> Option<Self> {
        serde_json::from_slice(data).ok()
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn resize_parses() {
        assert_eq!(TerminalSize::parse(br#"{"Width":80,"Height":24}"#), Some(TerminalSize { width: 80, height: 24 }));
        assert_eq!(TerminalSize::parse(b"nope"), None);
    }
}
