'use strict';
// Interop: npm `wechatpay-axios-plugin` (TheNorthMemory) drives the fenpay emulator's
// WeChat Pay v3 side. It signs every request and, configured with `certs`
// ({ PUB_KEY_ID_...: WeChat Pay public key } or { platform serial: certificate }),
// verifies `Wechatpay-Serial` + `Wechatpay-Signature` of every answer it accepts.
// A second client with `validateStatus: () => true` makes it verify error answers too
// (404 / 400), which must be signed like the rest of the API.
// Covered: native prepay, query, close (204), refund of an unpaid trade (documented
// 404 RESOURCE_NOT_EXISTS), payment notification (signature verified with the SDK's
// Rsa.verify over its Formatter's message, resource decrypted with its AesGcm), refund,
// refund query, REFUND.SUCCESS notification.
// Environment: FENPAY_DEV_KEYS, FENPAY_EMULATOR_URL, FENPAY_WECHAT_MCH_ID,
// FENPAY_WECHAT_APP_ID, FENPAY_WECHAT_MODE (public_key | certificate).
const { X509Certificate } = require('node:crypto');
const { Wechatpay, Rsa, Aes, Formatter } = require('wechatpay-axios-plugin');
const { emulator, check, readKey, readText, publicPem, unique, control, listener, done } = require('./common');

const mchid = process.env.FENPAY_WECHAT_MCH_ID || '1900000109';
const appid = process.env.FENPAY_WECHAT_APP_ID || 'wxd0000000000emu01';
const mode = process.env.FENPAY_WECHAT_MODE || 'public_key';
const apiV3Key = readText('wechat_api_v3_key');

function platform() {
  if (mode === 'certificate') {
    const pem = readKey('wechat_platform_cert.pem');
    return { serial: new X509Certificate(pem).serialNumber.toUpperCase(), key: pem };
  }
  return { serial: readText('wechat_public_key_id'), key: publicPem(readKey('wechat_platform_key.pem')) };
}

function client(extra = {}) {
  const { serial, key } = platform();
  return new Wechatpay({
    mchid,
    serial: readText('wechat_merchant_serial'),
    privateKey: readKey('wechat_merchant_key.pem'),
    certs: { [serial]: key },
    baseURL: `${emulator}/`,
    timeout: 15000,
    ...extra,
  });
}

/** Verify and open a notification the way the SDK's primitives allow. */
function openNotification(headers, raw) {
  const { serial, key } = platform();
  const h = (name) => headers[name.toLowerCase()];
  if (h('Wechatpay-Serial') !== serial) return { accepted: false, why: `serial ${h('Wechatpay-Serial')}` };
  if (Math.abs(Formatter.timestamp() - Number(h('Wechatpay-Timestamp'))) > 300) return { accepted: false, why: 'timestamp' };
  const message = Formatter.joinedByLineFeed(h('Wechatpay-Timestamp'), h('Wechatpay-Nonce'), raw);
  if (!Rsa.verify(message, h('Wechatpay-Signature'), key)) return { accepted: false, why: 'signature' };
  const envelope = JSON.parse(raw);
  const { ciphertext, nonce, associated_data: aad } = envelope.resource;
  const resource = JSON.parse(Aes.AesGcm.decrypt(ciphertext, apiV3Key, nonce, aad));
  return { accepted: true, envelope, resource };
}

