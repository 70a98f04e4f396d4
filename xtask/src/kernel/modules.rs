//! Resolving kernel modules and their dependencies from `modules.dep` and `modules.builtin`,
//! into an order in which each module comes after everything it depends on.

use std::collections::{BTreeMap, HashSet};

use anyhow::{bail, Context, Result};

/// The outcome of resolving the wanted modules.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct Plan {
    /// Module paths (relative to `/lib/modules/<release>`), dependencies first.
    pub order: Vec<String>,
    /// Wanted names that are built into the kernel.
    pub builtin: Vec<String>,
    /// Wanted names that are neither modules nor built in.
    pub missing: Vec<String>,
}

/// A module's name as the kernel knows it: the file name without `.ko[.xz|.zst|.gz]`, with
/// `-` and `_` treated the same.
pub fn module_name(path: &str) -> String {
    normalize(file_stem(path))
}

/// The file name without directories and without the module suffixes.
pub fn file_stem(path: &str) -> &str {
    let file = path.rsplit('/').next().unwrap_or(path);
    [".ko.xz", ".ko.zst", ".ko.gz", ".ko"]
        .iter()
        .find_map(|suffix| file.strip_suffix(suffix))
        .unwrap_or(file)
}

fn normalize(name: &str) -> String {
    name.replace('-', "_")
}

/// Resolves `wanted` module names against the text of `modules.dep` and `modules.builtin`.
pub fn resolve(modules_dep: &str, modules_builtin: &str, wanted: &[&str]) -> Result<Plan> {
    let mut deps: BTreeMap<&str, Vec<&str>> = BTreeMap::new();
    let mut by_name: BTreeMap<String, &str> = BTreeMap::new();
    for (number, line) in modules_dep.lines().enumerate() {
        if line.trim().is_empty() {
            continue;
        }
        let (path, rest) = line
            .split_once(':')
            .with_context(|| format!("modules.dep line {}: no ':' in {line:?}", number + 1))?;
        let path = path.trim();
        deps.insert(path, rest.split_whitespace().collect());
        by_name.insert(module_name(path), path);
    }
    let builtin: HashSet<String> = modules_builtin
        .lines()
        .map(str::trim)
        .filter(|line| !line.is_empty())
        .map(module_name)
        .collect();

    let mut plan = Plan::default();
    let mut sorter = Sorter {
        deps: &deps,
        done: HashSet::new(),
        visiting: Vec::new(),
        order: Vec::new(),
    };
    for &name in wanted {
        let key = normalize(name);
        if let Some(path) = by_name.get(&key) {
            sorter.visit(path)?;
        } else if builtin.contains(&key) {
            plan.builtin.push(name.to_owned());
        } else {
            plan.missing.push(name.to_owned());
        }
    }
    plan.order = sorter.order.into_iter().map(str::to_owned).collect();
    Ok(plan)
}

/// Depth-first topological sort: a module is emitted after all of its dependencies.
struct Sorter<'a> {
    deps: &'a BTreeMap<&'a str, Vec<&'a str>>,
    done: HashSet<&'a str>,
    visiting: Vec<&'a str>,
    order: Vec<&'a str>,
}

impl<'a> Sorter<'a> {
    fn visit(&mut self, path: &'a str) -> Result<()> {
        if self.done.contains(path) {
            return Ok(());
        }
        if self.visiting.contains(&path) {
            bail!(
                "modules.dep has a cycle: {} -> {path}",
                self.visiting.join(" -> ")
            );
        }
        let deps = self.deps.get(path).with_context(|| {
            format!("modules.dep names {path} as a dependency but has no line for it")
        })?;
        self.visiting.push(path);
        // modules.dep lists the deepest dependencies last (modprobe loads the list backwards).
        for &dep in deps.iter().rev() {
            self.visit(dep)?;
        }
        self.visiting.pop();
        self.done.insert(path);
        self.order.push(path);
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const DEP: &str = "\
kernel/drivers/virtio/virtio_ring.ko:
kernel/drivers/virtio/virtio.ko:
kernel/drivers/net/virtio_net.ko.xz: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/net/core/failover.ko:
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/fs/fuse/virtiofs.ko: kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko kernel/fs/fuse/fuse.ko
kernel/fs/fuse/fuse.ko:
kernel/drivers/net/intel-uncore.ko.zst:
";

    fn stems(plan: &Plan) -> Vec<&str> {
        plan.order.iter().map(|p| file_stem(p)).collect()
    }

    #[test]
    fn names() {
        assert_eq!(file_stem("kernel/a/virtio_net.ko.xz"), "virtio_net");
        assert_eq!(file_stem("b.ko"), "b");
        assert_eq!(module_name("kernel/x/intel-uncore.ko.zst"), "intel_uncore");
    }

    #[test]
    fn dependencies_come_first() {
        let plan = resolve(DEP, "", &["virtio_net", "virtiofs", "virtio"]).unwrap();
        assert_eq!(
            stems(&plan),
            [
                "virtio_ring",
                "virtio",
                "failover",
                "net_failover",
                "virtio_net",
                "fuse",
                "virtiofs"
            ]
        );
        for (i, path) in plan.order.iter().enumerate() {
            let line = DEP
                .lines()
                .find(|l| l.starts_with(&format!("{path}:")))
                .unwrap();
            for dep in line.split_once(':').unwrap().1.split_whitespace() {
                assert!(
                    plan.order[..i].iter().any(|p| p == dep),
                    "{dep} before {path}"
                );
            }
        }
    }

    #[test]
    fn builtin_and_missing() {
        let builtin = "kernel/fs/overlayfs/overlay.ko\nkernel/net/vmw_vsock/vsock.ko\n";
        let plan = resolve(
            DEP,
            builtin,
            &["overlay", "intel_uncore", "nosuch", "vsock"],
        )
        .unwrap();
        assert_eq!(stems(&plan), ["intel-uncore"]);
        assert_eq!(plan.builtin, ["overlay", "vsock"]);
        assert_eq!(plan.missing, ["nosuch"]);
    }

    #[test]
    fn broken_input() {
        assert!(resolve("kernel/a.ko: kernel/b.ko\n", "", &["a"]).is_err());
        assert!(resolve(
            "kernel/a.ko: kernel/b.ko\nkernel/b.ko: kernel/a.ko\n",
            "",
            &["a"]
        )
        .is_err());
        assert!(resolve("garbage\n", "", &["a"]).is_err());
    }
}
