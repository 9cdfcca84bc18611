//! Services without a custom domain name (`tests/cases/generated_names.yaml`:
//! no `domain`, app1 and app2 without `host`): the spec loads and its
//! policies render, but the frontend and the sidecars that call such a
//! service need its Lattice-generated DNS name from `--service-host`, and
//! refuse without it, naming the service where the spec does. The real
//! binary, exact error output.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use serde_json::Value;
use std::path::Path;
use std::process::{Command, Output};

const SPEC: &str = "generated_names.yaml";
/// What Lattice names services without a custom domain name.
const APP1: &str = "app1-0a1b2c3d4e5f60001.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
const APP2: &str = "app2-0a1b2c3d4e5f60002.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
const HOW: &str = "(the Lattice service's DNS name; in the image: LATTICE_SERVICE_HOSTS)";

fn cases_dir() -> &'static Path {
    Path::new(concat!(env!("CARGO_MANIFEST_DIR"), "/tests/cases"))
}

/// `envoy-gen <args>` in the cases directory.
fn envoy_gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .args(args)
        .current_dir(cases_dir())
        .output()
        .unwrap()
}

/// `envoy-gen <command> --spec SPEC <args>`: the configuration on success,
/// the error output (nothing on stdout) on failure.
fn render(command: &[&str], args: &[&str]) -> Result<String, String> {
    let mut all = command.to_vec();
    all.extend(["--spec", SPEC]);
    all.extend(args);
    let out = envoy_gen(&all);
    if out.status.success() {
        // (policies notes services without an `id`)
        let stderr = String::from_utf8(out.stderr).unwrap();
        assert!(!stderr.contains("error"), "{stderr}");
        Ok(String::from_utf8(out.stdout).unwrap())
    } else {
        assert_eq!(out.status.code(), Some(1));
        assert!(out.stdout.is_empty(), "{all:?} failed but printed a configuration");
        Err(String::from_utf8(out.stderr).unwrap())
    }
}

fn both_hosts() -> [&'static str; 4] {
    [
        "--service-host",
        "app1=app1-0a1b2c3d4e5f60001.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
        "--service-host",
        "app2=app2-0a1b2c3d4e5f60002.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
    ]
}

fn yaml(text: &str) -> Value {
    serde_saphyr::from_str(text).unwrap()
}

fn cluster<'a>(config: &'a Value, name: &str) -> &'a Value {
    config["static_resources"]["clusters"]
        .as_array()
        .unwrap()
        .iter()
        .find(|c| c["name"] == name)
        .unwrap_or_else(|| panic!("no cluster {name}"))
}

/// The SNI, the verified certificate name and the address of a Lattice cluster.
fn cluster_hosts(config: &Value, name: &str) -> (String, String, String) {
    let cluster = cluster(config, name);
    let tls = &cluster["transport_socket"]["typed_config"];
    let endpoint = &cluster["load_assignment"]["endpoints"][0]["lb_endpoints"][0]["endpoint"];
    let san = &tls["common_tls_context"]["validation_context"]["match_typed_subject_alt_names"][0]["matcher"]["exact"];
    (
        tls["sni"].as_str().unwrap_or_default().to_string(),
        san.as_str().unwrap_or_default().to_string(),
        endpoint["address"]["socket_address"]["address"]
            .as_str()
            .unwrap_or_default()
            .to_string(),
    )
}

/// Every route of every virtual host: (cluster, host_rewrite_literal).
fn routes(config: &Value) -> Vec<(String, String)> {
    let mut out = Vec::new();
    let listeners = config["static_resources"]["listeners"].as_array().unwrap();
    for chain in listeners.iter().flat_map(|l| l["filter_chains"].as_array().unwrap()) {
        for filter in chain["filters"].as_array().unwrap() {
            let hosts = &filter["typed_config"]["route_config"]["virtual_hosts"];
            for host in hosts.as_array().into_iter().flatten() {
                for route in host["routes"].as_array().unwrap() {
                    if let Some(cluster) = route["route"]["cluster"].as_str() {
                        let rewrite = route["route"]["host_rewrite_literal"].as_str().unwrap_or_default();
                        out.push((cluster.to_string(), rewrite.to_string()));
                    }
                }
            }
        }
    }
    out
}

