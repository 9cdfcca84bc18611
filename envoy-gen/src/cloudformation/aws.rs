//! The AWS side of the stack: what AWS would refuse in the spec (checked at
//! render time, each with the spec's field), the parameters, and the
//! resources of the network, each service and the frontend.

use super::stacks::{Graph, Part};
use super::{problem, role_id, service_id, word};
use crate::args::TaskArgs;
use crate::model::{Problem, Role, Service, System};
use crate::spec::Origin;
use serde_json::{json, Value};
use std::collections::BTreeMap;

/// How long the log group keeps the access and Envoy logs: a year, what
/// audit rules commonly ask of access logs (checkov CKV_AWS_338).
pub const LOG_RETENTION_DAYS: u32 = 365;

/// What the checks found that the rendering needs.
pub struct Names {
    /// The roles the stack creates, by their ARN in the spec.
    pub roles: BTreeMap<String, Role>,
    /// What begins every export name with `--split`.
    pub export_prefix: String,
}

/// A VPC Lattice name: 3 to `max` lower-case letters, digits and hyphens,
/// no hyphen first, last or twice in a row, and not beginning with
/// `reserved` (the API's pattern for service, target-group and network
/// names).
pub(crate) fn lattice_name_problem(name: &str, max: usize, reserved: &str) -> Option<String> {
    let rules = format!(
        "3 to {max} lower-case letters, digits and hyphens, no hyphen first, last or twice in a row, not beginning with `{reserved}`"
    );
    let ok = (3..=max).contains(&name.len())
        && name
            .bytes()
            .all(|b| b.is_ascii_lowercase() || b.is_ascii_digit() || b == b'-')
        && !name.starts_with('-')
        && !name.ends_with('-')
        && !name.contains("--")
        && !name.starts_with(reserved);
    (!ok).then_some(rules)
}

