//! One kernel × mode, end to end: generate sequences on the model, run them in one boot of
//! the real kernel, compare op by op, minimise each kind of disagreement (a few more boots),
//! and report agreement.

use std::collections::BTreeMap;
use std::path::Path;
use std::time::{Duration, Instant};

use super::compare::{normalise, run_on_model, LanePids};
use super::fixture::Disagreement;
use super::minimise::Ddmin;
use super::{gen, Op, HELPERS};
use crate::host::{tree, CgroupMode, HostData};
use crate::lane::{self, Job, Kernel, LaneError, LaneHost, Layout, Sequence};
use crate::sandbox::cgroupfs::Model;

/// What to run.
#[derive(Debug, Clone)]
pub struct Config {
    pub seed: u64,
    /// At least this many generated ops (whole sequences).
    pub ops: usize,
    /// Ops per sequence (after its opening mkdirs).
    pub seq_len: usize,
    /// Minimise at most this many distinct disagreements (0: none).
    pub minimise: usize,
    /// At most this many extra boots for minimisation.
    pub rounds: usize,
    pub timeout: Duration,
}

/// One op's verdict.
#[derive(Debug, Clone)]
pub struct OpVerdict {
    pub seq: u64,
    pub index: usize,
    pub op: Op,
    pub kernel: String,
    pub model: String,
}

impl OpVerdict {
    pub fn agrees(&self) -> bool {
        self.kernel == self.model
    }
    /// `= s3#5 write {g}/cpu.max "max" -> kernel "ok"` (and the model's when different).
    pub fn line(&self) -> String {
        if self.agrees() {
            format!(
                "= s{}#{} {} -> {:?}",
                self.seq,
                self.index,
                self.op.line(),
                self.kernel
            )
        } else {
            format!(
                "≠ s{}#{} {} -> kernel {:?}, model {:?}",
                self.seq,
                self.index,
                self.op.line(),
                self.kernel,
                self.model
            )
        }
    }
}

/// The figures of one kernel × mode.
#[derive(Debug, Clone)]
pub struct Outcome {
    pub series: String,
    pub release: String,
    pub mode: CgroupMode,
    pub verdicts: Vec<OpVerdict>,
    pub prologue_agrees: bool,
    pub boot_time: Duration,
    pub vm_total: Duration,
    /// The guest's time in ops (its clock).
    pub kernel_ops_time: Duration,
    /// The model's time for the same ops (generation included).
    pub model_ops_time: Duration,
    pub boots: usize,
    pub minimised: Vec<Disagreement>,
}

impl Outcome {
    pub fn agree(&self) -> usize {
        self.verdicts.iter().filter(|v| v.agrees()).count()
    }
    pub fn percent(&self) -> f64 {
        100.0 * self.agree() as f64 / self.verdicts.len().max(1) as f64
    }
}

pub fn mode_name(m: CgroupMode) -> &'static str {
    match m {
        CgroupMode::V1 => "v1",
        CgroupMode::Hybrid => "hybrid",
        CgroupMode::V2 => "v2",
    }
}

pub fn parse_mode(s: &str) -> Option<CgroupMode> {
    match s {
        "v1" => Some(CgroupMode::V1),
        "hybrid" => Some(CgroupMode::Hybrid),
        "v2" => Some(CgroupMode::V2),
        _ => None,
    }
}

/// The lane host's pieces the run needs.
struct Side<'a> {
    lh: LaneHost,
    data: &'a HostData,
    prologue: Vec<Op>,
    layout: Layout,
    hiers: Vec<String>,
}

impl Side<'_> {
    fn fresh_model(&self) -> Result<(Model, Vec<String>), LaneError> {
        let mut m = Model::new(
            &self.lh.host,
            self.data,
            &[],
            Vec::new(),
            Box::new(LanePids::new(HELPERS)),
        )?;
        let r = self
            .prologue
            .iter()
            .map(|op| run_on_model(&mut m, op, 0))
            .collect();
        Ok((m, r))
    }

    /// Run `ops` (with `{g}`) on a fresh model as group `g`.
    fn on_model(&self, ops: &[Op], g: &str) -> Result<Vec<String>, LaneError> {
        let (mut m, _) = self.fresh_model()?;
        Ok(ops
            .iter()
            .map(|op| run_on_model(&mut m, &op.in_group(g), HELPERS))
            .collect())
    }
}

