//! `jwt_scopes`: the proxy-wasm glue around `jwt_scopes_core`.
//!
//! Per request, in `on_http_request_headers` (after jwt_authn):
//! 1. remove client headers that only the filter may set (every `x-` header
//!    outside the allowlist, and `authorization`);
//! 2. read jwt_authn's verified payload from the stream's dynamic metadata
//!    (one `get_property("metadata")` call, typed protobuf);
//! 3. add the identity headers, or refuse the request.
//!
//! The filter never panics: every host call goes through `host`, which
//! returns errors, and every error fails closed (the request is refused).
//!
//! The same module holds a second root context, `sign_guard` (see `guard`),
//! selected with `root_id: sign_guard`: the upstream filter that refuses
//! any request `aws_request_signing` did not sign.

mod guard;
mod host;

use jwt_scopes_core::mapping::Refusal;
use jwt_scopes_core::request::REFUSAL_DETAILS;
use jwt_scopes_core::{handle_request, pairs, Config, Counter, Host, HostError, Output, Verdict};
use proxy_wasm::traits::{Context, HttpContext, RootContext};
use proxy_wasm::types::{Action, ContextType};
use std::cell::{Cell, RefCell};
use std::rc::Rc;

proxy_wasm::main! {{
    proxy_wasm::set_root_context(|_| -> Box<dyn RootContext> { Box::new(Root::Unconfigured) });
}}

thread_local! {
    /// The output buffer, reused across requests (the VM is single-threaded).
    static OUTPUT: RefCell<Output> = RefCell::new(Output::default());
}

/// How often counts kept in the VM are added to Envoy's counters. A host
/// call per counter per request cost more than the rest of the filter's
/// work (see the README's benchmark), so requests only add to these cells.
const FLUSH_PERIOD_MS: u32 = 200;

thread_local! {
    /// Pending counts, in `Counter::ALL` order.
    static PENDING: [Cell<u64>; 6] = Default::default();
}

fn count(counter: Counter, n: u64) {
    PENDING.with(|pending| {
        if let Some(cell) = pending.get(counter as usize) {
            cell.set(cell.get().saturating_add(n));
        }
    });
}

/// Envoy's ids of the counters, in `Counter::ALL` order.
struct Metrics([u32; 6]);

impl Metrics {
    fn define() -> Result<Metrics, u32> {
        let mut ids = [0; 6];
        for (id, counter) in ids.iter_mut().zip(Counter::ALL) {
            *id = host::define_counter(counter.name())?;
        }
        Ok(Metrics(ids))
    }

    /// Adds the pending counts to Envoy's counters (`Counter::ALL` order:
    /// `requests` last).
    fn flush(&self) {
        PENDING.with(|pending| {
            for (id, cell) in self.0.iter().zip(pending) {
                host::increment(*id, cell.take());
            }
        });
    }
}

/// A root context, by the plugin's `root_id` (read in `on_configure`).
enum Root {
    /// Before `on_configure` succeeded: every stream is refused.
    Unconfigured,
    /// `root_id: jwt_scopes` (or none): the identity filter.
    Scopes { config: Rc<Config>, metrics: Metrics },
    /// `root_id: sign_guard`: the upstream guard after SigV4 signing.
    Guard(guard::Guard),
}

impl Context for Root {}

impl RootContext for Root {
    fn on_configure(&mut self, _plugin_configuration_size: usize) -> bool {
        let configured = host::property(b"plugin_root_id")
            .map_err(|status| format!("jwt_scopes: cannot read the plugin's root_id (status {status})"))
            .and_then(|root_id| {
                let configuration = host::plugin_configuration()
                    .map_err(|status| format!("jwt_scopes: cannot read the plugin configuration (status {status})"))?;
                match root_id.as_deref().unwrap_or_default() {
                    b"" | b"jwt_scopes" => configure_scopes(&configuration),
                    b"sign_guard" => guard::Guard::configure(&configuration).map(Root::Guard),
                    other => Err(format!(
                        "jwt_scopes: unknown root_id `{}`: this module has `jwt_scopes` and `sign_guard`",
                        String::from_utf8_lossy(other).escape_debug()
                    )),
                }
            });
        match configured {
            Ok(root) => {
                *self = root;
                true
            }
            Err(message) => {
                // Returning false makes Envoy refuse the configuration.
                host::log(host::LOG_ERROR, &message);
                false
            }
        }
    }

    fn on_tick(&mut self) {
        if let Root::Scopes { metrics, .. } = self {
            metrics.flush();
        }
    }

    fn create_http_context(&self, _context_id: u32) -> Option<Box<dyn HttpContext>> {
        // Never None: the SDK panics on None. Without a configuration the
        // stream refuses every request (fail closed).
        Some(match self {
            Root::Unconfigured => Box::new(Stream { config: None }),
            Root::Scopes { config, .. } => Box::new(Stream {
                config: Some(config.clone()),
            }),
            Root::Guard(guard) => Box::new(guard.stream()),
        })
    }

