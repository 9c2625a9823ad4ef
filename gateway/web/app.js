// The landline web phone: sign-in, dial pad, calls in both directions, DTMF.
// State for people is on the page; state for tests is on `window.landline` and on
// <body data-reg-state data-call-state>.

import { UserAgent } from '/sip.js';

const $ = (id) => document.getElementById(id);
const STORE_KEY = 'landline.account';
const ENDED_LINGER_MS = 2500;

const view = {
  signin: $('signin-view'), phone: $('phone-view'), form: $('signin-form'), formError: $('signin-error'),
  signinButton: $('signin-button'), username: $('username'), password: $('password'),
  domain: $('domain'), server: $('server'), account: $('account'), presence: $('presence'),
  presenceText: $('presence-text'), signOut: $('sign-out'), banner: $('banner'), bannerText: $('banner-text'),
  bannerAction: $('banner-action'), dialPanel: $('dial-panel'), number: $('number'), backspace: $('backspace'),
  callPanel: $('call-panel'), callParty: $('call-party'), callState: $('call-state'), callTimer: $('call-timer'),
  dtmfEcho: $('dtmf-echo'), keypad: $('keypad'), mute: $('mute'), callButton: $('call-button'),
  hangupButton: $('hangup-button'), keypadToggle: $('keypad-toggle'), lastCall: $('last-call'), incoming: $('incoming'),
  incomingFrom: $('incoming-from'), incomingName: $('incoming-name'), answerButton: $('answer-button'),
  declineButton: $('decline-button'), announcer: $('announcer'), remoteAudio: $('remote-audio'),
  identity: $('identity'),
};

// --- what tests read -------------------------------------------------------------------------

const testState = {
  registration: 'idle',
  registrationReason: '',
  registrationStates: [], // every registration state seen, in order
  lastError: '',
  call: null, // {direction, number, state, reason, states: [], answeredAt, dtmfSent}
  calls: [], // every call's summary, oldest first
  sipLog: [],
};

window.landline = {
  get state() { return testState.registration; },
  get registration() { return testState.registration; },
  get registrationReason() { return testState.registrationReason; },
  get registrationStates() { return testState.registrationStates; },
  get lastError() { return testState.lastError; },
  get call() { return testState.call; },
  get calls() { return testState.calls; },
  get pc() { return current ? current.pc : null; },
  get remoteStream() { return current ? current.remoteStream : null; },
  get sipLog() { return testState.sipLog; },
  signIn: (username, password, opts = {}) => signIn({ username, password, ...opts }),
  signOut: () => signOut(),
  dial: (number) => dial(number),
  hangup: () => current && current.hangup(),
  answer: () => answer(),
  decline: () => current && current.decline(),
  sendDtmf: (digits) => (current ? current.sendDtmf(digits) : false),
};

function setError(message) {
  testState.lastError = message;
}

// --- tones (WebAudio): ring, ringback, key feedback -------------------------------------------

class Tones {
  constructor() {
    this.ctx = null;
    this.loop = null;
    this.nodes = [];
  }

  context() {
    if (!this.ctx) {
      const Ctx = window.AudioContext || window.webkitAudioContext;
      if (!Ctx) return null;
      this.ctx = new Ctx();
    }
    if (this.ctx.state === 'suspended') this.ctx.resume().catch(() => {});
    return this.ctx;
  }

  /** Plays `freqs` together for `ms` at `gain`, starting `at` seconds from now. */
  burst(freqs, ms, gain, at = 0) {
    const ctx = this.context();
    if (!ctx) return;
    const start = ctx.currentTime + at;
    const end = start + ms / 1000;
    const level = ctx.createGain();
    level.gain.setValueAtTime(0, start);
    level.gain.linearRampToValueAtTime(gain, start + 0.015);
    level.gain.setValueAtTime(gain, end - 0.02);
    level.gain.linearRampToValueAtTime(0, end);
    level.connect(ctx.destination);
    for (const f of freqs) {
      const osc = ctx.createOscillator();
      osc.frequency.value = f;
      osc.connect(level);
      osc.start(start);
      osc.stop(end + 0.01);
      this.nodes.push(osc);
    }
  }

