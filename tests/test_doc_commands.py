"""Every command the README and docs name exists and takes the options they show.

The command lines are read from README.md and docs/*.md: shell code blocks (``bash``, ``console``, ``shell``
or no language; ``$``-prompt lines where a block uses prompts, the other lines being output), lines
continued with a trailing backslash, and inline code spans such as ``clipfactory lookup FILE``. Each
``clipfactory ...`` line is checked against the real Typer app: the subcommand path exists, every option
named is an option of that command, and positional arguments go only to commands that take them.
``python -m MODULE``, ``python SCRIPT``, ``bash SCRIPT`` and ``pytest PATH`` must name a module or file of the
project. Nothing is run here: tests/test_readme_commands.py runs the README's commands.
"""

from __future__ import annotations

import importlib.util
import re
import shlex
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

#: Fence languages whose lines are shell commands (no language counts as shell too).
SHELL_LANGS = {"", "bash", "sh", "shell", "console", "shell-session", "zsh"}

#: Doc problems that stay for now, keyed by (doc file, command path and the offending word). Each entry
#: says why; an entry that matches no problem any more fails the test, so the list only shrinks.
ALLOWED: dict[tuple[str, str], str] = {}

_FENCE = re.compile(r"^\s*(`{3,}|~{3,})\s*([\w+-]*)")
_PLACEHOLDER = re.compile(r"<([^<>\s]+)>")
_SEPARATORS = {"&&", "||", ";", "|", "&"}
_ENV_ASSIGN = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*=")
#: Programs whose command lines are checked; a line counts when one of its simple commands starts with one.
_CHECKED = re.compile(r"(^|[;&|]\s*)(clipfactory|python3?|bash|sh|pytest)(\s|$)")


@dataclass(frozen=True)
class DocCommand:
    file: str  # relative to the project root
    line: int
    text: str  # the command as written (continuations joined)


@dataclass(frozen=True)
class Problem:
    file: str
    line: int
    key: str  # the allow-list key: "clipfactory <path> <offending word>", "python module <name>", ...
    message: str

    def __str__(self) -> str:
        return f"{self.file}:{self.line}: {self.message}"


# --------------------------------------------------------------------------- extraction


def _inline_spans(lines: list[tuple[int, str]]) -> list[tuple[int, str]]:
    """Code spans of the prose lines, as (line number of the span start, text); spans may cross lines."""
    out: list[tuple[int, str]] = []
    # Paragraphs: runs of non-blank lines (an inline span never crosses a blank line).
    para: list[tuple[int, str]] = []
    for item in [*lines, (0, "")]:
        if item[1].strip():
            para.append(item)
            continue
        if para:
            text = "\n".join(t for _, t in para)
            starts = [0]
            for _, t in para[:-1]:
                starts.append(starts[-1] + len(t) + 1)
            for m in re.finditer(r"(?<!`)(`+)(?!`)(.+?)(?<!`)\1(?!`)", text, re.S):
                offset = m.start()
                idx = max(i for i, s in enumerate(starts) if s <= offset)
                out.append((para[idx][0], " ".join(m.group(2).split())))
            para = []
    return out


def extract_commands(path: Path, text: str | None = None) -> list[DocCommand]:
    """The command lines a Markdown file names, in order."""
    rel = path.relative_to(ROOT).as_posix() if path.is_absolute() else path.as_posix()
    lines = (path.read_text(encoding="utf-8") if text is None else text).splitlines()
    commands: list[DocCommand] = []
    prose: list[tuple[int, str]] = []
    i = 0
    while i < len(lines):
        m = _FENCE.match(lines[i])
        if not m:
            prose.append((i + 1, lines[i]))
            i += 1
            continue
        fence, lang = m.group(1), m.group(2).lower()
        j = i + 1
        block: list[tuple[int, str]] = []
        while j < len(lines) and not lines[j].strip().startswith(fence[0] * len(fence)):
            block.append((j + 1, lines[j]))
            j += 1
        prose.append((i + 1, ""))  # a block ends a paragraph
        i = j + 1
        if lang not in SHELL_LANGS:
            continue
        prompts = any(t.lstrip().startswith("$ ") for _, t in block)
        k = 0
        while k < len(block):
            lineno, t = block[k]
            t = t.strip()
            k += 1
            if prompts:
                if not t.startswith("$ "):
                    continue  # output
                t = t[2:].strip()
            while t.endswith("\\") and k < len(block):
                t = t[:-1].rstrip() + " " + block[k][1].strip()
                k += 1
            if _CHECKED.search(t) and not t.startswith("#"):
                commands.append(DocCommand(rel, lineno, t))
    for lineno, span in _inline_spans(prose):
        span = span.removeprefix("$ ")
        if _CHECKED.match(span):
            commands.append(DocCommand(rel, lineno, span))
    commands.sort(key=lambda c: c.line)
    return commands


