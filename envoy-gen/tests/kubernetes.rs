//! `envoy-gen kubernetes`, checked from the outside on the committed
//! manifests (`envoy/generated/<example>/kubernetes/`, which the golden test
//! keeps equal to what the command renders):
//! - every object of Kubernetes' own kinds validates, strictly, against the
//!   API's schemas (kubernetes-validate, pinned by `make k8s-tools`), and
//!   every custom resource against the CRDs of the AWS Gateway API
//!   Controller, Gateway API and ACK (envoy-gen/tests/kubernetes/crds);
//! - each auth policy is the document `envoy-gen policies` writes;
//! - each Envoy container's environment makes the image's entrypoint render
//!   what `envoy-gen frontend` / `sidecar` render from the spec, with the
//!   pod's credentials (EKS Pod Identity or IRSA);
//! - what the spec or flags get wrong is refused with file, line and field.
#![allow(clippy::unwrap_used, clippy::panic, clippy::indexing_slicing)]

mod support;

use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};
use std::path::{Path, PathBuf};
use std::process::{Command, Output};
use support::root;

/// The examples with manifests: the reference (Pod Identity) and the
/// services alone (IRSA).
const EXAMPLES: [&str; 2] = ["reference", "services-only"];
const KUBERNETES_VERSION: &str = "1.31";

fn manifests_dir(example: &str) -> PathBuf {
    root().join(format!("envoy/generated/{example}/kubernetes"))
}

fn spec(example: &str) -> PathBuf {
    root().join(format!("envoy/examples/{example}.yaml"))
}

/// Every YAML file of an example's manifests, sorted.
fn files(example: &str) -> Vec<PathBuf> {
    let dir = manifests_dir(example);
    let mut out = Vec::new();
    for sub in ["", "services", "pod-identity"] {
        if let Ok(entries) = std::fs::read_dir(dir.join(sub)) {
            for entry in entries.flatten() {
                let path = entry.path();
                if path.extension().is_some_and(|e| e == "yaml") {
                    out.push(path);
                }
            }
        }
    }
    out.sort();
    assert!(out.len() >= 3, "{}: run `make generate`", dir.display());
    out
}

/// The objects of a file (several YAML documents).
fn objects(path: &Path) -> Vec<Value> {
    let text = std::fs::read_to_string(path).unwrap();
    text.split("\n---\n")
        .map(|doc| serde_saphyr::from_str::<Value>(doc).unwrap_or_else(|e| panic!("{}: {e}", path.display())))
        .collect()
}

fn all_objects(example: &str) -> Vec<(PathBuf, Value)> {
    files(example)
        .into_iter()
        .flat_map(|f| objects(&f).into_iter().map(move |o| (f.clone(), o)))
        .collect()
}

fn venv_tool(name: &str) -> PathBuf {
    let path = root().join(".venv/bin").join(name);
    assert!(
        path.is_file(),
        "{} is missing: run `make k8s-tools` and `make cfn-tools` (make test does)",
        path.display()
    );
    path
}

fn text(out: &Output) -> String {
    format!(
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    )
}

fn kubernetes_validate(files: &[PathBuf]) -> Output {
    Command::new(venv_tool("kubernetes-validate"))
        .args(["--strict", "-k", KUBERNETES_VERSION])
        .args(files)
        .output()
        .unwrap()
}

fn validate_crs(files: &[PathBuf]) -> Output {
    let dir = root().join("envoy-gen/tests/kubernetes");
    Command::new(venv_tool("python"))
        .arg(dir.join("validate_crs.py"))
        .arg(dir.join("crds"))
        .args(files)
        .output()
        .unwrap()
}

