import { describe, expect, test } from "bun:test";
import fc from "fast-check";
import { HealthTracker } from "../../src/sentinel/health";

const config = { suspiciousAfterMs: 600, downAfterMs: 1500 };

describe("HealthTracker", () => {
  test("healthy -> suspicious -> down after the configured silences", () => {
    const h = new HealthTracker(config);
    h.beat(1, 0);
    expect(h.evaluate(599)).toEqual([]);
    expect(h.evaluate(600)).toEqual([{ broker: 1, from: "healthy", to: "suspicious", silentMs: 600 }]);
    expect(h.isAlive(1)).toBe(true);
    expect(h.isHealthy(1)).toBe(false);
    expect(h.evaluate(1499)).toEqual([]);
    expect(h.evaluate(1500)).toEqual([{ broker: 1, from: "suspicious", to: "down", silentMs: 1500 }]);
    expect(h.evaluate(5000)).toEqual([]); // down stays down without repeating the transition
  });

  test("a long silence seen at once goes straight to down", () => {
    const h = new HealthTracker(config);
    h.beat(1, 0);
    expect(h.evaluate(2000)).toEqual([{ broker: 1, from: "healthy", to: "down", silentMs: 2000 }]);
  });

  test("a beat brings a broker back and reports where it came from", () => {
    const h = new HealthTracker(config);
    h.beat(2, 0);
    h.evaluate(1600);
    expect(h.beat(2, 1700)).toEqual({ broker: 2, from: "down", to: "healthy", silentMs: 1700 });
    expect(h.isHealthy(2)).toBe(true);
    expect(h.beat(2, 1800)).toBeUndefined();
  });

  test("leave and markDown", () => {
    const h = new HealthTracker(config);
    h.beat(1, 0);
    h.beat(2, 0);
    expect(h.leave(1)?.to).toBe("left");
    expect(h.evaluate(10_000).map((t) => t.broker)).toEqual([2]); // a left broker is not declared down
    h.beat(3, 10_000);
    expect(h.markDown(3, 10_010)).toEqual({ broker: 3, from: "healthy", to: "down", silentMs: 10 });
    expect(h.markDown(3, 10_020)).toBeUndefined();
  });

  test("a stall of the sentinel itself is forgiven, not blamed on the brokers", () => {
    const h = new HealthTracker(config);
    h.beat(1, 0);
    h.beat(2, 0);
    expect(h.evaluate(500)).toEqual([]);
    h.forgive(1_000); // the sentinel was paused for a second: their beats are queued, unread
    expect(h.evaluate(1_500)).toEqual([]);
    expect(h.health(1)).toBe("healthy");
    expect(h.evaluate(1_600).map((t) => t.to)).toEqual(["suspicious", "suspicious"]);
  });

  test("rejects inconsistent configuration", () => {
    expect(() => new HealthTracker({ suspiciousAfterMs: 500, downAfterMs: 500 })).toThrow();
  });

  test("property: health is a function of the silence since the last beat", () => {
    fc.assert(
      fc.property(fc.array(fc.tuple(fc.boolean(), fc.integer({ min: 0, max: 2000 })), { maxLength: 60 }), (steps) => {
        const h = new HealthTracker(config);
        let now = 0;
        let last = 0;
        h.beat(7, 0);
        for (const [beat, dt] of steps) {
          now += dt;
          if (beat) {
            h.beat(7, now);
            last = now;
          }
          h.evaluate(now);
          const silent = now - last;
          const expected = silent >= 1500 ? "down" : silent >= 600 ? "suspicious" : "healthy";
          expect(h.health(7)).toBe(expected);
        }
      }),
      { numRuns: 200, seed: 7 },
    );
  });
});
