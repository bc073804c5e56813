//! Checks every vendor connector's tests make the same way.

use hrsync_core::{Identifiers, Worker, WorkerKey};
use hrsync_hr::Connector;
use hrsync_hr_emulators::Emulator;
use jiff::Timestamp;

/// Record ids a URL would resolve away (`.`, `..`), the empty id and ids with control
/// characters are refused by fetch and by write-back before any request reaches the vendor
/// (`.` once made `POST /employees/.` reach it as `POST /employees/`).
pub async fn unsafe_ids_are_refused_before_any_request(
    connector: &dyn Connector,
    emulator: &Emulator,
    now: Timestamp,
) {
    let identifiers = Identifiers {
        upn: "ada@corp.example".into(),
        mail: "ada@corp.example".into(),
    };
    for id in [".", "..", "", "42\n", "4\u{7f}2"] {
        let error = connector.fetch(id, now).await.unwrap_err();
        assert!(!error.retryable, "{id:?}: {error}");
        assert!(
            error.message.contains("refused before any request"),
            "{id:?}: {error}"
        );
        let worker = Worker::new(
            WorkerKey::new(connector.source(), id),
            "Ada",
            "Lovelace",
            now,
        );
        let error = connector
            .write_back(&worker, &identifiers)
            .await
            .unwrap_err();
        assert!(!error.retryable, "{id:?}: {error}");
    }
    assert!(emulator.requests().is_empty(), "{:?}", emulator.requests());
}
