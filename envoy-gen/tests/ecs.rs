//! The ECS task definitions of the reference (`envoy/generated/reference/ecs/`,
//! which the golden test keeps equal to what `envoy-gen ecs` renders),
//! checked from the outside: every member against the ECS API's own model
//! (`ecs_api/register_task_definition.json`, from botocore: what the AWS CLI
//! validates `--cli-input-json` with), Fargate's rules, the roles against the
//! identity policies `envoy-gen policies` writes, the Envoy containers against
//! the image (Dockerfile, entrypoint, health check) and, through the image's
//! entrypoint, against the configuration envoy-gen renders from the spec.
//! Then the command's own errors and its drift check.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

use envoy_gen::ecs::{FRONTEND_FILE, RUN_DIR, SPEC_PATH};
use envoy_gen::model::{Caller, System};
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn read(relative: &str) -> String {
    std::fs::read_to_string(root().join(relative)).unwrap_or_else(|e| panic!("{relative}: {e}"))
}

const SPEC: &str = "envoy/examples/reference.yaml";
const ECS_DIR: &str = "envoy/generated/reference/ecs";
const ROLES_DIR: &str = "envoy/generated/reference/policies/roles";

fn system() -> System {
    let path = root().join(SPEC);
    let text = std::fs::read_to_string(&path).unwrap();
    envoy_gen::load(Some((&path, &text)), &Default::default()).unwrap()
}

/// The committed task definitions, by file name.
fn tasks() -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for entry in std::fs::read_dir(root().join(ECS_DIR)).unwrap() {
        let path = entry.unwrap().path();
        let text = std::fs::read_to_string(&path).unwrap();
        let name = path.file_name().unwrap().to_string_lossy().into_owned();
        out.insert(name, serde_json::from_str(&text).unwrap());
    }
    assert_eq!(
        out.keys().cloned().collect::<Vec<_>>(),
        ["app1.json", "app2.json", "app3.json", FRONTEND_FILE]
    );
    out
}

fn containers(task: &Value) -> &Vec<Value> {
    task["containerDefinitions"].as_array().unwrap()
}

fn environment(container: &Value) -> BTreeMap<String, String> {
    container["environment"]
        .as_array()
        .map(|vars| {
            vars.iter()
                .map(|v| (v["name"].as_str().unwrap().into(), v["value"].as_str().unwrap().into()))
                .collect()
        })
        .unwrap_or_default()
}

/// The containers that run the image's Envoy (the entrypoint's ENVOY_ROLE).
fn envoys(task: &Value) -> Vec<&Value> {
    containers(task)
        .iter()
        .filter(|c| environment(c).contains_key("ENVOY_ROLE"))
        .collect()
}

/// Checks `value` against shape `name` of the API model, collecting every
/// member the model does not define, missing required members, wrong types
/// and values outside an enum.
fn check_shape(shapes: &Map<String, Value>, name: &str, value: &Value, at: &str, errors: &mut Vec<String>) {
    let shape = &shapes[name];
    let mut wrong = |expected: &str| errors.push(format!("{at}: expected {expected} ({name}), found {value}"));
    match shape["type"].as_str().unwrap() {
        "structure" => {
            let Some(object) = value.as_object() else {
                return wrong("an object");
            };
            for (key, member) in object {
                match shape["members"].get(key) {
                    Some(target) => {
                        check_shape(shapes, target.as_str().unwrap(), member, &format!("{at}.{key}"), errors)
                    }
                    None => errors.push(format!("{at}.{key}: not a member of {name}")),
                }
            }
            for required in shape["required"].as_array().unwrap() {
                if !object.contains_key(required.as_str().unwrap()) {
                    errors.push(format!("{at}: required member {required} of {name} is missing"));
                }
            }
        }
        "list" => {
            let Some(items) = value.as_array() else {
                return wrong("a list");
            };
            for (i, item) in items.iter().enumerate() {
                check_shape(
                    shapes,
                    shape["member"].as_str().unwrap(),
                    item,
                    &format!("{at}[{i}]"),
                    errors,
                );
            }
        }
        "map" => {
            let Some(object) = value.as_object() else {
                return wrong("a map");
            };
            for (key, item) in object {
                check_shape(
                    shapes,
                    shape["key"].as_str().unwrap(),
                    &json!(key),
                    &format!("{at} key"),
                    errors,
                );
                check_shape(
                    shapes,
                    shape["value"].as_str().unwrap(),
                    item,
                    &format!("{at}.{key}"),
                    errors,
                );
            }
        }
        "string" => match (value.as_str(), shape.get("enum")) {
            (None, _) => wrong("a string"),
            (Some(text), Some(values)) if !values.as_array().unwrap().contains(&json!(text)) => {
                wrong(&format!("one of {values}"))
            }
            _ => {}
        },
        "integer" | "long" => {
            if !value.is_i64() {
                wrong("an integer")
            }
        }
        "boolean" => {
            if !value.is_boolean() {
                wrong("a boolean")
            }
        }
        other => wrong(&format!("a {other}, which this check does not read")),
    }
}

