// wsc.js: the dependency-free browser client of the wsc gateway (docs/clients.md).
//
// One ES module, no build step. It connects over WebSocket and falls back to server-sent
// events when a WebSocket cannot be opened (a proxy that blocks upgrades); it keeps the
// connection alive with JSON pings, acknowledges `require_ack` frames, drops frames it has
// seen (by `message_id`), and when a connection is lost it reconnects with exponential
// backoff and jitter, resuming after the last `seq_no` it received. Types: wsc.d.ts.

const HEARTBEAT_ID = "wsc-js-heartbeat-";

// Close reasons after which reconnecting would be wrong (docs/protocol.md section 7).
const FINAL_REASONS = [
  "replaced by a newer connection",
  "logged in elsewhere",
  "kicked: ",
  "connection rejected: ",
];

// HTTP refusals worth another attempt: the others are the client's to fix.
const RETRYABLE_STATUS = (status) => status === 408 || status === 429 || status >= 500;

function randomId() {
  if (globalThis.crypto?.randomUUID) return crypto.randomUUID().replaceAll("-", "");
  return Math.random().toString(16).slice(2) + Date.now().toString(16);
}

function defaultUrl(path, websocket) {
  const secure = location.protocol === "https:";
  const scheme = websocket ? (secure ? "wss:" : "ws:") : location.protocol;
  return `${scheme}//${location.host}${path}`;
}

/** A bounded set of ids; the oldest is forgotten first. */
class SeenIds {
  constructor(capacity) {
    this.capacity = Math.max(1, capacity);
    this.ids = new Set();
  }
  /** Remembers `id`; false when it was seen already. */
  add(id) {
    if (this.ids.has(id)) return false;
    if (this.ids.size >= this.capacity) this.ids.delete(this.ids.values().next().value);
    this.ids.add(id);
    return true;
  }
}

/** Why a connection attempt failed, and whether another attempt may help. */
class AttemptError extends Error {
  constructor(message, retryable, status) {
    super(message);
    this.retryable = retryable;
    this.status = status;
  }
}

export class WscClient {
  constructor(options = {}) {
    this.options = options;
    this.url = options.url ?? defaultUrl("/ws", true);
    this.sseUrl = options.sseUrl ?? this.url.replace(/^ws/, "http").replace(/\/ws(\?|$)/, "/sse$1");
    this._clientId = options.clientId ?? randomId();
    this._lastSeq = options.lastSeq;
    this.autoAck = options.autoAck ?? true;
    this.heartbeatMs = options.heartbeatMs ?? 25_000;
    this.pongTimeoutMs = options.pongTimeoutMs ?? 75_000;
    this.openTimeoutMs = options.openTimeoutMs ?? 5_000;
    this.transports = options.transports ?? ["websocket", "sse"];
    const reconnect = options.reconnect ?? {};
    this.backoff = {
      minMs: reconnect.minMs ?? 500,
      maxMs: reconnect.maxMs ?? 30_000,
      maxAttempts: reconnect.maxAttempts ?? Infinity,
    };
    this.seen = new SeenIds(options.dedupeWindow ?? 4096);
    this.handlers = { connected: new Set(), message: new Set(), disconnected: new Set() };
    this.outbox = []; // frames waiting for a connection, in order
    this.link = null; // the open connection: { transport, send(text), close() }
    this.stopped = false;
    this.pings = 0;
  }

  get connected() {
    return this.link !== null;
  }

  get transport() {
    return this.link?.transport ?? null;
  }

  get clientId() {
    return this._clientId;
  }

  get lastSeq() {
    return this._lastSeq;
  }

  on(type, handler) {
    this.handlers[type].add(handler);
    return () => this.handlers[type].delete(handler);
  }

  onMessage(messageType, handler) {
    return this.on("message", (event) => {
      if (event.message.message_type === messageType) handler(event.message);
    });
  }

  /** Opens the first connection; rejects when it cannot. */
  async connect() {
    this.stopped = false;
    const event = await this._open(false);
    return event;
  }

  send(message) {
    const text = JSON.stringify(message);
    if (this.link) this.link.send(text);
    else this.outbox.push(text);
  }

  ack(messageId) {
    this.send({ message_type: "ack", message_id: messageId });
  }

  close() {
    if (this.stopped) return;
    this.stopped = true;
    clearTimeout(this.retryTimer);
    const link = this.link;
    this.link = null;
    link?.close();
    this._emit("disconnected", { type: "disconnected", code: 1000, reason: "closed by the client" });
  }

  _emit(type, event) {
    for (const handler of [...this.handlers[type]]) {
      try {
        handler(event);
      } catch (error) {
        // A failing handler must not stop the client or the other handlers.
        setTimeout(() => {
          throw error;
        });
      }
    }
  }