fn side<'a>(
    fixtures: &Path,
    data: &'a HostData,
    kernel: &Kernel,
    mode: CgroupMode,
) -> Result<Side<'a>, LaneError> {
    let lh = LaneHost::new(fixtures, data, kernel, mode)?;
    let topo = tree::topology(&lh.host, data);
    let layout = Layout::of(&topo);
    let mut hiers: Vec<String> = topo.v1.iter().map(|m| m.dir.clone()).collect();
    let mut s = Side {
        lh,
        data,
        prologue: Vec::new(),
        layout,
        hiers: Vec::new(),
    };
    // Every controller the cgroup2 root offers is enabled for the groups below it, as a
    // host's init does.
    if let Some(d) = &topo.v2_dir {
        hiers.push(d.clone());
        let (mut m, _) = s.fresh_model()?;
        let at = |f: &str| {
            if d.is_empty() {
                f.to_owned()
            } else {
                format!("{d}/{f}")
            }
        };
        let listed = run_on_model(&mut m, &Op::new("read", at("cgroup.controllers"), None), 0);
        for c in listed.trim_start_matches("ok ").split_whitespace() {
            s.prologue.push(Op::new(
                "write",
                at("cgroup.subtree_control"),
                Some(format!("+{c}")),
            ));
        }
    }
    s.hiers = hiers;
    Ok(s)
}

/// Rebuild the model side of a fixture and replay it: the model's result of its last op.
pub fn replay_on_model(
    fixtures: &Path,
    data: &HostData,
    d: &Disagreement,
) -> Result<String, LaneError> {
    let mode = parse_mode(&d.mode).ok_or_else(|| LaneError::Data {
        file: fixtures.join("kernels/disagreements"),
        msg: format!("mode `{}`: expected v1, hybrid or v2", d.mode),
    })?;
    let kernel = Kernel {
        series: d.series.clone(),
        release: d.release.clone(),
        vmlinuz: Default::default(),
        source: String::new(),
    };
    let s = side(fixtures, data, &kernel, mode)?;
    let r = s.on_model(&d.op, "s0")?;
    let last = d.op.last().expect("a fixture has ops");
    Ok(normalise(last, r.last().map(String::as_str).unwrap_or("")))
}

/// What a command run in the guest gave (see [`crate::lane::command`]).
#[derive(Debug, Clone)]
pub struct CommandRun {
    pub release: String,
    pub boot_time: Duration,
    pub vm_total: Duration,
    pub prologue_agrees: bool,
    pub out: lane::command::CommandOut,
}

/// Boot `kernel` in `mode` (the simulated host's layout, the root's controllers enabled as
/// for the op sequences) and run `program` there: its directory is the guest's
/// `/payload`, with the libraries it loads and a static busybox as `/bin`.
pub fn run_command(
    root: &Path,
    data: &HostData,
    kernel: &Kernel,
    mode: CgroupMode,
    program: &Path,
    work: &Path,
    timeout: Duration,
) -> Result<CommandRun, LaneError> {
    let s = side(&root.join("fixtures"), data, kernel, mode)?;
    let init = lane::boot::payload(root)?;
    let dir = program.parent().unwrap_or(Path::new("."));
    let name = program
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    let (_, model_prologue) = s.fresh_model()?;
    let job = Job {
        layout: s.layout.clone(),
        prologue: s.prologue.clone(),
        sequences: Vec::new(),
        command: Some(lane::command::CommandSpec {
            argv: vec![format!("/{}/{name}", lane::command::GUEST_DIR)],
            timeout_secs: timeout.as_secs().saturating_sub(60).max(30),
        }),
        files: lane::command::entries(dir)?,
    };
    let boot = lane::boot(kernel, &init, &job, work, timeout)?;
    let out = boot
        .command
        .ok_or_else(|| LaneError::Guest("no command output from the guest".into()))?;
    Ok(CommandRun {
        release: boot.release,
        boot_time: boot.boot_time,
        vm_total: boot.total_time,
        prologue_agrees: boot.prologue == model_prologue,
        out,
    })
}

/// A disagreement fixture replayed on a real kernel: what the kernel answers now.
#[derive(Debug, Clone)]
pub struct FixtureCheck {
    pub path: std::path::PathBuf,
    pub recorded: String,
    pub kernel: String,
}

impl FixtureCheck {
    pub fn holds(&self) -> bool {
        self.recorded == self.kernel
    }
}

