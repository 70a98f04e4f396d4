//! The build context: the daemon side unpacks the tar stream a client sent (plain or gzip)
//! into a directory and answers questions about it — reading the Dockerfile, resolving
//! `COPY`/`ADD` sources with Docker's rules, placing them under a destination, writing the
//! layer tar and a content-based cache key. The client side ([`pack_dir`]) tars a directory
//! the way the docker CLI sends it.
//!
//! Extraction never follows or creates symlinks on disk: symlink entries are kept as metadata
//! only (and resolved within the context when a source names one), so nothing under
//! [`Context::root`] points outside it. Hard links are stored as copies of their target. File
//! metadata (mode, owner, mtime) comes from the tar headers, never from the file system.

use std::collections::BTreeMap;
use std::fs;
use std::io::{self, Read};
use std::path::{Path, PathBuf};

use super::ignore::{clean_path, path_match, Ignore};
pub use super::layer_tar::{content_key, pack_dir, pack_dir_with, write_tar};

/// What an entry of the context is.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum EntryKind {
    File,
    Dir,
    Symlink,
    /// A hard link in the tar; its data was copied from the target, so it reads like a file.
    Hardlink,
}

/// One path of the context, with the metadata its tar header gave.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Entry {
    /// Relative, `/`-separated; `""` for the context root.
    pub path: String,
    pub kind: EntryKind,
    /// Permission bits (`0o7777` at most).
    pub mode: u32,
    pub uid: u64,
    pub gid: u64,
    pub size: u64,
    pub mtime: u64,
    /// A symlink's target as written, or a hard link's target path in the context.
    pub link_target: Option<String>,
}

/// A `COPY`/`ADD` source entry chosen by [`Context::select`].
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Selected {
    /// The context entry to copy (a followed symlink source gives its target's entry).
    pub entry: Entry,
    /// The name under the destination: a file source's base name; for a directory source,
    /// the path below that directory (`""` for the directory itself, which becomes the
    /// destination directory).
    pub rel: String,
    /// Whether the source was a single file named without wildcards (so a destination that
    /// does not end in `/` names the file itself).
    pub single_file: bool,
}

