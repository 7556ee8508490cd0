fn main() {
    std::process::exit(cgrepro::cli::main());
}
