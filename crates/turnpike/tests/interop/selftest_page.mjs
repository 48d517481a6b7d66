#!/usr/bin/env node
// Drives turnpike's browser self-test page (GET /selftest on the admin listener) in headless
// Debian Chromium, as an operator would, and reports what the page shows.
//
//   node selftest_page.mjs --page http://127.0.0.1:PORT/selftest --token ADMIN_TOKEN
//        [--mode ok|wrong-credential] [--spki-list BASE64] [--screenshot FILE.png]
//        [--timeout-ms 90000] [--chromium /usr/bin/chromium]
//
// --mode ok: types the token, clicks "Gather candidates", then "Call through the relay" once
// per TURN URL the page lists. --mode wrong-credential: first a wrong admin token (the page
// must say 401), then the right token with a wrong credential typed in; gathers and calls.
// Prints ONE line of JSON on stdout: what the DOM shows (verdicts, their data attributes, the
// gathering rows) and how long each step took. It judges nothing: tests/selftest_page.rs does.
// Exit code: 0 the steps ran, 1 a step failed to run (a wait ran out), 2 usage or launch error.
// Every wait is bounded; --timeout-ms bounds the whole run, browser included.

import { launch, timeout } from './chromium.mjs';

const started = Date.now();

function usage(msg) {
  console.error(`selftest_page: ${msg}`);
  console.log(JSON.stringify({ ran: false, failures: [`usage: ${msg}`] }));
  process.exit(2);
}

function parseArgs(argv) {
  const opts = {
    page: null,
    token: null,
    mode: 'ok',
    spkiList: null,
    screenshot: null,
    timeoutMs: 90000,
    chromium: process.env.TURNPIKE_CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i += 2) {
    const [key, val] = [argv[i], argv[i + 1]];
    if (val === undefined) usage(`missing value for ${key}`);
    switch (key) {
      case '--page': opts.page = val; break;
      case '--token': opts.token = val; break;
      case '--mode': opts.mode = val; break;
      case '--spki-list': opts.spkiList = val; break;
      case '--screenshot': opts.screenshot = val; break;
      case '--timeout-ms': opts.timeoutMs = Number(val); break;
      case '--chromium': opts.chromium = val; break;
      default: usage(`unknown option ${key}`);
    }
  }
  if (!opts.page || opts.token === null) usage('--page and --token are required');
  if (!/^http:\/\/(127\.\d+\.\d+\.\d+|\[::1\]):\d+\/selftest$/.test(opts.page)) usage('--page must be http://<loopback>:PORT/selftest');
  if (!['ok', 'wrong-credential'].includes(opts.mode)) usage('--mode is ok or wrong-credential');
  return opts;
}

/** What a verdict element shows: its status, text and data attributes. */
async function readVerdict(page, id) {
  return page.$eval(`#${id}`, (el) => ({ ...el.dataset, text: el.textContent }));
}

/** The gathering table's rows: data attributes and cell texts. */
async function readRows(page) {
  return page.$$eval('#gathering tbody tr', (trs) => trs.map((tr) => ({
    ...tr.dataset,
    url: tr.querySelector('.url')?.textContent,
    result: tr.querySelector('.result')?.textContent,
  })));
}

async function readCallDetails(page) {
  return page.$eval('dl', (dl) => Object.fromEntries(
    [...dl.querySelectorAll('dd')].map((dd) => [dd.id.replace(/^call-/, ''), dd.textContent]),
  ));
}

/** Clicks `button` and waits (bounded) until its run is over: buttons enabled again. */
async function clickAndWait(page, button, verdictId, ms) {
  const t = Date.now();
  await page.click(`#${button}`);
  await page.waitForFunction(
    ([b, v]) => !document.getElementById(b).disabled && ['pass', 'fail'].includes(document.getElementById(v).dataset.status),
    [button, verdictId],
    { timeout: ms, polling: 50 },
  );
  return Date.now() - t;
}

async function scenario(page, opts, out) {
  if (opts.mode === 'wrong-credential') {
    await page.fill('#token', `${opts.token}-wrong`);
    const ms = await clickAndWait(page, 'gather', 'gather-verdict', 15000);
    out.wrongToken = { ms, gather: await readVerdict(page, 'gather-verdict') };
    await page.fill('#credential', 'not-the-credential');
  }
  await page.fill('#token', opts.token);
  const gatherMs = await clickAndWait(page, 'gather', 'gather-verdict', 30000);
  out.gather = { ms: gatherMs, verdict: await readVerdict(page, 'gather-verdict'), rows: await readRows(page) };
  out.servers = await page.textContent('#servers');
  const urls = await page.$$eval('#call-url option', (os) => os.map((o) => o.value).filter(Boolean));
  out.calls = [];
  for (const url of opts.mode === 'ok' ? urls : urls.slice(0, 1)) {
    await page.selectOption('#call-url', url);
    const ms = await clickAndWait(page, 'call', 'call-verdict', 30000);
    out.calls.push({ url, ms, verdict: await readVerdict(page, 'call-verdict'), details: await readCallDetails(page) });
  }
  out.tokenKept = await page.evaluate(() => sessionStorage.getItem('turnpike-admin-token') !== null);
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const left = () => Math.max(1000, started + opts.timeoutMs - Date.now());
  const out = { mode: opts.mode, page: opts.page };
  let chromium = null;
  let exitCode = 1;
  let printed = false;
  const print = () => {
    if (printed) return;
    printed = true;
    out.elapsedMs = Date.now() - started;
    process.stdout.write(`${JSON.stringify(out)}\n`);
  };
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.once(sig, () => {
      out.ran = false;
      out.failures = [...(out.failures || []), `harness: ${sig}`];
      (chromium ? chromium.close() : Promise.resolve()).finally(() => { print(); process.exit(3); });
    });
  }
  try {
    chromium = await launch({ executablePath: opts.chromium, spkiList: opts.spkiList, timeoutMs: Math.min(30000, left()) });
    out.browserVersion = chromium.browser.version();
    const page = await chromium.browser.newPage({ viewport: { width: 1100, height: 900 } });
    page.setDefaultTimeout(Math.min(15000, left()));
    page.on('console', (m) => console.error(`page ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await page.goto(opts.page);
    const t = timeout(left() - 5000, 'page scenario');
    await Promise.race([scenario(page, opts, out), t]);
    t.cancel();
    out.log = await page.textContent('#log');
    if (opts.screenshot) await page.screenshot({ path: opts.screenshot, fullPage: true });
    out.ran = true;
    exitCode = 0;
  } catch (e) {
    out.ran = false;
    out.failures = [`harness: ${e && e.message ? e.message.split('\n')[0] : e}`];
    console.error(e && e.stack ? e.stack : e);
    exitCode = out.browserVersion ? 1 : 2;
  } finally {
    if (chromium) await chromium.close();
  }
  print();
  process.exitCode = exitCode;
}

// A last resort if something inside playwright hangs past the deadline.
const hard = setTimeout(() => {
  console.log(JSON.stringify({ ran: false, failures: ['harness: hard timeout'], elapsedMs: Date.now() - started }));
  process.exit(4);
}, (() => {
  const i = process.argv.indexOf('--timeout-ms');
  return (i > 0 ? Number(process.argv[i + 1]) || 90000 : 90000) + 8000;
})());
hard.unref();

main();