#[test]
fn every_manifest_validates_against_the_kubernetes_schemas_and_the_crds() {
    let mut kinds = BTreeSet::new();
    for example in EXAMPLES {
        let files = files(example);
        let out = kubernetes_validate(&files);
        let report = text(&out);
        assert!(out.status.success(), "{example}: {report}");
        // Nothing unchecked: every kind it does not know is a custom resource
        // checked below.
        assert!(!report.contains("ERROR"), "{report}");
        let out = validate_crs(&files);
        let report = text(&out);
        assert!(out.status.success(), "{example}: {report}");
        for (file, object) in all_objects(example) {
            let kind = object["kind"].as_str().unwrap().to_string();
            let name = object["metadata"]["name"].as_str().unwrap_or_default();
            if kind != "Kustomization"
                && !report.contains(&format!("OK {} {kind}/{name}", file.display()))
                && object["apiVersion"].as_str().unwrap().contains('.')
            {
                panic!("{example}: {kind}/{name} was not validated against a CRD: {report}");
            }
            kinds.insert(kind);
        }
    }
    let expected = [
        "Deployment",
        "Gateway",
        "HTTPRoute",
        "IAMAuthPolicy",
        "Kustomization",
        "Namespace",
        "PodDisruptionBudget",
        "PodIdentityAssociation",
        "Service",
        "ServiceAccount",
        "ServiceNetwork",
        "TargetGroupPolicy",
        "VpcAssociationPolicy",
    ];
    assert_eq!(kinds, expected.iter().map(|k| k.to_string()).collect());
}

/// Both validators catch what the API server would refuse: a field of
/// Kubernetes' own kinds with the wrong type or name, and a custom resource
/// outside its CRD.
#[test]
fn the_validators_refuse_broken_manifests() {
    let dir = tempfile::tempdir().unwrap();
    let source = std::fs::read_to_string(manifests_dir("reference").join("services/app2.yaml")).unwrap();
    let cases = [
        ("replicas: 2", "replicas: two", "kubernetes"),
        (
            "terminationGracePeriodSeconds: 30",
            "terminationGracePeriodSecond: 30",
            "kubernetes",
        ),
        (
            "    protocol: HTTP\n    protocolVersion",
            "    protocol: TCP\n    protocolVersion",
            "crd",
        ),
        ("intervalSeconds: 10", "intervalSeconds: 1", "crd"),
        ("sectionName: https", "sectionNme: https", "crd"),
    ];
    for (from, to, validator) in cases {
        assert!(source.contains(from), "{from:?} not in app2.yaml");
        let broken = dir.path().join("broken.yaml");
        std::fs::write(&broken, source.replacen(from, to, 1)).unwrap();
        let out = match validator {
            "kubernetes" => kubernetes_validate(std::slice::from_ref(&broken)),
            _ => validate_crs(std::slice::from_ref(&broken)),
        };
        assert!(!out.status.success(), "{to:?} passed: {}", text(&out));
    }
}

/// Each IAMAuthPolicy holds exactly the document `envoy-gen policies`
/// writes: the service network's on the Gateway, each service's on its route.
#[test]
fn auth_policies_are_the_documents_envoy_gen_policies_writes() {
    for example in EXAMPLES {
        let policies = root().join(format!("envoy/generated/{example}/policies"));
        let mut seen = BTreeSet::new();
        for (_, object) in all_objects(example) {
            if object["kind"] != "IAMAuthPolicy" {
                continue;
            }
            let target = &object["spec"]["targetRef"];
            assert_eq!(target["group"], "gateway.networking.k8s.io");
            let file = match target["kind"].as_str().unwrap() {
                "Gateway" => policies.join("service-network.json"),
                "HTTPRoute" => policies.join(format!("services/{}.json", target["name"].as_str().unwrap())),
                other => panic!("an auth policy on a {other}"),
            };
            assert_eq!(
                object["spec"]["policy"].as_str().unwrap(),
                std::fs::read_to_string(&file).unwrap(),
                "{example}: {}",
                file.display()
            );
            assert_eq!(object["metadata"]["name"], target["name"]);
            assert!(seen.insert(file));
        }
        let mut expected: BTreeSet<PathBuf> = std::fs::read_dir(policies.join("services"))
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        expected.insert(policies.join("service-network.json"));
        assert_eq!(seen, expected, "{example}: one auth policy per service and the network");
    }
}

