//! `jwt_scopes` as an Envoy dynamic module (`envoy.filters.http.dynamic_modules`):
//! the native build of the filter whose proxy-wasm build is `filter/`.
//!
//! Both builds run the same request handler,
//! [`jwt_scopes_core::request::handle_request`]; this crate is only the
//! [`Host`] over Envoy's dynamic-modules ABI, plus the hooks Envoy calls:
//! - `config_new` parses the same plugin configuration JSON the wasm module
//!   gets (`filter_config`, a `google.protobuf.StringValue`, or a `Struct`,
//!   which Envoy hands over as JSON text) and defines the counters. An
//!   invalid configuration is logged and refused (null), so Envoy refuses
//!   the configuration, as it does when the wasm module's `on_configure`
//!   fails.
//! - `request_headers` strips client headers, adds the identity headers from
//!   the verified claims, or refuses the request with a local reply. The
//!   claims come from the payload jwt_authn forwards in a header, trusted
//!   only when jwt_authn's metadata says it verified that payload (see
//!   [`claims`]: Envoy 1.40's ABI cannot read jwt_authn's nested metadata).
//! - every other hook Envoy requires is a no-op.
//!
//! The same module has a second filter, `filter_name: sign_guard` ([`guard`]):
//! the upstream filter of every Lattice cluster that refuses with 503 what
//! `aws_request_signing` left unsigned, as the wasm module's root context
//! `sign_guard` does. With both native, an Envoy loads no V8 at all.
//!
//! Counters are named as in the wasm build ([`Counter::name`]) under the
//! module's metrics namespace (`dynamicmodulescustom.` by default, where the
//! wasm build shows `wasmcustom.`). They are plain atomic adds in Envoy,
//! so, unlike the wasm build, nothing is batched.
//!
//! # Why the FFI is hand-written ([`abi`])
//! No Rust SDK for Envoy dynamic modules is published on crates.io: Envoy's
//! own SDK lives in the Envoy repository, unreleased and tied to the Envoy
//! commit it ships with. The few declarations used here were transcribed
//! from Envoy's `abi.h` and checked against the Envoy 1.40.0 binary.
//!
//! # Tied to Envoy 1.40
//! This module speaks the dynamic-modules ABI of Envoy 1.40 (ABI version
//! `v0.2.0`, [`abi::ABI_VERSION`]), exports every hook that version requires,
//! and must run in that Envoy (or one promising compatibility with it). The
//! wasm module, on the proxy-wasm ABI, is portable across Envoy versions.
//!
//! # Never unwinding into Envoy
//! A panic crossing the FFI would abort the whole proxy (in wasm only the VM
//! died). The code is written not to panic (the workspace denies
//! unwrap/expect/panic), and every hook body also runs under
//! [`std::panic::catch_unwind`]: a panic while handling a request refuses it
//! with 500; a panic while reading the configuration refuses the
//! configuration. Catching needs `panic = "unwind"`: build with the `native`
//! profile, `cargo build --profile native -p jwt-scopes-native`
//! (`target/native/libjwt_scopes_native.so`).

#![warn(unsafe_op_in_unsafe_fn)]

pub mod abi;
pub mod claims;
mod envoy;
pub mod guard;

use abi::*;
use claims::{Payload, PayloadKey};
use envoy::{envoy_slice, log, module_buffer};
use guard::GuardConfig;
use jwt_scopes_core::config::JWT_AUTHN_NAMESPACE;
use jwt_scopes_core::mapping::Refusal;
use jwt_scopes_core::request::REFUSAL_DETAILS;
use jwt_scopes_core::signature::{check_configuration, GUARD_NAME};
use jwt_scopes_core::{handle_request, Config, Counter, Host, HostError, Output, Verdict};
use std::cell::RefCell;
use std::panic::{catch_unwind, AssertUnwindSafe};
use std::ptr::{null, null_mut};

/// The `filter_name` of the identity filter (as the wasm module's
/// `root_id`). The module's other filter is the signing guard,
/// [`GUARD_NAME`]; any other name is refused.
pub const FILTER_NAME: &str = "jwt_scopes";

