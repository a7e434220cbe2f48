"""Malformed input kept out: a corpus of hostile WikiText-like files, each giving either a clear ValueError that names
the file and what is wrong with it, or a sensible parse (the table below says which), never an unrelated traceback,
through `load_wikitext` and through the command line; memory stays bounded on a 50 MB line."""
import codecs
import json
import os
import subprocess
import sys
import tracemalloc
from pathlib import Path

import pytest

from cl_course.data import Article, load_wikitext, split_articles

GOOD = (" = Alpha = \n"
        " Alpha is the first letter of the Greek alphabet . \n"
        " = = History = = \n"
        " It came from the Phoenician letter aleph . \n"
        " = Beta = \n"
        " Beta is the second letter . \n"
        " = Gamma = \n"
        " Gamma is the third letter . \n"
        " It has the value 3 . \n")
GOOD_ARTICLES = [Article("Alpha", "Alpha is the first letter of the Greek alphabet .\n= = History = =\nIt came from the Phoenician letter aleph ."),
                 Article("Beta", "Beta is the second letter ."),
                 Article("Gamma", "Gamma is the third letter .\nIt has the value 3 .")]
LONG = 50_000_000   # bytes of the single long line
HOSTILE_HEADING = " = = x" + " =" * 1_000_000 + " y"   # looks like a heading until its last character


def mixed_endings(text: str) -> bytes:
    ends = ["\n", "\r\n", "\r"]
    return "".join(l + ends[i % 3] for i, l in enumerate(text.splitlines())).encode()


def with_line(text: str, after: int, line: str) -> str:
    lines = text.splitlines(keepends=True)
    return "".join(lines[:after] + [line + "\n"] + lines[after:])


