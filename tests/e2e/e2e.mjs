// Browser end-to-end tests of the fenpay web app: the real server, the real emulator,
// the real WASM SPA in the system Chromium (no browser download: playwright-core only).
//
//   FENPAY_URL            the app under test (required), e.g. http://127.0.0.1:8080
//   FENPAY_EMULATOR_URL   its provider emulator (required), e.g. http://127.0.0.1:8090
//   FENPAY_SHORT_QR_URL   a second instance started with QR_CODE_EXPIRE_MINUTES=1 and
//                         ORDER_EXPIRE_MINUTES=2 (the expired-QR tests are skipped without
//                         it), FENPAY_SHORT_EMULATOR_URL its emulator
//   FENPAY_BIN            the fenpay binary, FENPAY_MAIN_DATA_DIR the FENPAY_URL instance's
//                         DATA_DIR (and FENPAY_DEV_KEYS_DIR its DEV_KEYS_DIR): the admin
//                         tests promote a user with `fenpay create-admin` (skipped without)
//   E2E_ONLY              run only the tests whose name matches this regular expression
//   E2E_SERIAL=1          do not overlap the slow expired-QR test with the others
//
// `run.sh` starts the servers and sets all of this. Output: one `ok N - name` or
// `not ok N - name` line per test, then `e2e: N passed, M failed`.

