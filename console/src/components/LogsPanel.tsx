// A run's logs, tailing live: the cursor API is polled every 2 s while the run is not terminal
// (and a few times after, for the last lines the worker flushes), with a level filter and search.

import { useEffect, useLayoutEffect, useMemo, useRef, useState } from "react";
import { apiGet, seg } from "../api/client";
import type { LogLevel, LogRecord, Page } from "../api/types";
import { formatDateTime } from "../lib/time";
import { ErrorBox } from "./common";

const LEVELS: LogLevel[] = ["DEBUG", "INFO", "WARNING", "ERROR", "CRITICAL"];
const POLL_MS = 2000;
const PAGE_SIZE = 200;
/** Polls after the run ended: the worker's last batch can land just after the final state. */
const POLLS_AFTER_END = 2;
/** Lines kept in the page; older ones are dropped (the CLI can print everything). */
const MAX_LINES = 20_000;

export function LogsPanel({ runId, live }: { runId: string; live: boolean }) {
  const [lines, setLines] = useState<LogRecord[]>([]);
  const [error, setError] = useState<unknown>(null);
  const [loaded, setLoaded] = useState(false);
  const [minLevel, setMinLevel] = useState<LogLevel>("DEBUG");
  const [search, setSearch] = useState("");
  const liveRef = useRef(live);
  liveRef.current = live;
  const listRef = useRef<HTMLOListElement>(null);
  const stickToBottom = useRef(true);

  // The loop stops once the run has ended; a retry makes the run live again and restarts it.
  const [round, setRound] = useState(0);
  const stopped = useRef(false);
  useEffect(() => {
    if (live && stopped.current) setRound((value) => value + 1);
  }, [live]);
  const cursorRef = useRef<{ runId: string; cursor: string | null; seen: Set<string> }>({ runId, cursor: null, seen: new Set() });

  useEffect(() => {
    let cancelled = false;
    let timer: number | undefined;
    let pollsAfterEnd = POLLS_AFTER_END;
    stopped.current = false;
    if (cursorRef.current.runId !== runId) {
      cursorRef.current = { runId, cursor: null, seen: new Set() };
      setLines([]);
      setLoaded(false);
    }
    const position = cursorRef.current;
    const seen = position.seen;

    async function poll() {
      try {
        // Read every page available now; an empty or short page means caught up.
        for (;;) {
          const page: Page<LogRecord> = await apiGet(`/flow-runs/${seg(runId)}/logs`, { limit: PAGE_SIZE, cursor: position.cursor });
          if (cancelled) return;
          position.cursor = page.next_cursor ?? position.cursor;
          const fresh = page.items.filter((record) => !seen.has(record.id));
          fresh.forEach((record) => seen.add(record.id));
          if (fresh.length) setLines((previous) => previous.concat(fresh).slice(-MAX_LINES));
          if (page.items.length < PAGE_SIZE || !page.next_cursor) break;
        }
        setError(null);
      } catch (caught) {
        if (cancelled) return;
        setError(caught);
      }
      setLoaded(true);
      if (liveRef.current || pollsAfterEnd-- > 0) timer = window.setTimeout(poll, POLL_MS);
      else stopped.current = true;
    }
    void poll();
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [runId, round]);

  const visible = useMemo(() => {
    const threshold = LEVELS.indexOf(minLevel);
    const needle = search.trim().toLowerCase();
    return lines.filter(
      (line) =>
        LEVELS.indexOf(line.level) >= threshold &&
        (!needle || line.message.toLowerCase().includes(needle) || line.logger.toLowerCase().includes(needle)),
    );
  }, [lines, minLevel, search]);

  // Follow the tail unless the reader scrolled up.
  useLayoutEffect(() => {
    const list = listRef.current;
    if (list && stickToBottom.current) list.scrollTop = list.scrollHeight;
  }, [visible]);

  return (
    <div className="logs" data-loaded={loaded ? "true" : undefined}>
      <div className="toolbar">
        <label>
          Level{" "}
          <select data-testid="log-level" value={minLevel} onChange={(event) => setMinLevel(event.target.value as LogLevel)}>
            {LEVELS.map((level) => (
              <option key={level} value={level}>
                {level === "DEBUG" ? "All levels" : `${level} and above`}
              </option>
            ))}
          </select>
        </label>
        <label>
          Search{" "}
          <input
            data-testid="log-search"
            type="search"
            value={search}
            placeholder="text in message or logger"
            onChange={(event) => setSearch(event.target.value)}
          />
        </label>
        <span className="muted" aria-live="polite">
          {visible.length} of {lines.length} lines{live ? " · live" : ""}
        </span>
      </div>
      <ErrorBox error={error} />
      <ol
        ref={listRef}
        className="log-lines"
        tabIndex={0}
        aria-label="Log lines"
        onScroll={(event) => {
          const list = event.currentTarget;
          stickToBottom.current = list.scrollHeight - list.scrollTop - list.clientHeight < 24;
        }}
      >
        {visible.map((line) => (
          <li key={line.id} data-testid="log-line" className={`log-${line.level.toLowerCase()}`}>
            <span className="log-time">{formatDateTime(line.timestamp)}</span>
            <span className="log-level">{line.level}</span>
            <span className="log-logger">{line.logger}</span>
            <span className="log-message">{line.message}</span>
          </li>
        ))}
        {loaded && lines.length === 0 ? <li className="muted">No log lines yet.</li> : null}
      </ol>
    </div>
  );
}
