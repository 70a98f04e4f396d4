//! Shell-like word processing for Dockerfile arguments, following the rules of BuildKit's
//! shell lexer: quote removal (`'single'` is literal, `"double"` expands `$` and honours the
//! escape character before `"`, `$` and itself), the escape character (`\` or `` ` ``), and
//! variable expansion (`$name`, `${name}`, `${name:-word}`, `${name-word}`, `${name:+word}`,
//! `${name+word}`, `${name:?message}`, `${name?message}`). It also owns the raw,
//! quote-preserving split used by the parser for `KEY=VALUE` lists.

use std::collections::HashMap;

/// Looks up a variable's value (build args and ENV in scope).
pub trait Vars {
    fn get(&self, name: &str) -> Option<String>;
}

impl Vars for HashMap<String, String> {
    fn get(&self, name: &str) -> Option<String> {
        HashMap::get(self, name).cloned()
    }
}

/// A list of pairs: when a name appears more than once, the last one wins.
impl Vars for [(String, String)] {
    fn get(&self, name: &str) -> Option<String> {
        self.iter()
            .rev()
            .find(|(k, _)| k == name)
            .map(|(_, v)| v.clone())
    }
}

impl Vars for Vec<(String, String)> {
    fn get(&self, name: &str) -> Option<String> {
        <[(String, String)] as Vars>::get(self, name)
    }
}

/// Processes one word: quotes removed, escapes applied, variables expanded. Unset variables
/// expand to "". An unterminated quote or `${` is an error.
pub fn process_word(raw: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut lexer = Lexer::new(raw, vars, escape);
    let mut out = Out::default();
    lexer.process(None, &mut out)?;
    Ok(out.full)
}

/// A heredoc's body for `COPY <<EOF` (delimiter unquoted): variables expanded, quotes kept
/// as written (BuildKit's `SkipProcessQuotes`), and the escape character kept except
/// before `$` and itself, so `\$HOME` stays a literal `$HOME`.
pub fn process_heredoc(raw: &str, vars: &dyn Vars, escape: char) -> Result<String, String> {
    let mut lexer = Lexer::new(raw, vars, escape);
    lexer.skip_quotes = true;
    let mut out = Out::default();
    lexer.process(None, &mut out)?;
    Ok(out.full)
}

/// Splits on unquoted whitespace, then processes each word. As in BuildKit's `ProcessWords`,
/// the result of an unquoted expansion is split on whitespace too (`$PORTS` with
/// `PORTS="80 443"` gives two words), while a quoted one (`"$PORTS"`) stays one word.
/// Words that end up empty are dropped.
pub fn process_words(raw: &str, vars: &dyn Vars, escape: char) -> Result<Vec<String>, String> {
    let mut lexer = Lexer::new(raw, vars, escape);
    let mut out = Out::default();
    lexer.process(None, &mut out)?;
    out.finish_word();
    Ok(out.words)
}

/// Splits raw text on unquoted whitespace without processing: quotes and escapes are kept
/// as written (an escape character at the very end is dropped). An unterminated quote is
/// an error.
pub fn split_raw(raw: &str, escape: char) -> Result<Vec<String>, String> {
    let mut words = Vec::new();
    let mut word = String::new();
    let mut in_word = false;
    let mut quote: Option<char> = None;
    let mut chars = raw.chars().peekable();
    while let Some(c) = chars.next() {
        match quote {
            Some(q) => {
                word.push(c);
                if c == q {
                    quote = None;
                } else if c == escape && q != '\'' {
                    if let Some(n) = chars.next() {
                        word.push(n);
                    }
                }
            }
            None if c.is_whitespace() => {
                if in_word {
                    words.push(std::mem::take(&mut word));
                    in_word = false;
                }
            }
            None => {
                in_word = true;
                if c == escape {
                    if let Some(n) = chars.next() {
                        word.push(c);
                        word.push(n);
                    }
                    continue;
                }
                if c == '\'' || c == '"' {
                    quote = Some(c);
                }
                word.push(c);
            }
        }
    }
    if let Some(q) = quote {
        return Err(format!("unterminated quote {q} in {raw:?}"));
    }
    if in_word {
        words.push(word);
    }
    Ok(words)
}

/// What has been produced so far: the whole processed text (`full`, for `process_word`)
/// and the whitespace-split words (for `process_words`).
#[derive(Default)]
struct Out {
    full: String,
    words: Vec<String>,
    word: String,
}

impl Out {
    /// Text that never splits the current word (quoted text, escaped characters).
    fn raw(&mut self, s: &str) {
        self.full.push_str(s);
        self.word.push_str(s);
    }

