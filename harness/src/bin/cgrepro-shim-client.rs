//! containerd's part for `[target] shim = ...` cases, run inside the case's sandbox: see
//! `cgrepro::target::shim::client`.

fn main() {
    cgrepro::target::shim::client::main()
}
