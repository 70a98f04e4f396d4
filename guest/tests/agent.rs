//! The agent end to end over an in-memory pipe: handshake, exec with stdio, errors.

use berth_guest::agent::{Agent, Ready};
use berth_guest::process::Reaper;
use berth_mux::{read_msg, write_msg, Session, Stream};
use berth_protocol::*;
use tokio::io::{AsyncReadExt, AsyncWriteExt};

/// Each test's agent has a reaper calling `waitpid(-1)`; in one test process they would
/// steal each other's children, so the tests take turns.
static SERIAL: tokio::sync::Mutex<()> = tokio::sync::Mutex::const_new(());

async fn connect() -> (Session, Stream) {
    connect_with(Ready::now()).await
}

/// An agent whose state is in place once `ready` says so, after its hello.
async fn connect_with(ready: Ready) -> (Session, Stream) {
    let (host_io, guest_io) = tokio::io::duplex(1 << 16);
    // Leaked on purpose: the agent task may outlive the test body by a moment.
    let state = tempfile::tempdir().unwrap().keep();
    let agent = Agent {
        reaper: Reaper::start().unwrap(),
        is_init: false,
        layers_dir: state.join("layers"),
        containers_dir: state.join("containers"),
        net: berth_guest::net::Net::disabled(),
        host_ports: Vec::new(),
        volumes_dir: state.join("volumes"),
        shares: Default::default(),
        ready,
    };
    tokio::spawn(async move { agent.serve(Session::server(guest_io)).await });
    let host = Session::client(host_io);
    let mut control = host.open().await.unwrap();
    write_msg(&mut control, &StreamOpen::Control).await.unwrap();
    write_msg(
        &mut control,
        &HostMessage::Hello {
            version: VERSION,
            client: "test".into(),
        },
    )
    .await
    .unwrap();
    let ack: GuestMessage = read_msg(&mut control).await.unwrap().unwrap();
    assert!(
        matches!(
            ack,
            GuestMessage::HelloAck {
                version: VERSION,
                ..
            }
        ),
        "{ack:?}"
    );
    (host, control)
}

async fn stdio(host: &Session, exec_id: u64, fd: StdioFd) -> Stream {
    let mut s = host.open().await.unwrap();
    write_msg(&mut s, &StreamOpen::Stdio { exec_id, fd })
        .await
        .unwrap();
    s
}

