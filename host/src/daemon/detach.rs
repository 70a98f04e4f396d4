//! Detach keys: a key sequence in an attached terminal's input (`docker attach`,
//! `docker exec -it`, `docker run -it`) that ends the client's session and leaves the
//! process running. Docker's default is `ctrl-p,ctrl-q`; `--detach-keys` (the attach
//! query's `detachKeys`, an exec's `DetachKeys`) names another. As Docker's, the keys
//! are watched for only when the process has a terminal.

/// Docker's default sequence.
pub const DEFAULT: &str = "ctrl-p,ctrl-q";

/// The bytes of a sequence written as Docker writes it: comma-separated keys, each a
/// single character or `ctrl-X` (X one of `a`-`z`, `@`, `[`, `\`, `]`, `^`, `_`).
pub fn parse(keys: &str) -> Result<Vec<u8>, String> {
    let invalid = || format!("Invalid detach keys ({keys}) provided");
    if keys.is_empty() {
        return Err(invalid());
    }
    keys.split(',')
        .map(|key| {
            let b = key.as_bytes();
            if b.len() == 1 {
                return Ok(b[0]);
            }
            let lower = key.to_ascii_lowercase();
            let x = match lower.strip_prefix("ctrl-").map(str::as_bytes) {
                Some([x]) => *x,
                _ => return Err(invalid()),
            };
            match x {
                b'a'..=b'z' => Ok(x - b'a' + 1),
                b'@' => Ok(0),
                b'[' => Ok(27),
                b'\\' => Ok(28),
                b']' => Ok(29),
                b'^' => Ok(30),
                b'_' => Ok(31),
                _ => Err(invalid()),
            }
        })
        .collect()
}

/// The keys a session watches for: the given ones, or Docker's default.
pub fn keys_or_default(keys: Option<&str>) -> Result<Vec<u8>, String> {
    parse(keys.filter(|k| !k.is_empty()).unwrap_or(DEFAULT))
}

/// Watches a stream of input for the sequence. Bytes that may start it are held back
/// until the next byte decides; the sequence itself is never passed on.
#[derive(Debug, Clone)]
pub struct Watch {
    keys: Vec<u8>,
    held: usize,
}

/// What one chunk of input comes to.
#[derive(Debug, PartialEq, Eq)]
pub enum Input {
    /// Pass these bytes on.
    Pass(Vec<u8>),
    /// The sequence was typed: pass these bytes (typed before it), then detach.
    Detach(Vec<u8>),
}

impl Watch {
    pub fn new(keys: Vec<u8>) -> Watch {
        Watch { keys, held: 0 }
    }

    pub fn feed(&mut self, input: &[u8]) -> Input {
        let mut out = Vec::with_capacity(input.len());
        for &b in input {
            if b == self.keys[self.held] {
                self.held += 1;
                if self.held == self.keys.len() {
                    self.held = 0;
                    return Input::Detach(out);
                }
                continue;
            }
            // The held bytes were not the sequence after all; this byte may start it.
            out.extend_from_slice(&self.keys[..self.held]);
            self.held = 0;
            if b == self.keys[0] {
                self.held = 1;
                if self.keys.len() == 1 {
                    self.held = 0;
                    return Input::Detach(out);
                }
            } else {
                out.push(b);
            }
        }
        Input::Pass(out)
    }
}

/// The next chunk of a client's input, watched with `keys` when there are any; `None`
/// at its end.
pub async fn next_input<R: tokio::io::AsyncRead + Unpin>(
    rd: &mut R,
    buf: &mut [u8],
    keys: &mut Option<Watch>,
) -> Option<Input> {
    use tokio::io::AsyncReadExt as _;
    let n = match rd.read(buf).await {
        Ok(0) | Err(_) => return None,
        Ok(n) => n,
    };
    Some(match keys {
        Some(k) => k.feed(&buf[..n]),
        None => Input::Pass(buf[..n].to_vec()),
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn keys_are_read_as_docker_writes_them() {
        assert_eq!(parse("ctrl-p,ctrl-q").unwrap(), [16, 17]);
        assert_eq!(
            parse("a,ctrl-@,ctrl-[,ctrl-_,CTRL-A").unwrap(),
            [b'a', 0, 27, 31, 1]
        );
        for bad in ["", "ctrl-", "ctrl-1", "ab", "a,,b", "ctrl-pq"] {
            let e = parse(bad).unwrap_err();
            assert!(e.contains("Invalid detach keys"), "{bad:?}: {e}");
        }
        assert_eq!(keys_or_default(None).unwrap(), [16, 17]);
        assert_eq!(keys_or_default(Some("")).unwrap(), [16, 17]);
    }

    #[test]
    fn the_sequence_detaches_and_anything_else_passes() {
        let mut w = Watch::new(vec![16, 17]);
        assert_eq!(w.feed(b"ls\n"), Input::Pass(b"ls\n".to_vec()));
        // Split across chunks, with text before it.
        assert_eq!(w.feed(b"x\x10"), Input::Pass(b"x".to_vec()));
        assert_eq!(w.feed(b"\x11rest"), Input::Detach(Vec::new()));
        // A held byte that turns out not to start the sequence is passed on.
        let mut w = Watch::new(vec![16, 17]);
        assert_eq!(w.feed(b"\x10a"), Input::Pass(b"\x10a".to_vec()));
        assert_eq!(w.feed(b"\x10\x10\x11"), Input::Detach(b"\x10".to_vec()));
        let mut one = Watch::new(vec![b'q']);
        assert_eq!(one.feed(b"abq"), Input::Detach(b"ab".to_vec()));
    }
}