async function main() {
  const wxpay = client();
  const strict = client({ validateStatus: () => true });
  const notify = await listener(async (headers, raw) => {
    const opened = openNotification(headers, raw);
    if (!opened.accepted) console.log(`     notification refused: ${opened.why}`);
    return opened.accepted
      ? { status: 204, body: '', ...opened }
      : { status: 401, body: JSON.stringify({ code: 'FAIL', message: '失败' }), ...opened };
  });
  try {
    const tradeNo = unique('NODEWX');
    let r = await wxpay.v3.pay.transactions.native.post({
      appid, mchid, description: 'node sdk 测试', out_trade_no: tradeNo, notify_url: notify.url,
      amount: { total: 100, currency: 'CNY' },
    });
    check(r.status === 200 && r.data.code_url.startsWith('weixin://'), `native prepay (${mode}: answer verified)`);
    r = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid }, out_trade_no: tradeNo });
    check(r.data.trade_state === 'NOTPAY', 'query by out_trade_no: NOTPAY');

    // Refund of a trade that exists but was never paid: WeChat's documented answer
    // (404 RESOURCE_NOT_EXISTS, "未支付的订单不能发起退款"), verified by the SDK.
    r = await strict.v3.refund.domestic.refunds.post({
      out_trade_no: tradeNo, out_refund_no: `${tradeNo}R0`, amount: { refund: 100, total: 100, currency: 'CNY' },
    });
    check(r.status === 404 && r.data.code === 'RESOURCE_NOT_EXISTS', `refund of an unpaid trade: ${r.status} ${r.data.code} (signed, verified)`);
    r = await strict.v3.refund.domestic.refunds._out_refund_no_.get({ out_refund_no: `${tradeNo}R0` });
    check(r.status === 404 && r.data.code === 'RESOURCE_NOT_EXISTS', `refund query of an unknown refund: ${r.status} (signed, verified)`);

    const paid = await control('POST', `/__emulator/wechat/pay/${tradeNo}`, {});
    check(paid.status === 200, `emulator pays the trade (${paid.status})`);
    const note = await notify.waitFor((s) => s.accepted && s.resource.out_trade_no === tradeNo && s.envelope.event_type === 'TRANSACTION.SUCCESS');
    check(note.resource.trade_state === 'SUCCESS' && note.resource.amount.total === 100, 'TRANSACTION.SUCCESS notification verified and decrypted');
    r = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid }, out_trade_no: tradeNo });
    check(r.data.trade_state === 'SUCCESS', 'query: SUCCESS');

    r = await strict.v3.refund.domestic.refunds.post({
      out_trade_no: tradeNo, out_refund_no: `${tradeNo}R1`, amount: { refund: 100, total: 101, currency: 'CNY' },
    });
    check(r.status === 400 && r.data.code === 'INVALID_REQUEST', `refund with a wrong total: ${r.status} ${r.data.code} (signed, verified)`);
    r = await wxpay.v3.refund.domestic.refunds.post({
      out_trade_no: tradeNo, out_refund_no: `${tradeNo}R1`, notify_url: notify.url,
      amount: { refund: 40, total: 100, currency: 'CNY' },
    });
    check(r.status === 200 && ['PROCESSING', 'SUCCESS'].includes(r.data.status), `refund 40 fen: ${r.data.status}`);
    const refundNote = await notify.waitFor((s) => s.accepted && s.envelope.event_type === 'REFUND.SUCCESS' && s.resource.out_refund_no === `${tradeNo}R1`);
    check(refundNote.resource.refund_status === 'SUCCESS', 'REFUND.SUCCESS notification verified and decrypted');
    r = await wxpay.v3.refund.domestic.refunds._out_refund_no_.get({ out_refund_no: `${tradeNo}R1` });
    check(r.data.status === 'SUCCESS' && r.data.amount.refund === 40, 'refund query: SUCCESS 40');

    const closeNo = unique('NODEWXC');
    await wxpay.v3.pay.transactions.native.post({
      appid, mchid, description: 'close me', out_trade_no: closeNo, notify_url: notify.url,
      amount: { total: 1, currency: 'CNY' },
    });
    r = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.close.post({ mchid }, { out_trade_no: closeNo });
    check(r.status === 204, 'close: 204 (signed, verified)');
    r = await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid }, out_trade_no: closeNo });
    check(r.data.trade_state === 'CLOSED', 'query: CLOSED');

    // A spoiled answer signature is refused.
    await control('POST', '/__emulator/faults', { bad_signature_next: 1 });
    let refused = false;
    try {
      await wxpay.v3.pay.transactions.outTradeNo._out_trade_no_.get({ params: { mchid }, out_trade_no: closeNo });
    } catch (e) {
      refused = /SIGNATURE/.test(String(e.name) + String(e.message) + String(e.code));
    }
    await control('POST', '/__emulator/faults', {});
    check(refused, 'the SDK refuses an answer whose signature does not verify');
  } finally {
    notify.close();
  }
  done(`wechatpay-axios-plugin (npm, ${mode})`);
}

main().catch((e) => {
  console.error(e && e.response ? { status: e.response.status, data: e.response.data, message: e.message } : e);
  process.exit(1);
});
