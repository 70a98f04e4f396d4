//! The tars berth makes from build contexts: a COPY/ADD layer from selected context
//! entries (`write_tar`), its cache key over contents and metadata (`content_key`), and
//! the context a client sends (`pack_dir`, as the docker CLI packs it).

use std::collections::HashSet;
use std::fs;
use std::io::{self, Read, Write};
use std::path::Path;

use sha2::{Digest, Sha256};

use super::context::{
    has_data, invalid, io_err, join, query_path, Context, ContextError, Entry, EntryKind, Selected,
};
use super::ignore::{clean_path, Ignore};

/// An item's image path as a tar name: cleaned, no leading `/`, `""` for the image root.
fn image_name(path: &str) -> String {
    clean_path(&format!("/{path}"))
        .trim_start_matches('/')
        .to_string()
}

fn effective_mode(entry: &Entry, chmod: Option<u32>) -> u32 {
    match entry.kind {
        EntryKind::Symlink => entry.mode & 0o7777,
        _ => chmod.unwrap_or(entry.mode) & 0o7777,
    }
}

/// What an entry written by [`append`] holds.
enum Body {
    Dir,
    Link(String),
    Data(fs::File, u64),
}

/// Appends one entry to a tar: a directory (named with a trailing `/`), a symlink, or a
/// file's data. Returns the number of data bytes.
fn append<W: Write>(
    builder: &mut tar::Builder<W>,
    name: &str,
    body: Body,
    mode: u32,
    owner: (u64, u64),
    mtime: u64,
) -> Result<u64, ContextError> {
    let mut header = tar::Header::new_gnu();
    header.set_mode(mode);
    header.set_uid(owner.0);
    header.set_gid(owner.1);
    header.set_mtime(mtime);
    header.set_size(0);
    let written = match body {
        Body::Dir => {
            header.set_entry_type(tar::EntryType::Directory);
            builder
                .append_data(&mut header, format!("{name}/"), io::empty())
                .map(|()| 0)
        }
        Body::Link(target) => {
            header.set_entry_type(tar::EntryType::Symlink);
            builder.append_link(&mut header, name, target).map(|()| 0)
        }
        Body::Data(file, len) => {
            header.set_entry_type(tar::EntryType::Regular);
            header.set_size(len);
            builder
                .append_data(&mut header, name, exact(file, len))
                .map(|()| len)
        }
    };
    written.map_err(io_err(format!("writing {name} to a tar")))
}

/// A file's data, exactly `len` bytes even if the file changed size meanwhile.
fn exact(file: fs::File, len: u64) -> impl Read {
    file.take(len).chain(io::repeat(0)).take(len)
}

/// Writes an uncompressed tar of `items` (image path, a leading `/` allowed), reading file
/// data from the context: owner `chown` or 0:0, mode `chmod` (not for symlinks) or the
/// entry's, mtime kept; hard links become regular files; missing parent directories are
/// added first (mode 0755, owner as above). An item for the image root is skipped.
pub fn write_tar(
    ctx: &Context,
    items: &[(String, Selected)],
    chown: Option<(u64, u64)>,
    chmod: Option<u32>,
    out: impl Write,
) -> Result<(), ContextError> {
    let owner = chown.unwrap_or((0, 0));
    let mut builder = tar::Builder::new(out);
    let mut dirs: HashSet<String> = HashSet::new();
    for (path, sel) in items {
        let name = image_name(path);
        if name.is_empty() {
            continue;
        }
        for (i, _) in name.match_indices('/') {
            if dirs.insert(name[..i].to_string()) {
                append(&mut builder, &name[..i], Body::Dir, 0o755, owner, 0)?;
            }
        }
        let entry = &sel.entry;
        let body = match entry.kind {
            EntryKind::Dir => {
                dirs.insert(name.clone());
                Body::Dir
            }
            EntryKind::Symlink => Body::Link(entry.link_target.clone().unwrap_or_default()),
            EntryKind::File | EntryKind::Hardlink => {
                let (file, len) = open_data(ctx, entry)?;
                Body::Data(file, len)
            }
        };
        let mode = effective_mode(entry, chmod);
        append(&mut builder, &name, body, mode, owner, entry.mtime)?;
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("writing the COPY tar"))
}

fn open_data(ctx: &Context, entry: &Entry) -> Result<(fs::File, u64), ContextError> {
    let what = || format!("reading {} from the build context", entry.path);
    let file = fs::File::open(ctx.disk_path(&entry.path)).map_err(io_err(what()))?;
    let len = file.metadata().map_err(io_err(what()))?.len();
    Ok((file, len))
}

