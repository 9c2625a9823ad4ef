// Drives the landline web dialer in headless Debian Chromium and prints ONE JSON line of
// results on stdout (diagnostics go to stderr). Used by gateway/tests/browser.rs.
//
//   node driver.mjs --url http://127.0.0.1:8080/ --user alice --password secret [options] STEP...
//
// Options:
//   --url U            the dialer page (required)
//   --user U, --password P, --domain D   the sign-in form (domain: the "advanced" field)
//   --tone HZ          the fake microphone plays this sine (default 440), 48 kHz mono WAV made with sox
//   --listen HZ        the frequency `record` measures in the remote audio (default: --tone)
//   --screenshots DIR  where `screenshot NAME` writes NAME.png (default: the temp dir)
//   --timeout S        the limit for each waiting step (default 20)
//   --skip S           seconds of remote audio skipped before recording (default 2)
//   --deny-mic 1       the browser refuses the microphone (as a user clicking "Block")
//   --viewport WxH     the window size (default 480x860, a phone); --dark 1: dark colour scheme
//   --loss PERCENT     put a lossy UDP relay on the browser's media path: the driver rewrites the
//                      gateway's host candidates in the SDP the page receives to the relay, which
//                      drops PERCENT % of the browser's SRTP/SRTCP packets (a seeded PRNG; ICE and
//                      DTLS pass) and forwards the rest; counts are in "relay"
//   --library sipjs    drive sipjs.html (SIP.js from npm, unmodified) instead of the dialer: the
//                      driver serves this folder itself, and the page's WebSocket goes to the
//                      gateway of --url. Steps: register, call, answer-incoming, hangup, waits.
//   --library jssip    the same with jssip.html (JsSIP from npm, unmodified, with its defaults):
//                      JsSIP is CommonJS only, so the driver bundles it with esbuild into its temp
//                      dir first and serves that as /jssip.bundle.js. `dtmf` uses JsSIP's default
//                      transport (SIP INFO). --refresh INVITE: JsSIP refreshes its session timer
//                      with re-INVITE instead of its default UPDATE.
//   --clock 1          the page runs on playwright's clock (time flows as usual) so that
//                      `advance` can jump its timers forward (session-timer refreshes)
//
// Steps, run in order (a step that fails ends the run with "ok": false):
//   register                 fill the form, sign in, wait for registered or failed
//   expect-registered        fail unless registered
//   wait-registration STATE  wait until the registration has been in STATE (disconnected,
//                            registered...) since the state the previous such step matched
//   call NUMBER              type NUMBER on the keyboard and press the call button
//   wait-state STATE         wait until the call reaches STATE (ringing, early, connected, ended)
//   wait-media               wait until the call's RTCPeerConnection is connected
//   record SECONDS           record the remote audio (MediaRecorder, decodeAudioData) and measure
//                            the tone's share of its energy (Goertzel): "audio" in the result,
//                            and every recording in "recordings" (with the call state after it)
//   dtmf DIGITS              press DIGITS on the keyboard during the call (RFC 4733)
//   hangup                   press the hang-up button and wait for the call to end
//   wait-ended               wait for the far end to end the call
//   answer-incoming          wait for an incoming call, press Answer, wait until connected
//   decline-incoming         wait for an incoming call, press Decline
//   wait-incoming            wait for an incoming call (ringing on the page)
//   wait-offers N            wait until the call's RTCPeerConnection has answered N remote offers
//                            (an incoming call's INVITE, then re-INVITEs such as a carrier's hold)
//   set-skip SECONDS         what later `record` steps skip (as --skip)
//   sleep SECONDS            wait
//   advance SECONDS          jump the page's clock (needs --clock 1): timers due by then fire once
//   screenshot NAME          save a PNG of the page
//   sign-out                 press "Sign out"
//   click SELECTOR           click an element (for screenshots of other states)
// Shorthands:
//   call-echo [NUMBER]       call NUMBER (600), wait-media, record 4, hangup
//   call-number NUMBER       call NUMBER, wait-state connected, wait-media

