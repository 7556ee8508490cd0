//! Unit names and where a unit's cgroup lies: slice expansion as systemd does it
//! (`kubepods-besteffort-pod123.slice` → `kubepods.slice/kubepods-besteffort.slice/
//! kubepods-besteffort-pod123.slice`), and the hierarchies of a host's layout.

use super::BusError;
use crate::host::{CgroupMode, Host, HostData};

const INVALID_ARGS: &str = "org.freedesktop.DBus.Error.InvalidArgs";

/// The unit types a container runtime asks for.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum UnitType {
    Scope,
    Slice,
}

/// The unit's type, if its name is valid (`unit_name_is_valid` for the plain names runtimes
/// use: `[A-Za-z0-9:_.\\-]+` and a known suffix).
pub fn unit_type(name: &str) -> Option<UnitType> {
    let (prefix, ty) = if let Some(p) = name.strip_suffix(".scope") {
        (p, UnitType::Scope)
    } else if let Some(p) = name.strip_suffix(".slice") {
        (p, UnitType::Slice)
    } else {
        return None;
    };
    let ok = !prefix.is_empty()
        && name.len() <= 255
        && prefix
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || ":_.\\-".contains(c));
    ok.then_some(ty)
}

/// The cgroup path of a slice below the hierarchy root ("" for `-.slice`), or systemd's
/// error for a malformed slice name.
pub fn expand_slice(slice: &str) -> Result<String, BusError> {
    let bad = || BusError::new(INVALID_ARGS, format!("Invalid slice name {slice}"));
    if slice == "-.slice" {
        return Ok(String::new());
    }
    let prefix = slice.strip_suffix(".slice").ok_or_else(bad)?;
    if unit_type(slice) != Some(UnitType::Slice)
        || prefix.starts_with('-')
        || prefix.ends_with('-')
        || prefix.contains("--")
    {
        return Err(bad());
    }
    let mut parts = Vec::new();
    for (i, _) in prefix.match_indices('-') {
        parts.push(format!("{}.slice", &prefix[..i]));
    }
    parts.push(slice.to_owned());
    Ok(parts.join("/"))
}

/// The D-Bus object path of a unit (`sd_bus_path_encode`: every byte outside
/// `[A-Za-z0-9]` as `_xx`).
pub fn object_path(unit: &str) -> String {
    let mut s = String::from("/org/freedesktop/systemd1/unit/");
    for b in unit.bytes() {
        if b.is_ascii_alphanumeric() {
            s.push(b as char);
        } else {
            s.push_str(&format!("_{b:02x}"));
        }
    }
    s
}

/// Where systemd keeps units on a host: the v1 hierarchies (directory under
/// /sys/fs/cgroup, controllers) and cgroup2.
#[derive(Debug, Clone)]
pub struct Layout {
    pub mode: CgroupMode,
    /// v1/hybrid: (directory, controllers) of each controller hierarchy.
    pub v1: Vec<(String, Vec<String>)>,
    /// v1/hybrid: the name=systemd hierarchy's directory.
    pub systemd_dir: Option<String>,
    /// cgroup2's directory ("" on v2, "unified" on hybrid).
    pub v2_dir: Option<String>,
    /// v2: controllers of the root's cgroup.controllers (v2 names).
    pub v2_controllers: Vec<String>,
}

impl Layout {
    pub fn of(host: &Host, data: &HostData) -> Layout {
        let topo = crate::host::tree::topology(host, data);
        let v1 = topo
            .v1
            .iter()
            .filter(|m| m.name.is_none())
            .map(|m| (m.dir.clone(), m.controllers.clone()))
            .collect();
        let systemd_dir = topo
            .v1
            .iter()
            .find(|m| m.name.as_deref() == Some("systemd"))
            .map(|m| m.dir.clone());
        let v2_controllers = if host.cgroup == CgroupMode::V2 {
            topo.v2_bound
                .iter()
                .filter_map(|n| data.kernels.controller(n))
                .filter(|c| !c.v2_implicit)
                .map(|c| c.v2_name().to_owned())
                .collect()
        } else {
            Vec::new()
        };
        Layout {
            mode: host.cgroup,
            v1,
            systemd_dir,
            v2_dir: topo.v2_dir,
            v2_controllers,
        }
    }
}

pub fn join(a: &str, b: &str) -> String {
    match (a.is_empty(), b.is_empty()) {
        (true, _) => b.to_owned(),
        (_, true) => a.to_owned(),
        _ => format!("{a}/{b}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_pod_slice_expands_into_its_parents_as_systemd_names_them() {
        assert_eq!(
            expand_slice("kubepods-besteffort-pod123.slice").unwrap(),
            "kubepods.slice/kubepods-besteffort.slice/kubepods-besteffort-pod123.slice"
        );
        assert_eq!(expand_slice("system.slice").unwrap(), "system.slice");
        assert_eq!(expand_slice("-.slice").unwrap(), "");
    }

    #[test]
    fn malformed_slices_are_refused_with_invalid_args() {
        for s in [
            "kubepods",
            "-a.slice",
            "a-.slice",
            "a--b.slice",
            "a b.slice",
        ] {
            let e = expand_slice(s).unwrap_err();
            assert_eq!(e.name, INVALID_ARGS, "{s}");
        }
    }

    #[test]
    fn unit_names_and_object_paths() {
        assert_eq!(unit_type("cri-containerd-abc.scope"), Some(UnitType::Scope));
        assert_eq!(unit_type("kubepods.slice"), Some(UnitType::Slice));
        assert_eq!(unit_type("x.service"), None);
        assert_eq!(unit_type(".scope"), None);
        assert_eq!(
            object_path("cri-containerd-a.scope"),
            "/org/freedesktop/systemd1/unit/cri_2dcontainerd_2da_2escope"
        );
    }
}
