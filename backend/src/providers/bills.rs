//! Daily bill files to typed rows: WeChat Pay's trade bill (`tradebill`, bill_type
//! ALL) and fund-flow bill (`fundflowbill`), Alipay's `trade` bill (a zip of GBK CSV
//! files). Pure functions: bytes in, [`BillRow`]s and [`BillTotals`] out, or a
//! [`BillError`] for anything that is not a well-formed bill (never a panic).
//!
//! Amounts are read as decimal text straight into fen (`fenpay_proto::bills`); no
//! floats. Fees are normalised to one sign convention for both providers: the fee
//! charged on a payment is positive, the fee given back on a refund negative
//! (WeChat writes them so; Alipay writes 服务费 the other way round and is negated).

use std::collections::HashMap;
use std::io::Read;

use api_types::payment::PaymentMethod;
use chrono::{DateTime, NaiveDateTime, TimeZone, Utc};
use fenpay_proto::bills::yuan_to_fen_rounded;

use crate::domain::bills::{BillKind, BillRow, BillTotals};

/// A bill file we could not read.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("bill file: {0}")]
pub struct BillError(pub String);

fn err(msg: impl Into<String>) -> BillError {
    BillError(msg.into())
}

/// Largest decompressed bill we accept (a guard against compression bombs).
pub const MAX_BILL_BYTES: u64 = 256 * 1024 * 1024;

/// The largest amount one bill row may state (1 billion yuan). A file is at most
/// [`MAX_BILL_BYTES`], so it holds at most a few million rows, and every sum of rows, and
/// every sum or difference of such sums, stays far inside `i64`: the totals cannot overflow.
pub const MAX_ROW_FEN: i64 = 100_000_000_000;

/// Splits CSV text into records: comma separated, `"` quoting with `""` escapes,
/// quoted fields may hold commas and line breaks; `\n` or `\r\n` ends a record.
/// Blank lines give no record. A quote may follow WeChat's backtick prefix.
pub fn csv_records(text: &str) -> Result<Vec<Vec<String>>, BillError> {
    let mut records = Vec::new();
    let mut record: Vec<String> = Vec::new();
    let mut field = String::new();
    let mut chars = text.chars().peekable();
    let mut in_quotes = false;
    let mut line = 1usize;
    let mut touched = false;
    while let Some(c) = chars.next() {
        if in_quotes {
            match c {
                '"' if chars.peek() == Some(&'"') => {
                    chars.next();
                    field.push('"');
                }
                '"' => in_quotes = false,
                '\n' => {
                    line += 1;
                    field.push(c);
                }
                _ => field.push(c),
            }
            continue;
        }
        match c {
            // WeChat puts its backtick before the quote: `"a, b"
            '"' if field.trim().is_empty() || field.trim() == "`" => {
                let backtick = field.trim() == "`";
                field.clear();
                if backtick {
                    field.push('`');
                }
                in_quotes = true;
                touched = true;
            }
            ',' => {
                record.push(std::mem::take(&mut field));
                touched = true;
            }
            '\r' if chars.peek() == Some(&'\n') => {}
            '\n' => {
                line += 1;
                if touched || !field.trim().is_empty() {
                    record.push(std::mem::take(&mut field));
                    records.push(std::mem::take(&mut record));
                }
                field.clear();
                touched = false;
            }
            _ => {
                field.push(c);
                touched = true;
            }
        }
    }
    if in_quotes {
        return Err(err(format!("unterminated quoted field (line {line})")));
    }
    if touched || !field.trim().is_empty() {
        record.push(field);
        records.push(record);
    }
    Ok(records)
}

/// A field as the providers write it, without WeChat's leading backtick (it keeps
/// spreadsheets from reading numbers) and the spaces and tabs Alipay pads with.
fn clean(field: &str) -> &str {
    let t = field.trim();
    t.strip_prefix('`').unwrap_or(t).trim()
}

/// Column positions by header name (names cleaned; `（元）` / `(元)` dropped).
struct Columns(HashMap<String, usize>);

