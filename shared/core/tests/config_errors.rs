//! Broken `hrsync.toml` files and the exact error each one gets: the file, the line and
//! column where the TOML parser knows them, the dotted key, and what was expected.
//!
//! Cases marked "desired" assert the message a user deserves where config.rs does not give
//! it yet; the comment above each says what it prints today.

use hrsync_core::Config;

/// Parses `text` as `hrsync.toml` and asserts the whole error line.
#[track_caller]
fn assert_error(text: &str, expected: &str) {
    let error = Config::parse(text, "hrsync.toml").expect_err("the config should be rejected");
    assert_eq!(error.to_string(), expected);
}

#[test]
fn the_smallest_config_parses() {
    let text = r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
"#;
    Config::parse(text, "hrsync.toml").expect("a valid config");
}

#[test]
fn toml_syntax_error_points_where_the_parser_stopped() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"

[lifecycle]
leave_at = "17:00"
"#,
        "hrsync.toml:4:1: missing comma between array elements, expected `,`",
    );
}

#[test]
fn duplicate_key_names_the_key() {
    // Desired: config.rs prints "hrsync.toml:6:1: duplicate key" without saying which key.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = "17:00"
leave_at = "18:00"
"#,
        "hrsync.toml:6:1: duplicate key `leave_at`",
    );
}

#[test]
fn missing_identity_table() {
    assert_error(
        r#"[lifecycle]
leave_at = "17:00"
"#,
        "hrsync.toml:1:1: missing field `identity`",
    );
}

#[test]
fn identity_without_upn() {
    assert_error(
        r#"[lifecycle]
leave_at = "17:00"

[identity]
display_name = "{{ given_name }}"
"#,
        "hrsync.toml:4:1: identity: missing field `upn`",
    );
}

#[test]
fn unknown_top_level_table() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycel]
leave_at = "17:00"
"#,
        "hrsync.toml:4:2: lifecycel: unknown field `lifecycel`, expected one of `source`, `directory`, `identity`, `attributes`, `access`, `lifecycle`, `state`, `runtime`, `labels`, `notify`",
    );
}

#[test]
fn unknown_key_in_lifecycle() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
prehire_dayz = 7
"#,
        "hrsync.toml:5:1: lifecycle.prehire_dayz: unknown field `prehire_dayz`, expected one of `scope`, `default_time_zone`, `leave_at`, `start_at`, `prehire_days`, `immediate_termination_types`, `remove_access_after_days`, `delete_after_days`, `disable_on_leave`, `max_disables_per_hour`, `max_disables_percent`, `manager_fallback`",
    );
}

#[test]
fn unknown_manager_fallback() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
manager_fallback = "skip"
"#,
        "hrsync.toml:5:20: lifecycle.manager_fallback: unknown value `skip`, expected `none` or `skip-level`",
    );
}

#[test]
fn prehire_days_given_as_text() {
    // Desired: config.rs says "expected u32", a Rust type name, not what the key means.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
prehire_days = "seven"
"#,
        r#"hrsync.toml:5:16: lifecycle.prehire_days: invalid type: string "seven", expected a whole number of days (0 or more)"#,
    );
}

#[test]
fn prehire_days_negative() {
    // Desired: config.rs says "expected u32".
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
prehire_days = -1
"#,
        "hrsync.toml:5:16: lifecycle.prehire_days: invalid value: integer `-1`, expected a whole number of days (0 or more)",
    );
}

#[test]
fn leave_at_hour_out_of_range() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = "25:00"
"#,
        r#"hrsync.toml:5:12: lifecycle.leave_at: invalid time "25:00", expected "HH:MM" (24-hour, e.g. "17:00")"#,
    );
}

#[test]
fn leave_at_in_twelve_hour_form() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = "5pm"
"#,
        r#"hrsync.toml:5:12: lifecycle.leave_at: invalid time "5pm", expected "HH:MM" (24-hour, e.g. "17:00")"#,
    );
}

#[test]
fn leave_at_as_a_number() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = 17
"#,
        "hrsync.toml:5:12: lifecycle.leave_at: invalid type: integer `17`, expected a string",
    );
}

