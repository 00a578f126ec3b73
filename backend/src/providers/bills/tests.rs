//! Parser tests on real-shaped samples (column lists as in the providers' bills).

use super::*;
use chrono::TimeZone;
use std::io::Write;

const WECHAT_HEADER: &str = "交易时间,公众账号ID,商户号,特约商户号,设备号,微信订单号,商户订单号,用户标识,交易类型,交易状态,付款银行,货币种类,应结订单金额,代金券金额,微信退款单号,商户退款单号,退款金额,充值券退款金额,退款类型,退款状态,商品名称,商户数据包,手续费,费率,订单金额,申请退款金额,费率备注";

fn wechat_bill() -> String {
    [
        WECHAT_HEADER,
        "`2026-12-05 10:01:02,`wx8888888888888888,`1900000109,`0,`,`4200002612052026120512345678,`FP001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,`12.34,`0.00,`0,`0,`0.00,`0.00,`,`,`\"积分, 100 点\",`,`0.07000,`0.60%,`12.34,`0.00,`",
        "`2026-12-05 11:00:00,`wx8888888888888888,`1900000109,`0,`,`4200002612052026120512345679,`FP002,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`SUCCESS,`OTHERS,`CNY,`1.00,`0.00,`0,`0,`0.00,`0.00,`,`,`会员,`,`0.01000,`0.60%,`1.00,`0.00,`",
        "`2026-12-05 12:30:00,`wx8888888888888888,`1900000109,`0,`,`4200002612052026120512345678,`FP001,`oUpF8uMuAJO_M2pxb1Q9zNjWeS6o,`NATIVE,`REFUND,`OTHERS,`CNY,`0.00,`0.00,`50300000002026120512345678,`RF001,`2.00,`0.00,`ORIGINAL,`SUCCESS,`积分,`,`-0.01000,`0.60%,`0.00,`2.00,`",
        "总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额",
        "`3,`13.34,`2.00,`0.00,`0.07000,`13.34,`2.00",
    ]
    .join("\r\n")
        + "\r\n"
}

fn china(y: i32, m: u32, d: u32, h: u32, mi: u32, s: u32) -> DateTime<Utc> {
    crate::providers::wechat::china()
        .with_ymd_and_hms(y, m, d, h, mi, s)
        .single()
        .map(|t| t.with_timezone(&Utc))
        .unwrap_or_default()
}

#[test]
fn wechat_trade_bill_rows_and_totals() {
    let (rows, totals) = wechat::parse_trade_bill(wechat_bill().as_bytes()).unwrap();
    assert_eq!(rows.len(), 3);
    assert_eq!(
        rows[0],
        BillRow {
            provider: PaymentMethod::Wechat,
            kind: BillKind::Payment,
            out_trade_no: "FP001".into(),
            provider_trade_no: "4200002612052026120512345678".into(),
            out_refund_no: None,
            provider_refund_no: None,
            amount_fen: 1234,
            fee_fen: 7,
            status: "SUCCESS".into(),
            occurred_at: china(2026, 12, 5, 10, 1, 2),
        }
    );
    assert_eq!(rows[1].amount_fen, 100);
    assert_eq!(rows[2].kind, BillKind::Refund);
    assert_eq!(rows[2].out_refund_no.as_deref(), Some("RF001"));
    assert_eq!(
        rows[2].provider_refund_no.as_deref(),
        Some("50300000002026120512345678")
    );
    assert_eq!(rows[2].amount_fen, 200);
    assert_eq!(rows[2].fee_fen, -1);
    assert_eq!(rows[2].status, "SUCCESS");
    assert_eq!(
        totals,
        BillTotals {
            rows: 3,
            payments_fen: 1334,
            refunds_fen: 200,
            fees_fen: 7,
        }
    );
}

#[test]
fn wechat_empty_bill_is_header_and_zero_summary() {
    let text = format!(
        "{WECHAT_HEADER}\n总交易单数,应结订单总金额,退款总金额,充值券退款总金额,手续费总金额,订单总金额,申请退款总金额\n`0,`0.00,`0.00,`0.00,`0.00000,`0.00,`0.00\n"
    );
    let (rows, totals) = wechat::parse_trade_bill(text.as_bytes()).unwrap();
    assert!(rows.is_empty());
    assert_eq!(totals, BillTotals::default());
}

