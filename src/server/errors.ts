// How a failure becomes an HTTP answer: user mistakes are 4xx with the library's own message.
import { SondeError } from '../errors.js';

/** A request the server refuses, with the status and the one-line reason the page shows. */
export class ApiError extends Error {
  constructor(
    readonly status: number,
    message: string,
  ) {
    super(message);
  }
}

/** The JSON body of every error answer (the CLI's `--json` error shape). */
export interface ErrorBody {
  error: { type: string; message: string };
}

/** Status and body for anything a handler threw: ApiError and Sonde's user errors are 4xx, the rest 500. */
export function errorAnswer(e: unknown): { status: number; body: ErrorBody } {
  if (e instanceof ApiError)
    return { status: e.status, body: body(e.status < 500 ? 'request' : 'server', e.message) };
  if (e instanceof SondeError) return { status: 400, body: body(e.constructor.name, e.message) };
  const fastifyStatus = (e as { statusCode?: number }).statusCode;
  if (typeof fastifyStatus === 'number' && fastifyStatus >= 400 && fastifyStatus < 500)
    return { status: fastifyStatus, body: body('request', (e as Error).message) };
  return { status: 500, body: body('internal', e instanceof Error ? e.message : String(e)) };
}

function body(type: string, message: string): ErrorBody {
  return { error: { type, message } };
}
