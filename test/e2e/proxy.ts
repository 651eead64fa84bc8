// A TCP proxy in front of every broker, so the nemesis can partition brokers from each other.
//
// Each broker advertises its proxy's address, so every connection into broker B (from another broker,
// the sentinel or a client) goes through B's proxy. The proxy learns who dialed (a label from the
// `identify` callback, e.g. "b1", "sentinel", "client") and applies one rule per ordered pair of labels
// and direction of bytes: pass, drop or stall. Rules act on whole frames (the 4-byte length prefix of the
// wire protocol), so dropping one way loses messages without corrupting the stream, as a lossy network
// would. Brokers send Raft messages one way on the connection they dialed, so "drop into B" means frames
// from others to B on connections into B's proxy, plus the answers B gets on connections it dialed.
//
// What it cannot do: it only sees traffic that goes through advertised addresses (brokers reach the
// sentinel directly, so a partitioned broker still talks to the sentinel), and a stall holds at most
// `stallBytesMax` per connection before it closes that connection.
import type { Socket, TCPSocketListener } from "bun";

export type LinkMode = "pass" | "drop" | "stall";

const FRAME_PREFIX_BYTES = 4;
const FRAME_BYTES_MAX = 64 * 1024 * 1024;
const STALL_BYTES_MAX = 64 * 1024 * 1024;

/** Who is at the other end of an accepted connection, from the peer's port; "unknown" when unsure. */
export type Identify = (remotePort: number) => string;

/** Splits a byte stream into whole frames. */
class FrameSplitter {
  private buf = new Uint8Array(0);

  push(chunk: Uint8Array): Uint8Array[] {
    const joined = new Uint8Array(this.buf.length + chunk.length);
    joined.set(this.buf, 0);
    joined.set(chunk, this.buf.length);
    const frames: Uint8Array[] = [];
    let at = 0;
    while (joined.length - at >= FRAME_PREFIX_BYTES) {
      const len = new DataView(joined.buffer, joined.byteOffset + at, 4).getUint32(0, false);
      // A length that cannot be a frame is passed through as is: the receiver's decoder must refuse it.
      if (len > FRAME_BYTES_MAX) {
        frames.push(joined.slice(at));
        at = joined.length;
        break;
      }
      if (joined.length - at < FRAME_PREFIX_BYTES + len) break;
      frames.push(joined.slice(at, at + FRAME_PREFIX_BYTES + len));
      at += FRAME_PREFIX_BYTES + len;
    }
    this.buf = joined.slice(at);
    return frames;
  }
}

/** Bytes waiting for a socket that pushed back; written on drain. */
class Outbox {
  private chunks: Uint8Array[] = [];
  bytes = 0;

  constructor(private socket: Socket<unknown> | undefined) {}

  attach(socket: Socket<unknown>): void {
    this.socket = socket;
    this.flush();
  }

  write(b: Uint8Array): void {
    this.chunks.push(b);
    this.bytes += b.length;
    this.flush();
  }

  flush(): void {
    const s = this.socket;
    if (!s) return;
    while (this.chunks.length > 0) {
      const head = this.chunks[0]!;
      const n = s.write(head);
      if (n <= 0) return;
      this.bytes -= n;
      if (n < head.length) {
        this.chunks[0] = head.subarray(n);
        return;
      }
      this.chunks.shift();
    }
  }
}

/** One direction of one proxied connection. */
class Direction {
  private splitter = new FrameSplitter();
  private held: Uint8Array[] = [];
  private heldBytes = 0;
  framesDropped = 0;

  get framesHeld(): number {
    return this.held.length;
  }

  constructor(
    readonly from: string,
    readonly to: string,
    private readonly out: Outbox,
    private readonly mode: () => LinkMode,
    private readonly overflow: () => void,
  ) {}

  data(chunk: Uint8Array): void {
    for (const f of this.splitter.push(chunk)) this.frame(f);
  }

  private frame(f: Uint8Array): void {
    const m = this.mode();
    if (m === "drop") {
      this.framesDropped++;
      return;
    }
    if (m === "stall" || this.held.length > 0) {
      this.held.push(f);
      this.heldBytes += f.length;
      if (this.heldBytes > STALL_BYTES_MAX) this.overflow();
      if (m === "stall") return;
    }
    if (this.held.length > 0) this.release();
    else this.out.write(f);
  }

  /** Sends what a stall held back, once the link passes again; drops it if the link now drops. */
  release(): void {
    const m = this.mode();
    if (m === "stall" || this.held.length === 0) return;
    const held = this.held;
    this.held = [];
    this.heldBytes = 0;
    if (m === "drop") {
      this.framesDropped += held.length;
      return;
    }
    for (const f of held) this.out.write(f);
  }
}

interface Conn {
  client: Socket<unknown>;
  upstream: Socket<unknown> | undefined;
  up: Direction; // client -> broker
  down: Direction; // broker -> client
  toClient: Outbox;
  toBroker: Outbox;
  closed: boolean;
}

/** The proxy in front of one broker. */
export class BrokerProxy {
  private listener: TCPSocketListener<unknown> | undefined;
  private readonly conns = new Set<Conn>();
  /** Who dialed in, by label, over the proxy's life: shows whether the rules could tell peers apart. */
  readonly dialers = new Map<string, number>();
  dropped = 0; // frames dropped on connections already closed