/// Errors about the build context; `Display` is the message a user sees.
#[derive(Debug, thiserror::Error)]
pub enum ContextError {
    #[error("{what}: {source}")]
    Io {
        what: String,
        #[source]
        source: io::Error,
    },
    #[error("the build context is compressed with {0}, which is not supported: send a plain or gzip-compressed tar")]
    UnsupportedCompression(&'static str),
    #[error("invalid build context: {0}")]
    Invalid(String),
    #[error("invalid build context: the path {0:?} escapes the context directory")]
    PathEscapes(String),
    #[error("invalid build context: {path} is a {kind}, which a build context may not contain")]
    Unsupported { path: String, kind: String },
    #[error("the build context is larger than {0} bytes")]
    TooLarge(u64),
    #[error("COPY failed: file not found in build context or excluded by .dockerignore: stat {0}: file does not exist")]
    NotFound(String),
    #[error("forbidden path outside the build context: {0}")]
    OutsideContext(String),
    #[error("When using COPY with more than one source file, the destination must be a directory and end with a /")]
    DestinationNotDirectory,
    #[error("COPY failed: {0}")]
    BadPattern(String),
}

pub(super) fn io_err(what: impl Into<String>) -> impl FnOnce(io::Error) -> ContextError {
    let what = what.into();
    move |source| ContextError::Io { what, source }
}

fn tar_err(e: io::Error) -> ContextError {
    invalid(format!("reading the tar stream: {e}"))
}

pub(super) fn invalid(message: impl Into<String>) -> ContextError {
    ContextError::Invalid(message.into())
}

/// Whether an entry's data is a file's (hard links were stored as copies).
pub(super) fn has_data(kind: EntryKind) -> bool {
    matches!(kind, EntryKind::File | EntryKind::Hardlink)
}

/// `name` under the context path `dir` (`""` for the root).
pub(super) fn join(dir: &str, name: &str) -> String {
    if dir.is_empty() {
        name.to_string()
    } else {
        format!("{dir}/{name}")
    }
}

/// An unpacked build context.
#[derive(Debug)]
pub struct Context {
    root: PathBuf,
    root_entry: Entry,
    entries: BTreeMap<String, Entry>,
}

impl Context {
    /// Extracts `tar` (plain or gzip; bzip2, xz and zstd are refused by name) under `dir`,
    /// which exists and is empty. Absolute entry paths are made relative; an entry whose path
    /// escapes the root, a device node or FIFO, or a file beneath a non-directory entry (such
    /// as a symlink) is an error, as is more than `max_bytes` of file data. Directories
    /// implied by entry paths are created (mode 0755, owner 0:0).
    pub fn unpack(tar: impl Read, dir: &Path, max_bytes: u64) -> Result<Context, ContextError> {
        let mut tar = tar;
        let mut magic = [0u8; 6];
        let mut have = 0;
        while have < magic.len() {
            match tar.read(&mut magic[have..]) {
                Ok(0) => break,
                Ok(n) => have += n,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                Err(e) => return Err(io_err("reading the build context")(e)),
            }
        }
        let head = magic[..have].to_vec();
        let compression = if head.starts_with(&[0x1f, 0x8b]) {
            Some("gzip")
        } else if head.starts_with(b"BZh") {
            Some("bzip2")
        } else if head.starts_with(&[0xfd, b'7', b'z', b'X', b'Z', 0x00]) {
            Some("xz")
        } else if head.starts_with(&[0x28, 0xb5, 0x2f, 0xfd]) {
            Some("zstd")
        } else {
            None
        };
        let stream = io::Cursor::new(head).chain(tar);
        match compression {
            None => Self::unpack_tar(stream, dir, max_bytes),
            Some("gzip") => {
                Self::unpack_tar(flate2::read::MultiGzDecoder::new(stream), dir, max_bytes)
            }
            Some(other) => Err(ContextError::UnsupportedCompression(other)),
        }
    }

    fn unpack_tar(reader: impl Read, dir: &Path, max_bytes: u64) -> Result<Context, ContextError> {
        let mut ctx = Context {
            root: dir.to_path_buf(),
            root_entry: implied_dir(""),
            entries: BTreeMap::new(),
        };
        let mut written = 0u64;
        let mut archive = tar::Archive::new(reader);
        for item in archive.entries().map_err(tar_err)? {
            let mut item = item.map_err(tar_err)?;
            let raw = String::from_utf8(item.path_bytes().into_owned())
                .map_err(|_| invalid("an entry's path is not valid UTF-8"))?;
            let header_type = item.header().entry_type();
            let kind = match header_type {
                tar::EntryType::Regular | tar::EntryType::Continuous => EntryKind::File,
                tar::EntryType::Directory => EntryKind::Dir,
                tar::EntryType::Symlink => EntryKind::Symlink,
                tar::EntryType::Link => EntryKind::Hardlink,
                tar::EntryType::XGlobalHeader
                | tar::EntryType::XHeader
                | tar::EntryType::GNULongName
                | tar::EntryType::GNULongLink => continue,
                other => {
                    let kind = match other {
                        tar::EntryType::Char => "character device".to_string(),
                        tar::EntryType::Block => "block device".to_string(),
                        tar::EntryType::Fifo => "FIFO".to_string(),
                        other => format!("tar entry of type {:?}", other.as_byte() as char),
                    };
                    return Err(ContextError::Unsupported { path: raw, kind });
                }
            };
            let path = archive_path(&raw)?;
            let entry = read_metadata(&mut item, &path, kind)?;
            if path.is_empty() {
                if kind != EntryKind::Dir {
                    return Err(invalid(format!("{raw:?} is the root but not a directory")));
                }
                ctx.root_entry = entry;
                continue;
            }
            let entry = ctx.place(item, entry, &mut written, max_bytes)?;
            ctx.entries.insert(path, entry);
        }
        Ok(ctx)
    }

