//! Throughput of the mapping hot path: `decide` + `plan` for a full import of 10,000 workers,
//! many sharing a name so the unique-name search runs, against one registry of names taken so
//! far in the run.

use std::cell::RefCell;
use std::collections::HashSet;
use std::hint::black_box;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use hrsync_core::{Config, Status, Worker, WorkerKey, WorkerState, decide, plan};
use jiff::civil::Date;
use jiff::{Span, Timestamp};

const WORKERS: usize = 10_000;

const CONFIG: &str = r#"
[directory]
kind = "sandbox"

[identity]
upn = [
  "{{ given_name|slug }}.{{ family_name|slug }}@acme.com",
  "{{ given_name|initial|slug }}{{ family_name|slug }}@acme.com",
  "{{ given_name|slug }}.{{ family_name|slug }}{{ n }}@acme.com",
]
mail = [
  "{{ (preferred_name or given_name)|slug }}.{{ family_name|slug }}@acme.com",
  "{{ (preferred_name or given_name)|slug }}.{{ family_name|slug }}{{ n }}@acme.com",
]
display_name = "{{ preferred_name or given_name }} {{ family_name }}"

[attributes]
department = "{{ department }}"
jobTitle = "{{ job_title }}"
usageLocation = "{{ country }}"
companyName = "{{ company or 'Acme' }}"
officeLocation = "{{ location }}"
employeeType = "{{ worker_type }}"

[[access]]
name = "everyone"
groups = ["all-staff"]
licenses = ["m365-e3"]

[[access]]
name = "engineering"
when = "department == 'Engineering'"
groups = ["eng", "github"]

[[access]]
name = "sales in the Americas"
when = "department == 'Sales' and country in ['US', 'CA', 'BR']"
groups = ["sales-amer", "crm"]

[[access]]
name = "finance"
when = "department == 'Finance' or cost_center == 'CC-FIN'"
groups = ["finance"]
licenses = ["powerbi-pro"]

[[access]]
name = "contractors"
when = "worker_type == 'Contractor'"
groups = ["contractors"]

[lifecycle]
scope = "worker_type in ['Employee', 'Contractor']"
default_time_zone = "Europe/London"
prehire_days = 7
leave_at = "17:00"
remove_access_after_days = 0
"#;

const GIVEN: &[&str] = &[
    "Ada",
    "José",
    "Zoë",
    "Mary Ann",
    "Li",
    "Oluwaseun",
    "Siobhán",
    "Łukasz",
    "Priya",
    "Mohammed",
    "Anna",
    "John",
    "Wei",
    "Fatima",
    "Søren",
    "Chloé",
    "Hiroshi",
    "María José",
    "Văn An",
    "Ian",
    "Emma",
    "Noah",
    "Olivia",
    "Liam",
    "Sofia",
    "Lucas",
    "Amara",
    "Kenji",
    "Aisha",
    "Mateo",
    "Ingrid",
    "Rahul",
    "Zainab",
    "Tomás",
    "Elif",
    "Dmitri",
    "Leilani",
    "Kwame",
    "Ananya",
    "Björn",
];
const FAMILY: &[&str] = &[
    "Lovelace",
    "García",
    "O'Brien",
    "van der Berg",
    "Nguyen",
    "Smith",
    "Müller",
    "Kowalski",
    "Patel",
    "Al-Hassan",
    "Johnson",
    "Żółć",
    "Tanaka",
    "Da Silva",
    "Ó Súilleabháin",
    "Brown",
    "Kim",
    "Singh",
    "Rossi",
    "Dubois",
    "Jensen",
    "Okafor",
    "Yılmaz",
    "Novak",
    "Hernández",
    "Williams",
    "Chen",
    "Schmidt",
    "Ivanova",
    "MacDonald",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Finance",
    "People",
    "Support",
    "Legal",
];
const COUNTRIES: &[&str] = &["US", "GB", "IN", "BR", "DE", "AU", "CA"];
const ZONES: &[&str] = &[
    "America/New_York",
    "Europe/London",
    "Asia/Kolkata",
    "America/Sao_Paulo",
    "Europe/Berlin",
    "Australia/Sydney",
    "America/Toronto",
];
const TITLES: &[&str] = &[
    "Engineer",
    "Account Executive",
    "Analyst",
    "Manager",
    "Specialist",
];

fn pick<'a>(items: &[&'a str], index: usize) -> &'a str {
    items[index % items.len()]
}

/// 10,000 workers: 1,200 distinct names (8 or 9 people per name), a mix of joiners,
/// pre-hires, leavers and contractors across zones and departments.
fn workers(now: Timestamp) -> Vec<Worker> {
    let today: Date = now.to_zoned_datetime(jiff::tz::TimeZone::UTC).date();
    let day = |offset: i64| {
        today
            .checked_add(Span::new().days(offset))
            .expect("a date near today")
    };
    (0..WORKERS)
        .map(|i| {
            let key = WorkerKey::new("hr", format!("{:05}", 10_000 + i));
            let (given, family) = (pick(GIVEN, i), pick(FAMILY, i / 40 * 7 + i));
            let mut worker = Worker::new(key, given, family, now);
            worker.preferred_name = (i % 11 == 0).then(|| "Sam".to_owned());
            worker.department = Some(pick(DEPARTMENTS, i * 3).to_owned());
            worker.country = Some(pick(COUNTRIES, i).to_owned());
            worker.time_zone = Some(pick(ZONES, i).to_owned());
            worker.job_title = Some(pick(TITLES, i / 5).to_owned());
            worker.worker_type =
                Some(if i % 9 == 0 { "Contractor" } else { "Employee" }.to_owned());
            worker.cost_center = Some(format!("CC-{}", i % 40));
            worker.manager_id = (i >= 10).then(|| format!("{:05}", 10_000 + i / 10));
            worker.hire_date = Some(day(-((i % 2000) as i64) + 10));
            if i % 17 == 0 {
                worker.status = Status::Terminated;
                worker.termination_date = Some(day((i % 30) as i64 - 15));
            }
            worker
        })
        .collect()
}

fn decide_and_plan_all(config: &Config, workers: &[Worker], now: Timestamp) -> usize {
    let taken: RefCell<HashSet<String>> = RefCell::new(HashSet::with_capacity(2 * WORKERS));
    let registry = |name: &str, _: &WorkerKey| taken.borrow().contains(&name.to_lowercase());
    let state = WorkerState::default();
    let mut ops = 0;
    for worker in workers {
        let decision = decide(worker, &state, config, now, &registry).expect("a valid worker");
        if let Some(ids) = &decision.state.identifiers {
            let mut taken = taken.borrow_mut();
            taken.insert(ids.upn.to_lowercase());
            taken.insert(ids.mail.to_lowercase());
        }
        ops += plan(decision.desired.as_ref(), None).len();
        black_box(&decision);
    }
    ops
}

fn bench(c: &mut Criterion) {
    let config = Config::parse(CONFIG, "bench.toml").expect("the bench config");
    let now: Timestamp = "2026-06-15T12:00:00Z".parse().expect("a timestamp");
    let workers = workers(now);
    let mut group = c.benchmark_group("decide_plan");
    group.throughput(Throughput::Elements(WORKERS as u64));
    group.sample_size(10);
    group.bench_function("10k_workers", |b| {
        b.iter(|| decide_and_plan_all(&config, black_box(&workers), now))
    });
    group.finish();
}

criterion_group!(benches, bench);
criterion_main!(benches);
