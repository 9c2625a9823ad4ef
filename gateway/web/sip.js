// A small SIP user agent over WebSocket (RFC 3261, RFC 7118) for the landline dialer.
//
// It does what a browser phone needs and no more: REGISTER with digest (MD5, qop=auth) and
// refresh, outgoing INVITE (401/407 retry, early media from an 18x answer, CANCEL, BYE),
// incoming INVITE (180, answer or 486, CANCEL), BYE and OPTIONS from the far end. Media is
// WebRTC: the offer or answer of a call is the local RTCPeerConnection's description once ICE
// gathering is complete (the gateway is ICE-lite and takes no trickled candidates).

// ---------------------------------------------------------------------------------------------
// MD5 (RFC 1321), over the UTF-8 bytes of a string; lowercase hex. Digest auth needs it and
// WebCrypto has no MD5 (nor any digest outside secure contexts).

const MD5_S = [7, 12, 17, 22, 5, 9, 14, 20, 4, 11, 16, 23, 6, 10, 15, 21];
const MD5_K = Array.from({ length: 64 }, (_, i) => Math.floor(Math.abs(Math.sin(i + 1)) * 2 ** 32) >>> 0);

export function md5(text) {
  const bytes = new TextEncoder().encode(text);
  const padded = new Uint8Array(((bytes.length + 8) >>> 6) * 64 + 64);
  padded.set(bytes);
  padded[bytes.length] = 0x80;
  const view = new DataView(padded.buffer);
  view.setUint32(padded.length - 8, (bytes.length * 8) >>> 0, true);
  view.setUint32(padded.length - 4, Math.floor(bytes.length / 0x20000000), true);
  let a0 = 0x67452301, b0 = 0xefcdab89, c0 = 0x98badcfe, d0 = 0x10325476;
  for (let off = 0; off < padded.length; off += 64) {
    let a = a0, b = b0, c = c0, d = d0;
    for (let i = 0; i < 64; i++) {
      let f, g;
      if (i < 16) { f = (b & c) | (~b & d); g = i; }
      else if (i < 32) { f = (d & b) | (~d & c); g = (5 * i + 1) % 16; }
      else if (i < 48) { f = b ^ c ^ d; g = (3 * i + 5) % 16; }
      else { f = c ^ (b | ~d); g = (7 * i) % 16; }
      const sum = (a + f + MD5_K[i] + view.getUint32(off + g * 4, true)) | 0;
      const s = MD5_S[(i >> 4) * 4 + (i % 4)];
      a = d; d = c; c = b;
      b = (b + ((sum << s) | (sum >>> (32 - s)))) | 0;
    }
    a0 = (a0 + a) | 0; b0 = (b0 + b) | 0; c0 = (c0 + c) | 0; d0 = (d0 + d) | 0;
  }
  const out = new DataView(new ArrayBuffer(16));
  [a0, b0, c0, d0].forEach((w, i) => out.setUint32(i * 4, w, true));
  return Array.from(new Uint8Array(out.buffer), (x) => x.toString(16).padStart(2, '0')).join('');
}

// ---------------------------------------------------------------------------------------------
// Messages

const COMPACT = {
  v: 'via', f: 'from', t: 'to', i: 'call-id', m: 'contact', l: 'content-length',
  c: 'content-type', k: 'supported', s: 'subject', o: 'event', u: 'allow-events', e: 'content-encoding',
};
// Headers whose values may be comma-joined lists (the others may contain commas, e.g. dates).
const LIST_HEADERS = new Set(['via', 'route', 'record-route', 'contact', 'www-authenticate', 'proxy-authenticate']);
const USER_AGENT = 'landline-web/1';

export function randomToken(length = 10) {
  const alphabet = 'abcdefghijklmnopqrstuvwxyz0123456789';
  const bytes = crypto.getRandomValues(new Uint8Array(length));
  return Array.from(bytes, (b) => alphabet[b % alphabet.length]).join('');
}

/** Splits a header value at commas that are outside quotes and angle brackets. */
function splitList(value) {
  const parts = [];
  let depth = 0, quoted = false, start = 0;
  for (let i = 0; i < value.length; i++) {
    const ch = value[i];
    if (ch === '"' && value[i - 1] !== '\\') quoted = !quoted;
    else if (!quoted && ch === '<') depth++;
    else if (!quoted && ch === '>') depth--;
    else if (!quoted && depth === 0 && ch === ',') {
      parts.push(value.slice(start, i).trim());
      start = i + 1;
    }
  }
  parts.push(value.slice(start).trim());
  return parts.filter(Boolean);
}

/** A parsed SIP message; header names are kept lowercase and in full form. */
export class SipMessage {
  constructor() {
    this.method = null;
    this.uri = null;
    this.status = 0;
    this.reason = '';
    this.headers = new Map();
    this.body = '';
  }