#[test]
fn policies_render_without_the_hosts() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("policies");
    render(&["policies"], &["-o", out_dir.to_str().unwrap()]).unwrap();
    let app1 = std::fs::read_to_string(out_dir.join("services/app1.json")).unwrap();
    assert!(app1.contains("arn:aws:iam::111122223333:role/app2"), "{app1}");
    assert!(out_dir.join("roles/app2.json").exists());
}

#[test]
fn the_frontend_refuses_services_without_a_host_naming_each_where_the_spec_does() {
    let dir = tempfile::tempdir().unwrap();
    let target = dir.path().join("envoy.yaml");
    assert_eq!(
        render(&["frontend"], &["-o", target.to_str().unwrap()]).unwrap_err(),
        format!(
            "error: generated_names.yaml:15:11: services[0].host: service `app1` has no host: give `host`, a `domain`, \
             or --service-host app1=HOST {HOW}\n   \
             |\n\
             15 |   - name: app1\n   \
             |           ^\n\
             error: generated_names.yaml:20:11: services[1].host: service `app2` has no host: give `host`, a `domain`, \
             or --service-host app2=HOST {HOW}\n   \
             |\n\
             20 |   - name: app2\n   \
             |           ^\n\
             error: 2 problems; nothing was written\n"
        )
    );
    assert!(!target.exists());
    // One host is not enough: the frontend routes to every service.
    assert_eq!(
        render(&["frontend"], &["--service-host", &format!("app1={APP1}")])
            .unwrap_err()
            .lines()
            .filter(|l| l.starts_with("error: "))
            .collect::<Vec<_>>(),
        [
            format!(
                "error: generated_names.yaml:20:11: services[1].host: service `app2` has no host: give `host`, \
                 a `domain`, or --service-host app2=HOST {HOW}"
            )
            .as_str(),
            "error: 1 problem; nothing was written"
        ]
    );
}

#[test]
fn the_frontend_connects_to_and_signs_for_the_given_hosts() {
    let config = yaml(&render(&["frontend"], &both_hosts()).unwrap());
    for (cluster, host) in [
        ("lattice_app1", APP1),
        ("lattice_app2", APP2),
        ("lattice_app3", "app3.example.com"),
    ] {
        assert_eq!(
            cluster_hosts(&config, cluster),
            (host.to_string(), host.to_string(), host.to_string()),
            "{cluster}"
        );
    }
    let rewrites = routes(&config);
    for (cluster, host) in [("lattice_app1", APP1), ("lattice_app2", APP2)] {
        assert!(
            rewrites.contains(&(cluster.to_string(), host.to_string())),
            "{cluster}: {rewrites:?}"
        );
    }
    assert!(rewrites.iter().all(|(_, rewrite)| !rewrite.is_empty()), "{rewrites:?}");

    // The flag also overrides a host the spec gives, lower-cased like the spec's.
    let mut args = both_hosts().to_vec();
    args.extend([
        "--service-host",
        "app3=APP3-0a1b2c3d4e5f60003.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
    ]);
    let config = yaml(&render(&["frontend"], &args).unwrap());
    let app3 = "app3-0a1b2c3d4e5f60003.7d67968.vpc-lattice-svcs.us-west-2.on.aws";
    assert_eq!(
        cluster_hosts(&config, "lattice_app3"),
        (app3.to_string(), app3.to_string(), app3.to_string())
    );
    assert!(routes(&config).contains(&("lattice_app3".to_string(), app3.to_string())));
}

