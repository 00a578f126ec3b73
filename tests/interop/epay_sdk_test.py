#!/usr/bin/env python3
"""Interop: drive fenpay's epay (易支付) gateway with epay-sdk (PyPI, pinned in
requirements-epay.txt), an independent merchant client of the epay protocol.

The library builds and MD5-signs every request (submit.php URL, the order parameters
sent to mapi.php, the api.php?act=order query) and verifies the payment notifications
(`EPayClient.verify_callback`), then reconciles them through api.php
(`CallbackProcessor(verify_with_query=True)`). This test only supplies the base URL,
pid and key, sends the library's mapi.php parameters (the library has no mapi.php call
of its own: it builds and signs, the test POSTs them), follows submit.php's 302, and
pays through the development helpers:

  - mapi.php: a wxpay order (device pc -> qrcode) and an alipay order (device mobile ->
    payurl), paid at the emulator (`/__emulator/{wechat|alipay}/pay/{trade_no}`)
  - submit.php: the library's signed URL -> 302 to the hosted checkout page; the buyer
    picks the QR channel there and pays with `/api/v1/checkout/{no}/simulate-pay`
  - each notification (a GET to notify_url) passes the library's verification and its
    query reconciliation, and the receiver answers the processor's `success`; the first
    attempt of the wxpay order is answered `fail` and must come again
  - api.php?act=order through the library: paid orders (by out_trade_no and trade_no)
    and an unpaid one
  - refusals: requests signed with a wrong key or another app's key (mapi.php and
    api.php: code -1; submit.php: HTTP 400), a tampered notification and a notification
    checked with another key fail the library's verification

If fenpay signed notifications wrongly, the library rejects them, the receiver answers
`fail`, and the wait for the accepted notifications fails this test.

Environment:
  FENPAY_URL          the fenpay server (`fenpay serve`, APP_ENV=development)
  FENPAY_EMULATOR_URL its in-process emulator (EMULATOR_BIND)
  FENPAY_EPAY_PID, FENPAY_EPAY_KEY
                      the merchant app's epay credentials (`fenpay app create --epay`),
                      its return hosts including shop.example.com
  FENPAY_EPAY_OTHER_KEY
                      another app's epay key (optional)

Exit status 0 when every check passed, 1 otherwise.
"""

import http.server
import os
import sys
import threading
import time
import urllib.parse

import requests

from epay_sdk import (
    CallbackProcessor,
    CreateOrderRequest,
    EPayClient,
    EPayConfig,
    EPaySignError,
    PaymentService,
    PayType,
    QueryOrderRequest,
)
from epay_sdk.models import OrderRecord, OrderStatus

CHECKS = []
RETURN_URL = "https://shop.example.com/epay/done"
PARAM = "uid=7&plan=pro"


def check(condition, what, detail=None):
    """`what` is printed; `detail` (an answer, say) only when the check fails."""
    if not condition:
        raise AssertionError(what if detail is None else f"{what}: {detail}")
    CHECKS.append(what)
    print(f"ok   {what}")


def unique(prefix):
    return f"{prefix}-{time.time_ns()}"


