//! Image builds on one machine: a multi-stage build whose final image is smaller than its
//! first stage, the layer cache (an identical rebuild runs no RUN, a changed source file
//! re-runs only the steps after its COPY, `--no-cache` runs all), `.dockerignore` with
//! an exception, failures that leave no tag, and the clients users build with: the
//! docker CLI's legacy builder, docker-py's `images.build` and compose's `build:`.
#![cfg(feature = "vm")]

use std::path::Path;

use berth_tests::docker::Docker;
use berth_tests::Berth;

const DOCKERFILE: &str = r#"# syntax=docker/dockerfile:1
ARG BASE=busybox
FROM $BASE AS builder
ARG GREETING=hello
RUN mkdir /out && echo "$GREETING one" > /out/msg
RUN echo two >> /out/msg \
 && head -c 3000000 /dev/urandom > /big
COPY src/ /src/
RUN cat /src/a.txt >> /out/msg && date +%s%N > /out/stamp

FROM busybox
COPY --from=builder /out/ /app/
WORKDIR /app
ENV WHO=berth
RUN <<EOF
echo "built by $WHO" >> /app/msg
EOF
CMD ["cat", "/app/msg"]
"#;

fn write(dir: &Path, name: &str, text: &str) {
    let path = dir.join(name);
    std::fs::create_dir_all(path.parent().unwrap()).unwrap();
    std::fs::write(path, text).unwrap();
}

fn size(d: &Docker, image: &str) -> u64 {
    d.ok(&["image", "inspect", "-f", "{{.Size}}", image])
        .trim()
        .parse()
        .unwrap()
}

