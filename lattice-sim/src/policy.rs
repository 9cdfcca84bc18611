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

/// One entry of a `Principal` or `NotPrincipal` element's `AWS` list.
///
/// IAM compares principals by their exact ARN: "You cannot use a wildcard
/// to match part of a principal name or ARN"
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_principal.html>),
/// so a pattern such as `arn:aws:iam::111122223333:role/*` is refused at
/// start rather than silently never matching.
#[derive(Debug, Clone, PartialEq, Eq)]
enum PrincipalId {
    /// `"*"` or `{"AWS": "*"}`: everyone, anonymous callers included.
    Anyone,
    /// An account id, or `arn:aws:iam::<account>:root`: the account.
    Account(String),
    /// A role, user or assumed-role session ARN, compared exactly. A role's
    /// ARN names every session of the role (it is their `aws:PrincipalArn`).
    Arn(String),
    /// A service, federated or canonical-user principal: never a Lattice caller here.
    NotAnIamCaller,
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
    Is(Vec<PrincipalId>),
    IsNot(Vec<PrincipalId>),
}

#[derive(Debug, Clone, PartialEq, Eq)]
enum Patterns {
    Is(Vec<String>),
    IsNot(Vec<String>),
}

/// How a condition operator compares one request value with one policy
/// value. Negated operators (`StringNotEquals`, ...) share their positive
/// form's comparison; [`OPERATORS`] says which are negated.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Compare {
    String,
    StringIgnoreCase,
    StringLike,
    NumericEquals,
    NumericLessThan,
    NumericLessThanEquals,
    NumericGreaterThan,
    NumericGreaterThanEquals,
    Bool,
    /// `ArnEquals` and `ArnLike` behave the same: each of the six
    /// colon-separated parts is matched with wildcards.
    Arn,
    /// `Null`: compares the key's presence, not its value.
    Null,
}

/// IAM's condition operators (without `IfExists` and the set qualifiers):
/// name, comparison, negated.
/// <https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_condition_operators.html>
const OPERATORS: [(&str, Compare, bool); 18] = [
    ("StringEquals", Compare::String, false),
    ("StringNotEquals", Compare::String, true),
    ("StringEqualsIgnoreCase", Compare::StringIgnoreCase, false),
    ("StringNotEqualsIgnoreCase", Compare::StringIgnoreCase, true),
    ("StringLike", Compare::StringLike, false),
    ("StringNotLike", Compare::StringLike, true),
    ("NumericEquals", Compare::NumericEquals, false),
    ("NumericNotEquals", Compare::NumericEquals, true),
    ("NumericLessThan", Compare::NumericLessThan, false),
    ("NumericLessThanEquals", Compare::NumericLessThanEquals, false),
    ("NumericGreaterThan", Compare::NumericGreaterThan, false),
    ("NumericGreaterThanEquals", Compare::NumericGreaterThanEquals, false),
    ("Bool", Compare::Bool, false),
    ("ArnEquals", Compare::Arn, false),
    ("ArnLike", Compare::Arn, false),
    ("ArnNotEquals", Compare::Arn, true),
    ("ArnNotLike", Compare::Arn, true),
    ("Null", Compare::Null, false),
];

impl Compare {
    /// Does one request value match one policy value?
    fn matches(self, actual: &str, expected: &str) -> bool {
        match self {
            Compare::String => actual == expected,
            Compare::StringIgnoreCase => actual.eq_ignore_ascii_case(expected),
            Compare::StringLike => wildcard(expected, actual, false),
            Compare::NumericEquals => numeric(actual, expected, |a, b| a == b),
            Compare::NumericLessThan => numeric(actual, expected, |a, b| a < b),
            Compare::NumericLessThanEquals => numeric(actual, expected, |a, b| a <= b),
            Compare::NumericGreaterThan => numeric(actual, expected, |a, b| a > b),
            Compare::NumericGreaterThanEquals => numeric(actual, expected, |a, b| a >= b),
            Compare::Bool => actual.eq_ignore_ascii_case(expected),
            Compare::Arn => arn_like(expected, actual),
            Compare::Null => false,
        }
    }