  /** The incoming-call ring: a warbled double ring, repeated every 3 s. */
  ring() {
    this.stop();
    const once = () => {
      for (let i = 0; i < 2; i++) {
        const at = i * 0.55;
        for (let k = 0; k < 10; k++) this.burst([k % 2 ? 1000 : 800], 40, 0.16, at + k * 0.04);
      }
    };
    once();
    this.loop = setInterval(once, 3000);
  }

  /** Ringback while the far end rings (no early media): 440+480 Hz, 2 s on, 4 s off. */
  ringback() {
    this.stop();
    const once = () => this.burst([440, 480], 2000, 0.08);
    once();
    this.loop = setInterval(once, 6000);
  }

  key(digit) {
    const rows = { 1: 697, 2: 697, 3: 697, 4: 770, 5: 770, 6: 770, 7: 852, 8: 852, 9: 852, '*': 941, 0: 941, '#': 941 };
    const cols = { 1: 1209, 4: 1209, 7: 1209, '*': 1209, 2: 1336, 5: 1336, 8: 1336, 0: 1336, 3: 1477, 6: 1477, 9: 1477, '#': 1477 };
    if (rows[digit]) this.burst([rows[digit], cols[digit]], 90, 0.05);
  }

  stop() {
    clearInterval(this.loop);
    this.loop = null;
    for (const n of this.nodes) {
      try { n.stop(); } catch { /* already stopped */ }
    }
    this.nodes = [];
  }
}

const tones = new Tones();

// --- sign in --------------------------------------------------------------------------------

let ua = null;
let current = null; // the Call on screen
let everRegistered = false;

function defaults() {
  const secure = location.protocol === 'https:';
  return {
    // The gateway writes its configured WebSocket path into the page (http.ws_path).
    server: `${secure ? 'wss' : 'ws'}://${location.host}${document.body.dataset.wsPath || '/ws'}`,
    domain: location.hostname,
  };
}

function loadSaved() {
  try {
    const saved = JSON.parse(localStorage.getItem(STORE_KEY) || '{}');
    view.username.value = saved.username || '';
    view.domain.value = saved.domain || '';
    view.server.value = saved.server || '';
    if (saved.domain || saved.server) view.form.querySelector('details').open = true;
  } catch { /* no storage */ }
  const d = defaults();
  view.domain.placeholder = d.domain;
  view.server.placeholder = d.server;
}

function signIn({ username, password, domain, server }) {
  username = (username || '').trim();
  if (!username || !password) {
    showFormError(!username ? 'Enter your username.' : 'Enter your password.');
    (!username ? view.username : view.password).setAttribute('aria-invalid', 'true');
    (!username ? view.username : view.password).focus();
    return;
  }
  view.username.removeAttribute('aria-invalid');
  view.password.removeAttribute('aria-invalid');
  const d = defaults();
  domain = (domain || '').trim() || d.domain;
  server = (server || '').trim() || d.server;
  try {
    localStorage.setItem(STORE_KEY, JSON.stringify({
      username, domain: domain === d.domain ? '' : domain, server: server === d.server ? '' : server,
    }));
  } catch { /* private mode */ }
  tones.context(); // created in the click, so later rings may play
  if (ua) ua.stop();
  everRegistered = false;
  showFormError('');
  view.signinButton.disabled = true;
  view.signinButton.textContent = 'Signing in…';
  ua = new UserAgent({ wsUrl: server, username, password, domain });
  ua.addEventListener('state', onRegistrationState);
  ua.addEventListener('incoming', (ev) => onIncoming(ev.detail.call));
  ua.addEventListener('log', (ev) => {
    testState.sipLog.push(`${ev.detail.direction === 'in' ? '<<' : '>>'} ${ev.detail.text}`);
    if (testState.sipLog.length > 300) testState.sipLog.shift();
  });
  view.identity.textContent = `Signed in as ${username}@${domain}`;
  ua.start();
}

