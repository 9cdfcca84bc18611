//! Properties: `lattice_sim::fuzzing::check_sigv4_authorization`.
#![no_main]

libfuzzer_sys::fuzz_target!(|data: &[u8]| {
    if let Err(violation) = lattice_sim::fuzzing::check_sigv4_authorization(data) {
        panic!("{violation}");
    }
});
