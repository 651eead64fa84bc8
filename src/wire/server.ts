import type { Socket, TCPSocketListener } from "bun";
import { ErrorCode } from "../proto/goulette_pb";
import { FrameDecoder, FrameStreamError } from "./decoder";
import { errorBody, errorBodyFromThrown, type Body, type BodyCase } from "./errors";
import { DEFAULT_MAX_FRAME_BYTES, decodeFrame, encodeFrame } from "./frame";
import { Outbox, DEFAULT_MAX_BUFFERED_BYTES } from "./outbox";

export type HandlerResult = Body | undefined | Promise<Body | undefined>;

export interface HandlerContext {
  peer: string;
  conn: ServerConn;
}

export interface ServeOptions {
  hostname: string;
  /** 0: the OS picks; read server.port. */
  port: number;
  /** Longest frame accepted (prefix excluded). Default 16 MiB. */
  maxFrameBytes?: number;
  /** What one connection may have queued for a peer that does not read; beyond it the peer is dropped. */
  maxBufferedBytes?: number;
  /** Requests of one connection being handled at once; beyond it the server stops reading from it. */
  maxInFlightPerConnection?: number;
  /** A frame started but not finished within this long closes the connection. Default 30 s. */
  partialFrameTimeoutMs?: number;
  /** Connections open at once; one more is sent an error frame and closed on accept. Default 10000. */
  maxConnections?: number;
  /** Body cases this server serves; any other is answered UNSUPPORTED_REQUEST and the peer dropped. */
  accepts?: readonly BodyCase[];
  handle(body: Body, ctx: HandlerContext): HandlerResult;
  /**
   * Offered every frame (protobuf bytes, no prefix) before it is decoded: true when it was taken as it is,
   * one-way, with nothing to answer (a broker reads its peers' Raft frames by hand); false decodes it as usual.
   */
  raw?(frame: Uint8Array): boolean;
  onConnection?(conn: ServerConn): void;
  onClose?(conn: ServerConn): void;
}

export interface WireServer {
  readonly hostname: string;
  readonly port: number;
  /** Open connections. */
  readonly connections: number;
  /** Closes the listener and every connection. */
  stop(): void;
}

const DEFAULT_MAX_IN_FLIGHT = 4096;
const DEFAULT_PARTIAL_FRAME_TIMEOUT_MS = 30_000;

let nextConnId = 1;

/** One accepted connection. */
export class ServerConn {
  readonly id = nextConnId++;
  readonly peer: string;
  readonly decoder: FrameDecoder;
  readonly outbox: Outbox;
  inFlight = 0;
  /** Reading paused because too many requests are being handled. */
  paused = false;
  /** When bytes of the current partial frame last arrived. */
  lastDataMs = 0;
  private closing = false;
  private flushScheduled = false;

  constructor(
    readonly socket: Socket<ConnRef>,
    maxFrameBytes: number,
    maxBufferedBytes: number,
  ) {
    this.peer = `${socket.remoteAddress}:${(socket as unknown as { remotePort?: number }).remotePort ?? 0}`;
    this.decoder = new FrameDecoder(maxFrameBytes);
    this.outbox = new Outbox(socket, { maxBufferedBytes });
  }

  get closed(): boolean {
    return this.closing;
  }

  /** Pushes a one-way frame (correlation id 0) to the peer. */
  send(body: Body): void {
    this.respond(0, body);
  }

  respond(correlationId: number, body: Body): void {
    if (this.closing) return;
    const frame = encodeFrame(correlationId, body);
    if (this.outbox.wouldOverflow(frame.byteLength)) {
      // The peer is not reading what it asked for: drop it rather than buffer without bound. A graceful
      // close would wait behind the unread bytes, so reset the connection.
      this.abort();
      return;
    }
    this.outbox.enqueue(frame);
    if (!this.flushScheduled) {
      this.flushScheduled = true;
      queueMicrotask(() => {
        this.flushScheduled = false;
        if (!this.closing && !this.outbox.flush()) this.close();
      });
    }
  }

  /** Sends what is queued (best effort), then closes. */
  close(): void {
    if (this.closing) return;
    this.closing = true;
    this.outbox.flush();
    this.socket.end();
  }

  /** Resets the connection at once, dropping whatever is queued. */
  abort(): void {
    if (this.closing) return;
    this.closing = true;
    this.socket.terminate();
  }

  /** Answers a stream-level error where it can be addressed, then closes. */
  fail(err: FrameStreamError): void {
    if (this.closing) return;
    this.decoder.poison(err);
    this.respond(err.correlationId ?? 0, errorBody(err.code, err.message));
    this.outbox.flush();
    this.close();
  }
}

interface ConnRef {
  conn: ServerConn | undefined;
}

