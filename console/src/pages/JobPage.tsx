// One job: status, the task graph coloured by live status, progress, logs, metrics, the
// evaluation plots (ROC, KS, lift, score distribution) and KS table, and the privacy report.
import { useMemo, useState } from "react";
import { api } from "../api";
import { useI18n } from "../i18n";
import { go } from "../router";
import { ErrorBox, Loading, Section, StatusBadge, TableBox, bytes, num, useAction, useApi, useCan, when } from "../components/common";
import { TaskGraph, type SpecTask } from "../components/TaskGraph";
import { EvaluationView, type MetricsArtifact } from "../components/Evaluation";
import { Plot, type Series } from "../components/Plot";

type Task = { task: string; status: string; progress: number; error: string | null; outputs: Record<string, any> | null; updated_at: string };
type JobView = {
  job: {
    id: string;
    initiator: string;
    role: string;
    status: string;
    reason: string | null;
    created_at: string;
    updated_at: string;
    spec: { name?: string; project?: string; parties?: { guest?: string; hosts?: string[]; arbiter?: string | null }; tasks?: SpecTask[] } | null;
  };
  tasks: Task[];
  parties: { party: string; status: string; reason: string | null }[];
  security: string[];
  schedule: { id: string } | null;
};
type LogLine = { seq: number; task: string; at: string; line: string };
type Metric = { task: string; name: string; step: number; value: number | null; at: string };

const FINISHED = ["succeeded", "failed", "cancelled"];

export function JobPage({ id }: { id: string }) {
  const { t } = useI18n();
  const [active, setActive] = useState(true);
  const poll = active ? 2000 : undefined;
  const base = `/jobs/${encodeURIComponent(id)}`;
  const view = useApi<JobView>(base, poll);
  const status = view.data?.job.status;
  const finished = status !== undefined && FINISHED.includes(status);
  if (finished === active) setActive(!finished);
  return (
    <div data-testid="page-job">
      <p>
        <a href="#/jobs">← {t("jobs.title")}</a>
      </p>
      <h1 className="mono">{id}</h1>
      <Loading loaded={view}>
        {(v) => (
          <>
            <Summary v={v} reload={view.reload} />
            <Section title={t("job.graph")}>
              <TaskGraph tasks={v.job.spec?.tasks ?? []} states={v.tasks} />
            </Section>
            <TaskTable tasks={v.tasks} spec={v.job.spec?.tasks ?? []} />
            {v.tasks
              .filter((task) => task.outputs?.metrics?.artifact === "metrics")
              .map((task) => (
                <Section key={task.task} title={t("job.evaluation", { task: task.task })} testid={`eval-${task.task}`}>
                  <EvaluationView m={task.outputs!.metrics as MetricsArtifact} />
                </Section>
              ))}
            <Metrics base={base} poll={poll} />
            <Logs base={base} poll={poll} tasks={v.tasks.map((x) => x.task)} />
            {v.security.length > 0 && (
              <Section title={t("job.security")} testid="job-security">
                <ul className="security">
                  {v.security.map((s) => (
                    <li key={s}>{s}</li>
                  ))}
                </ul>
              </Section>
            )}
            <Privacy key={v.job.status} base={base} />
          </>
        )}
      </Loading>
    </div>
  );
}

