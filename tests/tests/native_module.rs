//! The native build of jwt_scopes (filter/native, an Envoy dynamic module)
//! in the real Envoy 1.40: jwt_authn with a local JWKS forwarding each
//! verified payload in a header (`forward_payload_header`), the module with
//! the same JSON configuration the wasm module gets, and an echo upstream.
//! No AWS: the route goes straight to the echo server.
//!
//! Needs `target/native/libjwt_scopes_native.so`:
//! `cargo build --profile native -p jwt-scopes-native`.

use e2e::echo::{echoed_headers, EchoServer};
use e2e::envoy::{native_module, Envoy};
use e2e::fixture::{identity, pairs};
use e2e::frontend::bootstrap;
use e2e::http::{Request, Response};
use e2e::jwt::{Alg, Issuer, AUDIENCE, ISSUER};
use serde_json::{json, Value};
use std::path::Path;

/// The header jwt_authn forwards the payload of key `jwt_payload` in
/// (`jwt_scopes_core::config::payload_header_name`).
const PAYLOAD_HEADER: &str = "x-jwt-payload-jwt_payload";

/// What differs between the tests' Envoy configurations.
struct Options {
    /// The module's JSON configuration (a StringValue, as the wasm gets it).
    plugin_config: Value,
    /// The filter's name (`filter_name`).
    filter_name: &'static str,
    /// jwt_authn forwards the verified payload (`forward_payload_header`),
    /// as envoy-gen renders it.
    forward_payload: bool,
    /// Client `x-jwt-*` headers are removed before any filter (the
    /// connection manager's early header mutation), as envoy-gen renders it.
    early_strip: bool,
    /// `dynamic_module_config.metrics_namespace`, when set.
    metrics_namespace: Option<&'static str>,
    /// What jwt_authn writes under the provider's key, the proof that it
    /// verified the token: `header_in_metadata` as envoy-gen renders the
    /// native build, or `payload_in_metadata` (the wasm build's).
    proof: &'static str,
    /// `dynamic_module_config.module.local.filename`, when set (else the
    /// module is found by name in `ENVOY_DYNAMIC_MODULES_SEARCH_PATH`).
    module_file: Option<String>,
}

impl Default for Options {
    fn default() -> Self {
        Options {
            plugin_config: json!({}),
            filter_name: "jwt_scopes",
            forward_payload: true,
            early_strip: false,
            metrics_namespace: None,
            module_file: None,
            proof: "header_in_metadata",
        }
    }
}

/// Paths under this prefix accept requests without a token.
const OPTIONAL: &str = "/optional";

/// The native build's filter, after jwt_authn.
fn native_filters(options: &Options) -> Vec<Value> {
    let mut module_config = json!({"name": "jwt_scopes_native"});
    if let Some(namespace) = options.metrics_namespace {
        module_config["metrics_namespace"] = json!(namespace);
    }
    if let Some(file) = &options.module_file {
        module_config["module"] = json!({"local": {"filename": file}});
    }
    vec![json!({
        "name": "envoy.filters.http.dynamic_modules",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.dynamic_modules.v3.DynamicModuleFilter",
            "dynamic_module_config": module_config,
            "filter_name": options.filter_name,
            "filter_config": {
                "@type": "type.googleapis.com/google.protobuf.StringValue",
                "value": options.plugin_config.to_string(),
            },
        },
    })]
}

