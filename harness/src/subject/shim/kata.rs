//! The scenario's `[runtime]` rendered as a Kata Containers `configuration.toml`, with
//! placeholder hypervisor, jailer, kernel and image files.
//!
//! At config load Kata only checks that these paths exist; the hypervisor binary is first
//! executed while the VM starts, after the resource controller exists. The placeholders
//! live under [`super::RUNTIME_DIR`] in the case's private /run; the hypervisor and jailer
//! placeholders are scripts that say what they are and fail.
//!
//! Mapping: `hypervisor` (default `firecracker`) selects `[hypervisor.<name>]`, filled
//! with the defaults of Kata's shipped configuration for that hypervisor; every other
//! scalar or list goes to `[runtime]` (`sandbox_cgroup_only`, `enable_debug`, ...); a
//! table goes to the section of that name, merged over the defaults (e.g.
//! `[runtime.hypervisor.firecracker] default_memory = 512`, `[runtime.agent.kata]`).

use serde_json::Value;

use super::{FileSpec, RUNTIME_DIR};

pub struct Rendered {
    pub config: String,
    pub placeholders: Vec<FileSpec>,
}

fn placeholder_script(what: &str) -> String {
    format!(
        "#!/bin/sh\necho \"cgrepro placeholder {what}: no VM is started in a simulated host\" >&2\nexit 1\n"
    )
}

pub fn render(runtime: &Value) -> Rendered {
    let empty = serde_json::Map::new();
    let rt = runtime.as_object().unwrap_or(&empty);
    let hypervisor = rt
        .get("hypervisor")
        .and_then(Value::as_str)
        .unwrap_or("firecracker")
        .to_owned();
    let path = |f: &str| format!("{RUNTIME_DIR}/{f}");
    let mut doc = toml::Table::new();

    let mut hv = toml::Table::new();
    let bin = path(&hypervisor);
    hv.insert("path".into(), bin.clone().into());
    hv.insert("kernel".into(), path("vmlinux.container").into());
    hv.insert("image".into(), path("kata-containers.img").into());
    hv.insert(
        "valid_hypervisor_paths".into(),
        toml::Value::Array(vec![bin.into()]),
    );
    hv.insert("default_vcpus".into(), 1.into());
    hv.insert("default_memory".into(), 2048.into());
    hv.insert("default_bridges".into(), 1.into());
    let mut placeholders = vec![
        FileSpec {
            path: path(&hypervisor),
            content: placeholder_script(&hypervisor),
            mode: 0o755,
        },
        FileSpec {
            path: path("vmlinux.container"),
            content: "cgrepro placeholder guest kernel\n".into(),
            mode: 0o644,
        },
        FileSpec {
            path: path("kata-containers.img"),
            content: "cgrepro placeholder guest image\n".into(),
            mode: 0o644,
        },
    ];
    if hypervisor == "firecracker" {
        let jailer = path("jailer");
        hv.insert("jailer_path".into(), jailer.clone().into());
        hv.insert(
            "valid_jailer_paths".into(),
            toml::Value::Array(vec![jailer.clone().into()]),
        );
        hv.insert("block_device_driver".into(), "virtio-mmio".into());
        hv.insert("rootfs_type".into(), "ext4".into());
        placeholders.push(FileSpec {
            path: jailer,
            content: placeholder_script("jailer"),
            mode: 0o755,
        });
    }
    let mut hvs = toml::Table::new();
    hvs.insert(hypervisor.clone(), toml::Value::Table(hv));
    doc.insert("hypervisor".into(), toml::Value::Table(hvs));

    let mut agent = toml::Table::new();
    let mut kata = toml::Table::new();
    kata.insert("dial_timeout".into(), 45.into());
    agent.insert("kata".into(), toml::Value::Table(kata));
    doc.insert("agent".into(), toml::Value::Table(agent));

    let mut runtime_sec = toml::Table::new();
    runtime_sec.insert("internetworking_model".into(), "tcfilter".into());
    runtime_sec.insert("disable_guest_seccomp".into(), true.into());
    runtime_sec.insert("static_sandbox_resource_mgmt".into(), true.into());
    runtime_sec.insert("sandbox_cgroup_only".into(), false.into());
    doc.insert("runtime".into(), toml::Value::Table(runtime_sec));

    for (k, v) in rt {
        if k == "hypervisor" && v.is_string() {
            continue;
        }
        let Some(tv) = to_toml(v) else { continue };
        match tv {
            toml::Value::Table(t) => merge(&mut doc, k, t),
            other => {
                if let Some(toml::Value::Table(r)) = doc.get_mut("runtime") {
                    r.insert(k.clone(), other);
                }
            }
        }
    }
    let config = format!(
        "# Rendered by cgrepro from the scenario's [runtime]\n{}",
        toml::to_string(&doc).unwrap_or_default()
    );
    Rendered {
        config,
        placeholders,
    }
}

fn merge(doc: &mut toml::Table, key: &str, t: toml::Table) {
    match doc.get_mut(key) {
        Some(toml::Value::Table(existing)) => {
            for (k, v) in t {
                match v {
                    toml::Value::Table(inner) => merge(existing, &k, inner),
                    other => {
                        existing.insert(k, other);
                    }
                }
            }
        }
        _ => {
            doc.insert(key.to_owned(), toml::Value::Table(t));
        }
    }
}

fn to_toml(v: &Value) -> Option<toml::Value> {
    Some(match v {
        Value::Null => return None,
        Value::Bool(b) => toml::Value::Boolean(*b),
        Value::Number(n) => match n.as_i64() {
            Some(i) => toml::Value::Integer(i),
            None => toml::Value::Float(n.as_f64()?),
        },
        Value::String(s) => toml::Value::String(s.clone()),
        Value::Array(a) => toml::Value::Array(a.iter().filter_map(to_toml).collect()),
        Value::Object(o) => {
            let mut t = toml::Table::new();
            for (k, v) in o {
                if let Some(v) = to_toml(v) {
                    t.insert(k.clone(), v);
                }
            }
            toml::Value::Table(t)
        }
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn firecracker_with_sandbox_cgroup_only() {
        let r = render(&serde_json::json!({
            "hypervisor": "firecracker",
            "sandbox_cgroup_only": true,
            "hypervisor_extra": { "x": 1 },
        }));
        let doc: toml::Table = r.config.parse().expect("valid toml");
        assert_eq!(doc["runtime"]["sandbox_cgroup_only"].as_bool(), Some(true));
        assert_eq!(
            doc["hypervisor"]["firecracker"]["path"].as_str(),
            Some("/run/cgrepro/runtime/firecracker")
        );
        assert!(r.placeholders.iter().any(|p| p.path.ends_with("/jailer")));
    }
}
