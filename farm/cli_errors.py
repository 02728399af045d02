"""One error path for the click commands `farm`, `farm dataset` and `captioner`.

A user mistake (bad usage, or an exception of the group's `user_errors`) ends as one line
`error: <message>` on stderr and exit code 2, with no traceback; Ctrl-C ends with exit code 130;
a command's integer return value is the exit code. Anything else is a bug and keeps its traceback.
"""
from __future__ import annotations

import sys
from typing import Callable, NoReturn

import click

from blender_addon.rig.errors import one_line

EXIT_USAGE = 2
EXIT_INTERRUPTED = 130
MESSAGE_LIMIT = 1000  # characters of an error message on the command line


def error_text(error: BaseException | str) -> str:
    """An error as the one line a user sees. An OSError says which file and what went wrong."""
    if isinstance(error, OSError) and error.strerror:
        return one_line(f"{error.filename or ''} {error.strerror}".strip(), MESSAGE_LIMIT)
    return one_line(error, MESSAGE_LIMIT)


def fail(error: BaseException | str, code: int = EXIT_USAGE) -> NoReturn:
    """Print `error: <one line>` on stderr and exit."""
    click.echo(f"error: {error_text(error)}", err=True)
    sys.exit(code)


class OneLineErrorGroup(click.Group):
    """A click group with the one error path above.

    user_errors: returns the exception types that are the user's mistake (a function, so that the
    modules defining them load only when a command runs). prog_name: the name in usage lines.
    """

    def __init__(self, *args, user_errors: Callable[[], tuple[type[BaseException], ...]] = tuple,
                 prog_name: str | None = None, **kwargs):
        super().__init__(*args, **kwargs)
        self.user_errors = user_errors
        self.prog_name = prog_name

    def invoke(self, ctx: click.Context):
        # Subcommands run inside this call, nested groups included, so each group maps its own errors.
        try:
            return super().invoke(ctx)
        except self.user_errors() as exc:
            fail(exc)

    def main(self, args=None, prog_name=None, **extra):  # noqa: D401
        try:
            rv = super().main(args=args, prog_name=prog_name or self.prog_name, standalone_mode=False, **extra)
        except getattr(click.exceptions, "NoArgsIsHelpError", ()) as exc:
            click.echo(exc.ctx.get_help() if exc.ctx else str(exc))
            sys.exit(EXIT_USAGE)
        except click.UsageError as exc:
            fail(exc.format_message())
        except click.exceptions.Exit as exc:
            sys.exit(exc.exit_code)
        except (click.exceptions.Abort, KeyboardInterrupt):
            click.echo("interrupted", err=True)
            sys.exit(EXIT_INTERRUPTED)
        except click.ClickException as exc:
            fail(exc.format_message(), exc.exit_code)
        sys.exit(rv if isinstance(rv, int) else 0)
