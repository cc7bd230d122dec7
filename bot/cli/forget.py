"""`remixbot forget USER`: delete a user's stored images and personal fields from the store."""

from __future__ import annotations

import argparse

from bot.cli._common import cli_settings, print_json
from bot.cli.quota import _user
from bot.store.admin import run_with_store, user_label


def register(sub: argparse._SubParsersAction) -> None:
    """Add `forget` to the command line."""
    p = sub.add_parser(
        "forget",
        help="delete a user's stored inputs, prompts and ids (anonymous counts stay)",
    )
    p.add_argument("user", type=_user, metavar="USER", help="user id, mention or cli")
    p.add_argument("--json", action="store_true", help="print JSON for scripts")
    p.set_defaults(handler=_forget)


def _forget(args: argparse.Namespace) -> int:
    report = run_with_store(cli_settings(), lambda s: s.forget(args.user))
    if args.json:
        print_json(
            {
                "user_id": args.user,
                "jobs": report.jobs,
                "ledger_rows": report.ledger_rows,
                "inputs_deleted": report.inputs_deleted,
            }
        )
    else:
        print(
            f"Forgot {user_label(args.user)}: {report.jobs} jobs anonymised,"
            f" {report.inputs_deleted} stored images deleted."
        )
    return 0
