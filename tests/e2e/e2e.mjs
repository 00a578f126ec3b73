// Browser end-to-end tests of the fenpay web app: the real server, the real emulator,
// the real WASM SPA in the system Chromium (no browser download: playwright-core only).
//
//   FENPAY_URL            the app under test (required), e.g. http://127.0.0.1:8080
//   FENPAY_EMULATOR_URL   its provider emulator (required), e.g. http://127.0.0.1:8090
//   FENPAY_SHORT_QR_URL   a second instance started with QR_CODE_EXPIRE_MINUTES=1 (the
//                         expired-QR test is skipped without it)
//   E2E_ONLY              run only the tests whose name matches this regular expression
//   E2E_SERIAL=1          do not overlap the slow expired-QR test with the others
//
// `run.sh` starts the servers and sets all of this. Output: one `ok N - name` or
// `not ok N - name` line per test, then `e2e: N passed, M failed`.

import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createRequire } from 'node:module';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';
import { chromium } from 'playwright-core';

const require = createRequire(import.meta.url);
const jsQR = require('jsqr');

const HERE = dirname(fileURLToPath(import.meta.url));
const SHOTS = join(HERE, 'screenshots');
const BASE = trimSlash(process.env.FENPAY_URL);
const EMU = trimSlash(process.env.FENPAY_EMULATOR_URL);
const SHORT = trimSlash(process.env.FENPAY_SHORT_QR_URL);
const ONLY = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;
const SERIAL = process.env.E2E_SERIAL === '1';

const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 390, height: 844 };
const PASSWORD = 'correct-horse-battery';
const STEP_TIMEOUT = 20_000;
const PAY_TIMEOUT = 30_000;

const CHROMIUM_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync',
];

function trimSlash(url) {
  return url ? url.replace(/\/+$/, '') : url;
}

// ---------------------------------------------------------------------------------------
// A tiny runner.

const tests = [];

/** Registers a test; `timeout` bounds it as a whole, `background` lets it overlap others. */
function test(name, fn, { timeout = 120_000, background = false, skip = null } = {}) {
  tests.push({ name, fn, timeout, background, skip });
}

class Failure extends Error {}

function assert(cond, message) {
  if (!cond) throw new Failure(message);
}

function assertEq(actual, expected, what) {
  if (actual !== expected) {
    throw new Failure(`${what}: expected ${JSON.stringify(expected)}, got ${JSON.stringify(actual)}`);
  }
}

/** Polls `probe` until it returns a truthy value (returned) or `timeout` ms pass. */
async function eventually(probe, { timeout = STEP_TIMEOUT, every = 200, message = 'condition' } = {}) {
  const deadline = Date.now() + timeout;
  let last;
  for (;;) {
    try {
      const value = await probe();
      if (value) return value;
      last = value;
    } catch (err) {
      last = err;
    }
    if (Date.now() > deadline) {
      const why = last instanceof Error ? last.message : JSON.stringify(last);
      throw new Failure(`timed out after ${timeout} ms waiting for ${message} (last: ${why})`);
    }
    await sleep(every);
  }
}

/** Waits until the element's trimmed text equals `expected`. */
async function expectText(locator, expected, { timeout = STEP_TIMEOUT, what } = {}) {
  let seen;
  await eventually(
    async () => {
      seen = (await locator.first().textContent({ timeout: 1_000 }))?.trim();
      return seen === expected;
    },
    { timeout, message: `${what ?? locator} to read ${JSON.stringify(expected)} (saw ${JSON.stringify(seen)})` },
  );
}

