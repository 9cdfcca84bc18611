//! The CLI from the outside: the real binary, exact error output (with
//! file, line, column and a caret), and nothing written on failure.
//! Cases are `tests/cases/err_*.yaml` with the expected stderr beside them
//! (`UPDATE_GOLDEN=1` rewrites those).
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::Path;
use std::process::{Command, Output};

fn envoy_gen(args: &[&str], cwd: &Path) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .args(args)
        .current_dir(cwd)
        .output()
        .unwrap()
}

fn cases_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases"))
}

#[test]
fn error_cases_report_every_problem_with_its_location() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut names: Vec<String> = std::fs::read_dir(cases_dir())
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .filter(|n| n.starts_with("err_") && n.ends_with(".yaml"))
        .collect();
    names.sort();
    assert!(names.len() >= 7);
    for name in names {
        let out = envoy_gen(&["frontend", "--spec", &name], cases_dir());
        assert_eq!(out.status.code(), Some(1), "{name} should fail");
        assert!(out.stdout.is_empty(), "{name} printed a configuration");
        let stderr = String::from_utf8(out.stderr).unwrap();
        let expected_path = cases_dir().join(name.replace(".yaml", ".stderr"));
        if update {
            std::fs::write(&expected_path, &stderr).unwrap();
        } else {
            let expected = std::fs::read_to_string(&expected_path).unwrap_or_default();
            assert_eq!(stderr, expected, "{name}");
        }
    }
}