impl Columns {
    fn new(header: &[String]) -> Self {
        Columns(
            header
                .iter()
                .enumerate()
                .map(|(i, h)| (header_key(h), i))
                .collect(),
        )
    }

    fn index(&self, name: &str) -> Result<usize, BillError> {
        self.0
            .get(&header_key(name))
            .copied()
            .ok_or_else(|| err(format!("column {name} is missing")))
    }

    fn has(&self, name: &str) -> bool {
        self.0.contains_key(&header_key(name))
    }
}

fn header_key(name: &str) -> String {
    let c = clean(name).trim_start_matches('\u{feff}');
    c.replace("（元）", "")
        .replace("(元)", "")
        .trim()
        .to_string()
}

/// One data record with its line-ish number, read by column.
struct Record<'a> {
    fields: &'a [String],
    n: usize,
}

impl Record<'_> {
    fn text(&self, col: usize) -> Result<&str, BillError> {
        self.fields.get(col).map(|f| clean(f)).ok_or_else(|| {
            err(format!(
                "record {} is short (no column {})",
                self.n,
                col + 1
            ))
        })
    }

    fn fen(&self, col: usize, what: &str) -> Result<i64, BillError> {
        let text = self.text(col)?;
        let fen = yuan_to_fen_rounded(text).ok_or_else(|| {
            err(format!(
                "record {}: {what} {text:?} is not an amount",
                self.n
            ))
        })?;
        if fen.abs() > MAX_ROW_FEN {
            return Err(err(format!(
                "record {}: {what} {text:?} is beyond any real payment",
                self.n
            )));
        }
        Ok(fen)
    }

    fn count(&self, col: usize, what: &str) -> Result<i64, BillError> {
        let text = self.text(col)?;
        text.parse::<i64>()
            .ok()
            .filter(|n| *n >= 0)
            .ok_or_else(|| err(format!("record {}: {what} {text:?} is not a count", self.n)))
    }

    fn time(&self, col: usize, what: &str) -> Result<DateTime<Utc>, BillError> {
        let text = self.text(col)?;
        china_time(text)
            .ok_or_else(|| err(format!("record {}: {what} {text:?} is not a time", self.n)))
    }

    fn optional(&self, col: Option<usize>) -> Option<String> {
        col.and_then(|c| self.fields.get(c))
            .map(|f| clean(f).to_string())
            .filter(|s| !s.is_empty() && s != "0")
    }
}

/// `2026-12-05 10:00:00` China time (UTC+8).
fn china_time(text: &str) -> Option<DateTime<Utc>> {
    let naive = NaiveDateTime::parse_from_str(text.trim(), "%Y-%m-%d %H:%M:%S").ok()?;
    crate::providers::wechat::china()
        .from_local_datetime(&naive)
        .single()
        .map(|t| t.with_timezone(&Utc))
}

fn utf8(bytes: &[u8]) -> Result<&str, BillError> {
    let text = std::str::from_utf8(bytes).map_err(|_| err("the file is not UTF-8"))?;
    Ok(text.strip_prefix('\u{feff}').unwrap_or(text))
}

/// Gunzip with the size guard.
pub fn gunzip(bytes: &[u8]) -> Result<Vec<u8>, BillError> {
    let mut out = Vec::new();
    flate2::read::GzDecoder::new(bytes)
        .take(MAX_BILL_BYTES + 1)
        .read_to_end(&mut out)
        .map_err(|e| err(format!("gzip: {e}")))?;
    if out.len() as u64 > MAX_BILL_BYTES {
        return Err(err("the decompressed bill is too large"));
    }
    Ok(out)
}

pub mod wechat {
    //! WeChat Pay v3 bills: UTF-8 CSV, every data field prefixed with a backtick,
    //! the detail header first, then a summary header (`总交易单数,...` /
    //! `资金流水总笔数,...`) and its one row.

    use super::*;

