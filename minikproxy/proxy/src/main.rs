//! minikproxy: programs the node's Service forwarding in nftables (work in progress).

fn main() {
    eprintln!("minikproxy: not built yet");
    std::process::exit(2);
}
