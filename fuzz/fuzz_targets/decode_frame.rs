//! Any byte string given to the frame decoder returns Ok or Err, never panics; a frame that
//! decodes re-encodes to bytes that decode to the same frame.
#![no_main]

use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = dstate::wire::decode(data, 1 << 20) {
        let again = dstate::wire::encode(&frame, usize::MAX).expect("a decoded frame re-encodes");
        assert_eq!(dstate::wire::decode(&again, usize::MAX).ok(), Some(frame));
    }
});
