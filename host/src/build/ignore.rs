//! `.dockerignore` files with Docker's semantics (moby's `patternmatcher`), which differ from
//! gitignore's: patterns are relative to the context root and matched against whole paths, the
//! last matching pattern decides, a pattern that matches a directory also matches everything
//! below it, and `!pattern` is an exception that brings paths back.
//!
//! Pattern syntax is Go's `filepath.Match` (`*` within one path component, `?`, `[a-z]`, `[^a]`,
//! `\` escaping the next character) plus `**`, which matches any number of directories,
//! including none (`**/x`, `a/**/b`), or anything at all at the end of a pattern (`a/**`).
//! Paths are always `/`-separated (and `\` always escapes, on every platform).
//!
//! The module also offers [`path_match`] (plain `filepath.Match`, used for `COPY` wildcards)
//! and [`clean_path`] (Go's `path.Clean`).

/// A parsed `.dockerignore`.
#[derive(Debug, Clone, Default)]
pub struct Ignore {
    patterns: Vec<Pattern>,
}

#[derive(Debug, Clone)]
struct Pattern {
    exception: bool,
    toks: Vec<Tok>,
}

/// One element of a compiled pattern.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Tok {
    Lit(char),
    /// `?`: one character other than `/`.
    One,
    /// `*`: any run of characters other than `/`.
    Star,
    /// `[...]`: one character in (or, negated, not in) the inclusive ranges.
    Class {
        negated: bool,
        ranges: Vec<(char, char)>,
    },
    /// `**` (and a `/` after it) with more pattern after: nothing, or anything ending in `/`.
    Dirs,
    /// `**` at the end of the pattern: anything at all.
    Rest,
}

impl Ignore {
    /// Parses a `.dockerignore` file's text, as the docker CLI reads it: a UTF-8 byte order
    /// mark is dropped; lines starting with `#` are comments; each line is trimmed and blank
    /// ones skipped; `!` marks an exception; each pattern is cleaned like Go's `filepath.Clean`
    /// and a leading `/` dropped. A malformed pattern is an error naming it and its line.
    pub fn parse(text: &str) -> Result<Ignore, String> {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut patterns = Vec::new();
        for (index, line) in text.lines().enumerate() {
            // As in the docker CLI, a comment is recognised before trimming.
            if line.starts_with('#') {
                continue;
            }
            let line = line.trim();
            if line.is_empty() {
                continue;
            }
            let (exception, body) = match line.strip_prefix('!') {
                Some(rest) => (true, rest.trim()),
                None => (false, line),
            };
            let lineno = index + 1;
            if body.is_empty() {
                return Err(format!(
                    ".dockerignore line {lineno}: illegal exclusion pattern: \"!\""
                ));
            }
            let mut cleaned = clean_path(body);
            if cleaned.len() > 1 && cleaned.starts_with('/') {
                cleaned.remove(0);
            }
            let toks = compile(&cleaned, true).map_err(|()| {
                format!(".dockerignore line {lineno}: invalid pattern {line:?}: syntax error in pattern")
            })?;
            patterns.push(Pattern { exception, toks });
        }
        Ok(Ignore { patterns })
    }

    /// An ignore file without patterns: nothing is excluded.
    pub fn empty() -> Ignore {
        Ignore::default()
    }

    /// Whether there are no patterns at all.
    pub fn is_empty(&self) -> bool {
        self.patterns.is_empty()
    }

    /// Whether the context path `path` (relative, `/`-separated; a leading `./` or `/` is
    /// tolerated) is excluded. The last pattern that matches the path, or any parent directory
    /// of it, decides: an exclusion excludes, an exception includes. The context root itself
    /// is never excluded.
    pub fn excluded(&self, path: &str) -> bool {
        let path = normalize(path);
        if path.is_empty() || self.patterns.is_empty() {
            return false;
        }
        let chars: Vec<char> = path.chars().collect();
        let mut matched = false;
        for pattern in &self.patterns {
            // An exclusion cannot change an excluded path, nor an exception an included one.
            if pattern.exception != matched {
                continue;
            }
            let hit = matches(&pattern.toks, &chars, false)
                || chars
                    .iter()
                    .enumerate()
                    .any(|(i, &c)| c == '/' && matches(&pattern.toks, &chars[..i], false));
            if hit {
                matched = !pattern.exception;
            }
        }
        matched
    }