fn api_errors(task: &Value) -> Vec<String> {
    let model: Value = serde_json::from_str(&read("envoy-gen/tests/ecs_api/register_task_definition.json")).unwrap();
    let mut errors = Vec::new();
    let shapes = model["shapes"].as_object().unwrap();
    check_shape(shapes, model["input"].as_str().unwrap(), task, "task", &mut errors);
    errors
}

#[test]
fn every_member_is_one_the_ecs_api_defines() {
    for (file, task) in tasks() {
        assert_eq!(api_errors(&task), Vec::<String>::new(), "{file}");
    }
    // The check itself finds a misspelt member, a missing required one, a
    // wrong type and a value outside an enum.
    let mut broken = tasks()[FRONTEND_FILE].clone();
    let container = &mut broken["containerDefinitions"][0];
    container["healthcheck"] = container["healthCheck"].take();
    container.as_object_mut().unwrap().remove("healthCheck");
    container["logConfiguration"]
        .as_object_mut()
        .unwrap()
        .remove("logDriver");
    container["essential"] = json!("true");
    broken["networkMode"] = json!("vpc");
    assert_eq!(
        api_errors(&broken),
        [
            "task.containerDefinitions[0].essential: expected a boolean (BoxedBoolean), found \"true\"",
            "task.containerDefinitions[0].healthcheck: not a member of ContainerDefinition",
            "task.containerDefinitions[0].logConfiguration: required member \"logDriver\" of LogConfiguration is missing",
            "task.networkMode: expected one of [\"bridge\",\"host\",\"awsvpc\",\"none\"] (NetworkMode), found \"vpc\"",
        ]
    );
}

