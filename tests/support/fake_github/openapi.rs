//! Checks requests (and the fake's own responses) against GitHub's published OpenAPI
//! description, `@octokit/openapi` `generated/api.github.com.json`.
//!
//! The fake answers only what the description allows: an operation is found by method and
//! path template, query parameters and the JSON body are validated against the operation's
//! schemas. The validator is a compact one for the subset of JSON Schema the description
//! uses (OpenAPI 3.0): `$ref`, `type`, `nullable`, `enum`, `required`, `properties`,
//! `additionalProperties`, `items`, `oneOf`/`anyOf`/`allOf`, `minItems`/`maxItems`,
//! `minimum`/`maximum`, `minLength`/`maxLength`. Known limits: `pattern` and `format` are not
//! checked, and `oneOf` is treated as `anyOf` (several of GitHub's `oneOf`s have branches
//! that overlap, and GitHub accepts such bodies).

use std::collections::HashMap;
use std::sync::OnceLock;

use serde_json::Value;

use super::npm;

/// Pinned: version 23.0.2 ships `generated/api.github.com.json`.
pub const OPENAPI_PACKAGE: &str = "@octokit/openapi";
pub const OPENAPI_VERSION: &str = "23.0.2";
pub const OPENAPI_ENV: &str = "DIGESTIF_GITHUB_OPENAPI";

/// (method, template segments, path template).
type OpEntry = (String, Vec<String>, String);

pub struct Spec {
    doc: Value,
    ops: Vec<OpEntry>,
}

/// The operation a request resolved to.
#[derive(Clone, Debug)]
pub struct Operation {
    pub id: String,
    pub template: String,
    pub method: String,
    pub params: HashMap<String, String>,
}

/// The parsed description, loaded once per test binary (it is ~13 MB of JSON).
pub fn spec() -> &'static Spec {
    static SPEC: OnceLock<Spec> = OnceLock::new();
    SPEC.get_or_init(|| {
        let path = npm::package_file(
            OPENAPI_PACKAGE,
            OPENAPI_VERSION,
            "generated/api.github.com.json",
            OPENAPI_ENV,
        );
        let text = std::fs::read(&path).expect("read OpenAPI description");
        let doc: Value = serde_json::from_slice(&text).expect("parse OpenAPI description");
        Spec::new(doc)
    })
}

const METHODS: [&str; 5] = ["get", "post", "put", "patch", "delete"];

impl Spec {
    fn new(doc: Value) -> Spec {
        let mut ops = Vec::new();
        if let Some(paths) = doc["paths"].as_object() {
            for (template, item) in paths {
                for m in METHODS {
                    if item.get(m).is_some() {
                        let segs = template
                            .trim_start_matches('/')
                            .split('/')
                            .map(String::from)
                            .collect();
                        ops.push((m.to_string(), segs, template.clone()));
                    }
                }
            }
        }
        Spec { doc, ops }
    }

    /// Finds the operation for `method` and a (percent-decoded) request path. Literal
    /// segments beat parameters; a trailing parameter (`{path}`, `{ref}`) may span slashes.
    pub fn find(&self, method: &str, path: &str) -> Option<Operation> {
        let method = method.to_ascii_lowercase();
        let req: Vec<&str> = path.trim_start_matches('/').split('/').collect();
        // Score: per segment, literal = 2 and parameter = 1, compared lexicographically, so
        // the earliest literal match wins like GitHub's router.
        let mut best: Option<(Vec<u8>, &OpEntry, HashMap<String, String>)> = None;
        for op in &self.ops {
            if op.0 != method {
                continue;
            }
            let segs = &op.1;
            if segs.len() > req.len() {
                continue;
            }
            // Only these trailing parameters hold slash-separated values (`heads/a/b`,
            // `dir/file`); `/repos/{owner}/{repo}` must not swallow unknown sub-paths.
            let last_is_param = segs
                .last()
                .is_some_and(|s| ["{path}", "{ref}", "{branch}"].contains(&s.as_str()));
            if segs.len() < req.len() && !last_is_param {
                continue;
            }
            let mut score = Vec::new();
            let mut params = HashMap::new();
            let mut ok = true;
            for (i, s) in segs.iter().enumerate() {
                let is_last = i + 1 == segs.len();
                if is_param(s) {
                    let value = if is_last && last_is_param {
                        req[i..].join("/")
                    } else {
                        req[i].to_string()
                    };
                    if value.is_empty() {
                        ok = false;
                        break;
                    }
                    params.insert(s[1..s.len() - 1].to_string(), value);
                    score.push(1);
                } else if s == req[i] {
                    score.push(2);
                } else {
                    ok = false;
                    break;
                }
            }
            // A parameter spanning several segments is a weaker match than an exact one.
            if segs.len() < req.len() {
                score.push(0);
            }
            if ok && best.as_ref().is_none_or(|(b, _, _)| score > *b) {
                best = Some((score, op, params));
            }
        }
        let (_, op, params) = best?;
        let id = self.doc["paths"][&op.2][&op.0]["operationId"]
            .as_str()
            .unwrap_or_default()
            .to_string();
        Some(Operation {
            id,
            template: op.2.clone(),
            method: op.0.clone(),
            params,
        })
    }

