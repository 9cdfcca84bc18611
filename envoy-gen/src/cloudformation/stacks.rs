//! The system as CloudFormation resources, and how they become one
//! template or several.
//!
//! Every resource, condition and output is built once, placed in a part
//! (the network, the frontend, or one service), and refers to others with
//! `Ref`, `Fn::GetAtt` or `${Name}` / `${Name.Attribute}` in `Fn::Sub`
//! strings. One stack holds every part as it is. `--split` gives each part a
//! stack of its own: a reference to a resource of another part becomes an
//! `Fn::ImportValue` of an export that part's stack adds, each stack declares
//! only the parameters and conditions it uses, and the imports order the
//! stacks (a cycle is refused). So the split stacks hold exactly the
//! resources of the single one, and no reference is written twice.
//!
//! Written by hand: no crate models CloudFormation templates, and the walk
//! over references is what `--split` needs.

use serde_json::{json, Map, Value};
use std::collections::{BTreeMap, BTreeSet};

/// Which stack a resource goes to with `--split`.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
pub enum Part {
    /// The service network, the cluster, the shared roles and log group:
    /// what the platform team owns.
    Network,
    /// One service: its Lattice service, target group, task and ECS service.
    Service(String),
    /// The frontend: its load balancer, task and ECS service.
    Frontend,
}

impl Part {
    /// The stack's file name with `--split`.
    pub fn file(&self) -> String {
        match self {
            Part::Network => "network.yaml".into(),
            Part::Frontend => "frontend.yaml".into(),
            Part::Service(name) => format!("service-{name}.yaml"),
        }
    }

    fn describe(&self) -> String {
        match self {
            Part::Network => "the network stack".into(),
            Part::Frontend => "the frontend stack".into(),
            Part::Service(name) => format!("the stack of service `{name}`"),
        }
    }
}

/// Every piece of the system's templates, before they are put in stacks.
#[derive(Debug, Default)]
pub struct Graph {
    pub description: String,
    pub parameters: BTreeMap<String, Value>,
    pub rules: BTreeMap<String, Value>,
    pub conditions: BTreeMap<String, Value>,
    pub resources: BTreeMap<String, (Part, Value)>,
    pub outputs: BTreeMap<String, (Part, Value)>,
    /// Why a cfn-lint rule or a checkov check is not applied, written into
    /// the template as comments before the resource that skips it.
    pub comments: BTreeMap<String, Vec<String>>,
    /// Logical ids already taken, with what took them (for the message when
    /// two names of the spec would give the same id).
    pub owners: BTreeMap<String, String>,
}

impl Graph {
    /// Adds a resource, or says which part of the system already has its
    /// logical id.
    pub fn resource(&mut self, id: &str, owner: &str, part: &Part, body: Value) -> Result<(), String> {
        self.claim(id, owner)?;
        self.resources.insert(id.to_string(), (part.clone(), body));
        Ok(())
    }

    pub fn output(&mut self, id: &str, owner: &str, part: &Part, body: Value) -> Result<(), String> {
        self.claim(id, owner)?;
        self.outputs.insert(id.to_string(), (part.clone(), body));
        Ok(())
    }

    pub fn parameter(&mut self, id: &str, owner: &str, body: Value) -> Result<(), String> {
        self.claim(id, owner)?;
        self.parameters.insert(id.to_string(), body);
        Ok(())
    }

    fn claim(&mut self, id: &str, owner: &str) -> Result<(), String> {
        match self.owners.get(id) {
            Some(other) => Err(format!(
                "{owner} and {other} would both be named `{id}` in the CloudFormation template; rename one of them"
            )),
            None => {
                self.owners.insert(id.to_string(), owner.to_string());
                Ok(())
            }
        }
    }
}

/// A reference found in a template value: a resource (with an attribute
/// for `Fn::GetAtt`), a parameter or a pseudo parameter.
#[derive(Debug, Clone, PartialEq, Eq, PartialOrd, Ord)]
struct Reference {
    name: String,
    attribute: Option<String>,
}

/// The `${...}` references of an `Fn::Sub` string (`${!...}` is a literal).
fn sub_references(text: &str) -> Vec<(std::ops::Range<usize>, Reference)> {
    let mut out = Vec::new();
    let mut from = 0;
    while let Some(start) = text.get(from..).and_then(|rest| rest.find("${")).map(|i| i + from) {
        let Some(end) = text.get(start..).and_then(|rest| rest.find('}')).map(|i| i + start) else {
            break;
        };
        let inner = text.get(start + 2..end).unwrap_or_default();
        if !inner.starts_with('!') {
            let (name, attribute) = match inner.split_once('.') {
                Some((name, attribute)) => (name.to_string(), Some(attribute.to_string())),
                None => (inner.to_string(), None),
            };
            out.push((start..end + 1, Reference { name, attribute }));
        }
        from = end + 1;
    }
    out
}

