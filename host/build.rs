// The dashboard's built files are compiled into the binary (include_dir)
// and the migrations too (sqlx::migrate!), which stable Rust cannot track
// by itself: rebuild when they change.
fn main() {
    println!("cargo:rerun-if-changed=../dashboard/dist");
    println!("cargo:rerun-if-changed=migrations");
}
