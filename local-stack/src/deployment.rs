//! A whole spec deployed on 127.0.0.1: what `make demo` runs and the
//! end-to-end tests drive. From one spec (`envoy/examples/reference.yaml`):
//!
//!   client --JWT--> frontend Envoy --SigV4 (frontend role)--> lattice-sim --> appN
//!   appN --plain HTTP--> appN's sidecar Envoy --SigV4 (appN's role)--> lattice-sim --> appM
//!
//! Every Envoy configuration is rendered by envoy-gen from the spec (with
//! local overrides: loopback ports, the local IdP, lattice-sim as the
//! endpoint, environment credentials only), and lattice-sim runs the exact
//! policy files `envoy-gen policies` wrote: nothing is copied by hand.

use crate::envoy::{AwsCredentials, Envoy};
use crate::stack::{local_overrides, with_issuer};
use dev_idp::jwt::{Alg, Issuer};
use echo_app::app::App;
use envoy_gen::args::ListenArgs;
use envoy_gen::model::{Role, System};
use sha2::{Digest, Sha256};
use std::collections::BTreeMap;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::Duration;

/// The audience the local IdP mints tokens for.
pub const AUDIENCE: &str = "lattice-demo";

/// The development IdP (`dev-idp`, the binary a user runs by hand),
/// serving its JWKS over HTTPS from `dir`. Stopped on drop.
pub struct DevIdp {
    child: Child,
    pub dir: PathBuf,
    pub binary: PathBuf,
    /// The `iss` of its tokens.
    pub issuer: String,
    pub jwks_uri: String,
    signer: Issuer,
}

impl DevIdp {
    /// `dev-idp init --dir DIR`, then `dev-idp serve` on an ephemeral loopback port.
    pub fn start(binary: &Path, dir: &Path) -> Result<DevIdp, String> {
        let run = |args: &[&str]| -> Result<(), String> {
            let out = Command::new(binary)
                .args(args)
                .output()
                .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
            if out.status.success() {
                Ok(())
            } else {
                Err(format!(
                    "dev-idp {}: {}",
                    args.join(" "),
                    String::from_utf8_lossy(&out.stderr)
                ))
            }
        };
        let dir_text = dir.display().to_string();
        run(&["init", "--dir", &dir_text, "--force"])?;
        let port_file = dir.join("port");
        let _ = std::fs::remove_file(&port_file);
        let log = std::fs::File::create(dir.join("serve.log")).map_err(|e| e.to_string())?;
        let mut child = Command::new(binary)
            .args(["serve", "--dir", &dir_text, "--listen", "127.0.0.1:0", "--port-file"])
            .arg(&port_file)
            .stdin(Stdio::null())
            .stdout(log.try_clone().map_err(|e| e.to_string())?)
            .stderr(log)
            .spawn()
            .map_err(|e| format!("cannot run {}: {e}", binary.display()))?;
        let port = match wait_for_port_file(&port_file, &mut child) {
            Ok(port) => port,
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                let log = std::fs::read_to_string(dir.join("serve.log")).unwrap_or_default();
                return Err(format!("dev-idp serve: {e}: {log}"));
            }
        };
        let settings: serde_json::Value = std::fs::read_to_string(dir.join("idp.json"))
            .ok()
            .and_then(|t| serde_json::from_str(&t).ok())
            .ok_or("dev-idp init wrote no readable idp.json")?;
        let issuer = settings["issuer"].as_str().ok_or("idp.json has no issuer")?.to_string();
        let key = std::fs::read_to_string(dir.join("signing-key.pem")).map_err(|e| e.to_string())?;
        Ok(DevIdp {
            child,
            dir: dir.to_path_buf(),
            binary: binary.to_path_buf(),
            issuer,
            jwks_uri: format!("https://localhost:{port}/.well-known/jwks.json"),
            signer: Issuer::from_es256_pem(&key)?,
        })
    }

    /// An access token for `audience` with `claims` on top of iss, aud,
    /// iat, nbf and exp (one hour), signed with the IdP's key.
    pub fn token(&self, audience: &str, claims: serde_json::Value) -> Result<String, String> {
        let mut map = match claims {
            serde_json::Value::Object(map) => map,
            _ => serde_json::Map::new(),
        };
        map.insert("iss".into(), self.issuer.clone().into());
        map.insert("aud".into(), audience.into());
        self.signer.sign(Alg::ES256, map, Duration::from_secs(3600))
    }

    /// The shell command that mints the same kind of token.
    pub fn token_command(&self, subject: &str, audience: &str, scopes: &[&str]) -> String {
        let scopes: String = scopes.iter().map(|s| format!(" --scope {s}")).collect();
        format!(
            "{} token --dir {} --sub {subject} --aud {audience}{scopes}",
            self.binary.display(),
            self.dir.display()
        )
    }
}

