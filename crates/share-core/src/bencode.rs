//! A strict, non-recursive bencode validator.
//!
//! Every byte string that comes from outside (a .torrent file, a tracker reply, an extension
//! message) passes [`scan`] before serde_bencode or any other code sees it. serde_bencode on
//! its own recurses without limit, accepts non-canonical integers and trailing bytes, and keeps
//! no byte spans; this pass fixes all four:
//!
//! - nesting depth, token count and input size are bounded by [`Limits`];
//! - integers must be canonical (`i0e`, no leading zeros, no `-0`) and fit an `i64`;
//! - string lengths are canonical and checked against the bytes that remain before use;
//! - exactly one value, nothing after it;
//! - dictionary keys are byte strings and never repeat. Keys out of order are accepted (real
//!   torrents have them), which is why a torrent's info-hash is always taken over the raw span;
//! - for a top-level dictionary, the span of each value is kept, so that callers can hash the
//!   exact bytes of `info`.

use std::ops::Range;

pub mod tokens;

/// Bounds applied while scanning.
#[derive(Debug, Clone, Copy)]
pub struct Limits {
    /// Deepest nesting of lists and dictionaries.
    pub max_depth: usize,
    /// Most values (integers, strings, lists, dictionaries) in the whole input.
    pub max_tokens: usize,
    /// Largest input accepted, in bytes.
    pub max_len: usize,
}

impl Limits {
    /// Limits for a .torrent file: generous for any real torrent, far below what hurts.
    pub const TORRENT: Limits = Limits {
        max_depth: 64,
        max_tokens: 4_000_000,
        max_len: 64 << 20,
    };
    /// Limits for small messages from the network (tracker replies, extension messages).
    pub const MESSAGE: Limits = Limits {
        max_depth: 32,
        max_tokens: 200_000,
        max_len: 4 << 20,
    };
}

/// Why an input is not acceptable bencode.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum BencodeError {
    #[error("input is empty")]
    Empty,
    #[error("input is {len} bytes, more than the limit of {max}")]
    TooLarge { len: usize, max: usize },
    #[error("input ends too early (at byte {offset})")]
    Truncated { offset: usize },
    #[error("unexpected byte 0x{byte:02x} at byte {offset}")]
    UnexpectedByte { offset: usize, byte: u8 },
    #[error("integer at byte {offset} is not in canonical form")]
    NonCanonicalInteger { offset: usize },
    #[error("integer at byte {offset} does not fit in 64 bits")]
    IntegerOutOfRange { offset: usize },
    #[error("string length at byte {offset} is malformed or longer than the input")]
    BadStringLength { offset: usize },
    #[error("nesting deeper than {max} levels at byte {offset}")]
    TooDeep { offset: usize, max: usize },
    #[error("more than {max} values")]
    TooManyTokens { max: usize },
    #[error("dictionary key at byte {offset} is not a byte string")]
    KeyNotString { offset: usize },
    #[error("dictionary key {key:?} appears twice")]
    DuplicateKey { key: String },
    #[error("{count} unexpected bytes after the end of the value (at byte {offset})")]
    TrailingBytes { offset: usize, count: usize },
}

/// What a successful scan learned about the input.
#[derive(Debug, Clone, Default)]
pub struct Scan {
    /// When the input is a dictionary: each key and the byte span of its value, in file order.
    pub top_level: Vec<(Range<usize>, Range<usize>)>,
    /// Whether the input is a dictionary.
    pub is_dict: bool,
}

impl Scan {
    /// The span of the value of top-level key `key`, if the input is a dictionary holding it.
    pub fn value_span(&self, input: &[u8], key: &[u8]) -> Option<Range<usize>> {
        self.top_level
            .iter()
            .find(|(k, _)| &input[k.clone()] == key)
            .map(|(_, v)| v.clone())
    }
}

enum Frame<'a> {
    List,
    Dict {
        /// Keys seen in this dictionary, checked for repeats when the dictionary closes.
        keys: Vec<&'a [u8]>,
        sorted: bool,
        /// True when the next value is a key.
        want_key: bool,
    },
}

/// Validates `input` as exactly one bencoded value within `limits`.
pub fn scan(input: &[u8], limits: Limits) -> Result<Scan, BencodeError> {
    let (out, pos) = scan_value(input, limits)?;
    if pos != input.len() {
        return Err(BencodeError::TrailingBytes {
            offset: pos,
            count: input.len() - pos,
        });
    }
    Ok(out)
}

/// Scans the one value at the front of `input`, which may be followed by other bytes (a
/// BEP 9 `data` message is a dictionary followed by raw bytes); returns the scan and where
/// the value ends.
pub fn scan_prefix(input: &[u8], limits: Limits) -> Result<(Scan, usize), BencodeError> {
    scan_value(input, limits)
}

