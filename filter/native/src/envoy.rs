//! Small helpers over the raw ABI: buffers in both directions, and logging.

use crate::abi::{
    envoy_dynamic_module_callback_log, envoy_dynamic_module_callback_log_enabled, envoy_dynamic_module_type_log_level,
    envoy_dynamic_module_type_module_buffer,
};
use core::ffi::c_char;

/// A module-owned buffer over `bytes` (valid while `bytes` is).
pub(crate) fn module_buffer(bytes: &[u8]) -> envoy_dynamic_module_type_module_buffer {
    envoy_dynamic_module_type_module_buffer {
        ptr: bytes.as_ptr().cast(),
        length: bytes.len(),
    }
}

/// The bytes of an Envoy-owned buffer; empty when `ptr` is null.
///
/// # Safety
/// `ptr` is null or points to `length` readable bytes that stay unchanged
/// for `'a`.
pub(crate) unsafe fn envoy_slice<'a>(ptr: *const c_char, length: usize) -> &'a [u8] {
    if ptr.is_null() || length == 0 {
        &[]
    } else {
        // SAFETY: the caller's promise.
        unsafe { std::slice::from_raw_parts(ptr.cast::<u8>(), length) }
    }
}

/// Logs through Envoy (logger `dynamic_modules`), building the message only
/// when `level` is enabled.
pub(crate) fn log(level: envoy_dynamic_module_type_log_level, message: impl FnOnce() -> String) {
    // SAFETY: plain calls; the message is a live string for the call.
    unsafe {
        if envoy_dynamic_module_callback_log_enabled(level) {
            let message = message();
            envoy_dynamic_module_callback_log(level, module_buffer(message.as_bytes()));
        }
    }
}