  static parse(text) {
    const sep = text.indexOf('\r\n\r\n');
    const head = sep < 0 ? text : text.slice(0, sep);
    const body = sep < 0 ? '' : text.slice(sep + 4);
    const lines = head.split('\r\n');
    const msg = new SipMessage();
    const first = lines.shift() || '';
    let m = /^SIP\/2\.0 (\d{3}) ?(.*)$/.exec(first);
    if (m) {
      msg.status = Number(m[1]);
      msg.reason = m[2];
    } else if ((m = /^([A-Z]+) (\S+) SIP\/2\.0$/.exec(first))) {
      msg.method = m[1];
      msg.uri = m[2];
    } else {
      throw new Error(`not a SIP start line: ${first.slice(0, 60)}`);
    }
    let last = null;
    for (const line of lines) {
      if (/^[ \t]/.test(line) && last) {
        const values = msg.headers.get(last);
        values[values.length - 1] += ' ' + line.trim();
        continue;
      }
      const colon = line.indexOf(':');
      if (colon <= 0) continue;
      let name = line.slice(0, colon).trim().toLowerCase();
      name = COMPACT[name] || name;
      const value = line.slice(colon + 1).trim();
      const values = LIST_HEADERS.has(name) && !name.endsWith('authenticate') ? splitList(value) : [value];
      if (!msg.headers.has(name)) msg.headers.set(name, []);
      msg.headers.get(name).push(...values);
      last = name;
    }
    const length = Number(msg.header('content-length') || body.length);
    msg.body = new TextDecoder().decode(new TextEncoder().encode(body).slice(0, length));
    return msg;
  }

  get isRequest() {
    return this.method !== null;
  }

  header(name) {
    const values = this.headers.get(name.toLowerCase());
    return values ? values[0] : undefined;
  }

  all(name) {
    return this.headers.get(name.toLowerCase()) || [];
  }

  get callId() {
    return this.header('call-id');
  }

  get cseq() {
    const [num, method] = (this.header('cseq') || '0 ?').split(/\s+/);
    return { num: Number(num), method };
  }

  get branch() {
    return param(this.header('via') || '', 'branch');
  }

  get fromTag() {
    return tagOf(this.header('from'));
  }

  get toTag() {
    return tagOf(this.header('to'));
  }

  get hasSdp() {
    return /application\/sdp/i.test(this.header('content-type') || '') && this.body.trim().length > 0;
  }
}

/** A parameter of a header value (after the URI's closing `>` when there is one). */
function param(value, name) {
  const tail = value.includes('>') ? value.slice(value.lastIndexOf('>') + 1) : value;
  const m = new RegExp(`;\\s*${name}=("[^"]*"|[^;,\\s>]+)`, 'i').exec(tail);
  return m ? m[1].replace(/^"|"$/g, '') : undefined;
}

function tagOf(value) {
  return value ? param(value, 'tag') : undefined;
}

/** The URI inside a name-addr (`"Bob" <sip:bob@x>;tag=1` → `sip:bob@x`). */
function uriOf(nameAddr) {
  const m = /<([^>]*)>/.exec(nameAddr || '');
  return m ? m[1] : (nameAddr || '').split(';')[0].trim();
}

/** The user part of a SIP URI in a name-addr, or its display name as a fallback. */
export function userOf(nameAddr) {
  const m = /sips?:([^@;>]+)@/.exec(nameAddr || '');
  return m ? decodeURIComponent(m[1]) : uriOf(nameAddr);
}

export function displayNameOf(nameAddr) {
  const m = /^\s*"([^"]*)"/.exec(nameAddr || '') || /^\s*([^<"]+?)\s*</.exec(nameAddr || '');
  return m ? m[1] : '';
}

function buildRequest({ method, uri, headers, body = '', contentType }) {
  const lines = [`${method} ${uri} SIP/2.0`, ...headers];
  if (body) lines.push(`Content-Type: ${contentType || 'application/sdp'}`);
  lines.push(`Content-Length: ${new TextEncoder().encode(body).length}`);
  return lines.join('\r\n') + '\r\n\r\n' + body;
}

// ---------------------------------------------------------------------------------------------
// Digest (RFC 2617 / RFC 7616 with MD5)

function parseChallenge(value) {
  const out = {};
  const re = /(\w[\w-]*)\s*=\s*("([^"\\]|\\.)*"|[^,\s]+)/g;
  let m;
  while ((m = re.exec(value.replace(/^\s*Digest\s+/i, '')))) {
    out[m[1].toLowerCase()] = m[2].replace(/^"|"$/g, '');
  }
  return out;
}

/** Picks the MD5 challenge among a response's WWW-/Proxy-Authenticate headers. */
function pickChallenge(response) {
  const name = response.status === 407 ? 'proxy-authenticate' : 'www-authenticate';
  const challenges = response.all(name).map(parseChallenge);
  return challenges.find((c) => !c.algorithm || c.algorithm.toUpperCase() === 'MD5') || null;
}

class Credentials {
  constructor(username, password) {
    this.username = username;
    this.password = password;
    this.nc = 0;
    this.nonce = null;
  }

