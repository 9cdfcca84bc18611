//! Every (caller, service, scopes) combination of a spec, decided by
//! lattice-sim's policy engine with the documents `envoy-gen policies`
//! renders (auth policies of the network and the service, and the caller's
//! identity policy), must equal what the spec says, read independently
//! from the YAML: a frontend user needs every scope one of the service's
//! `from: frontend` entries lists; a service must list the target in
//! `calls` and be admitted by name (with the scopes it propagates, when the
//! entry lists scopes); anonymous callers only where `from: anonymous`.
#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)]

use e2e::deployment::{lattice_sim_config, RoleKey};
use jwt_scopes_core::names::{scope_header_name, ScopeEncoding};
use lattice_sim::config::Config;
use lattice_sim::lattice::{self, RequestInfo};
use serde_json::Value;
use std::collections::{BTreeMap, BTreeSet};

/// Who signs a request, and which user scopes it carries as headers.
#[derive(Debug, Clone)]
enum Who {
    Frontend(BTreeSet<String>),
    Service(String, BTreeSet<String>),
    Anonymous,
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| a.iter().filter_map(|s| s.as_str().map(String::from)).collect())
        .unwrap_or_default()
}

/// What the spec says, from its YAML alone.
fn intent(spec: &Value, who: &Who, target: &str) -> bool {
    let services = spec["services"].as_array().unwrap();
    let service = |name: &str| services.iter().find(|s| s["name"] == name).unwrap();
    let callers = service(target)["callers"].as_array().cloned().unwrap_or_default();
    let admits = |from: &str, scopes: &BTreeSet<String>| {
        callers
            .iter()
            .any(|c| c["from"] == from && strings(&c["scopes"]).iter().all(|s| scopes.contains(s)))
    };
    // `from: anonymous` is anyone, signed or not; a signed caller still
    // needs the target in what it may call (the frontend: every service).
    let anyone = admits("anonymous", &BTreeSet::new());
    match who {
        Who::Frontend(scopes) => anyone || admits("frontend", scopes),
        Who::Service(name, scopes) => {
            strings(&service(name)["calls"]).iter().any(|c| c == target) && (anyone || admits(name, scopes))
        }
        Who::Anonymous => anyone,
    }
}

/// Every subset of `items`.
fn subsets(items: &[String]) -> Vec<BTreeSet<String>> {
    (0..1u32 << items.len())
        .map(|mask| {
            items
                .iter()
                .enumerate()
                .filter(|(i, _)| mask & (1 << i) != 0)
                .map(|(_, s)| s.clone())
                .collect()
        })
        .collect()
}

