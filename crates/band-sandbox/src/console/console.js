// The sandbox console: act as a seeded person through the human API, follow
// rooms live over that person's Phoenix socket, and show what agents did with
// each message (lifecycle from the sandbox, rule from the agent's feed).
// Vanilla JS, no build step; everything it talks to is on loopback.

const $ = (id) => document.getElementById(id);
const FEED_KEY = 'switchboard.agentFeed';
const POLL_MS = 1000;

/** Everything the page knows. */
const state = {
  users: [],          // [{id, handle, name, api_key}] from /_sandbox/users
  me: null,           // the picked user
  rooms: [],          // the user's rooms (human API)
  roomId: null,       // the open room
  participants: [],   // its participants
  messages: new Map(),// id -> message (REST shape), in arrival order
  names: new Map(),   // entity id -> {handle, name}, for markers and delivery maps
  delivery: new Map(),// message id -> {agent id -> {status, attempts}}
  handled: new Map(), // message id -> /handled entry
  pending: [],        // the agent's pending conversations (/conversations), all rooms
  feed: '',
  socket: null,
  poll: null,
};

// ------------------------------------------------------------------ helpers

/** Builds an element: el('li', {class: 'x', text: 'y'}, child, ...). */
function el(tag, attrs = {}, ...children) {
  const node = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs)) {
    if (v === undefined || v === null || v === false) continue;
    if (k === 'text') node.textContent = v;
    else if (k === 'class') node.className = v;
    else if (k.startsWith('on')) node.addEventListener(k.slice(2), v);
    else node.setAttribute(k, v === true ? '' : v);
  }
  for (const c of children) if (c) node.append(c);
  return node;
}

function showError(message) {
  const box = $('alert');
  box.textContent = message;
  box.hidden = false;
  clearTimeout(showError.timer);
  showError.timer = setTimeout(() => { box.hidden = true; }, 6000);
}

function announce(text) {
  const line = el('p', { text });
  $('announcer').append(line);
  // Keep the live region short; old lines have been read already.
  while ($('announcer').childElementCount > 5) $('announcer').firstElementChild.remove();
}

/** A human API call as the picked user; throws with the platform's message. */
async function api(path, { method = 'GET', body } = {}) {
  const headers = { 'x-api-key': state.me.api_key };
  if (body !== undefined) headers['content-type'] = 'application/json';
  const res = await fetch(path, { method, headers, body: body === undefined ? undefined : JSON.stringify(body) });
  const json = await res.json().catch(() => ({}));
  if (!res.ok) {
    const err = json.error || {};
    const details = err.details ? ' ' + Object.values(err.details).flat().join('; ') : '';
    throw new Error(`${err.message || res.statusText} (${res.status})${details}`);
  }
  return json;
}

async function getJson(url) {
  const res = await fetch(url, { cache: 'no-store' });
  if (!res.ok) throw new Error(`${url}: ${res.status}`);
  return res.json();
}

const escapeRe = (text) => text.replace(/[.*+?^$()|[\]{}\\]/g, '\\$&');

function remember(entity) {
  if (entity && entity.id) {
    const known = state.names.get(entity.id) || {};
    state.names.set(entity.id, {
      handle: entity.handle || entity.username || known.handle || entity.id,
      name: entity.name || known.name || entity.handle || entity.id,
      type: entity.type || known.type,
    });
  }
}

const label = (id) => (state.names.get(id) || { name: id.slice(0, 8) }).name;
const handleOf = (id) => (state.names.get(id) || { handle: id.slice(0, 8) }).handle;

// ------------------------------------------------------------------ Phoenix v2

/**
 * A tiny Phoenix Channels v2 client: frames are [join_ref, ref, topic, event,
 * payload]; heartbeats every 25 s (a missed reply closes and reconnects);
 * reconnects with backoff and rejoins every topic; pushes whose join_ref is
 * not the topic's current one are dropped, as the official clients do.
 */
