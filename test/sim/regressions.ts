// Every seed that ever failed the simulation, with what it caught. sim.test.ts replays them all.
// Add a line whenever a seed fails (after fixing the cause), never remove one.
export interface Regression {
  seed: number;
  steps: number;
  caught: string;
  lostTails?: boolean;
  pipeline?: boolean;
}

export const REGRESSIONS: Regression[] = [
  { seed: 1, steps: 400, caught: "sim: bootstrap entries counted as needing a durable majority before first persist" },
  { seed: 19, steps: 400, caught: "leader stuck in snapshot state after the follower's answer was lost; driver now reports the transfer" },
  { seed: 49, steps: 400, caught: "same as 19" },
  { seed: 67, steps: 400, caught: "same as 19" },
  { seed: 821, steps: 400, caught: "liveness: unbounded client backlog over a 1-message window; clients now keep a window" },
  { seed: 3365, steps: 400, caught: "same as 821, with a removed voter pre-voting forever" },
  { seed: 50298, steps: 2000, caught: "liveness bound too tight for a long catch-up at one entry per Append; bound now grows with the backlog" },
  { seed: 805, steps: 400, lostTails: true, caught: "liveness: the only holder of a lost entry had applied its own removal and never stood; removed nodes asked by an older membership now stand as caretakers" },
  { seed: 7178, steps: 400, lostTails: true, caught: "same as 805, with the removed node's log not ahead of the asker's commit: any such request now lets it stand" },
  { seed: 6831, steps: 400, lostTails: true, pipeline: true, caught: "liveness: a floor waited for evidence from a removed voter that never asked; its caretaker campaign now shows its log" },
  { seed: 6535, steps: 400, lostTails: true, pipeline: true, caught: "sim: a stale caretaker leader's liveness marker was replaced by a later term's entry; the check now proposes again" },
  { seed: 15616, steps: 400, lostTails: true, caught: "liveness: a node that lost every entry (no membership) stood as a caretaker asking no one, its term always one ahead of the real candidate's; a node without voters no longer stands" },
  { seed: 19165, steps: 400, lostTails: true, caught: "same as 15616" },
  { seed: 2898, steps: 400, lostTails: true, pipeline: true, caught: "liveness (pre-vote off): the floor holder sent nothing, so the removed holder of its lost entry never stood, and a stale caretaker never learnt the others' term; a node behind its floor now pre-votes, and a vote request from an earlier term is refused with our term" },
];