fn envoy_config(jwks: &str, upstream_port: u16, options: &Options) -> String {
    let mut provider = json!({
        "issuer": ISSUER,
        "audiences": [AUDIENCE],
        "require_expiration": true,
        "local_jwks": {"inline_string": jwks},
        "from_headers": [{"name": "authorization", "value_prefix": "Bearer "}],
    });
    provider[options.proof] = json!("jwt_payload");
    if options.forward_payload {
        provider["forward_payload_header"] = json!(PAYLOAD_HEADER);
    }
    let mut http_filters = vec![json!({
        "name": "envoy.filters.http.jwt_authn",
        "typed_config": {
            "@type": "type.googleapis.com/envoy.extensions.filters.http.jwt_authn.v3.JwtAuthentication",
            "providers": {"test": provider},
            "rules": [
                // No requirement: jwt_authn neither checks nor touches anything.
                {"match": {"path_separated_prefix": "/open"}},
                {
                    "match": {"path_separated_prefix": OPTIONAL},
                    "requires": {"requires_any": {"requirements": [
                        {"provider_name": "test"},
                        {"allow_missing": {}},
                    ]}},
                },
                {"match": {"prefix": "/"}, "requires": {"provider_name": "test"}},
            ],
        },
    })];
    http_filters.extend(native_filters(options));
    http_filters.push(json!({
        "name": "envoy.filters.http.router",
        "typed_config": {"@type": "type.googleapis.com/envoy.extensions.filters.http.router.v3.Router"},
    }));
    let mut hcm = json!({
        "@type": "type.googleapis.com/envoy.extensions.filters.network.http_connection_manager.v3.HttpConnectionManager",
        "stat_prefix": "ingress",
        "route_config": {
            "virtual_hosts": [{
                "name": "all",
                "domains": ["*"],
                "routes": [
                    // Routing on an identity header: only right if the route
                    // is matched again after the filter changed the headers.
                    {
                        "match": {
                            "prefix": "/optional/admin",
                            "headers": [{"name": "x-jwt-scope-admin", "present_match": true}],
                        },
                        "route": {"cluster": "upstream"},
                        "request_headers_to_add": [{"header": {"key": "x-routed", "value": "admin"}}],
                    },
                    {
                        "match": {"prefix": "/optional/admin"},
                        "direct_response": {"status": 403, "body": {"inline_string": "not routed as admin\n"}},
                    },
                    {"match": {"prefix": "/"}, "route": {"cluster": "upstream"}},
                ],
            }],
        },
        "http_filters": http_filters,
    });
    if options.early_strip {
        hcm["early_header_mutation_extensions"] = json!([{
            "name": "envoy.http.early_header_mutation.header_mutation",
            "typed_config": {
                "@type": "type.googleapis.com/envoy.extensions.http.early_header_mutation.header_mutation.v3.HeaderMutation",
                "mutations": [{"remove_on_match": {"key_matcher": {"prefix": "x-jwt-"}}}],
            },
        }]);
    }
    bootstrap(hcm, upstream_port)
}

/// Envoy's environment: the module's directory, and no AWS credentials.
fn module_env(module_dir: &Path) -> Vec<(String, String)> {
    vec![(
        "ENVOY_DYNAMIC_MODULES_SEARCH_PATH".into(),
        module_dir.display().to_string(),
    )]
}

fn module_dir() -> std::path::PathBuf {
    let module = native_module().unwrap_or_else(|e| panic!("{e}"));
    module
        .parent()
        .map(Path::to_path_buf)
        .unwrap_or_else(|| panic!("{} has no directory", module.display()))
}

struct Setup {
    issuer: Issuer,
    // Field order is drop order: Envoy stops before its upstream.
    envoy: Envoy,
    echo: EchoServer,
}

impl Setup {
    fn new(options: Options) -> Setup {
        let dir = module_dir();
        let issuer = Issuer::generate_es256();
        let echo = EchoServer::start().expect("echo upstream");
        let config = envoy_config(&issuer.jwks(), echo.addr.port(), &options);
        let envoy = Envoy::start_with_env(&config, &module_env(&dir)).unwrap_or_else(|e| panic!("{e}"));
        Setup { issuer, envoy, echo }
    }

    fn token(&self, claims: Value) -> String {
        self.issuer.token(Alg::ES256, claims)
    }

    fn send(&self, request: Request) -> Response {
        request
            .send(("127.0.0.1", self.envoy.port("ingress")))
            .unwrap_or_else(|e| panic!("request failed: {e}"))
    }

    /// Sends a request that must reach the upstream; the headers it saw.
    fn upstream_headers(&self, request: Request) -> Vec<(String, String)> {
        let response = self.send(request);
        assert_eq!(
            response.status,
            200,
            "not forwarded: {}\n{}",
            response.text(),
            self.envoy.log()
        );
        echoed_headers(&response.json())
    }
}

fn spoofed(request: Request) -> Request {
    request
        .header("x-jwt-subject", "admin")
        .header("X-JWT-Scope-Admin", "true")
        .header("x-jwt-scope-admin", "true")
        .header("x-jwt-scope-admin", "again")
        .header("x_jwt_subject", "admin")
        .header("x-custom-empty", "")
        .header("x-amz-security-token", "stolen")
        .header("x-request-id", "kept-request-id")
}

