//! SPDY/3.1 framing, as kubectl, the kubelet and moby's spdystream use it for streams
//! over one upgraded connection: control frames (`SYN_STREAM`, `SYN_REPLY`,
//! `RST_STREAM`, `SETTINGS`, `PING`, `GOAWAY`, `HEADERS`, `WINDOW_UPDATE`) and data
//! frames with the `FIN` flag. Header blocks are compressed ([`headers`]). spdystream
//! implements no flow control, so `WINDOW_UPDATE` and `SETTINGS` are parsed and ignored.
//!
//! [`Codec`] is sans-I/O: feed it bytes, take out frames; hand it frames, write the bytes.

pub mod dict;
pub mod headers;

pub use headers::{get as header, Headers};

/// The data frame flag that ends a direction of a stream.
pub const FLAG_FIN: u8 = 0x01;
/// The largest frame payload accepted (the protocol's 24-bit limit).
pub const MAX_FRAME: usize = (1 << 24) - 1;

/// SPDY failures.
#[derive(Debug, thiserror::Error)]
pub enum SpdyError {
    /// The peer broke the protocol.
    #[error("SPDY protocol error: {0}")]
    Protocol(String),
    /// Header (de)compression failed.
    #[error("SPDY header compression: {0}")]
    Zlib(String),
}

/// One frame.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Frame {
    /// A new stream from the peer.
    SynStream {
        /// Stream ID (odd from the client).
        stream_id: u32,
        /// Associated stream.
        associated: u32,
        /// Priority (0 highest).
        priority: u8,
        /// FIN / UNIDIRECTIONAL.
        flags: u8,
        /// Headers.
        headers: Headers,
    },
    /// The answer to a SYN_STREAM.
    SynReply {
        /// Stream ID.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// Headers.
        headers: Headers,
    },
    /// Abort a stream.
    RstStream {
        /// Stream ID.
        stream_id: u32,
        /// Status code (1 protocol error … 5 cancel …).
        status: u32,
    },
    /// Settings (ignored).
    Settings {
        /// Raw (flags+id, value) pairs.
        entries: Vec<(u32, u32)>,
    },
    /// A ping to echo.
    Ping {
        /// Its ID.
        id: u32,
    },
    /// The peer is going away.
    GoAway {
        /// Last stream the sender accepted.
        last_good: u32,
        /// Status.
        status: u32,
    },
    /// More headers on a stream.
    Headers {
        /// Stream ID.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// Headers.
        headers: Headers,
    },
    /// Flow control (ignored).
    WindowUpdate {
        /// Stream ID.
        stream_id: u32,
        /// Delta.
        delta: u32,
    },
    /// Data on a stream.
    Data {
        /// Stream ID.
        stream_id: u32,
        /// FIN.
        flags: u8,
        /// Payload.
        data: Vec<u8>,
    },
}

fn be32(b: &[u8], at: usize) -> u32 {
    u32::from_be_bytes([b[at], b[at + 1], b[at + 2], b[at + 3]])
}

/// One connection side's framer: header compression state in both directions.
#[derive(Default)]
pub struct Codec {
    enc: headers::HeaderEncoder,
    dec: headers::HeaderDecoder,
}

impl Codec {
    /// A fresh codec for a new connection.
    pub fn new() -> Self {
        Self::default()
    }

    /// Takes one complete frame off the front of `buf`, if there is one.
    pub fn decode(&mut self, buf: &mut Vec<u8>) -> Result<Option<Frame>, SpdyError> {
        if buf.len() < 8 {
            return Ok(None);
        }
        let len = (be32(buf, 4) & 0x00ff_ffff) as usize;
        if buf.len() < 8 + len {
            return Ok(None);
        }
        let flags = buf[4];
        let payload: Vec<u8> = buf[8..8 + len].to_vec();
        let first = be32(buf, 0);
        buf.drain(..8 + len);
        if first & 0x8000_0000 == 0 {
            return Ok(Some(Frame::Data { stream_id: first & 0x7fff_ffff, flags, data: payload }));
        }
        let version = (first >> 16) & 0x7fff;
        if version != 3 {
            return Err(SpdyError::Protocol(format!("unsupported SPDY version {version}")));
        }
        let short = |n: usize| -> Result<(), SpdyError> {
            if payload.len() < n {
                Err(SpdyError::Protocol(format!("control frame of {} bytes is too short", payload.len())))
            } else {
                Ok(())
            }
        };
        let frame = match first & 0xffff {
            1 => {
                short(10)?;
                let headers = self.dec.decode(&payload[10..])?;
                Frame::SynStream {
                    stream_id: be32(&payload, 0) & 0x7fff_ffff,
                    associated: be32(&payload, 4) & 0x7fff_ffff,
                    priority: payload[8] >> 5,
                    flags,
                    headers,
                }
            }
            2 => {
                short(4)?;
                let headers = self.dec.decode(&payload[4..])?;
                Frame::SynReply { stream_id: be32(&payload, 0) & 0x7fff_ffff, flags, headers }
            }
            3 => {
                short(8)?;
                Frame::RstStream { stream_id: be32(&payload, 0) & 0x7fff_ffff, status: be32(&payload, 4) }
            }
            4 => {
                short(4)?;
                let n = be32(&payload, 0) as usize;
                short(4 + n.saturating_mul(8))?;
                let entries = (0..n).map(|i| (be32(&payload, 4 + i * 8), be32(&payload, 8 + i * 8))).collect();
                Frame::Settings { entries }
            }
            6 => {
                short(4)?;
                Frame::Ping { id: be32(&payload, 0) }
            }
            7 => {
                short(8)?;
                Frame::GoAway { last_good: be32(&payload, 0) & 0x7fff_ffff, status: be32(&payload, 4) }
            }
            8 => {
                short(4)?;
                let headers = self.dec.decode(&payload[4..])?;
                Frame::Headers { stream_id: be32(&payload, 0) & 0x7fff_ffff, flags, headers }
            }
            9 => {
                short(8)?;
                Frame::WindowUpdate { stream_id: be32(&payload, 0) & 0x7fff_ffff, delta: be32(&payload, 4) & 0x7fff_ffff }
            }
            other => return Err(SpdyError::Protocol(format!("unknown control frame type {other}"))),
        };
        Ok(Some(frame))
    }

