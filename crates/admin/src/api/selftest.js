// turnpike's browser self-test (served at /selftest.js by the admin API; no secret here).
// Gathers relay candidates per TURN URL and calls through the relay between two peer
// connections in this page. Every wait is bounded; a failure turns its verdict red.
'use strict';

const TOKEN_KEY = 'turnpike-admin-token';
const GATHER_TIMEOUT_MS = 10000;
const CALL_TIMEOUT_MS = 20000;
const ECHO_TIMEOUT_MS = 5000;
const MESSAGES = 20;
const MESSAGE_BYTES = 1000;

const $ = (id) => document.getElementById(id);
const t0 = performance.now();

function log(line) {
  $('log').textContent += `${((performance.now() - t0) / 1000).toFixed(2)} s  ${line}\n`;
}

function verdict(id, status, text, data = {}) {
  const v = $(id);
  v.dataset.status = status;
  v.textContent = text;
  Object.assign(v.dataset, data);
}

/** udp, tcp or tls: how the browser reaches the server with this URL (RFC 7065). */
function transportOf(url) {
  if (url.startsWith('turns:')) return 'tls';
  return /[?&]transport=tcp/i.test(url) ? 'tcp' : 'udp';
}

function describeError(e) {
  return `${e.errorCode} ${(e.errorText || '').replace(/\.$/, '')}`.trim();
}

/** Asks the admin API for iceServers; the credential fields override what it minted. */
async function fetchServers() {
  const token = $('token').value.trim();
  const headers = token ? { authorization: `Bearer ${token}` } : {};
  const res = await fetch('/v1/selftest/ice-servers', { method: 'POST', headers, cache: 'no-store' });
  let body = {};
  try { body = await res.json(); } catch { /* a non-JSON error: the status says enough */ }
  if (!res.ok) throw new Error(`admin API answered ${res.status}: ${body.error || res.statusText}`);
  const turn = (body.iceServers || []).find((s) => s.urls.some((u) => /^turns?:/.test(u)));
  if (!turn) throw new Error('the server has no TURN URL (no listener?)');
  const urls = turn.urls.filter((u) => /^turns?:/.test(u));
  const username = $('username').value || turn.username || '';
  const credential = $('credential').value || turn.credential || '';
  const typed = Boolean($('username').value || $('credential').value);
  $('servers').textContent = body.minted
    ? `Credential minted for ${turn.username}, valid ${body.ttl} s (realm ${body.realm})`
      + (typed ? '; overridden by the fields above.' : '.')
    : `${body.hint} (realm ${body.realm}).`;
  if (!username || !credential) throw new Error(body.hint || 'no username or credential');
  const select = $('call-url');
  const chosen = select.value;
  select.replaceChildren(...urls.map((u) => new Option(`${transportOf(u)}: ${u}`, u)));
  if (urls.includes(chosen)) select.value = chosen;
  return { urls, username, credential };
}

/** One relay-only peer connection against `url`: its first relay candidate or its errors. */
function gatherOne(url, username, credential) {
  return new Promise((resolve) => {
    const start = performance.now();
    const out = { url, transport: transportOf(url), relay: null, errors: [], end: null };
    const pc = new RTCPeerConnection({ iceServers: [{ urls: [url], username, credential }], iceTransportPolicy: 'relay' });
    const timer = setTimeout(() => finish('timeout'), GATHER_TIMEOUT_MS);
    function finish(end) {
      if (out.end) return;
      clearTimeout(timer);
      out.end = end;
      out.ms = Math.round(performance.now() - start);
      pc.close();
      resolve(out);
    }
    pc.onicecandidate = (e) => {
      if (!e.candidate) return out.relay || finish('complete');
      const c = e.candidate;
      if (c.type !== 'relay' || out.relay) return;
      out.relay = { address: c.address, port: c.port, relayProtocol: c.relayProtocol || null };
      // The event's relayProtocol may be null (Chromium 156 gives null for udp); the
      // local-candidate stats carry it.
      pc.getStats().then((stats) => stats.forEach((st) => {
        if (st.type === 'local-candidate' && st.candidateType === 'relay' && st.port === c.port) {
          out.relay.relayProtocol = st.relayProtocol || out.relay.relayProtocol;
        }
      })).catch((x) => log(`${url}: getStats: ${x}`)).finally(() => finish('relay'));
    };
    pc.onicecandidateerror = (e) => {
      out.errors.push({ errorCode: e.errorCode, errorText: e.errorText, url: e.url });
      log(`${url}: icecandidateerror ${describeError(e)}`);
    };
    pc.onicegatheringstatechange = () => {
      if (pc.iceGatheringState === 'complete' && !out.relay) finish('complete');
    };
    pc.createDataChannel('probe');
    pc.createOffer().then((o) => pc.setLocalDescription(o)).catch((e) => {
      out.errors.push({ errorCode: 0, errorText: String(e) });
      finish('error');
    });
  });
}

