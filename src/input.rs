//! Inputs. A JSONL file (or stdin) is one partition of events, read line by
//! line into a reused buffer. The Kafka source lives in the pipeline.

use std::fs::File;
use std::io::{self, BufRead, BufReader, Read};
use std::path::Path;

const UTF8_BOM: &[u8] = b"\xEF\xBB\xBF";

/// Reads newline-delimited records without allocating per line.
pub struct JsonLines {
    reader: Box<dyn BufRead + Send>,
    buf: Vec<u8>,
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
            reader: Box::new(BufReader::with_capacity(1 << 20, inner)),
            buf: Vec::with_capacity(4096),
            line_no: 0,
        }
    }

    /// The next line without its line ending, and its 1-based number.
    /// Blank lines are skipped (they carry no event and are not counted).
    pub fn next_line(&mut self) -> io::Result<Option<(u64, &[u8])>> {
        loop {
            self.buf.clear();
            if self.reader.read_until(b'\n', &mut self.buf)? == 0 {
                return Ok(None);
            }
            self.line_no += 1;
            let mut end = self.buf.len();
            while end > 0 && matches!(self.buf[end - 1], b'\n' | b'\r') {
                end -= 1;
            }
            // A UTF-8 byte order mark opening the file is not part of the
            // first record.
            let start = if self.line_no == 1 && self.buf.starts_with(UTF8_BOM) {
                UTF8_BOM.len().min(end)
            } else {
                0
            };
            if self.buf[start..end].iter().all(u8::is_ascii_whitespace) {
                continue;
            }
            return Ok(Some((self.line_no, &self.buf[start..end])));
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
}
