//! Length-prefixed byte frames for `/baton/rpc/1`: a u32 big-endian length, then
//! that many bytes. Requests and responses share the format and the size limit.

use std::io;

use futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};
use libp2p::{StreamProtocol, request_response};

/// The one protocol baton speaks between members.
pub(crate) const PROTOCOL: StreamProtocol = StreamProtocol::new("/baton/rpc/1");

/// Most bytes reserved before any payload has arrived, so a peer that announces
/// a large frame and then stalls cannot make us allocate the whole frame.
const INITIAL_CAPACITY: usize = 64 * 1024;

/// Reads and writes frames of at most `max_message_bytes`.
#[derive(Debug, Clone)]
pub(crate) struct FrameCodec {
    max_message_bytes: usize,
}

impl FrameCodec {
    pub(crate) fn new(max_message_bytes: usize) -> Self {
        Self { max_message_bytes }
    }

    async fn read_frame<T>(&self, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        let mut prefix = [0u8; 4];
        io.read_exact(&mut prefix).await?;
        let len = u64::from(u32::from_be_bytes(prefix));
        if len > self.max_message_bytes as u64 {
            return Err(too_large(len, self.max_message_bytes));
        }
        // `len` fits in usize: it is at most max_message_bytes.
        let mut frame = Vec::with_capacity(INITIAL_CAPACITY.min(len as usize));
        io.take(len).read_to_end(&mut frame).await?;
        if frame.len() as u64 != len {
            return Err(io::Error::new(
                io::ErrorKind::UnexpectedEof,
                format!("frame ended after {} of {len} bytes", frame.len()),
            ));
        }
        Ok(frame)
    }

    async fn write_frame<T>(&self, io: &mut T, frame: &[u8]) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let len = frame.len();
        if len > self.max_message_bytes {
            return Err(too_large(len as u64, self.max_message_bytes));
        }
        let prefix = u32::try_from(len)
            .map_err(|_| too_large(len as u64, self.max_message_bytes))?
            .to_be_bytes();
        io.write_all(&prefix).await?;
        io.write_all(frame).await
    }
}

fn too_large(len: u64, max: usize) -> io::Error {
    io::Error::new(
        io::ErrorKind::InvalidData,
        format!("frame of {len} bytes exceeds the {max}-byte limit"),
    )
}

impl request_response::Codec for FrameCodec {
    type Protocol = StreamProtocol;
    type Request = Vec<u8>;
    type Response = Vec<u8>;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io).await
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Vec<u8>>
    where
        T: AsyncRead + Unpin + Send,
    {
        self.read_frame(io).await
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        request: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame(io, &request).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        response: Vec<u8>,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        self.write_frame(io, &response).await
    }
}

#[cfg(test)]
mod tests {
    use futures::io::Cursor;

    use super::*;

    fn read(codec: &FrameCodec, bytes: Vec<u8>) -> io::Result<Vec<u8>> {
        futures::executor::block_on(codec.read_frame(&mut Cursor::new(bytes)))
    }

    #[test]
    fn frame_round_trips() -> io::Result<()> {
        let codec = FrameCodec::new(16);
        let mut wire = Cursor::new(Vec::new());
        futures::executor::block_on(codec.write_frame(&mut wire, b"raft"))?;
        assert_eq!(wire.get_ref(), &[0, 0, 0, 4, b'r', b'a', b'f', b't']);
        assert_eq!(read(&codec, wire.into_inner())?, b"raft");
        Ok(())
    }

    /// A peer-controlled length prefix must be checked before anything is allocated.
    #[test]
    fn oversize_prefix_is_rejected_before_reading_the_body() {
        let codec = FrameCodec::new(16);
        let err = read(&codec, u32::MAX.to_be_bytes().to_vec()).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
    }

    #[test]
    fn truncated_frame_is_an_error() {
        let codec = FrameCodec::new(16);
        let err = read(&codec, vec![0, 0, 0, 8, 1, 2]).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::UnexpectedEof));
        let err = read(&codec, vec![0, 0]).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::UnexpectedEof));
    }

    #[test]
    fn oversize_write_is_refused() {
        let codec = FrameCodec::new(3);
        let mut wire = Cursor::new(Vec::new());
        let err = futures::executor::block_on(codec.write_frame(&mut wire, b"raft")).err();
        assert_eq!(err.map(|e| e.kind()), Some(io::ErrorKind::InvalidData));
        assert!(wire.get_ref().is_empty(), "nothing may reach the wire");
    }
}
