// The replicated state machine of one partition: what applying a committed Raft entry does. Deterministic:
// every replica applies the same entries in the same order from the same snapshot and so assigns the same
// offsets, reaches the same idempotence verdicts and holds the same consumer offsets.
import { readBatchHeader, stampBatch } from "../wire/batch";
import { assert } from "./assert";
import { CommandKind, decodeCommand, isBatchEntry } from "./commands";
import { ProducerTable } from "./producer-table";

export type ApplyResult =
  | { kind: "appended"; baseOffset: number; recordCount: number; batch: Uint8Array }
  | { kind: "duplicate"; baseOffset: number }
  | { kind: "fenced"; message: string }
  | { kind: "out-of-order"; message: string }
  | { kind: "offset-committed" }
  | { kind: "none" };

export interface CommittedOffset {
  offset: number;
  metadata: string;
}

export class PartitionState {
  producers = new ProducerTable();
  offsets = new Map<string, CommittedOffset>();

  constructor(public nextOffset: number) {}

  /**
   * Applies one committed entry. A batch is stamped in place with its offset and Raft index (outside its
   * CRC) and handed back for the caller to write to the partition log; the caller must write it before
   * applying the next entry so the log and nextOffset never disagree.
   */
  apply(index: number, data: Uint8Array): ApplyResult {
    if (isBatchEntry(data)) {
      const h = readBatchHeader(data);
      const verdict = this.producers.check(h.producerId, h.producerEpoch, h.baseSequence);
      switch (verdict.kind) {
        case "duplicate":
          return { kind: "duplicate", baseOffset: verdict.baseOffset };
        case "fenced":
          return { kind: "fenced", message: `producer ${h.producerId} epoch ${h.producerEpoch} is fenced by epoch ${verdict.currentEpoch}` };
        case "out-of-order":
          return { kind: "out-of-order", message: `producer ${h.producerId} sent sequence ${h.baseSequence}, expected ${verdict.expected}` };
        case "append": {
          assert(h.recordCount > 0, "a committed batch has records");
          const baseOffset = this.nextOffset;
          stampBatch(data, baseOffset, index);
          this.producers.record(h.producerId, h.producerEpoch, h.baseSequence, h.recordCount, baseOffset);
          this.nextOffset += h.recordCount;
          return { kind: "appended", baseOffset, recordCount: h.recordCount, batch: data };
        }
      }
    }
    const cmd = decodeCommand(data);
    if (cmd?.kind === CommandKind.OffsetCommit) {
      this.offsets.set(cmd.group, { offset: cmd.offset, metadata: cmd.metadata });
      return { kind: "offset-committed" };
    }
    return { kind: "none" };
  }

  /** Small state carried by Raft snapshots; the records themselves move as fragments. */
  encode(): Uint8Array {
    return new TextEncoder().encode(
      JSON.stringify({ nextOffset: this.nextOffset, producers: this.producers.toJSON(), offsets: [...this.offsets] }),
    );
  }

  static decode(bytes: Uint8Array): PartitionState {
    const raw = JSON.parse(new TextDecoder().decode(bytes)) as {
      nextOffset: number;
      producers: unknown;
      offsets: [string, CommittedOffset][];
    };
    const s = new PartitionState(raw.nextOffset);
    s.producers = ProducerTable.fromJSON(raw.producers);
    s.offsets = new Map(raw.offsets);
    return s;
  }
}