/// Checks what AWS would refuse at deploy time, every problem at once.
pub fn check(system: &System, task: &TaskArgs, split: bool) -> Result<Names, Vec<Problem>> {
    let mut problems = Vec::new();
    let Some(account) = system.account.as_deref() else {
        return Err(vec![problem(
            &Origin::Default,
            "account",
            "is required for a CloudFormation stack (the 12-digit AWS account it deploys to)".into(),
        )]);
    };
    for service in &system.services {
        let field = format!("{}.name", service.field);
        // The Lattice service and its target group are both named after it.
        if let Some(rules) = lattice_name_problem(&service.name, 40, "svc-") {
            problems.push(problem(
                &service.origin,
                &field,
                format!("`{}` cannot name a VPC Lattice service ({rules})", service.name),
            ));
        } else if let Some(rules) = lattice_name_problem(&service.name, 128, "tg-") {
            problems.push(problem(
                &service.origin,
                &field,
                format!("`{}` cannot name a VPC Lattice target group ({rules})", service.name),
            ));
        }
        if let Some(upstream) = &service.upstream {
            let host = upstream.host.as_str();
            if host.ends_with(".on.aws") {
                problems.push(problem(
                    &service.origin,
                    &format!("{}.host", service.field),
                    format!(
                        "`{host}` is a name VPC Lattice generates, not a custom domain name: leave `host` (and `domain`) out \
                         and the stack passes the service's generated name to the Envoys that call it"
                    ),
                ));
            } else if host.len() > 255 {
                problems.push(problem(
                    &service.origin,
                    &format!("{}.host", service.field),
                    format!("`{host}` is longer than a VPC Lattice custom domain name may be (255 characters)"),
                ));
            }
        }
    }
    if let Some(name) = &system.network.name {
        if let Some(rules) = lattice_name_problem(name, 63, "servicenetwork-") {
            problems.push(problem(
                &Origin::Default,
                "network.name",
                format!("`{name}` cannot name a VPC Lattice service network ({rules})"),
            ));
        }
    }
    let mut roles = BTreeMap::new();
    let deployed = system
        .frontend
        .role
        .iter()
        .filter(|_| !task.no_frontend)
        .chain(system.services.iter().filter_map(|s| s.role.as_ref()));
    for role in deployed {
        match role_account_and_path(&role.arn) {
            Some((role_account, _)) if role_account != account => problems.push(problem(
                &role.origin,
                "role",
                format!(
                    "`{}` is in account {role_account}: the stack creates its roles in the spec's account ({account})",
                    role.arn
                ),
            )),
            Some(_) => {
                roles.insert(role.arn.clone(), role.clone());
            }
            None => problems.push(problem(
                &role.origin,
                "role",
                format!("bug in envoy-gen: `{}` is not a role ARN", role.arn),
            )),
        }
    }
    let export_prefix = system.network.name.clone().unwrap_or_else(|| "lattice-jwt".into());
    if split && system.services.is_empty() {
        problems.push(problem(
            &Origin::Flag("--split"),
            "--split",
            "the spec has no service".into(),
        ));
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    Ok(Names { roles, export_prefix })
}

/// The account and the path (`/` or `/team/`) of a role ARN.
fn role_account_and_path(arn: &str) -> Option<(&str, String)> {
    let parts: Vec<&str> = arn.splitn(6, ':').collect();
    let ["arn", _, "iam", "", account, resource] = parts.as_slice() else {
        return None;
    };
    let path = resource.strip_prefix("role/")?;
    let path = match path.rsplit_once('/') {
        Some((dirs, _)) => format!("/{dirs}/"),
        None => "/".to_string(),
    };
    Some((account, path))
}

/// `Metadata` that skips checkov checks, each with its reason.
pub fn checkov_skip(checks: &[(&str, &str)]) -> Value {
    let skip: Vec<Value> = checks
        .iter()
        .map(|(id, why)| json!({"id": id, "comment": why}))
        .collect();
    json!({"checkov": {"skip": skip}})
}

fn string_parameter(description: &str, pattern: &str, message: &str) -> Value {
    json!({
        "Type": "String",
        "Description": description,
        "AllowedPattern": pattern,
        "ConstraintDescription": message,
    })
}

const IMAGE_PATTERN: &str = "^[a-zA-Z0-9][a-zA-Z0-9._/:@-]{0,254}$";
const CERTIFICATE_PATTERN: &str = "^arn:aws[a-z-]*:acm:[a-z0-9-]+:[0-9]{12}:certificate/[0-9a-f-]{36}$";

/// The parameters (what the spec cannot know), the rules that hold the
/// stack to the spec's account and region, and the conditions.
pub fn parameters(g: &mut Graph, system: &System, task: &TaskArgs) -> Result<(), String> {
    let p = "a parameter";
    g.parameter(
        "VpcId",
        p,
        json!({
            "Type": "AWS::EC2::VPC::Id",
            "Description": "The VPC of the tasks, the load balancer and the service network's VPC association",
            "AllowedPattern": "^vpc-[0-9a-f]{8,17}$",
            "ConstraintDescription": "a VPC id, vpc- and 8 or 17 hex digits",
        }),
    )?;
    g.parameter(
        "SubnetIds",
        p,
        json!({
            "Type": "List<AWS::EC2::Subnet::Id>",
            "Description": "Private subnets of the VPC for the tasks and the load balancer (two or more, in different availability zones), with a route to the IdP's JWKS URL (a NAT gateway)",
            "AllowedPattern": "^subnet-[0-9a-f]{8,17}$",
            "ConstraintDescription": "subnet ids, subnet- and 8 or 17 hex digits each",
        }),
    )?;
    g.parameter(
        "Image",
        p,
        string_parameter(
            "The lattice-jwt image with the spec built in (deploy/ecs/Dockerfile): the frontend and every sidecar run it",
            IMAGE_PATTERN,
            "an image reference, repository-url/image:tag or ...@sha256:digest",
        ),
    )?;
    if !task.no_frontend {
        let domain = system.domain.as_deref().unwrap_or("the load balancer's DNS name");
        g.parameter(
            "LoadBalancerCertificateArn",
            p,
            string_parameter(
                &format!("The ACM certificate of the frontend's load balancer, for {domain}"),
                CERTIFICATE_PATTERN,
                "an ACM certificate ARN",
            ),
        )?;
        g.parameter(
            "ClientCidr",
            p,
            string_parameter(
                "The addresses the frontend's load balancer accepts HTTPS from (your clients), a CIDR block",
                "^(([0-9]{1,3}\\.){3}[0-9]{1,3}/([0-9]|[12][0-9]|3[0-2]))$",
                "an IPv4 CIDR block like 10.0.0.0/8",
            ),
        )?;
    }
    g.parameter(
        "LatticePrefixListId",
        p,
        string_parameter(
            "The managed prefix list of VPC Lattice in this region (aws ec2 describe-managed-prefix-lists --filters Name=prefix-list-name,Values=com.amazonaws.<region>.vpc-lattice): the apps accept traffic from it only",
            "^pl-[0-9a-f]{8,17}$",
            "a prefix list id, pl- and 8 or 17 hex digits",
        ),
    )?;
    g.parameter(
        "HostedZoneId",
        p,
        json!({
            "Type": "String",
            "Default": "",
            "Description": "A Route 53 private hosted zone of the VPC for the custom domain names (empty: no DNS records)",
            "AllowedPattern": "^(Z[A-Z0-9]{1,31})?$",
            "ConstraintDescription": "a hosted zone id like Z0123456789ABCDEFGHIJ, or empty",
        }),
    )?;
    g.parameter(
        "DesiredCount",
        p,
        json!({
            "Type": "Number",
            "Default": 2,
            "MinValue": 1,
            "MaxValue": 100,
            "Description": "Tasks of each ECS service (the frontend and each app)",
        }),
    )?;
    g.conditions.insert(
        "HasHostedZone".into(),
        json!({"Fn::Not": [{"Fn::Equals": [{"Ref": "HostedZoneId"}, ""]}]}),
    );
    let region = &system.signing.region;
    let account = system.account.as_deref().unwrap_or_default();
    g.rules.insert(
        "SpecAccountAndRegion".into(),
        json!({
            "Assertions": [
                {
                    "Assert": {"Fn::Equals": [{"Ref": "AWS::Region"}, region]},
                    "AssertDescription": format!("The spec's services are in {region} (Envoy signs for it): deploy the stack there"),
                },
                {
                    "Assert": {"Fn::Equals": [{"Ref": "AWS::AccountId"}, account]},
                    "AssertDescription": format!("The spec's roles and policies name account {account}: deploy the stack there"),
                },
            ],
        }),
    );
    Ok(())
}

/// A task role of the spec: ECS tasks of this account may assume it.
pub fn task_role(role: &Role, system: &System) -> Value {
    let account = system.account.as_deref().unwrap_or_default();
    let path = role_account_and_path(&role.arn).map_or_else(|| "/".to_string(), |(_, path)| path);
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "RoleName": role.name,
            "Path": path,
            "Description": "A lattice-jwt task role: Envoy signs its requests to VPC Lattice with it",
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": "ecs-tasks.amazonaws.com"},
                    "Action": "sts:AssumeRole",
                    // Only ECS tasks of this account (the confused-deputy
                    // guard AWS recommends for task roles).
                    "Condition": {
                        "StringEquals": {"aws:SourceAccount": account},
                        "ArnLike": {"aws:SourceArn": format!("arn:aws:ecs:{}:{account}:*", system.signing.region)},
                    },
                }],
            },
        },
    })
}

