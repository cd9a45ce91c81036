/*
 * The support chat widget. A site owner installs it with one tag:
 *
 *   <script src="https://support.example.com/static/widget/widget.js" async></script>
 *
 * Optional attributes on that tag: data-server (the support server's base URL,
 * when it is not where this file is served from), data-title (the panel title,
 * instead of the bot's name) and data-color (the accent; white text sits on it,
 * so pick a dark enough colour).
 *
 * It speaks the websocket protocol of docs/protocol.md. Everything the page
 * shows comes from stored messages replayed by seq; live frames only make it
 * fast. The only thing kept in the browser besides the visitor token is the
 * outbox of messages the server has not acknowledged yet.
 */
(() => {
  'use strict';

  // Included twice on one page: the first copy keeps the socket and the UI.
  if (window.SupportWidget) return;

  const script =
    document.currentScript ||
    document.querySelector('script[src*="/widget/widget.js"]');

  const BASE_DELAY_MS = 500;
  // Short enough that a customer is back within seconds of a restart; the
  // random spread keeps a process's widgets from returning all at once.
  const MAX_DELAY_MS = 15000;
  const WELCOME_TIMEOUT_MS = 10000;
  // The server closes with this when the visitor was erased (docs/protocol.md).
  const VISITOR_ERASED_CLOSE_CODE = 4410;
  const SERVER_ERROR_RETRY_S = 5;
  // Sockets that lived through a closed laptop lid often look open but are dead.
  const STALE_AFTER_HIDDEN_MS = 60000;
  const TYPING_IDLE_MS = 4000;
  // A typing frame whose "stopped" never came (an agent closed the tab).
  const TYPING_EXPIRY_MS = 15000;
  // A streamed answer whose pieces stopped and whose message never came (its
  // server stopped mid-answer). The model's own deadline is far shorter.
  const PREVIEW_EXPIRY_MS = 60000;

  // Citation markers in the forms the server strips from stored answers.
  const CITATION = /[ \t]*\[\s*A\d+(?:\s*[,;]\s*A\d+)*\s*\]/gi;
  const UNFINISHED_CITATION = /[ \t]*\[\s*(?:A\d*(?:\s*[,;]\s*(?:A\d*)?)*)?$/i;

  const TEXT = {
    connecting: 'Connecting…',
    reconnecting: 'Reconnecting…',
    offline: "Offline — your messages will be sent when you're back",
    waiting: "Waiting for a person — we'll reply here.",
    botBack: 'The bot is back.',
    closed: 'This conversation is closed.',
    notConnected: 'Not connected yet. Try again in a moment.',
    nobody: 'Nobody is available right now.',
    contactAsk: 'Leave your email address and we will answer there too.',
    badEmail: 'Please enter an email address like name@example.com.',
    tooLong: (max) =>
      `Messages can be at most ${max.toLocaleString('en')} characters long. ` +
      'Shorten this one, or send it in parts.',
  };
  // Light on purpose: the server validates for real (`invalid_email`).
  const EMAIL = /^[^\s@]+@[^\s@]+\.[^\s@]+$/;

  const config = readConfig(script);
  const storage = openStorage();
  const keys = {
    token: `sb:${config.origin}:token`,
    outbox: `sb:${config.origin}:outbox`,
    // Per tab (sessionStorage): a reload or the next page of the site finds
    // the chat as the visitor left it; a new tab starts with it closed.
    panel: `sb:${config.origin}:open`,
  };

  const state = {
    socket: null,
    started: false, // a connection was asked for (at load or on first open)
    welcomed: false,
    ready: false, // welcomed and replayed: frames may be sent
    attempt: 0, // reconnects since the last welcome, for the backoff
    conversation: null,
    status: 'bot',
    botName: 'Support',
    maxChars: 4000,
    shown: new Map(), // seq -> {el, placeholder}; placeholder: acked, not yet stored
    pending: new Map(), // client_id -> bubble of a message not acked yet
    inFlight: new Set(), // client_ids sent on the current socket
    previews: new Map(), // stream -> {el, textEl, raw}
    settled: new Set(), // streams whose stored message has arrived
    typingFrom: null, // name of whoever is typing on the support side
    typingStream: null, // the bot's answer being written, when it is the bot
    newest: null, // the answer the last frame added or grew, for scrolling
    arrived: false, // the last frame added a message (or an answer began)
    typingSent: false,
    hiddenAt: 0,
    timers: {},
  };

  const HANDLERS = new Map([
    ['welcome', onWelcome],
    ['resumed', onResumed],
    ['message', onMessage],
    ['ack', onAck],
    ['bot.delta', onDelta],
    ['typing', onTyping],
    ['status', onStatus],
    ['feedback.saved', onFeedbackSaved],
    ['queue', onQueue],
    ['contact.saved', onContactSaved],
    ['error', onError],
  ]);

  // --- Configuration and storage ------------------------------------------

  function readConfig(el) {
    const data = el ? el.dataset : {};
    const fallback = el && el.src ? new URL('/', el.src).href : location.href;
    const base = new URL(data.server || fallback, location.href);
    if (!base.pathname.endsWith('/')) base.pathname += '/';
    const ws = new URL('ws/widget/', base);
    ws.protocol = base.protocol === 'https:' ? 'wss:' : 'ws:';
    // A colour goes into CSS, so only a value the browser parses as a colour.
    const color = data.color && CSS.supports('color', data.color) ? data.color : '';
    return { origin: base.origin, wsUrl: ws.href, title: data.title || '', color };
  }

  function openStorage() {
    // localStorage throws when the visitor blocks site data; the widget then
    // still works for the life of the page.
    try {
      const probe = 'sb:probe';
      window.localStorage.setItem(probe, '1');
      window.localStorage.removeItem(probe);
      return window.localStorage;
    } catch {
      const items = new Map();
      return {
        getItem: (key) => (items.has(key) ? items.get(key) : null),
        setItem: (key, value) => items.set(key, String(value)),
        removeItem: (key) => items.delete(key),
      };
    }
  }

  function save(key, value) {
    try {
      if (value === null) storage.removeItem(key);
      else storage.setItem(key, value);
    } catch {
      // Quota exceeded: the page keeps working, only a reload would forget.
    }
  }

  function readToken() {
    return storage.getItem(keys.token);
  }

  // The outbox is read from storage on every change, not cached, so two tabs
  // of the same site do not overwrite each other's entries.
  function readOutbox() {
    try {
      const list = JSON.parse(storage.getItem(keys.outbox) || '[]');
      if (!Array.isArray(list)) return [];
      return list.filter(
        (e) => e && typeof e.client_id === 'string' && typeof e.text === 'string'
      );
    } catch {
      return [];
    }
  }

  function writeOutbox(list) {
    save(keys.outbox, list.length ? JSON.stringify(list) : null);
  }

  function outboxAdd(entry) {
    writeOutbox([...readOutbox(), entry]);
  }

  function outboxRemove(clientId) {
    writeOutbox(readOutbox().filter((e) => e.client_id !== clientId));
  }

  function outboxHas(clientId) {
    return readOutbox().some((e) => e.client_id === clientId);
  }

  function newClientId() {
    const bytes = crypto.getRandomValues(new Uint8Array(12));
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return `w-${Date.now().toString(36)}-${hex}`;
  }

  // --- DOM helpers ---------------------------------------------------------

  // Attributes are fixed names chosen here; every piece of data goes in as a
  // child string, which append() turns into a text node. No HTML is parsed.
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === 'class') el.className = value;
      else el.setAttribute(name, value);
    }
    el.append(...children);
    return el;
  }

  function icon(...paths) {
    const ns = 'http://www.w3.org/2000/svg';
    const svg = document.createElementNS(ns, 'svg');
    svg.setAttribute('viewBox', '0 0 24 24');
    svg.setAttribute('aria-hidden', 'true');
    svg.setAttribute('focusable', 'false');
    for (const d of paths) {
      const path = document.createElementNS(ns, 'path');
      path.setAttribute('d', d);
      svg.append(path);
    }
    return svg;
  }

  const ICONS = {
    chat: ['M4 4h16a1 1 0 0 1 1 1v11a1 1 0 0 1-1 1H10l-5 4v-4H4a1 1 0 0 1-1-1V5' +
      'a1 1 0 0 1 1-1z'],
    close: ['M6 6l12 12', 'M18 6L6 18'],
    clock: ['M12 3a9 9 0 1 0 0 18a9 9 0 1 0 0-18z', 'M12 7v5l3 2'],
    check: ['M5 12.5l4.5 4.5L19 7.5'],
    down: ['M12 5v14', 'M6 13l6 6 6-6'],
    thumb: [
      'M7 11v9H4v-9h3z',
      'M7 11l4-7.5c1.4 0 2.5 1.1 2.5 2.5V9.5H19a2 2 0 0 1 2 2.3l-1.2 6.5' +
        'A2 2 0 0 1 17.8 20H7',
    ],
  };

  // --- Building the UI -----------------------------------------------------

  function buildUi() {
    const host = document.createElement('support-chat-widget');
    // The host page's CSS must not leak in through inherited properties.
    host.style.cssText = 'all: initial;';
    if (config.color) host.style.setProperty('--sw-accent', config.color);
    const shadow = host.attachShadow({ mode: 'open' });

    const parts = { host, shadow, ...buildPanel(), ...buildLauncher() };
    const root = h('div', { class: 'root' }, parts.panel, parts.launcher);
    shadow.append(h('style', {}, CSS_TEXT), root);
    bindUi(parts, root);
    return parts;
  }

  function buildLauncher() {
    const badge = h('span', { class: 'badge', 'aria-hidden': 'true' });
    badge.hidden = true;
    const launcher = h(
      'button',
      {
        type: 'button',
        class: 'launcher',
        'aria-label': 'Open chat',
        'aria-expanded': 'false',
        'aria-controls': 'sw-panel',
      },
      h('span', { class: 'when-closed' }, icon(...ICONS.chat)),
      h('span', { class: 'when-open' }, icon(...ICONS.close)),
      badge
    );
    return { launcher, badge };
  }

  function buildPanel() {
    const name = config.title || state.botName;
    const title = h('h2', { class: 'title' }, name);
    const convStatus = h('p', { class: 'conv-status', role: 'status' });
    const closeButton = h(
      'button',
      { type: 'button', class: 'close', 'aria-label': 'Close chat' },
      icon(...ICONS.close)
    );
    const head = h(
      'header',
      { class: 'head' },
      h('div', { class: 'head-text' }, title, convStatus),
      closeButton
    );
    const body = buildBody();
    const composer = buildComposer();
    const panel = h(
      'section',
      { class: 'panel', id: 'sw-panel', role: 'dialog', 'aria-label': name },
      head,
      body.messages,
      composer.composer
    );
    panel.hidden = true;
    return { panel, title, convStatus, closeButton, ...body, ...composer };
  }

  function buildBody() {
    const greetingText = h('div', { class: 'bubble', dir: 'auto' });
    const greeting = h('div', { class: 'item item-bot greeting' }, greetingText);
    greeting.hidden = true;
    const log = h('div', { class: 'log', role: 'log', 'aria-live': 'polite' });
    // Previews change with every delta; screen readers hear the stored answer
    // once it lands in the log instead of every fragment.
    const previews = h('div', { class: 'previews', 'aria-hidden': 'true' });
    const typingText = h('span', { class: 'sr' });
    const typing = h(
      'div',
      { class: 'typing' },
      h(
        'span',
        { class: 'dots', 'aria-hidden': 'true' },
        h('span', { class: 'dot' }),
        h('span', { class: 'dot' }),
        h('span', { class: 'dot' })
      ),
      typingText
    );
    typing.hidden = true;
    const scroll = h('div', { class: 'scroll' }, greeting, log, previews, typing);
    // Shown when a message lands out of sight below (the view stays at a long
    // answer's first line); its live region says so once, as it appears.
    const newMessages = h(
      'button',
      { type: 'button', class: 'new-messages' },
      icon(...ICONS.down),
      'New messages'
    );
    newMessages.hidden = true;
    const marker = h('div', { class: 'marker', 'aria-live': 'polite' }, newMessages);
    const messages = h('div', { class: 'messages' }, scroll, marker);
    return {
      messages, scroll, greeting, greetingText, log, previews, typing, typingText,
      newMessages,
    };
  }

  function buildComposer() {
    const conn = h('p', { class: 'conn', role: 'status' });
    const alert = h('p', { class: 'alert', role: 'alert' });
    const input = h('textarea', {
      id: 'sw-input',
      rows: '1',
      placeholder: 'Type your message…',
      dir: 'auto',
      'aria-describedby': 'sw-count',
    });
    // No maxlength on the input: it would cut a pasted text short without a
    // word. The count shows near the limit, and past it says what to do.
    const count = h('p', { class: 'count', id: 'sw-count' });
    const send = h('button', { type: 'button', class: 'send' }, 'Send');
    const human = h('button', { type: 'button', class: 'human' }, 'Talk to a person');
    human.disabled = true;
    const queue = buildQueueBox();
    const composer = h(
      'div',
      { class: 'composer' },
      queue.queueBox,
      conn,
      alert,
      count,
      h(
        'div',
        { class: 'row' },
        h('label', { class: 'sr', for: 'sw-input' }, 'Message'),
        input,
        send
      ),
      human
    );
    return { composer, conn, alert, count, input, send, human, ...queue };
  }

  // Where a waiting customer stands, and, when nobody is online, a way to
  // leave an email address.
  function buildQueueBox() {
    const queueText = h('p', { class: 'queue-text', role: 'status' });
    const email = h('input', {
      id: 'sw-email',
      type: 'email',
      autocomplete: 'email',
      placeholder: 'you@example.com',
      maxlength: '254',
    });
    const contactError = h('p', { class: 'contact-error', role: 'alert' });
    const contactForm = h(
      'form',
      { class: 'contact', novalidate: '' },
      h('label', { for: 'sw-email' }, TEXT.contactAsk),
      h(
        'div',
        { class: 'row' },
        email,
        h('button', { type: 'submit', class: 'send' }, 'Save')
      ),
      contactError
    );
    contactForm.hidden = true;
    const contactDone = h('p', { class: 'contact-done', role: 'status' });
    contactDone.hidden = true;
    const queueBox = h('div', { class: 'queue' }, queueText, contactForm, contactDone);
    queueBox.hidden = true;
    return { queueBox, queueText, contactForm, email, contactError, contactDone };
  }

  function bindUi(parts, root) {
    parts.launcher.addEventListener('click', () => (isOpen() ? close() : open()));
    parts.closeButton.addEventListener('click', () => close());
    root.addEventListener('keydown', (event) => {
      if (event.key === 'Escape' && isOpen()) {
        event.stopPropagation();
        close();
      }
    });
    parts.input.addEventListener('keydown', (event) => {
      // isComposing: Enter also confirms a word in Japanese or Chinese input.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        submit();
      }
    });
    parts.input.addEventListener('input', () => {
      autosize();
      updateCount();
      noteTyping();
    });
    parts.send.addEventListener('click', () => submit());
    parts.scroll.addEventListener('scroll', hideMarkerAtBottom);
    // A click from the keyboard has no pointer, so no click count.
    parts.newMessages.addEventListener('click', (event) => {
      showNewest(event.detail === 0);
    });
    parts.human.addEventListener('click', () => requestHuman());
    parts.contactForm.addEventListener('submit', (event) => {
      event.preventDefault();
      leaveContact();
    });
  }

  function mount() {
    if (!document.body) {
      document.addEventListener('DOMContentLoaded', mount, { once: true });
      return;
    }
    document.body.append(ui.host);
    for (const entry of readOutbox()) showPending(entry);
    window.addEventListener('online', reconnectNow);
    window.addEventListener('offline', goOffline);
    document.addEventListener('visibilitychange', onVisibilityChange);
    // A returning visitor may have replies waiting and an outbox to deliver;
    // a first-time visitor costs the server no socket until they open the chat.
    if (readToken() || readOutbox().length) connect();
    if (readPanelOpen()) open({ focus: false });
  }

  function readPanelOpen() {
    try {
      return window.sessionStorage.getItem(keys.panel) === '1';
    } catch {
      return false; // site data blocked: the chat starts closed
    }
  }

  function savePanelOpen(opened) {
    try {
      if (opened) window.sessionStorage.setItem(keys.panel, '1');
      else window.sessionStorage.removeItem(keys.panel);
    } catch {
      // Site data blocked: only a reload forgets.
    }
  }

  // --- Opening and closing -------------------------------------------------

  function isOpen() {
    return !ui.panel.hidden;
  }

  function open({ focus = true } = {}) {
    ui.panel.hidden = false;
    ui.launcher.setAttribute('aria-expanded', 'true');
    ui.badge.hidden = true;
    savePanelOpen(true);
    if (!state.started) connect();
    scrollToEnd();
    // Reopened by a reload, the chat does not take the page's focus.
    if (focus) ui.input.focus();
  }

  function close() {
    const focusInside = ui.shadow.activeElement !== null;
    ui.panel.hidden = true;
    savePanelOpen(false);
    ui.launcher.setAttribute('aria-expanded', 'false');
    // Only take focus back when it was ours: a host calling close() keeps its own.
    if (focusInside) ui.launcher.focus();
  }

  // --- Connection ----------------------------------------------------------

  function connect() {
    state.started = true;
    clearTimeout(state.timers.reconnect);
    if (state.socket) return;
    if (navigator.onLine === false) {
      setConn(TEXT.offline);
      return;
    }
    setConn(TEXT.connecting);
    let ws;
    try {
      ws = new WebSocket(config.wsUrl);
    } catch {
      scheduleReconnect();
      return;
    }
    state.socket = ws;
    ws.onopen = () => send({ type: 'hello', token: readToken() });
    ws.onmessage = (event) => {
      if (ws === state.socket) receive(event.data);
    };
    ws.onclose = (event) => {
      if (ws !== state.socket) return;
      teardown();
      if (event.code === VISITOR_ERASED_CLOSE_CODE) forgetVisitor();
      scheduleReconnect();
    };
    // A handshake that hangs (a captive portal, a half-dead network) would
    // otherwise leave "Connecting…" up forever.
    state.timers.welcome = setTimeout(() => {
      if (ws !== state.socket || state.welcomed) return;
      teardown();
      scheduleReconnect();
    }, WELCOME_TIMEOUT_MS);
  }

  // The visitor's data was erased at their request: nothing of it stays in
  // this browser either, and the next hello starts a new visitor.
  function forgetVisitor() {
    save(keys.token, null);
    save(keys.outbox, null);
    for (const el of state.pending.values()) el.remove();
    state.pending.clear();
    clearConversation();
    state.conversation = null;
  }

  // Forget the socket and everything that only lived on it.
  function teardown() {
    const ws = state.socket;
    state.socket = null;
    state.welcomed = false;
    state.ready = false;
    state.typingSent = false;
    state.inFlight.clear();
    clearTimeout(state.timers.welcome);
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
    dropPreviews();
    setTyping(null);
    updateButtons();
  }

  function scheduleReconnect() {
    if (navigator.onLine === false) {
      setConn(TEXT.offline); // the online event reconnects
      return;
    }
    // A random point in the upper half of the delay, so widgets cut off by the
    // same server restart do not all come back at the same instant.
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** state.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    state.attempt += 1;
    const seconds = Math.round(delay / 1000);
    setConn(seconds >= 1 ? `Reconnecting in ${seconds} s…` : TEXT.reconnecting);
    clearTimeout(state.timers.reconnect);
    state.timers.reconnect = setTimeout(connect, delay);
  }

  function reconnectNow() {
    if (!state.started) return;
    state.attempt = 0;
    if (!state.socket) connect();
  }

  // navigator.onLine is only false when no network is up at all, so an open
  // socket is dead; dropping it sends new messages to the outbox at once.
  function goOffline() {
    clearTimeout(state.timers.reconnect);
    teardown();
    setConn(TEXT.offline);
  }

  function onVisibilityChange() {
    if (document.visibilityState === 'hidden') {
      state.hiddenAt = Date.now();
      return;
    }
    if (!state.started) return;
    const away = Date.now() - state.hiddenAt;
    if (state.socket && state.welcomed && away < STALE_AFTER_HIDDEN_MS) return;
    teardown();
    state.attempt = 0;
    connect();
  }

  function send(frame) {
    const ws = state.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  function receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    // Frame types this version does not know are ignored, not fatal.
    const handler = frame && HANDLERS.get(frame.type);
    if (!handler) return;
    const stick = isNearBottom();
    state.newest = null;
    state.arrived = false;
    handler(frame);
    if (stick) scrollToEnd(state.newest);
    else if (state.arrived) ui.newMessages.hidden = false;
  }

  // --- Server frames -------------------------------------------------------

  function onWelcome(frame) {
    clearTimeout(state.timers.welcome);
    state.welcomed = true;
    state.attempt = 0;
    if (typeof frame.token === 'string' && frame.token) save(keys.token, frame.token);
    applyBot(frame.bot || {});
    const limit = frame.limits && frame.limits.max_message_chars;
    if (Number.isInteger(limit) && limit > 0) {
      state.maxChars = limit;
      updateCount();
    }
    // The server no longer knows the conversation on screen (a new visitor
    // token, say): what it replays next is all there is.
    if (state.conversation && frame.conversation !== state.conversation) {
      clearConversation();
    }
    state.conversation = frame.conversation || null;
    setConn('');
    // 0 on a fresh page, so the whole conversation is replayed.
    send({ type: 'resume', after_seq: contiguousSeq() });
  }

  function onResumed() {
    state.ready = true;
    updateButtons();
    flushOutbox();
  }

  function applyBot(bot) {
    if (typeof bot.name === 'string' && bot.name) state.botName = bot.name;
    if (!config.title) {
      ui.title.textContent = state.botName;
      ui.panel.setAttribute('aria-label', state.botName);
    }
    if (typeof bot.greeting === 'string' && bot.greeting) {
      ui.greetingText.textContent = bot.greeting;
      ui.greeting.hidden = false;
    }
  }

  function onMessage(frame) {
    if (!Number.isInteger(frame.seq)) return;
    adoptConversation(frame.conversation);
    if (frame.client_id) forgetPending(frame.client_id);
    // A streamed answer was on screen already, as its preview.
    const streamed = Boolean(frame.stream) && state.previews.has(frame.stream);
    if (frame.stream) {
      state.settled.add(frame.stream);
      dropPreview(frame.stream);
      // The stored answer ends the bot's typing notice for it.
      if (state.typingStream === frame.stream) setTyping(null);
    }
    const known = state.shown.get(frame.seq);
    // A message can arrive live and again in a replay.
    if (known && !known.placeholder) return;
    const el = renderMessage(frame);
    if (known) known.el.replaceWith(el);
    else insertBySeq(el, frame.seq);
    state.shown.set(frame.seq, { el, placeholder: false });
    // A live answer is shown from its first line; history replayed after a
    // reload follows to its end, where the conversation stands.
    if (!frame.replay && (frame.role === 'bot' || frame.role === 'agent')) {
      state.newest = el;
    }
    // The customer's own words, from this tab or another, are no news to them.
    if (!known && !streamed && frame.role !== 'customer') state.arrived = true;
    const news = !frame.replay && frame.role !== 'customer';
    if (news && !isOpen()) ui.badge.hidden = false;
  }

  function onAck(frame) {
    adoptConversation(frame.conversation);
    showAlert(''); // a stored message ends whatever went wrong before it
    outboxRemove(frame.client_id);
    state.inFlight.delete(frame.client_id);
    const el = state.pending.get(frame.client_id);
    if (!el) return;
    state.pending.delete(frame.client_id);
    if (state.shown.has(frame.seq)) {
      el.remove();
      return;
    }
    // Stored; it stays on screen until its `message` frame replaces it.
    setDelivery(el, 'sent');
    insertBySeq(el, frame.seq);
    state.shown.set(frame.seq, { el, placeholder: true });
  }

  function onDelta(frame) {
    if (typeof frame.stream !== 'string' || state.settled.has(frame.stream)) return;
    let preview = state.previews.get(frame.stream);
    if (!preview) {
      const textEl = h('div', { class: 'bubble', dir: 'auto' });
      preview = { raw: '', textEl, el: h('div', { class: 'item item-bot' }, textEl) };
      state.previews.set(frame.stream, preview);
      ui.previews.append(preview.el);
      state.arrived = true;
    }
    if (frame.index === 0) preview.raw = '';
    clearTimeout(preview.timer);
    preview.timer = setTimeout(() => dropPreview(frame.stream), PREVIEW_EXPIRY_MS);
    preview.raw += String(frame.text ?? '');
    preview.textEl.textContent = withoutCitations(preview.raw);
    state.newest = preview.el;
    updateTyping();
  }

  // The model cites articles as [A1] or [A1, A7]; the stored answer comes
  // without them. A marker can be split across deltas, so an unfinished one at
  // the end ("[A1, A") is held back until the rest arrives.
  function withoutCitations(text) {
    return text.replace(CITATION, '').replace(UNFINISHED_CITATION, '');
  }

  function onTyping(frame) {
    const stream = typeof frame.stream === 'string' ? frame.stream : null;
    // A notice that arrives after its answer (they travel different ways).
    if (stream && state.settled.has(stream)) return;
    const name = typeof frame.name === 'string' && frame.name ? frame.name : null;
    setTyping(frame.active ? name || state.botName : null, frame.active ? stream : null);
  }

  function onStatus(frame) {
    const previous = state.status;
    state.status = frame.status;
    ui.convStatus.textContent = statusLine(frame, previous);
    if (frame.status !== 'waiting') ui.queueBox.hidden = true;
    updateButtons();
  }

  function statusLine(frame, previous) {
    switch (frame.status) {
      case 'waiting':
        return TEXT.waiting;
      case 'human': {
        const agent = agentName(frame.agent);
        return `You're chatting with ${agent || 'a person'}.`;
      }
      case 'closed':
        return TEXT.closed;
      case 'bot':
        return previous === 'waiting' || previous === 'human' ? TEXT.botBack : '';
      default:
        return '';
    }
  }

  function agentName(agent) {
    if (typeof agent === 'string') return agent;
    if (agent && typeof agent.name === 'string') return agent.name;
    return null;
  }

  function onQueue(frame) {
    if (state.status !== 'waiting') return;
    ui.queueBox.hidden = false;
    const online = frame.agents_online !== false;
    ui.queueText.textContent = online ? queueLine(frame) : TEXT.nobody;
    // Once an address is saved, the confirmation stays instead of the form.
    ui.contactForm.hidden = online || !ui.contactDone.hidden;
  }

  function queueLine(frame) {
    const position = Number.isInteger(frame.position) && frame.position > 0
      ? frame.position
      : null;
    const minutes = Number.isInteger(frame.wait_minutes) && frame.wait_minutes > 0
      ? frame.wait_minutes
      : null;
    if (!position) return TEXT.waiting;
    const place = `You're number ${position} in the queue`;
    if (!minutes) return `${place}.`;
    return `${place} — about ${minutes} ${minutes === 1 ? 'minute' : 'minutes'}.`;
  }

  function leaveContact() {
    const email = ui.email.value.trim();
    if (!EMAIL.test(email)) {
      ui.contactError.textContent = TEXT.badEmail;
      ui.email.setAttribute('aria-invalid', 'true');
      ui.email.focus();
      return;
    }
    ui.contactError.textContent = '';
    ui.email.removeAttribute('aria-invalid');
    if (!state.ready || !send({ type: 'contact', email })) {
      ui.contactError.textContent = TEXT.notConnected;
    }
  }

  function onContactSaved(frame) {
    const email = typeof frame.email === 'string' ? frame.email : '';
    ui.contactForm.hidden = true;
    ui.contactDone.hidden = false;
    ui.contactDone.textContent = email
      ? `Thanks! We'll also reply to ${email}.`
      : "Thanks! We'll also reply by email.";
  }

  function onFeedbackSaved(frame) {
    const entry = state.shown.get(frame.seq);
    if (!entry) return;
    for (const button of entry.el.querySelectorAll('.feedback button')) {
      const chosen = button.dataset.rating === frame.rating;
      button.setAttribute('aria-pressed', String(chosen));
    }
  }

  function onError(frame) {
    const reason = typeof frame.message === 'string' && frame.message
      ? frame.message
      : 'Something went wrong.';
    if (frame.code === 'invalid_email' && !ui.contactForm.hidden) {
      ui.contactError.textContent = reason;
      return;
    }
    showAlert(reason);
    const clientId = frame.client_id;
    if (!clientId || !(state.pending.has(clientId) || outboxHas(clientId))) return;
    state.inFlight.delete(clientId);
    // Nothing was stored; these two are worth another try with the same id.
    if (frame.code === 'rate_limited') {
      const wait = Number(frame.retry_after);
      scheduleFlush(Number.isFinite(wait) && wait > 0 ? wait : SERVER_ERROR_RETRY_S);
      return;
    }
    if (frame.code === 'server_error') {
      scheduleFlush(SERVER_ERROR_RETRY_S);
      return;
    }
    outboxRemove(clientId);
    const el = state.pending.get(clientId);
    state.pending.delete(clientId);
    if (el) setDelivery(el, 'failed', reason);
  }

  // Message and ack frames name their conversation; a different one (the
  // server started another) replaces the screen.
  function adoptConversation(id) {
    if (!id) return;
    if (state.conversation && id !== state.conversation) clearConversation();
    state.conversation = id;
  }

  function clearConversation() {
    for (const { el } of state.shown.values()) el.remove();
    state.shown.clear();
    state.status = 'bot';
    ui.convStatus.textContent = '';
    ui.queueBox.hidden = true;
    ui.newMessages.hidden = true;
    dropPreviews();
  }

  // --- Sequence numbers ----------------------------------------------------

  // The highest seq up to which every message is on screen. The server sends
  // each socket its messages in seq order, so this is also the highest shown;
  // counting only the unbroken run keeps a resume from skipping a hole.
  function contiguousSeq() {
    let seq = 0;
    while (state.shown.has(seq + 1) && !state.shown.get(seq + 1).placeholder) seq += 1;
    return seq;
  }

  function insertBySeq(el, seq) {
    el.dataset.seq = String(seq);
    // Pending messages have no seq and stay at the end, after every stored one.
    const after = Array.from(ui.log.children).find(
      (child) => child.dataset.seq === undefined || Number(child.dataset.seq) > seq
    );
    ui.log.insertBefore(el, after || null);
  }

  // --- Rendering messages --------------------------------------------------

  function renderMessage(frame) {
    const role = ['customer', 'bot', 'agent', 'system'].includes(frame.role)
      ? frame.role
      : 'system';
    const author = frame.author && typeof frame.author.name === 'string'
      ? frame.author.name
      : '';
    const bubble = h(
      'div',
      { class: 'bubble', dir: 'auto' },
      srLabel(`${speaker(role, author)}: `),
      String(frame.text ?? '')
    );
    const seq = String(frame.seq);
    const item = h('div', { class: `item item-${role}`, 'data-seq': seq });
    if (role === 'agent' && author) item.append(h('div', { class: 'author' }, author));
    item.append(bubble);
    if (role !== 'bot') return item;

    const titles = (Array.isArray(frame.sources) ? frame.sources : [])
      .map((source) => source && source.title)
      .filter((title) => typeof title === 'string' && title);
    if (titles.length) {
      bubble.append(h('div', { class: 'sources' }, `Sources: ${titles.join(', ')}`));
    }
    if (!frame.interrupted) item.append(renderFeedback(frame.seq, frame.feedback));
    return item;
  }

  function speaker(role, author) {
    if (role === 'customer') return 'You';
    if (role === 'bot') return author || state.botName;
    if (role === 'agent') return author || 'Support agent';
    return 'Notice';
  }

  // `given`: the customer's earlier rating, which a replayed message carries.
  function renderFeedback(seq, given) {
    const group = h('div', {
      class: 'feedback',
      role: 'group',
      'aria-label': 'Was this answer helpful?',
    });
    for (const [rating, label] of [['up', 'Helpful'], ['down', 'Not helpful']]) {
      const button = h(
        'button',
        {
          type: 'button',
          class: `rate rate-${rating}`,
          'aria-label': label,
          'aria-pressed': String(given === rating),
          'data-rating': rating,
          title: label,
        },
        icon(...ICONS.thumb)
      );
      button.addEventListener('click', () => rate(seq, rating));
      group.append(button);
    }
    return group;
  }

  // A bubble's direction comes from its first letters (dir="auto"), so the
  // English label for screen readers is marked as such and not counted.
  function srLabel(text) {
    return h('span', { class: 'sr', dir: 'ltr' }, text);
  }

  function showPending(entry) {
    const el = h(
      'div',
      { class: 'item item-customer' },
      h('div', { class: 'bubble', dir: 'auto' }, srLabel('You: '), entry.text),
      h('div', { class: 'delivery' })
    );
    setDelivery(el, 'sending');
    ui.log.append(el);
    state.pending.set(entry.client_id, el);
  }

  function setDelivery(el, stage, reason = '') {
    const line = el.querySelector('.delivery');
    line.className = `delivery delivery-${stage}`;
    if (stage === 'sending') line.replaceChildren(icon(...ICONS.clock), 'Sending…');
    else if (stage === 'sent') line.replaceChildren(icon(...ICONS.check), 'Sent');
    else line.replaceChildren(`Not sent: ${reason}`);
  }

  // The message is stored (its `message` or `ack` arrived): nothing to resend.
  function forgetPending(clientId) {
    outboxRemove(clientId);
    state.inFlight.delete(clientId);
    const el = state.pending.get(clientId);
    if (!el) return;
    state.pending.delete(clientId);
    el.remove();
  }

  function dropPreview(stream) {
    const preview = state.previews.get(stream);
    if (!preview) return;
    clearTimeout(preview.timer);
    preview.el.remove();
    state.previews.delete(stream);
    updateTyping();
  }

  // Without their closing `message` the previews are unconfirmed text; the
  // replay after the reconnect brings whatever was stored.
  function dropPreviews() {
    for (const stream of [...state.previews.keys()]) dropPreview(stream);
  }

  function setTyping(name, stream = null) {
    clearTimeout(state.timers.typing);
    state.typingFrom = name;
    state.typingStream = name ? stream : null;
    if (name) state.timers.typing = setTimeout(() => setTyping(null), TYPING_EXPIRY_MS);
    updateTyping();
  }

  function updateTyping() {
    const name = state.typingFrom || (state.previews.size ? state.botName : null);
    ui.typing.hidden = !name;
    ui.typingText.textContent = name ? `${name} is typing…` : '';
  }

  // --- Customer actions ----------------------------------------------------

  function submit() {
    const text = wellFormed(ui.input.value.trim());
    if (!text) return;
    if (charCount(text) > state.maxChars) {
      showAlert(TEXT.tooLong(state.maxChars));
      ui.input.focus();
      return;
    }
    const entry = { client_id: newClientId(), text };
    // Stored before it is sent, so neither a lost socket nor a reload loses it.
    outboxAdd(entry);
    showPending(entry);
    ui.input.value = '';
    autosize();
    updateCount();
    showAlert('');
    stopTyping();
    // Someone waiting for an answer does not wait out the backoff.
    if (!state.started) connect();
    else if (!state.socket) reconnectNow();
    flushOutbox();
    scrollToEnd();
  }

  // Sends, in order, every outbox entry not yet sent on this socket. Resending
  // an entry the server already stored is harmless: it answers with a duplicate
  // ack and stores nothing.
  function flushOutbox() {
    if (!state.ready) return;
    for (const entry of readOutbox()) {
      if (state.inFlight.has(entry.client_id)) continue;
      if (!state.pending.has(entry.client_id)) showPending(entry); // from another tab
      state.inFlight.add(entry.client_id);
      send({ type: 'message', client_id: entry.client_id, text: entry.text });
    }
  }

  function scheduleFlush(seconds) {
    clearTimeout(state.timers.flush);
    state.timers.flush = setTimeout(flushOutbox, seconds * 1000);
  }

  // Like sending a message, asking for a person follows the conversation to
  // its end: what comes next (the notices, the person) is what they wait for.
  function requestHuman() {
    if (!send({ type: 'request_human' })) {
      showAlert(TEXT.notConnected);
      return;
    }
    scrollToEnd();
  }

  function rate(seq, rating) {
    if (!state.ready || !send({ type: 'feedback', seq, rating })) {
      showAlert(TEXT.notConnected);
    }
  }

  // Only people read typing signals, so the bot is spared them.
  function noteTyping() {
    const withPerson = state.status === 'waiting' || state.status === 'human';
    if (!state.ready || !withPerson) return;
    if (!state.typingSent) state.typingSent = send({ type: 'typing', active: true });
    clearTimeout(state.timers.idle);
    state.timers.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(state.timers.idle);
    if (state.typingSent) send({ type: 'typing', active: false });
    state.typingSent = false;
  }

  // --- Small UI updates ----------------------------------------------------

  function setConn(text) {
    if (ui.conn.textContent !== text) ui.conn.textContent = text;
  }

  function showAlert(text) {
    ui.alert.textContent = text;
  }

  // Half an emoji (a lone surrogate, left by a cut paste or a script) would
  // make the frame unreadable to the server; it becomes U+FFFD here.
  function wellFormed(text) {
    if (typeof text.toWellFormed === 'function') return text.toWellFormed();
    return text.replace(
      /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g,
      '\uFFFD'
    );
  }

  // Characters as the server counts them (code points, so an emoji is one).
  function charCount(text) {
    return [...text].length;
  }

  function updateCount() {
    const used = charCount(ui.input.value.trim());
    const max = state.maxChars;
    const over = used > max;
    const fmt = (n) => n.toLocaleString('en');
    let text = '';
    if (over) {
      text = `${fmt(used)} of ${fmt(max)} characters: ${fmt(used - max)} too many.`;
    } else if (used >= max * 0.9) {
      text = `${fmt(used)} of ${fmt(max)} characters.`;
    }
    if (ui.count.textContent !== text) ui.count.textContent = text;
    ui.count.classList.toggle('over', over);
    if (over) {
      ui.input.setAttribute('aria-invalid', 'true');
    } else {
      ui.input.removeAttribute('aria-invalid');
      if (ui.alert.textContent === TEXT.tooLong(max)) showAlert('');
    }
  }

  function updateButtons() {
    const withPerson = state.status === 'waiting' || state.status === 'human';
    ui.human.disabled = !state.ready || withPerson;
  }

  function autosize() {
    ui.input.style.height = 'auto';
    ui.input.style.height = `${Math.min(ui.input.scrollHeight, 120)}px`;
  }

  function distanceToBottom() {
    const el = ui.scroll;
    return el.scrollHeight - el.scrollTop - el.clientHeight;
  }

  function isNearBottom() {
    return distanceToBottom() < 80;
  }

  // Follows new text, but stops once the start of a long answer reaches the
  // top: the reader starts at its first line instead of being carried past it.
  function scrollToEnd(answer = null) {
    const end = ui.scroll.scrollHeight - ui.scroll.clientHeight;
    ui.scroll.scrollTop = answer ? Math.min(end, answer.offsetTop - 12) : end;
    hideMarkerAtBottom();
  }

  // Scroll positions can be fractions of a pixel on a zoomed page.
  function hideMarkerAtBottom() {
    if (distanceToBottom() < 2) ui.newMessages.hidden = true;
  }

  // The newest message from its first line, as a long answer is shown.
  function showNewest(fromKeyboard) {
    const items = ui.scroll.querySelectorAll('.log > .item, .previews > .item');
    scrollToEnd(items[items.length - 1] || null);
    ui.newMessages.hidden = true;
    // Keyboard focus would go with the button; the message box is next. Not
    // after a tap: on a phone that would open the keyboard over the messages.
    if (fromKeyboard) ui.input.focus();
  }

  // --- Styles --------------------------------------------------------------

  const CSS_TEXT = `
    * , *::before, *::after { box-sizing: border-box; }
    [hidden] { display: none !important; }
    .root {
      --accent: var(--sw-accent, #1d5b79);
      --ink: #1b2430;
      --muted: #5d6775;
      --line: #e2e5ea;
      --danger: #b42318;
      font: 15px/1.45 system-ui, -apple-system, "Segoe UI", Roboto, "Helvetica Neue",
        Arial, sans-serif;
      color: var(--ink);
      -webkit-font-smoothing: antialiased;
    }
    button { font: inherit; cursor: pointer; }
    button:disabled { opacity: 0.5; cursor: default; }
    :focus-visible { outline: 3px solid var(--accent); outline-offset: 2px; }
    svg {
      width: 1em; height: 1em; fill: none; stroke: currentColor; stroke-width: 1.8;
      stroke-linecap: round; stroke-linejoin: round; flex: none;
    }

    .launcher {
      position: fixed; right: 20px; bottom: 20px; z-index: 2147483000;
      width: 56px; height: 56px; border: 0; border-radius: 50%;
      display: grid; place-items: center;
      background: var(--accent); color: #fff; font-size: 26px;
      box-shadow: 0 6px 20px rgba(16, 24, 40, 0.28);
      transition: transform 0.15s ease;
    }
    .launcher:hover { transform: scale(1.05); }
    .launcher[aria-expanded="true"] .when-closed,
    .launcher[aria-expanded="false"] .when-open { display: none; }
    .launcher span { display: grid; }
    .badge {
      position: absolute; top: 3px; right: 3px; width: 13px; height: 13px;
      border-radius: 50%; background: #e5484d; border: 2px solid #fff;
    }

    .panel {
      position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
      width: 370px; max-width: calc(100vw - 32px);
      height: 560px; max-height: calc(100vh - 112px);
      display: flex; flex-direction: column; overflow: hidden;
      background: #fff; border-radius: 14px;
      box-shadow: 0 12px 40px rgba(16, 24, 40, 0.3);
    }
    .head {
      display: flex; align-items: flex-start; gap: 12px; padding: 14px 12px 14px 16px;
      background: var(--accent); color: #fff;
    }
    .head :focus-visible { outline-color: #fff; }
    .head-text { flex: 1; min-width: 0; }
    .title { margin: 0; font-size: 16px; font-weight: 600; line-height: 1.3; }
    .conv-status { margin: 3px 0 0; font-size: 13px; opacity: 0.92; }
    .conv-status:empty { display: none; }
    .close {
      width: 32px; height: 32px; border: 0; border-radius: 8px; display: grid;
      place-items: center; background: transparent; color: inherit; font-size: 18px;
    }
    .close:hover { background: rgba(255, 255, 255, 0.16); }

    .messages {
      position: relative; flex: 1; min-height: 0;
      display: flex; flex-direction: column;
    }
    .scroll {
      position: relative; /* the offsetParent of the messages, for scrolling */
      flex: 1; overflow-y: auto; padding: 16px 14px; background: #f5f6f8;
      display: flex; flex-direction: column; gap: 10px;
    }
    /* Over the bottom of the list; only the button itself takes clicks. */
    .marker {
      position: absolute; left: 0; right: 0; bottom: 10px;
      display: flex; justify-content: center; pointer-events: none;
    }
    .new-messages {
      display: flex; align-items: center; gap: 6px; pointer-events: auto;
      padding: 6px 14px; border: 0; border-radius: 999px;
      background: var(--accent); color: #fff; font-size: 13px; font-weight: 600;
      box-shadow: 0 4px 14px rgba(16, 24, 40, 0.25);
    }
    .log, .previews { display: flex; flex-direction: column; gap: 10px; }
    .log:empty, .previews:empty { display: none; }
    .item {
      display: flex; flex-direction: column; align-items: flex-start; max-width: 86%;
    }
    .item-customer { align-self: flex-end; align-items: flex-end; }
    .item-system { align-self: center; align-items: center; max-width: 92%; }
    .bubble {
      padding: 9px 12px; border-radius: 14px;
      white-space: pre-wrap; overflow-wrap: anywhere;
    }
    .item-bot .bubble, .item-agent .bubble {
      background: #fff; border: 1px solid var(--line); border-bottom-left-radius: 4px;
    }
    .item-agent .bubble { border-color: #c9d7e3; background: #f4f9fd; }
    .item-customer .bubble {
      background: var(--accent); color: #fff; border-bottom-right-radius: 4px;
    }
    .item-system .bubble {
      padding: 2px 8px; color: var(--muted); font-size: 13px; text-align: center;
    }
    .author { margin: 0 0 2px 4px; font-size: 12px; color: var(--muted); }
    .sources {
      margin-top: 7px; padding-top: 6px; border-top: 1px solid var(--line);
      font-size: 12.5px; color: var(--muted); white-space: normal;
    }
    .delivery {
      display: flex; align-items: center; gap: 4px; margin-top: 3px;
      font-size: 12px; color: var(--muted);
    }
    .delivery-failed { color: var(--danger); }
    .feedback { display: flex; gap: 2px; margin-top: 3px; }
    .rate {
      display: grid; place-items: center; width: 28px; height: 26px;
      border: 1px solid transparent; border-radius: 6px;
      background: transparent; color: var(--muted); font-size: 15px;
    }
    .rate:hover { background: #e9ecf0; }
    .rate-down svg { transform: rotate(180deg); }
    .rate[aria-pressed="true"] { color: var(--accent); border-color: currentColor; }

    .typing {
      align-self: flex-start; padding: 12px 14px; border-radius: 14px;
      background: #fff; border: 1px solid var(--line); border-bottom-left-radius: 4px;
    }
    .dots { display: flex; gap: 4px; }
    .dot {
      width: 6px; height: 6px; border-radius: 50%; background: #8b949f;
      animation: sw-blink 1.2s infinite ease-in-out;
    }
    .dot:nth-child(2) { animation-delay: 0.2s; }
    .dot:nth-child(3) { animation-delay: 0.4s; }
    @keyframes sw-blink {
      0%, 80%, 100% { opacity: 0.3; transform: translateY(0); }
      40% { opacity: 1; transform: translateY(-2px); }
    }

    .composer { padding: 10px 12px 12px; border-top: 1px solid var(--line); }
    .conn, .alert, .count { margin: 0 0 8px; font-size: 12.5px; }
    .conn, .count { color: var(--muted); }
    .alert, .count.over { color: var(--danger); }
    .conn:empty, .alert:empty, .count:empty { display: none; }
    textarea[aria-invalid="true"] { border-color: var(--danger); }
    .row { display: flex; align-items: flex-end; gap: 8px; }
    textarea {
      flex: 1; min-height: 40px; max-height: 120px; resize: none;
      padding: 9px 10px; border: 1px solid #c9cfd6; border-radius: 10px;
      font: inherit; line-height: 1.4; color: inherit; background: #fff;
    }
    textarea:focus { border-color: var(--accent); }
    textarea:focus-visible { outline-width: 1px; outline-offset: 0; }
    .send {
      height: 40px; padding: 0 16px; border: 0; border-radius: 10px;
      background: var(--accent); color: #fff; font-weight: 600;
    }
    .queue {
      margin: 0 0 10px; padding: 9px 11px; border-radius: 10px;
      background: #eef4f8; font-size: 13.5px;
    }
    .queue-text { margin: 0; }
    .contact { margin-top: 8px; }
    .contact label { display: block; margin-bottom: 6px; color: var(--muted); }
    .contact input {
      flex: 1; min-width: 0; height: 36px; padding: 0 10px;
      border: 1px solid #c9cfd6; border-radius: 8px; font: inherit; background: #fff;
    }
    .contact input[aria-invalid="true"] { border-color: var(--danger); }
    .contact .send { height: 36px; }
    .contact-error { margin: 6px 0 0; color: var(--danger); font-size: 12.5px; }
    .contact-error:empty { display: none; }
    .contact-done { margin: 6px 0 0; }
    .human {
      margin-top: 8px; padding: 2px 0; border: 0; background: none;
      color: var(--accent); font-size: 13px; text-decoration: underline;
    }

    .sr {
      position: absolute; width: 1px; height: 1px; margin: -1px; padding: 0;
      overflow: hidden; clip: rect(0 0 0 0); white-space: nowrap; border: 0;
    }
    @media (max-width: 480px) {
      .panel {
        right: 0; bottom: 0; width: 100vw; max-width: none;
        height: 100%; max-height: none; border-radius: 0;
      }
      textarea { font-size: 16px; } /* smaller text makes iOS zoom the page */
      /* The panel fills the screen and has its own close button. */
      .launcher[aria-expanded="true"] { display: none; }
    }
    @media (prefers-reduced-motion: reduce) {
      .dot { animation: none; opacity: 0.7; }
      .launcher { transition: none; }
    }
  `;

  // --- Conversation rating ------------------------------------------------

  // Asks for 1 to 5 stars and an optional comment for the whole conversation:
  // when it is closed, or when the customer closes the panel after the bot
  // answered at least once. Asked until the customer rates or says "No
  // thanks", which is remembered across reloads: a card left unanswered when
  // the customer went to another page is shown again. The server keeps the
  // latest rating. Installed beside the rest of the widget rather than woven
  // into it: it only adds two frame handlers, its own styles and one card.
  function installConversationRating() {
    const askedKey = `sb:${config.origin}:rated`;
    const RATING_CSS = `
      .rating {
        margin: 0 0 10px; padding: 10px 11px; border-radius: 10px;
        background: #f3f5f8; font-size: 13.5px;
      }
      .rating.floating {
        position: fixed; right: 20px; bottom: 88px; z-index: 2147483000;
        width: 300px; max-width: calc(100vw - 32px); margin: 0; background: #fff;
        box-shadow: 0 12px 40px rgba(16, 24, 40, 0.3); color: var(--ink);
      }
      .rating-ask { margin: 0 0 6px; font-weight: 600; }
      .stars { display: flex; gap: 2px; margin-bottom: 8px; }
      .star {
        width: 34px; height: 32px; border: 0; border-radius: 6px;
        background: transparent; color: #b8bfc8; font-size: 24px; line-height: 1;
      }
      .star.on { color: #d08a00; }
      .rating textarea { width: 100%; min-height: 52px; margin-bottom: 8px; }
      .rating .row { align-items: center; }
      .rating-note { margin: 6px 0 0; color: var(--muted); }
      .rating-note:empty { display: none; }
      .rating.done > :not(.rating-note) { display: none; }
      .rating.done .rating-note { margin: 0; color: inherit; }
    `;
    let score = 0;
    let ratingFor = null;
    const stars = [1, 2, 3, 4, 5].map((n) =>
      h('button', {
        type: 'button',
        class: 'star',
        role: 'radio',
        'aria-checked': 'false',
        'aria-label': `${n} out of 5`,
        tabindex: n === 1 ? '0' : '-1',
      }, '★')
    );
    const comment = h('textarea', {
      rows: '2',
      maxlength: '1000',
      placeholder: 'Anything to add? (optional)',
      'aria-label': 'Comment (optional)',
    });
    const sendButton = h('button', { type: 'button', class: 'send' }, 'Send');
    const skip = h('button', { type: 'button', class: 'human' }, 'No thanks');
    const note = h('p', { class: 'rating-note', role: 'status' });
    const card = h(
      'div',
      { class: 'rating', role: 'group', 'aria-label': 'Rate this conversation' },
      h('p', { class: 'rating-ask' }, 'How was this conversation?'),
      h('div', { class: 'stars', role: 'radiogroup', 'aria-label': 'Stars' }, ...stars),
      comment,
      h('div', { class: 'row' }, sendButton, skip),
      note
    );
    card.hidden = true;
    ui.shadow.append(h('style', {}, RATING_CSS));
    ui.composer.prepend(card);

    function choose(n, focus = false) {
      score = n;
      stars.forEach((star, i) => {
        star.classList.toggle('on', i < n);
        star.setAttribute('aria-checked', String(i === n - 1));
        // Tab reaches the chosen star, or the first before any is chosen.
        star.tabIndex = i === Math.max(n, 1) - 1 ? 0 : -1;
      });
      if (focus) stars[n - 1].focus();
    }

    // Arrow keys move within the stars, as in any radio group.
    stars.forEach((star, i) => {
      star.addEventListener('click', () => choose(i + 1));
      star.addEventListener('keydown', (event) => {
        const step = { ArrowRight: 1, ArrowUp: 1, ArrowLeft: -1, ArrowDown: -1 };
        if (!(event.key in step)) return;
        event.preventDefault();
        choose(Math.min(5, Math.max(1, (score || i + 1) + step[event.key])), true);
      });
    });

    function offer() {
      const conversation = state.conversation;
      if (!conversation || !card.hidden) return place();
      if (storage.getItem(askedKey) === conversation) return;
      ratingFor = conversation;
      card.classList.remove('done');
      sendButton.disabled = skip.disabled = false;
      choose(0);
      comment.value = '';
      note.textContent = '';
      card.hidden = false;
      place();
    }

    // In the panel while it is open, above the launcher while it is closed
    // (and after it, so that Tab goes from the launcher to the card).
    function place() {
      if (isOpen()) ui.composer.prepend(card);
      else ui.launcher.after(card);
      card.classList.toggle('floating', !isOpen());
    }

    function dismiss() {
      keepingFocus(() => {
        card.hidden = true;
        place();
      });
    }

    // Focus on a part of the card that `hide` hides moves on, not to the page.
    function keepingFocus(hide) {
      const focusInside = card.contains(ui.shadow.activeElement);
      hide();
      if (focusInside) (isOpen() ? ui.input : ui.launcher).focus();
    }

    sendButton.addEventListener('click', () => {
      if (!score) {
        note.textContent = 'Choose from 1 to 5 stars first.';
        return;
      }
      const frame = { type: 'rate', score, comment: comment.value.trim() };
      if (!state.ready || !send(frame)) note.textContent = TEXT.notConnected;
    });
    skip.addEventListener('click', () => {
      save(askedKey, ratingFor);
      dismiss();
    });

    HANDLERS.set('status', (frame) => {
      onStatus(frame);
      if (frame.status === 'closed') offer();
    });
    HANDLERS.set('rate.saved', (frame) => {
      if (frame.conversation !== ratingFor) return;
      save(askedKey, ratingFor);
      sendButton.disabled = skip.disabled = true;
      // Only the thanks is left, so the conversation above stays in view.
      keepingFocus(() => card.classList.add('done'));
      note.textContent = 'Thank you for your rating!';
      setTimeout(dismiss, 2000);
    });
    new MutationObserver(() => {
      if (isOpen()) place();
      // Not while a person is awaited or on it: the conversation isn't over.
      else if (state.status === 'bot' && ui.log.querySelector('.item-bot')) offer();
    }).observe(ui.panel, { attributes: true, attributeFilter: ['hidden'] });
  }

  // --- Start ---------------------------------------------------------------

  const ui = buildUi();
  installConversationRating();
  mount();
  window.SupportWidget = Object.freeze({ open, close });
})();