  authorize(challenge, method, uri) {
    if (challenge.nonce !== this.nonce) {
      this.nonce = challenge.nonce;
      this.nc = 0;
    }
    this.nc += 1;
    const ha1 = md5(`${this.username}:${challenge.realm}:${this.password}`);
    const ha2 = md5(`${method}:${uri}`);
    const qopAuth = (challenge.qop || '').split(',').map((q) => q.trim()).includes('auth');
    const parts = [
      `username="${this.username}"`, `realm="${challenge.realm}"`, `nonce="${challenge.nonce}"`,
      `uri="${uri}"`, 'algorithm=MD5',
    ];
    let response;
    if (qopAuth) {
      const nc = this.nc.toString(16).padStart(8, '0');
      const cnonce = randomToken(16);
      response = md5(`${ha1}:${challenge.nonce}:${nc}:${cnonce}:auth:${ha2}`);
      parts.push('qop=auth', `nc=${nc}`, `cnonce="${cnonce}"`);
    } else {
      response = md5(`${ha1}:${challenge.nonce}:${ha2}`);
    }
    parts.push(`response="${response}"`);
    if (challenge.opaque !== undefined) parts.push(`opaque="${challenge.opaque}"`);
    return `Digest ${parts.join(', ')}`;
  }
}

// ---------------------------------------------------------------------------------------------
// The user agent

const TRANSACTION_TIMEOUT_MS = 32000; // Timer B / F (64 × T1)
const REGISTER_EXPIRES = 600;
const RECONNECT_MAX_MS = 30000;
const GATHER_CAP_MS = 3000;

/**
 * Events (all `CustomEvent`s, details in `detail`):
 *   `state`     {state, reason}: idle, connecting, registering, registered, failed, disconnected
 *   `incoming`  {call}: a call is offered; call.answer() or call.decline()
 *   `log`       {direction: 'in'|'out', text}: every SIP message, for debugging
 */
export class UserAgent extends EventTarget {
  constructor({ wsUrl, username, password, domain, displayName = '' }) {
    super();
    this.wsUrl = wsUrl;
    this.username = username;
    this.domain = domain;
    this.displayName = displayName;
    this.credentials = new Credentials(username, password);
    this.state = 'idle';
    this.reason = '';
    this.contactUser = randomToken(8);
    this.viaHost = `${randomToken(12)}.invalid`;
    this.contact = `<sip:${this.contactUser}@${this.viaHost};transport=ws>`;
    this.aor = `sip:${username}@${domain}`;
    this.regCallId = `${randomToken(20)}`;
    this.regCseq = 0;
    this.regFromTag = randomToken(10);
    this.transactions = new Map(); // branch -> {method, onResponse, timer}
    this.calls = new Set();
    this.ws = null;
    this.stopped = true;
    this.reconnectDelay = 1000;
    this.reconnectTimer = null;
    this.refreshTimer = null;
    this.keepaliveTimer = null;
    this.registeredUntil = 0;
  }

  /** Connects and registers; reconnects (with backoff) and re-registers until `stop()`. */
  start() {
    this.stopped = false;
    this.connect();
  }

  /** Unregisters (best effort), ends calls and closes the connection. */
  async stop() {
    this.stopped = true;
    clearTimeout(this.reconnectTimer);
    clearTimeout(this.refreshTimer);
    clearInterval(this.keepaliveTimer);
    for (const call of [...this.calls]) call.hangup();
    if (this.state === 'registered' && this.ws && this.ws.readyState === WebSocket.OPEN) {
      await Promise.race([this.register(0).catch(() => {}), sleep(1500)]);
    }
    if (this.ws) this.ws.close(1000);
    this.ws = null;
    this.setState('idle', 'signed out');
  }

  /** Starts an outgoing call to `target` (a number or a user) with the local `stream`. */
  call(target, stream) {
    const call = new Call(this, 'outgoing');
    call.remoteUser = target;
    this.calls.add(call);
    call.invite(target, stream);
    return call;
  }

  setState(state, reason = '') {
    this.state = state;
    this.reason = reason;
    this.dispatchEvent(new CustomEvent('state', { detail: { state, reason } }));
  }

  // --- connection ---------------------------------------------------------------------------

  connect() {
    clearTimeout(this.reconnectTimer);
    this.setState('connecting');
    let ws;
    try {
      ws = new WebSocket(this.wsUrl, 'sip');
    } catch (e) {
      this.setState('failed', `Cannot open ${this.wsUrl}: ${e.message}`);
      return;
    }
    this.ws = ws;
    ws.onopen = () => {
      if (ws.protocol !== 'sip') {
        this.log('in', `server did not accept the "sip" subprotocol (got "${ws.protocol}")`);
      }
      this.reconnectDelay = 1000;
      this.keepaliveTimer = setInterval(() => this.sendRaw('\r\n\r\n'), 25000);
      this.register(REGISTER_EXPIRES).catch(() => {});
    };
    ws.onmessage = (ev) => {
      if (typeof ev.data === 'string') this.receive(ev.data);
      else ev.data.text?.().then((t) => this.receive(t));
    };
    ws.onclose = () => {
      if (this.ws !== ws) return;
      clearInterval(this.keepaliveTimer);
      clearTimeout(this.refreshTimer);
      this.ws = null;
      // The gateway ends the calls of a connection that closes: so do we.
      for (const call of [...this.calls]) call.setState('ended', 'Connection to the gateway lost');
      for (const [branch, tx] of this.transactions) {
        clearTimeout(tx.timer);
        this.transactions.delete(branch);
        tx.onResponse(syntheticResponse(503, 'Connection lost'));
      }
      if (this.stopped) return;
      if (this.state === 'failed') return; // wrong password: do not hammer the server
      const delay = Math.min(this.reconnectDelay, RECONNECT_MAX_MS);
      this.reconnectDelay = Math.min(this.reconnectDelay * 2, RECONNECT_MAX_MS);
      const jittered = Math.round(delay * (0.8 + Math.random() * 0.4));
      this.reconnectAt = Date.now() + jittered;
      this.setState('disconnected', `Connection lost; reconnecting in ${Math.round(jittered / 1000)} s`);
      this.reconnectTimer = setTimeout(() => this.connect(), jittered);
    };
  }