function sleep(ms) {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

/**
 * What a test gets: pages in fresh contexts (one per call), all torn down afterwards.
 * Every context refuses requests to any origin but the servers under test (the app must
 * work offline) and records uncaught page errors (a WASM panic surfaces as one).
 */
class Harness {
  constructor(browser, name) {
    this.browser = browser;
    this.name = name;
    this.contexts = [];
    this.pages = [];
    this.pageErrors = [];
    this.external = [];
    this.console = [];
  }

  async page(base, { viewport = DESKTOP, phone = false, alsoAllow = [] } = {}) {
    const allowed = new Set([base, ...alsoAllow].map((u) => new URL(u).origin));
    const ctx = await this.browser.newContext({
      baseURL: base,
      viewport,
      deviceScaleFactor: 1,
      isMobile: phone,
      hasTouch: phone,
      locale: 'zh-CN',
      timezoneId: 'Asia/Shanghai',
    });
    this.contexts.push(ctx);
    await ctx.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (allowed.has(url.origin)) return route.continue();
      this.external.push(url.href);
      return route.abort('blockedbyclient');
    });
    const page = await ctx.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on('pageerror', (err) => this.pageErrors.push(err.message));
    page.on('console', (msg) => this.console.push(`[${msg.type()}] ${msg.text()}`));
    this.pages.push(page);
    return page;
  }

  /** Checks that hold for every test. */
  verify() {
    assert(this.pageErrors.length === 0, `uncaught page errors: ${this.pageErrors.join(' | ')}`);
    assert(this.external.length === 0, `requests left the machine: ${this.external.join(', ')}`);
  }

  async close() {
    await Promise.allSettled(this.contexts.map((c) => c.close()));
  }
}

async function runOne(browser, t, index) {
  if (t.skip) return { index, name: t.name, skipped: t.skip };
  const started = Date.now();
  const h = new Harness(browser, t.name);
  let timer;
  try {
    await Promise.race([
      t.fn(h),
      new Promise((_, reject) => {
        timer = setTimeout(() => reject(new Failure(`test timed out after ${t.timeout} ms`)), t.timeout);
      }),
    ]);
    h.verify();
    return { index, name: t.name, ms: Date.now() - started };
  } catch (err) {
    const shot = join(SHOTS, `failure-${index}.png`);
    const last = h.pages.at(-1);
    if (last && !last.isClosed()) {
      await last.screenshot({ path: shot, fullPage: true, timeout: 5_000 }).catch(() => {});
    }
    return { index, name: t.name, ms: Date.now() - started, err, console: h.console.slice(-15), shot };
  } finally {
    clearTimeout(timer);
    await h.close();
  }
}

function report(r) {
  if (r.skipped) {
    console.log(`ok ${r.index} - ${r.name} # SKIP ${r.skipped}`);
  } else if (!r.err) {
    console.log(`ok ${r.index} - ${r.name} (${(r.ms / 1000).toFixed(1)} s)`);
  } else {
    console.log(`not ok ${r.index} - ${r.name} (${(r.ms / 1000).toFixed(1)} s)`);
    const text = r.err instanceof Failure ? r.err.message : r.err?.stack ?? String(r.err);
    for (const line of text.split('\n')) console.log(`  # ${line}`);
    if (r.console.length) {
      console.log('  # browser console (last lines):');
      for (const line of r.console) console.log(`  #   ${line.slice(0, 300)}`);
    }
    console.log(`  # screenshot: ${r.shot}`);
  }
}

async function main() {
  if (!BASE || !EMU) {
    console.error('e2e: FENPAY_URL and FENPAY_EMULATOR_URL must be set (tests/e2e/run.sh sets them)');
    process.exit(2);
  }
  mkdirSync(SHOTS, { recursive: true });
  for (const old of readdirSync(SHOTS).filter((f) => f.startsWith('failure-'))) {
    rmSync(join(SHOTS, old), { force: true });
  }
  const selected = tests
    .map((t, i) => ({ t, index: i + 1 }))
    .filter(({ t }) => !ONLY || ONLY.test(t.name));
  console.log(`1..${selected.length}`);
  const started = Date.now();
  const browser = await chromium.launch({ executablePath: '/usr/bin/chromium', args: CHROMIUM_ARGS });
  const results = [];
  try {
    // The slow test mostly sleeps while a QR code runs out: let it run beside the rest.
    const background = selected
      .filter(({ t }) => t.background && !SERIAL)
      .map(({ t, index }) => runOne(browser, t, index).then((r) => (report(r), results.push(r))));
    for (const { t, index } of selected) {
      if (t.background && !SERIAL) continue;
      const r = await runOne(browser, t, index);
      report(r);
      results.push(r);
    }
    await Promise.all(background);
  } finally {
    await browser.close();
  }
  const passed = results.filter((r) => !r.err && !r.skipped).length;
  const failed = results.filter((r) => r.err).length;
  const skipped = results.filter((r) => r.skipped).length;
  console.log(`# total ${((Date.now() - started) / 1000).toFixed(1)} s`);
  console.log(`e2e: ${passed} passed, ${failed} failed${skipped ? `, ${skipped} skipped` : ''}`);
  process.exit(failed > 0 || passed === 0 ? 1 : 0);
}

