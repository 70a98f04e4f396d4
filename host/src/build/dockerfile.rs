//! The Dockerfile parser: parser directives (`# syntax=`, `# escape=`), comments, line
//! continuations, heredocs, instruction flags and exec/shell forms, turned into typed
//! [`Instruction`]s grouped in [`Stage`]s. Arguments stay raw (unexpanded, quotes kept): the
//! builder expands them later with the variables in scope, using [`super::words`]. Also owns
//! the parsing of `RUN --mount=` values ([`parse_mount`]) and Go durations ([`parse_duration`]).

pub use super::flag_values::{parse_duration, parse_mount, MountKind, RunMount};
use super::words::split_raw;
use std::time::Duration;

/// A parse failure, with the 1-based line of the instruction (or directive) at fault.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("Dockerfile line {line}: {message}")]
pub struct ParseError {
    pub line: usize,
    pub message: String,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Dockerfile {
    pub escape: char,
    pub syntax: Option<String>,
    /// ARGs before the first FROM (usable in FROM lines).
    pub global_args: Vec<ArgDecl>,
    pub stages: Vec<Stage>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Stage {
    pub index: usize,
    /// The lowercased `AS name`.
    pub name: Option<String>,
    /// Raw; may contain `$VAR` (expanded with the global args).
    pub base: String,
    /// Raw `--platform` value.
    pub platform: Option<String>,
    pub line: usize,
    pub original: String,
    /// The stage's instructions, FROM excluded.
    pub instructions: Vec<Instruction>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Instruction {
    /// 1-based line of the instruction's first line.
    pub line: usize,
    /// The instruction on one line: continuations joined, heredoc bodies left out.
    pub original: String,
    pub kind: Kind,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Command {
    /// JSON array form, already unquoted.
    Exec(Vec<String>),
    /// Shell form, raw.
    Shell(String),
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ArgDecl {
    pub name: String,
    /// Raw default value (quotes kept).
    pub default: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Heredoc {
    /// The delimiter, unquoted; for COPY/ADD also the name of the file it creates.
    pub name: String,
    /// The lines between the opener and the delimiter, each ending with `\n`; with
    /// `strip_tabs`, the leading tabs are already removed.
    pub body: String,
    /// False when the delimiter was quoted (`<<"EOF"`, `<<'EOF'`): no expansion.
    pub expand: bool,
    /// `<<-EOF`.
    pub strip_tabs: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct CopySpec {
    /// Raw sources (for exec form already unquoted). Heredoc sources are NOT listed here:
    /// they are in `heredocs`, each a file named after its delimiter (as BuildKit does).
    pub sources: Vec<String>,
    pub dest: String,
    pub from: Option<String>,
    pub chown: Option<String>,
    pub chmod: Option<String>,
    pub link: bool,
    /// ADD only: `--checksum`.
    pub checksum: Option<String>,
    /// ADD only: `--keep-git-dir`.
    pub keep_git_dir: bool,
    pub heredocs: Vec<Heredoc>,
    pub exec_form: bool,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct RunSpec {
    /// The command as written (heredoc openers such as `<<EOF` included).
    pub command: Command,
    /// Raw `--mount` values, e.g. "type=cache,target=/var/cache/apt" (see [`parse_mount`]).
    pub mounts: Vec<String>,
    pub network: Option<String>,
    pub security: Option<String>,
    pub heredocs: Vec<Heredoc>,
}

impl RunSpec {
    /// The heredoc that is the whole script (`RUN <<EOF`), to be run with the shell;
    /// `None` when heredocs are only stdin or files of a command (`RUN python3 <<EOF`).
    pub fn script_heredoc(&self) -> Option<&Heredoc> {
        let Command::Shell(cmd) = &self.command else {
            return None;
        };
        let words = split_raw(cmd, '\\').ok()?;
        match (words.as_slice(), self.heredocs.as_slice()) {
            ([word], [doc]) if word.starts_with("<<") && heredoc_opener(word).is_some() => {
                Some(doc)
            }
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct HealthSpec {
    /// `None` for HEALTHCHECK NONE.
    pub test: Option<Command>,
    pub interval: Option<String>,
    pub timeout: Option<String>,
    pub start_period: Option<String>,
    pub start_interval: Option<String>,
    pub retries: Option<String>,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Kind {
    Run(RunSpec),
    Cmd(Command),
    Entrypoint(Command),
    Shell(Vec<String>),
    Copy(CopySpec),
    Add(CopySpec),
    /// Raw (key, value) pairs.
    Env(Vec<(String, String)>),
    /// Raw (key, value) pairs.
    Label(Vec<(String, String)>),
    Arg(Vec<ArgDecl>),
    Workdir(String),
    User(String),
    Expose(String),
    Volume(Command),
    StopSignal(String),
    Healthcheck(HealthSpec),
    /// The trigger instruction, raw (already checked to parse).
    OnBuild(String),
    Maintainer(String),
}

impl Dockerfile {
    /// The stage a `--target` or `COPY --from` names: by name (case-insensitive) or index.
    pub fn stage(&self, name: &str) -> Option<&Stage> {
        let lower = name.to_ascii_lowercase();
        self.stages
            .iter()
            .find(|s| s.name.as_deref() == Some(lower.as_str()))
            .or_else(|| name.parse::<usize>().ok().and_then(|i| self.stages.get(i)))
    }
}

/// The instructions this parser knows.
const KEYWORDS: &str = "FROM RUN CMD LABEL MAINTAINER EXPOSE ENV ADD COPY ENTRYPOINT VOLUME USER \
                        WORKDIR ARG ONBUILD STOPSIGNAL HEALTHCHECK SHELL";

fn known(keyword: &str) -> bool {
    KEYWORDS.split_whitespace().any(|k| k == keyword)
}

fn perr(line: usize) -> impl Fn(String) -> ParseError {
    move |message| ParseError { line, message }
}

/// Parses a whole Dockerfile.
pub fn parse(text: &str) -> Result<Dockerfile, ParseError> {
    let text = text.strip_prefix('\u{feff}').unwrap_or(text);
    let lines: Vec<&str> = text
        .split('\n')
        .map(|l| l.strip_suffix('\r').unwrap_or(l))
        .collect();
    let mut df = Dockerfile {
        escape: '\\',
        syntax: None,
        global_args: vec![],
        stages: vec![],
    };
    let mut seen: Vec<String> = Vec::new();
    let mut i = 0;
    while let Some((key, value)) = lines.get(i).and_then(|l| directive(l)) {
        i += 1;
        if seen.contains(&key) {
            return Err(perr(i)(format!(
                "only one {key} parser directive can be used"
            )));
        }
        match (key.as_str(), value.as_str()) {
            ("escape", "\\" | "`") => df.escape = value.chars().next().unwrap_or('\\'),
            ("escape", _) => {
                return Err(perr(i)(format!(
                    "invalid escape {value:?}: expected ` or \\"
                )))
            }
            ("syntax", _) => df.syntax = Some(value),
            _ => {}
        }
        seen.push(key);
    }
    let mut reader = Reader {
        lines,
        next: i,
        escape: df.escape,
    };
    while let Some((start, original)) = reader.instruction() {
        let fail = perr(start);
        let (word, rest) = split_keyword(&original);
        let keyword = word.to_ascii_uppercase();
        if !known(&keyword) {
            return Err(fail(format!("unknown instruction: {keyword}")));
        }
        let (flags, args) = take_flags(rest);
        let mut heredocs = Vec::new();
        if matches!(keyword.as_str(), "RUN" | "COPY" | "ADD") && json_array(args).is_none() {
            let words = split_raw(args, df.escape).unwrap_or_default();
            for (name, strip_tabs, expand) in words.iter().filter_map(|w| heredoc_opener(w)) {
                let Some(body) = reader.heredoc(&name, strip_tabs) else {
                    let dash = if strip_tabs { "-" } else { "" };
                    return Err(fail(format!(
                        "unterminated heredoc <<{dash}{name} (started on line {start})"
                    )));
                };
                heredocs.push(Heredoc {
                    name,
                    body,
                    expand,
                    strip_tabs,
                });
            }
        }
        if keyword == "FROM" {
            let stage = from(&df, flags, args, start, &original).map_err(fail)?;
            df.stages.push(stage);
            continue;
        }
        let kind = instruction(&keyword, flags, args, heredocs, df.escape).map_err(&fail)?;
        match (df.stages.last_mut(), kind) {
            (Some(stage), kind) => stage.instructions.push(Instruction {
                line: start,
                original,
                kind,
            }),
            (None, Kind::Arg(decls)) => df.global_args.extend(decls),
            (None, _) => {
                let message =
                    format!("{keyword} before the first FROM (only ARG may come before FROM)");
                return Err(fail(message));
            }
        }
    }
    if df.stages.is_empty() {
        return Err(perr(1)("no FROM instruction".into()));
    }
    Ok(df)
}

/// The Dockerfile's lines, read as instructions and heredoc bodies.
struct Reader<'a> {
    lines: Vec<&'a str>,
    /// Index of the next line to read.
    next: usize,
    escape: char,
}

impl<'a> Reader<'a> {
    fn line(&mut self) -> Option<&'a str> {
        let l = self.lines.get(self.next).copied();
        self.next += 1;
        l
    }

    /// The next instruction: (1-based first line, text with continuations joined), past
    /// blank and comment lines.
    fn instruction(&mut self) -> Option<(usize, String)> {
        loop {
            let first = self.line()?.trim_start();
            let start = self.next;
            if first.is_empty() || first.starts_with('#') {
                continue;
            }
            let (part, mut more) = trim_continuation(first, self.escape);
            let mut joined = part.to_string();
            while more {
                let Some(l) = self.line() else { break };
                let t = l.trim_start();
                if t.starts_with('#') || t.is_empty() {
                    continue;
                }
                let (part, m) = trim_continuation(l, self.escape);
                joined.push_str(part);
                more = m;
            }
            let joined = joined.trim();
            if !joined.is_empty() {
                return Some((start, joined.to_string()));
            }
        }
    }

    /// A heredoc body up to its delimiter line; `None` when the file ends first.
    fn heredoc(&mut self, name: &str, strip_tabs: bool) -> Option<String> {
        let mut body = String::new();
        loop {
            let l = self.line()?;
            let l = if strip_tabs {
                l.trim_start_matches('\t')
            } else {
                l
            };
            if l == name {
                return Some(body);
            }
            body.push_str(l);
            body.push('\n');
        }
    }
}

fn from(
    df: &Dockerfile,
    flags: RawFlags,
    args: &str,
    line: usize,
    original: &str,
) -> Result<Stage, String> {
    let flags = Flags::check("FROM", flags, "platform")?;
    let words = split_raw(args, df.escape)?;
    let (base, name) = match words.as_slice() {
        [] => return Err("FROM requires an image name".into()),
        [base] => (base.clone(), None),
        [base, as_, name] if as_.eq_ignore_ascii_case("as") => {
            (base.clone(), Some(stage_name(name)?))
        }
        _ => return Err("FROM expects an image name, optionally `AS <name>`".into()),
    };
    if let Some(n) = name
        .as_deref()
        .filter(|n| df.stages.iter().any(|s| s.name.as_deref() == Some(n)))
    {
        return Err(format!("duplicate stage name {n:?}"));
    }
    let platform = flags.value("platform");
    let index = df.stages.len();
    Ok(Stage {
        index,
        name,
        base,
        platform,
        line,
        original: original.to_string(),
        instructions: Vec::new(),
    })
}

/// `# key=value` at the top of the file, for the directives BuildKit knows.
fn directive(line: &str) -> Option<(String, String)> {
    let body = line.trim_start().strip_prefix('#')?;
    let (key, value) = body.split_once('=')?;
    let key = key.trim_matches([' ', '\t']);
    let mut chars = key.chars();
    if !chars.next()?.is_ascii_alphabetic() || !chars.all(|c| c.is_ascii_alphanumeric()) {
        return None;
    }
    let key = key.to_ascii_lowercase();
    let value = value.trim_matches([' ', '\t']);
    if value.is_empty() || !matches!(key.as_str(), "syntax" | "escape" | "check") {
        return None;
    }
    Some((key, value.to_string()))
}

/// Removes a trailing escape character (and whitespace after it); true when it was there.
fn trim_continuation(line: &str, escape: char) -> (&str, bool) {
    let t = line.trim_end_matches([' ', '\t']);
    match t.strip_suffix(escape) {
        Some(rest) => (rest, true),
        None => (t, false),
    }
}

fn split_keyword(s: &str) -> (&str, &str) {
    match s.find(char::is_whitespace) {
        Some(at) => (&s[..at], s[at..].trim_start()),
        None => (s, ""),
    }
}

/// `<<EOF`, `<<-EOF`, `<<"EOF"`, `2<<EOF` as one raw word: (name, strip tabs, expand).
fn heredoc_opener(word: &str) -> Option<(String, bool, bool)> {
    let rest = word
        .trim_start_matches(|c: char| c.is_ascii_digit())
        .strip_prefix("<<")?;
    let (strip_tabs, rest) = match rest.strip_prefix('-') {
        Some(r) => (true, r),
        None => (false, rest),
    };
    if rest.is_empty() || rest.contains('<') {
        return None;
    }
    let expand = !rest.contains(['"', '\'']);
    let mut name = String::new();
    let mut chars = rest.chars();
    while let Some(c) = chars.next() {
        match c {
            '"' | '\'' => {}
            '\\' => name.extend(chars.next()),
            _ => name.push(c),
        }
    }
    (!name.is_empty()).then_some((name, strip_tabs, expand))
}

fn json_array(args: &str) -> Option<Vec<String>> {
    let t = args.trim();
    if !t.starts_with('[') {
        return None;
    }
    serde_json::from_str(t).ok()
}

fn command(args: &str) -> Command {
    match json_array(args) {
        Some(list) => Command::Exec(list),
        None => Command::Shell(args.trim().to_string()),
    }
}

fn stage_name(raw: &str) -> Result<String, String> {
    let name = raw.to_lowercase();
    let mut chars = name.chars();
    let ok = chars.next().is_some_and(|c| c.is_ascii_lowercase())
        && chars.all(|c| c.is_ascii_lowercase() || c.is_ascii_digit() || "-_.".contains(c));
    if !ok {
        return Err(format!(
            "invalid stage name {raw:?}: it must start with a letter and hold only letters, \
             digits, '-', '_' and '.'"
        ));
    }
    Ok(name)
}

/// Flags as written: (name, value); a bare `--link` has no value.
type RawFlags = Vec<(String, Option<String>)>;

/// Leading `--name[=value]` words (quotes kept in values); a bare `--` ends them.
fn take_flags(rest: &str) -> (RawFlags, &str) {
    let mut flags = Vec::new();
    let mut s = rest.trim_start();
    while let Some(after) = s.strip_prefix("--") {
        let end = raw_word_end(after);
        let word = &after[..end];
        s = after[end..].trim_start();
        if word.is_empty() {
            break;
        }
        let (name, value) = match word.split_once('=') {
            Some((n, v)) => (n, Some(v.to_string())),
            None => (word, None),
        };
        flags.push((name.to_string(), value));
    }
    (flags, s)
}

/// Where the raw word at the start of `s` ends (the first unquoted whitespace).
fn raw_word_end(s: &str) -> usize {
    let (mut quote, mut escaped) = (None, false);
    for (at, c) in s.char_indices() {
        if escaped {
            escaped = false;
        } else if c == '\\' && quote != Some('\'') {
            escaped = true;
        } else if let Some(q) = quote {
            quote = quote.filter(|_| c != q);
        } else if c == '"' || c == '\'' {
            quote = Some(c);
        } else if c.is_whitespace() {
            return at;
        }
    }
    s.len()
}

/// Flags checked against what an instruction accepts.
struct Flags(RawFlags);

impl Flags {
    /// `allowed`: space-separated names; a `?` suffix marks a boolean flag, `*` one that
    /// may repeat; the others take one value.
    fn check(keyword: &str, given: RawFlags, allowed: &str) -> Result<Flags, String> {
        for (at, (name, value)) in given.iter().enumerate() {
            let spec = allowed
                .split_whitespace()
                .find(|s| s.trim_end_matches(['?', '*']) == name);
            let Some(spec) = spec else {
                return Err(format!("unknown flag --{name} for {keyword}"));
            };
            if !spec.ends_with('*') && given[..at].iter().any(|(n, _)| n == name) {
                return Err(format!("flag --{name} given twice for {keyword}"));
            }
            match (spec.ends_with('?'), value.as_deref()) {
                (true, None | Some("true" | "false")) | (false, Some(_)) => {}
                (true, Some(v)) => {
                    return Err(format!(
                        "flag --{name} for {keyword} expects true or false, not {v:?}"
                    ))
                }
                (false, None) => {
                    return Err(format!("flag --{name} for {keyword} requires a value"))
                }
            }
        }
        Ok(Flags(given))
    }

    fn value(&self, name: &str) -> Option<String> {
        self.list(name).pop()
    }

    fn bool(&self, name: &str) -> bool {
        self.0
            .iter()
            .any(|(n, v)| n == name && v.as_deref() != Some("false"))
    }

    fn list(&self, name: &str) -> Vec<String> {
        self.0
            .iter()
            .filter(|(n, _)| n == name)
            .filter_map(|(_, v)| v.clone())
            .collect()
    }
}

/// Raw KEY=VALUE pairs (many) or the legacy `KEY value with spaces` (one).
fn pairs(keyword: &str, args: &str, escape: char) -> Result<Vec<(String, String)>, String> {
    let usage = format!("{keyword} requires KEY=VALUE or KEY VALUE");
    let words = split_raw(args, escape)?;
    let Some(first) = words.first() else {
        return Err(usage);
    };
    if !first.contains('=') {
        let (key, value) = split_keyword(args.trim());
        if value.is_empty() {
            return Err(usage);
        }
        return Ok(vec![(key.to_string(), value.to_string())]);
    }
    words
        .iter()
        .map(|w| match w.split_once('=') {
            Some(("", _)) => Err(format!("{keyword} requires a name before '=' in {w:?}")),
            Some((k, v)) => Ok((k.to_string(), v.to_string())),
            None => Err(format!("{keyword}: no '=' in {w:?}; expected KEY=VALUE")),
        })
        .collect()
}

fn nonempty(keyword: &str, args: &str, what: &str) -> Result<String, String> {
    let t = args.trim();
    if t.is_empty() {
        return Err(format!("{keyword} requires {what}"));
    }
    Ok(t.to_string())
}

fn instruction(
    keyword: &str,
    given: RawFlags,
    args: &str,
    heredocs: Vec<Heredoc>,
    escape: char,
) -> Result<Kind, String> {
    let allowed = match keyword {
        "RUN" => "mount* network security",
        "COPY" => "from chown chmod link?",
        "ADD" => "from chown chmod link? checksum keep-git-dir?",
        "HEALTHCHECK" => "interval timeout start-period start-interval retries",
        _ => "",
    };
    let flags = Flags::check(keyword, given, allowed)?;
    Ok(match keyword {
        "RUN" => {
            if args.trim().is_empty() {
                return Err("RUN requires a command".into());
            }
            Kind::Run(RunSpec {
                command: command(args),
                mounts: flags.list("mount"),
                network: flags.value("network"),
                security: flags.value("security"),
                heredocs,
            })
        }
        "CMD" => Kind::Cmd(command(args)),
        "ENTRYPOINT" => Kind::Entrypoint(command(args)),
        "SHELL" => match json_array(args) {
            Some(list) if !list.is_empty() => Kind::Shell(list),
            Some(_) => return Err("SHELL requires at least one argument".into()),
            None => {
                return Err("SHELL requires the JSON array form, e.g. [\"/bin/sh\", \"-c\"]".into())
            }
        },
        "COPY" | "ADD" => {
            let (mut words, exec_form) = match json_array(args) {
                Some(list) => (list, true),
                None => (split_raw(args, escape)?, false),
            };
            if words.len() < 2 {
                let what = "at least two arguments, a source and a destination";
                return Err(format!("{keyword} requires {what}"));
            }
            let dest = words.pop().unwrap_or_default();
            if !exec_form {
                if heredoc_opener(&dest).is_some() {
                    return Err(format!(
                        "{keyword} cannot take a heredoc as its destination"
                    ));
                }
                words.retain(|w| heredoc_opener(w).is_none());
            }
            let spec = CopySpec {
                sources: words,
                dest,
                from: flags.value("from"),
                chown: flags.value("chown"),
                chmod: flags.value("chmod"),
                link: flags.bool("link"),
                checksum: flags.value("checksum"),
                keep_git_dir: flags.bool("keep-git-dir"),
                heredocs,
                exec_form,
            };
            if keyword == "COPY" {
                Kind::Copy(spec)
            } else {
                Kind::Add(spec)
            }
        }
        "ENV" => Kind::Env(pairs("ENV", args, escape)?),
        "LABEL" => Kind::Label(pairs("LABEL", args, escape)?),
        "ARG" => {
            let words = split_raw(args, escape)?;
            if words.is_empty() {
                return Err("ARG requires a name, e.g. ARG NAME or ARG NAME=default".into());
            }
            let decls = words.into_iter().map(|w| {
                let (name, default) = match w.split_once('=') {
                    Some(("", _)) => {
                        return Err(format!("ARG requires a name before '=' in {w:?}"))
                    }
                    Some((n, d)) => (n.to_string(), Some(d.to_string())),
                    None => (w, None),
                };
                Ok(ArgDecl { name, default })
            });
            Kind::Arg(decls.collect::<Result<_, _>>()?)
        }
        "WORKDIR" => Kind::Workdir(nonempty(keyword, args, "a path")?),
        "USER" => Kind::User(nonempty(keyword, args, "a user name")?),
        "EXPOSE" => Kind::Expose(nonempty(keyword, args, "at least one port")?),
        "VOLUME" => match command(&nonempty(keyword, args, "at least one path")?) {
            Command::Exec(list) if list.is_empty() => {
                return Err("VOLUME requires at least one path".into())
            }
            cmd => Kind::Volume(cmd),
        },
        "STOPSIGNAL" => Kind::StopSignal(nonempty(keyword, args, "a signal")?),
        "MAINTAINER" => Kind::Maintainer(nonempty(keyword, args, "a name")?),
        "HEALTHCHECK" => Kind::Healthcheck(healthcheck(&flags, args)?),
        "ONBUILD" => {
            let trigger = nonempty(keyword, args, "an instruction")?;
            let (word, rest) = split_keyword(&trigger);
            let sub = word.to_ascii_uppercase();
            match sub.as_str() {
                "ONBUILD" => return Err("ONBUILD ONBUILD is not allowed".into()),
                "FROM" | "MAINTAINER" => {
                    return Err(format!("{sub} is not allowed as an ONBUILD trigger"))
                }
                k if !known(k) => return Err(format!("unknown instruction: {sub}")),
                _ => {}
            }
            let (given, sub_args) = take_flags(rest);
            instruction(&sub, given, sub_args, Vec::new(), escape)?;
            Kind::OnBuild(trigger)
        }
        other => return Err(format!("unknown instruction: {other}")),
    })
}

fn healthcheck(flags: &Flags, args: &str) -> Result<HealthSpec, String> {
    let (typ, rest) = split_keyword(args.trim());
    let mut spec = HealthSpec {
        test: None,
        interval: flags.value("interval"),
        timeout: flags.value("timeout"),
        start_period: flags.value("start-period"),
        start_interval: flags.value("start-interval"),
        retries: flags.value("retries"),
    };
    match typ.to_ascii_uppercase().as_str() {
        "NONE" if rest.is_empty() && flags.0.is_empty() => return Ok(spec),
        "NONE" => return Err("HEALTHCHECK NONE takes no arguments or flags".into()),
        "CMD" if rest.is_empty() => return Err("HEALTHCHECK CMD requires a command".into()),
        "CMD" => spec.test = Some(command(rest)),
        _ => return Err("HEALTHCHECK requires CMD <command> or NONE".into()),
    }
    let durations = [
        ("interval", &spec.interval),
        ("timeout", &spec.timeout),
        ("start-period", &spec.start_period),
        ("start-interval", &spec.start_interval),
    ];
    for (name, value) in durations {
        if let Some(v) = value {
            let d = parse_duration(v).map_err(|e| format!("HEALTHCHECK --{name}: {e}"))?;
            if !d.is_zero() && d < Duration::from_millis(1) {
                return Err(format!(
                    "HEALTHCHECK --{name} {v:?} cannot be less than 1ms"
                ));
            }
        }
    }
    if let Some(r) = &spec.retries {
        match r.parse::<i64>() {
            Ok(n) if n < 0 => return Err("HEALTHCHECK --retries cannot be negative".into()),
            Ok(_) => {}
            Err(_) => return Err(format!("HEALTHCHECK --retries {r:?} is not a number")),
        }
    }
    Ok(spec)
}

#[cfg(test)]
#[path = "dockerfile_tests.rs"]
mod tests;
