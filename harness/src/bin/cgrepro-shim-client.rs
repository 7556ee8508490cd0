//! containerd's part for `[target] shim = ...` cases, run inside the case's sandbox: see
//! `cgrepro::subject::shim::client`.

fn main() {
    cgrepro::subject::shim::client::main()
}