    /// Whether some exception pattern could match a path below the directory `dir`, so a
    /// walker must descend into `dir` even though it is excluded itself. This is conservative
    /// (it ignores the order of patterns) but, unlike the docker CLI's plain prefix test, it
    /// understands wildcards (`!*/keep`, `!**/keep`).
    pub fn may_have_exceptions_under(&self, dir: &str) -> bool {
        let dir = normalize(dir);
        let below: Vec<char> = if dir.is_empty() {
            Vec::new()
        } else {
            format!("{dir}/").chars().collect()
        };
        self.patterns
            .iter()
            .any(|p| p.exception && matches(&p.toks, &below, true))
    }
}

/// Go's `filepath.Match` on `/`-separated paths: whether `name` matches `pattern` as a whole,
/// `*` and `?` never matching `/`. A malformed pattern is an error.
pub fn path_match(pattern: &str, name: &str) -> Result<bool, String> {
    let toks = compile(pattern, false)
        .map_err(|()| format!("invalid pattern {pattern:?}: syntax error in pattern"))?;
    let chars: Vec<char> = name.chars().collect();
    Ok(matches(&toks, &chars, false))
}

/// Go's `path.Clean`: repeated `/` collapsed, `.` elements dropped, `..` elements resolved
/// lexically (a `..` at the root of a rooted path is dropped), no trailing `/`; `.` when
/// nothing is left.
pub fn clean_path(path: &str) -> String {
    let rooted = path.starts_with('/');
    let mut parts: Vec<&str> = Vec::new();
    for part in path.split('/') {
        match part {
            "" | "." => {}
            ".." => {
                if parts.last().is_some_and(|last| *last != "..") {
                    parts.pop();
                } else if !rooted {
                    parts.push("..");
                }
            }
            other => parts.push(other),
        }
    }
    let body = parts.join("/");
    if rooted {
        format!("/{body}")
    } else if body.is_empty() {
        ".".to_string()
    } else {
        body
    }
}

/// A path as `excluded` sees it: cleaned, relative, `""` for the root.
fn normalize(path: &str) -> String {
    let cleaned = clean_path(path);
    let cleaned = cleaned.trim_start_matches('/');
    if cleaned == "." {
        String::new()
    } else {
        cleaned.to_string()
    }
}

/// Compiles a pattern; `double_star` enables `**`. The syntax checks are those of Go's
/// `filepath.Match`: a `\` at the end, an unclosed or empty `[...]`, or a range missing an
/// end (`[a-]`) is malformed.
fn compile(pattern: &str, double_star: bool) -> Result<Vec<Tok>, ()> {
    let chars: Vec<char> = pattern.chars().collect();
    let mut toks = Vec::new();
    let mut i = 0;
    while i < chars.len() {
        let c = chars[i];
        i += 1;
        match c {
            '*' if double_star && chars.get(i) == Some(&'*') => {
                i += 1;
                if chars.get(i) == Some(&'/') {
                    i += 1;
                }
                toks.push(if i == chars.len() {
                    Tok::Rest
                } else {
                    Tok::Dirs
                });
            }
            '*' => toks.push(Tok::Star),
            '?' => toks.push(Tok::One),
            '\\' => {
                let escaped = *chars.get(i).ok_or(())?;
                i += 1;
                toks.push(Tok::Lit(escaped));
            }
            '[' => {
                let negated = chars.get(i) == Some(&'^');
                if negated {
                    i += 1;
                }
                let mut ranges = Vec::new();
                loop {
                    if chars.get(i) == Some(&']') && !ranges.is_empty() {
                        i += 1;
                        break;
                    }
                    let lo = class_char(&chars, &mut i)?;
                    let hi = if chars.get(i) == Some(&'-') {
                        i += 1;
                        class_char(&chars, &mut i)?
                    } else {
                        lo
                    };
                    ranges.push((lo, hi));
                }
                toks.push(Tok::Class { negated, ranges });
            }
            other => toks.push(Tok::Lit(other)),
        }
    }
    Ok(toks)
}

/// One (possibly escaped) character of a class; like Go's `getEsc`, an unescaped `-` or `]`
/// here, or the pattern ending right after, is malformed.
fn class_char(chars: &[char], i: &mut usize) -> Result<char, ()> {
    let mut c = *chars.get(*i).ok_or(())?;
    if c == '-' || c == ']' {
        return Err(());
    }
    if c == '\\' {
        *i += 1;
        c = *chars.get(*i).ok_or(())?;
    }
    *i += 1;
    if *i >= chars.len() {
        return Err(());
    }
    Ok(c)
}

