// A parameter form generated from a component's JSON Schema (schemars output: `$defs` with
// `$ref`s, nullable types as `["integer", "null"]` or `anyOf [.., {type: null}]`, unit enums as
// `enum` or `oneOf` of `const`s). Fields the form cannot express well (lists of tables, tagged
// unions) are edited as JSON so that every parameter stays reachable.
import { useEffect, useState } from "react";
import { useI18n } from "../i18n";
import type { Json, JsonObject } from "./model";

type Schema = JsonObject;

function isObj(v: unknown): v is JsonObject {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Follows `$ref` and strips `null` alternatives, keeping the description and default. */
export function resolve(s: Json | undefined, root: Schema): Schema {
  if (!isObj(s)) return {};
  let out: Schema = s;
  for (let guard = 0; typeof out.$ref === "string" && guard < 16; guard++) {
    const ref = out.$ref as string;
    const path = ref.replace(/^#\//, "").split("/");
    let target: Json | undefined = root;
    for (const p of path) target = isObj(target) ? target[p] : undefined;
    const { $ref: _ignored, ...rest } = out;
    out = { ...(isObj(target) ? target : {}), ...rest };
  }
  for (const key of ["anyOf", "oneOf"] as const) {
    const alts = out[key];
    if (Array.isArray(alts)) {
      const real = alts.filter((a) => !(isObj(a) && a.type === "null"));
      if (real.length === 1 && alts.length === 2) {
        const { [key]: _drop, ...rest } = out;
        out = { ...resolve(real[0], root), ...rest };
      }
    }
  }
  if (Array.isArray(out.type)) {
    const types = out.type.filter((t) => t !== "null");
    if (types.length === 1) out = { ...out, type: types[0] };
  }
  return out;
}

/** The choices of a unit enum, or undefined. */
function choices(s: Schema, root: Schema): Json[] | undefined {
  if (Array.isArray(s.enum)) return s.enum.filter((v) => v !== null);
  const alts = s.oneOf ?? s.anyOf;
  if (Array.isArray(alts)) {
    const consts = alts.map((a) => resolve(a, root));
    if (consts.every((c) => "const" in c || (Array.isArray(c.enum) && c.enum.length === 1))) {
      return consts.map((c) => ("const" in c ? c.const : (c.enum as Json[])[0]));
    }
  }
  return undefined;
}

export type FormProps = {
  schema: Schema;
  /** The values set at the scope being edited. */
  values: JsonObject;
  /** What applies when this scope sets nothing (the wider scopes' values, else defaults). */
  inherited: JsonObject;
  onChange: (path: string[], value: Json | undefined) => void;
  /** Error messages by dotted parameter path. */
  errors: Record<string, string>;
};

export function SchemaForm({ schema, values, inherited, onChange, errors }: FormProps) {
  const root = schema;
  const props = isObj(root.properties) ? root.properties : {};
  // Parameters the schema does not know (a typo, a removed one) stay visible so they can be
  // removed; the server's validation says what is wrong with them.
  const unknown = Object.keys(values).filter((k) => !(k in props));
  return (
    <div className="schema-form">
      {Object.entries(props).map(([name, s]) => (
        <Field
          key={name}
          path={[name]}
          schema={resolve(s, root)}
          root={root}
          value={values[name]}
          inherited={inherited[name] ?? resolve(s, root).default}
          onChange={onChange}
          errors={errors}
        />
      ))}
      {unknown.map((name) => (
        <Field key={name} path={[name]} schema={{}} root={root} value={values[name]} inherited={undefined} onChange={onChange} errors={errors} />
      ))}
    </div>
  );
}

type FieldProps = {
  path: string[];
  schema: Schema;
  root: Schema;
  value: Json | undefined;
  inherited: Json | undefined;
  onChange: (path: string[], value: Json | undefined) => void;
  errors: Record<string, string>;
};

const show = (v: Json | undefined) => (v === undefined ? "" : typeof v === "string" ? v : JSON.stringify(v));

function Field({ path, schema, root, value, inherited, onChange, errors }: FieldProps) {
  const { t } = useI18n();
  const key = path.join(".");
  const error = errors[key];
  const testid = `param-${key}`;
  const set = (v: Json | undefined) => onChange(path, v);
  const description = typeof schema.description === "string" ? schema.description : "";
  const placeholder = inherited === undefined ? "" : show(inherited);
  let input;
  const opts = choices(schema, root);
  const props = isObj(schema.properties) ? schema.properties : undefined;
  if (opts) {
    input = (
      <select data-testid={testid} value={value === undefined ? "" : JSON.stringify(value)} onChange={(e) => set(e.target.value === "" ? undefined : JSON.parse(e.target.value))}>
        <option value="">{t("b.param.inherit", { value: placeholder || "—" })}</option>
        {opts.map((o) => (
          <option key={JSON.stringify(o)} value={JSON.stringify(o)}>{show(o)}</option>
        ))}
      </select>
    );
  } else if (schema.type === "boolean") {
    input = (
      <select data-testid={testid} value={value === undefined ? "" : String(value)} onChange={(e) => set(e.target.value === "" ? undefined : e.target.value === "true")}>
        <option value="">{t("b.param.inherit", { value: placeholder || "—" })}</option>
        <option value="true">{t("b.param.true")}</option>
        <option value="false">{t("b.param.false")}</option>
      </select>
    );
  } else if (schema.type === "integer" || schema.type === "number") {
    input = (
      <NumberInput
        testid={testid}
        integer={schema.type === "integer"}
        min={typeof schema.minimum === "number" ? schema.minimum : undefined}
        max={typeof schema.maximum === "number" ? schema.maximum : undefined}
        value={value}
        placeholder={placeholder}
        onChange={set}
      />
    );
  } else if (schema.type === "string") {
    input = <input data-testid={testid} type="text" value={typeof value === "string" ? value : show(value)} placeholder={placeholder} onChange={(e) => set(e.target.value === "" ? undefined : e.target.value)} />;
  } else if (schema.type === "array" && resolve(schema.items, root).type === "string") {
    // Lists of names (columns): one per comma.
    input = (
      <ListInput testid={testid} value={value} placeholder={placeholder} onChange={set} />
    );
  } else if (schema.type === "object" && props) {
    const inner = isObj(value) ? value : {};
    const innerInherited = isObj(inherited) ? inherited : {};
    return (
      <fieldset className={`param-group${error ? " has-error" : ""}`} data-testid={`${testid}-group`}>
        <legend title={description}>{key}</legend>
        {error && <p className="field-error" role="alert">{error}</p>}
        {Object.entries(props).map(([name, s]) => (
          <Field
            key={name}
            path={[...path, name]}
            schema={resolve(s, root)}
            root={root}
            value={inner[name]}
            inherited={innerInherited[name] ?? resolve(s, root).default}
            onChange={onChange}
            errors={errors}
          />
        ))}
      </fieldset>
    );
  } else {
    input = <JsonInput testid={testid} value={value} placeholder={placeholder} onChange={set} />;
  }
  return (
    <label className={`param${error ? " has-error" : ""}${value !== undefined ? " is-set" : ""}`} title={description}>
      <span className="param-name">{path[path.length - 1]}</span>
      {input}
      {value !== undefined && (
        <button type="button" className="param-clear" data-testid={`${testid}-clear`} title={t("b.param.clear")} aria-label={t("b.param.clear")} onClick={() => set(undefined)}>
          ×
        </button>
      )}
      {description && <span className="param-help">{description}</span>}
      {error && <span className="field-error" role="alert">{error}</span>}
    </label>
  );
}

/** Text the user is typing is kept while it does not parse yet ("0.", "-"). */
function useDraft(value: Json | undefined, format: (v: Json | undefined) => string) {
  const [draft, setDraft] = useState(format(value));
  useEffect(() => setDraft(format(value)), [JSON.stringify(value)]); // eslint-disable-line
  return [draft, setDraft] as const;
}

function NumberInput(p: { testid: string; integer: boolean; min?: number; max?: number; value: Json | undefined; placeholder: string; onChange: (v: Json | undefined) => void }) {
  const [draft, setDraft] = useDraft(p.value, show);
  return (
    <input
      data-testid={p.testid}
      type="number"
      inputMode={p.integer ? "numeric" : "decimal"}
      step={p.integer ? 1 : "any"}
      min={p.min}
      max={p.max}
      value={draft}
      placeholder={p.placeholder}
      onChange={(e) => {
        const text = e.target.value;
        setDraft(text);
        if (text.trim() === "") return p.onChange(undefined);
        const n = Number(text);
        // A value the browser cannot read as a number is sent as text: the node says why it
        // is wrong, in the same words as for a YAML file.
        p.onChange(Number.isFinite(n) ? n : text);
      }}
    />
  );
}

function ListInput(p: { testid: string; value: Json | undefined; placeholder: string; onChange: (v: Json | undefined) => void }) {
  const format = (v: Json | undefined) => (Array.isArray(v) ? v.map(show).join(", ") : show(v));
  const [draft, setDraft] = useDraft(p.value, format);
  return (
    <input
      data-testid={p.testid}
      type="text"
      value={draft}
      placeholder={p.placeholder}
      onChange={(e) => {
        setDraft(e.target.value);
        const items = e.target.value.split(",").map((s) => s.trim()).filter(Boolean);
        p.onChange(e.target.value.trim() === "" ? undefined : items);
      }}
    />
  );
}

function JsonInput(p: { testid: string; value: Json | undefined; placeholder: string; onChange: (v: Json | undefined) => void }) {
  const { t } = useI18n();
  const [draft, setDraft] = useDraft(p.value, (v) => (v === undefined ? "" : JSON.stringify(v)));
  const [bad, setBad] = useState(false);
  return (
    <>
      <textarea
        data-testid={p.testid}
        rows={2}
        value={draft}
        placeholder={p.placeholder}
        onChange={(e) => {
          setDraft(e.target.value);
          if (e.target.value.trim() === "") {
            setBad(false);
            return p.onChange(undefined);
          }
          try {
            p.onChange(JSON.parse(e.target.value));
            setBad(false);
          } catch {
            setBad(true);
          }
        }}
      />
      {bad && <span className="field-error">{t("b.param.badjson")}</span>}
    </>
  );
}
