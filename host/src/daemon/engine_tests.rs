//! The engine against a fake guest: lifecycle, stop and kill, restart policies with their
//! back-off, events, rename, connect/disconnect, a guest that dies, and what comes back
//! with the daemon. No VM.

use std::sync::Arc;
use std::time::Duration;

use serde_json::{json, Value};

use super::attach_net::{ConnectBody, DisconnectBody};
use super::engine::{Container, Engine};
use super::events::Event;
use super::guest::fake::FakeGuest;
use super::networks::Networks;
use super::state::Status;
use crate::image::import::{import, ImportOptions};
use crate::image::{ImageStore, Reference};
use crate::machine::{MachineConfig, MachineDir};
use crate::paths::Paths;

pub(super) struct Harness {
    pub(super) engine: Arc<Engine>,
    pub(super) guest: Arc<FakeGuest>,
    tmp: tempfile::TempDir,
}

/// A tarball of one file, imported as `busybox:latest`.
fn image_store(root: &std::path::Path) -> ImageStore {
    let images = ImageStore::open(root).unwrap();
    let mut tar = tar::Builder::new(Vec::new());
    let mut header = tar::Header::new_gnu();
    header.set_size(3);
    header.set_mode(0o644);
    header.set_cksum();
    tar.append_data(&mut header, "hello", &b"hi\n"[..]).unwrap();
    let bytes = tar.into_inner().unwrap();
    let opts = ImportOptions {
        changes: vec![],
        message: String::new(),
        tag: Some(Reference::parse("busybox:latest").unwrap()),
    };
    import(&images, &bytes[..], &opts).unwrap();
    images
}

fn engine_in(tmp: &std::path::Path, guest: Arc<FakeGuest>) -> Arc<Engine> {
    let paths = Paths {
        home: tmp.join("home"),
        assets: tmp.join("assets"),
    };
    let machine = MachineDir::new(&paths, "test").unwrap();
    std::fs::create_dir_all(machine.containers_dir()).unwrap();
    let networks = Networks::open(machine.dir.join("networks.json")).unwrap();
    Engine::new(
        machine,
        MachineConfig::default(),
        image_store(&tmp.join("images")),
        guest,
        "6.1.0-test".into(),
        networks,
    )
}

pub(super) fn harness() -> Harness {
    let tmp = tempfile::tempdir().unwrap();
    let guest = FakeGuest::new();
    let engine = engine_in(tmp.path(), guest.clone());
    Harness { engine, guest, tmp }
}

impl Harness {
    pub(super) fn create(&self, name: &str, body: Value) -> Arc<Container> {
        let mut body = body;
        body["Image"] = json!("busybox");
        let body = serde_json::from_value(body).unwrap();
        let id = self.engine.create(&body, Some(name)).unwrap();
        self.engine.find(&id).unwrap()
    }

    /// Waits (with a deadline) until the container's state satisfies `done`.
    async fn until(&self, c: &Container, what: &str, done: impl Fn(&super::state::State) -> bool) {
        let deadline = tokio::time::Instant::now() + Duration::from_secs(120);
        while !done(&c.state()) {
            assert!(
                tokio::time::Instant::now() < deadline,
                "timed out waiting for {what}; state {:?}",
                c.state()
            );
            tokio::time::sleep(Duration::from_millis(5)).await;
        }
    }

    pub(super) fn actions(&self, events: &[Event], id: &str) -> Vec<String> {
        let _ = &self.tmp;
        events
            .iter()
            .filter(|e| e.actor.id == id)
            .map(|e| e.action.clone())
            .collect()
    }
}

