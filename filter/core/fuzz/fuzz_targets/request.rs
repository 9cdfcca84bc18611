//! Properties: `jwt_scopes_core::fuzzing::check_request`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = jwt_scopes_core::fuzzing::check_request(data) {
        panic!("{violation}");
    }
});