async function signOut() {
  if (!ua) return;
  const old = ua;
  ua = null;
  await old.stop();
  everRegistered = false;
  testState.registration = 'idle';
  document.body.dataset.regState = 'idle';
  view.phone.hidden = true;
  view.account.hidden = true;
  view.signin.hidden = false;
  view.identity.textContent = '';
  view.password.value = '';
  resetSigninButton();
  view.password.focus();
  announce('Signed out');
}

function resetSigninButton() {
  view.signinButton.disabled = false;
  view.signinButton.textContent = 'Sign in';
}

function showFormError(message) {
  view.formError.textContent = message;
  view.formError.hidden = !message;
  if (message) setError(message);
}

const PRESENCE = {
  idle: 'Offline', connecting: 'Connecting…', registering: 'Signing in…', registered: 'Online',
  disconnected: 'Reconnecting…', failed: 'Signed out',
};

function onRegistrationState(ev) {
  if (ev.target !== ua) return;
  const { state, reason } = ev.detail;
  testState.registration = state;
  testState.registrationReason = reason;
  testState.registrationStates.push(state);
  document.body.dataset.regState = state;
  view.presence.dataset.state = state;
  view.presenceText.textContent = PRESENCE[state] || state;

  if (state === 'registered') {
    if (!everRegistered) {
      everRegistered = true;
      view.signin.hidden = true;
      view.phone.hidden = false;
      view.account.hidden = false;
      resetSigninButton();
      view.password.value = '';
      announce(`Signed in as ${ua.username}. Ready to call.`);
      view.number.focus();
    } else if (!view.banner.hidden && view.banner.dataset.kind === 'connection') {
      announce('Reconnected.');
    }
    if (view.banner.dataset.kind === 'connection') hideBanner();
    updateControls();
    return;
  }
  if (state === 'failed') {
    const wrongPassword = /password/i.test(reason);
    const message = wrongPassword
      ? 'Wrong username or password. Check them and try again.'
      : reason || 'Sign-in failed.';
    setError(message);
    if (everRegistered) {
      // The password stopped working (changed by an administrator): back to the form.
      view.phone.hidden = true;
      view.account.hidden = true;
      view.signin.hidden = false;
      everRegistered = false;
    }
    showFormError(message);
    resetSigninButton();
    view.password.setAttribute('aria-invalid', wrongPassword ? 'true' : 'false');
    view.password.select();
    view.password.focus();
    return;
  }
  if (state === 'disconnected') {
    setError(reason);
    if (!everRegistered) {
      showFormError(`Cannot reach the phone service at ${ua.wsUrl}. ${reason.replace(/^Connection lost; /, 'Retrying: ')}`);
      view.signinButton.textContent = 'Retrying…';
    } else {
      showBanner(reconnectText(), 'connection', 'Retry now', () => ua && ua.reconnectNow());
      announce('Connection lost. Reconnecting.');
      clearInterval(countdown);
      countdown = setInterval(() => {
        if (!ua || ua.state !== 'disconnected' || view.banner.dataset.kind !== 'connection') {
          clearInterval(countdown);
          return;
        }
        view.bannerText.textContent = reconnectText();
      }, 1000);
    }
    updateControls();
  }
}

// --- banner and announcements ----------------------------------------------------------------

let countdown = null;

function reconnectText() {
  const left = ua && ua.reconnectAt ? Math.max(0, Math.ceil((ua.reconnectAt - Date.now()) / 1000)) : 0;
  if (ua && /refused/i.test(ua.reason)) return `${ua.reason}. Trying again shortly.`;
  return left > 0 ? `Connection lost. Reconnecting in ${left}\u00a0s…` : 'Connection lost. Reconnecting…';
}

