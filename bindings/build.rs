fn main() {
    println!("cargo::metadata=available=0");
}
