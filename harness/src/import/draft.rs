//! The scenario draft written from a report's [`Facts`]: TOML with every value marked as
//! read from the report, guessed (and why), or a commented TODO.

use std::fmt::Write as _;

use super::extract::{Fact, Facts};
use crate::capture::render::quote;
use crate::host::HostData;

/// A draft and what it is made of.
#[derive(Debug, Clone)]
pub struct Draft {
    pub text: String,
    /// Fields read from the report.
    pub from_report: Vec<String>,
    /// Fields the importer chose, with why.
    pub guessed: Vec<(String, String)>,
    /// Fields left as TODO.
    pub todo: Vec<String>,
    /// Whether the draft names something to run.
    pub runnable: bool,
}

struct W<'a> {
    d: &'a mut Draft,
}

impl W<'_> {
    fn line(&mut self, s: &str) {
        self.d.text.push_str(s);
        self.d.text.push('\n');
    }
    /// `key = value   # report: "line"`.
    fn reported(&mut self, field: &str, key: &str, value: &str, f: &Fact) {
        let _ = writeln!(
            self.d.text,
            "{key:<20}= {value:<40} # report: {}",
            quote(&f.line)
        );
        self.d.from_report.push(field.to_owned());
    }
    fn guessed(&mut self, field: &str, key: &str, value: &str, why: &str) {
        let _ = writeln!(self.d.text, "{key:<20}= {value:<40} # GUESSED: {why}");
        self.d.guessed.push((field.to_owned(), why.to_owned()));
    }
    fn todo(&mut self, field: &str, key: &str, example: &str, why: &str) {
        let _ = writeln!(self.d.text, "# {key:<18}= {example:<40} # TODO: {why}");
        self.d.todo.push(field.to_owned());
    }
}

fn is_bool(s: &str) -> bool {
    s == "true" || s == "false"
}