#[tokio::test]
async fn a_container_runs_exits_and_is_removed_with_events() {
    let h = harness();
    let c = h.create(
        "web",
        json!({"Cmd": ["exit", "3"], "Labels": {"tier": "front"}}),
    );
    assert_eq!(c.state().status, Status::Created);
    h.engine.start(&c).await.unwrap();
    let (code, _) = h.engine.wait(&c, "not-running").unwrap().await;
    assert_eq!(code, 3, "the exit code the guest reported");
    assert_eq!(c.state().status, Status::Exited);
    h.engine.remove(&c, false).await.unwrap();
    assert!(h.engine.find("web").is_err(), "removed containers are gone");
    assert_eq!(
        h.guest.calls_of("rm-files"),
        [format!("rm-files {}", &c.id[..12])],
        "a removed container's files in the guest are deleted"
    );
    let (past, _) = h.engine.events.subscribe();
    assert_eq!(
        h.actions(&past, &c.id),
        ["create", "start", "die", "destroy"]
    );
    let die = past.iter().find(|e| e.action == "die").unwrap();
    assert_eq!(die.actor.attributes["exitCode"], "3");
    assert_eq!(
        die.actor.attributes["tier"], "front",
        "labels are attributes"
    );
    assert_eq!(die.actor.attributes["name"], "web");
}

#[tokio::test]
async fn sigkill_answers_once_the_container_is_dead() {
    let h = harness();
    let c = h.create("k1", json!({"Cmd": ["sleep"]}));
    h.engine.start(&c).await.unwrap();
    h.engine.kill(&c, 9).await.unwrap();
    let s = c.state();
    assert!(!s.running, "still running right after kill -9: {s:?}");
    assert_eq!(s.exit_code, 137);
}

#[tokio::test]
async fn stop_sends_the_stop_signal_then_sigkill_after_the_stop_timeout() {
    let h = harness();
    let c = h.create(
        "s1",
        json!({"Cmd": ["sleep", "ignore-term"], "StopSignal": "SIGTERM", "StopTimeout": 1}),
    );
    h.engine.start(&c).await.unwrap();
    let t = tokio::time::Instant::now();
    h.engine.stop(&c, None).await.unwrap();
    assert!(
        t.elapsed() >= Duration::from_secs(1),
        "the grace period was cut short"
    );
    let signals: Vec<String> = h.guest.calls_of("signal");
    assert_eq!(signals.len(), 2, "{signals:?}");
    assert!(
        signals[0].ends_with(" 15") && signals[1].ends_with(" 9"),
        "{signals:?}"
    );
    assert_eq!(c.state().exit_code, 137);

    let int = h.create("i1", json!({"Cmd": ["sleep"], "StopSignal": "SIGINT"}));
    h.engine.start(&int).await.unwrap();
    h.engine
        .stop(&int, Some(Duration::from_secs(5)))
        .await
        .unwrap();
    assert!(h.guest.calls_of("signal").last().unwrap().ends_with(" 2"));
    assert_eq!(int.state().exit_code, 130, "SIGINT ended it");
}

#[tokio::test(start_paused = true)]
async fn on_failure_restarts_n_times_with_backoff_then_stays_exited() {
    let h = harness();
    let c = h.create(
        "flaky",
        json!({"Cmd": ["exit", "1"], "HostConfig": {"RestartPolicy": {"Name": "on-failure", "MaximumRetryCount": 2}}}),
    );
    let t = tokio::time::Instant::now();
    h.engine.start(&c).await.unwrap();
    h.until(&c, "two restarts", |s| s.status == Status::Exited)
        .await;
    h.until(&c, "the last exit", |s| {
        s.status == Status::Exited && !s.restarting
    })
    .await;
    // 100 ms before the first restart, 200 ms before the second.
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(c.record().restart_count, 2);
    assert_eq!(c.state().status, Status::Exited);
    assert_eq!(
        h.guest.calls_of("exec container").len(),
        3,
        "one start and two restarts"
    );
    let starts = h.guest.exec_times.lock().unwrap().clone();
    let gaps: Vec<Duration> = starts.windows(2).map(|w| w[1] - w[0]).collect();
    assert!(
        gaps[0] >= Duration::from_millis(100) && gaps[1] >= Duration::from_millis(200),
        "restart back-off: the restarts came {gaps:?} apart, not after 100 ms then 200 ms"
    );
    assert!(t.elapsed() >= Duration::from_millis(300));
    let view = super::views::inspect(&c, std::path::Path::new("log"));
    assert_eq!(view["RestartCount"], 2);
    assert_eq!(view["HostConfig"]["RestartPolicy"]["Name"], "on-failure");
    // A success is final under on-failure.
    let ok = h.create(
        "ok",
        json!({"Cmd": ["exit", "0"], "HostConfig": {"RestartPolicy": {"Name": "on-failure"}}}),
    );
    h.engine.start(&ok).await.unwrap();
    tokio::time::sleep(Duration::from_secs(5)).await;
    assert_eq!(ok.record().restart_count, 0);
}

