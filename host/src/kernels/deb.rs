//! A Debian `linux-image-*.deb` opened without dpkg: the `ar` archive's `control.tar.*`
//! gives the package and version, its `data.tar.*` (xz, zstd, gzip or plain) the kernel
//! (`boot/vmlinuz-*`), its config (`boot/config-*`) and its modules
//! (`lib/modules/<release>/` or `usr/lib/modules/<release>/`), which are all this takes out.
//! Nothing is installed: everything lands under the directory given.

use std::fs;
use std::io::{BufReader, BufWriter, Read, Seek};
use std::path::{Component, Path, PathBuf};

use super::add::AddError;

/// What a kernel package holds, unpacked under a directory.
#[derive(Debug)]
pub struct Unpacked {
    pub package: String,
    pub version: String,
    pub release: String,
    pub image: PathBuf,
    pub config: Option<PathBuf>,
    /// `boot/System.map-<release>`: the names of the kernel's functions.
    pub system_map: Option<PathBuf>,
    pub modules: Option<PathBuf>,
}

/// Whether `bytes` start an `ar` archive (a `.deb`).
pub fn is_deb(head: &[u8]) -> bool {
    head.starts_with(b"!<arch>\n")
}

/// Unpacks the kernel, config and modules of the package at `deb` into `into`.
pub fn unpack(deb: &Path, into: &Path) -> Result<Unpacked, AddError> {
    let bad = |what: String| AddError::BadPackage {
        path: deb.to_path_buf(),
        what,
    };
    let io = |what: &str| {
        let what = what.to_string();
        move |e: std::io::Error| AddError::BadPackage {
            path: deb.to_path_buf(),
            what: format!("{what}: {e}"),
        }
    };
    let file = fs::File::open(deb).map_err(io("opening it"))?;
    let mut archive = ar::Archive::new(BufReader::new(file));
    let (mut package, mut version) = (String::new(), String::new());
    let mut data = false;
    while let Some(entry) = archive.next_entry() {
        let mut entry = entry.map_err(io("reading the ar archive"))?;
        let name = String::from_utf8_lossy(entry.header().identifier()).into_owned();
        if name.starts_with("control.tar") {
            let mut tar = tempfile::tempfile_in(into).map_err(io("a temporary file"))?;
            decompress(&name, &mut entry, &mut tar).map_err(io(&name))?;
            tar.rewind().map_err(io(&name))?;
            let control = read_control(tar).map_err(io("reading control"))?;
            for line in control.lines() {
                if let Some(v) = line.strip_prefix("Package:") {
                    package = v.trim().to_string();
                } else if let Some(v) = line.strip_prefix("Version:") {
                    version = v.trim().to_string();
                }
            }
        } else if name.starts_with("data.tar") {
            let mut tar = tempfile::tempfile_in(into).map_err(io("a temporary file"))?;
            decompress(&name, &mut entry, &mut tar).map_err(io(&name))?;
            tar.rewind().map_err(io(&name))?;
            extract(tar, into).map_err(io(&name))?;
            data = true;
        }
    }
    if !data {
        return Err(bad("no data.tar member: not a Debian package".into()));
    }
    if !package.starts_with("linux-image-") {
        return Err(bad(format!(
            "it is the package {package:?}, not a linux-image-* kernel package"
        )));
    }
    let boot = into.join("boot");
    let image = find(&boot, "vmlinuz-")
        .or_else(|| find(&boot, "vmlinux-"))
        .ok_or_else(|| bad("it holds no boot/vmlinuz-* kernel".into()))?;
    let release = image
        .file_name()
        .and_then(|n| n.to_str())
        .and_then(|n| n.split_once('-'))
        .map(|(_, r)| r.to_string())
        .unwrap_or_default();
    let config = Some(boot.join(format!("config-{release}"))).filter(|p| p.is_file());
    let system_map = Some(boot.join(format!("System.map-{release}"))).filter(|p| p.is_file());
    let modules = ["lib/modules", "usr/lib/modules"]
        .iter()
        .map(|d| into.join(d).join(&release))
        .find(|p| p.is_dir());
    Ok(Unpacked {
        package,
        version,
        release,
        image,
        config,
        system_map,
        modules,
    })
}

fn find(dir: &Path, prefix: &str) -> Option<PathBuf> {
    let mut found: Vec<PathBuf> = fs::read_dir(dir)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .filter(|p| {
            p.file_name()
                .and_then(|n| n.to_str())
                .is_some_and(|n| n.starts_with(prefix))
        })
        .collect();
    found.sort();
    found.pop()
}

/// Bytes (a package member, a module file) decompressed by the name's suffix: `.xz`,
/// `.zst`, `.gz`, or none.
pub(super) fn decompress(
    name: &str,
    input: &mut impl Read,
    out: &mut impl std::io::Write,
) -> std::io::Result<()> {
    let mut out = BufWriter::new(out);
    if name.ends_with(".xz") {
        lzma_rs::xz_decompress(&mut BufReader::new(input), &mut out)
            .map_err(|e| std::io::Error::other(format!("xz: {e}")))?;
    } else if name.ends_with(".zst") {
        let mut d = ruzstd::decoding::StreamingDecoder::new(input)
            .map_err(|e| std::io::Error::other(format!("zstd: {e}")))?;
        std::io::copy(&mut d, &mut out)?;
    } else if name.ends_with(".gz") {
        std::io::copy(&mut flate2::read::GzDecoder::new(input), &mut out)?;
    } else {
        std::io::copy(input, &mut out)?;
    }
    out.into_inner().map_err(|e| e.into_error())?;
    Ok(())
}

