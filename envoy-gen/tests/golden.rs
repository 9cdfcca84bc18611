//! Every spec in `envoy/examples/` renders exactly to the committed files in
//! `envoy/generated/<name>/`: `frontend.yaml`, and for a spec with an
//! `account` (a whole system) `sidecar-<service>.yaml` for each service,
//! the `policies/`, the ECS task definitions in `ecs/` (rendered with
//! [`ecs_flags`]) and the CloudFormation stack in `cloudformation/`
//! (`stack.yaml`, and `split/` for `--split`). A service without a host
//! (no custom domain name) is rendered with the DNS name [`lattice_hosts`]
//! gives it, as the stack passes Lattice's. The real Envoy loads each
//! configuration.
//! `make generate` (UPDATE_GOLDEN=1) rewrites the committed files.
#![allow(clippy::unwrap_used, clippy::panic)]

use std::path::{Path, PathBuf};
use std::process::Command;

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).parent().unwrap().to_path_buf()
}

fn examples() -> Vec<(String, PathBuf)> {
    let mut out: Vec<_> = std::fs::read_dir(root().join("envoy/examples"))
        .unwrap()
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
        .map(|p| (p.file_stem().unwrap().to_string_lossy().into_owned(), p))
        .collect();
    out.sort();
    assert!(out.len() >= 4, "examples missing: {out:?}");
    out
}

fn render(spec: &Path, args: &[String]) -> String {
    let out = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .args(args)
        .arg("--spec")
        .arg(spec)
        .output()
        .unwrap();
    assert!(
        out.status.success(),
        "{}: {}",
        spec.display(),
        String::from_utf8_lossy(&out.stderr)
    );
    String::from_utf8(out.stdout).unwrap()
}

/// The `envoy-gen ecs` flags the committed task definitions of example
/// `name` are rendered with: images in the system's own account and region
/// (the image tagged with the example's name holds its spec), and the CA the
/// reference's Lattice custom domain names need (its ACM Private CA).
fn ecs_flags(name: &str, system: &envoy_gen::model::System) -> Vec<String> {
    let registry = format!(
        "{}.dkr.ecr.{}.amazonaws.com",
        system.account.as_deref().unwrap(),
        system.signing.region
    );
    let mut flags = vec!["--image".to_string(), format!("{registry}/lattice-jwt:{name}")];
    for service in &system.services {
        flags.push("--app-image".into());
        flags.push(format!("{}={registry}/{}:latest", service.name, service.name));
    }
    flags.extend(["--lattice-ca".into(), "/etc/lattice-jwt/lattice-ca.pem".into()]);
    flags
}

/// The `envoy-gen kubernetes` flags of example `name`'s committed
/// manifests: the images and CA as for ECS, a certificate of the system's
/// account for the gateway's listener, and how pods get their role (EKS
/// Pod Identity, or IRSA for a system without a frontend).
fn kubernetes_flags(name: &str, system: &envoy_gen::model::System) -> Vec<String> {
    let mut flags = ecs_flags(name, system);
    flags.extend([
        "--certificate-arn".into(),
        format!(
            "arn:aws:acm:{}:{}:certificate/0a1b2c3d-4e5f-6789-abcd-ef0123456789",
            system.signing.region,
            system.account.as_deref().unwrap()
        ),
    ]);
    if system.frontend.role.is_some() {
        flags.extend(["--cluster".into(), format!("{name}-cluster")]);
    } else {
        flags.extend([
            "--identity".into(),
            "irsa".into(),
            "--oidc-issuer".into(),
            format!(
                "oidc.eks.{}.amazonaws.com/id/0A1B2C3D4E5F60718293A4B5C6D7E8F9",
                system.signing.region
            ),
        ]);
    }
    flags
}

/// `--service-host` for each service without a host in the spec: a name
/// of the form VPC Lattice generates, as the CloudFormation stack passes it
/// to the containers.
fn lattice_hosts(system: &envoy_gen::model::System) -> Vec<String> {
    system
        .services
        .iter()
        .filter(|s| s.upstream.is_none())
        .flat_map(|s| {
            [
                "--service-host".to_string(),
                format!(
                    "{}={}-0a1b2c3d4e5f60789.7d67968.vpc-lattice-svcs.{}.on.aws",
                    s.name, s.name, system.signing.region
                ),
            ]
        })
        .collect()
}

/// `envoy-gen <args>` writing into `dir` (`UPDATE_GOLDEN`) or checking it;
/// the error output on drift.
fn write_or_check(args: &[String], dir: &Path, update: bool) -> Option<String> {
    let out = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .args(args)
        .arg(if update { "-o" } else { "--check" })
        .arg(dir)
        .output()
        .unwrap();
    (!out.status.success()).then(|| format!("{}: {}", dir.display(), String::from_utf8_lossy(&out.stderr)))
}