def split_segments(command: str) -> list[list[str]]:
    """The simple commands of a shell line, as word lists, with comments and ``[...]`` brackets removed."""
    text = _PLACEHOLDER.sub(lambda m: m.group(1).upper(), command)
    lex = shlex.shlex(text, posix=True, punctuation_chars=";&|")
    lex.whitespace_split = True
    lex.commenters = ""
    segments: list[list[str]] = [[]]
    for tok in lex:
        if tok.startswith("#"):
            break
        if tok in _SEPARATORS:
            segments.append([])
            continue
        tok = tok.strip("[]").removesuffix("...").removesuffix("…")
        if tok:
            segments[-1].append(tok)
    out = []
    for seg in segments:
        while seg and _ENV_ASSIGN.match(seg[0]):
            seg = seg[1:]
        if seg:
            out.append(seg)
    return out


# --------------------------------------------------------------------------- checks


def _options(cmd) -> dict[str, object]:
    opts: dict[str, object] = {}
    for p in cmd.params:
        if p.param_type_name == "option":
            for name in [*p.opts, *p.secondary_opts]:
                opts[name] = p
    return opts


def _max_args(cmd) -> int | None:
    """How many positional words a command takes (None: any number)."""
    total = 0
    for p in cmd.params:
        if p.param_type_name == "argument":
            if p.nargs < 0:
                return None
            total += p.nargs
    return total


def _is_group(cmd) -> bool:
    return hasattr(cmd, "commands")


def check_clipfactory(doc: DocCommand, words: list[str], root) -> list[Problem]:
    problems: list[Problem] = []
    cmd, path, positional = root, ["clipfactory"], 0
    i = 1
    while i < len(words):
        word = words[i]
        i += 1
        if word.startswith("-") and len(word) > 1:
            name = word.split("=", 1)[0]
            if name == "--help":
                continue
            opts = _options(cmd)
            param = opts.get(name)
            if param is None:
                where = " ".join(path)
                known = ", ".join(sorted(o for o in opts if o.startswith("--"))) or "none"
                problems.append(
                    Problem(
                        doc.file,
                        doc.line,
                        f"{where} {name}",
                        f"`{where}` has no option {name} (in `{doc.text}`); its options: {known}. "
                        f"Fix: use one of those options, or add {name} to `{where}`",
                    )
                )
            elif not (param.is_flag or param.count) and "=" not in word:
                i += max(param.nargs, 1)  # its value(s)
            continue
        if _is_group(cmd):
            sub = cmd.commands.get(word)
            if sub is None:
                where = " ".join(path)
                problems.append(
                    Problem(
                        doc.file,
                        doc.line,
                        f"{where} {word}",
                        f"`{where}` has no subcommand {word!r} (in `{doc.text}`); its commands: "
                        f"{', '.join(sorted(cmd.commands))}. Fix: name one of those, or add `{where} {word}`",
                    )
                )
                return problems
            cmd = sub
            path.append(word)
            continue
        positional += 1
        limit = _max_args(cmd)
        if limit is not None and positional > limit:
            where = " ".join(path)
            takes = "no arguments" if limit == 0 else f"at most {limit} argument(s)"
            problems.append(
                Problem(
                    doc.file,
                    doc.line,
                    f"{where} {word}",
                    f"`{where}` takes {takes}, but the doc passes {word!r} (in `{doc.text}`). "
                    f"Fix: pass it through the right option (see `{where} --help`), or drop it",
                )
            )
    problems.extend(_check_config_paths(doc, words))
    return problems


def _check_config_paths(doc: DocCommand, words: list[str]) -> list[Problem]:
    """A ``--config`` file inside the project (its first folder exists here) must exist."""
    out = []
    for name, value in zip(words, words[1:], strict=False):
        if name not in ("--config", "-c"):
            continue
        first = Path(value).parts[0] if Path(value).parts else ""
        if "/" in value and (ROOT / first).is_dir() and not (ROOT / value).is_file():
            out.append(
                Problem(
                    doc.file,
                    doc.line,
                    f"config {value}",
                    f"`{doc.text}` names the config file {value}, which is not in the project. "
                    f"Fix: name an existing file",
                )
            )
    return out


def _is_placeholder(word: str) -> bool:
    return word.isupper() or not re.search(r"[/.]", word)


def check_script(doc: DocCommand, words: list[str]) -> list[Problem]:
    """``python -m MOD``, ``python FILE``, ``bash FILE`` and ``pytest PATH`` name something in the project."""
    prog, args = words[0], words[1:]
    missing: list[str] = []
    if prog in ("python", "python3"):
        if args[:1] == ["-m"] and len(args) > 1:
            module = args[1]
            if module not in ("pip", "pytest", "ruff", "venv"):
                try:
                    found = importlib.util.find_spec(module) is not None
                except (ImportError, ValueError):
                    found = False
                if not found:
                    missing.append(f"module {module}")
        elif args and not args[0].startswith("-") and not _is_placeholder(args[0]):
            if not (ROOT / args[0]).is_file():
                missing.append(f"script {args[0]}")
    elif prog in ("bash", "sh"):
        if args and not args[0].startswith("-") and not (ROOT / args[0]).is_file():
            missing.append(f"script {args[0]}")
    elif prog == "pytest":
        for arg in args:
            if arg.startswith("-") or _is_placeholder(arg):
                continue
            target = arg.split("::", 1)[0]
            if not (ROOT / target).exists():
                missing.append(f"test path {target}")
    return [
        Problem(
            doc.file,
            doc.line,
            f"{prog} {what}",
            f"`{doc.text}` names the {what}, which is not in the project. Fix: name the file or module as it is",
        )
        for what in missing
    ]


