//! The D-Bus side of the simulated systemd: one harness thread per case that accepts on
//! the case's `/run/systemd/private` (peer-to-peer, as systemd serves it: no Hello, no bus)
//! and `/run/dbus/system_bus_socket` (a minimal bus: `org.freedesktop.DBus` answered here —
//! Hello, AddMatch, RemoveMatch, GetNameOwner, NameHasOwner, ListNames, GetId, RequestName,
//! ReleaseName, GetConnectionUnixUser — and everything else routed to the manager, whose
//! signals reach the connections whose match rules select them).
//!
//! Each accepted socket is a zbus peer-to-peer server connection (EXTERNAL auth from the
//! case's root, uid 0 in its user namespace) serving the manager's object and one object
//! per unit (`/org/freedesktop/systemd1/unit/<escaped>`: `org.freedesktop.systemd1.Unit`
//! and `.Scope`/`.Slice`, read through `org.freedesktop.DBus.Properties`); zbus does the
//! wire protocol, this module the bus's own few methods. The connections' executors run
//! on the thread's executor; nothing runs when no client connects. While a unit stops, a
//! ticker advances its stop every few milliseconds ([`Manager::poll`]).

use std::collections::{BTreeSet, HashMap};
use std::marker::PhantomData;
use std::os::unix::fs::{chown, PermissionsExt};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::{Path, PathBuf};
use std::sync::atomic::{AtomicUsize, Ordering};
use std::sync::{Arc, Mutex};

use async_io::Async;
use futures_lite::future;
use zbus::message::{Header, Message};
use zbus::names::{ErrorName, InterfaceName, MemberName};
use zbus::object_server::{DispatchResult2, Interface, SignalEmitter};
use zbus::{fdo, ObjectServer};
use zvariant::{ObjectPath, OwnedObjectPath, OwnedValue};

use super::manager::{Job, Manager};
use super::BusError;

/// Where the sockets appear inside the case.
pub const PRIVATE_SOCKET: &str = "/run/systemd/private";
pub const BUS_SOCKET: &str = "/run/dbus/system_bus_socket";
/// systemd's unique name on the bus.
const SYSTEMD_UNIQUE: &str = ":1.1";
const SYSTEMD_NAME: &str = "org.freedesktop.systemd1";
const MANAGER_PATH: &str = "/org/freedesktop/systemd1";
const MANAGER_IFACE: &str = "org.freedesktop.systemd1.Manager";

/// The two listening sockets, made by the harness in the case directory before the case
/// starts (`run/systemd/private`, `run/dbus/system_bus_socket`, and the
/// `run/systemd/system` directory of a booted systemd); the sandbox binds
/// `run/systemd` and `run/dbus` over the case's `/run/systemd` and `/run/dbus`.
pub struct Sockets {
    /// `<case>/run`.
    pub dir: PathBuf,
    private: UnixListener,
    bus: UnixListener,
}

impl Sockets {
    /// Bind both sockets below `dir`, owned by the case's root (`owner`, as the harness
    /// names it): the private socket 0600 as systemd makes it, the bus socket 0666.
    pub fn bind(dir: &Path, owner: (u32, u32)) -> std::io::Result<Sockets> {
        let sd = dir.join("systemd");
        let dbus = dir.join("dbus");
        // /run/systemd/system: how sd_booted() (youki, go-systemd's IsRunningSystemd) tells
        // that systemd runs the host.
        for d in [dir, &sd, &sd.join("system"), &dbus] {
            std::fs::create_dir_all(d)?;
            std::fs::set_permissions(d, std::fs::Permissions::from_mode(0o755))?;
        }
        let bind = |p: PathBuf, mode: u32| -> std::io::Result<UnixListener> {
            let l = UnixListener::bind(&p)?;
            chown(&p, Some(owner.0), Some(owner.1))?;
            std::fs::set_permissions(&p, std::fs::Permissions::from_mode(mode))?;
            Ok(l)
        };
        Ok(Sockets {
            dir: dir.to_path_buf(),
            private: bind(sd.join("private"), 0o600)?,
            bus: bind(dbus.join("system_bus_socket"), 0o666)?,
        })
    }
}

/// A running simulated systemd; [`Served::finish`] stops it.
pub struct Served {
    stop: async_channel::Sender<()>,
    thread: Option<std::thread::JoinHandle<()>>,
    shared: Arc<Shared>,
    /// The listening sockets (owned by the thread, open until it ends).
    fds: [std::os::fd::RawFd; 2],
}