fn scan_value(input: &[u8], limits: Limits) -> Result<(Scan, usize), BencodeError> {
    if input.is_empty() {
        return Err(BencodeError::Empty);
    }
    if input.len() > limits.max_len {
        return Err(BencodeError::TooLarge {
            len: input.len(),
            max: limits.max_len,
        });
    }
    let mut out = Scan {
        is_dict: input[0] == b'd',
        ..Scan::default()
    };
    let mut stack: Vec<Frame> = Vec::new();
    let mut pos = 0usize;
    let mut tokens = 0usize;
    // While a value of the top-level dictionary is being read: its key and where it starts.
    let mut pending: Option<(Range<usize>, usize)> = None;

    loop {
        let at = pos;
        let byte = *input
            .get(pos)
            .ok_or(BencodeError::Truncated { offset: pos })?;

        // A closing `e` for the innermost container.
        if byte == b'e' && !stack.is_empty() {
            if let Some(Frame::Dict {
                keys,
                sorted,
                want_key,
            }) = stack.last_mut()
            {
                if !*want_key {
                    return Err(BencodeError::UnexpectedByte { offset: at, byte });
                }
                if !*sorted {
                    keys.sort_unstable();
                    if let Some(w) = keys.windows(2).find(|w| w[0] == w[1]) {
                        return Err(BencodeError::DuplicateKey {
                            key: String::from_utf8_lossy(w[0]).into_owned(),
                        });
                    }
                }
            }
            stack.pop();
            pos += 1;
            if stack.is_empty() {
                break;
            }
            finish_value(&mut stack, &mut pending, &mut out, pos);
            continue;
        }

        tokens += 1;
        if tokens > limits.max_tokens {
            return Err(BencodeError::TooManyTokens {
                max: limits.max_tokens,
            });
        }
        let in_key_position = matches!(stack.last(), Some(Frame::Dict { want_key: true, .. }));
        if in_key_position && !byte.is_ascii_digit() {
            return Err(BencodeError::KeyNotString { offset: at });
        }

        match byte {
            b'i' => pos = scan_int(input, pos)?,
            b'0'..=b'9' => {
                let (start, end) = scan_str(input, pos)?;
                pos = end;
                if in_key_position {
                    if let Some(Frame::Dict {
                        keys,
                        sorted,
                        want_key,
                    }) = stack.last_mut()
                    {
                        let key = &input[start..end];
                        if let Some(prev) = keys.last() {
                            if *prev == key {
                                return Err(BencodeError::DuplicateKey {
                                    key: String::from_utf8_lossy(key).into_owned(),
                                });
                            }
                            if *prev > key {
                                *sorted = false;
                            }
                        }
                        keys.push(key);
                        *want_key = false;
                        if stack.len() == 1 {
                            pending = Some((start..end, end));
                        }
                        continue;
                    }
                }
            }
            b'l' | b'd' => {
                if stack.len() >= limits.max_depth {
                    return Err(BencodeError::TooDeep {
                        offset: at,
                        max: limits.max_depth,
                    });
                }
                stack.push(if byte == b'l' {
                    Frame::List
                } else {
                    Frame::Dict {
                        keys: Vec::new(),
                        sorted: true,
                        want_key: true,
                    }
                });
                pos += 1;
                continue;
            }
            _ => return Err(BencodeError::UnexpectedByte { offset: at, byte }),
        }

        // A complete scalar value was read (not a key).
        if stack.is_empty() {
            break;
        }
        finish_value(&mut stack, &mut pending, &mut out, pos);
    }
    Ok((out, pos))
}

/// A value ended at `pos` inside the innermost container: a dictionary now wants a key, and a
/// value of the top-level dictionary has its span recorded.
fn finish_value(
    stack: &mut [Frame],
    pending: &mut Option<(Range<usize>, usize)>,
    out: &mut Scan,
    pos: usize,
) {
    if stack.len() == 1 {
        if let Some((key, start)) = pending.take() {
            out.top_level.push((key, start..pos));
        }
    }
    if let Some(Frame::Dict { want_key, .. }) = stack.last_mut() {
        *want_key = true;
    }
}

/// Reads `i<digits>e` at `pos`; returns the position after it.
fn scan_int(input: &[u8], pos: usize) -> Result<usize, BencodeError> {
    let start = pos + 1;
    let end = input[start..]
        .iter()
        .position(|&b| b == b'e')
        .map(|p| start + p)
        .ok_or(BencodeError::Truncated {
            offset: input.len(),
        })?;
    let text = &input[start..end];
    let digits = text.strip_prefix(b"-").unwrap_or(text);
    let canonical = !digits.is_empty()
        && digits.iter().all(u8::is_ascii_digit)
        && (digits == b"0" || digits[0] != b'0')
        && text != b"-0";
    if !canonical {
        return Err(BencodeError::NonCanonicalInteger { offset: pos });
    }
    // Canonical digits are ASCII, so this cannot fail on UTF-8; range is what can fail.
    std::str::from_utf8(text)
        .ok()
        .and_then(|s| s.parse::<i64>().ok())
        .ok_or(BencodeError::IntegerOutOfRange { offset: pos })?;
    Ok(end + 1)
}