#[tokio::test(start_paused = true)]
async fn always_restarts_until_the_user_stops_it() {
    let h = harness();
    let c = h.create(
        "loop",
        json!({"Cmd": ["exit", "0"], "HostConfig": {"RestartPolicy": {"Name": "always"}}}),
    );
    h.engine.start(&c).await.unwrap();
    h.until(&c, "three restarts", |_| c.record().restart_count >= 3)
        .await;
    // Back-off: 100 + 200 + 400 ms at least before the third restart.
    h.engine.stop(&c, None).await.unwrap();
    let count = c.record().restart_count;
    tokio::time::sleep(Duration::from_secs(120)).await;
    assert_eq!(
        c.record().restart_count,
        count,
        "restarted after the user stopped it"
    );
    assert!(
        !c.state().running && !c.state().restarting,
        "{:?}",
        c.state()
    );
    // A user start starts the count over.
    h.engine.start(&c).await.unwrap();
    assert_eq!(c.record().restart_count, 0);
    h.engine.stop(&c, None).await.unwrap();
}

#[tokio::test]
async fn a_restart_policy_and_auto_remove_conflict() {
    let h = harness();
    let body = serde_json::from_value(json!({
        "Image": "busybox", "Cmd": ["true"],
        "HostConfig": {"AutoRemove": true, "RestartPolicy": {"Name": "always"}}
    }))
    .unwrap();
    let err = h.engine.create(&body, None).unwrap_err();
    assert!(
        err.message.contains("--restart and --rm"),
        "{}",
        err.message
    );
    let bad = serde_json::from_value(json!({
        "Image": "busybox", "Cmd": ["true"],
        "HostConfig": {"RestartPolicy": {"Name": "sometimes"}}
    }))
    .unwrap();
    assert_eq!(h.engine.create(&bad, None).unwrap_err().status, 400);
}

