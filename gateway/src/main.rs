//! The `landline` command.

fn main() {
    eprintln!("landline: the gateway is not assembled yet; see docs/ROADMAP.md");
    std::process::exit(2);
}
