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

diesel::allow_tables_to_appear_in_same_query!(users, products);
