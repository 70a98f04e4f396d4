//! `--format` as the docker CLI has it, on every listing (`ps`, `images`, `network ls`,
//! `volume ls`, `stats`) and on `inspect`.
//!
//! The docker CLI's rules (its `formatter` package): no format or `table` gives the
//! listing's default table; `table TEMPLATE` prints a header row, made by running the
//! template over the field names' headers, then one row per item, aligned by a
//! tabwriter (minimum width 10, padding 3); `json` prints `{{json .}}`, one object per
//! line, keys sorted and `<`, `>`, `&` escaped as Go's encoder does for a listing's row
//! (the `json` function escapes nothing else, as the docker CLI's); anything else is a
//! Go template run once per item, each followed by a newline. `\t` and `\n` written
//! literally in the format become a tab and a newline.
//!
//! Templates are Go's `text/template`, through the `gotmpl` crate, with the functions
//! the docker CLI adds: `json`, `join`, `split`, `lower`, `upper`, `title`, `truncate`,
//! `pad`; and its contexts' `.Label "key"` method (see `methods`).

mod methods;

use std::sync::{Arc, Mutex};

use gotmpl::{Template, TemplateError, Value};
use serde_json::{Map, Value as Json};

use crate::Error;

/// A listing's shape: its default table and each field's header.
pub struct Listing {
    /// Docker's default, such as `table {{.ID}}\t{{.Image}}`.
    pub default: &'static str,
    /// (field, header) for every field a row has.
    pub headers: &'static [(&'static str, &'static str)],
}

/// What `--format` asked for: the template, and whether it is a table (a header row,
/// then rows, aligned) or one execution per row.
fn kind(format: Option<&str>, default: &str) -> (String, bool) {
    let format = format.unwrap_or("").trim();
    let format = match format {
        "" | "table" => default,
        "json" => "{{json .}}",
        f => f,
    };
    let unescape = |s: &str| s.trim().replace("\\t", "\t").replace("\\n", "\n");
    match format.strip_prefix("table") {
        Some(rest) => (unescape(rest), true),
        None => (unescape(format), false),
    }
}

/// A row from (field, text) pairs: every field a string, as in the docker CLI's contexts.
pub fn row<'a>(fields: impl IntoIterator<Item = (&'a str, String)>) -> Map<String, Json> {
    fields
        .into_iter()
        .map(|(k, v)| (k.to_string(), Json::String(v)))
        .collect()
}

/// A label object as the docker CLI's `.Labels` shows it: `k=v` pairs joined by commas
/// (sorted, so the output is stable).
pub fn labels(v: &Json) -> String {
    let mut labels: Vec<String> = v
        .as_object()
        .into_iter()
        .flatten()
        .map(|(k, v)| format!("{k}={}", v.as_str().unwrap_or_default()))
        .collect();
    labels.sort();
    labels.join(",")
}

/// Renders `rows` (objects keyed by Docker's field names) as `format` asks.
pub fn render(
    format: Option<&str>,
    listing: &Listing,
    rows: &[Map<String, Json>],
) -> Result<String, Error> {
    let (src, table) = kind(format, listing.default);
    let current = CurrentRow::default();
    let tmpl = parse(&methods::rewrite(&src), current.clone())?;
    let mut lines = Vec::new();
    if table {
        let header: Map<String, Json> = listing
            .headers
            .iter()
            .map(|(field, header)| (field.to_string(), Json::String(header.to_string())))
            .collect();
        lines.push(execute(&tmpl, &Json::Object(header))?);
    }
    for row in rows {
        lines.push(execute_row(&tmpl, &current, row)?);
    }
    Ok(match table {
        true => tabwrite(&lines.join("\n")),
        false => lines.iter().map(|l| format!("{l}\n")).collect(),
    })
}

/// `inspect --format`: the template run over each object as the API returns it.
pub fn render_each(format: &str, objects: &[Json]) -> Result<String, Error> {
    let src = match format.trim() {
        "json" => "{{json .}}".to_string(),
        f => f.replace("\\t", "\t").replace("\\n", "\n"),
    };
    let tmpl = parse(&src, CurrentRow::default())?;
    let mut out = String::new();
    for v in objects {
        out.push_str(&execute(&tmpl, v)?);
        out.push('\n');
    }
    Ok(out)
}

