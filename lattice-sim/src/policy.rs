//! IAM policy documents as VPC Lattice evaluates them: parsed and checked
//! once (a malformed policy is an error, never half-applied), then
//! evaluated per request against a [`Context`]. Two kinds share the parser
//! and the evaluation, and differ only in the `Principal` element (see
//! [`PolicyKind`]): auth policies (resource-based, on the service network
//! and the services) and the callers' IAM identity-based policies.
//!
//! Semantics follow the IAM policy reference: a request is allowed when some
//! statement allows it and none denies it; an explicit deny wins; no
//! matching statement is an implicit deny. Condition operators, `IfExists`,
//! `Null`, `ForAnyValue:` / `ForAllValues:` and the rule that a negated
//! operator is true when its key is missing are implemented as documented.

use serde_json::Value;
use std::collections::BTreeMap;
use std::fmt;
use std::sync::Arc;

pub const INVOKE: &str = "vpc-lattice-svcs:Invoke";

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Effect {
    Allow,
    Deny,
}

/// Which kind of IAM policy a document is.
///
/// They differ in the `Principal` element. An auth policy is resource-based:
/// "You must specify a principal in a resource-based policy."
/// (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html>).
/// An identity-based policy is about the user or role it is attached to:
/// "You can't specify the principal in an identity-based policy because it
/// applies to the user or role to which it is attached."
/// (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/security_iam_service-with-iam.html>).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum PolicyKind {
    /// A VPC Lattice auth policy, attached to a service network or service.
    Resource,
    /// An IAM identity-based policy, attached to the caller's role or user.
    Identity,
}

/// Who a statement is about.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Principals {
    /// A resource policy's statement without Principal or NotPrincipal: it
    /// names nobody, so it never applies (accepted, as it always was here).
    Absent,
    /// An identity policy's statement: about the identity the policy is
    /// attached to, whoever that is.
    AttachedIdentity,
    Is(Vec<String>),
    IsNot(Vec<String>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Patterns {
    Is(Vec<String>),
    IsNot(Vec<String>),
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Op {
    StringEquals,
    StringNotEquals,
    StringEqualsIgnoreCase,
    StringNotEqualsIgnoreCase,
    StringLike,
    StringNotLike,
    NumericEquals,
    NumericNotEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    ArnEquals,
    ArnLike,
    ArnNotEquals,
    ArnNotLike,
    Null,
}

impl Op {
    fn parse(name: &str) -> Option<Op> {
        Some(match name {
            "StringEquals" => Op::StringEquals,
            "StringNotEquals" => Op::StringNotEquals,
            "StringEqualsIgnoreCase" => Op::StringEqualsIgnoreCase,
            "StringNotEqualsIgnoreCase" => Op::StringNotEqualsIgnoreCase,
            "StringLike" => Op::StringLike,
            "StringNotLike" => Op::StringNotLike,
            "NumericEquals" => Op::NumericEquals,
            "NumericNotEquals" => Op::NumericNotEquals,
            "NumericLessThan" => Op::NumericLessThan,
            "NumericLessThanEquals" => Op::NumericLessThanEquals,
            "NumericGreaterThan" => Op::NumericGreaterThan,
            "NumericGreaterThanEquals" => Op::NumericGreaterThanEquals,
            "Bool" => Op::Bool,
            "ArnEquals" => Op::ArnEquals,
            "ArnLike" => Op::ArnLike,
            "ArnNotEquals" => Op::ArnNotEquals,
            "ArnNotLike" => Op::ArnNotLike,
            "Null" => Op::Null,
            _ => return None,
        })
    }

    /// Negated operators are true when none of the values match, and when
    /// the key is missing.
    fn is_negated(self) -> bool {
        matches!(
            self,
            Op::StringNotEquals
                | Op::StringNotEqualsIgnoreCase
                | Op::StringNotLike
                | Op::NumericNotEquals
                | Op::ArnNotEquals
                | Op::ArnNotLike
        )
    }

    /// Does one request value match one policy value (for a negated
    /// operator: the positive form)?
    fn matches(self, actual: &str, expected: &str) -> bool {
        match self {
            Op::StringEquals | Op::StringNotEquals => actual == expected,
            Op::StringEqualsIgnoreCase | Op::StringNotEqualsIgnoreCase => actual.eq_ignore_ascii_case(expected),
            Op::StringLike | Op::StringNotLike => wildcard(expected, actual, false),
            Op::NumericEquals | Op::NumericNotEquals => numeric(actual, expected, |a, b| a == b),
            Op::NumericLessThan => numeric(actual, expected, |a, b| a < b),
            Op::NumericLessThanEquals => numeric(actual, expected, |a, b| a <= b),
            Op::NumericGreaterThan => numeric(actual, expected, |a, b| a > b),
            Op::NumericGreaterThanEquals => numeric(actual, expected, |a, b| a >= b),
            Op::Bool => actual.eq_ignore_ascii_case(expected),
            Op::ArnEquals | Op::ArnNotEquals | Op::ArnLike | Op::ArnNotLike => arn_like(expected, actual),
            Op::Null => false,
        }
    }
}

fn numeric(actual: &str, expected: &str, cmp: impl Fn(f64, f64) -> bool) -> bool {
    match (actual.trim().parse::<f64>(), expected.trim().parse::<f64>()) {
        (Ok(a), Ok(b)) => cmp(a, b),
        _ => false,
    }
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum SetQualifier {
    None,
    ForAnyValue,
    ForAllValues,
}

#[derive(Debug, Clone, PartialEq, Eq)]
struct Condition {
    op: Op,
    qualifier: SetQualifier,
    if_exists: bool,
    /// Condition key, lower-cased (IAM keys are case-insensitive).
    key: String,
    values: Vec<String>,
}

/// One statement of a policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Statement {
    pub sid: Option<String>,
    pub effect: Effect,
    principals: Principals,
    actions: Patterns,
    resources: Patterns,
    conditions: Vec<Condition>,
}

/// A parsed, checked policy document.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Policy {
    pub statements: Vec<Statement>,
}

/// A malformed policy: where and why.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct PolicyError(pub String);

impl fmt::Display for PolicyError {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.0)
    }
}