    /// Makes room for `entry` (parents created, an older entry at its path removed) and
    /// writes it to disk; returns the entry as recorded.
    fn place(
        &mut self,
        mut data: impl Read,
        mut entry: Entry,
        written: &mut u64,
        max_bytes: u64,
    ) -> Result<Entry, ContextError> {
        let path = entry.path.clone();
        for (i, _) in path.match_indices('/') {
            let parent = &path[..i];
            match self.entries.get(parent) {
                Some(e) if e.kind == EntryKind::Dir => {}
                Some(_) => {
                    return Err(invalid(format!(
                        "{path} lies beneath {parent}, not a directory"
                    )))
                }
                None => {
                    self.make_dir(parent)?;
                    self.entries.insert(parent.to_string(), implied_dir(parent));
                }
            }
        }
        if let Some(old) = self.entries.get(&path) {
            if old.kind == EntryKind::Dir && entry.kind == EntryKind::Dir {
                return Ok(entry);
            }
            let disk = self.disk_path(&path);
            let removed = match old.kind {
                EntryKind::Dir => fs::remove_dir_all(&disk),
                EntryKind::File | EntryKind::Hardlink => fs::remove_file(&disk),
                EntryKind::Symlink => Ok(()),
            };
            removed.map_err(io_err(format!("replacing {path} in the build context")))?;
            let stale: Vec<String> = self.descendants(&path).map(|(p, _)| p.clone()).collect();
            for p in stale {
                self.entries.remove(&p);
            }
            self.entries.remove(&path);
        }
        let disk = self.disk_path(&path);
        match entry.kind {
            EntryKind::Dir => self.make_dir(&path)?,
            EntryKind::Symlink => {}
            EntryKind::File => {
                add_bytes(written, entry.size, max_bytes)?;
                let mut file = create_new(&disk, &path)?;
                let copied = io::copy(&mut data, &mut file).map_err(tar_err)?;
                if copied != entry.size {
                    return Err(invalid(format!("{path}: the tar stream ends early")));
                }
            }
            EntryKind::Hardlink => {
                let target = entry.link_target.clone().unwrap_or_default();
                let source = match self.entries.get(&target) {
                    Some(t) if has_data(t.kind) => t.clone(),
                    _ => return Err(invalid(format!("hard link {path}: no file {target:?}"))),
                };
                add_bytes(written, source.size, max_bytes)?;
                let mut from = fs::File::open(self.disk_path(&source.path))
                    .map_err(io_err(format!("reading {}", source.path)))?;
                let mut file = create_new(&disk, &path)?;
                io::copy(&mut from, &mut file).map_err(io_err(format!("writing {path}")))?;
                entry.size = source.size;
            }
        }
        Ok(entry)
    }

    fn make_dir(&self, rel: &str) -> Result<(), ContextError> {
        let disk = self.disk_path(rel);
        match fs::create_dir(&disk) {
            Ok(()) => Ok(()),
            // Only a real directory (never a symlink to one) may already be there.
            Err(e) if e.kind() == io::ErrorKind::AlreadyExists => {
                match fs::symlink_metadata(&disk) {
                    Ok(meta) if meta.file_type().is_dir() => Ok(()),
                    _ => Err(invalid(format!("{rel} exists and is not a directory"))),
                }
            }
            Err(e) => Err(io_err(format!("creating {rel}"))(e)),
        }
    }

    /// The directory the context was unpacked into.
    pub fn root(&self) -> &Path {
        &self.root
    }

    /// All entries (without the root), in path order.
    pub fn entries(&self) -> impl Iterator<Item = &Entry> {
        self.entries.values()
    }

