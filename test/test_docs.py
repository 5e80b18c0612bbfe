"""README and docs say where things are: every path they name exists, and every package of the tree is named."""

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def _architecture_rows() -> list[str]:
    text = (ROOT / "README.md").read_text()
    section = text.split("## Architecture", 1)[1].split("\n## ", 1)[0]
    return [line for line in section.splitlines() if line.startswith("| ") and "`" in line]


def _paths(row: str) -> list[str]:
    """The file paths a table row names; a bare `name.py` after a path lies in that path's folder."""
    out, folder = [], ""
    for token in re.findall(r"`([^`]+)`", row.split("|")[-2]):
        if "/" in token:
            if not token.startswith(("icub_guard/", "config/")):
                token = f"icub_guard/{token}"  # `attacks/base.py`: inside the package
            folder = token.rsplit("/", 1)[0] if not token.endswith("/") else token.rstrip("/")
            out.append(token)
        elif token.endswith(".py") and folder:
            out.append(f"{folder}/{token}")
    return out


def test_every_path_in_readmes_architecture_table_exists():
    named = [p for row in _architecture_rows() for p in _paths(row)]
    assert len(named) > 25
    for p in named:
        pattern = re.sub(r"<[^>]+>", "*", p)
        assert list(ROOT.glob(pattern)), f"README names {p}, which is not in the tree"


def test_every_package_and_core_module_is_in_the_architecture_table():
    named = {p for row in _architecture_rows() for p in _paths(row)}
    for pkg in ("core", "sim", "attacks", "defences", "evaluation", "ros", "web"):
        assert any(p.startswith(f"icub_guard/{pkg}/") for p in named), pkg
    for module in ("guard", "recognizer", "session", "screening", "rules", "journal", "persistence", "features",
                   "pipeline", "roi"):
        assert f"icub_guard/core/{module}.py" in named, module
    assert not any(p.startswith("icub_guard/core/") and ("sim" in p or "teaching" in p or "datasets" in p)
                   for p in named)  # the simulation is outside the core


def test_docs_links_resolve():
    for page in [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]:
        for target in re.findall(r"\]\(([^)#:]+)(?:#[^)]*)?\)", page.read_text()):
            assert (page.parent / target).exists(), f"{page.name} links to {target}, which does not exist"


def test_readme_fits_a_first_read():
    assert len((ROOT / "README.md").read_text().splitlines()) <= 260
