//! IAM-style policy documents and their evaluation (pure): `Allow`/`Deny` statements over
//! `Action`/`NotAction` and `Resource`/`NotResource` patterns with `*` and `?` wildcards; an
//! explicit deny wins, then any allow, else the implicit deny. Actions compare without regard to
//! case (as IAM's do), resources with it. `Condition` and `Principal` are refused (not supported).

use serde::{Deserialize, Serialize};
use serde_json::Value;

/// Why a policy document is refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{0}")]
pub struct PolicyError(pub String);

/// Allow or Deny.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
pub enum Effect {
    /// Grants.
    Allow,
    /// Refuses, whatever else allows.
    Deny,
}

/// One statement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Statement {
    /// Allow or Deny.
    pub effect: Effect,
    /// Action patterns (`service:Operation`, wildcards).
    pub actions: Vec<String>,
    /// Whether `actions` is a `NotAction` list.
    pub not_action: bool,
    /// Resource patterns (ARNs, wildcards).
    pub resources: Vec<String>,
    /// Whether `resources` is a `NotResource` list.
    pub not_resource: bool,
}

/// A policy document.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Policy {
    /// Its statements.
    pub statements: Vec<Statement>,
}

fn strings(value: &Value, what: &str) -> Result<Vec<String>, PolicyError> {
    match value {
        Value::String(s) => Ok(vec![s.clone()]),
        Value::Array(items) if !items.is_empty() => items
            .iter()
            .map(|i| {
                i.as_str()
                    .map(str::to_owned)
                    .ok_or_else(|| PolicyError(format!("{what} must hold strings")))
            })
            .collect(),
        _ => Err(PolicyError(format!(
            "{what} must be a string or a non-empty list of strings"
        ))),
    }
}

impl Policy {
    /// Parses an IAM policy document (`{"Version": "2012-10-17", "Statement": [...]}`).
    pub fn parse(text: &str) -> Result<Self, PolicyError> {
        if text.len() > 6144 {
            return Err(PolicyError(
                "a policy document is at most 6144 characters".into(),
            ));
        }
        let doc: Value =
            serde_json::from_str(text).map_err(|e| PolicyError(format!("not JSON: {e}")))?;
        let map = doc
            .as_object()
            .ok_or_else(|| PolicyError("a policy document is a JSON object".into()))?;
        for key in map.keys() {
            if !matches!(key.as_str(), "Version" | "Id" | "Statement") {
                return Err(PolicyError(format!("unknown member {key}")));
            }
        }
        match map.get("Version").and_then(Value::as_str) {
            Some("2012-10-17") | Some("2008-10-17") => {}
            _ => return Err(PolicyError("Version must be 2012-10-17".into())),
        }
        let statements = match map.get("Statement") {
            Some(Value::Array(list)) if !list.is_empty() => list.clone(),
            Some(single @ Value::Object(_)) => vec![single.clone()],
            _ => return Err(PolicyError("Statement is missing or empty".into())),
        };
        let mut out = Vec::new();
        for (i, statement) in statements.iter().enumerate() {
            let s = statement
                .as_object()
                .ok_or_else(|| PolicyError(format!("Statement {i} is not an object")))?;
            for key in s.keys() {
                match key.as_str() {
                    "Sid" | "Effect" | "Action" | "NotAction" | "Resource" | "NotResource" => {}
                    "Condition" | "Principal" | "NotPrincipal" => {
                        return Err(PolicyError(format!(
                            "Statement {i}: {key} is not supported by Cairn"
                        )))
                    }
                    other => {
                        return Err(PolicyError(format!(
                            "Statement {i}: unknown member {other}"
                        )))
                    }
                }
            }
            let effect = match s.get("Effect").and_then(Value::as_str) {
                Some("Allow") => Effect::Allow,
                Some("Deny") => Effect::Deny,
                _ => {
                    return Err(PolicyError(format!(
                        "Statement {i}: Effect must be Allow or Deny"
                    )))
                }
            };
            let (actions, not_action) = match (s.get("Action"), s.get("NotAction")) {
                (Some(a), None) => (strings(a, "Action")?, false),
                (None, Some(a)) => (strings(a, "NotAction")?, true),
                _ => {
                    return Err(PolicyError(format!(
                        "Statement {i}: exactly one of Action and NotAction"
                    )))
                }
            };
            let (resources, not_resource) = match (s.get("Resource"), s.get("NotResource")) {
                (Some(r), None) => (strings(r, "Resource")?, false),
                (None, Some(r)) => (strings(r, "NotResource")?, true),
                _ => {
                    return Err(PolicyError(format!(
                        "Statement {i}: exactly one of Resource and NotResource"
                    )))
                }
            };
            for action in &actions {
                if action != "*" && !action.contains(':') {
                    return Err(PolicyError(format!(
                        "Statement {i}: action {action:?} is not service:Operation"
                    )));
                }
            }
            out.push(Statement {
                effect,
                actions,
                not_action,
                resources,
                not_resource,
            });
        }
        Ok(Self { statements: out })
    }
}