    /// The text of a file in the context (invalid UTF-8 replaced), following symlinks within
    /// the context; `None` if it is absent, not a file, or outside the context.
    pub fn read_file(&self, path: &str) -> Option<String> {
        let resolved = self.resolve(&query_path(path)?)?;
        let entry = self.entries.get(&resolved)?;
        if !has_data(entry.kind) {
            return None;
        }
        let bytes = fs::read(self.disk_path(&resolved)).ok()?;
        Some(String::from_utf8_lossy(&bytes).into_owned())
    }

    /// The entry at `path` itself (symlinks not followed); `""` or `.` is the root.
    pub fn entry(&self, path: &str) -> Option<&Entry> {
        let path = query_path(path)?;
        if path.is_empty() {
            return Some(&self.root_entry);
        }
        self.entries.get(&path)
    }

    /// Resolves `COPY`/`ADD` sources (already variable-expanded) as Docker does: relative to
    /// the context root (a leading `/` or `./` ignored); wildcards match context paths with
    /// `filepath.Match`; a directory means its contents (plus an entry with `rel` `""` for
    /// the directory itself); `.` is the whole context; a symlink named as a source is
    /// followed within the context; paths excluded by `ignore` do not exist.
    pub fn select(
        &self,
        sources: &[String],
        ignore: &Ignore,
    ) -> Result<Vec<Selected>, ContextError> {
        let mut out = Vec::new();
        for src in sources {
            let path = source_path(src)?;
            let shown = Some(path.clone()).filter(|p| !p.is_empty());
            let shown = shown.unwrap_or_else(|| ".".to_string());
            if has_wildcards(&path) {
                path_match(&path, "").map_err(ContextError::BadPattern)?;
                let mut found = false;
                for candidate in self.entries.keys() {
                    if !path_match(&path, candidate).unwrap_or(false)
                        || !self.visible(candidate, ignore)
                    {
                        continue;
                    }
                    if let Some(resolved) = self.resolve(candidate) {
                        if self.visible(&resolved, ignore) {
                            found = true;
                            self.add_source(candidate, &resolved, false, ignore, &mut out);
                        }
                    }
                }
                if !found {
                    return Err(ContextError::NotFound(shown));
                }
            } else {
                let resolved = self
                    .resolve(&path)
                    .ok_or_else(|| ContextError::NotFound(shown.clone()))?;
                let own_entry_hidden = resolved != path
                    && self.entries.contains_key(&path)
                    && !self.visible(&path, ignore);
                if own_entry_hidden || !self.visible(&resolved, ignore) {
                    return Err(ContextError::NotFound(shown));
                }
                self.add_source(&path, &resolved, true, ignore, &mut out);
            }
        }
        Ok(out)
    }

    fn add_source(
        &self,
        name: &str,
        resolved: &str,
        literal: bool,
        ignore: &Ignore,
        out: &mut Vec<Selected>,
    ) {
        let entry = if resolved.is_empty() {
            &self.root_entry
        } else {
            match self.entries.get(resolved) {
                Some(e) => e,
                None => return,
            }
        };
        let pick = |entry: &Entry, rel: &str, single_file| Selected {
            entry: entry.clone(),
            rel: rel.to_string(),
            single_file,
        };
        if entry.kind != EntryKind::Dir {
            out.push(pick(
                entry,
                name.rsplit('/').next().unwrap_or(name),
                literal,
            ));
            return;
        }
        out.push(pick(entry, "", false));
        let skip = join(resolved, "").len();
        for (path, e) in self.descendants(resolved) {
            if self.visible(path, ignore) {
                out.push(pick(e, &path[skip..], false));
            }
        }
    }

    /// Whether `path` exists for `COPY`: not excluded, or an excluded directory that still
    /// holds something not excluded (as the docker CLI would have sent it).
    fn visible(&self, path: &str, ignore: &Ignore) -> bool {
        if path.is_empty() {
            return true;
        }
        let Some(entry) = self.entries.get(path) else {
            return false;
        };
        !ignore.excluded(path)
            || (entry.kind == EntryKind::Dir
                && self.descendants(path).any(|(p, _)| !ignore.excluded(p)))
    }

