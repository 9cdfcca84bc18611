//! Every call from the filter to Envoy, in one place.
//!
//! Why not `proxy_wasm::hostcalls`: its wrappers `panic!` on any status they
//! do not expect (`hostcalls.rs`: `status => panic!("unexpected status")`,
//! even for `log`), declare the returned status as a Rust enum (an unknown
//! value from the host would be undefined behaviour), and allocate a
//! `String` per header. A panic kills the VM, so here every call returns
//! `Result<_, u32>` with the raw status and callers decide, failing closed.
//! The SDK still provides the context dispatcher and memory allocator.

use std::ptr::null_mut;

const STATUS_OK: u32 = 0;
const STATUS_NOT_FOUND: u32 = 1;

const MAP_HTTP_REQUEST_HEADERS: u32 = 0;
const BUFFER_PLUGIN_CONFIGURATION: u32 = 7;
const METRIC_COUNTER: u32 = 0;

pub const LOG_DEBUG: u32 = 1;
pub const LOG_ERROR: u32 = 4;

#[link(wasm_import_module = "env")]
extern "C" {
    fn proxy_log(level: u32, message_data: *const u8, message_size: usize) -> u32;
    fn proxy_get_buffer_bytes(
        buffer_type: u32,
        start: usize,
        max_size: usize,
        return_buffer_data: *mut *mut u8,
        return_buffer_size: *mut usize,
    ) -> u32;
    fn proxy_get_header_map_pairs(map_type: u32, return_map_data: *mut *mut u8, return_map_size: *mut usize) -> u32;
    fn proxy_get_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_remove_header_map_value(map_type: u32, key_data: *const u8, key_size: usize) -> u32;
    #[cfg_attr(not(feature = "batch-headers"), allow(dead_code))]
    fn proxy_set_header_map_pairs(map_type: u32, map_data: *const u8, map_size: usize) -> u32;
    fn proxy_add_header_map_value(
        map_type: u32,
        key_data: *const u8,
        key_size: usize,
        value_data: *const u8,
        value_size: usize,
    ) -> u32;
    fn proxy_get_property(
        path_data: *const u8,
        path_size: usize,
        return_value_data: *mut *mut u8,
        return_value_size: *mut usize,
    ) -> u32;
    fn proxy_send_local_response(
        status_code: u32,
        status_code_details_data: *const u8,
        status_code_details_size: usize,
        body_data: *const u8,
        body_size: usize,
        headers_data: *const u8,
        headers_size: usize,
        grpc_status: i32,
    ) -> u32;
    fn proxy_define_metric(metric_type: u32, name_data: *const u8, name_size: usize, return_id: *mut u32) -> u32;
    fn proxy_increment_metric(metric_id: u32, offset: i64) -> u32;
    fn proxy_set_tick_period_milliseconds(period: u32) -> u32;
}

fn check(status: u32) -> Result<(), u32> {
    if status == STATUS_OK {
        Ok(())
    } else {
        Err(status)
    }
}

/// Takes ownership of a buffer the host allocated through the SDK's
/// `proxy_on_memory_allocate` (a boxed slice of exactly `size` bytes).
///
/// # Safety
/// `data` must be null or a pointer the host got from
/// `proxy_on_memory_allocate(size)`.
unsafe fn host_buffer(data: *mut u8, size: usize) -> Vec<u8> {
    if data.is_null() {
        Vec::new()
    } else {
        Vec::from_raw_parts(data, size, size)
    }
}

/// Logs a message; a failure to log is ignored (there is nowhere to report it).
pub fn log(level: u32, message: &str) {
    // SAFETY: pointer and length describe a live &str.
    unsafe {
        proxy_log(level, message.as_ptr(), message.len());
    }
}

/// The plugin configuration bytes (empty when none was given).
pub fn plugin_configuration() -> Result<Vec<u8>, u32> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: out-pointers are valid; the host allocates the result with
    // the SDK's allocator, which `host_buffer` takes back.
    let status = unsafe { proxy_get_buffer_bytes(BUFFER_PLUGIN_CONFIGURATION, 0, usize::MAX, &mut data, &mut size) };
    match status {
        STATUS_OK => Ok(unsafe { host_buffer(data, size) }),
        STATUS_NOT_FOUND => Ok(Vec::new()),
        other => Err(other),
    }
}

