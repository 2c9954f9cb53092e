//! A strict parser of `.npy` headers (format versions 1.0, 2.0 and 3.0).
//!
//! Layout: `\x93NUMPY`, major and minor version bytes, the header length (`u16` little
//! endian in version 1, `u32` in versions 2 and 3), then a Python dict literal
//! `{'descr': '<f8', 'fortran_order': False, 'shape': (3, 4), }` padded with spaces and
//! ended by a newline. Nothing here allocates more than the header's own length.

use crate::error::{DataError, Result};
use std::path::PathBuf;

const MAGIC: &[u8] = b"\x93NUMPY";

fn bad(reason: impl Into<String>) -> DataError {
    DataError::NpyHeader { path: PathBuf::new(), reason: reason.into() }
}

/// An element type the reader converts to `f64`.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Dtype {
    kind: u8,
    pub(crate) size: usize,
    big_endian: bool,
}

impl Dtype {
    fn parse(descr: &str) -> Result<Self> {
        let unsupported =
            || DataError::UnsupportedDtype { path: PathBuf::new(), dtype: descr.chars().take(32).collect() };
        let b = descr.as_bytes();
        if b.len() < 3 {
            return Err(unsupported());
        }
        let big_endian = match b[0] {
            b'<' | b'=' | b'|' => false,
            b'>' => true,
            _ => return Err(unsupported()),
        };
        let dt = Self { kind: b[1], size: descr[2..].parse().map_err(|_| unsupported())?, big_endian };
        match (dt.kind, dt.size) {
            (b'f', 4 | 8) | (b'i', 4 | 8) | (b'u', 1) => Ok(dt),
            _ => Err(unsupported()),
        }
    }

    /// The value of one element (`bytes.len() == size`).
    pub(crate) fn decode(self, bytes: &[u8]) -> f64 {
        let mut a = [0u8; 8];
        a[..self.size].copy_from_slice(bytes);
        if self.big_endian {
            a[..self.size].reverse();
        }
        let (w4, w8) = ([a[0], a[1], a[2], a[3]], a);
        match (self.kind, self.size) {
            (b'f', 8) => f64::from_le_bytes(w8),
            (b'f', _) => f64::from(f32::from_le_bytes(w4)),
            (b'i', 8) => i64::from_le_bytes(w8) as f64,
            (b'i', _) => f64::from(i32::from_le_bytes(w4)),
            _ => f64::from(a[0]),
        }
    }
}

/// A parsed header.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct Header {
    pub(crate) dtype: Dtype,
    pub(crate) fortran_order: bool,
    pub(crate) shape: Vec<u64>,
    /// Offset of the first data byte.
    pub(crate) body_start: usize,
}

impl Header {
    pub(crate) fn parse(bytes: &[u8]) -> Result<Self> {
        if bytes.len() < 10 || &bytes[..6] != MAGIC {
            return Err(bad("not a .npy file (bad magic string or shorter than 10 bytes)"));
        }
        let (len, start): (usize, usize) = match bytes[6] {
            1 => (usize::from(u16::from_le_bytes([bytes[8], bytes[9]])), 10),
            2 | 3 if bytes.len() >= 12 => (u32::from_le_bytes([bytes[8], bytes[9], bytes[10], bytes[11]]) as usize, 12),
            2 | 3 => return Err(bad("truncated header length")),
            v => return Err(bad(format!("unsupported format version {v}"))),
        };
        let end = start.checked_add(len).filter(|&e| e <= bytes.len()).ok_or_else(|| bad("truncated header"))?;
        let text = std::str::from_utf8(&bytes[start..end]).map_err(|_| bad("header is not UTF-8"))?;
        let mut p = DictParser { s: text.as_bytes(), i: 0 };
        let (descr, fortran_order, shape) = p.dict()?;
        Ok(Self { dtype: Dtype::parse(&descr)?, fortran_order, shape, body_start: end })
    }
}

/// Recursive-descent parser of the header's dict literal.
struct DictParser<'a> {
    s: &'a [u8],
    i: usize,
}

impl DictParser<'_> {
    fn ws(&mut self) {
        while self.i < self.s.len() && self.s[self.i].is_ascii_whitespace() {
            self.i += 1;
        }
    }
    fn eat(&mut self, c: u8) -> bool {
        self.ws();
        let hit = self.s.get(self.i) == Some(&c);
        self.i += usize::from(hit);
        hit
    }
    fn expect(&mut self, c: u8) -> Result<()> {
        if self.eat(c) {
            Ok(())
        } else {
            Err(bad(format!("expected '{}' at byte {} of the header", c as char, self.i)))
        }
    }
    fn string(&mut self) -> Result<String> {
        self.ws();
        let q = *self.s.get(self.i).ok_or_else(|| bad("header ends inside the dict"))?;
        if q != b'\'' && q != b'"' {
            return Err(bad(format!("expected a quoted string at byte {}", self.i)));
        }
        let rest = &self.s[self.i + 1..];
        let n = rest.iter().position(|&c| c == q).ok_or_else(|| bad("unterminated string"))?;
        self.i += n + 2;
        Ok(String::from_utf8_lossy(&rest[..n]).into_owned())
    }
    fn word(&mut self) -> &[u8] {
        self.ws();
        let start = self.i;
        while self.i < self.s.len() && self.s[self.i].is_ascii_alphanumeric() {
            self.i += 1;
        }
        &self.s[start..self.i]
    }
    fn boolean(&mut self) -> Result<bool> {
        match self.word() {
            b"True" => Ok(true),
            b"False" => Ok(false),
            _ => Err(bad("fortran_order must be True or False")),
        }
    }
    fn shape(&mut self) -> Result<Vec<u64>> {
        self.expect(b'(')?;
        let mut dims = Vec::new();
        while !self.eat(b')') {
            if dims.len() >= 32 {
                return Err(bad("more than 32 dimensions"));
            }
            let w = std::str::from_utf8(self.word()).unwrap_or_default();
            dims.push(w.trim_end_matches('L').parse::<u64>().map_err(|_| bad(format!("bad shape entry '{w}'")))?);
            if !self.eat(b',') {
                self.expect(b')')?;
                break;
            }
        }
        Ok(dims)
    }
    fn dict(&mut self) -> Result<(String, bool, Vec<u64>)> {
        self.expect(b'{')?;
        let (mut descr, mut fortran, mut shape) = (None, None, None);
        while !self.eat(b'}') {
            let key = self.string()?;
            self.expect(b':')?;
            match key.as_str() {
                "descr" => descr = Some(self.string()?),
                "fortran_order" => fortran = Some(self.boolean()?),
                "shape" => shape = Some(self.shape()?),
                other => {
                    return Err(bad(format!("unknown header key '{}'", other.chars().take(32).collect::<String>())))
                }
            }
            if !self.eat(b',') {
                self.expect(b'}')?;
                break;
            }
        }
        match (descr, fortran, shape) {
            (Some(d), Some(f), Some(s)) => Ok((d, f, s)),
            _ => Err(bad("header lacks one of descr, fortran_order, shape")),
        }
    }
}
