//! A host file as TOML text: preset keys first, then `[captured]`, one interface file per
//! line (`"memory.max" = { mode = "rw-r--r--", content = "max\n" }`) so a captured host
//! reads and diffs like any fixture. Hand-rendered (the `toml` serializer would spread
//! every file over its own sub-table, four lines each); [`crate::host::captured::load_path`]
//! reads it back, and a test checks the round trip.

use std::fmt::Write as _;

use crate::host::data::Preset;
use crate::host::CgroupMode;

/// A TOML basic string: `"` and `\` escaped, control characters as `\n`, `\t`, `\uXXXX`.
pub fn quote(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\t' => out.push_str("\\t"),
            '\r' => out.push_str("\\r"),
            c if (c as u32) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04X}", c as u32);
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn list(items: &[String]) -> String {
    let q: Vec<String> = items.iter().map(|s| quote(s)).collect();
    format!("[{}]", q.join(", "))
}

/// The host file's text.
pub fn host_file(p: &Preset) -> String {
    let mut s = String::new();
    let _ = writeln!(
        s,
        "# A cgrepro host file, written by `cgrepro capture`: load it with [host] file = \"<path>\"."
    );
    let _ = writeln!(
        s,
        "# The [captured] tree replays as it is; see README \"Replaying a bug report\"."
    );
    if let Some(schema) = &p.schema {
        let _ = writeln!(s, "schema          = {}", quote(schema));
    }
    let _ = writeln!(s, "description     = {}", quote(&p.description));
    if let Some(src) = &p.source {
        let _ = writeln!(s, "source          = {}", quote(src));
    }
    let _ = writeln!(s, "kernel          = {}", quote(&p.kernel));
    let _ = writeln!(s, "proc_version    = {}", quote(&p.proc_version));
    let mode = match p.cgroup {
        CgroupMode::V1 => "v1",
        CgroupMode::Hybrid => "hybrid",
        CgroupMode::V2 => "v2",
    };
    let _ = writeln!(s, "cgroup          = \"{mode}\"");
    match p.systemd {
        Some(v) => {
            let _ = writeln!(s, "systemd         = {v}");
        }
        None => {
            let _ = writeln!(s, "# systemd: none seen (no /run/systemd/system)");
        }
    }
    let _ = writeln!(s, "swap_accounting = {}", p.swap_accounting);
    let _ = writeln!(s, "devices         = {}", list(&p.devices));
    if !p.options.is_empty() {
        let _ = writeln!(s, "\n[options]");
        for (k, v) in &p.options {
            let _ = writeln!(s, "{k} = {v}");
        }
    }
    let Some(c) = &p.captured else {
        return s;
    };
    let _ = writeln!(s, "\n[captured]");
    let _ = writeln!(s, "source            = {}", quote(&c.source));
    let _ = writeln!(s, "normalised        = [");
    for n in &c.normalised {
        let _ = writeln!(s, "  {},", quote(n));
    }
    let _ = writeln!(s, "]");
    let sizes: Vec<String> = c.hugepage_sizes_kb.iter().map(u64::to_string).collect();
    let _ = writeln!(s, "hugepage_sizes_kb = [{}]", sizes.join(", "));
    let _ = writeln!(s, "cpus_online       = {}", quote(&c.cpus_online));
    if let Some(n) = &c.nodes_online {
        let _ = writeln!(s, "nodes_online      = {}", quote(n));
    }
    let _ = writeln!(s, "proc_cgroups      = {}", quote(&c.proc_cgroups));
    let _ = writeln!(s, "other_devices     = {}", list(&c.other_devices));
    if !c.symlinks.is_empty() {
        let links: Vec<String> = c
            .symlinks
            .iter()
            .map(|(k, v)| format!("{} = {}", quote(k), quote(v)))
            .collect();
        let _ = writeln!(s, "symlinks          = {{ {} }}", links.join(", "));
    }
    for m in &c.mount {
        let _ = writeln!(s, "\n[[captured.mount]]");
        let _ = writeln!(s, "dir           = {}", quote(&m.dir));
        let _ = writeln!(s, "fstype        = {}", quote(&m.fstype));
        let _ = writeln!(s, "options       = {}", quote(&m.options));
        let _ = writeln!(s, "super_options = {}", quote(&m.super_options));
        let _ = writeln!(s, "root          = {}", quote(&m.root));
    }
    for g in &c.group {
        let _ = writeln!(s, "\n[[captured.group]]");
        let _ = writeln!(s, "hierarchy = {}", quote(&g.hierarchy));
        let _ = writeln!(s, "path      = {}", quote(&g.path));
        let _ = writeln!(s, "mode      = {}", quote(&g.mode));
        if !g.unread.is_empty() {
            let _ = writeln!(s, "unread    = {}", list(&g.unread));
        }
        let _ = writeln!(s, "[captured.group.files]");
        for (name, f) in &g.files {
            let mut fields = vec![format!("mode = {}", quote(&f.mode))];
            if let Some(c) = &f.content {
                fields.push(format!("content = {}", quote(c)));
            }
            if let Some(e) = &f.error {
                fields.push(format!("error = {}", quote(e)));
            }
            let _ = writeln!(s, "{} = {{ {} }}", quote(name), fields.join(", "));
        }
    }
    s
}
