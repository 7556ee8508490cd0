//! From TOML text to validated cases. Serde (with `deny_unknown_fields`) checks the shape;
//! the [`Locator`] turns any problem back into a file position using toml's spanned
//! parse tree, and the semantic checks (presets, drivers, ops, matrix axes) happen here.

use std::ops::Range;
use std::path::Path;
use std::sync::Arc;
use std::time::Duration;

use serde::Deserialize;
use toml::de::{DeTable, DeValue};
use toml::Spanned;

use super::error::{did_you_mean, suggest, ScenarioError};
use super::matrix;
use super::validate;
use super::{
    Case, Context, Expect, Meta, Pod, Scenario, ScenarioInfo, Target, TargetKind, OPS, SHIM_OPS,
};
use crate::fault::{parse_errno, Effect, Fault, FaultId, Op, When};
use crate::host::{ContentAction, ContentFault, HostError, HostSpec};
use crate::outcome::Class;

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
pub(super) struct RawFile {
    scenario: RawMeta,
    #[serde(default)]
    host: HostSpec,
    target: RawTarget,
    #[serde(default)]
    runtime: toml::Table,
    #[serde(default)]
    pod: RawPod,
    #[serde(default)]
    fault: Vec<RawFault>,
    #[serde(default)]
    matrix: toml::Table,
    #[serde(default)]
    expect: Vec<RawExpect>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawMeta {
    title: String,
    report: Option<String>,
    #[serde(default)]
    tags: Vec<String>,
    /// Allow a matrix of more than [`validate::MAX_CELLS`] cells (up to this many).
    max_cells: Option<usize>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawTarget {
    driver: Option<String>,
    version: Option<String>,
    command: Option<Vec<String>>,
    /// A containerd shim v2: `kata` (the real binary, from --shim / CGREPRO_KATA_SHIM) or
    /// a fixture shim (`fixtures/shims/*`).
    shim: Option<String>,
    #[serde(default)]
    ops: Vec<String>,
    timeout: Option<String>,
    grace: Option<String>,
    /// Shims: the deadline of each ttrpc call.
    call_timeout: Option<String>,
}

#[derive(Debug, Default, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawPod {
    id: Option<String>,
    cgroups_path: Option<String>,
    memory: Option<toml::Value>,
    cpus: Option<String>,
    cpu_quota: Option<i64>,
    cpu_period: Option<u64>,
    cpu_shares: Option<u64>,
    pids_limit: Option<i64>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawFault {
    // A content fault: the host's file is missing, empty, replaced, or loses lines.
    file: Option<String>,
    action: Option<String>,
    content: Option<String>,
    lines: Option<String>,
    // A syscall fault: an operation on matching paths fails (and/or is delayed).
    op: Option<String>,
    path: Option<String>,
    errno: Option<String>,
    when: Option<String>,
    seed: Option<u64>,
    delay: Option<String>,
    // cgroupfs-model-only actions on a syscall fault.
    short: Option<usize>,
    corrupt: Option<String>,
    // A D-Bus fault: the host's systemd answers this manager method with an error.
    dbus: Option<String>,
    error: Option<String>,
    message: Option<String>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct RawExpect {
    #[serde(default)]
    when: toml::Table,
    class: Option<Class>,
    signal: Option<String>,
    message: Option<String>,
    stdout: Option<String>,
    client: Option<String>,
    log: Option<String>,
}

/// Maps dotted fields (and matrix values) back to spans in the source.
pub(super) struct Locator<'a> {
    pub file: &'a Path,
    pub src: &'a str,
    tree: Option<Spanned<DeTable<'a>>>,
}

impl<'a> Locator<'a> {
    fn new(file: &'a Path, src: &'a str) -> Locator<'a> {
        Locator {
            file,
            src,
            tree: DeTable::parse(src).ok(),
        }
    }

    pub fn error(&self, span: Option<Range<usize>>, message: impl Into<String>) -> ScenarioError {
        ScenarioError::new(self.file, self.src, span, message)
    }

    /// The spanned parse tree (none when the file is not valid TOML).
    pub(super) fn tree(&self) -> Option<&DeTable<'a>> {
        self.tree.as_ref().map(|t| t.get_ref())
    }

    /// Span of `key` in the `idx`th table of the top-level array of tables `array`
    /// (`[[fault]]`), else of that table, else of the array.
    fn array_item(&self, array: &str, idx: usize, key: &str) -> Option<Range<usize>> {
        let (span, v) = self.lookup(&[array])?;
        let DeValue::Array(a) = v.get_ref() else {
            return Some(span);
        };
        let item = a.get(idx)?;
        let DeValue::Table(t) = item.get_ref() else {
            return Some(item.span());
        };
        Some(
            t.iter()
                .find(|(k, _)| k.get_ref().as_ref() == key)
                .map_or(item.span(), |(_, v)| v.span()),
        )
    }