    /// Text whose whitespace separates words (unquoted characters and expansions).
    fn splitting(&mut self, s: &str) {
        self.full.push_str(s);
        for c in s.chars() {
            if c.is_whitespace() {
                self.finish_word();
            } else {
                self.word.push(c);
            }
        }
    }

    fn finish_word(&mut self) {
        if !self.word.is_empty() {
            self.words.push(std::mem::take(&mut self.word));
        }
    }
}

struct Lexer<'a> {
    chars: Vec<char>,
    pos: usize,
    vars: &'a dyn Vars,
    escape: char,
    /// Quotes are ordinary characters (heredoc bodies).
    skip_quotes: bool,
}

impl<'a> Lexer<'a> {
    fn new(raw: &str, vars: &'a dyn Vars, escape: char) -> Self {
        Lexer {
            chars: raw.chars().collect(),
            pos: 0,
            vars,
            escape,
            skip_quotes: false,
        }
    }

    fn peek(&self) -> Option<char> {
        self.chars.get(self.pos).copied()
    }

    fn next(&mut self) -> Option<char> {
        let c = self.peek()?;
        self.pos += 1;
        Some(c)
    }

    /// Processes up to `stop` (consumed) or the end of input; reaching the end while
    /// looking for `stop` is an error.
    fn process(&mut self, stop: Option<char>, out: &mut Out) -> Result<(), String> {
        while let Some(c) = self.peek() {
            if Some(c) == stop {
                self.pos += 1;
                return Ok(());
            }
            match c {
                '\'' | '"' if self.skip_quotes => {
                    self.pos += 1;
                    out.raw(c.encode_utf8(&mut [0; 4]));
                }
                _ if self.skip_quotes && c == self.escape => {
                    self.pos += 1;
                    match self.peek() {
                        Some(n) if n == '$' || n == self.escape => {
                            self.pos += 1;
                            out.raw(n.encode_utf8(&mut [0; 4]));
                        }
                        _ => out.raw(c.encode_utf8(&mut [0; 4])),
                    }
                }
                '\'' => {
                    let s = self.single_quoted()?;
                    out.raw(&s);
                }
                '"' => {
                    let s = self.double_quoted()?;
                    out.raw(&s);
                }
                '$' => {
                    let s = self.dollar()?;
                    out.splitting(&s);
                }
                _ => {
                    self.pos += 1;
                    if c == self.escape {
                        // An escape at the very end is dropped.
                        if let Some(n) = self.next() {
                            out.raw(n.encode_utf8(&mut [0; 4]));
                        }
                    } else {
                        out.splitting(c.encode_utf8(&mut [0; 4]));
                    }
                }
            }
        }
        match stop {
            Some(_) => Err("syntax error: missing '}'".to_string()),
            None => Ok(()),
        }
    }

