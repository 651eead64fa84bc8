import type { Socket } from "bun";
import { ErrorCode } from "../proto/goulette_pb";
import { FrameDecoder } from "./decoder";
import { WireError, type Body } from "./errors";
import { DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeFrame, type EncodedFrame } from "./frame";
import { DEFAULT_MAX_BUFFERED_BYTES, Outbox } from "./outbox";

export interface WireClientOptions {
  maxFrameBytes?: number;
  /** How long one connect attempt may take. Default 5 s. */
  connectTimeoutMs?: number;
  /** Default per-call timeout. Default 10 s. */
  requestTimeoutMs?: number;
  /** Calls waiting for a connection or a response at once; more are refused at once. Default 65536. */
  maxInFlight?: number;
  /** Bytes queued for a socket that does not take them; more are refused at once. Default 64 MiB. */
  maxBufferedBytes?: number;
  /** Pieces below this many bytes are copied into one write; larger ones (batches) are written as they are. */
  coalesceBelowBytes?: number;
  /** First delay after a failed connect, doubled per consecutive failure up to backoffMaxMs. */
  backoffBaseMs?: number;
  backoffMaxMs?: number;
  /** Frames the server pushes with correlation id 0 (other than a connection-level error). */
  onPush?(body: Body): void;
}

export interface CallOptions {
  timeoutMs?: number;
}

interface Pending {
  id: number;
  frame: EncodedFrame;
  resolve(body: Body): void;
  reject(err: WireError): void;
  /** Only for a call whose deadline is earlier than one already queued (see `deadlines`). */
  timer: ReturnType<typeof setTimeout> | undefined;
  deadlineMs: number;
  timeoutMs: number;
  done: boolean;
}

interface SocketRef {
  generation: number;
}

const MAX_CORRELATION_ID = Number.MAX_SAFE_INTEGER;

/** Parses "host:port" (also "[v6]:port"). */
export function parseAddress(address: string): { hostname: string; port: number } {
  const m = /^\[?([^\]]*?)\]?:(\d+)$/.exec(address);
  const port = m ? Number(m[2]) : NaN;
  if (!m || !m[1] || !Number.isInteger(port) || port < 1 || port > 65535) {
    throw new Error(`bad address "${address}": expected host:port`);
  }
  return { hostname: m[1], port };
}

/**
 * One connection to one address: requests are pipelined with correlation ids; the connection is opened
 * on first use and again after a loss, with exponential backoff between failed attempts. A call never
 * outlives its timeout: it resolves with the response body or rejects with a WireError.
 */
export class WireClient {
  readonly address: string;
  private readonly hostname: string;
  private readonly port: number;
  private readonly maxFrameBytes: number;
  private readonly connectTimeoutMs: number;
  private readonly requestTimeoutMs: number;
  private readonly maxInFlight: number;
  private readonly maxBufferedBytes: number;
  private readonly backoffBaseMs: number;
  private readonly backoffMaxMs: number;
  private readonly onPush: ((body: Body) => void) | undefined;
  private readonly coalesceBelowBytes: number | undefined;

  private socket: Socket<SocketRef> | undefined;
  private outbox: Outbox | undefined;
  private decoder: FrameDecoder | undefined;
  private generation = 0;
  private connecting = false;
  private failures = 0;
  private nextAttemptAtMs = 0;
  private closed = false;
  private nextId = 1;
  private flushScheduled = false;
  /** Sent, awaiting a response. */
  private readonly inflight = new Map<number, Pending>();
  /** Not yet sent: waiting for a connection. */
  private waiting: Pending[] = [];
  private waitingLive = 0;
  /**
   * Calls in deadline order. Most calls use the default timeout, so deadlines arrive in order and one
   * timer serves them all (a timer per call costs as much as the rest of the call on the hot path).
   * A call that would break the order gets a timer of its own.
   */
  private deadlines: Pending[] = [];
  private deadlineHead = 0;
  private deadlineTimer: ReturnType<typeof setTimeout> | undefined;
  private deadlineTimerAtMs = 0;