/// Decides every combination of `spec_text`; returns how many it checked.
fn check_every_combination(spec_text: &str) -> usize {
    let spec: Value = serde_saphyr::from_str(spec_text).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let spec_path = dir.path().join("spec.yaml");
    std::fs::write(&spec_path, spec_text).unwrap();
    let system = envoy_gen::load(Some((&spec_path, spec_text)), &Default::default()).unwrap();
    let rendered = envoy_gen::policies::render(&system).unwrap_or_else(|p| panic!("{p:?}"));
    let policies = dir.path().join("policies");
    envoy_gen::policies::write(&policies, &rendered).unwrap();

    let account = system.account.clone().unwrap();
    let roles: Vec<_> = system
        .frontend
        .role
        .iter()
        .chain(system.services.iter().filter_map(|s| s.role.as_ref()))
        .cloned()
        .collect();
    let keys: Vec<RoleKey> = roles.iter().map(|role| RoleKey::new(role, &account)).collect();
    let targets: BTreeMap<String, String> = system
        .services
        .iter()
        .map(|s| (s.name.clone(), "http://127.0.0.1:9".to_string()))
        .collect();
    let sim_path = dir.path().join("lattice-sim.yaml");
    let sim = lattice_sim_config(&system, &policies, &targets, &keys).unwrap();
    std::fs::write(&sim_path, sim.to_string()).unwrap();
    let config = Config::load(&sim_path).unwrap();
    let caller_of = |role_name: &str| {
        let key = keys.iter().find(|k| k.role.name == role_name).unwrap();
        config.credentials[&key.credentials.access_key_id].caller.clone()
    };

    let mut all_scopes: BTreeSet<String> = BTreeSet::new();
    for s in spec["services"].as_array().unwrap() {
        for c in s["callers"].as_array().cloned().unwrap_or_default() {
            all_scopes.extend(strings(&c["scopes"]));
        }
    }
    all_scopes.insert("unrelated.scope".into());
    let all_scopes: Vec<String> = all_scopes.into_iter().collect();
    let mut whos: Vec<Who> = subsets(&all_scopes).into_iter().map(Who::Frontend).collect();
    for s in spec["services"].as_array().unwrap() {
        let name = s["name"].as_str().unwrap().to_string();
        if s["role"].is_string() {
            let propagates = s["propagate_identity"].as_bool().unwrap_or(false);
            let sets = if propagates {
                subsets(&all_scopes)
            } else {
                vec![BTreeSet::new()]
            };
            whos.extend(sets.into_iter().map(|set| Who::Service(name.clone(), set)));
        }
    }
    whos.push(Who::Anonymous);

    let mut checked = 0;
    for service in &config.services {
        for who in &whos {
            let (caller, scopes) = match who {
                Who::Frontend(scopes) => {
                    let role = system.frontend.role.as_ref().unwrap();
                    (Some(caller_of(&role.name)), scopes.clone())
                }
                Who::Service(name, scopes) => {
                    let role = system.service(name).unwrap().role.as_ref().unwrap();
                    (Some(caller_of(&role.name)), scopes.clone())
                }
                Who::Anonymous => (None, BTreeSet::new()),
            };
            let headers: Vec<(String, Vec<u8>)> = scopes
                .iter()
                .map(|s| {
                    (
                        scope_header_name("x-jwt-scope-", s, ScopeEncoding::Escape).unwrap(),
                        b"true".to_vec(),
                    )
                })
                .collect();
            let path = format!("/{}/orders", service.name);
            let request = RequestInfo {
                method: "GET",
                path: &path,
                query: "",
                headers: &headers,
                port: 443,
            };
            let verdict = lattice::authorize(&config, service, caller.as_ref(), &request);
            let expected = intent(&spec, who, &service.name);
            assert_eq!(
                verdict.allowed,
                expected,
                "{who:?} -> {}: lattice-sim says {verdict:?}, the spec says {}",
                service.name,
                if expected { "allow" } else { "deny" }
            );
            checked += 1;
        }
    }
    checked
}

#[test]
fn the_reference_policies_decide_as_the_reference_spec_says() {
    let text = std::fs::read_to_string(e2e::envoy::workspace_root().join("envoy/examples/reference.yaml")).unwrap();
    // 3 services x (4 frontend scope sets + 3 services + anonymous).
    assert_eq!(check_every_combination(&text), 3 * (4 + 3 + 1));
}

/// Propagated identity, anonymous callers, scopes that need encoding, a
/// service calling one that refuses it.
#[test]
fn a_richer_spec_decides_as_it_says() {
    let text = r#"
region: eu-west-1
account: "444455556666"
domain: svc.example.com
issuers:
  - {name: entra, issuer: "https://login.example.com/t/v2.0", jwks_uri: "https://login.example.com/t/keys", audiences: [api]}
frontend: {role: edge}
services:
  - name: orders
    id: svc-0123456789abcdef0
    role: orders-task
    calls: [billing, status]
    propagate_identity: true
    callers:
      - {from: frontend, scopes: [Orders.Read]}
      - {from: frontend, scopes: ["api://orders/admin"]}
  - name: billing
    id: svc-0123456789abcdef1
    role: billing-task
    callers:
      - {from: orders, scopes: [Orders.Read]}
  - name: status
    id: svc-0123456789abcdef2
    role: status-task
    calls: [orders]
    callers:
      - {from: anonymous}
"#;
    // 3 services x (8 frontend sets + 8 orders sets + billing + status + anonymous).
    assert_eq!(check_every_combination(text), 3 * (8 + 8 + 1 + 1 + 1));
}
