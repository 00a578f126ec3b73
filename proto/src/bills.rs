//! Pure helpers shared by the daily-bill parsers (backend) and the emulator that
//! writes bills: the SHA-1 WeChat Pay states over a decompressed bill file, and
//! yuan amounts with any number of decimals to integer fen (never floats).

/// Lower-case hex SHA-1 of `bytes` (WeChat Pay's bill `hash_value` with `hash_type`
/// `SHA1`, computed over the decompressed file).
pub fn sha1_hex(bytes: &[u8]) -> String {
    hex::encode(ring::digest::digest(&ring::digest::SHA1_FOR_LEGACY_USE_ONLY, bytes).as_ref())
}

/// `"12.34"` / `"-0.01"` / `"3"` / `"0.00600"` yuan to fen. Digits past the second
/// decimal (WeChat's 手续费 has five) are rounded half away from zero. `None` for
/// anything that is not a plain decimal number, or that overflows.
pub fn yuan_to_fen_rounded(text: &str) -> Option<i64> {
    let text = text.trim();
    let (negative, unsigned) = match text.strip_prefix('-') {
        Some(rest) => (true, rest),
        None => (false, text.strip_prefix('+').unwrap_or(text)),
    };
    let (int, frac) = match unsigned.split_once('.') {
        Some((i, f)) => (i, f),
        None => (unsigned, ""),
    };
    if int.is_empty() || !int.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    if !frac.bytes().all(|b| b.is_ascii_digit()) || (unsigned.contains('.') && frac.is_empty()) {
        return None;
    }
    let mut fen: i64 = int.parse::<i64>().ok()?.checked_mul(100)?;
    let digits: Vec<i64> = frac.bytes().map(|b| i64::from(b - b'0')).collect();
    fen = fen.checked_add(digits.first().copied().unwrap_or(0) * 10)?;
    fen = fen.checked_add(digits.get(1).copied().unwrap_or(0))?;
    if digits.get(2).copied().unwrap_or(0) >= 5 {
        fen = fen.checked_add(1)?;
    }
    Some(if negative { -fen } else { fen })
}

/// Fen as yuan with two decimals (`-1` -> `"-0.01"`).
pub fn fen_to_yuan(fen: i64) -> String {
    let sign = if fen < 0 { "-" } else { "" };
    let abs = fen.unsigned_abs();
    format!("{sign}{}.{:02}", abs / 100, abs % 100)
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    #[test]
    fn sha1_known_answer() {
        assert_eq!(sha1_hex(b"abc"), "a9993e364706816aba3e25717850c26c9cd0d89d");
    }

    #[test]
    fn yuan_amounts_to_fen() {
        assert_eq!(yuan_to_fen_rounded("12.34"), Some(1234));
        assert_eq!(yuan_to_fen_rounded("-0.01"), Some(-1));
        assert_eq!(yuan_to_fen_rounded("3"), Some(300));
        assert_eq!(yuan_to_fen_rounded("0.5"), Some(50));
        assert_eq!(yuan_to_fen_rounded("0.00600"), Some(1));
        assert_eq!(yuan_to_fen_rounded("0.00400"), Some(0));
        assert_eq!(yuan_to_fen_rounded("-0.00500"), Some(-1));
        for bad in [
            "",
            "-",
            "1.",
            ".5",
            "1,00",
            "1e3",
            "abc",
            "99999999999999999999",
        ] {
            assert_eq!(yuan_to_fen_rounded(bad), None, "{bad}");
        }
        assert_eq!(fen_to_yuan(-1), "-0.01");
        assert_eq!(fen_to_yuan(123456), "1234.56");
    }
}
