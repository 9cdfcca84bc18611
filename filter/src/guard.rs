//! `sign_guard`: the root context (`root_id: sign_guard`) that runs as an
//! upstream HTTP filter of every Lattice cluster, after Envoy's
//! `aws_request_signing`, and refuses with 503 any request that filter did
//! not sign (see `jwt_scopes_core::signature` for why that happens and how
//! it is recognised). Each refusal is counted as
//! `wasmcustom.sign_guard.unsigned_requests_refused` and logged at error
//! level (Envoy prefixes the line with `wasm log sign_guard sign_guard:`).
//! Refusals mean an outage (no credentials), so they are counted
//! with a host call each rather than batched like the filter's counters.
//!
//! The decision, the counter's name and the refusal (status, body, details,
//! log line) are `jwt_scopes_core::signature`'s, shared with the native
//! build of the guard (filter/native/src/guard.rs).

use crate::host;
use jwt_scopes_core::pairs;
use jwt_scopes_core::signature::{
    check_configuration, is_signed, refusal_log_message, REFUSAL_BODY, REFUSAL_CONTENT_TYPE, REFUSAL_DETAILS,
    REFUSAL_STATUS, REFUSED_COUNTER,
};
use proxy_wasm::traits::{Context, HttpContext};
use proxy_wasm::types::Action;

/// A configured guard: the id of its counter.
pub struct Guard {
    refused: u32,
}

impl Guard {
    /// The guard takes no configuration: anything given is a mistake, and
    /// refusing it makes Envoy refuse to start.
    pub fn configure(configuration: &[u8]) -> Result<Guard, String> {
        check_configuration(configuration)?;
        let refused = host::define_counter(REFUSED_COUNTER)
            .map_err(|status| format!("sign_guard cannot define its counter (status {status})"))?;
        Ok(Guard { refused })
    }

    pub fn stream(&self) -> GuardStream {
        GuardStream { refused: self.refused }
    }
}

pub struct GuardStream {
    refused: u32,
}

impl Context for GuardStream {}

impl HttpContext for GuardStream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let authorization = host::request_header(b"authorization");
        let amz_date = host::request_header(b"x-amz-date");
        match (authorization, amz_date) {
            (Ok(authorization), Ok(amz_date)) if is_signed(authorization.as_deref(), amz_date.as_deref()) => {
                Action::Continue
            }
            _ => self.refuse(),
        }
    }
}

impl GuardStream {
    fn refuse(&self) -> Action {
        host::increment(self.refused, 1);
        // The Lattice service it was for; a value that is not text is shown escaped.
        let authority = host::request_header(b":authority").ok().flatten();
        host::log(host::LOG_ERROR, &refusal_log_message(authority.as_deref()));
        let content_type: [(&[u8], &[u8]); 1] = [(b"content-type", REFUSAL_CONTENT_TYPE.as_bytes())];
        let headers = pairs::serialize(&content_type);
        if host::send_local_response(REFUSAL_STATUS, REFUSAL_DETAILS, REFUSAL_BODY.as_bytes(), &headers).is_err() {
            host::log(host::LOG_ERROR, "could not send the refusal");
        }
        Action::Pause
    }
}
