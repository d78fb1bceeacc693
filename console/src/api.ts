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

export async function api<T = unknown>(
  method: string,
  path: string,
  body?: unknown,
  init?: { rawBody?: BodyInit; contentType?: string },
): Promise<T> {
  const headers: Record<string, string> = {};
  if (method !== "GET" && csrfToken) headers["X-CSRF-Token"] = csrfToken;
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