/// Each ServiceAccount with a role has that role's trust policy, which
/// admits only this cluster's pods of that ServiceAccount: by EKS Pod
/// Identity's session tags, or by IRSA's OIDC subject.
#[test]
fn each_role_trusts_only_its_service_account_in_this_cluster() {
    for example in EXAMPLES {
        let trust_dir = manifests_dir(example).join("iam/trust");
        let mut seen = BTreeSet::new();
        for (_, account) in all_objects(example) {
            if account["kind"] != "ServiceAccount" {
                continue;
            }
            let name = account["metadata"]["name"].as_str().unwrap();
            let namespace = account["metadata"]["namespace"].as_str().unwrap();
            let system = {
                let path = spec(example);
                let text = std::fs::read_to_string(&path).unwrap();
                envoy_gen::load(Some((&path, &text)), &Default::default()).unwrap()
            };
            let role = if name == "frontend" {
                system.frontend.role.clone()
            } else {
                system.service(name).unwrap().role.clone()
            };
            let Some(role) = role else { continue };
            let file = trust_dir.join(format!("{}.json", role.name));
            let trust: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let statement = &trust["Statement"][0];
            assert_eq!(trust["Statement"].as_array().unwrap().len(), 1, "{}", file.display());
            assert_eq!(statement["Effect"], "Allow");
            let conditions = &statement["Condition"]["StringEquals"];
            match account["metadata"]["annotations"]["eks.amazonaws.com/role-arn"].as_str() {
                // IRSA: the annotation names this role, and only this
                // ServiceAccount's projected token is exchanged for it.
                Some(arn) => {
                    assert_eq!(arn, role.arn);
                    let provider = statement["Principal"]["Federated"].as_str().unwrap();
                    let issuer = provider.split_once(":oidc-provider/").unwrap().1;
                    assert_eq!(statement["Action"], "sts:AssumeRoleWithWebIdentity");
                    assert_eq!(
                        conditions[format!("{issuer}:sub")],
                        format!("system:serviceaccount:{namespace}:{name}")
                    );
                    assert_eq!(conditions[format!("{issuer}:aud")], "sts.amazonaws.com");
                }
                // Pod Identity: the association names this role, and EKS's
                // session tags must be this cluster, namespace and account.
                None => {
                    assert_eq!(statement["Principal"]["Service"], "pods.eks.amazonaws.com");
                    assert_eq!(
                        statement["Action"],
                        serde_json::json!(["sts:AssumeRole", "sts:TagSession"])
                    );
                    assert_eq!(conditions["aws:RequestTag/kubernetes-namespace"], namespace);
                    assert_eq!(conditions["aws:RequestTag/kubernetes-service-account"], name);
                    let association = all_objects(example)
                        .into_iter()
                        .find(|(_, o)| o["kind"] == "PodIdentityAssociation" && o["spec"]["serviceAccount"] == name)
                        .unwrap()
                        .1;
                    assert_eq!(association["spec"]["roleARN"], role.arn.as_str());
                    assert_eq!(
                        conditions["aws:RequestTag/eks-cluster-name"],
                        association["spec"]["clusterName"]
                    );
                }
            }
            seen.insert(file);
        }
        let all: BTreeSet<PathBuf> = std::fs::read_dir(&trust_dir)
            .unwrap()
            .map(|e| e.unwrap().path())
            .collect();
        assert_eq!(
            seen, all,
            "{example}: one trust policy per role a ServiceAccount carries"
        );
        assert!(!all.is_empty());
    }
}

/// Each trust policy is a document IAM takes as a role's
/// `AssumeRolePolicyDocument`: cfn-lint (AWS's CloudFormation linter, from
/// `make cfn-tools`) checks it in an `AWS::IAM::Role` and reports nothing,
/// and is shown to catch a broken one.
#[test]
fn trust_policies_pass_cfn_lint_as_a_roles_assume_role_policy() {
    let dir = tempfile::tempdir().unwrap();
    let cfn_lint = venv_tool("cfn-lint");
    let lint = |name: &str, trust: &Value| {
        let template = serde_json::json!({
            "AWSTemplateFormatVersion": "2010-09-09",
            "Resources": {"Role": {"Type": "AWS::IAM::Role", "Properties": {"AssumeRolePolicyDocument": trust}}},
        });
        let path = dir.path().join(format!("{name}.json"));
        std::fs::write(&path, template.to_string()).unwrap();
        Command::new(&cfn_lint).arg(&path).output().unwrap()
    };
    let mut checked = 0;
    for example in EXAMPLES {
        for entry in std::fs::read_dir(manifests_dir(example).join("iam/trust")).unwrap() {
            let file = entry.unwrap().path();
            let trust: Value = serde_json::from_str(&std::fs::read_to_string(&file).unwrap()).unwrap();
            let out = lint(&format!("{example}-{checked}"), &trust);
            assert!(out.status.success(), "{}: {}", file.display(), text(&out));
            assert_eq!(text(&out), "", "{}", file.display());
            checked += 1;
        }
    }
    assert!(checked >= 7, "only {checked} trust policies");
    let trust: Value = serde_json::from_str(
        &std::fs::read_to_string(manifests_dir("reference").join("iam/trust/app2.json"))
            .unwrap()
            .replace("\"Allow\"", "\"Allowed\""),
    )
    .unwrap();
    let out = lint("broken", &trust);
    assert!(!out.status.success(), "a broken trust policy passed: {}", text(&out));
    assert!(text(&out).contains("E3530"), "{}", text(&out));
}

