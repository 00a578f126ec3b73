//! Statuses as typed database values (`server` feature): stored as their snake_case text,
//! read back strictly, so an unknown value in a row is an error, never silently mapped.

use diesel::backend::Backend;
use diesel::deserialize::{self, FromSql};
use diesel::serialize::{self, Output, ToSql};
use diesel::sql_types::Text;

use crate::admin::RefundStatus;
use crate::payment::OrderStatus;

macro_rules! text_enum {
    ($ty:ty, $what:literal) => {
        impl<DB: Backend> ToSql<Text, DB> for $ty
        where
            str: ToSql<Text, DB>,
        {
            fn to_sql<'b>(&'b self, out: &mut Output<'b, '_, DB>) -> serialize::Result {
                self.as_str().to_sql(out)
            }
        }

        impl<DB: Backend> FromSql<Text, DB> for $ty
        where
            String: FromSql<Text, DB>,
        {
            fn from_sql(bytes: DB::RawValue<'_>) -> deserialize::Result<Self> {
                let s = String::from_sql(bytes)?;
                <$ty>::parse(&s).ok_or_else(|| format!("unknown {} {s:?}", $what).into())
            }
        }
    };
}

text_enum!(OrderStatus, "order status");
text_enum!(RefundStatus, "refund status");