#[test]
fn unknown_time_zone() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
default_time_zone = "Europe/Londn"
"#,
        r#"hrsync.toml:5:21: lifecycle.default_time_zone: unknown time zone "Europe/Londn", expected an IANA name such as "Europe/London""#,
    );
}

#[test]
fn template_syntax_error() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
display_name = "{{ given_name }"
"#,
        r#"hrsync.toml:3:16: identity.display_name: bad template "{{ given_name }": syntax error (unexpected `}`, expected end of variable block)"#,
    );
}

const FIELDS: &str = "employee_id, given_name, family_name, middle_name, preferred_name, personal_email, work_email, status, hire_date, termination_date, termination_type, worker_type, job_title, department, division, cost_center, company, location, country, time_zone, manager_id";

#[test]
fn template_variable_typo() {
    assert_error(
        r#"[identity]
upn = ["{{ givenname|slug }}.{{ family_name|slug }}@acme.com"]
"#,
        &format!(
            r#"hrsync.toml:2:7: identity.upn[0]: bad template "{{{{ givenname|slug }}}}.{{{{ family_name|slug }}}}@acme.com": unknown variable `givenname`; templates can use the canonical worker fields ({FIELDS}), custom.<name> and n"#
        ),
    );
}

#[test]
fn attribute_template_variable_typo() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[attributes]
department = "{{ department }}"
jobTitle = "{{ title }}"
"#,
        &format!(
            r#"hrsync.toml:6:12: attributes.jobTitle: bad template "{{{{ title }}}}": unknown variable `title`; templates can use the canonical worker fields ({FIELDS}), custom.<name> and n"#
        ),
    );
}

#[test]
fn unknown_filter() {
    // Desired: config.rs says "unknown filter (filter slugify is unknown)": it repeats itself
    // and, unlike the unknown-variable message, does not say what can be used instead.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slugify }}@acme.com"]
"#,
        r#"hrsync.toml:2:7: identity.upn[0]: bad template "{{ given_name|slugify }}@acme.com": unknown filter `slugify`; templates can use slug, ascii, initial and the minijinja built-in filters"#,
    );
}

#[test]
fn condition_syntax_error() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
when = "department == 'Engineering'"
groups = ["g-eng"]

[[access]]
when = "department = 'Sales'"
groups = ["g-sales"]
"#,
        r#"hrsync.toml:9:8: access[1].when: bad condition "department = 'Sales'": syntax error (unexpected input after expression)"#,
    );
}

#[test]
fn condition_variable_typo() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
when = "departmnet == 'Sales'"
groups = ["g-sales"]
"#,
        &format!(
            r#"hrsync.toml:5:8: access[0].when: bad condition "departmnet == 'Sales'": unknown variable `departmnet`; templates can use the canonical worker fields ({FIELDS}), custom.<name> and n"#
        ),
    );
}

#[test]
fn scope_syntax_error() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
scope = "worker_type in ['Employee'"
"#,
        r#"hrsync.toml:5:9: lifecycle.scope: bad condition "worker_type in ['Employee'": syntax error (unexpected end of input, expected `,`)"#,
    );
}

#[test]
fn inline_client_secret() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = "hunter2"
"#,
        r#"hrsync.toml:8:17: directory.client_secret: expected a secret reference such as { env = "NAME" }, { ssm = "/path" } or { secret = "arn:..." }; secrets are never written inline"#,
    );
}

#[test]
fn unknown_secret_source() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = { vault = "x" }
"#,
        r#"hrsync.toml:8:17: directory.client_secret: unknown secret source `vault`, expected a secret reference such as { env = "NAME" }, { ssm = "/path" } or { secret = "arn:..." }; secrets are never written inline"#,
    );
}

#[test]
fn unknown_directory_kind() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "okta"
"#,
        "hrsync.toml:5:8: directory.kind: unknown value `okta`, expected `sandbox` or `graph`",
    );
}

#[test]
fn null_policy_of_the_wrong_type() {
    // Desired: config.rs says "wanted string or table", which names neither the type it got
    // nor the values it accepts.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "sandbox"
null_policy = 3
"#,
        "hrsync.toml:6:15: directory.null_policy: invalid type: integer `3`, expected `ignore` or `clear`",
    );
}

