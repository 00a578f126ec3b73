'use strict';
// Interop: the official npm `alipay-sdk` (v4) drives the fenpay emulator's Alipay side.
//   - gateway.do through `exec` with `validateSign: true` (every answer's RSA2 `sign`
//     checked against the Alipay public key): precreate, query, close, refund,
//     refund query; a spoiled answer signature is rejected;
//   - `pageExecute` builds a GET page-pay URL that the emulator accepts (cashier page);
//   - the payment notification posted to a local notify_url passes `checkNotifySignV2`;
//   - OpenAPI v3 through `curl` (ALIPAY-SHA256withRSA Authorization; the SDK verifies
//     `alipay-signature` over `alipay-timestamp\nalipay-nonce\nbody\n` on every 2xx).
// Environment: FENPAY_DEV_KEYS, FENPAY_EMULATOR_URL, FENPAY_ALIPAY_APP_ID.
const { AlipaySdk } = require('alipay-sdk');
const { emulator, check, readKey, publicPem, unique, control, listener, done } = require('./common');

const appId = process.env.FENPAY_ALIPAY_APP_ID || '2021000000000001';

function sdkFor() {
  return new AlipaySdk({
    appId,
    privateKey: readKey('alipay_app_key.pem'),
    keyType: 'PKCS8',
    alipayPublicKey: publicPem(readKey('alipay_platform_key.pem')),
    gateway: `${emulator}/gateway.do`,
    endpoint: emulator,
    timeout: 15000,
  });
}

async function gatewayDo(sdk, notify) {
  const exec = (method, bizContent, extra = {}) =>
    sdk.exec(method, { bizContent, ...extra }, { validateSign: true });

  // precreate -> query -> pay -> notification -> refund -> refund query
  const tradeNo = unique('NODEALI');
  let r = await exec('alipay.trade.precreate',
    { out_trade_no: tradeNo, total_amount: '1.00', subject: 'node sdk 测试' },
    { notifyUrl: notify.url });
  check(r.code === '10000' && r.outTradeNo === tradeNo && r.qrCode, 'gateway.do precreate (answer signature verified)');
  // Like Alipay, a precreated trade exists only once the buyer scans the code.
  r = await exec('alipay.trade.query', { out_trade_no: tradeNo });
  check(r.subCode === 'ACQ.TRADE_NOT_EXIST', 'gateway.do query before the scan: ACQ.TRADE_NOT_EXIST');
  check((await control('POST', `/__emulator/alipay/scan/${tradeNo}`, {})).status === 200, 'buyer scans');
  r = await exec('alipay.trade.query', { out_trade_no: tradeNo });
  check(r.code === '10000' && r.tradeStatus === 'WAIT_BUYER_PAY', 'gateway.do query: WAIT_BUYER_PAY');
  const paid = await control('POST', `/__emulator/alipay/pay/${tradeNo}`, {});
  check(paid.status === 200, `emulator pays the trade (${paid.status})`);
  const note = await notify.waitFor((s) => s.params && s.params.out_trade_no === tradeNo && s.params.trade_status === 'TRADE_SUCCESS');
  check(note.accepted, 'payment notification passes checkNotifySignV2');
  check(note.params.trade_status === 'TRADE_SUCCESS' && note.params.total_amount === '1.00', 'notification: TRADE_SUCCESS 1.00');
  r = await exec('alipay.trade.query', { out_trade_no: tradeNo });
  check(r.tradeStatus === 'TRADE_SUCCESS', 'gateway.do query: TRADE_SUCCESS');
  r = await exec('alipay.trade.refund', { out_trade_no: tradeNo, refund_amount: '0.40', out_request_no: `${tradeNo}R1` });
  check(r.code === '10000' && r.fundChange === 'Y' && r.refundFee === '0.40', 'gateway.do refund 0.40');
  r = await exec('alipay.trade.fastpay.refund.query', { out_trade_no: tradeNo, out_request_no: `${tradeNo}R1` });
  check(r.code === '10000' && r.refundAmount === '0.40', 'gateway.do refund query');

  // close an unpaid trade
  const closeNo = unique('NODEALIC');
  r = await exec('alipay.trade.precreate', { out_trade_no: closeNo, total_amount: '2.00', subject: 'close me' });
  check(r.code === '10000', 'gateway.do precreate (to close)');
  await control('POST', `/__emulator/alipay/scan/${closeNo}`, {});
  r = await exec('alipay.trade.close', { out_trade_no: closeNo });
  check(r.code === '10000', 'gateway.do close');
  r = await exec('alipay.trade.query', { out_trade_no: closeNo });
  check(r.tradeStatus === 'TRADE_CLOSED', 'gateway.do query: TRADE_CLOSED');

  // a business error is a signed answer too
  r = await exec('alipay.trade.query', { out_trade_no: unique('NODEALIX') });
  check(r.code === '40004' && r.subCode === 'ACQ.TRADE_NOT_EXIST', 'gateway.do query of an unknown trade: ACQ.TRADE_NOT_EXIST (signed)');

  // a spoiled answer signature is refused by the SDK
  await control('POST', '/__emulator/faults', { bad_signature_next: 1 });
  let refused = false;
  try {
    await exec('alipay.trade.query', { out_trade_no: tradeNo });
  } catch (e) {
    refused = /验签|sign/i.test(String(e.message)) || e.code === 'response-signature-verify-error';
  }
  await control('POST', '/__emulator/faults', {});
  check(refused, 'validateSign refuses an answer whose signature does not verify');

  // page pay: the SDK builds a GET URL; the emulator opens the cashier
  const pageNo = unique('NODEPAGE');
  const url = sdk.pageExecute('alipay.trade.page.pay', 'GET', {
    bizContent: { out_trade_no: pageNo, total_amount: '3.00', subject: 'page pay 页面 test', product_code: 'FAST_INSTANT_TRADE_PAY' },
    returnUrl: 'http://127.0.0.1:9/return?x=1 2',
  });
  check(url.startsWith(`${emulator}/gateway.do?`), 'pageExecute builds a gateway.do URL');
  const page = await fetch(url);
  const html = await page.text();
  check(page.status === 200 && html.includes('id="emulator-pay"'), `page-pay URL accepted, cashier shown (${page.status})`);
  r = await exec('alipay.trade.query', { out_trade_no: pageNo });
  check(r.tradeStatus === 'WAIT_BUYER_PAY', 'page trade opened: WAIT_BUYER_PAY');
}

