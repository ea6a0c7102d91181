//! `propack-bench`: the benchmark workloads as a standalone executable.

fn main() {
    std::process::exit(2);
}
