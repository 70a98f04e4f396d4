//! Reading image archives without trusting them: a tar file is scanned once for its entry
//! names (refusing absolute paths and `..`) and each file is then read in place from its
//! offset, streamed; a directory (an OCI layout) is read with the same checks on names.

use std::collections::HashMap;
use std::fs::File;
use std::io::{BufReader, Read, Seek, SeekFrom};
use std::path::{Path, PathBuf};

use super::ImageError;

/// The most JSON (manifests, configs, indexes) berth reads into memory from one file.
pub(crate) const JSON_LIMIT: u64 = 8 << 20;
/// How many links berth follows from one name.
const MAX_LINKS: usize = 16;

/// Files by name, from a tar archive or a directory.
pub(crate) trait Source {
    /// The input, for messages.
    fn name(&self) -> &str;
    fn exists(&self, path: &str) -> bool;
    /// A stream of the file `path` and its size.
    fn open(&self, path: &str) -> Result<(Box<dyn Read + '_>, u64), ImageError>;

    /// The whole file, refused when larger than [`JSON_LIMIT`].
    fn read_small(&self, path: &str) -> Result<Vec<u8>, ImageError> {
        let (reader, size) = self.open(path)?;
        let what = || format!("{}: {path}", self.name());
        if size > JSON_LIMIT {
            return Err(ImageError::TooLarge {
                what: what(),
                limit: JSON_LIMIT,
            });
        }
        let mut bytes = Vec::with_capacity(size as usize);
        reader
            .take(JSON_LIMIT + 1)
            .read_to_end(&mut bytes)
            .map_err(|source| ImageError::Io {
                context: format!("cannot read {}", what()),
                source,
            })?;
        if bytes.len() as u64 > JSON_LIMIT {
            return Err(ImageError::TooLarge {
                what: what(),
                limit: JSON_LIMIT,
            });
        }
        Ok(bytes)
    }
}

/// `path` as a clean relative name: `./a//b` is `a/b`; absolute paths and `..` are refused.
pub(crate) fn clean(path: &str) -> Result<String, ImageError> {
    let unsafe_path = |reason| ImageError::UnsafePath {
        path: path.to_string(),
        reason,
    };
    if path.starts_with('/') || path.starts_with('\\') {
        return Err(unsafe_path("absolute path"));
    }
    let mut parts = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => return Err(unsafe_path("`..` leaves the archive")),
            p if p.contains('\\') || (cfg!(windows) && p.contains(':')) => {
                return Err(unsafe_path("backslash or drive in a name"))
            }
            p => parts.push(p),
        }
    }
    if parts.is_empty() {
        return Err(unsafe_path("empty name"));
    }
    Ok(parts.join("/"))
}

/// `target` of a symbolic link at `link`, resolved within the archive.
fn resolve_symlink(link: &str, target: &str) -> Result<String, ImageError> {
    let escape = || ImageError::UnsafePath {
        path: format!("{link} -> {target}"),
        reason: "the link points outside the archive",
    };
    if target.starts_with('/') {
        return Err(escape());
    }
    let mut parts: Vec<&str> = link.split('/').collect();
    parts.pop();
    for part in target.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                parts.pop().ok_or_else(escape)?;
            }
            p => parts.push(p),
        }
    }
    clean(&parts.join("/")).map_err(|_| escape())
}

enum Node {
    File { offset: u64, size: u64 },
    Link(String),
}

/// A tar archive on disk, read in place.
pub(crate) struct TarSource {
    path: PathBuf,
    name: String,
    nodes: HashMap<String, Node>,
}