impl Served {
    /// Stop accepting, close every connection, join the thread.
    pub fn finish(mut self) {
        self.stop_now();
    }

    fn stop_now(&mut self) {
        let Some(t) = self.thread.take() else { return };
        // The case's processes are gone: no connection can come any more. Nobody connected
        // (none accepted, none waiting in a backlog): nothing more can reach the op log, and
        // the thread ends on its own — no waiting for it to be scheduled, which is most of
        // what an unused systemd would cost a case.
        let used = self.shared.next.load(Ordering::SeqCst) > 0 || pending(&self.fds);
        self.stop.close();
        if used {
            let _ = t.join();
        }
    }
}

impl Drop for Served {
    fn drop(&mut self) {
        self.stop_now();
    }
}

/// A connection waits in one of the listeners' backlogs.
fn pending(fds: &[std::os::fd::RawFd; 2]) -> bool {
    let mut p = fds.map(|fd| libc::pollfd {
        fd,
        events: libc::POLLIN,
        revents: 0,
    });
    // SAFETY: `p` is a live array of pollfds; poll only reads and writes it.
    let n = unsafe { libc::poll(p.as_mut_ptr(), p.len() as libc::nfds_t, 0) };
    n > 0 && p.iter().any(|x| x.revents & libc::POLLIN != 0)
}

/// A match rule as the bus keeps it: `key='value'` pairs (whitespace after commas
/// allowed, as dbus-daemon allows it: go-systemd sends `type='signal', interface=...`).
#[derive(Debug, Clone, PartialEq)]
struct Rule(Vec<(String, String)>);

impl Rule {
    fn parse(text: &str) -> Option<Rule> {
        let mut pairs = Vec::new();
        for part in text.split(',').map(str::trim).filter(|p| !p.is_empty()) {
            let (k, v) = part.split_once('=')?;
            let v = v.trim().strip_prefix('\'')?.strip_suffix('\'')?;
            pairs.push((k.trim().to_owned(), v.to_owned()));
        }
        Some(Rule(pairs))
    }

    /// Whether a signal of the manager (`member`) is selected.
    fn selects(&self, member: &str) -> bool {
        self.0.iter().all(|(k, v)| match k.as_str() {
            "type" => v == "signal",
            "sender" => v == SYSTEMD_NAME || v == SYSTEMD_UNIQUE,
            "interface" => v == MANAGER_IFACE,
            "member" => v == member,
            "path" => v == MANAGER_PATH,
            "path_namespace" => MANAGER_PATH.starts_with(v.as_str()),
            // arg0..., eavesdrop, destination: not narrowed here.
            _ => true,
        })
    }
}

struct Client {
    id: usize,
    conn: zbus::Connection,
    /// On the bus socket (else the private one).
    bus: bool,
    rules: Vec<Rule>,
    hello: bool,
    /// Units whose objects this connection serves.
    objects: BTreeSet<String>,
}

struct Shared {
    manager: Mutex<Manager>,
    clients: Mutex<Vec<Client>>,
    next: AtomicUsize,
    /// Clients still in their handshake.
    handshaking: AtomicUsize,
    jobs: async_channel::Sender<Job>,
    /// Wakes the ticker when a unit starts stopping.
    stops: async_channel::Sender<()>,
}

impl Shared {
    fn manager(&self) -> std::sync::MutexGuard<'_, Manager> {
        self.manager.lock().unwrap_or_else(|e| e.into_inner())
    }
    fn clients(&self) -> std::sync::MutexGuard<'_, Vec<Client>> {
        self.clients.lock().unwrap_or_else(|e| e.into_inner())
    }

    /// Send the JobRemoved of finished jobs, wake the ticker if a stop is under way, and
    /// bring every connection's unit objects in line with the manager's units.
    async fn settle(self: &Arc<Self>) {
        let (jobs, stopping, units) = {
            let mut m = self.manager();
            let units: BTreeSet<String> = m.unit_names().into_iter().collect();
            (m.take_finished(), m.stopping(), units)
        };
        for j in jobs {
            let _ = self.jobs.try_send(j);
        }
        if stopping {
            let _ = self.stops.try_send(());
        }
        let work: Vec<(zbus::Connection, Vec<String>, Vec<String>)> = {
            let mut clients = self.clients();
            clients
                .iter_mut()
                .map(|c| {
                    let add: Vec<String> = units.difference(&c.objects).cloned().collect();
                    let remove: Vec<String> = c.objects.difference(&units).cloned().collect();
                    c.objects = units.clone();
                    (c.conn.clone(), add, remove)
                })
                .collect()
        };
        for (conn, add, remove) in work {
            serve_units(&conn, self, &add, &remove).await;
        }
    }
}

