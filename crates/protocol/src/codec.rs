//! Length-prefixed JSON frames.
//!
//! Invariant: the decoder never allocates more than `max_frame` bytes for a
//! frame and never panics, whatever the bytes; it returns a [`FrameError`]
//! instead, after which the connection must be closed.

use std::marker::PhantomData;

use bytes::{Buf, BufMut, BytesMut};
use serde::{de::DeserializeOwned, Serialize};
use tokio_util::codec::{Decoder, Encoder};

/// Why a frame could not be read or written.
#[derive(Debug, thiserror::Error)]
pub enum FrameError {
    #[error("frame of {size} bytes exceeds the limit of {max} bytes")]
    TooLarge { size: usize, max: usize },
    #[error("frame does not hold a valid message: {0}")]
    Malformed(#[from] serde_json::Error),
    #[error(transparent)]
    Io(#[from] std::io::Error),
}

/// The top bit of the length word marks a deflate-compressed body.
const COMPRESSED: u32 = 1 << 31;

/// Encodes `Out` messages and decodes `In` messages, each as one frame.
///
/// A body may be deflate-compressed (top bit of the length set); the
/// decoder inflates it, never beyond `max_frame` bytes. The encoder
/// compresses only when asked to ([`FrameCodec::compress_over`]).
#[derive(Debug)]
pub struct FrameCodec<In, Out> {
    max_frame: usize,
    compress_over: Option<usize>,
    _types: PhantomData<fn(Out) -> In>,
}

impl<In, Out> FrameCodec<In, Out> {
    /// A codec that refuses incoming frames larger than `max_frame` bytes.
    pub fn new(max_frame: usize) -> Self {
        FrameCodec {
            max_frame,
            compress_over: None,
            _types: PhantomData,
        }
    }

    /// Compresses outgoing bodies larger than `bytes`.
    pub fn compress_over(mut self, bytes: usize) -> Self {
        self.compress_over = Some(bytes);
        self
    }
}

impl<In: DeserializeOwned, Out> Decoder for FrameCodec<In, Out> {
    type Item = In;
    type Error = FrameError;

    fn decode(&mut self, src: &mut BytesMut) -> Result<Option<In>, FrameError> {
        if src.len() < 4 {
            return Ok(None);
        }
        let word = u32::from_be_bytes([src[0], src[1], src[2], src[3]]);
        let compressed = word & COMPRESSED != 0;
        let size = (word & !COMPRESSED) as usize;
        if size > self.max_frame {
            return Err(FrameError::TooLarge {
                size,
                max: self.max_frame,
            });
        }
        if src.len() < 4 + size {
            src.reserve(4 + size - src.len());
            return Ok(None);
        }
        src.advance(4);
        let body = src.split_to(size);
        if compressed {
            let mut inflated = Vec::new();
            let limit = self.max_frame as u64 + 1;
            std::io::Read::read_to_end(
                &mut std::io::Read::take(flate2::read::DeflateDecoder::new(&body[..]), limit),
                &mut inflated,
            )?;
            if inflated.len() > self.max_frame {
                return Err(FrameError::TooLarge {
                    size: inflated.len(),
                    max: self.max_frame,
                });
            }
            return Ok(Some(serde_json::from_slice(&inflated)?));
        }
        Ok(Some(serde_json::from_slice(&body)?))
    }
}

impl<In, Out: Serialize> Encoder<Out> for FrameCodec<In, Out> {
    type Error = FrameError;

    fn encode(&mut self, item: Out, dst: &mut BytesMut) -> Result<(), FrameError> {
        match self.compress_over {
            None => encode_frame(&item, dst),
            Some(threshold) => {
                let body = serde_json::to_vec(&item)?;
                if body.len() <= threshold {
                    return put_frame(&body, 0, dst);
                }
                let mut deflater = flate2::write::DeflateEncoder::new(
                    Vec::with_capacity(body.len() / 4),
                    flate2::Compression::fast(),
                );
                std::io::Write::write_all(&mut deflater, &body)?;
                put_frame(&deflater.finish()?, COMPRESSED, dst)
            }
        }
    }
}

fn put_frame(body: &[u8], flags: u32, dst: &mut BytesMut) -> Result<(), FrameError> {
    let size = u32::try_from(body.len())
        .ok()
        .filter(|s| s & COMPRESSED == 0)
        .ok_or(FrameError::TooLarge {
            size: body.len(),
            max: (COMPRESSED - 1) as usize,
        })?;
    dst.reserve(4 + body.len());
    dst.put_u32(size | flags);
    dst.put_slice(body);
    Ok(())
}

/// Appends one frame holding `item` to `dst`.
pub fn encode_frame<T: Serialize>(item: &T, dst: &mut BytesMut) -> Result<(), FrameError> {
    let start = dst.len();
    dst.put_u32(0);
    let mut writer = dst.writer();
    serde_json::to_writer(&mut writer, item)?;
    let dst = writer.into_inner();
    let size = dst.len() - start - 4;
    let size32 = u32::try_from(size).map_err(|_| FrameError::TooLarge {
        size,
        max: u32::MAX as usize,
    })?;
    dst[start..start + 4].copy_from_slice(&size32.to_be_bytes());
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::{ClientMsg, EngineMsg};
    use proptest::prelude::*;

    fn frame_of(body: &[u8]) -> BytesMut {
        let mut b = BytesMut::new();
        b.put_u32(body.len() as u32);
        b.put_slice(body);
        b
    }

    #[test]
    fn a_frame_round_trips_and_partial_input_waits_for_more() {
        let mut codec = FrameCodec::<ClientMsg, ClientMsg>::new(1024);
        let mut buf = BytesMut::new();
        codec.encode(ClientMsg::Heartbeat, &mut buf).unwrap();
        codec
            .encode(ClientMsg::Subscribe { after: Some(9) }, &mut buf)
            .unwrap();
        let mut partial = buf.split_to(3);
        assert!(codec.decode(&mut partial).unwrap().is_none());
        partial.unsplit(buf);
        assert_eq!(
            codec.decode(&mut partial).unwrap(),
            Some(ClientMsg::Heartbeat)
        );
        assert_eq!(
            codec.decode(&mut partial).unwrap(),
            Some(ClientMsg::Subscribe { after: Some(9) })
        );
        assert!(partial.is_empty());
    }

    #[test]
    fn an_oversized_frame_is_refused_before_it_is_buffered() {
        let mut codec = FrameCodec::<ClientMsg, ClientMsg>::new(16);
        let mut buf = BytesMut::new();
        buf.put_u32(u32::MAX);
        match codec.decode(&mut buf) {
            Err(FrameError::TooLarge { size, max: 16 }) => {
                assert_eq!(size, !COMPRESSED as usize)
            }
            other => panic!("expected TooLarge, got {other:?}"),
        }
    }

    #[test]
    fn compressed_frames_round_trip_and_are_smaller() {
        let mut codec = FrameCodec::<ClientMsg, ClientMsg>::new(1 << 20).compress_over(64);
        let msg = ClientMsg::Hello {
            versions: vec![1],
            client: "x".repeat(5000),
            user: None,
            password: None,
        };
        let mut buf = BytesMut::new();
        codec.encode(msg.clone(), &mut buf).unwrap();
        assert!(buf.len() < 500, "compressed to {} bytes", buf.len());
        assert_eq!(buf[0] & 0x80, 0x80);
        // A plain decoder reads it too.
        let mut plain = FrameCodec::<ClientMsg, ClientMsg>::new(1 << 20);
        assert_eq!(plain.decode(&mut buf).unwrap(), Some(msg));
    }

    #[test]
    fn a_compressed_frame_cannot_inflate_past_the_limit() {
        let mut big = FrameCodec::<ClientMsg, ClientMsg>::new(1 << 20).compress_over(0);
        let mut buf = BytesMut::new();
        big.encode(
            ClientMsg::Hello {
                versions: vec![1],
                client: "y".repeat(100_000),
                user: None,
                password: None,
            },
            &mut buf,
        )
        .unwrap();
        let mut small = FrameCodec::<ClientMsg, ClientMsg>::new(10_000);
        assert!(matches!(
            small.decode(&mut buf),
            Err(FrameError::TooLarge { .. })
        ));
    }

    #[test]
    fn a_frame_of_garbage_is_malformed() {
        let mut codec = FrameCodec::<ClientMsg, ClientMsg>::new(1024);
        let mut buf = frame_of(b"{\"msg\":\"launch_missiles\"}");
        assert!(matches!(
            codec.decode(&mut buf),
            Err(FrameError::Malformed(_))
        ));
    }

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(2000))]

