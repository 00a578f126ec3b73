#!/usr/bin/env python3
"""Interop: drive the fenpay emulator's Alipay gateway with python-alipay-sdk
(fzlee/alipay on PyPI), a widely used third-party Alipay SDK.

If the SDK cannot tell the emulator from Alipay, the emulator signs, verifies and
answers like the real gateway: precreate, query, close, page pay (cashier and
signed return), refund and refund query, and V1-signed trade notifications
(payments and refunds).

Environment:
  FENPAY_DEV_KEYS       directory with alipay_app_key.pem (the merchant's app
                        private key) and alipay_platform_key.pem (Alipay's private
                        key; its public half is "the Alipay public key")
  FENPAY_EMULATOR_URL   e.g. http://127.0.0.1:8090 (default)
  FENPAY_ALIPAY_APP_ID  default 2021000000000001
  FENPAY_ALIPAY_MODE    public_key (default) or certificate: the emulator's
                        EMULATOR_ALIPAY_MODE; certificate drives it with the SDK's
                        certificate client (DCAliPay) over the key set's TEST chain
                        (appCertPublicKey.crt, alipayCertPublicKey_RSA2.crt,
                        alipayRootCert.crt), which computes the SNs itself

Exit status 0 when every check passed, 1 otherwise.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

from alipay import AliPay, DCAliPay
from cryptography.hazmat.primitives import serialization

CHECKS = []


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    CHECKS.append(what)
    print(f"ok   {what}")


class Receiver:
    """A merchant notify_url on a local thread that answers `success`."""

    def __init__(self):
        self.bodies = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                with receiver.lock:
                    receiver.bodies.append((self.headers.get("Content-Type", ""), body))
                self.send_response(200)
                self.send_header("Content-Type", "text/plain")
                self.end_headers()
                self.wfile.write(b"success")

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alipay/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, out_trade_no, trade_status=None, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for content_type, body in self.bodies:
                    form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                    if form.get("out_trade_no") == out_trade_no and trade_status in (
                        None, form.get("trade_status")
                    ):
                        return content_type, form
            time.sleep(0.1)
        raise AssertionError(f"no notification for {out_trade_no} within {timeout}s")

    def wait_for_refund(self, out_biz_no, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for _, body in self.bodies:
                    form = dict(urllib.parse.parse_qsl(body.decode(), keep_blank_values=True))
                    if form.get("out_biz_no") == out_biz_no:
                        return form
            time.sleep(0.1)
        raise AssertionError(f"no refund notification for {out_biz_no} within {timeout}s")


class NoRedirect(urllib.request.HTTPRedirectHandler):
    def redirect_request(self, *args, **kwargs):
        return None


def request(method, url, data=None):
    """(status, headers, text) without following redirects."""
    opener = urllib.request.build_opener(NoRedirect)
    req = urllib.request.Request(url, data=data, method=method)
    try:
        with opener.open(req, timeout=15) as resp:
            return resp.status, resp.headers, resp.read().decode()
    except urllib.error.HTTPError as e:
        return e.code, e.headers, e.read().decode()


def unique(prefix):
    return f"{prefix}{time.time_ns()}"


def main():
    keys_dir = Path(os.environ["FENPAY_DEV_KEYS"])
    emulator = os.environ.get("FENPAY_EMULATOR_URL", "http://127.0.0.1:8090").rstrip("/")
    app_id = os.environ.get("FENPAY_ALIPAY_APP_ID", "2021000000000001")

    app_private_pem = (keys_dir / "alipay_app_key.pem").read_text()
    platform_key = serialization.load_pem_private_key(
        (keys_dir / "alipay_platform_key.pem").read_bytes(), password=None
    )
    alipay_public_pem = (
        platform_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )

    cert_mode = os.environ.get("FENPAY_ALIPAY_MODE", "public_key") == "certificate"

    def client(private_pem, notify_url=None):
        if cert_mode:
            return DCAliPay(
                appid=app_id,
                app_notify_url=notify_url,
                app_private_key_string=private_pem,
                app_public_key_cert_string=(keys_dir / "appCertPublicKey.crt").read_text(),
                alipay_public_key_cert_string=(
                    keys_dir / "alipayCertPublicKey_RSA2.crt"
                ).read_text(),
                alipay_root_cert_string=(keys_dir / "alipayRootCert.crt").read_text(),
                sign_type="RSA2",
                debug=False,
            )
        return AliPay(
            appid=app_id,
            app_notify_url=notify_url,
            app_private_key_string=private_pem,
            alipay_public_key_string=alipay_public_pem,
            sign_type="RSA2",
            debug=False,
        )

    receiver = Receiver()
    sdk = client(app_private_pem, receiver.url)
    if cert_mode:
        check(
            sdk.alipay_public_key.n == platform_key.public_key().public_numbers().n,
            "DCAliPay reads Alipay's key from alipayCertPublicKey_RSA2.crt",
        )
    # python-alipay-sdk has no gateway option: __init__ picks production or sandbox
    # from `debug` and stores it in `_gateway`, which every call (server_api,
    # verified_sync_response) reads. Pointing that attribute at the emulator is the
    # only change; signing and verification stay the SDK's own.
    sdk._gateway = emulator + "/gateway.do"

    # precreate -> query TRADE_NOT_EXIST -> scan -> query WAIT_BUYER_PAY -> buyer pays -> notification -> TRADE_SUCCESS
    paid_no = unique("PYPAY")
    resp = sdk.api_alipay_trade_precreate(
        subject="fenpay interop 测试", out_trade_no=paid_no, total_amount="0.01"
    )
    check(resp.get("code") == "10000", f"precreate answered 10000 ({resp})")
    check(str(resp.get("qr_code", "")).startswith("https://qr.alipay.com/"), "precreate qr_code")

    # Alipay knows a QR trade only once the buyer scans the code.
    resp = sdk.api_alipay_trade_query(out_trade_no=paid_no)
    check(resp.get("code") == "40004" and resp.get("sub_code") == "ACQ.TRADE_NOT_EXIST",
          f"query before the scan: ACQ.TRADE_NOT_EXIST ({resp})")
    status, _, text = request("POST", f"{emulator}/__emulator/alipay/scan/{paid_no}", data=b"")
    check(status == 200, f"control API scan ({status} {text})")
    _, form = receiver.wait_for(paid_no, "WAIT_BUYER_PAY")
    data = dict(form)
    signature = data.pop("sign")
    check(sdk.verify(dict(data), signature), "SDK verify() accepts the WAIT_BUYER_PAY notification")
    resp = sdk.api_alipay_trade_query(out_trade_no=paid_no)
    check(resp.get("trade_status") == "WAIT_BUYER_PAY", f"query before payment ({resp})")

    status, _, text = request("POST", f"{emulator}/__emulator/alipay/pay/{paid_no}", data=b"")
    check(status == 200, f"control API pay ({status} {text})")

    content_type, form = receiver.wait_for(paid_no, "TRADE_SUCCESS")
    check(content_type.startswith("application/x-www-form-urlencoded"), "notification is a form post")
    check(form.get("notify_type") == "trade_status_sync", "notify_type")
    check(form.get("trade_status") == "TRADE_SUCCESS", "notified TRADE_SUCCESS")
    check(form.get("total_amount") == "0.01", "notified total_amount")
    data = dict(form)
    signature = data.pop("sign")
    check(sdk.verify(dict(data), signature), "SDK verify() accepts the notification")
    forged = dict(data)
    forged["total_amount"] = "100.00"
    check(not sdk.verify(forged, signature), "SDK verify() rejects a tampered notification")

    resp = sdk.api_alipay_trade_query(out_trade_no=paid_no)
    check(resp.get("trade_status") == "TRADE_SUCCESS", f"query after payment ({resp})")
    check(resp.get("total_amount") == "0.01", "query total_amount")
    check(resp.get("trade_no") == form.get("trade_no"), "query trade_no matches the notification")

    resp = sdk.api_alipay_trade_close(out_trade_no=paid_no)
    check(resp.get("sub_code") == "ACQ.TRADE_STATUS_ERROR", f"closing a paid trade is refused ({resp})")

    # refunds: synchronous, idempotent per out_request_no, a full refund closes the trade
    refund_no = unique("PYREFUND")
    resp = sdk.api_alipay_trade_precreate(subject="to be refunded", out_trade_no=refund_no, total_amount="10.00")
    check(resp.get("code") == "10000", "refund: precreate")
    request("POST", f"{emulator}/__emulator/alipay/pay/{refund_no}", data=b"")
    receiver.wait_for(refund_no)
    resp = sdk.api_alipay_trade_refund(refund_amount="3.00", out_trade_no=refund_no,
                                       out_request_no="R1", refund_reason="interop 退款")
    check(resp.get("code") == "10000" and resp.get("fund_change") == "Y" and resp.get("refund_fee") == "3.00",
          f"refund moved money ({resp})")
    check(resp.get("out_trade_no") == refund_no and resp.get("trade_no") and resp.get("gmt_refund_pay"),
          "refund answer fields")
    resp = sdk.api_alipay_trade_refund(refund_amount="3.00", out_trade_no=refund_no, out_request_no="R1")
    check(resp.get("fund_change") == "N" and resp.get("refund_fee") == "3.00",
          f"repeated out_request_no moves nothing ({resp})")
    resp = sdk.api_alipay_trade_fastpay_refund_query(out_request_no="R1", out_trade_no=refund_no)
    check(resp.get("code") == "10000" and resp.get("refund_status") == "REFUND_SUCCESS"
          and resp.get("refund_amount") == "3.00" and resp.get("total_amount") == "10.00"
          and resp.get("out_request_no") == "R1", f"refund query ({resp})")
    resp = sdk.api_alipay_trade_fastpay_refund_query(out_request_no="R9", out_trade_no=refund_no)
    check(resp.get("code") == "10000" and "refund_status" not in resp and "refund_amount" not in resp,
          f"unknown refund: success without refund members ({resp})")
    resp = sdk.api_alipay_trade_refund(refund_amount="7.01", out_trade_no=refund_no, out_request_no="R2")
    check(resp.get("sub_code") == "ACQ.REFUND_AMT_NOT_EQUAL_TOTAL", f"over-refund refused ({resp})")
    resp = sdk.api_alipay_trade_refund(refund_amount="7.00", out_trade_no=refund_no, out_request_no="R2")
    check(resp.get("fund_change") == "Y" and resp.get("refund_fee") == "10.00", f"refund of the rest ({resp})")
    resp = sdk.api_alipay_trade_query(out_trade_no=refund_no)
    check(resp.get("trade_status") == "TRADE_CLOSED" and resp.get("send_pay_date"),
          f"fully refunded trade is TRADE_CLOSED and keeps send_pay_date ({resp})")
    resp = sdk.api_alipay_trade_refund(refund_amount="1.00", out_trade_no=unique("PYNOTRADE"))
    check(resp.get("sub_code") == "ACQ.TRADE_NOT_EXIST", f"refund of an unknown trade ({resp})")
    form = receiver.wait_for_refund("R1")
    check(form.get("trade_status") == "TRADE_SUCCESS" and form.get("refund_fee") == "3.00"
          and form.get("gmt_refund"), f"partial refund notification ({form})")
    form = receiver.wait_for_refund("R2")
    check(form.get("trade_status") == "TRADE_CLOSED" and form.get("refund_fee") == "10.00",
          "full refund notification is TRADE_CLOSED")
    data = dict(form)
    signature = data.pop("sign")
    check(sdk.verify(dict(data), signature), "SDK verify() accepts the refund notification")

    # close an unpaid trade
    closed_no = unique("PYCLOSE")
    resp = sdk.api_alipay_trade_precreate(
        subject="to be closed", out_trade_no=closed_no, total_amount=1.5
    )
    check(resp.get("code") == "10000", "precreate with a numeric total_amount")
    resp = sdk.api_alipay_trade_close(out_trade_no=closed_no)
    check(resp.get("sub_code") == "ACQ.TRADE_NOT_EXIST", f"close before the scan: no such trade yet ({resp})")
    request("POST", f"{emulator}/__emulator/alipay/scan/{closed_no}", data=b"")
    resp = sdk.api_alipay_trade_close(out_trade_no=closed_no)
    check(resp.get("code") == "10000", f"close ({resp})")
    resp = sdk.api_alipay_trade_query(out_trade_no=closed_no)
    check(resp.get("trade_status") == "TRADE_CLOSED", f"query after close ({resp})")

    # page pay: the SDK builds the signed URL; the emulator serves the cashier
    page_no = unique("PYPAGE")
    return_url = "http://127.0.0.1:9/alipay/return"
    resp = sdk.api_alipay_trade_query(out_trade_no=page_no)
    check(resp.get("sub_code") == "ACQ.TRADE_NOT_EXIST", "page trade does not exist before the cashier opens")
    order_string = sdk.api_alipay_trade_page_pay(
        subject="page pay 测试", out_trade_no=page_no, total_amount="2.00", return_url=return_url
    )
    status, _, html = request("GET", sdk._gateway + "?" + order_string)
    check(status == 200 and 'id="emulator-pay"' in html, f"page pay URL renders the cashier ({status})")
    check("支付宝 收银台 (fenpay emulator)" in html, "cashier title")
    resp = sdk.api_alipay_trade_query(out_trade_no=page_no)
    check(resp.get("trade_status") == "WAIT_BUYER_PAY", "opened page trade is WAIT_BUYER_PAY")
    status, headers, _ = request("POST", f"{emulator}/__emulator/alipay/cashier/{page_no}/pay", data=b"")
    location = headers.get("Location", "")
    check(status == 303 and location.startswith(return_url + "?"), f"cashier redirects to return_url ({status})")
    params = dict(urllib.parse.parse_qsl(urllib.parse.urlsplit(location).query, keep_blank_values=True))
    signature = params.pop("sign")
    check(sdk.verify(dict(params), signature), "SDK verify() accepts the return parameters")
    check(params.get("method") == "alipay.trade.page.pay.return", "return method")

    # a merchant signing with the wrong key is told so, in a response the SDK verifies
    impostor = client(
        platform_key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        ).decode()
    )
    impostor._gateway = sdk._gateway
    resp = impostor.api_alipay_trade_query(out_trade_no=paid_no)
    check(resp.get("sub_code") == "isv.invalid-signature", f"wrong app key rejected ({resp})")

    print(f"alipay interop ({'certificate' if cert_mode else 'public_key'} mode): {len(CHECKS)} checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any failure, including SDK exceptions, fails the run
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        if CHECKS:
            print(f"({len(CHECKS)} checks passed before the failure)", file=sys.stderr)
        sys.exit(1)
