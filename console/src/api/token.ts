// The operator token of the embedded server, kept for the tab only (sessionStorage), never in
// localStorage: closing the tab forgets it.

const TOKEN_KEY = "sluice.token";

/** The token held by this tab, if any. */
export function readToken(): string | null {
  try {
    return sessionStorage.getItem(TOKEN_KEY);
  } catch {
    return null;
  }
}

/** Keep a token for this tab (empty clears it). */
export function saveToken(token: string): void {
  const trimmed = token.trim();
  if (trimmed) sessionStorage.setItem(TOKEN_KEY, trimmed);
  else sessionStorage.removeItem(TOKEN_KEY);
}

/**
 * Take `#token=...` from the address once (the link `sluice server start` can print), keep it,
 * and remove it from the address bar and history so it is not shared by copy-paste.
 */
export function adoptTokenFromFragment(): void {
  const fragment = window.location.hash.replace(/^#/, "");
  if (!fragment) return;
  const params = new URLSearchParams(fragment);
  const token = params.get("token");
  if (!token) return;
  saveToken(token);
  params.delete("token");
  const rest = params.toString();
  const url = window.location.pathname + window.location.search + (rest ? `#${rest}` : "");
  window.history.replaceState(window.history.state, "", url);
}
