import { z } from 'zod';

const seconds = z.number().positive().max(3600);

/** A hook command: an argv array, or one executable path. Never run through a shell, so nothing is re-split. */
const command = z.union([z.string().min(1).transform((s) => [s]), z.array(z.string().min(1)).min(1)]);

/**
 * The manager application's part of the sidecar config (`manager`): role hooks and the manager's health URL.
 * Hooks get `<role> <term> <cluster> <node>` appended to their argv and the same as `HA_*` environment
 * variables. See docs/manager.md "Role hooks" for their order, timing and contract (idempotent).
 */
export const managerSchema = z
  .object({
    hooks: z
      .object({
        /** Runs once this node leads (Postgres promoted and writable, the file mirror serving). */
        leader: command.optional(),
        /** Runs when this node follows a leader of a new term, and first thing on a step-down. */
        standby: command.optional(),
        /** Runs when the sidecar stops gracefully. */
        stopping: command.optional(),
      })
      .strict()
      .default({}),
    /** A hook still running after this long is killed (SIGTERM, then SIGKILL) and counts as failed. */
    hookTimeout: seconds.default(20),
    /** A failed `leader` hook is run again after this long. */
    leaderHookRetryDelay: seconds.default(5),
    /** After this many failed `leader` hooks in a row the leader hands over to a fit standby. */
    leaderHookMaxFailures: z.number().int().min(1).max(100).default(3),
    /** The manager's own health check on this node; 2xx is healthy. Folded into `GET /leader` on the leader. */
    healthUrl: z.url({ protocol: /^https?$/ }).optional(),
    /** How often the health URL is asked, and how long one answer may take. */
    healthInterval: seconds.default(1),
    healthTimeout: seconds.default(1),
    /** A leader whose manager has been unhealthy this long hands over to a fit standby. */
    unhealthyHandOverAfter: seconds.default(30),
  })
  .strict()
  .superRefine((m, ctx) => {
    if (m.healthTimeout > m.healthInterval) {
      ctx.addIssue({ code: 'custom', path: ['healthTimeout'], message: `must not exceed healthInterval (${m.healthInterval} s), or checks pile up` });
    }
  });

export type ManagerConfig = z.infer<typeof managerSchema>;
export type HookEvent = keyof ManagerConfig['hooks'];