/// Register (and drop) the objects of units on one connection.
async fn serve_units(
    conn: &zbus::Connection,
    shared: &Arc<Shared>,
    add: &[String],
    remove: &[String],
) {
    let server = conn.object_server();
    for name in add {
        let path = super::units::object_path(name);
        let _ = server
            .at(path.as_str(), UnitObject::<UnitKind>::new(shared, name))
            .await;
        let _ = server
            .at(path.as_str(), UnitObject::<ScopeKind>::new(shared, name))
            .await;
        let _ = server
            .at(path.as_str(), UnitObject::<SliceKind>::new(shared, name))
            .await;
    }
    for name in remove {
        let path = super::units::object_path(name);
        let _ = server
            .remove::<UnitObject<UnitKind>, _>(path.as_str())
            .await;
        let _ = server
            .remove::<UnitObject<ScopeKind>, _>(path.as_str())
            .await;
        let _ = server
            .remove::<UnitObject<SliceKind>, _>(path.as_str())
            .await;
    }
}

/// Which interface of a unit object.
trait Kind: Send + Sync + 'static {
    const NAME: &'static str;
}
struct UnitKind;
struct ScopeKind;
struct SliceKind;
impl Kind for UnitKind {
    const NAME: &'static str = "org.freedesktop.systemd1.Unit";
}
impl Kind for ScopeKind {
    const NAME: &'static str = "org.freedesktop.systemd1.Scope";
}
impl Kind for SliceKind {
    const NAME: &'static str = "org.freedesktop.systemd1.Slice";
}

/// One interface of a unit's object: read-only properties from the manager
/// ([`Manager::unit_properties`]), so Get and GetAll answer with what this systemd version
/// has. Written by hand (zbus's `Interface`) because the set of properties depends on the
/// host's systemd version and on the unit, which the `interface` macro cannot express.
struct UnitObject<K: Kind> {
    shared: Arc<Shared>,
    unit: String,
    kind: PhantomData<K>,
}

impl<K: Kind> UnitObject<K> {
    fn new(shared: &Arc<Shared>, unit: &str) -> Self {
        UnitObject {
            shared: Arc::clone(shared),
            unit: unit.to_owned(),
            kind: PhantomData,
        }
    }

    fn props(&self) -> Vec<(String, OwnedValue)> {
        self.shared
            .manager()
            .unit_properties(&self.unit, K::NAME)
            .unwrap_or_default()
    }
}

#[async_trait::async_trait]
impl<K: Kind> Interface for UnitObject<K> {
    fn name() -> InterfaceName<'static> {
        InterfaceName::from_static_str_unchecked(K::NAME)
    }

    async fn get(
        &self,
        property_name: &str,
        _server: &ObjectServer,
        _connection: &zbus::Connection,
        _header: Option<&Header<'_>>,
        _emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<OwnedValue>> {
        self.props()
            .into_iter()
            .find(|(n, _)| n == property_name)
            .map(|(_, v)| Ok(v))
    }

    async fn get_all(
        &self,
        _server: &ObjectServer,
        _connection: &zbus::Connection,
        _header: Option<&Header<'_>>,
        _emitter: &SignalEmitter<'_>,
    ) -> fdo::Result<HashMap<String, OwnedValue>> {
        Ok(self.props().into_iter().collect())
    }

    async fn set_mut(
        &mut self,
        property_name: &str,
        _value: &zvariant::Value<'_>,
        _server: &ObjectServer,
        _connection: &zbus::Connection,
        _header: Option<&Header<'_>>,
        _emitter: &SignalEmitter<'_>,
    ) -> Option<fdo::Result<()>> {
        Some(Err(fdo::Error::PropertyReadOnly(format!(
            "Property '{property_name}' is not writable."
        ))))
    }

    fn call<'call>(
        &'call self,
        _server: &'call ObjectServer,
        _connection: &'call zbus::Connection,
        _msg: &'call Message,
        _name: MemberName<'call>,
    ) -> DispatchResult2<'call> {
        DispatchResult2::NotFound
    }

    fn call_mut<'call>(
        &'call mut self,
        _server: &'call ObjectServer,
        _connection: &'call zbus::Connection,
        _msg: &'call Message,
        _name: MemberName<'call>,
    ) -> DispatchResult2<'call> {
        DispatchResult2::NotFound
    }

    fn introspect_to_writer(&self, writer: &mut dyn std::fmt::Write, level: usize) {
        let pad = " ".repeat(level);
        let _ = writeln!(writer, "{pad}<interface name=\"{}\">", K::NAME);
        for (n, v) in self.props() {
            let _ = writeln!(
                writer,
                "{pad}  <property name=\"{n}\" type=\"{}\" access=\"read\"/>",
                v.value_signature()
            );
        }
        let _ = writeln!(writer, "{pad}</interface>");
    }
}

