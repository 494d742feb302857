// How a failure becomes an HTTP answer: user mistakes are 4xx with the library's own message.
import { SondeError } from '../errors.js';
import { LIMITS } from './validate.js';

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
/** `bodyLimit`: the refusing route's own limit on its body (an upload route takes more than the rest). */
export function errorAnswer(
  e: unknown,
  bodyLimit: number = LIMITS.bodyBytes,
): { status: number; body: ErrorBody } {
  if (e instanceof ApiError)
    return { status: e.status, body: body(e.status < 500 ? 'request' : 'server', e.message) };
  if (e instanceof SondeError) return { status: 400, body: body(e.constructor.name, e.message) };
  const { statusCode, code } = e as { statusCode?: unknown; code?: unknown };
  if (typeof statusCode === 'number' && statusCode >= 400 && statusCode < 500) {
    const message = (typeof code === 'string' && frameworkMessage(code, bodyLimit)) || (e as Error).message;
    return { status: statusCode, body: body('request', message) };
  }
  return { status: 500, body: body('internal', e instanceof Error ? e.message : String(e)) };
}

/** The framework's refusals of a body, said the way the page shows them (a function: validate.ts imports this file). */
function frameworkMessage(code: string, bodyLimit: number): string | undefined {
  return {
    FST_ERR_CTP_BODY_TOO_LARGE: `the request body is over the server's limit of ${bodyLimit / 1024} KB`,
    FST_ERR_CTP_INVALID_JSON_BODY: 'the request body is not valid JSON',
    FST_ERR_CTP_EMPTY_JSON_BODY: 'the request body is empty: send a JSON object',
    FST_ERR_CTP_INVALID_MEDIA_TYPE: 'send the request body as application/json',
    FST_ERR_MAX_PARAM_LENGTH: 'a part of the address is too long',
    FST_ERR_BAD_URL: 'the address is not valid',
  }[code];
}

function body(type: string, message: string): ErrorBody {
  return { error: { type, message } };
}