class Phoenix {
  constructor(url, onState) {
    this.url = url;
    this.onState = onState;
    this.ref = 0;
    this.topics = new Map();   // topic -> {joinRef, onEvent, onJoin}
    this.replies = new Map();  // ref -> callback
    this.tries = 0;
    this.stopped = false;
  }

  nextRef() { this.ref += 1; return String(this.ref); }

  connect() {
    this.onState('connecting');
    const ws = new WebSocket(this.url);
    this.ws = ws;
    ws.onopen = () => {
      this.tries = 0;
      this.onState('connected');
      this.pendingBeat = null;
      this.beat = setInterval(() => this.heartbeat(), 25000);
      for (const topic of this.topics.keys()) this.sendJoin(topic);
    };
    ws.onmessage = (e) => this.receive(e.data);
    ws.onclose = () => {
      clearInterval(this.beat);
      this.replies.clear();
      if (this.stopped) return;
      this.onState('offline');
      const delay = Math.min(10000, 500 * 2 ** this.tries) * (0.5 + Math.random() / 2);
      this.tries += 1;
      this.retry = setTimeout(() => this.connect(), delay);
    };
  }

  close() {
    this.stopped = true;
    clearTimeout(this.retry);
    clearInterval(this.beat);
    if (this.ws) this.ws.close();
  }

  send(frame) {
    if (this.ws && this.ws.readyState === WebSocket.OPEN) this.ws.send(JSON.stringify(frame));
  }

  heartbeat() {
    if (this.pendingBeat) {
      // The last heartbeat got no answer: the connection is dead.
      this.pendingBeat = null;
      this.ws.close();
      return;
    }
    const ref = this.nextRef();
    this.pendingBeat = ref;
    this.replies.set(ref, () => { this.pendingBeat = null; });
    this.send([null, ref, 'phoenix', 'heartbeat', {}]);
  }

  join(topic, onEvent, onJoin = () => {}) {
    this.topics.set(topic, { joinRef: null, onEvent, onJoin });
    this.sendJoin(topic);
  }

  sendJoin(topic) {
    const entry = this.topics.get(topic);
    if (!entry || !this.ws || this.ws.readyState !== WebSocket.OPEN) return;
    const ref = this.nextRef();
    entry.joinRef = ref;
    this.replies.set(ref, (reply) => {
      if (reply.status === 'ok') entry.onJoin();
      else showError(`cannot follow ${topic}: ${(reply.response || {}).reason || reply.status}`);
    });
    this.send([ref, ref, topic, 'phx_join', {}]);
  }

  leave(topic) {
    const entry = this.topics.get(topic);
    if (!entry) return;
    this.topics.delete(topic);
    this.send([entry.joinRef, this.nextRef(), topic, 'phx_leave', {}]);
  }

  receive(text) {
    let frame;
    try { frame = JSON.parse(text); } catch { return; }
    if (!Array.isArray(frame) || frame.length !== 5) return;
    const [joinRef, ref, topic, event, payload] = frame;
    if (event === 'phx_reply') {
      const done = this.replies.get(ref);
      this.replies.delete(ref);
      if (done) done(payload || {});
      return;
    }
    const entry = this.topics.get(topic);
    if (!entry || joinRef !== entry.joinRef) return;
    if (event === 'phx_close' || event === 'phx_error') {
      // The server ended this join; try again shortly if we still want it.
      setTimeout(() => { if (this.topics.get(topic) === entry) this.sendJoin(topic); }, 1000);
      return;
    }
    entry.onEvent(event, payload || {});
  }
}

function setSocketState(s) {
  const pill = $('socket-state');
  pill.textContent = s === 'connected' ? 'socket connected' : s === 'connecting' ? 'socket connecting…' : 'socket offline';
  pill.className = 'pill ' + (s === 'connected' ? 'on' : s === 'offline' ? 'off' : '');
}

// ------------------------------------------------------------------ users