import { execFile } from 'node:child_process';
import { createHmac } from 'node:crypto';
import { mkdirSync, readdirSync, rmSync } from 'node:fs';
import { createServer } from 'node:http';
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
const SHORT_EMU = trimSlash(process.env.FENPAY_SHORT_EMULATOR_URL);
const ONLY = process.env.E2E_ONLY ? new RegExp(process.env.E2E_ONLY) : null;
const SERIAL = process.env.E2E_SERIAL === '1';
const FENPAY_BIN = process.env.FENPAY_BIN;
const MAIN_DATA_DIR = process.env.FENPAY_MAIN_DATA_DIR;
const DEV_KEYS_DIR = process.env.FENPAY_DEV_KEYS_DIR;
const NO_ADMIN = FENPAY_BIN && MAIN_DATA_DIR ? null : 'FENPAY_BIN and FENPAY_MAIN_DATA_DIR are not set';

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
 * work offline) and records uncaught page errors (a WASM panic surfaces as one) and
 * Content-Security-Policy violations (every page runs under the server's policy).
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
    this.csp = [];
    this.cleanups = [];
  }

  async page(base, { viewport = DESKTOP, phone = false, alsoAllow = [], userAgent } = {}) {
    const allowed = new Set([base, ...alsoAllow].map((u) => new URL(u).origin));
    const ctx = await this.browser.newContext({
      baseURL: base,
      viewport,
      deviceScaleFactor: 1,
      isMobile: phone,
      hasTouch: phone,
      locale: 'zh-CN',
      timezoneId: 'Asia/Shanghai',
      ...(userAgent ? { userAgent } : {}),
    });
    this.contexts.push(ctx);
    await ctx.route('**/*', (route) => {
      const url = new URL(route.request().url());
      if (allowed.has(url.origin)) return route.continue();
      this.external.push(url.href);
      return route.abort('blockedbyclient');
    });
    // CSP violations, as the page sees them (the init script and the binding run outside
    // the page's policy) and as Chromium logs them.
    await ctx.exposeBinding('__fenpayCspViolation', (_source, what) => this.csp.push(what));
    await ctx.addInitScript(() => {
      addEventListener(
        'securitypolicyviolation',
        (e) =>
          window.__fenpayCspViolation?.(
            `${e.effectiveDirective} refused ${e.blockedURI || 'inline'} (${e.sourceFile || document.URL}:${e.lineNumber})`,
          ),
        true,
      );
    });
    const page = await ctx.newPage();
    page.setDefaultTimeout(STEP_TIMEOUT);
    page.on('pageerror', (err) => this.pageErrors.push(err.message));
    page.on('console', (msg) => {
      this.console.push(`[${msg.type()}] ${msg.text()}`);
      if (/Content Security Policy/i.test(msg.text())) this.csp.push(msg.text());
    });
    this.pages.push(page);
    return page;
  }

  /** Checks that hold for every test. */
  verify() {
    assert(this.pageErrors.length === 0, `uncaught page errors: ${this.pageErrors.join(' | ')}`);
    assert(this.external.length === 0, `requests left the machine: ${this.external.join(', ')}`);
    assert(this.csp.length === 0, `Content-Security-Policy violations: ${this.csp.join(' | ')}`);
  }

  async close() {
    await Promise.allSettled(this.contexts.map((c) => c.close()));
    await Promise.allSettled(this.cleanups.map((f) => f()));
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

/** Registers an account through the API and signs it in; returns `{ ...user, token }`. */
async function apiUser(base, tag) {
  const user = newUser(tag);
  const reg = await api(base, null, 'POST', '/auth/register', user);
  assertEq(reg.status, 201, `register ${user.username} (${reg.text})`);
  return { ...user, token: await apiLogin(base, user) };
}

async function apiLogin(base, user) {
  const r = await api(base, null, 'POST', '/auth/login', { username: user.username, password: user.password });
  assertEq(r.status, 200, `login ${user.username} (${r.text})`);
  return r.json.access_token;
}

/** Runs `fenpay ARGS...` against the main instance's database; resolves to its stdout. */
function fenpayCli(args, extraEnv = {}) {
  const env = { ...process.env, APP_ENV: 'development', DATA_DIR: MAIN_DATA_DIR, ...extraEnv };
  for (const name of ['DATABASE_URL', 'PUBLIC_BASE_URL', 'JWT_SECRET']) delete env[name];
  if (DEV_KEYS_DIR) env.DEV_KEYS_DIR = DEV_KEYS_DIR;
  return new Promise((resolve, reject) => {
    execFile(FENPAY_BIN, args, { cwd: MAIN_DATA_DIR, env, timeout: 60_000 }, (err, stdout, stderr) =>
      err ? reject(new Failure(`fenpay ${args[0]} failed: ${err.message}\n${stderr}`)) : resolve(stdout),
    );
  });
}

/**
 * An administrator of the main instance: registered through the API, promoted with
 * `fenpay create-admin` on the instance's own database, signed in again (the role is
 * in the token).
 */
async function adminUser(tag = 'adm') {
  const user = await apiUser(BASE, tag);
  await fenpayCli(['create-admin', '--username', user.username, '--email', user.email], { FENPAY_ADMIN_PASSWORD: user.password });
  const token = await apiLogin(BASE, user);
  const account = await me(BASE, token);
  assertEq(account.role, 'admin', 'role after create-admin');
  return { ...user, token };
}

/** A paid order of `user` bought through the API (create-order, then the emulator pays). */
async function apiPaidOrder(base, user, { productId = 1, method = 'wechat' } = {}) {
  const products = await api(base, user.token, 'GET', '/products');
  assertEq(products.status, 200, `GET /products (${products.text})`);
  const items = products.json.items ?? products.json.products ?? products.json;
  const product = items.find((p) => p.id === productId);
  assert(product, `product ${productId} exists`);
  const created = await api(base, user.token, 'POST', '/payment/create-order', {
    product_type: product.kind,
    product_id: productId,
    payment_method: method,
  });
  assertEq(created.status, 200, `create-order (${created.text})`);
  const orderNo = created.json.order_no;
  const paid = await api(base, user.token, 'POST', '/dev/simulate-pay', { order_no: orderNo });
  assert(paid.status >= 200 && paid.status < 300, `simulate-pay ${orderNo}: ${paid.status} ${paid.text}`);
  await eventually(async () => (await orderStatus(base, user.token, orderNo)).status === 'paid', {
    timeout: PAY_TIMEOUT,
    message: `order ${orderNo} to be paid`,
  });
  return orderNo;
}

/** Signs `user` in through the form and opens the admin order list. */
async function openAdmin(page, user) {
  await openApp(page);
  await signIn(page, user);
  const link = page.locator('[data-testid=nav-admin]');
  await link.waitFor();
  await link.click();
  await page.locator('[data-testid=admin-page]').waitFor();
  await page.locator('[data-testid=admin-filters]').waitFor();
}

/** Filters the admin list to one user's orders and opens `orderNo`. */
async function adminOpenOrder(page, username, orderNo) {
  await page.locator('#f-user').fill(username);
  await page.locator('[data-testid=admin-apply]').click();
  const row = page.locator(`[data-testid=admin-order-row][data-order-no="${orderNo}"]`);
  await row.waitFor();
  await row.locator('[data-testid=admin-open-order]').click();
  await page.locator(`[data-testid=admin-order-detail][data-order-no="${orderNo}"]`).waitFor();
  await page.locator('[data-testid=admin-order-status]').waitFor();
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

    // The order is still payable (a buyer who scanned in time may be paying): the page
    // says so and keeps watching it.
    await page.locator('[data-testid=pay-window]').waitFor();
    await page.locator('[data-testid=qr-expired] [data-testid=live-indicator]').waitFor();

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
    // The old code can no longer be paid: closed at the provider before the new one was made.
    assertEq((await orderStatus(SHORT, token, first)).status, 'cancelled', 'the replaced order');
    if (SHORT_EMU) {
      assertEq(await tradeState('wechat', first, SHORT_EMU), 'CLOSED', 'the replaced trade at the provider');
      const late = await fetch(`${SHORT_EMU}/__emulator/wechat/pay/${first}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert(late.status >= 400, `paying the replaced code is refused, got ${late.status}`);
    }
    await simulatePay(page);
    assertEq((await me(SHORT, token)).points_balance, 100, 'points after paying the new code (charged once)');
  },
  {
    timeout: 180_000,
    background: true,
    skip: SHORT ? null : 'FENPAY_SHORT_QR_URL is not set',
  },
);

/** Opens a checkout on the short-QR instance and waits (real time) until its QR code expired. */
async function checkoutUntilQrExpired(h, tag) {
  const page = await h.page(SHORT);
  const user = newUser(tag);
  await openApp(page);
  await register(page, user);
  const orderNo = await startCheckout(page, { productId: 1, method: 'wechat' });
  const token = await storedToken(page);
  const order = await orderStatus(SHORT, token, orderNo);
  const wait = Math.max(0, Date.parse(order.qr_code_expire_at) - Date.now()) + 15_000;
  await page.locator('[data-testid=qr-expired]').waitFor({ timeout: wait });
  assert(Date.now() < Date.parse(order.expire_at), 'the order itself has not expired yet');
  return { page, token, orderNo };
}

async function orderCount(base, token) {
  const r = await api(base, token, 'GET', '/payment/orders');
  assertEq(r.status, 200, `GET /payment/orders (${r.text})`);
  return r.json.total;
}

test(
  'QR expiry: scanned in time, paid after the code ran out, the page shows it paid',
  async (h) => {
    const { page, token, orderNo } = await checkoutUntilQrExpired(h, 'late');
    // The buyer who scanned before expiry pays now: the provider still takes it.
    const paid = await api(SHORT, token, 'POST', '/dev/simulate-pay', { order_no: orderNo });
    assert(paid.status >= 200 && paid.status < 300, `paying after the QR expired: ${paid.status} ${paid.text}`);
    await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
    await page.locator('[data-testid=payment-success]').waitFor();
    await expectText(page.locator('[data-testid=points-balance]'), '100', { what: 'points-balance' });
    assertEq(await orderCount(SHORT, token), 1, 'orders of the buyer');
  },
  { timeout: 180_000, background: true, skip: SHORT ? null : 'FENPAY_SHORT_QR_URL is not set' },
);

test(
  'QR expiry: paid just before asking for a new code shows the payment, never a second order',
  async (h) => {
    const { page, token, orderNo } = await checkoutUntilQrExpired(h, 'renewpaid');
    // The buyer pays the old code; its notification is late (the page cannot know yet).
    const setFaults = (f) =>
      fetch(`${SHORT_EMU}/__emulator/faults`, { method: 'POST', body: JSON.stringify(f), headers: { 'content-type': 'application/json' } });
    assertEq((await setFaults({ drop_notifications_next: 1000 })).status, 200, 'faults set');
    try {
      const pay = await fetch(`${SHORT_EMU}/__emulator/wechat/pay/${orderNo}`, { method: 'POST', body: '{}', headers: { 'content-type': 'application/json' } });
      assert(pay.status < 300, `the emulator takes the payment: ${pay.status}`);
      // ...and asks for a new code at once: the old order is closed first, found paid.
      await page.locator('[data-testid=renew-qr]').click();
      await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
      await page.locator('[data-testid=payment-success]').waitFor();
      await expectText(page.locator('[data-testid=order-no]'), orderNo, { what: 'the order shown' });
      assertEq(await page.locator('[data-testid=qr-code]').count(), 0, 'QR codes shown');
      assertEq(await orderCount(SHORT, token), 1, 'orders of the buyer (no second order)');
      assertEq((await me(SHORT, token)).points_balance, 100, 'points (credited once)');
    } finally {
      await setFaults({});
    }
  },
  {
    timeout: 180_000,
    background: true,
    skip: SHORT && SHORT_EMU ? null : 'FENPAY_SHORT_QR_URL / FENPAY_SHORT_EMULATOR_URL are not set',
  },
);

test('countdown: follows the server clock when the browser clock is wrong', async (h) => {
  for (const skewMin of [20, -7]) {
    const page = await h.page(BASE);
    // The browser's clock is off by `skewMin` minutes (time still flows).
    await page.clock.install({ time: Date.now() + skewMin * 60_000 });
    await openApp(page);
    await register(page, newUser(`skew${skewMin < 0 ? 'm' : 'p'}`));
    await startCheckout(page, { productId: 1, method: 'wechat' });
    const countdown = (await page.locator('[data-testid=countdown] strong').textContent()).trim();
    assert(/^1[45]:[0-5]\d$/.test(countdown), `browser ${skewMin} min off: the code shows ~15 minutes left, not ${countdown}`);
    assertEq(await page.locator('[data-testid=qr-expired]').count(), 0, `expired box with the browser ${skewMin} min off`);
  }
});

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

test('live status: checkout gets the payment over server-sent events, no polling', async (h) => {
  const page = await h.page(BASE);
  const requests = [];
  page.on('request', (req) => requests.push({ url: req.url(), type: req.resourceType(), at: Date.now() }));
  const user = newUser('sse');
  await openApp(page);
  await register(page, user);
  const orderNo = await startCheckout(page, { productId: 1, method: 'wechat' });
  const pay = page.locator('[data-testid=pay-page]');
  await eventually(async () => (await pay.getAttribute('data-feed')) === 'sse', { message: 'the live feed (data-feed=sse)' });
  await page.locator('[data-testid=live-indicator][data-mode=sse]').waitFor();
  const streams = requests.filter((r) => /\/payment\/orders\/[^/]+\/events\?token=/.test(r.url));
  assert(streams.length >= 1, `an EventSource request to /events was made: ${JSON.stringify(requests.map((r) => r.url))}`);
  assertEq(streams[0].type, 'eventsource', 'the /events request is an EventSource');
  assert(streams[0].url.includes(encodeURIComponent(orderNo)) || streams[0].url.includes(orderNo), 'the stream is for this order');
  assert(requests.some((r) => r.url.includes(`/payment/orders/${orderNo}/stream-token`)), 'a stream token was requested');

  // Pay behind the page's back: only the stream can tell it.
  const polled = () => requests.filter((r) => r.url.includes('/payment/order-status')).length;
  const before = polled();
  const token = await storedToken(page);
  const paid = await api(BASE, token, 'POST', '/dev/simulate-pay', { order_no: orderNo });
  assert(paid.status >= 200 && paid.status < 300, `simulate-pay: ${paid.status} ${paid.text}`);
  await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
  await page.locator('[data-testid=payment-success]').waitFor();
  assertEq(polled(), before, 'order-status polls while the stream was live');
  await expectText(page.locator('[data-testid=points-balance]'), '100', { what: 'points-balance after paying' });
});

test('live status: without a stream token the checkout falls back to polling', async (h) => {
  const page = await h.page(BASE);
  // An older server: no stream-token route.
  await page.route('**/stream-token', (route) =>
    route.fulfill({ status: 404, contentType: 'application/json', body: '{"code":"not_found","message":"route"}' }),
  );
  const requests = [];
  page.on('request', (req) => requests.push({ url: req.url(), type: req.resourceType() }));
  const user = newUser('poll');
  await openApp(page);
  await register(page, user);
  const orderNo = await startCheckout(page, { productId: 1, method: 'alipay' });
  const pay = page.locator('[data-testid=pay-page]');
  await eventually(async () => (await pay.getAttribute('data-feed')) === 'poll', { message: 'the polling feed (data-feed=poll)' });
  assertEq(requests.filter((r) => r.type === 'eventsource').length, 0, 'EventSource requests without a token');
  const token = await storedToken(page);
  const paid = await api(BASE, token, 'POST', '/dev/simulate-pay', { order_no: orderNo });
  assert(paid.status >= 200 && paid.status < 300, `simulate-pay: ${paid.status} ${paid.text}`);
  await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
  assert(requests.some((r) => r.url.includes('/payment/order-status')), 'the page polled order-status');
});

test(
  'admin: find a paid order, refund it in full through the UI, order refunded',
  async (h) => {
    // The buyer pays for 100 points with WeChat Pay in the browser.
    const buyerPage = await h.page(BASE);
    const buyer = newUser('rbuy');
    await openApp(buyerPage);
    await register(buyerPage, buyer);
    assertEq(await buyerPage.locator('[data-testid=nav-admin]').count(), 0, 'admin link for a buyer');
    const orderNo = await startCheckout(buyerPage, { productId: 1, method: 'wechat' });
    await simulatePay(buyerPage);
    await expectText(buyerPage.locator('[data-testid=points-balance]'), '100', { what: 'points after paying' });
    const buyerToken = await storedToken(buyerPage);

    // The operator finds it with the filters.
    const admin = await adminUser('radm');
    const page = await h.page(BASE);
    await openAdmin(page, admin);
    await page.locator('#f-status').selectOption('paid');
    await page.locator('#f-provider').selectOption('wechat');
    await adminOpenOrder(page, buyer.username, orderNo);
    await expectText(page.locator('[data-testid=admin-order-status]'), '已支付', { what: 'detail status' });
    await expectText(page.locator('[data-testid=admin-order-amount]'), '¥10.00', { what: 'detail amount' });
    await page.locator('[data-testid=record][data-kind=notification]').first().waitFor();
    await page.locator('[data-testid=event][data-type="order.paid"]').waitFor();

    // A bad amount is refused in the browser, before any request.
    const amount = page.locator('#refund-amount');
    assertEq(await amount.inputValue(), '10.00', 'refund amount defaults to what is refundable');
    await amount.fill('10.001');
    await page.locator('[data-testid=refund-submit]').click();
    await page.locator('[data-testid=refund-amount-error]').waitFor();
    await amount.fill('20');
    await page.locator('[data-testid=refund-submit]').click();
    await expectText(page.locator('[data-testid=refund-amount-error]'), '退款金额不能超过可退金额 ¥10.00', { what: 'too-much error' });

    // Full refund, confirmed; a double click on "confirm" must not refund twice.
    const refundPosts = [];
    page.on('request', (req) => {
      if (req.method() === 'POST' && req.url().endsWith('/api/v1/admin/refunds')) {
        refundPosts.push(req.headers()['idempotency-key']);
      }
    });
    await amount.fill('10');
    await page.locator('#refund-reason').fill('e2e full refund');
    await page.locator('[data-testid=refund-submit]').click();
    await page.locator('[data-testid=refund-confirm-box]').waitFor();
    const confirmText = (await page.locator('[data-testid=refund-confirm-box]').textContent()) ?? '';
    assert(confirmText.includes('¥10.00'), `the confirm step names the amount: ${confirmText}`);
    await page.locator('[data-testid=refund-confirm]').dblclick();
    await page.locator('[data-testid=refund-result]').waitFor({ timeout: PAY_TIMEOUT });
    const firstState = await page.locator('[data-testid=refund-result]').getAttribute('data-status');
    assert(['processing', 'succeeded'].includes(firstState), `the refund is accepted: ${firstState}`);
    console.log(`  # the refund reply said: ${firstState}`);
    assert(refundPosts.length >= 1, 'a refund was posted');
    assert(refundPosts.every((k) => k && k === refundPosts[0]), `one Idempotency-Key per confirmation: ${refundPosts}`);

    // WeChat refunds settle asynchronously: the page keeps looking until refunded.
    try {
      await eventually(async () => (await page.locator('[data-testid=admin-order-status]').getAttribute('data-status')) === 'refunded', {
        timeout: PAY_TIMEOUT,
        message: 'the detail to show the order refunded',
      });
    } catch (err) {
      // Say which side stalled: the server's record, the provider's, or the page.
      const server = await api(BASE, admin.token, 'GET', `/admin/orders/${orderNo}`).catch((e) => ({ text: String(e) }));
      console.log(`  # server detail: ${server.text?.slice(0, 1500)}`);
      const notes = await fetch(`${EMU}/__emulator/wechat/notifications?out_trade_no=${encodeURIComponent(orderNo)}`)
        .then((r) => r.text())
        .catch((e) => String(e));
      console.log(`  # emulator notifications: ${notes.slice(0, 1500)}`);
      throw err;
    }
    await page.locator('[data-testid=refund-row][data-status=succeeded]').waitFor({ timeout: PAY_TIMEOUT });
    assertEq(await page.locator('[data-testid=refund-row]').count(), 1, 'refund rows');
    assertEq(await page.locator('[data-testid=refund-form]').count(), 0, 'refund form once fully refunded');
    await expectText(page.locator('[data-testid=admin-order-refunded]'), '¥10.00', { what: 'refunded amount' });

    // The server agrees.
    const order = await orderStatus(BASE, buyerToken, orderNo);
    assertEq(order.status, 'refunded', 'server order status');
    assertEq(order.refunded_fen, 1000, 'server refunded_fen');
    const detail = await api(BASE, admin.token, 'GET', `/admin/orders/${orderNo}`);
    assertEq(detail.status, 200, `admin detail (${detail.text})`);
    assertEq(detail.json.refunds.length, 1, 'refunds on the server (a double click refunds once)');
    assertEq(detail.json.refunds[0].reason, 'e2e full refund', 'refund reason');
    const wx = await emulatorTrade('wechat', orderNo);
    assert(JSON.stringify(wx).includes('REFUND') || wx.trade_state === 'REFUND', `the provider knows of the refund: ${JSON.stringify(wx).slice(0, 300)}`);

    // Points: taken back only if this server claws back (read, not assumed).
    const points = (await me(BASE, buyerToken)).points_balance;
    // REFUND_CLAWBACK defaults to true: a full refund takes the 100 points back.
    assertEq(points, 0, 'buyer points after a full refund (clawed back)');
    await buyerPage.reload({ waitUntil: 'commit' });
    await expectText(buyerPage.locator('[data-testid=points-balance]'), String(points), { what: 'buyer points in the UI' });
    await buyerPage.locator('[data-testid=nav-orders]').click();
    await buyerPage.locator(`[data-testid=order-row][data-order-no="${orderNo}"][data-status=refunded]`).waitFor();
  },
  { skip: NO_ADMIN },
);

test('admin: a non-admin sees "no access", the API refuses', async (h) => {
  const page = await h.page(BASE);
  const user = newUser('noadm');
  await openApp(page);
  await register(page, user);
  await expectText(page.locator('[data-testid=username]'), user.username, { what: 'username' });
  assertEq(await page.locator('[data-testid=nav-admin]').count(), 0, 'admin link for a non-admin');
  await page.goto('/admin', { waitUntil: 'commit' });
  await page.locator('#app-root').waitFor();
  const denied = page.locator('[data-testid=admin-no-access]');
  await denied.waitFor();
  assert(((await denied.textContent()) ?? '').includes('没有访问权限'), 'the Chinese no-access message');
  await page.locator('[data-testid=lang-toggle]').click();
  await eventually(async () => ((await denied.textContent()) ?? '').includes('No access'), { message: 'the English no-access message' });
  assertEq(await page.locator('[data-testid=admin-filters]').count(), 0, 'admin filters for a non-admin');
  const token = await storedToken(page);
  assertEq((await api(BASE, token, 'GET', '/admin/orders')).status, 403, 'GET /admin/orders as a buyer');
  assertEq((await api(BASE, token, 'GET', '/admin/stats')).status, 403, 'GET /admin/stats as a buyer');
});

test(
  'screenshots of the admin pages at desktop and phone sizes',
  async (h) => {
    const buyer = await apiUser(BASE, 'sbuy');
    const orderNo = await apiPaidOrder(BASE, buyer, { productId: 1, method: 'alipay' });
    await apiPaidOrder(BASE, buyer, { productId: 2, method: 'wechat' });
    const admin = await adminUser('sadm');
    // A partial refund, so the detail shows a refund and the form for the rest.
    const refund = await fetch(`${BASE}/api/v1/admin/refunds`, {
      method: 'POST',
      headers: { 'content-type': 'application/json', authorization: `Bearer ${admin.token}`, 'idempotency-key': `e2e-${orderNo}` },
      body: JSON.stringify({ order_no: orderNo, amount_fen: 250, reason: 'partial' }),
    });
    assertEq(refund.status, 200, `partial refund (${await refund.text()})`);

    for (const [size, viewport] of [
      ['desktop', DESKTOP],
      ['phone', PHONE],
    ]) {
      const phone = size === 'phone';
      const page = await h.page(BASE, { viewport, phone });
      const shot = async (name, { fullPage = false } = {}) => {
        await page.evaluate(() => document.fonts.ready);
        if (phone) {
          const overflow = await page.evaluate(() => document.documentElement.scrollWidth - window.innerWidth);
          assert(overflow <= 0, `${name} on a phone scrolls sideways by ${overflow} px`);
        }
        await page.screenshot({ path: join(SHOTS, `${name}-${size}.png`), fullPage });
      };
      await openAdmin(page, admin);
      await page.locator('[data-testid=admin-order-row]').first().waitFor();
      await shot('admin-orders');
      await adminOpenOrder(page, buyer.username, orderNo);
      await page.locator('[data-testid=refund-row]').first().waitFor();
      assertEq(await page.locator('#refund-amount').inputValue(), '7.50', 'the refundable rest after a 2.50 refund');
      await page.locator('[data-testid=record]').first().waitFor();
      await shot('admin-order');
      // The whole history (records, refunds, events) below the fold.
      await page.locator('[data-testid=record] details').first().evaluate((el) => (el.open = true));
      await shot('admin-order-full', { fullPage: true });
      await page.locator('[data-testid=admin-tab-stats]').click();
      await page.locator('[data-testid=stats-totals]').waitFor();
      await page.locator('[data-testid=stats-row]').first().waitFor();
      await shot('admin-stats');
      if (!phone) {
        const paid = await page.locator('[data-testid=stats-total-paid]').textContent();
        assert(/^¥\d+\.\d{2}$/.test(paid?.trim() ?? ''), `total paid is shown in yuan: ${paid}`);
      }
    }
  },
  { skip: NO_ADMIN },
);

// ---------------------------------------------------------------------------------------
// Merchant apps and the hosted checkout page (`/pay/{order_no}?sig=`).

const IPHONE_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.4 Mobile/15E148 Safari/604.1';
const WECHAT_UA =
  'Mozilla/5.0 (iPhone; CPU iPhone OS 17_4 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Mobile/15E148 MicroMessenger/8.0.47(0x18002f2c) NetType/WIFI Language/zh_CN';

function hmacHex(secret, message) {
  return createHmac('sha256', secret).update(message).digest('hex');
}

/**
 * A merchant app's own server on 127.0.0.1: takes webhooks at POST /hook and buyers coming
 * back at GET /back. Closed with the test.
 */
async function appServer(h) {
  const hooks = [];
  const returns = [];
  const server = createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', () => {
      const url = new URL(req.url, 'http://receiver');
      if (req.method === 'POST' && url.pathname === '/hook') {
        hooks.push({ signature: req.headers['fenpay-signature'], body: Buffer.concat(chunks).toString('utf8') });
        res.writeHead(200, { 'content-type': 'application/json' });
        res.end('{"received":true}');
      } else if (req.method === 'GET' && url.pathname === '/back') {
        returns.push(url);
        res.writeHead(200, { 'content-type': 'text/html; charset=utf-8' });
        res.end('<!doctype html><title>shop</title><h1 id="shop-return">Back at the shop</h1>');
      } else {
        res.writeHead(404);
        res.end();
      }
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  h.cleanups.push(
    () =>
      new Promise((resolve) => {
        server.closeAllConnections();
        server.close(resolve);
      }),
  );
  return { origin: `http://127.0.0.1:${server.address().port}`, hooks, returns };
}

/** Checks a `fenpay-signature: t=<unix>,v1=<hex>` header against the body; returns the event. */
function verifiedEvent(hook, secret) {
  const parts = Object.fromEntries((hook.signature ?? '').split(',').map((p) => p.trim().split('=')));
  const t = Number(parts.t);
  assert(Number.isInteger(t) && Math.abs(Date.now() / 1000 - t) < 300, `signature time is now: ${hook.signature}`);
  assertEq(parts.v1, hmacHex(secret, `${t}.${hook.body}`), 'webhook v1 signature (HMAC-SHA256 of "<t>.<body>")');
  assert(parts.v1 !== hmacHex(`${secret}x`, `${t}.${hook.body}`), 'the signature depends on the secret');
  return JSON.parse(hook.body);
}

/** JSON with object keys sorted, to compare values whatever order the keys came in. */
function canonicalJson(value) {
  const sort = (v) =>
    Array.isArray(v)
      ? v.map(sort)
      : v && typeof v === 'object'
        ? Object.fromEntries(Object.keys(v).sort().map((k) => [k, sort(v[k])]))
        : v;
  return JSON.stringify(sort(value));
}

let appSeq = 0;
/** `fenpay app create` (test key, the app fulfils from its webhooks). */
async function cliApp(tag, { webhookUrl, returnHosts = [] } = {}) {
  const name = `E2E ${tag} ${Date.now().toString(36)}${(appSeq++).toString(36)}`;
  const args = ['app', 'create', '--name', name, '--mode', 'test', '--fulfilment', 'webhook'];
  if (webhookUrl) args.push('--webhook-url', webhookUrl);
  for (const host of returnHosts) args.push('--return-host', host);
  const app = JSON.parse(await fenpayCli(args));
  assert(/^sk_test_[A-Za-z0-9]{32}$/.test(app.api_key ?? ''), `a test API key: ${app.api_key}`);
  assert(app.webhook_secret, 'a webhook secret');
  return { ...app, name };
}

/** POST /merchant/orders with the app's key; returns the order (with `checkout_url`). */
async function merchantOrder(app, body) {
  const r = await api(BASE, app.api_key, 'POST', '/merchant/orders', body);
  assertEq(r.status, 200, `POST /merchant/orders (${r.text})`);
  assert(r.json.checkout_url?.startsWith(`${BASE}/pay/${r.json.order_no}?sig=`), `checkout_url: ${r.json.checkout_url}`);
  return r.json;
}

async function merchantGet(app, orderNo) {
  const r = await api(BASE, app.api_key, 'GET', `/merchant/orders/${encodeURIComponent(orderNo)}`);
  assertEq(r.status, 200, `GET /merchant/orders/${orderNo} (${r.text})`);
  return r.json;
}

function outOrderNo(tag) {
  return `e2e-${tag}-${Date.now().toString(36)}${Math.random().toString(36).slice(2, 6)}`;
}

/** Opens a checkout link and waits for the order to show. */
async function openCheckout(page, order, device) {
  await page.goto(order.checkout_url, { waitUntil: 'commit' });
  const root = page.locator('[data-testid=hosted-checkout]');
  await root.waitFor();
  assertEq(await root.getAttribute('data-device'), device, 'device the page recognised');
  await expectText(page.locator('[data-testid=order-no]'), order.order_no, { what: 'order number' });
}

test(
  'hosted checkout: desktop, app order paid by WeChat QR, signed return and signed webhook',
  async (h) => {
    const shop = await appServer(h);
    const app = await cliApp('desktop', { webhookUrl: `${shop.origin}/hook`, returnHosts: ['127.0.0.1'] });
    const metadata = { cart: 'c-42', items: [{ sku: 'tea', qty: 2 }], gift: true };
    const order = await merchantOrder(app, {
      out_order_no: outOrderNo('desk'),
      subject: 'E2E 龙井茶 ×2',
      amount_fen: 1234,
      customer_ref: 'cust-7',
      metadata,
      return_url: `${shop.origin}/back?shop=1`,
    });
    assertEq(order.payment_method, null, 'payment method before the buyer chooses');

    const page = await h.page(BASE, { alsoAllow: [shop.origin] });
    await openCheckout(page, order, 'desktop');
    await expectText(page.locator('[data-testid=app-name]'), app.name, { what: 'app name' });
    await expectText(page.locator('[data-testid=subject]'), 'E2E 龙井茶 ×2', { what: 'subject' });
    await expectText(page.locator('[data-testid=order-amount]'), '¥12.34', { what: 'amount' });
    await expectText(page.locator('[data-testid=order-status]'), 'pending', { what: 'order-status' });
    // Chinese by default.
    await expectText(page.locator('[data-testid=choose-method] p').first(), '请选择支付方式', { what: 'method prompt (zh)' });
    await expectText(page.locator('[data-testid=choose-wechat]'), '微信支付', { what: 'WeChat button (zh)' });
    await expectText(page.locator('[data-testid=choose-alipay]'), '支付宝', { what: 'Alipay button (zh)' });

    await page.screenshot({ path: join(SHOTS, 'hosted-choose-desktop.png') });
    // A link with a wrong signature shows nothing of the order.
    const forged = await h.page(BASE);
    await forged.goto(`/pay/${order.order_no}?sig=${'0'.repeat(32)}`, { waitUntil: 'commit' });
    await expectText(forged.locator('[data-testid=link-invalid]'), '支付链接无效或已失效。', { what: 'invalid link (zh)' });
    assertEq(await forged.locator('[data-testid=order-amount]').count(), 0, 'amount shown on a forged link');
    assertEq((await api(BASE, null, 'GET', `/checkout/${order.order_no}?sig=${'0'.repeat(32)}`)).status, 404, 'API on a forged sig');
    await page.locator('[data-testid=choose-wechat]').click();
    const qr = page.locator(`[data-testid=qr-code][data-order-no="${order.order_no}"]`);
    await qr.waitFor();
    await expectText(page.locator('[data-testid=order-method]'), '微信支付', { what: 'chosen method (zh)' });
    assertEq(await page.locator('[data-testid=choose-method]').count(), 0, 'method buttons once chosen');
    const svg = qr.locator('svg');
    const box = await svg.boundingBox();
    assert(box && box.width >= 150 && box.height >= 150, `QR SVG is drawn at a scannable size: ${JSON.stringify(box)}`);
    const decoded = await decodeSvgQr(page.context().browser(), await svg.evaluate((el) => el.outerHTML));
    const chosen = await merchantGet(app, order.order_no);
    assertEq(chosen.payment_method, 'wechat', 'payment method after choosing');
    assertEq(chosen.channel, 'native', 'channel on a desktop');
    assertEq(decoded, chosen.qr_code_url, "decoded QR content vs the order's qr_code_url");
    assert(/^weixin:\/\/wxpay\/bizpayurl\?pr=/.test(decoded), `a WeChat Pay code URL: ${decoded}`);
    assertEq(await tradeState('wechat', order.order_no), 'NOTPAY', 'provider trade state before paying');
    await page.screenshot({ path: join(SHOTS, 'hosted-qr-desktop.png') });

    await page.locator('[data-testid=simulate-pay]').click();
    await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
    await expectText(page.locator('[data-testid=payment-success] .big'), '支付成功！', { what: 'success message (zh)' });
    await page.locator('[data-testid=returning]').waitFor();

    // Back to the app, with the result signed under the webhook secret.
    await page.waitForURL((url) => url.origin === shop.origin, { timeout: STEP_TIMEOUT });
    await page.locator('#shop-return').waitFor();
    const back = new URL(page.url());
    assertEq(back.pathname, '/back', 'return path');
    assertEq(back.searchParams.get('shop'), '1', "the return_url's own query survives");
    assertEq(back.searchParams.get('order_no'), order.order_no, 'returned order_no');
    assertEq(back.searchParams.get('out_order_no'), order.out_order_no, 'returned out_order_no');
    assertEq(back.searchParams.get('status'), 'paid', 'returned status');
    assertEq(
      back.searchParams.get('sig'),
      hmacHex(app.webhook_secret, `${order.order_no}\n${order.out_order_no}\npaid`),
      'return signature (HMAC-SHA256 of order_no, out_order_no, status)',
    );
    assertEq(shop.returns.length, 1, 'returns at the shop');

    // The app's server hears of it, signed with its webhook secret.
    const hook = await eventually(
      () =>
        shop.hooks.find((x) => {
          const e = JSON.parse(x.body);
          return e.type === 'order.paid' && e.data?.order?.order_no === order.order_no;
        }),
      { timeout: PAY_TIMEOUT, message: `an order.paid webhook for ${order.order_no}` },
    );
    const event = verifiedEvent(hook, app.webhook_secret);
    assert(event.id && event.created_at, `the event has an id and a time: ${hook.body.slice(0, 200)}`);
    assertEq(event.data.order.out_order_no, order.out_order_no, 'webhook out_order_no');
    assertEq(event.data.order.customer_ref, 'cust-7', 'webhook customer_ref');
    assertEq(canonicalJson(event.data.order.metadata), canonicalJson(metadata), 'webhook metadata');
    assertEq(event.data.order.status, 'paid', 'webhook order status');
    assertEq(event.data.order.amount_fen, 1234, 'webhook amount_fen');
    assertEq((await merchantGet(app, order.order_no)).status, 'paid', 'server order status');
    assertEq(await tradeState('wechat', order.order_no), 'SUCCESS', 'provider trade state after paying');
  },
  { skip: NO_ADMIN },
);

test(
  'hosted checkout: phone browser, Alipay wap and WeChat H5, in English',
  async (h) => {
    const app = await cliApp('phone');
    const page = await h.page(BASE, { viewport: PHONE, phone: true, userAgent: IPHONE_UA, alsoAllow: [EMU] });

    // Alipay: the page sends the phone to the wap cashier, which comes back to the page.
    const ali = await merchantOrder(app, { out_order_no: outOrderNo('wap'), subject: 'E2E wap', amount_fen: 2500 });
    await openCheckout(page, ali, 'mobile');
    await page.locator('[data-testid=lang-toggle]').click();
    await expectText(page.locator('[data-testid=choose-method] p').first(), 'Choose how to pay', { what: 'method prompt (en)' });
    await expectText(page.locator('[data-testid=choose-alipay]'), 'Alipay', { what: 'Alipay button (en)' });
    await expectText(page.locator('[data-testid=choose-wechat]'), 'WeChat Pay', { what: 'WeChat button (en)' });
    await page.screenshot({ path: join(SHOTS, 'hosted-choose-phone.png') });
    await page.locator('[data-testid=choose-alipay]').click();
    await page.waitForURL((url) => url.origin === new URL(EMU).origin, { timeout: STEP_TIMEOUT });
    const cashier = page.locator('main.cashier');
    await cashier.waitFor();
    assertEq(await cashier.getAttribute('data-out-trade-no'), ali.order_no, 'the cashier is for this order');
    await expectText(page.locator('#emulator-amount'), '25.00', { what: 'cashier amount' });
    const wap = await merchantGet(app, ali.order_no);
    assertEq(wap.channel, 'wap', 'Alipay channel on a phone');
    assert(wap.pay_url && page.url().startsWith(new URL(wap.pay_url).origin), `the page went to the wap pay_url (${page.url()})`);
    await page.locator('#emulator-pay').click();
    await page.waitForURL((url) => url.origin === new URL(BASE).origin && url.pathname === `/pay/${ali.order_no}`, {
      timeout: STEP_TIMEOUT,
    });
    await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status after wap' });
    await expectText(page.locator('[data-testid=payment-success] .big'), 'Payment received!', { what: 'success message (en)' });
    await expectText(page.locator('[data-testid=order-method]'), 'Alipay', { what: 'method (en)' });
    assertEq(await tradeState('alipay', ali.order_no), 'TRADE_SUCCESS', 'Alipay trade state');

    // WeChat H5: the page opens WeChat's h5_url with a redirect_url back to itself.
    const wx = await merchantOrder(app, { out_order_no: outOrderNo('h5'), subject: 'E2E h5', amount_fen: 990 });
    const tenpay = [];
    await page.route('https://wx.tenpay.com/**', (route) => {
      tenpay.push(route.request().url());
      return route.fulfill({ contentType: 'text/html', body: '<!doctype html><title>WeChat Pay</title><p id="tenpay">WeChat H5</p>' });
    });
    await openCheckout(page, wx, 'mobile');
    await expectText(page.locator('[data-testid=choose-method] p').first(), 'Choose how to pay', { what: 'the language is kept' });
    await page.locator('[data-testid=choose-wechat]').click();
    await page.waitForURL((url) => url.hostname === 'wx.tenpay.com', { timeout: STEP_TIMEOUT });
    await page.locator('#tenpay').waitFor();
    const h5 = await merchantGet(app, wx.order_no);
    assertEq(h5.channel, 'h5', 'WeChat channel on a phone');
    const opened = new URL(page.url());
    assert(page.url().startsWith(h5.h5_url), `the page opened the order's h5_url: ${page.url()}`);
    const redirect = opened.searchParams.get('redirect_url');
    assertEq(redirect, wx.checkout_url, 'redirect_url: back to the checkout page');
    assertEq(await tradeState('wechat', wx.order_no), 'NOTPAY', 'WeChat trade before paying');
    // The buyer pays in WeChat, which then sends the browser back.
    const paid = await fetch(`${EMU}/__emulator/wechat/pay/${wx.order_no}`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    assert(paid.status < 300, `the emulator takes the H5 payment: ${paid.status}`);
    await page.goto(redirect, { waitUntil: 'commit' });
    await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status after H5' });
    await expectText(page.locator('[data-testid=payment-success] .big'), 'Payment received!', { what: 'success message (en)' });
    assertEq((await emulatorTrade('wechat', wx.order_no)).trade_type, 'MWEB', 'WeChat trade type');
    assert(tenpay.length >= 1, 'the H5 page was opened');
    // (A mobile layout viewport grows to fit wide content: compare with the screen width.)
    const overflow = await page.evaluate((width) => document.documentElement.scrollWidth - width, PHONE.width);
    assert(overflow <= 0, `the checkout page on a phone scrolls sideways by ${overflow} px`);
  },
  { skip: NO_ADMIN },
);

test(
  'hosted checkout: inside WeChat, JSAPI through WeChat authorisation; Alipay says open in a browser',
  async (h) => {
    const app = await cliApp('wechat');
    const page = await h.page(BASE, { viewport: PHONE, phone: true, userAgent: WECHAT_UA, alsoAllow: [EMU] });
    // WeChat's in-app browser injects WeixinJSBridge, sometimes only after the page ran
    // (then it fires WeixinJSBridgeReady); this one records the calls.
    await page.addInitScript(() => {
      window.__wxCalls = [];
      window.__installBridge = () => {
        window.WeixinJSBridge = {
          invoke(name, params, done) {
            window.__wxCalls.push({ name, params });
            window.__wxDone = done;
          },
        };
        document.dispatchEvent(new Event('WeixinJSBridgeReady'));
      };
    });
    const visited = [];
    page.on('request', (req) => req.isNavigationRequest() && visited.push(req.url()));

    const order = await merchantOrder(app, { out_order_no: outOrderNo('jsapi'), subject: 'E2E jsapi', amount_fen: 800 });
    await openCheckout(page, order, 'wechat');
    await page.locator('[data-testid=choose-wechat]').click();
    // Out to WeChat's authorisation (the emulator), back through the callback to the page,
    // which then asks WeChat to pay.
    await page.waitForURL((url) => url.origin === BASE && url.pathname === `/pay/${order.order_no}`, { timeout: STEP_TIMEOUT });
    const payButton = page.locator('[data-testid=open-provider]');
    await payButton.waitFor();
    assertEq(await page.evaluate(() => window.__wxCalls.length), 0, 'bridge calls before the bridge is there');
    await page.evaluate(() => window.__installBridge());
    const call = await eventually(() => page.evaluate(() => window.__wxCalls[0]), { message: 'getBrandWCPayRequest on WeixinJSBridgeReady' });
    assert(
      visited.some((u) => u.startsWith(`${EMU}/connect/oauth2/authorize?`) && u.includes('scope=snsapi_base')),
      `went through WeChat's authorisation: ${visited.join(' ')}`,
    );
    assert(
      visited.some((u) => u.includes(`/api/v1/checkout/${order.order_no}/wechat-oauth/callback?`) && /[?&]code=/.test(u)),
      `came back with a code: ${visited.join(' ')}`,
    );
    assertEq(await page.locator('[data-testid=wechat-error]').count(), 0, 'WeChat errors on the page');
    assertEq(call.name, 'getBrandWCPayRequest', 'bridge method');
    assert(/^prepay_id=wx/.test(call.params.package ?? ''), `package: ${call.params.package}`);
    assertEq(call.params.signType, 'RSA', 'signType');
    assert(call.params.appId && call.params.timeStamp && call.params.nonceStr && call.params.paySign, `JSAPI params: ${JSON.stringify(call.params)}`);
    const chosen = await merchantGet(app, order.order_no);
    assertEq(chosen.payment_method, 'wechat', 'method after authorisation');
    assertEq(chosen.channel, 'jsapi', 'channel inside WeChat');
    await expectText(page.locator('[data-testid=order-method]'), '微信支付', { what: 'method (zh)' });
    // Cancelled in WeChat's sheet: the button asks again.
    await page.evaluate(() => window.__wxDone({ err_msg: 'get_brand_wcpay_request:cancel' }));
    await expectText(payButton, '微信支付', { what: 'pay button (zh)' });
    await payButton.click();
    await eventually(async () => (await page.evaluate(() => window.__wxCalls.length)) === 2, { message: 'a second getBrandWCPayRequest' });
    assertEq(
      await page.evaluate(() => window.__wxCalls[1].params.package),
      call.params.package,
      'the same prepay on the second try',
    );
    await expectText(page.locator('[data-testid=order-status]'), 'pending', { what: 'order-status after cancelling' });

    // The buyer confirms in WeChat: the emulator takes it, the bridge says ok.
    const paid = await fetch(`${EMU}/__emulator/wechat/pay/${order.order_no}`, {
      method: 'POST',
      body: '{}',
      headers: { 'content-type': 'application/json' },
    });
    assert(paid.status < 300, `the emulator takes the JSAPI payment: ${paid.status}`);
    await page.evaluate(() => window.__wxDone({ err_msg: 'get_brand_wcpay_request:ok' }));
    await page.screenshot({ path: join(SHOTS, 'hosted-wechat-phone.png') });
    await expectText(page.locator('[data-testid=order-status]'), 'paid', { timeout: PAY_TIMEOUT, what: 'order-status' });
    await expectText(page.locator('[data-testid=payment-success] .big'), '支付成功！', { what: 'success message (zh)' });
    const trade = await emulatorTrade('wechat', order.order_no);
    assertEq(trade.trade_type, 'JSAPI', 'WeChat trade type');
    assert(/^o[\w-]{20,}$/.test(trade.payer_openid ?? ''), `the payer's openid from the authorisation: ${trade.payer_openid}`);

    // Alipay does not work inside WeChat: a hint, no navigation, nothing chosen.
    const ali = await merchantOrder(app, { out_order_no: outOrderNo('inwx'), subject: 'E2E in wechat', amount_fen: 100 });
    await openCheckout(page, ali, 'wechat');
    await page.locator('[data-testid=choose-alipay]').click();
    const hint = page.locator('[data-testid=open-in-browser]');
    await hint.waitFor();
    assert(((await hint.textContent()) ?? '').includes('微信内无法使用支付宝'), `the Chinese hint: ${await hint.textContent()}`);
    assertEq(new URL(page.url()).pathname, `/pay/${ali.order_no}`, 'still on the checkout page');
    assertEq((await merchantGet(app, ali.order_no)).payment_method, null, 'method after the hint');
    await page.locator('[data-testid=lang-toggle]').click();
    await eventually(async () => ((await hint.textContent()) ?? '').includes('Alipay does not work inside WeChat'), {
      message: 'the English hint',
    });

    // A stale or forged authorisation comes back to the page with the reason.
    const sig = new URL(ali.checkout_url).searchParams.get('sig');
    await page.goto(`/api/v1/checkout/${ali.order_no}/wechat-oauth/callback?sig=${sig}&code=forged&state=1h00`, { waitUntil: 'commit' });
    const failed = page.locator('[data-testid=wechat-error]');
    await failed.waitFor();
    assertEq(new URL(page.url()).pathname, `/pay/${ali.order_no}`, 'back on the checkout page');
    assertEq(await failed.getAttribute('data-code'), 'wechat_oauth_expired', 'the reason');
    await expectText(failed, 'WeChat did not confirm you; please try again.', { what: 'the English WeChat error' });
    assertEq((await merchantGet(app, ali.order_no)).payment_method, null, 'method after a forged authorisation');
  },
  { skip: NO_ADMIN },
);

test(
  'admin apps: create an app, key shown once, rotate it, revoke it; the old keys get 401',
  async (h) => {
    const admin = await adminUser('appadm');
    const page = await h.page(BASE);
    await openAdmin(page, admin);
    await page.locator('[data-testid=admin-tab-apps]').click();
    const form = page.locator('[data-testid=app-create-form]');
    await form.waitFor();
    const name = `E2E admin app ${Date.now().toString(36)}`;
    await form.locator('#app-name').fill(name);
    await form.locator('#app-webhook').fill('http://127.0.0.1:9/hook');
    await form.locator('#app-hosts').fill('shop.example.com, *.example.org');
    await form.locator('#app-mode').selectOption('test');
    await form.locator('#app-fulfilment').selectOption('webhook');
    await page.locator('[data-testid=app-create-submit]').click();

    const secrets = page.locator('[data-testid=app-secrets]');
    await secrets.waitFor();
    const appId = (await secrets.locator('[data-testid=secret-app-id]').textContent()).trim();
    const key = (await secrets.locator('[data-testid=secret-api-key]').textContent()).trim();
    const whsec = (await secrets.locator('[data-testid=secret-webhook]').textContent()).trim();
    assert(/^sk_test_[A-Za-z0-9]{32}$/.test(key), `a test key is shown: ${key}`);
    assert(whsec.length >= 16, `a webhook secret is shown: ${whsec}`);
    const row = page.locator(`[data-testid=app-row][data-app-id="${appId}"]`);
    await row.waitFor();
    await expectText(row.locator('[data-testid=app-name]'), name, { what: 'app name in the list' });
    await expectText(row.locator('[data-testid=app-key-prefix]'), `${key.slice(0, 12)}…`, { what: 'key prefix' });
    await expectText(row.locator('[data-testid=app-webhook]'), 'http://127.0.0.1:9/hook', { what: 'webhook URL' });
    await expectText(row.locator('[data-testid=app-hosts]'), 'shop.example.com, *.example.org', { what: 'return hosts' });
    assertEq(await row.getAttribute('data-revoked'), 'false', 'revoked before revoking');

    // The key works.
    const order = (k, tag) =>
      api(BASE, k, 'POST', '/merchant/orders', { out_order_no: outOrderNo(tag), subject: 'E2E admin', amount_fen: 100 });
    const first = await order(key, 'adm1');
    assertEq(first.status, 200, `an order with the new key (${first.text})`);
    const list = await api(BASE, admin.token, 'GET', '/admin/apps');
    const listed = (list.json.items ?? []).find((a) => a.id === appId);
    assertEq(listed?.mode, 'test', 'app mode on the server');
    assert(!list.text.includes(key), 'the app list does not carry the key');

    // Edit: the return hosts decide which return_url the API takes.
    const withReturn = (k, url) =>
      api(BASE, k, 'POST', '/merchant/orders', { out_order_no: outOrderNo('ret'), subject: 'E2E return', amount_fen: 100, return_url: url });
    const refused = await withReturn(key, 'http://127.0.0.1/back');
    assertEq(refused.status, 400, `a return_url off the allowed hosts (${refused.text})`);
    assertEq(refused.json?.code, 'invalid_return_url', 'error code');
    await row.locator('[data-testid=app-edit]').click();
    const edit = page.locator('[data-testid=app-edit-form]');
    await edit.waitFor();
    assertEq(await edit.locator('#edit-hosts').inputValue(), 'shop.example.com, *.example.org', 'hosts in the edit form');
    assertEq(await edit.locator('#edit-fulfilment').inputValue(), 'webhook', 'fulfilment in the edit form');
    await edit.locator('#edit-hosts').fill('shop.example.com, 127.0.0.1');
    await page.locator('[data-testid=app-edit-save]').click();
    await eventually(async () => (await edit.count()) === 0, { message: 'the edit form to close' });
    await expectText(row.locator('[data-testid=app-hosts]'), 'shop.example.com, 127.0.0.1', { what: 'return hosts after editing' });
    const allowed = await withReturn(key, 'http://127.0.0.1/back');
    assertEq(allowed.status, 200, `a return_url on a newly allowed host (${allowed.text})`);
    assertEq((await withReturn(key, 'https://a.example.org/back')).status, 400, 'a host removed by the edit');
    await page.screenshot({ path: join(SHOTS, 'admin-apps-desktop.png'), fullPage: true });

    // Shown once: gone after "copied" and after a reload.
    await page.locator('[data-testid=app-secrets-done]').click();
    await eventually(async () => (await secrets.count()) === 0, { message: 'the secrets box to close' });
    await page.reload({ waitUntil: 'commit' });
    await page.locator('[data-testid=admin-tab-apps]').click();
    await row.waitFor();
    assert(!((await page.locator('body').textContent()) ?? '').includes(key), 'the key is not on the page after a reload');

    // Rotate: a second click confirms; the new key is shown, the old one is refused.
    await row.locator('[data-testid=app-rotate-key]').click();
    const confirmBox = page.locator('[data-testid=app-confirm-box]');
    await confirmBox.waitFor();
    assert(((await confirmBox.textContent()) ?? '').includes(name), 'the confirmation names the app');
    await page.locator('[data-testid=app-confirm]').click();
    await secrets.waitFor();
    const rotated = (await secrets.locator('[data-testid=secret-api-key]').textContent()).trim();
    assert(/^sk_test_[A-Za-z0-9]{32}$/.test(rotated) && rotated !== key, `a new key: ${rotated}`);
    await expectText(row.locator('[data-testid=app-key-prefix]'), `${rotated.slice(0, 12)}…`, { what: 'new key prefix' });
    assertEq((await order(key, 'adm2')).status, 401, 'the rotated-out key');
    const second = await order(rotated, 'adm3');
    assertEq(second.status, 200, `an order with the rotated key (${second.text})`);
    await page.locator('[data-testid=app-secrets-done]').click();

    // Revoke.
    await row.locator('[data-testid=app-revoke]').click();
    await confirmBox.waitFor();
    await page.locator('[data-testid=app-confirm]').click();
    await eventually(async () => (await row.getAttribute('data-revoked')) === 'true', { message: 'the row to show revoked' });
    await row.locator('[data-testid=app-revoked]').waitFor();
    assertEq(await row.locator('[data-testid=app-revoke]').count(), 0, 'actions on a revoked app');
    assertEq(await confirmBox.count(), 0, 'confirmation box after revoking');
    assertEq((await order(rotated, 'adm4')).status, 401, 'the revoked key');
    assertEq(
      (await api(BASE, rotated, 'GET', `/merchant/orders/${second.json.order_no}`)).status,
      401,
      'reading an order with the revoked key',
    );

    // On a phone the list scrolls inside its box; the page itself does not.
    const phone = await h.page(BASE, { viewport: PHONE, phone: true });
    await openAdmin(phone, admin);
    await phone.locator('[data-testid=admin-tab-apps]').click();
    await phone.locator(`[data-testid=app-row][data-app-id="${appId}"]`).waitFor();
    await phone.evaluate(() => document.fonts.ready);
    const overflow = await phone.evaluate((width) => document.documentElement.scrollWidth - width, PHONE.width);
    assert(overflow <= 0, `the apps tab on a phone scrolls sideways by ${overflow} px`);
    await phone.screenshot({ path: join(SHOTS, 'admin-apps-phone.png') });
  },
  { skip: NO_ADMIN },
);

test(
  'console: catalog, accounts and audit log',
  async (h) => {
    const admin = await adminUser('cadm');
    const buyer = await apiUser(BASE, 'cbuy');
    const buyerId = (await me(BASE, buyer.token)).id;
    const page = await h.page(BASE);
    await openAdmin(page, admin);

    // Catalog: a new points pack, on sale at once.
    await page.locator('[data-testid=admin-tab-catalog]').click();
    await page.locator('[data-testid=catalog-create-form]').waitFor();
    const name = `E2E pack ${Date.now().toString(36)}`;
    await page.locator('[data-testid=catalog-create-kind]').selectOption('points');
    await page.locator('[data-testid=catalog-create-name]').fill(name);
    await page.locator('[data-testid=catalog-create-price]').fill('12.34');
    await page.locator('[data-testid=catalog-create-points]').fill('120');
    await page.locator('[data-testid=catalog-create-submit]').click();
    const created = page.locator('[data-testid=catalog-created]');
    await created.waitFor();
    const productId = Number(await created.getAttribute('data-product-id'));
    assert(Number.isInteger(productId) && productId > 0, `a product id is shown: ${productId}`);
    const row = page.locator(`[data-testid=product-row-${productId}]`);
    await row.waitFor();
    const priceCell = row.locator(`[data-testid=product-price-${productId}]`);
    await expectText(priceCell, '¥12.34', { what: 'price of the new product' });
    await expectText(row.locator(`[data-testid=product-stock-${productId}]`), '不限', { what: 'stock of the new product' });
    assertEq(await row.getAttribute('data-active'), 'true', 'the new product is on sale');

    // The buyer orders it at this price...
    const order = await api(BASE, buyer.token, 'POST', '/payment/create-order', {
      product_type: 'points',
      product_id: productId,
      payment_method: 'wechat',
    });
    assertEq(order.status, 200, `create-order for the new product (${order.text})`);
    const orderNo = order.json.order_no;

    // ...then the price and the grant change in the tab.
    await row.locator(`[data-testid=product-edit-${productId}]`).click();
    const edit = page.locator('[data-testid=product-edit-form]');
    await edit.waitFor();
    assertEq(await page.locator('[data-testid=product-edit-price]').inputValue(), '12.34', 'price in the edit form');
    await page.locator('[data-testid=product-edit-price]').fill('15');
    await page.locator('[data-testid=product-edit-points]').fill('150');
    await page.locator('[data-testid=product-edit-save]').click();
    await eventually(async () => (await edit.count()) === 0, { message: 'the edit form to close' });
    await expectText(priceCell, '¥15.00', { what: 'price after the edit' });
    const listed = (await api(BASE, buyer.token, 'GET', '/products')).json.items.find((p) => p.id === productId);
    assertEq(listed?.price_fen, 1500, 'the public catalog has the new price');
    assertEq(listed?.points, 150, 'the public catalog has the new grant');

    // The earlier order is paid and fulfilled as it was created.
    const paid = await api(BASE, buyer.token, 'POST', '/dev/simulate-pay', { order_no: orderNo });
    assert(paid.status >= 200 && paid.status < 300, `simulate-pay ${orderNo}: ${paid.status} ${paid.text}`);
    await eventually(async () => (await orderStatus(BASE, buyer.token, orderNo)).status === 'paid', {
      timeout: PAY_TIMEOUT,
      message: `order ${orderNo} to be paid`,
    });
    const paidOrder = await orderStatus(BASE, buyer.token, orderNo);
    assertEq(paidOrder.amount_fen, 1234, 'the paid order keeps the old price');
    assertEq((await me(BASE, buyer.token)).points_balance, 120, 'the buyer got the old grant');

    // Retired: gone from the public catalog, still listed here.
    await row.locator(`[data-testid=product-retire-${productId}]`).click();
    await eventually(async () => (await row.getAttribute('data-active')) === 'false', { message: 'the row to show retired' });
    await row.locator(`[data-testid=product-restore-${productId}]`).waitFor();
    const catalog = await api(BASE, buyer.token, 'GET', '/products');
    assert(!catalog.json.items.some((p) => p.id === productId), 'the retired product is not in GET /products');
    await page.screenshot({ path: join(SHOTS, 'admin-catalog-desktop.png'), fullPage: true });

    // Accounts: find the buyer, open the page.
    await page.locator('[data-testid=admin-tab-accounts]').click();
    await page.locator('[data-testid=accounts-search]').fill(buyer.username);
    await page.locator('[data-testid=accounts-apply]').click();
    const accountRow = page.locator(`[data-testid=account-row-${buyer.username}]`);
    await accountRow.waitFor();
    await expectText(accountRow.locator('[data-testid=account-row-points]'), '120', { what: 'points in the list' });
    await accountRow.locator(`[data-testid=account-open-${buyer.username}]`).click();
    await page.locator(`[data-testid=account-page][data-account-id="${buyerId}"]`).waitFor();
    await expectText(page.locator('[data-testid=account-points]'), '120', { what: 'points on the account page' });
    await page.locator(`[data-testid=account-order-row][data-order-no="${orderNo}"]`).waitFor();

    // The reason is mandatory; then an adjustment with one.
    await page.locator('[data-testid=adjust-points]').fill('-20');
    await page.locator('[data-testid=adjust-submit]').click();
    const adjustError = page.locator('[data-testid=adjust-error]');
    await adjustError.waitFor();
    assertEq(await adjustError.getAttribute('data-code'), 'reason_required', 'error code without a reason');
    const note = `e2e goodwill correction ${Date.now().toString(36)}`;
    await page.locator('[data-testid=adjust-reason]').fill(note);
    await page.locator('[data-testid=adjust-submit]').click();
    await page.locator('[data-testid=account-result]').waitFor();
    await expectText(page.locator('[data-testid=account-points]'), '100', { what: 'points after the adjustment' });
    const adjustment = page.locator('[data-testid=account-ledger-row][data-reason=adjustment]');
    await expectText(adjustment.locator('[data-testid=ledger-note]'), note, { what: 'the ledger note' });
    assertEq((await me(BASE, buyer.token)).points_balance, 100, 'server points after the adjustment');
    const verify = await api(BASE, admin.token, 'GET', '/admin/ledger/verify');
    assertEq(verify.status, 200, `GET /admin/ledger/verify (${verify.text})`);
    assertEq(verify.json.mismatches.length, 0, `ledger mismatches (${verify.text})`);

    // Disabled after a confirmation: the buyer's token stops working.
    await page.locator('[data-testid=account-disable]').click();
    await page.locator('[data-testid=account-confirm-box]').waitFor();
    await page.locator('[data-testid=account-action-reason]').fill('e2e: chargeback abuse');
    await page.locator('[data-testid=account-confirm]').click();
    await eventually(async () => (await page.locator('[data-testid=account-status]').getAttribute('data-disabled')) === 'true', {
      message: 'the account to show disabled',
    });
    await page.locator('[data-testid=account-enable]').waitFor();
    assertEq((await api(BASE, buyer.token, 'GET', '/auth/me')).status, 401, 'GET /auth/me with the disabled buyer\'s token');

    // Audit log: each action, filtered by family and target.
    await page.locator('[data-testid=admin-tab-audit]').click();
    await page.locator('[data-testid=audit-filters]').waitFor();
    const auditActions = async (family, targetId) => {
      await page.locator('[data-testid=audit-action-filter]').selectOption(family);
      await page.locator('[data-testid=audit-target-filter]').fill(String(targetId));
      await page.locator('[data-testid=audit-apply]').click();
      let seen = [];
      await eventually(
        async () => {
          const rows = page.locator('[data-testid=audit-row]');
          seen = await rows.evaluateAll((els) => els.map((e) => `${e.dataset.action} ${e.dataset.targetId}`));
          return seen.length > 0 && seen.every((s) => s.endsWith(` ${targetId}`));
        },
        { message: `audit rows for ${family} ${targetId}` },
      );
      return seen.map((s) => s.split(' ')[0]);
    };
    const productActions = await auditActions('product', productId);
    for (const action of ['product.create', 'product.update', 'product.retire']) {
      assert(productActions.includes(action), `audit has ${action} for product ${productId}: ${productActions.join(', ')}`);
    }
    const update = page.locator('[data-testid=audit-row][data-action="product.update"]');
    const priceChange = update.locator('[data-testid=audit-change][data-field=price_fen]');
    const priceText = ((await priceChange.textContent()) ?? '').replace(/\s+/g, ' ');
    assert(priceText.includes('1234') && priceText.includes('1500'), `the update shows price_fen before -> after: ${priceText}`);
    const accountActions = await auditActions('account', buyerId);
    for (const action of ['account.adjust', 'account.disable']) {
      assert(accountActions.includes(action), `audit has ${action} for the buyer: ${accountActions.join(', ')}`);
    }
    const adjustRow = page.locator('[data-testid=audit-row][data-action="account.adjust"]');
    assert(((await adjustRow.locator('[data-testid=audit-reason]').textContent()) ?? '').includes(note), 'the adjustment reason in the log');
    await page.screenshot({ path: join(SHOTS, 'admin-audit-desktop.png'), fullPage: true });

    // On a phone: the search and the account page scroll inside their boxes, not the page.
    const phone = await h.page(BASE, { viewport: PHONE, phone: true });
    const noOverflow = async (what) => {
      await phone.evaluate(() => document.fonts.ready);
      const overflow = await phone.evaluate((width) => document.documentElement.scrollWidth - width, PHONE.width);
      assert(overflow <= 0, `${what} on a phone scrolls sideways by ${overflow} px`);
    };
    await openAdmin(phone, admin);
    await phone.locator('[data-testid=admin-tab-accounts]').click();
    await phone.locator('[data-testid=accounts-search]').fill(buyer.username);
    await phone.locator('[data-testid=accounts-apply]').click();
    const phoneRow = phone.locator(`[data-testid=account-row-${buyer.username}]`);
    await phoneRow.waitFor();
    await noOverflow('the accounts search');
    await phone.screenshot({ path: join(SHOTS, 'admin-accounts-phone.png') });
    await phoneRow.locator(`[data-testid=account-open-${buyer.username}]`).click();
    await phone.locator('[data-testid=account-ledger-row]').first().waitFor();
    await noOverflow('the account page');
    await phone.screenshot({ path: join(SHOTS, 'admin-account-phone.png'), fullPage: true });
  },
  { skip: NO_ADMIN, timeout: 180_000 },
);

test(
  'console: a WeChat complaint answered in the inbox; stats and exports in China time',
  async (h) => {
    const admin = await adminUser('cpla');
    const buyer = await apiUser(BASE, 'cplb');
    const orderNo = await apiPaidOrder(BASE, buyer);

    // The buyer complains at the (emulated) WeChat Pay; its signed notification reaches fenpay.
    const made = await fetch(`${EMU}/__emulator/wechat/complaints`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ out_trade_no: orderNo, problem_description: 'e2e: points never arrived' }),
    });
    const madeText = await made.text();
    assertEq(made.status, 200, `emulator complaint (${madeText})`);
    const complaintId = JSON.parse(madeText).complaint.complaint_id;
    await eventually(async () => (await api(BASE, admin.token, 'GET', `/admin/complaints/${complaintId}`)).status === 200, {
      message: `complaint ${complaintId} to arrive`,
    });

    // The inbox lists it with the time left to answer; the detail shows the order.
    const page = await h.page(BASE);
    await openAdmin(page, admin);
    await page.locator('[data-testid=admin-tab-complaints]').click();
    const row = page.locator('[data-testid=complaint-row]', { hasText: complaintId });
    await row.waitFor();
    const left = ((await row.locator('[data-testid=complaint-time-left]').textContent()) ?? '').trim();
    assert(/\d/.test(left), `the time left to answer is shown: "${left}"`);
    await row.getByRole('button', { name: complaintId }).click();
    const detail = page.locator('[data-testid=complaint-detail]');
    await detail.waitFor();
    const contains = async (locator, text, what) => {
      let seen = '';
      await eventually(
        async () => {
          seen = (await locator.first().textContent({ timeout: 1_000 }).catch(() => '')) ?? '';
          return seen.includes(text);
        },
        { message: `${what} to include ${JSON.stringify(text)} (saw ${JSON.stringify(seen)})` },
      );
    };
    await contains(detail.locator('[data-testid=complaint-order]'), orderNo, 'the complained order');

    // Answer the buyer, then mark it handled: WeChat (the emulator) and fenpay agree.
    const answer = `e2e: sorry, credited by hand ${Date.now().toString(36)}`;
    await detail.locator('[data-testid=complaint-reply] textarea').fill(answer);
    await detail.locator('[data-testid=complaint-reply] button[type=submit]').click();
    await contains(detail.locator('[data-testid=complaint-history]'), answer, 'the reply in the history');
    assertEq((await api(BASE, admin.token, 'GET', `/admin/complaints/${complaintId}`)).json.complaint.state, 'processing', 'state after the reply');
    await detail.locator('[data-testid=complaint-complete]').click();
    await eventually(
      async () => (await api(BASE, admin.token, 'GET', `/admin/complaints/${complaintId}`)).json.complaint.state === 'processed',
      { message: 'the complaint to be processed' },
    );
    await eventually(async () => (await detail.locator('[data-testid=complaint-reply]').count()) === 0, {
      message: 'the reply box to go once handled',
    });
    const audit = await api(BASE, admin.token, 'GET', `/admin/audit?target_kind=complaint&target_id=${complaintId}`);
    const actions = audit.json.items.map((e) => e.action);
    for (const a of ['complaint.reply', 'complaint.complete']) {
      assert(actions.includes(a), `audit has ${a}: ${actions.join(', ')}`);
    }
    await page.screenshot({ path: join(SHOTS, 'admin-complaints-desktop.png'), fullPage: true });

    // Statistics say which time zone they cut days in; exports carry China-time offsets.
    await page.locator('[data-testid=admin-tab-stats]').click();
    await contains(page.locator('[data-testid=stats-timezone]'), 'Asia/Shanghai', 'the stats time zone');
    await page.locator('[data-testid=admin-tab-orders]').click();
    await page.locator('[data-testid=admin-export-orders]').waitFor();
    const csv = await fetch(`${BASE}/api/v1/admin/exports/orders.csv?user=${buyer.username}`, {
      headers: { authorization: `Bearer ${admin.token}` },
    });
    const csvText = await csv.text();
    assertEq(csv.status, 200, 'orders export');
    const line = csvText.split('\r\n').find((l) => l.includes(orderNo)) ?? '';
    assert(/\+08:00/.test(line), `the export's times carry China time's offset: ${line}`);

    // The inbox on a phone: no sideways page scroll.
    const phone = await h.page(BASE, { viewport: PHONE, phone: true });
    await openAdmin(phone, admin);
    await phone.locator('[data-testid=admin-tab-complaints]').click();
    await phone.locator('[data-testid=complaint-row]', { hasText: complaintId }).waitFor();
    await phone.evaluate(() => document.fonts.ready);
    const overflow = await phone.evaluate((width) => document.documentElement.scrollWidth - width, PHONE.width);
    assert(overflow <= 0, `the complaints inbox on a phone scrolls sideways by ${overflow} px`);
    await phone.screenshot({ path: join(SHOTS, 'admin-complaints-phone.png'), fullPage: true });
  },
  { skip: NO_ADMIN, timeout: 180_000 },
);

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

