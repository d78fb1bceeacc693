// One task on the canvas: its component's display name, the task name, and a React Flow
// handle per input (left) and output (right) whose id is the port's name, so a connection
// names the slots the DSL's `inputs` map uses.
import { createContext, useContext } from "react";
import { Handle, Position, type Node, type NodeProps } from "@xyflow/react";
import { useI18n } from "../i18n";
import type { ComponentInfo, TaskData } from "./model";

export type TaskNodeType = Node<TaskData, "task">;

/** What nodes need besides their own data: the component catalogue and the node's errors. */
export type CanvasInfo = {
  components: Map<string, ComponentInfo>;
  /** Validation messages by task name; `inputs.<port>` keys mark a port. */
  errors: Map<string, { field: string; message: string }[]>;
};

export const CanvasContext = createContext<CanvasInfo>({ components: new Map(), errors: new Map() });

export function componentLabel(t: (k: string) => string, name: string): string {
  const key = `b.comp.${name}`;
  const label = t(key);
  return label === key ? name : label;
}

export function TaskNode({ data, selected }: NodeProps<TaskNodeType>) {
  const { t } = useI18n();
  const { components, errors } = useContext(CanvasContext);
  const def = components.get(data.component);
  const mine = errors.get(data.name) ?? [];
  const portError = (port: string) => mine.find((e) => e.field === `inputs.${port}`)?.message;
  return (
    <div
      className={`task-node${selected ? " selected" : ""}${mine.length > 0 ? " has-error" : ""}${def ? "" : " unknown"}`}
      data-testid={`node-${data.name}`}
      data-component={data.component}
    >
      <div className="task-node-head">
        <span className="task-node-component">{componentLabel(t, data.component)}</span>
        <span className="task-node-name">{data.name}</span>
        {mine.length > 0 && (
          <span className="task-node-errors" data-testid={`node-errors-${data.name}`} title={mine.map((e) => e.message).join("\n")}>
            {mine.length}
          </span>
        )}
      </div>
      <div className="task-node-ports">
        <div className="task-node-inputs">
          {(def?.inputs ?? []).map((s) => (
            <div key={s.name} className={`port in${portError(s.name) ? " has-error" : ""}`} title={portError(s.name) ?? `${s.name}: ${t(`b.kind.${s.kind}`)}`}>
              <Handle type="target" position={Position.Left} id={s.name} data-testid={`in-${s.name}`} data-kind={s.kind} />
              <span>
                {s.name}
                {s.required ? "" : "?"}
              </span>
            </div>
          ))}
        </div>
        <div className="task-node-outputs">
          {(def?.outputs ?? []).map((s) => (
            <div key={s.name} className="port out" title={`${s.name}: ${t(`b.kind.${s.kind}`)}`}>
              <span>{s.name}</span>
              <Handle type="source" position={Position.Right} id={s.name} data-testid={`out-${s.name}`} data-kind={s.kind} />
            </div>
          ))}
        </div>
      </div>
      {!def && <div className="task-node-unknown">{t("b.node.unknown")}</div>}
    </div>
  );
}