impl TarSource {
    /// Scans the archive's entries; an unsafe name anywhere refuses the whole archive.
    pub(crate) fn scan(path: &Path, name: &str) -> Result<TarSource, ImageError> {
        let file = File::open(path).map_err(ImageError::io("cannot open", path))?;
        let broken = |source| ImageError::Io {
            context: format!("{name}: not a readable tar archive"),
            source,
        };
        let mut archive = tar::Archive::new(BufReader::new(file));
        let mut nodes = HashMap::new();
        for entry in archive.entries_with_seek().map_err(broken)? {
            let entry = entry.map_err(broken)?;
            let raw = entry.path_bytes();
            let text = std::str::from_utf8(&raw).map_err(|_| ImageError::UnsafePath {
                path: String::from_utf8_lossy(&raw).into_owned(),
                reason: "the name is not UTF-8",
            })?;
            let kind = entry.header().entry_type();
            if kind.is_dir() {
                if text.trim_matches('/') != "." {
                    clean(text)?;
                }
                continue;
            }
            let key = clean(text)?;
            let link = || {
                let target = entry.link_name_bytes().unwrap_or_default();
                String::from_utf8(target.into_owned()).map_err(|_| ImageError::UnsafePath {
                    path: key.clone(),
                    reason: "the link target is not UTF-8",
                })
            };
            let node = if kind.is_file() || kind.is_contiguous() {
                Node::File {
                    offset: entry.raw_file_position(),
                    size: entry.size(),
                }
            } else if kind.is_symlink() {
                Node::Link(resolve_symlink(&key, &link()?)?)
            } else if kind.is_hard_link() {
                Node::Link(clean(&link()?)?)
            } else {
                continue;
            };
            nodes.insert(key, node);
        }
        Ok(TarSource {
            path: path.to_path_buf(),
            name: name.to_string(),
            nodes,
        })
    }

    fn find(&self, path: &str) -> Result<(u64, u64), ImageError> {
        let missing = || ImageError::Missing {
            archive: self.name.clone(),
            path: path.to_string(),
        };
        let mut key = clean(path)?;
        for _ in 0..MAX_LINKS {
            match self.nodes.get(&key).ok_or_else(missing)? {
                Node::File { offset, size } => return Ok((*offset, *size)),
                Node::Link(target) => key = target.clone(),
            }
        }
        Err(ImageError::invalid(
            format!("{}: {path}", self.name),
            "too many levels of links",
        ))
    }
}

impl Source for TarSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn exists(&self, path: &str) -> bool {
        self.find(path).is_ok()
    }

    fn open(&self, path: &str) -> Result<(Box<dyn Read + '_>, u64), ImageError> {
        let (offset, size) = self.find(path)?;
        let mut file = File::open(&self.path).map_err(ImageError::io("cannot open", &self.path))?;
        file.seek(SeekFrom::Start(offset))
            .map_err(ImageError::io("cannot read", &self.path))?;
        let reader = BufReader::with_capacity(1 << 16, file.take(size));
        Ok((Box::new(reader), size))
    }
}

/// An OCI layout (or an unpacked `docker save`) as a directory.
pub(crate) struct DirSource {
    root: PathBuf,
    name: String,
}

impl DirSource {
    pub(crate) fn new(root: &Path, name: &str) -> DirSource {
        DirSource {
            root: root.to_path_buf(),
            name: name.to_string(),
        }
    }

    fn file(&self, path: &str) -> Result<PathBuf, ImageError> {
        Ok(clean(path)?
            .split('/')
            .fold(self.root.clone(), |p, c| p.join(c)))
    }
}

impl Source for DirSource {
    fn name(&self) -> &str {
        &self.name
    }

    fn exists(&self, path: &str) -> bool {
        self.file(path).is_ok_and(|p| p.is_file())
    }

    fn open(&self, path: &str) -> Result<(Box<dyn Read + '_>, u64), ImageError> {
        let full = self.file(path)?;
        if !full.is_file() {
            return Err(ImageError::Missing {
                archive: self.name.clone(),
                path: path.to_string(),
            });
        }
        let file = File::open(&full).map_err(ImageError::io("cannot open", &full))?;
        let size = file
            .metadata()
            .map_err(ImageError::io("cannot read", &full))?
            .len();
        Ok((Box::new(BufReader::with_capacity(1 << 16, file)), size))
    }
}

#[cfg(test)]
mod tests;
