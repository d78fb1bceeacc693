// The job builder (issue 16): compose a job on a canvas from the node's components, set
// parameters in forms generated from their schemas, see the node's own validation in place,
// save or open YAML, submit.
//
// Test ids (the browser tests in crates/ferry-cli/tests rely on them):
//   builder-canvas                    the canvas (drop target of palette drags)
//   palette-<component>               a palette entry: drag it onto the canvas with pointer
//                                     events, or click it / press Enter to add the task
//   node-<task>                       a task on the canvas (`data-component` names its component)
//   [data-testid=node-<task>] [data-handleid=<port>]
//                                     its ports; an input handle also has class `target` and
//                                     data-testid `in-<port>`, an output `source` / `out-<port>`
//   node-errors-<task>                the count of the task's validation errors
//   task-name, task-delete            the selected task's name, and removing it
//   param-scope                       whose values the form edits: `all`, `role:<role>`, `party:<party>`
//   param-<name>                      a parameter's input (nested ones: param-he.scheme);
//                                     param-<name>-clear removes the value at this scope
//   builder-job-name                  the job's name
//   party-guest, party-host-<i>, party-add-host, party-remove-host-<i>, party-arbiter
//   dataset-<task>-<party>            the dataset a reader task reads at a party
//   builder-validate-errors           the node's validation errors (data-valid="true|false|pending")
//   builder-message                   why a connection was refused, and other notices
//   builder-layout                    arrange the tasks by dependency depth
//   builder-save, builder-yaml-out, builder-download
//   builder-open-toggle, builder-yaml-in, builder-yaml-file, builder-open, builder-open-error
//   builder-submit, builder-submit-error
import { useCallback, useEffect, useMemo, useRef, useState } from "react";
import {
  Background,
  Controls,
  ReactFlow,
  ReactFlowProvider,
  applyEdgeChanges,
  applyNodeChanges,
  useReactFlow,
  type Connection,
  type Edge,
  type EdgeChange,
  type NodeChange,
} from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import "./builder.css";
import { api, ApiError } from "../api";
import { useI18n } from "../i18n";
import { go } from "../router";
import {
  connectionProblem,
  edgeId,
  freshName,
  graphToSpec,
  layout,
  parseSpec,
  specToGraph,
  specToYaml,
  ROLES,
  type ComponentInfo,
  type Graph,
  type GraphEdge,
  type Json,
  type JobSettings,
  type JsonObject,
  type Role,
  type TaskData,
} from "./model";
import { CanvasContext, TaskNode, componentLabel, type TaskNodeType } from "./TaskNode";
import { SchemaForm } from "./SchemaForm";

export type FieldError = { message: string; code: string; field: string | null };
type Validation = { valid: boolean; errors: FieldError[] };

const NODE_TYPES = { task: TaskNode };

/** Palette groups, in the order a job usually runs them; unknown components go to "other". */
const GROUPS: [string, string[]][] = [
  ["data", ["reader", "data_split", "statistics"]],
  ["psi", ["psi"]],
  ["feature", ["feature_binning", "feature_selection", "feature_transform"]],
  ["training", ["hetero_secureboost", "hetero_lr", "fedavg"]],
  ["prediction", ["predict", "scorecard"]],
  ["evaluation", ["evaluation", "stability"]],
];

/** How long the builder waits after the last edit before asking the node to validate. */
const VALIDATE_DELAY_MS = 500;

export function JobBuilder() {
  return (
    <ReactFlowProvider>
      <Builder />
    </ReactFlowProvider>
  );
}

type Scope = { kind: "all" } | { kind: "role"; role: Role } | { kind: "party"; party: string };

const scopeKey = (s: Scope) => (s.kind === "all" ? "all" : s.kind === "role" ? `role:${s.role}` : `party:${s.party}`);

function toEdge(e: GraphEdge): Edge {
  return { ...e, data: e.ref ? { ref: e.ref } : undefined };
}

