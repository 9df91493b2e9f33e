"""The documentation site's Markdown pages, read the way its tests need
them: which pages there are, and their fenced code blocks."""
import os
import os.path as osp

from conftest import REPO

DOCS = osp.join(REPO, 'docs', 'en')


def doc_pages(skip=()):
    """Every Markdown page of the site, relative to docs/en, sorted;
    folders named in ``skip`` (and ``_static``-like ones) left out."""
    pages = []
    for root, dirs, files in os.walk(DOCS):
        dirs[:] = sorted(d for d in dirs
                         if not d.startswith(('_', '.')) and d not in skip)
        pages += [osp.relpath(osp.join(root, f), DOCS)
                  for f in files if f.endswith('.md')]
    return sorted(pages)


def read_page(page):
    """The text of a page (relative to docs/en)."""
    with open(osp.join(DOCS, page), encoding='utf-8') as f:
        return f.read()


def fenced_blocks(path, language):
    """``(line, text)`` of every ```<language> block of a Markdown file;
    ``line`` is the line of the opening fence."""
    blocks, start, lines = [], None, []
    with open(path, encoding='utf-8') as f:
        for n, line in enumerate(f, 1):
            fence = line.strip()
            if start is None and fence == f'```{language}':
                start, lines = n, []
            elif start is not None and fence.startswith('```'):
                blocks.append((start, ''.join(lines)))
                start = None
            elif start is not None:
                lines.append(line)
    assert start is None, f'{path} line {start}: unclosed ```{language} block'
    return blocks