/// Whether `toks` match all of `s`. With `prefix`, also whether they could match some
/// longer string that starts with `s` (reaching the end of `s` with pattern left is a hit).
fn matches(toks: &[Tok], s: &[char], prefix: bool) -> bool {
    let Some((tok, rest)) = toks.split_first() else {
        return s.is_empty();
    };
    if s.is_empty() && prefix {
        return true;
    }
    match tok {
        Tok::Lit(c) => s.first() == Some(c) && matches(rest, &s[1..], prefix),
        Tok::One => s.first().is_some_and(|&c| c != '/') && matches(rest, &s[1..], prefix),
        Tok::Class { negated, ranges } => {
            s.first()
                .is_some_and(|&c| ranges.iter().any(|&(lo, hi)| lo <= c && c <= hi) != *negated)
                && matches(rest, &s[1..], prefix)
        }
        Tok::Star => {
            for i in 0..=s.len() {
                if matches(rest, &s[i..], prefix) {
                    return true;
                }
                if i < s.len() && s[i] == '/' {
                    break;
                }
            }
            false
        }
        Tok::Dirs => {
            matches(rest, s, prefix)
                || s.iter()
                    .enumerate()
                    .any(|(i, &c)| c == '/' && matches(rest, &s[i + 1..], prefix))
        }
        Tok::Rest => true,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn ig(text: &str) -> Ignore {
        Ignore::parse(text).unwrap()
    }

    #[test]
    fn comments_blank_lines_and_whitespace() {
        let i = ig("# a comment\n\n   \n  foo.txt  \n#bar\r\nbaz\r\n");
        assert!(i.excluded("foo.txt"));
        assert!(i.excluded("baz"));
        assert!(!i.excluded("bar"));
        assert!(!i.excluded("# a comment"));
        assert!(Ignore::parse("# only\n\n").unwrap().is_empty());
        assert!(!Ignore::empty().excluded("anything"));
        // A byte order mark does not become part of the first pattern.
        assert!(ig("\u{feff}first\n").excluded("first"));
    }

    #[test]
    fn star_does_not_cross_slash() {
        let i = ig("*.txt");
        assert!(i.excluded("a.txt"));
        assert!(i.excluded(".txt"));
        assert!(!i.excluded("dir/a.txt"));
        assert!(!i.excluded("a.txt.bak"));
        let i = ig("dir/*");
        assert!(i.excluded("dir/a"));
        assert!(i.excluded("dir/a/b"), "through the parent dir/a");
        assert!(!i.excluded("dir"));
        assert!(!i.excluded("other/a"));
        // `*` alone excludes everything (every top-level name is a parent).
        let i = ig("*");
        assert!(i.excluded("x") && i.excluded("x/y/z"));
    }

    #[test]
    fn double_star_start_middle_end() {
        let i = ig("**/*.go");
        assert!(i.excluded("main.go"));
        assert!(i.excluded("a/b/c/main.go"));
        assert!(!i.excluded("main.goo"));
        let i = ig("a/**/b");
        assert!(i.excluded("a/b"));
        assert!(i.excluded("a/x/b"));
        assert!(i.excluded("a/x/y/b"));
        assert!(i.excluded("a/x/y/b/inside"));
        assert!(!i.excluded("a/xb"));
        assert!(!i.excluded("c/a/b"));
        let i = ig("a/**");
        assert!(i.excluded("a/x"));
        assert!(i.excluded("a/x/y"));
        assert!(!i.excluded("a"));
        assert!(!i.excluded("ab"));
        let i = ig("**");
        assert!(i.excluded("anything/at/all"));
        let i = ig("**/node_modules");
        assert!(i.excluded("node_modules/x"));
        assert!(i.excluded("web/node_modules/x/y"));
        assert!(!i.excluded("web/node_modules_x"));
    }

    #[test]
    fn question_mark_and_classes() {
        let i = ig("a?c");
        assert!(i.excluded("abc"));
        assert!(!i.excluded("a/c"));
        assert!(!i.excluded("ac"));
        assert!(!i.excluded("abbc"));
        let i = ig("[a-c].txt\nfile[0-9]\n[^x]y\nlit\\*");
        assert!(i.excluded("b.txt"));
        assert!(!i.excluded("d.txt"));
        assert!(i.excluded("file7"));
        assert!(!i.excluded("filex"));
        assert!(i.excluded("ay"));
        assert!(!i.excluded("xy"));
        assert!(i.excluded("lit*"));
        assert!(!i.excluded("litx"));
        let i = ig("[\\]]z");
        assert!(i.excluded("]z"));
    }

    #[test]
    fn directory_pattern_excludes_contents() {
        let i = ig("build\nsub/dir");
        assert!(i.excluded("build"));
        assert!(i.excluded("build/out/x.o"));
        assert!(i.excluded("sub/dir/deep/file"));
        assert!(!i.excluded("sub/other"));
        assert!(!i.excluded("builder"));
        assert!(!i.excluded("x/build"), "patterns are anchored at the root");
    }

    #[test]
    fn exception_brings_one_file_back() {
        let i = ig("*.md\n!README.md");
        assert!(i.excluded("CHANGES.md"));
        assert!(!i.excluded("README.md"));
        let i = ig("dir\n!dir/keep");
        assert!(i.excluded("dir"));
        assert!(i.excluded("dir/other"));
        assert!(!i.excluded("dir/keep"));
        assert!(!i.excluded("dir/keep/inner"));
        assert!(i.may_have_exceptions_under("dir"));
        assert!(!i.may_have_exceptions_under("other"));
        assert!(!i.may_have_exceptions_under("dir/other"));
        assert!(!ig("dir").may_have_exceptions_under("dir"));
    }

    #[test]
    fn exceptions_under_with_wildcards() {
        let i = ig("*\n!*/keep\n!**/deep.txt");
        assert!(i.may_have_exceptions_under("a"));
        assert!(i.may_have_exceptions_under("a/b/c"));
        assert!(!i.excluded("a/keep"));
        assert!(i.excluded("a/other"));
        assert!(!i.excluded("a/b/c/deep.txt"));
        let i = ig("*\n!src/*.rs");
        assert!(i.may_have_exceptions_under("src"));
        assert!(!i.may_have_exceptions_under("docs"));
        assert!(!i.may_have_exceptions_under("src/nested/deeper"));
        assert!(ig("*\n!x").may_have_exceptions_under(""));
    }

    #[test]
    fn last_match_wins_both_ways() {
        assert!(ig("!a.txt\n*.txt").excluded("a.txt"));
        assert!(!ig("*.txt\n!a.txt").excluded("a.txt"));
        assert!(ig("*.txt\n!a.txt\na.txt").excluded("a.txt"));
        assert!(!ig("a\n!a\n").excluded("a/b"));
        assert!(ig("a\n!a/b\na/b/c").excluded("a/b/c"));
        assert!(!ig("a\n!a/b\na/b/c").excluded("a/b/d"));
    }

    #[test]
    fn patterns_and_paths_are_cleaned() {
        let i = ig("/foo\n./bar/\nbaz/../qux\na//b\n! /keep/this/");
        assert!(i.excluded("foo"));
        assert!(i.excluded("bar/x"));
        assert!(i.excluded("qux"));
        assert!(!i.excluded("baz"));
        assert!(i.excluded("a/b"));
        assert!(i.excluded("./foo"));
        assert!(i.excluded("/foo/x"));
        assert!(!i.excluded(""));
        assert!(!i.excluded("."));
        assert!(!ig("*\n!keep/this").excluded("keep/this"));
        assert_eq!(clean_path("a/./b/../../c/"), "c");
        assert_eq!(clean_path("/../x//y"), "/x/y");
        assert_eq!(clean_path("../x"), "../x");
        assert_eq!(clean_path(""), ".");
    }

    #[test]
    fn malformed_patterns_are_errors() {
        let err = Ignore::parse("ok\n[a").unwrap_err();
        assert!(err.contains("\"[a\"") && err.contains("line 2"), "{err}");
        for bad in ["[]", "[a-]", "x\\", "[z", "[-a]", "[^]"] {
            assert!(Ignore::parse(bad).is_err(), "{bad}");
        }
        let err = Ignore::parse("!").unwrap_err();
        assert!(err.contains("illegal exclusion pattern"), "{err}");
        assert!(Ignore::parse("[a]\n[^a-z]\n\\[").is_ok());
    }

    #[test]
    fn go_filepath_match() {
        assert!(path_match("*.txt", "a.txt").unwrap());
        assert!(!path_match("*.txt", "d/a.txt").unwrap());
        assert!(path_match("d/*.txt", "d/a.txt").unwrap());
        assert!(path_match("**", "ab").unwrap());
        assert!(!path_match("**", "a/b").unwrap(), "no ** in filepath.Match");
        assert!(path_match("f?le[0-9]", "file1").unwrap());
        assert!(path_match("[", "x").is_err());
    }
}