/// What Fargate adds to the API's rules (RegisterTaskDefinition and
/// ContainerDefinition documentation): task-level CPU and memory, awsvpc,
/// awslogs with a stream prefix, no tmpfs, no host paths; and what holds a
/// task together: names, volumes and dependencies that resolve.
#[test]
fn every_task_is_one_fargate_runs() {
    for (file, task) in tasks() {
        assert_eq!(task["requiresCompatibilities"], json!(["FARGATE"]), "{file}");
        assert_eq!(task["networkMode"], "awsvpc", "{file}");
        assert!(task["cpu"].is_string() && task["memory"].is_string(), "{file}");
        assert_eq!(task["runtimePlatform"]["operatingSystemFamily"], "LINUX", "{file}");
        let volumes: BTreeSet<&str> = task["volumes"]
            .as_array()
            .map(|v| v.iter().map(|v| v["name"].as_str().unwrap()).collect())
            .unwrap_or_default();
        for volume in task["volumes"].as_array().into_iter().flatten() {
            assert_eq!(
                volume.as_object().unwrap().len(),
                1,
                "{file}: only task storage: {volume}"
            );
        }
        let names: Vec<&str> = containers(&task).iter().map(|c| c["name"].as_str().unwrap()).collect();
        assert_eq!(names.iter().collect::<BTreeSet<_>>().len(), names.len(), "{file}");
        let mut port_names = BTreeSet::new();
        for container in containers(&task) {
            let name = container["name"].as_str().unwrap();
            assert!(container.get("linuxParameters").is_none(), "{file}: {name}");
            assert_eq!(container["essential"], true, "{file}: {name}");
            let logs = &container["logConfiguration"];
            assert_eq!(logs["logDriver"], "awslogs", "{file}: {name}");
            for option in ["awslogs-group", "awslogs-region", "awslogs-stream-prefix"] {
                assert!(logs["options"][option].is_string(), "{file}: {name}: {option}");
            }
            assert_eq!(
                logs["options"]["awslogs-stream-prefix"], task["family"],
                "{file}: {name}"
            );
            for mount in container["mountPoints"].as_array().into_iter().flatten() {
                assert!(
                    volumes.contains(mount["sourceVolume"].as_str().unwrap()),
                    "{file}: {name}"
                );
            }
            for dependency in container["dependsOn"].as_array().into_iter().flatten() {
                let on = containers(&task)
                    .iter()
                    .find(|c| c["name"] == dependency["containerName"])
                    .unwrap_or_else(|| panic!("{file}: {name} depends on an unknown container"));
                if dependency["condition"] == "HEALTHY" {
                    assert!(on["healthCheck"].is_object(), "{file}: {name}");
                }
            }
            for mapping in container["portMappings"].as_array().into_iter().flatten() {
                let port_name = mapping["name"].as_str().unwrap();
                assert!(
                    port_names.insert(port_name.to_string()),
                    "{file}: port name {port_name} twice"
                );
                assert!(port_name
                    .bytes()
                    .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b"_-".contains(&b)));
            }
        }
    }
}

/// Each task runs as its component's role in the spec; each task with an
/// Envoy (which signs with the task role) runs as a role whose identity
/// policy `envoy-gen policies` writes and which allows every service that
/// Envoy may sign for, and every identity policy belongs to such a task.
#[test]
fn each_task_runs_as_the_role_the_identity_policies_grant() {
    let system = system();
    let tasks = tasks();
    let role_of = |task: &Value| task["taskRoleArn"].as_str().map(str::to_string);
    assert_eq!(
        role_of(&tasks[FRONTEND_FILE]),
        system.frontend.role.as_ref().map(|r| r.arn.clone())
    );
    for service in &system.services {
        let task = &tasks[&format!("{}.json", service.name)];
        assert_eq!(
            role_of(task),
            service.role.as_ref().map(|r| r.arn.clone()),
            "{}",
            service.name
        );
    }

    let account = system.account.clone().unwrap();
    let region = &system.signing.region;
    let service_arn = |name: &str| {
        let id = system.service(name).unwrap().id.clone().unwrap();
        format!("arn:aws:vpc-lattice:{region}:{account}:service/{id}/*")
    };
    let mut signing_roles = BTreeSet::new();
    for (file, task) in &tasks {
        let Some(envoy) = envoys(task).first().copied() else {
            continue;
        };
        let arn = role_of(task).unwrap_or_else(|| panic!("{file}: an Envoy signs, but the task has no role"));
        let role = arn.rsplit('/').next().unwrap().to_string();
        let policy: Value = serde_json::from_str(&read(&format!("{ROLES_DIR}/{role}.json")))
            .unwrap_or_else(|e| panic!("{file}: role {role} has no identity policy: {e}"));
        let statement = &policy["Statement"][0];
        assert_eq!(statement["Effect"], "Allow");
        assert_eq!(statement["Action"], "vpc-lattice-svcs:Invoke");
        let resources: BTreeSet<String> = match &statement["Resource"] {
            Value::String(one) => BTreeSet::from([one.clone()]),
            many => many
                .as_array()
                .unwrap()
                .iter()
                .map(|r| r.as_str().unwrap().into())
                .collect(),
        };
        let targets: BTreeSet<String> = match environment(envoy).get("SERVICE_NAME") {
            Some(name) => system
                .service(name)
                .unwrap()
                .calls
                .iter()
                .map(|t| service_arn(t))
                .collect(),
            None => system
                .services
                .iter()
                .filter(|s| s.callers.iter().any(|c| matches!(c, Caller::Frontend { .. })))
                .map(|s| service_arn(&s.name))
                .collect(),
        };
        assert_eq!(resources, targets, "{file}: role {role}");
        signing_roles.insert(role);
    }
    let policies: BTreeSet<String> = std::fs::read_dir(root().join(ROLES_DIR))
        .unwrap()
        .map(|e| e.unwrap().path().file_stem().unwrap().to_string_lossy().into_owned())
        .collect();
    assert_eq!(signing_roles, policies);
    assert_eq!(
        signing_roles,
        BTreeSet::from(["app2".to_string(), "frontend".to_string()])
    );
}

