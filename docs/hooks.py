"""mkdocs hook: the home page is the README (its links made the site's), and the tables
marked `<!-- kssl:NAME -->` are generated from the code (`kssl.app.reference`)."""

import pathlib
import re

from kssl.app.reference import expand

ROOT = pathlib.Path(__file__).parent.parent


def readme_as_home() -> str:
    text = (ROOT / "README.md").read_text()
    text = re.sub(r"\]\(docs/([^)]*)\)", r"](\1)", text)  # the README's links into docs/
    text = text.replace("](BENCHMARKS.md)", "](benchmarks.md)")
    return text.replace("[`docs/`](index.md)", "this site")


def on_page_markdown(markdown, page, config, files):
    if page.file.src_uri == "index.md":
        markdown = readme_as_home()
    return expand(markdown)
