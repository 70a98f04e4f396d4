use super::*;
use proptest::prelude::*;

fn arb_exec_spec() -> impl Strategy<Value = ExecSpec> {
    (
        prop::collection::vec(".*", 0..4),
        prop::collection::vec(".*", 0..4),
        prop::option::of(".*"),
        any::<bool>(),
    )
        .prop_map(|(argv, env, cwd, stdin)| ExecSpec {
            argv,
            env,
            cwd,
            stdin,
            container: None,
            tty: None,
            join: None,
        })
}

fn arb_host_message() -> impl Strategy<Value = HostMessage> {
    prop_oneof![
        (any::<u32>(), ".*").prop_map(|(version, client)| HostMessage::Hello { version, client }),
        (any::<u64>(), arb_exec_spec())
            .prop_map(|(exec_id, spec)| HostMessage::Exec { exec_id, spec }),
        (any::<u64>(), any::<i32>())
            .prop_map(|(exec_id, signal)| HostMessage::Signal { exec_id, signal }),
        any::<u64>().prop_map(|nonce| HostMessage::Ping { nonce }),
        "[a-z0-9:]*".prop_map(|digest| HostMessage::PutLayer { digest }),
        Just(HostMessage::ListLayers),
        (any::<u64>(), any::<u16>(), any::<u16>()).prop_map(|(exec_id, rows, cols)| {
            HostMessage::Resize {
                exec_id,
                size: TtySize { rows, cols },
            }
        }),
        Just(HostMessage::PowerOff),
        (any::<u64>(), "[0-9a-f]{64}", 0..7usize, any::<u64>()).prop_map(
            |(request_id, id, op, memory)| {
                let op = match op {
                    0 => ContainerOp::Freeze,
                    1 => ContainerOp::Thaw,
                    2 => ContainerOp::Stats,
                    3 => ContainerOp::Top,
                    4 => ContainerOp::Disconnect {
                        network_id: id.clone(),
                    },
                    5 => ContainerOp::Connect(Attachment {
                        network_id: id.clone(),
                        network_name: "back".into(),
                        bridge: "br-abc".into(),
                        subnet: "172.19.0.0".into(),
                        prefix: 16,
                        gateway: "172.19.0.1".into(),
                        address: "172.19.0.3".into(),
                        dns_names: vec!["db".into()],
                        extra_hosts: Vec::new(),
                        internal: false,
                        keep_bridge: true,
                    }),
                    _ => ContainerOp::Update(Resources {
                        memory: Some(memory),
                        ..Resources::default()
                    }),
                };
                HostMessage::Container { request_id, id, op }
            }
        ),
        (any::<u64>(), ".*")
            .prop_map(|(request_id, name)| HostMessage::RemoveVolume { request_id, name }),
        any::<u64>().prop_map(|request_id| HostMessage::DiskUsage { request_id }),
        (
            any::<u64>(),
            "[a-z0-9]{1,15}",
            any::<u8>(),
            any::<bool>(),
            any::<bool>()
        )
            .prop_map(|(request_id, bridge, prefix, internal, keep_bridge)| {
                HostMessage::PrepareNetwork {
                    request_id,
                    network: BridgeNetwork {
                        network_name: format!("net-{bridge}"),
                        bridge,
                        prefix,
                        gateway: "172.17.0.1".into(),
                        internal,
                        keep_bridge,
                    },
                }
            }),
        (any::<u64>(), "[a-z0-9]{1,8}", ".*").prop_map(|(request_id, tag, why)| {
            HostMessage::CloseShare {
                request_id,
                tag,
                why,
            }
        }),
        (
            any::<u64>(),
            any::<bool>(),
            prop::collection::vec("[0-9a-f]{64}", 0..3)
        )
            .prop_map(
                |(request_id, others, ids)| HostMessage::RemoveContainerFiles {
                    request_id,
                    which: match others {
                        true => ContainerSet::AllBut(ids),
                        false => ContainerSet::These(ids),
                    },
                }
            ),
    ]
}

