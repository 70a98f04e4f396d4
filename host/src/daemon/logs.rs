//! Container output kept on disk in Docker's json-file format: one JSON object per line,
//! `{"log":"text\n","stream":"stdout","time":"2024-...Z"}`. Output is split at newlines;
//! a line longer than `MAX_LINE` is cut into entries of that size, as Docker does.

use std::io::{BufRead, Write};
use std::path::{Path, PathBuf};
use std::time::SystemTime;

use serde::{Deserialize, Serialize};

use crate::image::time::rfc3339_nanos;

/// Longest entry; a longer line is split (Docker's 16 KiB).
pub const MAX_LINE: usize = 16 * 1024;

/// One log entry.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Entry {
    pub log: String,
    pub stream: StreamKind,
    pub time: String,
}

#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "lowercase")]
pub enum StreamKind {
    Stdout,
    Stderr,
}

impl StreamKind {
    /// The stream byte of Docker's multiplexed framing.
    pub fn frame_byte(self) -> u8 {
        match self {
            StreamKind::Stdout => 1,
            StreamKind::Stderr => 2,
        }
    }
}

/// Cuts a byte stream into entries at newlines.
#[derive(Debug)]
pub struct LineSplitter {
    stream: StreamKind,
    pending: Vec<u8>,
}

impl LineSplitter {
    pub fn new(stream: StreamKind) -> Self {
        LineSplitter {
            stream,
            pending: Vec::new(),
        }
    }

    /// The whole entries `bytes` completes.
    pub fn push(&mut self, bytes: &[u8]) -> Vec<Entry> {
        let mut out = Vec::new();
        for &b in bytes {
            self.pending.push(b);
            if b == b'\n' || self.pending.len() >= MAX_LINE {
                out.push(self.entry());
            }
        }
        out
    }

    /// What is left at the end of the stream (a last line without a newline).
    pub fn finish(&mut self) -> Option<Entry> {
        (!self.pending.is_empty()).then(|| self.entry())
    }

    fn entry(&mut self) -> Entry {
        let bytes = std::mem::take(&mut self.pending);
        Entry {
            log: String::from_utf8_lossy(&bytes).into_owned(),
            stream: self.stream,
            time: rfc3339_nanos(SystemTime::now()),
        }
    }
}

/// Appends entries to a container's log file.
pub struct LogWriter {
    path: PathBuf,
    file: Option<std::fs::File>,
}

impl LogWriter {
    pub fn new(path: PathBuf) -> LogWriter {
        LogWriter { path, file: None }
    }

    pub fn append(&mut self, entry: &Entry) -> std::io::Result<()> {
        if self.file.is_none() {
            if let Some(dir) = self.path.parent() {
                std::fs::create_dir_all(dir)?;
            }
            self.file = Some(
                std::fs::OpenOptions::new()
                    .create(true)
                    .append(true)
                    .open(&self.path)?,
            );
        }
        let mut line = serde_json::to_vec(entry).map_err(std::io::Error::other)?;
        line.push(b'\n');
        match &mut self.file {
            Some(f) => f.write_all(&line),
            None => Ok(()),
        }
    }

    /// Closes the file (it is reopened on the next append).
    pub fn close(&mut self) {
        self.file = None;
    }
}

/// Every entry of a log file (an unreadable line, such as a torn last line after a
/// crash, is skipped).
pub fn read_all(path: &Path) -> Vec<Entry> {
    let Ok(file) = std::fs::File::open(path) else {
        return Vec::new();
    };
    std::io::BufReader::new(file)
        .lines()
        .map_while(Result::ok)
        .filter_map(|l| serde_json::from_str(&l).ok())
        .collect()
}

/// Which entries `docker logs` shows and how.
#[derive(Debug, Clone, Default)]
pub struct Filter {
    pub stdout: bool,
    pub stderr: bool,
    /// Only the last N entries.
    pub tail: Option<usize>,
    /// Prefix each entry with its time.
    pub timestamps: bool,
    /// Only entries at or after this time (Unix nanoseconds).
    pub since: Option<u128>,
    /// Only entries at or before this time (Unix nanoseconds).
    pub until: Option<u128>,
}

impl Filter {
    pub fn wants(&self, e: &Entry) -> bool {
        let stream = match e.stream {
            StreamKind::Stdout => self.stdout,
            StreamKind::Stderr => self.stderr,
        };
        if !stream {
            return false;
        }
        if self.since.is_none() && self.until.is_none() {
            return true;
        }
        let Some(t) = time_nanos(&e.time) else {
            return true;
        };
        self.since.is_none_or(|s| t >= s) && self.until.is_none_or(|u| t <= u)
    }