/// `HEALTHCHECK --interval=10s ... CMD ["..."]` of the runtime image.
fn image_healthcheck() -> Value {
    let dockerfile = read("Dockerfile");
    let text = dockerfile
        .split("HEALTHCHECK ")
        .nth(1)
        .unwrap()
        .split("\nENTRYPOINT")
        .next()
        .unwrap()
        .replace("\\\n", " ");
    let (options, command) = text.split_once("CMD ").unwrap();
    let seconds = |option: &str| -> u64 {
        let value = options.split(&format!("--{option}=")).nth(1).unwrap();
        value.split('s').next().unwrap().parse().unwrap()
    };
    let command: Vec<String> = serde_json::from_str(command.trim()).unwrap();
    json!({
        "command": ["CMD", command[0]],
        "interval": seconds("interval"),
        "timeout": seconds("timeout"),
        "retries": options.split("--retries=").nth(1).unwrap().split_whitespace().next().unwrap().parse::<u64>().unwrap(),
        "startPeriod": seconds("start-period"),
    })
}

#[test]
fn envoy_containers_run_as_the_image_expects() {
    let entrypoint = read("deploy/entrypoint.sh");
    let ecs_dockerfile = read("deploy/ecs/Dockerfile");
    assert!(read("Dockerfile").contains("\nUSER 101\n"));
    assert!(ecs_dockerfile.contains(&format!("\nVOLUME [\"{RUN_DIR}\"]\n")));
    assert!(ecs_dockerfile.contains(&format!("\nRUN mkdir -p {RUN_DIR}\n")));
    let spec_dir = SPEC_PATH.rsplit_once('/').unwrap().0;
    assert!(ecs_dockerfile.contains(&format!("\nCOPY spec.yaml lattice-ca.pe[m] {spec_dir}/\n")));
    let healthcheck = image_healthcheck();
    let mut seen = 0;
    for (file, task) in tasks() {
        for container in containers(&task) {
            for secret in ["AWS_ACCESS_KEY_ID", "AWS_SECRET_ACCESS_KEY", "AWS_SESSION_TOKEN"] {
                assert!(!environment(container).contains_key(secret), "{file}: {secret}");
            }
            assert!(container.get("secrets").is_none());
        }
        for envoy in envoys(&task) {
            seen += 1;
            let env = environment(envoy);
            for name in env.keys() {
                let reads = [
                    format!("given {name}"),
                    format!("require {name} "),
                    format!("${{{name}"),
                ];
                assert!(
                    reads.iter().any(|r| entrypoint.contains(r.as_str())),
                    "{file}: the entrypoint does not read {name}"
                );
            }
            assert_eq!(env["CREDENTIALS_SOURCE"], "container", "{file}");
            assert_eq!(env["SPEC_FILE"], SPEC_PATH, "{file}");
            assert_eq!(env["ENVOY_RUN_DIR"], RUN_DIR, "{file}");
            assert_eq!(envoy["user"], "101", "{file}");
            assert_eq!(envoy["readonlyRootFilesystem"], true, "{file}");
            assert_eq!(
                envoy["mountPoints"],
                json!([{"sourceVolume": "envoy-run", "containerPath": RUN_DIR, "readOnly": false}]),
                "{file}"
            );
            assert_eq!(envoy["healthCheck"], healthcheck, "{file}");
        }
    }
    assert_eq!(seen, 2, "the frontend and app2's sidecar");
}

