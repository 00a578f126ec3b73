//! Yuan amounts on the wire, computed from fen without floating point.

use serde::{Deserialize, Deserializer, Serialize, Serializer};
use std::fmt;

/// An amount held as integer fen that serialises as a JSON number with exactly two
/// decimals (`9900` fen -> `99.00`), as the documented contract shows.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
pub struct Yuan(pub i64);

impl Yuan {
    /// The amount in fen.
    pub fn fen(self) -> i64 {
        self.0
    }

    /// Parse `"12.34"`, `"12.3"` or `"12"` into fen; rejects more than two decimals,
    /// signs other than a leading `-`, and anything that is not a plain decimal.
    pub fn parse(text: &str) -> Option<Yuan> {
        let (negative, digits) = match text.strip_prefix('-') {
            Some(rest) => (true, rest),
            None => (false, text),
        };
        let (int_part, frac_part) = match digits.split_once('.') {
            Some((i, f)) => (i, f),
            None => (digits, ""),
        };
        if int_part.is_empty()
            || frac_part.len() > 2
            || !int_part.bytes().all(|b| b.is_ascii_digit())
            || !frac_part.bytes().all(|b| b.is_ascii_digit())
            || (digits.contains('.') && frac_part.is_empty())
        {
            return None;
        }
        let whole: i64 = int_part.parse().ok()?;
        let mut frac: i64 = if frac_part.is_empty() {
            0
        } else {
            frac_part.parse().ok()?
        };
        if frac_part.len() == 1 {
            frac *= 10;
        }
        let fen = whole.checked_mul(100)?.checked_add(frac)?;
        Some(Yuan(if negative { -fen } else { fen }))
    }
}

impl fmt::Display for Yuan {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let sign = if self.0 < 0 { "-" } else { "" };
        let abs = self.0.unsigned_abs();
        write!(f, "{sign}{}.{:02}", abs / 100, abs % 100)
    }
}

impl Serialize for Yuan {
    fn serialize<S: Serializer>(&self, serializer: S) -> Result<S::Ok, S::Error> {
        // A raw JSON number keeps the two decimals ("99.00"); a float would print "99.0".
        let raw = serde_json::value::RawValue::from_string(self.to_string())
            .map_err(serde::ser::Error::custom)?;
        raw.serialize(serializer)
    }
}

impl<'de> Deserialize<'de> for Yuan {
    fn deserialize<D: Deserializer<'de>>(deserializer: D) -> Result<Self, D::Error> {
        let raw: Box<serde_json::value::RawValue> = Deserialize::deserialize(deserializer)?;
        let text = raw.get().trim_matches('"');
        Yuan::parse(text)
            .ok_or_else(|| serde::de::Error::custom(format!("invalid yuan amount {text}")))
    }
}

#[cfg(feature = "server")]
impl utoipa::PartialSchema for Yuan {
    fn schema() -> utoipa::openapi::RefOr<utoipa::openapi::schema::Schema> {
        utoipa::openapi::ObjectBuilder::new()
            .schema_type(utoipa::openapi::schema::Type::Number)
            .description(Some(
                "Amount in yuan with two decimals, derived from integer fen",
            ))
            .examples([serde_json::json!(99.00)])
            .into()
    }
}

#[cfg(feature = "server")]
impl utoipa::ToSchema for Yuan {}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_two_decimals() {
        assert_eq!(Yuan(9900).to_string(), "99.00");
        assert_eq!(Yuan(1).to_string(), "0.01");
        assert_eq!(Yuan(-1205).to_string(), "-12.05");
        assert_eq!(
            serde_json::to_string(&Yuan(1234)).unwrap_or_default(),
            "12.34"
        );
    }

    #[test]
    fn parses_exactly() {
        assert_eq!(Yuan::parse("12.34"), Some(Yuan(1234)));
        assert_eq!(Yuan::parse("12.3"), Some(Yuan(1230)));
        assert_eq!(Yuan::parse("12"), Some(Yuan(1200)));
        assert_eq!(Yuan::parse("0.01"), Some(Yuan(1)));
        assert_eq!(Yuan::parse("12.345"), None);
        assert_eq!(Yuan::parse("1e3"), None);
        assert_eq!(Yuan::parse("12."), None);
        assert_eq!(Yuan::parse(".5"), None);
        assert_eq!(Yuan::parse("+1"), None);
    }

    #[test]
    fn round_trips_through_json() {
        let back: Yuan = serde_json::from_str("99.00").unwrap_or_default();
        assert_eq!(back, Yuan(9900));
        let back: Yuan = serde_json::from_str("\"0.10\"").unwrap_or_default();
        assert_eq!(back, Yuan(10));
    }
}
