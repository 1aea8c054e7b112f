//! minik: the cluster launcher (work in progress).

fn main() {
    eprintln!("minik: not built yet");
    std::process::exit(2);
}
