// The dashboard's built files are compiled into the binary (include_dir),
// which stable Rust cannot track by itself: rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../dashboard/dist");
}
