//! Raw FFI for Envoy's dynamic modules ABI (`envoy.filters.http.dynamic_modules`),
//! limited to what the native `jwt_scopes` filter uses.
//!
//! Why hand-written: no Rust SDK for Envoy dynamic modules is published on
//! crates.io. Envoy's own Rust SDK lives inside the Envoy repository
//! (`source/extensions/dynamic_modules/sdk/rust`), is not released as a crate
//! and is tied to the Envoy commit it ships with; bindgen would also pull in a
//! ~750 kB header for the few calls needed here.
//!
//! Source transcribed: `source/extensions/dynamic_modules/abi/abi.h` of
//! envoyproxy/envoy (it moved there from `dynamic_modules/abi.h` in January
//! 2026). The v1.40.0 tag itself was not reachable from here; the
//! declarations below come from the newest 1.40.0-dev header available
//! (commit 4e53852609f5, 2026-08-06, ABI string "v0.1.0"). Every callback below is exported by the Envoy 1.40.0 binary
//! (build 9e5580933739775e8bce696a57a2e1bc99368f23), and since ABI v0.1.0
//! Envoy only adds to the ABI (no signature changes to released functions);
//! every declaration below was also exercised against that binary by a
//! throwaway probe module (loaded, called, results checked).
//!
//! Conventions:
//! - Event hooks (`envoy_dynamic_module_on_*`) are implemented by the module
//!   (`#[no_mangle] extern "C"` functions elsewhere); callbacks
//!   (`envoy_dynamic_module_callback_*`) are implemented by Envoy and resolved
//!   from the Envoy executable when the `.so` is `dlopen`ed.
//! - C enums are passed as 32-bit integers; they are modelled as `u32` type
//!   aliases plus constants, so that an unexpected value from Envoy is never
//!   undefined behaviour.
//! - `*_envoy_ptr` buffers are owned by Envoy and valid only until the current
//!   event hook returns (or until a header/metadata setter is called);
//!   `*_module_ptr` buffers are owned by the module and only need to live for
//!   the duration of the call.
//!
//! Names are kept identical to the C ones.

#![allow(non_camel_case_types, non_upper_case_globals, dead_code)]

use core::ffi::{c_char, c_void};

/// The ABI version of Envoy 1.40.0, returned (NUL-terminated) by
/// `envoy_dynamic_module_on_program_init`. A mismatch only logs a warning
/// ("... is deprecated ...") and the module still loads; a null return
/// unloads the module.
pub const ABI_VERSION: &[u8] = b"v0.2.0\0";

// ----------------------------------------------------------------------------
// Common types
// ----------------------------------------------------------------------------

/// `const char*`, NUL-terminated, owned by the module; must stay valid until
/// `envoy_dynamic_module_on_program_init` returns.
pub type envoy_dynamic_module_type_abi_version_module_ptr = *const c_char;
/// `const char*` into module-owned memory.
pub type envoy_dynamic_module_type_buffer_module_ptr = *const c_char;
/// `const char*` into Envoy-owned memory.
pub type envoy_dynamic_module_type_buffer_envoy_ptr = *const c_char;

/// A buffer owned by Envoy.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envoy_dynamic_module_type_envoy_buffer {
    pub ptr: envoy_dynamic_module_type_buffer_envoy_ptr,
    pub length: usize,
}

/// A buffer owned by the module.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envoy_dynamic_module_type_module_buffer {
    pub ptr: envoy_dynamic_module_type_buffer_module_ptr,
    pub length: usize,
}

/// A header owned by the module (used for local replies).
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envoy_dynamic_module_type_module_http_header {
    pub key_ptr: envoy_dynamic_module_type_buffer_module_ptr,
    pub key_length: usize,
    pub value_ptr: envoy_dynamic_module_type_buffer_module_ptr,
    pub value_length: usize,
}

/// A header owned by Envoy's header map.
#[repr(C)]
#[derive(Clone, Copy, Debug)]
pub struct envoy_dynamic_module_type_envoy_http_header {
    pub key_ptr: envoy_dynamic_module_type_buffer_envoy_ptr,
    pub key_length: usize,
    pub value_ptr: envoy_dynamic_module_type_buffer_envoy_ptr,
    pub value_length: usize,
}