/// Reads `<len>:<bytes>` at `pos`; returns the span of the bytes.
fn scan_str(input: &[u8], pos: usize) -> Result<(usize, usize), BencodeError> {
    let bad = BencodeError::BadStringLength { offset: pos };
    let colon = input[pos..]
        .iter()
        .take(21)
        .position(|&b| b == b':')
        .map(|p| pos + p)
        .ok_or(if input.len() - pos <= 20 {
            BencodeError::Truncated {
                offset: input.len(),
            }
        } else {
            bad.clone()
        })?;
    let digits = &input[pos..colon];
    if digits.is_empty()
        || !digits.iter().all(u8::is_ascii_digit)
        || (digits.len() > 1 && digits[0] == b'0')
    {
        return Err(bad);
    }
    let len: usize = std::str::from_utf8(digits)
        .ok()
        .and_then(|s| s.parse().ok())
        .ok_or(bad.clone())?;
    let start = colon + 1;
    let end = start.checked_add(len).ok_or(bad)?;
    if end > input.len() {
        return Err(BencodeError::Truncated {
            offset: input.len(),
        });
    }
    Ok((start, end))
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ok(input: &[u8]) -> Scan {
        scan(input, Limits::TORRENT).unwrap_or_else(|e| panic!("{input:?}: {e}"))
    }
    fn err(input: &[u8]) -> BencodeError {
        scan(input, Limits::TORRENT).expect_err("should fail")
    }

    #[test]
    fn accepts_canonical_values() {
        for v in [
            &b"i0e"[..],
            b"i-5e",
            b"i9223372036854775807e",
            b"i-9223372036854775808e",
            b"0:",
            b"4:spam",
            b"le",
            b"de",
            b"l4:spami3ee",
            b"d3:cow3:moo4:spaml1:a1:bee",
        ] {
            ok(v);
        }
    }

    #[test]
    fn rejects_non_canonical_integers() {
        for v in [&b"i03e"[..], b"i-0e", b"ie", b"i-e", b"i1.5e", b"i+1e"] {
            assert!(
                matches!(err(v), BencodeError::NonCanonicalInteger { .. }),
                "{v:?}"
            );
        }
        assert!(matches!(
            err(b"i9223372036854775808e"),
            BencodeError::IntegerOutOfRange { .. }
        ));
    }

    #[test]
    fn rejects_truncation_and_trailing_bytes() {
        assert!(matches!(err(b"l4:spam"), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"5:spam"), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"i5"), BencodeError::Truncated { .. }));
        assert!(matches!(err(b"d3:cow"), BencodeError::Truncated { .. }));
        assert!(matches!(
            err(b"i1ei2e"),
            BencodeError::TrailingBytes { count: 3, .. }
        ));
        assert!(matches!(
            err(b"05:hello"),
            BencodeError::BadStringLength { .. }
        ));
        assert!(matches!(
            err(b"99999999999999999999999:x"),
            BencodeError::BadStringLength { .. }
        ));
        assert_eq!(err(b""), BencodeError::Empty);
    }

    #[test]
    fn rejects_bad_dictionaries() {
        assert!(matches!(
            err(b"di1e1:ae"),
            BencodeError::KeyNotString { .. }
        ));
        assert!(matches!(err(b"d1:ae"), BencodeError::UnexpectedByte { .. }));
        assert!(matches!(
            err(b"d1:ai1e1:ai2ee"),
            BencodeError::DuplicateKey { .. }
        ));
        // Repeated key after an out-of-order one is still caught.
        assert!(matches!(
            err(b"d1:bi1e1:ai1e1:bi2ee"),
            BencodeError::DuplicateKey { .. }
        ));
    }

    #[test]
    fn accepts_unsorted_keys() {
        ok(b"d1:bi1e1:ai2ee");
    }

    #[test]
    fn deep_nesting_is_an_error_not_a_stack_overflow() {
        let deep: Vec<u8> = std::iter::repeat_n(b'l', 100_000)
            .chain(std::iter::repeat_n(b'e', 100_000))
            .collect();
        assert!(matches!(err(&deep), BencodeError::TooDeep { max: 64, .. }));
    }

    #[test]
    fn token_and_size_limits_hold() {
        let many: Vec<u8> = b"l"
            .iter()
            .chain(b"i1e".repeat(1000).iter())
            .chain(b"e")
            .copied()
            .collect();
        let small = Limits {
            max_depth: 4,
            max_tokens: 100,
            max_len: 1 << 20,
        };
        assert!(matches!(
            scan(&many, small),
            Err(BencodeError::TooManyTokens { .. })
        ));
        let tiny = Limits {
            max_len: 10,
            ..small
        };
        assert!(matches!(
            scan(&many, tiny),
            Err(BencodeError::TooLarge { .. })
        ));
    }

    #[test]
    fn records_top_level_value_spans() {
        let input = b"d8:announce3:url4:infod6:lengthi5ee3:zzzli1eee";
        let s = ok(input);
        let info = s.value_span(input, b"info").unwrap();
        assert_eq!(&input[info], b"d6:lengthi5ee");
        let ann = s.value_span(input, b"announce").unwrap();
        assert_eq!(&input[ann], b"3:url");
        let zzz = s.value_span(input, b"zzz").unwrap();
        assert_eq!(&input[zzz], b"li1ee");
        assert_eq!(s.top_level.len(), 3);
    }
}