/// The module's part of a filter configuration: read by every worker at
/// once, and dropped on whichever thread releases Envoy's last reference,
/// hence `Send + Sync` (checked below).
pub struct FilterConfig {
    config: Config,
    payload_keys: Vec<PayloadKey>,
    /// Envoy's counter ids, in `Counter::ALL` order.
    counters: [usize; Counter::ALL.len()],
}

/// The module's pointer for a filter configuration (and for each of its
/// streams): which filter, configured. Boxed once per configuration, so the
/// variants' sizes do not matter.
#[allow(clippy::large_enum_variant)]
pub enum ModuleConfig {
    Scopes(FilterConfig),
    Guard(GuardConfig),
}

const _: () = {
    const fn send_and_sync<T: Send + Sync>() {}
    send_and_sync::<FilterConfig>();
    send_and_sync::<ModuleConfig>();
};

impl FilterConfig {
    /// Fails when the payload keys do not suit the native build (see
    /// [`claims::payload_keys`]).
    pub fn new(config: Config, counters: [usize; Counter::ALL.len()]) -> Result<FilterConfig, String> {
        Ok(FilterConfig {
            payload_keys: claims::payload_keys(&config)?,
            config,
            counters,
        })
    }

    pub fn config(&self) -> &Config {
        &self.config
    }

    pub fn payload_keys(&self) -> &[PayloadKey] {
        &self.payload_keys
    }

    fn counter_id(&self, counter: Counter) -> Option<usize> {
        self.counters.get(counter as usize).copied()
    }
}

/// A filter of this module, by `filter_name`, with its configuration read
/// (once per configuration: the variants' sizes do not matter).
#[derive(Debug)]
#[allow(clippy::large_enum_variant)]
pub enum Parsed {
    /// `jwt_scopes`: the identity filter.
    Scopes(Config),
    /// `sign_guard`: the signing guard (it takes no configuration).
    Guard,
}

/// What `config_new` checks before touching Envoy: the filter name and the
/// plugin configuration. The error is the message to log.
pub fn parse_config(filter_name: &[u8], bytes: &[u8]) -> Result<Parsed, String> {
    if filter_name == FILTER_NAME.as_bytes() {
        Config::from_json(bytes).map(Parsed::Scopes).map_err(|e| e.to_string())
    } else if filter_name == GUARD_NAME.as_bytes() {
        check_configuration(bytes).map(|()| Parsed::Guard)
    } else {
        Err(format!(
            "jwt_scopes: unknown filter_name `{}`: this module has `{FILTER_NAME}` and `{GUARD_NAME}`",
            String::from_utf8_lossy(filter_name).escape_debug()
        ))
    }
}

/// The request-headers status Envoy expects for a verdict.
pub fn headers_status(verdict: Verdict) -> envoy_dynamic_module_type_on_http_filter_request_headers_status {
    match verdict {
        Verdict::Continue => envoy_dynamic_module_type_on_http_filter_request_headers_status_Continue,
        // The local reply ends the stream; the request never goes upstream.
        Verdict::Stop => envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration,
    }
}

thread_local! {
    /// The output buffer, reused across the requests of a worker thread.
    static OUTPUT: RefCell<Output> = RefCell::new(Output::default());
}

// ----------------------------------------------------------------------------
// The Host over the ABI
// ----------------------------------------------------------------------------

const REQUEST_HEADERS: envoy_dynamic_module_type_http_header_type =
    envoy_dynamic_module_type_http_header_type_RequestHeader;

/// One stream's request, as the request handler sees it.
struct NativeHost<'c> {
    /// Envoy's filter: valid for the whole hook.
    filter: envoy_dynamic_module_type_http_filter_envoy_ptr,
    config: Option<&'c FilterConfig>,
    /// A request header was removed or added (the route must be recomputed).
    headers_changed: bool,
    /// The request carries a payload header (removed once it is handled).
    payload_header_seen: bool,
    /// A local reply was sent.
    replied: bool,
}