fn arb_guest_message() -> impl Strategy<Value = GuestMessage> {
    let status = prop_oneof![
        any::<i32>().prop_map(ExitStatus::Code),
        any::<i32>().prop_map(ExitStatus::Signal)
    ];
    let kind = prop_oneof![
        Just(ErrorKind::NotFound),
        Just(ErrorKind::CannotInvoke),
        Just(ErrorKind::BadRequest),
        Just(ErrorKind::VersionMismatch),
        Just(ErrorKind::Internal),
        Just(ErrorKind::LayerMissing),
    ];
    prop_oneof![
        (any::<u32>(), ".*", ".*").prop_map(|(version, agent, kernel_release)| {
            GuestMessage::HelloAck {
                version,
                agent,
                kernel_release,
            }
        }),
        (any::<u64>(), any::<u32>())
            .prop_map(|(exec_id, pid)| GuestMessage::Started { exec_id, pid }),
        (any::<u64>(), status).prop_map(|(exec_id, status)| GuestMessage::Exited {
            exec_id,
            status,
            oom_killed: false
        }),
        (prop::option::of(any::<u64>()), kind, ".*").prop_map(|(exec_id, kind, message)| {
            GuestMessage::Error {
                exec_id,
                kind,
                message,
            }
        }),
        any::<u64>().prop_map(|nonce| GuestMessage::Pong { nonce }),
        ".*".prop_map(|digest| GuestMessage::LayerStored { digest }),
        prop::collection::vec(".*", 0..3).prop_map(|digests| GuestMessage::LayerList { digests }),
        (".*", ".*").prop_map(|(digest, message)| GuestMessage::LayerFailed { digest, message }),
        Just(GuestMessage::PoweringOff),
        (any::<u64>(), prop::option::of(".*"))
            .prop_map(|(request_id, error)| GuestMessage::VolumeRemoved { request_id, error }),
        (any::<u64>(), prop::option::of(".*")).prop_map(|(request_id, error)| {
            GuestMessage::ContainerFilesRemoved { request_id, error }
        }),
        (any::<u64>(), prop::option::of(".*")).prop_map(|(request_id, error)| {
            GuestMessage::NetworkPrepared { request_id, error }
        }),
        (any::<u64>(), prop::option::of(".*"))
            .prop_map(|(request_id, error)| GuestMessage::ShareClosed { request_id, error }),
        (
            any::<u64>(),
            prop::collection::vec(("[0-9a-f]{64}", any::<u64>()), 0..3),
            prop::collection::vec(("[a-z0-9]{2,8}", any::<u64>()), 0..3)
        )
            .prop_map(
                |(request_id, containers, volumes)| GuestMessage::DiskUsage {
                    request_id,
                    containers,
                    volumes,
                }
            ),
    ]
}

