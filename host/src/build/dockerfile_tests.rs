//! Tests of the Dockerfile parser (`dockerfile.rs`).

use super::*;

fn ok(text: &str) -> Dockerfile {
    parse(text).unwrap_or_else(|e| panic!("{e}"))
}

fn err(text: &str) -> ParseError {
    parse(text).expect_err("expected a parse error")
}

/// The kinds of the first stage's instructions.
fn kinds(text: &str) -> Vec<Kind> {
    ok(text)
        .stages
        .remove(0)
        .instructions
        .into_iter()
        .map(|i| i.kind)
        .collect()
}

fn one(text: &str) -> Kind {
    kinds(text).remove(0)
}

fn shell(s: &str) -> Command {
    Command::Shell(s.to_string())
}

fn exec(list: &[&str]) -> Command {
    Command::Exec(list.iter().map(|s| s.to_string()).collect())
}

fn pairs_of(list: &[(&str, &str)]) -> Vec<(String, String)> {
    list.iter()
        .map(|(k, v)| (k.to_string(), v.to_string()))
        .collect()
}

fn run(text: &str) -> RunSpec {
    match one(text) {
        Kind::Run(r) => r,
        k => panic!("not RUN: {k:?}"),
    }
}

fn copy(text: &str) -> CopySpec {
    match one(text) {
        Kind::Copy(c) | Kind::Add(c) => c,
        k => panic!("not COPY/ADD: {k:?}"),
    }
}

#[test]
fn error_display() {
    let e = ParseError {
        line: 3,
        message: "boom".into(),
    };
    assert_eq!(e.to_string(), "Dockerfile line 3: boom");
}

#[test]
fn directives_at_the_top() {
    let df = ok("# syntax=docker/dockerfile:1\n#ESCAPE = `\nFROM x\n");
    assert_eq!(df.syntax.as_deref(), Some("docker/dockerfile:1"));
    assert_eq!(df.escape, '`');
    // After a blank line (or any non-directive) they are plain comments.
    assert_eq!(ok("\n# escape=`\nFROM x\n").escape, '\\');
    assert_eq!(ok("# comment\n# escape=`\nFROM x\n").escape, '\\');
    // An unknown directive is a comment and ends the directives.
    assert_eq!(ok("# foo=bar\n# escape=`\nFROM x\n").escape, '\\');
    assert_eq!(err("# escape=x\nFROM x").line, 1);
    assert!(err("# escape=`\n# escape=\\\nFROM x")
        .message
        .contains("only one escape"));
}

#[test]
fn backtick_escape_changes_continuation() {
    let df = ok("# escape=`\nFROM x\nRUN dir c:\\ `\n  && echo hi\nCOPY a c:\\dst\\\n");
    let st = &df.stages[0];
    assert_eq!(
        st.instructions[0].kind,
        Kind::Run(RunSpec {
            command: shell("dir c:\\   && echo hi"),
            mounts: vec![],
            network: None,
            security: None,
            heredocs: vec![],
        })
    );
    // A trailing backslash is no continuation any more.
    assert_eq!(st.instructions[1].original, "COPY a c:\\dst\\");
    assert_eq!(st.instructions.len(), 2);
}

#[test]
fn continuation_with_comments_and_blank_lines() {
    let text = "FROM x\nRUN apt-get update \\\n  # a comment\n\n    && apt-get install -y curl \\  \n  && true\nCMD [\"sh\"]\n";
    let df = ok(text);
    let st = &df.stages[0];
    assert_eq!(st.instructions[0].line, 2);
    assert_eq!(
        st.instructions[0].original,
        "RUN apt-get update     && apt-get install -y curl   && true"
    );
    assert_eq!(st.instructions[1].line, 7);
    // A comment line ending with the escape char continues nothing.
    let df = ok("FROM x\n# comment \\\nUSER me\n");
    assert_eq!(df.stages[0].instructions[0].kind, Kind::User("me".into()));
}

