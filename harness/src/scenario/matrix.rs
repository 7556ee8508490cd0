//! `[matrix]` expansion. An axis is a dotted field (`host.preset`, `target.version`,
//! `runtime.sandbox_cgroup_only`, ...) with a list of values; cells are the cartesian
//! product, in file order (the first axis varies slowest).

use super::error::{suggest, ScenarioError};
use super::parse::{Locator, RawFile};

const TABLES: &[&str] = &["host", "target", "pod", "runtime"];

#[derive(Debug, Clone)]
pub(super) struct Axis {
    pub name: String,
    path: Vec<String>,
    values: Vec<toml::Value>,
    pub labels: Vec<String>,
}

/// How a value appears in case names and `when` globs.
pub(super) fn label(v: &toml::Value) -> String {
    match v {
        toml::Value::String(s) => s.clone(),
        other => other.to_string(),
    }
}

pub(super) fn axes(matrix: &toml::Table, loc: &Locator) -> Result<Vec<Axis>, ScenarioError> {
    let mut out = Vec::new();
    for (name, values) in matrix {
        let path: Vec<String> = name.split('.').map(str::to_owned).collect();
        if path.len() < 2 || !TABLES.contains(&path[0].as_str()) {
            return Err(loc
                .error(loc.matrix_key(name), format!("matrix axis `{name}` is not a field"))
                .field(format!("matrix.\"{name}\""))
                .hint(format!(
                    "an axis is a dotted field in one of the tables {}, e.g. \"host.preset\" or \"target.version\"",
                    TABLES.join(", ")
                )));
        }
        let toml::Value::Array(values) = values else {
            return Err(loc
                .error(
                    loc.span(&format!("matrix.{name}")).or(loc.matrix_key(name)),
                    format!("matrix axis `{name}` must be a list of values"),
                )
                .field(format!("matrix.\"{name}\""))
                .hint(format!("write \"{name}\" = [\"a\", \"b\"]")));
        };
        if values.is_empty() {
            return Err(loc
                .error(
                    loc.matrix_key(name),
                    format!("matrix axis `{name}` has no values"),
                )
                .field(format!("matrix.\"{name}\"")));
        }
        let labels: Vec<String> = values.iter().map(label).collect();
        for (i, l) in labels.iter().enumerate() {
            if labels[..i].contains(l) {
                return Err(loc
                    .error(
                        loc.matrix_value(name, i),
                        format!("matrix axis `{name}` lists `{l}` twice"),
                    )
                    .field(format!("matrix.\"{name}\"")));
            }
        }
        out.push(Axis {
            name: name.clone(),
            path,
            values: values.clone(),
            labels,
        });
    }
    Ok(out)
}

/// Every cell: one value index per axis. No axes: one empty cell.
pub(super) fn cells(axes: &[Axis]) -> Vec<Vec<usize>> {
    let mut cells = vec![vec![]];
    for axis in axes {
        let mut next = Vec::with_capacity(cells.len() * axis.values.len());
        for c in &cells {
            for i in 0..axis.values.len() {
                let mut c = c.clone();
                c.push(i);
                next.push(c);
            }
        }
        cells = next;
    }
    cells
}

fn set(doc: &mut toml::Table, path: &[String], value: toml::Value) {
    let mut table = doc;
    for seg in &path[..path.len() - 1] {
        let entry = table
            .entry(seg.clone())
            .or_insert_with(|| toml::Value::Table(toml::Table::new()));
        if !entry.is_table() {
            *entry = toml::Value::Table(toml::Table::new());
        }
        table = entry.as_table_mut().expect("just made a table");
    }
    table.insert(path[path.len() - 1].clone(), value);
}

fn deserialize(doc: toml::Table) -> Result<RawFile, toml::de::Error> {
    toml::Value::Table(doc).try_into()
}

/// The document with this cell's values set, deserialized.
pub(super) fn apply(
    doc: &toml::Table,
    axes: &[Axis],
    cell: &[usize],
    loc: &Locator,
) -> Result<RawFile, ScenarioError> {
    let mut d = doc.clone();
    d.remove("matrix");
    let base = d.clone();
    for (axis, &i) in axes.iter().zip(cell) {
        set(&mut d, &axis.path, axis.values[i].clone());
    }
    match deserialize(d) {
        Ok(raw) => Ok(raw),
        Err(e) => {
            // Find the axis whose value breaks the document, and point at it.
            for (axis, &i) in axes.iter().zip(cell) {
                let mut one = base.clone();
                set(&mut one, &axis.path, axis.values[i].clone());
                if let Err(e1) = deserialize(one) {
                    let msg = e1.message().lines().next().unwrap_or("").to_owned();
                    let unknown = msg.starts_with("unknown field");
                    let span = if unknown {
                        loc.matrix_key(&axis.name)
                    } else {
                        loc.matrix_value(&axis.name, i)
                    };
                    let mut err = loc
                        .error(span, format!("matrix axis `{}`: {msg}", axis.name))
                        .field(axis.name.clone());
                    if unknown {
                        if let Some(names) = msg.split("expected one of ").nth(1) {
                            let names: Vec<&str> = names
                                .split('`')
                                .enumerate()
                                .filter(|(i, _)| i % 2 == 1)
                                .map(|(_, s)| s)
                                .collect();
                            let last = axis.path.last().map(String::as_str).unwrap_or("");
                            err = err.hint(suggest(
                                last,
                                &format!("fields of [{}]", axis.path[0]),
                                &names,
                            ));
                        }
                    }
                    return Err(err);
                }
            }
            Err(loc.error(None, format!("invalid scenario: {}", e.message().trim())))
        }
    }
}
