"""MkDocs hooks: the command-line reference from the parser; docstring roles tidied.

A page holding the line ``<!-- cli-reference -->`` gets, in its place, one section per
subcommand of :func:`napari_zarrnii._cli.build_parser`: its description, its usage
line and a table of its arguments, so the reference cannot drift from the code.

The docstrings use Sphinx roles (``:meth:`get_level```), which the numpy renderer of
mkdocstrings leaves as text before the code span; they are dropped from the HTML.
"""

from __future__ import annotations

import argparse
import re
import sys
from pathlib import Path
from typing import Any

MARKER = "<!-- cli-reference -->"
_ROLE = re.compile(r":(?:py:)?(?:meth|class|attr|func|mod|data|exc|obj|const|math):(?=<code)")
_SRC = Path(__file__).resolve().parents[1] / "src"


def _parser() -> argparse.ArgumentParser:
    if str(_SRC) not in sys.path:
        sys.path.insert(0, str(_SRC))
    from napari_zarrnii._cli import build_parser

    return build_parser()


def _subparsers(parser: argparse.ArgumentParser) -> dict[str, argparse.ArgumentParser]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return dict(action.choices)
    return {}


def _summaries(parser: argparse.ArgumentParser) -> dict[str, str]:
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            return {a.dest: a.help or "" for a in action._choices_actions}
    return {}


def _usage(parser: argparse.ArgumentParser) -> str:
    # a fixed width, so the page does not depend on the terminal that built it
    formatter = argparse.HelpFormatter(parser.prog, width=88)
    formatter.add_usage(parser.usage, parser._actions, parser._mutually_exclusive_groups)
    return formatter.format_help().strip()


def _cell(text: str) -> str:
    return text.replace("|", "\\|").replace("\n", " ")


def _argument_row(action: argparse.Action, parser: argparse.ArgumentParser) -> str | None:
    if action.help == argparse.SUPPRESS or isinstance(action, argparse._HelpAction):
        return None
    formatter = argparse.HelpFormatter(parser.prog)
    if action.option_strings:
        names = ", ".join(f"`{s}`" for s in action.option_strings)
        if action.nargs != 0:
            names += f" `{formatter._format_args(action, action.dest.upper())}`"
    else:
        names = f"`{action.metavar or action.dest}`"
    help_text = (action.help or "") % {"default": action.default, "prog": parser.prog}
    if isinstance(action, argparse._SubParsersAction):
        help_text = "one of " + ", ".join(f"[`{c}`](#{c})" for c in action.choices)
    return f"| {_cell(names)} | {_cell(help_text)} |"


def _arguments_table(parser: argparse.ArgumentParser) -> list[str]:
    rows = [r for a in parser._actions if (r := _argument_row(a, parser))]
    if not rows:
        return []
    return ["| argument | meaning |", "|---|---|", *rows, ""]


def render_cli_reference() -> str:
    """The Markdown reference of every subcommand, from the parser itself."""
    parser = _parser()
    summaries = _summaries(parser)
    lines = [
        "```text",
        _usage(parser),
        "```",
        "",
        *_arguments_table(parser),
    ]
    for name, sub in _subparsers(parser).items():
        summary = summaries.get(name, "")
        lines += [f"### `{name}`", "", f"{summary[:1].upper()}{summary[1:]}.", ""]
        if sub.description:
            lines += [sub.description, ""]
        lines += ["```text", _usage(sub), "```", "", *_arguments_table(sub)]
    return "\n".join(lines)


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    """Replace the reference marker of a page by the generated reference."""
    if MARKER not in markdown:
        return markdown
    return markdown.replace(MARKER, render_cli_reference())


def on_page_content(html: str, **kwargs: Any) -> str:
    """Drop the Sphinx role before a code span (``:meth:<code>x</code>``)."""
    return _ROLE.sub("", html)