#[test]
fn graph_directory_without_tenant_id() {
    // Desired: config.rs drops the position ("hrsync.toml: directory.tenant_id: ..."); a
    // missing key points at its table, as the parser's own "missing field" errors do.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
client_id = "c"
client_secret = { env = "SECRET" }
"#,
        r#"hrsync.toml:4:1: directory.tenant_id: is required when kind = "graph""#,
    );
}

#[test]
fn graph_directory_with_both_credentials() {
    // Desired: config.rs drops the position.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = { env = "SECRET" }
certificate = { secret = "arn:aws:secretsmanager:eu-west-1:1:secret:cert" }
"#,
        r#"hrsync.toml:4:1: directory: kind = "graph" needs exactly one of client_secret, certificate or federated = "aws""#,
    );
}

#[test]
fn graph_directory_with_a_secret_and_federation() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = { env = "SECRET" }
federated = "aws"
"#,
        r#"hrsync.toml:4:1: directory: kind = "graph" needs exactly one of client_secret, certificate or federated = "aws""#,
    );
}

#[test]
fn graph_directory_without_a_credential() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
"#,
        r#"hrsync.toml:4:1: directory: kind = "graph" needs exactly one of client_secret, certificate or federated = "aws""#,
    );
}

#[test]
fn federation_other_than_aws() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
federated = "gcp"
"#,
        "hrsync.toml:8:13: directory.federated: unknown value `gcp`, expected `aws`",
    );
}

#[test]
fn federated_audience_without_federation() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = { env = "SECRET" }
federated_audience = "api://AzureADTokenExchange"
"#,
        r#"hrsync.toml:9:22: directory.federated_audience: applies only with federated = "aws""#,
    );
}

#[test]
fn federated_graph_directory_needs_no_secret() {
    let config = hrsync_core::Config::parse(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
federated = "aws"
"#,
        "hrsync.toml",
    )
    .expect("a valid config");
    assert_eq!(
        config.directory.federated,
        Some(hrsync_core::config::Federation::Aws)
    );
    assert_eq!(
        config.directory.federated_audience(),
        "api://AzureADTokenExchange"
    );
    assert_eq!(config.secret_refs().count(), 0);
}

#[test]
fn empty_upn_candidates() {
    // Desired: config.rs drops the position of `upn = []`.
    assert_error(
        r#"[identity]
upn = []
"#,
        "hrsync.toml:2:7: identity.upn: needs at least one candidate template",
    );
}

#[test]
fn empty_mail_candidates() {
    // Desired: config.rs drops the position of `mail = []`.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
mail = []
"#,
        "hrsync.toml:3:8: identity.mail: needs at least one candidate template, or leave it out to use the UPN",
    );
}

#[test]
fn max_counter_below_two() {
    // Desired: config.rs drops the position of the value.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
max_counter = 1
"#,
        "hrsync.toml:3:15: identity.max_counter: must be at least 2",
    );
}

#[test]
fn access_rule_granting_nothing() {
    // Desired: config.rs drops the position of the rule's [[access]] header.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
name = "engineers"
when = "department == 'Engineering'"
"#,
        "hrsync.toml:4:1: access[0]: grants nothing: give it groups or licenses",
    );
}

#[test]
fn access_rule_with_unknown_key() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
when = "department == 'Engineering'"
group = ["g-eng"]
"#,
        "hrsync.toml:6:1: access[0].group: unknown field `group`, expected one of `name`, `when`, `groups`, `licenses`",
    );
}

#[test]
fn access_groups_given_as_one_string() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
groups = "g-all"
"#,
        r#"hrsync.toml:5:10: access[0].groups: invalid type: string "g-all", expected a sequence"#,
    );
}

#[test]
fn source_without_kind() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.workday]
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
"#,
        "hrsync.toml:4:1: source.workday: missing field `kind`",
    );
}

#[test]
fn unknown_source_kind() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hr]
kind = "excel"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
"#,
        "hrsync.toml:5:8: source.hr.kind: unknown value `excel`, expected `csv`, `signed-json`, `bamboohr`, `hibob`, `personio`, `keka` or `scim`",
    );
}