/// Wraps every string that holds a `${...}` reference in `Fn::Sub`: the
/// renderers write references into plain strings (an image, an ARN, a
/// variable's value), and this makes them CloudFormation's.
pub fn substitute(value: Value) -> Value {
    match value {
        Value::String(text) if !sub_references(&text).is_empty() => json!({ "Fn::Sub": text }),
        Value::Array(items) => Value::Array(items.into_iter().map(substitute).collect()),
        Value::Object(map) => Value::Object(map.into_iter().map(|(k, v)| (k, substitute(v))).collect()),
        other => other,
    }
}

/// What one stack's walk over its values found and needs.
struct Walk<'a> {
    graph: &'a Graph,
    part: &'a Part,
    /// Resources of other parts this stack refers to: (part, reference).
    imports: BTreeSet<(Part, Reference)>,
    parameters: BTreeSet<String>,
    conditions: BTreeSet<String>,
    problems: Vec<String>,
    prefix: &'a str,
    /// Rewrite references to other parts as imports (`--split`).
    split: bool,
}

/// The name of the export that holds `reference` of `prefix`'s system.
fn export_name(prefix: &str, reference: &Reference) -> String {
    match &reference.attribute {
        Some(attribute) => format!("{prefix}:{}:{}", reference.name, attribute.replace('.', "-")),
        None => format!("{prefix}:{}", reference.name),
    }
}

impl Walk<'_> {
    /// Notes `reference` and says whether it is another part's resource
    /// (to be imported).
    fn note(&mut self, reference: &Reference) -> bool {
        let name = reference.name.as_str();
        if name.starts_with("AWS::") {
            return false;
        }
        if self.graph.parameters.contains_key(name) {
            self.parameters.insert(name.to_string());
            return false;
        }
        match self.graph.resources.get(name) {
            Some((part, _)) if part == self.part || !self.split => false,
            Some((part, _)) => {
                self.imports.insert((part.clone(), reference.clone()));
                true
            }
            None => {
                self.problems
                    .push(format!("bug in envoy-gen: `{name}` is referred to but not defined"));
                false
            }
        }
    }

    fn import(&self, reference: &Reference) -> Value {
        json!({ "Fn::ImportValue": export_name(self.prefix, reference) })
    }

    fn value(&mut self, value: &Value) -> Value {
        match value {
            Value::Array(items) => Value::Array(items.iter().map(|v| self.value(v)).collect()),
            Value::Object(map) if map.len() == 1 => {
                let (key, inner) = map
                    .iter()
                    .next()
                    .map(|(k, v)| (k.as_str(), v))
                    .unwrap_or(("", &Value::Null));
                match (key, inner) {
                    ("Ref", Value::String(name)) => {
                        let reference = Reference {
                            name: name.clone(),
                            attribute: None,
                        };
                        if self.note(&reference) {
                            self.import(&reference)
                        } else {
                            value.clone()
                        }
                    }
                    ("Fn::GetAtt", Value::Array(parts)) => {
                        let reference = Reference {
                            name: parts.first().and_then(Value::as_str).unwrap_or_default().to_string(),
                            attribute: parts.get(1).and_then(Value::as_str).map(str::to_string),
                        };
                        if self.note(&reference) {
                            self.import(&reference)
                        } else {
                            value.clone()
                        }
                    }
                    ("Fn::Sub", Value::String(text)) => self.sub(text),
                    ("Fn::If", Value::Array(parts)) => {
                        if let Some(name) = parts.first().and_then(Value::as_str) {
                            self.condition(name);
                        }
                        json!({ "Fn::If": self.value(inner) })
                    }
                    _ => Value::Object(map.iter().map(|(k, v)| (k.clone(), self.value(v))).collect()),
                }
            }
            Value::Object(map) => Value::Object(map.iter().map(|(k, v)| (k.clone(), self.value(v))).collect()),
            other => other.clone(),
        }
    }

    /// A resource or an output: its values, and the condition it is
    /// created under (the top-level `Condition`).
    fn entry(&mut self, body: &Value) -> Value {
        if let Some(name) = body.get("Condition").and_then(Value::as_str) {
            self.condition(name);
        }
        self.value(body)
    }

    fn condition(&mut self, name: &str) {
        match self.graph.conditions.get(name) {
            Some(body) => {
                if self.conditions.insert(name.to_string()) {
                    let body = body.clone();
                    self.value(&body);
                }
            }
            None => self
                .problems
                .push(format!("bug in envoy-gen: condition `{name}` is not defined")),
        }
    }

    /// An `Fn::Sub` string: references to other parts become variables
    /// bound to imports.
    fn sub(&mut self, text: &str) -> Value {
        let mut variables = Map::new();
        let mut out = String::new();
        let mut last = 0;
        for (range, reference) in sub_references(text) {
            if self.note(&reference) {
                let variable: String = export_name("", &reference)
                    .chars()
                    .filter(char::is_ascii_alphanumeric)
                    .collect();
                out.push_str(text.get(last..range.start).unwrap_or_default());
                out.push_str(&format!("${{{variable}}}"));
                variables.insert(variable, self.import(&reference));
                last = range.end;
            }
        }
        out.push_str(text.get(last..).unwrap_or_default());
        if variables.is_empty() {
            json!({ "Fn::Sub": text })
        } else {
            json!({ "Fn::Sub": [out, variables] })
        }
    }
}

