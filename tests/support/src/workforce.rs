//! A synthetic workforce for the end-to-end benchmark and the request-economy tests: the same
//! people for the same seed, with a manager chain (a CEO, a head per department, teams of five
//! under each manager), three groups per employee (everyone, their department, their location)
//! and a licence (Microsoft 365 E3 for employees, F3 for contractors), written as an export in
//! the columns of `examples/hrsync.toml`; and a day of churn over it (joiners, movers, manager
//! changes, renames, leavers).

use std::fmt::Write as _;

/// Employee ids start here, so they sort and read like a real HR system's.
const FIRST_ID: u32 = 100_000;

pub const ALL_STAFF: (&str, &str) = ("5a1e0000-0000-4000-8000-000000000001", "All Staff");
pub const CONTRACTORS: (&str, &str) = ("5a1e0000-0000-4000-8000-000000000002", "Contractors");
/// Department, its group.
pub const DEPARTMENTS: [(&str, &str); 8] = [
    ("Engineering", "5a1e0000-0000-4000-8000-0000000000d1"),
    ("Sales", "5a1e0000-0000-4000-8000-0000000000d2"),
    ("Marketing", "5a1e0000-0000-4000-8000-0000000000d3"),
    ("Finance", "5a1e0000-0000-4000-8000-0000000000d4"),
    ("People", "5a1e0000-0000-4000-8000-0000000000d5"),
    ("Support", "5a1e0000-0000-4000-8000-0000000000d6"),
    ("Operations", "5a1e0000-0000-4000-8000-0000000000d7"),
    ("Legal", "5a1e0000-0000-4000-8000-0000000000d8"),
];
/// City, country, IANA zone, its group.
pub const LOCATIONS: [(&str, &str, &str, &str); 4] = [
    (
        "London",
        "GB",
        "Europe/London",
        "5a1e0000-0000-4000-8000-0000000000c1",
    ),
    (
        "New York",
        "US",
        "America/New_York",
        "5a1e0000-0000-4000-8000-0000000000c2",
    ),
    (
        "Berlin",
        "DE",
        "Europe/Berlin",
        "5a1e0000-0000-4000-8000-0000000000c3",
    ),
    (
        "Sydney",
        "AU",
        "Australia/Sydney",
        "5a1e0000-0000-4000-8000-0000000000c4",
    ),
];
/// skuId, skuPartNumber (Microsoft's own ids for Microsoft 365 E3 and F3).
pub const E3: (&str, &str) = ("05e9a617-0261-4cee-bb44-138d3ef5d965", "SPE_E3");
pub const F3: (&str, &str) = ("66b55226-6b4f-492c-910c-a3b7a3c9d993", "SPE_F1");
/// Licensing groups, for group-based licensing: (group id, name, skuId).
pub const E3_GROUP: (&str, &str, &str) = (
    "5a1e0000-0000-4000-8000-0000000000e3",
    "Licence: Microsoft 365 E3",
    E3.0,
);
pub const F3_GROUP: (&str, &str, &str) = (
    "5a1e0000-0000-4000-8000-0000000000f3",
    "Licence: Microsoft 365 F3",
    F3.0,
);

const GIVEN: [&str; 24] = [
    "Ada",
    "Grace",
    "Alan",
    "Margaret",
    "Linus",
    "Barbara",
    "Dennis",
    "Frances",
    "Ken",
    "Radia",
    "Tim",
    "Hedy",
    "Edsger",
    "Katherine",
    "John",
    "Mary",
    "Niklaus",
    "Sophie",
    "Bjarne",
    "Jean",
    "Guido",
    "Karen",
    "Donald",
    "Zoë",
];
const FAMILY: [&str; 30] = [
    "Lovelace",
    "Hopper",
    "Turing",
    "Hamilton",
    "Torvalds",
    "Liskov",
    "Ritchie",
    "Allen",
    "Thompson",
    "Perlman",
    "Berners-Lee",
    "Lamarr",
    "Dijkstra",
    "Johnson",
    "McCarthy",
    "Jackson",
    "Wirth",
    "Wilson",
    "Stroustrup",
    "Sammet",
    "van Rossum",
    "Spärck Jones",
    "Knuth",
    "O'Brien",
    "García",
    "Okafor",
    "Chen",
    "Nakamura",
    "Müller",
    "Kowalski",
];