#[test]
fn keywords_are_case_insensitive() {
    let df = ok("from alpine as Build\nrun echo hi\nWorkDir /app\n");
    assert_eq!(df.stages[0].name.as_deref(), Some("build"));
    assert_eq!(
        df.stages[0].instructions[0].kind,
        Kind::Run(run("FROM x\nRUN echo hi"))
    );
    assert_eq!(
        df.stages[0].instructions[1].kind,
        Kind::Workdir("/app".into())
    );
}

#[test]
fn exec_and_shell_forms() {
    let ks = kinds(concat!(
        "FROM x\n",
        "CMD [\"echo\", \"a b\"]\n",
        "CMD echo $HOME\n",
        "ENTRYPOINT [\"/bin/app\"]\n",
        "ENTRYPOINT [not json\n",
        "CMD [\"a\", 1]\n",
        "SHELL [\"pwsh\", \"-c\"]\n",
        "VOLUME [\"/a\", \"/b\"]\n",
        "VOLUME /c /d\n",
    ));
    assert_eq!(ks[0], Kind::Cmd(exec(&["echo", "a b"])));
    assert_eq!(ks[1], Kind::Cmd(shell("echo $HOME")));
    assert_eq!(ks[2], Kind::Entrypoint(exec(&["/bin/app"])));
    assert_eq!(ks[3], Kind::Entrypoint(shell("[not json")));
    assert_eq!(ks[4], Kind::Cmd(shell("[\"a\", 1]")));
    assert_eq!(ks[5], Kind::Shell(vec!["pwsh".into(), "-c".into()]));
    assert_eq!(ks[6], Kind::Volume(exec(&["/a", "/b"])));
    assert_eq!(ks[7], Kind::Volume(shell("/c /d")));
    assert_eq!(
        run("FROM x\nRUN [\"ls\", \"-l\"]").command,
        exec(&["ls", "-l"])
    );
    assert!(err("FROM x\nSHELL /bin/sh -c")
        .message
        .contains("SHELL requires the JSON array form"));
}

#[test]
fn copy_forms() {
    let c = copy("FROM x\nCOPY [\"a b\", \"c\", \"/dst/\"]");
    assert!(c.exec_form);
    assert_eq!(c.sources, ["a b", "c"]);
    assert_eq!(c.dest, "/dst/");
    let c = copy("FROM x\nADD a \"$B\" /dst");
    assert!(!c.exec_form);
    assert_eq!(c.sources, ["a", "\"$B\""]);
    let e = err("FROM x\nCOPY onlyone");
    assert_eq!(
        e.message,
        "COPY requires at least two arguments, a source and a destination"
    );
}

#[test]
fn env_both_forms() {
    let ks =
        kinds("FROM x\nENV a=1 b=\"v 2\" c='x'\nENV PATH /usr/bin:$PATH with spaces\nENV d=\n");
    assert_eq!(
        ks[0],
        Kind::Env(pairs_of(&[("a", "1"), ("b", "\"v 2\""), ("c", "'x'")]))
    );
    assert_eq!(
        ks[1],
        Kind::Env(pairs_of(&[("PATH", "/usr/bin:$PATH with spaces")]))
    );
    assert_eq!(ks[2], Kind::Env(pairs_of(&[("d", "")])));
    assert_eq!(
        err("FROM x\nENV\n").message,
        "ENV requires KEY=VALUE or KEY VALUE"
    );
    assert_eq!(
        err("FROM x\nENV lonely\n").message,
        "ENV requires KEY=VALUE or KEY VALUE"
    );
    assert!(err("FROM x\nENV a=1 b\n").message.contains("KEY=VALUE"));
}

#[test]
fn label_and_arg() {
    let ks = kinds("FROM x\nLABEL a=1 \"b.c\"=\"x y\"\nARG one two=2 three=\"3 3\"\n");
    assert_eq!(
        ks[0],
        Kind::Label(pairs_of(&[("a", "1"), ("\"b.c\"", "\"x y\"")]))
    );
    let decl = |n: &str, d: Option<&str>| ArgDecl {
        name: n.into(),
        default: d.map(Into::into),
    };
    assert_eq!(
        ks[1],
        Kind::Arg(vec![
            decl("one", None),
            decl("two", Some("2")),
            decl("three", Some("\"3 3\""))
        ])
    );
}

