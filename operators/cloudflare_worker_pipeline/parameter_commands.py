"""The two parameters that add to what the bundle stage runs, both argument lists, never shell
strings: ``wrangler-extra-args`` (more flags for ``wrangler deploy --dry-run``) and
``build-command`` (a command run in the project root before Wrangler).

Both arrive as a JSON array of strings. Each element reaches the program as one argument, so a
``;`` or ``$(...)`` is only ever text. Wrangler's flags are an allowlist of those that shape the
bundle: the pipeline's own (``--outdir``, ``--config``, ``--dry-run``...) and the deploying ones
(``--routes``, ``--secrets-file``...) are refused, naming the parameter.
"""

from __future__ import annotations

import json
import re
from pathlib import PurePosixPath

from cloudflare_worker_pipeline.parameter_specs import InvalidParameterError

# Wrangler deploy's flags that decide the bundle, and whether each takes a value.
WRANGLER_FLAGS: dict[str, bool] = {
    "--minify": False, "--no-bundle": False,
    "--env": True, "-e": True, "--name": True, "--compatibility-date": True, "--compatibility-flags": True,
    "--compatibility-flag": True, "--var": True, "--define": True, "--alias": True, "--jsx-factory": True,
    "--jsx-fragment": True, "--tsconfig": True,
}
MAX_ARGUMENTS = 64
_VALUE = re.compile(r"^(?!-)[^\x00-\x1f\x7f]{1,512}$")
_ARGUMENT = re.compile(r"^[^\x00-\x1f\x7f]{1,1024}$")
_COMMAND_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]{0,63}$")


def _string_list(name: str, value: str) -> list[str]:
    try:
        items = json.loads(value) if value.strip() else []
    except ValueError:
        raise InvalidParameterError(name, 'a JSON array of strings, e.g. ["--minify"]', value) from None
    if not isinstance(items, list) or not all(isinstance(item, str) for item in items):
        raise InvalidParameterError(name, 'a JSON array of strings, e.g. ["--minify"]', value)
    if len(items) > MAX_ARGUMENTS:
        raise InvalidParameterError(name, f"at most {MAX_ARGUMENTS} arguments", len(items))
    return items


def wrangler_extra_args(value: str) -> tuple[str, ...]:
    """``wrangler-extra-args``: allowed flags, each value after its flag (``--env staging`` or ``--env=staging``)."""
    name = "wrangler-extra-args"
    items, args = _string_list(name, value), []
    index = 0
    while index < len(items):
        flag, _, inline = items[index].partition("=") if items[index].startswith("--") else (items[index], "", "")
        takes_value = WRANGLER_FLAGS.get(flag)
        if takes_value is None:
            raise InvalidParameterError(name, f"flags among {', '.join(sorted(WRANGLER_FLAGS))} (the pipeline sets "
                                        "--config, --outdir, --dry-run, --metafile and source maps itself)", items[index])
        if not takes_value:
            if inline:
                raise InvalidParameterError(name, f"{flag} without a value", items[index])
            args.append(flag)
            index += 1
            continue
        if inline:
            flag_value = inline
            index += 1
        elif index + 1 < len(items):
            flag_value = items[index + 1]
            index += 2
        else:
            raise InvalidParameterError(name, f"a value after {flag}", value)
        if not _VALUE.match(flag_value):
            raise InvalidParameterError(name, f"a value for {flag} of printable characters, not starting with '-'",
                                        flag_value)
        if flag == "--tsconfig":
            path = PurePosixPath(flag_value)
            if path.is_absolute() or ".." in path.parts:
                raise InvalidParameterError(name, "a --tsconfig path inside the project", flag_value)
        args += [flag, flag_value]
    return tuple(args)


def build_command(value: str) -> tuple[str, ...]:
    """``build-command``: a program found on the build's PATH (the project's ``node_modules/.bin``
    first) and its arguments; empty for none."""
    name = "build-command"
    items = _string_list(name, value)
    if not items:
        return ()
    if not _COMMAND_NAME.match(items[0]):
        raise InvalidParameterError(name, "a program name first (e.g. npm), not a path or an option", items[0])
    for item in items[1:]:
        if not _ARGUMENT.match(item):
            raise InvalidParameterError(name, "arguments of printable characters, 1-1024 each", item)
    return tuple(items)
