// Turn a request body into a typed value or a 400 that says what is wrong.
import type { z } from 'zod';
import { UserError } from '../errors.ts';

export function parseBody<S extends z.ZodTypeAny>(schema: S, body: unknown): z.infer<S> {
  const r = schema.safeParse(body ?? {});
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.length > 0 ? `${issue.path.join('.')}: ` : '';
  throw new UserError(`invalid request: ${where}${issue.message}`, 400, 'invalid_request');
}