async function loadUsers() {
  state.users = await getJson('/_sandbox/users');
  const list = $('users');
  list.replaceChildren(...state.users.map((u) => el('li', {},
    el('button', { type: 'button', onclick: () => pickUser(u.id), 'data-handle': u.handle },
      el('span', { text: u.name }), el('span', { class: 'muted', text: '@' + u.handle })))));
}

async function pickUser(id) {
  const user = state.users.find((u) => u.id === id);
  if (!user) return;
  stopSession();
  state.me = user;
  remember(user);
  localStorage.setItem('switchboard.user', user.id);
  $('me-name').textContent = user.name;
  $('me-handle').textContent = '@' + user.handle;
  $('whoami').hidden = false;
  $('picker').hidden = true;
  $('app').hidden = false;
  const scheme = location.protocol === 'https:' ? 'wss' : 'ws';
  // Browsers cannot set headers on a WebSocket: the sandbox (only) takes the key in the query.
  const url = `${scheme}://${location.host}/api/v1/socket/websocket?vsn=2.0.0&api_key=${encodeURIComponent(user.api_key)}`;
  state.socket = new Phoenix(url, setSocketState);
  state.socket.connect();
  state.socket.join(`user_rooms:${user.id}`, () => loadRooms().catch((e) => showError(e.message)));
  state.socket.join(`user_contacts:${user.id}`, (event, payload) => {
    if (event === 'contact_request_received') announce(`Contact request from ${(payload.requester || {}).name || 'someone'}`);
    if (event === 'contact_added') announce(`${payload.name || payload.handle} is now a contact`);
    if (event === 'contact_request_updated' && payload.status === 'expired') announce('A contact request expired');
    loadContacts().catch((e) => showError(e.message));
  });
  state.poll = setInterval(pollLifecycle, POLL_MS);
  await Promise.all([loadRooms(), loadContacts()]).catch((e) => showError(e.message));
  const first = state.rooms[0];
  if (first) await openRoom(first.id);
  $('main').focus();
}

function stopSession() {
  if (state.socket) state.socket.close();
  clearInterval(state.poll);
  Object.assign(state, { socket: null, roomId: null, rooms: [], participants: [], messages: new Map(), delivery: new Map() });
  $('messages').replaceChildren();
  setSocketState('offline');
}

function switchUser() {
  stopSession();
  state.me = null;
  localStorage.removeItem('switchboard.user');
  $('app').hidden = true;
  $('whoami').hidden = true;
  $('picker').hidden = false;
  const first = $('users').querySelector('button');
  if (first) first.focus();
}

// ------------------------------------------------------------------ rooms

async function loadRooms() {
  const res = await api('/api/v1/me/chats?limit=100&include=participants');
  state.rooms = res.data || [];
  for (const room of state.rooms) for (const p of room.participants || []) remember(p);
  renderRooms();
}

function renderRooms() {
  $('no-rooms').hidden = state.rooms.length > 0;
  $('rooms').replaceChildren(...state.rooms.map((r) => el('li', {},
    el('button', {
      type: 'button',
      'aria-current': r.id === state.roomId ? 'true' : 'false',
      onclick: () => openRoom(r.id).catch((e) => showError(e.message)),
    }, el('span', { text: r.title || 'Untitled room' }), el('span', { class: 'muted', text: ` · ${r.participant_count ?? '?'} members` })))));
}