    fn get_type(&self) -> Option<ContextType> {
        Some(ContextType::HttpContext)
    }
}

/// The identity filter's root: its configuration, counters and flush timer.
fn configure_scopes(configuration: &[u8]) -> Result<Root, String> {
    let config = Config::from_json(configuration).map_err(|e| e.to_string())?;
    let metrics = Metrics::define().map_err(|status| format!("jwt_scopes: cannot define metrics (status {status})"))?;
    host::set_tick_period_ms(FLUSH_PERIOD_MS)
        .map_err(|status| format!("jwt_scopes: cannot set the counter flush timer (status {status})"))?;
    Ok(Root::Scopes {
        config: Rc::new(config),
        metrics,
    })
}

struct Stream {
    config: Option<Rc<Config>>,
}

impl Context for Stream {}

impl HttpContext for Stream {
    fn on_http_request_headers(&mut self, _num_headers: usize, _end_of_stream: bool) -> Action {
        let mut host = WasmHost::default();
        let verdict = OUTPUT.with(|cell| match cell.try_borrow_mut() {
            Ok(mut out) => handle_request(self.config.as_deref(), &mut host, &mut out),
            Err(_) => handle_request(None, &mut host, &mut Output::default()),
        });
        match verdict {
            Verdict::Continue => Action::Continue,
            // The local reply ends the stream; the request never goes upstream.
            Verdict::Stop => Action::Pause,
        }
    }
}

/// The proxy-wasm side of [`Host`]: each method is one host call (the
/// header names come from one call returning every header, kept for
/// `update_request_headers`).
#[derive(Default)]
struct WasmHost {
    /// The request headers in pairs encoding, as read for the names.
    #[cfg_attr(not(feature = "batch-headers"), allow(dead_code))]
    headers: Vec<u8>,
}

impl Host for WasmHost {
    type Claims = Vec<u8>;

    fn request_header_names(&mut self, visit: &mut dyn FnMut(&[u8])) -> Result<(), HostError> {
        self.headers =
            host::request_header_pairs().map_err(|_| HostError::new("the request headers could not be read"))?;
        let headers =
            pairs::parse(&self.headers).map_err(|_| HostError::new("the request headers could not be decoded"))?;
        for (name, _) in headers {
            visit(name);
        }
        Ok(())
    }

    /// One host call for every change: the headers read for the names,
    /// less the removed ones, plus the added ones, replace the map.
    #[cfg(feature = "batch-headers")]
    fn update_request_headers(
        &mut self,
        remove: &[Vec<u8>],
        add: &mut dyn Iterator<Item = (&str, &str)>,
    ) -> Result<(), HostError> {
        let headers =
            pairs::parse(&self.headers).map_err(|_| HostError::new("the request headers could not be decoded"))?;
        let mut all: Vec<(&[u8], &[u8])> = headers
            .into_iter()
            .filter(|(name, _)| !remove.iter().any(|r| r.eq_ignore_ascii_case(name)))
            .collect();
        let before = all.len();
        all.extend(add.map(|(name, value)| (name.as_bytes(), value.as_bytes())));
        if remove.is_empty() && all.len() == before {
            return Ok(());
        }
        host::set_request_header_pairs(&pairs::serialize(&all))
            .map_err(|_| HostError::new("the request headers could not be replaced"))
    }

    fn remove_request_header(&mut self, name: &[u8]) -> Result<(), HostError> {
        host::remove_request_header(name).map_err(|_| HostError::new("a client header could not be removed"))
    }

    fn add_request_header(&mut self, name: &str, value: &str) -> Result<(), HostError> {
        host::add_request_header(name, value).map_err(|_| HostError::new("an identity header could not be added"))
    }

    fn verified_claims(&mut self) -> Result<Option<Vec<u8>>, HostError> {
        host::property(b"metadata").map_err(|_| HostError::new("the stream's dynamic metadata could not be read"))
    }

    fn count(&mut self, counter: Counter, n: u64) {
        count(counter, n);
    }

    fn refuse(&mut self, refusal: &Refusal) {
        host::log(
            host::LOG_DEBUG,
            &format!("jwt_scopes: refused with {}: {}", refusal.status, refusal.reason),
        );
        let headers: Vec<(&[u8], &[u8])> = refusal
            .reply_headers()
            .map(|(name, value)| (name.as_bytes(), value.as_bytes()))
            .collect();
        if host::send_local_response(
            refusal.status,
            REFUSAL_DETAILS,
            refusal.reply_body().as_bytes(),
            &pairs::serialize(&headers),
        )
        .is_err()
        {
            host::log(host::LOG_ERROR, "jwt_scopes: could not send the refusal");
        }
    }
}
