//! The signed-JSON source: signatures, timestamps and bodies.

#![allow(clippy::unwrap_used, clippy::expect_used)]

use hrsync_core::{Status, WorkerKey};
use hrsync_hr::signed_json::{
    MAX_WORKERS, ParseError, SignedHeaders, VerifyError, delivery_id, parse, sign, verify,
};
use jiff::civil::{date, time};
use jiff::{SignedDuration, Timestamp};

const SECRET: &[u8] = b"whsec-test-0123456789abcdef";
const BODY: &[u8] = br#"{"employee_id":"1042","given_name":"Ada","family_name":"Lovelace","status":"active","hire_date":"2026-01-05"}"#;

fn now() -> Timestamp {
    "2026-12-01T09:00:00Z".parse().unwrap()
}

/// Verifies `body` signed with `secret` at `now + offset`, against `now`.
fn signed_at_offset(
    secret: &[u8],
    offset: SignedDuration,
    body: &[u8],
) -> Result<Timestamp, VerifyError> {
    let at = now().checked_add(offset).unwrap().as_second();
    let timestamp = at.to_string();
    let signature = sign(secret, at, body);
    let headers = SignedHeaders {
        timestamp: Some(&timestamp),
        signature: Some(&signature),
        delivery: None,
    };
    verify(SECRET, &headers, body, now())
}

/// Headers of `BODY` signed with `SECRET` now.
fn valid_headers() -> (String, String) {
    let at = now().as_second();
    (at.to_string(), sign(SECRET, at, BODY))
}

#[test]
fn a_valid_delivery_passes_and_gives_its_signed_time() {
    assert_eq!(
        signed_at_offset(SECRET, SignedDuration::ZERO, BODY),
        Ok(now())
    );
}

#[test]
fn the_signature_is_the_documented_hmac() {
    // HMAC-SHA256("key", "1.{}") computed independently (openssl dgst -sha256 -hmac key).
    assert_eq!(
        sign(b"key", 1, b"{}"),
        "v1=1ba6b8171186efc613e8bcc0cbdab2748f24984d7c5a84faa2637afa0e40d224"
    );
}