async function openRoom(id) {
  if (state.roomId && state.roomId !== id) {
    state.socket.leave(`chat_room:${state.roomId}`);
    state.socket.leave(`room_participants:${state.roomId}`);
  }
  state.roomId = id;
  state.messages = new Map();
  state.delivery = new Map();
  $('messages').replaceChildren();
  const room = state.rooms.find((r) => r.id === id);
  $('room-name').textContent = room ? room.title || 'Untitled room' : 'Room';
  $('empty-room').hidden = true;
  $('composer').hidden = false;
  renderRooms();
  renderPending();
  // Join first, then read history: every message either arrives live or is
  // already in the history (the platform's catch-up rule); ids deduplicate.
  state.socket.join(`chat_room:${id}`, (event, payload) => {
    if (event === 'message_created' || event === 'event_created') addMessage(payload, true);
  }, () => loadHistory(id).catch((e) => showError(e.message)));
  state.socket.join(`room_participants:${id}`, (event) => {
    if (event.startsWith('participant_')) {
      Promise.all([loadParticipants(id), loadRooms()]).catch((e) => showError(e.message));
    }
  });
  await Promise.all([loadParticipants(id), loadHistory(id)]);
  await pollLifecycle();
  // A room opens on its latest messages.
  $('messages').scrollTop = $('messages').scrollHeight;
}

/** Whether the message list is scrolled to (nearly) its end. */
function atBottom() {
  const list = $('messages');
  return list.scrollHeight - list.scrollTop - list.clientHeight < 40;
}

async function loadParticipants(id) {
  const res = await api(`/api/v1/me/chats/${id}/participants?limit=100`);
  if (state.roomId !== id) return;
  state.participants = res.data || [];
  state.participants.forEach(remember);
  $('participants').replaceChildren(...state.participants.map((p) => el('li', {
    class: p.type === 'Agent' ? 'agent' : '',
    text: `${p.name} (@${p.handle})`,
  })));
  // The header may grow or shrink: keep the list's end in view if it was.
  const stick = atBottom();
  await loadAgentChoices(id);
  rerenderAll();
  if (stick) $('messages').scrollTop = $('messages').scrollHeight;
}

async function loadAgentChoices(id) {
  const res = await api(`/api/v1/me/peers?type=Agent&not_in_chat=${encodeURIComponent(id)}&page_size=100`);
  const agents = res.data || [];
  const form = $('add-agent');
  form.hidden = agents.length === 0;
  $('agent-select').replaceChildren(...agents.map((a) => el('option', { value: a.id, text: `${a.name} (@${a.handle})` })));
}

async function loadHistory(id) {
  const res = await api(`/api/v1/me/chats/${id}/messages?limit=100`);
  if (state.roomId !== id) return;
  // The platform lists newest first.
  for (const m of (res.data || []).slice().reverse()) addMessage(m, false);
}

// ------------------------------------------------------------------ messages

function addMessage(m, live) {
  if (!m || !m.id || (m.chat_room_id && m.chat_room_id !== state.roomId)) return;
  if (state.messages.has(m.id)) return;
  state.messages.set(m.id, m);
  for (const x of (m.metadata || {}).mentions || []) remember(x);
  if (m.sender_id) remember({ id: m.sender_id, name: m.sender_name });
  const list = $('messages');
  const stick = atBottom();
  const node = renderMessage(m);
  // Keep time order even when a live push overtakes the history read.
  const later = [...list.children].find((li) => li.dataset.at > (m.inserted_at || ''));
  list.insertBefore(node, later || null);
  // Scroll the list only (scrollIntoView would move the page too).
  if (stick || m.sender_id === state.me.id) list.scrollTop = list.scrollHeight;
  if (live && m.sender_id !== state.me.id) announce(`${m.sender_name || label(m.sender_id)}: ${plainText(m.content)}`);
}

/** Content with `@[[id]]` markers shown as @handle. */
function plainText(content) {
  return (content || '').replace(/@\[\[([^\]]+)\]\]/g, (_, id) => '@' + handleOf(id));
}

function contentNodes(content) {
  const out = [];
  let last = 0;
  const re = /@\[\[([^\]]+)\]\]/g;
  for (let match; (match = re.exec(content || '')); ) {
    out.push(document.createTextNode(content.slice(last, match.index)));
    out.push(el('span', { class: 'mention', text: '@' + handleOf(match[1]) }));
    last = re.lastIndex;
  }
  out.push(document.createTextNode((content || '').slice(last)));
  return out;
}