#[test]
fn unknown_column_field() {
    // Desired: config.rs drops the position of the `dept` key.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.workday]
kind = "csv"

[source.workday.columns]
employee_id = "Employee ID"
given_name = "First Name"
family_name = "Last Name"
dept = "Department"
"#,
        &format!(
            "hrsync.toml:11:8: source.workday.columns.dept: unknown field `dept`, expected one of {FIELDS}, termination_time, as_of or custom.<name>"
        ),
    );
}

#[test]
fn missing_employee_id_column() {
    // Desired: config.rs drops the position of the `columns` table.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.workday]
kind = "csv"
columns = { given_name = "First Name", family_name = "Last Name" }
"#,
        r#"hrsync.toml:6:11: source.workday.columns: missing the column for `employee_id`, e.g. employee_id = "<header in the export>""#,
    );
}

#[test]
fn source_name_with_a_colon() {
    // Desired: config.rs drops the position of the [source."hr:eu"] header.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source."hr:eu"]
kind = "csv"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
"#,
        "hrsync.toml:4:1: source.hr:eu: a source name must be non-empty and contain no ':'",
    );
}

#[test]
fn signed_json_source_state_and_breakers_parse() {
    use hrsync_core::config::{SecretRef, SourceKind};

    let text = r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = { env = "HRSYNC_WEBHOOK_SECRET" }
writeback = false

[source.export]
kind = "csv"
complete = true
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }

[state]
path = "/var/lib/hrsync/state.db"

[lifecycle]
max_disables_per_hour = 25
max_disables_percent = 10
"#;
    let config = Config::parse(text, "hrsync.toml").expect("a valid config");
    let hooks = config.source("hooks").expect("the signed-json source");
    assert_eq!(hooks.kind, SourceKind::SignedJson);
    assert_eq!(
        hooks.webhook_secret,
        Some(SecretRef::Env("HRSYNC_WEBHOOK_SECRET".into()))
    );
    assert_eq!(hooks.writeback, Some(false));
    assert!(!hooks.complete);
    let export = config.source("export").expect("the csv source");
    assert_eq!(export.kind, SourceKind::Csv);
    assert!(export.complete);
    assert_eq!(export.webhook_secret, None);
    assert_eq!(export.writeback, None);
    assert_eq!(
        config.state.path.as_deref(),
        Some("/var/lib/hrsync/state.db")
    );
    assert_eq!(config.lifecycle.max_disables_per_hour, Some(25));
    assert_eq!(config.lifecycle.max_disables_percent, Some(10));
}

#[test]
fn defaults_of_the_new_keys() {
    let text = r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hr]
kind = "csv"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
"#;
    let config = Config::parse(text, "hrsync.toml").expect("a valid config");
    let hr = config.source("hr").expect("the source");
    assert!(!hr.complete);
    assert_eq!(hr.writeback, None);
    assert_eq!(hr.webhook_secret, None);
    assert_eq!(config.state.path, None);
    assert_eq!(config.lifecycle.max_disables_percent, None);
}

#[test]
fn signed_json_source_without_webhook_secret() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
"#,
        r#"hrsync.toml:4:1: source.hooks: kind = "signed-json" needs webhook_secret = { env = "NAME" } (or ssm / secret): the key that signs each delivery"#,
    );
}

#[test]
fn signed_json_webhook_secret_written_inline() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = "hunter2"
"#,
        r#"hrsync.toml:6:18: source.hooks.webhook_secret: expected a secret reference such as { env = "NAME" }, { ssm = "/path" } or { secret = "arn:..." }; secrets are never written inline"#,
    );
}

#[test]
fn webhook_secret_on_a_csv_source() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hr]
kind = "csv"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
webhook_secret = { env = "SECRET" }
"#,
        r#"hrsync.toml:7:18: source.hr.webhook_secret: applies to webhook sources only: a csv export is read from a file, not delivered to a webhook"#,
    );
}

#[test]
fn complete_on_a_signed_json_source() {
    // Rejected even when false: the key is written, so someone thinks it does something.
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = { env = "SECRET" }
complete = false
"#,
        r#"hrsync.toml:7:12: source.hooks.complete: applies to kind = "csv" only: a webhook delivery carries the workers that changed, so a worker missing from it has not left"#,
    );
}