    /// The trade bill's rows and totals.
    pub fn parse_trade_bill(bytes: &[u8]) -> Result<(Vec<BillRow>, BillTotals), BillError> {
        let records = csv_records(utf8(bytes)?)?;
        let (header, details, summary) = split_summary(&records, "总交易单数")?;
        let cols = Columns::new(header);
        let at = cols.index("交易时间")?;
        let transaction_id = cols.index("微信订单号")?;
        let out_trade_no = cols.index("商户订单号")?;
        let state = cols.index("交易状态")?;
        let settle_amount = cols.index("应结订单金额")?;
        let order_amount = cols
            .has("订单金额")
            .then(|| cols.index("订单金额"))
            .transpose()?;
        let refund_id = cols.index("微信退款单号")?;
        let out_refund_no = cols.index("商户退款单号")?;
        let refund_amount = cols.index("退款金额")?;
        let refund_status = cols.index("退款状态")?;
        let fee = cols.index("手续费")?;
        let mut rows = Vec::with_capacity(details.len());
        for (i, fields) in details.iter().enumerate() {
            let r = Record { fields, n: i + 2 };
            let kind = match r.text(state)? {
                "SUCCESS" => BillKind::Payment,
                "REFUND" => BillKind::Refund,
                other => return Err(err(format!("record {}: unknown 交易状态 {other:?}", r.n))),
            };
            let (amount_fen, status) = match kind {
                BillKind::Payment => (
                    match order_amount {
                        Some(c) => r.fen(c, "订单金额")?,
                        None => r.fen(settle_amount, "应结订单金额")?,
                    },
                    "SUCCESS".to_string(),
                ),
                BillKind::Refund => (
                    r.fen(refund_amount, "退款金额")?,
                    match r.text(refund_status)? {
                        "" => "REFUND".to_string(),
                        s => s.to_string(),
                    },
                ),
            };
            if amount_fen < 0 {
                return Err(err(format!("record {}: negative amount", r.n)));
            }
            let row = BillRow {
                provider: PaymentMethod::Wechat,
                kind,
                out_trade_no: non_empty(&r, out_trade_no, "商户订单号")?,
                provider_trade_no: non_empty(&r, transaction_id, "微信订单号")?,
                out_refund_no: (kind == BillKind::Refund)
                    .then(|| r.optional(Some(out_refund_no)))
                    .flatten(),
                provider_refund_no: (kind == BillKind::Refund)
                    .then(|| r.optional(Some(refund_id)))
                    .flatten(),
                amount_fen,
                fee_fen: r.fen(fee, "手续费")?,
                status,
                occurred_at: r.time(at, "交易时间")?,
            };
            if kind == BillKind::Refund && row.out_refund_no.is_none() {
                return Err(err(format!("record {}: refund without 商户退款单号", r.n)));
            }
            rows.push(row);
        }
        let totals = match summary {
            Some((names, values)) => {
                let cols = Columns::new(names);
                let r = Record {
                    fields: values,
                    n: records.len(),
                };
                let payments = if cols.has("订单总金额") {
                    r.fen(cols.index("订单总金额")?, "订单总金额")?
                } else {
                    r.fen(cols.index("应结订单总金额")?, "应结订单总金额")?
                };
                BillTotals {
                    rows: r.count(cols.index("总交易单数")?, "总交易单数")?,
                    payments_fen: payments,
                    refunds_fen: r.fen(cols.index("退款总金额")?, "退款总金额")?.abs(),
                    fees_fen: r.fen(cols.index("手续费总金额")?, "手续费总金额")?,
                }
            }
            None => return Err(err("the summary (总交易单数) is missing")),
        };
        Ok((rows, totals))
    }

    fn non_empty(r: &Record<'_>, col: usize, what: &str) -> Result<String, BillError> {
        match r.text(col)? {
            "" => Err(err(format!("record {}: {what} is empty", r.n))),
            s => Ok(s.to_string()),
        }
    }

