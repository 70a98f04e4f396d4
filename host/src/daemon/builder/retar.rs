//! Tars a build step makes from others: entries renamed (`retar`) with an owner and a mode,
//! a plain or gzip archive opened, and `COPY --from` sources with wildcards resolved
//! against the entries of the directory they name (`Pattern`, Go's `filepath.Match` per
//! path component).

use std::collections::BTreeMap;
use std::io::{Read, Seek, Write};

use sha2::{Digest as _, Sha256};

use super::steps::Failed;
use crate::build::context;
use crate::build::ignore::path_match;

/// `a/b` from a directory (possibly empty: the root) and a relative path.
pub(super) fn join(dir: &str, rel: &str) -> String {
    match (dir.is_empty(), rel.is_empty()) {
        (true, _) => rel.to_string(),
        (_, true) => dir.to_string(),
        _ => format!("{dir}/{rel}"),
    }
}

/// `ADD` of one local tar archive (plain or gzip): its name in the context.
pub(super) fn local_archive(
    add: bool,
    ctx: &context::Context,
    items: &[(String, context::Selected)],
) -> Option<String> {
    if !add || items.len() != 1 || !items[0].1.single_file {
        return None;
    }
    let path = items[0].1.entry.path.clone();
    let mut head = [0u8; 512];
    let mut f = std::fs::File::open(ctx.root().join(&path)).ok()?;
    let n = f.read(&mut head).ok()?;
    let gzip = n >= 2 && head[..2] == [0x1f, 0x8b];
    let tar = n >= 262 && &head[257..262] == b"ustar";
    (gzip || tar).then_some(path)
}

/// A tar reader over a plain or gzip file.
pub(super) fn decompress(mut f: std::fs::File) -> Result<Box<dyn Read>, Failed> {
    let mut magic = [0u8; 2];
    let n = f.read(&mut magic).map_err(|e| e.to_string())?;
    f.rewind().map_err(|e| e.to_string())?;
    Ok(match n == 2 && magic == [0x1f, 0x8b] {
        true => Box::new(flate2::read::GzDecoder::new(f)),
        false => Box::new(f),
    })
}

/// Copies the entries of the tar `input` into `out`, renamed by `map` (`None` skips one),
/// with the owner and file mode given.
pub(super) fn retar<W: Write>(
    input: impl Read,
    out: &mut tar::Builder<W>,
    map: impl Fn(&str) -> Option<String>,
    chown: Option<(u64, u64)>,
    chmod: Option<u32>,
) -> Result<(), Failed> {
    let mut archive = tar::Archive::new(input);
    let bad = |e: std::io::Error| format!("reading an archive: {e}");
    for entry in archive.entries().map_err(bad)? {
        let mut entry = entry.map_err(bad)?;
        let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
        let name = name.trim_start_matches("./").to_string();
        let Some(new) = map(&name) else { continue };
        if new.is_empty() {
            continue;
        }
        let mut header = entry.header().clone();
        if let Some((u, g)) = chown {
            header.set_uid(u);
            header.set_gid(g);
        }
        let kind = header.entry_type();
        if let (Some(m), true) = (chmod, kind.is_file() || kind.is_dir()) {
            header.set_mode(m);
        }
        if kind.is_hard_link() {
            let target = entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            let target = map(target.trim_start_matches("./")).unwrap_or(target);
            out.append_link(&mut header, &new, &target).map_err(bad)?;
            continue;
        }
        if kind.is_symlink() {
            let target = entry
                .link_name()
                .map_err(bad)?
                .map(|l| l.to_string_lossy().into_owned())
                .unwrap_or_default();
            out.append_link(&mut header, &new, &target).map_err(bad)?;
            continue;
        }
        out.append_data(&mut header, &new, &mut entry)
            .map_err(bad)?;
    }
    Ok(())
}

pub(super) fn hex(bytes: &[u8]) -> String {
    format!("{:x}", Sha256::digest(bytes))
}

/// Whether a `COPY --from` source names paths by wildcards (`*`, `?`, `[...]`).
pub(super) fn has_wildcards(source: &str) -> bool {
    source.contains(['*', '?', '['])
}

/// A `COPY --from` source with wildcards, split where the first wildcard is: `dir` (no
/// wildcard, absolute) is read from the image, and each of `parts` matches one path
/// component under it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub(super) struct Pattern {
    pub dir: String,
    pub parts: Vec<String>,
}

