#!/usr/bin/env python3
"""Checks the built book: every relative link must reach a file, and every
#anchor an element with that id; every chapter under src/ must be in SUMMARY.md;
every relative link of the repository's README.md must reach a file.

Usage: check-links.py [DOCS_DIR]   (default: the folder this script is in)

mdBook checks neither, so a renamed heading or a moved page would otherwise
leave dead links silently. External links (http:, mailto:, …) are not fetched:
CI has no internet, and their availability is not the book's to promise.
Prints one line per problem (file: link: why) and exits 1 if there is any.
Standard library only.
"""
import html.parser
import pathlib
import re
import sys
import urllib.parse


class Page(html.parser.HTMLParser):
    """The ids a page defines and the links (href, src) it makes."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.ids = set()
        self.links = []

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        for key in ("id", "name"):
            if attrs.get(key):
                self.ids.add(attrs[key])
        for key in ("href", "src"):
            if attrs.get(key) is not None:
                self.links.append(attrs[key])


def is_external(link):
    return bool(re.match(r"^[a-zA-Z][a-zA-Z0-9+.-]*:", link)) or link.startswith("//")


def parse(path, cache):
    if path not in cache:
        page = Page()
        page.feed(path.read_text(encoding="utf-8", errors="replace"))
        cache[path] = page
    return cache[path]


# Pages mdBook writes itself (search, print view, 404): their links are its own.
SKIP = {"print.html", "404.html", "toc.html"}


def check_links(book):
    problems = []
    cache = {}
    for path in sorted(book.rglob("*.html")):
        if path.name in SKIP:
            continue
        for link in parse(path, cache).links:
            if not link or is_external(link):
                continue
            target, _, fragment = link.partition("#")
            target = urllib.parse.unquote(target.split("?")[0])
            where = path.relative_to(book)
            resolved = (path.parent / target).resolve() if target else path.resolve()
            if target and not resolved.exists():
                problems.append(f"{where}: {link}: no such file")
                continue
            if resolved.is_dir():
                resolved = resolved / "index.html"
            if fragment and resolved.suffix == ".html":
                if urllib.parse.unquote(fragment) not in parse(resolved, cache).ids:
                    problems.append(f"{where}: {link}: no element with id '{fragment}'")
    return problems


def check_summary(src):
    """Every .md under src/ (but SUMMARY.md) must be linked from SUMMARY.md."""
    summary = (src / "SUMMARY.md").read_text(encoding="utf-8")
    listed = {
        urllib.parse.unquote(m.group(1)).lstrip("./")
        for m in re.finditer(r"\]\(([^)#\s]+\.md)(?:#[^)]*)?\)", summary)
    }
    problems = []
    for path in sorted(src.rglob("*.md")):
        name = path.relative_to(src).as_posix()
        if name != "SUMMARY.md" and name not in listed:
            problems.append(f"src/{name}: not in SUMMARY.md: add it there, or the book never shows it")
    return problems


def check_readme(root):
    """The repository's README.md links into the book's sources: those files must exist."""
    readme = root / "README.md"
    if not readme.exists():
        return []
    problems = []
    for m in re.finditer(r"\]\(([^)\s]+)\)", readme.read_text(encoding="utf-8")):
        link = m.group(1)
        target = link.partition("#")[0]
        if is_external(link) or not target:
            continue
        if not (root / urllib.parse.unquote(target)).exists():
            problems.append(f"README.md: {link}: no such file")
    return problems


def main():
    docs = pathlib.Path(sys.argv[1] if len(sys.argv) > 1 else pathlib.Path(__file__).parent)
    book = docs / "book"
    if not (book / "index.html").exists():
        sys.exit(f"check-links.py: no built book at {book}: run 'mdbook build {docs}' first")
    problems = check_links(book) + check_summary(docs / "src") + check_readme(docs.resolve().parent)
    for problem in problems:
        print(problem)
    if problems:
        print(f"check-links.py: {len(problems)} problem(s)", file=sys.stderr)
        return 1
    pages = len([p for p in book.rglob("*.html") if p.name not in SKIP])
    print(f"check-links.py: {pages} pages, every relative link and anchor resolves")
    return 0


if __name__ == "__main__":
    sys.exit(main())
