//! `OutboxStore` and `WebhookStore`: events, their deliveries and the
//! webhook endpoints. The backends differ only in the lock clause of the
//! claims ([`SqlBackend::SKIP_LOCKED`](crate::SqlBackend::SKIP_LOCKED)).

/// Stamps the outbox and webhook stores for a backend.
#[doc(hidden)]
#[macro_export]
macro_rules! __outbox_store {
    ($store:ty) => {
        const _: () = {
            use ::async_trait::async_trait;
            use ::sesame_core::{StoreError, Tx};
            use ::sesame_events::{
                Delivery, DeliveryRow, Envelope, Failure, OutboxStore, StoredEndpoint, WebhookStore,
            };
            use ::sqlx::Row as _;
            use ::time::OffsetDateTime;
            use ::uuid::Uuid;
            use $crate::SqlBackend as _;

            #[async_trait]
            impl OutboxStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn enqueue(&self, tx: &mut dyn Tx, env: &Envelope) -> Result<(), StoreError> {
                    let write = $crate::Later::new("INSERT INTO outbox (id, topic, payload, created_at) VALUES ($1, $2, $3, $4)")
                        .arg(env.id)
                        .arg(&env.topic)
                        .json(env)?
                        .arg(env.time);
                    Self::later(tx, write).await
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn fan_out(
                    &self,
                    sinks: &::sesame_events::store::SinksFor<'_>,
                    limit: i64,
                    now: OffsetDateTime,
                ) -> Result<usize, StoreError> {
                    let err = Self::store_err;
                    let mut tx = self.writer().begin().await.map_err(err)?;
                    let sql = format!(
                        "SELECT id, topic, payload FROM outbox WHERE fanned_out_at IS NULL
                         ORDER BY id LIMIT $1 {}",
                        Self::SKIP_LOCKED
                    );
                    let rows = ::sqlx::query(::sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(&mut *tx)
                    .await
                    .map_err(err)?;
                    let mut events = Vec::with_capacity(rows.len());
                    for row in &rows {
                        use $crate::Columns as _;
                        let payload = row.json("payload").map_err(err)?;
                        let subject = payload["subject"].as_str().unwrap_or_default().to_owned();
                        events.push((subject, row.uuid("id").map_err(err)?, row.text("topic").map_err(err)?, payload));
                    }
                    if events.is_empty() {
                        tx.commit().await.map_err(err)?;
                        return Ok(0);
                    }
                    // Principals in one order in every relay: their sequence
                    // rows are locked without deadlocks.
                    events.sort_by(|a, b| (&a.0, a.1).cmp(&(&b.0, b.1)));
                    let mut counts: Vec<(String, i64)> = Vec::new();
                    for (subject, ..) in &events {
                        match counts.last_mut() {
                            Some((last, n)) if last == subject => *n += 1,
                            _ => counts.push((subject.clone(), 1)),
                        }
                    }
                    // One statement per batch for each step: the sequences,
                    // the events, their deliveries.
                    let rows: Vec<String> = (0..counts.len())
                        .map(|i| format!("(${}, ${})", 2 * i + 1, 2 * i + 2))
                        .collect();
                    let sql = format!(
                        "INSERT INTO outbox_seq (principal_id, last_seq) VALUES {}
                         ON CONFLICT (principal_id) DO UPDATE SET last_seq = outbox_seq.last_seq + excluded.last_seq
                         RETURNING principal_id, last_seq",
                        rows.join(", ")
                    );
                    let mut query = ::sqlx::query(::sqlx::AssertSqlSafe(sql));
                    for (subject, n) in &counts {
                        query = query.bind(subject).bind(*n);
                    }
                    let mut last = ::std::collections::HashMap::new();
                    for row in query.fetch_all(&mut *tx).await.map_err(err)? {
                        let subject: String = row.try_get("principal_id").map_err(err)?;
                        let seq: i64 = row.try_get("last_seq").map_err(err)?;
                        last.insert(subject, seq);
                    }
                    // A principal's first event here gets last - n + 1.
                    let mut next: ::std::collections::HashMap<&str, i64> = counts
                        .iter()
                        .map(|(s, n)| (s.as_str(), last.get(s).copied().unwrap_or(*n) - n + 1))
                        .collect();
                    let mut numbered = Vec::with_capacity(events.len());
                    for (subject, id, topic, payload) in &events {
                        let slot = next.entry(subject.as_str()).or_insert(1);
                        let seq = *slot;
                        *slot += 1;
                        let mut payload = payload.clone();
                        if let Some(fields) = payload.as_object_mut() {
                            fields.insert("aggseq".into(), seq.into());
                        }
                        numbered.push((subject.clone(), *id, topic.clone(), payload, seq));
                    }
                    let rows: Vec<String> = (0..numbered.len())
                        .map(|i| format!("(${}, ${}, ${})", 3 * i + 2, 3 * i + 3, 3 * i + 4))
                        .collect();
                    let sql = format!(
                        "UPDATE outbox SET aggseq = v.column2, payload = v.column3, fanned_out_at = $1
                         FROM (VALUES {}) AS v WHERE outbox.id = v.column1",
                        rows.join(", ")
                    );
                    let mut query = ::sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(now);
                    for (_, id, _, payload, seq) in &numbered {
                        query = query.bind(*id).bind(*seq).bind(::sqlx::types::Json(payload));
                    }
                    query.execute(&mut *tx).await.map_err(err)?;
                    let mut deliveries = Vec::new();
                    for (subject, id, topic, _, seq) in &numbered {
                        for sink in sinks(topic) {
                            deliveries.push((*id, sink, subject, *seq));
                        }
                    }
                    for chunk in deliveries.chunks(1000) {
                        let rows: Vec<String> = (0..chunk.len())
                            .map(|i| {
                                let b = 4 * i + 2;
                                format!("(${b}, ${}, ${}, ${}, 'pending', 0, $1)", b + 1, b + 2, b + 3)
                            })
                            .collect();
                        let sql = format!(
                            "INSERT INTO deliveries
                                 (event_id, sink, principal_id, aggseq, status, attempts, next_attempt_at)
                             VALUES {}",
                            rows.join(", ")
                        );
                        let mut query = ::sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(now);
                        for (id, sink, subject, seq) in chunk {
                            query = query.bind(*id).bind(sink.as_str()).bind(subject.as_str()).bind(*seq);
                        }
                        query.execute(&mut *tx).await.map_err(err)?;
                    }
                    tx.commit().await.map_err(err)?;
                    Ok(events.len())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn claim(
                    &self,
                    sink: &str,
                    ordered: bool,
                    owner: Uuid,
                    limit: i64,
                    now: OffsetDateTime,
                    lease_until: OffsetDateTime,
                ) -> Result<Vec<Delivery>, StoreError> {
                    // Only a principal's earliest pending delivery, on an ordered sink.
                    let head_only = if ordered {
                        "AND NOT EXISTS (SELECT 1 FROM deliveries e
                                         WHERE e.sink = d.sink AND e.principal_id = d.principal_id
                                           AND e.status = 'pending' AND e.aggseq < d.aggseq)"
                    } else {
                        ""
                    };
                    let sql = format!(
                        "UPDATE deliveries SET lease_owner = $1, lease_until = $2
                         WHERE (event_id, sink) IN (
                             SELECT d.event_id, d.sink FROM deliveries d
                             WHERE d.sink = $3 AND d.status = 'pending' AND d.next_attempt_at <= $4
                               AND (d.lease_until IS NULL OR d.lease_until < $4) {head_only}
                             ORDER BY d.next_attempt_at, d.event_id LIMIT $5 {}
                         )",
                        Self::SKIP_LOCKED
                    );
                    let claimed = ::sqlx::query(::sqlx::AssertSqlSafe(sql))
                    .bind(owner)
                    .bind(lease_until)
                    .bind(sink)
                    .bind(now)
                    .bind(limit)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    if claimed.rows_affected() == 0 {
                        return Ok(Vec::new());
                    }
                    let rows = ::sqlx::query(
                        "SELECT d.event_id, d.sink, d.principal_id, d.aggseq, d.attempts, o.topic, o.payload
                         FROM deliveries d JOIN outbox o ON o.id = d.event_id
                         WHERE d.sink = $1 AND d.lease_owner = $2 AND d.status = 'pending'
                         ORDER BY d.principal_id, d.aggseq",
                    )
                    .bind(sink)
                    .bind(owner)
                    .fetch_all(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::delivery)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn mark_delivered(
                    &self,
                    sink: &str,
                    owner: Uuid,
                    events: &[Uuid],
                    at: OffsetDateTime,
                ) -> Result<(), StoreError> {
                    if events.is_empty() {
                        return Ok(());
                    }
                    let list: Vec<String> = (0..events.len()).map(|i| format!("${}", i + 4)).collect();
                    let sql = format!(
                        "UPDATE deliveries SET status = 'delivered', delivered_at = $1,
                             attempts = attempts + 1, lease_owner = NULL, lease_until = NULL, last_error = NULL
                         WHERE sink = $2 AND lease_owner = $3 AND event_id IN ({})",
                        list.join(", ")
                    );
                    let mut query = ::sqlx::query(::sqlx::AssertSqlSafe(sql)).bind(at).bind(sink).bind(owner);
                    for event in events {
                        query = query.bind(*event);
                    }
                    query.execute(self.writer()).await.map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn mark_attempt_failed(
                    &self,
                    sink: &str,
                    owner: Uuid,
                    event: Uuid,
                    failure: &Failure,
                ) -> Result<(), StoreError> {
                    let status = if failure.retry_at.is_some() { "pending" } else { "failed" };
                    ::sqlx::query(
                        "UPDATE deliveries SET attempts = attempts + 1, last_error = $1, status = $2,
                             next_attempt_at = COALESCE($3, next_attempt_at), lease_owner = NULL, lease_until = NULL
                         WHERE sink = $4 AND event_id = $5 AND lease_owner = $6",
                    )
                    .bind(&failure.error)
                    .bind(status)
                    .bind(failure.retry_at)
                    .bind(sink)
                    .bind(event)
                    .bind(owner)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn fail_sink(&self, sink: &str, error: &str) -> Result<u64, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE deliveries SET status = 'failed', last_error = $1, lease_owner = NULL, lease_until = NULL
                         WHERE sink = $2 AND status = 'pending'",
                    )
                    .bind(error)
                    .bind(sink)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_deliveries(&self, failed_only: bool, limit: i64) -> Result<Vec<DeliveryRow>, StoreError> {
                    let filter = if failed_only { "WHERE d.status = 'failed'" } else { "" };
                    let sql = format!(
                        "SELECT d.event_id, d.sink, o.topic, d.status, d.attempts, d.next_attempt_at, d.last_error
                         FROM deliveries d JOIN outbox o ON o.id = d.event_id {filter}
                         ORDER BY d.event_id DESC, d.sink LIMIT $1"
                    );
                    let rows = ::sqlx::query(::sqlx::AssertSqlSafe(sql))
                    .bind(limit)
                    .fetch_all(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::delivery_row)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn retry_failed(&self, event: Option<Uuid>, now: OffsetDateTime) -> Result<u64, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE deliveries SET status = 'pending', attempts = 0, next_attempt_at = $1, last_error = NULL
                         WHERE status = 'failed' AND ($2 IS NULL OR event_id = $2)",
                    )
                    .bind(now)
                    .bind(event)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn oldest_undelivered(&self) -> Result<Option<OffsetDateTime>, StoreError> {
                    let unfanned = ::sqlx::query(
                        "SELECT created_at FROM outbox WHERE fanned_out_at IS NULL ORDER BY id LIMIT 1",
                    )
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    let pending = ::sqlx::query(
                        "SELECT o.created_at FROM deliveries d JOIN outbox o ON o.id = d.event_id
                         WHERE d.status = 'pending' ORDER BY d.event_id LIMIT 1",
                    )
                    .fetch_optional(self.reader())
                    .await
                    .map_err(Self::store_err)?;
                    let mut oldest: Option<OffsetDateTime> = None;
                    for row in unfanned.iter().chain(pending.iter()) {
                        let at: OffsetDateTime = row.try_get("created_at").map_err(Self::store_err)?;
                        oldest = Some(oldest.map_or(at, |o| o.min(at)));
                    }
                    Ok(oldest)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn prune_delivered(&self, before: OffsetDateTime) -> Result<u64, StoreError> {
                    ::sqlx::query("DELETE FROM deliveries WHERE status = 'delivered' AND delivered_at < $1")
                        .bind(before)
                        .execute(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    let done = ::sqlx::query(
                        "DELETE FROM outbox WHERE fanned_out_at IS NOT NULL AND fanned_out_at < $1
                           AND NOT EXISTS (SELECT 1 FROM deliveries d WHERE d.event_id = outbox.id)",
                    )
                    .bind(before)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected())
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn note_message(&self, tx: &mut dyn Tx, msg_id: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "INSERT INTO processed_messages (msg_id, processed_at) VALUES ($1, $2)
                         ON CONFLICT (msg_id) DO NOTHING",
                    )
                    .bind(msg_id)
                    .bind(at)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() == 1)
                }
            }

            #[async_trait]
            impl WebhookStore for $store {
                #[::tracing::instrument(level = "debug", skip_all)]
                async fn put_webhook(&self, e: &StoredEndpoint) -> Result<StoredEndpoint, StoreError> {
                    let row = ::sqlx::query(
                        "INSERT INTO webhook_endpoints
                             (name, url, topics, secret_sealed, secret_key_id, from_config,
                              disabled_at, disabled_reason, created_at, updated_at,
                              previous_secret_sealed, previous_secret_key_id, previous_until)
                         VALUES ($1, $2, $3, $4, $5, $6, NULL, NULL, $7, $7, $8, $9, $10)
                         ON CONFLICT (name) DO UPDATE SET
                             url = excluded.url, topics = excluded.topics,
                             secret_sealed = excluded.secret_sealed, secret_key_id = excluded.secret_key_id,
                             previous_secret_sealed = excluded.previous_secret_sealed,
                             previous_secret_key_id = excluded.previous_secret_key_id,
                             previous_until = excluded.previous_until,
                             from_config = excluded.from_config, updated_at = excluded.updated_at,
                             disabled_at = CASE WHEN excluded.from_config AND webhook_endpoints.url = excluded.url
                                                THEN webhook_endpoints.disabled_at END,
                             disabled_reason = CASE WHEN excluded.from_config AND webhook_endpoints.url = excluded.url
                                                    THEN webhook_endpoints.disabled_reason END
                         RETURNING *",
                    )
                    .bind(&e.name)
                    .bind(&e.url)
                    .bind(::sqlx::types::Json(&e.topics))
                    .bind(&e.secret_sealed)
                    .bind(&e.secret_key_id)
                    .bind(e.from_config)
                    .bind(e.updated_at)
                    .bind(e.previous.as_ref().map(|p| p.sealed.clone()))
                    .bind(e.previous.as_ref().map(|p| p.key_id.clone()))
                    .bind(e.previous.as_ref().map(|p| p.until))
                    .fetch_one(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    $crate::webhook_endpoint(&row).map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn list_webhooks(&self) -> Result<Vec<StoredEndpoint>, StoreError> {
                    let rows = ::sqlx::query("SELECT * FROM webhook_endpoints ORDER BY name")
                        .fetch_all(self.reader())
                        .await
                        .map_err(Self::store_err)?;
                    rows.iter()
                        .map($crate::webhook_endpoint)
                        .collect::<Result<_, _>>()
                        .map_err(Self::store_err)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn disable_webhook(&self, name: &str, reason: &str, at: OffsetDateTime) -> Result<bool, StoreError> {
                    let done = ::sqlx::query(
                        "UPDATE webhook_endpoints SET disabled_at = COALESCE(disabled_at, $1), disabled_reason = $2
                         WHERE name = $3",
                    )
                    .bind(at)
                    .bind(reason)
                    .bind(name)
                    .execute(self.writer())
                    .await
                    .map_err(Self::store_err)?;
                    Ok(done.rows_affected() > 0)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn delete_webhook(&self, name: &str) -> Result<bool, StoreError> {
                    let done = ::sqlx::query("DELETE FROM webhook_endpoints WHERE name = $1")
                        .bind(name)
                        .execute(self.writer())
                        .await
                        .map_err(Self::store_err)?;
                    Ok(done.rows_affected() > 0)
                }

                #[::tracing::instrument(level = "debug", skip_all)]
                async fn reseal_webhook(
                    &self,
                    tx: &mut dyn Tx,
                    name: &str,
                    current: (&[u8], &str),
                    previous: Option<(&[u8], &str)>,
                ) -> Result<(), StoreError> {
                    ::sqlx::query(
                        "UPDATE webhook_endpoints SET secret_sealed = $1, secret_key_id = $2,
                             previous_secret_sealed = COALESCE($3, previous_secret_sealed),
                             previous_secret_key_id = COALESCE($4, previous_secret_key_id)
                         WHERE name = $5",
                    )
                    .bind(current.0)
                    .bind(current.1)
                    .bind(previous.map(|p| p.0))
                    .bind(previous.map(|p| p.1))
                    .bind(name)
                    .execute(Self::conn(tx).await?)
                    .await
                    .map_err(Self::store_err)?;
                    Ok(())
                }
            }
        };
    };
}
