// A mistake in how the program was invoked. main.ts prints it as one line on stderr and exits 2, the
// conventional "usage" status, so scripts can tell a typo from a failure at runtime (exit 1).
export class UsageError extends Error {
  override readonly name = "UsageError";
  constructor(message: string) {
    super(message);
    if (message.includes("\n")) throw new Error("UsageError message must be one line");
  }
}

export const exitUsage = 2;