/// What a stack imports: each resource (and attribute) of another part.
type Imports = BTreeSet<(Part, Reference)>;

/// One rendered template: its file name (with `--split`), its text, and
/// the stacks it imports from.
#[derive(Debug)]
pub struct Stack {
    pub part: Part,
    pub template: Value,
    pub comments: BTreeMap<String, Vec<String>>,
    pub imports_from: BTreeSet<Part>,
}

/// The template of `parts` (all of them in one stack, or one part).
fn stack(graph: &Graph, part: &Part, split: bool, prefix: &str) -> Result<(Stack, Imports), Vec<String>> {
    let mut walk = Walk {
        graph,
        part,
        imports: BTreeSet::new(),
        parameters: BTreeSet::new(),
        conditions: BTreeSet::new(),
        problems: Vec::new(),
        prefix,
        split,
    };
    let mut resources = Map::new();
    let mut comments = BTreeMap::new();
    for (id, (resource_part, body)) in &graph.resources {
        if split && resource_part != part {
            continue;
        }
        let mut body = walk.entry(body);
        if let Some(Value::Array(depends)) = body.get("DependsOn").cloned() {
            let local: Vec<Value> = depends
                .into_iter()
                .filter(|d| {
                    d.as_str()
                        .and_then(|name| graph.resources.get(name))
                        .is_some_and(|(p, _)| !split || p == part)
                })
                .collect();
            if let Some(object) = body.as_object_mut() {
                if local.is_empty() {
                    object.remove("DependsOn");
                } else {
                    object.insert("DependsOn".into(), Value::Array(local));
                }
            }
        }
        if let Some(lines) = graph.comments.get(id) {
            comments.insert(id.clone(), lines.clone());
        }
        resources.insert(id.clone(), body);
    }
    let mut outputs = Map::new();
    for (id, (output_part, body)) in &graph.outputs {
        if !split || output_part == part {
            outputs.insert(id.clone(), walk.entry(body));
        }
    }
    let rules: Map<String, Value> = graph.rules.iter().map(|(k, v)| (k.clone(), walk.value(v))).collect();
    if !walk.problems.is_empty() {
        return Err(walk.problems);
    }
    let parameters: Map<String, Value> = walk
        .parameters
        .iter()
        .filter_map(|name| graph.parameters.get(name).map(|p| (name.clone(), p.clone())))
        .collect();
    let conditions: Map<String, Value> = walk
        .conditions
        .iter()
        .filter_map(|name| graph.conditions.get(name).map(|c| (name.clone(), c.clone())))
        .collect();
    let description = match (split, part) {
        (false, _) => graph.description.clone(),
        (true, Part::Network) => format!(
            "{}: the service network and what every service shares",
            graph.description
        ),
        (true, Part::Frontend) => format!("{}: the frontend", graph.description),
        (true, Part::Service(name)) => format!("{}: service {name}", graph.description),
    };
    let mut template = Map::new();
    template.insert("AWSTemplateFormatVersion".into(), "2010-09-09".into());
    template.insert("Description".into(), description.into());
    for (key, section) in [
        ("Parameters", parameters),
        ("Rules", rules),
        ("Conditions", conditions),
        ("Resources", resources),
        ("Outputs", outputs),
    ] {
        if !section.is_empty() {
            template.insert(key.into(), Value::Object(section));
        }
    }
    let imports_from = walk.imports.iter().map(|(p, _)| p.clone()).collect();
    Ok((
        Stack {
            part: part.clone(),
            template: Value::Object(template),
            comments,
            imports_from,
        },
        walk.imports,
    ))
}