function showBanner(text, kind, actionLabel, action) {
  view.bannerText.textContent = text;
  view.banner.dataset.kind = kind;
  view.banner.hidden = false;
  if (actionLabel) {
    view.bannerAction.textContent = actionLabel;
    view.bannerAction.onclick = action;
    view.bannerAction.hidden = false;
  } else {
    view.bannerAction.hidden = true;
  }
}

function hideBanner() {
  view.banner.hidden = true;
  view.banner.dataset.kind = '';
}

function announce(text) {
  view.announcer.textContent = '';
  // A separate task, so screen readers notice the same text twice in a row.
  setTimeout(() => { view.announcer.textContent = text; }, 30);
}

// --- microphone -----------------------------------------------------------------------------

async function microphone() {
  if (!navigator.mediaDevices || !navigator.mediaDevices.getUserMedia) {
    throw new MicError('Microphone unavailable', 'This page needs a secure connection (https) to use it.');
  }
  try {
    return await navigator.mediaDevices.getUserMedia({
      audio: { echoCancellation: true, noiseSuppression: true, autoGainControl: true },
      video: false,
    });
  } catch (e) {
    if (e.name === 'NotAllowedError' || e.name === 'SecurityError') {
      throw new MicError('Microphone blocked', 'Allow microphone access for this site (the icon in the address bar), then call again.');
    }
    if (e.name === 'NotFoundError' || e.name === 'OverconstrainedError') {
      throw new MicError('No microphone found', 'Connect one and call again.');
    }
    if (e.name === 'NotReadableError') {
      throw new MicError('Microphone busy', 'Another application is using it.');
    }
    throw new MicError('Microphone unavailable', e.message);
  }
}

/** A microphone failure: `short` for the call's status line, `message` with what to do. */
class MicError extends Error {
  constructor(short, advice) {
    super(`${short}. ${advice}`);
    this.short = short;
  }
}

// --- calls ----------------------------------------------------------------------------------

const STATE_TEXT = {
  calling: 'Calling…', ringing: 'Ringing…', early: 'Ringing…', connecting: 'Connecting…',
  connected: 'Connected', incoming: 'Incoming call', ended: 'Call ended',
};

let timerInterval = null;
let endedTimer = null;

function canCall() {
  return ua && ua.state === 'registered' && !current;
}

async function dial(number) {
  number = sanitize(number ?? view.number.value);
  if (!number) {
    view.number.focus();
    return;
  }
  if (!canCall()) {
    if (ua && ua.state !== 'registered') showBanner('Not connected to the phone service yet.', 'error');
    return;
  }
  view.number.value = number;
  hideBanner();
  // Show the call at once; the microphone prompt may take a while.
  const pending = { direction: 'outgoing', number, state: 'calling', reason: '', states: ['calling'], answeredAt: 0, dtmfSent: '' };
  testState.call = pending;
  showCallPanel(number, 'calling');
  let stream;
  try {
    stream = await microphone();
  } catch (e) {
    pending.state = 'ended';
    pending.reason = e.message;
    pending.states.push('ended');
    testState.calls.push(pending);
    setError(e.message);
    showBanner(e.message, 'error');
    finishCallUi(e.short || e.message, true);
    return;
  }
  if (!canCall()) {
    stream.getTracks().forEach((t) => t.stop());
    return;
  }
  const call = ua.call(number, stream);
  track(call, pending);
}

function answer() {
  const call = current;
  if (!call || call.state !== 'incoming') return;
  tones.stop();
  view.incoming.hidden = true;
  microphone().then(
    (stream) => call.answer(stream),
    (e) => {
      setError(e.message);
      showBanner(e.message, 'error');
      call.decline();
    },
  );
}

