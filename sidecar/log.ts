import winston from 'winston';

/** Fields every log line carries, so an operator can grep one node's view of one term. */
export interface LogContext {
  node: string;
  role: string;
  term: number;
}

export type Logger = winston.Logger;

/**
 * Structured JSON logs on stderr (stdout stays free for the CLI's own output). The context object is read at
 * every line, so a role or term change shows up on the next line without re-creating the logger.
 */
export function createLogger(context: LogContext | Record<string, string>, level = process.env.LOG_LEVEL ?? 'info'): Logger {
  const addContext = winston.format((info) => Object.assign(info, context))();
  return winston.createLogger({
    level,
    format: winston.format.combine(winston.format.timestamp(), addContext, winston.format.json()),
    transports: [new winston.transports.Console({ stderrLevels: ['error', 'warn', 'info', 'debug'] })],
  });
}
