//! Content digests (`sha256:<64 hex>`, the only algorithm berth stores) and the readers and
//! writers that compute them while data streams through.

use std::fmt;
use std::io::{self, Read, Write};
use std::str::FromStr;

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use sha2::{Digest as _, Sha256};

use super::ImageError;

/// A sha256 content digest; `Display` writes `sha256:<hex>`.
#[derive(Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct Digest {
    hex: String,
}

impl Digest {
    /// Parses `sha256:<64 lowercase hex>`; other algorithms and malformed hex are refused.
    pub fn parse(text: &str) -> Result<Digest, ImageError> {
        let invalid = |reason: String| ImageError::InvalidDigest {
            digest: text.to_string(),
            reason,
        };
        let (algorithm, hex) = text
            .split_once(':')
            .ok_or_else(|| invalid("expected ALGORITHM:HEX, e.g. sha256:<64 hex>".into()))?;
        if algorithm != "sha256" {
            return Err(invalid(format!(
                "unsupported algorithm {algorithm:?}: berth stores sha256 only"
            )));
        }
        Digest::from_hex(hex).map_err(|_| invalid("expected 64 lowercase hex characters".into()))
    }

    /// A digest from its 64 lowercase hex characters alone.
    pub fn from_hex(hex: &str) -> Result<Digest, ImageError> {
        if hex.len() == 64 && hex.bytes().all(|b| matches!(b, b'0'..=b'9' | b'a'..=b'f')) {
            Ok(Digest {
                hex: hex.to_string(),
            })
        } else {
            Err(ImageError::InvalidDigest {
                digest: hex.to_string(),
                reason: "expected 64 lowercase hex characters".into(),
            })
        }
    }

    /// The digest of `bytes`.
    pub fn of(bytes: &[u8]) -> Digest {
        Digest::of_hasher(Sha256::new_with_prefix(bytes))
    }

    pub(crate) fn of_hasher(hasher: Sha256) -> Digest {
        let hex = hasher
            .finalize()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        Digest { hex }
    }

    /// The 64 hex characters.
    pub fn hex(&self) -> &str {
        &self.hex
    }

    /// The first 12 hex characters: the short image ID Docker prints.
    pub fn short(&self) -> &str {
        &self.hex[..12]
    }
}

impl fmt::Display for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "sha256:{}", self.hex)
    }
}

impl fmt::Debug for Digest {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        fmt::Display::fmt(self, f)
    }
}

impl FromStr for Digest {
    type Err = ImageError;
    fn from_str(s: &str) -> Result<Digest, ImageError> {
        Digest::parse(s)
    }
}

impl Serialize for Digest {
    fn serialize<S: Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        s.collect_str(self)
    }
}

impl<'de> Deserialize<'de> for Digest {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Digest, D::Error> {
        let text = String::deserialize(d)?;
        Digest::parse(&text).map_err(serde::de::Error::custom)
    }
}

/// A reader that hashes and counts every byte read through it.
pub(crate) struct HashingReader<R> {
    inner: R,
    hasher: Sha256,
    count: u64,
}

impl<R: Read> HashingReader<R> {
    pub(crate) fn new(inner: R) -> Self {
        HashingReader {
            inner,
            hasher: Sha256::new(),
            count: 0,
        }
    }

    /// The digest and length of what was read so far.
    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest::of_hasher(self.hasher), self.count)
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.count += n as u64;
        Ok(n)
    }
}

/// A writer that only hashes and counts.
#[derive(Default)]
pub(crate) struct HashingSink {
    hasher: Sha256,
    count: u64,
}

impl HashingSink {
    pub(crate) fn finish(self) -> (Digest, u64) {
        (Digest::of_hasher(self.hasher), self.count)
    }

    pub(crate) fn update(&mut self, buf: &[u8]) {
        self.hasher.update(buf);
        self.count += buf.len() as u64;
    }
}

impl Write for HashingSink {
    fn write(&mut self, buf: &[u8]) -> io::Result<usize> {
        self.update(buf);
        Ok(buf.len())
    }

    fn flush(&mut self) -> io::Result<()> {
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const EMPTY: &str = "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855";

    #[test]
    fn parses_and_displays() {
        let d = Digest::parse(&format!("sha256:{EMPTY}")).unwrap();
        assert_eq!(d.to_string(), format!("sha256:{EMPTY}"));
        assert_eq!(d.hex(), EMPTY);
        assert_eq!(d.short(), "e3b0c44298fc");
        assert_eq!(Digest::of(b""), d);
    }

    #[test]
    fn refuses_other_algorithms_and_bad_hex() {
        let sha512 = format!("sha512:{EMPTY}{EMPTY}");
        assert!(Digest::parse(&sha512)
            .unwrap_err()
            .to_string()
            .contains("sha256 only"));
        assert!(Digest::parse(EMPTY).is_err());
        assert!(Digest::parse(&format!("sha256:{}", &EMPTY[1..])).is_err());
        assert!(Digest::parse(&format!("sha256:{}", EMPTY.to_uppercase())).is_err());
        assert!(Digest::parse(&format!("sha256:{}g", &EMPTY[1..])).is_err());
        assert!(Digest::parse("sha256:../../etc/passwd").is_err());
    }

    #[test]
    fn hashing_reader_and_sink_agree() {
        let data = b"hello berth".repeat(1000);
        let mut reader = HashingReader::new(&data[..]);
        let mut sink = HashingSink::default();
        io::copy(&mut reader, &mut sink).unwrap();
        let (a, n) = reader.finish();
        assert_eq!((a.clone(), n), sink.finish());
        assert_eq!(a, Digest::of(&data));
        assert_eq!(n, data.len() as u64);
    }

    #[test]
    fn serde_round_trip() {
        let d = Digest::of(b"x");
        let json = serde_json::to_string(&d).unwrap();
        assert_eq!(json, format!("\"{d}\""));
        assert_eq!(serde_json::from_str::<Digest>(&json).unwrap(), d);
        assert!(serde_json::from_str::<Digest>("\"md5:abc\"").is_err());
    }
}
