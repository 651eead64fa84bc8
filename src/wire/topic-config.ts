// Per-topic settings, as `topic create --config key=value` takes them and SetTopicRole carries them.
// Kafka's names, so an operator's habits carry over. The sentinel refuses a topic whose config does not
// parse (unknown key, bad number); the broker turns the same text into its partition-log options.

export interface TopicSettings {
  retentionMs?: number; // delete sealed segments whose newest record is older than this; -1 never
  retentionBytes?: number; // ... while the partition, without the oldest segment, still holds this much; -1 never
  segmentBytes?: number; // roll the active segment at this size
  segmentMs?: number; // ... or when it is this old, so age-based retention also frees a quiet partition
}

const KEYS: Record<string, { field: keyof TopicSettings; min: number; max: number }> = {
  "retention.ms": { field: "retentionMs", min: -1, max: Number.MAX_SAFE_INTEGER },
  "retention.bytes": { field: "retentionBytes", min: -1, max: Number.MAX_SAFE_INTEGER },
  "segment.bytes": { field: "segmentBytes", min: 1024, max: 1024 * 1024 * 1024 },
  "segment.ms": { field: "segmentMs", min: 1000, max: Number.MAX_SAFE_INTEGER },
};

export const TOPIC_CONFIG_KEYS = Object.keys(KEYS);

/** Parses a topic's config; throws an Error naming the key for anything unknown or out of range. */
export function parseTopicConfig(config: Record<string, string>): TopicSettings {
  const out: TopicSettings = {};
  for (const [key, text] of Object.entries(config)) {
    const spec = KEYS[key];
    if (!spec) throw new Error(`unknown topic config "${key}"; known: ${TOPIC_CONFIG_KEYS.join(", ")}`);
    const n = /^-?\d+$/.test(text.trim()) ? Number(text.trim()) : NaN;
    if (!Number.isSafeInteger(n) || n < spec.min || n > spec.max || (n < 0 && n !== -1)) {
      throw new Error(`topic config ${key}=${text}: want an integer in [${spec.min}, ${spec.max}]`);
    }
    out[spec.field] = n;
  }
  return out;
}