#[test]
fn arg_before_from_and_nothing_else() {
    let df = ok("ARG BASE=alpine\nARG TAG\nFROM $BASE:${TAG:-latest}\n");
    assert_eq!(df.global_args.len(), 2);
    assert_eq!(df.global_args[0].default.as_deref(), Some("alpine"));
    assert_eq!(df.stages[0].base, "$BASE:${TAG:-latest}");
    let e = err("ARG A\nRUN echo\nFROM x\n");
    assert_eq!(e.line, 2);
    assert!(e.message.contains("before the first FROM"));
    assert_eq!(err("ARG A\n").message, "no FROM instruction");
    assert_eq!(err("").message, "no FROM instruction");
}

#[test]
fn multi_stage() {
    let df = ok("FROM golang:1.22 AS Builder\nRUN go build\nFROM --platform=$TARGETPLATFORM alpine\nCOPY --from=builder /out /bin/\n");
    assert_eq!(df.stages.len(), 2);
    let (a, b) = (&df.stages[0], &df.stages[1]);
    assert_eq!(
        (a.index, a.name.as_deref(), a.base.as_str(), a.line),
        (0, Some("builder"), "golang:1.22", 1)
    );
    assert_eq!(a.original, "FROM golang:1.22 AS Builder");
    assert_eq!(
        (b.index, b.name.as_deref(), b.platform.as_deref()),
        (1, None, Some("$TARGETPLATFORM"))
    );
    assert_eq!(b.instructions[0].line, 4);
    assert_eq!(df.stage("BUILDER").map(|s| s.index), Some(0));
    assert_eq!(df.stage("1").map(|s| s.index), Some(1));
    assert!(df.stage("2").is_none() && df.stage("nope").is_none());
    assert_eq!(err("FROM\n").message, "FROM requires an image name");
    assert!(err("FROM a AS\n").message.contains("AS"));
    assert!(err("FROM a AS 1x\n").message.contains("invalid stage name"));
    assert!(err("FROM a AS b\nFROM c AS B\n")
        .message
        .contains("duplicate stage name"));
}

#[test]
fn flags_on_copy_add_from_run() {
    let c = copy("FROM x\nCOPY --from=build --chown=1000:1000 --chmod=0755 --link a b /dst");
    assert_eq!(c.from.as_deref(), Some("build"));
    assert_eq!(c.chown.as_deref(), Some("1000:1000"));
    assert_eq!(c.chmod.as_deref(), Some("0755"));
    assert!(c.link);
    assert_eq!(c.sources, ["a", "b"]);
    assert!(!copy("FROM x\nCOPY --link=false a /b").link);
    let c = copy("FROM x\nADD --checksum=sha256:abc --keep-git-dir https://x/y.git /src");
    assert_eq!(c.checksum.as_deref(), Some("sha256:abc"));
    assert!(c.keep_git_dir);
    let r = run("FROM x\nRUN --mount=type=cache,target=/var/cache/pip --mount=type=tmpfs,dst=/t --network=none --security=sandbox pip install .");
    assert_eq!(
        r.mounts,
        ["type=cache,target=/var/cache/pip", "type=tmpfs,dst=/t"]
    );
    assert_eq!(r.network.as_deref(), Some("none"));
    assert_eq!(r.security.as_deref(), Some("sandbox"));
    assert_eq!(r.command, shell("pip install ."));
    assert_eq!(
        run("FROM x\nRUN -- --not-a-flag").command,
        shell("--not-a-flag")
    );
}