impl std::error::Error for PolicyError {}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    let scalar = |v: &Value| -> Result<String, PolicyError> {
        match v {
            Value::String(s) => Ok(s.clone()),
            Value::Bool(b) => Ok(b.to_string()),
            Value::Number(n) => Ok(n.to_string()),
            other => Err(PolicyError(format!(
                "{what}: expected a string or a list of strings, got {other}"
            ))),
        }
    };
    match value {
        Value::Array(items) if items.is_empty() => Err(PolicyError(format!("{what}: must not be an empty list"))),
        Value::Array(items) => items.iter().map(scalar).collect(),
        other => Ok(vec![scalar(other)?]),
    }
}

fn principals(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(vec!["*".into()]),
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, ids) in map {
                match kind.as_str() {
                    "AWS" => out.extend(strings(ids, &format!("{what}.AWS"))?),
                    // Service and federated principals never sign Lattice requests here.
                    "Service" | "Federated" | "CanonicalUser" => {
                        strings(ids, &format!("{what}.{kind}"))?;
                    }
                    other => return Err(PolicyError(format!("{what}: unknown principal type `{other}`"))),
                }
            }
            Ok(out)
        }
        other => Err(PolicyError(format!(
            "{what}: expected \"*\" or {{\"AWS\": ...}}, got {other}"
        ))),
    }
}

fn is_condition_key_valid(key: &str) -> bool {
    key.split_once(':')
        .is_some_and(|(prefix, name)| !prefix.is_empty() && !name.is_empty())
}

impl Policy {
    /// Parses a policy document (JSON text) of the given kind.
    pub fn parse(text: &str, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let value: Value = serde_json::from_str(text).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        Policy::from_value(&value, kind)
    }

    /// Checks and converts a policy document of the given kind.
    pub fn from_value(doc: &Value, kind: PolicyKind) -> Result<Policy, PolicyError> {
        let Value::Object(doc) = doc else {
            return Err(PolicyError("a policy must be a JSON object".into()));
        };
        for key in doc.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError(format!("unknown policy element `{key}`")));
            }
        }
        match doc.get("Version").and_then(Value::as_str) {
            Some("2012-10-17") | Some("2008-10-17") | None => {}
            Some(other) => return Err(PolicyError(format!("Version: `{other}` is not 2012-10-17"))),
        }
        let statements = match doc.get("Statement") {
            Some(Value::Array(list)) => list.iter().collect::<Vec<_>>(),
            Some(single @ Value::Object(_)) => vec![single],
            _ => {
                return Err(PolicyError(
                    "Statement: required, a statement or a list of statements".into(),
                ))
            }
        };
        if statements.is_empty() {
            return Err(PolicyError("Statement: must not be empty".into()));
        }
        let parsed = statements
            .iter()
            .enumerate()
            .map(|(i, s)| Statement::from_value(s, i, kind))
            .collect::<Result<Vec<_>, _>>()?;
        Ok(Policy { statements: parsed })
    }
}

