//! Docker's `filters` query parameter, shared by every list, prune and events route:
//! `{"key": ["value", ...]}`, or the older `{"key": {"value": true}}`.

use std::collections::BTreeMap;

use serde::Deserialize;

use super::error::ApiError;

/// A filter key's values, in either of Docker's shapes.
#[derive(Deserialize)]
#[serde(untagged)]
enum Values {
    List(Vec<String>),
    Set(BTreeMap<String, bool>),
}

/// Each key with its values (alternatives); keys without values are dropped.
pub fn parse(json: Option<&str>) -> Result<BTreeMap<String, Vec<String>>, ApiError> {
    let Some(raw) = json.filter(|f| !f.is_empty()) else {
        return Ok(BTreeMap::new());
    };
    let map: BTreeMap<String, Values> = serde_json::from_str(raw)
        .map_err(|e| ApiError::bad_request(format!("invalid filters {raw:?}: {e}")))?;
    Ok(map
        .into_iter()
        .map(|(k, v)| {
            let vals = match v {
                Values::List(l) => l,
                Values::Set(s) => s
                    .into_iter()
                    .filter(|(_, on)| *on)
                    .map(|(k, _)| k)
                    .collect(),
            };
            (k, vals)
        })
        .filter(|(_, v)| !v.is_empty())
        .collect())
}

/// Refuses a key that the route does not know, as Docker does.
pub fn only(keys: &BTreeMap<String, Vec<String>>, known: &[&str]) -> Result<(), ApiError> {
    match keys.keys().find(|k| !known.contains(&k.as_str())) {
        Some(k) => Err(ApiError::bad_request(format!("invalid filter '{k}'"))),
        None => Ok(()),
    }
}

/// `label=KEY` or `label=KEY=VALUE` against a label map.
pub fn label_matches(wanted: &str, labels: &BTreeMap<String, String>) -> bool {
    match wanted.split_once('=') {
        Some((k, v)) => labels.get(k).is_some_and(|l| l == v),
        None => labels.contains_key(wanted),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_shapes_parse() {
        let a = parse(Some(r#"{"label": ["a=b"], "name": {"web": true}}"#)).unwrap();
        assert_eq!(a["label"], ["a=b"]);
        assert_eq!(a["name"], ["web"]);
        assert!(parse(Some("[1]")).is_err());
        assert!(parse(None).unwrap().is_empty());
        assert!(only(&a, &["label"]).unwrap_err().message.contains("name"));
        let labels = BTreeMap::from([("a".to_string(), "b".to_string())]);
        assert!(label_matches("a", &labels) && label_matches("a=b", &labels));
        assert!(!label_matches("a=c", &labels) && !label_matches("x", &labels));
    }
}
