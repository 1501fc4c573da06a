use serde::{Deserialize, Serialize};

/// The state of a model's sync.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize, Default)]
#[serde(rename_all = "lowercase")]
pub enum SyncState {
    /// Not started yet.
    #[default]
    Pending,
    /// A historical sync or reconciliation is running.
    Syncing,
    /// The last run finished; the mirror is current up to `cursor`.
    Done,
    /// The last run failed (see `last_error`); the cursor did not move.
    Failed,
    /// The historical sync stopped part-way (failed); what it fetched is kept, the next
    /// run resumes at its checkpoint.
    Partial,
}

/// Where a historical sync is: windows over [from, to], and the page inside the current one.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Backfill {
    /// Lower bound: `to − history`, RFC 3339 UTC.
    pub from: String,
    /// Upper bound: when the historical sync started; reconciliation continues from here.
    pub to: String,
    pub windows_total: u32,
    /// Windows fully fetched and acknowledged.
    pub windows_done: u32,
    /// Continuation inside window `windows_done` (None: its first page).
    pub page: Option<ingot_connectors::PageToken>,
    /// The bulk export carrying this historical sync, when the connector has one.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkProgress>,
}

/// A historical sync's bulk export (Shopify bulk operation): the job's id is checkpointed,
/// so a restart polls the same job and resumes reading its result after `records_done`.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize, Default)]
pub struct BulkProgress {
    /// The 3PA's id of the current job (`gid://shopify/BulkOperation/<n>`); `None`
    /// before one is started, and again after one failed.
    pub operation_id: Option<String>,
    /// `starting`, `running`, `reading`, `done`, or `fallback` (the windows carry on).
    pub state: String,
    /// Jobs started for this historical sync (the first one included).
    pub attempts: u32,
    /// Objects the 3PA reports processed by the current job.
    pub objects: u64,
    /// Records of the current job's result written and acknowledged.
    pub records_done: u64,
    /// Why the last job failed (the 3PA's error code), or why the sync fell back.
    pub last_error: Option<String>,
}

/// Sync status of one (connection, model), persisted in `ingot.sync` and served by
/// `GET /v1/connections/{id}/sync-status`.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize, Default)]
pub struct ModelStatus {
    pub state: SyncState,
    /// `backfill` or `reconcile`.
    pub phase: Option<String>,
    /// Everything modified at or before this time (RFC 3339 UTC) was fetched and acknowledged.
    pub cursor: Option<String>,
    pub last_success: Option<String>,
    pub last_run_started: Option<String>,
    /// Distinct records the sync listed, summed over its listings: each listing (one
    /// historical-sync window, one reconciliation run) counts a record once however many
    /// of its pages return it; listings that overlap (reconciliation re-reads an overlap)
    /// may each count it. All runs.
    pub records_seen: u64,
    /// Raw events the sync wrote to the raw topic, all runs: every listed record of every
    /// page, re-fetches after a restart and repeats within a listing included.
    #[serde(default)]
    pub records_written: u64,
    /// Distinct records listed by the current (or last) run.
    #[serde(default)]
    pub last_run_records: u64,
    pub deletions_seen: u64,
    pub last_error: Option<String>,
    pub backfill: Option<Backfill>,
    /// Historical sync progress in percent (windows done / total).
    pub progress_percent: Option<f64>,
    /// The bulk export of the last finished historical sync (its job, attempts, last
    /// failure), when one carried it; while one runs, see `backfill.bulk`.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub bulk: Option<BulkProgress>,
}
