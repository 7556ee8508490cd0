//! Which transient-unit properties a systemd version accepts, and what each does to the
//! unit's cgroups: the table in `fixtures/systemd/properties.toml` (one row per property,
//! with the systemd version that added it), compiled in.
//!
//! systemd refuses a property it does not know with
//! `org.freedesktop.DBus.Error.PropertyReadOnly` `Cannot set property X, or unknown
//! property.` (real-bugs.md rows 7 and 8: IOAccounting before 230, TasksAccounting before
//! 227), and creates nothing.

use std::sync::OnceLock;

use serde::Deserialize;

use super::BusError;

const TABLE: &str = include_str!("../../../fixtures/systemd/properties.toml");

/// How a property's value is written to its interface file.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Deserialize)]
#[serde(rename_all = "kebab-case")]
pub enum Format {
    /// Bytes (`t`); `u64::MAX` is "max" on v2, "-1" on v1.
    Bytes,
    /// `CPUShares` (`t`): cpu.shares on v1, converted to cpu.weight on v2 as systemd does.
    CpuShares,
    /// `CPUWeight` (`t`): cpu.weight on v2, converted to cpu.shares on v1.
    CpuWeight,
    /// `CPUQuotaPerSecUSec` (`t`): cpu.max `quota period` on v2, cpu.cfs_quota_us on v1.
    CpuQuota,
    /// `AllowedCPUs`/`AllowedMemoryNodes` (`ay`, a bitmask): a cpuset list (`0-1,4`).
    CpuSet,
    /// `TasksMax` (`t`): pids.max, `u64::MAX` = "max".
    Tasks,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Property {
    pub name: String,
    pub since: u32,
    pub checked: bool,
    /// Where `since` comes from (the NEWS entry).
    pub source: String,
    #[serde(default)]
    pub v1: Vec<String>,
    #[serde(default)]
    pub v2: Vec<String>,
    pub file_v1: Option<String>,
    pub file_v2: Option<String>,
    pub format: Option<Format>,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Refusal {
    pub name: String,
    /// `{property}` is replaced by the property's name.
    pub message: String,
}

/// The controllers systemd manages (what `"*"` in a row stands for).
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Managed {
    pub v1: Vec<String>,
    pub v2: Vec<String>,
    /// cpuset joins the v2 list from this version.
    pub cpuset_since: u32,
}

/// Which unit types StartTransientUnit creates, by version.
#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Transient {
    /// Transient slices from this version (scopes always).
    pub slice_since: u32,
}

#[derive(Debug, Clone, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct Table {
    pub error: Refusal,
    pub managed: Managed,
    pub transient: Transient,
    pub property: Vec<Property>,
}

impl Table {
    /// The compiled-in table (its validity is a unit test).
    pub fn get() -> &'static Table {
        static T: OnceLock<Table> = OnceLock::new();
        T.get_or_init(|| Table::parse(TABLE).expect("fixtures/systemd/properties.toml is valid"))
    }

    pub fn parse(text: &str) -> Result<Table, toml::de::Error> {
        toml::from_str(text)
    }

    /// The property as systemd `version` knows it, or systemd's refusal.
    pub fn accept(&self, version: u32, name: &str) -> Result<&Property, BusError> {
        self.property
            .iter()
            .find(|p| p.name == name && p.since <= version)
            .ok_or_else(|| self.refusal(name))
    }

    pub fn refusal(&self, name: &str) -> BusError {
        BusError::new(
            &self.error.name,
            self.error.message.replace("{property}", name),
        )
    }

    /// The controllers a row names, with `"*"` expanded for systemd `version`.
    pub fn controllers(&self, list: &[String], v2: bool, version: u32) -> Vec<String> {
        let mut out = Vec::new();
        for c in list {
            if c == "*" {
                let managed = if v2 {
                    &self.managed.v2
                } else {
                    &self.managed.v1
                };
                out.extend(managed.iter().cloned());
                if v2 && version >= self.managed.cpuset_since {
                    out.push("cpuset".into());
                }
            } else {
                out.push(c.clone());
            }
        }
        out.sort();
        out.dedup();
        out
    }
}