/// `enum envoy_dynamic_module_type_http_header_type`.
pub type envoy_dynamic_module_type_http_header_type = u32;
pub const envoy_dynamic_module_type_http_header_type_RequestHeader: u32 = 0;
pub const envoy_dynamic_module_type_http_header_type_RequestTrailer: u32 = 1;
pub const envoy_dynamic_module_type_http_header_type_ResponseHeader: u32 = 2;
pub const envoy_dynamic_module_type_http_header_type_ResponseTrailer: u32 = 3;

/// `enum envoy_dynamic_module_type_log_level`.
pub type envoy_dynamic_module_type_log_level = u32;
pub const envoy_dynamic_module_type_log_level_Trace: u32 = 0;
pub const envoy_dynamic_module_type_log_level_Debug: u32 = 1;
pub const envoy_dynamic_module_type_log_level_Info: u32 = 2;
pub const envoy_dynamic_module_type_log_level_Warn: u32 = 3;
pub const envoy_dynamic_module_type_log_level_Error: u32 = 4;
pub const envoy_dynamic_module_type_log_level_Critical: u32 = 5;
pub const envoy_dynamic_module_type_log_level_Off: u32 = 6;

/// `enum envoy_dynamic_module_type_metrics_result`.
pub type envoy_dynamic_module_type_metrics_result = u32;
pub const envoy_dynamic_module_type_metrics_result_Success: u32 = 0;
pub const envoy_dynamic_module_type_metrics_result_MetricNotFound: u32 = 1;
pub const envoy_dynamic_module_type_metrics_result_InvalidLabels: u32 = 2;
/// Metric definition attempted outside `envoy_dynamic_module_on_http_filter_config_new`.
pub const envoy_dynamic_module_type_metrics_result_Frozen: u32 = 3;

/// `enum envoy_dynamic_module_type_metadata_source`.
pub type envoy_dynamic_module_type_metadata_source = u32;
/// The stream's dynamic metadata (where jwt_authn writes).
pub const envoy_dynamic_module_type_metadata_source_Dynamic: u32 = 0;
pub const envoy_dynamic_module_type_metadata_source_Route: u32 = 1;
pub const envoy_dynamic_module_type_metadata_source_Cluster: u32 = 2;
pub const envoy_dynamic_module_type_metadata_source_Host: u32 = 3;
pub const envoy_dynamic_module_type_metadata_source_HostLocality: u32 = 4;

/// `enum envoy_dynamic_module_type_http_callout_result` (only needed for the
/// signature of a hook that must be exported).
pub type envoy_dynamic_module_type_http_callout_result = u32;

/// `enum envoy_dynamic_module_type_http_stream_reset_reason` (only needed for
/// the signature of a hook that must be exported).
pub type envoy_dynamic_module_type_http_stream_reset_reason = u32;

// ----------------------------------------------------------------------------
// HTTP filter types
// ----------------------------------------------------------------------------

/// Envoy's `DynamicModuleHttpFilterConfig`; owned by Envoy.
pub type envoy_dynamic_module_type_http_filter_config_envoy_ptr = *mut c_void;
/// The module's filter configuration; owned by the module, released in
/// `envoy_dynamic_module_on_http_filter_config_destroy`.
pub type envoy_dynamic_module_type_http_filter_config_module_ptr = *const c_void;
/// The module's per-route configuration; owned by the module.
pub type envoy_dynamic_module_type_http_filter_per_route_config_module_ptr = *const c_void;
/// Envoy's `DynamicModuleHttpFilter` (one per stream); valid until
/// `envoy_dynamic_module_on_http_filter_destroy`.
pub type envoy_dynamic_module_type_http_filter_envoy_ptr = *mut c_void;
/// The module's per-stream filter; owned by the module, released in
/// `envoy_dynamic_module_on_http_filter_destroy`.
pub type envoy_dynamic_module_type_http_filter_module_ptr = *const c_void;

/// `enum envoy_dynamic_module_type_on_http_filter_request_headers_status`
/// (mirrors `Http::FilterHeadersStatus`).
pub type envoy_dynamic_module_type_on_http_filter_request_headers_status = u32;
pub const envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue: u32 = 0;
pub const envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration: u32 = 1;
pub const envoy_dynamic_module_type_on_http_filter_request_headers_status_ContinueAndDontEndStream: u32 = 2;
pub const envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndBuffer: u32 = 3;
pub const envoy_dynamic_module_type_on_http_filter_request_headers_status_StopAllIterationAndWatermark: u32 = 4;