/// A role an AWS service assumes, with one AWS managed policy.
pub fn service_role(principal: &str, description: &str, managed_policy: &str) -> Value {
    json!({
        "Type": "AWS::IAM::Role",
        "Properties": {
            "Description": description,
            "AssumeRolePolicyDocument": {
                "Version": "2012-10-17",
                "Statement": [{
                    "Effect": "Allow",
                    "Principal": {"Service": principal},
                    "Action": "sts:AssumeRole",
                }],
            },
            "ManagedPolicyArns": [{"Fn::Sub": format!("arn:${{AWS::Partition}}:iam::aws:policy/{managed_policy}")}],
        },
    })
}

/// The port of the container port mapping `name` in a task definition
/// (CloudFormation's shape).
fn container_port(task: &Value, name: &str) -> Result<u64, String> {
    let member = |value: &Value, key: &str| value.get(key).cloned().unwrap_or_default();
    member(&member(task, "Properties"), "ContainerDefinitions")
        .as_array()
        .into_iter()
        .flatten()
        .flat_map(|c| member(c, "PortMappings").as_array().cloned().unwrap_or_default())
        .find(|m| member(m, "Name") == name)
        .and_then(|m| member(&m, "ContainerPort").as_u64())
        .ok_or_else(|| format!("bug in envoy-gen: no port mapping `{name}` in a task definition"))
}