    fn single_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.next() {
                None => return Err("unterminated single quote (missing ')".to_string()),
                Some('\'') => return Ok(s),
                Some(c) => s.push(c),
            }
        }
    }

    fn double_quoted(&mut self) -> Result<String, String> {
        self.pos += 1;
        let mut s = String::new();
        loop {
            match self.peek() {
                None => return Err("unterminated double quote (missing \")".to_string()),
                Some('"') => {
                    self.pos += 1;
                    return Ok(s);
                }
                Some('$') => {
                    let v = self.dollar()?;
                    s.push_str(&v);
                }
                Some(mut c) => {
                    self.pos += 1;
                    if c == self.escape {
                        match self.peek() {
                            Some(n) if n == '"' || n == '$' || n == self.escape => {
                                self.pos += 1;
                                c = n;
                            }
                            // Any other escape stays as written.
                            _ => {}
                        }
                    }
                    s.push(c);
                }
            }
        }
    }

    /// A variable name: letters, digits and `_`; a run of digits; or one special parameter.
    fn name(&mut self) -> String {
        let mut name = String::new();
        match self.peek() {
            Some(c) if c.is_ascii_digit() => {
                while let Some(d) = self.peek().filter(char::is_ascii_digit) {
                    name.push(d);
                    self.pos += 1;
                }
                return name;
            }
            Some(c) if "@*#?-$!".contains(c) => {
                self.pos += 1;
                name.push(c);
                return name;
            }
            _ => {}
        }
        while let Some(c) = self.peek().filter(|c| c.is_alphanumeric() || *c == '_') {
            name.push(c);
            self.pos += 1;
        }
        name
    }

    /// The word after a `${name` modifier, up to the closing `}`; it may itself hold
    /// quotes and expansions.
    fn modifier_word(&mut self) -> Result<String, String> {
        let mut out = Out::default();
        self.process(Some('}'), &mut out)?;
        Ok(out.full)
    }

    fn dollar(&mut self) -> Result<String, String> {
        self.pos += 1;
        if self.peek() != Some('{') {
            let name = self.name();
            if name.is_empty() {
                return Ok("$".to_string());
            }
            return Ok(self.vars.get(&name).unwrap_or_default());
        }
        self.pos += 1;
        match self.peek() {
            None => return Err("syntax error: missing '}'".to_string()),
            Some('{' | '}' | ':') => return Err("syntax error: bad substitution".to_string()),
            _ => {}
        }
        let name = self.name();
        if name.is_empty() {
            return Err("syntax error: bad substitution".to_string());
        }
        let value = self.vars.get(&name);
        let unset = |name: &str, word: &str, what: &str| {
            let message = if word.is_empty() { what } else { word };
            Err(format!("{name}: {message}"))
        };
        match self.next() {
            None => Err("syntax error: missing '}'".to_string()),
            Some('}') => Ok(value.unwrap_or_default()),
            Some('-') => {
                let word = self.modifier_word()?;
                Ok(value.unwrap_or(word))
            }
            Some('+') => {
                let word = self.modifier_word()?;
                Ok(if value.is_some() { word } else { String::new() })
            }
            Some('?') => {
                let word = self.modifier_word()?;
                match value {
                    Some(v) => Ok(v),
                    None => unset(&name, &word, "is not allowed to be unset"),
                }
            }
            Some(':') => {
                let modifier = self.next();
                let word = self.modifier_word()?;
                let value = value.filter(|v| !v.is_empty());
                match modifier {
                    Some('-') => Ok(value.unwrap_or(word)),
                    Some('+') => Ok(if value.is_some() { word } else { String::new() }),
                    Some('?') => match value {
                        Some(v) => Ok(v),
                        None if self.vars.get(&name).is_none() => {
                            unset(&name, &word, "is not allowed to be unset")
                        }
                        None => unset(&name, &word, "is not allowed to be empty"),
                    },
                    Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
                    None => Err("syntax error: missing '}'".to_string()),
                }
            }
            Some(m) => Err(format!("unsupported modifier ({m}) in substitution")),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn vars() -> HashMap<String, String> {
        [
            ("a", "A"),
            ("b", "B"),
            ("empty", ""),
            ("sp", "x  y"),
            ("_x1", "X1"),
        ]
        .into_iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
    }

    fn w(raw: &str) -> String {
        process_word(raw, &vars(), '\\').unwrap()
    }

    fn err(raw: &str) -> String {
        process_word(raw, &vars(), '\\').unwrap_err()
    }

    #[test]
    fn heredoc_bodies_expand_variables_and_keep_quotes() {
        let h = |raw: &str| process_heredoc(raw, &vars(), '\\').unwrap();
        assert_eq!(h("say '$a' \"${b}\"\n"), "say 'A' \"B\"\n");
        assert_eq!(h("it's ${unset:-d}\n"), "it's d\n");
        assert_eq!(h("\\$a and \\n and \\\\\n"), "$a and \\n and \\\n");
        assert_eq!(h("x  y\tz\n"), "x  y\tz\n");
    }

    #[test]
    fn plain_and_simple_variables() {
        assert_eq!(w("hello"), "hello");
        assert_eq!(w("$a"), "A");
        assert_eq!(w("x${a}y"), "xAy");
        assert_eq!(w("$a$b"), "AB");
        assert_eq!(w("$_x1-"), "X1-");
        assert_eq!(w("$unset"), "");
        assert_eq!(w("${unset}"), "");
        assert_eq!(w("a$"), "a$");
        assert_eq!(w("$ x"), "$ x");
        assert_eq!(w("$1"), "");
    }

    #[test]
    fn single_quotes_are_literal() {
        assert_eq!(w("'$a \\n'"), "$a \\n");
        assert_eq!(w("x'y'z"), "xyz");
        assert!(err("'abc").contains("single quote"));
    }

    #[test]
    fn double_quotes_expand_and_escape_only_some_chars() {
        assert_eq!(w("\"$a b\""), "A b");
        assert_eq!(w(r#""\"\$a\\""#), "\"$a\\");
        assert_eq!(w(r#""\n\t""#), "\\n\\t");
        assert_eq!(w(r#""it's""#), "it's");
        assert!(err("\"abc").contains("double quote"));
    }

    #[test]
    fn escapes_outside_quotes() {
        assert_eq!(w(r"\$a"), "$a");
        assert_eq!(w(r"\$\{a\}"), "${a}");
        assert_eq!(w(r"a\ b"), "a b");
        assert_eq!(w(r"\'x\'"), "'x'");
        assert_eq!(w(r"c:\\dir"), r"c:\dir");
        assert_eq!(w("end\\"), "end");
    }

    #[test]
    fn backtick_escape() {
        let v = vars();
        assert_eq!(process_word(r"c:\dir\$a", &v, '`').unwrap(), r"c:\dir\A");
        assert_eq!(process_word("`$a", &v, '`').unwrap(), "$a");
        assert_eq!(process_word("\"`\"x\"", &v, '`').unwrap(), "\"x");
        assert_eq!(process_word("\"\\\"", &v, '`').unwrap(), "\\");
    }

    #[test]
    fn default_forms() {
        assert_eq!(w("${a:-d}"), "A");
        assert_eq!(w("${unset:-d}"), "d");
        assert_eq!(w("${empty:-d}"), "d");
        assert_eq!(w("${a-d}"), "A");
        assert_eq!(w("${unset-d}"), "d");
        assert_eq!(w("${empty-d}"), "");
    }

    #[test]
    fn alternative_forms() {
        assert_eq!(w("${a:+alt}"), "alt");
        assert_eq!(w("${empty:+alt}"), "");
        assert_eq!(w("${unset:+alt}"), "");
        assert_eq!(w("${a+alt}"), "alt");
        assert_eq!(w("${empty+alt}"), "alt");
        assert_eq!(w("${unset+alt}"), "");
    }

    #[test]
    fn error_forms() {
        assert_eq!(w("${a:?boom}"), "A");
        assert_eq!(err("${unset:?boom}"), "unset: boom");
        assert_eq!(err("${empty:?}"), "empty: is not allowed to be empty");
        assert_eq!(err("${unset:?}"), "unset: is not allowed to be unset");
        assert_eq!(w("${empty?boom}"), "");
        assert_eq!(err("${unset?boom}"), "unset: boom");
    }

    #[test]
    fn nested_and_quoted_modifier_words() {
        assert_eq!(w("${unset:-$b}"), "B");
        assert_eq!(w("${unset:-${b}x}"), "Bx");
        assert_eq!(w("${unset:-${also:-deep}}"), "deep");
        assert_eq!(w("${unset:-\"x y\"}"), "x y");
        assert_eq!(w("${a:+[$b]}"), "[B]");
    }

    #[test]
    fn bad_substitutions() {
        assert!(err("${a").contains("missing '}'"));
        assert!(err("${").contains("missing '}'"));
        assert!(err("${unset:-x").contains("missing '}'"));
        assert!(err("${}").contains("bad substitution"));
        assert!(err("${:-x}").contains("bad substitution"));
        assert!(err("${a%x}").contains("unsupported modifier"));
        assert!(err("${a:=x}").contains("unsupported modifier"));
    }

    #[test]
    fn process_words_splits_unquoted_text() {
        let v = vars();
        let pw = |s: &str| process_words(s, &v, '\\').unwrap();
        assert_eq!(pw("  80/tcp  $a \"x y\" "), ["80/tcp", "A", "x y"]);
        assert_eq!(pw(r"a\ b c"), ["a b", "c"]);
        assert_eq!(pw("'p q'r s"), ["p qr", "s"]);
        // Unquoted expansions split, quoted ones do not (as BuildKit's ProcessWords).
        assert_eq!(pw("$sp"), ["x", "y"]);
        assert_eq!(pw("\"$sp\""), ["x  y"]);
        assert_eq!(pw("$unset"), Vec::<String>::new());
        assert!(process_words("'x", &v, '\\').is_err());
    }

    #[test]
    fn split_raw_keeps_quotes_and_escapes() {
        let s = |r: &str| split_raw(r, '\\').unwrap();
        assert_eq!(
            s(r#"a=1 b="x y" c='p q'"#),
            ["a=1", r#"b="x y""#, "c='p q'"]
        );
        assert_eq!(s(r"k=a\ b  z"), [r"k=a\ b", "z"]);
        assert_eq!(s(r#"k="a\" b""#), [r#"k="a\" b""#]);
        assert_eq!(s("k='a\\' b"), ["k='a\\'", "b"]);
        assert_eq!(s("  "), Vec::<String>::new());
        assert_eq!(s("x\\"), ["x"]);
        assert_eq!(split_raw("a`  b", '`').unwrap(), ["a` ", "b"]);
        assert!(split_raw("k=\"open", '\\').is_err());
    }

    #[test]
    fn pair_lists_last_wins() {
        let list = vec![
            ("a".to_string(), "1".to_string()),
            ("a".to_string(), "2".to_string()),
        ];
        assert_eq!(process_word("$a", &list, '\\').unwrap(), "2");
        assert_eq!(Vars::get(list.as_slice(), "a").as_deref(), Some("2"));
    }
}
