//! `registrar export --source NAME`: one source's entries written out as LDIF (RFC 2849,
//! what an `ldif` source reads back to the same entries) or JSON. This is the
//! directory-agent path: run inside the intranet against the LDAP server, it writes the
//! snapshot that the controller's `ldif` source reads, typically committed to the config
//! repository.
//!
//! Entries stream from the source to the output: memory does not grow with the
//! directory. With `--out FILE` a file appears whole or not at all (`output.rs`: written
//! beside it, then renamed; a device or FIFO is written in place); on standard output a
//! failure mid-way leaves what was written, and the exit status says it failed.

use std::io::{self, BufWriter, Write};
use std::path::Path;

use base64::Engine;

use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::OutputFile;
use super::reading::{head_files, read_config};
use super::sources::{find_source, read_source, InputsDigest};
use crate::adapters::ldif;
use registrar_core::entry::Entry;

/// Output formats of `export`.
#[derive(Debug, Clone, Copy, PartialEq, Eq, clap::ValueEnum)]
pub enum ExportFormat {
    /// RFC 2849 content records, what an `ldif` source reads.
    Ldif,
    /// A JSON array of `{"dn", "attributes": {name: [value, …]}}`; a value that is not
    /// UTF-8 is `{"base64": "…"}`.
    Json,
}

/// `registrar export --source NAME`.
pub fn export_source(
    context: &Context,
    source_name: &str,
    format: ExportFormat,
    out: Option<&Path>,
) -> Result<Outcome, AppError> {
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    let source = find_source(&config, source_name)?;
    let read = |on_entry: &mut dyn FnMut(Entry)| {
        read_source(
            source,
            &files,
            &context.config_dir,
            &mut InputsDigest::unused(),
            on_entry,
        )
        .map(drop)
    };
    match out {
        None => {
            drop(write_entries(
                read,
                io::stdout().lock(),
                format,
                Path::new("<stdout>"),
            )?);
        }
        // Unfinished (on an error), the file is dropped and what was there stays.
        Some(path) => {
            let file = OutputFile::create(path).map_err(|e| write_error(path, e))?;
            write_entries(read, file, format, path)?
                .finish()
                .map_err(|e| write_error(path, e))?;
        }
    }
    Ok(Outcome::Success)
}

fn write_error(path: &Path, error: io::Error) -> AppError {
    AppError::Output {
        path: path.to_path_buf(),
        error,
    }
}

/// Runs `read` with a callback writing each entry to `out` (named `label` in errors).
/// The first write error stops the output (the read finishes, since sources cannot be
/// interrupted mid-entry) and is reported.
fn write_entries<W: Write>(
    read: impl FnOnce(&mut dyn FnMut(Entry)) -> Result<(), AppError>,
    out: W,
    format: ExportFormat,
    label: &Path,
) -> Result<W, AppError> {
    let mut writer = EntryWriter::new(BufWriter::with_capacity(1 << 16, out), format);
    let mut failed = None;
    read(&mut |entry| {
        if failed.is_none() {
            failed = writer.write(&entry).err();
        }
    })?;
    if let Some(e) = failed {
        return Err(write_error(label, e));
    }
    let out = writer.finish().map_err(|e| write_error(label, e))?;
    out.into_inner()
        .map_err(|e| write_error(label, e.into_error()))
}

/// Writes entries one by one in the chosen format.
struct EntryWriter<W: Write> {
    out: W,
    format: ExportFormat,
    written: u64,
}

impl<W: Write> EntryWriter<W> {
    fn new(out: W, format: ExportFormat) -> Self {
        EntryWriter {
            out,
            format,
            written: 0,
        }
    }

    fn write(&mut self, entry: &Entry) -> io::Result<()> {
        let first = self.written == 0;
        self.written += 1;
        match self.format {
            ExportFormat::Ldif => {
                if first {
                    ldif::write_version(&mut self.out)?;
                }
                ldif::write_entry(&mut self.out, entry)
            }
            ExportFormat::Json => {
                self.out.write_all(if first { b"[\n" } else { b",\n" })?;
                write_entry_json(&mut self.out, entry)
            }
        }
    }

    /// Ends the document (an empty source is a valid, empty one) and flushes.
    fn finish(mut self) -> io::Result<W> {
        match (self.format, self.written) {
            (ExportFormat::Ldif, 0) => ldif::write_version(&mut self.out)?,
            (ExportFormat::Ldif, _) => {}
            (ExportFormat::Json, 0) => self.out.write_all(b"[]\n")?,
            (ExportFormat::Json, _) => self.out.write_all(b"\n]\n")?,
        }
        self.out.flush()?;
        Ok(self.out)
    }
}

/// One entry as a JSON object on one line, attributes in source order.
fn write_entry_json(out: &mut impl Write, entry: &Entry) -> io::Result<()> {
    out.write_all(b"{\"dn\":")?;
    serde_json::to_writer(&mut *out, &entry.dn)?;
    out.write_all(b",\"attributes\":{")?;
    for (index, attribute) in entry.attributes.iter().enumerate() {
        if index > 0 {
            out.write_all(b",")?;
        }
        serde_json::to_writer(&mut *out, &attribute.description)?;
        out.write_all(b":[")?;
        for (index, value) in attribute.values.iter().enumerate() {
            if index > 0 {
                out.write_all(b",")?;
            }
            match std::str::from_utf8(value) {
                Ok(text) => serde_json::to_writer(&mut *out, text)?,
                Err(_) => {
                    let encoded = base64::engine::general_purpose::STANDARD.encode(value);
                    write!(out, "{{\"base64\":\"{encoded}\"}}")?
                }
            }
        }
        out.write_all(b"]")?;
    }
    out.write_all(b"}}")
}
