//! The API reference in `docs/reference/`, generated from the CRD schemas (the same doc
//! comments `kubectl explain` shows), so it cannot drift from the API: a test compares it.

use crate::crd::{AuthProvider, OAuthClient};
use kube::CustomResourceExt;
use serde_json::Value;
use std::fmt::Write;

/// Fields whose type is Kubernetes' own: documented in one row, not expanded.
const KUBERNETES_TYPES: [(&str, &str); 5] = [
    ("spec.affinity", "core/v1 Affinity"),
    ("spec.tolerations", "[]core/v1 Toleration"),
    ("spec.resources", "core/v1 ResourceRequirements"),
    ("spec.clientNamespaces.selector", "meta/v1 LabelSelector"),
    ("status.conditions", "[]meta/v1 Condition"),
];

/// File name and Markdown of the reference page of every CRD, in a stable order.
pub fn render_all() -> Vec<(String, String)> {
    [AuthProvider::crd(), OAuthClient::crd()]
        .into_iter()
        .map(|crd| {
            let crd = serde_json::to_value(crd).expect("CRD serializes");
            let kind = crd["spec"]["names"]["kind"].as_str().unwrap_or_default();
            (format!("{}.md", kind.to_lowercase()), render(&crd))
        })
        .collect()
}

/// Markdown for one CRD (as JSON).
pub fn render(crd: &Value) -> String {
    let spec = &crd["spec"];
    let names = &spec["names"];
    let kind = names["kind"].as_str().unwrap_or_default();
    let version = &spec["versions"][0];
    let schema = &version["schema"]["openAPIV3Schema"];
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# {kind} (`{}/{}`)\n",
        spec["group"].as_str().unwrap_or_default(),
        version["name"].as_str().unwrap_or_default()
    );
    let _ = writeln!(
        out,
        "<!-- Generated from the CRD schema by `cargo run -p palisade-operator --bin crddoc -- --out docs/reference/`; do not edit. -->\n"
    );
    // kube-derive's generic root description says nothing; the spec's describes the kind.
    if let Some(d) = schema["description"]
        .as_str()
        .filter(|d| !d.starts_with("Auto-generated"))
    {
        let _ = writeln!(out, "{}\n", one_line(d));
    }
    let short: Vec<String> = strings(&names["shortNames"])
        .iter()
        .map(|s| format!("`{s}`"))
        .collect();
    let _ = writeln!(
        out,
        "Scope: {} · plural `{}` · short names {}\n",
        spec["scope"].as_str().unwrap_or_default(),
        names["plural"].as_str().unwrap_or_default(),
        short.join(", ")
    );
    if let Some(columns) = version["additionalPrinterColumns"].as_array() {
        let cols: Vec<String> = columns
            .iter()
            .map(|c| {
                format!(
                    "{} (`{}`)",
                    c["name"].as_str().unwrap_or_default(),
                    c["jsonPath"].as_str().unwrap_or_default()
                )
            })
            .collect();
        let _ = writeln!(out, "`kubectl get` columns: {}.\n", cols.join(", "));
    }
    for part in ["spec", "status"] {
        let node = &schema["properties"][part];
        if node.is_null() {
            continue;
        }
        let _ = writeln!(out, "## {part}\n");
        if let Some(d) = node["description"].as_str() {
            let _ = writeln!(out, "{}\n", one_line(d));
        }
        let _ = writeln!(out, "| Field | Type | Description |\n|---|---|---|");
        let mut rows = Vec::new();
        fields(node, part, &mut rows);
        for row in rows {
            out.push_str(&row);
        }
        out.push('\n');
    }
    let mut rules = Vec::new();
    validations(schema, "", &mut rules);
    if !rules.is_empty() {
        let _ = writeln!(
            out,
            "## Validation\n\nThe API server refuses an object that breaks one of these rules, with the message shown.\n\n| On | Message |\n|---|---|"
        );
        for (path, message) in rules {
            let _ = writeln!(out, "| `{path}` | {} |", cell(&message));
        }
        out.push('\n');
    }
    out
}

/// One table row per property under `node`, depth first, in schema order.
fn fields(node: &Value, path: &str, rows: &mut Vec<String>) {
    let node = items(node);
    let required = strings(&node["required"]);
    let Some(props) = node["properties"].as_object() else {
        return;
    };
    for (name, child) in props {
        let here = format!("{path}.{name}");
        let embedded = KUBERNETES_TYPES.iter().find(|(p, _)| *p == here);
        let type_ = match embedded {
            Some((_, t)) => format!("Kubernetes {t}"),
            None => type_of(child),
        };
        let mut description = one_line(child["description"].as_str().unwrap_or_default());
        if required.iter().any(|r| r == name) {
            description = format!("**Required.** {description}");
        }
        if let Some(d) = child.get("default") {
            if !description.to_lowercase().contains("default") {
                let _ = write!(description, " Default: `{d}`.");
            }
        }
        rows.push(format!(
            "| `{here}` | {} | {} |\n",
            cell(&type_),
            cell(&description)
        ));
        if embedded.is_none() {
            fields(child, &here, rows);
        }
    }
}

/// The element schema of an array, or the node itself.
fn items(node: &Value) -> &Value {
    if node["type"] == "array" {
        items(&node["items"])
    } else {
        node
    }
}

