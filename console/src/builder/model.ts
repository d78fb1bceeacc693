// The job builder's data model and the pure conversions between a job spec (the DSL of
// crates/ferry-node/src/dsl.rs) and the graph drawn on the canvas. No React here: these
// functions decide what "the same job" means, so they stay small and testable.
import { dump, load } from "js-yaml";

export type Json = null | boolean | number | string | Json[] | { [k: string]: Json };
export type JsonObject = { [k: string]: Json };

export type Slot = { name: string; kind: string; required: boolean };
export type ComponentInfo = {
  name: string;
  summary: string;
  inputs: Slot[];
  outputs: Slot[];
  params: JsonObject;
  allowed?: boolean;
};

export type Role = "guest" | "host" | "arbiter";
export const ROLES: Role[] = ["guest", "host", "arbiter"];

export type TaskSpec = {
  name: string;
  component: string;
  inputs?: Record<string, string>;
  params?: JsonObject;
  role_params?: Partial<Record<Role, JsonObject>>;
  party_params?: Record<string, JsonObject>;
};

export type PartiesSpec = { guest: string; hosts?: string[]; arbiter?: string | null };

export type JobSpec = {
  name?: string | null;
  parties: PartiesSpec;
  tasks: TaskSpec[];
  /** timeout_secs, project, suite, and whatever the DSL adds: kept as they are. */
  [setting: string]: unknown;
};

/** Everything of the job that is not a task. */
export type JobSettings = {
  name: string;
  guest: string;
  hosts: string[];
  arbiter: string;
  /** The spec's other top-level settings (timeout_secs, project, suite...), kept verbatim. */
  extra: JsonObject;
};

/** One task as the canvas holds it. `id` is stable while `name` may be edited. */
export type TaskData = {
  name: string;
  component: string;
  params: JsonObject;
  role_params: Partial<Record<Role, JsonObject>>;
  party_params: Record<string, JsonObject>;
  /** Inputs whose source cannot be drawn (unknown task, component or output), kept verbatim. */
  loose_inputs: Record<string, string>;
};

export type GraphNode = { id: string; data: TaskData; position: { x: number; y: number } };

/** An input: output `sourceHandle` of node `source` into input `targetHandle` of `target`. */
export type GraphEdge = {
  id: string;
  source: string;
  sourceHandle: string;
  target: string;
  targetHandle: string;
  /** The reference as the spec wrote it (`task` or `task.output`), so a saved job keeps it. */
  ref?: string;
};

export type Graph = { settings: JobSettings; nodes: GraphNode[]; edges: GraphEdge[] };

export const edgeId = (target: string, input: string) => `${target}:${input}`;