/// What the Gateway API's CEL rules and the controller require of these
/// objects, which no schema here checks: the HTTPS listener terminates TLS
/// with the certificate as an option, each route has its host and a
/// backend with a port, each Lattice service's name (`<route>-<namespace>`)
/// is not cut by the controller, and the kustomization lists every file.
#[test]
fn routes_and_gateway_follow_the_controllers_rules() {
    for example in EXAMPLES {
        let system = {
            let path = spec(example);
            let text = std::fs::read_to_string(&path).unwrap();
            envoy_gen::load(Some((&path, &text)), &Default::default()).unwrap()
        };
        let objects = all_objects(example);
        let gateways: Vec<&Value> = objects
            .iter()
            .map(|(_, o)| o)
            .filter(|o| o["kind"] == "Gateway")
            .collect();
        assert_eq!(gateways.len(), 1);
        let listener = &gateways[0]["spec"]["listeners"][0];
        assert_eq!(gateways[0]["spec"]["gatewayClassName"], "amazon-vpc-lattice");
        assert_eq!(listener["protocol"], "HTTPS");
        assert_eq!(listener["tls"]["mode"], "Terminate");
        assert!(
            listener["tls"]["options"]["application-networking.k8s.aws/certificate-arn"]
                .as_str()
                .unwrap()
                .starts_with("arn:aws:acm:")
        );
        let mut routes = BTreeMap::new();
        for (_, route) in objects.iter().filter(|(_, o)| o["kind"] == "HTTPRoute") {
            let name = route["metadata"]["name"].as_str().unwrap();
            let namespace = route["metadata"]["namespace"].as_str().unwrap();
            assert!(
                name.len() <= 20 && namespace.len() <= 18,
                "{name}-{namespace} would be cut"
            );
            let service = system.service(name).unwrap();
            assert_eq!(
                route["spec"]["hostnames"][0],
                service.upstream.as_ref().unwrap().host.as_str()
            );
            let backend = &route["spec"]["rules"][0]["backendRefs"][0];
            assert_eq!(backend["port"], service.port);
            assert_eq!(route["spec"]["parentRefs"][0]["sectionName"], listener["name"]);
            routes.insert(name.to_string(), format!("{name}-{namespace}"));
        }
        let names: BTreeSet<String> = system.services.iter().map(|s| s.name.clone()).collect();
        assert_eq!(routes.keys().cloned().collect::<BTreeSet<_>>(), names);
        // The kustomization names every file but the Pod Identity ones.
        let kustomization = &objects
            .iter()
            .find(|(_, o)| o["kind"] == "Kustomization" && o["resources"][0] != "associations.yaml")
            .unwrap()
            .1;
        let listed: BTreeSet<PathBuf> = kustomization["resources"]
            .as_array()
            .unwrap()
            .iter()
            .map(|r| manifests_dir(example).join(r.as_str().unwrap()))
            .collect();
        let files: BTreeSet<PathBuf> = files(example)
            .into_iter()
            .filter(|f| !f.ends_with("kustomization.yaml") && !f.parent().unwrap().ends_with("pod-identity"))
            .collect();
        assert_eq!(listed, files);
    }
}

/// The image's entrypoint with `environment` (support::entrypoint), this
/// build's envoy-gen rendering.
fn entrypoint(environment: &BTreeMap<String, String>, run: &Path) -> Output {
    support::entrypoint(environment, run, env!("CARGO_BIN_EXE_envoy-gen"))
}

