import { ErrorCode } from "../proto/goulette_pb";
import { WireError } from "./errors";
import { DEFAULT_MAX_FRAME_BYTES, LENGTH_PREFIX_BYTES, peekCorrelationId } from "./frame";

/** A stream that cannot be framed any further; `correlationId` is set when the bad frame's id was readable. */
export class FrameStreamError extends WireError {
  readonly correlationId: number | undefined;
  constructor(code: ErrorCode, message: string, correlationId: number | undefined) {
    super(code, message);
    this.name = "FrameStreamError";
    this.correlationId = correlationId;
  }
}

// Enough bytes after the prefix to read a correlation id tag and a 10-byte varint.
const PEEK_BYTES = 11;

/**
 * Cuts a TCP byte stream into frames. A frame that lies inside one chunk is handed out as a view of that
 * chunk (no copy); a frame spread over several chunks is copied once, into a buffer of exactly its size,
 * and only once all its bytes have arrived, so a peer can make us hold no more than it actually sent.
 * Chunks are kept in a list rather than appended to a growing buffer, so the cost stays linear.
 *
 * Relies on the runtime handing each `data` event a fresh buffer (Bun does); a frame view stays valid
 * after the event.
 */
export class FrameDecoder {
  readonly maxFrameBytes: number;
  private chunks: Uint8Array[] = [];
  /** Read position inside chunks[0]. */
  private offset = 0;
  private buffered = 0;
  /** Length of the frame being assembled, or -1 while its prefix is still incomplete. */
  private frameBytes = -1;
  private failed: FrameStreamError | undefined;

  constructor(maxFrameBytes = DEFAULT_MAX_FRAME_BYTES) {
    if (!Number.isInteger(maxFrameBytes) || maxFrameBytes < 1 || maxFrameBytes > 0xffffffff) {
      throw new Error(`maxFrameBytes must be an integer in [1, 2^32), got ${maxFrameBytes}`);
    }
    this.maxFrameBytes = maxFrameBytes;
  }

  /** Bytes received but not yet handed out as a frame (a partial frame when > 0). */
  get pendingBytes(): number {
    return this.buffered + (this.frameBytes >= 0 ? LENGTH_PREFIX_BYTES : 0);
  }

  /**
   * Feeds one chunk; calls onFrame for each complete frame (protobuf bytes, no prefix). Throws
   * FrameStreamError when the stream is bad; the decoder then refuses further input.
   */
  push(chunk: Uint8Array, onFrame: (frame: Uint8Array) => void): void {
    if (this.failed) throw this.failed;
    if (chunk.length === 0) return;
    this.chunks.push(chunk);
    this.buffered += chunk.length;
    for (;;) {
      if (this.frameBytes < 0) {
        if (this.buffered < LENGTH_PREFIX_BYTES) return;
        const length = this.readPrefix();
        if (length === 0) this.fail(ErrorCode.MALFORMED_FRAME, "frame length 0");
        if (length > this.maxFrameBytes) {
          this.fail(ErrorCode.FRAME_TOO_LARGE, `frame length ${length} above the maximum ${this.maxFrameBytes}`);
        }
        this.frameBytes = length;
      }
      if (this.buffered < this.frameBytes) return;
      const frame = this.take(this.frameBytes);
      this.frameBytes = -1;
      onFrame(frame);
      if (this.failed) return;
    }
  }

  /** Stops decoding; later pushes throw. Used when the connection is being closed. */
  poison(err: FrameStreamError): void {
    this.failed = err;
    this.chunks = [];
    this.buffered = 0;
  }

  private fail(code: ErrorCode, message: string): never {
    const err = new FrameStreamError(code, message, peekCorrelationId(this.peek(PEEK_BYTES)));
    this.poison(err);
    throw err;
  }

  private readPrefix(): number {
    const first = this.chunks[0]!;
    let length: number;
    if (first.length - this.offset >= LENGTH_PREFIX_BYTES) {
      const o = this.offset;
      length = ((first[o]! << 24) >>> 0) + (first[o + 1]! << 16) + (first[o + 2]! << 8) + first[o + 3]!;
    } else {
      const p = this.peek(LENGTH_PREFIX_BYTES);
      length = ((p[0]! << 24) >>> 0) + (p[1]! << 16) + (p[2]! << 8) + p[3]!;
    }
    this.skip(LENGTH_PREFIX_BYTES);
    return length;
  }

  /** Copies up to n buffered bytes without consuming them (small n only). */
  private peek(n: number): Uint8Array {
    const out = new Uint8Array(Math.min(n, this.buffered));
    let filled = 0;
    let offset = this.offset;
    for (const c of this.chunks) {
      if (filled === out.length) break;
      const part = c.subarray(offset, offset + out.length - filled);
      out.set(part, filled);
      filled += part.length;
      offset = 0;
    }
    return out;
  }

  private skip(n: number): void {
    this.buffered -= n;
    while (n > 0) {
      const first = this.chunks[0]!;
      const available = first.length - this.offset;
      if (available > n) {
        this.offset += n;
        return;
      }
      n -= available;
      this.chunks.shift();
      this.offset = 0;
    }
  }

  private take(n: number): Uint8Array {
    const first = this.chunks[0]!;
    if (first.length - this.offset >= n) {
      const view = first.subarray(this.offset, this.offset + n);
      this.skip(n);
      return view;
    }
    // Every byte is overwritten below, so skip the zero-fill (a frame can be megabytes, hundreds a second).
    const raw = Buffer.allocUnsafeSlow(n);
    const out = new Uint8Array(raw.buffer, raw.byteOffset, n);
    let filled = 0;
    while (filled < n) {
      const c = this.chunks[0]!;
      const part = c.subarray(this.offset, this.offset + (n - filled));
      out.set(part, filled);
      filled += part.length;
      this.skip(part.length);
    }
    return out;
  }
}
