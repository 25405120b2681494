// Types of wsc.js, the dependency-free browser client of the wsc gateway (docs/clients.md).

/** One frame of the gateway's protocol (docs/protocol.md section 3). Unknown keys are kept. */
export interface HubMessage {
  id?: string;
  message_type: string;
  sender?: string;
  sender_name?: string;
  sender_type?: string;
  sender_client?: string;
  receiver?: string;
  receiver_name?: string;
  receiver_type?: string;
  receiver_client?: string;
  session_id?: string;
  content?: string;
  data?: Record<string, unknown>;
  create_at?: string;
  message_id?: string;
  reply_to_msg_id?: string;
  seq_no?: number;
  priority?: "low" | "normal" | "high" | "urgent" | "critical";
  source?: "live" | "offline";
  app_id?: string;
  namespace?: string;
  group_ids?: string[];
  ticket_id?: string;
  require_ack?: boolean;
  [key: string]: unknown;
}

export type Transport = "websocket" | "sse";

export interface WscOptions {
  /** WebSocket URL; default `ws(s)://<page host>/ws`. */
  url?: string;
  /** SSE URL; default the WebSocket URL's host with `/sse` (http(s)). */
  sseUrl?: string;
  /** `user_id` (not needed with a token). */
  userId?: string;
  /** `user_type` (the server's default is `visitor`). */
  userType?: string;
  /** This connection's id, kept across reconnects; default a random one. */
  clientId?: string;
  deviceId?: string;
  ticketIds?: string[];
  groupIds?: string[];
  appId?: string;
  namespace?: string;
  /** A signed token, sent as `?token=` (browsers cannot set WebSocket headers). */
  token?: string;
  /** The transports to try, in order; default `["websocket", "sse"]`. */
  transports?: Transport[];
  /** Resume after this `seq_no` on the first connection. */
  lastSeq?: number;
  /** Acknowledge `require_ack` frames on arrival (default true); off, call `ack()`. */
  autoAck?: boolean;
  /** JSON ping interval on WebSocket, in ms (default 25 000). */
  heartbeatMs?: number;
  /** Silence after which a connection counts as dead, in ms (default 75 000). */
  pongTimeoutMs?: number;
  /** How long a WebSocket may take to open before SSE is tried, in ms (default 5 000). */
  openTimeoutMs?: number;
  /** Reconnect delays: from `minMs`, doubling up to `maxMs`, with jitter; `maxAttempts` in a row. */
  reconnect?: { minMs?: number; maxMs?: number; maxAttempts?: number };
  /** How many message ids are remembered for dedupe (default 4096). */
  dedupeWindow?: number;
}

export interface ConnectedEvent {
  type: "connected";
  clientId: string;
  nodeId: string;
  transport: Transport;
  reconnect: boolean;
}

export interface MessageEvent {
  type: "message";
  message: HubMessage;
}

export interface DisconnectedEvent {
  type: "disconnected";
  /** The close code (WebSocket close frame or the SSE `disconnected` event), if any. */
  code?: number;
  reason: string;
  /** The delay before the next attempt; absent when the client stopped for good. */
  retryInMs?: number;
}

export type WscEvent = ConnectedEvent | MessageEvent | DisconnectedEvent;

export interface WscEventMap {
  connected: ConnectedEvent;
  message: MessageEvent;
  disconnected: DisconnectedEvent;
}

export class WscClient {
  constructor(options: WscOptions);
  /** Opens the first connection; rejects when it cannot (a refusal, or every transport failed). */
  connect(): Promise<ConnectedEvent>;
  /** Sends a frame now, or on the next connection while reconnecting (in order). */
  send(message: Partial<HubMessage> & { message_type: string }): void;
  /** Acknowledges a message (needed only with `autoAck: false`). */
  ack(messageId: string): void;
  /** Closes and stops reconnecting. */
  close(): void;
  /** Subscribes to an event; returns the function that unsubscribes. */
  on<K extends keyof WscEventMap>(type: K, handler: (event: WscEventMap[K]) => void): () => void;
  /** Subscribes to messages of one `message_type`; returns the function that unsubscribes. */
  onMessage(messageType: string, handler: (message: HubMessage) => void): () => void;
  /** Whether a connection is open. */
  readonly connected: boolean;
  /** The transport of the open connection, if any. */
  readonly transport: Transport | null;
  /** This client's id, kept across reconnects. */
  readonly clientId: string;
  /** The last `seq_no` received (the resume position). */
  readonly lastSeq: number | undefined;
}
