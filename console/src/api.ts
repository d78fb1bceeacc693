// The one place the console talks to the node's REST API (/api/v1). Signing in sets an
// HttpOnly session cookie; every state-changing request echoes the session's CSRF token.

export class ApiError extends Error {
  constructor(
    public status: number,
    message: string,
    public code?: string,
    public field?: string,
  ) {
    super(message);
  }
}

let csrfToken: string | null = null;

export function setCsrfToken(token: string | null) {
  csrfToken = token;
}

// Signed in with an API token instead of a password: sent as a bearer token (no cookie, so no
// CSRF token either). Kept for the tab's life in sessionStorage, so a reload stays signed in.
const BEARER_KEY = "ferry.token";
let bearerToken: string | null = sessionStorage.getItem(BEARER_KEY);

export function setBearerToken(token: string | null) {
  bearerToken = token;
  if (token) sessionStorage.setItem(BEARER_KEY, token);
  else sessionStorage.removeItem(BEARER_KEY);
}

export function hasBearerToken(): boolean {
  return !!bearerToken;
}

/** The credentials headers of a request (for requests made without `api`, e.g. uploads). */
export function authHeaders(method: string): Record<string, string> {
  const headers: Record<string, string> = {};
  if (bearerToken) headers["Authorization"] = `Bearer ${bearerToken}`;
  else if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
  return headers;
}

export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  init?: { rawBody?: BodyInit; contentType?: string },
): Promise<T> {
  const headers = authHeaders(method);
  let payload: BodyInit | undefined;
  if (init?.rawBody !== undefined) {
    payload = init.rawBody;
    if (init.contentType) headers["Content-Type"] = init.contentType;
  } else if (body !== undefined) {
    payload = JSON.stringify(body);
    headers["Content-Type"] = "application/json";
  }
  const res = await fetch(`/api/v1${path}`, {
    method,
    headers,
    body: payload,
    credentials: "same-origin",
  });
  const text = await res.text();
  let data: any = null;
  try {
    data = text ? JSON.parse(text) : null;
  } catch {
    data = text;
  }
  if (!res.ok) {
    const message =
      data && typeof data === "object" && typeof data.error === "string"
        ? data.error
        : `${res.status} ${res.statusText}`;
    throw new ApiError(res.status, message, data?.code, data?.field);
  }
  return data as T;
}
