"""`remixbot jobs list|show`: find jobs in the store (who asked, what ran, what it cost)."""

from __future__ import annotations

import argparse

from bot.cli._common import cli_settings, print_json
from bot.cli.quota import _id, _user
from bot.store import JOB_STATES, Store
from bot.store.admin import job_dict, job_text, jobs_table, run_with_store


def _limit(text: str) -> int:
    if text.strip().isdigit() and 1 <= int(text) <= 10_000:
        return int(text)
    raise argparse.ArgumentTypeError(f"must be a whole number from 1 to 10000, not {text!r}")


def register(sub: argparse._SubParsersAction) -> None:
    """Add `jobs list` and `jobs show` to the command line."""
    out = argparse.ArgumentParser(add_help=False)
    out.add_argument("--json", action="store_true", help="print JSON for scripts")
    p = sub.add_parser("jobs", help="list and show remix jobs")
    js = p.add_subparsers(dest="jobs_command", metavar="ACTION")
    js.required = True
    s = js.add_parser("list", parents=[out], help="newest jobs first")
    s.add_argument("--user", type=_user, help="user id, mention or cli")
    s.add_argument("--state", choices=JOB_STATES)
    s.add_argument("--guild", type=_id("guild"))
    s.add_argument("--limit", type=_limit, default=50, help="at most this many (default 50)")
    s.set_defaults(handler=_list)
    s = js.add_parser("show", parents=[out], help="one job in detail")
    s.add_argument("id", type=_id("job"), metavar="ID")
    s.set_defaults(handler=_show)


def _list(args: argparse.Namespace) -> int:
    jobs = run_with_store(
        cli_settings(),
        lambda s: s.list_jobs(args.user, args.state, args.limit, guild_id=args.guild),
    )
    if args.json:
        print_json([job_dict(j) for j in jobs])
    elif not jobs:
        print("No jobs match.")
    else:
        print(jobs_table(jobs))
    return 0


def _show(args: argparse.Namespace) -> int:
    async def load(s: Store) -> tuple:
        job = await s.get_job(args.id)
        return job, await s.backend_cost(job.id)

    job, cost = run_with_store(cli_settings(), load)
    if args.json:
        data = job_dict(job)
        data["backend_cost"] = None if cost is None else {"status": cost[0], "images": cost[1]}
        print_json(data)
    else:
        print(job_text(job, cost))
    return 0
