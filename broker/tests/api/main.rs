//! End-to-end tests of the broker over real HTTP, a real database (a SQLite
//! file, and a PostgreSQL database) and a recording upstream server, all on port 0.

mod attacks;
mod audit_follow;
mod bad_input;
mod helpers;
mod keys;
mod logs;
mod migrations;
mod parsing;
mod persistence;
mod proxy;
mod record;
mod retention;
mod roles;
mod spend;

/// Runs each test once per backend, as `sqlite::<test>` and `postgres::<test>`.
macro_rules! on_both_backends {
    ($($module:ident :: $test:ident),* $(,)?) => {
        mod sqlite {
            $(#[tokio::test]
            async fn $test() {
                crate::$module::$test(crate::helpers::Backend::Sqlite).await;
            })*
        }
        mod postgres {
            $(#[tokio::test]
            async fn $test() {
                crate::$module::$test(crate::helpers::Backend::Postgres).await;
            })*
        }
    };
}

on_both_backends! {
    record::the_record_names_every_paymentintent_of_an_order_made_through_the_broker,
    record::a_create_whose_outcome_is_unknown_leaves_the_record_incomplete,
    record::a_create_with_more_metadata_than_stripe_allows_is_refused,
    audit_follow::the_audit_log_has_a_line_per_record_and_a_restart_continues_it,
    audit_follow::the_audit_cursor_reads_every_row_once_across_brokers_and_restarts,
    audit_follow::a_row_marked_lost_and_then_answered_is_followed_again,
    retention::retention_deletes_what_is_past_and_a_dry_run_nothing,
    retention::a_live_key_keeps_what_it_needs_however_old,
    retention::an_open_spend_period_keeps_its_key,
    retention::a_request_in_flight_keeps_its_key,
    retention::the_broker_tidies_by_itself_and_counts_rows,
    keys::issue_returns_the_token_once_and_show_hides_it,
    keys::admin_endpoints_need_the_admin_token,
    keys::invalid_requests_are_422_naming_the_field,
    keys::list_filters_by_label_prefix_status_and_limit,
    keys::revoke_is_idempotent_and_unknown_ids_are_404,
    keys::bulk_revoke_cuts_off_one_workflow_only,
    proxy::forwards_with_the_stripe_secret_and_passes_headers_through,
    proxy::unknown_revoked_and_expired_keys_are_401,
    proxy::allowlist_limits_methods_and_paths,
    proxy::path_tricks_are_refused_and_never_forwarded,
    proxy::unknown_vendor_is_404_and_large_bodies_413,
    proxy::upstream_timeout_is_504_and_unreachable_is_502,
    proxy::every_proxied_request_is_audited,
    proxy::the_stripe_root_serves_the_proxy_with_the_same_rules,
    proxy::refusals_are_stripe_shaped,
    spend::over_the_cap_is_429_and_nothing_is_forwarded,
    spend::twenty_concurrent_charges_on_a_cap_for_seven_forward_exactly_seven,
    spend::a_4xx_releases_the_reservation_and_a_5xx_keeps_it,
    spend::currencies_are_valued_in_usd,
    spend::ambiguous_amounts_are_refused,
    persistence::keys_revocations_and_spend_survive_a_restart,
    persistence::every_answered_write_survives_kill_9,
    migrations::naming_columns_for_what_they_hold_keeps_spend_and_holds,
    migrations::keys_issued_before_roles_keep_working,
    migrations::the_record_starts_with_the_migration_on_a_database_that_served,
    bad_input::bad_key_requests_issue_no_key,
    bad_input::bad_proxied_requests_forward_nothing,
    attacks::cap_is_not_bypassed_by_parameter_spelling,
    attacks::declined_create_then_confirm_is_counted,
    attacks::a_hold_from_an_earlier_day_pays_for_nothing_today,
    attacks::a_hold_pays_only_for_the_key_that_reserved_it,
    attacks::a_price_read_for_one_request_is_not_kept_for_the_next,
    attacks::a_replayed_create_does_not_reset_a_price,
    attacks::a_money_request_is_on_record_before_it_is_forwarded,
    attacks::admin_calls_are_audited_with_the_tokens_id_never_the_token,
    attacks::a_revoked_keys_requests_are_summarised_by_key,
    attacks::a_failed_valued_request_leaves_no_price_behind,
    attacks::a_valued_call_with_a_parameter_the_table_does_not_know_is_refused,
    attacks::fifty_concurrent_sequences_never_pass_the_cap,
    attacks::a_key_reaches_only_its_own_objects,
    attacks::idempotency_keys_cannot_be_taken_by_another_key,
    attacks::stripe_account_is_bound_to_the_key,
    attacks::unvalued_money_endpoints_are_out_of_reach,
    attacks::a_customer_balance_is_refused_on_calls_free_of_money,
    attacks::encoded_paths_and_odd_methods_are_refused,
    attacks::forms_that_nest_or_widen_without_end_cost_a_400,
    attacks::a_key_revoked_while_its_body_arrives_forwards_nothing,
    attacks::a_vanished_client_still_leaves_a_record,
    attacks::unauthenticated_traffic_cannot_grow_state,
    attacks::index_keys_parsers_read_differently_are_refused,
    attacks::a_created_object_of_another_kind_claims_nothing,
    attacks::objects_named_in_any_money_parameter_are_checked,
    attacks::client_secrets_never_leave_the_broker,
    roles::a_role_token_issues_only_within_its_roles_limits,
    roles::a_role_token_reaches_only_its_roles_keys,
    roles::a_revoked_role_token_stops_at_once,
    roles::a_roles_daily_cap_holds_across_its_keys_and_brokers,
    roles::a_restarted_broker_leaves_its_unused_slice_counted,
    roles::a_role_token_revoked_while_its_body_arrives_issues_nothing,
    roles::a_role_token_revoked_while_its_revoke_waits_to_commit_revokes_nothing,
    roles::a_role_cannot_take_another_issuers_objects_by_its_label,
    attacks::lists_and_searches_show_a_key_only_what_it_may_see,
    attacks::a_list_with_nothing_visible_for_pages_is_refused_not_emptied,
    attacks::an_expansion_reaches_only_what_the_key_may_see,
    attacks::a_list_answer_that_is_no_page_is_never_passed_on,
    attacks::an_upstream_answer_past_its_limit_is_refused,
    attacks::an_object_read_to_price_a_request_is_held_to_the_limit,
    attacks::a_librarys_retry_is_a_replay_not_a_second_charge,
    attacks::a_retry_of_a_refused_request_or_from_another_label_is_counted,
}