#[test]
fn identity_headers_come_from_the_verified_token_only() {
    let setup = Setup::new(Options::default());

    // No token (optional route): every spoofed identity header is gone,
    // name and all (removal leaves no empty header behind).
    let seen = setup.upstream_headers(spoofed(Request::get("/optional/x")));
    assert_eq!(identity(&seen), pairs(&[]), "no token: {seen:?}");
    for name in ["x-custom-empty", "x_jwt_subject", "x-amz-security-token"] {
        assert!(
            seen.iter().all(|(n, _)| n != name),
            "{name} reached the upstream: {seen:?}"
        );
    }
    assert!(
        seen.contains(&("x-request-id".into(), "kept-request-id".into())),
        "{seen:?}"
    );

    // Five names were removed: x-jwt-subject, x-jwt-scope-admin (three
    // values, two spellings), x_jwt_subject, x-amz-security-token and the
    // empty-valued x-custom-empty (so it did reach the filter).
    let stripped = "dynamicmodulescustom.jwt_scopes.client_headers_stripped";
    assert_eq!(setup.envoy.wait_stat(stripped, 5), 5);

    // A token with an `scp` array and a `scope` string: its identity only.
    let token = setup.token(json!({"sub": "alice", "scp": ["read", "Files.Write"], "scope": "openid read"}));
    let seen = setup.upstream_headers(spoofed(Request::get("/api").bearer(&token)));
    assert_eq!(
        identity(&seen),
        pairs(&[
            ("x-jwt-subject", "alice"),
            ("x-jwt-scope-openid", "true"),
            ("x-jwt-scope-read", "true"),
            ("x-jwt-scope-^files.^write", "true"),
        ]),
        "{seen:?}"
    );
    assert!(seen.iter().all(|(n, _)| n != "x-custom-empty"), "{seen:?}");

    // Counters, under the default namespace of dynamic modules.
    let envoy = &setup.envoy;
    assert_eq!(envoy.wait_stat("dynamicmodulescustom.jwt_scopes.requests", 2), 2);
    assert_eq!(envoy.stat("dynamicmodulescustom.jwt_scopes.requests_with_identity"), 1);
    assert_eq!(envoy.stat("dynamicmodulescustom.jwt_scopes.scope_headers_emitted"), 3);
    // The same five again (jwt_authn already removed the token's
    // `authorization`: its `forward` is false).
    assert_eq!(envoy.stat(stripped), 10);
    assert_eq!(envoy.stat("dynamicmodulescustom.jwt_scopes.requests_refused"), 0);
    assert_eq!(envoy.stat("dynamicmodulescustom.jwt_scopes.scopes_dropped"), 0);
    assert_eq!(setup.echo.requests_served(), 2);
    // Built for this Envoy's ABI: no "ABI version ... is deprecated" warning.
    let log = setup.envoy.log();
    assert!(!log.contains("deprecated"), "{log}");
}

#[test]
fn the_route_is_matched_again_after_the_filter() {
    let setup = Setup::new(Options::default());
    // A spoofed scope header would pick the admin route; the filter removes
    // it and Envoy matches again.
    let response = setup.send(spoofed(Request::get("/optional/admin")));
    assert_eq!(response.status, 403, "{}", response.text());
    assert_eq!(response.text(), "not routed as admin\n");

    // The filter's own scope header picks it.
    let token = setup.token(json!({"sub": "root", "scp": ["admin"]}));
    let seen = setup.upstream_headers(Request::get("/optional/admin").bearer(&token));
    assert!(seen.contains(&("x-routed".into(), "admin".into())), "{seen:?}");
    assert!(seen.contains(&("x-jwt-scope-admin".into(), "true".into())), "{seen:?}");
}

#[test]
fn require_identity_refuses_a_request_without_a_token() {
    let setup = Setup::new(Options {
        plugin_config: json!({"require_identity": true}),
        // The namespace envoy-gen renders, so that the counters keep the
        // wasm build's names.
        metrics_namespace: Some("wasmcustom"),
        ..Options::default()
    });
    let response = setup.send(Request::get("/optional/x").header("x-jwt-subject", "admin"));
    assert_eq!(response.status, 401, "{}", response.text());
    assert_eq!(response.header("www-authenticate"), Some("Bearer"));
    assert_eq!(response.header("content-type"), Some("text/plain"));
    assert_eq!(response.text(), "a verified identity is required\n");
    assert_eq!(setup.echo.requests_served(), 0);

    let token = setup.token(json!({"sub": "bob"}));
    let seen = setup.upstream_headers(Request::get("/optional/x").bearer(&token));
    assert_eq!(identity(&seen), pairs(&[("x-jwt-subject", "bob")]));

    assert_eq!(setup.envoy.wait_stat("wasmcustom.jwt_scopes.requests", 2), 2);
    assert_eq!(setup.envoy.stat("wasmcustom.jwt_scopes.requests_refused"), 1);
    assert_eq!(setup.envoy.stat("dynamicmodulescustom.jwt_scopes.requests"), 0);
}

