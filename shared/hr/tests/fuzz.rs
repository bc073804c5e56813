//! Fuzz-style properties on stable Rust: every webhook verifier and parser, and the CSV
//! reader, driven with arbitrary bytes and with the vendors' real samples
//! (`tests/samples/`) mutated byte by byte. Whatever arrives: no panic, an answer of
//! bounded size, and every id taken passes the one id rule. Case counts are modest so the
//! whole binary runs in seconds.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use std::sync::{Arc, OnceLock};

use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
use hrsync_hr::connector::id_problem;
use hrsync_hr::{Connector, Delivery, Parsed, Setup};
use http::{HeaderMap, HeaderName, HeaderValue};
use jiff::Timestamp;
use proptest::prelude::*;

/// Every secret of every source.
const SECRET: &str = "fuzz-secret-5d1e";

/// The longest refusal a sender, the audit or the log may get.
const MAX_MESSAGE: usize = 1_024;

fn now() -> Timestamp {
    "2026-01-31T18:43:00Z".parse().unwrap()
}

fn sample(name: &str) -> Vec<u8> {
    let path = format!("{}/tests/samples/{name}", env!("CARGO_MANIFEST_DIR"));
    std::fs::read(&path).unwrap_or_else(|e| panic!("{path}: {e}"))
}

/// The connector of `kind`, built once (its HTTP client is never used here).
fn connector(kind: SourceKind) -> Arc<dyn Connector> {
    static BUILT: OnceLock<Vec<(SourceKind, Arc<dyn Connector>)>> = OnceLock::new();
    let built = BUILT.get_or_init(|| {
        let http = reqwest::Client::new();
        let resolve = |_: &SecretRef| Ok(SECRET.to_owned());
        let env = || Some(SecretRef::Env("X".into()));
        [
            SourceKind::SignedJson,
            SourceKind::Scim,
            SourceKind::BambooHr,
            SourceKind::HiBob,
            SourceKind::Personio,
            SourceKind::Keka,
        ]
        .into_iter()
        .map(|kind| {
            let config = SourceConfig {
                webhook_secret: env(),
                base_url: Some("http://127.0.0.1:9/api".into()),
                api_key: env(),
                service_user_id: env(),
                token: env(),
                client_id: env(),
                client_secret: env(),
                ..SourceConfig::of_kind(kind)
            };
            let setup = Setup {
                name: "hr",
                config: &config,
                resolve: &resolve,
                http: &http,
                webhooks: hrsync_hr::Webhooks::Taken,
            };
            (kind, hrsync_hr::sources::connect(setup).unwrap().unwrap())
        })
        .collect()
    });
    let found = built.iter().find(|(k, _)| *k == kind).expect("built");
    Arc::clone(&found.1)
}

/// The real samples a connector's deliveries are mutated from.
fn seeds(kind: SourceKind) -> Vec<Vec<u8>> {
    match kind {
        SourceKind::SignedJson => vec![
            br#"{"employee_id":"1042","given_name":"Ada","family_name":"Lovelace","status":"active","hire_date":"2026-01-05","custom":{"badge":"B-7"}}"#.to_vec(),
            br#"{"workers":[{"employee_id":"1","given_name":"Alan","family_name":"Turing","status":"terminated","termination_date":"2026-11-30","termination_time":"17:00","as_of":"2026-01-31T18:40:00Z"}]}"#.to_vec(),
        ],
        SourceKind::Scim => vec![
            sample("entra-scim-bulk.json"),
            sample("entra-scim-bulk-unique-bulkids.json"),
        ],
        SourceKind::BambooHr => vec![
            sample("bamboohr-webhook.json"),
            sample("bamboohr-webhook-fieldbased.json"),
            b"type=employee.updated&data%5BcompanyId%5D=12345&data%5BemployeeId%5D=67890&data%5BchangedFields%5D%5B0%5D=firstName".to_vec(),
        ],
        SourceKind::HiBob => {
            let samples: serde_json::Value =
                serde_json::from_slice(&sample("hibob-webhook.json")).unwrap();
            let mut seeds: Vec<Vec<u8>> = samples["examples"]
                .as_array()
                .unwrap()
                .iter()
                .map(|example| serde_json::to_vec(example).unwrap())
                .collect();
            seeds.push(b"Ping test".to_vec());
            seeds
        }
        SourceKind::Personio => vec![sample("personio-webhook.json")],
        SourceKind::Keka => vec![
            b"employeeIndentifier=6f1c2b9e-3d4a-4c8e-9b7f-2a5d8e0c1f34&eventType=Employee%20exit%20approved&subDomain=acme".to_vec(),
            br#"{"employeeIndentifier":"6f1c2b9e-3d4a-4c8e-9b7f-2a5d8e0c1f34","eventType":"Employee added","subDomain":"acme"}"#.to_vec(),
        ],
        SourceKind::Csv => vec![],
    }
}