class Orders:
    """The merchant's order table, as the library's OrderRepository protocol wants it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.orders = {}
        self.attempts = []

    def add(self, order_no, amount):
        with self.lock:
            self.orders[order_no] = OrderRecord(order_no, amount, OrderStatus.UNPAID.value)

    def get_order(self, order_no):
        with self.lock:
            return self.orders.get(order_no)

    def mark_paid_if_unpaid(self, order_no, gateway_trade_no, raw_payload):
        with self.lock:
            o = self.orders.get(order_no)
            if o is None or o.status != OrderStatus.UNPAID.value:
                return False
            o.status = OrderStatus.PAID.value
            o.gateway_trade_no = gateway_trade_no
            return True

    def record_callback_attempt(self, order_no, accepted, reason, raw_payload, *, stage):
        with self.lock:
            self.attempts.append((order_no, accepted, reason, stage))


class Receiver:
    """The merchant's notify_url: verifies each GET with the library, lets the library's
    processor reconcile and apply it, and answers what the processor says."""

    def __init__(self, client, orders):
        self.client = client
        self.orders = orders
        self.processor = CallbackProcessor(client, orders, verify_with_query=True)
        self.lock = threading.Lock()
        self.got = []  # (query dict, answer, CallbackResult or None, process result or None, error)
        self.fail_first = set()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                query = urllib.parse.urlsplit(self.path).query
                params = dict(urllib.parse.parse_qsl(query, keep_blank_values=True))
                answer, callback, result, error = receiver.handle(params)
                with receiver.lock:
                    receiver.got.append((params, answer, callback, result, error))
                body = answer.encode()
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/epay/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def handle(self, params):
        try:
            callback = self.client.verify_callback(params)
        except Exception as e:  # EPaySignError, EPayCallbackError
            return "fail", None, None, f"{type(e).__name__}: {e}"
        out = callback.out_trade_no
        with self.lock:
            if out in self.fail_first:
                self.fail_first.discard(out)
                return "fail", callback, None, "failed on purpose (first attempt)"
        try:
            result = self.processor.process(callback)
        except Exception as e:
            return "fail", callback, None, f"{type(e).__name__}: {e}"
        return result.response_text, callback, result, result.reason

    def attempts(self, out_trade_no):
        with self.lock:
            return [g for g in self.got if g[0].get("out_trade_no") == out_trade_no]

    def wait_accepted(self, out_trade_no, timeout=45.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            for g in self.attempts(out_trade_no):
                if g[1] == "success" and g[3] is not None and g[3].first_success:
                    return g
            time.sleep(0.1)
        seen = [(g[1], g[4]) for g in self.attempts(out_trade_no)]
        raise AssertionError(
            f"no notification for {out_trade_no} accepted by the library within {timeout}s; "
            f"attempts (answer, why): {seen}"
        )


def mapi(client, session, base, req):
    """mapi.php with the parameters the library built and signed."""
    params = client.build_create_order_params(req)
    resp = session.post(f"{base}/epay/mapi.php", data=params, timeout=15)
    check(resp.status_code == 200, f"mapi.php {req.pay_type}/{req.device} answers 200", resp.status_code)
    return params, resp.json()


def main():
    base = os.environ["FENPAY_URL"].rstrip("/")
    emulator = os.environ["FENPAY_EMULATOR_URL"].rstrip("/")
    pid = os.environ["FENPAY_EPAY_PID"]
    key = os.environ["FENPAY_EPAY_KEY"]
    other_key = os.environ.get("FENPAY_EPAY_OTHER_KEY")

    def config(k):
        return EPayConfig(pid=pid, key=k, base_url=f"{base}/epay", environment="sandbox")

    client = EPayClient(config(key))
    service = PaymentService(client)
    orders = Orders()
    receiver = Receiver(client, orders)
    http_ = requests.Session()

    def order_request(out, pay_type, device, money="12.30", name="VIP 会员 (epay-sdk)"):
        orders.add(out, money)
        return CreateOrderRequest(
            out_trade_no=out,
            name=name,
            money=money,
            notify_url=receiver.url,
            return_url=RETURN_URL,
            pay_type=pay_type,
            clientip="203.0.113.7",
            device=device,
            param=PARAM,
        )

    # ---- mapi.php: wxpay (pc -> qrcode) and alipay (mobile -> payurl) ----
    wx_out = unique("EPW")
    sent, a = mapi(client, http_, base, order_request(wx_out, PayType.WXPAY.value, "pc"))
    check(sent["sign_type"] == "MD5" and len(sent["sign"]) == 32, "the library signed the order (MD5)")
    check(a.get("code") == 1, "mapi.php wxpay accepted", a)
    wx_trade = a.get("trade_no")
    check(bool(wx_trade), "mapi.php wxpay has a trade_no")
    check(str(a.get("qrcode", "")).startswith("weixin://"), "wxpay pc: qrcode is a WeChat code_url", a)
    check("payurl" not in a, "wxpay pc: no payurl")
    again = http_.post(f"{base}/epay/mapi.php", data=sent, timeout=15).json()
    check(again.get("trade_no") == wx_trade, "the same signed request again: the same order")

    ali_out = unique("EPA")
    _, a = mapi(client, http_, base, order_request(ali_out, PayType.ALIPAY.value, "mobile", money="0.5"))
    check(a.get("code") == 1, "mapi.php alipay accepted", a)
    ali_trade = a.get("trade_no")
    ali_payurl = str(a.get("payurl", ""))
    check(ali_payurl.startswith("http"), "alipay mobile: payurl", a)
    # The buyer opens the wap page (the trade exists at Alipay from then on).
    r = http_.get(ali_payurl, timeout=15)
    check(r.status_code == 200, "alipay mobile: the payurl opens", f"{r.status_code} {r.text[:200]}")

    # ---- submit.php: the library's signed URL -> 302 to the hosted checkout ----
    sub_out = unique("EPS")
    orders.add(sub_out, "3.00")
    url = service.create_order(
        pay_type=PayType.ALIPAY,
        order_no=sub_out,
        amount="3",
        subject="submit.php 订单",
        notify_url=receiver.url,
        return_url=RETURN_URL,
        attach=PARAM,
    )
    check(url.startswith(f"{base}/epay/submit.php?"), "the library's submit.php URL")
    resp = http_.get(url, allow_redirects=False, timeout=15)
    check(resp.status_code == 302, "submit.php answers 302", f"{resp.status_code} {resp.text[:200]}")
    location = urllib.parse.urlsplit(resp.headers["Location"])
    check(location.path.startswith("/pay/"), "to the checkout page /pay/{no}?sig=", resp.headers["Location"])
    sub_trade = location.path.rsplit("/", 1)[1]
    sig = urllib.parse.parse_qs(location.query)["sig"][0]
    checkout = f"{base}/api/v1/checkout/{sub_trade}"
    view = http_.get(checkout, params={"sig": sig}, timeout=15).json()
    check(view.get("amount_fen") == 300 and view.get("status") == "pending", "checkout shows 3.00, pending", view)
    check(view.get("payment_method") is None and view.get("methods") == ["alipay"],
          "checkout: offers only the type submit.php asked for, the channel left to the page", view)
    r = http_.post(f"{checkout}/pay", params={"sig": sig},
                   json={"payment_method": "alipay", "channel": "native"}, timeout=15)
    check(r.status_code == 200 and r.json().get("qr_code_url"), "checkout: the buyer picks the QR code",
          f"{r.status_code} {r.text[:200]}")

    # ---- an unpaid order for the query ----
    unpaid_out = unique("EPU")
    _, a = mapi(client, http_, base, order_request(unpaid_out, PayType.WXPAY.value, "pc", money="1.00"))
    check(a.get("code") == 1, "mapi.php: an order left unpaid", a)

    # ---- the buyer pays; the notifications pass the library's verification ----
    receiver.fail_first.add(wx_out)
    for provider, trade in (("wechat", wx_trade), ("alipay", ali_trade)):
        r = http_.post(f"{emulator}/__emulator/{provider}/pay/{trade}", json={}, timeout=15)
        check(r.status_code < 300, f"the emulator pays the {provider} order", f"{r.status_code} {r.text[:200]}")
    r = http_.post(f"{checkout}/simulate-pay", params={"sig": sig}, timeout=15)
    check(r.status_code == 202, "checkout simulate-pay pays the submit.php order", f"{r.status_code} {r.text[:200]}")

    expected = {
        wx_out: (wx_trade, "wxpay", "12.30"),
        ali_out: (ali_trade, "alipay", "0.50"),
        sub_out: (sub_trade, "alipay", "3.00"),
    }
    accepted = {}
    for out, (trade, ty, money) in expected.items():
        params, answer, cb, result, _ = receiver.wait_accepted(out)
        accepted[out] = params
        check(cb.trade_no == trade and cb.pay_type == ty and cb.money == money,
              f"{out}: verified notification names {trade}, {ty}, {money}")
        check(cb.trade_status == "TRADE_SUCCESS" and cb.pid == pid, f"{out}: TRADE_SUCCESS for pid {pid}")
        check(cb.attach == PARAM, f"{out}: param comes back as given")
        check(result.reconciled, f"{out}: the library reconciled it through api.php")
        check(orders.get_order(out).status == "PAID" and orders.get_order(out).gateway_trade_no == trade,
              f"{out}: applied once")
    check(any(g[1] == "fail" for g in receiver.attempts(wx_out)), "wxpay: the first attempt was answered fail")
    check(sum(1 for g in receiver.attempts(wx_out) if g[1] == "success") >= 1, "wxpay: retried until success")
    # Delivered: no more attempts come for the acknowledged notifications.
    counts = {out: len(receiver.attempts(out)) for out in expected}
    time.sleep(3)
    check(all(len(receiver.attempts(out)) == n for out, n in counts.items()),
          "no further attempts after success")
    check(not any(g[4] and "Sign" in g[4] for g in receiver.got), "no notification failed the signature check")

    # ---- the library's verification refuses tampered or foreign notifications ----
    tampered = dict(accepted[wx_out], money="0.01")
    try:
        client.verify_callback(tampered)
        check(False, "a tampered notification is refused")
    except EPaySignError:
        check(True, "a tampered notification is refused")
    wrong_client = EPayClient(config(key + "x"))
    try:
        wrong_client.verify_callback(accepted[wx_out])
        check(False, "a notification checked with another key is refused")
    except EPaySignError:
        check(True, "a notification checked with another key is refused")

    # ---- api.php?act=order through the library ----
    q = service.query_order(wx_out)
    check(q.query_ok and q.paid and q.amount == "12.30" and q.gateway_trade_no == wx_trade,
          "api.php by out_trade_no: paid 12.30", q.raw)
    raw = client.query_order(QueryOrderRequest(trade_no=sub_trade))
    check(raw.get("code") == 1 and raw.get("out_trade_no") == sub_out and raw.get("status") == 1,
          "api.php by trade_no: the submit.php order, paid", raw)
    check(raw.get("param") == PARAM and raw.get("type") == "alipay", "api.php: param and type")
    q = service.query_order(unpaid_out)
    check(q.query_ok and not q.paid and q.amount == "1.00", "api.php: the unpaid order is not paid", q.raw)

    # ---- wrong keys are refused ----
    keys = [("a wrong key", key[::-1] if key[::-1] != key else key + "x")]
    if other_key:
        keys.append(("another app's key", other_key))
    for what, k in keys:
        bad = EPayClient(config(k))
        bad_out = unique("EPX")
        a = http_.post(f"{base}/epay/mapi.php", timeout=15,
                       data=bad.build_create_order_params(order_request(bad_out, "wxpay", "pc"))).json()
        check(a.get("code") == -1 and "trade_no" not in a, f"mapi.php signed with {what}: code -1", a)
        bad_url = PaymentService(bad).create_order(
            pay_type=PayType.WXPAY, order_no=bad_out, amount="1", subject="x",
            notify_url=receiver.url, return_url=RETURN_URL)
        r = http_.get(bad_url, allow_redirects=False, timeout=15)
        check(r.status_code == 400, f"submit.php signed with {what}: 400", r.status_code)
        raw = bad.query_order(QueryOrderRequest(out_trade_no=wx_out))
        check(raw.get("code") == -1 and "out_trade_no" not in raw, f"api.php signed with {what}: code -1", raw)
        check(not bad.parse_query_result(raw).query_ok, f"api.php signed with {what}: the library sees a failed query")
    # The order signed with a wrong key was not created.
    raw = client.query_order(QueryOrderRequest(out_trade_no=bad_out))
    check(raw.get("code") == -1, "nothing was created for the refused requests", raw)

    print(f"epay interop (epay-sdk): {len(CHECKS)} checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any failure, including library exceptions, fails the run
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        if CHECKS:
            print(f"({len(CHECKS)} checks passed before the failure)", file=sys.stderr)
        sys.exit(1)
