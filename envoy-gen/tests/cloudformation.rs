//! The CloudFormation stacks (`envoy/generated/<example>/cloudformation/`,
//! which the golden test keeps equal to what `envoy-gen cloudformation`
//! renders), checked from the outside:
//!
//! - by the field's own tools: cfn-lint (AWS's CloudFormation linter: the
//!   resource schemas, names, references) reports nothing at all, and
//!   checkov fails no check and skips each with a reason;
//! - one source of truth: every auth policy and identity policy in the
//!   stack, its references resolved, is the document `envoy-gen policies`
//!   wrote, and every task definition is the one `envoy-gen ecs` wrote;
//! - `--split` holds exactly the single stack's resources, once its imports
//!   are resolved to what the other stacks export, in an order that deploys;
//! - what AWS would refuse is refused at render time, with the spec's file,
//!   line and field, and nothing is written.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing, clippy::expect_used)]

use envoy_gen::cloudformation::word;
use envoy_gen::model::System;
use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn system(example: &str) -> System {
    let path = root().join(format!("envoy/examples/{example}.yaml"));
    let text = std::fs::read_to_string(&path).unwrap();
    envoy_gen::load(Some((&path, &text)), &Default::default()).unwrap()
}

fn generated(example: &str) -> PathBuf {
    root().join("envoy/generated").join(example)
}

/// The examples that are whole systems, each with its stacks.
const EXAMPLES: [&str; 3] = ["platform", "reference", "services-only"];

fn read_yaml(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_saphyr::from_str(&text).unwrap_or_else(|e| panic!("{}: {e}", path.display()))
}

fn read_json(path: &Path) -> Value {
    let text = std::fs::read_to_string(path).unwrap_or_else(|e| panic!("{}: {e}", path.display()));
    serde_json::from_str(&text).unwrap()
}

