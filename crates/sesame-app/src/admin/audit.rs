//! `GET /v1/admin/audit`: the audit log, newest first, in keyset pages bound
//! to their filters.

use super::cursor;
use crate::App;
use crate::access::Caller;
use serde::{Deserialize, Serialize};
use sesame_core::{Error, FieldError, PrincipalId};
use sesame_credentials::{AuditEntry, AuditFilter};
use time::OffsetDateTime;
use time::format_description::well_known::Rfc3339;
use uuid::Uuid;

/// Filters and the page to read.
#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AuditQuery {
    /// Only entries about this principal.
    pub principal_id: Option<String>,
    /// Only this event, e.g. `user.signed_in`.
    pub event: Option<String>,
    /// At or after this instant (RFC 3339).
    pub from: Option<String>,
    /// Before this instant (RFC 3339).
    pub to: Option<String>,
    /// Items per page, 1–200 (default 50).
    pub limit: Option<i64>,
    /// Where the previous page ended, bound to its filters.
    pub cursor: Option<String>,
}

/// One audit entry as the admin API shows it.
#[derive(Debug, Serialize)]
pub struct AuditView {
    /// Entry id.
    pub id: Uuid,
    /// Whose security it is about, when known.
    pub principal_id: Option<PrincipalId>,
    /// The event.
    pub event: String,
    /// Client address, when kept.
    pub ip: Option<String>,
    /// Client agent, when kept.
    pub user_agent: Option<String>,
    /// Details (never a secret).
    pub data: serde_json::Value,
    /// When.
    #[serde(with = "time::serde::rfc3339")]
    pub at: OffsetDateTime,
}

impl From<AuditEntry> for AuditView {
    fn from(e: AuditEntry) -> Self {
        Self {
            id: e.id,
            principal_id: e.principal_id,
            event: e.event,
            ip: e.ip,
            user_agent: e.user_agent,
            data: e.data,
            at: e.at,
        }
    }
}

/// A page of the audit log.
#[derive(Debug, Serialize)]
pub struct AuditPage {
    /// Entries, newest first.
    pub items: Vec<AuditView>,
    /// The cursor of the next (older) page; `null` on the last.
    pub next_cursor: Option<String>,
}

impl App {
    /// `GET /v1/admin/audit` (`audit:read`).
    pub async fn list_audit(&self, caller: &Caller, query: AuditQuery) -> Result<AuditPage, Error> {
        self.admit_read(caller, "audit:read", "audit", None).await?;
        let query = AuditQuery {
            event: cursor::given(query.event),
            cursor: cursor::given(query.cursor),
            ..query
        };
        let mut errors = Vec::new();
        let limit = query.limit.unwrap_or(50);
        if !(1..=200).contains(&limit) {
            errors.push(FieldError::new("limit", "out_of_range"));
        }
        let mut filter = AuditFilter {
            event: query.event.clone(),
            ..AuditFilter::default()
        };
        match query.principal_id.as_deref().map(str::parse::<Uuid>) {
            None => {}
            Some(Ok(id)) => filter.principal = Some(PrincipalId(id)),
            Some(Err(_)) => errors.push(FieldError::new("principal_id", "invalid_uuid")),
        }
        for (field, text, slot) in [
            ("from", &query.from, &mut filter.from),
            ("to", &query.to, &mut filter.to),
        ] {
            match text.as_deref().map(|t| OffsetDateTime::parse(t, &Rfc3339)) {
                None => {}
                Some(Ok(at)) => *slot = Some(at),
                Some(Err(_)) => errors.push(FieldError::new(field, "invalid_date_time")),
            }
        }
        let walk =
            cursor::fingerprint(&[&query.principal_id, &query.event, &query.from, &query.to]);
        let before = match &query.cursor {
            None => None,
            Some(text) => match cursor::read(text, &walk) {
                Ok(id) => Some(id),
                Err(code) => {
                    errors.push(FieldError::new("cursor", code));
                    None
                }
            },
        };
        if !errors.is_empty() {
            return Err(Error::validation(errors));
        }
        let mut items = self
            .0
            .stores
            .audit
            .list_audit(&filter, before, limit + 1)
            .await?;
        let next_cursor = if items.len() > limit as usize {
            items.truncate(limit as usize);
            items.last().map(|e| cursor::write(e.id, &walk))
        } else {
            None
        };
        Ok(AuditPage {
            items: items.into_iter().map(AuditView::from).collect(),
            next_cursor,
        })
    }
}
