//! One self-contained HTML page for a run (`cgrepro report`, `--html FILE`): per scenario,
//! its matrix as a grid (the last axis as columns, the other axes' combinations as rows), each cell
//! coloured by class, its signature on hover and a click to its report; the distinct
//! signatures with their cells; and the run's figures. Made from the cases' JSON records
//! ([`super::results`]), so a page can be rebuilt from a run's `cases.jsonl`; each case's
//! report is embedded from its `report.yaml` artifact. No script, no external resource.

use std::collections::BTreeMap;
use std::fmt::Write;

use serde_json::Value;

fn esc(s: &str) -> String {
    s.replace('&', "&amp;")
        .replace('<', "&lt;")
        .replace('>', "&gt;")
        .replace('"', "&quot;")
        .replace('\'', "&#39;")
}

fn s<'a>(v: &'a Value, key: &str) -> &'a str {
    v.get(key).and_then(Value::as_str).unwrap_or("")
}

/// The class a cell is coloured by: the outcome's class, or the status of a case that
/// did not run.
fn colour_class(r: &Value) -> String {
    match s(r, "status") {
        "ignored" => "ignored".into(),
        "not-started" => "not-started".into(),
        "interrupted" => "interrupted".into(),
        _ => s(r, "class").to_owned(),
    }
}

