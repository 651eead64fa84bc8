// What a partition's Raft entries carry. A produced batch is proposed as-is (no prefix, no copy): its header
// is recognisable by the magic byte at BATCH_MAGIC_AT. Every other command is a 24-byte zero prefix (which
// can never be a valid batch header, whose length field is > 0), a kind byte >= 0x80 where a batch has its
// magic, and a JSON body. Commands are rare (offset commits), batches are the hot path.
import { assert } from "./assert";

export const BATCH_MAGIC_AT = 24;
export const BATCH_MAGIC = 1;
const COMMAND_PREFIX_BYTES = 24;

export enum CommandKind {
  OffsetCommit = 0x81,
}

export interface OffsetCommitCommand {
  kind: CommandKind.OffsetCommit;
  group: string;
  offset: number;
  metadata: string;
}

export type Command = OffsetCommitCommand;

export function isBatchEntry(data: Uint8Array): boolean {
  return data.length > BATCH_MAGIC_AT && data[BATCH_MAGIC_AT] === BATCH_MAGIC;
}

export function encodeCommand(cmd: Command): Uint8Array {
  const { kind, ...rest } = cmd;
  const body = new TextEncoder().encode(JSON.stringify(rest));
  const out = new Uint8Array(COMMAND_PREFIX_BYTES + 1 + body.length);
  out[COMMAND_PREFIX_BYTES] = kind;
  out.set(body, COMMAND_PREFIX_BYTES + 1);
  return out;
}

/** undefined for an entry that is neither a batch nor a known command (e.g. an empty Noop). */
export function decodeCommand(data: Uint8Array): Command | undefined {
  if (data.length <= COMMAND_PREFIX_BYTES) return undefined;
  const kind = data[COMMAND_PREFIX_BYTES];
  if (kind !== CommandKind.OffsetCommit) return undefined;
  const body = JSON.parse(new TextDecoder().decode(data.subarray(COMMAND_PREFIX_BYTES + 1))) as Omit<OffsetCommitCommand, "kind">;
  assert(typeof body.group === "string" && Number.isSafeInteger(body.offset), "malformed offset commit command");
  return { kind, group: body.group, offset: body.offset, metadata: body.metadata ?? "" };
}