  /** Reconnects now (the page's "retry" button). */
  reconnectNow() {
    if (this.stopped) return;
    if (this.ws) {
      try { this.ws.close(); } catch { /* already closing */ }
    }
    this.ws = null;
    this.reconnectDelay = 1000;
    this.connect();
  }

  sendRaw(text) {
    if (!this.ws || this.ws.readyState !== WebSocket.OPEN) return false;
    this.ws.send(text);
    if (text.trim()) this.log('out', text);
    return true;
  }

  log(direction, text) {
    this.dispatchEvent(new CustomEvent('log', { detail: { direction, text } }));
  }

  // --- transactions -------------------------------------------------------------------------

  /** Sends a request as a new client transaction; `onResponse` sees every response. */
  sendRequest(fields, onResponse) {
    const branch = `z9hG4bK${randomToken(16)}`;
    const headers = [
      `Via: SIP/2.0/WSS ${this.viaHost};branch=${branch}`,
      'Max-Forwards: 70',
      ...fields.headers,
      `User-Agent: ${USER_AGENT}`,
    ];
    const text = buildRequest({ ...fields, headers });
    if (fields.method === 'ACK') {
      this.sendRaw(text);
      return branch;
    }
    const tx = {
      method: fields.method,
      onResponse,
      timer: setTimeout(() => {
        this.transactions.delete(branch);
        onResponse(syntheticResponse(408, 'Request Timeout'));
      }, TRANSACTION_TIMEOUT_MS),
    };
    this.transactions.set(branch, tx);
    if (!this.sendRaw(text)) {
      clearTimeout(tx.timer);
      this.transactions.delete(branch);
      setTimeout(() => onResponse(syntheticResponse(503, 'Not connected')));
    }
    return branch;
  }

  /** Sends a response to `request` with `extra` headers. */
  respond(request, status, reason, { toTag, headers = [], body = '' } = {}) {
    let to = request.header('to');
    if (toTag && !tagOf(to)) to += `;tag=${toTag}`;
    const lines = [`SIP/2.0 ${status} ${reason}`];
    for (const via of request.all('via')) lines.push(`Via: ${via}`);
    for (const rr of request.all('record-route')) {
      if (status > 100 && status < 300) lines.push(`Record-Route: ${rr}`);
    }
    lines.push(`From: ${request.header('from')}`, `To: ${to}`, `Call-ID: ${request.callId}`,
      `CSeq: ${request.header('cseq')}`, ...headers, `User-Agent: ${USER_AGENT}`);
    if (body) lines.push('Content-Type: application/sdp');
    lines.push(`Content-Length: ${new TextEncoder().encode(body).length}`);
    this.sendRaw(lines.join('\r\n') + '\r\n\r\n' + body);
  }

  receive(text) {
    if (!text.trim()) return; // keep-alive CRLF (RFC 5626 pong)
    this.log('in', text);
    let msg;
    try {
      msg = SipMessage.parse(text);
    } catch (e) {
      this.log('in', `unparsable message dropped: ${e.message}`);
      return;
    }
    if (!msg.isRequest) {
      const tx = this.transactions.get(msg.branch);
      if (!tx || tx.method !== msg.cseq.method) {
        // A 2xx retransmission of an INVITE we already answered with ACK: ACK it again.
        for (const call of this.calls) call.onStrayResponse(msg);
        return;
      }
      if (msg.status >= 200) {
        clearTimeout(tx.timer);
        this.transactions.delete(msg.branch);
      }
      tx.onResponse(msg);
      return;
    }
    this.onRequest(msg);
  }

  onRequest(req) {
    for (const call of this.calls) {
      if (call.matches(req)) {
        call.onRequest(req);
        return;
      }
    }
    switch (req.method) {
      case 'INVITE': {
        if (req.toTag) {
          this.respond(req, 481, 'Call/Transaction Does Not Exist');
          return;
        }
        const call = new Call(this, 'incoming');
        this.calls.add(call);
        call.onIncomingInvite(req);
        return;
      }
      case 'OPTIONS':
        this.respond(req, 200, 'OK', {
          toTag: req.toTag ? undefined : randomToken(8),
          headers: ['Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO', 'Accept: application/sdp'],
        });
        return;
      case 'ACK':
        return;
      case 'CANCEL':
      case 'BYE':
        this.respond(req, 481, 'Call/Transaction Does Not Exist');
        return;
      default:
        this.respond(req, 405, 'Method Not Allowed', {
          headers: ['Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO'],
        });
    }
  }

  // --- registration -------------------------------------------------------------------------

