//! `images/<name>/image.json`: what goes into a test image (see images/README.md).

use serde::Deserialize;

#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    DockerSave,
    Oci,
}

#[derive(Debug, Deserialize)]
pub struct Recipe {
    pub name: String,
    pub tag: String,
    pub format: Format,
    #[serde(default)]
    pub busybox: bool,
    #[serde(default)]
    pub dirs: Vec<Dir>,
    #[serde(default)]
    pub files: Vec<File>,
    /// berth's static test tools (binaries of the guest crate, e.g. `berth-udp-echo`),
    /// installed as `/usr/local/bin/<name>`.
    #[serde(default)]
    pub tools: Vec<String>,
    /// The image config's `config` object, as Docker writes it.
    pub config: serde_json::Value,
}

#[derive(Debug, Deserialize)]
pub struct Dir {
    pub path: String,
    pub mode: u32,
}

#[derive(Debug, Deserialize)]
pub struct File {
    pub path: String,
    pub mode: u32,
    pub content: String,
}