#[test]
fn columns_on_a_signed_json_source() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = { env = "SECRET" }

[source.hooks.columns]
employee_id = "Id"
"#,
        r#"hrsync.toml:8:1: source.hooks.columns: applies to kind = "csv" only: webhook sources map the vendor's own fields"#,
    );
}

#[test]
fn date_format_and_delimiter_on_a_signed_json_source() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = { env = "SECRET" }
date_format = "%d/%m/%Y"
"#,
        r#"hrsync.toml:7:15: source.hooks.date_format: applies to kind = "csv" only: webhook sources read the vendor's own date format"#,
    );
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = { env = "SECRET" }
delimiter = ";"
"#,
        r#"hrsync.toml:7:13: source.hooks.delimiter: applies to kind = "csv" only: webhook sources receive JSON, not delimited text"#,
    );
}

#[test]
fn complete_given_as_text() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hr]
kind = "csv"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
complete = "yes"
"#,
        r#"hrsync.toml:7:12: source.hr.complete: invalid type: string "yes", expected a boolean"#,
    );
}

#[test]
fn writeback_given_as_text() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hooks]
kind = "signed-json"
webhook_secret = { env = "SECRET" }
writeback = "on"
"#,
        r#"hrsync.toml:7:13: source.hooks.writeback: invalid type: string "on", expected a boolean"#,
    );
}

#[test]
fn unknown_key_in_state() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[state]
file = ".hrsync/state.db"
"#,
        "hrsync.toml:5:1: state.file: unknown field `file`, expected `path`",
    );
}

#[test]
fn max_disables_percent_out_of_range() {
    for (value, column, got) in [
        ("0", 24, "integer `0`"),
        ("101", 24, "integer `101`"),
        ("-5", 24, "integer `-5`"),
    ] {
        assert_error(
            &format!(
                "[identity]\nupn = [\"{{{{ given_name|slug }}}}@acme.com\"]\n\n[lifecycle]\nmax_disables_percent = {value}\n"
            ),
            &format!(
                "hrsync.toml:5:{column}: lifecycle.max_disables_percent: invalid value: {got}, expected a whole percentage from 1 to 100"
            ),
        );
    }
}

#[test]
fn max_disables_percent_given_as_text() {
    assert_error(
        r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
max_disables_percent = "10%"
"#,
        r#"hrsync.toml:5:24: lifecycle.max_disables_percent: invalid type: string "10%", expected a whole percentage from 1 to 100"#,
    );
}

// ---- HR vendor sources -----------------------------------------------------------------

const UPN: &str = "[identity]\nupn = [\"{{ given_name|slug }}@acme.com\"]\n\n";

fn vendor(table: &str) -> String {
    format!("{UPN}[source.hr]\n{table}")
}

#[test]
fn vendor_sources_parse_with_writeback_on_by_default() {
    let text = format!(
        "{UPN}[source.bamboo]\nkind = \"bamboohr\"\nbase_url = \"https://acme.bamboohr.com/api/v1\"\nwebhook_secret = {{ env = \"W\" }}\napi_key = {{ env = \"K\" }}\npoll_every = \"15m\"\n\n\
         [source.bob]\nkind = \"hibob\"\nbase_url = \"https://api.hibob.com/v1\"\nwebhook_secret = {{ env = \"W\" }}\nservice_user_id = {{ env = \"U\" }}\ntoken = {{ ssm = \"/hrsync/bob\" }}\nwriteback = false\n\n\
         [source.personio]\nkind = \"personio\"\nbase_url = \"https://api.personio.de\"\nwebhook_secret = {{ env = \"W\" }}\nclient_id = {{ env = \"I\" }}\nclient_secret = {{ secret = \"arn:aws:secretsmanager:eu-west-1:1:secret:p\" }}\n\n\
         [source.keka]\nkind = \"keka\"\nbase_url = \"https://acme.keka.com/api/v1\"\nwebhook_secret = {{ env = \"W\" }}\nwebhook_header = \"X-Keka-Token\"\nclient_id = {{ env = \"I\" }}\nclient_secret = {{ env = \"S\" }}\napi_key = {{ env = \"K\" }}\n\n\
         [source.scim]\nkind = \"scim\"\nwebhook_secret = {{ env = \"T\" }}\n"
    );
    let config = Config::parse(&text, "hrsync.toml").expect("a valid config");
    let bamboo = config.source("bamboo").unwrap();
    assert_eq!(bamboo.kind, hrsync_core::config::SourceKind::BambooHr);
    assert!(
        bamboo.writes_back(),
        "on by default where the vendor takes it"
    );
    assert_eq!(
        bamboo.poll_interval(),
        Some(std::time::Duration::from_secs(900))
    );
    assert!(!config.source("bob").unwrap().writes_back(), "turned off");
    assert!(config.source("personio").unwrap().writes_back());
    assert!(
        !config.source("keka").unwrap().writes_back(),
        "Keka's API takes no email"
    );
    assert!(!config.source("scim").unwrap().writes_back());
    assert_eq!(config.source("scim").unwrap().poll_interval(), None);
}

