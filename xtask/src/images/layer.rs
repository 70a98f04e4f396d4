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
pub fn build(recipe: &Recipe) -> Result<Vec<u8>> {
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
        let one = build(&r).unwrap();
        assert_eq!(one, build(&r).unwrap());
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
        assert!(build(&r).is_err());
    }
}