/// The image's entrypoint, run with an Envoy container's environment (the
/// spec and CA where this test keeps them, ECS's credentials variable, and
/// `true` for Envoy), renders exactly what envoy-gen renders from the spec:
/// the task definitions configure the Envoy the spec describes.
#[test]
fn the_entrypoint_renders_from_each_task_what_the_spec_describes() {
    let spec = root().join(SPEC);
    let dir = tempfile::tempdir().unwrap();
    let ca = dir.path().join("lattice-ca.pem");
    std::fs::write(&ca, "not read by this test\n").unwrap();
    let mut checked = 0;
    for (file, task) in tasks() {
        for envoy in envoys(&task) {
            let run = tempfile::tempdir().unwrap();
            let mut env = environment(envoy);
            env.insert("SPEC_FILE".into(), spec.display().to_string());
            env.insert("ENVOY_RUN_DIR".into(), run.path().display().to_string());
            assert!(
                env.contains_key("LATTICE_CA"),
                "{file}: the reference needs its private CA"
            );
            env.insert("LATTICE_CA".into(), ca.display().to_string());
            env.insert(
                "AWS_CONTAINER_CREDENTIALS_RELATIVE_URI".into(),
                "/v2/credentials/task".into(),
            );
            env.insert("ENVOY_BIN".into(), "true".into());
            env.insert("ENVOY_GEN_BIN".into(), env!("CARGO_BIN_EXE_envoy-gen").into());
            env.insert("PATH".into(), "/usr/local/bin:/usr/bin:/bin".into());
            let out = Command::new("bash")
                .arg(root().join("deploy/entrypoint.sh"))
                .env_clear()
                .envs(&env)
                .output()
                .unwrap();
            assert!(out.status.success(), "{file}: {}", String::from_utf8_lossy(&out.stderr));
            let rendered = std::fs::read_to_string(run.path().join("envoy.yaml")).unwrap();

            let role = env["ENVOY_ROLE"].as_str();
            let mut args = vec![role, "--spec", spec.to_str().unwrap(), "--credentials", "container"];
            args.extend(["--lattice-ca", ca.to_str().unwrap()]);
            if let Some(service) = env.get("SERVICE_NAME") {
                args.extend(["--service", service.as_str()]);
            }
            let expected = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
                .args(&args)
                .output()
                .unwrap();
            assert!(expected.status.success());
            assert_eq!(rendered, String::from_utf8(expected.stdout).unwrap(), "{file}");
            checked += 1;
        }
    }
    assert_eq!(checked, 2);
}