function renderMessage(m) {
  const mine = m.sender_id === state.me.id;
  const kind = m.message_type && m.message_type !== 'text' ? m.message_type : null;
  const time = m.inserted_at ? new Date(m.inserted_at) : null;
  const li = el('li', {
    class: `msg${mine ? ' mine' : ''}${kind ? ' event' : ''}`,
    'data-id': m.id,
    'data-at': m.inserted_at || '',
  },
  el('div', { class: 'meta' },
    el('span', { class: 'sender', text: mine ? 'You' : m.sender_name || label(m.sender_id) }),
    kind && el('span', { class: 'kind', text: kind }),
    time && el('time', { datetime: m.inserted_at, text: time.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) })),
  el('p', { class: 'content' }, ...contentNodes(m.content)),
  el('div', { class: 'lifecycle', 'aria-label': 'Delivery to agents' }),
  el('div', { class: 'handled' }));
  fillStatus(li, m.id);
  return li;
}

/** The message's per-agent lifecycle and the rule that handled it. */
function fillStatus(li, id) {
  const delivery = state.delivery.get(id) || {};
  const chips = Object.entries(delivery).map(([agent, d]) => {
    const attempts = d.attempts || [];
    const last = attempts[attempts.length - 1] || {};
    let text = `${label(agent)}: ${d.status}`;
    if (d.status === 'failed' && last.error) text += ` (${last.error})`;
    if (attempts.length > 1) text += ` · attempt ${attempts.length}`;
    return el('span', { class: `state ${d.status}`, 'data-agent': handleOf(agent), 'data-status': d.status, text });
  });
  const box = li.querySelector('.lifecycle');
  const key = JSON.stringify(chips.map((c) => c.textContent));
  if (box.dataset.key !== key) {
    box.dataset.key = key;
    box.replaceChildren(...chips);
  }
  const h = state.handled.get(id);
  const handled = li.querySelector('.handled');
  // An older agent's entries have no `throttled`.
  const throttled = (h && h.throttled) || [];
  const hkey = h ? JSON.stringify([h.rules, throttled, h.actions, h.outcome, h.reason]) : '';
  if (handled.dataset.key === hkey) return;
  handled.dataset.key = hkey;
  if (!h) { handled.replaceChildren(); return; }
  // A throttled rule did match: saying "No rule matched" would send the user hunting in the conditions.
  const held = throttled.length ? `throttled ${throttled.join(', ')}` : '';
  const rules = h.rules.length
    ? `Rule ${h.rules.join(', ')}${held ? ` · ${held}` : ''}`
    : (held ? `Rule ${held}` : 'No rule matched');
  const actions = h.actions.length ? ` → ${h.actions.join(', ')}` : '';
  const failed = h.outcome === 'failed';
  handled.replaceChildren(el('span', {
    class: `rule${failed ? ' failed' : ''}`,
    'data-rules': h.rules.join(','),
    'data-throttled': throttled.join(','),
    // The reason is on the lifecycle chip (what the agent told the platform).
    text: `⚙ ${rules}${actions}${failed ? ' — failed' : ''}`,
  }));
}

function rerenderAll() {
  for (const li of $('messages').children) {
    const m = state.messages.get(li.dataset.id);
    if (m) li.replaceWith(renderMessage(m));
  }
}

async function pollLifecycle() {
  const id = state.roomId;
  if (!id || document.hidden) return;
  try {
    const rows = await getJson(`/_sandbox/rooms/${id}/messages`);
    if (state.roomId !== id) return;
    for (const r of rows) state.delivery.set(r.id, r.delivery || {});
  } catch (e) {
    // A reset sandbox or a deleted room: say so once, keep polling.
    if (!pollLifecycle.failed) showError(`lifecycle: ${e.message}`);
    pollLifecycle.failed = true;
  }
  await pollFeed();
  const list = $('messages');
  // Status lines make messages taller: stay at the bottom if we were there.
  const stick = atBottom();
  for (const li of list.children) fillStatus(li, li.dataset.id);
  if (stick) list.scrollTop = list.scrollHeight;
}

