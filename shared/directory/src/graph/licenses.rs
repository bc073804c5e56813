//! The tenant's licence units as the client sees them, so a worker whose licence has no free unit
//! waits without a request that Graph would refuse: `GET /subscribedSkus` lists each SKU's
//! `prepaidUnits.enabled` and `consumedUnits` (learn.microsoft.com/graph/api/subscribedsku-list),
//! and `assignLicense` beyond them answers 400 `Subscription with SKU {id} does not have any
//! available licenses.` The counts are read at most every [`REFRESH`] and kept up to date with
//! this client's own assignments; Graph stays the judge (its refusal marks the SKU exhausted).

use std::collections::HashMap;
use std::time::{Duration, Instant};

use serde_json::Value;

use super::error::GraphError;
use super::http::GraphClient;
use super::requests::{GraphRequest, with_query};

/// How long a reading of `subscribedSkus` is trusted.
pub const REFRESH: Duration = Duration::from_secs(300);

#[derive(Debug, Default)]
pub(crate) struct LicenseCounts {
    state: tokio::sync::Mutex<Counts>,
}

#[derive(Debug, Default)]
struct Counts {
    read_at: Option<Instant>,
    /// By lowercase skuId.
    skus: HashMap<String, Sku>,
}

#[derive(Debug, Clone)]
struct Sku {
    part_number: String,
    prepaid: i64,
    /// Units left for this client to assign.
    free: i64,
}

/// What [`GraphClient::reserve_licenses`] found.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Reservation {
    /// A unit is set aside for each: assign them (or give them back).
    pub granted: Vec<String>,
    /// No free unit: `(sku, why)`; nothing to send.
    pub unavailable: Vec<(String, String)>,
}

impl GraphClient {
    /// Sets a unit aside for each of `skus`, reading `subscribedSkus` when the last reading is
    /// older than [`REFRESH`]. A SKU the tenant does not list is granted: Graph answers for it.
    pub async fn reserve_licenses(&self, skus: &[String]) -> Result<Reservation, GraphError> {
        if skus.is_empty() {
            return Ok(Reservation::default());
        }
        let mut counts = self.inner.licenses.state.lock().await;
        if counts.read_at.is_none_or(|at| at.elapsed() >= REFRESH) {
            counts.skus = self.subscribed_skus().await?;
            counts.read_at = Some(Instant::now());
        }
        let mut reservation = Reservation::default();
        for sku in skus {
            match counts.skus.get_mut(&sku.to_lowercase()) {
                Some(known) if known.free <= 0 => reservation.unavailable.push((
                    sku.clone(),
                    format!(
                        "no available licenses: all {} units of {} ({sku}) are in use",
                        known.prepaid, known.part_number
                    ),
                )),
                Some(known) => {
                    known.free -= 1;
                    reservation.granted.push(sku.clone());
                }
                None => reservation.granted.push(sku.clone()),
            }
        }
        Ok(reservation)
    }

    /// Units back: an assignment that did not happen, or a licence removed.
    pub async fn release_licenses(&self, skus: &[String]) {
        let mut counts = self.inner.licenses.state.lock().await;
        for sku in skus {
            if let Some(known) = counts.skus.get_mut(&sku.to_lowercase()) {
                known.free = (known.free + 1).min(known.prepaid);
            }
        }
    }

    /// Graph refused `sku` for want of units: none are free until the next reading.
    pub async fn licenses_exhausted(&self, sku: &str) {
        let mut counts = self.inner.licenses.state.lock().await;
        if let Some(known) = counts.skus.get_mut(&sku.to_lowercase()) {
            known.free = 0;
        }
    }

    /// The SKU's `skuPartNumber` (e.g. `SPE_E3`), when a reading listed it.
    pub async fn license_part_number(&self, sku: &str) -> Option<String> {
        let counts = self.inner.licenses.state.lock().await;
        counts
            .skus
            .get(&sku.to_lowercase())
            .map(|known| known.part_number.clone())
    }

    async fn subscribed_skus(&self) -> Result<HashMap<String, Sku>, GraphError> {
        let request = GraphRequest::get(with_query(
            "/subscribedSkus",
            &[("$select", "skuId,skuPartNumber,prepaidUnits,consumedUnits")],
        ));
        let response = self.send(&request).await?;
        let skus = response
            .body
            .as_ref()
            .and_then(|body| body.get("value"))
            .and_then(Value::as_array)
            .ok_or_else(|| GraphError::Decode("subscribedSkus has no value array".into()))?;
        Ok(skus
            .iter()
            .filter_map(|sku| {
                let id = sku.get("skuId")?.as_str()?.to_lowercase();
                let prepaid = sku.pointer("/prepaidUnits/enabled")?.as_i64()?;
                let consumed = sku.get("consumedUnits")?.as_i64()?;
                let part_number = sku
                    .get("skuPartNumber")
                    .and_then(Value::as_str)
                    .unwrap_or_default()
                    .to_owned();
                Some((
                    id,
                    Sku {
                        part_number,
                        prepaid,
                        free: prepaid - consumed,
                    },
                ))
            })
            .collect())
    }
}

impl GraphError {
    /// Graph refused an `assignLicense` because the SKU has no free unit.
    pub fn is_license_exhausted(&self) -> bool {
        matches!(self, GraphError::Graph { status: 400, message, .. }
            if message.to_ascii_lowercase().contains("does not have any available licenses"))
    }
}
