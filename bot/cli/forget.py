"""`remixbot forget USER`: delete a user's stored images and personal fields from the store."""

from __future__ import annotations

import argparse
import sys
import textwrap

from bot.cli._common import cli_settings, plural, print_json
from bot.cli.quota import _user
from bot.errors import InvalidRequest, RemixbotError
from bot.store import Store
from bot.store.admin import block_dict, block_where, run_with_store, user_label

# What `forget` does and does not do, shown before asking (and in --help).
WHAT_IT_DOES = "\n".join(
    textwrap.fill(paragraph, 88)
    for paragraph in (
        "Deletes: the user's stored input images (unless another user's job uses the same"
        " image), and the prompts, message links and interaction ids of their jobs; their id is"
        " replaced by an anonymous one in the jobs and the quota ledger.",
        "Stays: how many images, when and in which server (so the books still add up), and"
        " their blocks, bot-wide or in a server, if they have any.",
        "Note: their charges this period become anonymous, so their allowance for the period"
        " starts over.",
    )
)


class NotConfirmed(RemixbotError):
    """The admin answered no (or nothing) to the confirmation."""

    exit_code = 1


def register(sub: argparse._SubParsersAction) -> None:
    """Add `forget` to the command line."""
    p = sub.add_parser(
        "forget",
        help="delete a user's stored inputs, prompts and ids (anonymous counts stay)",
        description=WHAT_IT_DOES,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    p.add_argument("user", type=_user, metavar="USER", help="user id, mention or cli")
    p.add_argument("--yes", "-y", action="store_true", help="do not ask for confirmation")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_forget)


def confirm(question: str) -> None:
    """Ask y/N on the terminal; without one, refuse (scripts pass --yes)."""
    if not sys.stdin.isatty():
        raise InvalidRequest(
            "forget deletes data and asks for confirmation, but there is no terminal to ask;"
            " add --yes to confirm."
        )
    print(WHAT_IT_DOES, file=sys.stderr)
    sys.stderr.write(f"{question} [y/N] ")
    sys.stderr.flush()
    answer = sys.stdin.readline().strip().lower()
    if answer not in ("y", "yes"):
        raise NotConfirmed("Nothing was forgotten.")


def _forget(args: argparse.Namespace) -> int:
    settings = cli_settings()  # settings problems first, before asking anything
    if not args.yes:
        # Opened once before asking, so that no books (BooksMissing) is said before the question.
        run_with_store(settings, Store.policies)
        confirm(f"Forget user {user_label(args.user)}?")
    report = run_with_store(settings, lambda s: s.forget(args.user))
    if args.json:
        print_json(
            {
                "user_id": args.user,
                "jobs": report.jobs,
                "ledger_rows": report.ledger_rows,
                "inputs_deleted": report.inputs_deleted,
                "blocks_kept": [block_dict(b) for b in report.blocks],
            }
        )
    else:
        print(
            f"Forgot {user_label(args.user)}: {plural(report.jobs, 'job')} and"
            f" {plural(report.ledger_rows, 'quota ledger row')} anonymised,"
            f" {plural(report.inputs_deleted, 'stored image')} deleted."
            + (" Their allowance for this period starts over." if report.ledger_rows else "")
            + (
                f" Their blocks stay: {', '.join(block_where(b) for b in report.blocks)}."
                if report.blocks
                else ""
            )
        )
    return 0