function gatherRow(r) {
  const tr = document.createElement('tr');
  const ok = r.relay !== null && r.relay.relayProtocol === r.transport;
  tr.dataset.transport = r.transport;
  tr.dataset.status = ok ? 'pass' : 'fail';
  let result;
  if (ok) {
    result = 'relay candidate';
  } else if (r.relay) {
    result = `relayProtocol ${r.relay.relayProtocol}, expected ${r.transport}`;
  } else {
    const e = r.errors.find((x) => x.errorCode >= 300 && x.errorCode < 700) || r.errors[0];
    if (e) tr.dataset.errorCode = String(e.errorCode);
    const why = e ? describeError(e) : 'no error reported';
    result = r.end === 'timeout' ? `timeout after ${GATHER_TIMEOUT_MS / 1000} s (${why})` : `no relay candidate: ${why}`;
  }
  if (r.relay) {
    tr.dataset.relayAddress = `${r.relay.address}:${r.relay.port}`;
    tr.dataset.relayProtocol = r.relay.relayProtocol ?? '';
  }
  const cells = [r.transport, r.url, result, tr.dataset.relayAddress || '-', tr.dataset.relayProtocol || '-', String(r.ms)];
  cells.forEach((text, i) => {
    const td = document.createElement('td');
    td.textContent = text;
    td.className = ['transport', 'url', 'result', 'relay', 'relay-protocol', 'ms'][i];
    tr.append(td);
  });
  return { tr, ok, result };
}

