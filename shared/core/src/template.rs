//! Attribute templates and conditions (minijinja), with hrsync's naming filters.
//!
//! Templates are compiled once per config into one environment and rendered by name.
//! A template that fails to render is an error for that worker, never a crash of the run.

use std::collections::{BTreeMap, BTreeSet};
use std::fmt;

use minijinja::value::Value;
use minijinja::{Environment, UndefinedBehavior};

use crate::worker::Worker;

/// Variables a template may read, besides `custom.<name>` and the counter `n`.
pub const CANONICAL_FIELDS: &[&str] = &[
    "employee_id",
    "given_name",
    "family_name",
    "middle_name",
    "preferred_name",
    "personal_email",
    "work_email",
    "status",
    "hire_date",
    "termination_date",
    "termination_type",
    "worker_type",
    "job_title",
    "department",
    "division",
    "cost_center",
    "company",
    "location",
    "country",
    "time_zone",
    "manager_id",
];

/// Why a template or condition could not be compiled or rendered.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{template}: {message}")]
pub struct TemplateError {
    /// The config key of the template, e.g. `identity.upn[0]` or `access[2].when`.
    pub template: String,
    pub message: String,
}

impl TemplateError {
    fn new(template: &str, error: &minijinja::Error) -> Self {
        Self {
            template: template.to_owned(),
            message: describe(error),
        }
    }
}

/// The minijinja error as one line: its kind and detail, without the source dump.
fn describe(error: &minijinja::Error) -> String {
    if error.kind() == minijinja::ErrorKind::UnknownFilter {
        let name = error
            .detail()
            .and_then(|d| d.strip_prefix("filter "))
            .and_then(|d| d.strip_suffix(" is unknown"))
            .unwrap_or("?");
        return format!(
            "unknown filter `{name}`; templates can use slug, ascii, initial and the minijinja built-in filters"
        );
    }
    match error.detail() {
        Some(detail) => format!("{} ({detail})", error.kind()),
        None => error.kind().to_string(),
    }
}

/// The compiled templates and conditions of one config, rendered by their config key.
pub struct Engine {
    env: Environment<'static>,
}

impl fmt::Debug for Engine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let names: Vec<_> = self.env.templates().map(|(name, _)| name).collect();
        f.debug_struct("Engine").field("templates", &names).finish()
    }
}

impl Default for Engine {
    fn default() -> Self {
        Self { env: environment() }
    }
}

/// One environment with our filters; undefined values render empty, so a missing
/// `custom.<name>` is an empty string (typos are caught at load by [`check_variables`]).
fn environment() -> Environment<'static> {
    let mut env = Environment::new();
    env.set_undefined_behavior(UndefinedBehavior::Lenient);
    env.add_filter("slug", |value: &str| slug(value));
    env.add_filter("ascii", |value: &str| deunicode::deunicode(value));
    env.add_filter("initial", |value: &str| initial(value));
    env
}

impl Engine {
    /// Compiles a template under `key`, checking syntax, filters and variable names.
    pub fn add_template(&mut self, key: &str, source: &str) -> Result<(), TemplateError> {
        self.env
            .add_template_owned(key.to_owned(), source.to_owned())
            .map_err(|e| TemplateError::new(key, &e))?;
        self.check(key)
    }

    /// Compiles a condition (a Jinja expression such as `department == 'Sales'`) under `key`.
    pub fn add_condition(&mut self, key: &str, expression: &str) -> Result<(), TemplateError> {
        self.env
            .compile_expression(expression)
            .map_err(|e| TemplateError::new(key, &e))?;
        let wrapped = format!("{{% if {expression} %}}true{{% else %}}false{{% endif %}}");
        self.env
            .add_template_owned(key.to_owned(), wrapped)
            .map_err(|e| TemplateError::new(key, &e))?;
        self.check(key)
    }

    /// Unknown variables (typos) and unknown filters fail here, at load, rather than per worker.
    fn check(&self, key: &str) -> Result<(), TemplateError> {
        let template = self
            .env
            .get_template(key)
            .map_err(|e| TemplateError::new(key, &e))?;
        let globals: BTreeSet<&str> = self.env.globals().map(|(name, _)| name).collect();
        check_variables(key, &template.undeclared_variables(true), &globals)?;
        template
            .render(context(&sample_worker(), Some(2)))
            .map_err(|e| TemplateError::new(key, &e))?;
        Ok(())
    }

