//! `registrar discover --source NAME`: what one source holds, read whole (every entry,
//! streamed, not a sample): its objectClass chains and attributes with counts and a
//! sample value each, then a starter configuration (object types, and a mapping per
//! attribute that likely holds IM names) that loads next to the existing config.
//!
//! The aggregation and the starter are `core::discover`; this module reads the source and
//! prints. The text output is itself a YAML file: the tables are comments and the starter
//! follows, so `registrar discover --source corp > registrar/starter.yaml` works. Values
//! of secret attributes (passwords and the like) are never printed, in either format.

use std::fmt::Write as _;

use super::context::{Context, Outcome};
use super::error::AppError;
use super::output::{pretty_json, print_stdout};
use super::reading::{head_files, read_config};
use super::sources::{find_source, read_source, InputsDigest};
use super::state::StateFormat;
use registrar_core::discover::{starter, yaml_scalar, Discovery, Report, StarterContext};
use registrar_core::quote::printable;

/// `registrar discover --source NAME`.
pub fn discover(
    context: &Context,
    source_name: &str,
    format: StateFormat,
) -> Result<Outcome, AppError> {
    let files = head_files(context)?;
    let config = read_config(context, &files, "")?;
    let source = find_source(&config, source_name)?;
    let mut discovery = Discovery::new(&config.rules.object_types);
    read_source(
        source,
        &files,
        &context.config_dir,
        &mut InputsDigest::unused(),
        &mut |entry| discovery.add(&entry),
    )?;
    let report = discovery.finish();
    let object_types_file = config
        .object_types_file
        .as_ref()
        .map(|path| path.display().to_string());
    let starter = starter(
        &report,
        &StarterContext {
            source: &source.name,
            existing: &config.rules.mappings,
            object_types_set_in: object_types_file.as_deref(),
        },
    );
    match format {
        StateFormat::Text => print_stdout(&text(&source.name, &report, &starter.yaml)),
        StateFormat::Json => {
            let mut document = serde_json::to_value(&report).map_err(AppError::Json)?;
            document["source"] = source.name.clone().into();
            document["starter"] = starter.yaml.into();
            print_stdout(&pretty_json(&document)?);
        }
    }
    Ok(Outcome::Success)
}

/// The widest line the attribute lists of the object-type table wrap at.
const WRAP: usize = 96;

/// The report as YAML comments (the chains, the attributes, the attributes of each object
/// type), then the starter.
fn text(source: &str, report: &Report, starter_yaml: &str) -> String {
    let mut out = String::new();
    let _ = writeln!(
        out,
        "# Source {}: {} {}.",
        printable(source),
        report.entries,
        if report.entries == 1 {
            "entry"
        } else {
            "entries"
        }
    );

    let chains: Vec<[String; 3]> = report
        .chains
        .iter()
        .map(|chain| {
            let classes: Vec<String> = chain.chain.iter().map(|c| yaml_scalar(c)).collect();
            [
                format!("[{}]", classes.join(", ")),
                chain.entries.to_string(),
                chain.object_type.clone().unwrap_or_else(|| "-".to_string()),
            ]
        })
        .collect();
    out.push_str("#\n");
    table(
        &mut out,
        ["objectClass chain", "entries", "object type"],
        &chains,
    );

    let attributes: Vec<[String; 4]> = report
        .attributes
        .iter()
        .map(|attribute| {
            [
                printable(&attribute.attribute),
                attribute.entries.to_string(),
                attribute.values.to_string(),
                attribute.sample.to_string(),
            ]
        })
        .collect();
    out.push_str("#\n");
    table(
        &mut out,
        ["attribute", "entries", "values", "sample"],
        &attributes,
    );

    out.push_str("#\n# attributes by object type (entries holding each)\n");
    for object_type in &report.object_types {
        let name = object_type
            .object_type
            .as_deref()
            .unwrap_or("no object type");
        let mut line = format!("#   {name} ({}):", object_type.entries);
        for (index, attribute) in object_type.attributes.iter().enumerate() {
            let item = format!(
                " {} {}{}",
                printable(&attribute.attribute),
                attribute.entries,
                if index + 1 < object_type.attributes.len() {
                    ","
                } else {
                    ""
                }
            );
            if line.chars().count() + item.chars().count() > WRAP {
                let _ = writeln!(out, "{line}");
                line = "#     ".to_string();
            }
            line.push_str(&item);
        }
        let _ = writeln!(out, "{line}");
    }

    out.push_str("#\n# starter config\n");
    out.push_str(starter_yaml);
    out
}

/// A table as YAML comments: a header, then the rows; numeric columns (all but the first
/// and last) right-aligned.
fn table<const N: usize>(out: &mut String, header: [&str; N], rows: &[[String; N]]) {
    let mut widths = header.map(|h| h.chars().count());
    for row in rows {
        for (width, cell) in widths.iter_mut().zip(row) {
            *width = (*width).max(cell.chars().count());
        }
    }
    let line = |cells: [&str; N]| {
        let mut line = String::from("#  ");
        for (index, (cell, width)) in cells.iter().zip(widths).enumerate() {
            let pad = " ".repeat(width - cell.chars().count());
            if index == N - 1 {
                line.push_str(&format!("  {cell}"));
            } else if index == 0 {
                line.push_str(&format!(" {cell}{pad}"));
            } else {
                line.push_str(&format!("  {pad}{cell}"));
            }
        }
        line.trim_end().to_string()
    };
    let _ = writeln!(out, "{}", line(header));
    for row in rows {
        let _ = writeln!(out, "{}", line(row.each_ref().map(String::as_str)));
    }
}
