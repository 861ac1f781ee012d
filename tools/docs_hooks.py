"""MkDocs hook: the fences' test flags (```` ```python no-run ````, `standalone`) rendered as plain code blocks.

The flags tell tests/test_docs.py which blocks to skip or to run alone; GitHub reads only the fence's first
word, Python-Markdown's fences none after it, so the flags are dropped before MkDocs renders a page.
"""

import re

FENCE_FLAGS = re.compile(r"^(\s*`{3,}[\w+-]+)((?:[ \t]+(?:no-run|standalone))+)[ \t]*$", re.M)


def on_page_markdown(markdown, **kwargs):
    return FENCE_FLAGS.sub(r"\1", markdown)
