//! Raw deflate, written piece by piece: how a snapshot's text is compressed once for every
//! gzip scrape, and the gzip header those scrapes start with.

use flate2::{Compress, CompressError, Compression, FlushCompress, Status};

/// A gzip member header: deflate, no flags, no mtime, unknown OS.
pub(in crate::metrics) const GZIP_HEADER: [u8; 10] = [0x1f, 0x8b, 8, 0, 0, 0, 0, 0, 0, 0xff];

/// Raw deflate over input given piece by piece.
pub(super) struct Deflater {
    compress: Compress,
    out: Vec<u8>,
}

impl Deflater {
    pub(super) fn new(level: Compression) -> Deflater {
        Deflater {
            compress: Compress::new(level, false),
            out: Vec::with_capacity(64 * 1024),
        }
    }

    /// Compresses `data`; `flush` ends it with a sync flush (more blocks may follow) or a
    /// final block.
    pub(super) fn push(&mut self, data: &[u8], flush: FlushCompress) -> Result<(), CompressError> {
        let start = self.compress.total_in();
        loop {
            if self.out.capacity() - self.out.len() < 1024 {
                self.out.reserve(self.out.capacity() / 2 + 4096);
            }
            let consumed = (self.compress.total_in() - start) as usize;
            let status = self
                .compress
                .compress_vec(&data[consumed..], &mut self.out, flush)?;
            let all_in = (self.compress.total_in() - start) as usize == data.len();
            let room_left = self.out.len() < self.out.capacity();
            match status {
                Status::StreamEnd => return Ok(()),
                _ if all_in && room_left => return Ok(()),
                _ => {}
            }
        }
    }

    /// The compressed bytes, trimmed to their length.
    pub(super) fn finish(mut self) -> Vec<u8> {
        self.out.shrink_to_fit();
        self.out
    }
}

/// Compresses the concatenation of `data` into raw deflate blocks; with `finish` the last
/// block is final, otherwise the output ends with a sync flush so that more blocks can follow.
pub(in crate::metrics) fn deflate_raw(
    data: &[&[u8]],
    level: Compression,
    finish: bool,
) -> Result<Vec<u8>, CompressError> {
    let mut deflater = Deflater::new(level);
    for chunk in data {
        deflater.push(chunk, FlushCompress::None)?;
    }
    let flush = if finish {
        FlushCompress::Finish
    } else {
        FlushCompress::Sync
    };
    deflater.push(&[], flush)?;
    Ok(deflater.finish())
}
