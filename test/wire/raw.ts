import { FrameDecoder } from "../../src/wire/decoder";
import { decodeFrame, type DecodedFrame } from "../../src/wire/frame";

export interface RawResult {
  frames: DecodedFrame[];
  /** True when the server closed the connection before waitMs. */
  closedByServer: boolean;
}

/**
 * Opens a plain TCP connection, writes `bytes` (optionally half-closing after), and collects the frames the
 * server sends until it closes or waitMs passes. Used to speak bad protocol on purpose.
 */
export async function rawExchange(
  port: number,
  bytes: Uint8Array,
  opts: { endAfterWrite?: boolean; waitMs?: number } = {},
): Promise<RawResult> {
  const frames: DecodedFrame[] = [];
  const decoder = new FrameDecoder();
  const { promise, resolve } = Promise.withResolvers<boolean>();
  const socket = await Bun.connect({
    hostname: "127.0.0.1",
    port,
    socket: {
      data(_s, chunk) {
        decoder.push(chunk, (f) => frames.push(decodeFrame(f)));
      },
      close() {
        resolve(true);
      },
      error() {
        resolve(true);
      },
    },
  });
  let offset = 0;
  while (offset < bytes.length) {
    const n = socket.write(bytes.subarray(offset));
    if (n < 0) break;
    offset += n;
    if (offset < bytes.length) await Bun.sleep(1);
  }
  if (opts.endAfterWrite) socket.shutdown();
  const timer = setTimeout(() => resolve(false), opts.waitMs ?? 2000);
  const closedByServer = await promise;
  clearTimeout(timer);
  socket.terminate();
  return { frames, closedByServer };
}

/** Seeded PRNG (mulberry32): a failing seed reproduces. */
export function prng(seed: number): (n: number) => number {
  let a = seed >>> 0;
  return (n: number) => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return (((t ^ (t >>> 14)) >>> 0) / 4294967296) * n | 0;
  };
}