    /// The detail header, the detail records, and the summary header + row.
    #[allow(clippy::type_complexity)]
    fn split_summary<'a>(
        records: &'a [Vec<String>],
        summary_first: &str,
    ) -> Result<
        (
            &'a [String],
            &'a [Vec<String>],
            Option<(&'a [String], &'a [String])>,
        ),
        BillError,
    > {
        let (header, rest) = records
            .split_first()
            .ok_or_else(|| err("the file is empty"))?;
        let at = rest
            .iter()
            .position(|r| r.first().is_some_and(|f| clean(f) == summary_first));
        match at {
            None => Ok((header, rest, None)),
            Some(i) => {
                let names = &rest[i];
                let values = rest
                    .get(i + 1)
                    .ok_or_else(|| err(format!("the summary after {summary_first} has no row")))?;
                if rest.len() > i + 2 {
                    return Err(err("records after the summary row"));
                }
                Ok((header, &rest[..i], Some((names, values))))
            }
        }
    }

    /// One fund-flow record: money in or out of the merchant's account.
    #[derive(Clone, Debug, PartialEq, Eq)]
    pub struct FundFlowRow {
        pub booked_at: DateTime<Utc>,
        /// 微信支付业务单号: the transaction or refund id it belongs to.
        pub business_no: String,
        /// 资金流水单号.
        pub flow_no: String,
        /// 业务名称 (e.g. 退款, 交易).
        pub business_name: String,
        /// 业务类型 (e.g. 交易, 退款, 扣除交易手续费).
        pub business_type: String,
        /// 收支类型 收入 (true) or 支出 (false).
        pub income: bool,
        /// 收支金额, positive.
        pub amount_fen: i64,
        /// 账户结余 after this record.
        pub balance_fen: i64,
        pub remark: String,
        /// 业务凭证号: our out_trade_no / out_refund_no where WeChat has one.
        pub voucher_no: String,
    }

    /// The fund-flow bill's summary.
    #[derive(Clone, Debug, Default, PartialEq, Eq)]
    pub struct FundFlowTotals {
        pub rows: i64,
        pub income_rows: i64,
        pub income_fen: i64,
        pub expense_rows: i64,
        pub expense_fen: i64,
    }

    /// The fund-flow bill (`/v3/bill/fundflowbill`, account BASIC).
    pub fn parse_fundflow_bill(
        bytes: &[u8],
    ) -> Result<(Vec<FundFlowRow>, FundFlowTotals), BillError> {
        let records = csv_records(utf8(bytes)?)?;
        let (header, details, summary) = split_summary(&records, "资金流水总笔数")?;
        let cols = Columns::new(header);
        let booked = cols.index("记账时间")?;
        let business_no = cols.index("微信支付业务单号")?;
        let flow_no = cols.index("资金流水单号")?;
        let business_name = cols.index("业务名称")?;
        let business_type = cols.index("业务类型")?;
        let direction = cols.index("收支类型")?;
        let amount = cols.index("收支金额")?;
        let balance = cols.index("账户结余")?;
        let remark = cols.index("备注")?;
        let voucher = cols.index("业务凭证号")?;
        let mut rows = Vec::with_capacity(details.len());
        for (i, fields) in details.iter().enumerate() {
            let r = Record { fields, n: i + 2 };
            let income = match r.text(direction)? {
                "收入" => true,
                "支出" => false,
                other => return Err(err(format!("record {}: 收支类型 {other:?}", r.n))),
            };
            let amount_fen = r.fen(amount, "收支金额")?;
            if amount_fen < 0 {
                return Err(err(format!("record {}: negative 收支金额", r.n)));
            }
            rows.push(FundFlowRow {
                booked_at: r.time(booked, "记账时间")?,
                business_no: r.text(business_no)?.to_string(),
                flow_no: r.text(flow_no)?.to_string(),
                business_name: r.text(business_name)?.to_string(),
                business_type: r.text(business_type)?.to_string(),
                income,
                amount_fen,
                balance_fen: r.fen(balance, "账户结余")?,
                remark: r.text(remark)?.to_string(),
                voucher_no: r.text(voucher)?.to_string(),
            });
        }
        let (names, values) =
            summary.ok_or_else(|| err("the summary (资金流水总笔数) is missing"))?;
        let cols = Columns::new(names);
        let r = Record {
            fields: values,
            n: records.len(),
        };
        let totals = FundFlowTotals {
            rows: r.count(cols.index("资金流水总笔数")?, "资金流水总笔数")?,
            income_rows: r.count(cols.index("收入笔数")?, "收入笔数")?,
            income_fen: r.fen(cols.index("收入金额")?, "收入金额")?,
            expense_rows: r.count(cols.index("支出笔数")?, "支出笔数")?,
            expense_fen: r.fen(cols.index("支出金额")?, "支出金额")?,
        };
        Ok((rows, totals))
    }
}