/// How licences are granted.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Licensing {
    /// An access rule grants the skuId: one `assignLicense` per worker.
    Direct,
    /// An access rule grants a licensing group, which holds the licence (Entra's group-based
    /// licensing): the membership is the only write.
    Groups,
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Person {
    pub id: u32,
    pub given: String,
    pub family: String,
    pub department: usize,
    pub location: usize,
    pub title: String,
    pub contractor: bool,
    pub manager: Option<u32>,
    pub hire_date: String,
    pub termination_date: Option<String>,
}

#[derive(Debug, Clone)]
pub struct Workforce {
    pub people: Vec<Person>,
    rng: u64,
}

/// What a day of churn changed.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Churn {
    pub joiners: usize,
    pub movers: usize,
    pub manager_changes: usize,
    pub renames: usize,
    pub leavers: usize,
}

impl Workforce {
    /// `size` people, the same for the same `seed`.
    pub fn new(size: usize, seed: u64) -> Self {
        let mut workforce = Self {
            people: Vec::with_capacity(size),
            rng: seed.wrapping_mul(0x9E37_79B9_7F4A_7C15) | 1,
        };
        for _ in 0..size {
            workforce.hire("2024-03-04");
        }
        workforce
    }

    /// xorshift64*: reproducible without a dependency.
    fn next(&mut self, below: usize) -> usize {
        self.rng ^= self.rng >> 12;
        self.rng ^= self.rng << 25;
        self.rng ^= self.rng >> 27;
        let value = self.rng.wrapping_mul(0x2545_F491_4F6C_DD1D);
        (value % below as u64) as usize
    }

    /// Adds a person: the first is the CEO, the next eight head a department each, the rest
    /// join teams of five under a manager of their department.
    fn hire(&mut self, hire_date: &str) -> u32 {
        let index = self.people.len();
        let id = FIRST_ID + index as u32;
        let (department, manager, title) = match index {
            0 => (0, None, "Chief Executive Officer".to_owned()),
            1..=8 => (
                index - 1,
                Some(FIRST_ID),
                format!("Head of {}", DEPARTMENTS[index - 1].0),
            ),
            _ => {
                let department = self.next(DEPARTMENTS.len());
                let team: Vec<u32> = self
                    .people
                    .iter()
                    .filter(|p| {
                        p.department == department
                            && p.id != FIRST_ID
                            && p.termination_date.is_none()
                    })
                    .map(|p| p.id)
                    .collect();
                // The n-th member of a department reports to its (n-1)/5-th: teams of five.
                let manager = team[(team.len().saturating_sub(1)) / 5];
                (
                    department,
                    Some(manager),
                    format!("{} Specialist", DEPARTMENTS[department].0),
                )
            }
        };
        let person = Person {
            id,
            given: GIVEN[self.next(GIVEN.len())].to_owned(),
            family: FAMILY[self.next(FAMILY.len())].to_owned(),
            department,
            location: self.next(LOCATIONS.len()),
            title,
            contractor: index > 8 && self.next(10) == 0,
            manager,
            hire_date: hire_date.to_owned(),
            termination_date: None,
        };
        self.people.push(person);
        id
    }

    /// People who may change without breaking the chain: not the CEO or a head, not leaving.
    fn staff(&self) -> Vec<usize> {
        (9..self.people.len())
            .filter(|&i| self.people[i].termination_date.is_none())
            .collect()
    }

    /// Picks `count` distinct indexes of `from` not in `taken` (fewer when fewer are left), and
    /// takes them.
    fn pick(&mut self, from: &[usize], taken: &mut Vec<usize>, count: usize) -> Vec<usize> {
        let left = from.iter().filter(|i| !taken.contains(i)).count();
        let count = count.min(left);
        let mut picked = Vec::new();
        while picked.len() < count {
            let candidate = from[self.next(from.len())];
            if !taken.contains(&candidate) {
                taken.push(candidate);
                picked.push(candidate);
            }
        }
        picked
    }

