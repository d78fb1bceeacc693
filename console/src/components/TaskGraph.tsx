// A job's tasks as a graph (read-only), coloured by each task's status, with @xyflow/react —
// the same maintained graph library the job builder edits with.
import { useMemo } from "react";
import { ReactFlow, Background, Controls, MarkerType, Position, type Edge, type Node } from "@xyflow/react";
import "@xyflow/react/dist/style.css";
import { useI18n } from "../i18n";

export type SpecTask = { name: string; component: string; inputs?: Record<string, unknown> };
export type TaskState = { task: string; status: string; progress: number };

/** The tasks an input refers to: "read", "split.train", or a list of them. */
export function upstream(inputs: Record<string, unknown> | undefined): string[] {
  const out: string[] = [];
  const add = (v: unknown) => {
    if (typeof v === "string") out.push(v.split(".")[0]);
    else if (Array.isArray(v)) v.forEach(add);
  };
  Object.values(inputs ?? {}).forEach(add);
  return [...new Set(out)];
}

export const STATUS_COLORS: Record<string, string> = {
  succeeded: "#2e7d32",
  running: "#1565c0",
  failed: "#c62828",
  cancelled: "#6d4c41",
  pending: "#9e9e9e",
  waiting: "#9e9e9e",
  skipped: "#bdbdbd",
  reused: "#558b2f",
};

/** Columns by depth (a task sits right of everything it reads), rows in spec order. */
function layout(tasks: SpecTask[]): Map<string, { x: number; y: number }> {
  const depth = new Map<string, number>();
  const byName = new Map(tasks.map((t) => [t.name, t]));
  const visit = (name: string, seen: Set<string>): number => {
    const known = depth.get(name);
    if (known !== undefined) return known;
    if (seen.has(name)) return 0; // a cycle is refused by the node; never loop here
    seen.add(name);
    const ups = upstream(byName.get(name)?.inputs).filter((u) => byName.has(u));
    const d = ups.length ? Math.max(...ups.map((u) => visit(u, seen) + 1)) : 0;
    depth.set(name, d);
    return d;
  };
  tasks.forEach((t) => visit(t.name, new Set()));
  const rows = new Map<number, number>();
  const pos = new Map<string, { x: number; y: number }>();
  for (const t of tasks) {
    const d = depth.get(t.name) ?? 0;
    const r = rows.get(d) ?? 0;
    rows.set(d, r + 1);
    pos.set(t.name, { x: d * 210, y: r * 90 });
  }
  return pos;
}

export function TaskGraph({ tasks, states }: { tasks: SpecTask[]; states: TaskState[] }) {
  const { t } = useI18n();
  const byTask = new Map(states.map((s) => [s.task, s]));
  const key = states.map((s) => `${s.task}:${s.status}:${s.progress}`).join("|");
  const { nodes, edges } = useMemo(() => {
    const pos = layout(tasks);
    const nodes: Node[] = tasks.map((task) => {
      const s = byTask.get(task.name);
      const status = s?.status ?? "pending";
      const color = STATUS_COLORS[status] ?? "#9e9e9e";
      const label = t(`status.${status}`);
      return {
        id: task.name,
        position: pos.get(task.name) ?? { x: 0, y: 0 },
        data: {
          label: (
            <div className="graph-node" data-testid={`task-node-${task.name}`} data-status={status}>
              <strong>{task.name}</strong>
              <span>{task.component}</span>
              <span>
                {label.startsWith("status.") ? status : label}
                {status === "running" && s ? ` ${Math.round(s.progress * 100)}%` : ""}
              </span>
            </div>
          ),
        },
        // Left to right, as the columns are laid out.
        sourcePosition: Position.Right,
        targetPosition: Position.Left,
        style: { border: `2px solid ${color}`, background: `${color}1a`, width: 170, padding: 4 },
        draggable: false,
        connectable: false,
      };
    });
    const edges: Edge[] = tasks.flatMap((task) =>
      upstream(task.inputs)
        .filter((u) => pos.has(u))
        .map((u) => ({
          id: `${u}->${task.name}`,
          source: u,
          target: task.name,
          animated: byTask.get(task.name)?.status === "running",
          markerEnd: { type: MarkerType.ArrowClosed },
        })),
    );
    return { nodes, edges };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [tasks, key, t]);
  return (
    <div className="task-graph" data-testid="task-graph">
      <ReactFlow
        nodes={nodes}
        edges={edges}
        fitView
        nodesDraggable={false}
        nodesConnectable={false}
        elementsSelectable={false}
        proOptions={{ hideAttribution: true }}
        minZoom={0.2}
      >
        <Background />
        <Controls showInteractive={false} />
      </ReactFlow>
    </div>
  );
}
