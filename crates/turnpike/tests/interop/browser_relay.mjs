#!/usr/bin/env node
// Headless Debian Chromium against a TURN server, driven by playwright-core.
//
//   node browser_relay.mjs --turn 127.0.0.1:PORT --user U --pass P --expect ok|auth-error|cert-error
//        [--transport udp|tcp|tls] [--spki-list BASE64] [--relay-ports A-B] [--messages 50]
//        [--timeout-ms 45000] [--chromium /usr/bin/chromium]
//        [--topology relay-pair|relay-to-host] [--media-ms 0]
//
// --topology relay-pair (the default): both peer connections are relay-only through the
// server, so it relays to its own relayed address. relay-to-host: only pc1 uses the server
// (relay only, over UDP); pc2 has no ICE server and offers its host candidates, so the server
// relays between pc1 and a peer that is not itself; media then goes both ways, and pc1's
// selected pair must be relay <-> host, pc2's host <-> relay. --media-ms N: after media
// flows, inbound-rtp packets and bytes must grow on every receiving side over N ms.
// relay-to-host runs Chromium with --webrtc-ip-handling-policy=default and grants the page
// camera and microphone permission: only then does Chromium gather host candidates on every
// interface (with INTEROP.md's policy it gathers on the default route's interface only).
// --transport picks the ICE server URL: udp `turn:H:P?transport=udp` (the default), tcp
// `turn:H:P?transport=tcp`, tls `turns:H:P?transport=tcp`; the selected relay candidate's
// `relayProtocol` must then be udp, tcp or tls. --spki-list is passed to Chromium as
// `--ignore-certificate-errors-spki-list` (base64 SHA-256 of a self-signed certificate's
// SubjectPublicKeyInfo), which is what makes it accept the test's certificate for turns:.
// --expect cert-error: the TLS handshake is refused (no --spki-list for a self-signed
// certificate), so the page must see icecandidateerror 701 for the turns: URL and gather nothing.
//
// Serves relay_page.html from http://127.0.0.1:<free port>/, launches Chromium with an explicit
// command line (shared/design/INTEROP.md) and a fresh --user-data-dir, runs the scenario in the
// page and prints ONE line of JSON on stdout: the page's figures plus `pass` and `failures`.
// Exit code: 0 pass, 1 fail, 2 usage or launch error. Diagnostics go to stderr.
// Every wait is bounded; --timeout-ms bounds the whole run, browser included.

import { chromium } from 'playwright-core';
import { chromiumArgs } from './chromium.mjs';
import { createServer } from 'node:http';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { dirname, join } from 'node:path';
import { fileURLToPath } from 'node:url';

const here = dirname(fileURLToPath(import.meta.url));
const started = Date.now();

function parseArgs(argv) {
  const opts = {
    turn: null,
    user: null,
    pass: null,
    expect: 'ok',
    transport: 'udp',
    spkiList: null,
    relayPorts: null,
    messages: 50,
    timeoutMs: 45000,
    topology: 'relay-pair',
    mediaMs: 0,
    chromium: process.env.TURNPIKE_CHROMIUM || '/usr/bin/chromium',
  };
  for (let i = 0; i < argv.length; i++) {
    const key = argv[i];
    const val = argv[i + 1];
    if (val === undefined) usage(`missing value for ${key}`);
    i++;
    switch (key) {
      case '--turn': opts.turn = val; break;
      case '--user': opts.user = val; break;
      case '--pass': opts.pass = val; break;
      case '--expect': opts.expect = val; break;
      case '--transport': opts.transport = val; break;
      case '--spki-list': opts.spkiList = val; break;
      case '--relay-ports': {
        const m = /^(\d+)-(\d+)$/.exec(val);
        if (!m) usage('--relay-ports wants A-B');
        opts.relayPorts = [Number(m[1]), Number(m[2])];
        break;
      }
      case '--messages': opts.messages = Number(val); break;
      case '--timeout-ms': opts.timeoutMs = Number(val); break;
      case '--topology': opts.topology = val; break;
      case '--media-ms': opts.mediaMs = Number(val); break;
      case '--chromium': opts.chromium = val; break;
      default: usage(`unknown option ${key}`);
    }
  }
  if (!opts.turn || opts.user === null || opts.pass === null) usage('--turn, --user and --pass are required');
  if (!['ok', 'auth-error', 'cert-error'].includes(opts.expect)) usage('--expect is ok, auth-error or cert-error');
  if (!['udp', 'tcp', 'tls'].includes(opts.transport)) usage('--transport is udp, tcp or tls');
  if (!['relay-pair', 'relay-to-host'].includes(opts.topology)) usage('--topology is relay-pair or relay-to-host');
  if (!(opts.mediaMs >= 0 && opts.mediaMs <= 60000)) usage('--media-ms wants 0..60000');
  if (opts.spkiList !== null && !/^[A-Za-z0-9+/=,]+$/.test(opts.spkiList)) usage('--spki-list wants base64 hashes');
  // Loopback, or 198.18.0.0/15 (RFC 2544's benchmarking range): the "public" addresses of
  // the network namespace labs (nat_lab/mod.rs), where this script runs inside a client's
  // namespace and reaches nothing else.
  const m = /^(127\.\d+\.\d+\.\d+|\[::1\]|198\.1[89]\.\d+\.\d+):(\d+)$/.exec(opts.turn);
  if (!m) usage('--turn must be a loopback HOST:PORT (127.x.x.x or [::1]) or a lab address (198.18.0.0/15)');
  return opts;
}

