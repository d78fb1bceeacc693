// Model services: status, hosts' decisions, counters, latency over time, and a form to score
// one id.
import { useMemo, useState } from "react";
import { api } from "../api";
import { useI18n } from "../i18n";
import { ErrorBox, Loading, Section, StatusBadge, TableBox, num, useAction, useApi, useCan, when } from "../components/common";
import { Plot, type Series } from "../components/Plot";

type Service = {
  name: string;
  role: string;
  guest: string;
  deployment_id: string;
  model: string;
  version: number;
  pending_version: number | null;
  kind: string;
  status: string;
  reason: string | null;
  dataset: string | null;
  detail: { hosts?: { party: string; decision: string; dataset: string | null; reason: string | null }[]; timeout_ms?: number };
  created_by: string;
  created_at: string;
  requests: number;
  ids: number;
  errors: number;
  last_request_at: string | null;
};
type ServiceView = { service: Service; table_rows: number | null; privacy: string[] };
type RequestLog = { request_id: string; actor: string; ids: number; outcome: string; millis: number; at: string };
type Prediction = { id: string; score: number | null; scores: number[]; class: number | null; error?: string };
type PredictResponse = { request_id: string; model: string; version: number; predictions: Prediction[] };

export function Services({ name }: { name?: string }) {
  return name ? <ServicePage name={name} /> : <ServiceList />;
}

