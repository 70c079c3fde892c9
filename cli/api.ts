import { z } from 'zod';
import { SidecarError } from '../sidecar/errors.js';
import type { ApiAnswer } from './leader-client.js';

/**
 * The shapes hactl reads from the sidecar API. Only the fields hactl uses are checked; anything else a
 * newer sidecar sends is kept (loose objects), so `--json` passes it through untouched.
 */

const optionalNumber = z.number().nullable().optional();

export const MemberSchema = z.looseObject({
  name: z.string(),
  role: z.string().nullable().optional(),
  state: z.string().nullable().optional(),
  apiUrl: z.string().nullable().optional(),
  address: z.string().nullable().optional(),
  lagBytes: optionalNumber,
  timeline: optionalNumber,
  files: z.unknown().optional(),
  alive: z.boolean().nullable().optional(),
  streaming: z.boolean().nullable().optional(),
  pgRole: z.string().nullable().optional(),
  /** With `tls`: the node's certificate's expiry (sidecar/shared/certificates.ts, certificateExpiry). */
  tls: z.looseObject({ validTo: z.string(), daysLeft: z.number(), expiring: z.boolean() }).nullable().optional(),
});

export const LeaderSchema = z.looseObject({
  name: z.string(),
  apiUrl: z.string().nullable().optional(),
  term: optionalNumber,
  since: z.unknown().optional(),
});

export const ClusterViewSchema = z.looseObject({
  cluster: z.string().nullable().optional(),
  term: optionalNumber,
  leader: LeaderSchema.nullable().optional(),
  paused: z.boolean().nullable().optional(),
  members: z.array(MemberSchema),
  status: z.unknown().optional(),
  /** Why the answering node could not read the members from Consul (its list is then empty, not "none"). */
  consulError: z.string().nullable().optional(),
});

export const HistoryEventSchema = z.looseObject({
  term: optionalNumber,
  at: z.unknown().optional(),
  kind: z.string().nullable().optional(),
  leader: z.string().nullable().optional(),
  previous: z.string().nullable().optional(),
  reason: z.unknown().optional(),
});

export const HistorySchema = z.array(HistoryEventSchema);

export type Member = z.infer<typeof MemberSchema>;
export type ClusterView = z.infer<typeof ClusterViewSchema>;
export type HistoryEvent = z.infer<typeof HistoryEventSchema>;

/** Validates an answer body; a body of another shape is `bad_answer` (exit 1) naming the manager and field. */
export function parseAnswer<T>(schema: z.ZodType<T>, answer: ApiAnswer, what: string): T {
  const parsed = schema.safeParse(answer.body);
  if (parsed.success) return parsed.data;
  const issue = parsed.error.issues[0];
  const where = issue && issue.path.length > 0 ? ` at ${issue.path.join('.')}` : '';
  throw new SidecarError(
    'bad_answer',
    `${answer.manager} answered ${what} in an unexpected shape${where}: ${issue?.message ?? 'invalid'}`,
    502,
    { manager: answer.manager },
  );
}

/** The human text of a success answer: its `message` when it has one. */
export function answerMessage(answer: ApiAnswer): string | undefined {
  const body = answer.body;
  if (typeof body === 'object' && body !== null && 'message' in body) {
    const message = (body as { message?: unknown }).message;
    if (typeof message === 'string' && message !== '') return message;
  }
  return undefined;
}
