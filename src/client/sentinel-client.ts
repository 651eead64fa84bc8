import { ErrorCode } from "../proto/goulette_pb";
import type { Body, BodyCase, BodyOf } from "../wire/errors";
import { expectCase } from "../wire/expect-case";
import { backoffMs, sleep } from "./backoff";
import { ClientError, WireError, describeError, isTransportFailure } from "./errors";
import type { Transport } from "./transport";

export interface SentinelClientOptions {
  /** Give up on a request after this long, whatever was tried. */
  timeoutMs?: number;
  /**
   * Per attempt on one address while other addresses are left to try, so a hung sentinel costs little of
   * the budget. The last address left gets all that remains (a dead one fails fast at connect anyway).
   */
  attemptTimeoutMs?: number;
}

/** How long a sentinel request may take, retries and leader changes included, unless told otherwise. */
export const DEFAULT_SENTINEL_TIMEOUT_MS = 3000;

/**
 * Talks to the sentinels: tries each address in turn, follows NOT_SENTINEL_LEADER to the leader it names,
 * and remembers who answered so later requests go there first.
 */
export class SentinelClient {
  private readonly addresses: string[];
  private preferred = 0;
  /** The default for request(); a request that legitimately takes longer passes its own. */
  readonly timeoutMs: number;
  private readonly attemptTimeoutMs: number;

  constructor(addresses: string[], private readonly transport: Transport, opts: SentinelClientOptions = {}) {
    if (addresses.length === 0) throw new ClientError(ErrorCode.INVALID_ARGUMENT, "no sentinel address given");
    this.addresses = [...new Set(addresses)];
    this.timeoutMs = opts.timeoutMs ?? DEFAULT_SENTINEL_TIMEOUT_MS;
    this.attemptTimeoutMs = opts.attemptTimeoutMs ?? 1000;
  }

  get addressList(): readonly string[] {
    return this.addresses;
  }

  /**
   * Sends `body` and unwraps `expected`. Errors the sentinel answers with (other than NOT_SENTINEL_LEADER)
   * are thrown as they are: the caller knows which of them are worth waiting out.
   */
  async request<C extends BodyCase>(body: Body, expected: C, timeoutMs = this.timeoutMs): Promise<BodyOf<C>> {
    const deadline = Date.now() + timeoutMs;
    let lastError = "";
    for (let round = 0; ; round++) {
      const tried = new Set<string>();
      let next: string | undefined = this.addresses[this.preferred % this.addresses.length];
      let i = 0;
      while (next !== undefined && Date.now() < deadline) {
        const address = next;
        tried.add(address);
        next = undefined;
        try {
          const remaining = Math.max(1, deadline - Date.now());
          const others = this.addresses.some((a) => !tried.has(a));
          const res = await this.transport.call(address, body, others ? Math.min(this.attemptTimeoutMs, remaining) : remaining);
          const value = expectCase(res, expected);
          this.remember(address);
          return value;
        } catch (err) {
          if (err instanceof WireError && err.code === ErrorCode.NOT_SENTINEL_LEADER) {
            lastError = `${address} is not the sentinel leader`;
            if (err.leaderAddress && !tried.has(err.leaderAddress)) next = err.leaderAddress;
          } else if (isTransportFailure(err)) {
            lastError = `${address}: ${describeError(err)}`;
          } else {
            this.remember(address);
            throw err;
          }
        }
        if (next === undefined) {
          while (i < this.addresses.length && tried.has(this.addresses[i]!)) i++;
          next = this.addresses[i];
        }
      }
      if (Date.now() >= deadline) break;
      await sleep(Math.min(backoffMs(round, 50, 500), Math.max(0, deadline - Date.now())));
      if (Date.now() >= deadline) break;
    }
    throw new ClientError(
      ErrorCode.TIMEOUT,
      `no sentinel reachable at ${this.addresses.join(",")} after ${timeoutMs} ms${lastError ? ` (last: ${lastError})` : ""}`,
    );
  }

  private remember(address: string): void {
    const i = this.addresses.indexOf(address);
    if (i >= 0) this.preferred = i;
    else {
      // A leader we were redirected to that was not in the list: keep it, first in line.
      this.addresses.push(address);
      this.preferred = this.addresses.length - 1;
    }
  }
}