impl Pattern {
    pub fn new(source: &str) -> Pattern {
        let comps: Vec<&str> = source
            .split('/')
            .filter(|c| !c.is_empty() && *c != ".")
            .collect();
        let first = comps
            .iter()
            .position(|c| has_wildcards(c))
            .unwrap_or(comps.len());
        Pattern {
            dir: format!("/{}", comps[..first].join("/")),
            parts: comps[first..].iter().map(|c| c.to_string()).collect(),
        }
    }

    /// The matches among a tar's entries, relative to `dir` (`""` is `dir` itself):
    /// each matching path with whether it is a directory, in order.
    pub fn matches(&self, entries: &[(String, bool)]) -> Result<BTreeMap<String, bool>, Failed> {
        let mut found = BTreeMap::new();
        for (rel, is_dir) in entries {
            let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
            if comps.len() != self.parts.len() {
                continue;
            }
            let mut all = true;
            for (p, c) in self.parts.iter().zip(&comps) {
                if !path_match(p, c)? {
                    all = false;
                    break;
                }
            }
            if all {
                found.insert(comps.join("/"), *is_dir);
            }
        }
        Ok(found)
    }

    /// Where an entry (relative to `dir`) goes under `dest_dir`, as COPY places sources:
    /// a matched directory's contents go into the destination, a matched file under its
    /// name (`into_dir`) or as the destination itself.
    pub fn place(
        &self,
        rel: &str,
        found: &BTreeMap<String, bool>,
        dest_dir: &str,
        into_dir: bool,
    ) -> Option<String> {
        let comps: Vec<&str> = rel.split('/').filter(|c| !c.is_empty()).collect();
        if comps.len() < self.parts.len() {
            return None;
        }
        let (head, rest) = comps.split_at(self.parts.len());
        let head = head.join("/");
        let is_dir = *found.get(&head)?;
        let rest = rest.join("/");
        match is_dir {
            true if rest.is_empty() => None,
            true => Some(join(dest_dir, &rest)),
            false if !rest.is_empty() => None,
            false if into_dir => Some(join(dest_dir, head.rsplit('/').next().unwrap_or(&head))),
            false => Some(dest_dir.to_string()),
        }
    }
}

/// The entries of a tar that `ArchiveGet` wrote for a directory named `base` (`.` for
/// the root): each path relative to the directory, with whether it is a directory.
pub(super) fn entries_under(
    mut file: std::fs::File,
    base: &str,
) -> Result<Vec<(String, bool)>, Failed> {
    let bad = |e: std::io::Error| format!("reading an archive: {e}");
    let mut out = Vec::new();
    {
        let mut archive = tar::Archive::new(&mut file);
        for entry in archive.entries().map_err(bad)? {
            let entry = entry.map_err(bad)?;
            let name = entry.path().map_err(bad)?.to_string_lossy().into_owned();
            if let Some(rel) = relative_to(&name, base) {
                out.push((rel, entry.header().entry_type().is_dir()));
            }
        }
    }
    file.rewind().map_err(|e| e.to_string())?;
    Ok(out)
}

/// An `ArchiveGet` entry's path relative to the directory it was made from.
pub(super) fn relative_to(name: &str, base: &str) -> Option<String> {
    let name = name.trim_end_matches('/');
    if base == "." {
        let n = name.trim_start_matches("./");
        return Some(if n == "." {
            String::new()
        } else {
            n.to_string()
        });
    }
    let rest = name.strip_prefix(base)?;
    (rest.is_empty() || rest.starts_with('/')).then(|| rest.trim_start_matches('/').to_string())
}