/// The stack files of every example: `stack.yaml` and the `--split` ones.
fn stack_files() -> Vec<PathBuf> {
    let mut out = Vec::new();
    for example in EXAMPLES {
        let dir = generated(example).join("cloudformation");
        out.push(dir.join("stack.yaml"));
        let mut split: Vec<PathBuf> = std::fs::read_dir(dir.join("split"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        split.sort();
        out.extend(split);
    }
    for file in &out {
        assert!(file.is_file(), "{} is missing: run `make generate`", file.display());
    }
    out
}

/// A tool `make cfn-tools` installs into the project's virtualenv.
fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make cfn-tools` (make test does)",
        path.display()
    );
    path
}

#[test]
fn cfn_lint_reports_no_error_and_no_warning() {
    let files = stack_files();
    // 3 single stacks; split: platform 5, reference 5, services-only 4.
    assert!(files.len() >= 17, "{files:?}");
    let out = Command::new(venv_tool("cfn-lint"))
        .arg("--format")
        .arg("parseable")
        .arg("--")
        .args(&files)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success() && report.trim().is_empty(),
        "cfn-lint (exit {:?}):\n{report}{}",
        out.status.code(),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// cfn-lint finds what the tests expect it to: the check above would pass
/// on a tool that reads nothing.
#[test]
fn cfn_lint_refuses_a_broken_stack() {
    let mut stack = read_yaml(&generated("reference").join("cloudformation/stack.yaml"));
    stack["Resources"]["App1Service"]["Properties"]["Name"] = json!("App_1");
    stack["Resources"]["App1Listener"]["Properties"]["Port"] = json!("https");
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("broken.json");
    std::fs::write(&file, serde_json::to_string(&stack).unwrap()).unwrap();
    let out = Command::new(venv_tool("cfn-lint"))
        .arg("--format")
        .arg("parseable")
        .arg("--")
        .arg(&file)
        .output()
        .unwrap();
    let report = String::from_utf8_lossy(&out.stdout);
    assert!(!out.status.success(), "{report}");
    assert!(report.contains("App_1"), "{report}");
    assert!(report.contains("'https'"), "{report}");
}

/// checkov's result on `files`, scanned together: (failed, skipped with
/// their comments, passed, resources).
fn checkov(files: &[PathBuf]) -> (Vec<String>, Vec<(String, String)>, u64, u64) {
    // One directory holds them all: checkov writes one report per
    // directory it is given.
    let dir = tempfile::tempdir().unwrap();
    for (i, file) in files.iter().enumerate() {
        let name = format!("{i:02}-{}", file.file_name().unwrap().to_string_lossy());
        std::fs::copy(file, dir.path().join(name)).unwrap();
    }
    // No download of Prisma Cloud's guidelines: the checks are the
    // package's own, and these machines reach no other host.
    let out = Command::new(venv_tool("checkov"))
        .arg("--directory")
        .arg(dir.path())
        .args([
            "--framework",
            "cloudformation",
            "--skip-download",
            "--compact",
            "-o",
            "json",
        ])
        .env("BC_SKIP_MAPPING", "TRUE")
        .output()
        .unwrap();
    let text = String::from_utf8_lossy(&out.stdout);
    let report: Value =
        serde_json::from_str(&text).unwrap_or_else(|e| panic!("checkov's output is not JSON ({e}): {text}"));
    let report = match report {
        Value::Array(mut reports) => {
            assert_eq!(reports.len(), 1, "{reports:?}");
            reports.remove(0)
        }
        single => single,
    };
    let summary = &report["summary"];
    assert_eq!(summary["parsing_errors"], 0, "{summary}");
    let failed = report["results"]["failed_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| format!("{} {} ({})", c["check_id"], c["resource"], c["file_path"]))
        .collect();
    let skipped = report["results"]["skipped_checks"]
        .as_array()
        .into_iter()
        .flatten()
        .map(|c| {
            (
                c["check_id"].as_str().unwrap().to_string(),
                c["check_result"]["suppress_comment"]
                    .as_str()
                    .unwrap_or_default()
                    .to_string(),
            )
        })
        .collect();
    (
        failed,
        skipped,
        summary["passed"].as_u64().unwrap(),
        summary["resource_count"].as_u64().unwrap(),
    )
}

#[test]
fn checkov_fails_no_check_and_says_why_it_skips_one() {
    let (failed, skipped, passed, resources) = checkov(&stack_files());
    assert!(failed.is_empty(), "checkov failed checks: {failed:#?}");
    // 3 single stacks and their split twins.
    assert!(
        passed > 400 && resources > 250,
        "{passed} checks passed on {resources} resources"
    );
    let ids: BTreeSet<&str> = skipped.iter().map(|(id, _)| id.as_str()).collect();
    assert_eq!(ids, BTreeSet::from(["CKV_AWS_158", "CKV_AWS_91"]), "{skipped:?}");
    for (id, comment) in &skipped {
        assert!(comment.len() > 20, "{id} is skipped without a reason: {comment:?}");
    }
}

/// checkov finds what the tests expect it to: a skip taken away and SSH
/// opened to the world fail.
#[test]
fn checkov_fails_a_weakened_stack() {
    let mut stack = read_yaml(&generated("reference").join("cloudformation/stack.yaml"));
    stack["Resources"]["LogGroup"]
        .as_object_mut()
        .unwrap()
        .remove("Metadata");
    stack["Resources"]["App1SecurityGroup"]["Properties"]["SecurityGroupIngress"]
        .as_array_mut()
        .unwrap()
        .push(json!({"IpProtocol": "tcp", "FromPort": 22, "ToPort": 22, "CidrIp": "0.0.0.0/0", "Description": "ssh"}));
    let dir = tempfile::tempdir().unwrap();
    let file = dir.path().join("weak.json");
    std::fs::write(&file, serde_json::to_string(&stack).unwrap()).unwrap();
    let (failed, ..) = checkov(&[file]);
    let ids: BTreeSet<&str> = failed.iter().filter_map(|f| f.split('"').nth(1)).collect();
    assert_eq!(ids, BTreeSet::from(["CKV_AWS_158", "CKV_AWS_24"]), "{failed:?}");
}

/// What a template's references stand for here: the spec's ARNs (with the
/// services' ids), and the images, execution role and log group the
/// golden task definitions were rendered with.
fn names(example: &str, system: &System) -> BTreeMap<String, String> {
    let account = system.account.clone().unwrap();
    let region = system.signing.region.clone();
    let registry = format!("{account}.dkr.ecr.{region}.amazonaws.com");
    let mut names = BTreeMap::from([
        ("Image".to_string(), format!("{registry}/lattice-jwt:{example}")),
        ("LogGroup".to_string(), "/ecs/lattice-jwt".to_string()),
        (
            "TaskExecutionRole.Arn".to_string(),
            format!("arn:aws:iam::{account}:role/ecsTaskExecutionRole"),
        ),
        ("AWS::Region".to_string(), region.clone()),
    ]);
    let roles = system
        .frontend
        .role
        .iter()
        .chain(system.services.iter().filter_map(|s| s.role.as_ref()));
    for role in roles {
        names.insert(format!("{}TaskRole.Arn", word(&role.name)), role.arn.clone());
        names.insert(format!("{}TaskRole", word(&role.name)), role.name.clone());
    }
    for service in &system.services {
        let id = service.id.clone().unwrap_or_else(|| format!("svc-of-{}", service.name));
        names.insert(
            format!("{}Service.Arn", word(&service.name)),
            format!("arn:aws:vpc-lattice:{region}:{account}:service/{id}"),
        );
        names.insert(
            format!("{}Image", word(&service.name)),
            format!("{registry}/{}:latest", service.name),
        );
    }
    names
}

/// `value` with every `Fn::Sub`, `Ref` and `Fn::GetAtt` replaced by what
/// `names` says it stands for.
fn resolve(value: &Value, names: &BTreeMap<String, String>) -> Value {
    let name = |key: &str| {
        names
            .get(key)
            .unwrap_or_else(|| panic!("no value for reference `{key}`"))
            .clone()
    };
    match value {
        Value::Object(map) if map.len() == 1 => {
            let (key, inner) = map.iter().next().unwrap();
            match (key.as_str(), inner) {
                ("Fn::Sub", Value::String(text)) => {
                    let mut out = text.clone();
                    while let Some(start) = out.find("${") {
                        let end = start + out[start..].find('}').unwrap();
                        let reference = out[start + 2..end].to_string();
                        out.replace_range(start..=end, &name(&reference));
                    }
                    Value::String(out)
                }
                ("Ref", Value::String(reference)) => Value::String(name(reference)),
                ("Fn::GetAtt", Value::Array(parts)) => Value::String(name(&format!(
                    "{}.{}",
                    parts[0].as_str().unwrap(),
                    parts[1].as_str().unwrap()
                ))),
                _ => Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve(v, names))).collect()),
            }
        }
        Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), resolve(v, names))).collect()),
        Value::Array(items) => Value::Array(items.iter().map(|v| resolve(v, names)).collect()),
        other => other.clone(),
    }
}

/// CloudFormation's `PascalCase` members as the ECS API's `camelCase`,
/// except inside a log configuration's options.
fn camel(value: &Value) -> Value {
    match value {
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| {
                    let v = if k == "Options" { v.clone() } else { camel(v) };
                    (k[..1].to_ascii_lowercase() + &k[1..], v)
                })
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(camel).collect()),
        other => other.clone(),
    }
}

fn resources<'a>(stack: &'a Value, kind: &str) -> BTreeMap<&'a str, &'a Value> {
    stack["Resources"]
        .as_object()
        .unwrap()
        .iter()
        .filter(|(_, r)| r["Type"] == kind)
        .map(|(id, r)| (id.as_str(), r))
        .collect()
}

#[test]
fn the_policies_are_those_envoy_gen_policies_writes() {
    for example in EXAMPLES {
        let system = system(example);
        let names = names(example, &system);
        let stack = read_yaml(&generated(example).join("cloudformation/stack.yaml"));
        let policies = generated(example).join("policies");

        let auth = resources(&stack, "AWS::VpcLattice::AuthPolicy");
        assert_eq!(auth.len(), system.services.len() + 1, "{example}");
        let network = auth["ServiceNetworkAuthPolicy"];
        assert_eq!(
            network["Properties"]["ResourceIdentifier"],
            json!({"Fn::GetAtt": ["ServiceNetwork", "Arn"]})
        );
        assert_eq!(
            resolve(&network["Properties"]["Policy"], &names),
            read_json(&policies.join("service-network.json")),
            "{example}: the service network's auth policy"
        );
        for service in &system.services {
            let policy = auth[format!("{}AuthPolicy", word(&service.name)).as_str()];
            assert_eq!(
                policy["Properties"]["ResourceIdentifier"],
                json!({"Fn::GetAtt": [format!("{}Service", word(&service.name)), "Arn"]})
            );
            assert_eq!(
                resolve(&policy["Properties"]["Policy"], &names),
                read_json(&policies.join("services").join(format!("{}.json", service.name))),
                "{example}: the auth policy of {}",
                service.name
            );
        }

        let identity = resources(&stack, "AWS::IAM::RolePolicy");
        let mut role_files: Vec<PathBuf> = std::fs::read_dir(policies.join("roles"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        role_files.sort();
        assert_eq!(identity.len(), role_files.len(), "{example}: {identity:?}");
        for file in role_files {
            let role = file.file_stem().unwrap().to_str().unwrap();
            let policy = identity[format!("{}InvokePolicy", word(role)).as_str()];
            assert_eq!(resolve(&policy["Properties"]["RoleName"], &names), json!(role));
            // In the stack a service is named by its resource, whose ARN
            // is the one the spec's `id` gives: the same document.
            let mut expected = read_json(&file);
            let statement = &mut expected["Statement"][0];
            if let Value::String(one) = &statement["Resource"] {
                statement["Resource"] = json!([one]);
            }
            let mut actual = resolve(&policy["Properties"]["PolicyDocument"], &names);
            if let Value::String(one) = &actual["Statement"][0]["Resource"] {
                actual["Statement"][0]["Resource"] = json!([one]);
            }
            if example == "reference" {
                assert_eq!(actual, expected, "{example}: the identity policy of {role}");
            } else {
                // Without ids in the spec, `envoy-gen policies` names every
                // service of the account; the stack names its own.
                assert_eq!(actual["Statement"][0]["Action"], expected["Statement"][0]["Action"]);
                for resource in actual["Statement"][0]["Resource"].as_array().unwrap() {
                    let resource = resource.as_str().unwrap();
                    assert!(
                        resource.contains(":service/svc-of-") && resource.ends_with("/*"),
                        "{resource}"
                    );
                }
            }
        }

        // Each role the stack creates has the name and path of the spec's ARN.
        for (id, role) in resources(&stack, "AWS::IAM::Role") {
            if let Some(arn) = names.get(&format!("{id}.Arn")).filter(|_| id.ends_with("TaskRole")) {
                let properties = &role["Properties"];
                let name = properties["RoleName"].as_str().unwrap();
                let path = properties["Path"].as_str().unwrap();
                assert_eq!(
                    *arn,
                    format!("arn:aws:iam::{}:role{path}{name}", system.account.clone().unwrap())
                );
                let trust = &properties["AssumeRolePolicyDocument"]["Statement"][0];
                assert_eq!(trust["Principal"], json!({"Service": "ecs-tasks.amazonaws.com"}));
                assert_eq!(
                    trust["Condition"]["StringEquals"]["aws:SourceAccount"],
                    json!(system.account)
                );
            }
        }
    }
}

#[test]
fn the_task_definitions_are_those_envoy_gen_ecs_writes() {
    let mut compared = 0;
    for example in EXAMPLES {
        let ecs = generated(example).join("ecs");
        if !ecs.is_dir() {
            // platform: services without a host cannot be deployed with
            // `envoy-gen ecs` (below, its containers against the spec).
            continue;
        }
        let system = system(example);
        let names = names(example, &system);
        let stack = read_yaml(&generated(example).join("cloudformation/stack.yaml"));
        let tasks = resources(&stack, "AWS::ECS::TaskDefinition");
        let mut files: Vec<PathBuf> = std::fs::read_dir(&ecs).unwrap().map(|e| e.unwrap().path()).collect();
        files.sort();
        assert_eq!(tasks.len(), files.len(), "{example}");
        for file in files {
            let name = file.file_stem().unwrap().to_str().unwrap();
            let task = tasks[format!("{}TaskDefinition", word(name)).as_str()];
            assert_eq!(
                camel(&resolve(&task["Properties"], &names)),
                read_json(&file),
                "{example}: the task definition of {name}"
            );
            compared += 1;
        }
    }
    assert!(compared >= 7, "{compared}");
}

/// A stack's container environment, by container name.
fn environments(task: &Value) -> BTreeMap<String, BTreeMap<String, Value>> {
    task["Properties"]["ContainerDefinitions"]
        .as_array()
        .unwrap()
        .iter()
        .map(|c| {
            let environment = c["Environment"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| (v["Name"].as_str().unwrap().to_string(), v["Value"].clone()))
                .collect();
            (c["Name"].as_str().unwrap().to_string(), environment)
        })
        .collect()
}

/// Services without a custom domain name: the Envoys that call them get
/// their Lattice DNS names, and only those.
#[test]
fn services_without_a_custom_domain_name_reach_their_callers_by_lattice_dns_name() {
    let stack = read_yaml(&generated("platform").join("cloudformation/stack.yaml"));
    let hosts = |task: &str, container: &str| {
        environments(&stack["Resources"][task])[container]
            .get("LATTICE_SERVICE_HOSTS")
            .cloned()
    };
    assert_eq!(
        hosts("FrontendTaskDefinition", "frontend"),
        Some(
            json!({"Fn::Sub": "orders=${OrdersService.DnsEntry.DomainName},inventory=${InventoryService.DnsEntry.DomainName},status=${StatusService.DnsEntry.DomainName}"})
        )
    );
    assert_eq!(
        hosts("OrdersTaskDefinition", "sidecar"),
        Some(json!({"Fn::Sub": "inventory=${InventoryService.DnsEntry.DomainName}"}))
    );
    for service in ["Orders", "Inventory", "Status"] {
        let properties = &stack["Resources"][format!("{service}Service")]["Properties"];
        assert!(properties.get("CustomDomainName").is_none(), "{properties}");
        assert!(stack["Resources"].get(format!("{service}DnsRecord")).is_none());
    }
    // The reference's custom domain names: no variable, and a certificate.
    let reference = read_yaml(&generated("reference").join("cloudformation/stack.yaml"));
    for (task, container) in [
        ("FrontendTaskDefinition", "frontend"),
        ("App2TaskDefinition", "sidecar"),
    ] {
        assert!(!environments(&reference["Resources"][task])[container].contains_key("LATTICE_SERVICE_HOSTS"));
    }
    assert_eq!(
        reference["Resources"]["App1Service"]["Properties"],
        json!({"Name": "app1", "AuthType": "AWS_IAM", "CustomDomainName": "app1.example.internal", "CertificateArn": {"Ref": "App1CertificateArn"}})
    );
}

/// The target groups, security groups and ECS services agree on each app's
/// port, which the spec gives.
#[test]
fn each_app_is_reached_on_its_port_from_lattice_only() {
    let stack = read_yaml(&generated("platform").join("cloudformation/stack.yaml"));
    for (service, port, path) in [
        ("Orders", 9000, "/healthz"),
        ("Inventory", 8081, "/ready"),
        ("Status", 8080, "/"),
    ] {
        let resources = &stack["Resources"];
        let config = &resources[format!("{service}TargetGroup")]["Properties"]["Config"];
        assert_eq!(config["Port"], port);
        assert_eq!(config["HealthCheck"]["Path"], path);
        let ingress = &resources[format!("{service}SecurityGroup")]["Properties"]["SecurityGroupIngress"];
        assert_eq!(
            ingress,
            &json!([{"IpProtocol": "tcp", "FromPort": port, "ToPort": port, "SourcePrefixListId": {"Ref": "LatticePrefixListId"}, "Description": "VPC Lattice to the app"}])
        );
        let task = &resources[format!("{service}TaskDefinition")]["Properties"]["ContainerDefinitions"][0];
        assert_eq!(task["PortMappings"][0]["ContainerPort"], port);
        let ecs = &resources[format!("{service}EcsService")]["Properties"];
        assert_eq!(ecs["VpcLatticeConfigurations"][0]["PortName"], "app");
        assert_eq!(
            ecs["NetworkConfiguration"]["AwsvpcConfiguration"]["AssignPublicIp"],
            "DISABLED"
        );
    }
    // The frontend only from its load balancer, the load balancer only from
    // the clients.
    let resources = &stack["Resources"];
    assert_eq!(
        resources["FrontendSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]["SourceSecurityGroupId"],
        json!({"Ref": "LoadBalancerSecurityGroup"})
    );
    assert_eq!(
        resources["LoadBalancerSecurityGroup"]["Properties"]["SecurityGroupIngress"][0]["CidrIp"],
        json!({"Ref": "ClientCidr"})
    );
    assert_eq!(resources["LoadBalancer"]["Properties"]["Scheme"], "internal");
}

/// The exports of split stacks, by name: what each stands for.
fn exports(stacks: &[(String, Value)]) -> BTreeMap<String, Value> {
    let mut out = BTreeMap::new();
    for (_, stack) in stacks {
        for output in stack["Outputs"].as_object().into_iter().flat_map(|o| o.values()) {
            if let Some(name) = output["Export"]["Name"].as_str() {
                assert!(
                    out.insert(name.to_string(), output["Value"].clone()).is_none(),
                    "{name} twice"
                );
            }
        }
    }
    out
}

/// `value` with its imports replaced by the exported references.
fn inline_imports(value: &Value, exports: &BTreeMap<String, Value>) -> Value {
    let reference = |value: &Value| match value {
        Value::Object(map) if map.contains_key("Fn::ImportValue") => {
            let name = map["Fn::ImportValue"].as_str().unwrap();
            exports
                .get(name)
                .unwrap_or_else(|| panic!("nothing exports {name}"))
                .clone()
        }
        other => other.clone(),
    };
    match value {
        Value::Object(map) if map.contains_key("Fn::ImportValue") => reference(value),
        Value::Object(map) if map.len() == 1 && map.contains_key("Fn::Sub") && map["Fn::Sub"].is_array() => {
            let parts = map["Fn::Sub"].as_array().unwrap();
            let mut text = parts[0].as_str().unwrap().to_string();
            for (variable, import) in parts[1].as_object().unwrap() {
                let target = match reference(import) {
                    Value::Object(r) if r.contains_key("Ref") => r["Ref"].as_str().unwrap().to_string(),
                    Value::Object(r) if r.contains_key("Fn::GetAtt") => {
                        let a = r["Fn::GetAtt"].as_array().unwrap();
                        format!("{}.{}", a[0].as_str().unwrap(), a[1].as_str().unwrap())
                    }
                    other => panic!("an import of {other}"),
                };
                text = text.replace(&format!("${{{variable}}}"), &format!("${{{target}}}"));
            }
            json!({ "Fn::Sub": text })
        }
        Value::Object(map) => Value::Object(
            map.iter()
                .map(|(k, v)| (k.clone(), inline_imports(v, exports)))
                .collect(),
        ),
        Value::Array(items) => Value::Array(items.iter().map(|v| inline_imports(v, exports)).collect()),
        other => other.clone(),
    }
}

#[test]
fn split_stacks_hold_the_single_stack_and_deploy_in_order() {
    for example in EXAMPLES {
        let dir = generated(example).join("cloudformation");
        let single = read_yaml(&dir.join("stack.yaml"));
        let stacks: Vec<(String, Value)> = std::fs::read_dir(dir.join("split"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .map(|p| (p.file_name().unwrap().to_string_lossy().into_owned(), read_yaml(&p)))
            .collect();
        let exports = exports(&stacks);
        let mut owner: BTreeMap<String, String> = BTreeMap::new();
        let mut union = Map::new();
        for (file, stack) in &stacks {
            for (id, resource) in stack["Resources"].as_object().unwrap() {
                owner.insert(id.clone(), file.clone());
                assert!(
                    union.insert(id.clone(), inline_imports(resource, &exports)).is_none(),
                    "{id} twice"
                );
            }
            // Each stack declares what it uses, as the single stack does.
            for (id, parameter) in stack["Parameters"].as_object().into_iter().flatten() {
                assert_eq!(parameter, &single["Parameters"][id], "{example}/{file}: {id}");
            }
            assert_eq!(stack["Rules"], single["Rules"], "{example}/{file}");
        }
        // The single stack's resources, each `DependsOn` kept within its
        // own split stack (across stacks, the import orders them).
        let mut expected = single["Resources"].as_object().unwrap().clone();
        for (id, resource) in expected.iter_mut() {
            if let Some(depends) = resource.get("DependsOn").cloned() {
                let local: Vec<Value> = depends
                    .as_array()
                    .unwrap()
                    .iter()
                    .filter(|d| owner.get(d.as_str().unwrap()) == owner.get(id))
                    .cloned()
                    .collect();
                let object = resource.as_object_mut().unwrap();
                if local.is_empty() {
                    object.remove("DependsOn");
                } else {
                    object.insert("DependsOn".into(), Value::Array(local));
                }
            }
        }
        assert_eq!(Value::Object(union), Value::Object(expected), "{example}");

        // Every import is exported by a stack that deploys earlier: the
        // order `envoy-gen` prints.
        let out = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
            .args(["cloudformation", "--split", "--spec"])
            .arg(root().join(format!("envoy/examples/{example}.yaml")))
            .args(flags(example))
            .arg("--check")
            .arg(dir.join("split"))
            .output()
            .unwrap();
        assert!(out.status.success(), "{}", String::from_utf8_lossy(&out.stderr));
        let stderr = String::from_utf8(out.stderr).unwrap();
        let order: Vec<&str> = stderr
            .lines()
            .find_map(|l| l.strip_prefix("note: deploy the stacks in this order: "))
            .unwrap_or_else(|| panic!("{stderr}"))
            .split(", ")
            .collect();
        assert_eq!(order.len(), stacks.len(), "{order:?}");
        assert_eq!(order[0], "network.yaml");
        for (position, file) in order.iter().enumerate() {
            let stack = &stacks.iter().find(|(f, _)| f == file).unwrap().1;
            let text = serde_json::to_string(stack).unwrap();
            for name in exports.keys() {
                if text.contains(&format!("\"Fn::ImportValue\":\"{name}\"")) {
                    let exporter = stacks
                        .iter()
                        .find(|(_, s)| {
                            serde_json::to_string(&s["Outputs"])
                                .unwrap()
                                .contains(&format!("\"{name}\""))
                        })
                        .unwrap();
                    let before = order.iter().position(|f| *f == exporter.0).unwrap();
                    assert!(
                        before < position,
                        "{example}: {file} imports {name} from {}",
                        exporter.0
                    );
                }
            }
        }
    }
}

/// The flags the golden test renders example `name`'s stacks with.
fn flags(example: &str) -> Vec<&'static str> {
    match example {
        "reference" => vec!["--lattice-ca", "/etc/lattice-jwt/lattice-ca.pem"],
        "services-only" => vec!["--no-frontend", "--lattice-ca", "/etc/lattice-jwt/lattice-ca.pem"],
        _ => vec![],
    }
}

fn render(spec: &str, args: &[&str], dir: &Path) -> Output {
    let path = dir.join("spec.yaml");
    std::fs::write(&path, spec).unwrap();
    Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .current_dir(dir)
        .args(["cloudformation", "--spec", "spec.yaml"])
        .args(args)
        .output()
        .unwrap()
}

#[test]
fn what_aws_would_refuse_is_refused_with_its_place_in_the_spec() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "\
account: \"111122223333\"
region: us-west-2
domain: example.internal
oauth: false
network:
  name: Net_1
frontend:
  role: arn:aws:iam::999988887777:role/frontend
services:
  - name: svc-orders
  - name: ab
  - name: app-
  - name: billing
    host: billing-0123.7d67968.vpc-lattice-svcs.us-west-2.on.aws
  - name: long-role
    role: arn:aws:iam::111122223333:role/team/a-role
";
    let out = render(spec, &["-o", "stack.yaml"], dir.path());
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        "\
error: spec.yaml:8:9: role: `arn:aws:iam::999988887777:role/frontend` is in account 999988887777: the stack creates its roles in the spec's account (111122223333)
  |
8 |   role: arn:aws:iam::999988887777:role/frontend
  |         ^
error: spec.yaml:10:11: services[0].name: `svc-orders` cannot name a VPC Lattice service (3 to 40 lower-case letters, digits and hyphens, no hyphen first, last or twice in a row, not beginning with `svc-`)
   |
10 |   - name: svc-orders
   |           ^
error: spec.yaml:11:11: services[1].name: `ab` cannot name a VPC Lattice service (3 to 40 lower-case letters, digits and hyphens, no hyphen first, last or twice in a row, not beginning with `svc-`)
   |
11 |   - name: ab
   |           ^
error: spec.yaml:12:11: services[2].name: `app-` cannot name a VPC Lattice service (3 to 40 lower-case letters, digits and hyphens, no hyphen first, last or twice in a row, not beginning with `svc-`)
   |
12 |   - name: app-
   |           ^
error: spec.yaml:13:11: services[3].host: `billing-0123.7d67968.vpc-lattice-svcs.us-west-2.on.aws` is a name VPC Lattice generates, not a custom domain name: leave `host` (and `domain`) out and the stack passes the service's generated name to the Envoys that call it
   |
13 |   - name: billing
   |           ^
error: spec.yaml: network.name: `Net_1` cannot name a VPC Lattice service network (3 to 63 lower-case letters, digits and hyphens, no hyphen first, last or twice in a row, not beginning with `servicenetwork-`)
error: 6 problems; nothing was written
"
    );
    assert_eq!(out.status.code(), Some(1));
    assert!(!dir.path().join("stack.yaml").exists());
}

#[test]
fn two_names_for_one_logical_id_are_refused() {
    let dir = tempfile::tempdir().unwrap();
    let spec = "\
account: \"111122223333\"
region: us-west-2
domain: example.internal
oauth: false
services:
  - name: app-1
    role: app-1
  - name: app1
    role: app1
";
    let out = render(spec, &["--no-frontend", "-o", "stack.yaml"], dir.path());
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert_eq!(
        stderr,
        "\
error: spec.yaml:8:11: services[1].name: service `app1` and service `app-1` would both be named `App1Image` in the CloudFormation template; rename one of them
  |
8 |   - name: app1
  |           ^
error: spec.yaml:9:11: role: role `app1` and role `app-1` would both be named `App1TaskRole` in the CloudFormation template; rename one of them
  |
9 |     role: app1
  |           ^
error: 2 problems; nothing was written
"
    );
    assert!(!dir.path().join("stack.yaml").exists());
}

#[test]
fn check_names_the_drift() {
    let dir = tempfile::tempdir().unwrap();
    let reference = root().join("envoy/examples/reference.yaml");
    let stack = dir.path().join("stack.yaml");
    let run = |args: &[&str]| {
        Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
            .args(["cloudformation", "--spec"])
            .arg(&reference)
            .args(args)
            .output()
            .unwrap()
    };
    assert!(run(&["-o", stack.to_str().unwrap()]).status.success());
    assert!(run(&["--check", stack.to_str().unwrap()]).status.success());
    let out = run(&["--cpu", "1024", "--memory", "2048", "--check", stack.to_str().unwrap()]);
    assert_eq!(out.status.code(), Some(1));
    assert_eq!(
        String::from_utf8_lossy(&out.stderr),
        format!(
            "error: {}: differs from the spec\nerror: the stack's resources differ from the spec: run `envoy-gen cloudformation --spec ... -o PATH` with the same flags and review the diff\n",
            stack.display()
        )
    );
    // --split: a stack the spec no longer has is named too.
    let split = dir.path().join("split");
    assert!(run(&["--split", "-o", split.to_str().unwrap()]).status.success());
    std::fs::write(split.join("service-gone.yaml"), "{}").unwrap();
    let out = run(&["--split", "--check", split.to_str().unwrap()]);
    let stderr = String::from_utf8_lossy(&out.stderr);
    assert!(
        stderr.contains(&format!(
            "error: {}: not rendered from the spec (stale)\n",
            split.join("service-gone.yaml").display()
        )),
        "{stderr}"
    );
}