#[test]
fn bad_flags() {
    assert_eq!(
        err("FROM x\nCOPY --foo=1 a b").message,
        "unknown flag --foo for COPY"
    );
    assert_eq!(
        err("FROM x\nCOPY --checksum=x a b").message,
        "unknown flag --checksum for COPY"
    );
    assert_eq!(err("FROM --pull x").message, "unknown flag --pull for FROM");
    assert_eq!(
        err("FROM x\nCMD --help").message,
        "unknown flag --help for CMD"
    );
    assert!(err("FROM x\nCOPY --from a b")
        .message
        .contains("requires a value"));
    assert!(err("FROM x\nCOPY --from=a --from=b a b")
        .message
        .contains("twice"));
    assert!(err("FROM x\nCOPY --link=maybe a b")
        .message
        .contains("true or false"));
}

#[test]
fn unknown_instruction_names_its_line() {
    let e = err("FROM x\n\n# c\nRUN a \\\n  b\nFOOBAR baz\n");
    assert_eq!(
        e,
        ParseError {
            line: 6,
            message: "unknown instruction: FOOBAR".into()
        }
    );
    assert_eq!(
        e.to_string(),
        "Dockerfile line 6: unknown instruction: FOOBAR"
    );
}

#[test]
fn simple_instructions() {
    let ks = kinds("FROM x\nWORKDIR /a b\nUSER app:app\nEXPOSE 80 443/udp\nSTOPSIGNAL SIGTERM\nMAINTAINER Me <me@x>\n");
    assert_eq!(ks[0], Kind::Workdir("/a b".into()));
    assert_eq!(ks[1], Kind::User("app:app".into()));
    assert_eq!(ks[2], Kind::Expose("80 443/udp".into()));
    assert_eq!(ks[3], Kind::StopSignal("SIGTERM".into()));
    assert_eq!(ks[4], Kind::Maintainer("Me <me@x>".into()));
    assert_eq!(err("FROM x\nWORKDIR\n").message, "WORKDIR requires a path");
    assert_eq!(err("FROM x\nRUN\n").message, "RUN requires a command");
}

#[test]
fn heredoc_script() {
    let text = "FROM x\nRUN <<EOF\necho $HOME\n# not a comment\n\nEOF\nUSER me\n";
    let df = ok(text);
    let st = &df.stages[0];
    assert_eq!(st.instructions[0].original, "RUN <<EOF");
    let Kind::Run(r) = &st.instructions[0].kind else {
        panic!()
    };
    assert_eq!(r.command, shell("<<EOF"));
    let doc = Heredoc {
        name: "EOF".into(),
        body: "echo $HOME\n# not a comment\n\n".into(),
        expand: true,
        strip_tabs: false,
    };
    assert_eq!(r.heredocs, std::slice::from_ref(&doc));
    assert_eq!(r.script_heredoc(), Some(&doc));
    assert_eq!(
        st.instructions[1],
        Instruction {
            line: 7,
            original: "USER me".into(),
            kind: Kind::User("me".into())
        }
    );
}

#[test]
fn heredoc_stdin_of_a_command() {
    let r = run("FROM x\nRUN python3 <<EOF > /out\nprint(1)\nEOF\n");
    assert_eq!(r.command, shell("python3 <<EOF > /out"));
    assert_eq!(r.heredocs[0].body, "print(1)\n");
    assert_eq!(r.script_heredoc(), None);
}

#[test]
fn heredoc_strip_tabs_and_quoted() {
    let r = run("FROM x\nRUN <<-EOT\n\tif true; then\n\t\techo hi\n\tfi\n\tEOT\n");
    assert_eq!(r.heredocs[0].body, "if true; then\necho hi\nfi\n");
    assert!(r.heredocs[0].strip_tabs);
    let r = run("FROM x\nRUN cat <<\"EOF\"\n$X\nEOF\n");
    assert_eq!(
        (r.heredocs[0].name.as_str(), r.heredocs[0].expand),
        ("EOF", false)
    );
    let r = run("FROM x\nRUN cat <<'EOF'\n$X\nEOF\n");
    assert!(!r.heredocs[0].expand);
    // Without <<- an indented delimiter does not close the heredoc.
    assert!(err("FROM x\nRUN <<EOF\n\tEOF\n")
        .message
        .contains("unterminated"));
    // Quoted or here-string forms are no heredocs.
    assert!(run("FROM x\nRUN echo \"<<EOF\" <<<word")
        .heredocs
        .is_empty());
}

