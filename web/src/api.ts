// REST calls to the gateway (same origin). Every failure becomes an ApiError whose message says
// which call failed and why, in the gateway's own words when it answered with a status body.

export class ApiError extends Error {}

interface StatusBody {
  code?: number;
  message?: string;
}

async function call<T>(method: string, path: string, body?: unknown): Promise<T> {
  let response: Response;
  try {
    response = await fetch(path, {
      method,
      headers: body === undefined ? {} : { "Content-Type": "application/json" },
      body: body === undefined ? undefined : JSON.stringify(body),
    });
  } catch (error) {
    throw new ApiError(`${method} ${path}: the gateway cannot be reached (${String(error)})`);
  }
  const text = await response.text();
  if (!response.ok) {
    throw new ApiError(`${method} ${path} failed: HTTP ${response.status}, ${reason(text)}`);
  }
  try {
    return JSON.parse(text) as T;
  } catch {
    throw new ApiError(`${method} ${path}: the answer is not JSON`);
  }
}

function reason(text: string): string {
  try {
    const status = JSON.parse(text) as StatusBody;
    if (status.message) return status.message;
  } catch {
    // Not the gateway's status body (a proxy's page, say): show its start instead.
  }
  return text.slice(0, 200) || "empty answer";
}

export const getJson = <T>(path: string): Promise<T> => call<T>("GET", path);
export const postJson = <T>(path: string, body: unknown): Promise<T> => call<T>("POST", path, body);

/** Shows `error` in `element`, or clears it with null. */
export function showError(element: HTMLElement, error: unknown): void {
  element.textContent = error === null ? "" : error instanceof Error ? error.message : String(error);
  element.hidden = error === null;
}