#[test]
fn a_sidecar_needs_the_hosts_of_the_services_it_calls_only() {
    // app2 calls app1.
    assert_eq!(
        render(&["sidecar", "--service", "app2"], &[]).unwrap_err(),
        format!(
            "error: generated_names.yaml:15:11: services[0].host: service `app1` has no host: give `host`, a `domain`, \
             or --service-host app1=HOST {HOW}\n   \
             |\n\
             15 |   - name: app1\n   \
             |           ^\n\
             error: 1 problem; nothing was written\n"
        )
    );
    let config = yaml(
        &render(
            &["sidecar", "--service", "app2"],
            &["--service-host", &format!("app1={APP1}")],
        )
        .unwrap(),
    );
    assert_eq!(
        cluster_hosts(&config, "lattice_app1"),
        (APP1.to_string(), APP1.to_string(), APP1.to_string())
    );
    assert!(routes(&config).contains(&("lattice_app1".to_string(), APP1.to_string())));
    let domains: Vec<&Value> = config["static_resources"]["listeners"][0]["filter_chains"][0]["filters"][0]
        ["typed_config"]["route_config"]["virtual_hosts"]
        .as_array()
        .unwrap()
        .iter()
        .flat_map(|h| h["domains"].as_array().unwrap())
        .collect();
    assert!(domains.contains(&&Value::from(APP1)), "{domains:?}");
    // app1 and app3 call nothing: no host needed.
    for service in ["app1", "app3"] {
        render(&["sidecar", "--service", service], &[]).unwrap();
    }
}

#[test]
fn service_host_flags_are_checked() {
    let frontend = render(
        &["frontend"],
        &[
            "--service-host",
            "app1",
            "--service-host",
            "=x.example.com",
            "--service-host",
            "app9=x.example.com",
            "--service-host",
            "app2=bad_host",
            "--service-host",
            "app2=b.example.com",
            "--service-host",
            "app1=APP3.example.com",
        ],
    );
    assert_eq!(
        frontend.unwrap_err(),
        "error: --service-host: `app1` is not NAME=HOST (a service of the spec and its Lattice DNS name)\n\
         error: --service-host: `=x.example.com` is not NAME=HOST (a service of the spec and its Lattice DNS name)\n\
         error: --service-host: `app9` is not a service of the spec (app1, app2, app3)\n\
         error: --service-host: `bad_host` (service `app2`) is not a DNS name\n\
         error: --service-host: service `app2` is given more than once\n\
         error: --service-host: `app3.example.com` (service `app1`) is also the host of service `app3`\n\
         error: 6 problems; nothing was written\n"
    );
    // Two flags, one host; the sidecar takes the flag and checks it alike.
    let same = [
        "--service-host",
        "app1=x.example.com",
        "--service-host",
        "app2=X.example.com",
    ];
    let expected = "error: --service-host: `x.example.com` (service `app2`) is also the host of service `app1`\n\
                    error: 1 problem; nothing was written\n";
    assert_eq!(render(&["frontend"], &same).unwrap_err(), expected);
    assert_eq!(render(&["sidecar", "--service", "app2"], &same).unwrap_err(), expected);
    assert_eq!(
        render(
            &["sidecar", "--service", "app2"],
            &["--service-host", "app9=x.example.com"]
        )
        .unwrap_err(),
        "error: --service-host: `app9` is not a service of the spec (app1, app2, app3)\n\
         error: 1 problem; nothing was written\n"
    );
}

/// Services given by `--service` (no spec): the name alone has no host
/// without `--domain`, and `--service-host` gives it.
#[test]
fn flag_services_take_their_host_from_service_host() {
    let flags = ["frontend", "--no-oauth", "--region", "us-west-2", "--service", "app1"];
    let out = envoy_gen(&flags);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: --service: service `app1` has no host: give `host`, a `domain`, or --service-host app1=HOST {HOW}\n\
             error: 1 problem; nothing was written\n"
        )
    );
    let mut with_host = flags.to_vec();
    with_host.extend([
        "--service-host",
        "app1=app1-0a1b2c3d4e5f60001.7d67968.vpc-lattice-svcs.us-west-2.on.aws",
    ]);
    let out = envoy_gen(&with_host);
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let config = yaml(&String::from_utf8(out.stdout).unwrap());
    assert_eq!(
        cluster_hosts(&config, "lattice_app1"),
        (APP1.to_string(), APP1.to_string(), APP1.to_string())
    );
}