  /** Sends REGISTER for `expires` seconds (0 unregisters); resolves with the final response. */
  register(expires) {
    if (expires > 0 && this.state !== 'registered') this.setState('registering');
    return new Promise((resolve, reject) => {
      let authorization = null;
      let attempts = 0;
      const send = () => {
        this.regCseq += 1;
        const headers = [
          `To: <${this.aor}>`,
          `From: <${this.aor}>;tag=${this.regFromTag}`,
          `Call-ID: ${this.regCallId}`,
          `CSeq: ${this.regCseq} REGISTER`,
          `Contact: ${this.contact}`,
          `Expires: ${expires}`,
          'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO',
        ];
        if (authorization) headers.push(authorization);
        this.sendRequest({ method: 'REGISTER', uri: `sip:${this.domain}`, headers }, onResponse);
      };
      const onResponse = (res) => {
        if (res.status < 200) return;
        if ((res.status === 401 || res.status === 407) && attempts < 2) {
          const challenge = pickChallenge(res);
          // A second challenge that is not `stale` means the password was wrong.
          if (challenge && (attempts === 0 || /^true$/i.test(challenge.stale || ''))) {
            attempts += 1;
            const name = res.status === 407 ? 'Proxy-Authorization' : 'Authorization';
            authorization = `${name}: ${this.credentials.authorize(challenge, 'REGISTER', `sip:${this.domain}`)}`;
            send();
            return;
          }
        }
        if (expires === 0) {
          resolve(res);
          return;
        }
        if (res.status >= 200 && res.status < 300) {
          const granted = grantedExpires(res, this.contactUser) || expires;
          this.registeredUntil = Date.now() + granted * 1000;
          // Refresh well before expiry: at half the lifetime, at most 30 s before the end.
          const refreshIn = Math.max(5, Math.min(granted / 2, granted - 30)) * 1000;
          clearTimeout(this.refreshTimer);
          this.refreshTimer = setTimeout(() => this.register(REGISTER_EXPIRES).catch(() => {}), refreshIn);
          this.refreshAt = Date.now() + refreshIn;
          this.setState('registered', `Registered for ${granted} s`);
          resolve(res);
        } else if (res.status === 401 || res.status === 403 || res.status === 407) {
          this.setState('failed', 'Wrong username or password');
          this.stopped = true;
          reject(new Error('auth'));
        } else if (res.status === 503 && /connection lost|not connected/i.test(res.reason)) {
          reject(new Error(res.reason)); // onclose reconnects
        } else {
          const reason = `Registration refused: ${res.status} ${res.reason}`;
          this.setState('disconnected', reason);
          // Try again later, as after a lost connection.
          clearTimeout(this.refreshTimer);
          this.refreshTimer = setTimeout(() => this.register(REGISTER_EXPIRES).catch(() => {}),
            Math.min(this.reconnectDelay *= 2, RECONNECT_MAX_MS));
          reject(new Error(reason));
        }
      };
      send();
    });
  }
}

function grantedExpires(res, contactUser) {
  for (const contact of res.all('contact')) {
    if (contact.includes(contactUser)) {
      const e = Number(param(contact, 'expires'));
      if (e > 0) return e;
    }
  }
  const e = Number(res.header('expires'));
  return e > 0 ? e : 0;
}

function syntheticResponse(status, reason) {
  const res = new SipMessage();
  res.status = status;
  res.reason = reason;
  return res;
}

function sleep(ms) {
  return new Promise((r) => setTimeout(r, ms));
}

// ---------------------------------------------------------------------------------------------
// Calls

const REASONS = {
  404: 'Number not found', 480: 'Unavailable', 484: 'Incomplete number', 486: 'Busy',
  487: 'Cancelled', 488: 'Call refused: media not accepted', 403: 'Not allowed', 408: 'No answer',
  500: 'Gateway error', 503: 'Service unavailable', 600: 'Busy everywhere', 603: 'Declined',
};

/**
 * One call. `state`: calling, ringing, early (early media), incoming, connecting, connected,
 * ended; `endReason` says why it ended. Events: `state` {state, reason}, `remotestream` {stream}.
 */
export class Call extends EventTarget {
  constructor(ua, direction) {
    super();
    this.ua = ua;
    this.direction = direction;
    this.state = 'new';
    this.endReason = '';
    this.endStatus = 0;
    this.pc = null;
    this.remoteStream = null;
    this.localStream = null;
    this.callId = null;
    this.localTag = randomToken(10);
    this.remoteTag = null;
    this.localCseq = 0;
    this.remoteCseq = 0;
    this.routeSet = [];
    this.remoteTarget = null;
    this.remoteUri = null;
    this.localUri = ua.aor;
    this.remoteUser = '';
    this.remoteName = '';
    this.answeredAt = 0;
    this.dtmfSent = '';
    this.inviteBranch = null;
    this.inviteCseq = 0;
    this.inviteHeaders = null;
    this.provisional = false;
    this.cancelWanted = false;
    this.earlyAnswer = null;
    this.incomingInvite = null;
    this.okTimer = null;
  }

  get confirmed() {
    return this.state === 'connected';
  }

