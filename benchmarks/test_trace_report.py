"""The trace-replay section of BENCHMARKS.md is spliced in, and kept, by marker."""

from trace_report import BEGIN, END, existing_section, splice


def test_splice_replaces_appends_and_keeps_the_section():
    section = f"{BEGIN}\n## Trace replay\nnew\n{END}"
    doc = "# Benchmarks\n\n## Details\n\n## How to reproduce\n\nrun it\n"
    once = splice(doc, section)
    assert once.index(section) < once.index("## How to reproduce")
    assert existing_section(once) == section
    again = splice(once, f"{BEGIN}\nnewer\n{END}")
    assert "new\n" not in again.split(BEGIN, 1)[1] and "newer" in again
    assert again.count(BEGIN) == 1 and again.endswith("run it\n")
    assert splice("plain", section) == f"plain\n\n{section}\n"
    assert existing_section(doc) is None