        /// Random bytes, fed in random chunks, never panic the decoder and
        /// never make it buffer beyond the limit.
        #[test]
        fn decoder_survives_random_bytes(bytes in proptest::collection::vec(any::<u8>(), 0..600),
                                         chunk in 1usize..64) {
            let mut client = FrameCodec::<ClientMsg, ClientMsg>::new(256);
            let mut engine = FrameCodec::<EngineMsg, EngineMsg>::new(256);
            let mut a = BytesMut::new();
            let mut b = BytesMut::new();
            for piece in bytes.chunks(chunk) {
                a.extend_from_slice(piece);
                b.extend_from_slice(piece);
                loop {
                    match client.decode(&mut a) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => { a.clear(); break; }
                    }
                }
                loop {
                    match engine.decode(&mut b) {
                        Ok(Some(_)) => continue,
                        Ok(None) => break,
                        Err(_) => { b.clear(); break; }
                    }
                }
                prop_assert!(a.len() <= 260 + 64);
            }
        }

        /// Well-framed random JSON-ish bodies decode or fail cleanly.
        #[test]
        fn decoder_survives_framed_garbage(body in "\\PC{0,200}") {
            let mut codec = FrameCodec::<EngineMsg, EngineMsg>::new(1024);
            let mut buf = frame_of(body.as_bytes());
            let _ = codec.decode(&mut buf);
        }
    }
}