proptest! {
    #[test]
    fn host_messages_round_trip(msg in arb_host_message()) {
        let frame = encode(&msg).unwrap();
        let mut dec = FrameDecoder::new();
        dec.push(&frame);
        prop_assert_eq!(dec.next_message::<HostMessage>().unwrap(), Some(msg));
        prop_assert_eq!(dec.next_message::<HostMessage>().unwrap(), None);
    }

    #[test]
    fn guest_messages_round_trip_split_anywhere(msg in arb_guest_message(), cut in any::<prop::sample::Index>()) {
        let frame = encode(&msg).unwrap();
        let cut = cut.index(frame.len());
        let mut dec = FrameDecoder::new();
        dec.push(&frame[..cut]);
        prop_assert_eq!(dec.next_message::<GuestMessage>().unwrap(), None);
        dec.push(&frame[cut..]);
        prop_assert_eq!(dec.next_message::<GuestMessage>().unwrap(), Some(msg));
    }

    #[test]
    fn garbage_is_decoded_by_its_header_alone(bytes in prop::collection::vec(any::<u8>(), 0..512)) {
        // Whatever arrives, the answer follows from the header and the body: too short
        // waits, a length over the limit is refused, a whole frame is a message exactly
        // when its body is one. Never a panic, never a message from a bad body.
        let mut dec = FrameDecoder::new();
        dec.push(&bytes);
        let got = dec.next_message::<HostMessage>();
        if bytes.len() < 4 {
            prop_assert!(matches!(got, Ok(None)));
        } else {
            let len = u32::from_be_bytes([bytes[0], bytes[1], bytes[2], bytes[3]]) as usize;
            if len > MAX_FRAME_LEN {
                prop_assert!(matches!(got, Err(FrameError::TooLarge(_))));
            } else if bytes.len() < 4 + len {
                prop_assert!(matches!(got, Ok(None)));
            } else {
                let body = serde_json::from_slice::<HostMessage>(&bytes[4..4 + len]);
                match (got, body) {
                    (Ok(Some(m)), Ok(b)) => prop_assert_eq!(m, b),
                    (Err(_), Err(_)) => {}
                    (got, body) => prop_assert!(false, "decoder {got:?}, body {body:?}"),
                }
            }
        }
    }

    #[test]
    fn a_frame_with_a_length_under_the_limit_waits_for_its_body(len in 1usize..MAX_FRAME_LEN) {
        let mut dec = FrameDecoder::new();
        dec.push(&(len as u32).to_be_bytes());
        prop_assert!(matches!(dec.next_message::<HostMessage>(), Ok(None)));
    }
}

