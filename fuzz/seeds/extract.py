#!/usr/bin/env python3
"""Extracts the fuzzing seeds from the repository's test inputs into fuzz/seeds/<target>/.

LDIF files and YAML configs from tests/cases and examples are taken whole; filters,
templates and DNs are the YAML's string values (and the LDIF's `dn:` lines) that look
like one, and the string literals of their modules' unit tests. The hand-written seeds (web_input, saved_plan, some LDIF change records) are
kept as they are. Run from anywhere; rerun when the test inputs change much.
"""
import hashlib
import pathlib
import re

import yaml

ROOT = pathlib.Path(__file__).resolve().parents[2]
SEEDS = ROOT / "fuzz" / "seeds"
INPUTS = [ROOT / "tests" / "cases", ROOT / "examples"]
MAX_FILE = 16 * 1024


def files(*suffixes):
    for base in INPUTS:
        for path in sorted(base.rglob("*")):
            if path.suffix in suffixes and path.is_file() and path.stat().st_size <= MAX_FILE:
                yield path


def save(target, data):
    if isinstance(data, str):
        data = data.encode()
    directory = SEEDS / target
    directory.mkdir(parents=True, exist_ok=True)
    name = "x-" + hashlib.sha256(data).hexdigest()[:16]
    (directory / name).write_bytes(data)


def strings(node, key=""):
    if isinstance(node, dict):
        for k, v in node.items():
            yield from strings(v, str(k))
    elif isinstance(node, list):
        for v in node:
            yield from strings(v, key)
    elif isinstance(node, str):
        yield key, node


for target in ["ldif", "config", "filter", "template", "dn"]:
    for old in (SEEDS / target).glob("x-*"):
        old.unlink()

for path in files(".ldif"):
    text = path.read_bytes()
    save("ldif", text)
    for match in re.finditer(rb"^dn: (.*)$", text, re.M):
        save("dn", match.group(1))

for path in files(".yaml", ".yml"):
    text = path.read_text()
    save("config", text)
    try:
        document = yaml.safe_load(text)
    except yaml.YAMLError:
        continue
    for key, value in strings(document):
        if value.startswith("(") or key in ("filter", "when", "disabled_when"):
            save("filter", value)
        elif "{" in value:
            save("template", value)
        elif re.match(r"^\s*[A-Za-z][\w.-]*\s*=", value) and "dn" in key.lower() or key in (
            "protected_principals",
            "dn_subtree",
            "base",
            "base_dn",
            "bind_dn",
        ):
            save("dn", value)

# The unit tests' string literals: the parsers' edge cases, valid and not.
LITERAL = re.compile(r'"((?:[^"\\\n]|\\.)*)"')
for target, module, looks_like in [
    ("filter", "filter.rs", lambda text: text.startswith("(") or "=" in text),
    ("dn", "dn.rs", lambda text: "=" in text),
    ("template", "template.rs", lambda text: "{" in text),
]:
    source = (ROOT / "src" / "core" / module).read_text()
    tests = source[source.index("#[cfg(test)]"):]
    for match in LITERAL.finditer(tests):
        try:
            # Rust escapes as Python's; the source's UTF-8 bytes kept as they are.
            text = match.group(1).encode().decode("unicode_escape").encode("latin-1").decode()
        except UnicodeError:
            continue
        if looks_like(text) and len(text) < 200:
            save(target, text)
