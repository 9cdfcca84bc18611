//! The Envoy configuration the filter tests run: jwt_authn (local JWKS) in
//! front of the filter, in front of an upstream on loopback. Built as JSON,
//! which Envoy's YAML loader reads as is.

use crate::envoy::{filter_wasm, native_module};
use dev_idp::jwt::{AUDIENCE, ISSUER};
use serde_json::{json, Value};
use std::path::PathBuf;

/// jwt_authn's payload key in these configurations.
const PAYLOAD_KEY: &str = "jwt_payload";

/// The build of the filter a test loads.
#[derive(Debug, Clone)]
pub enum Build {
    /// jwt_scopes.wasm, in Envoy's V8.
    Wasm(PathBuf),
    /// libjwt_scopes_native.so, the Envoy dynamic module.
    Native(PathBuf),
}

impl Build {
    /// The build under test: `JWT_SCOPES_FILTER=native` selects the
    /// dynamic module (`make test` runs the filter's tests once per build),
    /// anything else the wasm module.
    pub fn under_test() -> Build {
        let found = match std::env::var("JWT_SCOPES_FILTER").as_deref() {
            Ok("native") => native_module().map(Build::Native),
            _ => filter_wasm().map(Build::Wasm),
        };
        found.unwrap_or_else(|e| panic!("{e}"))
    }

    /// The filters that run the build after jwt_authn, with the plugin
    /// configuration `config` (None: none at all).
    fn filters(&self, config: Option<&Value>) -> Vec<Value> {
        match self {
            Build::Wasm(wasm) => {
                let mut plugin = json!({
                    "name": "jwt_scopes",
                    "root_id": "jwt_scopes",
                    "failure_policy": "FAIL_RELOAD",
                    "vm_config": {
                        "runtime": "envoy.wasm.runtime.v8",
                        "code": {"local": {"filename": wasm.display().to_string()}},
                    },
                });
                if let Some(config) = config {
                    plugin["configuration"] = json!({
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": config.to_string(),
                    });
                }
                vec![json!({
                    "name": "envoy.filters.http.wasm",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                        "config": plugin,
                    },
                })]
            }
            // As envoy-gen renders it (envoy/templates/frontend.yaml.j2).
            Build::Native(module) => {
                let mut filter = json!({
                    "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
                    "dynamic_module_config": {
                        "name": "jwt_scopes_native",
                        "module": {"local": {"filename": module.display().to_string()}},
                        "metrics_namespace": "wasmcustom",
                    },
                    "filter_name": "jwt_scopes",
                });
                if let Some(config) = config {
                    filter["filter_config"] = json!({
                        "@type": "type.googleapis.com/google.protobuf.StringValue",
                        "value": config.to_string(),
                    });
                }
                vec![json!({"name": "envoy.filters.http.dynamic_modules", "typed_config": filter})]
            }
        }
    }
}

/// The header jwt_authn forwards the verified payload in, for the native
/// build (`jwt_scopes_core::config::payload_header_name`).
pub fn native_payload_header() -> String {
    jwt_scopes_core::config::payload_header_name(PAYLOAD_KEY).unwrap_or_default()
}

/// Paths under this prefix accept requests without a token (jwt_authn
/// `allow_missing`); every other path requires a valid token.
pub const OPTIONAL_PREFIX: &str = "/optional";

pub struct Frontend<'a> {
    pub jwks: &'a str,
    pub build: &'a Build,
    /// The filter's JSON configuration; None sends no configuration at all.
    pub plugin_config: Option<Value>,
    pub upstream_port: u16,
}

impl Frontend<'_> {
    pub fn render(&self) -> String {
        let mut provider = json!({
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "require_expiration": true,
            "local_jwks": {"inline_string": self.jwks},
            // Only `Authorization: Bearer`: never a token from the query
            // string (jwt_authn's default also reads `?access_token=`).
            "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        });
        match self.build {
            // As envoy-gen renders it: the wasm build reads the verified
            // payload from jwt_authn's metadata.
            Build::Wasm(_) => provider["payload_in_metadata"] = json!(PAYLOAD_KEY),
            // As envoy-gen renders it: the native build reads the verified
            // payload from the header jwt_authn forwards it in, once the
            // provider's key (holding the token's header) proves it verified.
            Build::Native(_) => {
                provider["header_in_metadata"] = json!(PAYLOAD_KEY);
                provider["forward_payload_header"] = json!(native_payload_header());
            }
        }
        let mut hcm = json!({
            "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
            "stat_prefix": "ingress",
            // Room for a token with 10,000 scopes, so that it reaches the filter.
            "common_http_protocol_options": {"max_headers_count": 200},
            "max_request_headers_kb": 256,
            "early_header_mutation_extensions": [{
                "name": "envoy.http.early_header_mutation.header_mutation",
                "typed_config": {
                    "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                    "mutations": [{"remove_on_match": {"key_matcher": {"prefix": "x-jwt-"}}}],
                },
            }],
            "route_config": {
                "virtual_hosts": [{
                    "name": "all",
                    "domains": ["*"],
                    "routes": [{"match": {"prefix": "/"}, "route": {"cluster": "upstream"}}],
                }],
            },
            "http_filters": [
                {
                    "name": "envoy.filters.http.jwt_authn",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
                        "providers": {"test": provider},
                        "rules": [
                            {
                                "match": {"path_separated_prefix": OPTIONAL_PREFIX},
                                "requires": {"requires_any": {"requirements": [
                                    {"provider_name": "test"},
                                    {"allow_missing": {}},
                                ]}},
                            },
                            {"match": {"prefix": "/"}, "requires": {"provider_name": "test"}},
                        ],
                    },
                },
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                },
            ],
        });
        // The build's filters go between jwt_authn and the router.
        if let Some(filters) = hcm["http_filters"].as_array_mut() {
            for (i, filter) in self.build.filters(self.plugin_config.as_ref()).into_iter().enumerate() {
                filters.insert(1 + i, filter);
            }
        }
        bootstrap(hcm, self.upstream_port)
    }
}

/// The bootstrap the filter tests run: `hcm` as the listener `ingress` on
/// 127.0.0.1 (ephemeral port), admin on 127.0.0.1, and the cluster
/// `upstream` at `127.0.0.1:<upstream_port>`.
pub fn bootstrap(hcm: Value, upstream_port: u16) -> String {
    json!({
        "admin": {"address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}}},
        "static_resources": {
            "listeners": [{
                "name": "ingress",
                "address": {"socket_address": {"address": "127.0.0.1", "port_value": 0}},
                "filter_chains": [{"filters": [{
                    "name": "envoy.filters.network.http_connection_manager",
                    "typed_config": hcm,
                }]}],
            }],
            "clusters": [{
                "name": "upstream",
                "type": "STATIC",
                "connect_timeout": "2s",
                "load_assignment": {
                    "cluster_name": "upstream",
                    "endpoints": [{"lb_endpoints": [{"endpoint": {"address": {"socket_address": {
                        "address": "127.0.0.1",
                        "port_value": upstream_port,
                    }}}}]}],
                },
            }],
        },
    })
    .to_string()
}