  /** Tries each transport in turn; resolves with the connected event. */
  async _open(reconnect) {
    let last;
    for (const transport of this.transports) {
      try {
        const link = transport === "sse" ? await this._openSse() : await this._openWebSocket();
        if (this.stopped) {
          link.close();
          throw new AttemptError("closed by the client", false);
        }
        this.link = link;
        this.attempts = 0;
        const event = { type: "connected", clientId: link.clientId, nodeId: link.nodeId, transport, reconnect };
        this._emit("connected", event);
        for (const text of this.outbox.splice(0)) link.send(text);
        return event;
      } catch (error) {
        last = error;
        // A refusal of the identity or token is final whatever the transport.
        if (error instanceof AttemptError && !error.retryable) throw error;
      }
    }
    throw last ?? new AttemptError("no transport", false);
  }

  _query() {
    const o = this.options;
    const params = new URLSearchParams();
    const put = (name, value) => {
      if (value !== undefined && value !== null && value !== "") params.set(name, String(value));
    };
    put("user_id", o.userId);
    put("user_type", o.userType);
    put("device_id", o.deviceId);
    put("ticket_id", o.ticketIds?.join(","));
    put("group_id", o.groupIds?.join(","));
    put("app_id", o.appId);
    put("namespace", o.namespace);
    put("token", o.token);
    put("client_id", this._clientId);
    put("last_seq", this._lastSeq);
    return params.toString();
  }

  _withQuery(url) {
    return url + (url.includes("?") ? "&" : "?") + this._query();
  }

  /** A link over WebSocket, once it is open. */
  _openWebSocket() {
    return new Promise((resolve, reject) => {
      let socket;
      try {
        socket = new WebSocket(this._withQuery(this.url), ["wsc.v1"]);
      } catch (error) {
        reject(new AttemptError(`WebSocket: ${error.message}`, true));
        return;
      }
      let opened = false;
      let lastHeard = Date.now();
      let timer;
      const link = {
        transport: "websocket",
        clientId: this._clientId,
        nodeId: "",
        send: (text) => socket.readyState === WebSocket.OPEN && socket.send(text),
        close: () => {
          clearInterval(timer);
          socket.close(1000, "closed by the client");
        },
      };
      const openTimeout = setTimeout(() => {
        socket.close();
        reject(new AttemptError("WebSocket did not open in time", true));
      }, this.openTimeoutMs);
      socket.onopen = () => {
        opened = true;
        clearTimeout(openTimeout);
        timer = setInterval(() => {
          if (Date.now() - lastHeard > this.pongTimeoutMs) {
            // A dead link: close it here, the close handler reconnects.
            socket.close(4000, "no pong");
            return;
          }
          this.pings += 1;
          link.send(JSON.stringify({ message_type: "ping", id: HEARTBEAT_ID + this.pings }));
        }, this.heartbeatMs);
        resolve(link);
      };
      socket.onmessage = (event) => {
        lastHeard = Date.now();
        this._receive(event.data, link);
      };
      socket.onclose = (event) => {
        clearTimeout(openTimeout);
        clearInterval(timer);
        if (!opened) {
          // Browsers hide a refused handshake's status: 1006 before open is retryable.
          reject(new AttemptError(`WebSocket closed before it opened (${event.code})`, true));
          return;
        }
        this._lost(link, event.code === 1005 || event.code === 1006 ? undefined : event.code, event.reason || "connection lost");
      };
    });
  }