#[test]
fn generated_files_match_the_generator() {
    let update = std::env::var_os("UPDATE_GOLDEN").is_some();
    let mut drifted = Vec::new();
    for (name, spec) in examples() {
        let dir = root().join("envoy/generated").join(&name);
        let text = std::fs::read_to_string(&spec).unwrap();
        let system = envoy_gen::load(Some((&spec, &text)), &Default::default()).unwrap();
        let hosts = lattice_hosts(&system);
        let mut frontend = vec!["frontend".to_string()];
        frontend.extend(hosts.iter().cloned());
        let mut outputs = vec![("frontend.yaml".to_string(), render(&spec, &frontend))];
        if system.account.is_some() {
            for service in &system.services {
                let mut sidecar = vec!["sidecar".to_string(), "--service".into(), service.name.clone()];
                sidecar.extend(hosts.iter().cloned());
                outputs.push((format!("sidecar-{}.yaml", service.name), render(&spec, &sidecar)));
            }
            let spec_args = |command: &str| vec![command.to_string(), "--spec".into(), spec.display().to_string()];
            drifted.extend(write_or_check(&spec_args("policies"), &dir.join("policies"), update));
            // Without a frontend role, the services alone (the reference
            // deployed without OAuth).
            let no_frontend: Vec<String> = system
                .frontend
                .role
                .is_none()
                .then(|| "--no-frontend".to_string())
                .into_iter()
                .collect();
            // The ECS task definitions need every host in the spec.
            if hosts.is_empty() {
                let mut args = spec_args("ecs");
                args.extend(ecs_flags(&name, &system));
                args.extend(no_frontend.iter().cloned());
                drifted.extend(write_or_check(&args, &dir.join("ecs"), update));
            }
            // The Kubernetes manifests need every host in the spec (each is
            // an HTTPRoute's hostname): EKS Pod Identity for a system with a
            // frontend, IRSA for the services alone.
            if hosts.is_empty() {
                let mut args = spec_args("kubernetes");
                args.extend(kubernetes_flags(&name, &system));
                args.extend(no_frontend.iter().cloned());
                drifted.extend(write_or_check(&args, &dir.join("kubernetes"), update));
            }
            let mut args = spec_args("cloudformation");
            args.extend(no_frontend.iter().cloned());
            // Custom domain names have certificates of a private CA (the
            // reference's ACM Private CA), which the image holds.
            if hosts.is_empty() {
                args.extend(["--lattice-ca".into(), "/etc/lattice-jwt/lattice-ca.pem".into()]);
            }
            let cloudformation = dir.join("cloudformation");
            if update {
                std::fs::create_dir_all(&cloudformation).unwrap();
            }
            drifted.extend(write_or_check(&args, &cloudformation.join("stack.yaml"), update));
            args.push("--split".into());
            drifted.extend(write_or_check(&args, &cloudformation.join("split"), update));
        }
        for (file, rendered) in outputs {
            let golden = dir.join(file);
            if update {
                std::fs::create_dir_all(&dir).unwrap();
                std::fs::write(&golden, &rendered).unwrap();
            } else if std::fs::read_to_string(&golden).ok().as_deref() != Some(rendered.as_str()) {
                drifted.push(golden.display().to_string());
            }
        }
    }
    let schema = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
        .arg("schema")
        .output()
        .unwrap();
    assert!(schema.status.success());
    let schema_path = root().join("envoy/spec.schema.json");
    if update {
        std::fs::write(&schema_path, &schema.stdout).unwrap();
    } else if std::fs::read(&schema_path).ok() != Some(schema.stdout) {
        drifted.push(schema_path.display().to_string());
    }
    assert!(
        drifted.is_empty(),
        "generated files differ from what envoy-gen renders (run `make generate` and review the diff): {drifted:?}"
    );
}

/// The committed configurations name files under /etc/envoy/ where Envoy
/// runs. Here they are provided in a temporary directory (the built filter,
/// a real certificate and key, a CA) that `envoy-gen validate --map` reads
/// them from; it runs Envoy without network.
#[test]
fn every_generated_file_is_accepted_by_envoy() {
    let wasm = root().join(envoy_gen::envoy::LOCAL_WASM);
    assert!(wasm.is_file(), "{} is missing: run `make build`", wasm.display());
    let envoy = envoy_gen::envoy::find_envoy(None).unwrap_or_else(|e| panic!("{e}"));
    let dir = tempfile::tempdir().unwrap();
    let etc = dir.path().join("etc-envoy");
    std::fs::create_dir_all(etc.join("tls")).unwrap();
    std::os::unix::fs::symlink(&wasm, etc.join("jwt_scopes.wasm")).unwrap();
    let cert = rcgen::generate_simple_self_signed(vec!["frontend.example.com".into()]).unwrap();
    std::fs::write(etc.join("tls/frontend.crt"), cert.cert.pem()).unwrap();
    std::fs::write(etc.join("tls/frontend.key"), cert.signing_key.serialize_pem()).unwrap();
    for ca in ["lattice-sim-ca.pem", "dev-issuer-ca.pem"] {
        std::fs::write(etc.join(ca), cert.cert.pem()).unwrap();
    }
    let map = format!("/etc/envoy={}", etc.display());
    let mut checked = 0;
    for (name, _) in examples() {
        let mut files: Vec<PathBuf> = std::fs::read_dir(root().join("envoy/generated").join(&name))
            .unwrap()
            .map(|e| e.unwrap().path())
            .filter(|p| p.extension().is_some_and(|e| e == "yaml"))
            .collect();
        files.sort();
        for golden in files {
            let text = std::fs::read_to_string(&golden).unwrap();
            let file = golden.file_stem().unwrap().to_string_lossy().into_owned();
            if file == "frontend" {
                assert!(
                    text.contains("/etc/envoy/") || name == "quickstart" || name == "no-oauth" || name == "reference"
                );
            }
            checked += 1;
            let out = Command::new(env!("CARGO_BIN_EXE_envoy-gen"))
                .arg("validate")
                .arg(&golden)
                .arg("--map")
                .arg(&map)
                .arg("--envoy")
                .arg(&envoy)
                .output()
                .unwrap();
            assert!(
                out.status.success(),
                "{name}/{file}: {}{}",
                String::from_utf8_lossy(&out.stdout),
                String::from_utf8_lossy(&out.stderr)
            );
            assert_eq!(
                std::fs::read_to_string(&golden).unwrap(),
                text,
                "{name}/{file} was modified"
            );
        }
    }
    // Five frontends and the reference's three sidecars at least.
    assert!(checked >= 8, "only {checked} configurations checked");
}
