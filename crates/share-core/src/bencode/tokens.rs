//! A pull reader of bencode tokens: walks a value in file order without building a tree.
//!
//! For values whose key order carries meaning, such as a BEP 52 `file tree` (its order is the
//! order of the files), and which would cost a map per dictionary to decode. Meant for input
//! that already passed [`super::scan`]; it still checks every length and gives an error,
//! never a panic, on anything else.

use super::{scan_int, scan_str, BencodeError};

/// One token: a scalar, the start of a container, or the end of one.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Token<'a> {
    Int(i64),
    Bytes(&'a [u8]),
    List,
    Dict,
    End,
}

/// Reads tokens one by one from the start of `input`.
pub struct Tokens<'a> {
    input: &'a [u8],
    pos: usize,
}

impl<'a> Tokens<'a> {
    pub fn new(input: &'a [u8]) -> Self {
        Tokens { input, pos: 0 }
    }

    /// The next token.
    pub fn next_token(&mut self) -> Result<Token<'a>, BencodeError> {
        let at = self.pos;
        let byte = *self
            .input
            .get(at)
            .ok_or(BencodeError::Truncated { offset: at })?;
        let token = match byte {
            b'i' => {
                let end = scan_int(self.input, at)?;
                let value = std::str::from_utf8(&self.input[at + 1..end - 1])
                    .ok()
                    .and_then(|s| s.parse().ok())
                    .ok_or(BencodeError::IntegerOutOfRange { offset: at })?;
                self.pos = end;
                return Ok(Token::Int(value));
            }
            b'0'..=b'9' => {
                let (start, end) = scan_str(self.input, at)?;
                self.pos = end;
                return Ok(Token::Bytes(&self.input[start..end]));
            }
            b'l' => Token::List,
            b'd' => Token::Dict,
            b'e' => Token::End,
            _ => return Err(BencodeError::UnexpectedByte { offset: at, byte }),
        };
        self.pos += 1;
        Ok(token)
    }

    /// Skips the rest of a value whose first token was `first` (nothing more for a scalar).
    pub fn skip(&mut self, first: Token<'a>) -> Result<(), BencodeError> {
        let mut depth = match first {
            Token::List | Token::Dict => 1usize,
            _ => return Ok(()),
        };
        while depth > 0 {
            match self.next_token()? {
                Token::List | Token::Dict => depth += 1,
                Token::End => depth -= 1,
                Token::Int(_) | Token::Bytes(_) => {}
            }
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn tokens_come_in_file_order_and_containers_can_be_skipped() {
        let mut t = Tokens::new(b"d1:bi-3e1:ali1el2:xxee1:c0:e");
        assert_eq!(t.next_token(), Ok(Token::Dict));
        assert_eq!(t.next_token(), Ok(Token::Bytes(b"b")));
        assert_eq!(t.next_token(), Ok(Token::Int(-3)));
        assert_eq!(t.next_token(), Ok(Token::Bytes(b"a")));
        let first = t.next_token().unwrap();
        t.skip(first).unwrap();
        assert_eq!(t.next_token(), Ok(Token::Bytes(b"c")));
        assert_eq!(t.next_token(), Ok(Token::Bytes(b"")));
        assert_eq!(t.next_token(), Ok(Token::End));
        assert!(matches!(
            t.next_token(),
            Err(BencodeError::Truncated { .. })
        ));
    }

    #[test]
    fn broken_input_gives_errors_not_panics() {
        for bad in [
            &b"i12"[..],
            b"5:ab",
            b"x",
            b"i-0e",
            b"li1e",
            b"99999999999999999999999:",
        ] {
            let mut t = Tokens::new(bad);
            let mut result = Ok(());
            for _ in 0..10 {
                match t.next_token() {
                    Ok(tok) => {
                        if let Err(e) = t.skip(tok) {
                            result = Err(e);
                            break;
                        }
                    }
                    Err(e) => {
                        result = Err(e);
                        break;
                    }
                }
            }
            assert!(result.is_err(), "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