#[test]
fn images_build_cached_multi_stage_and_through_every_client() {
    let b = Berth::new();
    let d = Docker::new(&b);
    let assets = std::env::var("BERTH_ASSETS").expect("cargo xtask test sets BERTH_ASSETS");
    d.ok(&["load", "-i", &format!("{assets}/images/busybox.tar")]);
    let ctx = tempfile::tempdir().unwrap();
    let c = ctx.path();
    write(c, "Dockerfile", DOCKERFILE);
    write(c, "src/a.txt", "from a\n");
    write(c, "src/secret.txt", "do not ship\n");
    write(c, "src/cache/junk", "junk\n");
    write(c, "src/cache/keep.me", "kept\n");
    write(
        c,
        ".dockerignore",
        "# not these\nsrc/secret.txt\nsrc/cache\n!src/cache/keep.me\n",
    );
    let dir = c.display().to_string();

    // berth's own CLI: every step shown, the image tagged.
    let first = b.run(&["build", "-t", "app:1", &dir], b"");
    assert_eq!(
        first.code,
        0,
        "berth build: {}{}",
        first.stdout_text(),
        first.stderr
    );
    let out = first.stdout_text();
    assert!(out.contains("Step 1/12 : FROM $BASE AS builder"), "{out}");
    assert!(out.contains("Successfully tagged app:1"), "{out}");
    let run = d.ok(&["run", "--rm", "app:1"]);
    assert_eq!(
        run, "hello one\ntwo\nfrom a\nbuilt by berth\n",
        "the built image's output"
    );
    // The final stage copied one directory: far smaller than the stage with /big.
    let builder = b.run(&["build", "-q", "--target", "builder", &dir], b"");
    assert_eq!(builder.code, 0, "{}", builder.stderr);
    let builder_id = builder.stdout_text().trim().to_string();
    let (small, big) = (size(&d, "app:1"), size(&d, &builder_id));
    println!("final image {small} bytes, first stage {big} bytes");
    assert!(
        small + 2_000_000 < big,
        "multi-stage: final {small} vs first stage {big}"
    );
    // .dockerignore: the file and the directory are out, the exception is in.
    let listing = d.ok(&["run", "--rm", &builder_id, "find", "/src"]);
    assert!(
        listing.contains("/src/a.txt") && listing.contains("/src/cache/keep.me"),
        "{listing}"
    );
    assert!(
        !listing.contains("secret") && !listing.contains("junk"),
        ".dockerignore: {listing}"
    );

    // An identical build runs nothing: every step from the cache, the same image (the
    // RUN that writes the time would give another one).
    let again = b.run(&["build", "-t", "app:1", &dir], b"");
    let out = again.stdout_text();
    assert_eq!(again.code, 0, "{out}{}", again.stderr);
    assert!(
        !out.contains("Running in"),
        "a cached rebuild ran a step: {out}"
    );
    assert_eq!(out.matches("Using cache").count(), 10, "{out}");
    let stamp = |image: &str| d.ok(&["run", "--rm", image, "cat", "/app/stamp"]);
    let before = stamp("app:1");
    // A changed source file: the steps before its COPY are reused, the ones after run.
    write(c, "src/a.txt", "from a, changed\n");
    let changed = b.run(&["build", "-t", "app:1", &dir], b"");
    let out = changed.stdout_text();
    assert_eq!(changed.code, 0, "{out}{}", changed.stderr);
    assert_eq!(
        out.matches("Using cache").count(),
        3,
        "only the steps before COPY: {out}"
    );
    assert!(out.contains("from a, changed") || d.ok(&["run", "--rm", "app:1"]).contains("changed"));
    assert_ne!(
        stamp("app:1"),
        before,
        "the RUN after the changed COPY ran again"
    );
    let fresh = b.run(&["build", "--no-cache", "-t", "app:2", &dir], b"");
    let out = fresh.stdout_text();
    assert_eq!(fresh.code, 0, "{out}{}", fresh.stderr);
    assert!(
        !out.contains("Using cache"),
        "--no-cache used the cache: {out}"
    );

    // Bad input: a clear message, no tag.
    write(
        c,
        "Dockerfile.bad",
        "FROM busybox\nRUN echo about to fail && exit 3\n",
    );
    let failed = b.run(
        &[
            "build",
            "-t",
            "bad:1",
            "-f",
            &format!("{dir}/Dockerfile.bad"),
            &dir,
        ],
        b"",
    );
    assert_ne!(failed.code, 0);
    assert!(
        failed.stderr.contains("returned a non-zero code: 3"),
        "a failing RUN: {}",
        failed.stderr
    );
    assert!(
        failed.stdout_text().contains("about to fail"),
        "the RUN's output is shown"
    );
    write(c, "Dockerfile.typo", "FROM busybox\nRUN true\nCOPPY a b\n");
    let typo = b.run(
        &["build", "-f", &format!("{dir}/Dockerfile.typo"), &dir],
        b"",
    );
    assert!(
        typo.code != 0 && typo.stderr.contains("line 3") && typo.stderr.contains("COPPY"),
        "a Dockerfile mistake names its line: {}",
        typo.stderr
    );
    let (code, _, _) = d.run(&["image", "inspect", "bad:1"]);
    assert_ne!(code, 0, "a failed build must not tag its image");
    assert_eq!(d.ok(&["ps", "-aq"]), "", "a build left containers behind");

    more_instructions(&b, &d, c);
    mounts_urls_names_and_wildcards(&b, &d, c);
    cancelled_build_leaves_nothing(&b, &d, c);

    // The docker CLI (its legacy builder: berth's /_ping says Builder-Version 1).
    let cli_ctx = tempfile::tempdir().unwrap();
    write(
        cli_ctx.path(),
        "Dockerfile",
        "FROM busybox\nCOPY hi /hi\nCMD [\"cat\", \"/hi\"]\n",
    );
    write(cli_ctx.path(), "hi", "hi from docker build\n");
    d.ok(&[
        "build",
        "-t",
        "viacli",
        &cli_ctx.path().display().to_string(),
    ]);
    assert_eq!(d.ok(&["run", "--rm", "viacli"]), "hi from docker build\n");

    // docker-py's images.build, and compose's `build:`.
    if let Some(python) = std::env::var_os("BERTH_TEST_PYTHON") {
        let script = format!(
            "import docker\nc = docker.from_env()\nimg, logs = c.images.build(path={:?}, tag='viapy')\nprint('built', img.id)\nprint(c.containers.run('viapy', remove=True).decode(), end='')\n",
            cli_ctx.path().display().to_string()
        );
        let (code, out, err) = d.program(Path::new(&python), &["-c", &script]);
        assert_eq!(code, 0, "docker-py images.build: {out}{err}");
        assert!(
            out.contains("built sha256:") && out.contains("hi from docker build"),
            "{out}"
        );
    }
    let proj = tempfile::Builder::new().prefix("bproj").tempdir().unwrap();
    write(
        proj.path(),
        "web/Dockerfile",
        "FROM busybox\nRUN echo compose-built > /m\nCMD [\"cat\", \"/m\"]\n",
    );
    write(
        proj.path(),
        "docker-compose.yml",
        "version: \"2.4\"\nservices:\n  web:\n    build: ./web\n    image: composed:1\n",
    );
    let built = d.compose_ok(proj.path(), &["build"]);
    assert!(built.contains("Successfully"), "compose build: {built}");
    assert_eq!(d.ok(&["run", "--rm", "composed:1"]), "compose-built\n");
    drop(d);
    b.assert_nothing_left();
}