function fromEdge(e: Edge): GraphEdge {
  return {
    id: e.id,
    source: e.source,
    sourceHandle: e.sourceHandle ?? "",
    target: e.target,
    targetHandle: e.targetHandle ?? "",
    ref: typeof e.data?.ref === "string" ? e.data.ref : undefined,
  };
}

/** Sets (or, with `undefined`, removes) `path` in `obj`, dropping tables left empty. */
function setPath(obj: JsonObject, path: string[], value: Json | undefined): JsonObject {
  const [head, ...rest] = path;
  const out = { ...obj };
  if (rest.length === 0) {
    if (value === undefined) delete out[head];
    else out[head] = value;
    return out;
  }
  const inner = out[head];
  const next = setPath(typeof inner === "object" && inner !== null && !Array.isArray(inner) ? inner : {}, rest, value);
  if (Object.keys(next).length === 0) delete out[head];
  else out[head] = next;
  return out;
}

function merge(a: JsonObject, b: JsonObject | undefined): JsonObject {
  const out: JsonObject = { ...a };
  for (const [k, v] of Object.entries(b ?? {})) out[k] = v;
  return out;
}

function Builder() {
  const { t } = useI18n();
  const flow = useReactFlow();
  const [components, setComponents] = useState<ComponentInfo[]>([]);
  const [me, setMe] = useState("");
  const [partners, setPartners] = useState<string[]>([]);
  const [datasets, setDatasets] = useState<string[]>([]);
  const [loadError, setLoadError] = useState("");
  const [nodes, setNodes] = useState<TaskNodeType[]>([]);
  const [edges, setEdges] = useState<Edge[]>([]);
  const [settings, setSettings] = useState<JobSettings>({ name: "", guest: "", hosts: [], arbiter: "", extra: {} });
  const [selected, setSelected] = useState<string | null>(null);
  const [scope, setScope] = useState<Scope>({ kind: "all" });
  const [message, setMessage] = useState("");
  const [validation, setValidation] = useState<Validation | null>(null);
  const [yamlOut, setYamlOut] = useState<string | null>(null);
  const [openVisible, setOpenVisible] = useState(false);
  const [yamlIn, setYamlIn] = useState("");
  const [openError, setOpenError] = useState("");
  const [submitError, setSubmitError] = useState("");
  const [submitting, setSubmitting] = useState(false);
  const canvasRef = useRef<HTMLDivElement>(null);

  useEffect(() => {
    api<ComponentInfo[]>("GET", "/components").then(setComponents).catch((e) => setLoadError(String(e.message ?? e)));
    api<{ party: string }>("GET", "/node")
      .then((n) => {
        setMe(n.party);
        setSettings((s) => (s.guest ? s : { ...s, guest: n.party }));
      })
      .catch(() => {});
    api<{ name: string }[]>("GET", "/partners").then((p) => setPartners(p.map((x) => x.name))).catch(() => {});
    api<{ name: string }[]>("GET", "/datasets").then((d) => setDatasets(d.map((x) => x.name))).catch(() => {});
  }, []);

  const defs = useMemo(() => new Map(components.map((c) => [c.name, c])), [components]);

  const graph = useCallback(
    (): Graph => ({
      settings,
      nodes: nodes.map((n) => ({ id: n.id, data: n.data, position: n.position })),
      edges: edges.map(fromEdge),
    }),
    [settings, nodes, edges],
  );

  // The spec as YAML; positions are not part of it, so moving a node changes nothing here.
  const yaml = useMemo(() => (components.length > 0 ? specToYaml(graphToSpec(graph(), components)) : ""), [graph, components]);

  useEffect(() => {
    if (!yaml) return;
    setValidation(null);
    let cancelled = false;
    const timer = window.setTimeout(() => {
      api<Validation>("POST", "/jobs/validate", undefined, { rawBody: yaml, contentType: "application/yaml" })
        .then((v) => !cancelled && setValidation(v))
        .catch((e) => !cancelled && setValidation({ valid: false, errors: [{ message: e instanceof ApiError ? e.message : String(e), code: "request", field: null }] }));
    }, VALIDATE_DELAY_MS);
    return () => {
      cancelled = true;
      window.clearTimeout(timer);
    };
  }, [yaml]);

  // Errors by task name, each with its field below the task (`params.max_depth`, `inputs.data`).
  const taskErrors = useMemo(() => {
    const out = new Map<string, { field: string; message: string }[]>();
    for (const e of validation?.errors ?? []) {
      const m = e.field?.match(/^tasks\.([^.]+)(?:\.(.*))?$/);
      if (!m) continue;
      out.set(m[1], [...(out.get(m[1]) ?? []), { field: m[2] ?? "", message: e.message }]);
    }
    return out;
  }, [validation]);

  const canvasInfo = useMemo(() => ({ components: defs, errors: taskErrors }), [defs, taskErrors]);

  const onNodesChange = useCallback((changes: NodeChange<TaskNodeType>[]) => {
    setNodes((ns) => applyNodeChanges(changes, ns));
    for (const c of changes) {
      if (c.type === "select" && c.selected) setSelected(c.id);
      if (c.type === "remove") {
        setEdges((es) => es.filter((e) => e.source !== c.id && e.target !== c.id));
        setSelected((s) => (s === c.id ? null : s));
      }
    }
  }, []);
  const onEdgesChange = useCallback((changes: EdgeChange[]) => setEdges((es) => applyEdgeChanges(changes, es)), []);

  const onConnect = useCallback(
    (c: Connection) => {
      const conn = { source: c.source, sourceHandle: c.sourceHandle ?? "", target: c.target, targetHandle: c.targetHandle ?? "" };
      const g = { nodes: nodes.map((n) => ({ id: n.id, data: n.data, position: n.position })), edges: edges.map(fromEdge) };
      const problem = connectionProblem(g, components, conn);
      if (problem) {
        const vars = { ...problem.vars };
        for (const k of ["want", "have"]) if (vars[k]) vars[k] = t(`b.kind.${vars[k]}`);
        setMessage(t(problem.key, vars));
        return;
      }
      setMessage("");
      // An input takes one source: a new connection replaces the old one.
      const id = edgeId(conn.target, conn.targetHandle);
      setEdges((es) => [...es.filter((e) => e.id !== id), toEdge({ id, ...conn })]);
    },
    [nodes, edges, components, t],
  );

  const addTask = useCallback(
    (component: string, position?: { x: number; y: number }) => {
      const name = freshName(component, nodes.map((n) => n.data.name));
      const id = freshName(name, nodes.map((n) => n.id));
      // Click-to-add places the task below the lowest one; a drop places it where it fell.
      const at = position ?? { x: 40, y: Math.max(-110, ...nodes.map((n) => n.position.y)) + 150 };
      const data: TaskData = { name, component, params: {}, role_params: {}, party_params: {}, loose_inputs: {} };
      setNodes((ns) => [...ns.map((n) => ({ ...n, selected: false })), { id, type: "task", position: at, data, selected: true }]);
      setSelected(id);
      setScope({ kind: "all" });
    },
    [nodes],
  );

  // Palette drags use pointer events (WebDriver cannot drive HTML5 drag and drop in Chrome).
  const drag = useRef<{ component: string; x: number; y: number; moved: boolean } | null>(null);
  const suppressClick = useRef(false);
  const [ghost, setGhost] = useState<{ component: string; x: number; y: number } | null>(null);
  const startDrag = (component: string, e: React.PointerEvent) => {
    if (e.button !== 0) return;
    e.preventDefault();
    drag.current = { component, x: e.clientX, y: e.clientY, moved: false };
    const move = (ev: PointerEvent) => {
      const d = drag.current;
      if (!d) return;
      if (!d.moved && Math.hypot(ev.clientX - d.x, ev.clientY - d.y) < 5) return;
      d.moved = true;
      setGhost({ component: d.component, x: ev.clientX, y: ev.clientY });
    };
    const up = (ev: PointerEvent) => {
      window.removeEventListener("pointermove", move);
      window.removeEventListener("pointerup", up);
      const d = drag.current;
      drag.current = null;
      setGhost(null);
      if (!d?.moved) return; // a click: onClick adds the task
      suppressClick.current = true;
      window.setTimeout(() => (suppressClick.current = false), 0);
      const rect = canvasRef.current?.getBoundingClientRect();
      if (rect && ev.clientX >= rect.left && ev.clientX <= rect.right && ev.clientY >= rect.top && ev.clientY <= rect.bottom) {
        const p = flow.screenToFlowPosition({ x: ev.clientX, y: ev.clientY });
        addTask(d.component, { x: p.x - 80, y: p.y - 20 });
      }
    };
    window.addEventListener("pointermove", move);
    window.addEventListener("pointerup", up);
  };

  const loadGraph = (g: Graph) => {
    setSettings(g.settings);
    setNodes(g.nodes.map((n) => ({ id: n.id, type: "task", position: n.position, data: n.data })));
    setEdges(g.edges.map(toEdge));
    setSelected(null);
    setScope({ kind: "all" });
    window.setTimeout(() => flow.fitView({ padding: 0.1, maxZoom: 1 }), 50);
  };

  const openYaml = () => {
    setOpenError("");
    try {
      loadGraph(specToGraph(parseSpec(yamlIn), components));
      setOpenVisible(false);
      setYamlOut(null);
    } catch (e) {
      setOpenError(e instanceof Error ? e.message : String(e));
    }
  };

  const autoLayout = () => {
    const g = graph();
    const placed = new Map(layout(g.nodes, g.edges).map((n) => [n.id, n.position]));
    setNodes((ns) => ns.map((n) => ({ ...n, position: placed.get(n.id) ?? n.position })));
    window.setTimeout(() => flow.fitView({ padding: 0.1, maxZoom: 1 }), 50);
  };

  const download = () => {
    if (yamlOut === null) return;
    const url = URL.createObjectURL(new Blob([yamlOut], { type: "application/yaml" }));
    const a = document.createElement("a");
    a.href = url;
    a.download = `${settings.name || "job"}.yaml`;
    a.click();
    window.setTimeout(() => URL.revokeObjectURL(url), 1000);
  };

  const submit = async () => {
    setSubmitError("");
    setSubmitting(true);
    try {
      const r = await api<{ job_id: string }>("POST", "/jobs", undefined, { rawBody: yaml, contentType: "application/yaml" });
      go(`jobs/${encodeURIComponent(r.job_id)}`);
    } catch (e) {
      setSubmitError(e instanceof Error ? e.message : String(e));
    } finally {
      setSubmitting(false);
    }
  };

  const updateTask = (id: string, f: (d: TaskData) => TaskData) =>
    setNodes((ns) => ns.map((n) => (n.id === id ? { ...n, data: f(n.data) } : n)));

  const selectedNode = nodes.find((n) => n.id === selected);
  const jobParties: [string, Role][] = [
    ...(settings.guest ? [[settings.guest, "guest"] as [string, Role]] : []),
    ...settings.hosts.filter(Boolean).map((h) => [h, "host"] as [string, Role]),
    ...(settings.arbiter ? [[settings.arbiter, "arbiter"] as [string, Role]] : []),
  ];
  const choosable = Array.from(new Set([me, ...partners].filter(Boolean)));
  const generalErrors = (validation?.errors ?? []).filter((e) => !e.field?.startsWith("tasks."));
  const readers = nodes.filter((n) => n.data.component === "reader");

  const grouped = GROUPS.map(([g, names]) => [g, components.filter((c) => names.includes(c.name))] as const);
  const other = components.filter((c) => !GROUPS.some(([, names]) => names.includes(c.name)));
  if (other.length > 0) grouped.push(["other", other]);

  return (
    <div className="job-builder" data-testid="job-builder">
      <aside className="builder-palette" aria-label={t("b.palette")}>
        <h2>{t("b.palette")}</h2>
        {loadError && <p className="error">{loadError}</p>}
        {grouped.map(([g, list]) =>
          list.length === 0 ? null : (
            <section key={g} data-testid={`palette-group-${g}`}>
              <h3>{t(`b.group.${g}`)}</h3>
              {list.map((c) => (
                <button
                  key={c.name}
                  type="button"
                  className="palette-item"
                  data-testid={`palette-${c.name}`}
                  title={`${c.name}: ${c.summary}`}
                  disabled={c.allowed === false}
                  onPointerDown={(e) => startDrag(c.name, e)}
                  onClick={() => {
                    if (!suppressClick.current) addTask(c.name);
                  }}
                >
                  <span className="palette-label">{componentLabel(t, c.name)}</span>
                  <span className="palette-id">{c.name}</span>
                  {c.allowed === false && <span className="palette-note">{t("b.palette.notAllowed")}</span>}
                </button>
              ))}
            </section>
          ),
        )}
        <p className="hint">{t("b.palette.hint")}</p>
      </aside>

      <section className="builder-main">
        <div className="builder-toolbar">
          <button type="button" data-testid="builder-layout" onClick={autoLayout}>{t("b.layout")}</button>
          <button type="button" data-testid="builder-open-toggle" onClick={() => setOpenVisible((v) => !v)}>{t("b.open")}</button>
          <button type="button" data-testid="builder-save" onClick={() => setYamlOut(yaml)}>{t("b.save")}</button>
          <button type="button" className="primary" data-testid="builder-submit" disabled={submitting || !validation?.valid} onClick={submit}>
            {t("b.submit")}
          </button>
          <span className={`builder-status ${validation === null ? "pending" : validation.valid ? "ok" : "bad"}`} data-testid="builder-status">
            {validation === null ? t("b.validating") : validation.valid ? t("b.valid") : t("b.invalid", { n: validation.errors.length })}
          </span>
        </div>
        {message && (
          <p className="builder-message" role="alert" data-testid="builder-message">
            {message}
          </p>
        )}
        {submitError && <p className="error" role="alert" data-testid="builder-submit-error">{submitError}</p>}
        {openVisible && (
          <div className="builder-dialog" data-testid="builder-open-dialog">
            <label>
              {t("b.open.paste")}
              <textarea data-testid="builder-yaml-in" rows={10} value={yamlIn} onChange={(e) => setYamlIn(e.target.value)} spellCheck={false} />
            </label>
            <label>
              {t("b.open.file")}
              <input
                type="file"
                accept=".yaml,.yml,.json"
                data-testid="builder-yaml-file"
                onChange={async (e) => {
                  const f = e.target.files?.[0];
                  if (f) setYamlIn(await f.text());
                }}
              />
            </label>
            <button type="button" data-testid="builder-open" onClick={openYaml} disabled={components.length === 0}>{t("b.open.load")}</button>
            {openError && <p className="error" role="alert" data-testid="builder-open-error">{openError}</p>}
          </div>
        )}
        {yamlOut !== null && (
          <div className="builder-dialog">
            <label>
              {t("b.save.yaml")}
              <textarea data-testid="builder-yaml-out" rows={12} readOnly value={yamlOut} spellCheck={false} />
            </label>
            <button type="button" data-testid="builder-download" onClick={download}>{t("b.save.download")}</button>
            <button type="button" onClick={() => setYamlOut(null)}>{t("b.close")}</button>
          </div>
        )}
        <div className="builder-canvas" data-testid="builder-canvas" ref={canvasRef}>
          <CanvasContext.Provider value={canvasInfo}>
            <ReactFlow
              nodes={nodes}
              edges={edges}
              nodeTypes={NODE_TYPES}
              onNodesChange={onNodesChange}
              onEdgesChange={onEdgesChange}
              onConnect={onConnect}
              onPaneClick={() => setSelected(null)}
              deleteKeyCode={["Delete", "Backspace"]}
              defaultViewport={{ x: 0, y: 0, zoom: 1 }}
              minZoom={0.2}
              maxZoom={1.5}
              proOptions={{ hideAttribution: true }}
            >
              <Background />
              <Controls />
            </ReactFlow>
          </CanvasContext.Provider>
          {nodes.length === 0 && <p className="builder-empty">{t("b.empty")}</p>}
        </div>
        <ul className="builder-errors" data-testid="builder-validate-errors" data-valid={validation === null ? "pending" : String(validation.valid)}>
          {(validation?.errors ?? []).map((e, i) => {
            const task = e.field?.match(/^tasks\.([^.]+)/)?.[1];
            const node = task ? nodes.find((n) => n.data.name === task) : undefined;
            return (
              <li key={i} data-field={e.field ?? ""} data-code={e.code}>
                {node ? (
                  <button type="button" className="link" onClick={() => setSelected(node.id)}>
                    {e.field}
                  </button>
                ) : (
                  e.field && <code>{e.field}</code>
                )}{" "}
                {e.message}
              </li>
            );
          })}
        </ul>
      </section>

      <aside className="builder-side">
        <JobSettingsPanel
          settings={settings}
          setSettings={setSettings}
          choosable={choosable}
          me={me}
          errors={generalErrors}
        />
        {readers.length > 0 && (
          <section className="builder-datasets">
            <h3>{t("b.datasets")}</h3>
            {readers.map((r) =>
              jobParties
                .filter(([, role]) => role !== "arbiter")
                .map(([party]) => {
                  const value = r.data.party_params[party]?.dataset;
                  const set = (v: string) =>
                    updateTask(r.id, (d) => ({ ...d, party_params: { ...d.party_params, [party]: setPath(d.party_params[party] ?? {}, ["dataset"], v === "" ? undefined : v) } }));
                  const testid = `dataset-${r.data.name}-${party}`;
                  // The reader's dataset problems for this party: its own value, or one
                  // missing for everybody (located at `params.dataset`).
                  const problem = (taskErrors.get(r.data.name) ?? []).find(
                    (e) => e.field === `party_params.${party}.dataset` || e.field === "params.dataset",
                  );
                  return (
                    <label key={`${r.id}-${party}`} className={problem ? "has-error" : undefined}>
                      {t("b.datasets.of", { task: r.data.name, party })}
                      {party === me ? (
                        <select data-testid={testid} value={typeof value === "string" ? value : ""} onChange={(e) => set(e.target.value)}>
                          <option value="">{t("b.choose")}</option>
                          {Array.from(new Set([...datasets, ...(typeof value === "string" && value ? [value] : [])])).map((d) => (
                            <option key={d} value={d}>{d}</option>
                          ))}
                        </select>
                      ) : (
                        // A partner's datasets are not listed here; its name is typed as agreed.
                        <input data-testid={testid} type="text" value={typeof value === "string" ? value : ""} onChange={(e) => set(e.target.value)} placeholder={t("b.datasets.partner")} />
                      )}
                      {problem && <span className="field-error" role="alert">{problem.message}</span>}
                    </label>
                  );
                }),
            )}
          </section>
        )}
        {selectedNode ? (
          <TaskPanel
            key={selectedNode.id}
            node={selectedNode}
            def={defs.get(selectedNode.data.component)}
            parties={jobParties}
            scope={scope}
            setScope={setScope}
            errors={taskErrors.get(selectedNode.data.name) ?? []}
            taken={nodes.filter((n) => n.id !== selectedNode.id).map((n) => n.data.name)}
            update={(f) => updateTask(selectedNode.id, f)}
            remove={() => {
              setNodes((ns) => ns.filter((n) => n.id !== selectedNode.id));
              setEdges((es) => es.filter((e) => e.source !== selectedNode.id && e.target !== selectedNode.id));
              setSelected(null);
            }}
          />
        ) : (
          <p className="hint">{t("b.selectHint")}</p>
        )}
      </aside>
      {ghost && (
        <div className="palette-ghost" style={{ left: ghost.x, top: ghost.y }}>
          {componentLabel(t, ghost.component)}
        </div>
      )}
    </div>
  );
}

