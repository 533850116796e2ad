use proptest::prelude::*;

use super::*;
use crate::ids::{Age, Incarnation};

fn counter_frame(value: u64) -> Frame {
    Frame {
        kind: FrameKind::Delta,
        state: "counter".into(),
        source: NodeId(3),
        generation: Generation::new(Incarnation(1_763_700_000_000), Age(42)),
        payload_version: 1,
        payload: value.to_le_bytes().to_vec(),
    }
}

#[test]
fn a_u64_counter_frame_fits_in_40_bytes() {
    let bytes = encode(&counter_frame(u64::MAX), usize::MAX).expect("encodes");
    assert!(bytes.len() <= 40, "frame is {} bytes", bytes.len());
}

#[test]
fn round_trip_and_checksum_catches_a_flipped_bit() {
    let frame = counter_frame(7);
    let bytes = encode(&frame, 1024).expect("encodes");
    assert_eq!(decode(&bytes, 1024), Ok(frame));
    for bit in 0..bytes.len() * 8 {
        let mut bad = bytes.to_vec();
        bad[bit / 8] ^= 1 << (bit % 8);
        assert!(
            decode(&bad, 1024).is_err(),
            "flip of bit {bit} went unnoticed"
        );
    }
}

#[test]
fn size_limits_apply_both_ways() {
    let mut frame = counter_frame(1);
    frame.payload = vec![0; 100];
    assert!(matches!(
        encode(&frame, 50),
        Err(DecodeError::TooLarge { .. })
    ));
    let bytes = encode(&frame, 1000).expect("encodes");
    assert!(matches!(
        decode(&bytes, 50),
        Err(DecodeError::TooLarge { .. })
    ));
}

#[test]
fn wrong_magic_and_format_are_typed_errors() {
    let bytes = encode(&counter_frame(1), 1024).expect("encodes").to_vec();
    let mut bad = bytes.clone();
    bad[0] = 0;
    assert_eq!(decode(&bad, 1024), Err(DecodeError::BadMagic(0)));
    let mut bad = bytes;
    bad[1] = 9;
    assert_eq!(decode(&bad, 1024), Err(DecodeError::UnknownFormat(9)));
    assert_eq!(
        decode(&[MAGIC], 1024),
        Err(DecodeError::TooShort { len: 1 })
    );
}

fn arb_kind() -> impl Strategy<Value = FrameKind> {
    prop_oneof![
        any::<bool>().prop_map(|ack| FrameKind::Snapshot { ack }),
        (any::<u32>(), any::<u32>(), any::<u64>(), any::<bool>()).prop_map(
            |(index, count, total_bytes, ack)| FrameKind::SnapshotChunk {
                index,
                count,
                total_bytes,
                ack
            }
        ),
        Just(FrameKind::Delta),
        Just(FrameKind::SnapshotRequest),
        Just(FrameKind::Current),
        Just(FrameKind::Ack),
        Just(FrameKind::Feed),
        Just(FrameKind::Heartbeat),
        Just(FrameKind::Goodbye),
    ]
}

fn arb_frame() -> impl Strategy<Value = Frame> {
    (
        arb_kind(),
        "[a-z_]{0,24}",
        any::<u64>(),
        any::<u64>(),
        any::<u64>(),
        any::<u32>(),
        proptest::collection::vec(any::<u8>(), 0..512),
    )
        .prop_map(
            |(kind, state, source, inc, age, payload_version, payload)| Frame {
                kind,
                state: state.into(),
                source: NodeId(source),
                generation: Generation::new(Incarnation(inc), Age(age)),
                payload_version,
                payload,
            },
        )
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(512))]

    #[test]
    fn decode_of_encode_is_identity(frame in arb_frame()) {
        let bytes = encode(&frame, usize::MAX).expect("encodes");
        prop_assert_eq!(decode(&bytes, usize::MAX), Ok(frame));
    }

    #[test]
    fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..256)) {
        let _ = decode(&bytes, 1 << 20);
    }

    #[test]
    fn arbitrary_bodies_behind_a_valid_header_and_checksum_never_panic(
        body in proptest::collection::vec(any::<u8>(), 0..256)
    ) {
        // A typed error, or a frame that survives a re-encode.
        let bytes = crate::test_support::seal_frame_body(&body);
        if let Ok(frame) = decode(&bytes, 1 << 20) {
            let again = encode(&frame, usize::MAX).expect("re-encodes");
            prop_assert_eq!(decode(&again, usize::MAX), Ok(frame));
        }
    }
}