#[test]
fn wechat_malformed_bills_are_errors() {
    let good = wechat_bill();
    let cases: Vec<(String, &str)> = vec![
        (String::new(), "empty"),
        ("garbage".into(), "column"),
        (
            good.replace("`0.60%,`12.34,", "`0.60%,`12.3x,"),
            "not an amount",
        ),
        (
            good.replace("`SUCCESS,`OTHERS,`CNY,`1.00", "`PAYING,`OTHERS,`CNY,`1.00"),
            "交易状态",
        ),
        (good.replace("`3,`13.34", "`x,`13.34"), "count"),
        (
            good.replace("`\"积分, 100 点\"", "`\"积分, 100 点"),
            "unterminated",
        ),
        (
            good.lines().take(4).collect::<Vec<_>>().join("\n"),
            "summary",
        ),
        (good.replace("`2026-12-05 11:00:00", "`yesterday"), "time"),
        (good.replace(",`RF001,", ",`,"), "商户退款单号"),
    ];
    for (text, expect) in cases {
        let e = wechat::parse_trade_bill(text.as_bytes()).unwrap_err();
        assert!(e.0.contains(expect), "{expect}: {e}");
    }
    assert!(wechat::parse_trade_bill(b"\xff\xfe").is_err());
}

#[test]
fn wechat_fund_flow_bill() {
    let text = "记账时间,微信支付业务单号,资金流水单号,业务名称,业务类型,收支类型,收支金额（元）,账户结余（元）,资金变更提交申请人,备注,业务凭证号\n\
`2026-12-05 10:01:02,`4200002612052026120512345678,`1900000109202612051000000001,`交易,`交易,`收入,`12.34,`12.34,`system,`,`FP001\n\
`2026-12-05 10:01:02,`4200002612052026120512345678,`1900000109202612051000000002,`扣除交易手续费,`扣除交易手续费,`支出,`0.07,`12.27,`system,`,`FP001\n\
`2026-12-05 12:30:00,`50300000002026120512345678,`1900000109202612051000000003,`退款,`退款,`支出,`2.00,`10.27,`1900000109,`\"退款, 部分\",`RF001\n\
资金流水总笔数,收入笔数,收入金额,支出笔数,支出金额\n\
`3,`1,`12.34,`2,`2.07\n";
    let (rows, totals) = wechat::parse_fundflow_bill(text.as_bytes()).unwrap();
    assert_eq!(rows.len(), 3);
    assert!(rows[0].income);
    assert_eq!(rows[1].amount_fen, 7);
    assert_eq!(rows[1].balance_fen, 1227);
    assert_eq!(rows[2].remark, "退款, 部分");
    assert_eq!(rows[2].voucher_no, "RF001");
    assert_eq!(
        totals,
        wechat::FundFlowTotals {
            rows: 3,
            income_rows: 1,
            income_fen: 1234,
            expense_rows: 2,
            expense_fen: 207
        }
    );
    assert!(wechat::parse_fundflow_bill(text.replace("`收入,", "`in,").as_bytes()).is_err());
}

const ALIPAY_HEADER: &str = "支付宝交易号,商户订单号,业务类型,商品名称,创建时间,完成时间,门店编号,门店名称,操作员,终端号,对方账户,订单金额（元）,商家实收（元）,支付宝红包（元）,集分宝（元）,支付宝优惠（元）,商家优惠（元）,券核销金额（元）,券名称,商家红包消费金额（元）,卡消费金额（元）,退款批次号/请求号,服务费（元）,分润（元）,备注";