    fn lookup(&self, path: &[&str]) -> Option<(Range<usize>, &Spanned<DeValue<'a>>)> {
        let tree = self.tree.as_ref()?;
        let mut table = tree.get_ref();
        let mut found = None;
        for (i, seg) in path.iter().enumerate() {
            let (k, v) = table.iter().find(|(k, _)| k.get_ref().as_ref() == *seg)?;
            found = Some((k.span(), v));
            if i + 1 < path.len() {
                match v.get_ref() {
                    DeValue::Table(t) => table = t,
                    DeValue::Array(a) => match a.last().map(|x| x.get_ref()) {
                        Some(DeValue::Table(t)) => table = t,
                        _ => return None,
                    },
                    _ => return None,
                }
            }
        }
        found.map(|(_, v)| (v.span(), v))
    }

    /// Span of the value at a dotted path (or of its nearest existing parent's key).
    pub fn span(&self, dotted: &str) -> Option<Range<usize>> {
        let parts: Vec<&str> = dotted.split('.').collect();
        for n in (1..=parts.len()).rev() {
            if let Some((span, _)) = self.lookup(&parts[..n]) {
                return Some(span);
            }
        }
        None
    }

    /// Span of the key (not the value) of a dotted path.
    fn key_span(&self, table: &str, key: &str) -> Option<Range<usize>> {
        let tree = self.tree.as_ref()?;
        let (_, v) = tree
            .get_ref()
            .iter()
            .find(|(k, _)| k.get_ref().as_ref() == table)?;
        let DeValue::Table(t) = v.get_ref() else {
            return None;
        };
        t.iter()
            .find(|(k, _)| k.get_ref().as_ref() == key)
            .map(|(k, _)| k.span())
    }

    /// Span of the `idx`th element of the array at a dotted path.
    pub fn element(&self, dotted: &str, idx: usize) -> Option<Range<usize>> {
        let parts: Vec<&str> = dotted.split('.').collect();
        let (span, v) = self.lookup(&parts)?;
        match v.get_ref() {
            DeValue::Array(a) => a.get(idx).map(|x| x.span()),
            _ => Some(span),
        }
    }

    /// Span of the `idx`th value of matrix axis `axis`.
    pub fn matrix_value(&self, axis: &str, idx: usize) -> Option<Range<usize>> {
        let (span, v) = self.lookup(&["matrix", axis])?;
        match v.get_ref() {
            DeValue::Array(a) => a.get(idx).map(|x| x.span()),
            _ => Some(span),
        }
    }

    /// Span of the axis key itself.
    pub fn matrix_key(&self, axis: &str) -> Option<Range<usize>> {
        self.key_span("matrix", axis)
    }

    /// The dotted path of the innermost key or value containing `pos`.
    fn path_at(&self, pos: usize) -> Option<String> {
        fn walk(t: &DeTable<'_>, pos: usize, prefix: &str, best: &mut Option<String>) {
            for (k, v) in t.iter() {
                let name = if prefix.is_empty() {
                    k.get_ref().to_string()
                } else {
                    format!("{prefix}.{}", k.get_ref())
                };
                let ks = k.span();
                let vs = v.span();
                if ks.contains(&pos) || vs.contains(&pos) || (vs.start <= pos && pos <= vs.end) {
                    *best = Some(name.clone());
                }
                match v.get_ref() {
                    DeValue::Table(inner) => walk(inner, pos, &name, best),
                    DeValue::Array(a) => {
                        for item in a.iter() {
                            if let DeValue::Table(inner) = item.get_ref() {
                                walk(inner, pos, &name, best);
                            }
                        }
                    }
                    _ => {}
                }
            }
        }
        let mut best = None;
        walk(self.tree.as_ref()?.get_ref(), pos, "", &mut best);
        best
    }

    /// Turn a toml/serde error into a located error with the field and a hint.
    pub fn serde_error(
        &self,
        e: &toml::de::Error,
        span_override: Option<Range<usize>>,
    ) -> ScenarioError {
        let msg = e.message().trim().to_owned();
        let span = span_override.or_else(|| e.span());
        let mut err = self.error(span.clone(), first_sentence(&msg));
        if let Some(field) = span.and_then(|s| self.path_at(s.start)) {
            err = err.field(field);
        }
        if let Some(h) = unknown_hint(&msg) {
            err = err.hint(h);
        }
        err
    }
}

fn first_sentence(msg: &str) -> String {
    msg.lines().next().unwrap_or(msg).to_owned()
}

/// For serde's "unknown field `x`, expected one of `a`, `b`" (and variants): a hint.
fn unknown_hint(msg: &str) -> Option<String> {
    static RE: std::sync::OnceLock<Option<regex::Regex>> = std::sync::OnceLock::new();
    let re = RE.get_or_init(|| {
        regex::Regex::new(r"unknown (field|variant) `([^`]*)`, expected (?:one of )?(.*)").ok()
    });
    let c = re.as_ref()?.captures(msg)?;
    let input = c.get(2)?.as_str();
    let names: Vec<&str> = c
        .get(3)?
        .as_str()
        .split('`')
        .enumerate()
        .filter(|(i, _)| i % 2 == 1)
        .map(|(_, s)| s)
        .collect();
    let what = if &c[1] == "field" {
        "allowed fields"
    } else {
        "allowed values"
    };
    Some(match did_you_mean(input, names.iter().copied()) {
        Some(m) => format!("did you mean `{m}`? {what}: {}", names.join(", ")),
        None => format!("{what}: {}", names.join(", ")),
    })
}

