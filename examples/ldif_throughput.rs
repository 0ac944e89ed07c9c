//! LDIF parsing throughput: generates about 200 MB of realistic directory export in
//! memory (inetOrgPerson users written by `write_entry`, so folded at 76 columns, with
//! base64 for non-ASCII names, passwords and some photos; plus large groups), then parses
//! it with `LdifReader` and prints MB/s.
//!
//! Run: `cargo run --release --example ldif_throughput [MB]`. It measures only; it must
//! not write files.
//!
//! With `--file PATH` it parses that file instead, streamed from disk through a 64 KiB
//! buffer as `registrar` reads a source (`ci/bench-scale` runs it on the generated
//! directory).
//!
//! Both modes read as the binary does: with its allocator (mimalloc), and giving each
//! entry back to the reader ([`recycle`]) once used, as its reading thread does after the
//! per-entry step.

use std::hint::black_box;
use std::time::Instant;

use registrar::core::entry::Entry;
use registrar::ldif::{recycle, write_entry, write_version, LdifReader, Record};

/// The allocator `registrar` runs with, so the figure is the parser's as the product
/// reads a source.
#[global_allocator]
static ALLOCATOR: mimalloc::MiMalloc = mimalloc::MiMalloc;

/// A small deterministic generator (xorshift64*), so runs are comparable.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 >> 12;
        self.0 ^= self.0 << 25;
        self.0 ^= self.0 >> 27;
        self.0.wrapping_mul(0x2545_F491_4F6C_DD1D)
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }

    fn pick<'a>(&mut self, items: &[&'a str]) -> &'a str {
        items[self.below(items.len())]
    }

    fn bytes(&mut self, n: usize) -> Vec<u8> {
        (0..n).map(|_| self.next() as u8).collect()
    }
}

const GIVEN: &[&str] = &[
    "Anna", "Ben", "Chloé", "David", "Émile", "Fatima", "Günter", "Hana", "Ivan", "Jürgen",
    "Kenji", "Léa", "Mohammed", "Noémie", "Oskar", "Priya", "Quentin", "Renée", "Søren", "Tomás",
];
const SURNAMES: &[&str] = &[
    "Smith",
    "Müller",
    "García",
    "Jensen",
    "Nguyen",
    "O'Brien",
    "Kowalski",
    "Rossi",
    "Dubois",
    "Yamamoto",
    "Andersson",
    "Novák",
    "Papadopoulos",
    "Fernández",
    "Schröder",
    "Wong",
];
const DEPARTMENTS: &[&str] = &[
    "Engineering",
    "Sales",
    "Marketing",
    "Finance",
    "Human Resources",
    "Legal",
    "Support",
    "Operations",
    "Research and Development",
    "Facilities",
];
const TITLES: &[&str] = &[
    "Engineer",
    "Senior Engineer",
    "Manager",
    "Director",
    "Analyst",
    "Consultant",
    "Account Executive",
    "Technician",
    "Intern",
    "Vice President",
];
const CITIES: &[&str] = &[
    "Berlin",
    "Paris",
    "New York",
    "São Paulo",
    "Tokyo",
    "London",
    "Zürich",
    "Oslo",
];

fn user(rng: &mut Rng, n: usize) -> Entry {
    let given = rng.pick(GIVEN);
    let surname = rng.pick(SURNAMES);
    let department = rng.pick(DEPARTMENTS);
    let uid = format!("u{n:07}");
    let dn = format!("uid={uid},ou={department},ou=People,dc=example,dc=com");
    let full = format!("{given} {surname}");
    let mail = format!(
        "{}.{}{n}@example.com",
        given.to_lowercase(),
        surname.to_lowercase()
    );
    let mut entry = Entry::new(dn)
        .with(
            "objectClass",
            &[
                "top",
                "person",
                "organizationalPerson",
                "inetOrgPerson",
                "posixAccount",
            ],
        )
        .with("uid", &[&uid])
        .with("cn", &[&full])
        .with("sn", &[surname])
        .with("givenName", &[given])
        .with("displayName", &[&full])
        .with("mail", &[&mail])
        .with("title", &[rng.pick(TITLES)])
        .with("ou", &[department])
        .with("l", &[rng.pick(CITIES)])
        .with(
            "telephoneNumber",
            &[&format!("+1 408 555 {:04}", rng.below(10_000))],
        )
        .with("employeeNumber", &[&n.to_string()])
        .with("uidNumber", &[&(10_000 + n).to_string()])
        .with("gidNumber", &["10000"])
        .with("homeDirectory", &[&format!("/home/{uid}")])
        .with("loginShell", &["/bin/bash"])
        .with(
            "manager",
            &[&format!(
                "uid=u{:07},ou={department},ou=People,dc=example,dc=com",
                rng.below(n + 1)
            )],
        )
        .with(
            "entryUUID",
            &[&format!(
                "{:08x}-{:04x}-{:04x}-{:04x}-{:012x}",
                rng.next() as u32,
                rng.next() as u16,
                rng.next() as u16,
                rng.next() as u16,
                rng.next() & 0xffff_ffff_ffff
            )],
        );
    if rng.below(3) == 0 {
        entry = entry.with(
            "description",
            &[&format!(
                "{full} works in {department} on projects across several teams and time \
                 zones; contact via {mail} or the team channel for anything urgent."
            )],
        );
    }
    let mut password = b"{SSHA}".to_vec();
    password.extend(rng.bytes(24));
    entry.push_value("userPassword", password);
    if rng.below(20) == 0 {
        let size = 2_000 + rng.below(4_000);
        entry.push_value("jpegPhoto", rng.bytes(size));
    }
    entry
}

