"""What every `latih` subcommand module shares: the exit codes, the one-line-error parser, JSON output."""
from __future__ import annotations

import argparse
import json

EXIT_OK, EXIT_FINDINGS, EXIT_USAGE, EXIT_INTERRUPTED = 0, 1, 2, 130


class Parser(argparse.ArgumentParser):
    """argparse that reports a bad flag as one `error:` line (exit 2) instead of a usage dump."""

    def error(self, message: str):
        self.exit(EXIT_USAGE, f"error: {message} (see `{self.prog} --help`)\n")


def print_json(data) -> None:
    print(json.dumps(data, default=str))
