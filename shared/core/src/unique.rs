//! Unique UPN and mail: candidates from the `[identity]` templates, tried in order against
//! a "is it taken?" check that the caller supplies (the run, the store, the directory).

use crate::config::{Config, keys};
use crate::identity::Identifiers;
use crate::template::{self, TemplateError};
use crate::worker::{Worker, WorkerKey};

/// Answers whether a UPN or mail address is already used by someone other than `by`.
/// Compare case-insensitively: Entra does.
pub trait NameRegistry {
    fn is_taken(&self, name: &str, by: &WorkerKey) -> bool;
}

impl<F: Fn(&str, &WorkerKey) -> bool> NameRegistry for F {
    fn is_taken(&self, name: &str, by: &WorkerKey) -> bool {
        self(name, by)
    }
}

/// No name is taken: for dry runs of a single worker and tests.
#[derive(Debug, Clone, Copy, Default)]
pub struct NothingTaken;

impl NameRegistry for NothingTaken {
    fn is_taken(&self, _: &str, _: &WorkerKey) -> bool {
        false
    }
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum IdentifierError {
    #[error(transparent)]
    Template(#[from] TemplateError),
    #[error("{template} rendered {value:?}, which is not a valid {what}: {problem}")]
    Invalid {
        template: String,
        value: String,
        what: &'static str,
        problem: String,
    },
    #[error(
        "no free {what} after {tried} candidates ({first} ... {last}); raise identity.max_counter or add a template"
    )]
    Exhausted {
        what: &'static str,
        tried: usize,
        first: String,
        last: String,
    },
}

/// The chosen identifiers and how they were found, for the explanation.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Chosen {
    pub identifiers: Identifiers,
    pub explanation: Vec<String>,
}

/// Picks the first free UPN (and mail, when mail templates are configured).
pub fn choose(
    config: &Config,
    worker: &Worker,
    names: &dyn NameRegistry,
) -> Result<Chosen, IdentifierError> {
    let mut explanation = Vec::new();
    let upn = first_free(
        config,
        worker,
        names,
        "UPN",
        config.identity.upn.len(),
        keys::upn,
        &mut explanation,
    )?;
    let mail = match &config.identity.mail {
        Some(templates) => first_free(
            config,
            worker,
            names,
            "mail",
            templates.len(),
            keys::mail,
            &mut explanation,
        )?,
        None => upn.clone(),
    };
    Ok(Chosen {
        identifiers: Identifiers { upn, mail },
        explanation,
    })
}

fn first_free(
    config: &Config,
    worker: &Worker,
    names: &dyn NameRegistry,
    what: &'static str,
    count: usize,
    key: fn(usize) -> String,
    explanation: &mut Vec<String>,
) -> Result<String, IdentifierError> {
    let engine = config.engine();
    let context = &template::context(worker, None);
    // Every template once without the counter, then the last one with n = 2, 3, ...
    let attempts = (0..count)
        .map(|index| (index, None))
        .chain((2..=config.identity.max_counter).map(|n| (count - 1, Some(n))));
    let mut tried: Vec<String> = Vec::new();
    let mut previous_in_last: Option<String> = None;
    for (index, n) in attempts {
        let template = key(index);
        let candidate = match n {
            Some(n) => engine.render(&template, &template::with_counter(context, n))?,
            None => engine.render(&template, context)?,
        };
        if index == count - 1
            && n.is_some()
            && previous_in_last.as_deref() == Some(candidate.as_str())
        {
            break; // the last template does not use `n`: nothing more to try
        }
        if index == count - 1 {
            previous_in_last = Some(candidate.clone());
        }
        if tried.iter().any(|t| t.eq_ignore_ascii_case(&candidate)) {
            continue;
        }
        let checked = match what {
            "UPN" => check_upn(&candidate),
            _ => check_address(&candidate),
        };
        if let Err(problem) = checked {
            return Err(IdentifierError::Invalid {
                template,
                value: candidate,
                what,
                problem,
            });
        }
        if names.is_taken(&candidate, &worker.key) {
            tried.push(candidate);
            continue;
        }
        let taken = if tried.is_empty() {
            String::new()
        } else {
            format!(" ({} taken)", tried.join(", "))
        };
        let counter = n.map(|n| format!(" with n = {n}")).unwrap_or_default();
        explanation.push(format!(
            "{what}: {template}{counter} gave {candidate}{taken}"
        ));
        return Ok(candidate);
    }
    Err(IdentifierError::Exhausted {
        what,
        tried: tried.len(),
        first: tried.first().cloned().unwrap_or_default(),
        last: tried.last().cloned().unwrap_or_default(),
    })
}

/// Entra's rules for a UPN: `local@domain`, local part of `A-Z a-z 0-9 ' . - _ ! # ^ ~`
/// (at most 64), no leading, trailing or doubled dot, and a dotted domain.
pub fn check_address(address: &str) -> Result<(), String> {
    let Some((local, domain)) = address.split_once('@') else {
        return Err("it has no @domain".into());
    };
    if local.is_empty() {
        return Err("the part before @ is empty".into());
    }
    if local.len() > 64 {
        return Err(format!(
            "the part before @ has {} characters (at most 64)",
            local.len()
        ));
    }
    if let Some(bad) = local
        .chars()
        .find(|c| !(c.is_ascii_alphanumeric() || "'.-_!#^~".contains(*c)))
    {
        return Err(format!(
            "{bad:?} is not allowed before @ (only A-Z a-z 0-9 ' . - _ ! # ^ ~)"
        ));
    }
    if local.starts_with('.') || local.ends_with('.') || local.contains("..") {
        return Err("a dot may not start, end or repeat in the part before @".into());
    }
    let domain_ok = domain.contains('.')
        && domain.split('.').all(|label| {
            !label.is_empty() && label.chars().all(|c| c.is_ascii_alphanumeric() || c == '-')
        });
    if !domain_ok {
        return Err(format!("{domain:?} is not a domain name"));
    }
    Ok(())
}

/// [`check_address`], and the UPN's domain has at most 48 characters (so a UPN has at most 113:
/// learn.microsoft.com/entra/identity/authentication/concept-sspr-policy, username policies).
pub fn check_upn(upn: &str) -> Result<(), String> {
    check_address(upn)?;
    match upn.split_once('@') {
        Some((_, domain)) if domain.len() > 48 => Err(format!(
            "the part after @ has {} characters (at most 48)",
            domain.len()
        )),
        _ => Ok(()),
    }
}