function ServiceList() {
  const { t } = useI18n();
  const list = useApi<Service[]>("/services", 5000);
  return (
    <div data-testid="page-services">
      <h1>{t("services.title")}</h1>
      <Section title={t("services.list")}>
        <Loading loaded={list}>
          {(ss) =>
            ss.length === 0 ? (
              <p className="muted">{t("services.none")}</p>
            ) : (
              <TableBox testid="service-table">
                <thead>
                  <tr>
                    <th>{t("services.name")}</th>
                    <th>{t("jobs.status")}</th>
                    <th>{t("services.role")}</th>
                    <th>{t("services.model")}</th>
                    <th>{t("services.requests")}</th>
                    <th>{t("services.errors")}</th>
                    <th>{t("services.last_request")}</th>
                  </tr>
                </thead>
                <tbody>
                  {ss.map((s) => (
                    <tr key={s.name} data-testid={`service-row-${s.name}`}>
                      <td>
                        <a href={`#/services/${encodeURIComponent(s.name)}`}>{s.name}</a>
                      </td>
                      <td>
                        <StatusBadge status={s.status} />
                      </td>
                      <td>{s.role}</td>
                      <td>
                        {s.model} v{s.version}
                      </td>
                      <td>{s.requests}</td>
                      <td>{s.errors}</td>
                      <td>{when(s.last_request_at)}</td>
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

function ServicePage({ name }: { name: string }) {
  const { t } = useI18n();
  const can = useCan();
  const base = `/services/${encodeURIComponent(name)}`;
  const view = useApi<ServiceView>(base, 5000);
  const action = useAction();
  return (
    <div data-testid="page-service">
      <p>
        <a href="#/services">← {t("services.title")}</a>
      </p>
      <h1>{name}</h1>
      <Loading loaded={view}>
        {({ service: s, table_rows, privacy }) => (
          <>
            <Section title={t("services.service")}>
              <dl className="facts">
                <dt>{t("jobs.status")}</dt>
                <dd>
                  <StatusBadge status={s.status} testid="service-status" />
                  {s.reason && <div className="muted small">{s.reason}</div>}
                </dd>
                <dt>{t("services.role")}</dt>
                <dd>{s.role}</dd>
                <dt>{t("services.model")}</dt>
                <dd>
                  <a href={`#/models/${encodeURIComponent(`${s.model}@${s.version}`)}`}>
                    {s.model} v{s.version}
                  </a>
                  {s.pending_version !== null && ` → v${s.pending_version}`} ({s.kind})
                </dd>
                <dt>{t("services.guest")}</dt>
                <dd>{s.guest}</dd>
                {(s.detail.hosts ?? []).length > 0 && (
                  <>
                    <dt>{t("services.hosts")}</dt>
                    <dd>
                      {(s.detail.hosts ?? []).map((h) => (
                        <div key={h.party}>
                          {h.party}: <StatusBadge status={h.decision} /> {h.reason && <span className="muted small">{h.reason}</span>}
                        </div>
                      ))}
                    </dd>
                  </>
                )}
                <dt>{t("services.dataset")}</dt>
                <dd>
                  {s.dataset ?? "–"}
                  {table_rows !== null && ` (${t("services.table_rows", { rows: table_rows })})`}
                </dd>
                <dt>{t("services.counters")}</dt>
                <dd data-testid="service-counters">{t("services.counter_line", { requests: s.requests, ids: s.ids, errors: s.errors })}</dd>
                <dt>{t("services.last_request")}</dt>
                <dd>{when(s.last_request_at)}</dd>
                <dt>{t("services.created")}</dt>
                <dd>
                  {when(s.created_at)} · {s.created_by}
                </dd>
              </dl>
              {can("run_jobs") && s.role === "guest" && s.status !== "undeployed" && (
                <div className="actions">
                  <button
                    className="danger"
                    data-testid="service-undeploy"
                    disabled={action.busy}
                    onClick={async () => {
                      if (window.confirm(t("services.confirm_undeploy", { name })) && (await action.run(() => api("DELETE", base, { reason: "undeployed in the console" }))))
                        view.reload();
                    }}
                  >
                    {t("services.undeploy")}
                  </button>
                </div>
              )}
              <ErrorBox error={action.error} />
            </Section>
            {s.role === "guest" && s.status === "active" && <Score base={base} />}
            {s.role === "guest" && <Latency base={base} />}
            <Section title={t("services.privacy")}>
              <ul className="security">
                {privacy.map((p) => (
                  <li key={p}>{p}</li>
                ))}
              </ul>
            </Section>
          </>
        )}
      </Loading>
    </div>
  );
}

function Score({ base }: { base: string }) {
  const { t } = useI18n();
  const [id, setId] = useState("");
  const [answer, setAnswer] = useState<PredictResponse | null>(null);
  const action = useAction();
  return (
    <Section title={t("services.score")} testid="score">
      <form
        className="inline"
        onSubmit={async (e) => {
          e.preventDefault();
          setAnswer(null);
          await action.run(async () => setAnswer(await api<PredictResponse>("POST", `${base}/predict`, { id: id.trim() })));
        }}
      >
        <input data-testid="score-id" placeholder={t("services.id")} value={id} onChange={(e) => setId(e.target.value)} required />
        <button type="submit" data-testid="score-submit" disabled={action.busy || !id.trim()}>
          {t("services.score_button")}
        </button>
      </form>
      <ErrorBox error={action.error} />
      {answer &&
        answer.predictions.map((p) => (
          <div key={p.id} className="prediction" data-testid="score-result">
            <strong>{p.id}</strong>:{" "}
            {p.error ? (
              <span className="error">{p.error}</span>
            ) : (
              <>
                {t("services.score_value")} <span data-testid="score-value">{num(p.score ?? p.scores[0], 6)}</span>
                {p.class !== null && ` · ${t("services.class")} ${p.class}`}
              </>
            )}
            <div className="muted small">
              {answer.model} v{answer.version} · {answer.request_id}
            </div>
          </div>
        ))}
    </Section>
  );
}

function Latency({ base }: { base: string }) {
  const { t } = useI18n();
  const log = useApi<RequestLog[]>(`${base}/requests?limit=500`, 5000);
  const chart = useMemo(() => {
    // Oldest first; x is seconds since the first request shown.
    const rows = [...(log.data ?? [])].reverse();
    if (rows.length === 0) return null;
    const t0 = Date.parse(rows[0].at);
    return {
      x: rows.map((r) => (Date.parse(r.at) - t0) / 1000),
      series: [{ label: t("services.latency_ms"), values: rows.map((r) => r.millis), color: "#1565c0" }] as Series[],
      from: rows[0].at,
    };
  }, [log.data, t]);
  return (
    <Section title={t("services.latency")} testid="latency">
      <Loading loaded={log}>
        {(rows) =>
          chart ? (
            <>
              <Plot x={chart.x} series={chart.series} xLabel={t("services.seconds_since", { at: when(chart.from) })} yLabel="ms" testid="latency-plot" height={220} />
              <TableBox>
                <thead>
                  <tr>
                    <th>{t("services.at")}</th>
                    <th>{t("services.actor")}</th>
                    <th>{t("services.ids")}</th>
                    <th>ms</th>
                    <th>{t("services.outcome")}</th>
                  </tr>
                </thead>
                <tbody>
                  {rows.slice(0, 20).map((r) => (
                    <tr key={r.request_id}>
                      <td>{when(r.at)}</td>
                      <td>{r.actor}</td>
                      <td>{r.ids}</td>
                      <td>{num(r.millis, 2)}</td>
                      <td className={r.outcome === "ok" ? "" : "error"}>{r.outcome}</td>
                    </tr>
                  ))}
                </tbody>
              </TableBox>
            </>
          ) : (
            <p className="muted">{t("services.no_requests")}</p>
          )
        }
      </Loading>
    </Section>
  );
}
