//! `sign_guard`, native build: the module's second filter (`filter_name:
//! sign_guard`), the upstream HTTP filter that every Lattice cluster runs
//! right after Envoy's `aws_request_signing`. It refuses with 503 any request
//! that filter left unsigned (no AWS credentials, or fetching them failed or
//! timed out: envoyproxy/envoy#47519), as the wasm build's root context
//! `sign_guard` (filter/src/guard.rs) does, so that an Envoy running the
//! native build loads no V8 at all.
//!
//! Both builds share, from [`jwt_scopes_core::signature`], the decision
//! ([`is_signed`] on `authorization` and `x-amz-date`), the configuration
//! rule (none), the counter's name and the refusal: status, body,
//! `content-type`, details and the error line, which names the service
//! (`:authority`) and no other part of the request. The counter is defined
//! under the module's metrics namespace (`wasmcustom` as envoy-gen renders
//! it, so that it keeps the wasm build's name).
//!
//! Fail closed: a header that cannot be read, or holds several values (the
//! signer sets exactly one), counts as unsigned; a panic refuses the request
//! with 500. Never `Continue` unless the request is signed.

use crate::abi::*;
use crate::envoy::{envoy_slice, log, module_buffer};
use jwt_scopes_core::signature::{
    check_configuration, is_signed, refusal_log_message, GUARD_NAME, REFUSAL_BODY, REFUSAL_CONTENT_TYPE,
    REFUSAL_DETAILS, REFUSAL_STATUS, REFUSED_COUNTER,
};
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};

/// The reply when the guard itself fails (a panic): the request is not sent.
pub const FAILURE_STATUS: u32 = 500;
pub const FAILURE_BODY: &str = "the signing guard failed; the request was not sent\n";
pub const FAILURE_DETAILS: &str = "sign_guard_failed";

/// A configured guard: Envoy's id of its counter.
#[derive(Debug)]
pub struct GuardConfig {
    refused: usize,
}

impl GuardConfig {
    /// Checks the configuration (none) and defines the counter: only
    /// possible while `config_new` runs.
    pub(crate) fn new(
        config_envoy_ptr: envoy_dynamic_module_type_http_filter_config_envoy_ptr,
        configuration: &[u8],
    ) -> Result<GuardConfig, String> {
        check_configuration(configuration)?;
        let mut refused = 0;
        // SAFETY: `config_envoy_ptr` is Envoy's configuration, live during
        // config_new; the name is a live static string; no labels;
        // `refused` is a valid out-pointer.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                config_envoy_ptr,
                module_buffer(REFUSED_COUNTER.as_bytes()),
                null_mut(),
                0,
                &mut refused,
            )
        };
        if result != envoy_dynamic_module_type_metrics_result_Success {
            return Err(format!(
                "{GUARD_NAME}: cannot define the counter {REFUSED_COUNTER} (result {result})"
            ));
        }
        Ok(GuardConfig { refused })
    }
}

/// A request header as the guard reads it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Header<'a> {
    Absent,
    One(&'a [u8]),
    /// Several values, or a header that could not be read.
    Unusable,
}

impl<'a> Header<'a> {
    /// The header's value for [`is_signed`]; `Err` when it is unusable.
    fn value(self) -> Result<Option<&'a [u8]>, ()> {
        match self {
            Header::Absent => Ok(None),
            Header::One(value) => Ok(Some(value)),
            Header::Unusable => Err(()),
        }
    }
}

/// The guard's decision: forward only what `aws_request_signing` signed.
/// An unusable header means not signed.
pub fn forwards(authorization: Header<'_>, amz_date: Header<'_>) -> bool {
    match (authorization.value(), amz_date.value()) {
        (Ok(authorization), Ok(amz_date)) => is_signed(authorization, amz_date),
        _ => false,
    }
}

/// One stream's request, as the guard sees it.
struct GuardStream<'c> {
    /// Envoy's filter: valid for the whole hook.
    filter: envoy_dynamic_module_type_http_filter_envoy_ptr,
    config: Option<&'c GuardConfig>,
    /// A local reply was sent.
    replied: bool,
}

