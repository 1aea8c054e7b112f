//! minik-dns: the cluster DNS server (work in progress).

fn main() {
    eprintln!("minik-dns: not built yet");
    std::process::exit(2);
}