impl<'c> NativeHost<'c> {
    fn payload_keys(&self) -> &'c [PayloadKey] {
        self.config.map(FilterConfig::payload_keys).unwrap_or_default()
    }

    /// The keys jwt_authn wrote in its namespace of the dynamic metadata:
    /// the payload keys of the tokens it verified. Valid until the hook
    /// returns.
    fn verified_payload_keys(&self) -> Vec<&[u8]> {
        let namespace = module_buffer(JWT_AUTHN_NAMESPACE.as_bytes());
        let dynamic = envoy_dynamic_module_type_metadata_source_Dynamic;
        // SAFETY: `filter` is Envoy's live filter; the namespace is a live
        // slice for the call.
        let count =
            unsafe { envoy_dynamic_module_callback_http_get_metadata_keys_count(self.filter, dynamic, namespace) };
        if count == 0 {
            return Vec::new();
        }
        let mut keys = vec![envoy_dynamic_module_type_envoy_buffer { ptr: null(), length: 0 }; count];
        // SAFETY: `keys` has room for the `count` entries Envoy reported;
        // nothing changes the metadata in between (same thread).
        let read = unsafe {
            envoy_dynamic_module_callback_http_get_metadata_keys(self.filter, dynamic, namespace, keys.as_mut_ptr())
        };
        if !read {
            return Vec::new();
        }
        // SAFETY: the keys point into the stream's metadata, which nothing
        // changes before the hook returns.
        keys.iter().map(|k| unsafe { envoy_slice(k.ptr, k.length) }).collect()
    }

    /// The only value of request header `name`: None when absent, an
    /// error when it has several.
    fn single_header(&self, name: &str) -> Result<Option<&[u8]>, HostError> {
        let mut value = envoy_dynamic_module_type_envoy_buffer { ptr: null(), length: 0 };
        let mut count = 0usize;
        // SAFETY: `filter` is Envoy's live filter; the name is a live slice;
        // `value` and `count` are valid out-pointers.
        let found = unsafe {
            envoy_dynamic_module_callback_http_get_header(
                self.filter,
                REQUEST_HEADERS,
                module_buffer(name.as_bytes()),
                &mut value,
                0,
                &mut count,
            )
        };
        match (found, count) {
            (false, 0) => Ok(None),
            // SAFETY: the value points into the header map, which nothing
            // changes before the caller is done with it (it copies it).
            (true, 1) => Ok(Some(unsafe { envoy_slice(value.ptr, value.length) })),
            _ => Err(HostError::new(
                "the forwarded payload header has several values (a client sent its own)",
            )),
        }
    }

    /// Removes the payload headers: nothing upstream may see them.
    fn remove_payload_headers(&mut self) -> Result<(), HostError> {
        for key in self.payload_keys() {
            self.remove_request_header(key.header.as_bytes())?;
        }
        Ok(())
    }

    /// Lets the router match again with the headers as the filter left them
    /// (jwt_authn has usually resolved the route already). The wasm build
    /// gets the same from Envoy on each header change.
    fn clear_route_cache(&self) {
        // SAFETY: `filter` is Envoy's live filter.
        unsafe { envoy_dynamic_module_callback_http_clear_route_cache(self.filter) }
    }

    /// The reply after a panic: 500, unless a reply was already sent.
    fn refuse_after_panic(&mut self) {
        log(envoy_dynamic_module_type_log_level_Error, || {
            "jwt_scopes: the filter panicked; the request is refused with 500".into()
        });
        if !self.replied {
            self.count(Counter::Refused, 1);
            self.refuse(&Refusal::internal("the filter failed".into()));
        }
    }
}