/// One edit of a byte string: replace, insert or remove at a position (taken modulo its
/// length), or cut it there.
#[derive(Debug, Clone)]
enum Edit {
    Replace(usize, u8),
    Insert(usize, u8),
    Remove(usize),
    Truncate(usize),
    /// Repeat a slice, to make long names and deep nesting.
    Repeat(usize, usize, usize),
}

fn edit() -> impl Strategy<Value = Edit> {
    // Bytes that matter to the formats more often than any byte.
    let byte = prop_oneof![
        any::<u8>(),
        proptest::sample::select(b"{}[]\",:=&%#.0123456789-+ \n\\".to_vec()),
    ];
    prop_oneof![
        (any::<usize>(), byte.clone()).prop_map(|(at, b)| Edit::Replace(at, b)),
        (any::<usize>(), byte).prop_map(|(at, b)| Edit::Insert(at, b)),
        any::<usize>().prop_map(Edit::Remove),
        any::<usize>().prop_map(Edit::Truncate),
        (any::<usize>(), 1usize..16, 1usize..200).prop_map(|(at, n, t)| Edit::Repeat(at, n, t)),
    ]
}

fn apply(mut bytes: Vec<u8>, edits: &[Edit]) -> Vec<u8> {
    for edit in edits {
        let len = bytes.len();
        let at = |i: usize| if len == 0 { 0 } else { i % len };
        match *edit {
            Edit::Replace(i, b) if len > 0 => bytes[at(i)] = b,
            Edit::Insert(i, b) => bytes.insert(if len == 0 { 0 } else { i % (len + 1) }, b),
            Edit::Remove(i) if len > 0 => {
                bytes.remove(at(i));
            }
            Edit::Truncate(i) if len > 0 => bytes.truncate(at(i)),
            Edit::Repeat(i, n, times) if len > 0 => {
                let start = at(i);
                let end = (start + n).min(len);
                let piece = bytes[start..end].repeat(times);
                bytes.splice(end..end, piece);
            }
            _ => {}
        }
    }
    bytes
}

/// A seed of `kind` with edits, or arbitrary bytes.
fn body(kind: SourceKind) -> impl Strategy<Value = Vec<u8>> {
    let seeds = seeds(kind);
    prop_oneof![
        4 => (proptest::sample::select(seeds), proptest::collection::vec(edit(), 0..6))
            .prop_map(|(seed, edits)| apply(seed, &edits)),
        1 => proptest::collection::vec(any::<u8>(), 0..256),
    ]
}