/// The request headers in proxy-wasm pairs encoding
/// (decode with `jwt_scopes_core::pairs::parse`).
pub fn request_header_pairs() -> Result<Vec<u8>, u32> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: as in `plugin_configuration`.
    check(unsafe { proxy_get_header_map_pairs(MAP_HTTP_REQUEST_HEADERS, &mut data, &mut size) })?;
    Ok(unsafe { host_buffer(data, size) })
}

/// The value of a request header (the first, when there are several);
/// `Ok(None)` when it is absent.
pub fn request_header(name: &[u8]) -> Result<Option<Vec<u8>>, u32> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: as in `plugin_configuration`; `name` is a live slice.
    let status = unsafe {
        proxy_get_header_map_value(
            MAP_HTTP_REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            &mut data,
            &mut size,
        )
    };
    match status {
        STATUS_OK => Ok(Some(unsafe { host_buffer(data, size) })),
        STATUS_NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Removes every value of a request header.
pub fn remove_request_header(name: &[u8]) -> Result<(), u32> {
    // SAFETY: pointer and length describe a live slice.
    check(unsafe { proxy_remove_header_map_value(MAP_HTTP_REQUEST_HEADERS, name.as_ptr(), name.len()) })
}

/// Replaces every request header (pseudo-headers included) with `pairs`
/// (pairs encoding).
#[cfg_attr(not(feature = "batch-headers"), allow(dead_code))]
pub fn set_request_header_pairs(pairs: &[u8]) -> Result<(), u32> {
    // SAFETY: pointer and length describe a live slice.
    check(unsafe { proxy_set_header_map_pairs(MAP_HTTP_REQUEST_HEADERS, pairs.as_ptr(), pairs.len()) })
}

/// Adds a request header value.
pub fn add_request_header(name: &str, value: &str) -> Result<(), u32> {
    // SAFETY: pointers and lengths describe live strings.
    check(unsafe {
        proxy_add_header_map_value(
            MAP_HTTP_REQUEST_HEADERS,
            name.as_ptr(),
            name.len(),
            value.as_ptr(),
            value.len(),
        )
    })
}

/// A property of the stream; `path` is the NUL-joined path.
/// `Ok(None)` when the host has no such property.
pub fn property(path: &[u8]) -> Result<Option<Vec<u8>>, u32> {
    let mut data = null_mut();
    let mut size = 0;
    // SAFETY: as in `plugin_configuration`.
    let status = unsafe { proxy_get_property(path.as_ptr(), path.len(), &mut data, &mut size) };
    match status {
        STATUS_OK => Ok(Some(unsafe { host_buffer(data, size) })),
        STATUS_NOT_FOUND => Ok(None),
        other => Err(other),
    }
}

/// Sends a local reply instead of forwarding the request. `headers` is in
/// pairs encoding.
pub fn send_local_response(status: u32, details: &str, body: &[u8], headers: &[u8]) -> Result<(), u32> {
    // SAFETY: pointers and lengths describe live slices.
    check(unsafe {
        proxy_send_local_response(
            status,
            details.as_ptr(),
            details.len(),
            body.as_ptr(),
            body.len(),
            headers.as_ptr(),
            headers.len(),
            -1,
        )
    })
}

/// Defines (or finds) a counter; Envoy shows it on /stats.
pub fn define_counter(name: &str) -> Result<u32, u32> {
    let mut id = 0;
    // SAFETY: pointer and length describe a live &str; `id` is a valid out-pointer.
    check(unsafe { proxy_define_metric(METRIC_COUNTER, name.as_ptr(), name.len(), &mut id) })?;
    Ok(id)
}

/// Adds to a counter; failures are ignored (a metric must never fail a request).
pub fn increment(id: u32, by: u64) {
    if by > 0 {
        // SAFETY: plain values.
        unsafe {
            proxy_increment_metric(id, i64::try_from(by).unwrap_or(i64::MAX));
        }
    }
}

/// Asks for `on_tick` on the root context every `period_ms`.
pub fn set_tick_period_ms(period_ms: u32) -> Result<(), u32> {
    // SAFETY: a plain value.
    check(unsafe { proxy_set_tick_period_milliseconds(period_ms) })
}
