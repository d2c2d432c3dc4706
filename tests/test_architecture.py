"""Rules of the code base that a grep can check.

Callers branch on an error's class, `reason`, `causes` or `retryable`, never on
its message text (docs/errors.md): a reworded message must not change what a
client or a controller does. Printing a message (the CLI) is fine; testing
what it says is not.
"""

from __future__ import annotations

import re
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SCANNED = ("kubelite", "services")

_ERR = r"(?:e|err|error|exc|ex|exception|rpc_error|cause)"
MESSAGE_MATCHING = re.compile("|".join((
    rf"\bin\s+(?:str|repr)\(\s*{_ERR}\b",                   # "x" in str(err)
    rf"\bin\s+{_ERR}\.(?:message|details\(\)|args)",        # "x" in err.message
    rf"\b{_ERR}\.(?:message|details\(\))\s*(?:==|!=|\.(?:startswith|endswith|find|index|"
    r"split|partition|lower|upper|strip|count))",           # err.message.startswith(...)
    rf"\bstr\(\s*{_ERR}\s*\)\s*(?:==|!=|\.(?:startswith|endswith|find|index|split|"
    r"partition|lower|upper|count))",                       # str(err).startswith(...)
    rf"re\.(?:search|match|fullmatch|findall)\(.*\b(?:str\(\s*{_ERR}|{_ERR}\.message)",
)))

# The apiserver's own boundary with libraries that report some conditions only as
# text. These are not clients or controllers; each is a known, documented spot.
ALLOWED = {
    # A Redis error reply starts with its error code (BUSY, LOADING, ...): that is the
    # protocol's structure, which redis-py hands over only as the reply's text.
    ("services/apiserver/storage.py", 'str(err).split(" ", 1)[0]'),
    # jsonschema names the missing property only inside its message.
    ("services/apiserver/validation.py", "err.message.split(\"'\")"),
}


def offending_lines() -> list[str]:
    found: list[str] = []
    for top in SCANNED:
        for path in sorted((ROOT / top).rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            for number, line in enumerate(path.read_text().splitlines(), 1):
                code = line.split("#", 1)[0]
                if not MESSAGE_MATCHING.search(code):
                    continue
                if any(rel == file and snippet in code for file, snippet in ALLOWED):
                    continue
                found.append(f"{rel}:{number}: {line.strip()}")
    return found


def test_no_code_branches_on_error_message_text() -> None:
    assert offending_lines() == []


def test_the_check_finds_what_it_looks_for() -> None:
    """The pattern catches each form it is meant to (so the test above can fail)."""
    for sample in ('if "not found" in str(err):', 'if "terminated" in err.message:',
                   "if err.message.startswith('namespace'):",
                   "if str(exc).endswith('again'):", "if 'x' in e.details():",
                   "m = re.search('quota', str(error))"):
        assert MESSAGE_MATCHING.search(sample), sample
    for fine in ('log.warning("failed", extra={"kv": {"error": str(err)}})',
                 "raise CliError(err.message) from None", "text = one_line(err.message)",
                 "if is_retryable(err):", 'if err.reason == "NotFound":'):
        assert not MESSAGE_MATCHING.search(fine), fine