/// A systemd error on the wire: its own name and message.
#[derive(Debug)]
pub struct Reply(BusError);

impl From<BusError> for Reply {
    fn from(e: BusError) -> Reply {
        Reply(e)
    }
}

impl From<zbus::Error> for Reply {
    fn from(e: zbus::Error) -> Reply {
        Reply(BusError::new(
            "org.freedesktop.DBus.Error.Failed",
            e.to_string(),
        ))
    }
}

impl From<zvariant::Error> for Reply {
    fn from(e: zvariant::Error) -> Reply {
        Reply(BusError::new(
            "org.freedesktop.DBus.Error.Failed",
            e.to_string(),
        ))
    }
}

impl zbus::DBusError for Reply {
    fn create_reply(&self, call: &Header<'_>) -> zbus::Result<Message> {
        Message::error(call, self.name())?.build(&(self.0.message.as_str(),))
    }

    fn name(&self) -> ErrorName<'_> {
        ErrorName::try_from(self.0.name.as_str()).unwrap_or_else(|_| {
            ErrorName::from_static_str_unchecked("org.freedesktop.DBus.Error.Failed")
        })
    }

    fn description(&self) -> Option<&str> {
        Some(&self.0.message)
    }
}

type Props = Vec<(String, OwnedValue)>;

/// `org.freedesktop.systemd1.Manager` at /org/freedesktop/systemd1.
struct ManagerIface {
    shared: Arc<Shared>,
}

impl ManagerIface {
    /// A method's answer: on success, the finished jobs' JobRemoved after the reply, the
    /// unit objects updated.
    async fn path(&self, r: Result<String, BusError>) -> Result<OwnedObjectPath, Reply> {
        let settled = self.shared.settle();
        settled.await;
        Ok(OwnedObjectPath::try_from(r?)?)
    }
}

#[zbus::interface(name = "org.freedesktop.systemd1.Manager")]
impl ManagerIface {
    async fn start_transient_unit(
        &self,
        name: String,
        mode: String,
        properties: Props,
        _aux: Vec<(String, Props)>,
    ) -> Result<OwnedObjectPath, Reply> {
        let r = self
            .shared
            .manager()
            .start_transient_unit(&name, &mode, &properties);
        self.path(r).await
    }

    async fn stop_unit(&self, name: String, mode: String) -> Result<OwnedObjectPath, Reply> {
        let r = self
            .shared
            .manager()
            .stop_unit(&name, &mode, std::time::Instant::now());
        self.path(r).await
    }

    async fn kill_unit(&self, name: String, whom: String, signal: i32) -> Result<(), Reply> {
        let r = self.shared.manager().kill_unit(&name, &whom, signal);
        self.shared.settle().await;
        Ok(r?)
    }

    async fn attach_processes_to_unit(
        &self,
        #[zbus(connection)] conn: &zbus::Connection,
        name: String,
        subcgroup: String,
        pids: Vec<u32>,
    ) -> Result<(), Reply> {
        // pid 0 is the caller: its pid in the case's namespace.
        let sender = match conn.peer_creds().await {
            Ok(c) => c
                .process_id()
                .and_then(crate::sandbox::cgroupfs::pids::case_pid),
            Err(_) => None,
        };
        let r = self
            .shared
            .manager()
            .attach_processes_to_unit(&name, &subcgroup, &pids, sender);
        self.shared.settle().await;
        Ok(r?)
    }

    async fn reset_failed_unit(&self, name: String) -> Result<(), Reply> {
        let r = self.shared.manager().reset_failed_unit(&name);
        self.shared.settle().await;
        Ok(r?)
    }

