//! A SPDY/3.1 server connection over an upgraded HTTP connection: a reader task decodes
//! frames (answering pings, routing data to streams, dropping a stream's receiver on FIN
//! or RST) and hands each new stream to the caller; a writer task encodes and writes
//! frames in order. Streams are replied to before any data is sent on them, as
//! spdystream's client requires.

use std::collections::HashMap;

use minik_shared::streams::spdy::{Codec, Frame, Headers, FLAG_FIN};
use tokio::io::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use tokio::sync::mpsc;

/// One stream the client opened.
pub struct Stream {
    /// Its ID.
    pub id: u32,
    /// Its headers (lowercase names).
    pub headers: Headers,
    /// Data from the client; ends at the client's FIN.
    pub data: mpsc::Receiver<Vec<u8>>,
    out: mpsc::Sender<Frame>,
}

impl Stream {
    /// A header's value.
    pub fn header(&self, name: &str) -> Option<&str> {
        minik_shared::streams::spdy::header(&self.headers, name)
    }

    /// A sender for this stream's outgoing side.
    pub fn writer(&self) -> StreamWriter {
        StreamWriter { id: self.id, out: self.out.clone() }
    }
}

/// The outgoing side of a stream.
#[derive(Clone)]
pub struct StreamWriter {
    id: u32,
    out: mpsc::Sender<Frame>,
}

impl StreamWriter {
    /// Sends data; false once the connection is gone.
    pub async fn send(&self, data: &[u8]) -> bool {
        for chunk in data.chunks(32 * 1024) {
            let f = Frame::Data { stream_id: self.id, flags: 0, data: chunk.to_vec() };
            if self.out.send(f).await.is_err() {
                return false;
            }
        }
        true
    }

    /// Ends this direction (an empty data frame with FIN).
    pub async fn fin(&self) {
        let _ = self.out.send(Frame::Data { stream_id: self.id, flags: FLAG_FIN, data: Vec::new() }).await;
    }
}

/// Runs the connection until the client goes away; `on_stream` gets every new stream
/// (already replied to).
pub async fn serve<IO>(io: IO, mut on_stream: impl FnMut(Stream))
where
    IO: AsyncRead + AsyncWrite + Send + 'static,
{
    let (mut rd, mut wr) = tokio::io::split(io);
    let (out_tx, mut out_rx) = mpsc::channel::<Frame>(64);
    let writer = tokio::spawn(async move {
        let mut codec = Codec::new();
        let mut buf = Vec::new();
        while let Some(f) = out_rx.recv().await {
            buf.clear();
            if let Err(e) = codec.encode(&f, &mut buf) {
                tracing::warn!(error = %e, "SPDY encode failed");
                break;
            }
            if wr.write_all(&buf).await.is_err() || wr.flush().await.is_err() {
                break;
            }
        }
        let _ = wr.shutdown().await;
    });
    let mut codec = Codec::new();
    let mut buf: Vec<u8> = Vec::with_capacity(64 * 1024);
    let mut chunk = vec![0u8; 64 * 1024];
    let mut streams: HashMap<u32, mpsc::Sender<Vec<u8>>> = HashMap::new();
    'conn: loop {
        loop {
            let frame = match codec.decode(&mut buf) {
                Ok(Some(f)) => f,
                Ok(None) => break,
                Err(e) => {
                    tracing::warn!(error = %e, "SPDY connection broken");
                    break 'conn;
                }
            };
            match frame {
                Frame::SynStream { stream_id, flags, headers, .. } => {
                    let (tx, rx) = mpsc::channel(32);
                    if flags & FLAG_FIN == 0 {
                        streams.insert(stream_id, tx);
                    }
                    let reply = Frame::SynReply { stream_id, flags: 0, headers: Vec::new() };
                    if out_tx.send(reply).await.is_err() {
                        break 'conn;
                    }
                    on_stream(Stream { id: stream_id, headers, data: rx, out: out_tx.clone() });
                }
                Frame::Data { stream_id, flags, data } => {
                    if let Some(tx) = streams.get(&stream_id) {
                        if !data.is_empty() && tx.send(data).await.is_err() {
                            streams.remove(&stream_id);
                        }
                    }
                    if flags & FLAG_FIN != 0 {
                        streams.remove(&stream_id);
                    }
                }
                Frame::RstStream { stream_id, .. } => {
                    streams.remove(&stream_id);
                }
                Frame::Ping { id } if out_tx.send(Frame::Ping { id }).await.is_err() => break 'conn,
                Frame::GoAway { .. } => break 'conn,
                _ => {}
            }
        }
        match rd.read(&mut chunk).await {
            Ok(0) | Err(_) => break,
            Ok(n) => buf.extend_from_slice(&chunk[..n]),
        }
    }
    drop(streams);
    drop(out_tx);
    // The client is gone: let queued frames go out briefly, then stop writing even if a
    // stream handler still holds a writer (it sees its sends fail).
    let mut writer = writer;
    if tokio::time::timeout(std::time::Duration::from_secs(2), &mut writer).await.is_err() {
        writer.abort();
    }
}