/// The row being rendered: the docker CLI's listing contexts marshal themselves with
/// Go's HTML escaping, while its `json` function does not escape anything else.
type CurrentRow = Arc<Mutex<Option<Json>>>;

fn parse(src: &str, row: CurrentRow) -> Result<Template, Error> {
    fn arg(args: &[Value], i: usize) -> String {
        args.get(i).map(|v| v.to_string()).unwrap_or_default()
    }
    fn string(s: String) -> gotmpl::Result<Value> {
        Ok(Value::String(s.into()))
    }
    let current = row.clone();
    Template::new("")
        .func("json", move |args| {
            let v = args.first().map(to_json).unwrap_or(Json::Null);
            let whole_row = row.lock().map(|r| r.as_ref() == Some(&v)).unwrap_or(false);
            string(match whole_row {
                true => go_json(&v),
                false => serde_json::to_string(&sort_keys(&v)).unwrap_or_default(),
            })
        })
        .func("join", |args| {
            let sep = arg(args, 1);
            let items: Vec<String> = match args.first() {
                Some(Value::List(items)) => items.iter().map(|v| v.to_string()).collect(),
                Some(v) => vec![v.to_string()],
                None => vec![],
            };
            string(items.join(&sep))
        })
        .func("split", |args| {
            let parts: Vec<Value> = arg(args, 0)
                .split(arg(args, 1).as_str())
                .map(|p| Value::String(p.into()))
                .collect();
            Ok(Value::List(parts.into()))
        })
        .func("label", move |args| {
            // No current row: this is the table's header.
            let header = current.lock().map(|r| r.is_none()).unwrap_or(false);
            if header {
                return string(methods::label_header(&arg(args, 1)));
            }
            let labels = match args.first() {
                Some(row @ Value::Map(_)) => row.field("Labels").map(|v| v.to_string()),
                _ => None,
            };
            string(methods::label(&labels.unwrap_or_default(), &arg(args, 1)))
        })
        .func("lower", |args| string(arg(args, 0).to_lowercase()))
        .func("upper", |args| string(arg(args, 0).to_uppercase()))
        .func("title", |args| {
            let s = arg(args, 0);
            let mut out = String::new();
            let mut start = true;
            for c in s.chars() {
                match start {
                    true => out.extend(c.to_uppercase()),
                    false => out.push(c),
                }
                start = c.is_whitespace();
            }
            string(out)
        })
        .func("truncate", |args| {
            let n = args.get(1).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            string(arg(args, 0).chars().take(n).collect())
        })
        .func("pad", |args| {
            let n = |i: usize| args.get(i).and_then(Value::as_int).unwrap_or(0).max(0) as usize;
            string(format!(
                "{}{}{}",
                " ".repeat(n(1)),
                arg(args, 0),
                " ".repeat(n(2))
            ))
        })
        .parse(src)
        .map_err(|e| Error::Usage(format!("bad --format template: {e}")))
}

fn execute_row(
    tmpl: &Template,
    current: &CurrentRow,
    row: &Map<String, Json>,
) -> Result<String, Error> {
    let row = Json::Object(row.clone());
    if let Ok(mut c) = current.lock() {
        *c = Some(row.clone());
    }
    execute(tmpl, &row)
}

fn execute(tmpl: &Template, data: &Json) -> Result<String, Error> {
    let value = gotmpl::to_value(data).map_err(template_error)?;
    tmpl.execute_to_string(&value).map_err(template_error)
}

fn template_error(e: TemplateError) -> Error {
    Error::Usage(format!("--format template: {e}"))
}

/// A template value back as JSON, for the `json` function.
fn to_json(v: &Value) -> Json {
    match v {
        Value::Nil => Json::Null,
        Value::Bool(b) => Json::Bool(*b),
        Value::Int(i) => Json::from(*i),
        Value::Uint(u) => Json::from(*u),
        Value::Float(f) => Json::from(*f),
        Value::String(s) => Json::String(s.to_string()),
        Value::List(items) => Json::Array(items.iter().map(to_json).collect()),
        Value::Map(m) => Json::Object(m.iter().map(|(k, v)| (k.to_string(), to_json(v))).collect()),
        other => Json::String(other.to_string()),
    }
}