/** Sets the feed's status line; only on a change, since it is a live region. */
function feedStatus(text) {
  const line = $('feed-state');
  if (line.textContent !== text) line.textContent = text;
}

async function pollFeed() {
  if (!state.feed) {
    feedStatus('no agent feed: rules not shown');
    state.pending = [];
    renderPending();
    return;
  }
  try {
    const entries = await getJson(`${state.feed}/handled`);
    for (const e of entries) if (e.message_id) state.handled.set(e.message_id, e);
    feedStatus('feed connected');
  } catch {
    feedStatus('agent feed unreachable');
  }
  // An agent too old to serve /conversations still gives its rules.
  state.pending = await getJson(`${state.feed}/conversations`).catch(() => []);
  renderPending();
}

/** Who a pending conversation waits for: a handle or an id the page knows. */
function waitee(who) {
  return '@' + (state.names.has(who) ? handleOf(who) : who.replace(/^@/, ''));
}

/** The open room's pending conversations (a rule paused at wait_for, ask or wait). */
function renderPending() {
  const mine = Array.isArray(state.pending) ? state.pending.filter((c) => c.room === state.roomId) : [];
  const items = mine.map((c) => {
    const who = (c.waiting_for || []).map(waitee).join(', ');
    const what = c.kind === 'ask' ? `asked ${who}`
      : c.kind === 'wait_for' ? `waits for an answer from ${who}`
      : 'waits';
    const until = new Date(c.deadline);
    return el('li', { 'data-rule': c.rule, 'data-kind': c.kind, 'data-id': c.id },
      el('span', { text: `⏸ ${c.rule} · ${what} · until ` }),
      el('time', { datetime: c.deadline, text: until.toLocaleTimeString([], { hour: '2-digit', minute: '2-digit', second: '2-digit' }) }));
  });
  const list = $('pending-list');
  const key = JSON.stringify(items.map((li) => li.textContent));
  if (list.dataset.key === key) return;
  list.dataset.key = key;
  list.replaceChildren(...items);
  $('pending').hidden = items.length === 0;
}

// ------------------------------------------------------------------ composer

const completion = { open: false, options: [], active: 0, start: 0 };

/** Participants matching the `@word` before the caret, or null when none is typed. */
function mentionQuery(input) {
  const before = input.value.slice(0, input.selectionStart);
  const match = /(^|\s)@([\w./-]*)$/.exec(before);
  return match ? { query: match[2].toLowerCase(), start: before.length - match[2].length - 1 } : null;
}

function updateCompletion() {
  const input = $('text');
  const q = mentionQuery(input);
  const options = q ? state.participants.filter((p) => p.id !== state.me.id && (
    p.handle.toLowerCase().includes(q.query) || p.name.toLowerCase().includes(q.query))) : [];
  if (!q || options.length === 0) return closeCompletion();
  Object.assign(completion, { open: true, options, start: q.start, active: Math.min(completion.active, options.length - 1) });
  renderCompletion();
}

function renderCompletion() {
  const list = $('mention-list');
  list.replaceChildren(...completion.options.map((p, i) => el('li', {
    id: `mention-${i}`,
    role: 'option',
    'aria-selected': i === completion.active ? 'true' : 'false',
    // mousedown, not click: keep the focus in the input.
    onmousedown: (e) => { e.preventDefault(); takeCompletion(i); },
  }, el('span', { text: p.name }), el('span', { class: 'muted', text: '@' + p.handle }))));
  list.hidden = false;
  const input = $('text');
  input.setAttribute('aria-expanded', 'true');
  input.setAttribute('aria-activedescendant', `mention-${completion.active}`);
}

