//! A borrowed bencode tree for KRPC messages, and a tiny writer.
//!
//! [`parse`] runs only on input that [`crate::bencode::scan`] has accepted under
//! [`krpc::LIMITS`](super::krpc::LIMITS), so its recursion depth, the number of nodes it
//! allocates and every string length are already bounded and checked; it still returns
//! `None` rather than panic on anything unexpected.

use std::ops::Range;

use crate::bencode::{self, BencodeError, Limits};

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Value<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List(Vec<Value<'a>>),
    Dict(Vec<(&'a [u8], Value<'a>)>),
}

impl<'a> Value<'a> {
    pub fn get(&self, key: &[u8]) -> Option<&Value<'a>> {
        match self {
            Value::Dict(entries) => entries.iter().find(|(k, _)| *k == key).map(|(_, v)| v),
            _ => None,
        }
    }

    pub fn bytes(&self) -> Option<&'a [u8]> {
        match self {
            Value::Bytes(b) => Some(b),
            _ => None,
        }
    }

    pub fn int(&self) -> Option<i64> {
        match self {
            Value::Int(i) => Some(*i),
            _ => None,
        }
    }
}

/// Scans `input` under `limits`, then builds its tree.
pub fn parse(input: &[u8], limits: Limits) -> Result<Value<'_>, BencodeError> {
    bencode::scan(input, limits)?;
    let mut pos = 0;
    // The scan accepted the input, so a failure here would be a bug in one of the two;
    // report it as malformed input rather than panic.
    parse_at(input, &mut pos, limits.max_depth).ok_or(BencodeError::Truncated { offset: pos })
}

fn parse_at<'a>(input: &'a [u8], pos: &mut usize, depth: usize) -> Option<Value<'a>> {
    match *input.get(*pos)? {
        b'i' => {
            let end = *pos + input.get(*pos..)?.iter().position(|&b| b == b'e')?;
            let n = std::str::from_utf8(input.get(*pos + 1..end)?)
                .ok()?
                .parse()
                .ok()?;
            *pos = end + 1;
            Some(Value::Int(n))
        }
        b'0'..=b'9' => {
            let r = string_span(input, *pos)?;
            *pos = r.end;
            Some(Value::Bytes(&input[r]))
        }
        b'l' => {
            *pos += 1;
            let mut items = Vec::new();
            while *input.get(*pos)? != b'e' {
                items.push(parse_at(input, pos, depth.checked_sub(1)?)?);
            }
            *pos += 1;
            Some(Value::List(items))
        }
        b'd' => {
            *pos += 1;
            let mut entries = Vec::new();
            while *input.get(*pos)? != b'e' {
                let k = string_span(input, *pos)?;
                *pos = k.end;
                let v = parse_at(input, pos, depth.checked_sub(1)?)?;
                entries.push((&input[k], v));
            }
            *pos += 1;
            Some(Value::Dict(entries))
        }
        _ => None,
    }
}

fn string_span(input: &[u8], pos: usize) -> Option<Range<usize>> {
    let colon = pos + input.get(pos..)?.iter().take(21).position(|&b| b == b':')?;
    let len: usize = std::str::from_utf8(input.get(pos..colon)?)
        .ok()?
        .parse()
        .ok()?;
    let start = colon + 1;
    let end = start.checked_add(len)?;
    (end <= input.len()).then_some(start..end)
}

/// Appends bencode to a buffer. Callers write dictionary keys in sorted order.
pub struct Writer(pub Vec<u8>);

impl Writer {
    pub fn new() -> Writer {
        Writer(Vec::with_capacity(256))
    }
    pub fn bytes(&mut self, b: &[u8]) -> &mut Self {
        self.0.extend_from_slice(b.len().to_string().as_bytes());
        self.0.push(b':');
        self.0.extend_from_slice(b);
        self
    }
    pub fn int(&mut self, i: i64) -> &mut Self {
        self.0.push(b'i');
        self.0.extend_from_slice(i.to_string().as_bytes());
        self.0.push(b'e');
        self
    }
    /// `key` then a byte string.
    pub fn kb(&mut self, key: &[u8], b: &[u8]) -> &mut Self {
        self.bytes(key).bytes(b)
    }
    /// `key` then an integer.
    pub fn ki(&mut self, key: &[u8], i: i64) -> &mut Self {
        self.bytes(key).int(i)
    }
    pub fn open_dict(&mut self) -> &mut Self {
        self.0.push(b'd');
        self
    }
    pub fn open_list(&mut self) -> &mut Self {
        self.0.push(b'l');
        self
    }
    pub fn close(&mut self) -> &mut Self {
        self.0.push(b'e');
        self
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_nested_values() {
        let v = parse(b"d1:ad2:idi5ee1:ll1:xi-3eee", Limits::MESSAGE).unwrap();
        assert_eq!(
            v.get(b"a").and_then(|a| a.get(b"id")).and_then(Value::int),
            Some(5)
        );
        assert_eq!(
            v.get(b"l"),
            Some(&Value::List(vec![Value::Bytes(b"x"), Value::Int(-3)]))
        );
    }

    #[test]
    fn rejects_what_the_scan_rejects() {
        for bad in [&b"d1:a"[..], b"i01e", b"d1:ai1e1:ai2ee", b"le0"] {
            assert!(parse(bad, Limits::MESSAGE).is_err(), "{bad:?}");
        }
    }
}