async function runGather() {
  verdict('gather-verdict', 'running', 'Gathering…');
  const body = $('gathering').tBodies[0];
  body.replaceChildren();
  try {
    const s = await fetchServers();
    const results = await Promise.all(s.urls.map((u) => gatherOne(u, s.username, s.credential)));
    const rows = results.map(gatherRow);
    body.replaceChildren(...rows.map((r) => r.tr));
    const bad = rows.filter((r) => !r.ok).map((r) => `${r.tr.dataset.transport}: ${r.result}`);
    const names = results.map((r) => r.transport).join(', ');
    if (bad.length) verdict('gather-verdict', 'fail', `FAIL — ${bad.join('; ')}`);
    else verdict('gather-verdict', 'pass', `PASS — a relay candidate over every transport (${names})`);
  } catch (e) {
    verdict('gather-verdict', 'fail', `FAIL — ${e.message}`);
  }
  log(`gathering: ${$('gather-verdict').textContent}`);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

/** Trickles `from`'s candidates to `to`, holding them until `to` has a remote description. */
function trickle(from, to, rec) {
  const held = [];
  from.onicecandidate = (e) => {
    if (!e.candidate || !e.candidate.candidate) return;
    rec.candidates += 1;
    if (to.remoteDescription) to.addIceCandidate(e.candidate).catch((x) => log(`addIceCandidate: ${x}`));
    else held.push(e.candidate);
  };
  from.onicecandidateerror = (e) => {
    rec.errors.push(e);
    rec.firstErrorAt ??= performance.now();
  };
  return () => held.splice(0).forEach((c) => to.addIceCandidate(c).catch((x) => log(`addIceCandidate: ${x}`)));
}

/** The selected candidate pair of `pc` and its candidates, from getStats(). */
async function selectedPair(pc) {
  const stats = await pc.getStats();
  let pair = null;
  stats.forEach((s) => {
    if (s.type === 'transport' && s.selectedCandidatePairId) pair ??= stats.get(s.selectedCandidatePairId);
  });
  stats.forEach((s) => {
    if (!pair && s.type === 'candidate-pair' && s.nominated && s.state === 'succeeded') pair = s;
  });
  if (!pair) return null;
  return { pair, local: stats.get(pair.localCandidateId), remote: stats.get(pair.remoteCandidateId) };
}

async function openChannel(pc1, pc2, dc, rec) {
  const end = performance.now() + CALL_TIMEOUT_MS;
  while (dc.readyState !== 'open') {
    const now = performance.now();
    if (now > end) throw new Error(`no connection within ${CALL_TIMEOUT_MS / 1000} s`);
    if ([pc1, pc2].some((pc) => pc.iceConnectionState === 'failed')) throw new Error('ICE failed');
    const gathered = pc1.iceGatheringState === 'complete' && pc2.iceGatheringState === 'complete';
    const refused = rec.firstErrorAt !== undefined && now - rec.firstErrorAt > 1500;
    if (rec.candidates === 0 && (gathered || refused)) {
      const e = rec.errors.find((x) => x.errorCode >= 300 && x.errorCode < 700) || rec.errors[0];
      throw Object.assign(new Error(`no relay candidate: ${e ? describeError(e) : 'none gathered'}`), { code: e?.errorCode });
    }
    await sleep(50);
  }
}

/** Sends MESSAGES messages, each echoed by the other side; their round-trip times in ms. */
async function echo(dc) {
  const rtts = [];
  for (let i = 0; i < MESSAGES; i++) {
    const text = `${i}:`.padEnd(MESSAGE_BYTES, 'x');
    const back = new Promise((resolve, reject) => {
      const timer = setTimeout(() => reject(new Error(`message ${i} not echoed within ${ECHO_TIMEOUT_MS} ms`)), ECHO_TIMEOUT_MS);
      dc.onmessage = (m) => { clearTimeout(timer); resolve(m.data); };
    });
    const sent = performance.now();
    dc.send(text);
    if ((await back) !== text) throw new Error(`message ${i} came back altered`);
    rtts.push(performance.now() - sent);
  }
  return rtts;
}

async function runCall() {
  verdict('call-verdict', 'running', 'Calling…');
  for (const id of ['call-url-used', 'call-pair', 'call-relay-protocol', 'call-messages', 'call-rtt', 'call-dc-rtt', 'call-bytes']) $(id).textContent = '-';
  const pcs = [];
  try {
    const s = await fetchServers();
    const url = $('call-url').value || s.urls[0];
    $('call-url-used').textContent = url;
    const config = { iceServers: [{ urls: [url], username: s.username, credential: s.credential }], iceTransportPolicy: 'relay' };
    const pc1 = new RTCPeerConnection(config);
    const pc2 = new RTCPeerConnection(config);
    pcs.push(pc1, pc2);
    const rec = { candidates: 0, errors: [] };
    const flush1 = trickle(pc1, pc2, rec);
    const flush2 = trickle(pc2, pc1, rec);
    pc2.ondatachannel = (e) => { e.channel.onmessage = (m) => e.channel.send(m.data); };
    const dc = pc1.createDataChannel('selftest');
    await pc1.setLocalDescription(await pc1.createOffer());
    await pc2.setRemoteDescription(pc1.localDescription);
    flush1();
    await pc2.setLocalDescription(await pc2.createAnswer());
    await pc1.setRemoteDescription(pc2.localDescription);
    flush2();
    await openChannel(pc1, pc2, dc, rec);
    const rtts = await echo(dc);
    $('call-messages').textContent = `${rtts.length} of ${MESSAGES} (${MESSAGE_BYTES} bytes each)`;
    const median = rtts.sort((a, b) => a - b)[Math.floor(rtts.length / 2)];
    $('call-dc-rtt').textContent = `${median.toFixed(1)} ms`;
    const sel = await selectedPair(pc1);
    if (!sel) throw new Error('connected, but getStats() has no selected candidate pair');
    const { pair, local, remote } = sel;
    const rttMs = pair.currentRoundTripTime === undefined ? null : pair.currentRoundTripTime * 1000;
    $('call-pair').textContent = `${local.candidateType} ${local.address}:${local.port} ⇄ ${remote.candidateType} ${remote.address}:${remote.port}`;
    $('call-relay-protocol').textContent = local.relayProtocol ?? '-';
    $('call-rtt').textContent = rttMs === null ? 'not reported' : `${rttMs.toFixed(1)} ms`;
    $('call-bytes').textContent = `${pair.bytesSent} / ${pair.bytesReceived}`;
    const data = {
      transport: transportOf(url),
      localType: local.candidateType,
      remoteType: remote.candidateType,
      relayProtocol: local.relayProtocol ?? '',
      bytesSent: String(pair.bytesSent ?? 0),
      bytesReceived: String(pair.bytesReceived ?? 0),
      rttMs: rttMs === null ? '' : rttMs.toFixed(1),
      dcRttMs: median.toFixed(1),
    };
    const problems = [];
    if (local.candidateType !== 'relay' || remote.candidateType !== 'relay') problems.push(`pair is ${local.candidateType} ⇄ ${remote.candidateType}`);
    if (!(pair.bytesSent > 0 && pair.bytesReceived > 0)) problems.push('no bytes moved');
    if (problems.length) {
      verdict('call-verdict', 'fail', `FAIL — ${problems.join('; ')}`, data);
    } else {
      verdict('call-verdict', 'pass', `PASS — connected through the relay over ${data.transport}: `
        + `RTT ${$('call-rtt').textContent}, ${pair.bytesSent} bytes sent, ${pair.bytesReceived} received`, data);
    }
  } catch (e) {
    verdict('call-verdict', 'fail', `FAIL — ${e.message}`, e.code ? { errorCode: String(e.code) } : {});
  } finally {
    pcs.forEach((pc) => pc.close());
  }
  log(`call: ${$('call-verdict').textContent}`);
}

function guard(button, run) {
  button.addEventListener('click', async () => {
    for (const b of document.querySelectorAll('button')) b.disabled = true;
    try { await run(); } finally {
      for (const b of document.querySelectorAll('button')) b.disabled = false;
    }
  });
}

$('token').value = sessionStorage.getItem(TOKEN_KEY) || '';
$('token').addEventListener('input', () => sessionStorage.setItem(TOKEN_KEY, $('token').value));
$('form').addEventListener('submit', (e) => e.preventDefault());
guard($('gather'), runGather);
guard($('call'), runCall);
log('ready: paste the admin token, then Gather candidates or Call through the relay');
