//! Sequential frame scanning over one segment file, shared by recovery and readers.
//!
//! A [`Scanner`] keeps a read window over a file and decodes the frame at an offset, turning
//! the format's rules for the space between frames into steps: zero bytes at an offset that
//! is not block-aligned are flush padding (skip to the next block); zero bytes at a block
//! boundary, a stale frame, or the limit end the segment's data.

use std::sync::Arc;

use segment_format::{
    align_up, decode_frame, DecodeError, Frame, Position, SegmentId, BLOCK_BYTES,
    FRAME_ALIGN_BYTES, FRAME_HEADER_BYTES,
};

use super::disk::DiskRead;
use super::WalError;

const WINDOW_BYTES: usize = 256 * 1024;

pub(crate) enum Step {
    Frame(Frame),
    /// Padding: continue at this offset.
    Skip(u64),
    /// No more data in this segment (up to the limit).
    End,
    /// Bytes at this offset are not a valid frame.
    Invalid(DecodeError),
}

/// Zero bytes where a frame could start: a frame's bytes 4..6 are its non-zero magic, so
/// [`FRAME_ALIGN_BYTES`] zero bytes are padding up to the next block boundary.
fn starts_padding(buf: &[u8]) -> bool {
    buf.len() >= FRAME_ALIGN_BYTES && buf[..FRAME_ALIGN_BYTES].iter().all(|&b| b == 0)
}

#[derive(Debug)]
pub(crate) struct Scanner {
    reader: Arc<dyn DiskRead>,
    name: String,
    segment_id: SegmentId,
    window_start: u64,
    window: Vec<u8>,
}

impl Scanner {
    pub fn new(reader: Arc<dyn DiskRead>, name: String, segment_id: SegmentId) -> Scanner {
        Scanner { reader, name, segment_id, window_start: 0, window: Vec::new() }
    }

    /// Drops the read window (after the file changed underneath it).
    pub fn invalidate(&mut self) {
        self.window.clear();
        self.window_start = 0;
    }

    /// Bytes from `offset` up to `limit`, at least `need` of them if the file has them.
    fn bytes(&mut self, offset: u64, need: usize, limit: u64) -> Result<&[u8], WalError> {
        let want_end = (offset + need as u64).min(limit);
        let have_end = self.window_start + self.window.len() as u64;
        if offset < self.window_start || want_end > have_end {
            let len = (need.max(WINDOW_BYTES) as u64).min(limit.saturating_sub(offset)) as usize;
            self.window.resize(len, 0);
            let n = self
                .reader
                .read_at(&self.name, offset, &mut self.window)
                .map_err(|e| WalError::io("read segment", &e))?;
            self.window.truncate(n);
            self.window_start = offset;
        }
        let from = (offset - self.window_start) as usize;
        let to = ((limit - self.window_start) as usize).min(self.window.len());
        Ok(&self.window[from.min(to)..to])
    }

    /// Decodes what is at `offset`, reading no byte at or past `limit`.
    pub fn step(&mut self, offset: u64, limit: u64) -> Result<Step, WalError> {
        if offset >= limit {
            return Ok(Step::End);
        }
        let at = Position { segment_id: self.segment_id, offset };
        let mut need = FRAME_HEADER_BYTES;
        loop {
            let buf = self.bytes(offset, need, limit)?;
            let available = buf.len();
            if offset % BLOCK_BYTES as u64 != 0 && starts_padding(buf) {
                return Ok(Step::Skip(align_up(offset, BLOCK_BYTES as u64).min(limit)));
            }
            return Ok(match decode_frame(buf, at) {
                Ok(f) => Step::Frame(f),
                Err(DecodeError::Torn { needed_bytes, .. })
                    if needed_bytes as usize > available
                        && offset + needed_bytes <= limit
                        && needed_bytes as usize > need =>
                {
                    need = needed_bytes as usize;
                    continue;
                }
                Err(DecodeError::Zeroed) => {
                    if offset % BLOCK_BYTES as u64 == 0 {
                        Step::End
                    } else {
                        Step::Skip(align_up(offset, BLOCK_BYTES as u64).min(limit))
                    }
                }
                Err(DecodeError::Stale { .. }) => Step::End,
                Err(e) => Step::Invalid(e),
            });
        }
    }
}