fn group(rng: &mut Rng, n: usize, users: usize) -> Entry {
    let mut entry = Entry::new(format!("cn=group{n},ou=Groups,dc=example,dc=com"))
        .with("objectClass", &["top", "groupOfNames"])
        .with("cn", &[&format!("group{n}")]);
    for _ in 0..50 + rng.below(2_000) {
        let member = format!(
            "uid=u{:07},ou={},ou=People,dc=example,dc=com",
            rng.below(users),
            rng.pick(DEPARTMENTS)
        );
        entry.push_value("member", member.into_bytes());
    }
    entry
}

fn generate(target: usize) -> (Vec<u8>, usize) {
    let mut rng = Rng(0x9E37_79B9_7F4A_7C15);
    let mut out = Vec::with_capacity(target + (1 << 20));
    write_version(&mut out).unwrap();
    let mut entries = 0;
    while out.len() < target {
        let entry = if entries % 500 == 499 {
            group(&mut rng, entries, entries)
        } else {
            user(&mut rng, entries)
        };
        write_entry(&mut out, &entry).unwrap();
        entries += 1;
    }
    (out, entries)
}

/// Parses the file at `path` three times, streamed, and prints the best MB/s.
fn parse_file(path: &str) {
    let size = std::fs::metadata(path).expect("readable file").len() as f64;
    let mut best = f64::INFINITY;
    for run in 1..=3 {
        let started = Instant::now();
        let file = std::fs::File::open(path).expect("readable file");
        let input = std::io::BufReader::with_capacity(1 << 16, file);
        let mut records = 0usize;
        for record in LdifReader::new(input) {
            match record {
                Ok(record) => {
                    records += 1;
                    // Entries go back to the reader once used, as `registrar` gives
                    // them back after the per-entry step.
                    if let Record::Content(entry) = black_box(record) {
                        recycle([entry]);
                    }
                }
                Err(error) => panic!("{path}: {error}"),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        println!(
            "run {run}: {records} records in {seconds:.3} s: {:.0} MB/s",
            size / 1e6 / seconds
        );
        best = best.min(seconds);
    }
    println!("best: {:.0} MB/s", size / 1e6 / best);
}

fn main() {
    let mut args = std::env::args().skip(1);
    let first = args.next();
    if first.as_deref() == Some("--file") {
        return parse_file(&args.next().expect("--file PATH"));
    }
    let megabytes: usize = first.and_then(|arg| arg.parse().ok()).unwrap_or(200);
    let started = Instant::now();
    let (input, entries) = generate(megabytes * 1_000_000);
    println!(
        "generated {:.1} MB, {entries} entries, in {:.2?}",
        input.len() as f64 / 1e6,
        started.elapsed()
    );

    let mut best = f64::INFINITY;
    for run in 1..=3 {
        let started = Instant::now();
        let (mut records, mut values) = (0usize, 0usize);
        for record in LdifReader::new(&input[..]) {
            match record {
                Ok(Record::Content(entry)) => {
                    records += 1;
                    values += entry
                        .attributes
                        .iter()
                        .map(|a| a.values.len())
                        .sum::<usize>();
                    recycle([black_box(entry)]);
                }
                Ok(Record::Change(_)) => unreachable!("generated content records only"),
                Err(error) => panic!("generated LDIF does not parse: {error}"),
            }
        }
        let seconds = started.elapsed().as_secs_f64();
        assert_eq!(records, entries);
        println!(
            "run {run}: {records} entries, {values} values in {seconds:.3} s: {:.0} MB/s",
            input.len() as f64 / 1e6 / seconds
        );
        best = best.min(seconds);
    }
    println!("best: {:.0} MB/s", input.len() as f64 / 1e6 / best);
}