/// The headers that make `body` verify for `kind`, with its content type.
fn genuine(kind: SourceKind, body: &[u8], json: bool) -> HeaderMap {
    let mut headers = HeaderMap::new();
    let mut put = |name: &str, value: String| {
        if let Ok(value) = HeaderValue::from_str(&value) {
            headers.insert(HeaderName::from_bytes(name.as_bytes()).unwrap(), value);
        }
    };
    let content_type = match (kind, json) {
        (SourceKind::Scim, _) => "application/scim+json",
        (_, true) => "application/json",
        (_, false) => "application/x-www-form-urlencoded",
    };
    put("content-type", content_type.into());
    let secret = SECRET.as_bytes();
    match kind {
        SourceKind::SignedJson => {
            let at = now().as_second() - 10;
            put("x-hrsync-timestamp", at.to_string());
            put(
                "x-hrsync-signature",
                hrsync_hr::signed_json::sign(secret, at, body),
            );
            put("x-hrsync-delivery", "fuzz-1".into());
        }
        SourceKind::BambooHr => {
            let at = (now().as_second() - 60).to_string();
            put(
                "x-bamboohr-signature",
                hrsync_hr::bamboohr::sign(secret, body, &at),
            );
            put("x-bamboohr-timestamp", at);
        }
        SourceKind::HiBob => put("bob-signature", hrsync_hr::hibob::sign(secret, body)),
        SourceKind::Personio | SourceKind::Scim => {
            let value = if kind == SourceKind::Scim {
                format!("Bearer {SECRET}")
            } else {
                SECRET.to_owned()
            };
            put("authorization", value);
        }
        SourceKind::Keka => put("x-keka-token", SECRET.into()),
        SourceKind::Csv => {}
    }
    headers
}

/// Arbitrary headers: any of the names the verifiers read, with arbitrary printable values.
fn forged_headers() -> impl Strategy<Value = Vec<(usize, String)>> {
    proptest::collection::vec((0usize..10, "[ -~]{0,120}"), 0..6)
}

const HEADER_NAMES: [&str; 10] = [
    "x-hrsync-timestamp",
    "x-hrsync-signature",
    "x-hrsync-delivery",
    "x-bamboohr-timestamp",
    "x-bamboohr-signature",
    "bob-signature",
    "authorization",
    "x-keka-token",
    "content-type",
    "x-other",
];

/// What every parse must satisfy, whatever it was given.
fn check_parsed(
    connector: &dyn Connector,
    outcome: Result<Parsed, hrsync_hr::BadPayload>,
) -> Result<(), TestCaseError> {
    match outcome {
        Err(refused) => {
            prop_assert!(
                refused.0.len() <= MAX_MESSAGE,
                "a refusal of {} bytes",
                refused.0.len()
            );
        }
        Ok(parsed) => {
            for event in &parsed.events {
                prop_assert_eq!(id_problem(&event.employee_id), None, "{:?}", event);
                prop_assert!(event.event_type.len() <= MAX_MESSAGE);
            }
            for refused in &parsed.refused {
                prop_assert!(refused.problem.len() <= MAX_MESSAGE, "{:?}", refused);
            }
            // The protocol's own answer is built without a panic too.
            let _ = connector.answer(&parsed);
        }
    }
    Ok(())
}

/// Verifies and parses `body` as `kind`: once genuinely signed (so the parser sees it),
/// once with forged headers (the verifier alone).
fn deliver(
    kind: SourceKind,
    body: &[u8],
    json: bool,
    forged: &[(usize, String)],
) -> Result<(), TestCaseError> {
    let connector = connector(kind);
    let headers = genuine(kind, body, json);
    let delivery = Delivery {
        headers: &headers,
        body,
        received_at: now(),
    };
    // Genuinely signed, any body verifies (nothing in a verifier reads the body's content).
    let verified = connector.verify(&delivery);
    prop_assert!(verified.is_ok(), "{:?}", verified);
    check_parsed(&*connector, connector.parse(&delivery))?;

    let mut headers = HeaderMap::new();
    for (name, value) in forged {
        if let Ok(value) = HeaderValue::from_str(value) {
            headers.append(HEADER_NAMES[*name], value);
        }
    }
    let delivery = Delivery {
        headers: &headers,
        body,
        received_at: now(),
    };
    if let Err(refused) = connector.verify(&delivery) {
        prop_assert!(refused.0.len() <= MAX_MESSAGE, "{}", refused.0.len());
    }
    // The parser must stand on its own, verified or not.
    check_parsed(&*connector, connector.parse(&delivery))?;
    Ok(())
}

