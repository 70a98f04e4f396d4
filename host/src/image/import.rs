//! `berth import` / `docker import`: a one-layer image from a tarball of a root file
//! system (plain, gzip or zstd), with `--change` instructions for its config (the ones
//! Docker accepts: CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, ONBUILD, STOPSIGNAL, USER, VOLUME,
//! WORKDIR; any other is refused by name).

use std::io::Read;
use std::time::SystemTime;

use serde_json::{json, Map, Value};

use super::layer;
use super::{Digest, ImageError, ImageStore, Reference};

#[derive(Debug, Clone, Default)]
pub struct ImportOptions {
    /// Dockerfile instructions applied to the config, in order.
    pub changes: Vec<String>,
    /// The history comment (`--message`).
    pub message: String,
    /// The tag to give the image.
    pub tag: Option<Reference>,
}

/// Stores the tarball as a layer, writes its config and manifest, and records the image.
/// Returns the image ID.
pub fn import(
    store: &ImageStore,
    reader: impl Read,
    opts: &ImportOptions,
) -> Result<Digest, ImageError> {
    let mut config = Map::new();
    for change in &opts.changes {
        apply_change(&mut config, change)?;
    }
    let blobs = store.blobs();
    let stored = layer::store_layer(blobs, "the imported tarball", reader, None, None, true)?;
    let created = super::time::rfc3339_nanos(SystemTime::now());
    let comment = if opts.message.is_empty() {
        "Imported from -".to_string()
    } else {
        opts.message.clone()
    };
    let document = json!({
        "architecture": "amd64",
        "os": "linux",
        "created": created,
        "config": Value::Object(config),
        "rootfs": {"type": "layers", "diff_ids": [stored.diff_id.to_string()]},
        "history": [{"created": created, "comment": comment}],
    });
    let config_bytes = serde_json::to_vec(&document).map_err(|source| ImageError::Json {
        what: "image config".into(),
        source,
    })?;
    layer::store_image(
        store,
        &config_bytes,
        vec![stored],
        created,
        opts.tag.iter().cloned().collect(),
    )
}

fn bad(change: &str, reason: impl Into<String>) -> ImageError {
    ImageError::invalid(format!("change {change:?}"), reason)
}

/// Applies one Dockerfile instruction to a config object (Docker's field names).
pub fn apply_change(config: &mut Map<String, Value>, change: &str) -> Result<(), ImageError> {
    let change_t = change.trim();
    let (word, rest) = change_t
        .split_once(char::is_whitespace)
        .unwrap_or((change_t, ""));
    let rest = rest.trim();
    if rest.is_empty() {
        return Err(bad(change, format!("{word} needs an argument")));
    }
    match word.to_ascii_uppercase().as_str() {
        "CMD" => {
            config.insert("Cmd".into(), json!(command(rest)));
        }
        "ENTRYPOINT" => {
            config.insert("Entrypoint".into(), json!(command(rest)));
        }
        "ENV" => {
            let env = config
                .entry("Env")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| bad(change, "Env is not a list"))?;
            for (k, v) in pairs(rest, change)? {
                env.retain(|e| e.as_str().and_then(|e| e.split_once('=')).map(|p| p.0) != Some(&k));
                env.push(json!(format!("{k}={v}")));
            }
        }
        "LABEL" => {
            let labels = config.entry("Labels").or_insert_with(|| json!({}));
            for (k, v) in pairs(rest, change)? {
                labels[k] = json!(v);
            }
        }
        "EXPOSE" => {
            let ports = config.entry("ExposedPorts").or_insert_with(|| json!({}));
            for port in rest.split_whitespace() {
                let port = if port.contains('/') {
                    port.to_string()
                } else {
                    format!("{port}/tcp")
                };
                let (number, proto) = port.split_once('/').unwrap_or_default();
                if number.parse::<u16>().is_err() || !matches!(proto, "tcp" | "udp" | "sctp") {
                    return Err(bad(change, format!("invalid port {port:?}")));
                }
                ports[port] = json!({});
            }
        }
        "VOLUME" => {
            let volumes = config.entry("Volumes").or_insert_with(|| json!({}));
            let list: Vec<String> = match serde_json::from_str::<Vec<String>>(rest) {
                Ok(list) => list,
                Err(_) => rest.split_whitespace().map(str::to_string).collect(),
            };
            for v in list {
                volumes[v] = json!({});
            }
        }
        "WORKDIR" => {
            config.insert("WorkingDir".into(), json!(rest));
        }
        "USER" => {
            config.insert("User".into(), json!(rest));
        }
        "STOPSIGNAL" => {
            config.insert("StopSignal".into(), json!(rest));
        }
        "ONBUILD" => {
            config
                .entry("OnBuild")
                .or_insert_with(|| json!([]))
                .as_array_mut()
                .ok_or_else(|| bad(change, "OnBuild is not a list"))?
                .push(json!(rest));
        }
        other => {
            return Err(bad(
                change,
                format!(
                    "{other} is not a valid change command (CMD, ENTRYPOINT, ENV, EXPOSE, LABEL, \
                     ONBUILD, STOPSIGNAL, USER, VOLUME, WORKDIR)"
                ),
            ))
        }
    }
    Ok(())
}