function closeCompletion() {
  completion.open = false;
  completion.active = 0;
  $('mention-list').hidden = true;
  $('text').setAttribute('aria-expanded', 'false');
  $('text').removeAttribute('aria-activedescendant');
}

function takeCompletion(i) {
  const p = completion.options[i];
  const input = $('text');
  const caret = input.selectionStart;
  const insert = `@${p.handle} `;
  input.value = input.value.slice(0, completion.start) + insert + input.value.slice(caret);
  const at = completion.start + insert.length;
  input.setSelectionRange(at, at);
  closeCompletion();
  input.focus();
}

function onComposerKey(e) {
  if (!completion.open) return;
  const n = completion.options.length;
  if (e.key === 'ArrowDown' || e.key === 'ArrowUp') {
    e.preventDefault();
    completion.active = (completion.active + (e.key === 'ArrowDown' ? 1 : n - 1)) % n;
    renderCompletion();
  } else if (e.key === 'Enter' || e.key === 'Tab') {
    e.preventDefault();
    takeCompletion(completion.active);
  } else if (e.key === 'Escape') {
    e.preventDefault();
    closeCompletion();
  }
}

/** Sends the composer's text; every `@handle` of a participant becomes a mention. */
async function send(e) {
  e.preventDefault();
  if (completion.open) return;
  const input = $('text');
  let content = input.value.trim();
  if (!content) return;
  const mentions = [];
  // Longest handles first, so @alice/triage-bot is not read as @alice.
  const people = state.participants.filter((p) => p.id !== state.me.id).sort((a, b) => b.handle.length - a.handle.length);
  for (const p of people) {
    const re = new RegExp(`(^|\\s)@${escapeRe(p.handle)}(?=$|[\\s,.:;!?])`, 'i');
    if (re.test(content)) {
      mentions.push({ id: p.id, handle: p.handle });
      // The platform's marker form, so the text reads "@handle" once when shown.
      content = content.replace(re, (_, pre) => `${pre}@[[${p.id}]]`);
    }
  }
  if (mentions.length === 0) {
    showError('Mention someone with @: the platform delivers a message only to those it mentions.');
    return;
  }
  const button = $('composer').querySelector('button');
  button.disabled = true;
  try {
    await api(`/api/v1/me/chats/${state.roomId}/messages`, { method: 'POST', body: { message: { content, mentions } } });
    input.value = '';
  } catch (err) {
    showError(`not sent: ${err.message}`);
  } finally {
    button.disabled = false;
    input.focus();
  }
}

async function createRoom(e) {
  e.preventDefault();
  const input = $('room-title');
  try {
    const res = await api('/api/v1/me/chats', { method: 'POST', body: { chat: { title: input.value.trim() } } });
    input.value = '';
    await loadRooms();
    await openRoom(res.data.id);
  } catch (err) {
    showError(`room not created: ${err.message}`);
  }
}

async function addAgent(e) {
  e.preventDefault();
  const id = $('agent-select').value;
  if (!id || !state.roomId) return;
  try {
    await api(`/api/v1/me/chats/${state.roomId}/participants`, { method: 'POST', body: { participant: { participant_id: id, role: 'member' } } });
    await loadParticipants(state.roomId);
    await loadRooms();
  } catch (err) {
    showError(`agent not added: ${err.message}`);
  }
}

// ------------------------------------------------------------------ contacts