#[test]
fn a_body_altered_by_one_byte_is_refused() {
    let (timestamp, signature) = valid_headers();
    let mut body = BODY.to_vec();
    let last = body.len() - 2;
    body[last] ^= 0x01;
    let headers = SignedHeaders {
        timestamp: Some(&timestamp),
        signature: Some(&signature),
        delivery: None,
    };
    assert_eq!(
        verify(SECRET, &headers, &body, now()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn a_changed_timestamp_is_refused() {
    let (timestamp, signature) = valid_headers();
    let later = (timestamp.parse::<i64>().unwrap() + 1).to_string();
    let headers = SignedHeaders {
        timestamp: Some(&later),
        signature: Some(&signature),
        delivery: None,
    };
    assert_eq!(
        verify(SECRET, &headers, BODY, now()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn the_wrong_secret_is_refused() {
    let error = signed_at_offset(b"another secret", SignedDuration::ZERO, BODY).unwrap_err();
    assert_eq!(error, VerifyError::BadSignature);
    // The message says what failed, never what the signature should have been.
    let message = error.to_string();
    let expected = sign(SECRET, now().as_second(), BODY);
    assert!(!message.contains(&expected[3..]), "{message}");
    assert_eq!(
        message,
        "no signature in the X-Hrsync-Signature header matches the timestamp and body under this source's webhook secret"
    );
}

#[test]
fn each_missing_header_is_named() {
    let (timestamp, signature) = valid_headers();
    let no_timestamp = SignedHeaders {
        timestamp: None,
        signature: Some(&signature),
        delivery: None,
    };
    let error = verify(SECRET, &no_timestamp, BODY, now()).unwrap_err();
    assert_eq!(error, VerifyError::MissingHeader("X-Hrsync-Timestamp"));
    assert_eq!(error.to_string(), "missing the X-Hrsync-Timestamp header");

    let no_signature = SignedHeaders {
        timestamp: Some(&timestamp),
        signature: None,
        delivery: None,
    };
    let error = verify(SECRET, &no_signature, BODY, now()).unwrap_err();
    assert_eq!(error, VerifyError::MissingHeader("X-Hrsync-Signature"));
    assert_eq!(error.to_string(), "missing the X-Hrsync-Signature header");
}

#[test]
fn headers_are_read_through_a_lookup() {
    let (timestamp, signature) = valid_headers();
    let pairs = [
        ("x-hrsync-timestamp", timestamp.as_str()),
        ("x-hrsync-signature", signature.as_str()),
        ("x-hrsync-delivery", "evt_1"),
    ];
    let headers = SignedHeaders::from_lookup(|name| {
        pairs
            .iter()
            .find(|(key, _)| key.eq_ignore_ascii_case(name))
            .map(|(_, value)| *value)
    });
    assert_eq!(headers.delivery, Some("evt_1"));
    assert_eq!(verify(SECRET, &headers, BODY, now()), Ok(now()));
}

#[test]
fn six_minutes_old_or_ahead_is_refused_and_four_minutes_passes() {
    let old = signed_at_offset(SECRET, SignedDuration::from_mins(-6), BODY).unwrap_err();
    assert_eq!(
        old,
        VerifyError::OutsideTolerance {
            signed_at: "2026-12-01T08:54:00Z".parse().unwrap(),
            skew_seconds: 360,
        }
    );
    assert_eq!(
        old.to_string(),
        "the delivery was signed at 2026-12-01T08:54:00Z, 360 seconds behind this receiver's clock; more than 5 minutes either way is refused (a replay, or a clock out of step)"
    );
    let ahead = signed_at_offset(SECRET, SignedDuration::from_mins(6), BODY).unwrap_err();
    assert_eq!(
        ahead.to_string(),
        "the delivery was signed at 2026-12-01T09:06:00Z, 360 seconds ahead of this receiver's clock; more than 5 minutes either way is refused (a replay, or a clock out of step)"
    );

    for minutes in [-4, 4] {
        let offset = SignedDuration::from_mins(minutes);
        assert_eq!(
            signed_at_offset(SECRET, offset, BODY),
            Ok(now().checked_add(offset).unwrap())
        );
    }
    // The edge itself passes.
    assert!(signed_at_offset(SECRET, SignedDuration::from_mins(-5), BODY).is_ok());
    assert!(signed_at_offset(SECRET, SignedDuration::from_secs(-301), BODY).is_err());
}

#[test]
fn a_malformed_timestamp_is_refused() {
    let at = now().as_second();
    let signature = sign(SECRET, at, BODY);
    for timestamp in [
        "",
        "abc",
        "+1764579600",
        "-1",
        "1764579600.5",
        "1764579600ms",
        "99999999999999999999",
    ] {
        let headers = SignedHeaders {
            timestamp: Some(timestamp),
            signature: Some(&signature),
            delivery: None,
        };
        let error = verify(SECRET, &headers, BODY, now()).unwrap_err();
        assert_eq!(error, VerifyError::BadTimestamp, "{timestamp:?}");
    }
    assert_eq!(
        VerifyError::BadTimestamp.to_string(),
        "the X-Hrsync-Timestamp header is not a Unix time in whole seconds (decimal digits, e.g. 1767225600)"
    );
}

#[test]
fn a_malformed_signature_header_is_refused() {
    let (timestamp, signature) = valid_headers();
    let hex = &signature[3..];
    let upper = format!("v1={}", hex.to_uppercase());
    let short = format!("v1={}", &hex[..62]);
    let long = format!("v1={hex}00");
    let bare = hex.to_owned();
    let sha = format!("sha256={hex}");
    let trailing = format!("{signature},");
    let only_other = format!("v2={hex}");
    let spaced = format!("v1 = {hex}");
    for header in [
        "",
        "v1=",
        "v1=zz",
        upper.as_str(),
        short.as_str(),
        long.as_str(),
        bare.as_str(),
        sha.as_str(),
        trailing.as_str(),
        only_other.as_str(),
        spaced.as_str(),
    ] {
        let headers = SignedHeaders {
            timestamp: Some(&timestamp),
            signature: Some(header),
            delivery: None,
        };
        assert_eq!(
            verify(SECRET, &headers, BODY, now()),
            Err(VerifyError::MalformedSignature),
            "{header:?}"
        );
    }
    assert_eq!(
        VerifyError::MalformedSignature.to_string(),
        "the X-Hrsync-Signature header is not of the form v1=<64 lowercase hex digits>, several separated by commas"
    );
}

#[test]
fn during_rotation_any_listed_signature_may_match() {
    let at = now().as_second();
    let timestamp = at.to_string();
    let old = sign(b"the old secret", at, BODY);
    let new = sign(SECRET, at, BODY);
    for header in [
        format!("{old},{new}"),
        format!("{new}, {old}"),
        // A later scheme beside v1 is skipped.
        format!("v2=abc,{new}"),
    ] {
        let headers = SignedHeaders {
            timestamp: Some(&timestamp),
            signature: Some(&header),
            delivery: None,
        };
        assert_eq!(verify(SECRET, &headers, BODY, now()), Ok(now()), "{header}");
    }
    let neither = format!("{old},{}", sign(b"yet another", at, BODY));
    let headers = SignedHeaders {
        timestamp: Some(&timestamp),
        signature: Some(&neither),
        delivery: None,
    };
    assert_eq!(
        verify(SECRET, &headers, BODY, now()),
        Err(VerifyError::BadSignature)
    );
}

#[test]
fn an_empty_secret_verifies_nothing() {
    let at = now().as_second();
    let timestamp = at.to_string();
    let signature = sign(b"", at, BODY);
    let headers = SignedHeaders {
        timestamp: Some(&timestamp),
        signature: Some(&signature),
        delivery: None,
    };
    assert_eq!(
        verify(b"", &headers, BODY, now()),
        Err(VerifyError::EmptySecret)
    );
}

fn parse_error(body: &str) -> ParseError {
    parse("hooks", body.as_bytes(), now()).expect_err("the body should be refused")
}

#[test]
fn one_worker() {
    let body = r#"{
        "employee_id": " 1042 ",
        "given_name": "Ada",
        "family_name": "Lovelace",
        "preferred_name": "",
        "middle_name": null,
        "status": "Active",
        "hire_date": "2026-01-05",
        "termination_date": "2026-12-31",
        "termination_time": "12:30",
        "department": "Engineering",
        "manager_id": "7",
        "time_zone": "Europe/London",
        "custom": {"badge": "B-7", "desk": null}
    }"#;
    let workers = parse("hooks", body.as_bytes(), now()).unwrap();
    assert_eq!(workers.len(), 1);
    let worker = &workers[0];
    assert_eq!(worker.key, WorkerKey::new("hooks", "1042"));
    assert_eq!(worker.employee_id, "1042");
    assert_eq!(worker.given_name, "Ada");
    assert_eq!(worker.family_name, "Lovelace");
    assert_eq!(worker.preferred_name, None);
    assert_eq!(worker.middle_name, None);
    assert_eq!(worker.status, Status::Active);
    assert_eq!(worker.hire_date, Some(date(2026, 1, 5)));
    assert_eq!(worker.termination_date, Some(date(2026, 12, 31)));
    assert_eq!(worker.termination_time, Some(time(12, 30, 0, 0)));
    assert_eq!(worker.department.as_deref(), Some("Engineering"));
    assert_eq!(worker.manager_key(), Some(WorkerKey::new("hooks", "7")));
    assert_eq!(worker.time_zone.as_deref(), Some("Europe/London"));
    assert_eq!(
        worker.custom.iter().collect::<Vec<_>>(),
        vec![(&"badge".to_owned(), &"B-7".to_owned())]
    );
    assert_eq!(worker.as_of, now());
}

#[test]
fn a_batch_of_workers() {
    let body = r#"{"workers": [
        {"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"},
        {"employee_id": "2", "given_name": "Alan", "family_name": "Turing", "status": "terminated", "termination_date": "2026-11-30", "termination_time": "17:00:00"}
    ]}"#;
    let workers = parse("hooks", body.as_bytes(), now()).unwrap();
    let keys: Vec<String> = workers.iter().map(|w| w.key.to_string()).collect();
    assert_eq!(keys, ["hooks:1", "hooks:2"]);
    assert_eq!(workers[1].status, Status::Terminated);
    assert_eq!(workers[1].termination_time, Some(time(17, 0, 0, 0)));
    assert!(
        parse("hooks", br#"{"workers": []}"#, now())
            .unwrap()
            .is_empty()
    );
}

#[test]
fn as_of_defaults_to_the_signed_time_and_may_be_given() {
    let signed_at = now();
    let body = r#"{"workers": [
        {"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"},
        {"employee_id": "2", "given_name": "Alan", "family_name": "Turing", "status": "active", "hire_date": "2026-01-05", "as_of": "2026-11-30T08:00:00+01:00"}
    ]}"#;
    let workers = parse("hooks", body.as_bytes(), signed_at).unwrap();
    assert_eq!(workers[0].as_of, signed_at);
    assert_eq!(
        workers[1].as_of,
        "2026-11-30T07:00:00Z".parse::<Timestamp>().unwrap()
    );

    let error = parse_error(
        r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05", "as_of": "yesterday"}"#,
    );
    assert_eq!(
        error.to_string(),
        r#"as_of: is not an RFC 3339 timestamp (e.g. 2026-12-01T09:00:00Z)"#
    );
}

#[test]
fn an_unknown_field_is_named() {
    let error = parse_error(
        r#"{"workers": [
            {"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"},
            {"employee_id": "2", "given_name": "Alan", "family_name": "Turing", "status": "active", "hire_date": "2026-01-05", "dept": "R&D"}
        ]}"#,
    );
    assert_eq!(error.index, Some(1));
    assert_eq!(error.field.as_deref(), Some("dept"));
    assert!(
        error.to_string().starts_with(
            "workers[1]: dept: unknown field, expected one of employee_id, given_name, "
        ),
        "{error}"
    );
    assert!(
        error
            .to_string()
            .ends_with("manager_id, termination_time, as_of, custom"),
        "{error}"
    );
}

