// Jobs: the list, with live status.
import { useI18n } from "../i18n";
import { Loading, Section, StatusBadge, TableBox, useApi, useCan, when } from "../components/common";

export type JobRow = {
  id: string;
  name: string | null;
  project: string | null;
  initiator: string;
  role: string;
  status: string;
  reason: string | null;
  created_at: string;
  updated_at: string;
};

export function Jobs() {
  const { t } = useI18n();
  const can = useCan();
  const jobs = useApi<JobRow[]>("/jobs", 5000);
  return (
    <div data-testid="page-jobs">
      <h1>{t("jobs.title")}</h1>
      {can("run_jobs") && (
        <p>
          <a className="button" href="#/builder" data-testid="new-job">
            {t("jobs.new")}
          </a>
        </p>
      )}
      <Section title={t("jobs.list")}>
        <Loading loaded={jobs}>
          {(list) =>
            list.length === 0 ? (
              <p className="muted">{t("jobs.none")}</p>
            ) : (
              <TableBox testid="job-table">
                <thead>
                  <tr>
                    <th>{t("jobs.id")}</th>
                    <th>{t("jobs.name")}</th>
                    <th>{t("jobs.status")}</th>
                    <th>{t("jobs.initiator")}</th>
                    <th>{t("jobs.role")}</th>
                    <th>{t("jobs.created")}</th>
                  </tr>
                </thead>
                <tbody>
                  {[...list]
                    .sort((a, b) => b.created_at.localeCompare(a.created_at))
                    .map((j) => (
                      <tr key={j.id} data-testid={`job-row-${j.id}`}>
                        <td className="mono">
                          <a href={`#/jobs/${encodeURIComponent(j.id)}`}>{j.id}</a>
                        </td>
                        <td>
                          {j.name ?? "–"}
                          {j.project && <span className="tag">{j.project}</span>}
                        </td>
                        <td>
                          <StatusBadge status={j.status} />
                          {j.reason && <div className="muted small">{j.reason}</div>}
                        </td>
                        <td>{j.initiator}</td>
                        <td>{j.role}</td>
                        <td>{when(j.created_at)}</td>
                      </tr>
                    ))}
                </tbody>
              </TableBox>
            )
          }
        </Loading>
      </Section>
    </div>
  );
}
