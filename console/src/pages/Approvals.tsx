// Partners' proposals waiting for a person here, each with every security-relevant setting
// shown in full before the buttons; approve, or reject with a reason.
import { useState } from "react";
import { api } from "../api";
import { useI18n } from "../i18n";
import { ErrorBox, Loading, StatusBadge, useAction, useApi, useCan, when } from "../components/common";
import type { Dataset } from "./Datasets";

type Approval = { kind: string; id: string; requested_by: string; requested_at: string; expires_at: string; security: string[] };
type Service = { name: string; deployment_id: string; role: string };

export function Approvals() {
  const { t } = useI18n();
  const list = useApi<Approval[]>("/approvals", 5000);
  return (
    <div data-testid="page-approvals">
      <h1>{t("approvals.title")}</h1>
      <Loading loaded={list}>
        {(items) =>
          items.length === 0 ? (
            <p className="muted" data-testid="approvals-empty">
              {t("approvals.none")}
            </p>
          ) : (
            <>
              {items.map((a) => (
                <ApprovalCard key={`${a.kind}:${a.id}`} a={a} reload={list.reload} />
              ))}
            </>
          )
        }
      </Loading>
    </div>
  );
}

/** Where a decision on each kind of item goes. */
function routes(a: Approval, serviceName?: string): { approve: string; reject: string; rejectWord: string } {
  const id = encodeURIComponent(a.id);
  switch (a.kind) {
    case "project":
      return { approve: `/projects/${id}/approve`, reject: `/projects/${id}/decline`, rejectWord: "approvals.decline" };
    case "schedule":
      return { approve: `/schedules/${id}/approve`, reject: `/schedules/${id}/reject`, rejectWord: "approvals.reject" };
    case "deployment":
      // The service's own route takes the feature dataset the approver picks.
      return serviceName
        ? { approve: `/services/${encodeURIComponent(serviceName)}/approve`, reject: `/services/${encodeURIComponent(serviceName)}/reject`, rejectWord: "approvals.reject" }
        : { approve: `/jobs/${id}/approve`, reject: `/jobs/${id}/reject`, rejectWord: "approvals.reject" };
    default:
      return { approve: `/jobs/${id}/approve`, reject: `/jobs/${id}/reject`, rejectWord: "approvals.reject" };
  }
}

function ApprovalCard({ a, reload }: { a: Approval; reload: () => void }) {
  const { t } = useI18n();
  const can = useCan();
  const [reason, setReason] = useState("");
  const [dataset, setDataset] = useState("");
  const action = useAction();
  const isDeployment = a.kind === "deployment";
  const services = useApi<Service[]>(isDeployment ? "/services" : null);
  const datasets = useApi<Dataset[]>(isDeployment ? "/datasets" : null);
  const service = services.data?.find((s) => s.deployment_id === a.id && s.role === "host");
  const r = routes(a, service?.name);
  const kindLabel = t(`approvals.kind.${a.kind}`);
  return (
    <section className="card approval" data-testid={`approval-${a.id}`}>
      <h2>
        <span className="tag">{kindLabel.startsWith("approvals.") ? a.kind : kindLabel}</span> <span className="mono">{a.id}</span>
      </h2>
      <p>
        {t("approvals.requested", { party: a.requested_by, at: when(a.requested_at) })} · {t("approvals.expires", { at: when(a.expires_at) })}
      </p>
      <div className="security-box" data-testid="security-settings">
        <h3>{t("approvals.security")}</h3>
        {a.security.length === 0 ? (
          <p className="muted">{t("approvals.no_settings")}</p>
        ) : (
          <ul className="security">
            {a.security.map((s) => (
              <li key={s}>{s}</li>
            ))}
          </ul>
        )}
      </div>
      {a.kind === "job" || a.kind === "own_job" ? (
        <p>
          <a href={`#/jobs/${encodeURIComponent(a.id)}`}>{t("approvals.open_job")}</a>
        </p>
      ) : null}
      {can("approve") ? (
        <div className="decision">
          {isDeployment && service && (
            <label>
              {t("approvals.feature_dataset")}
              <select data-testid={`dataset-${a.id}`} value={dataset} onChange={(e) => setDataset(e.target.value)}>
                <option value="">{t("approvals.choose_dataset")}</option>
                {(datasets.data ?? []).map((d) => (
                  <option key={d.name} value={d.name}>
                    {d.name}
                  </option>
                ))}
              </select>
            </label>
          )}
          <button
            className="primary"
            data-testid={`approve-${a.id}`}
            disabled={action.busy}
            onClick={async () => {
              const body = isDeployment && service && dataset ? { dataset } : undefined;
              if (await action.run(() => api("POST", r.approve, body))) reload();
            }}
          >
            {t("approvals.approve")}
          </button>
          <input
            data-testid="reason"
            name="reason"
            placeholder={t("approvals.reason")}
            value={reason}
            onChange={(e) => setReason(e.target.value)}
          />
          <button
            className="danger"
            data-testid={`reject-${a.id}`}
            disabled={action.busy || !reason.trim()}
            title={reason.trim() ? undefined : t("approvals.reason_needed")}
            onClick={async () => {
              if (await action.run(() => api("POST", r.reject, { reason: reason.trim() }))) reload();
            }}
          >
            {t(r.rejectWord)}
          </button>
        </div>
      ) : (
        <p className="muted">
          <StatusBadge status="pending_approval" /> {t("approvals.no_permission")}
        </p>
      )}
      <ErrorBox error={action.error} />
    </section>
  );
}
