// Small pieces every page uses: loading data (with polling and live refresh), errors, status
// badges, byte sizes, and the signed-in user's permissions.
import { createContext, useCallback, useContext, useEffect, useRef, useState, type ReactNode } from "react";
import { api, ApiError } from "../api";
import { useI18n } from "../i18n";
import { onLiveEvent } from "./live";

export type Me = { actor: string; roles: string[]; permissions: string[]; csrf_token?: string };

const MeContext = createContext<Me | null>(null);

export function MeProvider({ me, children }: { me: Me; children: ReactNode }) {
  return <MeContext.Provider value={me}>{children}</MeContext.Provider>;
}

/** Whether the signed-in principal has `permission` (the node checks again on every request). */
export function useCan(): (permission: string) => boolean {
  const me = useContext(MeContext);
  return (p) => !!me && me.permissions.includes(p);
}

export type Loaded<T> = { data: T | undefined; error: ApiError | Error | undefined; reload: () => void };

/**
 * GETs `path` (under /api/v1) and keeps it fresh: again after every live event from the node
 * and, while `pollMs` is set, on that interval (the fallback when live events are not offered).
 * `null` loads nothing.
 */
export function useApi<T>(path: string | null, pollMs?: number): Loaded<T> {
  const [data, setData] = useState<T | undefined>(undefined);
  const [error, setError] = useState<ApiError | Error | undefined>(undefined);
  const [tick, setTick] = useState(0);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  // A slow answer for an earlier path must not overwrite the current one.
  const current = useRef(path);
  current.current = path;
  useEffect(() => {
    setData(undefined);
    setError(undefined);
  }, [path]);
  useEffect(() => {
    if (path === null) return;
    let alive = true;
    api<T>("GET", path)
      .then((d) => {
        if (alive && current.current === path) {
          setData(d);
          setError(undefined);
        }
      })
      .catch((e) => {
        if (alive && current.current === path) setError(e);
      });
    return () => {
      alive = false;
    };
  }, [path, tick]);
  useEffect(() => {
    if (path === null) return;
    const off = onLiveEvent(reload);
    const timer = pollMs ? window.setInterval(reload, pollMs) : undefined;
    return () => {
      off();
      if (timer) window.clearInterval(timer);
    };
  }, [path, pollMs, reload]);
  return { data, error, reload };
}

export function ErrorBox({ error }: { error: unknown }) {
  const { t } = useI18n();
  if (!error) return null;
  const message = error instanceof Error ? error.message : String(error);
  return (
    <p className="error" role="alert" data-testid="error">
      {t("error")}: {message}
    </p>
  );
}

/** Shows the error, or "loading" until `data` is there, else the children. */
export function Loading<T>({ loaded, children }: { loaded: Loaded<T>; children: (data: T) => ReactNode }) {
  const { t } = useI18n();
  if (loaded.error && loaded.data === undefined) return <ErrorBox error={loaded.error} />;
  if (loaded.data === undefined) return <p className="muted">{t("loading")}</p>;
  return <>{children(loaded.data)}</>;
}

/** A job, task, service or query status as a coloured badge, labelled in the user's language. */
export function StatusBadge({ status, testid }: { status: string | null | undefined; testid?: string }) {
  const { t } = useI18n();
  const s = status ?? "unknown";
  const key = `status.${s}`;
  const label = t(key);
  return (
    <span className={`badge status-${s}`} data-testid={testid} data-status={s}>
      {label === key ? s : label}
    </span>
  );
}

export function bytes(n: number | null | undefined): string {
  if (n === null || n === undefined || !Number.isFinite(n)) return "–";
  const units = ["B", "KiB", "MiB", "GiB", "TiB"];
  let v = n;
  let i = 0;
  while (v >= 1024 && i < units.length - 1) {
    v /= 1024;
    i++;
  }
  return `${i === 0 ? v : v.toFixed(1)} ${units[i]}`;
}

export function num(v: unknown, digits = 4): string {
  if (typeof v !== "number" || !Number.isFinite(v)) return "–";
  if (Number.isInteger(v)) return String(v);
  return v.toFixed(digits);
}

/** A stored time (UTC text) in the browser's local time. */
export function when(s: string | null | undefined): string {
  if (!s) return "–";
  const d = new Date(s);
  return Number.isNaN(d.getTime()) ? s : d.toLocaleString();
}

/** A wide table in a box that scrolls sideways on a narrow window. */
export function TableBox({ children, testid }: { children: ReactNode; testid?: string }) {
  return (
    <div className="table-box" data-testid={testid}>
      <table>{children}</table>
    </div>
  );
}

/** Runs a state-changing request, reporting its error; `busy` while it runs. */
export function useAction(): {
  busy: boolean;
  error: unknown;
  run: (f: () => Promise<unknown>) => Promise<boolean>;
  clear: () => void;
} {
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<unknown>(undefined);
  const run = async (f: () => Promise<unknown>) => {
    setBusy(true);
    setError(undefined);
    try {
      await f();
      return true;
    } catch (e) {
      setError(e);
      return false;
    } finally {
      setBusy(false);
    }
  };
  return { busy, error, run, clear: () => setError(undefined) };
}

export function Section({ title, children, testid }: { title: string; children: ReactNode; testid?: string }) {
  return (
    <section className="card" data-testid={testid}>
      <h2>{title}</h2>
      {children}
    </section>
  );
}