    /// Appends the wire form of `frame` to `out`.
    pub fn encode(&mut self, frame: &Frame, out: &mut Vec<u8>) -> Result<(), SpdyError> {
        let (ty, flags, payload): (u16, u8, Vec<u8>) = match frame {
            Frame::Data { stream_id, flags, data } => {
                if data.len() > MAX_FRAME {
                    return Err(SpdyError::Protocol("data frame too large".into()));
                }
                out.extend_from_slice(&(stream_id & 0x7fff_ffff).to_be_bytes());
                out.extend_from_slice(&((u32::from(*flags) << 24) | data.len() as u32).to_be_bytes());
                out.extend_from_slice(data);
                return Ok(());
            }
            Frame::SynStream { stream_id, associated, priority, flags, headers } => {
                let mut p = Vec::new();
                p.extend_from_slice(&stream_id.to_be_bytes());
                p.extend_from_slice(&associated.to_be_bytes());
                p.push(priority << 5);
                p.push(0);
                p.extend(self.enc.encode(headers)?);
                (1, *flags, p)
            }
            Frame::SynReply { stream_id, flags, headers } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(self.enc.encode(headers)?);
                (2, *flags, p)
            }
            Frame::RstStream { stream_id, status } => (3, 0, [stream_id.to_be_bytes(), status.to_be_bytes()].concat()),
            Frame::Settings { entries } => {
                let mut p = (entries.len() as u32).to_be_bytes().to_vec();
                for (k, v) in entries {
                    p.extend_from_slice(&k.to_be_bytes());
                    p.extend_from_slice(&v.to_be_bytes());
                }
                (4, 0, p)
            }
            Frame::Ping { id } => (6, 0, id.to_be_bytes().to_vec()),
            Frame::GoAway { last_good, status } => (7, 0, [last_good.to_be_bytes(), status.to_be_bytes()].concat()),
            Frame::Headers { stream_id, flags, headers } => {
                let mut p = stream_id.to_be_bytes().to_vec();
                p.extend(self.enc.encode(headers)?);
                (8, *flags, p)
            }
            Frame::WindowUpdate { stream_id, delta } => (9, 0, [stream_id.to_be_bytes(), delta.to_be_bytes()].concat()),
        };
        out.extend_from_slice(&(0x8003_0000u32 | u32::from(ty)).to_be_bytes());
        out.extend_from_slice(&((u32::from(flags) << 24) | payload.len() as u32).to_be_bytes());
        out.extend_from_slice(&payload);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn frames_roundtrip() {
        let (mut a, mut b) = (Codec::new(), Codec::new());
        let frames = vec![
            Frame::SynStream {
                stream_id: 1,
                associated: 0,
                priority: 0,
                flags: 0,
                headers: vec![("streamtype".into(), "error".into()), ("port".into(), "80".into())],
            },
            Frame::SynReply { stream_id: 1, flags: 0, headers: vec![] },
            Frame::Data { stream_id: 1, flags: FLAG_FIN, data: b"hello".to_vec() },
            Frame::Ping { id: 7 },
            Frame::RstStream { stream_id: 3, status: 5 },
            Frame::GoAway { last_good: 1, status: 0 },
            Frame::WindowUpdate { stream_id: 1, delta: 100 },
            Frame::Settings { entries: vec![(7, 65536)] },
        ];
        let mut wire = Vec::new();
        for f in &frames {
            a.encode(f, &mut wire).expect("encode");
        }
        let mut got = Vec::new();
        // Byte by byte: partial frames wait for the rest.
        let mut buf = Vec::new();
        for byte in wire {
            buf.push(byte);
            while let Some(f) = b.decode(&mut buf).expect("decode") {
                got.push(f);
            }
        }
        assert_eq!(got, frames);
    }
}
