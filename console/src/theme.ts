// Light/dark theme: the system preference until the user picks one, then their pick
// (remembered in localStorage), applied as `data-theme` on <html> for the CSS variables.

import { useCallback, useState } from "react";

export type Theme = "light" | "dark";
const THEME_KEY = "sluice.theme";

function storedTheme(): Theme | null {
  try {
    const value = localStorage.getItem(THEME_KEY);
    return value === "light" || value === "dark" ? value : null;
  } catch {
    return null;
  }
}

function systemTheme(): Theme {
  return window.matchMedia?.("(prefers-color-scheme: dark)").matches ? "dark" : "light";
}

/** The theme in force now. */
export function currentTheme(): Theme {
  return storedTheme() ?? systemTheme();
}

/** Set `data-theme` before the first render so the page does not flash. */
export function applyInitialTheme(): void {
  document.documentElement.dataset.theme = currentTheme();
}

/** The theme and a toggle that remembers the choice. */
export function useTheme(): [Theme, () => void] {
  const [theme, setTheme] = useState<Theme>(currentTheme);
  const toggle = useCallback(() => {
    setTheme((previous) => {
      const next: Theme = previous === "dark" ? "light" : "dark";
      try {
        localStorage.setItem(THEME_KEY, next);
      } catch {
        // Storage may be disabled; the toggle still works for this page.
      }
      document.documentElement.dataset.theme = next;
      window.dispatchEvent(new CustomEvent("sluice-theme", { detail: next }));
      return next;
    });
  }, []);
  return [theme, toggle];
}
