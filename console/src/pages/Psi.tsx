// PSI results: the psi tasks of this node's jobs, what each found, and the intersection's
// rows on this node to download (the dataset the task registered).
import { useEffect, useState } from "react";
import { api } from "../api";
import { useI18n } from "../i18n";
import { ErrorBox, Section, StatusBadge, TableBox, bytes, useApi, useCan, when } from "../components/common";
import type { JobRow } from "./Jobs";

type PsiRow = {
  job: JobRow;
  task: string;
  status: string;
  dataset?: string;
  report?: Record<string, unknown>;
};
type JobDetail = {
  job: { spec: { tasks?: { name: string; component: string }[] } | null };
  tasks: { task: string; status: string; outputs: Record<string, any> | null }[];
};

/** How many of the newest jobs are looked through (one request each). */
const JOBS_SCANNED = 40;

export function Psi() {
  const { t } = useI18n();
  const can = useCan();
  const jobs = useApi<JobRow[]>("/jobs", 15_000);
  const [rows, setRows] = useState<PsiRow[] | null>(null);
  const [error, setError] = useState<unknown>(undefined);
  const key = (jobs.data ?? []).map((j) => `${j.id}:${j.status}`).join(",");
  useEffect(() => {
    if (!jobs.data) return;
    let alive = true;
    const newest = [...jobs.data].sort((a, b) => b.created_at.localeCompare(a.created_at)).slice(0, JOBS_SCANNED);
    Promise.all(
      newest.map(async (job) => {
        const d = await api<JobDetail>("GET", `/jobs/${encodeURIComponent(job.id)}`);
        const psiTasks = new Set((d.job.spec?.tasks ?? []).filter((x) => x.component === "psi").map((x) => x.name));
        return d.tasks
          .filter((x) => psiTasks.has(x.task))
          .map((x): PsiRow => {
            const out = x.outputs?.data;
            return { job, task: x.task, status: x.status, dataset: out?.dataset, report: out?.report };
          });
      }),
    )
      .then((all) => alive && setRows(all.flat()))
      .catch((e) => alive && setError(e));
    return () => {
      alive = false;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key]);
  return (
    <div data-testid="page-psi">
      <h1>{t("psi.title")}</h1>
      <Section title={t("psi.results")}>
        <ErrorBox error={error ?? jobs.error} />
        {rows === null ? (
          <p className="muted">{t("loading")}</p>
        ) : rows.length === 0 ? (
          <p className="muted">{t("psi.none")}</p>
        ) : (
          <TableBox testid="psi-table">
            <thead>
              <tr>
                <th>{t("psi.job")}</th>
                <th>{t("psi.task")}</th>
                <th>{t("jobs.status")}</th>
                <th>{t("psi.protocol")}</th>
                <th>{t("psi.input_rows")}</th>
                <th>{t("psi.intersection")}</th>
                <th>{t("psi.traffic")}</th>
                <th>{t("psi.output")}</th>
                <th>{t("jobs.created")}</th>
              </tr>
            </thead>
            <tbody>
              {rows.map((r) => {
                const rep = r.report ?? {};
                const n = (k: string) => (typeof rep[k] === "number" ? (rep[k] as number) : undefined);
                const protocol = [rep.protocol, rep.group].filter((x) => typeof x === "string").join(" · ");
                return (
                  <tr key={`${r.job.id}/${r.task}`} data-testid={`psi-row-${r.job.id}-${r.task}`}>
                    <td className="mono small">
                      <a href={`#/jobs/${encodeURIComponent(r.job.id)}`}>{r.job.id}</a>
                      {r.job.name && <div>{r.job.name}</div>}
                    </td>
                    <td>{r.task}</td>
                    <td>
                      <StatusBadge status={r.status} />
                    </td>
                    <td>{protocol || "–"}</td>
                    <td>{n("input_rows") ?? "–"}</td>
                    <td data-testid="psi-intersection">{n("intersection_size") ?? "–"}</td>
                    <td className="small">
                      ↑{bytes(n("bytes_sent"))} ↓{bytes(n("bytes_received"))}
                    </td>
                    <td>
                      {r.dataset ? (
                        <>
                          <a href={`#/datasets/${encodeURIComponent(r.dataset)}`}>{r.dataset}</a>{" "}
                          {can("export_data") && (
                            <a className="button small" href={`/api/v1/datasets/${encodeURIComponent(r.dataset)}/download`} data-testid="psi-download">
                              {t("download")}
                            </a>
                          )}
                        </>
                      ) : (
                        "–"
                      )}
                    </td>
                    <td>{when(r.job.created_at)}</td>
                  </tr>
                );
              })}
            </tbody>
          </TableBox>
        )}
        <p className="muted small">{t("psi.note")}</p>
      </Section>
    </div>
  );
}