#[test]
fn key_is_derived_not_given() {
    let error = parse_error(
        r#"{"key": "other:1", "employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"}"#,
    );
    assert_eq!(
        error.to_string(),
        "key: is not accepted: hrsync derives it from the source name and employee_id"
    );
}

#[test]
fn a_missing_given_name() {
    let error = parse_error(
        r#"{"employee_id": "1042", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"}"#,
    );
    assert_eq!(
        error,
        ParseError {
            index: None,
            field: Some("given_name".into()),
            message: "is missing".into(),
        }
    );
    assert_eq!(error.to_string(), "given_name: is missing");
    // Blank is missing too.
    let error = parse_error(
        r#"{"workers": [{"employee_id": "1042", "given_name": "  ", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"}]}"#,
    );
    assert_eq!(error.to_string(), "workers[0]: given_name: is missing");
}

#[test]
fn a_bad_date() {
    let error = parse_error(
        r#"{"employee_id": "1042", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-02-31"}"#,
    );
    assert_eq!(
        error.to_string(),
        r#"hire_date: is not a date (YYYY-MM-DD)"#
    );
    for bad in ["05/01/2026", "2026-1-5", "20260105", "2026-01-05T00:00:00Z"] {
        let error = parse_error(&format!(
            r#"{{"employee_id": "1042", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "{bad}"}}"#
        ));
        assert_eq!(error.field.as_deref(), Some("hire_date"), "{bad}");
    }
}