    async fn get_unit(&self, name: String) -> Result<OwnedObjectPath, Reply> {
        let p = self.shared.manager().get_unit(&name)?;
        Ok(OwnedObjectPath::try_from(p)?)
    }

    async fn set_unit_properties(
        &self,
        name: String,
        runtime: bool,
        properties: Props,
    ) -> Result<(), Reply> {
        let r = self
            .shared
            .manager()
            .set_unit_properties(&name, runtime, &properties);
        self.shared.settle().await;
        Ok(r?)
    }

    async fn subscribe(&self) -> Result<(), Reply> {
        Ok(self.shared.manager().subscribe("Subscribe")?)
    }

    async fn unsubscribe(&self) -> Result<(), Reply> {
        Ok(self.shared.manager().subscribe("Unsubscribe")?)
    }

    /// `Version`: the host's systemd version, as systemd prints it (`219`).
    #[zbus(property)]
    async fn version(&self) -> String {
        self.shared.manager().version().to_string()
    }

    /// `ControlGroup`: the system manager's own root ("" as the system instance has it).
    #[zbus(property)]
    async fn control_group(&self) -> String {
        String::new()
    }

    #[zbus(signal)]
    async fn job_removed(
        emitter: &SignalEmitter<'_>,
        id: u32,
        job: ObjectPath<'_>,
        unit: &str,
        result: &str,
    ) -> zbus::Result<()>;
}

/// `org.freedesktop.DBus` at /org/freedesktop/DBus, on the bus socket only.
struct BusIface {
    shared: Arc<Shared>,
    id: usize,
}

fn bus_error(name: &str, message: String) -> Reply {
    Reply(BusError::new(name, message))
}

impl BusIface {
    fn note(&self, line: String) {
        self.shared.manager().note(line);
    }
}

#[zbus::interface(name = "org.freedesktop.DBus")]
impl BusIface {
    async fn hello(&self) -> Result<String, Reply> {
        let mut clients = self.shared.clients();
        let Some(c) = clients.iter_mut().find(|c| c.id == self.id) else {
            return Err(bus_error(
                "org.freedesktop.DBus.Error.Failed",
                "no such client".into(),
            ));
        };
        if c.hello {
            return Err(bus_error(
                "org.freedesktop.DBus.Error.Failed",
                "Already handled an Hello message".into(),
            ));
        }
        c.hello = true;
        drop(clients);
        let name = format!(":1.{}", self.id + 2);
        self.note(format!("Hello -> ok {name}"));
        Ok(name)
    }

    async fn add_match(&self, rule: String) -> Result<(), Reply> {
        let Some(r) = Rule::parse(&rule) else {
            self.note(format!(
                "AddMatch {rule:?} -> error org.freedesktop.DBus.Error.MatchRuleInvalid"
            ));
            return Err(bus_error(
                "org.freedesktop.DBus.Error.MatchRuleInvalid",
                format!("Invalid match rule: {rule}"),
            ));
        };
        if let Some(c) = self.shared.clients().iter_mut().find(|c| c.id == self.id) {
            c.rules.push(r);
        }
        self.note(format!("AddMatch {rule:?} -> ok"));
        Ok(())
    }

    async fn remove_match(&self, rule: String) -> Result<(), Reply> {
        let r = Rule::parse(&rule);
        let mut clients = self.shared.clients();
        let c = clients.iter_mut().find(|c| c.id == self.id);
        match (r, c) {
            (Some(r), Some(c)) if c.rules.contains(&r) => {
                let i = c.rules.iter().position(|x| *x == r).expect("contained");
                c.rules.remove(i);
                Ok(())
            }
            _ => Err(bus_error(
                "org.freedesktop.DBus.Error.MatchRuleNotFound",
                "The given match rule wasn't found and can't be removed".into(),
            )),
        }
    }

    async fn get_name_owner(&self, name: String) -> Result<String, Reply> {
        match name.as_str() {
            SYSTEMD_NAME => Ok(SYSTEMD_UNIQUE.into()),
            "org.freedesktop.DBus" => Ok("org.freedesktop.DBus".into()),
            _ => Err(bus_error(
                "org.freedesktop.DBus.Error.NameHasNoOwner",
                format!("Could not get owner of name '{name}': no such name"),
            )),
        }
    }

