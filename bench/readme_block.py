"""A block of README.md or FINDINGS.md that a script writes between two marker lines, and reads back for the test
that keeps it in step with the records it comes from."""
from __future__ import annotations

from pathlib import Path

from multiarg.io import write_text

README = Path(__file__).resolve().parent.parent / "README.md"
FINDINGS = README.with_name("FINDINGS.md")


def _span(content: str, markers: tuple[str, str]) -> tuple[int, int]:
    return content.index(markers[0]) + len(markers[0]) + 1, content.index(markers[1])


def write_block(text: str, markers: tuple[str, str], readme: Path = README) -> None:
    content = readme.read_text()
    begin, end = _span(content, markers)
    write_text(content[:begin] + text + content[end:], readme)


def emit(text: str, markers: tuple[str, str], to_readme: bool, readme: Path = README) -> str:
    """Print ``text``, and write it into ``readme`` between ``markers`` too if ``to_readme``."""
    if to_readme:
        write_block(text, markers, readme)
    print(text, end="")
    return text


def read_block(markers: tuple[str, str], readme: Path = README) -> str:
    content = readme.read_text()
    begin, end = _span(content, markers)
    return content[begin:end]