    /// The entries below directory `dir` (`""`: all), in path order.
    fn descendants<'a>(&'a self, dir: &str) -> impl Iterator<Item = (&'a String, &'a Entry)> + 'a {
        let prefix = join(dir, "");
        self.entries
            .range(prefix.clone()..)
            .take_while(move |(p, _)| p.starts_with(&prefix))
    }

    /// Follows symlinks in every component of `path`, staying inside the context (an absolute
    /// target starts at the root, `..` stops there). `None` if a component is missing, a
    /// non-directory is walked through, or links loop.
    fn resolve(&self, path: &str) -> Option<String> {
        let mut pending: Vec<String> = path.split('/').rev().map(str::to_string).collect();
        let mut current: Vec<String> = Vec::new();
        let mut hops = 0;
        while let Some(part) = pending.pop() {
            match part.as_str() {
                "" | "." => continue,
                ".." => {
                    current.pop();
                    continue;
                }
                _ => {}
            }
            current.push(part);
            let entry = self.entries.get(&current.join("/"))?;
            match entry.kind {
                EntryKind::Dir => {}
                EntryKind::Symlink => {
                    hops += 1;
                    if hops > 40 {
                        return None;
                    }
                    current.pop();
                    let target = entry.link_target.as_deref().unwrap_or("");
                    if target.starts_with('/') {
                        current.clear();
                    }
                    pending.extend(target.split('/').rev().map(str::to_string));
                }
                EntryKind::File | EntryKind::Hardlink => {
                    if pending.iter().any(|p| !p.is_empty()) {
                        return None;
                    }
                }
            }
        }
        Some(current.join("/"))
    }

    /// Where the context path `rel` lies on disk.
    pub(super) fn disk_path(&self, rel: &str) -> PathBuf {
        let mut path = self.root.clone();
        for part in rel.split('/').filter(|p| !p.is_empty()) {
            path.push(part);
        }
        path
    }
}

fn implied_dir(path: &str) -> Entry {
    Entry {
        path: path.to_string(),
        kind: EntryKind::Dir,
        mode: 0o755,
        uid: 0,
        gid: 0,
        size: 0,
        mtime: 0,
        link_target: None,
    }
}

fn add_bytes(written: &mut u64, size: u64, max_bytes: u64) -> Result<(), ContextError> {
    *written = written.saturating_add(size);
    if *written > max_bytes {
        return Err(ContextError::TooLarge(max_bytes));
    }
    Ok(())
}

fn create_new(disk: &Path, rel: &str) -> Result<fs::File, ContextError> {
    fs::OpenOptions::new()
        .write(true)
        .create_new(true)
        .open(disk)
        .map_err(io_err(format!("creating {rel}")))
}

/// The metadata of a tar entry (PAX `uid`, `gid` and `mtime` records override the header's).
fn read_metadata<R: Read>(
    item: &mut tar::Entry<'_, R>,
    path: &str,
    kind: EntryKind,
) -> Result<Entry, ContextError> {
    // An empty (all NUL or space) numeric field reads as 0, as in Go's archive/tar (the tar
    // crate rejects it); any other unreadable number reads as 0 too.
    let header = item.header();
    let mut entry = Entry {
        path: path.to_string(),
        kind,
        mode: header.mode().unwrap_or(0) & 0o7777,
        uid: header.uid().unwrap_or(0),
        gid: header.gid().unwrap_or(0),
        size: if kind == EntryKind::File {
            item.size()
        } else {
            0
        },
        mtime: header.mtime().unwrap_or(0),
        link_target: None,
    };
    if matches!(kind, EntryKind::Symlink | EntryKind::Hardlink) {
        let target = item
            .link_name_bytes()
            .map(|b| b.into_owned())
            .unwrap_or_default();
        let target = String::from_utf8(target)
            .map_err(|_| invalid(format!("{path}: the link target is not valid UTF-8")))?;
        entry.link_target = Some(if kind == EntryKind::Hardlink {
            archive_path(&target)?
        } else {
            target
        });
    }
    if let Ok(Some(extensions)) = item.pax_extensions() {
        for ext in extensions.flatten() {
            let value = ext.value().unwrap_or("");
            let number = value.split('.').next().and_then(|v| v.parse::<u64>().ok());
            match (ext.key(), number) {
                (Ok("uid"), Some(n)) => entry.uid = n,
                (Ok("gid"), Some(n)) => entry.gid = n,
                (Ok("mtime"), Some(n)) => entry.mtime = n,
                _ => {}
            }
        }
    }
    Ok(entry)
}

