//! What a kernel image says about itself: whether it is an ELF `vmlinux` (PVH entry) or a
//! `bzImage`, and its release, read from the bzImage setup header's version string or the
//! `Linux version ...` banner of a vmlinux.

/// Whether `bytes` start like an ELF file (an uncompressed vmlinux).
pub fn is_elf(bytes: &[u8]) -> bool {
    bytes.starts_with(ELF_MAGIC)
}

const ELF_MAGIC: &[u8; 4] = b"\x7fELF";

/// Whether the file at `path` is an ELF file, from its first four bytes (a vmlinux with
/// its debug information can be hundreds of megabytes); false for one that cannot be read.
pub fn file_is_elf(path: &std::path::Path) -> bool {
    use std::io::Read;
    let mut magic = [0u8; 4];
    std::fs::File::open(path)
        .and_then(|mut f| f.read_exact(&mut magic))
        .is_ok_and(|()| &magic == ELF_MAGIC)
}

/// The kernel release (`6.12.118+deb12-cloud-amd64`), if the image tells it.
pub fn release(bytes: &[u8]) -> Option<String> {
    if is_elf(bytes) {
        return banner_release(bytes);
    }
    bzimage_release(bytes)
}

/// A bzImage's setup header: "HdrS" at 0x202, and at 0x20E the offset (from 0x200) of a
/// NUL-terminated version string whose first word is the release.
fn bzimage_release(bytes: &[u8]) -> Option<String> {
    if bytes.get(0x202..0x206)? != b"HdrS" {
        return None;
    }
    let offset = u16::from_le_bytes([*bytes.get(0x20E)?, *bytes.get(0x20F)?]) as usize;
    if offset == 0 {
        return None;
    }
    let text = bytes.get(0x200 + offset..)?;
    let end = text
        .iter()
        .position(|b| *b == 0)
        .unwrap_or(text.len())
        .min(256);
    let version = std::str::from_utf8(&text[..end]).ok()?;
    version.split_whitespace().next().map(String::from)
}

fn banner_release(bytes: &[u8]) -> Option<String> {
    const BANNER: &[u8] = b"Linux version ";
    let at = bytes.windows(BANNER.len()).position(|w| w == BANNER)? + BANNER.len();
    let rest = &bytes[at..bytes.len().min(at + 128)];
    let end = rest
        .iter()
        .position(|b| b.is_ascii_whitespace() || *b == 0)?;
    std::str::from_utf8(&rest[..end]).ok().map(String::from)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_file_is_told_elf_from_its_first_bytes() {
        let tmp = tempfile::tempdir().unwrap();
        let (elf, other, short) = (
            tmp.path().join("vmlinux"),
            tmp.path().join("bzImage"),
            tmp.path().join("short"),
        );
        std::fs::write(&elf, b"\x7fELF\x02\x01 and the rest").unwrap();
        std::fs::write(&other, b"MZ\x00\x00 a bzImage").unwrap();
        std::fs::write(&short, b"\x7fEL").unwrap();
        assert!(file_is_elf(&elf));
        assert!(!file_is_elf(&other));
        assert!(!file_is_elf(&short));
        assert!(!file_is_elf(&tmp.path().join("missing")));
    }

    #[test]
    fn bzimage_headers_give_the_release() {
        let mut image = vec![0u8; 0x400];
        image[0x202..0x206].copy_from_slice(b"HdrS");
        image[0x20E..0x210].copy_from_slice(&0x100u16.to_le_bytes());
        let version = b"6.12.118+deb12-cloud-amd64 (debian-kernel@lists.debian.org) #1 SMP\0";
        image[0x300..0x300 + version.len()].copy_from_slice(version);
        assert_eq!(
            release(&image).as_deref(),
            Some("6.12.118+deb12-cloud-amd64")
        );
        image[0x202] = b'X';
        assert_eq!(release(&image), None);
    }

    #[test]
    fn a_vmlinux_banner_gives_the_release() {
        let mut image = b"\x7fELF....".to_vec();
        image.extend_from_slice(b"\0Linux version 6.1.192-berth (root@host) (gcc) #1\0");
        assert!(is_elf(&image));
        assert_eq!(release(&image).as_deref(), Some("6.1.192-berth"));
    }
}