    pub fn render(&self, key: &str, ctx: &Value) -> Result<String, TemplateError> {
        let template = self
            .env
            .get_template(key)
            .map_err(|e| TemplateError::new(key, &e))?;
        let text = template
            .render(ctx)
            .map_err(|e| TemplateError::new(key, &e))?;
        Ok(text.trim().to_owned())
    }

    pub fn test(&self, key: &str, ctx: &Value) -> Result<bool, TemplateError> {
        Ok(self.render(key, ctx)? == "true")
    }
}

fn check_variables(
    key: &str,
    variables: &std::collections::HashSet<String>,
    globals: &BTreeSet<&str>,
) -> Result<(), TemplateError> {
    let unknown: BTreeSet<&str> = variables
        .iter()
        .map(String::as_str)
        .filter(|var| {
            let root = var.split('.').next().unwrap_or(var);
            !(CANONICAL_FIELDS.contains(&root)
                || root == "custom"
                || root == "n"
                || globals.contains(root))
        })
        .collect();
    if unknown.is_empty() {
        return Ok(());
    }
    Err(TemplateError {
        template: key.to_owned(),
        message: format!(
            "unknown variable {}; templates can use the canonical worker fields ({}), custom.<name> and n",
            unknown
                .iter()
                .map(|v| format!("`{v}`"))
                .collect::<Vec<_>>()
                .join(", "),
            CANONICAL_FIELDS.join(", ")
        ),
    })
}

/// A worker with every field set, used to trial-render templates at load time.
fn sample_worker() -> Worker {
    use jiff::civil::date;
    let key = crate::worker::WorkerKey::new("sample", "1");
    let mut worker = Worker::new(key, "Sample", "Worker", jiff::Timestamp::UNIX_EPOCH);
    let text = |s: &str| Some(s.to_owned());
    worker.middle_name = text("Middle");
    worker.preferred_name = text("Sam");
    worker.personal_email = text("sam@example.org");
    worker.work_email = text("sam.worker@example.com");
    worker.hire_date = Some(date(2024, 1, 1));
    worker.termination_date = Some(date(2025, 1, 1));
    worker.termination_type = text("voluntary");
    worker.worker_type = text("Employee");
    worker.job_title = text("Engineer");
    worker.department = text("Engineering");
    worker.division = text("Product");
    worker.cost_center = text("CC1");
    worker.company = text("Acme");
    worker.location = text("London");
    worker.country = text("GB");
    worker.time_zone = text("Europe/London");
    worker.manager_id = text("2");
    worker
}

/// The template context of a worker: every canonical field (absent ones as ""), `custom`,
/// and the uniqueness counter `n` when one is being tried.
pub fn context(worker: &Worker, n: Option<u32>) -> Value {
    let text = |value: &Option<String>| Value::from(value.clone().unwrap_or_default());
    let date = |value: &Option<jiff::civil::Date>| {
        Value::from(value.map(|d| d.to_string()).unwrap_or_default())
    };
    let mut fields: BTreeMap<&str, Value> = BTreeMap::new();
    fields.insert("employee_id", Value::from(worker.employee_id.clone()));
    fields.insert("given_name", Value::from(worker.given_name.clone()));
    fields.insert("family_name", Value::from(worker.family_name.clone()));
    fields.insert("middle_name", text(&worker.middle_name));
    fields.insert("preferred_name", text(&worker.preferred_name));
    fields.insert("personal_email", text(&worker.personal_email));
    fields.insert("work_email", text(&worker.work_email));
    fields.insert("status", Value::from(worker.status.as_str()));
    fields.insert("hire_date", date(&worker.hire_date));
    fields.insert("termination_date", date(&worker.termination_date));
    fields.insert("termination_type", text(&worker.termination_type));
    fields.insert("worker_type", text(&worker.worker_type));
    fields.insert("job_title", text(&worker.job_title));
    fields.insert("department", text(&worker.department));
    fields.insert("division", text(&worker.division));
    fields.insert("cost_center", text(&worker.cost_center));
    fields.insert("company", text(&worker.company));
    fields.insert("location", text(&worker.location));
    fields.insert("country", text(&worker.country));
    fields.insert("time_zone", text(&worker.time_zone));
    fields.insert("manager_id", text(&worker.manager_id));
    fields.insert(
        "custom",
        Value::from_pairs(worker.custom.iter().map(|(k, v)| (k.clone(), v.clone()))),
    );
    if let Some(n) = n {
        fields.insert("n", Value::from(n));
    }
    Value::from_pairs(fields)
}

