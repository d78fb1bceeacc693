// This node (party, addresses, version) and its partners, with whether each is connected.
import { useI18n } from "../i18n";
import { Loading, Section, StatusBadge, TableBox, useApi, when } from "../components/common";

export type Partner = {
  name: string;
  addr: string;
  fingerprint: string;
  pinned: boolean;
  connected?: boolean;
  last_heard_secs?: number | null;
  /** Why the node's last keep-alive probe of the partner failed, while nothing came since. */
  reachable_error?: string;
  previous_fingerprint?: string;
  previous_valid_until?: string;
};
type NodeInfo = { party: string; federation_listen: string; api_listen: string; auto_approve: boolean; peers: Partner[] };
type Health = { party: string; version: string };
type Job = { id: string; status: string };
type Approval = { id: string };

export function Overview() {
  const { t } = useI18n();
  const node = useApi<NodeInfo>("/node", 10_000);
  const health = useApi<Health>("/health");
  const jobs = useApi<Job[]>("/jobs", 10_000);
  const approvals = useApi<Approval[]>("/approvals", 10_000);
  const running = jobs.data?.filter((j) => j.status === "running" || j.status === "queued").length;
  return (
    <div data-testid="page-overview">
      <h1>{t("overview.title")}</h1>
      <Loading loaded={node}>
        {(n) => (
          <>
            <Section title={t("overview.node")}>
              <dl className="facts">
                <dt>{t("overview.party")}</dt>
                <dd data-testid="node-party">{n.party}</dd>
                <dt>{t("overview.federation")}</dt>
                <dd>{n.federation_listen}</dd>
                <dt>{t("overview.api")}</dt>
                <dd>{n.api_listen}</dd>
                <dt>{t("overview.version")}</dt>
                <dd data-testid="node-version">{health.data?.version ?? "–"}</dd>
                <dt>{t("overview.auto_approve")}</dt>
                <dd>{n.auto_approve ? t("yes") : t("no")}</dd>
                <dt>{t("overview.jobs_running")}</dt>
                <dd>
                  <a href="#/jobs">{running ?? "–"}</a>
                </dd>
                <dt>{t("overview.approvals_waiting")}</dt>
                <dd>
                  <a href="#/approvals" data-testid="approvals-waiting">
                    {approvals.data?.length ?? "–"}
                  </a>
                </dd>
              </dl>
            </Section>
            <Section title={t("overview.partners")} testid="partners">
              {n.peers.length === 0 ? (
                <p className="muted">{t("overview.no_partners")}</p>
              ) : (
                <TableBox>
                  <thead>
                    <tr>
                      <th>{t("overview.partner")}</th>
                      <th>{t("overview.connection")}</th>
                      <th>{t("overview.address")}</th>
                      <th>{t("overview.fingerprint")}</th>
                    </tr>
                  </thead>
                  <tbody>
                    {n.peers.map((p) => (
                      <tr key={p.name} data-testid={`partner-${p.name}`}>
                        <td>{p.name}</td>
                        <td>
                          <Connection p={p} />
                        </td>
                        <td>{p.addr}</td>
                        <td className="mono small">
                          {p.fingerprint}
                          {p.previous_fingerprint && (
                            <div className="muted">
                              {t("overview.rotating", { until: when(p.previous_valid_until) })}
                            </div>
                          )}
                        </td>
                      </tr>
                    ))}
                  </tbody>
                </TableBox>
              )}
              <p className="muted small">{t("overview.connection_note")}</p>
            </Section>
          </>
        )}
      </Loading>
    </div>
  );
}

function Connection({ p }: { p: Partner }) {
  const { t } = useI18n();
  if (!p.pinned) return <StatusBadge status="not_pinned" testid="partner-connection" />;
  const heard =
    typeof p.last_heard_secs === "number" ? t("overview.heard_ago", { secs: Math.round(p.last_heard_secs) }) : t("overview.never_heard");
  return (
    <span>
      <StatusBadge status={p.connected ? "connected" : "idle"} testid="partner-connection" /> <span className="muted small">{heard}</span>
      {p.reachable_error ? (
        <div className="small" data-testid="partner-unreachable">
          {t("overview.unreachable", { reason: p.reachable_error })}
        </div>
      ) : null}
    </span>
  );
}
