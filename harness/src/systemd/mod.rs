//! The simulated systemd of a case's host: its D-Bus manager, versioned, making its units'
//! cgroups in the case's cgroupfs.
//!
//! A host with `systemd = N` gets, for each case, a manager that answers on systemd's
//! private socket (`/run/systemd/private`, peer-to-peer D-Bus) and on the system bus socket
//! (`/run/dbus/system_bus_socket`, behind a minimal bus that answers `org.freedesktop.DBus`
//! itself and routes the rest to the manager), the two places go-systemd (Kata, containerd,
//! runc) and youki's libcgroups look for it.
//!
//! * [`properties`]: which transient-unit properties a systemd version accepts
//!   (`fixtures/systemd/properties.toml`), systemd's refusal, and what each one does to the
//!   unit's cgroups.
//! * [`units`]: unit names, slice expansion, the unit's cgroups on each cgroup layout.
//! * [`manager`]: the manager's methods (StartTransientUnit, StopUnit, ...) on a
//!   [`Cgroups`] sink: the cgroupfs model, or the plain tree. Pure: unit tests drive it.
//! * [`bus`]: the D-Bus side (zbus peer-to-peer server connections on the two sockets),
//!   started by the sandbox for each case ([`bus::Served`]).
//!
//! Every call and its answer, and every JobRemoved signal, goes into the case's op log
//! (`dbus StartTransientUnit ...`), between the cgroupfs operations it caused.

pub mod bus;
pub mod cgroups;
pub mod manager;
pub mod properties;
pub mod units;

pub use cgroups::Cgroups;
pub use manager::Manager;

/// A D-Bus error as systemd answers it: its name and message.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("{name}: {message}")]
pub struct BusError {
    pub name: String,
    pub message: String,
}

impl BusError {
    pub fn new(name: &str, message: impl Into<String>) -> BusError {
        BusError {
            name: name.to_owned(),
            message: message.into(),
        }
    }
}

/// A scenario's `[[fault]] dbus = "Method"`: the simulated systemd answers that method
/// with this error instead of doing its work.
#[derive(Debug, Clone, PartialEq)]
pub struct DbusFault {
    /// Manager method name (`StartTransientUnit`).
    pub method: String,
    /// Error name (`org.freedesktop.systemd1.TransactionIsDestructive`).
    pub error: String,
    pub message: String,
    /// Which calls of that method fail (`always`, `nth:N`, `after:N`).
    pub when: crate::fault::When,
}