/// Replay every fixture of `kernel`'s series and `mode` on the kernel, in one boot: each
/// must still get the kernel result it records (the kernel is the truth the fixtures
/// hold the model to; a hand-reduced one is checked this way too).
pub fn check_fixtures(
    root: &Path,
    data: &HostData,
    kernel: &Kernel,
    mode: CgroupMode,
    work: &Path,
    timeout: Duration,
) -> Result<(String, Vec<FixtureCheck>), LaneError> {
    let fixtures = root.join("fixtures");
    let dir = fixtures.join("kernels/disagreements");
    let all = Disagreement::load_all(&dir).map_err(|e| LaneError::Data {
        file: dir.clone(),
        msg: e.to_string(),
    })?;
    let mine: Vec<(std::path::PathBuf, Disagreement)> = all
        .into_iter()
        .filter(|(_, d)| d.series == kernel.series && d.mode == mode_name(mode))
        .collect();
    let s = side(&fixtures, data, kernel, mode)?;
    let init = lane::boot::payload(root)?;
    let job = Job {
        layout: s.layout.clone(),
        prologue: s.prologue.clone(),
        sequences: mine
            .iter()
            .enumerate()
            .map(|(i, (_, d))| Sequence {
                id: i as u64,
                helpers: HELPERS,
                ops: d.op.iter().map(|o| o.in_group(&format!("s{i}"))).collect(),
            })
            .collect(),
        command: None,
        files: Vec::new(),
    };
    let boot = lane::boot(kernel, &init, &job, work, timeout)?;
    let checks = mine
        .into_iter()
        .enumerate()
        .map(|(i, (path, d))| {
            let last = d.op.last().expect("a fixture has ops");
            let kernel = boot
                .results
                .get(&(i as u64))
                .and_then(|r| r.last())
                .map(|r| normalise(last, r))
                .unwrap_or_else(|| "(no result from the guest)".into());
            FixtureCheck {
                path,
                recorded: normalise(last, &d.kernel),
                kernel,
            }
        })
        .collect();
    Ok((boot.release, checks))
}

/// Run one kernel × mode.
pub fn run(
    root: &Path,
    data: &HostData,
    kernel: &Kernel,
    mode: CgroupMode,
    cfg: &Config,
    work: &Path,
    found_by: &str,
) -> Result<Outcome, LaneError> {
    let fixtures = root.join("fixtures");
    let s = side(&fixtures, data, kernel, mode)?;
    let init = lane::boot::payload(root)?;
    let mut rng = fastrand::Rng::with_seed(cfg.seed);

    // Generate on the model.
    let t = Instant::now();
    let (_, model_prologue) = s.fresh_model()?;
    let mut seqs = Vec::new();
    let mut total = 0;
    let mut id = 0u64;
    while total < cfg.ops {
        let (mut m, _) = s.fresh_model()?;
        let g = gen::sequence(&mut m, &mut rng, &s.hiers, &format!("s{id}"), cfg.seq_len);
        total += g.ops.len();
        seqs.push((id, g));
        id += 1;
    }
    let model_ops_time = t.elapsed();

    let job = Job {
        layout: s.layout.clone(),
        prologue: s.prologue.clone(),
        sequences: seqs
            .iter()
            .map(|(id, g)| Sequence {
                id: *id,
                helpers: HELPERS,
                ops: g
                    .ops
                    .iter()
                    .map(|o| o.in_group(&format!("s{id}")))
                    .collect(),
            })
            .collect(),
        command: None,
        files: Vec::new(),
    };
    let boot = lane::boot(kernel, &init, &job, &work.join("run"), cfg.timeout)?;
    let mut verdicts = Vec::new();
    for (id, g) in &seqs {
        let real = boot.results.get(id).cloned().unwrap_or_default();
        for (i, op) in g.ops.iter().enumerate() {
            let k = real
                .get(i)
                .map(|r| normalise(op, r))
                .unwrap_or_else(|| "(no result from the guest)".into());
            verdicts.push(OpVerdict {
                seq: *id,
                index: i,
                op: op.clone(),
                kernel: k,
                model: normalise(op, &g.model[i]),
            });
        }
    }
    let mut out = Outcome {
        series: kernel.series.clone(),
        release: boot.release.clone(),
        mode,
        prologue_agrees: boot.prologue == model_prologue,
        verdicts,
        boot_time: boot.boot_time,
        vm_total: boot.total_time,
        kernel_ops_time: boot.ops_time,
        model_ops_time,
        boots: 1,
        minimised: Vec::new(),
    };
    if cfg.minimise > 0 {
        minimise_all(&s, kernel, &init, cfg, work, &seqs, &mut out, found_by)?;
    }
    Ok(out)
}