test('Content-Security-Policy: the app, sign-in, a QR code and Swagger UI run with no violation', async (h) => {
  const user = await apiUser(BASE, 'csp');
  const page = await h.page(BASE);
  const doc = await page.goto('/', { waitUntil: 'commit' });
  const csp = (await doc.allHeaders())['content-security-policy'] ?? '';
  const scriptSrc = csp.split(';').map((d) => d.trim()).find((d) => d.startsWith('script-src ')) ?? '';
  assert(/'sha256-[A-Za-z0-9+/]+=*'/.test(scriptSrc), `the boot script is allowed by hash: ${csp}`);
  assert(!/'unsafe-inline'|'unsafe-eval'/.test(scriptSrc), `no inline or eval'd script: ${csp}`);
  await page.locator('#app-root').waitFor();
  await signIn(page, user);
  const token = await storedToken(page);
  assert(token, 'the token is kept in localStorage');
  // A QR code is inline SVG markup; the checkout starts an event stream.
  const orderNo = await startCheckout(page, { productId: 1, method: 'alipay' });
  await page.locator(`[data-testid=qr-code][data-order-no="${orderNo}"] svg`).waitFor();

  // The policy is enforced and the detector works: a script injected into the page (as an
  // XSS would) does not run, and its violation is seen.
  const ran = await page.evaluate(() => {
    const s = document.createElement('script');
    s.textContent = 'window.__injected = localStorage.getItem("fenpay.token");';
    document.head.append(s);
    return window.__injected !== undefined;
  });
  assert(!ran, 'an injected inline script ran');
  // Reported twice (the page's event and Chromium's console), each in its own time.
  await eventually(() => h.csp.filter((v) => /script-src/.test(v)).length >= 2, {
    message: 'the injected script reported as a violation',
  });
  h.csp.length = 0;

  await page.goto('/docs/', { waitUntil: 'commit' });
  const op = page.locator('.opblock-summary-path[data-path="/api/v1/payment/create-order"]');
  await op.first().click();
  await page.locator('.opblock.is-open .responses-wrapper').first().waitFor();
  // The Swagger logo (an inline SVG <style>) has loaded by now.
  await page.locator('.topbar svg, .topbar img').first().waitFor();
  await sleep(500);
  assert(h.csp.length === 0, `Content-Security-Policy violations: ${h.csp.join(' | ')}`);
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