function usage(msg) {
  console.error(`browser_relay: ${msg}`);
  console.log(JSON.stringify({ pass: false, failures: [`usage: ${msg}`] }));
  process.exit(2);
}

/** The ICE server URL for a transport: udp, tcp (TURN over TCP) or tls (TURN over TLS). */
function turnUrl(transport, host, port) {
  switch (transport) {
    case 'tcp': return `turn:${host}:${port}?transport=tcp`;
    case 'tls': return `turns:${host}:${port}?transport=tcp`;
    default: return `turn:${host}:${port}?transport=udp`;
  }
}

/** Serves relay_page.html on 127.0.0.1:<free port>. */
function startPageServer() {
  const page = readFileSync(join(here, 'relay_page.html'));
  const server = createServer((req, res) => {
    if (req.method === 'GET' && (req.url === '/' || req.url === '/relay_page.html')) {
      res.writeHead(200, { 'content-type': 'text/html; charset=utf-8', 'cache-control': 'no-store' });
      res.end(page);
    } else if (req.url === '/favicon.ico') {
      res.writeHead(204);
      res.end();
    } else {
      res.writeHead(404, { 'content-type': 'text/plain' });
      res.end('not found');
    }
  });
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(server));
  });
}

function timeout(ms, what) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  p.cancel = () => clearTimeout(timer);
  return p;
}