#[test]
fn container_specs_round_trip_and_default_to_none() {
    let spec = ExecSpec {
        argv: vec!["sh".into()],
        env: vec!["A=b".into()],
        cwd: Some("/w".into()),
        stdin: false,
        container: Some(ContainerSpec {
            id: "ab".repeat(32),
            layers: vec!["sha256:00".into()],
            hostname: "abab".into(),
            user: Some("1000:1000".into()),
            resources: Resources {
                memory: Some(32 << 20),
                pids_limit: Some(20),
                device_write_bps: vec![("/dev/vda".into(), 1 << 20)],
                ..Resources::default()
            },
            security: Security {
                cap_add: vec!["NET_ADMIN".into()],
                ..Security::default()
            },
            network: Some(NetworkSpec::Bridge {
                networks: vec![Attachment {
                    network_id: "cd".repeat(32),
                    network_name: "net1".into(),
                    bridge: "br-cdcdcdcdcdcd".into(),
                    subnet: "172.18.0.0".into(),
                    prefix: 16,
                    gateway: "172.18.0.1".into(),
                    address: "172.18.0.2".into(),
                    dns_names: vec!["web".into(), "ababababab".into()],
                    extra_hosts: vec![("db".into(), "10.0.0.9".into())],
                    internal: true,
                    keep_bridge: false,
                }],
            }),
            mounts: vec![
                Mount {
                    source: MountSource::Host {
                        path: "/home/u/src".into(),
                    },
                    target: "/src".into(),
                    read_only: true,
                    no_copy: false,
                },
                Mount {
                    source: MountSource::Volume {
                        name: "data".into(),
                    },
                    target: "/data".into(),
                    read_only: false,
                    no_copy: false,
                },
            ],
            tmpfs: vec![Tmpfs {
                target: "/run".into(),
                data: "size=64m,mode=1777".into(),
                read_only: false,
                noexec: true,
                nosuid: true,
                nodev: false,
            }],
            read_only_rootfs: true,
            process: ProcessOptions {
                ulimits: vec![Ulimit {
                    name: "nofile".into(),
                    soft: 64,
                    hard: 128,
                }],
                oom_score_adj: Some(-500),
                group_add: vec!["audio".into(), "1234".into()],
                init: true,
                shm_size: Some(128 << 20),
                sysctls: [("net.core.somaxconn".to_string(), "1024".to_string())].into(),
                dns: vec!["10.0.0.53".into()],
                dns_search: vec!["example.com".into()],
                dns_options: vec!["ndots:2".into()],
                devices: vec![Device {
                    path_on_host: "/dev/net/tun".into(),
                    path_in_container: "/dev/net/tun".into(),
                }],
            },
            namespaces: Namespaces {
                pid: NsMode::Container("ef".repeat(32)),
                ipc: NsMode::None,
                uts: NsMode::Host,
            },
        }),
        tty: Some(TtySize { rows: 24, cols: 80 }),
        join: None,
    };
    let msg = HostMessage::Exec { exec_id: 1, spec };
    let mut dec = FrameDecoder::new();
    dec.push(&encode(&msg).unwrap());
    assert_eq!(dec.next_message::<HostMessage>().unwrap(), Some(msg));
    let old: ExecSpec =
        serde_json::from_str(r#"{"argv":["true"],"env":[],"cwd":null,"stdin":false}"#).unwrap();
    assert_eq!(old.container, None);
    // A container spec from before the process options has none.
    let old: ContainerSpec =
        serde_json::from_str(r#"{"id":"ab","layers":[],"hostname":"h","user":null,"mounts":[]}"#)
            .unwrap();
    assert_eq!(old.process, ProcessOptions::default());
    assert!(old.namespaces.is_default());
    let host: NetworkSpec = serde_json::from_str(r#"{"mode":"host"}"#).unwrap();
    assert_eq!(host, NetworkSpec::Host);
    let open = StreamOpen::Connect {
        addr: "172.17.0.2:80".into(),
        proto: PortProto::Udp,
    };
    let mut dec = FrameDecoder::new();
    dec.push(&encode(&open).unwrap());
    assert_eq!(dec.next_message::<StreamOpen>().unwrap(), Some(open));
    // A container spec from before mounts existed has none.
    let old: ContainerSpec =
        serde_json::from_str(r#"{"id":"x","layers":[],"hostname":"h","user":null}"#).unwrap();
    assert!(old.mounts.is_empty());
}

#[test]
fn oversized_header_is_refused() {
    let err = decode_header(((MAX_FRAME_LEN + 1) as u32).to_be_bytes()).unwrap_err();
    assert!(matches!(err, FrameError::TooLarge(n) if n == MAX_FRAME_LEN + 1));
}

#[test]
fn stream_open_has_a_stable_json_shape() {
    let json = serde_json::to_string(&StreamOpen::Stdio {
        exec_id: 7,
        fd: StdioFd::Stderr,
    })
    .unwrap();
    assert_eq!(json, r#"{"stream":"stdio","exec_id":7,"fd":"stderr"}"#);
}

#[test]
fn exit_status_maps_signals_like_a_shell() {
    assert_eq!(ExitStatus::Code(3).shell_code(), 3);
    assert_eq!(ExitStatus::Signal(9).shell_code(), 137);
    assert_eq!(ErrorKind::NotFound.exit_code(), 127);
    assert_eq!(ErrorKind::CannotInvoke.exit_code(), 126);
    assert_eq!(ErrorKind::Internal.exit_code(), 125);
    assert_eq!(ErrorKind::LayerMissing.exit_code(), 125);
}

#[test]
fn macs_follow_dockers_scheme() {
    let mac = mac_for("172.18.0.2".parse().unwrap());
    assert_eq!(mac_text(mac), "02:42:ac:12:00:02");
}

#[test]
fn path_stats_round_trip_and_older_guests_give_owner_zero() {
    let stat = PathStat {
        name: "tmp".into(),
        size: 4096,
        mode: 0o041777,
        mtime_secs: 1,
        mtime_nanos: 2,
        link_target: String::new(),
        uid: 1000,
        gid: 50,
    };
    let json = serde_json::to_string(&stat).unwrap();
    assert_eq!(serde_json::from_str::<PathStat>(&json).unwrap(), stat);
    let old =
        r#"{"name":"x","size":1,"mode":33188,"mtime_secs":0,"mtime_nanos":0,"link_target":""}"#;
    let decoded: PathStat = serde_json::from_str(old).unwrap();
    assert_eq!((decoded.uid, decoded.gid, decoded.mode), (0, 0, 0o100644));
}