/// 96 cases a property, from a fixed seed so CI runs the same cases every time;
/// `PROPTEST_RNG_SEED=<n>` explores others.
fn config() -> ProptestConfig {
    let mut config = ProptestConfig {
        cases: 96,
        failure_persistence: None,
        ..ProptestConfig::default()
    };
    if std::env::var_os("PROPTEST_RNG_SEED").is_none() {
        config.rng_seed = proptest::test_runner::RngSeed::Fixed(20_261_207);
    }
    config
}

proptest! {
    #![proptest_config(config())]

    #[test]
    fn signed_json_never_panics(body in body(SourceKind::SignedJson), forged in forged_headers()) {
        deliver(SourceKind::SignedJson, &body, true, &forged)?;
        // The parser alone, at any signed time.
        if let Err(error) = hrsync_hr::signed_json::parse("hr", &body, now()) {
            prop_assert!(error.to_string().len() <= MAX_MESSAGE);
        }
    }

    #[test]
    fn scim_never_panics(body in body(SourceKind::Scim), forged in forged_headers()) {
        deliver(SourceKind::Scim, &body, true, &forged)?;
    }

    #[test]
    fn bamboohr_json_and_forms_never_panic(
        body in body(SourceKind::BambooHr),
        json in any::<bool>(),
        forged in forged_headers(),
    ) {
        deliver(SourceKind::BambooHr, &body, json, &forged)?;
    }

    #[test]
    fn hibob_never_panics(body in body(SourceKind::HiBob), forged in forged_headers()) {
        deliver(SourceKind::HiBob, &body, true, &forged)?;
    }

    #[test]
    fn personio_never_panics(body in body(SourceKind::Personio), forged in forged_headers()) {
        deliver(SourceKind::Personio, &body, true, &forged)?;
    }

    #[test]
    fn keka_forms_and_json_never_panic(
        body in body(SourceKind::Keka),
        json in any::<bool>(),
        forged in forged_headers(),
    ) {
        deliver(SourceKind::Keka, &body, json, &forged)?;
    }

    #[test]
    fn the_csv_reader_never_panics(
        edits in proptest::collection::vec(edit(), 0..8),
        delimiter in proptest::sample::select(vec![',', ';', '\t', '|']),
    ) {
        let seed = "\u{feff}employee_id,given_name,family_name,status,hire_date,termination_date,as_of,manager_id,custom.badge\n\
                    1,Ada,Lovelace,Active,2026-01-05,,,,B-7\n\
                    2,\"Turing, Alan\",Turing,Terminated,2020-01-01,2026-11-30,2026-01-31T18:00:00Z,1,\n\
                    ,,,,,,,,\n";
        let data = apply(seed.replace(',', &delimiter.to_string()).into_bytes(), &edits);
        let fields = ["employee_id", "given_name", "family_name", "status", "hire_date",
                      "termination_date", "as_of", "manager_id", "custom.badge"];
        let source = SourceConfig {
            columns: fields.iter().map(|f| (f.to_string(), f.to_string())).collect(),
            delimiter,
            ..SourceConfig::of_kind(SourceKind::Csv)
        };
        if let Ok(export) = hrsync_hr::csv::read_export("hr", &source, &data, now()) {
            for worker in &export.workers {
                prop_assert_eq!(id_problem(worker.key.employee_id()), None);
                prop_assert!(worker.as_of <= now().checked_add(hrsync_hr::csv::AS_OF_SKEW).unwrap());
            }
        }
    }
}

/// What the properties above would take long to find: nesting and repetition at scale.
#[test]
fn deep_and_wide_bodies_are_refused_in_bounded_words() {
    let deep_json = format!("{}{}", "[".repeat(100_000), "]".repeat(100_000));
    let deep_form = format!("type=x&data{}=1", "[a]".repeat(50_000));
    let wide_key = format!("{{\"{}\": 1}}", "k".repeat(900_000));
    for kind in [
        SourceKind::SignedJson,
        SourceKind::Scim,
        SourceKind::BambooHr,
        SourceKind::HiBob,
        SourceKind::Personio,
        SourceKind::Keka,
    ] {
        for body in [&deep_json, &deep_form, &wide_key] {
            for json in [true, false] {
                deliver(kind, body.as_bytes(), json, &[]).unwrap();
            }
        }
    }
}
