use hrsync_core::Config;

const CASES: &[(&str, &str)] = &[
("unknown_lifecycle_key", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
prehire_dayz = 7
"#),
("prehire_days_string", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
prehire_days = "seven"
"#),
("prehire_days_negative", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
prehire_days = -1
"#),
("leave_at_25", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = "25:00"
"#),
("leave_at_5pm", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = "5pm"
"#),
("leave_at_int", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = 17
"#),
("unknown_zone", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
default_time_zone = "Europe/Londn"
"#),
("template_syntax", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
display_name = "{{ given_name }"
"#),
("template_unknown_var", r#"[identity]
upn = ["{{ givenname|slug }}.{{ family_name|slug }}@acme.com"]
"#),
("template_unknown_filter", r#"[identity]
upn = ["{{ given_name|slugify }}@acme.com"]
"#),
("attribute_unknown_var", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[attributes]
department = "{{ department }}"
jobTitle = "{{ title }}"
"#),
("condition_syntax", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
when = "department == 'Engineering'"
groups = ["g-eng"]

[[access]]
when = "department = 'Sales'"
groups = ["g-sales"]
"#),
("condition_unknown_var", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
when = "departmnet == 'Sales'"
groups = ["g-sales"]
"#),
("scope_syntax", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
scope = "worker_type in ['Employee'"
"#),
("inline_secret", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = "hunter2"
"#),
("unknown_secret_source", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = { vault = "x" }
"#),
("graph_missing_tenant", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
client_id = "c"
client_secret = { env = "SECRET" }
"#),
("graph_both_credentials", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "graph"
tenant_id = "t"
client_id = "c"
client_secret = { env = "SECRET" }
certificate = { secret = "arn:aws:secretsmanager:eu-west-1:1:secret:cert" }
"#),
("directory_unknown_kind", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[directory]
kind = "okta"
"#),
("empty_upn", r#"[identity]
upn = []
"#),
("access_grants_nothing", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
name = "engineers"
when = "department == 'Engineering'"
"#),
("access_unknown_key", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[[access]]
when = "department == 'Engineering'"
group = ["g-eng"]
"#),
("unknown_column_field", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.workday]
kind = "csv"

[source.workday.columns]
employee_id = "Employee ID"
given_name = "First Name"
family_name = "Last Name"
dept = "Department"
"#),
("missing_employee_id_column", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.workday]
kind = "csv"
columns = { given_name = "First Name", family_name = "Last Name" }
"#),
("source_unknown_kind", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source.hr]
kind = "excel"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
"#),
("toml_syntax", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"

[lifecycle]
leave_at = "17:00"
"#),
("toml_duplicate_key", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycle]
leave_at = "17:00"
leave_at = "18:00"
"#),
("missing_identity", r#"[lifecycle]
leave_at = "17:00"
"#),
("max_counter_1", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
max_counter = 1
"#),
("empty_mail", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]
mail = []
"#),
("unknown_top_level", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[lifecycel]
leave_at = "17:00"
"#),
("source_name_colon", r#"[identity]
upn = ["{{ given_name|slug }}@acme.com"]

[source."hr:eu"]
kind = "csv"
columns = { employee_id = "Id", given_name = "First Name", family_name = "Last Name" }
"#),
];

#[test]
fn probe() {
    for (name, text) in CASES {
        match Config::parse(text, "hrsync.toml") {
            Ok(_) => println!("{name}: OK (no error!)"),
            Err(e) => println!("{name}: {e}\n    {e:?}"),
        }
    }
}
