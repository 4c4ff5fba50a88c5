//! `fill-volume`: the disk-full fault's writer, shipped in the app images so a Kubernetes run can
//! exec it in a pod (a FROM-scratch image has no shell to do it with). `fill-volume fill DIR`
//! writes DIR full until ENOSPC, prints one line saying how much it wrote, then keeps the volume
//! full (topping up every 200 ms, as a runaway writer would) until its standard input closes,
//! SIGTERM, `--hold-seconds` pass, or `fill-volume free DIR` removes what it wrote; `free` returns
//! only once a filler still running has seen that and exited, so no late top-up can undo it
//! (see [`harness::fill`]). Exit 0 on success, 1 on an error other than ENOSPC (or a filler that
//! does not stop), 2 on bad arguments.

use clap::{Parser, Subcommand};
use harness::fill::HoldEnd;
use std::path::PathBuf;
use std::sync::atomic::{AtomicBool, Ordering};
use std::sync::Arc;
use std::time::{Duration, Instant};

#[derive(Parser)]
#[command(name = "fill-volume", about = "Fill a volume until ENOSPC, or free it")]
struct Args {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Write DIR full (ENOSPC) and keep it full until stdin closes or the hold time passes.
    Fill {
        dir: PathBuf,
        /// Upper bound on how long the volume is kept full (the loop is bounded even if nobody
        /// closes stdin).
        #[arg(long, default_value_t = 3600)]
        hold_seconds: u64,
    },
    /// Remove what `fill` wrote.
    Free { dir: PathBuf },
}

fn main() -> std::process::ExitCode {
    let args = Args::parse();
    match args.command {
        Command::Fill { dir, hold_seconds } => {
            let (filler, written) = match harness::fill::Filler::start(&dir) {
                Ok(f) => f,
                Err(e) => {
                    eprintln!(
                        "fill-volume: writing {} failed before ENOSPC: {e}",
                        dir.display()
                    );
                    return std::process::ExitCode::from(1);
                }
            };
            println!("full: {written} bytes written, then ENOSPC");
            let done = Arc::new(AtomicBool::new(false));
            let on_signal = done.clone();
            // SIGTERM and SIGINT (ctrlc's `termination` feature) end the hold.
            let _ = ctrlc::set_handler(move || on_signal.store(true, Ordering::SeqCst));
            let eof = done.clone();
            std::thread::spawn(move || {
                let _ = std::io::copy(&mut std::io::stdin(), &mut std::io::sink());
                eof.store(true, Ordering::SeqCst);
            });
            let until = Instant::now() + Duration::from_secs(hold_seconds);
            match filler.hold(&done, until, Duration::from_millis(200)) {
                HoldEnd::Freed => println!("freed by `fill-volume free`; stopped"),
                HoldEnd::Stopped | HoldEnd::TimedOut => {
                    println!("holding stopped; the filler stays until `fill-volume free`")
                }
            }
            std::process::ExitCode::SUCCESS
        }
        Command::Free { dir } => match harness::fill::free(&dir) {
            Ok(true) => {
                println!("freed");
                std::process::ExitCode::SUCCESS
            }
            Ok(false) => {
                println!("nothing to free");
                std::process::ExitCode::SUCCESS
            }
            Err(e) => {
                eprintln!(
                    "fill-volume: removing the filler in {} failed: {e}",
                    dir.display()
                );
                std::process::ExitCode::from(1)
            }
        },
    }
}
