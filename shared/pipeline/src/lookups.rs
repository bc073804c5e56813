//! How mapping asks the directory, before a worker's first names are settled, whether an account
//! already carries its employee id and which names are taken: one preflight per worker (a
//! real-time event), or, for a run that converges many workers (an import, a first load), the
//! whole directory read once on the first question and every later one answered from that
//! reading ([`DirectorySnapshot`]).

use std::sync::Arc;

use hrsync_directory::graph::{GraphClient, GraphError, Preflight};
use hrsync_directory::snapshot::DirectorySnapshot;
use jiff::Timestamp;

#[derive(Debug)]
pub enum DirectoryLookups {
    /// A `$batch` of at most two requests per worker.
    PerWorker,
    /// The directory read once, when first needed.
    ReadOnce(tokio::sync::OnceCell<Reading>),
}

/// The directory as read at `at`.
#[derive(Debug, Clone)]
pub struct Reading {
    pub snapshot: Arc<DirectorySnapshot>,
    pub at: Timestamp,
}

impl DirectoryLookups {
    /// For a run with many workers to converge.
    pub fn read_once() -> Self {
        Self::ReadOnce(tokio::sync::OnceCell::new())
    }

    /// The answer for this worker and these names, and as of when it holds.
    pub async fn preflight(
        &self,
        graph: &GraphClient,
        employee_id: &str,
        names: &[&str],
        now: Timestamp,
    ) -> Result<(Preflight, Timestamp), GraphError> {
        match self {
            Self::PerWorker => Ok((graph.preflight(Some(employee_id), names).await?, now)),
            Self::ReadOnce(cell) => {
                let reading = cell
                    .get_or_try_init(|| async {
                        let snapshot = DirectorySnapshot::read(graph).await?;
                        tracing::info!(
                            users = snapshot.len(),
                            "read the directory once for this run"
                        );
                        Ok::<_, GraphError>(Reading {
                            snapshot: Arc::new(snapshot),
                            at: now,
                        })
                    })
                    .await?;
                Ok((reading.snapshot.preflight(employee_id, names)?, reading.at))
            }
        }
    }
}