async fn next(control: &mut Stream) -> GuestMessage {
    read_msg(control).await.unwrap().unwrap()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn exec_streams_stdio_separately_and_reports_the_exit() {
    let _turn = SERIAL.lock().await;
    let (host, mut control) = connect().await;
    let mut stdin = stdio(&host, 1, StdioFd::Stdin).await;
    let mut stdout = stdio(&host, 1, StdioFd::Stdout).await;
    let mut stderr = stdio(&host, 1, StdioFd::Stderr).await;
    let spec = ExecSpec {
        argv: vec!["sh".into(), "-c".into(), "cat; echo err >&2; exit 3".into()],
        env: vec![],
        cwd: None,
        stdin: true,
        container: None,
        tty: None,
        join: None,
    };
    write_msg(&mut control, &HostMessage::Exec { exec_id: 1, spec })
        .await
        .unwrap();
    assert!(matches!(
        next(&mut control).await,
        GuestMessage::Started { exec_id: 1, .. }
    ));
    stdin.write_all(b"hello through stdin\n").await.unwrap();
    stdin.shutdown().await.unwrap();
    let mut out = String::new();
    stdout.read_to_string(&mut out).await.unwrap();
    let mut err = String::new();
    stderr.read_to_string(&mut err).await.unwrap();
    assert_eq!(out, "hello through stdin\n");
    assert_eq!(err, "err\n");
    assert_eq!(
        next(&mut control).await,
        GuestMessage::Exited {
            exec_id: 1,
            status: ExitStatus::Code(3),
            oom_killed: false,
        }
    );
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_missing_command_is_not_found_and_the_agent_stays_up() {
    let _turn = SERIAL.lock().await;
    let (host, mut control) = connect().await;
    let _out = stdio(&host, 5, StdioFd::Stdout).await;
    let _err = stdio(&host, 5, StdioFd::Stderr).await;
    let spec = ExecSpec {
        argv: vec!["no-such-command-here".into()],
        env: vec![],
        cwd: None,
        stdin: false,
        container: None,
        tty: None,
        join: None,
    };
    write_msg(&mut control, &HostMessage::Exec { exec_id: 5, spec })
        .await
        .unwrap();
    match next(&mut control).await {
        GuestMessage::Error {
            exec_id: Some(5),
            kind: ErrorKind::NotFound,
            ..
        } => {}
        other => panic!("expected not found, got {other:?}"),
    }
    write_msg(&mut control, &HostMessage::Ping { nonce: 11 })
        .await
        .unwrap();
    assert_eq!(next(&mut control).await, GuestMessage::Pong { nonce: 11 });
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_malformed_frame_gets_an_error_reply() {
    let _turn = SERIAL.lock().await;
    let (_host, mut control) = connect().await;
    control
        .write_all(&[0, 0, 0, 3, b'{', b'x', b'}'])
        .await
        .unwrap();
    match next(&mut control).await {
        GuestMessage::Error {
            kind: ErrorKind::BadRequest,
            ..
        } => {}
        other => panic!("expected bad request, got {other:?}"),
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn remove_volume_answers_by_request_id() {
    let _turn = SERIAL.lock().await;
    let (_host, mut control) = connect().await;
    for (request_id, name) in [(21, "never-made"), (22, "../escape")] {
        write_msg(
            &mut control,
            &HostMessage::RemoveVolume {
                request_id,
                name: name.into(),
            },
        )
        .await
        .unwrap();
    }
    let mut replies = [next(&mut control).await, next(&mut control).await];
    replies.sort_by_key(|m| match m {
        GuestMessage::VolumeRemoved { request_id, .. } => *request_id,
        _ => 0,
    });
    assert_eq!(
        replies[0],
        GuestMessage::VolumeRemoved {
            request_id: 21,
            error: None
        }
    );
    match &replies[1] {
        GuestMessage::VolumeRemoved {
            request_id: 22,
            error: Some(e),
        } => assert!(e.contains("invalid volume name"), "{e}"),
        other => panic!("{other:?}"),
    }
}

/// A machine answers the hello while its disk is still being mounted; the requests behind
/// it wait for the mount, and are answered once it is done.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn requests_wait_for_the_state_but_the_hello_does_not() {
    let _turn = SERIAL.lock().await;
    let (mounted, ready) = Ready::later();
    let (_host, mut control) = connect_with(ready).await;
    write_msg(&mut control, &HostMessage::ListLayers)
        .await
        .unwrap();
    // A network's preparation needs no state: it is answered at once, behind the list.
    let network = berth_protocol::BridgeNetwork {
        network_name: "bridge".into(),
        bridge: "berth0".into(),
        prefix: 16,
        gateway: "172.17.0.1".into(),
        internal: false,
        keep_bridge: true,
    };
    write_msg(
        &mut control,
        &HostMessage::PrepareNetwork {
            request_id: 7,
            network,
        },
    )
    .await
    .unwrap();
    let prepared = tokio::time::timeout(std::time::Duration::from_secs(10), next(&mut control))
        .await
        .expect("a network's preparation waited for the agent's state");
    assert!(
        matches!(
            prepared,
            GuestMessage::NetworkPrepared { request_id: 7, .. }
        ),
        "{prepared:?}"
    );
    let early = tokio::time::timeout(std::time::Duration::from_millis(300), next(&mut control));
    assert!(
        early.await.is_err(),
        "the layer list was served before the agent's state was in place"
    );
    mounted.send(true).unwrap();
    let listed = tokio::time::timeout(std::time::Duration::from_secs(10), next(&mut control))
        .await
        .expect("the request is served once the state is in place");
    assert!(
        matches!(listed, GuestMessage::LayerList { .. }),
        "{listed:?}"
    );
}
