#!/usr/bin/env python3
"""Interop: drive the fenpay emulator's WeChat Pay v3 side with wechatpayv3
(minibear2021/wechatpayv3 on PyPI), a widely used third-party WeChat Pay SDK.

The SDK signs every request itself and refuses any 2xx answer whose signature does
not verify, so each successful call below proves the emulator authenticated the
request and signed its answer the way WeChat does. Notifications are fed to the
SDK's own callback(), which checks Wechatpay-Signature-Type, the signature and the
serial, then decrypts the AEAD_AES_256_GCM resource with the APIv3 key.

Run once per merchant mode (FENPAY_WECHAT_MODE, as the emulator's EMULATOR_WECHAT_MODE).
Covered: public-key mode (native prepay, query, close -> signed 204, notification,
refund -> query_refund -> REFUND.SUCCESS notification through callback()),
platform-certificate mode (the SDK downloads /v3/certificates and verifies answers
and notifications with the certificate), WECHATPAY/SIGNTEST/ signature probes
rejected by the SDK, and a merchant signing with the wrong key getting 401.

Environment:
  FENPAY_DEV_KEYS        directory with wechat_merchant_key.pem, wechat_merchant_serial,
                         wechat_platform_key.pem (WeChat's key; its public half is
                         "the WeChat Pay public key"), wechat_public_key_id,
                         wechat_api_v3_key, wechat_platform_cert.pem
  FENPAY_EMULATOR_URL    e.g. http://127.0.0.1:8090 (default)
  FENPAY_WECHAT_MCH_ID   default 1900000109
  FENPAY_WECHAT_APP_ID   default wxd0000000000emu01
  FENPAY_WECHAT_MODE     public_key | certificate (default): the emulator's merchant mode

Exit status 0 when every check passed, 1 otherwise.
"""

import http.server
import json
import os
import sys
import threading
import time
import urllib.error
import urllib.request
from pathlib import Path

from cryptography.hazmat.primitives import serialization
from wechatpayv3 import WeChatPay, WeChatPayType

CHECKS = []


def check(condition, what):
    if not condition:
        raise AssertionError(what)
    CHECKS.append(what)
    print(f"ok   {what}")


def point_at_emulator(sdk, emulator):
    # wechatpayv3 has no base-URL option: Core.__init__ hard-codes
    # self._gate_way = 'https://api.mch.weixin.qq.com' and Core.request() builds
    # every URL as self._gate_way + path (the signed canonical URL is the path
    # alone). Rebinding that one attribute is the only change; signing,
    # verification and decryption stay the SDK's own.
    sdk._core._gate_way = emulator


class Receiver:
    """A merchant notify_url on a local thread that answers like a merchant should:
    204 when the SDK's callback() accepts the notification, 401 FAIL otherwise
    (which is what a WECHATPAY/SIGNTEST/ probe must get)."""

    def __init__(self):
        self.sdk = None
        self.seen = []
        self.lock = threading.Lock()
        receiver = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_POST(self):
                length = int(self.headers.get("Content-Length", "0"))
                body = self.rfile.read(length)
                # Header names exactly as they arrived.
                headers = dict(self.headers.items())
                try:
                    result = receiver.sdk.callback(headers, body)
                except Exception as e:  # the SDK raises on an unknown signature type
                    result = None
                    print(f"     callback raised {type(e).__name__}: {e}")
                with receiver.lock:
                    receiver.seen.append((headers, body, result))
                if result:
                    self.send_response(204)
                    self.end_headers()
                else:
                    payload = json.dumps({"code": "FAIL", "message": "失败"}).encode()
                    self.send_response(401)
                    self.send_header("Content-Type", "application/json")
                    self.send_header("Content-Length", str(len(payload)))
                    self.end_headers()
                    self.wfile.write(payload)

            def log_message(self, *args):
                pass

        self.server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_address[1]}/wechat/notify"
        threading.Thread(target=self.server.serve_forever, daemon=True).start()

    def wait_for(self, out_trade_no, count=1, timeout=30.0):
        """The first `count` notifications for a trade (matched by envelope id via the
        decrypted resource, or by position for rejected ones)."""
        deadline = time.time() + timeout
        while time.time() < deadline:
            with self.lock:
                mine = [s for s in self.seen if trade_of(s) in (out_trade_no, None)]
                accepted = [s for s in mine if s[2]]
                if len(mine) >= count and accepted:
                    return mine
            time.sleep(0.1)
        raise AssertionError(f"no accepted notification for {out_trade_no} within {timeout}s")

    def clear(self):
        with self.lock:
            self.seen.clear()


