//! The paging scheme both Shopify connectors share (REST [`super::rest`] and GraphQL
//! [`super::listing`]): never page inside a tie of records updated in one second. Each
//! connector builds its requests; this module decides, from what a request returned, what
//! a page emits and where the listing continues (the main and tie phases of the REST
//! module docs).

use crate::{ConnectorError, PageToken};
use chrono::{DateTime, SecondsFormat, Utc};
use serde::{Deserialize, Serialize};

/// The listing token.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(super) struct Cursor {
    /// Token format (1).
    pub v: u8,
    /// Main phase: the second (Unix seconds) up to which everything is listed; tie phase:
    /// the tie's second.
    pub t: i64,
    /// Tie phase: listing second `t` by id.
    #[serde(default, skip_serializing_if = "std::ops::Not::not")]
    pub tie: bool,
    /// Tie phase: the last id emitted (0: none yet).
    #[serde(default)]
    pub id: u64,
}

impl Cursor {
    /// Main phase: everything up to second `done` is listed.
    pub fn main(done: i64) -> Self {
        Cursor {
            v: 1,
            t: done,
            tie: false,
            id: 0,
        }
    }

    /// Tie phase of second `t`, after id `id`.
    pub fn tie(t: i64, id: u64) -> Self {
        Cursor {
            v: 1,
            t,
            tie: true,
            id,
        }
    }

    /// The token of this cursor; `None` when it is not this format (an older token).
    pub fn parse(p: &PageToken) -> Option<Cursor> {
        serde_json::from_str::<Cursor>(&p.0)
            .ok()
            .filter(|c| c.v == 1)
    }

    pub fn token(&self) -> Result<PageToken, ConnectorError> {
        serde_json::to_string(self)
            .map(PageToken)
            .map_err(|e| ConnectorError::Malformed(e.to_string()))
    }
}

/// One listed record with its routing fields.
pub(super) struct Row {
    pub id: u64,
    /// `updated_at`, whole seconds (Unix).
    pub sec: i64,
    pub updated_at: DateTime<Utc>,
    pub payload: Vec<u8>,
}

/// Unix seconds as a Shopify filter value (RFC 3339 UTC, whole seconds).
pub(super) fn at(t: i64) -> String {
    DateTime::from_timestamp(t, 0)
        .unwrap_or_default()
        .to_rfc3339_opts(SecondsFormat::Secs, true)
}

/// A tie request's answer (second `t` alone, by id after `last`; `more`: the answer said
/// more follow): the rows to emit, in id order, and the continuation. `what` names the
/// request in errors. An answer with more to come and no id past `last` is
/// [`ConnectorError::NoProgress`].
pub(super) fn tie_page(
    rows: Vec<Row>,
    more: bool,
    (t, last): (i64, u64),
    (from, to): (i64, i64),
    what: impl FnOnce() -> String,
) -> Result<(Vec<Row>, Cursor), ConnectorError> {
    let max_id = rows.iter().map(|r| r.id).max();
    if more && max_id.is_none_or(|m| m <= last) {
        return Err(ConnectorError::NoProgress(format!(
            "{}: no id after {last} in the second {} (the shop ignores its id bound)",
            what(),
            at(t)
        )));
    }
    let mut fresh: Vec<Row> = rows
        .into_iter()
        .filter(|r| r.id > last && r.sec == t && r.sec >= from && r.sec <= to)
        .collect();
    fresh.sort_by_key(|r| r.id);
    let next = match max_id {
        Some(id) if more => Cursor::tie(t, id),
        // the tie is exhausted: continue past its second
        _ => Cursor::main(t),
    };
    Ok((fresh, next))
}

/// A main request's answer (everything updated after second `done` up to `to`, by
/// update time; `more`: the answer said more follow): the rows to emit, in (second, id)
/// order, and the continuation (`None`: the window is complete). The rows of the page's
/// last second are left to a tie listing. A page out of update-time order is
/// [`ConnectorError::Malformed`]; a full page with nothing after `done` is
/// [`ConnectorError::NoProgress`].
pub(super) fn main_page(
    rows: Vec<Row>,
    more: bool,
    (done, to): (i64, i64),
    what: impl Fn() -> String,
) -> Result<(Vec<Row>, Option<Cursor>), ConnectorError> {
    if rows.windows(2).any(|w| w[1].sec < w[0].sec) {
        return Err(ConnectorError::Malformed(format!(
            "{}: a page not ordered by update time (the sort was ignored)",
            what()
        )));
    }
    // rows the filter should have excluded (covered already, or outside the window)
    let mut kept: Vec<Row> = rows
        .into_iter()
        .filter(|r| r.sec > done && r.sec <= to)
        .collect();
    kept.sort_by_key(|r| (r.sec, r.id));
    if !more {
        return Ok((kept, None));
    }
    let Some(t) = kept.last().map(|r| r.sec) else {
        return Err(ConnectorError::NoProgress(format!(
            "{}: a full page with nothing updated after {} (the shop ignores the lower bound)",
            what(),
            at(done)
        )));
    };
    kept.retain(|r| r.sec < t);
    Ok((kept, Some(Cursor::tie(t, 0))))
}
