//! Which real kernels the lane can boot, and the simulated host that stands for each.
//!
//! The cache (`$CGREPRO_LANE_CACHE`, default `~/.cache/cgrepro/lane`) holds
//! `kernels/<series>/{vmlinuz,release,source}`, filled by `ci/kernel-lane.sh`. The model
//! side of a series is described in `fixtures/kernels/lane.toml` (data, not code: the
//! config knobs in which Debian's builds differ).

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::Deserialize;

use super::LaneError;
use crate::host::{CgroupMode, Host, HostData, HostSpec};

/// A bootable kernel from the cache.
#[derive(Debug, Clone)]
pub struct Kernel {
    /// `6.1`, `6.12`.
    pub series: String,
    /// `uname -r` of the image, e.g. `6.1.0-48-amd64`.
    pub release: String,
    pub vmlinuz: PathBuf,
    /// The package it came from, with its sha256.
    pub source: String,
}

pub fn cache_dir() -> PathBuf {
    if let Some(d) = std::env::var_os("CGREPRO_LANE_CACHE") {
        return PathBuf::from(d);
    }
    let home = std::env::var_os("HOME").unwrap_or_else(|| "/root".into());
    Path::new(&home).join(".cache/cgrepro/lane")
}

/// Every kernel in the cache, by series.
pub fn cached(cache: &Path) -> Vec<Kernel> {
    let mut out = Vec::new();
    let Ok(rd) = std::fs::read_dir(cache.join("kernels")) else {
        return out;
    };
    for e in rd.flatten() {
        let dir = e.path();
        let vmlinuz = dir.join("vmlinuz");
        let release = std::fs::read_to_string(dir.join("release")).unwrap_or_default();
        if !vmlinuz.is_file() || release.trim().is_empty() {
            continue;
        }
        out.push(Kernel {
            series: e.file_name().to_string_lossy().into_owned(),
            release: release.trim().to_owned(),
            vmlinuz,
            source: std::fs::read_to_string(dir.join("source"))
                .unwrap_or_default()
                .trim()
                .to_owned(),
        });
    }
    out.sort_by(|a, b| a.series.cmp(&b.series));
    out
}

pub fn find(cache: &Path, series: &str) -> Result<Kernel, LaneError> {
    let all = cached(cache);
    all.iter()
        .find(|k| k.series == series)
        .cloned()
        .ok_or_else(|| LaneError::NoKernel {
            series: series.to_owned(),
            cache: cache.to_owned(),
            have: if all.is_empty() {
                "none".into()
            } else {
                all.iter()
                    .map(|k| k.series.as_str())
                    .collect::<Vec<_>>()
                    .join(", ")
            },
        })
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct LaneFile {
    series: BTreeMap<String, SeriesEntry>,
}

#[derive(Debug, Deserialize)]
#[serde(deny_unknown_fields)]
struct SeriesEntry {
    #[serde(default)]
    options: BTreeMap<String, bool>,
    #[serde(default = "yes")]
    swap_accounting: bool,
    #[allow(dead_code)]
    #[serde(default)]
    note: String,
}

fn yes() -> bool {
    true
}

/// The simulated host that stands for a lane kernel booted in `mode`: no systemd (the
/// guest's /init is the only process), the series' knobs from `fixtures/kernels/lane.toml`.
#[derive(Debug, Clone)]
pub struct LaneHost {
    pub spec: HostSpec,
    pub host: Host,
}

impl LaneHost {
    pub fn new(
        fixtures: &Path,
        data: &HostData,
        kernel: &Kernel,
        mode: CgroupMode,
    ) -> Result<LaneHost, LaneError> {
        let file = fixtures.join("kernels/lane.toml");
        let text =
            std::fs::read_to_string(&file).map_err(LaneError::io(file.display().to_string()))?;
        let lane: LaneFile = toml::from_str(&text).map_err(|e| LaneError::Data {
            file: file.clone(),
            msg: e.to_string(),
        })?;
        let entry = lane
            .series
            .get(&kernel.series)
            .ok_or_else(|| LaneError::Data {
                file: file.clone(),
                msg: format!(
                "no [series.\"{}\"] table: add one (options = {{ ... }}) for this kernel series",
                kernel.series
            ),
            })?;
        let spec = HostSpec {
            kernel: Some(kernel.release.clone()),
            cgroup: Some(mode),
            systemd: Some(0),
            swap_accounting: Some(entry.swap_accounting),
            options: Some(entry.options.clone()),
            ..HostSpec::default()
        };
        let host = data.resolve(&spec)?;
        Ok(LaneHost { spec, host })
    }
}