/// A service that calls others gets its sidecar, started first and found
/// through `HTTP_PROXY`, with the task's credentials endpoint kept off the
/// proxy; a service that calls nothing gets no sidecar and no proxy.
#[test]
fn an_app_reaches_other_services_only_through_its_sidecar() {
    let system = system();
    let tasks = tasks();
    for service in &system.services {
        let task = &tasks[&format!("{}.json", service.name)];
        let app = containers(task).iter().find(|c| c["name"] == "app").unwrap();
        assert_eq!(
            app["portMappings"],
            json!([{"name": "app", "containerPort": 8080, "protocol": "tcp"}])
        );
        let env = environment(app);
        if service.calls.is_empty() {
            assert_eq!(containers(task).len(), 1, "{}", service.name);
            assert!(env.is_empty(), "{}", service.name);
            continue;
        }
        let sidecar = containers(task).iter().find(|c| c["name"] == "sidecar").unwrap();
        assert_eq!(environment(sidecar)["SERVICE_NAME"], service.name);
        assert!(
            sidecar.get("portMappings").is_none(),
            "the sidecar listens on loopback only"
        );
        assert_eq!(
            app["dependsOn"],
            json!([{"containerName": "sidecar", "condition": "HEALTHY"}])
        );
        let listen = &service.sidecar.listen;
        let proxy = format!("http://{}:{}", listen.address, listen.port);
        assert_eq!(env["HTTP_PROXY"], proxy);
        assert_eq!(env["http_proxy"], proxy);
        for name in ["NO_PROXY", "no_proxy"] {
            let direct: Vec<&str> = env[name].split(',').collect();
            for address in ["169.254.170.2", "127.0.0.1", "localhost"] {
                assert!(direct.contains(&address), "{name} lacks {address}");
            }
        }
    }
}

fn envoy_gen(args: &[&str]) -> Output {
    Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .args(args)
        .output()
        .unwrap()
}

fn reference_spec() -> String {
    root().join(SPEC).display().to_string()
}

const IMAGES: [&str; 8] = [
    "--image",
    "lattice-jwt:reference",
    "--app-image",
    "app1=app1:1",
    "--app-image",
    "app2=app2:1",
    "--app-image",
    "app3=app3:1",
];

#[test]
fn problems_are_reported_together_and_nothing_is_written() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("ecs");
    let spec = reference_spec();
    let mut args = vec!["ecs", "--spec", spec.as_str(), "-o", out_dir.to_str().unwrap()];
    args.extend([
        "--image",
        "lattice jwt",
        "--app-image",
        "app1=app1:1",
        "--app-image",
        "app9=x",
        "--app-image",
        "app1=again",
        "--app-port",
        "app2=15001",
        "--execution-role",
        "ecsTaskExecutionRole",
        "--log-group",
        "logs group",
        "--cpu",
        "512",
        "--memory",
        "512",
    ]);
    let out = envoy_gen(&args);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --image: `lattice jwt` is not an image reference (repository-url/image:tag or ...@sha256:digest)\n\
         error: --app-image: `app9` is not a service of the spec (app1, app2, app3)\n\
         error: --app-image: service `app1` is given twice\n\
         error: --app-image: no image for app2, app3: give --app-image SERVICE=IMAGE for every service\n\
         error: --app-port: app2: port 15001 is its sidecar's (the containers of a task share one network namespace)\n\
         error: --execution-role: `ecsTaskExecutionRole` is not an IAM role ARN like arn:aws:iam::111122223333:role/NAME\n\
         error: --log-group: `logs group` is not a log group name (1-512 letters, digits and `.-_/#`)\n\
         error: --memory: 512 MiB is not a Fargate size for 512 CPU units (1024 to 4096 MiB in steps of 1024)\n\
         error: 8 problems; nothing was written\n"
    );
    assert!(!out_dir.exists());
}

#[test]
fn the_spec_must_name_the_account_and_the_roles_and_no_test_endpoint() {
    let dir = tempfile::tempdir().unwrap();
    let local = root().join("envoy/examples/local.yaml");
    let out = envoy_gen(
        &[
            &["ecs", "--spec", local.to_str().unwrap(), "--check", "."],
            &IMAGES[..2],
        ]
        .concat(),
    );
    assert_eq!(out.status.code(), Some(1));
    let stderr = String::from_utf8(out.stderr).unwrap();
    for expected in [
        ": account: is required for ECS task definitions (the 12-digit AWS account of the task roles)\n",
        ": frontend.role: is required for ECS task definitions: the frontend's task runs as this role and Envoy signs with it (or give --no-frontend)\n",
        ": lattice.endpoint: is for local testing: the tasks would connect there instead of to ",
    ] {
        assert!(stderr.contains(expected), "missing {expected:?} in {stderr}");
    }

    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, read(SPEC) + "lattice: {endpoint: 127.0.0.1:8443}\n").unwrap();
    let out = envoy_gen(&[&["ecs", "--spec", spec.to_str().unwrap(), "--check", "."], &IMAGES[..]].concat());
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: {}: lattice.endpoint: is for local testing: the tasks would connect there instead of to app1, app2, app3; remove it from the spec the image holds\n\
             error: 1 problem; nothing was written\n",
            spec.display()
        )
    );
}