    /// Why `value` cannot be a policy value for this comparison, if it cannot.
    fn refuses(self, value: &str) -> Option<&'static str> {
        match self {
            Compare::Bool | Compare::Null
                if !value.eq_ignore_ascii_case("true") && !value.eq_ignore_ascii_case("false") =>
            {
                Some("takes \"true\" or \"false\"")
            }
            Compare::NumericEquals
            | Compare::NumericLessThan
            | Compare::NumericLessThanEquals
            | Compare::NumericGreaterThan
            | Compare::NumericGreaterThanEquals
                if value.trim().parse::<f64>().is_err() =>
            {
                Some("takes numbers")
            }
            _ => None,
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
    compare: Compare,
    /// A `...Not...` operator: true when no policy value matches, and when
    /// the key is missing.
    negated: bool,
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

/// Is `account` a 12-digit AWS account id?
pub fn is_account_id(account: &str) -> bool {
    account.len() == 12 && account.bytes().all(|b| b.is_ascii_digit())
}

/// One `AWS` principal of a policy (see [`PrincipalId`]).
fn principal_id(text: &str, what: &str) -> Result<PrincipalId, PolicyError> {
    if text == "*" {
        return Ok(PrincipalId::Anyone);
    }
    if text.contains(['*', '?']) {
        return Err(PolicyError(format!(
            "{what}: `{text}`: a principal cannot be a pattern (IAM compares principal ARNs exactly; use a Condition on aws:PrincipalArn with ArnLike instead)"
        )));
    }
    if is_account_id(text) {
        return Ok(PrincipalId::Account(text.to_string()));
    }
    let parts: Vec<&str> = text.splitn(6, ':').collect();
    match parts.as_slice() {
        ["arn", partition, "iam", "", account, "root"] if !partition.is_empty() && is_account_id(account) => {
            Ok(PrincipalId::Account(account.to_string()))
        }
        ["arn", partition, "iam", "", account, resource]
            if !partition.is_empty()
                && is_account_id(account)
                && (resource.starts_with("role/") || resource.starts_with("user/")) =>
        {
            Ok(PrincipalId::Arn(text.to_string()))
        }
        ["arn", partition, "sts", "", account, resource]
            if !partition.is_empty()
                && is_account_id(account)
                && (resource.starts_with("assumed-role/") || resource.starts_with("federated-user/")) =>
        {
            Ok(PrincipalId::Arn(text.to_string()))
        }
        _ => Err(PolicyError(format!(
            "{what}: `{text}` is not \"*\", an account id or an IAM role, user, root or STS session ARN"
        ))),
    }
}

fn principals(value: &Value, what: &str) -> Result<Vec<PrincipalId>, PolicyError> {
    match value {
        Value::String(s) if s == "*" => Ok(vec![PrincipalId::Anyone]),
        Value::Object(map) => {
            let mut out = Vec::new();
            for (kind, ids) in map {
                let at = format!("{what}.{kind}");
                match kind.as_str() {
                    "AWS" => {
                        for id in strings(ids, &at)? {
                            out.push(principal_id(&id, &at)?);
                        }
                    }
                    // Service and federated principals never sign Lattice requests here.
                    "Service" | "Federated" | "CanonicalUser" => {
                        strings(ids, &at)?;
                        out.push(PrincipalId::NotAnIamCaller);
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

/// The condition keys lattice-sim puts in a request's context (lower case),
/// and the prefixes of those that name a header, query parameter or tag.
///
/// Lattice's own keys, from "Condition keys that can be used in auth
/// policies" (<https://docs.aws.amazon.com/vpc-lattice/latest/ug/auth-policies.html>):
/// `vpc-lattice-svcs:` `ServiceNetworkArn`, `ServiceArn`, `SourceVpc`,
/// `SourceVpcOwnerAccount`, `Port`, `RequestMethod`, `RequestPath`,
/// `RequestHeader/<header-name>`, `RequestQueryString/<key-name>`; and the
/// global keys about the signed principal
/// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html>).
/// A key outside this list would never be in the context, so a policy
/// naming one is refused at start (a typo such as `RequestHeaders/...`
/// would otherwise silently never match).
pub const CONDITION_KEYS: [&str; 11] = [
    "vpc-lattice-svcs:servicenetworkarn",
    "vpc-lattice-svcs:servicearn",
    "vpc-lattice-svcs:sourcevpc",
    "vpc-lattice-svcs:sourcevpcowneraccount",
    "vpc-lattice-svcs:port",
    "vpc-lattice-svcs:requestmethod",
    "vpc-lattice-svcs:requestpath",
    "aws:principalarn",
    "aws:principalaccount",
    "aws:principalorgid",
    "aws:principaltype",
];

/// See [`CONDITION_KEYS`]; each is followed by a name.
pub const CONDITION_KEY_PREFIXES: [&str; 3] = [
    "vpc-lattice-svcs:requestheader/",
    "vpc-lattice-svcs:requestquerystring/",
    "aws:principaltag/",
];

/// Why `key` (as written in a policy) cannot be used, if it cannot.
fn condition_key_problem(key: &str) -> Option<String> {
    let lower = key.to_ascii_lowercase();
    if CONDITION_KEYS.contains(&lower.as_str()) {
        return None;
    }
    if CONDITION_KEY_PREFIXES
        .iter()
        .any(|p| lower.strip_prefix(p).is_some_and(|name| !name.is_empty()))
    {
        return None;
    }
    Some(if lower.starts_with("aws:") {
        format!(
            "`{key}` is not in the request context lattice-sim builds (it models aws:PrincipalArn, aws:PrincipalAccount, aws:PrincipalOrgID, aws:PrincipalType and aws:PrincipalTag/<key>), so the condition could never match"
        )
    } else {
        format!(
            "`{key}` is not a condition key VPC Lattice defines (vpc-lattice-svcs:ServiceNetworkArn, ServiceArn, SourceVpc, SourceVpcOwnerAccount, Port, RequestMethod, RequestPath, RequestHeader/<header-name>, RequestQueryString/<key-name>; aws:Principal* keys)"
        )
    })
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
        let sid = match map.get("Sid") {
            None => None,
            Some(Value::String(s)) => Some(s.clone()),
            Some(_) => return Err(PolicyError(format!("Statement[{index}].Sid: must be a string"))),
        };
        // Errors name the statement by index and, when it has one, by Sid.
        let here = match &sid {
            Some(sid) => format!("Statement[{index}] (Sid \"{sid}\")"),
            None => format!("Statement[{index}]"),
        };
        let at = |field: &str| format!("{here}.{field}");
        let problem = |why: String| PolicyError(format!("{here}: {why}"));
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
                return Err(problem(format!("unknown element `{key}`")));
            }
        }
        let effect = match map.get("Effect").and_then(Value::as_str) {
            Some("Allow") => Effect::Allow,
            Some("Deny") => Effect::Deny,
            _ => return Err(PolicyError(at("Effect") + ": must be \"Allow\" or \"Deny\"")),
        };
        // IAM does not accept a Principal in an identity policy (see
        // `PolicyKind`); neither does the simulator, rather than ignore it.
        let not_in_identity_policy = |element: &str| {
            problem(format!(
                "an identity-based policy cannot have {element} (it applies to the user or role it is attached to)"
            ))
        };
        let principals = match (kind, map.get("Principal"), map.get("NotPrincipal")) {
            (_, Some(_), Some(_)) => return Err(problem("has both Principal and NotPrincipal".into())),
            (PolicyKind::Identity, None, None) => Principals::AttachedIdentity,
            (PolicyKind::Identity, Some(_), None) => return Err(not_in_identity_policy("Principal")),
            (PolicyKind::Identity, None, Some(_)) => return Err(not_in_identity_policy("NotPrincipal")),
            (PolicyKind::Resource, Some(p), None) => Principals::Is(principals(p, &at("Principal"))?),
            // "NotPrincipal must be used with "Effect":"Deny". Using it with
            // "Effect":"Allow" is not supported."
            // (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html>)
            (PolicyKind::Resource, None, Some(_)) if effect == Effect::Allow => {
                return Err(problem(
                    "NotPrincipal must be used with \"Effect\": \"Deny\"; IAM does not support it with \"Allow\" (use \"Principal\" with a Condition on aws:PrincipalArn)".into(),
                ))
            }
            (PolicyKind::Resource, None, Some(p)) => {
                let list = principals(p, &at("NotPrincipal"))?;
                if list.contains(&PrincipalId::Anyone) {
                    return Err(PolicyError(
                        at("NotPrincipal") + ": \"*\" would exempt everyone; NotPrincipal lists the principals a Deny spares",
                    ));
                }
                Principals::IsNot(list)
            }
            (PolicyKind::Resource, None, None) => Principals::Absent,
        };
        let patterns = |yes: &str, no: &str| -> Result<Patterns, PolicyError> {
            match (map.get(yes), map.get(no)) {
                (Some(v), None) => Ok(Patterns::Is(strings(v, &at(yes))?)),
                (None, Some(v)) => Ok(Patterns::IsNot(strings(v, &at(no))?)),
                (None, None) => Err(problem(format!("needs {yes} or {no}"))),
                (Some(_), Some(_)) => Err(problem(format!("has both {yes} and {no}"))),
            }
        };
        let actions = patterns("Action", "NotAction")?;
        let resources = patterns("Resource", "NotResource")?;
        let conditions = match map.get("Condition") {
            None => Vec::new(),
            Some(Value::Object(ops)) => conditions(ops, &at("Condition"))?,
            Some(_) => return Err(PolicyError(at("Condition") + ": must be an object")),
        };
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

/// A statement's `Condition` block (`what` names it in errors).
fn conditions(ops: &serde_json::Map<String, Value>, what: &str) -> Result<Vec<Condition>, PolicyError> {
    let mut conditions = Vec::new();
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
        let (compare, negated) = OPERATORS
            .iter()
            .find(|(name, _, _)| *name == base)
            .map(|(_, compare, negated)| (*compare, *negated))
            .ok_or_else(|| PolicyError(format!("{what}: unsupported condition operator `{operator}`")))?;
        if compare == Compare::Null && (if_exists || qualifier != SetQualifier::None) {
            return Err(PolicyError(format!("{what}: `{operator}` is not a valid operator")));
        }
        let Value::Object(keys) = keys else {
            return Err(PolicyError(format!(
                "{what}.{operator}: must map condition keys to values"
            )));
        };
        for (key, values) in keys {
            let what = format!("{what}.{operator}.{key}");
            if let Some(problem) = condition_key_problem(key) {
                return Err(PolicyError(format!("{what}: {problem}")));
            }
            let values = strings(values, &what)?;
            if let Some(why) = values.iter().find_map(|v| compare.refuses(v)) {
                return Err(PolicyError(format!("{what}: {operator} {why}")));
            }
            conditions.push(Condition {
                compare,
                negated,
                qualifier,
                if_exists,
                key: key.to_ascii_lowercase(),
                values,
            });
        }
    }
    Ok(conditions)
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
    /// Who signed: `arn:aws:sts::<acct>:assumed-role/<role>/<session>`, or
    /// an IAM user's ARN. Lattice reports it as `Principal=` in
    /// `x-amzn-lattice-identity`.
    pub arn: String,
    /// `aws:PrincipalArn`: "For IAM roles, the request context returns the
    /// ARN of the role, not the ARN of the user that assumed the role."
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_condition-keys.html#condition-keys-principalarn>).
    /// For a session, `arn:aws:iam::<acct>:role/<path/><role>`; for a user,
    /// the user's ARN.
    pub principal_arn: String,
    pub org_id: Option<String>,
    pub tags: BTreeMap<String, String>,
    /// The IAM identity-based policy of the caller's role or user (an
    /// [`PolicyKind::Identity`] policy): when present, the caller also needs
    /// an Allow there. `None`: identity policies are not modelled for this
    /// caller, and only the auth policies decide.
    pub identity_policy: Option<Arc<Policy>>,
}

impl Caller {
    /// A caller signing as `arn`: an assumed-role session
    /// (`arn:aws:sts::<acct>:assumed-role/<role>/<session>`) or an IAM user
    /// (`arn:aws:iam::<acct>:user/<path/><name>`). A session ARN does not
    /// carry its role's path, so `role_arn` gives the role's ARN when the
    /// role has one (default `arn:aws:iam::<acct>:role/<role>`); it must be
    /// the same account and role name.
    pub fn new(arn: &str, role_arn: Option<&str>) -> Result<Caller, String> {
        let parts: Vec<&str> = arn.splitn(6, ':').collect();
        let principal_arn = match parts.as_slice() {
            ["arn", partition, "sts", "", account, resource] if !partition.is_empty() && is_account_id(account) => {
                let session: Vec<&str> = resource.split('/').collect();
                let ["assumed-role", role, name] = session.as_slice() else {
                    return Err(format!(
                        "`{arn}` is not an assumed-role session ARN (arn:aws:sts::<account>:assumed-role/<role>/<session>)"
                    ));
                };
                if role.is_empty() || name.is_empty() {
                    return Err(format!("`{arn}`: the role and session names must not be empty"));
                }
                let derived = format!("arn:{partition}:iam::{account}:role/{role}");
                match role_arn {
                    None => derived,
                    Some(given) => {
                        let ok = given
                            .strip_prefix(&format!("arn:{partition}:iam::{account}:role/"))
                            .is_some_and(|path| path.rsplit('/').next() == Some(role));
                        if !ok {
                            return Err(format!(
                                "role_arn `{given}` is not role `{role}` of account {account} (arn:{partition}:iam::{account}:role/<path/>{role})"
                            ));
                        }
                        given.to_string()
                    }
                }
            }
            ["arn", partition, "iam", "", account, resource]
                if !partition.is_empty()
                    && is_account_id(account)
                    && resource.strip_prefix("user/").is_some_and(|name| !name.is_empty()) =>
            {
                if role_arn.is_some() {
                    return Err(format!("`{arn}` is an IAM user: role_arn applies to assumed-role sessions only"));
                }
                arn.to_string()
            }
            _ => {
                return Err(format!(
                    "`{arn}` is not an assumed-role session ARN (arn:aws:sts::<account>:assumed-role/<role>/<session>) or an IAM user ARN (arn:aws:iam::<account>:user/<name>)"
                ))
            }
        };
        Ok(Caller {
            arn: arn.to_string(),
            principal_arn,
            org_id: None,
            tags: BTreeMap::new(),
            identity_policy: None,
        })
    }

    pub fn account(&self) -> &str {
        self.arn.split(':').nth(4).unwrap_or("")
    }

    /// `AssumedRole` or `User`, as `aws:PrincipalType` reports it.
    pub fn principal_type(&self) -> &'static str {
        if self.arn != self.principal_arn {
            "AssumedRole"
        } else {
            "User"
        }
    }

    /// The session name of an assumed-role session.
    pub fn session_name(&self) -> Option<&str> {
        (self.arn != self.principal_arn)
            .then(|| self.arn.rsplit('/').next())
            .flatten()
    }

    /// Does a `Principal` entry name this caller? An account names all its
    /// principals; a role's ARN all its sessions (their `aws:PrincipalArn`);
    /// a session or user ARN exactly that session or user.
    fn is_named_by(&self, id: &PrincipalId) -> bool {
        match id {
            PrincipalId::Anyone => true,
            PrincipalId::Account(account) => account == self.account(),
            PrincipalId::Arn(arn) => *arn == self.arn || *arn == self.principal_arn,
            PrincipalId::NotAnIamCaller => false,
        }
    }

    /// Does a `NotPrincipal` list spare this caller? IAM compares each
    /// identity behind the request with the list by its exact ARN: "If an
    /// assumed-role user (someone who is using a role) is being evaluated,
    /// AWS might validate the account first, then the role, and then the
    /// assumed-role user." So a session is spared only when its account,
    /// its role and the session itself are all listed, and a user only when
    /// its account and the user are
    /// (<https://docs.aws.amazon.com/IAM/latest/UserGuide/reference_policies_elements_notprincipal.html>).
    fn is_spared_by(&self, list: &[PrincipalId]) -> bool {
        let account = list
            .iter()
            .any(|id| matches!(id, PrincipalId::Account(a) if a == self.account()));
        let listed = |arn: &str| list.iter().any(|id| matches!(id, PrincipalId::Arn(a) if a == arn));
        account && listed(&self.principal_arn) && listed(&self.arn)
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
                self.keys
                    .insert("aws:principalarn".into(), vec![c.principal_arn.clone()]);
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
        if self.compare == Compare::Null {
            let want_absent = self.values.iter().any(|v| v.eq_ignore_ascii_case("true"));
            return want_absent == actual.is_none();
        }
        let Some(actual) = actual else {
            return match self.qualifier {
                SetQualifier::ForAllValues => true,
                SetQualifier::ForAnyValue => self.if_exists,
                SetQualifier::None => self.if_exists || self.negated,
            };
        };
        // For one request value: does it satisfy the operator?
        let one = |value: &str| {
            let any = self.values.iter().any(|expected| self.compare.matches(value, expected));
            any != self.negated
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
            (Principals::Is(list), None) => list.contains(&PrincipalId::Anyone),
            (Principals::Is(list), Some(c)) => list.iter().any(|id| c.is_named_by(id)),
            // Nobody spares an anonymous caller (`"*"` is refused in NotPrincipal).
            (Principals::IsNot(_), None) => true,
            (Principals::IsNot(list), Some(c)) => !c.is_spared_by(list),
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
