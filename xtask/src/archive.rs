//! Deterministic newc cpio archives, as the kernel unpacks them into its initial rootfs:
//! every entry owned by 0:0 with mtime 0, inodes numbered in order of addition.

use std::io::Write;

use anyhow::{ensure, Context, Result};
use cpio::newc::{self, ModeFileType};
use cpio::NewcBuilder;

pub struct Archive {
    bytes: Vec<u8>,
    next_ino: u32,
}

impl Archive {
    /// An empty archive whose inodes count up from `first_ino`. Archives that are concatenated
    /// into one initramfs should use disjoint ranges.
    pub fn new(first_ino: u32) -> Self {
        Self {
            bytes: Vec::new(),
            next_ino: first_ino,
        }
    }

    pub fn dir(&mut self, path: &str, perm: u32) -> Result<()> {
        let entry = self.entry(path, ModeFileType::Directory, perm).nlink(2);
        self.write(entry, path, &[])
    }

    pub fn file(&mut self, path: &str, perm: u32, data: &[u8]) -> Result<()> {
        let entry = self.entry(path, ModeFileType::Regular, perm);
        self.write(entry, path, data)
    }

    pub fn symlink(&mut self, path: &str, target: &str) -> Result<()> {
        let entry = self.entry(path, ModeFileType::Symlink, 0o777);
        self.write(entry, path, target.as_bytes())
    }

    pub fn char_dev(&mut self, path: &str, perm: u32, major: u32, minor: u32) -> Result<()> {
        let entry = self
            .entry(path, ModeFileType::Char, perm)
            .rdev_major(major)
            .rdev_minor(minor);
        self.write(entry, path, &[])
    }

    /// Appends the trailer and returns the archive's bytes.
    pub fn finish(self) -> Result<Vec<u8>> {
        newc::trailer(self.bytes).context("writing the cpio trailer")
    }

    fn entry(&mut self, path: &str, kind: ModeFileType, perm: u32) -> NewcBuilder {
        let ino = self.next_ino;
        self.next_ino += 1;
        // The kernel unpacks relative to the rootfs; gen_init_cpio also drops the leading '/'.
        NewcBuilder::new(path.trim_start_matches('/'))
            .ino(ino)
            .uid(0)
            .gid(0)
            .mtime(0)
            .mode(perm)
            .set_mode_file_type(kind)
    }

    fn write(&mut self, entry: NewcBuilder, path: &str, data: &[u8]) -> Result<()> {
        ensure!(
            !path.trim_start_matches('/').is_empty(),
            "empty cpio entry name"
        );
        let size = u32::try_from(data.len())
            .with_context(|| format!("{path}: too large for a newc archive"))?;
        let mut writer = entry.write(&mut self.bytes, size);
        writer
            .write_all(data)
            .and_then(|()| writer.finish().map(drop))
            .with_context(|| format!("adding {path} to the cpio archive"))
    }
}

/// Reading archives back, for tests.
#[cfg(test)]
pub mod testing {
    use std::io::Read;

    use cpio::NewcReader;

    #[derive(Debug, PartialEq)]
    pub struct Seen {
        pub name: String,
        pub mode: u32,
        pub rdev: (u32, u32),
        pub data: Vec<u8>,
    }

    /// Every entry of one archive (up to its trailer); checks the 0:0 owner and mtime 0.
    pub fn entries(mut bytes: &[u8]) -> Vec<Seen> {
        let mut seen = Vec::new();
        loop {
            let mut reader = NewcReader::new(bytes).unwrap();
            let entry = reader.entry();
            if entry.is_trailer() {
                return seen;
            }
            assert_eq!((entry.uid(), entry.gid(), entry.mtime()), (0, 0, 0));
            let (name, mode) = (entry.name().to_owned(), entry.mode());
            let rdev = (entry.rdev_major(), entry.rdev_minor());
            let mut data = Vec::new();
            reader.read_to_end(&mut data).unwrap();
            seen.push(Seen {
                name,
                mode,
                rdev,
                data,
            });
            bytes = reader.finish().unwrap();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::testing::entries;
    use super::*;

    #[test]
    fn round_trip() {
        let mut archive = Archive::new(1);
        archive.dir("/dev", 0o755).unwrap();
        archive.char_dev("/dev/console", 0o600, 5, 1).unwrap();
        archive.file("/init", 0o755, b"#!/bin/sh\n").unwrap();
        archive.symlink("/sbin", "bin").unwrap();
        let bytes = archive.finish().unwrap();
        assert_eq!(bytes.len() % 4, 0);

        let seen = entries(&bytes);
        let summary: Vec<(&str, u32)> = seen.iter().map(|s| (s.name.as_str(), s.mode)).collect();
        assert_eq!(
            summary,
            [
                ("dev", 0o040755),
                ("dev/console", 0o020600),
                ("init", 0o100755),
                ("sbin", 0o120777)
            ]
        );
        assert_eq!(seen[1].rdev, (5, 1));
        assert_eq!(seen[2].data, b"#!/bin/sh\n");
        assert_eq!(seen[3].data, b"bin");
    }

    #[test]
    fn deterministic() {
        let build = || {
            let mut archive = Archive::new(7);
            archive.file("a", 0o644, b"x").unwrap();
            archive.finish().unwrap()
        };
        assert_eq!(build(), build());
    }
}