  constructor(address: string, opts: WireClientOptions = {}) {
    const { hostname, port } = parseAddress(address);
    this.address = address;
    this.hostname = hostname;
    this.port = port;
    this.maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
    this.connectTimeoutMs = opts.connectTimeoutMs ?? 5_000;
    this.requestTimeoutMs = opts.requestTimeoutMs ?? 10_000;
    this.maxInFlight = opts.maxInFlight ?? 65_536;
    this.maxBufferedBytes = opts.maxBufferedBytes ?? Math.max(DEFAULT_MAX_BUFFERED_BYTES, 2 * this.maxFrameBytes);
    this.backoffBaseMs = opts.backoffBaseMs ?? 50;
    this.backoffMaxMs = opts.backoffMaxMs ?? 2_000;
    this.onPush = opts.onPush;
    this.coalesceBelowBytes = opts.coalesceBelowBytes;
  }

  get connected(): boolean {
    return this.socket !== undefined;
  }

  /** Requests sent or waiting to be sent. */
  get pending(): number {
    return this.inflight.size + this.waitingLive;
  }

  /** Sends a request; resolves with the response body (which may be an `error` body: see expectCase). */
  call(body: Body, opts: CallOptions = {}): Promise<Body> {
    const timeoutMs = opts.timeoutMs ?? this.requestTimeoutMs;
    return new Promise<Body>((resolve, reject) => {
      if (this.closed) return reject(new WireError(ErrorCode.SHUTTING_DOWN, "client closed", {}, "closed"));
      if (this.pending >= this.maxInFlight) {
        return reject(new WireError(ErrorCode.UNKNOWN, `${this.maxInFlight} requests already in flight to ${this.address}`, {}, "overload"));
      }
      const id = this.nextId;
      this.nextId = id >= MAX_CORRELATION_ID ? 1 : id + 1;
      let frame: EncodedFrame;
      try {
        frame = encodeFrame(id, body);
      } catch (e) {
        return reject(new WireError(ErrorCode.INVALID_ARGUMENT, `request does not encode: ${(e as Error).message}`));
      }
      if (frame.byteLength - 4 > this.maxFrameBytes) {
        return reject(new WireError(ErrorCode.FRAME_TOO_LARGE, `request of ${frame.byteLength} bytes above the maximum ${this.maxFrameBytes}`));
      }
      const deadlineMs = Date.now() + timeoutMs;
      const p: Pending = { id, frame, resolve, reject, timer: undefined, deadlineMs, timeoutMs, done: false };
      const last = this.deadlines[this.deadlines.length - 1];
      if (last === undefined || last.deadlineMs <= deadlineMs) {
        this.deadlines.push(p);
        this.armDeadlineTimer();
      } else {
        p.timer = setTimeout(() => this.expire(p), timeoutMs);
      }
      this.submit(p);
    });
  }

  /** One-way frame (correlation id 0): no response, dropped if the connection cannot be made. */
  send(body: Body): void {
    this.sendEncoded(encodeFrame(0, body));
  }

  /** A one-way frame encoded by the caller (correlation id 0), sent piece by piece without a copy. */
  sendEncoded(frame: EncodedFrame): void {
    if (this.closed) throw new WireError(ErrorCode.SHUTTING_DOWN, "client closed", {}, "closed");
    if (this.pending >= this.maxInFlight) return;
    const p: Pending = { id: 0, frame, resolve: () => {}, reject: () => {}, timer: undefined, deadlineMs: 0, timeoutMs: 0, done: false };
    this.submit(p);
  }

  /** Rejects every pending call and closes the connection. */
  close(): void {
    if (this.closed) return;
    this.closed = true;
    const err = new WireError(ErrorCode.SHUTTING_DOWN, "client closed", {}, "closed");
    this.failWaiting(err);
    this.failInflight(err);
    const s = this.socket;
    this.dropSocket();
    s?.end();
  }

  private submit(p: Pending): void {
    const outbox = this.outbox;
    if (outbox !== undefined) {
      if (outbox.wouldOverflow(p.frame.byteLength)) {
        this.settle(p, new WireError(ErrorCode.UNKNOWN, `send buffer to ${this.address} full`, {}, "overload"));
        return;
      }
      this.transmit(outbox, p);
      return;
    }
    this.waiting.push(p);
    this.waitingLive++;
    this.ensureConnect();
  }