/// JSON as Go's `encoding/json` writes it: map keys sorted, and `<`, `>`, `&`
/// escaped (they can only occur inside strings, so replacing them is safe).
pub fn go_json(v: &Json) -> String {
    let sorted = sort_keys(v);
    serde_json::to_string(&sorted)
        .unwrap_or_default()
        .replace('<', "\\u003c")
        .replace('>', "\\u003e")
        .replace('&', "\\u0026")
}

fn sort_keys(v: &Json) -> Json {
    match v {
        Json::Object(m) => {
            let mut keys: Vec<&String> = m.keys().collect();
            keys.sort();
            Json::Object(
                keys.into_iter()
                    .map(|k| (k.clone(), sort_keys(&m[k])))
                    .collect(),
            )
        }
        Json::Array(items) => Json::Array(items.iter().map(sort_keys).collect()),
        other => other.clone(),
    }
}

/// Go's `tabwriter.NewWriter(out, 10, 1, 3, ' ', 0)` as the docker CLI uses it: every
/// tab-terminated cell is padded to its column's widest cell plus 3, and at least 10;
/// the text after a line's last tab is not a column.
pub fn tabwrite(text: &str) -> String {
    let lines: Vec<Vec<&str>> = text.lines().map(|l| l.split('\t').collect()).collect();
    let mut widths: Vec<usize> = Vec::new();
    for cells in &lines {
        for (i, cell) in cells.iter().enumerate().take(cells.len().saturating_sub(1)) {
            let w = (cell.chars().count() + 3).max(10);
            match widths.get_mut(i) {
                Some(have) => *have = (*have).max(w),
                None => widths.push(w),
            }
        }
    }
    let mut out = String::new();
    for cells in &lines {
        let last = cells.len().saturating_sub(1);
        for (i, cell) in cells.iter().enumerate() {
            out.push_str(cell);
            if i < last {
                let pad = widths[i] - cell.chars().count();
                out.extend(std::iter::repeat_n(' ', pad));
            }
        }
        out.push('\n');
    }
    out
}