fn task_definition(definition: Value) -> Value {
    json!({"Type": "AWS::ECS::TaskDefinition", "Properties": definition})
}

/// An ECS service on Fargate in the private subnets, with `extra`
/// properties (how its tasks are reached).
fn ecs_service(task: &str, security_group: &str, depends_on: &str, extra: Value) -> Value {
    let mut service = json!({
        "Type": "AWS::ECS::Service",
        "DependsOn": [depends_on],
        "Properties": {
            "Cluster": {"Ref": "Cluster"},
            "TaskDefinition": {"Ref": task},
            "DesiredCount": {"Ref": "DesiredCount"},
            "LaunchType": "FARGATE",
            "PlatformVersion": "LATEST",
            "PropagateTags": "SERVICE",
            "DeploymentConfiguration": {
                "DeploymentCircuitBreaker": {"Enable": true, "Rollback": true},
            },
            "NetworkConfiguration": {
                "AwsvpcConfiguration": {
                    "AssignPublicIp": "DISABLED",
                    "Subnets": {"Ref": "SubnetIds"},
                    "SecurityGroups": [{"Ref": security_group}],
                },
            },
        },
    });
    if let (Some(properties), Value::Object(extra)) =
        (service.get_mut("Properties").and_then(Value::as_object_mut), extra)
    {
        properties.extend(extra);
    }
    service
}

/// A security group of the VPC that admits TCP `port` from `source` only
/// (a prefix list, another group or a CIDR block: its member and value).
fn security_group(description: &str, port: u64, source: (&str, Value), rule: &str) -> Value {
    let mut ingress = json!({
        "IpProtocol": "tcp",
        "FromPort": port,
        "ToPort": port,
        "Description": rule,
    });
    if let Some(object) = ingress.as_object_mut() {
        object.insert(source.0.to_string(), source.1);
    }
    json!({
        "Type": "AWS::EC2::SecurityGroup",
        "Properties": {
            "GroupDescription": description,
            "VpcId": {"Ref": "VpcId"},
            "SecurityGroupIngress": [ingress],
        },
    })
}

/// The ingress rule that lets `source`'s tasks use the service network.
fn to_service_network(source: &str, who: &str) -> Value {
    json!({
        "Type": "AWS::EC2::SecurityGroupIngress",
        "Properties": {
            "GroupId": {"Ref": "ServiceNetworkSecurityGroup"},
            "IpProtocol": "tcp",
            "FromPort": 443,
            "ToPort": 443,
            "SourceSecurityGroupId": {"Ref": source},
            "Description": format!("{who} to the Lattice services (HTTPS)"),
        },
    })
}