fn read_control(tar: fs::File) -> std::io::Result<String> {
    let mut archive = tar::Archive::new(tar);
    for entry in archive.entries()? {
        let mut entry = entry?;
        if entry.path()?.to_string_lossy().trim_start_matches("./") == "control" {
            let mut text = String::new();
            entry.read_to_string(&mut text)?;
            return Ok(text);
        }
    }
    Ok(String::new())
}

/// The kernel's files out of `data.tar`: regular files and directories under `boot/`,
/// `lib/modules/` and `usr/lib/modules/`, with no `..` and no links.
fn extract(tar: fs::File, into: &Path) -> std::io::Result<()> {
    let mut archive = tar::Archive::new(BufReader::new(tar));
    for entry in archive.entries()? {
        let mut entry = entry?;
        let path = entry.path()?.into_owned();
        let rel: PathBuf = path
            .components()
            .filter(|c| !matches!(c, Component::CurDir | Component::RootDir))
            .collect();
        if rel.components().any(|c| !matches!(c, Component::Normal(_))) {
            continue;
        }
        let text = rel.to_string_lossy();
        let wanted = ["boot/", "lib/modules/", "usr/lib/modules/"]
            .iter()
            .any(|p| text.starts_with(p));
        if !wanted {
            continue;
        }
        let dest = into.join(&rel);
        let kind = entry.header().entry_type();
        if kind.is_dir() {
            fs::create_dir_all(&dest)?;
        } else if kind.is_file() {
            if let Some(parent) = dest.parent() {
                fs::create_dir_all(parent)?;
            }
            let mut out = fs::File::create(&dest)?;
            std::io::copy(&mut entry, &mut out)?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn tar_of(files: &[(&str, &[u8])]) -> Vec<u8> {
        let mut b = tar::Builder::new(Vec::new());
        for (name, data) in files {
            let mut h = tar::Header::new_gnu();
            h.set_size(data.len() as u64);
            h.set_mode(0o644);
            b.append_data(&mut h, name, *data).unwrap();
        }
        b.into_inner().unwrap()
    }

    fn deb(control: &[u8], data: &[u8]) -> Vec<u8> {
        let mut out = Vec::new();
        {
            let mut a = ar::Builder::new(&mut out);
            for (name, bytes) in [
                ("debian-binary", &b"2.0\n"[..]),
                ("control.tar.gz", control),
                ("data.tar", data),
            ] {
                let header = ar::Header::new(name.as_bytes().to_vec(), bytes.len() as u64);
                a.append(&header, bytes).unwrap();
            }
        }
        out
    }

    fn gz(bytes: &[u8]) -> Vec<u8> {
        use std::io::Write;
        let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::fast());
        e.write_all(bytes).unwrap();
        e.finish().unwrap()
    }

    #[test]
    fn a_kernel_package_gives_its_image_config_and_modules() {
        let control = gz(&tar_of(&[(
            "./control",
            b"Package: linux-image-6.12.1-cloud-amd64\nVersion: 6.12.1-1\n",
        )]));
        let data = tar_of(&[
            ("./boot/vmlinuz-6.12.1-cloud-amd64", b"KERNEL"),
            ("./boot/config-6.12.1-cloud-amd64", b"CONFIG_X=y\n"),
            (
                "./boot/System.map-6.12.1-cloud-amd64",
                b"ffffffff81000000 T _text\n",
            ),
            (
                "./lib/modules/6.12.1-cloud-amd64/kernel/fs/overlay.ko.xz",
                b"M",
            ),
            ("./usr/share/doc/x/changelog", b"not taken"),
        ]);
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("k.deb");
        fs::write(&path, deb(&control, &data)).unwrap();
        let into = tmp.path().join("out");
        fs::create_dir(&into).unwrap();
        let u = unpack(&path, &into).unwrap();
        assert_eq!(u.package, "linux-image-6.12.1-cloud-amd64");
        assert_eq!(u.version, "6.12.1-1");
        assert_eq!(u.release, "6.12.1-cloud-amd64");
        assert_eq!(fs::read(&u.image).unwrap(), b"KERNEL");
        assert!(u.config.unwrap().is_file());
        assert!(u.system_map.unwrap().is_file());
        assert!(u.modules.unwrap().join("kernel/fs/overlay.ko.xz").is_file());
        assert!(
            !into.join("usr/share").exists(),
            "only the kernel's files are taken"
        );
    }

    #[test]
    fn other_packages_are_refused_by_name() {
        let control = gz(&tar_of(&[("./control", b"Package: hello\nVersion: 1\n")]));
        let tmp = tempfile::tempdir().unwrap();
        let path = tmp.path().join("h.deb");
        fs::write(&path, deb(&control, &tar_of(&[]))).unwrap();
        let err = unpack(&path, tmp.path()).unwrap_err().to_string();
        assert!(err.contains("\"hello\""), "{err}");
    }
}
