// The one way the console talks to the API: same-origin fetch, bearer token when held,
// `x-sluice-console: 1` always (the `sluice ui` proxy requires it as its CSRF guard).

import { readToken } from "./token";

/** An API refusal: `message` is the API's own text, shown to the user as is. */
export class ApiError extends Error {
  readonly status: number;
  readonly code: string;
  readonly details: unknown;

  constructor(status: number, code: string, message: string, details?: unknown) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.code = code;
    this.details = details;
  }
}

type UnauthorizedListener = (message: string) => void;
const unauthorizedListeners = new Set<UnauthorizedListener>();

/** Be told when the API answers 401, so the sign-in form can show its message. */
export function onUnauthorized(listener: UnauthorizedListener): () => void {
  unauthorizedListeners.add(listener);
  return () => unauthorizedListeners.delete(listener);
}

export type QueryValue = string | number | boolean | null | undefined | string[];

/** Build `path?query`, dropping empty values and repeating array values. */
export function withQuery(path: string, query: Record<string, QueryValue> = {}): string {
  const params = new URLSearchParams();
  for (const [key, value] of Object.entries(query)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((item) => params.append(key, item));
    else params.set(key, String(value));
  }
  const text = params.toString();
  return text ? `${path}?${text}` : path;
}

async function request<T>(method: string, path: string, body?: unknown): Promise<T> {
  const headers: Record<string, string> = { "x-sluice-console": "1", accept: "application/json" };
  const token = readToken();
  if (token) headers.authorization = `Bearer ${token}`;
  if (body !== undefined) headers["content-type"] = "application/json";
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      credentials: "same-origin",
    });
  } catch {
    throw new ApiError(0, "network", "Cannot reach the Sluice API: check that the server (or `sluice ui`) is still running, then reload.");
  }
  if (response.status === 204) return undefined as T;
  const text = await response.text();
  let payload: unknown = undefined;
  try {
    payload = text ? JSON.parse(text) : undefined;
  } catch {
    payload = undefined;
  }
  if (!response.ok) {
    const errorBody = (payload ?? {}) as { error?: string; message?: string; details?: unknown };
    const message =
      errorBody.message ?? `The API answered ${response.status} ${response.statusText} to ${method} ${path}.`;
    const error = new ApiError(response.status, errorBody.error ?? "http_error", message, errorBody.details);
    if (response.status === 401) unauthorizedListeners.forEach((listener) => listener(message));
    throw error;
  }
  return payload as T;
}

/** GET a JSON resource. */
export function apiGet<T>(path: string, query?: Record<string, QueryValue>): Promise<T> {
  return request<T>("GET", withQuery(path, query));
}

/** POST a JSON body (or none). */
export function apiPost<T>(path: string, body?: unknown): Promise<T> {
  return request<T>("POST", path, body);
}

/** PATCH a JSON body. */
export function apiPatch<T>(path: string, body: unknown): Promise<T> {
  return request<T>("PATCH", path, body);
}

/** The text to show for any error thrown by a query or mutation. */
export function errorMessage(error: unknown): string {
  if (error instanceof ApiError) return error.message;
  if (error instanceof Error) return error.message;
  return String(error);
}

/** Path segment escaping for names that may hold any character. */
export function seg(value: string): string {
  return encodeURIComponent(value);
}