#[test]
fn values_of_the_wrong_type_and_shape() {
    let cases = [
        (
            r#"{"employee_id": 1042, "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"}"#,
            "employee_id: is a number, expected a string",
        ),
        (
            r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "retired", "hire_date": "2026-01-05"}"#,
            r#"status: is not a known status; expected one of active, inactive, terminated, leave"#,
        ),
        (
            r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05", "termination_time": "5pm"}"#,
            r#"termination_time: is not a time HH:MM or HH:MM:SS (24-hour, e.g. 17:00)"#,
        ),
        (
            r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05", "custom": {"badge": 7}}"#,
            "custom.badge: is a number, expected a string",
        ),
        (
            r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05", "custom": ["badge"]}"#,
            r#"custom: is an array, expected an object of strings, e.g. {"badge": "B-7"}"#,
        ),
        (
            // Worker::validate runs on every worker.
            r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active"}"#,
            "hire_date: is missing for a worker with status active",
        ),
        (
            r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05", "time_zone": "Mars/Olympus"}"#,
            r#"time_zone: is not an IANA time zone name (e.g. Europe/London)"#,
        ),
        (
            r#"[{"employee_id": "1"}]"#,
            r#"the body is an array, expected an object: one worker, or {"workers": [...]}"#,
        ),
        (
            r#"{"workers": {"employee_id": "1"}}"#,
            "workers: is an object, expected an array of worker objects",
        ),
        (
            r#"{"workers": [], "source": "x"}"#,
            r#"source: unknown field beside `workers`; a batch body is {"workers": [...]} alone"#,
        ),
        (
            r#"{"workers": ["1042"]}"#,
            "workers[0]: is a string, expected a worker object",
        ),
        (
            r#"{"workers": [
                {"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"},
                {"employee_id": "1", "given_name": "Ada", "family_name": "Byron", "status": "active", "hire_date": "2026-01-05"}
            ]}"#,
            "workers[1]: employee_id: appears twice, first at workers[0]",
        ),
    ];
    for (body, expected) in cases {
        assert_eq!(parse_error(body).to_string(), expected, "{body}");
    }
    let error = parse_error("{\"employee_id\": ");
    assert!(
        error
            .to_string()
            .starts_with("the body is not valid JSON: EOF while parsing"),
        "{error}"
    );
}