function Summary({ v, reload }: { v: JobView; reload: () => void }) {
  const { t } = useI18n();
  const can = useCan();
  const action = useAction();
  const [from, setFrom] = useState("");
  const j = v.job;
  const base = `/jobs/${encodeURIComponent(j.id)}`;
  const parties = j.spec?.parties;
  const cancellable = ["pending_approval", "queued", "running"].includes(j.status);
  const finished = FINISHED.includes(j.status);
  const resumable = j.status === "failed" || j.status === "cancelled";
  const run = async (f: () => Promise<{ job_id?: string }>) => {
    let next: string | undefined;
    const ok = await action.run(async () => {
      next = (await f()).job_id;
    });
    if (ok && next && next !== j.id) go(`jobs/${encodeURIComponent(next)}`);
    else if (ok) reload();
  };
  return (
    <Section title={j.spec?.name ?? t("job.job")}>
      <dl className="facts">
        <dt>{t("jobs.status")}</dt>
        <dd>
          <StatusBadge status={j.status} testid="job-status" />
          {j.reason && <div className="muted small">{j.reason}</div>}
        </dd>
        <dt>{t("jobs.initiator")}</dt>
        <dd>{j.initiator}</dd>
        <dt>{t("jobs.role")}</dt>
        <dd>{j.role}</dd>
        <dt>{t("job.parties")}</dt>
        <dd>
          {parties?.guest && <span className="tag">guest: {parties.guest}</span>}
          {(parties?.hosts ?? []).map((h) => (
            <span key={h} className="tag">
              host: {h}
            </span>
          ))}
          {parties?.arbiter && <span className="tag">arbiter: {parties.arbiter}</span>}
        </dd>
        <dt>{t("job.party_status")}</dt>
        <dd>
          {v.parties.map((p) => (
            <div key={p.party} data-testid={`party-status-${p.party}`}>
              {p.party}: <StatusBadge status={p.status} /> {p.reason && <span className="muted small">{p.reason}</span>}
            </div>
          ))}
        </dd>
        {j.spec?.project && (
          <>
            <dt>{t("job.project")}</dt>
            <dd>{j.spec.project}</dd>
          </>
        )}
        <dt>{t("jobs.created")}</dt>
        <dd>{when(j.created_at)}</dd>
        <dt>{t("job.updated")}</dt>
        <dd>{when(j.updated_at)}</dd>
      </dl>
      {can("run_jobs") && (
        <div className="actions">
          {cancellable && (
            <button
              className="danger"
              data-testid="job-cancel"
              disabled={action.busy}
              onClick={() => window.confirm(t("job.confirm_cancel")) && run(() => api("POST", `${base}/cancel`, { reason: "cancelled in the console" }))}
            >
              {t("job.cancel")}
            </button>
          )}
          {finished && (
            <span className="inline">
              <select data-testid="rerun-from" value={from} onChange={(e) => setFrom(e.target.value)}>
                <option value="">{t("job.rerun_from")}</option>
                {(j.spec?.tasks ?? []).map((task) => (
                  <option key={task.name} value={task.name}>
                    {task.name}
                  </option>
                ))}
              </select>
              <button data-testid="job-rerun" disabled={!from || action.busy} onClick={() => run(() => api("POST", `${base}/rerun`, { from }))}>
                {t("job.rerun")}
              </button>
            </span>
          )}
          {resumable && (
            <button data-testid="job-resume" disabled={action.busy} onClick={() => run(() => api("POST", `${base}/resume`))}>
              {t("job.resume")}
            </button>
          )}
        </div>
      )}
      <ErrorBox error={action.error} />
    </Section>
  );
}

function TaskTable({ tasks, spec }: { tasks: Task[]; spec: SpecTask[] }) {
  const { t } = useI18n();
  const component = new Map(spec.map((s) => [s.name, s.component]));
  return (
    <Section title={t("job.tasks")}>
      <TableBox testid="task-table">
        <thead>
          <tr>
            <th>{t("job.task")}</th>
            <th>{t("job.component")}</th>
            <th>{t("jobs.status")}</th>
            <th>{t("job.progress")}</th>
            <th>{t("job.outputs")}</th>
          </tr>
        </thead>
        <tbody>
          {tasks.map((task) => (
            <tr key={task.task} data-testid={`task-row-${task.task}`}>
              <td>{task.task}</td>
              <td>{component.get(task.task) ?? "–"}</td>
              <td>
                <StatusBadge status={task.status} />
                {task.error && <div className="error small">{task.error}</div>}
              </td>
              <td>
                <progress max={1} value={task.progress} /> {Math.round(task.progress * 100)}%
              </td>
              <td className="small">{outputsLine(task.outputs)}</td>
            </tr>
          ))}
        </tbody>
      </TableBox>
    </Section>
  );
}