impl Drop for DevIdp {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

pub use dev_idp::idp::wait_for_port_file;

/// The signing identity of one role in lattice-sim and in Envoy's environment.
#[derive(Debug, Clone)]
pub struct RoleKey {
    pub role: Role,
    pub credentials: AwsCredentials,
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>`.
    pub session_arn: String,
}

/// Everything running. Field order is drop order: the Envoys stop first.
pub struct Deployment {
    pub frontend: Envoy,
    pub sidecars: Vec<(String, Envoy)>,
    pub apps: Vec<(String, App)>,
    pub sim: lattice_sim::front::Running,
    pub idp: DevIdp,
    pub system: System,
    pub keys: Vec<RoleKey>,
    /// lattice-sim's access-log lines, in order.
    pub sim_log: Arc<Mutex<Vec<String>>>,
    /// The rendered files: `frontend.yaml`, `sidecar-<name>.yaml`,
    /// `policies/`, `lattice-sim.yaml`, `ca-bundle.pem`.
    pub dir: PathBuf,
    _tmp: Option<tempfile::TempDir>,
}

/// An access key id for `role` (20 characters, as AWS's are).
fn access_key_id(role: &str) -> String {
    let letters: String = role
        .bytes()
        .filter(u8::is_ascii_alphanumeric)
        .map(|b| char::from(b.to_ascii_uppercase()))
        .collect();
    format!("ASIA{letters:0<16}").chars().take(20).collect()
}

/// A secret nobody else knows: fresh for each run.
fn fresh_secret(role: &str, what: &str) -> String {
    let nonce = format!(
        "{role}/{what}/{}/{:?}",
        std::process::id(),
        std::time::SystemTime::now()
    );
    hex::encode(Sha256::digest(nonce.as_bytes()))
}

impl RoleKey {
    /// A fresh key for `role`, signing as the session `<role>-envoy`.
    pub fn new(role: &Role, account: &str) -> RoleKey {
        let session = format!("{}-envoy", role.name);
        RoleKey {
            role: role.clone(),
            credentials: AwsCredentials {
                access_key_id: access_key_id(&role.name),
                secret_access_key: fresh_secret(&role.name, "secret")
                    .get(..40)
                    .unwrap_or_default()
                    .to_string(),
                session_token: fresh_secret(&role.name, "token"),
            },
            session_arn: format!("arn:aws:sts::{account}:assumed-role/{}/{session}", role.name),
        }
    }
}

/// lattice-sim's configuration for `system`: one service per spec service,
/// forwarding to `targets`, with the policy files under `policies`, and one
/// credential per role carrying that role's identity policy file when
/// `envoy-gen policies` wrote one. JSON, which lattice-sim's YAML reader takes.
pub fn lattice_sim_config(
    system: &System,
    policies: &Path,
    targets: &BTreeMap<String, String>,
    keys: &[RoleKey],
) -> Result<serde_json::Value, String> {
    let account = system.account.clone().ok_or("the spec has no `account`")?;
    let services = system
        .services
        .iter()
        .map(|s| {
            let target = targets.get(&s.name).ok_or(format!("no app for service {}", s.name))?;
            let upstream = s.upstream.as_ref().ok_or(format!("service {} has no host", s.name))?;
            let mut service = serde_json::json!({
                "name": s.name,
                "host": upstream.host,
                "auth_type": "AWS_IAM",
                "policy_file": policies.join(envoy_gen::policies::service_file(&s.name)),
                "target": target,
            });
            if let Some(id) = &s.id {
                service["id"] = id.clone().into();
            }
            Ok(service)
        })
        .collect::<Result<Vec<_>, String>>()?;
    let credentials: Vec<serde_json::Value> = keys
        .iter()
        .map(|k| {
            let mut credential = serde_json::json!({
                "access_key_id": k.credentials.access_key_id,
                "secret_access_key": k.credentials.secret_access_key,
                "session_token": k.credentials.session_token,
                "principal": k.session_arn,
                // The session ARN does not carry the role's path; its ARN does.
                "role_arn": k.role.arn,
            });
            // Every role has identity policies in AWS; one for which envoy-gen
            // wrote none may invoke no Lattice service.
            let identity = policies.join(envoy_gen::policies::role_file(&k.role.name));
            if identity.is_file() {
                credential["identity_policy_file"] = identity.display().to_string().into();
            } else {
                credential["identity_policy"] = serde_json::json!({
                    "Version": "2012-10-17",
                    "Statement": [{
                        "Sid": "NothingInLattice",
                        "Effect": "Allow",
                        "Action": "sts:GetCallerIdentity",
                        "Resource": "*",
                    }],
                });
            }
            credential
        })
        .collect();
    Ok(serde_json::json!({
        "region": system.signing.region,
        "account": account,
        "service_network": {
            "name": system.network.name.clone().unwrap_or_else(|| "service-network".into()),
            "auth_type": "AWS_IAM",
            "policy_file": policies.join(envoy_gen::policies::NETWORK_FILE),
        },
        "services": services,
        "credentials": credentials,
    }))
}

fn write(path: &Path, text: &str) -> Result<(), String> {
    std::fs::write(path, text).map_err(|e| format!("{}: {e}", path.display()))
}

/// One step of starting the system, named in the error when it fails.
fn step<T>(what: &str, result: Result<T, String>) -> Result<T, String> {
    result.map_err(|e| format!("{what}: {e}"))
}

impl Deployment {
    /// Renders and starts the system of `spec`. The rendered files go to
    /// `dir` (kept), or to a temporary directory removed on drop.
    pub fn start(spec: &Path, dir: Option<&Path>, dev_idp: &Path) -> Result<Deployment, String> {
        let (tmp, dir) = match dir {
            Some(d) => {
                step("run directory", std::fs::create_dir_all(d).map_err(|e| e.to_string()))?;
                (None, d.to_path_buf())
            }
            None => {
                let t = tempfile::tempdir().map_err(|e| e.to_string())?;
                let path = t.path().to_path_buf();
                (Some(t), path)
            }
        };
        let spec_text = step(
            "spec",
            std::fs::read_to_string(spec).map_err(|e| format!("{}: {e}", spec.display())),
        )?;

        // The IdP first: the frontend trusts its issuer and fetches its keys.
        let idp = step("dev-idp", DevIdp::start(dev_idp, &dir.join("idp")))?;
        let idp_ca = step(
            "dev-idp",
            std::fs::read_to_string(dir.join("idp/ca.pem")).map_err(|e| e.to_string()),
        )?;

        // Policies straight from the spec.
        let plain = step(
            "envoy-gen",
            envoy_gen::load(Some((spec, &spec_text)), &Default::default()),
        )?;
        let account = plain
            .account
            .clone()
            .ok_or("the spec has no `account`: it describes no system")?;
        let rendered = envoy_gen::policies::render(&plain)
            .map_err(|problems| format!("envoy-gen policies:\n{}", envoy_gen::report(&problems, None)))?;
        let policies = dir.join("policies");
        step("envoy-gen policies", envoy_gen::policies::write(&policies, &rendered))?;

        // One key per role that signs: the frontend's and each service's.
        let mut keys: Vec<RoleKey> = Vec::new();
        for role in plain
            .frontend
            .role
            .iter()
            .chain(plain.services.iter().filter_map(|s| s.role.as_ref()))
        {
            if !keys.iter().any(|k| k.role == *role) {
                keys.push(RoleKey::new(role, &account));
            }
        }

        // The apps (which call each other as `<name>.<domain>`), then
        // lattice-sim in front of them.
        let domain = plain.domain.clone().ok_or("the spec has no `domain`")?;
        let mut apps = Vec::new();
        let mut targets = BTreeMap::new();
        for s in &plain.services {
            let app = step(&format!("app {}", s.name), App::start(&s.name, None, &domain))?;
            targets.insert(s.name.clone(), format!("http://{}", app.addr));
            apps.push((s.name.clone(), app));
        }
        let sim_config = lattice_sim_config(&plain, &policies, &targets, &keys)?;
        let sim_path = dir.join("lattice-sim.yaml");
        write(&sim_path, &format!("{sim_config:#}\n"))?;
        let config = step("lattice-sim", lattice_sim::config::Config::load(&sim_path))?;
        let sim_log = Arc::new(Mutex::new(Vec::<String>::new()));
        let sink = sim_log.clone();
        let sim = step(
            "lattice-sim",
            lattice_sim::front::start_with_log(
                config,
                "127.0.0.1:0",
                Arc::new(move |line: &str| {
                    if let Ok(mut lines) = sink.lock() {
                        lines.push(line.to_string());
                    }
                }),
            ),
        )?;

        // Envoy trusts one bundle: the IdP's CA and lattice-sim's.
        let bundle = dir.join("ca-bundle.pem");
        write(&bundle, &format!("{idp_ca}{}", sim.ca_pem))?;
        let overrides = with_issuer(
            local_overrides(&domain, &plain.signing.region, sim.addr.port(), &bundle),
            &idp.issuer,
            &idp.jwks_uri,
            AUDIENCE,
        );
        let system = step("envoy-gen", envoy_gen::load(Some((spec, &spec_text)), &overrides))?;
        let key_of = |role: Option<&Role>| -> AwsCredentials {
            role.and_then(|r| keys.iter().find(|k| k.role == *r))
                .map(|k| k.credentials.clone())
                // A service without a role signs with a key Lattice does not know.
                .unwrap_or_else(|| AwsCredentials {
                    access_key_id: "ASIANOROLE0000000000".into(),
                    secret_access_key: fresh_secret("none", "secret"),
                    session_token: fresh_secret("none", "token"),
                })
        };

        let frontend_yaml = step(
            "envoy-gen frontend",
            envoy_gen::frontend::render(&system).map_err(|problems| envoy_gen::report(&problems, None)),
        )?;
        // The build under test is the one rendered (JWT_SCOPES_FILTER=native).
        let native = matches!(crate::frontend::Build::under_test(), crate::frontend::Build::Native(_));
        if native != frontend_yaml.contains("envoy.filters.http.dynamic_modules") {
            return Err(format!(
                "the frontend does not load the build under test (native: {native})"
            ));
        }
        write(&dir.join("frontend.yaml"), &frontend_yaml)?;
        let frontend = step(
            "frontend Envoy",
            Envoy::start_as(&frontend_yaml, &key_of(system.frontend.role.as_ref())),
        )?;

        let loopback = ListenArgs {
            listen: Some("127.0.0.1:0".into()),
            admin: Some("127.0.0.1:0".into()),
        };
        let mut sidecars = Vec::new();
        for s in &system.services {
            let yaml = envoy_gen::sidecar::render(&system, &s.name, &loopback).map_err(|problems| {
                format!(
                    "envoy-gen sidecar --service {}:\n{}",
                    s.name,
                    envoy_gen::report(&problems, None)
                )
            })?;
            write(&dir.join(format!("sidecar-{}.yaml", s.name)), &yaml)?;
            let envoy = step(
                &format!("sidecar of {}", s.name),
                Envoy::start_as(&yaml, &key_of(s.role.as_ref())),
            )?;
            sidecars.push((s.name.clone(), envoy));
        }
        for (name, app) in &apps {
            if let Some((_, envoy)) = sidecars.iter().find(|(n, _)| n == name) {
                app.set_sidecar(std::net::SocketAddr::from(([127, 0, 0, 1], envoy.port("sidecar"))));
            }
        }
        Ok(Deployment {
            frontend,
            sidecars,
            apps,
            sim,
            idp,
            system,
            keys,
            sim_log,
            dir,
            _tmp: tmp,
        })
    }

    /// The frontend's listener port.
    pub fn frontend_port(&self) -> u16 {
        self.frontend.port("frontend")
    }

    /// The sidecar listener port of `service`.
    pub fn sidecar_port(&self, service: &str) -> Option<u16> {
        self.sidecars
            .iter()
            .find(|(n, _)| n == service)
            .map(|(_, e)| e.port("sidecar"))
    }

    /// The signing identity of `role_name`.
    pub fn key(&self, role_name: &str) -> Option<&RoleKey> {
        self.keys.iter().find(|k| k.role.name == role_name)
    }

    /// A token from the local IdP for `subject` with `scopes` (the `scope` string style).
    pub fn token(&self, subject: &str, scopes: &[&str]) -> Result<String, String> {
        self.idp
            .token(AUDIENCE, serde_json::json!({"sub": subject, "scope": scopes.join(" ")}))
    }

    /// lattice-sim's log lines from index `from` on.
    pub fn sim_log_since(&self, from: usize) -> Vec<String> {
        self.sim_log
            .lock()
            .map(|l| l.iter().skip(from).cloned().collect())
            .unwrap_or_default()
    }

    pub fn sim_log_len(&self) -> usize {
        self.sim_log.lock().map(|l| l.len()).unwrap_or(0)
    }
}
