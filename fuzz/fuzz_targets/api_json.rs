//! The JSON body of `POST /api/v1/mode`: a request or an error, never a
//! panic.
#![no_main]
use libfuzzer_sys::fuzz_target;

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = serde_json::from_slice::<rapidscale::api::ModeRequest>(data) {
        let _ = req.mode.as_str();
    }
});