/// The Envoy containers of an example: (where, environment, ServiceAccount).
fn envoys(example: &str) -> Vec<(String, BTreeMap<String, String>, String)> {
    let mut out = Vec::new();
    for (file, object) in all_objects(example) {
        if object["kind"] != "Deployment" {
            continue;
        }
        let pod = &object["spec"]["template"]["spec"];
        let account = pod["serviceAccountName"].as_str().unwrap().to_string();
        let containers = pod["containers"]
            .as_array()
            .unwrap()
            .iter()
            .chain(pod["initContainers"].as_array().into_iter().flatten());
        for container in containers {
            let env: BTreeMap<String, String> = container["env"]
                .as_array()
                .into_iter()
                .flatten()
                .map(|v| {
                    (
                        v["name"].as_str().unwrap().to_string(),
                        v["value"].as_str().unwrap().to_string(),
                    )
                })
                .collect();
            if env.contains_key("ENVOY_ROLE") {
                let at = format!("{} {}", file.display(), container["name"]);
                // The pod's security: the image's user, nothing to write but its run directory.
                assert_eq!(container["securityContext"]["readOnlyRootFilesystem"], true, "{at}");
                assert_eq!(container["securityContext"]["runAsUser"], 101, "{at}");
                assert_eq!(
                    env.get("AWS_EC2_METADATA_DISABLED").map(String::as_str),
                    Some("true"),
                    "{at}"
                );
                out.push((at, env, account.clone()));
            }
        }
    }
    out
}

/// Each Envoy container's environment, with what EKS adds for the pod's
/// identity, makes the entrypoint render exactly what envoy-gen renders
/// from the spec with the same credentials source; with IRSA, its
/// ServiceAccount names the role the Envoy exchanges its token for.
#[test]
fn the_entrypoint_renders_from_each_container_what_the_spec_describes() {
    let dir = tempfile::tempdir().unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["app1.example.internal".into()]).unwrap();
    let ca = dir.path().join("lattice-ca.pem");
    std::fs::write(&ca, cert.cert.pem()).unwrap();
    // Where the rendered configurations find the filter (/etc/envoy/ in the image).
    let wasm = root().join(envoy_gen::envoy::LOCAL_WASM);
    assert!(wasm.is_file(), "{} is missing: run `make build`", wasm.display());
    let etc = dir.path().join("etc-envoy");
    std::fs::create_dir_all(&etc).unwrap();
    std::os::unix::fs::symlink(&wasm, etc.join("jwt_scopes.wasm")).unwrap();
    let map = format!("/etc/envoy={}", etc.display());
    let envoy = envoy_gen::envoy::find_envoy(None).unwrap_or_else(|e| panic!("{e}"));
    let token = dir.path().join("token");
    std::fs::write(&token, "a-projected-token").unwrap();
    let mut checked = BTreeSet::new();
    for example in EXAMPLES {
        let spec = spec(example);
        let accounts: BTreeMap<String, Value> = all_objects(example)
            .into_iter()
            .filter(|(_, o)| o["kind"] == "ServiceAccount")
            .map(|(_, o)| (o["metadata"]["name"].as_str().unwrap().to_string(), o))
            .collect();
        for (at, mut env, account) in envoys(example) {
            let source = env["CREDENTIALS_SOURCE"].clone();
            env.insert("SPEC_FILE".into(), spec.display().to_string());
            env.insert("LATTICE_CA".into(), ca.display().to_string());
            match source.as_str() {
                // What EKS Pod Identity sets in every container of the pod.
                "container" => {
                    env.insert(
                        "AWS_CONTAINER_CREDENTIALS_FULL_URI".into(),
                        "http://169.254.170.23/v1/credentials".into(),
                    );
                    env.insert(
                        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE".into(),
                        token.display().to_string(),
                    );
                }
                // What IRSA sets, from the ServiceAccount's annotation.
                "web_identity" => {
                    let arn = accounts[&account]["metadata"]["annotations"]["eks.amazonaws.com/role-arn"]
                        .as_str()
                        .unwrap_or_else(|| panic!("{at}: ServiceAccount {account} names no role"))
                        .to_string();
                    env.insert("AWS_ROLE_ARN".into(), arn);
                    env.insert("AWS_WEB_IDENTITY_TOKEN_FILE".into(), token.display().to_string());
                }
                other => panic!("{at}: CREDENTIALS_SOURCE={other}"),
            }
            let run = tempfile::tempdir().unwrap();
            let out = entrypoint(&env, run.path());
            assert!(out.status.success(), "{at}: {}", text(&out));
            let rendered = std::fs::read_to_string(run.path().join("envoy.yaml")).unwrap();
            let role = env["ENVOY_ROLE"].as_str();
            let mut args = vec![
                role,
                "--spec",
                spec.to_str().unwrap(),
                "--credentials",
                source.as_str(),
                "--lattice-ca",
                ca.to_str().unwrap(),
            ];
            if let Some(service) = env.get("SERVICE_NAME") {
                args.extend(["--service", service.as_str()]);
            }
            let expected = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
                .args(&args)
                .output()
                .unwrap();
            assert!(expected.status.success(), "{at}: {}", text(&expected));
            assert_eq!(rendered, String::from_utf8(expected.stdout).unwrap(), "{at}");
            // And the real Envoy accepts it.
            let validated = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
                .arg("validate")
                .arg(run.path().join("envoy.yaml"))
                .args(["--map", &map, "--envoy"])
                .arg(&envoy)
                .output()
                .unwrap();
            assert!(validated.status.success(), "{at}: {}", text(&validated));
            if source == "web_identity" {
                // The role Envoy asks STS for is the one the ServiceAccount names.
                assert!(
                    rendered.contains(&format!("role_arn: \"{}\"", env["AWS_ROLE_ARN"])),
                    "{at}"
                );
            }
            checked.insert(format!("{example} {role} {source}"));
        }
    }
    let expected: BTreeSet<String> = [
        "reference frontend container",
        "reference sidecar container",
        "services-only sidecar web_identity",
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    assert_eq!(checked, expected);
}