#[test]
fn a_vendor_source_without_its_api_credential() {
    assert_error(
        &vendor(
            "kind = \"bamboohr\"\nbase_url = \"https://acme.bamboohr.com/api/v1\"\nwebhook_secret = { env = \"W\" }\n",
        ),
        r#"hrsync.toml:4:1: source.hr: kind = "bamboohr" needs api_key = { env = "NAME" } (or ssm / secret) for its API"#,
    );
    assert_error(
        &vendor(
            "kind = \"hibob\"\nbase_url = \"https://api.hibob.com/v1\"\nwebhook_secret = { env = \"W\" }\nservice_user_id = { env = \"U\" }\n",
        ),
        r#"hrsync.toml:4:1: source.hr: kind = "hibob" needs token = { env = "NAME" } (or ssm / secret) for its API"#,
    );
}

#[test]
fn a_vendor_source_without_base_url_or_webhook_secret() {
    assert_error(
        &vendor(
            "kind = \"personio\"\nwebhook_secret = { env = \"W\" }\nclient_id = { env = \"I\" }\nclient_secret = { env = \"S\" }\n",
        ),
        r#"hrsync.toml:4:1: source.hr: kind = "personio" needs base_url, the vendor's API root (e.g. https://api.personio.de)"#,
    );
    assert_error(
        &vendor(
            "kind = \"personio\"\nbase_url = \"https://api.personio.de\"\nclient_id = { env = \"I\" }\nclient_secret = { env = \"S\" }\n",
        ),
        r#"hrsync.toml:4:1: source.hr: kind = "personio" needs webhook_secret = { env = "NAME" } (or ssm / secret): the token Personio sends in Authorization"#,
    );
    assert_error(
        &vendor(
            "kind = \"bamboohr\"\nbase_url = \"acme.bamboohr.com\"\nwebhook_secret = { env = \"W\" }\napi_key = { env = \"K\" }\n",
        ),
        r#"hrsync.toml:6:12: source.hr.base_url: "acme.bamboohr.com" is not an http(s) URL"#,
    );
}

#[test]
fn keys_of_another_vendor_are_refused() {
    assert_error(
        &vendor(
            "kind = \"hibob\"\nbase_url = \"https://api.hibob.com/v1\"\nwebhook_secret = { env = \"W\" }\nservice_user_id = { env = \"U\" }\ntoken = { env = \"T\" }\napi_key = { env = \"K\" }\n",
        ),
        r#"hrsync.toml:10:11: source.hr.api_key: does not apply to kind = "hibob""#,
    );
    assert_error(
        &vendor(
            "kind = \"scim\"\nwebhook_secret = { env = \"T\" }\nbase_url = \"https://example.com\"\n",
        ),
        r#"hrsync.toml:7:12: source.hr.base_url: does not apply to kind = "scim": it has no API to call"#,
    );
    assert_error(
        &vendor(
            "kind = \"keka\"\nbase_url = \"https://acme.keka.com/api/v1\"\nwebhook_secret = { env = \"W\" }\nclient_id = { env = \"I\" }\nclient_secret = { env = \"S\" }\napi_key = { env = \"K\" }\nwriteback = true\n",
        ),
        r#"hrsync.toml:11:13: source.hr.writeback: kind = "keka" cannot take identifiers back (no documented API call for it)"#,
    );
}

