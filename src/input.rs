//! Inputs. A JSONL file (or stdin) is one partition of events, read line by
//! line from one reused buffer. The Kafka source lives in the pipeline.

use std::fs::File;
use std::io::{self, Read};
use std::path::Path;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Bytes read from the input at a time (the buffer doubles for a longer line).
const READ_SIZE: usize = 1 << 20;

/// Reads newline-delimited records without allocating or copying per line:
/// each line is a slice of the read buffer, found with `memchr` (SIMD),
/// and only a line cut by the end of a read is moved, to the buffer's start.
pub struct JsonLines {
    reader: Box<dyn Read + Send>,
    /// `buf[pos..filled]` is read and not yet returned; newlines were
    /// searched for up to `scanned`.
    buf: Vec<u8>,
    pos: usize,
    scanned: usize,
    filled: usize,
    eof: bool,
    line_no: u64,
}

impl JsonLines {
    /// Opens a file, or stdin for `-`.
    pub fn open(path: &Path) -> io::Result<Self> {
        let inner: Box<dyn Read + Send> = if path.as_os_str() == "-" {
            Box::new(io::stdin())
        } else {
            Box::new(File::open(path)?)
        };
        Ok(Self::new(inner))
    }

    pub fn new(inner: impl Read + Send + 'static) -> Self {
        JsonLines {
            reader: Box::new(inner),
            buf: vec![0; READ_SIZE],
            pos: 0,
            scanned: 0,
            filled: 0,
            eof: false,
            line_no: 0,
        }
    }

    /// The next line without its line ending, and its 1-based number.
    /// Blank lines are skipped (they carry no event and are not counted).
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            let Some((line_start, line_end)) = self.next_raw()? else {
                return Ok(None);
            };
            self.line_no += 1;
            let line = &self.buf[line_start..line_end];
            // `\r\n` endings (the `\n` is not part of the line).
            let mut end = line.len();
            while end > 0 && line[end - 1] == b'\r' {
                end -= 1;
            }
            // A UTF-8 byte order mark opening the file is not part of the
            // first record.
            let start = if self.line_no == 1 && line.starts_with(UTF8_BOM) {
                UTF8_BOM.len().min(end)
            } else {
                0
            };
            if line[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            let (start, end) = (line_start + start, line_start + end);
            return Ok(Some((self.line_no, &self.buf[start..end])));
        }
    }

    /// Where the next line (without its `\n`) is in `buf`, reading more
    /// input as needed; the last line may lack its `\n`.
    fn next_raw(&mut self) -> io::Result<Option<(usize, usize)>> {
        loop {
            if let Some(j) = memchr::memchr(b'\n', &self.buf[self.scanned..self.filled]) {
                let (start, end) = (self.pos, self.scanned + j);
                self.pos = end + 1;
                self.scanned = self.pos;
                return Ok(Some((start, end)));
            }
            self.scanned = self.filled;
            if self.eof {
                if self.pos == self.filled {
                    return Ok(None);
                }
                let start = self.pos;
                self.pos = self.filled;
                return Ok(Some((start, self.filled)));
            }
            // Keep the unfinished line: move it to the start, or make room.
            if self.pos > 0 {
                self.buf.copy_within(self.pos..self.filled, 0);
                self.filled -= self.pos;
                self.scanned -= self.pos;
                self.pos = 0;
            }
            if self.buf.len() - self.filled < READ_SIZE / 2 {
                self.buf.resize(self.buf.len() * 2, 0);
            }
            match self.reader.read(&mut self.buf[self.filled..]) {
                Ok(0) => self.eof = true,
                Ok(n) => self.filled += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(e),
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn skips_a_leading_bom_and_blank_lines() {
        let data = b"\xEF\xBB\xBF{\"a\":1}\r\n\n  \n\xEF\xBB\xBF{\"b\":2}\n".to_vec();
        let mut lines = JsonLines::new(std::io::Cursor::new(data));
        assert_eq!(lines.next_line().unwrap(), Some((1, &b"{\"a\":1}"[..])));
        // Only the file's first bytes are a BOM; later ones are data.
        assert_eq!(
            lines.next_line().unwrap(),
            Some((4, &b"\xEF\xBB\xBF{\"b\":2}"[..]))
        );
        assert_eq!(lines.next_line().unwrap(), None);
    }

    /// A reader that hands out its data a few bytes at a time.
    struct Trickle {
        data: Vec<u8>,
        at: usize,
        sizes: Vec<usize>,
    }

    impl Read for Trickle {
        fn read(&mut self, out: &mut [u8]) -> io::Result<usize> {
            let size = self.sizes[self.at % self.sizes.len()].max(1);
            let n = size.min(out.len()).min(self.data.len() - self.at);
            out[..n].copy_from_slice(&self.data[self.at..self.at + n]);
            self.at += n;
            Ok(n)
        }
    }

    /// What `next_line` must return, from the whole input at once.
    fn expected(data: &[u8]) -> Vec<(u64, Vec<u8>)> {
        let mut lines: Vec<&[u8]> = data.split(|&c| c == b'\n').collect();
        if data.ends_with(b"\n") || data.is_empty() {
            lines.pop(); // after the last newline: no line
        }
        let mut out = Vec::new();
        for (i, line) in lines.into_iter().enumerate() {
            let mut line = line;
            while let Some(rest) = line.strip_suffix(b"\r") {
                line = rest;
            }
            if i == 0 {
                line = line.strip_prefix(UTF8_BOM).unwrap_or(line);
            }
            if !line.iter().all(u8::is_ascii_whitespace) {
                out.push((i as u64 + 1, line.to_vec()));
            }
        }
        out
    }

    fn read_all(lines: &mut JsonLines) -> Vec<(u64, Vec<u8>)> {
        let mut out = Vec::new();
        while let Some((n, line)) = lines.next_line().unwrap() {
            out.push((n, line.to_vec()));
        }
        out
    }

    proptest::proptest! {
        /// However the input arrives, the lines are those of the whole.
        #[test]
        fn lines_do_not_depend_on_read_sizes(
            data in proptest::collection::vec(proptest::sample::select(
                b"ab{}\"\n\n\r \t\xEF\xBB\xBF".to_vec()), 0..300),
            sizes in proptest::collection::vec(1usize..40, 1..8),
        ) {
            let want = expected(&data);
            let mut lines = JsonLines::new(Trickle { data, at: 0, sizes });
            proptest::prop_assert_eq!(read_all(&mut lines), want);
        }
    }

    #[test]
    fn a_line_longer_than_the_buffer_is_one_line() {
        let long = vec![b'x'; READ_SIZE * 5 / 2];
        let mut data = b"{}\n".to_vec();
        data.extend_from_slice(&long);
        data.extend_from_slice(b"\r\n{\"a\":1}");
        let mut lines = JsonLines::new(std::io::Cursor::new(data));
        assert_eq!(
            read_all(&mut lines),
            vec![(1, b"{}".to_vec()), (2, long), (3, b"{\"a\":1}".to_vec())]
        );
    }
}