/// A forged payload: what a client would like the filter to believe.
fn forged_payload() -> String {
    use base64::Engine;
    base64::engine::general_purpose::URL_SAFE_NO_PAD.encode(json!({"sub": "admin", "scp": ["admin"]}).to_string())
}

/// A forged payload header beside a valid token (the token's identity
/// only) and without one on an `allow_missing` route (no identity, and the
/// header does not reach the upstream).
fn forged_beside_a_token_and_alone(setup: &Setup) {
    let token = setup.token(json!({"sub": "alice", "scp": ["read"]}));
    let seen = setup.upstream_headers(
        Request::get("/api")
            .bearer(&token)
            .header(PAYLOAD_HEADER, forged_payload()),
    );
    assert_eq!(
        identity(&seen),
        pairs(&[("x-jwt-subject", "alice"), ("x-jwt-scope-read", "true")]),
        "{seen:?}"
    );
    let seen = setup.upstream_headers(Request::get("/optional/x").header(PAYLOAD_HEADER, forged_payload()));
    assert_eq!(identity(&seen), pairs(&[]), "{seen:?}");
    assert!(seen.iter().all(|(n, _)| !n.starts_with("x-jwt-payload")), "{seen:?}");
}

#[test]
fn a_forged_payload_header_is_never_trusted() {
    // As envoy-gen renders the frontend: the client's copy is gone before
    // jwt_authn runs, so the payload is jwt_authn's own.
    let setup = Setup::new(Options {
        early_strip: true,
        ..Options::default()
    });
    forged_beside_a_token_and_alone(&setup);
    drop(setup);

    // Without the early removal (a hand-written configuration): jwt_authn
    // removes a client's copy of its forward_payload_header on the routes
    // where it checks tokens, and appends its own.
    let setup = Setup::new(Options::default());
    forged_beside_a_token_and_alone(&setup);
    // Where jwt_authn checks nothing (no requirement), the header reaches
    // the module untouched: without jwt_authn's metadata it proves
    // nothing, and it is removed.
    let seen = setup.upstream_headers(Request::get("/open/x").header(PAYLOAD_HEADER, forged_payload()));
    assert_eq!(identity(&seen), pairs(&[]), "{seen:?}");
    assert!(seen.iter().all(|(n, _)| !n.starts_with("x-jwt-payload")), "{seen:?}");
    // It is not counted as a client header the filter stripped.
    assert_eq!(setup.envoy.wait_stat("dynamicmodulescustom.jwt_scopes.requests", 3), 3);
    assert_eq!(
        setup
            .envoy
            .stat("dynamicmodulescustom.jwt_scopes.client_headers_stripped"),
        0
    );
    assert_eq!(
        setup
            .envoy
            .stat("dynamicmodulescustom.jwt_scopes.requests_with_identity"),
        1
    );
}

/// The proof that jwt_authn verified the token is the provider's key in its
/// metadata, whatever the key holds: envoy-gen renders `header_in_metadata`
/// (the token's header) for this build, and a hand-written configuration
/// with `payload_in_metadata` (the wasm build's) works the same. Without a
/// verified token there is no key, and a forged payload proves nothing.
#[test]
fn either_metadata_proof_of_verification_is_read() {
    for proof in ["header_in_metadata", "payload_in_metadata"] {
        let setup = Setup::new(Options {
            proof,
            early_strip: true,
            ..Options::default()
        });
        let token = setup.token(json!({"sub": "alice", "scp": ["read"]}));
        let seen = setup.upstream_headers(Request::get("/api").bearer(&token));
        assert_eq!(
            identity(&seen),
            pairs(&[("x-jwt-subject", "alice"), ("x-jwt-scope-read", "true")]),
            "{proof}: {seen:?}"
        );
        assert!(
            seen.iter().all(|(n, _)| !n.starts_with("x-jwt-payload")),
            "{proof}: {seen:?}"
        );
        forged_beside_a_token_and_alone(&setup);
    }
}

