// The admin API, same origin, with the operator's bearer token.
// The token lives in sessionStorage only: never localStorage, never a URL query.

const TOKEN_KEY = 'liutong.admin.token';

export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }

  get signInAgain() {
    return this.status === 401 || this.status === 403;
  }
}

/** Move `#access_token=...` (put there by `python -m admin ui`) into sessionStorage and off the address bar. */
export function takeTokenFromFragment() {
  const fragment = new URLSearchParams(window.location.hash.slice(1));
  if (!fragment.has('access_token')) return;
  const value = fragment.get('access_token').trim();
  if (value) sessionStorage.setItem(TOKEN_KEY, value);
  history.replaceState(history.state, '', window.location.pathname + window.location.search);
}

export const token = {
  get: () => sessionStorage.getItem(TOKEN_KEY),
  set: (value) => sessionStorage.setItem(TOKEN_KEY, value.trim()),
  clear: () => sessionStorage.removeItem(TOKEN_KEY),
};

async function errorMessage(response) {
  try {
    const body = await response.json();
    const message = body && body.error && body.error.message;
    if (typeof message === 'string' && message) return message;
  } catch {
    // Not the API's JSON error body (a proxy's HTML page, say): fall through.
  }
  return `The server answered HTTP ${response.status}.`;
}

async function request(path, params, { method = 'GET', body } = {}) {
  const bearer = token.get();
  if (!bearer) throw new ApiError(401, 'Sign in with an admin token.');
  const url = new URL(path, window.location.origin);
  for (const [name, value] of Object.entries(params)) {
    if (value !== undefined && value !== null) url.searchParams.set(name, String(value));
  }
  let response;
  try {
    const headers = { Authorization: `Bearer ${bearer}`, Accept: 'application/json, text/csv' };
    if (body !== undefined) headers['Content-Type'] = 'application/json';
    response = await fetch(url, {
      method,
      headers,
      body: body === undefined ? undefined : JSON.stringify(body),
      cache: 'no-store',
      credentials: 'omit',
      referrerPolicy: 'no-referrer',
    });
  } catch {
    throw new ApiError(0, 'The admin API could not be reached.');
  }
  if (!response.ok) throw new ApiError(response.status, await errorMessage(response));
  return response;
}

export async function getJson(path, params = {}) {
  return (await request(path, params)).json();
}

export async function postJson(path, body) {
  return (await request(path, {}, { method: 'POST', body })).json();
}

function attachmentName(response, fallback) {
  const match = /filename="([^"\\/]+)"/.exec(response.headers.get('content-disposition') || '');
  return match ? match[1] : fallback;
}

/** Links cannot carry the Authorization header: fetch the file, then save it from a Blob. */
export async function download(path, params, fallbackName) {
  const response = await request(path, params);
  const blob = await response.blob();
  const href = URL.createObjectURL(blob);
  const link = document.createElement('a');
  link.href = href;
  link.download = attachmentName(response, fallbackName);
  document.body.append(link);
  link.click();
  link.remove();
  setTimeout(() => URL.revokeObjectURL(href), 10_000);
}
