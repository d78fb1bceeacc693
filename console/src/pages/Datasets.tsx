// Datasets: the list, an upload with a progress bar, and one dataset's schema, statistics
// and grants.
import { useMemo, useState } from "react";
import { api, ApiError, authHeaders } from "../api";
import { useI18n } from "../i18n";
import { go } from "../router";
import { ErrorBox, Loading, Section, TableBox, bytes, num, useAction, useApi, useCan, when } from "../components/common";
import type { Partner } from "./Overview";

type Column = { name: string; type: string; nullable: boolean };
export type Dataset = {
  name: string;
  rows: number;
  bytes: number;
  format: string;
  columns: Column[];
  id_columns: string[];
  label: string | null;
  label_kind: string | null;
  description: string;
  created_at: string;
  lineage: unknown;
};
type ColumnStats = {
  name: string;
  type: string;
  count: number;
  missing: number;
  distinct: number;
  distinct_exact: boolean;
  min: number | null;
  max: number | null;
  mean: number | null;
  std: number | null;
  quantiles: Record<string, number> | null;
};
type Grant = { party?: string; job?: string; project?: string };
type DatasetView = { dataset: Dataset; stats: { columns: ColumnStats[]; rows: number } | null; grants: Grant[] };

export function Datasets({ name }: { name?: string }) {
  return name ? <DatasetPage name={name} /> : <DatasetList />;
}