  setState(state, reason = '') {
    if (this.state === 'ended') return;
    this.state = state;
    if (state === 'connected' && !this.answeredAt) this.answeredAt = Date.now();
    if (state === 'ended') {
      this.endReason = reason;
      clearTimeout(this.okTimer);
      this.ua.calls.delete(this);
      if (this.pc) this.pc.close();
      if (this.localStream) this.localStream.getTracks().forEach((t) => t.stop());
    }
    this.dispatchEvent(new CustomEvent('state', { detail: { state, reason } }));
  }

  matches(req) {
    if (req.callId !== this.callId) return false;
    if (req.method === 'CANCEL' || (req.method === 'ACK' && !req.toTag)) return true;
    return req.fromTag === this.remoteTag && (!req.toTag || req.toTag === this.localTag);
  }

  // --- media --------------------------------------------------------------------------------

  createPeerConnection(stream) {
    const pc = new RTCPeerConnection({ bundlePolicy: 'max-bundle', rtcpMuxPolicy: 'require' });
    this.pc = pc;
    this.localStream = stream;
    for (const track of stream.getAudioTracks()) pc.addTrack(track, stream);
    pc.ontrack = (ev) => {
      this.remoteStream = ev.streams[0] || new MediaStream([ev.track]);
      this.dispatchEvent(new CustomEvent('remotestream', { detail: { stream: this.remoteStream } }));
    };
    pc.onconnectionstatechange = () => {
      this.dispatchEvent(new CustomEvent('media', { detail: { state: pc.connectionState } }));
      if (pc.connectionState === 'failed' && this.state !== 'ended') {
        this.hangup('Media connection failed');
      }
    };
    return pc;
  }

  /** The local description once ICE gathering completes (or after a cap). */
  async gatheredSdp() {
    const pc = this.pc;
    if (pc.iceGatheringState !== 'complete') {
      await new Promise((resolve) => {
        const timer = setTimeout(resolve, GATHER_CAP_MS);
        const check = () => {
          if (pc.iceGatheringState === 'complete') {
            clearTimeout(timer);
            resolve();
          }
        };
        pc.addEventListener('icegatheringstatechange', check);
        pc.addEventListener('icecandidate', (ev) => { if (!ev.candidate) { clearTimeout(timer); resolve(); } });
      });
    }
    return pc.localDescription.sdp;
  }

  async applyAnswer(sdp) {
    if (this.pc.signalingState === 'have-local-offer') {
      await this.pc.setRemoteDescription({ type: 'answer', sdp });
      this.earlyAnswer = sdp;
    } else if (sdp.trim() !== (this.earlyAnswer || '').trim()) {
      // The 2xx repeats the 18x answer (RFC 6337 §3.1); a different one is ignored.
      this.ua.log('in', 'a different SDP answer in the 2xx than in the 18x was ignored');
    }
  }

  /** Sends DTMF digits (RFC 4733 through the audio sender); returns false outside a call. */
  sendDtmf(digits, duration = 100, gap = 70) {
    const sender = this.pc && this.pc.getSenders().find((s) => s.track && s.track.kind === 'audio');
    if (!sender || !sender.dtmf || !['connected', 'early'].includes(this.state)) return false;
    if (sender.dtmf.canInsertDTMF === false) return false;
    sender.dtmf.insertDTMF(sender.dtmf.toneBuffer + digits, duration, gap);
    this.dtmfSent += digits;
    return true;
  }

  // --- outgoing -----------------------------------------------------------------------------