/// The docker CLI's natural order for names (`net2` before `net10`): runs of digits
/// compare as numbers, everything else byte by byte.
pub fn natural_cmp(a: &str, b: &str) -> std::cmp::Ordering {
    fn chunks(s: &str) -> Vec<(bool, &str)> {
        let mut out = Vec::new();
        let mut start = 0;
        let bytes = s.as_bytes();
        for i in 1..=bytes.len() {
            if i == bytes.len() || bytes[i].is_ascii_digit() != bytes[start].is_ascii_digit() {
                out.push((bytes[start].is_ascii_digit(), &s[start..i]));
                start = i;
            }
        }
        out
    }
    let (ca, cb) = (chunks(a), chunks(b));
    for ((da, x), (db, y)) in ca.iter().zip(cb.iter()) {
        let ord = match (da, db) {
            (true, true) => {
                let (x, y) = (x.trim_start_matches('0'), y.trim_start_matches('0'));
                x.len().cmp(&y.len()).then_with(|| x.cmp(y))
            }
            _ => x.cmp(y),
        };
        if ord.is_ne() {
            return ord;
        }
    }
    ca.len().cmp(&cb.len())
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    const PS: Listing = Listing {
        default: "table {{.ID}}\\t{{.Names}}",
        headers: &[
            ("ID", "CONTAINER ID"),
            ("Names", "NAMES"),
            ("Status", "STATUS"),
        ],
    };

    fn rows() -> Vec<Map<String, Json>> {
        [
            json!({"ID": "0123456789ab", "Names": "web", "Status": "Up 2 seconds", "Ports": "<x>&"}),
            json!({"ID": "ba9876543210", "Names": "a-long-name-here", "Status": "Exited (0)", "Ports": ""}),
        ]
        .into_iter()
        .map(|v| v.as_object().cloned().unwrap())
        .collect()
    }

    #[test]
    fn the_label_method_reads_a_rows_labels() {
        let mut rows = rows();
        rows[0].insert("Labels".into(), json!("tier=web,com.x.team=a=b"));
        rows[1].insert("Labels".into(), json!(""));
        let out = render(
            Some(r#"{{.Names}}:{{.Label "tier"}}:{{.Label "com.x.team"}}"#),
            &PS,
            &rows,
        )
        .unwrap();
        assert_eq!(out, "web:web:a=b\na-long-name-here::\n");
        let table = render(
            Some(r#"table {{.Names}}\t{{.Label "com.x.team-name"}}"#),
            &PS,
            &rows,
        )
        .unwrap();
        assert_eq!(
            table.lines().next().unwrap(),
            "NAMES              team name"
        );
    }

    #[test]
    fn the_default_is_the_listings_table_with_a_header() {
        assert_eq!(
            render(None, &PS, &rows()).unwrap(),
            "CONTAINER ID   NAMES\n0123456789ab   web\nba9876543210   a-long-name-here\n"
        );
        assert_eq!(
            render(Some("table"), &PS, &rows()).unwrap(),
            render(None, &PS, &rows()).unwrap()
        );
    }

    #[test]
    fn a_table_template_gets_headers_named_as_docker_names_them() {
        let out = render(Some("table {{.Names}}\\t{{.Status}}"), &PS, &rows()).unwrap();
        assert_eq!(
            out,
            "NAMES              STATUS\nweb                Up 2 seconds\na-long-name-here   Exited (0)\n"
        );
    }

    #[test]
    fn a_plain_template_prints_one_line_per_row_without_a_header() {
        let out = render(Some("{{.Names}} {{.Status}}"), &PS, &rows()).unwrap();
        assert_eq!(out, "web Up 2 seconds\na-long-name-here Exited (0)\n");
        let out = render(
            Some("{{if eq .Names \"web\"}}{{upper .Names}}{{end}}"),
            &PS,
            &rows(),
        )
        .unwrap();
        assert_eq!(out, "WEB\n\n");
    }

    #[test]
    fn json_is_one_sorted_go_escaped_object_per_line() {
        let out = render(Some("json"), &PS, &rows()).unwrap();
        let first = out.lines().next().unwrap();
        assert_eq!(
            first,
            r#"{"ID":"0123456789ab","Names":"web","Ports":"\u003cx\u003e\u0026","Status":"Up 2 seconds"}"#
        );
        assert_eq!(out.lines().count(), 2);
        assert_eq!(render(Some("{{json .}}"), &PS, &rows()).unwrap(), out);
        assert_eq!(
            render(Some("{{json .Names}}"), &PS, &rows()).unwrap(),
            "\"web\"\n\"a-long-name-here\"\n"
        );
    }

    #[test]
    fn docker_cli_functions_work() {
        let out = render(
            Some("{{join (split .Names \"-\") \"+\"}} {{lower \"AB\"}} {{title \"up two\"}} {{truncate .ID 4}}|{{pad .Names 1 2}}|"),
            &PS,
            &rows()[1..],
        )
        .unwrap();
        assert_eq!(
            out,
            "a+long+name+here ab Up Two ba98| a-long-name-here  |\n"
        );
    }

    #[test]
    fn a_bad_template_is_a_usage_error_naming_the_format() {
        let err = render(Some("{{.Names"), &PS, &rows()).unwrap_err();
        assert!(err.to_string().contains("--format"), "{err}");
    }

    #[test]
    fn inspect_runs_the_template_over_the_whole_object() {
        let objs = [json!({"State": {"Status": "running"}, "Config": {"Labels": {"a": "b"}}})];
        assert_eq!(
            render_each("{{.State.Status}}", &objs).unwrap(),
            "running\n"
        );
        assert_eq!(
            render_each("{{json .Config.Labels}}", &objs).unwrap(),
            "{\"a\":\"b\"}\n"
        );
        assert_eq!(render_each("{{.Nope}}", &objs).unwrap(), "<no value>\n");
        let cmd = [json!({"Cmd": ["sh", "-c", "a && b > c"]})];
        assert_eq!(
            render_each("{{json .Cmd}}", &cmd).unwrap(),
            "[\"sh\",\"-c\",\"a && b > c\"]\n"
        );
    }

    #[test]
    fn names_sort_naturally() {
        let mut names = vec!["net10", "n1", "bridge", "net2", "none", "host", ""];
        names.sort_by(|a, b| natural_cmp(a, b));
        assert_eq!(names, ["", "bridge", "host", "n1", "net2", "net10", "none"]);
    }

    #[test]
    fn tabwriter_pads_to_the_widest_cell_plus_three_and_at_least_ten() {
        assert_eq!(
            tabwrite("a\tb\nlonger-cell\tc"),
            "a             b\nlonger-cell   c\n"
        );
        assert_eq!(tabwrite("x\ty"), "x         y\n");
    }
}