function onIncoming(call) {
  if (current) {
    // One call at a time: the second caller hears busy.
    call.decline();
    return;
  }
  const summary = { direction: 'incoming', number: call.remoteUser, name: call.remoteName, state: 'incoming', reason: '', states: ['incoming'], answeredAt: 0, dtmfSent: '' };
  track(call, summary);
  view.incomingFrom.textContent = formatNumber(call.remoteUser);
  view.incomingName.textContent = call.remoteName && call.remoteName !== call.remoteUser ? call.remoteName : '';
  view.incoming.hidden = false;
  view.answerButton.focus();
  setTitle(`Incoming call from ${call.remoteName || call.remoteUser}`);
  tones.ring();
  announce(`Incoming call from ${call.remoteName || call.remoteUser}`);
  if ('Notification' in window && Notification.permission === 'granted' && document.hidden) {
    try { new Notification('Incoming call', { body: call.remoteName || call.remoteUser }); } catch { /* not allowed here */ }
  }
}

function track(call, summary) {
  current = call;
  testState.call = summary;
  clearTimeout(endedTimer);
  call.addEventListener('state', (ev) => {
    const { state, reason } = ev.detail;
    summary.state = state;
    summary.states.push(state);
    if (state === 'connected') summary.answeredAt = call.answeredAt;
    if (state === 'ended') {
      summary.reason = reason;
      summary.duration = call.answeredAt ? Math.round((Date.now() - call.answeredAt) / 1000) : 0;
      summary.dtmfSent = call.dtmfSent;
      testState.calls.push(summary);
    }
    onCallState(call, state, reason);
  });
  call.addEventListener('remotestream', (ev) => {
    view.remoteAudio.srcObject = ev.detail.stream;
    view.remoteAudio.play().catch(() => {});
  });
  call.addEventListener('media', (ev) => { summary.media = ev.detail.state; });
  if (call.state !== 'incoming') onCallState(call, call.state, '');
}

function onCallState(call, state, reason) {
  if (call !== current) return;
  document.body.dataset.callState = state;
  if (state === 'incoming') return;
  view.incoming.hidden = true;
  if (state !== 'connected') setTitle(STATE_TEXT[state] || '');
  if (state === 'ringing') tones.ringback();
  else tones.stop();
  if (state === 'ended') {
    if (reason) setError(reason);
    finishCallUi(reason, !call.answeredAt && call.direction === 'outgoing' && !/cancel|hung up/i.test(reason));
    return;
  }
  showCallPanel(call.remoteUser, state);
  if (state === 'connected') {
    startTimer(call.answeredAt);
    announce('Call connected');
  } else if (state === 'early' || state === 'ringing') {
    announce('Ringing');
  }
}

function showCallPanel(number, state) {
  clearTimeout(endedTimer);
  document.body.dataset.callState = state;
  view.phone.classList.add('in-call');
  view.dialPanel.hidden = true;
  view.callPanel.hidden = false;
  view.lastCall.hidden = true;
  view.callParty.textContent = formatNumber(number);
  view.callState.textContent = STATE_TEXT[state] || state;
  view.callState.dataset.kind = '';
  if (state !== 'connected') view.callTimer.textContent = '';
  updateControls();
}

function finishCallUi(reason, isError) {
  stopTimer();
  tones.stop();
  const wasAnswered = current && current.answeredAt;
  const duration = wasAnswered ? formatDuration(Date.now() - current.answeredAt) : '';
  const party = view.callParty.textContent;
  current = null;
  view.remoteAudio.srcObject = null;
  view.mute.setAttribute('aria-pressed', 'false');
  view.mute.querySelector('.round-label').textContent = 'Mute';
  showKeypad(false);
  document.body.dataset.callState = 'ended';
  view.callState.textContent = reason ? `Call ended · ${reason}` : 'Call ended';
  view.callState.dataset.kind = isError ? 'error' : '';
  view.callTimer.textContent = duration;
  announce(reason ? `Call ended. ${reason}` : 'Call ended');
  updateControls();
  endedTimer = setTimeout(() => {
    document.body.dataset.callState = 'idle';
    view.phone.classList.remove('in-call');
    view.callPanel.hidden = true;
    view.dialPanel.hidden = false;
    view.dtmfEcho.textContent = '';
    view.lastCall.textContent = [`Last call: ${party}`, duration, reason].filter(Boolean).join(' · ');
    view.lastCall.dataset.kind = isError ? 'error' : '';
    view.lastCall.hidden = false;
    updateControls();
    if (!view.phone.hidden) view.number.focus();
  }, ENDED_LINGER_MS);
}

