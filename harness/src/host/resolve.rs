//! Resolution of a `[host]` spec into a [`Host`]: preset, then overrides, then defaults for
//! what neither gives, then validation against the kernel feature table.

use super::version::KernelVersion;
use super::{CgroupMode, Host, HostData, HostError, HostSpec};

/// The preset used when a spec names neither a preset nor a kernel.
pub const DEFAULT_PRESET: &str = "debian-12";
/// Without a preset, kernels from this version on default to cgroup v2 (most distros
/// switched with their 5.10-5.15 releases), older ones to v1.
const V2_DEFAULT_FROM: KernelVersion = KernelVersion::new(5, 10, 0);
/// cgroup2 became official in 4.5: v2 and hybrid need it.
const CGROUP2_SINCE: KernelVersion = KernelVersion::new(4, 5, 0);
/// Without a preset, swap accounting defaults on from 5.8 (upstream made it the default).
const SWAP_DEFAULT_FROM: KernelVersion = KernelVersion::new(5, 8, 0);

pub fn resolve(data: &HostData, spec: &HostSpec) -> Result<Host, HostError> {
    let from_file;
    let (preset_name, preset) =
        match &spec.file {
            Some(file) => {
                if spec.preset.is_some() {
                    return Err(HostError::CapturedOverride {
                        field: "preset".into(),
                        hint: "a host file stands for the preset: drop one of them".into(),
                    });
                }
                let repo = data.root.parent().unwrap_or(&data.root);
                from_file = super::captured::load(repo, file)?;
                (Some(format!("file:{file}")), Some(&from_file))
            }
            None => {
                let preset_name = match (&spec.preset, &spec.kernel) {
                    (Some(p), _) => Some(p.clone()),
                    (None, None) => Some(DEFAULT_PRESET.to_owned()),
                    (None, Some(_)) => None,
                };
                let preset =
                    match &preset_name {
                        Some(name) => Some(data.presets.get(name).ok_or_else(|| {
                            HostError::UnknownPreset {
                                name: name.clone(),
                                known: data.presets(),
                            }
                        })?),
                        None => None,
                    };
                (preset_name, preset)
            }
        };
    resolve_with(data, spec, preset_name, preset)
}

/// Resolve `spec` on top of a preset already loaded (a named preset, a host file, or a
/// capture just taken).
pub fn resolve_with(
    data: &HostData,
    spec: &HostSpec,
    preset_name: Option<String>,
    preset: Option<&super::data::Preset>,
) -> Result<Host, HostError> {
    if preset.is_some_and(|p| p.captured.is_some()) {
        for (field, given) in [
            ("kernel", spec.kernel.is_some()),
            ("cgroup", spec.cgroup.is_some()),
            ("options", spec.options.is_some()),
        ] {
            if given {
                return Err(HostError::CapturedOverride {
                    field: field.into(),
                    hint: format!("drop `{field}` (or use a generated preset to vary it)"),
                });
            }
        }
    }

    let kernel = spec
        .kernel
        .clone()
        .or_else(|| preset.map(|p| p.kernel.clone()))
        .expect("a kernel or a preset");
    let version = KernelVersion::parse_release(&kernel)
        .ok_or_else(|| HostError::BadKernel(kernel.clone()))?;

    let cgroup =
        spec.cgroup
            .or(preset.map(|p| p.cgroup))
            .unwrap_or(if version >= V2_DEFAULT_FROM {
                CgroupMode::V2
            } else {
                CgroupMode::V1
            });
    if cgroup != CgroupMode::V1 && version < CGROUP2_SINCE {
        return Err(HostError::Unsupported {
            mode: cgroup,
            kernel,
            why: format!("cgroup2 appeared in kernel {CGROUP2_SINCE}; use cgroup = \"v1\""),
        });
    }

    let systemd = match spec.systemd {
        Some(0) => None,
        Some(super::PRESET_SYSTEMD) => Some(preset.and_then(|p| p.systemd).ok_or_else(|| {
            HostError::NoPresetSystemd {
                preset: spec
                    .preset
                    .clone()
                    .unwrap_or_else(|| "the default host".into()),
            }
        })?),
        Some(v) => Some(v),
        None => preset.and_then(|p| p.systemd),
    };
    let swap_accounting = spec
        .swap_accounting
        .or(preset.map(|p| p.swap_accounting))
        .unwrap_or(version >= SWAP_DEFAULT_FROM);
    let devices = spec
        .devices
        .clone()
        .or_else(|| preset.map(|p| p.devices.clone()))
        .unwrap_or_default();

    let tables = &data.kernels;
    let mut options: std::collections::BTreeMap<String, bool> = tables
        .options
        .iter()
        .map(|(k, d)| (k.clone(), d.default))
        .collect();
    let given = preset
        .map(|p| &p.options)
        .into_iter()
        .flatten()
        .chain(spec.options.iter().flatten());
    for (name, &value) in given {
        if !tables.options.contains_key(name) && tables.controller(name).is_none() {
            return Err(HostError::UnknownOption {
                name: name.clone(),
                known: tables.option_names(),
            });
        }
        options.insert(name.clone(), value);
    }

    // The preset's build string may name its kernel series once more after the release
    // (`Debian 6.1.119-1`): for a kernel of another series the generic string is used,
    // else /proc/version would name two kernels.
    let proc_version = match preset {
        Some(p) if p.kernel == kernel => p.proc_version.clone(),
        Some(p)
            if p.proc_version.contains(&p.kernel)
                && (same_series(&p.kernel, &kernel)
                    || !names_series(&p.proc_version.replace(&p.kernel, ""), &p.kernel)) =>
        {
            p.proc_version.replace(&p.kernel, &kernel)
        }
        _ => tables.procfs.version.template.replace("{release}", &kernel),
    };

    Ok(Host {
        preset: preset_name,
        kernel,
        cgroup,
        swap_accounting,
        systemd,
        devices,
        options,
        proc_version,
        cgroupfs: spec.cgroupfs.unwrap_or_default(),
        writable: spec
            .writable
            .iter()
            .flatten()
            .map(std::path::PathBuf::from)
            .collect(),
        captured: preset.and_then(|p| p.captured.clone()),
        captured_digest: preset.and_then(|p| p.captured.as_ref().map(|c| c.digest())),
    })
}

fn same_series(a: &str, b: &str) -> bool {
    let series = |r: &str| KernelVersion::parse_release(r).map(|v| (v.major, v.minor));
    series(a).is_some() && series(a) == series(b)
}

/// `text` mentions `MAJOR.MINOR.` of `release` as a version of its own (not inside a
/// longer number such as `10.5.0` for 5.10).
fn names_series(text: &str, release: &str) -> bool {
    let Some(v) = KernelVersion::parse_release(release) else {
        return false;
    };
    let needle = format!("{}.{}.", v.major, v.minor);
    text.match_indices(&needle)
        .any(|(i, _)| !text[..i].ends_with(|c: char| c.is_ascii_digit() || c == '.'))
}
