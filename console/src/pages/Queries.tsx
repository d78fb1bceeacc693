// Anonymous queries (keyword PIR): run one against a partner's query service, the list of
// queries this node ran, their results as CSV; and the services this node offers.
import { useState } from "react";
import { api } from "../api";
import { useI18n } from "../i18n";
import { go } from "../router";
import { ErrorBox, Loading, Section, StatusBadge, TableBox, bytes, num, useAction, useApi, useCan, when } from "../components/common";
import type { Partner } from "./Overview";

type Query = {
  id: string;
  provider: string;
  service: string;
  status: string;
  error: string | null;
  ids: number;
  found: number | null;
  requested_by: string;
  started_at: string;
  finished_at: string | null;
  seconds: number | null;
  bytes_sent: number;
  bytes_received: number;
  result_file: string | null;
};
type QueryResult = { query: Query; key_columns: string[]; value_columns: string[]; answers: { key: string[]; found: boolean; values: string[] }[] };
type QueryService = { name: string; dataset: string; key_columns: string[]; value_columns: string[]; description?: string; status?: string; version?: number };

export function Queries({ id }: { id?: string }) {
  const { t } = useI18n();
  const can = useCan();
  const list = useApi<Query[]>("/queries", 10_000);
  const offered = useApi<QueryService[]>("/query-services", 30_000);
  return (
    <div data-testid="page-queries">
      <h1>{t("queries.title")}</h1>
      {can("run_queries") && <RunQuery onDone={(qid) => (list.reload(), go(`queries/${encodeURIComponent(qid)}`))} />}
      <Section title={t("queries.list")}>
        <Loading loaded={list}>
          {(qs) =>
            qs.length === 0 ? (
              <p className="muted">{t("queries.none")}</p>
            ) : (
              <TableBox testid="query-table">
                <thead>
                  <tr>
                    <th>{t("queries.id")}</th>
                    <th>{t("queries.provider")}</th>
                    <th>{t("queries.service")}</th>
                    <th>{t("jobs.status")}</th>
                    <th>{t("queries.found")}</th>
                    <th>{t("queries.time")}</th>
                    <th>{t("queries.traffic")}</th>
                    <th>{t("queries.result")}</th>
                  </tr>
                </thead>
                <tbody>
                  {[...qs]
                    .sort((a, b) => b.started_at.localeCompare(a.started_at))
                    .map((q) => (
                      <tr key={q.id} data-testid={`query-row-${q.id}`} className={q.id === id ? "selected" : ""}>
                        <td className="mono small">
                          {q.id}
                          <div className="muted">{when(q.started_at)}</div>
                        </td>
                        <td>{q.provider}</td>
                        <td>{q.service}</td>
                        <td>
                          <StatusBadge status={q.status} />
                          {q.error && <div className="error small">{q.error}</div>}
                        </td>
                        <td>
                          {q.found ?? "–"} / {q.ids}
                        </td>
                        <td>{q.seconds !== null ? `${num(q.seconds, 2)} s` : "–"}</td>
                        <td className="small">
                          ↑{bytes(q.bytes_sent)} ↓{bytes(q.bytes_received)}
                        </td>
                        <td>
                          {q.status === "succeeded" && (
                            <a className="button small" href={`/api/v1/queries/${encodeURIComponent(q.id)}/result`} download={`${q.id}.csv`} data-testid={`query-download-${q.id}`}>
                              CSV
                            </a>
                          )}
                        </td>
                      </tr>
                    ))}
                </tbody>
              </TableBox>
            )
          }
        </Loading>
      </Section>
      <Section title={t("queries.offered")}>
        <Loading loaded={offered}>
          {(ss) =>
            ss.length === 0 ? (
              <p className="muted">{t("queries.none_offered")}</p>
            ) : (
              <TableBox>
                <thead>
                  <tr>
                    <th>{t("queries.service")}</th>
                    <th>{t("queries.dataset")}</th>
                    <th>{t("queries.keys")}</th>
                    <th>{t("queries.values")}</th>
                  </tr>
                </thead>
                <tbody>
                  {ss.map((s) => (
                    <tr key={s.name}>
                      <td>
                        {s.name}
                        {s.description && <div className="muted small">{s.description}</div>}
                      </td>
                      <td>{s.dataset}</td>
                      <td>{(s.key_columns ?? []).join(", ")}</td>
                      <td>{(s.value_columns ?? []).join(", ")}</td>
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

function RunQuery({ onDone }: { onDone: (id: string) => void }) {
  const { t } = useI18n();
  const partners = useApi<Partner[]>("/partners");
  const [provider, setProvider] = useState("");
  const [service, setService] = useState("");
  const [ids, setIds] = useState("");
  const [result, setResult] = useState<QueryResult | null>(null);
  const action = useAction();
  // One id per line; an id of several key columns is written with commas.
  const parsed = ids
    .split("\n")
    .map((l) => l.trim())
    .filter(Boolean)
    .map((l) => (l.includes(",") ? l.split(",").map((x) => x.trim()) : l));
  return (
    <Section title={t("queries.run")} testid="run-query">
      <form
        className="form-grid"
        onSubmit={async (e) => {
          e.preventDefault();
          let qid = "";
          setResult(null);
          const ok = await action.run(async () => {
            const r = await api<QueryResult>("POST", "/queries", { provider, service, ids: parsed });
            setResult(r);
            qid = r.query.id;
          });
          if (ok) {
            setIds("");
            onDone(qid);
          }
        }}
      >
        <label>
          {t("queries.provider")}
          <select data-testid="query-provider" value={provider} onChange={(e) => setProvider(e.target.value)} required>
            <option value="">{t("datasets.choose_partner")}</option>
            {(partners.data ?? []).map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
        </label>
        <label>
          {t("queries.service")}
          <input data-testid="query-service" value={service} onChange={(e) => setService(e.target.value)} required />
        </label>
        <label className="wide">
          {t("queries.ids")}
          <textarea data-testid="query-ids" rows={4} value={ids} onChange={(e) => setIds(e.target.value)} placeholder={t("queries.ids_hint")} />
        </label>
        <div className="form-actions">
          <button type="submit" data-testid="query-submit" disabled={action.busy || !provider || !service || parsed.length === 0}>
            {action.busy ? t("queries.running") : t("queries.run_button", { n: parsed.length })}
          </button>
        </div>
      </form>
      <p className="muted small">{t("queries.note")}</p>
      <ErrorBox error={action.error} />
      {result && (
        <TableBox testid="query-answers">
          <thead>
            <tr>
              {result.key_columns.map((k) => (
                <th key={k}>{k}</th>
              ))}
              <th>{t("queries.found")}</th>
              {result.value_columns.map((k) => (
                <th key={k}>{k}</th>
              ))}
            </tr>
          </thead>
          <tbody>
            {result.answers.map((a, i) => (
              <tr key={i}>
                {a.key.map((k, j) => (
                  <td key={j}>{k}</td>
                ))}
                <td>{a.found ? t("yes") : t("no")}</td>
                {result.value_columns.map((_, j) => (
                  <td key={j}>{a.values[j] ?? ""}</td>
                ))}
              </tr>
            ))}
          </tbody>
        </TableBox>
      )}
    </Section>
  );
}