/** A task's outputs in a line: datasets with rows, models with versions, metrics headlines. */
function outputsLine(outputs: Record<string, any> | null): string {
  if (!outputs) return "–";
  return Object.entries(outputs)
    .map(([slot, a]) => {
      if (!a || typeof a !== "object") return slot;
      switch (a.artifact) {
        case "dataset":
          return `${slot}: ${a.dataset}${typeof a.rows === "number" ? ` (${a.rows})` : ""}`;
        case "model":
          return `${slot}: ${a.model} v${a.version}`;
        case "metrics":
          return `${slot}: ${Object.entries(a.headline ?? {})
            .map(([k, v]) => `${k} ${num(v)}`)
            .join(", ")}`;
        default:
          return slot;
      }
    })
    .join("; ");
}

const SERIES_COLORS = ["#1565c0", "#c62828", "#2e7d32", "#6a1b9a", "#ef6c00", "#00838f", "#5d4037", "#ad1457"];

function Metrics({ base, poll }: { base: string; poll?: number }) {
  const { t } = useI18n();
  const metrics = useApi<Metric[]>(`${base}/metrics`, poll);
  // Metrics recorded over steps (losses per epoch or tree) are drawn; every metric's latest
  // value is listed.
  const { curves, latest } = useMemo(() => {
    const groups = new Map<string, Metric[]>();
    for (const m of metrics.data ?? []) {
      const k = `${m.task} · ${m.name}`;
      groups.set(k, [...(groups.get(k) ?? []), m]);
    }
    const curves: { key: string; x: number[]; series: Series[] }[] = [];
    const latest: { key: string; value: number | null; step: number }[] = [];
    [...groups.entries()].forEach(([key, rows], i) => {
      rows.sort((a, b) => a.step - b.step);
      const last = rows[rows.length - 1];
      latest.push({ key, value: last.value, step: last.step });
      if (rows.length > 1)
        curves.push({
          key,
          x: rows.map((r) => r.step),
          series: [{ label: key, values: rows.map((r) => r.value), color: SERIES_COLORS[i % SERIES_COLORS.length] }],
        });
    });
    return { curves, latest };
  }, [metrics.data]);
  return (
    <Section title={t("job.metrics")} testid="job-metrics">
      <Loading loaded={metrics}>
        {() =>
          latest.length === 0 ? (
            <p className="muted">{t("job.no_metrics")}</p>
          ) : (
            <>
              <div className="plots">
                {curves.map((c) => (
                  <div key={c.key} className="plot-cell">
                    <h3>{c.key}</h3>
                    <Plot x={c.x} series={c.series} xLabel={t("job.step")} yLabel={c.key.split(" · ")[1]} testid="metric-plot" height={200} />
                  </div>
                ))}
              </div>
              <TableBox>
                <thead>
                  <tr>
                    <th>{t("job.metric")}</th>
                    <th>{t("job.step")}</th>
                    <th>{t("job.value")}</th>
                  </tr>
                </thead>
                <tbody>
                  {latest.map((m) => (
                    <tr key={m.key}>
                      <td>{m.key}</td>
                      <td>{m.step}</td>
                      <td>{num(m.value, 6)}</td>
                    </tr>
                  ))}
                </tbody>
              </TableBox>
            </>
          )
        }
      </Loading>
    </Section>
  );
}

