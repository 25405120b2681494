// The customer-service desk demo: a visitor, an agent and an admin on one page, talking to the
// gateway through the browser client (/wsc.js) and the REST API on the same origin.
import { WscClient } from "/wsc.js";

const $ = (id) => document.getElementById(id);

// ---- Small helpers ---------------------------------------------------------------------------

// Builds an element. Text always goes in through textContent, never as HTML, because most of
// what this page shows was typed by somebody else.
function h(tag, className, text, ...children) {
  const el = document.createElement(tag);
  if (className) el.className = className;
  if (text !== undefined && text !== null) el.textContent = text;
  el.append(...children);
  return el;
}

// 32 characters, so a random byte modulo the length has no bias; the look-alikes (0/o, 1/l)
// are left out because people read these ids aloud.
const ALPHABET = "abcdefghijkmnpqrstuvwxyz23456789";

function randomChars(count) {
  return Array.from(crypto.getRandomValues(new Uint8Array(count)), (b) => ALPHABET[b % 32]).join("");
}

// crypto.randomUUID exists only in secure contexts (https or localhost), but the demo is also
// opened over plain http from a phone on the LAN, so a version 4 UUID is built by hand there.
function newMessageId() {
  if (typeof crypto.randomUUID === "function") return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const x = Array.from(b, (v) => v.toString(16).padStart(2, "0")).join("");
  return `${x.slice(0, 8)}-${x.slice(8, 12)}-${x.slice(12, 16)}-${x.slice(16, 20)}-${x.slice(20)}`;
}

// `?transport=sse` or `?transport=websocket` pins one transport, which lets a test (or a
// curious reader) exercise the SSE fallback on purpose; otherwise the client's default applies.
function clientOptions(options) {
  const wanted = new URLSearchParams(location.search).get("transport");
  if (wanted === "sse" || wanted === "websocket") options.transports = [wanted];
  return options;
}

function slug(text) {
  const s = text.toLowerCase().replace(/[^a-z0-9]+/g, "-").replace(/^-+|-+$/g, "").slice(0, 16);
  return s || "agent";
}

function clock(iso) {
  const date = new Date(iso || Date.now());
  return (Number.isNaN(date.getTime()) ? new Date() : date).toLocaleTimeString([], { hour: "2-digit", minute: "2-digit" });
}

const str = (value) => (typeof value === "string" ? value : "");
const errorText = (err) => (err && err.message ? err.message : String(err));
const plural = (n, word) => `${n} ${word}${n === 1 ? "" : "s"}`;

