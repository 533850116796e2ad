use super::*;

fn roundtrip(msg: WireMsg) -> WireMsg {
    let (variant, args) = msg.encode().expect("encodable");
    WireMsg::decode(variant, args)
}

fn hello() -> Hello {
    Hello {
        node: NodeId(7),
        incarnation: Incarnation(1_700_000_000_000),
        name: "dstate#7#abc@127.0.0.1".into(),
        token: Token(0x0123_4567_89ab_cdef_0011_2233_4455_6677),
        listen: Some("127.0.0.1:4000".into()),
        known: vec![
            (NodeId(8), "127.0.0.1:4001".into()),
            (NodeId(9), "127.0.0.1:4002".into()),
        ],
    }
}

#[test]
fn every_message_survives_a_roundtrip() {
    let token = Token(42);
    let messages = [
        WireMsg::Hello(hello()),
        WireMsg::Hello(Hello {
            listen: None,
            known: vec![],
            ..hello()
        }),
        WireMsg::Frame {
            token,
            payload: Bytes::from_static(b"opaque frame"),
        },
        WireMsg::Frame {
            token,
            payload: Bytes::new(),
        },
        WireMsg::Ack {
            token,
            bytes: 1 << 40,
            frames: 3,
            flush: 9,
        },
        WireMsg::Peers {
            token,
            adverts: vec![(NodeId(3), "10.0.0.1:1".into())],
        },
        WireMsg::Flush { token, id: 5 },
    ];
    for msg in messages {
        assert_eq!(roundtrip(msg.clone()), msg);
    }
}

#[test]
fn truncated_and_padded_messages_are_malformed() {
    for msg in [
        WireMsg::Hello(hello()),
        WireMsg::Ack {
            token: Token(1),
            bytes: 2,
            frames: 3,
            flush: 0,
        },
        WireMsg::Flush {
            token: Token(1),
            id: 2,
        },
    ] {
        let (variant, args) = msg.encode().expect("encodable");
        for cut in 0..args.len() {
            let decoded = WireMsg::decode(variant, args[..cut].to_vec());
            assert!(matches!(decoded, WireMsg::Malformed { .. }), "cut at {cut}");
        }
        let mut padded = args.clone();
        padded.push(0);
        assert!(matches!(
            WireMsg::decode(variant, padded),
            WireMsg::Malformed { .. }
        ));
    }
}

#[test]
fn arbitrary_bytes_never_panic() {
    // A small deterministic generator: no dependency, many shapes.
    let mut state = 0x9e37_79b9_7f4a_7c15_u64;
    let mut next = move || {
        state ^= state << 13;
        state ^= state >> 7;
        state ^= state << 17;
        state
    };
    let variants = [
        VARIANT_HELLO,
        VARIANT_FRAME,
        VARIANT_ACK,
        VARIANT_PEERS,
        VARIANT_FLUSH,
        "other",
    ];
    for round in 0..20_000 {
        let len = (next() % 96) as usize;
        let bytes: Vec<u8> = (0..len).map(|_| next() as u8).collect();
        let variant = variants[round % variants.len()];
        let _ = WireMsg::decode(variant, bytes);
    }
}

#[test]
fn wrong_protocol_version_is_malformed() {
    let (variant, mut args) = WireMsg::Hello(hello()).encode().expect("encodable");
    args[0] = PROTOCOL_VERSION + 1;
    assert!(matches!(
        WireMsg::decode(variant, args),
        WireMsg::Malformed { .. }
    ));
}

#[test]
fn token_debug_hides_the_secret() {
    let shown = format!("{:?}", Token(0x1234_5678_9abc_def0_1234_5678_9abc_def0));
    assert!(!shown.contains("123456789abc"), "{shown}");
}