function DatasetList() {
  const { t } = useI18n();
  const can = useCan();
  const list = useApi<Dataset[]>("/datasets");
  return (
    <div data-testid="page-datasets">
      <h1>{t("datasets.title")}</h1>
      {can("manage_data") && <Upload onDone={list.reload} />}
      <Section title={t("datasets.list")}>
        <Loading loaded={list}>
          {(ds) =>
            ds.length === 0 ? (
              <p className="muted">{t("datasets.none")}</p>
            ) : (
              <TableBox testid="dataset-table">
                <thead>
                  <tr>
                    <th>{t("datasets.name")}</th>
                    <th>{t("datasets.rows")}</th>
                    <th>{t("datasets.columns")}</th>
                    <th>{t("datasets.label")}</th>
                    <th>{t("datasets.size")}</th>
                    <th>{t("datasets.created")}</th>
                  </tr>
                </thead>
                <tbody>
                  {ds.map((d) => (
                    <tr key={d.name} data-testid={`dataset-row-${d.name}`}>
                      <td>
                        <a href={`#/datasets/${encodeURIComponent(d.name)}`}>{d.name}</a>
                        {d.description && <div className="muted small">{d.description}</div>}
                      </td>
                      <td>{d.rows}</td>
                      <td>{d.columns.length}</td>
                      <td>{d.label ? `${d.label} (${d.label_kind ?? ""})` : "–"}</td>
                      <td>{bytes(d.bytes)}</td>
                      <td>{when(d.created_at)}</td>
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

/** Streams the file as the request body (XMLHttpRequest, for its upload progress events). */
function uploadFile(
  name: string,
  file: File,
  query: URLSearchParams,
  onProgress: (fraction: number) => void,
): Promise<void> {
  return new Promise((resolve, reject) => {
    const xhr = new XMLHttpRequest();
    xhr.open("POST", `/api/v1/datasets/${encodeURIComponent(name)}/upload?${query}`);
    for (const [k, v] of Object.entries(authHeaders("POST"))) xhr.setRequestHeader(k, v);
    xhr.setRequestHeader("Content-Type", "application/octet-stream");
    xhr.upload.onprogress = (e) => {
      if (e.lengthComputable) onProgress(e.loaded / e.total);
    };
    xhr.onload = () => {
      if (xhr.status >= 200 && xhr.status < 300) return resolve();
      let message = `${xhr.status} ${xhr.statusText}`;
      let code: string | undefined;
      let field: string | undefined;
      try {
        const body = JSON.parse(xhr.responseText);
        if (typeof body?.error === "string") message = body.error;
        code = body?.code;
        field = body?.field;
      } catch {
        /* not JSON: keep the status line */
      }
      reject(new ApiError(xhr.status, message, code, field));
    };
    xhr.onerror = () => reject(new Error("network error"));
    xhr.send(file);
  });
}

function Upload({ onDone }: { onDone: () => void }) {
  const { t } = useI18n();
  const [file, setFile] = useState<File | null>(null);
  const [name, setName] = useState("");
  const [idColumns, setIdColumns] = useState("id");
  const [label, setLabel] = useState("");
  const [labelKind, setLabelKind] = useState("binary");
  const [description, setDescription] = useState("");
  const [replace, setReplace] = useState(false);
  const [progress, setProgress] = useState<number | null>(null);
  const [done, setDone] = useState("");
  const action = useAction();
  const submit = async (e: React.FormEvent) => {
    e.preventDefault();
    if (!file || !name) return;
    setDone("");
    setProgress(0);
    const query = new URLSearchParams({ file_name: file.name });
    if (idColumns.trim()) query.set("id_columns", idColumns.trim());
    if (label.trim()) {
      query.set("label", label.trim());
      query.set("label_kind", labelKind);
    }
    if (description) query.set("description", description);
    if (replace) query.set("replace", "true");
    const ok = await action.run(() => uploadFile(name, file, query, setProgress));
    if (ok) {
      setDone(name);
      onDone();
    } else setProgress(null);
  };
  return (
    <Section title={t("datasets.upload")} testid="upload">
      <form className="form-grid" onSubmit={submit}>
        <label>
          {t("datasets.file")}
          <input
            type="file"
            data-testid="upload-file"
            accept=".csv,.parquet,text/csv"
            onChange={(e) => {
              const f = e.target.files?.[0] ?? null;
              setFile(f);
              // A name from the file's, in the characters dataset names allow.
              if (f && !name) setName(f.name.replace(/\.[^.]*$/, "").replace(/[^A-Za-z0-9_-]/g, "_"));
            }}
          />
        </label>
        <label>
          {t("datasets.name")}
          <input data-testid="upload-name" value={name} onChange={(e) => setName(e.target.value)} required />
        </label>
        <label>
          {t("datasets.id_columns")}
          <input data-testid="upload-id-columns" value={idColumns} onChange={(e) => setIdColumns(e.target.value)} />
        </label>
        <label>
          {t("datasets.label_column")}
          <input data-testid="upload-label" value={label} onChange={(e) => setLabel(e.target.value)} placeholder={t("datasets.no_label")} />
        </label>
        <label>
          {t("datasets.label_kind")}
          <select value={labelKind} onChange={(e) => setLabelKind(e.target.value)} disabled={!label}>
            <option value="binary">{t("datasets.kind.binary")}</option>
            <option value="multiclass">{t("datasets.kind.multiclass")}</option>
            <option value="continuous">{t("datasets.kind.continuous")}</option>
          </select>
        </label>
        <label>
          {t("datasets.description")}
          <input value={description} onChange={(e) => setDescription(e.target.value)} />
        </label>
        <label className="check">
          <input type="checkbox" checked={replace} onChange={(e) => setReplace(e.target.checked)} />
          {t("datasets.replace")}
        </label>
        <div className="form-actions">
          <button type="submit" data-testid="upload-submit" disabled={!file || !name || action.busy}>
            {t("datasets.upload_button")}
          </button>
          {progress !== null && (
            <progress data-testid="upload-progress" max={1} value={progress}>
              {Math.round(progress * 100)}%
            </progress>
          )}
          {progress !== null && <span>{Math.round(progress * 100)}%</span>}
        </div>
      </form>
      <ErrorBox error={action.error} />
      {done && (
        <p className="ok" data-testid="upload-done">
          {t("datasets.uploaded", { name: done })} <a href={`#/datasets/${encodeURIComponent(done)}`}>{t("open")}</a>
        </p>
      )}
    </Section>
  );
}

function DatasetPage({ name }: { name: string }) {
  const { t } = useI18n();
  const can = useCan();
  const view = useApi<DatasetView>(`/datasets/${encodeURIComponent(name)}`);
  const del = useAction();
  return (
    <div data-testid="page-dataset">
      <p>
        <a href="#/datasets">← {t("datasets.title")}</a>
      </p>
      <h1>{name}</h1>
      <Loading loaded={view}>
        {(v) => (
          <>
            <Section title={t("datasets.record")}>
              <dl className="facts">
                <dt>{t("datasets.rows")}</dt>
                <dd>{v.dataset.rows}</dd>
                <dt>{t("datasets.size")}</dt>
                <dd>{bytes(v.dataset.bytes)}</dd>
                <dt>{t("datasets.format")}</dt>
                <dd>{v.dataset.format}</dd>
                <dt>{t("datasets.id_columns")}</dt>
                <dd>{v.dataset.id_columns.join(", ") || "–"}</dd>
                <dt>{t("datasets.label")}</dt>
                <dd>{v.dataset.label ? `${v.dataset.label} (${v.dataset.label_kind ?? ""})` : "–"}</dd>
                <dt>{t("datasets.description")}</dt>
                <dd>{v.dataset.description || "–"}</dd>
                <dt>{t("datasets.created")}</dt>
                <dd>{when(v.dataset.created_at)}</dd>
              </dl>
              <div className="actions">
                {can("export_data") && (
                  <a className="button" href={`/api/v1/datasets/${encodeURIComponent(name)}/download`} data-testid="dataset-download">
                    {t("download")}
                  </a>
                )}
                {can("manage_data") && (
                  <button
                    className="danger"
                    data-testid="dataset-delete"
                    disabled={del.busy}
                    onClick={async () => {
                      if (!window.confirm(t("datasets.confirm_delete", { name }))) return;
                      if (await del.run(() => api("DELETE", `/datasets/${encodeURIComponent(name)}`))) go("datasets");
                    }}
                  >
                    {t("delete")}
                  </button>
                )}
              </div>
              <ErrorBox error={del.error} />
            </Section>
            <Grants name={name} grants={v.grants} reload={view.reload} />
            <Section title={t("datasets.schema_stats")} testid="dataset-stats">
              <Stats columns={v.dataset.columns} stats={v.stats?.columns ?? []} label={v.dataset.label} ids={v.dataset.id_columns} />
            </Section>
          </>
        )}
      </Loading>
    </div>
  );
}

function Stats({ columns, stats, label, ids }: { columns: Column[]; stats: ColumnStats[]; label: string | null; ids: string[] }) {
  const { t } = useI18n();
  const byName = useMemo(() => new Map(stats.map((s) => [s.name, s])), [stats]);
  return (
    <TableBox>
      <thead>
        <tr>
          <th>{t("datasets.column")}</th>
          <th>{t("datasets.type")}</th>
          <th>{t("datasets.missing")}</th>
          <th>{t("datasets.distinct")}</th>
          <th>{t("datasets.min")}</th>
          <th>p25</th>
          <th>p50</th>
          <th>p75</th>
          <th>{t("datasets.max")}</th>
          <th>{t("datasets.mean")}</th>
          <th>{t("datasets.std")}</th>
        </tr>
      </thead>
      <tbody>
        {columns.map((c) => {
          const s = byName.get(c.name);
          const role = c.name === label ? t("datasets.is_label") : ids.includes(c.name) ? t("datasets.is_id") : "";
          return (
            <tr key={c.name}>
              <td>
                {c.name} {role && <span className="tag">{role}</span>}
              </td>
              <td>{c.type}</td>
              <td>{s ? s.missing : "–"}</td>
              <td>{s ? `${s.distinct_exact ? "" : "≈"}${s.distinct}` : "–"}</td>
              <td>{num(s?.min)}</td>
              <td>{num(s?.quantiles?.p25)}</td>
              <td>{num(s?.quantiles?.p50)}</td>
              <td>{num(s?.quantiles?.p75)}</td>
              <td>{num(s?.max)}</td>
              <td>{num(s?.mean)}</td>
              <td>{num(s?.std)}</td>
            </tr>
          );
        })}
      </tbody>
    </TableBox>
  );
}

function Grants({ name, grants, reload }: { name: string; grants: Grant[]; reload: () => void }) {
  const { t } = useI18n();
  const can = useCan();
  const partners = useApi<Partner[]>("/partners");
  const [party, setParty] = useState("");
  const action = useAction();
  const path = `/datasets/${encodeURIComponent(name)}/grants`;
  const target = (g: Grant) =>
    g.party ? t("datasets.grant_party", { name: g.party }) : g.job ? t("datasets.grant_job", { name: g.job }) : t("datasets.grant_project", { name: g.project ?? "" });
  return (
    <Section title={t("datasets.grants")} testid="grants">
      {grants.length === 0 ? (
        <p className="muted">{t("datasets.no_grants")}</p>
      ) : (
        <ul className="plain">
          {grants.map((g) => (
            <li key={JSON.stringify(g)} data-testid={`grant-${g.party ?? g.job ?? g.project}`}>
              {target(g)}{" "}
              {can("manage_data") && (
                <button
                  className="small"
                  data-testid={`revoke-${g.party ?? g.job ?? g.project}`}
                  disabled={action.busy}
                  onClick={async () => {
                    if (await action.run(() => api("DELETE", path, g))) reload();
                  }}
                >
                  {t("datasets.revoke")}
                </button>
              )}
            </li>
          ))}
        </ul>
      )}
      {can("manage_data") && (
        <form
          className="inline"
          onSubmit={async (e) => {
            e.preventDefault();
            if (party && (await action.run(() => api("POST", path, { party })))) {
              setParty("");
              reload();
            }
          }}
        >
          <select data-testid="grant-party" value={party} onChange={(e) => setParty(e.target.value)}>
            <option value="">{t("datasets.choose_partner")}</option>
            {(partners.data ?? []).map((p) => (
              <option key={p.name} value={p.name}>
                {p.name}
              </option>
            ))}
          </select>
          <button type="submit" data-testid="grant-submit" disabled={!party || action.busy}>
            {t("datasets.grant")}
          </button>
        </form>
      )}
      <ErrorBox error={action.error} />
    </Section>
  );
}