// Calls the REST API and returns the parsed JSON body. A non-2xx answer becomes an Error whose
// message is the server's `{"error", "message"}` pair, so callers can show it as it is.
async function api(method, path, body) {
  const init = { method, headers: {}, cache: "no-store" };
  if (body !== undefined) {
    init.headers["content-type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  // A stuck request would otherwise stall the admin's polling loops for good.
  if (typeof AbortSignal.timeout === "function") init.signal = AbortSignal.timeout(5000);
  const response = await fetch(path, init);
  // An empty or non-JSON body (a proxy's error page, say) reads as null.
  const json = await response.json().catch(() => null);
  if (!response.ok) {
    const detail = json && (json.message || json.error);
    throw new Error(detail ? `${json.error || response.status}: ${json.message || ""}` : `HTTP ${response.status}`);
  }
  return json || {};
}

// Shows a connection's state: data-state is idle | connecting | connected | reconnecting |
// closed, and data-transport is present only while connected.
function showStatus(el, state, text, transport) {
  el.textContent = text;
  el.dataset.state = state;
  if (transport) el.dataset.transport = transport;
  else delete el.dataset.transport;
}

// The live session of each role. A new session replaces the old one first and closes it after,
// so the old client's final events find themselves no longer current and stay silent.
const sessions = { visitor: null, agent: null };

function setBusy(els, busy, label) {
  els.start.disabled = busy;
  els.name.disabled = busy;
  if (label) els.start.textContent = label;
}

// Opens a role's connection: `wire` subscribes before connect() so no early frame is missed,
// and from then on the status line and the start button follow the client. While a session
// lives, its name is fixed and the start button is off. Resolves to whether it connected.
async function openSession(role, els, session, wire, againLabel) {
  const old = sessions[role];
  sessions[role] = session;
  if (old) {
    old.closed = true;
    old.stop();
    old.client.close();
  }
  const isCurrent = () => sessions[role] === session;
  const end = (text) => {
    session.closed = true;
    session.stop();
    showStatus(els.status, "closed", `disconnected: ${text}`);
    setBusy(els, false, againLabel);
  };
  session.client.on("connected", (e) => {
    if (isCurrent()) showStatus(els.status, "connected", `connected (${e.transport})`, e.transport);
  });
  session.client.on("disconnected", (e) => {
    if (!isCurrent() || session.closed) return;
    if (typeof e.retryInMs === "number") showStatus(els.status, "reconnecting", "reconnecting…");
    else end(e.reason || "closed");
  });
  wire(isCurrent);
  setBusy(els, true);
  showStatus(els.status, "connecting", "connecting…");
  try {
    await session.client.connect();
  } catch (err) {
    if (isCurrent() && !session.closed) end(errorText(err));
    return false;
  }
  return isCurrent() && !session.closed;
}

// ---- A conversation view (log, typing line, composer), shared by visitor and agent ----------

// `prefix` names the elements: #<prefix>-log, -typing, -form, -input and -send.
function createConversation(prefix, { onSend, onTyping }) {
  const part = (name) => $(`${prefix}-${name}`);
  const [log, typing, form, input, button] = ["log", "typing", "form", "input", "send"].map(part);
  // Everything shown is keyed by message id, so a frame that arrives twice (a resend, a
  // replay after reconnecting) is never shown twice even if the client's dedupe missed it.
  const shown = new Map();
  let typingTimer = 0;
  let lastTypingAt = 0;

  function show(el, key) {
    log.append(el);
    if (key) shown.set(key, el);
    log.scrollTop = log.scrollHeight;
  }

  const convo = {
    add(kind, messageId, text, createdAt) {
      if (messageId && shown.has(messageId)) return false;
      const meta = h("span", "meta", null, h("span", "time", clock(createdAt)));
      if (kind === "mine") meta.append(h("span", "receipt", "sent"));
      const el = h("div", `msg ${kind}`, null, h("span", "text", text), meta);
      if (messageId) el.dataset.messageId = messageId;
      show(el, messageId);
      return true;
    },
    system(text, key) {
      if (!key || !shown.has(key)) show(h("div", "system", text), key);
    },
    markRead(messageId) {
      const el = typeof messageId === "string" ? shown.get(messageId) : undefined;
      const receipt = el && el.classList.contains("mine") ? el.querySelector(".receipt") : null;
      if (!receipt) return;
      receipt.textContent = "read";
      receipt.classList.add("read");
    },
    showTyping() {
      typing.hidden = false;
      clearTimeout(typingTimer);
      typingTimer = setTimeout(() => (typing.hidden = true), 3000);
    },
    hideTyping() {
      clearTimeout(typingTimer);
      typing.hidden = true;
    },
    setEnabled(on) {
      input.disabled = !on;
      button.disabled = !on;
    },
    reset() {
      log.replaceChildren();
      shown.clear();
      convo.hideTyping();
      lastTypingAt = 0;
    },
  };

  // A form gives Enter-to-send and the button click in one place.
  form.addEventListener("submit", (event) => {
    event.preventDefault();
    const text = input.value.trim();
    if (!text || input.disabled) return;
    onSend(text);
    input.value = "";
    lastTypingAt = 0;
  });

  // At most one typing frame per 1.5 s: enough for the other side's 3 s indicator to stay on
  // while someone types, without a frame per keystroke.
  input.addEventListener("input", () => {
    const now = Date.now();
    if (!input.value || now - lastTypingAt < 1500) return;
    lastTypingAt = now;
    onTyping();
  });

  return convo;
}

// Sends one chat line on a ticket connection and shows it as `mine`.
function sendText(client, convo, ticketId, senderName, text) {
  const id = newMessageId();
  client.send({ id, message_id: id, message_type: "text", content: text, ticket_id: ticketId, sender_name: senderName });
  convo.add("mine", id, text);
}

// The chat frames of one ticket connection, the same for both sides: `chat` holds the own
// user id, the ticket id and `peerId` (the other side, learned from the first reply if need be).
function wireChat(client, convo, chat, isCurrent) {
  const fromPeer = (msg) => isCurrent() && msg.sender !== chat.userId && (!msg.ticket_id || msg.ticket_id === chat.ticketId);
  client.onMessage("text", (msg) => {
    if (!fromPeer(msg) || msg.ticket_id !== chat.ticketId) return;
    if (!chat.peerId && msg.sender) chat.peerId = msg.sender;
    if (!convo.add("theirs", msg.message_id || msg.id, str(msg.content), msg.create_at)) return;
    convo.hideTyping();
    // The visitor answers whoever wrote (msg.sender); the agent answers its customer.
    const to = chat.receiptToSender ? msg.sender : chat.peerId;
    if (!msg.message_id || !to) return;
    client.send({ message_type: "read", receiver: to, ticket_id: chat.ticketId, data: { message_id: msg.message_id } });
  });
  client.onMessage("typing", (msg) => {
    if (fromPeer(msg)) convo.showTyping();
  });
  client.onMessage("read", (msg) => {
    if (fromPeer(msg)) convo.markRead(msg.data && msg.data.message_id);
  });
}

// Notices, kicks and errors, shown the same way by both roles.
function watchCommonFrames(client, convo, banner, isCurrent) {
  const on = (type, handler) => client.onMessage(type, (msg) => isCurrent() && handler(msg));
  const showBanner = (msg) => {
    banner.textContent = str(msg.content);
    banner.hidden = !msg.content;
  };
  on("notice", showBanner);
  on("announcement", showBanner);
  on("kick_out", (msg) => convo.system(`kicked out: ${str(msg.content) || "no reason given"}`, msg.message_id));
  on("force_offline", (msg) => convo.system(`signed out: ${str(msg.content)}`, msg.message_id));
  on("error", (msg) => convo.system(`error: ${str(msg.content) || "unknown"}`, msg.message_id));
}

// ---- Tickets, the server's feature -------------------------------------------------------------
//
// The gateway keeps the tickets: the visitor opens one with a `ticket_created` frame, the server
// queues it or gives it at once to the least-loaded agent online, and tells both sides with
// `ticket_assigned`, `ticket_transfer` and `ticket_closed` frames carrying the ticket in
// `data.ticket`. Both sides also bind a connection to the ticket id when it connects, so the
// conversation goes on across a restart of the demo's in-memory server.

const ticketOf = (msg) => (msg && msg.data && typeof msg.data.ticket === "object" && msg.data.ticket) || {};

// Agent ids are `a-<name>-<random>`: the name part is what people call the agent.
function agentLabel(agentId) {
  const parts = str(agentId).split("-");
  return parts.length >= 3 ? parts.slice(1, -1).join("-") : str(agentId) || "an agent";
}

// ---- Visitor ---------------------------------------------------------------------------------

const visitorEls = { name: $("visitor-name"), start: $("visitor-start"), status: $("visitor-status"), banner: $("visitor-banner") };

const visitorConvo = createConversation("visitor", {
  onSend(text) {
    const v = sessions.visitor;
    if (v) sendText(v.client, visitorConvo, v.ticketId, v.name, text);
  },
  onTyping() {
    const v = sessions.visitor;
    if (v && v.peerId) v.client.send({ message_type: "typing", receiver: v.peerId, ticket_id: v.ticketId });
  },
});

async function startVisitor() {
  const name = visitorEls.name.value.trim() || "Visitor";
  const userId = `v-${randomChars(6)}`;
  const ticketId = `t-${randomChars(6)}`;
  const client = new WscClient(clientOptions({ userId, userType: "customer", ticketIds: [ticketId] }));
  // peerId is the agent, known once one has the ticket.
  const v = { client, userId, ticketId, name, peerId: "", receiptToSender: true, opened: false, closed: false };
  v.stop = () => {
    visitorConvo.setEnabled(false);
    visitorConvo.hideTyping();
  };
  visitorConvo.reset();
  visitorConvo.setEnabled(false);
  // Tests (and curious readers) find the ticket here.
  $("visitor-log").dataset.ticketId = ticketId;
  visitorConvo.system(`Ticket ${ticketId} for ${name} (${userId})`);

  const connected = await openSession("visitor", visitorEls, v, (isCurrent) => {
    client.on("connected", () => isCurrent() && visitorConvo.setEnabled(true));
    watchCommonFrames(client, visitorConvo, visitorEls.banner, isCurrent);
    wireChat(client, visitorConvo, v, isCurrent);
    const mine = (msg) => isCurrent() && (msg.ticket_id === ticketId || ticketOf(msg).ticket_id === ticketId);
    client.onMessage("ticket_created", (msg) => {
      if (mine(msg) && ticketOf(msg).state === "queued") visitorConvo.system("Waiting for an agent…", msg.message_id);
    });
    const agentJoined = (text) => (msg) => {
      if (!mine(msg)) return;
      v.peerId = str(ticketOf(msg).agent_id);
      visitorConvo.system(text(agentLabel(v.peerId)), msg.message_id);
    };
    client.onMessage("ticket_assigned", agentJoined((agent) => `${agent} joined`));
    client.onMessage("ticket_transfer", agentJoined((agent) => `Your ticket went to ${agent}`));
    const closed = (msg) => {
      if (!mine(msg)) return;
      const why = msg.message_type === "ticket_timeout_closed" ? "after a quiet while" : str(ticketOf(msg).close_reason);
      visitorConvo.system(`The ticket was closed (${why || "closed"})`, msg.message_id);
      visitorConvo.setEnabled(false);
    };
    client.onMessage("ticket_closed", closed);
    client.onMessage("ticket_timeout_closed", closed);
  }, "Start again");
  if (!connected || v.opened) return;
  // Once per session: a reconnect keeps the ticket (and its connect-time binding).
  v.opened = true;
  client.send({ message_type: "ticket_created", ticket_id: ticketId });
}

visitorEls.start.addEventListener("click", () => {
  startVisitor().catch((err) => visitorConvo.system(`error: ${errorText(err)}`));
});

// ---- Agent -----------------------------------------------------------------------------------

const agentEls = { name: $("agent-name"), start: $("agent-start"), status: $("agent-status"), banner: $("agent-banner") };

// The agent has one connection for the session, which the server tells about its tickets, and
// one bound to the ticket being answered (`a.ticket`). Its tickets are listed in #agent-tickets;
// tickets no agent had room for wait in #agent-queue (the server's queue, polled), where the
// agent can take one.
const myTickets = new Map();
const queueItems = new Map();

const agentConvo = createConversation("agent", {
  onSend(text) {
    const a = sessions.agent;
    if (a && a.ticket) sendText(a.ticket.client, agentConvo, a.ticket.ticketId, a.name, text);
  },
  onTyping() {
    const t = sessions.agent && sessions.agent.ticket;
    if (t && t.peerId) t.client.send({ message_type: "typing", receiver: t.peerId, ticket_id: t.ticketId });
  },
});

function button(className, text, onClick) {
  const b = h("button", className, text);
  b.type = "button";
  b.addEventListener("click", () => onClick().catch((err) => agentConvo.system(`error: ${errorText(err)}`)));
  return b;
}

function listItem(list, ticket, ...buttons) {
  const label = h("span", "grow", null, h("span", "customer", ticket.customer_id), h("span", "sub", ticket.ticket_id));
  const li = h("li", null, null, label, ...buttons);
  li.dataset.ticketId = ticket.ticket_id;
  $(list).append(li);
  return li;
}

function addMyTicket(a, ticket) {
  if (myTickets.has(ticket.ticket_id)) return;
  const open = button("open", "Open", async () => openConversation(a, ticket));
  const close = button("close-ticket", "Close", async () => {
    a.client.send({ message_type: "ticket_closed", ticket_id: ticket.ticket_id, content: "solved" });
  });
  myTickets.set(ticket.ticket_id, listItem("agent-tickets", ticket, open, close));
  if (!a.ticket) openConversation(a, ticket).catch((err) => agentConvo.system(`error: ${errorText(err)}`));
}

function dropMyTicket(a, ticketId, why) {
  const li = myTickets.get(ticketId);
  if (li) li.remove();
  myTickets.delete(ticketId);
  if (a.ticket && a.ticket.ticketId === ticketId) {
    agentConvo.system(why);
    closeConversation(a);
    $("agent-conversation").textContent = "No conversation yet";
  }
}

// Shows the server's queue: tickets waiting because no agent online had room.
async function refreshQueue(a) {
  const queue = await api("GET", "/api/v1/tickets/queue");
  if (sessions.agent !== a || a.closed) return;
  const waiting = new Set((queue.tickets || []).map((t) => t.ticket_id));
  for (const [id, li] of queueItems) {
    if (waiting.has(id)) continue;
    li.remove();
    queueItems.delete(id);
  }
  for (const ticket of queue.tickets || []) {
    if (queueItems.has(ticket.ticket_id)) continue;
    const take = button("take primary", "Take", () =>
      api("POST", `/api/v1/tickets/${encodeURIComponent(ticket.ticket_id)}/transfer`, { agent_id: a.userId }),
    );
    queueItems.set(ticket.ticket_id, listItem("agent-queue", ticket, take));
  }
}

function closeConversation(a) {
  const t = a.ticket;
  a.ticket = null;
  if (t) t.client.close();
  agentConvo.setEnabled(false);
  agentConvo.hideTyping();
}

async function openConversation(a, ticket) {
  if (sessions.agent !== a || a.closed) return;
  if (a.ticket && a.ticket.ticketId === ticket.ticket_id) return;
  // One conversation at a time. Closing the previous ticket connection also keeps this user
  // at two connections, under the server's default limit of three per user.
  closeConversation(a);
  const ticketId = ticket.ticket_id;
  const client = new WscClient(clientOptions({ userId: a.userId, userType: "agent", ticketIds: [ticketId] }));
  const t = { client, userId: a.userId, ticketId, peerId: ticket.customer_id };
  a.ticket = t;
  const isCurrent = () => sessions.agent === a && a.ticket === t;

  client.on("connected", () => isCurrent() && agentConvo.setEnabled(true));
  client.on("disconnected", (e) => {
    if (!isCurrent()) return;
    if (typeof e.retryInMs === "number") return agentConvo.system("conversation connection lost, reconnecting…");
    agentConvo.system(`conversation closed: ${e.reason || "closed"}`);
    closeConversation(a);
  });
  wireChat(client, agentConvo, t, isCurrent);
  agentConvo.reset();
  // The header names the ticket only once the conversation is usable (a test waits for it).
  $("agent-conversation").textContent = `Joining ${ticket.customer_id}…`;
  try {
    await client.connect();
  } catch (err) {
    if (!isCurrent()) return;
    a.ticket = null;
    $("agent-conversation").textContent = "No conversation yet";
    return agentConvo.system(`could not open ticket ${ticketId}: ${errorText(err)}`);
  }
  if (!isCurrent()) return;
  agentConvo.system(`Ticket ${ticketId} of ${ticket.customer_id}`);
  agentConvo.setEnabled(true);
  $("agent-conversation").replaceChildren(h("span", null, ticket.customer_id), h("span", "ticket", ` · ticket ${ticketId}`));
}

async function startAgent() {
  const name = agentEls.name.value.trim() || "Agent";
  const userId = `a-${slug(name)}-${randomChars(4)}`;
  const client = new WscClient(clientOptions({ userId, userType: "agent" }));
  const a = { client, userId, name, ticket: null, closed: false, queueTimer: 0 };
  a.stop = () => {
    clearInterval(a.queueTimer);
    closeConversation(a);
  };
  for (const map of [myTickets, queueItems]) {
    for (const li of map.values()) li.remove();
    map.clear();
  }

  const connected = await openSession("agent", agentEls, a, (isCurrent) => {
    // Notices and kicks are taken from the session's connection only: the ticket connection
    // gets its own copies, and showing both would double every line.
    watchCommonFrames(client, agentConvo, agentEls.banner, isCurrent);
    const on = (type, handler) => client.onMessage(type, (msg) => isCurrent() && !a.closed && handler(ticketOf(msg), msg));
    on("ticket_assigned", (ticket) => ticket.agent_id === a.userId && addMyTicket(a, ticket));
    on("ticket_transfer", (ticket) => {
      if (ticket.agent_id === a.userId) addMyTicket(a, ticket);
      else dropMyTicket(a, ticket.ticket_id, `Ticket ${ticket.ticket_id} went to ${agentLabel(ticket.agent_id)}`);
    });
    const closed = (ticket) => dropMyTicket(a, ticket.ticket_id, `Ticket ${ticket.ticket_id} is closed`);
    on("ticket_closed", closed);
    on("ticket_timeout_closed", closed);
  }, "Go online again");
  if (!connected) return;
  const refresh = () => refreshQueue(a).catch(() => {});
  refresh();
  a.queueTimer = setInterval(refresh, 2000);
}

agentEls.start.addEventListener("click", () => {
  startAgent().catch((err) => agentConvo.system(`error: ${errorText(err)}`));
});

// ---- Admin -----------------------------------------------------------------------------------

const adminEls = { text: $("admin-broadcast-text"), button: $("admin-broadcast"), result: $("admin-result"), users: $("admin-users") };
const chart = $("admin-chart");

function adminResult(text, kind) {
  adminEls.result.textContent = text;
  adminEls.result.dataset.kind = kind;
}

// Runs one admin request with its button off meanwhile (no double submits), and shows the
// outcome in #admin-result; a failure is shown there rather than thrown.
async function adminAction(button, what, request, describe) {
  button.disabled = true;
  try {
    adminResult(describe(await request()), "ok");
    return true;
  } catch (err) {
    adminResult(`${what} failed: ${errorText(err)}`, "error");
    return false;
  } finally {
    button.disabled = false;
  }
}

$("admin-form").addEventListener("submit", async (event) => {
  event.preventDefault();
  const content = adminEls.text.value.trim();
  if (!content) return adminResult("Type a notice first.", "error");
  const request = () => api("POST", "/api/v1/broadcast", { message_type: "notice", content });
  const describe = (r) => `Notice delivered to ${plural(Number(r.delivered) || 0, "connection")}.`;
  const done = await adminAction(adminEls.button, "broadcast", request, describe);
  if (done) adminEls.text.value = "";
});

function kick(userId, button) {
  const path = `/api/v1/users/${encodeURIComponent(userId)}/connections?reason=kicked%20by%20admin&notify=true`;
  const describe = (r) => `Kicked ${plural(Number(r.kicked) || 0, "connection")} of ${userId}.`;
  return adminAction(button, "kick", () => api("DELETE", path), describe);
}

const userItems = new Map();
const roleOf = (id) => (id.startsWith("v-") ? "visitor" : id.startsWith("a-") ? "agent" : "user");

// The list is reconciled rather than rebuilt, so that a Kick button is not replaced under the
// finger, between pointer-down and click, by the next once-a-second refresh.
function renderUsers(ids) {
  const wanted = new Set(ids);
  for (const [id, li] of userItems) {
    if (wanted.has(id)) continue;
    li.remove();
    userItems.delete(id);
  }
  ids.forEach((id, index) => {
    let li = userItems.get(id);
    if (!li) {
      const button = h("button", "kick", "Kick");
      button.type = "button";
      button.addEventListener("click", () => kick(id, button));
      li = h("li", null, null, h("span", "grow", id), h("span", "tag", roleOf(id)), button);
      li.dataset.userId = id;
      userItems.set(id, li);
    }
    const at = adminEls.users.children[index];
    if (at !== li) adminEls.users.insertBefore(li, at || null);
  });
}

async function pollUsers() {
  const page = await api("GET", "/api/v1/users?offset=0&limit=100");
  const ids = (Array.isArray(page.users) ? page.users : []).filter((u) => typeof u === "string").sort();
  renderUsers(ids);
  $("admin-user-count").textContent = String(typeof page.total === "number" ? page.total : ids.length);
}

// The last 60 samples of the chart, how many were taken in all, and the previous counters.
const SAMPLE_LIMIT = 60;
const samples = [];
let sampleCount = 0;
let previous = null;

async function pollStats() {
  const stats = await api("GET", "/api/v1/stats");
  const now = performance.now();
  const total = (Number(stats.messages_in) || 0) + (Number(stats.messages_out) || 0);
  // The counters are cumulative, so the rate is the change since the last poll over the time
  // between them; a restarted server (counters going down) reads as zero, not negative.
  const rate = previous && now > previous.at ? Math.max(0, (total - previous.total) / ((now - previous.at) / 1000)) : 0;
  previous = { at: now, total };
  const connections = Number(stats.connections) || 0;
  $("admin-connections").textContent = String(connections);
  $("admin-rate").textContent = String(Math.round(rate));
  const up = Math.floor(Number(stats.uptime_seconds) || 0);
  const [hours, minutes] = [Math.floor(up / 3600), Math.floor(up / 60) % 60];
  $("admin-uptime").textContent = hours ? `${hours}h ${minutes}m` : `${minutes}m ${up % 60}s`;
  $("admin-node").textContent = stats.node_id ? `node ${str(stats.node_id)}` : "";
  samples.push({ connections, rate });
  if (samples.length > SAMPLE_LIMIT) samples.shift();
  sampleCount += 1;
  drawChart();
}

// Rounds a maximum up to 1, 2 or 5 times a power of ten, so the axis labels stay readable.
function niceMax(value) {
  if (!(value > 0)) return 1;
  const power = 10 ** Math.floor(Math.log10(value));
  return [1, 2, 5, 10].find((step) => step * power >= value) * power;
}

function drawChart() {
  // The count is kept up to date even while the admin panel is hidden (narrow screens).
  chart.dataset.samples = String(sampleCount);
  const [width, height] = [chart.clientWidth, chart.clientHeight];
  if (!width || !height) return;
  // The backing store is sized in device pixels and the context scaled back, so the lines stay
  // sharp on high-density screens while the drawing below works in CSS pixels.
  const dpr = window.devicePixelRatio || 1;
  if (chart.width !== Math.round(width * dpr)) chart.width = Math.round(width * dpr);
  if (chart.height !== Math.round(height * dpr)) chart.height = Math.round(height * dpr);
  const ctx = chart.getContext("2d");
  ctx.setTransform(dpr, 0, 0, dpr, 0, 0);
  ctx.clearRect(0, 0, width, height);

  const css = getComputedStyle(document.documentElement);
  const colorA = css.getPropertyValue("--chart-a").trim() || "#2f6fed";
  const colorB = css.getPropertyValue("--chart-b").trim() || "#16a36a";
  const muted = getComputedStyle(chart).color;
  const [left, right, top, bottom] = [34, width - 34, 30, height - 10];
  const plotHeight = bottom - top;
  // Each series has its own scale (connections on the left axis, messages/s on the right):
  // a busy minute would otherwise flatten the connection line against the floor.
  const maxA = niceMax(Math.max(0, ...samples.map((s) => s.connections)));
  const maxB = niceMax(Math.max(0, ...samples.map((s) => s.rate)));

  ctx.font = "11px system-ui, sans-serif";
  ctx.lineWidth = 1;
  ctx.strokeStyle = muted;
  ctx.globalAlpha = 0.25;
  ctx.beginPath();
  for (let i = 0; i <= 4; i += 1) {
    const y = Math.round(top + (plotHeight * i) / 4) + 0.5;
    ctx.moveTo(left, y);
    ctx.lineTo(right, y);
  }
  ctx.stroke();
  ctx.globalAlpha = 1;
  ctx.textBaseline = "middle";
  const label = (color, align, x, text, y) => {
    ctx.fillStyle = color;
    ctx.textAlign = align;
    ctx.fillText(text, x, y);
  };
  label(colorA, "right", left - 6, String(maxA), top);
  label(colorA, "right", left - 6, "0", bottom);
  label(colorB, "left", right + 6, String(maxB), top);
  label(colorB, "left", right + 6, "0", bottom);

  // The newest sample sits at the right edge and older ones scroll off to the left.
  const step = (right - left) / (SAMPLE_LIMIT - 1);
  const offset = SAMPLE_LIMIT - samples.length;
  const line = (color, pick, max) => {
    ctx.strokeStyle = color;
    ctx.lineWidth = 2;
    ctx.lineJoin = "round";
    ctx.beginPath();
    samples.forEach((sample, i) => {
      const y = bottom - (pick(sample) / max) * plotHeight;
      ctx.lineTo(left + (offset + i) * step, y);
      // A single sample is drawn as a dot, since a line needs two points.
      if (samples.length === 1) ctx.arc(right, y, 1.5, 0, Math.PI * 2);
    });
    ctx.stroke();
  };
  line(colorA, (s) => s.connections, maxA);
  line(colorB, (s) => s.rate, maxB);

  // The legend carries the latest values, so the chart reads on its own.
  const last = samples[samples.length - 1] || { connections: 0, rate: 0 };
  let x = left;
  const legend = [[colorA, `connections ${last.connections}`], [colorB, `messages/s ${Math.round(last.rate)}`]];
  for (const [color, text] of legend) {
    ctx.fillStyle = color;
    ctx.fillRect(x, 11, 14, 3);
    label(muted, "left", x + 19, text, 13);
    x += 19 + ctx.measureText(text).width + 16;
  }
}

// Runs a poll about every `ms`, never two at once: the next one starts only after the previous
// one finished, so a slow server cannot pile requests up. A failure would repeat every second,
// so it is shown once, and cleared when the API answers again unless something newer is shown.
function poll(what, ms, task) {
  let shown = "";
  const run = async () => {
    const started = performance.now();
    try {
      await task();
      if (shown && adminEls.result.textContent === shown) adminResult("", "");
      shown = "";
    } catch (err) {
      const text = `${what}: ${errorText(err)}`;
      if (text !== shown) adminResult((shown = text), "error");
    }
    setTimeout(run, Math.max(0, ms - (performance.now() - started)));
  };
  run();
}

if (typeof ResizeObserver === "function") new ResizeObserver(() => drawChart()).observe(chart);
window.addEventListener("resize", drawChart);
poll("stats", 1000, pollStats);
poll("users", 1000, pollUsers);

// ---- Tabs (narrow screens): the URL hash names the active role --------------------------------

const ROLES = ["visitor", "agent", "admin"];

function selectRole(role) {
  const active = ROLES.includes(role) ? role : "visitor";
  for (const r of ROLES) {
    $(`tab-${r}`).setAttribute("aria-selected", String(r === active));
    $(`panel-${r}`).classList.toggle("active", r === active);
  }
  // A panel coming out of display:none has only now got a size to draw in.
  if (active === "admin") drawChart();
}

for (const role of ROLES) {
  $(`tab-${role}`).addEventListener("click", () => {
    selectRole(role);
    // No element has the id "visitor", "agent" or "admin", so this does not scroll the page,
    // and the query string (?transport=...) is kept.
    if (location.hash !== `#${role}`) location.hash = role;
  });
}

window.addEventListener("hashchange", () => selectRole(location.hash.slice(1)));
selectRole(location.hash.slice(1));