/// A worker's context with the uniqueness counter `n` set.
pub fn with_counter(context: &Value, n: u32) -> Value {
    minijinja::context! { n => n, ..context.clone() }
}

/// Transliterates, lowercases and keeps `a-z0-9.-_`: "Zoë O'Brien-Smith" -> "zoe.obrien-smith".
/// Whitespace becomes a dot, apostrophes and other marks vanish, and runs of separators
/// collapse to one (a hyphen or underscore wins over a dot), trimmed at both ends.
pub fn slug(text: &str) -> String {
    let ascii = deunicode::deunicode(text).to_ascii_lowercase();
    let mut out = String::with_capacity(ascii.len());
    let mut pending: Option<char> = None;
    for c in ascii.chars() {
        let separator = match c {
            'a'..='z' | '0'..='9' => None,
            '-' | '_' => Some(c),
            '.' => Some('.'),
            c if c.is_whitespace() => Some('.'),
            _ => continue,
        };
        match separator {
            Some(sep) => {
                pending = Some(match pending {
                    Some(prev) if prev != '.' => prev,
                    _ => sep,
                });
            }
            None => {
                if let Some(sep) = pending.take()
                    && !out.is_empty()
                {
                    out.push(sep);
                }
                out.push(c);
            }
        }
    }
    out
}

/// The first letter or digit of the text, as written: "Zoë" -> "Z", "  o'Neil" -> "o".
pub fn initial(text: &str) -> String {
    text.chars()
        .find(|c| c.is_alphanumeric())
        .map(String::from)
        .unwrap_or_default()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn slug_transliterates_and_collapses() {
        assert_eq!(slug("Zoë O'Brien-Smith"), "zoe.obrien-smith");
        assert_eq!(slug("  José  María "), "jose.maria");
        assert_eq!(slug("Smith - Jones"), "smith-jones");
        assert_eq!(slug("Ægir"), "aegir");
        assert_eq!(slug("Łukasz Żółć"), "lukasz.zolc");
        assert_eq!(slug("van der Berg"), "van.der.berg");
        assert_eq!(slug("O’Connor"), "oconnor");
        assert_eq!(slug("__a__"), "a");
        assert_eq!(slug("!!!"), "");
        assert_eq!(slug("Nguyễn Văn An"), "nguyen.van.an");
    }

    #[test]
    fn initial_takes_first_alphanumeric() {
        assert_eq!(initial("Zoë"), "Z");
        assert_eq!(initial("'olu"), "o");
        assert_eq!(initial(""), "");
    }

    #[test]
    fn unknown_variable_is_rejected_at_load() {
        let mut engine = Engine::default();
        let err = engine
            .add_template("identity.display_name", "{{ givn_name }}")
            .unwrap_err();
        assert!(
            err.message.starts_with("unknown variable `givn_name`"),
            "{err}"
        );
    }

    #[test]
    fn unknown_filter_is_rejected_at_load() {
        let mut engine = Engine::default();
        let err = engine
            .add_template("identity.upn[0]", "{{ given_name|slugg }}")
            .unwrap_err();
        assert!(err.message.contains("slugg"), "{err}");
    }

    #[test]
    fn condition_evaluates_against_worker() {
        let mut engine = Engine::default();
        engine
            .add_condition(
                "access[0].when",
                "department == 'Engineering' and country in ['GB', 'US']",
            )
            .unwrap();
        let worker = sample_worker();
        assert!(
            engine
                .test("access[0].when", &context(&worker, None))
                .unwrap()
        );
        let mut other = worker.clone();
        other.country = Some("FR".into());
        assert!(
            !engine
                .test("access[0].when", &context(&other, None))
                .unwrap()
        );
    }
}
