//! Birthright access: the groups and licenses that `[[access]]` rules grant a worker.

use std::collections::BTreeSet;

use minijinja::value::Value;

use crate::config::{Config, keys};
use crate::template::TemplateError;

/// What the rules grant, and which rule granted what.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Grants {
    pub groups: BTreeSet<String>,
    pub licenses: BTreeSet<String>,
    pub explanation: Vec<String>,
}

/// Evaluates every rule against the worker's template context.
pub fn evaluate(config: &Config, context: &Value) -> Result<Grants, TemplateError> {
    let mut grants = Grants::default();
    for (index, rule) in config.access.iter().enumerate() {
        let applies = match &rule.when {
            Some(_) => config.engine().test(&keys::access_when(index), context)?,
            None => true,
        };
        if !applies {
            continue;
        }
        let name = rule
            .name
            .clone()
            .unwrap_or_else(|| format!("access[{index}]"));
        let condition = rule
            .when
            .as_ref()
            .map_or_else(|| "every worker".to_owned(), |c| c.0.clone());
        let mut granted = Vec::new();
        // By name where `[labels]` has one, the id kept for tracing.
        let named = |kind: &str, id: &String| match config.label(id) {
            Some(label) => format!("{kind} {label} ({id})"),
            None => format!("{kind} {id}"),
        };
        granted.extend(rule.groups.iter().map(|g| named("group", g)));
        granted.extend(rule.licenses.iter().map(|l| named("license", l)));
        grants.explanation.push(format!(
            "access: rule {name:?} ({condition}) grants {}",
            granted.join(", ")
        ));
        grants.groups.extend(rule.groups.iter().cloned());
        grants.licenses.extend(rule.licenses.iter().cloned());
    }
    Ok(grants)
}