/// `*` (any run) and `?` (any one character) matching.
pub fn glob(pattern: &str, text: &str, ignore_case: bool) -> bool {
    let (p, t): (Vec<char>, Vec<char>) = if ignore_case {
        (
            pattern.to_lowercase().chars().collect(),
            text.to_lowercase().chars().collect(),
        )
    } else {
        (pattern.chars().collect(), text.chars().collect())
    };
    let (mut pi, mut ti) = (0, 0);
    let (mut star, mut mark) = (None, 0);
    while ti < t.len() {
        if pi < p.len() && (p[pi] == '?' || p[pi] == t[ti]) {
            pi += 1;
            ti += 1;
        } else if pi < p.len() && p[pi] == '*' {
            star = Some(pi);
            mark = ti;
            pi += 1;
        } else if let Some(s) = star {
            pi = s + 1;
            mark += 1;
            ti = mark;
        } else {
            return false;
        }
    }
    while pi < p.len() && p[pi] == '*' {
        pi += 1;
    }
    pi == p.len()
}

impl Statement {
    fn applies(&self, action: &str, resource: &str) -> bool {
        let action_hit = self.actions.iter().any(|a| glob(a, action, true)) != self.not_action;
        let resource_hit =
            self.resources.iter().any(|r| glob(r, resource, false)) != self.not_resource;
        action_hit && resource_hit
    }
}

/// The outcome of evaluating policies.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Decision {
    /// Some statement allows and none denies.
    Allow,
    /// A statement denies explicitly.
    ExplicitDeny,
    /// Nothing allows.
    ImplicitDeny,
}

/// Evaluates `policies` for `action` on `resource`.
pub fn evaluate<'a>(
    policies: impl IntoIterator<Item = &'a Policy>,
    action: &str,
    resource: &str,
) -> Decision {
    let mut allowed = false;
    for policy in policies {
        for statement in &policy.statements {
            if statement.applies(action, resource) {
                match statement.effect {
                    Effect::Deny => return Decision::ExplicitDeny,
                    Effect::Allow => allowed = true,
                }
            }
        }
    }
    if allowed {
        Decision::Allow
    } else {
        Decision::ImplicitDeny
    }
}

/// The built-in (managed) policies: administrator, writer (ingest only), reader, auditor.
pub fn builtin(name: &str) -> Option<Policy> {
    let text = match name {
        "AdministratorAccess" => {
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":"*","Resource":"*"}]}"#
        }
        "CairnWriter" => {
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["cloudtrail-data:PutAuditEvents","cairn:PutEvents"],"Resource":"*"}]}"#
        }
        "CairnReader" => {
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["cloudtrail:LookupEvents","cloudtrail:Describe*","cloudtrail:Get*","cloudtrail:List*","cloudtrail:StartQuery","cloudtrail:CancelQuery"],"Resource":"*"}]}"#
        }
        "CairnAuditor" => {
            r#"{"Version":"2012-10-17","Statement":[{"Effect":"Allow","Action":["cloudtrail:LookupEvents","cloudtrail:Describe*","cloudtrail:Get*","cloudtrail:List*","cloudtrail:StartQuery","cloudtrail:CancelQuery","iam:List*","iam:Get*","cairn:GetMetrics"],"Resource":"*"}]}"#
        }
        _ => return None,
    };
    Some(Policy::parse(text).expect("built-in policies are valid"))
}

/// Names of the built-in policies.
pub const BUILTIN: &[&str] = &[
    "AdministratorAccess",
    "CairnWriter",
    "CairnReader",
    "CairnAuditor",
];