  private transmit(outbox: Outbox, p: Pending): void {
    if (p.id !== 0) this.inflight.set(p.id, p);
    outbox.enqueue(p.frame);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(this.flush);
    }
  }

  /** Writes what is queued into the socket now instead of at the end of the current turn. */
  flushNow(): void {
    if (this.flushScheduled) this.flush();
  }

  private readonly flush = (): void => {
    this.flushScheduled = false;
    if (this.outbox !== undefined && !this.outbox.flush()) this.lost(new WireError(ErrorCode.UNKNOWN, `connection to ${this.address} lost`, {}, "lost"));
  };

  private settle(p: Pending, result: Body | WireError): void {
    if (p.done) return;
    p.done = true;
    if (p.timer !== undefined) clearTimeout(p.timer);
    this.popSettledDeadlines();
    if (result instanceof WireError) p.reject(result);
    else p.resolve(result);
  }

  private expire(p: Pending): void {
    if (p.done) return;
    if (!this.inflight.delete(p.id)) this.waitingLive--;
    this.settle(p, new WireError(ErrorCode.TIMEOUT, `no response from ${this.address} within ${p.timeoutMs} ms`, {}, "timeout"));
  }

  /** Responses mostly come in order: drop settled calls from the front so the queue stays short. */
  private popSettledDeadlines(): void {
    const d = this.deadlines;
    while (this.deadlineHead < d.length && d[this.deadlineHead]!.done) this.deadlineHead++;
    if (this.deadlineHead === d.length) {
      this.deadlines = [];
      this.deadlineHead = 0;
      // Nothing left to time out: do not keep the process alive for a stale deadline.
      if (this.deadlineTimer !== undefined) {
        clearTimeout(this.deadlineTimer);
        this.deadlineTimer = undefined;
      }
    } else if (this.deadlineHead > 1024 && this.deadlineHead * 2 > d.length) {
      this.deadlines = d.slice(this.deadlineHead);
      this.deadlineHead = 0;
    }
  }

  private armDeadlineTimer(): void {
    const front = this.deadlines[this.deadlineHead];
    if (front === undefined) return;
    if (this.deadlineTimer !== undefined && this.deadlineTimerAtMs <= front.deadlineMs) return;
    if (this.deadlineTimer !== undefined) clearTimeout(this.deadlineTimer);
    this.deadlineTimerAtMs = front.deadlineMs;
    this.deadlineTimer = setTimeout(this.sweepDeadlines, Math.max(0, front.deadlineMs - Date.now()));
  }

  private readonly sweepDeadlines = (): void => {
    this.deadlineTimer = undefined;
    const now = Date.now();
    for (;;) {
      const front = this.deadlines[this.deadlineHead];
      if (front === undefined || front.deadlineMs > now) break;
      this.deadlineHead++;
      this.expire(front);
    }
    this.popSettledDeadlines();
    this.armDeadlineTimer();
  };

  private failWaiting(err: WireError): void {
    const waiting = this.waiting;
    this.waiting = [];
    this.waitingLive = 0;
    for (const p of waiting) this.settle(p, err);
  }

  private failInflight(err: WireError): void {
    const all = [...this.inflight.values()];
    this.inflight.clear();
    for (const p of all) this.settle(p, err);
  }

  private ensureConnect(): void {
    if (this.connecting || this.socket !== undefined || this.closed) return;
    this.connecting = true;
    const delayMs = Math.max(0, this.nextAttemptAtMs - Date.now());
    if (delayMs > 0) setTimeout(() => this.connect(), delayMs);
    else this.connect();
  }

  private connect(): void {
    if (this.closed) {
      this.connecting = false;
      return;
    }
    const generation = ++this.generation;
    let settled = false;
    const timer = setTimeout(() => {
      if (settled) return;
      settled = true;
      this.connectFailed(new WireError(ErrorCode.TIMEOUT, `connect to ${this.address} timed out after ${this.connectTimeoutMs} ms`, {}, "connect"));
    }, this.connectTimeoutMs);
    Bun.connect<SocketRef>({
      hostname: this.hostname,
      port: this.port,
      data: { generation },
      socket: {
        data: (socket, chunk) => {
          if (socket.data.generation === this.generation) this.received(chunk);
        },
        drain: (socket) => {
          if (socket.data.generation === this.generation) this.outbox?.drained();
        },
        close: (socket) => {
          if (socket.data.generation === this.generation && this.socket !== undefined) {
            this.lost(new WireError(ErrorCode.UNKNOWN, `connection to ${this.address} lost`, {}, "lost"));
          }
        },
        error: () => {},
        connectError: () => {},
      },
    }).then(
      (socket) => {
        if (settled || this.closed) {
          socket.end();
          return;
        }
        settled = true;
        clearTimeout(timer);
        this.connected_(socket);
      },
      (e: unknown) => {
        if (settled) return;
        settled = true;
        clearTimeout(timer);
        this.connectFailed(new WireError(ErrorCode.UNKNOWN, `connect to ${this.address} failed: ${(e as Error).message ?? e}`, {}, "connect"));
      },
    );
  }

  private connected_(socket: Socket<SocketRef>): void {
    this.connecting = false;
    this.failures = 0;
    this.nextAttemptAtMs = 0;
    socket.setNoDelay(true);
    this.socket = socket;
    this.decoder = new FrameDecoder(this.maxFrameBytes);
    const outbox = new Outbox(socket, { maxBufferedBytes: this.maxBufferedBytes, coalesceBelowBytes: this.coalesceBelowBytes });
    this.outbox = outbox;
    const waiting = this.waiting;
    this.waiting = [];
    this.waitingLive = 0;
    for (const p of waiting) {
      if (p.done) continue;
      if (outbox.wouldOverflow(p.frame.byteLength)) {
        this.settle(p, new WireError(ErrorCode.UNKNOWN, `send buffer to ${this.address} full`, {}, "overload"));
      } else {
        this.transmit(outbox, p);
      }
    }
  }

  private connectFailed(err: WireError): void {
    this.connecting = false;
    this.failures++;
    const backoffMs = Math.min(this.backoffMaxMs, this.backoffBaseMs * 2 ** Math.min(this.failures - 1, 20));
    // Jitter so that many clients of a restarted broker do not reconnect in lockstep.
    this.nextAttemptAtMs = Date.now() + backoffMs * (0.5 + Math.random() / 2);
    this.failWaiting(err);
  }

  private dropSocket(): void {
    this.socket = undefined;
    this.outbox = undefined;
    this.decoder = undefined;
    this.generation++;
  }

  /** The connection is gone: what was sent has an unknown outcome; what waits triggers a new connection. */
  private lost(err: WireError): void {
    const s = this.socket;
    this.dropSocket();
    s?.terminate();
    this.failInflight(err);
    if (this.waitingLive > 0) this.ensureConnect();
  }

  private received(chunk: Uint8Array): void {
    const decoder = this.decoder;
    if (decoder === undefined) return;
    try {
      decoder.push(chunk, this.onFrame);
    } catch (e) {
      const err = e instanceof WireError ? e : new WireError(ErrorCode.MALFORMED_FRAME, String(e));
      this.lost(new WireError(err.code, `bad frame from ${this.address}: ${err.message}`, {}, "lost"));
    }
  }

  private readonly onFrame = (bytes: Uint8Array): void => {
    const { correlationId, body } = decodeFrame(bytes);
    if (correlationId === 0) {
      if (body.case === "error") {
        // A connection-level error: the server is about to close; every call on it shares the fate.
        const e = body.value.error;
        const code = e?.code ?? ErrorCode.UNKNOWN;
        this.lost(new WireError(code, `${this.address} closed the connection: ${e?.message ?? "connection error"}`, {}, "lost"));
        return;
      }
      this.onPush?.(body);
      return;
    }
    const p = this.inflight.get(correlationId);
    if (p === undefined) return; // answered after its timeout
    this.inflight.delete(correlationId);
    this.settle(p, body);
  };
}
