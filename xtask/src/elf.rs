//! Just enough ELF64 parsing to tell whether an executable is statically linked: a dynamically
//! linked one names its loader in a `PT_INTERP` program header.

use std::path::Path;

use anyhow::{bail, ensure, Context, Result};

const PT_INTERP: u32 = 3;

/// Fails unless `path` is a 64-bit little-endian ELF file without a `PT_INTERP` header.
pub fn ensure_static(path: &Path) -> Result<()> {
    let bytes = std::fs::read(path).with_context(|| format!("reading {}", path.display()))?;
    match has_interpreter(&bytes) {
        Ok(false) => {
            println!("static: {}", path.display());
            Ok(())
        }
        Ok(true) => bail!(
            "{} is dynamically linked (it has a PT_INTERP program header); \
             the guest has no dynamic loader, so it must be static",
            path.display()
        ),
        Err(e) => Err(e.context(format!("{} is not a usable ELF64 file", path.display()))),
    }
}

/// Whether the ELF64 image in `bytes` has a `PT_INTERP` program header.
fn has_interpreter(bytes: &[u8]) -> Result<bool> {
    ensure!(bytes.len() >= 64, "too short for an ELF64 header");
    ensure!(&bytes[..4] == b"\x7fELF", "no ELF magic");
    ensure!(bytes[4] == 2, "not ELF64 (class {})", bytes[4]);
    ensure!(bytes[5] == 1, "not little-endian (data {})", bytes[5]);

    let phoff = u64_at(bytes, 0x20)?;
    let phentsize = u64::from(u16_at(bytes, 0x36)?);
    let phnum = u64::from(u16_at(bytes, 0x38)?);
    ensure!(
        phentsize >= 4,
        "program header entries of {phentsize} bytes"
    );

    for index in 0..phnum {
        let offset = phoff
            .checked_add(index * phentsize)
            .and_then(|o| usize::try_from(o).ok())
            .context("program header offset overflows")?;
        if u32_at(bytes, offset)? == PT_INTERP {
            return Ok(true);
        }
    }
    Ok(false)
}

fn field<const N: usize>(bytes: &[u8], offset: usize) -> Result<[u8; N]> {
    bytes
        .get(offset..offset + N)
        .and_then(|s| s.try_into().ok())
        .with_context(|| format!("truncated at offset {offset:#x}"))
}

fn u16_at(bytes: &[u8], offset: usize) -> Result<u16> {
    field(bytes, offset).map(u16::from_le_bytes)
}

fn u32_at(bytes: &[u8], offset: usize) -> Result<u32> {
    field(bytes, offset).map(u32::from_le_bytes)
}

fn u64_at(bytes: &[u8], offset: usize) -> Result<u64> {
    field(bytes, offset).map(u64::from_le_bytes)
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A minimal ELF64 image with the given program header types.
    fn image(types: &[u32]) -> Vec<u8> {
        let mut bytes = vec![0u8; 64];
        bytes[..4].copy_from_slice(b"\x7fELF");
        bytes[4] = 2;
        bytes[5] = 1;
        bytes[0x20..0x28].copy_from_slice(&64u64.to_le_bytes());
        bytes[0x36..0x38].copy_from_slice(&56u16.to_le_bytes());
        bytes[0x38..0x3a].copy_from_slice(&(types.len() as u16).to_le_bytes());
        for &ty in types {
            let mut ph = vec![0u8; 56];
            ph[..4].copy_from_slice(&ty.to_le_bytes());
            bytes.extend(ph);
        }
        bytes
    }

    #[test]
    fn detects_interpreter() {
        assert!(!has_interpreter(&image(&[1, 1, 2])).unwrap());
        assert!(has_interpreter(&image(&[6, PT_INTERP, 1])).unwrap());
    }

    #[test]
    fn rejects_garbage() {
        assert!(has_interpreter(b"#!/bin/sh\n").is_err());
        let mut truncated = image(&[1, 1]);
        truncated.truncate(100);
        assert!(has_interpreter(&truncated).is_err());
    }
}
