//! A kernel's modules, as a package ships them (`*.ko`, `*.ko.xz`, `*.ko.zst`, `*.ko.gz`,
//! usually without `modules.dep`, which depmod writes at install time): the ones berth-init
//! needs and everything they depend on, found through each module's own `.modinfo`
//! (`depends=`), decompressed, and packed in load order as a newc cpio archive to append to
//! the base initramfs.

use std::collections::{BTreeMap, HashSet};
use std::io::Write;
use std::path::{Path, PathBuf};

use berth_protocol::kernel::{GUEST_MODULE_DIR, GUEST_MODULE_LIST};

use super::add::AddError;

/// Inodes of the modules archive start here, clear of the base initramfs before it.
const FIRST_INO: u32 = 1 << 20;

/// A module's name as the kernel knows it: the file name without `.ko[.xz|.zst|.gz]`,
/// `-` read as `_`.
pub fn module_name(path: &Path) -> Option<String> {
    let file = path.file_name()?.to_str()?;
    [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|s| file.strip_suffix(s))
        .map(|stem| stem.replace('-', "_"))
}

/// The modules of one kernel release, by name.
pub struct ModuleTree {
    by_name: BTreeMap<String, PathBuf>,
    builtin: HashSet<String>,
}

/// Modules in load order (each after what it depends on), with their bytes.
#[derive(Debug, Default)]
pub struct Plan {
    pub order: Vec<(String, Vec<u8>)>,
    /// Wanted modules built into the kernel.
    pub builtin: Vec<String>,
    /// Wanted modules this kernel has neither as a module nor built in.
    pub absent: Vec<String>,
}

impl ModuleTree {
    /// Indexes `dir` (`lib/modules/<release>`): every module file under it, and the names
    /// in `modules.builtin`.
    pub fn open(dir: &Path) -> Result<ModuleTree, AddError> {
        let mut by_name = BTreeMap::new();
        let mut stack = vec![dir.to_path_buf()];
        while let Some(d) = stack.pop() {
            let entries = std::fs::read_dir(&d).map_err(|e| AddError::io(&d, e))?;
            for entry in entries.flatten() {
                let path = entry.path();
                let Ok(kind) = entry.file_type() else {
                    continue;
                };
                if kind.is_dir() {
                    stack.push(path);
                } else if let (true, Some(name)) = (kind.is_file(), module_name(&path)) {
                    by_name.insert(name, path);
                }
            }
        }
        let builtin = std::fs::read_to_string(dir.join("modules.builtin"))
            .unwrap_or_default()
            .lines()
            .filter_map(|l| module_name(Path::new(l.trim())))
            .collect();
        Ok(ModuleTree { by_name, builtin })
    }

    /// The wanted modules and their dependencies, dependencies first.
    pub fn plan(&self, wanted: &[&str]) -> Result<Plan, AddError> {
        let mut plan = Plan::default();
        let mut done = HashSet::new();
        for name in wanted {
            let name = name.replace('-', "_");
            if self.builtin.contains(&name) {
                plan.builtin.push(name);
            } else if self.by_name.contains_key(&name) {
                self.visit(&name, &mut done, &mut Vec::new(), &mut plan)?;
            } else {
                plan.absent.push(name);
            }
        }
        Ok(plan)
    }

    fn visit(
        &self,
        name: &str,
        done: &mut HashSet<String>,
        path: &mut Vec<String>,
        plan: &mut Plan,
    ) -> Result<(), AddError> {
        if done.contains(name) || self.builtin.contains(name) {
            return Ok(());
        }
        if path.iter().any(|p| p == name) {
            return Err(AddError::Modules(format!(
                "modules depend on each other in a circle: {} -> {name}",
                path.join(" -> ")
            )));
        }
        let file = self.by_name.get(name).ok_or_else(|| {
            AddError::Modules(format!(
                "{} needs the module {name}, which this kernel does not have",
                path.last().map(String::as_str).unwrap_or("berth")
            ))
        })?;
        let bytes = load(file)?;
        path.push(name.to_string());
        for dep in depends(&bytes) {
            self.visit(&dep.replace('-', "_"), done, path, plan)?;
        }
        // A soft dependency loads first when this kernel has it: by its name, or (for a
        // crypto algorithm such as libcrc32c's `crc32c`) its generic implementation.
        for soft in soft_pre(&bytes) {
            let soft = soft.replace('-', "_");
            let generic = format!("{soft}_generic");
            if let Some(name) = [soft, generic]
                .into_iter()
                .find(|n| self.by_name.contains_key(n) || self.builtin.contains(n))
            {
                self.visit(&name, done, path, plan)?;
            }
        }
        path.pop();
        done.insert(name.to_string());
        plan.order.push((name.to_string(), bytes));
        Ok(())
    }
}

/// A module file's bytes, decompressed by its suffix.
fn load(path: &Path) -> Result<Vec<u8>, AddError> {
    let mut file = std::fs::File::open(path).map_err(|e| AddError::io(path, e))?;
    let mut out = Vec::new();
    super::deb::decompress(&path.to_string_lossy(), &mut file, &mut out)
        .map_err(|e| AddError::io(path, e))?;
    Ok(out)
}

/// The `pre:` names of a module's `softdep=` field (`pre: crc32c post: x`).
pub fn soft_pre(module: &[u8]) -> Vec<String> {
    let Some(value) = modinfo(module, b"\0softdep=") else {
        return Vec::new();
    };
    let mut out = Vec::new();
    let mut pre = false;
    for word in value.split_whitespace() {
        match word {
            "pre:" => pre = true,
            "post:" => pre = false,
            w if pre => out.push(w.to_string()),
            _ => {}
        }
    }
    out
}

