//! Properties: `envoy_gen::fuzzing::check_spec`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = envoy_gen::fuzzing::check_spec(data) {
        panic!("{violation}");
    }
});