#[test]
fn at_most_a_thousand_workers_per_delivery() {
    let worker = r#"{"employee_id": "ID", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"}"#;
    let batch = |count: usize| {
        let workers: Vec<String> = (0..count)
            .map(|i| worker.replace("ID", &i.to_string()))
            .collect();
        format!(r#"{{"workers": [{}]}}"#, workers.join(","))
    };
    assert_eq!(
        parse("hooks", batch(MAX_WORKERS).as_bytes(), now())
            .unwrap()
            .len(),
        1000
    );
    assert_eq!(
        parse_error(&batch(MAX_WORKERS + 1)).to_string(),
        "workers: lists 1001 workers; at most 1000 go in one delivery"
    );
}

#[test]
fn the_delivery_id_is_a_hash_of_the_signed_message() {
    let hashed = delivery_id(now(), BODY);
    assert!(hashed.starts_with("sha256:"), "{hashed}");
    assert_eq!(hashed.len(), "sha256:".len() + 64);
    assert!(
        hashed["sha256:".len()..]
            .bytes()
            .all(|b| b.is_ascii_digit() || (b'a'..=b'f').contains(&b))
    );
    // The same request again is the same delivery...
    assert_eq!(delivery_id(now(), BODY), hashed);
    // ...but another body, or the same body signed later, is not.
    assert_ne!(delivery_id(now(), b"{}"), hashed);
    let later = now().checked_add(SignedDuration::from_secs(1)).unwrap();
    assert_ne!(delivery_id(later, BODY), hashed);
    // SHA-256("1.{}"), computed independently (sha256sum).
    assert_eq!(
        delivery_id(Timestamp::from_second(1).unwrap(), b"{}"),
        "sha256:a26b28cbf50311f74b2b88ce4d829da70369a53ce920e134d6e31848a662e9c4"
    );
}

#[test]
fn a_key_given_twice_is_ambiguous_and_refused() {
    // The last would win: this would be read as a termination.
    let worker = r#"{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "status": "terminated", "hire_date": "2026-01-05"}"#;
    for body in [worker.to_owned(), format!(r#"{{"workers": [{worker}]}}"#)] {
        let message = parse_error(&body).to_string();
        assert!(
            message.starts_with("the body gives the key status twice in one object"),
            "{message}"
        );
    }
    let batch = r#"{"workers": [], "workers": []}"#;
    assert!(
        parse_error(batch)
            .to_string()
            .contains("the key workers twice")
    );
}

/// A value no refusal may repeat.
const MARKER: &str = "SECRET-VALUE-123";

#[test]
fn refusals_name_the_field_and_the_rule_never_a_value() {
    let valid = serde_json::json!({
        "employee_id": "1042", "given_name": "Ada", "family_name": "Lovelace",
        "status": "active", "hire_date": "2026-01-05",
    });
    let marked = format!("{MARKER}-and-longer-than-sixteen");
    let cases: Vec<(&str, serde_json::Value)> = vec![
        ("status", MARKER.into()),
        ("hire_date", MARKER.into()),
        ("termination_date", MARKER.into()),
        ("termination_time", MARKER.into()),
        ("as_of", MARKER.into()),
        ("time_zone", MARKER.into()),
        ("employee_id", marked.as_str().into()),
        ("custom", serde_json::json!({ "badge": [MARKER] })),
        ("custom", MARKER.into()),
    ];
    for (field, value) in cases {
        let mut worker = valid.clone();
        worker[field] = value;
        // The employee id is a value too: a valid one is not repeated either.
        if field != "employee_id" {
            worker["employee_id"] = MARKER.into();
        }
        for body in [
            worker.to_string(),
            serde_json::json!({ "workers": [worker] }).to_string(),
        ] {
            let error = parse_error(&body);
            let message = error.to_string();
            assert_eq!(
                error.field.as_deref().map(|f| f.split('.').next().unwrap()),
                Some(field),
                "{message}"
            );
            assert!(!message.contains(MARKER), "{field}: {message}");
        }
    }

    // A name from the body is repeated only when short: a 900 KB key is not echoed whole.
    let mut worker = valid.clone();
    worker["x".repeat(900_000).as_str()] = "1".into();
    let message = parse_error(&worker.to_string()).to_string();
    assert!(message.len() < 1_000, "{} bytes", message.len());
    assert!(
        message.starts_with("<a name of 900000 bytes>: unknown field"),
        "{}",
        &message[..100]
    );
}

/// The dedupe ids of `body` delivered through the connector, signed now, with
/// `X-Hrsync-Delivery: delivery`.
fn dedupe_ids(body: &[u8], delivery: &str) -> Vec<String> {
    use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
    use hrsync_hr::Connector as _;
    let config = SourceConfig {
        webhook_secret: Some(SecretRef::Env("W".into())),
        ..SourceConfig::of_kind(SourceKind::SignedJson)
    };
    let http = reqwest::Client::new();
    let resolve = |_: &SecretRef| Ok(String::from_utf8(SECRET.to_vec()).unwrap());
    let connector = hrsync_hr::signed_json::SignedJson::new(hrsync_hr::Setup {
        name: "hooks",
        config: &config,
        resolve: &resolve,
        http: &http,
        webhooks: hrsync_hr::Webhooks::Taken,
    })
    .unwrap();
    let at = now().as_second();
    let mut headers = http::HeaderMap::new();
    for (name, value) in [
        ("x-hrsync-timestamp", at.to_string()),
        ("x-hrsync-signature", sign(SECRET, at, body)),
        ("x-hrsync-delivery", delivery.to_owned()),
    ] {
        headers.insert(name, value.parse().unwrap());
    }
    let delivery = hrsync_hr::Delivery {
        headers: &headers,
        body,
        received_at: now(),
    };
    connector.verify(&delivery).unwrap();
    let parsed = connector.parse(&delivery).unwrap();
    parsed
        .events
        .into_iter()
        .map(|event| event.dedupe)
        .collect()
}

#[test]
fn the_dedupe_id_comes_from_the_signed_bytes_never_the_unsigned_delivery_header() {
    let termination = br#"{"employee_id":"1042","given_name":"Ada","family_name":"Lovelace","status":"terminated","termination_date":"2026-11-30"}"#;
    // A captured body replayed under the id the sender will give its next delivery...
    let replayed = dedupe_ids(BODY, "evt-2");
    // ...does not make that next delivery (a termination) a duplicate.
    assert_ne!(dedupe_ids(termination, "evt-2"), replayed);
    // And a replay under a new id is still the same delivery.
    assert_eq!(dedupe_ids(BODY, "evt-1"), replayed);
    assert_eq!(dedupe_ids(BODY, "evt-3"), replayed);
}

#[test]
fn an_as_of_later_than_the_signed_time_plus_five_minutes_is_refused() {
    let body = |as_of: &str| {
        format!(
            r#"{{"workers": [
                {{"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"}},
                {{"employee_id": "2", "given_name": "Alan", "family_name": "Turing", "status": "active", "hire_date": "2026-01-05", "as_of": "{as_of}"}}
            ]}}"#
        )
    };
    // now() is the signed time: four minutes ahead is a clock out of step.
    let workers = parse("hooks", body("2026-12-01T09:04:00Z").as_bytes(), now()).unwrap();
    assert_eq!(
        workers[1].as_of,
        "2026-12-01T09:04:00Z".parse::<Timestamp>().unwrap()
    );
    // 2099 would make every real event until then stale.
    for later in ["2026-12-01T09:05:01Z", "2099-01-01T00:00:00Z"] {
        let error = parse_error(&body(later));
        assert_eq!(
            error.to_string(),
            "workers[1]: as_of: is more than 5 minutes after the delivery was signed; a record cannot speak for a later time (it would make every real change until then look stale)"
        );
    }
}

