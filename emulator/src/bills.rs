//! Daily bills built from the emulator's own trades and refunds, in the providers'
//! formats: WeChat Pay's trade bill (ALL) and fund-flow bill (UTF-8 CSV, every field
//! prefixed with a backtick, a summary header and row at the end) and Alipay's
//! `trade` bill (a zip of two GBK CSV files, 业务明细 and 业务明细(汇总), with `#`
//! comment lines above and below the table).
//!
//! The day is a China day (UTC+8 midnight to midnight). Fees: the emulated merchant
//! pays **0.6 %** per payment (WeChat's and Alipay's standard rate for most
//! categories), rounded half up to the fen on each row; a refund gives back the
//! proportional part of its payment's fee (`fee * refund / total`, rounded half up).
//!
//! Bills handed out are kept under a random token until [`BillStore::reset`], so a
//! download URL stays valid as long as the emulator runs (the real ones expire after
//! 30 s at Alipay, 5 minutes at WeChat).

use std::collections::HashMap;
use std::io::Write;
use std::sync::Mutex;

use chrono::{DateTime, FixedOffset, NaiveDate, Utc};
use fenpay_proto::bills::fen_to_yuan;
use rand::Rng;

/// China Standard Time, the providers' bill day.
pub fn china() -> FixedOffset {
    FixedOffset::east_opt(8 * 3600).unwrap_or_else(|| chrono::Offset::fix(&Utc))
}

/// The China day of an instant.
pub fn china_day(t: DateTime<Utc>) -> NaiveDate {
    t.with_timezone(&china()).date_naive()
}

fn china_time(t: DateTime<Utc>) -> String {
    t.with_timezone(&china())
        .format("%Y-%m-%d %H:%M:%S")
        .to_string()
}

/// The fee on a payment: 0.6 %, rounded half up.
pub fn fee_fen(amount_fen: i64) -> i64 {
    (amount_fen.max(0) * 6 + 500) / 1000
}

/// The fee a refund gives back: the payment's fee in proportion, rounded half up.
pub fn fee_back_fen(total_fen: i64, refund_fen: i64) -> i64 {
    if total_fen <= 0 {
        return 0;
    }
    let fee = fee_fen(total_fen);
    (fee * refund_fen.max(0) * 2 + total_fen) / (2 * total_fen)
}

/// A successful payment as a bill row needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillPayment {
    pub out_trade_no: String,
    /// WeChat transaction_id / Alipay trade_no.
    pub trade_no: String,
    pub amount_fen: i64,
    pub at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub subject: String,
    /// WeChat trade type (NATIVE, ...); Alipay: unused.
    pub trade_type: String,
    /// WeChat openid / Alipay buyer logon id.
    pub payer: String,
}

/// A refund as a bill row needs it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct BillRefund {
    pub out_trade_no: String,
    pub trade_no: String,
    pub out_refund_no: String,
    /// WeChat refund_id; Alipay: none.
    pub refund_id: String,
    pub amount_fen: i64,
    /// The payment's total.
    pub total_fen: i64,
    pub at: DateTime<Utc>,
    pub created_at: DateTime<Utc>,
    pub subject: String,
    /// WeChat refund status (SUCCESS, PROCESSING, ...).
    pub status: String,
    pub trade_type: String,
    pub payer: String,
}

/// One day's activity on one provider.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct DayActivity {
    pub payments: Vec<BillPayment>,
    pub refunds: Vec<BillRefund>,
}

impl DayActivity {
    pub fn is_empty(&self) -> bool {
        self.payments.is_empty() && self.refunds.is_empty()
    }

    /// Payments and refunds by time.
    fn sorted(&self) -> (Vec<&BillPayment>, Vec<&BillRefund>) {
        let mut p: Vec<&BillPayment> = self.payments.iter().collect();
        p.sort_by_key(|x| x.at);
        let mut r: Vec<&BillRefund> = self.refunds.iter().collect();
        r.sort_by_key(|x| x.at);
        (p, r)
    }
}