    fn operation(&self, op: &Operation) -> &Value {
        &self.doc["paths"][&op.template][&op.method]
    }

    /// Follows `$ref`s (`#/components/...`) until a non-reference value.
    pub fn resolve<'a>(&'a self, mut v: &'a Value) -> &'a Value {
        for _ in 0..32 {
            let Some(r) = v.get("$ref").and_then(Value::as_str) else {
                return v;
            };
            let mut cur = &self.doc;
            for part in r.trim_start_matches("#/").split('/') {
                cur = &cur[part.replace("~1", "/").replace("~0", "~")];
            }
            v = cur;
        }
        v
    }

    /// Validates the query string parameters GitHub documents for the operation. Unknown
    /// parameters are ignored (GitHub ignores them too).
    pub fn check_query(&self, op: &Operation, query: &[(String, String)]) -> Vec<String> {
        let mut errors = Vec::new();
        let Some(params) = self.operation(op)["parameters"].as_array() else {
            return errors;
        };
        for p in params {
            let p = self.resolve(p);
            if p["in"] != "query" {
                continue;
            }
            let name = p["name"].as_str().unwrap_or_default();
            let Some((_, raw)) = query.iter().find(|(k, _)| k == name) else {
                if p["required"] == true {
                    errors.push(format!("query parameter `{name}` is required"));
                }
                continue;
            };
            let schema = self.resolve(&p["schema"]);
            // Query values arrive as strings; convert by the declared type before validating.
            let value = match schema["type"].as_str() {
                Some("integer") => match raw.parse::<i64>() {
                    Ok(n) => Value::from(n),
                    Err(_) => {
                        errors.push(format!(
                            "query parameter `{name}`: `{raw}` is not an integer"
                        ));
                        continue;
                    }
                },
                Some("boolean") => match raw.as_str() {
                    "true" => Value::Bool(true),
                    "false" => Value::Bool(false),
                    _ => {
                        errors.push(format!(
                            "query parameter `{name}`: `{raw}` is not a boolean"
                        ));
                        continue;
                    }
                },
                Some("array") => {
                    Value::Array(raw.split(',').map(|s| Value::from(s.to_string())).collect())
                }
                _ => Value::from(raw.clone()),
            };
            for e in self.validate(schema, &value, &format!("?{name}")) {
                errors.push(format!("query parameter {e}"));
            }
        }
        errors
    }

    /// Validates a request body against the operation's `requestBody`.
    pub fn check_body(&self, op: &Operation, body: Option<&Value>) -> Vec<String> {
        let rb = self.resolve(&self.operation(op)["requestBody"]);
        if rb.is_null() {
            return Vec::new();
        }
        let schema = &rb["content"]["application/json"]["schema"];
        match body {
            None if rb["required"] == true => vec!["request body is required".into()],
            None => Vec::new(),
            Some(_) if schema.is_null() => Vec::new(),
            Some(b) => self.validate(schema, b, ""),
        }
    }

    /// Validates a response body the fake produced against the documented schema for its
    /// status (used to keep the fake honest: octocrab's models are strict).
    pub fn check_response(&self, op: &Operation, status: u16, body: &Value) -> Vec<String> {
        let resp = self.resolve(&self.operation(op)["responses"][status.to_string()]);
        if resp.is_null() {
            return vec![format!("status {status} is not documented for {}", op.id)];
        }
        let schema = &resp["content"]["application/json"]["schema"];
        if schema.is_null() {
            return Vec::new();
        }
        self.validate(schema, body, "")
    }

    /// Errors as `<json pointer>: <what is wrong>`; empty when `value` is valid.
    pub fn validate(&self, schema: &Value, value: &Value, pointer: &str) -> Vec<String> {
        let mut errors = Vec::new();
        self.validate_into(schema, value, pointer, &mut errors);
        errors
    }