impl Host for NativeHost<'_> {
    type Claims = Payload;

    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError> {
        let unreadable = HostError::new("the request headers could not be read");
        // SAFETY: `filter` is Envoy's live filter.
        let size = unsafe { envoy_dynamic_module_callback_http_get_headers_size(self.filter, REQUEST_HEADERS) };
        // A request always has pseudo-headers: 0 means there is no header map.
        if size == 0 {
            return Err(unreadable);
        }
        let empty = envoy_dynamic_module_type_envoy_http_header {
            key_ptr: null(),
            key_length: 0,
            value_ptr: null(),
            value_length: 0,
        };
        let mut headers = vec![empty; size];
        // SAFETY: `headers` has room for `size` entries, the number Envoy
        // just reported; nothing changes the map in between (same thread).
        let read = unsafe {
            envoy_dynamic_module_callback_http_get_headers(self.filter, REQUEST_HEADERS, headers.as_mut_ptr())
        };
        if !read {
            return Err(unreadable);
        }
        let keys = self.payload_keys();
        for header in &headers {
            // SAFETY: the names point into the header map, unchanged while
            // `visit` runs (the handler removes only after visiting).
            let name = unsafe { envoy_slice(header.key_ptr, header.key_length) };
            // The payload headers are not the client's: not stripped as
            // client headers (nor counted), removed after the request.
            if claims::is_payload_header(keys, name) {
                self.payload_header_seen = true;
            } else {
                visit(name);
            }
        }
        Ok(())
    }

    fn remove_request_header(&mut self, name: &[u8]) -> Result<(), HostError> {
        // There is no remove call: `set_header` with an empty (null) value
        // removes every value of the header (`HeaderMap::remove`) and
        // leaves no empty header behind.
        let no_value = envoy_dynamic_module_type_module_buffer { ptr: null(), length: 0 };
        // SAFETY: `filter` is Envoy's live filter; the name is a live slice.
        let done = unsafe {
            envoy_dynamic_module_callback_http_set_header(self.filter, REQUEST_HEADERS, module_buffer(name), no_value)
        };
        self.headers_changed = true;
        if done {
            Ok(())
        } else {
            Err(HostError::new("a client header could not be removed"))
        }
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        // SAFETY: `filter` is Envoy's live filter; name and value are live
        // strings. (Envoy refuses an empty value; the core never makes one.)
        let done = unsafe {
            envoy_dynamic_module_callback_http_add_header(
                self.filter,
                REQUEST_HEADERS,
                module_buffer(name.as_bytes()),
                module_buffer(value.as_bytes()),
            )
        };
        self.headers_changed = true;
        if done {
            Ok(())
        } else {
            Err(HostError::new("an identity header could not be added"))
        }
    }

    fn verified_claims(&mut self) -> Result<Option<Payload>, HostError> {
        let verified = self.verified_payload_keys();
        claims::verified_claims(self.payload_keys(), &verified, |name| self.single_header(name))
    }

    fn count(&mut self, counter: Counter, n: u64) {
        let Some(id) = self.config.and_then(|c| c.counter_id(counter)) else {
            return;
        };
        if n == 0 {
            return;
        }
        // SAFETY: `filter` is Envoy's live filter; the counter was defined
        // on this stream's configuration, without labels.
        unsafe {
            envoy_dynamic_module_callback_http_filter_increment_counter(self.filter, id, null_mut(), 0, n);
        }
    }

    fn refuse(&mut self, refusal: &Refusal) {
        log(envoy_dynamic_module_type_log_level_Debug, || {
            format!("jwt_scopes: refused with {}: {}", refusal.status, refusal.reason)
        });
        let mut headers: Vec<envoy_dynamic_module_type_module_http_header> = refusal
            .reply_headers()
            .map(|(name, value)| envoy_dynamic_module_type_module_http_header {
                key_ptr: name.as_ptr().cast(),
                key_length: name.len(),
                value_ptr: value.as_ptr().cast(),
                value_length: value.len(),
            })
            .collect();
        let body = refusal.reply_body();
        // SAFETY: `filter` is Envoy's live filter; headers, body and details
        // are live for the call (Envoy copies them).
        unsafe {
            envoy_dynamic_module_callback_http_send_response(
                self.filter,
                refusal.status,
                headers.as_mut_ptr(),
                headers.len(),
                module_buffer(body.as_bytes()),
                module_buffer(REFUSAL_DETAILS.as_bytes()),
            );
        }
        self.replied = true;
    }
}

fn on_request_headers(host: &mut NativeHost<'_>) -> Verdict {
    let config = host.config.map(FilterConfig::config);
    let mut verdict = OUTPUT.with(|cell| match cell.try_borrow_mut() {
        Ok(mut out) => handle_request(config, host, &mut out),
        Err(_) => handle_request(config, host, &mut Output::default()),
    });
    if verdict == Verdict::Continue && host.payload_header_seen && host.remove_payload_headers().is_err() {
        // Fail closed: the payload header must not go upstream.
        host.count(Counter::Refused, 1);
        host.refuse(&Refusal::internal(
            "the forwarded payload header could not be removed".into(),
        ));
        verdict = Verdict::Stop;
    }
    if verdict == Verdict::Continue && host.headers_changed {
        host.clear_route_cache();
    }
    verdict
}