pub(super) fn parse(
    path: &Path,
    name: &str,
    src: &str,
    ctx: &Context,
) -> Result<Scenario, ScenarioError> {
    if src.len() > validate::MAX_FILE_BYTES {
        return Err(ScenarioError::new(
            path,
            &src[..(0..=200.min(src.len()))
                .rev()
                .find(|&i| src.is_char_boundary(i))
                .unwrap_or(0)],
            Some(0..0),
            format!(
                "the file is {} bytes; a scenario file is at most {}",
                src.len(),
                validate::MAX_FILE_BYTES
            ),
        )
        .hint("a scenario describes one bug report; put large content in fixtures/"));
    }
    let loc = Locator::new(path, src);
    validate::document(&loc)?;
    let doc: toml::Table = toml::from_str(src).map_err(|e| loc.serde_error(&e, None))?;
    let base: RawFile = toml::from_str(src).map_err(|e| loc.serde_error(&e, None))?;
    let axes = matrix::axes(&base.matrix, &loc)?;
    cell_cap(&axes, base.scenario.max_cells, &loc)?;
    let info = Arc::new(ScenarioInfo {
        path: path.to_owned(),
        name: name.to_owned(),
        meta: Meta {
            title: base.scenario.title.clone(),
            report: base.scenario.report.clone(),
            tags: base.scenario.tags.clone(),
        },
    });
    validate_expect_keys(&base, &axes, &loc)?;

    let mut cases = Vec::new();
    for cell in matrix::cells(&axes) {
        let raw = matrix::apply(&doc, &axes, &cell, &loc)?;
        let labels: Vec<(String, String)> = cell
            .iter()
            .enumerate()
            .map(|(a, &i)| (axes[a].name.clone(), axes[a].labels[i].clone()))
            .collect();
        let at = CellLocator {
            loc: &loc,
            axes: &axes,
            cell: &cell,
        };
        cases.push(resolve(raw, &info, labels, &at, ctx)?);
    }
    Ok(Scenario {
        path: path.to_owned(),
        name: name.to_owned(),
        meta: info.meta.clone(),
        axes: axes
            .iter()
            .map(|a| (a.name.clone(), a.labels.clone()))
            .collect(),
        cases,
    })
}

/// A matrix's cells are bounded: [`validate::MAX_CELLS`], or an explicit
/// `[scenario] max_cells` up to [`validate::MAX_CELLS_OVERRIDE`].
fn cell_cap(
    axes: &[matrix::Axis],
    max_cells: Option<usize>,
    loc: &Locator,
) -> Result<(), ScenarioError> {
    let cells = axes
        .iter()
        .try_fold(1usize, |n, a| n.checked_mul(a.labels.len()))
        .unwrap_or(usize::MAX);
    if let Some(m) = max_cells {
        if m > validate::MAX_CELLS_OVERRIDE {
            return Err(loc
                .error(
                    loc.span("scenario.max_cells"),
                    format!(
                        "max_cells = {m} is above the limit of {}",
                        validate::MAX_CELLS_OVERRIDE
                    ),
                )
                .field("scenario.max_cells")
                .hint("split the scenario into several files"));
        }
    }
    let cap = max_cells.unwrap_or(validate::MAX_CELLS);
    if cells > cap {
        let mut err = loc
            .error(
                loc.span("matrix"),
                format!("the matrix has {cells} cells, more than {cap}"),
            )
            .field("matrix");
        err = if max_cells.is_some() || cells > validate::MAX_CELLS_OVERRIDE {
            err.hint(format!(
                "fewer axis values, or split the scenario (at most {} cells with max_cells)",
                validate::MAX_CELLS_OVERRIDE
            ))
        } else {
            err.hint(format!(
                "fewer axis values, or say `max_cells = {cells}` in [scenario] if you mean it"
            ))
        };
        return Err(err);
    }
    Ok(())
}

fn validate_expect_keys(
    base: &RawFile,
    axes: &[matrix::Axis],
    loc: &Locator,
) -> Result<(), ScenarioError> {
    let names: Vec<&str> = axes.iter().map(|a| a.name.as_str()).collect();
    for e in &base.expect {
        for key in e.when.keys() {
            if !names.contains(&key.as_str()) {
                let hint = if names.is_empty() {
                    "`when` selects matrix cells, and this scenario has no [matrix]".to_string()
                } else {
                    suggest(key, "matrix axes", &names)
                };
                return Err(loc
                    .error(
                        loc.span("expect"),
                        format!("`when` names `{key}`, which is not a matrix axis"),
                    )
                    .field("expect.when")
                    .hint(hint));
            }
        }
    }
    Ok(())
}

