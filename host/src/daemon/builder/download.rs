//! `ADD https://...`: the file downloaded by the daemon (on the host, as Docker's builder
//! does), checked against `--checksum`, and placed as one file: mode 0600 unless
//! `--chmod`, its mtime from `Last-Modified`, never extracted. Its content is in the
//! step's cache key, so a changed file at the same URL runs the step again.

use std::io::{Seek, Write};
use std::time::Duration;

use futures::StreamExt;
use sha2::{Digest as _, Sha256};

use super::steps::{Builder, Failed};

/// How long a download may go without receiving a byte.
const STALL: Duration = Duration::from_secs(60);
/// How long connecting (and the response's headers) may take.
const CONNECT: Duration = Duration::from_secs(30);

/// Whether an `ADD` source is a remote one.
pub(super) fn is_url(source: &str) -> bool {
    source.contains("://") || source.starts_with("git@")
}

/// A downloaded file: its data, size, digest and mtime, and the name the URL gives it.
pub(super) struct Downloaded {
    pub file: std::fs::File,
    pub size: u64,
    pub sha256: String,
    pub mtime: u64,
    pub name: String,
}

/// The file name a URL gives (`ADD URL /dir/`): its path's last segment.
pub(super) fn url_file_name(url: &reqwest::Url) -> Option<String> {
    url.path_segments()?
        .rev()
        .find(|s| !s.is_empty())
        .map(percent_decode)
}

fn percent_decode(s: &str) -> String {
    let bytes = s.as_bytes();
    let mut out = Vec::with_capacity(bytes.len());
    let mut i = 0;
    while i < bytes.len() {
        if bytes[i] == b'%' && i + 2 < bytes.len() {
            if let Ok(v) = u8::from_str_radix(&s[i + 1..i + 3], 16) {
                out.push(v);
                i += 3;
                continue;
            }
        }
        out.push(bytes[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

/// `--checksum=sha256:HEX` (the only algorithm BuildKit takes for `ADD`).
pub(super) fn parse_checksum(raw: &str) -> Result<String, Failed> {
    match raw.split_once(':') {
        Some(("sha256", hex)) if hex.len() == 64 && hex.bytes().all(|b| b.is_ascii_hexdigit()) => {
            Ok(hex.to_ascii_lowercase())
        }
        _ => Err(format!(
            "ADD --checksum={raw}: expected sha256:<64 hex digits>"
        )),
    }
}

impl Builder<'_> {
    /// Downloads `source` into a temporary file, within the stall and connect deadlines;
    /// a failed or cancelled download is an error that names the URL.
    pub(super) async fn download(
        &self,
        source: &str,
        checksum: Option<&str>,
    ) -> Result<Downloaded, Failed> {
        if source.starts_with("git@") || source.starts_with("git://") || source.ends_with(".git") {
            return Err(format!(
                "ADD {source}: berth builds do not clone git repositories; clone it into the context"
            ));
        }
        let url = reqwest::Url::parse(source).map_err(|e| format!("ADD {source}: {e}"))?;
        if !matches!(url.scheme(), "http" | "https") {
            return Err(format!(
                "ADD {source}: only http and https URLs are supported"
            ));
        }
        let name = url_file_name(&url).unwrap_or_default();
        let client = reqwest::Client::builder()
            .connect_timeout(CONNECT)
            .read_timeout(STALL)
            .build()
            .map_err(|e| format!("ADD {source}: {e}"))?;
        let response = tokio::time::timeout(CONNECT, client.get(url).send())
            .await
            .map_err(|_| format!("ADD {source}: no response within {}s", CONNECT.as_secs()))?
            .map_err(|e| format!("ADD {source}: {}", crate::error::chain(&e)))?;
        if !response.status().is_success() {
            return Err(format!(
                "ADD {source}: the server answered {}",
                response.status()
            ));
        }
        let mtime = response
            .headers()
            .get(reqwest::header::LAST_MODIFIED)
            .and_then(|v| v.to_str().ok())
            .and_then(|v| httpdate::parse_http_date(v).ok())
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map(|d| d.as_secs())
            .unwrap_or(0);
        let tmp_dir = self.engine.images.root().join("tmp");
        std::fs::create_dir_all(&tmp_dir).map_err(|e| e.to_string())?;
        let mut file = tempfile::tempfile_in(&tmp_dir).map_err(|e| e.to_string())?;
        let mut hasher = Sha256::new();
        let mut size = 0u64;
        let mut body = response.bytes_stream();
        let mut tick = tokio::time::interval(Duration::from_millis(500));
        loop {
            tokio::select! {
                chunk = body.next() => match chunk {
                    None => break,
                    Some(Ok(bytes)) => {
                        hasher.update(&bytes);
                        size += bytes.len() as u64;
                        file.write_all(&bytes).map_err(|e| format!("ADD {source}: {e}"))?;
                    }
                    Some(Err(e)) => {
                        return Err(format!(
                            "ADD {source}: the download broke after {size} bytes: {}",
                            crate::error::chain(&e)
                        ))
                    }
                },
                _ = tick.tick() => {
                    if self.out.cancelled() {
                        return Err("the build was cancelled".into());
                    }
                }
            }
        }
        let sha256 = format!("{:x}", hasher.finalize());
        if let Some(raw) = checksum {
            let want = parse_checksum(raw)?;
            if want != sha256 {
                return Err(format!(
                    "ADD {source}: checksum mismatch: expected sha256:{want}, got sha256:{sha256}"
                ));
            }
        }
        file.rewind().map_err(|e| e.to_string())?;
        Ok(Downloaded {
            file,
            size,
            sha256,
            mtime,
            name,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn names_come_from_the_url_path() {
        let name = |u: &str| url_file_name(&reqwest::Url::parse(u).unwrap());
        assert_eq!(
            name("http://127.0.0.1:8000/a/b.tar.gz?x=1"),
            Some("b.tar.gz".into())
        );
        assert_eq!(name("http://h/dir/"), Some("dir".into()));
        assert_eq!(name("http://h/my%20file"), Some("my file".into()));
        assert_eq!(name("http://h/"), None);
    }

    #[test]
    fn checksums_are_sha256() {
        let hex = "a".repeat(64);
        assert_eq!(parse_checksum(&format!("sha256:{hex}")), Ok(hex.clone()));
        assert!(parse_checksum(&format!("sha512:{hex}")).is_err());
        assert!(parse_checksum("sha256:abc").is_err());
        assert!(is_url("https://h/f") && is_url("git@github.com:a/b") && !is_url("src/a"));
    }
}