fn define_counters(
    config_envoy_ptr: envoy_dynamic_module_type_http_filter_config_envoy_ptr,
) -> Result<[usize; Counter::ALL.len()], String> {
    let mut ids = [0; Counter::ALL.len()];
    for (id, counter) in ids.iter_mut().zip(Counter::ALL) {
        // SAFETY: `config_envoy_ptr` is Envoy's configuration, live during
        // config_new (the only time counters may be defined); the name is a
        // live static string; no labels; `id` is a valid out-pointer.
        let result = unsafe {
            envoy_dynamic_module_callback_http_filter_config_define_counter(
                config_envoy_ptr,
                module_buffer(counter.name().as_bytes()),
                null_mut(),
                0,
                id,
            )
        };
        if result != envoy_dynamic_module_type_metrics_result_Success {
            return Err(format!(
                "jwt_scopes: cannot define the counter {} (result {result})",
                counter.name()
            ));
        }
    }
    Ok(ids)
}

// ----------------------------------------------------------------------------
// Hooks (called by Envoy)
// ----------------------------------------------------------------------------

/// Called once after `dlopen`: the ABI version this module was built for.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_program_init() -> envoy_dynamic_module_type_abi_version_module_ptr {
    ABI_VERSION.as_ptr().cast()
}

/// A new filter configuration (main thread). Null refuses it.
///
/// # Safety
/// Called by Envoy: `name` and `config` describe buffers valid for the call;
/// `filter_config_envoy_ptr` is Envoy's configuration.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_new(
    filter_config_envoy_ptr: envoy_dynamic_module_type_http_filter_config_envoy_ptr,
    name: envoy_dynamic_module_type_envoy_buffer,
    config: envoy_dynamic_module_type_envoy_buffer,
) -> envoy_dynamic_module_type_http_filter_config_module_ptr {
    let built = catch_unwind(|| {
        // SAFETY: Envoy's buffers, valid for the call, read (and copied
        // where kept) before it returns.
        let (name, bytes) = unsafe {
            (
                envoy_slice(name.ptr, name.length),
                envoy_slice(config.ptr, config.length),
            )
        };
        let config = match parse_config(name, bytes)? {
            Parsed::Scopes(config) => {
                let counters = define_counters(filter_config_envoy_ptr)?;
                let config = FilterConfig::new(config, counters)
                    .map_err(|e| format!("invalid jwt_scopes configuration: {e}"))?;
                ModuleConfig::Scopes(config)
            }
            Parsed::Guard => ModuleConfig::Guard(GuardConfig::new(filter_config_envoy_ptr, bytes)?),
        };
        Ok::<_, String>(Box::new(config))
    });
    let message = match built {
        Ok(Ok(config)) => return Box::into_raw(config).cast_const().cast(),
        Ok(Err(message)) => message,
        Err(_) => "jwt_scopes: panic while reading the configuration".into(),
    };
    // Returning null makes Envoy refuse the configuration.
    log(envoy_dynamic_module_type_log_level_Error, || message);
    null()
}

/// Releases a configuration from `config_new` (on whichever thread drops
/// Envoy's last reference).
///
/// # Safety
/// `filter_config_ptr` is null or a pointer from `config_new`, released once.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_config_destroy(
    filter_config_ptr: envoy_dynamic_module_type_http_filter_config_module_ptr,
) {
    if filter_config_ptr.is_null() {
        return;
    }
    // SAFETY: the pointer came from `Box::into_raw` in config_new, and
    // Envoy releases it once, after its last stream is gone.
    let config = unsafe { Box::from_raw(filter_config_ptr.cast_mut().cast::<ModuleConfig>()) };
    let _ = catch_unwind(AssertUnwindSafe(move || drop(config)));
}

/// A new stream. The stream needs nothing of its own, so its module pointer
/// is the configuration's (never null): no allocation per stream. Envoy's
/// filter holds its configuration, so the configuration outlives the stream.
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_new(
    filter_config_ptr: envoy_dynamic_module_type_http_filter_config_module_ptr,
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
) -> envoy_dynamic_module_type_http_filter_module_ptr {
    filter_config_ptr
}