function JobSettingsPanel(p: {
  settings: JobSettings;
  setSettings: (f: (s: JobSettings) => JobSettings) => void;
  choosable: string[];
  me: string;
  errors: FieldError[];
}) {
  const { t } = useI18n();
  const { settings: s, setSettings } = p;
  const options = (current: string) => Array.from(new Set([...p.choosable, ...(current ? [current] : [])]));
  const errorAt = (prefix: string) => p.errors.filter((e) => e.field?.startsWith(prefix)).map((e) => e.message).join("; ");
  const Err = ({ at }: { at: string }) => {
    const m = errorAt(at);
    return m ? <span className="field-error" role="alert">{m}</span> : null;
  };
  return (
    <section className="builder-settings">
      <h3>{t("b.job")}</h3>
      <label>
        {t("b.job.name")}
        <input data-testid="builder-job-name" type="text" value={s.name} onChange={(e) => setSettings((x) => ({ ...x, name: e.target.value }))} />
        <Err at="name" />
      </label>
      <label>
        {t("b.role.guest")}
        <select data-testid="party-guest" value={s.guest} onChange={(e) => setSettings((x) => ({ ...x, guest: e.target.value }))}>
          {options(s.guest).map((o) => (
            <option key={o} value={o}>{o === p.me ? t("b.thisNode", { party: o }) : o}</option>
          ))}
        </select>
        <Err at="parties.guest" />
      </label>
      <fieldset>
        <legend>{t("b.role.hosts")}</legend>
        {s.hosts.map((h, i) => (
          <div key={i} className="row">
            <select data-testid={`party-host-${i}`} value={h} onChange={(e) => setSettings((x) => ({ ...x, hosts: x.hosts.map((v, j) => (j === i ? e.target.value : v)) }))}>
              <option value="">{t("b.choose")}</option>
              {options(h).map((o) => (
                <option key={o} value={o}>{o === p.me ? t("b.thisNode", { party: o }) : o}</option>
              ))}
            </select>
            <button type="button" data-testid={`party-remove-host-${i}`} aria-label={t("b.remove")} onClick={() => setSettings((x) => ({ ...x, hosts: x.hosts.filter((_, j) => j !== i) }))}>
              ×
            </button>
          </div>
        ))}
        <button type="button" data-testid="party-add-host" onClick={() => setSettings((x) => ({ ...x, hosts: [...x.hosts, p.choosable.find((c) => c !== x.guest && !x.hosts.includes(c)) ?? ""] }))}>
          {t("b.addHost")}
        </button>
        <Err at="parties.hosts" />
      </fieldset>
      <label>
        {t("b.role.arbiter")}
        <select data-testid="party-arbiter" value={s.arbiter} onChange={(e) => setSettings((x) => ({ ...x, arbiter: e.target.value }))}>
          <option value="">{t("b.none")}</option>
          {options(s.arbiter).map((o) => (
            <option key={o} value={o}>{o === p.me ? t("b.thisNode", { party: o }) : o}</option>
          ))}
        </select>
        <Err at="parties.arbiter" />
      </label>
      {p.errors
        .filter((e) => !e.field || !["name", "parties"].some((f) => e.field!.startsWith(f)))
        .map((e, i) => (
          <p key={i} className="field-error" role="alert">
            {e.message}
          </p>
        ))}
      {p.errors.filter((e) => e.field === "parties").map((e, i) => (
        <p key={`p${i}`} className="field-error" role="alert">{e.message}</p>
      ))}
    </section>
  );
}