    /// One day of HR changes, `today` being its date (`YYYY-MM-DD`) and `yesterday` the last
    /// day of its leavers, each worker in one category at most: 25 joiners, 40 movers (another
    /// department and job title), 20 manager changes, 10 renames (a new family name), 15
    /// leavers (fewer in a workforce too small for them).
    pub fn churn(&mut self, today: &str, yesterday: &str) -> Churn {
        let staff = self.staff();
        let mut taken = Vec::new();
        let movers = self.pick(&staff, &mut taken, 40);
        let managed = self.pick(&staff, &mut taken, 20);
        let renamed = self.pick(&staff, &mut taken, 10);
        // Leavers manage nobody: their reports would be left with a disabled manager.
        let managers: Vec<u32> = self.people.iter().filter_map(|p| p.manager).collect();
        let leaver_pool: Vec<usize> = staff
            .iter()
            .copied()
            .filter(|&i| !managers.contains(&self.people[i].id))
            .collect();
        let leavers = self.pick(&leaver_pool, &mut taken, 15);
        for &i in &movers {
            let department = (self.people[i].department + 1 + self.next(DEPARTMENTS.len() - 1))
                % DEPARTMENTS.len();
            // A mover changes department and title; a new manager is the next category's.
            let person = &mut self.people[i];
            person.department = department;
            person.title = format!("{} Specialist", DEPARTMENTS[department].0);
        }
        for &i in &managed {
            let department = self.people[i].department;
            // Another manager of the same department: its head, or the head's first report.
            let head = FIRST_ID + 1 + department as u32;
            let person = &mut self.people[i];
            person.manager = match person.manager {
                Some(current) if current == head => {
                    // Still someone of the department who is not this person.
                    Some(FIRST_ID)
                }
                _ => Some(head),
            };
        }
        for &i in &renamed {
            let family = FAMILY[self.next(FAMILY.len())];
            let person = &mut self.people[i];
            person.family = format!("{family}-{}", person.family);
        }
        for &i in &leavers {
            self.people[i].termination_date = Some(yesterday.to_owned());
        }
        for _ in 0..25 {
            self.hire(today);
        }
        Churn {
            joiners: 25,
            movers: movers.len(),
            manager_changes: managed.len(),
            renames: renamed.len(),
            leavers: leavers.len(),
        }
    }

    /// The export, in the columns `config` maps.
    pub fn csv(&self) -> String {
        let mut out = String::from(
            "Employee ID,First Name,Last Name,Status,Hire Date,Termination Date,Termination Type,Worker Type,Job Title,Department,Location,Country,Time Zone,Manager ID\n",
        );
        for p in &self.people {
            let (city, country, zone, _) = LOCATIONS[p.location];
            let _ = writeln!(
                out,
                "{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
                p.id,
                csv_field(&p.given),
                csv_field(&p.family),
                if p.termination_date.is_some() {
                    "Terminated"
                } else {
                    "Active"
                },
                p.hire_date,
                p.termination_date.as_deref().unwrap_or_default(),
                if p.termination_date.is_some() {
                    "voluntary"
                } else {
                    ""
                },
                if p.contractor {
                    "Contractor"
                } else {
                    "Employee"
                },
                csv_field(&p.title),
                DEPARTMENTS[p.department].0,
                city,
                country,
                zone,
                p.manager.map(|m| m.to_string()).unwrap_or_default(),
            );
        }
        out
    }

    /// Every group the config's access rules grant: `(id, displayName, licences it holds)`.
    pub fn groups(licensing: Licensing) -> Vec<(&'static str, &'static str, Option<&'static str>)> {
        let mut groups = vec![
            (ALL_STAFF.0, ALL_STAFF.1, None),
            (CONTRACTORS.0, CONTRACTORS.1, None),
        ];
        groups.extend(DEPARTMENTS.iter().map(|(name, id)| (*id, *name, None)));
        groups.extend(LOCATIONS.iter().map(|(city, _, _, id)| (*id, *city, None)));
        if licensing == Licensing::Groups {
            groups.push((E3_GROUP.0, E3_GROUP.1, Some(E3_GROUP.2)));
            groups.push((F3_GROUP.0, F3_GROUP.1, Some(F3_GROUP.2)));
        }
        groups
    }

