/*
 * The agent console. It speaks the websocket protocol of
 * docs/agent-protocol.md: a live queue on the left, the opened conversation on
 * the right.
 *
 * Every piece of data goes into the page as text (textContent or a text node
 * through h()); no HTML from the server or a customer is ever parsed. The
 * database is the guarantee: after a reconnect the open conversation is
 * re-opened after the highest seq shown, and messages are deduplicated by seq.
 */
(() => {
  'use strict';

  const HEARTBEAT_MS = 20000;
  const BASE_DELAY_MS = 500;
  const MAX_DELAY_MS = 30000;
  const TYPING_IDLE_MS = 3000;
  // A "started typing" whose "stopped" never came (the customer closed the tab).
  const TYPING_EXPIRY_MS = 15000;
  const REPLY_TIMEOUT_MS = 10000;
  const CLOCK_MS = 30000;

  const STATUS_LABELS = {
    bot: 'With the bot',
    waiting: 'Waiting',
    human: 'With a person',
    closed: 'Resolved',
  };
  const REASON_LABELS = {
    customer_request: 'Asked for a person',
    llm_error: 'The model failed',
    no_answer: 'No answer found',
    low_confidence: 'Low confidence',
    guideline: 'Guideline',
    reopened: 'Reopened',
    review: 'Answer to approve',
  };

  const CONFIDENCE_REASONS = new Set(['no_answer', 'low_confidence', 'guardrail', 'review']);

  const $ = (id) => document.getElementById(id);
  const ui = {
    conn: $('conn'),
    offer: $('offer'),
    queueList: $('queue-list'),
    queueEmpty: $('queue-empty'),
    queueCount: $('queue-count'),
    title: $('conv-title'),
    status: $('conv-status'),
    claim: $('claim'),
    resolve: $('resolve'),
    handBack: $('hand-back'),
    transferTo: $('transfer-to'),
    transfer: $('transfer'),
    alert: $('alert'),
    notice: $('notice'),
    transcript: $('transcript'),
    typing: $('typing'),
    reply: $('reply'),
    draftSources: $('draft-sources'),
    send: $('send'),
    suggest: $('suggest'),
    canned: $('canned'),
    cannedInsert: $('canned-insert'),
    noteText: $('note-text'),
    addNote: $('add-note'),
  };

  const me = {
    id: Number(document.body.dataset.agentId),
    name: document.body.dataset.agentName || '',
  };

  const state = {
    socket: null,
    ready: false,
    attempt: 0,
    queue: [],
    agents: [],
    offered: new Set(), // conversations routing offered to me
    current: null, // the opened conversation's id
    status: null,
    owner: null, // {id?, name} of the agent who owns the open conversation
    shown: new Map(), // seq -> element
    drafts: new Map(), // held answer id -> {frame, el, busy}
    notes: new Set(), // keys of notes on screen
    maxSeq: 0,
    pendingReply: null, // {client_id, text} until its ack
    typingSent: false,
    suggesting: false,
    follow: true, // keep the transcript scrolled to the newest message
    timers: {},
  };

  const HANDLERS = new Map([
    ['queue', onQueue],
    ['agents', onAgents],
    ['assigned', onAssigned],
    ['transcript', onTranscript],
    ['draft', onDraft],
    ['message', onMessage],
    ['note', onNote],
    ['typing', onTyping],
    ['status', onStatus],
    ['suggestion', onSuggestion],
    ['ack', onAck],
    ['article.saved', onArticleSaved],
    ['error', onError],
  ]);

  // --- DOM helpers ---------------------------------------------------------

  // Attributes are fixed names chosen here; data goes in only as child strings,
  // which append() turns into text nodes.
  function h(tag, attrs = {}, ...children) {
    const el = document.createElement(tag);
    for (const [name, value] of Object.entries(attrs)) {
      if (name === 'class') el.className = value;
      else el.setAttribute(name, value);
    }
    el.append(...children.filter((child) => child !== null && child !== undefined));
    return el;
  }

  function str(value) {
    return typeof value === 'string' ? value : '';
  }

  function personName(person) {
    return person && typeof person.name === 'string' ? person.name : '';
  }

  function isMe(person) {
    return Boolean(person) && Number(person.id) === me.id;
  }

  function timeOf(iso) {
    const ms = Date.parse(iso);
    return Number.isFinite(ms) ? ms : 0;
  }

  function clock(iso) {
    const ms = timeOf(iso);
    if (!ms) return '';
    return new Date(ms).toLocaleTimeString([], { hour: '2-digit', minute: '2-digit' });
  }

  function ago(iso) {
    const ms = timeOf(iso);
    if (!ms) return '';
    const minutes = Math.max(0, Math.round((Date.now() - ms) / 60000));
    if (minutes < 1) return 'just now';
    if (minutes < 60) return `${minutes} min`;
    const hours = Math.floor(minutes / 60);
    return `${hours} h ${minutes % 60} min`;
  }

  // --- Connection ----------------------------------------------------------

  function connect() {
    clearTimeout(state.timers.reconnect);
    const url = new URL('/ws/agent/', location.href);
    url.protocol = location.protocol === 'https:' ? 'wss:' : 'ws:';
    setConn('Connecting…');
    const ws = new WebSocket(url.href);
    state.socket = ws;
    ws.onopen = () => onOpen(ws);
    ws.onmessage = (event) => {
      if (ws === state.socket) receive(event.data);
    };
    ws.onclose = () => {
      if (ws !== state.socket) return;
      teardown();
      scheduleReconnect();
    };
  }

  function onOpen(ws) {
    if (ws !== state.socket) return;
    state.ready = true;
    state.attempt = 0;
    setConn('Connected');
    clearInterval(state.timers.heartbeat);
    state.timers.heartbeat = setInterval(() => send({ type: 'heartbeat' }), HEARTBEAT_MS);
    // Whatever happened while we were away is after the highest seq shown.
    if (state.current) {
      send({ type: 'open', conversation: state.current, after_seq: state.maxSeq });
    }
    updateControls();
  }

  function teardown() {
    const ws = state.socket;
    state.socket = null;
    state.ready = false;
    state.typingSent = false;
    state.suggesting = false;
    clearInterval(state.timers.heartbeat);
    // A decision in flight is settled by the transcript sent on reconnect.
    for (const entry of state.drafts.values()) setDraftBusy(entry, '');
    if (ws) {
      ws.onopen = ws.onmessage = ws.onclose = null;
      try {
        ws.close();
      } catch {
        // Already closing.
      }
    }
    updateControls();
  }

  function scheduleReconnect() {
    // A random point in the upper half, so consoles cut off by one restart do
    // not all come back at once.
    const ceiling = Math.min(MAX_DELAY_MS, BASE_DELAY_MS * 2 ** state.attempt);
    const delay = ceiling / 2 + (Math.random() * ceiling) / 2;
    state.attempt += 1;
    const seconds = Math.round(delay / 1000);
    // A refused handshake looks like any other drop; after a few, the likeliest
    // cause is a session that ended.
    const hint = state.attempt > 3 ? ' If this goes on, sign in again.' : '';
    setConn(`Disconnected. Reconnecting in ${Math.max(1, seconds)} s…${hint}`);
    state.timers.reconnect = setTimeout(connect, delay);
  }

  function send(frame) {
    const ws = state.socket;
    if (!ws || ws.readyState !== WebSocket.OPEN) return false;
    ws.send(JSON.stringify(frame));
    return true;
  }

  // Sends a frame about the open conversation, or says why it could not.
  function act(frame) {
    if (!state.current) return false;
    showAlert('');
    if (send({ ...frame, conversation: state.current })) return true;
    showAlert('Not connected. Try again once the console has reconnected.');
    return false;
  }

  function receive(data) {
    let frame;
    try {
      frame = JSON.parse(data);
    } catch {
      return;
    }
    const handler = frame && HANDLERS.get(frame.type);
    if (handler) handler(frame);
  }

  // --- Queue ---------------------------------------------------------------

  function onQueue(frame) {
    state.queue = Array.isArray(frame.items) ? frame.items : [];
    const item = state.queue.find((i) => i.conversation === state.current);
    // The queue carries the owner's id, which status frames do not.
    if (item) {
      state.status = item.status;
      state.owner = item.agent;
      renderHeader();
    }
    for (const id of state.offered) {
      const offered = state.queue.find((i) => i.conversation === id);
      if (!offered || offered.status !== 'waiting' || !isMe(offered.assigned_to)) {
        state.offered.delete(id);
      }
    }
    // An offer whose `assigned` frame was lost on the way still shows.
    for (const item of state.queue) {
      if (item.status === 'waiting' && isMe(item.assigned_to)) {
        state.offered.add(item.conversation);
      }
    }
    renderOffer();
    renderQueue();
  }

  function renderQueue() {
    const focused = document.activeElement;
    const focusedId = focused && focused.dataset ? focused.dataset.conversation : null;
    const waiting = state.queue.filter((i) => i.status === 'waiting').length;
    ui.queueCount.textContent = state.queue.length
      ? `${waiting} waiting · ${state.queue.length - waiting} with a person`
      : '';
    ui.queueEmpty.hidden = state.queue.length > 0;
    ui.queueList.replaceChildren(...state.queue.map(renderQueueItem));
    if (focusedId) {
      const again = ui.queueList.querySelector(`[data-conversation="${focusedId}"]`);
      if (again) again.focus();
    }
  }

  function renderQueueItem(item) {
    const mine = isMe(item.assigned_to) || isMe(item.agent)
      || state.offered.has(item.conversation);
    const status = str(item.status);
    const reason = REASON_LABELS[item.reason] || str(item.reason) || 'Escalated';
    // The bot's confidence explains a hand-over it chose, not one the
    // customer or a guideline asked for.
    const confidence = typeof item.confidence === 'number'
      && CONFIDENCE_REASONS.has(item.reason)
      ? `confidence ${Math.round(item.confidence * 100)} %`
      : null;
    const classes = ['queue-item', `is-${status}`];
    if (mine) classes.push('is-mine');
    if (item.conversation === state.current) classes.push('is-open');
    if (item.reason === 'review') classes.push('is-review');
    const button = h(
      'button',
      {
        type: 'button',
        class: classes.join(' '),
        'data-conversation': str(item.conversation),
        'aria-current': item.conversation === state.current ? 'true' : 'false',
      },
      h(
        'span',
        { class: 'qi-top' },
        h('span', { class: `badge badge-${status}` }, STATUS_LABELS[status] || status),
        h('span', { class: 'qi-reason' }, reason),
        confidence && h('span', { class: 'qi-confidence' }, confidence)
      ),
      h('span', { class: 'qi-summary' }, str(item.summary) || 'No summary yet.'),
      h(
        'span',
        { class: 'qi-meta' },
        h('span', {}, `Since ${clock(item.waiting_since)} (${ago(item.waiting_since)})`),
        h('span', { class: 'qi-who' }, whoLine(item))
      )
    );
    button.addEventListener('click', () => openConversation(item.conversation));
    return h('li', {}, button);
  }

  function whoLine(item) {
    if (item.agent) {
      return isMe(item.agent) ? 'Yours' : `With ${personName(item.agent)}`;
    }
    if (item.assigned_to) {
      return isMe(item.assigned_to)
        ? 'Offered to you'
        : `Offered to ${personName(item.assigned_to)}`;
    }
    return 'Not offered yet';
  }

  function onAssigned(frame) {
    if (typeof frame.conversation !== 'string') return;
    // A transfer arrives owned already (its queue frame came first); a routing
    // offer still needs a claim.
    const item = state.queue.find((i) => i.conversation === frame.conversation);
    if (item && isMe(item.agent)) {
      showNotice('A conversation was transferred to you; it is marked "Yours" in the queue.');
      return;
    }
    state.offered.add(frame.conversation);
    renderOffer();
    renderQueue();
  }

  function renderOffer() {
    const count = state.offered.size;
    ui.offer.textContent = count
      ? `${count === 1 ? 'A conversation is' : `${count} conversations are`} offered ` +
        'to you: claim before the offer moves on.'
      : '';
  }

  function onAgents(frame) {
    state.agents = Array.isArray(frame.items) ? frame.items : [];
    const chosen = ui.transferTo.value;
    const others = state.agents.filter((a) => Number(a.id) !== me.id);
    const options = others.map((agent) => {
      const load = `${Number(agent.load) || 0}/${Number(agent.capacity) || 0}`;
      return h('option', { value: String(agent.id) }, `${personName(agent)} (${load})`);
    });
    if (!options.length) {
      options.push(h('option', { value: '' }, 'No other agent online'));
    }
    ui.transferTo.replaceChildren(...options);
    if (others.some((a) => String(a.id) === chosen)) ui.transferTo.value = chosen;
    updateControls();
  }

  // --- The open conversation ----------------------------------------------

  function openConversation(id) {
    if (id === state.current) {
      ui.reply.focus();
      return;
    }
    if (state.current) {
      stopTyping();
      send({ type: 'close', conversation: state.current });
    }
    state.current = id;
    state.status = null;
    state.owner = null;
    state.shown.clear();
    state.notes.clear();
    state.drafts.clear();
    state.maxSeq = 0;
    state.pendingReply = null;
    state.follow = true;
    ui.transcript.replaceChildren();
    ui.reply.value = '';
    ui.draftSources.textContent = '';
    showAlert('');
    showNotice('');
    setCustomerTyping(false);
    const item = state.queue.find((i) => i.conversation === id);
    if (item) {
      state.status = item.status;
      state.owner = item.agent;
    }
    renderHeader();
    renderQueue();
    if (!send({ type: 'open', conversation: id, after_seq: 0 })) {
      showAlert('Not connected. The conversation opens once the console reconnects.');
    }
  }

  function onTranscript(frame) {
    if (frame.conversation !== state.current) return;
    state.status = frame.status;
    state.owner = frame.agent;
    for (const note of Array.isArray(frame.notes) ? frame.notes : []) addNote(note);
    syncDrafts(Array.isArray(frame.drafts) ? frame.drafts : []);
    if (state.follow) scrollToEnd();
    renderHeader();
  }

  function onStatus(frame) {
    if (frame.conversation !== state.current) return;
    const ownerChanged = personName(frame.agent) !== personName(state.owner);
    state.status = frame.status;
    // Status frames carry only the owner's name; the queue frame that follows
    // brings the id. Keep a known id when the name is unchanged.
    if (ownerChanged) state.owner = frame.agent ? { name: personName(frame.agent) } : null;
    if (state.status !== 'human') setCustomerTyping(false);
    renderHeader();
    // Someone approved or discarded a draft: the transcript says which are left.
    if (state.drafts.size) resync();
  }

  function renderHeader() {
    const open = Boolean(state.current);
    ui.title.textContent = open
      ? `Conversation ${state.current.slice(0, 8)}`
      : 'No conversation open';
    if (!open) {
      ui.status.textContent = 'Pick a conversation from the queue.';
    } else if (state.status === 'human') {
      const name = isMe(state.owner) ? 'you' : personName(state.owner) || 'someone';
      ui.status.textContent = `With a person: ${name}.`;
    } else {
      ui.status.textContent = STATUS_LABELS[state.status] || 'Loading…';
    }
    ui.status.dataset.status = state.status || '';
    updateControls();
  }

  function ownedByMe() {
    return state.status === 'human' && isMe(state.owner);
  }

  function updateControls() {
    const open = Boolean(state.current) && state.ready;
    const mine = open && ownedByMe();
    // Claim stays available while someone else owns it: the server decides, and
    // says who has it.
    ui.claim.disabled = !open || mine || !['waiting', 'human'].includes(state.status);
    ui.resolve.disabled = !mine;
    ui.handBack.disabled = !mine;
    ui.transfer.disabled = !mine || !ui.transferTo.value;
    ui.transferTo.disabled = !mine;
    // Enter keeps to it: sendReply does nothing with a blank box.
    ui.send.disabled = !mine || state.pendingReply !== null || !ui.reply.value.trim();
    ui.reply.readOnly = state.pendingReply !== null;
    // A draft is for a reply someone can still send: not once the conversation
    // is closed or back with the bot. Notes are for the record, so any time.
    ui.suggest.disabled =
      !open || state.suggesting || !['waiting', 'human'].includes(state.status);
    ui.suggest.textContent = state.suggesting ? 'Suggesting…' : 'Suggest reply';
    ui.addNote.disabled = !open;
    ui.cannedInsert.disabled = !state.current || !ui.canned.value;
  }

  // --- Transcript ----------------------------------------------------------

  function onMessage(frame) {
    if (frame.conversation !== state.current || !Number.isInteger(frame.seq)) return;
    if (state.shown.has(frame.seq)) return; // live and replayed: shown once
    const el = renderMessage(frame);
    el.dataset.seq = String(frame.seq);
    el.dataset.time = String(timeOf(frame.created_at));
    const later = Array.from(ui.transcript.children).find(
      (child) => child.dataset.seq && Number(child.dataset.seq) > frame.seq
    );
    ui.transcript.insertBefore(el, later || firstDraft());
    state.shown.set(frame.seq, el);
    state.maxSeq = Math.max(state.maxSeq, frame.seq);
    if (frame.role === 'customer') setCustomerTyping(false);
    if (frame.role === 'bot') dropAnsweredDrafts(frame);
    if (state.follow) scrollToEnd();
  }

  function renderMessage(frame) {
    const role = ['customer', 'bot', 'agent', 'system'].includes(frame.role)
      ? frame.role
      : 'system';
    const author = personName(frame.author);
    const who = {
      customer: 'Customer',
      bot: author || 'Bot',
      agent: author || 'Agent',
      system: 'Notice',
    }[role];
    const item = h(
      'article',
      { class: `msg msg-${role}` },
      h('header', { class: 'msg-head' }, h('span', { class: 'msg-who' }, who),
        h('time', { datetime: str(frame.created_at) }, clock(frame.created_at))),
      h('div', { class: 'msg-text' }, str(frame.text))
    );
    if (role === 'bot') item.append(renderSignals(frame));
    if (role === 'agent') item.append(renderSaveArticle(frame.seq));
    return item;
  }

  // What the bot based an answer on and how it went, for the agent to judge.
  function renderSignals(frame) {
    const meta = frame.metadata && typeof frame.metadata === 'object' ? frame.metadata : {};
    const box = h('div', { class: 'signals' });
    const sources = Array.isArray(frame.sources) ? frame.sources : [];
    const titles = sources.map((s) => str(s && s.title)).filter(Boolean);
    box.append(h('div', {}, titles.length ? `Sources: ${titles.join(', ')}` : 'No sources'));

    const facts = [];
    const retrieval = Array.isArray(meta.retrieval) ? meta.retrieval : [];
    if (retrieval.length) {
      const scores = retrieval
        .map((r) => `#${Number(r.id)} ${Number(r.score).toFixed(2)}`)
        .join(', ');
      facts.push(`retrieval ${scores}`);
    }
    if (typeof meta.model === 'string' && meta.model) facts.push(`model ${meta.model}`);
    if (Number.isFinite(meta.latency_ms)) facts.push(`${meta.latency_ms} ms`);
    if (meta.answered === false) facts.push('no answer found');
    if (facts.length) box.append(h('div', { class: 'facts' }, facts.join(' · ')));

    if (frame.interrupted || meta.interrupted) {
      const why = typeof meta.error === 'string' && meta.error ? ` (${meta.error})` : '';
      box.append(h('div', { class: 'flag' }, `Interrupted${why}`));
    } else if (typeof meta.error === 'string' && meta.error) {
      box.append(h('div', { class: 'flag' }, `Error: ${meta.error}`));
    }
    return box;
  }

  function renderSaveArticle(seq) {
    const button = h('button', { type: 'button', class: 'link' }, 'Save as article');
    button.addEventListener('click', () => {
      const title = window.prompt('Title of the new knowledge article:');
      if (title === null) return;
      if (!title.trim()) {
        showAlert('An article needs a title.');
        return;
      }
      act({ type: 'save_article', seq, title: title.trim() });
    });
    return h('div', { class: 'msg-actions' }, button);
  }

  function onNote(frame) {
    if (frame.conversation !== state.current) return;
    addNote(frame);
    if (state.follow) scrollToEnd();
  }

  // Notes sit among the messages by time, marked as internal.
  function addNote(note) {
    const key = `${str(note.created_at)}|${str(note.author)}|${str(note.text)}`;
    if (state.notes.has(key)) return;
    state.notes.add(key);
    const time = timeOf(note.created_at);
    const el = h(
      'aside',
      { class: 'msg msg-note', 'aria-label': 'Internal note' },
      h(
        'header',
        { class: 'msg-head' },
        h('span', { class: 'msg-who' }, `Internal note · ${str(note.author) || 'Agent'}`),
        h('time', { datetime: str(note.created_at) }, clock(note.created_at))
      ),
      h('div', { class: 'msg-text' }, str(note.text))
    );
    el.dataset.time = String(time);
    const later = Array.from(ui.transcript.children).find(
      (child) => Number(child.dataset.time) > time
    );
    ui.transcript.insertBefore(el, later || firstDraft());
  }

  function onTyping(frame) {
    if (frame.conversation && frame.conversation !== state.current) return;
    setCustomerTyping(Boolean(frame.active));
  }

  function setCustomerTyping(active) {
    clearTimeout(state.timers.customerTyping);
    ui.typing.textContent = active ? 'The customer is typing…' : '';
    if (active) {
      state.timers.customerTyping = setTimeout(
        () => setCustomerTyping(false),
        TYPING_EXPIRY_MS
      );
    }
  }

  function nearBottom() {
    const el = ui.transcript;
    return el.scrollHeight - el.scrollTop - el.clientHeight < 80;
  }

  function scrollToEnd() {
    ui.transcript.scrollTop = ui.transcript.scrollHeight;
  }


  // --- Drafts held for approval --------------------------------------------
  //
  // In supervised and copilot mode the bot's answer waits here until an agent
  // sends it (as is or edited) or discards it. Drafts stay below the messages.
  // After every decision the console re-opens the conversation after the
  // highest seq: the transcript that comes back lists the drafts still pending,
  // and the server handles frames in order, so any error arrives before it.

  function firstDraft() {
    return ui.transcript.querySelector(':scope > .msg-draft');
  }

  function resync() {
    if (state.current) {
      send({ type: 'open', conversation: state.current, after_seq: state.maxSeq });
    }
  }

  function onDraft(frame) {
    if (frame.conversation !== state.current) return;
    if (frame.status && frame.status !== 'pending') {
      removeDraft(frame.draft);
      return;
    }
    if (!state.drafts.has(frame.draft)) {
      addDraft(frame);
      showNotice('The bot drafted an answer: it waits for your approval below.');
    }
    if (state.follow) scrollToEnd();
  }

  // The server's list is the truth; a draft being edited keeps its textarea.
  function syncDrafts(drafts) {
    const pending = drafts.filter(
      (d) => d && Number.isInteger(d.draft) && (!d.status || d.status === 'pending')
    );
    const ids = new Set(pending.map((d) => d.draft));
    for (const id of Array.from(state.drafts.keys())) {
      if (!ids.has(id)) removeDraft(id);
    }
    for (const draft of pending) {
      if (!state.drafts.has(draft.draft)) addDraft(draft);
    }
  }

  // An approved draft comes back as the bot's message, answering the same seq.
  function dropAnsweredDrafts(frame) {
    const meta = frame.metadata && typeof frame.metadata === 'object' ? frame.metadata : {};
    if (!meta.approved_by || !Number.isInteger(meta.reply_to)) return;
    for (const [id, entry] of state.drafts) {
      if (entry.frame.reply_to === meta.reply_to) removeDraft(id);
    }
  }

  function removeDraft(id) {
    const entry = state.drafts.get(id);
    if (!entry) return;
    // Our own decision, or a draft someone else handled while we were in it:
    // the reply box is the natural next place either way.
    const refocus = entry.busy || entry.el.contains(document.activeElement);
    entry.el.remove();
    state.drafts.delete(id);
    if (refocus) ui.reply.focus();
  }

  function addDraft(frame) {
    if (!Number.isInteger(frame.draft)) return;
    const meta = frame.metadata && typeof frame.metadata === 'object' ? frame.metadata : {};
    const headingId = `draft-${frame.draft}-title`;
    const text = h('div', { class: 'msg-text' }, str(frame.text));
    const editor = h('textarea', {
      class: 'held-editor',
      rows: '5',
      'aria-label': 'Edit the draft answer',
    });
    const status = h('p', { class: 'held-status', role: 'status' });
    const buttons = {
      send: h('button', { type: 'button', class: 'primary' }, 'Send'),
      edit: h('button', { type: 'button' }, 'Edit'),
      discard: h('button', { type: 'button', class: 'danger' }, 'Discard'),
      sendEdited: h('button', { type: 'button', class: 'primary' }, 'Send edited'),
      cancel: h('button', { type: 'button' }, 'Cancel'),
    };
    const viewButtons = h(
      'div', { class: 'held-actions' }, buttons.send, buttons.edit, buttons.discard
    );
    const editButtons = h('div', { class: 'held-actions' }, buttons.sendEdited, buttons.cancel);
    const editing = h(
      'div',
      { class: 'held-editing' },
      editor,
      h('p', { class: 'held-hint' }, 'Ctrl+Enter sends the edited answer, Escape cancels.'),
      editButtons
    );
    editing.hidden = true;
    const replyTo = Number.isInteger(frame.reply_to) ? ` · answers message #${frame.reply_to}` : '';
    const el = h(
      'article',
      { class: 'msg msg-draft', 'aria-labelledby': headingId },
      h(
        'header',
        { class: 'msg-head' },
        h('span', { class: 'msg-who', id: headingId },
          'Draft answer — waiting for your approval'),
        h('span', {}, `Not sent to the customer yet${replyTo}`)
      ),
      text,
      editing,
      renderDraftSignals(meta),
      status,
      viewButtons
    );
    el.dataset.draft = String(frame.draft);
    const entry = { frame, el, busy: '', buttons, status, editor };

    const startEdit = () => {
      editor.value = str(entry.frame.text);
      text.hidden = true;
      viewButtons.hidden = true;
      editing.hidden = false;
      editor.focus();
    };
    const stopEdit = () => {
      editing.hidden = true;
      text.hidden = false;
      viewButtons.hidden = false;
      buttons.edit.focus();
    };
    const sendEditedText = () => {
      const edited = editor.value.trim();
      if (!edited) {
        showAlert('An edited answer needs some text. Discard the draft to answer yourself.');
        editor.focus();
        return;
      }
      decide(entry, { type: 'approve', draft: frame.draft, text: edited }, 'Sending…');
    };
    buttons.send.addEventListener('click', () => {
      decide(entry, { type: 'approve', draft: frame.draft }, 'Sending…');
    });
    buttons.edit.addEventListener('click', startEdit);
    buttons.cancel.addEventListener('click', stopEdit);
    buttons.sendEdited.addEventListener('click', sendEditedText);
    buttons.discard.addEventListener('click', () => {
      decide(entry, { type: 'discard', draft: frame.draft }, 'Discarding…');
    });
    editor.addEventListener('keydown', (event) => {
      if (event.key === 'Escape') {
        event.preventDefault();
        stopEdit();
      } else if (event.key === 'Enter' && (event.ctrlKey || event.metaKey) && !event.isComposing) {
        event.preventDefault();
        sendEditedText();
      }
    });

    state.drafts.set(frame.draft, entry);
    ui.transcript.append(el);
  }

  // Confidence, why it is held, what it broke and what it rests on.
  function renderDraftSignals(meta) {
    const box = h('div', { class: 'signals held-signals' });
    if (typeof meta.confidence === 'number' && Number.isFinite(meta.confidence)) {
      box.append(h('div', {}, `Confidence ${Math.round(meta.confidence * 100)} %`));
    }
    const reasons = (Array.isArray(meta.reasons) ? meta.reasons : []).map(str).filter(Boolean);
    if (reasons.length) box.append(h('div', {}, `Reasons: ${reasons.join('; ')}`));
    const signals = meta.signals && typeof meta.signals === 'object' ? meta.signals : {};
    const violations = (Array.isArray(signals.violations) ? signals.violations : [])
      .map(str)
      .filter(Boolean);
    if (violations.length) {
      box.append(h('div', { class: 'flag' }, `Violations: ${violations.join('; ')}`));
    }
    const titles = (Array.isArray(meta.sources) ? meta.sources : [])
      .map((s) => str(s && s.title))
      .filter(Boolean);
    box.append(
      h('div', {}, titles.length ? `Sources: ${titles.join(', ')}` : 'No sources: check it.')
    );
    return box;
  }

  function decide(entry, frame, busyText) {
    if (entry.busy) return;
    if (!act(frame)) return;
    setDraftBusy(entry, busyText);
    resync();
  }

  function setDraftBusy(entry, busyText) {
    entry.busy = busyText;
    entry.status.textContent = busyText;
    for (const button of Object.values(entry.buttons)) button.disabled = Boolean(busyText);
    entry.editor.readOnly = Boolean(busyText);
  }

  // --- Agent actions -------------------------------------------------------

  function sendReply() {
    const text = ui.reply.value.trim();
    if (!text || state.pendingReply) return;
    if (!ownedByMe()) {
      showAlert('Claim this conversation before you reply.');
      return;
    }
    const clientId = newClientId();
    state.pendingReply = { client_id: clientId, text };
    stopTyping();
    if (!act({ type: 'reply', client_id: clientId, text })) {
      state.pendingReply = null;
      return;
    }
    clearTimeout(state.timers.reply);
    state.timers.reply = setTimeout(() => {
      state.pendingReply = null;
      showAlert('The reply was not confirmed. Check the transcript, then try again.');
      updateControls();
    }, REPLY_TIMEOUT_MS);
    updateControls();
  }

  function onAck(frame) {
    const pending = state.pendingReply;
    if (!pending || frame.client_id !== pending.client_id) return;
    clearTimeout(state.timers.reply);
    state.pendingReply = null;
    if (ui.reply.value.trim() === pending.text) ui.reply.value = '';
    ui.draftSources.textContent = '';
    updateControls();
    ui.reply.focus();
  }

  function newClientId() {
    const bytes = crypto.getRandomValues(new Uint8Array(9));
    const hex = Array.from(bytes, (b) => b.toString(16).padStart(2, '0')).join('');
    return `a-${Date.now().toString(36)}-${hex}`;
  }

  function noteTyping() {
    if (!ownedByMe() || !ui.reply.value.trim()) {
      stopTyping();
      return;
    }
    if (!state.typingSent) {
      state.typingSent = send({ type: 'typing', conversation: state.current, active: true });
    }
    clearTimeout(state.timers.idle);
    state.timers.idle = setTimeout(stopTyping, TYPING_IDLE_MS);
  }

  function stopTyping() {
    clearTimeout(state.timers.idle);
    if (state.typingSent && state.current) {
      send({ type: 'typing', conversation: state.current, active: false });
    }
    state.typingSent = false;
  }

  function suggest() {
    if (act({ type: 'suggest' })) {
      state.suggesting = true;
      updateControls();
    }
  }

  function onSuggestion(frame) {
    state.suggesting = false;
    updateControls();
    if (frame.conversation !== state.current) return;
    const text = str(frame.text);
    if (!text) {
      showNotice('The bot has no suggestion for this one.');
      return;
    }
    ui.reply.value = text;
    updateControls();
    const titles = (Array.isArray(frame.sources) ? frame.sources : [])
      .map((s) => str(s && s.title))
      .filter(Boolean);
    ui.draftSources.textContent = titles.length
      ? `Suggested from: ${titles.join(', ')}`
      : 'Suggested without a source article: check it before sending.';
    ui.reply.focus();
    ui.reply.setSelectionRange(text.length, text.length);
  }

  function insertCanned() {
    const reply = cannedReplies[Number(ui.canned.value)];
    if (!reply) return;
    const current = ui.reply.value.trimEnd();
    ui.reply.value = current ? `${current}\n${reply.text}` : reply.text;
    ui.canned.value = '';
    updateControls();
    ui.reply.focus();
  }

  function addInternalNote() {
    const text = ui.noteText.value.trim();
    if (!text) return;
    if (act({ type: 'note', text })) ui.noteText.value = '';
  }

  function onArticleSaved(frame) {
    showNotice(`Saved as the article “${str(frame.title)}”.`);
  }

  const ERROR_TITLES = {
    already_claimed: 'Already claimed',
    empty_message: 'Nothing to send',
    message_too_long: 'Too long',
    not_owner: 'Not yours',
    not_found: 'Not found',
    not_waiting: 'Not waiting',
    not_pending: 'Already handled',
    model_unavailable: 'No suggestion',
    no_suggestion: 'No suggestion',
    not_available: 'Not online',
    already_yours: 'Already yours',
    forbidden: 'Not allowed',
    invalid_frame: 'Invalid request',
    server_error: 'Server error',
  };

  function onError(frame) {
    const title = ERROR_TITLES[frame.code] || 'Error';
    const text = str(frame.message) || 'Something went wrong.';
    showAlert(`${title}: ${text}`, str(frame.code));
    // A refused reply keeps its text in the composer for another try.
    if (state.pendingReply) {
      clearTimeout(state.timers.reply);
      state.pendingReply = null;
    }
    // A failed suggestion gives the button back (an error that names no
    // conversation may be the one for it).
    if (state.suggesting && (!frame.conversation || frame.conversation === state.current)) {
      state.suggesting = false;
    }
    // A refused approve or discard: the draft gets its buttons back (the
    // transcript asked for after it removes it if it is gone).
    for (const entry of state.drafts.values()) {
      if (entry.busy) setDraftBusy(entry, '');
    }
    updateControls();
  }

  // --- Small UI updates ----------------------------------------------------

  function setConn(text) {
    ui.conn.textContent = text;
    ui.conn.dataset.state = state.ready ? 'up' : 'down';
  }

  function showAlert(text, code = '') {
    ui.alert.textContent = text;
    ui.alert.dataset.code = code;
    if (text) showNotice('');
  }

  function showNotice(text) {
    ui.notice.textContent = text;
  }

  // --- Start ---------------------------------------------------------------

  function readCanned() {
    try {
      const list = JSON.parse($('canned-replies').textContent);
      return Array.isArray(list) ? list.filter((r) => r && typeof r.text === 'string') : [];
    } catch {
      return [];
    }
  }

  const cannedReplies = readCanned();

  function bind() {
    ui.canned.replaceChildren(
      h('option', { value: '' }, cannedReplies.length ? 'Canned reply…' : 'No canned replies'),
      ...cannedReplies.map((r, i) => h('option', { value: String(i) }, str(r.title)))
    );
    ui.reply.addEventListener('keydown', (event) => {
      // isComposing: Enter also confirms a word in Japanese or Chinese input.
      if (event.key === 'Enter' && !event.shiftKey && !event.isComposing) {
        event.preventDefault();
        sendReply();
      }
    });
    ui.reply.addEventListener('input', () => {
      noteTyping();
      updateControls();
    });
    ui.reply.addEventListener('blur', stopTyping);
    ui.send.addEventListener('click', sendReply);
    ui.claim.addEventListener('click', () => act({ type: 'claim' }));
    ui.resolve.addEventListener('click', () => act({ type: 'resolve' }));
    ui.handBack.addEventListener('click', () => act({ type: 'hand_back' }));
    ui.transfer.addEventListener('click', () => {
      const agent = Number(ui.transferTo.value);
      if (Number.isInteger(agent) && agent > 0) act({ type: 'transfer', agent });
    });
    ui.transferTo.addEventListener('change', updateControls);
    ui.suggest.addEventListener('click', suggest);
    ui.canned.addEventListener('change', updateControls);
    ui.cannedInsert.addEventListener('click', insertCanned);
    ui.addNote.addEventListener('click', addInternalNote);
    // Reading further up stops the transcript from jumping to new messages.
    ui.transcript.addEventListener('scroll', () => {
      state.follow = nearBottom();
    });
    // Notices and draft sources come and go above and below it, shrinking it.
    new ResizeObserver(() => {
      if (state.follow) scrollToEnd();
    }).observe(ui.transcript);
    ui.noteText.addEventListener('keydown', (event) => {
      if (event.key === 'Enter' && !event.isComposing) {
        event.preventDefault();
        addInternalNote();
      }
    });
    // "Waiting since" is relative; keep it honest without a server round trip.
    setInterval(renderQueue, CLOCK_MS);
  }

  bind();
  renderHeader();
  connect();
})();