#[test]
fn two_heredocs() {
    let r = run("FROM x\nRUN <<A bash && <<B sh\necho a\nA\necho b\nB\nUSER u\n");
    let names: Vec<_> = r
        .heredocs
        .iter()
        .map(|h| (h.name.as_str(), h.body.as_str()))
        .collect();
    assert_eq!(names, [("A", "echo a\n"), ("B", "echo b\n")]);
}

#[test]
fn copy_heredoc() {
    let df = ok("FROM x\nCOPY --chmod=755 <<EOF /usr/bin/hello\n#!/bin/sh\necho hi\nEOF\nCOPY <<a <<b real /dst/\n1\na\n2\nb\n");
    let Kind::Copy(c) = &df.stages[0].instructions[0].kind else {
        panic!()
    };
    assert!(c.sources.is_empty());
    assert_eq!(c.dest, "/usr/bin/hello");
    assert_eq!(c.heredocs[0].name, "EOF");
    assert_eq!(c.heredocs[0].body, "#!/bin/sh\necho hi\n");
    let Kind::Copy(c) = &df.stages[0].instructions[1].kind else {
        panic!()
    };
    assert_eq!(c.sources, ["real"]);
    assert_eq!(
        c.heredocs
            .iter()
            .map(|h| h.name.as_str())
            .collect::<Vec<_>>(),
        ["a", "b"]
    );
    assert_eq!(df.stages[0].instructions[1].line, 6);
}

#[test]
fn unterminated_heredoc() {
    let e = err("FROM x\n\nRUN <<EOF\necho hi\n");
    assert_eq!(e.line, 3);
    assert_eq!(e.message, "unterminated heredoc <<EOF (started on line 3)");
}

#[test]
fn healthcheck() {
    let ks = kinds("FROM x\nHEALTHCHECK NONE\nHEALTHCHECK --interval=30s --timeout=1m30s --start-period=5s --start-interval=1s --retries=3 CMD curl -f http://localhost/\nhealthcheck cmd [\"/bin/check\"]\n");
    assert_eq!(
        ks[0],
        Kind::Healthcheck(HealthSpec {
            test: None,
            interval: None,
            timeout: None,
            start_period: None,
            start_interval: None,
            retries: None
        })
    );
    let Kind::Healthcheck(h) = &ks[1] else {
        panic!()
    };
    assert_eq!(h.test, Some(shell("curl -f http://localhost/")));
    assert_eq!(h.interval.as_deref(), Some("30s"));
    assert_eq!(h.timeout.as_deref(), Some("1m30s"));
    assert_eq!(h.start_period.as_deref(), Some("5s"));
    assert_eq!(h.start_interval.as_deref(), Some("1s"));
    assert_eq!(h.retries.as_deref(), Some("3"));
    let Kind::Healthcheck(h) = &ks[2] else {
        panic!()
    };
    assert_eq!(h.test, Some(exec(&["/bin/check"])));
    assert!(err("FROM x\nHEALTHCHECK NONE extra")
        .message
        .contains("NONE"));
    assert!(err("FROM x\nHEALTHCHECK CMD")
        .message
        .contains("requires a command"));
    assert!(err("FROM x\nHEALTHCHECK curl x")
        .message
        .contains("CMD <command> or NONE"));
    assert!(err("FROM x\nHEALTHCHECK --interval=soon CMD x")
        .message
        .contains("invalid duration"));
    assert!(err("FROM x\nHEALTHCHECK --retries=-1 CMD x")
        .message
        .contains("negative"));
    assert!(err("FROM x\nHEALTHCHECK --foo=1 CMD x")
        .message
        .contains("unknown flag --foo for HEALTHCHECK"));
}