/// A disagreement's kind: the op, the file name and both results with digits folded.
fn signature(v: &OpVerdict) -> String {
    let file = v.op.path.rsplit('/').next().unwrap_or("");
    let fold = |s: &str| -> String {
        s.chars()
            .map(|c| if c.is_ascii_digit() { '#' } else { c })
            .take(60)
            .collect()
    };
    format!("{} {file} {} {}", v.op.op, fold(&v.kernel), fold(&v.model))
}

#[allow(clippy::too_many_arguments)]
fn minimise_all(
    s: &Side,
    kernel: &Kernel,
    init: &Path,
    cfg: &Config,
    work: &Path,
    seqs: &[(u64, gen::Generated)],
    out: &mut Outcome,
    found_by: &str,
) -> Result<(), LaneError> {
    let by_id: BTreeMap<u64, &gen::Generated> = seqs.iter().map(|(i, g)| (*i, g)).collect();
    let mut seen = std::collections::BTreeSet::new();
    let mut cases = Vec::new();
    for v in out.verdicts.iter().filter(|v| !v.agrees()) {
        if cases.len() >= cfg.minimise || !seen.insert(signature(v)) {
            continue;
        }
        let ops = by_id[&v.seq].ops[..=v.index].to_vec();
        cases.push((Ddmin::new(ops), v.kernel.clone(), v.model.clone()));
    }
    let mut next_id = 1_000_000u64;
    for round in 0..cfg.rounds {
        // Every candidate of every case, one boot.
        let mut batch: Vec<(usize, usize, u64, Vec<Op>)> = Vec::new();
        for (ci, (d, _, _)) in cases.iter().enumerate() {
            for (k, cand) in d.candidates().into_iter().enumerate() {
                batch.push((ci, k, next_id, cand));
                next_id += 1;
            }
        }
        if batch.is_empty() {
            break;
        }
        let job = Job {
            layout: s.layout.clone(),
            prologue: s.prologue.clone(),
            sequences: batch
                .iter()
                .map(|(_, _, id, ops)| Sequence {
                    id: *id,
                    helpers: HELPERS,
                    ops: ops.iter().map(|o| o.in_group(&format!("s{id}"))).collect(),
                })
                .collect(),
            command: None,
            files: Vec::new(),
        };
        // A failed boot ends the minimisation (what is reduced so far is kept), not the run.
        let boot = match lane::boot(
            kernel,
            init,
            &job,
            &work.join(format!("min{round}")),
            cfg.timeout,
        ) {
            Ok(b) => b,
            Err(e) => {
                eprintln!("minimisation stopped after {round} boots: {e}");
                break;
            }
        };
        out.boots += 1;
        let mut verdicts: Vec<Vec<bool>> = cases
            .iter()
            .map(|(d, _, _)| vec![false; d.candidates().len()])
            .collect();
        for (ci, k, id, ops) in &batch {
            let last = ops.last().expect("candidates end with the target");
            let real = boot
                .results
                .get(id)
                .and_then(|r| r.last())
                .map(|r| normalise(last, r));
            let model = s.on_model(ops, &format!("s{id}"))?;
            let model = model.last().map(|r| normalise(last, r));
            let (_, want_k, want_m) = &cases[*ci];
            verdicts[*ci][*k] = real.as_ref() == Some(want_k) && model.as_ref() == Some(want_m);
        }
        for ((d, _, _), v) in cases.iter_mut().zip(verdicts) {
            d.advance(&v);
        }
    }
    for (d, k, m) in cases {
        let target = &d.target;
        out.minimised.push(Disagreement {
            title: format!(
                "{} {}: kernel {}, model {}",
                target.op,
                target.path.rsplit('/').next().unwrap_or(""),
                short(&k),
                short(&m)
            ),
            status: "open".into(),
            series: kernel.series.clone(),
            release: out.release.clone(),
            mode: mode_name(out.mode).into(),
            found_by: found_by.to_owned(),
            kernel: k,
            model: m,
            op: d.ops(),
        });
    }
    Ok(())
}

fn short(s: &str) -> String {
    let one: String = s.replace('\n', "\\n");
    if one.chars().count() > 40 {
        format!("{}…", one.chars().take(40).collect::<String>())
    } else {
        one
    }
}