    async fn name_has_owner(&self, name: String) -> bool {
        matches!(
            name.as_str(),
            SYSTEMD_NAME | "org.freedesktop.DBus" | SYSTEMD_UNIQUE
        )
    }

    async fn list_names(&self) -> Vec<String> {
        vec![
            "org.freedesktop.DBus".into(),
            SYSTEMD_UNIQUE.into(),
            SYSTEMD_NAME.into(),
        ]
    }

    async fn get_id(&self) -> String {
        "00000000000000000000000063677270".into()
    }

    async fn request_name(&self, name: String, _flags: u32) -> Result<u32, Reply> {
        if name == SYSTEMD_NAME {
            // DBUS_REQUEST_NAME_REPLY_EXISTS: systemd owns it.
            return Ok(3);
        }
        Ok(1)
    }

    async fn release_name(&self, _name: String) -> u32 {
        // DBUS_RELEASE_NAME_REPLY_NON_EXISTENT
        2
    }

    async fn get_connection_unix_user(&self, _name: String) -> u32 {
        0
    }
}

/// Serve the manager on `sockets` until [`Served::finish`].
pub fn serve(sockets: Sockets, manager: Manager) -> std::io::Result<Served> {
    let (stop, stopped) = async_channel::bounded::<()>(1);
    let (jobs, job_rx) = async_channel::unbounded::<Job>();
    let (stops, stop_rx) = async_channel::bounded::<()>(1);
    let shared = Arc::new(Shared {
        manager: Mutex::new(manager),
        clients: Mutex::new(Vec::new()),
        next: AtomicUsize::new(0),
        handshaking: AtomicUsize::new(0),
        jobs,
        stops,
    });
    use std::os::fd::AsRawFd;
    let fds = [sockets.private.as_raw_fd(), sockets.bus.as_raw_fd()];
    let private = Async::new(sockets.private)?;
    let bus = Async::new(sockets.bus)?;
    let ours = Arc::clone(&shared);
    let thread = std::thread::Builder::new()
        .name("cgrepro-systemd".into())
        .spawn(move || {
            let ex = async_executor::LocalExecutor::new();
            future::block_on(ex.run(run(&ex, private, bus, stopped, job_rx, stop_rx, shared)));
        })?;
    Ok(Served {
        stop,
        thread: Some(thread),
        shared: ours,
        fds,
    })
}

enum Event {
    Private(std::io::Result<UnixStream>),
    Bus(std::io::Result<UnixStream>),
    Stop,
}

async fn run(
    ex: &async_executor::LocalExecutor<'_>,
    private: Async<UnixListener>,
    bus: Async<UnixListener>,
    stopped: async_channel::Receiver<()>,
    jobs: async_channel::Receiver<Job>,
    stops: async_channel::Receiver<()>,
    shared: Arc<Shared>,
) {
    ex.spawn(broadcast(jobs, Arc::clone(&shared))).detach();
    ex.spawn(tick(stops, Arc::clone(&shared))).detach();
    loop {
        let ev = future::or(
            future::or(
                async {
                    Event::Private(
                        private
                            .accept()
                            .await
                            .map(|(s, _)| s.into_inner())
                            .and_then(|s| s),
                    )
                },
                async {
                    Event::Bus(
                        bus.accept()
                            .await
                            .map(|(s, _)| s.into_inner())
                            .and_then(|s| s),
                    )
                },
            ),
            async {
                let _ = stopped.recv().await;
                Event::Stop
            },
        )
        .await;
        let (stream, on_bus) = match ev {
            Event::Stop => break,
            Event::Private(Ok(s)) => (s, false),
            Event::Bus(Ok(s)) => (s, true),
            Event::Private(Err(_)) | Event::Bus(Err(_)) => continue,
        };
        shared.handshaking.fetch_add(1, Ordering::SeqCst);
        let id = shared.next.fetch_add(1, Ordering::SeqCst);
        ex.spawn(client(stream, on_bus, id, Arc::clone(&shared)))
            .detach();
    }
    // Connections the case made that were not accepted yet, and handshakes under way: let
    // them finish (their peers are gone: they fail fast), so the op log is complete.
    for (l, on_bus) in [(&private, false), (&bus, true)] {
        while let Ok((s, _)) = l.get_ref().accept() {
            shared.handshaking.fetch_add(1, Ordering::SeqCst);
            let id = shared.next.fetch_add(1, Ordering::SeqCst);
            ex.spawn(client(s, on_bus, id, Arc::clone(&shared)))
                .detach();
        }
    }
    while shared.handshaking.load(Ordering::SeqCst) > 0 {
        async_io::Timer::after(std::time::Duration::from_millis(1)).await;
    }
    // A stop under way when the case ended (its processes are gone, so its cgroup is
    // empty): let it finish, so the op log does not depend on when the case ended.
    for _ in 0..500 {
        if !advance(&shared).await {
            break;
        }
        async_io::Timer::after(std::time::Duration::from_millis(1)).await;
    }
    let clients: Vec<zbus::Connection> = shared.clients().drain(..).map(|c| c.conn).collect();
    for c in clients {
        let _ = c.close().await;
    }
}

