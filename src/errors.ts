// Errors that carry what a person can do about them. The CLI prints `message`
// on one line and exits non-zero; the API returns it as JSON with `status`.
export class UserError extends Error {
  constructor(
    message: string,
    readonly status = 400,
    readonly code = 'bad_request',
  ) {
    super(message);
    this.name = 'UserError';
  }
}

export function errorMessage(err: unknown): string {
  return err instanceof Error ? err.message : String(err);
}