    fn validate_into(&self, schema: &Value, value: &Value, ptr: &str, errors: &mut Vec<String>) {
        let schema = self.resolve(schema);
        let Some(s) = schema.as_object() else {
            return;
        };
        let at = if ptr.is_empty() { "/" } else { ptr };
        if value.is_null()
            && (s.get("nullable") == Some(&Value::Bool(true)) || type_allows(s.get("type"), "null"))
        {
            return;
        }
        let all = s.get("allOf").and_then(Value::as_array);
        // Spec quirk: where GitHub's generator inlines an `anyOf` of whole types (e.g. an
        // installation's `account`: Simple User | Enterprise) it sometimes emits `allOf`.
        // Several titled members mean "one of these types", never "all of them at once".
        let whole_types = all.is_some_and(|a| {
            a.len() > 1 && a.iter().all(|m| self.resolve(m).get("title").is_some())
        });
        if let Some(all) = all.filter(|_| !whole_types) {
            for sub in all {
                self.validate_into(sub, value, ptr, errors);
            }
        }
        for key in ["oneOf", "anyOf", "allOf"] {
            if key == "allOf" && !whole_types {
                continue;
            }
            if let Some(alts) = s.get(key).and_then(Value::as_array) {
                // A null may be allowed by a `nullable` alternative.
                let ok = alts.iter().any(|a| self.validate(a, value, ptr).is_empty());
                if !ok {
                    let details: Vec<String> = alts
                        .iter()
                        .map(|a| self.validate(a, value, ptr).join("; "))
                        .collect();
                    errors.push(format!(
                        "{at}: matches no alternative of {key} ({})",
                        details.join(" | ")
                    ));
                }
            }
        }
        if let Some(t) = s.get("type") {
            let actual = json_type(value);
            let ok = type_allows(Some(t), actual)
                || (actual == "integer" && type_allows(Some(t), "number"));
            if !ok {
                errors.push(format!("{at}: expected {t}, got {actual}"));
                return;
            }
        }
        if let Some(e) = s.get("enum").and_then(Value::as_array)
            && !e.contains(value)
        {
            errors.push(format!(
                "{at}: {value} is not one of {}",
                Value::Array(e.clone())
            ));
        }
        match value {
            Value::Object(map) => {
                if let Some(req) = s.get("required").and_then(Value::as_array) {
                    for r in req.iter().filter_map(Value::as_str) {
                        if !map.contains_key(r) {
                            errors.push(format!("{at}: missing required property `{r}`"));
                        }
                    }
                }
                let props = s.get("properties").and_then(Value::as_object);
                for (k, v) in map {
                    let child = format!("{ptr}/{}", k.replace('~', "~0").replace('/', "~1"));
                    if let Some(ps) = props.and_then(|p| p.get(k)) {
                        self.validate_into(ps, v, &child, errors);
                    } else {
                        match s.get("additionalProperties") {
                            Some(Value::Bool(false)) => {
                                errors.push(format!("{child}: property not allowed"))
                            }
                            Some(ap @ Value::Object(_)) => {
                                self.validate_into(ap, v, &child, errors)
                            }
                            _ => {}
                        }
                    }
                }
            }
            Value::Array(items) => {
                if let Some(n) = s.get("minItems").and_then(Value::as_u64)
                    && (items.len() as u64) < n
                {
                    errors.push(format!("{at}: fewer than {n} items"));
                }
                if let Some(n) = s.get("maxItems").and_then(Value::as_u64)
                    && (items.len() as u64) > n
                {
                    errors.push(format!("{at}: more than {n} items"));
                }
                if let Some(item_schema) = s.get("items") {
                    for (i, v) in items.iter().enumerate() {
                        self.validate_into(item_schema, v, &format!("{ptr}/{i}"), errors);
                    }
                }
            }
            Value::Number(n) => {
                let x = n.as_f64().unwrap_or(0.0);
                if let Some(min) = s.get("minimum").and_then(Value::as_f64)
                    && x < min
                {
                    errors.push(format!("{at}: {x} is less than {min}"));
                }
                if let Some(max) = s.get("maximum").and_then(Value::as_f64)
                    && x > max
                {
                    errors.push(format!("{at}: {x} is more than {max}"));
                }
            }
            Value::String(st) => {
                let len = st.chars().count() as u64;
                if let Some(n) = s.get("minLength").and_then(Value::as_u64)
                    && len < n
                {
                    errors.push(format!("{at}: shorter than {n}"));
                }
                if let Some(n) = s.get("maxLength").and_then(Value::as_u64)
                    && len > n
                {
                    errors.push(format!("{at}: longer than {n}"));
                }
            }
            _ => {}
        }
    }
}

fn is_param(seg: &str) -> bool {
    seg.starts_with('{') && seg.ends_with('}')
}

fn json_type(v: &Value) -> &'static str {
    match v {
        Value::Null => "null",
        Value::Bool(_) => "boolean",
        Value::Number(n) if n.is_i64() || n.is_u64() => "integer",
        Value::Number(_) => "number",
        Value::String(_) => "string",
        Value::Array(_) => "array",
        Value::Object(_) => "object",
    }
}

fn type_allows(t: Option<&Value>, actual: &str) -> bool {
    match t {
        Some(Value::String(s)) => s == actual,
        Some(Value::Array(a)) => a.iter().any(|x| x == actual),
        _ => false,
    }
}
