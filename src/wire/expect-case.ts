import { ErrorCode } from "../proto/goulette_pb";
import { WireError, type Body, type BodyCase, type BodyOf } from "./errors";

/**
 * Unwraps the response case a caller expects. Throws the WireError the responder sent, either as an
 * ErrorResponse body or in the response's own `error` field, or UNKNOWN for an unexpected case.
 */
export function expectCase<C extends BodyCase>(body: Body, expected: C): BodyOf<C> {
  if (body.case === "error") {
    const err = body.value.error;
    throw err ? WireError.fromProto(err) : new WireError(ErrorCode.UNKNOWN, "error response without an error");
  }
  if (body.case !== expected) {
    throw new WireError(ErrorCode.UNKNOWN, `expected ${expected}, got ${body.case ?? "an empty body"}`);
  }
  const value = body.value as BodyOf<C>;
  const err = (value as { error?: { code: ErrorCode } }).error;
  if (err !== undefined && err.code !== ErrorCode.NONE) throw WireError.fromProto(err as Parameters<typeof WireError.fromProto>[0]);
  return value;
}