#[test]
fn a_verified_token_without_a_forwarded_payload_fails_closed() {
    // A provider without forward_payload_header: jwt_authn verified the
    // token, but the module has nothing to read; it refuses, never guesses.
    let setup = Setup::new(Options {
        forward_payload: false,
        ..Options::default()
    });
    let token = setup.token(json!({"sub": "alice", "scp": ["read"]}));
    let response = setup.send(Request::get("/api").bearer(&token));
    assert_eq!(response.status, 500, "{}", response.text());
    assert_eq!(
        response.text(),
        "jwt_authn verified a token but forwarded no payload (its provider needs forward_payload_header)\n"
    );
    assert_eq!(setup.echo.requests_served(), 0);
    // Without a token there is no payload to miss.
    let seen = setup.upstream_headers(Request::get("/optional/x"));
    assert_eq!(identity(&seen), pairs(&[]));
}

/// Starts Envoy expecting it to refuse the configuration; its log.
fn refused(options: &Options, env: &[(String, String)]) -> String {
    let issuer = Issuer::generate_es256();
    let config = envoy_config(&issuer.jwks(), 9, options);
    match Envoy::start_with_env(&config, env) {
        Ok(envoy) => panic!("Envoy accepted the configuration:\n{}", envoy.log()),
        Err(log) => {
            assert!(log.contains("exited with"), "{log}");
            log
        }
    }
}

#[test]
fn envoy_refuses_to_start_with_an_invalid_plugin_configuration() {
    let env = module_env(&module_dir());
    let cases = [
        (
            json!({"max_scopes": 100000}),
            "jwt_scopes",
            "invalid jwt_scopes configuration: max_scopes: 100000 is above the limit of 1000",
        ),
        (
            json!({"scope_header_prefix": "x-amz-"}),
            "jwt_scopes",
            "invalid jwt_scopes configuration: scope_header_prefix",
        ),
        (json!({"bogus": true}), "jwt_scopes", "unknown field `bogus`"),
        (
            json!({"subject_header": PAYLOAD_HEADER}),
            "jwt_scopes",
            "invalid jwt_scopes configuration: header `x-jwt-payload-jwt_payload`, where the payload of `jwt_payload` arrives in the native build, could also be emitted as the subject header",
        ),
        // The module's signing guard takes no configuration (not even `{}`).
        (json!({}), "sign_guard", "sign_guard takes no configuration"),
        (
            json!({}),
            "sign-guard",
            "unknown filter_name `sign-guard`: this module has `jwt_scopes` and `sign_guard`",
        ),
    ];
    for (plugin_config, filter_name, expected) in cases {
        let log = refused(
            &Options {
                plugin_config: plugin_config.clone(),
                filter_name,
                ..Options::default()
            },
            &env,
        );
        assert!(log.contains(expected), "{plugin_config}: no `{expected}` in:\n{log}");
        assert!(
            log.contains("Failed to initialize dynamic module"),
            "{plugin_config}: {log}"
        );
    }
}

#[test]
fn envoy_refuses_to_start_without_the_module() {
    let empty = tempfile::tempdir().expect("temporary directory");
    // By name, in a directory without it.
    let log = refused(&Options::default(), &module_env(empty.path()));
    assert!(log.contains("jwt_scopes_native"), "{log}");
    // By file (as envoy-gen renders it), a file that is not there.
    let missing = empty.path().join("libjwt_scopes_native.so").display().to_string();
    let log = refused(
        &Options {
            module_file: Some(missing),
            ..Options::default()
        },
        &[],
    );
    assert!(log.contains("libjwt_scopes_native.so"), "{log}");
}

#[test]
fn the_module_loads_from_a_file_without_a_search_path() {
    // envoy-gen's form: `module: {local: {filename}}`, no environment.
    let module = native_module().unwrap_or_else(|e| panic!("{e}"));
    let issuer = Issuer::generate_es256();
    let echo = EchoServer::start().expect("echo upstream");
    let options = Options {
        module_file: Some(module.display().to_string()),
        ..Options::default()
    };
    let envoy = Envoy::start_with_env(&envoy_config(&issuer.jwks(), echo.addr.port(), &options), &[])
        .unwrap_or_else(|e| panic!("{e}"));
    let token = issuer.token(Alg::ES256, json!({"sub": "carol", "scope": "read"}));
    let response = Request::get("/api")
        .bearer(&token)
        .send(("127.0.0.1", envoy.port("ingress")))
        .unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(response.status, 200, "{}", response.text());
    assert_eq!(
        identity(&echoed_headers(&response.json())),
        pairs(&[("x-jwt-subject", "carol"), ("x-jwt-scope-read", "true")])
    );
}