def trade_of(seen):
    result = seen[2]
    return result["resource"].get("out_trade_no") if result else None


def request(method, url, body=None):
    """(status, parsed JSON or text) for the emulator's control API."""
    data = json.dumps(body).encode() if body is not None else b""
    req = urllib.request.Request(
        url, data=data if method == "POST" else None, method=method,
        headers={"Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(req, timeout=15) as resp:
            status, text = resp.status, resp.read().decode()
    except urllib.error.HTTPError as e:
        status, text = e.code, e.read().decode()
    try:
        return status, json.loads(text) if text else None
    except ValueError:
        return status, text


def unique(prefix):
    return f"{prefix}{time.time_ns()}"[:32]


def main():
    keys_dir = Path(os.environ["FENPAY_DEV_KEYS"])
    emulator = os.environ.get("FENPAY_EMULATOR_URL", "http://127.0.0.1:8090").rstrip("/")
    mchid = os.environ.get("FENPAY_WECHAT_MCH_ID", "1900000109")
    appid = os.environ.get("FENPAY_WECHAT_APP_ID", "wxd0000000000emu01")

    def text(name):
        return (keys_dir / name).read_text().strip()

    merchant_pem = (keys_dir / "wechat_merchant_key.pem").read_text()
    platform_key = serialization.load_pem_private_key(
        (keys_dir / "wechat_platform_key.pem").read_bytes(), password=None
    )
    public_pem = (
        platform_key.public_key()
        .public_bytes(serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo)
        .decode()
    )
    public_key_id = text("wechat_public_key_id")
    apiv3_key = text("wechat_api_v3_key")
    merchant_serial = text("wechat_merchant_serial")
    # The emulated merchant: "public_key" (the WeChat Pay public key only) or
    # "certificate" (platform certificates, answering public-key requests too).
    mode = os.environ.get("FENPAY_WECHAT_MODE", "certificate")
    request("POST", f"{emulator}/__emulator/faults", {})

    receiver = Receiver()
    sdk = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=mchid,
        private_key=merchant_pem,
        cert_serial_no=merchant_serial,
        appid=appid,
        apiv3_key=apiv3_key,
        notify_url=receiver.url,
        public_key=public_pem,
        public_key_id=public_key_id,
    )
    point_at_emulator(sdk, emulator)
    receiver.sdk = sdk

    # 1. native prepay + query (public-key mode: the SDK sends Wechatpay-Serial:
    #    PUB_KEY_ID_... and verifies the answer with the public key)
    first = unique("PYNATIVE")
    code, message = sdk.pay(description="fenpay interop 测试", out_trade_no=first, amount={"total": 1})
    check(code == 200, f"native prepay answered 200 ({code} {message})")
    check(json.loads(message)["code_url"].startswith("weixin://wxpay/bizpayurl?pr="), "code_url")
    code, message = sdk.pay(description="fenpay interop 测试", out_trade_no=first, amount={"total": 1})
    check(code == 200, "identical re-post is idempotent")
    code, message = sdk.pay(description="fenpay interop 测试", out_trade_no=first, amount={"total": 2})
    check(code == 403 and json.loads(message)["code"] == "OUT_TRADE_NO_USED",
          f"changed re-post refused ({code} {message})")
    code, message = sdk.query(out_trade_no=first)
    tx = json.loads(message)
    check(code == 200 and tx["trade_state"] == "NOTPAY", f"query NOTPAY ({code} {message})")
    check(tx["amount"]["total"] == 1 and tx["mchid"] == mchid and tx["appid"] == appid, "query fields")
    code, message = sdk.query(out_trade_no=unique("PYMISSING"))
    check(code == 404 and json.loads(message)["code"] == "ORDER_NOT_EXIST", "unknown order is 404")

    # 2. close another: a signed 204 with an empty body, which the SDK verifies
    second = unique("PYCLOSE")
    code, _ = sdk.pay(description="to be closed", out_trade_no=second, amount={"total": 100})
    check(code == 200, "second prepay")
    code, body = sdk.close(out_trade_no=second)
    check(code == 204 and not body, f"close answered a verified 204 ({code} {body!r})")
    code, message = sdk.query(out_trade_no=second)
    check(json.loads(message)["trade_state"] == "CLOSED", "query after close is CLOSED")

    # 3. pay a third through the control API; the notification goes through callback()
    third = unique("PYPAY")
    code, _ = sdk.pay(description="paid by the buyer", out_trade_no=third, amount={"total": 1999},
                      attach="interop")
    check(code == 200, "third prepay")
    status, paid = request("POST", f"{emulator}/__emulator/wechat/pay/{third}", {"openid": "oInteropBuyer0000000000000001"})
    check(status == 200 and paid["trade_state"] == "SUCCESS", f"control API pay ({status} {paid})")
    (headers, body, result), = receiver.wait_for(third)
    check(result is not None, "SDK callback() verified and decrypted the notification")
    check(result["event_type"] == "TRANSACTION.SUCCESS", "event_type")
    resource = result["resource"]
    check(resource["trade_state"] == "SUCCESS", "decrypted trade_state SUCCESS")
    check(resource["out_trade_no"] == third and resource["amount"]["total"] == 1999, "decrypted order")
    check(resource["transaction_id"] == paid["transaction_id"], "decrypted transaction_id")
    check(resource["payer"]["openid"] == "oInteropBuyer0000000000000001", "decrypted payer")
    check(resource["attach"] == "interop", "attach echoed")
    check(all(name in headers for name in ("Wechatpay-Signature", "Wechatpay-Serial", "Wechatpay-Timestamp",
                                          "Wechatpay-Nonce", "Wechatpay-Signature-Type")),
          f"notification header names spelled as WeChat does ({sorted(headers)})")
    check(sdk.decrypt_callback(headers, body) is not None, "decrypt_callback() accepts it too")
    forged = body.replace(b'"summary":"', b'"summary":"x', 1)
    check(sdk.callback(headers, forged) is None, "callback() rejects a tampered body")
    code, message = sdk.query(transaction_id=paid["transaction_id"])
    check(code == 200 and json.loads(message)["trade_state"] == "SUCCESS", "query by transaction_id")
    code, message = sdk.close(out_trade_no=third)
    check(code == 400 and json.loads(message)["code"] == "ORDER_PAID", f"closing a paid order ({code} {message})")

    # 3b. refunds: refund() answers PROCESSING, the REFUND.SUCCESS notification goes
    #     through callback() (associated_data "refund"), query_refund() follows it
    refunded = unique("PYREFUND")
    check(sdk.pay(description="to be refunded", out_trade_no=refunded, amount={"total": 1000})[0] == 200,
          "refund: prepay")
    request("POST", f"{emulator}/__emulator/wechat/pay/{refunded}")
    receiver.wait_for(refunded)
    receiver.clear()
    code, message = sdk.refund(out_refund_no=f"{refunded}R1", amount={"refund": 400, "total": 1000, "currency": "CNY"},
                               out_trade_no=refunded, reason="interop 退款", notify_url=receiver.url)
    answer = json.loads(message)
    check(code == 200 and answer["status"] in ("PROCESSING", "SUCCESS"), f"refund accepted ({code} {message})")
    check(answer["refund_id"].startswith("50") and answer["out_refund_no"] == f"{refunded}R1"
          and answer["amount"]["refund"] == 400 and answer["amount"]["total"] == 1000
          and answer["amount"]["currency"] == "CNY" and answer["channel"] == "ORIGINAL", "refund answer fields")
    (headers, body, result), = receiver.wait_for(refunded)
    check(result is not None and result["event_type"] == "REFUND.SUCCESS",
          "SDK callback() verified and decrypted the REFUND.SUCCESS notification")
    check(json.loads(body)["resource"]["associated_data"] == "refund"
          and result["resource_type"] == "encrypt-resource", "refund notification resource")
    resource = result["resource"]
    check(resource["refund_status"] == "SUCCESS" and resource["refund_id"] == answer["refund_id"]
          and resource["out_refund_no"] == f"{refunded}R1" and resource["mchid"] == mchid
          and resource["amount"]["refund"] == 400 and resource["amount"]["payer_refund"] == 400
          and resource["success_time"].endswith("+08:00"), f"decrypted refund ({resource})")
    forged = body.replace(b'"summary":"', b'"summary":"x', 1)
    check(sdk.callback(headers, forged) is None, "callback() rejects a tampered refund notification")
    code, message = sdk.query_refund(out_refund_no=f"{refunded}R1")
    check(code == 200 and json.loads(message)["status"] == "SUCCESS"
          and json.loads(message)["success_time"] == resource["success_time"], f"query_refund SUCCESS ({message})")
    code, message = sdk.refund(out_refund_no=f"{refunded}R1", amount={"refund": 400, "total": 1000, "currency": "CNY"},
                               out_trade_no=refunded)
    check(code == 200 and json.loads(message)["refund_id"] == answer["refund_id"],
          "same out_refund_no answers the same refund")
    code, message = sdk.refund(out_refund_no=f"{refunded}R2", amount={"refund": 601, "total": 1000, "currency": "CNY"},
                               out_trade_no=refunded)
    check(code == 400 and json.loads(message)["code"] == "INVALID_REQUEST", f"over-refund refused ({code} {message})")
    paid_tx = json.loads(sdk.query(out_trade_no=refunded)[1])
    code, message = sdk.refund(out_refund_no=f"{refunded}R3", amount={"refund": 600, "total": 1000, "currency": "CNY"},
                               transaction_id=paid_tx["transaction_id"])
    check(code == 200, f"refund of the rest by transaction_id ({code} {message})")
    # Let its REFUND.SUCCESS notification land before the probe fault below is armed.
    for _ in range(100):
        _, log = request("GET", f"{emulator}/__emulator/wechat/notifications?out_trade_no={refunded}")
        if any(n.get("out_refund_no") == f"{refunded}R3" and n["delivered"] for n in log or []):
            break
        time.sleep(0.1)
    check(any(n.get("out_refund_no") == f"{refunded}R3" and n["event_type"] == "REFUND.SUCCESS"
              and n["delivered"] for n in log), "second refund notified and delivered")
    code, message = sdk.query(out_trade_no=refunded)
    check(json.loads(message)["trade_state"] == "REFUND", f"refunded trade is REFUND ({message})")
    code, message = sdk.query_refund(out_refund_no=unique("PYNOREFUND"))
    check(code == 404 and json.loads(message)["code"] == "RESOURCE_NOT_EXISTS", "unknown refund is 404")

    # 4. signature probe: the SDK must refuse it; the merchant answers 401, then the
    #    real notification is accepted
    receiver.clear()
    request("POST", f"{emulator}/__emulator/faults", {"signature_probe": True})
    probed = unique("PYPROBE")
    check(sdk.pay(description="probe", out_trade_no=probed, amount={"total": 1})[0] == 200, "probe prepay")
    request("POST", f"{emulator}/__emulator/wechat/pay/{probed}")
    seen = receiver.wait_for(probed, count=2)
    check(seen[0][0].get("Wechatpay-Signature", "").startswith(
        "WECHATPAY/SIGNTEST/") and seen[0][2] is None, "SDK rejected the WECHATPAY/SIGNTEST/ probe")
    check(seen[1][2] is not None, "SDK accepted the real notification after the probe")
    for _ in range(100):
        _, log = request("GET", f"{emulator}/__emulator/wechat/notifications?out_trade_no={probed}")
        if log and log[0]["delivered"]:
            break
        time.sleep(0.1)
    attempts = [(a["probe"], a["status"]) for a in log[0]["attempts"]]
    check(attempts == [(True, 401), (False, 204)] and log[0]["delivered"],
          f"delivery log: probe answered 401, then delivered ({attempts})")
    request("POST", f"{emulator}/__emulator/faults", {})

    if mode == "public_key":
        # 5. a merchant with the WeChat Pay public key only (every merchant since late
        #    2024) has no platform certificates: the download is refused in WeChat's
        #    words, and the SDK in certificate mode cannot start
        code, message = sdk._core.request("/v3/certificates")
        check(code == 404 and json.loads(message)["code"] == "RESOURCE_NOT_EXISTS",
              f"public-key merchant: /v3/certificates is 404 RESOURCE_NOT_EXISTS ({code} {message})")
        cert_sdk = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE, mchid=mchid, private_key=merchant_pem,
            cert_serial_no=merchant_serial, appid=appid, apiv3_key=apiv3_key,
            notify_url=receiver.url, public_key=public_pem, public_key_id=public_key_id,
        )
        point_at_emulator(cert_sdk, emulator)
        cert_sdk._core._public_key = None
        cert_sdk._core._public_key_id = None
        try:
            cert_sdk._core._init_certificates()
            refused = False
        except Exception:
            refused = True
        check(refused, "public-key merchant: the SDK in certificate mode finds no certificate")
    else:
        # 5. platform-certificate mode: no public key; the SDK downloads /v3/certificates,
        #    decrypts them with the APIv3 key, sends no Wechatpay-Serial and verifies
        #    answers and notifications with the certificate
        # Without public_key, Core.__init__ downloads the certificates from the
        # hard-coded production host before the gateway can be rebound. So build it in
        # public-key mode, rebind the gateway, drop the public key, and let the SDK's own
        # _init_certificates() download /v3/certificates from the emulator.
        cert_sdk = WeChatPay(
            wechatpay_type=WeChatPayType.NATIVE,
            mchid=mchid,
            private_key=merchant_pem,
            cert_serial_no=merchant_serial,
            appid=appid,
            apiv3_key=apiv3_key,
            notify_url=receiver.url,
            public_key=public_pem,
            public_key_id=public_key_id,
        )
        point_at_emulator(cert_sdk, emulator)
        cert_sdk._core._public_key = None
        cert_sdk._core._public_key_id = None
        cert_sdk._core._init_certificates()
        certs = cert_sdk._core._certificates
        check(len(certs) == 1, "certificate mode: /v3/certificates decrypted to one valid certificate")
        cert_serial = format(certs[0].serial_number, "X")
        code, message = cert_sdk.query(out_trade_no=third)
        check(code == 200 and json.loads(message)["trade_state"] == "SUCCESS",
              "certificate mode: query answer verified with the platform certificate")
        receiver.clear()
        receiver.sdk = cert_sdk
        cert_no = unique("PYCERT")
        check(cert_sdk.pay(description="cert mode", out_trade_no=cert_no, amount={"total": 3})[0] == 200,
              "certificate mode: prepay")
        request("POST", f"{emulator}/__emulator/wechat/pay/{cert_no}", {"serial_mode": "certificate"})
        (headers, _, result), = receiver.wait_for(cert_no)
        serial = headers["Wechatpay-Serial"]
        check(serial.upper().lstrip("0") == cert_serial.lstrip("0"), "certificate mode: notification names the certificate")
        check(result["resource"]["trade_state"] == "SUCCESS", "certificate mode: callback() decrypted it")
        receiver.sdk = sdk

    # 6. a merchant signing with the wrong key is refused with 401 SIGN_ERROR
    impostor = WeChatPay(
        wechatpay_type=WeChatPayType.NATIVE,
        mchid=mchid,
        private_key=platform_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        ).decode(),
        cert_serial_no=merchant_serial,
        appid=appid,
        apiv3_key=apiv3_key,
        notify_url=receiver.url,
        public_key=public_pem,
        public_key_id=public_key_id,
    )
    point_at_emulator(impostor, emulator)
    code, message = impostor.query(out_trade_no=first)
    check(code == 401 and json.loads(message)["code"] == "SIGN_ERROR", f"wrong merchant key rejected ({code})")

    print(f"wechat interop ({mode} merchant): {len(CHECKS)} checks passed")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main())
    except Exception as e:  # any failure, including SDK exceptions, fails the run
        print(f"FAIL {type(e).__name__}: {e}", file=sys.stderr)
        if CHECKS:
            print(f"({len(CHECKS)} checks passed before the failure)", file=sys.stderr)
        sys.exit(1)
