//! One deterministic layer: a tar of the recipe's tree, owner 0:0, mtime 0, sorted.

use std::collections::BTreeMap;

use anyhow::{ensure, Result};

use super::recipe::Recipe;
use crate::initramfs::{busybox_applets, BUSYBOX};

/// One entry of the layer, keyed by its relative path (so the map sorts them).
enum Node {
    Dir(u32),
    File(u32, Vec<u8>),
    Symlink(String),
}

/// The layer's uncompressed tar.
pub fn build(recipe: &Recipe, tools_dir: &std::path::Path) -> Result<Vec<u8>> {
    let mut tree: BTreeMap<String, Node> = BTreeMap::new();
    if recipe.busybox {
        let busybox = std::fs::read(BUSYBOX)?;
        add(&mut tree, "/bin/busybox", Node::File(0o755, busybox))?;
        for applet in busybox_applets()? {
            add(
                &mut tree,
                &format!("/bin/{applet}"),
                Node::Symlink("busybox".into()),
            )?;
        }
        add(&mut tree, "/usr/bin", Node::Symlink("../bin".into()))?;
        add(&mut tree, "/sbin", Node::Symlink("bin".into()))?;
    }
    for tool in &recipe.tools {
        let binary = std::fs::read(tools_dir.join(tool))
            .map_err(|e| anyhow::anyhow!("test tool {tool}: {e}"))?;
        add(
            &mut tree,
            &format!("/usr/local/bin/{tool}"),
            Node::File(0o755, binary),
        )?;
    }
    for d in &recipe.dirs {
        add(&mut tree, &d.path, Node::Dir(d.mode))?;
    }
    for f in &recipe.files {
        add(
            &mut tree,
            &f.path,
            Node::File(f.mode, f.content.clone().into_bytes()),
        )?;
    }
    let mut builder = tar::Builder::new(Vec::new());
    for (path, node) in &tree {
        let mut h = tar::Header::new_ustar();
        h.set_uid(0);
        h.set_gid(0);
        h.set_mtime(0);
        match node {
            Node::Dir(mode) => {
                h.set_entry_type(tar::EntryType::Directory);
                h.set_mode(*mode);
                h.set_size(0);
                builder.append_data(&mut h, format!("{path}/"), &[][..])?;
            }
            Node::File(mode, data) => {
                h.set_entry_type(tar::EntryType::Regular);
                h.set_mode(*mode);
                h.set_size(data.len() as u64);
                builder.append_data(&mut h, path, &data[..])?;
            }
            Node::Symlink(target) => {
                h.set_entry_type(tar::EntryType::Symlink);
                h.set_mode(0o777);
                h.set_size(0);
                builder.append_link(&mut h, path, target)?;
            }
        }
    }
    Ok(builder.into_inner()?)
}

/// Adds `node` at `path` (absolute in the recipe), with its missing parents as 0755 dirs.
fn add(tree: &mut BTreeMap<String, Node>, path: &str, node: Node) -> Result<()> {
    let rel = path.trim_start_matches('/').trim_end_matches('/');
    ensure!(
        !rel.is_empty() && !rel.split('/').any(|c| c == ".." || c.is_empty()),
        "bad path {path:?}"
    );
    let mut parent = String::new();
    for part in rel
        .split('/')
        .collect::<Vec<_>>()
        .split_last()
        .map(|(_, p)| p.to_vec())
        .unwrap_or_default()
    {
        if !parent.is_empty() {
            parent.push('/');
        }
        parent.push_str(part);
        tree.entry(parent.clone()).or_insert(Node::Dir(0o755));
    }
    tree.insert(rel.to_string(), node);
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn recipe(json: &str) -> Recipe {
        serde_json::from_str(json).unwrap()
    }

    #[test]
    fn layers_are_deterministic_and_have_parents() {
        let r = recipe(
            r#"{"name":"x","tag":"t","format":"oci","files":[{"path":"/a/b/c.txt","mode":420,"content":"hi"}],"config":{}}"#,
        );
        let none = std::path::Path::new("");
        let one = build(&r, none).unwrap();
        assert_eq!(one, build(&r, none).unwrap());
        let mut archive = tar::Archive::new(&one[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(names, ["a/", "a/b/", "a/b/c.txt"]);
    }

    #[test]
    fn escaping_paths_are_refused() {
        let r = recipe(
            r#"{"name":"x","tag":"t","format":"oci","files":[{"path":"/../x","mode":420,"content":""}],"config":{}}"#,
        );
        assert!(build(&r, std::path::Path::new("")).is_err());
    }

    #[test]
    fn tools_go_to_usr_local_bin_and_must_exist() {
        let dir = tempfile::tempdir().unwrap();
        std::fs::write(dir.path().join("tool"), b"\x7fELF").unwrap();
        let r = recipe(r#"{"name":"x","tag":"t","format":"oci","tools":["tool"],"config":{}}"#);
        let layer = build(&r, dir.path()).unwrap();
        let mut archive = tar::Archive::new(&layer[..]);
        let names: Vec<String> = archive
            .entries()
            .unwrap()
            .map(|e| e.unwrap().path().unwrap().to_string_lossy().into_owned())
            .collect();
        assert_eq!(
            names,
            ["usr/", "usr/local/", "usr/local/bin/", "usr/local/bin/tool"]
        );
        let missing =
            recipe(r#"{"name":"x","tag":"t","format":"oci","tools":["nope"],"config":{}}"#);
        assert!(build(&missing, dir.path()).is_err());
    }
}