/// A `.modinfo` field's value: `key` is `\0name=`.
fn modinfo(module: &[u8], key: &[u8]) -> Option<String> {
    let at = module.windows(key.len()).position(|w| w == key)?;
    let rest = &module[at + key.len()..];
    let end = rest.iter().position(|b| *b == 0).unwrap_or(rest.len());
    Some(String::from_utf8_lossy(&rest[..end]).into_owned())
}

/// The `depends=` field of a module's `.modinfo` section: a NUL-separated list of
/// `key=value` strings, so the field is found as `depends=` right after a NUL.
pub fn depends(module: &[u8]) -> Vec<String> {
    modinfo(module, b"\0depends=")
        .unwrap_or_default()
        .split(',')
        .map(str::trim)
        .filter(|d| !d.is_empty())
        .map(String::from)
        .collect()
}

/// The planned modules as a newc archive: `lib/modules/berth/<name>.ko` and the load
/// order in `etc/berth/modules`, owned by root, mtime 0.
pub fn archive(plan: &Plan) -> Result<Vec<u8>, AddError> {
    let mut bytes = Vec::new();
    let mut ino = FIRST_INO;
    let mut add = |path: &str, mode: u32, data: &[u8]| -> std::io::Result<()> {
        let size = u32::try_from(data.len()).map_err(std::io::Error::other)?;
        let mut w = cpio::NewcBuilder::new(path)
            .ino(ino)
            .uid(0)
            .gid(0)
            .mtime(0)
            .mode(mode)
            .nlink(if mode & 0o040000 != 0 { 2 } else { 1 })
            .write(&mut bytes, size);
        ino += 1;
        w.write_all(data)?;
        w.finish()?;
        Ok(())
    };
    let cpio_err =
        |e: std::io::Error| AddError::Modules(format!("writing the modules archive: {e}"));
    for dir in ["lib", "lib/modules", GUEST_MODULE_DIR, "etc", "etc/berth"] {
        add(dir, 0o040755, &[]).map_err(cpio_err)?;
    }
    let mut list = String::new();
    for (name, data) in &plan.order {
        add(&format!("{GUEST_MODULE_DIR}/{name}.ko"), 0o100644, data).map_err(cpio_err)?;
        list.push_str(&format!("{name}.ko\n"));
    }
    add(GUEST_MODULE_LIST, 0o100644, list.as_bytes()).map_err(cpio_err)?;
    cpio::newc::trailer(bytes).map_err(cpio_err)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn module(deps: &str) -> Vec<u8> {
        format!("\x7fELF junk\0license=GPL\0depends={deps}\0name=x\0").into_bytes()
    }

    #[test]
    fn dependencies_come_first_and_builtins_are_skipped() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::create_dir_all(d.join("kernel/net")).unwrap();
        std::fs::write(d.join("kernel/net/vsock.ko"), module("")).unwrap();
        std::fs::write(
            d.join("kernel/net/vmw_vsock_virtio_transport.ko"),
            module("vsock,vmw_vsock_virtio_transport_common,virtio"),
        )
        .unwrap();
        std::fs::write(
            d.join("kernel/net/vmw_vsock_virtio_transport_common.ko"),
            module("vsock"),
        )
        .unwrap();
        std::fs::write(
            d.join("modules.builtin"),
            "kernel/drivers/virtio/virtio.ko\n",
        )
        .unwrap();
        let tree = ModuleTree::open(d).unwrap();
        let plan = tree
            .plan(&["virtio", "vmw_vsock_virtio_transport", "9p"])
            .unwrap();
        let order: Vec<_> = plan.order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(
            order,
            [
                "vsock",
                "vmw_vsock_virtio_transport_common",
                "vmw_vsock_virtio_transport"
            ]
        );
        assert_eq!(plan.builtin, ["virtio"]);
        assert_eq!(plan.absent, ["9p"]);
        let bytes = archive(&plan).unwrap();
        assert!(bytes.starts_with(b"070701"));
        let text = String::from_utf8_lossy(&bytes);
        assert!(text.contains(
            "vsock.ko\nvmw_vsock_virtio_transport_common.ko\nvmw_vsock_virtio_transport.ko\n"
        ));
    }

    #[test]
    fn soft_dependencies_load_first_by_name_or_generic_implementation() {
        let tmp = tempfile::tempdir().unwrap();
        let d = tmp.path();
        std::fs::write(
            d.join("libcrc32c.ko"),
            b"x\0softdep=pre: crc32c post: other\0depends=\0",
        )
        .unwrap();
        std::fs::write(d.join("crc32c_generic.ko"), module("")).unwrap();
        std::fs::write(d.join("nf_tables.ko"), module("libcrc32c")).unwrap();
        let plan = ModuleTree::open(d).unwrap().plan(&["nf_tables"]).unwrap();
        let order: Vec<_> = plan.order.iter().map(|(n, _)| n.as_str()).collect();
        assert_eq!(order, ["crc32c_generic", "libcrc32c", "nf_tables"]);
        assert_eq!(soft_pre(b"\0softdep=pre: a b post: c\0"), ["a", "b"]);
    }

    #[test]
    fn a_missing_dependency_is_named() {
        let tmp = tempfile::tempdir().unwrap();
        std::fs::write(tmp.path().join("overlay.ko"), module("missing_helper")).unwrap();
        let err = ModuleTree::open(tmp.path())
            .unwrap()
            .plan(&["overlay"])
            .unwrap_err()
            .to_string();
        assert!(
            err.contains("overlay needs the module missing_helper"),
            "{err}"
        );
    }
}