#[test]
fn an_employee_id_that_is_a_dot_segment_or_has_control_characters_is_refused() {
    for id in [".", "..", "4\u{7}2"] {
        let body = serde_json::json!({"employee_id": id, "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"});
        let error = parse_error(&body.to_string());
        assert_eq!(
            error.field.as_deref(),
            Some("employee_id"),
            "{id:?}: {error}"
        );
    }
}

#[test]
fn an_employee_or_manager_id_that_could_be_an_internal_key_is_refused() {
    let worker = serde_json::json!({"employee_id": "1", "given_name": "Ada", "family_name": "Lovelace", "status": "active", "hire_date": "2026-01-05"});
    for (field, id) in [
        ("employee_id", "#webhook"),
        ("employee_id", "a:b"),
        ("manager_id", "#webhook"),
    ] {
        let mut body = worker.clone();
        body[field] = id.into();
        let error = parse_error(&body.to_string());
        assert_eq!(error.field.as_deref(), Some(field), "{id:?}: {error}");
    }
}

#[test]
fn at_most_five_v1_signatures_are_checked() {
    let at = now().as_second();
    let timestamp = at.to_string();
    let other = sign(b"another secret", at, BODY);
    let good = sign(SECRET, at, BODY);
    let listed = |others: usize| {
        let mut entries = vec![other.clone(); others];
        entries.push(good.clone());
        entries.join(",")
    };
    let check = |header: &str| {
        let headers = SignedHeaders {
            timestamp: Some(&timestamp),
            signature: Some(header),
            delivery: None,
        };
        verify(SECRET, &headers, BODY, now())
    };
    assert_eq!(check(&listed(4)), Ok(now()));
    // 5,000 candidates cost 4 ms of HMACs a request: more than 5 is refused unchecked.
    for others in [5, 5_000] {
        let error = check(&listed(others)).unwrap_err();
        assert_eq!(error, VerifyError::TooManySignatures);
        assert_eq!(
            error.to_string(),
            "the X-Hrsync-Signature header lists more than 5 v1 signatures; at most 5 are checked (one per secret in rotation)"
        );
    }
}

