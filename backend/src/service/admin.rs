//! Operator views: all orders with filters, one order with everything that happened to
//! it, daily totals, and webhook deliveries.

use std::collections::BTreeMap;

use api_types::admin::{
    AdminOrder, AdminOrderDetail, AdminOrderQuery, BalanceEntry, DailyTotal, DeliveryStatus,
    EventSummary, LedgerMismatch, LedgerVerifyResponse, PaymentRecord, StatsQuery, StatsResponse,
    StuckOrders, WebhookDelivery,
};
use api_types::payment::PaymentMethod;
use chrono::{Duration, NaiveDate, Utc};

use crate::db::events::{self as event_db, DeliveryRow, EventRow};
use crate::db::orders::{self as order_db, OrderFilter, OrderRow};
use crate::db::{self, refunds as refund_db};
use crate::domain::business_time;
use crate::error::{AppError, AppResult};
use crate::service::orders::to_response;
use crate::startup::AppState;

/// Longest range the stats route sums over.
pub const MAX_STATS_DAYS: i64 = 366;

fn method(s: &str) -> PaymentMethod {
    if s == "alipay" {
        PaymentMethod::Alipay
    } else {
        PaymentMethod::Wechat
    }
}

pub fn admin_order(row: &OrderRow, username: String) -> AdminOrder {
    AdminOrder {
        order: to_response(row),
        user_id: row.user_id.clone(),
        username,
        needs_review: row.needs_review,
        review_reason: row.review_reason.clone(),
    }
}

/// The highest page number: `(page - 1) * per_page` must not overflow (schemathesis sent
/// page 2^61, which panicked the worker in debug builds and wrapped in release).
pub const MAX_PAGE: i64 = 1_000_000;

pub fn paging(page: Option<i64>, per_page: Option<i64>) -> AppResult<(i64, i64)> {
    let page = page.unwrap_or(1);
    let per_page = per_page.unwrap_or(20);
    if !(1..=MAX_PAGE).contains(&page) || !(1..=100).contains(&per_page) {
        return Err(AppError::bad_request(
            "invalid_query",
            "page must be between 1 and 1000000 and per_page between 1 and 100",
        ));
    }
    Ok((page, per_page))
}

/// The first instant (as stored: naive UTC) of a business-time-zone day.
fn day_start(state: &AppState, d: NaiveDate) -> chrono::NaiveDateTime {
    business_time::day_start(d, state.settings.business_timezone).naive_utc()
}

pub async fn list_orders(
    state: &AppState,
    q: &AdminOrderQuery,
) -> AppResult<(Vec<AdminOrder>, i64, i64, i64)> {
    let (page, per_page) = paging(q.page, q.per_page)?;
    if let (Some(from), Some(to)) = (q.from, q.to) {
        if from > to {
            return Err(AppError::bad_request("invalid_query", "from is after to"));
        }
    }
    let filter = OrderFilter {
        status: q.status.map(|s| s.as_str().to_string()),
        provider: q.provider.map(|p| p.as_str().to_string()),
        created_from: q.from.map(|d| day_start(state, d)),
        created_before: q.to.map(|d| day_start(state, d + Duration::days(1))),
        user: q.user.clone().filter(|u| !u.trim().is_empty()),
        needs_review: q.needs_review,
    };
    let (rows, total) =
        order_db::list_filtered(&state.db, &filter, per_page, (page - 1) * per_page).await?;
    let items = rows
        .into_iter()
        .map(|(row, username)| admin_order(&row, username))
        .collect();
    Ok((items, page, per_page, total))
}

fn delivery(d: &DeliveryRow, e: &EventRow) -> WebhookDelivery {
    WebhookDelivery {
        id: d.id,
        event_id: d.event_id.clone(),
        event_type: e.event_type.clone(),
        order_no: e.order_no.clone(),
        endpoint: d.endpoint.clone(),
        status: match d.status.as_str() {
            "delivered" => DeliveryStatus::Delivered,
            "failed" => DeliveryStatus::Failed,
            _ => DeliveryStatus::Pending,
        },
        attempts: d.attempts,
        last_status_code: d.last_status_code,
        last_error: d.last_error.clone(),
        next_attempt_at: (d.status == "pending").then(|| db::utc(d.next_attempt_at)),
        delivered_at: d.delivered_at.map(db::utc),
        created_at: db::utc(d.created_at),
    }
}

