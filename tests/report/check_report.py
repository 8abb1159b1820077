#!/usr/bin/env python3
"""Validates a `faultline lab --html` page against the --json of the same run.

Usage: check_report.py REPORT.html RESULT.json
Checks: the HTML parses with every non-void element closed in order; it loads nothing (no script,
no link, no src/href to another host); every <svg> block is well-formed XML; the summary table has
one row per result in the JSON, with the same scenario, variant, counts and verdict; every
scenario has a section with at least one chart carrying fault bands; a failing run shows its
replay command. Prints one line per failure and exits 1 if any.
"""
import html.parser
import json
import re
import sys
import xml.etree.ElementTree as ET

VOID = {"area", "base", "br", "col", "embed", "hr", "img", "input", "link", "meta", "source",
        "track", "wbr"}
SVG_NS = "{http://www.w3.org/2000/svg}"


class Page(html.parser.HTMLParser):
    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.stack, self.errors = [], []
        self.rows, self.row, self.cell, self.in_summary = [], None, None, False
        self.sections = []  # (id, [svg attrs...])
        self.loads = []

    def handle_starttag(self, tag, attrs):
        a = dict(attrs)
        if tag in ("script", "link", "iframe", "img", "object"):
            self.loads.append(tag)
        for key in ("src", "href"):
            v = a.get(key)
            if v is not None and not v.startswith("#"):
                self.loads.append(f"{tag} {key}={v}")
        if tag == "table" and a.get("id") == "summary":
            self.in_summary = True
        if self.in_summary and tag == "tr":
            self.row = []
        if self.in_summary and tag == "td":
            self.cell = ""
        if tag == "section":
            self.sections.append((a.get("id"), 0))
        if tag not in VOID and not self.get_starttag_text().endswith("/>"):
            self.stack.append(tag)

    def handle_startendtag(self, tag, attrs):
        pass

    def handle_endtag(self, tag):
        if not self.stack or self.stack[-1] != tag:
            self.errors.append(f"</{tag}> closes <{self.stack[-1] if self.stack else 'nothing'}>"
                               f" at line {self.getpos()[0]}")
            return
        self.stack.pop()
        if tag == "td" and self.row is not None:
            self.row.append(self.cell.strip())
            self.cell = None
        if tag == "tr" and self.row:
            self.rows.append(self.row)
            self.row = None
        if tag == "table":
            self.in_summary = False

    def handle_data(self, data):
        if self.cell is not None:
            self.cell += data


def main():
    text = open(sys.argv[1], encoding="utf-8").read()
    doc = json.load(open(sys.argv[2], encoding="utf-8"))
    failures = []
    page = Page()
    page.feed(text)
    page.close()
    failures += page.errors
    if page.stack:
        failures.append(f"never closed: {page.stack}")
    if page.loads:
        failures.append(f"loads external content: {page.loads}")
    if not text.startswith("<!DOCTYPE html>"):
        failures.append("no <!DOCTYPE html>")
    for url in re.findall(r"https?://[^\s\"'<>]+", text):
        if url != "http://www.w3.org/2000/svg":
            failures.append(f"URL in the page: {url}")

    # Every SVG block is well-formed XML; index them by the section they are in.
    svg_by_section = {}
    for m in re.finditer(r"<section id=\"([^\"]+)\">(.*?)</section>", text, re.S):
        bands = 0
        charts = 0
        for svg in re.findall(r"<svg\b.*?</svg>", m.group(2), re.S):
            try:
                root = ET.fromstring(svg)
            except ET.ParseError as e:
                failures.append(f"section {m.group(1)}: SVG does not parse: {e}")
                continue
            if root.tag != SVG_NS + "svg":
                failures.append(f"section {m.group(1)}: root element {root.tag}")
            charts += 1
            bands += sum(1 for r in root.iter(SVG_NS + "rect") if r.get("fill-opacity") == "0.12")
        svg_by_section[m.group(1)] = (charts, bands)

    results = doc["results"]
    if len(page.rows) != len(results):
        failures.append(f"summary has {len(page.rows)} rows, the JSON {len(results)} results")
    for row, r in zip(page.rows, results):
        want = [r["scenario"], str(r["seeds"]), str(len(r["failing_seeds"])), str(r["violations"])]
        got = [row[0], row[2], row[3], row[4]]
        if got != want or not row[1].startswith(r["variant"]) or not row[7].startswith(r["verdict"]):
            failures.append(f"summary row {row[:5]} / {row[7][:30]} differs from the JSON's "
                            f"{r['scenario']}/{r['variant']} {want} {r['verdict']}")
        if r["failing_seeds"]:
            first = r["failing_seeds"][0]
            cmd = (f"faultline replay {r['scenario']} --variant {r['variant']} --seed {first} "
                   f"--trace")
            if cmd not in text:
                failures.append(f"no replay command for {r['scenario']}/{r['variant']}: {cmd}")
    for scenario in sorted({r["scenario"] for r in results}):
        charts, bands = svg_by_section.get(scenario, (0, 0))
        if charts == 0 or bands == 0:
            failures.append(f"section {scenario}: {charts} charts, {bands} fault bands")
    for f in failures:
        print("FAIL:", f)
    print(f"check_report: {len(page.rows)} summary rows, {len(svg_by_section)} sections, "
          f"{sum(c for c, _ in svg_by_section.values())} SVG blocks, {len(failures)} failures")
    return 1 if failures else 0


if __name__ == "__main__":
    sys.exit(main())
