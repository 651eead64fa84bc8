// Membership changes travel as ConfChange entries. Encoding: [kind:u8][node:u32 big-endian].
//
// When a change takes effect: on COMMIT, on every node (the core applies it while advancing its commit
// index, before handing the entry to the driver). Why commit rather than append: a change applied on
// append must be undone when a new leader truncates the entry, and single-server changes applied on
// append are only safe with the extra rule that a leader commits an entry of its own term first. On
// commit the change is never undone, every node derives the same configuration from the same committed
// prefix (also after a restart), and the leader refuses a second change until the first has committed,
// so any two configurations in use at once differ by one voter and their majorities overlap.
import type { ConfChange, ConfState, NodeId } from "./types";

const KIND_ADD_LEARNER = 1;
const KIND_PROMOTE = 2;
const KIND_REMOVE = 3;
const ENCODED_BYTES = 5;

export class ConfChangeDecodeError extends Error {
  override name = "ConfChangeDecodeError";
}

export function encodeConfChange(cc: ConfChange): Uint8Array {
  const out = new Uint8Array(ENCODED_BYTES);
  const kind = cc.type === "add-learner" ? KIND_ADD_LEARNER : cc.type === "promote" ? KIND_PROMOTE : KIND_REMOVE;
  out[0] = kind;
  new DataView(out.buffer).setUint32(1, cc.node >>> 0, false);
  return out;
}

export function decodeConfChange(data: Uint8Array): ConfChange {
  if (data.length !== ENCODED_BYTES) throw new ConfChangeDecodeError(`conf change must be ${ENCODED_BYTES} bytes`);
  const node = new DataView(data.buffer, data.byteOffset, data.byteLength).getUint32(1, false);
  if (node === 0) throw new ConfChangeDecodeError("conf change names node 0");
  switch (data[0]) {
    case KIND_ADD_LEARNER:
      return { type: "add-learner", node };
    case KIND_PROMOTE:
      return { type: "promote", node };
    case KIND_REMOVE:
      return { type: "remove", node };
    default:
      throw new ConfChangeDecodeError(`unknown conf change kind ${data[0]}`);
  }
}

/** Why a change cannot be proposed against `conf`, or undefined when it can. */
export function confChangeProblem(conf: ConfState, cc: ConfChange): string | undefined {
  const isVoter = conf.voters.includes(cc.node);
  const isLearner = conf.learners.includes(cc.node);
  switch (cc.type) {
    case "add-learner":
      return isVoter || isLearner ? `node ${cc.node} is already a member` : undefined;
    case "promote":
      return isLearner ? undefined : `node ${cc.node} is not a learner`;
    case "remove":
      if (!isVoter && !isLearner) return `node ${cc.node} is not a member`;
      if (isVoter && conf.voters.length === 1) return "cannot remove the last voter";
      return undefined;
  }
}

/**
 * The configuration after `cc`. A change that does not fit (it was valid when proposed against a
 * configuration that is no longer current) is a no-op, identically on every node.
 */
export function applyConfChange(conf: ConfState, cc: ConfChange): ConfState {
  if (confChangeProblem(conf, cc) !== undefined) return conf;
  const without = (ids: NodeId[]) => ids.filter((id) => id !== cc.node);
  switch (cc.type) {
    case "add-learner":
      return frozenConf(conf.voters, sorted([...conf.learners, cc.node]));
    case "promote":
      return frozenConf(sorted([...conf.voters, cc.node]), without(conf.learners));
    case "remove":
      return frozenConf(without(conf.voters), without(conf.learners));
  }
}

/** Membership values are shared (node getters, snapshots, messages), so they are immutable. */
export function frozenConf(voters: readonly NodeId[], learners: readonly NodeId[]): ConfState {
  return Object.freeze({
    voters: Object.isFrozen(voters) ? (voters as NodeId[]) : Object.freeze([...voters]) as NodeId[],
    learners: Object.isFrozen(learners) ? (learners as NodeId[]) : Object.freeze([...learners]) as NodeId[],
  });
}

function sorted(ids: NodeId[]): NodeId[] {
  return ids.sort((a, b) => a - b);
}
