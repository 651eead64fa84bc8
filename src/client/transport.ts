import type { Body } from "../wire/errors";
import { ClientPool } from "../wire/index";

/**
 * What the client library needs from the network: one request to one address with a deadline. Kept this
 * narrow so producer and consumer logic can be driven by an in-memory fake in unit tests.
 */
export interface Transport {
  call(address: string, body: Body, timeoutMs: number): Promise<Body>;
  close(): void;
}

export interface WireTransportOptions {
  connectTimeoutMs?: number;
  maxFrameBytes?: number;
}

/** The real transport: one pipelined connection per address, shared by everything in a client. */
export class WireTransport implements Transport {
  private readonly pool: ClientPool;

  constructor(opts: WireTransportOptions = {}) {
    this.pool = new ClientPool({ connectTimeoutMs: opts.connectTimeoutMs ?? 1000, maxFrameBytes: opts.maxFrameBytes });
  }

  call(address: string, body: Body, timeoutMs: number): Promise<Body> {
    return this.pool.get(address).call(body, { timeoutMs });
  }

  close(): void {
    this.pool.closeAll();
  }
}
