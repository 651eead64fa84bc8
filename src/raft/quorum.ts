// Majority arithmetic over a single voter set (one membership change at a time keeps a single set).
import type { NodeId } from "./types";

export function majority(voterCount: number): number {
  return Math.floor(voterCount / 2) + 1;
}

/**
 * The highest index that a majority of voters have durably matched. With no voters there is nothing
 * to commit, so 0.
 */
export function committedIndex(voters: readonly NodeId[], matchOf: (id: NodeId) => number): number {
  const n = voters.length;
  if (n === 0) return 0;
  const matches = new Array<number>(n);
  for (let i = 0; i < n; i++) matches[i] = matchOf(voters[i] as NodeId);
  matches.sort((a, b) => b - a);
  return matches[majority(n) - 1] as number;
}

export type VoteOutcome = "won" | "lost" | "pending";

export function voteOutcome(voters: readonly NodeId[], votes: ReadonlyMap<NodeId, boolean>): VoteOutcome {
  let granted = 0;
  let rejected = 0;
  for (const v of voters) {
    const vote = votes.get(v);
    if (vote === true) granted++;
    else if (vote === false) rejected++;
  }
  const need = majority(voters.length);
  if (granted >= need) return "won";
  if (voters.length - rejected < need) return "lost";
  return "pending";
}

/** Whether a majority of voters count as active (check-quorum). */
export function quorumActive(voters: readonly NodeId[], isActive: (id: NodeId) => boolean): boolean {
  let active = 0;
  for (const v of voters) if (isActive(v)) active++;
  return active >= majority(voters.length);
}