/// Locates a field of one cell: at the matrix value when an axis set it, else in the
/// document.
pub(super) struct CellLocator<'a> {
    loc: &'a Locator<'a>,
    axes: &'a [matrix::Axis],
    cell: &'a [usize],
}

impl CellLocator<'_> {
    fn set_by_axis(&self, field: &str) -> bool {
        self.axes.iter().any(|a| a.name == field)
    }

    /// A located error from a validator's (message, hint); `idx`: the element of an
    /// array field, or the `[[fault]]` table, at fault.
    fn check(
        &self,
        field: &str,
        idx: Option<usize>,
        r: Result<(), (String, String)>,
    ) -> Result<(), ScenarioError> {
        let Err((msg, hint)) = r else {
            return Ok(());
        };
        let span = match (self.set_by_axis(field), idx, field.split_once('.')) {
            (true, _, _) | (false, None, _) => return Err(self.at(field, msg).hint(hint)),
            (false, Some(i), Some(("fault", key))) => self.loc.array_item("fault", i, key),
            (false, Some(i), _) => self.loc.element(field, i),
        };
        Err(self.loc.error(span, msg).field(field).hint(hint))
    }

    fn at(&self, field: &str, message: impl Into<String>) -> ScenarioError {
        let by_axis = self
            .axes
            .iter()
            .zip(self.cell)
            .find(|(a, _)| a.name == field)
            .and_then(|(a, &i)| self.loc.matrix_value(&a.name, i));
        let span = by_axis.or_else(|| self.loc.span(field));
        self.loc.error(span, message).field(field)
    }
}