/// The exec form (`["a", "b"]`) as is; the shell form wrapped in `/bin/sh -c`.
fn command(rest: &str) -> Vec<String> {
    match serde_json::from_str::<Vec<String>>(rest) {
        Ok(list) => list,
        Err(_) => vec!["/bin/sh".into(), "-c".into(), rest.into()],
    }
}

/// `K=V K2="V 2"`, or the legacy `K V with spaces`.
fn pairs(rest: &str, change: &str) -> Result<Vec<(String, String)>, ImageError> {
    let first = rest.split_whitespace().next().unwrap_or_default();
    if !first.contains('=') {
        let (k, v) = rest.split_once(char::is_whitespace).unwrap_or((rest, ""));
        return Ok(vec![(k.to_string(), v.trim().to_string())]);
    }
    let mut out = Vec::new();
    let mut chars = rest.chars().peekable();
    loop {
        while chars.peek().is_some_and(|c| c.is_whitespace()) {
            chars.next();
        }
        if chars.peek().is_none() {
            break;
        }
        let mut word = String::new();
        let mut quote: Option<char> = None;
        while let Some(&c) = chars.peek() {
            match (quote, c) {
                (None, c) if c.is_whitespace() => break,
                (None, '"' | '\'') => quote = Some(c),
                (Some(q), c) if c == q => quote = None,
                (_, '\\') => {
                    chars.next();
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                    continue;
                }
                (_, c) => word.push(c),
            }
            chars.next();
        }
        if quote.is_some() {
            return Err(bad(change, "unterminated quote"));
        }
        let (k, v) = word
            .split_once('=')
            .ok_or_else(|| bad(change, format!("{word:?} is not KEY=VALUE")))?;
        out.push((k.to_string(), v.to_string()));
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(changes: &[&str]) -> Result<Value, ImageError> {
        let mut c = Map::new();
        for ch in changes {
            apply_change(&mut c, ch)?;
        }
        Ok(Value::Object(c))
    }

    #[test]
    fn changes_set_docker_config_fields() {
        let c = config(&[
            r#"CMD ["sh", "-c", "echo hi"]"#,
            "ENTRYPOINT /bin/run",
            r#"ENV A=1 B="two words""#,
            "ENV A=3",
            "ENV LEGACY value with spaces",
            "EXPOSE 80 53/udp",
            "WORKDIR /srv",
            "USER www",
            "LABEL k=v",
            "VOLUME /data",
            "STOPSIGNAL SIGINT",
        ])
        .unwrap();
        assert_eq!(c["Cmd"], json!(["sh", "-c", "echo hi"]));
        assert_eq!(c["Entrypoint"], json!(["/bin/sh", "-c", "/bin/run"]));
        assert_eq!(
            c["Env"],
            json!(["B=two words", "A=3", "LEGACY=value with spaces"])
        );
        assert_eq!(c["ExposedPorts"], json!({"80/tcp": {}, "53/udp": {}}));
        assert_eq!(c["WorkingDir"], "/srv");
        assert_eq!(c["User"], "www");
        assert_eq!(c["Labels"]["k"], "v");
        assert_eq!(c["Volumes"], json!({"/data": {}}));
        assert_eq!(c["StopSignal"], "SIGINT");
    }

    #[test]
    fn other_instructions_are_refused_by_name() {
        let err = config(&["RUN echo"]).unwrap_err().to_string();
        assert!(err.contains("RUN is not a valid change command"), "{err}");
        let err = config(&["EXPOSE http"]).unwrap_err().to_string();
        assert!(err.contains("invalid port"), "{err}");
        assert!(config(&["CMD"]).is_err());
    }
}