#[test]
fn employee_id_field_must_fit_the_directory_and_apply_to_the_kind() {
    let bob = "kind = \"hibob\"\nbase_url = \"https://api.hibob.com/v1\"\nwebhook_secret = { env = \"W\" }\nservice_user_id = { env = \"U\" }\ntoken = { env = \"T\" }\n";
    assert_error(
        &vendor(&format!("{bob}employee_id_field = \"root.id\"\n")),
        r#"hrsync.toml:10:21: source.hr.employee_id_field: root.id is Bob's backend id (19 digits, e.g. 3332883884017713238); the directory's employeeId holds at most 16 characters: use work.employeeIdInCompany (the default) or another field that fits"#,
    );
    assert_error(
        &vendor(
            "kind = \"keka\"\nbase_url = \"https://acme.keka.com/api/v1\"\nwebhook_secret = { env = \"W\" }\nclient_id = { env = \"I\" }\nclient_secret = { env = \"S\" }\napi_key = { env = \"K\" }\nemployee_id_field = \"id\"\n",
        ),
        r#"hrsync.toml:11:21: source.hr.employee_id_field: id is Keka's employee GUID (36 characters); the directory's employeeId holds at most 16 characters: use employeeNumber (the default) or another field that fits"#,
    );
    assert_error(
        &vendor(
            "kind = \"scim\"\nwebhook_secret = { env = \"T\" }\nemployee_id_field = \"userName\"\n",
        ),
        r#"hrsync.toml:7:21: source.hr.employee_id_field: kind = "scim" takes one of externalId, employeeNumber"#,
    );
    assert_error(
        &vendor(
            "kind = \"personio\"\nbase_url = \"https://api.personio.de\"\nwebhook_secret = { env = \"W\" }\nclient_id = { env = \"I\" }\nclient_secret = { env = \"S\" }\nemployee_id_field = \"employee_number\"\n",
        ),
        r#"hrsync.toml:10:21: source.hr.employee_id_field: kind = "personio" takes id (the person id) or custom_attributes.<attribute id>"#,
    );
    assert_error(
        &vendor(
            "kind = \"signed-json\"\nwebhook_secret = { env = \"T\" }\nemployee_id_field = \"id\"\n",
        ),
        r#"hrsync.toml:7:21: source.hr.employee_id_field: does not apply to kind = "signed-json": its records carry employee_id themselves"#,
    );
    // A field that may fit is taken: each worker's id is checked when their record is read.
    let text = vendor(&format!(
        "{bob}employee_id_field = \"work.custom.payrollId\"\n"
    ));
    let config = Config::parse(&text, "hrsync.toml").expect("a valid config");
    assert_eq!(
        config.source("hr").unwrap().employee_id_field(),
        Some("work.custom.payrollId")
    );
}

#[test]
fn the_employee_id_attribute_is_always_the_employee_id() {
    // Any other value would be written where hrsync looks accounts up, unchecked.
    assert_error(
        &format!("{UPN}[attributes]\nemployeeId = \"{{{{ custom.badge }}}}\"\n"),
        r#"hrsync.toml:5:14: attributes.employeeId: is how hrsync finds each worker's account, so it is always the worker's employee_id: choose the HR field with source.<name>.employee_id_field, and remove this line"#,
    );
    // The line older configs carry says just that, and still loads.
    Config::parse(
        &format!("{UPN}[attributes]\nemployeeId = \"{{{{employee_id }}}}\"\n"),
        "hrsync.toml",
    )
    .expect("the redundant line loads");
}