fn resolve(
    raw: RawFile,
    info: &Arc<ScenarioInfo>,
    cell: Vec<(String, String)>,
    at: &CellLocator,
    ctx: &Context,
) -> Result<Case, ScenarioError> {
    // Host.
    for (i, d) in raw.host.devices.iter().flatten().enumerate() {
        at.check("host.devices", Some(i), validate::device(d))?;
    }
    for (i, w) in raw.host.writable.iter().flatten().enumerate() {
        at.check("host.writable", Some(i), validate::writable(w))?;
    }
    let host = ctx
        .hosts
        .resolve(&raw.host)
        .map_err(|e| host_error(e, at, &raw.host))?;

    // Target.
    let shim_kind = match &raw.target.shim {
        None => None,
        Some(_) if raw.target.driver.is_some() || raw.target.command.is_some() => {
            return Err(at
                .at(
                    "target.shim",
                    "a target has one of `driver`, `command` or `shim`",
                )
                .hint("remove the others"))
        }
        Some(name) if name != crate::subject::shim::KATA && raw.target.version.is_some() => {
            return Err(at
                .at(
                    "target.version",
                    format!("`version` selects a Kata release; the fixture shim `{name}` has none"),
                )
                .hint("remove `version`, or use `shim = \"kata\"`"))
        }
        Some(name) => {
            let known = ctx.drivers.shim_names();
            if !known.contains(name) {
                return Err(at
                    .at("target.shim", format!("unknown shim `{name}`"))
                    .hint(suggest(name, "known shims", &known)));
            }
            if let Some(v) = &raw.target.version {
                if !crate::subject::shim::is_release(v) {
                    return Err(at
                        .at("target.version", format!("`{v}` is not a Kata release"))
                        .hint("a release tag such as `3.13.0` (the binary is `containerd-shim-kata-v2-3.13.0` in the shim directory)"));
                }
            }
            Some(TargetKind::Shim {
                name: name.clone(),
                version: raw.target.version.clone(),
            })
        }
    };
    let kind = if let Some(k) = shim_kind {
        k
    } else {
        match (&raw.target.driver, &raw.target.command) {
            (Some(_), Some(_)) => {
                return Err(at
                    .at(
                        "target.command",
                        "a target has either `driver` or `command`, not both",
                    )
                    .hint("remove one of them"))
            }
            (None, None) => return Err(at
                .at(
                    "target",
                    "the target names no `driver`, `command` or `shim`",
                )
                .hint(
                    "add `driver = \"<name>\"` (a workspace driver), `command = [\"argv\", ...]` or `shim = \"<name>\"` (a containerd shim)",
                )),
            (Some(d), None) => {
                let versions = ctx.drivers.versions(d);
                if versions.is_none() {
                    let known = ctx.drivers.names();
                    return Err(at
                        .at("target.driver", format!("unknown driver `{d}`"))
                        .hint(suggest(d, "known drivers", &known)));
                }
                let versions = versions.unwrap_or_default();
                match &raw.target.version {
                    Some(v) if !versions.contains(v) => {
                        let msg = if versions.is_empty() {
                            format!("driver `{d}` has a single version; remove `version = \"{v}\"`")
                        } else {
                            format!("driver `{d}` has no version `{v}`")
                        };
                        return Err(at
                            .at("target.version", msg)
                            .hint(suggest(v, "versions", &versions)));
                    }
                    None if !versions.is_empty() => {
                        return Err(at
                            .at("target.driver", format!("driver `{d}` needs a `version`"))
                            .hint(format!("versions: {}", versions.join(", "))));
                    }
                    _ => {}
                }
                TargetKind::Driver {
                    name: d.clone(),
                    version: raw.target.version.clone(),
                }
            }
            (None, Some(argv)) => {
                if argv.is_empty() {
                    return Err(at
                        .at("target.command", "`command` is empty")
                        .hint("give the argv, e.g. [\"sh\", \"-c\", \"cat /proc/self/cgroup\"]"));
                }
                if raw.target.version.is_some() {
                    return Err(at.at(
                        "target.version",
                        "`version` selects a driver version; a command has none",
                    ));
                }
                TargetKind::Command { argv: argv.clone() }
            }
        }
    };
    let is_shim = matches!(kind, TargetKind::Shim { .. });
    let vocabulary = if is_shim { SHIM_OPS } else { OPS };
    for (i, op) in raw.target.ops.iter().enumerate() {
        if !vocabulary.contains(&op.as_str()) {
            let what = if is_shim {
                "the shim's Task calls"
            } else {
                "the ops vocabulary"
            };
            let mut err = at
                .at("target.ops", format!("unknown op `{op}`"))
                .hint(suggest(op, what, vocabulary));
            if !at.set_by_axis("target.ops") {
                err = at
                    .loc
                    .error(at.loc.element("target.ops", i), err.message.clone())
                    .field("target.ops")
                    .hint(err.hint.unwrap_or_default());
            }
            return Err(err);
        }
    }
    if matches!(kind, TargetKind::Command { .. }) && !raw.target.ops.is_empty() {
        return Err(at
            .at(
                "target.ops",
                "`ops` are for drivers; a command runs as it is",
            )
            .hint("remove `ops`, or use a driver"));
    }
    let duration = |field: &str,
                    v: &Option<String>,
                    default: Duration|
     -> Result<Duration, ScenarioError> {
        match v {
            None => Ok(default),
            Some(s) => validate::duration(s).map_err(|(msg, hint)| at.at(field, msg).hint(hint)),
        }
    };
    if !is_shim && raw.target.call_timeout.is_some() {
        return Err(at.at(
            "target.call_timeout",
            "`call_timeout` is the deadline of a shim's ttrpc calls; this target is no shim",
        ));
    }
    let ops = if is_shim && raw.target.ops.is_empty() {
        SHIM_OPS.iter().map(|s| s.to_string()).collect()
    } else {
        raw.target.ops.clone()
    };
    let target = Target {
        kind,
        ops,
        timeout: duration(
            "target.timeout",
            &raw.target.timeout,
            Duration::from_secs(10),
        )?,
        grace: duration(
            "target.grace",
            &raw.target.grace,
            Duration::from_millis(500),
        )?,
        call_timeout: duration(
            "target.call_timeout",
            &raw.target.call_timeout,
            Duration::from_secs(2),
        )?,
    };

    // Pod.
    let id = raw
        .pod
        .id
        .clone()
        .unwrap_or_else(|| "cgrepro-sandbox".into());
    at.check("pod.id", None, validate::pod_id(&id))?;
    for (field, v) in [
        ("pod.pids_limit", raw.pod.pids_limit),
        ("pod.cpu_quota", raw.pod.cpu_quota),
    ] {
        if let Some(v) = v {
            at.check(field, None, validate::limit(v))?;
        }
    }
    if let Some(p) = raw.pod.cpu_period {
        at.check(
            "pod.cpu_period",
            None,
            validate::within(p, 1000, 1_000_000, " µs"),
        )?;
    }
    if let Some(s) = raw.pod.cpu_shares {
        at.check("pod.cpu_shares", None, validate::within(s, 2, 262_144, ""))?;
    }
    let memory = match &raw.pod.memory {
        None => None,
        Some(toml::Value::Integer(n)) if *n >= 0 => Some(*n as u64),
        Some(toml::Value::String(s)) => Some(super::parse_quantity(s).ok_or_else(|| {
            at.at("pod.memory", format!("invalid quantity `{s}`"))
                .hint("write bytes as an integer, or a quantity like \"256Mi\", \"1Gi\", \"512M\"")
        })?),
        Some(other) => {
            return Err(at
                .at("pod.memory", format!("invalid memory `{other}`"))
                .hint("write bytes as an integer, or a quantity like \"256Mi\""))
        }
    };
    let pod = Pod {
        cgroups_path: raw
            .pod
            .cgroups_path
            .clone()
            .unwrap_or_else(|| "/cgrepro/{id}".into())
            .replace("{id}", &id),
        id,
        memory,
        cpus: raw.pod.cpus.clone(),
        cpu_quota: raw.pod.cpu_quota,
        cpu_period: raw.pod.cpu_period,
        cpu_shares: raw.pod.cpu_shares,
        pids_limit: raw.pod.pids_limit,
    };

    // Faults.
    let mut faults = Vec::new();
    let mut op_faults = Vec::new();
    let mut dbus_faults = Vec::new();
    for (i, f) in raw.fault.iter().enumerate() {
        if let Some(method) = &f.dbus {
            dbus_faults.push(dbus_fault(f, method, &host, at)?);
            continue;
        }
        if let Some(file) = &f.file {
            at.check("fault.file", Some(i), validate::content_file(file))?;
        }
        if let Some(p) = &f.path {
            at.check("fault.path", Some(i), validate::glob(p))?;
        }
        if let Some(w) = &f.when {
            let nth0 = w
                .strip_prefix("nth")
                .and_then(|r| r.trim_start().strip_prefix([':', '=']))
                .and_then(|n| n.trim().parse::<u64>().ok())
                == Some(0);
            if nth0 {
                at.check(
                    "fault.when",
                    Some(i),
                    Err((
                        format!("`when = \"{}\"`: calls count from 1", validate::shown(w)),
                        "\"nth:1\" is the first matching call".into(),
                    )),
                )?;
            }
        }
        if let Some(d) = &f.delay {
            at.check("fault.delay", Some(i), validate::duration(d).map(|_| ()))?;
        }
        match (&f.file, &f.op) {
            (Some(file), None) => faults.push(content_fault(f, file, &pod.id, at)?),
            (None, Some(op)) if f.short.is_some() || f.corrupt.is_some() => {
                op_faults.push(model_fault(f, op, &pod.id, at, next_id(&op_faults))?)
            }
            (None, Some(op)) => {
                op_faults.push(syscall_fault(f, op, &pod.id, at, next_id(&op_faults))?)
            }
            (Some(_), Some(_)) => {
                return Err(at
                    .at("fault", "a fault has either `file` (a content fault) or `op` (a syscall fault), not both")
                    .hint("split it into two [[fault]] blocks"))
            }
            (None, None) => {
                return Err(at
                    .at("fault", "a fault needs `file` (content fault) or `op` (syscall fault)")
                    .hint("e.g. file = \"/proc/self/mountinfo\", action = \"empty\"; or op = \"write\", path = \"/sys/fs/cgroup/**/memory.max\", errno = \"EINVAL\""))
            }
        }
    }

    // Expectations that apply to this cell.
    let mut expect = Vec::new();
    for (i, e) in raw.expect.iter().enumerate() {
        let matches = e.when.iter().all(|(k, v)| {
            let want = matrix::label(v);
            cell.iter().any(|(ax, val)| {
                ax == k
                    && globset::Glob::new(&want)
                        .map(|g| g.compile_matcher().is_match(val))
                        .unwrap_or(want == *val)
            })
        });
        if matches {
            // This block's own line: its `[[expect]]` header (or, inline, its element).
            let span = at.loc.element("expect", i);
            let line = span.map_or(0, |s| at.loc.src[..s.start].matches('\n').count() + 1);
            expect.push(Expect {
                class: e.class,
                signal: e.signal.clone(),
                message: e.message.clone(),
                stdout: e.stdout.clone(),
                client: e.client.clone(),
                log: e.log.clone(),
                at: format!("{}:{line} (expect #{})", at.loc.file.display(), i + 1),
            });
        }
    }

    let runtime = serde_json::to_value(&raw.runtime).unwrap_or(serde_json::Value::Null);
    let name = if cell.is_empty() {
        info.name.clone()
    } else {
        let parts: Vec<String> = cell.iter().map(|(k, v)| format!("{k}={v}")).collect();
        format!("{}::{}", info.name, parts.join(","))
    };
    Ok(Case {
        name,
        scenario: Arc::clone(info),
        cell,
        host,
        target,
        pod,
        runtime,
        faults,
        op_faults,
        dbus_faults,
        expect,
    })
}