import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { createSocket } from 'node:dgram';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

const CHROMIUM = '/usr/bin/chromium';

const result = {
  ok: false,
  steps: [],
  registration: null,
  registrationReason: null,
  formError: null,
  lastError: null,
  calls: [],
  call: null,
  audio: null,
  recordings: [],
  dtmfSent: '',
  screenshots: [],
  pageErrors: [],
};

function emit(code) {
  process.stdout.write(JSON.stringify(result) + '\n');
  process.exit(code);
}

function parseArgs(argv) {
  const opts = { tone: 440, listen: null, timeout: 20, skip: 2, screenshots: null };
  const steps = [];
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i];
    if (a.startsWith('--')) {
      const key = a.slice(2);
      const value = argv[++i];
      if (value === undefined) throw new Error(`${a} needs a value`);
      opts[key] = ['tone', 'listen', 'timeout', 'skip'].includes(key) ? Number(value) : value;
    } else {
      steps.push(a);
    }
  }
  if (!opts.url) throw new Error('--url is required');
  opts.listen = opts.listen || opts.tone;
  return { opts, steps };
}

const ARITY = {
  register: 0, 'expect-registered': 0, 'wait-registration': 1, call: 1, 'wait-state': 1, 'wait-media': 0, record: 1, dtmf: 1,
  hangup: 0, 'wait-ended': 0, 'answer-incoming': 0, 'decline-incoming': 0, 'wait-incoming': 0,
  sleep: 1, advance: 1, 'wait-offers': 1, 'set-skip': 1, screenshot: 1, 'sign-out': 0, click: 1, 'call-echo': -1, 'call-number': 1,
};

/** Splits the positional words into [name, args] steps, expanding the shorthands. */
function plan(words) {
  const out = [];
  for (let i = 0; i < words.length; i++) {
    const name = words[i];
    if (!(name in ARITY)) throw new Error(`unknown step "${name}"`);
    let args = [];
    if (ARITY[name] > 0) {
      args = words.slice(i + 1, i + 1 + ARITY[name]);
      if (args.length < ARITY[name]) throw new Error(`step "${name}" needs ${ARITY[name]} argument(s)`);
      i += ARITY[name];
    } else if (ARITY[name] < 0 && words[i + 1] !== undefined && !(words[i + 1] in ARITY)) {
      args = [words[++i]];
    }
    if (name === 'call-echo') {
      out.push(['call', [args[0] || '600']], ['wait-state', ['connected']], ['wait-media', []], ['record', ['4']], ['hangup', []]);
    } else if (name === 'call-number') {
      out.push(['call', args], ['wait-state', ['connected']], ['wait-media', []]);
    } else {
      out.push([name, args]);
    }
  }
  return out;
}

function log(...args) {
  process.stderr.write(`[driver ${new Date().toISOString().slice(11, 23)}] ${args.join(' ')}\n`);
}

/**
 * Serves this folder (the library test pages and node_modules) on a free loopback port, and
 * `extra` (URL path → file) besides.
 */
async function serveHere(extra = {}) {
  const root = new URL('.', import.meta.url).pathname;
  const types = { '.html': 'text/html', '.js': 'text/javascript', '.mjs': 'text/javascript', '.map': 'application/json' };
  const server = createServer((req, res) => {
    const path = decodeURIComponent(new URL(req.url, 'http://x').pathname);
    if (path.includes('..')) {
      res.writeHead(400).end();
      return;
    }
    try {
      const body = readFileSync(extra[path] || join(root, path));
      const ext = path.slice(path.lastIndexOf('.'));
      res.writeHead(200, { 'content-type': types[ext] || 'application/octet-stream' }).end(body);
    } catch {
      res.writeHead(404).end();
    }
  });
  await new Promise((r) => server.listen(0, '127.0.0.1', r));
  return server;
}

