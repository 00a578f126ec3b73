#!/usr/bin/env python3
"""Interop: drive the fenpay emulator's Alipay gateway with the official Alipay Python SDK
(alipay-sdk-python, `DefaultAlipayClient`).

This SDK form-encodes the common parameters into the query string with `quote_plus`, so
`timestamp=2026-01-02+03:04:05` arrives with its space as `+` (issue #14: the gateway
must decode `+` as a space before verifying). It verifies every answer's `sign` with the
Alipay public key and raises when it does not verify.

Covered: precreate, query (before and after the scan), pay -> TRADE_SUCCESS notification
verified with the SDK's verify_with_rsa, refund, refund query, close, a spoiled answer
signature refused, and a GET page-pay URL from page_execute opening the cashier.

The SDK's transport cannot reach a non-default port (WebUtils.get_http_connection
always connects to port 80/443 and appends the URL's port as an int); the only change
below replaces that one function with one that keeps the port. Signing, encoding and
verification stay the SDK's own.

Environment: FENPAY_DEV_KEYS, FENPAY_EMULATOR_URL, FENPAY_ALIPAY_APP_ID.
Exit status 0 when every check passed, 1 otherwise.
"""

import http.client
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

from Crypto.PublicKey import RSA

import alipay.aop.api.util.WebUtils as web_utils
from alipay.aop.api.AlipayClientConfig import AlipayClientConfig
from alipay.aop.api.DefaultAlipayClient import DefaultAlipayClient
from alipay.aop.api.request.AlipayTradeCloseRequest import AlipayTradeCloseRequest
from alipay.aop.api.request.AlipayTradeFastpayRefundQueryRequest import AlipayTradeFastpayRefundQueryRequest
from alipay.aop.api.request.AlipayTradePagePayRequest import AlipayTradePagePayRequest
from alipay.aop.api.request.AlipayTradePrecreateRequest import AlipayTradePrecreateRequest
from alipay.aop.api.request.AlipayTradeQueryRequest import AlipayTradeQueryRequest
from alipay.aop.api.request.AlipayTradeRefundRequest import AlipayTradeRefundRequest
from alipay.aop.api.util.SignatureUtils import get_sign_content, verify_with_rsa

CHECKS = []


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    CHECKS.append(what)
    print(f"ok   {what}")


def get_http_connection(url, query_string, timeout):
    parsed = urllib.parse.urlparse(url)
    cls = http.client.HTTPSConnection if parsed.scheme == "https" else http.client.HTTPConnection
    connection = cls(host=parsed.hostname, port=parsed.port, timeout=timeout)
    return f"{parsed.scheme}://{parsed.netloc}{parsed.path}?{query_string}", connection


web_utils.get_http_connection = get_http_connection


class Receiver:
    """notify_url: verifies each notification with the SDK's verify_with_rsa."""

    def __init__(self, public_key):
        self.seen = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                raw = self.rfile.read(int(self.headers.get("Content-Length", "0"))).decode()
                params = dict(urllib.parse.parse_qsl(raw, keep_blank_values=True))
                sign = params.pop("sign", "")
                params.pop("sign_type", None)
                try:
                    ok = verify_with_rsa(public_key, get_sign_content(params).encode(), sign)
                except Exception as e:  # rsa raises VerificationError on a bad signature
                    print(f"     notification refused: {e}")
                    ok = False
                with receiver.lock:
                    receiver.seen.append((params, ok))
                body = b"success" if ok else b"fail"
                self.send_response(200)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/alipay/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, out_trade_no, trade_status, timeout=30.0):
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                for params, ok in self.seen:
                    if params.get("out_trade_no") == out_trade_no and params.get("trade_status") == trade_status:
                        return params, ok
            time.sleep(0.1)
        raise AssertionError(f"no {trade_status} notification for {out_trade_no} within {timeout}s")