# name: (content, expected). expected is ("error", text the message contains) or ("parse", the articles).
CASES = {
    "binary.raw": (bytes(range(256)) * 64, ("error", "not UTF-8 text (byte 0x80 at offset 128, line 2)")),
    "utf16.raw": (GOOD.encode("utf-16"), ("error", "the file is UTF-16 or UTF-32")),
    "utf16_without_bom.raw": (GOOD.encode("utf-16-le"), ("error", "a NUL byte on line 1")),
    "nul.raw": (GOOD.replace("came from", "came\x00from").encode(), ("error", "a NUL byte on line 4")),
    "empty.raw": (b"", ("error", "the file is empty")),
    "blank_lines_only.raw": (b" \n\n \r\n", ("error", "the file is empty")),
    "long_line.raw": (None, ("error", "no ' = Title = ' line found")),
    "headings_only.raw": (b" = = History = = \n = = Later = = \n", ("error", "section headings (' = = Section = = ') but no ' = Title = ' line")),
    "sections_without_title.raw": (b" = = History = = \n It began here . \n = = Later = = \n It went on . \n",
                                   ("error", "section headings (' = = Section = = ') but no ' = Title = ' line")),
    "title_without_text.raw": (b" = Alpha = \n Text . \n = Beta = \n = Gamma = \n More text . \n", ("error", "article 'Beta' (line 3) is empty")),
    "title_at_the_end.raw": ((GOOD + " = Omega = \n").encode(), ("error", "article 'Omega' (line 10) is empty")),
    "not_wikitext.txt": (b"hello\nworld\n", ("error", "no ' = Title = ' line found")),
    # sensible parses
    "bom.raw": (codecs.BOM_UTF8 + GOOD.encode(), ("parse", GOOD_ARTICLES)),                 # the mark is dropped
    "mixed_endings.raw": (mixed_endings(GOOD), ("parse", GOOD_ARTICLES)),                   # LF, CRLF and CR alike
    "no_final_newline.raw": (GOOD.rstrip("\n").encode(), ("parse", GOOD_ARTICLES)),
    "separators_in_text.raw": (GOOD.replace("second letter", "second\u2028letter\x0cof it").encode(),   # not line breaks
                               ("parse", GOOD_ARTICLES[:1] + [Article("Beta", "Beta is the second\u2028letter\x0cof it .")] + GOOD_ARTICLES[2:])),
    "hostile_heading.raw": (with_line(GOOD, 6, HOSTILE_HEADING).encode(),                  # a paragraph of Beta, read in linear time
                            ("parse", GOOD_ARTICLES[:1] + [Article("Beta", "Beta is the second letter .\n" + HOSTILE_HEADING.strip())] + GOOD_ARTICLES[2:])),
}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory) -> Path:
    d = tmp_path_factory.mktemp("hostile")
    for name, (content, _) in CASES.items():
        if content is None: continue
        (d / name).write_bytes(content)
    with open(d / "long_line.raw", "wb") as f:   # one 50 MB line without a line break
        for _ in range(LONG // 1_000_000): f.write(b" word" * 200_000)
    return d


def test_the_good_text_parses():
    assert split_articles(GOOD.splitlines(keepends=True)) == GOOD_ARTICLES


@pytest.mark.parametrize("name", list(CASES))
def test_each_file_gives_a_clear_error_or_a_sensible_parse(name, corpus):
    kind, want = CASES[name][1]
    f = corpus / name
    if kind == "parse":
        assert load_wikitext(f) == want
    else:
        with pytest.raises(ValueError) as e:
            load_wikitext(f)
        assert str(e.value).startswith(f"{f}:"), str(e.value)[:300]   # names the file first
        assert want in str(e.value)


def test_memory_stays_bounded_on_a_50_mb_line(corpus):
    f = corpus / "long_line.raw"
    assert f.stat().st_size == LONG
    tracemalloc.start()
    try:
        with pytest.raises(ValueError, match="no ' = Title = ' line"):
            load_wikitext(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 4 * LONG, f"peak {peak / 2**20:.0f} MiB for a {LONG / 2**20:.0f} MiB file"


def test_a_long_paragraph_is_read_with_bounded_memory(tmp_path):
    "The same 50 MB as one paragraph of a real article: one article, its text whole."
    f = tmp_path / "long_article.raw"
    with open(f, "wb") as fh:
        fh.write(b" = Long = \n")
        for _ in range(LONG // 1_000_000): fh.write(b" Word" * 200_000)
        fh.write(b" . \n")
    tracemalloc.start()
    try:
        arts = load_wikitext(f)
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert [a.title for a in arts] == ["Long"] and len(arts[0].text) == LONG + 1
    assert peak < 4 * LONG, f"peak {peak / 2**20:.0f} MiB for a {LONG / 2**20:.0f} MiB file"


CLI = ["-m", "cl_course.cli", "run", "--methods", "naive", "--quiet", "--data"]   # + the file

# `python -m cl_course.cli run ...` for every file, in one interpreter (each fresh one spends ~5 s importing torch):
# runpy runs the module as __main__ exactly as `-m` does; an exception escaping it is what `-m` would print as a traceback.
DRIVER = """
import contextlib, io, json, runpy, sys, traceback, warnings
# a real `-m` starts a fresh interpreter; here the module stays imported after the first file, which runpy warns about
warnings.filterwarnings("ignore", message=".*found in sys.modules.*", category=RuntimeWarning)
args, out = json.loads(sys.argv[1]), {}
for f in json.loads(sys.argv[2]):
    err = io.StringIO()
    sys.argv = [args[1]] + args[2:] + [f]
    with contextlib.redirect_stderr(err), contextlib.redirect_stdout(io.StringIO()):
        try: runpy.run_module(args[1], run_name="__main__"); code = 0
        except SystemExit as e: code = e.code
        except BaseException: traceback.print_exc(); code = "traceback"
    out[f] = [code, err.getvalue()]
print(json.dumps(out))
"""


def check_cli_answer(name, code, stderr, f):
    lines = stderr.strip().splitlines()
    assert code == 2 and len(lines) == 1 and "Traceback" not in stderr, f"{name}: exit {code}\n{stderr[-2000:]}"
    kind, want = CASES[name][1]
    # an unreadable file is named with what is wrong; a readable one parses, and is then too small for a task stream
    assert (want in lines[0] and str(f) in lines[0]) if kind == "error" else "too few" in lines[0], lines[0]


def test_every_file_through_the_command_line(corpus, tmp_path):
    files = {str(corpus / name): name for name in CASES}
    r = subprocess.run([sys.executable, "-c", DRIVER, json.dumps(CLI), json.dumps(list(files))], capture_output=True, text=True,
                       timeout=600, cwd=tmp_path, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    assert r.returncode == 0, r.stderr[-3000:]
    answers = json.loads(r.stdout.strip().splitlines()[-1])
    for f, (code, stderr) in answers.items(): check_cli_answer(files[f], code, stderr, f)


@pytest.mark.parametrize("name", ["binary.raw"])   # every file goes through `main` above; the real command once
def test_the_real_command_exits_2_with_one_line(name, corpus, tmp_path):
    r = subprocess.run([sys.executable, *CLI, str(corpus / name)], capture_output=True, text=True, timeout=600, cwd=tmp_path,
                       env={**os.environ, "HF_HUB_OFFLINE": "1"})
    check_cli_answer(name, r.returncode, r.stderr, corpus / name)
