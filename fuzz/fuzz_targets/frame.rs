//! `Frame::decode` on arbitrary text: never panics; whatever decodes also
//! survives an encode/decode round trip.
#![no_main]

use libfuzzer_sys::fuzz_target;
use band_wire::frame::Frame;

fuzz_target!(|data: &[u8]| {
    let text = String::from_utf8_lossy(data);
    if let Ok(frame) = Frame::decode(&text) {
        let _ = frame.reply_status();
        let _ = frame.reply_response();
        let again = Frame::decode(&frame.encode()).expect("an encoded frame decodes");
        assert_eq!(again.join_ref, frame.join_ref);
        assert_eq!(again.msg_ref, frame.msg_ref);
        assert_eq!(again.topic, frame.topic);
        assert_eq!(again.event, frame.event);
    }
});