impl Statement {
    fn from_value(value: &Value, index: usize, kind: PolicyKind) -> Result<Statement, PolicyError> {
        let Value::Object(map) = value else {
            return Err(PolicyError(format!("Statement[{index}]: must be an object")));
        };
        let at = |field: &str| format!("Statement[{index}].{field}");
        for key in map.keys() {
            if !matches!(
                key.as_str(),
                "Sid"
                    | "Effect"
                    | "Principal"
                    | "NotPrincipal"
                    | "Action"
                    | "NotAction"
                    | "Resource"
                    | "NotResource"
                    | "Condition"
            ) {
                return Err(PolicyError(format!("Statement[{index}]: unknown element `{key}`")));
            }
        }
        let sid = match map.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(PolicyError(at("Sid") + ": must be a string")),
        };
        let effect = match map.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(PolicyError(at("Effect") + ": must be \"Allow\" or \"Deny\"")),
        };
        // IAM does not accept a Principal in an identity policy (see
        // `PolicyKind`); neither does the simulator, rather than ignore it.
        let not_in_identity_policy = |element: &str| {
            PolicyError(format!(
                "Statement[{index}]: an identity-based policy cannot have {element} (it applies to the user or role it is attached to)"
            ))
        };
        let principals = match (kind, map.get("Principal"), map.get("NotPrincipal")) {
            (_, Some(_), Some(_)) => {
                return Err(PolicyError(format!(
                    "Statement[{index}]: has both Principal and NotPrincipal"
                )))
            }
            (PolicyKind::Identity, None, None) => Principals::AttachedIdentity,
            (PolicyKind::Identity, Some(_), None) => return Err(not_in_identity_policy("Principal")),
            (PolicyKind::Identity, None, Some(_)) => return Err(not_in_identity_policy("NotPrincipal")),
            (PolicyKind::Resource, Some(p), None) => Principals::Is(principals(p, &at("Principal"))?),
            (PolicyKind::Resource, None, Some(p)) => Principals::IsNot(principals(p, &at("NotPrincipal"))?),
            (PolicyKind::Resource, None, None) => Principals::Absent,
        };
        let patterns = |yes: &str, no: &str| -> Result<Patterns, PolicyError> {
            match (map.get(yes), map.get(no)) {
                (Some(v), None) => Ok(Patterns::Is(strings(v, &at(yes))?)),
                (None, Some(v)) => Ok(Patterns::IsNot(strings(v, &at(no))?)),
                (None, None) => Err(PolicyError(format!("Statement[{index}]: needs {yes} or {no}"))),
                (Some(_), Some(_)) => Err(PolicyError(format!("Statement[{index}]: has both {yes} and {no}"))),
            }
        };
        let actions = patterns("Action", "NotAction")?;
        let resources = patterns("Resource", "NotResource")?;
        let mut conditions = Vec::new();
        match map.get("Condition") {
            None => {}
            Some(Value::Object(ops)) => {
                for (operator, keys) in ops {
                    let (qualifier, rest) = if let Some(r) = operator.strip_prefix("ForAnyValue:") {
                        (SetQualifier::ForAnyValue, r)
                    } else if let Some(r) = operator.strip_prefix("ForAllValues:") {
                        (SetQualifier::ForAllValues, r)
                    } else {
                        (SetQualifier::None, operator.as_str())
                    };
                    let (if_exists, base) = match rest.strip_suffix("IfExists") {
                        Some(base) => (true, base),
                        None => (false, rest),
                    };
                    let op = Op::parse(base).ok_or_else(|| {
                        PolicyError(format!(
                            "{}: unsupported condition operator `{operator}`",
                            at("Condition")
                        ))
                    })?;
                    if op == Op::Null && (if_exists || qualifier != SetQualifier::None) {
                        return Err(PolicyError(format!(
                            "{}: `{operator}` is not a valid operator",
                            at("Condition")
                        )));
                    }
                    let Value::Object(keys) = keys else {
                        return Err(PolicyError(format!(
                            "{}.{operator}: must map condition keys to values",
                            at("Condition")
                        )));
                    };
                    for (key, values) in keys {
                        let what = format!("{}.{operator}.{key}", at("Condition"));
                        if !is_condition_key_valid(key) {
                            return Err(PolicyError(format!(
                                "{what}: `{key}` is not a condition key (service:name)"
                            )));
                        }
                        let values = strings(values, &what)?;
                        if matches!(op, Op::Bool | Op::Null)
                            && values
                                .iter()
                                .any(|v| !v.eq_ignore_ascii_case("true") && !v.eq_ignore_ascii_case("false"))
                        {
                            return Err(PolicyError(format!("{what}: {operator} takes \"true\" or \"false\"")));
                        }
                        if matches!(
                            op,
                            Op::NumericEquals
                                | Op::NumericNotEquals
                                | Op::NumericLessThan
                                | Op::NumericLessThanEquals
                                | Op::NumericGreaterThan
                                | Op::NumericGreaterThanEquals
                        ) && values.iter().any(|v| v.trim().parse::<f64>().is_err())
                        {
                            return Err(PolicyError(format!("{what}: {operator} takes numbers")));
                        }
                        conditions.push(Condition {
                            op,
                            qualifier,
                            if_exists,
                            key: key.to_ascii_lowercase(),
                            values,
                        });
                    }
                }
            }
            Some(_) => return Err(PolicyError(at("Condition") + ": must be an object")),
        }
        Ok(Statement {
            sid,
            effect,
            principals,
            actions,
            resources,
            conditions,
        })
    }
}