/// ADD of a local tar (extracted), COPY --chown/--chmod, --build-arg, and a cache mount
/// that keeps its contents from one build to the next.
fn more_instructions(b: &Berth, d: &Docker, c: &Path) {
    write(c, "bundle/x/one", "1\n");
    let tar = std::process::Command::new("tar")
        .args(["czf", "bundle.tar.gz", "-C", "bundle", "x"])
        .current_dir(c)
        .status()
        .unwrap();
    assert!(tar.success());
    write(
        c,
        "Dockerfile.more",
        "FROM busybox\nARG WHO\nADD bundle.tar.gz /opt/\nCOPY --chown=1000:1000 --chmod=600 src/a.txt /owned\n\
         RUN --mount=type=cache,target=/cache echo x >> /cache/log && wc -l < /cache/log > /cache-count\n\
         RUN echo \"who=$WHO\" > /who\n",
    );
    let dir = c.display().to_string();
    let file = format!("{dir}/Dockerfile.more");
    for _ in 0..2 {
        let out = b.run(
            &[
                "build",
                "--no-cache",
                "--build-arg",
                "WHO=ci",
                "-t",
                "more",
                "-f",
                &file,
                &dir,
            ],
            b"",
        );
        assert_eq!(out.code, 0, "{}{}", out.stdout_text(), out.stderr);
    }
    // ONBUILD runs in the build that uses the image as its base; --network none cuts RUN off.
    write(
        c,
        "Dockerfile.onbuild",
        "FROM busybox\nONBUILD RUN echo triggered > /ob\n",
    );
    let base = b.run(
        &[
            "build",
            "-t",
            "obbase",
            "-f",
            &format!("{dir}/Dockerfile.onbuild"),
            &dir,
        ],
        b"",
    );
    assert_eq!(base.code, 0, "{}", base.stderr);
    write(
        c,
        "Dockerfile.child",
        "FROM obbase\nRUN ls /sys/class/net > /nets\n",
    );
    let child = b.run(
        &[
            "build",
            "--network",
            "none",
            "-t",
            "obchild",
            "-f",
            &format!("{dir}/Dockerfile.child"),
            &dir,
        ],
        b"",
    );
    assert_eq!(child.code, 0, "{}", child.stderr);
    let seen = d.ok(&["run", "--rm", "obchild", "cat", "/ob", "/nets"]);
    assert_eq!(
        seen, "triggered\nlo\n",
        "ONBUILD trigger and --network none"
    );
    let seen = d.ok(&[
        "run",
        "--rm",
        "more",
        "sh",
        "-c",
        "cat /opt/x/one /who /cache-count; stat -c '%u:%g %a' /owned",
    ]);
    assert_eq!(
        seen, "1\nwho=ci\n2\n1000:1000 600\n",
        "ADD extracts a local tar, --build-arg reaches RUN, the cache mount keeps its file, --chown/--chmod"
    );
}

/// Serves `body` at any path on 127.0.0.1 for `count` requests, with a Last-Modified
/// header; returns the port.
fn serve_file(body: &'static [u8], count: usize) -> u16 {
    use std::io::{Read, Write};
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    std::thread::spawn(move || {
        for stream in listener.incoming().take(count) {
            let Ok(mut s) = stream else { continue };
            let mut seen = Vec::new();
            let mut buf = [0u8; 1024];
            while !seen.windows(4).any(|w| w == b"\r\n\r\n") {
                match s.read(&mut buf) {
                    Ok(0) | Err(_) => break,
                    Ok(n) => seen.extend_from_slice(&buf[..n]),
                }
            }
            let head = format!(
                "HTTP/1.1 200 OK\r\nContent-Length: {}\r\nLast-Modified: Wed, 21 Oct 2015 07:28:00 GMT\r\nConnection: close\r\n\r\n",
                body.len()
            );
            let _ = s.write_all(head.as_bytes());
            let _ = s.write_all(body);
        }
    });
    port
}

