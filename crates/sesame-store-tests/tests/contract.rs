//! Every contract of `sesame-store-tests` on every backend: SQLite, PostgreSQL
//! with both schemas in one database, and PostgreSQL split across two
//! databases. Each test gets fresh databases.

#![allow(clippy::unwrap_used, clippy::expect_used, clippy::panic)] // test code fails loudly

use sesame_store_tests::schema::{differences, postgres_tables, sqlite_tables};
use sesame_store_tests::{
    access, codes, credentials, erasure, federation, identity, import, keys, mfa, outbox, passkeys,
    postgres, postgres_split, sessions, sqlite, upkeep,
};

macro_rules! on_every_backend {
    ($($module:ident :: $contract:ident),* $(,)?) => {
        mod on_sqlite {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let h = sqlite().await;
                    $module::$contract(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod on_postgres {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let Some(h) = postgres().await else { return };
                    $module::$contract(&h).await;
                    h.finish().await;
                }
            )*
        }
        mod on_postgres_split {
            use super::*;
            $(
                #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
                async fn $contract() {
                    let Some(h) = postgres_split().await else { return };
                    $module::$contract(&h).await;
                    h.finish().await;
                }
            )*
        }
    };
}

on_every_backend!(
    erasure::a_principal_is_erased_to_a_tombstone,
    access::roles_are_assigned_once_and_go_with_their_role,
    access::api_keys_are_found_revoked_once_and_touched_sparingly,
    credentials::principals_read_back,
    credentials::principals_are_suspended_and_reactivated_once,
    credentials::principals_are_listed_by_id_from_a_cursor,
    credentials::credential_summaries_agree_with_the_separate_reads,
    credentials::sign_in_attempts_are_claimed,
    credentials::racing_claims_count_once,
    credentials::a_sign_in_recorded_for_later_lands_with_the_commit,
    credentials::login_attempts_are_appended,
    credentials::a_taken_identifier_is_a_named_conflict,
    credentials::login_methods_are_listed_verified_touched_and_deleted,
    credentials::login_method_changes_are_serialised,
    credentials::passwords_are_set_replaced_and_removed,
    credentials::a_hash_upgrade_is_compare_and_set,
    credentials::history_pruning_keeps_the_newest,
    sessions::sessions_read_back,
    sessions::active_sessions_are_listed_newest_first,
    sessions::revoke_all_but_one,
    sessions::a_session_is_revoked_once,
    sessions::sessions_beyond_the_limit_are_revoked_oldest_first,
    sessions::writes_held_for_the_commit_are_seen_in_it_and_rolled_back_with_it,
    sessions::refresh_tokens_are_found_by_hash_and_parent,
    sessions::rotating_a_used_refresh_token_writes_nothing,
    codes::codes_are_kept_newest_first_per_subject,
    codes::code_tries_are_claimed_per_flow_and_anonymously,
    codes::racing_code_claims_stop_at_the_limit,
    codes::consuming_a_code_ends_its_siblings,
    keys::keys_are_listed_retired_and_resealed,
    keys::audit_entries_are_appended_with_their_transaction,
    mfa::totp_factors_are_pending_until_confirmed,
    mfa::totp_steps_are_accepted_once_and_in_order,
    mfa::racing_totp_steps_accept_once,
    mfa::backup_codes_are_replaced_and_used_once,
    mfa::mfa_challenges_are_claimed_to_the_limit_and_used_once,
    mfa::seeds_and_server_secrets_are_resealed,
    mfa::claims_are_given_back_and_sessions_raised,
    passkeys::passkeys_are_stored_renamed_used_once_and_unbound,
    passkeys::ceremonies_are_taken_once,
    federation::flows_are_claimed_once_then_taken_once,
    federation::connections_and_provider_tokens_read_back,
    passkeys::security_keys_are_counted_used_once_and_removed,
    identity::profiles_read_back,
    identity::profiles_are_found_by_display_name_prefix_and_deleted,
    identity::a_profile_patch_tells_absent_from_null,
    identity::profiles_are_inserted_in_bulk,
    import::accounts_are_imported_in_batches,
    import::an_import_batch_with_a_taken_identifier_writes_nothing,
    upkeep::cooldowns_and_counters_end_when_they_say,
    upkeep::racing_counts_are_all_counted,
    upkeep::a_sweep_removes_only_what_ended,
    outbox::events_fan_out_once_on_commit_with_a_gapless_sequence,
    outbox::claims_lease_deliveries_and_failures_come_back_when_due,
    outbox::an_ordered_sink_gets_each_principals_earliest_only,
    outbox::racing_claims_never_share_a_delivery,
    outbox::delivered_events_are_pruned_and_failed_ones_retried,
    outbox::webhook_endpoints_are_stored_disabled_and_resealed,
    outbox::consumed_message_ids_are_recorded_once,
    outbox::a_late_committer_is_not_skipped,
    upkeep::ping_tells_whether_the_database_answers,
);

/// Both backends' migrations build the same tables with the same columns,
/// domain by domain (the differences allowed are listed with their reason).
#[tokio::test]
async fn both_backends_migrate_to_the_same_schema() {
    let lite = sqlite().await;
    let Some(pg) = postgres().await else { return };
    let sqlite = sqlite_tables(lite.store.pool()).await;
    let pool = pg.store.credentials_pool();
    let domains = [
        ("identity", postgres_tables(pool, "identity").await),
        ("credentials", postgres_tables(pool, "credentials").await),
    ];
    assert!(domains.iter().all(|(_, tables)| !tables.is_empty()));
    let found = differences(&sqlite, &domains);
    assert!(
        found.is_empty(),
        "the schemas differ:\n{}",
        found.join("\n")
    );
    lite.finish().await;
    pg.finish().await;
}
