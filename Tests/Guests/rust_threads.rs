// rust_threads: a static Rust program (glibc, crt-static) using std threads, mpsc channels,
// Arc<Mutex>, file I/O (create_dir_all, write, read_to_string, metadata through statx,
// remove_dir_all), println! and eprintln!: output and status must match the native run.
use std::sync::{mpsc, Arc, Mutex};
use std::thread;
fn main() {
    let counter = Arc::new(Mutex::new(0u64));
    let (tx, rx) = mpsc::channel();
    let mut handles = vec![];
    for i in 0..4u64 {
        let c = Arc::clone(&counter);
        let tx = tx.clone();
        handles.push(thread::spawn(move || {
            for _ in 0..1000 { *c.lock().unwrap() += 1; }
            tx.send(i * i).unwrap();
        }));
    }
    drop(tx);
    for h in handles { h.join().unwrap(); }
    let mut got: Vec<u64> = rx.iter().collect();
    got.sort();
    println!("counter = {}", *counter.lock().unwrap());
    println!("received = {:?}", got);
    let dir = std::env::temp_dir().join(format!("apus-rust-{}-{}", std::process::id(), got.len()));
    std::fs::create_dir_all(&dir).unwrap();
    let file = dir.join("data.txt");
    std::fs::write(&file, b"written by rust\n").unwrap();
    let back = std::fs::read_to_string(&file).unwrap();
    let meta = std::fs::metadata(&file).unwrap();
    println!("file round trip: {} bytes, {:?}, is_file {}", meta.len(), back.trim(), meta.is_file());
    std::fs::remove_dir_all(&dir).unwrap();
    eprintln!("done on stderr");
}