pub mod alipay {
    //! Alipay's `trade` bill: a zip holding `<pid>_<yyyymmdd>_业务明细.csv` and
    //! `<pid>_<yyyymmdd>_业务明细(汇总).csv`, both GBK, with `#` comment lines above and
    //! below the table. The detail's footer states the totals
    //! (`#交易合计：N笔，商家实收共X元，...`, `#退款合计：M笔，商家实收退款共-Y元，...`);
    //! the summary's 合计 row states the total 服务费.

    use super::*;

    /// The zip to rows and totals.
    pub fn parse_trade_bill_zip(bytes: &[u8]) -> Result<(Vec<BillRow>, BillTotals), BillError> {
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(bytes))
            .map_err(|e| err(format!("zip: {e}")))?;
        let mut detail: Option<String> = None;
        let mut summary: Option<String> = None;
        for i in 0..archive.len() {
            let mut file = archive
                .by_index(i)
                .map_err(|e| err(format!("zip entry {i}: {e}")))?;
            let raw_name = file.name_raw().to_vec();
            let name = match std::str::from_utf8(&raw_name) {
                Ok(s) => s.to_string(),
                Err(_) => encoding_rs::GBK.decode(&raw_name).0.into_owned(),
            };
            if !name.ends_with(".csv") {
                continue;
            }
            let mut content = Vec::new();
            (&mut file)
                .take(MAX_BILL_BYTES + 1)
                .read_to_end(&mut content)
                .map_err(|e| err(format!("zip entry {name}: {e}")))?;
            if content.len() as u64 > MAX_BILL_BYTES {
                return Err(err("the decompressed bill is too large"));
            }
            let text = decode_gbk(&content)?;
            if name.contains("汇总") {
                summary = Some(text);
            } else if name.contains("业务明细") {
                detail = Some(text);
            }
        }
        let detail = detail.ok_or_else(|| err("the zip has no 业务明细.csv"))?;
        parse_trade_bill(&detail, summary.as_deref())
    }

    /// GBK bytes to text (a UTF-8 BOM means UTF-8); undecodable bytes are an error.
    pub fn decode_gbk(bytes: &[u8]) -> Result<String, BillError> {
        if let Some(rest) = bytes.strip_prefix(b"\xef\xbb\xbf") {
            return Ok(utf8(rest)?.to_string());
        }
        let (text, had_errors) = encoding_rs::GBK.decode_without_bom_handling(bytes);
        if had_errors {
            return Err(err("the file is not GBK"));
        }
        Ok(text.into_owned())
    }

    /// The detail CSV (and the summary CSV, for the fee total) to rows and totals.
    pub fn parse_trade_bill(
        detail: &str,
        summary: Option<&str>,
    ) -> Result<(Vec<BillRow>, BillTotals), BillError> {
        let (table, comments) = split_comments(detail);
        let records = csv_records(&table)?;
        let (header, details) = records
            .split_first()
            .ok_or_else(|| err("the detail has no header"))?;
        let cols = Columns::new(header);
        let trade_no = cols.index("支付宝交易号")?;
        let out_trade_no = cols.index("商户订单号")?;
        let kind_col = cols.index("业务类型")?;
        let finished = cols.index("完成时间")?;
        let order_amount = cols.index("订单金额")?;
        let received = cols.index("商家实收")?;
        let request_no = cols.index("退款批次号/请求号")?;
        let fee = cols.index("服务费")?;
        let mut rows = Vec::with_capacity(details.len());
        for (i, fields) in details.iter().enumerate() {
            let r = Record { fields, n: i + 2 };
            let status = r.text(kind_col)?.to_string();
            let kind = match status.as_str() {
                "交易" => BillKind::Payment,
                "退款" => BillKind::Refund,
                other => return Err(err(format!("record {}: unknown 业务类型 {other:?}", r.n))),
            };
            let amount_fen = match kind {
                BillKind::Payment => r.fen(order_amount, "订单金额")?,
                BillKind::Refund => r.fen(received, "商家实收")?.abs(),
            };
            let out_trade = r.text(out_trade_no)?.to_string();
            let trade = r.text(trade_no)?.to_string();
            if out_trade.is_empty() || trade.is_empty() {
                return Err(err(format!("record {}: no 商户订单号 / 支付宝交易号", r.n)));
            }
            let out_refund_no = match kind {
                BillKind::Refund => Some(
                    r.optional(Some(request_no))
                        .ok_or_else(|| err(format!("record {}: refund without 请求号", r.n)))?,
                ),
                BillKind::Payment => None,
            };
            rows.push(BillRow {
                provider: PaymentMethod::Alipay,
                kind,
                out_trade_no: out_trade,
                provider_trade_no: trade,
                out_refund_no,
                provider_refund_no: None,
                amount_fen,
                fee_fen: -r.fen(fee, "服务费")?,
                status,
                occurred_at: r.time(finished, "完成时间")?,
            });
        }
        let (trade_rows, trade_fen) = footer(&comments, "#交易合计：", "商家实收共")?;
        let (refund_rows, refund_fen) = footer(&comments, "#退款合计：", "商家实收退款共")?;
        let fees_fen = match summary {
            Some(text) => summary_fee(text)?,
            None => rows.iter().map(|r| r.fee_fen).sum(),
        };
        Ok((
            rows,
            BillTotals {
                rows: trade_rows + refund_rows,
                payments_fen: trade_fen,
                refunds_fen: refund_fen.abs(),
                fees_fen,
            },
        ))
    }

    /// The table lines, and the `#` comment lines (trimmed).
    fn split_comments(text: &str) -> (String, Vec<String>) {
        let text = text.strip_prefix('\u{feff}').unwrap_or(text);
        let mut table = String::with_capacity(text.len());
        let mut comments = Vec::new();
        for line in text.split('\n') {
            let trimmed = line.trim();
            if trimmed.starts_with('#') {
                comments.push(trimmed.to_string());
            } else {
                table.push_str(line);
                table.push('\n');
            }
        }
        (table, comments)
    }

    /// `#交易合计：3笔，商家实收共0.03元，...` -> (3, 3).
    fn footer(
        comments: &[String],
        prefix: &str,
        amount_label: &str,
    ) -> Result<(i64, i64), BillError> {
        let line = comments
            .iter()
            .find_map(|c| c.strip_prefix(prefix))
            .ok_or_else(|| err(format!("the footer {prefix} is missing")))?;
        let bad = || err(format!("the footer {prefix}{line} is malformed"));
        let (count, rest) = line.split_once('笔').ok_or_else(bad)?;
        let count: i64 = count.trim().parse().map_err(|_| bad())?;
        let amount = rest
            .split_once(amount_label)
            .and_then(|(_, a)| a.split_once('元'))
            .map(|(a, _)| a.trim())
            .ok_or_else(bad)?;
        Ok((count, yuan_to_fen_rounded(amount).ok_or_else(bad)?))
    }

    /// The 合计 row's 服务费, as our sign convention (charged positive).
    fn summary_fee(text: &str) -> Result<i64, BillError> {
        let (table, _) = split_comments(text);
        let records = csv_records(&table)?;
        let (header, rows) = records
            .split_first()
            .ok_or_else(|| err("the summary has no header"))?;
        let cols = Columns::new(header);
        let fee = cols.index("服务费")?;
        let total = rows
            .iter()
            .find(|r| r.iter().any(|f| clean(f) == "合计"))
            .ok_or_else(|| err("the summary has no 合计 row"))?;
        let r = Record {
            fields: total,
            n: records.len(),
        };
        Ok(-r.fen(fee, "服务费")?)
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests;
