//! A small, deterministic YAML emitter for snapshots.
//!
//! Hand-written on purpose: the CLI (`cgrepro run`) compares outcomes with the stored
//! `.snap` files byte for byte, so tests and CLI must render identically, and insta's own
//! serializer is internal API. Maps keep insertion order (struct field order), strings
//! are plain when unambiguous, double-quoted otherwise, and multi-line strings are block
//! literals.

use serde_json::Value;

pub fn to_yaml(v: &Value) -> String {
    let mut out = String::new();
    emit(v, 0, &mut out, true);
    if !out.ends_with('\n') {
        out.push('\n');
    }
    out
}

fn indent(n: usize) -> String {
    "  ".repeat(n)
}

fn emit(v: &Value, level: usize, out: &mut String, top: bool) {
    match v {
        Value::Object(m) if m.is_empty() => out.push_str(" {}\n"),
        Value::Object(m) => {
            if !top {
                out.push('\n');
            }
            for (k, val) in m {
                out.push_str(&indent(level));
                out.push_str(&scalar_str(k));
                out.push(':');
                emit(val, level + 1, out, false);
            }
        }
        Value::Array(a) if a.is_empty() => out.push_str(" []\n"),
        Value::Array(a) => {
            out.push('\n');
            for item in a {
                out.push_str(&indent(level.saturating_sub(1)));
                out.push_str("  -");
                match item {
                    Value::Object(m) if !m.is_empty() => {
                        // First key on the dash line, the rest aligned under it.
                        let mut first = true;
                        for (k, val) in m {
                            if first {
                                out.push(' ');
                                first = false;
                            } else {
                                out.push_str(&indent(level + 1));
                            }
                            out.push_str(&scalar_str(k));
                            out.push(':');
                            emit(val, level + 2, out, false);
                        }
                    }
                    other => emit(other, level + 1, out, false),
                }
            }
        }
        Value::String(s) if s.contains('\n') => {
            let body = s.strip_suffix('\n').unwrap_or(s);
            let chomp = if s.ends_with('\n') { "" } else { "-" };
            if body.lines().any(|l| l.starts_with(' ')) || body.is_empty() {
                out.push(' ');
                out.push_str(&quoted(s));
                out.push('\n');
                return;
            }
            out.push_str(&format!(" |{chomp}\n"));
            for line in body.split('\n') {
                if line.is_empty() {
                    out.push('\n');
                } else {
                    out.push_str(&indent(level));
                    out.push_str(line);
                    out.push('\n');
                }
            }
        }
        other => {
            out.push(' ');
            out.push_str(&scalar(other));
            out.push('\n');
        }
    }
}

fn scalar(v: &Value) -> String {
    match v {
        Value::Null => "~".into(),
        Value::Bool(b) => b.to_string(),
        Value::Number(n) => n.to_string(),
        Value::String(s) => scalar_str(s),
        _ => unreachable!("containers are emitted structurally"),
    }
}

fn scalar_str(s: &str) -> String {
    if plain_ok(s) {
        s.to_owned()
    } else {
        quoted(s)
    }
}

fn plain_ok(s: &str) -> bool {
    if s.is_empty() || s.trim() != s {
        return false;
    }
    let first = s.chars().next().unwrap_or(' ');
    if "-?:,[]{}#&*!|>'\"%@`~".contains(first) {
        return false;
    }
    if s.contains(": ") || s.contains(" #") || s.ends_with(':') {
        return false;
    }
    if s.chars().any(|c| c.is_control()) {
        return false;
    }
    let lower = s.to_ascii_lowercase();
    if [
        "true", "false", "yes", "no", "on", "off", "null", "~", "y", "n",
    ]
    .contains(&lower.as_str())
    {
        return false;
    }
    // Anything a YAML reader would take for a number.
    if s.parse::<f64>().is_ok() || s.starts_with("0x") || s.starts_with("0o") {
        return false;
    }
    true
}

fn quoted(s: &str) -> String {
    serde_json::to_string(s).unwrap_or_else(|_| format!("{s:?}"))
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;

    #[test]
    fn renders_nested_values_readably() {
        let v = json!({
            "class": "panic",
            "message": "path should be valid: \"/kata_overhead/x\"",
            "frames": ["a::b", "c::d"],
            "ops": [{"op": "create", "status": "ok"}],
            "written": {"memory/x/memory.limit_in_bytes": "268435456"},
            "tail": "line 1\nline 2\n",
            "empty": [],
            "number_like": "0.2.9",
            "version": "1.0",
        });
        insta::assert_snapshot!(to_yaml(&v), @r#"
        class: panic
        message: "path should be valid: \"/kata_overhead/x\""
        frames:
          - a::b
          - c::d
        ops:
          - op: create
            status: ok
        written:
          memory/x/memory.limit_in_bytes: "268435456"
        tail: |
          line 1
          line 2
        empty: []
        number_like: 0.2.9
        version: "1.0"
        "#);
    }
}