/**
 * A UDP relay between the browser and the gateway's media port that drops `percent` % of the
 * browser's SRTP/SRTCP (first byte 128–191, RFC 7983) with a seeded PRNG, so runs are alike.
 */
async function lossyRelay(percent, seed = 5) {
  const socket = createSocket('udp4');
  await new Promise((r) => socket.bind(0, '127.0.0.1', r));
  // stalledMs: time beyond 100 ms between two of the browser's RTP packets reaching the relay
  // (the browser or this relay starved of CPU, not a drop): silence it causes at the carrier is
  // not the concealment under test.
  const stats = { port: socket.address().port, target: null, forwarded: 0, dropped: 0, returned: 0, stalls: 0, stalledMs: 0 };
  let lastRtp = null;
  let browser = null;
  let state = seed >>> 0;
  const random = () => { // mulberry32
    state = (state + 0x6d2b79f5) >>> 0;
    let t = state;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
  socket.on('message', (msg, from) => {
    const target = stats.target;
    if (!target) return;
    if (from.address === target.address && from.port === target.port) {
      if (browser) {
        socket.send(msg, browser.port, browser.address);
        stats.returned += 1;
      }
      return;
    }
    browser = { address: from.address, port: from.port };
    const rtp = msg[0] >= 128 && msg[0] <= 191;
    if (rtp) {
      const now = performance.now();
      if (lastRtp !== null && now - lastRtp > 100) {
        stats.stalls += 1;
        stats.stalledMs += Math.round(now - lastRtp - 20);
      }
      lastRtp = now;
    }
    if (rtp && random() * 100 < percent) {
      stats.dropped += 1;
      return;
    }
    socket.send(msg, target.port, target.address);
    stats.forwarded += 1;
  });
  return { socket, stats };
}

/**
 * Bundles JsSIP (CommonJS only) for a page: an IIFE that sets `window.JsSIP`, written to `dir`.
 * Built at every run from node_modules, never committed.
 */
async function bundleJssip(dir) {
  const { build } = await import('esbuild');
  const outfile = join(dir, 'jssip.bundle.js');
  await build({
    entryPoints: [new URL('node_modules/jssip/lib/JsSIP.js', import.meta.url).pathname],
    bundle: true,
    format: 'iife',
    globalName: 'JsSIP',
    platform: 'browser',
    outfile,
    logLevel: 'warning',
  });
  return outfile;
}

/** A 30 s sine WAV at 48 kHz mono (Chromium loops the file). */
function toneWav(dir, hz) {
  const path = resolve(join(dir, `tone-${hz}.wav`));
  execFileSync('sox', ['-n', '-r', '48000', '-c', '1', '-b', '16', path, 'synth', '30', 'sine', String(hz), 'vol', '0.5']);
  return path;
}

async function main() {
  let parsed;
  try {
    parsed = parseArgs(process.argv.slice(2));
    parsed.steps = plan(parsed.steps);
  } catch (e) {
    result.error = `usage: ${e.message}`;
    emit(2);
  }
  const { opts, steps } = parsed;
  if (!existsSync(CHROMIUM)) {
    result.error = `${CHROMIUM} not found: apt-get install --no-install-recommends chromium (scripts/test does)`;
    emit(3);
  }
  let chromium;
  try {
    ({ chromium } = await import('playwright-core'));
  } catch (e) {
    result.error = `playwright-core missing: run npm ci in gateway/tests/browser (${e.message})`;
    emit(3);
  }

  const work = mkdtempSync(join(tmpdir(), 'landline-chromium-'));
  const profile = join(work, 'profile');
  let wav;
  try {
    wav = toneWav(work, opts.tone);
  } catch (e) {
    result.error = `cannot make the tone WAV with sox: ${e.message}`;
    emit(3);
  }
  const shots = resolve(opts.screenshots || work);
  const args = [
    '--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run',
    '--disable-background-networking', '--disable-component-update', '--disable-sync',
    '--use-fake-device-for-media-stream',
    opts['deny-mic'] ? '--use-fake-ui-for-media-stream=deny' : '--use-fake-ui-for-media-stream',
    `--use-file-for-fake-audio-capture=${wav}`, '--autoplay-policy=no-user-gesture-required',
    '--allow-loopback-in-peer-connection',
  ];
  log('chromium', args.join(' '));
  const context = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    ignoreDefaultArgs: ['--mute-audio'],
    args,
    viewport: (() => {
      const [width, height] = String(opts.viewport || '480x860').split('x').map(Number);
      return { width, height };
    })(),
    colorScheme: opts.dark ? 'dark' : 'light',
    deviceScaleFactor: 1,
  });
  // The fake microphone is a file: there is no loudspeaker to cancel. Left on, Chromium's echo
  // canceller sees the remote stream carry the same sine as the microphone (every echo test
  // does that) and learns to subtract it, so what is measured becomes the canceller's residue
  // rather than the gateway's path (CI once heard SIP.js's own tone at a 0.49 share). The page
  // (ours or a library's) still asks for what it asks; only the processing is turned off.
  await context.addInitScript(() => {
    const media = navigator.mediaDevices;
    if (!media || !media.getUserMedia) return;
    const original = media.getUserMedia.bind(media);
    media.getUserMedia = (constraints) => {
      if (constraints && constraints.audio) {
        const audio = typeof constraints.audio === 'object' ? constraints.audio : {};
        constraints = {
          ...constraints,
          audio: { ...audio, echoCancellation: false, noiseSuppression: false, autoGainControl: false },
        };
      }
      return original(constraints);
    };
  });
  let relay = null;
  if (opts.loss !== undefined) {
    relay = await lossyRelay(Number(opts.loss));
    result.relay = relay.stats;
    await context.exposeFunction('landlineRelayTarget', (address, port) => {
      relay.stats.target = { address, port: Number(port) };
    });
    await context.addInitScript((relayPort) => {
      const original = RTCPeerConnection.prototype.setRemoteDescription;
      RTCPeerConnection.prototype.setRemoteDescription = function (description) {
        if (description && description.sdp) {
          const sdp = description.sdp.replace(
            /^a=candidate:(\S+) (\d+) udp (\d+) (\S+) (\d+) typ host(.*)$/gim,
            (line, foundation, component, priority, address, port, rest) => {
              window.landlineRelayTarget(address, port);
              return `a=candidate:${foundation} ${component} udp ${priority} 127.0.0.1 ${relayPort} typ host${rest}`;
            },
          );
          description = { type: description.type, sdp };
        }
        return original.call(this, description);
      };
    }, relay.stats.port);
  }
  // Every RTCPeerConnection a page makes (ours or a library's) is watched from outside the
  // page's code: its connection, ICE and DTLS transport states in order, how many DTLS
  // transports it had, the direction of each remote offer and local answer, and its local ICE
  // ufrags. A re-offer that restarted ICE or DTLS shows there ("peerConnections" in the result).
  await context.addInitScript(() => {
    const proto = window.RTCPeerConnection && window.RTCPeerConnection.prototype;
    if (!proto) return;
    const log = (window.landlinePcLog = []);
    const entries = new WeakMap();
    const direction = (sdp) => ((sdp || '').match(/^a=(sendrecv|sendonly|recvonly|inactive)\s*$/m) || [])[1] || null;
    const ufrag = (sdp) => ((sdp || '').match(/^a=ice-ufrag:(\S+)/m) || [])[1] || null;
    const entryOf = (pc) => {
      let e = entries.get(pc);
      if (e) return e;
      e = {
        connectionStates: [pc.connectionState], iceStates: [pc.iceConnectionState], dtlsStates: [],
        dtlsTransports: 0, remoteOffers: [], remoteAnswers: [], localAnswers: [], localUfrags: [],
      };
      entries.set(pc, e);
      log.push(e);
      pc.addEventListener('connectionstatechange', () => e.connectionStates.push(pc.connectionState));
      pc.addEventListener('iceconnectionstatechange', () => e.iceStates.push(pc.iceConnectionState));
      e.transports = new Set();
      Object.defineProperty(e, 'transports', { enumerable: false });
      return e;
    };
    const after = (pc, e) => {
      const local = pc.localDescription;
      const u = local && ufrag(local.sdp);
      if (u && !e.localUfrags.includes(u)) e.localUfrags.push(u);
      for (const t of pc.getTransceivers()) {
        const dtls = t.sender && t.sender.transport;
        if (dtls && !e.transports.has(dtls)) {
          e.transports.add(dtls);
          e.dtlsTransports = e.transports.size;
          e.dtlsStates.push(dtls.state);
          dtls.addEventListener('statechange', () => e.dtlsStates.push(dtls.state));
        }
      }
    };
    const setRemote = proto.setRemoteDescription;
    proto.setRemoteDescription = function (description, ...rest) {
      const e = entryOf(this);
      if (description && description.type === 'offer') e.remoteOffers.push(direction(description.sdp));
      if (description && description.type === 'answer') e.remoteAnswers.push(direction(description.sdp));
      const done = setRemote.call(this, description, ...rest);
      return done && done.then ? done.then((v) => { after(this, e); return v; }) : done;
    };
    const setLocal = proto.setLocalDescription;
    proto.setLocalDescription = function (...args) {
      const e = entryOf(this);
      const done = setLocal.apply(this, args);
      return done && done.then ? done.then((v) => {
        if (this.localDescription && this.localDescription.type === 'answer') e.localAnswers.push(direction(this.localDescription.sdp));
        after(this, e);
        return v;
      }) : done;
    };
  });
  const page = context.pages()[0] || (await context.newPage());
  if (opts.clock) await page.clock.install();
  page.on('pageerror', (e) => result.pageErrors.push(String(e)));
  page.on('console', (m) => {
    if (m.type() === 'error') result.pageErrors.push(`console: ${m.text()}`);
    log(`page ${m.type()}: ${m.text()}`);
  });
  const timeoutMs = opts.timeout * 1000;

  const snapshot = async () => {
    const s = await page.evaluate(() => ({
      registration: window.landline?.registration ?? null,
      registrationReason: window.landline?.registrationReason ?? null,
      registrationStates: window.landline?.registrationStates ?? [],
      lastError: window.landline?.lastError ?? null,
      call: window.landline?.call ?? null,
      calls: window.landline?.calls ?? [],
      formError: document.getElementById('signin-error')?.hidden ? null : document.getElementById('signin-error')?.textContent,
      regAttr: document.body.dataset.regState,
      callAttr: document.body.dataset.callState,
      pcState: window.landline?.pc?.connectionState ?? null,
      peerConnections: window.landlinePcLog ?? [],
    }));
    Object.assign(result, {
      registration: s.registration, registrationReason: s.registrationReason,
      registrationStates: s.registrationStates, lastError: s.lastError,
      call: s.call, calls: s.calls, formError: s.formError, bodyRegState: s.regAttr, bodyCallState: s.callAttr,
      pcState: s.pcState, peerConnections: s.peerConnections,
    });
    return s;
  };

  const waitFor = async (what, fn, arg) => {
    try {
      await page.waitForFunction(fn, arg, { timeout: timeoutMs, polling: 50 });
    } catch {
      throw new Error(`timed out after ${opts.timeout} s waiting for ${what}`);
    }
  };

  let registrationSeen = 0;
  const run = {
    async register() {
      await page.fill('#username', opts.user || '');
      await page.fill('#password', opts.password || '');
      if (opts.domain) {
        await page.click('details.advanced summary');
        await page.fill('#domain', opts.domain);
      }
      await page.click('#signin-button');
      await waitFor('registered or failed', () => ['registered', 'failed'].includes(window.landline.registration));
      if ((await snapshot()).registration === 'registered') {
        await page.waitForSelector('#phone-view:not([hidden])', { timeout: timeoutMs });
      } else {
        await page.waitForSelector('#signin-error:not([hidden])', { timeout: timeoutMs });
      }
    },
    async 'expect-registered'() {
      const s = await snapshot();
      if (s.registration !== 'registered') throw new Error(`not registered: ${s.registration} ${s.registrationReason}`);
    },
    // Waits until STATE shows up in the registration's history after the state the previous
    // wait-registration matched: a short-lived state (a reconnect) is not missed between steps.
    async 'wait-registration'(state) {
      const from = registrationSeen;
      await waitFor(`registration ${state}`, ([s, i]) => window.landline.registrationStates.indexOf(s, i) >= 0, [state, from]);
      registrationSeen = await page.evaluate(([s, i]) => window.landline.registrationStates.indexOf(s, i) + 1, [state, from]);
    },
    async call(number) {
      await page.click('#number');
      await page.keyboard.type(number, { delay: 30 });
      await page.click('#call-button');
      await waitFor('the call to start', () => window.landline.call && window.landline.call.state !== 'idle');
    },
    async 'wait-state'(state) {
      await waitFor(`call state ${state}`, (s) => {
        const c = window.landline.call;
        return c && (c.state === s || (c.states || []).includes(s) || c.state === 'ended');
      }, state);
      const s = await snapshot();
      if (!s.call.states.includes(state)) throw new Error(`the call ended (${s.call.reason}) before ${state}`);
    },
    async 'wait-media'() {
      await waitFor('the media connection', () => {
        const pc = window.landline.pc;
        return (pc && pc.connectionState === 'connected') || window.landline.call?.state === 'ended';
      });
      const s = await snapshot();
      if (s.pcState !== 'connected') throw new Error(`no media: call ${s.call?.state} (${s.call?.reason})`);
    },
    async record(seconds) {
      result.audio = await page.evaluate(recordRemote, { seconds: Number(seconds), skip: opts.skip, hz: opts.listen });
      result.audio.callState = await page.evaluate(() => window.landline.call?.state ?? null);
      result.recordings.push(result.audio);
      if (result.audio.error) throw new Error(`recording: ${result.audio.error}`);
    },
    async dtmf(digits) {
      for (const d of digits) {
        await page.keyboard.type(d);
        await page.waitForTimeout(250);
      }
      // Let the last tone (100 ms + gap) go out before anything else happens.
      await page.waitForTimeout(400);
      result.dtmfSent = await page.evaluate(() => window.landline.call?.dtmfSent ?? '');
    },
    async hangup() {
      await page.click('#hangup-button');
      await waitFor('the call to end', () => window.landline.call?.state === 'ended');
    },
    async 'wait-ended'() {
      await waitFor('the far end to hang up', () => window.landline.call?.state === 'ended');
    },
    async 'wait-incoming'() {
      await page.waitForSelector('#incoming:not([hidden])', { timeout: timeoutMs });
    },
    async 'answer-incoming'() {
      await page.waitForSelector('#incoming:not([hidden])', { timeout: timeoutMs });
      await page.click('#answer-button');
      await run['wait-state']('connected');
    },
    async 'decline-incoming'() {
      await page.waitForSelector('#incoming:not([hidden])', { timeout: timeoutMs });
      await page.click('#decline-button');
      await waitFor('the call to end', () => window.landline.call?.state === 'ended');
    },
    // Waits until the call's RTCPeerConnection has answered N remote offers (the INVITE of an
    // incoming call is the first; re-INVITEs follow) and is stable again.
    async 'wait-offers'(n) {
      await waitFor(`${n} remote offers answered`, (k) => {
        const pc = window.landline.pc;
        const e = (window.landlinePcLog || []).find((x) => x.localAnswers.length >= k);
        return (e && pc && pc.signalingState === 'stable') || window.landline.call?.state === 'ended';
      }, Number(n));
      const s = await snapshot();
      if (s.call?.state === 'ended') throw new Error(`the call ended (${s.call.reason}) before ${n} offers`);
    },
    async 'set-skip'(seconds) {
      opts.skip = Number(seconds);
    },
    async sleep(seconds) {
      await page.waitForTimeout(Number(seconds) * 1000);
    },
    async advance(seconds) {
      if (!opts.clock) throw new Error('advance needs --clock 1');
      await page.clock.fastForward(Number(seconds) * 1000);
    },
    async screenshot(name) {
      const path = join(shots, `${name}.png`);
      await page.screenshot({ path });
      result.screenshots.push(path);
    },
    async click(selector) {
      await page.click(selector, { timeout: timeoutMs });
    },
    async 'sign-out'() {
      await page.click('#sign-out');
      await page.waitForSelector('#signin-view:not([hidden])', { timeout: timeoutMs });
    },
  };

  if (opts.library) {
    // The library page has no form and no buttons: the same steps call its window.landline.
    const call = (fn, arg) => page.evaluate(([f, a]) => window.landline[f](a), [fn, arg]);
    Object.assign(run, {
      async register() {
        await call('signIn');
        await waitFor('registered or failed', () => ['registered', 'failed'].includes(window.landline.registration));
        await snapshot();
      },
      async call(number) {
        await call('dial', number);
      },
      async hangup() {
        await call('hangup');
        await waitFor('the call to end', () => window.landline.call?.state === 'ended');
      },
      async 'wait-incoming'() {
        await waitFor('an incoming call', () => window.landline.call?.state === 'incoming');
      },
      async 'answer-incoming'() {
        await run['wait-incoming']();
        await call('answer');
        await run['wait-state']('connected');
      },
      async 'decline-incoming'() {
        await run['wait-incoming']();
        await call('decline');
      },
      async 'sign-out'() {
        await call('signOut');
        await waitFor('the registration to end', () => ['idle', 'disconnected'].includes(window.landline.registration));
      },
      // One digit at a time, as a user presses them; the library paces what it sends (JsSIP
      // queues INFO requests 100 ms + 500 ms apart).
      async dtmf(digits) {
        for (const d of digits) {
          if (!(await call('sendDtmf', d))) throw new Error(`the page cannot send DTMF ${d}`);
          await page.waitForTimeout(250);
        }
        await page.waitForTimeout(600 * digits.length + 400);
        result.dtmfSent = await page.evaluate(() => window.landline.call?.dtmfSent ?? '');
      },
    });
  }

  let code = 0;
  let server = null;
  try {
    let url = opts.url;
    if (opts.library) {
      if (!['sipjs', 'jssip'].includes(opts.library)) throw new Error(`unknown --library ${opts.library}`);
      server = await serveHere(opts.library === 'jssip' ? { '/jssip.bundle.js': await bundleJssip(work) } : {});
      const gateway = new URL(opts.url);
      const ws = `${gateway.protocol === 'https:' ? 'wss' : 'ws'}://${gateway.host}/ws`;
      const query = new URLSearchParams({ ws, user: opts.user || '', password: opts.password || '', domain: opts.domain || gateway.hostname });
      if (opts.refresh) query.set('refresh', opts.refresh);
      url = `http://127.0.0.1:${server.address().port}/${opts.library}.html?${query}`;
    }
    const response = await page.goto(url, { waitUntil: 'load', timeout: timeoutMs });
    result.httpStatus = response ? response.status() : null;
    await page.waitForFunction(() => window.landline !== undefined, null, { timeout: timeoutMs });
    for (const [name, stepArgs] of steps) {
      const started = Date.now();
      log('step', name, ...stepArgs);
      await run[name](...stepArgs);
      result.steps.push({ step: [name, ...stepArgs].join(' '), ms: Date.now() - started });
    }
    result.ok = true;
  } catch (e) {
    result.error = e.message;
    code = 1;
    try {
      result.sipLog = await page.evaluate(() => window.landline?.sipLog?.slice(-200) ?? []);
    } catch { /* page gone */ }
  }
  try {
    await snapshot();
    if (!result.sipLog) result.sipLog = await page.evaluate(() => window.landline?.sipLog?.slice(-200) ?? []);
  } catch { /* page gone */ }
  await context.close().catch(() => {});
  if (server) server.close();
  if (relay) relay.socket.close();
  // The tone WAV and the profile go; screenshots stay where they were asked for.
  rmSync(opts.screenshots ? work : profile, { recursive: true, force: true });
  emit(code);
}

