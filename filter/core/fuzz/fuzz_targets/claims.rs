//! Properties: `jwt_scopes_core::fuzzing::check_claims`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = jwt_scopes_core::fuzzing::check_claims(data) {
        panic!("{violation}");
    }
});