/// A short human type: `string (one of A, B)`, `[]string`, `map[string]string`, `integer 1–100`.
fn type_of(node: &Value) -> String {
    if node["x-kubernetes-int-or-string"] == true {
        return "integer or string".into();
    }
    let base = match node["type"].as_str() {
        Some("array") => return format!("[]{}", type_of(&node["items"])),
        Some("object") => match node.get("additionalProperties") {
            Some(v) if v.is_object() => format!("map[string]{}", type_of(v)),
            _ => "object".into(),
        },
        Some(t) => t.to_string(),
        None => "any".into(),
    };
    let mut extra = Vec::new();
    if let Some(f) = node["format"].as_str() {
        extra.push(f.to_string());
    }
    if let Some(values) = node["enum"].as_array() {
        let v: Vec<String> = values
            .iter()
            .filter(|v| !v.is_null())
            .map(|v| {
                format!(
                    "`{}`",
                    v.as_str().map(String::from).unwrap_or(v.to_string())
                )
            })
            .collect();
        extra.push(format!("one of {}", v.join(", ")));
    }
    match (number(&node["minimum"]), number(&node["maximum"])) {
        (Some(lo), Some(hi)) => extra.push(format!("{lo}–{hi}")),
        (Some(lo), None) => extra.push(format!("≥ {lo}")),
        (None, Some(hi)) => extra.push(format!("≤ {hi}")),
        _ => {}
    }
    if let Some(n) = node["maxLength"].as_u64() {
        extra.push(format!("at most {n} characters"));
    }
    if let Some(p) = node["pattern"].as_str() {
        extra.push(format!("pattern `{p}`"));
    }
    if extra.is_empty() {
        base
    } else {
        format!("{base} ({})", extra.join("; "))
    }
}

/// Every CEL rule's message with the path it sits on.
fn validations(node: &Value, path: &str, out: &mut Vec<(String, String)>) {
    if let Some(rules) = node["x-kubernetes-validations"].as_array() {
        for r in rules {
            let message = r["message"]
                .as_str()
                .or(r["rule"].as_str())
                .unwrap_or_default();
            let on = if path.is_empty() { "." } else { path };
            out.push((on.to_string(), message.to_string()));
        }
    }
    let node = items(node);
    if let Some(props) = node["properties"].as_object() {
        for (name, child) in props {
            let here = if path.is_empty() {
                name.clone()
            } else {
                format!("{path}.{name}")
            };
            if KUBERNETES_TYPES.iter().any(|(p, _)| *p == here) {
                continue;
            }
            validations(child, &here, out);
        }
    }
}

/// A schema bound as written by a person: `1`, not `1.0`.
fn number(v: &Value) -> Option<String> {
    let f = v.as_f64()?;
    Some(if f.fract() == 0.0 && f.abs() < 1e15 {
        format!("{}", f as i64)
    } else {
        f.to_string()
    })
}

fn strings(v: &Value) -> Vec<String> {
    v.as_array()
        .map(|a| {
            a.iter()
                .filter_map(|s| s.as_str().map(String::from))
                .collect()
        })
        .unwrap_or_default()
}

/// Doc comments wrap lines; a table cell is one line.
fn one_line(s: &str) -> String {
    s.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn cell(s: &str) -> String {
    s.replace('|', "\\|")
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn every_spec_field_gets_a_row_with_its_description_and_type() {
        let pages = render_all();
        let (file, ap) = &pages[0];
        assert_eq!(file, "authprovider.md");
        assert!(ap.starts_with("# AuthProvider (`auth.palisade.dev/v1alpha1`)"));
        let row = ap
            .lines()
            .find(|l| l.starts_with("| `spec.signingKeys.algorithm` |"))
            .expect("algorithm row");
        assert!(row.contains("one of `ES256`, `RS256`, `EdDSA`"), "{row}");
        let issuer = ap
            .lines()
            .find(|l| l.starts_with("| `spec.issuer` |"))
            .unwrap();
        assert!(issuer.contains("**Required.**"), "{issuer}");
        // Kubernetes' own types are one row, not hundreds.
        assert!(ap.contains("| `spec.affinity` | Kubernetes core/v1 Affinity |"));
        assert!(!ap.contains("spec.affinity.nodeAffinity"));
        assert!(ap.contains("## Validation"));
        let (file, oc) = &pages[1];
        assert_eq!(file, "oauthclient.md");
        assert!(oc.contains("| `spec.redirectUris` | []string"), "{oc}");
    }

    #[test]
    fn types_read_like_go_and_show_limits() {
        let t = |v: serde_json::Value| type_of(&v);
        assert_eq!(
            t(
                serde_json::json!({"type": "integer", "format": "int32", "minimum": 1, "maximum": 100})
            ),
            "integer (int32; 1–100)"
        );
        assert_eq!(
            t(serde_json::json!({"type": "object", "additionalProperties": {"type": "string"}})),
            "map[string]string"
        );
        assert_eq!(
            t(
                serde_json::json!({"type": "array", "items": {"type": "string", "enum": ["a", "b"]}})
            ),
            "[]string (one of `a`, `b`)"
        );
    }
}