  constructor(
    readonly target: string, // label of the broker behind it, e.g. "b2"
    private readonly upstreamPort: number,
    private readonly identify: Identify,
    private readonly mode: (from: string, to: string) => LinkMode,
  ) {}

  get port(): number {
    if (!this.listener) throw new Error("proxy not started");
    return this.listener.port;
  }

  get address(): string {
    return `127.0.0.1:${this.port}`;
  }

  start(): void {
    const connOf = new WeakMap<Socket<unknown>, Conn>();
    this.listener = Bun.listen<unknown>({
      hostname: "127.0.0.1",
      port: 0,
      socket: {
        open: (client) => {
          const who = this.identify(client.remotePort);
          this.dialers.set(who, (this.dialers.get(who) ?? 0) + 1);
          const toClient = new Outbox(client);
          const toBroker = new Outbox(undefined);
          const conn: Conn = {
            client,
            upstream: undefined,
            toClient,
            toBroker,
            closed: false,
            up: new Direction(who, this.target, toBroker, () => this.mode(who, this.target), () => this.close(conn)),
            down: new Direction(this.target, who, toClient, () => this.mode(this.target, who), () => this.close(conn)),
          };
          connOf.set(client, conn);
          this.conns.add(conn);
          Bun.connect<unknown>({
            hostname: "127.0.0.1",
            port: this.upstreamPort,
            socket: {
              open: (up) => {
                if (conn.closed) return void up.end();
                conn.upstream = up;
                toBroker.attach(up);
              },
              data: (_up, chunk) => conn.down.data(chunk),
              drain: () => toBroker.flush(),
              close: () => this.close(conn),
              error: () => this.close(conn),
              connectError: () => this.close(conn),
            },
          }).catch(() => this.close(conn));
        },
        data: (client, chunk) => connOf.get(client)?.up.data(chunk),
        drain: (client) => {
          connOf.get(client)?.toClient.flush();
        },
        close: (client) => {
          const c = connOf.get(client);
          if (c) this.close(c);
        },
        error: (client) => {
          const c = connOf.get(client);
          if (c) this.close(c);
        },
      },
    });
  }

  /** Re-evaluates every connection after a rule changed: held frames go out (or away). */
  rulesChanged(): void {
    for (const c of this.conns) {
      c.up.release();
      c.down.release();
    }
  }

  /** Closes every connection through this proxy (both ends see a reset-like close). */
  cutAll(): void {
    for (const c of [...this.conns]) this.close(c);
  }

  framesDropped(): number {
    let n = this.dropped;
    for (const c of this.conns) n += c.up.framesDropped + c.down.framesDropped;
    return n;
  }

  framesHeld(): number {
    let n = 0;
    for (const c of this.conns) n += c.up.framesHeld + c.down.framesHeld;
    return n;
  }

  stop(): void {
    this.cutAll();
    this.listener?.stop(true);
    this.listener = undefined;
  }

  private close(c: Conn): void {
    if (c.closed) return;
    c.closed = true;
    this.dropped += c.up.framesDropped + c.down.framesDropped;
    this.conns.delete(c);
    c.client.end();
    c.upstream?.end();
  }
}

/**
 * The proxies of a cluster and the rules between its members. Labels are free-form ("b1", "client");
 * a rule names an ordered pair: frames sent by `from` towards `to`.
 */
export class ProxyNet {
  private readonly proxies = new Map<string, BrokerProxy>();
  private readonly rules = new Map<string, LinkMode>();

  constructor(private readonly identify: Identify) {}

  /** Starts a proxy in front of broker `label` listening on `upstreamPort`; returns the address to advertise. */
  add(label: string, upstreamPort: number): string {
    if (this.proxies.has(label)) throw new Error(`proxy for ${label} exists`);
    const p = new BrokerProxy(label, upstreamPort, this.identify, (from, to) => this.modeOf(from, to));
    p.start();
    this.proxies.set(label, p);
    return p.address;
  }

  modeOf(from: string, to: string): LinkMode {
    return this.rules.get(`${from}>${to}`) ?? "pass";
  }

  /** Sets the mode of frames from `from` to `to` (one way). */
  set(from: string, to: string, mode: LinkMode): void {
    if (mode === "pass") this.rules.delete(`${from}>${to}`);
    else this.rules.set(`${from}>${to}`, mode);
    for (const p of this.proxies.values()) p.rulesChanged();
  }

  /**
   * Separates `node` from `others`: "both", "in" (frames towards node only) or "out" (frames from node only).
   */
  isolate(node: string, others: string[], mode: Exclude<LinkMode, "pass">, way: "both" | "in" | "out"): void {
    for (const o of others) {
      if (way !== "out") this.set(o, node, mode);
      if (way !== "in") this.set(node, o, mode);
    }
  }

  healAll(): void {
    this.rules.clear();
    for (const p of this.proxies.values()) p.rulesChanged();
  }

  framesDropped(): number {
    let n = 0;
    for (const p of this.proxies.values()) n += p.framesDropped();
    return n;
  }

  framesHeld(): number {
    let n = 0;
    for (const p of this.proxies.values()) n += p.framesHeld();
    return n;
  }

  /** "dialer>broker" -> connections accepted. */
  dialers(): Record<string, number> {
    const out: Record<string, number> = {};
    for (const [label, p] of this.proxies) for (const [who, n] of p.dialers) out[`${who}>${label}`] = n;
    return out;
  }

  stop(): void {
    for (const p of this.proxies.values()) p.stop();
    this.proxies.clear();
  }
}