/**
 * In the page: waits for media, skips `skip` seconds (jitter buffer settling), records
 * `seconds` of the remote stream with MediaRecorder, decodes it, and returns the share of the
 * energy at `hz` (Goertzel over 100 ms blocks) and the level.
 */
async function recordRemote({ seconds, skip, hz }) {
  const sleep = (ms) => new Promise((r) => setTimeout(r, ms));
  const deadline = Date.now() + 10000;
  while (!(window.landline.pc && window.landline.pc.connectionState === 'connected' && window.landline.remoteStream)) {
    if (Date.now() > deadline) return { error: 'media never connected' };
    await sleep(50);
  }
  const stream = window.landline.remoteStream;
  await sleep(skip * 1000);
  const tracks = stream.getAudioTracks();
  if (!tracks.length) return { error: 'no remote audio track' };
  const recorder = new MediaRecorder(new MediaStream(tracks), { mimeType: 'audio/webm;codecs=opus' });
  const chunks = [];
  recorder.ondataavailable = (e) => { if (e.data.size) chunks.push(e.data); };
  const stopped = new Promise((r) => { recorder.onstop = r; });
  recorder.start(250);
  await sleep(seconds * 1000);
  recorder.stop();
  await stopped;
  const bytes = await new Blob(chunks, { type: 'audio/webm' }).arrayBuffer();
  const recorded = bytes.byteLength; // decodeAudioData detaches the buffer
  const ctx = new AudioContext({ sampleRate: 48000 });
  let buffer;
  try {
    buffer = await ctx.decodeAudioData(bytes);
  } catch (e) {
    return { error: `decodeAudioData: ${e.message}`, bytes: bytes.byteLength };
  } finally {
    ctx.close();
  }
  const x = buffer.getChannelData(0);
  const rate = buffer.sampleRate;
  const block = Math.round(rate / 10);
  const coeff = 2 * Math.cos((2 * Math.PI * hz) / rate);
  let tonePower = 0, totalPower = 0, peak = 0;
  for (let start = 0; start + block <= x.length; start += block) {
    let s1 = 0, s2 = 0, total = 0;
    for (let n = start; n < start + block; n++) {
      const v = x[n];
      total += v * v;
      if (Math.abs(v) > peak) peak = Math.abs(v);
      const s0 = v + coeff * s1 - s2;
      s2 = s1;
      s1 = s0;
    }
    // Goertzel power at hz, scaled so that a pure sine gives the block's total energy.
    tonePower += (2 * (s1 * s1 + s2 * s2 - coeff * s1 * s2)) / block;
    totalPower += total;
  }
  return {
    seconds: x.length / rate,
    sampleRate: rate,
    bytes: recorded,
    rms: Math.sqrt(totalPower / Math.max(1, x.length)),
    peak,
    toneHz: hz,
    toneRatio: totalPower > 0 ? tonePower / totalPower : 0,
  };
}

main().catch((e) => {
  result.error = `driver: ${e.stack || e.message}`;
  emit(1);
});