/// `enum envoy_dynamic_module_type_on_http_filter_request_body_status`.
pub type envoy_dynamic_module_type_on_http_filter_request_body_status = u32;
pub const envoy_dynamic_module_type_on_http_filter_request_body_status_Continue: u32 = 0;
pub const envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndBuffer: u32 = 1;
pub const envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationAndWatermark: u32 = 2;
pub const envoy_dynamic_module_type_on_http_filter_request_body_status_StopIterationNoBuffer: u32 = 3;

/// `enum envoy_dynamic_module_type_on_http_filter_request_trailers_status`.
pub type envoy_dynamic_module_type_on_http_filter_request_trailers_status = u32;
pub const envoy_dynamic_module_type_on_http_filter_request_trailers_status_Continue: u32 = 0;
pub const envoy_dynamic_module_type_on_http_filter_request_trailers_status_StopIteration: u32 = 1;

/// `enum envoy_dynamic_module_type_on_http_filter_response_headers_status`.
pub type envoy_dynamic_module_type_on_http_filter_response_headers_status = u32;
pub const envoy_dynamic_module_type_on_http_filter_response_headers_status_Continue: u32 = 0;
pub const envoy_dynamic_module_type_on_http_filter_response_headers_status_StopIteration: u32 = 1;

/// `enum envoy_dynamic_module_type_on_http_filter_response_body_status`.
pub type envoy_dynamic_module_type_on_http_filter_response_body_status = u32;
pub const envoy_dynamic_module_type_on_http_filter_response_body_status_Continue: u32 = 0;

/// `enum envoy_dynamic_module_type_on_http_filter_response_trailers_status`.
pub type envoy_dynamic_module_type_on_http_filter_response_trailers_status = u32;
pub const envoy_dynamic_module_type_on_http_filter_response_trailers_status_Continue: u32 = 0;

// ----------------------------------------------------------------------------
// Callbacks exported by Envoy
// ----------------------------------------------------------------------------