#[test]
fn flag_errors_name_the_flag() {
    let out = envoy_gen(
        &[
            "frontend",
            "--region",
            "us-west-2",
            "--no-oauth",
            "--service",
            "app1=bad_host",
            "--service",
            "app2",
            "--listen",
            "1.2.3.4",
            "--issuer",
            "https://x.example.com",
        ],
        cases_dir(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --listen: `1.2.3.4` is not ADDR:PORT\n\
         error: --service: `bad_host` is not a DNS name\n\
         error: --issuer: makes no sense without OAuth (--no-oauth or `oauth: false`)\n\
         error: 3 problems; nothing was written\n"
    );
}

#[test]
fn nothing_is_written_when_rendering_fails() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("envoy.yaml");
    std::fs::write(&target, "previous contents\n").unwrap();
    let spec = cases_dir().join("err_many_problems.yaml");
    let out = envoy_gen(
        &[
            "frontend",
            "--spec",
            spec.to_str().unwrap(),
            "-o",
            target.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(std::fs::read_to_string(&target).unwrap(), "previous contents\n");
    assert_eq!(
        std::fs::read_dir(dir.path()).unwrap().count(),
        1,
        "a temporary file was left behind"
    );
}

#[test]
fn flags_alone_render_the_reference_deploy() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("envoy.yaml");
    let out = envoy_gen(
        &[
            "frontend",
            "--issuer",
            "https://dev-1.okta.com/oauth2/default",
            "--jwks-uri",
            "https://dev-1.okta.com/oauth2/default/v1/keys",
            "--audience",
            "api://default",
            "--domain",
            "example.internal",
            "--region",
            "us-west-2",
            "-o",
            target.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    use std::os::unix::fs::PermissionsExt;
    assert_eq!(std::fs::metadata(&target).unwrap().permissions().mode() & 0o777, 0o644);
    let text = std::fs::read_to_string(&target).unwrap();
    for expected in [
        "host_rewrite_literal: \"app1.example.internal\"",
        "path_separated_prefix: \"/app2\"",
        "path_separated_prefix: \"/app3\"",
        "issuer: \"https://dev-1.okta.com/oauth2/default\"",
        "audiences: [\"api://default\"]",
        "region: \"us-west-2\"",
    ] {
        assert!(text.contains(expected), "missing {expected}");
    }
    // The default credential chain (for ECS/EC2) unless --credentials env.
    assert!(!text.contains("environment_credential_provider"));
}

#[test]
fn spec_values_cannot_inject_yaml() {
    let dir = tempfile::tempdir().unwrap();
    let out = envoy_gen(
        &[
            "frontend",
            "--region",
            "us-west-2",
            "--domain",
            "example.internal",
            "--no-oauth",
            "--wasm",
            "/x.wasm\"\n  admin: {evil: true}\n#",
        ],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    assert!(
        text.contains(r#"filename: "/x.wasm\"\n  admin: {evil: true}\n#""#),
        "{text}"
    );
}

fn reference_spec() -> std::path::PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/examples/reference.yaml")
}

#[test]
fn policies_check_fails_on_drift_and_names_each_file() {
    let dir = tempfile::tempdir().unwrap();
    let spec = reference_spec();
    let spec = spec.to_str().unwrap();
    let out_dir = dir.path().join("policies");
    let out = envoy_gen(
        &["policies", "--spec", spec, "-o", out_dir.to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let check = |dir: &Path| envoy_gen(&["policies", "--spec", spec, "--check", out_dir.to_str().unwrap()], dir);
    assert!(check(dir.path()).status.success());

    // A hand edit, a deleted file and a stale one are each reported.
    let app1 = out_dir.join("services/app1.json");
    let edited = std::fs::read_to_string(&app1).unwrap().replace("test.all", "test.any");
    std::fs::write(&app1, edited).unwrap();
    std::fs::remove_file(out_dir.join("roles/app2.json")).unwrap();
    std::fs::write(out_dir.join("services/old.json"), "{}").unwrap();
    let out = check(dir.path());
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        "services/app1.json: differs from the spec",
        "roles/app2.json: missing",
        "services/old.json: not rendered from the spec (stale)",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }

    // Rendering again repairs all three.
    let out = envoy_gen(
        &["policies", "--spec", spec, "-o", out_dir.to_str().unwrap()],
        dir.path(),
    );
    assert!(out.status.success());
    assert!(check(dir.path()).status.success());
    assert!(!out_dir.join("services/old.json").exists());
}

#[test]
fn policies_need_an_account_and_write_nothing_without_one() {
    let dir = tempfile::tempdir().unwrap();
    let spec = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/examples/local.yaml");
    let out_dir = dir.path().join("policies");
    let out = envoy_gen(
        &[
            "policies",
            "--spec",
            spec.to_str().unwrap(),
            "-o",
            out_dir.to_str().unwrap(),
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(String::from_utf8(out.stderr)
        .unwrap()
        .contains("account: is required to render policies"));
    assert!(!out_dir.exists());
}

#[test]
fn sidecar_refuses_a_listener_off_loopback_and_an_unknown_service() {
    let dir = tempfile::tempdir().unwrap();
    let spec = reference_spec();
    let spec = spec.to_str().unwrap();
    let out = envoy_gen(
        &[
            "sidecar",
            "--spec",
            spec,
            "--service",
            "app2",
            "--listen",
            "0.0.0.0:15001",
        ],
        dir.path(),
    );
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --listen: must be a loopback address (127.0.0.1 or ::1): anyone who reaches the sidecar gets requests signed with the service's IAM role\n\
         error: 1 problem; nothing was written\n"
    );
    let out = envoy_gen(&["sidecar", "--spec", spec, "--service", "app9"], dir.path());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --service: `app9` is not a service of the spec (app1, app2, app3)\n\
         error: 1 problem; nothing was written\n"
    );
}

#[test]
fn sidecar_routes_only_the_services_it_may_call() {
    let dir = tempfile::tempdir().unwrap();
    let spec = reference_spec();
    let out = envoy_gen(
        &["sidecar", "--spec", spec.to_str().unwrap(), "--service", "app2"],
        dir.path(),
    );
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let text = String::from_utf8(out.stdout).unwrap();
    let yaml: serde_json::Value = serde_saphyr::from_str(&text).unwrap();
    let clusters: Vec<&str> = yaml["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| c["name"].as_str().unwrap())
        .collect();
    assert_eq!(clusters, ["lattice_app1", "lattice_app3"]);
    // app1 calls nothing: no cluster at all, every target refused.
    let out = envoy_gen(
        &["sidecar", "--spec", spec.to_str().unwrap(), "--service", "app1"],
        dir.path(),
    );
    let yaml: serde_json::Value = serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
    assert_eq!(yaml["static_resources"]["clusters"], serde_json::json!([]));
}

/// Every file under `dir`, by path relative to it, with its text.
fn files_under(dir: &Path) -> Vec<(std::path::PathBuf, String)> {
    let mut out = Vec::new();
    let mut pending = vec![dir.to_path_buf()];
    while let Some(next) = pending.pop() {
        for entry in std::fs::read_dir(&next).unwrap() {
            let path = entry.unwrap().path();
            if path.is_dir() {
                pending.push(path);
            } else {
                let text = std::fs::read_to_string(&path).unwrap();
                out.push((path.strip_prefix(dir).unwrap().to_path_buf(), text));
            }
        }
    }
    out.sort();
    out
}

#[test]
fn single_items_render_like_lists() {
    let dir = tempfile::tempdir().unwrap();
    let render = |spec: &str, args: &[&str]| {
        let mut all = args.to_vec();
        all.extend(["--spec", spec]);
        let out = envoy_gen(&all, cases_dir());
        assert!(out.status.success(), "{spec}: {}", String::from_utf8_lossy(&out.stderr));
        String::from_utf8(out.stdout).unwrap()
    };
    let mut policies = Vec::new();
    for spec in ["single_items.yaml", "single_items_as_lists.yaml"] {
        let out_dir = dir.path().join(spec);
        render(spec, &["policies", "-o", out_dir.to_str().unwrap()]);
        policies.push(files_under(&out_dir));
    }
    let frontend = render("single_items.yaml", &["frontend"]);
    assert_eq!(frontend, render("single_items_as_lists.yaml", &["frontend"]));
    for service in ["app1", "app2"] {
        assert_eq!(
            render("single_items.yaml", &["sidecar", "--service", service]),
            render("single_items_as_lists.yaml", &["sidecar", "--service", service]),
            "{service}"
        );
    }
    assert_eq!(policies[0], policies[1]);

    // The single items took effect (and are not defaults).
    for expected in [r#"audiences: ["api://default"]"#, r#"{"regex": "GET"}"#] {
        assert!(frontend.contains(expected), "missing {expected}");
    }
    let policy = |name: &str| {
        let found = policies[0].iter().find(|(path, _)| path == Path::new(name));
        found.map(|(_, text)| text.as_str()).unwrap_or_default()
    };
    assert!(policy("service-network.json").contains("arn:aws:iam::111122223333:root"));
    assert!(policy("services/app1.json").contains("role/app2"));
    assert!(policy("services/app2.json").contains("x-jwt-scope-test.all"));
    assert!(policy("roles/app2.json").contains("vpc-lattice-svcs:Invoke"));
}

/// Each issuer's tokens are cached as the spec says: 1000 per worker by
/// default, another size, or (0) not at all.
#[test]
fn the_token_cache_follows_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec = |size: &str| {
        format!(
            "region: us-west-2\ndomain: example.internal\nissuers:\n  - name: okta\n    issuer: https://example.okta.com\n    jwks_uri: https://example.okta.com/keys\n    audiences: [api://default]\n{size}  - name: entra\n    issuer: https://login.example.com\n    jwks_uri: https://login.example.com/keys\n    audiences: [api://default]\n"
        )
    };
    for (line, caches) in [
        ("", vec!["jwt_cache_config: {jwt_cache_size: 1000}"; 2]),
        (
            "    token_cache_size: 50\n",
            vec![
                "jwt_cache_config: {jwt_cache_size: 50}",
                "jwt_cache_config: {jwt_cache_size: 1000}",
            ],
        ),
        (
            "    token_cache_size: 0\n",
            vec!["jwt_cache_config: {jwt_cache_size: 1000}"],
        ),
    ] {
        std::fs::write(dir.path().join("spec.yaml"), spec(line)).unwrap();
        let out = envoy_gen(&["frontend", "--spec", "spec.yaml"], dir.path());
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let config = String::from_utf8(out.stdout).unwrap();
        let found: Vec<&str> = config
            .lines()
            .map(str::trim)
            .filter(|l| l.starts_with("jwt_cache_config"))
            .collect();
        assert_eq!(found, caches, "{line:?}");
    }
}

/// The upstream HTTP filters of every cluster of a rendered configuration
/// that has any: `(cluster, [filter name, or the guard's build])`.
#[allow(clippy::indexing_slicing)]
fn upstream_filters(config: &str) -> Vec<(String, Vec<String>)> {
    let yaml: serde_json::Value = serde_saphyr::from_str(config).unwrap();
    let options = "envoy.extensions.upstreams.http.v3.HttpProtocolOptions";
    yaml["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .filter_map(|c| {
            let filters = c["typed_extension_protocol_options"][options]["http_filters"].as_array()?;
            let names = filters
                .iter()
                .map(|f| match f["name"].as_str().unwrap() {
                    "envoy.filters.http.dynamic_modules" => {
                        let config = &f["typed_config"];
                        assert_eq!(config["dynamic_module_config"]["name"], "jwt_scopes_native");
                        assert_eq!(config["dynamic_module_config"]["metrics_namespace"], "wasmcustom");
                        // The guard takes no configuration.
                        assert!(config.get("filter_config").is_none(), "{config}");
                        format!(
                            "native {} {}",
                            config["filter_name"].as_str().unwrap(),
                            config["dynamic_module_config"]["module"]["local"]["filename"]
                                .as_str()
                                .unwrap()
                        )
                    }
                    "envoy.filters.http.wasm" => {
                        format!("wasm {}", f["typed_config"]["config"]["root_id"].as_str().unwrap())
                    }
                    // The wasm guard, skipped for a request Envoy signed.
                    "envoy.filters.http.match_delegate" => {
                        let config = &f["typed_config"];
                        let inner = &config["extension_config"];
                        assert_eq!(inner["name"], "envoy.filters.http.wasm", "{config}");
                        let matcher = &config["xds_matcher"]["matcher_list"]["matchers"][0];
                        let skip = &matcher["on_match"]["action"]["typed_config"]["@type"];
                        assert_eq!(
                            skip,
                            "type.googleapis.com/envoy.extensions.filters.common.matcher.action.v3.SkipFilter"
                        );
                        let tested: Vec<String> = matcher["predicate"]["and_matcher"]["predicate"]
                            .as_array()
                            .unwrap()
                            .iter()
                            .map(|p| {
                                let p = &p["single_predicate"];
                                format!(
                                    "{} ~ {}",
                                    p["input"]["typed_config"]["header_name"].as_str().unwrap(),
                                    p["value_match"]["safe_regex"]["regex"].as_str().unwrap()
                                )
                            })
                            .collect();
                        assert_eq!(
                            tested,
                            [
                                r"authorization ~ AWS4-HMAC-SHA256 Credential=[^\s,].*",
                                "x-amz-date ~ .+"
                            ]
                        );
                        format!(
                            "wasm {} unless signed",
                            inner["typed_config"]["config"]["root_id"].as_str().unwrap()
                        )
                    }
                    other => other.to_string(),
                })
                .collect();
            Some((c["name"].as_str().unwrap().to_string(), names))
        })
        .collect()
}

/// `filter_build: native` (or `--filter native`) renders the native signing
/// guard on every Lattice cluster of the frontend and of every sidecar, and
/// nothing that would load V8; wasm stays the default.
#[test]
fn the_native_build_loads_no_wasm_on_the_frontend_or_the_sidecars() {
    let dir = tempfile::tempdir().unwrap();
    let reference = std::fs::read_to_string(reference_spec()).unwrap();
    let native_spec = format!("{reference}filter_build: native\nnative_module: /opt/lib/libjwt_scopes_native.so\n");
    std::fs::write(dir.path().join("native.yaml"), native_spec).unwrap();
    let reference = reference_spec();
    let reference = reference.to_str().unwrap();
    let render = |args: &[&str]| {
        let out = envoy_gen(args, dir.path());
        assert!(
            out.status.success(),
            "{args:?}: {}",
            String::from_utf8_lossy(&out.stderr)
        );
        String::from_utf8(out.stdout).unwrap()
    };
    let guarded = |filters: &[String], guard: &str| {
        assert_eq!(
            filters,
            [
                "envoy.filters.http.aws_request_signing",
                guard,
                "envoy.filters.http.upstream_codec"
            ],
        );
    };
    let flags = [
        "--filter",
        "native",
        "--native-module",
        "/opt/lib/libjwt_scopes_native.so",
    ];
    let native_guard = "native sign_guard /opt/lib/libjwt_scopes_native.so";
    // The frontend: by the spec field, and by the flags over the reference spec.
    let frontends = [
        render(&["frontend", "--spec", "native.yaml"]),
        render(&[&["frontend", "--spec", reference][..], &flags].concat()),
    ];
    for frontend in &frontends {
        let clusters = upstream_filters(frontend);
        let names: Vec<&str> = clusters.iter().map(|(c, _)| c.as_str()).collect();
        assert_eq!(names, ["lattice_app1", "lattice_app2", "lattice_app3", "readiness"]);
        for (_, filters) in &clusters {
            guarded(filters, native_guard);
        }
    }
    assert_eq!(frontends[0], frontends[1]);
    // Every sidecar, the same two ways.
    for service in ["app1", "app2", "app3"] {
        let sidecars = [
            render(&["sidecar", "--spec", "native.yaml", "--service", service]),
            render(&[&["sidecar", "--spec", reference, "--service", service][..], &flags].concat()),
        ];
        assert_eq!(sidecars[0], sidecars[1], "{service}");
        for (_, filters) in upstream_filters(&sidecars[0]) {
            guarded(&filters, native_guard);
        }
    }
    let app2 = render(&["sidecar", "--spec", "native.yaml", "--service", "app2"]);
    assert_eq!(upstream_filters(&app2).len(), 2);
    // Nothing anywhere would load V8.
    let all = [&frontends[0], &app2];
    for config in all {
        for wasm in ["envoy.filters.http.wasm", "envoy.wasm.runtime.v8", "jwt_scopes.wasm"] {
            assert!(!config.contains(wasm), "`{wasm}` in a native configuration");
        }
    }
    // Wasm stays the default, on the frontend and the sidecars.
    for config in [
        render(&["frontend", "--spec", reference]),
        render(&["sidecar", "--spec", reference, "--service", "app2"]),
    ] {
        assert!(!config.contains("dynamic_modules"));
        for (_, filters) in upstream_filters(&config) {
            guarded(&filters, "wasm sign_guard unless signed");
        }
    }
}

/// What each build's jwt_authn providers write for the filter. The wasm
/// build reads the claims from jwt_authn's metadata: `payload_in_metadata`.
/// The native build reads them from the forwarded payload header and only
/// the presence of the provider's key in that metadata, the proof that
/// jwt_authn verified the token (both are written in the same step, only
/// then): its key holds the token's header (`header_in_metadata`), never a
/// copy of the payload, which cost a copy of every claim per request. One
/// key per provider, named as the filter looks for it.
#[test]
#[allow(clippy::indexing_slicing)]
fn each_build_gets_the_metadata_it_reads_from_jwt_authn() {
    let dir = tempfile::tempdir().unwrap();
    let multi = Path::new(env!("CARGO_MANIFEST_DIR")).join("../envoy/examples/multi-issuer.yaml");
    for spec in [reference_spec(), multi] {
        let spec = spec.to_str().unwrap();
        for build in ["wasm", "native"] {
            let out = envoy_gen(
                &[
                    "frontend",
                    "--spec",
                    spec,
                    "--filter",
                    build,
                    "--native-module",
                    "/opt/lib/libjwt_scopes_native.so",
                ],
                dir.path(),
            );
            assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
            let yaml: serde_json::Value = serde_saphyr::from_str(&String::from_utf8(out.stdout).unwrap()).unwrap();
            let hcm = &yaml["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]["typed_config"];
            let filters = hcm["http_filters"].as_array().unwrap();
            let jwt_authn = filters
                .iter()
                .find(|f| f["name"] == "envoy.filters.http.jwt_authn")
                .unwrap();
            let providers = jwt_authn["typed_config"]["providers"].as_object().unwrap();
            assert!(!providers.is_empty());
            // The filter's configuration names the keys it looks for.
            let scopes = filters
                .iter()
                .find(|f| {
                    f["typed_config"]["filter_name"] == "jwt_scopes"
                        || f["typed_config"]["config"]["root_id"] == "jwt_scopes"
                })
                .unwrap();
            let filter_config = match build {
                "native" => scopes["typed_config"]["filter_config"]["value"].as_str(),
                _ => scopes["typed_config"]["config"]["configuration"]["value"].as_str(),
            };
            let filter_config: serde_json::Value = serde_json::from_str(filter_config.unwrap()).unwrap();
            let keys: Vec<&str> = filter_config["payload_metadata_keys"]
                .as_array()
                .unwrap()
                .iter()
                .map(|k| k.as_str().unwrap())
                .collect();
            let names: Vec<&str> = providers.keys().map(String::as_str).collect();
            assert_eq!(keys.len(), names.len(), "{spec} {build}");
            for (name, provider) in providers {
                assert!(keys.contains(&name.as_str()), "{spec} {build}: {name} not in {keys:?}");
                let (written, absent) = match build {
                    "native" => ("header_in_metadata", "payload_in_metadata"),
                    _ => ("payload_in_metadata", "header_in_metadata"),
                };
                assert_eq!(provider[written], name.as_str(), "{spec} {build}: {provider}");
                assert!(provider.get(absent).is_none(), "{spec} {build}: {provider}");
                assert_eq!(
                    provider.get("forward_payload_header").is_some(),
                    build == "native",
                    "{spec} {build}: {provider}"
                );
            }
        }
    }
}