  async invite(target, stream) {
    const ua = this.ua;
    this.callId = randomToken(22);
    const user = /^[+\d*#]+$/.test(target) ? target.replace(/#/g, '%23') : encodeURIComponent(target);
    this.remoteUri = /^sips?:/.test(target) ? target : `sip:${user}@${ua.domain}`;
    this.remoteTarget = this.remoteUri;
    this.setState('calling');
    let sdp;
    try {
      const pc = this.createPeerConnection(stream);
      await pc.setLocalDescription(await pc.createOffer());
      sdp = await this.gatheredSdp();
    } catch (e) {
      this.setState('ended', `Could not set up media: ${e.message}`);
      return;
    }
    if (this.state === 'ended') return;
    if (this.cancelWanted) {
      this.setState('ended', 'Cancelled');
      return;
    }
    let authorization = null;
    let attempts = 0;
    const from = `${ua.displayName ? `"${ua.displayName}" ` : ''}<${ua.aor}>;tag=${this.localTag}`;
    const send = () => {
      this.localCseq += 1;
      this.inviteCseq = this.localCseq;
      this.provisional = false;
      this.inviteHeaders = [`To: <${this.remoteUri}>`, `From: ${from}`, `Call-ID: ${this.callId}`];
      const headers = [
        ...this.inviteHeaders,
        `CSeq: ${this.inviteCseq} INVITE`,
        `Contact: ${ua.contact}`,
        'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO',
      ];
      if (authorization) headers.push(authorization);
      this.inviteBranch = ua.sendRequest({ method: 'INVITE', uri: this.remoteUri, headers, body: sdp }, onResponse);
    };
    const onResponse = async (res) => {
      if (res.status < 200) this.provisional = true;
      if (this.state === 'ended') {
        // Hung up before the answer: CANCEL once we may, ACK and BYE a 2xx that crossed it.
        if (res.status < 200) {
          if (this.cancelWanted) this.sendCancel();
        } else if (res.status < 300) {
          this.ackAndBye(res);
        } else if (res.header('via')) {
          this.sendNon2xxAck(res);
        }
        return;
      }
      if (res.status === 100) return;
      if (res.status < 200) {
        if (res.toTag) this.remoteTag = res.toTag;
        if (res.hasSdp) {
          try {
            await this.applyAnswer(res.body);
            this.setState('early');
          } catch (e) {
            ua.log('in', `early SDP rejected: ${e.message}`);
          }
        } else if (this.state === 'calling') {
          this.setState('ringing');
        }
        return;
      }
      if (res.status < 300) {
        this.remoteTag = res.toTag;
        this.routeSet = res.all('record-route').slice().reverse();
        this.remoteTarget = uriOf(res.header('contact')) || this.remoteUri;
        this.sendAck(res);
        if (this.cancelWanted) {
          this.sendBye();
          this.setState('ended', 'Cancelled');
          return;
        }
        try {
          if (res.hasSdp) await this.applyAnswer(res.body);
          else if (!this.earlyAnswer) throw new Error('no SDP answer');
        } catch (e) {
          this.sendBye();
          this.setState('ended', `Media negotiation failed: ${e.message}`);
          return;
        }
        this.setState('connected');
        return;
      }
      // A non-2xx final response: the server transaction wants an ACK (not for synthetic ones).
      if (res.header('via')) this.sendNon2xxAck(res);
      if ((res.status === 401 || res.status === 407) && attempts === 0 && !this.cancelWanted) {
        const challenge = pickChallenge(res);
        if (challenge) {
          attempts += 1;
          const name = res.status === 407 ? 'Proxy-Authorization' : 'Authorization';
          authorization = `${name}: ${ua.credentials.authorize(challenge, 'INVITE', this.remoteUri)}`;
          send();
          return;
        }
      }
      this.endStatus = res.status;
      const reason = this.cancelWanted ? 'Cancelled'
        : res.status === 401 || res.status === 407 ? 'Not authorised to call'
        : `${REASONS[res.status] || res.reason} (${res.status})`;
      this.setState('ended', reason);
    };
    send();
  }

  sendNon2xxAck(res) {
    // RFC 3261 §17.1.1.3: same branch and CSeq number as the INVITE, To from the response.
    const headers = [
      `Via: SIP/2.0/WSS ${this.ua.viaHost};branch=${this.inviteBranch}`,
      'Max-Forwards: 70',
      `To: ${res.header('to')}`,
      this.inviteHeaders[1],
      this.inviteHeaders[2],
      `CSeq: ${this.inviteCseq} ACK`,
    ];
    this.ua.sendRaw(buildRequest({ method: 'ACK', uri: this.remoteUri, headers }));
  }

  dialogHeaders(method, cseq) {
    const to = `<${this.remoteUri}>;tag=${this.remoteTag}`;
    const from = `<${this.localUri}>;tag=${this.localTag}`;
    return [
      ...this.routeSet.map((r) => `Route: ${r}`),
      `To: ${to}`,
      `From: ${from}`,
      `Call-ID: ${this.callId}`,
      `CSeq: ${cseq} ${method}`,
    ];
  }

  sendAck(res) {
    this.lastAckedCseq = res.cseq.num;
    this.ua.sendRequest({
      method: 'ACK',
      uri: this.remoteTarget,
      headers: [...this.dialogHeaders('ACK', res.cseq.num), `Contact: ${this.ua.contact}`],
    });
  }

  /** A 2xx that arrives after its transaction closed (a retransmission, or after CANCEL). */
  onStrayResponse(res) {
    if (res.callId !== this.callId || res.cseq.method !== 'INVITE' || res.status < 200 || res.status >= 300) return;
    if (this.state === 'connected' && res.toTag === this.remoteTag) this.sendAck(res);
  }

  ackAndBye(res) {
    this.remoteTag = res.toTag;
    this.routeSet = res.all('record-route').slice().reverse();
    this.remoteTarget = uriOf(res.header('contact')) || this.remoteUri;
    this.sendAck(res);
    this.sendBye();
  }

  sendCancel() {
    if (this.cancelSent) return;
    this.cancelSent = true;
    const headers = [
      `Via: SIP/2.0/WSS ${this.ua.viaHost};branch=${this.inviteBranch}`,
      'Max-Forwards: 70',
      this.inviteHeaders[0],
      this.inviteHeaders[1],
      this.inviteHeaders[2],
      `CSeq: ${this.inviteCseq} CANCEL`,
    ];
    this.ua.sendRaw(buildRequest({ method: 'CANCEL', uri: this.remoteUri, headers }));
  }

  sendBye() {
    this.localCseq += 1;
    this.ua.sendRequest(
      { method: 'BYE', uri: this.remoteTarget, headers: this.dialogHeaders('BYE', this.localCseq) },
      () => {},
    );
  }

  /** Ends the call, whatever its state: CANCEL, BYE, or 486/487 for an unanswered incoming one. */
  hangup(reason = 'You hung up') {
    switch (this.state) {
      case 'ended':
        return;
      case 'calling':
      case 'ringing':
      case 'early':
        if (this.direction === 'outgoing') {
          this.cancelWanted = true;
          if (this.provisional) this.sendCancel();
          // The final response (487, or a 2xx we then BYE) ends it; do not wait for it in the UI.
          this.setState('ended', reason === 'You hung up' ? 'Cancelled' : reason);
          return;
        }
        break;
      case 'incoming':
        this.decline();
        return;
      default:
        break;
    }
    if (this.remoteTag) this.sendBye();
    this.setState('ended', reason);
  }

  // --- incoming -----------------------------------------------------------------------------

  onIncomingInvite(req) {
    this.callId = req.callId;
    this.remoteTag = req.fromTag;
    this.remoteCseq = req.cseq.num;
    this.incomingInvite = req;
    this.routeSet = req.all('record-route');
    this.remoteTarget = uriOf(req.header('contact'));
    this.remoteUri = uriOf(req.header('from'));
    this.localUri = uriOf(req.header('to'));
    this.remoteUser = userOf(req.header('from'));
    this.remoteName = displayNameOf(req.header('from'));
    this.ua.respond(req, 180, 'Ringing', { toTag: this.localTag, headers: [`Contact: ${this.ua.contact}`] });
    this.setState('incoming');
    this.ua.dispatchEvent(new CustomEvent('incoming', { detail: { call: this } }));
  }

  /** Answers an incoming call with the local `stream`. */
  async answer(stream) {
    if (this.state !== 'incoming') return;
    const req = this.incomingInvite;
    this.setState('connecting');
    let sdp;
    try {
      const pc = this.createPeerConnection(stream);
      if (req.hasSdp) {
        await pc.setRemoteDescription({ type: 'offer', sdp: req.body });
        await pc.setLocalDescription(await pc.createAnswer());
      } else {
        await pc.setLocalDescription(await pc.createOffer()); // offer in 2xx, answer in ACK
      }
      sdp = await this.gatheredSdp();
    } catch (e) {
      this.ua.respond(req, 488, 'Not Acceptable Here', { toTag: this.localTag });
      this.setState('ended', `Could not answer: ${e.message}`);
      return;
    }
    if (this.state === 'ended') return;
    const send200 = () => this.ua.respond(req, 200, 'OK', {
      toTag: this.localTag,
      headers: [`Contact: ${this.ua.contact}`, 'Allow: INVITE, ACK, CANCEL, BYE, OPTIONS, INFO'],
      body: sdp,
    });
    send200();
    // The UAS core retransmits its 2xx until the ACK (RFC 3261 §13.3.1.4), on any transport.
    let interval = 500;
    const started = Date.now();
    const again = () => {
      if (this.gotAck || this.state === 'ended') return;
      if (Date.now() - started > TRANSACTION_TIMEOUT_MS) {
        this.sendBye();
        this.setState('ended', 'No ACK from the gateway');
        return;
      }
      send200();
      interval = Math.min(interval * 2, 4000);
      this.okTimer = setTimeout(again, interval);
    };
    this.okTimer = setTimeout(again, interval);
    this.setState('connected');
  }

  /** Refuses an incoming call (486 Busy Here). */
  decline() {
    if (this.state !== 'incoming') return;
    this.ua.respond(this.incomingInvite, 486, 'Busy Here', { toTag: this.localTag });
    this.setState('ended', 'Declined');
  }

  onRequest(req) {
    const ua = this.ua;
    switch (req.method) {
      case 'ACK':
        this.gotAck = true;
        clearTimeout(this.okTimer);
        if (req.hasSdp && this.pc && this.pc.signalingState === 'have-local-offer') {
          this.pc.setRemoteDescription({ type: 'answer', sdp: req.body }).catch((e) => this.hangup(`Bad answer: ${e.message}`));
        }
        return;
      case 'CANCEL':
        ua.respond(req, 200, 'OK', { toTag: this.localTag });
        if (this.state === 'incoming' || this.state === 'connecting') {
          ua.respond(this.incomingInvite, 487, 'Request Terminated', { toTag: this.localTag });
          this.setState('ended', 'Caller hung up');
        }
        return;
      case 'BYE':
        ua.respond(req, 200, 'OK');
        this.setState('ended', 'The other side hung up');
        return;
      case 'INVITE':
        this.onReinvite(req);
        return;
      case 'OPTIONS':
      case 'INFO':
      case 'UPDATE':
        ua.respond(req, 200, 'OK', { headers: [`Contact: ${ua.contact}`] });
        return;
      default:
        ua.respond(req, 501, 'Not Implemented');
    }
  }

  /** A re-INVITE (hold, refresh): answered from the current connection. */
  async onReinvite(req) {
    const ua = this.ua;
    if (req.cseq.num <= this.remoteCseq) return; // retransmission
    this.remoteCseq = req.cseq.num;
    try {
      let sdp = this.pc.localDescription.sdp;
      if (req.hasSdp) {
        await this.pc.setRemoteDescription({ type: 'offer', sdp: req.body });
        await this.pc.setLocalDescription(await this.pc.createAnswer());
        sdp = await this.gatheredSdp();
      }
      ua.respond(req, 200, 'OK', { headers: [`Contact: ${ua.contact}`], body: sdp });
    } catch (e) {
      ua.respond(req, 488, 'Not Acceptable Here');
    }
  }
}