/// Write the draft. `report_name` is the report file's name (for the title); `host_file`
/// the path to use as `[host] file` when the report is itself a captured host.
pub fn write(
    facts: &Facts,
    data: &HostData,
    driver_versions: &dyn Fn(&str) -> Vec<String>,
    report_name: &str,
    host_file: Option<&str>,
) -> Draft {
    let mut d = Draft {
        text: String::new(),
        from_report: Vec::new(),
        guessed: Vec::new(),
        todo: Vec::new(),
        runnable: true,
    };
    let mut w = W { d: &mut d };
    let get = |k: &str| facts.get(k);
    w.line(&format!(
        "# Drafted by `cgrepro import {report_name}`. Marks: `# report:` quotes the line a value came\n\
         # from; `# GUESSED:` the importer chose it so the draft runs (check it); `# TODO:` the\n\
         # report does not say (the commented line is an example, not a default)."
    ));
    w.line("\n[scenario]");
    let title = match (
        get("target.shim"),
        get("target.driver"),
        get("expect.class"),
    ) {
        (Some(_), _, Some(c)) => format!("imported {report_name}: the Kata shim's {}", c.value),
        (_, Some(drv), Some(c)) => format!("imported {report_name}: {} {}", drv.value, c.value),
        _ => format!("imported {report_name}"),
    };
    let _ = writeln!(w.d.text, "{:<20}= {}", "title", quote(&title));
    match get("scenario.report") {
        Some(f) => w.reported("scenario.report", "report", &quote(&f.value), f),
        None => w.todo(
            "scenario.report",
            "report",
            "\"https://github.com/<org>/<repo>/issues/<n>\"",
            "the report quotes no issue address",
        ),
    }
    let _ = writeln!(w.d.text, "{:<20}= [\"imported\"]", "tags");

    // [host]
    w.line("\n[host]");
    let preset_fact = get("host.preset");
    if let Some(file) = host_file {
        let _ = writeln!(
            w.d.text,
            "{:<20}= {:<40} # report: the report is a host file written by `cgrepro capture`",
            "file",
            quote(file)
        );
        w.d.from_report.push("host.file".into());
    } else {
        let preset = match preset_fact {
            Some(f) if data.presets.contains_key(&f.value) => {
                w.reported("host.preset", "preset", &quote(&f.value), f);
                Some(f.value.clone())
            }
            _ => {
                w.guessed(
                    "host.preset",
                    "preset",
                    "\"debian-12\"",
                    "no distro or kernel string in the report; the default host",
                );
                Some("debian-12".to_owned())
            }
        };
        let p = preset.as_ref().and_then(|n| data.presets.get(n));
        if let (Some(k), Some(p)) = (get("host.kernel"), p) {
            if !p
                .kernel
                .starts_with(k.value.split('-').next().unwrap_or(&k.value))
            {
                w.reported("host.kernel", "kernel", &quote(&k.value), k);
            }
        }
        match (get("host.cgroup"), p) {
            (Some(c), Some(p)) if format!("{:?}", p.cgroup).to_ascii_lowercase() != c.value => {
                w.reported("host.cgroup", "cgroup", &quote(&c.value), c)
            }
            (Some(c), _) => {
                let _ = writeln!(
                    w.d.text,
                    "# {:<18}= {:<40} # report: {} (the preset's own)",
                    "cgroup",
                    quote(&c.value),
                    quote(&c.line)
                );
                w.d.from_report.push("host.cgroup".into());
            }
            (None, _) => w.todo(
                "host.cgroup",
                "cgroup",
                "\"v1\"",
                "the report does not say the cgroup mode; the preset's is used",
            ),
        }
        match (get("host.systemd"), get("host.systemd_older"), p) {
            (Some(s), _, Some(p)) if p.systemd.map(|v| v.to_string()) != Some(s.value.clone()) => {
                w.reported("host.systemd", "systemd", &s.value, s)
            }
            (Some(s), _, _) => {
                let _ = writeln!(
                    w.d.text,
                    "# {:<18}= {:<40} # report: {} (the preset's own)",
                    "systemd",
                    s.value,
                    quote(&s.line)
                );
                w.d.from_report.push("host.systemd".into());
            }
            (None, Some(o), Some(p)) if p.systemd.is_none_or(|v| v >= 230) => {
                let _ = writeln!(w.d.text, "# report: {}", quote(&o.line));
                w.guessed(
                    "host.systemd",
                    "systemd",
                    "219",
                    "the report says an older systemd without its version; 219 is the oldest of the presets (CentOS 7, Amazon Linux 2), older than 230 which brought IOAccounting",
                )
            }
            (None, Some(_), _) => {}
            (None, None, _) => w.todo(
                "host.systemd",
                "systemd",
                "219",
                "no systemd version in the report; the preset's is used",
            ),
        }
    }

    // [target]
    w.line("\n[target]");
    let shim = get("target.shim");
    let driver = get("target.driver");
    match (shim, driver) {
        (Some(s), _) => {
            w.reported("target.shim", "shim", &quote(&s.value), s);
            match get("target.version") {
                Some(v) => w.reported("target.version", "version", &quote(&v.value), v),
                None => w.todo(
                    "target.version",
                    "version",
                    "\"3.13.0\"",
                    "no Kata release in the report; --shim or $CGREPRO_KATA_SHIM is used",
                ),
            }
            w.guessed(
                "target.ops",
                "ops",
                "[\"create\", \"start\", \"delete\", \"shutdown\"]",
                "what containerd does for a pod sandbox",
            );
            w.guessed(
                "target.timeout",
                "timeout",
                "\"30s\"",
                "a shim's Create takes seconds under load",
            );
            w.guessed(
                "target.call_timeout",
                "call_timeout",
                "\"10s\"",
                "containerd sets no short deadline on Create",
            );
        }
        (None, Some(drv)) => {
            w.reported("target.driver", "driver", &quote(&drv.value), drv);
            let mut known = driver_versions(&drv.value);
            known.sort_by_key(|v| {
                v.split('.')
                    .map(|p| p.parse::<u32>().unwrap_or(0))
                    .collect::<Vec<_>>()
            });
            match get("target.version") {
                Some(v) if known.contains(&v.value) || known.is_empty() => {
                    w.reported("target.version", "version", &quote(&v.value), v)
                }
                Some(v) => {
                    let series = v.value.trim_end_matches(".x");
                    let series = series.splitn(3, '.').take(2).collect::<Vec<_>>().join(".");
                    match known.iter().find(|k| k.starts_with(&format!("{series}."))) {
                        Some(k) => {
                            let _ = writeln!(w.d.text, "# report: {}", quote(&v.line));
                            w.guessed(
                                "target.version",
                                "version",
                                &quote(k),
                                &format!(
                                    "the report names {} {}; {k} is the {series} release cgrepro builds (drivers: {})",
                                    drv.value,
                                    v.value,
                                    known.join(", ")
                                ),
                            )
                        }
                        None => w.reported("target.version", "version", &quote(&v.value), v),
                    }
                }
                None => match known.first() {
                    Some(oldest) => w.guessed(
                        "target.version",
                        "version",
                        &quote(oldest),
                        &format!(
                            "the report names no version; the oldest cgrepro builds ({}), the likeliest to still have a bug fixed since",
                            known.join(", ")
                        ),
                    ),
                    None => w.todo(
                        "target.version",
                        "version",
                        "\"0.3.4\"",
                        "no library version in the report",
                    ),
                },
            }
            match get("target.ops.stats") {
                Some(st) => {
                    let _ = writeln!(w.d.text, "# report: {}", quote(&st.line));
                    w.guessed(
                        "target.ops",
                        "ops",
                        "[\"create\", \"apply\", \"add_task\", \"stats\", \"delete\"]",
                        "a runtime's life cycle of one cgroup, with the stats the report reads",
                    )
                }
                None => w.guessed(
                    "target.ops",
                    "ops",
                    "[\"create\", \"apply\", \"add_task\", \"delete\"]",
                    "a runtime's life cycle of one cgroup",
                ),
            }
            w.guessed(
                "target.timeout",
                "timeout",
                "\"5s\"",
                "a library call returns in milliseconds",
            );
        }
        (None, None) => {
            w.todo(
                "target",
                "shim",
                "\"kata\"",
                "the report names no code under test: set shim, or driver = \"cgroups-rs\" / \"youki\"",
            );
            w.d.runnable = false;
        }
    }

    // [runtime]
    if shim.is_some() {
        w.line("\n[runtime]");
        match get("runtime.hypervisor") {
            Some(h) => w.reported("runtime.hypervisor", "hypervisor", &quote(&h.value), h),
            None => w.todo(
                "runtime.hypervisor",
                "hypervisor",
                "\"qemu\"",
                "the report names no hypervisor; the shim configuration's default is used",
            ),
        }
        match get("runtime.sandbox_cgroup_only") {
            Some(s) if is_bool(&s.value) => w.reported(
                "runtime.sandbox_cgroup_only",
                "sandbox_cgroup_only",
                &s.value,
                s,
            ),
            _ => w.todo(
                "runtime.sandbox_cgroup_only",
                "sandbox_cgroup_only",
                "true",
                "the report does not say; Kata's default (false) is used",
            ),
        }
        w.guessed(
            "runtime.enable_debug",
            "enable_debug",
            "true",
            "the shim's debug log lines go into the replay's report",
        );
    }
    if let Some(c) = get("runtime.cgroup_driver") {
        let _ = writeln!(
            w.d.text,
            "# cgroup driver: systemd                                      # report: {} (the systemd-style cgroups path below carries it)",
            quote(&c.line)
        );
        w.d.from_report.push("runtime.cgroup_driver".into());
    }

    // [pod]
    w.line("\n[pod]");
    w.guessed(
        "pod.id",
        "id",
        "\"cgrepro-sandbox\"",
        "the replay's sandbox id ({id} in paths)",
    );
    match (get("pod.cgroups_path"), get("runtime.cgroup_driver")) {
        (Some(p), _) => w.reported("pod.cgroups_path", "cgroups_path", &quote(&p.value), p),
        (None, Some(_)) => w.guessed(
            "pod.cgroups_path",
            "cgroups_path",
            "\"kubepods-besteffort-pod123.slice:cri-containerd:{id}\"",
            "the report uses the systemd cgroup driver but quotes no path: the slice:prefix:name shape kubelet gives a BestEffort pod",
        ),
        (None, None) if driver.is_some() => w.guessed(
            "pod.cgroups_path",
            "cgroups_path",
            "\"cgrepro/{id}\"",
            "the report quotes no path; a relative one, as runtimes hand it to the library (an absolute one hits kata#4687 on cgroups-rs 0.2.9)",
        ),
        (None, None) => w.todo(
            "pod.cgroups_path",
            "cgroups_path",
            "\"kubepods-besteffort-pod123.slice:cri-containerd:{id}\"",
            "the report quotes no cgroups path; the target's default is used",
        ),
    }
    w.todo(
        "pod.memory",
        "memory",
        "\"512Mi\"",
        "the report gives no limits; none are set",
    );

    // [[expect]]
    if let Some(l) = get("expect.log") {
        w.line("\n[[expect]]");
        w.reported("expect.log", "log", &quote(&l.value), l);
    }
    match get("expect.class") {
        Some(c) => {
            w.line("\n[[expect]]");
            w.reported("expect.class", "class", &quote(&c.value), c);
            if let Some(s) = get("expect.signal") {
                w.reported("expect.signal", "signal", &quote(&s.value), s);
            }
            if let Some(m) = get("expect.message") {
                w.reported("expect.message", "message", &quote(&m.value), m);
            }
            if let Some(cl) = get("expect.client") {
                w.reported("expect.client", "client", &quote(&cl.value), cl);
            }
        }
        None if get("expect.log").is_some() => {}
        None => w.todo(
            "expect",
            "[[expect]] class",
            "\"crash\"",
            "the report shows no crash, panic or error line the importer knows",
        ),
    }
    d
}
