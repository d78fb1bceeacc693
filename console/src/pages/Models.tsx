// The model library: versions, signature status, lineage, and deployment as a service.
import { useState } from "react";
import { api, ApiError } from "../api";
import { useI18n } from "../i18n";
import { go } from "../router";
import { ErrorBox, Loading, Section, TableBox, bytes, useAction, useApi, useCan, when } from "../components/common";

type Model = {
  name: string;
  version: number;
  kind: string;
  role: string;
  bytes: number;
  created_at: string;
  sha256: string;
  signature: string;
  lineage: { job_id?: string; task?: string; datasets?: string[]; params?: unknown } | null;
  metrics: unknown;
};
type ModelView = { model: Model; verified: boolean; payload_bytes: number };

export function Models({ name }: { name?: string }) {
  const { t } = useI18n();
  const list = useApi<Model[]>("/models", 15_000);
  return (
    <div data-testid="page-models">
      <h1>{t("models.title")}</h1>
      <Section title={t("models.list")}>
        <Loading loaded={list}>
          {(ms) =>
            ms.length === 0 ? (
              <p className="muted">{t("models.none")}</p>
            ) : (
              <TableBox testid="model-table">
                <thead>
                  <tr>
                    <th>{t("models.name")}</th>
                    <th>{t("models.version")}</th>
                    <th>{t("models.kind")}</th>
                    <th>{t("models.role")}</th>
                    <th>{t("models.job")}</th>
                    <th>{t("models.created")}</th>
                  </tr>
                </thead>
                <tbody>
                  {[...ms]
                    .sort((a, b) => a.name.localeCompare(b.name) || b.version - a.version)
                    .map((m) => (
                      <tr key={`${m.name}/${m.version}`} data-testid={`model-row-${m.name}-${m.version}`} className={name === `${m.name}@${m.version}` ? "selected" : ""}>
                        <td>
                          <a href={`#/models/${encodeURIComponent(`${m.name}@${m.version}`)}`}>{m.name}</a>
                        </td>
                        <td>v{m.version}</td>
                        <td>{m.kind}</td>
                        <td>{m.role}</td>
                        <td className="mono small">{m.lineage?.job_id ? <a href={`#/jobs/${encodeURIComponent(m.lineage.job_id)}`}>{m.lineage.job_id}</a> : "–"}</td>
                        <td>{when(m.created_at)}</td>
                      </tr>
                    ))}
                </tbody>
              </TableBox>
            )
          }
        </Loading>
      </Section>
      {name && <ModelDetail key={name} which={name} />}
    </div>
  );
}

function ModelDetail({ which }: { which: string }) {
  const { t } = useI18n();
  const at = which.lastIndexOf("@");
  const name = at > 0 ? which.slice(0, at) : which;
  const version = at > 0 ? which.slice(at + 1) : "";
  const view = useApi<ModelView>(`/models/${encodeURIComponent(name)}${version ? `?version=${encodeURIComponent(version)}` : ""}`);
  // A model whose hash or signature does not check is refused with 422: that is the answer
  // shown, not an error of the page.
  const tampered = view.error instanceof ApiError && view.error.status === 422;
  return (
    <Section title={`${name} v${version}`} testid="model-detail">
      {tampered ? (
        <p className="signature bad" data-testid="signature-status" data-verified="false">
          ✗ {t("models.tampered")}: {view.error?.message}
        </p>
      ) : (
        <Loading loaded={view}>
          {(v) => (
            <>
              <p className={`signature ${v.verified ? "good" : "bad"}`} data-testid="signature-status" data-verified={String(v.verified)}>
                {v.verified ? `✓ ${t("models.verified")}` : `✗ ${t("models.not_verified")}`}
              </p>
              <dl className="facts">
                <dt>{t("models.kind")}</dt>
                <dd>{v.model.kind}</dd>
                <dt>{t("models.role")}</dt>
                <dd>{v.model.role}</dd>
                <dt>{t("models.size")}</dt>
                <dd>{bytes(v.payload_bytes)}</dd>
                <dt>SHA-256</dt>
                <dd className="mono small">{v.model.sha256}</dd>
                <dt>{t("models.signature")}</dt>
                <dd className="mono small wrap">{v.model.signature}</dd>
              </dl>
              <h3>{t("models.lineage")}</h3>
              {v.model.lineage ? (
                <dl className="facts" data-testid="model-lineage">
                  <dt>{t("models.job")}</dt>
                  <dd className="mono">
                    {v.model.lineage.job_id ? <a href={`#/jobs/${encodeURIComponent(v.model.lineage.job_id)}`}>{v.model.lineage.job_id}</a> : "–"}
                  </dd>
                  <dt>{t("models.task")}</dt>
                  <dd>{v.model.lineage.task ?? "–"}</dd>
                  <dt>{t("models.datasets")}</dt>
                  <dd>
                    {(v.model.lineage.datasets ?? []).map((d) => (
                      <a key={d} className="tag" href={`#/datasets/${encodeURIComponent(d)}`}>
                        {d}
                      </a>
                    ))}
                  </dd>
                  <dt>{t("models.params")}</dt>
                  <dd>
                    <pre className="json">{JSON.stringify(v.model.lineage.params ?? {}, null, 2)}</pre>
                  </dd>
                </dl>
              ) : (
                <p className="muted">–</p>
              )}
              <h3>{t("models.training")}</h3>
              <pre className="json">{JSON.stringify(v.model.metrics ?? {}, null, 2)}</pre>
              {v.model.role === "guest" && v.verified && <Deploy model={v.model} />}
            </>
          )}
        </Loading>
      )}
    </Section>
  );
}

function Deploy({ model }: { model: Model }) {
  const { t } = useI18n();
  const can = useCan();
  const [service, setService] = useState(model.name.replace(/[^A-Za-z0-9_-]/g, "_"));
  const action = useAction();
  if (!can("run_jobs")) return null;
  return (
    <>
      <h3>{t("models.deploy")}</h3>
      <form
        className="inline"
        onSubmit={async (e) => {
          e.preventDefault();
          const ok = await action.run(() => api("POST", "/services", { name: service, model: model.name, version: model.version }));
          if (ok) go(`services/${encodeURIComponent(service)}`);
        }}
      >
        <label>
          {t("models.service_name")} <input data-testid="deploy-name" value={service} onChange={(e) => setService(e.target.value)} required />
        </label>
        <button type="submit" data-testid="deploy-submit" disabled={action.busy || !service}>
          {t("models.deploy_button")}
        </button>
      </form>
      <p className="muted small">{t("models.deploy_note")}</p>
      <ErrorBox error={action.error} />
    </>
  );
}