/// A cache key for COPY/ADD: SHA-256 (hex) over each item's destination path, kind, mode
/// (after `chmod`), owner (after `chown`), link target and file content — not mtimes.
pub fn content_key(
    ctx: &Context,
    items: &[(String, Selected)],
    chown: Option<(u64, u64)>,
    chmod: Option<u32>,
) -> Result<String, ContextError> {
    fn field(hasher: &mut Sha256, bytes: &[u8]) {
        hasher.update((bytes.len() as u64).to_be_bytes());
        hasher.update(bytes);
    }
    let (uid, gid) = chown.unwrap_or((0, 0));
    let mut hasher = Sha256::new();
    hasher.update(b"berth-copy-key-v1\0");
    for (path, sel) in items {
        let entry = &sel.entry;
        field(&mut hasher, image_name(path).as_bytes());
        let kind: &[u8] = match entry.kind {
            EntryKind::Dir => b"dir",
            EntryKind::Symlink => b"symlink",
            EntryKind::File | EntryKind::Hardlink => b"file",
        };
        field(&mut hasher, kind);
        hasher.update(effective_mode(entry, chmod).to_be_bytes());
        hasher.update(uid.to_be_bytes());
        hasher.update(gid.to_be_bytes());
        field(
            &mut hasher,
            entry.link_target.as_deref().unwrap_or("").as_bytes(),
        );
        if has_data(entry.kind) {
            let (file, len) = open_data(ctx, entry)?;
            hasher.update(len.to_be_bytes());
            let mut data = exact(file, len);
            let mut buf = vec![0u8; 64 * 1024];
            loop {
                let n = data
                    .read(&mut buf)
                    .map_err(io_err(format!("reading {}", entry.path)))?;
                if n == 0 {
                    break;
                }
                hasher.update(&buf[..n]);
            }
        }
    }
    Ok(format!("{:x}", hasher.finalize()))
}

/// Tars the directory `dir` for sending, as the docker CLI does: every path not excluded by
/// `ignore` (descending into excluded directories only when an exception may lie below, or
/// an `always` path does), plus the `always` paths (the Dockerfile, the `.dockerignore`)
/// even when excluded. Names are relative and `/`-separated, owners 0:0, symlinks kept as
/// symlinks, other special files skipped, modes from the file system where the platform has
/// them (else 0644 for files, 0755 for directories). Returns the number of file data bytes.
pub fn pack_dir(
    dir: &Path,
    ignore: &Ignore,
    always: &[&str],
    out: impl Write,
) -> Result<u64, ContextError> {
    pack_dir_with(dir, ignore, always, None, out)
}

/// [`pack_dir`], with one more file (`name`, `data`) at the end: the Dockerfile from
/// outside the context, under the name the docker CLI gives it.
pub fn pack_dir_with(
    dir: &Path,
    ignore: &Ignore,
    always: &[&str],
    extra: Option<(&str, &[u8])>,
    out: impl Write,
) -> Result<u64, ContextError> {
    let always: Vec<String> = always
        .iter()
        .filter_map(|a| query_path(a))
        .filter(|a| !a.is_empty())
        .collect();
    let mut builder = tar::Builder::new(out);
    let mut total = 0;
    pack_walk(dir, "", ignore, &always, &mut builder, &mut total)?;
    if let Some((name, data)) = extra {
        let mut header = tar::Header::new_gnu();
        header.set_size(data.len() as u64);
        header.set_mode(0o644);
        builder
            .append_data(&mut header, name, data)
            .map_err(io_err("writing the build context"))?;
        total += data.len() as u64;
    }
    builder
        .into_inner()
        .and_then(|mut w| w.flush())
        .map_err(io_err("writing the build context"))?;
    Ok(total)
}

fn pack_walk<W: Write>(
    disk: &Path,
    rel: &str,
    ignore: &Ignore,
    always: &[String],
    builder: &mut tar::Builder<W>,
    total: &mut u64,
) -> Result<(), ContextError> {
    let listing = || format!("reading directory {}", disk.display());
    let mut children = Vec::new();
    for item in fs::read_dir(disk).map_err(io_err(listing()))? {
        let item = item.map_err(io_err(listing()))?;
        let name = item.file_name().into_string().map_err(|name| {
            invalid(format!(
                "{} is not a valid UTF-8 name",
                Path::new(&name).display()
            ))
        })?;
        children.push((name, item.path()));
    }
    children.sort();
    for (name, path) in children {
        let child = join(rel, &name);
        let meta = fs::symlink_metadata(&path).map_err(io_err(format!("reading {child}")))?;
        let kind = meta.file_type();
        let excluded = !always.contains(&child) && ignore.excluded(&child);
        let mtime = meta
            .modified()
            .ok()
            .and_then(|t| t.duration_since(std::time::UNIX_EPOCH).ok())
            .map_or(0, |d| d.as_secs());
        let (body, mode) = if kind.is_dir() {
            let below = join(&child, "");
            if !excluded {
                append(
                    builder,
                    &child,
                    Body::Dir,
                    fs_mode(&meta, true),
                    (0, 0),
                    mtime,
                )?;
            }
            if !excluded
                || ignore.may_have_exceptions_under(&child)
                || always.iter().any(|a| a.starts_with(&below))
            {
                pack_walk(&path, &child, ignore, always, builder, total)?;
            }
            continue;
        } else if excluded {
            continue;
        } else if kind.is_symlink() {
            let target = fs::read_link(&path).map_err(io_err(format!("reading link {child}")))?;
            let target = target.to_string_lossy().into_owned();
            let target = if cfg!(windows) {
                target.replace('\\', "/")
            } else {
                target
            };
            (Body::Link(target), 0o777)
        } else if kind.is_file() {
            let file = fs::File::open(&path).map_err(io_err(format!("reading {child}")))?;
            (Body::Data(file, meta.len()), fs_mode(&meta, false))
        } else {
            continue;
        };
        *total += append(builder, &child, body, mode, (0, 0), mtime)?;
    }
    Ok(())
}

#[cfg(unix)]
fn fs_mode(meta: &fs::Metadata, _is_dir: bool) -> u32 {
    use std::os::unix::fs::PermissionsExt;
    meta.permissions().mode() & 0o7777
}

#[cfg(not(unix))]
fn fs_mode(_meta: &fs::Metadata, is_dir: bool) -> u32 {
    if is_dir {
        0o755
    } else {
        0o644
    }
}