/** The verdict on the page's figures; `failures` lists every unmet criterion. */
function judge(opts, r) {
  const f = [];
  if (r.errors && r.errors.length) f.push(...r.errors.map((e) => `page: ${e}`));
  if (opts.expect === 'ok') {
    const toHost = opts.topology === 'relay-to-host';
    // Which side of each selected pair is a relay: both everywhere, or pc1's local and
    // pc2's remote only when pc2 is a plain host.
    const want = toHost
      ? { pc1: ['relay', 'host'], pc2: ['host', 'relay'] }
      : { pc1: ['relay', 'relay'], pc2: ['relay', 'relay'] };
    for (const name of ['pc1', 'pc2']) {
      const pc = r[name] || {};
      const sp = pc.selectedPair;
      const [local, remote] = want[name];
      if (!sp) { f.push(`${name}: no selected candidate pair`); continue; }
      if (sp.local?.candidateType !== local) f.push(`${name}: local candidate is ${sp.local?.candidateType}, not ${local}`);
      if (sp.remote?.candidateType !== remote) f.push(`${name}: remote candidate is ${sp.remote?.candidateType}, not ${remote}`);
      if (sp.local?.protocol !== 'udp') f.push(`${name}: local candidate protocol is ${sp.local?.protocol}, not udp`);
      if (local !== 'relay') continue;
      // relayProtocol is how the browser reaches the TURN server; the relayed candidate itself
      // is always UDP (RFC 8656 relays over UDP).
      if (sp.local?.relayProtocol !== opts.transport) f.push(`${name}: local relayProtocol is ${sp.local?.relayProtocol}, not ${opts.transport}`);
      if (opts.relayPorts) {
        const [a, b] = opts.relayPorts;
        const port = sp.local?.port;
        if (!(port >= a && port <= b)) f.push(`${name}: relayed port ${port} outside ${a}-${b}`);
      }
      const nonRelay = (pc.candidates || []).filter((c) => c.type !== 'relay');
      if (nonRelay.length) f.push(`${name}: gathered non-relay candidates ${JSON.stringify(nonRelay)}`);
    }
    // Each side's remote candidate is the other side's relayed address.
    const l1 = r.pc1?.selectedPair?.local;
    const rm1 = r.pc1?.selectedPair?.remote;
    const l2 = r.pc2?.selectedPair?.local;
    const rm2 = r.pc2?.selectedPair?.remote;
    if (l1 && rm2 && (l1.address !== rm2.address || l1.port !== rm2.port)) f.push('pc2 remote candidate is not pc1 local address');
    if (l2 && rm1 && (l2.address !== rm1.address || l2.port !== rm1.port)) f.push('pc1 remote candidate is not pc2 local address');
    const dc = r.dataChannel || {};
    if (!dc.intactA2B) f.push(`datachannel pc1->pc2: ${dc.receivedA2B}/${dc.sentEachWay} intact messages`);
    if (!dc.intactB2A) f.push(`datachannel pc2->pc1: ${dc.receivedB2A}/${dc.sentEachWay} intact messages`);
    const v = r.media?.receiver?.video;
    const a = r.media?.receiver?.audio;
    if (!v || !(v.framesDecoded > 0)) f.push(`video: framesDecoded ${v?.framesDecoded} at pc2`);
    if (!a || !(a.packetsReceived > 0)) f.push(`audio: packetsReceived ${a?.packetsReceived} at pc2`);
    if (toHost) {
      const v1 = r.media?.pc1Receiver?.video;
      const a1 = r.media?.pc1Receiver?.audio;
      if (!v1 || !(v1.framesDecoded > 0)) f.push(`video: framesDecoded ${v1?.framesDecoded} at pc1`);
      if (!a1 || !(a1.packetsReceived > 0)) f.push(`audio: packetsReceived ${a1?.packetsReceived} at pc1`);
    }
    if (opts.mediaMs > 0) {
      const w = r.media?.window || {};
      for (const name of toHost ? ['pc2', 'pc1'] : ['pc2']) {
        if (w[name]?.grew !== true) f.push(`media window: inbound-rtp at ${name} did not grow over ${opts.mediaMs} ms`);
      }
    }
  } else if (opts.expect === 'cert-error') {
    const errs = r.pc1?.candidateErrors || [];
    const codes = JSON.stringify(errs.map((e) => [e.errorCode, e.url]));
    if (!errs.some((e) => e.errorCode === 701 && String(e.url).startsWith('turns:'))) f.push(`no icecandidateerror 701 for the turns: URL (got ${codes})`);
    if (errs.some((e) => e.errorCode === 401)) f.push(`a 401 came back: the TLS handshake went through (${codes})`);
    const relays = (r.pc1?.candidates || []).filter((c) => c.type === 'relay');
    if (relays.length) f.push(`gathered ${relays.length} relay candidates through an untrusted certificate`);
  } else {
    const errs = r.pc1?.candidateErrors || [];
    if (!errs.some((e) => e.errorCode === 401)) f.push(`no icecandidateerror 401 (got ${JSON.stringify(errs.map((e) => e.errorCode))})`);
    const relays = (r.pc1?.candidates || []).filter((c) => c.type === 'relay');
    if (relays.length) f.push(`gathered ${relays.length} relay candidates with wrong credentials`);
  }
  return f;
}