/// `*` matches any run of characters, `?` any one.
pub fn wildcard(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let p: Vec<char> = pattern.chars().collect();
    let t: Vec<char> = text.chars().collect();
    let eq = |a: char, b: char| {
        if ignore_case {
            a.eq_ignore_ascii_case(&b)
        } else {
            a == b
        }
    };
    // Iterative matcher with one backtrack point (linear in practice, no recursion).
    let (mut pi, mut ti) = (0usize, 0usize);
    let mut star: Option<(usize, usize)> = None;
    while ti < t.len() {
        match (p.get(pi), t.get(ti)) {
            (Some('*'), _) => {
                star = Some((pi, ti));
                pi += 1;
            }
            (Some(&pc), Some(&tc)) if pc == '?' || eq(pc, tc) => {
                pi += 1;
                ti += 1;
            }
            _ => match star {
                Some((sp, st)) => {
                    pi = sp + 1;
                    ti = st + 1;
                    star = Some((sp, st + 1));
                }
                None => return false,
            },
        }
    }
    p.get(pi..).is_some_and(|rest| rest.iter().all(|&c| c == '*'))
}

/// ARN matching: six colon-separated parts, each matched with wildcards.
fn arn_like(pattern: &str, arn: &str) -> bool {
    let p: Vec<&str> = pattern.splitn(6, ':').collect();
    let a: Vec<&str> = arn.splitn(6, ':').collect();
    if pattern == "*" {
        return true;
    }
    p.len() == 6 && a.len() == 6 && p.iter().zip(&a).all(|(p, a)| wildcard(p, a, false))
}

/// The signed caller, as Lattice (and IAM behind it) knows it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Caller {
    /// `arn:aws:sts::<acct>:assumed-role/<role>/<session>` (or an IAM user ARN).
    pub arn: String,
    pub org_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The IAM identity-based policy of the caller's role or user (an
    /// [`PolicyKind::Identity`] policy): when present, the caller also needs
    /// an Allow there. `None`: identity policies are not modelled for this
    /// caller, and only the auth policies decide.
    pub identity_policy: Option<Arc<Policy>>,
}

impl Caller {
    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or("")
    }

    /// `AssumedRole` or `User`, as `aws:PrincipalType` reports it.
    pub fn principal_type(&self) -> &'static str {
        if self.arn.contains(":assumed-role/") {
            "AssumedRole"
        } else {
            "User"
        }
    }

    /// The role ARN behind an assumed-role session (role paths are not in
    /// the session ARN, so a role pattern matches on account and name).
    fn role_name(&self) -> Option<&str> {
        let resource = self.arn.split(':').nth(5)?;
        let rest = resource.strip_prefix("assumed-role/")?;
        rest.split('/').next()
    }

    /// Does the policy principal `pattern` name this caller?
    fn is_named_by(&self, pattern: &str) -> bool {
        if pattern == "*" {
            return true;
        }
        let account = self.account();
        if pattern == account || pattern == format!("arn:aws:iam::{account}:root") {
            return true;
        }
        if pattern == self.arn {
            return true;
        }
        // arn:aws:iam::<acct>:role/<path>/<name> names every session of that role.
        let parts: Vec<&str> = pattern.splitn(6, ':').collect();
        if let [_, _, "iam", "", acct, resource] = parts.as_slice() {
            if let Some(role_path) = resource.strip_prefix("role/") {
                let name = role_path.rsplit('/').next().unwrap_or(role_path);
                return *acct == account && self.role_name() == Some(name);
            }
        }
        false
    }
}

