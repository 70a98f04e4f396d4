//! `cargo xtask images`: builds the test images of `images/*/image.json` offline, from
//! Debian's busybox-static and the recipe's files, as `docker save` tarballs or OCI
//! image layouts (tarred). Deterministic: the same recipe gives the same digests.

mod layer;
mod recipe;
mod write;

use std::path::{Path, PathBuf};

use anyhow::{Context, Result};

use crate::assets::{assets_dir, workspace_root, write_atomic};
use recipe::{Format, Recipe};

/// Where built images go: `$BERTH_ASSETS/images/<recipe>.tar`.
pub fn images_dir(assets: &Path) -> PathBuf {
    assets.join("images")
}

pub fn run() -> Result<()> {
    let assets = assets_dir()?;
    let out_dir = images_dir(&assets);
    std::fs::create_dir_all(&out_dir).with_context(|| format!("creating {}", out_dir.display()))?;
    println!("== images: writing into {}", out_dir.display());
    let recipes = recipes(&workspace_root().join("images"))?;
    let tools_dir = match recipes.iter().any(|(_, r)| !r.tools.is_empty()) {
        true => crate::guest::build()?.dir,
        false => PathBuf::new(),
    };
    for (name, recipe) in recipes {
        let layer = layer::build(&recipe, &tools_dir)?;
        let image = write::Image::new(&recipe, layer)?;
        let bytes = match recipe.format {
            Format::DockerSave => image.docker_save()?,
            Format::Oci => image.oci_layout()?,
        };
        let out = out_dir.join(format!("{name}.tar"));
        println!(
            "image {}:{} ({:?}, id {}) -> {} ({} KiB)",
            recipe.name,
            recipe.tag,
            recipe.format,
            &image.config_digest()[7..19],
            out.display(),
            bytes.len() / 1024
        );
        write_atomic(&out, &bytes)?;
    }
    Ok(())
}

/// Every `images/<name>/image.json`, sorted by name.
fn recipes(dir: &Path) -> Result<Vec<(String, Recipe)>> {
    let mut found = Vec::new();
    for entry in std::fs::read_dir(dir).with_context(|| format!("reading {}", dir.display()))? {
        let path = entry?.path().join("image.json");
        if path.is_file() {
            let name = path
                .parent()
                .and_then(Path::file_name)
                .unwrap_or_default()
                .to_string_lossy()
                .into_owned();
            let text = std::fs::read_to_string(&path)?;
            let recipe: Recipe = serde_json::from_str(&text)
                .with_context(|| format!("parsing {}", path.display()))?;
            found.push((name, recipe));
        }
    }
    found.sort_by(|a, b| a.0.cmp(&b.0));
    Ok(found)
}