fn digits(n: usize) -> String {
    let mut rng = rand::thread_rng();
    (0..n)
        .map(|_| char::from(b'0' + rng.gen_range(0..10u8)))
        .collect()
}

/// The payment the `bill_extra_payment` fault adds: an order number fenpay never
/// made, with a provider number of the right shape, paid at noon of `day`.
pub fn extra_payment(day: NaiveDate, wechat: bool) -> BillPayment {
    let at = day
        .and_hms_opt(12, 0, 0)
        .and_then(|t| t.and_local_timezone(china()).single())
        .map_or_else(Utc::now, |t| t.with_timezone(&Utc));
    BillPayment {
        out_trade_no: format!("EXT{}{}", day.format("%Y%m%d"), digits(8)),
        trade_no: if wechat {
            format!("4200{}", digits(24))
        } else {
            format!("{}22001{}", day.format("%Y%m%d"), digits(15))
        },
        amount_fen: 1000 + rand::thread_rng().gen_range(0..9000),
        at,
        created_at: at,
        subject: "未知订单".to_string(),
        trade_type: "NATIVE".to_string(),
        payer: if wechat {
            format!("o{}", digits(27))
        } else {
            "unk***@example.com".to_string()
        },
    }
}

/// Quote a CSV field when it needs it.
fn csv_field(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("\"{}\"", text.replace('"', "\"\""))
    } else {
        text.to_string()
    }
}

/// A WeChat field: backtick first (inside the quotes when quoted).
fn wx(text: &str) -> String {
    if text.contains([',', '"', '\n', '\r']) {
        format!("`\"{}\"", text.replace('"', "\"\""))
    } else {
        format!("`{text}")
    }
}

fn fee5(fen: i64) -> String {
    format!("{}000", fen_to_yuan(fen))
}