/// Everything a policy can be evaluated against.
#[derive(Debug, Clone)]
pub struct Context {
    /// None for an unsigned (anonymous) request.
    pub caller: Option<Caller>,
    pub action: String,
    pub resource: String,
    /// Condition keys (lower-cased) to their values.
    pub keys: BTreeMap<String, Vec<String>>,
}

impl Context {
    /// Adds the `aws:Principal*` keys for the caller.
    pub fn with_caller_keys(mut self) -> Self {
        match &self.caller {
            Some(c) => {
                self.keys
                    .insert("aws:principaltype".into(), vec![c.principal_type().into()]);
                self.keys.insert("aws:principalarn".into(), vec![c.arn.clone()]);
                self.keys
                    .insert("aws:principalaccount".into(), vec![c.account().into()]);
                if let Some(org) = &c.org_id {
                    self.keys.insert("aws:principalorgid".into(), vec![org.clone()]);
                }
                for (k, v) in &c.tags {
                    self.keys
                        .insert(format!("aws:principaltag/{}", k.to_ascii_lowercase()), vec![v.clone()]);
                }
            }
            None => {
                self.keys.insert("aws:principaltype".into(), vec!["Anonymous".into()]);
            }
        }
        self
    }
}

impl Condition {
    fn holds(&self, ctx: &Context) -> bool {
        let actual = ctx.keys.get(&self.key).filter(|v| !v.is_empty());
        if self.op == Op::Null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return want_absent == actual.is_none();
        }
        let Some(actual) = actual else {
            return match self.qualifier {
                SetQualifier::ForAllValues => true,
                SetQualifier::ForAnyValue => self.if_exists,
                SetQualifier::None => self.if_exists || self.op.is_negated(),
            };
        };
        // For one request value: does it satisfy the operator?
        let one = |value: &str| {
            let any = self.values.iter().any(|expected| self.op.matches(value, expected));
            if self.op.is_negated() {
                !any
            } else {
                any
            }
        };
        match self.qualifier {
            SetQualifier::ForAllValues => actual.iter().all(|v| one(v)),
            SetQualifier::ForAnyValue => actual.iter().any(|v| one(v)),
            // A single-valued key: every value must satisfy it.
            SetQualifier::None => actual.iter().all(|v| one(v)),
        }
    }
}

impl Statement {
    fn applies_to(&self, ctx: &Context) -> bool {
        let principal = match (&self.principals, &ctx.caller) {
            (Principals::Absent, _) => false,
            // Anonymous callers have no identity, so no identity policy.
            (Principals::AttachedIdentity, caller) => caller.is_some(),
            (Principals::Is(list), None) => list.iter().any(|p| p == "*"),
            (Principals::Is(list), Some(c)) => list.iter().any(|p| c.is_named_by(p)),
            (Principals::IsNot(list), None) => !list.iter().any(|p| p == "*"),
            (Principals::IsNot(list), Some(c)) => !list.iter().any(|p| c.is_named_by(p)),
        };
        let action = match &self.actions {
            Patterns::Is(list) => list.iter().any(|p| wildcard(p, &ctx.action, true)),
            Patterns::IsNot(list) => !list.iter().any(|p| wildcard(p, &ctx.action, true)),
        };
        let resource = match &self.resources {
            Patterns::Is(list) => list.iter().any(|p| wildcard(p, &ctx.resource, false)),
            Patterns::IsNot(list) => !list.iter().any(|p| wildcard(p, &ctx.resource, false)),
        };
        principal && action && resource && self.conditions.iter().all(|c| c.holds(ctx))
    }

    /// `Sid` or `#<index>`, for logs.
    pub fn label(&self, index: usize) -> String {
        self.sid.clone().unwrap_or_else(|| format!("#{index}"))
    }
}

/// The outcome of one policy.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Decision {
    /// Allowed by the statement (its label).
    Allow(String),
    /// Denied by the statement (its label).
    ExplicitDeny(String),
    /// No statement applies.
    ImplicitDeny,
}

impl Policy {
    pub fn evaluate(&self, ctx: &Context) -> Decision {
        let mut allow = None;
        for (i, statement) in self.statements.iter().enumerate() {
            if statement.applies_to(ctx) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny(statement.label(i)),
                    Effect::Allow => {
                        allow.get_or_insert_with(|| statement.label(i));
                    }
                }
            }
        }
        allow.map_or(Decision::ImplicitDeny, Decision::Allow)
    }
}