pub async fn order_detail(state: &AppState, order_no: &str) -> AppResult<AdminOrderDetail> {
    // The parts are separate reads. The order row is read last: a refund (or ledger entry,
    // or event) that shows as done was committed together with its change to the order,
    // so the order read after it includes that change. Read first, the order could show
    // "paid, nothing refunded" beside a refund already succeeded, and a page that stops
    // watching once no refund is processing would show that forever.
    if order_db::find(&state.db, order_no).await?.is_none() {
        return Err(AppError::NotFound("order"));
    }
    let records = order_db::records_for(&state.db, order_no)
        .await?
        .into_iter()
        .map(|r| PaymentRecord {
            id: r.id,
            order_no: r.order_no,
            provider: method(&r.provider),
            kind: r.kind,
            headers: r.headers,
            body: r.body,
            verified: r.verified,
            decision: r.decision,
            created_at: db::utc(r.created_at),
        })
        .collect();
    let refund_rows = refund_db::for_order(&state.db, order_no).await?;
    let (deliveries, _) =
        event_db::list_deliveries(&state.db, None, Some(order_no), 1000, 0).await?;
    let events = event_db::events_for_order(&state.db, order_no)
        .await?
        .into_iter()
        .map(|e| EventSummary {
            deliveries: deliveries
                .iter()
                .filter(|(d, _)| d.event_id == e.id)
                .map(|(d, ev)| delivery(d, ev))
                .collect(),
            event_id: e.id,
            event_type: e.event_type,
            created_at: db::utc(e.created_at),
        })
        .collect();
    let balance_entries = db::ledger::for_order(&state.db, order_no)
        .await?
        .iter()
        .map(balance_entry)
        .collect();
    let row = order_db::find(&state.db, order_no)
        .await?
        .ok_or(AppError::NotFound("order"))?;
    let username = db::users::find_by_id(&state.db, &row.user_id)
        .await?
        .map(|u| u.username)
        .unwrap_or_default();
    let refunds = refund_rows
        .iter()
        .map(|r| crate::service::refunds::to_response(r, &row))
        .collect();
    Ok(AdminOrderDetail {
        order: admin_order(&row, username),
        records,
        refunds,
        events,
        balance_entries,
    })
}

pub fn balance_entry(e: &db::ledger::BalanceEntryRow) -> BalanceEntry {
    BalanceEntry {
        id: e.id,
        user_id: e.user_id.clone(),
        delta_points: e.delta_points,
        points_after: e.points_after,
        delta_membership_secs: e.delta_membership_secs,
        tier_before: e.tier_before.clone(),
        tier_after: e.tier_after.clone(),
        expires_before: e.expires_before.map(db::utc),
        expires_after: e.expires_after.map(db::utc),
        order_no: e.order_no.clone(),
        out_refund_no: e.out_refund_no.clone(),
        reason: e.reason.clone(),
        created_at: db::utc(e.created_at),
        note: e.note.clone(),
    }
}

/// Check every account's balances against its ledger.
pub async fn verify_ledger(state: &AppState) -> AppResult<LedgerVerifyResponse> {
    let (accounts_checked, found) = db::ledger::verify(&state.db).await?;
    Ok(LedgerVerifyResponse {
        accounts_checked,
        mismatches: found
            .into_iter()
            .map(|m| LedgerMismatch {
                user_id: m.user_id,
                username: m.username,
                points_balance: m.points_balance,
                ledger_points: m.ledger_points,
                membership_tier: m.membership_tier,
                ledger_tier: m.ledger_tier,
                membership_expires_at: m.membership_expires_at.map(db::utc),
                ledger_expires_at: m.ledger_expires_at.map(db::utc),
            })
            .collect(),
    })
}

