// Live updates from the node: one EventSource on GET /api/v1/events (server-sent events about
// jobs and services) shared by every page. Each event only says "something changed"; the
// pages that listen fetch again what they show, so an event's format can grow without the
// console knowing it. Where the node offers no event stream the pages' polling carries on.
import { hasBearerToken } from "../api";

type Listener = () => void;

const listeners = new Set<Listener>();
let source: EventSource | null = null;
let gaveUp = false;
let pending: number | undefined;

function notify() {
  // Several events in a burst (a job's tasks finishing together) make one refresh.
  if (pending !== undefined) return;
  pending = window.setTimeout(() => {
    pending = undefined;
    for (const l of [...listeners]) l();
  }, 300);
}

function open() {
  // EventSource cannot send a bearer token: signed in with an API token, the pages poll.
  if (source || gaveUp || typeof EventSource === "undefined" || hasBearerToken()) return;
  source = new EventSource("/api/v1/events", { withCredentials: true });
  source.onmessage = notify;
  for (const kind of ["job", "task", "service", "approval"]) source.addEventListener(kind, notify);
  source.onerror = () => {
    // A closed stream (404 from a node without events, or 401 after signing out) is not
    // retried; a dropped connection (CONNECTING) the browser retries by itself.
    if (source && source.readyState === EventSource.CLOSED) {
      source = null;
      gaveUp = true;
    }
  };
}

/** Calls `listener` after live events; returns the unsubscribe function. */
export function onLiveEvent(listener: Listener): () => void {
  listeners.add(listener);
  open();
  return () => {
    listeners.delete(listener);
  };
}

/** Whether the node's event stream is open (the console then polls less). */
export function liveConnected(): boolean {
  return source !== null && source.readyState === EventSource.OPEN;
}

/** After signing in again, try the stream again. */
export function resetLive() {
  source?.close();
  source = null;
  gaveUp = false;
}