    /// An `hrsync.toml` for this workforce; `directory` is its `[directory]` table's body.
    pub fn config(directory: &str, licensing: Licensing) -> String {
        let mut access = String::new();
        let _ = writeln!(
            access,
            "[[access]]\nname = \"All staff\"\ngroups = [\"{}\"]\n",
            ALL_STAFF.0
        );
        for (name, group) in DEPARTMENTS {
            let _ = writeln!(
                access,
                "[[access]]\nname = \"{name}\"\nwhen = \"department == '{name}'\"\ngroups = [\"{group}\"]\n"
            );
        }
        for (city, _, _, group) in LOCATIONS {
            let _ = writeln!(
                access,
                "[[access]]\nname = \"{city}\"\nwhen = \"location == '{city}'\"\ngroups = [\"{group}\"]\n"
            );
        }
        let (employees, contractors) = match licensing {
            Licensing::Direct => (
                format!("licenses = [\"{}\"]", E3.0),
                format!(
                    "groups = [\"{}\"]\nlicenses = [\"{}\"]",
                    CONTRACTORS.0, F3.0
                ),
            ),
            Licensing::Groups => (
                format!("groups = [\"{}\"]", E3_GROUP.0),
                format!("groups = [\"{}\", \"{}\"]", CONTRACTORS.0, F3_GROUP.0),
            ),
        };
        let _ = writeln!(
            access,
            "[[access]]\nname = \"Employees\"\nwhen = \"worker_type == 'Employee'\"\n{employees}\n"
        );
        let _ = writeln!(
            access,
            "[[access]]\nname = \"Contractors\"\nwhen = \"worker_type == 'Contractor'\"\n{contractors}\n"
        );
        format!(
            r#"[source.hr]
kind = "csv"
date_format = "%Y-%m-%d"

[source.hr.columns]
employee_id = "Employee ID"
given_name = "First Name"
family_name = "Last Name"
status = "Status"
hire_date = "Hire Date"
termination_date = "Termination Date"
termination_type = "Termination Type"
worker_type = "Worker Type"
job_title = "Job Title"
department = "Department"
location = "Location"
country = "Country"
time_zone = "Time Zone"
manager_id = "Manager ID"

[directory]
{directory}

[identity]
upn = [
  "{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}@acme.example",
  "{{{{ given_name|slug }}}}.{{{{ family_name|slug }}}}{{{{ n }}}}@acme.example",
]
max_counter = 999

[attributes]
employeeId = "{{{{ employee_id }}}}"
jobTitle = "{{{{ job_title }}}}"
department = "{{{{ department }}}}"
officeLocation = "{{{{ location }}}}"
usageLocation = "{{{{ country }}}}"
employeeType = "{{{{ worker_type }}}}"

{access}
[lifecycle]
scope = "worker_type in ['Employee', 'Contractor']"
default_time_zone = "Europe/London"
start_at = "08:00"
leave_at = "17:00"
remove_access_after_days = 0
"#
        )
    }
}

/// A CSV field, quoted when it holds a comma or a quote.
fn csv_field(value: &str) -> String {
    match value.contains([',', '"']) {
        true => format!("\"{}\"", value.replace('"', "\"\"")),
        false => value.to_owned(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_same_seed_gives_the_same_people_with_a_manager_chain() {
        let a = Workforce::new(300, 7);
        assert_eq!(a.csv(), Workforce::new(300, 7).csv());
        assert_ne!(a.csv(), Workforce::new(300, 8).csv());
        for person in &a.people[1..] {
            let manager = person.manager.expect("everyone but the CEO has a manager");
            assert!(manager < person.id, "managers come first");
        }
        assert!(a.people.iter().any(|p| p.contractor));
    }

    #[test]
    fn a_day_of_churn_changes_what_it_says() {
        let mut workforce = Workforce::new(1000, 1);
        let before = workforce.people.clone();
        let churn = workforce.churn("2026-12-02", "2026-12-01");
        assert_eq!(
            churn,
            Churn {
                joiners: 25,
                movers: 40,
                manager_changes: 20,
                renames: 10,
                leavers: 15
            }
        );
        assert_eq!(workforce.people.len(), 1025);
        let changed = before
            .iter()
            .zip(&workforce.people)
            .filter(|(a, b)| a != b)
            .count();
        assert_eq!(changed, 40 + 20 + 10 + 15);
    }
}