/// `input` rewritten with the directories `dirs` (relative path and stat) first, as they
/// are, and the input's own entries for those paths left out.
pub(super) fn with_dirs_first(
    input: std::fs::File,
    dirs: &[(String, berth_protocol::PathStat)],
    out: std::fs::File,
) -> Result<std::fs::File, Failed> {
    let bad = |e: std::io::Error| format!("rewriting the COPY tar: {e}");
    let mut builder = tar::Builder::new(out);
    for (rel, s) in dirs {
        let mut header = tar::Header::new_gnu();
        header.set_entry_type(tar::EntryType::Directory);
        header.set_mode(s.mode & 0o7777);
        header.set_uid(s.uid.into());
        header.set_gid(s.gid.into());
        header.set_mtime(s.mtime_secs.max(0) as u64);
        header.set_size(0);
        builder
            .append_data(&mut header, format!("{rel}/"), std::io::empty())
            .map_err(bad)?;
    }
    retar(
        input,
        &mut builder,
        |p| {
            let trimmed = p.trim_end_matches('/');
            match dirs.iter().any(|(rel, _)| rel == trimmed) {
                true => None,
                false => Some(p.to_string()),
            }
        },
        None,
        None,
    )?;
    let mut out = builder.into_inner().map_err(bad)?;
    out.rewind().map_err(bad)?;
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn patterns_split_at_the_first_wildcard() {
        let p = Pattern::new("/out/*.txt");
        assert_eq!(
            (p.dir.as_str(), p.parts.clone()),
            ("/out", vec!["*.txt".to_string()])
        );
        let p = Pattern::new("a/*/b?");
        assert_eq!(
            (p.dir.as_str(), p.parts.clone()),
            ("/a", vec!["*".into(), "b?".into()])
        );
        assert_eq!(Pattern::new("/*.conf").dir, "/");
    }

    #[test]
    fn wildcard_matches_place_files_and_directory_contents() {
        let p = Pattern::new("/out/[ab]*");
        let entries = [
            ("".to_string(), true),
            ("a.txt".into(), false),
            ("b".into(), true),
            ("b/inner".into(), false),
            ("c.txt".into(), false),
        ];
        let found = p.matches(&entries).unwrap();
        assert_eq!(found.keys().collect::<Vec<_>>(), ["a.txt", "b"]);
        assert_eq!(
            p.place("a.txt", &found, "dst", true),
            Some("dst/a.txt".into())
        );
        assert_eq!(p.place("b", &found, "dst", true), None);
        assert_eq!(
            p.place("b/inner", &found, "dst", true),
            Some("dst/inner".into())
        );
        assert_eq!(p.place("c.txt", &found, "dst", true), None);
        assert_eq!(p.place("", &found, "dst", true), None);
        // One file matched and a destination without a slash: the file is the destination.
        let one = Pattern::new("/out/a*").matches(&entries).unwrap();
        assert_eq!(p.place("a.txt", &one, "etc/x", false), Some("etc/x".into()));
    }

    #[test]
    fn existing_directories_come_first_as_they_are() {
        let mut input = tempfile::tempfile().unwrap();
        {
            let mut b = tar::Builder::new(&mut input);
            let mut h = tar::Header::new_gnu();
            h.set_entry_type(tar::EntryType::Directory);
            h.set_mode(0o755);
            h.set_size(0);
            b.append_data(&mut h, "tmp/", std::io::empty()).unwrap();
            let mut h = tar::Header::new_gnu();
            h.set_mode(0o644);
            h.set_size(2);
            b.append_data(&mut h, "tmp/f", &b"hi"[..]).unwrap();
            b.finish().unwrap();
        }
        input.rewind().unwrap();
        let stat = berth_protocol::PathStat {
            name: "tmp".into(),
            size: 0,
            mode: 0o041777,
            mtime_secs: 5,
            mtime_nanos: 0,
            link_target: String::new(),
            uid: 0,
            gid: 0,
        };
        let out = with_dirs_first(
            input,
            &[("tmp".into(), stat)],
            tempfile::tempfile().unwrap(),
        )
        .unwrap();
        let mut archive = tar::Archive::new(out);
        let seen: Vec<(String, u32)> = archive
            .entries()
            .unwrap()
            .map(|e| {
                let e = e.unwrap();
                let p = e
                    .path()
                    .unwrap()
                    .to_string_lossy()
                    .trim_end_matches('/')
                    .to_string();
                (p, e.header().mode().unwrap())
            })
            .collect();
        assert_eq!(
            seen,
            [("tmp".to_string(), 0o1777), ("tmp/f".to_string(), 0o644)]
        );
    }

    #[test]
    fn entries_are_relative_to_the_archived_directory() {
        assert_eq!(relative_to("out", "out"), Some("".into()));
        assert_eq!(relative_to("out/a", "out"), Some("a".into()));
        assert_eq!(relative_to("outer/a", "out"), None);
        assert_eq!(relative_to("./bin/sh", "."), Some("bin/sh".into()));
        assert_eq!(relative_to("./", "."), Some("".into()));
    }
}