/// WeChat Pay's trade bill (bill_type ALL) for one merchant and day.
pub fn wechat_trade_bill(appid: &str, mchid: &str, day: &DayActivity) -> String {
    let mut out = String::from(
        "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注\r\n",
    );
    let (payments, refunds) = day.sorted();
    let (mut paid, mut refunded, mut fees) = (0i64, 0i64, 0i64);
    for p in &payments {
        let fee = fee_fen(p.amount_fen);
        paid += p.amount_fen;
        fees += fee;
        let amount = fen_to_yuan(p.amount_fen);
        let fields = [
            china_time(p.at),
            appid.to_string(),
            mchid.to_string(),
            "0".into(),
            String::new(),
            p.trade_no.clone(),
            p.out_trade_no.clone(),
            p.payer.clone(),
            p.trade_type.clone(),
            "SUCCESS".into(),
            "OTHERS".into(),
            "CNY".into(),
            amount.clone(),
            "0.00".into(),
            "0".into(),
            "0".into(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            String::new(),
            p.subject.clone(),
            String::new(),
            fee5(fee),
            "0.60%".into(),
            amount,
            "0.00".into(),
            String::new(),
        ];
        out.push_str(&fields.iter().map(|f| wx(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    for r in &refunds {
        let back = fee_back_fen(r.total_fen, r.amount_fen);
        refunded += r.amount_fen;
        fees -= back;
        let amount = fen_to_yuan(r.amount_fen);
        let fields = [
            china_time(r.at),
            appid.to_string(),
            mchid.to_string(),
            "0".into(),
            String::new(),
            r.trade_no.clone(),
            r.out_trade_no.clone(),
            r.payer.clone(),
            r.trade_type.clone(),
            "REFUND".into(),
            "OTHERS".into(),
            "CNY".into(),
            "0.00".into(),
            "0.00".into(),
            r.refund_id.clone(),
            r.out_refund_no.clone(),
            amount.clone(),
            "0.00".into(),
            "ORIGINAL".into(),
            r.status.clone(),
            r.subject.clone(),
            String::new(),
            fee5(-back),
            "0.60%".into(),
            "0.00".into(),
            amount,
            String::new(),
        ];
        out.push_str(&fields.iter().map(|f| wx(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out.push_str("总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\r\n");
    let summary = [
        (payments.len() + refunds.len()).to_string(),
        fen_to_yuan(paid),
        fen_to_yuan(refunded),
        "0.00".into(),
        fee5(fees),
        fen_to_yuan(paid),
        fen_to_yuan(refunded),
    ];
    out.push_str(&summary.iter().map(|f| wx(f)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    out
}

/// One fund-flow record: (time, business no, name, income, amount, voucher).
type FlowEntry = (DateTime<Utc>, String, &'static str, bool, i64, String);

/// WeChat Pay's fund-flow bill (account BASIC): the money in and out of the
/// merchant's balance, starting the day at 0.00.
pub fn wechat_fundflow_bill(mchid: &str, day_date: NaiveDate, day: &DayActivity) -> String {
    let mut out = String::from(
        "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号\r\n",
    );
    let mut entries: Vec<FlowEntry> = Vec::new();
    for p in &day.payments {
        entries.push((
            p.at,
            p.trade_no.clone(),
            "交易",
            true,
            p.amount_fen,
            p.out_trade_no.clone(),
        ));
        let fee = fee_fen(p.amount_fen);
        if fee > 0 {
            entries.push((
                p.at,
                p.trade_no.clone(),
                "扣除交易手续费",
                false,
                fee,
                p.out_trade_no.clone(),
            ));
        }
    }
    for r in &day.refunds {
        entries.push((
            r.at,
            r.refund_id.clone(),
            "退款",
            false,
            r.amount_fen,
            r.out_refund_no.clone(),
        ));
        let back = fee_back_fen(r.total_fen, r.amount_fen);
        if back > 0 {
            entries.push((
                r.at,
                r.refund_id.clone(),
                "退还交易手续费",
                true,
                back,
                r.out_refund_no.clone(),
            ));
        }
    }
    entries.sort_by_key(|e| e.0);
    let (mut balance, mut income, mut income_n, mut expense, mut expense_n) =
        (0i64, 0i64, 0, 0i64, 0);
    for (seq, (at, business_no, name, is_income, amount, voucher)) in entries.iter().enumerate() {
        if *is_income {
            balance += amount;
            income += amount;
            income_n += 1;
        } else {
            balance -= amount;
            expense += amount;
            expense_n += 1;
        }
        let fields = [
            china_time(*at),
            business_no.clone(),
            format!("{mchid}{}{:010}", day_date.format("%Y%m%d"), seq + 1),
            (*name).to_string(),
            (*name).to_string(),
            if *is_income { "收入" } else { "支出" }.to_string(),
            fen_to_yuan(*amount),
            fen_to_yuan(balance),
            "system".into(),
            String::new(),
            voucher.clone(),
        ];
        out.push_str(&fields.iter().map(|f| wx(f)).collect::<Vec<_>>().join(","));
        out.push_str("\r\n");
    }
    out.push_str("资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\r\n");
    let summary = [
        entries.len().to_string(),
        income_n.to_string(),
        fen_to_yuan(income),
        expense_n.to_string(),
        fen_to_yuan(expense),
    ];
    out.push_str(&summary.iter().map(|f| wx(f)).collect::<Vec<_>>().join(","));
    out.push_str("\r\n");
    out
}

/// Alipay's `trade` bill: the detail CSV and the summary CSV (UTF-8 here; GBK in the zip).
pub fn alipay_trade_bill(pid: &str, day_date: NaiveDate, day: &DayActivity) -> (String, String) {
    let next = day_date.succ_opt().unwrap_or(day_date);
    let cn = |d: NaiveDate| d.format("%Y年%m月%d日").to_string();
    let exported = china_time(Utc::now());
    let mut d = String::new();
    d.push_str("#支付宝业务明细查询\r\n");
    d.push_str(&format!("#账号：[{pid}0156]\r\n"));
    d.push_str(&format!(
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]\r\n",
        cn(day_date),
        cn(next)
    ));
    d.push_str("#-----------------------------------------业务明细列表----------------------------------------\r\n");
    d.push_str("支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注\r\n");
    let (payments, refunds) = day.sorted();
    let (mut paid, mut paid_fee, mut refunded, mut refund_fee) = (0i64, 0i64, 0i64, 0i64);
    let row = |fields: Vec<String>| -> String {
        let mut line = fields
            .iter()
            .map(|f| format!("{}\t", csv_field(f)))
            .collect::<Vec<_>>()
            .join(",");
        line.push_str("\r\n");
        line
    };
    for p in &payments {
        let fee = fee_fen(p.amount_fen);
        paid += p.amount_fen;
        paid_fee += fee;
        let amount = fen_to_yuan(p.amount_fen);
        d.push_str(&row(vec![
            p.trade_no.clone(),
            p.out_trade_no.clone(),
            "交易".into(),
            p.subject.clone(),
            china_time(p.created_at),
            china_time(p.at),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            p.payer.clone(),
            amount.clone(),
            amount,
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            fen_to_yuan(-fee),
            "0.00".into(),
            String::new(),
        ]));
    }
    for r in &refunds {
        let back = fee_back_fen(r.total_fen, r.amount_fen);
        refunded += r.amount_fen;
        refund_fee += back;
        d.push_str(&row(vec![
            r.trade_no.clone(),
            r.out_trade_no.clone(),
            "退款".into(),
            r.subject.clone(),
            china_time(r.created_at),
            china_time(r.at),
            String::new(),
            String::new(),
            String::new(),
            String::new(),
            r.payer.clone(),
            fen_to_yuan(r.total_fen),
            fen_to_yuan(-r.amount_fen),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            "0.00".into(),
            String::new(),
            "0.00".into(),
            "0.00".into(),
            r.out_refund_no.clone(),
            fen_to_yuan(back),
            "0.00".into(),
            String::new(),
        ]));
    }
    d.push_str("#-----------------------------------------业务明细列表结束------------------------------------\r\n");
    d.push_str(&format!(
        "#交易合计：{}笔，商家实收共{}元，商家优惠共0.00元，支付宝优惠共0.00元，服务费共{}元\r\n",
        payments.len(),
        fen_to_yuan(paid),
        fen_to_yuan(-paid_fee)
    ));
    d.push_str(&format!(
        "#退款合计：{}笔，商家实收退款共{}元，商家优惠退款共0.00元，支付宝优惠退款共0.00元，服务费退款共{}元\r\n",
        refunds.len(),
        fen_to_yuan(-refunded),
        fen_to_yuan(refund_fee)
    ));
    d.push_str(&format!("#导出时间：[{exported}]\r\n"));

    let net = paid - refunded;
    let fee_net = -(paid_fee - refund_fee);
    let totals = vec![
        payments.len().to_string(),
        refunds.len().to_string(),
        fen_to_yuan(paid),
        fen_to_yuan(net),
        "0.00".into(),
        "0.00".into(),
        "0.00".into(),
        fen_to_yuan(fee_net),
        "0.00".into(),
        fen_to_yuan(net + fee_net),
    ];
    let mut s = String::new();
    s.push_str("#支付宝业务汇总查询\r\n");
    s.push_str(&format!("#账号：[{pid}0156]\r\n"));
    s.push_str(&format!(
        "#起始日期：[{} 00:00:00]   终止日期：[{} 00:00:00]\r\n",
        cn(day_date),
        cn(next)
    ));
    s.push_str("#-----------------------------------------业务汇总列表----------------------------------------\r\n");
    s.push_str("门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）\r\n");
    let mut store = vec![String::new(), String::new()];
    store.extend(totals.iter().cloned());
    s.push_str(&row(store));
    let mut total = vec!["合计".to_string(), String::new()];
    total.extend(totals);
    s.push_str(&row(total));
    s.push_str("#-----------------------------------------业务汇总列表结束------------------------------------\r\n");
    s.push_str(&format!("#导出时间：[{exported}]\r\n"));
    (d, s)
}

/// The Alipay bill zip: both CSV files, GBK.
pub fn alipay_zip(
    pid: &str,
    day_date: NaiveDate,
    detail: &str,
    summary: &str,
) -> anyhow::Result<Vec<u8>> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    let stem = format!("{pid}_{}", day_date.format("%Y%m%d"));
    w.start_file(format!("{stem}_业务明细.csv"), opts)?;
    w.write_all(&encoding_rs::GBK.encode(detail).0)?;
    w.start_file(format!("{stem}_业务明细(汇总).csv"), opts)?;
    w.write_all(&encoding_rs::GBK.encode(summary).0)?;
    Ok(w.finish()?.into_inner())
}

/// Gzip bytes (WeChat's `tar_type=GZIP`).
pub fn gzip(bytes: &[u8]) -> anyhow::Result<Vec<u8>> {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(bytes)?;
    Ok(e.finish()?)
}

/// A bill file handed out under a download token.
#[derive(Clone, Debug)]
pub struct StoredBill {
    pub bytes: Vec<u8>,
    /// WeChat: gzip it on the way out (`tar_type=GZIP`).
    pub gzip: bool,
    /// The download's file name.
    pub file_name: String,
}

/// Download tokens to bill files.
#[derive(Debug, Default)]
pub struct BillStore(Mutex<HashMap<String, StoredBill>>);

impl BillStore {
    /// Keep `bill`; returns its token.
    pub fn put(&self, bill: StoredBill) -> String {
        let token: String = {
            let mut rng = rand::thread_rng();
            (0..32)
                .map(|_| char::from(b"abcdefghijklmnopqrstuvwxyz0123456789"[rng.gen_range(0..36)]))
                .collect()
        };
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .insert(token.clone(), bill);
        token
    }

    pub fn get(&self, token: &str) -> Option<StoredBill> {
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .get(token)
            .cloned()
    }

    pub fn reset(&self) {
        self.0.lock().unwrap_or_else(|p| p.into_inner()).clear();
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::expect_used)]
mod tests {
    use super::*;

    fn day() -> NaiveDate {
        NaiveDate::from_ymd_opt(2026, 12, 5).unwrap_or_default()
    }

    fn activity() -> DayActivity {
        let at = |h| {
            day()
                .and_hms_opt(h, 0, 0)
                .and_then(|t| t.and_local_timezone(china()).single())
                .map(|t| t.with_timezone(&Utc))
                .unwrap_or_default()
        };
        DayActivity {
            payments: vec![
                BillPayment {
                    out_trade_no: "FP1".into(),
                    trade_no: "4200000000000000000000000001".into(),
                    amount_fen: 1234,
                    at: at(10),
                    created_at: at(9),
                    subject: "积分, \"100\"".into(),
                    trade_type: "NATIVE".into(),
                    payer: "o1".into(),
                },
                BillPayment {
                    out_trade_no: "FP2".into(),
                    trade_no: "4200000000000000000000000002".into(),
                    amount_fen: 1,
                    at: at(11),
                    created_at: at(11),
                    subject: "会员".into(),
                    trade_type: "NATIVE".into(),
                    payer: "o2".into(),
                },
            ],
            refunds: vec![BillRefund {
                out_trade_no: "FP1".into(),
                trade_no: "4200000000000000000000000001".into(),
                out_refund_no: "RF1".into(),
                refund_id: "50300000000000000000000000001".into(),
                amount_fen: 617,
                total_fen: 1234,
                at: at(12),
                created_at: at(12),
                subject: "积分".into(),
                status: "SUCCESS".into(),
                trade_type: "NATIVE".into(),
                payer: "o1".into(),
            }],
        }
    }

    #[test]
    fn fees_are_six_per_mille_half_up() {
        assert_eq!(fee_fen(1234), 7); // 7.404
        assert_eq!(fee_fen(1), 0); // 0.006
        assert_eq!(fee_fen(250), 2); // 1.5 -> 2
        assert_eq!(fee_fen(10_000), 60);
        assert_eq!(fee_back_fen(1234, 617), 4); // 3.5 -> 4
        assert_eq!(fee_back_fen(1234, 1234), 7);
        assert_eq!(fee_back_fen(10_000, 100), 1); // 0.6 -> 1
        assert_eq!(fee_back_fen(0, 0), 0);
    }

    #[test]
    fn wechat_trade_bill_shape() {
        let text = wechat_trade_bill("wxapp", "1900000109", &activity());
        let lines: Vec<&str> = text.split("\r\n").collect();
        assert!(lines[0].starts_with("交易时间,公众账号ID,商户号"));
        assert_eq!(lines[0].split(',').count(), 27);
        assert!(lines[1].starts_with("`2026-12-05 10:00:00,`wxapp,`1900000109,"));
        assert!(lines[1].contains(",`\"积分, \"\"100\"\"\","));
        assert!(lines[1].contains(",`0.07000,`0.60%,`12.34,"));
        assert!(lines[3].contains(",`REFUND,"));
        assert!(lines[3].contains(",`RF1,`6.17,"));
        assert!(lines[3].contains(",`-0.04000,"));
        assert_eq!(lines[4], "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额");
        assert_eq!(lines[5], "`3,`12.35,`6.17,`0.00,`0.03000,`12.35,`6.17");
    }

    #[test]
    fn wechat_fundflow_bill_balances() {
        let text = wechat_fundflow_bill("1900000109", day(), &activity());
        let last = text.trim_end().lines().last().unwrap_or_default();
        // in: 12.34 + 0.01 + 0.04 fee back; out: 0.07 fee + 6.17 refund
        assert_eq!(last, "`5,`3,`12.39,`2,`6.24");
        assert!(text.contains(",`收入,`12.34,`12.34,"));
    }

    #[test]
    fn alipay_bill_zip_is_gbk() {
        let (detail, summary) = alipay_trade_bill("2088000000000001", day(), &activity());
        assert!(detail.contains("#交易合计：2笔，商家实收共12.35元"));
        assert!(detail.contains("#退款合计：1笔，商家实收退款共-6.17元"));
        assert!(summary.contains("合计\t,\t,2\t,1\t,12.35\t,6.18\t,"));
        let zip = alipay_zip("2088000000000001", day(), &detail, &summary).unwrap_or_default();
        let mut archive = zip::ZipArchive::new(std::io::Cursor::new(zip)).unwrap();
        assert_eq!(archive.len(), 2);
        let mut raw = Vec::new();
        std::io::Read::read_to_end(&mut archive.by_index(0).unwrap(), &mut raw).unwrap();
        let (text, _, bad) = encoding_rs::GBK.decode(&raw);
        assert!(!bad);
        assert_eq!(text, detail);
        assert!(std::str::from_utf8(&raw).is_err(), "GBK, not UTF-8");
    }

    #[test]
    fn china_day_cuts_at_utc_16() {
        let t = DateTime::parse_from_rfc3339("2026-12-04T16:00:00Z")
            .map(|t| t.with_timezone(&Utc))
            .unwrap_or_default();
        assert_eq!(china_day(t), day());
        assert_eq!(
            china_day(t - chrono::Duration::seconds(1)),
            day().pred_opt().unwrap_or_default()
        );
    }
}
