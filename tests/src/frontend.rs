//! The Envoy configuration the filter tests run: jwt_authn (local JWKS) in
//! front of the filter, in front of an upstream on loopback. Built as JSON,
//! which Envoy's YAML loader reads as is.

use crate::jwt::{AUDIENCE, ISSUER};
use serde_json::{json, Value};
use std::path::Path;

/// Paths under this prefix accept requests without a token (jwt_authn
/// `allow_missing`); every other path requires a valid token.
pub const OPTIONAL_PREFIX: &str = "/optional";

pub struct Frontend<'a> {
    pub jwks: &'a str,
    pub wasm: &'a Path,
    /// The filter's JSON configuration; None sends no configuration at all.
    pub plugin_config: Option<Value>,
    pub upstream_port: u16,
}

impl Frontend<'_> {
    pub fn render(&self) -> String {
        let provider = json!({
            "issuer": ISSUER,
            "audiences": [AUDIENCE],
            "require_expiration": true,
            "local_jwks": {"inline_string": self.jwks},
            "payload_in_metadata": "jwt_payload",
            // Only `Authorization: Bearer`: never a token from the query
            // string (jwt_authn's default also reads `?access_token=`).
            "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
        });
        let mut plugin = json!({
            "name": "jwt_scopes",
            "root_id": "jwt_scopes",
            "failure_policy": "FAIL_RELOAD",
            "vm_config": {
                "runtime": "envoy.wasm.runtime.v8",
                "code": {"local": {"filename": self.wasm.display().to_string()}},
            },
        });
        if let Some(config) = &self.plugin_config {
            plugin["configuration"] = json!({
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": config.to_string(),
            });
        }
        let hcm = json!({
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
                    "name": "envoy.filters.http.wasm",
                    "typed_config": {
                        "@type": "type.googleapis.com/envoy.extensions.filters.http.wasm.v3.Wasm",
                        "config": plugin,
                    },
                },
                {
                    "name": "envoy.filters.http.router",
                    "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
                },
            ],
        });
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
                            "port_value": self.upstream_port,
                        }}}}]}],
                    },
                }],
            },
        })
        .to_string()
    }
}