/// With IRSA and no readable token the entrypoint refuses to start (Envoy
/// would hold every request until it timed out).
#[test]
fn irsa_without_a_token_file_refuses_to_start() {
    let (at, mut env, _) = envoys("services-only").remove(0);
    env.insert("SPEC_FILE".into(), spec("services-only").display().to_string());
    let run = tempfile::tempdir().unwrap();
    let ca = run.path().join("ca.pem");
    std::fs::write(&ca, "not read\n").unwrap();
    env.insert("LATTICE_CA".into(), ca.display().to_string());
    let out = entrypoint(&env, run.path());
    assert!(!out.status.success(), "{at}");
    assert!(
        text(&out).contains("AWS_WEB_IDENTITY_TOKEN_FILE is required when CREDENTIALS_SOURCE=web_identity"),
        "{}",
        text(&out)
    );
    env.insert("AWS_WEB_IDENTITY_TOKEN_FILE".into(), "/nonexistent/token".into());
    let out = entrypoint(&env, run.path());
    assert!(!out.status.success(), "{at}");
    assert!(
        text(&out).contains("AWS_WEB_IDENTITY_TOKEN_FILE (/nonexistent/token) is not a readable file"),
        "{}",
        text(&out)
    );
    assert!(!run.path().join("envoy.yaml").exists());
}

fn kubernetes(spec: &Path, extra: &[&str], dir: &Path) -> Output {
    let mut command = Command::new(env!("CARGO_BIN_EXE_envoy-gen"));
    command
        .arg("kubernetes")
        .arg("--spec")
        .arg(spec)
        .args(["--image", "111122223333.dkr.ecr.us-west-2.amazonaws.com/lattice-jwt:1"]);
    if !extra.contains(&"--certificate-arn") {
        command.args([
            "--certificate-arn",
            "arn:aws:acm:us-west-2:111122223333:certificate/0a1b2c3d",
        ]);
    }
    command.args(extra).arg("-o").arg(dir).output().unwrap()
}

const APP_IMAGES: [&str; 6] = [
    "--app-image",
    "app1=registry.example/app1:1",
    "--app-image",
    "app2=registry.example/app2:1",
    "--app-image",
    "app3=registry.example/app3:1",
];

