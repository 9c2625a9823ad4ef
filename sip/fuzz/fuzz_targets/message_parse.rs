//! Any bytes: the parser returns a value or an error, never panics; what parses re-serialises to
//! something that parses to the same value; a rejected request yields a parseable error reply.
#![no_main]

use landline_sip::message::{Limits, Message, reject_response};
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    let limits = Limits::default();
    match Message::parse(data, &limits) {
        Ok(msg) => {
            let again = Message::parse(&msg.to_bytes(), &limits);
            assert_eq!(again.as_ref(), Ok(&msg), "round trip");
        }
        Err(e) => {
            if let Some(reply) = reject_response(data, &e) {
                let _ = Message::parse(&reply, &limits);
            }
        }
    }
});