def control(emulator, path, body=None):
    req = urllib.request.Request(
        emulator + path, data=json.dumps(body or {}).encode(), method="POST",
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            return resp.status
    except urllib.error.HTTPError as e:
        return e.code


def unique(prefix):
    return f"{prefix}{int(time.time() * 1000)}{os.getpid() % 1000}"


def main():
    emulator = os.environ.get("FENPAY_EMULATOR_URL", "http://127.0.0.1:8090").rstrip("/")
    keys = Path(os.environ.get("FENPAY_DEV_KEYS", "data/dev-keys"))
    app_key = RSA.import_key((keys / "alipay_app_key.pem").read_text())
    alipay_public = RSA.import_key((keys / "alipay_platform_key.pem").read_text()).publickey()
    public_pem = alipay_public.export_key().decode()

    config = AlipayClientConfig()
    config.server_url = emulator + "/gateway.do"
    config.app_id = os.environ.get("FENPAY_ALIPAY_APP_ID", "2021000000000001")
    # The SDK signs with `rsa`, which reads PKCS#1.
    config.app_private_key = app_key.export_key(pkcs=1).decode()
    config.alipay_public_key = public_pem
    config.sign_type = "RSA2"
    client = DefaultAlipayClient(alipay_client_config=config)
    receiver = Receiver(public_pem)

    def call(request_cls, biz, notify_url=None):
        request = request_cls(biz_model=None)
        request.biz_content = biz
        if notify_url:
            request.notify_url = notify_url
        return json.loads(client.execute(request))

    no = unique("PYOFF")
    r = call(AlipayTradePrecreateRequest, {"out_trade_no": no, "total_amount": "1.00", "subject": "official sdk 测试"}, receiver.url)
    check(r.get("code") == "10000" and r.get("qr_code"), "precreate (query-string timestamp with '+', answer sign verified)")
    r = call(AlipayTradeQueryRequest, {"out_trade_no": no})
    check(r.get("sub_code") == "ACQ.TRADE_NOT_EXIST", "query before the scan: ACQ.TRADE_NOT_EXIST")
    check(control(emulator, f"/__emulator/alipay/scan/{no}") == 200, "buyer scans")
    r = call(AlipayTradeQueryRequest, {"out_trade_no": no})
    check(r.get("trade_status") == "WAIT_BUYER_PAY", "query: WAIT_BUYER_PAY")
    check(control(emulator, f"/__emulator/alipay/pay/{no}") == 200, "emulator pays the trade")
    params, ok = receiver.wait_for(no, "TRADE_SUCCESS")
    check(ok and params.get("total_amount") == "1.00", "TRADE_SUCCESS notification verified (verify_with_rsa)")
    r = call(AlipayTradeQueryRequest, {"out_trade_no": no})
    check(r.get("trade_status") == "TRADE_SUCCESS", "query: TRADE_SUCCESS")
    r = call(AlipayTradeRefundRequest, {"out_trade_no": no, "refund_amount": "0.20", "out_request_no": no + "R1"})
    check(r.get("code") == "10000" and r.get("fund_change") == "Y", "refund 0.20")
    r = call(AlipayTradeFastpayRefundQueryRequest, {"out_trade_no": no, "out_request_no": no + "R1"})
    check(r.get("refund_amount") == "0.20", "refund query")

    closing = unique("PYOFFC")
    call(AlipayTradePrecreateRequest, {"out_trade_no": closing, "total_amount": "2.00", "subject": "close me"})
    control(emulator, f"/__emulator/alipay/scan/{closing}")
    r = call(AlipayTradeCloseRequest, {"out_trade_no": closing})
    check(r.get("code") == "10000", "close")
    r = call(AlipayTradeQueryRequest, {"out_trade_no": closing})
    check(r.get("trade_status") == "TRADE_CLOSED", "query: TRADE_CLOSED")

    control(emulator, "/__emulator/faults", {"bad_signature_next": 1})
    try:
        call(AlipayTradeQueryRequest, {"out_trade_no": no})
        refused = False
    except Exception as e:
        refused = "sign verify failed" in str(e)
    control(emulator, "/__emulator/faults", {})
    check(refused, "a spoiled answer signature is refused by the SDK")

    page_no = unique("PYOFFP")
    page = AlipayTradePagePayRequest(biz_model=None)
    page.biz_content = {"out_trade_no": page_no, "total_amount": "3.00", "subject": "page pay 页面",
                        "product_code": "FAST_INSTANT_TRADE_PAY"}
    page.return_url = "http://127.0.0.1:9/return"
    url = client.page_execute(page, http_method="GET")
    check("timestamp=" in url and "+" in url.split("timestamp=")[1].split("&")[0], "page_execute URL carries a '+' for the space")
    with urllib.request.urlopen(url, timeout=15) as resp:
        html = resp.read().decode()
        check(resp.status == 200 and 'id="emulator-pay"' in html, "page-pay URL accepted, cashier shown")
    r = call(AlipayTradeQueryRequest, {"out_trade_no": page_no})
    check(r.get("trade_status") == "WAIT_BUYER_PAY", "page trade opened: WAIT_BUYER_PAY")
    print(f"alipay official SDK interop: {len(CHECKS)} checks passed")


if __name__ == "__main__":
    try:
        main()
    except Exception as e:
        print(f"FAIL {type(e).__name__}: {e}")
        sys.exit(1)