/// A tar entry's name as a context path: cleaned, relative (`""` for the root); `..` that
/// climbs out of a relative name is an error (at the root of an absolute one it is dropped).
fn archive_path(raw: &str) -> Result<String, ContextError> {
    let rooted = raw.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in raw.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.pop().is_none() && !rooted {
                    return Err(ContextError::PathEscapes(raw.to_string()));
                }
            }
            other => {
                if cfg!(windows) && (other.contains('\\') || other.contains(':')) {
                    return Err(invalid(format!("{raw:?} cannot be stored on this system")));
                }
                parts.push(other);
            }
        }
    }
    Ok(parts.join("/"))
}

/// A cleaned relative path as a context path (`""` for the root), `None` if it climbs out.
fn inside(cleaned: String) -> Option<String> {
    match cleaned.as_str() {
        "." => Some(String::new()),
        c if c == ".." || c.starts_with("../") => None,
        _ => Some(cleaned),
    }
}

/// A path asked about (read_file, entry), a leading `/` ignored.
pub(super) fn query_path(path: &str) -> Option<String> {
    inside(clean_path(path.trim_start_matches('/')))
}

/// A COPY source as a context path: an absolute one is clamped at the root (as Go's
/// `path.Clean` does), a relative one may not climb out.
fn source_path(src: &str) -> Result<String, ContextError> {
    let cleaned = clean_path(src);
    match cleaned.strip_prefix('/') {
        Some(rest) => Ok(rest.to_string()),
        None => inside(cleaned).ok_or_else(|| ContextError::OutsideContext(src.to_string())),
    }
}

/// Whether a source has an unescaped `*`, `?` or `[`.
fn has_wildcards(path: &str) -> bool {
    let mut chars = path.chars();
    while let Some(c) = chars.next() {
        match c {
            '\\' => {
                chars.next();
            }
            '*' | '?' | '[' => return true,
            _ => {}
        }
    }
    false
}

/// Docker's COPY destination rules. `dest` is absolute or relative to `workdir`; it names a
/// directory when it ends in `/` (or is `.`/`..`, or ends in `/.`/`/..`), and only then may
/// `several_sources` be set. A single literal file source copied to a `dest` that is not a
/// directory takes `dest` as its new name; everything else goes to `dest/<rel>`. Returns
/// the absolute, cleaned path in the image for each selected entry.
pub fn destinations(
    selected: &[Selected],
    dest: &str,
    workdir: &str,
    several_sources: bool,
) -> Result<Vec<(String, Selected)>, ContextError> {
    let names_dir = dest.ends_with('/')
        || dest == "."
        || dest == ".."
        || dest.ends_with("/.")
        || dest.ends_with("/..");
    if several_sources && !names_dir {
        return Err(ContextError::DestinationNotDirectory);
    }
    let base = if dest.starts_with('/') {
        clean_path(dest)
    } else {
        clean_path(&format!("/{}/{dest}", workdir.trim_start_matches('/')))
    };
    Ok(selected
        .iter()
        .map(|sel| {
            let path = if sel.single_file && !names_dir {
                base.clone()
            } else {
                clean_path(&format!("{base}/{}", sel.rel))
            };
            (path, sel.clone())
        })
        .collect())
}

#[cfg(test)]
#[path = "context_tests.rs"]
mod tests;
