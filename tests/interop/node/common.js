'use strict';
// Shared helpers for the npm SDK interop scripts: environment, keys, checks, a local
// notify_url listener and the emulator's control API.
const crypto = require('node:crypto');
const fs = require('node:fs');
const http = require('node:http');
const path = require('node:path');

const emulator = (process.env.FENPAY_EMULATOR_URL || 'http://127.0.0.1:8090').replace(/\/$/, '');
const keysDir = process.env.FENPAY_DEV_KEYS || 'data/dev-keys';

let passed = 0;
function check(condition, what) {
  if (!condition) throw new Error(`FAILED: ${what}`);
  passed += 1;
  console.log(`ok   ${what}`);
}

function readKey(name) {
  return fs.readFileSync(path.join(keysDir, name), 'utf8');
}

function readText(name) {
  return fs.readFileSync(path.join(keysDir, name), 'utf8').trim();
}

/** The SPKI PEM public half of a PEM private key. */
function publicPem(privatePem) {
  return crypto.createPublicKey(privatePem).export({ type: 'spki', format: 'pem' });
}

function unique(prefix) {
  return `${prefix}${Date.now()}${crypto.randomInt(1000, 9999)}`;
}

/** JSON call to the emulator's control API: { status, body }. */
async function control(method, urlPath, body) {
  const resp = await fetch(`${emulator}${urlPath}`, {
    method,
    headers: { 'content-type': 'application/json' },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await resp.text();
  let parsed = text;
  try { parsed = JSON.parse(text); } catch { /* not JSON */ }
  return { status: resp.status, body: parsed, headers: resp.headers };
}

/**
 * A merchant notify_url on a local port. `handle(headers, rawBody)` decides the answer:
 * it returns { status, body } and may record what it saw.
 */
async function listener(handle) {
  const seen = [];
  const server = http.createServer((req, res) => {
    const chunks = [];
    req.on('data', (c) => chunks.push(c));
    req.on('end', async () => {
      const raw = Buffer.concat(chunks).toString('utf8');
      let answer;
      try {
        answer = await handle(req.headers, raw);
      } catch (e) {
        console.log(`     notify handler raised ${e}`);
        answer = { status: 500, body: 'fail', accepted: false };
      }
      seen.push({ headers: req.headers, raw, ...answer });
      res.writeHead(answer.status, { 'content-type': 'text/plain' });
      res.end(answer.body);
    });
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const url = `http://127.0.0.1:${server.address().port}/notify`;
  async function waitFor(predicate, timeoutMs = 30000) {
    const deadline = Date.now() + timeoutMs;
    while (Date.now() < deadline) {
      const hit = seen.find(predicate);
      if (hit) return hit;
      await new Promise((r) => setTimeout(r, 100));
    }
    throw new Error('FAILED: no matching notification arrived in time');
  }
  return { url, seen, waitFor, close: () => server.close() };
}

function done(name) {
  console.log(`${name}: ${passed} checks passed`);
}

module.exports = { emulator, check, readKey, readText, publicPem, unique, control, listener, done };