function isObject(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Parses YAML (or JSON) into a job spec, checking only its shape; the node checks the rest. */
export function parseSpec(text: string): JobSpec {
  const doc = load(text);
  if (!isObject(doc)) throw new Error("not a job spec: expected a mapping with 'parties' and 'tasks'");
  if (!isObject(doc.parties)) throw new Error("'parties' must be a mapping (guest, hosts, arbiter)");
  if (!Array.isArray(doc.tasks)) throw new Error("'tasks' must be a list");
  for (const t of doc.tasks) {
    if (!isObject(t) || typeof t.name !== "string" || typeof t.component !== "string") {
      throw new Error("every task needs a 'name' and a 'component'");
    }
  }
  return doc as unknown as JobSpec;
}

/** The output slot an input reference names: `task` is the task's first output. */
function resolveRef(ref: string, byName: Map<string, TaskData>, components: Map<string, ComponentInfo>) {
  const dot = ref.indexOf(".");
  const task = dot < 0 ? ref : ref.slice(0, dot);
  const out = dot < 0 ? undefined : ref.slice(dot + 1);
  const source = byName.get(task);
  const def = source && components.get(source.component);
  if (!def) return undefined;
  const slot = out === undefined ? def.outputs[0] : def.outputs.find((s) => s.name === out);
  return slot ? { task, output: slot.name } : undefined;
}

/** Depth of every node (longest chain of inputs above it), for the automatic layout. */
export function depths(nodes: GraphNode[], edges: GraphEdge[]): Map<string, number> {
  const depth = new Map<string, number>();
  const incoming = new Map<string, string[]>();
  for (const e of edges) incoming.set(e.target, [...(incoming.get(e.target) ?? []), e.source]);
  const visit = (id: string, path: Set<string>): number => {
    const known = depth.get(id);
    if (known !== undefined) return known;
    if (path.has(id)) return 0; // a cycle: the node validation reports it
    path.add(id);
    const d = Math.max(-1, ...(incoming.get(id) ?? []).map((s) => visit(s, path))) + 1;
    path.delete(id);
    depth.set(id, d);
    return d;
  };
  for (const n of nodes) visit(n.id, new Set());
  return depth;
}

/** Columns by dependency depth, rows in file order within a column. */
export function layout(nodes: GraphNode[], edges: GraphEdge[]): GraphNode[] {
  const depth = depths(nodes, edges);
  const rows = new Map<number, number>();
  return nodes.map((n) => {
    const d = depth.get(n.id) ?? 0;
    const row = rows.get(d) ?? 0;
    rows.set(d, row + 1);
    return { ...n, position: { x: 40 + d * 230, y: 40 + row * 130 } };
  });
}

/** Spec → graph. Node ids are the task names at load time; positions come from `layout`. */
export function specToGraph(spec: JobSpec, components: ComponentInfo[]): Graph {
  const defs = new Map(components.map((c) => [c.name, c]));
  const nodes: GraphNode[] = spec.tasks.map((t) => ({
    id: t.name,
    position: { x: 0, y: 0 },
    data: {
      name: t.name,
      component: t.component,
      params: { ...(t.params ?? {}) },
      role_params: { ...(t.role_params ?? {}) },
      party_params: { ...(t.party_params ?? {}) },
      loose_inputs: {},
    },
  }));
  const byName = new Map(nodes.map((n) => [n.data.name, n.data]));
  const edges: GraphEdge[] = [];
  spec.tasks.forEach((t, i) => {
    const node = nodes[i];
    const def = defs.get(t.component);
    for (const [input, ref] of Object.entries(t.inputs ?? {})) {
      const r = typeof ref === "string" ? resolveRef(ref, byName, defs) : undefined;
      const slotKnown = def?.inputs.some((s) => s.name === input);
      // A task defined twice cannot be told apart on the canvas; keep such inputs verbatim.
      const unique = spec.tasks.filter((x) => x.name === r?.task).length === 1;
      if (r && slotKnown && unique && r.task !== t.name) {
        edges.push({ id: edgeId(node.id, input), source: r.task, sourceHandle: r.output, target: node.id, targetHandle: input, ref });
      } else {
        node.data.loose_inputs[input] = String(ref);
      }
    }
  });
  return {
    settings: {
      name: spec.name ?? "",
      guest: spec.parties.guest ?? "",
      hosts: [...(spec.parties.hosts ?? [])],
      arbiter: spec.parties.arbiter ?? "",
      extra: Object.fromEntries(
        Object.entries(spec).filter(([k, v]) => !["name", "parties", "tasks"].includes(k) && v !== undefined && v !== null),
      ) as JsonObject,
    },
    nodes: layout(nodes, edges),
    edges,
  };
}

/** The reference an edge writes: as it was read when its source and output are unchanged. */
function refOf(e: GraphEdge, source: TaskData, defs: Map<string, ComponentInfo>): string {
  if (e.ref) {
    const dot = e.ref.indexOf(".");
    const task = dot < 0 ? e.ref : e.ref.slice(0, dot);
    const def = defs.get(source.component);
    const out = dot < 0 ? def?.outputs[0]?.name : e.ref.slice(dot + 1);
    if (task === source.name && out === e.sourceHandle) return e.ref;
  }
  const outputs = defs.get(source.component)?.outputs ?? [];
  return outputs.length === 1 && outputs[0].name === e.sourceHandle ? source.name : `${source.name}.${e.sourceHandle}`;
}

const nonEmpty = <T extends object>(o: T | undefined) => (o && Object.keys(o).length > 0 ? o : undefined);

/** Graph → spec, tasks in node order; empty sections are left out (the DSL's defaults). */
export function graphToSpec(g: Graph, components: ComponentInfo[]): JobSpec {
  const defs = new Map(components.map((c) => [c.name, c]));
  const byId = new Map(g.nodes.map((n) => [n.id, n.data]));
  const parties: PartiesSpec = { guest: g.settings.guest };
  if (g.settings.hosts.length > 0) parties.hosts = [...g.settings.hosts];
  if (g.settings.arbiter) parties.arbiter = g.settings.arbiter;
  const spec: JobSpec = g.settings.name ? { name: g.settings.name, parties, tasks: [] } : { parties, tasks: [] };
  for (const n of g.nodes) {
    const t: TaskSpec = { name: n.data.name, component: n.data.component };
    const inputs: Record<string, string> = { ...n.data.loose_inputs };
    for (const e of g.edges.filter((e) => e.target === n.id)) {
      const source = byId.get(e.source);
      if (source) inputs[e.targetHandle] = refOf(e, source, defs);
    }
    // In the order the component declares its inputs, as people write them.
    const slots = defs.get(n.data.component)?.inputs.map((s) => s.name) ?? [];
    const rank = (k: string) => (slots.includes(k) ? slots.indexOf(k) : slots.length);
    const ordered = Object.fromEntries(Object.entries(inputs).sort(([a], [b]) => rank(a) - rank(b) || a.localeCompare(b)));
    if (nonEmpty(ordered)) t.inputs = ordered;
    if (nonEmpty(n.data.params)) t.params = n.data.params;
    const roles = Object.fromEntries(Object.entries(n.data.role_params).filter(([, v]) => nonEmpty(v)));
    if (nonEmpty(roles)) t.role_params = roles;
    const partyParams = Object.fromEntries(Object.entries(n.data.party_params).filter(([, v]) => nonEmpty(v)));
    if (nonEmpty(partyParams)) t.party_params = partyParams;
    spec.tasks.push(t);
  }
  for (const [k, v] of Object.entries(g.settings.extra)) spec[k] = v;
  return spec;
}

export function specToYaml(spec: JobSpec): string {
  // Block style for the job and its tasks, flow style for small maps keeps it readable;
  // `noRefs`: a value used twice is written twice (the DSL has no anchors to resolve).
  return dump(spec, { noRefs: true, lineWidth: 120, flowLevel: 3 });
}

/** Whether connecting `source.output` → `target.input` is allowed; the reason if not. */
export function connectionProblem(
  g: { nodes: GraphNode[]; edges: GraphEdge[] },
  components: ComponentInfo[],
  c: { source: string; sourceHandle: string; target: string; targetHandle: string },
): { key: string; vars?: Record<string, string> } | null {
  const defs = new Map(components.map((d) => [d.name, d]));
  const src = g.nodes.find((n) => n.id === c.source);
  const dst = g.nodes.find((n) => n.id === c.target);
  if (!src || !dst) return { key: "b.conn.unknown" };
  if (src.id === dst.id) return { key: "b.conn.self" };
  const out = defs.get(src.data.component)?.outputs.find((s) => s.name === c.sourceHandle);
  const inp = defs.get(dst.data.component)?.inputs.find((s) => s.name === c.targetHandle);
  if (!out || !inp) return { key: "b.conn.unknown" };
  if (out.kind !== inp.kind) {
    return { key: "b.conn.kind", vars: { input: inp.name, want: inp.kind, output: out.name, have: out.kind } };
  }
  // A cycle: the target already feeds (directly or not) into the source.
  const reach = new Set<string>([dst.id]);
  const stack = [dst.id];
  while (stack.length > 0) {
    const at = stack.pop()!;
    for (const e of g.edges) {
      if (e.source === at && !reach.has(e.target)) {
        reach.add(e.target);
        stack.push(e.target);
      }
    }
  }
  if (reach.has(src.id)) return { key: "b.conn.cycle", vars: { from: src.data.name, to: dst.data.name } };
  return null;
}

/** A task name not yet used: the component's name, then name_2, name_3... */
export function freshName(base: string, taken: string[]): string {
  if (!taken.includes(base)) return base;
  for (let i = 2; ; i++) if (!taken.includes(`${base}_${i}`)) return `${base}_${i}`;
}
