//! A proxy-wasm HTTP filter that panics when a request carries
//! `x-test-panic: 1` and continues every other request untouched. The fault
//! tests (`tests/tests/faults.rs`) put it in front of jwt_scopes in a
//! configuration derived from the generated frontend, to show what a filter
//! bug costs: 503 for that request, and (with `FAIL_RELOAD`) a rebuilt VM
//! for the next ones. Built for wasm32-wasip1 by `make test`; never deployed.

use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

proxy_wasm::main! {{
    proxy_wasm::set_http_context(|_, _| -> Box<dyn HttpContext> { Box::new(PanicOnRequest) });
}}

struct PanicOnRequest;

impl Context for PanicOnRequest {}

impl HttpContext for PanicOnRequest {
    #[allow(clippy::panic, reason = "the point of this test-only module")]
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        if self.get_http_request_header_bytes("x-test-panic").as_deref() == Some(b"1") {
            panic!("x-test-panic: 1");
        }
        Action::Continue
    }
}