async function openApiV3(sdk) {
  const tradeNo = unique('NODEV3');
  let r = await sdk.curl('POST', '/v3/alipay/trade/precreate', {
    body: { out_trade_no: tradeNo, total_amount: '1.00', subject: 'v3 测试' },
  });
  check(r.responseHttpStatus === 200 && r.data.out_trade_no === tradeNo && r.data.qr_code, 'v3 precreate (alipay-signature verified)');
  await control('POST', `/__emulator/alipay/scan/${tradeNo}`, {});
  r = await sdk.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: tradeNo } });
  check(r.data.trade_status === 'WAIT_BUYER_PAY', 'v3 query: WAIT_BUYER_PAY');
  const paid = await control('POST', `/__emulator/alipay/pay/${tradeNo}`, {});
  check(paid.status === 200, 'emulator pays the v3 trade');
  r = await sdk.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: tradeNo } });
  check(r.data.trade_status === 'TRADE_SUCCESS' && r.data.total_amount === '1.00', 'v3 query: TRADE_SUCCESS (state shared with gateway.do)');
  r = await sdk.curl('POST', '/v3/alipay/trade/refund', {
    body: { out_trade_no: tradeNo, refund_amount: '0.30', out_request_no: `${tradeNo}R1` },
  });
  check(r.data.fund_change === 'Y' && r.data.refund_fee === '0.30', 'v3 refund 0.30');
  r = await sdk.curl('POST', '/v3/alipay/trade/fastpay/refund/query', {
    body: { out_trade_no: tradeNo, out_request_no: `${tradeNo}R1` },
  });
  check(r.data.refund_amount === '0.30', 'v3 refund query');

  const closeNo = unique('NODEV3C');
  await sdk.curl('POST', '/v3/alipay/trade/precreate', { body: { out_trade_no: closeNo, total_amount: '2.00', subject: 'close' } });
  await control('POST', `/__emulator/alipay/scan/${closeNo}`, {});
  r = await sdk.curl('POST', '/v3/alipay/trade/close', { body: { out_trade_no: closeNo } });
  check(r.responseHttpStatus === 200 && r.data.out_trade_no === closeNo, 'v3 close');
  r = await sdk.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: closeNo } });
  check(r.data.trade_status === 'TRADE_CLOSED', 'v3 query: TRADE_CLOSED');

  let err;
  try {
    await sdk.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: unique('NODEV3X') } });
  } catch (e) { err = e; }
  check(err && err.responseHttpStatus >= 400 && err.code === 'ACQ.TRADE_NOT_EXIST', `v3 unknown trade: HTTP ${err && err.responseHttpStatus} ${err && err.code}`);

  // a request signed with another key is refused
  const crypto = require('node:crypto');
  const stranger = new AlipaySdk({
    appId,
    privateKey: crypto.generateKeyPairSync('rsa', { modulusLength: 2048 }).privateKey.export({ type: 'pkcs8', format: 'pem' }),
    keyType: 'PKCS8',
    alipayPublicKey: publicPem(readKey('alipay_platform_key.pem')),
    endpoint: emulator,
  });
  err = undefined;
  try {
    await stranger.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: tradeNo } });
  } catch (e) { err = e; }
  check(err && err.responseHttpStatus === 401, `v3 request signed with the wrong key: HTTP ${err && err.responseHttpStatus} ${err && err.code}`);

  await control('POST', '/__emulator/faults', { bad_signature_next: 1 });
  err = undefined;
  try {
    await sdk.curl('POST', '/v3/alipay/trade/query', { body: { out_trade_no: tradeNo } });
  } catch (e) { err = e; }
  await control('POST', '/__emulator/faults', {});
  check(err && err.code === 'response-signature-verify-error', 'v3: the SDK refuses an answer whose alipay-signature does not verify');
}

async function main() {
  const sdk = sdkFor();
  const notify = await listener(async (_headers, raw) => {
    const params = Object.fromEntries(new URLSearchParams(raw));
    const accepted = sdk.checkNotifySignV2(params);
    return { status: 200, body: accepted ? 'success' : 'fail', accepted, params };
  });
  try {
    await gatewayDo(sdk, notify);
    if (process.env.FENPAY_ALIPAY_V3 !== '0') {
      await openApiV3(sdk);
    }
  } finally {
    notify.close();
  }
  done('alipay-sdk (npm)');
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});
