//! The matrix table: one row per cell, the axes as columns, then class and signature.

use super::Report;

/// Render reports of one scenario as a plain-text table.
pub fn table(axes: &[(String, Vec<String>)], reports: &[Report]) -> String {
    let mut header: Vec<String> = axes.iter().map(|(a, _)| a.clone()).collect();
    header.extend(["class".to_string(), "signature".to_string()]);
    let mut rows: Vec<Vec<String>> = Vec::new();
    for r in reports {
        let mut row: Vec<String> = axes
            .iter()
            .map(|(a, _)| {
                r.cell
                    .iter()
                    .find(|(k, _)| k == a)
                    .map(|(_, v)| v.clone())
                    .unwrap_or_default()
            })
            .collect();
        let mut class = r.outcome.class().to_string();
        if !r.expectation_failures.is_empty() {
            class.push_str(" (unexpected)");
        }
        row.push(class);
        row.push(r.signature());
        rows.push(row);
    }
    let widths: Vec<usize> = (0..header.len())
        .map(|i| {
            rows.iter()
                .map(|r| r[i].chars().count())
                .chain([header[i].chars().count()])
                .max()
                .unwrap_or(0)
        })
        .collect();
    let line = |cells: &[String]| -> String {
        let mut s = String::new();
        for (i, c) in cells.iter().enumerate() {
            if i + 1 == cells.len() {
                s.push_str(c);
            } else {
                s.push_str(&format!("{c:<w$}  ", w = widths[i]));
            }
        }
        s.trim_end().to_owned()
    };
    let mut out = line(&header);
    out.push('\n');
    let rule: Vec<String> = widths.iter().map(|w| "-".repeat(*w)).collect();
    out.push_str(&line(&rule));
    out.push('\n');
    for r in &rows {
        out.push_str(&line(r));
        out.push('\n');
    }
    out
}