impl GuardStream<'_> {
    /// Request header `name` (lower case). The value points into Envoy's
    /// header map, which nothing changes before the hook returns.
    fn header(&self, name: &str) -> Header<'_> {
        let mut value = envoy_dynamic_module_type_envoy_buffer { ptr: null(), length: 0 };
        let mut count = 0usize;
        // SAFETY: `filter` is Envoy's live filter; the name is a live slice;
        // `value` and `count` are valid out-pointers.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.filter,
                envoy_dynamic_module_type_http_header_type_RequestHeader,
                module_buffer(name.as_bytes()),
                &mut value,
                0,
                &mut count,
            )
        };
        match (found, count) {
            (false, 0) => Header::Absent,
            // SAFETY: the value points into the header map, unchanged until
            // the hook returns (the guard changes no header).
            (true, 1) => Header::One(unsafe { envoy_slice(value.ptr, value.length) }),
            _ => Header::Unusable,
        }
    }

    fn on_request_headers(&mut self) -> envoy_dynamic_module_type_on_http_filter_request_headers_status {
        if self.config.is_some() && forwards(self.header("authorization"), self.header("x-amz-date")) {
            return envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue;
        }
        self.refuse_unsigned();
        envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration
    }

    /// Counts, logs and answers 503: the request is not sent.
    fn refuse_unsigned(&mut self) {
        if let Some(config) = self.config {
            // SAFETY: `filter` is Envoy's live filter; the counter was
            // defined on this stream's configuration, without labels.
            unsafe {
                envoy_dynamic_module_callback_http_filter_increment_counter(
                    self.filter,
                    config.refused,
                    null_mut(),
                    0,
                    1,
                );
            }
        }
        log(envoy_dynamic_module_type_log_level_Error, || {
            let authority = match self.header(":authority") {
                Header::One(authority) => Some(authority),
                Header::Absent | Header::Unusable => None,
            };
            format!("{GUARD_NAME}: {}", refusal_log_message(authority))
        });
        self.reply(REFUSAL_STATUS, REFUSAL_BODY, REFUSAL_DETAILS);
    }

    /// The reply after a panic: 500, unless a reply was already sent.
    fn refuse_after_panic(&mut self) {
        log(envoy_dynamic_module_type_log_level_Error, || {
            format!("{GUARD_NAME}: the guard panicked; the request is refused with {FAILURE_STATUS}")
        });
        if !self.replied {
            self.reply(FAILURE_STATUS, FAILURE_BODY, FAILURE_DETAILS);
        }
    }

    fn reply(&mut self, status: u32, body: &str, details: &str) {
        let name = "content-type";
        let mut headers = [envoy_dynamic_module_type_module_http_header {
            key_ptr: name.as_ptr().cast(),
            key_length: name.len(),
            value_ptr: REFUSAL_CONTENT_TYPE.as_ptr().cast(),
            value_length: REFUSAL_CONTENT_TYPE.len(),
        }];
        // SAFETY: `filter` is Envoy's live filter; headers, body and details
        // are live for the call (Envoy copies them).
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.filter,
                status,
                headers.as_mut_ptr(),
                headers.len(),
                module_buffer(body.as_bytes()),
                module_buffer(details.as_bytes()),
            );
        }
        self.replied = true;
    }
}

/// The request-headers hook of a `sign_guard` stream (`config` None only if
/// Envoy handed over no configuration: every request is refused).
pub(crate) fn request_headers(
    filter: envoy_dynamic_module_type_http_filter_envoy_ptr,
    config: Option<&GuardConfig>,
) -> envoy_dynamic_module_type_on_http_filter_request_headers_status {
    let mut stream = GuardStream {
        filter,
        config,
        replied: false,
    };
    match catch_unwind(AssertUnwindSafe(|| stream.on_request_headers())) {
        Ok(status) => status,
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| stream.refuse_after_panic()));
            envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration
        }
    }
}

#[cfg(test)]
mod tests {
    use super::{forwards, Header};

    const SIGNED: &[u8] = b"AWS4-HMAC-SHA256 Credential=ASIAEXAMPLE/20250101/us-west-2/vpc-lattice-svcs/aws4_request, SignedHeaders=host;x-amz-date, Signature=0123";
    const DATE: &[u8] = b"20250101T000000Z";

    #[test]
    fn only_a_signed_request_goes_on() {
        assert!(forwards(Header::One(SIGNED), Header::One(DATE)));
        for (authorization, date) in [
            (Header::Absent, Header::Absent),
            (Header::Absent, Header::One(DATE)),
            (Header::One(SIGNED), Header::Absent),
            (Header::One(b"Bearer eyJ.e30.sig"), Header::One(DATE)),
            // Several values, or a header that could not be read: not signed.
            (Header::Unusable, Header::One(DATE)),
            (Header::One(SIGNED), Header::Unusable),
        ] {
            assert!(!forwards(authorization, date), "{authorization:?} {date:?}");
        }
    }
}
