import { describe, expect, test } from "bun:test";
import { parseTopicConfig } from "../../src/wire";

describe("topic config", () => {
  test("Kafka's keys become partition-log options; -1 means never", () => {
    expect(parseTopicConfig({ "retention.ms": "86400000", "retention.bytes": "-1", "segment.bytes": "1048576", "segment.ms": "3600000" })).toEqual({
      retentionMs: 86_400_000,
      retentionBytes: -1,
      segmentBytes: 1_048_576,
      segmentMs: 3_600_000,
    });
    expect(parseTopicConfig({})).toEqual({});
  });

  test("unknown keys and values out of range are refused, naming the key", () => {
    expect(() => parseTopicConfig({ "retention.hours": "1" })).toThrow(/unknown topic config "retention.hours"; known: retention.ms/);
    expect(() => parseTopicConfig({ "retention.ms": "1.5" })).toThrow(/retention.ms=1.5/);
    expect(() => parseTopicConfig({ "retention.ms": "-2" })).toThrow(/retention.ms=-2/);
    expect(() => parseTopicConfig({ "segment.bytes": "12" })).toThrow(/segment.bytes=12: want an integer in \[1024/);
    expect(() => parseTopicConfig({ "segment.ms": "" })).toThrow(/segment.ms=/);
  });
});