fn alipay_detail() -> String {
    [
        "#支付宝业务明细查询",
        "#账号：[20880000000000010156]",
        "#起始日期：[2026年12月05日 00:00:00]   终止日期：[2026年12月06日 00:00:00]",
        "#-----------------------------------------业务明细列表----------------------------------------",
        ALIPAY_HEADER,
        "2026120522001400001234567890\t,FP101\t,交易\t,\"积分, 100 点\"\t,2026-12-05 09:00:00\t,2026-12-05 09:00:30\t,\t,\t,\t,\t,tes***@example.com\t,12.34\t,12.34\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,\t,-0.07\t,0.00\t,\t",
        "2026120522001400001234567890\t,FP101\t,退款\t,积分\t,2026-12-05 09:00:00\t,2026-12-05 13:00:00\t,\t,\t,\t,\t,tes***@example.com\t,12.34\t,-2.00\t,0.00\t,0.00\t,0.00\t,0.00\t,0.00\t,\t,0.00\t,0.00\t,RF101\t,0.01\t,0.00\t,\t",
        "#-----------------------------------------业务明细列表结束------------------------------------",
        "#交易合计：1笔，商家实收共12.34元，商家优惠共0.00元，支付宝优惠共0.00元，服务费共-0.07元",
        "#退款合计：1笔，商家实收退款共-2.00元，商家优惠退款共0.00元，支付宝优惠退款共0.00元，服务费退款共0.01元",
        "#导出时间：[2026年12月06日 09:12:34]",
    ]
    .join("\r\n")
        + "\r\n"
}

fn alipay_summary() -> String {
    [
        "#支付宝业务汇总查询",
        "#账号：[20880000000000010156]",
        "#-----------------------------------------业务汇总列表----------------------------------------",
        "门店编号,门店名称,交易订单总笔数,退款订单总笔数,订单金额（元）,商家实收（元）,支付宝优惠（元）,商家优惠（元）,卡消费金额（元）,服务费（元）,分润（元）,实收净额（元）",
        "\t,\t,1\t,1\t,12.34\t,10.34\t,0.00\t,0.00\t,0.00\t,-0.06\t,0.00\t,10.28\t",
        "合计\t,\t,1\t,1\t,12.34\t,10.34\t,0.00\t,0.00\t,0.00\t,-0.06\t,0.00\t,10.28\t",
        "#-----------------------------------------业务汇总列表结束------------------------------------",
        "#导出时间：[2026年12月06日 09:12:34]",
    ]
    .join("\r\n")
        + "\r\n"
}

fn gbk(text: &str) -> Vec<u8> {
    encoding_rs::GBK.encode(text).0.into_owned()
}

fn alipay_zip(detail: &str, summary: Option<&str>) -> Vec<u8> {
    let mut w = zip::ZipWriter::new(std::io::Cursor::new(Vec::new()));
    let opts = zip::write::SimpleFileOptions::default()
        .compression_method(zip::CompressionMethod::Deflated);
    w.start_file("20880000000000010156_20261205_业务明细.csv", opts)
        .unwrap();
    w.write_all(&gbk(detail)).unwrap();
    if let Some(s) = summary {
        w.start_file("20880000000000010156_20261205_业务明细(汇总).csv", opts)
            .unwrap();
        w.write_all(&gbk(s)).unwrap();
    }
    w.finish().unwrap().into_inner()
}

#[test]
fn alipay_trade_bill_zip() {
    let zip = alipay_zip(&alipay_detail(), Some(&alipay_summary()));
    let (rows, totals) = alipay::parse_trade_bill_zip(&zip).unwrap();
    assert_eq!(
        rows[0],
        BillRow {
            provider: PaymentMethod::Alipay,
            kind: BillKind::Payment,
            out_trade_no: "FP101".into(),
            provider_trade_no: "2026120522001400001234567890".into(),
            out_refund_no: None,
            provider_refund_no: None,
            amount_fen: 1234,
            fee_fen: 7,
            status: "交易".into(),
            occurred_at: china(2026, 12, 5, 9, 0, 30),
        }
    );
    assert_eq!(rows[1].kind, BillKind::Refund);
    assert_eq!(rows[1].amount_fen, 200);
    assert_eq!(rows[1].fee_fen, -1);
    assert_eq!(rows[1].out_refund_no.as_deref(), Some("RF101"));
    assert_eq!(
        totals,
        BillTotals {
            rows: 2,
            payments_fen: 1234,
            refunds_fen: 200,
            fees_fen: 6,
        }
    );
    // Without the summary file the fee total is the rows' sum.
    let (_, t) = alipay::parse_trade_bill_zip(&alipay_zip(&alipay_detail(), None)).unwrap();
    assert_eq!(t.fees_fen, 6);
}