/// What Kubernetes or the controller would refuse, refused here with the
/// file, line and field (or the flag), and nothing written.
#[test]
fn bad_names_and_missing_flags_are_refused_with_where_and_why() {
    let dir = tempfile::tempdir().unwrap();
    let reference = std::fs::read_to_string(spec("reference")).unwrap();
    let out_dir = dir.path().join("out");
    let cases: [(&str, String, Vec<&str>, &str); 6] = [
        (
            "a long service name",
            reference.replace("app3", "inventory-reporting-v2"),
            vec![],
            "`inventory-reporting-v2` is longer than 20 characters: the AWS Gateway API Controller would cut it",
        ),
        (
            "a name that is no DNS label",
            reference.replace("app3", "3d-viewer"),
            vec![],
            "`3d-viewer` cannot name a Kubernetes Service",
        ),
        (
            "a long namespace",
            reference.clone(),
            vec!["--namespace", "platform-team-services"],
            "error: --namespace: `platform-team-services` is longer than 18 characters",
        ),
        (
            "no cluster for Pod Identity",
            reference.clone(),
            vec![],
            "error: --cluster: is required with --identity pod-identity",
        ),
        (
            "IRSA without the cluster's OIDC issuer",
            reference.clone(),
            vec!["--identity", "irsa"],
            "error: --oidc-issuer: is required with --identity irsa",
        ),
        (
            "a certificate that is not an ACM ARN",
            reference.clone(),
            vec![
                "--cluster",
                "c",
                "--certificate-arn",
                "arn:aws:iam::111122223333:role/x",
            ],
            "error: --certificate-arn: `arn:aws:iam::111122223333:role/x` is not an ACM certificate ARN",
        ),
    ];
    for (what, text_of_spec, extra, expected) in cases {
        let path = dir.path().join("spec.yaml");
        std::fs::write(&path, &text_of_spec).unwrap();
        let mut args: Vec<&str> = APP_IMAGES.to_vec();
        if what != "no cluster for Pod Identity" && !extra.contains(&"--cluster") {
            args.extend(["--cluster", "c"]);
        }
        if what.contains("service name") || what.contains("DNS label") {
            let renamed = if what.contains("long") {
                "inventory-reporting-v2"
            } else {
                "3d-viewer"
            };
            args[5] = Box::leak(format!("{renamed}=registry.example/app3:1").into_boxed_str());
        }
        args.extend(extra.iter().copied());
        let out = kubernetes(&path, &args, &out_dir);
        let report = text(&out);
        assert!(!out.status.success(), "{what}: {report}");
        assert!(report.contains(expected), "{what}: {report}");
        if what.contains("service") || what.contains("label") {
            // The spec's line of the service's name.
            let line = text_of_spec
                .lines()
                .position(|l| l.contains("name: inventory-reporting-v2") || l.contains("name: 3d-viewer"))
                .unwrap()
                + 1;
            assert!(report.contains(&format!("spec.yaml:{line}:")), "{what}: {report}");
        }
        assert!(report.contains("nothing was written"), "{what}: {report}");
        assert!(!out_dir.exists(), "{what}: something was written");
    }
}

/// `--check` names each manifest that differs from the spec.
#[test]
fn check_names_the_drift() {
    let dir = tempfile::tempdir().unwrap();
    let copy = dir.path().join("kubernetes");
    let mut args: Vec<&str> = APP_IMAGES.to_vec();
    args.extend(["--cluster", "c"]);
    let out = kubernetes(&spec("reference"), &args, &copy);
    assert!(out.status.success(), "{}", text(&out));
    let app1 = copy.join("services/app1.yaml");
    let edited = std::fs::read_to_string(&app1)
        .unwrap()
        .replace("replicas: 2", "replicas: 3");
    std::fs::write(&app1, edited).unwrap();
    let mut check = Command::new(env!("CARGO_BIN_EXE_envoy-gen"));
    check
        .arg("kubernetes")
        .arg("--spec")
        .arg(spec("reference"))
        .args([
            "--image",
            "111122223333.dkr.ecr.us-west-2.amazonaws.com/lattice-jwt:1",
            "--certificate-arn",
            "arn:aws:acm:us-west-2:111122223333:certificate/0a1b2c3d",
        ])
        .args(&args)
        .arg("--check")
        .arg(&copy);
    let out = check.output().unwrap();
    assert!(!out.status.success());
    assert!(
        text(&out).contains(&format!("{}: differs from the spec", app1.display())),
        "{}",
        text(&out)
    );
}
