// Brokers a client could not reach, remembered for a short while. While marked, a NOT_LEADER hint naming
// one is not believed (a follower that missed the failover still names the dead leader). A mark is
// forgotten after forgetMs, not only on the next success: that success may have to go through that very
// broker (the leader again after a partition heals), and while it is marked the replicas' correct hints
// naming it would be ignored forever. 1 s is longer than an election plus followers learning its result.
export const UNREACHABLE_FORGET_MS = 1000;

export class UnreachableBrokers {
  private marked = new Map<number, number>(); // broker id -> when we last failed to reach it

  constructor(private readonly forgetMs = UNREACHABLE_FORGET_MS) {}

  mark(id: number): void {
    this.marked.set(id, Date.now());
  }

  has(id: number): boolean {
    const at = this.marked.get(id);
    if (at === undefined) return false;
    if (Date.now() - at < this.forgetMs) return true;
    this.marked.delete(id);
    return false;
  }

  ids(): number[] {
    return [...this.marked.keys()].filter((id) => this.has(id));
  }

  clear(): void {
    this.marked.clear();
  }
}