function Logs({ base, poll, tasks }: { base: string; poll?: number; tasks: string[] }) {
  const { t } = useI18n();
  const [task, setTask] = useState("");
  const logs = useApi<LogLine[]>(`${base}/logs${task ? `?task=${encodeURIComponent(task)}` : ""}`, poll);
  return (
    <Section title={t("job.logs")} testid="job-logs">
      <select data-testid="log-task" value={task} onChange={(e) => setTask(e.target.value)}>
        <option value="">{t("job.all_tasks")}</option>
        {tasks.map((x) => (
          <option key={x} value={x}>
            {x}
          </option>
        ))}
      </select>
      <Loading loaded={logs}>
        {(lines) => (
          <pre className="logs">
            {lines.length === 0
              ? t("job.no_logs")
              : lines
                  .slice(-1000)
                  .map((l) => `${l.at.slice(11, 23)}  ${l.task.padEnd(14)} ${l.line}`)
                  .join("\n")}
          </pre>
        )}
      </Loading>
    </Section>
  );
}

type PrivacyTask = {
  task: string;
  component: string;
  status: string;
  kind: string;
  protocols: { protocol: string; statement: string }[];
  disclosures: { from: string; from_role: string; to: string; to_role: string; what: string }[];
  settings: string[];
  bytes: { peer: string; bytes_sent: number; bytes_received: number; messages_sent: number; messages_received: number }[];
  notes: string[];
};
type PrivacyReport = {
  parties: { party: string; role: string }[];
  tasks: PrivacyTask[];
  totals: { peer: string; bytes_sent: number; bytes_received: number; messages_sent: number; messages_received: number }[];
};

/** The report changes only as tasks finish: the page mounts it again (key) when the job's status changes. */
function Privacy({ base }: { base: string }) {
  const { t } = useI18n();
  const report = useApi<PrivacyReport>(`${base}/privacy`);
  return (
    <Section title={t("job.privacy")} testid="privacy-report">
      <Loading loaded={report}>
        {(r) => (
          <>
            {r.tasks.map((task) => (
              <div key={task.task} className="privacy-task">
                <h3>
                  {task.task} <span className="muted">({task.component})</span> <StatusBadge status={task.status} />
                </h3>
                {task.kind === "local" && task.disclosures.length === 0 && <p className="muted small">{t("job.privacy_local")}</p>}
                {task.protocols.map((p) => (
                  <p key={p.protocol} className="small">
                    <strong>{p.protocol}</strong>: {p.statement}
                  </p>
                ))}
                {task.disclosures.length > 0 && (
                  <TableBox>
                    <thead>
                      <tr>
                        <th>{t("job.from")}</th>
                        <th>{t("job.to")}</th>
                        <th>{t("job.reveals")}</th>
                      </tr>
                    </thead>
                    <tbody>
                      {task.disclosures.map((d, i) => (
                        <tr key={i}>
                          <td>
                            {d.from} <span className="muted">({d.from_role})</span>
                          </td>
                          <td>
                            {d.to} <span className="muted">({d.to_role})</span>
                          </td>
                          <td>{d.what}</td>
                        </tr>
                      ))}
                    </tbody>
                  </TableBox>
                )}
                {task.settings.length > 0 && (
                  <ul className="small">
                    {task.settings.map((s) => (
                      <li key={s}>{s}</li>
                    ))}
                  </ul>
                )}
                {task.notes.map((n) => (
                  <p key={n} className="muted small">
                    {n}
                  </p>
                ))}
              </div>
            ))}
            {r.totals.length > 0 && (
              <>
                <h3>{t("job.traffic")}</h3>
                <TableBox>
                  <thead>
                    <tr>
                      <th>{t("job.peer")}</th>
                      <th>{t("job.sent")}</th>
                      <th>{t("job.received")}</th>
                      <th>{t("job.messages")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {r.totals.map((b) => (
                      <tr key={b.peer}>
                        <td>{b.peer}</td>
                        <td>{bytes(b.bytes_sent)}</td>
                        <td>{bytes(b.bytes_received)}</td>
                        <td>
                          {b.messages_sent} / {b.messages_received}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </TableBox>
              </>
            )}
          </>
        )}
      </Loading>
    </Section>
  );
}