/// One service: its Lattice service, listener, target group, network
/// association and auth policy; its security group; its task and ECS
/// service; its DNS record.
pub fn service(g: &mut Graph, service: &Service, definition: Value, auth_policy: Value) -> Result<(), String> {
    let part = Part::Service(service.name.clone());
    let owner = format!("service `{}`", service.name);
    let id = |what: &str| service_id(service, what);
    g.parameter(
        &id("Image"),
        &owner,
        string_parameter(
            &format!("The application image of service {}", service.name),
            IMAGE_PATTERN,
            "an image reference, repository-url/image:tag or ...@sha256:digest",
        ),
    )?;
    if let Some(upstream) = &service.upstream {
        g.parameter(
            &id("CertificateArn"),
            &owner,
            string_parameter(
                &format!(
                    "The ACM certificate of service {}'s custom domain name, {}",
                    service.name, upstream.host
                ),
                CERTIFICATE_PATTERN,
                "an ACM certificate ARN",
            ),
        )?;
    }
    let task = task_definition(definition);
    let port = container_port(&task, "app")?;
    let properties = match &service.upstream {
        Some(upstream) => json!({
            "Name": service.name,
            "AuthType": "AWS_IAM",
            "CustomDomainName": upstream.host,
            "CertificateArn": {"Ref": id("CertificateArn")},
        }),
        None => json!({"Name": service.name, "AuthType": "AWS_IAM"}),
    };
    g.resource(
        &id("Service"),
        &owner,
        &part,
        json!({"Type": "AWS::VpcLattice::Service", "Properties": properties}),
    )?;
    g.resource(
        &id("TargetGroup"),
        &owner,
        &part,
        json!({
            "Type": "AWS::VpcLattice::TargetGroup",
            "Properties": {
                "Name": service.name,
                "Type": "IP",
                "Config": {
                    "Port": port,
                    "Protocol": "HTTP",
                    "VpcIdentifier": {"Ref": "VpcId"},
                    "HealthCheck": {
                        "Enabled": true,
                        "Protocol": "HTTP",
                        "Path": service.health_check_path,
                    },
                },
            },
        }),
    )?;
    g.resource(
        &id("Listener"),
        &owner,
        &part,
        json!({
            "Type": "AWS::VpcLattice::Listener",
            "Properties": {
                "ServiceIdentifier": {"Fn::GetAtt": [id("Service"), "Arn"]},
                "Name": "https",
                "Protocol": "HTTPS",
                "Port": 443,
                "DefaultAction": {
                    "Forward": {"TargetGroups": [{"TargetGroupIdentifier": {"Fn::GetAtt": [id("TargetGroup"), "Arn"]}, "Weight": 100}]},
                },
            },
        }),
    )?;
    g.resource(
        &id("ServiceNetworkAssociation"),
        &owner,
        &part,
        json!({
            "Type": "AWS::VpcLattice::ServiceNetworkServiceAssociation",
            "Properties": {
                "ServiceNetworkIdentifier": {"Fn::GetAtt": ["ServiceNetwork", "Arn"]},
                "ServiceIdentifier": {"Fn::GetAtt": [id("Service"), "Arn"]},
            },
        }),
    )?;
    g.resource(
        &id("AuthPolicy"),
        &owner,
        &part,
        json!({
            "Type": "AWS::VpcLattice::AuthPolicy",
            "Properties": {
                "ResourceIdentifier": {"Fn::GetAtt": [id("Service"), "Arn"]},
                "Policy": auth_policy,
            },
        }),
    )?;
    g.resource(
        &id("SecurityGroup"),
        &owner,
        &part,
        security_group(
            &format!("The tasks of service {}: from VPC Lattice only", service.name),
            port,
            ("SourcePrefixListId", json!({"Ref": "LatticePrefixListId"})),
            "VPC Lattice to the app",
        ),
    )?;
    if !service.calls.is_empty() {
        g.resource(
            &id("ToServiceNetwork"),
            &owner,
            &part,
            to_service_network(&id("SecurityGroup"), &format!("The sidecar of {}", service.name)),
        )?;
    }
    g.resource(&id("TaskDefinition"), &owner, &part, task)?;
    let ecs = ecs_service(
        &id("TaskDefinition"),
        &id("SecurityGroup"),
        &id("Listener"),
        json!({"VpcLatticeConfigurations": [{
            "RoleArn": {"Fn::GetAtt": ["EcsInfrastructureRole", "Arn"]},
            "TargetGroupArn": {"Fn::GetAtt": [id("TargetGroup"), "Arn"]},
            "PortName": "app",
        }]}),
    );
    g.resource(&id("EcsService"), &owner, &part, ecs)?;
    let dns_name = json!({"Fn::GetAtt": [id("Service"), "DnsEntry.DomainName"]});
    if let Some(upstream) = &service.upstream {
        g.resource(
            &id("DnsRecord"),
            &owner,
            &part,
            json!({
                "Type": "AWS::Route53::RecordSet",
                "Condition": "HasHostedZone",
                "Properties": {
                    "HostedZoneId": {"Ref": "HostedZoneId"},
                    "Name": upstream.host,
                    "Type": "CNAME",
                    "TTL": "300",
                    "ResourceRecords": [dns_name.clone()],
                },
            }),
        )?;
        g.output(
            &id("Url"),
            &owner,
            &part,
            json!({
                "Description": format!("Service {} at its custom domain name (a CNAME of its Lattice DNS name)", service.name),
                "Value": format!("https://{}", upstream.host),
            }),
        )?;
    }
    g.output(
        &id("DnsName"),
        &owner,
        &part,
        json!({"Description": format!("The Lattice DNS name of service {}", service.name), "Value": dns_name}),
    )?;
    Ok(())
}