/// `RUN --mount=type=bind` of the context (read-only, its files in the cache key) and of
/// a stage (`rw`, writes discarded), `COPY --from` with a wildcard, `--chown` by name,
/// a heredoc with a variable, `COPY` into `/tmp` keeping it 1777, and `ADD` of a URL on
/// 127.0.0.1 with `--checksum` (a wrong one refused).
fn mounts_urls_names_and_wildcards(b: &Berth, d: &Docker, c: &Path) {
    const FILE: &[u8] = b"downloaded bytes\n";
    let port = serve_file(FILE, 8);
    let sum = {
        use sha2::Digest as _;
        format!("{:x}", sha2::Sha256::digest(FILE))
    };
    write(c, "bindsrc/data.txt", "bound v1\n");
    let dockerfile = format!(
        "FROM busybox AS tools\n\
         RUN mkdir -p /opt/tools && echo a > /opt/tools/a.sh && echo b > /opt/tools/b.sh && echo c > /opt/tools/c.txt\n\
         FROM busybox\n\
         ARG NAME=world\n\
         RUN --mount=type=bind,source=bindsrc,target=/ctx cat /ctx/data.txt > /from-ctx && (touch /ctx/w 2>/dev/null && echo writable || echo read-only) >> /from-ctx\n\
         RUN --mount=type=bind,from=tools,source=/opt/tools,target=/t,rw ls /t > /from-stage && touch /t/new\n\
         COPY --from=tools /opt/tools/*.sh /sh/\n\
         COPY --chown=nobody bindsrc/data.txt /tmp/by-name\n\
         COPY <<EOF /greeting\n\
         hello $NAME\n\
         EOF\n\
         ADD --checksum=sha256:{sum} http://127.0.0.1:{port}/dl/file.bin /downloads/\n"
    );
    write(c, "Dockerfile.extra", &dockerfile);
    let dir = c.display().to_string();
    let file = format!("{dir}/Dockerfile.extra");
    let build = |tag: &str| {
        b.run(
            &[
                "build",
                "--build-arg",
                "NAME=berth",
                "-t",
                tag,
                "-f",
                &file,
                &dir,
            ],
            b"",
        )
    };
    let out = build("extra:1");
    assert_eq!(out.code, 0, "{}{}", out.stdout_text(), out.stderr);
    let seen = d.ok(&[
        "run", "--rm", "extra:1", "sh", "-c",
        "cat /from-ctx /from-stage; ls /sh; stat -c '%U %a' /tmp/by-name /tmp; cat /greeting; stat -c '%a %s %Y' /downloads/file.bin; ls /t 2>&1 || true",
    ]);
    assert_eq!(
        seen,
        "bound v1\nread-only\na.sh\nb.sh\nc.txt\na.sh\nb.sh\nnobody 644\nroot 1777\nhello berth\n600 17 1445412480\nls: /t: No such file or directory\n",
        "RUN --mount=type=bind (context read-only, stage), COPY --from wildcard, --chown by name, /tmp kept 1777, heredoc expansion, ADD URL (0600, Last-Modified)"
    );
    let volumes = d.ok(&["volume", "ls", "-q"]);
    assert!(
        !volumes.contains("berth-build-bind"),
        "a bind mount's volume was left: {volumes}"
    );
    // The bound files are in the step's key: unchanged, nothing runs; changed, the RUN does.
    let again = build("extra:1");
    assert!(
        !again.stdout_text().contains("Running in"),
        "an unchanged bind re-ran: {}",
        again.stdout_text()
    );
    write(c, "bindsrc/data.txt", "bound v2\n");
    let changed = build("extra:1");
    assert_eq!(changed.code, 0, "{}", changed.stderr);
    let first = d.ok(&["run", "--rm", "extra:1", "head", "-n1", "/from-ctx"]);
    assert_eq!(
        first, "bound v2\n",
        "a changed bind source must run its RUN again"
    );
    // A wrong checksum fails the build and names the mismatch.
    write(
        c,
        "Dockerfile.sum",
        &format!(
            "FROM busybox\nADD --checksum=sha256:{} http://127.0.0.1:{port}/f /f\n",
            "0".repeat(64)
        ),
    );
    let bad = b.run(
        &[
            "build",
            "-t",
            "badsum",
            "-f",
            &format!("{dir}/Dockerfile.sum"),
            &dir,
        ],
        b"",
    );
    assert!(
        bad.code != 0 && bad.stderr.contains("checksum mismatch"),
        "ADD --checksum: {}",
        bad.stderr
    );
}

/// A client that goes away mid-build (Ctrl-C): the step's container is killed and
/// removed, and nothing is tagged.
fn cancelled_build_leaves_nothing(b: &Berth, d: &Docker, c: &Path) {
    use std::io::BufRead;
    write(
        c,
        "Dockerfile.slow",
        "FROM busybox\nRUN echo started-slow && sleep 600\n",
    );
    let dir = c.display().to_string();
    let mut child = berth_tests::ChildGuard(
        b.command(&[
            "build",
            "-t",
            "slow:1",
            "-f",
            &format!("{dir}/Dockerfile.slow"),
            &dir,
        ])
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::null())
        .spawn()
        .unwrap(),
    );
    let stdout = child.stdout.take().unwrap();
    let mut seen = String::new();
    for line in std::io::BufReader::new(stdout).lines() {
        let line = line.unwrap();
        seen.push_str(&line);
        if line.contains("started-slow") {
            break;
        }
    }
    assert!(
        seen.contains("started-slow"),
        "the slow step never started: {seen}"
    );
    child.kill().unwrap();
    let _ = child.wait();
    berth_tests::wait_for(
        "a cancelled build's step container to go",
        std::time::Duration::from_secs(60),
        || {
            let left = d.ok(&["ps", "-aq"]);
            left.is_empty().then_some(()).ok_or(left)
        },
    );
    let (code, _, _) = d.run(&["image", "inspect", "slow:1"]);
    assert_ne!(code, 0, "a cancelled build must not tag its image");
}
