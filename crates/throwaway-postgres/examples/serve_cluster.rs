//! A throwaway cluster for scripts (`ci/bench-postgres`): starts one, prints a fresh
//! database's URL on stdout, and keeps the cluster until stdin closes (then stops it and
//! removes its files).
//!
//! Usage: `serve_cluster` (read the URL's line, keep stdin open while you use it).

use std::io::{Read, Write};

fn main() {
    let cluster = match throwaway_postgres::Cluster::start() {
        Ok(cluster) => cluster,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    let database = match cluster.try_database() {
        Ok(database) => database,
        Err(error) => {
            eprintln!("error: {error}");
            std::process::exit(1);
        }
    };
    println!("{}", database.url());
    let _ = std::io::stdout().flush();
    let mut rest = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut rest);
    drop(database);
    drop(cluster);
}