/// `AllowedCPUs` as systemd receives it (a little-endian bitmask of bytes) as a cpuset list.
pub fn cpu_set(mask: &[u8]) -> String {
    let bits: Vec<usize> = (0..mask.len() * 8)
        .filter(|i| mask[i / 8] & (1 << (i % 8)) != 0)
        .collect();
    let mut parts = Vec::new();
    let mut i = 0;
    while i < bits.len() {
        let start = bits[i];
        while i + 1 < bits.len() && bits[i + 1] == bits[i] + 1 {
            i += 1;
        }
        parts.push(if bits[i] == start {
            start.to_string()
        } else {
            format!("{start}-{}", bits[i])
        });
        i += 1;
    }
    parts.join(",")
}

/// systemd's `cgroup_cpu_shares_to_weight`.
pub fn shares_to_weight(shares: u64) -> u64 {
    (shares.saturating_mul(100) / 1024).clamp(1, 10_000)
}

/// systemd's `cgroup_cpu_weight_to_shares`.
pub fn weight_to_shares(weight: u64) -> u64 {
    (weight.saturating_mul(1024) / 100).clamp(2, 262_144)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn the_table_in_fixtures_parses_and_has_no_duplicate_rows() {
        let t = Table::get();
        let mut names: Vec<&str> = t.property.iter().map(|p| p.name.as_str()).collect();
        let n = names.len();
        names.sort();
        names.dedup();
        assert_eq!(names.len(), n, "a property is listed twice");
        for p in &t.property {
            assert!(
                p.checked && !p.source.is_empty(),
                "{}: every row is checked against systemd's NEWS and says where",
                p.name
            );
            assert_eq!(
                p.format.is_some(),
                p.file_v1.is_some() || p.file_v2.is_some(),
                "{}: a file needs a format and a format a file",
                p.name
            );
        }
    }

    #[test]
    fn systemd_219_refuses_io_accounting_as_amazon_linux_2_does() {
        let e = Table::get().accept(219, "IOAccounting").unwrap_err();
        assert_eq!(e.name, "org.freedesktop.DBus.Error.PropertyReadOnly");
        assert_eq!(
            e.message,
            "Cannot set property IOAccounting, or unknown property."
        );
        assert!(Table::get().accept(230, "IOAccounting").is_ok());
    }

    #[test]
    fn systemd_219_refuses_tasks_accounting_as_centos_7_does() {
        let e = Table::get().accept(219, "TasksAccounting").unwrap_err();
        assert_eq!(
            e.to_string(),
            "org.freedesktop.DBus.Error.PropertyReadOnly: Cannot set property TasksAccounting, or unknown property."
        );
        assert!(Table::get().accept(227, "TasksAccounting").is_ok());
    }

    #[test]
    fn a_property_no_systemd_knows_is_refused_and_delegate_needs_218() {
        assert!(Table::get().accept(999, "NoSuchProperty").is_err());
        assert!(Table::get().accept(217, "Delegate").is_err());
        assert!(Table::get().accept(218, "Delegate").is_ok());
    }

    #[test]
    fn memory_limits_on_v2_came_with_systemd_231_not_230() {
        // NEWS 231: "systemd now supports the memory cgroup controller also on cgroup v2".
        let t = Table::get();
        for p in ["MemoryLow", "MemoryHigh", "MemoryMax"] {
            assert!(t.accept(230, p).is_err(), "{p}");
            assert!(t.accept(231, p).is_ok(), "{p}");
        }
        assert_eq!(t.transient.slice_since, 228);
    }

    #[test]
    fn delegate_means_every_managed_controller_and_cpuset_from_244() {
        let t = Table::get();
        let star = vec!["*".to_string()];
        assert_eq!(
            t.controllers(&star, true, 243),
            ["cpu", "io", "memory", "pids"]
        );
        assert_eq!(
            t.controllers(&star, true, 252),
            ["cpu", "cpuset", "io", "memory", "pids"]
        );
        assert_eq!(
            t.controllers(&star, false, 219),
            ["blkio", "cpu", "cpuacct", "devices", "memory", "pids"]
        );
    }

    #[test]
    fn values_are_converted_as_systemd_converts_them() {
        assert_eq!(cpu_set(&[0b0000_0011]), "0-1");
        assert_eq!(cpu_set(&[0b0001_0101, 0b1]), "0,2,4,8");
        assert_eq!(shares_to_weight(1024), 100);
        assert_eq!(shares_to_weight(2), 1);
        assert_eq!(weight_to_shares(100), 1024);
    }
}
