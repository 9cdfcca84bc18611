//! The Envoy containers of the committed CloudFormation stacks
//! (`envoy/generated/<example>/cloudformation/stack.yaml`, which the golden
//! test keeps equal to what `envoy-gen cloudformation` renders), checked
//! from the outside through the image's entrypoint: each container's
//! environment, with the values CloudFormation substitutes at deploy time
//! resolved as Lattice would give them, makes `deploy/entrypoint.sh`
//! render exactly the configuration `envoy-gen frontend` / `envoy-gen
//! sidecar` renders from the example's spec. The stacks configure the
//! Envoys the spec describes.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use envoy_gen::ecs::{RUN_DIR, SPEC_PATH};
use envoy_gen::model::System;
use serde_json::{json, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::root;

/// The examples that are whole systems, each with its stack.
const EXAMPLES: [&str; 3] = ["platform", "reference", "services-only"];

/// Where the image keeps the Lattice CA (deploy/ecs/Dockerfile copies
/// `lattice-ca.pem` next to the spec); the golden stacks are rendered with it.
const IMAGE_CA: &str = "/etc/lattice-jwt/lattice-ca.pem";

fn spec(example: &str) -> PathBuf {
    root().join(format!("envoy/examples/{example}.yaml"))
}

fn system(example: &str) -> System {
    let path = spec(example);
    let text = std::fs::read_to_string(&path).unwrap();
    envoy_gen::load(Some((&path, &text)), &Default::default()).unwrap()
}

fn stack(example: &str) -> Value {
    let path = root().join(format!("envoy/generated/{example}/cloudformation/stack.yaml"));
    let text = std::fs::read_to_string(&path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str::<Value>(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

/// A DNS name of the form VPC Lattice generates for service `name` (the
/// one `lattice_hosts` in golden.rs gives, which the committed
/// configurations are rendered with).
fn lattice_dns_name(name: &str, region: &str) -> String {
    format!("{name}-0a1b2c3d4e5f60789.7d67968.vpc-lattice-svcs.{region}.on.aws")
}

/// `${X.DnsEntry.DomainName}` of the stack's Lattice service `X`, as
/// Lattice gives it (from the service's `Name`); any other reference is an
/// error naming it.
fn substitute(reference: &str, resources: &Value, region: &str) -> Result<String, String> {
    let Some(logical_id) = reference.strip_suffix(".DnsEntry.DomainName") else {
        return Err(format!(
            "`${{{reference}}}`: only ${{<service>.DnsEntry.DomainName}} is resolved here"
        ));
    };
    let resource = &resources[logical_id];
    if resource["Type"] != "AWS::VpcLattice::Service" {
        return Err(format!(
            "`${{{reference}}}`: {logical_id} is not an AWS::VpcLattice::Service of the stack ({})",
            resource["Type"]
        ));
    }
    let Some(name) = resource["Properties"]["Name"].as_str() else {
        return Err(format!("`${{{reference}}}`: {logical_id} has no plain Name"));
    };
    Ok(lattice_dns_name(name, region))
}

/// An environment value as the container sees it: a plain string as is;
/// `{"Fn::Sub": s}` with each `${X.DnsEntry.DomainName}` resolved (and
/// `${!...}` kept literally, as CloudFormation does). Anything else is an
/// error saying what.
fn resolve(value: &Value, resources: &Value, region: &str) -> Result<String, String> {
    if let Some(plain) = value.as_str() {
        return Ok(plain.to_string());
    }
    let template = match value.as_object() {
        Some(object) if object.len() == 1 => match &object.get("Fn::Sub") {
            Some(Value::String(template)) => template,
            _ => {
                return Err(format!(
                    "{value}: only a plain string or Fn::Sub of a string is resolved here"
                ))
            }
        },
        _ => return Err(format!("{value}: not a string")),
    };
    let mut out = String::new();
    let mut rest = template.as_str();
    while let Some(start) = rest.find("${") {
        out.push_str(&rest[..start]);
        let after = &rest[start + 2..];
        let end = after
            .find('}')
            .ok_or_else(|| format!("{template:?}: `${{` without `}}`"))?;
        let reference = &after[..end];
        match reference.strip_prefix('!') {
            Some(literal) => {
                out.push_str("${");
                out.push_str(literal);
                out.push('}');
            }
            None => out.push_str(&substitute(reference, resources, region)?),
        }
        rest = &after[end + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// One Envoy container of a stack (its environment has ENVOY_ROLE), with
/// its environment resolved.
struct Envoy {
    /// `<example> <task logical id>/<container name>`, for messages.
    at: String,
    environment: BTreeMap<String, String>,
}

/// The Envoy containers of every task definition of `example`'s stack.
fn envoys(example: &str, region: &str) -> Vec<Envoy> {
    let stack = stack(example);
    let resources = &stack["Resources"];
    let mut out = Vec::new();
    let mut problems = Vec::new();
    for (logical_id, resource) in resources.as_object().unwrap() {
        if resource["Type"] != "AWS::ECS::TaskDefinition" {
            continue;
        }
        for container in resource["Properties"]["ContainerDefinitions"].as_array().unwrap() {
            let at = format!("{example} {logical_id}/{}", container["Name"].as_str().unwrap());
            let mut environment = BTreeMap::new();
            for variable in container["Environment"].as_array().into_iter().flatten() {
                let name = variable["Name"].as_str().unwrap().to_string();
                match resolve(&variable["Value"], resources, region) {
                    Ok(value) => {
                        assert!(
                            environment.insert(name.clone(), value).is_none(),
                            "{at}: {name} is set twice"
                        );
                    }
                    Err(e) => problems.push(format!("{at}: {name}: {e}")),
                }
            }
            if environment.contains_key("ENVOY_ROLE") {
                out.push(Envoy { at, environment });
            }
        }
    }
    assert!(problems.is_empty(), "values this test cannot resolve: {problems:#?}");
    out
}

/// The image's entrypoint with `environment` (support::entrypoint), this
/// build's envoy-gen rendering.
fn entrypoint(environment: &BTreeMap<String, String>, run: &Path) -> Output {
    support::entrypoint(environment, run, env!("CARGO_BIN_EXE_envoy-gen"))
}

/// The container's environment as the test runs it: the spec and the CA
/// where this test keeps them, and the credentials variable ECS sets for a
/// task with a task role. Checks first that the stack puts them where the
/// image has them.
fn runnable(envoy: &Envoy, spec: &Path, ca: &Path, needs_ca: bool) -> BTreeMap<String, String> {
    let at = &envoy.at;
    let mut env = envoy.environment.clone();
    assert_eq!(env.get("SPEC_FILE").map(String::as_str), Some(SPEC_PATH), "{at}");
    assert_eq!(env.get("ENVOY_RUN_DIR").map(String::as_str), Some(RUN_DIR), "{at}");
    assert_eq!(
        env.get("CREDENTIALS_SOURCE").map(String::as_str),
        Some("container"),
        "{at}: Envoy signs as the task role"
    );
    env.insert("SPEC_FILE".into(), spec.display().to_string());
    if needs_ca {
        assert_eq!(
            env.get("LATTICE_CA").map(String::as_str),
            Some(IMAGE_CA),
            "{at}: custom domain names have certificates of the private CA the image holds"
        );
        env.insert("LATTICE_CA".into(), ca.display().to_string());
    } else {
        assert!(
            !env.contains_key("LATTICE_CA"),
            "{at}: Lattice's own DNS names have public certificates"
        );
    }
    env.insert(
        "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(),
        "/v2/credentials/task".into(),
    );
    env
}

/// The image's entrypoint, run with each Envoy container's environment from
/// the stack (its `${X.DnsEntry.DomainName}` resolved to a name of the form
/// Lattice generates), renders exactly what envoy-gen renders from the spec
/// with the same hosts: the stack configures the Envoys the spec describes.
/// Where the stack passes no private CA, that is also the committed golden
/// configuration (rendered with those very hosts).
#[test]
fn the_entrypoint_renders_from_each_stack_container_what_the_spec_describes() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("lattice-ca.pem");
    std::fs::write(&ca, "not read by this test\n").unwrap();
    let mut checked: BTreeMap<&str, BTreeSet<String>> = BTreeMap::new();
    for example in EXAMPLES {
        let system = system(example);
        let region = system.signing.region.clone();
        let spec = spec(example);
        // As golden.rs renders the stacks: a private CA when every service
        // has a custom domain name.
        let needs_ca = system.services.iter().all(|s| s.upstream.is_some());
        for envoy in envoys(example, &region) {
            let at = &envoy.at;
            let env = runnable(&envoy, &spec, &ca, needs_ca);
            let run = tempfile::tempdir().unwrap();
            let out = entrypoint(&env, run.path());
            assert!(out.status.success(), "{at}: {}", String::from_utf8_lossy(&out.stderr));
            let rendered = std::fs::read_to_string(run.path().join("envoy.yaml")).unwrap();

            let role = env["ENVOY_ROLE"].as_str();
            let mut args = vec![role, "--spec", spec.to_str().unwrap(), "--credentials", "container"];
            if needs_ca {
                args.extend(["--lattice-ca", ca.to_str().unwrap()]);
            }
            let hosts: Vec<&str> = env
                .get("LATTICE_SERVICE_HOSTS")
                .map(|hosts| hosts.split(',').collect())
                .unwrap_or_default();
            for entry in &hosts {
                // Each service gets its own Lattice DNS name.
                let (name, host) = entry.split_once('=').unwrap();
                assert_eq!(host, lattice_dns_name(name, &region), "{at}");
                args.extend(["--service-host", entry]);
            }
            if let Some(service) = env.get("SERVICE_NAME") {
                args.extend(["--service", service.as_str()]);
            }
            let expected = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
                .args(&args)
                .output()
                .unwrap();
            assert!(
                expected.status.success(),
                "{at}: {}",
                String::from_utf8_lossy(&expected.stderr)
            );
            assert_eq!(rendered, String::from_utf8(expected.stdout).unwrap(), "{at}");

            let what = match env.get("SERVICE_NAME") {
                Some(service) => format!("sidecar-{service}"),
                None => role.to_string(),
            };
            if !needs_ca {
                let golden = root().join(format!("envoy/generated/{example}/{what}.yaml"));
                assert_eq!(
                    rendered,
                    std::fs::read_to_string(&golden).unwrap(),
                    "{at}: {}",
                    golden.display()
                );
            }
            assert!(
                checked.entry(example).or_default().insert(what),
                "{at}: a second Envoy of that kind"
            );
        }
    }
    let expected: BTreeMap<&str, BTreeSet<String>> = [
        ("platform", &["frontend", "sidecar-orders"][..]),
        ("reference", &["frontend", "sidecar-app2"][..]),
        ("services-only", &["sidecar-app2"][..]),
    ]
    .into_iter()
    .map(|(example, envoys)| (example, envoys.iter().map(|e| e.to_string()).collect()))
    .collect();
    assert_eq!(checked, expected);
    assert_eq!(checked.values().map(BTreeSet::len).sum::<usize>(), 5);
}

/// Without `LATTICE_SERVICE_HOSTS` a container whose spec gives some
/// services no host refuses to start (exit 2, before Envoy), naming each
/// service it lacks a host for and the variable that gives it, and leaves
/// no configuration behind.
#[test]
fn without_the_lattice_service_hosts_the_envoys_refuse_to_start() {
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("lattice-ca.pem");
    std::fs::write(&ca, "not read by this test\n").unwrap();
    let example = "platform";
    let system = system(example);
    let spec = spec(example);
    let mut refused = Vec::new();
    for envoy in envoys(example, &system.signing.region) {
        let at = &envoy.at;
        let mut env = runnable(&envoy, &spec, &ca, false);
        let hosts = env
            .remove("LATTICE_SERVICE_HOSTS")
            .unwrap_or_else(|| panic!("{at}: no hosts"));
        let run = tempfile::tempdir().unwrap();
        let out = entrypoint(&env, run.path());
        let stderr = String::from_utf8_lossy(&out.stderr);
        assert_eq!(out.status.code(), Some(2), "{at}: {stderr}");
        assert!(stderr.contains("LATTICE_SERVICE_HOSTS"), "{at}: {stderr}");
        for entry in hosts.split(',') {
            let (name, _) = entry.split_once('=').unwrap();
            assert!(
                stderr.contains(&format!("service `{name}` has no host")),
                "{at}: {name}: {stderr}"
            );
        }
        assert!(!stderr.contains("starting Envoy"), "{at}: {stderr}");
        assert!(!run.path().join("envoy.yaml").exists(), "{at}");
        refused.push(at.clone());
    }
    assert_eq!(
        refused,
        [
            "platform FrontendTaskDefinition/frontend",
            "platform OrdersTaskDefinition/sidecar"
        ]
    );
}

/// What the resolution above does with what a stack could hold: Lattice
/// DNS names of the stack's services and `${!...}` literals are resolved;
/// every other reference or intrinsic fails, naming it.
#[test]
fn only_lattice_dns_names_of_the_stacks_services_are_resolved() {
    let stack = stack("platform");
    let resources = &stack["Resources"];
    let resolve = |value: Value| resolve(&value, resources, "eu-west-1");
    assert_eq!(resolve(json!("plain")), Ok("plain".to_string()));
    assert_eq!(
        resolve(json!({"Fn::Sub": "a=${OrdersService.DnsEntry.DomainName},${!Literal}"})),
        Ok("a=orders-0a1b2c3d4e5f60789.7d67968.vpc-lattice-svcs.eu-west-1.on.aws,${Literal}".to_string())
    );
    for (value, names) in [
        (json!({"Fn::Sub": "${OrdersService.Arn}"}), "`${OrdersService.Arn}`"),
        (json!({"Fn::Sub": "${AWS::Region}"}), "`${AWS::Region}`"),
        (json!({"Fn::Sub": "x=${Image}"}), "`${Image}`"),
        (
            json!({"Fn::Sub": "${InventoryTaskRole.DnsEntry.DomainName}"}),
            "InventoryTaskRole is not an AWS::VpcLattice::Service",
        ),
        (
            json!({"Fn::Sub": "${Missing.DnsEntry.DomainName}"}),
            "Missing is not an AWS::VpcLattice::Service",
        ),
        (json!({"Fn::Sub": "${OrdersService"}), "without"),
        (json!({"Fn::Sub": ["${X}", {"X": "y"}]}), "Fn::Sub of a string"),
        (json!({"Ref": "Image"}), "Ref"),
        (json!(20), "not a string"),
    ] {
        let error = resolve(value.clone()).unwrap_err();
        assert!(error.contains(names), "{value}: {error}");
    }
}