    /// The entries to show from a whole log.
    pub fn select(&self, entries: Vec<Entry>) -> Vec<Entry> {
        let mut wanted: Vec<Entry> = entries.into_iter().filter(|e| self.wants(e)).collect();
        if let Some(n) = self.tail {
            wanted.drain(..wanted.len().saturating_sub(n));
        }
        wanted
    }

    /// The bytes of one entry as shown.
    pub fn render(&self, e: &Entry) -> Vec<u8> {
        match self.timestamps {
            true => format!("{} {}", e.time, e.log).into_bytes(),
            false => e.log.clone().into_bytes(),
        }
    }
}

/// An entry's RFC 3339 time as Unix nanoseconds.
pub fn time_nanos(time: &str) -> Option<u128> {
    let (whole, frac) = match time.split_once('.') {
        Some((w, f)) => (format!("{w}Z"), f.trim_end_matches('Z')),
        None => (time.to_string(), ""),
    };
    let secs = crate::image::time::parse_rfc3339(&whole)?;
    let digits: String = frac.chars().chain(std::iter::repeat('0')).take(9).collect();
    Some(secs.max(0) as u128 * 1_000_000_000 + digits.parse::<u128>().ok()?)
}

/// Docker's multiplexed-stream frame: `[stream, 0, 0, 0, len (u32 BE)]` then the bytes.
pub fn frame(stream: u8, payload: &[u8]) -> Vec<u8> {
    let mut out = Vec::with_capacity(8 + payload.len());
    out.extend_from_slice(&[stream, 0, 0, 0]);
    out.extend_from_slice(&(payload.len() as u32).to_be_bytes());
    out.extend_from_slice(payload);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn lines_are_split_and_the_rest_kept() {
        let mut s = LineSplitter::new(StreamKind::Stdout);
        assert!(s.push(b"par").is_empty());
        let e = s.push(b"tial\nnext\nla");
        assert_eq!(
            e.iter().map(|e| e.log.as_str()).collect::<Vec<_>>(),
            ["partial\n", "next\n"]
        );
        assert_eq!(s.finish().unwrap().log, "la");
        assert!(s.finish().is_none());
        let long = vec![b'x'; MAX_LINE + 5];
        assert_eq!(s.push(&long).len(), 1);
        assert_eq!(s.finish().unwrap().log.len(), 5);
    }

    #[test]
    fn the_log_round_trips_and_a_torn_line_is_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("c/json.log");
        let mut w = LogWriter::new(path.clone());
        let mut out = LineSplitter::new(StreamKind::Stdout);
        let mut err = LineSplitter::new(StreamKind::Stderr);
        for e in out.push(b"a\nb\n").iter().chain(err.push(b"oops\n").iter()) {
            w.append(e).unwrap();
        }
        w.close();
        std::fs::OpenOptions::new()
            .append(true)
            .open(&path)
            .unwrap()
            .write_all(b"{\"log\":\"tor")
            .unwrap();
        let all = read_all(&path);
        assert_eq!(all.len(), 3);
        let f = Filter {
            stdout: true,
            stderr: false,
            tail: Some(1),
            timestamps: false,
            since: None,
            until: None,
        };
        let shown = f.select(all.clone());
        assert_eq!(shown.len(), 1);
        assert_eq!(f.render(&shown[0]), b"b\n");
        let ts = Filter {
            stdout: true,
            stderr: true,
            tail: None,
            timestamps: true,
            since: None,
            until: None,
        };
        let line = String::from_utf8(ts.render(&all[2])).unwrap();
        assert!(line.ends_with("Z oops\n"), "{line}");
        // since/until select by the entry's time.
        let t = time_nanos(&all[0].time).unwrap();
        let window = |since, until| Filter {
            stdout: true,
            stderr: true,
            tail: None,
            timestamps: false,
            since,
            until,
        };
        assert!(window(Some(t), None).wants(&all[0]));
        assert!(!window(Some(t + 1), None).wants(&all[0]));
        assert!(!window(None, Some(t - 1)).wants(&all[0]));
        assert_eq!(
            time_nanos("2024-01-01T00:00:01.5Z"),
            Some(1_704_067_201_500_000_000)
        );
    }

    #[test]
    fn frames_have_dockers_header() {
        assert_eq!(frame(2, b"hi"), [2, 0, 0, 0, 0, 0, 0, 2, b'h', b'i']);
    }
}
