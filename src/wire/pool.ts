import { WireClient, type WireClientOptions } from "./client";

/** One shared WireClient per address, all made with the same options. */
export class ClientPool {
  private readonly clients = new Map<string, WireClient>();
  constructor(private readonly opts: WireClientOptions = {}) {}

  get(address: string): WireClient {
    let c = this.clients.get(address);
    if (c === undefined) {
      c = new WireClient(address, this.opts);
      this.clients.set(address, c);
    }
    return c;
  }

  /** Closes one address's client (its pending calls reject); the next get() makes a new one. */
  close(address: string): void {
    this.clients.get(address)?.close();
    this.clients.delete(address);
  }

  closeAll(): void {
    for (const c of this.clients.values()) c.close();
    this.clients.clear();
  }

  get size(): number {
    return this.clients.size;
  }
}