#[tokio::test]
async fn always_containers_come_back_with_the_daemon() {
    let tmp = tempfile::tempdir().unwrap();
    let h = Harness {
        guest: FakeGuest::new(),
        engine: engine_in(tmp.path(), FakeGuest::new()),
        tmp,
    };
    let always = h.create(
        "always",
        json!({"Cmd": ["sleep"], "HostConfig": {"RestartPolicy": {"Name": "always"}}}),
    );
    let unless = h.create(
        "unless",
        json!({"Cmd": ["sleep"], "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}}),
    );
    let stopped = h.create(
        "stopped",
        json!({"Cmd": ["sleep"], "HostConfig": {"RestartPolicy": {"Name": "unless-stopped"}}}),
    );
    let plain = h.create("plain", json!({"Cmd": ["sleep"]}));
    for c in [&always, &unless, &stopped, &plain] {
        h.engine.start(c).await.unwrap();
    }
    h.engine.stop(&stopped, None).await.unwrap();
    // The daemon goes away: a new engine over the same machine directory.
    let guest = FakeGuest::new();
    let engine = engine_in(h.tmp.path(), guest.clone());
    engine.restore();
    let again = Harness {
        engine,
        guest,
        tmp: tempfile::tempdir().unwrap(),
    };
    for name in ["always", "unless"] {
        let c = again.engine.find(name).unwrap();
        again
            .until(&c, &format!("{name} to run again"), |s| s.running)
            .await;
    }
    tokio::time::sleep(Duration::from_millis(200)).await;
    assert!(!again.engine.find("stopped").unwrap().state().running);
    assert!(!again.engine.find("plain").unwrap().state().running);
    assert_eq!(
        again.guest.calls_of("prepare-network"),
        ["prepare-network berth0 172.17.0.1/16"],
        "the default network's bridge is made as the daemon comes up"
    );
    let pruned = again.guest.calls_of("rm-files all-but");
    assert_eq!(
        pruned.len(),
        1,
        "left-over container files are deleted once: {pruned:?}"
    );
    for c in [&always, &unless, &stopped, &plain] {
        assert!(
            pruned[0].contains(&c.id[..12]),
            "{} keeps its files: {pruned:?}",
            c.name()
        );
    }
}

#[tokio::test]
async fn docker_cp_works_on_the_files_of_a_container_that_is_not_running() {
    let h = harness();
    let c = h.create("cp", json!({"Cmd": ["sleep"]}));
    // Created, never started: its files are laid out from its spec.
    let stat = h.engine.archive_stat(&c, "/etc").await.unwrap();
    assert_eq!(stat.name, "etc");
    h.engine.start(&c).await.unwrap();
    h.engine.archive_stat(&c, "/etc").await.unwrap();
    h.engine.stop(&c, Some(Duration::ZERO)).await.unwrap();
    h.engine.archive_stat(&c, "/etc").await.unwrap();
    let short = &c.id[..12];
    let execs: Vec<String> = h
        .guest
        .calls_of("exec")
        .into_iter()
        .filter(|e| e.ends_with("berth-cp"))
        .collect();
    assert_eq!(
        execs,
        [
            format!("exec files {short} berth-cp"),
            format!("exec join {short} berth-cp"),
            format!("exec files {short} berth-cp"),
        ],
        "a running container is joined; a created or stopped one's files are used"
    );
}

#[tokio::test]
async fn a_refused_copy_into_a_container_still_reads_the_whole_upload() {
    let h = harness();
    let c = h.create("cpin", json!({"Cmd": ["sleep"]}));
    // The fake guest gives the copy no stdin, so the extraction fails at once.
    // The client is still sending: the daemon must read its body to the end
    // before it answers, or the client sees "broken pipe" instead of the error.
    let upload = vec![7u8; 3 * 1024 * 1024];
    let mut body = std::io::Cursor::new(upload);
    let err = h
        .engine
        .archive_put_from(&c, "/greeting", false, false, &mut body)
        .await
        .unwrap_err();
    assert!(err.to_string().contains("stdin"), "{err}");
    assert_eq!(
        body.position(),
        3 * 1024 * 1024,
        "PUT /archive answered before reading the upload to its end"
    );
}

#[tokio::test]
async fn rename_keeps_names_unique_and_says_what_it_was() {
    let h = harness();
    let a = h.create("old", json!({"Cmd": ["sleep"]}));
    let _b = h.create("other", json!({"Cmd": ["sleep"]}));
    assert_eq!(h.engine.rename(&a, "other").unwrap_err().status, 409);
    assert_eq!(h.engine.rename(&a, "-bad").unwrap_err().status, 400);
    h.engine.rename(&a, "/new").unwrap();
    assert_eq!(h.engine.find("new").unwrap().id, a.id);
    assert!(h.engine.find("old").is_err());
    let (past, _) = h.engine.events.subscribe();
    let e = past.iter().find(|e| e.action == "rename").unwrap();
    assert_eq!(e.actor.attributes["oldName"], "/old");
    assert_eq!(e.actor.attributes["name"], "new");
}

fn bridge(h: &Harness, name: &str) -> super::networks::Network {
    h.engine
        .networks
        .create(
            name,
            "bridge",
            None,
            None,
            Default::default(),
            Default::default(),
        )
        .unwrap()
}

#[tokio::test]
async fn connect_and_disconnect_a_created_container() {
    let h = harness();
    let net = bridge(&h, "app");
    let c = h.create(
        "web",
        json!({"Cmd": ["sleep"], "HostConfig": {"NetworkMode": "app"}}),
    );
    let disconnect = DisconnectBody {
        container: "web".into(),
        force: false,
    };
    h.engine.disconnect("app", &disconnect).await.unwrap();
    assert_eq!(
        c.record().spec.network.mode,
        super::attach_net::DISCONNECTED
    );
    assert_eq!(
        h.engine
            .disconnect("app", &disconnect)
            .await
            .unwrap_err()
            .status,
        403
    );
    let connect: ConnectBody = serde_json::from_value(json!({
        "Container": "web", "EndpointConfig": {"Aliases": ["www"], "Links": []}
    }))
    .unwrap();
    h.engine.connect(&net.id, &connect).await.unwrap();
    let spec = c.record().spec;
    assert_eq!(spec.network.mode, "app");
    assert_eq!(spec.network.aliases, ["www"]);
    // A second network joins too: the container starts on both, `app` first.
    bridge(&h, "other");
    let other: ConnectBody = serde_json::from_value(json!({"Container": "web"})).unwrap();
    h.engine.connect("other", &other).await.unwrap();
    h.engine.start(&c).await.unwrap();
    let nets = h.guest.calls_of("networks");
    assert_eq!(nets.len(), 1, "{nets:?}");
    assert!(
        nets[0].contains("app=172.") && nets[0].contains(",other=172."),
        "the container should start on app, then other: {nets:?}"
    );
    let view = super::views::network_settings(&c.record());
    assert!(view["Networks"]["app"]["IPAddress"]
        .as_str()
        .unwrap()
        .starts_with("172."));
    assert!(view["Networks"]["other"]["IPAddress"]
        .as_str()
        .unwrap()
        .starts_with("172."));
    let bad: ConnectBody = serde_json::from_value(json!({
        "Container": "web", "EndpointConfig": {"IPAMConfig": {"IPv4Address": "10.1.2.3"}}
    }))
    .unwrap();
    let err = h.engine.connect("app", &bad).await.unwrap_err();
    assert!(err.message.contains("IPAMConfig"), "{}", err.message);
    let err = h.engine.connect("app", &connect).await.unwrap_err();
    assert_eq!(err.status, 403, "{}", err.message);
    let (past, _) = h.engine.events.subscribe();
    let kinds: Vec<&str> = past
        .iter()
        .filter(|e| e.kind == "network")
        .map(|e| e.action.as_str())
        .collect();
    assert_eq!(kinds, ["disconnect", "connect", "connect"]);
    h.engine.kill(&c, 9).await.unwrap();
}

#[tokio::test]
async fn a_running_container_joins_and_leaves_networks_with_their_addresses() {
    let h = harness();
    bridge(&h, "front");
    let back = bridge(&h, "back");
    let c = h.create(
        "api",
        json!({"Cmd": ["sleep"], "HostConfig": {"NetworkMode": "front"}}),
    );
    h.engine.start(&c).await.unwrap();
    let connect: ConnectBody = serde_json::from_value(json!({
        "Container": "api", "EndpointConfig": {"Aliases": ["svc"]}
    }))
    .unwrap();
    // A guest that cannot make the interface: the address goes back, nothing is kept.
    *h.guest.fail_next_op.lock().unwrap() = Some("no veth".into());
    let err = h.engine.connect("back", &connect).await.unwrap_err();
    assert!(err.message.contains("no veth"), "{}", err.message);
    assert_eq!(c.record().endpoints.len(), 1);
    assert!(!c.record().spec.network.is_on("back"));
    h.engine.connect("back", &connect).await.unwrap();
    let ops = h.guest.calls_of("op");
    assert!(
        ops.last().unwrap().contains("connect back=172."),
        "the guest should be asked to connect: {ops:?}"
    );
    let r = c.record();
    assert_eq!(r.endpoints.len(), 2);
    let address = r.endpoint_on("back").unwrap().address;
    let members = super::network_routes::network_members(&h.engine, &back.id);
    assert_eq!(members.len(), 1);
    assert_eq!(members[0].2, address);
    assert_eq!(r.spec.network.also[0].aliases, ["svc"]);
    let disconnect = DisconnectBody {
        container: "api".into(),
        force: false,
    };
    h.engine.disconnect("back", &disconnect).await.unwrap();
    assert!(h
        .guest
        .calls_of("op")
        .last()
        .unwrap()
        .contains("disconnect"));
    assert_eq!(c.record().endpoints.len(), 1);
    assert!(super::network_routes::network_members(&h.engine, &back.id).is_empty());
    // The address is free again: the next container on `back` gets it.
    let d = h.create(
        "db",
        json!({"Cmd": ["sleep"], "HostConfig": {"NetworkMode": "back"}}),
    );
    h.engine.start(&d).await.unwrap();
    assert_eq!(d.record().endpoints[0].address, address);
    h.engine.kill(&c, 9).await.unwrap();
    h.engine.kill(&d, 9).await.unwrap();
}

#[tokio::test]
async fn create_with_several_networks_keeps_each_ones_aliases() {
    let h = harness();
    bridge(&h, "front");
    bridge(&h, "back");
    let c = h.create(
        "web",
        json!({"Cmd": ["sleep"], "HostConfig": {"NetworkMode": "front"},
               "NetworkingConfig": {"EndpointsConfig": {
                   "front": {"Aliases": ["www"]}, "back": {"Aliases": ["app"]}}}}),
    );
    let n = c.record().spec.network;
    assert_eq!(n.aliases, ["www"]);
    assert_eq!(n.also.len(), 1);
    assert_eq!(
        (n.also[0].network.as_str(), n.also[0].aliases.clone()),
        ("back", vec!["app".to_string()])
    );
    let err = h
        .engine
        .create(
            &serde_json::from_value(
                json!({"Image": "busybox", "Cmd": ["sleep"], "HostConfig": {"NetworkMode": "host"},
                "NetworkingConfig": {"EndpointsConfig": {"host": {}, "back": {}}}}),
            )
            .unwrap(),
            Some("bad"),
        )
        .unwrap_err();
    assert!(err.message.contains("multiple networks"), "{}", err.message);
}

#[tokio::test]
async fn a_guest_that_dies_mid_run_leaves_the_container_exited() {
    let h = harness();
    let c = h.create("d1", json!({"Cmd": ["sleep"]}));
    h.engine.start(&c).await.unwrap();
    h.guest.die();
    h.until(&c, "the exit", |s| !s.running).await;
    let s = c.state();
    assert_eq!(s.exit_code, 255);
    assert!(s.error.contains("machine stopped"), "{}", s.error);
    let err = h.engine.start(&c).await.unwrap_err();
    assert_eq!(err.status, 500, "{}", err.message);
}

#[tokio::test]
async fn unknown_list_filters_are_refused_and_labels_select() {
    let h = harness();
    let a = h.create(
        "a1",
        json!({"Cmd": ["sleep"], "Labels": {"com.docker.compose.project": "p"}}),
    );
    let b = h.create("b1", json!({"Cmd": ["sleep"]}));
    let all = h.engine.all();
    let filter = |f: &str| super::views::ContainerFilter::parse(Some(f), &all, &h.engine.images);
    let f = filter(r#"{"label": ["com.docker.compose.project=p"]}"#).unwrap();
    assert!(f.matches(&a.record()) && !f.matches(&b.record()));
    // Labels are all required, as compose's `project=p` and `oneoff=False` are.
    let f = filter(r#"{"label": ["com.docker.compose.project=p", "oneoff=True"]}"#).unwrap();
    assert!(!f.matches(&a.record()), "every label filter must match");
    let f = filter(r#"{"name": ["^b1$"]}"#).unwrap();
    assert!(!f.matches(&a.record()) && f.matches(&b.record()));
    let f = filter(r#"{"status": ["created"], "ancestor": ["busybox"]}"#).unwrap();
    assert!(f.matches(&a.record()) && f.selects_stopped());
    let f = filter(r#"{"before": ["b1"]}"#).unwrap();
    assert!(f.matches(&a.record()) && !f.matches(&b.record()));
    assert!(filter(r#"{"colour": ["red"]}"#)
        .unwrap_err()
        .message
        .contains("colour"));
    assert!(filter(r#"{"status": ["asleep"]}"#).is_err());
}

#[tokio::test]
async fn update_changes_limits_and_the_restart_policy() {
    let h = harness();
    let c = h.create(
        "u1",
        json!({"Cmd": ["sleep"], "HostConfig": {"Memory": 67108864}}),
    );
    h.engine.start(&c).await.unwrap();
    let body = serde_json::from_value(json!({
        "Memory": 33554432, "PidsLimit": 50, "MemorySwap": 0, "BlkioWeight": 0,
        "RestartPolicy": {"Name": "always", "MaximumRetryCount": 0}
    }))
    .unwrap();
    h.engine.update(&c, &body).await.unwrap();
    let ops = h.guest.calls_of("op");
    assert!(
        ops.iter()
            .any(|o| o.contains("Update") && o.contains("33554432") && o.contains("50")),
        "the running container's cgroup was not updated: {ops:?}"
    );
    let r = c.record();
    assert_eq!(r.spec.resources.memory, Some(32 << 20));
    assert_eq!(r.spec.restart, super::restart::Policy::Always);
    assert_eq!(
        r.host_config.memory,
        Some(32 << 20),
        "inspect shows the new limit"
    );
    let refused = serde_json::from_value(json!({"KernelMemory": 1})).unwrap();
    let err = h.engine.update(&c, &refused).await.unwrap_err();
    assert!(err.message.contains("KernelMemory"), "{}", err.message);
    h.engine.kill(&c, 9).await.unwrap();
}

#[tokio::test]
async fn a_namespace_is_joined_only_from_a_running_container() {
    let h = harness();
    let a = h.create("ns-a", json!({"Cmd": ["sleep"]}));
    let b = h.create(
        "ns-b",
        json!({"Cmd": ["sleep"], "HostConfig": {"PidMode": "container:ns-a", "IpcMode": "container:ns-a"}}),
    );
    assert_eq!(
        b.record().spec.namespaces.pid,
        berth_protocol::NsMode::Container(a.id.clone()),
        "the name is resolved at create"
    );
    let e = h.engine.start(&b).await.unwrap_err();
    assert_eq!(e.status, 409);
    assert!(
        e.message
            .contains("cannot join PID of a non running container: ns-a"),
        "{}",
        e.message
    );
    h.engine.start(&a).await.unwrap();
    h.engine.start(&b).await.unwrap();
    let missing = serde_json::from_value(
        json!({"Image": "busybox", "Cmd": ["sleep"], "HostConfig": {"PidMode": "container:nope"}}),
    )
    .unwrap();
    let e = h.engine.create(&missing, None).unwrap_err();
    assert_eq!(e.status, 404, "{}", e.message);
}

#[test]
fn network_create_bodies_are_honoured_or_refused_by_name() {
    let rt = tokio::runtime::Runtime::new().unwrap();
    let _guard = rt.enter();
    let h = harness();
    let body = |v: Value| -> super::models::network::NetworkCreateBody {
        serde_json::from_value(v).unwrap()
    };
    // What the docker CLI sends for `docker network create n1`.
    let cli = json!({
        "Name": "n1", "Driver": "bridge", "Scope": "", "EnableIPv6": null, "Internal": false,
        "Attachable": false, "Ingress": false, "ConfigOnly": false, "ConfigFrom": null,
        "IPAM": {"Driver": "default", "Options": {}, "Config": []}, "Options": {}, "Labels": {}
    });
    super::network_routes::network_create(&h.engine, &body(cli)).unwrap();
    for (v, named) in [
        (json!({"Name": "n2", "EnableIPv6": true}), "EnableIPv6"),
        (
            json!({"Name": "n3", "Options": {"com.docker.network.bridge.name": "br9"}}),
            "com.docker.network.bridge.name",
        ),
        (
            json!({"Name": "n4", "IPAM": {"Config": [{"Subnet": "10.9.0.0/24", "IPRange": "10.9.0.0/25"}]}}),
            "IPAM.Config.0.IPRange",
        ),
    ] {
        let e = super::network_routes::network_create(&h.engine, &body(v)).unwrap_err();
        assert!(e.message.contains(named), "{named}: {}", e.message);
    }
}

#[tokio::test]
async fn prune_and_df_report_the_guests_sizes() {
    let h = harness();
    let done = h.create("done", json!({"Cmd": ["exit", "0"]}));
    let up = h.create("up", json!({"Cmd": ["sleep"]}));
    h.engine.start(&done).await.unwrap();
    h.engine.start(&up).await.unwrap();
    h.until(&done, "exit", |s| s.status == super::state::Status::Exited)
        .await;
    *h.guest.usage.lock().unwrap() = super::guest::DiskUsage {
        containers: [(done.id.clone(), 4096), (up.id.clone(), 100)].into(),
        volumes: Default::default(),
    };
    let df = h.engine.disk_usage().await.unwrap();
    let sizes: Vec<u64> = df["Containers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["SizeRw"].as_u64().unwrap())
        .collect();
    assert!(sizes.contains(&4096) && sizes.contains(&100), "{df}");
    let pruned = h
        .engine
        .prune_containers(&Default::default())
        .await
        .unwrap();
    assert_eq!(pruned["ContainersDeleted"], json!([done.id]));
    assert_eq!(
        pruned["SpaceReclaimed"], 4096,
        "prune reports the writable layer it freed"
    );
    h.engine.kill(&up, 9).await.unwrap();
}

#[tokio::test]
async fn an_attached_exec_starts_when_served_and_a_failed_start_goes_into_the_stream() {
    use tokio::io::AsyncReadExt;
    let h = harness();
    let c = h.create("box", json!({"Cmd": ["sleep"]}));
    h.engine.start(&c).await.unwrap();
    let exec = |cmd: Value| {
        let body = serde_json::from_value(json!({"Cmd": cmd, "AttachStdout": true})).unwrap();
        let id = h.engine.exec_create(&c, &body).unwrap();
        h.engine.exec_find(&id).unwrap()
    };
    let served = |e: Arc<super::exec::ExecInstance>| async {
        let (mut client, server) = tokio::io::duplex(1 << 16);
        let started = h.guest.exec_times.lock().unwrap().len();
        h.engine.exec_startable(&e).unwrap();
        assert_eq!(
            h.guest.exec_times.lock().unwrap().len(),
            started,
            "the process starts only once the client's connection is served"
        );
        super::exec::start_and_run(h.engine.clone(), e, server, false, None).await;
        let mut out = Vec::new();
        client.read_to_end(&mut out).await.unwrap();
        out
    };
    let e = exec(json!(["echo", "hi"]));
    assert_eq!(served(e.clone()).await, super::logs::frame(1, b"hi\n"));
    assert_eq!(e.inspect()["ExitCode"], 0);
    let e = exec(json!(["nostart"]));
    let out = served(e.clone()).await;
    assert_eq!(out[0], 2, "a start failure is written as stderr: {out:?}");
    assert!(
        String::from_utf8_lossy(&out).contains("executable file not found"),
        "{out:?}"
    );
    assert_eq!(e.inspect()["ExitCode"], 127);
    assert!(
        h.engine.exec_startable(&e).is_err(),
        "an exec that ran cannot start again"
    );
}
