//! Diesel table definitions, portable across SQLite and PostgreSQL.

diesel::table! {
    users (id) {
        id -> Text,
        username -> Text,
        email -> Text,
        password_hash -> Text,
        role -> Text,
        points_balance -> BigInt,
        membership_tier -> Nullable<Text>,
        membership_expires_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        membership_rank -> Nullable<Integer>,
        membership_price_fen -> Nullable<BigInt>,
        membership_period_days -> Nullable<Integer>,
        token_version -> BigInt,
        disabled_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    products (id) {
        id -> BigInt,
        kind -> Text,
        name -> Text,
        description -> Text,
        price_fen -> BigInt,
        points -> Nullable<BigInt>,
        membership_days -> Nullable<Integer>,
        membership_tier -> Nullable<Text>,
        tier_rank -> Nullable<Integer>,
        stock -> Nullable<BigInt>,
        active -> Bool,
        sort_order -> Integer,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    orders (order_no) {
        order_no -> Text,
        user_id -> Text,
        product_id -> BigInt,
        product_type -> Text,
        product_name -> Text,
        unit_price_fen -> BigInt,
        quantity -> BigInt,
        is_upgrade -> Bool,
        amount_fen -> BigInt,
        provider -> Text,
        channel -> Text,
        status -> Text,
        cancel_reason -> Nullable<Text>,
        refunded_fen -> BigInt,
        provider_transaction_id -> Nullable<Text>,
        qr_code_url -> Nullable<Text>,
        pay_url -> Nullable<Text>,
        h5_url -> Nullable<Text>,
        sdk_params -> Nullable<Text>,
        expire_at -> Timestamp,
        qr_code_expire_at -> Timestamp,
        paid_at -> Nullable<Timestamp>,
        last_query_at -> Nullable<Timestamp>,
        needs_review -> Bool,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        stock_held -> BigInt,
        review_reason -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        query_attempts -> Integer,
        snap_points -> BigInt,
        snap_membership_days -> BigInt,
        snap_tier -> Nullable<Text>,
        snap_tier_rank -> Nullable<Integer>,
        snap_tier_price_fen -> Nullable<BigInt>,
        snap_tier_days -> Nullable<Integer>,
        snap_from_tier -> Nullable<Text>,
        snap_from_rank -> Nullable<Integer>,
        snap_from_price_fen -> Nullable<BigInt>,
        snap_from_days -> Nullable<Integer>,
        snap_upgrade_secs -> BigInt,
        sync_halted -> Bool,
        paid_check_failures -> Integer,
        paid_check_at -> Nullable<Timestamp>,
        claim_token -> Nullable<Text>,
        close_failures -> Integer,
        close_retry_at -> Nullable<Timestamp>,
        close_error -> Nullable<Text>,
        renewal_root -> Nullable<Text>,
        app_id -> Nullable<Text>,
        out_order_no -> Nullable<Text>,
        customer_ref -> Nullable<Text>,
        metadata -> Nullable<Text>,
        return_url -> Nullable<Text>,
        notify_url -> Nullable<Text>,
    }
}

diesel::table! {
    balance_entries (id) {
        id -> BigInt,
        user_id -> Text,
        delta_points -> BigInt,
        points_after -> BigInt,
        delta_membership_secs -> BigInt,
        tier_before -> Nullable<Text>,
        tier_after -> Nullable<Text>,
        expires_before -> Nullable<Timestamp>,
        expires_after -> Nullable<Timestamp>,
        order_no -> Nullable<Text>,
        out_refund_no -> Nullable<Text>,
        reason -> Text,
        created_at -> Timestamp,
        note -> Nullable<Text>,
    }
}

diesel::table! {
    payment_records (id) {
        id -> BigInt,
        order_no -> Nullable<Text>,
        provider -> Text,
        kind -> Text,
        headers -> Text,
        body -> Text,
        verified -> Bool,
        decision -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    refunds (out_refund_no) {
        out_refund_no -> Text,
        order_no -> Text,
        provider -> Text,
        amount_fen -> BigInt,
        reason -> Nullable<Text>,
        status -> Text,
        provider_refund_id -> Nullable<Text>,
        requested_by -> Text,
        failure -> Nullable<Text>,
        lease_until -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        succeeded_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    outbox_events (id) {
        id -> Text,
        event_type -> Text,
        order_no -> Nullable<Text>,
        payload -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    webhook_deliveries (id) {
        id -> BigInt,
        event_id -> Text,
        endpoint -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Timestamp,
        lease_until -> Nullable<Timestamp>,
        last_status_code -> Nullable<Integer>,
        last_error -> Nullable<Text>,
        delivered_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
        claim_token -> Nullable<Text>,
        resend_requested -> Bool,
        resent_at -> Nullable<Timestamp>,
    }
}

diesel::table! {
    webhook_attempts (id) {
        id -> BigInt,
        delivery_id -> BigInt,
        attempt -> Integer,
        status_code -> Nullable<Integer>,
        error -> Nullable<Text>,
        duration_ms -> BigInt,
        created_at -> Timestamp,
    }
}

diesel::table! {
    idempotency_keys (user_id, route, idem_key) {
        user_id -> Text,
        route -> Text,
        idem_key -> Text,
        request_hash -> Text,
        status_code -> Nullable<Integer>,
        response_body -> Nullable<Text>,
        created_at -> Timestamp,
        expires_at -> Timestamp,
    }
}

diesel::joinable!(orders -> users (user_id));
diesel::joinable!(balance_entries -> users (user_id));
diesel::joinable!(refunds -> orders (order_no));
diesel::joinable!(webhook_deliveries -> outbox_events (event_id));

diesel::allow_tables_to_appear_in_same_query!(
    users,
    products,
    orders,
    payment_records,
    refunds,
    outbox_events,
    webhook_deliveries,
    webhook_attempts,
    idempotency_keys,
    balance_entries,
    apps,
    app_accounts,
    checkouts
);

diesel::table! {
    reconciliations (id) {
        id -> BigInt,
        provider -> Text,
        day -> Text,
        status -> Text,
        attempts -> Integer,
        next_attempt_at -> Nullable<Timestamp>,
        lease_until -> Nullable<Timestamp>,
        claim_token -> Nullable<Text>,
        bill_payments_fen -> BigInt,
        bill_refunds_fen -> BigInt,
        bill_fees_fen -> BigInt,
        net_fen -> BigInt,
        our_payments_fen -> BigInt,
        our_refunds_fen -> BigInt,
        matched_count -> BigInt,
        difference_count -> BigInt,
        applied_count -> BigInt,
        created_at -> Timestamp,
        finished_at -> Nullable<Timestamp>,
        error -> Nullable<Text>,
    }
}

diesel::table! {
    reconciliation_items (id) {
        id -> BigInt,
        reconciliation_id -> BigInt,
        kind -> Text,
        order_no -> Nullable<Text>,
        out_refund_no -> Nullable<Text>,
        provider_trade_no -> Nullable<Text>,
        our_amount_fen -> Nullable<BigInt>,
        provider_amount_fen -> Nullable<BigInt>,
        our_status -> Nullable<Text>,
        provider_status -> Nullable<Text>,
        applied -> Bool,
        review -> Text,
        detail -> Text,
    }
}

diesel::joinable!(reconciliation_items -> reconciliations (reconciliation_id));
diesel::allow_tables_to_appear_in_same_query!(reconciliations, reconciliation_items);

diesel::table! {
    apps (id) {
        id -> Text,
        name -> Text,
        key_mode -> Text,
        key_prefix -> Text,
        key_hash -> Text,
        webhook_url -> Nullable<Text>,
        webhook_secret -> Text,
        return_hosts -> Text,
        fulfilment -> Text,
        max_amount_fen -> BigInt,
        epay_pid -> Nullable<BigInt>,
        epay_key -> Nullable<Text>,
        epay_enabled -> Bool,
        jwt_issuer -> Nullable<Text>,
        jwt_audience -> Nullable<Text>,
        jwt_hs256_secret -> Nullable<Text>,
        jwt_public_keys -> Nullable<Text>,
        user_id -> Text,
        revoked_at -> Nullable<Timestamp>,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    app_accounts (app_id, external_id) {
        app_id -> Text,
        external_id -> Text,
        user_id -> Text,
        created_at -> Timestamp,
    }
}

diesel::table! {
    checkouts (order_no) {
        order_no -> Text,
        app_id -> Text,
        out_order_no -> Text,
        request_hash -> Text,
        user_id -> Text,
        subject -> Text,
        amount_fen -> BigInt,
        product_type -> Text,
        product_id -> Nullable<BigInt>,
        unit_price_fen -> BigInt,
        quantity -> BigInt,
        snap_points -> BigInt,
        snap_membership_days -> BigInt,
        snap_tier -> Nullable<Text>,
        snap_tier_rank -> Nullable<Integer>,
        snap_tier_price_fen -> Nullable<BigInt>,
        snap_tier_days -> Nullable<Integer>,
        customer_ref -> Nullable<Text>,
        metadata -> Nullable<Text>,
        payment_method -> Nullable<Text>,
        channel -> Nullable<Text>,
        return_url -> Nullable<Text>,
        notify_url -> Nullable<Text>,
        fulfilment -> Text,
        status -> Text,
        expire_at -> Timestamp,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}

diesel::table! {
    admin_audit (id) {
        id -> BigInt,
        actor_id -> Text,
        actor_name -> Text,
        action -> Text,
        target_kind -> Text,
        target_id -> Text,
        before_json -> Nullable<Text>,
        after_json -> Nullable<Text>,
        reason -> Nullable<Text>,
        created_at -> Timestamp,
    }
}

diesel::joinable!(app_accounts -> apps (app_id));
diesel::joinable!(checkouts -> apps (app_id));

diesel::table! {
    complaints (complaint_id) {
        complaint_id -> Text,
        state -> Text,
        problem_type -> Nullable<Text>,
        problem_description -> Text,
        complaint_detail -> Text,
        complaint_time -> Timestamp,
        amount_fen -> Nullable<BigInt>,
        out_trade_no -> Nullable<Text>,
        transaction_id -> Nullable<Text>,
        order_no -> Nullable<Text>,
        user_complaint_times -> BigInt,
        incoming_user_response -> Bool,
        response_deadline -> Nullable<Timestamp>,
        handled_at -> Nullable<Timestamp>,
        last_synced_at -> Timestamp,
        raw_detail -> Text,
        history_json -> Text,
        created_at -> Timestamp,
        updated_at -> Timestamp,
    }
}