function TaskPanel(p: {
  node: TaskNodeType;
  def: ComponentInfo | undefined;
  parties: [string, Role][];
  scope: Scope;
  setScope: (s: Scope) => void;
  errors: { field: string; message: string }[];
  taken: string[];
  update: (f: (d: TaskData) => TaskData) => void;
  remove: () => void;
}) {
  const { t } = useI18n();
  const d = p.node.data;
  const roles = ROLES.filter((r) => p.parties.some(([, role]) => role === r) || d.role_params[r]);
  const partyNames = Array.from(new Set([...p.parties.map(([x]) => x), ...Object.keys(d.party_params)]));
  // The scope's own values, what it inherits, and where its values live in the error fields.
  let values: JsonObject;
  let inherited: JsonObject;
  let prefix: string;
  if (p.scope.kind === "role") {
    values = d.role_params[p.scope.role] ?? {};
    inherited = d.params;
    prefix = `role_params.${p.scope.role}.`;
  } else if (p.scope.kind === "party") {
    const party = p.scope.party;
    const role = p.parties.find(([x]) => x === party)?.[1];
    values = d.party_params[party] ?? {};
    inherited = merge(d.params, role ? d.role_params[role] : undefined);
    prefix = `party_params.${party}.`;
  } else {
    values = d.params;
    inherited = {};
    prefix = "params.";
  }
  const fieldErrors: Record<string, string> = {};
  for (const e of p.errors) if (e.field.startsWith(prefix)) fieldErrors[e.field.slice(prefix.length)] = e.message;
  const scopeHasError = (s: string) => p.errors.some((e) => e.field.startsWith(s));
  const onChange = (path: string[], value: Json | undefined) =>
    p.update((x) => {
      if (p.scope.kind === "role") {
        const role = p.scope.role;
        return { ...x, role_params: { ...x.role_params, [role]: setPath(x.role_params[role] ?? {}, path, value) } };
      }
      if (p.scope.kind === "party") {
        const party = p.scope.party;
        return { ...x, party_params: { ...x.party_params, [party]: setPath(x.party_params[party] ?? {}, path, value) } };
      }
      return { ...x, params: setPath(x.params, path, value) };
    });
  const nameError = p.taken.includes(d.name) ? t("b.task.nameTaken") : "";
  const otherErrors = p.errors.filter((e) => !e.field.startsWith("params.") && !e.field.startsWith("role_params.") && !e.field.startsWith("party_params."));
  return (
    <section className="builder-task" data-testid="builder-task-panel">
      <h3>
        {componentLabel(t, d.component)} <code>{d.component}</code>
      </h3>
      {p.def && <p className="hint">{p.def.summary}</p>}
      <label>
        {t("b.task.name")}
        <input data-testid="task-name" type="text" value={d.name} onChange={(e) => p.update((x) => ({ ...x, name: e.target.value.trim() }))} />
        {nameError && <span className="field-error">{nameError}</span>}
      </label>
      {otherErrors.map((e, i) => (
        <p key={i} className="field-error" role="alert" data-field={e.field}>
          {e.field && <code>{e.field}</code>} {e.message}
        </p>
      ))}
      <label>
        {t("b.scope")}
        <select
          data-testid="param-scope"
          value={scopeKey(p.scope)}
          onChange={(e) => {
            const v = e.target.value;
            if (v.startsWith("role:")) p.setScope({ kind: "role", role: v.slice(5) as Role });
            else if (v.startsWith("party:")) p.setScope({ kind: "party", party: v.slice(6) });
            else p.setScope({ kind: "all" });
          }}
        >
          <option value="all">{t("b.scope.all")}{scopeHasError("params.") ? " ⚠" : ""}</option>
          {roles.map((r) => (
            <option key={r} value={`role:${r}`}>
              {t("b.scope.role", { role: t(`b.roleName.${r}`) })}
              {d.role_params[r] && Object.keys(d.role_params[r]!).length > 0 ? " •" : ""}
              {scopeHasError(`role_params.${r}.`) ? " ⚠" : ""}
            </option>
          ))}
          {partyNames.map((x) => (
            <option key={x} value={`party:${x}`}>
              {t("b.scope.party", { party: x })}
              {d.party_params[x] && Object.keys(d.party_params[x]).length > 0 ? " •" : ""}
              {scopeHasError(`party_params.${x}.`) ? " ⚠" : ""}
            </option>
          ))}
        </select>
      </label>
      <p className="hint">{t(p.scope.kind === "all" ? "b.scope.allHint" : "b.scope.overrideHint")}</p>
      {p.def ? (
        <SchemaForm schema={p.def.params} values={values} inherited={inherited} onChange={onChange} errors={fieldErrors} />
      ) : (
        <p className="error">{t("b.node.unknown")}</p>
      )}
      <button type="button" className="danger" data-testid="task-delete" onClick={p.remove}>
        {t("b.task.delete")}
      </button>
    </section>
  );
}