/// Paid totals per day (business time zone, by payment time) and provider.
pub async fn stats(state: &AppState, q: &StatsQuery) -> AppResult<StatsResponse> {
    let tz = state.settings.business_timezone;
    let today = business_time::day_of(Utc::now(), tz);
    let to = q.to.unwrap_or(today);
    let from = q.from.unwrap_or(to - Duration::days(29));
    if from > to {
        return Err(AppError::bad_request("invalid_query", "from is after to"));
    }
    if (to - from).num_days() >= MAX_STATS_DAYS {
        return Err(AppError::bad_request(
            "invalid_query",
            format!("the range is at most {MAX_STATS_DAYS} days"),
        ));
    }
    let (start, end) = business_time::days_range(from, to, tz);
    let rows = order_db::paid_between(&state.db, start.naive_utc(), end.naive_utc()).await?;
    let mut by_day: BTreeMap<(NaiveDate, String), (i64, i64, i64)> = BTreeMap::new();
    for (paid_at, provider, amount, refunded) in rows {
        let day = business_time::day_of(paid_at.and_utc(), tz);
        let e = by_day.entry((day, provider)).or_default();
        e.0 += 1;
        e.1 += amount;
        e.2 += refunded;
    }
    let days: Vec<DailyTotal> = by_day
        .into_iter()
        .map(|((date, provider), (count, paid, refunded))| DailyTotal {
            date,
            provider: method(&provider),
            paid_count: count,
            paid_fen: paid,
            refunded_fen: refunded,
            net_fen: paid - refunded,
        })
        .collect();
    let (count, oldest, last_error) = order_db::stuck_expired(&state.db).await?;
    Ok(StatsResponse {
        stuck: StuckOrders {
            count,
            oldest_expire_at: oldest.map(db::utc),
            last_error,
        },
        timezone: tz.name().to_string(),
        from,
        to,
        total_paid_fen: days.iter().map(|d| d.paid_fen).sum(),
        total_refunded_fen: days.iter().map(|d| d.refunded_fen).sum(),
        total_paid_count: days.iter().map(|d| d.paid_count).sum(),
        days,
    })
}

pub async fn list_deliveries(
    state: &AppState,
    status: Option<DeliveryStatus>,
    order_no: Option<&str>,
    page: Option<i64>,
    per_page: Option<i64>,
) -> AppResult<(Vec<WebhookDelivery>, i64, i64, i64)> {
    let (page, per_page) = paging(page, per_page)?;
    let status = status.map(DeliveryStatus::as_str);
    let (rows, total) =
        event_db::list_deliveries(&state.db, status, order_no, per_page, (page - 1) * per_page)
            .await?;
    Ok((
        rows.iter().map(|(d, e)| delivery(d, e)).collect(),
        page,
        per_page,
        total,
    ))
}

/// Queue a delivery again now (after fixing a receiver, or to replay an event); the
/// retry window starts again. A delivery whose attempt is in flight is sent again once
/// that attempt is over, never beside it.
pub async fn resend(state: &AppState, id: i64) -> AppResult<WebhookDelivery> {
    let Some(how) = event_db::requeue(&state.db, id).await? else {
        return Err(AppError::NotFound("delivery"));
    };
    if how == event_db::Resend::AfterAttemptInFlight {
        tracing::info!(
            delivery = id,
            "resend of a delivery in flight: sent again after the current attempt"
        );
    } else if let Some((_, e)) = event_db::find_delivery(&state.db, id).await? {
        // Wake the dispatcher.
        state.hub.publish(crate::db::events::EventSignal {
            event_id: e.id,
            event_type: e.event_type,
            order_no: e.order_no,
        });
    }
    let (d, e) = event_db::find_delivery(&state.db, id)
        .await?
        .ok_or(AppError::NotFound("delivery"))?;
    Ok(delivery(&d, &e))
}