const STYLE: &str = r#"
body { font: 14px/1.4 system-ui, sans-serif; margin: 1.5em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.15em; margin-top: 2em; }
table { border-collapse: collapse; margin: .5em 0; }
th, td { border: 1px solid #ccc; padding: 4px 8px; text-align: left; vertical-align: top; }
th { background: #f4f4f4; font-weight: 600; }
td.cell { min-width: 7em; text-align: center; }
td.cell a { display: block; color: inherit; text-decoration: none; }
td.failed { outline: 3px solid #d00; outline-offset: -3px; }
.ok { background: #bde5b8; } .error { background: #ffd9a0; } .panic { background: #e2c2f0; }
.crash { background: #f4a3a3; } .timeout { background: #fff19a; } .killed { background: #d9b99b; }
.harness-error { background: #999; color: #fff; } .ignored { background: #eee; color: #777; }
.interrupted, .not-started { background: #fff; color: #777; border-style: dashed; }
.legend span { display: inline-block; padding: 2px 8px; margin-right: 4px; border: 1px solid #ccc; }
.figures td:first-child { font-weight: 600; }
pre { background: #f8f8f8; padding: .6em; overflow-x: auto; font-size: 12px; }
details { margin: .3em 0; } summary { cursor: pointer; }
.sig { font-family: ui-monospace, monospace; font-size: 12px; }
"#;

/// Render the page for a run's records.
pub fn render(title: &str, records: &[Value]) -> String {
    let mut h = String::new();
    let _ = write!(
        h,
        "<!DOCTYPE html>\n<html lang=\"en\"><head><meta charset=\"utf-8\">\
         <title>{t}</title><style>{STYLE}</style></head><body>\n<h1>{t}</h1>\n",
        t = esc(title)
    );
    figures(&mut h, records);
    let _ = writeln!(h, "<p class=\"legend\">");
    for c in [
        "ok",
        "error",
        "panic",
        "crash",
        "timeout",
        "killed",
        "harness-error",
        "ignored",
        "interrupted",
    ] {
        let _ = write!(h, "<span class=\"{c}\">{c}</span>");
    }
    let _ = writeln!(
        h,
        " a red frame: the case failed (its expectations or snapshot)</p>"
    );

    let mut by_scenario: BTreeMap<&str, Vec<(usize, &Value)>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        by_scenario
            .entry(s(r, "scenario"))
            .or_default()
            .push((i, r));
    }
    for (scenario, cases) in &by_scenario {
        let _ = writeln!(h, "<h2 id=\"s-{0}\">{0}</h2>", esc(scenario));
        grid(&mut h, cases);
    }

    let _ = writeln!(h, "<h2>Distinct signatures</h2>\n<table><tr><th>signature</th><th>class</th><th>cells</th></tr>");
    let mut sigs: BTreeMap<(&str, &str), Vec<usize>> = BTreeMap::new();
    for (i, r) in records.iter().enumerate() {
        if !s(r, "signature").is_empty() {
            sigs.entry((s(r, "signature"), s(r, "class")))
                .or_default()
                .push(i);
        }
    }
    for ((sig, class), cells) in &sigs {
        let _ = write!(
            h,
            "<tr><td class=\"sig\">{}</td><td class=\"{class}\">{class}</td><td>{} case(s):",
            esc(sig),
            cells.len()
        );
        for i in cells {
            let _ = write!(
                h,
                " <a href=\"#c{i}\">{}</a>",
                esc(&short_name(&records[*i]))
            );
        }
        let _ = writeln!(h, "</td></tr>");
    }
    let _ = writeln!(h, "</table>");

    let _ = writeln!(h, "<h2>Reports</h2>");
    for (i, r) in records.iter().enumerate() {
        case_report(&mut h, i, r);
    }
    h.push_str("</body></html>\n");
    h
}

/// `scenario: v1 · v2` (the cell's values), or the case name for a single cell.
fn short_name(r: &Value) -> String {
    match r["cell"].as_object() {
        Some(c) if !c.is_empty() => {
            let vals: Vec<&str> = c.values().filter_map(Value::as_str).collect();
            format!("{}: {}", s(r, "scenario"), vals.join(" · "))
        }
        _ => s(r, "case").to_owned(),
    }
}

fn figures(h: &mut String, records: &[Value]) {
    let mut status: BTreeMap<&str, usize> = BTreeMap::new();
    let mut class: BTreeMap<&str, usize> = BTreeMap::new();
    let mut total_ms = 0u64;
    let mut wall_ms = 0u64;
    for r in records {
        *status.entry(s(r, "status")).or_default() += 1;
        if !s(r, "class").is_empty() {
            *class.entry(s(r, "class")).or_default() += 1;
        }
        let d = r["timings"]["duration_ms"].as_u64().unwrap_or(0);
        total_ms += d;
        wall_ms = wall_ms.max(r["timings"]["started_ms"].as_u64().unwrap_or(0) + d);
    }
    let list = |m: &BTreeMap<&str, usize>| {
        m.iter()
            .map(|(k, v)| format!("{v} {k}"))
            .collect::<Vec<_>>()
            .join(", ")
    };
    let _ = writeln!(
        h,
        "<table class=\"figures\">\
         <tr><td>cases</td><td>{}</td></tr>\
         <tr><td>status</td><td>{}</td></tr>\
         <tr><td>outcomes</td><td>{}</td></tr>\
         <tr><td>time</td><td>{:.1} s of cases, {:.1} s from first start to last end</td></tr>\
         </table>",
        records.len(),
        esc(&list(&status)),
        esc(&list(&class)),
        total_ms as f64 / 1000.0,
        wall_ms as f64 / 1000.0
    );
}

/// The grid of one scenario: the last axis across, the other axes' combinations down.
fn grid(h: &mut String, cases: &[(usize, &Value)]) {
    let axes: Vec<String> = cases
        .first()
        .and_then(|(_, r)| r["cell"].as_object())
        .map(|o| o.keys().cloned().collect())
        .unwrap_or_default();
    let (row_axes, col_axis) = match axes.split_last() {
        Some((last, rest)) => (rest.to_vec(), Some(last.clone())),
        None => (vec![], None),
    };
    let value = |r: &Value, a: &str| r["cell"][a].as_str().unwrap_or("").to_owned();
    let row_of = |r: &Value| {
        row_axes
            .iter()
            .map(|a| value(r, a))
            .collect::<Vec<_>>()
            .join(" · ")
    };
    let col_of = |r: &Value| col_axis.as_deref().map(|a| value(r, a)).unwrap_or_default();
    let mut rows: Vec<String> = Vec::new();
    let mut cols: Vec<String> = Vec::new();
    for (_, r) in cases {
        if !rows.contains(&row_of(r)) {
            rows.push(row_of(r));
        }
        if !cols.contains(&col_of(r)) {
            cols.push(col_of(r));
        }
    }
    let _ = write!(
        h,
        "<table class=\"grid\"><tr><th>{} \\ {}</th>",
        esc(&row_axes.join(" · ")),
        esc(col_axis.as_deref().unwrap_or(""))
    );
    for c in &cols {
        let _ = write!(h, "<th>{}</th>", esc(c));
    }
    h.push_str("</tr>\n");
    for row in &rows {
        let _ = write!(h, "<tr><th>{}</th>", esc(row));
        for col in &cols {
            match cases
                .iter()
                .find(|(_, r)| row_of(r) == *row && col_of(r) == *col)
            {
                None => h.push_str("<td></td>"),
                Some((i, r)) => cell(h, *i, r),
            }
        }
        h.push_str("</tr>\n");
    }
    h.push_str("</table>\n");
}

/// One cell: coloured by class, framed red when the case failed, the signature (and
/// what failed) on hover, a link to its report.
fn cell(h: &mut String, i: usize, r: &Value) {
    let cls = colour_class(r);
    let failed = if s(r, "status") == "failed" {
        " failed"
    } else {
        ""
    };
    let hover = match s(r, "status") {
        "ignored" => format!("ignored: {}", s(r, "reason")),
        st => {
            let mut t = format!("{st}: {}", s(r, "signature"));
            for p in r["problems"].as_array().into_iter().flatten() {
                t.push('\n');
                t.push_str(p.as_str().unwrap_or(""));
            }
            t
        }
    };
    let _ = write!(
        h,
        "<td class=\"cell {cls}{failed}\" title=\"{}\"><a href=\"#c{i}\">{}</a></td>",
        esc(&hover),
        esc(&cls)
    );
}

fn case_report(h: &mut String, i: usize, r: &Value) {
    let _ = write!(
        h,
        "<details id=\"c{i}\"><summary><span class=\"{}\">&nbsp;{}&nbsp;</span> {} <span class=\"sig\">{}</span></summary>",
        colour_class(r),
        esc(s(r, "status")),
        esc(s(r, "case")),
        esc(s(r, "signature"))
    );
    if !s(r, "reason").is_empty() {
        let _ = write!(h, "<p>cannot run here: {}</p>", esc(s(r, "reason")));
    }
    for p in r["problems"].as_array().into_iter().flatten() {
        let _ = write!(h, "<p><b>{}</b></p>", esc(p.as_str().unwrap_or("")));
    }
    let art = &r["artifacts"];
    if let Some(yaml) = art["report_yaml"]
        .as_str()
        .and_then(|p| std::fs::read_to_string(p).ok())
    {
        let _ = write!(h, "<pre>{}</pre>", esc(&yaml));
    }
    if let Some(o) = art.as_object() {
        let files: Vec<String> = o
            .iter()
            .filter(|(k, _)| *k != "dir")
            .filter_map(|(_, v)| v.as_str())
            .map(|p| format!("<a href=\"file://{0}\">{0}</a>", esc(p)))
            .collect();
        let _ = write!(h, "<p>artifacts: {}</p>", files.join(" "));
    }
    h.push_str("</details>\n");
}