#[test]
fn alipay_empty_and_malformed_bills() {
    let empty = [
        "#支付宝业务明细查询",
        ALIPAY_HEADER,
        "#交易合计：0笔，商家实收共0.00元，商家优惠共0.00元",
        "#退款合计：0笔，商家实收退款共0.00元，商家优惠退款共0.00元",
    ]
    .join("\n");
    let (rows, totals) = alipay::parse_trade_bill(&empty, None).unwrap();
    assert!(rows.is_empty());
    assert_eq!(totals, BillTotals::default());

    let good = alipay_detail();
    for (text, expect) in [
        (good.replace(",交易\t,", ",付款\t,"), "业务类型"),
        (
            good.replace(",12.34\t,12.34\t,", ",12.3.4\t,12.34\t,"),
            "amount",
        ),
        (good.replace("#交易合计", "#合计"), "footer"),
        (good.replace(",RF101\t,", ",\t,"), "请求号"),
        (good.replace("商户订单号,", "订单号,"), "商户订单号"),
    ] {
        let e = alipay::parse_trade_bill(&text, None).unwrap_err();
        assert!(e.0.contains(expect), "{expect}: {e}");
    }
    assert!(alipay::parse_trade_bill_zip(b"PK\x03\x04 not a zip").is_err());
    assert!(alipay::parse_trade_bill_zip(&alipay_zip("", None)).is_err());
    assert!(alipay::decode_gbk(b"\x81").is_err());
}

#[test]
fn csv_quoting() {
    let r = csv_records("a,\"b,c\",\"d\"\"e\"\r\n\r\n\"multi\nline\",x\n").unwrap();
    assert_eq!(r, vec![vec!["a", "b,c", "d\"e"], vec!["multi\nline", "x"]]);
    assert!(csv_records("\"open").is_err());
}

#[test]
fn gzip_round_trip_and_garbage() {
    let mut e = flate2::write::GzEncoder::new(Vec::new(), flate2::Compression::default());
    e.write_all(b"hello").unwrap();
    assert_eq!(gunzip(&e.finish().unwrap()).unwrap(), b"hello");
    assert!(gunzip(b"not gzip").is_err());
}

mod properties {
    use super::*;
    use proptest::prelude::*;

    proptest! {
        #![proptest_config(ProptestConfig::with_cases(256))]

        #[test]
        fn arbitrary_bytes_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..2048)) {
            let _ = wechat::parse_trade_bill(&bytes);
            let _ = wechat::parse_fundflow_bill(&bytes);
            let _ = alipay::parse_trade_bill_zip(&bytes);
            let _ = gunzip(&bytes);
            let text = String::from_utf8_lossy(&bytes);
            let _ = alipay::parse_trade_bill(&text, Some(&text));
        }

        #[test]
        fn mutated_bills_never_panic(cut in 0usize..4000, junk in "[`,\"\\n#a-z0-9.\\-]{0,12}") {
            let mut text = wechat_bill();
            let at = text.char_indices().map(|(i, _)| i).nth(cut % text.chars().count()).unwrap_or(0);
            text.insert_str(at, &junk);
            let _ = wechat::parse_trade_bill(text.as_bytes());
            let mut detail = alipay_detail();
            let at = detail.char_indices().map(|(i, _)| i).nth(cut % detail.chars().count()).unwrap_or(0);
            detail.insert_str(at, &junk);
            let _ = alipay::parse_trade_bill(&detail, Some(&alipay_summary()));
        }
    }
}

// Two rows near i64::MAX / 100 would wrap the day's totals silently in a release build:
// a row beyond any real payment makes the whole bill unreadable instead.
#[test]
fn an_amount_beyond_any_real_payment_is_refused() {
    let huge = "92233720368547758.00";
    let text = wechat_bill().replacen("`0.60%,`12.34,", &format!("`0.60%,`{huge},"), 1);
    assert_ne!(text, wechat_bill());
    let e = wechat::parse_trade_bill(text.as_bytes()).unwrap_err();
    assert!(e.to_string().contains("beyond any real payment"), "{e}");
    // The largest accepted row still leaves every total far inside i64.
    assert!(MAX_ROW_FEN.checked_mul(20_000_000).is_some());
}