#[test]
fn check_reports_drift_and_writing_again_repairs_it() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("ecs");
    let spec = reference_spec();
    let run = |mode: &str| {
        envoy_gen(
            &[
                &["ecs", "--spec", spec.as_str(), mode, out_dir.to_str().unwrap()],
                &IMAGES[..],
            ]
            .concat(),
        )
    };
    assert!(run("-o").status.success());
    let check = run("--check");
    assert!(check.status.success());
    assert_eq!(
        String::from_utf8(check.stdout).unwrap(),
        format!("{}: the task definitions match the spec\n", out_dir.display())
    );

    let app2 = out_dir.join("app2.json");
    std::fs::write(
        &app2,
        std::fs::read_to_string(&app2).unwrap().replace("HEALTHY", "START"),
    )
    .unwrap();
    std::fs::remove_file(out_dir.join(FRONTEND_FILE)).unwrap();
    std::fs::write(out_dir.join("app4.json"), "{}").unwrap();
    let out = run("--check");
    assert_eq!(out.status.code(), Some(1));
    let d = out_dir.display();
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        format!(
            "error: {d}/app2.json: differs from the spec\n\
             error: {d}/frontend.json: missing\n\
             error: {d}/app4.json: not rendered from the spec (stale)\n\
             error: the task definitions differ from the spec: run `envoy-gen ecs --spec ... -o DIR` with the same flags and review the diff\n"
        )
    );
    assert!(run("-o").status.success());
    assert!(run("--check").status.success());
    assert!(!out_dir.join("app4.json").exists());
}

/// The reference sample deployed with enable_oauth=False runs no frontend:
/// `--no-frontend` renders the services alone, once no service admits the
/// frontend any more.
#[test]
fn no_frontend_renders_the_services_alone() {
    let dir = tempfile::tempdir().unwrap();
    let out_dir = dir.path().join("ecs");
    let spec = reference_spec();
    let no_frontend = |spec: &str| {
        envoy_gen(
            &[
                &["ecs", "--spec", spec, "--no-frontend", "-o", out_dir.to_str().unwrap()],
                &IMAGES[..],
            ]
            .concat(),
        )
    };
    let out = no_frontend(&spec);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8(out.stderr).unwrap(),
        "error: --no-frontend: app1, app2 admit the frontend (`from: frontend`): remove those callers, or deploy the frontend\n\
         error: 1 problem; nothing was written\n"
    );

    let without_users = read(SPEC)
        .replace(
            "      - from: frontend           # users whose token carries test.all\n        scopes: [test.all]\n",
            "",
        )
        .replace(
            "    callers:\n      - from: frontend\n        scopes: [test.all]\n",
            "    callers: []\n",
        );
    assert!(!without_users.contains("from: frontend"));
    let spec = dir.path().join("spec.yaml");
    std::fs::write(&spec, without_users).unwrap();
    std::fs::create_dir_all(&out_dir).unwrap();
    std::fs::write(out_dir.join(FRONTEND_FILE), "{}").unwrap();
    let out = no_frontend(spec.to_str().unwrap());
    assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
    let mut files: Vec<String> = std::fs::read_dir(&out_dir)
        .unwrap()
        .map(|e| e.unwrap().file_name().to_string_lossy().into_owned())
        .collect();
    files.sort();
    assert_eq!(files, ["app1.json", "app2.json", "app3.json"]);
}