/// The manager methods a `dbus` fault can name: those the simulated systemd serves.
const DBUS_METHODS: &[&str] = &[
    "StartTransientUnit",
    "StopUnit",
    "KillUnit",
    "AttachProcessesToUnit",
    "ResetFailedUnit",
    "GetUnit",
    "SetUnitProperties",
    "Subscribe",
    "Unsubscribe",
];

/// `[[fault]] dbus = "StartTransientUnit"`, `error = "org.freedesktop..."`, `message`, `when`.
fn dbus_fault(
    f: &RawFault,
    method: &str,
    host: &crate::host::Host,
    at: &CellLocator,
) -> Result<crate::systemd::DbusFault, ScenarioError> {
    let others = [
        f.file.is_some(),
        f.action.is_some(),
        f.content.is_some(),
        f.lines.is_some(),
        f.op.is_some(),
        f.path.is_some(),
        f.errno.is_some(),
        f.seed.is_some(),
        f.delay.is_some(),
        f.short.is_some(),
        f.corrupt.is_some(),
    ];
    if others.iter().any(|&b| b) {
        return Err(at
            .at(
                "fault",
                "a `dbus` fault takes only `dbus`, `error`, `message` and `when`",
            )
            .hint("put file and syscall faults in [[fault]] blocks of their own"));
    }
    if !DBUS_METHODS.contains(&method) {
        return Err(at
            .at(
                "fault.dbus",
                format!("the simulated systemd has no method `{method}`"),
            )
            .hint(suggest(method, "methods", DBUS_METHODS)));
    }
    if host.systemd.is_none() {
        return Err(at
            .at("fault.dbus", "this host has no systemd to fail")
            .hint("set [host] systemd = <version>, or drop the fault"));
    }
    let error = f.error.clone().ok_or_else(|| {
        at.at(
            "fault.error",
            "a `dbus` fault needs the D-Bus error name to answer with",
        )
        .hint("e.g. error = \"org.freedesktop.DBus.Error.TimedOut\"")
    })?;
    let valid = error.split('.').count() >= 2
        && error.split('.').all(|p| {
            !p.is_empty()
                && !p.starts_with(|c: char| c.is_ascii_digit())
                && p.chars().all(|c| c.is_ascii_alphanumeric() || c == '_')
        });
    if !valid {
        return Err(at
            .at(
                "fault.error",
                format!("`{error}` is not a D-Bus error name"),
            )
            .hint("dot-separated names, e.g. org.freedesktop.systemd1.TransactionIsDestructive"));
    }
    let when = syscall_when(f, at)?;
    if let When::Probability { .. } = when {
        return Err(at
            .at("fault.when", "`dbus` faults take always, nth:N or after:N")
            .hint("count the calls of the method: nth:1 is the first"));
    }
    Ok(crate::systemd::DbusFault {
        method: method.to_owned(),
        error,
        message: f.message.clone().unwrap_or_default(),
        when,
    })
}