unsafe extern "C" {
    // --- Logging (logger id `dynamic_modules`) ---

    pub fn envoy_dynamic_module_callback_log(
        level: envoy_dynamic_module_type_log_level,
        message: envoy_dynamic_module_type_module_buffer,
    );

    pub fn envoy_dynamic_module_callback_log_enabled(level: envoy_dynamic_module_type_log_level) -> bool;

    // --- Metrics ---

    /// Only succeeds while `envoy_dynamic_module_on_http_filter_config_new`
    /// runs (afterwards: `Frozen`). The counter is named
    /// `<metrics_namespace>.<name>` (namespace default `dynamicmodulescustom`).
    pub fn envoy_dynamic_module_callback_http_filter_config_define_counter(
        filter_config_envoy_ptr: envoy_dynamic_module_type_http_filter_config_envoy_ptr,
        name: envoy_dynamic_module_type_module_buffer,
        label_names: *mut envoy_dynamic_module_type_module_buffer,
        label_names_length: usize,
        counter_id_ptr: *mut usize,
    ) -> envoy_dynamic_module_type_metrics_result;

    /// Per-stream increment of a counter defined on this stream's config.
    pub fn envoy_dynamic_module_callback_http_filter_increment_counter(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        id: usize,
        label_values: *mut envoy_dynamic_module_type_module_buffer,
        label_values_length: usize,
        value: u64,
    ) -> envoy_dynamic_module_type_metrics_result;

    /// Config-level increment (no stream needed).
    pub fn envoy_dynamic_module_callback_http_filter_config_increment_counter(
        filter_config_envoy_ptr: envoy_dynamic_module_type_http_filter_config_envoy_ptr,
        id: usize,
        label_values: *mut envoy_dynamic_module_type_module_buffer,
        label_values_length: usize,
        value: u64,
    ) -> envoy_dynamic_module_type_metrics_result;

    // --- Headers ---

    /// Value number `index` of header `key`; `optional_size` (nullable)
    /// receives the number of values. False (and a null buffer) when absent
    /// or out of range.
    pub fn envoy_dynamic_module_callback_http_get_header(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        header_type: envoy_dynamic_module_type_http_header_type,
        key: envoy_dynamic_module_type_module_buffer,
        result_buffer: *mut envoy_dynamic_module_type_envoy_buffer,
        index: usize,
        optional_size: *mut usize,
    ) -> bool;

    /// All values of header `key`; `result_buffer` must hold as many entries
    /// as `envoy_dynamic_module_callback_http_get_header` reported.
    pub fn envoy_dynamic_module_callback_http_get_header_values(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        header_type: envoy_dynamic_module_type_http_header_type,
        key: envoy_dynamic_module_type_module_buffer,
        result_buffer: *mut envoy_dynamic_module_type_envoy_buffer,
    ) -> bool;

    /// Number of header entries (a repeated header counts once per value).
    pub fn envoy_dynamic_module_callback_http_get_headers_size(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        header_type: envoy_dynamic_module_type_http_header_type,
    ) -> usize;

    /// Fills `result_headers` (room for `get_headers_size` entries).
    pub fn envoy_dynamic_module_callback_http_get_headers(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        header_type: envoy_dynamic_module_type_http_header_type,
        result_headers: *mut envoy_dynamic_module_type_envoy_http_header,
    ) -> bool;

    /// Appends a value (`addCopy`). Returns false, adding nothing, when the
    /// value is null or EMPTY.
    pub fn envoy_dynamic_module_callback_http_add_header(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        header_type: envoy_dynamic_module_type_http_header_type,
        key: envoy_dynamic_module_type_module_buffer,
        value: envoy_dynamic_module_type_module_buffer,
    ) -> bool;

    /// Replaces all values (`setCopy`); a null or EMPTY value removes the
    /// header (every value). This is the only way to remove a header.
    pub fn envoy_dynamic_module_callback_http_set_header(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        header_type: envoy_dynamic_module_type_http_header_type,
        key: envoy_dynamic_module_type_module_buffer,
        value: envoy_dynamic_module_type_module_buffer,
    ) -> bool;

    /// Drops the route cached for this stream, so that the router matches
    /// again with the headers as modified (the route may already have been
    /// resolved by an earlier filter, e.g. jwt_authn's per-route lookup).
    pub fn envoy_dynamic_module_callback_http_clear_route_cache(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    );

    // --- Local reply ---

    /// `sendLocalReply(status, body, headers, grpc_status = none, details)`.
    /// Empty `details` becomes "dynamic_module". Headers are added with
    /// `addCopy`. The hook should then return `StopIteration`.
    pub fn envoy_dynamic_module_callback_http_send_response(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        status_code: u32,
        headers_vector: *mut envoy_dynamic_module_type_module_http_header,
        headers_vector_size: usize,
        body: envoy_dynamic_module_type_module_buffer,
        details: envoy_dynamic_module_type_module_buffer,
    );

    // --- Metadata (one level: namespace -> key -> scalar or list of scalars) ---

    pub fn envoy_dynamic_module_callback_http_get_metadata_string(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
        key: envoy_dynamic_module_type_module_buffer,
        result: *mut envoy_dynamic_module_type_envoy_buffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_metadata_number(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
        key: envoy_dynamic_module_type_module_buffer,
        result: *mut f64,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_metadata_bool(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
        key: envoy_dynamic_module_type_module_buffer,
        result: *mut bool,
    ) -> bool;

    /// Number of keys in namespace `ns` (0 when absent).
    pub fn envoy_dynamic_module_callback_http_get_metadata_keys_count(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
    ) -> usize;

    /// The keys of namespace `ns` (room for `keys_count` entries).
    pub fn envoy_dynamic_module_callback_http_get_metadata_keys(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
        result_buffer_vector: *mut envoy_dynamic_module_type_envoy_buffer,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_metadata_namespaces_count(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
    ) -> usize;

    pub fn envoy_dynamic_module_callback_http_get_metadata_namespaces(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        result_buffer_vector: *mut envoy_dynamic_module_type_envoy_buffer,
    ) -> bool;

    /// False unless `ns`/`key` holds a ListValue.
    pub fn envoy_dynamic_module_callback_http_get_metadata_list_size(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
        key: envoy_dynamic_module_type_module_buffer,
        result: *mut usize,
    ) -> bool;

    pub fn envoy_dynamic_module_callback_http_get_metadata_list_string(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        metadata_source: envoy_dynamic_module_type_metadata_source,
        ns: envoy_dynamic_module_type_module_buffer,
        key: envoy_dynamic_module_type_module_buffer,
        index: usize,
        result: *mut envoy_dynamic_module_type_envoy_buffer,
    ) -> bool;

    // --- Filter state ---

    /// A filter-state object under `key` that is a `Router::StringAccessor`
    /// (what `set_filter_state` / `set_filter_state_bytes` create), as bytes.
    pub fn envoy_dynamic_module_callback_http_get_filter_state_bytes(
        filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
        key: envoy_dynamic_module_type_module_buffer,
        result: *mut envoy_dynamic_module_type_envoy_buffer,
    ) -> bool;
}
