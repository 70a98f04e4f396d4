//! The build cache: step key -> the image that step made, in `images/build-cache.json`.
//! An entry whose image was removed is a miss; the file is rewritten atomically after a
//! build, so a build that fails keeps what its finished steps made.

use std::collections::HashMap;
use std::path::PathBuf;

pub struct Cache {
    path: PathBuf,
    entries: HashMap<String, String>,
    dirty: bool,
}

impl Cache {
    /// The cache of the store at `images_root`; a damaged file is kept aside and the
    /// cache starts empty (a cache is never a reason to fail a build).
    pub fn load(images_root: &std::path::Path) -> Cache {
        let path = images_root.join("build-cache.json");
        let entries = match std::fs::read(&path) {
            Ok(bytes) => serde_json::from_slice(&bytes).unwrap_or_else(|e| {
                tracing::warn!("{}: {e}; starting an empty build cache", path.display());
                let _ = std::fs::rename(&path, path.with_extension("json.damaged"));
                HashMap::new()
            }),
            Err(_) => HashMap::new(),
        };
        Cache {
            path,
            entries,
            dirty: false,
        }
    }

    pub fn get(&self, key: &str) -> Option<String> {
        self.entries.get(key).cloned()
    }

    pub fn put(&mut self, key: String, image: String) {
        self.entries.insert(key, image);
        self.dirty = true;
    }

    /// Writes the cache back if it changed.
    pub fn save(&mut self) {
        if !self.dirty {
            return;
        }
        let bytes = serde_json::to_vec(&self.entries).unwrap_or_default();
        match crate::machine::write_atomic(&self.path, &bytes) {
            Ok(()) => self.dirty = false,
            Err(e) => tracing::warn!("{}: {e}", self.path.display()),
        }
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn entries_survive_a_reload_and_damage_starts_empty() {
        let tmp = tempfile::tempdir().unwrap();
        let mut c = super::Cache::load(tmp.path());
        c.put("k".into(), "sha256:1".into());
        c.save();
        assert_eq!(
            super::Cache::load(tmp.path()).get("k").as_deref(),
            Some("sha256:1")
        );
        std::fs::write(tmp.path().join("build-cache.json"), b"{bad").unwrap();
        assert_eq!(super::Cache::load(tmp.path()).get("k"), None);
        assert!(tmp.path().join("build-cache.json.damaged").exists());
    }
}