#[test]
fn no_connector_shows_a_secret_in_its_debug_output() {
    use hrsync_core::config::{SecretRef, SourceConfig, SourceKind};
    // Every secret resolves to a value naming its key, so each can be looked for.
    let secret = |key: &str| format!("hush-{key}-7f3a9c");
    let resolve = move |reference: &SecretRef| match reference {
        SecretRef::Env(key) => Ok(secret(key)),
        other => Err(format!("{other:?}")),
    };
    let env = |key: &str| Some(SecretRef::Env(key.into()));
    let http = reqwest::Client::new();
    for kind in [
        SourceKind::SignedJson,
        SourceKind::Scim,
        SourceKind::BambooHr,
        SourceKind::HiBob,
        SourceKind::Personio,
        SourceKind::Keka,
    ] {
        let config = SourceConfig {
            webhook_secret: env("webhook_secret"),
            base_url: Some("http://127.0.0.1:9/api".into()),
            api_key: env("api_key"),
            service_user_id: env("service_user_id"),
            token: env("token"),
            client_id: env("client_id"),
            client_secret: env("client_secret"),
            ..SourceConfig::of_kind(kind)
        };
        let connector = hrsync_hr::sources::connect(hrsync_hr::Setup {
            name: "hr",
            config: &config,
            resolve: &resolve,
            http: &http,
            webhooks: hrsync_hr::Webhooks::Taken,
        })
        .unwrap()
        .unwrap();
        let shown = format!("{connector:?}");
        for key in [
            "webhook_secret",
            "api_key",
            "service_user_id",
            "token",
            "client_id",
            "client_secret",
        ] {
            assert!(
                !shown.contains(&secret(key)),
                "{kind:?} shows its {key}: {shown}"
            );
        }
        // Nor as the bytes a derived Debug prints for a Vec<u8>.
        let bytes = format!("{:?}", secret("webhook_secret").into_bytes());
        assert!(
            !shown.contains(&bytes[1..bytes.len() - 1]),
            "{kind:?}: {shown}"
        );
    }
}