async function main() {
  const opts = parseArgs(process.argv.slice(2));
  const toHost = opts.topology === 'relay-to-host';
  const deadline = started + opts.timeoutMs;
  const left = () => Math.max(1000, deadline - Date.now());
  const userDataDir = mkdtempSync(join(tmpdir(), 'turnpike-chromium-'));
  let server = null;
  let browser = null;
  const out = { expect: opts.expect, turn: opts.turn, transport: opts.transport };
  let exitCode = 1;

  // Idempotent: a signal and main() may both ask for it.
  let cleaning = null;
  const cleanup = () => {
    cleaning ??= (async () => {
      if (browser) {
        const t = timeout(5000, 'browser.close');
        await Promise.race([browser.close(), t]).catch((e) => console.error(`browser_relay: ${e.message}`));
        t.cancel();
      }
      if (server) {
        server.closeAllConnections?.();
        server.close();
      }
      try {
        rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      } catch (e) {
        console.error(`browser_relay: could not remove ${userDataDir}: ${e.message}`);
      }
    })();
    return cleaning;
  };
  let printed = false;
  const print = () => {
    if (printed) return;
    printed = true;
    out.elapsedMs = Date.now() - started;
    process.stdout.write(`${JSON.stringify(out)}\n`);
  };
  for (const sig of ['SIGTERM', 'SIGINT']) {
    process.once(sig, () => {
      console.error(`browser_relay: ${sig}, closing`);
      out.pass = false;
      out.failures = [...(out.failures || []), `harness: ${sig}`];
      cleanup().finally(() => {
        print();
        process.exit(3);
      });
    });
  }

  try {
    server = await startPageServer();
    const pageUrl = `http://127.0.0.1:${server.address().port}/`;
    browser = await chromium.launch({
      executablePath: opts.chromium,
      ignoreDefaultArgs: true,
      args: toHost
        ? chromiumArgs(userDataDir, opts.spkiList, 'default')
        : chromiumArgs(userDataDir, opts.spkiList),
      timeout: Math.min(30000, left()),
      // We handle signals ourselves so that the browser and the temp dir both go.
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: true,
    });
    out.browserVersion = browser.version();
    const context = await browser.newContext();
    // Lets Chromium enumerate every interface for pc2's host candidates (see the header).
    if (toHost) await context.grantPermissions(['camera', 'microphone'], { origin: pageUrl.slice(0, -1) });
    const page = await context.newPage();
    page.setDefaultTimeout(Math.min(15000, left()));
    page.on('console', (m) => console.error(`page ${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => console.error(`page error: ${e.message}`));
    await page.goto(pageUrl);
    const [host, port] = opts.turn.startsWith('[')
      ? [opts.turn.slice(0, opts.turn.lastIndexOf(':')), opts.turn.slice(opts.turn.lastIndexOf(':') + 1)]
      : opts.turn.split(':');
    const budget = left() - 3000; // keep time to close the browser
    const cfg = {
      expect: opts.expect,
      topology: opts.topology,
      mediaMs: opts.mediaMs,
      turnUrl: turnUrl(opts.transport, host, port),
      username: opts.user,
      credential: opts.pass,
      messages: opts.messages,
      messageBytes: 200,
      minFrames: 10,
      minAudioPackets: 25,
      graceMs: 1000,
      connectTimeoutMs: Math.max(1000, Math.min(20000, budget / 3)),
      stepTimeoutMs: Math.max(1000, Math.min(10000, budget / 4)),
    };
    out.turnUrl = cfg.turnUrl;
    const t = timeout(budget, 'page scenario');
    const result = await Promise.race([page.evaluate((c) => window.turnpikeRelay.run(c), cfg), t]);
    t.cancel();
    Object.assign(out, result);
    out.failures = judge(opts, result);
    out.pass = out.failures.length === 0;
    exitCode = out.pass ? 0 : 1;
  } catch (e) {
    out.pass = false;
    out.failures = [...(out.failures || []), `harness: ${e && e.message ? e.message.split('\n')[0] : e}`];
    console.error(e && e.stack ? e.stack : e);
    exitCode = out.browserVersion ? 1 : 2;
  } finally {
    await cleanup();
  }
  print();
  process.exitCode = exitCode;
}

// A last resort if something inside playwright hangs past the deadline.
const hard = setTimeout(() => {
  console.log(JSON.stringify({ pass: false, failures: ['harness: hard timeout'], elapsedMs: Date.now() - started }));
  process.exit(4);
}, (() => {
  const i = process.argv.indexOf('--timeout-ms');
  return (i > 0 ? Number(process.argv[i + 1]) || 45000 : 45000) + 8000;
})());
hard.unref();

main();