/// The whole system as one stack.
pub fn single(graph: &Graph) -> Result<Stack, Vec<String>> {
    stack(graph, &Part::Network, false, "").map(|(stack, _)| stack)
}

/// One stack per part, in an order they can be deployed in (every stack
/// after those it imports from), each exporting what the others import.
/// `prefix` begins every export name (export names are unique in a region).
pub fn split(graph: &Graph, prefix: &str) -> Result<Vec<Stack>, Vec<String>> {
    let parts: BTreeSet<Part> = graph.resources.values().map(|(p, _)| p.clone()).collect();
    let mut stacks = Vec::new();
    let mut exports: BTreeSet<(Part, Reference)> = BTreeSet::new();
    let mut problems = Vec::new();
    for part in &parts {
        match stack(graph, part, true, prefix) {
            Ok((stack, imports)) => {
                exports.extend(imports);
                stacks.push(stack);
            }
            Err(mut p) => problems.append(&mut p),
        }
    }
    if !problems.is_empty() {
        return Err(problems);
    }
    for (part, reference) in &exports {
        let Some(stack) = stacks.iter_mut().find(|s| &s.part == part) else {
            return Err(vec![format!("bug in envoy-gen: no stack for {}", part.describe())]);
        };
        let value = match &reference.attribute {
            Some(attribute) => json!({ "Fn::GetAtt": [reference.name, attribute] }),
            None => json!({ "Ref": reference.name }),
        };
        let id: String = format!("Export{}", export_name("", reference))
            .chars()
            .filter(char::is_ascii_alphanumeric)
            .collect();
        let output = json!({
            "Description": format!("{} for the stacks that import it", export_name("", reference).trim_start_matches(':')),
            "Value": value,
            "Export": { "Name": export_name(prefix, reference) },
        });
        if let Some(template) = stack.template.as_object_mut() {
            let outputs = template.entry("Outputs").or_insert_with(|| json!({}));
            if let Some(outputs) = outputs.as_object_mut() {
                outputs.insert(id, output);
            }
        }
    }
    order(stacks)
}

/// Sorts stacks so that each comes after those it imports from; refuses a
/// cycle, naming its stacks.
fn order(mut pending: Vec<Stack>) -> Result<Vec<Stack>, Vec<String>> {
    let mut ordered: Vec<Stack> = Vec::new();
    while !pending.is_empty() {
        let ready = pending
            .iter()
            .position(|s| s.imports_from.iter().all(|p| ordered.iter().any(|o| &o.part == p)));
        match ready {
            Some(index) => ordered.push(pending.remove(index)),
            None => {
                let names: Vec<String> = pending.iter().map(|s| s.part.describe()).collect();
                return Err(vec![format!(
                    "--split: {} import from each other, so none can be deployed first (services that call each other \
                     must be in one stack: render without --split)",
                    names.join(", ")
                )]);
            }
        }
    }
    Ok(ordered)
}

/// A template value written with its members in the order people read
/// CloudFormation in: the sections from `AWSTemplateFormatVersion` to
/// `Outputs`, a resource's `Type` first, a policy's `Version` before its
/// `Statement`, a statement's `Sid`, `Effect`, `Principal`, `Action`,
/// `Resource`; anything else by name.
struct Ordered<'a>(&'a Value);

const FIRST_MEMBERS: [&str; 17] = [
    "AWSTemplateFormatVersion",
    "Type",
    "Name",
    "Key",
    "Description",
    "Parameters",
    "Rules",
    "Conditions",
    "Resources",
    "Outputs",
    "Version",
    "Statement",
    "Sid",
    "Effect",
    "Principal",
    "Action",
    "Resource",
];

