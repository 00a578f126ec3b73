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

diesel::joinable!(orders -> users (user_id));

diesel::allow_tables_to_appear_in_same_query!(users, products, orders, payment_records);