function showKeypad(on) {
  view.phone.classList.toggle('show-keypad', on);
  view.keypadToggle.setAttribute('aria-pressed', String(on));
  view.keypadToggle.querySelector('.round-label').textContent = on ? 'Hide keypad' : 'Keypad';
}

const BASE_TITLE = document.title;

function setTitle(prefix) {
  document.title = prefix ? `${prefix} · ${BASE_TITLE}` : BASE_TITLE;
}

function startTimer(since) {
  stopTimer();
  const tick = () => {
    const shown = formatDuration(Date.now() - since);
    view.callTimer.textContent = shown;
    setTitle(`● ${shown}`);
  };
  tick();
  timerInterval = setInterval(tick, 1000);
}

function stopTimer() {
  clearInterval(timerInterval);
  timerInterval = null;
  setTitle('');
}

function updateControls() {
  const inCall = Boolean(current) || document.body.dataset.callState === 'calling';
  view.callButton.hidden = inCall;
  view.hangupButton.hidden = !inCall;
  const talking = Boolean(current && (current.state === 'connected' || current.state === 'early'));
  view.mute.hidden = !talking;
  view.keypadToggle.hidden = !talking;
  view.callButton.disabled = !(ua && ua.state === 'registered') || !sanitize(view.number.value);
  view.backspace.disabled = !view.number.value;
  view.callButton.setAttribute('aria-label', view.number.value ? `Call ${view.number.value}` : 'Call');
}

// --- input ----------------------------------------------------------------------------------