/// One client: the handshake, then its connection's tasks, until the case ends.
async fn client(stream: UnixStream, on_bus: bool, id: usize, shared: Arc<Shared>) {
    let built = async {
        let mut b = zbus::connection::Builder::async_io_unix_stream(stream)
            .server(zbus::Guid::generate())?
            .p2p()
            .user_id(0)
            .internal_executor(false)
            .serve_at(
                MANAGER_PATH,
                ManagerIface {
                    shared: Arc::clone(&shared),
                },
            )?;
        if on_bus {
            b = b.serve_at(
                "/org/freedesktop/DBus",
                BusIface {
                    shared: Arc::clone(&shared),
                    id,
                },
            )?;
        }
        b.build().await
    };
    let built = built.await;
    shared.handshaking.fetch_sub(1, Ordering::SeqCst);
    // Connections are not in the op log: they are accepted at the harness's pace, so their
    // place among the target's cgroupfs operations would change from run to run. (A bus
    // client's Hello, a private one's first call, shows it.)
    let conn = match built {
        Ok(c) => c,
        Err(_) => return,
    };
    shared.clients().push(Client {
        id,
        conn: conn.clone(),
        bus: on_bus,
        rules: Vec::new(),
        hello: false,
        objects: BTreeSet::new(),
    });
    // The units that exist already.
    shared.settle().await;
    loop {
        conn.executor().tick().await;
    }
}

/// Advance the stopping units once and send what finished; whether stops remain.
async fn advance(shared: &Arc<Shared>) -> bool {
    let more = {
        let mut m = shared.manager();
        m.poll(std::time::Instant::now());
        m.stopping()
    };
    shared.settle().await;
    more
}

/// While units stop: advance them every few milliseconds (systemd learns of an empty
/// cgroup from cgroup.events or SIGCHLD; the model has neither to wait on).
async fn tick(stops: async_channel::Receiver<()>, shared: Arc<Shared>) {
    while stops.recv().await.is_ok() {
        loop {
            async_io::Timer::after(std::time::Duration::from_millis(2)).await;
            if !advance(&shared).await {
                break;
            }
        }
    }
}

/// JobRemoved to every private client and to the bus clients whose rules select it, as
/// systemd and the bus deliver it.
async fn broadcast(jobs: async_channel::Receiver<Job>, shared: Arc<Shared>) {
    while let Ok(job) = jobs.recv().await {
        // Let the method's reply go out first.
        future::yield_now().await;
        let targets: Vec<(zbus::Connection, bool)> = shared
            .clients()
            .iter()
            .filter(|c| !c.bus || c.rules.iter().any(|r| r.selects("JobRemoved")))
            .map(|c| (c.conn.clone(), c.bus))
            .collect();
        for (conn, on_bus) in targets {
            let msg = (|| -> zbus::Result<Message> {
                let mut b = Message::signal(MANAGER_PATH, MANAGER_IFACE, "JobRemoved")?;
                if on_bus {
                    b = b.sender(SYSTEMD_UNIQUE)?;
                }
                b.build(&(
                    job.id,
                    ObjectPath::try_from(job.path.as_str())?,
                    job.unit.as_str(),
                    job.result,
                ))
            })();
            if let Ok(m) = msg {
                let _ = conn.send(&m).await;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::Rule;

    #[test]
    fn go_systemds_match_rule_with_spaces_selects_job_removed() {
        let r = Rule::parse(
            "type='signal', interface='org.freedesktop.systemd1.Manager', member='JobRemoved'",
        )
        .unwrap();
        assert!(r.selects("JobRemoved"));
        assert!(!r.selects("UnitNew"));
        assert!(Rule::parse("type=signal").is_none());
    }
}