/// The frontend: its task and ECS service behind an internal Application
/// Load Balancer that takes HTTPS from the clients' CIDR only.
pub fn frontend(g: &mut Graph, system: &System, definition: Value) -> Result<(), String> {
    let part = Part::Frontend;
    let owner = "the frontend";
    let task = task_definition(definition);
    let port = container_port(&task, "http")?;
    // A frontend with TLS on its listener (the spec's `tls`) is reached
    // over HTTPS from its load balancer too.
    let protocol = if system.frontend.tls.is_some() { "HTTPS" } else { "HTTP" };
    g.resource(
        "LoadBalancerSecurityGroup",
        owner,
        &part,
        security_group(
            "The frontend load balancer: HTTPS from the clients only",
            443,
            ("CidrIp", json!({"Ref": "ClientCidr"})),
            "Clients to the load balancer (HTTPS)",
        ),
    )?;
    g.resource(
        "FrontendSecurityGroup",
        owner,
        &part,
        security_group(
            "The frontend tasks: from their load balancer only",
            port,
            ("SourceSecurityGroupId", json!({"Ref": "LoadBalancerSecurityGroup"})),
            "The load balancer to the frontend",
        ),
    )?;
    g.resource(
        "FrontendToServiceNetwork",
        owner,
        &part,
        to_service_network("FrontendSecurityGroup", "The frontend"),
    )?;
    g.resource(
        "LoadBalancer",
        owner,
        &part,
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::LoadBalancer",
            "Metadata": checkov_skip(&[(
                "CKV_AWS_91",
                "access logs need an S3 bucket of your organisation; the frontend writes one JSON line per request to the log group",
            )]),
            "Properties": {
                "Type": "application",
                "Scheme": "internal",
                "Subnets": {"Ref": "SubnetIds"},
                "SecurityGroups": [{"Ref": "LoadBalancerSecurityGroup"}],
                "LoadBalancerAttributes": [
                    {"Key": "routing.http.drop_invalid_header_fields.enabled", "Value": "true"},
                    {"Key": "routing.http.desync_mitigation_mode", "Value": "strictest"},
                ],
            },
        }),
    )?;
    g.comments.insert(
        "LoadBalancer".into(),
        vec![
            "checkov CKV_AWS_91 (access logs in S3) is skipped: they need a bucket of your organisation, and the"
                .into(),
            "frontend already writes one JSON line per request (with the verified subject) to the log group.".into(),
        ],
    );
    g.resource(
        "LoadBalancerTargetGroup",
        owner,
        &part,
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::TargetGroup",
            "Properties": {
                "TargetType": "ip",
                "Protocol": protocol,
                "HealthCheckProtocol": protocol,
                "Port": port,
                "VpcId": {"Ref": "VpcId"},
                "HealthCheckPath": "/health",
                "Matcher": {"HttpCode": "200"},
                "TargetGroupAttributes": [
                    // The frontend drains for ENVOY_DRAIN_SECONDS (20) after
                    // SIGTERM: the load balancer stops sending first.
                    {"Key": "deregistration_delay.timeout_seconds", "Value": "30"},
                ],
            },
        }),
    )?;
    g.resource(
        "LoadBalancerListener",
        owner,
        &part,
        json!({
            "Type": "AWS::ElasticLoadBalancingV2::Listener",
            "Properties": {
                "LoadBalancerArn": {"Ref": "LoadBalancer"},
                "Protocol": "HTTPS",
                "Port": 443,
                "SslPolicy": "ELBSecurityPolicy-TLS13-1-2-2021-06",
                "Certificates": [{"CertificateArn": {"Ref": "LoadBalancerCertificateArn"}}],
                "DefaultActions": [{"Type": "forward", "TargetGroupArn": {"Ref": "LoadBalancerTargetGroup"}}],
            },
        }),
    )?;
    g.resource("FrontendTaskDefinition", owner, &part, task)?;
    let ecs = ecs_service(
        "FrontendTaskDefinition",
        "FrontendSecurityGroup",
        "LoadBalancerListener",
        json!({
            "LoadBalancers": [{
                "ContainerName": "frontend",
                "ContainerPort": port,
                "TargetGroupArn": {"Ref": "LoadBalancerTargetGroup"},
            }],
            "HealthCheckGracePeriodSeconds": 60,
        }),
    );
    g.resource("FrontendEcsService", owner, &part, ecs)?;
    let url = match &system.domain {
        Some(domain) => {
            g.resource(
                "FrontendDnsRecord",
                owner,
                &part,
                json!({
                    "Type": "AWS::Route53::RecordSet",
                    "Condition": "HasHostedZone",
                    "Properties": {
                        "HostedZoneId": {"Ref": "HostedZoneId"},
                        "Name": domain,
                        "Type": "A",
                        "AliasTarget": {
                            "DNSName": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]},
                            "HostedZoneId": {"Fn::GetAtt": ["LoadBalancer", "CanonicalHostedZoneID"]},
                        },
                    },
                }),
            )?;
            json!(format!("https://{domain}"))
        }
        None => json!({"Fn::Sub": "https://${LoadBalancer.DNSName}"}),
    };
    g.output(
        "FrontendUrl",
        owner,
        &part,
        json!({"Description": "Where clients send their requests (with a bearer token)", "Value": url}),
    )?;
    g.output(
        "LoadBalancerDnsName",
        owner,
        &part,
        json!({"Description": "The frontend load balancer's own DNS name", "Value": {"Fn::GetAtt": ["LoadBalancer", "DNSName"]}}),
    )?;
    Ok(())
}

/// The output of a task role's ARN.
pub fn role_output(g: &mut Graph, role: &Role) -> Result<(), String> {
    g.output(
        &format!("{}RoleArn", word(&role.name)),
        &format!("role `{}`", role.name),
        &Part::Network,
        json!({"Description": format!("The ARN of task role {}", role.name), "Value": {"Fn::GetAtt": [role_id(role), "Arn"]}}),
    )
}