/** Starts a TCP server speaking the frame protocol; every request goes to `handle`. */
export function serve(opts: ServeOptions): WireServer {
  const maxFrameBytes = opts.maxFrameBytes ?? DEFAULT_MAX_FRAME_BYTES;
  const maxBufferedBytes = opts.maxBufferedBytes ?? Math.max(DEFAULT_MAX_BUFFERED_BYTES, 2 * maxFrameBytes);
  const maxInFlight = opts.maxInFlightPerConnection ?? DEFAULT_MAX_IN_FLIGHT;
  const partialFrameTimeoutMs = opts.partialFrameTimeoutMs ?? DEFAULT_PARTIAL_FRAME_TIMEOUT_MS;
  const accepts = opts.accepts ? new Set<string>(opts.accepts) : undefined;
  const maxConnections = opts.maxConnections ?? 10_000;
  const conns = new Set<ServerConn>();
  let stopped = false;

  const finish = (conn: ServerConn, correlationId: number, result: Body | undefined): void => {
    if (correlationId === 0) return;
    const body = result ?? errorBody(ErrorCode.UNKNOWN, "handler returned no response to a request");
    try {
      conn.respond(correlationId, body);
    } catch {
      // A response that does not encode is a handler bug; the requester still gets an answer.
      conn.respond(correlationId, errorBody(ErrorCode.UNKNOWN, "response does not encode"));
    }
  };

  const settle = (conn: ServerConn): void => {
    conn.inFlight--;
    if (conn.paused && conn.inFlight <= maxInFlight / 2 && !conn.closed) {
      conn.paused = false;
      conn.socket.resume();
    }
  };

  const dispatch = (conn: ServerConn, bytes: Uint8Array): void => {
    if (conn.closed) return;
    if (opts.raw?.(bytes)) return;
    let frame;
    try {
      frame = decodeFrame(bytes);
    } catch (e) {
      const err = e as FrameStreamError;
      conn.fail(new FrameStreamError(ErrorCode.MALFORMED_FRAME, err.message, undefined));
      return;
    }
    const { correlationId, body } = frame;
    if (body.case === undefined || (accepts !== undefined && !accepts.has(body.case))) {
      conn.fail(new FrameStreamError(ErrorCode.UNSUPPORTED_REQUEST, `unsupported request ${body.case ?? "(unknown body)"}`, correlationId));
      return;
    }
    let result: HandlerResult;
    try {
      result = opts.handle(body, { peer: conn.peer, conn });
    } catch (e) {
      finish(conn, correlationId, errorBodyFromThrown(e));
      return;
    }
    if (result instanceof Promise) {
      conn.inFlight++;
      if (conn.inFlight >= maxInFlight && !conn.paused) {
        conn.paused = true;
        conn.socket.pause();
      }
      result.then(
        (r) => {
          settle(conn);
          finish(conn, correlationId, r);
        },
        (e: unknown) => {
          settle(conn);
          finish(conn, correlationId, errorBodyFromThrown(e));
        },
      );
    } else {
      finish(conn, correlationId, result);
    }
  };

  const listener: TCPSocketListener<ConnRef> = Bun.listen<ConnRef>({
    hostname: opts.hostname,
    port: opts.port,
    data: { conn: undefined },
    socket: {
      open(socket) {
        const conn = new ServerConn(socket, maxFrameBytes, maxBufferedBytes);
        socket.data = { conn };
        socket.setNoDelay(true);
        if (stopped) {
          conn.close();
          return;
        }
        if (conns.size >= maxConnections) {
          conn.fail(new FrameStreamError(ErrorCode.UNKNOWN, `too many connections (${maxConnections})`, undefined));
          return;
        }
        conns.add(conn);
        opts.onConnection?.(conn);
      },
      data(socket, chunk) {
        const conn = socket.data.conn;
        if (conn === undefined || conn.closed) return;
        try {
          conn.decoder.push(chunk, (bytes) => dispatch(conn, bytes));
        } catch (e) {
          if (e instanceof FrameStreamError) conn.fail(e);
          else conn.fail(new FrameStreamError(ErrorCode.UNKNOWN, "internal error", undefined));
          return;
        }
        if (conn.decoder.pendingBytes > 0) conn.lastDataMs = Date.now();
      },
      drain(socket) {
        const conn = socket.data.conn;
        if (conn !== undefined && !conn.closed) conn.outbox.drained();
      },
      close(socket) {
        const conn = socket.data.conn;
        if (conn === undefined || !conns.delete(conn)) return;
        conn.close();
        opts.onClose?.(conn);
      },
      error(socket) {
        socket.data.conn?.close();
      },
    },
  });

  // One sweep for every connection, rather than a timer per partial frame.
  const sweepEveryMs = Math.max(10, Math.min(1000, Math.floor(partialFrameTimeoutMs / 4)));
  const sweeper = setInterval(() => {
    const now = Date.now();
    for (const conn of conns) {
      if (conn.decoder.pendingBytes > 0 && now - conn.lastDataMs > partialFrameTimeoutMs) {
        conn.fail(new FrameStreamError(ErrorCode.TIMEOUT, `partial frame stalled for over ${partialFrameTimeoutMs} ms`, undefined));
      }
    }
  }, sweepEveryMs);
  sweeper.unref();

  return {
    hostname: listener.hostname,
    port: listener.port,
    get connections() {
      return conns.size;
    },
    stop() {
      if (stopped) return;
      stopped = true;
      clearInterval(sweeper);
      for (const conn of conns) conn.close();
      listener.stop(true);
    },
  };
}