/// Releases what `filter_new` made: nothing (see there).
#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_destroy(
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
) {
}

/// The request headers: for `jwt_scopes`, after jwt_authn, which has
/// forwarded the verified payload; for `sign_guard`, after
/// `aws_request_signing` (an upstream filter).
///
/// # Safety
/// `filter_envoy_ptr` is Envoy's live filter; `filter_module_ptr` is null or
/// the configuration pointer `filter_new` returned.
#[no_mangle]
pub unsafe extern "C" fn envoy_dynamic_module_on_http_filter_request_headers(
    filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _end_of_stream: bool,
) -> envoy_dynamic_module_type_on_http_filter_request_headers_status {
    // SAFETY: null or the `ModuleConfig` from config_new, which Envoy keeps
    // alive for as long as this stream.
    let config = match unsafe { filter_module_ptr.cast::<ModuleConfig>().as_ref() } {
        Some(ModuleConfig::Guard(guard)) => return guard::request_headers(filter_envoy_ptr, Some(guard)),
        Some(ModuleConfig::Scopes(config)) => Some(config),
        // Never null (see filter_new); jwt_scopes without a configuration
        // refuses every request.
        None => None,
    };
    let mut host = NativeHost {
        filter: filter_envoy_ptr,
        config,
        headers_changed: false,
        payload_header_seen: false,
        replied: false,
    };
    match catch_unwind(AssertUnwindSafe(|| on_request_headers(&mut host))) {
        Ok(verdict) => headers_status(verdict),
        Err(_) => {
            let _ = catch_unwind(AssertUnwindSafe(|| host.refuse_after_panic()));
            envoy_dynamic_module_type_on_http_filter_request_headers_status_StopIteration
        }
    }
}

// Every other hook Envoy 1.40 requires: nothing to do.

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_body(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _end_of_stream: bool,
) -> envoy_dynamic_module_type_on_http_filter_request_body_status {
    envoy_dynamic_module_type_on_http_filter_request_body_status_Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_request_trailers(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
) -> envoy_dynamic_module_type_on_http_filter_request_trailers_status {
    envoy_dynamic_module_type_on_http_filter_request_trailers_status_Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_headers(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _end_of_stream: bool,
) -> envoy_dynamic_module_type_on_http_filter_response_headers_status {
    envoy_dynamic_module_type_on_http_filter_response_headers_status_Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_body(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _end_of_stream: bool,
) -> envoy_dynamic_module_type_on_http_filter_response_body_status {
    envoy_dynamic_module_type_on_http_filter_response_body_status_Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_response_trailers(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
) -> envoy_dynamic_module_type_on_http_filter_response_trailers_status {
    envoy_dynamic_module_type_on_http_filter_response_trailers_status_Continue
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_stream_complete(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
) {
}

#[no_mangle]
#[allow(clippy::too_many_arguments)]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_callout_done(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _callout_id: u64,
    _result: envoy_dynamic_module_type_http_callout_result,
    _headers: *mut envoy_dynamic_module_type_envoy_http_header,
    _headers_size: usize,
    _body_chunks: *mut envoy_dynamic_module_type_envoy_buffer,
    _body_chunks_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_headers(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _stream_id: u64,
    _headers: *mut envoy_dynamic_module_type_envoy_http_header,
    _headers_size: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_data(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _stream_id: u64,
    _data: *const envoy_dynamic_module_type_envoy_buffer,
    _data_count: usize,
    _end_stream: bool,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_trailers(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _stream_id: u64,
    _trailers: *mut envoy_dynamic_module_type_envoy_http_header,
    _trailers_size: usize,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_complete(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _stream_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_http_stream_reset(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _stream_id: u64,
    _reason: envoy_dynamic_module_type_http_stream_reset_reason,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_scheduled(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
    _event_id: u64,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_above_write_buffer_high_watermark(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
) {
}

#[no_mangle]
pub extern "C" fn envoy_dynamic_module_on_http_filter_downstream_below_write_buffer_low_watermark(
    _filter_envoy_ptr: envoy_dynamic_module_type_http_filter_envoy_ptr,
    _filter_module_ptr: envoy_dynamic_module_type_http_filter_module_ptr,
) {
}

#[cfg(test)]
mod tests;
