//! The docker CLI's template methods. Its listing contexts are Go values with methods, so
//! `{{.Label "com.example.key"}}` calls `Label` with an argument; gotmpl's data is plain
//! values without methods. A method call is rewritten into the function of the same
//! meaning before parsing: `.Label "k"` becomes `label . "k"`, which `label` answers
//! from the row's `Labels` (`k=v` pairs joined by commas, as the docker CLI shows them),
//! and in a table's header row with the header the docker CLI gives that column.

/// `src` with each `.Label` method call, inside actions and outside string literals,
/// rewritten as a call of the `label` function on dot. `.Labels`, `.X.Label` and text
/// outside `{{ }}` are left alone.
pub fn rewrite(src: &str) -> String {
    const METHOD: &str = ".Label";
    let mut out = String::with_capacity(src.len());
    let mut rest = src;
    while let Some(open) = rest.find("{{") {
        out.push_str(&rest[..open + 2]);
        rest = &rest[open + 2..];
        let close = action_end(rest);
        let action = &rest[..close];
        let mut i = 0;
        let mut quote: Option<char> = None;
        let mut prev: Option<char> = None;
        while i < action.len() {
            let c = action[i..].chars().next().unwrap_or(' ');
            match quote {
                Some('\\') => quote = Some('"'),
                Some(q) if c == '\\' && q == '"' => quote = Some('\\'),
                Some(q) if c == q => quote = None,
                Some(_) => {}
                None if c == '"' || c == '`' || c == '\'' => quote = Some(c),
                None if action[i..].starts_with(METHOD)
                    && !prev.is_some_and(|p| p.is_alphanumeric() || "_.)$".contains(p))
                    && !action[i + METHOD.len()..]
                        .chars()
                        .next()
                        .is_some_and(|n| n.is_alphanumeric() || n == '_' || n == '.') =>
                {
                    out.push_str("label .");
                    i += METHOD.len();
                    prev = Some('l');
                    continue;
                }
                None => {}
            }
            out.push(c);
            prev = Some(c);
            i += c.len_utf8();
        }
        rest = &rest[close..];
    }
    out.push_str(rest);
    out
}

/// Where the action that starts `text` ends: at its `}}`, outside string literals.
fn action_end(text: &str) -> usize {
    let mut quote: Option<char> = None;
    let mut escaped = false;
    for (i, c) in text.char_indices() {
        match quote {
            Some(_) if escaped => escaped = false,
            Some('"') if c == '\\' => escaped = true,
            Some(q) if c == q => quote = None,
            Some(_) => {}
            None if c == '"' || c == '`' || c == '\'' => quote = Some(c),
            None if text[i..].starts_with("}}") => return i,
            None => {}
        }
    }
    text.len()
}

/// `label ROW KEY`: the value of label KEY in ROW's `Labels`, or nothing.
pub fn label(labels: &str, key: &str) -> String {
    labels
        .split(',')
        .filter_map(|pair| pair.split_once('='))
        .find(|(k, _)| *k == key)
        .map(|(_, v)| v.to_string())
        .unwrap_or_default()
}

/// The table header of `.Label KEY`, as the docker CLI makes it: the last dot-separated
/// part of KEY, with `-` and `_` as spaces.
pub fn label_header(key: &str) -> String {
    key.rsplit('.')
        .next()
        .unwrap_or_default()
        .replace(['-', '_'], " ")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn label_method_calls_become_function_calls() {
        assert_eq!(rewrite(r#"{{.Label "a.b"}}"#), r#"{{label . "a.b"}}"#);
        assert_eq!(
            rewrite(r#"table {{.Names}}\t{{ .Label "k" | upper }}"#),
            r#"table {{.Names}}\t{{ label . "k" | upper }}"#
        );
        assert_eq!(
            rewrite(r#"{{if eq (.Label "k") "v"}}yes{{end}}"#),
            r#"{{if eq (label . "k") "v"}}yes{{end}}"#
        );
    }

    #[test]
    fn other_text_is_left_alone() {
        for src in [
            "{{.Labels}}",
            ".Label outside an action",
            r#"{{printf ".Label %s" .Names}}"#,
            r#"{{printf "a \" .Label" .Names}}"#,
            "{{.Config.Label}}",
            "{{$x.Label}}",
            "{{.LabelX}}",
        ] {
            assert_eq!(rewrite(src), src);
        }
    }

    #[test]
    fn label_reads_the_rows_pairs() {
        assert_eq!(label("a=1,com.x.y=two", "com.x.y"), "two");
        assert_eq!(label("a=1", "b"), "");
        assert_eq!(label("", "a"), "");
        assert_eq!(label("a=x=y", "a"), "x=y");
        assert_eq!(label_header("com.example.team_name-x"), "team name x");
        assert_eq!(label_header("tier"), "tier");
    }
}