impl serde::Serialize for Ordered<'_> {
    fn serialize<S: serde::Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        match self.0 {
            Value::Object(map) => {
                let mut members: Vec<(&String, &Value)> = map.iter().collect();
                members.sort_by_key(|(key, _)| {
                    (
                        FIRST_MEMBERS
                            .iter()
                            .position(|first| first == key)
                            .unwrap_or(FIRST_MEMBERS.len()),
                        key.as_str(),
                    )
                });
                let mut out = serializer.serialize_map(Some(members.len()))?;
                for (key, value) in members {
                    out.serialize_entry(key, &Ordered(value))?;
                }
                out.end()
            }
            Value::Array(items) => serializer.collect_seq(items.iter().map(Ordered)),
            other => other.serialize(serializer),
        }
    }
}

/// The template as YAML, with the comments that say why a check is
/// skipped before the resources they concern, and `header` on top.
pub fn to_yaml(stack: &Stack, header: &str) -> Result<String, String> {
    let text = serde_saphyr::to_string(&Ordered(&stack.template))
        .map_err(|e| format!("bug in envoy-gen: the template cannot be written as YAML: {e}"))?;
    let mut out = String::from(header);
    for line in text.lines() {
        // Resources are the only mappings indented by two spaces under
        // `Resources:`; their comments go right above them.
        if let Some(id) = line.strip_prefix("  ").and_then(|l| l.strip_suffix(':')) {
            if let Some(comments) = stack.comments.get(id) {
                for comment in comments {
                    out.push_str("  # ");
                    out.push_str(comment);
                    out.push('\n');
                }
            }
        }
        out.push_str(line);
        out.push('\n');
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sub_references_skip_literals() {
        let refs: Vec<String> = sub_references("a ${X.Arn}/${!Literal} ${AWS::Region} ${Y}")
            .into_iter()
            .map(|(_, r)| format!("{}|{}", r.name, r.attribute.unwrap_or_default()))
            .collect();
        assert_eq!(refs, ["X|Arn", "AWS::Region|", "Y|"]);
    }

    fn graph() -> Graph {
        let mut g = Graph::default();
        g.parameter("Vpc", "test", json!({"Type": "String"})).unwrap();
        g.resource(
            "A",
            "a",
            &Part::Network,
            json!({"Type": "T", "Properties": {"V": {"Ref": "Vpc"}}}),
        )
        .unwrap();
        g.resource(
            "B",
            "b",
            &Part::Service("b".into()),
            json!({"Type": "T", "DependsOn": ["A"], "Properties": {"X": {"Fn::GetAtt": ["A", "Arn"]}, "Y": {"Fn::Sub": "${A.Arn}/*"}}}),
        )
        .unwrap();
        g
    }

    #[test]
    fn split_imports_what_another_part_holds() {
        let stacks = split(&graph(), "p").unwrap();
        assert_eq!(stacks.len(), 2);
        assert_eq!(stacks[0].part, Part::Network);
        let b = &stacks[1].template;
        assert_eq!(
            b["Resources"]["B"]["Properties"]["X"],
            json!({"Fn::ImportValue": "p:A:Arn"})
        );
        assert_eq!(
            b["Resources"]["B"]["Properties"]["Y"],
            json!({"Fn::Sub": ["${AArn}/*", {"AArn": {"Fn::ImportValue": "p:A:Arn"}}]})
        );
        assert!(b["Resources"]["B"].get("DependsOn").is_none());
        assert!(b.get("Parameters").is_none());
        let a = &stacks[0].template;
        assert_eq!(a["Parameters"]["Vpc"], json!({"Type": "String"}));
        assert_eq!(a["Outputs"]["ExportAArn"]["Export"]["Name"], "p:A:Arn");
    }

    #[test]
    fn a_cycle_is_refused() {
        let mut g = graph();
        g.resources.insert(
            "A".into(),
            (Part::Network, json!({"Type": "T", "Properties": {"V": {"Ref": "B"}}})),
        );
        let error = split(&g, "p").unwrap_err();
        assert!(error[0].contains("import from each other"), "{error:?}");
    }

    #[test]
    fn one_id_for_two_names_is_refused() {
        let mut g = graph();
        let error = g.resource("A", "service `a-1`", &Part::Network, json!({})).unwrap_err();
        assert_eq!(
            error,
            "service `a-1` and a would both be named `A` in the CloudFormation template; rename one of them"
        );
    }

    #[test]
    fn substitute_wraps_only_strings_with_references() {
        assert_eq!(
            substitute(json!({"a": "x", "b": ["${Y.Arn}"], "c": "${!z}"})),
            json!({"a": "x", "b": [{"Fn::Sub": "${Y.Arn}"}], "c": "${!z}"})
        );
    }
}