/** A dialled string: a number loses its spaces and punctuation; a user name is kept. */
function sanitize(text) {
  const s = String(text || '').trim();
  if (/^[+0-9*#\s().\-/]*$/.test(s)) return s.replace(/[\s().\-/]/g, '');
  return s.replace(/[^A-Za-z0-9._~+*#@-]/g, '');
}

function formatNumber(n) {
  return n || 'Unknown';
}

function formatDuration(ms) {
  const total = Math.max(0, Math.floor(ms / 1000));
  const h = Math.floor(total / 3600);
  const m = Math.floor((total % 3600) / 60);
  const s = String(total % 60).padStart(2, '0');
  return h ? `${h}:${String(m).padStart(2, '0')}:${s}` : `${m}:${s}`;
}

/** A key from the pad or the keyboard: a digit to dial, or DTMF during a call. */
function pressKey(key) {
  const button = view.keypad.querySelector(`[data-key="${CSS.escape(key)}"]`);
  if (button) {
    button.classList.add('pressed');
    setTimeout(() => button.classList.remove('pressed'), 120);
  }
  if (current && (current.state === 'connected' || current.state === 'early')) {
    if (key === '+') return;
    if (current.sendDtmf(key)) {
      tones.key(key);
      view.dtmfEcho.textContent = (view.dtmfEcho.textContent + key).slice(-16);
      if (testState.call) testState.call.dtmfSent = current.dtmfSent;
    }
    return;
  }
  if (current) return;
  tones.key(key);
  insertAtCursor(key);
}

function insertAtCursor(text) {
  const input = view.number;
  const start = input.selectionStart ?? input.value.length;
  const end = input.selectionEnd ?? input.value.length;
  input.value = input.value.slice(0, start) + text + input.value.slice(end);
  const pos = start + text.length;
  try { input.setSelectionRange(pos, pos); } catch { /* type=tel may refuse */ }
  updateControls();
}

function backspace() {
  const input = view.number;
  const start = input.selectionStart ?? input.value.length;
  const end = input.selectionEnd ?? input.value.length;
  if (start !== end) input.value = input.value.slice(0, start) + input.value.slice(end);
  else if (start > 0) input.value = input.value.slice(0, start - 1) + input.value.slice(start);
  const pos = Math.max(0, start === end ? start - 1 : start);
  try { input.setSelectionRange(pos, pos); } catch { /* ignore */ }
  updateControls();
}

function wireKeypad() {
  let holdTimer = null;
  let held = false;
  view.keypad.addEventListener('pointerdown', (ev) => {
    const key = ev.target.closest('.key');
    if (!key || key.dataset.key !== '0' || current) return;
    held = false;
    holdTimer = setTimeout(() => { held = true; pressKey('+'); }, 600);
  });
  const cancelHold = () => clearTimeout(holdTimer);
  view.keypad.addEventListener('pointerup', cancelHold);
  view.keypad.addEventListener('pointerleave', cancelHold);
  view.keypad.addEventListener('click', (ev) => {
    const key = ev.target.closest('.key');
    if (!key) return;
    if (held) { held = false; return; }
    pressKey(key.dataset.key);
    if (!current) view.number.focus({ preventScroll: true });
  });
}

function onKeyDown(ev) {
  if (ev.ctrlKey || ev.metaKey || ev.altKey) return;
  if (view.phone.hidden) return;
  if (!view.incoming.hidden) {
    if (ev.key === 'Escape') { ev.preventDefault(); current && current.decline(); }
    return;
  }
  const inNumber = ev.target === view.number;
  const inOtherField = !inNumber && ev.target instanceof HTMLElement && ev.target.matches('input, textarea, select');
  if (inOtherField) return;
  if (ev.key === 'Escape' && current) {
    ev.preventDefault();
    current.hangup();
    return;
  }
  if (/^[0-9*#+]$/.test(ev.key)) {
    ev.preventDefault();
    pressKey(ev.key);
    return;
  }
  if (current) return;
  if (ev.key === 'Backspace' && !inNumber) {
    ev.preventDefault();
    backspace();
  } else if (ev.key === 'Enter' && (inNumber || ev.target === document.body)) {
    ev.preventDefault();
    dial();
  }
}

function wire() {
  view.form.addEventListener('submit', (ev) => {
    ev.preventDefault();
    signIn({
      username: view.username.value, password: view.password.value,
      domain: view.domain.value, server: view.server.value,
    });
  });
  view.signOut.addEventListener('click', () => signOut());
  view.number.addEventListener('input', () => {
    const clean = sanitize(view.number.value);
    if (clean !== view.number.value) view.number.value = clean;
    updateControls();
  });
  view.number.addEventListener('paste', (ev) => {
    ev.preventDefault();
    insertAtCursor(sanitize(ev.clipboardData.getData('text')));
  });
  view.backspace.addEventListener('click', () => { backspace(); view.number.focus(); });
  view.callButton.addEventListener('click', () => dial());
  view.hangupButton.addEventListener('click', () => {
    if (current) current.hangup();
  });
  view.answerButton.addEventListener('click', () => answer());
  view.declineButton.addEventListener('click', () => current && current.decline());
  view.mute.addEventListener('click', () => {
    if (!current || !current.localStream) return;
    const muted = view.mute.getAttribute('aria-pressed') !== 'true';
    current.localStream.getAudioTracks().forEach((t) => { t.enabled = !muted; });
    view.mute.setAttribute('aria-pressed', String(muted));
    view.mute.querySelector('.round-label').textContent = muted ? 'Unmute' : 'Mute';
    announce(muted ? 'Microphone muted' : 'Microphone on');
  });
  view.keypadToggle.addEventListener('click', () => {
    showKeypad(view.keypadToggle.getAttribute('aria-pressed') !== 'true');
  });
  document.addEventListener('keydown', onKeyDown);
  wireKeypad();
  window.addEventListener('beforeunload', () => {
    if (current) current.hangup();
  });
}

loadSaved();
wire();
updateControls();
(view.username.value ? view.password : view.username).focus();
