//! SPDY/3 header blocks: a count and length-prefixed name/value pairs (names lowercase,
//! several values of one name joined by NUL), compressed with one zlib stream per
//! direction of the connection, primed with the SPDY dictionary and sync-flushed after
//! each block.

use flate2::{Compress, Compression, Decompress, FlushCompress, FlushDecompress, Status};

use super::dict::dictionary;
use super::SpdyError;

/// A header block: lowercase names, in order.
pub type Headers = Vec<(String, String)>;

/// The value of `name` (case-insensitive) in a header block.
pub fn get<'a>(h: &'a Headers, name: &str) -> Option<&'a str> {
    h.iter().find(|(k, _)| k.eq_ignore_ascii_case(name)).map(|(_, v)| v.as_str())
}

fn serialize(h: &Headers) -> Vec<u8> {
    let mut out = Vec::new();
    out.extend_from_slice(&(h.len() as u32).to_be_bytes());
    for (k, v) in h {
        let k = k.to_ascii_lowercase();
        out.extend_from_slice(&(k.len() as u32).to_be_bytes());
        out.extend_from_slice(k.as_bytes());
        out.extend_from_slice(&(v.len() as u32).to_be_bytes());
        out.extend_from_slice(v.as_bytes());
    }
    out
}

fn parse(raw: &[u8]) -> Result<Headers, SpdyError> {
    let bad = || SpdyError::Protocol("truncated header block".into());
    let mut pos = 0usize;
    let u32_at = |pos: &mut usize| -> Result<usize, SpdyError> {
        let b = raw.get(*pos..*pos + 4).ok_or_else(bad)?;
        *pos += 4;
        Ok(u32::from_be_bytes([b[0], b[1], b[2], b[3]]) as usize)
    };
    let n = u32_at(&mut pos)?;
    let mut out = Vec::with_capacity(n.min(64));
    for _ in 0..n {
        let kl = u32_at(&mut pos)?;
        let k = raw.get(pos..pos + kl).ok_or_else(bad)?;
        pos += kl;
        let vl = u32_at(&mut pos)?;
        let v = raw.get(pos..pos + vl).ok_or_else(bad)?;
        pos += vl;
        let name = String::from_utf8_lossy(k).to_ascii_lowercase();
        for value in v.split(|b| *b == 0) {
            out.push((name.clone(), String::from_utf8_lossy(value).into_owned()));
        }
    }
    Ok(out)
}

/// Compresses this side's header blocks.
pub struct HeaderEncoder {
    z: Compress,
    primed: bool,
}

impl Default for HeaderEncoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderEncoder {
    /// A fresh compression context.
    pub fn new() -> Self {
        HeaderEncoder { z: Compress::new(Compression::default(), true), primed: false }
    }

    /// Encodes and compresses one header block.
    pub fn encode(&mut self, h: &Headers) -> Result<Vec<u8>, SpdyError> {
        if !self.primed {
            self.z.set_dictionary(dictionary()).map_err(|e| SpdyError::Zlib(e.to_string()))?;
            self.primed = true;
        }
        let input = serialize(h);
        let mut out = Vec::with_capacity(input.len() + 64);
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 64 {
                out.reserve(256);
            }
            self.z
                .compress_vec(&input[consumed..], &mut out, FlushCompress::Sync)
                .map_err(|e| SpdyError::Zlib(e.to_string()))?;
            let consumed = (self.z.total_in() - start_in) as usize;
            // Done once all input is in and the flush left spare room in the buffer.
            if consumed == input.len() && out.capacity() > out.len() {
                return Ok(out);
            }
        }
    }
}

/// Inflates the peer's header blocks.
pub struct HeaderDecoder {
    z: Decompress,
}

impl Default for HeaderDecoder {
    fn default() -> Self {
        Self::new()
    }
}

impl HeaderDecoder {
    /// A fresh decompression context.
    pub fn new() -> Self {
        HeaderDecoder { z: Decompress::new(true) }
    }

    /// Inflates and parses one compressed header block.
    pub fn decode(&mut self, block: &[u8]) -> Result<Headers, SpdyError> {
        let mut out: Vec<u8> = Vec::with_capacity(block.len() * 4 + 64);
        let start_in = self.z.total_in();
        loop {
            let consumed = (self.z.total_in() - start_in) as usize;
            if out.capacity() - out.len() < 256 {
                out.reserve(1024);
            }
            match self.z.decompress_vec(&block[consumed..], &mut out, FlushDecompress::Sync) {
                Ok(Status::StreamEnd) => break,
                Ok(_) => {}
                Err(e) if e.needs_dictionary().is_some() => {
                    self.z.set_dictionary(dictionary()).map_err(|e| SpdyError::Zlib(e.to_string()))?;
                }
                Err(e) => return Err(SpdyError::Zlib(e.to_string())),
            }
            let consumed = (self.z.total_in() - start_in) as usize;
            if consumed == block.len() && out.capacity() > out.len() {
                break;
            }
        }
        parse(&out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn blocks_roundtrip_across_one_context() {
        let (mut enc, mut dec) = (HeaderEncoder::new(), HeaderDecoder::new());
        let a: Headers = vec![("streamtype".into(), "error".into()), ("port".into(), "8080".into())];
        let b: Headers = vec![("StreamType".into(), "data".into()), ("requestid".into(), "0".into())];
        for h in [&a, &b, &a] {
            let wire = enc.encode(h).expect("encode");
            let back = dec.decode(&wire).expect("decode");
            let lower: Headers = h.iter().map(|(k, v)| (k.to_ascii_lowercase(), v.clone())).collect();
            assert_eq!(back, lower);
        }
        assert_eq!(get(&a, "PORT"), Some("8080"));
    }

    #[test]
    fn nul_joined_values_split() {
        let raw = serialize(&vec![("a".into(), "x\0y".into())]);
        assert_eq!(parse(&raw).expect("parse"), vec![("a".to_string(), "x".to_string()), ("a".to_string(), "y".to_string())]);
    }
}
