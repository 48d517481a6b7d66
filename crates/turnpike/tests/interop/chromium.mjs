// Launching headless Debian Chromium for the interop scripts (shared/design/INTEROP.md):
// an explicit command line, a fresh --user-data-dir removed at the end, bounded close.

import { chromium } from 'playwright-core';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

/**
 * INTEROP.md's command line (with ::1 added to the resolver exclusions), plus the two flags
 * playwright itself needs with ignoreDefaultArgs, plus --ignore-certificate-errors-spki-list
 * when a self-signed certificate is to be accepted.
 *
 * `ipHandlingPolicy` is Chromium's --webrtc-ip-handling-policy. INTEROP.md's
 * `default_public_and_private_interfaces` gathers host candidates only on the interface of
 * the default route (none in a namespace without one). `default` enumerates every interface,
 * but only for a page granted camera or microphone permission.
 */
export function chromiumArgs(userDataDir, spkiList, ipHandlingPolicy = 'default_public_and_private_interfaces') {
  const extra = spkiList ? [`--ignore-certificate-errors-spki-list=${spkiList}`] : [];
  // For debugging only, e.g. TURNPIKE_CHROMIUM_ARGS='--enable-logging=stderr --v=1'.
  extra.push(...(process.env.TURNPIKE_CHROMIUM_ARGS || '').split(/\s+/).filter(Boolean));
  return [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    `--user-data-dir=${userDataDir}`,
    '--disable-features=WebRtcHideLocalIpsWithMdns',
    `--webrtc-ip-handling-policy=${ipHandlingPolicy}`,
    // TURN over TCP/TLS connects through Chromium's host resolver even for an IP literal, so
    // ::1 must be excluded too (written without brackets), else `turn:[::1]:P?transport=tcp`
    // fails with ERR_NAME_NOT_RESOLVED (icecandidateerror 701). UDP does not resolve.
    '--host-resolver-rules=MAP * ~NOTFOUND , EXCLUDE localhost , EXCLUDE 127.0.0.1 , EXCLUDE ::1',
    '--autoplay-policy=no-user-gesture-required',
    // Needed by playwright: its CDP transport and no initial window.
    '--remote-debugging-pipe',
    '--no-startup-window',
    ...extra,
  ];
}

/** A promise rejected after `ms`, with `cancel()`. */
export function timeout(ms, what) {
  let timer;
  const p = new Promise((_, reject) => {
    timer = setTimeout(() => reject(new Error(`timeout after ${ms} ms: ${what}`)), ms);
  });
  p.cancel = () => clearTimeout(timer);
  return p;
}

/**
 * Launches Chromium; `close()` closes it (bounded at 5 s) and removes its profile directory.
 * Idempotent, so a signal handler and the normal path may both call it.
 */
export async function launch({ executablePath, spkiList, timeoutMs }) {
  const userDataDir = mkdtempSync(join(tmpdir(), 'turnpike-chromium-'));
  let browser = null;
  let closing = null;
  const close = () => {
    closing ??= (async () => {
      if (browser) {
        const t = timeout(5000, 'browser.close');
        await Promise.race([browser.close(), t]).catch((e) => console.error(`chromium: ${e.message}`));
        t.cancel();
      }
      try {
        rmSync(userDataDir, { recursive: true, force: true, maxRetries: 5, retryDelay: 100 });
      } catch (e) {
        console.error(`chromium: could not remove ${userDataDir}: ${e.message}`);
      }
    })();
    return closing;
  };
  try {
    browser = await chromium.launch({
      executablePath,
      ignoreDefaultArgs: true,
      args: chromiumArgs(userDataDir, spkiList),
      timeout: timeoutMs,
      handleSIGINT: false,
      handleSIGTERM: false,
      handleSIGHUP: true,
    });
  } catch (e) {
    await close();
    throw e;
  }
  return { browser, close };
}
