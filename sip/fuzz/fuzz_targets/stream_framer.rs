//! Any byte stream, split anywhere: the TCP framer yields frames or an error, never panics.
#![no_main]

use landline_sip::message::{Limits, Message, StreamFramer};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let Some((&cut, rest)) = data.split_first() else {
        return;
    };
    let cut = usize::from(cut).min(rest.len());
    let mut framer = StreamFramer::new(Limits::default());
    for chunk in [&rest[..cut], &rest[cut..]] {
        framer.push(chunk);
        while let Ok(Some(frame)) = framer.next_frame() {
            let _ = Message::parse(&frame, &Limits::default());
        }
    }
});