/// A short write or a corrupted read: only the cgroupfs model can do these.
fn model_fault(
    f: &RawFault,
    op: &str,
    id: &str,
    at: &CellLocator,
    fault_id: FaultId,
) -> Result<Fault, ScenarioError> {
    let path = f.path.clone().unwrap_or_default().replace("{id}", id);
    if !path.starts_with("/sys/fs/cgroup/") {
        return Err(at
            .at("fault.path", "`short` and `corrupt` apply to cgroupfs files: `path` must be under /sys/fs/cgroup/")
            .hint("e.g. path = \"/sys/fs/cgroup/**/memory.max\""));
    }
    if f.errno.is_some()
        || f.delay.is_some()
        || f.seed.is_some()
        || f.action.is_some()
        || f.content.is_some()
    {
        return Err(at.at(
            "fault",
            "a `short` or `corrupt` fault takes only `op`, `path`, `when` and that field",
        ));
    }
    let (op, effect) =
        match (op, f.short, &f.corrupt) {
            ("write", Some(n), None) => (Op::Write, Effect::Short(n)),
            ("read", None, Some(c)) => (Op::Read, Effect::Corrupt(c.clone())),
            _ => return Err(at
                .at(
                    "fault.op",
                    "`short = N` goes with op = \"write\", `corrupt = \"...\"` with op = \"read\"",
                )
                .hint("one of them per fault")),
        };
    let when = syscall_when(f, at)?;
    if let When::Probability { .. } = when {
        return Err(at.at(
            "fault.when",
            "`short` and `corrupt` faults take always, nth:N or after:N",
        ));
    }
    Ok(Fault {
        id: fault_id,
        op,
        path,
        effect: Some(effect),
        delay: None,
        when,
    })
}

fn content_fault(
    f: &RawFault,
    file: &str,
    id: &str,
    at: &CellLocator,
) -> Result<ContentFault, ScenarioError> {
    if f.path.is_some()
        || f.errno.is_some()
        || f.when.is_some()
        || f.seed.is_some()
        || f.delay.is_some()
    {
        return Err(at
            .at(
                "fault",
                "`path`, `errno`, `when`, `seed` and `delay` belong to syscall faults (`op = ...`)",
            )
            .hint("a content fault takes `file`, `action` and `content` or `lines`"));
    }
    let action = match (f.action.as_deref().unwrap_or(""), &f.content, &f.lines) {
        ("missing", None, None) => ContentAction::Missing,
        ("empty", None, None) => ContentAction::Empty,
        ("replace", Some(c), None) => ContentAction::Replace(c.clone()),
        ("drop-lines", None, Some(l)) => ContentAction::DropLines(l.clone()),
        ("replace", None, _) => {
            return Err(at
                .at("fault.action", "`replace` needs `content`")
                .hint("add content = \"...\""))
        }
        ("drop-lines", _, None) => {
            return Err(at
                .at(
                    "fault.action",
                    "`drop-lines` needs `lines` (a substring of the lines to drop)",
                )
                .hint("add lines = \" - cgroup \""))
        }
        (a @ ("missing" | "empty" | "replace" | "drop-lines"), _, _) => {
            return Err(at.at(
                "fault",
                format!("fault action `{a}` takes no other field than `file`"),
            ))
        }
        (a, _, _) => {
            let actions = ["missing", "empty", "replace", "drop-lines"];
            let msg = if a.is_empty() {
                "a content fault needs an `action`".to_string()
            } else {
                format!("unknown fault action `{a}`")
            };
            return Err(at
                .at("fault.action", msg)
                .hint(suggest(a, "actions", &actions)));
        }
    };
    Ok(ContentFault {
        file: file.replace("{id}", id),
        action,
    })
}