  /** A link over server-sent events (a streaming fetch), once its `connected` event came. */
  async _openSse() {
    const controller = new AbortController();
    const openTimeout = setTimeout(() => controller.abort(), this.openTimeoutMs);
    const headers = { accept: "text/event-stream" };
    let response;
    try {
      response = await fetch(this._withQuery(this.sseUrl), { headers, signal: controller.signal, cache: "no-store" });
    } catch (error) {
      clearTimeout(openTimeout);
      throw new AttemptError(`SSE: ${error.message}`, true);
    }
    if (!response.ok) {
      clearTimeout(openTimeout);
      const body = await response.json().catch(() => ({}));
      const text = `${response.status} ${body.error ?? ""}: ${body.message ?? response.statusText}`;
      throw new AttemptError(`the server refused the connection: ${text}`, RETRYABLE_STATUS(response.status), response.status);
    }
    const reader = response.body.getReader();
    const decoder = new TextDecoder();
    let buffer = "";
    let lastHeard = Date.now();
    let posting = Promise.resolve();
    let ended = false;
    const link = {
      transport: "sse",
      clientId: response.headers.get("x-wsc-client-id") ?? this._clientId,
      nodeId: response.headers.get("x-wsc-node-id") ?? "",
      session: "",
      // Frames are POSTed one after another, so they reach the server in order.
      send: (text) => {
        const frame = JSON.parse(text);
        const [path, body] =
          frame.message_type === "ack" ? ["/ack", JSON.stringify({ message_id: frame.message_id })] : ["/send", text];
        posting = posting.then(() =>
          fetch(this.sseUrl.replace(/\?.*$/, "") + path, {
            method: "POST",
            headers: { "content-type": "application/json", "x-wsc-session": link.session },
            body,
          }).catch(() => {}),
        );
      },
      close: () => {
        ended = true;
        clearInterval(watchdog);
        controller.abort();
      },
    };
    // SSE has no client pings: the server's comments prove the stream is alive.
    const watchdog = setInterval(() => {
      if (Date.now() - lastHeard > this.pongTimeoutMs) controller.abort();
    }, Math.min(this.heartbeatMs, this.pongTimeoutMs));
    let closing = null; // the `disconnected` event's code and reason
    const events = async function* () {
      for (;;) {
        const { value, done } = await reader.read();
        if (done) return;
        lastHeard = Date.now();
        buffer += decoder.decode(value, { stream: true });
        let end;
        while ((end = buffer.indexOf("\n\n")) >= 0) {
          const block = buffer.slice(0, end);
          buffer = buffer.slice(end + 2);
          const data = block
            .split("\n")
            .filter((line) => line.startsWith("data:"))
            .map((line) => line.slice(5).replace(/^ /, ""))
            .join("\n");
          if (data) yield data;
        }
      }
    };
    const stream = events();
    // The first event names the session the POSTs need.
    let first;
    try {
      first = await stream.next();
    } catch (error) {
      clearInterval(watchdog);
      throw new AttemptError(`SSE: ${error.message}`, true);
    } finally {
      clearTimeout(openTimeout);
    }
    const opening = first.done ? null : JSON.parse(first.value);
    if (opening?.message_type !== "connected") {
      clearInterval(watchdog);
      throw new AttemptError("SSE: the stream did not start with `connected`", true);
    }
    link.session = opening.data.session;
    (async () => {
      try {
        for await (const data of stream) {
          const message = JSON.parse(data);
          if (message.message_type === "disconnected" && message.sender === "system" && message.data?.code) {
            closing = { code: message.data.code, reason: message.data.reason };
            continue;
          }
          this._receive(data, link);
        }
      } catch {
        // An aborted or broken stream ends like a closed one.
      }
      clearInterval(watchdog);
      if (!ended) this._lost(link, closing?.code, closing?.reason ?? "connection lost");
    })();
    return link;
  }

  /** One frame from the server: heartbeat pongs, ack, dedupe, the resume position, the event. */
  _receive(text, link) {
    let message;
    try {
      message = JSON.parse(text);
    } catch {
      return;
    }
    if (message.message_type === "pong" && String(message.id ?? "").startsWith(HEARTBEAT_ID)) return;
    // A resend of a message already seen is acked again (the first ack may have been lost),
    // but reaches the application once.
    if (message.require_ack && this.autoAck && message.message_id) {
      link.send(JSON.stringify({ message_type: "ack", message_id: message.message_id }));
    }
    if (message.message_id && !this.seen.add(message.message_id)) return;
    if (message.seq_no > 0) this._lastSeq = Math.max(this._lastSeq ?? 0, message.seq_no);
    if (message.message_type === "recovered" && typeof message.data?.latest_seq === "number") {
      // After a server lost its history, numbering starts again: follow the server.
      this._lastSeq = message.data.latest_seq;
    }
    this._emit("message", { type: "message", message });
  }

  /** A connection ended: stop for good, or reconnect with backoff. */
  _lost(link, code, reason) {
    if (this.link !== link || this.stopped) return;
    this.link = null;
    const final = FINAL_REASONS.some((prefix) => reason.startsWith(prefix));
    if (final) {
      this.stopped = true;
      this._emit("disconnected", { type: "disconnected", code, reason });
      return;
    }
    this.attempts = 0;
    this._retry(code, reason);
  }

  _retry(code, reason) {
    if (this.stopped) return;
    if (this.attempts >= this.backoff.maxAttempts) {
      this.stopped = true;
      this._emit("disconnected", { type: "disconnected", code, reason: `gave up reconnecting: ${reason}` });
      return;
    }
    const base = Math.min(this.backoff.maxMs, this.backoff.minMs * 2 ** this.attempts);
    const delay = Math.round(base * (0.5 + Math.random() / 2));
    this.attempts += 1;
    this._emit("disconnected", { type: "disconnected", code, reason, retryInMs: delay });
    this.retryTimer = setTimeout(async () => {
      try {
        await this._open(true);
      } catch (error) {
        if (error instanceof AttemptError && !error.retryable) {
          this.stopped = true;
          this._emit("disconnected", { type: "disconnected", reason: error.message });
        } else {
          this._retry(undefined, error.message);
        }
      }
    }, delay);
  }
}