// ---------------------------------------------------------------------------------------
// Talking to the server and the emulator directly, to check what the UI claims.

async function api(base, token, method, path, body) {
  const headers = { accept: 'application/json' };
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers['content-type'] = 'application/json';
  const resp = await fetch(`${base}/api/v1${path}`, {
    method,
    headers,
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let json = null;
  try {
    json = text ? JSON.parse(text) : null;
  } catch {
    /* not JSON */
  }
  return { status: resp.status, json, text };
}

async function orderStatus(base, token, orderNo) {
  const r = await api(base, token, 'GET', `/payment/order-status?order_no=${encodeURIComponent(orderNo)}`);
  assertEq(r.status, 200, `GET order-status ${orderNo} status (${r.text})`);
  return r.json;
}

async function me(base, token) {
  const r = await api(base, token, 'GET', '/auth/me');
  assertEq(r.status, 200, `GET /auth/me status (${r.text})`);
  return r.json;
}

async function emulatorTrade(method, orderNo, emu = EMU) {
  const resp = await fetch(`${emu}/__emulator/${method}/trades/${encodeURIComponent(orderNo)}`);
  assertEq(resp.status, 200, `emulator ${method} trade ${orderNo} lookup status`);
  return resp.json();
}

/** The provider-side state of a trade, whatever the provider calls it. */
async function tradeState(method, orderNo, emu) {
  const trade = await emulatorTrade(method, orderNo, emu);
  return method === 'wechat' ? trade.trade_state : trade.status;
}

async function storedToken(page) {
  return page.evaluate(() => localStorage.getItem('fenpay.token'));
}

// ---------------------------------------------------------------------------------------
// Driving the SPA.

let userSeq = 0;
function newUser(tag) {
  const id = `${Date.now().toString(36)}${(userSeq++).toString(36)}${Math.random().toString(36).slice(2, 6)}`;
  const username = `e2e_${tag}_${id}`.slice(0, 32);
  return { username, password: PASSWORD, email: `${username}@example.com` };
}

/** Loads the SPA and waits for it to mount (never for the load event). */
async function openApp(page, path = '/') {
  await page.goto(path, { waitUntil: 'commit' });
  await page.locator('#app-root').waitFor();
}

async function register(page, user) {
  await page.locator('[data-testid=tab-register]').click();
  const form = page.locator('[data-testid=register-form]');
  await form.waitFor();
  await form.locator('#username').fill(user.username);
  await form.locator('#password').fill(user.password);
  await form.locator('#email').fill(user.email);
  await form.locator('button[type=submit]').click();
  // Sign-up signs in straight away and lands on the catalog.
  await page.locator('[data-testid=product-card]').first().waitFor();
}

async function signIn(page, user) {
  const form = page.locator('[data-testid=login-form]');
  await form.waitFor();
  await form.locator('#username').fill(user.username);
  await form.locator('#password').fill(user.password);
  await form.locator('button[type=submit]').click();
  await page.locator('[data-testid=product-card]').first().waitFor();
}

/** Picks a product on the catalog and starts paying; returns the order shown. */
async function startCheckout(page, { productId = 1, method = 'wechat' } = {}) {
  await page.locator('[data-testid=nav-products]').click();
  const card = page.locator(`[data-testid=product-card][data-product-id="${productId}"]`);
  await card.click();
  await eventually(async () => /\bselected\b/.test((await card.getAttribute('class')) ?? ''), {
    message: `product card ${productId} to be selected`,
  });
  const button = page.locator(`[data-testid=pay-${method}]`);
  assert(await button.isEnabled(), `pay-${method} should be enabled once a product is selected`);
  await button.click();
  const qr = page.locator('[data-testid=qr-code]');
  await qr.waitFor();
  const orderNo = await qr.getAttribute('data-order-no');
  assert(/^FP\d{10,}$/.test(orderNo ?? ''), `qr-code carries an order number, got ${orderNo}`);
  await expectText(page.locator('[data-testid=order-no]'), orderNo, { what: 'order number on the page' });
  await expectText(page.locator('[data-testid=order-status]'), 'pending', { what: 'order-status' });
  return orderNo;
}

/**
 * Checks that the QR code on the page is a real, visible, decodable code for the order's
 * provider URL: the inline SVG is rasterised in a scratch page and decoded with jsQR.
 */
async function checkQr(page, base, orderNo, method) {
  const qr = page.locator(`[data-testid=qr-code][data-order-no="${orderNo}"]`);
  const svg = qr.locator('svg');
  await svg.waitFor();
  const box = await svg.boundingBox();
  assert(box && box.width >= 150 && box.height >= 150, `QR SVG is drawn at a scannable size: ${JSON.stringify(box)}`);
  const markup = await svg.evaluate((el) => el.outerHTML);
  const decoded = await decodeSvgQr(page.context().browser(), markup);
  const token = await storedToken(page);
  const order = await orderStatus(base, token, orderNo);
  assertEq(decoded, order.qr_code_url, 'decoded QR content vs the order\'s qr_code_url');
  const scheme = method === 'wechat' ? /^weixin:\/\/wxpay\/bizpayurl\?pr=/ : /^https:\/\/qr\.alipay\.com\//;
  assert(scheme.test(decoded), `QR content ${decoded} looks like a ${method} code URL`);
  return decoded;
}

async function decodeSvgQr(browser, markup) {
  const svg = markup.includes('xmlns=') ? markup : markup.replace('<svg', '<svg xmlns="http://www.w3.org/2000/svg"');
  const scratch = await browser.newPage();
  try {
    const { width, height, pixels } = await scratch.evaluate(async (src) => {
      const img = new Image();
      img.src = `data:image/svg+xml;charset=utf-8,${encodeURIComponent(src)}`;
      await img.decode();
      const scale = 2;
      const canvas = document.createElement('canvas');
      canvas.width = Math.max(1, Math.round((img.naturalWidth || 300) * scale));
      canvas.height = Math.max(1, Math.round((img.naturalHeight || 300) * scale));
      const g = canvas.getContext('2d');
      g.fillStyle = '#fff';
      g.fillRect(0, 0, canvas.width, canvas.height);
      g.drawImage(img, 0, 0, canvas.width, canvas.height);
      const data = g.getImageData(0, 0, canvas.width, canvas.height).data;
      return { width: canvas.width, height: canvas.height, pixels: Array.from(data) };
    }, svg);
    const code = jsQR(Uint8ClampedArray.from(pixels), width, height);
    assert(code, 'the QR SVG decodes as a QR code');
    return code.data;
  } finally {
    await scratch.context().close();
  }
}

/** Presses "simulate scan & pay" and waits for the page to show the payment. */
async function simulatePay(page) {
  const button = page.locator('[data-testid=simulate-pay]');
  await button.waitFor();
  await button.click();
  await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
  await page.locator('[data-testid=payment-success]').waitFor();
}

/** Register, sign out, sign in, pay for 100 points with `method`, check every layer. */
async function buyPointsFlow(h, method) {
  const page = await h.page(BASE);
  const user = newUser(method.slice(0, 2));
  await openApp(page);
  await page.locator('[data-testid=login-form]').waitFor();
  await register(page, user);
  await expectText(page.locator('[data-testid=username]'), user.username, { what: 'header username' });
  await expectText(page.locator('[data-testid=points-balance]'), '0', { what: 'points-balance before' });

  // Sign out, then sign in through the form.
  await page.locator('[data-testid=logout]').click();
  await page.locator('[data-testid=login-form]').waitFor();
  assertEq(await storedToken(page), null, 'token in localStorage after sign-out');
  await page.locator('[data-testid=notice]').waitFor();
  await signIn(page, user);
  await expectText(page.locator('[data-testid=points-balance]'), '0', { what: 'points-balance after sign-in' });

  const orderNo = await startCheckout(page, { productId: 1, method });
  await page.locator('[data-testid=countdown]').waitFor();
  const countdown = (await page.locator('[data-testid=countdown] strong').textContent()).trim();
  assert(/^1[45]:[0-5]\d$/.test(countdown), `a fresh code is valid ~15 minutes, countdown shows ${countdown}`);
  await expectText(page.locator('[data-testid=order-amount]'), '¥10.00', { what: 'order amount' });
  await checkQr(page, BASE, orderNo, method);
  const waiting = method === 'wechat' ? 'NOTPAY' : 'WAIT_BUYER_PAY';
  assertEq(await tradeState(method, orderNo), waiting, 'provider trade state before paying');

  await simulatePay(page);
  await expectText(page.locator('[data-testid=points-balance]'), '100', { what: 'points-balance after paying' });
  const success = (await page.locator('[data-testid=payment-success]').textContent()) ?? '';
  assert(success.includes('100'), `the success box shows the new balance: ${success}`);
  assertEq(await page.locator('[data-testid=qr-code]').count(), 0, 'QR codes left after payment');

  const token = await storedToken(page);
  const order = await orderStatus(BASE, token, orderNo);
  assertEq(order.status, 'paid', 'server order status');
  assert(order.payment_time, 'server recorded a payment time');
  assertEq(order.payment_method, method, 'server payment method');
  assertEq((await me(BASE, token)).points_balance, 100, 'server points balance');
  assertEq(await tradeState(method, orderNo), method === 'wechat' ? 'SUCCESS' : 'TRADE_SUCCESS', 'provider trade state after paying');
}

// ---------------------------------------------------------------------------------------
// The tests.

test('WeChat Pay: register, sign in, pay by QR, balance credited', (h) => buyPointsFlow(h, 'wechat'));

test('Alipay: register, sign in, pay by QR, balance credited', (h) => buyPointsFlow(h, 'alipay'));

test('Alipay page pay: cashier in the browser, signed return, order paid', async (h) => {
  // The browser leaves the app for the (emulated) Alipay cashier and comes back.
  const page = await h.page(BASE, { alsoAllow: [EMU] });
  const user = newUser('page');
  await openApp(page);
  await register(page, user);
  const card = page.locator('[data-testid=product-card][data-product-id="4"]');
  await card.click();
  await page.locator('[data-testid=pay-alipay-page]').click();
  await page.waitForURL((url) => url.origin === new URL(EMU).origin, { timeout: STEP_TIMEOUT });
  await page.locator('#emulator-pay').click();
  // Back at the app: the order list, with the order paid (by the notification or the
  // status query the return triggers, never by the return itself).
  await page.waitForURL((url) => url.origin === new URL(BASE).origin, { timeout: STEP_TIMEOUT });
  await page.locator('#app-root').waitFor();
  const row = page.locator('[data-testid=order-row]').first();
  await row.waitFor();
  const orderNo = await row.getAttribute('data-order-no');
  const token = await storedToken(page);
  await eventually(async () => (await orderStatus(BASE, token, orderNo)).status === 'paid', {
    message: 'page-pay order to be paid',
  });
  const account = await me(BASE, token);
  assertEq(account.membership_tier, 'basic', 'membership tier after paying');
  assertEq(await tradeState('alipay', orderNo), 'TRADE_SUCCESS', 'Alipay trade state');
});

test('cancel a pending order', async (h) => {
  const page = await h.page(BASE);
  const user = newUser('cancel');
  await openApp(page);
  await register(page, user);
  const orderNo = await startCheckout(page, { productId: 2, method: 'wechat' });
  await page.locator('[data-testid=cancel-order]').click();
  await expectText(page.locator('[data-testid=order-status]'), 'cancelled', { what: 'order-status' });
  await page.locator('[data-testid=order-closed]').waitFor();
  assertEq(await page.locator('[data-testid=qr-code]').count(), 0, 'QR codes left after cancelling');
  assertEq(await page.locator('[data-testid=simulate-pay]').count(), 0, 'simulate button after cancelling');

  const token = await storedToken(page);
  const order = await orderStatus(BASE, token, orderNo);
  assertEq(order.status, 'cancelled', 'server order status');
  assertEq(await tradeState('wechat', orderNo), 'CLOSED', 'the trade is closed at the provider');
  assertEq((await me(BASE, token)).points_balance, 0, 'points after cancelling');
  await expectText(page.locator('[data-testid=points-balance]'), '0', { what: 'points-balance' });
});

test(
  'expired QR code: shown as expired, renewing gives a new order and QR',
  async (h) => {
    const page = await h.page(SHORT);
    const user = newUser('exp');
    await openApp(page);
    await register(page, user);
    const first = await startCheckout(page, { productId: 1, method: 'wechat' });
    await checkQr(page, SHORT, first, 'wechat');
    const token = await storedToken(page);
    const order = await orderStatus(SHORT, token, first);
    const lifetime = Date.parse(order.qr_code_expire_at) - Date.parse(order.created_at);
    assert(Math.abs(lifetime - 60_000) < 2_000, `this server issues 1-minute QR codes, got ${lifetime} ms`);
    const countdown = (await page.locator('[data-testid=countdown] strong').textContent()).trim();
    assert(/^0[01]:[0-5]\d$/.test(countdown), `countdown starts at about one minute: ${countdown}`);

    // Real time, no clock tricks: the server's QR lifetime really runs out.
    const wait = Math.max(0, Date.parse(order.qr_code_expire_at) - Date.now()) + 15_000;
    await page.locator('[data-testid=qr-expired]').waitFor({ timeout: wait });
    assert(Date.now() >= Date.parse(order.qr_code_expire_at) - 1_000, 'expired is not shown before the code runs out');
    assertEq(await page.locator('[data-testid=qr-code]').count(), 0, 'QR codes shown once expired');
    await expectText(page.locator('[data-testid=order-status]'), 'pending', { what: 'order-status once expired' });
    assertEq((await orderStatus(SHORT, token, first)).status, 'pending', 'the order outlives its QR code on the server');

    await page.locator('[data-testid=renew-qr]').click();
    const renewed = page.locator('[data-testid=qr-code]');
    await renewed.waitFor();
    const second = await renewed.getAttribute('data-order-no');
    assert(second && second !== first, `renewing gives a new order number (${first} -> ${second})`);
    await expectText(page.locator('[data-testid=order-no]'), second, { what: 'order number after renewing' });
    await expectText(page.locator('[data-testid=order-status]'), 'pending', { what: 'order-status after renewing' });
    await page.locator('[data-testid=countdown]').waitFor();
    assertEq(await page.locator('[data-testid=qr-expired]').count(), 0, 'expired box after renewing');
    await checkQr(page, SHORT, second, 'wechat');
  },
  {
    timeout: 180_000,
    background: true,
    skip: SHORT ? null : 'FENPAY_SHORT_QR_URL is not set',
  },
);

test('my orders: lists orders with statuses, reopening a pending one shows its QR', async (h) => {
  const page = await h.page(BASE);
  const user = newUser('orders');
  await openApp(page);
  await register(page, user);

  const paid = await startCheckout(page, { productId: 1, method: 'wechat' });
  await simulatePay(page);
  const cancelled = await startCheckout(page, { productId: 2, method: 'alipay' });
  await page.locator('[data-testid=cancel-order]').click();
  await expectText(page.locator('[data-testid=order-status]'), 'cancelled', { what: 'order-status' });
  const pending = await startCheckout(page, { productId: 3, method: 'wechat' });

  await page.locator('[data-testid=nav-orders]').click();
  const list = page.locator('[data-testid=orders-list]');
  await list.waitFor();
  const rows = list.locator('[data-testid=order-row]');
  await eventually(async () => (await rows.count()) === 3, { message: 'three order rows' });
  assertEq(await list.getAttribute('data-total'), '3', 'orders-list data-total');
  const seen = await rows.evaluateAll((els) =>
    els.map((el) => ({
      no: el.getAttribute('data-order-no'),
      status: el.getAttribute('data-status'),
      badge: el.querySelector('.badge')?.textContent.trim(),
      reopen: !!el.querySelector('[data-testid=reopen-order]'),
      text: el.textContent,
    })),
  );
  const expected = [
    { no: pending, status: 'pending', badge: '待支付', reopen: true, amount: '¥100.00' },
    { no: cancelled, status: 'cancelled', badge: '已取消', reopen: false, amount: '¥50.00' },
    { no: paid, status: 'paid', badge: '已支付', reopen: false, amount: '¥10.00' },
  ];
  expected.forEach((want, i) => {
    const got = seen[i];
    assertEq(got.no, want.no, `row ${i + 1} order number (newest first)`);
    assertEq(got.status, want.status, `row ${i + 1} status`);
    assertEq(got.badge, want.badge, `row ${i + 1} status label`);
    assertEq(got.reopen, want.reopen, `row ${i + 1} has a "pay now" button`);
    assert(got.text.includes(want.amount), `row ${i + 1} shows ${want.amount}: ${got.text}`);
  });

  // The English labels follow the language switch.
  await page.locator('[data-testid=lang-toggle]').click();
  await expectText(rows.nth(0).locator('.badge'), 'Awaiting payment', { what: 'pending label in English' });
  await expectText(rows.nth(2).locator('.badge'), 'Paid', { what: 'paid label in English' });

  await rows.nth(0).locator('[data-testid=reopen-order]').click();
  const qr = page.locator('[data-testid=qr-code]');
  await qr.waitFor();
  assertEq(await qr.getAttribute('data-order-no'), pending, 'the reopened QR belongs to the pending order');
  await expectText(page.locator('[data-testid=order-no]'), pending, { what: 'order number after reopening' });
  await expectText(page.locator('[data-testid=order-status]'), 'pending', { what: 'order-status after reopening' });
  await checkQr(page, BASE, pending, 'wechat');
});

test('session: a reload keeps it, a tampered token returns to sign-in with an error', async (h) => {
  const page = await h.page(BASE);
  const user = newUser('sess');
  await openApp(page);
  await register(page, user);
  const token = await storedToken(page);
  assert(token && token.split('.').length === 3, 'a JWT is kept in localStorage');

  await page.reload({ waitUntil: 'commit' });
  await page.locator('#app-root').waitFor();
  await page.locator('[data-testid=product-card]').first().waitFor();
  await expectText(page.locator('[data-testid=username]'), user.username, { what: 'username after reload' });
  assertEq(await page.locator('[data-testid=login-form]').count(), 0, 'sign-in forms after reload');
  assertEq(await storedToken(page), token, 'token after reload');

  // Forge the claims (say, to pass for someone else) but keep the old signature.
  await page.evaluate(() => {
    const [head, payload, sig] = localStorage.getItem('fenpay.token').split('.');
    const b64 = payload.replace(/-/g, '+').replace(/_/g, '/');
    const claims = JSON.parse(atob(b64 + '='.repeat((4 - (b64.length % 4)) % 4)));
    claims.sub = '00000000-0000-0000-0000-000000000000';
    claims.exp = (claims.exp ?? Math.floor(Date.now() / 1000)) + 86_400;
    const forged = btoa(JSON.stringify(claims)).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
    localStorage.setItem('fenpay.token', `${head}.${forged}.${sig}`);
  });
  const forged = await storedToken(page);
  assert(forged !== token, 'the token was changed');
  assertEq((await api(BASE, forged, 'GET', '/auth/me')).status, 401, 'the server rejects the forged token');

  await page.reload({ waitUntil: 'commit' });
  await page.locator('#app-root').waitFor();
  await page.locator('[data-testid=login-form]').waitFor();
  const error = page.locator('[data-testid=error]');
  await expectText(error, '登录已过期，请重新登录。', { what: 'session error' });
  assertEq(await storedToken(page), null, 'the rejected token is dropped from localStorage');
  await page.locator('[data-testid=lang-toggle]').click();
  await expectText(error, 'Your session expired. Please sign in again.', { what: 'session error in English' });

  await signIn(page, user);
  await expectText(page.locator('[data-testid=username]'), user.username, { what: 'username after signing in again' });
  const fresh = await storedToken(page);
  assert(fresh && fresh !== forged, 'a new token is stored');
});

test('Swagger UI at /docs/ renders offline', async (h) => {
  const page = await h.page(BASE);
  await page.goto('/docs/', { waitUntil: 'commit' });
  await page.locator('.swagger-ui').first().waitFor();
  const op = page.locator('.opblock-summary-path[data-path="/api/v1/payment/create-order"]');
  await op.first().waitFor({ state: 'visible' });
  await page.locator('.opblock-summary-path[data-path="/api/v1/payment/order-status"]').first().waitFor();
  // Opening an operation shows its parameters and responses.
  await op.first().click();
  await page.locator('.opblock.is-open .opblock-body').first().waitFor();
  await page.locator('.opblock.is-open .responses-wrapper').first().waitFor();
  const title = (await page.locator('.info .title').first().textContent()) ?? '';
  assert(/fenpay/i.test(title), `the API title is shown: ${title}`);
  // h.verify() then fails the test if Swagger UI tried to load anything from elsewhere.
});

test('screenshots of every page at desktop and phone sizes', async (h) => {
  for (const [size, viewport] of [
    ['desktop', DESKTOP],
    ['phone', PHONE],
  ]) {
    const phone = size === 'phone';
    const page = await h.page(BASE, { viewport, phone });
    // What a visitor sees at this size (a full-page capture would paint the sticky
    // checkout bar in the middle of the catalog).
    const shot = async (name, { app = true } = {}) => {
      await page.evaluate(() => document.fonts.ready);
      if (phone && app) {
        const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
        assert(overflow <= 0, `${name} on a phone scrolls sideways by ${overflow} px`);
      }
      await page.screenshot({ path: join(SHOTS, `${name}-${size}.png`) });
    };
    const user = newUser(`shot${size[0]}`);
    await openApp(page);
    await page.locator('[data-testid=login-form]').waitFor();
    await shot('signin');
    await page.locator('[data-testid=tab-register]').click();
    await page.locator('[data-testid=register-form]').waitFor();
    await shot('register');
    await register(page, user);
    await page.locator('[data-testid=product-card][data-product-id="1"]').click();
    await expectText(page.locator('[data-testid=points-balance]'), '0', { what: 'points-balance' });
    await shot('products');
    const orderNo = await startCheckout(page, { productId: 1, method: 'wechat' });
    await checkQr(page, BASE, orderNo, 'wechat');
    await shot('checkout');
    await simulatePay(page);
    await expectText(page.locator('[data-testid=points-balance]'), '100', { what: 'points-balance' });
    await shot('paid');
    await page.locator('[data-testid=nav-orders]').click();
    await page.locator('[data-testid=order-row]').first().waitFor();
    await shot('orders');
    await page.goto('/docs/', { waitUntil: 'commit' });
    await page.locator('.opblock-summary-path[data-path="/api/v1/payment/create-order"]').first().waitFor();
    await shot('docs', { app: false });
  }
});

await main();
