"""The prefixing console of ``switchyard dev``: lines, partial lines, colours."""

from __future__ import annotations

import io

from switchyard_devtools.stack.output import Console, LineBuffer


def test_line_buffer_keeps_the_unfinished_tail_for_later() -> None:
    lines = LineBuffer()

    assert lines.feed(b"one\ntw") == ["one"]
    assert lines.feed(b"o\r\nthree") == ["two"]
    assert lines.flush() == ["three"]
    assert lines.flush() == []


def test_line_buffer_survives_invalid_utf8_and_endless_lines() -> None:
    lines = LineBuffer()

    assert lines.feed(b"caf\xe9\n") == ["caf\ufffd"]
    assert lines.feed(b"x" * 70_000) == ["x" * 70_000]


def test_console_pads_names_and_colours_only_when_asked() -> None:
    plain, coloured = io.StringIO(), io.StringIO()
    Console(["health-checker", "api"], plain, colour=False).line("api", "hello")
    Console(["api"], coloured, colour=True).line("api", "hello")

    assert plain.getvalue() == "api            | hello\n"
    assert coloured.getvalue().startswith("\x1b[36mapi |\x1b[0m hello")