/// The number of the next fault on an operation.
fn next_id(faults: &[Fault]) -> FaultId {
    faults.len() as FaultId + 1
}

fn syscall_fault(
    f: &RawFault,
    op: &str,
    id: &str,
    at: &CellLocator,
    fault_id: FaultId,
) -> Result<Fault, ScenarioError> {
    if f.action.is_some() || f.content.is_some() || f.lines.is_some() {
        return Err(at
            .at(
                "fault",
                "`action`, `content` and `lines` belong to content faults (`file = ...`)",
            )
            .hint("a syscall fault takes `op`, `path`, `errno`, `when`, `seed`, `delay`"));
    }
    let op_v: Op = op.parse().map_err(|_| {
        let names: Vec<&str> = Op::ALL.iter().map(|o| o.name()).collect();
        at.at("fault.op", format!("unknown operation `{op}`"))
            .hint(suggest(op, "operations", &names))
    })?;
    let errno = match &f.errno {
        None => None,
        Some(e) => Some(parse_errno(e).map_err(|_| {
            at.at("fault.errno", format!("unknown errno `{e}`"))
                .hint("an errno name such as EINVAL, ENOSPC, EBUSY, EACCES, ENOENT")
        })?),
    };
    let delay = match &f.delay {
        None => None,
        Some(d) => Some(humantime::parse_duration(d).map_err(|e| {
            at.at("fault.delay", format!("invalid duration `{d}`: {e}"))
                .hint("write it like \"10ms\" or \"1s\"")
        })?),
    };
    if errno.is_none() && delay.is_none() {
        return Err(at.at(
            "fault",
            "a syscall fault needs an `errno`, a `delay`, or both",
        ));
    }
    let when = syscall_when(f, at)?;
    if f.seed.is_some() && !matches!(when, When::Probability { .. }) {
        return Err(at.at("fault.seed", "`seed` only applies to `when = \"p=...\"`"));
    }
    Ok(Fault {
        id: fault_id,
        op: op_v,
        path: f
            .path
            .clone()
            .unwrap_or_else(|| "**".into())
            .replace("{id}", id),
        effect: errno.map(Effect::Errno),
        delay,
        when,
    })
}

fn syscall_when(f: &RawFault, at: &CellLocator) -> Result<When, ScenarioError> {
    let when_s = f.when.as_deref().unwrap_or("always");
    let bad_when = || {
        at.at("fault.when", format!("invalid `when = \"{when_s}\"`"))
            .hint("\"always\", \"nth:N\" (only the Nth matching call), \"after:N\" (every call after the first N), \"p=0.25\" (seeded chance; set `seed`)")
    };
    let num = |s: &str| s.trim().parse::<u64>().map_err(|_| bad_when());
    let when = match when_s.split_once(':').or_else(|| when_s.split_once('=')) {
        None if when_s == "always" => When::Always,
        Some(("nth", n)) => When::Nth(num(n)?),
        Some(("after", n)) => When::After(num(n)?),
        Some(("p", p)) => {
            let p: f64 = p.trim().parse().map_err(|_| bad_when())?;
            if !(0.0..=1.0).contains(&p) {
                return Err(bad_when());
            }
            When::Probability {
                p,
                seed: f.seed.unwrap_or(0),
            }
        }
        _ => return Err(bad_when()),
    };
    Ok(when)
}

fn host_error(e: HostError, at: &CellLocator, spec: &HostSpec) -> ScenarioError {
    match &e {
        HostError::UnknownPreset { name, known } => at
            .at("host.preset", e.to_string())
            .hint(suggest(name, "known presets", known)),
        HostError::BadKernel(_) => at.at("host.kernel", e.to_string()),
        HostError::Unsupported { .. } => {
            let field = if spec.cgroup.is_some() {
                "host.cgroup"
            } else {
                "host.kernel"
            };
            at.at(field, e.to_string())
                .hint("choose a newer kernel or another cgroup mode")
        }
        HostError::UnknownOption { name, known } => at
            .at("host.options", e.to_string())
            .hint(suggest(name, "known options", known)),
        HostError::BadFault { .. } => at.at("fault.file", e.to_string()),
        HostError::NoPresetSystemd { .. } => at
            .at("host.systemd", e.to_string())
            .hint("give the version (systemd = 252), or false for no systemd"),
        HostError::HostFile { .. } => at
            .at("host.file", e.to_string())
            .hint("a host file is what `cgrepro capture -o FILE` writes; paths are relative to the repository root"),
        HostError::CapturedOverride { field, .. } => at.at(&format!("host.{field}"), e.to_string()),
        _ => at.at("host", e.to_string()),
    }
}
