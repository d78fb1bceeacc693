//! A small JSON Schema checker for the OpenAPI document's schemas (the keywords schemars
//! emits: `$ref`, `type`, `enum`, `const`, `properties`, `required`, `additionalProperties`,
//! `items`, `anyOf`, `oneOf`, `allOf`, `minimum`), enough to check real answers against them.

use serde_json::Value;

/// Checks `value` against `schema`, resolving `$ref`s in `doc`; the error names the place.
pub fn check(doc: &Value, schema: &Value, value: &Value, at: &str) -> Result<(), String> {
    let Some(s) = schema.as_object() else {
        // `true` accepts everything, `false` nothing.
        return match schema {
            Value::Bool(false) => Err(format!("{at}: no value is allowed")),
            _ => Ok(()),
        };
    };
    if let Some(r) = s.get("$ref").and_then(Value::as_str) {
        let target = resolve(doc, r).ok_or_else(|| format!("{at}: unresolved $ref {r}"))?;
        check(doc, target, value, at)?;
    }
    if let Some(t) = s.get("type") {
        let types: Vec<&str> = match t {
            Value::String(one) => vec![one.as_str()],
            Value::Array(many) => many.iter().filter_map(Value::as_str).collect(),
            _ => vec![],
        };
        if !types.iter().any(|t| has_type(value, t)) {
            return Err(format!("{at}: {value} is not of type {types:?}"));
        }
    }
    if let Some(Value::Array(options)) = s.get("enum")
        && !options.contains(value)
    {
        return Err(format!("{at}: {value} is not one of {options:?}"));
    }
    if let Some(c) = s.get("const")
        && c != value
    {
        return Err(format!("{at}: {value} is not {c}"));
    }
    if let (Some(min), Some(n)) = (s.get("minimum").and_then(Value::as_f64), value.as_f64())
        && n < min
    {
        return Err(format!("{at}: {n} is below {min}"));
    }
    if let Value::Object(obj) = value {
        let props = s.get("properties").and_then(Value::as_object);
        if let Some(Value::Array(required)) = s.get("required") {
            for r in required.iter().filter_map(Value::as_str) {
                if !obj.contains_key(r) {
                    return Err(format!("{at}: missing required '{r}'"));
                }
            }
        }
        for (k, v) in obj {
            match props.and_then(|p| p.get(k)) {
                Some(ps) => check(doc, ps, v, &format!("{at}.{k}"))?,
                None => match s.get("additionalProperties") {
                    Some(Value::Bool(false)) => {
                        return Err(format!("{at}: unexpected property '{k}'"));
                    }
                    Some(extra @ Value::Object(_)) => check(doc, extra, v, &format!("{at}.{k}"))?,
                    _ => {}
                },
            }
        }
    }
    if let (Value::Array(items), Some(item_schema)) = (value, s.get("items")) {
        for (i, v) in items.iter().enumerate() {
            check(doc, item_schema, v, &format!("{at}[{i}]"))?;
        }
    }
    if let Some(Value::Array(all)) = s.get("allOf") {
        for sub in all {
            check(doc, sub, value, at)?;
        }
    }
    if let Some(Value::Array(any)) = s.get("anyOf")
        && !any.iter().any(|sub| check(doc, sub, value, at).is_ok())
    {
        return Err(format!("{at}: {value} matches none of anyOf"));
    }
    if let Some(Value::Array(one)) = s.get("oneOf") {
        let matching = one
            .iter()
            .filter(|sub| check(doc, sub, value, at).is_ok())
            .count();
        if matching != 1 {
            return Err(format!("{at}: {value} matches {matching} of oneOf, not 1"));
        }
    }
    Ok(())
}

fn has_type(v: &Value, t: &str) -> bool {
    match t {
        "null" => v.is_null(),
        "boolean" => v.is_boolean(),
        "string" => v.is_string(),
        "array" => v.is_array(),
        "object" => v.is_object(),
        "number" => v.is_number(),
        "integer" => v.is_i64() || v.is_u64(),
        _ => false,
    }
}

/// The target of a local `$ref` (`#/components/schemas/X`).
pub fn resolve<'a>(doc: &'a Value, r: &str) -> Option<&'a Value> {
    doc.pointer(r.strip_prefix('#')?)
}

/// Every `$ref` string in `v`.
pub fn refs(v: &Value, out: &mut Vec<String>) {
    match v {
        Value::Object(o) => {
            for (k, inner) in o {
                match (k.as_str(), inner) {
                    ("$ref", Value::String(r)) => out.push(r.clone()),
                    _ => refs(inner, out),
                }
            }
        }
        Value::Array(a) => a.iter().for_each(|x| refs(x, out)),
        _ => {}
    }
}

/// The success schema of `method path` (path as in the document, `/api/v1/...`).
pub fn answer_schema<'a>(doc: &'a Value, method: &str, path: &str) -> &'a Value {
    let op = &doc["paths"][path][method.to_ascii_lowercase()];
    assert!(op.is_object(), "{method} {path} is not in the document");
    &op["responses"]["200"]["content"]["application/json"]["schema"]
}