#[test]
fn onbuild() {
    let ks = kinds("FROM x\nONBUILD COPY --from=b . /app\nonbuild run make\n");
    assert_eq!(ks[0], Kind::OnBuild("COPY --from=b . /app".into()));
    assert_eq!(ks[1], Kind::OnBuild("run make".into()));
    assert!(err("FROM x\nONBUILD ONBUILD RUN x")
        .message
        .contains("ONBUILD ONBUILD"));
    assert!(err("FROM x\nONBUILD FROM y")
        .message
        .contains("FROM is not allowed"));
    assert!(err("FROM x\nONBUILD MAINTAINER me")
        .message
        .contains("MAINTAINER is not allowed"));
    assert_eq!(
        err("FROM x\nONBUILD BOGUS").message,
        "unknown instruction: BOGUS"
    );
    assert_eq!(err("FROM x\nONBUILD COPY a").line, 2);
    assert!(err("FROM x\nONBUILD")
        .message
        .contains("requires an instruction"));
}

#[test]
fn crlf_and_bom() {
    let df = ok("\u{feff}# escape=`\r\nFROM x\r\nRUN a `\r\n  b\r\n");
    assert_eq!(df.escape, '`');
    assert_eq!(df.stages[0].instructions[0].original, "RUN a   b");
}

#[test]
fn durations() {
    let d = |s: &str| parse_duration(s).unwrap();
    assert_eq!(d("30s"), Duration::from_secs(30));
    assert_eq!(d("1m30s"), Duration::from_secs(90));
    assert_eq!(d("500ms"), Duration::from_millis(500));
    assert_eq!(d("1h"), Duration::from_secs(3600));
    assert_eq!(d("1.5h"), Duration::from_secs(5400));
    assert_eq!(d(".5s"), Duration::from_millis(500));
    assert_eq!(d("10us"), Duration::from_micros(10));
    assert_eq!(d("10µs"), Duration::from_micros(10));
    assert_eq!(d("7ns"), Duration::from_nanos(7));
    assert_eq!(d("0"), Duration::ZERO);
    assert_eq!(d("+2s"), Duration::from_secs(2));
    for bad in [
        "",
        "30",
        "s",
        "1x",
        "-1s",
        "1..5s",
        "1s2",
        "99999999999999999999h",
    ] {
        assert!(parse_duration(bad).is_err(), "{bad:?} should fail");
    }
}

#[test]
fn mounts() {
    let m = parse_mount(
        "type=cache,target=/var/cache/pip,id=pip,sharing=locked,mode=0755,uid=1000,gid=1000",
    )
    .unwrap();
    assert_eq!(m.kind, MountKind::Cache);
    assert_eq!(m.target, "/var/cache/pip");
    assert_eq!(m.id.as_deref(), Some("pip"));
    assert_eq!(m.sharing.as_deref(), Some("locked"));
    assert_eq!(
        (m.mode, m.uid, m.gid),
        (Some(0o755), Some(1000), Some(1000))
    );
    assert!(!m.read_only);
    let m = parse_mount("target=/src,source=.,from=build").unwrap();
    assert_eq!(m.kind, MountKind::Bind);
    assert!(m.read_only);
    assert_eq!(
        (m.source.as_deref(), m.from.as_deref()),
        (Some("."), Some("build"))
    );
    assert!(!parse_mount("type=bind,dst=/x,rw").unwrap().read_only);
    assert!(
        parse_mount("type=cache,destination=/x,ro")
            .unwrap()
            .read_only
    );
    assert!(
        parse_mount("type=tmpfs,dst=/t,readonly=true")
            .unwrap()
            .read_only
    );
    assert_eq!(
        parse_mount("type=tmpfs,target=/t").unwrap().kind,
        MountKind::Tmpfs
    );
    assert_eq!(parse_mount("\"target=/a,b\"").unwrap().target, "/a,b");
    assert!(parse_mount("type=secret,id=x,target=/s")
        .unwrap_err()
        .contains("secret"));
    assert!(parse_mount("type=ssh").unwrap_err().contains("ssh"));
    assert!(parse_mount("type=cache").unwrap_err().contains("target"));
    assert!(parse_mount("target=/x,color=red")
        .unwrap_err()
        .contains("color"));
    assert!(parse_mount("target=/x,sharing=weird").is_err());
    assert!(parse_mount("target=/x,uid=me").is_err());
}