def check_command(doc: DocCommand, root) -> list[Problem]:
    try:
        segments = split_segments(doc.text)
    except ValueError as exc:  # unbalanced quotes
        return [Problem(doc.file, doc.line, doc.text, f"cannot read `{doc.text}` as a shell line ({exc})")]
    problems: list[Problem] = []
    for words in segments:
        if words[0] == "clipfactory":
            problems.extend(check_clipfactory(doc, words, root))
        elif words[0] in ("python", "python3", "bash", "sh", "pytest"):
            problems.extend(check_script(doc, words))
    return problems


def doc_files() -> list[Path]:
    return [ROOT / "README.md", *sorted((ROOT / "docs").glob("*.md"))]


@pytest.fixture(scope="module")
def cli_root():
    import typer

    from clipfactory.cli.app import app

    return typer.main.get_command(app)


# --------------------------------------------------------------------------- the rule


def test_every_documented_command_exists_with_its_options(cli_root):
    docs = doc_files()
    commands = [c for f in docs for c in extract_commands(f)]
    assert len(commands) > 40, "the extractor found almost no commands; is the Markdown parsed?"
    problems = [p for c in commands for p in check_command(c, cli_root)]
    allowed_hit = {(p.file, p.key) for p in problems if (p.file, p.key) in ALLOWED}
    stale = sorted(set(ALLOWED) - allowed_hit)
    left = [p for p in problems if (p.file, p.key) not in ALLOWED]
    report = [str(p) for p in left]
    report += [
        f"{f}: allow-list entry {k!r} matches no problem any more; remove it from ALLOWED" for f, k in stale
    ]
    assert not report, "documented commands that do not work:\n" + "\n".join(report)


# --------------------------------------------------------------------------- the checker itself


SAMPLE = """\
Intro with `clipfactory lookup FILE
[--json]` across lines and `clipfactory.toml` (not a command).

```bash
clipfactory ingest a.csv --dataset x \\
    --nosuch-option 1
pip install -e . && clipfactory frobnicate
```

```console
$ clipfactory runs show RUN
clipfactory output line that is not a command --bogus
```

```toml
clipfactory = "not shell"
```

```
catalog (DuckDB)  every stage writes one outcome row: kept | dropped
python -m clipfactory.no_such_module
bash scripts/no_such.sh
```
"""


def test_extractor_reads_blocks_prompts_continuations_and_spans():
    cmds = extract_commands(Path("SAMPLE.md"), SAMPLE)
    assert [(c.line, c.text) for c in cmds] == [
        (1, "clipfactory lookup FILE [--json]"),
        (5, "clipfactory ingest a.csv --dataset x --nosuch-option 1"),
        (7, "pip install -e . && clipfactory frobnicate"),
        (11, "clipfactory runs show RUN"),
        (21, "python -m clipfactory.no_such_module"),
        (22, "bash scripts/no_such.sh"),
    ]
    assert split_segments("clipfactory explain <source> [--purpose P] # why") == [
        ["clipfactory", "explain", "SOURCE", "--purpose", "P"]
    ]


def test_checker_names_file_line_and_fix(cli_root):
    cmds = extract_commands(Path("SAMPLE.md"), SAMPLE)
    problems = [p for c in cmds for p in check_command(c, cli_root)]
    assert [(p.line, p.key) for p in problems] == [
        (5, "clipfactory ingest --nosuch-option"),
        (7, "clipfactory frobnicate"),
        (21, "python module clipfactory.no_such_module"),
        (22, "bash script scripts/no_such.sh"),
    ]
    assert str(problems[0]).startswith("SAMPLE.md:5: `clipfactory ingest` has no option --nosuch-option")
    assert "Fix:" in str(problems[1])
    # Positional words go only to commands that take them; option values are not positional.
    run = DocCommand("X.md", 1, "clipfactory run film.mp4 --config examples/clipfactory.toml")
    assert [p.key for p in check_command(run, cli_root)] == ["clipfactory run film.mp4"]
    missing_config = DocCommand("X.md", 1, "clipfactory run -c examples/no_such.toml")
    assert [p.key for p in check_command(missing_config, cli_root)] == ["config examples/no_such.toml"]
    fine = DocCommand(
        "X.md", 1, "clipfactory --verbose sources missing --store ./videos -d k400 -o m.parquet"
    )
    assert check_command(fine, cli_root) == []