async function loadContacts() {
  const [received, sent, contacts] = await Promise.all([
    api('/api/v1/me/contacts/requests?page_size=100'),
    api('/api/v1/me/contacts/requests/sent?page_size=100'),
    api('/api/v1/me/contacts?page_size=100'),
  ]);
  const who = (p) => (p ? `${p.name || p.handle} (@${p.handle})` : 'someone');
  const none = (text) => [el('li', { class: 'none', text })];
  const rec = received.data || [];
  $('received').replaceChildren(...(rec.length ? rec.map((r) => el('li', { 'data-handle': (r.requester || {}).handle },
    el('div', { text: who(r.requester) }),
    r.message && el('div', { class: 'muted', text: `“${r.message}”` }),
    el('div', { class: 'actions' },
      el('button', { type: 'button', onclick: () => respond(r.id, 'approve'), 'aria-label': `Approve ${who(r.requester)}`, text: 'Approve' }),
      el('button', { type: 'button', class: 'secondary', onclick: () => respond(r.id, 'reject'), 'aria-label': `Reject ${who(r.requester)}`, text: 'Reject' })))) : none('None pending.')));
  const sentRows = (sent.data || []).slice().reverse();
  $('sent').replaceChildren(...(sentRows.length ? sentRows.map((r) => el('li', { 'data-handle': (r.recipient || {}).handle, 'data-status': r.status },
    el('div', {}, el('span', { text: who(r.recipient) + ' ' }), el('span', { class: `status ${r.status}`, text: r.status })),
    r.status === 'pending' && el('div', { class: 'actions' },
      el('button', { type: 'button', class: 'secondary', onclick: () => cancel(r.id), text: 'Cancel' })))) : none('None yet.')));
  const list = contacts.data || [];
  $('contacts').replaceChildren(...(list.length ? list.map((c) => {
    const other = c.user || c.agent || c;
    return el('li', { 'data-handle': other.handle }, el('span', { text: `${c.contact_type === 'Agent' ? '⚙ ' : ''}${who(other)}` }));
  }) : none('No contacts yet.')));
}

async function respond(id, action) {
  try {
    await api(`/api/v1/me/contacts/requests/${id}/${action}`, { method: 'POST', body: {} });
    await loadContacts();
  } catch (err) {
    showError(`${action} failed: ${err.message}`);
  }
}

async function cancel(id) {
  try {
    await api(`/api/v1/me/contacts/requests/${id}`, { method: 'DELETE' });
    await loadContacts();
  } catch (err) {
    showError(`cancel failed: ${err.message}`);
  }
}

async function sendContactRequest(e) {
  e.preventDefault();
  const handle = $('contact-handle').value.trim();
  const message = $('contact-message').value.trim();
  const body = { contact_request: { recipient_handle: handle } };
  if (message) body.contact_request.message = message;
  try {
    await api('/api/v1/me/contacts/requests', { method: 'POST', body });
    $('contact-handle').value = '';
    $('contact-message').value = '';
    announce(`Contact request sent to ${handle}`);
    await loadContacts();
  } catch (err) {
    showError(`request not sent: ${err.message}`);
  }
}

// ------------------------------------------------------------------ start

async function start() {
  $('switch-user').addEventListener('click', switchUser);
  $('composer').addEventListener('submit', send);
  $('text').addEventListener('input', updateCompletion);
  $('text').addEventListener('keydown', onComposerKey);
  $('text').addEventListener('blur', () => setTimeout(closeCompletion, 100));
  $('new-room').addEventListener('submit', createRoom);
  $('add-agent').addEventListener('submit', addAgent);
  $('contact-form').addEventListener('submit', sendContactRequest);
  $('feed-form').addEventListener('submit', (e) => {
    e.preventDefault();
    state.feed = $('feed').value.trim().replace(/\/+$/, '');
    if (state.feed) localStorage.setItem(FEED_KEY, state.feed);
    else localStorage.removeItem(FEED_KEY);
    state.handled = new Map();
    state.pending = [];
    pollFeed();
  });
  const config = await getJson('/_sandbox/console/config').catch(() => ({}));
  state.feed = localStorage.getItem(FEED_KEY) || config.agent_feed || '';
  $('feed').value = state.feed;
  pollFeed();
  try {
    await loadUsers();
  } catch (e) {
    showError(`cannot list the sandbox's users: ${e.message}`);
    return;
  }
  const again = localStorage.getItem('switchboard.user');
  if (again && state.users.some((u) => u.id === again)) await pickUser(again);
}

start();