#[test]
fn an_employee_id_prefix_is_short_visible_and_each_sources_own() {
    let sj = |name: &str, prefix: &str| {
        format!(
            "[source.{name}]\nkind = \"signed-json\"\nwebhook_secret = {{ env = \"T\" }}\nemployee_id_prefix = \"{prefix}\"\n\n"
        )
    };
    assert_error(
        &format!("{UPN}{}", sj("hr", "ACQUIRED-")),
        r#"hrsync.toml:7:22: source.hr.employee_id_prefix: must be 1 to 8 visible ASCII characters, no quotes or backslash (e.g. "C-"): it is part of each account's employeeId"#,
    );
    assert_error(
        &format!("{UPN}{}", sj("hr", "C 1")),
        r#"hrsync.toml:7:22: source.hr.employee_id_prefix: must be 1 to 8 visible ASCII characters, no quotes or backslash (e.g. "C-"): it is part of each account's employeeId"#,
    );
    assert_error(
        &format!("{UPN}{}{}", sj("a", "C-"), sj("b", "C-")),
        r#"hrsync.toml:12:22: source.b.employee_id_prefix: "C-" is source.a's prefix too: each source needs its own"#,
    );
    let config = Config::parse(
        &format!("{UPN}{}{}", sj("a", "A-"), sj("b", "B-")),
        "hrsync.toml",
    )
    .expect("distinct prefixes load");
    assert_eq!(
        config.source("b").unwrap().employee_id_prefix.as_deref(),
        Some("B-")
    );
}

#[test]
fn poll_every_needs_a_change_feed_and_a_sane_interval() {
    let bamboo = "kind = \"bamboohr\"\nbase_url = \"https://acme.bamboohr.com/api/v1\"\nwebhook_secret = { env = \"W\" }\napi_key = { env = \"K\" }\n";
    assert_error(
        &vendor(&format!("{bamboo}poll_every = \"5s\"\n")),
        r#"hrsync.toml:9:14: source.hr.poll_every: "5s" is not a duration of 10 seconds or more, e.g. "15m" or "1h""#,
    );
    assert_error(
        &vendor(&format!("{bamboo}poll_every = \"often\"\n")),
        r#"hrsync.toml:9:14: source.hr.poll_every: "often" is not a duration of 10 seconds or more, e.g. "15m" or "1h""#,
    );
    assert_error(
        &vendor("kind = \"scim\"\nwebhook_secret = { env = \"T\" }\npoll_every = \"15m\"\n"),
        r#"hrsync.toml:7:14: source.hr.poll_every: does not apply to kind = "scim": it has no change feed to poll"#,
    );
}

const SMALLEST: &str = r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
"#;

#[test]
fn the_aws_runtime_takes_a_stack_or_every_resource_name() {
    for runtime in [
        "[runtime]\nkind = \"aws\"\nstack = \"hrsync\"\n",
        "[runtime]\nkind = \"aws\"\ntable = \"t\"\nschedule_group = \"g\"\n[runtime.queues]\nhr-events = \"u1\"\nworker-events = \"u2\"\ndirectory = \"u3\"\nwriteback = \"u4\"\n",
        "[runtime]\nkind = \"local\"\n",
    ] {
        Config::parse(&format!("{SMALLEST}{runtime}"), "hrsync.toml")
            .unwrap_or_else(|e| panic!("{runtime}: {e}"));
    }
    let cases = [
        (
            "[runtime]\nkind = \"aws\"\n",
            "hrsync.toml:3:1: runtime: kind = \"aws\" needs stack = \"NAME\" (the deployed stack), or table, queues and schedule_group (missing: table, queues, schedule_group)",
        ),
        (
            "[runtime]\nkind = \"aws\"\nstack = \"hrsync\"\ntable = \"t\"\n",
            "hrsync.toml:6:9: runtime.table: comes from the stack's outputs: give stack, or table, queues and schedule_group, not both",
        ),
        (
            "[runtime]\nstack = \"hrsync\"\n",
            "hrsync.toml:4:9: runtime.stack: names AWS resources: it needs kind = \"aws\"",
        ),
        (
            "[runtime]\nkind = \"aws\"\ntable = \"t\"\nschedule_group = \"g\"\n[runtime.queues]\nhr-events = \"u1\"\nworker-events = \"u2\"\ndirectory = \"u3\"\n",
            "hrsync.toml:7:1: runtime.queues.writeback: is missing: give each queue's URL",
        ),
        (
            "[runtime]\nkind = \"aws\"\ntable = \"t\"\nschedule_group = \"g\"\n[runtime.queues]\nhr_events = \"u1\"\n",
            "hrsync.toml:8:13: runtime.queues.hr_events: is not a queue of hrsync (one of hr-events, worker-events, directory, writeback)",
        ),
    ];
    for (runtime, expected) in cases {
        assert_error(&format!("{SMALLEST}{runtime}"), expected);
    }
}
